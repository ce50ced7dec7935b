/*
 * tail_output.c: intake-tail's record printers (see tail_output.h). Single-threaded.
 */
#include "tail_output.h"

#include <inttypes.h>
#include <stdbool.h>
#include <string.h>

#include "common.h"
#include "varint.h"

/* ---- the record's fields, from the consumer library's parser ---- */

/* A field as text: absent means empty (proto3 cannot tell them apart). */
static struct text text_of(struct intake_bytes field) {
    static const uint8_t empty[1] = {0};
    return field.bytes != NULL ? (struct text){field.bytes, field.length} : (struct text){empty, 0};
}

/* intake_record_parse over a copy of the record's bytes: 0, or -EBADMSG when it does not parse. */
static int record_fields_read(struct text bytes, struct intake_record_view *view) {
    *view = (struct intake_record_view)INTAKE_RECORD_VIEW_INIT;
    return intake_record_parse(bytes.bytes, (size_t)bytes.length, view);
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

static void json_headers_write(FILE *out, const struct intake_record_view *view) {
    struct intake_record_header_iterator iterator;
    struct intake_record_header header;
    bool first = true;
    fputs(",\"headers\":[", out);
    intake_record_headers(view, &iterator);
    while (intake_record_header_next(&iterator, &header) == 1) {
        fputs(first ? "{" : ",{", out);
        json_field_write(out, "key", text_of(header.key), false);
        json_field_write(out, "value", text_of(header.value), true);
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
    fprintf(out, "\"offset\":%" PRIu64 ",\"sequence\":%" PRIu64 ",\"receive_time_ns\":%" PRIu64,
            record->offset, record->sequence, record->receive_time_ns);
    struct intake_record_view fields;
    if (record_fields_read(bytes, &fields) < 0) {
        fputs(",\"malformed\":true", out);
        json_field_write(out, "record", bytes, true);
        fputs("}\n", out);
        return;
    }
    if (log_topic == NULL) json_field_write(out, "topic", text_of(fields.topic), true);
    json_field_write(out, "key", text_of(fields.key), true);
    json_field_write(out, "value", text_of(fields.value), true);
    fprintf(out, ",\"timestamp_ns\":%" PRIu64, fields.timestamp_ns);
    json_headers_write(out, &fields);
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
    struct intake_record_view fields;
    if (record_fields_read(bytes, &fields) < 0) {
        text_field_write(out, "malformed_record", bytes);
    } else {
        text_field_write(out, "key", text_of(fields.key));
        text_field_write(out, "value", text_of(fields.value));
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
