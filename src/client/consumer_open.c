/*
 * consumer_open.c: opening and closing a consumer (include/intake/consumer.h): mapping the log
 * read-only and its consumer region read-write, claiming a slot under the registration lock,
 * and choosing a start position through the registration handshake. Reading is consumer.c.
 * Depends only on intake_base (common.c, fault_guard.c) and the layout in shm_log_format.h;
 * never on the daemon's modules.
 *
 * Thread: one thread per handle. A handle owns two file descriptors and mappings: the log
 * (O_RDONLY, PROT_READ: a consumer cannot damage it) and the consumer region (read-write, its
 * slot and the wait flag), plus an OFD lock on its slot that the kernel drops when the process
 * dies. Everything read from either file is input: checked, never asserted on; every failure
 * returns an error with its reason line. The protocol with the writer is described in
 * shm_log_format.h; each barrier below says which of its steps it implements.
 */
#include "intake/consumer.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdarg.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "client_abi.h"
#include "common.h"
#include "crc32c.h"
#include "fault_guard.h"
#include "intake/shm_log_format.h"
#include "consumer_internal.h"

void consumer_fail(struct intake_consumer *consumer, const char *format, ...) {
    va_list arguments;
    va_start(arguments, format);
    intake_error_vline(consumer->error, sizeof(consumer->error), format, arguments);
    va_end(arguments);
}

bool intake_consumer_writer_alive(const struct intake_consumer *consumer) {
    if (consumer == NULL || consumer->fd < 0) return false;
    /* A shared lock is refused exactly while the writer holds its exclusive one. Taking it for
     * an instant cannot hold a writer out for longer than that instant: release at once. */
    if (flock(consumer->fd, LOCK_SH | LOCK_NB) != 0) return errno == EWOULDBLOCK;
    flock(consumer->fd, LOCK_UN);
    return false;
}

const char *intake_consumer_error(const struct intake_consumer *consumer) {
    if (consumer == NULL) return "no consumer (NULL)";
    return consumer->error;
}

uint64_t intake_consumer_missed_total(const struct intake_consumer *consumer) {
    if (consumer == NULL) return 0;
    return consumer->missed_total;
}

uint64_t intake_consumer_next_offset(const struct intake_consumer *consumer) {
    if (consumer == NULL) return SHM_LOG_OFFSET_NONE;
    return consumer->expected_offset;
}

static void pause_one_millisecond(void) {
    struct timespec pause = {0, 1000000};
    nanosleep(&pause, NULL);
}

bool consumer_broken(struct intake_consumer *consumer) {
    if (!atomic_load_explicit(&consumer->log_broken, memory_order_acquire) &&
        !atomic_load_explicit(&consumer->consumers_broken, memory_order_acquire))
        return false;
    consumer_fail(consumer,
                  "%s: the log's files were truncated under this consumer (the "
                  "writer recreates damaged logs): close and reopen",
                  consumer->path);
    return true;
}

/* ---------------------------------------------------------------- mapping --- */

/* Checks the log header we mapped (read-only): every field the reader relies on. */
static int header_check(struct intake_consumer *consumer, const char *topic) {
    const struct shm_log_header *header = consumer->header;
    if (header->magic != SHM_LOG_MAGIC) {
        consumer_fail(consumer, "%s: not an intake log (bad magic)", consumer->path);
        return -EINVAL;
    }
    if (header->version != SHM_LOG_VERSION) {
        consumer_fail(consumer,
                      "%s: log format version %u; this consumer library reads "
                      "version %u",
                      consumer->path, header->version, SHM_LOG_VERSION);
        return -EPROTO;
    }
    uint64_t capacity = header->capacity_bytes;
    if (header->identity_checksum != shm_log_identity_checksum(header, intake_crc32c) ||
        header->header_bytes != SHM_LOG_HEADER_BYTES || !intake_is_power_of_two(capacity) ||
        capacity < SHM_LOG_CAPACITY_MIN || capacity > SHM_LOG_CAPACITY_MAX ||
        SHM_LOG_HEADER_BYTES + capacity != consumer->map_bytes ||
        header->record_bytes_max != shm_log_record_bytes_max_for(capacity)) {
        consumer_fail(consumer, "%s: log header is damaged (checksum or sizes)", consumer->path);
        return -EBADMSG;
    }
    size_t topic_length = strlen(topic);
    if (header->topic_length != topic_length || memcmp(header->topic, topic, topic_length) != 0) {
        consumer_fail(consumer, "%s: holds another topic, not %s", consumer->path, topic);
        return -EINVAL;
    }
    consumer->capacity = capacity;
    consumer->record_bytes_max = header->record_bytes_max;
    return 0;
}

