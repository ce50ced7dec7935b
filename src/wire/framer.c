/*
 * framer.c: the per-connection incremental framer (see framer.h).
 *
 * Runs on the reactor thread that owns the connection. The framer owns nothing but its small
 * state and, between framer_give_record and framer_take_record/framer_release_record, the record
 * object it fills; the bytes it points at stay in receive memory owned by the reactor's backend.
 *
 * States: reading the length prefix (in_body == 0; the varint decoder may hold part of it), or
 * inside a body (in_body == 1; body_bytes_needed counts what is still missing). A record object
 * is asked for only once the prefix is complete and the length is within frame_bytes_max, so a
 * connection idling mid-prefix holds no record, and rejecting a bad prefix needs none.
 * A complete record waits in framer->record with in_body == 0 until the reactor takes it.
 */
#include "framer.h"

#include <inttypes.h>
#include <string.h>

void framer_init(struct framer *framer, uint32_t frame_bytes_max) {
    INTAKE_ASSERT(framer != NULL);
    INTAKE_ASSERT(frame_bytes_max > 0);
    memset(framer, 0, sizeof(*framer));
    framer->frame_bytes_max = frame_bytes_max;
    framer->error_status = RECORD_STATUS_OK;
}

static enum framer_event framer_fail(struct framer *framer, enum record_status status,
                                     const char *detail) {
    INTAKE_ASSERT(status != RECORD_STATUS_OK);
    INTAKE_ASSERT(detail != NULL);
    framer->error_status = status;
    framer->error_detail = detail;
    return FRAMER_ERROR;
}

static enum framer_event framer_fail_identity(struct framer *framer, const char *detail) {
    framer->error_identity = 1;
    return framer_fail(framer, RECORD_STATUS_REJECTED, detail);
}

static void framer_set_identity(struct framer *framer, const struct record_view *view,
                                const struct record_scan *scan) {
    INTAKE_ASSERT(scan->producer_id_length > 0);
    INTAKE_ASSERT(scan->producer_id_length <= RECORD_PRODUCER_ID_BYTES_MAX);
    uint32_t copied = record_view_copy(view, scan->producer_id_offset, scan->producer_id_length,
                                       framer->producer_id, sizeof(framer->producer_id));
    INTAKE_ASSERT(copied == scan->producer_id_length);
    framer->producer_id_length = (uint8_t)copied;
    framer->identity = FRAMER_IDENTITY_SET;
}

/* Every frame of a connection carries the same producer_id, or none does (framer.h). Returns
 * NULL, or the detail of the refusal. The first record decides when no Hello came. */
static const char *framer_check_identity(struct framer *framer, const struct record_view *view,
                                         const struct record_scan *scan) {
    if (scan->producer_id_length == 0) {
        if (framer->identity == FRAMER_IDENTITY_SET)
            return "a record without a producer_id on a connection that has one (every frame "
                   "of a connection carries the same producer_id, or none does)";
        framer->identity = FRAMER_IDENTITY_NONE;
        return NULL;
    }
    if (framer->identity == FRAMER_IDENTITY_NONE)
        return "a record with a producer_id on a connection whose first record had none (every "
               "frame of a connection carries the same producer_id, or none does)";
    if (framer->identity == FRAMER_IDENTITY_UNKNOWN) {
        framer_set_identity(framer, view, scan);
        return NULL;
    }
    if (scan->producer_id_length != framer->producer_id_length ||
        !record_view_equals(view, scan->producer_id_offset, scan->producer_id_length,
                            framer->producer_id))
        return "producer_id differs from the one this connection started with (every frame of "
               "a connection carries the same producer_id, or none does)";
    return NULL;
}

