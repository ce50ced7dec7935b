/*
 * tail_output.c: intake-tail's record printers (see tail_output.h). Single-threaded.
 */
#include "tail_output.h"

#include <inttypes.h>
#include <stdbool.h>
#include <string.h>

#include "common.h"
#include "varint.h"

/* ---- a protobuf field walker over one encoded message ---- */

struct pb_field {
    uint32_t number;
    uint32_t wire_type;
    uint64_t value;       /* varint, fixed64 and fixed32 fields */
    const uint8_t *bytes; /* length-delimited fields */
    uint64_t length;
};

/* Reads the next field at *cursor; 1 with *field set, 0 at the end, -1 when malformed. */
static int pb_field_next(const uint8_t **cursor, const uint8_t *end, struct pb_field *field) {
    if (*cursor == end) return 0;
    uint64_t tag = 0;
    size_t used = 0;
    if (varint_decode(*cursor, (size_t)(end - *cursor), &tag, &used) != VARINT_OK) return -1;
    *cursor += used;
    field->number = (uint32_t)(tag >> 3);
    field->wire_type = (uint32_t)(tag & 7);
    if (field->number == 0 || tag >> 3 > UINT32_MAX) return -1;
    size_t left = (size_t)(end - *cursor);
    switch (field->wire_type) {
    case 0:
        if (varint_decode(*cursor, left, &field->value, &used) != VARINT_OK) return -1;
        *cursor += used;
        return 1;
    case 1:
    case 5: {
        size_t width = field->wire_type == 1 ? 8 : 4;
        if (left < width) return -1;
        field->value = 0;
        memcpy(&field->value, *cursor, width); /* little-endian host */
        *cursor += width;
        return 1;
    }
    case 2:
        if (varint_decode(*cursor, left, &field->length, &used) != VARINT_OK) return -1;
        *cursor += used;
        if (field->length > (uint64_t)(end - *cursor)) return -1;
        field->bytes = *cursor;
        *cursor += field->length;
        return 1;
    default: return -1; /* groups (3, 4) never appear in intake.proto */
    }
}

struct record_fields {
    struct text topic, key, value;
    uint64_t timestamp_ns;
    uint32_t header_count;
};

/* Walks a Record; the last occurrence of a singular field wins (protobuf's rule). */
static int record_fields_read(const uint8_t *bytes, uint64_t length, struct record_fields *out) {
    static const uint8_t empty[1] = {0};
    memset(out, 0, sizeof(*out));
    out->topic = out->key = out->value = (struct text){empty, 0}; /* absent means empty */
    const uint8_t *cursor = bytes, *end = bytes + length;
    struct pb_field field;
    int result;
    while ((result = pb_field_next(&cursor, end, &field)) == 1) {
        bool delimited = field.wire_type == 2;
        struct text text = {field.bytes, field.length};
        if (field.number == 1 && delimited)
            out->topic = text;
        else if (field.number == 2 && delimited)
            out->key = text;
        else if (field.number == 3 && delimited)
            out->value = text;
        else if (field.number == 4 && field.wire_type == 0)
            out->timestamp_ns = field.value;
        else if (field.number == 6 && delimited)
            out->header_count++;
    }
    return result;
}

/* Reads a Header message's key (1) and value (2). */
static int header_fields_read(struct text message, struct text *key, struct text *value) {
    const uint8_t *cursor = message.bytes, *end = message.bytes + message.length;
    struct pb_field field;
    int result;
    *key = (struct text){(const uint8_t *)"", 0};
    *value = *key;
    while ((result = pb_field_next(&cursor, end, &field)) == 1) {
        if (field.wire_type != 2) continue;
        if (field.number == 1) *key = (struct text){field.bytes, field.length};
        if (field.number == 2) *value = (struct text){field.bytes, field.length};
    }
    return result;
}

/* ---- output ---- */

/* Printable: valid UTF-8 without control characters, so it prints as-is on one line. */
static bool text_printable(struct text text) {
    for (uint64_t index = 0; index < text.length; index++)
        if (text.bytes[index] < 0x20 || text.bytes[index] == 0x7f) return false;
    uint32_t state = 0;
    return intake_utf8_feed(&state, text.bytes, (size_t)text.length) && state == 0;
}

static void base64_write(FILE *out, struct text text) {
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint64_t index = 0;
    for (; index + 3 <= text.length; index += 3) {
        uint32_t group = (uint32_t)text.bytes[index] << 16 | (uint32_t)text.bytes[index + 1] << 8 |
                         text.bytes[index + 2];
        fputc(alphabet[group >> 18], out);
        fputc(alphabet[(group >> 12) & 63], out);
        fputc(alphabet[(group >> 6) & 63], out);
        fputc(alphabet[group & 63], out);
    }
    uint64_t left = text.length - index;
    if (left == 0) return;
    uint32_t group = (uint32_t)text.bytes[index] << 16;
    if (left == 2) group |= (uint32_t)text.bytes[index + 1] << 8;
    fputc(alphabet[group >> 18], out);
    fputc(alphabet[(group >> 12) & 63], out);
    fputc(left == 2 ? alphabet[(group >> 6) & 63] : '=', out);
    fputc('=', out);
}

