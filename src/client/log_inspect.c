/*
 * log_inspect.c: read-only looks at a directory's logs and their consumers (intake_log_inspect
 * in include/intake/consumer.h), for intake-stat, intaked's /metrics and the Kafka bridge.
 *
 * An inspector caches, per log, what does not change while the log's files stay the same: the
 * files' identities and read-only mappings of the log's header page and of its consumer region,
 * each registered with the SIGBUS guard (base/fault_guard.h). A look then reads the header's
 * positions and the slots from memory. What invalidates the cache: a guard that fired (the file
 * was truncated: -EIO, mapped afresh at the next look), intake.notify's logs_changed moving (a
 * log created or recreated), and a revalidation interval (a removed log). Revalidating is one
 * fstatat per file; remapping is what a first look does.
 *
 * Thread: the inspector's owner. Allocates only in open. Everything read from the files is
 * input: checked, never asserted on; the slots are copied bounded and reported as found.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "consumer_internal.h"
#include "crc32c.h"
#include "fault_guard.h"
#include "intake/consumer.h"
#include "intake/shm_log_format.h"

_Static_assert(INTAKE_LOG_CONSUMERS_MAX == SHM_LOG_CONSUMER_SLOTS, "one entry per slot");
_Static_assert(INTAKE_LOG_TOPIC_BYTES == SHM_LOG_TOPIC_BYTES, "topic room");
_Static_assert(INTAKE_LOG_CONSUMER_NAME_BYTES == SHM_LOG_CONSUMER_NAME_BYTES, "name room");
_Static_assert(INTAKE_LOG_OFFSET_NONE == SHM_LOG_OFFSET_NONE, "no offset");
_Static_assert((int)INTAKE_LOG_CONSUMER_ACTIVE == (int)SHM_LOG_SLOT_ACTIVE, "slot states");
_Static_assert((int)INTAKE_LOG_CONSUMER_DETACHED == (int)SHM_LOG_SLOT_DETACHED, "slot states");

/* The size of struct intake_log_info in 1.0, which this is: what struct_bytes 0 means. A later
 * version that adds fields writes the number here instead of the sizeof. */
#define CLIENT_LOG_INFO_BYTES_V1 sizeof(struct intake_log_info)
/* Most logs one inspector remembers. */
#define INSPECT_LOGS_MAX (1u << 20)
/* Without intake.notify (no daemon ran in the directory), a log's files are checked this often. */
#define INSPECT_REVALIDATE_UNNOTIFIED_NS 1000000000ull
#define INSPECT_REVALIDATE_NS            (INTAKE_LOG_INSPECT_REVALIDATE_SECONDS * 1000000000ull)
/* intake.notify itself is looked up again this often (a daemon may have replaced it). */
#define INSPECT_NOTIFY_CHECK_NS 1000000000ull
/* Logs' periodic checks are spread over this many phases (see inspected_log.phase). */
#define INSPECT_PHASES 16u
/* A region's slots are all read again at least this often (see slots_in_use). */
#define INSPECT_SLOTS_RESCAN_NS 10000000000ull
/* Attempts at the seqlocked commit pair before taking the position alone. */
#define INSPECT_SEQLOCK_ATTEMPTS 64

struct file_identity {
    uint64_t device;
    uint64_t inode;
};

