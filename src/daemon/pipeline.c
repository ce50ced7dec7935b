/*
 * pipeline.c: builds the pipeline at startup, runs the shutdown sequence, reports counters.
 * Main thread only (see pipeline.h).
 *
 * Shutdown order is what makes "finish what was received" hold: reactors stop accepting and
 * reading and wait until every record they admitted came back committed (so workers must still
 * run); only then are workers told to stop, and they exit with nothing left. If a full log (block
 * mode, a live consumer not reading) holds records past the shutdown deadline, workers answer
 * them SHUTTING_DOWN instead of waiting forever: those records were never acknowledged.
 */
#include "pipeline.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "address.h"
#include "log_opener.h"
#include "metrics_http.h"
#include "pipeline_tls.h"
#include "producer_seed.h"
#include "reactor.h"
#include "reuseport_cbpf.h"
#include "worker.h"

void pipeline_config_defaults(struct pipeline_config *config) {
    memset(config, 0, sizeof(*config));
    struct sockaddr_in *address = (struct sockaddr_in *)&config->listen_address;
    address->sin_family = AF_INET;
    address->sin_port = htons(7411);
    address->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    config->listen_address_length = sizeof(*address);
    snprintf(config->listen_text, sizeof(config->listen_text), "127.0.0.1:7411");
    config->shm_directory = "/dev/shm/intake";
    config->reactor_count = 1;
    config->worker_count = 1;
    config->frame_bytes_max = 1u << 20;
    config->topics_max = 1024;
    config->dedupe_producers = DEDUPE_PRODUCERS_DEFAULT;
    config->producers_max = PRODUCER_TABLE_CAPACITY_DEFAULT;
    config->topics_per_connection = 0; /* unset: as many as --topics-max */
    config->topic_queue_capacity = 4096;
    config->connections_max = 16384;
    config->metrics_connections_max = METRICS_HTTP_CONNECTIONS_MAX;
    config->records_in_flight_max = 16384;
    config->ack_window_capacity = 2048;
    config->cq_entries = 8192;
    config->backend_name = RX_BACKEND_AUTO_NAME;
    /* Each backend's own defaults, from the backend table. */
    struct rx_backend_config backend;
    rx_backend_config_defaults(&backend);
    config->buffer_count = backend.buffer_count;
    config->buffer_bytes = backend.buffer_bytes;
    config->zcrx_area_bytes = backend.zcrx_area_bytes;
    config->zcrx_rx_buffer_bytes = backend.zcrx_rx_buffer_bytes;
    config->log_capacity_bytes = 64ull << 20;
    config->retention = SHM_LOG_RETENTION_BLOCK;
    config->consumer_stale_ns = 10ull * 1000 * 1000 * 1000;
    config->shutdown_timeout_ns = 10ull * 1000 * 1000 * 1000;
    config->frame_timeout_ns = 10ull * 1000 * 1000 * 1000;
    config->idle_timeout_ns = 300ull * 1000 * 1000 * 1000;
    config->handshake_timeout_ns = 10ull * 1000 * 1000 * 1000;
    config->handshakes_max = 256;
    config->handshake_threads = 1;
}

/* Name of the lock file in --shm-dir. Log files end in ".log" and never start with '.'. */
#define PIPELINE_DIRECTORY_LOCK_NAME ".intaked.lock"

/* Two daemons on one --shm-dir would fight over every topic's log (each log has one writer):
 * the second is refused at startup. The lock is an flock on a file in the directory, held
 * until the process exits, so a daemon that dies releases it with no stale state to clean.
 * Runs after shm_log_directory_prepare, which made the directory and checked its owner. */
static int pipeline_lock_directory(struct pipeline *pipeline, char *why, size_t why_capacity) {
    const char *directory = pipeline->config.shm_directory;
    int result = 0;
    char path[4096 + sizeof(PIPELINE_DIRECTORY_LOCK_NAME) + 1];
    snprintf(path, sizeof(path), "%s/%s", directory, PIPELINE_DIRECTORY_LOCK_NAME);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        result = -errno;
        intake_error_line(why, why_capacity, "cannot open %s: %s", path, strerror(-result));
        return result;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        result = -errno;
        if (result == -EWOULDBLOCK)
            intake_error_line(why, why_capacity,
                              "--shm-dir %s is in use by another intaked "
                              "(it holds %s); one daemon per directory",
                              directory, path);
        else
            intake_error_line(why, why_capacity, "cannot lock %s: %s", path, strerror(-result));
        close(fd);
        return result == -EWOULDBLOCK ? -EBUSY : result;
    }
    pipeline->directory_lock_fd = fd;
    return 0;
}

