/*
 * counters_view.c: validates, reads and renders intaked's counters region (see counters_view.h).
 * Runs in intake-stat and in the daemon's metrics thread; never on a reactor or worker.
 */
#include "counters_view.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "intake/shm_log_format.h"

/* Sanity bounds for counts read from a file another process wrote. */
#define VIEW_REACTORS_MAX 4096u
#define VIEW_WORKERS_MAX  4096u
#define VIEW_TOPICS_MAX   (1u << 20)

static const char *const end_status_names[5] = {"ok", "rejected", "resource_exhausted",
                                                "shutting_down", "internal"};

static const char *state_name(uint32_t state) {
    switch (state) {
    case INTAKE_COUNTERS_STATE_STARTING: return "starting";
    case INTAKE_COUNTERS_STATE_RUNNING: return "running";
    case INTAKE_COUNTERS_STATE_STOPPING: return "stopping";
    case INTAKE_COUNTERS_STATE_STOPPED: return "stopped";
    }
    return "unknown";
}

static bool header_is_valid(const struct intake_counters_header *header, size_t file_bytes,
                            char *why, size_t why_capacity) {
    if (header->magic != INTAKE_COUNTERS_MAGIC) {
        intake_error_line(why, why_capacity, "not an intake counters file (bad magic)");
        return false;
    }
    if (header->version != INTAKE_COUNTERS_VERSION) {
        intake_error_line(why, why_capacity, "counters format version %u, this reader knows %u",
                          header->version, INTAKE_COUNTERS_VERSION);
        return false;
    }
    if (header->reactor_count == 0 || header->reactor_count > VIEW_REACTORS_MAX ||
        header->worker_count == 0 || header->worker_count > VIEW_WORKERS_MAX ||
        header->topics_max == 0 || header->topics_max > VIEW_TOPICS_MAX) {
        intake_error_line(why, why_capacity, "counters header has implausible counts");
        return false;
    }
    /* Every offset must be the one the format defines for these counts. */
    struct intake_counters_header expected;
    memset(&expected, 0, sizeof(expected));
    if (header->principal_row_count != 0 &&
        header->principal_row_count != INTAKE_COUNTERS_PRINCIPAL_ROWS) {
        intake_error_line(why, why_capacity, "counters header has implausible counts");
        return false;
    }
    intake_counters_layout(header->reactor_count, header->worker_count, header->topics_max,
                           header->principal_row_count, &expected);
    if (header->header_bytes != expected.header_bytes ||
        header->reactor_rows_offset != expected.reactor_rows_offset ||
        header->worker_rows_offset != expected.worker_rows_offset ||
        header->topic_rows_offset != expected.topic_rows_offset ||
        header->received_cells_offset != expected.received_cells_offset ||
        header->received_block_bytes != expected.received_block_bytes ||
        header->principal_rows_offset != expected.principal_rows_offset ||
        header->principal_cells_offset != expected.principal_cells_offset ||
        header->principal_block_bytes != expected.principal_block_bytes ||
        header->principal_row_count != expected.principal_row_count ||
        header->principal_row_bytes != expected.principal_row_bytes ||
        header->principal_cell_bytes != expected.principal_cell_bytes ||
        header->reactor_row_bytes != expected.reactor_row_bytes ||
        header->worker_row_bytes != expected.worker_row_bytes ||
        header->topic_row_bytes != expected.topic_row_bytes ||
        header->total_bytes != expected.total_bytes || header->total_bytes > file_bytes) {
        intake_error_line(why, why_capacity, "counters header layout does not match its counts");
        return false;
    }
    return true;
}

int counters_view_open(const char *path, struct counters_view *view, char *why,
                       size_t why_capacity) {
    memset(view, 0, sizeof(*view));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int error = errno;
        intake_error_line(why, why_capacity, "%s: %s", path, strerror(error));
        return -error;
    }
    struct stat info;
    if (fstat(fd, &info) != 0 || (size_t)info.st_size < INTAKE_COUNTERS_HEADER_BYTES) {
        close(fd);
        intake_error_line(why, why_capacity, "%s: too small for a counters file", path);
        return -EINVAL;
    }
    void *mapping = mmap(NULL, (size_t)info.st_size, PROT_READ, MAP_SHARED, fd, 0);
    int error = errno;
    close(fd);
    if (mapping == MAP_FAILED) {
        intake_error_line(why, why_capacity, "%s: mmap: %s", path, strerror(error));
        return -error;
    }
    char reason[160];
    if (!header_is_valid(mapping, (size_t)info.st_size, reason, sizeof(reason))) {
        munmap(mapping, (size_t)info.st_size);
        intake_error_line(why, why_capacity, "%s: %s", path, reason);
        return -EINVAL;
    }
    view->base = mapping;
    view->bytes = (size_t)info.st_size;
    view->header = mapping;
    return 0;
}

void counters_view_close(struct counters_view *view) {
    if (view->base != NULL) munmap((void *)view->base, view->bytes);
    memset(view, 0, sizeof(*view));
}

const struct intake_counters_reactor_row *counters_view_reactor(const struct counters_view *view,
                                                                uint32_t reactor) {
    INTAKE_ASSERT(reactor < view->header->reactor_count);
    return (const struct intake_counters_reactor_row *)(view->base +
                                                        view->header->reactor_rows_offset) +
           reactor;
}

const struct intake_counters_worker_row *counters_view_worker(const struct counters_view *view,
                                                              uint32_t worker) {
    INTAKE_ASSERT(worker < view->header->worker_count);
    return (const struct intake_counters_worker_row *)(view->base +
                                                       view->header->worker_rows_offset) +
           worker;
}

const struct intake_counters_topic_row *counters_view_topic(const struct counters_view *view,
                                                            uint32_t topic_id) {
    INTAKE_ASSERT(topic_id < view->header->topics_max);
    return (const struct intake_counters_topic_row *)(view->base +
                                                      view->header->topic_rows_offset) +
           topic_id;
}

const struct intake_counters_received_cell *counters_view_received(const struct counters_view *view,
                                                                   uint32_t reactor) {
    INTAKE_ASSERT(reactor < view->header->reactor_count);
    return (const struct intake_counters_received_cell *)(view->base +
                                                          view->header->received_cells_offset +
                                                          reactor *
                                                              view->header->received_block_bytes);
}

static uint64_t load(const _Atomic uint64_t *counter) {
    return atomic_load_explicit((_Atomic uint64_t *)counter, memory_order_relaxed);
}

/* ---------------------------------------------------------------------- principals --- */

/* Attempts at reading a principal row the main thread keeps rewriting (it rewrites one only on
 * a reload, so one retry is already rare). */
#define VIEW_PRINCIPAL_ATTEMPTS 64

static uint32_t load32(const _Atomic uint32_t *value, memory_order order) {
    return atomic_load_explicit((_Atomic uint32_t *)value, order);
}

bool counters_view_acl(const struct counters_view *view, uint64_t *generation,
                       uint64_t *reload_failures) {
    const struct intake_counters_header *header = view->header;
    *generation = load(&header->acl_generation);
    *reload_failures = load(&header->acl_reload_failures);
    return load32(&header->acl_enabled, memory_order_relaxed) == 1;
}

