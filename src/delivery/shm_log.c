/*
 * shm_log.c: the writer side of a topic's shared-memory log (see shm_log.h for the contract and
 * shm_log_format.h for the layout and the protocol with readers).
 *
 * Thread: only the worker that owns the topic calls these for a given log. The log owns its
 * file descriptor (holding an exclusive flock, so a second writer is refused) and its mapping.
 * Readers are other processes; they share nothing with this file but the mapping.
 */
#include "shm_log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>

/* Linux 5.14; older kernels refuse it and prefaulting is skipped. */
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "intake/shm_log_format.h"

/* 1 ms apart: far longer than a consumer's liveness probe holds its shared lock. */
#define SHM_LOG_WRITER_LOCK_ATTEMPTS 100

struct shm_log {
    int fd;
    size_t map_bytes;
    struct shm_log_header *header;
    uint8_t *ring;
    uint64_t capacity;
    uint64_t record_bytes_max;
    enum shm_log_retention retention;
    uint64_t consumer_stale_ns;
    /* Writer-private cursors; the shared copies are published by shm_log_publish. */
    uint64_t write_position;     /* end of appended entries (published or not) */
    uint64_t next_offset;        /* offset of the next appended record */
    uint64_t published_position; /* last commit_position stored */
    uint64_t retained_position;  /* last retained_position stored */
    uint64_t retained_offset;
    /* Block mode: entries may end at or below this without rescanning consumer slots. */
    uint64_t space_limit;
    uint32_t commit_sequence;
};

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

/* Creates `directory` and its parents (mkdir -p); an existing directory is fine. */
static int directory_create(const char *directory) {
    char path[4096];
    size_t length = strlen(directory);
    if (length == 0 || length >= sizeof(path)) return -ENAMETOOLONG;
    memcpy(path, directory, length + 1);
    for (size_t index = 1; index <= length; index++) {
        if (path[index] != '/' && path[index] != '\0') continue;
        char saved = path[index];
        path[index] = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST) return -errno;
        path[index] = saved;
    }
    return 0;
}

static int config_check(const struct shm_log_config *config, char *why, size_t why_capacity) {
    size_t topic_length = config->topic ? strlen(config->topic) : 0;
    if (topic_length == 0 || topic_length > RECORD_TOPIC_BYTES_MAX) {
        intake_error_line(why, why_capacity, "topic must be 1..255 bytes");
        return -EINVAL;
    }
    if (!intake_is_power_of_two(config->capacity_bytes) ||
        config->capacity_bytes < SHM_LOG_CAPACITY_MIN ||
        config->capacity_bytes > SHM_LOG_CAPACITY_MAX) {
        intake_error_line(why, why_capacity, "log capacity must be a power of two, 4 KiB..1 TiB");
        return -EINVAL;
    }
    return 0;
}

/* Fills a fresh header (the file was just sized; everything else is zero). */
static void header_initialise(struct shm_log_header *header, const struct shm_log_config *config) {
    header->version = SHM_LOG_VERSION;
    header->header_bytes = SHM_LOG_HEADER_BYTES;
    header->capacity_bytes = config->capacity_bytes;
    header->record_bytes_max = shm_log_record_bytes_max_for(config->capacity_bytes);
    header->topic_length = (uint32_t)strlen(config->topic);
    header->consumer_slots = SHM_LOG_CONSUMER_SLOTS;
    header->created_wall_ns = intake_wall_ns();
    memcpy(header->topic, config->topic, header->topic_length + 1);
    for (uint32_t index = 0; index < SHM_LOG_CONSUMER_SLOTS; index++)
        atomic_store_explicit(&header->slots[index].committed_offset, SHM_LOG_OFFSET_NONE,
                              memory_order_relaxed);
    /* The release store of the magic publishes the initialised header: a consumer that
     * acquire-loads a valid magic sees a complete header. */
    __atomic_store_n(&header->magic, SHM_LOG_MAGIC, __ATOMIC_RELEASE);
}