void pipeline_backend_config(const struct pipeline_config *config, uint32_t reactor_index,
                             struct rx_backend_config *out) {
    INTAKE_ASSERT(config != NULL && out != NULL);
    rx_backend_config_defaults(out);
    out->reactor_index = (uint16_t)reactor_index;
    out->buffer_count = config->buffer_count;
    out->buffer_bytes = config->buffer_bytes;
    out->buffer_group = 0;
    out->zcrx_interface = config->zcrx_interface;
    out->zcrx_queue = reactor_index < config->zcrx_queue_count ? config->zcrx_queues[reactor_index]
                                                               : reactor_index;
    out->zcrx_nodev = config->zcrx_nodev;
    out->zcrx_area_bytes = config->zcrx_area_bytes;
    out->zcrx_rx_buffer_bytes = config->zcrx_rx_buffer_bytes;
    out->zcrx_refill_entries = 0; /* sized by the backend from its area */
}

static uint32_t pipeline_round_up_power_of_two(uint32_t value) {
    uint32_t result = 1;
    while (result < value) result <<= 1;
    return result;
}

/* One doorbell per thread that sleeps: futex for workers, eventfd for reactors (their rings
 * read it). Owned here, handed to each thread and to those that ring it. */
static int pipeline_allocate_doorbells(struct pipeline *pipeline, char *why, size_t why_capacity) {
    const struct pipeline_config *config = &pipeline->config;
    /* Each on its own cache line (ringers and the owner write them from different threads). */
    size_t reactor_bytes = (size_t)config->reactor_count * sizeof(struct doorbell);
    size_t worker_bytes = (size_t)config->worker_count * sizeof(struct doorbell);
    pipeline->reactor_doorbells = aligned_alloc(INTAKE_CACHE_LINE_BYTES, reactor_bytes);
    pipeline->worker_doorbells = aligned_alloc(INTAKE_CACHE_LINE_BYTES, worker_bytes);
    if (pipeline->reactor_doorbells == NULL || pipeline->worker_doorbells == NULL) {
        intake_error_line(why, why_capacity, "out of memory for doorbells");
        return -ENOMEM;
    }
    memset(pipeline->reactor_doorbells, 0, reactor_bytes);
    memset(pipeline->worker_doorbells, 0, worker_bytes);
    for (uint32_t reactor = 0; reactor < config->reactor_count; reactor++)
        pipeline->reactor_doorbells[reactor].event_fd = -1;
    for (uint32_t worker = 0; worker < config->worker_count; worker++)
        pipeline->worker_doorbells[worker].event_fd = -1;
    for (uint32_t reactor = 0; reactor < config->reactor_count; reactor++) {
        int result = doorbell_init(&pipeline->reactor_doorbells[reactor], DOORBELL_EVENTFD);
        if (result < 0) {
            intake_error_line(why, why_capacity, "eventfd for reactor %u: %s", reactor,
                              strerror(-result));
            return result;
        }
    }
    for (uint32_t worker = 0; worker < config->worker_count; worker++) {
        int result = doorbell_init(&pipeline->worker_doorbells[worker], DOORBELL_FUTEX);
        INTAKE_ASSERT(result == 0); /* a futex doorbell needs no resource */
    }
    int result = doorbell_init(&pipeline->log_opener_doorbell, DOORBELL_FUTEX);
    INTAKE_ASSERT(result == 0);
    return 0;
}

