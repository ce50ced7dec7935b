/*
 * producer_util.h: what the idempotent producer tests share (header-only, like daemon_util.h):
 * a delivery-report collector, the record values they send ("rec-<sequence>"), and a check of a
 * topic's log, read with the consumer library, against the sequences a producer sent.
 */
#ifndef INTAKE_PRODUCER_UTIL_H
#define INTAKE_PRODUCER_UTIL_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "harness.h"
#include "intake/consumer.h"
#include "intake/producer.h"

#define REPORTS_FAILED_KEPT 16

/* Delivery reports of one producer. Touched only on the producer's thread. */
struct reports {
    uint64_t ok;
    uint64_t rejected;
    uint64_t internal;
    uint64_t timed_out;
    uint64_t last_sequence;
    uint64_t order_errors; /* a report whose sequence is not above the previous one */
    uint64_t failed_sequences[REPORTS_FAILED_KEPT];
    uint32_t failed_count;
    char last_detail[256];
    char last_topic[256];
};

static void reports_collect(void *context, const struct intake_producer_delivery *report) {
    struct reports *reports = context;
    if (report->sequence <= reports->last_sequence) reports->order_errors++;
    reports->last_sequence = report->sequence;
    snprintf(reports->last_topic, sizeof(reports->last_topic), "%.*s", (int)report->topic_length,
             report->topic);
    if (report->status == INTAKE_DELIVERY_OK) {
        reports->ok++;
        return;
    }
    if (report->status == INTAKE_DELIVERY_REJECTED) reports->rejected++;
    if (report->status == INTAKE_DELIVERY_INTERNAL) reports->internal++;
    if (report->status == INTAKE_DELIVERY_TIMED_OUT) reports->timed_out++;
    if (reports->failed_count < REPORTS_FAILED_KEPT)
        reports->failed_sequences[reports->failed_count++] = report->sequence;
    snprintf(reports->last_detail, sizeof(reports->last_detail), "%s", report->detail);
}

/* Records' values are "rec-<sequence>", padded with '.' to a length that varies with the
 * sequence when producer_util_padding_max is set (up to that many bytes). */
static uint32_t producer_util_padding_max;

static size_t producer_util_value(uint64_t sequence, char *value, size_t capacity) {
    int length = snprintf(value, capacity, "rec-%" PRIu64, sequence);
    size_t total = (size_t)length;
    if (producer_util_padding_max > 0) {
        size_t padded = (size_t)((sequence * 7919u) % producer_util_padding_max);
        if (padded > capacity) padded = capacity;
        if (padded > total) {
            memset(value + total, '.', padded - total);
            total = padded;
        }
    }
    return total;
}

/* Sends one record whose value names its sequence; 0 or the send's error. The sequence the
 * producer assigned must be the one expected (last_sequence + 1). */
static int producer_util_send(struct intake_producer *producer, const char *topic,
                              uint64_t *sequence) {
    uint64_t expected = intake_producer_last_sequence(producer) + 1;
    static char value[1 << 16];
    size_t length = producer_util_value(expected, value, sizeof(value));
    int result = intake_producer_send(producer, topic, "k", 1, value, length, 0, sequence);
    if (result == 0 && *sequence != expected) return -ERANGE;
    return result;
}

/* Fields 3 (value) and 7 (producer_id) of an encoded Record, through the consumer library's
 * intake_record_parse; false when it does not parse. */
static bool producer_util_fields(const uint8_t *bytes, size_t length, const uint8_t **value,
                                 size_t *value_length, const uint8_t **id, size_t *id_length) {
    struct intake_record_view view = INTAKE_RECORD_VIEW_INIT;
    if (intake_record_parse(bytes, length, &view) != 0) return false;
    *value = view.value.bytes;
    *value_length = view.value.length;
    *id = view.producer_id.bytes;
    *id_length = view.producer_id.length;
    return true;
}

