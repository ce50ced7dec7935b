/*
 * counters_view.h: the reading side of intaked's counters region
 * (include/intake/counters_format.h), for any process: intake-stat, and the daemon's own
 * metrics thread, which reads the region exactly as another process would.
 *
 * The region is shared memory another process writes, so nothing in it is trusted: the header
 * is validated when the view is opened (magic, version, sizes, every section inside the file)
 * and names are bounded. The topics' logs are read the same way (their headers only, read-only)
 * for log positions and consumer lag.
 *
 * Renderings go into a bounded text buffer; a full buffer marks the output truncated.
 */
#ifndef INTAKE_COUNTERS_VIEW_H
#define INTAKE_COUNTERS_VIEW_H

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

/* Any thread. Maps `path` read-only and validates it; on failure `why` holds one line. */
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

/* A thread whose heartbeat is older than this is not ready (idle threads beat every second). */
#define COUNTERS_VIEW_READY_NS (5ull * 1000 * 1000 * 1000)
/* ... and older than this, not alive: generous, so a slow moment never causes a restart loop. */
#define COUNTERS_VIEW_LIVE_NS (60ull * 1000 * 1000 * 1000)

/* Health as the probes see it, at monotonic time `now_ns`:
 *   live:  not STOPPED, and every reactor's and worker's heartbeat within `live_ns`;
 *   ready: RUNNING, listening, and every heartbeat within `ready_ns`.
 * `why` says what failed (empty when healthy). */
bool counters_view_live(const struct counters_view *view, uint64_t now_ns, uint64_t live_ns,
                        char *why, size_t why_capacity);
bool counters_view_ready(const struct counters_view *view, uint64_t now_ns, uint64_t ready_ns,
                         char *why, size_t why_capacity);

/* A bounded text buffer. */
struct text_buffer {
    char *data;
    size_t capacity;
    size_t length;
    bool truncated;
};
void text_buffer_printf(struct text_buffer *buffer, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

/* Prometheus text exposition format 0.0.4. `log_directory` holds the topics' logs (NULL: the
 * header's shm_directory). */
void counters_render_prometheus(const struct counters_view *view, const char *log_directory,
                                uint64_t now_ns, struct text_buffer *out);
/* One screen for a terminal (intake-stat), with the names intaked's shutdown lines use. */
void counters_render_text(const struct counters_view *view, const char *log_directory,
                          uint64_t now_ns, struct text_buffer *out);
enum counters_render_format {
    COUNTERS_RENDER_PROMETHEUS = 0,
    COUNTERS_RENDER_TEXT = 1,
};
/* The largest rendering produced (1,024 topics with every consumer slot in use fit). */
#define COUNTERS_RENDER_BYTES_MAX (256u << 20)
/* Renders into a heap buffer, grown until the output fits; the caller frees it. NULL when out
 * of memory or past COUNTERS_RENDER_BYTES_MAX. For intake-stat and the metrics thread only
 * (never a reactor or worker). */
char *counters_render_alloc(const struct counters_view *view, const char *log_directory,
                            uint64_t now_ns, enum counters_render_format format, size_t *length);

#endif
