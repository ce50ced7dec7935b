/*
 * intake/producer.h: the producer library. Sends intake.v1.Record frames to intaked over TCP and
 * reads back its cumulative Acks. Links intake_base, intake_wire and intake_proto (no io_uring).
 *
 * Thread-safety: one producer per thread. A producer is not safe to share between threads
 * without external locking; distinct producers are fully independent.
 *
 * Batching: records are encoded straight into a batch buffer sized at open and written when it
 * fills or on flush, so a write carries many records. A record larger than the batch is streamed
 * through in pieces. Nothing allocates after open.
 *
 * Acks: with `acks` set, records get sequences 1, 2, 3, ... and intake acknowledges them
 * cumulatively. Acks are drained whenever the socket is read (while writing, after each batch,
 * in wait_acks), so the ack stream never backs up. Without `acks`, records carry sequence 0 and
 * intake acknowledges nothing.
 *
 * Errors: every function that can fail returns 0 or a negative errno, and
 * intake_producer_last_error gives one line saying why. A connection error or a non-OK Ack
 * (intake closes the connection after one) is sticky: every later call returns the same error.
 *   -EINVAL       bad argument (empty, over-long or non-UTF-8 topic; waiting on an unsent sequence)
 *   -EPROTO       intake answered with a non-OK Ack: last_error is "REJECTED: <detail>" (or
 *                 RESOURCE_EXHAUSTED, SHUTTING_DOWN, INTERNAL), or it sent an unreadable Ack
 *   -ETIMEDOUT    wait_acks, or a write stalled longer than io_timeout_ms
 *   -ECONNRESET   intake closed the connection
 *   other         from connect/send/recv (e.g. -ECONNREFUSED)
 */
#ifndef INTAKE_PRODUCER_H
#define INTAKE_PRODUCER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define INTAKE_PRODUCER_MUST_CHECK __attribute__((warn_unused_result))

/* Default batch buffer, bytes. */
#define INTAKE_PRODUCER_BATCH_BYTES_DEFAULT (64u * 1024u)
/* Default connect and stalled-write timeout, milliseconds. */
#define INTAKE_PRODUCER_IO_TIMEOUT_MS_DEFAULT 30000
/* Longest topic, bytes of UTF-8 (as the daemon enforces). */
#define INTAKE_PRODUCER_TOPIC_BYTES_MAX 255

struct intake_producer;

struct intake_producer_config {
    const char *address;    /* "HOST:PORT", "IPv4:PORT" or "[IPv6]:PORT" */
    uint32_t batch_bytes;   /* 0: INTAKE_PRODUCER_BATCH_BYTES_DEFAULT */
    uint32_t io_timeout_ms; /* 0: INTAKE_PRODUCER_IO_TIMEOUT_MS_DEFAULT */
    bool acks;              /* assign sequences 1, 2, 3, ... and accept wait_acks */
};

/* Connects and allocates the producer. On failure *producer is NULL and `why` (if not NULL) holds
 * one line, e.g. "connect to 127.0.0.1:7000: Connection refused". */
int intake_producer_open(const struct intake_producer_config *config,
                         struct intake_producer **producer, char *why,
                         size_t why_capacity) INTAKE_PRODUCER_MUST_CHECK;
/* Flushes nothing (call flush or wait_acks first), closes the socket and frees the producer. */
void intake_producer_close(struct intake_producer *producer);

/* Encodes one Record (topic: NUL-terminated, 1..255 bytes of UTF-8; key may be empty) into the
 * batch; writes the batch first if the record does not fit. timestamp_ns 0 means now (wall
 * clock). *sequence (may be NULL) receives the record's sequence: 1, 2, 3, ... with acks,
 * else 0. */
int intake_producer_send(struct intake_producer *producer, const char *topic, const void *key,
                         size_t key_length, const void *value, size_t value_length,
                         uint64_t timestamp_ns, uint64_t *sequence) INTAKE_PRODUCER_MUST_CHECK;
/* Sends an already-encoded Record (without a length prefix; the library adds it) byte for byte,
 * e.g. one with unknown fields or fields in an unusual order. Its sequence is whatever field 5
 * says (the last occurrence wins; 0 when absent or unreadable), returned in *sequence (may be
 * NULL). The library does not validate it: intake does. */
int intake_producer_send_raw(struct intake_producer *producer, const void *record, size_t length,
                             uint64_t *sequence) INTAKE_PRODUCER_MUST_CHECK;
/* Writes everything batched so far. */
int intake_producer_flush(struct intake_producer *producer) INTAKE_PRODUCER_MUST_CHECK;
/* Flushes, then reads Acks until the cumulative ack reaches `sequence`: 0. -ETIMEDOUT when
 * timeout_ms passes first (a negative timeout_ms waits forever); -EPROTO on a non-OK Ack;
 * -EINVAL for a sequence not sent yet (nothing could ever ack it). */
int intake_producer_wait_acks(struct intake_producer *producer, uint64_t sequence,
                              int timeout_ms) INTAKE_PRODUCER_MUST_CHECK;

/* Highest sequence intake has acknowledged so far. */
uint64_t intake_producer_acked(const struct intake_producer *producer);
/* Highest sequence sent so far (by send or send_raw); 0 when none. */
uint64_t intake_producer_last_sequence(const struct intake_producer *producer);
/* One line describing the last error; "" when none. Valid until the next call. */
const char *intake_producer_last_error(const struct intake_producer *producer);

#endif