/* Reads `topic`'s whole log and compares the records of producer `id` with `expected` (the
 * sequences it sent to that topic, in send order): exactly once, in order, no gap, values
 * intact. Returns the number of that producer's records in the log. */
static uint64_t producer_util_check_log(const char *directory, const char *topic, const char *id,
                                        const uint64_t *expected, uint64_t expected_count) {
    struct intake_consumer_options options = {
        .start = INTAKE_CONSUMER_START_OLDEST, .start_offset = 0, .ephemeral = true};
    struct intake_consumer *consumer = NULL;
    char why[INTAKE_CONSUMER_ERROR_BYTES];
    int opened =
        intake_consumer_open(directory, topic, "check", &options, &consumer, why, sizeof(why));
    if (opened != 0) fprintf(stderr, "consumer open %s: %s\n", topic, why);
    REQUIRE(opened == 0);
    uint64_t found = 0;
    uint64_t mismatches = 0;
    uint64_t unparsed = 0;
    struct intake_consumer_record record;
    int polled;
    while ((polled = intake_consumer_poll(consumer, &record)) == 1) {
        const uint8_t *value = NULL;
        const uint8_t *record_id = NULL;
        size_t value_length = 0;
        size_t id_length = 0;
        if (!producer_util_fields(record.bytes, record.length, &value, &value_length, &record_id,
                                  &id_length)) {
            unparsed++;
            continue;
        }
        if (id_length != strlen(id) || memcmp(record_id, id, id_length) != 0) continue;
        static char wanted[1 << 16];
        size_t wanted_length = producer_util_value(record.sequence, wanted, sizeof(wanted));
        bool right = found < expected_count && record.sequence == expected[found] &&
                     value_length == wanted_length && memcmp(value, wanted, value_length) == 0;
        if (!right && mismatches++ == 0)
            fprintf(stderr,
                    "%s: record %" PRIu64 " of %s has sequence %" PRIu64 ", expected %" PRIu64 "\n",
                    topic, found, id, record.sequence,
                    found < expected_count ? expected[found] : 0);
        found++;
    }
    CHECK(polled == 0);
    CHECK(unparsed == 0);
    CHECK(intake_consumer_missed_total(consumer) == 0);
    if (found != expected_count)
        fprintf(stderr, "%s: %" PRIu64 " records of %s in the log, %" PRIu64 " sent\n", topic,
                found, id, expected_count);
    CHECK(found == expected_count);
    CHECK(mismatches == 0);
    intake_consumer_close(consumer);
    return found;
}

/* Records in `topic`'s log now (0 when it has no log yet). */
static inline uint64_t producer_util_count_logged(const char *directory, const char *topic) {
    struct intake_consumer_options options = {
        .start = INTAKE_CONSUMER_START_OLDEST, .start_offset = 0, .ephemeral = true};
    struct intake_consumer *consumer = NULL;
    if (intake_consumer_open(directory, topic, "count", &options, &consumer, NULL, 0) != 0)
        return 0;
    uint64_t found = 0;
    struct intake_consumer_record record;
    while (intake_consumer_poll(consumer, &record) == 1) found++;
    intake_consumer_close(consumer);
    return found;
}

/* Waits (up to timeout_ms) until the logs of `topics` hold `wanted` records together: a test
 * that needs intake to have committed what it sent waits for that, not for a fixed time, so a
 * slow (sanitizer, loaded) machine changes only how long it takes. Returns what they held. */
static inline uint64_t producer_util_wait_logged(const char *directory, const char *const *topics,
                                                 int topic_count, uint64_t wanted, int timeout_ms) {
    uint64_t found = 0;
    for (int waited = 0; waited <= timeout_ms; waited += 10) {
        found = 0;
        for (int index = 0; index < topic_count; index++)
            found += producer_util_count_logged(directory, topics[index]);
        if (found >= wanted) break;
        struct timespec pause = {0, 10 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    return found;
}

#endif
