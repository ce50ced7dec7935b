/*
 * shm_log_files.c: a topic log's files (see shm_log_internal.h): the --shm-dir check, creating
 * the log and its consumer region whole, opening and checking existing ones (header,
 * positions, every entry's CRC32C), and quarantining what does not check out. Nothing read
 * from a file is asserted on. Thread: the worker that owns the log, or the log opener.
 */
#include "shm_log_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fault_guard.h"

void shm_log_line(const struct shm_log *log, const char *line) {
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

int shm_log_config_check(const struct shm_log_config *config, char *why, size_t why_capacity) {
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
    header->identity_checksum = shm_log_identity_checksum(header, intake_crc32c);
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

void shm_log_unmap(struct shm_log *log) {
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
    if (result < 0) shm_log_unmap(log);
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
    if (header->identity_checksum != shm_log_identity_checksum(header, intake_crc32c)) {
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
        else if (shm_log_entry_checksum(&entry, bytes, intake_crc32c) != entry.checksum)
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
int shm_log_consumers_open(struct shm_log *log, char *why, size_t why_capacity) {
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

/* Whether `path` still names the file `fd` has open (status: fd's, from fstat). Between our
 * open and our lock, `intake-topic --remove` may have unlinked the file under its own hold of
 * the lock, or a writer before us may have quarantined it: locking a file that is no longer
 * the topic's log would ack records nobody can ever read. */
static bool path_names_file(const char *path, const struct stat *status) {
    struct stat named;
    if (status->st_nlink == 0 || lstat(path, &named) != 0) return false;
    return named.st_ino == status->st_ino && named.st_dev == status->st_dev;
}

/* Opens the existing log, locks it and maps it. -ENOENT when there is none; -ESTALE when the
 * file we locked is no longer the one its path names (the caller opens the path again). */
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
    /* Checked under the lock: whoever removes or replaces the log does so holding it, so from
     * here on the path keeps naming this file for as long as we hold it. */
    if (!path_names_file(log->log_path, &status)) {
        close(log->fd); /* drops the lock on the file that is no longer the log */
        log->fd = -1;
        return -ESTALE;
    }
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
int shm_log_files_replace(struct shm_log *log, const char *reason, uint64_t start_offset, char *why,
                          size_t why_capacity) {
    char moved_to[SHM_LOG_PATH_BYTES + 32], ignored[SHM_LOG_PATH_BYTES + 32];
    char line[SHM_LOG_PATH_BYTES * 3 + 1024];
    int result = file_quarantine(log->log_path, moved_to, sizeof(moved_to));
    shm_log_unmap(log);
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

/* Opens the existing log or creates one: the log's file locked, and still named by its path.
 * A file removed or replaced while we waited for its lock is let go and the path looked up
 * again; so is a creation that lost the race to another writer. Bounded: a path that keeps
 * changing under us is an error. */
static int log_open_or_create(struct shm_log *log, uint64_t *file_bytes, char *why,
                              size_t why_capacity) {
    for (int attempt = 0; attempt < SHM_LOG_OPEN_ATTEMPTS; attempt++) {
        int result = log_open_existing(log, file_bytes, why, why_capacity);
        if (result == -ENOENT) {
            result = files_create(log, 0, why, why_capacity);
            if (result == -EEXIST) continue; /* another writer published one first: open it */
            return result == 0 ? 2 : result;
        }
        if (result != -ESTALE) return result;
    }
    intake_error_line(why, why_capacity, "%s kept being removed or replaced while opened",
                      log->log_path);
    return -EAGAIN;
}

/* Opens the topic's files, creating them if there are none, and quarantining a damaged log. */
int shm_log_files_open(struct shm_log *log, char *why, size_t why_capacity) {
    uint64_t file_bytes = 0;
    int result = log_open_or_create(log, &file_bytes, why, why_capacity);
    if (result == 2) return 0; /* created: nothing to check */
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
    /* A log of an earlier version whose identity holds (line 0 and the topic have kept their
     * layout since version 2): its records are not readable by this version's readers, so it
     * is quarantined like a damaged one, but its offsets continue. */
    if (check == LOG_CHECK_DAMAGED && result == 0 && log->header->magic == SHM_LOG_MAGIC &&
        log->header->version == 2 &&
        log->header->identity_checksum == shm_log_identity_checksum(log->header, intake_crc32c)) {
        start_offset = atomic_load_explicit(&log->header->commit_offset, memory_order_relaxed);
        if (start_offset == SHM_LOG_OFFSET_NONE) start_offset = 0;
    }
    if (check != LOG_CHECK_OK)
        return shm_log_files_replace(log, reason, start_offset, why, why_capacity);
    /* An existing log gets today's mode and group (--shm-group may have changed). */
    result = file_permissions_set(log, log->fd, SHM_LOG_FILE_MODE);
    if (result < 0) {
        intake_error_line(why, why_capacity, "cannot set the mode of %s: %s", log->log_path,
                          strerror(-result));
        return result;
    }
    result = shm_log_consumers_open(log, why, why_capacity);
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

void shm_log_consumers_scan(struct shm_log *log);

/* Takes over the shared state a previous writer left (checked) or a fresh header's. Entries
 * appended but never published by a previous writer are dropped: they were never acked. */
void shm_log_writer_state_load(struct shm_log *log) {
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
    shm_log_consumers_scan(log);
    log->space_limit = 0;
    shm_log_boundaries_reset(log); /* positions from a header: nothing noted applies */
}
