/*
 * consumer.c: the consumer library (include/intake/consumer.h), linked into other processes.
 * Depends only on intake_base (common.c) and the layout in shm_log_format.h; never on the
 * daemon's modules.
 *
 * Thread: one thread per handle. A handle owns its file descriptor, its mapping (the header
 * read-write for its slot and the wait flag, the ring read-only) and one consumer slot.
 * The protocol with the writer is described in shm_log_format.h; each barrier below says which
 * of its steps it implements.
 */
#include "intake/consumer.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "intake/shm_log_format.h"

/* Most entries one poll inspects (padding, skipped and lapped ones) before giving up. */
#define CONSUMER_POLL_STEPS_MAX (1u << 22)
/* Attempts at claiming a slot while other processes race for the same slots. */
#define CONSUMER_CLAIM_ATTEMPTS_MAX 16
/* Attempts at reading the seqlock-paired commit position and offset. */
#define CONSUMER_SEQLOCK_ATTEMPTS_MAX 100000
/* Bounds of one futex sleep: wait heartbeats between sleeps so a waiting consumer never looks
 * stale to the writer. */
#define CONSUMER_WAIT_SLICE_NS_MIN 1000000ull
#define CONSUMER_WAIT_SLICE_NS_MAX 1000000000ull
#define CONSUMER_WAIT_SLICE_NS_DEFAULT 100000000ull

struct intake_consumer {
    int fd;
    size_t map_bytes;
    struct shm_log_header *header;
    const uint8_t *ring;
    uint64_t capacity;
    uint64_t record_bytes_max;
    struct shm_log_consumer_slot *slot;
    bool ephemeral;
    uint64_t position;        /* next entry to read */
    uint64_t expected_offset; /* offset the next record should have, or SHM_LOG_OFFSET_NONE */
    uint64_t commit_cached;   /* last commit_position acquire-loaded */
    uint64_t missed_total;
    char error[INTAKE_CONSUMER_ERROR_BYTES];
};

bool intake_consumer_writer_alive(const struct intake_consumer *consumer) {
    INTAKE_ASSERT(consumer->fd >= 0);
    /* A shared lock is refused exactly while the writer holds its exclusive one. Taking it for
     * an instant cannot hold a writer out for longer than that instant: its own open retries
     * nothing, so release at once. */
    if (flock(consumer->fd, LOCK_SH | LOCK_NB) != 0) return errno == EWOULDBLOCK;
    flock(consumer->fd, LOCK_UN);
    return false;
}

const char *intake_consumer_error(const struct intake_consumer *consumer) {
    return consumer->error;
}

uint64_t intake_consumer_missed_total(const struct intake_consumer *consumer) {
    return consumer->missed_total;
}

uint64_t intake_consumer_next_offset(const struct intake_consumer *consumer) {
    return consumer->expected_offset;
}

static bool pid_alive(int32_t pid) {
    if (pid <= 0) return false;
    return kill(pid, 0) == 0 || errno != ESRCH;
}

static void heartbeat(struct intake_consumer *consumer) {
    struct shm_log_consumer_slot *slot = consumer->slot;
    atomic_store_explicit(&slot->heartbeat_ns, intake_now_ns(), memory_order_relaxed);
    uint32_t state = atomic_load_explicit(&slot->state, memory_order_relaxed);
    INTAKE_ASSERT(state == SHM_LOG_SLOT_ACTIVE || state == SHM_LOG_SLOT_STALE);
    /* The writer marked us stale (we were silent or it misjudged us): come back. What it
     * overwrote meanwhile is reported as a gap by the next poll. */
    if (state == SHM_LOG_SLOT_STALE)
        (void)atomic_compare_exchange_strong_explicit(&slot->state, &state, SHM_LOG_SLOT_ACTIVE,
                                                      memory_order_release,
                                                      memory_order_relaxed);
}

