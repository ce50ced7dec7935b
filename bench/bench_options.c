/*
 * bench_options.c: intake-bench's command line (bench_options.h): the usage text, the option
 * table, each option's value, and the checks of their combinations. Main thread, at start.
 */
#include "bench_options.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "bench_tls.h"
#include "intake/consumer.h"

static void usage(FILE *out) {
    fprintf(
        out,
        "usage: intake-bench --target intake|nats --port PORT [options]   (load run)\n"
        "       intake-bench --target intake|nats --port PORT --idle-connections N [--hold-s S]\n"
        "       intake-bench --memcpy [--size BYTES] [--duration-s S]\n"
        "       intake-bench --self-test\n"
        "  --host ADDR          server address (default 127.0.0.1)\n"
        "  --connections M      producer connections, one thread each (default 1)\n"
        "  --size B[,B...]      value bytes, >= 16; a list cycles per record (default 256)\n"
        "  --batch N            records per write (default 64)\n"
        "  --topics K           topics bench-0..K-1 / subjects bench.0..K-1 (default 1)\n"
        "  --duration-s S       stop producing after S seconds (default 5)\n"
        "  --warmup-s W         leave records sent in the first W seconds out of the latency "
        "figures\n"
        "  --count N            stop after N records in total (0: time only)\n"
        "  --rate R             open loop: R records/s in total, paced per 1 ms (default 0: "
        "closed)\n"
        "  --window-bytes B     closed loop: payload bytes in flight at most (default 16 MiB)\n"
        "  --acks               intake: number records and read cumulative acks\n"
        "  --producer-id        intake: give each connection a producer_id (field 7; with --acks)\n"
        "  --consumer set|handles  intake: one consumer set for every topic (default) or one\n"
        "                       consumer handle per topic, polled in turn\n"
        "  --producer raw|library  intake: intake-bench's own encoder (default) or the product's\n"
        "                       producer library (include/intake/producer.h)\n"
        "  --no-consume         no consumer thread (throughput from sent or acked records)\n"
        "  --tls-ca FILE        intake: producers speak TLS 1.3 (to --tls-listen), verifying\n"
        "                       the server against FILE; --tls-cert FILE --tls-key FILE: a\n"
        "                       client certificate; --tls-server-name NAME (default: --host)\n"
        "  --tls-ciphersuite S  the suite the bench's own producers offer (default\n"
        "                       " BENCH_TLS_CIPHERSUITE_DEFAULT ")\n"
        "  --shm-dir DIR        intake's shared-memory directory (default /dev/shm/intake)\n");
}

static int parse_sizes(struct bench_options *options, const char *text) {
    char copy[128];
    if (strlen(text) >= sizeof copy) return -EINVAL;
    strcpy(copy, text);
    options->size_count = 0;
    for (char *save = NULL, *word = strtok_r(copy, ",", &save); word;
         word = strtok_r(NULL, ",", &save)) {
        unsigned long value = strtoul(word, NULL, 10);
        if (options->size_count == BENCH_SIZE_MIX_MAX || value < BENCH_STAMP_BYTES ||
            value > BENCH_VALUE_BYTES_MAX)
            return -EINVAL;
        options->sizes[options->size_count++] = (uint32_t)value;
    }
    options->sizes_text = text;
    return options->size_count ? 0 : -EINVAL;
}

enum option_id {
    OPT_TARGET = 256,
    OPT_HOST,
    OPT_PORT,
    OPT_CONNECTIONS,
    OPT_SIZE,
    OPT_BATCH,
    OPT_TOPICS,
    OPT_DURATION,
    OPT_WARMUP,
    OPT_COUNT,
    OPT_RATE,
    OPT_WINDOW,
    OPT_ACKS,
    OPT_PRODUCER_ID,
    OPT_PRODUCER,
    OPT_CONSUMER,
    OPT_NO_CONSUME,
    OPT_SHM_DIR,
    OPT_IDLE,
    OPT_HOLD,
    OPT_MEMCPY,
    OPT_SELF_TEST,
    OPT_HELP,
    OPT_TLS_CA,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
    OPT_TLS_SERVER_NAME,
    OPT_TLS_CIPHERSUITE
};

