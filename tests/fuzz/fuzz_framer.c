/*
 * fuzz_framer.c: the framer and record scan fed an arbitrary byte stream in arbitrary chunk
 * splits, as receive buffers deliver it (slices across units, contiguous or not).
 *
 * Input: the stream, then (from the tail) one byte whose low 5 bits count the split bytes
 * before it and whose top 2 bits pick --max-frame, then the split bytes (fuzz_util.h).
 *
 * Properties asserted:
 *   1. The pair property: every record the framer admits, record_decode (nanopb, from the same
 *      slices) accepts, with the same topic span, sequence and timestamp, and record_scan_view
 *      over one contiguous copy agrees too.
 *   2. The framer's result does not depend on the split: the records (bytes, topic, sequence,
 *      timestamp) and the final error (status and detail) equal those of the whole stream fed
 *      as one chunk. The one exception is RESOURCE_EXHAUSTED "more than 64 fragments", which
 *      depends on the split by design: then the records before it must match.
 *   3. Early rejection is sound: when a frame is refused before its last byte arrived, every
 *      completion of what arrived (zeros, 0xff, the stream's own bytes) is malformed with the
 *      same detail when scanned whole.
 *   4. Hellos and identity: every Hello the framer accepts, nanopb classifies as a Hello
 *      (frame_decode_kind) with the same producer_id span; every record it admits, nanopb
 *      classifies as a record with the same producer_id span; a frame refused for identity
 *      is either well-formed on its own (a misplaced Hello, a producer_id differing from the
 *      connection's) or a malformed claim (a Hello, a producer_id of a refused size) that a
 *      whole scan refuses alike, and every admitted record carries the producer_id the
 *      connection started with.
 *   5. Sequences (issue 17): the admitted records with a producer_id carry consecutive
 *      sequences, the first of them marked RECORD_SEQUENCE_FIRST and no other; a frame refused
 *      for its sequence is well-formed, carries the connection's producer_id, and its sequence
 *      is not the previous record's plus one.
 *   6. No read outside the chunks (ASan: chunks of modes 2 and 3 are exact allocations).
 */
#include <stdint.h>
#include <string.h>

#include "framer.h"
#include "fuzz_util.h"
#include "record_decode.h"
#include "record_scan.h"

/* --max-frame choices: the default, and small ones so oversize frames are common. */
static const uint32_t frame_bytes_max_choices[4] = {1u << 20, 64, 300, 4096};

/* What one run of the framer produced, to compare runs over different splits. */
struct framed_record {
    uint8_t *bytes; /* a contiguous copy */
    uint32_t length;
    uint32_t topic_offset, topic_length;
    uint64_t sequence, timestamp_ns;
    uint32_t producer_id_offset, producer_id_length;
    int is_hello;
};

struct framer_outcome {
    struct framed_record *records;
    size_t record_count, record_capacity;
    int error;
    enum record_status error_status;
    const char *error_detail; /* copied below: the framer's buffer dies with it */
    char error_detail_copy[FRAMER_DETAIL_BYTES];
    uint64_t last_sequence; /* of the last admitted record with a producer_id; 0 before one */
    int idle_at_end;
};

static uint8_t *view_copy(const struct record_view *view) {
    uint8_t *bytes = malloc(view->total_bytes ? view->total_bytes : 1);
    FUZZ_CHECK(bytes != NULL);
    FUZZ_CHECK(record_view_copy(view, 0, view->total_bytes, bytes, view->total_bytes) ==
               view->total_bytes);
    return bytes;
}

