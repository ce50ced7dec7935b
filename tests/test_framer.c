/*
 * test_framer.c: the framer, record_scan and record_decode together (single-threaded).
 *
 * A stream of random valid records (fields in random order, unknown fields of every wire type,
 * repeated topics where the last wins, several headers, empty keys and values, values of some
 * KiB) is fed split at every single boundary and in random multi-chunk splits across units;
 * every record must come back byte-identical with the right topic, sequence and timestamp, and
 * record_decode must agree with the scan. Malformed streams must end in FRAMER_ERROR with the
 * right status after the good records before them.
 *
 * (Framing a file of records made by Google's library is tests/interop/framer_lines.c's job, a
 * program of its own that test_python_interop.sh drives.)
 *
 * intake-test: no-tsan (single-threaded pure code)
 */
#include <string.h>

#include "framer.h"
#include "harness.h"
#include "record_decode.h"
#include "record_pool.h"
#include "record_scan.h"
#include "varint.h"

/* ---- a tiny protobuf encoder ---- */

struct buffer {
    uint8_t *bytes;
    size_t length;
    size_t capacity;
};

static void buffer_put(struct buffer *buffer, const void *bytes, size_t length) {
    if (buffer->length + length > buffer->capacity) {
        size_t capacity = buffer->capacity ? buffer->capacity : 256;
        while (capacity < buffer->length + length) capacity *= 2;
        buffer->bytes = realloc(buffer->bytes, capacity);
        REQUIRE(buffer->bytes != NULL);
        buffer->capacity = capacity;
    }
    if (length > 0) memcpy(buffer->bytes + buffer->length, bytes, length);
    buffer->length += length;
}

static void put_varint(struct buffer *buffer, uint64_t value) {
    uint8_t encoded[VARINT_BYTES_MAX];
    buffer_put(buffer, encoded, varint_encode(value, encoded));
}

static void put_tag(struct buffer *buffer, uint32_t number, uint32_t wire_type) {
    put_varint(buffer, ((uint64_t)number << 3) | wire_type);
}

/* Writes a length-delimited field; returns the offset of its value within `buffer`. */
static size_t put_bytes_field(struct buffer *buffer, uint32_t number, const void *bytes,
                              size_t length) {
    put_tag(buffer, number, 2);
    put_varint(buffer, length);
    size_t value_offset = buffer->length;
    buffer_put(buffer, bytes, length);
    return value_offset;
}

static void put_varint_field(struct buffer *buffer, uint32_t number, uint64_t value) {
    put_tag(buffer, number, 0);
    put_varint(buffer, value);
}

static void put_delimited(struct buffer *stream, const struct buffer *body) {
    put_varint(stream, body->length);
    buffer_put(stream, body->bytes, body->length);
}

/* ---- random valid records ---- */

struct expected_record {
    size_t body_offset; /* within the stream */
    uint32_t body_length;
    uint32_t topic_offset, topic_length;
    uint32_t key_offset, key_length;
    uint32_t value_offset, value_length;
    uint64_t sequence, timestamp_ns;
    uint32_t header_count;
};

static uint64_t random_state = 0x1234567887654321ULL;

static uint32_t random_below(uint32_t bound) {
    return (uint32_t)(test_random_next(&random_state) % bound);
}

static void random_fill(uint8_t *bytes, size_t length) {
    for (size_t index = 0; index < length; index++) bytes[index] = (uint8_t)random_below(256);
}

/* Random valid UTF-8 of roughly `length_max` bytes: ASCII mixed with 2-, 3- and 4-byte forms. */
static size_t random_utf8(uint8_t *out, size_t length_max) {
    static const char *const pieces[] = {"a",
                                         "Z",
                                         "0",
                                         ".",
                                         "-",
                                         "\xc3\xa9",
                                         "\xe2\x82\xac",
                                         "\xf0\x9f\x98\x80",
                                         "\xed\x9f\xbf",
                                         "\xf4\x8f\xbf\xbf"};
    size_t length = 0;
    size_t target = 1 + random_below((uint32_t)length_max);
    while (length < target) {
        const char *piece = pieces[random_below(INTAKE_ARRAY_LENGTH(pieces))];
        size_t piece_length = strlen(piece);
        if (length + piece_length > length_max) break;
        memcpy(out + length, piece, piece_length);
        length += piece_length;
    }
    if (length == 0) out[length++] = 't';
    return length;
}

static void put_unknown_field(struct buffer *buffer, uint32_t number_min) {
    static const uint32_t numbers[] = {7, 15, 16, 100, 2047, 100000, 536870911};
    uint32_t number = numbers[random_below(INTAKE_ARRAY_LENGTH(numbers))];
    if (number < number_min) number = number_min;
    /* In a record, 7 (producer_id) and 16 (Hello) are known fields; in a header, unknown. */
    if (number_min >= 8 && number == 16) number = 17;
    uint8_t bytes[64];
    random_fill(bytes, sizeof(bytes));
    switch (random_below(4)) {
    case 0: put_varint_field(buffer, number, test_random_next(&random_state)); break;
    case 1:
        put_tag(buffer, number, 1);
        buffer_put(buffer, bytes, 8);
        break;
    case 2: put_bytes_field(buffer, number, bytes, random_below(sizeof(bytes))); break;
    default:
        put_tag(buffer, number, 5);
        buffer_put(buffer, bytes, 4);
        break;
    }
}

static void put_header(struct buffer *body) {
    struct buffer header = {0};
    uint8_t key[32], value[200];
    size_t key_length = random_below(4) == 0 ? 0 : random_utf8(key, sizeof(key));
    size_t value_length = random_below(4) == 0 ? 0 : random_below(sizeof(value));
    random_fill(value, value_length);
    int key_first = (int)random_below(2);
    if (random_below(3) == 0) put_unknown_field(&header, 3);
    if (key_first) put_bytes_field(&header, 1, key, key_length);
    put_bytes_field(&header, 2, value, value_length);
    if (!key_first) put_bytes_field(&header, 1, key, key_length);
    if (random_below(3) == 0) put_unknown_field(&header, 3);
    put_bytes_field(body, 6, header.bytes, header.length);
    free(header.bytes);
}

enum item_kind {
    ITEM_TOPIC,
    ITEM_KEY,
    ITEM_VALUE,
    ITEM_TIMESTAMP,
    ITEM_SEQUENCE,
    ITEM_HEADER,
    ITEM_UNKNOWN
};

