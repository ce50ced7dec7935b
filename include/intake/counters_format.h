/*
 * counters_format.h: the layout of intaked's counters region, a public, versioned format read
 * by other processes (intake-stat, the daemon's own /metrics thread, any tool that maps it), in
 * the manner of Aeron's cnc.dat read by AeronStat.
 *
 * File: <--shm-dir>/intake.counters by default (intaked --counters PATH to move it). Created
 * whole by intaked at startup under a temporary name and renamed into place, so a reader never
 * sees a half-written header; left in place at exit with state STOPPED (the last values stay
 * readable). Little-endian, fixed-width, every offset below is asserted.
 *
 *   [header: INTAKE_COUNTERS_HEADER_BYTES]
 *   [reactor rows: reactor_count x INTAKE_COUNTERS_REACTOR_ROW_BYTES]
 *   [worker rows: worker_count x INTAKE_COUNTERS_WORKER_ROW_BYTES]
 *   [topic rows: topics_max x INTAKE_COUNTERS_TOPIC_ROW_BYTES]          (indexed by topic id)
 *   [received cells: reactor_count x topics_max x 16 bytes, each reactor's block padded to a
 *    cache line]                                                       (indexed [reactor][topic])
 *   [principal rows: principal_row_count x INTAKE_COUNTERS_PRINCIPAL_ROW_BYTES]
 *   [principal cells: reactor_count x principal_row_count x 64 bytes]  (indexed [reactor][row])
 *    principal_row_count is INTAKE_COUNTERS_PRINCIPAL_ROWS with --acl, 0 without (the
 *    sections are then empty and cost nothing)
 * The offsets of each section are in the header (readers must use them, not recompute them).
 *
 * Writers. Every row has exactly one writing thread, and rows are padded to cache lines, so no
 * line is written by two threads:
 *   - header: the main thread (identity at creation; state, listening and the bound ports
 *     later);
 *   - reactor row r and received block r: reactor thread r;
 *   - worker row w: worker thread w;
 *   - topic row t: the worker that owns topic t (t % worker_count);
 *   - principal rows: the main thread (at startup and on SIGHUP);
 *   - principal cells of reactor r: reactor thread r.
 * Counters are written with relaxed atomic stores (a single writer adds with load + store, no
 * read-modify-write) and read with relaxed loads: each value is a whole 64-bit word, but
 * different counters read at one moment may be from slightly different times.
 *
 * Counters are observations, never control state: intaked writes this region and never reads
 * it to decide anything.
 *
 * A topic row is in use once name_length is non-zero: its owner writes the name, then
 * release-stores name_length (readers acquire-load it before reading the name).
 *
 * The listening addresses (listen, tls_listen, listen_port, tls_listen_port) are final once a
 * reader has acquire-loaded state RUNNING: intaked writes them before it release-stores RUNNING.
 * With --listen ADDR:0 the kernel picks the port, and that is where a reader learns it (before
 * RUNNING, listen still holds the flag as given).
 *
 * Heartbeats are CLOCK_MONOTONIC nanoseconds, stored once per loop iteration; idle threads wake
 * at least every INTAKE_COUNTERS_HEARTBEAT_INTERVAL_NS to store one, so a heartbeat older than a
 * few intervals means a thread is stuck (readiness), and much older means it is gone (liveness).
 */
#ifndef INTAKE_COUNTERS_FORMAT_H
#define INTAKE_COUNTERS_FORMAT_H

#include <stddef.h>
#include <stdint.h>

/* The words intaked's threads update while readers read them (intake_counter_t: 64 bits,
 * intake_counter32_t: 32) are plain fixed-width fields for other languages' generators
 * (bindgen included); every access to one must be atomic (a relaxed load suffices for a
 * counter; name_length is acquire-loaded, see above): in C or C++ with GCC or Clang
 * __atomic_load_n(&row->field, __ATOMIC_RELAXED), in Go sync/atomic, in Rust
 * AtomicU64::from_ptr. intake's own sources are compiled with INTAKE_ATOMIC_FIELDS, which makes
 * them _Atomic (std::atomic in C++) so that the compiler checks every access; the layout is
 * identical (asserted below). */
