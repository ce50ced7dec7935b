/*
 * timers.c: what a reactor does by the clock. Reactor thread only. Nothing here allocates: one
 * tick (a timeout SQE re-armed when it fires) and one accept-pause timeout per reactor, and a
 * sweep of the connection table per tick.
 *
 * Receive deadlines. A client must not hold a connection slot, a record-pool entry or receive
 * buffers forever:
 *   - frame deadline (--frame-timeout-ms): a record must be complete within that long of its
 *     first byte, or the connection ends with REJECTED ("record not complete within ...");
 *   - idle timeout (--idle-timeout-ms): a connection that sent nothing for that long, with no
 *     record in flight and no partial record, ends with RESOURCE_EXHAUSTED ("idle ...");
 *   - handshake timeout (--handshake-timeout-ms): a TLS handshake not done that long after the
 *     accept fails (counted as a timeout) and the connection closes.
 * Both are measured only while intake reads the connection: a connection intake itself paused
 * (a full topic queue or log) is not charged, and its clocks restart when it resumes. The tick
 * runs at an eighth of the shortest deadline, so a deadline is enforced within 1/8 of it late.
 *
 * Accept pauses. EMFILE/ENFILE (and ENOBUFS/ENOMEM) on accept leave the connection in the
 * listen backlog; re-arming at once would fail again at once, a hot loop. Accepting stops for
 * REACTOR_ACCEPT_PAUSE_NS instead, and every such pause and every accept error is counted.
 *
 * Partial records. Each connection holds at most one partial record (the framer's current
 * one), and partial records together may hold at most three quarters of the record pool; the
 * rest is kept for records admitted and in flight. A frame that finds the partial share used up
 * pauses its connection; if that share stays used up, the connection whose partial record is the
 * oldest (at least REACTOR_PARTIAL_EVICT_AGE_NS old) ends with RESOURCE_EXHAUSTED, one per pass,
 * so connections that send a few bytes and stop cannot starve a producer that completes records.
 */
#include <errno.h>
#include <stdio.h>

#include "reactor_internal.h"

static struct __kernel_timespec timers_timespec(uint64_t ns) {
    struct __kernel_timespec timespec = {(long long)(ns / 1000000000u),
                                         (long long)(ns % 1000000000u)};
    return timespec;
}

static void reactor_arm_tick(struct reactor *reactor) {
    INTAKE_ASSERT(!reactor->tick_armed);
    INTAKE_ASSERT(reactor->tick.tv_sec > 0 || reactor->tick.tv_nsec > 0);
    struct io_uring_sqe *sqe = reactor_sqe(reactor);
    io_uring_prep_timeout(sqe, &reactor->tick, 0, 0);
    io_uring_sqe_set_data64(sqe, user_data_encode(REACTOR_TAG_TICK, 0, 0));
    reactor->tick_armed = true;
}

/* Sizes the tick from the deadlines in force and arms it; formats the Ack details once. */
void reactor_timers_start(struct reactor *reactor) {
    const struct reactor_links *links = &reactor->links;
    intake_error_line(reactor->frame_timeout_detail, sizeof(reactor->frame_timeout_detail),
                      "record not complete within --frame-timeout-ms %llu of its first byte",
                      (unsigned long long)(links->frame_timeout_ns / 1000000u));
    intake_error_line(reactor->idle_timeout_detail, sizeof(reactor->idle_timeout_detail),
                      "connection idle for --idle-timeout-ms %llu",
                      (unsigned long long)(links->idle_timeout_ns / 1000000u));
    uint64_t shortest = links->frame_timeout_ns;
    if (shortest == 0 || (links->idle_timeout_ns != 0 && links->idle_timeout_ns < shortest))
        shortest = links->idle_timeout_ns;
    uint64_t handshake = links->tls_listen_address != NULL ? links->handshake_timeout_ns : 0;
    if (shortest == 0 || (handshake != 0 && handshake < shortest)) shortest = handshake;
    uint32_t pool_capacity = reactor->pool.capacity;
    reactor->partial_records_max = pool_capacity - pool_capacity / 4;
    INTAKE_ASSERT(reactor->partial_records_max > 0);
    if (shortest == 0) return; /* no deadline: no tick */
    uint64_t tick_ns = shortest / 8;
    if (tick_ns < REACTOR_TICK_MIN_NS) tick_ns = REACTOR_TICK_MIN_NS;
    if (tick_ns > REACTOR_TICK_MAX_NS) tick_ns = REACTOR_TICK_MAX_NS;
    reactor->tick = timers_timespec(tick_ns);
    reactor_arm_tick(reactor);
}

void reactor_on_tick(struct reactor *reactor, const struct io_uring_cqe *cqe) {
    INTAKE_ASSERT(reactor->tick_armed);
    /* -ETIME is the tick elapsing; anything else (a cancel at teardown) is not re-armed. */
    reactor->tick_armed = false;
    if (cqe->res != -ETIME) return;
    reactor->sweep_due = true;
    if (!reactor->stop_started) reactor_arm_tick(reactor);
}

