/*
 * reactor_setup.c: a reactor's birth and death (see reactor.h): the listener, the memory sized
 * at startup, the ring and backend (one backend type by name, or the backend table's auto
 * chain), the thread, and the counters it prints.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "reactor_internal.h"

static int reactor_setup_ring(struct reactor *reactor, const struct rx_backend_type *type) {
    INTAKE_ASSERT(!reactor->ring_ready);
    INTAKE_ASSERT(type != NULL);
    struct io_uring_params params;
    memset(&params, 0, sizeof(params));
    /* One thread submits and reaps (single issuer); task work runs when we wait (deferred), so
     * completions are posted in batches; the CQ is sized for multishot bursts. */
    params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE |
                   type->ring_flags;
    params.cq_entries = reactor->links.cq_entries;
    int result = io_uring_queue_init_params(REACTOR_SQ_ENTRIES, &reactor->ring, &params);
    if (result < 0) {
        intake_error_line(
            reactor->start_why, sizeof(reactor->start_why), "io_uring setup failed: %s%s",
            strerror(-result),
            result == -EINVAL ? " (needs Linux 6.1+ for SINGLE_ISSUER and DEFER_TASKRUN)" : "");
        return result;
    }
    reactor->ring_ready = true;
    return 0;
}

/* Ring + backend of one type. On failure the ring is gone again and start_why says why. */
static int reactor_setup_type(struct reactor *reactor, const struct rx_backend_type *type) {
    int result = reactor_setup_ring(reactor, type);
    if (result < 0) return result;
    struct rx_backend_config config = reactor->links.backend_config;
    config.kind = type->kind;
    config.reactor_index = (uint16_t)reactor->index;
    result = rx_backend_create(&config, &reactor->ring, &reactor->backend, reactor->start_why,
                               sizeof(reactor->start_why));
    if (result == 0) return 0;
    INTAKE_ASSERT(reactor->backend == NULL);
    io_uring_queue_exit(&reactor->ring);
    reactor->ring_ready = false;
    return result;
}

/* The named backend, or with "auto" the fallback chain, one line per step that failed. Runs on
 * the reactor thread. */
static int reactor_setup_backend(struct reactor *reactor) {
    const char *name = reactor->links.backend_name;
    INTAKE_ASSERT(name != NULL);
    if (strcmp(name, RX_BACKEND_AUTO_NAME) != 0) {
        const struct rx_backend_type *type = rx_backend_type_find(name);
        INTAKE_ASSERT(type != NULL); /* config.c validated the name against the table */
        return reactor_setup_type(reactor, type);
    }
    size_t used = 0;
    for (const struct rx_backend_type *type = rx_backend_auto_first();;) {
        int result = reactor_setup_type(reactor, type);
        if (result == 0 || type->fallback == NULL) return result;
        const struct rx_backend_type *next = rx_backend_type_find(type->fallback);
        INTAKE_ASSERT(next != NULL && next != type);
        intake_error_line(reactor->fallback_lines + used, sizeof(reactor->fallback_lines) - used,
                          "%s unavailable (%s); using %s\n", type->name, reactor->start_why,
                          next->name);
        used += strlen(reactor->fallback_lines + used);
        reactor->start_why[0] = '\0';
        type = next;
    }
}

/*
 * Over TLS a record's plaintext is cut by every TLS record it spans (their headers and tags lie
 * between), and each TLS record's plaintext (at most 16 KiB) may be cut again by the receive units
 * it lies in: ceil(TLS_RECORD_BYTES_MAX / unit) + 1 pieces at most when units are filled whole.
 * A record must fit RECORD_SLICES_MAX slices, so TLS connections get the largest frame that
 * does in that layout (its two end TLS records may be partial): 480 KiB with 64 KiB buffers,
 * 128 KiB with 4 KiB buffers or zcrx fragments. A peer that sends much smaller TLS records can
 * still exceed the slices with a smaller frame; that is answered at run time
 * (RESOURCE_EXHAUSTED, "record arrived in more than 64 fragments").
 */
