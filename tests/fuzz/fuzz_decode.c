/*
 * fuzz_decode.c: record_decode (nanopb from slices) and record_scan on arbitrary record bytes
 * cut into arbitrary slices.
 *
 * Input: the record body (no length prefix), then (from the tail) one byte whose low 5 bits
 * count the split bytes before it, then the split bytes (fuzz_util.h). Every slice is its own
 * exact-sized allocation unless its mode makes it contiguous with the previous one, so ASan
 * reports any read outside the slices. At most RECORD_SLICES_MAX slices, as the framer makes.
 *
 * Properties asserted:
 *   1. No crash, no assertion, no read outside the slices, for decode and scan.
 *   2. Decode and scan agree: one accepts exactly when the other does (the pair property in
 *      both directions), and on acceptance they report the same topic span, sequence,
 *      timestamp and header count. Two exceptions, asserted narrowly: an overlong varint in
 *      an unknown field, and a tag with bits above 32, which nanopb accepts and the scan
 *      refuses (see judge()).
 *   3. The resumable scan agrees with the whole scan: fed the slices one at a time,
 *      record_scan_prefix refuses a prefix only if the whole record is refused with the same
 *      detail, and record_scan_finish returns exactly what record_scan_view returns.
 *   4. The result does not depend on the split (a single-slice copy decodes the same).
 */
#include <stdint.h>
#include <string.h>

#include "fuzz_util.h"
#include "record_decode.h"
#include "record_scan.h"

struct verdict {
    int scan_ok, decode_ok;
    int decode_hello; /* frame_decode_kind said Hello */
    struct field_span hello_span;
    struct record_scan scan;
    struct record_decoded decoded;
    const char *decode_detail;
};

/* Scan refusals nanopb does not share (see judge). */
static int lenient_detail(const char *detail) {
    return strcmp(detail, "varint field value is not a valid varint") == 0 ||
           strcmp(detail, "header varint field value is not a valid varint") == 0 ||
           strcmp(detail, "field number is larger than 2^29 - 1") == 0;
}

static void judge(const struct record_view *view, struct verdict *verdict) {
    verdict->scan_ok = record_scan_view(view, &verdict->scan) == RECORD_SCAN_OK;
    /* nanopb's view: first the frame's kind (Hello or record), then a record's decode. */
    memset(&verdict->decoded, 0, sizeof(verdict->decoded));
    enum frame_decode_kind kind =
        frame_decode_kind(view, &verdict->hello_span, &verdict->decode_detail);
    verdict->decode_hello = kind == FRAME_DECODE_HELLO;
    if (kind == FRAME_DECODE_RECORD)
        verdict->decode_ok =
            record_decode(view, &verdict->decoded, &verdict->decode_detail) == RECORD_DECODE_OK;
    else
        verdict->decode_ok = kind == FRAME_DECODE_HELLO;
    FUZZ_CHECK(verdict->scan_ok || verdict->scan.detail != NULL);
    FUZZ_CHECK(verdict->decode_ok || verdict->decode_detail != NULL);
    if (verdict->scan_ok != verdict->decode_ok)
        fprintf(stderr, "scan %s (%s), decode %s (%s)\n", verdict->scan_ok ? "admits" : "refuses",
                verdict->scan_ok ? "-" : verdict->scan.detail,
                verdict->decode_ok ? "accepts" : "refuses",
                verdict->decode_ok ? "-" : verdict->decode_detail);
    /* The two known differences, where nanopb is more lenient than protobuf (record_decode.h):
     * it skips an unknown varint field byte by byte without the 10-byte limit, and it reads a
     * tag as a 32-bit varint, dropping bits above 32 that make the field number too large.
     * Harmless: the worker decodes only records the scan admitted. Any other disagreement, and
     * any case where the scan admits and the decode refuses, fails. */
    if (verdict->decode_ok && !verdict->scan_ok && lenient_detail(verdict->scan.detail)) return;
    FUZZ_CHECK(verdict->scan_ok == verdict->decode_ok);
    if (!verdict->scan_ok) return;
    FUZZ_CHECK(!verdict->scan.is_hello == !verdict->decode_hello);
    if (verdict->scan.is_hello) {
        FUZZ_CHECK(verdict->scan.producer_id_offset == verdict->hello_span.offset);
        FUZZ_CHECK(verdict->scan.producer_id_length == verdict->hello_span.length);
        FUZZ_CHECK(verdict->scan.producer_id_length >= 1);
        FUZZ_CHECK(verdict->scan.producer_id_length <= RECORD_PRODUCER_ID_BYTES_MAX);
        return;
    }
    FUZZ_CHECK(verdict->scan.producer_id_length == verdict->decoded.producer_id.length);
    if (verdict->scan.producer_id_length > 0)
        FUZZ_CHECK(verdict->scan.producer_id_offset == verdict->decoded.producer_id.offset);
    FUZZ_CHECK(verdict->scan.topic_offset == verdict->decoded.topic.offset);
    FUZZ_CHECK(verdict->scan.topic_length == verdict->decoded.topic.length);
    FUZZ_CHECK(verdict->scan.sequence == verdict->decoded.sequence);
    FUZZ_CHECK(verdict->scan.timestamp_ns == verdict->decoded.timestamp_ns);
    FUZZ_CHECK(verdict->scan.header_count == verdict->decoded.header_count);
    /* Spans lie inside the record. */
    FUZZ_CHECK(verdict->decoded.key.offset + (uint64_t)verdict->decoded.key.length <=
               view->total_bytes);
    FUZZ_CHECK(verdict->decoded.value.offset + (uint64_t)verdict->decoded.value.length <=
               view->total_bytes);
}

