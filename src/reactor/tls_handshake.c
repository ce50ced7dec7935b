/*
 * tls_handshake.c: a TLS connection's handshake, as its reactor sees it (the HANDSHAKE phase;
 * handshake.h has the whole story). Reactor thread only.
 *
 * The reactor owns the socket and does every read and write through its ring; a handshake
 * thread only computes. The reactor reads exactly one record at a time into the connection's
 * handshake slot (the 5-byte header, then the length it announces, never a byte more), checks
 * that the first one is a TLS handshake record at all (a plaintext producer on the TLS port is
 * refused here, costing no thread time), and hands the slot over. The answer says what to send
 * and what comes next: the next record, the record layer (READING), or the end.
 *
 *   RECEIVING --record complete--> THREAD --answer--> SENDING --sent--> RECEIVING | READING
 *   any step --failure, timeout, peer gone, shutdown--> ENDING --operations back, SSL freed--> FREE
 *
 * Bounds: --handshakes-max slots per reactor (a TLS connection accepted when all are taken is
 * closed at once and counted as refused), one record per job, one job per slot at a time, the
 * handshake deadline enforced by the tick (timers.c).
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "reactor_internal.h"

/* The first record of a TLS connection: handshake (22), major version 3 (SSL 3.0 to TLS 1.3
 * all write 0x03 0x0X there). Anything else is not a TLS client. */
#define HANDSHAKE_FIRST_CONTENT_TYPE   22u
#define HANDSHAKE_RECORD_VERSION_MAJOR 3u

static struct handshake_slot *connection_handshake_slot(const struct reactor *reactor,
                                                        const struct connection *connection) {
    INTAKE_ASSERT(connection->handshake_slot < reactor->links.handshakes_max);
    return &reactor->handshake_slots[connection->handshake_slot];
}

static uint64_t handshake_user_data(const struct reactor *reactor,
                                    const struct connection *connection, enum reactor_tag tag) {
    return user_data_encode(tag, connection_slot(reactor, connection), connection->generation);
}

/* Reads what the record in the slot still lacks: its header first, then exactly its length. */
static void connection_handshake_receive(struct reactor *reactor, struct connection *connection) {
    struct handshake_slot *slot = connection_handshake_slot(reactor, connection);
    INTAKE_ASSERT(connection->receives_in_flight == 0);
    uint32_t wanted = TLS_RECORD_HEADER_BYTES;
    if (slot->input_bytes >= TLS_RECORD_HEADER_BYTES)
        wanted += ((uint32_t)slot->input[3] << 8) | slot->input[4];
    INTAKE_ASSERT(slot->input_bytes < wanted && wanted <= sizeof(slot->input));
    struct io_uring_sqe *sqe = reactor_sqe(reactor);
    io_uring_prep_recv(sqe, connection->fd, slot->input + slot->input_bytes,
                       wanted - slot->input_bytes, 0);
    io_uring_sqe_set_data64(
        sqe, handshake_user_data(reactor, connection, REACTOR_TAG_HANDSHAKE_RECEIVE));
    connection->receives_in_flight = 1;
    connection->handshake_step = HANDSHAKE_STEP_RECEIVING;
}

bool connection_handshake_start(struct reactor *reactor, struct connection *connection) {
    INTAKE_ASSERT(connection->tls);
    if (reactor->handshake_free_count == 0) return false;
    connection->handshake_slot = reactor->handshake_free[--reactor->handshake_free_count];
    struct handshake_slot *slot = connection_handshake_slot(reactor, connection);
    INTAKE_ASSERT(slot->ssl == NULL);
    INTAKE_ASSERT(slot->index == connection->handshake_slot);
    slot->input_bytes = 0;
    slot->output_bytes = 0;
    slot->owner_slot = connection_slot(reactor, connection);
    slot->owner_generation = connection->generation;
    memset(&slot->session, 0, sizeof(slot->session));
    connection->phase = CONNECTION_HANDSHAKE;
    connection->handshake_started_ns = reactor->now_ns;
    connection_handshake_receive(reactor, connection);
    return true;
}

static void connection_handshake_release_slot(struct reactor *reactor,
                                              struct connection *connection) {
    struct handshake_slot *slot = connection_handshake_slot(reactor, connection);
    INTAKE_ASSERT(slot->ssl == NULL);
    /* A session finished for a connection that then failed (a timeout while the last flight
     * went out) is not wanted; after establish the slot's copy is zeroed, a no-op here. */
    tls_session_destroy(&slot->session);
    INTAKE_ASSERT(reactor->handshake_free_count < reactor->links.handshakes_max);
    reactor->handshake_free[reactor->handshake_free_count++] = connection->handshake_slot;
}

