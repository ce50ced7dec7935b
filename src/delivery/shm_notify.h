/*
 * shm_notify.h: the directory's wake-up files, the daemon's side (layout in
 * include/intake/shm_log_format.h, protocol in docs/shm-log-format.md).
 *
 * One pair of files per log directory lets a consumer of many topics sleep on one futex word
 * instead of one per log: intake.notify (written only here, mode 0640: the futex word every
 * publish bumps, and a counter bumped whenever a log is created or recreated) and
 * intake.notify-waiters (mode 0660: the flag consumers set before they sleep). What consumers
 * write is input: any value in the flag costs at most a wake, and a truncated waiters file
 * (SIGBUS recovered by base/fault_guard.h) makes every publish wake, never a hang or a crash.
 *
 * Thread: open and close on the main thread; shm_notify_published from any worker after it
 * publishes, shm_notify_logs_changed from the log opener or a worker (both are lock-free).
 * intaked holds flock(LOCK_EX) on intake.notify for as long as it runs, so consumers can tell
 * whether a daemon serves the directory.
 */
#ifndef INTAKE_SHM_NOTIFY_H
#define INTAKE_SHM_NOTIFY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common.h"
#include "intake/shm_log_format.h"

struct shm_notify {
    int fd;         /* intake.notify, flock(LOCK_EX) held */
    int waiters_fd; /* intake.notify-waiters */
    struct shm_log_notify *notify;
    struct shm_log_notify_waiters *waiters;
    int notify_guard, waiters_guard; /* fault_guard handles */
    atomic_bool notify_broken, waiters_broken;
};

/* Marks the struct closed (no descriptors, no mappings): shm_notify_close is then a no-op. */
void shm_notify_init(struct shm_notify *notify);
/* Opens the pair in `directory` (already prepared by shm_log_directory_prepare), reusing a
 * valid intake.notify left by an earlier run (so consumers sleeping on it keep working) and
 * recreating anything else. Files get `group` when group_set. Negative errno, one line in
 * `why`. */
int shm_notify_open(struct shm_notify *notify, const char *directory, bool group_set, gid_t group,
                    char *why, size_t why_capacity) INTAKE_MUST_CHECK;
/* Unmaps and closes (the files stay for the next run). Safe on a zeroed or failed struct. */
void shm_notify_close(struct shm_notify *notify);

/* After a publish on any log of the directory: bumps the futex word and wakes sleepers if a
 * consumer flagged that it sleeps. The caller must have stored the commit position and then
 * issued a seq_cst fence (the Dekker pairing with a consumer's wait; shm_log_publish does). */
void shm_notify_published(struct shm_notify *notify);
/* After a log of the directory was created or recreated: consumers of every topic rescan. */
void shm_notify_logs_changed(struct shm_notify *notify);

#endif
