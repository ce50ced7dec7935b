/*
 * ack_frame.h: encodes the delimited intake.v1.Ack frames the reactor sends to producers.
 *
 * Hand-encoded (three fields) so the reactor's hot path calls no generic encoder; the test
 * decodes them with nanopb to prove they are the protobuf the .proto describes. Pure; any thread.
 */
#ifndef INTAKE_ACK_FRAME_H
#define INTAKE_ACK_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

/* Longest detail we send; longer details are cut at a UTF-8 boundary. */
#define ACK_DETAIL_BYTES_MAX 200
/* Room for the longest frame: prefix + three tagged fields. */
#define ACK_FRAME_BYTES_MAX (2 + 1 + 10 + 1 + 1 + 1 + 2 + ACK_DETAIL_BYTES_MAX)

/* Writes varint length + Ack{sequence, status, detail} to `out`; returns the frame's length.
 * `detail` may be NULL. Status 0 (OK) and an empty detail are omitted, as protobuf does. */
size_t ack_frame_encode(uint64_t sequence, uint32_t status, const char *detail, uint8_t *out);

#endif