/* Opens and maps the log read-only, guarded against truncation, and checks its header. */
static int log_map(struct intake_consumer *consumer, const char *directory, const char *topic) {
    char name[SHM_LOG_FILE_NAME_BYTES];
    shm_log_file_name(topic, name);
    snprintf(consumer->path, sizeof(consumer->path), "%s/%s", directory, name);
    consumer->fd = open(consumer->path, O_RDONLY | O_CLOEXEC);
    if (consumer->fd < 0) {
        int error = errno;
        if (error == ENOENT)
            consumer_fail(consumer, "no log for topic %s in %s", topic, directory);
        else
            consumer_fail(consumer, "cannot open %s: %s", consumer->path, strerror(error));
        return -error;
    }
    struct stat status;
    if (fstat(consumer->fd, &status) != 0) {
        int error = errno;
        consumer_fail(consumer, "fstat %s: %s", consumer->path, strerror(error));
        return -error;
    }
    if ((uint64_t)status.st_size < SHM_LOG_HEADER_BYTES + SHM_LOG_CAPACITY_MIN ||
        (uint64_t)status.st_size > SHM_LOG_HEADER_BYTES + SHM_LOG_CAPACITY_MAX) {
        consumer_fail(consumer, "%s is not an intake log (size %lld)", consumer->path,
                      (long long)status.st_size);
        return -EINVAL;
    }
    void *map = mmap(NULL, (size_t)status.st_size, PROT_READ, MAP_SHARED, consumer->fd, 0);
    if (map == MAP_FAILED) {
        int error = errno;
        consumer_fail(consumer, "mmap %s: %s", consumer->path, strerror(error));
        return -error;
    }
    consumer->header = map;
    consumer->map_bytes = (size_t)status.st_size;
    consumer->ring = (const uint8_t *)map + SHM_LOG_HEADER_BYTES;
    consumer->log_guard =
        fault_guard_register(map, consumer->map_bytes, PROT_READ, &consumer->log_broken);
    int result = header_check(consumer, topic);
    if (result == 0 && consumer_broken(consumer)) result = -EIO;
    return result;
}

/* Checks the consumer region's identity with pread (the file is writable by the log group). */
static bool consumers_identity_matches(int fd, const struct shm_log_header *header) {
    struct stat status;
    struct shm_log_consumers identity;
    size_t identity_bytes = offsetof(struct shm_log_consumers, registrations);
    return fstat(fd, &status) == 0 && S_ISREG(status.st_mode) &&
           (uint64_t)status.st_size == SHM_LOG_CONSUMERS_FILE_BYTES &&
           pread(fd, &identity, identity_bytes, 0) == (ssize_t)identity_bytes &&
           identity.magic == SHM_LOG_CONSUMERS_MAGIC && identity.version == SHM_LOG_VERSION &&
           identity.slot_count == SHM_LOG_CONSUMER_SLOTS &&
           identity.log_created_wall_ns == header->created_wall_ns;
}

/* Opens the log's consumer region read-write. The writer creates it right after the log, so a
 * missing or mismatched one is waited for, briefly. */
static int consumers_map(struct intake_consumer *consumer, const char *directory,
                         const char *topic) {
    char name[SHM_LOG_FILE_NAME_BYTES], path[4096 + SHM_LOG_FILE_NAME_BYTES];
    shm_log_consumers_file_name(topic, name);
    snprintf(path, sizeof(path), "%s/%s", directory, name);
    int error = ENOENT;
    for (int step = 0; step < CONSUMER_OPEN_WAIT_STEPS; step++) {
        int fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd < 0) {
            error = errno;
            if (error != ENOENT) break;
        } else if (consumers_identity_matches(fd, consumer->header)) {
            void *map =
                mmap(NULL, SHM_LOG_CONSUMERS_FILE_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            if (map == MAP_FAILED) {
                error = errno;
                close(fd);
                break;
            }
            consumer->consumers_fd = fd;
            consumer->consumers = map;
            consumer->consumers_guard =
                fault_guard_register(map, SHM_LOG_CONSUMERS_FILE_BYTES, PROT_READ | PROT_WRITE,
                                     &consumer->consumers_broken);
            return 0;
        } else {
            close(fd);
            error = EAGAIN;
        }
        /* Only a running writer finishes a region: without one, waiting cannot help. */
        if (!intake_consumer_writer_alive(consumer)) break;
        pause_one_millisecond();
    }
    if (error == EAGAIN)
        consumer_fail(consumer,
                      "%s does not belong to log %s (damaged, or the writer is "
                      "recreating it)",
                      path, consumer->path);
    else
        consumer_fail(consumer, "cannot open %s: %s", path, strerror(error));
    return -error;
}

