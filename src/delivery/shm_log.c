/*
 * shm_log.c: the writer side of a topic's shared-memory log (see shm_log.h for the contract and
 * include/intake/shm_log_format.h, docs/shm-log-format.md for the layout and the protocol).
 *
 * Thread: only the worker that owns the topic calls these for a given log. The log owns two
 * file descriptors (the log, holding an exclusive flock so a second writer is refused; the
 * consumer region) and their mappings. Readers are other processes; they share nothing with
 * this file but the mappings. Nothing read back from a file is asserted on: the writer keeps
 * its own copy of every position, and checks what it must read (slots, entries it retires).
 */
#include "shm_log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Linux 5.14; older kernels refuse it and prefaulting is skipped. */
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#include "crc32c.h"
#include "fault_guard.h"
#include "intake/shm_log_format.h"

/* 1 ms apart: far longer than a consumer's liveness probe holds its shared lock. */
#define SHM_LOG_WRITER_LOCK_ATTEMPTS 100
/* Bytes copied (then checksummed while still in cache) per step of an append: three lanes. */
#define SHM_LOG_COPY_CHUNK_BYTES (3 * INTAKE_CRC32C_LANE_BYTES)
/* A broken log whose recreation failed is retried at most this often. */
#define SHM_LOG_RECOVER_INTERVAL_NS 1000000000ull
/* Retirement runs this fraction of the ring ahead of what an append needs. */
#define SHM_LOG_RETIRE_AHEAD_DIVISOR 64u
#define SHM_LOG_PATH_BYTES           (4096 + SHM_LOG_FILE_NAME_BYTES + 64)

struct shm_log {
    char topic[SHM_LOG_TOPIC_BYTES];
    char directory[4096];
    char log_path[SHM_LOG_PATH_BYTES];
    char consumers_path[SHM_LOG_PATH_BYTES];
    struct shm_log_config config; /* topic and directory point at the copies above */
    int fd;                       /* the log file, flock(LOCK_EX) held */
    size_t map_bytes;
    struct shm_log_header *header; /* NULL while broken and not recreated */
    uint8_t *ring;
    int consumers_fd;
    struct shm_log_consumers *consumers;
    int log_guard, consumers_guard; /* fault_guard handles */
    atomic_bool log_broken, consumers_broken;
    /* The mapping made at open, for shm_log_prefault on another thread (never changed). */
    _Atomic(uint8_t *) prefault_base;
    _Atomic uint64_t prefault_bytes;
    uint64_t capacity;
    uint64_t record_bytes_max;
    /* Writer-private positions; the shared copies are stores only. */
    uint64_t write_position;     /* end of appended entries (published or not) */
    uint64_t next_offset;        /* offset of the next appended record */
    uint64_t published_position; /* last commit_position stored */
    uint64_t published_offset;   /* commit_offset stored with it */
    uint64_t retained_position;  /* last retained_position stored */
    uint64_t retained_offset;    /* offset of the entry there (next_offset when none) */
    /* Block mode: entries may end at or below this without rescanning consumer slots. */
    uint64_t space_limit;
    uint64_t registrations_seen; /* the consumer region's counter at the last slot scan */
    uint64_t holders;            /* slots live at the last scan (bit per slot) */
    uint32_t commit_sequence;
    uint64_t recover_after_ns; /* a failed recreation is retried after this */
    char error[512];
};

static void shm_log_line(const struct shm_log *log, const char *line) {
    fprintf(stderr, "intaked: topic \"%s\": %s\n", log->topic, line);
}

/* ---------------------------------------------------------------- files --- */

/* Takes the writer's exclusive flock. Consumers probe for a live writer by taking a shared lock
 * for an instant (intake_consumer_writer_alive), so a refusal is retried for a bounded time
 * before it is read as "another writer". */
static int writer_lock(int fd) {
    for (int attempt = 0; attempt < SHM_LOG_WRITER_LOCK_ATTEMPTS; attempt++) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) return 0;
        if (errno != EWOULDBLOCK) return -errno;
        struct timespec pause = {0, 1000000};
        nanosleep(&pause, NULL);
    }
    return -EWOULDBLOCK;
}

/* mkdir -p: parents get 0755, the last component `mode`; an existing directory is fine. */
static int directory_create(const char *directory, mode_t mode) {
    char path[4096];
    size_t length = strlen(directory);
    if (length == 0 || length >= sizeof(path)) return -ENAMETOOLONG;
    memcpy(path, directory, length + 1);
    for (size_t index = 1; index <= length; index++) {
        if (path[index] != '/' && path[index] != '\0') continue;
        char saved = path[index];
        path[index] = '\0';
        if (mkdir(path, index == length ? mode : 0755) != 0 && errno != EEXIST) return -errno;
        path[index] = saved;
    }
    return 0;
}

