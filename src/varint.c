/*
 * varint.c: protobuf base-128 varints (see varint.h). Pure functions; any thread.
 *
 * Written in the queues worktree only because intake_base cannot build without it; the framer
 * worktree owns this module and its version replaces this one at merge. Kept exactly to the header.
 */
#include "varint.h"

size_t varint_encode(uint64_t value, uint8_t *out) {
    size_t written = 0;
    while (value >= 0x80) {
        out[written++] = (uint8_t)(value | 0x80);
        value >>= 7;
    }
    out[written++] = (uint8_t)value;
    INTAKE_ASSERT(written >= 1);
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

enum varint_result varint_decode(const uint8_t *bytes, size_t length, uint64_t *value,
                                 size_t *consumed) {
    struct varint_decoder decoder = {0, 0};
    enum varint_result result = varint_decoder_feed(&decoder, bytes, length, consumed);
    if (result == VARINT_OK) *value = decoder.value;
    return result;
}

enum varint_result varint_decoder_feed(struct varint_decoder *decoder, const uint8_t *bytes,
                                       size_t length, size_t *consumed) {
    INTAKE_ASSERT(decoder->bytes_seen < VARINT_BYTES_MAX);
    size_t index = 0;
    while (index < length) {
        uint8_t byte = bytes[index++];
        uint32_t shift = 7 * decoder->bytes_seen;
        /* The 10th byte carries only bit 63: anything above 1 (or a continuation) overflows. */
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
    }
    *consumed = index;
    return VARINT_NEED_MORE;
}
