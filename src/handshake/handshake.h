/*
 * handshake.h: TLS handshakes, run by OpenSSL on handshake threads, never on a reactor.
 *
 * Why a thread (docs/tls.md has the measurements): one server handshake costs a reactor-sized
 * slice of CPU (ECDSA P-256 about a quarter of a millisecond, RSA-2048 about half a
 * millisecond), all of it public-key work. On a reactor that time would stall every other
 * connection it serves; on a handshake thread a flood of handshakes waits in a bounded queue
 * while the reactors keep moving records. The reactor does all the I/O itself through its ring;
 * the thread only computes.
 *
 * How a handshake runs. The reactor owns the socket. It reads exactly one TLS record at a time
 * (the 5-byte header, then exactly the length it announces) into the connection's handshake
 * slot and hands the slot to a handshake thread (a STEP job). The thread feeds that record to
 * OpenSSL through a memory BIO, runs SSL_do_handshake, and hands the slot back with the bytes
 * OpenSSL wants sent and what happened (CONTINUE: read the next record; DONE; FAILED). Because
 * the reactor never reads past the record OpenSSL asked for, application data the client sends
 * right after its Finished stays in the socket and arrives through the receive backend like any
 * other input: no application byte ever passes through OpenSSL.
 *
 * When the handshake is done the thread fills the slot's record-layer session (tls_record.h)
 * from the traffic secrets OpenSSL logged (CLIENT/SERVER_TRAFFIC_SECRET_0, through the key-log
 * callback) and the negotiated suite, sets the principal (with client certificates: the first
 * URI SAN of the client's certificate, else its subject CN; otherwise anonymous), frees the SSL
 * object, and the reactor takes the session over. No session tickets are issued, so OpenSSL has
 * nothing left to do for the connection.
 *
 * A handshake the reactor gives up (timeout, peer gone, shutdown) while its SSL object lives is
 * handed over once more as an ABANDON job: SSL objects are created and freed on handshake
 * threads only.
 *
 * Ownership and bounds: each reactor owns a table of slots, sized at startup
 * (--handshakes-max per reactor); a connection in its handshake holds one slot. A slot is with
 * exactly one thread at a time: the reactor, or (between a job and its answer) one handshake
 * thread. Requests go through the thread's queue, answers through the reactor's; both are
 * bounded by the slots they can carry, so neither can fill (push asserts). The mutexes order the
 * hand-offs: everything the sender wrote into a slot before its push is seen after the pop.
 */
#ifndef INTAKE_HANDSHAKE_H
#define INTAKE_HANDSHAKE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common.h"
#include "doorbell.h"
#include "principal.h"
#include "tls_record.h"
#include "tls_server.h"

/* The most bytes of one server flight a slot holds (ServerHello to Finished, or an alert): a
 * certificate chain and the names of the client CAs must fit; a larger flight fails the
 * handshake (counted as other). */
#define HANDSHAKE_OUTPUT_BYTES_MAX (64u * 1024u)

enum handshake_job {
    HANDSHAKE_JOB_STEP = 1,    /* feed `input` to the handshake */
    HANDSHAKE_JOB_ABANDON = 2, /* free the slot's SSL object; nothing else */
};

enum handshake_result {
    HANDSHAKE_CONTINUE = 1, /* send `output`, then read the next record */
    HANDSHAKE_DONE = 2,     /* send `output`; `session` and `principal` are ready */
    HANDSHAKE_FAILED = 3,   /* send `output` (OpenSSL's alert, if any), then close */
    HANDSHAKE_ABANDONED = 4,
};

/* Why a handshake failed: the order of the counters in counters_format.h. */
enum handshake_failure {
    HANDSHAKE_FAILURE_TIMEOUT = 0,        /* not done within --handshake-timeout-ms */
    HANDSHAKE_FAILURE_NO_CLIENT_CERT = 1, /* mTLS, and the client sent no certificate */
    HANDSHAKE_FAILURE_BAD_CERT = 2,       /* the client's certificate did not verify */
    HANDSHAKE_FAILURE_NOT_TLS = 3,        /* the first bytes are not a TLS handshake record */
    HANDSHAKE_FAILURE_PROTOCOL = 4,       /* no TLS 1.3, no shared suite or group, malformed */
    HANDSHAKE_FAILURE_PRINCIPAL = 5,      /* the certificate names no usable principal */
    HANDSHAKE_FAILURE_OTHER = 6,          /* the peer left or alerted, shutdown, anything else */
    HANDSHAKE_FAILURES = 7,
};

