/*
 * consumer_set_wait.c: a consumer set's side of the directory's wake-up files (intake.notify
 * and intake.notify-waiters; docs/shm-log-format.md, "The directory's wake-up files"): mapping
 * them, the wait on the directory's futex word, and whether a daemon serves the directory.
 * Thread: the set's. The files are input: ones that do not check out are ignored (the set then
 * polls), never asserted on.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "consumer_internal.h"
#include "consumer_set_internal.h"
#include "fault_guard.h"
#include "intake/consumer.h"
#include "intake/shm_log_format.h"

/* ------------------------------------------------------ the wake-up files --- */

void set_notify_unmap(struct intake_consumer_set *set) {
    fault_guard_unregister(set->notify_guard);
    fault_guard_unregister(set->waiters_guard);
    set->notify_guard = set->waiters_guard = -1;
    if (set->notify != NULL) munmap((void *)set->notify, SHM_LOG_NOTIFY_FILE_BYTES);
    if (set->waiters != NULL) munmap(set->waiters, SHM_LOG_NOTIFY_FILE_BYTES);
    if (set->notify_fd >= 0) close(set->notify_fd);
    if (set->waiters_fd >= 0) close(set->waiters_fd);
    set->notify = NULL;
    set->waiters = NULL;
    set->notify_fd = set->waiters_fd = -1;
    atomic_store(&set->notify_broken, false);
    atomic_store(&set->waiters_broken, false);
}

/* Opens and maps `name` in the directory when it is a wake-up file with `magic` (and, for the
 * waiters file, the notify file's creation time). Returns the mapping or NULL. */