/* Maps the file and checks its header. */
static int log_map(struct intake_consumer *consumer, const char *directory, const char *topic) {
    char name[SHM_LOG_FILE_NAME_BYTES], path[4096 + SHM_LOG_FILE_NAME_BYTES];
    shm_log_file_name(topic, name);
    snprintf(path, sizeof(path), "%s/%s", directory, name);
    consumer->fd = open(path, O_RDWR | O_CLOEXEC);
    if (consumer->fd < 0) {
        int error = errno;
        if (error == ENOENT)
            intake_error_line(consumer->error, sizeof(consumer->error), "no log for topic %s in %s", topic,
                     directory);
        else intake_error_line(consumer->error, sizeof(consumer->error), "cannot open %s: %s", path, strerror(error));
        return -error;
    }
    struct stat status;
    if (fstat(consumer->fd, &status) != 0) {
        int error = errno;
        intake_error_line(consumer->error, sizeof(consumer->error), "fstat %s: %s", path, strerror(error));
        return -error;
    }
    if ((uint64_t)status.st_size < SHM_LOG_HEADER_BYTES + SHM_LOG_CAPACITY_MIN) {
        intake_error_line(consumer->error, sizeof(consumer->error), "%s is not an initialised intake log", path);
        return -EINVAL;
    }
    void *map = mmap(NULL, (size_t)status.st_size, PROT_READ | PROT_WRITE, MAP_SHARED,
                     consumer->fd, 0);
    if (map == MAP_FAILED) {
        int error = errno;
        intake_error_line(consumer->error, sizeof(consumer->error), "mmap %s: %s", path, strerror(error));
        return -error;
    }
    consumer->header = map;
    consumer->map_bytes = (size_t)status.st_size;
    struct shm_log_header *header = consumer->header;
    /* The acquire load of the magic pairs with the writer's release store at creation: a valid
     * magic means the rest of the header is initialised. */
    if (__atomic_load_n(&header->magic, __ATOMIC_ACQUIRE) != SHM_LOG_MAGIC ||
        header->version != SHM_LOG_VERSION || header->header_bytes != SHM_LOG_HEADER_BYTES) {
        intake_error_line(consumer->error, sizeof(consumer->error), "%s: not an intake log of version %u", path,
                 SHM_LOG_VERSION);
        return -EINVAL;
    }
    uint64_t capacity = header->capacity_bytes;
    if (!intake_is_power_of_two(capacity) ||
        SHM_LOG_HEADER_BYTES + capacity != consumer->map_bytes ||
        header->record_bytes_max != shm_log_record_bytes_max_for(capacity) ||
        strncmp(header->topic, topic, SHM_LOG_TOPIC_BYTES) != 0) {
        intake_error_line(consumer->error, sizeof(consumer->error), "%s: header does not match topic %s or size",
                 path, topic);
        return -EINVAL;
    }
    consumer->capacity = capacity;
    consumer->record_bytes_max = header->record_bytes_max;
    consumer->ring = (const uint8_t *)map + SHM_LOG_HEADER_BYTES;
    /* Readers never write the ring: make a stray write fault here instead of corrupting it. */
    if (mprotect((uint8_t *)map + SHM_LOG_HEADER_BYTES, (size_t)capacity, PROT_READ) != 0)
        return -errno;
    return 0;
}

/* Finds the slot registered under `name` (any state but FREE), or -1. */
static int slot_find_by_name(struct shm_log_header *header, const char *name) {
    for (int index = 0; index < SHM_LOG_CONSUMER_SLOTS; index++) {
        struct shm_log_consumer_slot *slot = &header->slots[index];
        /* The acquire load pairs with the release store that made the slot CLAIMING->ACTIVE
         * or DETACHED: the name written while claiming is visible. */
        uint32_t state = atomic_load_explicit(&slot->state, memory_order_acquire);
        if (state == SHM_LOG_SLOT_FREE || state == SHM_LOG_SLOT_CLAIMING) continue;
        if (strncmp(slot->name, name, SHM_LOG_CONSUMER_NAME_BYTES) == 0) return index;
    }
    return -1;
}