/* Property 1 on one admitted record. */
static void check_admitted(const struct record *record, const uint8_t *contiguous) {
    struct record_view view = record_view_of(record);
    uint32_t slice_bytes = 0;
    for (uint32_t index = 0; index < record->slice_count; index++) {
        FUZZ_CHECK(record->slices[index].length > 0);
        slice_bytes += record->slices[index].length;
    }
    FUZZ_CHECK(slice_bytes == record->frame_bytes);
    struct record_decoded decoded;
    const char *detail = NULL;
    struct field_span hello_span;
    FUZZ_CHECK(frame_decode_kind(&view, &hello_span, &detail) == FRAME_DECODE_RECORD);
    enum record_decode_result result = record_decode(&view, &decoded, &detail);
    if (result != RECORD_DECODE_OK) fprintf(stderr, "decode refused: %s\n", detail);
    FUZZ_CHECK(result == RECORD_DECODE_OK);
    FUZZ_CHECK(decoded.topic.offset == record->topic_offset);
    FUZZ_CHECK(decoded.topic.length == record->topic_length);
    FUZZ_CHECK(decoded.sequence == record->sequence);
    FUZZ_CHECK(decoded.timestamp_ns == record->timestamp_ns);
    FUZZ_CHECK(decoded.producer_id.length == record->producer_id_length);
    if (record->producer_id_length > 0)
        FUZZ_CHECK(decoded.producer_id.offset == record->producer_id_offset);
    struct slice whole = {contiguous, record->frame_bytes, 0};
    struct record_view whole_view = {&whole, 1, record->frame_bytes};
    struct record_scan scan;
    FUZZ_CHECK(record_scan_view(&whole_view, &scan) == RECORD_SCAN_OK);
    FUZZ_CHECK(scan.topic_offset == record->topic_offset);
    FUZZ_CHECK(scan.topic_length == record->topic_length);
    FUZZ_CHECK(scan.sequence == record->sequence);
    FUZZ_CHECK(scan.timestamp_ns == record->timestamp_ns);
    FUZZ_CHECK(scan.header_count == decoded.header_count);
    FUZZ_CHECK(!scan.is_hello);
    FUZZ_CHECK(scan.producer_id_length == record->producer_id_length);
}

/* Property 4 on one accepted Hello. */
static void check_hello(const struct record *record, const struct framer *framer) {
    struct record_view view = record_view_of(record);
    struct field_span span;
    const char *detail = NULL;
    FUZZ_CHECK(frame_decode_kind(&view, &span, &detail) == FRAME_DECODE_HELLO);
    struct record_scan scan;
    FUZZ_CHECK(record_scan_view(&view, &scan) == RECORD_SCAN_OK && scan.is_hello);
    FUZZ_CHECK(span.offset == scan.producer_id_offset && span.length == scan.producer_id_length);
    uint32_t length = 0;
    const uint8_t *id = framer_producer_id(framer, &length);
    FUZZ_CHECK(id != NULL && length == span.length);
    FUZZ_CHECK(record_view_equals(&view, span.offset, span.length, id));
}

/* Property 4: an admitted record carries the connection's producer_id (or none, as it does). */
static void check_identity(const struct record *record, const struct framer *framer) {
    struct record_view view = record_view_of(record);
    uint32_t length = 0;
    const uint8_t *id = framer_producer_id(framer, &length);
    FUZZ_CHECK(length == record->producer_id_length);
    if (length > 0) FUZZ_CHECK(record_view_equals(&view, record->producer_id_offset, length, id));
}

/* Property 3: `received` bytes of a frame of `frame_bytes` were refused early with `detail`. */
static void check_early_rejection(const uint8_t *received, uint32_t received_length,
                                  uint32_t frame_bytes, const char *detail, const uint8_t *filler,
                                  size_t filler_length) {
    FUZZ_CHECK(received_length < frame_bytes);
    uint8_t *frame = malloc(frame_bytes);
    FUZZ_CHECK(frame != NULL);
    /* Three completions for ordinary sizes; one for frames near --max-frame 1M (cost). */
    int completions = frame_bytes <= (1u << 16) ? 3 : 1;
    for (int completion = 0; completion < completions; completion++) {
        memcpy(frame, received, received_length);
        for (uint32_t index = received_length; index < frame_bytes; index++) {
            uint8_t byte = completion == 0 ? 0x00 : 0xff;
            if (completion == 2 && filler_length > 0)
                byte = filler[(index - received_length) % filler_length];
            frame[index] = byte;
        }
        struct slice whole = {frame, frame_bytes, 0};
        struct record_view view = {&whole, 1, frame_bytes};
        struct record_scan scan;
        FUZZ_CHECK(record_scan_view(&view, &scan) == RECORD_SCAN_MALFORMED);
        if (strcmp(scan.detail, detail) != 0)
            fprintf(stderr, "early \"%s\", whole \"%s\"\n", detail, scan.detail);
        FUZZ_CHECK(strcmp(scan.detail, detail) == 0);
    }
    free(frame);
}

static void outcome_add(struct framer_outcome *outcome, const struct record *record) {
    if (outcome->record_count == outcome->record_capacity) {
        outcome->record_capacity = outcome->record_capacity ? 2 * outcome->record_capacity : 8;
        outcome->records =
            realloc(outcome->records, outcome->record_capacity * sizeof(*outcome->records));
        FUZZ_CHECK(outcome->records != NULL);
    }
    struct record_view view = record_view_of(record);
    struct framed_record *framed = &outcome->records[outcome->record_count++];
    framed->bytes = view_copy(&view);
    framed->length = record->frame_bytes;
    framed->topic_offset = record->topic_offset;
    framed->topic_length = record->topic_length;
    framed->sequence = record->sequence;
    framed->timestamp_ns = record->timestamp_ns;
    framed->producer_id_offset = record->producer_id_offset;
    framed->producer_id_length = record->producer_id_length;
    framed->is_hello = 0;
}