/* ------------------------------------------------------------ slot claim --- */

static bool range_lock(int fd, uint64_t start, uint64_t bytes, short type) {
    struct flock lock = {
        .l_type = type,
        .l_whence = SEEK_SET,
        .l_start = (off_t)start,
        .l_len = (off_t)bytes,
    };
    return fcntl(fd, F_OFD_SETLK, &lock) == 0;
}

static bool slot_lock(struct intake_consumer *consumer, uint32_t index) {
    return range_lock(consumer->consumers_fd, shm_log_slot_lock_start(index),
                      sizeof(struct shm_log_consumer_slot), F_WRLCK);
}

/* Whether `slot` is registered under `name` (its name field is NUL-terminated and equal). */
static bool slot_named(const struct shm_log_consumer_slot *slot, const char *name) {
    uint32_t state = atomic_load_explicit(&slot->state, memory_order_acquire);
    if (state != SHM_LOG_SLOT_ACTIVE && state != SHM_LOG_SLOT_DETACHED) return false;
    return memchr(slot->name, '\0', sizeof(slot->name)) != NULL && strcmp(slot->name, name) == 0;
}

/* How willing we are to take a slot that is not ours: 0 free (or garbage), 1 an ephemeral one
 * left by a dead process, 2 a named one (its cursor is lost; least recently used first). */
static int slot_rank(const struct shm_log_consumer_slot *slot) {
    uint32_t state = atomic_load_explicit(&slot->state, memory_order_acquire);
    if (state != SHM_LOG_SLOT_ACTIVE && state != SHM_LOG_SLOT_DETACHED) return 0;
    if ((slot->flags & SHM_LOG_SLOT_FLAG_EPHEMERAL) != 0 ||
        memchr(slot->name, '\0', sizeof(slot->name)) == NULL)
        return 1;
    return 2;
}

/* Picks and locks a slot that is not `name`'s: by rank, then least recent heartbeat. A slot
 * whose lock is held belongs to a live consumer and is never taken. -1 when all are live. */
static int slot_take_other(struct intake_consumer *consumer) {
    uint64_t tried = 0;
    for (int attempt = 0; attempt < SHM_LOG_CONSUMER_SLOTS; attempt++) {
        int best = -1, best_rank = 3;
        uint64_t best_heartbeat = UINT64_MAX;
        for (uint32_t index = 0; index < SHM_LOG_CONSUMER_SLOTS; index++) {
            if (tried & (1ull << index)) continue;
            const struct shm_log_consumer_slot *slot = &consumer->consumers->slots[index];
            int rank = slot_rank(slot);
            uint64_t heartbeat = atomic_load_explicit(&slot->heartbeat_ns, memory_order_relaxed);
            if (rank < best_rank || (rank == best_rank && heartbeat < best_heartbeat)) {
                best = (int)index;
                best_rank = rank;
                best_heartbeat = heartbeat;
            }
        }
        if (best < 0) return -1;
        tried |= 1ull << best;
        if (slot_lock(consumer, (uint32_t)best)) return best;
    }
    return -1;
}

/* Claims a slot under the registration lock: the one registered under `name` (resumed) if its
 * consumer is gone, else a free or reclaimable one. Sets *resumed. */
