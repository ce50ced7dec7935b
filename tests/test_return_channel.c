/*
 * test_return_channel.c: the SPSC ring as the return channel, between two threads.
 *
 * The main thread plays a reactor: it owns a real record pool, stamps each record with the next
 * sequence and hands it to the "worker" thread over a forward ring. The worker checks the order
 * and gives every record back over the return ring (in batches, as a worker does); the reactor
 * checks the order again and frees the record to its pool. Both rings are sized to the pool, so neither can ever fill (push
 * asserts it), while the pool runs dry all the time (the reactor then drains returns).
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>

#include "harness.h"
#include "record_pool.h"
#include "spsc_ring.h"

#define POOL_CAPACITY 1024
#define BATCH         128
#ifdef INTAKE_SANITIZED
#define RECORD_COUNT 1000000
#else
#define RECORD_COUNT 4000000
#endif

struct channel {
    struct spsc_ring forward; /* reactor -> worker */
    struct spsc_ring returns; /* worker -> reactor */
    uint64_t worker_errors;   /* written by the worker, read after join */
};

static void *worker_run(void *argument) {
    struct channel *channel = argument;
    struct record *batch[BATCH];
    uint64_t expected = 1, batches = 0;
    while (expected <= RECORD_COUNT) {
        uint32_t count = spsc_ring_pop_batch(&channel->forward, batch, BATCH);
        if (count == 0) sched_yield();
        for (uint32_t index = 0; index < count; index++) {
            if (batch[index]->sequence != expected) channel->worker_errors++;
            expected = batch[index]->sequence + 1;
            batch[index]->status = RECORD_STATUS_OK;
        }
        /* Back as the worker does it (one publish per batch), or one by one on alternate
         * batches, so both pushes meet a concurrent consumer. */
        batches++;
        if (batches % 2 == 0) {
            spsc_ring_push_batch(&channel->returns, batch, count);
        } else {
            for (uint32_t index = 0; index < count; index++)
                spsc_ring_push(&channel->returns, batch[index]);
        }
    }
    return NULL;
}

/* Frees returned records to the pool, checking they come back in order; reactor thread only. */
static uint32_t reactor_reclaim(struct channel *channel, struct record_pool *pool,
                                uint64_t *expected_return, uint64_t *errors) {
    struct record *batch[BATCH];
    uint32_t count = spsc_ring_pop_batch(&channel->returns, batch, BATCH);
    for (uint32_t index = 0; index < count; index++) {
        if (batch[index]->sequence != *expected_return) (*errors)++;
        *expected_return = batch[index]->sequence + 1;
        record_pool_give(pool, batch[index]);
    }
    return count;
}

int main(void) {
    struct record_pool pool;
    struct channel channel;
    memset(&channel, 0, sizeof(channel));
    REQUIRE(record_pool_init(&pool, POOL_CAPACITY, 0) == 0);
    REQUIRE(spsc_ring_init(&channel.forward, POOL_CAPACITY) == 0);
    REQUIRE(spsc_ring_init(&channel.returns, POOL_CAPACITY) == 0);
    CHECK(spsc_ring_is_empty(&channel.returns));
    pthread_t worker;
    REQUIRE(pthread_create(&worker, NULL, worker_run, &channel) == 0);

    uint64_t expected_return = 1;
    uint64_t errors = 0;
    uint64_t pool_dry = 0;
    for (uint64_t sequence = 1; sequence <= RECORD_COUNT; sequence++) {
        struct record *record;
        while ((record = record_pool_take(&pool)) == NULL) {
            pool_dry++;
            if (reactor_reclaim(&channel, &pool, &expected_return, &errors) == 0) sched_yield();
        }
        record->sequence = sequence;
        spsc_ring_push(&channel.forward, record);
    }
    while (expected_return <= RECORD_COUNT)
        if (reactor_reclaim(&channel, &pool, &expected_return, &errors) == 0) sched_yield();
    REQUIRE(pthread_join(worker, NULL) == 0);

    CHECK(errors == 0);
    CHECK(channel.worker_errors == 0);
    CHECK(expected_return == RECORD_COUNT + 1);
    CHECK(pool.free_count == POOL_CAPACITY);
    CHECK(pool_dry > 0);
    CHECK(spsc_ring_is_empty(&channel.forward));
    CHECK(spsc_ring_is_empty(&channel.returns));
    printf("return channel: %u records through a %u-record pool, pool ran dry %llu times\n",
           RECORD_COUNT, POOL_CAPACITY, (unsigned long long)pool_dry);
    spsc_ring_destroy(&channel.forward);
    spsc_ring_destroy(&channel.returns);
    record_pool_destroy(&pool);
    return test_finish();
}
