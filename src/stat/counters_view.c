/*
 * counters_view.c: maps and validates intaked's counters region, and reads its rows (see
 * counters_view.h). Runs in intake-stat and in the daemon's metrics thread; never on a reactor
 * or worker.
 */
#include "counters_view.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Sanity bounds for counts read from a file another process wrote. */
#define VIEW_REACTORS_MAX 4096u
#define VIEW_WORKERS_MAX  4096u
#define VIEW_TOPICS_MAX   (1u << 20)

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

const char *const counters_handshake_failure_reasons[INTAKE_COUNTERS_HANDSHAKE_FAILURES] = {
    "timeout", "no_client_certificate", "bad_certificate", "not_tls", "protocol", "principal",
    "other"};

bool counters_view_topic_name(const struct counters_view *view, uint32_t topic_id, char *name) {
    const struct intake_counters_topic_row *row = counters_view_topic(view, topic_id);
    uint32_t length =
        atomic_load_explicit((_Atomic uint32_t *)&row->name_length, memory_order_acquire);
    if (length == 0 || length >= INTAKE_COUNTERS_TOPIC_NAME_BYTES) return false;
    memcpy(name, row->name, length);
    name[length] = '\0';
    return strlen(name) == length;
}

void counters_view_topic_totals(const struct counters_view *view, uint32_t topic_id,
                                struct counters_topic_totals *totals) {
    const struct intake_counters_topic_row *row = counters_view_topic(view, topic_id);
    memset(totals, 0, sizeof(*totals));
    for (uint32_t reactor = 0; reactor < view->header->reactor_count; reactor++) {
        const struct intake_counters_received_cell *cell =
            &counters_view_received(view, reactor)[topic_id];
        totals->received_records += counters_load(&cell->records);
        totals->received_bytes += counters_load(&cell->bytes);
    }
    totals->committed_records = counters_load(&row->records_committed);
    totals->committed_bytes = counters_load(&row->bytes_committed);
    totals->rejected = counters_load(&row->records_rejected);
    totals->failed = counters_load(&row->records_failed);
    totals->duplicate = counters_load(&row->records_duplicate);
    totals->evictions = counters_load(&row->dedupe_evictions);
    totals->unremembered = counters_load(&row->dedupe_unremembered);
    totals->rebuilds = counters_load(&row->dedupe_rebuilds);
    totals->unprotected = counters_load(&row->dedupe_unprotected);
    totals->repairs = counters_load(&row->dedupe_repairs);
}

void counters_view_copy_account(const struct counters_view *view, uint64_t *copied,
                                uint64_t *received) {
    *copied = 0;
    *received = 0;
    for (uint32_t worker = 0; worker < view->header->worker_count; worker++)
        *copied += counters_load(&counters_view_worker(view, worker)->bytes_copied);
    for (uint32_t reactor = 0; reactor < view->header->reactor_count; reactor++)
        *received += counters_load(&counters_view_reactor(view, reactor)->backend_bytes_received);
}

/* ------------------------------------------------------------------- principals --- */

/* Attempts at reading a principal row the main thread keeps rewriting (it rewrites one only on
 * a reload, so one retry is already rare). */
#define VIEW_PRINCIPAL_ATTEMPTS 64

static uint32_t load32(const _Atomic uint32_t *value, memory_order order) {
    return atomic_load_explicit((_Atomic uint32_t *)value, order);
}

bool counters_view_acl(const struct counters_view *view, uint64_t *generation,
                       uint64_t *reload_failures) {
    const struct intake_counters_header *header = view->header;
    *generation = counters_load(&header->acl_generation);
    *reload_failures = counters_load(&header->acl_reload_failures);
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
        sum += counters_load((const _Atomic uint64_t *)(cell + offset));
    }
    uint64_t floor = counters_load((const _Atomic uint64_t *)((const uint8_t *)base + offset));
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