void framer_id_text(const uint8_t *id, uint32_t length, char *out, size_t capacity) {
    INTAKE_ASSERT(capacity >= 8);
    INTAKE_ASSERT(id != NULL || length == 0);
    size_t written = 0;
    for (uint32_t index = 0; index < length; index++) {
        char piece[8];
        uint8_t byte = id[index];
        int piece_length;
        if (byte == '"' || byte == '\\')
            piece_length = snprintf(piece, sizeof(piece), "\\%c", byte);
        else if (byte >= 0x20 && byte < 0x7f)
            piece_length = snprintf(piece, sizeof(piece), "%c", byte);
        else
            piece_length = snprintf(piece, sizeof(piece), "\\x%02x", byte);
        /* Keep room for "..." when more follows, and for the NUL. */
        size_t reserve = index + 1 < length ? 4 : 1;
        if (written + (size_t)piece_length + reserve > capacity) {
            memcpy(out + written, "...", 3);
            written += 3;
            break;
        }
        memcpy(out + written, piece, (size_t)piece_length);
        written += (size_t)piece_length;
    }
    INTAKE_ASSERT(written < capacity);
    out[written] = '\0';
}

/* The connection's records carry consecutive sequences (framer.h). Returns NULL, or the detail
 * of the refusal; marks the connection's first record. */
static const char *framer_check_sequence(struct framer *framer, struct record *record,
                                         const struct record_scan *scan) {
    record->sequence_flags = 0;
    if (scan->producer_id_length == 0) return NULL;
    INTAKE_ASSERT(scan->sequence >= 1); /* the scan refuses a producer_id without one */
    if (framer->sequence_last == 0) {
        record->sequence_flags = RECORD_SEQUENCE_FIRST;
        framer->sequence_last = scan->sequence;
        return NULL;
    }
    uint64_t expected = framer->sequence_last + 1;
    if (scan->sequence == expected && expected != 0) {
        framer->sequence_last = scan->sequence;
        return NULL;
    }
    char id[FRAMER_ID_TEXT_BYTES];
    framer_id_text(framer->producer_id, framer->producer_id_length, id, sizeof(id));
    snprintf(framer->error_detail_text, sizeof(framer->error_detail_text),
             "sequence %" PRIu64 " is out of order on this connection: expected %" PRIu64
             " (producer_id \"%s\")",
             scan->sequence, expected, id);
    return framer->error_detail_text;
}

/* Finishes a body: scan it; a Hello sets the connection's identity, a record is checked against
 * it and gets topic, sequence, timestamp and producer_id from the scan. */
static enum framer_event framer_complete(struct framer *framer) {
    struct record *record = framer->record;
    INTAKE_ASSERT(record != NULL);
    INTAKE_ASSERT(framer->body_bytes_needed == 0);
    struct record_view view = record_view_of(record);
    struct record_scan scan;
    if (record_scan_finish(&view, &framer->scan_progress, &scan) != RECORD_SCAN_OK)
        return scan.identity_claimed ? framer_fail_identity(framer, scan.detail)
                                     : framer_fail(framer, RECORD_STATUS_REJECTED, scan.detail);
    if (scan.is_hello) {
        if (framer->identity != FRAMER_IDENTITY_UNKNOWN)
            return framer_fail_identity(framer, "a Hello must be the connection's first frame "
                                                "(at most one per connection)");
        framer_set_identity(framer, &view, &scan);
        /* Not a record: no topic, sequence or timestamp; producer_id_* name field 16. */
        record->topic_offset = 0;
        record->topic_length = 0;
        record->sequence = 0;
        record->timestamp_ns = 0;
        record->producer_id_offset = scan.producer_id_offset;
        record->producer_id_length = (uint16_t)scan.producer_id_length;
        record->sequence_flags = 0;
        framer->in_body = 0;
        return FRAMER_HELLO;
    }
    const char *identity_problem = framer_check_identity(framer, &view, &scan);
    if (identity_problem != NULL) return framer_fail_identity(framer, identity_problem);
    const char *sequence_problem = framer_check_sequence(framer, record, &scan);
    if (sequence_problem != NULL) {
        framer->error_sequence = 1;
        return framer_fail(framer, RECORD_STATUS_REJECTED, sequence_problem);
    }
    record->producer_id_offset = scan.producer_id_offset;
    record->producer_id_length = (uint16_t)scan.producer_id_length;
    record->topic_offset = scan.topic_offset;
    record->topic_length = scan.topic_length;
    record->sequence = scan.sequence;
    record->timestamp_ns = scan.timestamp_ns;
    framer->in_body = 0;
    return FRAMER_RECORD;
}

