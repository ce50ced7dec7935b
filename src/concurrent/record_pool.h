/*
 * record_pool.h: the per-reactor pool of record descriptors (record.h), fixed at startup.
 */
#ifndef INTAKE_RECORD_POOL_H
#define INTAKE_RECORD_POOL_H

#include <stdint.h>

#include "common.h"
#include "record.h"

/*
 * The per-reactor record pool: a fixed array of records and a stack of free indexes.
 * Single-threaded: only the owning reactor calls these. Records are touched only when used, so
 * a large pool costs address space, not resident memory, until traffic needs it.
 */
struct record_pool {
    struct record *records;
    uint32_t *free_indexes;
    uint32_t capacity;
    uint32_t free_count;
    uint16_t reactor_index;
};

int record_pool_init(struct record_pool *pool, uint32_t capacity,
                     uint16_t reactor_index) INTAKE_MUST_CHECK;
void record_pool_destroy(struct record_pool *pool);
/* Returns NULL when every record is in use (a backpressure state, not an error). */
struct record *record_pool_take(struct record_pool *pool);
void record_pool_give(struct record_pool *pool, struct record *record);

#endif
