/*
 * record_decode.c: the worker's full nanopb decode of a record, straight from its slices
 * (see record_decode.h).
 *
 * Any thread; the caller owns the record while this runs. The input stream's state is a
 * slice_cursor on the caller's stack. nanopb reads tags and varints through slice_stream_read
 * (a few bytes each); string and bytes values never pass through it: their callbacks note where
 * the value lies and step over it with slice_stream_skip, the one place that moves the cursor
 * behind nanopb's back, which is why it checks every assumption it makes about the stream.
 */
#include "record_decode.h"

#include <pb_decode.h>

#include "intake.pb.h"
#include "slice_cursor.h"

/* What the Record-level callbacks fill. */
struct decode_context {
    struct record_decoded *decoded;
    int topic_seen;
    /* Our own detail for a refusal. nanopb drops a callback's message when the value came
     * through its stack buffer stream (wrong wire type), so it is kept here as well. */
    const char *detail;
};

/* What the Header-level callbacks fill (spans are checked, then dropped: the worker delivers
 * the record's bytes as they are). */
struct header_context {
    struct decode_context *record_context;
    struct field_span key;
    struct field_span value;
};

static bool slice_stream_read(pb_istream_t *stream, pb_byte_t *buffer, size_t count) {
    struct slice_cursor *cursor = stream->state;
    INTAKE_ASSERT(cursor != NULL);
    INTAKE_ASSERT(buffer != NULL);
    /* pb_read checked count against bytes_left; bytes_left never exceeds what the record holds. */
    INTAKE_ASSERT(count <= cursor->total_bytes - cursor->position);
    slice_cursor_copy(cursor, buffer, (uint32_t)count);
    return true;
}

/* Steps over `length` bytes of a value without reading them. nanopb's own skip,
 * pb_read(stream, NULL, n), would copy through a 16-byte temporary; this only moves the cursor
 * and does the bookkeeping pb_read would do. */
static void slice_stream_skip(pb_istream_t *stream, size_t length) {
    INTAKE_ASSERT(stream->callback == slice_stream_read);
    INTAKE_ASSERT(length <= stream->bytes_left);
    struct slice_cursor *cursor = stream->state;
    INTAKE_ASSERT(length <= cursor->total_bytes - cursor->position);
    slice_cursor_advance(cursor, (uint32_t)length);
    stream->bytes_left -= length;
}

static bool refuse(pb_istream_t *stream, struct decode_context *context, const char *detail) {
    if (context->detail == NULL) context->detail = detail;
    PB_RETURN_ERROR(stream, detail);
}

/* The rules for one string/bytes field: what to say about a wrong wire type and, for strings,
 * about invalid UTF-8 (NULL: bytes, not checked). */
struct span_rules {
    const char *wrong_wire_type;
    const char *not_utf8;
};

/*
 * Notes the span of a string/bytes value, checks it, and steps over it. A value that arrived
 * with a non-length-delimited wire type reaches the callback through nanopb's stack buffer
 * stream, not ours: that is bad input, so it is refused here rather than asserted in the skip.
 */
static bool note_span(pb_istream_t *stream, struct decode_context *context, struct field_span *span,
                      const struct span_rules *rules) {
    if (stream->callback != slice_stream_read)
        return refuse(stream, context, rules->wrong_wire_type);
    const struct slice_cursor *cursor = stream->state;
    span->offset = cursor->position;
    span->length = (uint32_t)stream->bytes_left;
    if (rules->not_utf8 != NULL && !slice_cursor_is_utf8(cursor, span->length))
        return refuse(stream, context, rules->not_utf8);
    slice_stream_skip(stream, stream->bytes_left);
    return true;
}

static const struct span_rules topic_rules = {
    "field 1 (topic) must have wire type 2 (length-delimited)", "topic is not valid UTF-8"};
static const struct span_rules key_rules = {
    "field 2 (key) must have wire type 2 (length-delimited)", NULL};
static const struct span_rules value_rules = {
    "field 3 (value) must have wire type 2 (length-delimited)", NULL};
