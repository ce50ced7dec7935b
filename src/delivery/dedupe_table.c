/*
 * dedupe_table.c: the deduplication table in memory (see dedupe_table.h for the contract):
 * an open-addressing index over a fixed array of producers keyed by their keyed hash, the
 * batch protocol (check, appended, batch_end), the segmented LRU (two lists ordered by last
 * commit) and the ring of evicted fingerprints.
 * Thread: the owning worker (the log opener during dedupe_table_open). No allocation after
 * dedupe_table_memory_init; every operation is O(1) but the eviction's walk past producers of
 * the open batch (at most a batch's worth).
 */
#include "dedupe_table_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"

/* ------------------------------------------------------------ setup --- */

static void lists_reset(struct dedupe_table *table) {
    table->probation = (struct dedupe_list){DEDUPE_ENTRY_NONE, DEDUPE_ENTRY_NONE, 0};
    table->protected_list = (struct dedupe_list){DEDUPE_ENTRY_NONE, DEDUPE_ENTRY_NONE, 0};
    /* Slot 0 on top: the file fills from its start. */
    table->free_count = table->producers_max;
    for (uint32_t index = 0; index < table->producers_max; index++)
        table->free_slots[index] = table->producers_max - 1 - index;
}

int dedupe_table_memory_init(struct dedupe_table *table, uint32_t producers_max) {
    INTAKE_ASSERT(producers_max >= DEDUPE_PRODUCERS_MIN);
    INTAKE_ASSERT(producers_max <= DEDUPE_PRODUCERS_MAX);
    table->producers_max = producers_max;
    table->protected_max = (uint32_t)((uint64_t)producers_max * 3 / 4);
    /* At most half full: probes stay short. */
    uint32_t index_slots = 4;
    while (index_slots < 2 * producers_max) index_slots *= 2;
    table->index_mask = index_slots - 1;
    table->fingerprints_max = producers_max * DEDUPE_FINGERPRINTS_PER_PRODUCER;
    table->last_slot = DEDUPE_ENTRY_NONE;
    table->producers = calloc(producers_max, sizeof(struct dedupe_producer));
    table->free_slots = calloc(producers_max, sizeof(uint32_t));
    table->index = calloc(index_slots, sizeof(uint32_t));
    table->touched = calloc(producers_max, sizeof(uint32_t));
    table->fingerprints = calloc(table->fingerprints_max, sizeof(uint64_t));
    if (table->producers == NULL || table->free_slots == NULL || table->index == NULL ||
        table->touched == NULL || table->fingerprints == NULL) {
        dedupe_table_memory_free(table);
        return -ENOMEM;
    }
    lists_reset(table);
    return 0;
}

void dedupe_table_memory_free(struct dedupe_table *table) {
    free(table->producers);
    free(table->free_slots);
    free(table->index);
    free(table->touched);
    free(table->fingerprints);
    table->producers = NULL;
    table->free_slots = NULL;
    table->index = NULL;
    table->touched = NULL;
    table->fingerprints = NULL;
}

void dedupe_table_memory_clear(struct dedupe_table *table) {
    memset(table->producers, 0, (size_t)table->producers_max * sizeof(struct dedupe_producer));
    memset(table->index, 0, ((size_t)table->index_mask + 1) * sizeof(uint32_t));
    memset(table->fingerprints, 0, (size_t)table->fingerprints_max * sizeof(uint64_t));
    table->size = 0;
    table->last_slot = DEDUPE_ENTRY_NONE;
    table->touched_count = 0;
    table->fingerprints_written = 0;
    lists_reset(table);
}

/* ------------------------------------------------------------ the lists --- */

static struct dedupe_list *segment_list(struct dedupe_table *table, uint8_t segment) {
    INTAKE_ASSERT(segment == DEDUPE_SEGMENT_PROBATION || segment == DEDUPE_SEGMENT_PROTECTED);
    return segment == DEDUPE_SEGMENT_PROBATION ? &table->probation : &table->protected_list;
}

