/*
 * record_scan.h: a wire-level check of one encoded intake.v1.Record, walking its slices in place.
 *
 * The reactor runs this on every complete frame before admitting it, so that everything a
 * decoder could reject is rejected at the connection that sent it, with nothing after it
 * accepted. It checks: every tag (field number >= 1, wire type 0/1/2/5; groups are rejected);
 * every length stays inside the record; known fields have their declared wire type (topic, key,
 * value, headers, producer_id: length-delimited; timestamp_ns, sequence: varint); every topic
 * occurrence is valid UTF-8; each Header submessage is itself well-formed with a UTF-8 key; every
 * producer_id occurrence is 1..64 bytes; unknown fields are skipped. As protobuf specifies, the
 * last occurrence of a non-repeated field wins: the topic, sequence, timestamp and producer_id
 * reported are the last ones. The effective topic must be 1..255 bytes, and a record with a
 * producer_id must have a sequence of 1 or more.
 *
 * A frame that carries field 16 (Hello.producer_id, length-delimited, 1..64 bytes each time) is
 * a Hello, not a record: the scan admits it with is_hello set and producer_id_* naming the last
 * field 16 value, provided it carries no other field at all (known or unknown). A frame mixing
 * field 16 with any other field is malformed. Whether a Hello may come where it does (first
 * frame of a connection) is the framer's rule, not the scan's.
 *
 * Pure function over a read-only view; any thread. Nothing is copied.
 */
#ifndef INTAKE_RECORD_SCAN_H
#define INTAKE_RECORD_SCAN_H

#include <stdint.h>

#include "record.h"

enum record_scan_result {
    RECORD_SCAN_OK = 0,
    RECORD_SCAN_MALFORMED = -1, /* detail names the problem */
};

struct record_scan {
    uint32_t topic_offset; /* byte offset of the effective topic's value within the record */
    uint32_t topic_length;
    /* key (field 2) and value (field 3): offset and length of the last occurrence's value;
     * 0/0 when absent */
    uint32_t key_offset;
    uint32_t key_length;
    uint32_t value_offset;
    uint32_t value_length;
    uint64_t sequence;
    uint64_t timestamp_ns;
    uint32_t header_count;
    /* Record field 7, or for a Hello field 16: offset and length of the last occurrence's value
     * (length 1..RECORD_PRODUCER_ID_BYTES_MAX); 0/0 when the frame has none. */
    uint32_t producer_id_offset;
    uint32_t producer_id_length;
    uint32_t is_hello; /* nonzero: the frame is a Hello (only field 16), not a record */
    /* Nonzero once the frame claimed an identity that may be refused for what it claims: it
     * carries field 16 (a Hello, however malformed), or a producer_id of a size refused. */
    uint32_t identity_claimed;
    /* Static string, set when the result is not OK, e.g. "record has no topic",
     * "topic is not valid UTF-8", "field 3 (value) has wire type 0, expected 2". */
    const char *detail;
};

/* Scans a complete record (the view holds all of its bytes). */
enum record_scan_result record_scan_view(const struct record_view *view,
                                         struct record_scan *scan) INTAKE_MUST_CHECK;

/*
 * The same scan, resumable while a record's bytes arrive (the framer's early rejection).
 *
 * record_scan_prefix checks what the bytes received so far (`view`, the first view->total_bytes
 * of a record of `frame_bytes`) already prove: every top-level field wholly received is checked
 * in full, and the tag and length of the field the bytes end in are checked too (an invalid
 * tag or wire type, a known field with the wrong wire type, a length running past
 * `frame_bytes`, a varint longer than 10 bytes). It returns RECORD_SCAN_MALFORMED as soon as
 * the prefix is malformed whatever bytes follow, with progress->scan.detail set to exactly the
 * detail record_scan_view gives for any record of frame_bytes bytes that starts with this
 * prefix (both walk the same fields in the same order and stop at the first problem).
 * Otherwise it returns RECORD_SCAN_OK and remembers where the next call resumes, so each
 * field is checked once.
 * Checks inside a Header submessage, the topic's UTF-8 and a producer_id's length wait until
 * that field is whole (so does the refusal of a frame mixing field 16 with other fields); the
 * effective topic (present, 1..255 bytes) and the producer_id/sequence rule are known only at
 * the end: record_scan_finish.
 *
 * Call record_scan_progress_init before a record's first byte; then record_scan_prefix with
 * growing views of the same record; then record_scan_finish with the complete view. After
 * RECORD_SCAN_MALFORMED the progress stays failed.
 */
struct record_scan_progress {
    uint32_t checked_bytes; /* every top-level field below this offset is checked */
    uint32_t topic_seen;
    uint32_t other_field_seen;  /* a field other than 16 (decides Hello vs record) */
    uint32_t contents_unjudged; /* record_scan_structure: tags and lengths only */
    struct record_scan scan;    /* the fields seen so far; detail set once malformed */
};

void record_scan_progress_init(struct record_scan_progress *progress);
enum record_scan_result record_scan_prefix(const struct record_view *view, uint32_t frame_bytes,
                                           struct record_scan_progress *progress) INTAKE_MUST_CHECK;
/* Completes the scan over the whole record; the same result record_scan_view gives. */
enum record_scan_result record_scan_finish(const struct record_view *view,
                                           struct record_scan_progress *progress,
                                           struct record_scan *scan) INTAKE_MUST_CHECK;

/* The fields of a record whose contents intake has yet to judge (the producer library's raw
 * records, which it sends byte for byte): walks tags and lengths exactly as the scan does and
 * reports the last topic, key, value, sequence and producer_id (by offset, as the scan), but
 * leaves the content rules (UTF-8, header contents, producer_id sizes, Hello or record) to
 * intake. RECORD_SCAN_OK when every field is readable to the end. */
enum record_scan_result record_scan_structure(const struct record_view *view,
                                              struct record_scan *scan) INTAKE_MUST_CHECK;

/* One Header (Record field 6) of a record: its key (Header field 1) and value (field 2), the
 * last occurrence of each, as offsets within the record; 0/0 when absent. */
struct record_scan_header {
    uint32_t key_offset;
    uint32_t key_length;
    uint32_t value_offset;
    uint32_t value_length;
};

/* Reads the record's next Header from *position (0 to start; a top-level field boundary) on,
 * with the scan's own field reader and checks: 1 with *header set and *position past that
 * field, 0 when no Header follows, -1 when the bytes do not walk as a well-formed record (for
 * a record record_scan_view accepted, only if they changed since: shared memory in overwrite
 * mode). Pure; the consumer library's header iterator (intake_record_header_next). */
int record_scan_next_header(const struct record_view *view, uint32_t *position,
                            struct record_scan_header *header) INTAKE_MUST_CHECK;

/* FNV-1a over `length` bytes at `offset` of the view: how topic names are hashed everywhere
 * (the topic table hashes its stored names with record_topic_hash_bytes, which must agree). */
uint64_t record_view_hash(const struct record_view *view, uint32_t offset, uint32_t length);
uint64_t record_topic_hash_bytes(const uint8_t *bytes, uint32_t length);
/* Nonzero when the view's `length` bytes at `offset` equal `bytes`. */
int record_view_equals(const struct record_view *view, uint32_t offset, uint32_t length,
                       const uint8_t *bytes);
/* Copies out up to `capacity` bytes at `offset` (log lines and tests; never the data path). */
uint32_t record_view_copy(const struct record_view *view, uint32_t offset, uint32_t length,
                          uint8_t *out, uint32_t capacity);

#endif
