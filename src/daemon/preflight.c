/*
 * preflight.c: startup checks that explain the environment (see preflight.h). Main thread.
 *
 * Each check reads what the kernel reports (limits, sysctls, free space, the process's seccomp
 * mode) and compares it with what the flags will need. Nothing here is on a hot path.
 */
#include "preflight.h"

#include "dedupe_table.h"

#include <dirent.h>
#include <errno.h>
#include <linux/io_uring.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "intake/shm_log_format.h"
#include "metrics_http.h"

#define PREFLIGHT_PAGE_BYTES      4096ull
#define PREFLIGHT_SECCOMP_PROFILE "deploy/seccomp/intaked.json"
/* Submission queue entries of a reactor's ring: REACTOR_SQ_ENTRIES (src/reactor/
 * reactor_internal.h), repeated here for the estimate only. */
#define PREFLIGHT_RING_SQ_ENTRIES 1024ull
/* Bit of CAP_IPC_LOCK in /proc/self/status CapEff (linux/capability.h). */
#define PREFLIGHT_CAP_IPC_LOCK_BIT 14

static uint64_t round_up_pages(uint64_t bytes) {
    return (bytes + PREFLIGHT_PAGE_BYTES - 1) / PREFLIGHT_PAGE_BYTES * PREFLIGHT_PAGE_BYTES;
}

/* Reads the first line of a small /proc file as an integer; false when it cannot be read. */
static bool read_proc_integer(const char *path, long *value) {
    FILE *file = fopen(path, "re");
    if (file == NULL) return false;
    bool ok = fscanf(file, "%ld", value) == 1;
    fclose(file);
    return ok;
}

/* The value of `field` ("Seccomp:", "CapEff:") in /proc/self/status, as text. */
static bool read_status_field(const char *field, char *value, size_t capacity) {
    FILE *file = fopen("/proc/self/status", "re");
    if (file == NULL) return false;
    char line[256];
    bool found = false;
    size_t field_length = strlen(field);
    while (!found && fgets(line, sizeof(line), file) != NULL) {
        if (strncmp(line, field, field_length) != 0) continue;
        const char *start = line + field_length;
        while (*start == ' ' || *start == '\t') start++;
        snprintf(value, capacity, "%s", start);
        value[strcspn(value, "\n")] = '\0';
        found = true;
    }
    fclose(file);
    return found;
}

static bool has_cap_ipc_lock(void) {
    char text[64];
    if (!read_status_field("CapEff:", text, sizeof(text))) return false;
    unsigned long long mask = strtoull(text, NULL, 16);
    return (mask >> PREFLIGHT_CAP_IPC_LOCK_BIT) & 1ull;
}

static void format_bytes(uint64_t bytes, char *text, size_t capacity) {
    if (bytes >= (1ull << 30) && bytes % (1ull << 30) == 0)
        snprintf(text, capacity, "%luG", bytes >> 30);
    else if (bytes >= (1ull << 20))
        snprintf(text, capacity, "%luM", (unsigned long)((bytes + (1ull << 20) - 1) >> 20));
    else if (bytes >= 1024)
        snprintf(text, capacity, "%luK", (bytes + 1023) >> 10);
    else
        snprintf(text, capacity, "%lu", bytes);
}

/* ------------------------------------------------------------------------ io_uring --- */

