/*
 * pipeline.h: the shape of intake, and the state its threads share.
 *
 *   producers --TCP--> reactor (one io_uring per thread; rx backend: zcrx | provided buffers)
 *                        | frames records in place, reads the topic without copying
 *                        v
 *                 topic_queues[topic]   (bounded MPSC; a topic is owned by worker topic % W)
 *                        v
 *                 worker: nanopb decode from the slices -> shm_log append -> publish
 *                        | return_rings[worker][reactor]   (SPSC, never full)
 *                        v
 *                 reactor: unit references drop -> buffer back to its ring / refill entry;
 *                          cumulative Ack to the producer
 *   consumers (other processes) <-- one shared-memory log per topic (created by the log opener)
 *
 * Everything is sized here, at startup, from struct pipeline_config. The pipeline owns the
 * topic table, the topic queues, the return rings, the doorbells, the reactors and the workers;
 * it is built and torn down by the main thread (pipeline.c), which also runs the shutdown
 * sequence. It is the only module that composes the others: each thread gets a links struct
 * (reactor.h, worker.h, log_opener.h) naming exactly what it may touch, and no thread includes
 * another's header.
 */
#ifndef INTAKE_PIPELINE_H
#define INTAKE_PIPELINE_H

#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common.h"
#include "counters_region.h"
#include "acl.h"
#include "doorbell.h"
#include "handshake.h"
#include "pipeline_acl.h"
#include "keyed_hash.h"
#include "producer_table.h"
#include "rx_backend.h"
#include "shm_log.h"
#include "shm_notify.h"
#include "spsc_ring.h"
#include "topic_queue.h"
#include "tls_server.h"
#include "topic_table.h"

struct pipeline_config {
    struct sockaddr_storage listen_address;
    socklen_t listen_address_length;
    char listen_text[128];          /* as given, for log lines */
    bool listen_none;               /* --listen none: no plaintext listener */
    const char *shm_directory;      /* --shm-dir */
    bool shm_group_set;             /* --shm-group given */
    gid_t shm_group;                /* --shm-group: may read logs and register consumers */
    uint32_t reactor_count;         /* --reactors */
    uint32_t worker_count;          /* --workers */
    uint32_t frame_bytes_max;       /* --max-frame */
    uint32_t topics_max;            /* --topics-max */
    uint32_t dedupe_producers;      /* --dedupe-producers: per topic table; 0 disables */
    uint32_t topics_per_connection; /* --topics-per-connection: topics one connection creates;
                                       * 0 (the default): no limit below --topics-max */
    uint32_t topic_queue_capacity;  /* --topic-queue: records per topic queue, power of two */
    uint32_t connections_max;       /* --connections-max: per reactor */
    uint32_t records_in_flight_max; /* --records-per-reactor: record pool, per reactor */
    uint32_t ack_window_capacity;   /* --ack-window: records in flight per connection */
    uint32_t cq_entries;            /* --cq-entries: per reactor ring */
    const char *backend_name;       /* --backend: a name of the backend table, or "auto" */
    uint32_t buffer_count;          /* --buffers: provided buffers per reactor */
    uint32_t buffer_bytes;          /* --buffer-size */
    const char *zcrx_interface;     /* --zcrx-if */
    uint32_t zcrx_queues[64];       /* --zcrx-queues: reactor i binds zcrx_queues[i] */
    uint32_t zcrx_queue_count;
    bool zcrx_nodev;                  /* --zcrx-nodev */
    uint64_t zcrx_area_bytes;         /* --zcrx-area */
    uint32_t zcrx_rx_buffer_bytes;    /* --zcrx-rx-buf */
    uint64_t log_capacity_bytes;      /* --log-size: each topic's shared-memory ring */
    enum shm_log_retention retention; /* --retention block|overwrite */
    uint64_t consumer_stale_ns;       /* --consumer-stale-ms */
    uint64_t shutdown_timeout_ns;     /* --shutdown-timeout-ms: then unfinished records fail */
    uint64_t frame_timeout_ns; /* --frame-timeout-ms: first byte to last of a record; 0 off */
    uint64_t idle_timeout_ns;  /* --idle-timeout-ms: silence with nothing owed; 0 off */
    char *fixed_topics[256];   /* --topic NAME (repeatable): created at startup */
    uint32_t fixed_topic_count;
    const char *metrics_listen; /* --metrics-listen ADDR:PORT: /metrics /healthz /readyz */
    /* Connections the metrics endpoint holds at once (METRICS_HTTP_CONNECTIONS_MAX; preflight
     * lowers it, before the data path's, when descriptors are short). */
    uint32_t metrics_connections_max;
    const char *counters_path; /* --counters PATH (NULL: <shm-dir>/intake.counters) */
    uint32_t producers_max;    /* --producers-max: the producer table (producer_table.h) */

    /* TLS (issue 17): --tls-listen, its files, its handshakes. */
    bool tls_listen_set;
    struct sockaddr_storage tls_listen_address;
    socklen_t tls_listen_address_length;
    char tls_listen_text[128];
    const char *tls_certificate_path; /* --tls-cert */
    const char *tls_key_path;         /* --tls-key */
    const char *tls_client_ca_path;   /* --tls-client-ca: client certificates required */
    uint64_t handshake_timeout_ns;    /* --handshake-timeout-ms */
    uint32_t handshakes_max;          /* --handshakes-max: concurrent handshakes per reactor */
    uint32_t handshake_threads;       /* --handshake-threads */
    uint64_t tls_key_update_records;  /* --tls-key-update-records (0: the AEAD's limit) */
    const char *acl_path;             /* --acl FILE (NULL: everything allowed, no quotas) */
    /* The --acl file as config_parse read it; pipeline_start takes it (NULL once taken). */
    struct acl_policy *acl_policy;
};

