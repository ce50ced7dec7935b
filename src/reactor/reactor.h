/*
 * reactor.h: one receive thread with its own io_uring, listener, connections and rx backend.
 *
 * A reactor accepts connections on its SO_REUSEPORT listener (multishot accept), receives with
 * multishot receives from its backend, frames records in place (framer.h), routes each record to
 * its topic's queue, takes finished records back from the workers over its return rings, drops
 * their unit references (buffers go back to the kernel), and sends cumulative Acks.
 *
 * It owns, and is the only thread that touches: its ring, backend, record pool, connections and
 * their sockets. Other threads reach it only through its doorbell (rung by workers after they
 * return records), reactor_request_report and the return rings. It reaches them only through
 * what the pipeline handed it (struct reactor_links).
 *
 * Backpressure, never loss: when a topic queue is full, the record pool is empty, a
 * connection's ack window is full or its principal is over its quota, that connection stops
 * reading (its multishot receive is cancelled) until space comes back; when the backend runs out
 * of units, every receive that hit it waits for units to return. TCP then pushes back on the
 * producers.
 *
 * With --acl, each record is checked against the rule set the reactor took at the start of its
 * loop pass before anything is done for it (no topic is created for a denied record).
 */
#ifndef INTAKE_REACTOR_H
#define INTAKE_REACTOR_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "acl_exchange.h"
#include "common.h"
#include "counters_write.h"
#include "doorbell.h"
#include "handshake.h"
#include "producer_table.h"
#include "quota.h"
#include "rx_backend.h"
#include "spsc_ring.h"
#include "topic_queue.h"
#include "topic_table.h"

struct reactor;

/* What a reactor may touch, handed over by the pipeline; all of it outlives the reactor. */
struct reactor_links {
    uint32_t index;
    /* Sizes and limits (see pipeline_config for the flags they come from). */
    uint32_t connections_max;
    uint32_t records_in_flight_max;
    uint32_t ack_window_capacity;
    uint32_t cq_entries;
    uint32_t frame_bytes_max; /* asked; the backend may lower it */
    uint32_t topic_queue_capacity;
    uint32_t topics_max;
    uint32_t topics_per_connection; /* topics one connection may create */
    uint64_t frame_timeout_ns;      /* a record completes within this of its first byte; 0 off */
    uint64_t idle_timeout_ns;       /* silence allowed with nothing in flight; 0 off */
    /* The plaintext listener (NULL with --listen none) and the TLS one (NULL without
     * --tls-listen). */
    const struct sockaddr_storage *listen_address;
    socklen_t listen_address_length;
    const char *listen_text;
    const struct sockaddr_storage *tls_listen_address;
    socklen_t tls_listen_address_length;
    const char *tls_listen_text;
    /* TLS handshakes (handshake.h): at most handshakes_max at once on this reactor, each within
     * handshake_timeout_ns; jobs go to the requests queue of the handshake thread serving this
     * reactor, answers come back on its own answers queue (it rings `doorbell`). */
    uint32_t handshakes_max;
    uint64_t handshake_timeout_ns;
    struct handshake_queue *handshake_requests;
    struct handshake_queue *handshake_answers;
    /* Receive backend: a name of the backend table or "auto", and its settings. */
    const char *backend_name;
    struct rx_backend_config backend_config;
    /* Shared structures. */
    struct topic_table *topics;
    struct topic_queue *topic_queues; /* [topics_max], indexed by topic id */
    /* Producers' acknowledged watermarks (daemon-wide): Hellos read it, connections with a
     * producer_id fold into it when they end. */
    struct producer_table *producers;
    uint32_t worker_count; /* topic t is owned by worker t % worker_count */
    /* Its column of return rings: worker w's ring to it is return_rings[w * ring_stride]. */
    struct spsc_ring *return_rings;
    uint32_t return_ring_stride;
    struct doorbell *worker_doorbells; /* [worker_count]: rung after admitting records */
    struct doorbell *doorbell;         /* its own (eventfd): its ring reads it */
    const _Atomic bool *stopping;      /* stop accepting and reading, then drain and exit */
    /* Its rows of the counters region (include/intake/counters_format.h): written only by
     * this reactor, read by other processes, never read back. */
    struct intake_counters_reactor_row *counters_row;
    struct intake_counters_received_cell *received_cells; /* [topics_max], by topic id */
    /* --acl (issue 17); all NULL without it. The rule sets it takes once per loop pass
     * (acl_exchange.h), every principal row's quota bucket (shared by the reactors), and its
     * own principal cells of the counters region, both indexed by principal row. */
    struct acl_exchange *acl;
    struct quota_bucket *quota_buckets;
    struct intake_counters_principal_cell *principal_cells;
};

/* Main thread: creates the reactor's listener (bind + listen, so "address in use" is reported
 * at startup), then starts the thread, which sets up its ring and backend and reports back.
 * On failure `why` holds one line. */
int reactor_create(const struct reactor_links *links, struct reactor **out, char *why,
                   size_t why_capacity) INTAKE_MUST_CHECK;
int reactor_start(struct reactor *reactor, char *why, size_t why_capacity) INTAKE_MUST_CHECK;
/* The backend this reactor ended up with, and why auto fell back (empty when it did not). */
const char *reactor_backend_name(const struct reactor *reactor);
/* With backend "auto": one line per step of the fallback chain that failed, saying why
 * ("zcrx unavailable (why); using pbuf"); empty when the first choice worked. */
const char *reactor_fallback_lines(const struct reactor *reactor);
/* The backend type in use (the pipeline asks it whether connections need queue steering). */
const struct rx_backend_type *reactor_backend_type(const struct reactor *reactor);
/* The largest record this reactor accepts: --max-frame, lowered when the backend's fixed-size
 * fragments cannot hold it in RECORD_SLICES_MAX slices. */
uint32_t reactor_frame_bytes_max(const struct reactor *reactor);
/* The largest record a TLS connection of this reactor may send (see reactor_setup.c): lower
 * than reactor_frame_bytes_max, because every TLS record cuts a record's plaintext. */
uint32_t reactor_tls_frame_bytes_max(const struct reactor *reactor);
/* The reactor's listening sockets, plaintext and TLS, or -1 for one not configured (the
 * pipeline attaches the queue-steering program to them). */
int reactor_listen_fd(const struct reactor *reactor, bool tls);

/* Any thread: the reactor prints its counters from its own thread at its next iteration. */
void reactor_request_report(struct reactor *reactor);

/* Main thread, after links.stopping is set: wakes the reactor and waits for it to drain. */
void reactor_join(struct reactor *reactor);
/* Like reactor_join, but gives up after `timeout_ms`; true when the thread has exited. */
bool reactor_try_join(struct reactor *reactor, uint32_t timeout_ms);
void reactor_destroy(struct reactor *reactor);
/* After join: counters, and whether every unit is back with the kernel. */
void reactor_print_counters(struct reactor *reactor, FILE *out, const char *when);
bool reactor_all_units_returned(const struct reactor *reactor);
uint64_t reactor_bytes_received(const struct reactor *reactor);

#endif
