/*
 * counters_health.h: health as the probes see it (/healthz, /readyz, intake-stat --check), read
 * from the counters region (counters_view.h): the daemon's state and every reactor's and
 * worker's heartbeat. Any thread; reads only the region.
 */
#ifndef INTAKE_COUNTERS_HEALTH_H
#define INTAKE_COUNTERS_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "counters_view.h"

/* A thread whose heartbeat is older than this is not ready (idle threads beat every second). */
#define COUNTERS_VIEW_READY_NS (5ull * 1000 * 1000 * 1000)
/* ... and older than this, not alive: generous, so a slow moment never causes a restart loop. */
#define COUNTERS_VIEW_LIVE_NS (60ull * 1000 * 1000 * 1000)

/* Health at monotonic time `now_ns`:
 *   live:  not STOPPED, and every reactor's and worker's heartbeat within `live_ns`;
 *   ready: RUNNING, listening, and every heartbeat within `ready_ns`.
 * `why` says what failed (empty when healthy). */
bool counters_view_live(const struct counters_view *view, uint64_t now_ns, uint64_t live_ns,
                        char *why, size_t why_capacity);
bool counters_view_ready(const struct counters_view *view, uint64_t now_ns, uint64_t ready_ns,
                         char *why, size_t why_capacity);

/* "starting", "running", "stopping", "stopped" or "unknown" (INTAKE_COUNTERS_STATE_*). */
const char *counters_state_name(uint32_t state);

#endif
