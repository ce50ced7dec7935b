/*
 * dedupe_table.c: the deduplication table in memory (see dedupe_table.h for the contract):
 * an open-addressing index over a fixed array of producers, the batch protocol (check, appended,
 * batch_end), least-recently-committed eviction and the ring of evicted fingerprints.
 * Thread: the owning worker (the log opener during dedupe_table_open). No allocation after
 * dedupe_table_memory_init.
 */
#include "dedupe_table_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "record_scan.h"
#include "slice_cursor.h"

/* ------------------------------------------------------------ setup --- */

int dedupe_table_memory_init(struct dedupe_table *table, uint32_t producers_max) {
    INTAKE_ASSERT(producers_max >= DEDUPE_PRODUCERS_MIN);
    INTAKE_ASSERT(producers_max <= DEDUPE_PRODUCERS_MAX);
    table->producers_max = producers_max;
    /* At most half full: probes stay short. */
    uint32_t index_slots = 4;
    while (index_slots < 2 * producers_max) index_slots *= 2;
    table->index_mask = index_slots - 1;
    table->fingerprints_max = producers_max * DEDUPE_FINGERPRINTS_PER_PRODUCER;
    table->last_slot = DEDUPE_ENTRY_NONE;
    table->producers = calloc(producers_max, sizeof(struct dedupe_producer));
    table->index = calloc(index_slots, sizeof(uint32_t));
    table->touched = calloc(producers_max, sizeof(uint32_t));
    table->fingerprints = calloc(table->fingerprints_max, sizeof(uint64_t));
    if (table->producers == NULL || table->index == NULL || table->touched == NULL ||
        table->fingerprints == NULL) {
        dedupe_table_memory_free(table);
        return -ENOMEM;
    }
    return 0;
}

void dedupe_table_memory_free(struct dedupe_table *table) {
    free(table->producers);
    free(table->index);
    free(table->touched);
    free(table->fingerprints);
    table->producers = NULL;
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
}

/* ------------------------------------------------------------ the index --- */

/* An id's hash: its length in the high 32 bits, the CRC32C of its bytes (`id` when they are
 * contiguous, else read in place across the view's slices; the instruction takes 8 bytes at a
 * time) in the low 32 bits, which index the table. Also the fingerprint an evicted id leaves
 * (docs/shm-log-format.md). */
#ifdef SHM_LOG_CRC32C_HARDWARE
/* CRC32C of a short contiguous id, equal to intake_crc32c(0, id, length): 8 bytes at a time
 * from the first byte (unaligned loads; no byte-wise alignment prologue), then 4, 2 and 1. */
__attribute__((target("sse4.2"))) static uint32_t id_crc32c_sse42(const uint8_t *id,
                                                                  uint32_t length) {
    uint64_t state = UINT32_MAX;
    for (; length >= 8; length -= 8, id += 8) {
        uint64_t word;
        memcpy(&word, id, 8);
        state = _mm_crc32_u64(state, word);
    }
    uint32_t crc = (uint32_t)state;
    if (length >= 4) {
        uint32_t word;
        memcpy(&word, id, 4);
        crc = _mm_crc32_u32(crc, word);
        id += 4;
        length -= 4;
    }
    if (length >= 2) {
        uint16_t word;
        memcpy(&word, id, 2);
        crc = _mm_crc32_u16(crc, word);
        id += 2;
        length -= 2;
    }
    if (length == 1) crc = _mm_crc32_u8(crc, *id);
    return ~crc;
}
#endif

static uint32_t id_crc32c(const uint8_t *id, uint32_t length) {
#ifdef SHM_LOG_CRC32C_HARDWARE
    if (__builtin_cpu_supports("sse4.2")) {
        uint32_t crc = id_crc32c_sse42(id, length);
#if defined(INTAKE_SANITIZED)
        /* Sanitizer builds check it against the reference on every id. */
        INTAKE_ASSERT(crc == intake_crc32c(0, id, length));
#endif
        return crc;
    }
#endif
    return intake_crc32c(0, id, length);
}

static uint64_t id_hash(const uint8_t *id, const struct record_view *view, uint32_t offset,
                        uint32_t length) {
    if (id != NULL) return (uint64_t)length << 32 | id_crc32c(id, length);
    struct slice_cursor cursor;
    slice_cursor_init(&cursor, view);
    slice_cursor_advance(&cursor, offset);
    uint32_t crc = 0;
    for (uint32_t left = length; left > 0;) {
        uint32_t piece = slice_cursor_contiguous(&cursor);
        if (piece > left) piece = left;
        crc = intake_crc32c(crc, slice_cursor_pointer(&cursor), piece);
        slice_cursor_advance(&cursor, piece);
        left -= piece;
    }
    return (uint64_t)length << 32 | crc;
}