static void list_unlink(struct dedupe_table *table, uint32_t slot) {
    struct dedupe_producer *producer = &table->producers[slot];
    struct dedupe_list *list = segment_list(table, producer->segment);
    if (producer->list_prev != DEDUPE_ENTRY_NONE)
        table->producers[producer->list_prev].list_next = producer->list_next;
    else
        list->head = producer->list_next;
    if (producer->list_next != DEDUPE_ENTRY_NONE)
        table->producers[producer->list_next].list_prev = producer->list_prev;
    else
        list->tail = producer->list_prev;
    INTAKE_ASSERT(list->count > 0);
    list->count--;
    producer->segment = DEDUPE_SEGMENT_NONE;
}

/* Links `slot` into `segment`'s list, at its head (most recently committed) or its tail. */
static void list_link(struct dedupe_table *table, uint32_t slot, uint8_t segment, bool at_head) {
    struct dedupe_producer *producer = &table->producers[slot];
    INTAKE_ASSERT(producer->segment == DEDUPE_SEGMENT_NONE);
    struct dedupe_list *list = segment_list(table, segment);
    producer->segment = segment;
    if (list->head == DEDUPE_ENTRY_NONE) {
        producer->list_prev = producer->list_next = DEDUPE_ENTRY_NONE;
        list->head = list->tail = slot;
    } else if (at_head) {
        producer->list_prev = DEDUPE_ENTRY_NONE;
        producer->list_next = list->head;
        table->producers[list->head].list_prev = slot;
        list->head = slot;
    } else {
        producer->list_next = DEDUPE_ENTRY_NONE;
        producer->list_prev = list->tail;
        table->producers[list->tail].list_next = slot;
        list->tail = slot;
    }
    list->count++;
}

/* The least recently committed producer of a list that is not in the open batch, or NONE.
 * Walks past at most the batch's producers. */
static uint32_t list_oldest_untouched(const struct dedupe_table *table,
                                      const struct dedupe_list *list) {
    for (uint32_t slot = list->tail; slot != DEDUPE_ENTRY_NONE;
         slot = table->producers[slot].list_prev)
        if (!table->producers[slot].touched) return slot;
    return DEDUPE_ENTRY_NONE;
}

/* Moves a producer to the head of `segment` (promotion, demotion, a commit), keeping the
 * protected segment within protected_max by moving its oldest producer to probation. */
static void segment_move_to_head(struct dedupe_table *table, uint32_t slot, uint8_t segment) {
    if (segment == DEDUPE_SEGMENT_PROTECTED &&
        table->producers[slot].segment != DEDUPE_SEGMENT_PROTECTED) {
        if (table->protected_max == 0)
            segment = DEDUPE_SEGMENT_PROBATION;
        else if (table->protected_list.count >= table->protected_max) {
            uint32_t demoted = list_oldest_untouched(table, &table->protected_list);
            if (demoted == DEDUPE_ENTRY_NONE) {
                segment = DEDUPE_SEGMENT_PROBATION; /* every protected one is in this batch */
            } else {
                list_unlink(table, demoted);
                list_link(table, demoted, DEDUPE_SEGMENT_PROBATION, true);
            }
        }
    }
    list_unlink(table, slot);
    list_link(table, slot, segment, true);
}

/* ------------------------------------------------------------ the index --- */

/* Equal ids of `length` bytes (1..RECORD_PRODUCER_ID_BYTES_MAX), inline: 8 bytes at a time,
 * the last 8 first (ids of one host, such as time-based UUIDs or a name and a counter, differ
 * most often near their end), without a call into the C library's memcmp. */
static inline bool id_equal(const uint8_t *a, const uint8_t *b, uint32_t length) {
    if (length < 8) return memcmp(a, b, length) == 0;
    uint64_t word_a;
    uint64_t word_b;
    memcpy(&word_a, a + length - 8, 8);
    memcpy(&word_b, b + length - 8, 8);
    if (word_a != word_b) return false;
    for (uint32_t at = 0; at + 8 < length; at += 8) {
        memcpy(&word_a, a + at, 8);
        memcpy(&word_b, b + at, 8);
        if (word_a != word_b) return false;
    }
    return true;
}

/* Whether a held producer is the origin's (same keyed hash, principal and id). */
static inline bool producer_is(const struct dedupe_producer *producer,
                               const struct record_origin *origin) {
    return producer->hash == origin->producer_hash && producer->principal == origin->principal &&
           producer->id_length == origin->producer_id_length &&
           id_equal(producer->id, origin->producer_id, origin->producer_id_length);
}

