/*
 * connection.c: the connection table and each connection's life (see reactor_internal.h for
 * the phases). Reactor thread only.
 *
 * Handlers never free a connection: they end it (connection_end) or note that it may advance
 * (connection_touch), and reactor_advance_connections, once per loop iteration, moves each
 * noted connection on: final Ack, lingering close, close and free.
 */
#include <errno.h>
#include <stdio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "reactor_internal.h"

/* ------------------------------------------------------------------------ lists --- */

static uint32_t *connection_list_array(struct reactor *reactor, enum connection_list list,
                                       uint32_t **count) {
    switch (list) {
    case LIST_RETRY: *count = &reactor->retry_count; return reactor->retry_list;
    case LIST_ACK: *count = &reactor->ack_count; return reactor->ack_list;
    case LIST_UNITS: *count = &reactor->units_wait_count; return reactor->units_wait_list;
    case LIST_ADVANCE: *count = &reactor->advance_count; return reactor->advance_list;
    }
    INTAKE_ASSERT(!"unknown connection list");
    return NULL;
}

/* Adds the connection to a slot list once (each list holds every slot at most once, so it is
 * sized connections_max and never overflows). */
void connection_list_add(struct reactor *reactor, struct connection *connection,
                         enum connection_list list) {
    INTAKE_ASSERT(connection->phase != CONNECTION_FREE);
    if (connection->lists & list) return;
    uint32_t *count = NULL;
    uint32_t *array = connection_list_array(reactor, list, &count);
    INTAKE_ASSERT(*count < reactor->connection_count_max);
    connection->lists |= (uint8_t)list;
    array[(*count)++] = connection_slot(reactor, connection);
}

void connection_touch(struct reactor *reactor, struct connection *connection) {
    connection_list_add(reactor, connection, LIST_ADVANCE);
}

/* --------------------------------------------------------------------- receives --- */

void connection_arm_receive(struct reactor *reactor, struct connection *connection) {
    INTAKE_ASSERT(connection->receives_in_flight == 0);
    INTAKE_ASSERT(connection->phase == CONNECTION_READING);
    uint64_t data = user_data_encode(REACTOR_TAG_RECEIVE, connection_slot(reactor, connection),
                                     connection->generation);
    const struct rx_backend_ops *ops = reactor->backend->ops;
    if (ops->arm(reactor->backend, &reactor->ring, connection->fd, data) == -EBUSY) {
        /* The SQ is full: submit it and take the slot that frees. */
        reactor_submit(reactor);
        int result = ops->arm(reactor->backend, &reactor->ring, connection->fd, data);
        INTAKE_ASSERT(result == 0);
    }
    connection->receives_in_flight = 1;
    connection->receive_cancelling = false;
}

void connection_cancel_receive(struct reactor *reactor, struct connection *connection) {
    if (connection->receives_in_flight == 0 || connection->receive_cancelling) return;
    uint32_t slot = connection_slot(reactor, connection);
    struct io_uring_sqe *sqe = reactor_sqe(reactor);
    io_uring_prep_cancel64(sqe, user_data_encode(REACTOR_TAG_RECEIVE, slot, connection->generation),
                           0);
    io_uring_sqe_set_data64(sqe,
                            user_data_encode(REACTOR_TAG_CANCEL, slot, connection->generation));
    connection->receive_cancelling = true;
}

/* Re-arms the receive of a connection that reads and has none live. */
void connection_maybe_rearm(struct reactor *reactor, struct connection *connection) {
    if (connection->phase != CONNECTION_READING) return;
    if (connection->receives_in_flight != 0 || connection->peer_closed) return;
    if (reactor->stop_started) return;
    /* A TLS connection may hold the start of its next record; nothing else waits. */
    INTAKE_ASSERT(connection->backlog_head == REACTOR_NO_NODE || connection->tls);
    connection_arm_receive(reactor, connection);
}

/* A receive completion: data is framed (or dropped once the connection stopped reading), the
 * end of the multishot is noted, and the connection re-armed when it still reads. */
