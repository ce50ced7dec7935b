/*
 * dedupe_table.h: one topic's deduplication table: for each producer_id seen on the topic, the
 * highest sequence committed to the topic's log (issue 12, README "Exactly once").
 *
 * The rule (applied by the owning worker before it appends a record that has a producer_id): a
 * record whose sequence is at or below the highest one committed, or appended earlier in the
 * same batch, for its (producer_id, topic) is a duplicate: it is not appended, it is answered OK
 * and counted. Otherwise it is appended, and once its batch is published the table raises the
 * producer's highest.
 *
 * The window. The table holds at most `producers_max` producers (--dedupe-producers). When a new
 * producer arrives and the table is full, the producer whose last committed record is oldest in
 * the log (least recently committed) is evicted, and a 64-bit fingerprint of its id (length, CRC32C) is
 * kept in a ring of DEDUPE_FINGERPRINTS_PER_PRODUCER x producers_max. A producer that returns
 * after eviction has no highest sequence any more: its records are appended as new (a resend
 * of records it had before eviction lands twice), and its return is counted as "unremembered"
 * when its fingerprint is still in the ring.
 *
 * Persistence (docs/shm-log-format.md, "The deduplication table"). The table is mirrored in a
 * daemon-only file next to the log, <base name>.dedupe (mode 0600). Each producer's entry has
 * two copies, each with a CRC32C; an update writes the inactive copy and then flips the active
 * index with one store, so a SIGKILL leaves every entry whole. After the entries, the file's
 * covered_offset says which log offsets the table reflects. A SIGKILL between a publish and the
 * table update leaves covered_offset behind the log: on open the table re-applies the log's
 * entries from covered_offset (each holds the whole encoded Record), so nothing committed is
 * forgotten. The file is input: on open everything is checked (sizes, checksums, ids), and a
 * damaged file is moved aside (<file>.corrupt-<unix ms>) and the table rebuilt from what the
 * log still holds, with one line on stderr. The file is always rewritten whole at open (under a
 * temporary name, then renamed), at the configured size.
 *
 * Thread: the log opener opens it (dedupe_table_open); from then on only the worker that owns
 * the topic calls anything here. Hot path (check, appended, batch_end): no allocation, no
 * system call; lookups hash the id in place, reading it from the record's slices. A check first
 * compares the id with the producer the previous check found (a worker batch holds each
 * connection's records together), and hashes and probes only when that differs; batch_end
 * writes each producer touched in the batch to the file once.
 */
#ifndef INTAKE_DEDUPE_TABLE_H
#define INTAKE_DEDUPE_TABLE_H

#include <stdbool.h>
#include <stdint.h>

#include "common.h"
#include "record.h"
#include "shm_log.h"

/* --dedupe-producers: default and bounds. */
#define DEDUPE_PRODUCERS_DEFAULT 1024u
#define DEDUPE_PRODUCERS_MIN     1u
#define DEDUPE_PRODUCERS_MAX     65536u
/* Fingerprints of evicted producers kept, per producer the table holds. */
#define DEDUPE_FINGERPRINTS_PER_PRODUCER 4u
/* The file's name is shm_log_dedupe_file_name (intake/shm_log_format.h). */
#define DEDUPE_FILE_MODE 0600
/* The entry a record without a producer_id gets from dedupe_table_check. */
#define DEDUPE_ENTRY_NONE UINT32_MAX
/* record->log_offset of a duplicate: answered OK, never appended. */
#define DEDUPE_NOT_APPENDED UINT64_MAX

enum dedupe_verdict {
    DEDUPE_NEW = 0,       /* append it, then dedupe_table_appended */
    DEDUPE_DUPLICATE = 1, /* already committed (or appended in this batch): answer OK */
};

/* What the table counted since it was opened (read by its worker only). */
struct dedupe_table_counts {
    uint64_t duplicates;   /* records not appended: at or below their producer's highest */
    uint64_t evictions;    /* producers evicted to make room */
    uint64_t unremembered; /* producers that came back after eviction (fingerprint found) */
    uint64_t rebuilds;     /* opens that found the file damaged and rebuilt it (0 or 1) */
};

struct dedupe_table;

/* Bytes of the table's file for a capacity (preflight counts them against --shm-dir). */
uint64_t dedupe_table_file_bytes(uint32_t producers_max);

/* Log opener, after shm_log_open_writer: opens or creates the topic's table (directory and
 * topic as the log's), re-applies the log's entries the file does not cover, and rewrites the
 * file. Negative errno with one line in `why` when the file cannot be written (out of space);
 * a damaged file is not an error (rebuilt, said on stderr). */
int dedupe_table_open(const char *directory, const char *topic, uint32_t producers_max,
                      struct shm_log *log, struct dedupe_table **out, char *why,
                      size_t why_capacity) INTAKE_MUST_CHECK;
void dedupe_table_close(struct dedupe_table *table);

/* Worker, before appending a record whose producer_id is the `id_length` bytes at `id_offset`
 * of `view` (1..RECORD_PRODUCER_ID_BYTES_MAX; they may straddle slices) with `sequence` >= 1.
 * DEDUPE_NEW sets *entry (pass it to dedupe_table_appended once the record is appended). A
 * producer appended to in the open batch is never evicted: when all are (only when
 * producers_max is below the worker's batch), *entry is DEDUPE_ENTRY_NONE and the record is
 * appended without being remembered. */
enum dedupe_verdict dedupe_table_check(struct dedupe_table *table, const struct record_view *view,
                                       uint32_t id_offset, uint32_t id_length, uint64_t sequence,
                                       uint32_t *entry) INTAKE_MUST_CHECK;
/* Worker: the record checked as `entry` was appended at `log_offset` (not yet published). */
void dedupe_table_appended(struct dedupe_table *table, uint32_t entry, uint64_t sequence,
                           uint64_t log_offset);
/* Worker, after every shm_log_publish of the topic's log: `published` is its result. On
 * success the batch's sequences become committed and are written to the file, then the file's
 * covered_offset becomes `next_offset` (shm_log_next_offset); on failure they are forgotten. */
void dedupe_table_batch_end(struct dedupe_table *table, bool published, uint64_t next_offset);

const struct dedupe_table_counts *dedupe_table_counts(const struct dedupe_table *table);
/* Producers held now. */
uint32_t dedupe_table_size(const struct dedupe_table *table);
/* The highest committed sequence for an id (0 when not held): tests, log lines. */
uint64_t dedupe_table_highest(const struct dedupe_table *table, const uint8_t *id,
                              uint32_t id_length);

#endif
