/*
 * config.c: intaked's flags (see config.h). Every limit the daemon has is a flag here, checked
 * once at startup, so nothing is discovered to be too small at run time.
 */
#include "config.h"

#include "address.h"
#include "cli.h"
#include "dedupe_table.h"
#include "metrics_http.h"

#include "reuseport_cbpf.h"
#include "tls_record.h"

#include <errno.h>
#include <grp.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>

enum option_id {
    OPTION_LISTEN = 256,
    OPTION_SHM_DIR,
    OPTION_REACTORS,
    OPTION_WORKERS,
    OPTION_MAX_FRAME,
    OPTION_TOPICS_MAX,
    OPTION_TOPIC_QUEUE,
    OPTION_CONNECTIONS_MAX,
    OPTION_RECORDS_PER_REACTOR,
    OPTION_ACK_WINDOW,
    OPTION_CQ_ENTRIES,
    OPTION_BACKEND,
    OPTION_BUFFERS,
    OPTION_BUFFER_SIZE,
    OPTION_ZCRX_IF,
    OPTION_ZCRX_QUEUES,
    OPTION_ZCRX_NODEV,
    OPTION_ZCRX_AREA,
    OPTION_ZCRX_RX_BUF,
    OPTION_LOG_SIZE,
    OPTION_RETENTION,
    OPTION_CONSUMER_STALE_MS,
    OPTION_DEDUPE_PRODUCERS,
    OPTION_SHUTDOWN_TIMEOUT_MS,
    OPTION_FRAME_TIMEOUT_MS,
    OPTION_IDLE_TIMEOUT_MS,
    OPTION_TOPIC,
    OPTION_SHM_GROUP,
    OPTION_TOPICS_PER_CONNECTION,
    OPTION_METRICS_LISTEN,
    OPTION_COUNTERS,
    OPTION_PRODUCERS_MAX,
    OPTION_TLS_LISTEN,
    OPTION_TLS_CERT,
    OPTION_TLS_KEY,
    OPTION_TLS_CLIENT_CA,
    OPTION_HANDSHAKE_TIMEOUT_MS,
    OPTION_HANDSHAKES_MAX,
    OPTION_HANDSHAKE_THREADS,
    OPTION_TLS_KEY_UPDATE_RECORDS,
    OPTION_ACL,
};