void preflight_explain_io_uring(int error, char *why, size_t why_capacity) {
    long disabled = -1;
    bool sysctl_known = read_proc_integer("/proc/sys/kernel/io_uring_disabled", &disabled);
    char seccomp[16] = "";
    bool seccomp_filtered =
        read_status_field("Seccomp:", seccomp, sizeof(seccomp)) && strcmp(seccomp, "2") == 0;
    if (error == ENOSYS || error == EPERM) {
        if (sysctl_known && disabled == 2) {
            intake_error_line(
                why, why_capacity,
                "io_uring_setup: %s: io_uring is disabled on this host by the sysctl "
                "kernel.io_uring_disabled=2; set it to 0 (sysctl -w kernel.io_uring_disabled=0)",
                strerror(error));
        } else if (sysctl_known && disabled == 1 && error == EPERM) {
            intake_error_line(
                why, why_capacity,
                "io_uring_setup: %s: the sysctl kernel.io_uring_disabled=1 allows io_uring only "
                "to CAP_SYS_ADMIN or the group in kernel.io_uring_group; add intaked's group "
                "there or set kernel.io_uring_disabled=0",
                strerror(error));
        } else if (seccomp_filtered) {
            intake_error_line(
                why, why_capacity,
                "io_uring_setup: %s: blocked by a seccomp profile (kernel.io_uring_disabled=%ld "
                "allows it; container runtimes' default profiles block io_uring); run with "
                "%s (podman/docker --security-opt seccomp=%s; Kubernetes "
                "seccompProfile type Localhost)",
                strerror(error), disabled < 0 ? 0 : disabled, PREFLIGHT_SECCOMP_PROFILE,
                PREFLIGHT_SECCOMP_PROFILE);
        } else {
            intake_error_line(
                why, why_capacity,
                "io_uring_setup: %s: no seccomp filter and kernel.io_uring_disabled %s; the "
                "kernel was likely built without io_uring (CONFIG_IO_URING)",
                strerror(error), sysctl_known ? "allows it" : "is absent (Linux < 6.6)");
        }
        return;
    }
    if (error == ENOMEM) {
        intake_error_line(
            why, why_capacity,
            "io_uring_setup: %s: the ring could not be allocated or pinned; raise the locked "
            "memory limit (ulimit -l, --ulimit memlock=N:N, LimitMEMLOCK=) or the memory limit",
            strerror(error));
        return;
    }
    intake_error_line(why, why_capacity, "io_uring_setup: %s", strerror(error));
}

/* A tiny ring with no flags: tells whether io_uring can be used at all, before any thread. */
static int check_io_uring(char *why, size_t why_capacity) {
    struct io_uring_params params;
    memset(&params, 0, sizeof(params));
    long fd = syscall(__NR_io_uring_setup, 4, &params);
    if (fd >= 0) {
        close((int)fd);
        return 0;
    }
    int error = errno;
    preflight_explain_io_uring(error, why, why_capacity);
    return -error;
}

/* ------------------------------------------------------------------------ memlock --- */

static bool backend_is(const struct pipeline_config *config, const char *name) {
    return config->backend_name != NULL && strcmp(config->backend_name, name) == 0;
}

static bool zcrx_may_be_used(const struct pipeline_config *config) {
    if (backend_is(config, "zcrx")) return true;
    return backend_is(config, "auto") && (config->zcrx_interface != NULL || config->zcrx_nodev);
}

uint64_t preflight_memlock_bytes(const struct pipeline_config *config) {
    bool zcrx = zcrx_may_be_used(config);
    /* The ring itself: SQEs (64 bytes), the SQ index array, and the CQ (32-byte CQEs, which
     * auto's first attempt uses); without CAP_IPC_LOCK the kernel counts them against
     * RLIMIT_MEMLOCK (seen on 6.18: a memlock limit of 0 fails even a 4-entry io_uring_setup
     * with ENOMEM). Twice: a ring that auto gave up on is released asynchronously, so it may
     * still be counted while the next one is made. An estimate: the kernel charges the user's
     * total over all its processes, which no process can see. */
    uint64_t ring_bytes = round_up_pages(PREFLIGHT_RING_SQ_ENTRIES * 64) +
                          round_up_pages(PREFLIGHT_RING_SQ_ENTRIES * 4 + 64) +
                          round_up_pages((uint64_t)config->cq_entries * 32 + 64);
    uint64_t per_reactor = 2 * ring_bytes;
    /* The provided-buffer ring: 16 bytes per buffer, pinned. The buffers themselves are plain
     * memory (the kernel copies into them). */
    per_reactor += round_up_pages((uint64_t)config->buffer_count * 16);
    /* A zcrx area is pinned whole (Linux 6.17+ counts it against RLIMIT_MEMLOCK). */
    if (zcrx) per_reactor += round_up_pages(config->zcrx_area_bytes);
    return per_reactor * config->reactor_count;
}

