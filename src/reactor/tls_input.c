/*
 * tls_input.c: a TLS connection after its handshake (reactor_internal.h describes how its
 * backlog holds opened and not-yet-opened records). Reactor thread only.
 *
 * Input. Every chunk goes to the backlog (merged into the last node when it continues it in the
 * same unit, as incremental provided buffers deliver small reads). Then, while the connection
 * reads: the opened record's plaintext is framed from its cursor with the ordinary framer,
 * exactly as plaintext chunks are (the framer's slices point into the decrypted bytes where they
 * lie; a record's units are pinned slice by slice as always); once it is all framed, the record's
 * bytes leave the backlog; then the next record, if complete, is opened in place (tls_record.h)
 * and its tag verified before any of it reaches the framer. A pause stops this anywhere; the
 * cursor and the backlog wait, and connection_resume continues here.
 *
 * Output. Every Ack goes out sealed in a record (with a KeyUpdate before it when one is owed);
 * the last one is followed by an alert: close_notify when the connection ends in order, the
 * alert of the violation when it ends for a TLS reason.
 *
 * What ends a connection here (its admitted records still commit and are acked; the final Ack is
 * REJECTED with the reason, then the alert): a record that fails authentication
 * (bad_record_mac), breaks a rule of the record layer (its alert), or arrives in more than
 * TLS_SEGMENTS_MAX pieces (RESOURCE_EXHAUSTED, internal_error). A peer's error alert ends it with
 * nothing more sent; close_notify ends its input in order, like end of stream.
 */
#include <string.h>

#include "reactor_internal.h"

/* The alert an intake-side limit sends (nothing wrong in what the peer said). */
#define TLS_INPUT_LIMIT_ALERT TLS_ALERT_INTERNAL_ERROR

/* Ends the connection for a TLS reason: the final Ack says why, the alert follows it. */
static void connection_tls_fail(struct reactor *reactor, struct connection *connection,
                                enum record_status status, uint8_t alert, const char *detail) {
    struct connection_tls *tls = connection_tls_of(reactor, connection);
    tls->alert = alert;
    tls->alert_owed = true;
    connection_end(reactor, connection, status, detail);
}

/* Takes `bytes` off the head of the backlog (a whole record's worth). */
static void connection_tls_consume(struct reactor *reactor, struct connection *connection,
                                   uint32_t bytes) {
    struct connection_tls *tls = connection_tls_of(reactor, connection);
    INTAKE_ASSERT(bytes <= tls->backlog_bytes);
    tls->backlog_bytes -= bytes;
    while (bytes > 0) {
        INTAKE_ASSERT(connection->backlog_head != REACTOR_NO_NODE);
        const struct backlog_node *head = &reactor->backlog_nodes[connection->backlog_head];
        uint32_t available = head->chunk.length - connection->backlog_head_offset;
        if (bytes < available) {
            connection->backlog_head_offset += bytes;
            break;
        }
        bytes -= available;
        connection_backlog_pop(reactor, connection);
    }
    tls->needed_bytes = TLS_RECORD_HEADER_BYTES;
}

/* Describes the first `bytes` of the backlog as segments; false when they lie in more than
 * TLS_SEGMENTS_MAX nodes. */
static bool connection_tls_segments(const struct reactor *reactor,
                                    const struct connection *connection, uint32_t bytes,
                                    struct tls_segment *segments, uint32_t *count) {
    uint32_t node = connection->backlog_head;
    uint32_t offset = connection->backlog_head_offset;
    *count = 0;
    while (bytes > 0) {
        INTAKE_ASSERT(node != REACTOR_NO_NODE);
        if (*count == TLS_SEGMENTS_MAX) return false;
        const struct backlog_node *entry = &reactor->backlog_nodes[node];
        uint32_t take = entry->chunk.length - offset;
        if (take > bytes) take = bytes;
        segments[*count].bytes = entry->chunk.bytes + offset;
        segments[*count].length = take;
        (*count)++;
        bytes -= take;
        node = entry->next;
        offset = 0;
    }
    return true;
}

/* The first 5 bytes of the backlog (they may straddle nodes). */
static void connection_tls_peek_header(const struct reactor *reactor,
                                       const struct connection *connection,
                                       uint8_t header[TLS_RECORD_HEADER_BYTES]) {
    struct tls_segment segments[TLS_RECORD_HEADER_BYTES];
    uint32_t count = 0;
    bool fits =
        connection_tls_segments(reactor, connection, TLS_RECORD_HEADER_BYTES, segments, &count);
    INTAKE_ASSERT(fits);
    uint32_t copied = 0;
    for (uint32_t index = 0; index < count; index++) {
        memcpy(header + copied, segments[index].bytes, segments[index].length);
        copied += segments[index].length;
    }
    INTAKE_ASSERT(copied == TLS_RECORD_HEADER_BYTES);
}