static int pipeline_allocate_shared(struct pipeline *pipeline, char *why, size_t why_capacity) {
    const struct pipeline_config *config = &pipeline->config;
    int result = topic_table_init(&pipeline->topics, config->topics_max);
    if (result < 0) goto out_of_memory;
    pipeline->topic_queues = calloc(config->topics_max, sizeof(struct topic_queue));
    if (pipeline->topic_queues == NULL) goto out_of_memory;
    if (producer_table_create(config->producers_max, &pipeline->producers) < 0) {
        intake_error_line(why, why_capacity,
                          "out of memory sizing the producer table "
                          "(--producers-max %u)",
                          config->producers_max);
        return -ENOMEM;
    }
    for (uint32_t topic = 0; topic < config->topics_max; topic++)
        if (topic_queue_init(&pipeline->topic_queues[topic], config->topic_queue_capacity) < 0)
            goto out_of_memory;
    uint32_t ring_count = config->worker_count * config->reactor_count;
    pipeline->return_rings = calloc(ring_count, sizeof(struct spsc_ring));
    if (pipeline->return_rings == NULL) goto out_of_memory;
    /* Never full: a reactor has at most its pool's worth of records out, all on one ring at
     * worst. */
    uint32_t ring_capacity = pipeline_round_up_power_of_two(config->records_in_flight_max);
    for (uint32_t ring = 0; ring < ring_count; ring++)
        if (spsc_ring_init(&pipeline->return_rings[ring], ring_capacity) < 0) goto out_of_memory;
    pipeline->reactors = calloc(config->reactor_count, sizeof(struct reactor *));
    pipeline->workers = calloc(config->worker_count, sizeof(struct worker *));
    if (pipeline->reactors == NULL || pipeline->workers == NULL) goto out_of_memory;
    return pipeline_allocate_doorbells(pipeline, why, why_capacity);
out_of_memory:
    intake_error_line(why, why_capacity,
                      "out of memory sizing queues (--topics-max %u, --topic-queue %u)",
                      config->topics_max, config->topic_queue_capacity);
    return -ENOMEM;
}

static void pipeline_free(struct pipeline *pipeline) {
    const struct pipeline_config *config = &pipeline->config;
    for (uint32_t reactor = 0; pipeline->reactors && reactor < config->reactor_count; reactor++)
        reactor_destroy(pipeline->reactors[reactor]);
    for (uint32_t worker = 0; pipeline->workers && worker < config->worker_count; worker++)
        worker_destroy(pipeline->workers[worker]);
    for (uint32_t topic = 0; pipeline->topic_queues && topic < config->topics_max; topic++)
        topic_queue_destroy(&pipeline->topic_queues[topic]);
    uint32_t ring_count = config->worker_count * config->reactor_count;
    for (uint32_t ring = 0; pipeline->return_rings && ring < ring_count; ring++)
        spsc_ring_destroy(&pipeline->return_rings[ring]);
    free(pipeline->topic_queues);
    free(pipeline->return_rings);
    producer_table_destroy(pipeline->producers);
    pipeline->producers = NULL;
    for (uint32_t reactor = 0; pipeline->reactor_doorbells && reactor < config->reactor_count;
         reactor++)
        doorbell_destroy(&pipeline->reactor_doorbells[reactor]);
    for (uint32_t worker = 0; pipeline->worker_doorbells && worker < config->worker_count; worker++)
        doorbell_destroy(&pipeline->worker_doorbells[worker]);
    free(pipeline->reactor_doorbells);
    free(pipeline->worker_doorbells);
    pipeline->reactor_doorbells = NULL;
    pipeline->worker_doorbells = NULL;
    free(pipeline->reactors);
    free(pipeline->workers);
    /* After the reactors: none can hold a rule set any more. */
    pipeline_acl_destroy(&pipeline->acl);
    acl_policy_free(pipeline->config.acl_policy); /* not taken: startup failed before */
    pipeline->config.acl_policy = NULL;
    topic_table_destroy(&pipeline->topics);
    pipeline->reactors = NULL;
    pipeline->workers = NULL;
    pipeline->topic_queues = NULL;
    pipeline->return_rings = NULL;
    pipeline_tls_free(pipeline);
    counters_region_close(&pipeline->counters);
    /* After every worker and the opener: they bump the wake-up files until they stop. */
    shm_notify_close(&pipeline->notify);
    if (pipeline->directory_lock_fd >= 0) close(pipeline->directory_lock_fd);
    pipeline->directory_lock_fd = -1;
}

static int pipeline_create_fixed_topics(struct pipeline *pipeline, char *why, size_t why_capacity) {
    for (uint32_t index = 0; index < pipeline->config.fixed_topic_count; index++) {
        const char *name = pipeline->config.fixed_topics[index];
        uint32_t topic_id = 0;
        if (topic_table_intern_name(&pipeline->topics, name, (uint32_t)strlen(name), &topic_id) ==
            TOPIC_TABLE_FULL) {
            intake_error_line(why, why_capacity, "more --topic flags than --topics-max %u",
                              pipeline->config.topics_max);
            return -EINVAL;
        }
    }
    return 0;
}

/* Once every reactor has drained (every admitted record came back), workers have nothing left:
 * stop them, then the log opener (a topic's records waited for its log until it was made). */
