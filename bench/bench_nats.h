/*
 * bench_nats.h: the subset of the NATS client protocol intake-bench needs, against nats-server
 * 2.9: the handshake of every connection, the subscriber on bench.> (the consumer thread's body
 * for --target nats), and the control lines a publisher gets back (its producer thread).
 */
#ifndef BENCH_NATS_H
#define BENCH_NATS_H

#include <stddef.h>
#include <stdint.h>

#include "bench.h"

struct producer;

/* INFO from the server, CONNECT from us followed by after_connect (e.g. a SUB), then PING
 * until PONG, so whatever after_connect asked is registered when this returns 0. Bounded by
 * BENCH_HANDSHAKE_TIMEOUT_MS per line and 16 lines; -EPROTO on -ERR or a stranger answer. */
int nats_handshake(int fd, const char *after_connect);
/* Delivers every complete MSG in buffer[0..filled) to consumer_deliver (read at now_ns) and
 * answers PING; returns the bytes consumed (whole lines and messages). Consumer thread. */
size_t nats_parse_messages(struct bench_run *run, const uint8_t *buffer, size_t filled,
                           uint64_t now_ns);
/* The subscriber's read loop until stop_consuming (reads time out after 1 s): 0, or a negative
 * errno after run_fail(). Consumer thread. */
int consume_nats(struct bench_run *run);
/* A publisher's control lines in bytes[0..filled): answers PING, reports -ERR through
 * run_fail(); returns the bytes consumed. The producer's own thread. */
size_t producer_parse_nats_lines(struct producer *producer, const uint8_t *bytes, size_t filled);

#endif
