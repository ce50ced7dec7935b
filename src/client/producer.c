/*
 * producer.c: the producer library's public API (include/intake/producer.h) and its record
 * encoding. Runs on the caller's thread; one producer per thread. Owns one TCP socket, one ack
 * receive buffer and either a batch buffer (plain) or a window of retained records
 * (idempotent), all sized at open.
 *
 * Records are hand-encoded (protobuf wire format, fields in number order, default values
 * omitted as proto3 does): plain records in pieces into the batch, idempotent ones whole and in
 * place in the window, from where every connection writes them. Acks are decoded by
 * src/wire/ack_frame.c (nanopb).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "intake.pb.h"
#include "producer_internal.h"

/* Bytes of one record's encoding outside the topic, key and value payloads: a length prefix,
 * three tags with length varints, two tagged varints. */
#define PRODUCER_RECORD_OVERHEAD_MAX (5 * VARINT_BYTES_MAX + 5 + 3 * VARINT_BYTES_MAX)

static int producer_open_plain(struct intake_producer *producer,
                               const struct intake_producer_config *config, char *why,
                               size_t why_capacity) {
    producer->batch = malloc(producer->batch_capacity);
    if (producer->batch == NULL) {
        snprintf(why, why_capacity, "out of memory");
        return -ENOMEM;
    }
    int fd = producer_connect(config->address, producer->io_timeout_ms, why, why_capacity);
    if (fd < 0) {
        free(producer->batch);
        return fd;
    }
    producer->fd = fd;
    if (!producer_tls_enabled(&producer->tls)) return 0;
    int result = producer_tls_handshake_blocking(producer, why, why_capacity);
    if (result < 0) {
        producer_tls_close(&producer->tls);
        close(fd);
        producer->fd = -1;
        free(producer->batch);
    }
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
    if (producer == NULL) {
        snprintf(why, why_capacity, "out of memory");
        return -ENOMEM;
    }
    producer->fd = -1;
    producer->batch_capacity =
        config->batch_bytes ? config->batch_bytes : INTAKE_PRODUCER_BATCH_BYTES_DEFAULT;
    producer->io_timeout_ms =
        config->io_timeout_ms ? config->io_timeout_ms : INTAKE_PRODUCER_IO_TIMEOUT_MS_DEFAULT;
    producer->idempotent = config->idempotent || config->producer_id != NULL;
    producer->acks = config->acks || producer->idempotent;
    snprintf(producer->address_text, sizeof(producer->address_text), "%s", config->address);
    int result = producer_tls_open(&producer->tls, config, why, why_capacity);
    if (result < 0) {
        free(producer);
        return result;
    }
    result = producer->idempotent ? producer_session_open(producer, config, why, why_capacity)
                                  : producer_open_plain(producer, config, why, why_capacity);
    if (result < 0) {
        if (producer->idempotent) producer_session_close(producer);
        producer_tls_close(&producer->tls);
        free(producer);
        return result;
    }
    if (producer->idempotent) {
        /* Start connecting now. Connection failures are retried by later calls; a sticky error
         * (intake refused the Hello) is what every later call returns. */
        int started = producer_session_run(producer, PRODUCER_GOAL_NONE, 0, 0);
        INTAKE_ASSERT(started <= 0);
    }
    *out = producer;
    return 0;
}

