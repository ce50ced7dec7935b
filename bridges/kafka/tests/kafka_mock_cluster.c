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

enum { MOCK_BROKERS_MAX = 16, MOCK_LINE_BYTES = 512, MOCK_KAFKA_PRODUCE_API_KEY = 0 };

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

int main(int argc, char **argv) {
    int broker_count = 3;
    for (int index = 1; index < argc; index++) {
        if (strcmp(argv[index], "--brokers") == 0 && index + 1 < argc) {
            broker_count = atoi(argv[++index]);
            if (broker_count < 1 || broker_count > MOCK_BROKERS_MAX) {
                fprintf(stderr, "kafka_mock_cluster: --brokers 1..%d\n", MOCK_BROKERS_MAX);
                return 2;
            }
        } else if (strcmp(argv[index], "--topic") == 0 && index + 1 < argc) {
            index++; /* created below, once the cluster exists */
        } else {
            fprintf(stderr, "usage: kafka_mock_cluster [--brokers N] [--topic NAME[:PARTS]]...\n");
            return 2;
        }
    }
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
    rd_kafka_mock_cluster_t *cluster = rd_kafka_mock_cluster_new(handle, broker_count);
    if (cluster == NULL) {
        fprintf(stderr, "kafka_mock_cluster: rd_kafka_mock_cluster_new failed\n");
        rd_kafka_destroy(handle);
        return 1;
    }
    int status = 0;
    for (int index = 1; index < argc && status == 0; index++) {
        if (strcmp(argv[index], "--topic") != 0) continue;
        char name[256];
        int partitions = 1;
        const char *spec = argv[++index];
        const char *colon = strrchr(spec, ':');
        size_t name_length = colon ? (size_t)(colon - spec) : strlen(spec);
        if (name_length == 0 || name_length >= sizeof(name)) {
            fprintf(stderr, "kafka_mock_cluster: bad --topic %s\n", spec);
            status = 2;
            break;
        }
        memcpy(name, spec, name_length);
        name[name_length] = '\0';
        if (colon) partitions = atoi(colon + 1);
        if (partitions < 1 || mock_topic_create(cluster, broker_count, name, partitions) != 0)
            status = 1;
    }
    if (status == 0) {
        printf("bootstrap %s\n", rd_kafka_mock_cluster_bootstraps(cluster));
        fflush(stdout);
        char line[MOCK_LINE_BYTES];
        while (!mock_stop_requested && fgets(line, sizeof(line), stdin) != NULL) {
            line[strcspn(line, "\r\n")] = '\0';
            if (strcmp(line, "quit") == 0) break;
            char why[256];
            if (mock_command(cluster, broker_count, line, why, sizeof(why)) == 0)
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
