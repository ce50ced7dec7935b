/*
 * varint.c: protobuf base-128 varints (see varint.h). Pure functions with no state of their own;
 * any thread may call them. The incremental decoder's state belongs to its caller.
 */
#include "varint.h"

#include <endian.h>
#include <string.h>

size_t varint_encode(uint64_t value, uint8_t *out) {
    INTAKE_ASSERT(out != NULL);
    size_t written = 0;
    while (value >= 0x80) {
        out[written++] = (uint8_t)(value | 0x80);
        value >>= 7;
    }
    out[written++] = (uint8_t)value;
    INTAKE_ASSERT(written <= VARINT_BYTES_MAX);
    return written;
}

size_t varint_length(uint64_t value) {
    size_t length = 1;
    while (value >= 0x80) {
        value >>= 7;
        length++;
    }
    return length;
}

/*
 * Adds one byte to a partial value. The 10th byte carries bit 63 only, so anything above 1 in
 * it would overflow 64 bits; a continuation bit on the 10th byte means an 11th would follow.
 */
static enum varint_result varint_accumulate(struct varint_decoder *decoder, uint8_t byte) {
    INTAKE_ASSERT(decoder->bytes_seen < VARINT_BYTES_MAX);
    if (decoder->bytes_seen == VARINT_BYTES_MAX - 1 && byte > 1) return VARINT_BAD;
    decoder->value |= (uint64_t)(byte & 0x7f) << (7 * decoder->bytes_seen);
    decoder->bytes_seen++;
    return (byte & 0x80) ? VARINT_NEED_MORE : VARINT_OK;
}

enum varint_result varint_decoder_feed(struct varint_decoder *decoder, const uint8_t *bytes,
                                       size_t length, size_t *consumed) {
    INTAKE_ASSERT(decoder != NULL);
    INTAKE_ASSERT(consumed != NULL);
    INTAKE_ASSERT(bytes != NULL || length == 0);
    size_t index = 0;
    while (index < length) {
        enum varint_result result = varint_accumulate(decoder, bytes[index]);
        index++;
        if (result != VARINT_NEED_MORE) {
            *consumed = index;
            return result;
        }
    }
    *consumed = index;
    return VARINT_NEED_MORE;
}

/* Packs the 7-bit groups of the low bytes of `word` (high bits already cleared) into one value:
 * pairs into 14 bits, then 28, then 56. */
static uint64_t varint_compact(uint64_t word) {
    word = ((word & 0x7f007f007f007f00ull) >> 1) | (word & 0x007f007f007f007full);
    word = ((word & 0x3fff00003fff0000ull) >> 2) | (word & 0x00003fff00003fffull);
    word = ((word & 0x0fffffff00000000ull) >> 4) | (word & 0x000000000fffffffull);
    return word;
}

enum varint_result varint_decode_multibyte(const uint8_t *bytes, size_t length, uint64_t *value,
                                           size_t *consumed) {
    INTAKE_ASSERT(value != NULL);
    INTAKE_ASSERT(consumed != NULL);
    if (length >= VARINT_BYTES_MAX) {
        /* Ten bytes at hand (the common case inside a received record): find the last byte with
         * one load and a bit scan instead of a loop with a branch per byte. */
        uint64_t word;
        memcpy(&word, bytes, sizeof(word));
        word = le64toh(word); /* byte 0 in the low bits */
        uint64_t stops = ~word & 0x8080808080808080ull;
        if (stops != 0) {
            unsigned stop_bit = (unsigned)__builtin_ctzll(stops); /* 7, 15, ..., 63 */
            uint64_t keep = stop_bit == 63 ? ~0ull : (1ull << (stop_bit + 1)) - 1;
            *value = varint_compact(word & keep & 0x7f7f7f7f7f7f7f7full);
            *consumed = stop_bit / 8 + 1;
            return VARINT_OK;
        }
        /* Eight continuation bytes: a ninth, and perhaps a tenth, which carries bit 63 only. */
        uint64_t result = varint_compact(word & 0x7f7f7f7f7f7f7f7full);
        result |= (uint64_t)(bytes[8] & 0x7f) << 56;
        if (bytes[8] < 0x80) {
            *value = result;
            *consumed = 9;
            return VARINT_OK;
        }
        if (bytes[9] > 1) return VARINT_BAD;
        *value = result | (uint64_t)bytes[9] << 63;
        *consumed = 10;
        return VARINT_OK;
    }
    /* Fewer bytes than the longest varint (the end of a slice): one byte at a time. */
    uint64_t result = 0;
    for (size_t index = 0; index < length; index++) {
        uint8_t byte = bytes[index];
        result |= (uint64_t)(byte & 0x7f) << (7 * index);
        if (byte < 0x80) {
            *value = result;
            *consumed = index + 1;
            return VARINT_OK;
        }
    }
    return VARINT_NEED_MORE;
}