/* Consumes length-prefix bytes. On a complete, acceptable prefix it enters the body state and
 * returns FRAMER_NEED_RECORD: between frames the framer never holds a record object. */
static enum framer_event framer_read_prefix(struct framer *framer, const uint8_t *bytes,
                                            uint32_t length, uint32_t *offset) {
    size_t consumed = 0;
    uint64_t frame_bytes = 0;
    enum varint_result result;
    if (framer->length_decoder.bytes_seen == 0) {
        /* Usually the whole prefix is in this chunk: decode it in one go. */
        result = varint_decode(bytes + *offset, length - *offset, &frame_bytes, &consumed);
        if (result == VARINT_NEED_MORE) {
            consumed = 0;
            result = varint_decoder_feed(&framer->length_decoder, bytes + *offset, length - *offset,
                                         &consumed);
        }
    } else {
        result = varint_decoder_feed(&framer->length_decoder, bytes + *offset, length - *offset,
                                     &consumed);
        frame_bytes = framer->length_decoder.value;
    }
    *offset += (uint32_t)consumed;
    if (result == VARINT_NEED_MORE) return FRAMER_NEED_INPUT;
    if (result == VARINT_BAD)
        return framer_fail(framer, RECORD_STATUS_REJECTED, "bad varint length prefix");
    memset(&framer->length_decoder, 0, sizeof(framer->length_decoder));
    if (frame_bytes > framer->frame_bytes_max) {
        snprintf(framer->error_detail_text, sizeof(framer->error_detail_text),
                 "frame of %" PRIu64 " bytes exceeds --max-frame %" PRIu32, frame_bytes,
                 framer->frame_bytes_max);
        return framer_fail(framer, RECORD_STATUS_REJECTED, framer->error_detail_text);
    }
    framer->in_body = 1;
    framer->body_bytes_needed = (uint32_t)frame_bytes;
    record_scan_progress_init(&framer->scan_progress);
    return FRAMER_NEED_RECORD;
}

/* Mid-body, with the chunk consumed: refuses the frame now if the bytes received so far prove
 * it malformed (see record_scan_prefix), otherwise asks for the next chunk. */
static enum framer_event framer_check_prefix(struct framer *framer) {
    struct record *record = framer->record;
    INTAKE_ASSERT(record != NULL);
    INTAKE_ASSERT(framer->body_bytes_needed > 0);
    struct record_view view = record_view_of(record);
    uint32_t frame_bytes = record->frame_bytes + framer->body_bytes_needed;
    if (record_scan_prefix(&view, frame_bytes, &framer->scan_progress) == RECORD_SCAN_OK)
        return FRAMER_NEED_INPUT;
    framer->error_before_frame_end = 1;
    const struct record_scan *scan = &framer->scan_progress.scan;
    return scan->identity_claimed ? framer_fail_identity(framer, scan->detail)
                                  : framer_fail(framer, RECORD_STATUS_REJECTED, scan->detail);
}

/* Appends bytes to the record: extends the last slice when the new piece continues it in memory
 * within the same unit, otherwise adds a slice. Returns 0, or -1 when out of slices. */
static int framer_append(struct record *record, const uint8_t *bytes, uint32_t length,
                         uint32_t unit) {
    INTAKE_ASSERT(length > 0);
    INTAKE_ASSERT(record->slice_count <= RECORD_SLICES_MAX);
    if (record->slice_count > 0) {
        struct slice *last = &record->slices[record->slice_count - 1];
        if (last->unit == unit && last->bytes + last->length == bytes) {
            last->length += length;
            record->frame_bytes += length;
            return 0;
        }
    }
    if (record->slice_count == RECORD_SLICES_MAX) return -1;
    struct slice *slice = &record->slices[record->slice_count++];
    slice->bytes = bytes;
    slice->length = length;
    slice->unit = unit;
    record->frame_bytes += length;
    return 0;
}