static const struct span_rules header_key_rules = {"header field 1 (key) must have wire type 2",
                                                   "header key is not valid UTF-8"};
static const struct span_rules header_value_rules = {"header field 2 (value) must have wire type 2",
                                                     NULL};

static const struct span_rules producer_id_rules = {
    "field 7 (producer_id) must have wire type 2 (length-delimited)", NULL};
static const struct span_rules hello_producer_id_rules = {
    "field 16 (Hello.producer_id) must have wire type 2 (length-delimited)", NULL};

/* A producer_id value (Record field 7, Hello field 16): 1..64 bytes on every occurrence. */
static bool note_producer_id(pb_istream_t *stream, struct decode_context *context,
                             struct field_span *span, const struct span_rules *rules) {
    if (!note_span(stream, context, span, rules)) return false;
    if (span->length == 0)
        return refuse(stream, context, "producer_id is empty (it must be 1 to 64 bytes)");
    if (span->length > RECORD_PRODUCER_ID_BYTES_MAX)
        return refuse(stream, context, "producer_id is longer than 64 bytes");
    return true;
}

static bool decode_producer_id(pb_istream_t *stream, const pb_field_t *field, void **arg) {
    struct decode_context *context = *arg;
    return note_producer_id(stream, context, &context->decoded->producer_id, &producer_id_rules);
}

static bool decode_topic(pb_istream_t *stream, const pb_field_t *field, void **arg) {
    struct decode_context *context = *arg;
    if (!note_span(stream, context, &context->decoded->topic, &topic_rules)) return false;
    context->topic_seen = 1;
    return true;
}

static bool decode_key(pb_istream_t *stream, const pb_field_t *field, void **arg) {
    struct decode_context *context = *arg;
    return note_span(stream, context, &context->decoded->key, &key_rules);
}

static bool decode_value(pb_istream_t *stream, const pb_field_t *field, void **arg) {
    struct decode_context *context = *arg;
    return note_span(stream, context, &context->decoded->value, &value_rules);
}

static bool decode_header_key(pb_istream_t *stream, const pb_field_t *field, void **arg) {
    struct header_context *header = *arg;
    return note_span(stream, header->record_context, &header->key, &header_key_rules);
}

static bool decode_header_value(pb_istream_t *stream, const pb_field_t *field, void **arg) {
    struct header_context *header = *arg;
    return note_span(stream, header->record_context, &header->value, &header_value_rules);
}

/* One Header submessage: the stream is nanopb's substream limited to it. */
static bool decode_header(pb_istream_t *stream, const pb_field_t *field, void **arg) {
    struct decode_context *context = *arg;
    if (stream->callback != slice_stream_read)
        return refuse(stream, context,
                      "field 6 (headers) must have wire type 2 (length-delimited)");
    struct header_context spans;
    memset(&spans, 0, sizeof(spans));
    spans.record_context = context;
    intake_v1_Header header = intake_v1_Header_init_zero;
    header.key.funcs.decode = decode_header_key;
    header.key.arg = &spans;
    header.value.funcs.decode = decode_header_value;
    header.value.arg = &spans;
    if (!pb_decode(stream, intake_v1_Header_fields, &header)) return false;
    INTAKE_ASSERT(stream->bytes_left == 0);
    context->decoded->header_count++;
    return true;
}

/* Applies the topic rules both the scan and the decoder enforce. */
static const char *topic_problem(const struct decode_context *context) {
    if (!context->topic_seen) return "record has no topic";
    if (context->decoded->topic.length == 0) return "topic is empty";
    if (context->decoded->topic.length > RECORD_TOPIC_BYTES_MAX)
        return "topic is longer than 255 bytes";
    if (context->decoded->producer_id.length > 0 && context->decoded->sequence == 0)
        return "a record with a producer_id needs a sequence of 1 or more";
    return NULL;
}

