/*
 * dedupe_table.h: one topic's deduplication table: for each producer seen on the topic, keyed
 * by (principal, producer_id), the highest sequence committed to the topic's log (issues 12
 * and 17, README "Deduplication").
 *
 * The rule (applied by the owning worker before it appends a record that has a producer_id): a
 * record whose sequence is at or below the highest one committed, or appended earlier in the
 * same batch, for its (principal, producer_id, topic) is a duplicate: it is not appended, it is
 * answered OK and counted. Otherwise it is appended, and once its batch is published the table
 * raises the producer's highest. Two exceptions append without asking the table, and are
 * counted as unprotected (`unprotected`: a later resend of such a record may land twice):
 *   - a record whose sequence the reactor found inside a gap of its producer
 *     (RECORD_SEQUENCE_GAP_FILL, producer_table.h): the daemon never admitted that sequence,
 *     so nothing with it was written, and "at or below the highest" would ack a record that
 *     was never written;
 *   - a producer the table cannot remember: every producer it holds was appended to in the
 *     open batch (only when --dedupe-producers is below a worker's batch of 64).
 * Why "at or below the highest" is otherwise sound, now that anyone may send anything: a
 * producer's records reach the daemon in order on each connection (the framer refuses a
 * sequence that is not the previous plus one), and the only way a sequence is skipped is a
 * connection's first record running ahead of what the daemon has seen of the producer, which
 * the reactor records as a gap (bounded, producer_table.h). So below the highest, every
 * sequence not in a gap was admitted, and an honest producer resends each sequence to the topic
 * it first went to: a record there at or below the highest was committed (or is a forger's,
 * under the same principal, which can only cost the forger's own record).
 *
 * The window: a segmented LRU. The table holds at most `producers_max` producers
 * (--dedupe-producers), in two segments ordered by their last commit: probation, where a new
 * producer enters, and protected, where it moves once it commits in a later batch than its
 * first (at most 3/4 of the table; the least recently committed protected producer drops back
 * to probation when it overflows). A new producer in a full table evicts the least recently
 * committed producer of probation, and only when probation holds none one of protected
 * (producers appended to in the open batch are never evicted). So made-up ids that commit once
 * each (a flood of one-record connections) only ever evict one another: a producer that
 * committed in two batches stays until 3/4 of the table's worth of other producers committed
 * in two batches each, more recently. What an attacker can still do: make its ids
 * commit in two separate batches (a record, its Ack, another record, per id) and so push out
 * established producers, at the cost of two written, counted records per id; every eviction
 * of a producer that had committed is counted (`evictions`), and its 64-bit fingerprint (the
 * length of its id in the high 32 bits, CRC32C of principal tag and id in the low 32) kept in a
 * ring of DEDUPE_FINGERPRINTS_PER_PRODUCER x producers_max; a producer that returns after
 * eviction is appended as new (a resend of records it had before eviction lands twice), and
 * its return is counted as "unremembered" when its fingerprint is still in the ring.
 *
 * Persistence (docs/shm-log-format.md, "The deduplication table"). The table is mirrored in a
 * daemon-only file next to the log, <base name>.dedupe (mode 0600). Each producer's entry has
 * two copies, each with a generation and a CRC32C over all of it; an update overwrites the copy
 * that is not the newest with the next generation, so a SIGKILL leaves at least one whole copy,
 * and the reader takes the valid copy with the highest generation (no index outside a checksum:
 * a flipped byte makes its copy invalid, never selects another). After the entries, the
 * file's covered_offset says which log offsets the table reflects. A SIGKILL between a publish
 * and the table update leaves covered_offset behind the log: on open the table re-applies the
 * log's entries from covered_offset (each holds the whole encoded Record and the principal
 * that wrote it), so nothing committed is forgotten. The file is input: on open everything is
 * checked (sizes, checksums, ids). An entry with one invalid copy (a write cut short by a
 * crash, or damage to either copy) keeps its valid copy, and the whole log is re-applied to the
 * producers the table holds (so damage to the newest copy is repaired from the log), with one
 * line. A file that fails any other check (both copies of an entry invalid, a bad header) is
 * moved aside (<file>.corrupt-<unix ms>) and the table rebuilt from what the log still holds,
 * with one line on stderr. A file that cannot be read for lack of a resource (EMFILE, ENFILE,
 * ENOMEM, ENOSPC, EIO...) is not damage: the open fails with that error, the topic's log is not
 * served (its records are answered RESOURCE_EXHAUSTED) and the open is retried on the topic's
 * next record at least a second later (log_opener.h, worker.c); a healthy table is never
 * discarded. The file is always rewritten whole at open (under a temporary name, then renamed),
 * at the configured size.
 *
 * Thread: the log opener opens it (dedupe_table_open, with its keyed hasher for the ids it
 * loads and replays); from then on only the worker that owns the topic calls anything here.
 * Hot path (check, appended, batch_end): no allocation, no system call, no hashing: a record's
 * origin (record.h) carries its producer's keyed hash, computed once per connection. A check
 * first compares the origin with the producer the previous check found (a worker batch holds
 * each connection's records together), and probes only when that differs; batch_end writes
 * each producer touched in the batch to the file once.
 */