enum framer_event framer_feed(struct framer *framer, const uint8_t *chunk_bytes,
                              uint32_t chunk_length, uint32_t unit, uint32_t *offset) {
    INTAKE_ASSERT(offset != NULL && *offset <= chunk_length);
    INTAKE_ASSERT(chunk_bytes != NULL || chunk_length == 0);
    if (framer->error_detail != NULL) return FRAMER_ERROR;
    /* A complete record must be taken before the stream can move on. */
    INTAKE_ASSERT(framer->in_body || framer->record == NULL);
    for (;;) {
        if (!framer->in_body) {
            if (*offset == chunk_length) return FRAMER_NEED_INPUT;
            return framer_read_prefix(framer, chunk_bytes, chunk_length, offset);
        }
        if (framer->record == NULL) return FRAMER_NEED_RECORD;
        if (framer->body_bytes_needed == 0) return framer_complete(framer);
        if (*offset == chunk_length) return FRAMER_NEED_INPUT;
        uint32_t available = chunk_length - *offset;
        uint32_t take =
            available < framer->body_bytes_needed ? available : framer->body_bytes_needed;
        if (framer_append(framer->record, chunk_bytes + *offset, take, unit) != 0)
            return framer_fail(framer, RECORD_STATUS_RESOURCE_EXHAUSTED,
                               "record arrived in more than 64 fragments");
        *offset += take;
        framer->body_bytes_needed -= take;
        /* The chunk ends inside the body: judge what has arrived before waiting for more. */
        if (framer->body_bytes_needed > 0 && *offset == chunk_length)
            return framer_check_prefix(framer);
    }
}

void framer_give_record(struct framer *framer, struct record *record) {
    INTAKE_ASSERT(record != NULL);
    INTAKE_ASSERT(framer->record == NULL);
    INTAKE_ASSERT(framer->in_body);
    record->slice_count = 0;
    record->frame_bytes = 0;
    framer->record = record;
}

struct record *framer_take_record(struct framer *framer) {
    struct record *record = framer->record;
    INTAKE_ASSERT(record != NULL);
    INTAKE_ASSERT(!framer->in_body);
    INTAKE_ASSERT(framer->error_detail == NULL);
    framer->record = NULL;
    return record;
}

struct record *framer_take_hello(struct framer *framer) {
    struct record *record = framer->record;
    INTAKE_ASSERT(record != NULL);
    INTAKE_ASSERT(!framer->in_body);
    INTAKE_ASSERT(framer->error_detail == NULL);
    INTAKE_ASSERT(framer->identity == FRAMER_IDENTITY_SET);
    framer->record = NULL;
    return record;
}

const uint8_t *framer_producer_id(const struct framer *framer, uint32_t *length) {
    INTAKE_ASSERT(length != NULL);
    if (framer->identity != FRAMER_IDENTITY_SET) {
        *length = 0;
        return NULL;
    }
    *length = framer->producer_id_length;
    return framer->producer_id;
}

int framer_rejected_for_identity(const struct framer *framer) {
    INTAKE_ASSERT(framer->error_detail != NULL);
    return framer->error_identity;
}

int framer_rejected_for_sequence(const struct framer *framer) {
    INTAKE_ASSERT(framer->error_detail != NULL);
    return framer->error_sequence;
}

struct record *framer_release_record(struct framer *framer) {
    struct record *record = framer->record;
    framer->record = NULL;
    return record;
}

int framer_rejected_early(const struct framer *framer) {
    INTAKE_ASSERT(framer->error_detail != NULL);
    return framer->error_before_frame_end;
}

int framer_is_idle(const struct framer *framer) {
    return !framer->in_body && framer->length_decoder.bytes_seen == 0 && framer->record == NULL;
}