static int slot_claim(struct intake_consumer *consumer, const char *name, bool ephemeral,
                      bool *resumed) {
    int index = -1;
    for (int i = 0; i < SHM_LOG_CONSUMER_SLOTS; i++)
        if (slot_named(&consumer->consumers->slots[i], name)) index = i;
    *resumed = index >= 0;
    if (index >= 0 && !slot_lock(consumer, (uint32_t)index)) {
        consumer_fail(consumer, "consumer name %s is in use by a live process", name);
        return -EBUSY;
    }
    if (index < 0) index = slot_take_other(consumer);
    if (index < 0) {
        consumer_fail(consumer, "all %d consumer slots of %s are held by live consumers",
                      SHM_LOG_CONSUMER_SLOTS, consumer->path);
        return -EBUSY;
    }
    struct shm_log_consumer_slot *slot = &consumer->consumers->slots[index];
    consumer->slot = slot;
    if (!*resumed) {
        memset(slot->name, 0, sizeof(slot->name));
        memcpy(slot->name, name, strlen(name));
        atomic_store_explicit(&slot->committed_position, 0, memory_order_relaxed);
        atomic_store_explicit(&slot->committed_offset, SHM_LOG_OFFSET_NONE, memory_order_relaxed);
    }
    slot->flags = ephemeral ? SHM_LOG_SLOT_FLAG_EPHEMERAL : 0;
    atomic_store_explicit(&slot->pid, (int32_t)getpid(), memory_order_relaxed);
    atomic_store_explicit(&slot->heartbeat_ns, intake_now_ns(), memory_order_relaxed);
    return index;
}

/* Takes the region's registration lock, waiting a bounded time for another registration. */
static int claim_lock_take(struct intake_consumer *consumer) {
    for (int step = 0; step < CONSUMER_OPEN_WAIT_STEPS; step++) {
        if (range_lock(consumer->consumers_fd, SHM_LOG_CONSUMERS_CLAIM_LOCK_START,
                       SHM_LOG_CONSUMERS_CLAIM_LOCK_BYTES, F_WRLCK))
            return 0;
        if (errno != EAGAIN && errno != EACCES) {
            int error = errno;
            consumer_fail(consumer, "cannot lock the consumer region of %s: %s", consumer->path,
                          strerror(error));
            return -error;
        }
        pause_one_millisecond();
    }
    consumer_fail(consumer, "another process holds the registration lock of %s", consumer->path);
    return -EBUSY;
}

static void claim_lock_release(struct intake_consumer *consumer) {
    (void)range_lock(consumer->consumers_fd, SHM_LOG_CONSUMERS_CLAIM_LOCK_START,
                     SHM_LOG_CONSUMERS_CLAIM_LOCK_BYTES, F_UNLCK);
}

/* --------------------------------------------------------- start position --- */

/* Reads commit_position and commit_offset as a consistent pair (seqlock, see publish). */
static void commit_pair_read(const struct intake_consumer *consumer, uint64_t *position,
                             uint64_t *offset) {
    const struct shm_log_header *header = consumer->header;
    for (int attempt = 0; attempt < CONSUMER_SEQLOCK_ATTEMPTS_MAX; attempt++) {
        if (commit_pair_load_once(header, position, offset)) return;
        /* A writer is publishing (a moment), or died doing so (forever). */
        if (attempt >= 16 && !intake_consumer_writer_alive(consumer)) break;
        if (attempt >= 16) sched_yield();
    }
    /* A writer died inside publish: the position alone is still correct. */
    *position = atomic_load_explicit(&header->commit_position, memory_order_acquire);
    *offset = SHM_LOG_OFFSET_NONE;
}

/* The offset of the entry at *position (moving it up to retained_position if the writer lapped
 * it): the start's expected offset, so a lap before the first poll is reported as a gap. */
