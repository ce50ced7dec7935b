/*
 * bench_acks.h: the Ack parser of intake-bench's raw producers: delimited intake.v1.Ack frames
 * read with the wire stage's decoder (ack_frame_decode, the producer library's). The producer's
 * own thread.
 */
#ifndef BENCH_ACKS_H
#define BENCH_ACKS_H

#include <stddef.h>
#include <stdint.h>

struct producer;

/* Reads the whole Ack frames in bytes[0..filled) and raises producer->acked_sequence to the
 * highest cumulative sequence seen; a non-OK status or an unreadable frame ends the run through
 * run_fail() with its detail on stderr (input, never asserted). Returns the bytes consumed
 * (filled after an unreadable frame: nothing after it can be framed). */
size_t producer_parse_acks(struct producer *producer, const uint8_t *bytes, size_t filled);

#endif
