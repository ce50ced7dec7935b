/*
 * counters_health.c: the liveness and readiness verdicts of /healthz, /readyz and
 * `intake-stat --check`, from the counters region's state and thread heartbeats (see
 * counters_health.h). Any thread.
 */
#include "counters_health.h"

#include <stdio.h>

const char *counters_state_name(uint32_t state) {
    switch (state) {
    case INTAKE_COUNTERS_STATE_STARTING: return "starting";
    case INTAKE_COUNTERS_STATE_RUNNING: return "running";
    case INTAKE_COUNTERS_STATE_STOPPING: return "stopping";
    case INTAKE_COUNTERS_STATE_STOPPED: return "stopped";
    }
    return "unknown";
}

/* The oldest heartbeat among reactors and workers, as an age at now_ns; names the thread. */
static uint64_t oldest_heartbeat_age(const struct counters_view *view, uint64_t now_ns,
                                     char *thread, size_t capacity) {
    uint64_t oldest = 0;
    snprintf(thread, capacity, "none");
    uint32_t reactors = view->header->reactor_count;
    for (uint32_t index = 0; index < reactors + view->header->worker_count; index++) {
        bool reactor = index < reactors;
        uint64_t beat =
            counters_load(reactor ? &counters_view_reactor(view, index)->heartbeat_ns
                                  : &counters_view_worker(view, index - reactors)->heartbeat_ns);
        uint64_t age = beat == 0 ? UINT64_MAX : (now_ns > beat ? now_ns - beat : 0);
        if (age < oldest) continue;
        oldest = age;
        snprintf(thread, capacity, "%s %u", reactor ? "reactor" : "worker",
                 reactor ? index : index - reactors);
    }
    return oldest;
}

static bool heartbeats_within(const struct counters_view *view, uint64_t now_ns, uint64_t limit_ns,
                              char *why, size_t why_capacity) {
    char thread[32];
    uint64_t age = oldest_heartbeat_age(view, now_ns, thread, sizeof(thread));
    if (age <= limit_ns) return true;
    if (age == UINT64_MAX)
        intake_error_line(why, why_capacity, "%s has not started", thread);
    else
        intake_error_line(why, why_capacity, "%s last heartbeat %.1f s ago", thread,
                          (double)age / 1e9);
    return false;
}

bool counters_view_live(const struct counters_view *view, uint64_t now_ns, uint64_t live_ns,
                        char *why, size_t why_capacity) {
    why[0] = '\0';
    uint32_t state =
        atomic_load_explicit((_Atomic uint32_t *)&view->header->state, memory_order_acquire);
    if (state == INTAKE_COUNTERS_STATE_STOPPED) {
        intake_error_line(why, why_capacity, "stopped");
        return false;
    }
    /* While starting, threads have not beaten yet: alive. */
    if (state == INTAKE_COUNTERS_STATE_STARTING) return true;
    return heartbeats_within(view, now_ns, live_ns, why, why_capacity);
}

bool counters_view_ready(const struct counters_view *view, uint64_t now_ns, uint64_t ready_ns,
                         char *why, size_t why_capacity) {
    why[0] = '\0';
    uint32_t state =
        atomic_load_explicit((_Atomic uint32_t *)&view->header->state, memory_order_acquire);
    if (state != INTAKE_COUNTERS_STATE_RUNNING) {
        intake_error_line(why, why_capacity, "state %s", counters_state_name(state));
        return false;
    }
    if (atomic_load_explicit((_Atomic uint32_t *)&view->header->listening, memory_order_relaxed) !=
        1) {
        intake_error_line(why, why_capacity, "not listening");
        return false;
    }
    return heartbeats_within(view, now_ns, ready_ns, why, why_capacity);
}
