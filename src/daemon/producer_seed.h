/*
 * producer_seed.h: what the producer table knows at startup (issue 17).
 *
 * The producer table lives in memory, but the sequence rules (producer_table.h, rule 1) must
 * hold across a restart at least as well as deduplication does. So before any connection, the
 * main thread reads every deduplication table file under --shm-dir (<topic>.dedupe, the same
 * files that survive restarts; dedupe_file_visit: pread, checked, never changed) and seeds each
 * producer they name with the highest sequence committed for it to any topic. Files that fail
 * a check are skipped (their topic's open says why). Producers beyond --producers-max are not
 * seeded (they are unknown until they connect: producer_table.h), and one line says so.
 * Cost: a read of every table file (288 KiB each at the default --dedupe-producers) and a keyed
 * hash per entry: tens of milliseconds for a thousand topics.
 */
#ifndef INTAKE_PRODUCER_SEED_H
#define INTAKE_PRODUCER_SEED_H

#include <stdint.h>

#include "common.h"
#include "keyed_hash.h"
#include "producer_table.h"

struct producer_seed_result {
    uint32_t files;      /* table files read */
    uint64_t producers;  /* entries seen in them */
    uint64_t not_seeded; /* entries whose producer did not fit */
};

/* Main thread, at startup. Returns 0 (a directory that cannot be listed seeds nothing, with a
 * line), or -ENOSYS when no hasher can be made. */
int producer_seed_from_tables(struct producer_table *table, const char *directory,
                              const struct keyed_hash_key *key,
                              struct producer_seed_result *result) INTAKE_MUST_CHECK;

#endif
