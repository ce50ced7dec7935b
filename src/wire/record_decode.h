/*
 * record_decode.h: the worker's full decode of a record with nanopb, straight from its slices.
 *
 * A pb_istream_t whose state is a cursor over the record's slices; string and bytes fields are
 * decoded with callbacks that note where the value lies (offset and length within the record)
 * and step over it through one guarded helper (slice_stream_skip) that asserts the stream is ours
 * and the step stays inside the record. No payload byte is copied or gathered.
 *
 * Any thread; the caller owns the record for the duration.
 *
 * Agreement with record_scan (fuzzed, tests/fuzz/fuzz_decode.c): every record the scan admits,
 * this accepts with the same topic, sequence and timestamp; every record the scan refuses,
 * this refuses too, with two exceptions where nanopb is more lenient than protobuf: it skips
 * an unknown varint field without the 10-byte limit (a varint of 11 or more bytes, or a 10th
 * byte above 1, passes here), and it reads tags as 32-bit varints, dropping higher bits that
 * make the scan refuse the field number as larger than 2^29 - 1. Neither matters on the data
 * path: the worker decodes only records the scan admitted.
 *
 * Hello frames (field 16, record_scan.h) never reach a worker. nanopb's Record has no field 16
 * (reserved), so record_decode alone would skip it as unknown; the fuzz targets therefore first
 * classify a frame with frame_decode_kind (nanopb's own tag walk, and a Hello decode), and the
 * scan's verdict must match that classification followed by record_decode for records.
 */
#ifndef INTAKE_RECORD_DECODE_H
#define INTAKE_RECORD_DECODE_H

#include <stdint.h>

#include "record.h"

/* Where a length-delimited field's value lies inside the record. */
struct field_span {
    uint32_t offset;
    uint32_t length;
};

struct record_decoded {
    struct field_span topic; /* last occurrence */
    struct field_span key;
    struct field_span value;
    uint64_t timestamp_ns;
    uint64_t sequence;
    uint32_t header_count;
    struct field_span producer_id; /* last occurrence; length 0 when absent */
};

enum record_decode_result {
    RECORD_DECODE_OK = 0,
    RECORD_DECODE_MALFORMED = -1, /* detail: nanopb's message or ours */
};

enum record_decode_result record_decode(const struct record_view *view,
                                        struct record_decoded *decoded,
                                        const char **detail) INTAKE_MUST_CHECK;

enum frame_decode_kind {
    FRAME_DECODE_RECORD = 0,     /* no field 16: a record candidate, for record_decode */
    FRAME_DECODE_HELLO = 1,      /* only field 16, each occurrence 1..64 bytes */
    FRAME_DECODE_MALFORMED = -1, /* field 16 with other fields, or a bad Hello; detail set */
};

/* nanopb's classification of a frame: a tag walk (pb_decode_tag, pb_skip_field), then, for a
 * Hello, a decode as intake.v1.Hello whose producer_id span (last occurrence) is returned. A
 * frame whose walk fails is left to record_decode (RECORD). For the fuzz targets and tests. */
enum frame_decode_kind frame_decode_kind(const struct record_view *view,
                                         struct field_span *hello_producer_id,
                                         const char **detail) INTAKE_MUST_CHECK;

#endif
