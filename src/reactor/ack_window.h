/*
 * ack_window.h: per-connection bookkeeping that turns out-of-order commits into cumulative acks.
 *
 * A connection's records go to different topics, owned by different workers, so they are
 * committed in any order. The window remembers, in arrival order, each admitted record's
 * producer sequence and whether it is committed. The cumulative ack is the highest sequence
 * such that it and every record before it on the connection are committed. Records with
 * sequence 0 ask for no ack but still hold the line: a later record is not acked before them.
 *
 * Capacity is fixed (a power of two); a full window is backpressure: the reactor stops reading
 * the connection until commits come back. Owned by the connection's reactor thread only.
 */
#ifndef INTAKE_ACK_WINDOW_H
#define INTAKE_ACK_WINDOW_H

#include <stdbool.h>
#include <stdint.h>

#include "common.h"

struct ack_window {
    uint64_t *sequences;   /* capacity entries: each admitted record's producer sequence */
    uint8_t *committed;    /* capacity entries: 0 in flight, 1 committed, 2 failed */
    uint32_t capacity;     /* power of two */
    uint32_t head;         /* oldest not yet passed (position, wraps freely) */
    uint32_t tail;         /* next position to admit */
    uint64_t ack_sequence; /* cumulative ack: highest passed nonzero sequence, never decreases */
    bool failed;           /* a record came back not committed: nothing at or after it is acked */
};

/* `sequences` and `committed` are caller-provided arrays of `capacity` entries (the reactor
 * carves them from one region sized at startup). */
void ack_window_init(struct ack_window *window, uint64_t *sequences, uint8_t *committed,
                     uint32_t capacity);
static inline bool ack_window_is_full(const struct ack_window *window) {
    return window->tail - window->head == window->capacity;
}
/* Records admitted and not yet passed by the head (committed out of order ones included). */
static inline uint32_t ack_window_length(const struct ack_window *window) {
    return window->tail - window->head;
}
/* True once the record admitted at `position` has come back (committed or failed). */
bool ack_window_has_returned(const struct ack_window *window, uint32_t position);
/* Admits a record; returns its position. The window must not be full. */
uint32_t ack_window_admit(struct ack_window *window, uint64_t sequence);
/* Marks the record at `position` committed (true) or failed (false), then advances the head
 * over committed records. Returns true when ack_sequence grew. */
bool ack_window_complete(struct ack_window *window, uint32_t position, bool committed);

#endif
