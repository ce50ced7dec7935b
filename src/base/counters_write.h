/*
 * counters_write.h: how a thread writes its rows of the counters region
 * (include/intake/counters_format.h). Header only; the rows are handed to each reactor and
 * worker through its links by the pipeline, which owns the region (src/daemon/counters_region.h).
 *
 * Every row has one writing thread, so an add is a relaxed load and a relaxed store, never a
 * read-modify-write, and readers in other processes see whole 64-bit values. Nothing here is
 * ever read back to decide anything: counters are observations, not control state.
 */
#ifndef INTAKE_COUNTERS_WRITE_H
#define INTAKE_COUNTERS_WRITE_H

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "common.h"
#include "intake/counters_format.h"

/* The single writer of `counter` adds `amount`. */
static inline void counter_add(_Atomic uint64_t *counter, uint64_t amount) {
    uint64_t value = atomic_load_explicit(counter, memory_order_relaxed);
    atomic_store_explicit(counter, value + amount, memory_order_relaxed);
}

/* The single writer of `counter` stores `value` (copying a thread's private counter). */
static inline void counter_set(_Atomic uint64_t *counter, uint64_t value) {
    atomic_store_explicit(counter, value, memory_order_relaxed);
}

/* The topic's owning worker names its row the first time it serves the topic: the name, then
 * a release store of its length (readers acquire-load the length before reading the name).
 * `name` need not be NUL-terminated. Named once. */
static inline void counters_topic_name(struct intake_counters_topic_row *row, const char *name,
                                       uint32_t name_length) {
    INTAKE_ASSERT(name_length > 0 && name_length < INTAKE_COUNTERS_TOPIC_NAME_BYTES);
    /* The caller is the row's only writer, so it may read its own store. */
    if (atomic_load_explicit(&row->name_length, memory_order_relaxed) != 0) return;
    memcpy(row->name, name, name_length);
    row->name[name_length] = '\0';
    atomic_store_explicit(&row->name_length, name_length, memory_order_release);
}

#endif
