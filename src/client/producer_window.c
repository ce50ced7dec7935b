/*
 * producer_window.c: the records an idempotent producer keeps until intake acknowledges them.
 * Runs on the caller's thread. Owns a byte ring (the encoded frames, written in place by the
 * encoder, so a record is encoded once and written from here on every connection) and a record
 * ring (sequence, place, deadline); both allocated at open, never resized.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "producer_internal.h"

int producer_window_init(struct producer_window *window, uint32_t bytes, uint32_t records) {
    INTAKE_ASSERT(bytes > 0);
    INTAKE_ASSERT(records > 0);
    memset(window, 0, sizeof(*window));
    window->bytes = malloc(bytes);
    window->records = calloc(records, sizeof(*window->records));
    if (window->bytes == NULL || window->records == NULL) {
        producer_window_free(window);
        return -ENOMEM;
    }
    window->bytes_capacity = bytes;
    window->records_capacity = records;
    return 0;
}

void producer_window_free(struct producer_window *window) {
    free(window->bytes);
    free(window->records);
    window->bytes = NULL;
    window->records = NULL;
}

int64_t producer_window_room(const struct producer_window *window, uint32_t length) {
    INTAKE_ASSERT(length > 0);
    if (producer_window_count(window) == window->records_capacity) return -1;
    if (length > window->bytes_capacity) return -1;
    if (window->end == window->first) return 0; /* empty: start over at 0 */
    uint32_t head = window->byte_head;
    uint32_t tail = window->byte_tail;
    if (head < tail) {
        /* Laid out as [head, tail): room after tail, else before head. */
        if (length <= window->bytes_capacity - tail) return tail;
        if (length <= head) return 0;
        return -1;
    }
    /* Wrapped: [head, end of ring) then [0, tail); room only between tail and head. */
    if (length <= head - tail) return tail;
    return -1;
}

void producer_window_push(struct producer_window *window, uint32_t offset,
                          const struct producer_window_record *record) {
    INTAKE_ASSERT(producer_window_count(window) < window->records_capacity);
    INTAKE_ASSERT((uint64_t)offset + record->length <= window->bytes_capacity);
    struct producer_window_record *slot = producer_window_at(window, window->end);
    *slot = *record;
    slot->offset = offset;
    if (window->end == window->first) window->byte_head = offset;
    window->byte_tail = offset + record->length;
    window->end++;
    window->unsent_bytes += record->length;
}

void producer_window_pop(struct producer_window *window) {
    INTAKE_ASSERT(window->end > window->first);
    INTAKE_ASSERT(window->sent > window->first || window->sent_partial == 0);
    struct producer_window_record *oldest = producer_window_at(window, window->first);
    if (window->sent == window->first) {
        /* Never written on this connection: it leaves the unsent bytes too. */
        INTAKE_ASSERT(window->unsent_bytes >= oldest->length);
        window->unsent_bytes -= oldest->length;
        window->sent++;
    }
    window->first++;
    if (window->first == window->end) {
        window->byte_head = 0;
        window->byte_tail = 0;
    } else {
        window->byte_head = producer_window_at(window, window->first)->offset;
    }
}

void producer_window_rewind(struct producer_window *window) {
    uint64_t total = 0;
    for (uint64_t index = window->first; index < window->end; index++)
        total += producer_window_at(window, index)->length;
    window->sent = window->first;
    window->sent_partial = 0;
    window->unsent_bytes = total;
}

int producer_window_unsent(const struct producer_window *window, struct iovec *iov, int capacity) {
    INTAKE_ASSERT(capacity > 0);
    int count = 0;
    for (uint64_t index = window->sent; index < window->end; index++) {
        const struct producer_window_record *record =
            &window->records[index % window->records_capacity];
        uint32_t skip = index == window->sent ? window->sent_partial : 0;
        uint8_t *base = window->bytes + record->offset + skip;
        size_t length = record->length - skip;
        if (count > 0 && (uint8_t *)iov[count - 1].iov_base + iov[count - 1].iov_len == base) {
            iov[count - 1].iov_len += length;
            continue;
        }
        if (count == capacity) break;
        iov[count].iov_base = base;
        iov[count].iov_len = length;
        count++;
    }
    return count;
}

uint32_t producer_window_advance(struct producer_window *window, size_t written,
                                 uint64_t *highest_written, uint64_t *resent) {
    INTAKE_ASSERT(written <= window->unsent_bytes);
    window->unsent_bytes -= written;
    uint32_t completed = 0;
    while (written > 0) {
        INTAKE_ASSERT(window->sent < window->end);
        struct producer_window_record *record = producer_window_at(window, window->sent);
        size_t left = record->length - window->sent_partial;
        if (written < left) {
            window->sent_partial += (uint32_t)written;
            break;
        }
        written -= left;
        window->sent_partial = 0;
        window->sent++;
        completed++;
        if (record->sequence <= *highest_written)
            (*resent)++;
        else
            *highest_written = record->sequence;
    }
    return completed;
}
