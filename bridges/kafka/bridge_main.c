/*
 * bridge_main.c: intake-kafka, the bridge from intake's shared-memory logs to a Kafka cluster.
 * This file reads the flags, installs the signal handlers and runs bridge_loop. See
 * docs/kafka-bridge.md for the design and the exactly-once argument.
 *
 * Exit status: 0 after SIGTERM/SIGINT once everything read was delivered and committed; 1 when
 * something failed (one line says what; nothing undelivered was committed, so a restart
 * resumes exactly); 2 for bad flags.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bridge_loop.h"
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

static int parse_u64(const char *flag, const char *text, uint64_t low, uint64_t high,
                     uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || text[0] == '-' || value < low ||
        value > high) {
        fprintf(stderr, "intake-kafka: %s wants a number from %llu to %llu, not \"%s\"\n", flag,
                (unsigned long long)low, (unsigned long long)high, text);
        return -1;
    }
    *out = value;
    return 0;
}

static int parse_property(struct bridge_options *options, char *text) {
    char *equals = strchr(text, '=');
    if (equals == NULL || equals == text) {
        fprintf(stderr, "intake-kafka: -X wants key=value, not \"%s\"\n", text);
        return -1;
    }
    if (options->kafka.property_count == BRIDGE_KAFKA_PROPERTIES_MAX) {
        fprintf(stderr, "intake-kafka: more than %d -X settings\n", BRIDGE_KAFKA_PROPERTIES_MAX);
        return -1;
    }
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

/* Flags that take a number: name, where it goes, its range. */
struct number_flag {
    const char *name;
    uint64_t *target;
    uint64_t low, high;
};

static int parse_flags(int argc, char **argv, struct bridge_options *options) {
    uint64_t topics_max = options->topics_max, partition = 0;
    struct number_flag numbers[] = {
        {"--topics-max", &topics_max, 1, 1u << 20},
        {"--kafka-partition", &partition, 0, INT32_MAX},
        {"--in-flight-max", &options->in_flight_max, 1, 10000000},
        {"--commit-interval-ms", &options->commit_interval_ms, 1, 3600000},
        {"--scan-interval-ms", &options->scan_interval_ms, 10, 3600000},
        {"--resume-scan-max", &options->resume_scan_max, 1, UINT32_MAX},
        {"--resume-settle-ms", &options->resume_settle_ms, 0, 3600000},
        {"--shutdown-timeout-ms", &options->shutdown_timeout_ms, 0, 3600000},
    };
    for (int index = 1; index < argc; index++) {
        const char *flag = argv[index];
        if (strcmp(flag, "--help") == 0 || strcmp(flag, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strcmp(flag, "--all-topics") == 0) {
            options->all_topics = true;
            continue;
        }
        if (index + 1 >= argc) {
            fprintf(stderr, "intake-kafka: unknown flag or missing value: %s\n", flag);
            return -1;
        }
        char *value = argv[++index];
        bool matched = false;
        for (size_t number = 0; number < sizeof(numbers) / sizeof(numbers[0]); number++) {
            if (strcmp(flag, numbers[number].name) != 0) continue;
            if (parse_u64(flag, value, numbers[number].low, numbers[number].high,
                          numbers[number].target) != 0)
                return -1;
            matched = true;
        }
        if (matched) continue;
        if (strcmp(flag, "--shm-dir") == 0) {
            options->shm_dir = value;
        } else if (strcmp(flag, "--topic") == 0) {
            if (options->named_topic_count == BRIDGE_NAMED_TOPICS_MAX) {
                fprintf(stderr, "intake-kafka: more than %d --topic\n", BRIDGE_NAMED_TOPICS_MAX);
                return -1;
            }
            options->named_topics[options->named_topic_count++] = value;
        } else if (strcmp(flag, "--brokers") == 0) {
            options->kafka.brokers = value;
        } else if (strcmp(flag, "--consumer-name") == 0) {
            options->consumer_name = value;
        } else if (strcmp(flag, "--kafka-topic-prefix") == 0) {
            snprintf(options->kafka_topic_template_storage,
                     sizeof(options->kafka_topic_template_storage), "%s{topic}", value);
            options->kafka_topic_template = options->kafka_topic_template_storage;
        } else if (strcmp(flag, "--kafka-topic-template") == 0) {
            options->kafka_topic_template = value;
        } else if (strcmp(flag, "--value") == 0) {
            if (strcmp(value, "value") == 0) {
                options->value_mode = BRIDGE_VALUE_VALUE;
            } else if (strcmp(value, "record") == 0) {
                options->value_mode = BRIDGE_VALUE_RECORD;
            } else {
                fprintf(stderr, "intake-kafka: --value wants value or record\n");
                return -1;
            }
        } else if (strcmp(flag, "--dead-letter-topic") == 0) {
            options->dead_letter_topic = value;
        } else if (strcmp(flag, "--instance") == 0) {
            snprintf(options->instance, sizeof(options->instance), "%s", value);
        } else if (strcmp(flag, "-X") == 0) {
            if (parse_property(options, value) != 0) return -1;
        } else {
            fprintf(stderr, "intake-kafka: unknown flag: %s\n", flag);
            return -1;
        }
    }
    options->topics_max = (uint32_t)topics_max;
    options->kafka_partition = (int32_t)partition;
    return 0;
}

static int options_check(const struct bridge_options *options) {
    char kafka_topic[BRIDGE_KAFKA_TOPIC_BYTES];
    if (options->kafka.brokers == NULL) {
        fprintf(stderr, "intake-kafka: --brokers is required\n");
        return -1;
    }
    if (options->all_topics == (options->named_topic_count > 0)) {
        fprintf(stderr, "intake-kafka: give either --topic NAME (repeatable) or --all-topics\n");
        return -1;
    }
    if (strstr(options->kafka_topic_template, "{topic}") == NULL) {
        fprintf(stderr, "intake-kafka: --kafka-topic-template must contain {topic}\n");
        return -1;
    }
    if (bridge_kafka_topic_for("{topic}", options->dead_letter_topic, kafka_topic) != 0) {
        fprintf(stderr, "intake-kafka: --dead-letter-topic %s is not a legal Kafka topic name\n",
                options->dead_letter_topic);
        return -1;
    }
    /* Room for the anchor slot's suffix (bridge_topics.h). */
    size_t name_length = strlen(options->consumer_name);
    size_t name_max = INTAKE_CONSUMER_NAME_BYTES_MAX - (sizeof(BRIDGE_ANCHOR_SUFFIX) - 1);
    if (name_length == 0 || name_length > name_max) {
        fprintf(stderr, "intake-kafka: --consumer-name must be 1..%zu bytes\n", name_max);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    static struct bridge_options options; /* large (named topics, -X pairs): not on the stack */
    options_defaults(&options);
    if (parse_flags(argc, argv, &options) != 0 || options_check(&options) != 0) {
        fprintf(stderr, "intake-kafka: --help lists the flags\n");
        return 2;
    }
    struct sigaction stop = {.sa_handler = on_stop};
    struct sigaction counters = {.sa_handler = on_counters};
    sigaction(SIGTERM, &stop, NULL);
    sigaction(SIGINT, &stop, NULL);
    sigaction(SIGUSR1, &counters, NULL);
    signal(SIGPIPE, SIG_IGN);
    return bridge_loop_run(&options);
}
