/*
 * varint.c: protobuf base-128 varints (see varint.h). Pure functions with no state of their own;
 * any thread may call them. The incremental decoder's state belongs to its caller.
 */
#include "varint.h"

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

enum varint_result varint_decode(const uint8_t *bytes, size_t length, uint64_t *value,
                                 size_t *consumed) {
    INTAKE_ASSERT(value != NULL);
    INTAKE_ASSERT(consumed != NULL);
    /* The one-byte case is by far the most common (tags, short lengths): keep it cheap. */
    if (INTAKE_LIKELY(length > 0 && bytes[0] < 0x80)) {
        *value = bytes[0];
        *consumed = 1;
        return VARINT_OK;
    }
    /* Longer ones (timestamps take 9 bytes) in one tight loop over contiguous bytes. */
    uint64_t result = 0;
    size_t limit = length < VARINT_BYTES_MAX ? length : VARINT_BYTES_MAX;
    for (size_t index = 0; index < limit; index++) {
        uint8_t byte = bytes[index];
        result |= (uint64_t)(byte & 0x7f) << (7 * index);
        if (byte < 0x80) {
            /* The tenth byte may carry only the top bit of a 64-bit value. */
            if (index == VARINT_BYTES_MAX - 1 && byte > 1) return VARINT_BAD;
            *value = result;
            *consumed = index + 1;
            return VARINT_OK;
        }
    }
    return length >= VARINT_BYTES_MAX ? VARINT_BAD : VARINT_NEED_MORE;
}