static void pipeline_stop_workers(struct pipeline *pipeline) {
    atomic_store(&pipeline->workers_stopping, true);
    for (uint32_t worker = 0; worker < pipeline->config.worker_count; worker++)
        if (pipeline->workers[worker]) worker_join(pipeline->workers[worker]);
    log_opener_stop(pipeline->log_opener);
    pipeline->log_opener = NULL;
}

/* Stops and joins what was started so far (startup failure). */
static void pipeline_join_all(struct pipeline *pipeline) {
    atomic_store(&pipeline->stopping, true);
    for (uint32_t reactor = 0; reactor < pipeline->config.reactor_count; reactor++)
        if (pipeline->reactors[reactor]) reactor_join(pipeline->reactors[reactor]);
    pipeline_tls_stop(pipeline);
    pipeline_stop_workers(pipeline);
}

/* zcrx binds reactor i to hardware queue zcrx_queues[i]; a connection must be served by the
 * reactor whose area its packets land in. The reuseport group picks the listener (reactor
 * i's is the i-th socket added) from the packet's receive queue with a classic BPF program.
 * Attached once to any socket of the group, it applies to the whole group. */
static int pipeline_steer_queues(struct pipeline *pipeline, char *why, size_t why_capacity) {
    const struct pipeline_config *config = &pipeline->config;
    if (config->zcrx_queue_count == 0) return 0;
    if (!reactor_backend_type(pipeline->reactors[0])->steered_by_rx_queue) return 0;
    /* Each listener's reuseport group gets it (the TLS one too: its connections' bytes land in
     * the same queues). */
    int result = 0;
    for (int tls = 0; result == 0 && tls < 2; tls++) {
        int fd = reactor_listen_fd(pipeline->reactors[0], tls);
        if (fd >= 0) result = reuseport_cbpf_attach(fd, config->zcrx_queues, config->reactor_count);
    }
    if (result < 0)
        intake_error_line(why, why_capacity, "attaching the queue-steering reuseport program: %s",
                          strerror(-result));
    return result;
}

void pipeline_counters_path(const struct pipeline_config *config, char *path, size_t capacity) {
    if (config->counters_path != NULL)
        snprintf(path, capacity, "%s", config->counters_path);
    else
        snprintf(path, capacity, "%s/%s", config->shm_directory, INTAKE_COUNTERS_FILE_NAME);
}

/* Before any thread starts: every reactor and worker writes its rows from its first loop. */
static int pipeline_create_counters(struct pipeline *pipeline, char *why, size_t why_capacity) {
    const struct pipeline_config *config = &pipeline->config;
    char path[4096];
    pipeline_counters_path(config, path, sizeof(path));
    struct counters_region_identity identity = {
        .group_set = config->shm_group_set,
        .group = config->shm_group,
        .reactor_count = config->reactor_count,
        .worker_count = config->worker_count,
        .topics_max = config->topics_max,
        /* The principal section only with --acl: nothing is spent on it otherwise. */
        .principal_rows = config->acl_policy != NULL ? INTAKE_COUNTERS_PRINCIPAL_ROWS : 0,
        .log_capacity_bytes = config->log_capacity_bytes,
        .shm_directory = config->shm_directory,
        .listen = config->listen_text,
        .metrics_listen = config->metrics_listen,
        .tls_listen = config->tls_listen_set ? config->tls_listen_text : NULL,
    };
    return counters_region_create(&pipeline->counters, path, &identity, why, why_capacity);
}

/* A listener asked for port 0 (--listen ADDR:0): reactor 0's socket got a port from the kernel;
 * the other reactors join its reuseport group on that port, and the log lines and the counters
 * region name it. */
static int pipeline_resolve_port(struct pipeline *pipeline, bool tls, char *why,
                                 size_t why_capacity) {
    struct pipeline_config *config = &pipeline->config;
    struct sockaddr_storage *address = tls ? &config->tls_listen_address : &config->listen_address;
    char *text = tls ? config->tls_listen_text : config->listen_text;
    if (intake_address_port(address) != 0) return 0;
    struct sockaddr_storage bound;
    socklen_t length = sizeof(bound);
    int fd = reactor_listen_fd(pipeline->reactors[0], tls);
    INTAKE_ASSERT(fd >= 0);
    if (getsockname(fd, (struct sockaddr *)&bound, &length) != 0) {
        int error = errno;
        intake_error_line(why, why_capacity, "getsockname on %s: %s", text, strerror(error));
        return -error;
    }
    uint16_t port = intake_address_port(&bound);
    INTAKE_ASSERT(port != 0);
    intake_address_set_port(address, port);
    char given[sizeof(config->listen_text)];
    snprintf(given, sizeof(given), "%s", text);
    intake_address_text_with_port(given, port, text, sizeof(config->listen_text));
    return 0;
}