static const struct intake_counters_principal_row *
counters_view_principal_row(const struct counters_view *view, uint32_t row) {
    INTAKE_ASSERT(row < view->header->principal_row_count);
    return (const struct intake_counters_principal_row *)(view->base +
                                                          view->header->principal_rows_offset) +
           row;
}

static uint64_t load_acquire(const _Atomic uint64_t *value) {
    return atomic_load_explicit((_Atomic uint64_t *)value, memory_order_acquire);
}

/* The row's fields under its sequence lock; false when it was never used or never held still.
 * Every field, and every byte of the name, is acquire-loaded: one written after the writer made
 * the sequence odd (all its stores then are release stores) makes the odd sequence visible to
 * the second look, so a torn copy is never taken (no fence: ThreadSanitizer does not model
 * them). */
static bool principal_copy(const struct intake_counters_principal_row *row,
                           struct counters_view_principal *out,
                           struct intake_counters_principal_cell *base) {
    for (int attempt = 0; attempt < VIEW_PRINCIPAL_ATTEMPTS; attempt++) {
        /* Acquire: pairs with the writer's release store of the even sequence. */
        uint32_t before = load32(&row->sequence, memory_order_acquire);
        if (before % 2 != 0) continue;
        uint32_t length = load32(&row->name_length, memory_order_acquire);
        if (length == 0) return false;
        if (length >= sizeof(out->name)) return false; /* not what intaked writes: input */
        for (uint32_t index = 0; index < length; index++)
            out->name[index] =
                atomic_load_explicit((_Atomic char *)&row->name[index], memory_order_acquire);
        out->name[length] = '\0';
        out->in_force = load32(&row->in_force, memory_order_acquire) == 1;
        out->quota_records_per_second = load_acquire(&row->quota_records_per_second);
        out->quota_bytes_per_second = load_acquire(&row->quota_bytes_per_second);
        atomic_init(&base->records_admitted, load_acquire(&row->base_records_admitted));
        atomic_init(&base->bytes_admitted, load_acquire(&row->base_bytes_admitted));
        atomic_init(&base->records_denied, load_acquire(&row->base_records_denied));
        atomic_init(&base->throttled_ns, load_acquire(&row->base_throttled_ns));
        atomic_init(&base->quota_pauses, load_acquire(&row->base_quota_pauses));
        if (load32(&row->sequence, memory_order_relaxed) == before)
            return strlen(out->name) == length;
    }
    return false;
}

/* The sum over reactors minus the baseline (a row's counters only grow from it). */
static uint64_t principal_total(const struct counters_view *view, uint32_t row, size_t offset,
                                const struct intake_counters_principal_cell *base) {
    uint64_t sum = 0;
    for (uint32_t reactor = 0; reactor < view->header->reactor_count; reactor++) {
        const uint8_t *cells = view->base + view->header->principal_cells_offset +
                               reactor * view->header->principal_block_bytes;
        const uint8_t *cell = cells + (size_t)row * INTAKE_COUNTERS_PRINCIPAL_CELL_BYTES;
        sum += load((const _Atomic uint64_t *)(cell + offset));
    }
    uint64_t floor = load((const _Atomic uint64_t *)((const uint8_t *)base + offset));
    return sum > floor ? sum - floor : 0;
}

bool counters_view_principal(const struct counters_view *view, uint32_t row,
                             struct counters_view_principal *out) {
    struct intake_counters_principal_cell base;
    if (!principal_copy(counters_view_principal_row(view, row), out, &base)) return false;
#define PRINCIPAL_TOTAL(field)                                                                     \
    principal_total(view, row, offsetof(struct intake_counters_principal_cell, field), &base)
    out->records_admitted = PRINCIPAL_TOTAL(records_admitted);
    out->bytes_admitted = PRINCIPAL_TOTAL(bytes_admitted);
    out->records_denied = PRINCIPAL_TOTAL(records_denied);
    out->throttled_ns = PRINCIPAL_TOTAL(throttled_ns);
    out->quota_pauses = PRINCIPAL_TOTAL(quota_pauses);
#undef PRINCIPAL_TOTAL
    return true;
}

bool counters_view_principal_named(const struct counters_view *view, const char *name,
                                   struct counters_view_principal *out) {
    for (uint32_t row = 0; row < view->header->principal_row_count; row++)
        if (counters_view_principal(view, row, out) && out->in_force &&
            strcmp(out->name, name) == 0)
            return true;
    return false;
}

/* ---------------------------------------------------------------------- health --- */

/* The oldest heartbeat among reactors and workers, as an age at now_ns; names the thread. */
static uint64_t oldest_heartbeat_age(const struct counters_view *view, uint64_t now_ns,
                                     char *thread, size_t capacity) {
    uint64_t oldest = 0;
    snprintf(thread, capacity, "none");
    for (uint32_t reactor = 0; reactor < view->header->reactor_count; reactor++) {
        uint64_t beat = load(&counters_view_reactor(view, reactor)->heartbeat_ns);
        uint64_t age = beat == 0 ? UINT64_MAX : (now_ns > beat ? now_ns - beat : 0);
        if (age >= oldest) {
            oldest = age;
            snprintf(thread, capacity, "reactor %u", reactor);
        }
    }
    for (uint32_t worker = 0; worker < view->header->worker_count; worker++) {
        uint64_t beat = load(&counters_view_worker(view, worker)->heartbeat_ns);
        uint64_t age = beat == 0 ? UINT64_MAX : (now_ns > beat ? now_ns - beat : 0);
        if (age >= oldest) {
            oldest = age;
            snprintf(thread, capacity, "worker %u", worker);
        }
    }
    return oldest;
}

static bool heartbeats_within(const struct counters_view *view, uint64_t now_ns, uint64_t limit_ns,
                              char *why, size_t why_capacity) {
    char thread[32];
    uint64_t age = oldest_heartbeat_age(view, now_ns, thread, sizeof(thread));
    if (age <= limit_ns) return true;
    if (age == UINT64_MAX)
        intake_error_line(why, why_capacity, "%s has not started", thread);
    else
        intake_error_line(why, why_capacity, "%s last heartbeat %.1f s ago", thread,
                          (double)age / 1e9);
    return false;
}

bool counters_view_live(const struct counters_view *view, uint64_t now_ns, uint64_t live_ns,
                        char *why, size_t why_capacity) {
    why[0] = '\0';
    uint32_t state =
        atomic_load_explicit((_Atomic uint32_t *)&view->header->state, memory_order_acquire);
    if (state == INTAKE_COUNTERS_STATE_STOPPED) {
        intake_error_line(why, why_capacity, "stopped");
        return false;
    }
    /* While starting, threads have not beaten yet: alive. */
    if (state == INTAKE_COUNTERS_STATE_STARTING) return true;
    return heartbeats_within(view, now_ns, live_ns, why, why_capacity);
}

bool counters_view_ready(const struct counters_view *view, uint64_t now_ns, uint64_t ready_ns,
                         char *why, size_t why_capacity) {
    why[0] = '\0';
    uint32_t state =
        atomic_load_explicit((_Atomic uint32_t *)&view->header->state, memory_order_acquire);
    if (state != INTAKE_COUNTERS_STATE_RUNNING) {
        intake_error_line(why, why_capacity, "state %s", state_name(state));
        return false;
    }
    if (atomic_load_explicit((_Atomic uint32_t *)&view->header->listening, memory_order_relaxed) !=
        1) {
        intake_error_line(why, why_capacity, "not listening");
        return false;
    }
    return heartbeats_within(view, now_ns, ready_ns, why, why_capacity);
}

