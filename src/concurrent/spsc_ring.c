/*
 * spsc_ring.c: the single-producer single-consumer ring of record pointers that carries finished
 * records from a worker back to their reactor (see spsc_ring.h). One producer thread (the worker)
 * and one consumer thread (the reactor) per ring.
 *
 * Positions only grow; the slot is position & mask. Each side keeps a cached copy of the other
 * side's position and reloads it (an acquire load, one cache-line transfer) only when the cached
 * value says it must: the producer when the ring looks full, the consumer when it looks empty.
 */
#include "spsc_ring.h"

#include <errno.h>
#include <string.h>

int spsc_ring_init(struct spsc_ring *ring, uint32_t capacity) {
    /* Positions map to entries with a mask, so the capacity must be a power of two. */
    INTAKE_ASSERT(intake_is_power_of_two(capacity));
    memset(ring, 0, sizeof(*ring));
    struct record **entries = calloc(capacity, sizeof(*entries));
    if (entries == NULL) return -ENOMEM;
    atomic_init(&ring->head, 0);
    atomic_init(&ring->tail, 0);
    ring->cached_head = 0;
    ring->cached_tail = 0;
    ring->entries = entries;
    ring->mask = capacity - 1;
    return 0;
}

void spsc_ring_destroy(struct spsc_ring *ring) {
    free(ring->entries);
    memset(ring, 0, sizeof(*ring));
}

void spsc_ring_push(struct spsc_ring *ring, struct record *record) {
    INTAKE_ASSERT(record != NULL);
    INTAKE_ASSERT(ring->entries != NULL);
    /* Relaxed: only this thread writes tail. */
    uint64_t tail = atomic_load_explicit(&ring->tail, memory_order_relaxed);
    if (tail - ring->cached_head > ring->mask) {
        /* Acquire: pairs with the consumer's release store of head, so its reads of the entries
         * it consumed happen before we overwrite them. */
        ring->cached_head = atomic_load_explicit(&ring->head, memory_order_acquire);
    }
    /* The ring holds at least as many entries as records can exist, so it never fills; a full
     * ring means a record is on two rings at once or the capacity was sized wrong. */
    INTAKE_ASSERT(tail - ring->cached_head <= ring->mask);
    ring->entries[tail & ring->mask] = record;
    /* Release: publishes the entry (and everything the worker wrote into the record) to the
     * consumer's acquire load of tail. */
    atomic_store_explicit(&ring->tail, tail + 1, memory_order_release);
}

void spsc_ring_push_batch(struct spsc_ring *ring, struct record *const *records, uint32_t count) {
    INTAKE_ASSERT(records != NULL || count == 0);
    INTAKE_ASSERT(ring->entries != NULL);
    if (count == 0) return;
    /* Relaxed: only this thread writes tail. */
    uint64_t tail = atomic_load_explicit(&ring->tail, memory_order_relaxed);
    if (tail + count - ring->cached_head > ring->mask + 1) {
        /* Acquire: as in spsc_ring_push, the consumer's reads of the entries it consumed
         * happen before we overwrite them. */
        ring->cached_head = atomic_load_explicit(&ring->head, memory_order_acquire);
    }
    /* Never full (see spsc_ring_push). */
    INTAKE_ASSERT(tail + count - ring->cached_head <= ring->mask + 1);
    for (uint32_t index = 0; index < count; index++) {
        INTAKE_ASSERT(records[index] != NULL);
        ring->entries[(tail + index) & ring->mask] = records[index];
    }
    /* Release: publishes the whole batch of entries (and everything the worker wrote into those
     * records) to the consumer's acquire load of tail; one store per batch. */
    atomic_store_explicit(&ring->tail, tail + count, memory_order_release);
}

uint32_t spsc_ring_pop_batch(struct spsc_ring *ring, struct record **out, uint32_t capacity) {
    INTAKE_ASSERT(out != NULL);
    INTAKE_ASSERT(ring->entries != NULL);
    /* Relaxed: only this thread writes head. */
    uint64_t head = atomic_load_explicit(&ring->head, memory_order_relaxed);
    uint64_t available = ring->cached_tail - head;
    if (available < capacity) {
        /* Acquire: pairs with the producer's release store of tail, making the entries up to
         * tail and the records they point to visible here. */
        ring->cached_tail = atomic_load_explicit(&ring->tail, memory_order_acquire);
        available = ring->cached_tail - head;
    }
    INTAKE_ASSERT(available <= ring->mask + 1);
    uint32_t count = available < capacity ? (uint32_t)available : capacity;
    if (count == 0) return 0;
    for (uint32_t index = 0; index < count; index++)
        out[index] = ring->entries[(head + index) & ring->mask];
    /* Release: tells the producer we are done reading these entries; published once per batch. */
    atomic_store_explicit(&ring->head, head + count, memory_order_release);
    return count;
}

bool spsc_ring_is_empty(struct spsc_ring *ring) {
    /* Approximate, publishes nothing. The acquire on head keeps the tail load after it, so the
     * tail we read is at least the head we read (a stale answer is allowed, head > tail is not). */
    uint64_t head = atomic_load_explicit(&ring->head, memory_order_acquire);
    uint64_t tail = atomic_load_explicit(&ring->tail, memory_order_relaxed);
    INTAKE_ASSERT(tail >= head);
    return head == tail;
}