void reactor_on_receive(struct reactor *reactor, const struct io_uring_cqe *cqe) {
    struct connection *connection = reactor_connection_for(reactor, cqe->user_data);
    INTAKE_ASSERT(connection->receives_in_flight == 1);
    struct rx_chunk chunk;
    int errno_value = 0;
    enum rx_event event = reactor->backend->ops->parse(reactor->backend, cqe, &chunk, &errno_value);
    if (!(cqe->flags & IORING_CQE_F_MORE)) {
        connection->receives_in_flight = 0;
        connection->receive_cancelling = false;
    }
    switch (event) {
    case RX_EVENT_DATA:
        if (connection_is_open(connection)) {
            connection->last_input_ns = reactor->now_ns;
            connection_receive_chunk(reactor, connection, &chunk);
        } else {
            rx_backend_unref(reactor->backend, chunk.unit);
        }
        break;
    case RX_EVENT_END_OF_STREAM: connection->peer_closed = true; break;
    case RX_EVENT_OUT_OF_UNITS:
        reactor->counters.pauses_out_of_units++;
        /* Only a reading connection waits for units; a paused one re-arms when it resumes. */
        if (connection->phase == CONNECTION_READING && connection->receives_in_flight == 0) {
            connection->phase = CONNECTION_PAUSED;
            connection->pause = PAUSE_UNITS;
            connection_list_add(reactor, connection, LIST_UNITS);
        }
        break;
    case RX_EVENT_RETRY:
    case RX_EVENT_CANCELED: break;
    case RX_EVENT_ERROR:
        connection->socket_dead = true;
        connection_end(reactor, connection, RECORD_STATUS_OK, NULL);
        break;
    }
    connection_maybe_rearm(reactor, connection);
    connection_touch(reactor, connection);
}

/* ------------------------------------------------------------------- life cycle --- */

/* Drops a record's unit references and gives it back to the pool. */
void reactor_release_record(struct reactor *reactor, struct record *record) {
    INTAKE_ASSERT(record->slice_count <= RECORD_SLICES_MAX);
    for (uint32_t index = 0; index < record->slice_count; index++)
        rx_backend_unref(reactor->backend, record->slices[index].unit);
    record_pool_give(&reactor->pool, record);
}

void connection_open(struct reactor *reactor, int fd, bool tls) {
    INTAKE_ASSERT(fd >= 0);
    if (reactor->free_slot_count == 0 || reactor->stop_started) {
        /* Every slot is taken: refuse by closing at once (the producer sees a reset/EOF). */
        reactor->counters.connections_refused++;
        close(fd);
        return;
    }
    if (tls && reactor->handshake_free_count == 0) {
        /* Every handshake slot is taken (--handshakes-max): the same refusal. */
        reactor->counters.tls_handshakes_refused++;
        close(fd);
        return;
    }
    uint32_t slot = reactor->free_slots[--reactor->free_slot_count];
    struct connection *connection = &reactor->connections[slot];
    INTAKE_ASSERT(connection->phase == CONNECTION_FREE);
    INTAKE_ASSERT(connection->lists == 0);
    uint32_t generation = connection->generation + 1;
    memset(connection, 0, sizeof(*connection));
    connection->generation = generation;
    connection->fd = fd;
    connection->phase = CONNECTION_READING;
    connection->tls = tls;
    connection->last_input_ns = reactor->now_ns;
    connection->backlog_head = REACTOR_NO_NODE;
    connection->backlog_tail = REACTOR_NO_NODE;
    size_t window_capacity = reactor->links.ack_window_capacity;
    ack_window_init(&connection->window, reactor->window_sequences + (size_t)slot * window_capacity,
                    reactor->window_states + (size_t)slot * window_capacity,
                    (uint32_t)window_capacity);
    framer_init(&connection->framer, tls ? reactor->tls_frame_bytes_max : reactor->frame_bytes_max);
    connection->principal = *principal_anonymous();
    /* Acks are small and latency matters more than packing them. Without it acks still flow,
     * only later: counted, not fatal. */
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
        reactor->counters.socket_option_errors++;
    reactor->open_connections++;
    reactor->counters.connections_accepted++;
    if (tls) {
        /* Its handshake first (tls_handshake.c): the receive backend comes after it. */
        bool started = connection_handshake_start(reactor, connection);
        INTAKE_ASSERT(started);
    } else {
        connection_arm_receive(reactor, connection);
    }
    connection_check(reactor, connection);
}

/* Ends reading on a connection; records already admitted still commit and are acked. A non-OK
 * status is sent in the final Ack once they have. */
void connection_end(struct reactor *reactor, struct connection *connection,
                    enum record_status status, const char *detail) {
    if (!connection_is_open(connection)) return;
    /* Its wait for its quota ends here: counted up to now. */
    if (connection->phase == CONNECTION_PAUSED && connection->pause == PAUSE_QUOTA)
        connection_account_throttle(reactor, connection);
    connection->phase = CONNECTION_DRAINING;
    reactor->draining_connections++;
    connection->pause = PAUSE_NONE;
    connection->end_status = (uint8_t)status;
    connection->end_detail = NULL;
    if (detail != NULL) {
        if (detail != connection->end_detail_text)
            snprintf(connection->end_detail_text, sizeof(connection->end_detail_text), "%s",
                     detail);
        connection->end_detail = connection->end_detail_text;
    }
    if (status != RECORD_STATUS_OK && status != RECORD_STATUS_SHUTTING_DOWN)
        reactor->counters.connections_failed++;
    INTAKE_ASSERT(status < INTAKE_ARRAY_LENGTH(reactor->counters.connections_ended));
    reactor->counters.connections_ended[status]++;
    connection_cancel_receive(reactor, connection);
    connection_drop_input(reactor, connection);
    INTAKE_ASSERT(connection->slices_pinned == 0);
    INTAKE_ASSERT(connection->backlog_head == REACTOR_NO_NODE);
    connection_touch(reactor, connection);
}

