/*
 * ack_window.c: cumulative acks from out-of-order commits (see ack_window.h). Reactor thread.
 */
#include "ack_window.h"

#include <string.h>

enum { SLOT_IN_FLIGHT = 0, SLOT_COMMITTED = 1, SLOT_FAILED = 2 };

void ack_window_init(struct ack_window *window, uint64_t *sequences, uint8_t *committed,
                     uint32_t capacity) {
    INTAKE_ASSERT(intake_is_power_of_two(capacity));
    INTAKE_ASSERT(sequences != NULL && committed != NULL);
    memset(window, 0, sizeof(*window));
    window->sequences = sequences;
    window->committed = committed;
    window->capacity = capacity;
}

uint32_t ack_window_admit(struct ack_window *window, uint64_t sequence) {
    INTAKE_ASSERT(!ack_window_is_full(window));
    uint32_t position = window->tail++;
    uint32_t index = position & (window->capacity - 1);
    window->sequences[index] = sequence;
    window->committed[index] = SLOT_IN_FLIGHT;
    return position;
}

bool ack_window_has_returned(const struct ack_window *window, uint32_t position) {
    /* Outside [head, tail): the head passed it, so it came back. */
    if (position - window->head >= window->tail - window->head) return true;
    return window->committed[position & (window->capacity - 1)] != SLOT_IN_FLIGHT;
}

bool ack_window_complete(struct ack_window *window, uint32_t position, bool committed) {
    /* The position must be inside [head, tail): unsigned distances handle wrap-around. */
    INTAKE_ASSERT(position - window->head < window->tail - window->head);
    uint32_t index = position & (window->capacity - 1);
    INTAKE_ASSERT(window->committed[index] == SLOT_IN_FLIGHT);
    window->committed[index] = committed ? SLOT_COMMITTED : SLOT_FAILED;

    uint64_t before = window->ack_sequence;
    while (window->head != window->tail) {
        uint32_t head_index = window->head & (window->capacity - 1);
        uint8_t state = window->committed[head_index];
        if (state == SLOT_IN_FLIGHT) break;
        /* A failed record is passed too (so the window drains), but it freezes the ack: nothing
         * from it on may be reported committed. */
        if (state == SLOT_FAILED) window->failed = true;
        uint64_t sequence = window->sequences[head_index];
        if (!window->failed && sequence != 0 && sequence > window->ack_sequence)
            window->ack_sequence = sequence;
        window->head++;
    }
    return window->ack_sequence != before;
}