/* Frames the opened record's plaintext from the cursor on. */
static enum admission_frame_result connection_tls_frame(struct reactor *reactor,
                                                        struct connection *connection) {
    struct connection_tls *tls = connection_tls_of(reactor, connection);
    while (tls->plain_remaining > 0) {
        INTAKE_ASSERT(tls->plain_node != REACTOR_NO_NODE);
        const struct backlog_node *node = &reactor->backlog_nodes[tls->plain_node];
        INTAKE_ASSERT(tls->plain_offset <= node->chunk.length);
        uint32_t available = node->chunk.length - tls->plain_offset;
        if (available == 0) {
            tls->plain_node = node->next;
            tls->plain_offset = 0;
            continue;
        }
        uint32_t take = available < tls->plain_remaining ? available : tls->plain_remaining;
        /* The framer sees the plaintext piece as a chunk ending where the piece ends. */
        struct rx_chunk piece = {node->chunk.bytes, tls->plain_offset + take, node->chunk.unit};
        uint32_t offset = tls->plain_offset;
        enum admission_frame_result result = connection_frame(reactor, connection, &piece, &offset);
        if (result == ADMISSION_FRAME_ENDED) return result;
        INTAKE_ASSERT(offset >= tls->plain_offset && offset <= piece.length);
        tls->plain_remaining -= offset - tls->plain_offset;
        tls->plain_offset = offset;
        if (result == ADMISSION_FRAME_PAUSED) return result;
    }
    return ADMISSION_FRAME_CONSUMED;
}

/* Opens the record at the head of the backlog (complete: record_bytes are there). Returns
 * false when the connection stops (ended, closed input). */
static bool connection_tls_open(struct reactor *reactor, struct connection *connection,
                                uint32_t record_bytes) {
    struct connection_tls *tls = connection_tls_of(reactor, connection);
    struct tls_segment segments[TLS_SEGMENTS_MAX];
    uint32_t count = 0;
    if (!connection_tls_segments(reactor, connection, record_bytes, segments, &count)) {
        connection_tls_fail(reactor, connection, RECORD_STATUS_RESOURCE_EXHAUSTED,
                            TLS_INPUT_LIMIT_ALERT, "TLS record arrived in more than 64 fragments");
        return false;
    }
    struct tls_opened opened;
    uint64_t key_updates = tls->session.read.key_updates;
    enum tls_open_result result = tls_record_open(&tls->session, segments, count, &opened);
    switch (result) {
    case TLS_OPEN_DATA:
        reactor->counters.tls_records_decrypted++;
        if (opened.plaintext_bytes == 0) {
            connection_tls_consume(reactor, connection, record_bytes);
            return true;
        }
        tls->opened = true;
        tls->record_bytes = record_bytes;
        tls->plain_remaining = opened.plaintext_bytes;
        /* The cursor starts after the header, which may straddle nodes. */
        tls->plain_node = connection->backlog_head;
        tls->plain_offset = connection->backlog_head_offset + TLS_RECORD_HEADER_BYTES;
        for (;;) {
            const struct backlog_node *node = &reactor->backlog_nodes[tls->plain_node];
            if (tls->plain_offset <= node->chunk.length) break;
            tls->plain_offset -= node->chunk.length;
            tls->plain_node = node->next;
            INTAKE_ASSERT(tls->plain_node != REACTOR_NO_NODE);
        }
        return true;
    case TLS_OPEN_KEY_UPDATE:
        reactor->counters.tls_key_updates_received += tls->session.read.key_updates - key_updates;
        connection_tls_consume(reactor, connection, record_bytes);
        return true;
    case TLS_OPEN_CLOSE_NOTIFY:
        connection_tls_consume(reactor, connection, record_bytes);
        tls->input_closed = true;
        connection->peer_closed = true;
        return false;
    case TLS_OPEN_PEER_ALERT:
        /* The peer gave up: nothing more is sent to it (RFC 8446 §6.2), records still commit. */
        reactor->counters.tls_alerts_received++;
        connection->socket_dead = true;
        connection_end(reactor, connection, RECORD_STATUS_OK, NULL);
        return false;
    case TLS_OPEN_BAD_TAG:
        reactor->counters.tls_auth_failures++;
        connection_tls_fail(reactor, connection, RECORD_STATUS_REJECTED, opened.alert,
                            "TLS record failed authentication (bad_record_mac)");
        return false;
    case TLS_OPEN_FAILED: break;
    }
    reactor->counters.tls_record_errors++;
    connection_tls_fail(reactor, connection, RECORD_STATUS_REJECTED, opened.alert,
                        "TLS record refused by the record layer (RFC 8446 section 5)");
    return false;
}