static void *notify_file_map(struct intake_consumer_set *set, const char *name, uint64_t magic,
                             uint64_t created_wall_ns, int flags, int protection, int *fd_out) {
    int fd = openat(set->directory_fd, name, flags | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return NULL;
    struct stat status;
    struct shm_log_notify_waiters identity; /* line 0 is laid out alike in both files */
    if (fstat(fd, &status) != 0 || !S_ISREG(status.st_mode) ||
        (uint64_t)status.st_size != SHM_LOG_NOTIFY_FILE_BYTES ||
        pread(fd, &identity, 64, 0) != 64 || identity.magic != magic ||
        identity.version != SHM_LOG_NOTIFY_VERSION ||
        identity.file_bytes != SHM_LOG_NOTIFY_FILE_BYTES ||
        (created_wall_ns != 0 && identity.created_wall_ns != created_wall_ns)) {
        close(fd);
        return NULL;
    }
    void *map = mmap(NULL, SHM_LOG_NOTIFY_FILE_BYTES, protection, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        close(fd);
        return NULL;
    }
    *fd_out = fd;
    return map;
}

/* Maps the directory's wake-up files when both are there and paired; otherwise the set polls
 * (an older daemon, or none has run in this directory yet). */
void set_notify_try_open(struct intake_consumer_set *set) {
    INTAKE_ASSERT(set->notify == NULL);
    void *notify = notify_file_map(set, SHM_LOG_NOTIFY_FILE_NAME, SHM_LOG_NOTIFY_MAGIC, 0, O_RDONLY,
                                   PROT_READ, &set->notify_fd);
    if (notify == NULL) return;
    set->notify = notify;
    set->notify_guard =
        fault_guard_register(notify, SHM_LOG_NOTIFY_FILE_BYTES, PROT_READ, &set->notify_broken);
    void *waiters = notify_file_map(set, SHM_LOG_NOTIFY_WAITERS_FILE_NAME,
                                    SHM_LOG_NOTIFY_WAITERS_MAGIC, set->notify->created_wall_ns,
                                    O_RDWR, PROT_READ | PROT_WRITE, &set->waiters_fd);
    struct stat status;
    if (waiters == NULL || fstat(set->notify_fd, &status) != 0) {
        if (waiters != NULL) {
            munmap(waiters, SHM_LOG_NOTIFY_FILE_BYTES);
            close(set->waiters_fd);
            set->waiters_fd = -1;
        }
        set_notify_unmap(set);
        return;
    }
    set->waiters = waiters;
    set->waiters_guard = fault_guard_register(waiters, SHM_LOG_NOTIFY_FILE_BYTES,
                                              PROT_READ | PROT_WRITE, &set->waiters_broken);
    set->notify_inode = (uint64_t)status.st_ino;
    /* Anything created before this load is found by the listing that follows it. */
    set->logs_changed_seen = atomic_load_explicit(&set->notify->logs_changed, memory_order_acquire);
}

/* Whether some open topic has records past its position (new ones, or a log that moved). A
 * topic resting after a failed poll does not count until its rest ends; *wake_ns is lowered to
 * the earliest such end, so the wait is over in time to poll it again. */
static bool set_has_records(const struct intake_consumer_set *set, uint64_t now_ns,
                            uint64_t *wake_ns) {
    for (uint32_t index = 0; index < set->member_count; index++) {
        const struct set_member *member = &set->members[index];
        if (member->state != MEMBER_OPEN) continue;
        if (set_member_resting(member, now_ns)) {
            if (member->retry_after_ns < *wake_ns) *wake_ns = member->retry_after_ns;
            continue;
        }
        /* The acquire load pairs with the writer's release store of commit_position. */
        const struct shm_log_header *header = member->consumer.header;
        uint64_t commit = atomic_load_explicit(&header->commit_position, memory_order_acquire);
        uint64_t retained = atomic_load_explicit(&header->retained_position, memory_order_relaxed);
        /* A retained bound above commit is a transient poll would only wait out. */
        if (commit != member->consumer.position && retained <= commit) return true;
    }
    return false;
}

static void sleep_ns(uint64_t nanoseconds) {
    struct timespec pause = {(time_t)(nanoseconds / 1000000000ull),
                             (long)(nanoseconds % 1000000000ull)};
    nanosleep(&pause, NULL);
}

int intake_consumer_set_wait(struct intake_consumer_set *set, uint64_t timeout_ns) {
    if (set == NULL) return -EINVAL;
    uint64_t deadline_ns = intake_deadline_ns(timeout_ns);
    uint64_t now_ns = intake_now_ns();
    for (;;) {
        set_maintain(set, now_ns);
        uint64_t sleep_max_ns = set->heartbeat_interval_ns;
        /* A resting topic's rest ends a sleep: it is polled again then (a wake, not records). */
        uint64_t wake_ns = UINT64_MAX;
        if (set->notify == NULL) {
            if (set_has_records(set, now_ns, &wake_ns)) return 1;
            if (now_ns >= deadline_ns) return 0;
            uint64_t pause_ns = deadline_ns - now_ns;
            sleep_ns(pause_ns < SET_POLL_INTERVAL_NS ? pause_ns : SET_POLL_INTERVAL_NS);
            now_ns = intake_now_ns();
            continue;
        }
        /* The futex word is loaded before the checks below: a publish after this load changes
         * it, so FUTEX_WAIT returns at once instead of sleeping through the publish. */
        uint32_t sequence =
            atomic_load_explicit(&set->notify->publish_sequence, memory_order_acquire);
        /* Look before flagging: a woken waiter (or a busy set) finds records without asking
         * the daemon for another wake. */
        if (set_has_records(set, now_ns, &wake_ns)) return 1;
        if (now_ns >= deadline_ns) return 0; /* a zero timeout asks for no wake */
        if (wake_ns - now_ns < sleep_max_ns) sleep_max_ns = wake_ns - now_ns;
        atomic_store_explicit(&set->waiters->readers_waiting, 1, memory_order_relaxed);
        /* Dekker with the daemon (shm_notify_published): our flag store, then our loads of
         * every commit_position; its commit_position store, then its flag load. Both sides
         * fence seq_cst. */
        atomic_thread_fence(memory_order_seq_cst);
        if (atomic_load_explicit(&set->notify->logs_changed, memory_order_acquire) !=
                set->logs_changed_seen ||
            set_has_records(set, now_ns, &wake_ns))
            return 1;
        uint64_t pause_ns = deadline_ns - now_ns;
        if (pause_ns > sleep_max_ns) pause_ns = sleep_max_ns;
        if (consumer_futex_wait(&set->notify->publish_sequence, sequence, pause_ns) != 0 &&
            errno == EINTR)
            return -EINTR;
        now_ns = intake_now_ns();
    }
}

bool intake_consumer_set_writer_alive(const struct intake_consumer_set *set) {
    if (set == NULL || set->notify_fd < 0) return false;
    /* As intake_consumer_writer_alive: a shared lock is refused exactly while the daemon
     * holds its exclusive one; taken for an instant, released at once. */
    if (flock(set->notify_fd, LOCK_SH | LOCK_NB) != 0) return errno == EWOULDBLOCK;
    flock(set->notify_fd, LOCK_UN);
    return false;
}
