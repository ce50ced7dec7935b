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
#include "cli.h"
#include "number_parse.h"
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
        "  --shm-dir DIR        intake's shared-memory directory (default /dev/shm/intake)\n"
        "  --help, --version    sizes take K, M, G (x1024); the -s flags take fractions and\n"
        "                       units (0.5, 250ms). Bad usage: one line, exit 2\n");
}

/* --size B[,B...]: each a size (number_parse.h), BENCH_STAMP_BYTES..BENCH_VALUE_BYTES_MAX. */
static int parse_sizes(struct cli *cli, struct bench_options *options, const char *text) {
    char copy[128];
    if (strlen(text) >= sizeof copy) return cli_bad_value(cli, "a list of at most 127 bytes");
    strcpy(copy, text);
    options->size_count = 0;
    const struct number_spec spec = NUMBER_SIZE_SPEC(BENCH_STAMP_BYTES, BENCH_VALUE_BYTES_MAX);
    for (char *save = NULL, *word = strtok_r(copy, ",", &save); word;
         word = strtok_r(NULL, ",", &save)) {
        uint64_t value = 0;
        char why[CLI_WHY_BYTES];
        if (options->size_count == BENCH_SIZE_MIX_MAX)
            return cli_refuse(cli, "--size: more than %d sizes", BENCH_SIZE_MIX_MAX);
        if (number_parse("--size", word, &spec, &value, why, sizeof(why)) != NUMBER_OK)
            return cli_refuse(cli, "%s", why);
        options->sizes[options->size_count++] = (uint32_t)value;
    }
    options->sizes_text = text;
    return options->size_count ? 0 : cli_bad_value(cli, "a list of sizes");
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
                                             {"tls-ca", 1, NULL, OPT_TLS_CA},
                                             {"tls-cert", 1, NULL, OPT_TLS_CERT},
                                             {"tls-key", 1, NULL, OPT_TLS_KEY},
                                             {"tls-server-name", 1, NULL, OPT_TLS_SERVER_NAME},
                                             {"tls-ciphersuite", 1, NULL, OPT_TLS_CIPHERSUITE},
                                             CLI_STANDARD_OPTIONS,
                                             {NULL, 0, NULL, 0}};

/* Seconds (fractions and units allowed: 0.5, 250ms) from 0 to BENCH_RUN_SECONDS_MAX, as a double. */
static int parse_seconds(struct cli *cli, double *seconds) {
    uint64_t nanoseconds = 0;
    if (cli_number(cli, &NUMBER_DURATION_SPEC(NUMBER_SECONDS, 0, (uint64_t)BENCH_RUN_SECONDS_MAX),
                   &nanoseconds) < 0)
        return -1;
    *seconds = (double)nanoseconds / 1e9;
    return 0;
}

static const struct cli_word bench_targets[] = {{"intake", TARGET_INTAKE}, {"nats", TARGET_NATS}};
static const struct cli_word bench_consumers[] = {{"set", CONSUMER_SET},
                                                  {"handles", CONSUMER_HANDLES}};
static const struct cli_word bench_producers[] = {{"raw", PRODUCER_RAW},
                                                  {"library", PRODUCER_LIBRARY}};

