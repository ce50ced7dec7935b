/*
 * consumer_set.c: many topics of one directory through one handle (intake_consumer_set_* in
 * include/intake/consumer.h). Each topic is an ordinary consumer (consumer_open.c, consumer.c)
 * whose storage lives in one array made at open; this file adds the round-robin batch poll and
 * the directory listing that finds logs. The wait on the directory's futex word (intake.notify)
 * is consumer_set_wait.c.
 *
 * Thread: one thread per set. Allocates only in open: the listing uses getdents64 into a buffer
 * of the set, and members are slots of the array. Everything read from the directory and its
 * files is input: a file that does not check out is skipped or reported, never asserted on.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "client_abi.h"
#include "common.h"
#include "consumer_internal.h"
#include "consumer_set_internal.h"
#include "crc32c.h"
#include "intake/consumer.h"
#include "intake/shm_log_format.h"

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
    member->retry_after_ns = 0;
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
    if (set->notify == NULL) set_notify_try_open(set);
    if (lseek(set->directory_fd, 0, SEEK_SET) < 0) {
        int error = errno;
        set_fail(set, "cannot list %s: %s", set->directory, strerror(error));
        return first ? -error : 0;
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
                set_notify_unmap(set);
            int result = listing_entry_take(set, entry, first, &refused, why, why_capacity);
            if (result != 0) return result;
        }
    }
    if (set->notify == NULL) set_notify_try_open(set);
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
void set_maintain(struct intake_consumer_set *set, uint64_t now_ns) {
    bool changed = false;
    if (set->notify != NULL && atomic_load_explicit(&set->notify_broken, memory_order_relaxed))
        set_notify_unmap(set); /* truncated under us: reopened by the next rescan */
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
    if (set == NULL || capacity == 0 || records == NULL) return -EINVAL;
    uint64_t now_ns = intake_now_ns();
    set_maintain(set, now_ns);
    uint32_t member_count = set->member_count, start = set->next_member;
    uint32_t count = 0, visited = 0;
    INTAKE_ASSERT(start < member_count || member_count == 0);
    for (; visited < member_count && count < capacity; visited++) {
        uint32_t at =
            start + visited < member_count ? start + visited : start + visited - member_count;
        struct set_member *member = &set->members[at];
        if (member->state != MEMBER_OPEN || set_member_resting(member, now_ns) ||
            member_idle(member))
            continue;
        uint32_t take = capacity - count;
        if (take > set->per_topic_batch) take = set->per_topic_batch;
        uint64_t released = member->consumer.position;
        int got = consumer_poll_batch(&member->consumer, now_ns, set->scratch, take);
        member->released_position = released;
        if (got < 0) {
            set_fail(set, "topic %s: %s", member->topic, member->consumer.error);
            if (got == -EIO) {
                member_close(set, member); /* truncated: reopened when found again */
                continue;
            }
            /* The others keep being served; this one rests, so neither poll nor wait spins on
             * it (a damaged log stays damaged until the writer recreates it, which the
             * listing sees as a new file). */
            set->stats.topic_errors++;
            member->retry_after_ns =
                now_ns + (got == -EAGAIN ? SET_LAPPED_RETRY_NS : SET_DAMAGED_RETRY_NS);
            continue;
        }
        member->retry_after_ns = 0;
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
    if (set == NULL || record == NULL || record->topic_index >= set->member_count) return false;
    const struct set_member *member = &set->members[record->topic_index];
    if (member->state != MEMBER_OPEN) return false;
    return intake_consumer_record_valid(&member->consumer, &record->record);
}

void intake_consumer_set_commit(struct intake_consumer_set *set) {
    if (set == NULL) return;
    for (uint32_t index = 0; index < set->member_count; index++)
        if (set->members[index].state == MEMBER_OPEN)
            intake_consumer_commit(&set->members[index].consumer);
}

void intake_consumer_set_stats(const struct intake_consumer_set *set,
                               struct intake_consumer_set_stats *out) {
    if (set == NULL || out == NULL) return;
    struct intake_consumer_set_stats ours = set->stats;
    ours.struct_bytes = sizeof(ours);
    ours.topics_followed = ours.topics_waiting = 0;
    for (uint32_t index = 0; index < set->member_count; index++) {
        if (set->members[index].state == MEMBER_OPEN)
            ours.topics_followed++;
        else
            ours.topics_waiting++;
    }
    (void)client_struct_out(out, &ours, sizeof(ours), CLIENT_SET_STATS_BYTES_V1);
}

const char *intake_consumer_set_error(const struct intake_consumer_set *set) {
    if (set == NULL) return "no consumer set (NULL)";
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
    set_notify_unmap(set);
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
                             const struct intake_consumer_set_options *given,
                             struct intake_consumer_set **out, char *why, size_t why_capacity) {
    if (why == NULL) why_capacity = 0;
    if (why_capacity > 0) why[0] = '\0';
    if (out == NULL || given == NULL) {
        intake_error_line(why, why_capacity,
                          "intake_consumer_set_open: options and out are required");
        return -EINVAL;
    }
    *out = NULL;
    struct intake_consumer_set_options set_options;
    const struct intake_consumer_set_options *options = &set_options;
    int result = client_struct_in(&set_options, sizeof(set_options), CLIENT_SET_OPTIONS_BYTES_V1,
                                  given, "intake_consumer_set_options", why, why_capacity);
    if (result != 0) return result;
    struct intake_consumer_options consumer_options = INTAKE_CONSUMER_OPTIONS_INIT;
    if (options->consumer != NULL) {
        result = client_struct_in(&consumer_options, sizeof(consumer_options),
                                  CLIENT_CONSUMER_OPTIONS_BYTES_V1, options->consumer,
                                  "intake_consumer_options", why, why_capacity);
        if (result != 0) return result;
    }
    result = set_options_check(directory, name, options, why, why_capacity);
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
    set->consumer_options = consumer_options;
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