int shm_log_directory_prepare(const char *directory, bool group_set, gid_t group, char *why,
                              size_t why_capacity) {
    int result = directory_create(directory, SHM_LOG_DIRECTORY_MODE);
    if (result != 0) {
        intake_error_line(why, why_capacity, "cannot create %s: %s", directory, strerror(-result));
        return result;
    }
    int fd = open(directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        int error = errno;
        intake_error_line(why, why_capacity, "cannot open --shm-dir %s: %s%s", directory,
                          strerror(error), error == ELOOP ? " (a symlink is refused)" : "");
        return -error;
    }
    struct stat status;
    result = fstat(fd, &status) == 0 ? 0 : -errno;
    if (result == 0 && status.st_uid != geteuid()) {
        intake_error_line(why, why_capacity,
                          "--shm-dir %s is owned by uid %u, not by intaked's "
                          "uid %u: its owner could swap logs; use a directory of our own",
                          directory, (unsigned)status.st_uid, (unsigned)geteuid());
        result = -EPERM;
    } else if (result == 0 && (status.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
        intake_error_line(why, why_capacity,
                          "--shm-dir %s is writable by %s (mode %04o): they "
                          "could swap logs; chmod go-w it or use another directory",
                          directory, (status.st_mode & S_IWOTH) ? "others" : "its group",
                          (unsigned)(status.st_mode & 07777));
        result = -EPERM;
    } else if (result == 0 && group_set && status.st_gid != group &&
               fchown(fd, (uid_t)-1, group) != 0) {
        result = -errno;
        intake_error_line(why, why_capacity, "cannot give --shm-dir %s group %u: %s", directory,
                          (unsigned)group, strerror(-result));
    } else if (result == 0 && group_set && (status.st_mode & 0750) != 0750 &&
               fchmod(fd, (status.st_mode & 07777) | 0750) != 0) {
        result = -errno;
        intake_error_line(why, why_capacity, "cannot chmod --shm-dir %s: %s", directory,
                          strerror(-result));
    }
    close(fd);
    return result;
}

static int config_check(const struct shm_log_config *config, char *why, size_t why_capacity) {
    size_t topic_length = config->topic ? strlen(config->topic) : 0;
    if (topic_length == 0 || topic_length > RECORD_TOPIC_BYTES_MAX) {
        intake_error_line(why, why_capacity, "topic must be 1..255 bytes");
        return -EINVAL;
    }
    if (strlen(config->directory) >= sizeof(((struct shm_log *)0)->directory)) {
        intake_error_line(why, why_capacity, "--shm-dir path is too long");
        return -ENAMETOOLONG;
    }
    if (!intake_is_power_of_two(config->capacity_bytes) ||
        config->capacity_bytes < SHM_LOG_CAPACITY_MIN ||
        config->capacity_bytes > SHM_LOG_CAPACITY_MAX) {
        intake_error_line(why, why_capacity, "log capacity must be a power of two, 4 KiB..1 TiB");
        return -EINVAL;
    }
    return 0;
}

/* Gives a file we created its exact mode (whatever the umask) and the log group. */
static int file_permissions_set(const struct shm_log *log, int fd, mode_t mode) {
    if (log->config.group_set && fchown(fd, (uid_t)-1, log->config.group) != 0) return -errno;
    if (fchmod(fd, mode) != 0) return -errno;
    return 0;
}

/* Creates `path` complete under a temporary name: sized, allocated (a full shm filesystem is a
 * clean error now instead of SIGBUS later), mapped and initialised by `initialise`, then
 * renamed (consumer region) or linked (log: -EEXIST when another writer won) into place.
 * Returns the open descriptor and mapping in *fd / *map. */
static int file_create(struct shm_log *log, const char *path, uint64_t file_bytes, mode_t mode,
                       bool lock, bool replace,
                       void (*initialise)(struct shm_log *, void *, uint64_t), uint64_t argument,
                       int *fd_out, void **map_out, char *why, size_t why_capacity) {
    char creating[SHM_LOG_PATH_BYTES + 32];
    snprintf(creating, sizeof(creating), "%s.creating.%d", path, (int)getpid());
    unlink(creating); /* left over from a writer of this pid that died mid-creation */
    int fd = open(creating, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) {
        int error = errno;
        intake_error_line(why, why_capacity, "cannot create %s: %s", creating, strerror(error));
        return -error;
    }
    void *map = MAP_FAILED;
    /* The lock travels with the inode: it still holds once the file has its real name. */
    int result = lock ? writer_lock(fd) : 0;
    if (result == 0) result = file_permissions_set(log, fd, mode);
    if (result == 0 && ftruncate(fd, (off_t)file_bytes) != 0) result = -errno;
    if (result < 0)
        intake_error_line(why, why_capacity, "cannot set up %s: %s", creating, strerror(-result));
    if (result == 0) {
        int allocated = posix_fallocate(fd, 0, (off_t)file_bytes);
        if (allocated != 0) {
            intake_error_line(why, why_capacity,
                              "cannot allocate %llu bytes for %s: %s "
                              "(--log-size x topics must fit in %s)",
                              (unsigned long long)file_bytes, path, strerror(allocated),
                              log->directory);
            result = -allocated;
        }
    }
    if (result == 0) {
        map = mmap(NULL, (size_t)file_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (map == MAP_FAILED) {
            result = -errno;
            intake_error_line(why, why_capacity, "cannot map %s: %s", creating, strerror(-result));
        }
    }
    if (result == 0) {
        initialise(log, map, argument);
        if ((replace ? rename(creating, path) : link(creating, path)) != 0) result = -errno;
        if (result < 0 && result != -EEXIST)
            intake_error_line(why, why_capacity, "cannot publish %s: %s", path, strerror(-result));
    }
    unlink(creating);
    if (result < 0) {
        if (map != MAP_FAILED) munmap(map, (size_t)file_bytes);
        close(fd);
        return result;
    }
    *fd_out = fd;
    *map_out = map;
    return 0;
}

/* Fills a fresh log header (the file was just sized; everything else is zero). */
static void log_initialise(struct shm_log *log, void *map, uint64_t start_offset) {
    struct shm_log_header *header = map;
    header->version = SHM_LOG_VERSION;
    header->header_bytes = SHM_LOG_HEADER_BYTES;
    header->capacity_bytes = log->config.capacity_bytes;
    header->record_bytes_max = shm_log_record_bytes_max_for(log->config.capacity_bytes);
    header->created_wall_ns = intake_wall_ns();
    header->topic_length = (uint32_t)strlen(log->topic);
    header->consumer_slots = SHM_LOG_CONSUMER_SLOTS;
    memcpy(header->topic, log->topic, header->topic_length + 1);
    atomic_store_explicit(&header->commit_offset, start_offset, memory_order_relaxed);
    atomic_store_explicit(&header->retained_offset, start_offset, memory_order_relaxed);
    header->magic = SHM_LOG_MAGIC;
    header->identity_checksum = shm_log_identity_checksum(header);
}

static void consumers_initialise(struct shm_log *log, void *map, uint64_t created_wall_ns) {
    struct shm_log_consumers *consumers = map;
    (void)log;
    consumers->version = SHM_LOG_VERSION;
    consumers->slot_count = SHM_LOG_CONSUMER_SLOTS;
    consumers->log_created_wall_ns = created_wall_ns;
    for (uint32_t index = 0; index < SHM_LOG_CONSUMER_SLOTS; index++)
        atomic_store_explicit(&consumers->slots[index].committed_offset, SHM_LOG_OFFSET_NONE,
                              memory_order_relaxed);
    consumers->magic = SHM_LOG_CONSUMERS_MAGIC;
}

/* Every mapping is guarded from the moment it exists: a truncation under it marks it broken
 * instead of killing the daemon. A full guard table leaves it unguarded, which is said. */
static void log_map_set(struct shm_log *log, void *map, uint64_t file_bytes) {
    atomic_store_explicit(&log->log_broken, false, memory_order_relaxed);
    log->header = map;
    log->map_bytes = (size_t)file_bytes;
    log->ring = (uint8_t *)map + SHM_LOG_HEADER_BYTES;
    log->log_guard =
        fault_guard_register(map, (size_t)file_bytes, PROT_READ | PROT_WRITE, &log->log_broken);
    if (log->log_guard < 0)
        shm_log_line(log, "SIGBUS guard unavailable: a truncated log would kill the daemon");
}

static void consumers_map_set(struct shm_log *log, int fd, void *map) {
    atomic_store_explicit(&log->consumers_broken, false, memory_order_relaxed);
    log->consumers_fd = fd;
    log->consumers = map;
    log->consumers_guard = fault_guard_register(map, SHM_LOG_CONSUMERS_FILE_BYTES,
                                                PROT_READ | PROT_WRITE, &log->consumers_broken);
    if (log->consumers_guard < 0)
        shm_log_line(log, "SIGBUS guard unavailable: a truncated consumer region would kill "
                          "the daemon");
}

static void log_unmap(struct shm_log *log) {
    fault_guard_unregister(log->log_guard);
    fault_guard_unregister(log->consumers_guard);
    log->log_guard = log->consumers_guard = -1;
    if (log->header != NULL) munmap(log->header, log->map_bytes);
    if (log->consumers != NULL) munmap(log->consumers, SHM_LOG_CONSUMERS_FILE_BYTES);
    if (log->fd >= 0) close(log->fd);
    if (log->consumers_fd >= 0) close(log->consumers_fd);
    log->header = NULL;
    log->consumers = NULL;
    log->fd = log->consumers_fd = -1;
}

/* Renames `path` to `path`.corrupt-<unix ms>; fills `moved_to`. */
static int file_quarantine(const char *path, char *moved_to, size_t moved_capacity) {
    snprintf(moved_to, moved_capacity, "%s.corrupt-%llu", path,
             (unsigned long long)(intake_wall_ns() / 1000000u));
    return rename(path, moved_to) == 0 ? 0 : -errno;
}

static int consumers_create(struct shm_log *log, uint64_t created_wall_ns, char *why,
                            size_t why_capacity) {
    void *map = NULL;
    int fd = -1;
    int result = file_create(log, log->consumers_path, SHM_LOG_CONSUMERS_FILE_BYTES,
                             SHM_LOG_CONSUMERS_FILE_MODE, false, true, consumers_initialise,
                             created_wall_ns, &fd, &map, why, why_capacity);
    if (result == 0) consumers_map_set(log, fd, map);
    return result;
}

/* Creates both files: the log, then its region (a consumer that finds the log before its
 * region waits briefly for the region's log_created_wall_ns to match). -EEXIST when another
 * writer published a log first. */
static int files_create(struct shm_log *log, uint64_t start_offset, char *why,
                        size_t why_capacity) {
    uint64_t file_bytes = SHM_LOG_HEADER_BYTES + log->config.capacity_bytes;
    void *map = NULL;
    int result = file_create(log, log->log_path, file_bytes, SHM_LOG_FILE_MODE, true, false,
                             log_initialise, start_offset, &log->fd, &map, why, why_capacity);
    if (result < 0) return result;
    log_map_set(log, map, file_bytes);
    /* The log is linked but we hold its lock: a consumer that opens it now waits for the region
     * to match (created_wall_ns) and retries. */
    result = consumers_create(log, log->header->created_wall_ns, why, why_capacity);
    if (result < 0) log_unmap(log);
    return result;
}

/* ----------------------------------------------------------- validation --- */

enum log_check {
    LOG_CHECK_OK,
    LOG_CHECK_DAMAGED, /* quarantine and recreate */
    LOG_CHECK_FOREIGN, /* a valid log of another topic (a file-name collision): refuse */
};

static enum log_check header_check(const struct shm_log *log, uint64_t file_bytes, char *reason,
                                   size_t reason_capacity) {
    const struct shm_log_header *header = log->header;
    if (header->magic != SHM_LOG_MAGIC) {
        intake_error_line(reason, reason_capacity, "not an intake log (bad magic)");
        return LOG_CHECK_DAMAGED;
    }
    if (header->version != SHM_LOG_VERSION) {
        intake_error_line(reason, reason_capacity,
                          "log format version %u; this intaked writes "
                          "version %u",
                          header->version, SHM_LOG_VERSION);
        return LOG_CHECK_DAMAGED;
    }
    if (header->identity_checksum != shm_log_identity_checksum(header)) {
        intake_error_line(reason, reason_capacity, "header identity checksum mismatch");
        return LOG_CHECK_DAMAGED;
    }
    uint64_t capacity = header->capacity_bytes;
    if (header->header_bytes != SHM_LOG_HEADER_BYTES || !intake_is_power_of_two(capacity) ||
        capacity < SHM_LOG_CAPACITY_MIN || capacity > SHM_LOG_CAPACITY_MAX ||
        file_bytes != SHM_LOG_HEADER_BYTES + capacity ||
        header->record_bytes_max != shm_log_record_bytes_max_for(capacity) ||
        header->consumer_slots != SHM_LOG_CONSUMER_SLOTS ||
        header->topic_length > RECORD_TOPIC_BYTES_MAX) {
        intake_error_line(reason, reason_capacity,
                          "header sizes do not match the file (%llu bytes)",
                          (unsigned long long)file_bytes);
        return LOG_CHECK_DAMAGED;
    }
    if (header->topic_length != strlen(log->topic) ||
        memcmp(header->topic, log->topic, header->topic_length + 1) != 0) {
        intake_error_line(reason, reason_capacity, "log file %s holds another topic (%.*s)",
                          log->log_path, (int)header->topic_length, header->topic);
        return LOG_CHECK_FOREIGN;
    }
    return LOG_CHECK_OK;
}

/* Walks every entry from retained_position to commit_position: sizes, checksums, consecutive
 * offsets, and the commit offset at the end. */
static bool ring_check(struct shm_log *log, uint64_t retained, uint64_t commit,
                       uint64_t commit_offset, char *reason, size_t reason_capacity) {
    uint64_t capacity = log->header->capacity_bytes;
    uint64_t position = retained, expected = SHM_LOG_OFFSET_NONE;
    while (position < commit) {
        uint64_t room = capacity - (position & (capacity - 1));
        if (room < SHM_LOG_ENTRY_HEADER_BYTES) {
            position += room; /* implicit padding */
            continue;
        }
        struct shm_log_entry_header entry;
        memcpy(&entry, shm_log_entry_at(log->ring, capacity, position), sizeof(entry));
        bool padding = entry.length == SHM_LOG_ENTRY_LENGTH_PADDING;
        uint64_t span = padding ? room : shm_log_entry_span(entry.length);
        const uint8_t *bytes = (const uint8_t *)shm_log_entry_at(log->ring, capacity, position) +
                               SHM_LOG_ENTRY_HEADER_BYTES;
        const char *problem = NULL;
        if (!padding && (entry.length > log->header->record_bytes_max || span > room))
            problem = "impossible length";
        else if (span > commit - position)
            problem = "runs past the commit position";
        else if (shm_log_entry_checksum(&entry, bytes) != entry.checksum)
            problem = "bad checksum";
        else if (expected != SHM_LOG_OFFSET_NONE && entry.offset != expected)
            problem = "offset out of sequence";
        if (problem != NULL) {
            intake_error_line(reason, reason_capacity, "entry at position %llu: %s",
                              (unsigned long long)position, problem);
            return false;
        }
        expected = padding ? entry.offset : entry.offset + 1;
        position += span;
    }
    /* The entries are checked and consecutive, so they name the commit offset. A writer that
     * died inside publish (after storing the offset, before the position) left a larger one:
     * take the entries' word (those offsets were never published). */
    if (expected != SHM_LOG_OFFSET_NONE && expected != commit_offset) {
        if (expected > commit_offset) {
            intake_error_line(reason, reason_capacity, "entries run past the commit offset");
            return false;
        }
        atomic_store_explicit(&log->header->commit_offset, expected, memory_order_relaxed);
    }
    return true;
}

/* Positions, then the ring. */
static bool state_check(struct shm_log *log, char *reason, size_t reason_capacity) {
    const struct shm_log_header *header = log->header;
    uint64_t commit = atomic_load_explicit(&header->commit_position, memory_order_relaxed);
    uint64_t retained = atomic_load_explicit(&header->retained_position, memory_order_relaxed);
    uint64_t commit_offset = atomic_load_explicit(&header->commit_offset, memory_order_relaxed);
    if (retained > commit || commit - retained > header->capacity_bytes ||
        commit % SHM_LOG_ENTRY_ALIGNMENT != 0 || retained % SHM_LOG_ENTRY_ALIGNMENT != 0 ||
        commit_offset == SHM_LOG_OFFSET_NONE) {
        intake_error_line(reason, reason_capacity,
                          "positions are inconsistent (retained %llu, "
                          "commit %llu)",
                          (unsigned long long)retained, (unsigned long long)commit);
        return false;
    }
    return ring_check(log, retained, commit, commit_offset, reason, reason_capacity);
}

/* Checks the region's identity with pread (not through a mapping a group member could
 * truncate under us). */
static bool consumers_check(const struct shm_log *log, int fd) {
    struct stat status;
    struct shm_log_consumers identity;
    size_t identity_bytes = offsetof(struct shm_log_consumers, registrations);
    return fstat(fd, &status) == 0 && S_ISREG(status.st_mode) && status.st_uid == geteuid() &&
           (uint64_t)status.st_size == SHM_LOG_CONSUMERS_FILE_BYTES &&
           pread(fd, &identity, identity_bytes, 0) == (ssize_t)identity_bytes &&
           identity.magic == SHM_LOG_CONSUMERS_MAGIC && identity.version == SHM_LOG_VERSION &&
           identity.slot_count == SHM_LOG_CONSUMER_SLOTS &&
           identity.log_created_wall_ns == log->header->created_wall_ns;
}

/* Opens the consumer region that belongs to the open log, or replaces a missing or damaged
 * one (named cursors in a damaged one are lost; said in one line). */
static int consumers_open(struct shm_log *log, char *why, size_t why_capacity) {
    int fd = open(log->consumers_path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd >= 0) {
        void *map = consumers_check(log, fd) ? mmap(NULL, SHM_LOG_CONSUMERS_FILE_BYTES,
                                                    PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
                                             : MAP_FAILED;
        if (map != MAP_FAILED) {
            consumers_map_set(log, fd, map);
            return 0;
        }
        close(fd);
        char moved_to[SHM_LOG_PATH_BYTES + 32], line[SHM_LOG_PATH_BYTES * 3];
        if (file_quarantine(log->consumers_path, moved_to, sizeof(moved_to)) == 0) {
            snprintf(line, sizeof(line),
                     "consumer region %s does not belong to the log or is "
                     "damaged: moved to %s, recreated (named cursors restart)",
                     log->consumers_path, moved_to);
            shm_log_line(log, line);
        }
    }
    return consumers_create(log, log->header->created_wall_ns, why, why_capacity);
}

/* Opens the existing log, locks it and maps it. -ENOENT when there is none. */
static int log_open_existing(struct shm_log *log, uint64_t *file_bytes, char *why,
                             size_t why_capacity) {
    log->fd = open(log->log_path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (log->fd < 0) {
        int error = errno;
        if (error != ENOENT)
            intake_error_line(why, why_capacity, "cannot open %s: %s", log->log_path,
                              strerror(error));
        return -error;
    }
    int locked = writer_lock(log->fd);
    if (locked != 0) {
        intake_error_line(why, why_capacity, "%s is open by another writer (%s)", log->log_path,
                          strerror(-locked));
        return locked == -EWOULDBLOCK ? -EBUSY : locked;
    }
    struct stat status;
    if (fstat(log->fd, &status) != 0) return -errno;
    *file_bytes = (uint64_t)status.st_size;
    if (!S_ISREG(status.st_mode) || status.st_uid != geteuid() ||
        *file_bytes < SHM_LOG_HEADER_BYTES + SHM_LOG_CAPACITY_MIN ||
        *file_bytes > SHM_LOG_HEADER_BYTES + SHM_LOG_CAPACITY_MAX)
        return 1; /* not mappable as a log: damaged */
    void *map = mmap(NULL, (size_t)*file_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, log->fd, 0);
    if (map == MAP_FAILED) {
        int error = errno;
        intake_error_line(why, why_capacity, "cannot map %s: %s", log->log_path, strerror(error));
        return -error;
    }
    log_map_set(log, map, *file_bytes);
    return 0;
}

/* Moves a damaged log and its region aside, saying why, and recreates both. Offsets continue
 * from `start_offset` (the damaged header's commit offset when its identity held). */
static int files_replace(struct shm_log *log, const char *reason, uint64_t start_offset, char *why,
                         size_t why_capacity) {
    char moved_to[SHM_LOG_PATH_BYTES + 32], ignored[SHM_LOG_PATH_BYTES + 32];
    char line[SHM_LOG_PATH_BYTES * 3 + 1024];
    int result = file_quarantine(log->log_path, moved_to, sizeof(moved_to));
    log_unmap(log);
    if (result < 0 && result != -ENOENT) {
        intake_error_line(why, why_capacity, "log %s is damaged (%s) and cannot be moved aside: %s",
                          log->log_path, reason, strerror(-result));
        return result;
    }
    (void)file_quarantine(log->consumers_path, ignored, sizeof(ignored));
    snprintf(line, sizeof(line),
             "log %s failed its checks (%s): moved to %s, recreated at "
             "offset %llu",
             log->log_path, reason, moved_to, (unsigned long long)start_offset);
    intake_error_line(log->error, sizeof(log->error), "%s", line);
    shm_log_line(log, line);
    result = files_create(log, start_offset, why, why_capacity);
    /* -EEXIST: another writer recreated it between our rename and link; never expected with
     * the directory lock of a single daemon, and refused as such. */
    if (result == -EEXIST)
        intake_error_line(why, why_capacity, "%s reappeared while being recreated", log->log_path);
    return result;
}

/* Opens the topic's files, creating them if there are none, and quarantining a damaged log. */
static int files_open(struct shm_log *log, char *why, size_t why_capacity) {
    uint64_t file_bytes = 0;
    int result = log_open_existing(log, &file_bytes, why, why_capacity);
    if (result == -ENOENT) {
        result = files_create(log, 0, why, why_capacity);
        if (result != -EEXIST) return result;
        result = log_open_existing(log, &file_bytes, why, why_capacity); /* lost the race */
    }
    if (result < 0) return result;
    char reason[400] = "";
    uint64_t start_offset = 0;
    enum log_check check = LOG_CHECK_DAMAGED;
    if (result == 1) {
        intake_error_line(reason, sizeof(reason),
                          "not a log file of ours with a mappable size "
                          "(%llu bytes)",
                          (unsigned long long)file_bytes);
    } else {
        check = header_check(log, file_bytes, reason, sizeof(reason));
        if (check == LOG_CHECK_FOREIGN) {
            intake_error_line(why, why_capacity, "%s", reason);
            return -EEXIST;
        }
        if (check == LOG_CHECK_OK) {
            start_offset = atomic_load_explicit(&log->header->commit_offset, memory_order_relaxed);
            if (start_offset == SHM_LOG_OFFSET_NONE) start_offset = 0;
            if (!state_check(log, reason, sizeof(reason))) check = LOG_CHECK_DAMAGED;
        }
        /* Read through a mapping that was truncated meanwhile: what we checked was zeros. */
        if (check == LOG_CHECK_OK && atomic_load(&log->log_broken)) {
            intake_error_line(reason, sizeof(reason), "the file was truncated while checked");
            check = LOG_CHECK_DAMAGED;
        }
    }
    if (check != LOG_CHECK_OK) return files_replace(log, reason, start_offset, why, why_capacity);
    /* An existing log gets today's mode and group (--shm-group may have changed). */
    result = file_permissions_set(log, log->fd, SHM_LOG_FILE_MODE);
    if (result < 0) {
        intake_error_line(why, why_capacity, "cannot set the mode of %s: %s", log->log_path,
                          strerror(-result));
        return result;
    }
    result = consumers_open(log, why, why_capacity);
    if (result == 0)
        result = file_permissions_set(log, log->consumers_fd, SHM_LOG_CONSUMERS_FILE_MODE);
    return result;
}

/* ---------------------------------------------------------- writer state --- */

/* The offset of the oldest retained record, read from the (already checked) ring. */
static uint64_t retained_offset_recover(const struct shm_log *log) {
    uint64_t position = log->retained_position;
    while (position < log->write_position) {
        uint64_t room = log->capacity - (position & (log->capacity - 1));
        const struct shm_log_entry_header *entry =
            shm_log_entry_at(log->ring, log->capacity, position);
        if (room >= SHM_LOG_ENTRY_HEADER_BYTES) return entry->offset; /* padding names it too */
        position += room;
    }
    return log->next_offset; /* nothing retained: the next record is the oldest */
}

static void consumers_scan(struct shm_log *log);

/* Takes over the shared state a previous writer left (checked) or a fresh header's. Entries
 * appended but never published by a previous writer are dropped: they were never acked. */
static void writer_state_load(struct shm_log *log) {
    struct shm_log_header *header = log->header;
    log->ring = (uint8_t *)header + SHM_LOG_HEADER_BYTES;
    log->capacity = header->capacity_bytes;
    log->record_bytes_max = header->record_bytes_max;
    log->write_position = atomic_load_explicit(&header->commit_position, memory_order_relaxed);
    log->published_position = log->write_position;
    log->next_offset = atomic_load_explicit(&header->commit_offset, memory_order_relaxed);
    log->published_offset = log->next_offset;
    log->retained_position = atomic_load_explicit(&header->retained_position, memory_order_relaxed);
    log->retained_offset = retained_offset_recover(log);
    atomic_store_explicit(&header->retained_offset, log->retained_offset, memory_order_relaxed);
    /* A writer that died while deciding a retirement left retiring_position ahead: nothing was
     * overwritten past retained_position, so take the retirement back. */
    atomic_store_explicit(&header->retiring_position, log->retained_position, memory_order_relaxed);
    /* A writer that died inside publish left the seqlock odd: make it even again. */
    log->commit_sequence =
        (atomic_load_explicit(&header->commit_sequence, memory_order_relaxed) + 1u) & ~1u;
    atomic_store_explicit(&header->commit_sequence, log->commit_sequence, memory_order_release);
    atomic_store_explicit(&header->retention, (uint32_t)log->config.retention,
                          memory_order_relaxed);
    atomic_store_explicit(&header->consumer_stale_ns, log->config.consumer_stale_ns,
                          memory_order_relaxed);
    atomic_store_explicit(&header->writer_pid, (int32_t)getpid(), memory_order_relaxed);
    log->registrations_seen =
        atomic_load_explicit(&log->consumers->registrations, memory_order_acquire);
    consumers_scan(log);
    log->space_limit = 0;
}

int shm_log_open_writer(const struct shm_log_config *config, struct shm_log **out, char *why,
                        size_t why_capacity) {
    INTAKE_ASSERT(out != NULL);
    INTAKE_ASSERT(why != NULL && why_capacity > 0);
    why[0] = '\0';
    *out = NULL;
    int result = config_check(config, why, why_capacity);
    if (result != 0) return result;
    result = shm_log_directory_prepare(config->directory, config->group_set, config->group, why,
                                       why_capacity);
    if (result != 0) return result;
    struct shm_log *log = calloc(1, sizeof(*log));
    if (log == NULL) return -ENOMEM;
    snprintf(log->topic, sizeof(log->topic), "%s", config->topic);
    snprintf(log->directory, sizeof(log->directory), "%s", config->directory);
    log->config = *config;
    log->config.topic = log->topic;
    log->config.directory = log->directory;
    char name[SHM_LOG_FILE_NAME_BYTES];
    shm_log_file_name(log->topic, name);
    snprintf(log->log_path, sizeof(log->log_path), "%s/%s", log->directory, name);
    shm_log_consumers_file_name(log->topic, name);
    snprintf(log->consumers_path, sizeof(log->consumers_path), "%s/%s", log->directory, name);
    log->fd = log->consumers_fd = -1;
    log->log_guard = log->consumers_guard = -1;
    result = files_open(log, why, why_capacity);
    if (result != 0) {
        log_unmap(log);
        free(log);
        return result;
    }
    writer_state_load(log);
    atomic_store_explicit(&log->prefault_base, (uint8_t *)log->header, memory_order_relaxed);
    atomic_store_explicit(&log->prefault_bytes, log->map_bytes, memory_order_release);
    *out = log;
    return 0;
}

void shm_log_close(struct shm_log *log) {
    if (log == NULL) return;
    if (log->header != NULL && !atomic_load(&log->log_broken)) {
        if (!shm_log_publish(log)) shm_log_line(log, "records appended at close were lost");
        atomic_store_explicit(&log->header->writer_pid, 0, memory_order_relaxed);
    }
    log_unmap(log);
    free(log);
}

uint64_t shm_log_prefault(struct shm_log *log, uint64_t offset, uint64_t bytes) {
    uint64_t map_bytes = atomic_load_explicit(&log->prefault_bytes, memory_order_acquire);
    uint8_t *base = atomic_load_explicit(&log->prefault_base, memory_order_relaxed);
    if (base == NULL || offset >= map_bytes) return 0;
    if (bytes > map_bytes - offset) bytes = map_bytes - offset;
    /* Write-faults the pages in without changing them: a page the writer already wrote is left
     * as it is, an untouched one is zeroed now instead of under the writer's copy. A mapping the
     * worker replaced since (a recreated log) makes this fail harmlessly. */
    if (madvise(base + offset, (size_t)bytes, MADV_POPULATE_WRITE) != 0) return 0;
    return bytes;
}

uint64_t shm_log_record_bytes_max(const struct shm_log *log) {
    return log->record_bytes_max;
}

uint64_t shm_log_next_offset(const struct shm_log *log) {
    return log->next_offset;
}

const char *shm_log_error(const struct shm_log *log) {
    return log->error;
}

/* ------------------------------------------------------------ consumers --- */

/* Whether some open file description holds a lock on slot `index` (its consumer is alive; the
 * kernel drops the lock when the process exits, whatever its pid namespace). */
static bool slot_locked(const struct shm_log *log, uint32_t index) {
    struct flock probe = {
        .l_type = F_WRLCK,
        .l_whence = SEEK_SET,
        .l_start = (off_t)shm_log_slot_lock_start(index),
        .l_len = (off_t)sizeof(struct shm_log_consumer_slot),
    };
    if (fcntl(log->consumers_fd, F_OFD_GETLK, &probe) != 0) return true; /* cannot tell: hold */
    return probe.l_type != F_UNLCK;
}

/* Full liveness scan: a slot holds the writer back while it is ACTIVE, its heartbeat is
 * neither in the future nor older than the stale time, and its lock is held. Nothing else in
 * the slot (pid, flags) is trusted. */
static void consumers_scan(struct shm_log *log) {
    uint64_t holders = 0;
    for (uint32_t index = 0; index < SHM_LOG_CONSUMER_SLOTS; index++) {
        struct shm_log_consumer_slot *slot = &log->consumers->slots[index];
        if (atomic_load_explicit(&slot->state, memory_order_acquire) != SHM_LOG_SLOT_ACTIVE)
            continue;
        uint64_t heartbeat_ns = atomic_load_explicit(&slot->heartbeat_ns, memory_order_relaxed);
        uint64_t now_ns = intake_now_ns(); /* after the load: an honest heartbeat is <= now */
        if (heartbeat_ns > now_ns || now_ns - heartbeat_ns > log->config.consumer_stale_ns)
            continue;
        if (slot_locked(log, index)) holders |= 1ull << index;
    }
    log->holders = holders;
}

/* Block mode: the highest position the writer may fill without overwriting bytes a live
 * consumer (as of the last scan) has not released. */
static uint64_t consumers_space_limit(struct shm_log *log) {
    uint64_t lowest = log->write_position;
    for (uint64_t remaining = log->holders; remaining != 0; remaining &= remaining - 1) {
        uint32_t index = (uint32_t)__builtin_ctzll(remaining);
        struct shm_log_consumer_slot *slot = &log->consumers->slots[index];
        if (atomic_load_explicit(&slot->state, memory_order_acquire) != SHM_LOG_SLOT_ACTIVE) {
            log->holders &= ~(1ull << index); /* closed since the scan */
            continue;
        }
        /* The acquire load pairs with the consumer's release store of read_position: its
         * reads of everything below happened before we overwrite it. */
        uint64_t released = atomic_load_explicit(&slot->read_position, memory_order_acquire);
        /* Behind retained_position: it was passed while stale and resumes there. */
        if (released < log->retained_position) released = log->retained_position;
        if (released < lowest) lowest = released;
    }
    return lowest + log->capacity;
}

/* ------------------------------------------------------------- appending --- */

/* The first entry boundary at or above `needed`, walking from retained_position; false when an
 * entry there is not what this writer wrote (the owner scribbled on the ring). */
static bool retire_target(struct shm_log *log, uint64_t needed, uint64_t *target,
                          uint64_t *target_offset) {
    uint64_t position = log->retained_position, offset = log->retained_offset;
    while (position < needed) {
        uint64_t room = log->capacity - (position & (log->capacity - 1));
        if (room < SHM_LOG_ENTRY_HEADER_BYTES) {
            position += room;
            continue;
        }
        struct shm_log_entry_header entry;
        memcpy(&entry, shm_log_entry_at(log->ring, log->capacity, position), sizeof(entry));
        if (entry.length == SHM_LOG_ENTRY_LENGTH_PADDING) {
            position += room;
            continue;
        }
        uint64_t span = shm_log_entry_span(entry.length);
        if (entry.length > log->record_bytes_max || span > room || entry.offset != offset)
            return false;
        offset++;
        position += span;
    }
    if (position > log->write_position) return false;
    *target = position;
    *target_offset = offset;
    return true;
}

enum room_result { ROOM_OK, ROOM_FULL, ROOM_BROKEN };

static enum room_result room_broken(struct shm_log *log) {
    intake_error_line(log->error, sizeof(log->error),
                      "the ring at position %llu is not what the "
                      "writer wrote (the file was modified under it)",
                      (unsigned long long)log->retained_position);
    atomic_store_explicit(&log->log_broken, true, memory_order_relaxed);
    return ROOM_BROKEN;
}

/* Makes sure the ring may be written up to `end`: retires old entries, in block mode only
 * those no live consumer still needs, through the registration handshake (format step 4). */
static enum room_result room_make(struct shm_log *log, uint64_t end) {
    INTAKE_ASSERT(end > log->write_position);
    if (end <= log->capacity) return ROOM_OK;
    uint64_t needed = end - log->capacity;
    if (needed <= log->retained_position) return ROOM_OK;
    bool block = log->config.retention == SHM_LOG_RETENTION_BLOCK;
    if (block && end > log->space_limit) {
        log->space_limit = consumers_space_limit(log);
        if (end > log->space_limit) return ROOM_FULL;
    }
    /* Retire a little ahead (a 64th of the ring, within what live consumers released), so
     * the handshake's fence is paid once per stretch of entries, not once per append. */
    uint64_t wanted = needed + log->capacity / SHM_LOG_RETIRE_AHEAD_DIVISOR;
    if (wanted > log->write_position) wanted = log->write_position;
    if (block && wanted > log->space_limit - log->capacity)
        wanted = log->space_limit - log->capacity;
    uint64_t target = 0, target_offset = 0;
    if (!retire_target(log, wanted, &target, &target_offset)) return room_broken(log);
    struct shm_log_header *header = log->header;
    /* Handshake, writer side: announce the retirement, then look for registrations. The
     * seq_cst fence pairs with the consumer's seq_cst fetch_add of registrations followed by
     * its load of retiring_position: either we see its registration, or it sees this store. */
    atomic_store_explicit(&header->retiring_position, target, memory_order_relaxed);
    if (block) {
        atomic_thread_fence(memory_order_seq_cst);
        uint64_t registrations =
            atomic_load_explicit(&log->consumers->registrations, memory_order_relaxed);
        if (registrations != log->registrations_seen) {
            /* Acquire: a registration we count is one whose slot we can read. */
            atomic_thread_fence(memory_order_acquire);
            log->registrations_seen = registrations;
            consumers_scan(log);
            log->space_limit = consumers_space_limit(log);
            if (end > log->space_limit) {
                /* A new consumer needs these bytes: take the announcement back. */
                atomic_store_explicit(&header->retiring_position, log->retained_position,
                                      memory_order_release);
                return ROOM_FULL;
            }
            /* It may still need some of the stretch retired ahead: retire only up to it. A
             * registrant that saw the larger announcement waits for this smaller one. */
            if (target > log->space_limit - log->capacity) {
                wanted = log->space_limit - log->capacity;
                if (!retire_target(log, wanted, &target, &target_offset)) return room_broken(log);
                atomic_store_explicit(&header->retiring_position, target, memory_order_release);
            }
        }
    }
    log->retained_position = target;
    log->retained_offset = target_offset;
    atomic_store_explicit(&header->retained_offset, target_offset, memory_order_relaxed);
    atomic_store_explicit(&header->retained_position, target, memory_order_relaxed);
    /* This release fence orders the store of retained_position above before every store that
     * overwrites the released bytes: a reader that sees any overwritten byte, then issues its
     * acquire fence, loads a retained_position past the entry it was reading (seqlock). */
    atomic_thread_fence(memory_order_release);
    return ROOM_OK;
}

static void entry_padding_write(struct shm_log *log, uint64_t position, uint64_t room) {
    if (room < SHM_LOG_ENTRY_HEADER_BYTES) return; /* implicit padding: no header fits */
    struct shm_log_entry_header entry = {
        .length = SHM_LOG_ENTRY_LENGTH_PADDING,
        .offset = log->next_offset,
    };
    entry.checksum = shm_log_entry_checksum(&entry, NULL);
    memcpy(log->ring + (position & (log->capacity - 1)), &entry, sizeof(entry));
}

/* Copies the slices to `bytes`, checksumming each chunk right after copying it (while it is in
 * cache), so the append reads the payload once. Returns the CRC32C continued from `crc`. */
static uint32_t copy_and_checksum(uint8_t *bytes, const struct slice *slices, uint32_t slice_count,
                                  uint32_t record_bytes, uint32_t crc) {
    uint32_t copied = 0;
    for (uint32_t index = 0; index < slice_count; index++) {
        INTAKE_ASSERT(slices[index].length <= record_bytes - copied);
        const uint8_t *source = slices[index].bytes;
        for (uint32_t done = 0; done < slices[index].length;) {
            uint32_t chunk = slices[index].length - done;
            if (chunk > SHM_LOG_COPY_CHUNK_BYTES) chunk = SHM_LOG_COPY_CHUNK_BYTES;
            memcpy(bytes + copied, source + done, chunk);
            crc = intake_crc32c(crc, bytes + copied, chunk);
            copied += chunk;
            done += chunk;
        }
    }
    INTAKE_ASSERT(copied == record_bytes);
    return crc;
}

enum shm_log_append_result shm_log_append(struct shm_log *log, const struct slice *slices,
                                          uint32_t slice_count, uint32_t record_bytes,
                                          uint64_t sequence, uint64_t receive_time_ns,
                                          uint64_t *offset) {
    INTAKE_ASSERT(slice_count <= RECORD_SLICES_MAX);
    if (log->header == NULL || atomic_load_explicit(&log->log_broken, memory_order_relaxed))
        return SHM_LOG_BROKEN;
    if (record_bytes > log->record_bytes_max) return SHM_LOG_TOO_LARGE;
    uint64_t span = shm_log_entry_span(record_bytes);
    uint64_t position = log->write_position;
    uint64_t room = log->capacity - (position & (log->capacity - 1));
    uint64_t padding = room < span ? room : 0;
    switch (room_make(log, position + padding + span)) {
    case ROOM_OK: break;
    case ROOM_FULL: return SHM_LOG_FULL;
    case ROOM_BROKEN: return SHM_LOG_BROKEN;
    }
    if (padding != 0) {
        entry_padding_write(log, position, room);
        position += padding;
    }
    struct shm_log_entry_header entry = {
        .length = record_bytes,
        .offset = log->next_offset,
        .sequence = sequence,
        .receive_time_ns = receive_time_ns,
    };
    uint8_t *at = log->ring + (position & (log->capacity - 1));
    entry.checksum = copy_and_checksum(at + SHM_LOG_ENTRY_HEADER_BYTES, slices, slice_count,
                                       record_bytes, shm_log_entry_header_crc(&entry));
    memcpy(at, &entry, sizeof(entry));
    *offset = log->next_offset;
    log->next_offset++;
    log->write_position = position + span;
    return SHM_LOG_APPENDED;
}

static long futex_wake_all(_Atomic uint32_t *word) {
    return syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* Recreates the files of a log that broke under us (truncated, or scribbled on), continuing at
 * the published offset. Worker thread; takes milliseconds (allocation), which is rare. */
static void log_recover(struct shm_log *log) {
    uint64_t now_ns = intake_now_ns();
    if (now_ns < log->recover_after_ns) return;
    log->recover_after_ns = now_ns + SHM_LOG_RECOVER_INTERVAL_NS;
    char reason[sizeof(log->error)];
    snprintf(reason, sizeof(reason), "%s",
             log->error[0] ? log->error
                           : "the file was truncated under the writer (SIGBUS recovered)");
    char why[512];
    if (files_replace(log, reason, log->published_offset, why, sizeof(why)) != 0) {
        intake_error_line(log->error, sizeof(log->error), "%s", why);
        shm_log_line(log, why);
        log_unmap(log);
        return;
    }
    writer_state_load(log);
}

/* Replaces a consumer region that was truncated under us; the log itself is intact. */
static void consumers_recover(struct shm_log *log) {
    fault_guard_unregister(log->consumers_guard);
    log->consumers_guard = -1;
    munmap(log->consumers, SHM_LOG_CONSUMERS_FILE_BYTES);
    close(log->consumers_fd);
    log->consumers = NULL;
    log->consumers_fd = -1;
    char why[512];
    if (consumers_open(log, why, sizeof(why)) != 0) {
        /* Without a region the log cannot serve consumers: treat it as broken. */
        intake_error_line(log->error, sizeof(log->error), "%s", why);
        atomic_store_explicit(&log->log_broken, true, memory_order_relaxed);
        return;
    }
    log->registrations_seen = atomic_load(&log->consumers->registrations);
    consumers_scan(log);
}

bool shm_log_publish(struct shm_log *log) {
    if (log->header != NULL && atomic_load_explicit(&log->consumers_broken, memory_order_relaxed))
        consumers_recover(log);
    if (log->header == NULL || atomic_load_explicit(&log->log_broken, memory_order_relaxed)) {
        bool nothing_lost = log->write_position == log->published_position;
        log_recover(log);
        return nothing_lost;
    }
    struct shm_log_header *header = log->header;
    if (log->write_position == log->published_position) return true;
    INTAKE_ASSERT(log->write_position > log->published_position);
    INTAKE_ASSERT((log->commit_sequence & 1u) == 0);
    /* Seqlock open: readers that want commit_position and commit_offset as a pair retry while
     * the sequence is odd. The release fence orders the odd value before the pair's stores. */
    atomic_store_explicit(&header->commit_sequence, log->commit_sequence + 1u,
                          memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&header->commit_offset, log->next_offset, memory_order_relaxed);
    /* The release store of commit_position publishes every entry below it (headers, bytes,
     * checksums): a reader that acquire-loads it may read all of them. */
    atomic_store_explicit(&header->commit_position, log->write_position, memory_order_release);
    /* Seqlock close: the release store of the even sequence publishes the consistent pair and
     * changes the futex word sleeping readers compare against. */
    log->commit_sequence += 2u;
    atomic_store_explicit(&header->commit_sequence, log->commit_sequence, memory_order_release);
    /* A fault under any store above (a truncated file) landed in anonymous memory: those
     * records were never readable. */
    if (atomic_load_explicit(&log->log_broken, memory_order_acquire)) {
        log_recover(log);
        return false;
    }
    log->published_position = log->write_position;
    log->published_offset = log->next_offset;
    /* Dekker with the reader's wait: the reader stores readers_waiting then loads
     * commit_position; we stored commit_position and now load readers_waiting. The seq_cst
     * fences on both sides make at least one of them see the other's store. */
    atomic_thread_fence(memory_order_seq_cst);
    _Atomic uint32_t *waiting = &log->consumers->readers_waiting;
    if (atomic_load_explicit(waiting, memory_order_relaxed) != 0 &&
        atomic_exchange_explicit(waiting, 0, memory_order_relaxed) != 0)
        (void)futex_wake_all(&header->commit_sequence);
    return true;
}

bool shm_log_refresh_space(struct shm_log *log) {
    if (log->header == NULL || atomic_load_explicit(&log->log_broken, memory_order_relaxed))
        return true; /* the next append reports it */
    uint64_t old_limit = log->space_limit;
    log->registrations_seen =
        atomic_load_explicit(&log->consumers->registrations, memory_order_acquire);
    consumers_scan(log);
    log->space_limit = consumers_space_limit(log);
    return log->space_limit > old_limit || log->config.retention == SHM_LOG_RETENTION_OVERWRITE;
}
