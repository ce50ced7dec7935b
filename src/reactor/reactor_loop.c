/*
 * reactor_loop.c: the receive thread's loop (see reactor.h for the contract).
 *
 * One loop shape: do the batched work (records returned by workers, connections waiting for
 * space, acks, stall breaking, receives waiting for units), advance the connections the pass
 * touched (the one finishing point), give units back to the kernel, ring the workers; then
 * submit and wait, walk a bounded batch of completions dispatching on the tag decoded from
 * user_data, and advance the CQ once per batch.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "reactor_internal.h"

/* ------------------------------------------------------------------ submission --- */

/* io_uring_enter failures that only say "reap first" or "try again": the SQEs stay queued and
 * go with the next submission. Anything else means the ring itself is unusable (a bad ring fd,
 * bad memory): one line naming the call, then the process stops, because no connection of this
 * reactor could be served or even answered. */
static void reactor_submit_failed(struct reactor *reactor, const char *call, int result) {
    INTAKE_ASSERT(result < 0);
    if (result == -EBUSY || result == -EAGAIN || result == -EINTR) {
        reactor->counters.submit_busy++;
        return;
    }
    fprintf(stderr, "intaked: reactor %u: %s: %s (the ring is unusable; stopping)\n",
            reactor->index, call, strerror(-result));
    fflush(stderr);
    abort();
}

void reactor_submit(struct reactor *reactor) {
    INTAKE_ASSERT(reactor->ring_ready);
    int result = io_uring_submit(&reactor->ring);
    if (result < 0) reactor_submit_failed(reactor, "io_uring_submit", result);
}

/* An SQE, submitting first when the SQ is full (so callers never fail for lack of room). */
struct io_uring_sqe *reactor_sqe(struct reactor *reactor) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&reactor->ring);
    if (sqe != NULL) return sqe;
    reactor_submit(reactor);
    sqe = io_uring_get_sqe(&reactor->ring);
    if (sqe == NULL) {
        /* The kernel took none of a full SQ (EBUSY: the CQ overflowed). The SQ is sized above
         * what one completion batch can queue, so this is the unusable-ring case. */
        reactor_submit_failed(reactor, "io_uring_submit with a full SQ", -ENOSPC);
    }
    INTAKE_ASSERT(sqe != NULL);
    return sqe;
}

/* Arms the multishot accept of every configured listener that has none live. */
void reactor_arm_accept(struct reactor *reactor) {
    INTAKE_ASSERT(!reactor->accept_paused);
    for (uint32_t listener = 0; listener < REACTOR_LISTENERS; listener++) {
        if (reactor->listen_fds[listener] < 0 || reactor->accept_armed[listener]) continue;
        struct io_uring_sqe *sqe = reactor_sqe(reactor);
        io_uring_prep_multishot_accept(sqe, reactor->listen_fds[listener], NULL, NULL,
                                       SOCK_CLOEXEC);
        io_uring_sqe_set_data64(sqe, user_data_encode(REACTOR_TAG_ACCEPT, listener, 0));
        reactor->accept_armed[listener] = true;
        reactor->accept_cancelled[listener] = false;
    }
}

/* Stops the multishot accepts that are live (each one's final completion clears its flag). */
void reactor_cancel_accept(struct reactor *reactor) {
    for (uint32_t listener = 0; listener < REACTOR_LISTENERS; listener++) {
        if (!reactor->accept_armed[listener] || reactor->accept_cancelled[listener]) continue;
        struct io_uring_sqe *sqe = reactor_sqe(reactor);
        io_uring_prep_cancel64(sqe, user_data_encode(REACTOR_TAG_ACCEPT, listener, 0), 0);
        io_uring_sqe_set_data64(sqe, user_data_encode(REACTOR_TAG_CANCEL, 0, 0));
        reactor->accept_cancelled[listener] = true;
    }
}

bool reactor_accepting(const struct reactor *reactor) {
    for (uint32_t listener = 0; listener < REACTOR_LISTENERS; listener++)
        if (reactor->accept_armed[listener]) return true;
    return false;
}