/* Encodes one field of kind `kind` and updates what the record is expected to read as. */
static void put_item(struct buffer *body, enum item_kind kind, uint32_t value_bytes_max,
                     struct expected_record *expected) {
    static uint8_t scratch[16384];
    size_t length = 0;
    switch (kind) {
    case ITEM_TOPIC:
        length = random_utf8(scratch, 1 + random_below(RECORD_TOPIC_BYTES_MAX));
        expected->topic_offset = (uint32_t)put_bytes_field(body, 1, scratch, length);
        expected->topic_length = (uint32_t)length;
        break;
    case ITEM_KEY:
    case ITEM_VALUE:
        length = random_below(kind == ITEM_KEY ? 40 : value_bytes_max + 1);
        if (random_below(5) == 0) length = 0;
        random_fill(scratch, length);
        size_t offset = put_bytes_field(body, kind == ITEM_KEY ? 2 : 3, scratch, length);
        if (kind == ITEM_KEY) {
            expected->key_offset = (uint32_t)offset;
            expected->key_length = (uint32_t)length;
        } else {
            expected->value_offset = (uint32_t)offset;
            expected->value_length = (uint32_t)length;
        }
        break;
    case ITEM_TIMESTAMP:
        expected->timestamp_ns = test_random_next(&random_state) >> random_below(64);
        put_varint_field(body, 4, expected->timestamp_ns);
        break;
    case ITEM_SEQUENCE:
        expected->sequence = test_random_next(&random_state) >> random_below(64);
        put_varint_field(body, 5, expected->sequence);
        break;
    case ITEM_HEADER:
        put_header(body);
        expected->header_count++;
        break;
    case ITEM_UNKNOWN: put_unknown_field(body, 8); break;
    }
}

/* Appends one delimited random valid record to `stream`. */
static void generate_record(struct buffer *stream, uint32_t value_bytes_max,
                            struct expected_record *expected) {
    enum item_kind items[24];
    size_t item_count = 0;
    items[item_count++] = ITEM_TOPIC;
    for (uint32_t extra = random_below(3); extra > 0; extra--) items[item_count++] = ITEM_TOPIC;
    for (uint32_t count = random_below(3); count > 0; count--) items[item_count++] = ITEM_KEY;
    for (uint32_t count = random_below(3); count > 0; count--) items[item_count++] = ITEM_VALUE;
    for (uint32_t count = random_below(3); count > 0; count--) items[item_count++] = ITEM_TIMESTAMP;
    for (uint32_t count = random_below(3); count > 0; count--) items[item_count++] = ITEM_SEQUENCE;
    for (uint32_t count = random_below(5); count > 0; count--) items[item_count++] = ITEM_HEADER;
    for (uint32_t count = random_below(5); count > 0; count--) items[item_count++] = ITEM_UNKNOWN;
    for (size_t index = item_count; index > 1; index--) {
        size_t other = random_below((uint32_t)index);
        enum item_kind swap = items[index - 1];
        items[index - 1] = items[other];
        items[other] = swap;
    }
    memset(expected, 0, sizeof(*expected));
    struct buffer body = {0};
    for (size_t index = 0; index < item_count; index++)
        put_item(&body, items[index], value_bytes_max, expected);
    put_varint(stream, body.length);
    expected->body_offset = stream->length;
    expected->body_length = (uint32_t)body.length;
    buffer_put(stream, body.bytes, body.length);
    free(body.bytes);
}

/* ---- feeding and checking ---- */

struct chunk {
    const uint8_t *bytes;
    uint32_t length;
    uint32_t unit;
};

struct outcome {
    size_t records;
    size_t hellos;
    int identity_error; /* the error is an identity refusal */
    int sequence_error; /* the error is a sequence out of order */
    int error;
    enum record_status error_status;
    char error_detail[FRAMER_DETAIL_BYTES];
    int idle_at_end;
};

/* What a driver does with each record that comes out. */
typedef void (*record_visitor)(const struct record *record, size_t index, void *context);

static void check_no_mergeable_neighbours(const struct record *record) {
    for (uint32_t index = 1; index < record->slice_count; index++) {
        const struct slice *before = &record->slices[index - 1];
        const struct slice *after = &record->slices[index];
        CHECK(before->length > 0);
        CHECK(!(before->unit == after->unit && before->bytes + before->length == after->bytes));
    }
}

static void check_decode_agrees(const struct record *record,
                                const struct expected_record *expected) {
    struct record_view view = record_view_of(record);
    struct record_decoded decoded;
    const char *detail = NULL;
    CHECK(record_decode(&view, &decoded, &detail) == RECORD_DECODE_OK);
    CHECK(detail == NULL);
    CHECK(decoded.topic.offset == record->topic_offset);
    CHECK(decoded.topic.length == record->topic_length);
    CHECK(decoded.sequence == record->sequence);
    CHECK(decoded.timestamp_ns == record->timestamp_ns);
    CHECK(decoded.header_count == expected->header_count);
    CHECK(decoded.key.offset == expected->key_offset && decoded.key.length == expected->key_length);
    CHECK(decoded.value.offset == expected->value_offset);
    CHECK(decoded.value.length == expected->value_length);
    struct record_scan scan;
    CHECK(record_scan_view(&view, &scan) == RECORD_SCAN_OK);
    CHECK(scan.header_count == expected->header_count);
}

struct stream_expectation {
    const uint8_t *stream;
    const struct expected_record *records;
    size_t record_count;
    int decode; /* also run record_decode (costly in the every-split loop) */
};

static void check_record(const struct record *record, size_t index, void *context) {
    const struct stream_expectation *expectation = context;
    CHECK(index < expectation->record_count);
    if (index >= expectation->record_count) return;
    const struct expected_record *expected = &expectation->records[index];
    CHECK(record->frame_bytes == expected->body_length);
    uint32_t slice_bytes = 0;
    for (uint32_t slice = 0; slice < record->slice_count; slice++)
        slice_bytes += record->slices[slice].length;
    CHECK(slice_bytes == expected->body_length);
    struct record_view view = record_view_of(record);
    const uint8_t *body = expectation->stream + expected->body_offset;
    CHECK(record_view_equals(&view, 0, expected->body_length, body));
    CHECK(record->topic_offset == expected->topic_offset);
    CHECK(record->topic_length == expected->topic_length);
    CHECK(record->sequence == expected->sequence);
    CHECK(record->timestamp_ns == expected->timestamp_ns);
    CHECK(record_view_hash(&view, record->topic_offset, record->topic_length) ==
          record_topic_hash_bytes(body + expected->topic_offset, expected->topic_length));
    check_no_mergeable_neighbours(record);
    if (expectation->decode) check_decode_agrees(record, expected);
}

