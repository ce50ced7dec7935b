/*
 * counters_view.h: the reading side of intaked's counters region
 * (include/intake/counters_format.h), for any process: intake-stat, and the daemon's own
 * metrics thread, which reads the region exactly as another process would.
 *
 * The region is shared memory another process writes, so nothing in it is trusted: the header
 * is validated when the view is opened (magic, version, sizes, every section inside the file)
 * and names are bounded. The other jobs of src/stat build on this view: health verdicts
 * (counters_health.h), the topics' logs (read through the consumer library's
 * intake_log_inspect, in counters_render.h), and the two renderings (counters_render.h).
 *
 * Thread: any; a view is read-only and may be shared by threads.
 */
#ifndef INTAKE_COUNTERS_VIEW_H
#define INTAKE_COUNTERS_VIEW_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "intake/counters_format.h"

struct counters_view {
    const uint8_t *base;
    size_t bytes;
    const struct intake_counters_header *header;
};

/* Maps `path` read-only and validates it; on failure `why` holds one line. */
int counters_view_open(const char *path, struct counters_view *view, char *why,
                       size_t why_capacity) INTAKE_MUST_CHECK;
void counters_view_close(struct counters_view *view);

const struct intake_counters_reactor_row *counters_view_reactor(const struct counters_view *view,
                                                                uint32_t reactor);
const struct intake_counters_worker_row *counters_view_worker(const struct counters_view *view,
                                                              uint32_t worker);
const struct intake_counters_topic_row *counters_view_topic(const struct counters_view *view,
                                                            uint32_t topic_id);
const struct intake_counters_received_cell *counters_view_received(const struct counters_view *view,
                                                                   uint32_t reactor);

/* One principal row (issue 17) as readers see it: copied whole under its sequence lock, its
 * counters summed over the reactors from its baselines (counters_format.h). */
struct counters_view_principal {
    char name[INTAKE_COUNTERS_PRINCIPAL_NAME_BYTES];
    bool in_force;                     /* the rules in force name it (or it is `other`) */
    uint64_t quota_records_per_second; /* 0: unlimited */
    uint64_t quota_bytes_per_second;
    uint64_t records_admitted;
    uint64_t bytes_admitted;
    uint64_t records_denied;
    uint64_t throttled_ns;
    uint64_t quota_pauses;
};
/* Whether intaked runs with --acl; the rule set in force (1 at startup, +1 per reload) and the
 * reloads it refused. */
bool counters_view_acl(const struct counters_view *view, uint64_t *generation,
                       uint64_t *reload_failures);
/* Row `row`; false for a row never used, or one rewritten during every attempt to read it. */
bool counters_view_principal(const struct counters_view *view, uint32_t row,
                             struct counters_view_principal *out);
/* The row in force named `name` (ACL_OTHER_NAME for `other`); false when there is none. */
bool counters_view_principal_named(const struct counters_view *view, const char *name,
                                   struct counters_view_principal *out);

/* A counter another process writes (relaxed: each is a statistic on its own). */
static inline uint64_t counters_load(const _Atomic uint64_t *counter) {
    return atomic_load_explicit((_Atomic uint64_t *)counter, memory_order_relaxed);
}

/* Topic `topic_id`'s name, copied out bounded into `name` (INTAKE_COUNTERS_TOPIC_NAME_BYTES);
 * false when the row is unused or its length is bad. */
bool counters_view_topic_name(const struct counters_view *view, uint32_t topic_id, char *name);

/* A topic's counters, summed over the reactors where they are per reactor. */
struct counters_topic_totals {
    uint64_t received_records, received_bytes;
    uint64_t committed_records, committed_bytes, rejected, failed;
    uint64_t duplicate, evictions, unremembered, rebuilds; /* deduplication */
    uint64_t unprotected, repairs;
};
void counters_view_topic_totals(const struct counters_view *view, uint32_t topic_id,
                                struct counters_topic_totals *totals);

/* The names of the TLS handshake failure reasons (INTAKE_COUNTERS_HANDSHAKE_FAILURES, in the
 * order of the reactor row's tls_handshakes_failed), for both renderings. */
extern const char *const counters_handshake_failure_reasons[INTAKE_COUNTERS_HANDSHAKE_FAILURES];

/* The copy account: payload bytes copied in user space, and bytes received. */
void counters_view_copy_account(const struct counters_view *view, uint64_t *copied,
                                uint64_t *received);

#endif