static int check_memlock(const struct pipeline_config *config, FILE *out, char *why,
                         size_t why_capacity) {
    if (has_cap_ipc_lock()) return 0; /* pinned memory is not counted */
    struct rlimit limit;
    if (getrlimit(RLIMIT_MEMLOCK, &limit) != 0) return 0;
    uint64_t needed = preflight_memlock_bytes(config);
    if (limit.rlim_cur == RLIM_INFINITY || limit.rlim_cur >= needed) return 0;
    if (limit.rlim_max == RLIM_INFINITY || limit.rlim_max >= needed) {
        limit.rlim_cur = needed;
        if (setrlimit(RLIMIT_MEMLOCK, &limit) == 0) return 0;
    }
    char needed_text[32], limit_text[32];
    format_bytes(needed, needed_text, sizeof(needed_text));
    format_bytes(limit.rlim_max, limit_text, sizeof(limit_text));
    bool zcrx = zcrx_may_be_used(config);
    if (backend_is(config, "auto") && zcrx) {
        fprintf(out,
                "intaked: RLIMIT_MEMLOCK hard limit %s is below the %s the zcrx areas pin "
                "(--reactors %u x --zcrx-area); zcrx will fail and auto falls back to pbuf; "
                "raise it (--ulimit memlock=N:N, LimitMEMLOCK=) or grant CAP_IPC_LOCK\n",
                limit_text, needed_text, config->reactor_count);
        return 0;
    }
    intake_error_line(why, why_capacity,
                      "RLIMIT_MEMLOCK hard limit %s is below the %s intaked pins (%s); raise it "
                      "(ulimit -l, --ulimit memlock=N:N, LimitMEMLOCK=) or grant CAP_IPC_LOCK",
                      limit_text, needed_text,
                      zcrx ? "--reactors x (ring + --zcrx-area + buffer ring)"
                           : "--reactors x (ring with --cq-entries + buffer ring)");
    return -ENOMEM;
}

/* ------------------------------------------------------------------------ shm space --- */

/* The directory itself, or its nearest existing parent (it is created later, mkdir -p). */
static bool nearest_existing(const char *directory, char *path, size_t capacity) {
    snprintf(path, capacity, "%s", directory);
    for (;;) {
        struct statvfs info;
        if (statvfs(path, &info) == 0) return true;
        char *slash = strrchr(path, '/');
        if (slash == NULL) return false;
        if (slash == path) {
            path[1] = '\0';
            return statvfs(path, &info) == 0;
        }
        *slash = '\0';
    }
}

static uint32_t count_existing_logs(const char *directory) {
    DIR *dir = opendir(directory);
    if (dir == NULL) return 0;
    uint32_t count = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        size_t length = strlen(entry->d_name);
        if (length > 4 && strcmp(entry->d_name + length - 4, ".log") == 0) count++;
    }
    closedir(dir);
    return count;
}

static int check_shm_space(const struct pipeline_config *config, FILE *out, char *why,
                           size_t why_capacity) {
    char path[4096];
    struct statvfs info;
    if (!nearest_existing(config->shm_directory, path, sizeof(path)) || statvfs(path, &info) != 0)
        return 0; /* creating the directory reports its own error */
    uint64_t free_bytes = (uint64_t)info.f_bavail * info.f_frsize;
    /* A topic's files: the log, its consumer region, and its deduplication table. */
    uint64_t log_bytes =
        config->log_capacity_bytes + SHM_LOG_HEADER_BYTES + SHM_LOG_CONSUMERS_FILE_BYTES +
        (config->dedupe_producers > 0 ? dedupe_table_file_bytes(config->dedupe_producers) : 0);
    uint32_t existing = count_existing_logs(config->shm_directory);
    uint64_t fits = free_bytes / log_bytes + existing;
    if (fits >= config->topics_max) return 0;
    char free_text[32], log_text[32], wanted_text[32];
    format_bytes(free_bytes, free_text, sizeof(free_text));
    format_bytes(config->log_capacity_bytes, log_text, sizeof(log_text));
    format_bytes(log_bytes * config->topics_max, wanted_text, sizeof(wanted_text));
    if (fits == 0 || fits < config->fixed_topic_count) {
        intake_error_line(
            why, why_capacity,
            "--shm-dir %s has %s free: room for %lu topic log(s) of --log-size %s, but %u "
            "--topic(s) are configured; grow the volume (--log-size x --topics-max = %s) or "
            "lower --log-size",
            config->shm_directory, free_text, fits, log_text,
            config->fixed_topic_count > 0 ? config->fixed_topic_count : 1, wanted_text);
        return -ENOSPC;
    }
    fprintf(out,
            "intaked: --shm-dir %s has %s free: room for %lu topic logs of --log-size %s, "
            "fewer than --topics-max %u (%s); topics past that are answered INTERNAL; lower "
            "--topics-max or --log-size, or grow the volume\n",
            config->shm_directory, free_text, fits, log_text, config->topics_max, wanted_text);
    return 0;
}