/* The index slot holding the origin's producer, or where a probe for it ends (an empty slot).
 * The hash is keyed (keyed_hash.h): a peer cannot choose ids that share a probe sequence. */
static uint32_t index_find(const struct dedupe_table *table, const struct record_origin *origin) {
    uint32_t at = (uint32_t)origin->producer_hash & table->index_mask;
    for (uint32_t probes = 0; probes <= table->index_mask; probes++) {
        uint32_t held = table->index[at];
        if (held == 0) return at;
        if (producer_is(&table->producers[held - 1], origin)) return at;
        at = (at + 1) & table->index_mask;
    }
    INTAKE_ASSERT(!"the index is at most half full, so a probe meets an empty slot");
    return 0;
}

uint32_t dedupe_table_find(const struct dedupe_table *table, const struct record_origin *origin) {
    uint32_t held = table->index[index_find(table, origin)];
    return held == 0 ? DEDUPE_ENTRY_NONE : held - 1;
}

/* Removes `slot` from the index (backward-shift deletion keeps probes unbroken). */
static void index_remove(struct dedupe_table *table, uint32_t slot) {
    uint32_t at = (uint32_t)table->producers[slot].hash & table->index_mask;
    while (table->index[at] != slot + 1) {
        INTAKE_ASSERT(table->index[at] != 0);
        at = (at + 1) & table->index_mask;
    }
    uint32_t hole = at;
    for (uint32_t next = (hole + 1) & table->index_mask; table->index[next] != 0;
         next = (next + 1) & table->index_mask) {
        uint32_t home = (uint32_t)table->producers[table->index[next] - 1].hash & table->index_mask;
        /* Move it into the hole unless its home lies cyclically in (hole, next]. */
        bool stays = hole <= next ? (home > hole && home <= next) : (home > hole || home <= next);
        if (stays) continue;
        table->index[hole] = table->index[next];
        hole = next;
    }
    table->index[hole] = 0;
}

/* ------------------------------------------------------ eviction, fingerprints --- */

/* An evicted producer's fingerprint: the length of its id in the high 32 bits, the CRC32C of
 * its principal's tag (8 bytes, little-endian) and id in the low 32 (docs/shm-log-format.md).
 * Unkeyed, so it survives restarts; a collision only changes a counter. */
static uint64_t fingerprint_of(uint64_t principal, const uint8_t *id, uint32_t length) {
    uint8_t tag[8];
    for (int index = 0; index < 8; index++) tag[index] = (uint8_t)(principal >> (8 * index));
    uint32_t crc = intake_crc32c(intake_crc32c(0, tag, sizeof(tag)), id, length);
    return (uint64_t)length << 32 | crc;
}

void dedupe_table_fingerprint_add(struct dedupe_table *table, uint64_t fingerprint) {
    table->fingerprints[table->fingerprints_written % table->fingerprints_max] = fingerprint;
    table->fingerprints_written++;
    dedupe_file_fingerprint_write(table, fingerprint);
}

/* Linear in the ring (4 x producers_max), once per producer new to the table. */
static bool fingerprint_known(const struct dedupe_table *table, uint64_t fingerprint) {
    uint64_t held = table->fingerprints_written < table->fingerprints_max
                        ? table->fingerprints_written
                        : table->fingerprints_max;
    for (uint64_t index = 0; index < held; index++)
        if (table->fingerprints[index] == fingerprint) return true;
    return false;
}

/* A free slot, evicting when the table is full: the least recently committed producer of
 * probation not appended to in the open batch, else of protected. DEDUPE_ENTRY_NONE when
 * every producer is in the open batch (only when --dedupe-producers is below a batch). */
static uint32_t slot_take(struct dedupe_table *table) {
    if (table->free_count > 0) {
        uint32_t slot = table->free_slots[--table->free_count];
        INTAKE_ASSERT(table->producers[slot].id_length == 0);
        return slot;
    }
    uint32_t victim = list_oldest_untouched(table, &table->probation);
    if (victim == DEDUPE_ENTRY_NONE) victim = list_oldest_untouched(table, &table->protected_list);
    if (victim == DEDUPE_ENTRY_NONE) return victim;
    struct dedupe_producer *evicted = &table->producers[victim];
    index_remove(table, victim);
    list_unlink(table, victim);
    if (table->last_slot == victim) table->last_slot = DEDUPE_ENTRY_NONE;
    /* A producer that never committed (its only batch failed) leaves nothing to remember. */
    if (evicted->committed > 0) {
        dedupe_table_fingerprint_add(
            table, fingerprint_of(evicted->principal, evicted->id, evicted->id_length));
        table->counts.evictions++;
    }
    memset(evicted, 0, sizeof(*evicted));
    table->size--;
    return victim;
}

