/*
 * shm_log_internal.h: what the writer's two files share (not part of shm_log.h's contract).
 *   shm_log_files.c  opening, creating, checking, quarantining and replacing a log's files
 *   shm_log.c        the log in use: appends, publishes, consumer scans, recovery
 * Thread: the worker that owns the log, as for shm_log.h.
 */
#ifndef INTAKE_SHM_LOG_INTERNAL_H
#define INTAKE_SHM_LOG_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crc32c.h"
#include "intake/shm_log_format.h"
#include "shm_log.h"

/* 1 ms apart: far longer than a consumer's liveness probe holds its shared lock. */
#define SHM_LOG_WRITER_LOCK_ATTEMPTS 100
/* Times the writer looks a log's path up again after the file it locked turned out removed or
 * replaced (intake-topic --remove, or another writer's quarantine, while it waited). */
#define SHM_LOG_OPEN_ATTEMPTS 8
/* Bytes copied (then checksummed while still in cache) per step of an append: three lanes. */
#define SHM_LOG_COPY_CHUNK_BYTES (3 * INTAKE_CRC32C_LANE_BYTES)
/* A broken log whose recreation failed is retried at most this often. */
#define SHM_LOG_RECOVER_INTERVAL_NS 1000000000ull
/* Retirement runs this fraction of the ring ahead of what an append needs. */
#define SHM_LOG_RETIRE_AHEAD_DIVISOR 64u
#define SHM_LOG_PATH_BYTES           (4096 + SHM_LOG_FILE_NAME_BYTES + 64)
/* The writer notes an entry boundary at least every capacity / this many bytes, so the
 * boundaries noted over one lap fit the ring below with room to spare. */
#define SHM_LOG_BOUNDARY_STRIDE_DIVISOR 128u
#define SHM_LOG_BOUNDARIES              256u
_Static_assert(SHM_LOG_BOUNDARIES > SHM_LOG_BOUNDARY_STRIDE_DIVISOR + 1,
               "a lap's boundaries fit the ring");
_Static_assert((SHM_LOG_BOUNDARIES & (SHM_LOG_BOUNDARIES - 1)) == 0, "a power of two");

/* An entry start this writer wrote: where retirement may stop without reading the ring. */
struct shm_log_boundary {
    uint64_t position;
    uint64_t offset; /* the entry's offset */
};

struct shm_log {
    char topic[SHM_LOG_TOPIC_BYTES];
    char directory[4096];
    char log_path[SHM_LOG_PATH_BYTES];
    char consumers_path[SHM_LOG_PATH_BYTES];
    struct shm_log_config config; /* topic and directory point at the copies above */
    int fd;                       /* the log file, flock(LOCK_EX) held */
    size_t map_bytes;
    struct shm_log_header *header; /* NULL while broken and not recreated */
    uint8_t *ring;
    int consumers_fd;
    struct shm_log_consumers *consumers;
    int log_guard, consumers_guard; /* fault_guard handles */
    atomic_bool log_broken, consumers_broken;
    /* The mapping made at open, for shm_log_prefault on another thread (never changed). */
    _Atomic(uint8_t *) prefault_base;
    _Atomic uint64_t prefault_bytes;
    uint64_t capacity;
    uint64_t record_bytes_max;
    /* Writer-private positions; the shared copies are stores only. */
    uint64_t write_position;     /* end of appended entries (published or not) */
    uint64_t next_offset;        /* offset of the next appended record */
    uint64_t published_position; /* last commit_position stored */
    uint64_t published_offset;   /* commit_offset stored with it */
    uint64_t retained_position;  /* last retained_position stored */
    uint64_t retained_offset;    /* offset of the entry there (next_offset when none) */
    /* Block mode: entries may end at or below this without rescanning consumer slots. */
    uint64_t space_limit;
    uint64_t registrations_seen; /* the consumer region's counter at the last slot scan */
    uint64_t holders;            /* slots live at the last scan (bit per slot) */
    uint32_t commit_sequence;
    uint64_t recover_after_ns; /* a failed recreation is retried after this */
    /*
     * Entry boundaries this writer wrote, ascending, at least a stride apart (a bounded ring,
     * oldest dropped when full). Retirement stops at one of these instead of reading each
     * entry header of the lap before (a cache miss per record): the ring's bytes are shared
     * memory, these are not. Emptied whenever the positions are loaded from a header.
     */
    struct shm_log_boundary boundaries[SHM_LOG_BOUNDARIES];
    uint32_t boundary_head, boundary_count;
    uint64_t boundary_next; /* the next boundary is noted at or after this position */
    char error[512];
};

/* One line on stderr naming the log (damage, quarantine, recreation). */
void shm_log_line(const struct shm_log *log, const char *line);
/* Checks a writer config before anything is created. */
int shm_log_config_check(const struct shm_log_config *config, char *why, size_t why_capacity);
/* Opens (or recreates) the consumer region next to an open log. */
int shm_log_consumers_open(struct shm_log *log, char *why, size_t why_capacity);
/* Rescans the consumer slots: which hold the writer back, and the space limit they allow. */
void shm_log_consumers_scan(struct shm_log *log);
/* Opens the log's files, creating, checking and quarantining as needed. */
int shm_log_files_open(struct shm_log *log, char *why, size_t why_capacity);
/* Moves damaged files aside (`reason` says why) and creates new ones from `start_offset`. */
int shm_log_files_replace(struct shm_log *log, const char *reason, uint64_t start_offset, char *why,
                          size_t why_capacity);
/* Unmaps the log and closes its descriptor (the consumer region stays). */
void shm_log_unmap(struct shm_log *log);
/* Forgets the entry boundaries noted (positions were loaded anew). */
void shm_log_boundaries_reset(struct shm_log *log);
/* Loads the writer-private positions from a checked header. */
void shm_log_writer_state_load(struct shm_log *log);

#endif
