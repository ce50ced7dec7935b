/*
 * counters_region.h: the daemon's side of the counters region (include/intake/counters_format.h).
 * Created by the main thread at startup (pipeline_start), before any thread that writes it;
 * each reactor and worker then writes only its own rows (see the format header). Nothing here
 * reads a counter back: counters are never control state.
 */
#ifndef INTAKE_COUNTERS_REGION_H
#define INTAKE_COUNTERS_REGION_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common.h"
#include "counters_write.h"
#include "intake/counters_format.h"

struct counters_region {
    struct intake_counters_header *header; /* NULL when not created */
    uint8_t *base;
    size_t bytes;
    char path[4096];
};

/* Identity written into the header at creation. */
/* The region names every topic and counts every connection: readable by the log group
 * (--shm-group, as the logs are), written by intaked alone. */
#define COUNTERS_REGION_FILE_MODE 0640

struct counters_region_identity {
    bool group_set; /* --shm-group given: the file gets `group` */
    gid_t group;
    uint32_t reactor_count;
    uint32_t worker_count;
    uint32_t topics_max;
    uint32_t principal_rows; /* INTAKE_COUNTERS_PRINCIPAL_ROWS with --acl, else 0 */
    uint64_t log_capacity_bytes;
    const char *shm_directory;
    const char *listen;
    const char *metrics_listen; /* or NULL */
    const char *tls_listen;     /* or NULL */
};

/* Main thread. Writes the file whole under a temporary name, then renames it to `path` (so a
 * reader never sees a partial header), and keeps it mapped. On failure `why` holds one line. */
int counters_region_create(struct counters_region *region, const char *path,
                           const struct counters_region_identity *identity, char *why,
                           size_t why_capacity) INTAKE_MUST_CHECK;
/* Main thread: the state readers see (enum intake_counters_state), and whether it listens. */
void counters_region_set_state(struct counters_region *region, enum intake_counters_state state,
                               bool listening);
/* Main thread, before state RUNNING: the addresses the listeners are bound to (port 0 resolved);
 * `listen` "none" and `tls_listen` NULL with port 0 for a listener that does not exist. */
void counters_region_set_listen(struct counters_region *region, const char *listen,
                                uint16_t listen_port, const char *tls_listen,
                                uint16_t tls_listen_port);
/* Main thread, once the backend is known. */
void counters_region_set_backend(struct counters_region *region, const char *backend);
/* Main thread, at exit: state STOPPED is stored first; the file stays for readers. */
void counters_region_close(struct counters_region *region);

static inline struct intake_counters_reactor_row *
counters_region_reactor(const struct counters_region *region, uint32_t reactor) {
    INTAKE_ASSERT(reactor < region->header->reactor_count);
    return (struct intake_counters_reactor_row *)(region->base +
                                                  region->header->reactor_rows_offset) +
           reactor;
}

static inline struct intake_counters_worker_row *
counters_region_worker(const struct counters_region *region, uint32_t worker) {
    INTAKE_ASSERT(worker < region->header->worker_count);
    return (struct intake_counters_worker_row *)(region->base +
                                                 region->header->worker_rows_offset) +
           worker;
}

static inline struct intake_counters_topic_row *
counters_region_topic(const struct counters_region *region, uint32_t topic_id) {
    INTAKE_ASSERT(topic_id < region->header->topics_max);
    return (struct intake_counters_topic_row *)(region->base + region->header->topic_rows_offset) +
           topic_id;
}

/* Reactor `reactor`'s cells, indexed by topic id. */
static inline struct intake_counters_received_cell *
counters_region_received(const struct counters_region *region, uint32_t reactor) {
    INTAKE_ASSERT(reactor < region->header->reactor_count);
    return (struct intake_counters_received_cell *)(region->base +
                                                    region->header->received_cells_offset +
                                                    reactor * region->header->received_block_bytes);
}

/* Principal row `row` (main thread writes it: counters_region_principal_set). */
static inline struct intake_counters_principal_row *
counters_region_principal(const struct counters_region *region, uint32_t row) {
    INTAKE_ASSERT(row < region->header->principal_row_count);
    return (struct intake_counters_principal_row *)(region->base +
                                                    region->header->principal_rows_offset) +
           row;
}

/* Reactor `reactor`'s principal cells, indexed by principal row; NULL without --acl. */
static inline struct intake_counters_principal_cell *
counters_region_principal_cells(const struct counters_region *region, uint32_t reactor) {
    INTAKE_ASSERT(reactor < region->header->reactor_count);
    if (region->header->principal_row_count == 0) return NULL;
    return (struct intake_counters_principal_cell *)(region->base +
                                                     region->header->principal_cells_offset +
                                                     reactor *
                                                         region->header->principal_block_bytes);
}

/* What the main thread writes into a principal row. */
struct counters_principal {
    const char *name;
    uint32_t name_length;
    bool in_force;
    uint64_t quota_records_per_second;
    uint64_t quota_bytes_per_second;
};

/* Main thread, under the row's sequence lock (counters_format.h): gives `row` to a principal.
 * When the row changes hands (another name), the sums of its cells become the new principal's
 * baselines; the caller guarantees no reactor writes the row's cells meanwhile. */
void counters_region_principal_set(struct counters_region *region, uint32_t row,
                                   const struct counters_principal *principal);
/* Main thread: whether the rule set in force names the row's principal. */
void counters_region_principal_in_force(struct counters_region *region, uint32_t row,
                                        bool in_force);
/* Main thread: --acl in use, the generation of the rules in force, refused reloads. */
void counters_region_set_acl(struct counters_region *region, bool enabled, uint64_t generation,
                             uint64_t reload_failures);

#endif