/* ---------------------------------------------------------------------- text --- */

void text_buffer_printf(struct text_buffer *buffer, const char *format, ...) {
    if (buffer->truncated) return;
    size_t room = buffer->capacity - buffer->length;
    va_list arguments;
    va_start(arguments, format);
    int written = vsnprintf(buffer->data + buffer->length, room, format, arguments);
    va_end(arguments);
    if (written < 0 || (size_t)written >= room) {
        buffer->truncated = true;
        buffer->data[buffer->length] = '\0';
        return;
    }
    buffer->length += (size_t)written;
}

/* A label value in the exposition format: backslash, double quote and newline escaped. */
static void append_label_value(struct text_buffer *out, const char *value) {
    for (const char *cursor = value; *cursor != '\0'; cursor++) {
        if (*cursor == '\\')
            text_buffer_printf(out, "\\\\");
        else if (*cursor == '"')
            text_buffer_printf(out, "\\\"");
        else if (*cursor == '\n')
            text_buffer_printf(out, "\\n");
        else
            text_buffer_printf(out, "%c", *cursor);
    }
}

/* A topic row's name, copied out bounded; false when the row is unused or its length is bad. */
static bool topic_name(const struct intake_counters_topic_row *row, char *name) {
    uint32_t length =
        atomic_load_explicit((_Atomic uint32_t *)&row->name_length, memory_order_acquire);
    if (length == 0 || length >= INTAKE_COUNTERS_TOPIC_NAME_BYTES) return false;
    memcpy(name, row->name, length);
    name[length] = '\0';
    return strlen(name) == length;
}

/* A topic's log header and consumer region, both mapped read-only (this reader never writes
 * either); false when either cannot be read or does not check out. The mappings are only of
 * the fixed-size header and region, so a file truncated meanwhile cannot fault us beyond the
 * first check: sizes are checked before mapping. */
struct log_peek {
    const struct shm_log_header *header;
    const struct shm_log_consumers *consumers;
};

static const void *log_peek_map(const char *directory, const char *file_name, size_t bytes) {
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/%s", directory, file_name) >= (int)sizeof(path))
        return NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    struct stat info;
    bool ok = fstat(fd, &info) == 0 && (size_t)info.st_size >= bytes;
    void *mapping = ok ? mmap(NULL, bytes, PROT_READ, MAP_SHARED, fd, 0) : MAP_FAILED;
    close(fd);
    return mapping == MAP_FAILED ? NULL : mapping;
}

static void log_peek_close(struct log_peek *peek) {
    if (peek->header != NULL) munmap((void *)peek->header, SHM_LOG_HEADER_BYTES);
    if (peek->consumers != NULL) munmap((void *)peek->consumers, SHM_LOG_CONSUMERS_FILE_BYTES);
    peek->header = NULL;
    peek->consumers = NULL;
}

static bool log_peek_open(const char *directory, const char *topic, struct log_peek *peek) {
    char file_name[SHM_LOG_FILE_NAME_BYTES];
    shm_log_file_name(topic, file_name);
    peek->header = log_peek_map(directory, file_name, SHM_LOG_HEADER_BYTES);
    shm_log_consumers_file_name(topic, file_name);
    peek->consumers = log_peek_map(directory, file_name, SHM_LOG_CONSUMERS_FILE_BYTES);
    bool valid = peek->header != NULL && peek->consumers != NULL &&
                 peek->header->magic == SHM_LOG_MAGIC && peek->header->version == SHM_LOG_VERSION &&
                 peek->consumers->magic == SHM_LOG_CONSUMERS_MAGIC &&
                 peek->consumers->version == SHM_LOG_VERSION &&
                 peek->consumers->slot_count == SHM_LOG_CONSUMER_SLOTS;
    if (!valid) log_peek_close(peek);
    return valid;
}

static const char *slot_state_name(uint32_t state) {
    switch (state) {
    case SHM_LOG_SLOT_ACTIVE: return "active";
    case SHM_LOG_SLOT_DETACHED: return "detached";
    }
    return NULL;
}

/* A consumer slot worth showing: named, and active or detached. */
struct consumer_lag {
    char name[SHM_LOG_CONSUMER_NAME_BYTES];
    const char *state;
    uint64_t lag_bytes;   /* commit_position - read_position */
    uint64_t lag_records; /* commit_offset - committed_offset */
    bool records_known;   /* the consumer has committed at least once */
};

static bool consumer_lag_of(const struct log_peek *peek, uint32_t slot_index,
                            struct consumer_lag *lag) {
    INTAKE_ASSERT(slot_index < SHM_LOG_CONSUMER_SLOTS);
    const struct shm_log_consumer_slot *slot = &peek->consumers->slots[slot_index];
    uint32_t state = atomic_load_explicit((_Atomic uint32_t *)&slot->state, memory_order_acquire);
    lag->state = slot_state_name(state);
    if (lag->state == NULL) return false;
    /* Consumers write their slots: the name is input, copied bounded and terminated. */
    memcpy(lag->name, slot->name, sizeof(lag->name));
    lag->name[sizeof(lag->name) - 1] = '\0';
    uint64_t commit = load(&peek->header->commit_position);
    uint64_t commit_offset = load(&peek->header->commit_offset);
    uint64_t read = load(&slot->read_position);
    uint64_t committed_offset = load(&slot->committed_offset);
    lag->lag_bytes = commit > read ? commit - read : 0;
    lag->records_known = committed_offset != SHM_LOG_OFFSET_NONE;
    lag->lag_records = lag->records_known && commit_offset > committed_offset
                           ? commit_offset - committed_offset
                           : 0;
    return true;
}

/* ---------------------------------------------------------------------- prometheus --- */

