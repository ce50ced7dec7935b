/*
 * topic_table.h: topic names to topic ids, shared by all reactors, fixed capacity, no locks.
 *
 * Topics are created on first use (up to --topics-max) or up front from configuration. Ids are
 * dense, 0..count-1, assigned in creation order; an id is never reused or removed while the
 * daemon runs. Each topic is owned by one worker: id % worker_count.
 *
 * Lookup is lock-free and takes the name as a view into a received record (no copy). Creation
 * claims a slot with compare-and-swap, copies the name into the table (its only copy, made once
 * per topic), and publishes the entry with a release store; a concurrent lookup of the same name
 * waits for that publication (a few hundred nanoseconds, once per topic), so two reactors can
 * never create one topic twice.
 */
#ifndef INTAKE_TOPIC_TABLE_H
#define INTAKE_TOPIC_TABLE_H

#include <stdatomic.h>
#include <stdint.h>

#include "common.h"
#include "record.h"

enum topic_table_result {
    TOPIC_TABLE_FOUND = 0,
    TOPIC_TABLE_CREATED = 1, /* the caller created it: it must run the creation hook's duties */
    TOPIC_TABLE_FULL = -1,   /* --topics-max reached: the record is answered RESOURCE_EXHAUSTED */
    TOPIC_TABLE_ABSENT = -2, /* topic_table_find_view only: no such topic, none created */
};

struct topic_entry {
    _Atomic uint32_t state; /* 0 empty, 1 being created, 2 ready */
    uint32_t id;
    uint64_t hash;
    uint32_t name_length;
    char name[RECORD_TOPIC_BYTES_MAX + 1]; /* NUL-terminated for log lines and file names */
    /* 0 until the topic's log is open; then the largest record that log takes (a log keeps the
     * limit it was created with, which may be below today's --max-frame). Written by the log
     * opener when the log opens, and by the owning worker if a recreated log changes it
     * (topic_table_publish_log_limit); read by reactors at admission. */
    _Atomic uint32_t log_record_bytes_max;
};

struct topic_table {
    struct topic_entry *entries; /* open addressing, linear probing */
    uint32_t slot_count;         /* power of two, at least 2 * topics_max */
    uint32_t topics_max;
    _Atomic uint32_t topic_count;
    /* id -> entry, published with a release store of the entry pointer before the id is
     * visible anywhere else. */
    struct topic_entry *_Atomic *by_id;
};

int topic_table_init(struct topic_table *table, uint32_t topics_max) INTAKE_MUST_CHECK;
void topic_table_destroy(struct topic_table *table);

/* Any thread. Finds or creates the topic whose name is `length` bytes at `offset` of `view`. */
enum topic_table_result topic_table_intern_view(struct topic_table *table,
                                                const struct record_view *view, uint32_t offset,
                                                uint32_t length,
                                                uint32_t *topic_id) INTAKE_MUST_CHECK;
/* Any thread. Like topic_table_intern_view, but never creates: FOUND or ABSENT (a topic being
 * created concurrently is waited for and FOUND). */
enum topic_table_result topic_table_find_view(struct topic_table *table,
                                              const struct record_view *view, uint32_t offset,
                                              uint32_t length,
                                              uint32_t *topic_id) INTAKE_MUST_CHECK;
/* Same for a name held in plain memory (configuration, tests). */
enum topic_table_result topic_table_intern_name(struct topic_table *table, const char *name,
                                                uint32_t length,
                                                uint32_t *topic_id) INTAKE_MUST_CHECK;
/* Any thread: copies the `length` bytes at `offset` of `view` (a topic name, at most
 * RECORD_TOPIC_BYTES_MAX) to `out` and terminates it. For a name that is not in the table yet. */
void topic_table_copy_name(const struct record_view *view, uint32_t offset, uint32_t length,
                           char out[RECORD_TOPIC_BYTES_MAX + 1]);
/* Any thread; NULL for an id not yet published. */
const struct topic_entry *topic_table_entry(struct topic_table *table, uint32_t topic_id);
uint32_t topic_table_count(struct topic_table *table);

/* The log opener when the topic's log opens (or the owning worker when a recreated log's limit
 * differs): the log takes records up to `bytes` (nonzero). Release: the log is usable by the
 * time a reactor sees the limit. */
void topic_table_publish_log_limit(struct topic_table *table, uint32_t topic_id, uint32_t bytes);
/* Any thread: 0 while the topic's log is not open (not yet, or its creation failed). */
static inline uint32_t topic_table_log_limit(const struct topic_entry *entry) {
    return atomic_load_explicit((_Atomic uint32_t *)&entry->log_record_bytes_max,
                                memory_order_acquire);
}

#endif
