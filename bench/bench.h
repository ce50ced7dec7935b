/*
 * bench.h: what intake-bench's files share: wire and run limits, and the run's state (struct
 * bench_run, which each thread touches only as its struct says). One process, one run.
 *
 * intake-bench's files, one job each (each header is that job's contract):
 *   intake-bench.c          main: parse the options, run one mode
 *   bench_options.h/.c      the command line (option table, values, combinations)
 *   bench_load.h/.c         one load run: start, supervise, drain, join, print the result line
 *   bench_producer.h/.c     the producer threads (closed and open loop, raw or library)
 *   bench_encoder.h/.c      the bench's own encoder: batches of records or PUBs, the stamp
 *   bench_acks.h/.c         the raw producers' Ack parser
 *   bench_consumer.h/.c     the consumer thread: delivery accounting, its state's life
 *   bench_intake_consumer.c the consumer's body for intake (consumer set or handles)
 *   bench_nats.h/.c         the NATS client subset: handshake, subscriber, publisher lines
 *   bench_histogram.h/.c    the latency histogram
 *   bench_socket.h/.c       TCP connect and whole writes
 *   bench_time.h/.c         sleeping, a thread's CPU clock
 *   bench_idle.h/.c         --idle-connections
 *   bench_memcpy.h/.c       --memcpy
 *   bench_self_test.h/.c    --self-test
 *   bench_library.h/.c      producers on the product's producer library
 *   bench_tls.h/.c          TLS 1.3 for the bench's own producers
 */
#ifndef BENCH_H
#define BENCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bench_histogram.h"
#include "bench_options.h"
#include "bench_tls.h"
#include "intake/consumer.h"

/* ---- limits and defaults ------------------------------------------------------------------ */

#define BENCH_STAMP_BYTES       16         /* send time ns + tag, at the start of every value */
#define BENCH_VALUE_BYTES_MAX   (1u << 20) /* nats-server's default max_payload is 1 MiB */
#define BENCH_BATCH_RECORDS_MAX 4096
#define BENCH_CONNECTIONS_MAX   4096       /* producer connections (idle ones have their own) */
#define BENCH_TAG_INDEX_SHIFT   48         /* tag = connection index << 48 | record number */
#define BENCH_SLICE_NS          1000000ull /* open-loop pacing granularity */
#define BENCH_WINDOW_SLEEP_NS   500000ull  /* closed loop: recheck a full window this often */
/* After producing: wait this long for deliveries. */
#define BENCH_DRAIN_TIMEOUT_NS      10000000000ull
#define BENCH_HANDSHAKE_TIMEOUT_MS  5000
#define BENCH_RUN_SECONDS_MAX       3600.0 /* a count-bound run still stops after an hour */
#define BENCH_NATS_SUBJECT_PREFIX   "bench."
#define BENCH_INTAKE_TOPIC_PREFIX   "bench-"
#define BENCH_TOPIC_NAME_BYTES_MAX  32
#define BENCH_CONSUMER_BUFFER_BYTES (8u << 20) /* NATS subscriber read buffer; > 1 MiB + header */
#define BENCH_ACK_BUFFER_BYTES      4096
#define BENCH_CONSUMER_NAME         "intake-bench" /* slot name in every topic log */
#define BENCH_POLL_RECORDS_MAX      4096           /* records read from one topic before the next */
#define BENCH_OPEN_RETRY_NS         1000000ull /* retry opening topics whose log is not there yet */
#define BENCH_WAIT_ONE_TOPIC_NS     10000000ull /* futex wait when every topic is open and empty */
#define BENCH_WAIT_MANY_TOPICS_NS   200000ull   /* wait on one of several topics: others may fill */
#define BENCH_LOG_CREATE_TIMEOUT_NS 2000000000ull /* a log file still without a header is bad */
#define BENCH_PRODUCER_ID_BYTES_MAX 32            /* --producer-id: "bench-<nonce>-<connection>" */

/* ---- shared run state ---------------------------------------------------------------------- */

/* What the consumer thread owns: only it writes here while the run is on; main reads after join. */
struct consumer_state {
    struct latency_histogram histogram;
    /* Expected tag number per order slot: (connection, topic) for intake, whose topics are
     * separate logs read in turn; per connection for NATS, one ordered subscriber stream. */
    uint64_t *next_record_number;
    uint32_t order_topics;               /* topics per connection in that array (>= 1) */
    uint64_t out_of_order;               /* records that came back before one already seen */
    uint64_t missed;                     /* intake: gaps the consumer library reported */
    struct intake_consumer **topic_logs; /* intake: [topic_count], NULL until the log exists */
    struct intake_consumer_set *set;     /* intake, --consumer set */
    struct intake_consumer_set_record *set_records; /* [BENCH_POLL_RECORDS_MAX] */
    int64_t *set_topic_number; /* set's topic_index -> bench topic number; -1 until seen */
    uint32_t topics_open;
    uint64_t next_open_try_ns;
    uint64_t unreadable_since_ns; /* first -EINVAL open not followed by a success */
    uint64_t short_records;       /* values too short to hold a stamp (bad input) */
    /* Records stamped before this (run start + --warmup-s) count for delivery, not latency: a
     * freshly started server is still faulting in its memory. Set by main before producing. */
    _Atomic uint64_t latency_from_ns;
    uint64_t records; /* local totals, published to the run per chunk */
    uint64_t bytes;
    uint64_t cpu_ns; /* the consumer thread's CPU time, stored when it ends */
    int socket_fd;   /* NATS subscriber connection */
    uint8_t *buffer; /* NATS subscriber read buffer */
};

struct bench_run {
    const struct bench_options *options;
    atomic_bool stop_producing;
    atomic_bool stop_consuming;
    atomic_bool consumer_ready;
    atomic_uint producers_running;
    atomic_int failure; /* first error (negative errno or -1) */
    /* Producers add after each write; the consumer stores its running totals. The closed-loop
     * window compares the two byte counts, so relaxed order is enough: it is a rate limiter. */
    atomic_uint_fast64_t sent_records;
    atomic_uint_fast64_t sent_bytes;
    atomic_uint_fast64_t delivered_records;
    atomic_uint_fast64_t delivered_bytes;
    atomic_uint_fast64_t last_delivery_ns;
    uint64_t start_ns;
    uint64_t deadline_ns;
    struct ssl_ctx_st *tls_context; /* --tls-ca, raw producers: made by main before they start */
    struct consumer_state consumer;
};

/* bench_load.c */
/* Records the first failure (negative errno or -1) with a line on stderr and stops the run. */
void run_fail(struct bench_run *run, int error, const char *what);

/* bench_intake_consumer.c */
/* The consumer thread's body for --target intake: every topic's log until stop_consuming.
 * Returns 0, or a negative errno after run_fail(). */
int consume_intake(struct bench_run *run);
/* Field 3 (value) of one encoded Record, through intake_record_parse: 0 or -EBADMSG. */
int bench_record_value(const uint8_t *record, size_t record_bytes, const uint8_t **value,
                       size_t *value_bytes);

#endif
