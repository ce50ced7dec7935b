/*
 * record_pool.c: the per-reactor record pool (see record_pool.h). Runs on the owning reactor
 * thread only.
 */
#include "record_pool.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

int record_pool_init(struct record_pool *pool, uint32_t capacity, uint16_t reactor_index) {
    INTAKE_ASSERT(capacity > 0);
    memset(pool, 0, sizeof(*pool));
    size_t records_bytes = (size_t)capacity * sizeof(struct record);
    /* mmap, not malloc: untouched records cost no resident memory. */
    void *records =
        mmap(NULL, records_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (records == MAP_FAILED) return -ENOMEM;
    pool->free_indexes = malloc((size_t)capacity * sizeof(uint32_t));
    if (pool->free_indexes == NULL) {
        munmap(records, records_bytes);
        return -ENOMEM;
    }
    pool->records = records;
    pool->capacity = capacity;
    pool->free_count = capacity;
    pool->reactor_index = reactor_index;
    /* Hand out low indexes first so a light load keeps touching the same few pages. */
    for (uint32_t index = 0; index < capacity; index++)
        pool->free_indexes[index] = capacity - 1 - index;
    return 0;
}

void record_pool_destroy(struct record_pool *pool) {
    if (pool->records != NULL)
        munmap(pool->records, (size_t)pool->capacity * sizeof(struct record));
    free(pool->free_indexes);
    memset(pool, 0, sizeof(*pool));
}

struct record *record_pool_take(struct record_pool *pool) {
    if (pool->free_count == 0) return NULL;
    uint32_t index = pool->free_indexes[--pool->free_count];
    INTAKE_ASSERT(index < pool->capacity);
    struct record *record = &pool->records[index];
    record->pool_index = index;
    record->reactor_index = pool->reactor_index;
    record->slice_count = 0;
    record->frame_bytes = 0;
    record->status = RECORD_STATUS_OK;
    return record;
}

void record_pool_give(struct record_pool *pool, struct record *record) {
    INTAKE_ASSERT(record >= pool->records && record < pool->records + pool->capacity);
    INTAKE_ASSERT(record->reactor_index == pool->reactor_index);
    INTAKE_ASSERT(pool->free_count < pool->capacity);
    pool->free_indexes[pool->free_count++] = (uint32_t)(record - pool->records);
}