/* Stops whatever is in flight; the connection closes once it is all back (connection.c). */
static void connection_handshake_end(struct reactor *reactor, struct connection *connection) {
    if (connection->handshake_step == HANDSHAKE_STEP_ENDING) return;
    connection->handshake_step = HANDSHAKE_STEP_ENDING;
    uint64_t pending[2] = {
        connection->receives_in_flight
            ? handshake_user_data(reactor, connection, REACTOR_TAG_HANDSHAKE_RECEIVE)
            : 0,
        connection->sends_in_flight
            ? handshake_user_data(reactor, connection, REACTOR_TAG_HANDSHAKE_SEND)
            : 0,
    };
    for (uint32_t index = 0; index < 2; index++) {
        if (pending[index] == 0) continue;
        struct io_uring_sqe *sqe = reactor_sqe(reactor);
        io_uring_prep_cancel64(sqe, pending[index], 0);
        io_uring_sqe_set_data64(sqe, user_data_encode(REACTOR_TAG_CANCEL, 0, 0));
    }
    connection_touch(reactor, connection);
}

/* Counts a handshake's failure, once, and keeps its reason for the counters line. */
static void connection_handshake_count_failure(struct reactor *reactor,
                                               struct connection *connection,
                                               enum handshake_failure failure, const char *detail) {
    INTAKE_ASSERT(failure < HANDSHAKE_FAILURES);
    if (connection->handshake_failed) return;
    connection->handshake_failed = true;
    reactor->counters.tls_handshakes_failed[failure]++;
    intake_error_line(reactor->tls_last_failure, sizeof(reactor->tls_last_failure), "%s: %s",
                      handshake_failure_name(failure), detail ? detail : "");
}

void connection_handshake_fail(struct reactor *reactor, struct connection *connection,
                               enum handshake_failure failure, const char *detail) {
    INTAKE_ASSERT(connection->phase == CONNECTION_HANDSHAKE);
    connection_handshake_count_failure(reactor, connection, failure, detail);
    connection_handshake_end(reactor, connection);
}

/* The record in the slot is complete: to a handshake thread. */
static void connection_handshake_post(struct reactor *reactor, struct connection *connection,
                                      enum handshake_job job) {
    struct handshake_slot *slot = connection_handshake_slot(reactor, connection);
    INTAKE_ASSERT(!connection->handshake_at_thread);
    slot->job = (uint8_t)job;
    connection->handshake_at_thread = true;
    if (job == HANDSHAKE_JOB_STEP) {
        connection->handshake_ssl_live = true;
        connection->handshake_step = HANDSHAKE_STEP_THREAD;
    }
    handshake_queue_push(reactor->links.handshake_requests, slot);
}

/* Checks a record header the slot now holds. Returns the failure, or HANDSHAKE_FAILURES. */
static enum handshake_failure connection_handshake_check_header(const struct connection *connection,
                                                                const uint8_t *header) {
    uint32_t length = ((uint32_t)header[3] << 8) | header[4];
    if (!connection->handshake_ssl_live) {
        /* The connection's first bytes: a TLS client starts with a handshake record. */
        if (header[0] != HANDSHAKE_FIRST_CONTENT_TYPE ||
            header[1] != HANDSHAKE_RECORD_VERSION_MAJOR)
            return HANDSHAKE_FAILURE_NOT_TLS;
    } else if (header[0] < TLS_CONTENT_CHANGE_CIPHER_SPEC ||
               header[0] > TLS_CONTENT_APPLICATION_DATA) {
        return HANDSHAKE_FAILURE_PROTOCOL;
    }
    if (length == 0 || length > TLS_CIPHERTEXT_BYTES_MAX) return HANDSHAKE_FAILURE_PROTOCOL;
    return HANDSHAKE_FAILURES;
}