/* After reactor 0's listeners exist: the ports they are bound to, for the others and readers. */
static int pipeline_resolve_ports(struct pipeline *pipeline, char *why, size_t why_capacity) {
    const struct pipeline_config *config = &pipeline->config;
    int result = 0;
    if (!config->listen_none) result = pipeline_resolve_port(pipeline, false, why, why_capacity);
    if (result == 0 && config->tls_listen_set)
        result = pipeline_resolve_port(pipeline, true, why, why_capacity);
    if (result < 0) return result;
    counters_region_set_listen(
        &pipeline->counters, config->listen_text,
        config->listen_none ? 0 : intake_address_port(&config->listen_address),
        config->tls_listen_set ? config->tls_listen_text : NULL,
        config->tls_listen_set ? intake_address_port(&config->tls_listen_address) : 0);
    return 0;
}

/* The key of producer ids' keyed hash (drawn now: a peer cannot know it), then what the
 * deduplication tables on disk say of producers (producer_seed.h). */
static int pipeline_seed_producers(struct pipeline *pipeline, char *why, size_t why_capacity) {
    int result = keyed_hash_key_random(&pipeline->hash_key);
    if (result < 0) {
        intake_error_line(why, why_capacity, "getrandom for the producer id key: %s",
                          strerror(-result));
        return result;
    }
    struct producer_seed_result seeded;
    result = producer_seed_from_tables(pipeline->producers, pipeline->config.shm_directory,
                                       &pipeline->hash_key, &seeded);
    if (result < 0) {
        intake_error_line(why, why_capacity, "OpenSSL has no SipHash for producer ids: %s",
                          strerror(-result));
        return result;
    }
    if (seeded.producers > 0)
        fprintf(stderr,
                "intaked: producer table seeded from %u deduplication tables: %" PRIu64
                " entries, %" PRIu64 " did not fit --producers-max %u\n",
                seeded.files, seeded.producers, seeded.not_seeded, pipeline->config.producers_max);
    return 0;
}

static struct log_opener_links pipeline_log_opener_links(struct pipeline *pipeline) {
    const struct pipeline_config *config = &pipeline->config;
    struct log_opener_links links = {
        .topics = &pipeline->topics,
        .topics_max = config->topics_max,
        .log_template =
            {
                .directory = config->shm_directory,
                .topic = NULL,
                .capacity_bytes = config->log_capacity_bytes,
                .retention = config->retention,
                .consumer_stale_ns = config->consumer_stale_ns,
                .group_set = config->shm_group_set,
                .group = config->shm_group,
                .notify = &pipeline->notify,
            },
        .frame_bytes_max = config->frame_bytes_max,
        .dedupe_producers = config->dedupe_producers,
        .hash_key = pipeline->hash_key,
        .worker_doorbells = pipeline->worker_doorbells,
        .worker_count = config->worker_count,
        .doorbell = &pipeline->log_opener_doorbell,
    };
    return links;
}

static struct worker_links pipeline_worker_links(struct pipeline *pipeline, uint32_t worker) {
    const struct pipeline_config *config = &pipeline->config;
    INTAKE_ASSERT(worker < config->worker_count);
    INTAKE_ASSERT(pipeline->log_opener != NULL);
    struct worker_links links = {
        .index = worker,
        .worker_count = config->worker_count,
        .reactor_count = config->reactor_count,
        .topics_max = config->topics_max,
        .topics = &pipeline->topics,
        .topic_queues = pipeline->topic_queues,
        /* Its row of the matrix: ring [worker][reactor] for every reactor. */
        .return_rings = &pipeline->return_rings[(size_t)worker * config->reactor_count],
        .reactor_doorbells = pipeline->reactor_doorbells,
        .doorbell = &pipeline->worker_doorbells[worker],
        .log_opener = pipeline->log_opener,
        .stopping = &pipeline->workers_stopping,
        .abandon_waiting = &pipeline->abandon_waiting,
        .counters_row = counters_region_worker(&pipeline->counters, worker),
        .topic_rows = counters_region_topic(&pipeline->counters, 0),
    };
    return links;
}