static void reactor_arm_wake(struct reactor *reactor) {
    INTAKE_ASSERT(reactor->links.doorbell->kind == DOORBELL_EVENTFD);
    struct io_uring_sqe *sqe = reactor_sqe(reactor);
    io_uring_prep_read(sqe, doorbell_fd(reactor->links.doorbell), &reactor->wake_value,
                       sizeof(reactor->wake_value), 0);
    io_uring_sqe_set_data64(sqe, user_data_encode(REACTOR_TAG_WAKE, 0, 0));
}

/* ----------------------------------------------------------------- completions --- */

/* Accept errors are counted; running out of descriptors or memory pauses accepting for a
 * moment (timers.c) instead of re-arming into the same error. */
static void reactor_on_accept(struct reactor *reactor, const struct io_uring_cqe *cqe) {
    uint32_t listener = user_data_slot(cqe->user_data);
    INTAKE_ASSERT(listener < REACTOR_LISTENERS);
    INTAKE_ASSERT(reactor->accept_armed[listener]);
    if (!(cqe->flags & IORING_CQE_F_MORE)) reactor->accept_armed[listener] = false;
    if (cqe->res >= 0) {
        connection_open(reactor, cqe->res, listener == REACTOR_LISTENER_TLS);
    } else if (cqe->res != -ECANCELED) {
        reactor->counters.accept_errors++;
        int error = -cqe->res;
        if (error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM)
            reactor_pause_accept(reactor);
    }
    if (!reactor->accept_armed[listener] && !reactor->stop_started && !reactor->accept_paused)
        reactor_arm_accept(reactor);
}

/* Dispatches one completion; the connection it concerns is checked after its handler. */
static void reactor_dispatch(struct reactor *reactor, const struct io_uring_cqe *cqe) {
    enum reactor_tag tag = user_data_tag(cqe->user_data);
    struct connection *connection = NULL;
    switch (tag) {
    case REACTOR_TAG_ACCEPT: reactor_on_accept(reactor, cqe); return;
    case REACTOR_TAG_RECEIVE: reactor_on_receive(reactor, cqe); break;
    case REACTOR_TAG_SEND: reactor_on_send(reactor, cqe); break;
    case REACTOR_TAG_CANCEL: return; /* the receive's own final completion says what happened */
    case REACTOR_TAG_LINGER: reactor_on_linger(reactor, cqe); break;
    case REACTOR_TAG_HANDSHAKE_RECEIVE: reactor_on_handshake_receive(reactor, cqe); break;
    case REACTOR_TAG_HANDSHAKE_SEND: reactor_on_handshake_send(reactor, cqe); break;
    case REACTOR_TAG_WAKE:
        reactor->counters.wakeups++;
        reactor_arm_wake(reactor);
        return;
    case REACTOR_TAG_TICK: reactor_on_tick(reactor, cqe); return;
    case REACTOR_TAG_ACCEPT_RESUME: reactor_on_accept_resume(reactor); return;
    default: INTAKE_ASSERT(!"unknown completion tag");
    }
    connection = reactor_connection_for(reactor, cqe->user_data & ~USER_DATA_LINGER_TIMEOUT);
    connection_check(reactor, connection);
}

static void reactor_process_completions(struct reactor *reactor) {
    struct io_uring_cqe *cqe;
    unsigned head;
    unsigned seen = 0;
    io_uring_for_each_cqe(&reactor->ring, head, cqe) {
        reactor_dispatch(reactor, cqe);
        if (++seen == REACTOR_CQE_BATCH_MAX) break;
    }
    INTAKE_ASSERT(seen <= REACTOR_CQE_BATCH_MAX);
    io_uring_cq_advance(&reactor->ring, seen);
}

/* ----------------------------------------------------------------- batched work --- */

/* Worker `worker`'s return ring to this reactor (its column of the pipeline's matrix). */
static struct spsc_ring *reactor_return_ring(struct reactor *reactor, uint32_t worker) {
    INTAKE_ASSERT(worker < reactor->links.worker_count);
    INTAKE_ASSERT(reactor->links.return_rings != NULL);
    return &reactor->links.return_rings[(size_t)worker * reactor->links.return_ring_stride];
}