/* Takes a FREE slot, or an ephemeral one whose process is gone; moves it to CLAIMING. */
static int slot_take_free(struct shm_log_header *header, const char *name, bool ephemeral) {
    for (int index = 0; index < SHM_LOG_CONSUMER_SLOTS; index++) {
        struct shm_log_consumer_slot *slot = &header->slots[index];
        uint32_t state = atomic_load_explicit(&slot->state, memory_order_acquire);
        bool reclaimable = (state == SHM_LOG_SLOT_ACTIVE || state == SHM_LOG_SLOT_STALE) &&
                           (slot->flags & SHM_LOG_SLOT_FLAG_EPHEMERAL) != 0 &&
                           !pid_alive(atomic_load_explicit(&slot->pid, memory_order_relaxed));
        if (state != SHM_LOG_SLOT_FREE && !reclaimable) continue;
        if (!atomic_compare_exchange_strong_explicit(&slot->state, &state, SHM_LOG_SLOT_CLAIMING,
                                                     memory_order_acquire, memory_order_relaxed))
            continue;
        memset(slot->name, 0, sizeof(slot->name));
        memcpy(slot->name, name, strlen(name));
        slot->flags = ephemeral ? SHM_LOG_SLOT_FLAG_EPHEMERAL : 0;
        atomic_store_explicit(&slot->committed_offset, SHM_LOG_OFFSET_NONE, memory_order_relaxed);
        atomic_store_explicit(&slot->committed_position, 0, memory_order_relaxed);
        return index;
    }
    return -ENOSPC;
}

/* Claims the slot of `name` (resuming it) or a new one; the slot ends CLAIMING. */
static int slot_claim(struct intake_consumer *consumer, const char *name, bool ephemeral) {
    struct shm_log_header *header = consumer->header;
    for (int attempt = 0; attempt < CONSUMER_CLAIM_ATTEMPTS_MAX; attempt++) {
        int index = slot_find_by_name(header, name);
        if (index < 0) {
            index = slot_take_free(header, name, ephemeral);
            if (index == -ENOSPC) {
                intake_error_line(consumer->error, sizeof(consumer->error), "all %d consumer slots are in use",
                         SHM_LOG_CONSUMER_SLOTS);
                return -ENOSPC;
            }
            consumer->slot = &header->slots[index];
            return 0;
        }
        struct shm_log_consumer_slot *slot = &header->slots[index];
        uint32_t state = atomic_load_explicit(&slot->state, memory_order_acquire);
        int32_t pid = atomic_load_explicit(&slot->pid, memory_order_relaxed);
        if (state != SHM_LOG_SLOT_DETACHED && pid_alive(pid)) {
            intake_error_line(consumer->error, sizeof(consumer->error), "consumer %s is in use by process %d", name,
                     (int)pid);
            return -EBUSY;
        }
        if (state == SHM_LOG_SLOT_FREE || state == SHM_LOG_SLOT_CLAIMING) continue;
        if (atomic_compare_exchange_strong_explicit(&slot->state, &state, SHM_LOG_SLOT_CLAIMING,
                                                    memory_order_acquire, memory_order_relaxed)) {
            slot->flags = ephemeral ? SHM_LOG_SLOT_FLAG_EPHEMERAL : 0;
            consumer->slot = slot;
            return 0;
        }
    }
    intake_error_line(consumer->error, sizeof(consumer->error), "consumer %s: slot claim kept racing", name);
    return -EAGAIN;
}

/* Reads commit_position and commit_offset as a consistent pair (seqlock, see publish). */
static void commit_pair_read(const struct intake_consumer *consumer, uint64_t *position,
                             uint64_t *offset) {
    struct shm_log_header *header = consumer->header;
    for (int attempt = 0; attempt < CONSUMER_SEQLOCK_ATTEMPTS_MAX; attempt++) {
        /* The acquire load pairs with the writer's release store of an even sequence. */
        uint32_t before = atomic_load_explicit(&header->commit_sequence, memory_order_acquire);
        if (before & 1u) continue;
        *position = atomic_load_explicit(&header->commit_position, memory_order_acquire);
        *offset = atomic_load_explicit(&header->commit_offset, memory_order_relaxed);
        /* The acquire fence orders the pair's loads before the sequence recheck. */
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&header->commit_sequence, memory_order_relaxed) == before) return;
    }
    /* A writer died inside publish: the position alone is still correct; the offset becomes
     * known from the first record read. */
    *position = atomic_load_explicit(&header->commit_position, memory_order_acquire);
    *offset = SHM_LOG_OFFSET_NONE;
}

