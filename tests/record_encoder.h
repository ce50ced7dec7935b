/*
 * record_encoder.h: the one protobuf writer the tests use to make intake.v1 messages
 * (proto/intake.proto) by hand, field by field, so that a test can also write what a
 * well-behaved encoder never would: fields repeated or out of order, unknown fields, other wire
 * types, a header's fields reversed. Header-only; any thread may use it (it counts no checks).
 *
 * The contract:
 *   1. An encoder writes into a buffer its caller owns (RECORD_ENCODER(array) for an array):
 *      bytes[0..length) is the message so far. A write that would pass `capacity` aborts the
 *      test with a line saying so: a test's own sizing error, never an overrun.
 *   2. record_encoder_bytes, _string and _uint append one field (wire types 2 and 0);
 *      record_encoder_tag and _raw write anything else a test needs. Field numbers are
 *      RECORD_FIELD_* (intake.v1.Record) and HEADER_FIELD_* (intake.v1.Header).
 *   3. record_encoder_header appends one Header {key, value} as field 6, key first.
 *   4. record_encode_fields writes the Record most tests send: topic, value, and sequence and
 *      producer_id when they are set (non-zero, non-NULL), in field order.
 *   5. record_encoder_delimited copies the message behind its varint length prefix (the framing
 *      on intake's wire) into `out`, and returns the frame's length.
 */
#ifndef INTAKE_TEST_RECORD_ENCODER_H
#define INTAKE_TEST_RECORD_ENCODER_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "varint.h"

/* intake.v1.Record's fields. */
enum {
    RECORD_FIELD_TOPIC = 1,
    RECORD_FIELD_KEY = 2,
    RECORD_FIELD_VALUE = 3,
    RECORD_FIELD_TIMESTAMP_NS = 4,
    RECORD_FIELD_SEQUENCE = 5,
    RECORD_FIELD_HEADERS = 6,
    RECORD_FIELD_PRODUCER_ID = 7,
};
/* intake.v1.Header's fields. */
enum { HEADER_FIELD_KEY = 1, HEADER_FIELD_VALUE = 2 };
/* Protobuf wire types. */
enum { WIRE_VARINT = 0, WIRE_FIXED64 = 1, WIRE_BYTES = 2, WIRE_FIXED32 = 5 };

struct record_encoder {
    uint8_t *bytes;
    size_t capacity;
    size_t length;
};

/* An encoder over a whole array (not a pointer). */
#define RECORD_ENCODER(array)                                                                      \
    { .bytes = (array), .capacity = sizeof(array), .length = 0 }

static inline void record_encoder_need(const struct record_encoder *encoder, size_t more) {
    if (encoder->length + more > encoder->capacity) {
        fprintf(stderr, "record_encoder: %zu + %zu bytes do not fit its %zu\n", encoder->length,
                more, encoder->capacity);
        abort();
    }
}

__attribute__((unused)) static void record_encoder_raw(struct record_encoder *encoder,
                                                       const void *bytes, size_t length) {
    record_encoder_need(encoder, length);
    if (length > 0) memcpy(encoder->bytes + encoder->length, bytes, length);
    encoder->length += length;
}

static inline void record_encoder_varint(struct record_encoder *encoder, uint64_t value) {
    uint8_t bytes[VARINT_BYTES_MAX];
    record_encoder_raw(encoder, bytes, varint_encode(value, bytes));
}

static inline void record_encoder_tag(struct record_encoder *encoder, uint32_t number,
                                      uint32_t wire_type) {
    record_encoder_varint(encoder, (uint64_t)number << 3 | wire_type);
}

static inline void record_encoder_bytes(struct record_encoder *encoder, uint32_t number,
                                        const void *bytes, size_t length) {
    record_encoder_tag(encoder, number, WIRE_BYTES);
    record_encoder_varint(encoder, length);
    record_encoder_raw(encoder, bytes, length);
}

__attribute__((unused)) static void record_encoder_string(struct record_encoder *encoder,
                                                          uint32_t number, const char *text) {
    record_encoder_bytes(encoder, number, text, strlen(text));
}

static inline void record_encoder_uint(struct record_encoder *encoder, uint32_t number,
                                       uint64_t value) {
    record_encoder_tag(encoder, number, WIRE_VARINT);
    record_encoder_varint(encoder, value);
}

/* One Header {key, value} of `key_length` and `value_length` bytes, as field 6. */
__attribute__((unused)) static void record_encoder_header(struct record_encoder *encoder,
                                                          const void *key, size_t key_length,
                                                          const void *value, size_t value_length) {
    uint8_t scratch[VARINT_BYTES_MAX];
    size_t inner = 2 + varint_encode(key_length, scratch) + key_length +
                   varint_encode(value_length, scratch) + value_length;
    record_encoder_tag(encoder, RECORD_FIELD_HEADERS, WIRE_BYTES);
    record_encoder_varint(encoder, inner);
    size_t start = encoder->length;
    record_encoder_bytes(encoder, HEADER_FIELD_KEY, key, key_length);
    record_encoder_bytes(encoder, HEADER_FIELD_VALUE, value, value_length);
    if (encoder->length - start != inner) abort(); /* the size above is this function's own */
}

/* What most tests send in a Record. */
struct record_fields {
    const char *topic;
    const void *value;
    size_t value_bytes;
    uint64_t sequence;       /* 0: not written */
    const char *producer_id; /* NULL: not written */
};

__attribute__((unused)) static void record_encode_fields(struct record_encoder *encoder,
                                                         const struct record_fields *fields) {
    record_encoder_string(encoder, RECORD_FIELD_TOPIC, fields->topic);
    record_encoder_bytes(encoder, RECORD_FIELD_VALUE, fields->value, fields->value_bytes);
    if (fields->sequence != 0)
        record_encoder_uint(encoder, RECORD_FIELD_SEQUENCE, fields->sequence);
    if (fields->producer_id != NULL)
        record_encoder_string(encoder, RECORD_FIELD_PRODUCER_ID, fields->producer_id);
}

/* The message behind its varint length prefix, into `out` (`capacity` bytes); its length. */
__attribute__((unused)) static size_t record_encoder_delimited(const struct record_encoder *encoder,
                                                               uint8_t *out, size_t capacity) {
    struct record_encoder frame = {.bytes = out, .capacity = capacity, .length = 0};
    record_encoder_varint(&frame, encoder->length);
    record_encoder_raw(&frame, encoder->bytes, encoder->length);
    return frame.length;
}

#endif