/* One record back from a worker: the window learns its outcome, its units drop. */
static void reactor_take_return(struct reactor *reactor, struct record *record) {
    INTAKE_ASSERT(record->reactor_index == reactor->index);
    INTAKE_ASSERT(record->connection_slot < reactor->connection_count_max);
    struct connection *connection = &reactor->connections[record->connection_slot];
    INTAKE_ASSERT(connection->generation == record->connection_generation);
    INTAKE_ASSERT(connection->phase != CONNECTION_FREE);
    bool committed = record->status == RECORD_STATUS_OK;
    ack_window_complete(&connection->window, record->window_position, committed);
    if (record->sequence != 0) {
        INTAKE_ASSERT(reactor->numbered_in_flight > 0);
        reactor->numbered_in_flight--;
    }
    /* Listed before anything may end it, so the slot stays ours until the ack pass. */
    connection_list_add(reactor, connection, LIST_ACK);
    if (!committed) {
        /* Before the record is freed: the connection copies the reason out of it. */
        reactor->counters.records_failed++;
        connection_end(reactor, connection, (enum record_status)record->status,
                       record->status_detail);
    }
    reactor_release_record(reactor, record);
    reactor->counters.records_returned++;
}

void reactor_take_returns(struct reactor *reactor) {
    INTAKE_ASSERT(reactor->links.return_ring_stride > 0);
    struct record *batch[REACTOR_RETURN_BATCH_MAX];
    for (uint32_t worker = 0; worker < reactor->links.worker_count; worker++) {
        struct spsc_ring *ring = reactor_return_ring(reactor, worker);
        uint32_t count = spsc_ring_pop_batch(ring, batch, REACTOR_RETURN_BATCH_MAX);
        INTAKE_ASSERT(count <= REACTOR_RETURN_BATCH_MAX);
        for (uint32_t index = 0; index < count; index++) {
            /* The records were last written on the worker's core: ask for the lines of one a
             * few places ahead so the misses overlap. */
            if (index + REACTOR_RETURN_PREFETCH < count) {
                __builtin_prefetch(batch[index + REACTOR_RETURN_PREFETCH]);
                __builtin_prefetch((const char *)batch[index + REACTOR_RETURN_PREFETCH] +
                                   INTAKE_CACHE_LINE_BYTES);
            }
            reactor_take_return(reactor, batch[index]);
        }
    }
}

static bool reactor_returns_pending(struct reactor *reactor) {
    INTAKE_ASSERT(reactor->links.worker_count > 0);
    for (uint32_t worker = 0; worker < reactor->links.worker_count; worker++)
        if (!spsc_ring_is_empty(reactor_return_ring(reactor, worker))) return true;
    return false;
}

/* Takes a slot list for a pass: each connection leaves it (and is touched, so the finishing
 * point sees it); the pass may list it again. */
static uint32_t reactor_take_list(const struct reactor *reactor, uint32_t *count) {
    uint32_t taken = *count;
    INTAKE_ASSERT(taken <= reactor->connection_count_max);
    *count = 0;
    return taken;
}

/* Reverses list[first, last) in place. */
static void reactor_reverse_slots(uint32_t *list, uint32_t first, uint32_t last) {
    while (first + 1 < last) {
        uint32_t slot = list[first];
        list[first++] = list[--last];
        list[last] = slot;
    }
}

static void reactor_retry_paused(struct reactor *reactor) {
    uint32_t count = reactor_take_list(reactor, &reactor->retry_count);
    if (count > 1) {
        /* Rotate the list left by `start` (three reversals) so the pass begins there. The
         * list is rotated in place rather than walked from `start` because connections listed
         * again during the pass are written from its front, over entries already taken. */
        uint32_t start = reactor->retry_rotation++ % count;
        reactor_reverse_slots(reactor->retry_list, 0, start);
        reactor_reverse_slots(reactor->retry_list, start, count);
        reactor_reverse_slots(reactor->retry_list, 0, count);
    }
    for (uint32_t index = 0; index < count; index++) {
        struct connection *connection = &reactor->connections[reactor->retry_list[index]];
        INTAKE_ASSERT(connection->lists & LIST_RETRY);
        connection->lists &= (uint8_t)~LIST_RETRY;
        connection_resume(reactor, connection);
        /* Resumed, still paused (listed again), or ended meanwhile: never silently dropped. */
        INTAKE_ASSERT(connection->phase != CONNECTION_PAUSED || (connection->lists & LIST_RETRY));
        connection_touch(reactor, connection);
    }
}

