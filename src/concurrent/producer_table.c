/*
 * producer_table.c: what the daemon knows of each producer (see producer_table.h).
 *
 * A chained hash over the keyed hash of (principal, id) the reactor computed once for the
 * connection (record_origin): `buckets` (a power of two, at least the capacity) hold the index
 * of the first entry of their chain, each entry the next one. Unpinned entries are on one of two
 * doubly linked recency lists (probation, protected; most recently seen at the head); pinned
 * entries are on neither, so a list's tail is always evictable. Free entries are on a singly
 * linked free list. Indexes, not pointers; PRODUCER_NONE ends a list. Everything is allocated
 * at create. Every operation holds the mutex, but producer_table_next's compare-and-swap.
 */
#include "producer_table.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define PRODUCER_NONE UINT32_MAX

enum producer_segment {
    SEGMENT_NONE = 0, /* free, or pinned (on no list) */
    SEGMENT_PROBATION = 1,
    SEGMENT_PROTECTED = 2,
};

/* One producer; a multiple of a cache line, so the `seen` a reactor updates per record shares
 * its line with no other producer's. */
struct producer_entry {
    /* Written per record by the connection at the front (compare-and-swap); read under the
     * mutex by first records of other connections. */
    _Atomic uint64_t seen;
    uint64_t acknowledged; /* H */
    uint64_t hash;
    uint64_t principal;
    uint64_t gaps[PRODUCER_GAPS_MAX][2]; /* [first, last] of each, sorted, disjoint */
    uint32_t gap_count;
    uint32_t chain_next;  /* next entry in the bucket's chain, or the free list */
    uint32_t recent_prev; /* toward the most recently seen */
    uint32_t recent_next; /* toward the least recently seen */
    uint32_t pins;        /* live connections using it */
    uint8_t segment;      /* enum producer_segment (its list while unpinned) */
    uint8_t preferred;    /* the segment it returns to when unpinned */
    uint8_t folds;        /* connections that ended with records committed (saturates) */
    uint8_t id_length;
    uint8_t id[RECORD_PRODUCER_ID_BYTES_MAX];
} INTAKE_ALIGNED_CACHE_LINE;

struct recent_list {
    uint32_t head; /* most recently seen */
    uint32_t tail; /* least recently seen: evicted first */
    uint32_t count;
};

