/*
 * topic_table.c: topic names to dense ids, shared by every reactor, no locks (see topic_table.h).
 * Any thread may intern and look up; nothing is ever removed.
 *
 * Slot states: 0 empty, 1 being created (one creator owns it), 2 ready (final, never changes).
 *
 * Creation protocol, chosen so the limit is exact, ids stay dense and no name is created twice:
 *   1. Probe from the name's home slot. A ready slot is compared; a slot being created is waited
 *      on (whoever owns it finishes in a bounded number of steps); an empty slot means the name is
 *      absent, because no creator ever passes a slot that is not ready.
 *   2. If topic_count already reached topics_max and the slot is still empty, answer FULL
 *      without touching the slot (see topic_table_at_limit for why this cannot refuse a name
 *      whose creator got the last id).
 *   3. Claim the empty slot (CAS 0 -> 1) BEFORE reserving an id. A concurrent creator of the same
 *      name loses the CAS, waits on state 1 and then finds the name, so ids are never reserved
 *      twice for one name and never need to be given back (which would break density).
 *   4. Reserve an id with a CAS loop on topic_count that never goes past topics_max.
 *   5a. Got one: fill id, release-store by_id[id], then release-store state 2.
 *   5b. Lost the race for the last id: release-store state 0 (give the slot back) and answer FULL.
 *       Returning a slot to empty is safe because nobody probes past a slot in state 1: every slot
 *       on any ready name's probe path was already ready when that name was created, and ready
 *       slots never change. Waiters on the slot simply re-examine it and see it empty.
 * Result: a name that ever gets an id is never answered FULL, and FULL only once all
 * topics_max ids are taken.
 *
 * Hashing: topic_hash_feed (topic_hash.h, the one function the record scan uses too) over the
 * name's bytes, walked slice by slice (no copy).
 */
#include "topic_table.h"

#include <errno.h>
#include <sched.h>
#include <string.h>

#include "topic_hash.h"

/* Pauses before a waiter on a slot being created yields its CPU (the creator may be preempted). */
#define TOPIC_TABLE_SPINS_BEFORE_YIELD 128

enum topic_entry_state {
    TOPIC_ENTRY_EMPTY = 0,
    TOPIC_ENTRY_CREATING = 1,
    TOPIC_ENTRY_READY = 2,
};

/* Position of byte `offset` of a view: which slice, and where inside it. */
struct topic_table_cursor {
    uint32_t slice_index;
    uint32_t slice_offset;
};

static struct topic_table_cursor topic_table_seek(const struct record_view *view, uint32_t offset) {
    struct topic_table_cursor cursor = {0, offset};
    while (cursor.slice_index < view->slice_count &&
           cursor.slice_offset >= view->slices[cursor.slice_index].length) {
        cursor.slice_offset -= view->slices[cursor.slice_index].length;
        cursor.slice_index++;
    }
    return cursor;
}

/* Calls `visit` on each contiguous run of the view's `length` bytes at `offset`, in order; stops
 * early when it returns zero. Returns zero when stopped early. */
typedef int (*topic_table_visit_fn)(void *context, const uint8_t *bytes, uint32_t length);

static int topic_table_walk(const struct record_view *view, uint32_t offset, uint32_t length,
                            topic_table_visit_fn visit, void *context) {
    INTAKE_ASSERT(offset <= view->total_bytes);
    INTAKE_ASSERT(length <= view->total_bytes - offset);
    struct topic_table_cursor cursor = topic_table_seek(view, offset);
    while (length > 0) {
        INTAKE_ASSERT(cursor.slice_index < view->slice_count);
        const struct slice *slice = &view->slices[cursor.slice_index];
        uint32_t run = slice->length - cursor.slice_offset;
        if (run > length) run = length;
        if (!visit(context, slice->bytes + cursor.slice_offset, run)) return 0;
        length -= run;
        cursor.slice_index++;
        cursor.slice_offset = 0;
    }
    return 1;
}