static void reactor_flush_acks(struct reactor *reactor) {
    uint32_t count = reactor_take_list(reactor, &reactor->ack_count);
    for (uint32_t index = 0; index < count; index++) {
        struct connection *connection = &reactor->connections[reactor->ack_list[index]];
        INTAKE_ASSERT(connection->lists & LIST_ACK);
        connection->lists &= (uint8_t)~LIST_ACK;
        connection_flush_ack(reactor, connection);
        INTAKE_ASSERT(connection->ack_sent_sequence <= connection->window.ack_sequence);
        connection_touch(reactor, connection);
    }
}

/* Receives that ended for lack of units restart once units are back; connections that ended
 * meanwhile just leave the list. */
static void reactor_rearm_waiting_for_units(struct reactor *reactor) {
    if (reactor->units_wait_count == 0) return;
    bool units_back = reactor->backend->ops->units_available(reactor->backend) > 0;
    uint32_t count = reactor_take_list(reactor, &reactor->units_wait_count);
    for (uint32_t index = 0; index < count; index++) {
        uint32_t slot = reactor->units_wait_list[index];
        struct connection *connection = &reactor->connections[slot];
        INTAKE_ASSERT(connection->lists & LIST_UNITS);
        bool waits = connection->phase == CONNECTION_PAUSED && connection->pause == PAUSE_UNITS;
        if (waits && !units_back) {
            reactor->units_wait_list[reactor->units_wait_count++] = slot;
            continue;
        }
        connection->lists &= (uint8_t)~LIST_UNITS;
        if (waits) {
            connection->phase = CONNECTION_READING;
            connection->pause = PAUSE_NONE;
            /* Intake paused it: its deadlines start again. */
            connection->last_input_ns = reactor->now_ns;
            if (connection->frame_started_ns != 0) connection->frame_started_ns = reactor->now_ns;
            connection_maybe_rearm(reactor, connection);
        }
        connection_touch(reactor, connection);
    }
}

static void reactor_wake_workers(struct reactor *reactor) {
    INTAKE_ASSERT(reactor->workers_to_wake != NULL);
    for (uint32_t worker = 0; worker < reactor->links.worker_count; worker++) {
        if (!reactor->workers_to_wake[worker]) continue;
        reactor->workers_to_wake[worker] = false;
        doorbell_ring(&reactor->links.worker_doorbells[worker]);
    }
}

/* ---------------------------------------------------------------------- shutdown --- */

/* Every iteration while stopping: no receive is re-armed (connection_maybe_rearm checks), live
 * ones are cancelled, and a connection ends once the input it already holds (a blocked record
 * or backlog, retried as space returns) is admitted. A pass over the slots per iteration, only
 * during shutdown. */
static void reactor_continue_stop(struct reactor *reactor) {
    INTAKE_ASSERT(reactor->stop_started);
    for (uint32_t slot = 0; slot < reactor->connection_count_max; slot++) {
        struct connection *connection = &reactor->connections[slot];
        if (connection->phase == CONNECTION_HANDSHAKE &&
            connection->handshake_step != HANDSHAKE_STEP_ENDING) {
            connection_handshake_fail(reactor, connection, HANDSHAKE_FAILURE_OTHER,
                                      "intake is shutting down");
            continue;
        }
        if (!connection_is_open(connection)) continue;
        connection_cancel_receive(reactor, connection);
        /* What it holds that can still be framed is admitted first (a TLS connection's start
         * of a record, with no receive to complete it, cannot). */
        bool input_pending = connection->tls ? connection_tls_input_pending(reactor, connection)
                                             : connection->backlog_head != REACTOR_NO_NODE;
        if (connection->blocked_record != NULL || input_pending) continue;
        connection_end(reactor, connection, RECORD_STATUS_SHUTTING_DOWN, "intake is shutting down");
    }
}

