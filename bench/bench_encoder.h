/*
 * bench_encoder.h: intake-bench's own encoder. Every value begins with a BENCH_STAMP_BYTES
 * stamp: CLOCK_MONOTONIC send time in ns, then a tag (connection index << BENCH_TAG_INDEX_SHIFT
 * | per-connection record number), both little endian; the rest is filler. A batch is one
 * producer's records for one write, encoded once (intake.v1.Records, delimited, or NATS PUBs)
 * and stamped just before each write. Each producer thread owns its batch.
 */
#ifndef BENCH_ENCODER_H
#define BENCH_ENCODER_H

#include <stddef.h>
#include <stdint.h>

#include "bench.h"

/* One producer's batch buffer. Layout is fixed per batch position (size and topic depend only
 * on the position), so without acks the batch is encoded once and each write only patches the
 * stamps; with acks each record carries a growing sequence, so the batch is re-encoded. */
struct batch {
    uint8_t *bytes;
    size_t capacity;
    uint32_t record_count;
    uint32_t *record_end;   /* offset just past record i (partial writes) */
    uint32_t *stamp_offset; /* offset of record i's stamp */
    uint64_t payload_bytes; /* sum of value sizes in a full batch */
};

/* The stamp's parts. */
void put_u64_le(uint8_t *out, uint64_t value);
uint64_t get_u64_le(const uint8_t *bytes);
uint64_t make_tag(uint32_t connection_index, uint64_t record_number);

/* Value bytes of batch position `position` (--size cycles per position). */
uint32_t batch_value_bytes(const struct bench_options *options, uint32_t position);
/* Topic number of batch position `position` of connection `index`: connections spread over
 * topics first, then positions. */
uint32_t batch_topic(const struct bench_options *options, uint32_t index, uint32_t position);
/* Allocates a batch of --batch records sized for the largest encoding: 0 or -ENOMEM (the
 * caller then still calls batch_destroy). */
int batch_init(struct batch *batch, const struct bench_options *options);
void batch_destroy(struct batch *batch);
/* Encodes a full batch for connection `index` (records for --target intake, PUBs for nats);
 * first_sequence 0 means no sequences (no acks); producer_id NULL means no field 7. */
void batch_encode(struct batch *batch, const struct bench_options *options, uint32_t index,
                  uint64_t first_sequence, const char *producer_id);
/* Writes now_ns and the tags of record numbers first_record_number.. into the first
 * record_count stamps (record_count <= the batch's). */
void batch_stamp(struct batch *batch, uint32_t record_count, uint32_t index,
                 uint64_t first_record_number, uint64_t now_ns);

#endif
