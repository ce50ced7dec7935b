/*
 * bridge_main.c: intake-kafka, the bridge from intake's shared-memory logs to a Kafka cluster.
 * This file reads the flags, installs the signal handlers and runs bridge_loop. See
 * docs/kafka-bridge.md for the design and the exactly-once argument.
 *
 * Exit status: 0 after SIGTERM/SIGINT once everything read was delivered and committed; 1 when
 * something failed (one line says what; nothing undelivered was committed, so a restart
 * resumes exactly); 2 for bad flags (one line naming the flag, cli.h).
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bridge_loop.h"
#include "cli.h"
#include "bridge_topics.h"

static void usage(FILE *out) {
    fprintf(
        out,
        "usage: intake-kafka --brokers HOST:PORT[,...] (--topic NAME... | --all-topics) [flags]\n"
        "  --shm-dir DIR               intake's log directory (/dev/shm/intake)\n"
        "  --topic NAME                forward this topic (repeatable)\n"
        "  --all-topics                forward every topic, including ones created later\n"
        "  --brokers LIST              Kafka bootstrap servers\n"
        "  --consumer-name NAME        intake consumer name; its cursor survives restarts "
        "(intake-kafka)\n"
        "  --kafka-topic-prefix P      Kafka topic = P + intake topic\n"
        "  --kafka-topic-template T    Kafka topic = T with {topic} replaced ({topic})\n"
        "  --kafka-partition N         the partition every record goes to (0)\n"
        "  --value value|record        Kafka value: the record's value, or the whole encoded\n"
        "                              intake.v1.Record (value)\n"
        "  --dead-letter-topic NAME    where records too large for Kafka go "
        "(intake-dead-letter)\n"
        "  --instance NAME             the intake-instance header (this host's name)\n"
        "  -X key=value                a librdkafka setting (repeatable), like kcat\n"
        "  --topics-max N              topics the bridge tracks at most (1024)\n"
        "  --in-flight-max N           records per topic in flight before a commit (10000)\n"
        "  --commit-interval-ms N      commit each busy topic at least this often (200)\n"
        "  --scan-interval-ms N        look for new topic logs this often (1000)\n"
        "  --resume-scan-max N         messages read back per partition at startup (100000)\n"
        "  --resume-settle-ms N        wait after start before reading Kafka back (1000)\n"
        "  --shutdown-timeout-ms N     on SIGTERM, how long to wait for deliveries (10000)\n"
        "  --help, --version\n"
        "The -ms flags count milliseconds, or take a unit (1.5s, 250ms, 1m).\n"
        "signals: SIGTERM/SIGINT stop (deliver, commit, exit 0); SIGUSR1 prints counters\n");
}

static void on_stop(int signal_number) {
    (void)signal_number;
    bridge_stop_requested = 1;
}

static void on_counters(int signal_number) {
    (void)signal_number;
    bridge_counters_requested = 1;
}

static int parse_property(struct cli *cli, struct bridge_options *options, char *text) {
    char *equals = strchr(text, '=');
    if (equals == NULL || equals == text) return cli_bad_value(cli, "key=value");
    if (options->kafka.property_count == BRIDGE_KAFKA_PROPERTIES_MAX)
        return cli_refuse(cli, "-X: more than %d settings", BRIDGE_KAFKA_PROPERTIES_MAX);
    *equals = '\0';
    options->kafka.properties[options->kafka.property_count++] =
        (struct bridge_kafka_property){text, equals + 1};
    return 0;
}

static void options_defaults(struct bridge_options *options) {
    *options = (struct bridge_options){
        .shm_dir = "/dev/shm/intake",
        .consumer_name = "intake-kafka",
        .kafka_topic_template = "{topic}",
        .dead_letter_topic = "intake-dead-letter",
        .topics_max = 1024,
        .in_flight_max = 10000,
        .commit_interval_ms = 200,
        .scan_interval_ms = 1000,
        .resume_scan_max = 100000,
        .resume_dead_letter_scan_max = 1000,
        .resume_settle_ms = 1000,
        .shutdown_timeout_ms = 10000,
    };
    if (gethostname(options->instance, sizeof(options->instance) - 1) != 0)
        snprintf(options->instance, sizeof(options->instance), "unknown-host");
}

/* Flags that must go together; 0, or -1 with one line in `why`. */
static int options_check(const struct bridge_options *options, char *why, size_t capacity) {
    char kafka_topic[BRIDGE_KAFKA_TOPIC_BYTES];
    if (options->kafka.brokers == NULL) {
        intake_error_line(why, capacity, "--brokers is required");
        return -1;
    }
    if (options->all_topics == (options->named_topic_count > 0)) {
        intake_error_line(why, capacity, "give either --topic NAME (repeatable) or --all-topics");
        return -1;
    }
    if (strstr(options->kafka_topic_template, "{topic}") == NULL) {
        intake_error_line(why, capacity, "--kafka-topic-template must contain {topic}");
        return -1;
    }
    if (bridge_kafka_topic_for("{topic}", options->dead_letter_topic, kafka_topic) != 0) {
        intake_error_line(why, capacity, "--dead-letter-topic %s is not a legal Kafka topic name",
                          options->dead_letter_topic);
        return -1;
    }
    /* Room for the anchor slot's suffix (bridge_topics.h). */
    size_t name_length = strlen(options->consumer_name);
    size_t name_max = INTAKE_CONSUMER_NAME_BYTES_MAX - (sizeof(BRIDGE_ANCHOR_SUFFIX) - 1);
    if (name_length == 0 || name_length > name_max) {
        intake_error_line(why, capacity, "--consumer-name must be 1..%zu bytes", name_max);
        return -1;
    }
    return 0;
}

