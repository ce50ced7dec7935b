/*
 * record_scan.c: the wire-level check of one encoded intake.v1.Record over its slices, and the
 * FNV-1a topic hash, comparison and copy helpers (see record_scan.h).
 *
 * Pure functions over a read-only view; any thread. Nothing is copied or gathered: the scan
 * walks the slices with a slice_cursor, and every failure is a static detail string.
 */
#include "record_scan.h"

#include "slice_cursor.h"
#include "topic_hash.h"

/* Protobuf wire types. */
enum wire_type {
    WIRE_VARINT = 0,
    WIRE_FIXED64 = 1,
    WIRE_LENGTH_DELIMITED = 2,
    WIRE_GROUP_START = 3,
    WIRE_GROUP_END = 4,
    WIRE_FIXED32 = 5,
};

/* Largest field number protobuf allows (2^29 - 1). */
#define FIELD_NUMBER_MAX 536870911u

/* One decoded field: its number, wire type, and either a varint value or a value span. */
struct scan_field {
    uint32_t number;
    uint32_t wire_type;
    uint64_t varint_value; /* WIRE_VARINT */
    uint32_t value_offset; /* other wire types: where the value starts */
    uint32_t value_length;
    struct slice_cursor value_cursor; /* at value_offset, so nothing has to seek back */
};

/* The messages one nesting level uses, so record and header failures read differently. */
struct scan_messages {
    const char *tag_truncated;
    const char *tag_bad;
    const char *value_truncated;
    const char *value_bad;
    const char *length_past_end;
};

static const struct scan_messages record_messages = {
    "record ends inside a field tag",
    "field tag is not a valid varint",
    "record ends inside a field value",
    "varint field value is not a valid varint",
    "field length runs past the end of the record",
};

static const struct scan_messages header_messages = {
    "header ends inside a field tag",
    "header field tag is not a valid varint",
    "header ends inside a field value",
    "header varint field value is not a valid varint",
    "header field length runs past the end of the header",
};

/* Wire type errors for known fields of Record, indexed by field number. */
static const char *const record_wire_type_details[] = {
    NULL,
    "field 1 (topic) must have wire type 2 (length-delimited)",
    "field 2 (key) must have wire type 2 (length-delimited)",
    "field 3 (value) must have wire type 2 (length-delimited)",
    "field 4 (timestamp_ns) must have wire type 0 (varint)",
    "field 5 (sequence) must have wire type 0 (varint)",
    "field 6 (headers) must have wire type 2 (length-delimited)",
    "field 7 (producer_id) must have wire type 2 (length-delimited)",
};

/* Hello.producer_id: a frame carrying it is a Hello (record_scan.h). */
#define HELLO_FIELD_NUMBER 16u

static const char *const hello_wire_type_detail =
    "field 16 (Hello.producer_id) must have wire type 2 (length-delimited)";
static const char *const hello_mixed_detail =
    "a Hello frame (field 16) carries no other field, and a record carries no field 16";

/* Reads a tag and classifies it; returns NULL or a static detail. A tag cut off by `end` is
 * "truncated"; one cut off only by the bytes received so far is scan_more (see scan_fields). */
static const char *const scan_more = "more bytes are needed";

/* Reads a varint ending before `end` from a cursor that holds only the bytes received so far
 * (`cursor->total_bytes <= end`): truncation by the missing bytes is not an error yet. */
static const char *scan_varint(struct slice_cursor *cursor, uint32_t end, uint64_t *value,
                               const char *truncated, const char *bad) {
    uint32_t limit = end < cursor->total_bytes ? end : cursor->total_bytes;
    enum slice_cursor_varint result = slice_cursor_varint(cursor, limit, value);
    if (result == SLICE_CURSOR_VARINT_OK) return NULL;
    if (result == SLICE_CURSOR_VARINT_BAD) return bad;
    return limit < end ? scan_more : truncated;
}

static const char *scan_read_tag(struct slice_cursor *cursor, uint32_t end,
                                 const struct scan_messages *messages, struct scan_field *field) {
    uint64_t tag = 0;
    const char *detail = scan_varint(cursor, end, &tag, messages->tag_truncated, messages->tag_bad);
    if (detail != NULL) return detail;
    uint64_t number = tag >> 3;
    field->wire_type = (uint32_t)(tag & 7);
    if (number == 0) return "field number 0 is not allowed";
    if (number > FIELD_NUMBER_MAX) return "field number is larger than 2^29 - 1";
    field->number = (uint32_t)number;
    if (field->wire_type == WIRE_GROUP_START || field->wire_type == WIRE_GROUP_END)
        return "groups (wire types 3 and 4) are not supported";
    if (field->wire_type > WIRE_FIXED32) return "invalid wire type 6 or 7";
    return NULL;
}