static int start_offset_find(struct intake_consumer *consumer, uint64_t *position,
                             uint64_t *offset) {
    const struct shm_log_header *header = consumer->header;
    for (int attempt = 0; attempt < CONSUMER_START_ATTEMPTS_MAX; attempt++) {
        uint64_t commit = 0, commit_offset = 0;
        commit_pair_read(consumer, &commit, &commit_offset);
        uint64_t retained = atomic_load_explicit(&header->retained_position, memory_order_acquire);
        if (!positions_plausible(consumer, commit, retained) || *position > commit) {
            /* A large batch being appended, or a start beyond what is published yet: look
             * again shortly. */
            if (retained > commit || (*position > commit && retained <= commit &&
                                      attempt < CONSUMER_START_ATTEMPTS_MAX - 1)) {
                sched_yield();
                continue;
            }
            consumer_fail(consumer,
                          "%s: log positions are inconsistent (retained %llu, commit "
                          "%llu): log damaged",
                          consumer->path, (unsigned long long)retained, (unsigned long long)commit);
            return -EBADMSG;
        }
        if (*position < retained) *position = retained;
        if (*position == commit) {
            /* Without the pair (a writer died inside publish), the first record read names
             * the offset (missed 0 for it). */
            if (commit_offset == SHM_LOG_OFFSET_NONE && intake_consumer_writer_alive(consumer))
                continue;
            *offset = commit_offset;
            return 0;
        }
        uint64_t room = consumer->capacity - (*position & (consumer->capacity - 1));
        if (room < SHM_LOG_ENTRY_HEADER_BYTES) {
            /* Implicit padding; the commit position is never inside it (as in poll). */
            if (room > commit - *position) {
                consumer_fail(consumer,
                              "%s: commit position %llu is inside the padding at the ring's "
                              "end: log damaged",
                              consumer->path, (unsigned long long)commit);
                return -EBADMSG;
            }
            *position += room;
            continue;
        }
        const uint8_t *at = consumer->ring + (*position & (consumer->capacity - 1));
        struct shm_log_entry_header entry;
        memcpy(&entry, at, sizeof(entry));
        bool padding = entry.length == SHM_LOG_ENTRY_LENGTH_PADDING;
        bool fits = padding || (entry.length <= consumer->record_bytes_max &&
                                SHM_LOG_ENTRY_HEADER_BYTES + (uint64_t)entry.length <= room);
        bool good = fits && shm_log_entry_checksum(&entry, at + SHM_LOG_ENTRY_HEADER_BYTES,
                                                   intake_crc32c) == entry.checksum;
        if (!entry_still_intact(header, *position)) continue; /* lapped while reading */
        if (!good) {
            consumer_fail(consumer, "%s: entry at position %llu failed its checks: log damaged",
                          consumer->path, (unsigned long long)*position);
            return -EBADMSG;
        }
        *offset = entry.offset; /* a padding entry carries the next record's offset */
        return 0;
    }
    consumer_fail(consumer, "%s: the writer kept lapping the start position", consumer->path);
    return -EAGAIN;
}

/* The first position to read, before registration: a committed cursor that checks out, the
 * end, or the oldest retained entry. Sets expected_offset when the start mode names one. */
static void start_position_choose(struct intake_consumer *consumer, bool resumed,
                                  const struct intake_consumer_options *options) {
    const struct shm_log_header *header = consumer->header;
    struct shm_log_consumer_slot *slot = consumer->slot;
    consumer->expected_offset = SHM_LOG_OFFSET_NONE;
    consumer->position = atomic_load_explicit(&header->retained_position, memory_order_acquire);
    switch (options->start) {
    case INTAKE_CONSUMER_START_COMMITTED: {
        uint64_t committed_offset =
            atomic_load_explicit(&slot->committed_offset, memory_order_acquire);
        uint64_t committed = atomic_load_explicit(&slot->committed_position, memory_order_relaxed);
        if (!resumed || committed_offset == SHM_LOG_OFFSET_NONE) break;
        consumer->expected_offset = committed_offset;
        /* The cursor's position is only a hint (the region is writable by the log group): it
         * is used when it is an aligned position inside the retained window, and the offset
         * rule (skip below, gap above) makes any start correct. */
        uint64_t commit = atomic_load_explicit(&header->commit_position, memory_order_acquire);
        if (committed % SHM_LOG_ENTRY_ALIGNMENT == 0 && committed <= commit &&
            committed >= consumer->position)
            consumer->position = committed;
        break;
    }
    case INTAKE_CONSUMER_START_OLDEST: break;
    case INTAKE_CONSUMER_START_END:
        commit_pair_read(consumer, &consumer->position, &consumer->expected_offset);
        break;
    case INTAKE_CONSUMER_START_OFFSET:
        /* Poll skips records below the offset; a gap is reported if it is no longer there. */
        consumer->expected_offset = options->start_offset;
        break;
    }
}

/* Registration handshake, consumer side (format step 4), after the slot is ACTIVE and the
 * registration counter bumped: a retirement the writer announced that covers our start either
 * completes (we move up) or is taken back (we keep it). */
