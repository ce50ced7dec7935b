/*
 * kafka_mock_cluster: a test helper that runs librdkafka's mock Kafka cluster (rdkafka_mock.h)
 * in this process, so the bridge's tests have real Kafka-protocol brokers on loopback TCP
 * without an Apache Kafka installation (Debian packages none).
 *
 *   kafka_mock_cluster [--brokers N] [--topic NAME[:PARTITIONS]]...
 *
 * Prints "bootstrap HOST:PORT,..." on stdout once the brokers listen, then reads one command per
 * line from stdin and answers each with "ok LINE" (or "error LINE: why") on stdout:
 *   down ID | up ID             take broker ID (1..N) down (connections refused) or back up
 *   down-all | up-all           every broker
 *   produce-errors COUNT CODE   the next COUNT Produce requests fail with Kafka error CODE
 *                               (e.g. 6 NOT_LEADER_FOR_PARTITION, 7 REQUEST_TIMED_OUT)
 *   produce-delay COUNT MS      every broker answers its next COUNT Produce requests MS late
 *                               (it appends the records at once: they are readable in Kafka
 *                               while the producer still waits for its delivery report)
 *   topic NAME PARTITIONS       create a topic (replication factor min(3, N))
 *   quit                        (or end of input, or SIGTERM/SIGINT) stop and exit 0
 *
 * Thread: main thread only; the mock cluster runs its own broker threads inside librdkafka.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "cli.h"

enum {
    MOCK_BROKERS_MAX = 16,
    MOCK_TOPICS_MAX = 64,
    MOCK_LINE_BYTES = 512,
    MOCK_KAFKA_PRODUCE_API_KEY = 0
};

static volatile sig_atomic_t mock_stop_requested;

static void mock_on_signal(int signal_number) {
    (void)signal_number;
    mock_stop_requested = 1;
}

static int mock_topic_create(rd_kafka_mock_cluster_t *cluster, int broker_count, const char *name,
                             int partitions) {
    int replication = broker_count < 3 ? broker_count : 3;
    rd_kafka_resp_err_t error = rd_kafka_mock_topic_create(cluster, name, partitions, replication);
    if (error != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "kafka_mock_cluster: topic %s: %s\n", name, rd_kafka_err2str(error));
        return -1;
    }
    return 0;
}

/* Applies one control command; returns 0, or -1 with a reason in `why`. */
static int mock_command(rd_kafka_mock_cluster_t *cluster, int broker_count, const char *line,
                        char *why, size_t why_bytes) {
    char word[32] = "", name[256] = "";
    int first = 0, second = 0;
    int fields = sscanf(line, "%31s %d %d", word, &first, &second);
    if (fields < 1) return snprintf(why, why_bytes, "empty command"), -1;
    if (strcmp(word, "down") == 0 || strcmp(word, "up") == 0) {
        if (fields < 2 || first < 1 || first > broker_count)
            return snprintf(why, why_bytes, "broker id 1..%d expected", broker_count), -1;
        rd_kafka_resp_err_t error = word[0] == 'd' ? rd_kafka_mock_broker_set_down(cluster, first)
                                                   : rd_kafka_mock_broker_set_up(cluster, first);
        if (error) return snprintf(why, why_bytes, "%s", rd_kafka_err2str(error)), -1;
        return 0;
    }
    if (strcmp(word, "down-all") == 0 || strcmp(word, "up-all") == 0) {
        for (int broker = 1; broker <= broker_count; broker++) {
            rd_kafka_resp_err_t error = word[0] == 'd'
                                            ? rd_kafka_mock_broker_set_down(cluster, broker)
                                            : rd_kafka_mock_broker_set_up(cluster, broker);
            if (error) return snprintf(why, why_bytes, "%s", rd_kafka_err2str(error)), -1;
        }
        return 0;
    }
    if (strcmp(word, "produce-errors") == 0) {
        if (fields < 3 || first < 1 || first > 1000)
            return snprintf(why, why_bytes, "produce-errors COUNT(1..1000) CODE"), -1;
        rd_kafka_resp_err_t errors[1000];
        for (int index = 0; index < first; index++) errors[index] = (rd_kafka_resp_err_t)second;
        rd_kafka_mock_push_request_errors_array(cluster, MOCK_KAFKA_PRODUCE_API_KEY, (size_t)first,
                                                errors);
        return 0;
    }
    if (strcmp(word, "produce-delay") == 0) {
        if (fields < 3 || first < 1 || first > 1000 || second < 0)
            return snprintf(why, why_bytes, "produce-delay COUNT(1..1000) MS"), -1;
        for (int broker = 1; broker <= broker_count; broker++) {
            for (int index = 0; index < first; index++) {
                rd_kafka_resp_err_t error = rd_kafka_mock_broker_push_request_error_rtts(
                    cluster, broker, MOCK_KAFKA_PRODUCE_API_KEY, 1, RD_KAFKA_RESP_ERR_NO_ERROR,
                    second);
                if (error) return snprintf(why, why_bytes, "%s", rd_kafka_err2str(error)), -1;
            }
        }
        return 0;
    }
    if (strcmp(word, "topic") == 0) {
        if (sscanf(line, "%*s %255s %d", name, &first) != 2 || first < 1)
            return snprintf(why, why_bytes, "topic NAME PARTITIONS"), -1;
        if (mock_topic_create(cluster, broker_count, name, first) != 0)
            return snprintf(why, why_bytes, "topic create failed"), -1;
        return 0;
    }
    return snprintf(why, why_bytes, "unknown command"), -1;
}

