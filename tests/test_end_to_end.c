/*
 * test_end_to_end: producers -> a real intaked -> shared-memory logs -> a consumer, through
 * real sockets, io_uring and shared memory.
 *
 * Scenario "volume": 1,000,000 records over 8 connections to 16 topics (2 reactors, 2 workers).
 * Scenario "backpressure": tiny buffers, queues, windows and record pools, so every pause path
 * (topic queue full, record pool empty, ack window full, out of buffers) is taken, and records
 * span several buffers.
 * Scenario "starved": far fewer buffers than the records in progress need, so every buffer ends
 * up pinned by partial records. The defined behaviour: no hang; connections are ended one at a
 * time with RESOURCE_EXHAUSTED until the rest can progress; each connection's records in the logs
 * are exactly the prefix its acks confirmed.
 *
 * Each record's value carries (connection, index). After the producers' last acks arrive, every
 * topic log is read from its start and we check: every record arrived exactly once, each
 * connection's records are in order within each topic, the bytes are the ones sent, acks reached
 * the last sequence. Then SIGTERM: the daemon exits 0 and reports every receive buffer back in
 * its ring.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "daemon_util.h"
#include "harness.h"
#include "intake/consumer.h"
#include "intake/producer.h"
#include "record.h"
#include "record_decode.h"

#define TOPIC_COUNT     16
#define CONNECTIONS_MAX 8

struct scenario {
    const char *name;
    uint32_t connection_count;
    uint32_t records_per_connection;
    uint32_t padding_max; /* value padding, bytes: sizes vary 16..16+padding_max */
    const char *const *flags;
    bool may_exhaust; /* connections may end with RESOURCE_EXHAUSTED */
};

struct producer_thread {
    pthread_t thread;
    const struct scenario *scenario;
    const char *address;
    uint32_t connection;
    int result;
    uint64_t acked;
    char error[256];
};

/* The value: connection and index, then padding derived from both (checked on the way out). */
static size_t value_make(uint32_t connection, uint32_t index, uint32_t padding_max, uint8_t *out) {
    memcpy(out, &connection, 4);
    memcpy(out + 4, &index, 4);
    uint64_t state = ((uint64_t)connection << 32 | index) * 0x9E3779B97F4A7C15ull + 1;
    uint32_t padding = padding_max ? (uint32_t)(test_random_next(&state) % (padding_max + 1)) : 0;
    for (uint32_t byte = 0; byte < padding + 8; byte++)
        out[8 + byte] = (uint8_t)(test_random_next(&state) >> 56);
    return 16 + padding;
}

static uint32_t topic_of(uint32_t connection, uint32_t index) {
    return (connection * 5 + index) % TOPIC_COUNT;
}

static void *producer_main(void *argument) {
    struct producer_thread *self = argument;
    struct intake_producer_config config = {.address = self->address, .acks = true};
    struct intake_producer *producer = NULL;
    self->result = intake_producer_open(&config, &producer, self->error, sizeof(self->error));
    if (self->result < 0) return NULL;
    uint8_t value[16 + 70000];
    char topic[32];
    for (uint32_t index = 0; index < self->scenario->records_per_connection && self->result == 0;
         index++) {
        snprintf(topic, sizeof(topic), "e2e-%02u", topic_of(self->connection, index));
        size_t length = value_make(self->connection, index, self->scenario->padding_max, value);
        self->result = intake_producer_send(producer, topic, "k", 1, value, length, 0, NULL);
    }
    /* Liveness, not throughput: every 1,000 more acks within 120 s. The last write can end
     * long before intaked has read what the kernel buffered (megabytes per connection, with
     * every other connection's ahead of it); under a sanitizer on a loaded machine one wait for
     * the last sequence timed out while acks were still advancing. */
    uint64_t last = intake_producer_last_sequence(producer);
    while (self->result == 0 && intake_producer_acked(producer) < last) {
        uint64_t target = intake_producer_acked(producer) + 1000;
        self->result = intake_producer_wait_acks(producer, target < last ? target : last, 120000);
    }
    if (self->result < 0)
        snprintf(self->error, sizeof(self->error), "%s", intake_producer_last_error(producer));
    self->acked = intake_producer_acked(producer);
    intake_producer_close(producer);
    return NULL;
}

struct verification {
    uint8_t *seen; /* [connection][index] */
    uint64_t expected_per_connection[CONNECTIONS_MAX];
    int64_t last_index[CONNECTIONS_MAX][TOPIC_COUNT];
    uint64_t records;
    uint64_t duplicates;
    uint64_t out_of_order;
    uint64_t corrupt;
    uint64_t missed;
};

