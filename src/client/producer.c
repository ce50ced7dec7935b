/*
 * producer.c: the producer library (see include/intake/producer.h). Runs on the caller's thread;
 * one producer per thread. Owns one TCP socket, one batch buffer and one ack receive buffer, all
 * sized at open.
 *
 * Records are hand-encoded into the batch (protobuf wire format, fields in number order, default
 * values omitted as proto3 does); Acks are decoded by src/wire/ack_frame.c (nanopb). The socket
 * is non-blocking: every wait is a poll() that also watches for incoming Acks, so a producer
 * that writes a lot never deadlocks against a daemon waiting for its acks to be read.
 */
#include "intake/producer.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ack_frame.h"
#include "common.h"
#include "intake.pb.h"
#include "varint.h"

/* Ack receive buffer; an Ack frame longer than this is a protocol error. */
#define PRODUCER_ACK_BUFFER_BYTES 4096
#define PRODUCER_ERROR_BYTES      640
/* Bytes of one record's encoding outside the topic, key and value payloads: a length prefix,
 * three tags with length varints, two tagged varints. */
#define PRODUCER_RECORD_OVERHEAD_MAX (5 * VARINT_BYTES_MAX + 5 + 3 * VARINT_BYTES_MAX)

struct intake_producer {
    int fd;
    bool acks;
    int failed; /* sticky negative errno; 0 while healthy */
    uint32_t io_timeout_ms;
    uint64_t highest_sent; /* highest sequence sent by send or send_raw */
    uint64_t acked;        /* highest cumulative ack received */
    uint8_t *batch;
    size_t batch_capacity;
    size_t batch_fill;
    uint8_t ack_buffer[PRODUCER_ACK_BUFFER_BYTES];
    size_t ack_fill;
    char error[PRODUCER_ERROR_BYTES];
};

/* Records `error` with a message; a fatal error also becomes sticky. Returns `error`. */
__attribute__((format(printf, 4, 5))) static int
producer_error(struct intake_producer *producer, int error, bool fatal, const char *format, ...) {
    INTAKE_ASSERT(error < 0);
    va_list arguments;
    va_start(arguments, format);
    intake_error_vline(producer->error, sizeof(producer->error), format, arguments);
    va_end(arguments);
    if (fatal && producer->failed == 0) producer->failed = error;
    return error;
}

static int64_t producer_remaining_ms(uint64_t deadline_ns) {
    uint64_t now = intake_now_ns();
    return now >= deadline_ns ? 0 : (int64_t)((deadline_ns - now) / 1000000u) + 1;
}

/* --- connecting --- */

/* Splits "host:port" / "[v6]:port" into host and port (copied into `host`). */
static int producer_split_address(const char *address, char *host, size_t host_capacity,
                                  const char **port) {
    const char *colon = strrchr(address, ':');
    if (colon == NULL || colon[1] == '\0') return -EINVAL;
    const char *host_start = address;
    size_t host_length = (size_t)(colon - address);
    if (host_length >= 2 && address[0] == '[' && colon[-1] == ']') {
        host_start++;
        host_length -= 2;
    }
    if (host_length == 0 || host_length >= host_capacity) return -EINVAL;
    memcpy(host, host_start, host_length);
    host[host_length] = '\0';
    *port = colon + 1;
    return 0;
}

