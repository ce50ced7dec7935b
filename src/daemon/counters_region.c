/*
 * counters_region.c: creates and maps the counters region (see counters_region.h and
 * include/intake/counters_format.h). Main thread.
 */
#include "counters_region.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* mkdir -p of the directory holding `path` (the region usually lives in --shm-dir, which the
 * log opener would otherwise create later). */
static int make_parent_directories(const char *path) {
    char directory[4096];
    snprintf(directory, sizeof(directory), "%s", path);
    char *slash = strrchr(directory, '/');
    if (slash == NULL || slash == directory) return 0;
    *slash = '\0';
    for (char *cursor = directory + 1; *cursor != '\0'; cursor++) {
        if (*cursor != '/') continue;
        *cursor = '\0';
        if (mkdir(directory, 0755) != 0 && errno != EEXIST) return -errno;
        *cursor = '/';
    }
    if (mkdir(directory, 0755) != 0 && errno != EEXIST) return -errno;
    return 0;
}

static void copy_text(char *out, size_t capacity, const char *text) {
    snprintf(out, capacity, "%s", text ? text : "");
}

int counters_region_create(struct counters_region *region, const char *path,
                           const struct counters_region_identity *identity, char *why,
                           size_t why_capacity) {
    memset(region, 0, sizeof(*region));
    struct intake_counters_header layout;
    memset(&layout, 0, sizeof(layout));
    intake_counters_layout(identity->reactor_count, identity->worker_count, identity->topics_max,
                           identity->principal_rows, &layout);
    if (snprintf(region->path, sizeof(region->path), "%s", path) >= (int)sizeof(region->path)) {
        intake_error_line(why, why_capacity, "--counters path too long");
        return -ENAMETOOLONG;
    }
    int made = make_parent_directories(path);
    if (made < 0) {
        intake_error_line(why, why_capacity, "counters region %s: mkdir: %s", path,
                          strerror(-made));
        return made;
    }
    char temporary[sizeof(region->path) + 32];
    snprintf(temporary, sizeof(temporary), "%s.%d.tmp", path, (int)getpid());
    int fd = open(temporary, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, COUNTERS_REGION_FILE_MODE);
    if (fd < 0) {
        int error = errno;
        intake_error_line(why, why_capacity, "counters region %s: open: %s", temporary,
                          strerror(error));
        return -error;
    }
    /* Its exact mode whatever the umask, and the log group, before it gets its name. */
    int result = 0;
    if ((identity->group_set && fchown(fd, (uid_t)-1, identity->group) != 0) ||
        fchmod(fd, COUNTERS_REGION_FILE_MODE) != 0)
        result = errno;
    /* Allocated whole (no SIGBUS later on a full tmpfs). */
    if (result == 0) result = posix_fallocate(fd, 0, (off_t)layout.total_bytes);
    void *mapping = MAP_FAILED;
    if (result == 0) {
        mapping = mmap(NULL, layout.total_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (mapping == MAP_FAILED) result = errno;
    }
    close(fd);
    if (result != 0) {
        unlink(temporary);
        intake_error_line(why, why_capacity, "counters region %s (%lu bytes): %s", temporary,
                          (unsigned long)layout.total_bytes, strerror(result));
        return -result;
    }
    struct intake_counters_header *header = mapping;
    *header = layout;
    header->magic = INTAKE_COUNTERS_MAGIC;
    header->version = INTAKE_COUNTERS_VERSION;
    header->pid = (int32_t)getpid();
    header->start_wall_ns = intake_wall_ns();
    header->log_capacity_bytes = identity->log_capacity_bytes;
    copy_text(header->shm_directory, sizeof(header->shm_directory), identity->shm_directory);
    copy_text(header->listen, sizeof(header->listen), identity->listen);
    copy_text(header->metrics_listen, sizeof(header->metrics_listen), identity->metrics_listen);
    copy_text(header->tls_listen, sizeof(header->tls_listen), identity->tls_listen);
    atomic_store_explicit(&header->state, INTAKE_COUNTERS_STATE_STARTING, memory_order_relaxed);
    atomic_store_explicit(&header->state_wall_ns, header->start_wall_ns, memory_order_relaxed);
    /* Readers open the file by name: it appears under that name only once complete. */
    if (rename(temporary, path) != 0) {
        int error = errno;
        munmap(mapping, layout.total_bytes);
        unlink(temporary);
        intake_error_line(why, why_capacity, "counters region %s: rename: %s", path,
                          strerror(error));
        return -error;
    }
    region->base = mapping;
    region->bytes = layout.total_bytes;
    region->header = header;
    return 0;
}

void counters_region_set_state(struct counters_region *region, enum intake_counters_state state,
                               bool listening) {
    if (region->header == NULL) return;
    atomic_store_explicit(&region->header->listening, listening ? 1u : 0u, memory_order_relaxed);
    atomic_store_explicit(&region->header->state_wall_ns, intake_wall_ns(), memory_order_relaxed);
    atomic_store_explicit(&region->header->state, (uint32_t)state, memory_order_release);
}

void counters_region_set_listen(struct counters_region *region, const char *listen,
                                uint16_t listen_port, const char *tls_listen,
                                uint16_t tls_listen_port) {
    if (region->header == NULL) return;
    /* Readers take these after acquire-loading state RUNNING, stored (release) after this. */
    copy_text(region->header->listen, sizeof(region->header->listen), listen);
    copy_text(region->header->tls_listen, sizeof(region->header->tls_listen), tls_listen);
    region->header->listen_port = listen_port;
    region->header->tls_listen_port = tls_listen_port;
}

void counters_region_set_backend(struct counters_region *region, const char *backend) {
    if (region->header == NULL) return;
    copy_text(region->header->backend, sizeof(region->header->backend), backend);
}

void counters_region_close(struct counters_region *region) {
    if (region->header == NULL) return;
    counters_region_set_state(region, INTAKE_COUNTERS_STATE_STOPPED, false);
    munmap(region->base, region->bytes);
    region->header = NULL;
    region->base = NULL;
}

/* The sums of a row's cells over the reactors (no reactor writes them while this runs). */
static void counters_region_principal_sums(const struct counters_region *region, uint32_t row,
                                           struct intake_counters_principal_cell *sums) {
    uint64_t admitted = 0, bytes = 0, denied = 0, throttled = 0, pauses = 0;
    for (uint32_t reactor = 0; reactor < region->header->reactor_count; reactor++) {
        const struct intake_counters_principal_cell *cell =
            &counters_region_principal_cells(region, reactor)[row];
        admitted += atomic_load_explicit(&cell->records_admitted, memory_order_relaxed);
        bytes += atomic_load_explicit(&cell->bytes_admitted, memory_order_relaxed);
        denied += atomic_load_explicit(&cell->records_denied, memory_order_relaxed);
        throttled += atomic_load_explicit(&cell->throttled_ns, memory_order_relaxed);
        pauses += atomic_load_explicit(&cell->quota_pauses, memory_order_relaxed);
    }
    atomic_init(&sums->records_admitted, admitted);
    atomic_init(&sums->bytes_admitted, bytes);
    atomic_init(&sums->records_denied, denied);
    atomic_init(&sums->throttled_ns, throttled);
    atomic_init(&sums->quota_pauses, pauses);
}

/* The sequence lock's writer side (counters_format.h): odd while the row changes. Every store
 * into the row while it is odd is a release store, so a reader that sees any new value also
 * sees the odd sequence when it looks again (no fence: ThreadSanitizer does not model them). */
static uint32_t counters_region_principal_lock(struct intake_counters_principal_row *entry) {
    uint32_t sequence = atomic_load_explicit(&entry->sequence, memory_order_relaxed);
    INTAKE_ASSERT(sequence % 2 == 0);
    atomic_store_explicit(&entry->sequence, sequence + 1, memory_order_relaxed);
    return sequence + 2;
}

static void counters_region_principal_unlock(struct intake_counters_principal_row *entry,
                                             uint32_t sequence) {
    /* Release: pairs with the reader's acquire load of the even sequence; the row is whole. */
    atomic_store_explicit(&entry->sequence, sequence, memory_order_release);
}

void counters_region_principal_set(struct counters_region *region, uint32_t row,
                                   const struct counters_principal *principal) {
    if (region->header == NULL) return;
    INTAKE_ASSERT(principal->name_length > 0);
    INTAKE_ASSERT(principal->name_length < INTAKE_COUNTERS_PRINCIPAL_NAME_BYTES);
    struct intake_counters_principal_row *entry = counters_region_principal(region, row);
    uint32_t old_length = atomic_load_explicit(&entry->name_length, memory_order_relaxed);
    bool same = old_length == principal->name_length &&
                memcmp(entry->name, principal->name, old_length) == 0;
    uint32_t sequence = counters_region_principal_lock(entry);
    if (!same) {
        struct intake_counters_principal_cell sums;
        counters_region_principal_sums(region, row, &sums);
        atomic_store_explicit(&entry->base_records_admitted, sums.records_admitted,
                              memory_order_release);
        atomic_store_explicit(&entry->base_bytes_admitted, sums.bytes_admitted,
                              memory_order_release);
        atomic_store_explicit(&entry->base_records_denied, sums.records_denied,
                              memory_order_release);
        atomic_store_explicit(&entry->base_throttled_ns, sums.throttled_ns, memory_order_release);
        atomic_store_explicit(&entry->base_quota_pauses, sums.quota_pauses, memory_order_release);
        /* Byte by byte, each a release store like the row's other fields (the sequence lock's
         * rule); once per reload at most. */
        for (uint32_t index = 0; index <= principal->name_length; index++)
            atomic_store_explicit((_Atomic char *)&entry->name[index],
                                  index < principal->name_length ? principal->name[index] : '\0',
                                  memory_order_release);
        atomic_store_explicit(&entry->name_length, principal->name_length, memory_order_release);
    }
    atomic_store_explicit(&entry->in_force, principal->in_force ? 1u : 0u, memory_order_release);
    atomic_store_explicit(&entry->quota_records_per_second, principal->quota_records_per_second,
                          memory_order_release);
    atomic_store_explicit(&entry->quota_bytes_per_second, principal->quota_bytes_per_second,
                          memory_order_release);
    counters_region_principal_unlock(entry, sequence);
}

void counters_region_principal_in_force(struct counters_region *region, uint32_t row,
                                        bool in_force) {
    if (region->header == NULL) return;
    struct intake_counters_principal_row *entry = counters_region_principal(region, row);
    uint32_t sequence = counters_region_principal_lock(entry);
    atomic_store_explicit(&entry->in_force, in_force ? 1u : 0u, memory_order_release);
    counters_region_principal_unlock(entry, sequence);
}

void counters_region_set_acl(struct counters_region *region, bool enabled, uint64_t generation,
                             uint64_t reload_failures) {
    if (region->header == NULL) return;
    atomic_store_explicit(&region->header->acl_enabled, enabled ? 1u : 0u, memory_order_relaxed);
    atomic_store_explicit(&region->header->acl_generation, generation, memory_order_relaxed);
    atomic_store_explicit(&region->header->acl_reload_failures, reload_failures,
                          memory_order_relaxed);
}