static const struct option config_options[] = {
    {"listen", required_argument, NULL, OPTION_LISTEN},
    {"shm-dir", required_argument, NULL, OPTION_SHM_DIR},
    {"reactors", required_argument, NULL, OPTION_REACTORS},
    {"workers", required_argument, NULL, OPTION_WORKERS},
    {"max-frame", required_argument, NULL, OPTION_MAX_FRAME},
    {"topics-max", required_argument, NULL, OPTION_TOPICS_MAX},
    {"topic-queue", required_argument, NULL, OPTION_TOPIC_QUEUE},
    {"connections-max", required_argument, NULL, OPTION_CONNECTIONS_MAX},
    {"records-per-reactor", required_argument, NULL, OPTION_RECORDS_PER_REACTOR},
    {"ack-window", required_argument, NULL, OPTION_ACK_WINDOW},
    {"cq-entries", required_argument, NULL, OPTION_CQ_ENTRIES},
    {"backend", required_argument, NULL, OPTION_BACKEND},
    {"buffers", required_argument, NULL, OPTION_BUFFERS},
    {"buffer-size", required_argument, NULL, OPTION_BUFFER_SIZE},
    {"zcrx-if", required_argument, NULL, OPTION_ZCRX_IF},
    {"zcrx-queues", required_argument, NULL, OPTION_ZCRX_QUEUES},
    {"zcrx-nodev", no_argument, NULL, OPTION_ZCRX_NODEV},
    {"zcrx-area", required_argument, NULL, OPTION_ZCRX_AREA},
    {"zcrx-rx-buf", required_argument, NULL, OPTION_ZCRX_RX_BUF},
    {"log-size", required_argument, NULL, OPTION_LOG_SIZE},
    {"retention", required_argument, NULL, OPTION_RETENTION},
    {"consumer-stale-ms", required_argument, NULL, OPTION_CONSUMER_STALE_MS},
    {"dedupe-producers", required_argument, NULL, OPTION_DEDUPE_PRODUCERS},
    {"shutdown-timeout-ms", required_argument, NULL, OPTION_SHUTDOWN_TIMEOUT_MS},
    {"frame-timeout-ms", required_argument, NULL, OPTION_FRAME_TIMEOUT_MS},
    {"idle-timeout-ms", required_argument, NULL, OPTION_IDLE_TIMEOUT_MS},
    {"topic", required_argument, NULL, OPTION_TOPIC},
    {"shm-group", required_argument, NULL, OPTION_SHM_GROUP},
    {"topics-per-connection", required_argument, NULL, OPTION_TOPICS_PER_CONNECTION},
    {"metrics-listen", required_argument, NULL, OPTION_METRICS_LISTEN},
    {"counters", required_argument, NULL, OPTION_COUNTERS},
    {"producers-max", required_argument, NULL, OPTION_PRODUCERS_MAX},
    {"tls-listen", required_argument, NULL, OPTION_TLS_LISTEN},
    {"tls-cert", required_argument, NULL, OPTION_TLS_CERT},
    {"tls-key", required_argument, NULL, OPTION_TLS_KEY},
    {"tls-client-ca", required_argument, NULL, OPTION_TLS_CLIENT_CA},
    {"handshake-timeout-ms", required_argument, NULL, OPTION_HANDSHAKE_TIMEOUT_MS},
    {"handshakes-max", required_argument, NULL, OPTION_HANDSHAKES_MAX},
    {"handshake-threads", required_argument, NULL, OPTION_HANDSHAKE_THREADS},
    {"tls-key-update-records", required_argument, NULL, OPTION_TLS_KEY_UPDATE_RECORDS},
    {"acl", required_argument, NULL, OPTION_ACL},
    CLI_STANDARD_OPTIONS,
    {NULL, 0, NULL, 0},
};