void intake_producer_close(struct intake_producer *producer) {
    if (producer == NULL) return;
    if (producer->idempotent) {
        producer_session_close(producer);
    } else {
        INTAKE_ASSERT(producer->fd >= 0);
        if (producer->tls.session != NULL) producer_tls_end(&producer->tls, true);
        close(producer->fd);
        free(producer->batch);
    }
    producer_tls_close(&producer->tls);
    free(producer);
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

/* Emits one Record frame (plain): fields 1, 2, 3, 4, 5 in order, empty and zero fields omitted. */
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

/* Bytes of an idempotent Record frame's body: fields 1, 2, 3, 4, 5 and 7. */
static size_t producer_record_body(const struct producer_session *session, size_t topic_length,
                                   size_t key_length, size_t value_length, uint64_t timestamp_ns,
                                   uint64_t sequence) {
    size_t body = producer_field_bytes(topic_length);
    if (key_length > 0) body += producer_field_bytes(key_length);
    if (value_length > 0) body += producer_field_bytes(value_length);
    body += 1 + varint_length(timestamp_ns);
    body += 1 + varint_length(sequence);
    return body + producer_field_bytes(session->producer_id_length);
}

/* The connection's state, for error lines. */
static const char *producer_state(const struct intake_producer *producer) {
    const struct producer_session *session = &producer->session;
    if (session->phase == PRODUCER_STREAMING) return "connected, not acked yet";
    if (session->problem[0] != '\0') return session->problem;
    return "connecting";
}

/* Waits (or not, when nonblocking) for room for a frame of `length` bytes in the window:
 * its offset, or a negative errno. */
static int64_t producer_window_reserve(struct intake_producer *producer, size_t length) {
    struct producer_session *session = &producer->session;
    if (length > session->window.bytes_capacity)
        return producer_error(producer, -EMSGSIZE, false,
                              "record of %zu bytes is larger than the window (%u bytes)", length,
                              session->window.bytes_capacity);
    int64_t offset = producer_window_room(&session->window, (uint32_t)length);
    if (offset >= 0) return offset;
    uint64_t deadline_ns =
        session->nonblocking ? 0 : intake_now_ns() + (uint64_t)producer->io_timeout_ms * 1000000u;
    int result = producer_session_run(producer, PRODUCER_GOAL_ROOM, length, deadline_ns);
    if (result < 0 && result != -ETIMEDOUT) return result;
    offset = producer_window_room(&session->window, (uint32_t)length);
    if (offset >= 0) return offset;
    return producer_error(producer, -EAGAIN, false, "window full (%u records pending; %s)",
                          producer_window_count(&session->window), producer_state(producer));
}

/* Makes the window's newest record: the frame at `offset` is written by the caller. */
static int producer_window_commit(struct intake_producer *producer, uint32_t offset,
                                  uint32_t length, uint32_t topic_offset, uint32_t topic_length,
                                  uint64_t sequence) {
    struct producer_session *session = &producer->session;
    /* The coarse clock (a tick, ~4 ms, behind at most) is plenty for a timeout in seconds and,
     * read per record, much cheaper than the precise one on virtual machines. */
    struct timespec coarse;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &coarse);
    uint64_t now_ns = (uint64_t)coarse.tv_sec * 1000000000u + (uint64_t)coarse.tv_nsec;
    /* An idle connection's stall clock starts with the first record after the pause. */
    if (session->window.end == session->window.first) session->progress_ns = now_ns;
    struct producer_window_record record = {
        .sequence = sequence,
        .deadline_ns = now_ns + session->delivery_timeout_ns,
        .length = length,
        .topic_offset = topic_offset,
        .topic_length = topic_length,
    };
    producer_window_push(&session->window, offset, &record);
    session->next_sequence = sequence + 1;
    return producer_session_sent_one(producer);
}

static int producer_send_idempotent(struct intake_producer *producer, const char *topic,
                                    size_t topic_length, const void *key, size_t key_length,
                                    const void *value, size_t value_length, uint64_t timestamp_ns,
                                    uint64_t *sequence) {
    struct producer_session *session = &producer->session;
    uint64_t assigned = session->next_sequence;
    size_t body = producer_record_body(session, topic_length, key_length, value_length,
                                       timestamp_ns, assigned);
    size_t frame = varint_length(body) + body;
    int64_t offset = producer_window_reserve(producer, frame);
    if (offset < 0) return (int)offset;
    uint8_t *out = session->window.bytes + offset;
    size_t length = varint_encode(body, out);
    length += producer_put_tag_length(out + length, 0x0a, topic_length);
    uint32_t topic_offset = (uint32_t)length;
    memcpy(out + length, topic, topic_length);
    length += topic_length;
    if (key_length > 0) {
        length += producer_put_tag_length(out + length, 0x12, key_length);
        memcpy(out + length, key, key_length);
        length += key_length;
    }
    if (value_length > 0) {
        length += producer_put_tag_length(out + length, 0x1a, value_length);
        memcpy(out + length, value, value_length);
        length += value_length;
    }
    out[length++] = 0x20;
    length += varint_encode(timestamp_ns, out + length);
    out[length++] = 0x28;
    length += varint_encode(assigned, out + length);
    length += producer_put_tag_length(out + length, 0x3a, session->producer_id_length);
    memcpy(out + length, session->producer_id, session->producer_id_length);
    length += session->producer_id_length;
    INTAKE_ASSERT(length == frame);
    if (sequence != NULL) *sequence = assigned;
    return producer_window_commit(producer, (uint32_t)offset, (uint32_t)frame, topic_offset,
                                  (uint32_t)topic_length, assigned);
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
    if (producer->idempotent)
        return producer_send_idempotent(producer, topic, topic_length, key, key_length, value,
                                        value_length, timestamp_ns, sequence);
    /* Next after anything sent so far, so sequences keep increasing even after send_raw. */
    uint64_t assigned = producer->acks ? producer->highest_sent + 1 : 0;
    result = producer_emit_record(producer, topic, topic_length, key, key_length, value,
                                  value_length, timestamp_ns, assigned);
    if (result < 0) return result;
    if (producer->acks) producer->highest_sent = assigned;
    if (sequence != NULL) *sequence = assigned;
    return 0;
}

