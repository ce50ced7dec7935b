/*
 * dedupe_table_internal.h: what the table's two files share (not part of dedupe_table.h):
 *   dedupe_table.c       the table in memory: lookups, the batch protocol, the segmented LRU
 *   dedupe_table_file.c  its file: layout, checks on open, recovery from the log, updates
 * Thread: as dedupe_table.h (the opener, then the owning worker).
 */
#ifndef INTAKE_DEDUPE_TABLE_INTERNAL_H
#define INTAKE_DEDUPE_TABLE_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dedupe_table.h"
#include "intake/shm_log_format.h"

/* ------------------------------------------------ the file (docs/shm-log-format.md) --- */

/* "INTKDDP1" little-endian (every version). */
#define DEDUPE_FILE_MAGIC 0x315044444b544e49ull
/* 2: per-principal entries, a generation in each checksummed copy (no `active` index). */
#define DEDUPE_FILE_VERSION      2u
#define DEDUPE_FILE_HEADER_BYTES 128u
#define DEDUPE_FILE_ENTRY_BYTES  256u
/* A copy's flags. */
#define DEDUPE_COPY_FLAG_PROTECTED 1u /* the producer is in the protected segment */
/* The file's path: --shm-dir, "/", the base name and the suffix. */
#define DEDUPE_PATH_BYTES (4096 + SHM_LOG_FILE_NAME_BYTES + 64)

struct dedupe_file_header {
    /* --- line 0: identity, written once, covered by identity_checksum --- */
    uint64_t magic;             /* DEDUPE_FILE_MAGIC */
    uint32_t version;           /* DEDUPE_FILE_VERSION */
    uint32_t header_bytes;      /* DEDUPE_FILE_HEADER_BYTES */
    uint32_t entry_bytes;       /* DEDUPE_FILE_ENTRY_BYTES */
    uint32_t producers_max;     /* entries that follow the header */
    uint32_t fingerprints_max;  /* fingerprint ring slots after the entries */
    uint32_t identity_checksum; /* CRC32C of bytes 0..31 with this field zero */
    uint8_t reserved0[32];
    /* --- line 1: progress, single aligned words --- */
    _Atomic uint64_t covered_offset;       /* every log offset below is in the entries */
    _Atomic uint64_t fingerprints_written; /* ever written; the next goes to % max */
    uint8_t reserved1[48];
};
_Static_assert(sizeof(struct dedupe_file_header) == DEDUPE_FILE_HEADER_BYTES, "header size");
_Static_assert(offsetof(struct dedupe_file_header, identity_checksum) == 28, "identity");
_Static_assert(offsetof(struct dedupe_file_header, covered_offset) == 64, "line 1");

/* One copy of a producer's entry. All zero when it was never written. */
struct dedupe_file_copy {
    uint64_t highest_sequence; /* >= 1 */
    uint64_t last_offset;      /* log offset of the record that set it (recency) */
    uint64_t generation;       /* >= 1; the entry's newest valid copy has the highest */
    uint64_t principal;        /* the producer's principal's tag */
    uint32_t id_length;        /* 1..RECORD_PRODUCER_ID_BYTES_MAX */
    uint32_t flags;            /* DEDUPE_COPY_FLAG_* */
    uint32_t checksum;         /* CRC32C of the 112 bytes with this field zero */
    uint32_t reserved;         /* zero */
    uint8_t id[RECORD_PRODUCER_ID_BYTES_MAX]; /* zero after id_length */
};
_Static_assert(sizeof(struct dedupe_file_copy) == 112, "copy size");
_Static_assert(offsetof(struct dedupe_file_copy, checksum) == 40, "copy checksum");

struct dedupe_file_entry {
    struct dedupe_file_copy copies[2];
    uint8_t reserved[32];
};
_Static_assert(sizeof(struct dedupe_file_entry) == DEDUPE_FILE_ENTRY_BYTES, "entry size");

/* ------------------------------------------------------------- in memory --- */

/* The segments of the LRU (dedupe_table.h). */
enum dedupe_segment {
    DEDUPE_SEGMENT_NONE = 0, /* a free slot */
    DEDUPE_SEGMENT_PROBATION = 1,
    DEDUPE_SEGMENT_PROTECTED = 2,
};