/* Non-blocking connect bounded by timeout_ms; returns the socket or a negative errno. */
static int producer_connect_one(const struct addrinfo *info, uint32_t timeout_ms) {
    int fd = socket(info->ai_family, info->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    info->ai_protocol);
    if (fd < 0) return -errno;
    int result = connect(fd, info->ai_addr, info->ai_addrlen) == 0 ? 0 : -errno;
    if (result == -EINPROGRESS) {
        struct pollfd poll_fd = {fd, POLLOUT, 0};
        int ready = poll(&poll_fd, 1, (int)timeout_ms);
        int socket_error = 0;
        socklen_t length = sizeof(socket_error);
        if (ready == 0)
            result = -ETIMEDOUT;
        else if (ready < 0)
            result = -errno;
        else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &socket_error, &length) < 0)
            result = -errno;
        else
            result = -socket_error;
    }
    if (result < 0) {
        close(fd);
        return result;
    }
    /* We batch ourselves; a flush must go out now, not after Nagle's delay. */
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static int producer_connect(const char *address, uint32_t timeout_ms, char *why,
                            size_t why_capacity) {
    char host[256];
    const char *port = NULL;
    if (producer_split_address(address, host, sizeof(host), &port) < 0) {
        snprintf(why, why_capacity, "bad address '%s' (expected HOST:PORT or [IPv6]:PORT)",
                 address);
        return -EINVAL;
    }
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    struct addrinfo *infos = NULL;
    int lookup = getaddrinfo(host, port, &hints, &infos);
    if (lookup != 0) {
        snprintf(why, why_capacity, "resolve %s: %s", address, gai_strerror(lookup));
        return -EHOSTUNREACH;
    }
    int result = -EHOSTUNREACH;
    for (const struct addrinfo *info = infos; info != NULL; info = info->ai_next) {
        result = producer_connect_one(info, timeout_ms);
        if (result >= 0) break;
    }
    freeaddrinfo(infos);
    if (result < 0) snprintf(why, why_capacity, "connect to %s: %s", address, strerror(-result));
    return result;
}

int intake_producer_open(const struct intake_producer_config *config, struct intake_producer **out,
                         char *why, size_t why_capacity) {
    INTAKE_ASSERT(config != NULL);
    INTAKE_ASSERT(out != NULL);
    char why_unused[8];
    if (why == NULL || why_capacity == 0) {
        why = why_unused;
        why_capacity = sizeof(why_unused);
    }
    why[0] = '\0';
    *out = NULL;
    if (config->address == NULL) {
        snprintf(why, why_capacity, "no address given");
        return -EINVAL;
    }
    struct intake_producer *producer = calloc(1, sizeof(*producer));
    if (producer == NULL) goto out_of_memory;
    producer->batch_capacity =
        config->batch_bytes ? config->batch_bytes : INTAKE_PRODUCER_BATCH_BYTES_DEFAULT;
    producer->batch = malloc(producer->batch_capacity);
    if (producer->batch == NULL) goto free_producer;
    producer->io_timeout_ms =
        config->io_timeout_ms ? config->io_timeout_ms : INTAKE_PRODUCER_IO_TIMEOUT_MS_DEFAULT;
    producer->acks = config->acks;
    int fd = producer_connect(config->address, producer->io_timeout_ms, why, why_capacity);
    if (fd < 0) {
        free(producer->batch);
        free(producer);
        return fd;
    }
    producer->fd = fd;
    *out = producer;
    return 0;
free_producer:
    free(producer);
out_of_memory:
    snprintf(why, why_capacity, "out of memory");
    return -ENOMEM;
}

void intake_producer_close(struct intake_producer *producer) {
    if (producer == NULL) return;
    INTAKE_ASSERT(producer->fd >= 0);
    close(producer->fd);
    free(producer->batch);
    free(producer);
}

/* --- reading Acks --- */