static struct reactor_links pipeline_reactor_links(struct pipeline *pipeline, uint32_t reactor) {
    const struct pipeline_config *config = &pipeline->config;
    INTAKE_ASSERT(reactor < config->reactor_count);
    struct reactor_links links = {
        .index = reactor,
        .connections_max = config->connections_max,
        .records_in_flight_max = config->records_in_flight_max,
        .ack_window_capacity = config->ack_window_capacity,
        .cq_entries = config->cq_entries,
        .frame_bytes_max = config->frame_bytes_max,
        .topics_per_connection =
            config->topics_per_connection != 0 ? config->topics_per_connection : config->topics_max,
        .topic_queue_capacity = config->topic_queue_capacity,
        .topics_max = config->topics_max,
        .frame_timeout_ns = config->frame_timeout_ns,
        .idle_timeout_ns = config->idle_timeout_ns,
        .listen_address = &pipeline->config.listen_address,
        .listen_address_length = config->listen_address_length,
        .listen_text = pipeline->config.listen_text,
        .backend_name = config->backend_name,
        .topics = &pipeline->topics,
        .topic_queues = pipeline->topic_queues,
        .producers = pipeline->producers,
        .hash_key = pipeline->hash_key,
        .worker_count = config->worker_count,
        /* Its column of the matrix: ring [worker][reactor] for every worker. */
        .return_rings = &pipeline->return_rings[reactor],
        .return_ring_stride = config->reactor_count,
        .worker_doorbells = pipeline->worker_doorbells,
        .doorbell = &pipeline->reactor_doorbells[reactor],
        .stopping = &pipeline->stopping,
        .counters_row = counters_region_reactor(&pipeline->counters, reactor),
        .received_cells = counters_region_received(&pipeline->counters, reactor),
        .acl = pipeline_acl_exchange(&pipeline->acl),
        .quota_buckets = pipeline->acl.buckets,
        .principal_cells = counters_region_principal_cells(&pipeline->counters, reactor),
    };
    pipeline_backend_config(config, reactor, &links.backend_config);
    pipeline_tls_reactor_links(pipeline, reactor, &links);
    return links;
}

/* Before the reactors exist: the --acl rules they will take (pipeline_acl.h). */
static int pipeline_start_acl(struct pipeline *pipeline, char *why, size_t why_capacity) {
    const struct pipeline_config *config = &pipeline->config;
    struct acl_policy *policy = pipeline->config.acl_policy;
    pipeline->config.acl_policy = NULL; /* taken (pipeline_acl_start frees it on failure) */
    return pipeline_acl_start(&pipeline->acl, config->acl_path, policy, config->topics_max,
                              config->reactor_count, pipeline->reactor_doorbells,
                              &pipeline->counters, why, why_capacity);
}

/* SIGHUP's --acl part: the new file's rules for every reactor, or the old ones and why not. */
static int pipeline_reload_acl(struct pipeline *pipeline, char *why, size_t why_capacity) {
    if (!pipeline->acl.enabled) {
        intake_error_line(why, why_capacity, "nothing to reload (no --acl)");
        return 0;
    }
    return pipeline_acl_reload(&pipeline->acl, why, why_capacity);
}

void pipeline_describe_acl(const struct pipeline *pipeline, char *line, size_t capacity) {
    pipeline_acl_describe(&pipeline->acl, line, capacity);
}

