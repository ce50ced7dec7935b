/*
 * slice_cursor.h: an internal read cursor over a record's slices (position -> slice index and
 * offset), shared by record_scan.c and record_decode.c. Not a public contract.
 *
 * Most records lie in one slice, so every operation first tries the current slice and only
 * walks to the next slice when a read crosses its end. The cursor never copies record bytes
 * except where a caller asks for a copy (slice_cursor_copy, used for nanopb's few-byte reads).
 * Any thread; the cursor belongs to whoever declared it.
 *
 * Invariant: either position == total_bytes, or slice_offset < slices[slice_index].length.
 */
#ifndef INTAKE_SLICE_CURSOR_H
#define INTAKE_SLICE_CURSOR_H

#include <string.h>

#include "record.h"
#include "varint.h"

struct slice_cursor {
    const struct slice *slices;
    uint32_t slice_count;
    uint32_t total_bytes;
    uint32_t slice_index;
    uint32_t slice_offset; /* within slices[slice_index] */
    uint32_t position;     /* within the record */
};

enum slice_cursor_varint {
    SLICE_CURSOR_VARINT_OK = 0,
    SLICE_CURSOR_VARINT_TRUNCATED = 1, /* the varint does not end before the limit */
    SLICE_CURSOR_VARINT_BAD = -1,      /* more than 10 bytes, or overflow */
};

/* Steps over empty slices (and the end of a fully read slice) to restore the invariant. */
static inline void slice_cursor_settle(struct slice_cursor *cursor) {
    while (cursor->slice_index + 1 < cursor->slice_count &&
           cursor->slice_offset == cursor->slices[cursor->slice_index].length) {
        cursor->slice_index++;
        cursor->slice_offset = 0;
    }
}

static inline void slice_cursor_init(struct slice_cursor *cursor, const struct record_view *view) {
    INTAKE_ASSERT(view != NULL);
    INTAKE_ASSERT(view->slice_count <= RECORD_SLICES_MAX);
    INTAKE_ASSERT(view->slice_count > 0 || view->total_bytes == 0);
    cursor->slices = view->slices;
    cursor->slice_count = view->slice_count;
    cursor->total_bytes = view->total_bytes;
    cursor->slice_index = 0;
    cursor->slice_offset = 0;
    cursor->position = 0;
    slice_cursor_settle(cursor);
}

/* Bytes readable at the cursor without crossing into the next slice. */
static inline uint32_t slice_cursor_contiguous(const struct slice_cursor *cursor) {
    if (cursor->position == cursor->total_bytes) return 0;
    return cursor->slices[cursor->slice_index].length - cursor->slice_offset;
}

static inline const uint8_t *slice_cursor_pointer(const struct slice_cursor *cursor) {
    INTAKE_ASSERT(cursor->position < cursor->total_bytes);
    return cursor->slices[cursor->slice_index].bytes + cursor->slice_offset;
}

/* Moves forward `count` bytes; the caller has checked that they lie inside the record. */
static inline void slice_cursor_advance(struct slice_cursor *cursor, uint32_t count) {
    INTAKE_ASSERT(count <= cursor->total_bytes - cursor->position);
    cursor->position += count;
    while (count > 0) {
        uint32_t available = cursor->slices[cursor->slice_index].length - cursor->slice_offset;
        uint32_t step = count < available ? count : available;
        cursor->slice_offset += step;
        count -= step;
        if (count > 0) {
            INTAKE_ASSERT(cursor->slice_index + 1 < cursor->slice_count);
            cursor->slice_index++;
            cursor->slice_offset = 0;
        }
    }
    slice_cursor_settle(cursor);
}

/* Moves to an absolute position; walking from the start is cheap with at most 64 slices. */
static inline void slice_cursor_seek(struct slice_cursor *cursor, uint32_t position) {
    INTAKE_ASSERT(position <= cursor->total_bytes);
    if (position < cursor->position) {
        cursor->slice_index = 0;
        cursor->slice_offset = 0;
        cursor->position = 0;
        slice_cursor_settle(cursor);
    }
    slice_cursor_advance(cursor, position - cursor->position);
}

/* Copies `count` bytes out and advances; for nanopb's reads of tags and varints only. */
static inline void slice_cursor_copy(struct slice_cursor *cursor, uint8_t *out, uint32_t count) {
    INTAKE_ASSERT(count <= cursor->total_bytes - cursor->position);
    while (count > 0) {
        uint32_t available = slice_cursor_contiguous(cursor);
        uint32_t step = count < available ? count : available;
        INTAKE_ASSERT(step > 0);
        memcpy(out, slice_cursor_pointer(cursor), step);
        out += step;
        count -= step;
        slice_cursor_advance(cursor, step);
    }
}

/* Reads a varint that must end before absolute position `limit`; advances only on success. */
static inline enum slice_cursor_varint slice_cursor_varint(struct slice_cursor *cursor,
                                                           uint32_t limit, uint64_t *value) {
    INTAKE_ASSERT(limit <= cursor->total_bytes);
    INTAKE_ASSERT(cursor->position <= limit);
    uint32_t in_limit = limit - cursor->position;
    uint32_t available = slice_cursor_contiguous(cursor);
    if (available > in_limit) available = in_limit;
    if (in_limit == 0) return SLICE_CURSOR_VARINT_TRUNCATED;
    /* Fast path: the whole varint lies in the current slice. */
    size_t consumed = 0;
    enum varint_result result =
        varint_decode(slice_cursor_pointer(cursor), available, value, &consumed);
    if (INTAKE_LIKELY(result == VARINT_OK)) {
        slice_cursor_advance(cursor, (uint32_t)consumed);
        return SLICE_CURSOR_VARINT_OK;
    }
    if (result == VARINT_BAD) return SLICE_CURSOR_VARINT_BAD;
    if (available == in_limit) return SLICE_CURSOR_VARINT_TRUNCATED;
    /* Slow path: the varint crosses a slice boundary; feed slice by slice on a copy. */
    struct slice_cursor probe = *cursor;
    struct varint_decoder decoder = {0, 0};
    while (probe.position < limit) {
        uint32_t piece = slice_cursor_contiguous(&probe);
        if (piece > limit - probe.position) piece = limit - probe.position;
        result = varint_decoder_feed(&decoder, slice_cursor_pointer(&probe), piece, &consumed);
        slice_cursor_advance(&probe, (uint32_t)consumed);
        if (result == VARINT_BAD) return SLICE_CURSOR_VARINT_BAD;
        if (result == VARINT_OK) {
            *value = decoder.value;
            *cursor = probe;
            return SLICE_CURSOR_VARINT_OK;
        }
    }
    return SLICE_CURSOR_VARINT_TRUNCATED;
}

/* Nonzero when the `length` bytes at the cursor are valid UTF-8; the cursor does not move. */
static inline int slice_cursor_is_utf8(const struct slice_cursor *cursor, uint32_t length) {
    INTAKE_ASSERT(length <= cursor->total_bytes - cursor->position);
    struct slice_cursor probe = *cursor;
    uint32_t state = 0;
    while (length > 0) {
        uint32_t piece = slice_cursor_contiguous(&probe);
        if (piece > length) piece = length;
        if (!intake_utf8_feed(&state, slice_cursor_pointer(&probe), piece)) return 0;
        slice_cursor_advance(&probe, piece);
        length -= piece;
    }
    return state == 0;
}

#endif