#ifndef INTAKE_DEDUPE_TABLE_H
#define INTAKE_DEDUPE_TABLE_H

#include <stdbool.h>
#include <stdint.h>

#include "common.h"
#include "keyed_hash.h"
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
/* The entry dedupe_table_check gives a record it cannot protect. */
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
    uint64_t evictions;    /* producers that had committed, evicted to make room */
    uint64_t unremembered; /* producers that came back after eviction (fingerprint found) */
    uint64_t unprotected;  /* records appended without protection (a gap fill, or a producer
                            * the table could not hold): a later resend may land twice */
    uint64_t rebuilds;     /* opens that found the file damaged and rebuilt it (0 or 1) */
    uint64_t repairs;      /* opens that found a copy invalid and re-applied the whole log */
};

struct dedupe_table;

/* Bytes of the table's file for a capacity (preflight counts them against --shm-dir). */
uint64_t dedupe_table_file_bytes(uint32_t producers_max);

/* Log opener, after shm_log_open_writer: opens or creates the topic's table (directory and
 * topic as the log's), re-applies the log's entries the file does not cover, and rewrites the
 * file; `hasher` (the caller's) hashes the ids it loads. Negative errno with one line in `why`
 * when the file cannot be read or written for lack of a resource (see above); a damaged file is
 * not an error (rebuilt, said on stderr). */
int dedupe_table_open(const char *directory, const char *topic, uint32_t producers_max,
                      struct shm_log *log, struct keyed_hasher *hasher, struct dedupe_table **out,
                      char *why, size_t why_capacity) INTAKE_MUST_CHECK;
void dedupe_table_close(struct dedupe_table *table);

/* Worker, before appending a record whose `origin` has a producer_id, with `sequence` >= 1 and
 * the record's RECORD_SEQUENCE_* flags. DEDUPE_NEW sets *entry (pass it to
 * dedupe_table_appended once the record is appended); *entry is DEDUPE_ENTRY_NONE when the
 * table does not protect the record (a gap fill at or below the producer's highest, or no room:
 * see above). */
enum dedupe_verdict dedupe_table_check(struct dedupe_table *table,
                                       const struct record_origin *origin, uint64_t sequence,
                                       uint32_t sequence_flags, uint32_t *entry) INTAKE_MUST_CHECK;
/* Worker: the record checked as `entry` was appended at `log_offset` (not yet published). */
void dedupe_table_appended(struct dedupe_table *table, uint32_t entry, uint64_t sequence,
                           uint64_t log_offset);
/* Worker, after every shm_log_publish of the topic's log: `published` is its result. On
 * success the batch's sequences become committed and are written to the file, then the file's
 * covered_offset becomes `next_offset` (shm_log_next_offset); on failure they are forgotten. */
void dedupe_table_batch_end(struct dedupe_table *table, bool published, uint64_t next_offset);

const struct dedupe_table_counts *dedupe_table_counts(const struct dedupe_table *table);
/* Producers held now, and of them in the protected segment. */
uint32_t dedupe_table_size(const struct dedupe_table *table);
uint32_t dedupe_table_protected(const struct dedupe_table *table);
/* The highest committed sequence of the origin's producer (0 when not held): tests, lines. */
uint64_t dedupe_table_highest(const struct dedupe_table *table, const struct record_origin *origin);

/* Every producer in a table file, for the producer table's seeding at startup (pipeline.c):
 * reads `path` (a <topic>.dedupe file) with pread and calls `visit` for each valid entry's
 * newest copy. Never changes the file; a file that fails a check is skipped (its topic's open
 * says why). Returns the entries visited, or a negative errno. */
typedef void (*dedupe_file_visit_fn)(void *context, uint64_t principal, const uint8_t *id,
                                     uint32_t id_length, uint64_t highest, bool established);
int dedupe_file_visit(const char *path, dedupe_file_visit_fn visit, void *context);

#endif