/* Reads the value that follows a tag (a varint, or the extent of a fixed or length-delimited
 * value) and leaves the cursor just past it. `end` is where the enclosing message ends; the
 * cursor may hold fewer bytes (a prefix scan), and a value not yet wholly received returns
 * scan_more once everything that can be judged from its tag and length has been. */
static const char *scan_read_value(struct slice_cursor *cursor, uint32_t end,
                                   const struct scan_messages *messages, struct scan_field *field) {
    uint64_t length = 0;
    if (field->wire_type == WIRE_VARINT) {
        return scan_varint(cursor, end, &field->varint_value, messages->value_truncated,
                           messages->value_bad);
    }
    if (field->wire_type == WIRE_FIXED64) {
        length = 8;
    } else if (field->wire_type == WIRE_FIXED32) {
        length = 4;
    } else {
        INTAKE_ASSERT(field->wire_type == WIRE_LENGTH_DELIMITED);
        const char *detail = scan_varint(cursor, end, &length, messages->value_truncated,
                                         "field length is not a valid varint");
        if (detail != NULL) return detail;
    }
    if (length > end - cursor->position) {
        return field->wire_type == WIRE_LENGTH_DELIMITED ? messages->length_past_end
                                                         : messages->value_truncated;
    }
    if (length > cursor->total_bytes - cursor->position) return scan_more;
    field->value_offset = cursor->position;
    field->value_length = (uint32_t)length;
    field->value_cursor = *cursor;
    slice_cursor_advance(cursor, (uint32_t)length);
    return NULL;
}

/* Checks one Header submessage occupying [header->value_offset, +value_length), which has
 * been wholly received; where its key and value are goes to *found when it is not NULL. */
static const char *scan_header(const struct scan_field *header, struct record_scan_header *found) {
    struct slice_cursor cursor = header->value_cursor;
    uint32_t end = header->value_offset + header->value_length;
    while (cursor.position < end) {
        struct scan_field field;
        const char *detail = scan_read_tag(&cursor, end, &header_messages, &field);
        if (detail != NULL) return detail;
        int known = field.number == 1 || field.number == 2;
        if (known && field.wire_type != WIRE_LENGTH_DELIMITED) {
            return field.number == 1 ? "header field 1 (key) must have wire type 2"
                                     : "header field 2 (value) must have wire type 2";
        }
        detail = scan_read_value(&cursor, end, &header_messages, &field);
        if (detail != NULL) return detail;
        if (field.number == 1 && !slice_cursor_is_utf8(&field.value_cursor, field.value_length))
            return "header key is not valid UTF-8";
        if (found != NULL && field.number == 1) {
            found->key_offset = field.value_offset;
            found->key_length = field.value_length;
        }
        if (found != NULL && field.number == 2) {
            found->value_offset = field.value_offset;
            found->value_length = field.value_length;
        }
    }
    INTAKE_ASSERT(cursor.position == end);
    return NULL;
}

/* A producer_id value (Record field 7 or Hello field 16), checked on every occurrence as a
 * decoder with a 64-byte limit would; the last one is reported. */
static const char *scan_producer_id(const struct scan_field *field, struct record_scan *scan) {
    if (field->value_length == 0 || field->value_length > RECORD_PRODUCER_ID_BYTES_MAX)
        scan->identity_claimed = 1;
    if (field->value_length == 0) return "producer_id is empty (it must be 1 to 64 bytes)";
    if (field->value_length > RECORD_PRODUCER_ID_BYTES_MAX)
        return "producer_id is longer than 64 bytes";
    scan->producer_id_offset = field->value_offset;
    scan->producer_id_length = field->value_length;
    return NULL;
}

/* Applies one known field (Record 1..7, Hello 16) to the scan result. `contents`: judge the
 * field's contents too (UTF-8, headers, producer_id sizes); record_scan_structure does not. */
static const char *scan_apply_field(const struct scan_field *field, struct record_scan *scan,
                                    uint32_t *topic_seen, bool contents) {
    switch (field->number) {
    case 1:
        /* Every occurrence must be valid, as a full decoder checks each one it parses. */
        if (contents && !slice_cursor_is_utf8(&field->value_cursor, field->value_length))
            return "topic is not valid UTF-8";
        scan->topic_offset = field->value_offset;
        scan->topic_length = field->value_length;
        *topic_seen = 1;
        return NULL;
    case 2:
        scan->key_offset = field->value_offset;
        scan->key_length = field->value_length;
        return NULL;
    case 3:
        scan->value_offset = field->value_offset;
        scan->value_length = field->value_length;
        return NULL;
    case 4: scan->timestamp_ns = field->varint_value; return NULL;
    case 5: scan->sequence = field->varint_value; return NULL;
    case 6: scan->header_count++; return contents ? scan_header(field, NULL) : NULL;
    case 7:
        if (!contents) {
            scan->producer_id_offset = field->value_offset;
            scan->producer_id_length = field->value_length;
            return NULL;
        }
        return scan_producer_id(field, scan);
    case HELLO_FIELD_NUMBER:
        scan->is_hello = 1;
        return contents ? scan_producer_id(field, scan) : NULL;
    default: return NULL;
    }
}

