/*
 * varint.h: protobuf base-128 varints (encode, decode from contiguous bytes, and an incremental
 * decoder for a varint split across receive slices). Pure functions; any thread.
 */
#ifndef INTAKE_VARINT_H
#define INTAKE_VARINT_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

/* Longest varint encoding of a uint64_t. */
#define VARINT_BYTES_MAX 10

enum varint_result {
    VARINT_OK = 0,        /* a complete value was decoded */
    VARINT_NEED_MORE = 1, /* input ended inside the varint; feed more */
    VARINT_BAD = -1,      /* more than 10 bytes, or a 10th byte that overflows 64 bits */
};

/* Writes `value` to `out` (room for VARINT_BYTES_MAX); returns the bytes written (1..10). */
size_t varint_encode(uint64_t value, uint8_t *out);
/* Bytes varint_encode would write for `value`. */
size_t varint_length(uint64_t value);

/* varint_decode's path for everything but a one-byte varint (call varint_decode). */
enum varint_result varint_decode_multibyte(const uint8_t *bytes, size_t length, uint64_t *value,
                                           size_t *consumed) INTAKE_MUST_CHECK;

/* Decodes one varint from `bytes[0..length)`; on VARINT_OK sets *value and *consumed. Inline
 * for the one-byte case, by far the most common (tags, short lengths): the framer and the scan
 * call this for every field of every record. */
static inline INTAKE_MUST_CHECK enum varint_result
varint_decode(const uint8_t *bytes, size_t length, uint64_t *value, size_t *consumed) {
    if (INTAKE_LIKELY(length > 0 && bytes[0] < 0x80)) {
        *value = bytes[0];
        *consumed = 1;
        return VARINT_OK;
    }
    return varint_decode_multibyte(bytes, length, value, consumed);
}

/* Incremental decoder: survives a varint split at any byte boundary. Zero-initialise to start. */
struct varint_decoder {
    uint64_t value;
    uint32_t bytes_seen;
};
/* Feeds bytes from `bytes[0..length)`, stopping at the end of the varint; *consumed says how many
 * were taken. VARINT_OK: decoder->value is complete (reset the decoder before the next varint). */
enum varint_result varint_decoder_feed(struct varint_decoder *decoder, const uint8_t *bytes,
                                       size_t length, size_t *consumed) INTAKE_MUST_CHECK;

#endif