#if defined(INTAKE_ATOMIC_FIELDS) && defined(__cplusplus)
#include <atomic>
typedef std::atomic<uint64_t> intake_counter_t;
typedef std::atomic<uint32_t> intake_counter32_t;
#elif defined(INTAKE_ATOMIC_FIELDS)
#include <stdatomic.h>
typedef _Atomic uint64_t intake_counter_t;
typedef _Atomic uint32_t intake_counter32_t;
#else
typedef uint64_t intake_counter_t;
typedef uint32_t intake_counter32_t;
#endif
#ifdef __cplusplus
/* C++ spells C11's _Static_assert static_assert (this header's asserts are C11's). */
#if !defined(_Static_assert)
#define _Static_assert static_assert
#endif
extern "C" {
#endif

/* "INTKCNT1" little-endian: the first 8 bytes of the file. */
#define INTAKE_COUNTERS_MAGIC 0x31544e434b544e49ull
/* Bumped on any layout change; readers refuse other versions. */
/* 2: reactor row line 6 (producer identity); 3: reactor rows 640 bytes with lines 8-9 TLS, header
 * line 7 TLS and line 8 principals. */
#define INTAKE_COUNTERS_VERSION 3u
/* Default file name inside --shm-dir. */
#define INTAKE_COUNTERS_FILE_NAME           "intake.counters"
#define INTAKE_COUNTERS_HEADER_BYTES        4096u
#define INTAKE_COUNTERS_REACTOR_ROW_BYTES   640u
#define INTAKE_COUNTERS_WORKER_ROW_BYTES    256u
#define INTAKE_COUNTERS_TOPIC_ROW_BYTES     384u
#define INTAKE_COUNTERS_RECEIVED_CELL_BYTES 16u
#define INTAKE_COUNTERS_LINE_BYTES          64u
/* Topic names: up to 255 bytes plus NUL. */
#define INTAKE_COUNTERS_TOPIC_NAME_BYTES 256u
/* Slots of reactor_row.connections_ended (statuses 0..4 are used). */
#define INTAKE_COUNTERS_END_STATUSES 8u
/* Slots of reactor_row.tls_handshakes_failed, by reason, in this order: timeout,
 * no_client_certificate, bad_certificate, not_tls, protocol, principal, other. */
#define INTAKE_COUNTERS_HANDSHAKE_FAILURES 7u
/* Principal rows (ACLs and quotas, issue 17): row 0 is the class `other` (every principal the
 * --acl file does not name); rows 1.. are principals the file names. A file names at most 255,
 * and a reload may name as many new ones while the old rule set is still in use: 511 named
 * rows cover both. */
#define INTAKE_COUNTERS_PRINCIPAL_ROWS       512u
#define INTAKE_COUNTERS_PRINCIPAL_ROW_BYTES  384u
#define INTAKE_COUNTERS_PRINCIPAL_CELL_BYTES 64u
#define INTAKE_COUNTERS_PRINCIPAL_NAME_BYTES 256u
/* Idle threads store a heartbeat at least this often. */
#define INTAKE_COUNTERS_HEARTBEAT_INTERVAL_NS 1000000000ull

/* header.state */
enum intake_counters_state {
    INTAKE_COUNTERS_STATE_STARTING = 0, /* region made, threads starting */
    INTAKE_COUNTERS_STATE_RUNNING = 1,  /* every thread started, listening */
    INTAKE_COUNTERS_STATE_STOPPING = 2, /* SIGTERM/SIGINT: draining */
    INTAKE_COUNTERS_STATE_STOPPED = 3,  /* exited; the values are final */
};

struct intake_counters_header {
    /* --- line 0: identity, written once before the file is renamed into place --- */
    uint64_t magic;        /* INTAKE_COUNTERS_MAGIC */
    uint32_t version;      /* INTAKE_COUNTERS_VERSION */
    uint32_t header_bytes; /* INTAKE_COUNTERS_HEADER_BYTES */
    uint64_t total_bytes;  /* the file's size */
    uint32_t reactor_count;
    uint32_t worker_count;
    uint32_t topics_max;
    int32_t pid;                 /* intaked's pid (in its own pid namespace) */
    uint64_t start_wall_ns;      /* CLOCK_REALTIME at startup */
    uint64_t log_capacity_bytes; /* --log-size */
    uint64_t reserved0;
    /* --- line 1: section offsets and row sizes --- */
    uint64_t reactor_rows_offset;
    uint64_t worker_rows_offset;
    uint64_t topic_rows_offset;
    uint64_t received_cells_offset;
    uint64_t received_block_bytes; /* one reactor's [topics_max] cells, padded */
    uint32_t reactor_row_bytes;    /* INTAKE_COUNTERS_REACTOR_ROW_BYTES */
    uint32_t worker_row_bytes;     /* INTAKE_COUNTERS_WORKER_ROW_BYTES */
    uint32_t topic_row_bytes;      /* INTAKE_COUNTERS_TOPIC_ROW_BYTES */
    uint32_t reserved1;
    uint64_t reserved2;
    /* --- lines 2..5: text, NUL-terminated --- */
    char shm_directory[128]; /* --shm-dir: where the topics' logs are */
    char listen[64];         /* --listen, with the bound port (see above); "none" */
    char metrics_listen[32]; /* --metrics-listen as given, or empty */
    char backend[32];        /* "pbuf" or "zcrx", once the reactors are up */
    /* --- line 6: the main thread's live state --- */
    intake_counter32_t state;       /* enum intake_counters_state */
    intake_counter32_t listening;   /* 1 while the listeners accept */
    intake_counter_t state_wall_ns; /* CLOCK_REALTIME of the last state change */
    /* Added in what was reserved (zero), so the version stays; final from RUNNING (above): */
    uint32_t listen_port;     /* the port --listen is bound to; 0: no plaintext listener */
    uint32_t tls_listen_port; /* the port --tls-listen is bound to; 0: no TLS listener */
    uint8_t reserved3[40];
    /* --- line 7: TLS (version 3) --- */
    char tls_listen[64]; /* --tls-listen with the bound port, or empty: no TLS listener */
    /* --- line 8: principals (issue 17: ACLs and quotas); the main thread writes the live
     * fields --- */
    uint64_t principal_rows_offset;
    uint64_t principal_cells_offset;
    uint64_t principal_block_bytes;       /* one reactor's [principal_row_count] cells */
    uint32_t principal_row_count;         /* INTAKE_COUNTERS_PRINCIPAL_ROWS */
    uint32_t principal_row_bytes;         /* INTAKE_COUNTERS_PRINCIPAL_ROW_BYTES */
    uint32_t principal_cell_bytes;        /* INTAKE_COUNTERS_PRINCIPAL_CELL_BYTES */
    intake_counter32_t acl_enabled;       /* 1 when intaked runs with --acl */
    intake_counter_t acl_generation;      /* the rule set in force: 1 at startup, +1 per reload */
    intake_counter_t acl_reload_failures; /* SIGHUPs whose file was refused (old rules kept) */
    uint8_t reserved4[8];
};
_Static_assert(offsetof(struct intake_counters_header, reactor_rows_offset) == 64, "line 1");
_Static_assert(offsetof(struct intake_counters_header, shm_directory) == 128, "line 2");
_Static_assert(offsetof(struct intake_counters_header, state) == 384, "line 6");
_Static_assert(offsetof(struct intake_counters_header, listen_port) == 400, "line 6");
_Static_assert(offsetof(struct intake_counters_header, tls_listen) == 448, "line 7");
_Static_assert(sizeof(intake_counter_t) == 8, "lock-free 64-bit words");
_Static_assert(offsetof(struct intake_counters_header, principal_rows_offset) == 512, "line 8");
_Static_assert(sizeof(struct intake_counters_header) == 576, "header struct size");
_Static_assert(sizeof(struct intake_counters_header) <= INTAKE_COUNTERS_HEADER_BYTES, "fits");

/* One reactor (receive thread). Counters only grow; gauges say "now". */
struct intake_counters_reactor_row {
    intake_counter_t heartbeat_ns;
    intake_counter_t connections_open; /* gauge */
    intake_counter_t connections_accepted;
    intake_counter_t connections_refused;  /* every slot taken (--connections-max) */
    intake_counter_t connections_closed;   /* ended, for any reason */
    intake_counter_t connections_failed;   /* of those: ended by a non-OK final Ack */
    intake_counter_t connections_lingered; /* closes that waited for the peer after the Ack */
    intake_counter_t stalls_broken;        /* ended to free buffers pinned by partial frames */
    /* line 1 */
    intake_counter_t deadline_kills;   /* ended by a deadline (idle or slow producers) */
    intake_counter_t records_admitted; /* framed, checked, queued to a topic */
    intake_counter_t records_returned; /* came back from the workers */
    intake_counter_t records_failed;   /* came back not committed */
    intake_counter_t frames_truncated; /* a partial frame pending when a connection ended */
    intake_counter_t acks_sent;
    intake_counter_t backlog_exhausted;
    intake_counter_t wakeups;
    /* line 2: pauses (a connection stopped reading) by cause */
    intake_counter_t pauses_topic_queue;
    intake_counter_t pauses_record_pool;
    intake_counter_t pauses_ack_window;
    intake_counter_t pauses_out_of_units;
    intake_counter_t pauses_topic_log;        /* a record's topic had no open log yet */
    intake_counter_t records_over_log_limit;  /* refused: larger than their topic's log takes */
    intake_counter_t topic_creations_refused; /* --topics-per-connection reached */
    intake_counter_t reserved_pauses[1];
    /* line 3: the receive backend */
    intake_counter_t backend_bytes_received;
    intake_counter_t backend_completions;
    intake_counter_t backend_units_recycled;
    intake_counter_t backend_rearms_out_of_units;
    intake_counter_t backend_rearms_overflow;
    intake_counter_t backend_rearms_other;
    intake_counter_t backend_refill_flushes;
    intake_counter_t backend_units_in_use; /* gauge */
    /* line 4: connections ended, by the status of their final Ack (intake.v1.Ack.Status):
     * [0] OK (the producer closed), [1] REJECTED (bad input), [2] RESOURCE_EXHAUSTED (a limit,
     * stall breaks included), [3] SHUTTING_DOWN, [4] INTERNAL; [5..7] reserved */
    intake_counter_t connections_ended[INTAKE_COUNTERS_END_STATUSES];
    /* line 5 */
    intake_counter_t submit_busy;          /* io_uring_enter EBUSY/EAGAIN/EINTR: retried */
    intake_counter_t socket_option_errors; /* setsockopt/shutdown failed on a connection */
    intake_counter_t deadline_kills_frame; /* a record not complete within --frame-timeout-ms */
    intake_counter_t deadline_kills_idle;  /* silent past --idle-timeout-ms */
    intake_counter_t accept_errors;        /* accept completions with an error */
    intake_counter_t accept_pauses;        /* accept paused after EMFILE/ENFILE/ENOBUFS/ENOMEM */
    intake_counter_t partial_cap_pauses;   /* a frame waited: partial records at their share */
    intake_counter_t partial_evictions;    /* a partial record's connection ended for the pool */
    /* line 6: producer identity (issue 12) */
    intake_counter_t hellos_answered;     /* Hello frames answered with the producer's sequence */
    intake_counter_t identity_rejections; /* a misplaced Hello, or a producer_id that differs
                                           * on a connection (REJECTED) */
    /* Issue 17, in what was reserved (zero), so the version stays: */
    intake_counter_t sequence_rejections; /* a sequence out of order on its connection, or a
                                           * first record too far ahead (REJECTED) */
    intake_counter_t sequence_gap_fills;  /* records inside a gap of their producer: appended,
                                           * never answered as duplicates */
    intake_counter_t producer_refusals;   /* connections refused: every producer table entry
                                           * held by a live connection (--producers-max) */
    uint8_t reserved[88];
    /* line 8: TLS handshakes (issue 17; all zero without --tls-listen) */
    intake_counter_t tls_handshakes_ok;
    intake_counter_t tls_handshakes_failed[INTAKE_COUNTERS_HANDSHAKE_FAILURES]; /* by reason */
    /* line 9: TLS connections and records */
    intake_counter_t tls_handshakes_refused;     /* every handshake slot taken (--handshakes-max) */
    intake_counter_t tls_handshakes_in_progress; /* gauge */
    intake_counter_t tls_records_decrypted;      /* application data records opened */
    intake_counter_t tls_auth_failures;          /* records whose tag did not verify */
    intake_counter_t tls_record_errors;          /* other record-layer violations */
    intake_counter_t tls_key_updates_received;
    intake_counter_t tls_key_updates_sent;
    intake_counter_t tls_alerts_received; /* error alerts from peers (not close_notify) */
};
_Static_assert(offsetof(struct intake_counters_reactor_row, deadline_kills) == 64, "line 1");
_Static_assert(offsetof(struct intake_counters_reactor_row, pauses_topic_queue) == 128, "line 2");
_Static_assert(offsetof(struct intake_counters_reactor_row, backend_bytes_received) == 192,
               "line 3");
_Static_assert(offsetof(struct intake_counters_reactor_row, connections_ended) == 256, "line 4");
_Static_assert(offsetof(struct intake_counters_reactor_row, submit_busy) == 320, "line 5");
_Static_assert(offsetof(struct intake_counters_reactor_row, hellos_answered) == 384, "line 6");
_Static_assert(offsetof(struct intake_counters_reactor_row, tls_handshakes_ok) == 512, "line 8");
_Static_assert(offsetof(struct intake_counters_reactor_row, tls_handshakes_refused) == 576,
               "line 9");
_Static_assert(sizeof(struct intake_counters_reactor_row) == INTAKE_COUNTERS_REACTOR_ROW_BYTES,
               "reactor row size");

/* One worker (delivery thread). */
struct intake_counters_worker_row {
    intake_counter_t heartbeat_ns;
    intake_counter_t records_committed;
    intake_counter_t bytes_copied;     /* payload bytes copied into logs (the one copy) */
    intake_counter_t records_rejected; /* the full decode disagreed with the framer */
    intake_counter_t records_failed;   /* log unavailable, or abandoned at shutdown */
    intake_counter_t publishes;
    intake_counter_t log_full_waits;
    intake_counter_t sleeps;
    intake_counter_t log_retries; /* a topic log that failed, asked for again */
    /* Records answered OK without being appended: duplicates (issue 12). Added in what was
     * reserved (zero): readers of this version that predate it simply do not show it. */
    intake_counter_t records_duplicate;
    uint8_t reserved[176];
};
_Static_assert(sizeof(struct intake_counters_worker_row) == INTAKE_COUNTERS_WORKER_ROW_BYTES,
               "worker row size");

/* One topic, written by the worker that owns it. */
struct intake_counters_topic_row {
    intake_counter32_t name_length; /* 0: row unused; release-stored after the name */
    uint32_t reserved0;
    intake_counter_t records_committed;
    intake_counter_t bytes_committed;
    intake_counter_t records_rejected;
    intake_counter_t records_failed;
    /* Deduplication (issue 12), in what was reserved (zero), so the version stays: */
    intake_counter_t records_duplicate;   /* answered OK, not appended: already committed */
    intake_counter_t dedupe_evictions;    /* producers evicted from the full table */
    intake_counter_t dedupe_unremembered; /* producers back after eviction: appended as new */
    /* lines 1..4 */
    char name[INTAKE_COUNTERS_TOPIC_NAME_BYTES];
    /* line 5 */
    intake_counter_t dedupe_rebuilds; /* the table's file was damaged at open: rebuilt */
    /* Issue 17/18, in what was reserved (zero), so the version stays: */
    intake_counter_t dedupe_unprotected; /* appended without deduplication protection (a gap
                                          * fill, or a producer the table could not hold): a
                                          * resend of one may land twice */
    intake_counter_t dedupe_repairs;     /* opens that found a copy invalid: log re-applied */
    uint8_t reserved2[40];
};
_Static_assert(offsetof(struct intake_counters_topic_row, name) == 64, "name on line 1");
_Static_assert(offsetof(struct intake_counters_topic_row, dedupe_rebuilds) == 320, "line 5");
_Static_assert(sizeof(struct intake_counters_topic_row) == INTAKE_COUNTERS_TOPIC_ROW_BYTES,
               "topic row size");

/* Records and bytes one reactor admitted for one topic (sum the reactors for the topic's). */
struct intake_counters_received_cell {
    intake_counter_t records;
    intake_counter_t bytes;
};
_Static_assert(sizeof(struct intake_counters_received_cell) == INTAKE_COUNTERS_RECEIVED_CELL_BYTES,
               "cell size");
_Static_assert(sizeof(intake_counter_t) == 8 && sizeof(intake_counter32_t) == 4, "lock-free words");

/*
 * Principals (issue 17). A row names a principal (or `other`) and its quota; the main thread
 * writes it, under a sequence lock, whenever a rule set gives the row to a principal: sequence
 * odd while it writes, every field and name byte then release-stored, and the sequence
 * release-stored even when done. Readers acquire-load the sequence, acquire-load the row's
 * fields and name bytes, and load the sequence again: a changed or odd one means retry.
 *
 * A row's counters are the sum over reactors of its cells minus the row's baselines: a row given
 * to another principal (its old one no longer named, and no rule set in use naming it) keeps its
 * cells, and the main thread stores their sums as the new principal's baselines, so every
 * principal's counters start at 0 and only grow. A reactor writes a row's cells only while the
 * rule set it holds gives the row to a class.
 */
struct intake_counters_principal_row {
    intake_counter32_t sequence;    /* sequence lock (above) */
    intake_counter32_t name_length; /* 0: row never used */
    intake_counter32_t in_force;    /* 1 while the rule set in force names it (row 0: always) */
    uint32_t reserved0;
    intake_counter_t quota_records_per_second; /* in force; 0 unlimited */
    intake_counter_t quota_bytes_per_second;
    intake_counter_t base_records_admitted; /* baselines: see above */
    intake_counter_t base_bytes_admitted;
    intake_counter_t base_records_denied;
    intake_counter_t base_throttled_ns;
    intake_counter_t base_quota_pauses;
    uint8_t reserved1[56];
    /* lines 2..5 */
    char name[INTAKE_COUNTERS_PRINCIPAL_NAME_BYTES];
};
_Static_assert(offsetof(struct intake_counters_principal_row, name) == 128, "name on line 2");
_Static_assert(sizeof(struct intake_counters_principal_row) == INTAKE_COUNTERS_PRINCIPAL_ROW_BYTES,
               "principal row size");

/* What one reactor did for one principal row. */
struct intake_counters_principal_cell {
    intake_counter_t records_admitted; /* queued to a topic */
    intake_counter_t bytes_admitted;   /* their encoded bytes */
    intake_counter_t records_denied;   /* refused by the ACL (REJECTED; the connection ended) */
    intake_counter_t throttled_ns;     /* connection-time spent paused for the quota */
    intake_counter_t quota_pauses;     /* times a connection paused for the quota */
    uint8_t reserved[24];
};
_Static_assert(sizeof(struct intake_counters_principal_cell) ==
                   INTAKE_COUNTERS_PRINCIPAL_CELL_BYTES,
               "principal cell size");

/* The file's layout for a configuration (the writer fills the header from this; readers check
 * the header's offsets against it for the counts it states). */
static inline uint64_t intake_counters_received_block_bytes(uint32_t topics_max) {
    uint64_t bytes = (uint64_t)topics_max * INTAKE_COUNTERS_RECEIVED_CELL_BYTES;
    return (bytes + INTAKE_COUNTERS_LINE_BYTES - 1) / INTAKE_COUNTERS_LINE_BYTES *
           INTAKE_COUNTERS_LINE_BYTES;
}

/* `principal_rows` is INTAKE_COUNTERS_PRINCIPAL_ROWS with --acl, 0 without (no section). */
static inline void intake_counters_layout(uint32_t reactor_count, uint32_t worker_count,
                                          uint32_t topics_max, uint32_t principal_rows,
                                          struct intake_counters_header *header) {
    header->header_bytes = INTAKE_COUNTERS_HEADER_BYTES;
    header->reactor_count = reactor_count;
    header->worker_count = worker_count;
    header->topics_max = topics_max;
    header->reactor_row_bytes = INTAKE_COUNTERS_REACTOR_ROW_BYTES;
    header->worker_row_bytes = INTAKE_COUNTERS_WORKER_ROW_BYTES;
    header->topic_row_bytes = INTAKE_COUNTERS_TOPIC_ROW_BYTES;
    header->reactor_rows_offset = INTAKE_COUNTERS_HEADER_BYTES;
    header->worker_rows_offset =
        header->reactor_rows_offset + (uint64_t)reactor_count * INTAKE_COUNTERS_REACTOR_ROW_BYTES;
    header->topic_rows_offset =
        header->worker_rows_offset + (uint64_t)worker_count * INTAKE_COUNTERS_WORKER_ROW_BYTES;
    header->received_cells_offset =
        header->topic_rows_offset + (uint64_t)topics_max * INTAKE_COUNTERS_TOPIC_ROW_BYTES;
    header->received_block_bytes = intake_counters_received_block_bytes(topics_max);
    header->principal_row_count = principal_rows;
    header->principal_row_bytes = INTAKE_COUNTERS_PRINCIPAL_ROW_BYTES;
    header->principal_cell_bytes = INTAKE_COUNTERS_PRINCIPAL_CELL_BYTES;
    header->principal_rows_offset =
        header->received_cells_offset + (uint64_t)reactor_count * header->received_block_bytes;
    header->principal_cells_offset = header->principal_rows_offset +
                                     (uint64_t)principal_rows * INTAKE_COUNTERS_PRINCIPAL_ROW_BYTES;
    header->principal_block_bytes = (uint64_t)principal_rows * INTAKE_COUNTERS_PRINCIPAL_CELL_BYTES;
    header->total_bytes =
        header->principal_cells_offset + (uint64_t)reactor_count * header->principal_block_bytes;
}

#ifdef __cplusplus
}
#endif

#endif