/*
 * Walks the top-level fields from progress->checked_bytes on. Each field wholly received is
 * checked in full (content and nested header) and moves checked_bytes past it; a field cut
 * off by the bytes received so far has its tag and length checked, then the walk stops with
 * scan_more and resumes at that field's tag next time. Returns NULL, scan_more or a detail.
 */
static const char *scan_fields(struct slice_cursor *cursor, uint32_t end,
                               struct record_scan_progress *progress) {
    while (cursor->position < end) {
        struct scan_field field;
        const char *detail = scan_read_tag(cursor, end, &record_messages, &field);
        if (detail != NULL) return detail;
        int hello = field.number == HELLO_FIELD_NUMBER;
        /* Field 16 is a claim of identity whatever follows: its refusal counts as one. */
        if (hello) progress->scan.identity_claimed = 1;
        int known = hello || field.number < INTAKE_ARRAY_LENGTH(record_wire_type_details);
        uint32_t expected =
            (field.number == 4 || field.number == 5) ? WIRE_VARINT : WIRE_LENGTH_DELIMITED;
        if (known && field.wire_type != expected)
            return hello ? hello_wire_type_detail : record_wire_type_details[field.number];
        detail = scan_read_value(cursor, end, &record_messages, &field);
        if (detail != NULL) return detail;
        /* Judged once the field is whole, like every content check, so that a prefix scan
         * refuses with the detail the whole scan gives. */
        if (!hello) progress->other_field_seen = 1;
        if (progress->contents_unjudged == 0 && progress->other_field_seen &&
            (hello || progress->scan.is_hello))
            return hello_mixed_detail;
        if (known) {
            detail = scan_apply_field(&field, &progress->scan, &progress->topic_seen,
                                      progress->contents_unjudged == 0);
            if (detail != NULL) return detail;
        }
        progress->checked_bytes = cursor->position;
    }
    return NULL;
}

void record_scan_progress_init(struct record_scan_progress *progress) {
    INTAKE_ASSERT(progress != NULL);
    memset(progress, 0, sizeof(*progress));
}

enum record_scan_result record_scan_prefix(const struct record_view *view, uint32_t frame_bytes,
                                           struct record_scan_progress *progress) {
    INTAKE_ASSERT(view != NULL);
    INTAKE_ASSERT(progress != NULL);
    INTAKE_ASSERT(view->total_bytes <= frame_bytes);
    INTAKE_ASSERT(progress->checked_bytes <= view->total_bytes);
    if (progress->scan.detail != NULL) return RECORD_SCAN_MALFORMED;
    struct slice_cursor cursor;
    slice_cursor_init(&cursor, view);
    slice_cursor_seek(&cursor, progress->checked_bytes);
    const char *detail = scan_fields(&cursor, frame_bytes, progress);
    if (detail == NULL || detail == scan_more) {
        INTAKE_ASSERT(detail == scan_more || progress->checked_bytes == frame_bytes);
        return RECORD_SCAN_OK;
    }
    progress->scan.detail = detail;
    return RECORD_SCAN_MALFORMED;
}

enum record_scan_result record_scan_finish(const struct record_view *view,
                                           struct record_scan_progress *progress,
                                           struct record_scan *scan) {
    INTAKE_ASSERT(scan != NULL);
    enum record_scan_result result = record_scan_prefix(view, view->total_bytes, progress);
    const char *detail = progress->scan.detail;
    if (result == RECORD_SCAN_OK) {
        INTAKE_ASSERT(progress->checked_bytes == view->total_bytes);
        if (progress->scan.is_hello)
            detail = NULL; /* only field 16, each 1..64 bytes: a well-formed Hello */
        else if (!progress->topic_seen)
            detail = "record has no topic";
        else if (progress->scan.topic_length == 0)
            detail = "topic is empty";
        else if (progress->scan.topic_length > RECORD_TOPIC_BYTES_MAX)
            detail = "topic is longer than 255 bytes";
        else if (progress->scan.producer_id_length > 0 && progress->scan.sequence == 0)
            detail = "a record with a producer_id needs a sequence of 1 or more";
    }
    *scan = progress->scan;
    scan->detail = detail;
    return detail == NULL ? RECORD_SCAN_OK : RECORD_SCAN_MALFORMED;
}