/* Checks an existing file's header; `file_bytes` is its size. */
static int header_check(const struct shm_log_header *header, uint64_t file_bytes,
                        const char *topic, char *why, size_t why_capacity) {
    if (__atomic_load_n(&header->magic, __ATOMIC_ACQUIRE) != SHM_LOG_MAGIC) {
        intake_error_line(why, why_capacity, "%s: not an intake log (bad magic)", topic);
        return -EINVAL;
    }
    if (header->version != SHM_LOG_VERSION || header->header_bytes != SHM_LOG_HEADER_BYTES) {
        intake_error_line(why, why_capacity, "%s: log has another layout version", topic);
        return -EINVAL;
    }
    uint64_t capacity = header->capacity_bytes;
    if (!intake_is_power_of_two(capacity) || capacity < SHM_LOG_CAPACITY_MIN ||
        capacity > SHM_LOG_CAPACITY_MAX || file_bytes != SHM_LOG_HEADER_BYTES + capacity ||
        header->record_bytes_max != shm_log_record_bytes_max_for(capacity)) {
        intake_error_line(why, why_capacity, "%s: log capacity does not match its file size", topic);
        return -EINVAL;
    }
    if (header->topic_length != strlen(topic) || strcmp(header->topic, topic) != 0) {
        intake_error_line(why, why_capacity, "log file for %s holds another topic (%s)", topic,
                header->topic);
        return -EINVAL;
    }
    return 0;
}

/* Reserves every page of the open log file and maps it for the writer. Reserved now, not on
 * first write: a full shm filesystem is a clean error at topic creation instead of SIGBUS in the
 * middle of an append. (Reserving is cheap, about 5 ms per 64 MiB; touching the pages, which
 * zeroes them, is not: shm_log_prefault does that later, off the delivery path.) */
static int file_allocate_and_map(struct shm_log *log, uint64_t file_bytes, const char *path,
                                 const char *directory, char *why, size_t why_capacity) {
    int allocated = posix_fallocate(log->fd, 0, (off_t)file_bytes);
    if (allocated != 0) {
        snprintf(why, why_capacity, "cannot allocate %llu bytes for %s: %s (--log-size x topics "
                 "must fit in %s)", (unsigned long long)file_bytes, path, strerror(allocated),
                 directory);
        return -allocated;
    }
    void *map = mmap(NULL, (size_t)file_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, log->fd, 0);
    if (map == MAP_FAILED) {
        int error = errno;
        intake_error_line(why, why_capacity, "cannot map %s: %s", path, strerror(error));
        return -error;
    }
    log->map_bytes = (size_t)file_bytes;
    log->header = map;
    log->ring = (uint8_t *)map + SHM_LOG_HEADER_BYTES;
    return 0;
}

/* Creates the log complete under a temporary name, then links it under its real name, so a
 * consumer opening the topic sees either no log or a whole one, never a half-made file.
 * Returns -EEXIST when another writer published the log first. */
