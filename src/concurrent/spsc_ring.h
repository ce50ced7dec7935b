/*
 * spsc_ring.h: a bounded single-producer single-consumer ring of record pointers.
 *
 * This is the return channel: one ring per (worker, reactor) pair carries finished records from
 * the worker back to the reactor that owns their receive buffers. Its capacity is at least the
 * reactor's record pool, and a record is on at most one ring at a time, so the ring can never
 * be full; push asserts that. Producer and consumer positions live on separate cache lines;
 * batched variants publish once per batch.
 */
#ifndef INTAKE_SPSC_RING_H
#define INTAKE_SPSC_RING_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common.h"
#include "record.h"

struct spsc_ring {
    INTAKE_ALIGNED_CACHE_LINE _Atomic uint64_t head; /* next to read; written by the consumer */
    uint64_t cached_tail;                            /* consumer's last view of tail */
    INTAKE_ALIGNED_CACHE_LINE _Atomic uint64_t tail; /* next to write; written by the producer */
    uint64_t cached_head;                            /* producer's last view of head */
    INTAKE_ALIGNED_CACHE_LINE struct record **entries;
    uint64_t mask;
};

int spsc_ring_init(struct spsc_ring *ring, uint32_t capacity) INTAKE_MUST_CHECK;
void spsc_ring_destroy(struct spsc_ring *ring);

/* Producer thread only. Asserts the ring has room (see the capacity argument above). */
void spsc_ring_push(struct spsc_ring *ring, struct record *record);
/* Producer thread only: `count` records with one release store of the tail. */
void spsc_ring_push_batch(struct spsc_ring *ring, struct record *const *records, uint32_t count);
/* Consumer thread only. Takes up to `capacity` records; returns how many. */
uint32_t spsc_ring_pop_batch(struct spsc_ring *ring, struct record **out, uint32_t capacity);
/* Any thread; approximate. */
bool spsc_ring_is_empty(struct spsc_ring *ring);

#endif