static const struct option long_options[] = {{"target", 1, NULL, OPT_TARGET},
                                             {"host", 1, NULL, OPT_HOST},
                                             {"port", 1, NULL, OPT_PORT},
                                             {"connections", 1, NULL, OPT_CONNECTIONS},
                                             {"size", 1, NULL, OPT_SIZE},
                                             {"batch", 1, NULL, OPT_BATCH},
                                             {"topics", 1, NULL, OPT_TOPICS},
                                             {"duration-s", 1, NULL, OPT_DURATION},
                                             {"warmup-s", 1, NULL, OPT_WARMUP},
                                             {"count", 1, NULL, OPT_COUNT},
                                             {"rate", 1, NULL, OPT_RATE},
                                             {"window-bytes", 1, NULL, OPT_WINDOW},
                                             {"acks", 0, NULL, OPT_ACKS},
                                             {"producer-id", 0, NULL, OPT_PRODUCER_ID},
                                             {"producer", 1, NULL, OPT_PRODUCER},
                                             {"consumer", 1, NULL, OPT_CONSUMER},
                                             {"no-consume", 0, NULL, OPT_NO_CONSUME},
                                             {"shm-dir", 1, NULL, OPT_SHM_DIR},
                                             {"idle-connections", 1, NULL, OPT_IDLE},
                                             {"hold-s", 1, NULL, OPT_HOLD},
                                             {"memcpy", 0, NULL, OPT_MEMCPY},
                                             {"self-test", 0, NULL, OPT_SELF_TEST},
                                             {"help", 0, NULL, OPT_HELP},
                                             {"tls-ca", 1, NULL, OPT_TLS_CA},
                                             {"tls-cert", 1, NULL, OPT_TLS_CERT},
                                             {"tls-key", 1, NULL, OPT_TLS_KEY},
                                             {"tls-server-name", 1, NULL, OPT_TLS_SERVER_NAME},
                                             {"tls-ciphersuite", 1, NULL, OPT_TLS_CIPHERSUITE},
                                             {NULL, 0, NULL, 0}};

/* Applies one option; returns 0, or -EINVAL for a bad value or an unknown option. */
static int apply_option(struct bench_options *options, int id, const char *value) {
    switch (id) {
    case OPT_TARGET:
        options->target = strcmp(value, "nats") == 0     ? TARGET_NATS
                          : strcmp(value, "intake") == 0 ? TARGET_INTAKE
                                                         : TARGET_NONE;
        return options->target == TARGET_NONE ? -EINVAL : 0;
    case OPT_HOST: options->host = value; return 0;
    case OPT_PORT: options->port = (uint16_t)strtoul(value, NULL, 10); return 0;
    case OPT_CONNECTIONS: options->connection_count = (uint32_t)strtoul(value, NULL, 10); return 0;
    case OPT_SIZE: return parse_sizes(options, value);
    case OPT_BATCH: options->batch_records = (uint32_t)strtoul(value, NULL, 10); return 0;
    case OPT_TOPICS: options->topic_count = (uint32_t)strtoul(value, NULL, 10); return 0;
    case OPT_DURATION: options->duration_s = strtod(value, NULL); return 0;
    case OPT_WARMUP: options->warmup_s = strtod(value, NULL); return 0;
    case OPT_COUNT: options->record_count = strtoull(value, NULL, 10); return 0;
    case OPT_RATE: options->rate_per_s = strtod(value, NULL); return 0;
    case OPT_WINDOW: options->window_bytes = strtoull(value, NULL, 10); return 0;
    case OPT_ACKS: options->acks = true; return 0;
    case OPT_PRODUCER_ID: options->producer_id = true; return 0;
    case OPT_CONSUMER:
        if (strcmp(value, "set") == 0)
            options->consumer_kind = CONSUMER_SET;
        else if (strcmp(value, "handles") == 0)
            options->consumer_kind = CONSUMER_HANDLES;
        else
            return -EINVAL;
        return 0;
    case OPT_PRODUCER:
        if (strcmp(value, "raw") == 0)
            options->producer_kind = PRODUCER_RAW;
        else if (strcmp(value, "library") == 0)
            options->producer_kind = PRODUCER_LIBRARY;
        else
            return -EINVAL;
        return 0;
    case OPT_NO_CONSUME: options->consume = false; return 0;
    case OPT_SHM_DIR: options->shm_dir = value; return 0;
    case OPT_IDLE: options->idle_connections = (uint32_t)strtoul(value, NULL, 10); return 0;
    case OPT_HOLD: options->hold_s = strtod(value, NULL); return 0;
    case OPT_MEMCPY: options->memcpy_mode = true; return 0;
    case OPT_SELF_TEST: options->self_test = true; return 0;
    case OPT_TLS_CA: options->tls.ca_file = value; return 0;
    case OPT_TLS_CERT: options->tls.cert_file = value; return 0;
    case OPT_TLS_KEY: options->tls.key_file = value; return 0;
    case OPT_TLS_SERVER_NAME: options->tls.server_name = value; return 0;
    case OPT_TLS_CIPHERSUITE: options->tls.ciphersuite = value; return 0;
    default: return -EINVAL;
    }
}