static const char *producer_status_name(uint32_t status) {
    switch (status) {
    case intake_v1_Ack_Status_OK: return "OK";
    case intake_v1_Ack_Status_REJECTED: return "REJECTED";
    case intake_v1_Ack_Status_RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case intake_v1_Ack_Status_SHUTTING_DOWN: return "SHUTTING_DOWN";
    case intake_v1_Ack_Status_INTERNAL: return "INTERNAL";
    default: return "UNKNOWN_STATUS";
    }
}

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
static int producer_drain_acks(struct intake_producer *producer) {
    for (;;) {
        INTAKE_ASSERT(producer->ack_fill < PRODUCER_ACK_BUFFER_BYTES);
        ssize_t received = recv(producer->fd, producer->ack_buffer + producer->ack_fill,
                                PRODUCER_ACK_BUFFER_BYTES - producer->ack_fill, MSG_DONTWAIT);
        if (received == 0)
            return producer_error(producer, -ECONNRESET, true,
                                  "intake closed the connection (acked up to sequence %llu)",
                                  (unsigned long long)producer->acked);
        if (received < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
            return producer_error(producer, -errno, true, "receive from intake: %s",
                                  strerror(errno));
        }
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
        /* MSG_NOSIGNAL: a closed connection is an error we return, not a SIGPIPE. */
        ssize_t sent = send(producer->fd, bytes, length, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (sent > 0) {
            bytes += sent;
            length -= (size_t)sent;
            continue;
        }
        if (sent < 0 && errno == EINTR) continue;
        if (sent < 0 && (errno == EPIPE || errno == ECONNRESET)) {
            /* intake ends a connection with a final Ack that says why (REJECTED, ...): that
             * reason, if it already arrived, is what the caller needs, not the broken pipe. */
            int send_errno = errno;
            int drained = producer_drain_acks(producer);
            if (drained == -EPROTO) return drained;
            errno = send_errno;
        }
        if (sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return producer_error(producer, -errno, true, "send to intake: %s", strerror(errno));
        int result = producer_wait_writable(producer);
        if (result < 0) return result;
    }
    return 0;
}

int intake_producer_flush(struct intake_producer *producer) {
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
static int producer_emit(struct intake_producer *producer, const void *bytes, size_t length) {
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

/* --- encoding --- */

static size_t producer_put_tag_length(uint8_t *out, uint8_t tag, uint64_t length) {
    out[0] = tag;
    return 1 + varint_encode(length, out + 1);
}

static size_t producer_field_bytes(size_t payload_length) {
    return 1 + varint_length(payload_length) + payload_length;
}

static int producer_check_topic(struct intake_producer *producer, const char *topic,
                                size_t *topic_length) {
    if (topic == NULL) return producer_error(producer, -EINVAL, false, "no topic given");
    size_t length = strnlen(topic, INTAKE_PRODUCER_TOPIC_BYTES_MAX + 1);
    if (length == 0) return producer_error(producer, -EINVAL, false, "topic is empty");
    if (length > INTAKE_PRODUCER_TOPIC_BYTES_MAX)
        return producer_error(producer, -EINVAL, false, "topic is longer than %d bytes",
                              INTAKE_PRODUCER_TOPIC_BYTES_MAX);
    uint32_t state = 0;
    if (!intake_utf8_feed(&state, (const uint8_t *)topic, length) || state != 0)
        return producer_error(producer, -EINVAL, false, "topic is not valid UTF-8");
    *topic_length = length;
    return 0;
}

/* Emits one Record frame: fields 1, 2, 3, 4, 5 in order, empty and zero fields omitted. */
static int producer_emit_record(struct intake_producer *producer, const char *topic,
                                size_t topic_length, const void *key, size_t key_length,
                                const void *value, size_t value_length, uint64_t timestamp_ns,
                                uint64_t sequence) {
    size_t body = producer_field_bytes(topic_length);
    if (key_length > 0) body += producer_field_bytes(key_length);
    if (value_length > 0) body += producer_field_bytes(value_length);
    body += 1 + varint_length(timestamp_ns);
    if (sequence != 0) body += 1 + varint_length(sequence);

    uint8_t head[PRODUCER_RECORD_OVERHEAD_MAX + INTAKE_PRODUCER_TOPIC_BYTES_MAX];
    size_t head_length = varint_encode(body, head);
    head_length += producer_put_tag_length(head + head_length, 0x0a, topic_length);
    memcpy(head + head_length, topic, topic_length);
    head_length += topic_length;
    if (key_length > 0)
        head_length += producer_put_tag_length(head + head_length, 0x12, key_length);
    uint8_t middle[1 + VARINT_BYTES_MAX];
    size_t middle_length =
        value_length > 0 ? producer_put_tag_length(middle, 0x1a, value_length) : 0;
    uint8_t tail[2 + 2 * VARINT_BYTES_MAX];
    size_t tail_length = 0;
    tail[tail_length++] = 0x20;
    tail_length += varint_encode(timestamp_ns, tail + tail_length);
    if (sequence != 0) {
        tail[tail_length++] = 0x28;
        tail_length += varint_encode(sequence, tail + tail_length);
    }
    INTAKE_ASSERT(head_length <= sizeof(head));
    INTAKE_ASSERT(head_length + key_length + middle_length + value_length + tail_length ==
                  varint_length(body) + body);
    int result = producer_emit(producer, head, head_length);
    if (result == 0) result = producer_emit(producer, key, key_length);
    if (result == 0) result = producer_emit(producer, middle, middle_length);
    if (result == 0) result = producer_emit(producer, value, value_length);
    if (result == 0) result = producer_emit(producer, tail, tail_length);
    return result;
}

int intake_producer_send(struct intake_producer *producer, const char *topic, const void *key,
                         size_t key_length, const void *value, size_t value_length,
                         uint64_t timestamp_ns, uint64_t *sequence) {
    INTAKE_ASSERT(producer != NULL);
    INTAKE_ASSERT(key != NULL || key_length == 0);
    INTAKE_ASSERT(value != NULL || value_length == 0);
    if (producer->failed) return producer->failed;
    size_t topic_length = 0;
    int result = producer_check_topic(producer, topic, &topic_length);
    if (result < 0) return result;
    if (timestamp_ns == 0) timestamp_ns = intake_wall_ns();
    /* Next after anything sent so far, so sequences keep increasing even after send_raw. */
    uint64_t assigned = producer->acks ? producer->highest_sent + 1 : 0;
    result = producer_emit_record(producer, topic, topic_length, key, key_length, value,
                                  value_length, timestamp_ns, assigned);
    if (result < 0) return result;
    if (producer->acks) producer->highest_sent = assigned;
    if (sequence != NULL) *sequence = assigned;
    return 0;
}

/* Field 5 of an encoded Record, last occurrence; 0 when absent or when the bytes do not parse. */
static uint64_t producer_scan_sequence(const uint8_t *bytes, size_t length) {
    uint64_t sequence = 0;
    size_t position = 0;
    while (position < length) {
        uint64_t tag = 0;
        uint64_t number = 0;
        size_t used = 0;
        if (varint_decode(bytes + position, length - position, &tag, &used) != VARINT_OK) return 0;
        position += used;
        uint32_t wire_type = (uint32_t)(tag & 7);
        if (wire_type == 0 || wire_type == 2) {
            if (varint_decode(bytes + position, length - position, &number, &used) != VARINT_OK)
                return 0;
            position += used;
            if (wire_type == 0 && (tag >> 3) == intake_v1_Record_sequence_tag) sequence = number;
            if (wire_type == 2 && number > length - position) return 0;
            if (wire_type == 2) position += (size_t)number;
        } else if (wire_type == 1 || wire_type == 5) {
            size_t width = wire_type == 1 ? 8 : 4;
            if (width > length - position) return 0;
            position += width;
        } else {
            return 0;
        }
    }
    return sequence;
}

int intake_producer_send_raw(struct intake_producer *producer, const void *record, size_t length,
                             uint64_t *sequence) {
    INTAKE_ASSERT(producer != NULL);
    INTAKE_ASSERT(record != NULL || length == 0);
    if (producer->failed) return producer->failed;
    uint8_t prefix[VARINT_BYTES_MAX];
    size_t prefix_length = varint_encode(length, prefix);
    int result = producer_emit(producer, prefix, prefix_length);
    if (result == 0) result = producer_emit(producer, record, length);
    if (result < 0) return result;
    uint64_t found = producer_scan_sequence(record, length);
    if (found > producer->highest_sent) producer->highest_sent = found;
    if (sequence != NULL) *sequence = found;
    return 0;
}

/* --- acks --- */

int intake_producer_wait_acks(struct intake_producer *producer, uint64_t sequence, int timeout_ms) {
    INTAKE_ASSERT(producer != NULL);
    if (producer->failed) return producer->failed;
    if (sequence > producer->highest_sent)
        return producer_error(
            producer, -EINVAL, false, "cannot wait for sequence %llu: highest sent is %llu",
            (unsigned long long)sequence, (unsigned long long)producer->highest_sent);
    int result = intake_producer_flush(producer);
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

uint64_t intake_producer_acked(const struct intake_producer *producer) {
    return producer->acked;
}

uint64_t intake_producer_last_sequence(const struct intake_producer *producer) {
    return producer->highest_sent;
}

const char *intake_producer_last_error(const struct intake_producer *producer) {
    return producer->error;
}
