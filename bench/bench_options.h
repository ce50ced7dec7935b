/*
 * bench_options.h: intake-bench's command line, as the rest of the bench sees it: one struct
 * bench_options filled once by main (bench_options_parse) and read-only afterwards, by every
 * thread. `intake-bench --help` prints the usage; a bad value or combination is one line on
 * stderr naming it, then the usage.
 */
#ifndef BENCH_OPTIONS_H
#define BENCH_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "bench_tls.h"

#define BENCH_SIZE_MIX_MAX         8           /* most distinct sizes in --size a,b,c */
#define BENCH_DEFAULT_WINDOW_BYTES (16u << 20) /* under nats-server's 64 MiB slow-consumer limit */

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

/* Fills *options from argv (defaults first, then every option, then the checks of their
 * combinations), through cli.h: -1 to run the mode they name, or the status to exit with now
 * (0 after --help or --version; 2 after a bad value or combination, said in one line on
 * stderr). The strings in *options point into argv. Main thread, once. */
int bench_options_parse(int argc, char **argv, struct bench_options *options);

/* "intake", "nats" or "none", as in result lines. */
const char *target_name(enum bench_target target);

#endif