static void mock_usage(FILE *out) {
    fprintf(out,
            "usage: kafka_mock_cluster [--brokers 1..%d] [--topic NAME[:PARTITIONS]]...\n"
            "  then commands on stdin (see the top of kafka_mock_cluster.c); --help, --version\n",
            MOCK_BROKERS_MAX);
}

/* --topic NAME[:PARTITIONS], checked before the cluster exists; created once it does. */
struct mock_topic {
    char name[256];
    uint32_t partitions;
};

/* Reads one --topic; 0, or -1 with the refusal in cli->why. */
static int mock_topic_parse(struct cli *cli, const char *spec, struct mock_topic *topic) {
    const char *colon = strrchr(spec, ':');
    size_t name_length = colon ? (size_t)(colon - spec) : strlen(spec);
    if (name_length == 0 || name_length >= sizeof(topic->name))
        return cli_bad_value(cli, "NAME[:PARTITIONS] with a name of 1..255 bytes");
    memcpy(topic->name, spec, name_length);
    topic->name[name_length] = '\0';
    topic->partitions = 1;
    if (colon == NULL) return 0;
    uint64_t partitions = 0;
    const struct number_spec partitions_spec = NUMBER_COUNT_SPEC(1, 100000);
    char why[CLI_WHY_BYTES];
    if (number_parse("--topic partitions", colon + 1, &partitions_spec, &partitions, why,
                     sizeof(why)) != NUMBER_OK)
        return cli_refuse(cli, "%s", why);
    topic->partitions = (uint32_t)partitions;
    return 0;
}

/* What the command line asks for. */
struct mock_options {
    uint32_t broker_count;
    struct mock_topic topics[MOCK_TOPICS_MAX];
    uint32_t topic_count;
};

/* Applies one option (cli_apply_fn); 0, or -1 with the refusal in cli->why. */
static int mock_apply(struct cli *cli, int option, void *context) {
    struct mock_options *options = context;
    if (option == 'b')
        return cli_number_u32(cli, &NUMBER_COUNT_SPEC(1, MOCK_BROKERS_MAX), &options->broker_count);
    if (options->topic_count == MOCK_TOPICS_MAX)
        return cli_refuse(cli, "--topic: more than %d", MOCK_TOPICS_MAX);
    return mock_topic_parse(cli, optarg, &options->topics[options->topic_count++]);
}

int main(int argc, char **argv) {
    static struct mock_options chosen = {.broker_count = 3};
    static const struct option options[] = {{"brokers", required_argument, NULL, 'b'},
                                            {"topic", required_argument, NULL, 't'},
                                            CLI_STANDARD_OPTIONS,
                                            {NULL, 0, NULL, 0}};
    struct cli cli;
    cli_start(&cli, "kafka_mock_cluster", options, mock_usage);
    int exit_now = cli_parse(&cli, argc, argv, mock_apply, &chosen);
    if (exit_now >= 0) return exit_now;
    uint32_t broker_count = chosen.broker_count;
    const struct mock_topic *topics = chosen.topics;
    uint32_t topic_count = chosen.topic_count;
    struct sigaction action = {.sa_handler = mock_on_signal};
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);

    /* The cluster needs a handle for its bookkeeping; a producer that never produces. */
    char error_text[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", error_text, sizeof(error_text));
    rd_kafka_t *handle = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error_text, sizeof(error_text));
    if (handle == NULL) {
        fprintf(stderr, "kafka_mock_cluster: rd_kafka_new: %s\n", error_text);
        return 1;
    }
    rd_kafka_mock_cluster_t *cluster = rd_kafka_mock_cluster_new(handle, (int)broker_count);
    if (cluster == NULL) {
        fprintf(stderr, "kafka_mock_cluster: rd_kafka_mock_cluster_new failed\n");
        rd_kafka_destroy(handle);
        return 1;
    }
    int status = 0;
    for (uint32_t index = 0; index < topic_count && status == 0; index++)
        if (mock_topic_create(cluster, (int)broker_count, topics[index].name,
                              (int)topics[index].partitions) != 0)
            status = 1;
    if (status == 0) {
        printf("bootstrap %s\n", rd_kafka_mock_cluster_bootstraps(cluster));
        fflush(stdout);
        char line[MOCK_LINE_BYTES];
        while (!mock_stop_requested && fgets(line, sizeof(line), stdin) != NULL) {
            line[strcspn(line, "\r\n")] = '\0';
            if (strcmp(line, "quit") == 0) break;
            char why[256];
            if (mock_command(cluster, (int)broker_count, line, why, sizeof(why)) == 0)
                printf("ok %s\n", line);
            else
                printf("error %s: %s\n", line, why);
            fflush(stdout);
        }
    }
    rd_kafka_mock_cluster_destroy(cluster);
    rd_kafka_destroy(handle);
    return status;
}
