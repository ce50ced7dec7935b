/*
 * ack_frame.c: delimited intake.v1.Ack encoding and decoding (see ack_frame.h).
 */
#include "ack_frame.h"

#include <string.h>

#include <pb_decode.h>

#include "intake.pb.h"
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

/* nanopb callback for Ack.detail: keeps what fits, skips the rest (the field must be consumed). */
static bool ack_frame_decode_detail(pb_istream_t *stream, const pb_field_t *field,
                                    void **argument) {
    char *detail = *argument;
    size_t length = stream->bytes_left;
    size_t kept =
        length < ACK_FRAME_DETAIL_KEPT_BYTES - 1 ? length : ACK_FRAME_DETAIL_KEPT_BYTES - 1;
    if (!pb_read(stream, (pb_byte_t *)detail, kept)) return false;
    detail[kept] = '\0';
    return pb_read(stream, NULL, length - kept);
}

enum ack_frame_result ack_frame_decode(const uint8_t *bytes, size_t length, size_t body_bytes_max,
                                       struct ack_frame_decoded *ack) {
    INTAKE_ASSERT(bytes != NULL || length == 0);
    INTAKE_ASSERT(ack != NULL);
    memset(ack, 0, sizeof(*ack));
    size_t prefix_bytes = 0;
    enum varint_result prefix = varint_decode(bytes, length, &ack->body_bytes, &prefix_bytes);
    if (prefix == VARINT_NEED_MORE) return ACK_FRAME_NEED_MORE;
    if (prefix == VARINT_BAD) return ACK_FRAME_BAD_PREFIX;
    if (ack->body_bytes > body_bytes_max) return ACK_FRAME_TOO_LONG;
    if (length - prefix_bytes < ack->body_bytes) return ACK_FRAME_NEED_MORE;
    intake_v1_Ack message = intake_v1_Ack_init_zero;
    message.detail.funcs.decode = ack_frame_decode_detail;
    message.detail.arg = ack->detail;
    pb_istream_t stream = pb_istream_from_buffer(bytes + prefix_bytes, (size_t)ack->body_bytes);
    if (!pb_decode(&stream, intake_v1_Ack_fields, &message)) {
        ack->problem = PB_GET_ERROR(&stream);
        return ACK_FRAME_UNREADABLE;
    }
    ack->sequence = message.sequence;
    ack->status = (uint32_t)message.status;
    ack->frame_bytes = prefix_bytes + (size_t)ack->body_bytes;
    return ACK_FRAME_OK;
}
