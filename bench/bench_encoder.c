/*
 * bench_encoder.c: intake-bench's own encoder (bench_encoder.h): a batch of intake.v1.Records
 * or NATS PUBs encoded once per producer, stamps patched per write, and the stamp itself (send
 * time and tag at the start of every value). Each producer thread owns its batch.
 */
#include "bench_encoder.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "varint.h"

void put_u64_le(uint8_t *out, uint64_t value) {
    for (int index = 0; index < 8; index++) out[index] = (uint8_t)(value >> (8 * index));
}

uint64_t get_u64_le(const uint8_t *bytes) {
    uint64_t value = 0;
    for (int index = 7; index >= 0; index--) value = (value << 8) | bytes[index];
    return value;
}

uint64_t make_tag(uint32_t connection_index, uint64_t record_number) {
    return ((uint64_t)connection_index << BENCH_TAG_INDEX_SHIFT) | record_number;
}

uint32_t batch_value_bytes(const struct bench_options *options, uint32_t position) {
    return options->sizes[position % options->size_count];
}

/* Topic of batch position `position` of connection `index`: connections spread over topics
 * first, then positions, so 16 connections with batch 64 reach up to 1,024 topics. */
uint32_t batch_topic(const struct bench_options *options, uint32_t index, uint32_t position) {
    return (uint32_t)(((uint64_t)index + (uint64_t)position * options->connection_count) %
                      options->topic_count);
}

static size_t batch_capacity_needed(const struct bench_options *options) {
    size_t capacity = 0;
    for (uint32_t position = 0; position < options->batch_records; position++)
        capacity += batch_value_bytes(options, position) + BENCH_TOPIC_NAME_BYTES_MAX +
                    BENCH_PRODUCER_ID_BYTES_MAX + 64;
    return capacity;
}

int batch_init(struct batch *batch, const struct bench_options *options) {
    memset(batch, 0, sizeof *batch);
    batch->capacity = batch_capacity_needed(options);
    batch->record_count = options->batch_records;
    batch->bytes = malloc(batch->capacity);
    batch->record_end = calloc(options->batch_records, sizeof *batch->record_end);
    batch->stamp_offset = calloc(options->batch_records, sizeof *batch->stamp_offset);
    if (!batch->bytes || !batch->record_end || !batch->stamp_offset) return -ENOMEM;
    return 0;
}

void batch_destroy(struct batch *batch) {
    free(batch->bytes);
    free(batch->record_end);
    free(batch->stamp_offset);
}

/* The value: room for the stamp, then filler. */
static size_t put_value(uint8_t *out, uint32_t value_bytes) {
    INTAKE_ASSERT(value_bytes >= BENCH_STAMP_BYTES);
    memset(out, 0, BENCH_STAMP_BYTES);
    memset(out + BENCH_STAMP_BYTES, 'v', value_bytes - BENCH_STAMP_BYTES);
    return value_bytes;
}

/* One delimited intake.v1.Record: topic (1), value (3), sequence (5) when nonzero, and
 * producer_id (7) when not NULL (issue 12; an unknown field to a daemon that predates it). */
static size_t encode_intake_record(uint8_t *out, const char *topic, uint32_t value_bytes,
                                   uint64_t sequence, const char *producer_id,
                                   uint32_t *stamp_offset) {
    size_t topic_bytes = strlen(topic);
    size_t id_bytes = producer_id ? strlen(producer_id) : 0;
    INTAKE_ASSERT(id_bytes <= BENCH_PRODUCER_ID_BYTES_MAX);
    size_t frame_bytes = 1 + varint_length(topic_bytes) + topic_bytes + 1 +
                         varint_length(value_bytes) + value_bytes +
                         (sequence ? 1 + varint_length(sequence) : 0) +
                         (producer_id ? 1 + varint_length(id_bytes) + id_bytes : 0);
    size_t at = varint_encode(frame_bytes, out);
    size_t frame_start = at;
    out[at++] = 0x0a; /* field 1, length-delimited */
    at += varint_encode(topic_bytes, out + at);
    memcpy(out + at, topic, topic_bytes);
    at += topic_bytes;
    out[at++] = 0x1a; /* field 3, length-delimited */
    at += varint_encode(value_bytes, out + at);
    *stamp_offset = (uint32_t)at;
    at += put_value(out + at, value_bytes);
    if (sequence) {
        out[at++] = 0x28; /* field 5, varint */
        at += varint_encode(sequence, out + at);
    }
    if (producer_id) {
        out[at++] = 0x3a; /* field 7, length-delimited */
        at += varint_encode(id_bytes, out + at);
        memcpy(out + at, producer_id, id_bytes);
        at += id_bytes;
    }
    INTAKE_ASSERT(at - frame_start == frame_bytes);
    return at;
}

/* One NATS "PUB subject length\r\n<payload>\r\n". */
static size_t encode_nats_publish(uint8_t *out, const char *subject, uint32_t value_bytes,
                                  uint32_t *stamp_offset) {
    int header = sprintf((char *)out, "PUB %s %u\r\n", subject, value_bytes);
    INTAKE_ASSERT(header > 0);
    size_t at = (size_t)header;
    *stamp_offset = (uint32_t)at;
    at += put_value(out + at, value_bytes);
    out[at++] = '\r';
    out[at++] = '\n';
    return at;
}

/* Encodes a full batch for connection `index`; first_sequence 0 means no sequences (no acks);
 * producer_id NULL means no field 7. */
void batch_encode(struct batch *batch, const struct bench_options *options, uint32_t index,
                  uint64_t first_sequence, const char *producer_id) {
    size_t at = 0;
    batch->payload_bytes = 0;
    for (uint32_t position = 0; position < batch->record_count; position++) {
        char name[BENCH_TOPIC_NAME_BYTES_MAX];
        uint32_t topic = batch_topic(options, index, position);
        uint32_t value_bytes = batch_value_bytes(options, position);
        uint32_t stamp_offset = 0;
        size_t record_start = at;
        INTAKE_ASSERT(at + value_bytes + BENCH_TOPIC_NAME_BYTES_MAX + BENCH_PRODUCER_ID_BYTES_MAX +
                          64 <=
                      batch->capacity);
        if (options->target == TARGET_NATS) {
            snprintf(name, sizeof name, BENCH_NATS_SUBJECT_PREFIX "%u", topic);
            at += encode_nats_publish(batch->bytes + at, name, value_bytes, &stamp_offset);
        } else {
            snprintf(name, sizeof name, BENCH_INTAKE_TOPIC_PREFIX "%u", topic);
            uint64_t sequence = first_sequence ? first_sequence + position : 0;
            at += encode_intake_record(batch->bytes + at, name, value_bytes, sequence, producer_id,
                                       &stamp_offset);
        }
        batch->stamp_offset[position] = (uint32_t)(record_start + stamp_offset);
        batch->record_end[position] = (uint32_t)at;
        batch->payload_bytes += value_bytes;
    }
}

/* Writes the send time and tags into the first `record_count` stamps, just before the write. */
void batch_stamp(struct batch *batch, uint32_t record_count, uint32_t index,
                 uint64_t first_record_number, uint64_t now_ns) {
    INTAKE_ASSERT(record_count <= batch->record_count);
    for (uint32_t position = 0; position < record_count; position++) {
        uint8_t *stamp = batch->bytes + batch->stamp_offset[position];
        put_u64_le(stamp, now_ns);
        put_u64_le(stamp + 8, make_tag(index, first_record_number + position));
    }
}