void reactor_on_handshake_receive(struct reactor *reactor, const struct io_uring_cqe *cqe) {
    struct connection *connection = reactor_connection_for(reactor, cqe->user_data);
    INTAKE_ASSERT(connection->phase == CONNECTION_HANDSHAKE);
    INTAKE_ASSERT(connection->receives_in_flight == 1);
    connection->receives_in_flight = 0;
    connection_touch(reactor, connection);
    if (connection->handshake_step == HANDSHAKE_STEP_ENDING) return;
    if (cqe->res <= 0) {
        connection_handshake_fail(reactor, connection, HANDSHAKE_FAILURE_OTHER,
                                  cqe->res == 0 ? "the peer closed during the handshake"
                                                : strerror(-cqe->res));
        return;
    }
    struct handshake_slot *slot = connection_handshake_slot(reactor, connection);
    bool had_header = slot->input_bytes >= TLS_RECORD_HEADER_BYTES;
    slot->input_bytes += (uint32_t)cqe->res;
    if (!had_header && slot->input_bytes >= TLS_RECORD_HEADER_BYTES) {
        enum handshake_failure failure = connection_handshake_check_header(connection, slot->input);
        if (failure != HANDSHAKE_FAILURES) {
            connection_handshake_fail(reactor, connection, failure,
                                      failure == HANDSHAKE_FAILURE_NOT_TLS
                                          ? "the first bytes are not a TLS handshake record"
                                          : "a record header no TLS 1.3 handshake has");
            return;
        }
    }
    uint32_t wanted = TLS_RECORD_HEADER_BYTES;
    if (slot->input_bytes >= TLS_RECORD_HEADER_BYTES)
        wanted += ((uint32_t)slot->input[3] << 8) | slot->input[4];
    if (slot->input_bytes < wanted) {
        connection_handshake_receive(reactor, connection);
        return;
    }
    INTAKE_ASSERT(slot->input_bytes == wanted);
    connection_handshake_post(reactor, connection, HANDSHAKE_JOB_STEP);
}

static void connection_handshake_send(struct reactor *reactor, struct connection *connection) {
    struct handshake_slot *slot = connection_handshake_slot(reactor, connection);
    INTAKE_ASSERT(connection->sends_in_flight == 0);
    INTAKE_ASSERT(connection->handshake_sent < slot->output_bytes);
    struct io_uring_sqe *sqe = reactor_sqe(reactor);
    io_uring_prep_send(sqe, connection->fd, slot->output + connection->handshake_sent,
                       slot->output_bytes - connection->handshake_sent, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe,
                            handshake_user_data(reactor, connection, REACTOR_TAG_HANDSHAKE_SEND));
    connection->sends_in_flight = 1;
    connection->handshake_step = HANDSHAKE_STEP_SENDING;
}

/* The handshake is done: the record layer takes over, and the connection reads. */
static void connection_handshake_establish(struct reactor *reactor, struct connection *connection) {
    struct handshake_slot *slot = connection_handshake_slot(reactor, connection);
    struct connection_tls *tls = connection_tls_of(reactor, connection);
    memset(tls, 0, sizeof(*tls));
    tls->session = slot->session;
    memset(&slot->session, 0, sizeof(slot->session));
    tls->established = true;
    tls->needed_bytes = TLS_RECORD_HEADER_BYTES;
    tls->plain_node = REACTOR_NO_NODE;
    connection->principal = slot->principal;
    connection_handshake_release_slot(reactor, connection);
    reactor->counters.tls_handshakes_ok++;
    connection->phase = CONNECTION_READING;
    /* The receive deadlines start now, not at accept. */
    connection->last_input_ns = reactor->now_ns;
    if (!reactor->stop_started) connection_arm_receive(reactor, connection);
    connection_touch(reactor, connection);
}

/* After the output went out (or when there was none): what the answer said comes next. */
static void connection_handshake_next(struct reactor *reactor, struct connection *connection) {
    struct handshake_slot *slot = connection_handshake_slot(reactor, connection);
    switch ((enum handshake_result)connection->handshake_next) {
    case HANDSHAKE_CONTINUE:
        slot->input_bytes = 0;
        connection_handshake_receive(reactor, connection);
        return;
    case HANDSHAKE_DONE: connection_handshake_establish(reactor, connection); return;
    case HANDSHAKE_FAILED:
    case HANDSHAKE_ABANDONED: break;
    }
    connection_handshake_end(reactor, connection);
}

void reactor_on_handshake_send(struct reactor *reactor, const struct io_uring_cqe *cqe) {
    struct connection *connection = reactor_connection_for(reactor, cqe->user_data);
    INTAKE_ASSERT(connection->phase == CONNECTION_HANDSHAKE);
    INTAKE_ASSERT(connection->sends_in_flight == 1);
    connection->sends_in_flight = 0;
    connection_touch(reactor, connection);
    if (connection->handshake_step == HANDSHAKE_STEP_ENDING) return;
    struct handshake_slot *slot = connection_handshake_slot(reactor, connection);
    if (cqe->res <= 0) {
        /* Gone before our flight (or our alert) reached it. */
        connection_handshake_fail(reactor, connection, HANDSHAKE_FAILURE_OTHER,
                                  "the peer left while the server's flight was sent");
        return;
    }
    connection->handshake_sent += (uint32_t)cqe->res;
    INTAKE_ASSERT(connection->handshake_sent <= slot->output_bytes);
    if (connection->handshake_sent < slot->output_bytes) {
        connection_handshake_send(reactor, connection);
        return;
    }
    connection_handshake_next(reactor, connection);
}

