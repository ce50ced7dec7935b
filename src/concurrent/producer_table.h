/*
 * producer_table.h: the daemon-wide table of producers' acknowledged watermarks (issue 12): for
 * each producer_id, H, the highest sequence such that every record of that producer up to H is
 * committed. A Hello is answered with H (0 when the producer is unknown).
 *
 * Why H is sound. A connection's cumulative committed level L (ack_window.h: the highest
 * sequence up to which all of its records came back OK, whether or not that Ack reached the
 * peer) means every record of that connection up to L is committed. A producer that follows the
 * protocol starts each connection by resending, in order, every record after the highest
 * sequence intake told it about (an Ack, or the answer to its Hello); every record at or below
 * that was committed when it was told. So, by induction over the producer's connections, every
 * record of the producer up to the largest L folded here is committed: folding takes the
 * maximum and never lowers H. Concurrent connections of one producer only make a Hello's answer
 * lower than it could be (a connection still draining has not folded yet), which costs a resend.
 *
 * Bounded: `capacity` producers, allocated once at startup (--producers-max). When the table is
 * full, a fold for a new producer evicts the least recently folded one; that producer's H is 0
 * again, so it resends everything it still holds, and the per-topic dedupe tables in the
 * workers (src/delivery) drop what was already committed. In memory only: after a daemon restart
 * every H is 0, which is sound for the same reason (a resend, deduplicated downstream); exactly
 * once across restarts comes from the dedupe tables, which live with the topics' logs.
 *
 * Thread safety: a mutex. The table is touched only when a Hello is answered and when a
 * connection with a producer_id ends, never per record.
 */
#ifndef INTAKE_PRODUCER_TABLE_H
#define INTAKE_PRODUCER_TABLE_H

#include <stdint.h>

#include "common.h"
#include "record.h"

/* Default --producers-max. */
#define PRODUCER_TABLE_CAPACITY_DEFAULT 65536u
/* Largest --producers-max accepted (entries are ~100 bytes each: 1.6 GiB at this size). */
#define PRODUCER_TABLE_CAPACITY_MAX (1u << 24)

struct producer_table;

struct producer_table_stats {
    uint32_t producers; /* entries in use */
    uint64_t evictions; /* producers forgotten to make room */
};

/* Allocates a table for `capacity` producers (1..PRODUCER_TABLE_CAPACITY_MAX). Returns 0, or
 * -ENOMEM / -EINVAL. */
int producer_table_create(uint32_t capacity, struct producer_table **table) INTAKE_MUST_CHECK;
void producer_table_destroy(struct producer_table *table);

/* H for the producer `id` (1..RECORD_PRODUCER_ID_BYTES_MAX bytes), 0 when unknown. Any thread. */
uint64_t producer_table_lookup(struct producer_table *table, const uint8_t *id, uint32_t length);

/* Folds a connection's committed level into the producer's H (H = max(H, level)) and makes it
 * the most recently folded producer, evicting the least recently folded one when a new producer
 * finds the table full. A level of 0 changes nothing. Any thread. */
void producer_table_fold(struct producer_table *table, const uint8_t *id, uint32_t length,
                         uint64_t level);

void producer_table_stats(struct producer_table *table, struct producer_table_stats *stats);

#endif