struct handshake_slot {
    /* Set by the reactor at creation: who owns the slot. */
    uint32_t index;   /* in its reactor's table */
    uint16_t reactor; /* the reactor whose answer queue gets it back */
    /* Set by the reactor, never read by the thread: the connection the slot serves now. */
    uint32_t owner_slot;
    uint32_t owner_generation;
    /* Set by the reactor before each job. */
    uint8_t job;          /* enum handshake_job */
    uint32_t input_bytes; /* one whole TLS record */
    /* Set by the thread in its answer. */
    uint8_t result;  /* enum handshake_result */
    uint8_t failure; /* enum handshake_failure, with HANDSHAKE_FAILED */
    uint32_t output_bytes;
    struct principal principal; /* HANDSHAKE_DONE */
    struct tls_session session; /* HANDSHAKE_DONE: the reactor takes it over */
    char failure_detail[160];   /* HANDSHAKE_FAILED: OpenSSL's reason, for the counters line */
    /* The thread's own, kept between jobs of one handshake. */
    SSL *ssl;
    uint8_t client_secret[TLS_SECRET_BYTES_MAX];
    uint8_t server_secret[TLS_SECRET_BYTES_MAX];
    uint8_t client_secret_bytes;
    uint8_t server_secret_bytes;
    bool principal_refused; /* the verify callback refused the certificate's name */
    uint8_t input[TLS_RECORD_BYTES_MAX];
    uint8_t output[HANDSHAKE_OUTPUT_BYTES_MAX];
};

/* A bounded FIFO of slots between threads (a request queue: reactors to one handshake thread;
 * an answer queue: handshake threads to one reactor). */
struct handshake_queue {
    pthread_mutex_t lock;
    pthread_cond_t nonempty; /* request queues: the handshake thread waits on it */
    struct handshake_slot **entries;
    uint32_t capacity;
    uint32_t head;
    uint32_t count;
    _Atomic uint32_t approximate_count; /* read without the lock to skip an empty queue */
};

int handshake_queue_init(struct handshake_queue *queue, uint32_t capacity) INTAKE_MUST_CHECK;
void handshake_queue_destroy(struct handshake_queue *queue);
/* Any thread. Asserts room: the queue is sized for every slot that can be on it. */
void handshake_queue_push(struct handshake_queue *queue, struct handshake_slot *slot);
/* Any thread: up to `capacity` slots, without waiting. */
uint32_t handshake_queue_pop(struct handshake_queue *queue, struct handshake_slot **out,
                             uint32_t capacity);

/* What a handshake thread may touch, handed over by the pipeline. */
struct handshake_links {
    uint32_t index;
    struct tls_server *server;          /* the current SSL_CTX */
    struct handshake_queue *requests;   /* its own */
    struct handshake_queue *answers;    /* [reactor_count]: reactor r's answer queue */
    struct doorbell *reactor_doorbells; /* [reactor_count]: rung after an answer */
    uint32_t reactor_count;
    uint64_t records_per_key_max; /* --tls-key-update-records (0: the AEAD's limit) */
    const _Atomic bool *stopping; /* set once no reactor can send a job */
};

struct handshake_thread;

/* Main thread. The callbacks every SSL_CTX needs (tls_server_init takes them). */
const struct tls_server_callbacks *handshake_callbacks(void);
int handshake_thread_start(const struct handshake_links *links, struct handshake_thread **out,
                           char *why, size_t why_capacity) INTAKE_MUST_CHECK;
/* After links.stopping is set: wakes the thread and joins it. */
void handshake_thread_join(struct handshake_thread *thread);
void handshake_thread_destroy(struct handshake_thread *thread);

/* Runs one job on the calling thread (what the handshake thread does per slot); for tests,
 * benchmarks and the fuzz target's handshake. */
void handshake_run_job(struct tls_server *server, uint64_t records_per_key_max,
                       struct handshake_slot *slot);

/* The counter name of a failure reason ("timeout", "no_client_certificate", ...). */
const char *handshake_failure_name(enum handshake_failure failure);

#endif