static int file_create(struct shm_log *log, const struct shm_log_config *config, const char *path,
                       char *why, size_t why_capacity) {
    char creating[4096 + SHM_LOG_FILE_NAME_BYTES + 32];
    snprintf(creating, sizeof(creating), "%s.creating.%d", path, (int)getpid());
    unlink(creating); /* left over from a writer of this pid that died mid-creation */
    log->fd = open(creating, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (log->fd < 0) {
        int error = errno;
        intake_error_line(why, why_capacity, "cannot create %s: %s", creating, strerror(error));
        return -error;
    }
    /* The lock travels with the inode: it still holds once the file has its real name. */
    int result = writer_lock(log->fd);
    uint64_t file_bytes = SHM_LOG_HEADER_BYTES + config->capacity_bytes;
    if (result == 0 && ftruncate(log->fd, (off_t)file_bytes) != 0) result = -errno;
    if (result < 0) intake_error_line(why, why_capacity, "cannot size %s: %s", creating, strerror(-result));
    if (result == 0)
        result = file_allocate_and_map(log, file_bytes, creating, config->directory, why, why_capacity);
    if (result == 0) {
        header_initialise(log->header, config);
        if (link(creating, path) != 0) result = -errno;
        if (result < 0 && result != -EEXIST)
            intake_error_line(why, why_capacity, "cannot publish %s: %s", path, strerror(-result));
    }
    unlink(creating);
    return result;
}

/* Opens an existing log, locks it for this writer and maps it. */
static int file_open_existing(struct shm_log *log, const struct shm_log_config *config,
                              const char *path, char *why, size_t why_capacity) {
    log->fd = open(path, O_RDWR | O_CLOEXEC);
    if (log->fd < 0) {
        int error = errno;
        intake_error_line(why, why_capacity, "cannot open %s: %s", path, strerror(error));
        return -error;
    }
    int locked = writer_lock(log->fd);
    if (locked != 0) {
        int error = -locked;
        intake_error_line(why, why_capacity, "%s is open by another writer (%s)", path, strerror(error));
        return error == EWOULDBLOCK ? -EBUSY : -error;
    }
    struct stat status;
    if (fstat(log->fd, &status) != 0) return -errno;
    if ((uint64_t)status.st_size < SHM_LOG_HEADER_BYTES) {
        intake_error_line(why, why_capacity, "%s is too short to be an intake log", path);
        return -EINVAL;
    }
    return file_allocate_and_map(log, (uint64_t)status.st_size, path, config->directory, why,
                                 why_capacity);
}

/* Opens the topic's log, creating it if there is none, locked for this writer and mapped. */
static int file_open_and_map(struct shm_log *log, const struct shm_log_config *config,
                             bool *created, char *why, size_t why_capacity) {
    char name[SHM_LOG_FILE_NAME_BYTES], path[4096 + SHM_LOG_FILE_NAME_BYTES];
    shm_log_file_name(config->topic, name);
    snprintf(path, sizeof(path), "%s/%s", config->directory, name);
    *created = access(path, F_OK) != 0;
    int result = 0;
    if (*created) {
        result = file_create(log, config, path, why, why_capacity);
        if (result != -EEXIST) return result < 0 ? result : header_check(log->header,
                                                  log->map_bytes, config->topic, why, why_capacity);
        /* Another writer won the race: fall through and open (and lock-check) its log. */
        *created = false;
        munmap(log->header, log->map_bytes);
        close(log->fd);
        log->header = NULL;
        log->fd = -1;
    }
    result = file_open_existing(log, config, path, why, why_capacity);
    if (result < 0) return result;
    return header_check(log->header, log->map_bytes, config->topic, why, why_capacity);
}

/* Checks the positions a previous writer left: a log whose positions contradict each other is
 * refused rather than trusted (a reader could not make sense of it either). */
static int positions_check(const struct shm_log_header *header, const char *topic, char *why,
                           size_t why_capacity) {
    uint64_t commit = atomic_load_explicit(&header->commit_position, memory_order_relaxed);
    uint64_t retained = atomic_load_explicit(&header->retained_position, memory_order_relaxed);
    if (retained > commit || commit - retained > header->capacity_bytes ||
        commit % SHM_LOG_ENTRY_ALIGNMENT != 0 || retained % SHM_LOG_ENTRY_ALIGNMENT != 0) {
        intake_error_line(why, why_capacity, "%s: log positions are inconsistent (corrupt file)", topic);
        return -EINVAL;
    }
    return 0;
}

/* The offset of the oldest retained record, read from the ring itself: the header's copy may
 * be stale if a writer died between storing it and retained_position. */
static uint64_t retained_offset_recover(const struct shm_log *log) {
    uint64_t position = log->retained_position;
    while (position < log->write_position) {
        uint64_t room = log->capacity - (position & (log->capacity - 1));
        const struct shm_log_entry_header *entry =
            shm_log_entry_at(log->ring, log->capacity, position);
        if (room >= SHM_LOG_ENTRY_HEADER_BYTES && entry->length != SHM_LOG_ENTRY_LENGTH_PADDING)
            return entry->offset;
        position += room; /* padding: the next entry is at the ring start */
    }
    return log->next_offset; /* nothing retained: the next record is the oldest */
}

/* Takes over the shared state a previous writer left (or a fresh header's zeros). Entries
 * appended but never published by a previous writer are dropped: they were never acked. */
static void writer_state_load(struct shm_log *log, const struct shm_log_config *config) {
    struct shm_log_header *header = log->header;
    log->capacity = header->capacity_bytes;
    log->record_bytes_max = header->record_bytes_max;
    log->retention = config->retention;
    log->consumer_stale_ns = config->consumer_stale_ns;
    log->write_position = atomic_load_explicit(&header->commit_position, memory_order_relaxed);
    log->published_position = log->write_position;
    log->next_offset = atomic_load_explicit(&header->commit_offset, memory_order_relaxed);
    log->retained_position =
        atomic_load_explicit(&header->retained_position, memory_order_relaxed);
    INTAKE_ASSERT(log->retained_position <= log->write_position);
    log->retained_offset = retained_offset_recover(log);
    INTAKE_ASSERT(log->write_position % SHM_LOG_ENTRY_ALIGNMENT == 0);
    /* A writer that died inside publish left the seqlock odd: make it even again. */
    log->commit_sequence =
        (atomic_load_explicit(&header->commit_sequence, memory_order_relaxed) + 1u) & ~1u;
    atomic_store_explicit(&header->commit_sequence, log->commit_sequence, memory_order_release);
    atomic_store_explicit(&header->retention, (uint32_t)config->retention, memory_order_relaxed);
    atomic_store_explicit(&header->consumer_stale_ns, config->consumer_stale_ns,
                          memory_order_relaxed);
    atomic_store_explicit(&header->writer_pid, (int32_t)getpid(), memory_order_relaxed);
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
    result = directory_create(config->directory);
    if (result != 0) {
        intake_error_line(why, why_capacity, "cannot create %s: %s", config->directory, strerror(-result));
        return result;
    }
    struct shm_log *log = calloc(1, sizeof(*log));
    if (log == NULL) return -ENOMEM;
    log->fd = -1;
    bool created = false;
    result = file_open_and_map(log, config, &created, why, why_capacity);
    if (result != 0) goto fail;
    result = positions_check(log->header, config->topic, why, why_capacity);
    if (result != 0) goto fail;
    writer_state_load(log, config);
    *out = log;
    return 0;
fail:
    if (log->header != NULL) munmap(log->header, log->map_bytes);
    if (log->fd >= 0) close(log->fd);
    free(log);
    return result;
}

void shm_log_close(struct shm_log *log) {
    if (log == NULL) return;
    shm_log_publish(log);
    atomic_store_explicit(&log->header->writer_pid, 0, memory_order_relaxed);
    munmap(log->header, log->map_bytes);
    close(log->fd);
    free(log);
}

uint64_t shm_log_prefault(struct shm_log *log, uint64_t offset, uint64_t bytes) {
    if (offset >= log->map_bytes) return 0;
    if (bytes > log->map_bytes - offset) bytes = log->map_bytes - offset;
    /* Write-faults the pages in without changing them: a page the writer already wrote is left
     * as it is, an untouched one is zeroed now instead of under the writer's copy. */
    if (madvise((uint8_t *)log->header + offset, (size_t)bytes, MADV_POPULATE_WRITE) != 0) return 0;
    return bytes;
}

uint64_t shm_log_record_bytes_max(const struct shm_log *log) {
    return log->record_bytes_max;
}

uint64_t shm_log_next_offset(const struct shm_log *log) {
    return log->next_offset;
}

/* Block mode: the highest position the writer may fill without overwriting bytes a live
 * consumer has not released. Capped at one lap past the write position, so the slots are
 * rescanned at least once per lap and a consumer that registers later is honoured. */
static uint64_t consumers_space_limit(const struct shm_log *log) {
    uint64_t lowest = log->write_position;
    for (uint32_t index = 0; index < SHM_LOG_CONSUMER_SLOTS; index++) {
        struct shm_log_consumer_slot *slot = &log->header->slots[index];
        if (atomic_load_explicit(&slot->state, memory_order_relaxed) != SHM_LOG_SLOT_ACTIVE)
            continue;
        /* The acquire load pairs with the consumer's release store of read_position: the
         * consumer's reads of everything below it happened before we overwrite it. */
        uint64_t released = atomic_load_explicit(&slot->read_position, memory_order_acquire);
        /* A consumer behind retained_position was passed while stale; it resumes there. */
        if (released < log->retained_position) released = log->retained_position;
        if (released < lowest) lowest = released;
    }
    return lowest + log->capacity;
}

/* Moves retained_position past every entry that starts below `needed`, then makes the new
 * bound visible before the caller overwrites those bytes. */
static void retained_advance(struct shm_log *log, uint64_t needed) {
    uint64_t position = log->retained_position;
    INTAKE_ASSERT(needed <= log->write_position);
    while (position < needed) {
        uint64_t room = log->capacity - (position & (log->capacity - 1));
        if (room < SHM_LOG_ENTRY_HEADER_BYTES) {
            position += room;
            continue;
        }
        const struct shm_log_entry_header *entry =
            shm_log_entry_at(log->ring, log->capacity, position);
        if (entry->length == SHM_LOG_ENTRY_LENGTH_PADDING) {
            position += room;
            continue;
        }
        INTAKE_ASSERT(entry->offset == log->retained_offset);
        log->retained_offset = entry->offset + 1;
        position += shm_log_entry_span(entry->length);
    }
    INTAKE_ASSERT(position <= log->write_position);
    log->retained_position = position;
    atomic_store_explicit(&log->header->retained_offset, log->retained_offset,
                          memory_order_relaxed);
    atomic_store_explicit(&log->header->retained_position, position, memory_order_relaxed);
    /* This release fence orders the store of retained_position above before every store that
     * overwrites the released bytes: a reader that sees any overwritten byte, then issues its
     * acquire fence, loads a retained_position past the entry it was reading (seqlock). */
    atomic_thread_fence(memory_order_release);
}

/* Makes sure the ring may be written up to `end`; false in block mode when a live consumer
 * still needs the bytes. */
static bool room_make(struct shm_log *log, uint64_t end) {
    INTAKE_ASSERT(end > log->write_position);
    if (end <= log->capacity) return true;
    uint64_t needed = end - log->capacity;
    if (needed <= log->retained_position) return true;
    if (log->retention == SHM_LOG_RETENTION_BLOCK && end > log->space_limit) {
        log->space_limit = consumers_space_limit(log);
        if (end > log->space_limit) return false;
    }
    retained_advance(log, needed);
    return true;
}

static void entry_padding_write(struct shm_log *log, uint64_t position, uint64_t room) {
    if (room < SHM_LOG_ENTRY_HEADER_BYTES) return; /* implicit padding: no header fits */
    struct shm_log_entry_header *entry = shm_log_entry_at(log->ring, log->capacity, position);
    entry->length = SHM_LOG_ENTRY_LENGTH_PADDING;
    entry->offset = log->next_offset;
    entry->sequence = 0;
    entry->receive_time_ns = 0;
    entry->checksum = shm_log_entry_checksum(entry, NULL);
}

enum shm_log_append_result shm_log_append(struct shm_log *log, const struct slice *slices,
                                          uint32_t slice_count, uint32_t record_bytes,
                                          uint64_t sequence, uint64_t receive_time_ns,
                                          uint64_t *offset) {
    INTAKE_ASSERT(record_bytes <= log->record_bytes_max);
    INTAKE_ASSERT(slice_count <= RECORD_SLICES_MAX);
    uint64_t span = shm_log_entry_span(record_bytes);
    uint64_t position = log->write_position;
    uint64_t room = log->capacity - (position & (log->capacity - 1));
    uint64_t padding = room < span ? room : 0;
    if (!room_make(log, position + padding + span)) return SHM_LOG_FULL;
    if (padding != 0) {
        entry_padding_write(log, position, room);
        position += padding;
    }
    struct shm_log_entry_header *entry = shm_log_entry_at(log->ring, log->capacity, position);
    uint8_t *bytes = (uint8_t *)(entry + 1);
    uint32_t copied = 0;
    for (uint32_t index = 0; index < slice_count; index++) {
        INTAKE_ASSERT(slices[index].length <= record_bytes - copied);
        memcpy(bytes + copied, slices[index].bytes, slices[index].length);
        copied += slices[index].length;
    }
    INTAKE_ASSERT(copied == record_bytes);
    entry->length = record_bytes;
    entry->offset = log->next_offset;
    entry->sequence = sequence;
    entry->receive_time_ns = receive_time_ns;
    entry->checksum = shm_log_entry_checksum(entry, bytes);
    *offset = log->next_offset;
    log->next_offset++;
    log->write_position = position + span;
    return SHM_LOG_APPENDED;
}

static long futex_wake_all(_Atomic uint32_t *word) {
    return syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

void shm_log_publish(struct shm_log *log) {
    struct shm_log_header *header = log->header;
    if (log->write_position == log->published_position) return;
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
    log->published_position = log->write_position;
    /* Dekker with the reader's wait: the reader stores readers_waiting then loads
     * commit_position; we stored commit_position and now load readers_waiting. The seq_cst
     * fences on both sides make at least one of them see the other's store. */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&header->readers_waiting, memory_order_relaxed) != 0 &&
        atomic_exchange_explicit(&header->readers_waiting, 0, memory_order_relaxed) != 0)
        (void)futex_wake_all(&header->commit_sequence);
}

