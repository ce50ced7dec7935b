/*
 * producer_table.c: the producers' acknowledged watermarks (see producer_table.h).
 *
 * A chained hash: `buckets` (a power of two, at least the capacity) hold the index of the first
 * entry of their chain, each entry the next one. Entries in use are also on a doubly linked
 * recency list (most recently folded at the head); free entries are on a singly linked free
 * list. Indexes, not pointers; PRODUCER_NONE ends a list. Everything is allocated at create.
 * Every operation holds the mutex; chains are short (load at most 1).
 */
#include "producer_table.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "topic_hash.h"

#define PRODUCER_NONE UINT32_MAX

struct producer_entry {
    uint64_t acknowledged; /* H */
    uint64_t hash;
    uint32_t chain_next;  /* next entry in the bucket's chain, or the free list */
    uint32_t recent_prev; /* toward the most recently folded */
    uint32_t recent_next; /* toward the least recently folded */
    uint8_t id_length;
    uint8_t id[RECORD_PRODUCER_ID_BYTES_MAX];
};

struct producer_table {
    pthread_mutex_t mutex;
    uint32_t capacity;
    uint32_t bucket_mask;
    uint32_t used;
    uint32_t free_head;
    uint32_t recent_head; /* most recently folded */
    uint32_t recent_tail; /* least recently folded: evicted first */
    uint64_t evictions;
    uint32_t *buckets;
    struct producer_entry *entries;
};

int producer_table_create(uint32_t capacity, struct producer_table **out) {
    INTAKE_ASSERT(out != NULL);
    *out = NULL;
    if (capacity == 0 || capacity > PRODUCER_TABLE_CAPACITY_MAX) return -EINVAL;
    uint32_t bucket_count = 1;
    while (bucket_count < capacity) bucket_count <<= 1;
    struct producer_table *table = calloc(1, sizeof(*table));
    if (table == NULL) return -ENOMEM;
    table->buckets = malloc((size_t)bucket_count * sizeof(*table->buckets));
    table->entries = calloc(capacity, sizeof(*table->entries));
    if (table->buckets == NULL || table->entries == NULL) {
        free(table->buckets);
        free(table->entries);
        free(table);
        return -ENOMEM;
    }
    int result = pthread_mutex_init(&table->mutex, NULL);
    if (result != 0) {
        free(table->buckets);
        free(table->entries);
        free(table);
        return -result;
    }
    for (uint32_t index = 0; index < bucket_count; index++) table->buckets[index] = PRODUCER_NONE;
    for (uint32_t index = 0; index < capacity; index++)
        table->entries[index].chain_next = index + 1 < capacity ? index + 1 : PRODUCER_NONE;
    table->capacity = capacity;
    table->bucket_mask = bucket_count - 1;
    table->free_head = 0;
    table->recent_head = PRODUCER_NONE;
    table->recent_tail = PRODUCER_NONE;
    *out = table;
    return 0;
}

void producer_table_destroy(struct producer_table *table) {
    if (table == NULL) return;
    pthread_mutex_destroy(&table->mutex);
    free(table->buckets);
    free(table->entries);
    free(table);
}

static void check_id(const uint8_t *id, uint32_t length) {
    INTAKE_ASSERT(id != NULL);
    INTAKE_ASSERT(length >= 1);
    INTAKE_ASSERT(length <= RECORD_PRODUCER_ID_BYTES_MAX);
}

/* The entry for `id`, or PRODUCER_NONE. Mutex held. */
static uint32_t table_find(const struct producer_table *table, uint64_t hash, const uint8_t *id,
                           uint32_t length) {
    uint32_t index = table->buckets[hash & table->bucket_mask];
    while (index != PRODUCER_NONE) {
        INTAKE_ASSERT(index < table->capacity);
        const struct producer_entry *entry = &table->entries[index];
        if (entry->hash == hash && entry->id_length == length && memcmp(entry->id, id, length) == 0)
            return index;
        index = entry->chain_next;
    }
    return PRODUCER_NONE;
}

