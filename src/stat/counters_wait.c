/*
 * counters_wait.c: polls the counters region until intaked is ready (see counters_wait.h). The
 * caller's thread; it maps the region read-only, one mapping per look.
 */
#include "counters_wait.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "counters_health.h"

/* Whether process `pid` has exited: gone, or a zombie its parent has not reaped yet (a script's
 * background job stays one until the shell waits for it). */
static bool process_exited(pid_t pid) {
    if (kill(pid, 0) != 0 && errno == ESRCH) return true;
    char path[64], stat_line[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *file = fopen(path, "r");
    if (file == NULL) return false; /* no procfs here: kill's answer is all there is */
    size_t length = fread(stat_line, 1, sizeof(stat_line) - 1, file);
    fclose(file);
    stat_line[length] = '\0';
    /* "pid (comm) S ...": the state follows the last ')' (comm may hold one). */
    const char *close = strrchr(stat_line, ')');
    return close != NULL && close[1] == ' ' && close[2] == 'Z';
}

enum look_verdict { LOOK_READY, LOOK_NOT_YET, LOOK_EXITED };

/* One look at the region; on LOOK_READY the view stays open. */
static enum look_verdict look_once(const char *path, pid_t pid, struct counters_view *view,
                                   char *why, size_t why_capacity) {
    char reason[400];
    if (counters_view_open(path, view, reason, sizeof(reason)) < 0) {
        intake_error_line(why, why_capacity, "%s", reason);
        return LOOK_NOT_YET;
    }
    enum look_verdict verdict = LOOK_NOT_YET;
    uint32_t state =
        atomic_load_explicit((_Atomic uint32_t *)&view->header->state, memory_order_acquire);
    if (pid > 0 && view->header->pid != (int32_t)pid) {
        intake_error_line(why, why_capacity, "%s is intaked pid %d's, not pid %d's", path,
                          (int)view->header->pid, (int)pid);
    } else if (counters_view_ready(view, intake_now_ns(), COUNTERS_VIEW_READY_NS, reason,
                                   sizeof(reason))) {
        return LOOK_READY;
    } else {
        intake_error_line(why, why_capacity, "intaked pid %d: %s", (int)view->header->pid, reason);
        if (pid > 0 && state == INTAKE_COUNTERS_STATE_STOPPED) verdict = LOOK_EXITED;
    }
    counters_view_close(view);
    return verdict;
}

int counters_wait_ready(const char *path, pid_t pid, uint64_t timeout_ns,
                        struct counters_view *view, char *why, size_t why_capacity) {
    INTAKE_ASSERT(path != NULL && view != NULL);
    INTAKE_ASSERT(why != NULL && why_capacity > 0);
    uint64_t deadline = intake_now_ns() + timeout_ns;
    char last[400] = "";
    for (;;) {
        /* Whether it had exited is taken before the look, so a daemon that became ready and
         * then exited is not reported as never ready. */
        bool exited = pid > 0 && process_exited(pid);
        enum look_verdict verdict = look_once(path, pid, view, last, sizeof(last));
        if (verdict == LOOK_READY) return 0;
        if (exited || verdict == LOOK_EXITED) {
            intake_error_line(why, why_capacity, "intaked pid %d exited before it was ready (%s)",
                              (int)pid, last);
            return -ESRCH;
        }
        if (intake_now_ns() >= deadline) {
            intake_error_line(why, why_capacity, "not ready after %.1f s: %s",
                              (double)timeout_ns / 1e9, last);
            return -ETIMEDOUT;
        }
        struct timespec pause = {0, (long)COUNTERS_WAIT_POLL_NS};
        nanosleep(&pause, NULL);
    }
}
