/*
 * bench_socket.h: TCP for intake-bench's own clients (producers, the NATS subscriber, idle
 * connections). Each socket belongs to the one thread that uses it. Results are 0 or a
 * negative errno.
 */
#ifndef BENCH_SOCKET_H
#define BENCH_SOCKET_H

#include <stddef.h>
#include <stdint.h>

#include "bench.h"

/* A TCP connection to host:port (an IPv4 address) with Nagle off and 1 s send and receive
 * timeouts, so no later call blocks for long; the connect itself may take connect_timeout_ms.
 * On success *out_fd is the caller's to close. */
int connect_tcp(const char *host, uint16_t port, uint32_t connect_timeout_ms, int *out_fd);
/* Writes all of bytes[0..length) to fd; gives up with -ETIMEDOUT once the run is
 * BENCH_DRAIN_TIMEOUT_NS past its deadline, or with the send's error. */
int write_all(struct bench_run *run, int fd, const uint8_t *bytes, size_t length);

#endif