/* The id's bytes when they lie in one slice (nearly always: a record straddles two receive
 * buffers only at a buffer's end), else NULL. */
static const uint8_t *id_contiguous(const struct record_view *view, uint32_t offset,
                                    uint32_t length) {
    for (uint32_t index = 0; index < view->slice_count; index++) {
        const struct slice *slice = &view->slices[index];
        if (offset < slice->length)
            return length <= slice->length - offset ? slice->bytes + offset : NULL;
        offset -= slice->length;
    }
    return NULL;
}

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

/* Whether a held producer has this id (`id` the contiguous bytes, or NULL: read the view). */
static bool producer_has_id(const struct dedupe_producer *producer, const uint8_t *id,
                            const struct record_view *view, uint32_t id_offset,
                            uint32_t id_length) {
    if (producer->id_length != id_length) return false;
    if (id != NULL) return id_equal(producer->id, id, id_length);
    return record_view_equals(view, id_offset, id_length, producer->id);
}

/* The index slot holding `slot`, or where a probe for `hash` ends (an empty slot). */
static uint32_t index_find_view(const struct dedupe_table *table, uint64_t hash, const uint8_t *id,
                                const struct record_view *view, uint32_t id_offset,
                                uint32_t id_length) {
    uint32_t at = (uint32_t)hash & table->index_mask;
    for (uint32_t probes = 0; probes <= table->index_mask; probes++) {
        uint32_t held = table->index[at];
        if (held == 0) return at;
        const struct dedupe_producer *producer = &table->producers[held - 1];
        if (producer->hash == hash && producer_has_id(producer, id, view, id_offset, id_length))
            return at;
        at = (at + 1) & table->index_mask;
    }
    INTAKE_ASSERT(!"the index is at most half full, so a probe meets an empty slot");
    return 0;
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

void dedupe_table_fingerprint_add(struct dedupe_table *table, uint64_t fingerprint) {
    table->fingerprints[table->fingerprints_written % table->fingerprints_max] = fingerprint;
    table->fingerprints_written++;
    dedupe_file_fingerprint_write(table, fingerprint);
}

static bool fingerprint_known(const struct dedupe_table *table, uint64_t fingerprint) {
    uint64_t held = table->fingerprints_written < table->fingerprints_max
                        ? table->fingerprints_written
                        : table->fingerprints_max;
    for (uint64_t index = 0; index < held; index++)
        if (table->fingerprints[index] == fingerprint) return true;
    return false;
}

/* A free slot, evicting the least recently committed producer not appended to in the open
 * batch when the table is full. DEDUPE_ENTRY_NONE when every producer is in the open batch
 * (only when --dedupe-producers is below the worker's batch). */
static uint32_t slot_take(struct dedupe_table *table) {
    if (table->size < table->producers_max) {
        for (uint32_t slot = 0; slot < table->producers_max; slot++)
            if (table->producers[slot].id_length == 0) return slot;
        INTAKE_ASSERT(!"size below the maximum means a free slot");
    }
    uint32_t victim = DEDUPE_ENTRY_NONE;
    for (uint32_t slot = 0; slot < table->producers_max; slot++) {
        const struct dedupe_producer *producer = &table->producers[slot];
        if (producer->touched) continue;
        if (victim == DEDUPE_ENTRY_NONE || producer->recency < table->producers[victim].recency)
            victim = slot;
    }
    if (victim == DEDUPE_ENTRY_NONE) return victim;
    struct dedupe_producer *evicted = &table->producers[victim];
    index_remove(table, victim);
    if (table->last_slot == victim) table->last_slot = DEDUPE_ENTRY_NONE;
    /* A producer that never committed (its only record failed) leaves nothing to remember. */
    if (evicted->committed > 0) {
        dedupe_table_fingerprint_add(table, evicted->hash);
        table->counts.evictions++;
    }
    memset(evicted, 0, sizeof(*evicted));
    table->size--;
    return victim;
}

/* Inserts a producer at the end of a probe (`at`, an empty index slot). */
static uint32_t producer_insert(struct dedupe_table *table, uint32_t at, uint64_t hash,
                                const uint8_t *id, const struct record_view *view,
                                uint32_t id_offset, uint32_t id_length) {
    uint32_t slot = slot_take(table);
    if (slot == DEDUPE_ENTRY_NONE) return slot;
    /* Eviction may have shifted the index: probe again for the empty slot. */
    at = index_find_view(table, hash, id, view, id_offset, id_length);
    INTAKE_ASSERT(table->index[at] == 0);
    struct dedupe_producer *producer = &table->producers[slot];
    producer->hash = hash;
    producer->id_length = id_length;
    uint32_t copied = record_view_copy(view, id_offset, id_length, producer->id, id_length);
    INTAKE_ASSERT(copied == id_length);
    table->index[at] = slot + 1;
    table->size++;
    if (!table->replaying && fingerprint_known(table, hash)) table->counts.unremembered++;
    return slot;
}

/* ------------------------------------------------------------ the batch --- */

enum dedupe_verdict dedupe_table_check(struct dedupe_table *table, const struct record_view *view,
                                       uint32_t id_offset, uint32_t id_length, uint64_t sequence,
                                       uint32_t *entry) {
    INTAKE_ASSERT(id_length >= 1 && id_length <= RECORD_PRODUCER_ID_BYTES_MAX);
    INTAKE_ASSERT(id_offset + (uint64_t)id_length <= view->total_bytes);
    /* The scan refuses a record with a producer_id and no sequence. */
    INTAKE_ASSERT(sequence >= 1);
    const uint8_t *id = id_contiguous(view, id_offset, id_length);
    uint32_t slot = table->last_slot;
    if (slot == DEDUPE_ENTRY_NONE ||
        !producer_has_id(&table->producers[slot], id, view, id_offset, id_length)) {
        uint64_t hash = id_hash(id, view, id_offset, id_length);
        uint32_t at = index_find_view(table, hash, id, view, id_offset, id_length);
        if (table->index[at] == 0) {
            slot = producer_insert(table, at, hash, id, view, id_offset, id_length);
            table->last_slot = slot;
            *entry = slot;
            return DEDUPE_NEW;
        }
        slot = table->index[at] - 1;
        table->last_slot = slot;
    }
    const struct dedupe_producer *producer = &table->producers[slot];
    uint64_t highest = producer->touched ? producer->pending : producer->committed;
    if (sequence <= highest) {
        table->counts.duplicates++;
        return DEDUPE_DUPLICATE;
    }
    *entry = slot;
    return DEDUPE_NEW;
}

void dedupe_table_appended(struct dedupe_table *table, uint32_t entry, uint64_t sequence,
                           uint64_t log_offset) {
    if (entry == DEDUPE_ENTRY_NONE) return; /* appended unremembered (slot_take) */
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

void dedupe_table_batch_end(struct dedupe_table *table, bool published, uint64_t next_offset) {
    for (uint32_t index = 0; index < table->touched_count; index++) {
        struct dedupe_producer *producer = &table->producers[table->touched[index]];
        INTAKE_ASSERT(producer->touched);
        producer->touched = false;
        if (!published) continue;
        producer->committed = producer->pending;
        producer->recency = producer->pending_offset;
        dedupe_file_entry_write(table, table->touched[index]);
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

void dedupe_table_apply(struct dedupe_table *table, const uint8_t *id, uint32_t id_length,
                        uint64_t sequence, uint64_t log_offset) {
    INTAKE_ASSERT(id_length >= 1 && id_length <= RECORD_PRODUCER_ID_BYTES_MAX);
    struct slice slice = {.bytes = id, .length = id_length, .unit = 0};
    struct record_view view = {&slice, 1, id_length};
    uint64_t hash = id_hash(id, &view, 0, id_length);
    uint32_t at = index_find_view(table, hash, id, &view, 0, id_length);
    uint32_t slot = table->index[at];
    if (slot == 0) {
        slot = producer_insert(table, at, hash, id, &view, 0, id_length) + 1;
        INTAKE_ASSERT(slot != 0); /* nothing is touched during recovery */
    }
    struct dedupe_producer *producer = &table->producers[slot - 1];
    if (sequence > producer->committed) producer->committed = sequence;
    if (log_offset > producer->recency || producer->recency == 0) producer->recency = log_offset;
}

/* ------------------------------------------------------------ queries --- */

const struct dedupe_table_counts *dedupe_table_counts(const struct dedupe_table *table) {
    return &table->counts;
}

uint32_t dedupe_table_size(const struct dedupe_table *table) {
    return table->size;
}

uint64_t dedupe_table_highest(const struct dedupe_table *table, const uint8_t *id,
                              uint32_t id_length) {
    if (id_length == 0 || id_length > RECORD_PRODUCER_ID_BYTES_MAX) return 0;
    struct slice slice = {.bytes = id, .length = id_length, .unit = 0};
    struct record_view view = {&slice, 1, id_length};
    uint32_t at = index_find_view(table, id_hash(id, &view, 0, id_length), id, &view, 0, id_length);
    uint32_t slot = table->index[at];
    return slot == 0 ? 0 : table->producers[slot - 1].committed;
}