/* One answer from a handshake thread. */
static void connection_handshake_answer(struct reactor *reactor, struct connection *connection,
                                        struct handshake_slot *slot) {
    INTAKE_ASSERT(connection->handshake_at_thread);
    connection->handshake_at_thread = false;
    enum handshake_result result = (enum handshake_result)slot->result;
    if (result != HANDSHAKE_CONTINUE) connection->handshake_ssl_live = false;
    INTAKE_ASSERT((slot->ssl != NULL) == connection->handshake_ssl_live);
    connection_touch(reactor, connection);
    /* Given up meanwhile (a timeout, shutdown), or the abandon job's answer: it only closes. */
    if (connection->handshake_step == HANDSHAKE_STEP_ENDING) return;
    INTAKE_ASSERT(result != HANDSHAKE_ABANDONED);
    if (result == HANDSHAKE_FAILED)
        connection_handshake_count_failure(
            reactor, connection, (enum handshake_failure)slot->failure, slot->failure_detail);
    connection->handshake_next = slot->result;
    connection->handshake_sent = 0;
    /* A failed handshake still sends OpenSSL's alert (the client learns why), then ends. */
    if (slot->output_bytes == 0)
        connection_handshake_next(reactor, connection);
    else
        connection_handshake_send(reactor, connection);
}

void reactor_take_handshake_answers(struct reactor *reactor) {
    if (reactor->links.handshake_answers == NULL) return;
    struct handshake_slot *batch[64];
    uint32_t count = handshake_queue_pop(reactor->links.handshake_answers, batch, 64);
    for (uint32_t index = 0; index < count; index++) {
        struct handshake_slot *slot = batch[index];
        INTAKE_ASSERT(slot->reactor == reactor->index);
        INTAKE_ASSERT(slot->index < reactor->links.handshakes_max);
        /* A slot is released only with nothing at the thread: its owner is still there. */
        INTAKE_ASSERT(slot->owner_slot < reactor->connection_count_max);
        struct connection *owner = &reactor->connections[slot->owner_slot];
        INTAKE_ASSERT(owner->generation == slot->owner_generation);
        INTAKE_ASSERT(owner->phase == CONNECTION_HANDSHAKE);
        INTAKE_ASSERT(owner->handshake_slot == slot->index);
        connection_handshake_answer(reactor, owner, slot);
        connection_check(reactor, owner);
    }
}

bool connection_handshake_may_close(struct reactor *reactor, struct connection *connection) {
    INTAKE_ASSERT(connection->phase == CONNECTION_HANDSHAKE);
    if (connection->handshake_step != HANDSHAKE_STEP_ENDING) return false;
    if (connection->receives_in_flight || connection->sends_in_flight) return false;
    if (connection->handshake_at_thread) return false;
    if (connection->handshake_ssl_live) {
        /* SSL objects live and die on handshake threads. */
        connection_handshake_post(reactor, connection, HANDSHAKE_JOB_ABANDON);
        return false;
    }
    connection_handshake_release_slot(reactor, connection);
    return true;
}

void connection_check_handshake(const struct reactor *reactor,
                                const struct connection *connection) {
    INTAKE_ASSERT(connection->phase == CONNECTION_HANDSHAKE);
    INTAKE_ASSERT(connection->tls);
    INTAKE_ASSERT(connection->handshake_slot < reactor->links.handshakes_max);
    INTAKE_ASSERT(connection->lingers_in_flight == 0);
    INTAKE_ASSERT(ack_window_length(&connection->window) == 0);
    INTAKE_ASSERT(connection->framer.record == NULL);
    INTAKE_ASSERT(!connection->handshake_at_thread || connection->handshake_ssl_live);
    switch ((enum connection_handshake_step)connection->handshake_step) {
    case HANDSHAKE_STEP_RECEIVING:
        INTAKE_ASSERT(connection->receives_in_flight == 1);
        INTAKE_ASSERT(connection->sends_in_flight == 0);
        INTAKE_ASSERT(!connection->handshake_at_thread);
        break;
    case HANDSHAKE_STEP_THREAD:
        INTAKE_ASSERT(connection->receives_in_flight == 0);
        INTAKE_ASSERT(connection->sends_in_flight == 0);
        INTAKE_ASSERT(connection->handshake_at_thread);
        break;
    case HANDSHAKE_STEP_SENDING:
        INTAKE_ASSERT(connection->receives_in_flight == 0);
        INTAKE_ASSERT(connection->sends_in_flight == 1);
        INTAKE_ASSERT(!connection->handshake_at_thread);
        break;
    case HANDSHAKE_STEP_ENDING:
        /* Waits for its operations; touched whenever one comes back. */
        INTAKE_ASSERT(connection->handshake_failed);
        break;
    default: INTAKE_ASSERT(!"unknown handshake step");
    }
}