struct reactor;
struct worker;
struct log_opener;

struct pipeline {
    struct pipeline_config config;
    struct topic_table topics;
    struct topic_queue *topic_queues;   /* [topics_max], indexed by topic id */
    struct producer_table *producers;   /* what the daemon knows of producers (Hellos, sequences) */
    struct keyed_hash_key hash_key;     /* drawn at startup: producer ids' keyed hash */
    struct spsc_ring *return_rings;     /* [worker_count * reactor_count], row per worker */
    struct doorbell *reactor_doorbells; /* [reactor_count], eventfd: their rings read it */
    struct doorbell *worker_doorbells;  /* [worker_count], futex */
    struct doorbell log_opener_doorbell; /* futex */
    struct reactor **reactors;
    struct worker **workers;
    struct log_opener *log_opener; /* creates topic logs off the workers' path */
    /* The counters region other processes read (include/intake/counters_format.h). Each reactor
     * and worker writes only its own rows; nothing reads them back to decide anything. */
    struct counters_region counters;
    /* The --shm-dir lock file, flock'ed for the daemon's life: one daemon per directory. */
    int directory_lock_fd;
    /* The directory's wake-up files (shm_notify.h): every log's publish bumps them. */
    struct shm_notify notify;
    /* --acl: the rule sets reactors take, quota buckets, principal rows (pipeline_acl.h). */
    struct pipeline_acl acl;
    /* Set by the main thread: reactors stop accepting and reading, then drain. */
    _Atomic bool stopping;
    /* Set once every reactor has drained: workers finish and exit. */
    _Atomic bool workers_stopping;
    /* Set after shutdown_timeout_ns: workers fail what they still hold instead of waiting. */
    _Atomic bool abandon_waiting;
    /* TLS (pipeline_tls.c): the server context every handshake starts from (swapped by a
     * reload), the handshake threads, their request queues ([handshake_threads]; reactor r is
     * served by thread r % handshake_threads) and the reactors' answer queues ([reactor_count]). */
    bool tls_enabled;
    struct tls_server tls_server;
    struct handshake_thread **handshake_threads;
    struct handshake_queue *handshake_requests;
    struct handshake_queue *handshake_answers;
    _Atomic bool handshakes_stopping; /* set once every reactor has exited */
};

/* Main thread. pipeline_start builds everything and starts the threads; on failure it prints
 * nothing but fills `why` with one line, tears down what it built and returns negative errno. */
void pipeline_config_defaults(struct pipeline_config *config);
/* The receive-backend settings of reactor `reactor_index` (kind left for the reactor to pick). */
void pipeline_backend_config(const struct pipeline_config *config, uint32_t reactor_index,
                             struct rx_backend_config *out);
int pipeline_start(struct pipeline *pipeline, const struct pipeline_config *config, char *why,
                   size_t why_capacity) INTAKE_MUST_CHECK;
/* Main thread, once everything around the pipeline is up too (the metrics endpoint, the startup
 * lines): the counters region says RUNNING, which is what readiness waits for (intake-stat
 * --wait-ready). A port 0 in --listen is resolved in pipeline->config from pipeline_start on. */
void pipeline_mark_running(struct pipeline *pipeline);
/* The counters region's path for `config` (--counters, or <shm-dir>/intake.counters). */
void pipeline_counters_path(const struct pipeline_config *config, char *path, size_t capacity);
/* Main thread (SIGHUP), while running: reloads what can change without a restart (the --acl
 * file), without closing a connection. 0 with one line in `why` saying what was reloaded (or
 * that there was nothing to reload); negative with one line in `why` saying why not, and then
 * the old configuration stays in force. */
int pipeline_reload(struct pipeline *pipeline, char *why, size_t why_capacity) INTAKE_MUST_CHECK;
/* One line: the --acl rules in force (for the startup report). */
void pipeline_describe_acl(const struct pipeline *pipeline, char *line, size_t capacity);
/* Stop accepting, finish what was received, join every thread. */
void pipeline_stop(struct pipeline *pipeline);
/* Any thread: every reactor and worker prints its counters from its own thread (SIGUSR1). */
void pipeline_request_report(struct pipeline *pipeline);
/* Main thread (SIGHUP): reloads what can change while running. The TLS certificate, key and
 * client CA are rebuilt from their files; new handshakes use them, connections keep going.
 * Returns 0 with `why` saying what was reloaded, or a negative errno with `why` saying what
 * failed; then the old configuration stays in force, entirely. */
int pipeline_reload(struct pipeline *pipeline, char *why, size_t why_capacity) INTAKE_MUST_CHECK;
/* After start: what reactor 0 chose, the lines saying why auto fell back (empty when it did
 * not; one line per step), and the frame limit the backend allows. */
const char *pipeline_backend_name(const struct pipeline *pipeline);
const char *pipeline_fallback_lines(const struct pipeline *pipeline);
uint32_t pipeline_frame_bytes_max(const struct pipeline *pipeline);
/* The frame limit of TLS connections (each TLS record cuts a record's plaintext once more). */
uint32_t pipeline_tls_frame_bytes_max(const struct pipeline *pipeline);
/* Prints every reactor's and worker's counters to stderr (SIGUSR1, shutdown). */
void pipeline_report(struct pipeline *pipeline, const char *when);
/* After pipeline_stop: true when every receive unit is back with its kernel ring. */
bool pipeline_all_units_returned(struct pipeline *pipeline);
/* After pipeline_stop: frees everything. */
void pipeline_destroy(struct pipeline *pipeline);

#endif
