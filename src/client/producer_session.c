/*
 * producer_session.c: the connection of an idempotent producer (include/intake/producer.h).
 * Runs on the caller's thread, inside the public calls. Owns the socket (producer->fd) and the
 * window of retained records.
 *
 * One connection at a time, as an explicit phase: DISCONNECTED (waiting out a backoff),
 * CONNECTING (non-blocking connect), HANDSHAKE (TLS only: the non-blocking TLS handshake),
 * HELLO (the Hello is written, its Ack awaited; no record is written before it, so what intake
 * already holds is never resent), STREAMING (records flow from the window; every OK Ack
 * releases what it covers). Any failure closes the socket, rewinds the window (everything
 * retained is unsent again) and schedules the next attempt. Over TLS the bytes go through
 * producer_io_* (producer_socket.c), and nothing else changes.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/uio.h>
#include <unistd.h>

#include "ack_frame.h"
#include "intake.pb.h"
#include "producer_internal.h"

/* Iovecs per write: adjacent records merge, so this is rarely reached. */
#define SESSION_IOV_MAX 64

static uint64_t session_random(struct producer_session *session) {
    /* xorshift64*: jitter needs no cryptographic quality. */
    uint64_t x = session->random_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    session->random_state = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* A random UUID (version 4) string, the generated producer_id. */
static int session_generate_id(struct producer_session *session) {
    uint8_t random[16];
    if (getrandom(random, sizeof(random), 0) != (ssize_t)sizeof(random)) return -errno;
    random[6] = (uint8_t)((random[6] & 0x0f) | 0x40);
    random[8] = (uint8_t)((random[8] & 0x3f) | 0x80);
    char text[40];
    size_t length = 0;
    for (int index = 0; index < 16; index++) {
        if (index == 4 || index == 6 || index == 8 || index == 10) text[length++] = '-';
        length += (size_t)snprintf(text + length, sizeof(text) - length, "%02x", random[index]);
    }
    INTAKE_ASSERT(length == 36);
    memcpy(session->producer_id, text, length);
    session->producer_id_length = length;
    return 0;
}

static void session_build_hello(struct producer_session *session) {
    INTAKE_ASSERT(session->producer_id_length >= 1);
    INTAKE_ASSERT(session->producer_id_length <= INTAKE_PRODUCER_ID_BYTES_MAX);
    uint8_t *out = session->hello;
    size_t body = 2 + 1 + session->producer_id_length;
    size_t length = varint_encode(body, out);
    out[length++] = 0x82; /* field 16, wire type 2: two varint bytes */
    out[length++] = 0x01;
    out[length++] = (uint8_t)session->producer_id_length;
    memcpy(out + length, session->producer_id, session->producer_id_length);
    session->hello_length = length + session->producer_id_length;
}

static uint64_t session_ms(uint32_t value, uint32_t fallback) {
    return (uint64_t)(value ? value : fallback) * 1000000u;
}

int producer_session_open(struct intake_producer *producer,
                          const struct intake_producer_config *config, char *why,
                          size_t why_capacity) {
    struct producer_session *session = &producer->session;
    if (config->producer_id != NULL) {
        if (config->producer_id_length < 1 ||
            config->producer_id_length > INTAKE_PRODUCER_ID_BYTES_MAX) {
            snprintf(why, why_capacity, "producer_id must be 1 to %d bytes",
                     INTAKE_PRODUCER_ID_BYTES_MAX);
            return -EINVAL;
        }
        memcpy(session->producer_id, config->producer_id, config->producer_id_length);
        session->producer_id_length = config->producer_id_length;
    } else if (session_generate_id(session) < 0) {
        snprintf(why, why_capacity, "getrandom: %s", strerror(errno));
        return -EIO;
    }
    session_build_hello(session);
    session->next_sequence = config->first_sequence ? config->first_sequence : 1;
    session->sent_floor = session->next_sequence - 1;
    session->backoff_min_ns =
        session_ms(config->reconnect_backoff_min_ms, INTAKE_PRODUCER_BACKOFF_MIN_MS_DEFAULT);
    session->backoff_max_ns =
        session_ms(config->reconnect_backoff_max_ms, INTAKE_PRODUCER_BACKOFF_MAX_MS_DEFAULT);
    if (session->backoff_max_ns < session->backoff_min_ns)
        session->backoff_max_ns = session->backoff_min_ns;
    session->backoff_ns = session->backoff_min_ns;
    session->delivery_timeout_ns =
        session_ms(config->delivery_timeout_ms, INTAKE_PRODUCER_DELIVERY_TIMEOUT_MS_DEFAULT);
    session->nonblocking = config->nonblocking;
    session->on_delivery = config->on_delivery;
    session->delivery_context = config->delivery_context;
    session->random_state = intake_now_ns() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ull;
    int count = producer_resolve(config->address, session->addresses, session->address_lengths,
                                 PRODUCER_ADDRESSES_MAX, why, why_capacity);
    if (count < 0) return count;
    session->address_count = (uint32_t)count;
    uint32_t window_bytes =
        config->window_bytes ? config->window_bytes : INTAKE_PRODUCER_WINDOW_BYTES_DEFAULT;
    uint32_t window_records =
        config->window_records ? config->window_records : INTAKE_PRODUCER_WINDOW_RECORDS_DEFAULT;
    if (window_records > INTAKE_PRODUCER_WINDOW_RECORDS_MAX) {
        snprintf(why, why_capacity, "window_records must be at most %u",
                 INTAKE_PRODUCER_WINDOW_RECORDS_MAX);
        return -EINVAL;
    }
    if (producer_window_init(&session->window, window_bytes, window_records) < 0) {
        snprintf(why, why_capacity, "out of memory");
        return -ENOMEM;
    }
    producer->fd = -1;
    session->phase = PRODUCER_DISCONNECTED;
    session->next_attempt_ns = 0; /* the first attempt starts now */
    return 0;
}

void producer_session_close(struct intake_producer *producer) {
    if (producer->tls.session != NULL) producer_tls_end(&producer->tls, true);
    if (producer->fd >= 0) close(producer->fd);
    producer->fd = -1;
    producer_window_free(&producer->session.window);
}

/* --- reports --- */

static void session_keep_failure(struct producer_session *session, uint64_t sequence, int error,
                                 const char *detail) {
    if (session->failures_end - session->failures_first == PRODUCER_FAILURES_KEPT ||
        session->failures_not_kept > 0) {
        /* Kept in order: once one is only counted, every later one is too. */
        session->failures_not_kept++;
        session->failures_not_kept_highest = sequence;
        return;
    }
    struct producer_failure *failure =
        &session->failures[session->failures_end++ % PRODUCER_FAILURES_KEPT];
    failure->sequence = sequence;
    failure->error = error;
    /* The detail is cut to what the line holds (it is for people; the status is in `error`). */
    int prefix = snprintf(failure->line, sizeof(failure->line),
                          "record %llu failed: ", (unsigned long long)sequence);
    if (prefix > 0 && (size_t)prefix < sizeof(failure->line))
        snprintf(failure->line + prefix, sizeof(failure->line) - (size_t)prefix, "%.*s",
                 (int)(sizeof(failure->line) - (size_t)prefix - 1), detail);
}

int producer_session_take_failures(struct intake_producer *producer, uint64_t sequence) {
    struct producer_session *session = &producer->session;
    uint64_t taken = 0;
    const struct producer_failure *earliest = NULL;
    while (session->failures_first < session->failures_end) {
        const struct producer_failure *failure =
            &session->failures[session->failures_first % PRODUCER_FAILURES_KEPT];
        if (failure->sequence > sequence) break;
        if (earliest == NULL) earliest = failure;
        session->failures_first++;
        taken++;
    }
    bool ring_drained = session->failures_first == session->failures_end;
    if (ring_drained && session->failures_not_kept > 0 &&
        session->failures_not_kept_highest <= sequence) {
        taken += session->failures_not_kept;
        session->failures_not_kept = 0;
    }
    if (earliest == NULL) return 0;
    INTAKE_ASSERT(taken >= 1);
    if (taken == 1)
        snprintf(producer->error, sizeof(producer->error), "%s", earliest->line);
    else
        snprintf(producer->error, sizeof(producer->error), "%s (and %llu more failed)",
                 earliest->line, (unsigned long long)(taken - 1));
    return earliest->error;
}

static void session_report(struct intake_producer *producer, enum intake_delivery_status status,
                           const char *detail) {
    struct producer_session *session = &producer->session;
    struct producer_window *window = &session->window;
    struct producer_window_record *oldest = producer_window_at(window, window->first);
    if (status == INTAKE_DELIVERY_OK) {
        session->stats.delivered++;
    } else {
        session->stats.failed++;
        session_keep_failure(session, oldest->sequence,
                             status == INTAKE_DELIVERY_TIMED_OUT ? -ETIMEDOUT : -EPROTO, detail);
    }
    session->reports++;
    if (session->on_delivery != NULL) {
        struct intake_producer_delivery report = {
            .sequence = oldest->sequence,
            .topic = (const char *)window->bytes + oldest->offset + oldest->topic_offset,
            .topic_length = oldest->topic_length,
            .status = status,
            .detail = detail,
        };
        session->on_delivery(session->delivery_context, &report);
    }
    producer_window_pop(window);
}

/* Releases every retained record up to `sequence` as delivered. */
static uint32_t session_release(struct intake_producer *producer, uint64_t sequence) {
    struct producer_window *window = &producer->session.window;
    uint32_t released = 0;
    while (window->end > window->first &&
           producer_window_at(window, window->first)->sequence <= sequence) {
        session_report(producer, INTAKE_DELIVERY_OK, "");
        released++;
    }
    return released;
}

static void session_disconnect(struct intake_producer *producer, bool at_once, const char *format,
                               ...) __attribute__((format(printf, 3, 4)));

/* The highest sequence this producer has sent: written whole on some connection, or below its
 * first_sequence (sent by the application's earlier life, as it says). */
static uint64_t session_highest_sent(const struct producer_session *session) {
    return session->highest_written > session->sent_floor ? session->highest_written
                                                          : session->sent_floor;
}

int64_t producer_session_room(const struct intake_producer *producer, uint32_t length, bool *lead) {
    const struct producer_session *session = &producer->session;
    *lead =
        session->next_sequence - session_highest_sent(session) > INTAKE_PRODUCER_SEQUENCE_LEAD_MAX;
    if (*lead) return -1;
    return producer_window_room(&session->window, length);
}

/* Fails the oldest records whose delivery timeout passed. One that is partly written on this
 * connection waits until it is written or the connection ends (its bytes are still needed).
 * intake refuses a connection whose records skip a sequence (framer.h), so when a record that
 * was never written on a connection that has written others expires, the connection is
 * replaced at once: the next one starts with what follows (a first record may skip). */
static void session_expire(struct intake_producer *producer, uint64_t now_ns) {
    struct producer_session *session = &producer->session;
    struct producer_window *window = &session->window;
    bool skipped = false;
    while (window->end > window->first) {
        struct producer_window_record *oldest = producer_window_at(window, window->first);
        if (oldest->deadline_ns > now_ns) break;
        if (window->sent == window->first && window->sent_partial > 0) break;
        /* TLS may hold its bytes in a record it has not finished sending: the same. */
        if (window->sent == window->first && producer->tls.write_owed) break;
        bool written = window->sent > window->first;
        char detail[160];
        snprintf(detail, sizeof(detail), "not acknowledged within %llu ms%s",
                 (unsigned long long)(session->delivery_timeout_ns / 1000000u),
                 written ? " (it was written: possibly committed)" : " (never written)");
        skipped |= !written;
        session_report(producer, INTAKE_DELIVERY_TIMED_OUT, detail);
    }
    if (skipped && session->phase == PRODUCER_STREAMING && session->connection_wrote)
        session_disconnect(producer, true,
                           "records expired unwritten: a new connection continues after them");
}

/* --- connection phases --- */

/* Ends the connection; the next attempt follows a jittered backoff (or none when `at_once`). */
static void session_disconnect(struct intake_producer *producer, bool at_once, const char *format,
                               ...) {
    struct producer_session *session = &producer->session;
    va_list arguments;
    va_start(arguments, format);
    intake_error_vline(session->problem, sizeof(session->problem), format, arguments);
    va_end(arguments);
    memcpy(producer->error, session->problem, sizeof(producer->error));
    if (producer->tls.session != NULL) producer_tls_end(&producer->tls, false);
    if (producer->fd >= 0) {
        close(producer->fd);
        session->stats.disconnects++;
    }
    producer->fd = -1;
    producer->ack_fill = 0;
    producer_window_rewind(&session->window);
    session->phase = PRODUCER_DISCONNECTED;
    session->connection_wrote = false;
    uint64_t delay = 0;
    if (!at_once) {
        /* Full jitter over the upper half: spreads reconnecting producers, keeps a floor. */
        uint64_t half = session->backoff_ns / 2;
        delay = half + (half ? session_random(session) % (half + 1) : 0);
        session->backoff_ns *= 2;
        if (session->backoff_ns > session->backoff_max_ns)
            session->backoff_ns = session->backoff_max_ns;
    }
    session->next_attempt_ns = intake_now_ns() + delay;
}

static void session_send_hello(struct intake_producer *producer, uint64_t now_ns) {
    struct producer_session *session = &producer->session;
    /* The socket is new and empty: a short Hello goes out whole or the connection is bad. */
    ssize_t sent = producer_io_send(producer, session->hello, session->hello_length);
    if (sent != (ssize_t)session->hello_length) {
        session_disconnect(producer, false, "send Hello to %s: %s", producer->address_text,
                           sent < 0 ? producer_io_error_text(producer, (int)sent) : "short write");
        return;
    }
    session->phase = PRODUCER_HELLO;
    session->phase_deadline_ns = now_ns + (uint64_t)producer->io_timeout_ms * 1000000u;
}

/* One step of the TLS handshake; the Hello follows it at once. */
static void session_handshake(struct intake_producer *producer, uint64_t now_ns) {
    INTAKE_ASSERT(producer->session.phase == PRODUCER_HANDSHAKE);
    int result = producer_tls_handshake(&producer->tls);
    if (result == -EAGAIN) return;
    if (result < 0) {
        session_disconnect(producer, false, "%s: %s (retrying)", producer->address_text,
                           producer_io_error_text(producer, result));
        return;
    }
    session_send_hello(producer, now_ns);
}

/* The TCP connection is up: the TLS handshake starts, or (plaintext) the Hello goes out. */
static void session_established(struct intake_producer *producer, uint64_t now_ns) {
    struct producer_session *session = &producer->session;
    if (!producer_tls_enabled(&producer->tls)) {
        session_send_hello(producer, now_ns);
        return;
    }
    int result = producer_tls_begin(&producer->tls, producer->fd);
    if (result < 0) {
        session_disconnect(producer, false, "%s: %s (retrying)", producer->address_text,
                           producer_io_error_text(producer, result));
        return;
    }
    session->phase = PRODUCER_HANDSHAKE;
    session->phase_deadline_ns = now_ns + (uint64_t)producer->io_timeout_ms * 1000000u;
    session_handshake(producer, now_ns);
}

static void session_connect(struct intake_producer *producer, uint64_t now_ns) {
    struct producer_session *session = &producer->session;
    INTAKE_ASSERT(session->phase == PRODUCER_DISCONNECTED);
    INTAKE_ASSERT(producer->fd < 0);
    uint32_t which = session->attempts++ % session->address_count;
    bool in_progress = false;
    int fd = producer_connect_start(&session->addresses[which], session->address_lengths[which],
                                    &in_progress);
    if (fd < 0) {
        session_disconnect(producer, false, "connect to %s: %s (retrying)", producer->address_text,
                           strerror(-fd));
        return;
    }
    producer->fd = fd;
    if (in_progress) {
        session->phase = PRODUCER_CONNECTING;
        session->phase_deadline_ns = now_ns + (uint64_t)producer->io_timeout_ms * 1000000u;
        return;
    }
    session_established(producer, now_ns);
}

static void session_connected(struct intake_producer *producer, uint64_t now_ns) {
    int result = producer_connect_result(producer->fd);
    if (result < 0) {
        session_disconnect(producer, false, "connect to %s: %s (retrying)", producer->address_text,
                           strerror(-result));
        return;
    }
    session_established(producer, now_ns);
}

/* The Hello's answer: everything up to H is committed; the rest is resent from here. */
static int session_hello_answered(struct intake_producer *producer,
                                  const struct ack_frame_decoded *ack, uint64_t now_ns) {
    struct producer_session *session = &producer->session;
    if (ack->status == intake_v1_Ack_Status_SHUTTING_DOWN ||
        ack->status == intake_v1_Ack_Status_RESOURCE_EXHAUSTED) {
        session_disconnect(producer, false, "Hello answered %s: %s (retrying)",
                           producer_status_name(ack->status), ack->detail);
        return 0;
    }
    if (ack->status != intake_v1_Ack_Status_OK) {
        /* intake refuses the producer itself (an intake without producer ids says the Hello
         * is a malformed record): no retry can help. */
        session_disconnect(producer, false, "intake refused the Hello");
        return producer_error(producer, -EPROTO, true, "intake refused the Hello: %s: %s",
                              producer_status_name(ack->status), ack->detail);
    }
    uint64_t sent = session_highest_sent(session);
    if (ack->sequence > sent) {
        /* intake says it committed records this producer never sent: another producer uses
         * this id (under the same principal), or a previous life of it went further than
         * first_sequence says. Releasing up to H would report records delivered that intake
         * may never have written: every retained record is failed instead, and the producer
         * stops. */
        char id[INTAKE_PRODUCER_ID_BYTES_MAX + 1];
        snprintf(id, sizeof(id), "%.*s", (int)session->producer_id_length,
                 (const char *)session->producer_id);
        char detail[PRODUCER_ERROR_BYTES];
        snprintf(detail, sizeof(detail),
                 "intake answered the Hello with sequence %llu, above the highest this producer "
                 "sent (%llu): another producer uses producer_id \"%s\", or an earlier one went "
                 "further than first_sequence says; not delivered",
                 (unsigned long long)ack->sequence, (unsigned long long)sent, id);
        session_disconnect(producer, false, "%s", detail);
        while (session->window.end > session->window.first)
            session_report(producer, INTAKE_DELIVERY_REJECTED, detail);
        return producer_error(producer, -EPROTO, true, "%s", detail);
    }
    session->stats.connections++;
    session->stats.last_hello_sequence = ack->sequence;
    session_release(producer, ack->sequence);
    session->phase = PRODUCER_STREAMING;
    session->progress_ns = now_ns;
    session->backoff_ns = session->backoff_min_ns;
    return 0;
}

/* A record-ack on a streaming connection. */
static void session_acked(struct intake_producer *producer, const struct ack_frame_decoded *ack,
                          uint64_t now_ns) {
    struct producer_session *session = &producer->session;
    struct producer_window *window = &session->window;
    /* Only records written on this connection can be covered by its acks. */
    uint64_t covered = ack->sequence;
    if (window->sent > window->first) {
        uint64_t last_written = producer_window_at(window, window->sent - 1)->sequence;
        if (covered > last_written) covered = last_written;
    } else {
        covered = 0;
    }
    if (session_release(producer, covered) > 0) session->progress_ns = now_ns;
    if (ack->status == intake_v1_Ack_Status_OK) return;
    const char *status = producer_status_name(ack->status);
    if (ack->status == intake_v1_Ack_Status_REJECTED ||
        ack->status == intake_v1_Ack_Status_INTERNAL) {
        /* It names the oldest retained record, if that one was written here. */
        bool named = window->end > window->first &&
                     (window->sent > window->first || window->sent_partial > 0);
        session_disconnect(producer, true, "%s: %s", status, ack->detail);
        if (named) {
            char detail[PRODUCER_ERROR_BYTES];
            snprintf(detail, sizeof(detail), "%s: %s", status, ack->detail);
            session_report(producer,
                           ack->status == intake_v1_Ack_Status_REJECTED ? INTAKE_DELIVERY_REJECTED
                                                                        : INTAKE_DELIVERY_INTERNAL,
                           detail);
        }
        return;
    }
    session_disconnect(producer, false, "%s: %s (retrying)", status, ack->detail);
}

/* Decodes the Acks in the receive buffer. Returns a sticky error or 0. */
static int session_parse_acks(struct intake_producer *producer, uint64_t now_ns) {
    size_t position = 0;
    while (producer->fd >= 0 && position < producer->ack_fill) {
        struct ack_frame_decoded ack;
        enum ack_frame_result decoded =
            ack_frame_decode(producer->ack_buffer + position, producer->ack_fill - position,
                             PRODUCER_ACK_BUFFER_BYTES - VARINT_BYTES_MAX, &ack);
        if (decoded == ACK_FRAME_NEED_MORE) break;
        if (decoded != ACK_FRAME_OK) {
            session_disconnect(producer, false, "unreadable Ack from intake (%s)",
                               decoded == ACK_FRAME_UNREADABLE ? ack.problem : "bad frame");
            return 0;
        }
        INTAKE_ASSERT(ack.frame_bytes <= producer->ack_fill - position);
        position += ack.frame_bytes;
        if (producer->session.phase == PRODUCER_HELLO) {
            int result = session_hello_answered(producer, &ack, now_ns);
            if (result < 0) return result;
        } else {
            INTAKE_ASSERT(producer->session.phase == PRODUCER_STREAMING);
            session_acked(producer, &ack, now_ns);
        }
    }
    if (producer->fd < 0) return 0; /* disconnected: the buffer was reset */
    INTAKE_ASSERT(position <= producer->ack_fill);
    memmove(producer->ack_buffer, producer->ack_buffer + position, producer->ack_fill - position);
    producer->ack_fill -= position;
    return 0;
}

static int session_read(struct intake_producer *producer, uint64_t now_ns) {
    while (producer->fd >= 0) {
        ssize_t received = producer_io_receive(producer, producer->ack_buffer + producer->ack_fill,
                                               PRODUCER_ACK_BUFFER_BYTES - producer->ack_fill);
        if (received == 0) {
            session_disconnect(producer, false, "intake closed the connection (retrying)");
            return 0;
        }
        if (received == -EAGAIN) return 0;
        if (received < 0) {
            session_disconnect(producer, false, "receive from intake: %s (retrying)",
                               producer_io_error_text(producer, (int)received));
            return 0;
        }
        producer->ack_fill += (size_t)received;
        int result = session_parse_acks(producer, now_ns);
        if (result < 0) return result;
    }
    return 0;
}

/* Writes unsent records without blocking. */
static void session_write(struct intake_producer *producer, uint64_t now_ns) {
    struct producer_session *session = &producer->session;
    while (producer->fd >= 0 && session->window.unsent_bytes > 0) {
        struct iovec iov[SESSION_IOV_MAX];
        int count = producer_window_unsent(&session->window, iov, SESSION_IOV_MAX);
        ssize_t sent = producer_io_sendv(producer, iov, count);
        if (sent == -EAGAIN) return;
        if (sent < 0) {
            /* intake may have ended the connection with an Ack that says why: read it first. */
            char why[PRODUCER_ERROR_BYTES / 2];
            snprintf(why, sizeof(why), "%s", producer_io_error_text(producer, (int)sent));
            if (session_read(producer, now_ns) < 0 || producer->fd < 0) return;
            session_disconnect(producer, false, "send to intake: %s (retrying)", why);
            return;
        }
        if (producer_window_advance(&session->window, (size_t)sent, &session->highest_written,
                                    &session->stats.resent) > 0)
            session->connection_wrote = true;
        session->progress_ns = now_ns;
    }
}

/* --- the run loop --- */

static bool session_goal_met(const struct intake_producer *producer, enum producer_goal goal,
                             uint64_t value, uint64_t reports_before) {
    const struct producer_session *session = &producer->session;
    const struct producer_window *window = &session->window;
    switch (goal) {
    case PRODUCER_GOAL_NONE: return true;
    case PRODUCER_GOAL_ROOM: {
        bool lead = false;
        return producer_session_room(producer, (uint32_t)value, &lead) >= 0;
    }
    case PRODUCER_GOAL_FLUSHED:
        return window->unsent_bytes == 0 || session->phase == PRODUCER_DISCONNECTED;
    case PRODUCER_GOAL_FINISHED:
        return window->end == window->first ||
               window->records[window->first % window->records_capacity].sequence > value;
    case PRODUCER_GOAL_REPORTED: return session->reports > reports_before;
    }
    return true;
}

/* Connecting, the TLS handshake and the Hello must each finish within io_timeout_ms. */
static bool session_phase_has_deadline(enum producer_phase phase) {
    return phase == PRODUCER_CONNECTING || phase == PRODUCER_HANDSHAKE || phase == PRODUCER_HELLO;
}

/* The next time something is due: a connect attempt, a phase or stall timeout, a delivery
 * timeout, or the caller's deadline. */
static uint64_t session_next_due(const struct intake_producer *producer, uint64_t deadline_ns) {
    const struct producer_session *session = &producer->session;
    const struct producer_window *window = &session->window;
    uint64_t due = deadline_ns;
    uint64_t io_ns = (uint64_t)producer->io_timeout_ms * 1000000u;
    if (session->phase == PRODUCER_DISCONNECTED && session->next_attempt_ns < due)
        due = session->next_attempt_ns;
    if (session_phase_has_deadline(session->phase) && session->phase_deadline_ns < due)
        due = session->phase_deadline_ns;
    if (session->phase == PRODUCER_STREAMING && window->end > window->first &&
        session->progress_ns + io_ns < due)
        due = session->progress_ns + io_ns;
    if (window->end > window->first) {
        uint64_t expiry = window->records[window->first % window->records_capacity].deadline_ns;
        if (expiry < due) due = expiry;
    }
    return due;
}

/* Acts on time: starts a due connect, drops a connection that timed out or stalled. */
static void session_timers(struct intake_producer *producer, uint64_t now_ns) {
    struct producer_session *session = &producer->session;
    const struct producer_window *window = &session->window;
    uint64_t io_ns = (uint64_t)producer->io_timeout_ms * 1000000u;
    session_expire(producer, now_ns);
    if (session_phase_has_deadline(session->phase) && now_ns >= session->phase_deadline_ns)
        session_disconnect(producer, false, "%s %s: no answer within %u ms (retrying)",
                           session->phase == PRODUCER_CONNECTING  ? "connect to"
                           : session->phase == PRODUCER_HANDSHAKE ? "TLS handshake with"
                                                                  : "Hello to",
                           producer->address_text, producer->io_timeout_ms);
    if (session->phase == PRODUCER_STREAMING && window->end > window->first &&
        now_ns >= session->progress_ns + io_ns)
        session_disconnect(producer, false, "no progress from %s for %u ms (retrying)",
                           producer->address_text, producer->io_timeout_ms);
    if (session->phase == PRODUCER_DISCONNECTED && now_ns >= session->next_attempt_ns)
        session_connect(producer, now_ns);
}

/* Waits for the socket or the next due time, then handles what happened. */
static int session_wait(struct intake_producer *producer, uint64_t due_ns) {
    struct producer_session *session = &producer->session;
    int64_t remaining_ms = producer_remaining_ms(due_ns);
    /* Waking once a minute at least keeps a far deadline from overflowing poll's int. */
    int timeout_ms = remaining_ms > 60000 ? 60000 : (int)remaining_ms;
    if (producer->fd < 0) {
        if (timeout_ms > 0) (void)poll(NULL, 0, timeout_ms);
        return 0;
    }
    short events = POLLIN;
    if (session->phase == PRODUCER_CONNECTING) events = POLLOUT;
    if (session->phase == PRODUCER_HANDSHAKE && producer->tls.handshake_wants_write)
        events = POLLOUT;
    if (session->phase == PRODUCER_STREAMING && session->window.unsent_bytes > 0) events |= POLLOUT;
    struct pollfd poll_fd = {producer->fd, events, 0};
    int ready = poll(&poll_fd, 1, timeout_ms);
    if (ready < 0 && errno == EINTR) return 0;
    if (ready < 0) return producer_error(producer, -errno, true, "poll: %s", strerror(errno));
    if (ready == 0) return 0;
    uint64_t now_ns = intake_now_ns();
    if (session->phase == PRODUCER_CONNECTING) {
        session_connected(producer, now_ns);
        return 0;
    }
    if (session->phase == PRODUCER_HANDSHAKE) {
        session_handshake(producer, now_ns);
        return 0;
    }
    if (poll_fd.revents & (POLLIN | POLLHUP | POLLERR)) {
        int result = session_read(producer, now_ns);
        if (result < 0) return result;
    }
    if (session->phase == PRODUCER_STREAMING && (poll_fd.revents & POLLOUT))
        session_write(producer, now_ns);
    return 0;
}

int producer_session_run(struct intake_producer *producer, enum producer_goal goal,
                         uint64_t goal_value, uint64_t deadline_ns) {
    struct producer_session *session = &producer->session;
    uint64_t reports_before = session->reports;
    for (;;) {
        if (producer->failed) return producer->failed;
        uint64_t now_ns = intake_now_ns();
        session_timers(producer, now_ns);
        if (session->phase == PRODUCER_CONNECTING) {
            /* A pass that does not wait still notices a connect that completed. */
            struct pollfd poll_fd = {producer->fd, POLLOUT, 0};
            if (poll(&poll_fd, 1, 0) > 0) session_connected(producer, now_ns);
        }
        if (session->phase == PRODUCER_HANDSHAKE) session_handshake(producer, now_ns);
        if (session->phase == PRODUCER_HELLO || session->phase == PRODUCER_STREAMING) {
            int result = session_read(producer, now_ns);
            if (result < 0) return result;
        }
        if (session->phase == PRODUCER_STREAMING) session_write(producer, now_ns);
        if (session_goal_met(producer, goal, goal_value, reports_before)) return 0;
        if (deadline_ns == 0 || intake_now_ns() >= deadline_ns) return -ETIMEDOUT;
        int result = session_wait(producer, session_next_due(producer, deadline_ns));
        if (result < 0) return result;
        if (session_goal_met(producer, goal, goal_value, reports_before)) return 0;
    }
}

int producer_session_sent_one(struct intake_producer *producer) {
    struct producer_session *session = &producer->session;
    if (session->window.unsent_bytes < producer->batch_capacity) return 0;
    /* A batch is gathered: one pass writes it and reads the acks waiting. */
    int result = producer_session_run(producer, PRODUCER_GOAL_NONE, 0, 0);
    return result == -ETIMEDOUT ? 0 : result;
}