struct producer_table {
    pthread_mutex_t mutex;
    uint32_t capacity;
    uint32_t protected_max;
    uint32_t bucket_mask;
    uint32_t used;
    uint32_t pinned;
    uint32_t protected_count; /* entries whose preferred segment is protected */
    uint32_t free_head;
    struct recent_list probation;
    struct recent_list protected_list;
    uint64_t evictions;
    uint64_t refusals;
    uint64_t seeded;
    uint64_t gaps;
    uint64_t gap_merges;
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
    table->entries =
        aligned_alloc(INTAKE_CACHE_LINE_BYTES, (size_t)capacity * sizeof(struct producer_entry));
    int result = table->buckets == NULL || table->entries == NULL
                     ? ENOMEM
                     : pthread_mutex_init(&table->mutex, NULL);
    if (result != 0) {
        free(table->buckets);
        free(table->entries);
        free(table);
        return -result;
    }
    memset(table->entries, 0, (size_t)capacity * sizeof(struct producer_entry));
    for (uint32_t index = 0; index < bucket_count; index++) table->buckets[index] = PRODUCER_NONE;
    for (uint32_t index = 0; index < capacity; index++)
        table->entries[index].chain_next = index + 1 < capacity ? index + 1 : PRODUCER_NONE;
    table->capacity = capacity;
    table->protected_max = (uint32_t)((uint64_t)capacity * 3 / 4);
    table->bucket_mask = bucket_count - 1;
    table->free_head = 0;
    table->probation = (struct recent_list){PRODUCER_NONE, PRODUCER_NONE, 0};
    table->protected_list = (struct recent_list){PRODUCER_NONE, PRODUCER_NONE, 0};
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

static void check_origin(const struct record_origin *origin) {
    INTAKE_ASSERT(origin != NULL);
    INTAKE_ASSERT(origin->producer_id_length >= 1);
    INTAKE_ASSERT(origin->producer_id_length <= RECORD_PRODUCER_ID_BYTES_MAX);
    INTAKE_ASSERT(origin->producer_hash != 0);
}

static uint32_t entry_index(const struct producer_table *table,
                            const struct producer_entry *entry) {
    INTAKE_ASSERT(entry >= table->entries && entry < table->entries + table->capacity);
    return (uint32_t)(entry - table->entries);
}

/* ------------------------------------------------------------- lookup --- */

/* The entry for the origin's producer, or PRODUCER_NONE. Mutex held. */
static uint32_t table_find(const struct producer_table *table, const struct record_origin *origin) {
    uint32_t index = table->buckets[origin->producer_hash & table->bucket_mask];
    while (index != PRODUCER_NONE) {
        INTAKE_ASSERT(index < table->capacity);
        const struct producer_entry *entry = &table->entries[index];
        if (entry->hash == origin->producer_hash && entry->principal == origin->principal &&
            entry->id_length == origin->producer_id_length &&
            memcmp(entry->id, origin->producer_id, origin->producer_id_length) == 0)
            return index;
        index = entry->chain_next;
    }
    return PRODUCER_NONE;
}

/* ------------------------------------------------------ recency lists --- */

static struct recent_list *segment_list(struct producer_table *table, uint8_t segment) {
    INTAKE_ASSERT(segment == SEGMENT_PROBATION || segment == SEGMENT_PROTECTED);
    return segment == SEGMENT_PROBATION ? &table->probation : &table->protected_list;
}

static void recent_unlink(struct producer_table *table, uint32_t index) {
    struct producer_entry *entry = &table->entries[index];
    struct recent_list *list = segment_list(table, entry->segment);
    if (entry->recent_prev != PRODUCER_NONE)
        table->entries[entry->recent_prev].recent_next = entry->recent_next;
    else
        list->head = entry->recent_next;
    if (entry->recent_next != PRODUCER_NONE)
        table->entries[entry->recent_next].recent_prev = entry->recent_prev;
    else
        list->tail = entry->recent_prev;
    INTAKE_ASSERT(list->count > 0);
    list->count--;
    entry->segment = SEGMENT_NONE;
}

static void recent_push_head(struct producer_table *table, uint32_t index, uint8_t segment) {
    struct producer_entry *entry = &table->entries[index];
    INTAKE_ASSERT(entry->segment == SEGMENT_NONE);
    struct recent_list *list = segment_list(table, segment);
    entry->segment = segment;
    entry->recent_prev = PRODUCER_NONE;
    entry->recent_next = list->head;
    if (list->head != PRODUCER_NONE)
        table->entries[list->head].recent_prev = index;
    else
        list->tail = index;
    list->head = index;
    list->count++;
}

/* Makes an entry prefer the protected segment, keeping protected within protected_max: the
 * least recently seen unpinned protected entry goes back to probation. Mutex held. */
static void entry_promote(struct producer_table *table, uint32_t index) {
    struct producer_entry *entry = &table->entries[index];
    if (entry->preferred == SEGMENT_PROTECTED || table->protected_max == 0) return;
    if (table->protected_count >= table->protected_max) {
        uint32_t demoted = table->protected_list.tail;
        if (demoted == PRODUCER_NONE) return; /* every protected one is pinned: stay */
        recent_unlink(table, demoted);
        table->entries[demoted].preferred = SEGMENT_PROBATION;
        table->protected_count--;
        recent_push_head(table, demoted, SEGMENT_PROBATION);
    }
    entry->preferred = SEGMENT_PROTECTED;
    table->protected_count++;
}

/* Removes the least recently seen unpinned entry (probation first) from its chain and list;
 * returns it, or PRODUCER_NONE when every entry is pinned. Mutex held. */
static uint32_t table_evict(struct producer_table *table) {
    uint32_t victim = table->probation.tail;
    if (victim == PRODUCER_NONE) victim = table->protected_list.tail;
    if (victim == PRODUCER_NONE) return PRODUCER_NONE;
    struct producer_entry *entry = &table->entries[victim];
    INTAKE_ASSERT(entry->pins == 0);
    recent_unlink(table, victim);
    if (entry->preferred == SEGMENT_PROTECTED) table->protected_count--;
    uint32_t *link = &table->buckets[entry->hash & table->bucket_mask];
    while (*link != victim) {
        INTAKE_ASSERT(*link != PRODUCER_NONE);
        link = &table->entries[*link].chain_next;
    }
    *link = entry->chain_next;
    table->used--;
    table->evictions++;
    return victim;
}

/* A new, unpinned entry for the origin's producer (unknown: seen 0, H 0, no gaps), or
 * PRODUCER_NONE when every entry is pinned. Mutex held. */
static uint32_t entry_create(struct producer_table *table, const struct record_origin *origin) {
    uint32_t index = table->free_head;
    if (index != PRODUCER_NONE) {
        table->free_head = table->entries[index].chain_next;
    } else {
        INTAKE_ASSERT(table->used == table->capacity);
        index = table_evict(table);
        if (index == PRODUCER_NONE) return index;
    }
    INTAKE_ASSERT(index < table->capacity);
    struct producer_entry *entry = &table->entries[index];
    memset(entry, 0, sizeof(*entry));
    entry->hash = origin->producer_hash;
    entry->principal = origin->principal;
    entry->id_length = (uint8_t)origin->producer_id_length;
    memcpy(entry->id, origin->producer_id, origin->producer_id_length);
    entry->preferred = SEGMENT_PROBATION;
    uint32_t *bucket = &table->buckets[entry->hash & table->bucket_mask];
    entry->chain_next = *bucket;
    *bucket = index;
    table->used++;
    INTAKE_ASSERT(table->used <= table->capacity);
    return index;
}

/* ------------------------------------------------------------- gaps --- */

/* Whether `sequence` lies in one of the entry's gaps. Mutex held. */
static bool gaps_contain(const struct producer_entry *entry, uint64_t sequence) {
    for (uint32_t index = 0; index < entry->gap_count; index++)
        if (sequence >= entry->gaps[index][0] && sequence <= entry->gaps[index][1]) return true;
    return false;
}

/* Records [first, last] as a gap. It lies above every sequence presented before, so above
 * every gap: appended at the end, after merging the two nearest gaps when full. */
static void gaps_add(struct producer_table *table, struct producer_entry *entry, uint64_t first,
                     uint64_t last) {
    INTAKE_ASSERT(first >= 1 && first <= last);
    INTAKE_ASSERT(entry->gap_count <= PRODUCER_GAPS_MAX);
    if (entry->gap_count > 0) INTAKE_ASSERT(entry->gaps[entry->gap_count - 1][1] < first);
    table->gaps++;
    if (entry->gap_count == PRODUCER_GAPS_MAX) {
        /* Merge the nearest pair, counting the new one as the last. */
        uint64_t nearest = UINT64_MAX;
        uint32_t at = 0;
        for (uint32_t index = 0; index + 1 <= entry->gap_count; index++) {
            uint64_t next_first = index + 1 < entry->gap_count ? entry->gaps[index + 1][0] : first;
            uint64_t distance = next_first - entry->gaps[index][1];
            if (distance < nearest) {
                nearest = distance;
                at = index;
            }
        }
        table->gap_merges++;
        if (at + 1 == entry->gap_count) {
            entry->gaps[at][1] = last; /* the last held gap swallows the new one */
            return;
        }
        entry->gaps[at][1] = entry->gaps[at + 1][1];
        for (uint32_t index = at + 1; index + 1 < entry->gap_count; index++) {
            entry->gaps[index][0] = entry->gaps[index + 1][0];
            entry->gaps[index][1] = entry->gaps[index + 1][1];
        }
        entry->gap_count--;
    }
    entry->gaps[entry->gap_count][0] = first;
    entry->gaps[entry->gap_count][1] = last;
    entry->gap_count++;
}

/* Removes [first, last] (committed) from the gaps. A gap split in two when the slots are full
 * stays whole (more counts as unwritten: safe). */
static void gaps_remove(struct producer_entry *entry, uint64_t first, uint64_t last) {
    for (uint32_t index = 0; index < entry->gap_count;) {
        uint64_t *gap = entry->gaps[index];
        if (last < gap[0] || first > gap[1]) {
            index++;
            continue;
        }
        bool keeps_low = first > gap[0], keeps_high = last < gap[1];
        if (keeps_low && keeps_high) {
            if (entry->gap_count == PRODUCER_GAPS_MAX) return;
            for (uint32_t move = entry->gap_count; move > index + 1; move--) {
                entry->gaps[move][0] = entry->gaps[move - 1][0];
                entry->gaps[move][1] = entry->gaps[move - 1][1];
            }
            entry->gaps[index + 1][0] = last + 1;
            entry->gaps[index + 1][1] = gap[1];
            gap[1] = first - 1;
            entry->gap_count++;
            return;
        }
        if (keeps_low) {
            gap[1] = first - 1;
            index++;
        } else if (keeps_high) {
            gap[0] = last + 1;
            index++;
        } else {
            for (uint32_t move = index; move + 1 < entry->gap_count; move++) {
                entry->gaps[move][0] = entry->gaps[move + 1][0];
                entry->gaps[move][1] = entry->gaps[move + 1][1];
            }
            entry->gap_count--;
        }
    }
}

/* ------------------------------------------------------------- the API --- */

bool producer_table_seed(struct producer_table *table, const struct record_origin *origin,
                         uint64_t highest, bool established) {
    check_origin(origin);
    pthread_mutex_lock(&table->mutex);
    uint32_t index = table_find(table, origin);
    if (index == PRODUCER_NONE) {
        /* Seeding never evicts: the first files seen fill the table. */
        if (table->free_head == PRODUCER_NONE) {
            pthread_mutex_unlock(&table->mutex);
            return false;
        }
        index = entry_create(table, origin);
        recent_push_head(table, index, SEGMENT_PROBATION);
        table->seeded++;
    }
    struct producer_entry *entry = &table->entries[index];
    uint64_t seen = atomic_load_explicit(&entry->seen, memory_order_relaxed);
    if (highest > seen) atomic_store_explicit(&entry->seen, highest, memory_order_relaxed);
    if (established && entry->preferred != SEGMENT_PROTECTED) {
        entry_promote(table, index);
        if (entry->preferred == SEGMENT_PROTECTED) {
            recent_unlink(table, index);
            recent_push_head(table, index, SEGMENT_PROTECTED);
        }
    }
    pthread_mutex_unlock(&table->mutex);
    return true;
}

struct producer_entry *producer_table_acquire(struct producer_table *table,
                                              const struct record_origin *origin, bool create) {
    check_origin(origin);
    pthread_mutex_lock(&table->mutex);
    uint32_t index = table_find(table, origin);
    if (index == PRODUCER_NONE && !create) {
        pthread_mutex_unlock(&table->mutex);
        return NULL;
    }
    if (index == PRODUCER_NONE) index = entry_create(table, origin);
    if (index == PRODUCER_NONE) {
        table->refusals++;
        pthread_mutex_unlock(&table->mutex);
        return NULL;
    }
    struct producer_entry *entry = &table->entries[index];
    /* A pinned entry is on no list: no eviction can reach it. */
    if (entry->pins == 0) {
        if (entry->segment != SEGMENT_NONE) recent_unlink(table, index);
        table->pinned++;
    }
    entry->pins++;
    INTAKE_ASSERT(entry->pins != 0);
    pthread_mutex_unlock(&table->mutex);
    return entry;
}

uint64_t producer_table_hello_answer(struct producer_table *table, struct producer_entry *entry) {
    pthread_mutex_lock(&table->mutex);
    INTAKE_ASSERT(entry->pins > 0);
    uint64_t answer = entry->acknowledged;
    /* Never into a gap (rule 3): gaps are sorted, the first is the lowest. */
    if (entry->gap_count > 0 && answer >= entry->gaps[0][0]) answer = entry->gaps[0][0] - 1;
    pthread_mutex_unlock(&table->mutex);
    return answer;
}

enum producer_admission producer_table_first(struct producer_table *table,
                                             struct producer_entry *entry, uint64_t sequence,
                                             uint64_t *known) {
    INTAKE_ASSERT(sequence >= 1);
    pthread_mutex_lock(&table->mutex);
    INTAKE_ASSERT(entry->pins > 0);
    enum producer_admission verdict = PRODUCER_ADMIT;
    uint64_t seen = atomic_load_explicit(&entry->seen, memory_order_relaxed);
    for (;;) {
        /* Rule 1: a known producer's first record runs at most W ahead of what was seen. */
        if (seen != 0 && sequence > seen && sequence - seen > PRODUCER_SEQUENCE_LEAD_MAX) {
            *known = seen;
            pthread_mutex_unlock(&table->mutex);
            return PRODUCER_AHEAD;
        }
        if (sequence <= seen) break; /* a resend, or behind another connection: no skip */
        /* Claim the range up to `sequence` against the compare-and-swaps of live connections;
         * one that moved `seen` meanwhile makes us look again. A connection whose record falls
         * in the gap below then fails its own swap and finds the gap under the mutex. */
        if (atomic_compare_exchange_strong_explicit(&entry->seen, &seen, sequence,
                                                    memory_order_relaxed, memory_order_relaxed)) {
            if (sequence > seen + 1) gaps_add(table, entry, seen + 1, sequence - 1); /* rule 2 */
            pthread_mutex_unlock(&table->mutex);
            return PRODUCER_ADMIT;
        }
    }
    if (gaps_contain(entry, sequence)) verdict = PRODUCER_ADMIT_GAP_FILL;
    pthread_mutex_unlock(&table->mutex);
    return verdict;
}

enum producer_admission producer_table_next(struct producer_table *table,
                                            struct producer_entry *entry, uint64_t sequence) {
    INTAKE_ASSERT(sequence >= 2);
    /* At the front (the common case): the previous record's sequence is still the highest.
     * Relaxed: the swap only has to be atomic against producer_table_first's; the gaps it may
     * have added are read under the mutex below, which orders them. */
    uint64_t expected = sequence - 1;
    if (atomic_compare_exchange_strong_explicit(&entry->seen, &expected, sequence,
                                                memory_order_relaxed, memory_order_relaxed))
        return PRODUCER_ADMIT;
    /* The previous record raised `seen` to at least its sequence, and `seen` never falls. */
    INTAKE_ASSERT(expected >= sequence);
    pthread_mutex_lock(&table->mutex);
    bool in_gap = gaps_contain(entry, sequence);
    pthread_mutex_unlock(&table->mutex);
    return in_gap ? PRODUCER_ADMIT_GAP_FILL : PRODUCER_ADMIT;
}

void producer_table_release(struct producer_table *table, struct producer_entry *entry,
                            uint64_t first_sequence, uint64_t level) {
    pthread_mutex_lock(&table->mutex);
    uint32_t index = entry_index(table, entry);
    INTAKE_ASSERT(entry->pins > 0);
    if (level > 0) {
        /* Every record of that connection up to `level` came back committed, whether or not
         * that Ack reached the peer. */
        if (level > entry->acknowledged) entry->acknowledged = level;
        if (first_sequence != 0 && first_sequence <= level)
            gaps_remove(entry, first_sequence, level);
        if (entry->folds < UINT8_MAX) entry->folds++;
        if (entry->folds >= 2) entry_promote(table, index);
    }
    entry->pins--;
    if (entry->pins == 0) {
        INTAKE_ASSERT(table->pinned > 0);
        table->pinned--;
        recent_push_head(table, index, entry->preferred);
    }
    pthread_mutex_unlock(&table->mutex);
}

bool producer_table_inspect(struct producer_table *table, const struct record_origin *origin,
                            uint64_t *acknowledged, uint64_t *seen, uint32_t *gap_count) {
    check_origin(origin);
    pthread_mutex_lock(&table->mutex);
    uint32_t index = table_find(table, origin);
    if (index != PRODUCER_NONE) {
        const struct producer_entry *entry = &table->entries[index];
        *acknowledged = entry->acknowledged;
        *seen = atomic_load_explicit(&entry->seen, memory_order_relaxed);
        *gap_count = entry->gap_count;
    }
    pthread_mutex_unlock(&table->mutex);
    return index != PRODUCER_NONE;
}

void producer_table_stats(struct producer_table *table, struct producer_table_stats *stats) {
    INTAKE_ASSERT(stats != NULL);
    pthread_mutex_lock(&table->mutex);
    stats->producers = table->used;
    stats->protected_count = table->protected_count;
    stats->pinned = table->pinned;
    stats->evictions = table->evictions;
    stats->refusals = table->refusals;
    stats->seeded = table->seeded;
    stats->gaps = table->gaps;
    stats->gap_merges = table->gap_merges;
    pthread_mutex_unlock(&table->mutex);
}