/* One remembered log: its files' identities and read-only, guarded mappings. */
struct inspected_log {
    char base_name[SHM_LOG_FILE_NAME_BYTES]; /* "" while the entry is unused */
    bool mapped;
    const struct shm_log_header *header;       /* the header page only */
    const struct shm_log_consumers *consumers; /* NULL when the region did not check out */
    int header_guard, consumers_guard;
    atomic_bool header_broken, consumers_broken;
    struct file_identity log_file, consumers_file;
    /* The header's identity, checked when mapped (the writer never changes it afterwards;
     * kept here so a header rewritten under us cannot make a look read out of bounds). */
    char topic[SHM_LOG_TOPIC_BYTES];
    uint64_t created_wall_ns, capacity_bytes, record_bytes_max;
    uint64_t validated_ns;      /* when the paths were last seen naming these files */
    uint64_t logs_changed_seen; /* intake.notify's counter then */
    uint64_t last_used;         /* the inspector's look counter at the last look */
    /* Slots in use (active or detached) at the last full scan of the region, bit per slot:
     * a look reads only those. A slot comes into use only through a registration, which bumps
     * the region's counter (format step 4), so the set is scanned again when the counter moved
     * (and every INSPECT_SLOTS_RESCAN_NS, for a writer of slots that skips the protocol). */
    uint64_t slots_in_use;
    uint64_t registrations_seen;
    uint64_t slots_scanned_ns;
    /* 0..INSPECT_PHASES-1: stretches this log's revalidation and rescan intervals by its
     * share, so a thousand logs looked at together do not all check their files, or scan all
     * their slots, in the same look. */
    uint32_t phase;
};

struct intake_log_inspector {
    char directory[4096];
    int directory_fd;
    struct inspected_log *logs; /* [logs_max] */
    uint32_t logs_max;
    uint32_t log_count;
    int32_t *index; /* [index_capacity]: entry by base name hash, -1 empty */
    uint32_t index_capacity;
    uint64_t looks;
    /* The directory's intake.notify, for its logs_changed counter; NULL when absent. */
    const struct shm_log_notify *notify;
    int notify_guard;
    atomic_bool notify_broken;
    struct file_identity notify_file;
    uint64_t notify_checked_ns;
};

