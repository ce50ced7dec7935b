/*
 * test_topic_queue.c: the topic queue under concurrent producers.
 *
 * PRODUCERS threads push into one small queue (FULL happens constantly; producers retry) and the
 * main thread consumes, as a topic's worker would. Each producer owns a real record pool and gets
 * its records back through its own SPSC return ring, as a reactor does, so millions of records
 * flow through a few hundred descriptors. Each record carries its producer (connection_slot) and
 * that producer's counter (sequence): the consumer checks every record arrives exactly once and
 * in per-producer order. Run under ThreadSanitizer too.
 */
#include <pthread.h>
#include <sched.h>
#include <string.h>

#include "harness.h"
#include "record_pool.h"
#include "spsc_ring.h"
#include "topic_queue.h"

#define PRODUCERS      4
#define QUEUE_CAPACITY 64
#define POOL_CAPACITY  256
#define RETURN_BATCH   64
#ifdef INTAKE_SANITIZED
#define RECORDS_PER_PRODUCER 100000
#else
#define RECORDS_PER_PRODUCER 500000
#endif

struct producer {
    pthread_t thread;
    uint32_t index;
    struct topic_queue *queue;
    struct record_pool pool;
    struct spsc_ring returns; /* consumer -> this producer */
    uint64_t full_count;
};

/* Gives back whatever the consumer has returned; producer thread only. */
static void producer_reclaim(struct producer *producer) {
    struct record *batch[RETURN_BATCH];
    uint32_t count = spsc_ring_pop_batch(&producer->returns, batch, RETURN_BATCH);
    for (uint32_t index = 0; index < count; index++)
        record_pool_give(&producer->pool, batch[index]);
}

static void *producer_run(void *argument) {
    struct producer *producer = argument;
    for (uint64_t counter = 1; counter <= RECORDS_PER_PRODUCER; counter++) {
        struct record *record;
        while ((record = record_pool_take(&producer->pool)) == NULL) {
            producer_reclaim(producer);
            sched_yield();
        }
        record->connection_slot = producer->index;
        record->sequence = counter;
        while (topic_queue_push(producer->queue, record) == TOPIC_QUEUE_FULL) {
            producer->full_count++;
            producer_reclaim(producer);
            sched_yield();
        }
    }
    return NULL;
}

/* Pops everything; returns the number of ordering errors seen. */
static uint64_t consume(struct topic_queue *queue, struct producer *producers) {
    uint64_t expected_next[PRODUCERS];
    uint64_t errors = 0;
    uint64_t received = 0;
    for (uint32_t index = 0; index < PRODUCERS; index++) expected_next[index] = 1;
    while (received < (uint64_t)PRODUCERS * RECORDS_PER_PRODUCER) {
        /* As the worker prefetches: a record further down is read without being taken (under
         * TSan this checks that a peeked record's fields are published to us). */
        struct record *ahead = topic_queue_peek(queue, 2);
        if (ahead != NULL && ahead->connection_slot >= PRODUCERS) errors++;
        struct record *record = topic_queue_pop(queue);
        if (record == NULL) {
            sched_yield();
            continue;
        }
        received++;
        uint32_t producer_index = record->connection_slot;
        if (producer_index >= PRODUCERS) {
            errors++;
            continue;
        }
        /* Exactly once and in order: each producer's counters arrive as 1, 2, 3, ... */
        if (record->sequence != expected_next[producer_index]) errors++;
        expected_next[producer_index] = record->sequence + 1;
        spsc_ring_push(&producers[producer_index].returns, record);
    }
    for (uint32_t index = 0; index < PRODUCERS; index++)
        if (expected_next[index] != RECORDS_PER_PRODUCER + 1) errors++;
    return errors;
}

static void test_concurrent_producers(void) {
    struct topic_queue queue;
    REQUIRE(topic_queue_init(&queue, QUEUE_CAPACITY) == 0);
    struct producer producers[PRODUCERS];
    memset(producers, 0, sizeof(producers));
    for (uint32_t index = 0; index < PRODUCERS; index++) {
        producers[index].index = index;
        producers[index].queue = &queue;
        REQUIRE(record_pool_init(&producers[index].pool, POOL_CAPACITY, (uint16_t)index) == 0);
        /* At least the pool: the return ring can never fill. */
        REQUIRE(spsc_ring_init(&producers[index].returns, POOL_CAPACITY) == 0);
    }
    for (uint32_t index = 0; index < PRODUCERS; index++)
        REQUIRE(pthread_create(&producers[index].thread, NULL, producer_run, &producers[index]) ==
                0);
    uint64_t errors = consume(&queue, producers);
    uint64_t full_total = 0;
    for (uint32_t index = 0; index < PRODUCERS; index++) {
        REQUIRE(pthread_join(producers[index].thread, NULL) == 0);
        full_total += producers[index].full_count;
    }
    CHECK(errors == 0);
    CHECK(topic_queue_pop(&queue) == NULL);
    CHECK(topic_queue_length(&queue) == 0);
    /* The queue is far smaller than the traffic: backpressure must have been exercised. */
    CHECK(full_total > 0);
    for (uint32_t index = 0; index < PRODUCERS; index++) {
        while (!spsc_ring_is_empty(&producers[index].returns)) producer_reclaim(&producers[index]);
        CHECK(producers[index].pool.free_count == POOL_CAPACITY);
        spsc_ring_destroy(&producers[index].returns);
        record_pool_destroy(&producers[index].pool);
    }
    printf("topic queue: %u producers x %u records, %llu FULL retries\n", PRODUCERS,
           RECORDS_PER_PRODUCER, (unsigned long long)full_total);
    topic_queue_destroy(&queue);
}

/* Single thread: FIFO order, FULL exactly at capacity, wrap-around over many laps. */
static void test_single_thread_edges(void) {
    struct topic_queue queue;
    REQUIRE(topic_queue_init(&queue, 4) == 0);
    static struct record records[5];
    CHECK(topic_queue_pop(&queue) == NULL);
    CHECK(topic_queue_peek(&queue, 0) == NULL);
    for (int lap = 0; lap < 100; lap++) {
        for (int index = 0; index < 4; index++)
            CHECK(topic_queue_push(&queue, &records[index]) == TOPIC_QUEUE_OK);
        CHECK(topic_queue_push(&queue, &records[4]) == TOPIC_QUEUE_FULL);
        CHECK(topic_queue_length(&queue) == 4);
        /* Peeking takes nothing; past the capacity there is nothing to see. */
        for (uint32_t ahead = 0; ahead < 4; ahead++)
            CHECK(topic_queue_peek(&queue, ahead) == &records[ahead]);
        CHECK(topic_queue_peek(&queue, 4) == NULL);
        CHECK(topic_queue_peek(&queue, 100) == NULL);
        CHECK(topic_queue_length(&queue) == 4);
        for (int index = 0; index < 4; index++) CHECK(topic_queue_pop(&queue) == &records[index]);
        CHECK(topic_queue_pop(&queue) == NULL);
    }
    topic_queue_destroy(&queue);
}

int main(void) {
    test_single_thread_edges();
    test_concurrent_producers();
    return test_finish();
}
