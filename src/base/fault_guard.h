/*
 * fault_guard.h: survive SIGBUS from a shared file mapping whose file shrank under it.
 *
 * A MAP_SHARED mapping of a file faults with SIGBUS when a page beyond the file's end is
 * touched, which happens when another process truncates the file. Both sides of the
 * shared-memory log map files that someone else could truncate (the writer: the consumer
 * region, and its own log if the owner truncates it; consumers: both). Such a fault must cost
 * that log only, never the process.
 *
 * How: a process-wide SIGBUS handler (installed on first registration with SA_ONSTACK, chaining
 * to any handler that was there before) looks the faulting address up in a fixed table of registered ranges.
 * Inside one, it replaces the whole range with anonymous zero pages of the same protection
 * (mmap MAP_FIXED, async-signal-safe) and sets the range's `broken` flag; the faulting
 * instruction then re-executes against the zero pages. The owner checks the flag at its next
 * step and recovers (the writer quarantines and recreates the file; a consumer returns an
 * error). Outside every range, the previous handler runs, or the default action.
 *
 * A host that owns SIGBUS (fault_guard_set_host_mode before the first registration) gets no
 * handler installed; its own handler calls fault_guard_handle first, which does the same
 * lookup and replacement and says whether the fault was ours.
 *
 * Thread: register and unregister from the thread that uses the range (the owner of the log
 * handle); the handler runs on the faulting thread. A range must be unregistered before it is
 * unmapped.
 */
#ifndef INTAKE_FAULT_GUARD_H
#define INTAKE_FAULT_GUARD_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "common.h"

/* Ranges registered at once, process-wide (three per open log: the log, its consumer region,
 * its deduplication table). */
#define FAULT_GUARD_RANGES_MAX 8192

/* Registers [start, start + bytes) mapped with `protection`; on a SIGBUS inside it, *broken
 * becomes true. Returns a handle >= 0, or -ENOSPC when the table is full (the range is then
 * unguarded) or -errno when the handler cannot be installed. */
int fault_guard_register(void *start, size_t bytes, int protection,
                         atomic_bool *broken) INTAKE_MUST_CHECK;
/* Host mode (true): install no handler; the host's calls fault_guard_handle. 0, or -EBUSY once
 * our handler is installed. */
int fault_guard_set_host_mode(bool host) INTAKE_MUST_CHECK;
/* The handler's work, async-signal-safe: true when `info` is a SIGBUS inside a registered range,
 * which is then replaced by zero pages and marked broken; false (nothing changed) otherwise. */
bool fault_guard_handle(int signal_number, const siginfo_t *info);
/* Forgets a handle (negative handles are ignored). */
void fault_guard_unregister(int handle);
/* SIGBUS faults recovered so far, process-wide. */
uint64_t fault_guard_recovered_count(void);

#endif