/* Runs one framer over the chunks, handing every record to `visit`. */
static void run_framer(const struct chunk *chunks, size_t chunk_count, uint32_t frame_bytes_max,
                       record_visitor visit, void *context, struct outcome *outcome) {
    static struct record_pool pool;
    if (pool.capacity == 0) REQUIRE(record_pool_init(&pool, 2, 0) == 0);
    struct framer framer;
    framer_init(&framer, frame_bytes_max);
    memset(outcome, 0, sizeof(*outcome));
    for (size_t index = 0; index < chunk_count && !outcome->error; index++) {
        uint32_t offset = 0;
        for (int done = 0; !done;) {
            switch (framer_feed(&framer, chunks[index].bytes, chunks[index].length,
                                chunks[index].unit, &offset)) {
            case FRAMER_NEED_INPUT:
                CHECK(offset == chunks[index].length);
                done = 1;
                break;
            case FRAMER_NEED_RECORD: framer_give_record(&framer, record_pool_take(&pool)); break;
            case FRAMER_RECORD: {
                struct record *record = framer_take_record(&framer);
                visit(record, outcome->records++, context);
                record_pool_give(&pool, record);
                break;
            }
            case FRAMER_HELLO:
                outcome->hellos++;
                record_pool_give(&pool, framer_take_hello(&framer));
                break;
            case FRAMER_ERROR:
                outcome->error = 1;
                outcome->identity_error = framer_rejected_for_identity(&framer);
                outcome->sequence_error = framer_rejected_for_sequence(&framer);
                outcome->error_status = framer.error_status;
                snprintf(outcome->error_detail, sizeof(outcome->error_detail), "%s",
                         framer.error_detail);
                done = 1;
                break;
            }
        }
    }
    outcome->idle_at_end = framer_is_idle(&framer);
    struct record *held = framer_release_record(&framer);
    if (held != NULL) record_pool_give(&pool, held);
    CHECK(pool.free_count == pool.capacity);
}

/* ---- valid streams ---- */

static void generate_stream(struct buffer *stream, struct expected_record *records, size_t count,
                            uint32_t value_bytes_max) {
    for (size_t index = 0; index < count; index++)
        generate_record(stream, value_bytes_max, &records[index]);
}

static void check_outcome_clean(const struct outcome *outcome, size_t record_count) {
    CHECK(outcome->records == record_count);
    CHECK(!outcome->error);
    CHECK(outcome->idle_at_end);
}

/* Two chunks split at every position; odd positions use a second unit, so the records that
 * straddle the split come out in two slices, and even positions merge back into one. */
static void test_every_split(void) {
    enum { RECORD_COUNT = 14 };
    struct expected_record records[RECORD_COUNT];
    struct buffer stream = {0};
    generate_stream(&stream, records, RECORD_COUNT, 160);
    struct stream_expectation expectation = {stream.bytes, records, RECORD_COUNT, 1};
    printf("every split: %zu records in %zu bytes\n", (size_t)RECORD_COUNT, stream.length);
    for (size_t split = 0; split <= stream.length; split++) {
        struct chunk chunks[2] = {
            {stream.bytes, (uint32_t)split, 7},
            {stream.bytes + split, (uint32_t)(stream.length - split), split % 2 ? 8 : 7},
        };
        struct outcome outcome;
        run_framer(chunks, 2, 1u << 20, check_record, &expectation, &outcome);
        check_outcome_clean(&outcome, RECORD_COUNT);
    }
    /* Byte by byte in one unit: every prefix and body byte arrives alone, yet merges. */
    struct chunk *bytes = calloc(stream.length, sizeof(*bytes));
    REQUIRE(bytes != NULL);
    for (size_t index = 0; index < stream.length; index++)
        bytes[index] = (struct chunk){stream.bytes + index, 1, 3};
    struct outcome outcome;
    run_framer(bytes, stream.length, 1u << 20, check_record, &expectation, &outcome);
    check_outcome_clean(&outcome, RECORD_COUNT);
    free(bytes);
    free(stream.bytes);
}

/* Cuts `stream` into random chunks: some point into the stream in the previous chunk's unit (and
 * so merge), some into the stream in a fresh unit, some are copies in separate memory. */
static size_t random_chunks(const struct buffer *stream, uint8_t *copies, struct chunk *chunks,
                            size_t chunk_capacity) {
    size_t count = 0, position = 0, copy_position = 0;
    uint32_t unit = 0;
    while (position < stream->length) {
        REQUIRE(count < chunk_capacity);
        uint32_t length = random_below(6) == 0 ? 1 + random_below(12) : 100 + random_below(3000);
        if (length > stream->length - position) length = (uint32_t)(stream->length - position);
        const uint8_t *bytes = stream->bytes + position;
        uint32_t choice = random_below(3);
        if (choice != 0 || count == 0) unit++;
        if (choice == 2) {
            /* A gap of one byte keeps copies from touching each other in memory. */
            memcpy(copies + copy_position, bytes, length);
            bytes = copies + copy_position;
            copy_position += length + 1;
        }
        chunks[count++] = (struct chunk){bytes, length, unit};
        position += length;
    }
    return count;
}

static void test_random_splits(void) {
    enum { RECORD_COUNT = 40, ROUNDS = 150 };
    struct expected_record records[RECORD_COUNT];
    size_t total_bytes = 0, total_chunks = 0;
    for (int round = 0; round < ROUNDS; round++) {
        struct buffer stream = {0};
        generate_stream(&stream, records, RECORD_COUNT, round % 3 == 0 ? 9000 : 3000);
        uint8_t *copies = malloc(stream.length * 2 + 1);
        size_t chunk_capacity = stream.length + 1;
        struct chunk *chunks = calloc(chunk_capacity, sizeof(*chunks));
        REQUIRE(copies != NULL && chunks != NULL);
        size_t chunk_count = random_chunks(&stream, copies, chunks, chunk_capacity);
        total_bytes += stream.length;
        total_chunks += chunk_count;
        struct stream_expectation expectation = {stream.bytes, records, RECORD_COUNT, 1};
        struct outcome outcome;
        run_framer(chunks, chunk_count, 1u << 20, check_record, &expectation, &outcome);
        check_outcome_clean(&outcome, RECORD_COUNT);
        if (outcome.error) fprintf(stderr, "round %d: %s\n", round, outcome.error_detail);
        free(chunks);
        free(copies);
        free(stream.bytes);
    }
    printf("random splits: %d rounds of %d records, %zu bytes in %zu chunks\n", ROUNDS,
           RECORD_COUNT, total_bytes, total_chunks);
}

/* ---- malformed input ---- */

struct bad_case {
    const char *name;
    const char *detail_part; /* the framer's detail must contain this */
};

