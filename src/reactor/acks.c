/*
 * acks.c: what a reactor sends back, and how a connection it ended is closed. Reactor thread.
 *
 * Acks are cumulative (ack_window.h) and coalesced: one send in flight per connection; when it
 * completes, the next one carries whatever grew meanwhile. A connection that ends with a non-OK
 * status gets a final Ack{last committed sequence, status, detail} once every record it had
 * admitted came back.
 *
 * Lingering close. A connection ended by intake (bad input, a limit, shutdown) may still be
 * sending; closing a socket with unread input makes the kernel send RST, and RST discards the
 * final Ack if it is still queued, so the producer would see "connection reset" instead of the
 * reason. So after the final Ack: shut the write side (FIN follows the Ack), read and discard
 * until the peer closes, for at most REACTOR_LINGER_IDLE_NS without input and
 * REACTOR_LINGER_TOTAL_NS in all, then close.
 */
#include <sys/socket.h>

#include "reactor_internal.h"

static void connection_send(struct reactor *reactor, struct connection *connection) {
    INTAKE_ASSERT(connection->send_offset < connection->send_length);
    INTAKE_ASSERT(connection->sends_in_flight == 0);
    struct io_uring_sqe *sqe = reactor_sqe(reactor);
    io_uring_prep_send(sqe, connection->fd, connection->send_buffer + connection->send_offset,
                       connection->send_length - connection->send_offset, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe,
                            user_data_encode(REACTOR_TAG_SEND, connection_slot(reactor, connection),
                                             connection->generation));
    connection->sends_in_flight = 1;
}

/* Puts an Ack frame in the send buffer and sends it. On a TLS connection the frame is sealed in
 * a record (after the KeyUpdate owed, if any), `ack` false sends only what TLS owes, and once
 * the connection is in FINAL_ACK its alert (or close_notify) follows. */
static void connection_send_ack(struct reactor *reactor, struct connection *connection,
                                uint64_t sequence, uint32_t status, const char *detail, bool ack) {
    uint8_t frame[ACK_FRAME_BYTES_MAX];
    uint8_t *target = connection->tls ? frame : connection->send_buffer;
    size_t length = ack ? ack_frame_encode(sequence, status, detail, target) : 0;
    INTAKE_ASSERT(!ack || (length > 0 && length <= ACK_FRAME_BYTES_MAX));
    if (connection->tls) {
        bool closing = connection->phase == CONNECTION_FINAL_ACK;
        length = connection_tls_seal(reactor, connection, frame, (uint32_t)length, closing);
        if (length == 0) return; /* nothing owed after all, or sealing failed (socket_dead) */
    }
    INTAKE_ASSERT(length <= sizeof(connection->send_buffer));
    connection->send_length = (uint32_t)length;
    connection->send_offset = 0;
    if (ack) reactor->counters.acks_sent++;
    connection_send(reactor, connection);
}

/* Sends the cumulative ack if it grew (coalesced: one send in flight per connection), or the
 * final ack once an ending connection has every record back; on TLS also what the record layer
 * owes (a KeyUpdate, the closing alert). */
void connection_flush_ack(struct reactor *reactor, struct connection *connection) {
    INTAKE_ASSERT(connection->phase != CONNECTION_FREE);
    INTAKE_ASSERT(connection->phase != CONNECTION_HANDSHAKE);
    if (connection->sends_in_flight || connection->socket_dead || connection->final_ack_sent)
        return;
    if (connection->hello_answer_pending) {
        /* First: the Hello came before any record. Not cumulative state: the record Acks
         * that follow are computed as if it had not been sent. */
        connection->hello_answer_pending = false;
        connection_send_ack(reactor, connection, connection->hello_answer, RECORD_STATUS_OK, NULL,
                            true);
        return;
    }
    uint64_t sequence = connection->window.ack_sequence;
    bool final =
        connection->phase == CONNECTION_FINAL_ACK && connection->end_status != RECORD_STATUS_OK;
    INTAKE_ASSERT(!final || ack_window_length(&connection->window) == 0);
    bool grew = sequence > connection->ack_sent_sequence;
    bool tls_owes = connection->tls && connection_tls_owes_send(reactor, connection);
    if (!final && !grew && !tls_owes) return;
    uint32_t status = final ? connection->end_status : RECORD_STATUS_OK;
    connection->ack_sent_sequence = sequence;
    if (final) connection->final_ack_sent = true;
    connection_send_ack(reactor, connection, sequence, status,
                        final ? connection->end_detail : NULL, final || grew);
}