static void outcome_free(struct framer_outcome *outcome) {
    for (size_t index = 0; index < outcome->record_count; index++)
        free(outcome->records[index].bytes);
    free(outcome->records);
}

/* Feeds every chunk through one framer; two record objects play the reactor's pool. */
static void run_framer(const struct fuzz_chunks *chunks, uint32_t frame_bytes_max,
                       const uint8_t *filler, size_t filler_length,
                       struct framer_outcome *outcome) {
    static struct record records[2];
    int record_in_use[2] = {0, 0};
    struct framer framer;
    framer_init(&framer, frame_bytes_max);
    memset(outcome, 0, sizeof(*outcome));
    for (size_t index = 0; index < chunks->count && !outcome->error; index++) {
        const struct fuzz_chunk *chunk = &chunks->chunks[index];
        uint32_t offset = 0;
        for (int done = 0; !done;) {
            uint32_t before = offset;
            enum framer_event event =
                framer_feed(&framer, chunk->bytes, chunk->length, chunk->unit, &offset);
            FUZZ_CHECK(offset >= before && offset <= chunk->length);
            switch (event) {
            case FRAMER_NEED_INPUT:
                FUZZ_CHECK(offset == chunk->length);
                done = 1;
                break;
            case FRAMER_NEED_RECORD: {
                int free_index = record_in_use[0] ? 1 : 0;
                FUZZ_CHECK(!record_in_use[free_index]);
                record_in_use[free_index] = 1;
                framer_give_record(&framer, &records[free_index]);
                break;
            }
            case FRAMER_RECORD: {
                struct record *record = framer_take_record(&framer);
                outcome_add(outcome, record);
                check_admitted(record, outcome->records[outcome->record_count - 1].bytes);
                check_identity(record, &framer);
                if (record->producer_id_length > 0) {
                    /* Property 5. */
                    bool first = outcome->last_sequence == 0;
                    FUZZ_CHECK(record->sequence_flags == (first ? RECORD_SEQUENCE_FIRST : 0));
                    FUZZ_CHECK(first || record->sequence == outcome->last_sequence + 1);
                    outcome->last_sequence = record->sequence;
                } else {
                    FUZZ_CHECK(record->sequence_flags == 0);
                }
                record_in_use[record == &records[0] ? 0 : 1] = 0;
                break;
            }
            case FRAMER_HELLO: {
                struct record *record = framer_take_hello(&framer);
                FUZZ_CHECK(outcome->record_count == 0);
                outcome_add(outcome, record);
                outcome->records[outcome->record_count - 1].is_hello = 1;
                check_hello(record, &framer);
                record_in_use[record == &records[0] ? 0 : 1] = 0;
                break;
            }
            case FRAMER_ERROR:
                outcome->error = 1;
                outcome->error_status = framer.error_status;
                snprintf(outcome->error_detail_copy, sizeof(outcome->error_detail_copy), "%s",
                         framer.error_detail);
                outcome->error_detail = outcome->error_detail_copy;
                if (framer_rejected_early(&framer)) {
                    FUZZ_CHECK(framer.record != NULL && framer.in_body);
                    FUZZ_CHECK(framer.body_bytes_needed > 0);
                    struct record_view view = record_view_of(framer.record);
                    uint8_t *received = view_copy(&view);
                    check_early_rejection(received, view.total_bytes,
                                          view.total_bytes + framer.body_bytes_needed,
                                          framer.error_detail, filler, filler_length);
                    free(received);
                } else if (framer_rejected_for_sequence(&framer)) {
                    /* Property 5: a well-formed record out of order on its connection. */
                    FUZZ_CHECK(framer.record != NULL && framer.body_bytes_needed == 0);
                    struct record_view view = record_view_of(framer.record);
                    struct record_scan scan;
                    FUZZ_CHECK(record_scan_view(&view, &scan) == RECORD_SCAN_OK);
                    FUZZ_CHECK(!scan.is_hello && scan.producer_id_length > 0);
                    FUZZ_CHECK(outcome->last_sequence != 0);
                    FUZZ_CHECK(scan.sequence != outcome->last_sequence + 1 ||
                               outcome->last_sequence == UINT64_MAX);
                    FUZZ_CHECK(!framer_rejected_for_identity(&framer));
                } else if (framer_rejected_for_identity(&framer)) {
                    /* A well-formed frame in the wrong place, or with another producer_id; or
                     * one whose claim itself is malformed (a Hello, a producer_id of a size
                     * refused), which a whole scan refuses alike, as a claim. */
                    FUZZ_CHECK(framer.record != NULL && framer.body_bytes_needed == 0);
                    struct record_view view = record_view_of(framer.record);
                    struct record_scan scan;
                    if (record_scan_view(&view, &scan) == RECORD_SCAN_OK) {
                        FUZZ_CHECK(scan.is_hello || scan.producer_id_length > 0 ||
                                   framer_producer_id(&framer, &(uint32_t){0}) != NULL);
                    } else {
                        FUZZ_CHECK(scan.identity_claimed);
                        FUZZ_CHECK(strcmp(scan.detail, framer.error_detail) == 0);
                    }
                } else if (framer.record != NULL && framer.in_body &&
                           framer.body_bytes_needed == 0) {
                    /* Refused when complete: the resumed scan said what a whole scan says. */
                    struct record_view view = record_view_of(framer.record);
                    struct record_scan scan;
                    FUZZ_CHECK(record_scan_view(&view, &scan) == RECORD_SCAN_MALFORMED);
                    FUZZ_CHECK(strcmp(scan.detail, framer.error_detail) == 0);
                }
                done = 1;
                break;
            }
        }
    }
    outcome->idle_at_end = framer_is_idle(&framer);
    struct record *held = framer_release_record(&framer);
    FUZZ_CHECK(held == NULL || held == &records[0] || held == &records[1]);
}