static void fail(char *why, size_t why_capacity, const char *format, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(char *why, size_t why_capacity, const char *format, ...) {
    va_list arguments;
    va_start(arguments, format);
    intake_error_vline(why, why_capacity, format, arguments);
    va_end(arguments);
}

static struct file_identity identity_of(const struct stat *status) {
    return (struct file_identity){(uint64_t)status->st_dev, (uint64_t)status->st_ino};
}

static bool identity_equal(struct file_identity a, struct file_identity b) {
    return a.device == b.device && a.inode == b.inode;
}

/* Whether `name` in the directory is (still) the file `identity`. */
static bool path_names(const struct intake_log_inspector *inspector, const char *name,
                       struct file_identity identity) {
    struct stat status;
    return fstatat(inspector->directory_fd, name, &status, AT_SYMLINK_NOFOLLOW) == 0 &&
           identity_equal(identity_of(&status), identity);
}

/* Opens `name` read-only and maps its first `bytes` (the file must be a regular file of at
 * least that size, or exactly that size when `exact`); guarded. NULL with errno set. */
static const void *file_map(const struct intake_log_inspector *inspector, const char *name,
                            size_t bytes, bool exact, struct file_identity *identity,
                            uint64_t *file_bytes, int *guard, atomic_bool *broken) {
    int fd = openat(inspector->directory_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return NULL;
    struct stat status;
    int error = 0;
    if (fstat(fd, &status) != 0)
        error = errno;
    else if (!S_ISREG(status.st_mode) || (uint64_t)status.st_size < bytes ||
             (exact && (uint64_t)status.st_size != bytes))
        error = EBADMSG;
    void *map = error == 0 ? mmap(NULL, bytes, PROT_READ, MAP_SHARED, fd, 0) : MAP_FAILED;
    if (error == 0 && map == MAP_FAILED) error = errno;
    close(fd); /* the mapping keeps the file */
    if (error != 0) {
        errno = error;
        return NULL;
    }
    atomic_store_explicit(broken, false, memory_order_relaxed);
    *guard = fault_guard_register(map, bytes, PROT_READ, broken);
    if (*guard < 0) { /* unguarded, a truncation could kill the process: do without */
        munmap(map, bytes);
        errno = ENOSPC;
        return NULL;
    }
    *identity = identity_of(&status);
    *file_bytes = (uint64_t)status.st_size;
    return map;
}

static void file_unmap(const void *map, size_t bytes, int *guard) {
    fault_guard_unregister(*guard);
    *guard = -1;
    if (map != NULL) munmap((void *)map, bytes);
}

/* ------------------------------------------------------------- intake.notify --- */

static void notify_unmap(struct intake_log_inspector *inspector) {
    file_unmap(inspector->notify, SHM_LOG_NOTIFY_FILE_BYTES, &inspector->notify_guard);
    inspector->notify = NULL;
}

/* Keeps intake.notify mapped while the directory has a valid one; looked up at most once a
 * second, and at once after its mapping broke. */
static void notify_refresh(struct intake_log_inspector *inspector, uint64_t now_ns) {
    if (inspector->notify != NULL &&
        atomic_load_explicit(&inspector->notify_broken, memory_order_acquire)) {
        notify_unmap(inspector);
        inspector->notify_checked_ns = 0;
    }
    if (now_ns < inspector->notify_checked_ns + INSPECT_NOTIFY_CHECK_NS) return;
    inspector->notify_checked_ns = now_ns;
    if (inspector->notify != NULL &&
        path_names(inspector, SHM_LOG_NOTIFY_FILE_NAME, inspector->notify_file))
        return;
    if (inspector->notify != NULL) notify_unmap(inspector);
    uint64_t file_bytes = 0;
    const struct shm_log_notify *notify = file_map(
        inspector, SHM_LOG_NOTIFY_FILE_NAME, SHM_LOG_NOTIFY_FILE_BYTES, true,
        &inspector->notify_file, &file_bytes, &inspector->notify_guard, &inspector->notify_broken);
    if (notify == NULL) return;
    inspector->notify = notify;
    if (notify->magic != SHM_LOG_NOTIFY_MAGIC || notify->version != SHM_LOG_NOTIFY_VERSION ||
        notify->file_bytes != SHM_LOG_NOTIFY_FILE_BYTES ||
        atomic_load_explicit(&inspector->notify_broken, memory_order_acquire))
        notify_unmap(inspector);
}

/* intake.notify's logs_changed, or 0 without one. */
static uint64_t logs_changed_now(const struct intake_log_inspector *inspector) {
    if (inspector->notify == NULL) return 0;
    /* The acquire load pairs with the daemon's release increment after a log's files were in
     * place: a look that sees it moved finds the new files by their paths. */
    return atomic_load_explicit(&inspector->notify->logs_changed, memory_order_acquire);
}

/* ------------------------------------------------------------------- the cache --- */

static uint32_t index_hash(const char *base_name) {
    return intake_crc32c(0, base_name, strlen(base_name));
}

static void index_insert(struct intake_log_inspector *inspector, uint32_t at) {
    uint32_t mask = inspector->index_capacity - 1;
    uint32_t probe = index_hash(inspector->logs[at].base_name) & mask;
    while (inspector->index[probe] >= 0) probe = (probe + 1) & mask;
    inspector->index[probe] = (int32_t)at;
}

static struct inspected_log *log_find(struct intake_log_inspector *inspector,
                                      const char *base_name) {
    uint32_t mask = inspector->index_capacity - 1;
    for (uint32_t probe = index_hash(base_name) & mask;; probe = (probe + 1) & mask) {
        int32_t at = inspector->index[probe];
        if (at < 0) return NULL;
        if (strcmp(inspector->logs[at].base_name, base_name) == 0) return &inspector->logs[at];
    }
}

static void log_unmap(struct inspected_log *log) {
    file_unmap(log->header, SHM_LOG_HEADER_BYTES, &log->header_guard);
    file_unmap(log->consumers, SHM_LOG_CONSUMERS_FILE_BYTES, &log->consumers_guard);
    log->header = NULL;
    log->consumers = NULL;
    log->mapped = false;
}

/* A place for `base_name`: a new entry while there is room, else the least recently used one
 * (unmapped, and the index rebuilt without it: rare, and bounded by logs_max). */
static struct inspected_log *log_add(struct intake_log_inspector *inspector,
                                     const char *base_name) {
    uint32_t at = inspector->log_count;
    if (at < inspector->logs_max) {
        inspector->log_count++;
    } else {
        at = 0;
        for (uint32_t index = 1; index < inspector->log_count; index++)
            if (inspector->logs[index].last_used < inspector->logs[at].last_used) at = index;
        log_unmap(&inspector->logs[at]);
        memset(inspector->index, 0xff, inspector->index_capacity * sizeof(*inspector->index));
        inspector->logs[at].base_name[0] = '\0';
        for (uint32_t index = 0; index < inspector->log_count; index++)
            if (index != at) index_insert(inspector, index);
    }
    struct inspected_log *log = &inspector->logs[at];
    memset(log, 0, sizeof(*log));
    log->header_guard = log->consumers_guard = -1;
    log->phase = at % INSPECT_PHASES;
    snprintf(log->base_name, sizeof(log->base_name), "%s", base_name);
    index_insert(inspector, at);
    return log;
}

/* Checks a mapped log header (as a consumer does): 0, or a negative errno with the reason. */
static int header_check(const struct shm_log_header *header, uint64_t file_bytes,
                        const char *base_name, const char *path, char *why, size_t why_capacity) {
    if (header->magic != SHM_LOG_MAGIC) {
        fail(why, why_capacity, "%s: not an intake log (bad magic)", path);
        return -EBADMSG;
    }
    if (header->version != SHM_LOG_VERSION) {
        fail(why, why_capacity, "%s: log format version %u; this library reads version %u", path,
             header->version, SHM_LOG_VERSION);
        return -EPROTO;
    }
    uint64_t capacity = header->capacity_bytes;
    if (header->identity_checksum != shm_log_identity_checksum(header, intake_crc32c) ||
        header->header_bytes != SHM_LOG_HEADER_BYTES || !intake_is_power_of_two(capacity) ||
        capacity < SHM_LOG_CAPACITY_MIN || capacity > SHM_LOG_CAPACITY_MAX ||
        file_bytes != SHM_LOG_HEADER_BYTES + capacity ||
        header->record_bytes_max != shm_log_record_bytes_max_for(capacity) ||
        header->topic_length == 0 || header->topic_length >= SHM_LOG_TOPIC_BYTES ||
        memchr(header->topic, '\0', header->topic_length) != NULL) {
        fail(why, why_capacity, "%s: log header is damaged (checksum or sizes)", path);
        return -EBADMSG;
    }
    char topic[SHM_LOG_TOPIC_BYTES], expected[SHM_LOG_FILE_NAME_BYTES];
    memcpy(topic, header->topic, header->topic_length);
    topic[header->topic_length] = '\0';
    shm_log_file_base_name(topic, expected);
    if (strcmp(expected, base_name) != 0) {
        fail(why, why_capacity, "%s holds topic %s, whose files have another name", path, topic);
        return -EBADMSG;
    }
    return 0;
}

static bool consumers_check(const struct shm_log_consumers *consumers,
                            uint64_t log_created_wall_ns) {
    return consumers->magic == SHM_LOG_CONSUMERS_MAGIC && consumers->version == SHM_LOG_VERSION &&
           consumers->slot_count == SHM_LOG_CONSUMER_SLOTS &&
           consumers->log_created_wall_ns == log_created_wall_ns;
}

/* Maps the log's header page and its region, checking both. */
static int log_map(struct intake_log_inspector *inspector, struct inspected_log *log,
                   uint64_t now_ns, char *why, size_t why_capacity) {
    char name[SHM_LOG_FILE_NAME_BYTES + 16];
    snprintf(name, sizeof(name), "%s%s", log->base_name, SHM_LOG_FILE_SUFFIX);
    uint64_t file_bytes = 0;
    log->header = file_map(inspector, name, SHM_LOG_HEADER_BYTES, false, &log->log_file,
                           &file_bytes, &log->header_guard, &log->header_broken);
    if (log->header == NULL) {
        int error = errno;
        if (error == EBADMSG)
            fail(why, why_capacity, "%s/%s is not an intake log (its size)", inspector->directory,
                 name);
        else
            fail(why, why_capacity, "cannot map %s/%s: %s", inspector->directory, name,
                 strerror(error));
        return -error;
    }
    char path[4096 + sizeof(name)];
    snprintf(path, sizeof(path), "%s/%s", inspector->directory, name);
    int result = header_check(log->header, file_bytes, log->base_name, path, why, why_capacity);
    if (result == 0 && atomic_load_explicit(&log->header_broken, memory_order_acquire)) {
        fail(why, why_capacity, "%s was truncated while checked", path);
        result = -EIO;
    }
    if (result != 0) {
        log_unmap(log);
        return result;
    }
    memcpy(log->topic, log->header->topic, log->header->topic_length);
    log->topic[log->header->topic_length] = '\0';
    log->created_wall_ns = log->header->created_wall_ns;
    log->capacity_bytes = log->header->capacity_bytes;
    log->record_bytes_max = log->header->record_bytes_max;
    /* The region is optional to a look: the writer makes it right after the log (and replaces
     * a damaged one alone); until it checks out, consumers are reported unknown. */
    snprintf(name, sizeof(name), "%s%s", log->base_name, SHM_LOG_CONSUMERS_FILE_SUFFIX);
    log->consumers =
        file_map(inspector, name, SHM_LOG_CONSUMERS_FILE_BYTES, true, &log->consumers_file,
                 &file_bytes, &log->consumers_guard, &log->consumers_broken);
    if (log->consumers != NULL && !consumers_check(log->consumers, log->created_wall_ns)) {
        file_unmap(log->consumers, SHM_LOG_CONSUMERS_FILE_BYTES, &log->consumers_guard);
        log->consumers = NULL;
    }
    log->mapped = true;
    log->slots_scanned_ns = 0; /* scanned whole at the first look */
    log->registrations_seen = 0;
    log->validated_ns = now_ns;
    log->logs_changed_seen = logs_changed_now(inspector);
    return 0;
}

/* Whether the cached mappings may be used as they are: nothing broke, and (when it is time to
 * look) the paths still name the files mapped. */
static bool log_still_valid(struct intake_log_inspector *inspector, struct inspected_log *log,
                            uint64_t now_ns) {
    if (!log->mapped || atomic_load_explicit(&log->header_broken, memory_order_acquire) ||
        atomic_load_explicit(&log->consumers_broken, memory_order_acquire))
        return false;
    uint64_t changes = logs_changed_now(inspector);
    uint64_t interval =
        inspector->notify != NULL ? INSPECT_REVALIDATE_NS : INSPECT_REVALIDATE_UNNOTIFIED_NS;
    /* A region that did not check out is looked for again as often as without intake.notify. */
    if (log->consumers == NULL) interval = INSPECT_REVALIDATE_UNNOTIFIED_NS;
    interval += interval / INSPECT_PHASES * log->phase;
    if (changes == log->logs_changed_seen && now_ns < log->validated_ns + interval) return true;
    char name[SHM_LOG_FILE_NAME_BYTES + 16];
    snprintf(name, sizeof(name), "%s%s", log->base_name, SHM_LOG_FILE_SUFFIX);
    if (!path_names(inspector, name, log->log_file)) return false;
    snprintf(name, sizeof(name), "%s%s", log->base_name, SHM_LOG_CONSUMERS_FILE_SUFFIX);
    if (log->consumers == NULL || !path_names(inspector, name, log->consumers_file)) return false;
    log->validated_ns = now_ns;
    log->logs_changed_seen = changes;
    return true;
}

/* ------------------------------------------------------------------- a look --- */

/* The slots in use, scanning all of them when registrations moved or it is time to. */
static uint64_t slots_in_use(struct inspected_log *log, uint64_t now_ns) {
    /* The acquire load pairs with a registering consumer's seq_cst increment, made after its
     * release store of ACTIVE: a count seen moved comes with the slot it counts. */
    uint64_t registrations =
        atomic_load_explicit(&log->consumers->registrations, memory_order_acquire);
    uint64_t interval =
        INSPECT_SLOTS_RESCAN_NS + INSPECT_SLOTS_RESCAN_NS / INSPECT_PHASES * log->phase;
    if (registrations == log->registrations_seen && now_ns < log->slots_scanned_ns + interval)
        return log->slots_in_use;
    uint64_t in_use = 0;
    for (uint32_t index = 0; index < SHM_LOG_CONSUMER_SLOTS; index++) {
        uint32_t state =
            atomic_load_explicit(&log->consumers->slots[index].state, memory_order_relaxed);
        if (state == SHM_LOG_SLOT_ACTIVE || state == SHM_LOG_SLOT_DETACHED) in_use |= 1ull << index;
    }
    log->slots_in_use = in_use;
    log->registrations_seen = registrations;
    log->slots_scanned_ns = now_ns;
    return in_use;
}

static void consumers_read(struct inspected_log *log, uint64_t now_ns,
                           struct intake_log_info *info) {
    info->consumer_count = 0;
    for (uint64_t remaining = slots_in_use(log, now_ns); remaining != 0;
         remaining &= remaining - 1) {
        uint32_t index = (uint32_t)__builtin_ctzll(remaining);
        const struct shm_log_consumer_slot *slot = &log->consumers->slots[index];
        /* The acquire load pairs with a consumer's release store of its state, which
         * publishes the slot's name and positions. */
        uint32_t state = atomic_load_explicit(&slot->state, memory_order_acquire);
        if (state != SHM_LOG_SLOT_ACTIVE && state != SHM_LOG_SLOT_DETACHED) {
            log->slots_in_use &= ~(1ull << index); /* freed since: back at a registration */
            continue;
        }
        struct intake_log_consumer *out = &info->consumers[info->consumer_count++];
        memcpy(out->name, slot->name, sizeof(out->name));
        out->name[sizeof(out->name) - 1] = '\0';
        out->slot = index;
        out->state = state;
        out->ephemeral = (slot->flags & SHM_LOG_SLOT_FLAG_EPHEMERAL) != 0;
        out->pid = atomic_load_explicit(&slot->pid, memory_order_relaxed);
        out->heartbeat_ns = atomic_load_explicit(&slot->heartbeat_ns, memory_order_relaxed);
        out->read_position = atomic_load_explicit(&slot->read_position, memory_order_relaxed);
        out->committed_position =
            atomic_load_explicit(&slot->committed_position, memory_order_relaxed);
        out->committed_offset = atomic_load_explicit(&slot->committed_offset, memory_order_relaxed);
        out->lag_bytes = info->commit_position > out->read_position
                             ? info->commit_position - out->read_position
                             : 0;
        bool known = out->committed_offset != SHM_LOG_OFFSET_NONE &&
                     info->commit_offset != SHM_LOG_OFFSET_NONE;
        out->lag_records = known && info->commit_offset > out->committed_offset
                               ? info->commit_offset - out->committed_offset
                               : 0;
    }
}

static void header_read(const struct inspected_log *log, struct intake_log_info *info) {
    const struct shm_log_header *header = log->header;
    info->version = SHM_LOG_VERSION;
    memcpy(info->topic, log->topic, sizeof(info->topic));
    info->created_wall_ns = log->created_wall_ns;
    info->capacity_bytes = log->capacity_bytes;
    info->record_bytes_max = log->record_bytes_max;
    info->retention = atomic_load_explicit(&header->retention, memory_order_relaxed);
    info->writer_pid = atomic_load_explicit(&header->writer_pid, memory_order_relaxed);
    info->consumer_stale_ns =
        atomic_load_explicit(&header->consumer_stale_ns, memory_order_relaxed);
    bool paired = false;
    for (int attempt = 0; attempt < INSPECT_SEQLOCK_ATTEMPTS && !paired; attempt++)
        paired = commit_pair_load_once(header, &info->commit_position, &info->commit_offset);
    if (!paired) { /* a publish under way, or a writer that died inside one */
        info->commit_position =
            atomic_load_explicit(&header->commit_position, memory_order_acquire);
        info->commit_offset = SHM_LOG_OFFSET_NONE;
    }
    /* After the commit pair, as a reader loads them (format, "Reading" step 3). */
    info->retained_position =
        atomic_load_explicit(&header->retained_position, memory_order_acquire);
    info->retained_offset = atomic_load_explicit(&header->retained_offset, memory_order_relaxed);
}

/* Whether a writer holds the log now: a shared lock refused is a writer's exclusive one. */
static int writer_probe(struct intake_log_inspector *inspector, const struct inspected_log *log,
                        struct intake_log_info *info, char *why, size_t why_capacity) {
    char name[SHM_LOG_FILE_NAME_BYTES + 16];
    snprintf(name, sizeof(name), "%s%s", log->base_name, SHM_LOG_FILE_SUFFIX);
    int fd = openat(inspector->directory_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat status;
    if (fd < 0 || fstat(fd, &status) != 0 || !identity_equal(identity_of(&status), log->log_file)) {
        if (fd >= 0) close(fd);
        fail(why, why_capacity, "%s/%s was replaced while looked at", inspector->directory, name);
        return -EIO;
    }
    /* Taken for an instant and let go at once, as intake_consumer_writer_alive does. */
    if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
        flock(fd, LOCK_UN);
        info->writer_alive = 0;
    } else {
        info->writer_alive = errno == EWOULDBLOCK;
    }
    close(fd);
    return 0;
}

/* The cached entry of `name` (a topic, or a log's file name), mapped and checked. */
static int log_lookup(struct intake_log_inspector *inspector, const char *name, uint32_t flags,
                      uint64_t now_ns, struct inspected_log **out, char *why, size_t why_capacity) {
    char base_name[SHM_LOG_FILE_NAME_BYTES];
    size_t length = strlen(name);
    if ((flags & INTAKE_LOG_INSPECT_FILE_NAME) != 0) {
        size_t suffix = sizeof(SHM_LOG_FILE_SUFFIX) - 1;
        if (length <= suffix || length - suffix >= sizeof(base_name) ||
            strcmp(name + length - suffix, SHM_LOG_FILE_SUFFIX) != 0) {
            fail(why, why_capacity, "%s is not a log's file name", name);
            return -EINVAL;
        }
        memcpy(base_name, name, length - suffix);
        base_name[length - suffix] = '\0';
    } else {
        if (length == 0 || length >= SHM_LOG_TOPIC_BYTES) {
            fail(why, why_capacity, "a topic is 1..255 bytes");
            return -EINVAL;
        }
        shm_log_file_base_name(name, base_name);
    }
    struct inspected_log *log = log_find(inspector, base_name);
    if (log == NULL) log = log_add(inspector, base_name);
    log->last_used = ++inspector->looks;
    if (!log_still_valid(inspector, log, now_ns)) {
        log_unmap(log);
        int result = log_map(inspector, log, now_ns, why, why_capacity);
        if (result != 0) return result;
    }
    if ((flags & INTAKE_LOG_INSPECT_FILE_NAME) == 0 && strcmp(log->topic, name) != 0) {
        fail(why, why_capacity, "%s/%s%s holds another topic, not %s", inspector->directory,
             base_name, SHM_LOG_FILE_SUFFIX, name);
        return -EBADMSG;
    }
    *out = log;
    return 0;
}

int intake_log_inspect(struct intake_log_inspector *inspector, const char *name, uint32_t flags,
                       struct intake_log_info *info, char *why, size_t why_capacity) {
    INTAKE_ASSERT(why != NULL || why_capacity == 0);
    if (why_capacity > 0) why[0] = '\0';
    /* A struct that grows (consumer.h): struct_bytes 0 is the 1.0 layout, today's. A newer
     * caller's longer struct keeps what lies past ours; a shorter one than 1.0's is refused. */
    uint32_t struct_bytes = info != NULL ? info->struct_bytes : 0;
    if (inspector == NULL || name == NULL || info == NULL ||
        (struct_bytes != 0 && struct_bytes < CLIENT_LOG_INFO_BYTES_V1)) {
        fail(why, why_capacity,
             "an inspector, a name and an info whose struct_bytes is 0 or at least %zu",
             (size_t)CLIENT_LOG_INFO_BYTES_V1);
        return -EINVAL;
    }
    uint64_t now_ns = intake_now_ns();
    notify_refresh(inspector, now_ns);
    struct inspected_log *log = NULL;
    int result = log_lookup(inspector, name, flags, now_ns, &log, why, why_capacity);
    if (result != 0) {
        if (result == -ENOENT)
            fail(why, why_capacity, "no log for %s in %s", name, inspector->directory);
        return result;
    }
    /* Written in place: the fixed part whole, consumers[] as far as consumer_count (a look at
     * 1,000 logs copies no more than it reads). */
    memset(info, 0, offsetof(struct intake_log_info, consumers));
    info->struct_bytes = struct_bytes;
    header_read(log, info);
    if (log->consumers != NULL) {
        consumers_read(log, now_ns, info);
        info->consumers_readable = 1;
    }
    if ((flags & INTAKE_LOG_INSPECT_WRITER) != 0)
        result = writer_probe(inspector, log, info, why, why_capacity);
    /* Read through a mapping that was truncated meanwhile: what we read was zeros (a fault
     * the guard turned into zero pages, or a file cut inside a page, which reads as zeros
     * without one): the identity read last tells. */
    bool identity_held =
        log->header->magic == SHM_LOG_MAGIC &&
        log->header->created_wall_ns == log->created_wall_ns &&
        (log->consumers == NULL || consumers_check(log->consumers, log->created_wall_ns));
    if (!identity_held || atomic_load_explicit(&log->header_broken, memory_order_acquire) ||
        atomic_load_explicit(&log->consumers_broken, memory_order_acquire)) {
        log_unmap(log);
        fail(why, why_capacity, "%s/%s's files were truncated while looked at",
             inspector->directory, log->base_name);
        return -EIO;
    }
    return result;
}

/* ------------------------------------------------------------ open, close --- */

void intake_log_inspector_close(struct intake_log_inspector *inspector) {
    if (inspector == NULL) return;
    for (uint32_t index = 0; inspector->logs != NULL && index < inspector->log_count; index++)
        log_unmap(&inspector->logs[index]);
    notify_unmap(inspector);
    if (inspector->directory_fd >= 0) close(inspector->directory_fd);
    free(inspector->logs);
    free(inspector->index);
    free(inspector);
}

int intake_log_inspector_open(const char *directory, uint32_t logs_max,
                              struct intake_log_inspector **out, char *why, size_t why_capacity) {
    INTAKE_ASSERT(out != NULL);
    *out = NULL;
    if (why_capacity > 0) why[0] = '\0';
    if (directory == NULL || strlen(directory) >= 4096 || logs_max == 0 ||
        logs_max > INSPECT_LOGS_MAX) {
        fail(why, why_capacity, "a directory and 1..%u logs are required", INSPECT_LOGS_MAX);
        return -EINVAL;
    }
    struct intake_log_inspector *inspector = calloc(1, sizeof(*inspector));
    if (inspector == NULL) {
        fail(why, why_capacity, "out of memory for the log inspector");
        return -ENOMEM;
    }
    inspector->directory_fd = -1;
    inspector->notify_guard = -1;
    snprintf(inspector->directory, sizeof(inspector->directory), "%s", directory);
    inspector->logs_max = logs_max;
    inspector->index_capacity = 1;
    while (inspector->index_capacity < 2 * logs_max) inspector->index_capacity <<= 1;
    inspector->logs = calloc(logs_max, sizeof(*inspector->logs));
    inspector->index = malloc(inspector->index_capacity * sizeof(*inspector->index));
    if (inspector->logs == NULL || inspector->index == NULL) {
        fail(why, why_capacity, "out of memory for %u logs", logs_max);
        intake_log_inspector_close(inspector);
        return -ENOMEM;
    }
    memset(inspector->index, 0xff, inspector->index_capacity * sizeof(*inspector->index));
    inspector->directory_fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (inspector->directory_fd < 0) {
        int error = errno;
        fail(why, why_capacity, "cannot open %s: %s", directory, strerror(error));
        intake_log_inspector_close(inspector);
        return -error;
    }
    *out = inspector;
    return 0;
}
