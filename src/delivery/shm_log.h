/*
 * shm_log.h: the writer side of a topic's shared-memory log (the daemon's view).
 *
 * One file per topic under the shm directory, mapped by the daemon (one writer: the worker that
 * owns the topic) and by any number of consumer processes (include/intake/consumer.h). The
 * on-memory layout is in shm_log_format.h, shared with the consumer library.
 *
 * Thread: only the owning worker calls anything here for a given log.
 *
 * Appending is two-phase so a worker can batch: shm_log_append copies one record's bytes (the
 * single user-space copy of the payload) and its entry header into the ring, invisible to
 * readers; shm_log_publish makes everything appended so far visible with one release store of
 * the commit position, and wakes readers waiting on it. A record is "committed" once published.
 */
#ifndef INTAKE_SHM_LOG_H
#define INTAKE_SHM_LOG_H

#include <stdbool.h>
#include <stdint.h>

#include "common.h"
#include "record.h"

enum shm_log_retention {
    SHM_LOG_RETENTION_BLOCK = 0,     /* never overwrite what a live consumer has not read */
    SHM_LOG_RETENTION_OVERWRITE = 1, /* never wait; lapped consumers learn how much they missed */
};

struct shm_log_config {
    const char *directory;     /* e.g. /dev/shm/intake; created if missing */
    const char *topic;         /* NUL-terminated, 1..255 bytes of UTF-8 */
    uint64_t capacity_bytes;   /* data ring size; power of two; used only when creating */
    enum shm_log_retention retention;
    uint64_t consumer_stale_ns; /* block mode: a consumer silent this long stops holding back */
};

enum shm_log_append_result {
    SHM_LOG_APPENDED = 0,
    SHM_LOG_FULL = 1,      /* block mode: a live consumer has not read the space needed yet */
};

struct shm_log;

/* Creates the topic's log file, or reopens an existing one (offsets continue where they
 * stopped). Negative errno on failure with `why` set to one line. */
int shm_log_open_writer(const struct shm_log_config *config, struct shm_log **out, char *why,
                        size_t why_capacity) INTAKE_MUST_CHECK;
void shm_log_close(struct shm_log *log);

/* Largest record (encoded bytes) this log can hold; the daemon checks --max-frame against it. */
uint64_t shm_log_record_bytes_max(const struct shm_log *log);

/* Copies the record's bytes from its slices into the log, unpublished. On SHM_LOG_APPENDED,
 * *offset is the record's topic offset (grows by one per record, never reused). */
enum shm_log_append_result shm_log_append(struct shm_log *log, const struct slice *slices,
                                          uint32_t slice_count, uint32_t record_bytes,
                                          uint64_t sequence, uint64_t receive_time_ns,
                                          uint64_t *offset) INTAKE_MUST_CHECK;
/* Publishes every appended record (release store of the commit position) and wakes waiters. */
void shm_log_publish(struct shm_log *log);
/* Block mode, after SHM_LOG_FULL: rechecks consumers (liveness, staleness) and returns true
 * when space may have appeared. Never sleeps; the worker decides how long to wait. */
bool shm_log_refresh_space(struct shm_log *log);

/* Touches `bytes` of the log's mapping from `offset` so the writer's first lap takes no page
 * faults. Any thread (the log opener calls it while the worker may already write): it never
 * changes content. Returns the bytes done, 0 at the end or when the kernel refuses. */
uint64_t shm_log_prefault(struct shm_log *log, uint64_t offset, uint64_t bytes);

/* The next offset the log will assign (tests, log lines). */
uint64_t shm_log_next_offset(const struct shm_log *log);

#endif