/* Checks combinations; returns a one-line complaint or NULL. */
static const char *validate_options(const struct bench_options *options) {
    if (options->self_test || options->memcpy_mode) return NULL;
    if (options->target == TARGET_NONE) return "--target intake|nats is required";
    if (options->port == 0) return "--port is required";
    if (options->idle_connections) return NULL;
    if (options->connection_count == 0 || options->connection_count > BENCH_CONNECTIONS_MAX)
        return "--connections must be 1..4096";
    if (options->batch_records == 0 || options->batch_records > BENCH_BATCH_RECORDS_MAX)
        return "--batch must be 1..4096";
    if (options->topic_count == 0) return "--topics must be at least 1";
    if (options->duration_s <= 0 && options->record_count == 0)
        return "a run needs --duration-s or --count";
    if (options->duration_s > BENCH_RUN_SECONDS_MAX) return "--duration-s is at most 3600";
    if (options->acks && options->target != TARGET_INTAKE) return "--acks is for --target intake";
    if (options->producer_id && !options->acks) return "--producer-id needs --acks (sequences)";
    if (options->consumer_kind == CONSUMER_SET && options->target == TARGET_INTAKE &&
        options->topic_count > INTAKE_CONSUMER_SET_TOPICS_MAX)
        return "--consumer set follows at most INTAKE_CONSUMER_SET_TOPICS_MAX topics";
    if (options->producer_kind == PRODUCER_LIBRARY && options->target != TARGET_INTAKE)
        return "--producer library is for --target intake";
    /* The library cannot set field 7 yet (issue 12 adds it); --producer-id is the raw encoder's. */
    if (options->producer_kind == PRODUCER_LIBRARY && options->producer_id)
        return "--producer-id is for --producer raw";
    if (options->tls.ca_file && options->target != TARGET_INTAKE) return "--tls-ca is for intake";
    if ((options->tls.cert_file == NULL) != (options->tls.key_file == NULL))
        return "--tls-cert and --tls-key go together";
    if (!options->tls.ca_file &&
        (options->tls.cert_file || options->tls.server_name || options->tls.ciphersuite))
        return "the --tls-* options need --tls-ca";
    return NULL;
}

enum bench_options_outcome bench_options_parse(int argc, char **argv,
                                               struct bench_options *options) {
    *options = (struct bench_options){.host = "127.0.0.1",
                                      .connection_count = 1,
                                      .sizes = {256},
                                      .size_count = 1,
                                      .sizes_text = "256",
                                      .batch_records = 64,
                                      .topic_count = 1,
                                      .duration_s = 5,
                                      .window_bytes = BENCH_DEFAULT_WINDOW_BYTES,
                                      .consume = true,
                                      .shm_dir = "/dev/shm/intake",
                                      .hold_s = 10};
    int id;
    while ((id = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
        if (id == OPT_HELP) {
            usage(stdout);
            return BENCH_OPTIONS_HELP;
        }
        if (apply_option(options, id, optarg) != 0) {
            if (id != '?')
                fprintf(stderr, "intake-bench: bad value for --%s\n",
                        long_options[id - OPT_TARGET].name);
            usage(stderr);
            return BENCH_OPTIONS_BAD;
        }
    }
    const char *complaint = validate_options(options);
    if (complaint) {
        fprintf(stderr, "intake-bench: %s\n", complaint);
        return BENCH_OPTIONS_BAD;
    }
    if (options->tls.ciphersuite == NULL) options->tls.ciphersuite = BENCH_TLS_CIPHERSUITE_DEFAULT;
    return BENCH_OPTIONS_RUN;
}

const char *target_name(enum bench_target target) {
    return target == TARGET_NATS ? "nats" : target == TARGET_INTAKE ? "intake" : "none";
}