void config_print_usage(FILE *out) {
    fputs(
        "usage: intaked [options]\n"
        "  --listen ADDR:PORT|none   where producers connect in plaintext (127.0.0.1:7411;\n"
        "                            [::1]:P for IPv6; none: no plaintext listener)\n"
        "  --tls-listen ADDR:PORT    where producers connect with TLS 1.3 (default: no TLS)\n"
        "  --tls-cert FILE           the server's certificate, PEM, chain allowed\n"
        "  --tls-key FILE            its private key, PEM\n"
        "  --tls-client-ca FILE      CA certificates, PEM: a client certificate is required and\n"
        "                            verified (mTLS); its URI SAN or CN is the principal\n"
        "  --handshake-timeout-ms N  a TLS handshake must be done within N ms (default 10000)\n"
        "  --handshakes-max N        TLS handshakes at once per reactor; more are refused (256)\n"
        "  --handshake-threads N     threads running TLS handshakes (1; at most --reactors)\n"
        "  --tls-key-update-records N  update a TLS key after N records (default: AEAD limit)\n"
        "  --shm-dir DIR             topic logs for consumers (default /dev/shm/intake)\n"
        "  --shm-group NAME          group that may read logs and register consumers (files "
        "0640/0660,\n"
        "                            directory 0750; default: intaked's own group)\n"
        "  --reactors N              receive threads, one io_uring each (default 1)\n"
        "  --workers N               delivery threads; topic t is owned by worker t %% N (default "
        "1)\n"
        "  --max-frame BYTES         largest record accepted (default 1M)\n"
        "  --topics-max N            topics created on first use, at most (default 1024)\n"
        "  --topic NAME              create a topic at startup (repeatable)\n"
        "  --topics-per-connection N topics one connection may create (default: --topics-max)\n"
        "  --topic-queue N           records queued per topic, power of two (default 4096)\n"
        "  --connections-max N       connections per reactor; more are refused (default 16384)\n"
        "  --records-per-reactor N   records in flight per reactor (default 16384)\n"
        "  --ack-window N            unacknowledged records per connection, power of two (default "
        "2048)\n"
        "  --cq-entries N            completion queue size per reactor (default 8192)\n"
        "  --backend auto|pbuf|zcrx  receive backend (default auto: zcrx if it can be set up)\n"
        "  --buffers N               provided buffers per reactor, power of two (default 512)\n"
        "  --buffer-size BYTES       each provided buffer (default 64K)\n"
        "  --zcrx-if IFNAME          NIC for zero-copy receive\n"
        "  --zcrx-queues LIST        hardware rx queues, reactor i binds the i-th (e.g. 4,5,6,7)\n"
        "  --zcrx-nodev              device-less zcrx (kernel copies; same interface; Linux 7.x)\n"
        "  --zcrx-area BYTES         zcrx area per reactor (default 64M)\n"
        "  --zcrx-rx-buf BYTES       zcrx receive buffer size where the kernel allows (default: "
        "page)\n"
        "  --log-size BYTES          each topic's shared-memory ring, power of two (default 64M)\n"
        "  --retention block|overwrite  slow consumers push back (block, default) or lose the "
        "oldest\n"
        "  --consumer-stale-ms N     block mode: a silent consumer stops holding back after N ms "
        "(10000)\n"
        "  --dedupe-producers N      producers each topic's deduplication table remembers\n"
        "                            (default 1024; 0: no deduplication)\n"
        "  --shutdown-timeout-ms N   on SIGTERM, wait at most N ms for full logs (default 10000)\n"
        "  --frame-timeout-ms N      a record must arrive within N ms of its first byte (10000;\n"
        "                            0: no limit)\n"
        "  --idle-timeout-ms N       close a connection silent for N ms with nothing in flight\n"
        "                            (300000; 0: never)\n"
        "  --producers-max N         producers whose acknowledged sequence a Hello is answered\n"
        "                            with; the least recently seen is forgotten (default 65536)\n"
        "  --acl FILE                who may produce to which topics, and quotas (README: ACLs);\n"
        "                            without it, everything is allowed\n"
        "  --metrics-listen ADDR:PORT  serve /metrics, /healthz, /readyz over HTTP (default: off)\n"
        "  --counters PATH           counters region for intake-stat (default "
        "SHM-DIR/intake.counters)\n"
        "Counts and sizes take K, M or G (x1024: 64K is 65536). The -ms flags count\n"
        "milliseconds, or take a unit: 1.5s, 250ms, 2m, 1h.\n"
        "SIGTERM, SIGINT: stop accepting, finish, exit 0. SIGHUP: reload the TLS certificate, key\n"
        "and client CA (new handshakes use them) and the --acl file (from the next record); a\n"
        "failed reload keeps the old configuration of that part. SIGUSR1: counters.\n",
        out);
}

/* Each numeric flag's kind and range: what its field holds and the bounds that need no other
 * flag. Rules between flags, and powers of two, are config_check's. Durations are kept in ns;
 * the -ms flags count milliseconds when no unit is given, and stop at 2^32 - 1 ms (49 days),
 * far from wrapping a clock reading they are added to. */