/* What producer_scan finds in an encoded Record (last occurrences win). */
struct producer_scanned {
    bool parsed; /* every field was readable */
    uint64_t sequence;
    bool has_producer_id;
    size_t topic_offset;
    size_t topic_length;
};

static void producer_scan_field(struct producer_scanned *scanned, uint64_t tag, uint64_t number,
                                size_t position) {
    uint32_t wire_type = (uint32_t)(tag & 7);
    uint64_t field = tag >> 3;
    if (wire_type == 0 && field == intake_v1_Record_sequence_tag) scanned->sequence = number;
    if (wire_type == 2 && field == intake_v1_Record_producer_id_tag)
        scanned->has_producer_id = true;
    if (wire_type == 2 && field == intake_v1_Record_topic_tag) {
        scanned->topic_offset = position;
        scanned->topic_length = (size_t)number;
    }
}

static struct producer_scanned producer_scan(const uint8_t *bytes, size_t length) {
    struct producer_scanned scanned = {0};
    size_t position = 0;
    while (position < length) {
        uint64_t tag = 0;
        uint64_t number = 0;
        size_t used = 0;
        if (varint_decode(bytes + position, length - position, &tag, &used) != VARINT_OK)
            return scanned;
        position += used;
        uint32_t wire_type = (uint32_t)(tag & 7);
        if (wire_type == 0 || wire_type == 2) {
            if (varint_decode(bytes + position, length - position, &number, &used) != VARINT_OK)
                return scanned;
            position += used;
            if (wire_type == 2 && number > length - position) return scanned;
            producer_scan_field(&scanned, tag, number, position);
            if (wire_type == 2) position += (size_t)number;
        } else if (wire_type == 1 || wire_type == 5) {
            size_t width = wire_type == 1 ? 8 : 4;
            if (width > length - position) return scanned;
            position += width;
        } else {
            return scanned;
        }
    }
    scanned.parsed = true;
    return scanned;
}

/* Idempotent raw record: the caller's bytes, then the sequence and producer_id fields. */
static int producer_send_raw_idempotent(struct intake_producer *producer, const uint8_t *record,
                                        size_t length, uint64_t *sequence) {
    struct producer_session *session = &producer->session;
    struct producer_scanned scanned = producer_scan(record, length);
    if (scanned.parsed && (scanned.sequence != 0 || scanned.has_producer_id))
        return producer_error(producer, -EINVAL, false,
                              "an idempotent producer sets the sequence and producer_id itself: "
                              "the raw record must not carry fields 5 or 7");
    uint64_t assigned = session->next_sequence;
    size_t body =
        length + 1 + varint_length(assigned) + producer_field_bytes(session->producer_id_length);
    size_t frame = varint_length(body) + body;
    int64_t offset = producer_window_reserve(producer, frame);
    if (offset < 0) return (int)offset;
    uint8_t *out = session->window.bytes + offset;
    size_t prefix = varint_encode(body, out);
    if (length > 0) memcpy(out + prefix, record, length);
    size_t written = prefix + length;
    out[written++] = 0x28;
    written += varint_encode(assigned, out + written);
    written += producer_put_tag_length(out + written, 0x3a, session->producer_id_length);
    memcpy(out + written, session->producer_id, session->producer_id_length);
    written += session->producer_id_length;
    INTAKE_ASSERT(written == frame);
    bool topic_known = scanned.parsed && scanned.topic_length <= INTAKE_PRODUCER_TOPIC_BYTES_MAX;
    if (sequence != NULL) *sequence = assigned;
    return producer_window_commit(producer, (uint32_t)offset, (uint32_t)frame,
                                  topic_known ? (uint32_t)(prefix + scanned.topic_offset) : 0,
                                  topic_known ? (uint32_t)scanned.topic_length : 0, assigned);
}

