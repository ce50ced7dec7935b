/*
 * producer_table.h: what the daemon knows of each producer, daemon-wide (issues 12 and 17).
 * A producer is a (principal, producer_id): the same id under two principals is two producers,
 * so no principal can read, suppress or advance another's state. For each producer:
 *   - H, its acknowledged watermark: the highest sequence such that every record of it up to H
 *     is committed, as far as the daemon can tell; a Hello is answered with H (0 when unknown);
 *   - `seen`: the highest sequence any of its connections presented (the framer checked it and
 *     the reactor admitted it, or tried to);
 *   - its gaps: up to PRODUCER_GAPS_MAX ranges of sequences no connection ever presented.
 *
 * The sequence rules (the reactor applies them to every record with a producer_id; the framer
 * already made each connection's sequences consecutive):
 *   1. A connection's first record may run ahead of `seen` by at most PRODUCER_SEQUENCE_LEAD_MAX
 *      (W); further is refused, as Kafka answers OutOfOrderSequence (REJECTED, naming the
 *      sequence, the bound and the producer; the connection ends). W is what an honest producer
 *      can consume without the daemon seeing it: the producer library never lets its next
 *      sequence run more than INTAKE_PRODUCER_SEQUENCE_LEAD_MAX (2^21) above the highest it
 *      has written (its window, at most 2^20 records, is inside that lead), and what it wrote
 *      but the daemon never read is at most one window more; W = 2^22 covers both with room.
 *      A producer the table does not know (new, forgotten, or after a restart without a
 *      table file that names it) has no bound: nothing is known to run ahead of.
 *   2. A first record that skips sequences (above seen + 1; above 0 for an unknown producer)
 *      records the skipped range as a gap. A gap is never closed by a skip: a later record
 *      inside it was never written, so it is marked RECORD_SEQUENCE_GAP_FILL and the worker
 *      appends it, never answering it as a duplicate (dedupe_table.h). A gap shrinks only when
 *      a connection ends whose records covering part of it were all committed. When the gaps
 *      of a producer are full, the two nearest merge into their hull: more sequences count as
 *      never written, which costs possible duplicates (counted as unprotected), never an ack of
 *      an unwritten record.
 *   3. H never reaches into a gap: a Hello is answered min(H, lowest gap - 1). So a producer
 *      that holds records inside a gap (someone else's jump made it) is never told they are
 *      committed; it resends them, and they are appended. The cost for a producer that skipped
 *      sequences itself (records it gave up on): its Hello answers stay below the skip, so a
 *      reconnect resends what it holds and deduplication drops what was committed.
 * Why this is enough for "no input makes the daemon ack a record it did not write": a record is
 * answered without being appended only as a duplicate, when its topic's table holds a higher or
 * equal sequence of its producer and it is not in a gap. Below `seen`, every sequence is either
 * in a gap or was presented by some connection of this producer (rules 1-2 and the framer's
 * +1), and an honest producer never sends one sequence to two topics. A Hello is answered with
 * a level every record of which was committed by some connection, and below every gap (rule 3).
 * What an attacker can still do under the same principal (anonymous: anyone who knows the id;
 * the library's generated ids are random UUIDs, a bearer secret): write records with the
 * producer's id, including the sequences the producer will use next (the producer's own records
 * at those sequences are then answered as duplicates of the attacker's, which were written);
 * jump at most W ahead per connection (each jump costs a written record and leaves a gap, whose
 * records are then appended unprotected); fill the gap slots (merging them); make the
 * producer's Hello answers low (it then resends). It cannot make the daemon acknowledge a record
 * that no one wrote, and it cannot touch producers of other principals.
 *
 * Persistence: in memory. At startup the pipeline seeds `seen` from the topics' deduplication
 * table files (dedupe_file_visit), which survive restarts, so rule 1 holds across a restart for
 * the producers they name (their H starts at 0: a Hello after a restart answers 0 until a
 * connection of the producer ends, as before). A file may lag its log by one batch (a SIGKILL
 * before its update): the first record after the restart may then skip a few sequences the
 * daemon committed, which makes a gap no honest producer sends into (it resends only after
 * what was acknowledged) and caps H below it (resends, never a loss).
 *
 * Bounded: `capacity` producers (--producers-max), allocated once at startup, in a segmented
 * LRU: a new producer enters probation; it moves to protected (at most 3/4 of the table) once
 * two of its connections have ended with records committed. An entry used by a live connection
 * is pinned: never evicted. A new producer in a full table evicts the least recently seen
 * unpinned producer of probation, else of protected; when every entry is pinned it is refused
 * (RESOURCE_EXHAUSTED: the daemon has more live producers than --producers-max). A flood of
 * one-connection made-up ids evicts only other probation producers; an established producer
 * goes only when capacity x 3/4 other producers with two committing connections each were seen
 * more recently. A forgotten producer is unknown again (rule 1: no bound; its next first record
 * makes a gap below it; H 0).
 *
 * Thread safety: a mutex for everything but producer_table_next's fast path, which is one
 * compare-and-swap on the producer's `seen` (the common case: the connection streams at the
 * front of its producer). The mutex is taken per connection (Hello, first record, end), and per
 * record only for records at or below `seen` (a resend, or another connection ahead).
 */