static void connection_close(struct reactor *reactor, struct connection *connection) {
    INTAKE_ASSERT(connection->lists == 0);
    INTAKE_ASSERT(connection->receives_in_flight == 0);
    INTAKE_ASSERT(connection->sends_in_flight == 0);
    INTAKE_ASSERT(connection->lingers_in_flight == 0);
    if (connection->tls && connection->phase != CONNECTION_HANDSHAKE)
        connection_tls_release(reactor, connection);
    close(connection->fd);
    connection->fd = -1;
    connection->phase = CONNECTION_FREE;
    reactor->free_slots[reactor->free_slot_count++] = connection_slot(reactor, connection);
    INTAKE_ASSERT(reactor->free_slot_count <= reactor->connection_count_max);
    INTAKE_ASSERT(reactor->open_connections > 0);
    reactor->open_connections--;
    reactor->counters.connections_closed++;
}

/* Moves a connection on as far as it can go now. The one place a connection leaves DRAINING,
 * FINAL_ACK or LINGERING, and the one place it is freed. */
static void connection_advance(struct reactor *reactor, struct connection *connection) {
    if (connection->phase == CONNECTION_HANDSHAKE) {
        if (connection->lists == 0 && connection_handshake_may_close(reactor, connection))
            connection_close(reactor, connection);
        return;
    }
    /* A reading connection whose peer closed has nothing more to frame: it ends in order. */
    if (connection->phase == CONNECTION_READING && connection->peer_closed)
        connection_end(reactor, connection, RECORD_STATUS_OK, NULL);
    if (connection->phase == CONNECTION_DRAINING) {
        if (ack_window_length(&connection->window) != 0) return;
        INTAKE_ASSERT(reactor->draining_connections > 0);
        reactor->draining_connections--;
        connection->phase = CONNECTION_FINAL_ACK;
        connection_flush_ack(reactor, connection);
        /* Every record is back: the producer's acknowledged sequence learns this one's level. */
        connection_fold_identity(reactor, connection);
    }
    if (connection->phase == CONNECTION_FINAL_ACK) {
        if (connection->receives_in_flight != 0 || connection->sends_in_flight != 0) return;
        /* A TLS connection's close_notify (or alert) goes out before it closes. */
        if (connection->tls && connection_tls_owes_send(reactor, connection) &&
            !connection->socket_dead) {
            connection_flush_ack(reactor, connection);
            if (connection->sends_in_flight != 0) return;
        }
        if (connection_should_linger(connection)) {
            connection_linger_start(reactor, connection);
            if (connection->phase == CONNECTION_LINGERING) return;
        }
    }
    if (connection->phase == CONNECTION_LINGERING) {
        if (connection->lingers_in_flight != 0 || !connection->linger_done) return;
    } else if (connection->phase != CONNECTION_FINAL_ACK) {
        return;
    }
    /* Freed when delisted: each list pass touches what it delists, so this comes back. */
    if (connection->lists != 0) return;
    connection_close(reactor, connection);
}

/* The finishing point, once per loop iteration after the batched work. */
void reactor_advance_connections(struct reactor *reactor) {
    /* Taken as a stack: a connection advancing may note itself again (connection_end), and is
     * then taken again at once; the LIST_ADVANCE bit keeps each slot on it at most once. */
    while (reactor->advance_count > 0) {
        uint32_t slot = reactor->advance_list[--reactor->advance_count];
        struct connection *connection = &reactor->connections[slot];
        INTAKE_ASSERT(connection->lists & LIST_ADVANCE);
        connection->lists &= (uint8_t)~LIST_ADVANCE;
        connection_advance(reactor, connection);
        connection_check(reactor, connection);
    }
}

struct connection *reactor_connection_for(struct reactor *reactor, uint64_t user_data) {
    uint32_t slot = user_data_slot(user_data);
    INTAKE_ASSERT(slot < reactor->connection_count_max);
    struct connection *connection = &reactor->connections[slot];
    /* Every operation of a connection completes before its slot is freed and reused. */
    INTAKE_ASSERT(connection->generation == user_data_generation(user_data));
    INTAKE_ASSERT(connection->phase != CONNECTION_FREE);
    return connection;
}

/* ---------------------------------------------------------------------- check --- */