/* A doubly linked list of slots, most recently committed at the head. */
struct dedupe_list {
    uint32_t head;
    uint32_t tail;
    uint32_t count;
};

struct dedupe_producer {
    uint64_t hash;            /* the keyed hash of (principal, id): the index's key */
    uint64_t principal;       /* its principal's tag */
    uint64_t committed;       /* highest committed sequence; 0 before the first commit */
    uint64_t pending;         /* highest appended in the open batch (>= committed) */
    uint64_t recency;         /* log offset of its last committed record */
    uint64_t pending_offset;  /* log offset of the last record appended in the open batch */
    uint64_t file_generation; /* generation of its newest copy in the file (0: none) */
    uint32_t list_prev;       /* toward the head of its segment's list */
    uint32_t list_next;       /* toward the tail */
    uint32_t id_length;       /* 0: the slot is free */
    uint8_t segment;          /* enum dedupe_segment */
    uint8_t file_newest;      /* which copy of its file entry has file_generation */
    bool touched;             /* listed in `touched` for the open batch */
    uint8_t id[RECORD_PRODUCER_ID_BYTES_MAX];
};

struct dedupe_table {
    char path[DEDUPE_PATH_BYTES];
    char topic[SHM_LOG_TOPIC_BYTES];
    uint32_t producers_max;
    uint32_t protected_max; /* 3/4 of producers_max */
    uint32_t size;
    struct dedupe_producer *producers; /* [producers_max]; slot i is file entry i */
    uint32_t *free_slots;              /* [producers_max], a stack */
    uint32_t free_count;
    struct dedupe_list probation;
    struct dedupe_list protected_list;
    uint32_t *index; /* open addressing: producer slot + 1, 0 empty */
    uint32_t index_mask;
    /* The slot the last check found or inserted (DEDUPE_ENTRY_NONE: none): a worker batch holds
     * a connection's records together, so the next record is usually the same producer's, and
     * one comparison of origins replaces the probe. Reset when that slot is freed (eviction)
     * or the table is cleared (rebuild). */
    uint32_t last_slot;
    uint32_t *touched; /* [producers_max]: slots appended to in the open batch */
    uint32_t touched_count;
    uint64_t *fingerprints; /* [fingerprints_max], ring */
    uint32_t fingerprints_max;
    uint64_t fingerprints_written;
    bool replaying; /* recovery at open: returns are not counted */
    /* The file's mapping (NULL when it could not be rewritten: the table still works). */
    uint8_t *map;
    size_t map_bytes;
    atomic_bool map_broken;
    int map_guard;
    struct dedupe_table_counts counts;
};

/* dedupe_table.c */
int dedupe_table_memory_init(struct dedupe_table *table, uint32_t producers_max);
void dedupe_table_memory_free(struct dedupe_table *table);
void dedupe_table_memory_clear(struct dedupe_table *table);
/* Recovery and loading: raises (or, unless `raise_only`, inserts) the origin's producer as
 * committed up to `sequence` at `log_offset`, evicting the least recently committed when full;
 * `established` puts it in the protected segment (a loaded entry that was). */
void dedupe_table_apply(struct dedupe_table *table, const struct record_origin *origin,
                        uint64_t sequence, uint64_t log_offset, bool established, bool raise_only);
/* Adds a fingerprint to the ring (memory, and the file when mapped). */
void dedupe_table_fingerprint_add(struct dedupe_table *table, uint64_t fingerprint);
/* The slot holding the origin's producer, or DEDUPE_ENTRY_NONE. */
uint32_t dedupe_table_find(const struct dedupe_table *table, const struct record_origin *origin);

/* dedupe_table_file.c */
/* Writes slot `slot`'s committed state into its file entry (the older copy, next generation). */
void dedupe_file_entry_write(struct dedupe_table *table, uint32_t slot);
void dedupe_file_covered_set(struct dedupe_table *table, uint64_t covered_offset);
void dedupe_file_fingerprint_write(struct dedupe_table *table, uint64_t fingerprint);
/* Rewrites the whole file from memory (open, and after the mapping broke). */
int dedupe_file_rewrite(struct dedupe_table *table, uint64_t covered_offset, char *why,
                        size_t why_capacity);
void dedupe_file_unmap(struct dedupe_table *table);

#endif
