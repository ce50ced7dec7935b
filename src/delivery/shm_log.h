/*
 * shm_log.h: the writer side of a topic's shared-memory log (the daemon's view).
 *
 * Two files per topic under the shm directory (include/intake/shm_log_format.h,
 * docs/shm-log-format.md): the log (header and data ring, written only here, mode 0640) and the
 * consumer region (slots, mode 0660). Consumers (include/intake/consumer.h) map the log
 * read-only. Everything read back from either file is input: validated, never asserted on.
 *
 * Thread: only the owning worker calls anything here for a given log (and the log opener,
 * before handing it over, plus shm_log_prefault at any time).
 *
 * Appending is two-phase so a worker can batch: shm_log_append copies one record's bytes (the
 * single user-space copy of the payload, checksummed chunk by chunk while in cache) and its
 * entry header into the ring, invisible to readers; shm_log_publish makes everything appended
 * so far visible with one release store of the commit position, and wakes waiting readers.
 * A record is "committed" once published.
 *
 * Damage. On open, a log whose header, positions or entries do not check out is moved aside
 * (renamed <file>.corrupt-<unix ms>) and recreated, with one line on stderr. A log file that is
 * truncated while mapped does not kill the process (base/fault_guard.h): the log becomes broken,
 * appends return SHM_LOG_BROKEN, the next publish returns false (what was appended since the
 * last publish was not made readable: never ack it) and recreates the log the same way.
 */
#ifndef INTAKE_SHM_LOG_H
#define INTAKE_SHM_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common.h"
#include "record.h"

/* Modes of what the writer creates: consumers in the log group read logs and register. */
#define SHM_LOG_FILE_MODE           0640
#define SHM_LOG_CONSUMERS_FILE_MODE 0660
#define SHM_LOG_DIRECTORY_MODE      0750

enum shm_log_retention {
    SHM_LOG_RETENTION_BLOCK = 0,     /* never overwrite what a live consumer has not read */
    SHM_LOG_RETENTION_OVERWRITE = 1, /* never wait; lapped consumers learn how much they missed */
};

struct shm_log_config {
    const char *directory;   /* e.g. /dev/shm/intake; created if missing */
    const char *topic;       /* NUL-terminated, 1..255 bytes of UTF-8 */
    uint64_t capacity_bytes; /* data ring size; power of two; used only when creating */
    enum shm_log_retention retention;
    uint64_t consumer_stale_ns; /* block mode: a consumer silent this long stops holding back */
    bool group_set;             /* false: files get the process's group */
    gid_t group;                /* --shm-group: the group that may read logs and register */
    /* The directory's wake-up files (shm_notify.h), bumped after every publish and every
     * recreation; NULL: none (tests that make a log alone). Outlives the log. */
    struct shm_notify *notify;
};

enum shm_log_append_result {
    SHM_LOG_APPENDED = 0,
    SHM_LOG_FULL = 1,      /* block mode: a live consumer has not read the space needed yet */
    SHM_LOG_TOO_LARGE = 2, /* above shm_log_record_bytes_max (a log made with a smaller size) */
    SHM_LOG_BROKEN = 3,    /* the file was damaged under us; see shm_log_error */
};

struct shm_log;
struct shm_notify;

/* Creates the log directory if missing and checks that it is safe: owned by this user, not
 * writable by group or others (they could swap logs), a directory and not a symlink. Gives it
 * the group (when set) and SHM_LOG_DIRECTORY_MODE. Negative errno with one line in `why`.
 * shm_log_open_writer calls it too; the daemon calls it at startup to refuse early. */
int shm_log_directory_prepare(const char *directory, bool group_set, gid_t group, char *why,
                              size_t why_capacity) INTAKE_MUST_CHECK;

/* Creates the topic's log, or reopens an existing one (offsets continue where they stopped;
 * a damaged one is quarantined and recreated). Negative errno on failure with `why` set to
 * one line. */
int shm_log_open_writer(const struct shm_log_config *config, struct shm_log **out, char *why,
                        size_t why_capacity) INTAKE_MUST_CHECK;
void shm_log_close(struct shm_log *log);

/* Largest record (encoded bytes) this log can hold. A log keeps the limit it was created
 * with, so after a restart with a larger --log-size or --max-frame the worker must refuse
 * larger records (shm_log_append returns SHM_LOG_TOO_LARGE for them). */
uint64_t shm_log_record_bytes_max(const struct shm_log *log);

/* Copies the record's bytes from its slices into the log, unpublished, with its entry header
 * (sequence, admission time, and the tag of the principal that wrote it). On SHM_LOG_APPENDED,
 * *offset is the record's topic offset (grows by one per record, never reused once
 * published). */
enum shm_log_append_result shm_log_append(struct shm_log *log, const struct slice *slices,
                                          uint32_t slice_count, uint32_t record_bytes,
                                          uint64_t sequence, uint64_t receive_time_ns,
                                          uint64_t principal, uint64_t *offset) INTAKE_MUST_CHECK;
/* Publishes every appended record (release store of the commit position) and wakes waiters.
 * Returns false when the log broke since the last publish: those records are not readable
 * and must be answered with an error. The log is then recreated (or stays broken, retried at
 * most once a second, while the directory cannot hold it). */
bool shm_log_publish(struct shm_log *log) INTAKE_MUST_CHECK;
/* Block mode, after SHM_LOG_FULL: rechecks consumers (locks, heartbeats) and returns true
 * when space may have appeared. Never sleeps; the worker decides how long to wait. */
bool shm_log_refresh_space(struct shm_log *log);

/* The last damage line ("" when none): what broke, where the file went. */
const char *shm_log_error(const struct shm_log *log);

/* Touches `bytes` of the log's mapping from `offset` so the writer's first lap takes no page
 * faults. Any thread (the log opener calls it while the worker may already write): it never
 * changes content, and only ever touches the mapping made at open. Returns the bytes done, 0 at
 * the end or when the kernel refuses. */
uint64_t shm_log_prefault(struct shm_log *log, uint64_t offset, uint64_t bytes);

/* The next offset the log will assign (tests, log lines). */
uint64_t shm_log_next_offset(const struct shm_log *log);

/* Calls `visit` for every published record whose offset is >= from_offset, oldest first, with
 * its encoded bytes (valid during the call only) and the principal its entry names. For the
 * deduplication table's recovery at open (dedupe_table.h); owner thread. Returns the offset of
 * the oldest record the log still holds (records below it were overwritten),
 * shm_log_next_offset when it holds none. */
typedef void (*shm_log_visit_fn)(void *context, uint64_t offset, uint64_t principal,
                                 const uint8_t *bytes, uint32_t length);
uint64_t shm_log_visit_published(const struct shm_log *log, uint64_t from_offset,
                                 shm_log_visit_fn visit, void *context);

#endif
