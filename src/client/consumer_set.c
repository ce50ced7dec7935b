/*
 * consumer_set.c: many topics of one directory through one handle (intake_consumer_set_* in
 * include/intake/consumer.h). Each topic is an ordinary consumer (consumer_open.c, consumer.c)
 * whose storage lives in one array made at open; the set adds the round-robin batch poll, the
 * directory listing that finds logs, and the wait on the directory's futex word
 * (intake.notify; docs/shm-log-format.md, "The directory's wake-up files").
 *
 * Thread: one thread per set. Allocates only in open: the listing uses getdents64 into a buffer
 * of the set, and members are slots of the array. Everything read from the directory and its
 * files is input: a file that does not check out is skipped or reported, never asserted on.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "consumer_internal.h"
#include "crc32c.h"
#include "fault_guard.h"
#include "intake/consumer.h"
#include "intake/shm_log_format.h"

/* Records one poll takes from a topic before moving on, unless the options say otherwise. */
#define SET_PER_TOPIC_BATCH_DEFAULT 64u
#define SET_PER_TOPIC_BATCH_MAX     4096u
/* Topics waiting for a log, or closed after an error, are tried again this often (and at once
 * when intake.notify says a log was created). */
#define SET_RETRY_INTERVAL_NS 1000000000ull
/* Without intake.notify, wait looks at the logs this often. */
#define SET_POLL_INTERVAL_NS 10000000ull
/* Descriptors a set leaves for the rest of the process when it raises the soft limit. */
#define SET_DESCRIPTORS_SPARE 256u
/* The directory listing buffer. */
#define SET_LISTING_BYTES 32768u

enum member_state {
    MEMBER_WAITING = 0, /* a listed topic without a log (yet) */
    MEMBER_OPEN = 1,    /* `consumer` is open */
    MEMBER_CLOSED = 2,  /* closed after an error; reopened at resume_offset when found */
};

struct set_member {
    struct intake_consumer consumer; /* valid while MEMBER_OPEN */
    enum member_state state;
    char topic[SHM_LOG_TOPIC_BYTES];
    char base_name[SHM_LOG_FILE_NAME_BYTES]; /* the log's file name without ".log" */
    uint64_t inode;                          /* of the log file it has open */
    uint64_t released_position;              /* read_position stored by its last poll */
    uint64_t resume_offset;                  /* MEMBER_CLOSED: the next offset it expects */
};

struct intake_consumer_set {
    char directory[4096];
    char name[INTAKE_CONSUMER_NAME_BYTES_MAX + 1];
    struct intake_consumer_options consumer_options;
    bool all_topics;
    uint32_t topics_max;
    uint32_t per_topic_batch;
    struct set_member *members; /* [topics_max]; the first member_count are in use */
    uint32_t member_count;
    int32_t *index;          /* [index_capacity]: member by base name hash, -1 empty */
    uint32_t index_capacity; /* a power of two, at least twice topics_max */
    uint32_t next_member;    /* where the next poll starts (round robin) */
    struct intake_consumer_record *scratch; /* [per_topic_batch] */
    int directory_fd;
    /* The directory's wake-up files; notify == NULL while the directory has none. */
    int notify_fd, waiters_fd;
    const struct shm_log_notify *notify;
    struct shm_log_notify_waiters *waiters;
    int notify_guard, waiters_guard;
    atomic_bool notify_broken, waiters_broken;
    uint64_t notify_inode;
    uint64_t logs_changed_seen;
    uint64_t retry_after_ns;     /* next retry of waiting and closed topics, and of intake.notify */
    uint64_t heartbeat_after_ns; /* next heartbeat of every open topic */
    uint64_t heartbeat_interval_ns;
    struct intake_consumer_set_stats stats;
    uint8_t listing[SET_LISTING_BYTES];
    char error[INTAKE_CONSUMER_ERROR_BYTES];
};