static int topic_table_visit_hash(void *context, const uint8_t *bytes, uint32_t length) {
    uint64_t *hash = context;
    *hash = topic_hash_feed(*hash, bytes, length);
    return 1;
}

static uint64_t topic_table_hash_view(const struct record_view *view, uint32_t offset,
                                      uint32_t length) {
    uint64_t hash = TOPIC_HASH_INITIAL;
    int finished = topic_table_walk(view, offset, length, topic_table_visit_hash, &hash);
    INTAKE_ASSERT(finished);
    return hash;
}

/* Compares against `expected` and advances it as runs go by. */
static int topic_table_visit_equals(void *context, const uint8_t *bytes, uint32_t length) {
    const uint8_t **expected = context;
    if (memcmp(*expected, bytes, length) != 0) return 0;
    *expected += length;
    return 1;
}

static int topic_table_view_equals(const struct record_view *view, uint32_t offset, uint32_t length,
                                   const uint8_t *bytes) {
    return topic_table_walk(view, offset, length, topic_table_visit_equals, &bytes);
}

static int topic_table_visit_copy(void *context, const uint8_t *bytes, uint32_t length) {
    uint8_t **out = context;
    memcpy(*out, bytes, length);
    *out += length;
    return 1;
}

static void topic_table_view_copy(const struct record_view *view, uint32_t offset, uint32_t length,
                                  char *out) {
    uint8_t *cursor = (uint8_t *)out;
    int finished = topic_table_walk(view, offset, length, topic_table_visit_copy, &cursor);
    INTAKE_ASSERT(finished);
    out[length] = '\0';
}