#ifndef INTAKE_PRODUCER_TABLE_H
#define INTAKE_PRODUCER_TABLE_H

#include <stdbool.h>
#include <stdint.h>

#include "common.h"
#include "record.h"

/* Default --producers-max. */
#define PRODUCER_TABLE_CAPACITY_DEFAULT 65536u
/* Largest --producers-max accepted (entries are 192 bytes each: 3 GiB at this size). */
#define PRODUCER_TABLE_CAPACITY_MAX (1u << 24)
/* W: how far a connection's first record may run ahead of the highest sequence seen (rule 1). */
#define PRODUCER_SEQUENCE_LEAD_MAX (1ull << 22)
/* Gaps remembered per producer (rule 2). */
#define PRODUCER_GAPS_MAX 4u

struct producer_table;
struct producer_entry;

struct producer_table_stats {
    uint32_t producers;       /* entries in use */
    uint32_t protected_count; /* of them, in the protected segment */
    uint32_t pinned;          /* of them, used by live connections */
    uint64_t evictions;       /* producers forgotten to make room */
    uint64_t refusals;        /* acquisitions refused: every entry pinned */
    uint64_t seeded;          /* producers seeded at startup */
    uint64_t gaps;            /* gaps recorded (rule 2) */
    uint64_t gap_merges;      /* gaps merged because a producer's were full */
};

/* What a record's sequence is to its producer (producer_table_first, _next). */
enum producer_admission {
    PRODUCER_ADMIT = 0,          /* admit it */
    PRODUCER_ADMIT_GAP_FILL = 1, /* admit it with RECORD_SEQUENCE_GAP_FILL: in a gap */
    PRODUCER_AHEAD = 2,          /* refuse it: more than W ahead of `seen` (first records) */
};

/* Allocates a table for `capacity` producers (1..PRODUCER_TABLE_CAPACITY_MAX). Returns 0, or
 * -ENOMEM / -EINVAL. */
int producer_table_create(uint32_t capacity, struct producer_table **table) INTAKE_MUST_CHECK;
void producer_table_destroy(struct producer_table *table);

/* Startup, before any connection: the producer named by `origin` (its principal, id and keyed
 * hash) has committed `highest` to some topic (a deduplication table file says so): raises its
 * `seen`; `established` puts it in protected. Returns false when the table is full (not
 * seeded). */
bool producer_table_seed(struct producer_table *table, const struct record_origin *origin,
                         uint64_t highest, bool established);

/* A connection starts using the producer of `origin`: finds its entry (and, with `create`,
 * creates it: at the connection's first record; a Hello only looks, so Hellos of made-up ids
 * evict nothing) and pins it until producer_table_release. NULL when there is none (without
 * `create`) or every entry is pinned. Any thread. */
struct producer_entry *producer_table_acquire(struct producer_table *table,
                                              const struct record_origin *origin, bool create);
/* The Hello's answer: min(H, lowest gap - 1) (rule 3). */
uint64_t producer_table_hello_answer(struct producer_table *table, struct producer_entry *entry);
/* A connection's first record (rules 1 and 2). PRODUCER_AHEAD sets *known to `seen`. */
enum producer_admission producer_table_first(struct producer_table *table,
                                             struct producer_entry *entry, uint64_t sequence,
                                             uint64_t *known) INTAKE_MUST_CHECK;
/* Every later record of the connection (its sequence is the previous one's plus one, the
 * framer checked). Never PRODUCER_AHEAD. */
enum producer_admission producer_table_next(struct producer_table *table,
                                            struct producer_entry *entry,
                                            uint64_t sequence) INTAKE_MUST_CHECK;
/* The connection ended with every record back: its records [first_sequence, level] were all
 * committed (level: ack_window.h's cumulative committed level; first_sequence 0 when it sent
 * no record). Folds H = max(H, level), removes that range from the gaps, unpins. Any thread. */
void producer_table_release(struct producer_table *table, struct producer_entry *entry,
                            uint64_t first_sequence, uint64_t level);

/* For tests and lines: H, seen and the gaps of the producer of `origin` (false when unknown). */
bool producer_table_inspect(struct producer_table *table, const struct record_origin *origin,
                            uint64_t *acknowledged, uint64_t *seen, uint32_t *gap_count);

void producer_table_stats(struct producer_table *table, struct producer_table_stats *stats);

#endif
