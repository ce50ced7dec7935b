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
                           &layout);
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