/* Waits for more input. The frame deadline runs while anything incomplete waits: the start of
 * a record on the backlog, or a frame the framer holds part of; with neither (a KeyUpdate, an
 * empty record completed the input), it stops. */
static void connection_tls_wait(struct reactor *reactor, struct connection *connection) {
    struct connection_tls *tls = connection_tls_of(reactor, connection);
    if (tls->backlog_bytes > 0 && connection->frame_started_ns == 0)
        connection->frame_started_ns = reactor->now_ns;
    if (tls->backlog_bytes == 0 && framer_is_idle(&connection->framer))
        connection->frame_started_ns = 0;
}

void connection_tls_process(struct reactor *reactor, struct connection *connection) {
    struct connection_tls *tls = connection_tls_of(reactor, connection);
    INTAKE_ASSERT(tls->established);
    while (connection->phase == CONNECTION_READING) {
        if (tls->opened) {
            if (connection_tls_frame(reactor, connection) != ADMISSION_FRAME_CONSUMED) return;
            tls->opened = false;
            tls->plain_node = REACTOR_NO_NODE;
            connection_tls_consume(reactor, connection, tls->record_bytes);
            continue;
        }
        if (tls->input_closed) {
            /* After close_notify nothing more is read: what follows is dropped. */
            while (connection->backlog_head != REACTOR_NO_NODE)
                connection_backlog_pop(reactor, connection);
            tls->backlog_bytes = 0;
            return;
        }
        if (tls->backlog_bytes < TLS_RECORD_HEADER_BYTES) break;
        uint8_t header[TLS_RECORD_HEADER_BYTES];
        connection_tls_peek_header(reactor, connection, header);
        uint32_t record_bytes = 0;
        uint8_t alert = 0;
        if (tls_record_header(header, &record_bytes, &alert) != TLS_HEADER_OK) {
            reactor->counters.tls_record_errors++;
            connection_tls_fail(reactor, connection, RECORD_STATUS_REJECTED, alert,
                                "TLS record header refused (RFC 8446 section 5)");
            return;
        }
        tls->needed_bytes = record_bytes;
        if (tls->backlog_bytes < record_bytes) break;
        if (!connection_tls_open(reactor, connection, record_bytes)) return;
    }
    if (connection->phase == CONNECTION_READING) connection_tls_wait(reactor, connection);
    /* A KeyUpdate owed (the peer asked, or its key reached the limit) goes out even when no
     * Ack is due (a producer that asks for none). */
    if (connection_is_open(connection) && tls_session_owes_record(&tls->session))
        connection_list_add(reactor, connection, LIST_ACK);
}

/* Appends the chunk to the backlog, into the last node when it continues that node's bytes. */
static bool connection_tls_append(struct reactor *reactor, struct connection *connection,
                                  const struct rx_chunk *chunk) {
    if (connection->backlog_tail != REACTOR_NO_NODE) {
        struct backlog_node *tail = &reactor->backlog_nodes[connection->backlog_tail];
        if (tail->chunk.unit == chunk->unit &&
            tail->chunk.bytes + tail->chunk.length == chunk->bytes) {
            tail->chunk.length += chunk->length;
            /* The node's reference already holds the unit. */
            rx_backend_unref(reactor->backend, chunk->unit);
            return true;
        }
    }
    return connection_backlog_push(reactor, connection, chunk, 0);
}