/* Shutdown, first step: stop accepting and reading; everything admitted still completes. */
static void reactor_begin_stop(struct reactor *reactor) {
    INTAKE_ASSERT(!reactor->stop_started);
    reactor->stop_started = true;
    reactor_cancel_accept(reactor);
    reactor_continue_stop(reactor);
}

/* --------------------------------------------------------------------- stalls --- */

/*
 * Receive buffers are shared by a reactor's connections, and a partially received record pins
 * the buffers holding its first part. When every buffer is pinned that way, each of those
 * records waits for buffers that only its own completion would free: no progress is possible
 * (nothing is at the workers to come back, nobody is blocked on anything else). Copying the
 * partial records out would break the one-copy rule, so the connection that has pinned buffers
 * longest without completing a record ends with RESOURCE_EXHAUSTED (its records before that
 * point still commit and are acked). Sizing
 * --buffers x --buffer-size above (connections sending at once) x (their largest records)
 * keeps this from happening at all.
 */
static bool reactor_stalled(struct reactor *reactor) {
    return reactor->units_wait_count != 0 && reactor->retry_count == 0 &&
           reactor->backend->ops->units_available(reactor->backend) == 0 &&
           reactor->counters.records_admitted == reactor->counters.records_returned &&
           io_uring_cq_ready(&reactor->ring) == 0;
}

static void reactor_break_stall(struct reactor *reactor) {
    INTAKE_ASSERT(reactor->backend != NULL);
    const struct rx_backend_stats *stats = &reactor->backend->stats;
    uint64_t progress = stats->completions + stats->units_recycled +
                        reactor->counters.records_returned + reactor->counters.connections_closed;
    if (!reactor_stalled(reactor)) {
        reactor->stall_suspected = false;
        return;
    }
    if (!reactor->stall_suspected || progress != reactor->stall_progress_mark) {
        reactor->stall_suspected = true; /* reactor_wait looks again after a timed wait */
        reactor->stall_progress_mark = progress;
        return;
    }
    reactor->stall_suspected = false;
    /* The connection that has pinned buffers longest without completing a record, not the one
     * pinning the most: an honest producer of large records pins many buffers for a short
     * while, a stuck or hostile one few buffers for long. */
    struct connection *oldest = reactor_oldest_partial(reactor, true);
    if (oldest == NULL) return;
    INTAKE_ASSERT(connection_is_open(oldest));
    reactor->counters.stalls_broken++;
    connection_end(reactor, oldest, RECORD_STATUS_RESOURCE_EXHAUSTED,
                   "receive buffers exhausted by partially received records; "
                   "raise --buffers or --buffer-size, or lower --max-frame");
}

/* ----------------------------------------------------------------- sleep, wake --- */

static bool reactor_finished(const struct reactor *reactor) {
    INTAKE_ASSERT(reactor->open_connections <= reactor->connection_count_max);
    return reactor->stop_started && reactor->open_connections == 0 && !reactor_accepting(reactor);
}

/*
 * Whether anything waits for workers to give records back: an Ack owed, a connection paused or
 * waiting for units or draining, shutdown, or receive units or pool records running short.
 * Otherwise (a producer that asks for no acks, resources plentiful) the reactor sleeps without
 * asking workers to wake it, and takes their returns on its next wake: a receive, a tick, or a
 * ring_always. That saves a wake-up (an eventfd write and a context switch) per worker batch.
 */
static bool reactor_returns_awaited(struct reactor *reactor) {
    if (reactor->numbered_in_flight > 0 || reactor->draining_connections > 0) return true;
    if (reactor->retry_count > 0 || reactor->units_wait_count > 0) return true;
    if (reactor->stop_started || reactor->stall_suspected) return true;
    const struct record_pool *pool = &reactor->pool;
    if (pool->free_count < pool->capacity / REACTOR_UNITS_RESERVE_SHARE) return true;
    const struct rx_backend *backend = reactor->backend;
    return backend->ops->units_available(backend) <
           backend->unit_count / REACTOR_UNITS_RESERVE_SHARE;
}

