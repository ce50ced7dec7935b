/*
 * doorbell.h: how one thread wakes another that may be asleep, with the handshake in one place.
 *
 * A doorbell has one owner (the thread that sleeps on it) and any number of ringers. The
 * Dekker-style handshake that makes a wake-up never lost:
 *   owner:  token = doorbell_arm(d)     (seq_cst store: "I may sleep")
 *           look at its inputs again     (queues, rings, flags)
 *           nothing there: sleep         (futex: doorbell_sleep(d, token, ...);
 *                                         eventfd: wait for its io_uring read of doorbell_fd)
 *           doorbell_disarm(d)
 *   ringer: publish its input first      (a release store: queue push, ring tail)
 *           doorbell_ring(d)             (seq_cst fence, then look at "armed")
 * Either the owner's re-check sees the input or the ringer sees the owner armed; both orders are
 * seq_cst, so one of the two always sees the other. A ring costs a syscall only when the owner is
 * armed, and only the first ringer pays it (it exchanges "armed" back to 0).
 *
 * Two kinds, chosen at init: FUTEX (a thread that blocks in doorbell_sleep: workers) and EVENTFD
 * (a thread whose io_uring waits on a read of the eventfd: reactors). Doorbells are owned by the
 * pipeline, which hands each thread its own and the ones it rings.
 */
#ifndef INTAKE_DOORBELL_H
#define INTAKE_DOORBELL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common.h"

enum doorbell_kind {
    DOORBELL_FUTEX = 1,   /* the owner sleeps in doorbell_sleep */
    DOORBELL_EVENTFD = 2, /* the owner's io_uring reads doorbell_fd */
};

struct doorbell {
    /* 1 while the owner may sleep; exchanged to 0 by the ringer that wakes it. */
    _Atomic uint32_t armed;
    /* FUTEX: the futex word, bumped by every ring that wakes. */
    _Atomic uint32_t sequence;
    int event_fd; /* EVENTFD: the descriptor the owner reads; -1 otherwise */
    enum doorbell_kind kind;
} INTAKE_ALIGNED_CACHE_LINE;
/* Arrays of doorbells (aligned_alloc in the pipeline) keep each on its own line. */
_Static_assert(sizeof(struct doorbell) % INTAKE_CACHE_LINE_BYTES == 0,
               "a doorbell fills whole cache lines");

/* Main thread, startup. Returns 0 or negative errno (eventfd creation). */
int doorbell_init(struct doorbell *doorbell, enum doorbell_kind kind) INTAKE_MUST_CHECK;
void doorbell_destroy(struct doorbell *doorbell);

/* Owner: announces that it may sleep. Returns the token doorbell_sleep compares against. */
uint32_t doorbell_arm(struct doorbell *doorbell);
/* Owner: awake again (also when it decided not to sleep after the re-check). */
void doorbell_disarm(struct doorbell *doorbell);
/* Owner, FUTEX kind: sleeps until a ring after `token` was taken, or `timeout_ns` passed
 * (0: no timeout). Returns at once when a ring came in between. */
void doorbell_sleep(struct doorbell *doorbell, uint32_t token, uint64_t timeout_ns);
/* Owner, FUTEX kind: the current token without arming (a timed wait that no ringer owes). */
uint32_t doorbell_token(const struct doorbell *doorbell);
/* Owner, EVENTFD kind: the descriptor its io_uring reads (8-byte reads). */
int doorbell_fd(const struct doorbell *doorbell);

/* Any thread, after publishing what the owner should see: wakes the owner if it is armed. */
void doorbell_ring(struct doorbell *doorbell);
/* Any thread: wakes the owner whether armed or not (stop, report requests). */
void doorbell_ring_always(struct doorbell *doorbell);

#endif