static struct number_spec option_number_spec(int option) {
    const uint64_t ms_max = UINT32_MAX;
    switch (option) {
    case OPTION_REACTORS:
    case OPTION_WORKERS:
    case OPTION_HANDSHAKE_THREADS: return NUMBER_COUNT_SPEC(1, 64);
    case OPTION_TOPICS_MAX:
    case OPTION_HANDSHAKES_MAX: return NUMBER_COUNT_SPEC(1, 65536);
    case OPTION_TOPIC_QUEUE: return NUMBER_COUNT_SPEC(2, UINT32_MAX);
    case OPTION_CONNECTIONS_MAX: return NUMBER_COUNT_SPEC(1, (1u << 24) - 1);
    case OPTION_RECORDS_PER_REACTOR: return NUMBER_COUNT_SPEC(16, 1u << 22);
    case OPTION_ACK_WINDOW: return NUMBER_COUNT_SPEC(1, 65536);
    case OPTION_CQ_ENTRIES: return NUMBER_COUNT_SPEC(64, 65536);
    case OPTION_BUFFERS: return NUMBER_COUNT_SPEC(1, 32768);
    case OPTION_DEDUPE_PRODUCERS: return NUMBER_COUNT_SPEC(0, DEDUPE_PRODUCERS_MAX);
    case OPTION_PRODUCERS_MAX: return NUMBER_COUNT_SPEC(1, PRODUCER_TABLE_CAPACITY_MAX);
    case OPTION_TOPICS_PER_CONNECTION: return NUMBER_COUNT_SPEC(1, UINT32_MAX);
    /* 0 is "the AEAD's own limit"; 1 is refused by config_check_tls (a key per record). */
    case OPTION_TLS_KEY_UPDATE_RECORDS: return NUMBER_COUNT_SPEC(0, TLS_GCM_RECORDS_PER_KEY_MAX);
    case OPTION_MAX_FRAME: return NUMBER_SIZE_SPEC(16, UINT32_MAX);
    case OPTION_BUFFER_SIZE: return NUMBER_SIZE_SPEC(4096, 1u << 24);
    case OPTION_ZCRX_RX_BUF: return NUMBER_SIZE_SPEC(0, UINT32_MAX);
    case OPTION_ZCRX_AREA: return NUMBER_SIZE_SPEC(0, 1ull << 40);
    case OPTION_LOG_SIZE: return NUMBER_SIZE_SPEC(65536, 1ull << 40);
    case OPTION_CONSUMER_STALE_MS:
    case OPTION_SHUTDOWN_TIMEOUT_MS:
    case OPTION_FRAME_TIMEOUT_MS:
    case OPTION_IDLE_TIMEOUT_MS:
    case OPTION_HANDSHAKE_TIMEOUT_MS: return NUMBER_DURATION_SPEC(NUMBER_MS, 0, ms_max);
    default: INTAKE_ASSERT(!"a numeric option without a spec"); return NUMBER_COUNT_SPEC(0, 0);
    }
}

static int parse_listen(const char *text, struct pipeline_config *config, char *why,
                        size_t capacity) {
    config->listen_none = strcmp(text, "none") == 0;
    if (config->listen_none) {
        snprintf(config->listen_text, sizeof(config->listen_text), "none");
        return 0;
    }
    int result = intake_address_parse("--listen", text, &config->listen_address,
                                      &config->listen_address_length, why, capacity);
    if (result < 0) return result;
    snprintf(config->listen_text, sizeof(config->listen_text), "%s", text);
    return 0;
}

static int parse_tls_listen(const char *text, struct pipeline_config *config, char *why,
                            size_t capacity) {
    int result = intake_address_parse("--tls-listen", text, &config->tls_listen_address,
                                      &config->tls_listen_address_length, why, capacity);
    if (result < 0) return result;
    config->tls_listen_set = true;
    snprintf(config->tls_listen_text, sizeof(config->tls_listen_text), "%s", text);
    return 0;
}

/* What a flag's value must look like, for the one-line refusal. */
static const char *option_expects(int option) {
    switch (option) {
    case OPTION_BACKEND: return "auto, pbuf or zcrx";
    case OPTION_RETENTION: return "block or overwrite";
    default: return "queue numbers separated by commas, such as 4,5,6,7";
    }
}

