/*
 * shm_notify.c: creates, reuses and bumps the directory's wake-up files (see shm_notify.h).
 * Main thread for open and close; any worker or the log opener for the bumps.
 */
#include "shm_notify.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fault_guard.h"

#define SHM_NOTIFY_PATH_BYTES   (4096 + 64)
#define SHM_NOTIFY_MODE         0640
#define SHM_NOTIFY_WAITERS_MODE 0660

struct notify_paths {
    char notify[SHM_NOTIFY_PATH_BYTES];
    char waiters[SHM_NOTIFY_PATH_BYTES];
};

/* Whether `fd` is a regular file of ours, of the files' size, with `magic`, the version and
 * (when non-zero) `created_wall_ns`. Read with pread: nothing is mapped yet. */
static bool notify_file_valid(int fd, uint64_t magic, uint64_t created_wall_ns) {
    struct stat status;
    struct shm_log_notify_waiters identity; /* line 0 is laid out alike in both files */
    if (fstat(fd, &status) != 0 || !S_ISREG(status.st_mode) || status.st_uid != geteuid() ||
        (uint64_t)status.st_size != SHM_LOG_NOTIFY_FILE_BYTES)
        return false;
    if (pread(fd, &identity, 64, 0) != 64) return false;
    return identity.magic == magic && identity.version == SHM_LOG_NOTIFY_VERSION &&
           identity.file_bytes == SHM_LOG_NOTIFY_FILE_BYTES &&
           (created_wall_ns == 0 || identity.created_wall_ns == created_wall_ns);
}

static int permissions_set(int fd, bool group_set, gid_t group, mode_t mode) {
    if (group_set && fchown(fd, (uid_t)-1, group) != 0) return -errno;
    if (fchmod(fd, mode) != 0) return -errno;
    return 0;
}

/* Creates `path` complete under a temporary name (identity line written), then renames it
 * into place, so a reader never sees a half-made file. Returns the descriptor. */
static int notify_file_create(const char *path, uint64_t magic, uint64_t created_wall_ns,
                              bool group_set, gid_t group, mode_t mode, char *why,
                              size_t why_capacity) {
    char creating[SHM_NOTIFY_PATH_BYTES + 32];
    snprintf(creating, sizeof(creating), "%s.creating.%d", path, (int)getpid());
    unlink(creating);
    int fd = open(creating, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) {
        int error = errno;
        intake_error_line(why, why_capacity, "cannot create %s: %s", creating, strerror(error));
        return -error;
    }
    struct shm_log_notify_waiters identity; /* line 0 is laid out alike in both files */
    memset(&identity, 0, sizeof(identity));
    identity.magic = magic;
    identity.version = SHM_LOG_NOTIFY_VERSION;
    identity.file_bytes = SHM_LOG_NOTIFY_FILE_BYTES;
    identity.created_wall_ns = created_wall_ns;
    int result = permissions_set(fd, group_set, group, mode);
    if (result == 0 && ftruncate(fd, SHM_LOG_NOTIFY_FILE_BYTES) != 0) result = -errno;
    if (result == 0) {
        int allocated = posix_fallocate(fd, 0, SHM_LOG_NOTIFY_FILE_BYTES);
        if (allocated != 0) result = -allocated;
    }
    if (result == 0 && pwrite(fd, &identity, 64, 0) != 64) result = -EIO;
    if (result == 0 && rename(creating, path) != 0) result = -errno;
    if (result < 0) {
        intake_error_line(why, why_capacity, "cannot create %s: %s", path, strerror(-result));
        unlink(creating);
        close(fd);
        return result;
    }
    return fd;
}

static int notify_map(int fd, int protection, void **out, char *why, size_t why_capacity,
                      const char *path) {
    void *map = mmap(NULL, SHM_LOG_NOTIFY_FILE_BYTES, protection, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        int error = errno;
        intake_error_line(why, why_capacity, "cannot map %s: %s", path, strerror(error));
        return -error;
    }
    *out = map;
    return 0;
}

/* intake.notify: an existing valid one is kept (sleepers on it keep working across restarts). */
static int notify_open_main(struct shm_notify *notify, const struct notify_paths *paths,
                            bool group_set, gid_t group, char *why, size_t why_capacity) {
    int fd = open(paths->notify, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd >= 0 && !notify_file_valid(fd, SHM_LOG_NOTIFY_MAGIC, 0)) {
        close(fd);
        fd = -1;
    }
    if (fd < 0)
        fd = notify_file_create(paths->notify, SHM_LOG_NOTIFY_MAGIC, intake_wall_ns(), group_set,
                                group, SHM_NOTIFY_MODE, why, why_capacity);
    if (fd < 0) return fd;
    notify->fd = fd;
    int result = permissions_set(fd, group_set, group, SHM_NOTIFY_MODE);
    if (result < 0) {
        intake_error_line(why, why_capacity, "cannot set the group of %s: %s", paths->notify,
                          strerror(-result));
        return result;
    }
    /* The directory lock already keeps a second daemon out; this one tells consumers that a
     * daemon serves the directory (they probe it with LOCK_SH | LOCK_NB). */
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        result = -errno;
        intake_error_line(why, why_capacity, "cannot lock %s: %s", paths->notify,
                          strerror(-result));
        return result;
    }
    void *map = NULL;
    result = notify_map(fd, PROT_READ | PROT_WRITE, &map, why, why_capacity, paths->notify);
    if (result < 0) return result;
    notify->notify = map;
    notify->notify_guard = fault_guard_register(map, SHM_LOG_NOTIFY_FILE_BYTES,
                                                PROT_READ | PROT_WRITE, &notify->notify_broken);
    return 0;
}

