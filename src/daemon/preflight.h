/*
 * preflight.h: startup checks that explain the environment intaked runs in. Main thread, once,
 * after the flags are parsed and before the pipeline starts.
 *
 * Containers and hosts differ in ways that otherwise surface as a bare errno from deep inside
 * startup ("io_uring setup failed: Function not implemented"). Each check here gives ONE line
 * naming the cause and the fix:
 *   - io_uring_setup fails with ENOSYS or EPERM: either the sysctl kernel.io_uring_disabled
 *     (read and named) or a seccomp filter (the container runtime's default profile blocks
 *     io_uring; deploy/seccomp/intaked.json allows it);
 *   - RLIMIT_MEMLOCK below what the rings, buffer rings and zcrx areas pin (the soft limit is
 *     raised up to the hard one first; with CAP_IPC_LOCK nothing is counted);
 *   - --shm-dir with less free space than --log-size x --topics-max (says how many logs fit);
 *   - RLIMIT_NOFILE below --reactors x --connections-max plus the logs' descriptors (the soft
 *     limit is raised up to the hard one; if that is still too low, --connections-max is
 *     lowered to what fits, and the line says so; with no room at all it only warns, since
 *     running out at accept pauses accepting rather than failing).
 * Checks that adjust something or only warn print their line to `out` and let startup go on;
 * a check that makes startup impossible fills `why` and returns negative.
 */
#ifndef INTAKE_PREFLIGHT_H
#define INTAKE_PREFLIGHT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common.h"
#include "pipeline.h"

/* Descriptors each topic's log holds open: the log (its writer lock) and its consumer region. */
#define PREFLIGHT_DESCRIPTORS_PER_TOPIC 2u
/* Descriptors intaked uses besides connections and logs: listeners, rings, eventfds, the
 * metrics server's sockets, stdio. */
#define PREFLIGHT_DESCRIPTORS_RESERVED 64u

/* Runs every check. May lower config->connections_max (said on `out`). Returns 0, or a
 * negative errno with `why` holding the one-line explanation (intaked exits 1). */
int preflight_run(struct pipeline_config *config, FILE *out, char *why,
                  size_t why_capacity) INTAKE_MUST_CHECK;

/* The explanation for an io_uring_setup failure with `error` (a positive errno), written to
 * `why`: reads kernel.io_uring_disabled and the process's seccomp mode to tell which applies. */
void preflight_explain_io_uring(int error, char *why, size_t why_capacity);

/* Bytes intaked pins (counted against RLIMIT_MEMLOCK without CAP_IPC_LOCK) for `config`: each
 * reactor's io_uring rings, its provided-buffer ring, and its zcrx area when zcrx may be used. */
uint64_t preflight_memlock_bytes(const struct pipeline_config *config);

/* Descriptors intaked may hold open for `config`: connections, one per topic log, reserved. */
uint64_t preflight_descriptors_needed(const struct pipeline_config *config);

#endif