/* Stores a numeric flag's parsed value (durations arrive in nanoseconds). */
static void config_apply_number(struct pipeline_config *config, int option, uint64_t value) {
    switch (option) {
    case OPTION_REACTORS: config->reactor_count = (uint32_t)value; break;
    case OPTION_WORKERS: config->worker_count = (uint32_t)value; break;
    case OPTION_MAX_FRAME: config->frame_bytes_max = (uint32_t)value; break;
    case OPTION_TOPICS_MAX: config->topics_max = (uint32_t)value; break;
    case OPTION_TOPICS_PER_CONNECTION: config->topics_per_connection = (uint32_t)value; break;
    case OPTION_TOPIC_QUEUE: config->topic_queue_capacity = (uint32_t)value; break;
    case OPTION_CONNECTIONS_MAX: config->connections_max = (uint32_t)value; break;
    case OPTION_RECORDS_PER_REACTOR: config->records_in_flight_max = (uint32_t)value; break;
    case OPTION_ACK_WINDOW: config->ack_window_capacity = (uint32_t)value; break;
    case OPTION_CQ_ENTRIES: config->cq_entries = (uint32_t)value; break;
    case OPTION_BUFFERS: config->buffer_count = (uint32_t)value; break;
    case OPTION_BUFFER_SIZE: config->buffer_bytes = (uint32_t)value; break;
    case OPTION_ZCRX_AREA: config->zcrx_area_bytes = value; break;
    case OPTION_ZCRX_RX_BUF: config->zcrx_rx_buffer_bytes = (uint32_t)value; break;
    case OPTION_LOG_SIZE: config->log_capacity_bytes = value; break;
    case OPTION_DEDUPE_PRODUCERS: config->dedupe_producers = (uint32_t)value; break;
    case OPTION_CONSUMER_STALE_MS: config->consumer_stale_ns = value; break;
    case OPTION_SHUTDOWN_TIMEOUT_MS: config->shutdown_timeout_ns = value; break;
    case OPTION_FRAME_TIMEOUT_MS: config->frame_timeout_ns = value; break;
    case OPTION_IDLE_TIMEOUT_MS: config->idle_timeout_ns = value; break;
    case OPTION_PRODUCERS_MAX: config->producers_max = (uint32_t)value; break;
    case OPTION_HANDSHAKE_TIMEOUT_MS: config->handshake_timeout_ns = value; break;
    case OPTION_HANDSHAKES_MAX: config->handshakes_max = (uint32_t)value; break;
    case OPTION_HANDSHAKE_THREADS: config->handshake_threads = (uint32_t)value; break;
    case OPTION_TLS_KEY_UPDATE_RECORDS: config->tls_key_update_records = value; break;
    default: INTAKE_ASSERT(!"option without a handler");
    }
}

