/*
 * record.h: the descriptor of one received record: the hand-off type between the stages.
 * (The per-reactor pool that owns records is concurrent/record_pool.h.)
 *
 * A record is never copied out of the receive buffers. Its bytes (the encoded intake.v1.Record,
 * without the varint length prefix) stay where the kernel put them; a record is a list of slices
 * into receive memory. Each slice pins one "receive unit" of the reactor's backend (a provided
 * buffer, or a zcrx completion's fragment) through a reference count the reactor keeps.
 *
 * Ownership travels with the pointer:
 *   reactor (framer fills it) -> topic queue -> worker (decodes, appends to the log, sets status)
 *   -> return channel -> the same reactor (drops slice references, acks, frees to its pool).
 * Only the owning reactor allocates and frees records of its pool (record_pool.h); only the
 * current holder reads or writes a record.
 */
#ifndef INTAKE_RECORD_H
#define INTAKE_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include "common.h"

/* Most slices one record may span. A record that arrives in more fragments than this is
 * rejected with RESOURCE_EXHAUSTED ("record arrived in more than 64 fragments"); with 64 KiB
 * receive buffers and ordinary TCP segment sizes a 1 MiB record spans about 20. */
#define RECORD_SLICES_MAX 64

/* Longest topic name, bytes of UTF-8. */
#define RECORD_TOPIC_BYTES_MAX 255

/* Longest producer_id (Record field 7, Hello field 16), bytes. */
#define RECORD_PRODUCER_ID_BYTES_MAX 64

/* Room for a status detail a worker composes for one record (it names a topic, a size or a
 * system error); details longer than an Ack carries are cut when the Ack is encoded. */
#define RECORD_STATUS_TEXT_BYTES 256

/* One contiguous run of record bytes inside receive memory. */
struct slice {
    const uint8_t *bytes;
    uint32_t length;
    /* Backend receive unit that holds these bytes; the owning reactor counts references per
     * unit. */
    uint32_t unit;
};

/* Status a worker leaves in a record for its reactor (values match intake.v1.Ack.Status). */
enum record_status {
    RECORD_STATUS_OK = 0,
    RECORD_STATUS_REJECTED = 1,
    RECORD_STATUS_RESOURCE_EXHAUSTED = 2,
    RECORD_STATUS_SHUTTING_DOWN = 3,
    RECORD_STATUS_INTERNAL = 4,
};

/* record.sequence_flags (issue 17), for the worker's deduplication (dedupe_table.h). */
/* The connection's first record with a producer_id (set by the framer). */
#define RECORD_SEQUENCE_FIRST 1u
/* Its sequence lies in a gap of its producer (a range the daemon never admitted, producer
 * table): nothing with this sequence was ever written, so it is appended, never answered as a
 * duplicate (set by the reactor). */
#define RECORD_SEQUENCE_GAP_FILL 2u

/* Who sent a record: one per connection, owned by it, filled before the connection's first
 * record is admitted and never changed while any of its records is in flight (a connection is
 * freed only once every record came back). Records point at it, so the worker reads the
 * principal and the producer's hash without hashing anything per record. */
struct record_origin {
    uint64_t principal;          /* the connection's principal's tag (principal.h) */
    uint64_t producer_hash;      /* keyed hash of (principal, producer_id), 0 without one */
    uint32_t producer_id_length; /* 0: records of this connection carry no producer_id */
    uint8_t producer_id[RECORD_PRODUCER_ID_BYTES_MAX];
};

/* Laid out for the hand-offs: a record crosses from the reactor's core to a worker's and back,
 * so everything either side touches per record (the fields below and the first two slices)
 * shares the first two cache lines; the status text, written only for a failed record, is last. */
struct record {
    /* --- written by the framer (reactor thread) --- */
    uint32_t frame_bytes; /* encoded record length, without the varint prefix */
    uint16_t slice_count;
    uint16_t reactor_index; /* owning reactor: where the return channel leads */
    uint32_t pool_index;    /* index in the owning reactor's pool */
    uint32_t topic_offset;  /* byte offset of the (last) topic value within the record */
    uint32_t topic_length;  /* its length; 1..RECORD_TOPIC_BYTES_MAX */
    /* --- written by the reactor when it admits the record --- */
    uint32_t topic_id;
    /* --- written by the framer's scan --- */
    uint64_t sequence;     /* field 5 as the framer's scan read it (0: no ack wanted) */
    uint64_t timestamp_ns; /* field 4 as the framer's scan read it */
    /* --- written by the reactor when it admits the record --- */
    uint64_t receive_time_ns; /* wall clock at admission */
    uint32_t connection_slot;
    uint32_t connection_generation;
    uint32_t window_position; /* position in the connection's ack window */
    /* --- written by the worker --- */
    uint32_t status;     /* enum record_status */
    uint64_t log_offset; /* topic offset the log assigned, when status is OK */
    /* field 7 (producer_id) as the scan read it: byte offset within the record and length
     * (1..RECORD_PRODUCER_ID_BYTES_MAX); length 0 when the record has none */
    uint32_t producer_id_offset;
    uint16_t producer_id_length;
    uint16_t sequence_flags; /* RECORD_SEQUENCE_* (framer, reactor) */
    /* When status is not OK: a static string, or status_text. Read by the reactor when the record
     * comes back, before it is freed (the reactor keeps its own copy for the final Ack). Written
     * by the worker. */
    const char *status_detail;
    /* --- written by the reactor when it admits the record --- */
    const struct record_origin *origin; /* its connection's; never NULL once admitted */
    /* --- written by the framer --- */
    struct slice slices[RECORD_SLICES_MAX];
    /* --- written by the worker, for a failed record only --- */
    char status_text[RECORD_STATUS_TEXT_BYTES];
} INTAKE_ALIGNED_CACHE_LINE; /* a record starts a cache line, so the pool's records do too */
_Static_assert(offsetof(struct record, status) < INTAKE_CACHE_LINE_BYTES,
               "the fields both sides touch per record share the first cache line");
_Static_assert(offsetof(struct record, slices) + 2 * sizeof(struct slice) <=
                   2 * INTAKE_CACHE_LINE_BYTES,
               "the first two slices share the second cache line");
_Static_assert(offsetof(struct record, origin) + sizeof(void *) <= 2 * INTAKE_CACHE_LINE_BYTES,
               "the origin pointer shares the first two cache lines");

/* Read-only view over a record's bytes; lets scanners and hashes walk slices without copying. */
struct record_view {
    const struct slice *slices;
    uint32_t slice_count;
    uint32_t total_bytes;
};

/* The detail for a record larger than its topic's log takes (reactor at admission, worker as a
 * second check): a log keeps the limit it was created with. */
static inline void record_over_log_limit_detail(char *out, size_t capacity, uint32_t record_bytes,
                                                uint32_t limit_bytes) {
    snprintf(out, capacity,
             "record of %u bytes exceeds this topic's log limit of %u bytes (the log was created "
             "with a smaller --log-size; remove it with intake-topic --remove to recreate it)",
             record_bytes, limit_bytes);
}

static inline struct record_view record_view_of(const struct record *record) {
    struct record_view view = {record->slices, record->slice_count, record->frame_bytes};
    return view;
}

#endif
