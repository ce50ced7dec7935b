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

#include "client_abi.h"
#include "producer_internal.h"
#include "record_scan.h"

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

int intake_producer_open(const struct intake_producer_config *given, struct intake_producer **out,
                         char *why, size_t why_capacity) {
    char why_unused[8];
    if (why == NULL || why_capacity == 0) {
        why = why_unused;
        why_capacity = sizeof(why_unused);
    }
    why[0] = '\0';
    if (out == NULL || given == NULL) {
        snprintf(why, why_capacity, "intake_producer_open: config and producer are required");
        return -EINVAL;
    }
    *out = NULL;
    struct intake_producer_config config;
    int result = client_struct_in(&config, sizeof(config), CLIENT_PRODUCER_CONFIG_BYTES_V1, given,
                                  "intake_producer_config", why, why_capacity);
    if (result != 0) return result;
    if (config.address == NULL) {
        snprintf(why, why_capacity, "no address given");
        return -EINVAL;
    }
    if (config.producer_id == NULL && config.producer_id_length != 0) {
        snprintf(why, why_capacity, "producer_id_length is %zu but producer_id is NULL",
                 config.producer_id_length);
        return -EINVAL;
    }
    struct intake_producer *producer = calloc(1, sizeof(*producer));
    if (producer == NULL) {
        snprintf(why, why_capacity, "out of memory");
        return -ENOMEM;
    }
    producer->fd = -1;
    producer->batch_capacity =
        config.batch_bytes ? config.batch_bytes : INTAKE_PRODUCER_BATCH_BYTES_DEFAULT;
    producer->io_timeout_ms =
        config.io_timeout_ms ? config.io_timeout_ms : INTAKE_PRODUCER_IO_TIMEOUT_MS_DEFAULT;
    producer->idempotent = config.idempotent || config.producer_id != NULL;
    producer->acks = config.acks || producer->idempotent;
    snprintf(producer->address_text, sizeof(producer->address_text), "%s", config.address);
    result = producer_tls_open(&producer->tls, &config, why, why_capacity);
    if (result < 0) {
        free(producer);
        return result;
    }
    result = producer->idempotent ? producer_session_open(producer, &config, why, why_capacity)
                                  : producer_open_plain(producer, &config, why, why_capacity);
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

/* A record to encode, its arguments checked. */
struct producer_message {
    const char *topic;
    size_t topic_length;
    const uint8_t *key;
    size_t key_length;
    const uint8_t *value;
    size_t value_length;
    const struct intake_producer_header *headers;
    uint32_t header_count;
    uint64_t timestamp_ns;
};

static size_t producer_field_bytes(size_t payload_length) {
    return 1 + varint_length(payload_length) + payload_length;
}

static size_t producer_header_body(const struct intake_producer_header *header) {
    size_t body = 0;
    if (header->key_length > 0) body += producer_field_bytes(header->key_length);
    if (header->value_length > 0) body += producer_field_bytes(header->value_length);
    return body;
}

/* Bytes of a Record's body: fields 1..5 (key, value and a zero sequence omitted, as proto3
 * does), the headers (6), and the producer_id (7) when id_length is not 0. */
static size_t producer_message_body(const struct producer_message *message, uint64_t sequence,
                                    size_t id_length) {
    size_t body = producer_field_bytes(message->topic_length);
    if (message->key_length > 0) body += producer_field_bytes(message->key_length);
    if (message->value_length > 0) body += producer_field_bytes(message->value_length);
    body += 1 + varint_length(message->timestamp_ns);
    if (sequence != 0) body += 1 + varint_length(sequence);
    for (uint32_t index = 0; index < message->header_count; index++)
        body += producer_field_bytes(producer_header_body(&message->headers[index]));
    if (id_length > 0) body += producer_field_bytes(id_length);
    return body;
}

/* Where an encoding goes: straight into the idempotent window (`out`), or (plain) through the
 * batch, with tags and short fields staged so that a record costs a few emits, not one per
 * field. */
struct producer_sink {
    struct intake_producer *producer;
    uint8_t *out;
    size_t position; /* bytes encoded so far */
    int result;      /* the first emit error (plain) */
    size_t staged_length;
    uint8_t staged[PRODUCER_RECORD_OVERHEAD_MAX + INTAKE_PRODUCER_TOPIC_BYTES_MAX];
};

static void producer_sink_flush(struct producer_sink *sink) {
    if (sink->staged_length == 0) return;
    if (sink->result == 0)
        sink->result = producer_emit(sink->producer, sink->staged, sink->staged_length);
    sink->staged_length = 0;
}

/* Appends bytes; `small` ones are staged (plain), payloads go out as they are. */
static void producer_sink_put(struct producer_sink *sink, const void *bytes, size_t length,
                              bool small) {
    if (length == 0) return;
    if (sink->out != NULL) {
        memcpy(sink->out + sink->position, bytes, length);
    } else if (small && length <= sizeof(sink->staged)) {
        if (sink->staged_length + length > sizeof(sink->staged)) producer_sink_flush(sink);
        memcpy(sink->staged + sink->staged_length, bytes, length);
        sink->staged_length += length;
    } else {
        producer_sink_flush(sink);
        if (sink->result == 0) sink->result = producer_emit(sink->producer, bytes, length);
    }
    sink->position += length;
}

static void producer_sink_varint(struct producer_sink *sink, uint64_t value) {
    uint8_t bytes[VARINT_BYTES_MAX];
    producer_sink_put(sink, bytes, varint_encode(value, bytes), true);
}

/* A length-delimited field with tag byte `tag` (field number 1..15). */
static void producer_sink_bytes_field(struct producer_sink *sink, uint8_t tag, const void *bytes,
                                      size_t length, bool small) {
    producer_sink_put(sink, &tag, 1, true);
    producer_sink_varint(sink, length);
    producer_sink_put(sink, bytes, length, small);
}

/* Encodes the delimited frame (prefix and body) of `message`. *topic_offset: where the topic's
 * bytes start, from the frame's start. */
static void producer_encode(struct producer_sink *sink, const struct producer_message *message,
                            uint64_t sequence, const uint8_t *id, size_t id_length, size_t body,
                            uint32_t *topic_offset) {
    producer_sink_varint(sink, body);
    uint8_t tag = 0x0a;
    producer_sink_put(sink, &tag, 1, true);
    producer_sink_varint(sink, message->topic_length);
    *topic_offset = (uint32_t)sink->position;
    producer_sink_put(sink, message->topic, message->topic_length, true);
    if (message->key_length > 0)
        producer_sink_bytes_field(sink, 0x12, message->key, message->key_length, false);
    if (message->value_length > 0)
        producer_sink_bytes_field(sink, 0x1a, message->value, message->value_length, false);
    tag = 0x20;
    producer_sink_put(sink, &tag, 1, true);
    producer_sink_varint(sink, message->timestamp_ns);
    if (sequence != 0) {
        tag = 0x28;
        producer_sink_put(sink, &tag, 1, true);
        producer_sink_varint(sink, sequence);
    }
    for (uint32_t index = 0; index < message->header_count; index++) {
        const struct intake_producer_header *header = &message->headers[index];
        tag = 0x32;
        producer_sink_put(sink, &tag, 1, true);
        producer_sink_varint(sink, producer_header_body(header));
        if (header->key_length > 0)
            producer_sink_bytes_field(sink, 0x0a, header->key, header->key_length, false);
        if (header->value_length > 0)
            producer_sink_bytes_field(sink, 0x12, header->value, header->value_length, false);
    }
    if (id_length > 0) producer_sink_bytes_field(sink, 0x3a, id, id_length, true);
    producer_sink_flush(sink);
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

/* Checks a public record's pointers, lengths and header keys into *message. */
static int producer_check_record(struct intake_producer *producer,
                                 const struct intake_producer_record *record,
                                 struct producer_message *message) {
    int result = producer_check_topic(producer, record->topic, &message->topic_length);
    if (result < 0) return result;
    if ((record->key == NULL && record->key_length > 0) ||
        (record->value == NULL && record->value_length > 0))
        return producer_error(producer, -EINVAL, false, "a key or value length without its bytes");
    if (record->header_count > INTAKE_PRODUCER_HEADERS_MAX)
        return producer_error(producer, -EINVAL, false, "%u headers: at most %d per record",
                              record->header_count, INTAKE_PRODUCER_HEADERS_MAX);
    if (record->headers == NULL && record->header_count > 0)
        return producer_error(producer, -EINVAL, false, "header_count without headers");
    for (uint32_t index = 0; index < record->header_count; index++) {
        const struct intake_producer_header *header = &record->headers[index];
        if ((header->key == NULL && header->key_length > 0) ||
            (header->value == NULL && header->value_length > 0))
            return producer_error(producer, -EINVAL, false,
                                  "header %u: a key or value length without its bytes", index);
        uint32_t state = 0;
        if (!intake_utf8_feed(&state, header->key, header->key_length) || state != 0)
            return producer_error(producer, -EINVAL, false, "header %u: key is not valid UTF-8",
                                  index);
    }
    message->topic = record->topic;
    message->key = record->key;
    message->key_length = record->key_length;
    message->value = record->value;
    message->value_length = record->value_length;
    message->headers = record->headers;
    message->header_count = record->header_count;
    message->timestamp_ns = record->timestamp_ns ? record->timestamp_ns : intake_wall_ns();
    return 0;
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
    bool lead = false;
    int64_t offset = producer_session_room(producer, (uint32_t)length, &lead);
    if (offset >= 0) return offset;
    uint64_t deadline_ns =
        session->nonblocking ? 0 : intake_now_ns() + (uint64_t)producer->io_timeout_ms * 1000000u;
    int result = producer_session_run(producer, PRODUCER_GOAL_ROOM, length, deadline_ns);
    if (result < 0 && result != -ETIMEDOUT) return result;
    offset = producer_session_room(producer, (uint32_t)length, &lead);
    if (offset >= 0) return offset;
    if (lead)
        return producer_error(producer, -EAGAIN, false,
                              "%u sequences ahead of the highest sent, the most intake accepts "
                              "(INTAKE_PRODUCER_SEQUENCE_LEAD_MAX; %s)",
                              INTAKE_PRODUCER_SEQUENCE_LEAD_MAX, producer_state(producer));
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

static int producer_send_idempotent(struct intake_producer *producer,
                                    const struct producer_message *message, uint64_t *sequence) {
    struct producer_session *session = &producer->session;
    uint64_t assigned = session->next_sequence;
    size_t body = producer_message_body(message, assigned, session->producer_id_length);
    size_t frame = varint_length(body) + body;
    int64_t offset = producer_window_reserve(producer, frame);
    if (offset < 0) return (int)offset;
    struct producer_sink sink = {.producer = producer, .out = session->window.bytes + offset};
    uint32_t topic_offset = 0;
    producer_encode(&sink, message, assigned, session->producer_id, session->producer_id_length,
                    body, &topic_offset);
    INTAKE_ASSERT(sink.position == frame);
    if (sequence != NULL) *sequence = assigned;
    return producer_window_commit(producer, (uint32_t)offset, (uint32_t)frame, topic_offset,
                                  (uint32_t)message->topic_length, assigned);
}

static int producer_send_message(struct intake_producer *producer,
                                 const struct producer_message *message, uint64_t *sequence) {
    if (producer->idempotent) return producer_send_idempotent(producer, message, sequence);
    /* Next after anything sent so far, so sequences keep increasing even after send_raw. */
    uint64_t assigned = producer->acks ? producer->highest_sent + 1 : 0;
    size_t body = producer_message_body(message, assigned, 0);
    struct producer_sink sink = {.producer = producer};
    uint32_t topic_offset = 0;
    producer_encode(&sink, message, assigned, NULL, 0, body, &topic_offset);
    if (sink.result < 0) return sink.result;
    INTAKE_ASSERT(sink.position == varint_length(body) + body);
    if (producer->acks) producer->highest_sent = assigned;
    if (sequence != NULL) *sequence = assigned;
    return 0;
}

int intake_producer_send(struct intake_producer *producer, const char *topic, const void *key,
                         size_t key_length, const void *value, size_t value_length,
                         uint64_t timestamp_ns, uint64_t *sequence) {
    struct intake_producer_record record = {
        .struct_bytes = sizeof(record),
        .topic = topic,
        .key = key,
        .key_length = key_length,
        .value = value,
        .value_length = value_length,
        .timestamp_ns = timestamp_ns,
    };
    return intake_producer_send_record(producer, &record, sequence);
}

int intake_producer_send_record(struct intake_producer *producer,
                                const struct intake_producer_record *given, uint64_t *sequence) {
    if (producer == NULL) return -EINVAL;
    if (producer->failed) return producer->failed;
    if (given == NULL) return producer_error(producer, -EINVAL, false, "no record given");
    struct intake_producer_record record;
    char why[PRODUCER_ERROR_BYTES];
    int result = client_struct_in(&record, sizeof(record), CLIENT_PRODUCER_RECORD_BYTES_V1, given,
                                  "intake_producer_record", why, sizeof(why));
    if (result < 0) return producer_error(producer, result, false, "%s", why);
    struct producer_message message;
    result = producer_check_record(producer, &record, &message);
    if (result < 0) return result;
    return producer_send_message(producer, &message, sequence);
}

/* What a raw record says that the producer needs: its sequence, whether it carries a
 * producer_id, where its topic is. From the wire stage's field reader (record_scan_structure):
 * `parsed` when every field is readable, even if the record breaks a rule intake will refuse
 * it for (that is intake's to answer). */
struct producer_scanned {
    bool parsed;
    uint64_t sequence;
    bool has_producer_id;
    size_t topic_offset;
    size_t topic_length;
};

static struct producer_scanned producer_scan(const uint8_t *bytes, size_t length) {
    struct producer_scanned scanned = {0};
    if (length > UINT32_MAX) return scanned;
    struct slice slice = {bytes, (uint32_t)length, 0};
    struct record_view view = {&slice, length > 0 ? 1 : 0, (uint32_t)length};
    struct record_scan scan;
    if (record_scan_structure(&view, &scan) != RECORD_SCAN_OK) return scanned;
    scanned.parsed = true;
    scanned.sequence = scan.sequence;
    scanned.has_producer_id = scan.producer_id_length > 0;
    scanned.topic_offset = scan.topic_offset;
    scanned.topic_length = scan.topic_length;
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
    out[written++] = 0x3a;
    written += varint_encode(session->producer_id_length, out + written);
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
    if (producer == NULL) return -EINVAL;
    if (producer->failed) return producer->failed;
    if (record == NULL && length > 0)
        return producer_error(producer, -EINVAL, false, "a raw record length without its bytes");
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
    if (producer == NULL) return -EINVAL;
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
        timeout_ms < 0 ? UINT64_MAX : intake_deadline_ns((uint64_t)timeout_ms * 1000000u);
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
    if (producer == NULL) return -EINVAL;
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
    if (producer == NULL) return -EINVAL;
    if (!producer->idempotent) return producer_plain_flush(producer);
    if (producer->failed) return producer->failed;
    uint64_t before = producer->session.reports;
    uint64_t deadline_ns = timeout_ms <= 0 ? 0 : intake_now_ns() + (uint64_t)timeout_ms * 1000000u;
    int result = producer_session_run(producer, PRODUCER_GOAL_REPORTED, 0, deadline_ns);
    if (result < 0 && result != -ETIMEDOUT) return result;
    return (int)(producer->session.reports - before);
}

uint64_t intake_producer_acked(const struct intake_producer *producer) {
    if (producer == NULL) return 0;
    if (!producer->idempotent) return producer->acked;
    const struct producer_window *window = &producer->session.window;
    if (window->end == window->first) return producer->session.next_sequence - 1;
    return window->records[window->first % window->records_capacity].sequence - 1;
}

uint64_t intake_producer_last_sequence(const struct intake_producer *producer) {
    if (producer == NULL) return 0;
    return producer->idempotent ? producer->session.next_sequence - 1 : producer->highest_sent;
}

const void *intake_producer_id(const struct intake_producer *producer, size_t *length) {
    size_t id_length =
        producer != NULL && producer->idempotent ? producer->session.producer_id_length : 0;
    if (length != NULL) *length = id_length;
    return producer != NULL ? producer->session.producer_id : NULL;
}

void intake_producer_stats(const struct intake_producer *producer,
                           struct intake_producer_stats *stats) {
    if (producer == NULL || stats == NULL) return;
    struct intake_producer_stats ours = producer->session.stats;
    ours.struct_bytes = sizeof(ours);
    ours.pending = producer->idempotent ? producer_window_count(&producer->session.window) : 0;
    (void)client_struct_out(stats, &ours, sizeof(ours), CLIENT_PRODUCER_STATS_BYTES_V1);
}

const char *intake_producer_last_error(const struct intake_producer *producer) {
    if (producer == NULL) return "no producer (NULL)";
    return producer->error;
}