static void connection_check_paused(const struct connection *connection) {
    INTAKE_ASSERT(connection->pause != PAUSE_NONE);
    switch ((enum connection_pause)connection->pause) {
    case PAUSE_TOPIC_QUEUE:
    case PAUSE_ACK_WINDOW:
    case PAUSE_QUOTA:
        INTAKE_ASSERT(connection->blocked_record != NULL);
        INTAKE_ASSERT(connection->lists & LIST_RETRY);
        break;
    case PAUSE_RECORD_POOL:
    case PAUSE_TOPIC_LOG:
        INTAKE_ASSERT(connection->blocked_record == NULL);
        INTAKE_ASSERT(connection->lists & LIST_RETRY);
        break;
    case PAUSE_UNITS:
        INTAKE_ASSERT(connection->blocked_record == NULL);
        /* Paused while reading: at most a TLS connection's start of its next record waits. */
        INTAKE_ASSERT(connection->backlog_head == REACTOR_NO_NODE || connection->tls);
        INTAKE_ASSERT(connection->lists & LIST_UNITS);
        break;
    case PAUSE_NONE: break;
    }
}

/* The invariants of a connection's phase; after every completion handler and every advance. */
void connection_check(const struct reactor *reactor, const struct connection *connection) {
    INTAKE_ASSERT(connection->receives_in_flight <= 1);
    INTAKE_ASSERT(connection->sends_in_flight <= 1);
    INTAKE_ASSERT(connection->lingers_in_flight <= 2);
    INTAKE_ASSERT(!connection->receive_cancelling || connection->receives_in_flight == 1);
    INTAKE_ASSERT((connection->backlog_head == REACTOR_NO_NODE) ==
                  (connection->backlog_tail == REACTOR_NO_NODE));
    INTAKE_ASSERT(ack_window_length(&connection->window) <= connection->window.capacity);
    /* Deadline clocks come from the reactor's coarse clock, which only moves forward. */
    INTAKE_ASSERT(connection->frame_started_ns <= reactor->now_ns);
    INTAKE_ASSERT(connection->last_input_ns <= reactor->now_ns);
    switch ((enum connection_phase)connection->phase) {
    case CONNECTION_FREE:
        INTAKE_ASSERT(connection->fd == -1);
        INTAKE_ASSERT(connection->lists == 0);
        INTAKE_ASSERT(connection->receives_in_flight == 0);
        INTAKE_ASSERT(connection->sends_in_flight == 0);
        INTAKE_ASSERT(connection->lingers_in_flight == 0);
        return;
    case CONNECTION_READING:
        INTAKE_ASSERT(connection->pause == PAUSE_NONE);
        INTAKE_ASSERT(connection->blocked_record == NULL);
        INTAKE_ASSERT(connection->backlog_head == REACTOR_NO_NODE || connection->tls);
        INTAKE_ASSERT(!connection->final_ack_sent);
        break;
    case CONNECTION_HANDSHAKE:
        connection_check_handshake(reactor, connection);
        INTAKE_ASSERT(connection->pause == PAUSE_NONE);
        INTAKE_ASSERT(connection->blocked_record == NULL);
        INTAKE_ASSERT(connection->backlog_head == REACTOR_NO_NODE);
        INTAKE_ASSERT(connection->slices_pinned == 0);
        INTAKE_ASSERT(connection->frame_started_ns == 0);
        INTAKE_ASSERT(!connection->final_ack_sent);
        break;
    case CONNECTION_PAUSED:
        connection_check_paused(connection);
        INTAKE_ASSERT(!connection->final_ack_sent);
        break;
    case CONNECTION_DRAINING:
    case CONNECTION_FINAL_ACK:
    case CONNECTION_LINGERING:
        INTAKE_ASSERT(connection->pause == PAUSE_NONE);
        INTAKE_ASSERT(connection->blocked_record == NULL);
        INTAKE_ASSERT(connection->backlog_head == REACTOR_NO_NODE);
        INTAKE_ASSERT(connection->slices_pinned == 0);
        INTAKE_ASSERT(connection->framer.record == NULL);
        INTAKE_ASSERT(connection->frame_started_ns == 0);
        break;
    }
    INTAKE_ASSERT(connection->fd >= 0);
    INTAKE_ASSERT(connection_slot(reactor, connection) < reactor->connection_count_max);
    if (connection->tls && connection->phase != CONNECTION_HANDSHAKE)
        connection_check_tls(reactor, connection);
    if (connection->phase == CONNECTION_FINAL_ACK)
        INTAKE_ASSERT(ack_window_length(&connection->window) == 0);
    if (connection->phase == CONNECTION_LINGERING) {
        INTAKE_ASSERT(connection->final_ack_sent);
        INTAKE_ASSERT(connection->sends_in_flight == 0);
        INTAKE_ASSERT(connection->receives_in_flight == 0);
    }
}