enum bridge_option {
    OPTION_SHM_DIR = 256,
    OPTION_TOPIC,
    OPTION_ALL_TOPICS,
    OPTION_BROKERS,
    OPTION_CONSUMER_NAME,
    OPTION_KAFKA_TOPIC_PREFIX,
    OPTION_KAFKA_TOPIC_TEMPLATE,
    OPTION_VALUE,
    OPTION_DEAD_LETTER_TOPIC,
    OPTION_INSTANCE,
    /* The numbers, in bridge_number_flags' order. */
    OPTION_TOPICS_MAX,
    OPTION_KAFKA_PARTITION,
    OPTION_IN_FLIGHT_MAX,
    OPTION_COMMIT_INTERVAL_MS,
    OPTION_SCAN_INTERVAL_MS,
    OPTION_RESUME_SCAN_MAX,
    OPTION_RESUME_SETTLE_MS,
    OPTION_SHUTDOWN_TIMEOUT_MS,
};

static const struct option bridge_option_table[] = {
    {"shm-dir", required_argument, NULL, OPTION_SHM_DIR},
    {"topic", required_argument, NULL, OPTION_TOPIC},
    {"all-topics", no_argument, NULL, OPTION_ALL_TOPICS},
    {"brokers", required_argument, NULL, OPTION_BROKERS},
    {"consumer-name", required_argument, NULL, OPTION_CONSUMER_NAME},
    {"kafka-topic-prefix", required_argument, NULL, OPTION_KAFKA_TOPIC_PREFIX},
    {"kafka-topic-template", required_argument, NULL, OPTION_KAFKA_TOPIC_TEMPLATE},
    {"value", required_argument, NULL, OPTION_VALUE},
    {"dead-letter-topic", required_argument, NULL, OPTION_DEAD_LETTER_TOPIC},
    {"instance", required_argument, NULL, OPTION_INSTANCE},
    {"topics-max", required_argument, NULL, OPTION_TOPICS_MAX},
    {"kafka-partition", required_argument, NULL, OPTION_KAFKA_PARTITION},
    {"in-flight-max", required_argument, NULL, OPTION_IN_FLIGHT_MAX},
    {"commit-interval-ms", required_argument, NULL, OPTION_COMMIT_INTERVAL_MS},
    {"scan-interval-ms", required_argument, NULL, OPTION_SCAN_INTERVAL_MS},
    {"resume-scan-max", required_argument, NULL, OPTION_RESUME_SCAN_MAX},
    {"resume-settle-ms", required_argument, NULL, OPTION_RESUME_SETTLE_MS},
    {"shutdown-timeout-ms", required_argument, NULL, OPTION_SHUTDOWN_TIMEOUT_MS},
    CLI_STANDARD_OPTIONS,
    {NULL, 0, NULL, 0},
};

/* A numeric flag's range; the -ms ones are durations (a bare number counts milliseconds). */
static struct number_spec bridge_number_spec(int option) {
    switch (option) {
    case OPTION_TOPICS_MAX: return NUMBER_COUNT_SPEC(1, 1u << 20);
    case OPTION_KAFKA_PARTITION: return NUMBER_COUNT_SPEC(0, INT32_MAX);
    case OPTION_IN_FLIGHT_MAX: return NUMBER_COUNT_SPEC(1, 10000000);
    case OPTION_RESUME_SCAN_MAX: return NUMBER_COUNT_SPEC(1, UINT32_MAX);
    case OPTION_COMMIT_INTERVAL_MS: return NUMBER_DURATION_SPEC(NUMBER_MS, 1, 3600000);
    case OPTION_SCAN_INTERVAL_MS: return NUMBER_DURATION_SPEC(NUMBER_MS, 10, 3600000);
    default: return NUMBER_DURATION_SPEC(NUMBER_MS, 0, 3600000);
    }
}

