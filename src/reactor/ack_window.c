/*
 * ack_window.c: cumulative acks from out-of-order commits (see ack_window.h). Reactor thread.
 */
#include "ack_window.h"

#include <string.h>

static uint32_t ack_window_out(uint16_t state) {
    return state & ACK_WINDOW_RUN_MAX;
}

void ack_window_init(struct ack_window *window, uint64_t *sequences, uint16_t *states,
                     uint32_t capacity) {
    INTAKE_ASSERT(intake_is_power_of_two(capacity));
    INTAKE_ASSERT(sequences != NULL && states != NULL);
    memset(window, 0, sizeof(*window));
    window->sequences = sequences;
    window->states = states;
    window->capacity = capacity;
}

uint32_t ack_window_admit(struct ack_window *window, uint64_t sequence) {
    INTAKE_ASSERT(ack_window_can_admit(window, sequence));
    uint32_t position = ack_window_next_position(window, sequence);
    uint32_t index = position & (window->capacity - 1);
    if (position != window->tail) {
        /* Joins the open run of sequence-0 records (it may have none out right now, if a
         * record before the run holds the head: it is then in flight again). */
        INTAKE_ASSERT(sequence == 0 && window->sequences[index] == 0);
        INTAKE_ASSERT(ack_window_out(window->states[index]) < ACK_WINDOW_RUN_MAX);
        window->states[index]++;
        return position;
    }
    window->tail++;
    window->sequences[index] = sequence;
    window->states[index] = 1;
    return position;
}

bool ack_window_has_returned(const struct ack_window *window, uint32_t position) {
    /* Outside [head, tail): the head passed it, so it came back. */
    if (position - window->head >= window->tail - window->head) return true;
    return ack_window_out(window->states[position & (window->capacity - 1)]) == 0;
}

bool ack_window_complete(struct ack_window *window, uint32_t position, bool committed) {
    /* The position must be inside [head, tail): unsigned distances handle wrap-around. */
    INTAKE_ASSERT(position - window->head < window->tail - window->head);
    uint32_t index = position & (window->capacity - 1);
    INTAKE_ASSERT(ack_window_out(window->states[index]) > 0);
    window->states[index]--;
    if (!committed) window->states[index] |= ACK_WINDOW_FAILED;
    if (ack_window_out(window->states[index]) != 0) return false;

    uint64_t before = window->ack_sequence;
    while (window->head != window->tail) {
        uint32_t head_index = window->head & (window->capacity - 1);
        uint16_t state = window->states[head_index];
        if (ack_window_out(state) != 0) break;
        /* A failed record is passed too (so the window drains), but it freezes the ack: nothing
         * from it on may be reported committed. */
        if (state & ACK_WINDOW_FAILED) window->failed = true;
        uint64_t sequence = window->sequences[head_index];
        if (!window->failed && sequence != 0 && sequence > window->ack_sequence)
            window->ack_sequence = sequence;
        window->head++;
    }
    return window->ack_sequence != before;
}