void reactor_on_send(struct reactor *reactor, const struct io_uring_cqe *cqe) {
    struct connection *connection = reactor_connection_for(reactor, cqe->user_data);
    INTAKE_ASSERT(connection->sends_in_flight == 1);
    connection->sends_in_flight = 0;
    if (cqe->res <= 0) {
        /* The peer is gone; its records still commit, nothing more is sent. */
        connection->socket_dead = true;
        connection_end(reactor, connection, RECORD_STATUS_OK, NULL);
    } else {
        INTAKE_ASSERT((uint32_t)cqe->res <= connection->send_length - connection->send_offset);
        connection->send_offset += (uint32_t)cqe->res;
        if (connection->send_offset < connection->send_length) {
            connection_send(reactor, connection);
            return;
        }
        connection_flush_ack(reactor, connection);
    }
    connection_touch(reactor, connection);
}

static void connection_linger_arm(struct reactor *reactor, struct connection *connection) {
    static const struct __kernel_timespec idle = {0, REACTOR_LINGER_IDLE_NS};
    INTAKE_ASSERT(connection->phase == CONNECTION_LINGERING);
    INTAKE_ASSERT(connection->lingers_in_flight == 0);
    /* The receive and its timeout are linked: both must go in the same submission. */
    if (io_uring_sq_space_left(&reactor->ring) < 2) reactor_submit(reactor);
    uint64_t data = user_data_encode(REACTOR_TAG_LINGER, connection_slot(reactor, connection),
                                     connection->generation);
    struct io_uring_sqe *receive = reactor_sqe(reactor);
    io_uring_prep_recv(receive, connection->fd, reactor->linger_scratch,
                       sizeof(reactor->linger_scratch), 0);
    io_uring_sqe_set_data64(receive, data);
    receive->flags |= IOSQE_IO_LINK;
    struct io_uring_sqe *timeout = reactor_sqe(reactor);
    io_uring_prep_link_timeout(timeout, (struct __kernel_timespec *)&idle, 0);
    io_uring_sqe_set_data64(timeout, data | USER_DATA_LINGER_TIMEOUT);
    connection->lingers_in_flight = 2;
}

/* Only connections intake ends itself, with a peer that may still be sending, linger. */
bool connection_should_linger(const struct connection *connection) {
    return connection->end_status != RECORD_STATUS_OK && connection->final_ack_sent &&
           !connection->socket_dead && !connection->peer_closed && !connection->linger_done;
}

void connection_linger_start(struct reactor *reactor, struct connection *connection) {
    INTAKE_ASSERT(connection->phase == CONNECTION_FINAL_ACK);
    INTAKE_ASSERT(connection_should_linger(connection));
    if (shutdown(connection->fd, SHUT_WR) < 0) {
        /* Not connected any more (the peer reset): nothing to protect, close at once. */
        reactor->counters.socket_option_errors++;
        connection->linger_done = true;
        return;
    }
    connection->phase = CONNECTION_LINGERING;
    reactor->counters.lingered++;
    connection->linger_deadline_ns = intake_now_ns() + REACTOR_LINGER_TOTAL_NS;
    connection_linger_arm(reactor, connection);
}

/* A linger receive or its linked timeout completed. Input keeps the linger going (within its
 * total bound); end of stream, an error, or the idle timeout (which cancels the receive) end it.
 * Both operations must be back before the next arm or the close. */
void reactor_on_linger(struct reactor *reactor, const struct io_uring_cqe *cqe) {
    bool is_timeout = user_data_is_linger_timeout(cqe->user_data);
    struct connection *connection =
        reactor_connection_for(reactor, cqe->user_data & ~USER_DATA_LINGER_TIMEOUT);
    INTAKE_ASSERT(connection->phase == CONNECTION_LINGERING);
    INTAKE_ASSERT(connection->lingers_in_flight > 0);
    connection->lingers_in_flight--;
    if (!is_timeout && !(cqe->res > 0 && intake_now_ns() < connection->linger_deadline_ns))
        connection->linger_done = true;
    if (connection->lingers_in_flight > 0) return;
    if (!connection->linger_done) {
        connection_linger_arm(reactor, connection);
        return;
    }
    connection_touch(reactor, connection);
}