/* Stores a parsed number; durations arrive in ns and are kept in whole ms, rounded up. */
static void bridge_apply_number(struct bridge_options *options, int option, uint64_t value) {
    uint64_t ms = (value + NUMBER_MS - 1) / NUMBER_MS;
    switch (option) {
    case OPTION_TOPICS_MAX: options->topics_max = (uint32_t)value; break;
    case OPTION_KAFKA_PARTITION: options->kafka_partition = (int32_t)value; break;
    case OPTION_IN_FLIGHT_MAX: options->in_flight_max = value; break;
    case OPTION_RESUME_SCAN_MAX: options->resume_scan_max = value; break;
    case OPTION_COMMIT_INTERVAL_MS: options->commit_interval_ms = ms; break;
    case OPTION_SCAN_INTERVAL_MS: options->scan_interval_ms = ms; break;
    case OPTION_RESUME_SETTLE_MS: options->resume_settle_ms = ms; break;
    case OPTION_SHUTDOWN_TIMEOUT_MS: options->shutdown_timeout_ms = ms; break;
    default: INTAKE_ASSERT(!"a numeric option without a field");
    }
}

static const struct cli_word bridge_value_modes[] = {{"value", BRIDGE_VALUE_VALUE},
                                                     {"record", BRIDGE_VALUE_RECORD}};

/* Applies one option (cli_apply_fn); 0, or -1 with the refusal in cli->why. */
static int apply_flag(struct cli *cli, int option, void *context) {
    struct bridge_options *options = context;
    char *value = optarg;
    int mode = 0;
    switch (option) {
    case OPTION_ALL_TOPICS: options->all_topics = true; return 0;
    case OPTION_SHM_DIR: options->shm_dir = value; return 0;
    case OPTION_TOPIC:
        if (options->named_topic_count == BRIDGE_NAMED_TOPICS_MAX)
            return cli_refuse(cli, "--topic: more than %d", BRIDGE_NAMED_TOPICS_MAX);
        options->named_topics[options->named_topic_count++] = value;
        return 0;
    case OPTION_BROKERS: options->kafka.brokers = value; return 0;
    case OPTION_CONSUMER_NAME: options->consumer_name = value; return 0;
    case OPTION_KAFKA_TOPIC_PREFIX:
        snprintf(options->kafka_topic_template_storage,
                 sizeof(options->kafka_topic_template_storage), "%s{topic}", value);
        options->kafka_topic_template = options->kafka_topic_template_storage;
        return 0;
    case OPTION_KAFKA_TOPIC_TEMPLATE: options->kafka_topic_template = value; return 0;
    case OPTION_VALUE:
        if (cli_choose(cli, bridge_value_modes, 2, &mode) < 0) return -1;
        options->value_mode = (enum bridge_value_mode)mode;
        return 0;
    case OPTION_DEAD_LETTER_TOPIC: options->dead_letter_topic = value; return 0;
    case OPTION_INSTANCE:
        snprintf(options->instance, sizeof(options->instance), "%s", value);
        return 0;
    case 'X': return parse_property(cli, options, value);
    default: {
        const struct number_spec spec = bridge_number_spec(option);
        uint64_t number = 0;
        if (cli_number(cli, &spec, &number) < 0) return -1;
        bridge_apply_number(options, option, number);
        return 0;
    }
    }
}

/* The flags into `options`: -1 to run, or the status to exit with now (after --help,
 * --version, or a refusal printed as one line). */
static int parse_flags(int argc, char **argv, struct bridge_options *options) {
    struct cli cli;
    cli_start(&cli, "intake-kafka", bridge_option_table, usage);
    cli_allow_short(&cli, "hX:"); /* -X key=value as kcat has it; -h as --help */
    int exit_now = cli_parse(&cli, argc, argv, apply_flag, options);
    if (exit_now >= 0) return exit_now;
    char problem[256];
    if (options_check(options, problem, sizeof(problem)) < 0) {
        cli_refuse(&cli, "%s", problem);
        return cli_finish(&cli);
    }
    return -1;
}

int main(int argc, char **argv) {
    static struct bridge_options options; /* large (named topics, -X pairs): not on the stack */
    options_defaults(&options);
    int exit_now = parse_flags(argc, argv, &options);
    if (exit_now >= 0) return exit_now;
    struct sigaction stop = {.sa_handler = on_stop};
    struct sigaction counters = {.sa_handler = on_counters};
    sigaction(SIGTERM, &stop, NULL);
    sigaction(SIGINT, &stop, NULL);
    sigaction(SIGUSR1, &counters, NULL);
    signal(SIGPIPE, SIG_IGN);
    return bridge_loop_run(&options);
}
