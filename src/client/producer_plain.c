/*
 * producer_plain.c: the plain (non-idempotent) producer's I/O (include/intake/producer.h).
 * Runs on the caller's thread. Writes the batch buffer to the socket and reads cumulative Acks;
 * any connection error or non-OK Ack is sticky. The socket is non-blocking: every wait is a
 * poll() that also watches for incoming Acks, so a producer that writes a lot never deadlocks
 * against a daemon waiting for its acks to be read.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ack_frame.h"
#include "intake.pb.h"
#include "producer_internal.h"

/* --- reading Acks --- */

/* Acts on one decoded Ack: raises the cumulative ack; a non-OK status ends the producer. */
static int producer_handle_ack(struct intake_producer *producer,
                               const struct ack_frame_decoded *ack) {
    /* Even a non-OK Ack says everything up to its sequence is committed. */
    if (ack->sequence > producer->acked) producer->acked = ack->sequence;
    if (ack->status != intake_v1_Ack_Status_OK)
        return producer_error(producer, -EPROTO, true, "%s: %s", producer_status_name(ack->status),
                              ack->detail);
    return 0;
}

/* Decodes every complete Ack frame in the receive buffer (src/wire/ack_frame.h, fuzzed) and
 * keeps the partial tail. */
static int producer_parse_acks(struct intake_producer *producer) {
    size_t position = 0;
    int result = 0;
    while (result == 0 && position < producer->ack_fill) {
        struct ack_frame_decoded ack;
        enum ack_frame_result decoded =
            ack_frame_decode(producer->ack_buffer + position, producer->ack_fill - position,
                             PRODUCER_ACK_BUFFER_BYTES - VARINT_BYTES_MAX, &ack);
        if (decoded == ACK_FRAME_NEED_MORE) break;
        if (decoded == ACK_FRAME_BAD_PREFIX)
            return producer_error(producer, -EPROTO, true, "bad Ack length prefix from intake");
        if (decoded == ACK_FRAME_TOO_LONG)
            return producer_error(producer, -EPROTO, true, "Ack frame of %llu bytes from intake",
                                  (unsigned long long)ack.body_bytes);
        if (decoded == ACK_FRAME_UNREADABLE)
            return producer_error(producer, -EPROTO, true, "unreadable Ack from intake: %s",
                                  ack.problem);
        INTAKE_ASSERT(decoded == ACK_FRAME_OK);
        INTAKE_ASSERT(ack.frame_bytes <= producer->ack_fill - position);
        result = producer_handle_ack(producer, &ack);
        position += ack.frame_bytes;
    }
    INTAKE_ASSERT(position <= producer->ack_fill);
    memmove(producer->ack_buffer, producer->ack_buffer + position, producer->ack_fill - position);
    producer->ack_fill -= position;
    return result;
}

/* Reads whatever Acks are waiting, without blocking. */
int producer_drain_acks(struct intake_producer *producer) {
    for (;;) {
        INTAKE_ASSERT(producer->ack_fill < PRODUCER_ACK_BUFFER_BYTES);
        ssize_t received = producer_io_receive(producer, producer->ack_buffer + producer->ack_fill,
                                               PRODUCER_ACK_BUFFER_BYTES - producer->ack_fill);
        if (received == 0)
            return producer_error(producer, -ECONNRESET, true,
                                  "intake closed the connection (acked up to sequence %llu)",
                                  (unsigned long long)producer->acked);
        if (received == -EAGAIN) return 0;
        if (received < 0)
            return producer_error(producer, (int)received, true, "receive from intake: %s",
                                  producer_io_error_text(producer, (int)received));
        producer->ack_fill += (size_t)received;
        int result = producer_parse_acks(producer);
        if (result < 0) return result;
    }
}

/* --- writing --- */