static void start_position_validate(struct intake_consumer *consumer) {
    const struct shm_log_header *header = consumer->header;
    uint64_t deadline_ns = intake_now_ns() + CONSUMER_HANDSHAKE_WAIT_NS;
    for (;;) {
        /* seq_cst: pairs with the writer's store of retiring_position and its seq_cst fence
         * before loading registrations (our fetch_add is seq_cst too). */
        uint64_t retiring = atomic_load_explicit(&header->retiring_position, memory_order_seq_cst);
        if (retiring <= consumer->position) return;
        uint64_t retained = atomic_load_explicit(&header->retained_position, memory_order_acquire);
        bool decided = retained == retiring;
        /* No writer running: an announcement left undecided (it died deciding) overwrote
         * nothing past retained_position, and no one will decide it now. */
        if (!decided && !intake_consumer_writer_alive(consumer)) {
            if (retained <= consumer->position) return;
            decided = true;
        }
        if (!decided && intake_now_ns() < deadline_ns) {
            sched_yield();
            continue;
        }
        /* Decided (or a writer stuck mid-decision: assume the worst). */
        uint64_t floor = decided ? retained : retiring;
        if (floor <= consumer->position) return;
        consumer->position = floor;
        /* Release: we never read below it; the writer may already rely on it. */
        atomic_store_explicit(&consumer->slot->read_position, floor, memory_order_release);
        if (!decided) return;
    }
}

int consumer_open_in(struct intake_consumer *consumer, const char *directory, const char *topic,
                     const char *name, const struct intake_consumer_options *options, char *why,
                     size_t why_capacity) {
    INTAKE_ASSERT(consumer != NULL);
    INTAKE_ASSERT(options != NULL);
    INTAKE_ASSERT(why != NULL || why_capacity == 0);
    if (why_capacity > 0) why[0] = '\0';
    size_t name_length = name ? strlen(name) : 0;
    if (name_length == 0 || name_length > INTAKE_CONSUMER_NAME_BYTES_MAX) {
        intake_error_line(why, why_capacity, "consumer name must be 1..63 bytes");
        return -EINVAL;
    }
    if (directory == NULL || topic == NULL || topic[0] == '\0') {
        intake_error_line(why, why_capacity, "directory and topic are required");
        return -EINVAL;
    }
    if ((unsigned)options->start > INTAKE_CONSUMER_START_OFFSET) {
        intake_error_line(why, why_capacity, "start %d is not an enum intake_consumer_start",
                          (int)options->start);
        return -EINVAL;
    }
    memset(consumer, 0, sizeof(*consumer));
    consumer->fd = consumer->consumers_fd = -1;
    consumer->log_guard = consumer->consumers_guard = -1;
    consumer->ephemeral = options->ephemeral;
    bool claim_locked = false, resumed = false;
    int result = log_map(consumer, directory, topic);
    if (result == 0) result = consumers_map(consumer, directory, topic);
    if (result == 0) result = claim_lock_take(consumer);
    claim_locked = result == 0;
    if (result == 0)
        result = slot_claim(consumer, name, options->ephemeral, &resumed) < 0 ? -EBUSY : 0;
    if (result != 0) goto fail;
    struct shm_log_consumer_slot *slot = consumer->slot;
    start_position_choose(consumer, resumed, options);
    atomic_store_explicit(&slot->read_position, consumer->position, memory_order_relaxed);
    /* The release store of ACTIVE publishes the slot's name, heartbeat and read_position. */
    atomic_store_explicit(&slot->state, SHM_LOG_SLOT_ACTIVE, memory_order_release);
    /* Handshake: the writer re-reads this counter before trusting its cached space limit. */
    atomic_fetch_add_explicit(&consumer->consumers->registrations, 1, memory_order_seq_cst);
    claim_lock_release(consumer);
    claim_locked = false;
    start_position_validate(consumer);
    uint64_t start_offset = SHM_LOG_OFFSET_NONE;
    result = start_offset_find(consumer, &consumer->position, &start_offset);
    if (result == 0 && consumer_broken(consumer)) result = -EIO;
    if (result != 0) goto fail;
    /* A start mode without an offset (oldest, end, a name without a cursor) expects the one
     * found at the start, so a lap before the first poll is a reported gap, not silence. */
    if (consumer->expected_offset == SHM_LOG_OFFSET_NONE) consumer->expected_offset = start_offset;
    atomic_store_explicit(&slot->read_position, consumer->position, memory_order_release);
    consumer->commit_cached = consumer->position;
    return 0;
fail:
    intake_error_line(why, why_capacity, "%s",
                      consumer->error[0] != '\0' ? consumer->error : strerror(-result));
    if (consumer->slot != NULL) {
        atomic_store_explicit(&consumer->slot->state,
                              resumed ? SHM_LOG_SLOT_DETACHED : SHM_LOG_SLOT_FREE,
                              memory_order_release);
    }
    if (claim_locked) claim_lock_release(consumer);
    fault_guard_unregister(consumer->log_guard);
    fault_guard_unregister(consumer->consumers_guard);
    if (consumer->header != NULL) munmap((void *)consumer->header, consumer->map_bytes);
    if (consumer->consumers != NULL) munmap(consumer->consumers, SHM_LOG_CONSUMERS_FILE_BYTES);
    if (consumer->fd >= 0) close(consumer->fd);
    if (consumer->consumers_fd >= 0) close(consumer->consumers_fd); /* drops the slot lock */
    memset(consumer, 0, sizeof(*consumer));
    return result;
}

