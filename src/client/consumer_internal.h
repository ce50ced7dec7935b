/*
 * consumer_internal.h: what the consumer library's files share (not part of consumer.h).
 *   consumer_open.c  mapping the files, claiming a slot, choosing the start, open and close
 *   consumer.c       reading: poll (one record or a batch), commit, wait
 *   consumer_set.c   a set of topics read through one handle (intake_consumer_set_*)
 *   log_inspect.c    read-only looks at logs and their consumers (intake_log_inspect)
 * Thread: the thread that owns the handle, as for consumer.h.
 */
#ifndef INTAKE_CONSUMER_INTERNAL_H
#define INTAKE_CONSUMER_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "crc32c.h"
#include "intake/consumer.h"
#include "intake/shm_log_format.h"

/* Most entries one poll inspects (padding, skipped and lapped ones) before giving up. */
#define CONSUMER_POLL_STEPS_MAX (1u << 22)
/* Attempts at reading the seqlock-paired commit position and offset. */
#define CONSUMER_SEQLOCK_ATTEMPTS_MAX 1000
/* How long open waits for the registration lock, and for a region that matches its log (the
 * writer creates the log, then its region), in 1 ms steps. */
#define CONSUMER_OPEN_WAIT_STEPS 2000
/* How long the registration handshake waits for a writer deciding a retirement. */
#define CONSUMER_HANDSHAKE_WAIT_NS 100000000ull
/* Attempts at finding the offset of the start position while the writer laps it. */
#define CONSUMER_START_ATTEMPTS_MAX 200
/* Bounds of one futex sleep: wait heartbeats between sleeps so a waiting consumer never looks
 * stale to the writer. */
#define CONSUMER_WAIT_SLICE_NS_MIN     1000000ull
#define CONSUMER_WAIT_SLICE_NS_MAX     1000000000ull
#define CONSUMER_WAIT_SLICE_NS_DEFAULT 100000000ull

struct intake_consumer {
    int fd; /* the log, O_RDONLY */
    size_t map_bytes;
    const struct shm_log_header *header;
    const uint8_t *ring;
    int consumers_fd; /* the consumer region, O_RDWR; holds our slot's lock */
    struct shm_log_consumers *consumers;
    struct shm_log_consumer_slot *slot;
    int log_guard, consumers_guard;
    atomic_bool log_broken, consumers_broken;
    uint64_t capacity;
    uint64_t record_bytes_max;
    bool ephemeral;
    uint64_t position;        /* next entry to read */
    uint64_t expected_offset; /* offset the next record should have, or SHM_LOG_OFFSET_NONE */
    uint64_t commit_cached;   /* last commit_position acquire-loaded */
    uint64_t missed_total;
    char path[4096 + SHM_LOG_FILE_NAME_BYTES];
    char error[INTAKE_CONSUMER_ERROR_BYTES];
};

/* Seqlock recheck: true when the writer had not begun overwriting the entry at `position` by
 * the time every load before this call completed. */
static inline bool entry_still_intact(const struct shm_log_header *header, uint64_t position) {
    /* The acquire fence pairs with the writer's release fence after it advances
     * retained_position: if any byte we read was already overwritten, the load below sees a
     * retained_position past `position`. */
    atomic_thread_fence(memory_order_acquire);
    return atomic_load_explicit(&header->retained_position, memory_order_relaxed) <= position;
}

/* Whether commit and retained positions are ones a writer could have left. */
static inline bool positions_plausible(const struct intake_consumer *consumer, uint64_t commit,
                                       uint64_t retained) {
    return retained <= commit && commit - retained <= consumer->capacity &&
           commit % SHM_LOG_ENTRY_ALIGNMENT == 0 && retained % SHM_LOG_ENTRY_ALIGNMENT == 0;
}

/* One attempt at reading commit_position and commit_offset as a consistent pair (the seqlock
 * around publish, format step 1). False while a publish is under way (or a writer died inside
 * one): try again, or take the position alone. */
static inline bool commit_pair_load_once(const struct shm_log_header *header, uint64_t *position,
                                         uint64_t *offset) {
    /* The acquire load pairs with the writer's release store of an even sequence. */
    uint32_t before = atomic_load_explicit(&header->commit_sequence, memory_order_acquire);
    if (before & 1u) return false;
    *position = atomic_load_explicit(&header->commit_position, memory_order_acquire);
    *offset = atomic_load_explicit(&header->commit_offset, memory_order_relaxed);
    /* The acquire fence orders the pair's loads before the sequence recheck. */
    atomic_thread_fence(memory_order_acquire);
    return atomic_load_explicit(&header->commit_sequence, memory_order_relaxed) == before;
}

/* Sets the handle's one-line reason. */
void consumer_fail(struct intake_consumer *consumer, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
/* True (with the reason set) when a mapping was truncated under us and replaced by zeros. */
bool consumer_broken(struct intake_consumer *consumer);

/* intake_consumer_open into caller-owned, zeroed storage (a set keeps its members in one
 * array made at its open). On failure everything it took is released and `why` is set. */
int consumer_open_in(struct intake_consumer *consumer, const char *directory, const char *topic,
                     const char *name, const struct intake_consumer_options *options, char *why,
                     size_t why_capacity) INTAKE_MUST_CHECK;
/* intake_consumer_close without freeing the storage (left zeroed, reusable). */
void consumer_release(struct intake_consumer *consumer);

/* Marks the slot live at `now_ns` (CLOCK_MONOTONIC), putting back a state someone rewrote. */
void consumer_heartbeat(struct intake_consumer *consumer, uint64_t now_ns);
/* Up to `capacity` records into `records` (their `bytes` point into the mapping): a count,
 * or negative errno as intake_consumer_poll. Heartbeats once at `now_ns` and releases what the
 * previous call returned; the records returned stay (block mode) until the next call. */
int consumer_poll_batch(struct intake_consumer *consumer, uint64_t now_ns,
                        struct intake_consumer_record *records,
                        uint32_t capacity) INTAKE_MUST_CHECK;
/* How long one futex sleep may last so heartbeats stay well within the log's stale time. */
uint64_t consumer_wait_slice_ns(const struct shm_log_header *header);
/* FUTEX_WAIT (shared: the word is in a file mapping) on `word` while it holds `expected`, for
 * at most `timeout_ns`. The syscall's result (errno set on -1). */
long consumer_futex_wait(const SHM_LOG_ATOMIC(uint32_t) * word, uint32_t expected,
                         uint64_t timeout_ns);
/* Whether the log's path now names another file (the writer recreated it): reason set. */
bool consumer_replaced(struct intake_consumer *consumer);

#endif