static void family(struct text_buffer *out, const char *name, const char *type, const char *help) {
    text_buffer_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One per-reactor counter family: `offset` of the field in the reactor row. */
struct reactor_family {
    const char *name;
    const char *type;
    const char *help;
    size_t offset;
};

#define REACTOR_FIELD(field) offsetof(struct intake_counters_reactor_row, field)
static const struct reactor_family reactor_families[] = {
    {"intake_connections_open", "gauge", "Connections open now.", REACTOR_FIELD(connections_open)},
    {"intake_connections_accepted_total", "counter", "Connections accepted.",
     REACTOR_FIELD(connections_accepted)},
    {"intake_connections_refused_total", "counter",
     "Connections refused because every slot was taken (--connections-max).",
     REACTOR_FIELD(connections_refused)},
    {"intake_connections_closed_total", "counter", "Connections ended, for any reason.",
     REACTOR_FIELD(connections_closed)},
    {"intake_connections_lingered_total", "counter",
     "Closes that waited for the producer after a final non-OK Ack.",
     REACTOR_FIELD(connections_lingered)},
    {"intake_stalls_broken_total", "counter",
     "Connections ended to free receive buffers pinned by partially received records.",
     REACTOR_FIELD(stalls_broken)},
    {"intake_deadline_kills_total", "counter",
     "Connections ended by a deadline (idle or too slow producers).",
     REACTOR_FIELD(deadline_kills)},
    {"intake_deadline_kills_frame_total", "counter",
     "Connections ended because a record was not complete within --frame-timeout-ms.",
     REACTOR_FIELD(deadline_kills_frame)},
    {"intake_deadline_kills_idle_total", "counter",
     "Connections ended after --idle-timeout-ms of silence.", REACTOR_FIELD(deadline_kills_idle)},
    {"intake_records_over_log_limit_total", "counter",
     "Records refused because they are larger than their topic's log takes.",
     REACTOR_FIELD(records_over_log_limit)},
    {"intake_topic_creations_refused_total", "counter",
     "Connections ended for creating more topics than --topics-per-connection.",
     REACTOR_FIELD(topic_creations_refused)},
    {"intake_accept_errors_total", "counter", "Accept completions with an error.",
     REACTOR_FIELD(accept_errors)},
    {"intake_accept_pauses_total", "counter",
     "Accepting paused for a moment after EMFILE, ENFILE, ENOBUFS or ENOMEM.",
     REACTOR_FIELD(accept_pauses)},
    {"intake_partial_cap_pauses_total", "counter",
     "Frames that waited because partial records reached their share of the record pool.",
     REACTOR_FIELD(partial_cap_pauses)},
    {"intake_partial_evictions_total", "counter",
     "Connections ended to free record-pool entries held by partial records.",
     REACTOR_FIELD(partial_evictions)},
    {"intake_hellos_answered_total", "counter",
     "Hello frames answered with the producer's acknowledged sequence.",
     REACTOR_FIELD(hellos_answered)},
    {"intake_identity_rejections_total", "counter",
     "Connections rejected for a misplaced Hello or a producer_id that differs on a connection.",
     REACTOR_FIELD(identity_rejections)},
    {"intake_reactor_records_admitted_total", "counter",
     "Records framed, checked and queued to their topic.", REACTOR_FIELD(records_admitted)},
    {"intake_reactor_records_returned_total", "counter", "Records back from the workers.",
     REACTOR_FIELD(records_returned)},
    {"intake_reactor_records_failed_total", "counter",
     "Records back from the workers not committed.", REACTOR_FIELD(records_failed)},
    {"intake_frames_truncated_total", "counter",
     "Connections that ended with a partial record pending.", REACTOR_FIELD(frames_truncated)},
    {"intake_acks_sent_total", "counter", "Ack frames sent.", REACTOR_FIELD(acks_sent)},
    {"intake_backlog_exhausted_total", "counter", "Times the receive backlog nodes ran out.",
     REACTOR_FIELD(backlog_exhausted)},
    {"intake_reactor_wakeups_total", "counter", "Reactor wake-ups by workers.",
     REACTOR_FIELD(wakeups)},
    {"intake_reactor_submit_busy_total", "counter",
     "io_uring_enter answered EBUSY, EAGAIN or EINTR (reaped and retried).",
     REACTOR_FIELD(submit_busy)},
    {"intake_reactor_socket_option_errors_total", "counter",
     "setsockopt or shutdown failed on a connection.", REACTOR_FIELD(socket_option_errors)},
    {"intake_backend_bytes_received_total", "counter", "Bytes received by the receive backend.",
     REACTOR_FIELD(backend_bytes_received)},
    {"intake_backend_completions_total", "counter", "Receive completions with data.",
     REACTOR_FIELD(backend_completions)},
    {"intake_backend_units_recycled_total", "counter",
     "Receive units given back to the kernel (buffers re-added, refill entries posted).",
     REACTOR_FIELD(backend_units_recycled)},
    {"intake_backend_refill_flushes_total", "counter", "zcrx device-less refill flushes.",
     REACTOR_FIELD(backend_refill_flushes)},
    {"intake_backend_units_in_use", "gauge", "Receive units held by intake now.",
     REACTOR_FIELD(backend_units_in_use)},
};

static uint64_t reactor_field(const struct intake_counters_reactor_row *row, size_t offset) {
    return load((const _Atomic uint64_t *)((const uint8_t *)row + offset));
}

static void render_reactors(const struct counters_view *view, uint64_t now_ns,
                            struct text_buffer *out) {
    const struct intake_counters_header *header = view->header;
    family(out, "intake_thread_heartbeat_age_seconds", "gauge",
           "Seconds since the thread's loop last stored its heartbeat (idle threads beat every "
           "second).");
    for (uint32_t reactor = 0; reactor < header->reactor_count; reactor++) {
        uint64_t beat = load(&counters_view_reactor(view, reactor)->heartbeat_ns);
        double age = beat == 0 || beat > now_ns ? 0.0 : (double)(now_ns - beat) / 1e9;
        text_buffer_printf(out, "intake_thread_heartbeat_age_seconds{thread=\"reactor-%u\"} %.3f\n",
                           reactor, age);
    }
    for (uint32_t worker = 0; worker < header->worker_count; worker++) {
        uint64_t beat = load(&counters_view_worker(view, worker)->heartbeat_ns);
        double age = beat == 0 || beat > now_ns ? 0.0 : (double)(now_ns - beat) / 1e9;
        text_buffer_printf(out, "intake_thread_heartbeat_age_seconds{thread=\"worker-%u\"} %.3f\n",
                           worker, age);
    }
    for (size_t index = 0; index < INTAKE_ARRAY_LENGTH(reactor_families); index++) {
        const struct reactor_family *entry = &reactor_families[index];
        family(out, entry->name, entry->type, entry->help);
        for (uint32_t reactor = 0; reactor < header->reactor_count; reactor++)
            text_buffer_printf(out, "%s{reactor=\"%u\"} %lu\n", entry->name, reactor,
                               reactor_field(counters_view_reactor(view, reactor), entry->offset));
    }
    family(out, "intake_connections_ended_total", "counter",
           "Connections ended, by the status of their final Ack (ok: the producer closed).");
    for (uint32_t reactor = 0; reactor < header->reactor_count; reactor++)
        for (uint32_t status = 0; status < INTAKE_ARRAY_LENGTH(end_status_names); status++)
            text_buffer_printf(
                out, "intake_connections_ended_total{reactor=\"%u\",status=\"%s\"} %lu\n", reactor,
                end_status_names[status],
                load(&counters_view_reactor(view, reactor)->connections_ended[status]));
    family(out, "intake_pauses_total", "counter",
           "Times a connection stopped reading until space returned, by cause.");
    static const char *const causes[5] = {"topic_queue", "record_pool", "ack_window",
                                          "out_of_units", "topic_log"};
    for (uint32_t reactor = 0; reactor < header->reactor_count; reactor++) {
        const struct intake_counters_reactor_row *row = counters_view_reactor(view, reactor);
        const _Atomic uint64_t *values[5] = {&row->pauses_topic_queue, &row->pauses_record_pool,
                                             &row->pauses_ack_window, &row->pauses_out_of_units,
                                             &row->pauses_topic_log};
        for (uint32_t cause = 0; cause < 5; cause++)
            text_buffer_printf(out, "intake_pauses_total{reactor=\"%u\",cause=\"%s\"} %lu\n",
                               reactor, causes[cause], load(values[cause]));
    }
    family(out, "intake_backend_rearms_total", "counter",
           "Multishot receives re-armed, by why they ended.");
    for (uint32_t reactor = 0; reactor < header->reactor_count; reactor++) {
        const struct intake_counters_reactor_row *row = counters_view_reactor(view, reactor);
        text_buffer_printf(
            out,
            "intake_backend_rearms_total{reactor=\"%u\",reason=\"out_of_units\"} %lu\n"
            "intake_backend_rearms_total{reactor=\"%u\",reason=\"cq_overflow\"} %lu\n"
            "intake_backend_rearms_total{reactor=\"%u\",reason=\"other\"} %lu\n",
            reactor, load(&row->backend_rearms_out_of_units), reactor,
            load(&row->backend_rearms_overflow), reactor, load(&row->backend_rearms_other));
    }
}

/* TLS (issue 17): only when the daemon has a TLS listener. */
static const char *const handshake_failure_reasons[INTAKE_COUNTERS_HANDSHAKE_FAILURES] = {
    "timeout", "no_client_certificate", "bad_certificate", "not_tls", "protocol", "principal",
    "other"};

static const struct reactor_family tls_families[] = {
    {"intake_tls_handshakes_refused_total", "counter",
     "TLS connections refused because every handshake slot was taken (--handshakes-max).",
     REACTOR_FIELD(tls_handshakes_refused)},
    {"intake_tls_handshakes_in_progress", "gauge", "TLS handshakes running now.",
     REACTOR_FIELD(tls_handshakes_in_progress)},
    {"intake_tls_records_decrypted_total", "counter",
     "TLS application data records decrypted in place.", REACTOR_FIELD(tls_records_decrypted)},
    {"intake_tls_auth_failures_total", "counter",
     "TLS records whose authentication tag did not verify (each ended its connection).",
     REACTOR_FIELD(tls_auth_failures)},
    {"intake_tls_record_errors_total", "counter",
     "TLS records that broke another record-layer rule (each ended its connection).",
     REACTOR_FIELD(tls_record_errors)},
    {"intake_tls_alerts_received_total", "counter",
     "TLS error alerts received from peers (close_notify not counted).",
     REACTOR_FIELD(tls_alerts_received)},
};

static void render_tls(const struct counters_view *view, struct text_buffer *out) {
    const struct intake_counters_header *header = view->header;
    if (header->tls_listen[0] == '\0') return;
    family(out, "intake_tls_handshakes_total", "counter", "TLS handshakes completed.");
    for (uint32_t reactor = 0; reactor < header->reactor_count; reactor++)
        text_buffer_printf(out, "intake_tls_handshakes_total{reactor=\"%u\"} %lu\n", reactor,
                           load(&counters_view_reactor(view, reactor)->tls_handshakes_ok));
    family(out, "intake_tls_handshake_failures_total", "counter",
           "TLS handshakes that failed, by reason.");
    for (uint32_t reactor = 0; reactor < header->reactor_count; reactor++)
        for (uint32_t reason = 0; reason < INTAKE_COUNTERS_HANDSHAKE_FAILURES; reason++)
            text_buffer_printf(
                out, "intake_tls_handshake_failures_total{reactor=\"%u\",reason=\"%s\"} %lu\n",
                reactor, handshake_failure_reasons[reason],
                load(&counters_view_reactor(view, reactor)->tls_handshakes_failed[reason]));
    for (size_t index = 0; index < INTAKE_ARRAY_LENGTH(tls_families); index++) {
        const struct reactor_family *entry = &tls_families[index];
        family(out, entry->name, entry->type, entry->help);
        for (uint32_t reactor = 0; reactor < header->reactor_count; reactor++)
            text_buffer_printf(out, "%s{reactor=\"%u\"} %lu\n", entry->name, reactor,
                               reactor_field(counters_view_reactor(view, reactor), entry->offset));
    }
    family(out, "intake_tls_key_updates_total", "counter",
           "TLS key updates, by direction (received: the peer's read key moved on).");
    for (uint32_t reactor = 0; reactor < header->reactor_count; reactor++) {
        const struct intake_counters_reactor_row *row = counters_view_reactor(view, reactor);
        text_buffer_printf(out,
                           "intake_tls_key_updates_total{reactor=\"%u\",direction=\"received\"} "
                           "%lu\nintake_tls_key_updates_total{reactor=\"%u\",direction=\"sent\"} "
                           "%lu\n",
                           reactor, load(&row->tls_key_updates_received), reactor,
                           load(&row->tls_key_updates_sent));
    }
}

static void render_text_tls(const struct counters_view *view, uint32_t reactor,
                            struct text_buffer *out) {
    if (view->header->tls_listen[0] == '\0') return;
    const struct intake_counters_reactor_row *row = counters_view_reactor(view, reactor);
    text_buffer_printf(out, "  tls handshakes ok=%lu", load(&row->tls_handshakes_ok));
    for (uint32_t reason = 0; reason < INTAKE_COUNTERS_HANDSHAKE_FAILURES; reason++)
        text_buffer_printf(out, " failed_%s=%lu", handshake_failure_reasons[reason],
                           load(&row->tls_handshakes_failed[reason]));
    text_buffer_printf(out,
                       " refused=%lu in_progress=%lu records_decrypted=%lu auth_failures=%lu "
                       "record_errors=%lu key_updates_received=%lu key_updates_sent=%lu "
                       "alerts_received=%lu\n",
                       load(&row->tls_handshakes_refused), load(&row->tls_handshakes_in_progress),
                       load(&row->tls_records_decrypted), load(&row->tls_auth_failures),
                       load(&row->tls_record_errors), load(&row->tls_key_updates_received),
                       load(&row->tls_key_updates_sent), load(&row->tls_alerts_received));
}

static void render_workers(const struct counters_view *view, struct text_buffer *out) {
    static const struct {
        const char *name, *help;
        size_t offset;
    } worker_families[] = {
        {"intake_worker_records_committed_total", "Records appended to logs and published.",
         offsetof(struct intake_counters_worker_row, records_committed)},
        {"intake_worker_bytes_copied_total",
         "Payload bytes copied into logs (the one user-space copy).",
         offsetof(struct intake_counters_worker_row, bytes_copied)},
        {"intake_worker_records_rejected_total", "Records the full decode rejected.",
         offsetof(struct intake_counters_worker_row, records_rejected)},
        {"intake_worker_records_failed_total", "Records answered INTERNAL or SHUTTING_DOWN.",
         offsetof(struct intake_counters_worker_row, records_failed)},
        {"intake_worker_records_duplicate_total",
         "Records answered OK without appending: their producer's sequence was committed.",
         offsetof(struct intake_counters_worker_row, records_duplicate)},
        {"intake_worker_publishes_total", "Log publishes (batches).",
         offsetof(struct intake_counters_worker_row, publishes)},
        {"intake_worker_log_full_waits_total", "Times a full log (block mode) made a worker wait.",
         offsetof(struct intake_counters_worker_row, log_full_waits)},
        {"intake_worker_log_retries_total", "Topic logs that had failed, asked for again.",
         offsetof(struct intake_counters_worker_row, log_retries)},
        {"intake_worker_sleeps_total", "Times a worker slept with nothing to do.",
         offsetof(struct intake_counters_worker_row, sleeps)},
    };
    for (size_t index = 0; index < INTAKE_ARRAY_LENGTH(worker_families); index++) {
        family(out, worker_families[index].name, "counter", worker_families[index].help);
        for (uint32_t worker = 0; worker < view->header->worker_count; worker++) {
            const uint8_t *row = (const uint8_t *)counters_view_worker(view, worker);
            text_buffer_printf(
                out, "%s{worker=\"%u\"} %lu\n", worker_families[index].name, worker,
                load((const _Atomic uint64_t *)(row + worker_families[index].offset)));
        }
    }
}

/* Copy account: the ratio of payload bytes copied in user space to bytes received. */
static void copy_account(const struct counters_view *view, uint64_t *copied, uint64_t *received) {
    *copied = 0;
    *received = 0;
    for (uint32_t worker = 0; worker < view->header->worker_count; worker++)
        *copied += load(&counters_view_worker(view, worker)->bytes_copied);
    for (uint32_t reactor = 0; reactor < view->header->reactor_count; reactor++)
        *received += load(&counters_view_reactor(view, reactor)->backend_bytes_received);
}

struct topic_totals {
    uint64_t received_records, received_bytes;
    uint64_t committed_records, committed_bytes, rejected, failed;
    uint64_t duplicate, evictions, unremembered, rebuilds; /* deduplication */
};

static void topic_totals_of(const struct counters_view *view, uint32_t topic_id,
                            struct topic_totals *totals) {
    const struct intake_counters_topic_row *row = counters_view_topic(view, topic_id);
    memset(totals, 0, sizeof(*totals));
    for (uint32_t reactor = 0; reactor < view->header->reactor_count; reactor++) {
        const struct intake_counters_received_cell *cell =
            &counters_view_received(view, reactor)[topic_id];
        totals->received_records += load(&cell->records);
        totals->received_bytes += load(&cell->bytes);
    }
    totals->committed_records = load(&row->records_committed);
    totals->committed_bytes = load(&row->bytes_committed);
    totals->rejected = load(&row->records_rejected);
    totals->failed = load(&row->records_failed);
    totals->duplicate = load(&row->records_duplicate);
    totals->evictions = load(&row->dedupe_evictions);
    totals->unremembered = load(&row->dedupe_unremembered);
    totals->rebuilds = load(&row->dedupe_rebuilds);
}

static void render_topic_samples(struct text_buffer *out, const char *metric, const char *topic,
                                 uint64_t value) {
    text_buffer_printf(out, "%s{topic=\"", metric);
    append_label_value(out, topic);
    text_buffer_printf(out, "\"} %lu\n", value);
}

/* Topic families are rendered family by family (the format wants a family's samples together),
 * so topics are walked once per family. */
static void render_topics(const struct counters_view *view, const char *directory,
                          struct text_buffer *out) {
    static const struct {
        const char *name, *type, *help;
    } families[] = {
        {"intake_records_received_total", "counter",
         "Records admitted for the topic (all reactors)."},
        {"intake_bytes_received_total", "counter", "Record bytes admitted for the topic."},
        {"intake_records_committed_total", "counter", "Records committed to the topic's log."},
        {"intake_bytes_committed_total", "counter", "Record bytes committed to the topic's log."},
        {"intake_records_rejected_total", "counter",
         "Records of the topic the full decode rejected."},
        {"intake_records_failed_total", "counter",
         "Records of the topic answered INTERNAL or SHUTTING_DOWN."},
        {"intake_records_duplicate_total", "counter",
         "Records answered OK without appending: their producer's sequence was committed."},
        {"intake_dedupe_evictions_total", "counter",
         "Producers evicted from the topic's full deduplication table."},
        {"intake_dedupe_unremembered_total", "counter",
         "Producers back after eviction: their records were appended as new."},
        {"intake_dedupe_rebuilds_total", "counter",
         "Times the topic's deduplication table file was damaged and rebuilt from the log."},
        {"intake_log_commit_position_bytes", "gauge",
         "End of the published entries in the topic's log."},
        {"intake_log_next_offset", "gauge", "Offset the next record of the topic will get."},
        {"intake_log_retained_position_bytes", "gauge", "Oldest intact entry in the topic's log."},
    };
    char name[INTAKE_COUNTERS_TOPIC_NAME_BYTES];
    for (size_t index = 0; index < INTAKE_ARRAY_LENGTH(families); index++) {
        family(out, families[index].name, families[index].type, families[index].help);
        for (uint32_t topic_id = 0; topic_id < view->header->topics_max; topic_id++) {
            if (!topic_name(counters_view_topic(view, topic_id), name)) continue;
            struct topic_totals totals;
            topic_totals_of(view, topic_id, &totals);
            uint64_t values[10] = {totals.received_records,  totals.received_bytes,
                                   totals.committed_records, totals.committed_bytes,
                                   totals.rejected,          totals.failed,
                                   totals.duplicate,         totals.evictions,
                                   totals.unremembered,      totals.rebuilds};
            if (index < INTAKE_ARRAY_LENGTH(values)) {
                render_topic_samples(out, families[index].name, name, values[index]);
                continue;
            }
            struct log_peek peek;
            if (!log_peek_open(directory, name, &peek)) continue;
            uint64_t log_values[3] = {load(&peek.header->commit_position),
                                      load(&peek.header->commit_offset),
                                      load(&peek.header->retained_position)};
            render_topic_samples(out, families[index].name, name,
                                 log_values[index - INTAKE_ARRAY_LENGTH(values)]);
            log_peek_close(&peek);
        }
    }
}

static void render_consumers(const struct counters_view *view, const char *directory,
                             struct text_buffer *out) {
    static const char *const metrics[2] = {"intake_consumer_lag_bytes",
                                           "intake_consumer_lag_records"};
    static const char *const helps[2] = {
        "Bytes published that the consumer has not released (commit_position - read_position).",
        "Records published since the consumer's last commit (absent before its first commit)."};
    char name[INTAKE_COUNTERS_TOPIC_NAME_BYTES];
    for (uint32_t metric = 0; metric < 2; metric++) {
        family(out, metrics[metric], "gauge", helps[metric]);
        for (uint32_t topic_id = 0; topic_id < view->header->topics_max; topic_id++) {
            if (!topic_name(counters_view_topic(view, topic_id), name)) continue;
            struct log_peek peek;
            if (!log_peek_open(directory, name, &peek)) continue;
            for (uint32_t slot = 0; slot < SHM_LOG_CONSUMER_SLOTS; slot++) {
                struct consumer_lag lag;
                if (!consumer_lag_of(&peek, slot, &lag)) continue;
                if (metric == 1 && !lag.records_known) continue;
                text_buffer_printf(out, "%s{topic=\"", metrics[metric]);
                append_label_value(out, name);
                text_buffer_printf(out, "\",consumer=\"");
                append_label_value(out, lag.name);
                text_buffer_printf(out, "\",state=\"%s\"} %lu\n", lag.state,
                                   metric == 0 ? lag.lag_bytes : lag.lag_records);
            }
            log_peek_close(&peek);
        }
    }
}

/* Principals (issue 17: --acl): the rows in force, `other` included. */
static void render_principals(const struct counters_view *view, struct text_buffer *out) {
    uint64_t generation = 0, reload_failures = 0;
    bool enabled = counters_view_acl(view, &generation, &reload_failures);
    family(out, "intake_acl_enabled", "gauge", "1 when intaked runs with --acl.");
    text_buffer_printf(out, "intake_acl_enabled %d\n", enabled ? 1 : 0);
    if (!enabled) return;
    family(out, "intake_acl_rule_set", "gauge",
           "The --acl rule set in force: 1 at startup, one more per accepted SIGHUP reload.");
    text_buffer_printf(out, "intake_acl_rule_set %lu\n", generation);
    family(out, "intake_acl_reload_failures_total", "counter",
           "SIGHUP reloads refused (a bad --acl file): the rules in force stayed.");
    text_buffer_printf(out, "intake_acl_reload_failures_total %lu\n", reload_failures);
    static const struct {
        const char *name, *type, *help;
    } families[] = {
        {"intake_principal_records_admitted_total", "counter",
         "Records of the principal admitted (queued to their topic)."},
        {"intake_principal_bytes_admitted_total", "counter", "Their encoded bytes."},
        {"intake_principal_records_denied_total", "counter",
         "Records refused by --acl (answered REJECTED; nothing of them written)."},
        {"intake_principal_throttled_seconds_total", "counter",
         "Time the principal's connections spent paused for its quota, summed over them."},
        {"intake_principal_quota_pauses_total", "counter",
         "Times one of the principal's connections paused for its quota."},
        {"intake_principal_quota_records_per_second", "gauge",
         "The principal's records-per-second quota in force (0: unlimited)."},
        {"intake_principal_quota_bytes_per_second", "gauge",
         "The principal's bytes-per-second quota in force (0: unlimited)."},
    };
    for (size_t index = 0; index < INTAKE_ARRAY_LENGTH(families); index++) {
        family(out, families[index].name, families[index].type, families[index].help);
        for (uint32_t row = 0; row < view->header->principal_row_count; row++) {
            struct counters_view_principal principal;
            if (!counters_view_principal(view, row, &principal) || !principal.in_force) continue;
            text_buffer_printf(out, "%s{principal=\"", families[index].name);
            append_label_value(out, principal.name);
            text_buffer_printf(out, "\"} ");
            uint64_t values[7] = {
                principal.records_admitted,      principal.bytes_admitted,
                principal.records_denied,        principal.throttled_ns,
                principal.quota_pauses,          principal.quota_records_per_second,
                principal.quota_bytes_per_second};
            if (index == 3)
                text_buffer_printf(out, "%.6f\n", (double)values[index] / 1e9);
            else
                text_buffer_printf(out, "%lu\n", values[index]);
        }
    }
}

static void render_text_principals(const struct counters_view *view, struct text_buffer *out) {
    uint64_t generation = 0, reload_failures = 0;
    if (!counters_view_acl(view, &generation, &reload_failures)) return;
    text_buffer_printf(out, "acl: rule set %lu reload_failures=%lu\n", generation, reload_failures);
    for (uint32_t row = 0; row < view->header->principal_row_count; row++) {
        struct counters_view_principal principal;
        if (!counters_view_principal(view, row, &principal) || !principal.in_force) continue;
        text_buffer_printf(out,
                           "principal %s: records admitted=%lu bytes=%lu denied=%lu "
                           "throttled=%.3fs quota_pauses=%lu quota records/s=%lu bytes/s=%lu\n",
                           principal.name, principal.records_admitted, principal.bytes_admitted,
                           principal.records_denied, (double)principal.throttled_ns / 1e9,
                           principal.quota_pauses, principal.quota_records_per_second,
                           principal.quota_bytes_per_second);
    }
}

void counters_render_prometheus(const struct counters_view *view, const char *log_directory,
                                uint64_t now_ns, struct text_buffer *out) {
    const struct intake_counters_header *header = view->header;
    const char *directory = log_directory ? log_directory : header->shm_directory;
    uint32_t state = atomic_load_explicit((_Atomic uint32_t *)&header->state, memory_order_acquire);
    char why[128];
    family(out, "intake_info", "gauge", "Constant 1, labelled with the daemon's configuration.");
    text_buffer_printf(out, "intake_info{backend=\"");
    append_label_value(out, header->backend);
    text_buffer_printf(out, "\",listen=\"");
    append_label_value(out, header->listen);
    text_buffer_printf(out, "\",reactors=\"%u\",workers=\"%u\"} 1\n", header->reactor_count,
                       header->worker_count);
    family(out, "intake_state", "gauge", "0 starting, 1 running, 2 stopping, 3 stopped.");
    text_buffer_printf(out, "intake_state %u\n", state);
    family(out, "intake_ready", "gauge", "1 when /readyz answers 200.");
    text_buffer_printf(
        out, "intake_ready %d\n",
        counters_view_ready(view, now_ns, COUNTERS_VIEW_READY_NS, why, sizeof(why)) ? 1 : 0);
    family(out, "intake_start_time_seconds", "gauge", "When the daemon started (Unix time).");
    text_buffer_printf(out, "intake_start_time_seconds %.3f\n",
                       (double)header->start_wall_ns / 1e9);
    render_reactors(view, now_ns, out);
    render_tls(view, out);
    render_workers(view, out);
    uint64_t copied = 0, received = 0;
    copy_account(view, &copied, &received);
    family(out, "intake_copy_ratio", "gauge",
           "Payload bytes copied in user space per byte received (at most 1: one copy).");
    text_buffer_printf(out, "intake_copy_ratio %.4f\n",
                       received ? (double)copied / (double)received : 0.0);
    family(out, "intake_log_capacity_bytes", "gauge", "Each topic log's ring (--log-size).");
    text_buffer_printf(out, "intake_log_capacity_bytes %lu\n", header->log_capacity_bytes);
    render_topics(view, directory, out);
    render_consumers(view, directory, out);
    render_principals(view, out);
}

/* ---------------------------------------------------------------------- terminal --- */

static void render_text_reactor(const struct counters_view *view, uint32_t reactor, uint64_t now_ns,
                                struct text_buffer *out) {
    const struct intake_counters_reactor_row *row = counters_view_reactor(view, reactor);
    uint64_t beat = load(&row->heartbeat_ns);
    text_buffer_printf(out,
                       "reactor %u: heartbeat %.1fs ago connections open=%lu accepted=%lu "
                       "refused=%lu closed=%lu failed=%lu lingered=%lu stalls_broken=%lu "
                       "deadline_kills=%lu\n",
                       reactor, beat && beat <= now_ns ? (double)(now_ns - beat) / 1e9 : 0.0,
                       load(&row->connections_open), load(&row->connections_accepted),
                       load(&row->connections_refused), load(&row->connections_closed),
                       load(&row->connections_failed), load(&row->connections_lingered),
                       load(&row->stalls_broken), load(&row->deadline_kills));
    text_buffer_printf(out,
                       "  ended ok=%lu rejected=%lu resource_exhausted=%lu shutting_down=%lu "
                       "internal=%lu\n",
                       load(&row->connections_ended[0]), load(&row->connections_ended[1]),
                       load(&row->connections_ended[2]), load(&row->connections_ended[3]),
                       load(&row->connections_ended[4]));
    text_buffer_printf(
        out,
        "  records admitted=%lu returned=%lu failed=%lu truncated_frames=%lu "
        "acks=%lu pauses topic_queue=%lu record_pool=%lu ack_window=%lu "
        "out_of_units=%lu topic_log=%lu over_log_limit=%lu "
        "topic_creations_refused=%lu backlog_exhausted=%lu wakeups=%lu submit_busy=%lu "
        "socket_option_errors=%lu deadline_kills frame=%lu idle=%lu "
        "accept_errors=%lu accept_pauses=%lu partial_cap_pauses=%lu "
        "partial_evictions=%lu hellos_answered=%lu identity_rejections=%lu\n",
        load(&row->records_admitted), load(&row->records_returned), load(&row->records_failed),
        load(&row->frames_truncated), load(&row->acks_sent), load(&row->pauses_topic_queue),
        load(&row->pauses_record_pool), load(&row->pauses_ack_window),
        load(&row->pauses_out_of_units), load(&row->pauses_topic_log),
        load(&row->records_over_log_limit), load(&row->topic_creations_refused),
        load(&row->backlog_exhausted), load(&row->wakeups), load(&row->submit_busy),
        load(&row->socket_option_errors), load(&row->deadline_kills_frame),
        load(&row->deadline_kills_idle), load(&row->accept_errors), load(&row->accept_pauses),
        load(&row->partial_cap_pauses), load(&row->partial_evictions), load(&row->hellos_answered),
        load(&row->identity_rejections));
    text_buffer_printf(out,
                       "  backend bytes_received=%lu completions=%lu units_recycled=%lu rearms "
                       "out_of_units=%lu overflow=%lu other=%lu refill_flushes=%lu "
                       "units_in_use=%lu\n",
                       load(&row->backend_bytes_received), load(&row->backend_completions),
                       load(&row->backend_units_recycled), load(&row->backend_rearms_out_of_units),
                       load(&row->backend_rearms_overflow), load(&row->backend_rearms_other),
                       load(&row->backend_refill_flushes), load(&row->backend_units_in_use));
}

static void render_text_topic(const struct counters_view *view, const char *directory,
                              uint32_t topic_id, const char *name, struct text_buffer *out) {
    struct topic_totals totals;
    topic_totals_of(view, topic_id, &totals);
    text_buffer_printf(out,
                       "topic %s: received records=%lu bytes=%lu committed records=%lu "
                       "bytes=%lu rejected=%lu failed=%lu duplicate=%lu dedupe_evictions=%lu "
                       "dedupe_unremembered=%lu dedupe_rebuilds=%lu",
                       name, totals.received_records, totals.received_bytes,
                       totals.committed_records, totals.committed_bytes, totals.rejected,
                       totals.failed, totals.duplicate, totals.evictions, totals.unremembered,
                       totals.rebuilds);
    struct log_peek peek;
    if (!log_peek_open(directory, name, &peek)) {
        text_buffer_printf(out, " log unreadable in %s\n", directory);
        return;
    }
    text_buffer_printf(out, " log commit_position=%lu next_offset=%lu retained_position=%lu\n",
                       load(&peek.header->commit_position), load(&peek.header->commit_offset),
                       load(&peek.header->retained_position));
    for (uint32_t slot = 0; slot < SHM_LOG_CONSUMER_SLOTS; slot++) {
        struct consumer_lag lag;
        if (!consumer_lag_of(&peek, slot, &lag)) continue;
        text_buffer_printf(out, "  consumer %s (%s): lag bytes=%lu", lag.name, lag.state,
                           lag.lag_bytes);
        if (lag.records_known)
            text_buffer_printf(out, " records=%lu\n", lag.lag_records);
        else
            text_buffer_printf(out, " records=? (never committed)\n");
    }
    log_peek_close(&peek);
}

void counters_render_text(const struct counters_view *view, const char *log_directory,
                          uint64_t now_ns, struct text_buffer *out) {
    const struct intake_counters_header *header = view->header;
    const char *directory = log_directory ? log_directory : header->shm_directory;
    uint32_t state = atomic_load_explicit((_Atomic uint32_t *)&header->state, memory_order_acquire);
    char why[128];
    bool ready = counters_view_ready(view, now_ns, COUNTERS_VIEW_READY_NS, why, sizeof(why));
    text_buffer_printf(out,
                       "intake pid %d state %s ready %s%s%s backend %s listen %s%s%s logs %s\n",
                       header->pid, state_name(state), ready ? "yes" : "no", ready ? "" : " ",
                       ready ? "" : why, header->backend[0] ? header->backend : "?", header->listen,
                       header->tls_listen[0] ? " tls " : "", header->tls_listen, directory);
    for (uint32_t reactor = 0; reactor < header->reactor_count; reactor++) {
        render_text_reactor(view, reactor, now_ns, out);
        render_text_tls(view, reactor, out);
    }
    for (uint32_t worker = 0; worker < header->worker_count; worker++) {
        const struct intake_counters_worker_row *row = counters_view_worker(view, worker);
        uint64_t beat = load(&row->heartbeat_ns);
        text_buffer_printf(out,
                           "worker %u: heartbeat %.1fs ago records committed=%lu rejected=%lu "
                           "failed=%lu duplicate=%lu bytes_copied=%lu publishes=%lu "
                           "log_full_waits=%lu log_retries=%lu sleeps=%lu\n",
                           worker, beat && beat <= now_ns ? (double)(now_ns - beat) / 1e9 : 0.0,
                           load(&row->records_committed), load(&row->records_rejected),
                           load(&row->records_failed), load(&row->records_duplicate),
                           load(&row->bytes_copied), load(&row->publishes),
                           load(&row->log_full_waits), load(&row->log_retries), load(&row->sleeps));
    }
    char name[INTAKE_COUNTERS_TOPIC_NAME_BYTES];
    for (uint32_t topic_id = 0; topic_id < header->topics_max; topic_id++)
        if (topic_name(counters_view_topic(view, topic_id), name))
            render_text_topic(view, directory, topic_id, name, out);
    uint64_t copied = 0, received = 0;
    copy_account(view, &copied, &received);
    text_buffer_printf(out, "copy account: copied_bytes=%lu received_bytes=%lu ratio=%.4f\n",
                       copied, received, received ? (double)copied / (double)received : 0.0);
    render_text_principals(view, out);
}

char *counters_render_alloc(const struct counters_view *view, const char *log_directory,
                            uint64_t now_ns, enum counters_render_format format, size_t *length) {
    for (size_t capacity = 256 * 1024; capacity <= COUNTERS_RENDER_BYTES_MAX; capacity *= 2) {
        struct text_buffer out = {.data = malloc(capacity), .capacity = capacity};
        if (out.data == NULL) return NULL;
        out.data[0] = '\0';
        if (format == COUNTERS_RENDER_PROMETHEUS)
            counters_render_prometheus(view, log_directory, now_ns, &out);
        else
            counters_render_text(view, log_directory, now_ns, &out);
        if (!out.truncated) {
            *length = out.length;
            return out.data;
        }
        free(out.data);
    }
    return NULL;
}