void connection_tls_receive(struct reactor *reactor, struct connection *connection,
                            const struct rx_chunk *chunk) {
    struct connection_tls *tls = connection_tls_of(reactor, connection);
    INTAKE_ASSERT(tls->established);
    if (tls->input_closed) {
        rx_backend_unref(reactor->backend, chunk->unit);
        return;
    }
    if (!connection_tls_append(reactor, connection, chunk)) {
        reactor->counters.backlog_exhausted++;
        rx_backend_unref(reactor->backend, chunk->unit);
        connection_tls_fail(reactor, connection, RECORD_STATUS_RESOURCE_EXHAUSTED,
                            TLS_INPUT_LIMIT_ALERT, "receive backlog exhausted");
        return;
    }
    tls->backlog_bytes += chunk->length;
    if (connection->phase == CONNECTION_READING) {
        connection_tls_process(reactor, connection);
        return;
    }
    bool receive_live = connection->receives_in_flight != 0 && !connection->receive_cancelling;
    if (receive_live && connection_backlog_pressed(reactor, connection))
        connection_cancel_receive(reactor, connection);
}

bool connection_tls_input_pending(const struct reactor *reactor,
                                  const struct connection *connection) {
    const struct connection_tls *tls = connection_tls_of(reactor, connection);
    if (tls->input_closed) return false;
    return tls->opened || tls->backlog_bytes >= tls->needed_bytes;
}

void connection_tls_input_dropped(struct reactor *reactor, struct connection *connection) {
    struct connection_tls *tls = connection_tls_of(reactor, connection);
    INTAKE_ASSERT(connection->backlog_head == REACTOR_NO_NODE);
    tls->opened = false;
    tls->plain_node = REACTOR_NO_NODE;
    tls->plain_remaining = 0;
    tls->backlog_bytes = 0;
    tls->needed_bytes = TLS_RECORD_HEADER_BYTES;
}

/* ------------------------------------------------------------------------ output --- */

bool connection_tls_owes_send(const struct reactor *reactor, const struct connection *connection) {
    const struct connection_tls *tls = connection_tls_of(reactor, connection);
    if (!tls->established || tls->closing_sent) return false;
    if (connection->phase == CONNECTION_FINAL_ACK) return true;
    return tls_session_owes_record(&tls->session);
}

uint32_t connection_tls_seal(struct reactor *reactor, struct connection *connection,
                             const uint8_t *frame, uint32_t frame_bytes, bool closing) {
    struct connection_tls *tls = connection_tls_of(reactor, connection);
    INTAKE_ASSERT(tls->established && !tls->closing_sent);
    uint8_t *out = connection->send_buffer;
    uint32_t capacity = sizeof(connection->send_buffer);
    uint64_t key_updates = tls->session.write.key_updates;
    uint32_t length = frame_bytes > 0 ? tls_record_seal(&tls->session, TLS_CONTENT_APPLICATION_DATA,
                                                        frame, frame_bytes, out, capacity)
                                      : tls_record_seal_owed(&tls->session, out, capacity);
    bool sealed = length > 0 || frame_bytes == 0;
    if (sealed && closing) {
        uint32_t alert = tls_record_seal_alert(
            &tls->session, tls->alert_owed ? tls->alert : TLS_ALERT_CLOSE_NOTIFY, out + length,
            capacity - length);
        sealed = alert > 0;
        length += alert;
        tls->closing_sent = true;
    }
    reactor->counters.tls_key_updates_sent += tls->session.write.key_updates - key_updates;
    if (!sealed) {
        /* OpenSSL failed to seal (it does not, short of memory corruption): nothing more can be
         * sent in order, so nothing more is. */
        connection->socket_dead = true;
        return 0;
    }
    return length;
}

void connection_tls_release(struct reactor *reactor, struct connection *connection) {
    struct connection_tls *tls = connection_tls_of(reactor, connection);
    tls_session_destroy(&tls->session);
    memset(tls, 0, sizeof(*tls));
}

void connection_check_tls(const struct reactor *reactor, const struct connection *connection) {
    const struct connection_tls *tls = connection_tls_of(reactor, connection);
    INTAKE_ASSERT(tls->established);
    INTAKE_ASSERT(tls->needed_bytes >= TLS_RECORD_HEADER_BYTES);
    INTAKE_ASSERT(tls->needed_bytes <= TLS_RECORD_BYTES_MAX);
    INTAKE_ASSERT((connection->backlog_head == REACTOR_NO_NODE) == (tls->backlog_bytes == 0));
    if (connection->phase == CONNECTION_READING) {
        /* A reading connection has framed everything it could: at most the start of a record. */
        INTAKE_ASSERT(!tls->opened);
        INTAKE_ASSERT(tls->input_closed || tls->backlog_bytes < tls->needed_bytes);
    }
    if (!connection_is_open(connection)) {
        INTAKE_ASSERT(!tls->opened);
        INTAKE_ASSERT(tls->backlog_bytes == 0);
    }
}