/* Waits until the socket is writable (reading Acks meanwhile) or io_timeout_ms passes. */
static int producer_wait_writable(struct intake_producer *producer) {
    uint64_t deadline_ns = intake_now_ns() + (uint64_t)producer->io_timeout_ms * 1000000u;
    for (;;) {
        struct pollfd poll_fd = {producer->fd, POLLOUT | POLLIN, 0};
        int ready = poll(&poll_fd, 1, (int)producer_remaining_ms(deadline_ns));
        if (ready < 0 && errno == EINTR) continue;
        if (ready < 0) return producer_error(producer, -errno, true, "poll: %s", strerror(errno));
        if (ready == 0)
            return producer_error(producer, -ETIMEDOUT, true, "intake accepted no data for %u ms",
                                  producer->io_timeout_ms);
        if (poll_fd.revents & (POLLIN | POLLHUP | POLLERR)) {
            int result = producer_drain_acks(producer);
            if (result < 0) return result;
        }
        if (poll_fd.revents & POLLOUT) return 0;
    }
}

static int producer_write_all(struct intake_producer *producer, const uint8_t *bytes,
                              size_t length) {
    while (length > 0) {
        /* TLS: when this would block, the retry presents the same bytes, as OpenSSL needs. */
        ssize_t sent = producer_io_send(producer, bytes, length);
        if (sent > 0) {
            bytes += sent;
            length -= (size_t)sent;
            continue;
        }
        if (sent == -EPIPE || sent == -ECONNRESET) {
            /* intake ends a connection with a final Ack that says why (REJECTED, ...), or over
             * TLS with an alert: that reason, if it already arrived, is what the caller needs,
             * not the broken pipe. */
            int drained = producer_drain_acks(producer);
            if (drained == -EPROTO || drained == -ECONNABORTED) return drained;
        }
        if (sent < 0 && sent != -EAGAIN)
            return producer_error(producer, (int)sent, true, "send to intake: %s",
                                  producer_io_error_text(producer, (int)sent));
        int result = producer_wait_writable(producer);
        if (result < 0) return result;
    }
    return 0;
}

int producer_plain_flush(struct intake_producer *producer) {
    INTAKE_ASSERT(producer != NULL);
    INTAKE_ASSERT(producer->batch_fill <= producer->batch_capacity);
    if (producer->failed) return producer->failed;
    int result = producer_write_all(producer, producer->batch, producer->batch_fill);
    if (result < 0) return result;
    producer->batch_fill = 0;
    /* One cheap non-blocking read per batch keeps the ack stream drained. */
    return producer_drain_acks(producer);
}

/* Appends bytes to the batch, writing the batch out when they do not fit; pieces larger than the
 * whole batch go straight to the socket after it. */
int producer_emit(struct intake_producer *producer, const void *bytes, size_t length) {
    if (length <= producer->batch_capacity - producer->batch_fill) {
        if (length > 0) memcpy(producer->batch + producer->batch_fill, bytes, length);
        producer->batch_fill += length;
        return 0;
    }
    int result = producer_write_all(producer, producer->batch, producer->batch_fill);
    if (result < 0) return result;
    producer->batch_fill = 0;
    if (length >= producer->batch_capacity) return producer_write_all(producer, bytes, length);
    memcpy(producer->batch, bytes, length);
    producer->batch_fill = length;
    return 0;
}

int producer_plain_wait_acks(struct intake_producer *producer, uint64_t sequence, int timeout_ms) {
    int result = producer_plain_flush(producer);
    if (result < 0) return result;
    uint64_t deadline_ns = intake_now_ns() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms) * 1000000u;
    while (producer->acked < sequence) {
        int wait_ms = timeout_ms < 0 ? -1 : (int)producer_remaining_ms(deadline_ns);
        if (timeout_ms >= 0 && intake_now_ns() >= deadline_ns)
            return producer_error(producer, -ETIMEDOUT, false,
                                  "no ack for sequence %llu within %d ms (acked up to %llu)",
                                  (unsigned long long)sequence, timeout_ms,
                                  (unsigned long long)producer->acked);
        struct pollfd poll_fd = {producer->fd, POLLIN, 0};
        int ready = poll(&poll_fd, 1, wait_ms);
        if (ready < 0 && errno != EINTR)
            return producer_error(producer, -errno, true, "poll: %s", strerror(errno));
        if (ready > 0) {
            result = producer_drain_acks(producer);
            if (result < 0) return result;
        }
    }
    return 0;
}
