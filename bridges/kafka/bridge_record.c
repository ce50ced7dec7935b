/*
 * bridge_record.c: parses an encoded intake.v1.Record in place (see bridge_record.h). A small
 * guarded scan of protobuf's wire format rather than nanopb: the bridge needs only pointers to
 * key, value and headers, and the bytes stay where they are until librdkafka copies them.
 */
#include "bridge_record.h"

#include <stdbool.h>

#include "varint.h"

enum {
    WIRE_VARINT = 0,
    WIRE_FIXED64 = 1,
    WIRE_LENGTH = 2,
    WIRE_FIXED32 = 5,
    FIELD_RECORD_TOPIC = 1,
    FIELD_RECORD_KEY = 2,
    FIELD_RECORD_VALUE = 3,
    FIELD_RECORD_TIMESTAMP = 4,
    FIELD_RECORD_HEADERS = 6,
    FIELD_HEADER_KEY = 1,
    FIELD_HEADER_VALUE = 2,
};

/* One field: its number, wire type, and for WIRE_LENGTH its bytes, for WIRE_VARINT its value. */
struct wire_field {
    uint64_t number;
    uint32_t wire_type;
    uint64_t varint;
    struct bridge_bytes bytes;
};

/* Reads the field at *at (advancing it) without reading past `end`. Returns 0 or -1. */
static int wire_field_next(const uint8_t **at, const uint8_t *end, struct wire_field *field) {
    uint64_t tag;
    size_t used;
    if (varint_decode(*at, (size_t)(end - *at), &tag, &used) != VARINT_OK) return -1;
    *at += used;
    field->number = tag >> 3;
    field->wire_type = (uint32_t)(tag & 7);
    if (field->number == 0) return -1;
    size_t remaining = (size_t)(end - *at);
    switch (field->wire_type) {
    case WIRE_VARINT:
        if (varint_decode(*at, remaining, &field->varint, &used) != VARINT_OK) return -1;
        *at += used;
        return 0;
    case WIRE_FIXED64:
        if (remaining < 8) return -1;
        *at += 8;
        return 0;
    case WIRE_FIXED32:
        if (remaining < 4) return -1;
        *at += 4;
        return 0;
    case WIRE_LENGTH: {
        uint64_t length;
        if (varint_decode(*at, remaining, &length, &used) != VARINT_OK) return -1;
        *at += used;
        if (length > (uint64_t)(end - *at)) return -1;
        field->bytes.bytes = *at;
        field->bytes.length = (size_t)length;
        *at += length;
        return 0;
    }
    default: return -1; /* groups (3, 4) and reserved wire types */
    }
}

static int header_parse(struct bridge_bytes message, struct bridge_record_header *header) {
    const uint8_t *at = message.bytes;
    const uint8_t *end = message.bytes + message.length;
    *header = (struct bridge_record_header){0};
    while (at < end) {
        struct wire_field field;
        if (wire_field_next(&at, end, &field) != 0) return -1;
        bool known = field.number == FIELD_HEADER_KEY || field.number == FIELD_HEADER_VALUE;
        if (known && field.wire_type != WIRE_LENGTH) return -1;
        if (field.number == FIELD_HEADER_KEY) header->key = field.bytes;
        if (field.number == FIELD_HEADER_VALUE) header->value = field.bytes;
    }
    return 0;
}

enum bridge_record_result bridge_record_parse(const uint8_t *bytes, size_t length,
                                              struct bridge_record_view *view) {
    const uint8_t *at = bytes;
    const uint8_t *end = bytes + length;
    view->topic = view->key = view->value = (struct bridge_bytes){0};
    view->timestamp_ns = 0;
    view->header_count = 0;
    while (at < end) {
        struct wire_field field;
        if (wire_field_next(&at, end, &field) != 0) return BRIDGE_RECORD_MALFORMED;
        switch (field.number) {
        case FIELD_RECORD_TOPIC:
        case FIELD_RECORD_KEY:
        case FIELD_RECORD_VALUE:
        case FIELD_RECORD_HEADERS:
            if (field.wire_type != WIRE_LENGTH) return BRIDGE_RECORD_MALFORMED;
            break;
        case FIELD_RECORD_TIMESTAMP:
            if (field.wire_type != WIRE_VARINT) return BRIDGE_RECORD_MALFORMED;
            break;
        default: continue; /* unknown fields travel only in --value record */
        }
        if (field.number == FIELD_RECORD_TOPIC) view->topic = field.bytes;
        if (field.number == FIELD_RECORD_KEY) view->key = field.bytes;
        if (field.number == FIELD_RECORD_VALUE) view->value = field.bytes;
        if (field.number == FIELD_RECORD_TIMESTAMP) view->timestamp_ns = field.varint;
        if (field.number == FIELD_RECORD_HEADERS) {
            if (view->header_count == BRIDGE_RECORD_HEADERS_MAX)
                return BRIDGE_RECORD_TOO_MANY_HEADERS;
            if (header_parse(field.bytes, &view->headers[view->header_count]) != 0)
                return BRIDGE_RECORD_MALFORMED;
            view->header_count++;
        }
    }
    return BRIDGE_RECORD_OK;
}

const char *bridge_record_result_text(enum bridge_record_result result) {
    switch (result) {
    case BRIDGE_RECORD_OK: return "ok";
    case BRIDGE_RECORD_MALFORMED: return "the record does not parse as intake.v1.Record";
    case BRIDGE_RECORD_TOO_MANY_HEADERS:
        return "the record has more headers than the bridge keeps (64)";
    }
    return "unknown result";
}