/* Applies one option (`flag` is its name, "--reactors"); returns 0 or fills `why`. */
static int config_apply(struct pipeline_config *config, int option, const char *flag,
                        const char *argument, char *why, size_t capacity) {
    uint64_t value = 0;
    int bad = 0;
    switch (option) {
    case OPTION_LISTEN: return parse_listen(argument, config, why, capacity);
    case OPTION_TLS_LISTEN: return parse_tls_listen(argument, config, why, capacity);
    case OPTION_TLS_CERT: config->tls_certificate_path = argument; return 0;
    case OPTION_TLS_KEY: config->tls_key_path = argument; return 0;
    case OPTION_TLS_CLIENT_CA: config->tls_client_ca_path = argument; return 0;
    case OPTION_SHM_DIR: config->shm_directory = argument; return 0;
    case OPTION_SHM_GROUP: {
        struct group *found = getgrnam(argument);
        if (found == NULL) {
            snprintf(why, capacity, "--shm-group: no group named \"%s\"", argument);
            return -EINVAL;
        }
        config->shm_group_set = true;
        config->shm_group = found->gr_gid;
        return 0;
    }
    case OPTION_COUNTERS: config->counters_path = argument; return 0;
    case OPTION_ACL: config->acl_path = argument; return 0;
    case OPTION_METRICS_LISTEN: {
        struct sockaddr_storage address;
        socklen_t length = 0;
        if (intake_address_parse("--metrics-listen", argument, &address, &length, why, capacity) <
            0)
            return -EINVAL;
        /* Nothing would report the port the kernel picked (--listen's is in the counters). */
        if (intake_address_port(&address) == 0) {
            snprintf(why, capacity, "--metrics-listen %s: the port must be a number 1..65535",
                     argument);
            return -EINVAL;
        }
        config->metrics_listen = argument;
        return 0;
    }
    case OPTION_ZCRX_IF: config->zcrx_interface = argument; return 0;
    case OPTION_ZCRX_NODEV: config->zcrx_nodev = true; return 0;
    case OPTION_TOPIC:
        if (config->fixed_topic_count == INTAKE_ARRAY_LENGTH(config->fixed_topics)) {
            intake_error_line(why, capacity, "--topic: more than %zu --topic flags",
                              INTAKE_ARRAY_LENGTH(config->fixed_topics));
            return -EINVAL;
        }
        config->fixed_topics[config->fixed_topic_count++] = (char *)argument;
        return 0;
    case OPTION_BACKEND:
        /* Validated against the backend table: "auto" walks its fallback chain. */
        bad = strcmp(argument, RX_BACKEND_AUTO_NAME) != 0 && rx_backend_type_find(argument) == NULL;
        if (!bad) config->backend_name = argument;
        break;
    case OPTION_RETENTION:
        if (strcmp(argument, "block") == 0)
            config->retention = SHM_LOG_RETENTION_BLOCK;
        else if (strcmp(argument, "overwrite") == 0)
            config->retention = SHM_LOG_RETENTION_OVERWRITE;
        else
            bad = 1;
        break;
    case OPTION_ZCRX_QUEUES: {
        int count = reuseport_parse_queue_list(argument, config->zcrx_queues,
                                               INTAKE_ARRAY_LENGTH(config->zcrx_queues));
        bad = count <= 0;
        config->zcrx_queue_count = bad ? 0 : (uint32_t)count;
        break;
    }
    default: {
        const struct number_spec spec = option_number_spec(option);
        if (number_parse(flag, argument, &spec, &value, why, capacity) != NUMBER_OK) return -EINVAL;
        config_apply_number(config, option, value);
        return 0;
    }
    }
    if (bad) {
        intake_error_line(why, capacity, "%s: '%s' is not %s", flag, argument,
                          option_expects(option));
        return -EINVAL;
    }
    return 0;
}

/* One rule per line: what must hold between the flags, with the message a user needs. */
#define RULE(condition, ...)                                                                       \
    do {                                                                                           \
        if (!(condition)) {                                                                        \
            snprintf(why, capacity, __VA_ARGS__);                                                  \
            return -EINVAL;                                                                        \
        }                                                                                          \
    } while (0)

/* The TLS flags go together; whether their files are good is checked when the server context
 * is built (exit 1, pipeline_tls.c), not here (exit 2 is for the command line itself). */
static int config_check_tls(const struct pipeline_config *config, char *why, size_t capacity) {
    RULE(config->tls_listen_set || !config->listen_none,
         "--listen none leaves no listener: give --tls-listen");
    bool files = config->tls_certificate_path || config->tls_key_path || config->tls_client_ca_path;
    RULE(config->tls_listen_set || !files,
         "--tls-cert, --tls-key and --tls-client-ca need --tls-listen");
    if (!config->tls_listen_set) return 0;
    RULE(config->tls_certificate_path != NULL && config->tls_key_path != NULL,
         "--tls-listen needs --tls-cert and --tls-key");
    RULE(config->handshake_threads >= 1 && config->handshake_threads <= config->reactor_count,
         "--handshake-threads must be 1..--reactors (%u)", config->reactor_count);
    RULE(config->tls_key_update_records == 0 || config->tls_key_update_records >= 2,
         "--tls-key-update-records must be at least 2");
    /* A TLS record is complete only when all of it is in receive memory. */
    RULE((uint64_t)config->buffer_count * config->buffer_bytes >= 2ull * TLS_RECORD_BYTES_MAX,
         "--buffers x --buffer-size must hold two TLS records (%u bytes) with --tls-listen",
         2 * TLS_RECORD_BYTES_MAX);
    /* Port 0 twice is two ports: the kernel picks one for each. */
    RULE(config->listen_none || intake_address_port(&config->listen_address) == 0 ||
             config->listen_address_length != config->tls_listen_address_length ||
             memcmp(&config->listen_address, &config->tls_listen_address,
                    config->listen_address_length) != 0,
         "--listen and --tls-listen name the same address");
    return 0;
}