static const struct bad_case bad_cases[] = {
    {"no topic", "record has no topic"},
    {"empty topic", "topic is empty"},
    {"last topic empty", "topic is empty"},
    {"256-byte topic", "longer than 255"},
    {"invalid UTF-8 topic", "topic is not valid UTF-8"},
    {"earlier topic invalid", "topic is not valid UTF-8"},
    {"surrogate in topic", "topic is not valid UTF-8"},
    {"group start", "groups"},
    {"group end", "groups"},
    {"topic as varint", "field 1 (topic)"},
    {"sequence as bytes", "field 5 (sequence)"},
    {"headers as fixed32", "field 6 (headers)"},
    {"length past end", "runs past the end of the record"},
    {"truncated varint value", "ends inside a field value"},
    {"header field past its end", "runs past the end of the header"},
    {"header key invalid UTF-8", "header key is not valid UTF-8"},
    {"header key as varint", "header field 1 (key)"},
    {"group inside header", "groups"},
    {"field number 0", "field number 0"},
    {"wire type 7", "invalid wire type"},
    {"overflowing varint value", "not a valid varint"},
    {"zero-length frame", "record has no topic"},
    {"empty producer_id", "producer_id is empty"},
    {"65-byte producer_id", "producer_id is longer than 64 bytes"},
    {"earlier producer_id too long", "producer_id is longer than 64 bytes"},
    {"producer_id as varint", "field 7 (producer_id) must have wire type 2"},
    {"producer_id without sequence", "needs a sequence of 1 or more"},
    {"producer_id with sequence 0", "needs a sequence of 1 or more"},
    {"Hello field in a record", "a Hello frame (field 16) carries no other field"},
    {"record field after Hello field", "a Hello frame (field 16) carries no other field"},
    {"unknown field in a Hello", "a Hello frame (field 16) carries no other field"},
    {"Hello field as varint", "field 16 (Hello.producer_id) must have wire type 2"},
    {"65-byte Hello producer_id", "producer_id is longer than 64 bytes"},
    {"empty Hello producer_id", "producer_id is empty"},
};

/* The cases above from "empty producer_id" on (index 22). */
static void build_bad_identity_body(size_t which, struct buffer *body) {
    uint8_t long_id[RECORD_PRODUCER_ID_BYTES_MAX + 1];
    memset(long_id, 'p', sizeof(long_id));
    if (which <= 27) put_bytes_field(body, 1, "ok", 2);
    switch (which) {
    case 22:
        put_varint_field(body, 5, 3);
        put_bytes_field(body, 7, "", 0);
        break;
    case 23:
        put_varint_field(body, 5, 3);
        put_bytes_field(body, 7, long_id, sizeof(long_id));
        break;
    case 24:
        put_varint_field(body, 5, 3);
        put_bytes_field(body, 7, long_id, sizeof(long_id));
        put_bytes_field(body, 7, "fine", 4);
        break;
    case 25:
        put_varint_field(body, 5, 3);
        put_varint_field(body, 7, 9);
        break;
    case 26: put_bytes_field(body, 7, "producer-a", 10); break;
    case 27:
        put_varint_field(body, 5, 4);
        put_bytes_field(body, 7, "producer-a", 10);
        put_varint_field(body, 5, 0); /* the last sequence wins */
        break;
    case 28:
        put_bytes_field(body, 1, "ok", 2);
        put_bytes_field(body, 16, "producer-a", 10);
        break;
    case 29:
        put_bytes_field(body, 16, "producer-a", 10);
        put_varint_field(body, 5, 1);
        break;
    case 30:
        put_bytes_field(body, 16, "producer-a", 10);
        put_bytes_field(body, 99, "x", 1);
        break;
    case 31: put_varint_field(body, 16, 1); break;
    case 32: put_bytes_field(body, 16, long_id, sizeof(long_id)); break;
    case 33: put_bytes_field(body, 16, "", 0); break;
    default: break;
    }
}

static void put_header_bytes(struct buffer *body, const void *bytes, size_t length) {
    put_bytes_field(body, 6, bytes, length);
}