static void verify_record(const struct scenario *scenario, struct verification *check,
                          uint32_t topic, const struct intake_consumer_record *record) {
    struct slice slice = {record->bytes, record->length, 0};
    struct record_view view = {&slice, 1, record->length};
    struct record_decoded decoded;
    const char *detail = NULL;
    if (record_decode(&view, &decoded, &detail) != RECORD_DECODE_OK || decoded.value.length < 16) {
        check->corrupt++;
        return;
    }
    const uint8_t *value = record->bytes + decoded.value.offset;
    uint32_t connection = 0, index = 0;
    memcpy(&connection, value, 4);
    memcpy(&index, value + 4, 4);
    uint8_t expected[16 + 70000];
    if (connection >= scenario->connection_count || index >= scenario->records_per_connection ||
        topic_of(connection, index) != topic ||
        value_make(connection, index, scenario->padding_max, expected) != decoded.value.length ||
        memcmp(expected, value, decoded.value.length) != 0 ||
        decoded.sequence != (uint64_t)index + 1) {
        check->corrupt++;
        return;
    }
    uint8_t *seen = &check->seen[(size_t)connection * scenario->records_per_connection + index];
    if (*seen) check->duplicates++;
    *seen = 1;
    if ((int64_t)index <= check->last_index[connection][topic]) check->out_of_order++;
    check->last_index[connection][topic] = index;
    check->records++;
}

static void verify_logs(const struct scenario *scenario, const char *directory,
                        struct verification *check) {
    for (uint32_t topic = 0; topic < TOPIC_COUNT; topic++) {
        char name[32];
        snprintf(name, sizeof(name), "e2e-%02u", topic);
        struct intake_consumer_options options = {.start = INTAKE_CONSUMER_START_OLDEST,
                                                  .ephemeral = true};
        struct intake_consumer *consumer = NULL;
        char why[INTAKE_CONSUMER_ERROR_BYTES];
        int result = intake_consumer_open(directory, name, "e2e-check", &options, &consumer, why,
                                          sizeof(why));
        CHECK(result == 0);
        if (result != 0) {
            fprintf(stderr, "open %s: %s\n", name, why);
            continue;
        }
        struct intake_consumer_record record;
        while ((result = intake_consumer_poll(consumer, &record)) == 1) {
            check->missed += record.missed;
            verify_record(scenario, check, topic, &record);
        }
        CHECK(result == 0);
        intake_consumer_close(consumer);
    }
}