/* Printable text is free of control characters: only '"' and '\\' need escaping. */
static void json_string_write(FILE *out, struct text text) {
    fputc('"', out);
    for (uint64_t index = 0; index < text.length; index++) {
        uint8_t byte = text.bytes[index];
        if (byte == '"' || byte == '\\') fputc('\\', out);
        fputc(byte, out);
    }
    fputc('"', out);
}

/* ,"name":"text" when printable, else ,"name_base64":"..." */
static void json_field_write(FILE *out, const char *name, struct text text, bool comma) {
    bool printable = text_printable(text);
    fprintf(out, "%s\"%s%s\":", comma ? "," : "", name, printable ? "" : "_base64");
    if (printable) {
        json_string_write(out, text);
        return;
    }
    fputc('"', out);
    base64_write(out, text);
    fputc('"', out);
}

static void json_headers_write(FILE *out, struct text record) {
    const uint8_t *cursor = record.bytes, *end = record.bytes + record.length;
    struct pb_field field;
    bool first = true;
    fputs(",\"headers\":[", out);
    while (pb_field_next(&cursor, end, &field) == 1) {
        if (field.number != 6 || field.wire_type != 2) continue;
        struct text key, value;
        if (header_fields_read((struct text){field.bytes, field.length}, &key, &value) < 0)
            continue;
        fputs(first ? "{" : ",{", out);
        json_field_write(out, "key", key, false);
        json_field_write(out, "value", value, true);
        fputc('}', out);
        first = false;
    }
    fputc(']', out);
}

void record_json_write(FILE *out, const struct intake_consumer_record *record, struct text bytes,
                       const char *log_topic) {
    fputc('{', out);
    /* Following several topics: the log's topic first, for every record, even a malformed
     * one (the record's own topic field is the same, and is then not repeated). */
    if (log_topic != NULL) {
        json_field_write(out, "topic", (struct text){(const uint8_t *)log_topic, strlen(log_topic)},
                         false);
        fputc(',', out);
    }
    /* The principal's tag as 16 hex digits: a JSON number above 2^53 loses precision. */
    fprintf(out,
            "\"offset\":%" PRIu64 ",\"sequence\":%" PRIu64 ",\"receive_time_ns\":%" PRIu64
            ",\"principal\":\"%016" PRIx64 "\"",
            record->offset, record->sequence, record->receive_time_ns, record->principal);
    struct record_fields fields;
    if (record_fields_read(bytes.bytes, bytes.length, &fields) < 0) {
        fputs(",\"malformed\":true", out);
        json_field_write(out, "record", bytes, true);
        fputs("}\n", out);
        return;
    }
    if (log_topic == NULL) json_field_write(out, "topic", fields.topic, true);
    json_field_write(out, "key", fields.key, true);
    json_field_write(out, "value", fields.value, true);
    fprintf(out, ",\"timestamp_ns\":%" PRIu64, fields.timestamp_ns);
    json_headers_write(out, bytes);
    fputs("}\n", out);
}

static void text_field_write(FILE *out, const char *name, struct text text) {
    bool printable = text_printable(text);
    fprintf(out, " %s%s=", name, printable ? "" : "_base64");
    if (printable && text.length != 0)
        fwrite(text.bytes, 1, (size_t)text.length, out);
    else
        base64_write(out, text);
}

void record_text_write(FILE *out, const struct intake_consumer_record *record, struct text bytes,
                       const char *log_topic) {
    if (log_topic != NULL) fprintf(out, "%s ", log_topic);
    fprintf(out, "%" PRIu64 " %" PRIu64, record->offset, record->sequence);
    struct record_fields fields;
    if (record_fields_read(bytes.bytes, bytes.length, &fields) < 0) {
        text_field_write(out, "malformed_record", bytes);
    } else {
        text_field_write(out, "key", fields.key);
        text_field_write(out, "value", fields.value);
    }
    fputc('\n', out);
}

/* Exactly as on the wire: varint length, then the record's bytes. */
void record_raw_write(FILE *out, struct text bytes) {
    uint8_t prefix[VARINT_BYTES_MAX];
    size_t prefix_length = varint_encode(bytes.length, prefix);
    fwrite(prefix, 1, prefix_length, out);
    fwrite(bytes.bytes, 1, (size_t)bytes.length, out);
}