enum record_scan_result record_scan_view(const struct record_view *view, struct record_scan *scan) {
    struct record_scan_progress progress;
    record_scan_progress_init(&progress);
    return record_scan_finish(view, &progress, scan);
}

enum record_scan_result record_scan_structure(const struct record_view *view,
                                              struct record_scan *scan) {
    INTAKE_ASSERT(view != NULL && scan != NULL);
    struct record_scan_progress progress;
    record_scan_progress_init(&progress);
    progress.contents_unjudged = 1;
    struct slice_cursor cursor;
    slice_cursor_init(&cursor, view);
    const char *detail = scan_fields(&cursor, view->total_bytes, &progress);
    *scan = progress.scan;
    scan->detail = detail;
    return detail == NULL ? RECORD_SCAN_OK : RECORD_SCAN_MALFORMED;
}

int record_scan_next_header(const struct record_view *view, uint32_t *position,
                            struct record_scan_header *header) {
    INTAKE_ASSERT(view != NULL && position != NULL && header != NULL);
    if (*position > view->total_bytes) return -1;
    struct slice_cursor cursor;
    slice_cursor_init(&cursor, view);
    slice_cursor_seek(&cursor, *position);
    while (cursor.position < view->total_bytes) {
        struct scan_field field;
        if (scan_read_tag(&cursor, view->total_bytes, &record_messages, &field) != NULL ||
            scan_read_value(&cursor, view->total_bytes, &record_messages, &field) != NULL)
            return -1;
        if (field.number != 6) continue;
        if (field.wire_type != WIRE_LENGTH_DELIMITED) return -1;
        memset(header, 0, sizeof(*header));
        if (scan_header(&field, header) != NULL) return -1;
        *position = cursor.position;
        return 1;
    }
    *position = cursor.position;
    return 0;
}

uint64_t record_topic_hash_bytes(const uint8_t *bytes, uint32_t length) {
    INTAKE_ASSERT(bytes != NULL || length == 0);
    return topic_hash_feed(TOPIC_HASH_INITIAL, bytes, length);
}

/* Positions a cursor at `offset` after checking the span lies inside the view. */
static void span_cursor_init(struct slice_cursor *cursor, const struct record_view *view,
                             uint32_t offset, uint32_t length) {
    INTAKE_ASSERT(offset <= view->total_bytes);
    INTAKE_ASSERT(length <= view->total_bytes - offset);
    slice_cursor_init(cursor, view);
    /* The common case is one slice: seeking is then a plain addition. */
    slice_cursor_advance(cursor, offset);
}

uint64_t record_view_hash(const struct record_view *view, uint32_t offset, uint32_t length) {
    struct slice_cursor cursor;
    span_cursor_init(&cursor, view, offset, length);
    uint64_t hash = TOPIC_HASH_INITIAL;
    while (length > 0) {
        uint32_t piece = slice_cursor_contiguous(&cursor);
        if (piece > length) piece = length;
        hash = topic_hash_feed(hash, slice_cursor_pointer(&cursor), piece);
        slice_cursor_advance(&cursor, piece);
        length -= piece;
    }
    return hash;
}

int record_view_equals(const struct record_view *view, uint32_t offset, uint32_t length,
                       const uint8_t *bytes) {
    INTAKE_ASSERT(bytes != NULL || length == 0);
    /* Per record for a producer_id (framer, dedupe table), which is usually the record's last
     * field: inside the last slice it is one memcmp, without walking a cursor from the first. */
    if (length > 0 && view->slice_count > 0) {
        INTAKE_ASSERT(offset <= view->total_bytes && length <= view->total_bytes - offset);
        const struct slice *last = &view->slices[view->slice_count - 1];
        uint32_t last_start = view->total_bytes - last->length;
        if (offset >= last_start)
            return memcmp(last->bytes + (offset - last_start), bytes, length) == 0;
    }
    struct slice_cursor cursor;
    span_cursor_init(&cursor, view, offset, length);
    while (length > 0) {
        uint32_t piece = slice_cursor_contiguous(&cursor);
        if (piece > length) piece = length;
        if (memcmp(slice_cursor_pointer(&cursor), bytes, piece) != 0) return 0;
        slice_cursor_advance(&cursor, piece);
        bytes += piece;
        length -= piece;
    }
    return 1;
}

uint32_t record_view_copy(const struct record_view *view, uint32_t offset, uint32_t length,
                          uint8_t *out, uint32_t capacity) {
    INTAKE_ASSERT(out != NULL || capacity == 0);
    struct slice_cursor cursor;
    span_cursor_init(&cursor, view, offset, length);
    uint32_t count = length < capacity ? length : capacity;
    slice_cursor_copy(&cursor, out, count);
    return count;
}