/* Inserts the origin's producer, new to the table, at the tail of probation (it has not
 * committed yet: if its batch fails, it is the first to go). NONE when no slot can be had. */
static uint32_t producer_insert(struct dedupe_table *table, const struct record_origin *origin) {
    uint32_t slot = slot_take(table);
    if (slot == DEDUPE_ENTRY_NONE) return slot;
    /* Eviction may have shifted the index: probe again for the empty slot. */
    uint32_t at = index_find(table, origin);
    INTAKE_ASSERT(table->index[at] == 0);
    struct dedupe_producer *producer = &table->producers[slot];
    producer->hash = origin->producer_hash;
    producer->principal = origin->principal;
    producer->id_length = origin->producer_id_length;
    memcpy(producer->id, origin->producer_id, origin->producer_id_length);
    list_link(table, slot, DEDUPE_SEGMENT_PROBATION, false);
    table->index[at] = slot + 1;
    table->size++;
    if (!table->replaying &&
        fingerprint_known(table, fingerprint_of(origin->principal, origin->producer_id,
                                                origin->producer_id_length)))
        table->counts.unremembered++;
    return slot;
}

/* ------------------------------------------------------------ the batch --- */

enum dedupe_verdict dedupe_table_check(struct dedupe_table *table,
                                       const struct record_origin *origin, uint64_t sequence,
                                       uint32_t sequence_flags, uint32_t *entry) {
    INTAKE_ASSERT(origin->producer_id_length >= 1);
    INTAKE_ASSERT(origin->producer_id_length <= RECORD_PRODUCER_ID_BYTES_MAX);
    /* The scan refuses a record with a producer_id and no sequence. */
    INTAKE_ASSERT(sequence >= 1);
    uint32_t slot = table->last_slot;
    if (slot == DEDUPE_ENTRY_NONE || !producer_is(&table->producers[slot], origin)) {
        uint32_t at = index_find(table, origin);
        if (table->index[at] == 0) {
            slot = producer_insert(table, origin);
            table->last_slot = slot;
            *entry = slot;
            return DEDUPE_NEW;
        }
        slot = table->index[at] - 1;
        table->last_slot = slot;
    }
    const struct dedupe_producer *producer = &table->producers[slot];
    uint64_t highest = producer->touched ? producer->pending : producer->committed;
    if (sequence > highest) {
        *entry = slot;
        return DEDUPE_NEW;
    }
    /* Inside a gap of its producer: never written, so never a duplicate (dedupe_table.h). */
    if (sequence_flags & RECORD_SEQUENCE_GAP_FILL) {
        *entry = DEDUPE_ENTRY_NONE;
        return DEDUPE_NEW;
    }
    table->counts.duplicates++;
    return DEDUPE_DUPLICATE;
}

void dedupe_table_appended(struct dedupe_table *table, uint32_t entry, uint64_t sequence,
                           uint64_t log_offset) {
    if (entry == DEDUPE_ENTRY_NONE) {
        /* A gap fill at or below the highest, or a producer the table could not hold. */
        table->counts.unprotected++;
        return;
    }
    INTAKE_ASSERT(entry < table->producers_max);
    struct dedupe_producer *producer = &table->producers[entry];
    INTAKE_ASSERT(producer->id_length != 0);
    if (!producer->touched) {
        INTAKE_ASSERT(table->touched_count < table->producers_max);
        producer->touched = true;
        producer->pending = producer->committed;
        table->touched[table->touched_count++] = entry;
    }
    /* dedupe_table_check said it is above the highest, and nothing ran in between. */
    INTAKE_ASSERT(sequence > producer->pending);
    producer->pending = sequence;
    producer->pending_offset = log_offset;
}

