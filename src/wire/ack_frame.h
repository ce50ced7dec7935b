/*
 * ack_frame.h: the delimited intake.v1.Ack frames between the reactor and producers: encoding
 * (the reactor) and decoding (the producer library's Ack reader).
 *
 * Encoding is by hand (three fields) so the reactor's hot path calls no generic encoder; the
 * test decodes the frames with nanopb to prove they are the protobuf the .proto describes.
 * Decoding uses nanopb and is fuzzed (tests/fuzz/fuzz_ack_reader.c): it reads bytes that came
 * from the network, so it returns a result for every input and asserts nothing about them.
 * Pure functions; any thread.
 */
#ifndef INTAKE_ACK_FRAME_H
#define INTAKE_ACK_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

/* Longest detail we send; longer details are cut at a UTF-8 boundary. */
#define ACK_DETAIL_BYTES_MAX 200
/* Room for the longest frame: a 2-byte prefix, then tag and value of a 64-bit sequence
 * (1 + 10), of a 32-bit status (1 + 5: any uint32, not only the five statuses we define), and
 * of the detail (1 + 2-byte length + the bytes). */
#define ACK_FRAME_BYTES_MAX (2 + (1 + 10) + (1 + 5) + (1 + 2 + ACK_DETAIL_BYTES_MAX))

/* Writes varint length + Ack{sequence, status, detail} to `out`; returns the frame's length.
 * `detail` may be NULL. Status 0 (OK) and an empty detail are omitted, as protobuf does. */
size_t ack_frame_encode(uint64_t sequence, uint32_t status, const char *detail, uint8_t *out);

/* Bytes of an Ack's detail a decoded Ack keeps (NUL included); longer ones are cut. */
#define ACK_FRAME_DETAIL_KEPT_BYTES 512

enum ack_frame_result {
    ACK_FRAME_OK = 0,          /* one frame decoded; the frame took ack->frame_bytes bytes */
    ACK_FRAME_NEED_MORE = 1,   /* the bytes end inside the frame (prefix or body): read more */
    ACK_FRAME_BAD_PREFIX = -1, /* the length prefix is not a valid varint */
    ACK_FRAME_TOO_LONG = -2,   /* the prefix announces more than body_bytes_max; see body_bytes */
    ACK_FRAME_UNREADABLE = -3, /* the body is not a valid Ack; ack->problem says why */
};

struct ack_frame_decoded {
    uint64_t sequence;
    uint32_t status;     /* intake.v1.Ack.Status as sent; values we do not know are kept */
    uint64_t body_bytes; /* what the prefix announced (OK, TOO_LONG) */
    size_t frame_bytes;  /* prefix plus body (OK) */
    const char *problem; /* static or nanopb's message (UNREADABLE) */
    char detail[ACK_FRAME_DETAIL_KEPT_BYTES]; /* NUL-terminated; "" when absent */
};

/* Decodes the first delimited Ack in `bytes[0..length)`. A frame whose body is over
 * `body_bytes_max` is refused from its prefix alone, so a reader with a buffer of that size
 * never waits for a frame it cannot hold. */
enum ack_frame_result ack_frame_decode(const uint8_t *bytes, size_t length, size_t body_bytes_max,
                                       struct ack_frame_decoded *ack) INTAKE_MUST_CHECK;

#endif