int pipeline_start(struct pipeline *pipeline, const struct pipeline_config *config, char *why,
                   size_t why_capacity) {
    memset(pipeline, 0, sizeof(*pipeline));
    pipeline->config = *config;
    /* A --shm-dir someone else owns or can write is refused before anything starts. */
    int result = shm_log_directory_prepare(config->shm_directory, config->shm_group_set,
                                           config->shm_group, why, why_capacity);
    pipeline->directory_lock_fd = -1;
    shm_notify_init(&pipeline->notify);
    if (result == 0) result = pipeline_lock_directory(pipeline, why, why_capacity);
    if (result == 0)
        result = shm_notify_open(&pipeline->notify, config->shm_directory, config->shm_group_set,
                                 config->shm_group, why, why_capacity);
    if (result == 0) result = pipeline_allocate_shared(pipeline, why, why_capacity);
    if (result == 0) result = pipeline_seed_producers(pipeline, why, why_capacity);
    if (result == 0) result = pipeline_create_counters(pipeline, why, why_capacity);
    if (result == 0) result = pipeline_start_acl(pipeline, why, why_capacity);
    if (result == 0) result = pipeline_create_fixed_topics(pipeline, why, why_capacity);
    /* The opener first: workers are handed it. It only waits for requests until they start. */
    if (result == 0) {
        struct log_opener_links opener_links = pipeline_log_opener_links(pipeline);
        result = log_opener_start(&opener_links, &pipeline->log_opener, why, why_capacity);
    }
    for (uint32_t worker = 0; result == 0 && worker < config->worker_count; worker++) {
        struct worker_links links = pipeline_worker_links(pipeline, worker);
        result = worker_create(&links, &pipeline->workers[worker]);
        if (result < 0) intake_error_line(why, why_capacity, "worker %u: out of memory", worker);
    }
    /* The TLS context before anything listens (a bad file stops the startup), and the
     * handshake threads before the reactors that post to them. */
    if (result == 0) result = pipeline_tls_start(pipeline, why, why_capacity);
    /* Listeners first, all of them, so a busy port fails before any thread starts. */
    for (uint32_t reactor = 0; result == 0 && reactor < config->reactor_count; reactor++) {
        struct reactor_links links = pipeline_reactor_links(pipeline, reactor);
        result = reactor_create(&links, &pipeline->reactors[reactor], why, why_capacity);
        if (result == 0 && reactor == 0)
            result = pipeline_resolve_ports(pipeline, why, why_capacity);
    }
    for (uint32_t worker = 0; result == 0 && worker < config->worker_count; worker++)
        result = worker_start(pipeline->workers[worker], why, why_capacity);
    for (uint32_t reactor = 0; result == 0 && reactor < config->reactor_count; reactor++)
        result = reactor_start(pipeline->reactors[reactor], why, why_capacity);
    if (result == 0) result = pipeline_steer_queues(pipeline, why, why_capacity);
    if (result < 0) {
        if (pipeline->reactors != NULL && pipeline->workers != NULL) {
            pipeline_join_all(pipeline);
        } else {
            pipeline_tls_stop(pipeline);
            log_opener_stop(pipeline->log_opener);
        }
        pipeline_free(pipeline);
        return result;
    }
    counters_region_set_backend(&pipeline->counters, reactor_backend_name(pipeline->reactors[0]));
    return 0;
}

void pipeline_mark_running(struct pipeline *pipeline) {
    counters_region_set_state(&pipeline->counters, INTAKE_COUNTERS_STATE_RUNNING, true);
}

void pipeline_request_report(struct pipeline *pipeline) {
    for (uint32_t reactor = 0; reactor < pipeline->config.reactor_count; reactor++)
        reactor_request_report(pipeline->reactors[reactor]);
    for (uint32_t worker = 0; worker < pipeline->config.worker_count; worker++)
        worker_request_report(pipeline->workers[worker]);
}

const char *pipeline_backend_name(const struct pipeline *pipeline) {
    return reactor_backend_name(pipeline->reactors[0]);
}

const char *pipeline_fallback_lines(const struct pipeline *pipeline) {
    return reactor_fallback_lines(pipeline->reactors[0]);
}

uint32_t pipeline_frame_bytes_max(const struct pipeline *pipeline) {
    return reactor_frame_bytes_max(pipeline->reactors[0]);
}

uint32_t pipeline_tls_frame_bytes_max(const struct pipeline *pipeline) {
    return reactor_tls_frame_bytes_max(pipeline->reactors[0]);
}

/* Waits for reactors to drain; past the deadline, tells workers to stop waiting on full logs. */
static void pipeline_drain_reactors(struct pipeline *pipeline) {
    uint64_t deadline = intake_now_ns() + pipeline->config.shutdown_timeout_ns;
    atomic_store(&pipeline->stopping, true);
    for (uint32_t reactor = 0; reactor < pipeline->config.reactor_count; reactor++) {
        while (!atomic_load(&pipeline->abandon_waiting) && intake_now_ns() < deadline) {
            /* Polling the clock from the main thread only while stopping; 10 ms steps. */
            if (reactor_try_join(pipeline->reactors[reactor], 10)) break;
        }
        if (intake_now_ns() >= deadline && !atomic_load(&pipeline->abandon_waiting)) {
            fprintf(stderr, "intaked: shutdown deadline passed; records still waiting for a full "
                            "log are answered SHUTTING_DOWN (not acknowledged)\n");
            atomic_store(&pipeline->abandon_waiting, true);
            for (uint32_t worker = 0; worker < pipeline->config.worker_count; worker++)
                worker_request_report(pipeline->workers[worker]);
        }
        reactor_join(pipeline->reactors[reactor]);
    }
}

