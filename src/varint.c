/*
 * varint.c: protobuf base-128 varints (see varint.h). Pure functions; any thread.
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

enum varint_result varint_decoder_feed(struct varint_decoder *decoder, const uint8_t *bytes,
                                       size_t length, size_t *consumed) {
    INTAKE_ASSERT(decoder->bytes_seen < VARINT_BYTES_MAX);
    size_t index = 0;
    while (index < length) {
        uint8_t byte = bytes[index++];
        uint32_t shift = decoder->bytes_seen * 7;
        /* The tenth byte may carry only the top bit of a 64-bit value. */
        if (decoder->bytes_seen == VARINT_BYTES_MAX - 1 && byte > 1) {
            *consumed = index;
            return VARINT_BAD;
        }
        decoder->value |= (uint64_t)(byte & 0x7f) << shift;
        decoder->bytes_seen++;
        if ((byte & 0x80) == 0) {
            *consumed = index;
            return VARINT_OK;
        }
        if (decoder->bytes_seen == VARINT_BYTES_MAX) {
            *consumed = index;
            return VARINT_BAD;
        }
    }
    *consumed = index;
    return VARINT_NEED_MORE;
}

enum varint_result varint_decode(const uint8_t *bytes, size_t length, uint64_t *value,
                                 size_t *consumed) {
    struct varint_decoder decoder = {0, 0};
    size_t used = 0;
    enum varint_result result = varint_decoder_feed(&decoder, bytes, length, &used);
    if (result == VARINT_OK) {
        *value = decoder.value;
        *consumed = used;
    }
    return result;
}