static void run_scenario(const struct scenario *scenario) {
    fprintf(stderr, "scenario %s: %u connections x %u records\n", scenario->name,
            scenario->connection_count, scenario->records_per_connection);
    char directory[256];
    daemon_directory_make(directory, sizeof(directory), scenario->name);
    struct daemon daemon;
    REQUIRE(daemon_start(&daemon, directory, scenario->flags));

    struct producer_thread producers[CONNECTIONS_MAX];
    memset(producers, 0, sizeof(producers));
    for (uint32_t connection = 0; connection < scenario->connection_count; connection++) {
        producers[connection] = (struct producer_thread){
            .scenario = scenario, .address = daemon.address, .connection = connection};
        pthread_create(&producers[connection].thread, NULL, producer_main, &producers[connection]);
    }
    struct verification check;
    memset(&check, 0, sizeof(check));
    uint32_t exhausted = 0;
    for (uint32_t connection = 0; connection < scenario->connection_count; connection++) {
        struct producer_thread *producer = &producers[connection];
        pthread_join(producer->thread, NULL);
        if (producer->result != 0)
            fprintf(stderr, "producer %u: %d %s (acked %" PRIu64 ")\n", connection,
                    producer->result, producer->error, producer->acked);
        bool ended_for_buffers = scenario->may_exhaust && producer->result == -EPROTO &&
                                 strstr(producer->error, "RESOURCE_EXHAUSTED") &&
                                 strstr(producer->error, "--buffers");
        exhausted += ended_for_buffers;
        CHECK(producer->result == 0 || ended_for_buffers);
        /* Acks reached the last sequence, or (ended) the last record committed before the end. */
        CHECK(ended_for_buffers || producer->acked == scenario->records_per_connection);
        check.expected_per_connection[connection] = producer->acked;
    }
    if (scenario->may_exhaust) {
        fprintf(stderr, "scenario %s: %u of %u connections ended for lack of buffers\n",
                scenario->name, exhausted, scenario->connection_count);
        CHECK(exhausted < scenario->connection_count); /* the valve frees, it does not flatten */
    }

    /* Read while the daemon still runs: acknowledged means readable, now. */
    memset(check.last_index, 0xff, sizeof(check.last_index)); /* -1 */
    check.seen = calloc((size_t)scenario->connection_count * scenario->records_per_connection, 1);
    verify_logs(scenario, directory, &check);
    uint64_t expected = 0;
    uint64_t prefix_holes = 0;
    for (uint32_t connection = 0; connection < scenario->connection_count; connection++) {
        expected += check.expected_per_connection[connection];
        /* Exactly the acknowledged prefix: all of it, and nothing after it. */
        for (uint32_t index = 0; index < scenario->records_per_connection; index++)
            if (check.seen[(size_t)connection * scenario->records_per_connection + index] !=
                (index < check.expected_per_connection[connection]))
                prefix_holes++;
    }
    CHECK(prefix_holes == 0);
    fprintf(stderr,
            "scenario %s: read %" PRIu64 " of %" PRIu64 " records, %" PRIu64 " duplicates, %" PRIu64
            " out of order, %" PRIu64 " corrupt, %" PRIu64 " missed\n",
            scenario->name, check.records, expected, check.duplicates, check.out_of_order,
            check.corrupt, check.missed);
    CHECK(check.records == expected);
    CHECK(check.duplicates == 0);
    CHECK(check.out_of_order == 0);
    CHECK(check.corrupt == 0);
    CHECK(check.missed == 0);
    free(check.seen);

    int status = daemon_stop(&daemon);
    CHECK(status == 0);
    CHECK(strstr(daemon.log, "receive units all returned: yes") != NULL);
    CHECK(DAEMON_WORKER_COUNTER(&daemon, records_committed) == expected);
    CHECK(DAEMON_REACTOR_COUNTER(&daemon, connections_failed) == exhausted);
    /* Whether this run stalls depends on timing (test_delivery forces one); what must hold is
     * that every connection ended for lack of buffers was ended by the stall breaker. */
    CHECK(DAEMON_REACTOR_COUNTER(&daemon, stalls_broken) == exhausted);
    if (getenv("INTAKE_TEST_VERBOSE") || status != 0 ||
        DAEMON_WORKER_COUNTER(&daemon, records_committed) != expected)
        fputs(daemon.log, stderr);
    if (strcmp(scenario->name, "backpressure") == 0) {
        /* The scenario exists to take these paths; if it stops doing so it tests nothing. */
        /* Records of ~9 KiB over 16 buffers of 4 KiB: receives run out of buffers for sure.
         * Which admission limit bites first depends on timing, but one of them must. The
         * topic-queue-full path is forced deterministically by test_delivery's slow consumer. */
        CHECK(DAEMON_REACTOR_COUNTER(&daemon, pauses_out_of_units) > 0);
        CHECK(DAEMON_REACTOR_COUNTER(&daemon, stalls_broken) == 0);
        CHECK(DAEMON_REACTOR_COUNTER(&daemon, pauses_ack_window) +
                  DAEMON_REACTOR_COUNTER(&daemon, pauses_record_pool) +
                  DAEMON_REACTOR_COUNTER(&daemon, pauses_topic_queue) >
              0);
    }
    daemon_directory_remove(directory);
}

int main(void) {
    static const char *const volume_flags[] = {
        "--reactors", "2", "--workers", "2", "--backend", "pbuf", "--log-size", "32M", NULL};
    /* 64 buffers of 4 KiB hold the records 8 connections can have in progress (up to 9 KiB each,
     * plus a partly shared buffer at either end): every pause path, never a stall. */
    static const char *const backpressure_flags[] = {"--reactors",
                                                     "2",
                                                     "--workers",
                                                     "1",
                                                     "--backend",
                                                     "pbuf",
                                                     "--log-size",
                                                     "32M",
                                                     "--buffers",
                                                     "64",
                                                     "--buffer-size",
                                                     "4K",
                                                     "--topic-queue",
                                                     "2",
                                                     "--records-per-reactor",
                                                     "64",
                                                     "--ack-window",
                                                     "16",
                                                     "--max-frame",
                                                     "64K",
                                                     NULL};
    /* 4 buffers of 4 KiB for 8 connections sending records of up to 9 KiB: must stall. */
    static const char *const starved_flags[] = {
        "--reactors", "1", "--workers",     "1",  "--backend",   "pbuf", "--log-size", "32M",
        "--buffers",  "4", "--buffer-size", "4K", "--max-frame", "64K",  NULL};
    struct scenario volume = {"volume", 8, 125000, 48, volume_flags, false};
    struct scenario backpressure = {"backpressure", 8, 5000, 9000, backpressure_flags, false};
    struct scenario starved = {"starved", 8, 2000, 9000, starved_flags, true};
    run_scenario(&volume);
    run_scenario(&backpressure);
    run_scenario(&starved);
    return test_finish();
}