static int is_fragment_limit(const struct framer_outcome *outcome) {
    return outcome->error && outcome->error_status == RECORD_STATUS_RESOURCE_EXHAUSTED;
}

/* Property 2. */
static void check_same_outcome(const struct framer_outcome *whole,
                               const struct framer_outcome *split) {
    FUZZ_CHECK(!is_fragment_limit(whole));
    size_t count = split->record_count;
    FUZZ_CHECK(count <= whole->record_count);
    for (size_t index = 0; index < count; index++) {
        const struct framed_record *a = &whole->records[index], *b = &split->records[index];
        FUZZ_CHECK(a->length == b->length);
        FUZZ_CHECK(memcmp(a->bytes, b->bytes, a->length) == 0);
        FUZZ_CHECK(a->topic_offset == b->topic_offset && a->topic_length == b->topic_length);
        FUZZ_CHECK(a->sequence == b->sequence && a->timestamp_ns == b->timestamp_ns);
        FUZZ_CHECK(a->is_hello == b->is_hello);
        FUZZ_CHECK(a->producer_id_offset == b->producer_id_offset &&
                   a->producer_id_length == b->producer_id_length);
    }
    if (is_fragment_limit(split)) {
        FUZZ_CHECK(strcmp(split->error_detail, "record arrived in more than 64 fragments") == 0);
        return;
    }
    FUZZ_CHECK(count == whole->record_count);
    FUZZ_CHECK(split->error == whole->error);
    if (whole->error) {
        FUZZ_CHECK(split->error_status == whole->error_status);
        if (strcmp(split->error_detail, whole->error_detail) != 0)
            fprintf(stderr, "whole \"%s\", split \"%s\"\n", whole->error_detail,
                    split->error_detail);
        FUZZ_CHECK(strcmp(split->error_detail, whole->error_detail) == 0);
    } else {
        FUZZ_CHECK(split->idle_at_end == whole->idle_at_end);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct fuzz_input input = {data, size};
    uint8_t control = fuzz_take_byte(&input);
    uint8_t splits[FUZZ_SPLIT_BYTES_MAX] = {0};
    size_t split_count = fuzz_take_bytes(&input, splits, control & 31);
    uint32_t frame_bytes_max = frame_bytes_max_choices[control >> 6];
    struct fuzz_chunks whole_chunks, split_chunks;
    fuzz_chunks_make(input.head, input.head_length, NULL, 0, &whole_chunks);
    fuzz_chunks_make(input.head, input.head_length, splits, split_count, &split_chunks);
    struct framer_outcome whole, split;
    run_framer(&whole_chunks, frame_bytes_max, input.head, input.head_length, &whole);
    run_framer(&split_chunks, frame_bytes_max, input.head, input.head_length, &split);
    check_same_outcome(&whole, &split);
    outcome_free(&whole);
    outcome_free(&split);
    fuzz_chunks_free(&whole_chunks);
    fuzz_chunks_free(&split_chunks);
    return 0;
}