/* Orders the batch's producers by their last record (insertion sort: at most a batch of 64),
 * so moving each to its list's head in turn leaves the lists in commit order. */
static void touched_sort(struct dedupe_table *table) {
    for (uint32_t index = 1; index < table->touched_count; index++) {
        uint32_t slot = table->touched[index];
        uint64_t offset = table->producers[slot].pending_offset;
        uint32_t at = index;
        for (; at > 0 && table->producers[table->touched[at - 1]].pending_offset > offset; at--)
            table->touched[at] = table->touched[at - 1];
        table->touched[at] = slot;
    }
}

void dedupe_table_batch_end(struct dedupe_table *table, bool published, uint64_t next_offset) {
    if (published) touched_sort(table);
    for (uint32_t index = 0; index < table->touched_count; index++) {
        uint32_t slot = table->touched[index];
        struct dedupe_producer *producer = &table->producers[slot];
        INTAKE_ASSERT(producer->touched);
        producer->touched = false;
        if (!published) continue;
        /* Committed in an earlier batch too: established, so protected from new ids. */
        bool established = producer->committed > 0;
        producer->committed = producer->pending;
        producer->recency = producer->pending_offset;
        segment_move_to_head(table, slot,
                             established ? DEDUPE_SEGMENT_PROTECTED : producer->segment);
        dedupe_file_entry_write(table, slot);
    }
    table->touched_count = 0;
    /* The entries first, then the offset they cover: a SIGKILL between the two leaves the
     * offset behind, and recovery re-applies those records (raising is idempotent). */
    if (published) dedupe_file_covered_set(table, next_offset);
    /* The file was truncated under us (SIGBUS recovered into zero pages): write it again from
     * memory, which is whole. Rare, and a file creation: not on the per-record path. */
    if (published && table->map != NULL && atomic_load(&table->map_broken)) {
        char why[DEDUPE_PATH_BYTES + 128];
        if (dedupe_file_rewrite(table, next_offset, why, sizeof(why)) != 0)
            fprintf(stderr, "intaked: topic \"%s\": %s\n", table->topic, why);
    }
}

/* ------------------------------------------------------------ recovery --- */

void dedupe_table_apply(struct dedupe_table *table, const struct record_origin *origin,
                        uint64_t sequence, uint64_t log_offset, bool established, bool raise_only) {
    INTAKE_ASSERT(origin->producer_id_length >= 1);
    INTAKE_ASSERT(origin->producer_id_length <= RECORD_PRODUCER_ID_BYTES_MAX);
    INTAKE_ASSERT(sequence >= 1);
    uint32_t slot = dedupe_table_find(table, origin);
    if (slot == DEDUPE_ENTRY_NONE) {
        if (raise_only) return;
        slot = producer_insert(table, origin);
        INTAKE_ASSERT(slot != DEDUPE_ENTRY_NONE); /* nothing is touched during recovery */
    } else if (table->producers[slot].committed > 0 &&
               table->producers[slot].recency != log_offset) {
        /* A second record of it in the log: committed more than once. */
        established = true;
    }
    struct dedupe_producer *producer = &table->producers[slot];
    if (sequence > producer->committed) producer->committed = sequence;
    if (log_offset > producer->recency || producer->recency == 0) producer->recency = log_offset;
    /* Applied oldest first (entries sorted by recency, then the log in order): to the head. */
    segment_move_to_head(table, slot, established ? DEDUPE_SEGMENT_PROTECTED : producer->segment);
}

/* ------------------------------------------------------------ queries --- */

const struct dedupe_table_counts *dedupe_table_counts(const struct dedupe_table *table) {
    return &table->counts;
}

uint32_t dedupe_table_size(const struct dedupe_table *table) {
    return table->size;
}

uint32_t dedupe_table_protected(const struct dedupe_table *table) {
    return table->protected_list.count;
}

uint64_t dedupe_table_highest(const struct dedupe_table *table,
                              const struct record_origin *origin) {
    if (origin->producer_id_length == 0 ||
        origin->producer_id_length > RECORD_PRODUCER_ID_BYTES_MAX)
        return 0;
    uint32_t slot = dedupe_table_find(table, origin);
    return slot == DEDUPE_ENTRY_NONE ? 0 : table->producers[slot].committed;
}