static void set_fail(struct intake_consumer_set *set, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
static void set_fail(struct intake_consumer_set *set, const char *format, ...) {
    va_list arguments;
    va_start(arguments, format);
    intake_error_vline(set->error, sizeof(set->error), format, arguments);
    va_end(arguments);
}

/* ------------------------------------------------------------ the index --- */

static uint32_t index_hash(const char *base_name) {
    return intake_crc32c(0, base_name, strlen(base_name));
}

static struct set_member *member_find(struct intake_consumer_set *set, const char *base_name) {
    uint32_t mask = set->index_capacity - 1;
    for (uint32_t probe = index_hash(base_name) & mask;; probe = (probe + 1) & mask) {
        int32_t at = set->index[probe];
        if (at < 0) return NULL;
        if (strcmp(set->members[at].base_name, base_name) == 0) return &set->members[at];
    }
}

/* A new member for `topic` (not yet in the set; the caller checked room). */
static struct set_member *member_add(struct intake_consumer_set *set, const char *topic) {
    INTAKE_ASSERT(set->member_count < set->topics_max);
    INTAKE_ASSERT(strlen(topic) < SHM_LOG_TOPIC_BYTES);
    struct set_member *member = &set->members[set->member_count];
    memset(member, 0, sizeof(*member));
    snprintf(member->topic, sizeof(member->topic), "%s", topic);
    shm_log_file_base_name(topic, member->base_name);
    member->state = MEMBER_WAITING;
    uint32_t mask = set->index_capacity - 1;
    uint32_t probe = index_hash(member->base_name) & mask;
    while (set->index[probe] >= 0) probe = (probe + 1) & mask;
    set->index[probe] = (int32_t)set->member_count++;
    return member;
}

/* ------------------------------------------------------ the wake-up files --- */

static void notify_unmap(struct intake_consumer_set *set) {
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
static void notify_try_open(struct intake_consumer_set *set) {
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
        notify_unmap(set);
        return;
    }
    set->waiters = waiters;
    set->waiters_guard = fault_guard_register(waiters, SHM_LOG_NOTIFY_FILE_BYTES,
                                              PROT_READ | PROT_WRITE, &set->waiters_broken);
    set->notify_inode = (uint64_t)status.st_ino;
    /* Anything created before this load is found by the listing that follows it. */
    set->logs_changed_seen = atomic_load_explicit(&set->notify->logs_changed, memory_order_acquire);
}

/* --------------------------------------------------------------- members --- */

/* Opens a member's log. `first`: found by the set's open (the caller's start mode); later
 * finds start at the oldest record or the committed cursor, a reopen after an error at the
 * offset it expected next. */
static int member_open(struct intake_consumer_set *set, struct set_member *member, bool first,
                       char *why, size_t why_capacity) {
    INTAKE_ASSERT(member->state != MEMBER_OPEN);
    struct intake_consumer_options options = set->consumer_options;
    if (member->state == MEMBER_CLOSED && member->resume_offset != SHM_LOG_OFFSET_NONE) {
        options.start = INTAKE_CONSUMER_START_OFFSET;
        options.start_offset = member->resume_offset;
    } else if (!first && options.start != INTAKE_CONSUMER_START_COMMITTED) {
        options.start = INTAKE_CONSUMER_START_OLDEST;
    }
    int result = consumer_open_in(&member->consumer, set->directory, member->topic, set->name,
                                  &options, why, why_capacity);
    if (result != 0) return result;
    struct stat status;
    member->inode = fstat(member->consumer.fd, &status) == 0 ? (uint64_t)status.st_ino : 0;
    /* The mapping outlives the descriptor, and nothing of a member uses it after open (the
     * set asks intake.notify whether a daemon runs, and the listing whether a log was
     * replaced): one descriptor per topic, the region's, which holds the slot's lock. */
    close(member->consumer.fd);
    member->consumer.fd = -1;
    member->released_position = member->consumer.position;
    member->state = MEMBER_OPEN;
    uint64_t slice_ns = consumer_wait_slice_ns(member->consumer.header);
    if (slice_ns < set->heartbeat_interval_ns) set->heartbeat_interval_ns = slice_ns;
    return 0;
}

/* Closes a member after an error (or a replaced log), keeping where it was. */
static void member_close(struct intake_consumer_set *set, struct set_member *member) {
    INTAKE_ASSERT(member->state == MEMBER_OPEN);
    member->resume_offset = member->consumer.expected_offset;
    consumer_release(&member->consumer);
    member->state = MEMBER_CLOSED;
    set->stats.topic_errors++;
}

/* Reads the real topic of log file `file_name` from its header (the name may be shortened).
 * False when it is not a log whose name matches its topic. */
static bool log_topic_read(struct intake_consumer_set *set, const char *file_name,
                           const char *base_name, char *topic) {
    int fd = openat(set->directory_fd, file_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return false;
    struct shm_log_header header_copy;
    bool read = pread(fd, &header_copy, sizeof(header_copy), 0) == (ssize_t)sizeof(header_copy);
    close(fd);
    if (!read) return false;
    const struct shm_log_header *header = &header_copy;
    uint32_t length = header->topic_length;
    if (header->magic != SHM_LOG_MAGIC || length == 0 || length >= SHM_LOG_TOPIC_BYTES ||
        memchr(header->topic, '\0', length) != NULL)
        return false;
    memcpy(topic, header->topic, length);
    topic[length] = '\0';
    char expected[SHM_LOG_FILE_NAME_BYTES];
    shm_log_file_base_name(topic, expected);
    return strcmp(expected, base_name) == 0;
}

/* ---------------------------------------------------------------- listing --- */

struct listing_entry { /* what getdents64 writes (linux_dirent64) */
    uint64_t inode;
    int64_t next_offset;
    unsigned short record_bytes;
    unsigned char type;
    char name[];
};

/* Opens (or reopens) the member whose log `file_name` is: a new log, a log recreated under a
 * member (another inode), or one that was missing. `first`: the set's open, where a failure
 * fails the open. Returns 0 or (first only) the failure. */
static int listing_entry_take(struct intake_consumer_set *set, const struct listing_entry *entry,
                              bool first, uint64_t *refused, char *why, size_t why_capacity) {
    size_t length = strlen(entry->name);
    size_t suffix = sizeof(SHM_LOG_FILE_SUFFIX) - 1;
    if (length <= suffix || length - suffix >= SHM_LOG_FILE_NAME_BYTES ||
        strcmp(entry->name + length - suffix, SHM_LOG_FILE_SUFFIX) != 0)
        return 0;
    char base_name[SHM_LOG_FILE_NAME_BYTES];
    memcpy(base_name, entry->name, length - suffix);
    base_name[length - suffix] = '\0';
    struct set_member *member = member_find(set, base_name);
    if (member == NULL) {
        char topic[SHM_LOG_TOPIC_BYTES];
        if (!set->all_topics || !log_topic_read(set, entry->name, base_name, topic)) return 0;
        if (set->member_count == set->topics_max) {
            (*refused)++;
            return 0;
        }
        member = member_add(set, topic);
    }
    if (member->state == MEMBER_OPEN) {
        if (member->inode == entry->inode) return 0;
        member_close(set, member); /* the writer recreated the log: continue in the new one */
    }
    int result = member_open(set, member, first, why, why_capacity);
    if (result == 0 || result == -ENOENT) return 0;
    if (first) return result;
    set->stats.topic_errors++;
    set_fail(set, "topic %s: %s", member->topic, why);
    return 0;
}

/* Lists the directory: opens logs of listed topics that appeared (or, following every topic,
 * any new log), reopens replaced ones, and picks up the wake-up files. */
static int set_rescan(struct intake_consumer_set *set, bool first, char *why, size_t why_capacity) {
    set->stats.rescans++;
    if (set->notify == NULL) notify_try_open(set);
    if (lseek(set->directory_fd, 0, SEEK_SET) < 0) {
        set_fail(set, "cannot list %s: %s", set->directory, strerror(errno));
        return first ? -errno : 0;
    }
    uint64_t refused = 0;
    for (;;) {
        long bytes = syscall(SYS_getdents64, set->directory_fd, set->listing, sizeof(set->listing));
        if (bytes < 0) {
            int error = errno;
            set_fail(set, "cannot list %s: %s", set->directory, strerror(error));
            if (first) return -error;
            break;
        }
        if (bytes == 0) break;
        for (long offset = 0; offset < bytes;) {
            const struct listing_entry *entry = (const void *)(set->listing + offset);
            offset += entry->record_bytes;
            /* A daemon that found intake.notify invalid made a new one: follow it. */
            if (set->notify != NULL && entry->inode != set->notify_inode &&
                strcmp(entry->name, SHM_LOG_NOTIFY_FILE_NAME) == 0)
                notify_unmap(set);
            int result = listing_entry_take(set, entry, first, &refused, why, why_capacity);
            if (result != 0) return result;
        }
    }
    if (set->notify == NULL) notify_try_open(set);
    if (refused > 0 && refused != set->stats.topics_refused)
        set_fail(set, "%llu topics in %s are not followed: the set follows at most %u",
                 (unsigned long long)refused, set->directory, set->topics_max);
    set->stats.topics_refused = refused;
    return 0;
}

/* Whether some topic is waiting for its log, or closed after an error. */
static bool set_has_pending(const struct intake_consumer_set *set) {
    for (uint32_t index = 0; index < set->member_count; index++)
        if (set->members[index].state != MEMBER_OPEN) return true;
    return false;
}

/* Once per poll or wait step: rescans when a log was created (or, at most once a second, when
 * some topic waits or there are no wake-up files to say so), and heartbeats every topic. */
static void set_maintain(struct intake_consumer_set *set, uint64_t now_ns) {
    bool changed = false;
    if (set->notify != NULL && atomic_load_explicit(&set->notify_broken, memory_order_relaxed))
        notify_unmap(set); /* truncated under us: reopened by the next rescan */
    if (set->notify != NULL) {
        /* The acquire load pairs with the daemon's release increment after the new log's
         * files were in place: the listing below finds them. */
        uint64_t changes = atomic_load_explicit(&set->notify->logs_changed, memory_order_acquire);
        changed = changes != set->logs_changed_seen;
        set->logs_changed_seen = changes;
    }
    if (!changed && now_ns >= set->retry_after_ns) {
        set->retry_after_ns = now_ns + SET_RETRY_INTERVAL_NS;
        changed = set->notify == NULL || set_has_pending(set);
    }
    char why[INTAKE_CONSUMER_ERROR_BYTES];
    if (changed) (void)set_rescan(set, false, why, sizeof(why));
    if (now_ns >= set->heartbeat_after_ns) {
        set->heartbeat_after_ns = now_ns + set->heartbeat_interval_ns;
        for (uint32_t index = 0; index < set->member_count; index++)
            if (set->members[index].state == MEMBER_OPEN)
                consumer_heartbeat(&set->members[index].consumer, now_ns);
    }
}

/* ---------------------------------------------------------------- reading --- */

/* Whether the member has nothing to read and nothing to release: skipped by poll without
 * touching its slot (its heartbeat comes from set_maintain). */
static bool member_idle(const struct set_member *member) {
    const struct intake_consumer *consumer = &member->consumer;
    if (consumer->position != member->released_position) return false;
    if (consumer->position < consumer->commit_cached) return false;
    /* The acquire load pairs with the writer's release store in publish, as in poll. */
    return atomic_load_explicit(&consumer->header->commit_position, memory_order_acquire) ==
           consumer->position;
}

int intake_consumer_set_poll(struct intake_consumer_set *set,
                             struct intake_consumer_set_record *records, uint32_t capacity) {
    INTAKE_ASSERT(set != NULL);
    if (capacity == 0 || records == NULL) return -EINVAL;
    uint64_t now_ns = intake_now_ns();
    set_maintain(set, now_ns);
    uint32_t member_count = set->member_count, start = set->next_member;
    uint32_t count = 0, visited = 0;
    INTAKE_ASSERT(start < member_count || member_count == 0);
    for (; visited < member_count && count < capacity; visited++) {
        uint32_t at =
            start + visited < member_count ? start + visited : start + visited - member_count;
        struct set_member *member = &set->members[at];
        if (member->state != MEMBER_OPEN || member_idle(member)) continue;
        uint32_t take = capacity - count;
        if (take > set->per_topic_batch) take = set->per_topic_batch;
        uint64_t released = member->consumer.position;
        int got = consumer_poll_batch(&member->consumer, now_ns, set->scratch, take);
        member->released_position = released;
        if (got < 0) {
            set_fail(set, "topic %s: %s", member->topic, member->consumer.error);
            if (got == -EIO)
                member_close(set, member); /* truncated: reopened when found again */
            else
                set->stats.topic_errors++;
            continue;
        }
        for (int index = 0; index < got; index++) {
            records[count].record = set->scratch[index];
            records[count].topic = member->topic;
            records[count].topic_index = at;
            set->stats.missed_total += set->scratch[index].missed;
            count++;
        }
    }
    if (member_count > 0) set->next_member = (start + visited) % member_count;
    return (int)count;
}

bool intake_consumer_set_record_valid(const struct intake_consumer_set *set,
                                      const struct intake_consumer_set_record *record) {
    INTAKE_ASSERT(record->topic_index < set->member_count);
    const struct set_member *member = &set->members[record->topic_index];
    if (member->state != MEMBER_OPEN) return false;
    return intake_consumer_record_valid(&member->consumer, &record->record);
}

/* Whether some open topic has records past its position (new ones, or a log that moved). */
static bool set_has_records(const struct intake_consumer_set *set) {
    for (uint32_t index = 0; index < set->member_count; index++) {
        const struct set_member *member = &set->members[index];
        if (member->state != MEMBER_OPEN) continue;
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
    uint64_t now_ns = intake_now_ns();
    uint64_t deadline_ns = timeout_ns > UINT64_MAX - now_ns ? UINT64_MAX : now_ns + timeout_ns;
    for (;;) {
        set_maintain(set, now_ns);
        uint64_t sleep_max_ns = set->heartbeat_interval_ns;
        if (set->notify == NULL) {
            if (set_has_records(set)) return 1;
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
        if (set_has_records(set)) return 1;
        atomic_store_explicit(&set->waiters->readers_waiting, 1, memory_order_relaxed);
        /* Dekker with the daemon (shm_notify_published): our flag store, then our loads of
         * every commit_position; its commit_position store, then its flag load. Both sides
         * fence seq_cst. */
        atomic_thread_fence(memory_order_seq_cst);
        if (atomic_load_explicit(&set->notify->logs_changed, memory_order_acquire) !=
                set->logs_changed_seen ||
            set_has_records(set))
            return 1;
        if (now_ns >= deadline_ns) return 0;
        uint64_t pause_ns = deadline_ns - now_ns;
        if (pause_ns > sleep_max_ns) pause_ns = sleep_max_ns;
        if (consumer_futex_wait(&set->notify->publish_sequence, sequence, pause_ns) != 0 &&
            errno == EINTR)
            return -EINTR;
        now_ns = intake_now_ns();
    }
}

void intake_consumer_set_commit(struct intake_consumer_set *set) {
    for (uint32_t index = 0; index < set->member_count; index++)
        if (set->members[index].state == MEMBER_OPEN)
            intake_consumer_commit(&set->members[index].consumer);
}

bool intake_consumer_set_writer_alive(const struct intake_consumer_set *set) {
    if (set->notify_fd < 0) return false;
    /* As intake_consumer_writer_alive: a shared lock is refused exactly while the daemon
     * holds its exclusive one; taken for an instant, released at once. */
    if (flock(set->notify_fd, LOCK_SH | LOCK_NB) != 0) return errno == EWOULDBLOCK;
    flock(set->notify_fd, LOCK_UN);
    return false;
}

void intake_consumer_set_stats(const struct intake_consumer_set *set,
                               struct intake_consumer_set_stats *out) {
    *out = set->stats;
    out->topics_followed = out->topics_waiting = 0;
    for (uint32_t index = 0; index < set->member_count; index++) {
        if (set->members[index].state == MEMBER_OPEN)
            out->topics_followed++;
        else
            out->topics_waiting++;
    }
}

const char *intake_consumer_set_error(const struct intake_consumer_set *set) {
    return set->error;
}

/* ------------------------------------------------------------ open, close --- */

static int set_options_check(const char *directory, const char *name,
                             const struct intake_consumer_set_options *options, char *why,
                             size_t why_capacity) {
    size_t name_length = name != NULL ? strlen(name) : 0;
    if (name_length == 0 || name_length > INTAKE_CONSUMER_NAME_BYTES_MAX) {
        intake_error_line(why, why_capacity, "consumer name must be 1..63 bytes");
        return -EINVAL;
    }
    if (directory == NULL || strlen(directory) >= 4096) {
        intake_error_line(why, why_capacity, "a directory (shorter than 4096 bytes) is required");
        return -EINVAL;
    }
    if (options->topics_max == 0 || options->topics_max > INTAKE_CONSUMER_SET_TOPICS_MAX) {
        intake_error_line(why, why_capacity, "topics_max must be 1..%u",
                          INTAKE_CONSUMER_SET_TOPICS_MAX);
        return -EINVAL;
    }
    if (options->all_topics) return 0;
    if (options->topic_count == 0 || options->topics == NULL ||
        options->topic_count > options->topics_max) {
        intake_error_line(why, why_capacity, "1..topics_max (%u) topics are required",
                          options->topics_max);
        return -EINVAL;
    }
    for (uint32_t index = 0; index < options->topic_count; index++) {
        const char *topic = options->topics[index];
        if (topic == NULL || topic[0] == '\0' || strlen(topic) >= SHM_LOG_TOPIC_BYTES) {
            intake_error_line(why, why_capacity, "topic %u must be 1..255 bytes", index);
            return -EINVAL;
        }
    }
    return 0;
}

void intake_consumer_set_close(struct intake_consumer_set *set) {
    if (set == NULL) return;
    for (uint32_t index = 0; set->members != NULL && index < set->member_count; index++)
        if (set->members[index].state == MEMBER_OPEN)
            consumer_release(&set->members[index].consumer);
    notify_unmap(set);
    if (set->directory_fd >= 0) close(set->directory_fd);
    free(set->members);
    free(set->index);
    free(set->scratch);
    free(set);
}

/* A set holds one descriptor per topic: make room under the soft limit, up to the hard one
 * (as Go's runtime does at startup), so a default limit of 1024 does not refuse a large set. */
static void descriptor_limit_raise(uint32_t topics_max) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
    rlim_t wanted = (rlim_t)topics_max + SET_DESCRIPTORS_SPARE;
    if (limit.rlim_cur == RLIM_INFINITY || limit.rlim_cur >= wanted) return;
    limit.rlim_cur =
        limit.rlim_max != RLIM_INFINITY && limit.rlim_max < wanted ? limit.rlim_max : wanted;
    (void)setrlimit(RLIMIT_NOFILE, &limit);
}

/* Allocates everything the set will ever use. */
static int set_allocate(struct intake_consumer_set *set,
                        const struct intake_consumer_set_options *options) {
    set->topics_max = options->topics_max;
    set->per_topic_batch =
        options->per_topic_batch == 0 ? SET_PER_TOPIC_BATCH_DEFAULT : options->per_topic_batch;
    if (set->per_topic_batch > SET_PER_TOPIC_BATCH_MAX)
        set->per_topic_batch = SET_PER_TOPIC_BATCH_MAX;
    set->index_capacity = 1;
    while (set->index_capacity < 2 * set->topics_max) set->index_capacity <<= 1;
    set->members = calloc(set->topics_max, sizeof(*set->members));
    set->index = malloc(set->index_capacity * sizeof(*set->index));
    set->scratch = calloc(set->per_topic_batch, sizeof(*set->scratch));
    if (set->members == NULL || set->index == NULL || set->scratch == NULL) return -ENOMEM;
    memset(set->index, 0xff, set->index_capacity * sizeof(*set->index)); /* all -1 */
    return 0;
}

int intake_consumer_set_open(const char *directory, const char *name,
                             const struct intake_consumer_set_options *options,
                             struct intake_consumer_set **out, char *why, size_t why_capacity) {
    INTAKE_ASSERT(out != NULL);
    INTAKE_ASSERT(options != NULL);
    *out = NULL;
    if (why_capacity > 0) why[0] = '\0';
    int result = set_options_check(directory, name, options, why, why_capacity);
    if (result != 0) return result;
    struct intake_consumer_set *set = calloc(1, sizeof(*set));
    if (set == NULL) {
        intake_error_line(why, why_capacity, "out of memory for the consumer set");
        return -ENOMEM;
    }
    set->directory_fd = set->notify_fd = set->waiters_fd = -1;
    set->notify_guard = set->waiters_guard = -1;
    snprintf(set->directory, sizeof(set->directory), "%s", directory);
    snprintf(set->name, sizeof(set->name), "%s", name);
    set->consumer_options = options->consumer;
    set->all_topics = options->all_topics;
    set->heartbeat_interval_ns = CONSUMER_WAIT_SLICE_NS_MAX;
    result = set_allocate(set, options);
    if (result != 0) {
        intake_error_line(why, why_capacity, "out of memory for %u topics", options->topics_max);
        intake_consumer_set_close(set);
        return result;
    }
    descriptor_limit_raise(options->topics_max);
    set->directory_fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (set->directory_fd < 0) {
        result = -errno;
        intake_error_line(why, why_capacity, "cannot open %s: %s", directory, strerror(-result));
        intake_consumer_set_close(set);
        return result;
    }
    for (uint32_t index = 0; !options->all_topics && index < options->topic_count; index++) {
        char base_name[SHM_LOG_FILE_NAME_BYTES];
        shm_log_file_base_name(options->topics[index], base_name);
        if (member_find(set, base_name) == NULL) member_add(set, options->topics[index]);
    }
    result = set_rescan(set, true, why, why_capacity);
    if (result != 0) {
        intake_consumer_set_close(set);
        return result;
    }
    uint64_t now_ns = intake_now_ns();
    set->retry_after_ns = now_ns + SET_RETRY_INTERVAL_NS;
    set->heartbeat_after_ns = now_ns + set->heartbeat_interval_ns;
    *out = set;
    return 0;
}
