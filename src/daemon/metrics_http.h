/*
 * metrics_http.h: intaked's HTTP endpoint for operators and orchestrators, on --metrics-listen
 * ADDR:PORT (off unless given):
 *   GET /metrics  the counters in the Prometheus text exposition format 0.0.4;
 *   GET /healthz  liveness: 200 while the process runs and every reactor and worker has stored a
 *                 heartbeat within COUNTERS_VIEW_LIVE_NS (60 s); 503 otherwise;
 *   GET /readyz   readiness: 200 while running, listening, and every heartbeat is within
 *                 COUNTERS_VIEW_READY_NS (5 s); 503 with the reason otherwise (also while
 *                 stopping).
 *
 * HTTP is libmicrohttpd's (Debian's libmicrohttpd12), in its own internal polling thread: never
 * in a reactor's or worker's loop. That thread reads the counters region the way any other
 * process does (counters_view.h, read-only); it touches nothing else of the daemon.
 */
#ifndef INTAKE_METRICS_HTTP_H
#define INTAKE_METRICS_HTTP_H

#include <stddef.h>
#include <sys/socket.h>

#include "common.h"

/* Connections the endpoint serves at once; more wait in the kernel's backlog. */
#define METRICS_HTTP_CONNECTIONS_MAX 32u
/* Idle HTTP connections are closed after this many seconds. */
#define METRICS_HTTP_IDLE_SECONDS 10u

struct metrics_http;

/* Main thread, once the counters region exists: binds `listen_text` (ADDR:PORT, parsed by
 * intake_address_parse; a busy port fails at startup, naming the address) and starts the
 * server thread. */
int metrics_http_start(const char *listen_text, const char *counters_path,
                       const char *log_directory, struct metrics_http **out, char *why,
                       size_t why_capacity) INTAKE_MUST_CHECK;
/* Main thread: stops the server thread and closes the socket. NULL is fine. */
void metrics_http_stop(struct metrics_http *server);

#endif
