/*
 * bridge_record.h: a read-only view of one encoded intake.v1.Record (proto/intake.proto) as it
 * lies in a topic's shared-memory log: pointers to its key, value and headers, no copy.
 *
 * The log is shared memory other processes can write, so the bytes are input: every length is
 * checked against the record's end, and a record that does not parse is reported, never
 * asserted on. Fields may come in any order; the last occurrence of key and value wins, as
 * protobuf specifies; unknown fields are skipped.
 *
 * Thread: pure functions, any thread.
 */
#ifndef BRIDGE_RECORD_H
#define BRIDGE_RECORD_H

#include <stddef.h>
#include <stdint.h>

/* Headers kept per record; a record with more is reported as BRIDGE_RECORD_TOO_MANY_HEADERS. */
#define BRIDGE_RECORD_HEADERS_MAX 64

enum bridge_record_result {
    BRIDGE_RECORD_OK = 0,
    BRIDGE_RECORD_MALFORMED = -1,        /* a length or varint runs past the end, a bad wire type */
    BRIDGE_RECORD_TOO_MANY_HEADERS = -2, /* more than BRIDGE_RECORD_HEADERS_MAX */
};

struct bridge_bytes {
    const uint8_t *bytes; /* inside the record; NULL with length 0 when absent */
    size_t length;
};

struct bridge_record_header {
    struct bridge_bytes key;
    struct bridge_bytes value;
};

struct bridge_record_view {
    struct bridge_bytes topic;
    struct bridge_bytes key;
    struct bridge_bytes value;
    uint64_t timestamp_ns; /* 0 when the producer set none */
    uint32_t header_count;
    struct bridge_record_header headers[BRIDGE_RECORD_HEADERS_MAX];
};

/* Fills *view from the `length` bytes at `bytes` (one encoded Record, without its length
 * prefix). On failure *view is unspecified. */
enum bridge_record_result bridge_record_parse(const uint8_t *bytes, size_t length,
                                              struct bridge_record_view *view)
    __attribute__((warn_unused_result));

/* A one-line description of a result. */
const char *bridge_record_result_text(enum bridge_record_result result);

#endif