static uint32_t reactor_tls_frame_limit(const struct reactor *reactor) {
    uint32_t unit_bytes = reactor->backend->unit_bytes;
    INTAKE_ASSERT(unit_bytes > 0);
    uint32_t pieces = (TLS_RECORD_BYTES_MAX + unit_bytes - 1) / unit_bytes + 1;
    uint32_t tls_records = RECORD_SLICES_MAX / pieces;
    INTAKE_ASSERT(tls_records > 2);
    uint64_t limit = (uint64_t)(tls_records - 2) * TLS_PLAINTEXT_BYTES_MAX;
    return limit < reactor->frame_bytes_max ? (uint32_t)limit : reactor->frame_bytes_max;
}

static void *reactor_thread_main(void *argument) {
    struct reactor *reactor = argument;
    INTAKE_ASSERT(reactor->backend == NULL);
    reactor->start_result = reactor_setup_backend(reactor);
    if (reactor->start_result == 0) {
        /* The backend's units may not hold what --max-frame asks in RECORD_SLICES_MAX slices. */
        reactor->frame_bytes_max =
            rx_backend_type_of(reactor->backend)
                ->frame_bytes_limit(reactor->backend, reactor->links.frame_bytes_max);
        INTAKE_ASSERT(reactor->frame_bytes_max <= reactor->links.frame_bytes_max);
        reactor->tls_frame_bytes_max = reactor_tls_frame_limit(reactor);
    }
    int result = reactor->start_result;
    sem_post(&reactor->started);
    if (result == 0) reactor_loop(reactor);
    return NULL;
}

