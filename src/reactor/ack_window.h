/*
 * ack_window.h: per-connection bookkeeping that turns out-of-order commits into cumulative acks.
 *
 * A connection's records go to different topics, owned by different workers, so they are
 * committed in any order. The window remembers, in arrival order, each admitted record's
 * producer sequence and whether it is committed. The cumulative ack is the highest sequence
 * such that it and every record before it on the connection are committed. Records with
 * sequence 0 ask for no ack but still hold the line: a later record is not acked before them.
 *
 * Consecutive records with sequence 0 share one position (a run): the position counts the
 * records of the run still out, and is passed once none is. Nothing in the ack depends on the
 * order inside a run, so a producer that asks for no acks uses one position per run, not one
 * per record, and never fills the window. A record with a sequence always takes a position of
 * its own; a run is closed by the next such record, and holds at most ACK_WINDOW_RUN_MAX.
 *
 * Capacity is fixed (a power of two); a full window is backpressure: the reactor stops reading
 * the connection until commits come back. Owned by the connection's reactor thread only.
 */
#ifndef INTAKE_ACK_WINDOW_H
#define INTAKE_ACK_WINDOW_H

#include <stdbool.h>
#include <stdint.h>

#include "common.h"

/* A position's state: records still out in its low bits, and a flag once one came back failed. */
#define ACK_WINDOW_FAILED  0x8000u
#define ACK_WINDOW_RUN_MAX 0x7fffu

struct ack_window {
    uint64_t *sequences;   /* capacity entries: the producer sequence at each position */
    uint16_t *states;      /* capacity entries: records out (bits 0-14), ACK_WINDOW_FAILED */
    uint32_t capacity;     /* power of two */
    uint32_t head;         /* oldest not yet passed (position, wraps freely) */
    uint32_t tail;         /* next new position */
    uint64_t ack_sequence; /* cumulative ack: highest passed nonzero sequence, never decreases */
    bool failed;           /* a record came back not committed: nothing at or after it is acked */
};

/* `sequences` and `states` are caller-provided arrays of `capacity` entries (the reactor
 * carves them from one region sized at startup). */
void ack_window_init(struct ack_window *window, uint64_t *sequences, uint16_t *states,
                     uint32_t capacity);
/* Positions not yet passed by the head (0 exactly when every admitted record came back). */
static inline uint32_t ack_window_length(const struct ack_window *window) {
    return window->tail - window->head;
}
/* The position a record with `sequence` would get: the open run's for sequence 0 when there is
 * one with room, else a new one (tail). */
static inline uint32_t ack_window_next_position(const struct ack_window *window,
                                                uint64_t sequence) {
    if (sequence == 0 && window->tail != window->head) {
        uint32_t last = window->tail - 1;
        uint32_t index = last & (window->capacity - 1);
        if (window->sequences[index] == 0 &&
            (window->states[index] & ACK_WINDOW_RUN_MAX) < ACK_WINDOW_RUN_MAX)
            return last;
    }
    return window->tail;
}
/* Whether a record with `sequence` can be admitted now (false: backpressure). */
static inline bool ack_window_can_admit(const struct ack_window *window, uint64_t sequence) {
    return ack_window_next_position(window, sequence) != window->tail ||
           ack_window_length(window) < window->capacity;
}
/* True once every record admitted at `position` has come back (committed or failed). */
bool ack_window_has_returned(const struct ack_window *window, uint32_t position);
/* Admits a record; returns its position (ack_window_next_position's). Must be admissible. */
uint32_t ack_window_admit(struct ack_window *window, uint64_t sequence);
/* One record at `position` came back committed (true) or failed (false); once its position has
 * none out, the head advances over passed positions. Returns true when ack_sequence grew. */
bool ack_window_complete(struct ack_window *window, uint32_t position, bool committed);

#endif