void pipeline_stop(struct pipeline *pipeline) {
    counters_region_set_state(&pipeline->counters, INTAKE_COUNTERS_STATE_STOPPING, false);
    pipeline_drain_reactors(pipeline);
    pipeline_tls_stop(pipeline);
    pipeline_stop_workers(pipeline);
}

static int pipeline_reload_tls(struct pipeline *pipeline, char *why, size_t why_capacity) {
    INTAKE_ASSERT(pipeline->tls_enabled);
    int result = pipeline_tls_reload(pipeline, why, why_capacity);
    if (result < 0) return result;
    const struct pipeline_config *config = &pipeline->config;
    intake_error_line(why, why_capacity,
                      "TLS certificate %s, key %s%s%s reloaded; new handshakes use them",
                      config->tls_certificate_path, config->tls_key_path,
                      config->tls_client_ca_path ? " and client CA " : "",
                      config->tls_client_ca_path ? config->tls_client_ca_path : "");
    return 0;
}

/* SIGHUP: the TLS files, then the --acl file. Each part is all or nothing: a part that fails
 * keeps its old configuration and stops the reload there (a TLS part already reloaded stays). */
int pipeline_reload(struct pipeline *pipeline, char *why, size_t why_capacity) {
    INTAKE_ASSERT(why != NULL && why_capacity > 0);
    char tls_note[512] = "", acl_note[512] = "";
    if (pipeline->tls_enabled) {
        if (pipeline_reload_tls(pipeline, why, why_capacity) < 0) return -1;
        snprintf(tls_note, sizeof(tls_note), "%s", why);
    }
    if (pipeline->acl.enabled) {
        if (pipeline_reload_acl(pipeline, why, why_capacity) < 0) return -1;
        snprintf(acl_note, sizeof(acl_note), "%s", why);
    }
    if (!pipeline->tls_enabled && !pipeline->acl.enabled)
        intake_error_line(why, why_capacity, "nothing to reload (no --tls-listen, no --acl)");
    else
        intake_error_line(why, why_capacity, "%s%s%s", tls_note,
                          tls_note[0] && acl_note[0] ? "; " : "", acl_note);
    return 0;
}

void pipeline_report(struct pipeline *pipeline, const char *when) {
    for (uint32_t reactor = 0; reactor < pipeline->config.reactor_count; reactor++)
        reactor_print_counters(pipeline->reactors[reactor], stderr, when);
    uint64_t copied = 0;
    uint64_t received = 0;
    for (uint32_t worker = 0; worker < pipeline->config.worker_count; worker++) {
        worker_print_counters(pipeline->workers[worker], stderr, when);
        copied += worker_bytes_copied(pipeline->workers[worker]);
    }
    for (uint32_t reactor = 0; reactor < pipeline->config.reactor_count; reactor++)
        received += reactor_bytes_received(pipeline->reactors[reactor]);
    /* The copy account: payload bytes copied in user space per byte received. Each record's
     * bytes are copied once, into its log; framing prefixes are received but never copied. */
    fprintf(stderr,
            "intaked: copy account %s: copied_bytes=%" PRIu64 " received_bytes=%" PRIu64
            " ratio=%.4f\n",
            when, copied, received, received ? (double)copied / (double)received : 0.0);
    /* Producers whose acknowledged sequence a Hello would learn, and those forgotten to stay
     * within --producers-max (each then resends what it holds, deduplicated downstream). */
    struct producer_table_stats producers;
    producer_table_stats(pipeline->producers, &producers);
    fprintf(stderr,
            "intaked: producer table %s: producers=%" PRIu32 " evictions=%" PRIu64
            " capacity=%" PRIu32 " protected=%" PRIu32 " refusals=%" PRIu64 " seeded=%" PRIu64
            " gaps=%" PRIu64 " gap_merges=%" PRIu64 "\n",
            when, producers.producers, producers.evictions, pipeline->config.producers_max,
            producers.protected_count, producers.refusals, producers.seeded, producers.gaps,
            producers.gap_merges);
}

bool pipeline_all_units_returned(struct pipeline *pipeline) {
    for (uint32_t reactor = 0; reactor < pipeline->config.reactor_count; reactor++)
        if (!reactor_all_units_returned(pipeline->reactors[reactor])) return false;
    return true;
}

void pipeline_destroy(struct pipeline *pipeline) {
    pipeline_free(pipeline);
}