/* True when the slot's consumer is gone (pid no longer exists) or silent past the stale time. */
static bool consumer_is_stale(const struct shm_log *log, struct shm_log_consumer_slot *slot,
                              uint64_t now_ns) {
    int32_t pid = atomic_load_explicit(&slot->pid, memory_order_relaxed);
    if (pid <= 0) return true;
    if (kill(pid, 0) != 0 && errno == ESRCH) return true;
    uint64_t heartbeat_ns = atomic_load_explicit(&slot->heartbeat_ns, memory_order_relaxed);
    return now_ns > heartbeat_ns && now_ns - heartbeat_ns > log->consumer_stale_ns;
}

bool shm_log_refresh_space(struct shm_log *log) {
    uint64_t now_ns = intake_now_ns();
    for (uint32_t index = 0; index < SHM_LOG_CONSUMER_SLOTS; index++) {
        struct shm_log_consumer_slot *slot = &log->header->slots[index];
        uint32_t state = atomic_load_explicit(&slot->state, memory_order_acquire);
        if (state != SHM_LOG_SLOT_ACTIVE || !consumer_is_stale(log, slot, now_ns)) continue;
        /* A consumer that heartbeats concurrently may flip itself back to ACTIVE; if the
         * exchange loses that race, the consumer stays ACTIVE and keeps holding back. */
        (void)atomic_compare_exchange_strong_explicit(&slot->state, &state, SHM_LOG_SLOT_STALE,
                                                      memory_order_relaxed, memory_order_relaxed);
    }
    uint64_t old_limit = log->space_limit;
    log->space_limit = consumers_space_limit(log);
    return log->space_limit > old_limit || log->retention == SHM_LOG_RETENTION_OVERWRITE;
}
