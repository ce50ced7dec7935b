/*
 * counters_wait.h: waiting for intaked to be ready, from another process (intake-stat
 * --wait-ready, and through it the tests and scripts that start a daemon), by reading its
 * counters region (counters_view.h) rather than its log.
 *
 * Ready is counters_view_ready's verdict (RUNNING, listening, every thread beating), which intaked
 * gives only once every listener, thread and startup line exists; from then the header's
 * listening addresses hold the bound ports (--listen ADDR:0 resolved).
 *
 * Thread: any; the caller's own. It polls (every COUNTERS_WAIT_POLL_NS) and sleeps in between.
 */
#ifndef INTAKE_COUNTERS_WAIT_H
#define INTAKE_COUNTERS_WAIT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "counters_view.h"

/* How often the region is looked at again while waiting. */
#define COUNTERS_WAIT_POLL_NS (10ull * 1000 * 1000)

/*
 * Waits up to `timeout_ns` until the region at `path` says ready. It is opened anew at every
 * poll: a starting intaked renames a fresh region over any an earlier one left (a stopped one, or
 * a killed one whose heartbeats still look recent for a few seconds).
 *
 * `pid` > 0 names the intaked being waited for (its parent knows it): only a region whose
 * header carries that pid counts, and the wait ends as soon as that process has exited (or its
 * region says STOPPED). Without it (0), any ready region counts; use it when one may be left
 * behind by a daemon killed with SIGKILL.
 *
 * Returns 0 with the ready region open in *view (the caller closes it), -ETIMEDOUT at the
 * deadline, or -ESRCH when process `pid` exited first; `why` then holds one line: what the last
 * look found.
 */
int counters_wait_ready(const char *path, pid_t pid, uint64_t timeout_ns,
                        struct counters_view *view, char *why,
                        size_t why_capacity) INTAKE_MUST_CHECK;

#endif
