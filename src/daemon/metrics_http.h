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
 * HTTP is libmicrohttpd's (Debian's libmicrohttpd12), on its own pool of threads with epoll:
 * never in a reactor's or worker's loop, and at a lower scheduling priority than they have
 * (nice METRICS_HTTP_NICE), so scrapers take CPU the data path does not need. Those threads
 * read the counters region the way any other process does (counters_view.h, read-only) and the
 * topics' logs through the consumer library's intake_log_inspect; they touch nothing else of
 * the daemon. Renderings of /metrics take turns (one renderer, its cached log mappings).
 *
 * Floods: the endpoint holds up to METRICS_HTTP_CONNECTIONS_MAX connections (idle ones are
 * closed after METRICS_HTTP_IDLE_SECONDS), at most half of them from one address, so that
 * thousands of idle connections from one place leave /healthz answerable; past the limits a
 * connection is closed at once. Its descriptors are budgeted at startup apart from the data
 * path's (preflight.h), and lowered first when the limit is short. Many sources together can
 * still fill it: only Prometheus and the kubelet should reach --metrics-listen (README).
 */
#ifndef INTAKE_METRICS_HTTP_H
#define INTAKE_METRICS_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common.h"

/* Connections the endpoint serves at once (the descriptor budget may lower it). */
#define METRICS_HTTP_CONNECTIONS_MAX 4096u
/* ...never below this. */
#define METRICS_HTTP_CONNECTIONS_MIN 16u
/* Idle HTTP connections are closed after this many seconds. */
#define METRICS_HTTP_IDLE_SECONDS 10u
/* Threads answering requests (each with its own epoll): a rendering of /metrics on one never
 * holds up a probe on the other. */
#define METRICS_HTTP_THREADS 2u
/* Memory libmicrohttpd keeps per connection for its buffers (requests here are small GETs). */
#define METRICS_HTTP_CONNECTION_MEMORY_BYTES (16u * 1024)
/* The listening socket's backlog: a burst of connections waits here, not in SYN retries. */
#define METRICS_HTTP_BACKLOG 1024
/* The endpoint's threads run this much nicer than the daemon's (setpriority, per thread). */
#define METRICS_HTTP_NICE 10

struct metrics_http;

/* Main thread, once the counters region exists: binds `listen_text` (ADDR:PORT, parsed by
 * intake_address_parse; a busy port fails at startup, naming the address) and starts the
 * server threads, holding at most `connections_max` connections. */
int metrics_http_start(const char *listen_text, const char *counters_path,
                       const char *log_directory, uint32_t connections_max,
                       struct metrics_http **out, char *why, size_t why_capacity) INTAKE_MUST_CHECK;
/* Main thread: stops the server threads and closes the socket. NULL is fine. */
void metrics_http_stop(struct metrics_http *server);

#endif