/* intake.notify-waiters: kept when it is the pair of intake.notify, recreated otherwise. */
static int notify_open_waiters(struct shm_notify *notify, const struct notify_paths *paths,
                               bool group_set, gid_t group, char *why, size_t why_capacity) {
    uint64_t created_wall_ns = notify->notify->created_wall_ns;
    int fd = open(paths->waiters, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd >= 0 && !notify_file_valid(fd, SHM_LOG_NOTIFY_WAITERS_MAGIC, created_wall_ns)) {
        close(fd);
        fd = -1;
    }
    if (fd < 0)
        fd = notify_file_create(paths->waiters, SHM_LOG_NOTIFY_WAITERS_MAGIC, created_wall_ns,
                                group_set, group, SHM_NOTIFY_WAITERS_MODE, why, why_capacity);
    if (fd < 0) return fd;
    notify->waiters_fd = fd;
    int result = permissions_set(fd, group_set, group, SHM_NOTIFY_WAITERS_MODE);
    if (result < 0) {
        intake_error_line(why, why_capacity, "cannot set the group of %s: %s", paths->waiters,
                          strerror(-result));
        return result;
    }
    void *map = NULL;
    result = notify_map(fd, PROT_READ | PROT_WRITE, &map, why, why_capacity, paths->waiters);
    if (result < 0) return result;
    notify->waiters = map;
    notify->waiters_guard = fault_guard_register(map, SHM_LOG_NOTIFY_FILE_BYTES,
                                                 PROT_READ | PROT_WRITE, &notify->waiters_broken);
    return 0;
}

void shm_notify_init(struct shm_notify *notify) {
    memset(notify, 0, sizeof(*notify));
    notify->fd = notify->waiters_fd = -1;
    notify->notify_guard = notify->waiters_guard = -1;
}

int shm_notify_open(struct shm_notify *notify, const char *directory, bool group_set, gid_t group,
                    char *why, size_t why_capacity) {
    INTAKE_ASSERT(notify != NULL && directory != NULL);
    shm_notify_init(notify);
    struct notify_paths paths;
    if (snprintf(paths.notify, sizeof(paths.notify), "%s/%s", directory,
                 SHM_LOG_NOTIFY_FILE_NAME) >= (int)sizeof(paths.notify) ||
        snprintf(paths.waiters, sizeof(paths.waiters), "%s/%s", directory,
                 SHM_LOG_NOTIFY_WAITERS_FILE_NAME) >= (int)sizeof(paths.waiters)) {
        intake_error_line(why, why_capacity, "--shm-dir path too long");
        return -ENAMETOOLONG;
    }
    int result = notify_open_main(notify, &paths, group_set, group, why, why_capacity);
    if (result == 0)
        result = notify_open_waiters(notify, &paths, group_set, group, why, why_capacity);
    if (result < 0) shm_notify_close(notify);
    return result;
}

void shm_notify_close(struct shm_notify *notify) {
    fault_guard_unregister(notify->notify_guard);
    fault_guard_unregister(notify->waiters_guard);
    notify->notify_guard = notify->waiters_guard = -1;
    if (notify->notify != NULL) munmap(notify->notify, SHM_LOG_NOTIFY_FILE_BYTES);
    if (notify->waiters != NULL) munmap(notify->waiters, SHM_LOG_NOTIFY_FILE_BYTES);
    notify->notify = NULL;
    notify->waiters = NULL;
    if (notify->fd >= 0) close(notify->fd); /* drops the flock */
    if (notify->waiters_fd >= 0) close(notify->waiters_fd);
    notify->fd = notify->waiters_fd = -1;
}

void shm_notify_published(struct shm_notify *notify) {
    INTAKE_ASSERT(notify->notify != NULL);
    INTAKE_ASSERT(notify->waiters != NULL);
    /* Release: a consumer that loads the new value (its futex compare value) also sees the
     * commit_position the caller stored before calling here. */
    atomic_fetch_add_explicit(&notify->notify->publish_sequence, 1, memory_order_release);
    /* Dekker with the consumer's wait: it stores readers_waiting, fences, then loads the logs'
     * commit positions; the caller stored a commit position and issued a seq_cst fence
     * (shm_log_publish's, shared with the log's own wake-up), and we now load the flag. At
     * least one side sees the other's store. */
    _Atomic uint32_t *waiting = &notify->waiters->readers_waiting;
    /* A truncated waiters file reads as zeros: wake on every publish instead of never. */
    bool broken = atomic_load_explicit(&notify->waiters_broken, memory_order_relaxed);
    if (!broken && atomic_load_explicit(waiting, memory_order_relaxed) == 0) return;
    if (!broken && atomic_exchange_explicit(waiting, 0, memory_order_relaxed) == 0) return;
    (void)syscall(SYS_futex, (uint32_t *)&notify->notify->publish_sequence, FUTEX_WAKE, INT_MAX,
                  NULL, NULL, 0);
}

void shm_notify_logs_changed(struct shm_notify *notify) {
    INTAKE_ASSERT(notify->notify != NULL);
    /* Release: a consumer that sees the new count and then lists the directory finds the new
     * log's files in place (they were linked before this call). */
    atomic_fetch_add_explicit(&notify->notify->logs_changed, 1, memory_order_release);
    /* Sleepers rescan only when they wake; a new log is rare, so always wake them. */
    atomic_fetch_add_explicit(&notify->notify->publish_sequence, 1, memory_order_release);
    (void)syscall(SYS_futex, (uint32_t *)&notify->notify->publish_sequence, FUTEX_WAKE, INT_MAX,
                  NULL, NULL, 0);
}