int intake_consumer_open(const char *directory, const char *topic, const char *name,
                         const struct intake_consumer_options *given, struct intake_consumer **out,
                         char *why, size_t why_capacity) {
    if (why == NULL) why_capacity = 0;
    if (why_capacity > 0) why[0] = '\0';
    if (out == NULL) {
        intake_error_line(why, why_capacity, "intake_consumer_open: out is required");
        return -EINVAL;
    }
    *out = NULL;
    /* NULL options: the defaults (START_COMMITTED, a named slot). */
    struct intake_consumer_options options_copy = INTAKE_CONSUMER_OPTIONS_INIT;
    const struct intake_consumer_options *options = &options_copy;
    if (given != NULL) {
        int taken =
            client_struct_in(&options_copy, sizeof(options_copy), CLIENT_CONSUMER_OPTIONS_BYTES_V1,
                             given, "intake_consumer_options", why, why_capacity);
        if (taken != 0) return taken;
    }
    struct intake_consumer *consumer = calloc(1, sizeof(*consumer));
    if (consumer == NULL) {
        intake_error_line(why, why_capacity, "out of memory for the consumer handle");
        return -ENOMEM;
    }
    int result = consumer_open_in(consumer, directory, topic, name, options, why, why_capacity);
    if (result != 0) {
        free(consumer);
        return result;
    }
    *out = consumer;
    return 0;
}

void consumer_release(struct intake_consumer *consumer) {
    INTAKE_ASSERT(consumer->slot != NULL);
    INTAKE_ASSERT(consumer->consumers_fd >= 0);
    struct shm_log_consumer_slot *slot = consumer->slot;
    if (!atomic_load(&consumer->consumers_broken)) {
        atomic_store_explicit(&slot->pid, 0, memory_order_relaxed);
        /* The last-use time orders named slots for reclamation (least recent first). */
        atomic_store_explicit(&slot->heartbeat_ns, intake_now_ns(), memory_order_relaxed);
        if (consumer->ephemeral) memset(slot->name, 0, sizeof(slot->name));
        /* The release store hands the slot back: everything this consumer read happened
         * before, and (detached) its committed cursor is visible to the next open. */
        atomic_store_explicit(&slot->state,
                              consumer->ephemeral ? SHM_LOG_SLOT_FREE : SHM_LOG_SLOT_DETACHED,
                              memory_order_release);
    }
    fault_guard_unregister(consumer->log_guard);
    fault_guard_unregister(consumer->consumers_guard);
    munmap((void *)consumer->header, consumer->map_bytes);
    munmap(consumer->consumers, SHM_LOG_CONSUMERS_FILE_BYTES);
    if (consumer->fd >= 0) close(consumer->fd); /* a set's members close it after open */
    close(consumer->consumers_fd);              /* drops the slot lock */
    memset(consumer, 0, sizeof(*consumer));
}

void intake_consumer_close(struct intake_consumer *consumer) {
    if (consumer == NULL) return;
    consumer_release(consumer);
    free(consumer);
}
