/*
 * topic_queue.c: the bounded MPSC queue of record descriptors feeding one topic's worker
 * (see topic_queue.h). Producers: any reactor thread. Consumer: the topic's worker only.
 *
 * Per-slot sequence numbers (Vyukov's bounded array queue). Slot i starts with sequence i.
 *   - sequence == position:            free for the producer that claims `position`;
 *   - sequence == position + 1:        holds the record pushed at `position`, ready to pop;
 *   - sequence == position + capacity: popped, free for the producer one lap later.
 * Each slot stores its sequence minus its own index, so the starting state is all zero bytes:
 * the slots are a fresh anonymous mapping, and a topic's queue costs resident memory only once
 * the topic is used (the daemon sizes queues for --topics-max topics at startup).
 * A producer claims a position by compare-and-swap on enqueue_position, writes the record, then
 * release-stores the slot's sequence. No producer waits for another, and the consumer never waits
 * for a producer: a claimed-but-unpublished slot reads as empty.
 */
#include "topic_queue.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

/* The slot's sequence, from what it stores (sequence minus the slot's index). */
static uint64_t topic_queue_slot_sequence_load(const struct topic_queue *queue, uint64_t position,
                                               struct topic_queue_slot *slot) {
    return atomic_load_explicit(&slot->sequence, memory_order_acquire) + (position & queue->mask);
}

static void topic_queue_slot_sequence_store(const struct topic_queue *queue, uint64_t position,
                                            struct topic_queue_slot *slot, uint64_t sequence) {
    atomic_store_explicit(&slot->sequence, sequence - (position & queue->mask),
                          memory_order_release);
}

int topic_queue_init(struct topic_queue *queue, uint32_t capacity) {
    /* Positions map to slots with a mask, so the capacity must be a power of two. */
    INTAKE_ASSERT(intake_is_power_of_two(capacity));
    memset(queue, 0, sizeof(*queue));
    /* Zero pages are the empty queue: nothing is written here. */
    void *slots = mmap(NULL, (size_t)capacity * sizeof(struct topic_queue_slot),
                       PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (slots == MAP_FAILED) return -ENOMEM;
    atomic_init(&queue->enqueue_position, 0);
    queue->dequeue_position = 0;
    queue->slots = slots;
    queue->mask = capacity - 1;
    return 0;
}

void topic_queue_destroy(struct topic_queue *queue) {
    if (queue->slots != NULL)
        munmap(queue->slots, (size_t)(queue->mask + 1) * sizeof(struct topic_queue_slot));
    memset(queue, 0, sizeof(*queue));
}

enum topic_queue_result topic_queue_push(struct topic_queue *queue, struct record *record) {
    INTAKE_ASSERT(record != NULL);
    INTAKE_ASSERT(queue->slots != NULL);
    /* Relaxed: the position is only a guess until the compare-and-swap below confirms it. */
    uint64_t position = atomic_load_explicit(&queue->enqueue_position, memory_order_relaxed);
    for (;;) {
        struct topic_queue_slot *slot = &queue->slots[position & queue->mask];
        /* Acquire: pairs with the consumer's release store after it read slot->record, so our
         * write of slot->record below cannot overtake its read of the previous lap's record. */
        uint64_t sequence = topic_queue_slot_sequence_load(queue, position, slot);
        int64_t difference = (int64_t)(sequence - position);
        if (difference == 0) {
            /* Relaxed: the CAS only arbitrates ownership of the position among producers; the
             * record itself is published by the release store of the slot's sequence. */
            if (atomic_compare_exchange_weak_explicit(&queue->enqueue_position, &position,
                                                      position + 1, memory_order_relaxed,
                                                      memory_order_relaxed)) {
                slot->record = record;
                /* Release: publishes slot->record (and everything the reactor wrote into the
                 * record) to the consumer's acquire load of this sequence. */
                topic_queue_slot_sequence_store(queue, position, slot, position + 1);
                return TOPIC_QUEUE_OK;
            }
            /* A failed CAS reloaded `position`; try the slot it now names. */
        } else if (difference < 0) {
            /* The slot still holds the record from one lap ago: the queue is full. */
            return TOPIC_QUEUE_FULL;
        } else {
            /* Another producer claimed this position first; catch up. */
            position = atomic_load_explicit(&queue->enqueue_position, memory_order_relaxed);
        }
    }
}

struct record *topic_queue_pop(struct topic_queue *queue) {
    INTAKE_ASSERT(queue->slots != NULL);
    uint64_t position = queue->dequeue_position;
    struct topic_queue_slot *slot = &queue->slots[position & queue->mask];
    /* Acquire: pairs with the producer's release store, making slot->record and the record's
     * contents visible here. */
    uint64_t sequence = topic_queue_slot_sequence_load(queue, position, slot);
    if (sequence != position + 1) {
        /* Empty, or claimed by a producer that has not published yet: never wait on it. */
        INTAKE_ASSERT((int64_t)(sequence - (position + 1)) < 0);
        return NULL;
    }
    struct record *record = slot->record;
    INTAKE_ASSERT(record != NULL);
    /* Release: tells the producer one lap ahead that our read of slot->record is done and the
     * slot may be overwritten. */
    topic_queue_slot_sequence_store(queue, position, slot, position + queue->mask + 1);
    /* dequeue_position is a plain field owned by this thread; the relaxed atomic store only lets
     * topic_queue_length read it from other threads without a data race. */
    __atomic_store_n(&queue->dequeue_position, position + 1, __ATOMIC_RELAXED);
    return record;
}

struct record *topic_queue_peek(struct topic_queue *queue, uint32_t ahead) {
    INTAKE_ASSERT(queue->slots != NULL);
    /* Beyond a small queue's capacity there is nothing to peek at. */
    if (ahead > queue->mask) return NULL;
    uint64_t position = queue->dequeue_position + ahead;
    struct topic_queue_slot *slot = &queue->slots[position & queue->mask];
    /* Acquire: as in topic_queue_pop, slot->record is the published one. Only this thread
     * frees slots (by popping), so the record cannot change under us. */
    uint64_t sequence = topic_queue_slot_sequence_load(queue, position, slot);
    if (sequence != position + 1) return NULL;
    return slot->record;
}

uint64_t topic_queue_length(struct topic_queue *queue) {
    /* Relaxed: an approximation for stats and sleep decisions; it publishes nothing. Read the
     * consumer side first so the difference cannot go negative from a later dequeue. */
    uint64_t dequeued = __atomic_load_n(&queue->dequeue_position, __ATOMIC_RELAXED);
    uint64_t enqueued = atomic_load_explicit(&queue->enqueue_position, memory_order_relaxed);
    if (enqueued < dequeued) return 0;
    uint64_t length = enqueued - dequeued;
    return length > queue->mask + 1 ? queue->mask + 1 : length;
}