static void topic_table_pause(uint32_t *spins) {
    if (++*spins % TOPIC_TABLE_SPINS_BEFORE_YIELD == 0) {
        sched_yield();
        return;
    }
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Waits while another thread creates the topic in `entry`; returns the state it settles in. */
static uint32_t topic_table_wait_settled(struct topic_entry *entry) {
    uint32_t spins = 0;
    for (;;) {
        /* Acquire: pairs with the creator's release store of 2 (or 0), making the entry's
         * hash, name and id visible before we compare them. */
        uint32_t state = atomic_load_explicit(&entry->state, memory_order_acquire);
        if (state != TOPIC_ENTRY_CREATING) return state;
        topic_table_pause(&spins);
    }
}

int topic_table_init(struct topic_table *table, uint32_t topics_max) {
    INTAKE_ASSERT(topics_max > 0);
    /* At least twice the topics keeps probe sequences short; a power of two lets a mask pick the
     * home slot. */
    INTAKE_ASSERT(topics_max <= (UINT32_C(1) << 30));
    memset(table, 0, sizeof(*table));
    uint32_t slot_count = 2;
    while (slot_count < 2 * topics_max) slot_count *= 2;
    table->entries = calloc(slot_count, sizeof(*table->entries));
    if (table->entries == NULL) return -ENOMEM;
    table->by_id = calloc(topics_max, sizeof(*table->by_id));
    if (table->by_id == NULL) {
        free(table->entries);
        table->entries = NULL;
        return -ENOMEM;
    }
    for (uint32_t index = 0; index < slot_count; index++)
        atomic_init(&table->entries[index].state, TOPIC_ENTRY_EMPTY);
    for (uint32_t index = 0; index < topics_max; index++) atomic_init(&table->by_id[index], NULL);
    table->slot_count = slot_count;
    table->topics_max = topics_max;
    atomic_init(&table->topic_count, 0);
    return 0;
}

void topic_table_destroy(struct topic_table *table) {
    free(table->entries);
    free((void *)table->by_id);
    memset(table, 0, sizeof(*table));
}

/* Takes the next id unless topics_max ids are already taken; never overshoots the limit. */
static int topic_table_reserve_id(struct topic_table *table, uint32_t *topic_id) {
    /* Relaxed load: the CAS below confirms or refreshes it. */
    uint32_t count = atomic_load_explicit(&table->topic_count, memory_order_relaxed);
    while (count < table->topics_max) {
        /* Release on success: publishes our claim of the slot (state 1) to whoever acquire-loads
         * the count at the limit (see topic_table_at_limit). Entries themselves are published
         * through by_id and the slot state. */
        if (atomic_compare_exchange_weak_explicit(&table->topic_count, &count, count + 1,
                                                  memory_order_release, memory_order_relaxed)) {
            *topic_id = count;
            return 1;
        }
    }
    return 0;
}

/* We own `entry` (state 1). Fills it and publishes it, or gives the slot back when the limit was
 * reached by a concurrent creator. */
static enum topic_table_result topic_table_create(struct topic_table *table,
                                                  struct topic_entry *entry,
                                                  const struct record_view *view, uint32_t offset,
                                                  uint32_t length, uint64_t hash,
                                                  uint32_t *topic_id) {
    INTAKE_ASSERT(atomic_load_explicit(&entry->state, memory_order_relaxed) ==
                  TOPIC_ENTRY_CREATING);
    uint32_t id = 0;
    if (!topic_table_reserve_id(table, &id)) {
        /* Release: orders our (unused) writes to the slot before the next claimant's. */
        atomic_store_explicit(&entry->state, TOPIC_ENTRY_EMPTY, memory_order_release);
        return TOPIC_TABLE_FULL;
    }
    INTAKE_ASSERT(id < table->topics_max);
    entry->id = id;
    entry->hash = hash;
    entry->name_length = length;
    atomic_store_explicit(&entry->log_record_bytes_max, 0, memory_order_relaxed);
    topic_table_view_copy(view, offset, length, entry->name);
    /* Release: publishes the filled entry to topic_table_entry(id) before the id can be seen
     * anywhere else (we have not returned it yet and the slot is not ready yet). */
    atomic_store_explicit(&table->by_id[id], entry, memory_order_release);
    /* Release: publishes id, hash and name to every lookup that acquire-loads state 2. */
    atomic_store_explicit(&entry->state, TOPIC_ENTRY_READY, memory_order_release);
    *topic_id = id;
    return TOPIC_TABLE_CREATED;
}

/*
 * Nonzero when every id is taken and `entry` (found empty) is still empty, so the name can never
 * be created. Acquire on the count: every reservation's release CAS belongs to one release
 * sequence, so reading the final count makes every reserver's earlier slot claim visible. If our
 * name's creator reserved an id, its claim of this slot is then visible to the state load below
 * and the caller waits for it instead of answering FULL for a topic that exists.
 */
static int topic_table_at_limit(struct topic_table *table, struct topic_entry *entry) {
    if (atomic_load_explicit(&table->topic_count, memory_order_acquire) < table->topics_max)
        return 0;
    return atomic_load_explicit(&entry->state, memory_order_acquire) == TOPIC_ENTRY_EMPTY;
}

static int topic_table_matches(const struct topic_entry *entry, const struct record_view *view,
                               uint32_t offset, uint32_t length, uint64_t hash) {
    return entry->hash == hash && entry->name_length == length &&
           topic_table_view_equals(view, offset, length, (const uint8_t *)entry->name);
}

static enum topic_table_result topic_table_lookup(struct topic_table *table,
                                                  const struct record_view *view, uint32_t offset,
                                                  uint32_t length, bool may_create,
                                                  uint32_t *topic_id) {
    INTAKE_ASSERT(length >= 1);
    INTAKE_ASSERT(length <= RECORD_TOPIC_BYTES_MAX);
    uint64_t hash = topic_table_hash_view(view, offset, length);
    uint32_t mask = table->slot_count - 1;
    uint32_t index = (uint32_t)hash & mask;
    /* Each slot is passed at most once and settles as ready or empty, so this ends; slot_count
     * exceeds topics_max plus the creators in flight, so an empty slot is always found. */
    for (uint32_t probes = 0; probes < table->slot_count;) {
        struct topic_entry *entry = &table->entries[index];
        uint32_t state = topic_table_wait_settled(entry);
        if (state == TOPIC_ENTRY_READY) {
            if (topic_table_matches(entry, view, offset, length, hash)) {
                *topic_id = entry->id;
                return TOPIC_TABLE_FOUND;
            }
            index = (index + 1) & mask;
            probes++;
            continue;
        }
        INTAKE_ASSERT(state == TOPIC_ENTRY_EMPTY);
        if (!may_create) return TOPIC_TABLE_ABSENT;
        /* The name is absent. At the limit, refuse without writing anything shared, so a flood
         * of unknown topics costs no cache-line traffic. */
        if (topic_table_at_limit(table, entry)) return TOPIC_TABLE_FULL;
        uint32_t expected = TOPIC_ENTRY_EMPTY;
        /* Acquire: sees the writes of a creator that gave this slot back before we overwrite
         * them. A failure means another creator claimed it: re-examine the same slot. */
        if (atomic_compare_exchange_strong_explicit(&entry->state, &expected, TOPIC_ENTRY_CREATING,
                                                    memory_order_acquire, memory_order_relaxed))
            return topic_table_create(table, entry, view, offset, length, hash, topic_id);
    }
    return TOPIC_TABLE_FULL;
}

enum topic_table_result topic_table_intern_view(struct topic_table *table,
                                                const struct record_view *view, uint32_t offset,
                                                uint32_t length, uint32_t *topic_id) {
    return topic_table_lookup(table, view, offset, length, true, topic_id);
}

enum topic_table_result topic_table_find_view(struct topic_table *table,
                                              const struct record_view *view, uint32_t offset,
                                              uint32_t length, uint32_t *topic_id) {
    return topic_table_lookup(table, view, offset, length, false, topic_id);
}

enum topic_table_result topic_table_intern_name(struct topic_table *table, const char *name,
                                                uint32_t length, uint32_t *topic_id) {
    INTAKE_ASSERT(name != NULL);
    /* A one-slice view, so names from configuration take the same path as received ones. */
    struct slice slice = {(const uint8_t *)name, length, 0};
    struct record_view view = {&slice, 1, length};
    return topic_table_intern_view(table, &view, 0, length, topic_id);
}

void topic_table_copy_name(const struct record_view *view, uint32_t offset, uint32_t length,
                           char out[RECORD_TOPIC_BYTES_MAX + 1]) {
    INTAKE_ASSERT(length <= RECORD_TOPIC_BYTES_MAX);
    topic_table_view_copy(view, offset, length, out);
}

const struct topic_entry *topic_table_entry(struct topic_table *table, uint32_t topic_id) {
    if (topic_id >= table->topics_max) return NULL;
    /* Acquire: pairs with the creator's release store, making the entry's contents visible. */
    return atomic_load_explicit(&table->by_id[topic_id], memory_order_acquire);
}

uint32_t topic_table_count(struct topic_table *table) {
    /* Relaxed: a count for stats; ids below it may not be published yet (see topic_table_entry). */
    return atomic_load_explicit(&table->topic_count, memory_order_relaxed);
}

void topic_table_publish_log_limit(struct topic_table *table, uint32_t topic_id, uint32_t bytes) {
    INTAKE_ASSERT(bytes > 0);
    INTAKE_ASSERT(topic_id < table->topics_max);
    struct topic_entry *entry = atomic_load_explicit(&table->by_id[topic_id], memory_order_acquire);
    INTAKE_ASSERT(entry != NULL);
    /* Release: pairs with topic_table_log_limit's acquire; the log is open before it is seen. */
    atomic_store_explicit(&entry->log_record_bytes_max, bytes, memory_order_release);
}
