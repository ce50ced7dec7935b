/*
 * bench_acks.c: the Ack parser of intake-bench's raw producers (bench_acks.h): delimited
 * intake.v1.Ack frames through the wire stage's decoder. Called on the producer's own thread.
 */
#include "bench_acks.h"

#include <errno.h>
#include <stdio.h>

#include "ack_frame.h"
#include "bench_producer.h"
#include "common.h"

/* Reads delimited intake.v1.Ack frames with the wire stage's decoder (ack_frame_decode, the
 * producer library's); a non-OK status or an unreadable frame ends the run with its detail.
 * Returns the bytes consumed (whole frames). */
size_t producer_parse_acks(struct producer *producer, const uint8_t *bytes, size_t filled) {
    size_t at = 0;
    while (at < filled) {
        struct ack_frame_decoded ack;
        enum ack_frame_result result =
            ack_frame_decode(bytes + at, filled - at, BENCH_ACK_BUFFER_BYTES, &ack);
        if (result == ACK_FRAME_NEED_MORE) break;
        if (result != ACK_FRAME_OK) {
            fprintf(stderr, "intake-bench: connection %u: unreadable ack: %s\n", producer->index,
                    result == ACK_FRAME_UNREADABLE ? ack.problem : "bad or oversized prefix");
            run_fail(producer->run, -EPROTO, "intake sent an unreadable ack");
            return filled; /* nothing after it can be framed */
        }
        if (ack.status != 0) {
            fprintf(stderr, "intake-bench: connection %u: ack status %u: %s\n", producer->index,
                    ack.status, ack.detail);
            run_fail(producer->run, -EPROTO, "intake rejected records");
        }
        if (ack.sequence > producer->acked_sequence) producer->acked_sequence = ack.sequence;
        at += ack.frame_bytes;
    }
    return at;
}
