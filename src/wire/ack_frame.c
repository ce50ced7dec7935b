/*
 * ack_frame.c: delimited intake.v1.Ack encoding (see ack_frame.h).
 */
#include "ack_frame.h"

#include <string.h>

#include "varint.h"

/* Cuts `length` back so the detail never ends inside a UTF-8 sequence. */
static size_t utf8_prefix_length(const char *text, size_t length) {
    while (length > 0 && ((uint8_t)text[length] & 0xC0) == 0x80) length--;
    return length;
}

size_t ack_frame_encode(uint64_t sequence, uint32_t status, const char *detail, uint8_t *out) {
    uint8_t body[ACK_FRAME_BYTES_MAX];
    size_t body_length = 0;
    if (sequence != 0) {
        body[body_length++] = 0x08; /* field 1, varint */
        body_length += varint_encode(sequence, body + body_length);
    }
    if (status != 0) {
        body[body_length++] = 0x10; /* field 2, varint */
        body_length += varint_encode(status, body + body_length);
    }
    size_t detail_length = detail ? strlen(detail) : 0;
    if (detail_length > ACK_DETAIL_BYTES_MAX)
        detail_length = utf8_prefix_length(detail, ACK_DETAIL_BYTES_MAX);
    if (detail_length > 0) {
        body[body_length++] = 0x1a; /* field 3, length-delimited */
        body_length += varint_encode(detail_length, body + body_length);
        memcpy(body + body_length, detail, detail_length);
        body_length += detail_length;
    }
    INTAKE_ASSERT(body_length <= sizeof(body));
    size_t prefix_length = varint_encode(body_length, out);
    memcpy(out + prefix_length, body, body_length);
    INTAKE_ASSERT(prefix_length + body_length <= ACK_FRAME_BYTES_MAX);
    return prefix_length + body_length;
}