static void start_position_choose(struct intake_consumer *consumer, bool resumed,
                                  const struct intake_consumer_options *options) {
    struct shm_log_header *header = consumer->header;
    struct shm_log_consumer_slot *slot = consumer->slot;
    uint64_t committed_offset = atomic_load_explicit(&slot->committed_offset, memory_order_relaxed);
    uint64_t commit_position = atomic_load_explicit(&header->commit_position, memory_order_acquire);
    consumer->expected_offset = SHM_LOG_OFFSET_NONE;
    consumer->position = atomic_load_explicit(&header->retained_position, memory_order_acquire);
    switch (options->start) {
    case INTAKE_CONSUMER_START_COMMITTED:
        if (!resumed || committed_offset == SHM_LOG_OFFSET_NONE) break;
        consumer->position = atomic_load_explicit(&slot->committed_position, memory_order_relaxed);
        consumer->expected_offset = committed_offset;
        /* A cursor beyond the log's end cannot come from this log: start at its end. */
        if (consumer->position > commit_position || consumer->position % SHM_LOG_ENTRY_ALIGNMENT)
            commit_pair_read(consumer, &consumer->position, &consumer->expected_offset);
        break;
    case INTAKE_CONSUMER_START_OLDEST:
        break;
    case INTAKE_CONSUMER_START_END:
        commit_pair_read(consumer, &consumer->position, &consumer->expected_offset);
        break;
    case INTAKE_CONSUMER_START_OFFSET:
        /* Poll skips records below the offset; a gap is reported if it is no longer there. */
        consumer->expected_offset = options->start_offset;
        break;
    }
    consumer->commit_cached = consumer->position;
}

int intake_consumer_open(const char *directory, const char *topic, const char *name,
                         const struct intake_consumer_options *options,
                         struct intake_consumer **out, char *why, size_t why_capacity) {
    INTAKE_ASSERT(out != NULL);
    INTAKE_ASSERT(options != NULL);
    INTAKE_ASSERT(why != NULL || why_capacity == 0);
    *out = NULL;
    if (why_capacity > 0) why[0] = '\0';
    size_t name_length = name ? strlen(name) : 0;
    if (name_length == 0 || name_length > INTAKE_CONSUMER_NAME_BYTES_MAX) {
        intake_error_line(why, why_capacity, "consumer name must be 1..63 bytes");
        return -EINVAL;
    }
    struct intake_consumer *consumer = calloc(1, sizeof(*consumer));
    if (consumer == NULL) {
        intake_error_line(why, why_capacity, "out of memory for the consumer handle");
        return -ENOMEM;
    }
    consumer->fd = -1;
    consumer->ephemeral = options->ephemeral;
    int result = log_map(consumer, directory, topic);
    if (result != 0) goto fail;
    result = slot_claim(consumer, name, options->ephemeral);
    if (result != 0) goto fail;
    struct shm_log_consumer_slot *slot = consumer->slot;
    bool resumed = strncmp(slot->name, name, SHM_LOG_CONSUMER_NAME_BYTES) == 0 &&
                   atomic_load_explicit(&slot->committed_offset, memory_order_relaxed) !=
                       SHM_LOG_OFFSET_NONE;
    start_position_choose(consumer, resumed, options);
    atomic_store_explicit(&slot->pid, (int32_t)getpid(), memory_order_relaxed);
    atomic_store_explicit(&slot->heartbeat_ns, intake_now_ns(), memory_order_relaxed);
    atomic_store_explicit(&slot->read_position, consumer->position, memory_order_relaxed);
    /* The release store of ACTIVE publishes the slot's name, pid, heartbeat and read_position:
     * from the writer's next scan on, this consumer holds it back (block mode). */
    atomic_store_explicit(&slot->state, SHM_LOG_SLOT_ACTIVE, memory_order_release);
    *out = consumer;
    return 0;
fail:
    /* Every failure above names its cause in consumer->error; a bare errno is the fallback. */
    intake_error_line(why, why_capacity, "%s",
                      consumer->error[0] != '\0' ? consumer->error : strerror(-result));
    if (consumer->header != NULL) munmap(consumer->header, consumer->map_bytes);
    if (consumer->fd >= 0) close(consumer->fd);
    free(consumer);
    return result;
}

