/*
 * framer.h: finds varint-delimited records inside the receive chunks of one connection, in place.
 *
 * One framer per connection, driven only by the reactor thread that owns the connection. The
 * reactor feeds each received chunk (a pointer into receive memory plus the backend unit that
 * holds it); the framer cuts it into records without copying: a record wholly inside one chunk
 * becomes one slice, a record split across chunks becomes several slices (adjacent chunks that
 * are contiguous in memory and in the same unit are merged into one slice). When a record's body
 * is complete the framer runs record_scan on it and fills topic/sequence/timestamp.
 *
 * Early rejection: when a chunk ends inside a body, the framer checks what the record's bytes
 * so far already prove (record_scan_prefix: every field received in full, and the tag and
 * length of the one cut off), so a frame whose received prefix is malformed whatever follows
 * (an invalid tag or wire type, a known field with the wrong wire type, a length running past
 * the frame, a varint longer than 10 bytes) ends in FRAMER_ERROR at once, with the detail the
 * whole frame would have got, instead of after its last byte. framer_rejected_early says so.
 * A length prefix over frame_bytes_max is refused as soon as the prefix is complete (at most
 * 10 bytes; a partial prefix holds no record and pins nothing).
 *
 * The framer stops at every event so the reactor can act (admit the record, answer an error,
 * fetch a record object) and later resume at exactly the same byte: it never loses input.
 *
 * Producer identity (issue 12). Every frame of a connection carries the same producer_id, or
 * none does: the framer remembers the connection's producer_id (at most
 * RECORD_PRODUCER_ID_BYTES_MAX bytes, copied: it is metadata, not payload), set by a Hello or
 * else by the first record, and refuses a later frame that differs (another id, or an id where
 * the first record had none, or none where it had one). A Hello (a frame carrying only field 16,
 * see record_scan.h) is allowed only as the connection's first frame, hence at most once. These
 * refusals, and those of a malformed Hello or a producer_id of a size refused, are REJECTED
 * and framer_rejected_for_identity says so.
 *
 * Sequences (issue 17). On a connection with a producer_id, every record's sequence is the
 * previous record's plus one: the producer library sends its records in order on a connection,
 * and a jump or a step back is refused (REJECTED, framer_rejected_for_sequence), naming the
 * sequence, the one expected and the producer. So within a connection no sequence is skipped,
 * and what the daemon learns of a producer only moves forward one record at a time; the first
 * record of a connection carries RECORD_SEQUENCE_FIRST for the reactor, which checks it against
 * what it knows of the producer (producer_table.h). Costs one compare per record.
 *
 * The framer takes no references on receive units: the reactor adds one per slice of every
 * record it takes with framer_take_record, and nothing is pinned for records it never takes.
 */
#ifndef INTAKE_FRAMER_H
#define INTAKE_FRAMER_H

#include <stdint.h>

#include "record.h"
#include "record_scan.h"
#include "varint.h"

/* Room for a detail the framer composes (an Ack carries at most ACK_DETAIL_BYTES_MAX). */
#define FRAMER_DETAIL_BYTES 208
/* Bytes of a producer_id a detail shows (escaped) before it is cut. */
#define FRAMER_ID_TEXT_BYTES 100

enum framer_event {
    FRAMER_NEED_INPUT = 0,  /* the chunk is fully consumed; feed the next one */
    FRAMER_RECORD = 1,      /* a complete, scanned record is ready: framer_take_record */
    FRAMER_NEED_RECORD = 2, /* a frame starts and the framer holds no record object: give one.
                             * Asked once the length prefix is complete and within
                             * frame_bytes_max, so bad prefixes and oversize frames need none. */
    FRAMER_ERROR = 3,       /* the stream is bad; framer_error_status/detail say why. Terminal. */
    FRAMER_HELLO = 4,       /* a Hello frame was complete and accepted: the connection's
                             * producer_id is set (framer_producer_id); framer_take_hello */
};

enum framer_identity {
    FRAMER_IDENTITY_UNKNOWN = 0, /* no frame yet */
    FRAMER_IDENTITY_NONE = 1,    /* the first record had no producer_id */
    FRAMER_IDENTITY_SET = 2,     /* a Hello or the first record set producer_id */
};