enum record_decode_result record_decode(const struct record_view *view,
                                        struct record_decoded *decoded, const char **detail) {
    INTAKE_ASSERT(view != NULL);
    INTAKE_ASSERT(decoded != NULL);
    INTAKE_ASSERT(detail != NULL);
    memset(decoded, 0, sizeof(*decoded));
    *detail = NULL;
    struct slice_cursor cursor;
    slice_cursor_init(&cursor, view);
    pb_istream_t stream = {slice_stream_read, &cursor, view->total_bytes, NULL};
    struct decode_context context = {decoded, 0, NULL};
    intake_v1_Record message = intake_v1_Record_init_zero;
    message.topic.funcs.decode = decode_topic;
    message.topic.arg = &context;
    message.key.funcs.decode = decode_key;
    message.key.arg = &context;
    message.value.funcs.decode = decode_value;
    message.value.arg = &context;
    message.headers.funcs.decode = decode_header;
    message.headers.arg = &context;
    message.producer_id.funcs.decode = decode_producer_id;
    message.producer_id.arg = &context;
    if (!pb_decode(&stream, intake_v1_Record_fields, &message)) {
        *detail = context.detail != NULL ? context.detail : PB_GET_ERROR(&stream);
        return RECORD_DECODE_MALFORMED;
    }
    INTAKE_ASSERT(stream.bytes_left == 0);
    INTAKE_ASSERT(cursor.position == view->total_bytes);
    decoded->timestamp_ns = message.timestamp_ns;
    decoded->sequence = message.sequence;
    *detail = topic_problem(&context);
    return *detail == NULL ? RECORD_DECODE_OK : RECORD_DECODE_MALFORMED;
}

/* The Hello decode's callback: the span of field 16 (last occurrence wins). */
static bool decode_hello_producer_id(pb_istream_t *stream, const pb_field_t *field, void **arg) {
    struct decode_context *context = *arg;
    return note_producer_id(stream, context, &context->decoded->producer_id,
                            &hello_producer_id_rules);
}

enum frame_decode_kind frame_decode_kind(const struct record_view *view,
                                         struct field_span *hello_producer_id,
                                         const char **detail) {
    INTAKE_ASSERT(view != NULL);
    INTAKE_ASSERT(hello_producer_id != NULL);
    INTAKE_ASSERT(detail != NULL);
    memset(hello_producer_id, 0, sizeof(*hello_producer_id));
    *detail = NULL;
    struct slice_cursor cursor;
    slice_cursor_init(&cursor, view);
    pb_istream_t stream = {slice_stream_read, &cursor, view->total_bytes, NULL};
    bool hello_seen = false, other_seen = false;
    while (stream.bytes_left > 0) {
        pb_wire_type_t wire_type;
        uint32_t tag = 0;
        bool eof = false;
        if (!pb_decode_tag(&stream, &wire_type, &tag, &eof) || eof) return FRAME_DECODE_RECORD;
        if (tag == 16)
            hello_seen = true;
        else
            other_seen = true;
        if (!pb_skip_field(&stream, wire_type)) return FRAME_DECODE_RECORD;
    }
    if (!hello_seen) return FRAME_DECODE_RECORD;
    if (other_seen) {
        *detail = "a Hello frame (field 16) carries no other field, and a record carries no "
                  "field 16";
        return FRAME_DECODE_MALFORMED;
    }
    slice_cursor_init(&cursor, view);
    pb_istream_t hello_stream = {slice_stream_read, &cursor, view->total_bytes, NULL};
    struct record_decoded spans;
    memset(&spans, 0, sizeof(spans));
    struct decode_context context = {&spans, 0, NULL};
    intake_v1_Hello message = intake_v1_Hello_init_zero;
    message.producer_id.funcs.decode = decode_hello_producer_id;
    message.producer_id.arg = &context;
    if (!pb_decode(&hello_stream, intake_v1_Hello_fields, &message)) {
        *detail = context.detail != NULL ? context.detail : PB_GET_ERROR(&hello_stream);
        return FRAME_DECODE_MALFORMED;
    }
    *hello_producer_id = spans.producer_id;
    return FRAME_DECODE_HELLO;
}