static void recent_unlink(struct producer_table *table, uint32_t index) {
    struct producer_entry *entry = &table->entries[index];
    if (entry->recent_prev != PRODUCER_NONE)
        table->entries[entry->recent_prev].recent_next = entry->recent_next;
    else
        table->recent_head = entry->recent_next;
    if (entry->recent_next != PRODUCER_NONE)
        table->entries[entry->recent_next].recent_prev = entry->recent_prev;
    else
        table->recent_tail = entry->recent_prev;
}

static void recent_push_head(struct producer_table *table, uint32_t index) {
    struct producer_entry *entry = &table->entries[index];
    entry->recent_prev = PRODUCER_NONE;
    entry->recent_next = table->recent_head;
    if (table->recent_head != PRODUCER_NONE)
        table->entries[table->recent_head].recent_prev = index;
    else
        table->recent_tail = index;
    table->recent_head = index;
}

/* Removes the least recently folded entry from its chain and the recency list; returns it. */
static uint32_t table_evict(struct producer_table *table) {
    uint32_t victim = table->recent_tail;
    INTAKE_ASSERT(victim != PRODUCER_NONE);
    recent_unlink(table, victim);
    uint32_t *link = &table->buckets[table->entries[victim].hash & table->bucket_mask];
    while (*link != victim) {
        INTAKE_ASSERT(*link != PRODUCER_NONE);
        link = &table->entries[*link].chain_next;
    }
    *link = table->entries[victim].chain_next;
    table->used--;
    table->evictions++;
    return victim;
}

uint64_t producer_table_lookup(struct producer_table *table, const uint8_t *id, uint32_t length) {
    check_id(id, length);
    uint64_t hash = topic_hash_feed(TOPIC_HASH_INITIAL, id, length);
    pthread_mutex_lock(&table->mutex);
    uint32_t index = table_find(table, hash, id, length);
    uint64_t acknowledged = index == PRODUCER_NONE ? 0 : table->entries[index].acknowledged;
    pthread_mutex_unlock(&table->mutex);
    return acknowledged;
}

void producer_table_fold(struct producer_table *table, const uint8_t *id, uint32_t length,
                         uint64_t level) {
    check_id(id, length);
    if (level == 0) return;
    uint64_t hash = topic_hash_feed(TOPIC_HASH_INITIAL, id, length);
    pthread_mutex_lock(&table->mutex);
    uint32_t index = table_find(table, hash, id, length);
    if (index != PRODUCER_NONE) {
        struct producer_entry *entry = &table->entries[index];
        if (level > entry->acknowledged) entry->acknowledged = level;
        recent_unlink(table, index);
        recent_push_head(table, index);
        pthread_mutex_unlock(&table->mutex);
        return;
    }
    if (table->free_head != PRODUCER_NONE) {
        index = table->free_head;
        table->free_head = table->entries[index].chain_next;
    } else {
        INTAKE_ASSERT(table->used == table->capacity);
        index = table_evict(table);
    }
    INTAKE_ASSERT(index < table->capacity);
    struct producer_entry *entry = &table->entries[index];
    entry->acknowledged = level;
    entry->hash = hash;
    entry->id_length = (uint8_t)length;
    memcpy(entry->id, id, length);
    uint32_t *bucket = &table->buckets[hash & table->bucket_mask];
    entry->chain_next = *bucket;
    *bucket = index;
    recent_push_head(table, index);
    table->used++;
    INTAKE_ASSERT(table->used <= table->capacity);
    pthread_mutex_unlock(&table->mutex);
}

void producer_table_stats(struct producer_table *table, struct producer_table_stats *stats) {
    INTAKE_ASSERT(stats != NULL);
    pthread_mutex_lock(&table->mutex);
    stats->producers = table->used;
    stats->evictions = table->evictions;
    pthread_mutex_unlock(&table->mutex);
}
