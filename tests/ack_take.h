/*
 * ack_take.h: the tests' one way to take a delimited Ack off the front of a receive buffer,
 * decoded with the wire layer's ack_frame_decode (what the producer library uses).
 */
#ifndef INTAKE_TEST_ACK_TAKE_H
#define INTAKE_TEST_ACK_TAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ack_frame.h"
#include "harness.h"

/* Decodes one complete Ack from buffer[0..*length) (capacity: the buffer's size) and removes it;
 * false when none is complete yet. intaked must never send an unreadable one. The detail is cut
 * to detail_capacity - 1 bytes and NUL-terminated. */
static inline bool ack_take_from(uint8_t *buffer, size_t *length, size_t capacity,
                                 uint64_t *sequence, uint32_t *status, char *detail,
                                 size_t detail_capacity) {
    struct ack_frame_decoded decoded;
    enum ack_frame_result result = ack_frame_decode(buffer, *length, capacity, &decoded);
    if (result == ACK_FRAME_NEED_MORE) return false;
    /* Counted only when it fails: stream_client.h takes Acks on threads of its own, and the
     * harness's counters belong to the main thread. */
    if (result != ACK_FRAME_OK) {
        test_check_failed("ack_frame_decode(...) == ACK_FRAME_OK", __FILE__, __LINE__);
        exit(test_finish());
    }
    *sequence = decoded.sequence;
    *status = decoded.status;
    size_t detail_bytes = strnlen(decoded.detail, detail_capacity - 1);
    memcpy(detail, decoded.detail, detail_bytes);
    memset(detail + detail_bytes, 0, detail_capacity - detail_bytes);
    memmove(buffer, buffer + decoded.frame_bytes, *length - decoded.frame_bytes);
    *length -= decoded.frame_bytes;
    return true;
}

#endif
