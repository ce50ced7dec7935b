/*
 * bench_producer.h: the producer threads of a load run, one TCP connection each. Main prepares
 * every producer (connection, batch, TLS or library producer), starts producer_thread on each,
 * joins them, reads their totals and releases them; in between a producer is touched only by
 * its own thread, and reaches the others only through the run's atomics.
 */
#ifndef BENCH_PRODUCER_H
#define BENCH_PRODUCER_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "bench.h"
#include "bench_encoder.h"
#include "bench_library.h"

struct producer {
    struct bench_run *run;
    uint32_t index;     /* connection index, in every record's tag */
    int fd;             /* raw producers; the library producer owns its own socket */
    struct ssl_st *tls; /* raw producers with --tls-ca: the TLS session on fd */
    pthread_t thread;
    struct batch batch;
    struct bench_library_producer library;             /* --producer library */
    char (*topic_names)[BENCH_TOPIC_NAME_BYTES_MAX];   /* --producer library: per batch position */
    char producer_id[BENCH_PRODUCER_ID_BYTES_MAX + 1]; /* --producer-id, else "" */
    uint64_t cpu_ns;         /* this thread's CPU time (user + system), stored when it ends */
    uint64_t wait_cpu_ns;    /* of which spent waiting for the closed-loop window (the bench's) */
    uint64_t records_sent;   /* record numbers (and sequences) start at 1 */
    uint64_t record_quota;   /* this connection's share of --count; 0: none */
    uint64_t acked_sequence; /* highest cumulative Ack.sequence seen */
    uint8_t reply_buffer[BENCH_ACK_BUFFER_BYTES];
    size_t reply_filled;
    uint32_t writes_since_reply_check;
};

/* Sets up producer `index` of the run: its share of --count, its producer_id, its batch, and its
 * connection (NATS handshake, TLS handshake) or its library producer. 0 or a negative errno;
 * producer_release is called either way. Main thread. */
int producer_prepare(struct producer *producer, struct bench_run *run, uint32_t index);
/* The thread's body (argument: the producer): closed or open loop until stop_producing, the
 * deadline or its quota, then (with --acks) waits for the last ack, stores its CPU time and
 * counts itself out of producers_running. */
void *producer_thread(void *argument);
/* Closes the connection and frees what producer_prepare made. Main thread, after the join. */
void producer_release(struct producer *producer);

#endif
