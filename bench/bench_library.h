/*
 * bench_library.h: intake-bench's producers written with the product's own producer library
 * (include/intake/producer.h) instead of intake-bench's hand-rolled encoder, so that the
 * library's cost per record is part of what bench/run measures (issue 10).
 *
 * Thread: one bench_library_producer per producer thread, as the library requires. The caller
 * (intake-bench's producer loop) decides when to send and when to flush: it sends one bench
 * batch of records, then flushes, so the writes match the hand-rolled producer's (one write per
 * batch) and only the encoding differs. Every value begins with intake-bench's 16-byte stamp,
 * which the caller passes per record; the rest of the value is filler written once at open.
 */
#ifndef BENCH_LIBRARY_H
#define BENCH_LIBRARY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bench_tls.h"
#include "intake/producer.h"

#define BENCH_LIBRARY_STAMP_BYTES 16 /* must equal intake-bench's BENCH_STAMP_BYTES */

struct bench_library_producer {
    struct intake_producer *producer;
    uint8_t *value;          /* one value buffer: stamp patched per record, then filler */
    uint32_t value_capacity; /* largest value this producer sends */
};

/* Connects to host:port with a batch buffer of batch_bytes (at least one bench batch, so the
 * library writes only on flush) and, with acks, sequences 1, 2, 3, ...; over the library's TLS
 * when tls->ca_file is set (its suite is the library's choice; tls->ciphersuite is not used).
 * 0 or a negative errno; `why` holds one line on failure. */
int bench_library_open(struct bench_library_producer *library, const char *host, uint16_t port,
                       uint32_t batch_bytes, bool acks, uint32_t value_bytes_max,
                       const struct bench_tls_options *tls, char *why, size_t why_capacity)
    __attribute__((warn_unused_result));
/* Encodes one record of topic `topic` with a value of value_bytes bytes starting with `stamp`
 * (BENCH_LIBRARY_STAMP_BYTES bytes). Timestamp 0: the library stamps the wall clock, as a real
 * producer that does not choose its own timestamps. 0 or a negative errno. */
int bench_library_send(struct bench_library_producer *library, const char *topic,
                       uint32_t value_bytes, const uint8_t *stamp)
    __attribute__((warn_unused_result));
/* Writes what is batched. 0 or a negative errno. */
int bench_library_flush(struct bench_library_producer *library) __attribute__((warn_unused_result));
/* Highest cumulative ack so far (0 without acks). */
uint64_t bench_library_acked(const struct bench_library_producer *library);
/* Flushes and waits (bounded by timeout_ms) for the ack of everything sent. */
int bench_library_wait_acks(struct bench_library_producer *library, int timeout_ms)
    __attribute__((warn_unused_result));
/* The library's one-line reason for its last error. */
const char *bench_library_error(const struct bench_library_producer *library);
/* Closes the connection and frees the buffers (a zeroed struct is fine). */
void bench_library_close(struct bench_library_producer *library);

#endif