static int reactor_open_listener(struct reactor *reactor, uint32_t listener,
                                 const struct sockaddr_storage *address, socklen_t length,
                                 const char *text, char *why, size_t why_capacity) {
    INTAKE_ASSERT(listener < REACTOR_LISTENERS);
    INTAKE_ASSERT(reactor->listen_fds[listener] < 0);
    INTAKE_ASSERT(address != NULL);
    int fd = socket(address->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int error = errno;
        intake_error_line(why, why_capacity, "socket: %s", strerror(error));
        return -error;
    }
    int one = 1;
    /* Every reactor listens on the same port; the kernel spreads connections over them. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
        int error = errno;
        intake_error_line(why, why_capacity, "setsockopt SO_REUSEADDR/SO_REUSEPORT: %s",
                          strerror(error));
        close(fd);
        return -error;
    }
    if (bind(fd, (const struct sockaddr *)address, length) < 0 || listen(fd, 4096) < 0) {
        int error = errno;
        intake_error_line(why, why_capacity, "cannot listen on %s: %s", text, strerror(error));
        close(fd);
        return -error;
    }
    reactor->listen_fds[listener] = fd;
    return 0;
}

/* The plaintext listener unless --listen none, the TLS one with --tls-listen. */
static int reactor_open_listeners(struct reactor *reactor, char *why, size_t why_capacity) {
    const struct reactor_links *links = &reactor->links;
    INTAKE_ASSERT(links->listen_address != NULL || links->tls_listen_address != NULL);
    int result = 0;
    if (links->listen_address != NULL)
        result = reactor_open_listener(reactor, REACTOR_LISTENER_PLAIN, links->listen_address,
                                       links->listen_address_length, links->listen_text, why,
                                       why_capacity);
    if (result == 0 && links->tls_listen_address != NULL)
        result = reactor_open_listener(reactor, REACTOR_LISTENER_TLS, links->tls_listen_address,
                                       links->tls_listen_address_length, links->tls_listen_text,
                                       why, why_capacity);
    return result;
}

/* With a TLS listener: a record state per connection slot and the handshake slots, mapped so
 * that only what is used becomes resident (a handshake slot is about 80 KiB, most of it the
 * room for one record in and one server flight out). */
static int reactor_allocate_tls(struct reactor *reactor) {
    const struct reactor_links *links = &reactor->links;
    if (links->tls_listen_address == NULL) return 0;
    INTAKE_ASSERT(links->handshakes_max > 0);
    INTAKE_ASSERT(links->handshake_requests != NULL && links->handshake_answers != NULL);
    reactor->tls_states_bytes = (size_t)links->connections_max * sizeof(struct connection_tls);
    reactor->handshake_slots_bytes = (size_t)links->handshakes_max * sizeof(struct handshake_slot);
    void *states = mmap(NULL, reactor->tls_states_bytes, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    void *slots = mmap(NULL, reactor->handshake_slots_bytes, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    reactor->tls_states = states == MAP_FAILED ? NULL : states;
    reactor->handshake_slots = slots == MAP_FAILED ? NULL : slots;
    reactor->handshake_free = malloc(links->handshakes_max * sizeof(uint32_t));
    if (!reactor->tls_states || !reactor->handshake_slots || !reactor->handshake_free)
        return -ENOMEM;
    for (uint32_t slot = 0; slot < links->handshakes_max; slot++) {
        reactor->handshake_free[slot] = links->handshakes_max - 1 - slot;
        reactor->handshake_slots[slot].index = slot;
        reactor->handshake_slots[slot].reactor = (uint16_t)reactor->index;
    }
    reactor->handshake_free_count = links->handshakes_max;
    return 0;
}

static int reactor_allocate(struct reactor *reactor) {
    const struct reactor_links *links = &reactor->links;
    uint32_t slots = links->connections_max;
    INTAKE_ASSERT(slots > 0 && slots < (1u << USER_DATA_SLOT_BITS));
    reactor->connection_count_max = slots;
    reactor->connections = calloc(slots, sizeof(struct connection));
    reactor->free_slots = malloc(slots * sizeof(uint32_t));
    reactor->retry_list = malloc(slots * sizeof(uint32_t));
    reactor->ack_list = malloc(slots * sizeof(uint32_t));
    reactor->units_wait_list = malloc(slots * sizeof(uint32_t));
    reactor->advance_list = malloc(slots * sizeof(uint32_t));
    reactor->workers_to_wake = calloc(links->worker_count, sizeof(bool));
    /* Paused connections keep receiving into their backlogs until a pressure limit cancels
     * the receive (REACTOR_PAUSED_BACKLOG_CHUNKS_MAX, or the free nodes fall to the reserve);
     * receives being cancelled may still deliver up to a CQ's worth of completions. */
    reactor->backlog_node_count = links->cq_entries * 2 + slots;
    /* A TLS connection that reads may hold the start of its next record on the backlog. */
    if (links->tls_listen_address != NULL)
        reactor->backlog_node_count += slots * REACTOR_TLS_BACKLOG_NODES_PER_CONNECTION;
    reactor->backlog_nodes = malloc(reactor->backlog_node_count * sizeof(struct backlog_node));
    size_t window_entries = (size_t)slots * links->ack_window_capacity;
    reactor->window_region_bytes = window_entries * (sizeof(uint64_t) + sizeof(uint16_t));
    /* Mapped, so an idle connection's window costs no resident memory. */
    void *windows = mmap(NULL, reactor->window_region_bytes, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (windows == MAP_FAILED) windows = NULL;
    reactor->window_sequences = windows;
    reactor->window_states =
        windows ? (uint16_t *)((uint8_t *)windows + window_entries * sizeof(uint64_t)) : NULL;
    if (!reactor->connections || !reactor->free_slots || !reactor->retry_list ||
        !reactor->ack_list || !reactor->units_wait_list || !reactor->advance_list ||
        !reactor->workers_to_wake || !reactor->backlog_nodes || !windows)
        return -ENOMEM;
    for (uint32_t slot = 0; slot < slots; slot++) {
        reactor->free_slots[slot] = slots - 1 - slot;
        reactor->connections[slot].fd = -1;
    }
    reactor->free_slot_count = slots;
    for (uint32_t node = 0; node < reactor->backlog_node_count; node++)
        reactor->backlog_nodes[node].next =
            node + 1 < reactor->backlog_node_count ? node + 1 : REACTOR_NO_NODE;
    reactor->backlog_free_head = 0;
    reactor->backlog_free_count = reactor->backlog_node_count;
    reactor->backlog_reserve = links->cq_entries * 2;
    if (reactor_allocate_tls(reactor) < 0) return -ENOMEM;
    return record_pool_init(&reactor->pool, links->records_in_flight_max, (uint16_t)reactor->index);
}

int reactor_create(const struct reactor_links *links, struct reactor **out, char *why,
                   size_t why_capacity) {
    INTAKE_ASSERT(links->doorbell != NULL && links->doorbell->kind == DOORBELL_EVENTFD);
    INTAKE_ASSERT(links->worker_count > 0 && links->worker_doorbells != NULL);
    INTAKE_ASSERT(links->stopping != NULL);
    struct reactor *reactor = calloc(1, sizeof(*reactor));
    if (reactor == NULL) return -ENOMEM;
    reactor->links = *links;
    reactor->index = links->index;
    for (uint32_t listener = 0; listener < REACTOR_LISTENERS; listener++)
        reactor->listen_fds[listener] = -1;
    sem_init(&reactor->started, 0, 0);
    int result = reactor_allocate(reactor);
    if (result < 0)
        intake_error_line(why, why_capacity, "reactor %u: out of memory at startup", links->index);
    if (result == 0) result = reactor_open_listeners(reactor, why, why_capacity);
    if (result < 0) {
        reactor_destroy(reactor);
        return result;
    }
    *out = reactor;
    return 0;
}

int reactor_start(struct reactor *reactor, char *why, size_t why_capacity) {
    INTAKE_ASSERT(!reactor->thread_started);
    int result = pthread_create(&reactor->thread, NULL, reactor_thread_main, reactor);
    if (result != 0) {
        intake_error_line(why, why_capacity, "reactor %u: cannot start thread: %s", reactor->index,
                          strerror(result));
        return -result;
    }
    reactor->thread_started = true;
    sem_wait(&reactor->started);
    if (reactor->start_result < 0) {
        intake_error_line(why, why_capacity, "reactor %u: %s", reactor->index, reactor->start_why);
        pthread_join(reactor->thread, NULL);
        reactor->thread_started = false;
    }
    return reactor->start_result;
}

const char *reactor_backend_name(const struct reactor *reactor) {
    INTAKE_ASSERT(reactor != NULL);
    return reactor->backend ? reactor->backend->ops->name : "none";
}

const struct rx_backend_type *reactor_backend_type(const struct reactor *reactor) {
    INTAKE_ASSERT(reactor->backend != NULL);
    return rx_backend_type_of(reactor->backend);
}

uint32_t reactor_tls_frame_bytes_max(const struct reactor *reactor) {
    INTAKE_ASSERT(reactor->backend != NULL);
    return reactor->tls_frame_bytes_max;
}

uint32_t reactor_frame_bytes_max(const struct reactor *reactor) {
    INTAKE_ASSERT(reactor->backend != NULL); /* known once the thread set its backend up */
    INTAKE_ASSERT(reactor->frame_bytes_max > 0);
    return reactor->frame_bytes_max;
}

int reactor_listen_fd(const struct reactor *reactor, bool tls) {
    return reactor->listen_fds[tls ? REACTOR_LISTENER_TLS : REACTOR_LISTENER_PLAIN];
}

const char *reactor_fallback_lines(const struct reactor *reactor) {
    INTAKE_ASSERT(reactor->backend != NULL);
    return reactor->fallback_lines;
}

void reactor_request_report(struct reactor *reactor) {
    INTAKE_ASSERT(reactor->links.doorbell != NULL);
    atomic_store(&reactor->report_requested, true);
    doorbell_ring_always(reactor->links.doorbell);
}

void reactor_join(struct reactor *reactor) {
    INTAKE_ASSERT(atomic_load(reactor->links.stopping));
    if (!reactor->thread_started) return;
    doorbell_ring_always(reactor->links.doorbell);
    pthread_join(reactor->thread, NULL);
    reactor->thread_started = false;
}

bool reactor_try_join(struct reactor *reactor, uint32_t timeout_ms) {
    if (!reactor->thread_started) return true;
    doorbell_ring_always(reactor->links.doorbell);
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_nsec += (long)timeout_ms * 1000000L;
    deadline.tv_sec += deadline.tv_nsec / 1000000000L;
    deadline.tv_nsec %= 1000000000L;
    if (pthread_timedjoin_np(reactor->thread, NULL, &deadline) != 0) return false;
    reactor->thread_started = false;
    return true;
}

void reactor_destroy(struct reactor *reactor) {
    if (reactor == NULL) return;
    INTAKE_ASSERT(!reactor->thread_started);
    if (reactor->backend != NULL)
        reactor->backend->ops->destroy(reactor->backend,
                                       reactor->ring_ready ? &reactor->ring : NULL);
    if (reactor->ring_ready) io_uring_queue_exit(&reactor->ring);
    for (uint32_t listener = 0; listener < REACTOR_LISTENERS; listener++)
        if (reactor->listen_fds[listener] >= 0) close(reactor->listen_fds[listener]);
    if (reactor->tls_states != NULL) munmap(reactor->tls_states, reactor->tls_states_bytes);
    if (reactor->handshake_slots != NULL)
        munmap(reactor->handshake_slots, reactor->handshake_slots_bytes);
    free(reactor->handshake_free);
    if (reactor->window_sequences != NULL)
        munmap(reactor->window_sequences, reactor->window_region_bytes);
    record_pool_destroy(&reactor->pool);
    free(reactor->connections);
    free(reactor->free_slots);
    free(reactor->retry_list);
    free(reactor->ack_list);
    free(reactor->units_wait_list);
    free(reactor->advance_list);
    free(reactor->workers_to_wake);
    free(reactor->backlog_nodes);
    sem_destroy(&reactor->started);
    free(reactor);
}

/* The TLS line: handshakes by outcome, records, key updates, and the last failure's reason. */
static void reactor_print_tls_counters(const struct reactor *reactor, FILE *out) {
    const struct reactor_counters *c = &reactor->counters;
    fprintf(out, "intaked: reactor %u tls: handshakes ok=%" PRIu64, reactor->index,
            c->tls_handshakes_ok);
    for (uint32_t failure = 0; failure < HANDSHAKE_FAILURES; failure++)
        fprintf(out, " failed_%s=%" PRIu64, handshake_failure_name((enum handshake_failure)failure),
                c->tls_handshakes_failed[failure]);
    fprintf(out,
            " refused=%" PRIu64 " in_progress=%u records_decrypted=%" PRIu64
            " auth_failures=%" PRIu64 " record_errors=%" PRIu64 " key_updates_received=%" PRIu64
            " key_updates_sent=%" PRIu64 " alerts_received=%" PRIu64 "\n",
            c->tls_handshakes_refused,
            reactor->links.handshakes_max - reactor->handshake_free_count, c->tls_records_decrypted,
            c->tls_auth_failures, c->tls_record_errors, c->tls_key_updates_received,
            c->tls_key_updates_sent, c->tls_alerts_received);
    if (reactor->tls_last_failure[0] != '\0')
        fprintf(out, "intaked: reactor %u tls: last handshake failure: %s\n", reactor->index,
                reactor->tls_last_failure);
}

void reactor_print_counters(struct reactor *reactor, FILE *out, const char *when) {
    INTAKE_ASSERT(reactor->backend != NULL);
    INTAKE_ASSERT(out != NULL && when != NULL);
    const struct reactor_counters *c = &reactor->counters;
    const struct rx_backend_stats *b = &reactor->backend->stats;
    fprintf(
        out,
        "intaked: reactor %u (%s) %s: connections accepted=%" PRIu64 " refused=%" PRIu64
        " closed=%" PRIu64 " failed=%" PRIu64 " records admitted=%" PRIu64 " returned=%" PRIu64
        " failed=%" PRIu64 " truncated_frames=%" PRIu64 " acks=%" PRIu64
        " pauses topic_queue=%" PRIu64 " record_pool=%" PRIu64 " ack_window=%" PRIu64
        " out_of_units=%" PRIu64 " topic_log=%" PRIu64 " over_log_limit=%" PRIu64
        " topic_creations_refused=%" PRIu64 " backlog_exhausted=%" PRIu64 " stalls_broken=%" PRIu64
        " lingered=%" PRIu64 " wakeups=%" PRIu64 " submit_busy=%" PRIu64
        " socket_option_errors=%" PRIu64 " deadline_kills frame=%" PRIu64 " idle=%" PRIu64
        " accept_errors=%" PRIu64 " accept_pauses=%" PRIu64 " partial_cap_pauses=%" PRIu64
        " partial_evictions=%" PRIu64 "\n",
        reactor->index, reactor_backend_name(reactor), when, c->connections_accepted,
        c->connections_refused, c->connections_closed, c->connections_failed, c->records_admitted,
        c->records_returned, c->records_failed, c->frames_truncated, c->acks_sent,
        c->pauses_topic_queue, c->pauses_record_pool, c->pauses_ack_window, c->pauses_out_of_units,
        c->pauses_topic_log, c->records_over_log_limit, c->topic_creations_refused,
        c->backlog_exhausted, c->stalls_broken, c->lingered, c->wakeups, c->submit_busy,
        c->socket_option_errors, c->deadline_kills_frame, c->deadline_kills_idle, c->accept_errors,
        c->accept_pauses, c->partial_cap_pauses, c->partial_evictions);
    fprintf(out,
            "intaked: reactor %u backend %s: bytes_received=%" PRIu64 " completions=%" PRIu64
            " units_recycled=%" PRIu64 " rearms out_of_units=%" PRIu64 " overflow=%" PRIu64
            " other=%" PRIu64 " refill_flushes=%" PRIu64 " units_in_use=%u\n",
            reactor->index, reactor_backend_name(reactor), b->bytes_received, b->completions,
            b->units_recycled, b->rearms_out_of_units, b->rearms_overflow, b->rearms_other,
            b->refill_flushes,
            reactor->backend->units_referenced - reactor->backend->units_held_by_kernel);
    fprintf(out,
            "intaked: reactor %u identity: hellos_answered=%" PRIu64 " identity_rejections=%" PRIu64
            "\n",
            reactor->index, c->hellos_answered, c->identity_rejections);
    if (reactor->tls_states != NULL) reactor_print_tls_counters(reactor, out);
    fflush(out);
}

_Static_assert(HANDSHAKE_FAILURES == INTAKE_COUNTERS_HANDSHAKE_FAILURES,
               "the counters region has a slot per handshake failure reason");

static void reactor_publish_tls_counters(const struct reactor *reactor,
                                         struct intake_counters_reactor_row *row) {
    const struct reactor_counters *c = &reactor->counters;
    counter_set(&row->tls_handshakes_ok, c->tls_handshakes_ok);
    for (uint32_t failure = 0; failure < HANDSHAKE_FAILURES; failure++)
        counter_set(&row->tls_handshakes_failed[failure], c->tls_handshakes_failed[failure]);
    counter_set(&row->tls_handshakes_refused, c->tls_handshakes_refused);
    counter_set(&row->tls_handshakes_in_progress,
                reactor->links.handshakes_max - reactor->handshake_free_count);
    counter_set(&row->tls_records_decrypted, c->tls_records_decrypted);
    counter_set(&row->tls_auth_failures, c->tls_auth_failures);
    counter_set(&row->tls_record_errors, c->tls_record_errors);
    counter_set(&row->tls_key_updates_received, c->tls_key_updates_received);
    counter_set(&row->tls_key_updates_sent, c->tls_key_updates_sent);
    counter_set(&row->tls_alerts_received, c->tls_alerts_received);
}

void reactor_publish_counters(struct reactor *reactor) {
    const struct reactor_counters *c = &reactor->counters;
    const struct rx_backend_stats *b = &reactor->backend->stats;
    struct intake_counters_reactor_row *row = reactor->links.counters_row;
    INTAKE_ASSERT(row != NULL);
    counter_set(&row->heartbeat_ns, intake_now_ns());
    counter_set(&row->connections_open, reactor->open_connections);
    counter_set(&row->connections_accepted, c->connections_accepted);
    counter_set(&row->connections_refused, c->connections_refused);
    counter_set(&row->connections_closed, c->connections_closed);
    counter_set(&row->connections_failed, c->connections_failed);
    counter_set(&row->connections_lingered, c->lingered);
    counter_set(&row->stalls_broken, c->stalls_broken);
    counter_set(&row->records_admitted, c->records_admitted);
    counter_set(&row->records_returned, c->records_returned);
    counter_set(&row->records_failed, c->records_failed);
    counter_set(&row->frames_truncated, c->frames_truncated);
    counter_set(&row->acks_sent, c->acks_sent);
    counter_set(&row->backlog_exhausted, c->backlog_exhausted);
    counter_set(&row->wakeups, c->wakeups);
    counter_set(&row->submit_busy, c->submit_busy);
    counter_set(&row->socket_option_errors, c->socket_option_errors);
    counter_set(&row->deadline_kills, c->deadline_kills_frame + c->deadline_kills_idle);
    counter_set(&row->deadline_kills_frame, c->deadline_kills_frame);
    counter_set(&row->deadline_kills_idle, c->deadline_kills_idle);
    counter_set(&row->accept_errors, c->accept_errors);
    counter_set(&row->accept_pauses, c->accept_pauses);
    counter_set(&row->partial_cap_pauses, c->partial_cap_pauses);
    counter_set(&row->partial_evictions, c->partial_evictions);
    counter_set(&row->hellos_answered, c->hellos_answered);
    counter_set(&row->identity_rejections, c->identity_rejections);
    counter_set(&row->pauses_topic_queue, c->pauses_topic_queue);
    counter_set(&row->pauses_record_pool, c->pauses_record_pool);
    counter_set(&row->pauses_ack_window, c->pauses_ack_window);
    counter_set(&row->pauses_out_of_units, c->pauses_out_of_units);
    counter_set(&row->pauses_topic_log, c->pauses_topic_log);
    counter_set(&row->records_over_log_limit, c->records_over_log_limit);
    counter_set(&row->topic_creations_refused, c->topic_creations_refused);
    counter_set(&row->backend_bytes_received, b->bytes_received);
    counter_set(&row->backend_completions, b->completions);
    counter_set(&row->backend_units_recycled, b->units_recycled);
    counter_set(&row->backend_rearms_out_of_units, b->rearms_out_of_units);
    counter_set(&row->backend_rearms_overflow, b->rearms_overflow);
    counter_set(&row->backend_rearms_other, b->rearms_other);
    counter_set(&row->backend_refill_flushes, b->refill_flushes);
    counter_set(&row->backend_units_in_use,
                reactor->backend->units_referenced - reactor->backend->units_held_by_kernel);
    for (uint32_t status = 0; status < INTAKE_ARRAY_LENGTH(c->connections_ended); status++)
        counter_set(&row->connections_ended[status], c->connections_ended[status]);
    if (reactor->tls_states != NULL) reactor_publish_tls_counters(reactor, row);
}

bool reactor_all_units_returned(const struct reactor *reactor) {
    INTAKE_ASSERT(!reactor->thread_started);
    return reactor->backend->units_referenced == reactor->backend->units_held_by_kernel &&
           reactor->pool.free_count == reactor->pool.capacity;
}

uint64_t reactor_bytes_received(const struct reactor *reactor) {
    INTAKE_ASSERT(reactor->backend != NULL);
    return reactor->backend->stats.bytes_received;
}
