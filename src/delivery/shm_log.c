/*
 * shm_log.c: the writer side of a topic's shared-memory log in use: appends, publishes, slot
 * scans, recovery (files: shm_log_files.c; see shm_log.h for the contract and
 * include/intake/shm_log_format.h, docs/shm-log-format.md for the layout and the protocol).
 *
 * Thread: only the worker that owns the topic calls these for a given log. The log owns two
 * file descriptors (the log, holding an exclusive flock so a second writer is refused; the
 * consumer region) and their mappings. Readers are other processes; they share nothing with
 * this file but the mappings. Nothing read back from a file is asserted on: the writer keeps
 * its own copy of every position, and checks what it must read (slots, entries it retires).
 */
#include "shm_log_internal.h"

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
#include "shm_notify.h"

int shm_log_open_writer(const struct shm_log_config *config, struct shm_log **out, char *why,
                        size_t why_capacity) {
    INTAKE_ASSERT(out != NULL);
    INTAKE_ASSERT(why != NULL && why_capacity > 0);
    why[0] = '\0';
    *out = NULL;
    int result = shm_log_config_check(config, why, why_capacity);
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
    result = shm_log_files_open(log, why, why_capacity);
    if (result != 0) {
        shm_log_unmap(log);
        free(log);
        return result;
    }
    shm_log_writer_state_load(log);
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
    shm_log_unmap(log);
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

/* One step of a walk over the entries this writer checked at open or wrote itself: from
 * *position, skips padding (implicit and explicit) up to `end`. WALK_RECORD: *position is at a
 * record entry, whose header is in *entry and whose span is in *span. WALK_BROKEN: the header
 * there is impossible (the ring was changed under the writer); the walk must end. */
enum walk_step { WALK_RECORD, WALK_END, WALK_BROKEN };

static enum walk_step walk_to_record(const struct shm_log *log, uint64_t *position, uint64_t end,
                                     struct shm_log_entry_header *entry, uint64_t *span) {
    while (*position < end) {
        uint64_t room = log->capacity - (*position & (log->capacity - 1));
        if (room < SHM_LOG_ENTRY_HEADER_BYTES) {
            *position += room;
            continue;
        }
        memcpy(entry, shm_log_entry_at(log->ring, log->capacity, *position), sizeof(*entry));
        if (entry->length == SHM_LOG_ENTRY_LENGTH_PADDING) {
            *position += room;
            continue;
        }
        *span = shm_log_entry_span(entry->length);
        if (entry->length > log->record_bytes_max || *span > room) return WALK_BROKEN;
        return WALK_RECORD;
    }
    return WALK_END;
}

uint64_t shm_log_visit_published(const struct shm_log *log, uint64_t from_offset,
                                 shm_log_visit_fn visit, void *context) {
    if (log->header == NULL || atomic_load_explicit(&log->log_broken, memory_order_relaxed))
        return log->next_offset;
    /* Walks what this writer checked at open or wrote itself; the sizes are still checked so
     * a ring changed under us ends the walk instead of reading past an entry. */
    uint64_t position = log->retained_position, span = 0;
    struct shm_log_entry_header entry;
    while (walk_to_record(log, &position, log->published_position, &entry, &span) == WALK_RECORD) {
        if (entry.offset >= from_offset)
            visit(context, entry.offset, entry.principal,
                  (const uint8_t *)shm_log_entry_at(log->ring, log->capacity, position) +
                      SHM_LOG_ENTRY_HEADER_BYTES,
                  entry.length);
        position += span;
    }
    return log->retained_offset;
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
void shm_log_consumers_scan(struct shm_log *log) {
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

/* The writer's own note of an entry it starts at `position` (see struct shm_log). */
static void boundary_note(struct shm_log *log, uint64_t position, uint64_t offset) {
    if (position < log->boundary_next) return;
    if (log->boundary_count == SHM_LOG_BOUNDARIES) { /* not within a lap: drop the oldest */
        log->boundary_head = (log->boundary_head + 1) & (SHM_LOG_BOUNDARIES - 1);
        log->boundary_count--;
    }
    uint32_t at = (log->boundary_head + log->boundary_count) & (SHM_LOG_BOUNDARIES - 1);
    log->boundaries[at] = (struct shm_log_boundary){position, offset};
    log->boundary_count++;
    log->boundary_next = position + log->capacity / SHM_LOG_BOUNDARY_STRIDE_DIVISOR;
}

void shm_log_boundaries_reset(struct shm_log *log) {
    log->boundary_head = 0;
    log->boundary_count = 0;
    log->boundary_next = 0;
}

/*
 * An entry boundary at or above `needed` and at most `limit` (limit >= needed), as close to
 * `needed` as the noted boundaries allow: the first noted boundary above `needed` when it is
 * within `limit` and a stride; otherwise the first boundary at or above `needed`, found by
 * walking the entry headers from the last noted boundary at or below it (at most a stride,
 * except after an open: then from retained_position, whose entries a previous writer left).
 * False when a header walked is not what this writer wrote (the owner scribbled on the ring).
 */
static bool retire_target(struct shm_log *log, uint64_t needed, uint64_t limit, uint64_t *target,
                          uint64_t *target_offset) {
    INTAKE_ASSERT(needed <= limit && limit <= log->write_position);
    uint64_t position = log->retained_position, offset = log->retained_offset;
    while (log->boundary_count > 0) {
        const struct shm_log_boundary *noted = &log->boundaries[log->boundary_head];
        if (noted->position > log->retained_position) break;
        log->boundary_head = (log->boundary_head + 1) & (SHM_LOG_BOUNDARIES - 1);
        log->boundary_count--; /* retired already */
    }
    for (uint32_t index = 0; index < log->boundary_count; index++) {
        const struct shm_log_boundary *noted =
            &log->boundaries[(log->boundary_head + index) & (SHM_LOG_BOUNDARIES - 1)];
        if (noted->position <= needed) {
            position = noted->position;
            offset = noted->offset;
            continue;
        }
        /* Within a stride: the stretch stays what the format promises (a 128th at most past
         * what is wanted). Farther (right after an open, nothing is noted in the entries a
         * previous writer left), the walk below finds the nearer boundary, checking each
         * header it passes. */
        if (noted->position <= limit &&
            noted->position - needed <= log->capacity / SHM_LOG_BOUNDARY_STRIDE_DIVISOR) {
            *target = noted->position;
            *target_offset = noted->offset;
            return true;
        }
        break;
    }
    struct shm_log_entry_header entry;
    uint64_t span = 0;
    while (position < needed) {
        enum walk_step step = walk_to_record(log, &position, needed, &entry, &span);
        if (step == WALK_END) break;
        if (step == WALK_BROKEN || entry.offset != offset) return false;
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
    /* Nothing past what was written, nor (block mode) past what live consumers released. */
    uint64_t limit = log->write_position;
    if (block && limit > log->space_limit - log->capacity) limit = log->space_limit - log->capacity;
    if (wanted > limit) wanted = limit;
    uint64_t target = 0, target_offset = 0;
    if (!retire_target(log, wanted, limit, &target, &target_offset)) return room_broken(log);
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
            shm_log_consumers_scan(log);
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
                if (!retire_target(log, wanted, wanted, &target, &target_offset))
                    return room_broken(log);
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
    entry.checksum = shm_log_entry_checksum(&entry, NULL, intake_crc32c);
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
                                          uint64_t principal, uint64_t *offset) {
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
        .principal = principal,
    };
    uint8_t *at = log->ring + (position & (log->capacity - 1));
    entry.checksum =
        copy_and_checksum(at + SHM_LOG_ENTRY_HEADER_BYTES, slices, slice_count, record_bytes,
                          shm_log_entry_header_crc(&entry, intake_crc32c));
    memcpy(at, &entry, sizeof(entry));
    boundary_note(log, position, log->next_offset);
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
    if (shm_log_files_replace(log, reason, log->published_offset, why, sizeof(why)) != 0) {
        intake_error_line(log->error, sizeof(log->error), "%s", why);
        shm_log_line(log, why);
        shm_log_unmap(log);
        return;
    }
    shm_log_writer_state_load(log);
    /* Consumers of many topics reopen the new files on their next rescan. */
    if (log->config.notify != NULL) shm_notify_logs_changed(log->config.notify);
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
    if (shm_log_consumers_open(log, why, sizeof(why)) != 0) {
        /* Without a region the log cannot serve consumers: treat it as broken. */
        intake_error_line(log->error, sizeof(log->error), "%s", why);
        atomic_store_explicit(&log->log_broken, true, memory_order_relaxed);
        return;
    }
    log->registrations_seen = atomic_load(&log->consumers->registrations);
    shm_log_consumers_scan(log);
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
    /* Consumers of many topics sleep on the directory's word instead (shm_notify.h). Its
     * Dekker pairing relies on the seq_cst fence above, after the commit_position store. */
    if (log->config.notify != NULL) shm_notify_published(log->config.notify);
    return true;
}

bool shm_log_refresh_space(struct shm_log *log) {
    if (log->header == NULL || atomic_load_explicit(&log->log_broken, memory_order_relaxed))
        return true; /* the next append reports it */
    uint64_t old_limit = log->space_limit;
    log->registrations_seen =
        atomic_load_explicit(&log->consumers->registrations, memory_order_acquire);
    shm_log_consumers_scan(log);
    log->space_limit = consumers_space_limit(log);
    return log->space_limit > old_limit || log->config.retention == SHM_LOG_RETENTION_OVERWRITE;
}