/* Ends the deadline a reading connection is past, if any. */
static void connection_check_deadlines(struct reactor *reactor, struct connection *connection) {
    const struct reactor_links *links = &reactor->links;
    INTAKE_ASSERT(connection->phase == CONNECTION_READING);
    uint64_t now = reactor->now_ns;
    if (links->frame_timeout_ns != 0 && connection->frame_started_ns != 0 &&
        now - connection->frame_started_ns > links->frame_timeout_ns) {
        reactor->counters.deadline_kills_frame++;
        connection_end(reactor, connection, RECORD_STATUS_REJECTED, reactor->frame_timeout_detail);
        return;
    }
    if (links->idle_timeout_ns == 0 || connection->frame_started_ns != 0) return;
    if (!framer_is_idle(&connection->framer)) return;
    if (ack_window_length(&connection->window) != 0 || connection->sends_in_flight != 0) return;
    if (now - connection->last_input_ns <= links->idle_timeout_ns) return;
    reactor->counters.deadline_kills_idle++;
    connection_end(reactor, connection, RECORD_STATUS_RESOURCE_EXHAUSTED,
                   reactor->idle_timeout_detail);
}

/* Once per tick: one pass over the table (--connections-max slots), at most every 10 ms. */
void reactor_sweep_deadlines(struct reactor *reactor) {
    if (!reactor->sweep_due) return;
    reactor->sweep_due = false;
    INTAKE_ASSERT(reactor->now_ns != 0);
    uint64_t handshake_timeout = reactor->links.handshake_timeout_ns;
    for (uint32_t slot = 0; slot < reactor->connection_count_max; slot++) {
        struct connection *connection = &reactor->connections[slot];
        if (reactor->stop_started) continue;
        if (connection->phase == CONNECTION_HANDSHAKE && handshake_timeout != 0 &&
            connection->handshake_step != HANDSHAKE_STEP_ENDING &&
            reactor->now_ns - connection->handshake_started_ns > handshake_timeout) {
            connection_handshake_fail(reactor, connection, HANDSHAKE_FAILURE_TIMEOUT,
                                      "not done within --handshake-timeout-ms");
            continue;
        }
        if (connection->phase != CONNECTION_READING) continue;
        connection_check_deadlines(reactor, connection);
    }
}

/* ---------------------------------------------------------------- accept pauses --- */

void reactor_pause_accept(struct reactor *reactor) {
    for (uint32_t listener = 0; listener < REACTOR_LISTENERS; listener++)
        INTAKE_ASSERT(!reactor->stop_started || !reactor->accept_armed[listener] ||
                      reactor->accept_cancelled[listener]);
    reactor->counters.accept_pauses++;
    if (reactor->accept_paused) return;
    reactor->accept_paused = true;
    /* A multishot accept that is still live after the error stops for the pause. */
    reactor_cancel_accept(reactor);
    reactor->accept_pause = timers_timespec(REACTOR_ACCEPT_PAUSE_NS);
    struct io_uring_sqe *sqe = reactor_sqe(reactor);
    io_uring_prep_timeout(sqe, &reactor->accept_pause, 0, 0);
    io_uring_sqe_set_data64(sqe, user_data_encode(REACTOR_TAG_ACCEPT_RESUME, 0, 0));
}

void reactor_on_accept_resume(struct reactor *reactor) {
    INTAKE_ASSERT(reactor->accept_paused);
    reactor->accept_paused = false;
    if (!reactor->stop_started) reactor_arm_accept(reactor);
}

/* ------------------------------------------------------------- partial records --- */

/* The open connection whose partial record started longest ago (holding a pool entry, or with
 * `pinning` receive units too), or NULL: the one that has held resources longest without
 * completing a record. A pass over the table; only when the pool or the buffers ran out. */
struct connection *reactor_oldest_partial(struct reactor *reactor, bool pinning) {
    struct connection *oldest = NULL;
    for (uint32_t slot = 0; slot < reactor->connection_count_max; slot++) {
        struct connection *connection = &reactor->connections[slot];
        if (!connection_is_open(connection)) continue;
        /* With TLS, the start of a record on the backlog pins receive units too. */
        bool tls_partial = connection->tls && connection->backlog_head != REACTOR_NO_NODE;
        if (connection->framer.record == NULL && !(pinning && tls_partial)) continue;
        if (pinning && connection->slices_pinned == 0 && !tls_partial) continue;
        INTAKE_ASSERT(connection->frame_started_ns != 0 || connection->slices_pinned == 0);
        if (connection->frame_started_ns == 0) continue;
        if (oldest == NULL || connection->frame_started_ns < oldest->frame_started_ns)
            oldest = connection;
    }
    INTAKE_ASSERT(oldest == NULL || connection_is_open(oldest));
    return oldest;
}

/* When frames wait because partial records hold their whole share of the pool, the connection
 * whose partial record is the oldest ends (if old enough): it has held a pool entry longest
 * without completing a record. One per pass; the pass runs every millisecond while any
 * connection is paused. */
void reactor_evict_partial(struct reactor *reactor) {
    if (!reactor->partial_cap_reached) return;
    if (reactor->partial_records < reactor->partial_records_max) {
        reactor->partial_cap_reached = false;
        return;
    }
    struct connection *oldest = reactor_oldest_partial(reactor, false);
    if (oldest == NULL) return;
    INTAKE_ASSERT(oldest->frame_started_ns <= reactor->now_ns);
    if (reactor->now_ns - oldest->frame_started_ns < REACTOR_PARTIAL_EVICT_AGE_NS) return;
    reactor->counters.partial_evictions++;
    connection_end(reactor, oldest, RECORD_STATUS_RESOURCE_EXHAUSTED,
                   "record pool held by incomplete records; this connection's was the oldest");
}