static int config_check(const struct pipeline_config *config, char *why, size_t capacity) {
    RULE(config->shm_directory[0] != '\0', "--shm-dir must name a directory");
    /* The ranges of single flags are their number specs (option_number_spec). */
    RULE(intake_is_power_of_two(config->topic_queue_capacity),
         "--topic-queue must be a power of two >= 2");
    RULE(intake_is_power_of_two(config->ack_window_capacity),
         "--ack-window must be a power of two <= 65536");
    RULE(intake_is_power_of_two(config->buffer_count), "--buffers must be a power of two <= 32768");
    RULE(intake_is_power_of_two(config->log_capacity_bytes),
         "--log-size must be a power of two >= 64K");
    /* A record must fit a log entry; the log keeps room for several (see shm_log.h). */
    RULE(config->frame_bytes_max <= config->log_capacity_bytes / 4,
         "--max-frame %u does not fit --log-size %lu (at most a quarter of it)",
         config->frame_bytes_max, (unsigned long)config->log_capacity_bytes);
    /* A backend named explicitly checks that the flags it needs were given. */
    const struct rx_backend_type *type = rx_backend_type_find(config->backend_name);
    if (type != NULL) {
        struct rx_backend_config backend;
        pipeline_backend_config(config, 0, &backend);
        if (type->check(&backend, why, capacity) < 0) return -EINVAL;
    }
    RULE(config->zcrx_queue_count == 0 || config->zcrx_queue_count >= config->reactor_count,
         "--zcrx-queues lists %u queues for %u reactors", config->zcrx_queue_count,
         config->reactor_count);
    RULE(config->fixed_topic_count <= config->topics_max, "more --topic flags than --topics-max");
    if (config_check_tls(config, why, capacity) < 0) return -EINVAL;
    for (uint32_t index = 0; index < config->fixed_topic_count; index++) {
        size_t length = strlen(config->fixed_topics[index]);
        uint32_t state = 0;
        RULE(length >= 1 && length <= 255 &&
                 intake_utf8_feed(&state, (const uint8_t *)config->fixed_topics[index], length) &&
                 state == 0,
             "--topic \"%s\": a topic is 1..255 bytes of UTF-8", config->fixed_topics[index]);
    }
    return 0;
}
#undef RULE

enum config_result config_parse(int argc, char **argv, struct pipeline_config *config, char *why,
                                size_t why_capacity) {
    pipeline_config_defaults(config);
    struct cli cli;
    cli_start(&cli, "intaked", config_options, config_print_usage);
    int option;
    while ((option = cli_next(&cli, argc, argv)) >= 0)
        if (config_apply(config, option, cli.flag, cli.value, why, why_capacity) < 0)
            return CONFIG_ERROR;
    if (option == CLI_STOP && cli.exit_status == 0) return CONFIG_DONE;
    if (option == CLI_STOP) {
        intake_error_line(why, why_capacity, "%s", cli.why);
        return CONFIG_ERROR;
    }
    if (config_check(config, why, why_capacity) < 0) return CONFIG_ERROR;
    /* A malformed --acl file is bad configuration like a bad flag: its line and reason. */
    if (config->acl_path != NULL &&
        acl_policy_load(config->acl_path, &config->acl_policy, why, why_capacity) < 0)
        return CONFIG_ERROR;
    return CONFIG_OK;
}
