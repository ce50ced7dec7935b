/*
 * test_producer_window.c: the idempotent producer's window (src/client/producer_window.c)
 * against a model, with random operations as a producer and its connections would make them:
 * push records of random length while there is room, write random amounts of the unsent bytes,
 * release the oldest written ones (acks), fail unwritten ones, and rewind (a new connection).
 *
 * Checked after every step: no two retained records overlap in the ring and each lies inside
 * it; every retained record's bytes are still the pattern written at push; the unsent bytes
 * count equals the model's; the iovecs name exactly the unsent bytes, in order; a record that
 * does not fit is refused only when the ring truly has no place for it.
 *
 * intake-test: no-tsan (single-threaded model check)
 */
#include <string.h>

#include "harness.h"
#include "producer_internal.h"

#define MODEL_RECORDS 4096u

static uint8_t pattern_byte(uint64_t sequence, uint32_t index) {
    return (uint8_t)(sequence * 131u + index * 7u + 1u);
}

struct model {
    uint64_t written_bytes; /* of the unsent stream, since the last rewind */
};

/* Whether [offset, offset + length) overlaps a retained record. */
static bool overlaps(const struct producer_window *window, uint64_t offset, uint64_t length) {
    for (uint64_t index = window->first; index < window->end; index++) {
        const struct producer_window_record *record =
            &window->records[index % window->records_capacity];
        if (offset < (uint64_t)record->offset + record->length && record->offset < offset + length)
            return true;
    }
    return false;
}

static uint64_t check_window(const struct producer_window *window, uint64_t *bad_bytes) {
    uint64_t problems = 0;
    uint64_t unsent = 0;
    for (uint64_t index = window->first; index < window->end; index++) {
        const struct producer_window_record *record =
            &window->records[index % window->records_capacity];
        if ((uint64_t)record->offset + record->length > window->bytes_capacity) problems++;
        for (uint64_t other = index + 1; other < window->end; other++) {
            const struct producer_window_record *next =
                &window->records[other % window->records_capacity];
            if (record->offset < next->offset + next->length &&
                next->offset < record->offset + record->length)
                problems++;
        }
        for (uint32_t byte = 0; byte < record->length; byte++)
            if (window->bytes[record->offset + byte] != pattern_byte(record->sequence, byte))
                (*bad_bytes)++;
        if (index > window->sent) unsent += record->length;
        if (index == window->sent) unsent += record->length - window->sent_partial;
    }
    if (unsent != window->unsent_bytes) problems++;
    /* The iovecs: exactly the unsent bytes, in order. */
    struct iovec iov[64];
    int count = producer_window_unsent(window, iov, 64);
    uint64_t index = window->sent;
    uint32_t skip = window->sent_partial;
    uint64_t covered = 0;
    for (int vector = 0; vector < count; vector++) {
        const uint8_t *base = iov[vector].iov_base;
        size_t left = iov[vector].iov_len;
        while (left > 0 && index < window->end) {
            const struct producer_window_record *record =
                &window->records[index % window->records_capacity];
            if (base != window->bytes + record->offset + skip) problems++;
            size_t take = record->length - skip;
            if (take > left) take = left; /* only the last vector may end inside a record */
            base += take;
            left -= take;
            covered += take;
            skip = 0;
            index++;
        }
        if (left != 0) problems++;
    }
    if (count < 64 && covered != window->unsent_bytes) problems++;
    return problems;
}

static void run_model(uint64_t seed, uint32_t bytes, uint32_t records, uint32_t length_max) {
    struct producer_window window;
    REQUIRE(producer_window_init(&window, bytes, records) == 0);
    uint64_t state = seed;
    uint64_t next_sequence = 1;
    uint64_t problems = 0;
    uint64_t bad_bytes = 0;
    uint64_t pushed = 0;
    uint64_t refused_with_room = 0;
    uint64_t refused = 0;
    uint64_t highest_written = 0;
    uint64_t resent = 0;
    for (int step = 0; step < 20000; step++) {
        uint64_t choice = test_random_next(&state) % 100;
        if (choice < 45) {
            uint32_t length = 1 + (uint32_t)(test_random_next(&state) % length_max);
            int64_t offset = producer_window_room(&window, length);
            if (offset < 0) {
                refused++;
                /* Refused: the model's rule says there is no place that keeps the bytes in
                 * order (after the newest record, or from 0 before the oldest when the ring
                 * has not wrapped yet, or between newest and oldest once it has). */
                bool empty = window.end == window.first;
                bool wrapped = !empty && window.byte_tail <= window.byte_head;
                bool place = empty ||
                             (!wrapped && (window.byte_tail + (uint64_t)length <= bytes ||
                                           length <= window.byte_head)) ||
                             (wrapped && window.byte_tail + (uint64_t)length <= window.byte_head);
                if (producer_window_count(&window) < window.records_capacity && place)
                    refused_with_room++;
                continue;
            }
            if (overlaps(&window, (uint64_t)offset, length)) problems++;
            struct producer_window_record record = {.sequence = next_sequence++, .length = length};
            for (uint32_t byte = 0; byte < length; byte++)
                window.bytes[offset + byte] = pattern_byte(record.sequence, byte);
            producer_window_push(&window, (uint32_t)offset, &record);
            pushed++;
        } else if (choice < 75) {
            if (window.unsent_bytes == 0) continue;
            size_t written = 1 + (size_t)(test_random_next(&state) % window.unsent_bytes);
            producer_window_advance(&window, written, &highest_written, &resent);
        } else if (choice < 95) {
            /* An ack: release fully written records from the oldest. */
            uint64_t releasable = window.sent - window.first;
            uint64_t release = releasable ? test_random_next(&state) % (releasable + 1) : 0;
            while (release-- > 0) producer_window_pop(&window);
            /* A failure or timeout of an unwritten oldest record. */
            if (choice == 94 && window.end > window.first && window.sent == window.first &&
                window.sent_partial == 0)
                producer_window_pop(&window);
        } else {
            producer_window_rewind(&window);
        }
        problems += check_window(&window, &bad_bytes);
    }
    printf("window %u bytes, %u records, records up to %u bytes: %llu pushed, %llu resent\n", bytes,
           records, length_max, (unsigned long long)pushed, (unsigned long long)resent);
    CHECK(problems == 0);
    CHECK(bad_bytes == 0);
    CHECK(refused_with_room == 0);
    CHECK(refused > 0);
    CHECK(pushed > 1000);
    producer_window_free(&window);
}

int main(void) {
    run_model(1, 4096, 64, 700);
    run_model(2, 8192, 16, 100);  /* the record count is the limit */
    run_model(3, 1000, 512, 999); /* records near the ring's size */
    run_model(4, 16384, MODEL_RECORDS, 3000);
    return test_finish();
}