/* Property 3: the slices fed one at a time to the resumable scan. */
static void check_resumable(const struct record_view *view, const struct verdict *whole) {
    struct record_scan_progress progress;
    record_scan_progress_init(&progress);
    uint32_t received = 0;
    for (uint32_t count = 1; count < view->slice_count; count++) {
        received += view->slices[count - 1].length;
        struct record_view prefix = {view->slices, count, received};
        if (record_scan_prefix(&prefix, view->total_bytes, &progress) != RECORD_SCAN_OK) {
            FUZZ_CHECK(!whole->scan_ok);
            FUZZ_CHECK(strcmp(progress.scan.detail, whole->scan.detail) == 0);
            return;
        }
    }
    struct record_scan scan;
    enum record_scan_result result = record_scan_finish(view, &progress, &scan);
    FUZZ_CHECK((result == RECORD_SCAN_OK) == whole->scan_ok);
    if (!whole->scan_ok) {
        FUZZ_CHECK(strcmp(scan.detail, whole->scan.detail) == 0);
        return;
    }
    FUZZ_CHECK(scan.topic_offset == whole->scan.topic_offset);
    FUZZ_CHECK(scan.topic_length == whole->scan.topic_length);
    FUZZ_CHECK(scan.sequence == whole->scan.sequence);
    FUZZ_CHECK(scan.timestamp_ns == whole->scan.timestamp_ns);
    FUZZ_CHECK(scan.header_count == whole->scan.header_count);
    FUZZ_CHECK(scan.is_hello == whole->scan.is_hello);
    FUZZ_CHECK(scan.producer_id_offset == whole->scan.producer_id_offset);
    FUZZ_CHECK(scan.producer_id_length == whole->scan.producer_id_length);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct fuzz_input input = {data, size};
    uint8_t control = fuzz_take_byte(&input);
    uint8_t splits[FUZZ_SPLIT_BYTES_MAX] = {0};
    size_t split_count = fuzz_take_bytes(&input, splits, control & 31);
    struct fuzz_chunks chunks;
    fuzz_chunks_make(input.head, input.head_length, splits, split_count, &chunks);
    /* The framer never makes more than RECORD_SLICES_MAX slices; nor does this. */
    if (chunks.count > RECORD_SLICES_MAX) {
        fuzz_chunks_free(&chunks);
        fuzz_chunks_make(input.head, input.head_length, NULL, 0, &chunks);
    }
    struct slice slices[RECORD_SLICES_MAX];
    for (size_t index = 0; index < chunks.count; index++)
        slices[index] = (struct slice){chunks.chunks[index].bytes, chunks.chunks[index].length,
                                       chunks.chunks[index].unit};
    struct record_view view = {slices, (uint32_t)chunks.count, (uint32_t)input.head_length};
    struct verdict split_verdict, whole_verdict;
    judge(&view, &split_verdict);
    check_resumable(&view, &split_verdict);
    /* The same bytes in one slice. */
    struct slice whole_slice = {chunks.stream_copy, (uint32_t)input.head_length, 0};
    struct record_view whole_view = {&whole_slice, input.head_length ? 1 : 0,
                                     (uint32_t)input.head_length};
    judge(&whole_view, &whole_verdict);
    FUZZ_CHECK(split_verdict.scan_ok == whole_verdict.scan_ok);
    if (!split_verdict.scan_ok) {
        FUZZ_CHECK(strcmp(split_verdict.scan.detail, whole_verdict.scan.detail) == 0);
    } else {
        FUZZ_CHECK(split_verdict.scan.topic_offset == whole_verdict.scan.topic_offset);
        FUZZ_CHECK(split_verdict.scan.sequence == whole_verdict.scan.sequence);
        FUZZ_CHECK(split_verdict.scan.is_hello == whole_verdict.scan.is_hello);
        FUZZ_CHECK(split_verdict.scan.producer_id_length == whole_verdict.scan.producer_id_length);
        FUZZ_CHECK(memcmp(&split_verdict.decoded, &whole_verdict.decoded,
                          sizeof(whole_verdict.decoded)) == 0);
    }
    fuzz_chunks_free(&chunks);
    return 0;
}
