/*
 * test_ack_window.c: the ack window (src/reactor/ack_window.h), single-threaded.
 *
 * Cumulative acks from out-of-order commits; runs of sequence-0 records sharing one position (a
 * producer without acks never fills the window); a failure freezing the ack; and a randomized
 * check against a plain model that keeps one entry per record.
 *
 * intake-test: no-tsan (single-threaded pure code)
 */
#include <stdlib.h>
#include <string.h>

#include "ack_window.h"
#include "harness.h"

#define CAPACITY 8

struct fixture {
    struct ack_window window;
    uint64_t sequences[CAPACITY];
    uint16_t states[CAPACITY];
};

static void fixture_init(struct fixture *fixture) {
    memset(fixture, 0, sizeof(*fixture));
    ack_window_init(&fixture->window, fixture->sequences, fixture->states, CAPACITY);
}

static void test_out_of_order_commits(void) {
    struct fixture f;
    fixture_init(&f);
    uint32_t first = ack_window_admit(&f.window, 1);
    uint32_t second = ack_window_admit(&f.window, 2);
    uint32_t third = ack_window_admit(&f.window, 3);
    CHECK(first != second && second != third);
    CHECK(!ack_window_complete(&f.window, third, true)); /* 1 and 2 still out */
    CHECK(f.window.ack_sequence == 0);
    CHECK(ack_window_complete(&f.window, first, true));
    CHECK(f.window.ack_sequence == 1);
    CHECK(ack_window_complete(&f.window, second, true));
    CHECK(f.window.ack_sequence == 3);
    CHECK(ack_window_length(&f.window) == 0);
}

/* Sequence-0 records share the open run's position: thousands fit in a window of 8. */
static void test_runs_never_fill(void) {
    struct fixture f;
    fixture_init(&f);
    enum { RECORDS = 5000 };
    static uint32_t positions[RECORDS];
    for (uint32_t index = 0; index < RECORDS; index++) {
        CHECK(ack_window_can_admit(&f.window, 0));
        positions[index] = ack_window_admit(&f.window, 0);
    }
    CHECK(ack_window_length(&f.window) == 1);
    CHECK(positions[0] == positions[RECORDS - 1]);
    /* A numbered record closes the run; the next sequence-0 record opens a new one. */
    uint32_t numbered = ack_window_admit(&f.window, 7);
    uint32_t next_run = ack_window_admit(&f.window, 0);
    CHECK(numbered != positions[0] && next_run != numbered);
    CHECK(ack_window_length(&f.window) == 3);
    CHECK(!ack_window_complete(&f.window, numbered, true));
    for (uint32_t index = 0; index + 1 < RECORDS; index++) {
        CHECK(!ack_window_has_returned(&f.window, positions[0]));
        CHECK(!ack_window_complete(&f.window, positions[index], true));
    }
    /* The run's last record back: the head passes the run and the numbered record. */
    CHECK(ack_window_complete(&f.window, positions[RECORDS - 1], true));
    CHECK(ack_window_has_returned(&f.window, positions[0]));
    CHECK(f.window.ack_sequence == 7);
    CHECK(ack_window_length(&f.window) == 1);
    CHECK(!ack_window_complete(&f.window, next_run, true));
    CHECK(ack_window_length(&f.window) == 0);
}

/* Numbered records each take a position, so the window fills and pushes back. */
static void test_numbered_fill(void) {
    struct fixture f;
    fixture_init(&f);
    uint32_t positions[CAPACITY];
    for (uint32_t index = 0; index < CAPACITY; index++)
        positions[index] = ack_window_admit(&f.window, index + 1);
    CHECK(!ack_window_can_admit(&f.window, CAPACITY + 1));
    /* The last position holds a numbered record: a sequence-0 record cannot join it either. */
    CHECK(!ack_window_can_admit(&f.window, 0));
    CHECK(ack_window_complete(&f.window, positions[0], true));
    CHECK(ack_window_can_admit(&f.window, 0));
}

/* A failed record in a run freezes the ack for everything after it. */
static void test_failure_in_run(void) {
    struct fixture f;
    fixture_init(&f);
    uint32_t one = ack_window_admit(&f.window, 1);
    uint32_t run = ack_window_admit(&f.window, 0);
    CHECK(ack_window_admit(&f.window, 0) == run);
    uint32_t two = ack_window_admit(&f.window, 2);
    CHECK(ack_window_complete(&f.window, one, true));
    CHECK(f.window.ack_sequence == 1);
    CHECK(!ack_window_complete(&f.window, run, false));
    CHECK(!ack_window_complete(&f.window, run, true));
    CHECK(f.window.failed);
    CHECK(!ack_window_complete(&f.window, two, true));
    CHECK(f.window.ack_sequence == 1);
    CHECK(ack_window_length(&f.window) == 0);
}

/* Random admits and out-of-order completions against a model with one entry per record: the
 * cumulative ack is the highest nonzero sequence with everything before it back. */
static void test_against_model(void) {
    enum { STEPS = 200000, OUT_MAX = 64 };
    struct fixture f;
    fixture_init(&f);
    static uint64_t model_sequences[STEPS];
    static bool model_back[STEPS];
    static uint32_t model_positions[STEPS];
    uint32_t out[OUT_MAX];
    uint32_t out_count = 0, admitted = 0, model_head = 0;
    uint64_t model_ack = 0, next_sequence = 1;
    srand(12345);
    for (uint32_t step = 0; step < STEPS && admitted < STEPS; step++) {
        bool admit = out_count == 0 || (out_count < OUT_MAX && rand() % 2 == 0);
        if (admit) {
            uint64_t sequence = rand() % 3 == 0 ? next_sequence++ : 0;
            if (!ack_window_can_admit(&f.window, sequence)) admit = false;
            if (admit) {
                model_sequences[admitted] = sequence;
                model_back[admitted] = false;
                model_positions[admitted] = ack_window_admit(&f.window, sequence);
                out[out_count++] = admitted++;
            }
        }
        if (!admit) {
            uint32_t pick = (uint32_t)rand() % out_count;
            uint32_t record = out[pick];
            out[pick] = out[--out_count];
            model_back[record] = true;
            ack_window_complete(&f.window, model_positions[record], true);
            while (model_head < admitted && model_back[model_head]) {
                if (model_sequences[model_head] != 0) model_ack = model_sequences[model_head];
                model_head++;
            }
            CHECK(f.window.ack_sequence == model_ack);
        }
        CHECK((ack_window_length(&f.window) == 0) == (out_count == 0));
    }
}

int main(void) {
    test_out_of_order_commits();
    test_runs_never_fill();
    test_numbered_fill();
    test_failure_in_run();
    test_against_model();
    return test_finish();
}