/* Applies one option (cli_apply_fn); 0, or -1 with the refusal in cli->why. */
static int apply_option(struct cli *cli, int id, void *context) {
    struct bench_options *options = context;
    const char *value = optarg;
    uint64_t number = 0;
    int chosen = 0;
    int result = 0;
    switch (id) {
    case OPT_TARGET:
        result = cli_choose(cli, bench_targets, 2, &chosen);
        options->target = (enum bench_target)chosen;
        return result;
    case OPT_HOST: options->host = value; return 0;
    case OPT_PORT:
        result = cli_number(cli, &NUMBER_COUNT_SPEC(1, 65535), &number);
        options->port = (uint16_t)number;
        return result;
    case OPT_CONNECTIONS:
        return cli_number_u32(cli, &NUMBER_COUNT_SPEC(1, BENCH_CONNECTIONS_MAX),
                              &options->connection_count);
    case OPT_SIZE: return parse_sizes(cli, options, value);
    case OPT_BATCH:
        return cli_number_u32(cli, &NUMBER_COUNT_SPEC(1, BENCH_BATCH_RECORDS_MAX),
                              &options->batch_records);
    case OPT_TOPICS:
        return cli_number_u32(cli, &NUMBER_COUNT_SPEC(1, UINT32_MAX), &options->topic_count);
    case OPT_DURATION: return parse_seconds(cli, &options->duration_s);
    case OPT_WARMUP: return parse_seconds(cli, &options->warmup_s);
    case OPT_COUNT:
        return cli_number(cli, &NUMBER_COUNT_SPEC(0, UINT64_MAX), &options->record_count);
    case OPT_RATE:
        result = cli_number(cli, &NUMBER_COUNT_SPEC(0, UINT32_MAX), &number);
        options->rate_per_s = (double)number;
        return result;
    case OPT_WINDOW:
        return cli_number(cli, &NUMBER_SIZE_SPEC(1, 1ull << 40), &options->window_bytes);
    case OPT_ACKS: options->acks = true; return 0;
    case OPT_PRODUCER_ID: options->producer_id = true; return 0;
    case OPT_CONSUMER:
        result = cli_choose(cli, bench_consumers, 2, &chosen);
        options->consumer_kind = (enum bench_consumer_kind)chosen;
        return result;
    case OPT_PRODUCER:
        result = cli_choose(cli, bench_producers, 2, &chosen);
        options->producer_kind = (enum bench_producer_kind)chosen;
        return result;
    case OPT_NO_CONSUME: options->consume = false; return 0;
    case OPT_SHM_DIR: options->shm_dir = value; return 0;
    case OPT_IDLE:
        return cli_number_u32(cli, &NUMBER_COUNT_SPEC(0, 1u << 20), &options->idle_connections);
    case OPT_HOLD: return parse_seconds(cli, &options->hold_s);
    case OPT_MEMCPY: options->memcpy_mode = true; return 0;
    case OPT_SELF_TEST: options->self_test = true; return 0;
    case OPT_TLS_CA: options->tls.ca_file = value; return 0;
    case OPT_TLS_CERT: options->tls.cert_file = value; return 0;
    case OPT_TLS_KEY: options->tls.key_file = value; return 0;
    case OPT_TLS_SERVER_NAME: options->tls.server_name = value; return 0;
    case OPT_TLS_CIPHERSUITE: options->tls.ciphersuite = value; return 0;
    default: INTAKE_ASSERT(!"an option without a case"); return -1;
    }
}

/* Checks combinations; returns a one-line complaint or NULL. */
static const char *validate_options(const struct bench_options *options) {
    if (options->self_test || options->memcpy_mode) return NULL;
    if (options->target == TARGET_NONE) return "--target intake|nats is required";
    if (options->port == 0) return "--port is required";
    if (options->idle_connections) return NULL;
    if (options->duration_s <= 0 && options->record_count == 0)
        return "a run needs --duration-s or --count";
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

int bench_options_parse(int argc, char **argv, struct bench_options *options) {
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
    struct cli cli;
    cli_start(&cli, "intake-bench", long_options, usage);
    int exit_now = cli_parse(&cli, argc, argv, apply_option, options);
    if (exit_now >= 0) return exit_now;
    const char *complaint = validate_options(options);
    if (complaint) {
        cli_refuse(&cli, "%s", complaint);
        return cli_finish(&cli);
    }
    if (options->tls.ciphersuite == NULL) options->tls.ciphersuite = BENCH_TLS_CIPHERSUITE_DEFAULT;
    return -1;
}

const char *target_name(enum bench_target target) {
    return target == TARGET_NATS ? "nats" : target == TARGET_INTAKE ? "intake" : "none";
}