struct framer {
    uint32_t frame_bytes_max; /* --max-frame */
    struct varint_decoder length_decoder;
    uint32_t body_bytes_needed; /* > 0 while inside a record body */
    int in_body;
    struct record *record;                     /* being filled; NULL until given */
    struct record_scan_progress scan_progress; /* the body's scan so far (early rejection) */
    enum record_status error_status;
    /* Static string, or error_detail_text; lives as long as the framer. */
    const char *error_detail;
    int error_before_frame_end; /* the error came before the frame's last byte arrived */
    int error_identity;         /* the error is an identity or Hello placement refusal */
    int error_sequence;         /* the error is a sequence out of order on the connection */
    uint64_t sequence_last;     /* the last record's sequence (producer_id set), 0 before one */
    uint8_t identity;           /* enum framer_identity */
    uint8_t producer_id_length; /* when identity is SET: 1..RECORD_PRODUCER_ID_BYTES_MAX */
    uint8_t producer_id[RECORD_PRODUCER_ID_BYTES_MAX];
    /* Room for the details that name sizes ("frame of N bytes exceeds --max-frame M") or a
     * sequence and the producer: per framer, because many connections may fail at once. */
    char error_detail_text[FRAMER_DETAIL_BYTES];
};

void framer_init(struct framer *framer, uint32_t frame_bytes_max);

/*
 * Consumes bytes of one chunk from `*offset` on, advancing `*offset`, until an event.
 * A zero-length frame is an empty record and fails the scan (no topic). Errors:
 *   REJECTED "bad varint length prefix", "frame of N bytes exceeds --max-frame M",
 *   REJECTED with the scan's detail for a malformed record (as soon as a received prefix of
 *     the body proves it, see above; the detail is the same either way),
 *   REJECTED for identity: "a Hello must be the connection's first frame", "producer_id
 *     differs from ...", "a record without a producer_id ...", "a record with a producer_id ...",
 *   RESOURCE_EXHAUSTED "record arrived in more than 64 fragments".
 *   REJECTED for sequence: "sequence S is out of order on this connection: expected E
 *     (producer_id "ID")",
 * A complete record gets topic, sequence, timestamp and producer_id (offset/length, 0/0 when
 * it has none) from the scan, and RECORD_SEQUENCE_FIRST in sequence_flags when it is the
 * connection's first record with a producer_id.
 */
enum framer_event framer_feed(struct framer *framer, const uint8_t *chunk_bytes,
                              uint32_t chunk_length, uint32_t unit,
                              uint32_t *offset) INTAKE_MUST_CHECK;

/* After FRAMER_NEED_RECORD: hands the framer an empty record from the reactor's pool. */
void framer_give_record(struct framer *framer, struct record *record);
/* After FRAMER_RECORD: takes the complete record; the framer holds none afterwards. */
struct record *framer_take_record(struct framer *framer);
/* After FRAMER_HELLO: takes back the record object the Hello was framed into. It was never a
 * record: the reactor drops the unit references it took for its slices and returns it to its
 * pool. The framer holds none afterwards and reads the next frame. */
struct record *framer_take_hello(struct framer *framer);
/* The connection's producer_id (a copy) and its length, or NULL (length 0) when none is set. */
const uint8_t *framer_producer_id(const struct framer *framer, uint32_t *length);

/* The record object the framer holds (partly filled or empty), or NULL; the framer lets go of it.
 * Used when a connection ends: the reactor returns it to its pool (it pins no units). */
struct record *framer_release_record(struct framer *framer);

/* After FRAMER_ERROR: nonzero when the frame was refused before all of it had arrived (its
 * received prefix was already malformed). The reactor may count these. */
int framer_rejected_early(const struct framer *framer);

/* After FRAMER_ERROR: nonzero when the refusal is about producer identity (a misplaced or
 * malformed Hello, a producer_id of a size refused, one that differs from the connection's);
 * the reactor counts these. */
int framer_rejected_for_identity(const struct framer *framer);
/* After FRAMER_ERROR: nonzero when a record's sequence was not the previous one's plus one. */
int framer_rejected_for_sequence(const struct framer *framer);

/* Writes `id` (1..RECORD_PRODUCER_ID_BYTES_MAX bytes, any values) into `out` as text for a
 * detail or a log line: printable ASCII as is (with '"' and '\\' escaped), other bytes as \xHH,
 * cut with "..." to fit `capacity` (at least 8). */
void framer_id_text(const uint8_t *id, uint32_t length, char *out, size_t capacity);

/* True when the framer is between frames (no partial length prefix or body pending). */
int framer_is_idle(const struct framer *framer);

#endif