void intake_consumer_close(struct intake_consumer *consumer) {
    if (consumer == NULL) return;
    struct shm_log_consumer_slot *slot = consumer->slot;
    atomic_store_explicit(&slot->pid, 0, memory_order_relaxed);
    /* The release store hands the slot back: everything this consumer read happened before,
     * and (detached) its committed cursor is visible to the next open of the same name. */
    atomic_store_explicit(&slot->state,
                          consumer->ephemeral ? SHM_LOG_SLOT_FREE : SHM_LOG_SLOT_DETACHED,
                          memory_order_release);
    munmap(consumer->header, consumer->map_bytes);
    close(consumer->fd);
    free(consumer);
}

/* Seqlock recheck: true when the writer had not begun overwriting the entry at `position` by
 * the time every load before this call completed. */
static bool entry_still_intact(const struct shm_log_header *header, uint64_t position) {
    /* The acquire fence pairs with the writer's release fence after it advances
     * retained_position: if any byte we read was already overwritten, the load below sees a
     * retained_position past `position`. */
    atomic_thread_fence(memory_order_acquire);
    return atomic_load_explicit(&header->retained_position, memory_order_relaxed) <= position;
}

bool intake_consumer_record_valid(const struct intake_consumer *consumer,
                                  const struct intake_consumer_record *record) {
    INTAKE_ASSERT(record->bytes >= consumer->ring);
    INTAKE_ASSERT(record->bytes < consumer->ring + consumer->capacity);
    return entry_still_intact(consumer->header, record->opaque_position);
}

enum entry_outcome {
    ENTRY_RECORD,  /* *record filled, position advanced */
    ENTRY_SKIPPED, /* padding or a record below the start offset; position advanced */
    ENTRY_LAPPED,  /* the writer overwrote it; read again from retained_position */
    ENTRY_BAD,     /* intact but failed its checks: a bug */
};

static enum entry_outcome entry_read(struct intake_consumer *consumer,
                                     struct intake_consumer_record *record) {
    uint64_t position = consumer->position;
    uint64_t room = consumer->capacity - (position & (consumer->capacity - 1));
    if (room < SHM_LOG_ENTRY_HEADER_BYTES) {
        consumer->position += room; /* implicit padding at the ring end */
        return ENTRY_SKIPPED;
    }
    const uint8_t *at = consumer->ring + (position & (consumer->capacity - 1));
    struct shm_log_entry_header entry;
    memcpy(&entry, at, sizeof(entry)); /* may be torn in overwrite mode: checked below */
    if (entry.length == SHM_LOG_ENTRY_LENGTH_PADDING) {
        if (!entry_still_intact(consumer->header, position)) return ENTRY_LAPPED;
        consumer->position += room;
        return ENTRY_SKIPPED;
    }
    const uint8_t *bytes = at + SHM_LOG_ENTRY_HEADER_BYTES;
    bool fits = entry.length <= consumer->record_bytes_max &&
                SHM_LOG_ENTRY_HEADER_BYTES + (uint64_t)entry.length <= room;
    uint32_t checksum = fits ? shm_log_entry_checksum(&entry, bytes) : 0;
    if (!entry_still_intact(consumer->header, position)) return ENTRY_LAPPED;
    if (!fits || checksum != entry.checksum) {
        intake_error_line(consumer->error, sizeof(consumer->error),
                 "entry at position %llu failed its checks (length %u): log corrupt",
                 (unsigned long long)position, entry.length);
        return ENTRY_BAD;
    }
    consumer->position += shm_log_entry_span(entry.length);
    uint64_t expected = consumer->expected_offset;
    if (expected != SHM_LOG_OFFSET_NONE && entry.offset < expected) return ENTRY_SKIPPED;
    record->bytes = bytes;
    record->length = entry.length;
    record->offset = entry.offset;
    record->sequence = entry.sequence;
    record->receive_time_ns = entry.receive_time_ns;
    record->missed = expected == SHM_LOG_OFFSET_NONE ? 0 : entry.offset - expected;
    record->opaque_position = position;
    consumer->expected_offset = entry.offset + 1;
    consumer->missed_total += record->missed;
    return ENTRY_RECORD;
}

