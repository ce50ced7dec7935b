/*
 * reactor.h: one receive thread with its own io_uring, listener, connections and rx backend.
 *
 * A reactor accepts connections on its SO_REUSEPORT listener (multishot accept), receives with
 * multishot receives from its backend, frames records in place (framer.h), routes each record to
 * its topic's queue, takes finished records back from the workers over its return rings, drops
 * their unit references (buffers go back to the kernel), and sends cumulative Acks.
 *
 * It owns, and is the only thread that touches: its ring, backend, record pool, connections and
 * their sockets. Other threads reach it only through reactor_wake / reactor_request_report and
 * the return rings.
 *
 * Backpressure, never loss: when a topic queue is full, the record pool is empty or a
 * connection's ack window is full, that connection stops reading (its multishot receive is
 * cancelled) until space comes back; when the backend runs out of units, every receive that hit
 * it waits for units to return. TCP then pushes back on the producers.
 */
#ifndef INTAKE_REACTOR_H
#define INTAKE_REACTOR_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common.h"

struct pipeline;
struct reactor;

/* Main thread: creates the reactor's listener (bind + listen, so "address in use" is reported
 * at startup), then starts the thread, which sets up its ring and backend and reports back.
 * On failure `why` holds one line. */
int reactor_create(struct pipeline *pipeline, uint32_t index, struct reactor **out, char *why,
                   size_t why_capacity) INTAKE_MUST_CHECK;
int reactor_start(struct reactor *reactor, char *why, size_t why_capacity) INTAKE_MUST_CHECK;
/* The backend this reactor ended up with, and why auto fell back (empty when it did not). */
const char *reactor_backend_name(const struct reactor *reactor);
const char *reactor_fallback_reason(const struct reactor *reactor);
/* The largest record this reactor accepts: --max-frame, lowered when the backend's fixed-size
 * fragments (zcrx) cannot hold it in RECORD_SLICES_MAX slices. */
uint32_t reactor_frame_bytes_max(const struct reactor *reactor);
/* The reactor's listening socket (the pipeline attaches the queue-steering program to it). */
int reactor_listen_fd(const struct reactor *reactor);

/* Any thread: wake the reactor if it sleeps (workers call it after returning records). */
void reactor_wake(struct reactor *reactor);
/* Any thread: the reactor prints its counters from its own thread at its next iteration. */
void reactor_request_report(struct reactor *reactor);

/* Main thread, after pipeline.stopping is set and the reactor woken: waits for it to drain. */
void reactor_join(struct reactor *reactor);
/* Like reactor_join, but gives up after `timeout_ms`; true when the thread has exited. */
bool reactor_try_join(struct reactor *reactor, uint32_t timeout_ms);
void reactor_destroy(struct reactor *reactor);
/* After join: counters, and whether every unit is back with the kernel. */
void reactor_print_counters(struct reactor *reactor, FILE *out, const char *when);
bool reactor_all_units_returned(const struct reactor *reactor);
uint64_t reactor_bytes_received(const struct reactor *reactor);

#endif