static void build_bad_body(size_t which, struct buffer *body) {
    static const uint8_t header_past_end[] = {0x0a, 10, 'a', 'b'};
    static const uint8_t header_bad_key[] = {0x0a, 2, 0xc0, 0x80};
    static const uint8_t header_key_varint[] = {0x08, 1};
    static const uint8_t header_group[] = {(5 << 3) | 3, 0x0a, 0};
    static const uint8_t overflow[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
    uint8_t long_topic[256];
    memset(long_topic, 'x', sizeof(long_topic));
    if (which >= 22) {
        build_bad_identity_body(which, body);
        return;
    }
    /* Every case but those about the topic itself carries a valid topic first. */
    if (which >= 7 && which <= 20 && which != 9) put_bytes_field(body, 1, "ok", 2);
    switch (which) {
    case 0:
        put_varint_field(body, 5, 9);
        put_bytes_field(body, 2, "k", 1);
        break;
    case 1: put_bytes_field(body, 1, "", 0); break;
    case 2:
        put_bytes_field(body, 1, "abc", 3);
        put_bytes_field(body, 1, "", 0);
        break;
    case 3: put_bytes_field(body, 1, long_topic, 256); break;
    case 4: put_bytes_field(body, 1, "ab\xc3\x28", 4); break;
    case 5:
        put_bytes_field(body, 1, "\xff", 1);
        put_bytes_field(body, 1, "ok", 2);
        break;
    case 6: put_bytes_field(body, 1, "\xed\xa0\x80", 3); break;
    case 7:
        put_tag(body, 9, 3);
        put_tag(body, 9, 4);
        break;
    case 8: put_tag(body, 9, 4); break;
    case 9: put_varint_field(body, 1, 5); break;
    case 10: put_bytes_field(body, 5, "12", 2); break;
    case 11:
        put_tag(body, 6, 5);
        buffer_put(body, "abcd", 4);
        break;
    case 12:
        put_tag(body, 3, 2);
        put_varint(body, 50);
        buffer_put(body, "abc", 3);
        break;
    case 13:
        put_tag(body, 4, 0);
        buffer_put(body, "\x80", 1);
        break;
    case 14: put_header_bytes(body, header_past_end, sizeof(header_past_end)); break;
    case 15: put_header_bytes(body, header_bad_key, sizeof(header_bad_key)); break;
    case 16: put_header_bytes(body, header_key_varint, sizeof(header_key_varint)); break;
    case 17: put_header_bytes(body, header_group, sizeof(header_group)); break;
    case 18: put_varint_field(body, 0, 1); break;
    case 19: put_tag(body, 9, 7); break;
    case 20:
        put_tag(body, 4, 0);
        buffer_put(body, overflow, sizeof(overflow));
        break;
    default: break;
    }
}

/* Good records, then the bad bytes, then another good record that must never come out. */
static void check_bad_stream(const uint8_t *bad, size_t bad_length, uint32_t frame_bytes_max,
                             enum record_status status, const char *detail_part, const char *name) {
    struct expected_record records[3];
    struct buffer stream = {0};
    generate_stream(&stream, records, 2, 300);
    buffer_put(&stream, bad, bad_length);
    generate_record(&stream, 300, &records[2]);
    struct stream_expectation expectation = {stream.bytes, records, 2, 1};
    for (int byte_by_byte = 0; byte_by_byte < 2; byte_by_byte++) {
        struct chunk *chunks = calloc(stream.length, sizeof(*chunks));
        REQUIRE(chunks != NULL);
        size_t chunk_count = 1;
        chunks[0] = (struct chunk){stream.bytes, (uint32_t)stream.length, 1};
        for (size_t index = 0; byte_by_byte && index < stream.length; index++)
            chunks[index] = (struct chunk){stream.bytes + index, 1, 1};
        if (byte_by_byte) chunk_count = stream.length;
        struct outcome outcome;
        run_framer(chunks, chunk_count, frame_bytes_max, check_record, &expectation, &outcome);
        CHECK(outcome.records == 2);
        CHECK(outcome.error);
        CHECK(outcome.error_status == status);
        CHECK(strstr(outcome.error_detail, detail_part) != NULL);
        if (strstr(outcome.error_detail, detail_part) == NULL || outcome.records != 2)
            fprintf(stderr, "case \"%s\": %zu records, detail \"%s\"\n", name, outcome.records,
                    outcome.error_detail);
        free(chunks);
    }
    free(stream.bytes);
}

static void test_bad_records(void) {
    for (size_t which = 0; which < INTAKE_ARRAY_LENGTH(bad_cases); which++) {
        struct buffer body = {0}, framed = {0};
        build_bad_body(which, &body);
        put_delimited(&framed, &body);
        check_bad_stream(framed.bytes, framed.length, 1u << 20, RECORD_STATUS_REJECTED,
                         bad_cases[which].detail_part, bad_cases[which].name);
        /* The worker's full decode refuses the same record. */
        struct slice slice = {body.bytes, (uint32_t)body.length, 0};
        struct record_view view = {&slice, body.length ? 1 : 0, (uint32_t)body.length};
        struct record_decoded decoded;
        const char *detail = NULL;
        struct field_span hello;
        enum frame_decode_kind kind = frame_decode_kind(&view, &hello, &detail);
        CHECK(kind != FRAME_DECODE_HELLO);
        if (kind == FRAME_DECODE_RECORD)
            CHECK(record_decode(&view, &decoded, &detail) == RECORD_DECODE_MALFORMED);
        CHECK(detail != NULL);
        free(body.bytes);
        free(framed.bytes);
    }
}

static void test_bad_prefixes(void) {
    /* Oversize: the detail names both sizes. */
    struct buffer framed = {0};
    put_varint(&framed, 2000);
    uint8_t filler[2000];
    memset(filler, 0, sizeof(filler));
    buffer_put(&framed, filler, sizeof(filler));
    check_bad_stream(framed.bytes, framed.length, 1000, RECORD_STATUS_REJECTED,
                     "frame of 2000 bytes exceeds --max-frame 1000", "oversize");
    free(framed.bytes);
    static const uint8_t eleven_bytes[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                           0xff, 0xff, 0xff, 0x81, 0x01};
    check_bad_stream(eleven_bytes, sizeof(eleven_bytes), 1u << 20, RECORD_STATUS_REJECTED,
                     "bad varint length prefix", "11-byte prefix");
    static const uint8_t overflow[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02};
    check_bad_stream(overflow, sizeof(overflow), 1u << 20, RECORD_STATUS_REJECTED,
                     "bad varint length prefix", "overflowing prefix");
}

/* ---- early rejection: a malformed prefix of a huge frame ---- */

struct early_case {
    const char *name;
    const char *detail;
    size_t proof_bytes; /* body bytes up to and including the one that proves it malformed */
};

/* Writes the first body bytes of a frame that announces 900,000 bytes; returns the case. */
static struct early_case build_early_body(size_t which, struct buffer *body) {
    put_bytes_field(body, 1, "orders", 6); /* a valid start: 8 bytes */
    switch (which) {
    case 0:
        put_tag(body, 9, 7);
        return (struct early_case){"wire type 7", "invalid wire type 6 or 7", body->length};
    case 1:
        put_tag(body, 3, 0);
        return (struct early_case){"value as varint",
                                   "field 3 (value) must have wire type 2 "
                                   "(length-delimited)",
                                   body->length};
    case 2:
        put_tag(body, 3, 2);
        put_varint(body, 2000000);
        return (struct early_case){"length past the frame",
                                   "field length runs past the end of the record", body->length};
    case 3:
        put_tag(body, 9, 3);
        return (struct early_case){"group", "groups (wire types 3 and 4) are not supported",
                                   body->length};
    case 5:
        put_tag(body, 7, 0);
        return (struct early_case){"producer_id as varint",
                                   "field 7 (producer_id) must have wire type 2 "
                                   "(length-delimited)",
                                   body->length};
    case 6:
        put_bytes_field(body, 16, "producer", 8);
        return (struct early_case){"Hello field after a topic",
                                   "a Hello frame (field 16) carries no other field, and a "
                                   "record carries no field 16",
                                   body->length};
    default: {
        static const uint8_t eleven[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                         0xff, 0xff, 0xff, 0xff, 0x01};
        put_tag(body, 4, 0);
        buffer_put(body, eleven, 10); /* the 10th byte (0xff) already overflows */
        return (struct early_case){"overlong varint", "varint field value is not a valid varint",
                                   body->length};
    }
    }
}

/* The frame announces 900,000 bytes (under --max-frame 1M); only the prefix, a valid field
 * and the malformed bytes are fed, one byte per chunk. The framer must refuse the frame at the
 * very byte that proves it malformed, with the detail the whole frame gets, holding a record
 * of just the bytes received. */
static void test_early_rejection(void) {
    enum { FRAME_BYTES = 900000, CASES = 7 };
    static struct record records[1];
    for (size_t which = 0; which < CASES; which++) {
        struct buffer stream = {0}, body = {0};
        put_varint(&stream, FRAME_BYTES);
        size_t prefix_bytes = stream.length;
        struct early_case expected = build_early_body(which, &body);
        buffer_put(&stream, body.bytes, body.length);
        struct framer framer;
        framer_init(&framer, 1u << 20);
        size_t fed = 0;
        enum framer_event event = FRAMER_NEED_INPUT;
        while (fed < stream.length && event != FRAMER_ERROR) {
            uint32_t offset = 0;
            event = framer_feed(&framer, stream.bytes + fed, 1, 0, &offset);
            if (event == FRAMER_NEED_RECORD) {
                framer_give_record(&framer, &records[0]);
                event = framer_feed(&framer, stream.bytes + fed, 1, 0, &offset);
            }
            CHECK(offset == 1 || event == FRAMER_NEED_RECORD);
            fed += offset;
        }
        CHECK(event == FRAMER_ERROR);
        CHECK(framer.error_status == RECORD_STATUS_REJECTED);
        CHECK(strcmp(framer.error_detail, expected.detail) == 0);
        CHECK(framer_rejected_early(&framer));
        /* Refused at the proving byte: nothing after it was needed. */
        CHECK(fed == prefix_bytes + expected.proof_bytes);
        CHECK(framer.record != NULL && framer.record->frame_bytes == expected.proof_bytes);
        CHECK(framer.body_bytes_needed == FRAME_BYTES - expected.proof_bytes);
        if (strcmp(framer.error_detail, expected.detail) != 0 ||
            fed != prefix_bytes + expected.proof_bytes)
            fprintf(stderr, "early case \"%s\": fed %zu of %zu, detail \"%s\"\n", expected.name,
                    fed, stream.length, framer.error_detail);
        CHECK(framer_release_record(&framer) == &records[0]);
        /* The whole frame (zeros after the bytes above) gets the same detail, not early. */
        uint8_t *whole = calloc(FRAME_BYTES, 1);
        REQUIRE(whole != NULL);
        memcpy(whole, body.bytes, body.length);
        struct slice slice = {whole, FRAME_BYTES, 0};
        struct record_view view = {&slice, 1, FRAME_BYTES};
        struct record_scan scan;
        CHECK(record_scan_view(&view, &scan) == RECORD_SCAN_MALFORMED);
        CHECK(strcmp(scan.detail, expected.detail) == 0);
        free(whole);
        free(body.bytes);
        free(stream.bytes);
    }
    /* A valid prefix of a huge frame is not refused: the framer waits for the rest. */
    struct buffer stream = {0}, body = {0};
    put_bytes_field(&body, 1, "orders", 6);
    put_tag(&body, 3, 2);
    put_varint(&body, 100);
    put_varint(&stream, FRAME_BYTES);
    buffer_put(&stream, body.bytes, body.length);
    buffer_put(&stream, "0123456789", 10);
    struct framer framer;
    framer_init(&framer, 1u << 20);
    uint32_t offset = 0;
    CHECK(framer_feed(&framer, stream.bytes, (uint32_t)stream.length, 0, &offset) ==
          FRAMER_NEED_RECORD);
    framer_give_record(&framer, &records[0]);
    CHECK(framer_feed(&framer, stream.bytes, (uint32_t)stream.length, 0, &offset) ==
          FRAMER_NEED_INPUT);
    CHECK(offset == stream.length);
    CHECK(framer_release_record(&framer) == &records[0]);
    free(body.bytes);
    free(stream.bytes);
}

/* A record of `body_length` bytes whose every byte arrives in its own unit. */
static void run_fragmented(size_t body_length, struct outcome *outcome, struct buffer *stream,
                           struct expected_record *expected) {
    struct buffer body = {0};
    uint8_t value[200];
    memset(value, 'v', sizeof(value));
    memset(expected, 0, sizeof(*expected));
    expected->topic_offset = (uint32_t)put_bytes_field(&body, 1, "t", 1);
    expected->topic_length = 1;
    size_t value_length = body_length - body.length - 2; /* tag and one-byte length */
    expected->value_offset = (uint32_t)put_bytes_field(&body, 3, value, value_length);
    expected->value_length = (uint32_t)value_length;
    REQUIRE(body.length == body_length);
    put_varint(stream, body.length);
    expected->body_offset = stream->length;
    expected->body_length = (uint32_t)body.length;
    buffer_put(stream, body.bytes, body.length);
    free(body.bytes);
    struct chunk chunks[400];
    REQUIRE(stream->length <= INTAKE_ARRAY_LENGTH(chunks));
    for (size_t index = 0; index < stream->length; index++)
        chunks[index] = (struct chunk){stream->bytes + index, 1, (uint32_t)index};
    struct stream_expectation expectation = {stream->bytes, expected, 1, 1};
    run_framer(chunks, stream->length, 1u << 20, check_record, &expectation, outcome);
}

static void test_fragments(void) {
    struct outcome outcome;
    struct expected_record expected;
    struct buffer stream = {0};
    run_fragmented(RECORD_SLICES_MAX, &outcome, &stream, &expected);
    check_outcome_clean(&outcome, 1);
    stream.length = 0;
    run_fragmented(RECORD_SLICES_MAX + 1, &outcome, &stream, &expected);
    CHECK(outcome.records == 0);
    CHECK(outcome.error && outcome.error_status == RECORD_STATUS_RESOURCE_EXHAUSTED);
    CHECK(strcmp(outcome.error_detail, "record arrived in more than 64 fragments") == 0);
    free(stream.bytes);
}

/* ---- producer identity and Hello frames ---- */

struct identity_seen {
    size_t count;
    uint64_t sequences[8];
    uint16_t flags[8];                                      /* record.sequence_flags */
    char producer_ids[8][RECORD_PRODUCER_ID_BYTES_MAX + 1]; /* "" when none */
};

static void collect_identity(const struct record *record, size_t index, void *context) {
    struct identity_seen *seen = context;
    REQUIRE(index < 8);
    struct record_view view = record_view_of(record);
    seen->sequences[index] = record->sequence;
    seen->flags[index] = record->sequence_flags;
    uint32_t copied =
        record_view_copy(&view, record->producer_id_offset, record->producer_id_length,
                         (uint8_t *)seen->producer_ids[index], RECORD_PRODUCER_ID_BYTES_MAX);
    seen->producer_ids[index][copied] = '\0';
    /* The decoder reports the same span. */
    struct record_decoded decoded;
    const char *detail = NULL;
    CHECK(record_decode(&view, &decoded, &detail) == RECORD_DECODE_OK);
    CHECK(decoded.producer_id.length == record->producer_id_length);
    if (record->producer_id_length > 0)
        CHECK(decoded.producer_id.offset == record->producer_id_offset);
    seen->count = index + 1;
}

static void put_hello(struct buffer *stream, const char *id) {
    struct buffer body = {0};
    put_bytes_field(&body, 16, id, strlen(id));
    put_delimited(stream, &body);
    free(body.bytes);
}

/* A record with topic "t", the sequence, and producer_id `id` (NULL: none). */
static void put_identity_record(struct buffer *stream, const char *id, uint64_t sequence) {
    struct buffer body = {0};
    put_bytes_field(&body, 1, "t", 1);
    if (id != NULL) put_bytes_field(&body, 7, id, strlen(id));
    put_varint_field(&body, 5, sequence);
    put_delimited(stream, &body);
    free(body.bytes);
}

/* Frames the stream in one chunk and byte by byte; both must give the same outcome. */
static void frame_identity_stream(const struct buffer *stream, struct outcome *outcome,
                                  struct identity_seen *seen) {
    struct chunk *chunks = calloc(stream->length, sizeof(*chunks));
    REQUIRE(chunks != NULL);
    for (size_t index = 0; index < stream->length; index++)
        chunks[index] = (struct chunk){stream->bytes + index, 1, 0}; /* merges: one slice */
    struct outcome split;
    struct identity_seen split_seen;
    memset(&split_seen, 0, sizeof(split_seen));
    run_framer(chunks, stream->length, 1u << 20, collect_identity, &split_seen, &split);
    struct chunk whole = {stream->bytes, (uint32_t)stream->length, 0};
    memset(seen, 0, sizeof(*seen));
    run_framer(&whole, 1, 1u << 20, collect_identity, seen, outcome);
    CHECK(split.records == outcome->records && split.hellos == outcome->hellos);
    CHECK(split.error == outcome->error);
    CHECK(strcmp(split.error_detail, outcome->error_detail) == 0);
    if (strcmp(split.error_detail, outcome->error_detail) != 0)
        fprintf(stderr, "split \"%s\", whole \"%s\"\n", split.error_detail, outcome->error_detail);
    CHECK(memcmp(&split_seen, seen, sizeof(*seen)) == 0);
    free(chunks);
}

static void expect_identity_error(const struct buffer *stream, size_t records_before,
                                  size_t hellos_before, const char *detail_part, int identity_error,
                                  const char *name) {
    struct outcome outcome;
    struct identity_seen seen;
    frame_identity_stream(stream, &outcome, &seen);
    CHECK(outcome.records == records_before);
    CHECK(outcome.hellos == hellos_before);
    CHECK(outcome.error && outcome.error_status == RECORD_STATUS_REJECTED);
    CHECK(outcome.identity_error == identity_error);
    CHECK(strstr(outcome.error_detail, detail_part) != NULL);
    if (strstr(outcome.error_detail, detail_part) == NULL)
        fprintf(stderr, "identity case \"%s\": detail \"%s\"\n", name, outcome.error_detail);
}

static void test_identity(void) {
    struct outcome outcome;
    struct identity_seen seen;
    /* A Hello, then records carrying the same producer_id. */
    struct buffer stream = {0};
    put_hello(&stream, "producer-a");
    put_identity_record(&stream, "producer-a", 1);
    put_identity_record(&stream, "producer-a", 2);
    frame_identity_stream(&stream, &outcome, &seen);
    CHECK(!outcome.error && outcome.hellos == 1 && outcome.records == 2);
    CHECK(seen.count == 2 && seen.sequences[1] == 2);
    CHECK(strcmp(seen.producer_ids[0], "producer-a") == 0);
    CHECK(strcmp(seen.producer_ids[1], "producer-a") == 0);
    free(stream.bytes);

    /* No Hello: the first record sets the identity; old producers (none at all) are as before. */
    stream = (struct buffer){0};
    put_identity_record(&stream, "producer-b", 5);
    put_identity_record(&stream, "producer-b", 6);
    frame_identity_stream(&stream, &outcome, &seen);
    CHECK(!outcome.error && outcome.hellos == 0 && outcome.records == 2);
    CHECK(strcmp(seen.producer_ids[1], "producer-b") == 0);
    free(stream.bytes);
    stream = (struct buffer){0};
    put_identity_record(&stream, NULL, 0);
    put_identity_record(&stream, NULL, 3);
    frame_identity_stream(&stream, &outcome, &seen);
    CHECK(!outcome.error && outcome.records == 2 && seen.producer_ids[1][0] == '\0');
    free(stream.bytes);

    /* The last producer_id occurrence wins, as for every non-repeated field. */
    stream = (struct buffer){0};
    {
        struct buffer body = {0};
        put_bytes_field(&body, 7, "first", 5);
        put_bytes_field(&body, 1, "t", 1);
        put_varint_field(&body, 5, 1);
        put_bytes_field(&body, 7, "second", 6);
        put_delimited(&stream, &body);
        free(body.bytes);
    }
    put_identity_record(&stream, "second", 2);
    frame_identity_stream(&stream, &outcome, &seen);
    CHECK(!outcome.error && outcome.records == 2);
    CHECK(strcmp(seen.producer_ids[0], "second") == 0);
    free(stream.bytes);

    /* Violations: a Hello not first, twice, ids that differ, present/absent mixed. */
    stream = (struct buffer){0};
    put_identity_record(&stream, "producer-a", 1);
    put_hello(&stream, "producer-a");
    expect_identity_error(&stream, 1, 0, "a Hello must be the connection's first frame", 1,
                          "Hello after a record");
    free(stream.bytes);
    stream = (struct buffer){0};
    put_hello(&stream, "producer-a");
    put_hello(&stream, "producer-a");
    expect_identity_error(&stream, 0, 1, "a Hello must be the connection's first frame", 1,
                          "two Hellos");
    free(stream.bytes);
    stream = (struct buffer){0};
    put_hello(&stream, "producer-a");
    put_identity_record(&stream, "producer-a", 1);
    put_identity_record(&stream, "producer-c", 2);
    expect_identity_error(&stream, 1, 1, "producer_id differs", 1, "other id");
    free(stream.bytes);
    stream = (struct buffer){0};
    put_identity_record(&stream, "producer-a", 1);
    put_identity_record(&stream, "producer-ab", 2);
    expect_identity_error(&stream, 1, 0, "producer_id differs", 1, "longer id");
    free(stream.bytes);
    stream = (struct buffer){0};
    put_hello(&stream, "producer-a");
    put_identity_record(&stream, NULL, 1);
    expect_identity_error(&stream, 0, 1, "a record without a producer_id", 1, "absent after");
    free(stream.bytes);
    stream = (struct buffer){0};
    put_identity_record(&stream, NULL, 1);
    put_identity_record(&stream, "producer-a", 2);
    expect_identity_error(&stream, 1, 0, "a record with a producer_id on a connection", 1,
                          "present after absent");
    free(stream.bytes);
    /* A malformed Hello, and a producer_id of a size refused, are identity refusals too (they
     * are counted as such); a record malformed otherwise is not. */
    stream = (struct buffer){0};
    put_hello(&stream, "0123456789012345678901234567890123456789012345678901234567890123X");
    expect_identity_error(&stream, 0, 0, "producer_id is longer than 64 bytes", 1, "65 bytes");
    free(stream.bytes);
    stream = (struct buffer){0};
    put_hello(&stream, "");
    expect_identity_error(&stream, 0, 0, "producer_id is empty", 1, "empty Hello");
    free(stream.bytes);
    stream = (struct buffer){0};
    {
        struct buffer body = {0};
        put_bytes_field(&body, 16, "producer-a", 10);
        put_bytes_field(&body, 1, "t", 1);
        put_delimited(&stream, &body);
        free(body.bytes);
    }
    expect_identity_error(&stream, 0, 0, "a Hello frame (field 16) carries no other field", 1,
                          "Hello with a topic");
    free(stream.bytes);
    stream = (struct buffer){0};
    {
        struct buffer body = {0};
        put_varint_field(&body, 16, 7);
        put_delimited(&stream, &body);
        free(body.bytes);
    }
    expect_identity_error(&stream, 0, 0, "field 16 (Hello.producer_id) must have wire type 2", 1,
                          "Hello as a varint");
    free(stream.bytes);
    stream = (struct buffer){0};
    {
        struct buffer body = {0};
        put_bytes_field(&body, 1, "t", 1);
        put_varint_field(&body, 5, 1);
        put_bytes_field(&body, 7,
                        "0123456789012345678901234567890123456789012345678901234567890123X", 65);
        put_delimited(&stream, &body);
        free(body.bytes);
    }
    expect_identity_error(&stream, 0, 0, "producer_id is longer than 64 bytes", 1,
                          "record id of 65 bytes");
    free(stream.bytes);
    stream = (struct buffer){0};
    {
        struct buffer body = {0};
        put_bytes_field(&body, 7, "producer-a", 10);
        put_varint_field(&body, 5, 1);
        put_delimited(&stream, &body);
        free(body.bytes);
    }
    expect_identity_error(&stream, 0, 0, "record has no topic", 0, "record without a topic");
    free(stream.bytes);
    printf("identity: Hello and producer_id rules hold whole and byte by byte\n");
}

/* A sequence out of order on its connection, as expect_identity_error but for sequences. */
static void expect_sequence_error(const struct buffer *stream, size_t records_before,
                                  const char *detail, const char *name) {
    struct outcome outcome;
    struct identity_seen seen;
    frame_identity_stream(stream, &outcome, &seen);
    CHECK(outcome.records == records_before);
    CHECK(outcome.error && outcome.error_status == RECORD_STATUS_REJECTED);
    CHECK(outcome.sequence_error && !outcome.identity_error);
    CHECK(strcmp(outcome.error_detail, detail) == 0);
    if (strcmp(outcome.error_detail, detail) != 0)
        fprintf(stderr, "sequence case \"%s\": detail \"%s\"\n", name, outcome.error_detail);
}

/* Issue 17: on a connection with a producer_id, each record is the previous one plus one; the
 * first is marked for the reactor. */
static void test_sequences(void) {
    struct outcome outcome;
    struct identity_seen seen;
    struct buffer stream = {0};
    put_hello(&stream, "p");
    for (uint64_t sequence = 41; sequence <= 44; sequence++)
        put_identity_record(&stream, "p", sequence);
    frame_identity_stream(&stream, &outcome, &seen);
    CHECK(!outcome.error && outcome.records == 4);
    CHECK(seen.flags[0] == RECORD_SEQUENCE_FIRST && seen.flags[1] == 0 && seen.flags[3] == 0);
    free(stream.bytes);
    /* Without a producer_id nothing is checked or marked. */
    stream = (struct buffer){0};
    put_identity_record(&stream, NULL, 7);
    put_identity_record(&stream, NULL, 3);
    frame_identity_stream(&stream, &outcome, &seen);
    CHECK(!outcome.error && outcome.records == 2 && seen.flags[0] == 0);
    free(stream.bytes);
    /* The case c on one connection: 1, 2, 3, 10 is refused at 10. */
    stream = (struct buffer){0};
    for (uint64_t sequence = 1; sequence <= 3; sequence++)
        put_identity_record(&stream, "A", sequence);
    put_identity_record(&stream, "A", 10);
    put_identity_record(&stream, "A", 4);
    expect_sequence_error(&stream, 3,
                          "sequence 10 is out of order on this connection: expected 4 "
                          "(producer_id \"A\")",
                          "a jump");
    free(stream.bytes);
    /* A repeat and a step back. */
    stream = (struct buffer){0};
    put_identity_record(&stream, "A", 5);
    put_identity_record(&stream, "A", 5);
    expect_sequence_error(&stream, 1,
                          "sequence 5 is out of order on this connection: expected 6 "
                          "(producer_id \"A\")",
                          "a repeat");
    free(stream.bytes);
    stream = (struct buffer){0};
    put_hello(&stream, "q\"\\\x01");
    put_identity_record(&stream, "q\"\\\x01", 9);
    put_identity_record(&stream, "q\"\\\x01", 8);
    expect_sequence_error(&stream, 1,
                          "sequence 8 is out of order on this connection: expected 10 "
                          "(producer_id \"q\\\"\\\\\\x01\")",
                          "a step back, an id to escape");
    free(stream.bytes);
    /* The largest sequence has no successor. */
    stream = (struct buffer){0};
    put_identity_record(&stream, "A", UINT64_MAX);
    put_identity_record(&stream, "A", 1);
    expect_sequence_error(&stream, 1,
                          "sequence 1 is out of order on this connection: expected 0 "
                          "(producer_id \"A\")",
                          "past the largest");
    free(stream.bytes);
    /* A 64-byte id of bytes to escape is cut with "..." and the detail fits an Ack. */
    char text[FRAMER_ID_TEXT_BYTES];
    uint8_t binary[RECORD_PRODUCER_ID_BYTES_MAX];
    memset(binary, 0xff, sizeof(binary));
    framer_id_text(binary, sizeof(binary), text, sizeof(text));
    CHECK(strlen(text) < sizeof(text) && strcmp(text + strlen(text) - 3, "...") == 0);
    CHECK(strncmp(text, "\\xff\\xff", 8) == 0);
    printf("sequences: consecutive per connection, refusals named\n");
}

/* record_view_equals against memcmp on the flat bytes, for every span of a 24-byte record
 * under every way of cutting it into 1 to 3 slices (its fast path covers spans inside the last
 * slice; the rest go through a cursor), equal and with one byte changed at each place. */
static void test_view_equals(void) {
    enum { TOTAL = 24 };
    uint8_t flat[TOTAL];
    for (uint32_t at = 0; at < TOTAL; at++) flat[at] = (uint8_t)(0x41 + at * 7);
    uint32_t layouts = 0;
    for (uint32_t cut1 = 1; cut1 <= TOTAL; cut1++) {
        for (uint32_t cut2 = cut1; cut2 <= TOTAL; cut2++) {
            /* Slices [0, cut1), [cut1, cut2), [cut2, TOTAL), empty ones left out; each slice
             * in its own copy so that no comparison can run across a slice boundary. */
            uint8_t copies[3][TOTAL];
            struct slice slices[3];
            uint32_t bounds[4] = {0, cut1, cut2, TOTAL}, count = 0;
            for (uint32_t piece = 0; piece < 3; piece++) {
                uint32_t length = bounds[piece + 1] - bounds[piece];
                if (length == 0) continue;
                memcpy(copies[count], flat + bounds[piece], length);
                slices[count] = (struct slice){copies[count], length, 0};
                count++;
            }
            struct record_view view = {slices, count, TOTAL};
            layouts++;
            for (uint32_t offset = 0; offset <= TOTAL; offset++) {
                for (uint32_t length = 0; length <= TOTAL - offset; length++) {
                    CHECK(record_view_equals(&view, offset, length, flat + offset));
                    for (uint32_t wrong = 0; wrong < length; wrong++) {
                        uint8_t other[TOTAL];
                        memcpy(other, flat + offset, length);
                        other[wrong] ^= 0x20;
                        CHECK(!record_view_equals(&view, offset, length, other));
                    }
                }
            }
        }
    }
    printf("view_equals: every span of %u slice layouts compares as memcmp does\n", layouts);
}

int main(void) {
    test_every_split();
    test_random_splits();
    test_bad_records();
    test_bad_prefixes();
    test_early_rejection();
    test_fragments();
    test_identity();
    test_sequences();
    test_view_equals();
    return test_finish();
}