/* ------------------------------------------------------------------------ descriptors --- */

uint64_t preflight_descriptors_needed(const struct pipeline_config *config) {
    return (uint64_t)config->reactor_count * config->connections_max +
           (uint64_t)config->topics_max * PREFLIGHT_DESCRIPTORS_PER_TOPIC +
           PREFLIGHT_DESCRIPTORS_RESERVED +
           (config->metrics_listen != NULL ? config->metrics_connections_max : 0);
}

/* Descriptors are short: the metrics endpoint gives up connections first (down to
 * METRICS_HTTP_CONNECTIONS_MIN), so scrapers never take descriptors producers need. */
static void metrics_connections_fit(struct pipeline_config *config, rlim_t available, FILE *out) {
    if (config->metrics_listen == NULL) return;
    uint64_t others = preflight_descriptors_needed(config) - config->metrics_connections_max;
    uint64_t room = available > others ? available - others : 0;
    if (room >= config->metrics_connections_max) return;
    uint32_t lowered =
        room > METRICS_HTTP_CONNECTIONS_MIN ? (uint32_t)room : METRICS_HTTP_CONNECTIONS_MIN;
    fprintf(out,
            "intaked: RLIMIT_NOFILE %lu leaves the metrics endpoint %u connections at once "
            "(of %u), so that producers keep theirs\n",
            (unsigned long)available, lowered, config->metrics_connections_max);
    config->metrics_connections_max = lowered;
}

static int check_descriptors(struct pipeline_config *config, FILE *out) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
    uint64_t needed = preflight_descriptors_needed(config);
    if (limit.rlim_cur == RLIM_INFINITY || limit.rlim_cur >= needed) return 0;
    /* Raise the soft limit as far as the hard one allows: no privilege needed. */
    rlim_t raised =
        (limit.rlim_max == RLIM_INFINITY || limit.rlim_max >= needed) ? needed : limit.rlim_max;
    if (raised > limit.rlim_cur) {
        struct rlimit wanted = {.rlim_cur = raised, .rlim_max = limit.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &wanted) == 0) limit.rlim_cur = raised;
    }
    if (limit.rlim_cur >= needed) return 0;
    metrics_connections_fit(config, limit.rlim_cur, out);
    needed = preflight_descriptors_needed(config);
    if (limit.rlim_cur >= needed) return 0;
    uint64_t others = needed - (uint64_t)config->reactor_count * config->connections_max;
    uint64_t per_reactor =
        limit.rlim_cur > others ? (limit.rlim_cur - others) / config->reactor_count : 0;
    if (per_reactor == 0) {
        /* Not fatal: topics are made on demand, and running out at accept only pauses
         * accepting (the reactor's EMFILE handling). Say what to expect. */
        fprintf(out,
                "intaked: RLIMIT_NOFILE %lu (hard limit) leaves no descriptor for connections "
                "once --topics-max %u topics have their logs (%u each) and %u are reserved; "
                "accepting pauses whenever descriptors run out (raise it: ulimit -n, "
                "--ulimit nofile=N:N, LimitNOFILE=)\n",
                (unsigned long)limit.rlim_cur, config->topics_max, PREFLIGHT_DESCRIPTORS_PER_TOPIC,
                PREFLIGHT_DESCRIPTORS_RESERVED);
        return 0;
    }
    fprintf(out,
            "intaked: RLIMIT_NOFILE %lu (hard limit) is below the %lu that --reactors %u x "
            "--connections-max %u need with --topics-max %u logs; --connections-max lowered "
            "to %lu (raise the limit: ulimit -n, --ulimit nofile=N:N, LimitNOFILE=)\n",
            (unsigned long)limit.rlim_cur, needed, config->reactor_count, config->connections_max,
            config->topics_max, per_reactor);
    config->connections_max = (uint32_t)per_reactor;
    return 0;
}

int preflight_run(struct pipeline_config *config, FILE *out, char *why, size_t why_capacity) {
    /* Memlock first: a limit too low for even a small ring fails io_uring_setup with ENOMEM. */
    int result = check_memlock(config, out, why, why_capacity);
    if (result == 0) result = check_io_uring(why, why_capacity);
    if (result == 0) result = check_shm_space(config, out, why, why_capacity);
    if (result == 0) result = check_descriptors(config, out);
    return result;
}