int intake_producer_send_raw(struct intake_producer *producer, const void *record, size_t length,
                             uint64_t *sequence) {
    INTAKE_ASSERT(producer != NULL);
    INTAKE_ASSERT(record != NULL || length == 0);
    if (producer->failed) return producer->failed;
    if (producer->idempotent)
        return producer_send_raw_idempotent(producer, record, length, sequence);
    uint8_t prefix[VARINT_BYTES_MAX];
    size_t prefix_length = varint_encode(length, prefix);
    int result = producer_emit(producer, prefix, prefix_length);
    if (result == 0) result = producer_emit(producer, record, length);
    if (result < 0) return result;
    struct producer_scanned scanned = producer_scan(record, length);
    uint64_t found = scanned.parsed ? scanned.sequence : 0;
    if (found > producer->highest_sent) producer->highest_sent = found;
    if (sequence != NULL) *sequence = found;
    return 0;
}

/* --- flushing, acks, reports --- */

int intake_producer_flush(struct intake_producer *producer) {
    INTAKE_ASSERT(producer != NULL);
    if (!producer->idempotent) return producer_plain_flush(producer);
    uint64_t deadline_ns = intake_now_ns() + (uint64_t)producer->io_timeout_ms * 1000000u;
    int result = producer_session_run(producer, PRODUCER_GOAL_FLUSHED, 0, deadline_ns);
    if (result == -ETIMEDOUT)
        return producer_error(producer, -ETIMEDOUT, false, "intake accepted no data for %u ms",
                              producer->io_timeout_ms);
    return result;
}

static int producer_wait_idempotent(struct intake_producer *producer, uint64_t sequence,
                                    int timeout_ms) {
    struct producer_session *session = &producer->session;
    uint64_t deadline_ns =
        timeout_ms < 0 ? UINT64_MAX : intake_now_ns() + (uint64_t)timeout_ms * 1000000u;
    int result = producer_session_run(producer, PRODUCER_GOAL_FINISHED, sequence,
                                      deadline_ns == 0 ? 1 : deadline_ns);
    if (result == -ETIMEDOUT)
        return producer_error(producer, -ETIMEDOUT, false,
                              "no ack for sequence %llu within %d ms (%u pending; %s)",
                              (unsigned long long)sequence, timeout_ms,
                              producer_window_count(&session->window), producer_state(producer));
    if (result < 0) return result;
    return producer_session_take_failures(producer, sequence);
}

int intake_producer_wait_acks(struct intake_producer *producer, uint64_t sequence, int timeout_ms) {
    INTAKE_ASSERT(producer != NULL);
    if (producer->failed) return producer->failed;
    uint64_t highest = intake_producer_last_sequence(producer);
    if (sequence > highest)
        return producer_error(producer, -EINVAL, false,
                              "cannot wait for sequence %llu: highest sent is %llu",
                              (unsigned long long)sequence, (unsigned long long)highest);
    if (producer->idempotent) return producer_wait_idempotent(producer, sequence, timeout_ms);
    return producer_plain_wait_acks(producer, sequence, timeout_ms);
}

int intake_producer_poll(struct intake_producer *producer, int timeout_ms) {
    INTAKE_ASSERT(producer != NULL);
    if (!producer->idempotent) return producer_plain_flush(producer);
    if (producer->failed) return producer->failed;
    uint64_t before = producer->session.reports;
    uint64_t deadline_ns = timeout_ms <= 0 ? 0 : intake_now_ns() + (uint64_t)timeout_ms * 1000000u;
    int result = producer_session_run(producer, PRODUCER_GOAL_REPORTED, 0, deadline_ns);
    if (result < 0 && result != -ETIMEDOUT) return result;
    return (int)(producer->session.reports - before);
}

uint64_t intake_producer_acked(const struct intake_producer *producer) {
    if (!producer->idempotent) return producer->acked;
    const struct producer_window *window = &producer->session.window;
    if (window->end == window->first) return producer->session.next_sequence - 1;
    return window->records[window->first % window->records_capacity].sequence - 1;
}

uint64_t intake_producer_last_sequence(const struct intake_producer *producer) {
    return producer->idempotent ? producer->session.next_sequence - 1 : producer->highest_sent;
}

const void *intake_producer_id(const struct intake_producer *producer, size_t *length) {
    *length = producer->idempotent ? producer->session.producer_id_length : 0;
    return producer->session.producer_id;
}

void intake_producer_stats(const struct intake_producer *producer,
                           struct intake_producer_stats *stats) {
    *stats = producer->session.stats;
    stats->pending = producer->idempotent ? producer_window_count(&producer->session.window) : 0;
}

const char *intake_producer_last_error(const struct intake_producer *producer) {
    return producer->error;
}
