/*
 * bench.h: what intake-bench's files share: limits, options, the run's state, and the few
 * functions the intake consumer (bench_intake_consumer.c) calls back into intake-bench.c.
 * One process, one run; the threads that touch each part are named at each struct.
 */
#ifndef BENCH_H
#define BENCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bench_tls.h"
#include "intake/consumer.h"

/* ---- limits and defaults ------------------------------------------------------------------ */

#define BENCH_STAMP_BYTES          16         /* send time ns + tag, at the start of every value */
#define BENCH_SIZE_MIX_MAX         8          /* most distinct sizes in --size a,b,c */
#define BENCH_VALUE_BYTES_MAX      (1u << 20) /* nats-server's default max_payload is 1 MiB */
#define BENCH_BATCH_RECORDS_MAX    4096
#define BENCH_CONNECTIONS_MAX      4096        /* producer connections (idle ones have their own) */
#define BENCH_TAG_INDEX_SHIFT      48          /* tag = connection index << 48 | record number */
#define BENCH_DEFAULT_WINDOW_BYTES (16u << 20) /* under nats-server's 64 MiB slow-consumer limit */
#define BENCH_SLICE_NS             1000000ull  /* open-loop pacing granularity */
#define BENCH_WINDOW_SLEEP_NS      500000ull   /* closed loop: recheck a full window this often */
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

/* ---- options ------------------------------------------------------------------------------- */

enum bench_target { TARGET_NONE, TARGET_INTAKE, TARGET_NATS };

/* Who encodes intake records: intake-bench itself (one encoding per batch, stamps patched), or
 * the product's producer library (include/intake/producer.h), whose cost is then measured. */
enum bench_producer_kind { PRODUCER_RAW, PRODUCER_LIBRARY };

/* How the intake consumer reads every topic: one consumer set (intake_consumer_set_*: one poll
 * and one wait for all topics), or one consumer handle per topic polled in turn (the API before
 * sets; kept to measure what the set changes). */
enum bench_consumer_kind { CONSUMER_SET, CONSUMER_HANDLES };

struct bench_options {
    enum bench_target target;
    const char *host;
    uint16_t port;
    uint32_t connection_count;
    uint32_t sizes[BENCH_SIZE_MIX_MAX]; /* value bytes, cycled per batch position */
    uint32_t size_count;
    const char *sizes_text; /* as given, for the result line */
    uint32_t batch_records; /* records per write */
    uint32_t topic_count;
    double duration_s;     /* 0: bound by --count only */
    double warmup_s;       /* records sent this early leave latency unrecorded */
    uint64_t record_count; /* total over all connections; 0: bound by time */
    double rate_per_s;     /* total records/s; 0: closed loop */
    uint64_t window_bytes; /* closed loop: payload bytes sent but not consumed */
    bool acks;             /* give records sequences and read acks (intake) */
    bool producer_id;      /* intake: field 7, one id per connection (needs --acks) */
    enum bench_producer_kind producer_kind;
    enum bench_consumer_kind consumer_kind;
    bool consume;        /* run the consumer thread (latency, delivery) */
    const char *shm_dir; /* intake's shared-memory directory */
    uint32_t idle_connections;
    double hold_s; /* idle mode: how long to hold the connections */
    bool memcpy_mode;
    bool self_test;
    struct bench_tls_options tls; /* intake producers over TLS 1.3 when tls.ca_file is set */
};

/* ---- latency histogram: log-linear buckets, about 3% resolution -------------------------- */

/* Values below 2^HISTOGRAM_LINEAR_BITS ns are exact; above, each power of two is split into
 * HISTOGRAM_HALF linear steps (HDR histogram's layout with 6 significant bits). */
#define HISTOGRAM_LINEAR_BITS 6
#define HISTOGRAM_LINEAR      (1u << HISTOGRAM_LINEAR_BITS)
#define HISTOGRAM_HALF        (HISTOGRAM_LINEAR / 2)
#define HISTOGRAM_BUCKETS     (HISTOGRAM_LINEAR + (64 - HISTOGRAM_LINEAR_BITS + 1) * HISTOGRAM_HALF)

struct latency_histogram {
    uint64_t counts[HISTOGRAM_BUCKETS];
    uint64_t total;
    uint64_t max_ns;
};

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

/* Records the first failure (negative errno or -1) with a line on stderr and stops the run. */
void run_fail(struct bench_run *run, int error, const char *what);
void sleep_ns(uint64_t duration_ns);
/* One delivered value of topic `topic` read at now_ns (consumer thread): latency and order. */
void consumer_deliver(struct consumer_state *consumer, uint32_t connection_count, uint32_t topic,
                      const uint8_t *value, size_t value_bytes, uint64_t now_ns);
/* Makes the consumer's totals visible to producers (closed-loop window) and to main. */
void consumer_publish(struct bench_run *run, uint64_t now_ns);

/* bench_intake_consumer.c */
/* The consumer thread's body for --target intake: every topic's log until stop_consuming.
 * Returns 0, or a negative errno after run_fail(). */
int consume_intake(struct bench_run *run);
/* Field 3 (value) of one encoded Record, through intake_record_parse: 0 or -EBADMSG. */
int bench_record_value(const uint8_t *record, size_t record_bytes, const uint8_t **value,
                       size_t *value_bytes);

#endif
