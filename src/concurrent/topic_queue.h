/*
 * topic_queue.h: the bounded, lock-free queue of record descriptors feeding one topic's worker.
 *
 * Many producers (every reactor may route records to any topic), one consumer (the worker that
 * owns the topic). Capacity is a power of two fixed at init. Push never blocks: a full queue
 * returns TOPIC_QUEUE_FULL and the reactor pauses the connection (TCP then pushes back on the
 * producer). Per producer, records come out in the order they went in, which is what keeps a
 * connection's records ordered within a topic. Based on per-slot sequence numbers (the classic
 * bounded MPMC array queue design), so no producer ever waits for another to finish.
 */
#ifndef INTAKE_TOPIC_QUEUE_H
#define INTAKE_TOPIC_QUEUE_H

#include <stdatomic.h>
#include <stdint.h>

#include "common.h"
#include "record.h"

enum topic_queue_result {
    TOPIC_QUEUE_OK = 0,
    TOPIC_QUEUE_FULL = 1, /* backpressure, not an error */
};

struct topic_queue_slot {
    _Atomic uint64_t sequence;
    struct record *record;
};

struct topic_queue {
    INTAKE_ALIGNED_CACHE_LINE _Atomic uint64_t enqueue_position; /* producers */
    INTAKE_ALIGNED_CACHE_LINE uint64_t dequeue_position;         /* the one consumer */
    INTAKE_ALIGNED_CACHE_LINE struct topic_queue_slot *slots;
    uint64_t mask;
};

int topic_queue_init(struct topic_queue *queue, uint32_t capacity) INTAKE_MUST_CHECK;
void topic_queue_destroy(struct topic_queue *queue);

/* Any thread. */
enum topic_queue_result topic_queue_push(struct topic_queue *queue,
                                         struct record *record) INTAKE_MUST_CHECK;
/* The owning worker only. Returns NULL when empty (including while a producer that claimed the
 * next slot has not published it yet: the consumer never waits on a producer). */
struct record *topic_queue_pop(struct topic_queue *queue);
/* The owning worker only: the record `ahead` places after the next one to pop (0: the next),
 * without taking it, or NULL when not published yet (or `ahead` is past the capacity). For prefetching: the record stays in the
 * queue, and the pointer stays valid until the worker pops it. */
struct record *topic_queue_peek(struct topic_queue *queue, uint32_t ahead);
/* Approximate, any thread (for stats and sleeping decisions). */
uint64_t topic_queue_length(struct topic_queue *queue);

#endif