int intake_consumer_poll(struct intake_consumer *consumer, struct intake_consumer_record *record) {
    struct shm_log_header *header = consumer->header;
    heartbeat(consumer);
    /* The release store of read_position releases the records poll returned before: the
     * caller's reads of their bytes happen before the writer (acquire-loading it) reuses them. */
    atomic_store_explicit(&consumer->slot->read_position, consumer->position,
                          memory_order_release);
    for (uint32_t step = 0; step < CONSUMER_POLL_STEPS_MAX; step++) {
        if (consumer->position >= consumer->commit_cached) {
            /* The acquire load pairs with the writer's release store in publish: every entry
             * below the loaded commit_position is complete. */
            consumer->commit_cached =
                atomic_load_explicit(&header->commit_position, memory_order_acquire);
            if (consumer->position >= consumer->commit_cached) return 0;
        }
        uint64_t retained = atomic_load_explicit(&header->retained_position, memory_order_relaxed);
        if (consumer->position < retained) {
            consumer->position = retained; /* lapped: the next record's offset tells the gap */
            continue;
        }
        switch (entry_read(consumer, record)) {
        case ENTRY_RECORD:
            INTAKE_ASSERT(consumer->position <= consumer->commit_cached);
            return 1;
        case ENTRY_SKIPPED:
        case ENTRY_LAPPED:
            continue;
        case ENTRY_BAD:
            return -EBADMSG;
        }
    }
    intake_error_line(consumer->error, sizeof(consumer->error), "poll kept being lapped by the writer");
    return -EAGAIN;
}

void intake_consumer_commit(struct intake_consumer *consumer) {
    struct shm_log_consumer_slot *slot = consumer->slot;
    heartbeat(consumer);
    atomic_store_explicit(&slot->committed_position, consumer->position, memory_order_relaxed);
    /* The release store of the offset publishes the committed pair to a later open of this
     * name (which loads the slot state with acquire after we detach or die). */
    atomic_store_explicit(&slot->committed_offset, consumer->expected_offset,
                          memory_order_release);
}

static long futex_wait(_Atomic uint32_t *word, uint32_t expected, uint64_t timeout_ns) {
    struct timespec timeout = {(time_t)(timeout_ns / 1000000000ull),
                               (long)(timeout_ns % 1000000000ull)};
    return syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT, expected, &timeout, NULL, 0);
}

static uint64_t wait_slice_ns(const struct shm_log_header *header) {
    uint64_t stale_ns = atomic_load_explicit(&header->consumer_stale_ns, memory_order_relaxed);
    if (stale_ns == 0) return CONSUMER_WAIT_SLICE_NS_DEFAULT;
    uint64_t slice_ns = stale_ns / 4;
    if (slice_ns < CONSUMER_WAIT_SLICE_NS_MIN) slice_ns = CONSUMER_WAIT_SLICE_NS_MIN;
    if (slice_ns > CONSUMER_WAIT_SLICE_NS_MAX) slice_ns = CONSUMER_WAIT_SLICE_NS_MAX;
    return slice_ns;
}

int intake_consumer_wait(struct intake_consumer *consumer, uint64_t timeout_ns) {
    struct shm_log_header *header = consumer->header;
    uint64_t deadline_ns = intake_now_ns() + timeout_ns;
    for (;;) {
        heartbeat(consumer);
        /* The futex word is loaded before the recheck below: a publish after this load
         * changes it, so FUTEX_WAIT returns at once instead of sleeping through the publish. */
        uint32_t sequence = atomic_load_explicit(&header->commit_sequence, memory_order_acquire);
        atomic_store_explicit(&header->readers_waiting, 1, memory_order_relaxed);
        /* Dekker with publish: our flag store, then our commit_position load; the writer's
         * commit_position store, then its flag load. Both sides fence seq_cst. */
        atomic_thread_fence(memory_order_seq_cst);
        /* The acquire load pairs with publish's release store of commit_position. */
        uint64_t commit = atomic_load_explicit(&header->commit_position, memory_order_acquire);
        if (commit > consumer->position) {
            consumer->commit_cached = commit;
            return 1;
        }
        uint64_t now_ns = intake_now_ns();
        if (now_ns >= deadline_ns) return 0;
        uint64_t sleep_ns = deadline_ns - now_ns;
        if (sleep_ns > wait_slice_ns(header)) sleep_ns = wait_slice_ns(header);
        if (futex_wait(&header->commit_sequence, sequence, sleep_ns) != 0 && errno == EINTR)
            return -EINTR;
    }
}