static void reactor_wait(struct reactor *reactor) {
    INTAKE_ASSERT(!reactor_finished(reactor));
    bool awaited = reactor_returns_awaited(reactor);
    /* The doorbell handshake with workers (doorbell.h): arm, then look once more at the return
     * rings. A worker publishes a return (release store of the ring tail), then rings. Not
     * armed, workers do not ring: only what is awaited needs the wake. */
    if (awaited) doorbell_arm(reactor->links.doorbell);
    if ((awaited && reactor_returns_pending(reactor)) || atomic_load(&reactor->report_requested)) {
        doorbell_disarm(reactor->links.doorbell);
        /* Not sleeping, but with deferred task running completions are only posted when we
         * ask for events: submit and run task work without waiting. */
        int result = io_uring_submit_and_get_events(&reactor->ring);
        if (result < 0) reactor_submit_failed(reactor, "io_uring_submit_and_get_events", result);
        return;
    }
    int result;
    if (reactor->retry_count > 0 || reactor->stall_suspected) {
        struct __kernel_timespec timeout = {0, REACTOR_BLOCKED_RECHECK_NS};
        struct io_uring_cqe *cqe = NULL;
        result = io_uring_submit_and_wait_timeout(&reactor->ring, &cqe, 1, &timeout, NULL);
        /* -ETIME: the recheck interval passed with nothing completed, which is the point. */
        if (result < 0 && result != -ETIME)
            reactor_submit_failed(reactor, "io_uring_submit_and_wait_timeout", result);
    } else {
        /* Idle, but not longer than a heartbeat interval (readiness probes read it). */
        struct __kernel_timespec timeout = {
            (long long)(INTAKE_COUNTERS_HEARTBEAT_INTERVAL_NS / 1000000000ull),
            (long long)(INTAKE_COUNTERS_HEARTBEAT_INTERVAL_NS % 1000000000ull)};
        struct io_uring_cqe *cqe = NULL;
        result = io_uring_submit_and_wait_timeout(&reactor->ring, &cqe, 1, &timeout, NULL);
        if (result < 0 && result != -ETIME)
            reactor_submit_failed(reactor, "io_uring_submit_and_wait_timeout", result);
    }
    doorbell_disarm(reactor->links.doorbell);
}

void reactor_loop(struct reactor *reactor) {
    INTAKE_ASSERT(reactor->ring_ready);
    INTAKE_ASSERT(reactor->backend != NULL);
    reactor->now_ns = intake_now_ns();
    reactor_arm_accept(reactor);
    reactor_arm_wake(reactor);
    reactor_timers_start(reactor);
    for (;;) {
        reactor->now_ns = intake_now_ns();
        /* --acl: the rule set this pass uses; from here on it holds no older one. */
        if (reactor->links.acl != NULL)
            reactor->acl = acl_exchange_take(reactor->links.acl, reactor->index);
        if (atomic_load_explicit(reactor->links.stopping, memory_order_acquire)) {
            if (!reactor->stop_started)
                reactor_begin_stop(reactor);
            else
                reactor_continue_stop(reactor);
        }
        if (atomic_exchange(&reactor->report_requested, false))
            reactor_print_counters(reactor, stderr, "on request");
        reactor_take_returns(reactor);
        reactor_take_handshake_answers(reactor);
        reactor_retry_paused(reactor);
        reactor_flush_acks(reactor);
        reactor_break_stall(reactor);
        reactor_rearm_waiting_for_units(reactor);
        reactor_sweep_deadlines(reactor);
        reactor_evict_partial(reactor);
        /* The one finishing point: connections the pass (and the last completions) touched. */
        reactor_advance_connections(reactor);
        rx_backend_flush(reactor->backend, &reactor->ring);
        reactor_wake_workers(reactor);
        if (reactor_finished(reactor)) break;
        /* Before sleeping: what readers see is never older than the last batch of work. */
        reactor_publish_counters(reactor);
        reactor_wait(reactor);
        /* The wait may have slept: deadlines of what completes now start from the present. */
        reactor->now_ns = intake_now_ns();
        reactor_process_completions(reactor);
        reactor_wake_workers(reactor);
    }
    reactor_publish_counters(reactor); /* the final values, for readers after exit */
}
