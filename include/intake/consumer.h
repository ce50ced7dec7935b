/*
 * intake/consumer.h: read a topic's shared-memory log from another process, and parse the
 * records read (intake_record_parse).
 *
 * A consumer maps the topic's log file read-only (written only by intaked's worker; format in
 * intake/shm_log_format.h and docs/shm-log-format.md), registers under a name in one of the
 * slots of the log's consumer region, and reads records as pointers into the mapping: no copy,
 * no socket, no lock shared with the writer. Link libintake (pkg-config --libs intake, or
 * find_package(intake) and intake::intake). The calling user needs the log's group (intaked
 * --shm-group) to open it.
 *
 * Signals (SIGBUS). A log file truncated under the mapping makes the next access to it fault
 * with SIGBUS. By default the library installs a SIGBUS handler on first open, with
 * SA_SIGINFO | SA_ONSTACK (so it runs on a thread's alternate stack where one is set, as the Go
 * runtime requires of every handler in its process), which turns a fault inside one of our
 * mappings into an error of that handle (-EIO, "truncated under this consumer"), and hands
 * every other SIGBUS to the handler that was installed before it (or the default action).
 * A host that owns SIGBUS itself calls intake_sigbus_set_mode(INTAKE_SIGBUS_HOST) before its
 * first open: the library then installs nothing, and the host's handler hands each SIGBUS to
 * intake_sigbus_handle first, e.g.
 *
 *     static void on_sigbus(int signal_number, siginfo_t *info, void *context) {
 *         if (intake_sigbus_handle(signal_number, info, context)) return; // ours, recovered
 *         ... the host's own handling ...
 *     }
 *
 * intake_sigbus_handle is async-signal-safe. A host that installs its own SIGBUS handler after
 * the library's (library mode) must chain to the one it replaced, as the library does.
 *
 * Thread: a consumer handle belongs to one thread at a time. Several handles (in one or many
 * processes) may read the same log; each needs its own name.
 *
 * Lifetime of a record's bytes (read this before keeping a pointer):
 *   1. poll verifies the entry's checksum and that the writer had not begun overwriting it when
 *      the check finished. The record is intact at that point.
 *   2. Block retention: the writer does not overwrite the record until this consumer's next
 *      poll or close, as long as the consumer stays live (its process exists and it heartbeats
 *      within the log's stale time; poll, wait and commit all heartbeat).
 *   3. Overwrite retention (or a consumer that went stale): the writer never waits, so the bytes
 *      may be overwritten while you use them. Copy what you need, then call
 *      intake_consumer_record_valid: if it returns false, what you copied may be torn; discard
 *      it (the next poll reports the records you missed as a gap).
 *
 * Return values: functions returning int give 0 (or a count) on success, negative errno on
 * failure. The one-line reason is in the caller's buffer for open (no thread-local state, so
 * callers whose threads move, such as Go's goroutines, get their own reason) and in the
 * handle's intake_consumer_error afterwards. Misuse (a NULL handle or required pointer, bad
 * options) returns -EINVAL with a reason; the library never aborts the caller.
 *
 * Timeouts are nanoseconds, and saturate: UINT64_MAX (or any value that would pass the end of
 * the monotonic clock) waits without a deadline.
 *
 * Structs that grow. Every struct the caller passes in or has filled, one at a time (options,
 * statistics, a record view), starts with `uint32_t struct_bytes`: the caller sets it to the
 * sizeof it was compiled with (the *_INIT macros do). A later 1.x library adds fields only at
 * the end: it reads or writes no byte past struct_bytes, treats fields a shorter (older) struct
 * lacks as zero, and refuses (-EINVAL) a longer (newer) one whose bytes it does not know are not
 * zero. struct_bytes 0 means the layout of 1.0. Structs filled in arrays (records) have a fixed
 * size for all of libintake.so.1, with reserved words that later versions may give a meaning.
 *
 * ABI: C, stable within libintake.so.1 (intake/version.h) and INTAKE_CONSUMER_API_VERSION; the
 * log format it reads is intake/shm_log_format.h (docs/shm-log-format.md).
 */
#ifndef INTAKE_CONSUMER_H
#define INTAKE_CONSUMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "intake/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever a declaration below changes incompatibly (additions do not bump it). 3: the
 * structs carry struct_bytes, a set's consumer options are a pointer, intake_record_parse;
 * struct intake_consumer_record carries the writer's `principal`; the library reads log format
 * version 3 only (issue 17). */
#define INTAKE_CONSUMER_API_VERSION 3
/* Defined when intake_consumer_poll_batch and the intake_consumer_set_* calls exist. */
#define INTAKE_CONSUMER_HAS_SETS 1
/* Defined when intake_log_inspect (and its inspector) exists. */
#define INTAKE_CONSUMER_HAS_LOG_INSPECT 1

/* Room for any reason line the library writes, NUL included. */
#define INTAKE_CONSUMER_ERROR_BYTES 512

/* Longest consumer name, bytes (without NUL). */
#define INTAKE_CONSUMER_NAME_BYTES_MAX 63

enum intake_consumer_start {
    /* Resume from the cursor this name committed last; a name that never committed starts at
     * the oldest retained record. */
    INTAKE_CONSUMER_START_COMMITTED = 0,
    INTAKE_CONSUMER_START_OLDEST = 1, /* the oldest record still in the log */
    INTAKE_CONSUMER_START_END = 2,    /* only records published after open */
    INTAKE_CONSUMER_START_OFFSET = 3, /* the record with offset start_offset (or the next) */
};

struct intake_consumer_options {
    uint32_t struct_bytes; /* sizeof(struct intake_consumer_options); 0: the 1.0 layout */
    enum intake_consumer_start start;
    uint64_t start_offset; /* for INTAKE_CONSUMER_START_OFFSET */
    /* Free the slot on close instead of keeping its committed cursor (tools like intake-tail).
     * An ephemeral slot left by a dead process is reclaimed by later opens. */
    bool ephemeral;
};
#define INTAKE_CONSUMER_OPTIONS_INIT                                                               \
    { .struct_bytes = sizeof(struct intake_consumer_options) }

struct intake_consumer_record {
    const uint8_t *bytes;     /* the encoded intake.v1.Record, inside the mapping */
    uint32_t length;          /* bytes */
    uint64_t offset;          /* the record's topic offset */
    uint64_t sequence;        /* the producer's sequence */
    uint64_t receive_time_ns; /* wall clock when intaked admitted it */
    uint64_t missed;          /* records lost just before this one (lapped or released) */
    uint64_t opaque_position; /* the library's own: read only by intake_consumer_record_valid */
    /* The tag of the principal whose connection wrote the record: the first 8 bytes of
     * SHA-256 of its name, little-endian ("anonymous" on a plaintext listener; with mTLS the
     * client certificate's URI SAN or CN). Compare it with the tag of the name you expect. */
    uint64_t principal;
    uint64_t reserved[2]; /* zero in 1.0; later 1.x versions may fill them */
};

struct intake_consumer;

/* Opens the log of `topic` under `directory` (e.g. /dev/shm/intake) as consumer `name`
 * (1..63 bytes). -ENOENT when the topic has no log there; -EACCES without the log's group;
 * -EBUSY when a live process already uses that name or all 64 slots are held by live
 * consumers (slots of dead, ephemeral or least recently used named consumers are reclaimed);
 * -EPROTO for another format version. On failure `why` (INTAKE_CONSUMER_ERROR_BYTES is enough)
 * holds one line. Once open returns, the consumer holds the writer back (block mode) from its
 * start position, and a lap before its first record is reported as missed. */
INTAKE_API int intake_consumer_open(const char *directory, const char *topic, const char *name,
                                    const struct intake_consumer_options *options,
                                    struct intake_consumer **out, char *why, size_t why_capacity)
    __attribute__((warn_unused_result));
/* Unregisters (ephemeral) or detaches keeping the committed cursor, and unmaps. */
INTAKE_API void intake_consumer_close(struct intake_consumer *consumer);

/* Non-blocking. 1: *record holds the next record; 0: nothing new; negative, with the reason in
 * intake_consumer_error: -EBADMSG when the log's positions or an entry fail their checks
 * although the writer did not overwrite them (the file was damaged; a later poll retries),
 * -EIO when the files were truncated under the mapping (reopen), -EAGAIN when the writer
 * kept lapping this consumer for a whole poll. Never crashes or spins on a damaged file. */
INTAKE_API int intake_consumer_poll(struct intake_consumer *consumer,
                                    struct intake_consumer_record *record)
    __attribute__((warn_unused_result));
/* Non-blocking, batched: up to `capacity` records into `records`, in offset order. Returns the
 * count (0: nothing new) or a negative errno as intake_consumer_poll (records read before an
 * error are returned first; the error comes with the next call). Every record returned stays
 * as poll's does: until the next poll, poll_batch or close. One heartbeat and one release of
 * the consumer's position per call, not per record. */
INTAKE_API int intake_consumer_poll_batch(struct intake_consumer *consumer,
                                          struct intake_consumer_record *records, uint32_t capacity)
    __attribute__((warn_unused_result));
/* After using a record's bytes: true when the writer has not started overwriting them since
 * poll returned it. Always true in block mode for a live consumer before its next poll. */
INTAKE_API bool intake_consumer_record_valid(const struct intake_consumer *consumer,
                                             const struct intake_consumer_record *record);
/* Sleeps until records are available (1), or `timeout_ns` passes (0; UINT64_MAX: no deadline),
 * without spinning: futex on the log's commit word. -EINTR when a signal arrived; -ESTALE when the timeout passed and
 * the log's file was replaced meanwhile (the writer quarantines a damaged log and recreates
 * it: reopen); -EIO when the files were truncated under the mapping. */
INTAKE_API int intake_consumer_wait(struct intake_consumer *consumer, uint64_t timeout_ns)
    __attribute__((warn_unused_result));
/* Commits the cursor after the last record poll returned: a later open with the same name and
 * INTAKE_CONSUMER_START_COMMITTED resumes there. Also heartbeats. */
INTAKE_API void intake_consumer_commit(struct intake_consumer *consumer);

/* Records reported missed so far (sum of every record's `missed`). */
INTAKE_API uint64_t intake_consumer_missed_total(const struct intake_consumer *consumer);
/* The offset the next polled record is expected to have (OFFSET_NONE until known). */
INTAKE_API uint64_t intake_consumer_next_offset(const struct intake_consumer *consumer);
/* Whether a writer (intaked) holds the log open now: it keeps an exclusive flock on the file
 * for as long as it runs, so this is exact for a writer that exited or died, with no pid
 * guessing. A follower that sees false and no new records knows nothing more will come until
 * a daemon opens the log again. */
INTAKE_API bool intake_consumer_writer_alive(const struct intake_consumer *consumer);
/* The last error's one-line reason ("" when none). */
INTAKE_API const char *intake_consumer_error(const struct intake_consumer *consumer);

/* ------------------------------------------------------- sets of topics --- */
/*
 * A set follows many topics of one directory through one handle: the listed topics (those
 * without a log yet are opened once their log appears), or every topic there, including ones
 * created later. One poll fills an array with records of any of its topics; one wait sleeps on
 * the directory's futex word (intake.notify, docs/shm-log-format.md), which every publish on
 * any log there bumps, instead of one word per log.
 *
 * Each topic is a consumer as above (a slot under the set's name in that topic's consumer
 * region, the same start, retention and lifetime rules), made at the set's open or when the
 * topic is found; every handle's storage is allocated at open, for `topics_max` topics, and
 * nothing is allocated after. Topics are found by listing the directory, at open and again
 * whenever intake.notify's logs_changed counter moves (once per poll or wait at most).
 *
 * Order: a topic's records come in offset order; records of different topics interleave (a
 * poll takes the topics round-robin from where the previous one stopped, each topic up to
 * `per_topic_batch` records at a time, so one busy topic cannot starve the others).
 *
 * Descriptors: a set holds one file descriptor per followed topic (its consumer region, whose
 * lock marks the slot live) plus three; open raises the soft RLIMIT_NOFILE, up to the hard
 * limit, to topics_max + 256 when it is lower.
 *
 * Thread: a set belongs to one thread at a time, like a consumer.
 */

/* Most topics a set may follow (each needs two guarded mappings in the process). */
#define INTAKE_CONSUMER_SET_TOPICS_MAX 4000

struct intake_consumer_set_options {
    uint32_t struct_bytes; /* sizeof(struct intake_consumer_set_options); 0: the 1.0 layout */
    /* Applied to every topic found at open (NULL: the defaults, START_COMMITTED, named).
     * Topics found later (created after open, or whose log was recreated) start at their
     * oldest record, or at their committed cursor with INTAKE_CONSUMER_START_COMMITTED, so
     * nothing published before they were found is lost. Copied at open. */
    const struct intake_consumer_options *consumer;
    /* Most topics followed at once: 1..INTAKE_CONSUMER_SET_TOPICS_MAX. */
    uint32_t topics_max;
    /* true: every topic in the directory, now and later. When more than topics_max exist, the
     * first topics_max found are followed and the others are counted in
     * intake_consumer_set_stats.topics_refused (and reported in intake_consumer_set_error);
     * they are never read. false: exactly `topics` (topic_count names, at most topics_max). */
    bool all_topics;
    const char *const *topics;
    uint32_t topic_count;
    /* Most records one poll takes from one topic before going to the next (0: 64). */
    uint32_t per_topic_batch;
};
#define INTAKE_CONSUMER_SET_OPTIONS_INIT                                                           \
    { .struct_bytes = sizeof(struct intake_consumer_set_options) }

struct intake_consumer_set_record {
    struct intake_consumer_record record; /* as poll returns it */
    const char *topic;                    /* NUL-terminated; stays until the set is closed */
    uint32_t topic_index;                 /* the topic's index in the set, < topics_max */
};

/* The caller sets struct_bytes before intake_consumer_set_stats fills it (start from
 * INTAKE_CONSUMER_SET_STATS_INIT): with any other value the library writes nothing or only the
 * fields that value covers. */
struct intake_consumer_set_stats {
    uint32_t struct_bytes;    /* sizeof(struct intake_consumer_set_stats); 0: the 1.0 layout */
    uint32_t topics_followed; /* topics with an open log now */
    uint32_t topics_waiting;  /* topics without a log yet, or closed after an error */
    uint32_t reserved0;
    uint64_t topics_refused; /* all_topics: logs seen beyond topics_max */
    uint64_t missed_total;   /* sum of every record's `missed` */
    uint64_t topic_errors;   /* topics closed after an error (reopened when found again) */
    uint64_t rescans;        /* directory listings */
};
#define INTAKE_CONSUMER_SET_STATS_INIT                                                             \
    { .struct_bytes = sizeof(struct intake_consumer_set_stats) }

struct intake_consumer_set;

/* Opens a set over `directory` as consumer `name` (1..63 bytes, used in every topic's region).
 * Opens every listed topic that has a log (or, with all_topics, every log there, up to
 * topics_max). -EINVAL for bad options; -ENOENT when the directory cannot be listed; a topic
 * that exists but cannot be opened fails the open with its reason (-EBUSY, -EACCES, -EPROTO
 * as intake_consumer_open). On failure `why` holds one line. */
INTAKE_API int intake_consumer_set_open(const char *directory, const char *name,
                                        const struct intake_consumer_set_options *options,
                                        struct intake_consumer_set **out, char *why,
                                        size_t why_capacity) __attribute__((warn_unused_result));
/* Closes every topic as intake_consumer_close does, and unmaps. */
INTAKE_API void intake_consumer_set_close(struct intake_consumer_set *set);

/* Non-blocking: up to `capacity` records of any topics into `records`. Returns the count (0:
 * nothing new). A topic's failure never fails the set: it is counted in topic_errors with its
 * reason in intake_consumer_set_error. A log truncated under the set (-EIO), or recreated by
 * the daemon (seen by the listing), is closed and opened again once found, continuing at the
 * offset it expected (a gap is reported as `missed`); one that fails its checks (-EBADMSG: a
 * damaged log) rests for a second, and one lapped for a whole poll (-EAGAIN) for 10 ms: it is
 * neither polled nor counted by intake_consumer_set_wait until then, so the other topics are
 * served and the set sleeps, never spins. Negative only for -EINVAL (capacity 0). Records stay
 * as poll's do: until the next poll or close of the set. */
INTAKE_API int intake_consumer_set_poll(struct intake_consumer_set *set,
                                        struct intake_consumer_set_record *records,
                                        uint32_t capacity) __attribute__((warn_unused_result));
/* As intake_consumer_record_valid, for a record of this set. */
INTAKE_API bool intake_consumer_set_record_valid(const struct intake_consumer_set *set,
                                                 const struct intake_consumer_set_record *record);
/* Sleeps until some topic has records or a topic may have appeared (1), or `timeout_ns`
 * passes (0), on the directory's futex word; heartbeats every topic between sleeps. -EINTR
 * when a signal arrived. Without intake.notify in the directory (no daemon ran there yet, or
 * an older one), it polls the logs every few milliseconds instead. */
INTAKE_API int intake_consumer_set_wait(struct intake_consumer_set *set, uint64_t timeout_ns)
    __attribute__((warn_unused_result));
/* Commits every topic's cursor (intake_consumer_commit). */
INTAKE_API void intake_consumer_set_commit(struct intake_consumer_set *set);
/* Whether a daemon serves the directory now (it holds a lock on intake.notify while it runs). */
INTAKE_API bool intake_consumer_set_writer_alive(const struct intake_consumer_set *set);
INTAKE_API void intake_consumer_set_stats(const struct intake_consumer_set *set,
                                          struct intake_consumer_set_stats *out);
/* The last error's one-line reason ("" when none). */
INTAKE_API const char *intake_consumer_set_error(const struct intake_consumer_set *set);

/* ------------------------------------------------------- reading a record --- */
/*
 * One way to read a record: intake_record_parse takes the bytes a poll returned (an encoded
 * intake.v1.Record, proto/intake.proto) and fills a view of its fields, pointers into those
 * bytes, without copying. The bytes are checked as intaked checks a record it receives (the
 * same scan: every length inside the record, known fields with their wire types, a UTF-8
 * topic and header keys, no groups), so a view is only ever made of a well-formed record; the
 * last occurrence of a field wins, as protobuf specifies; unknown fields are skipped. The
 * view's pointers live as long as the bytes do (see "Lifetime of a record's bytes").
 *
 * Headers are read through an iterator over the same bytes, in the order they were sent:
 *
 *     struct intake_record_view view = INTAKE_RECORD_VIEW_INIT;
 *     if (intake_record_parse(record.bytes, record.length, &view) != 0) ... view.problem says why
 *     struct intake_record_header_iterator headers;
 *     struct intake_record_header header;
 *     intake_record_headers(&view, &headers);
 *     while (intake_record_header_next(&headers, &header) == 1) ... header.key, header.value
 *
 * Pure functions over the caller's bytes; any thread.
 */

/* A run of bytes inside a record; bytes is NULL (and length 0) for a field the record lacks. */
struct intake_bytes {
    const uint8_t *bytes;
    size_t length;
};

struct intake_record_view {
    uint32_t struct_bytes;     /* sizeof(struct intake_record_view); 0: the 1.0 layout */
    uint32_t header_count;     /* Record.headers occurrences */
    struct intake_bytes topic; /* UTF-8, 1..255 bytes */
    struct intake_bytes key;
    struct intake_bytes value;
    struct intake_bytes producer_id; /* 1..64 bytes, or absent */
    uint64_t timestamp_ns;           /* as the producer set it (0: none) */
    uint64_t sequence;               /* as the producer set it (0: none) */
    /* When intake_record_parse fails: what is wrong, e.g. "record has no topic" (a static
     * string); NULL when the record parsed. */
    const char *problem;
    /* The library's own, for intake_record_headers: the record's bytes. */
    const uint8_t *record_bytes;
    size_t record_length;
};
#define INTAKE_RECORD_VIEW_INIT                                                                    \
    { .struct_bytes = sizeof(struct intake_record_view) }

struct intake_record_header {
    struct intake_bytes key; /* UTF-8 */
    struct intake_bytes value;
};

/* The iterator's state: the library's own (the caller only provides the storage). */
struct intake_record_header_iterator {
    const uint8_t *record_bytes;
    uint64_t record_length;
    uint64_t position;
    uint64_t reserved[2];
};

/* Fills `view` from `length` bytes at `bytes` (one encoded Record, without a length prefix).
 * 0, or -EBADMSG for a record that is not well-formed (view->problem says why; the other
 * fields are then unspecified), or -EINVAL for misuse (NULL pointers, a struct_bytes this
 * library cannot fill). */
INTAKE_API int intake_record_parse(const void *bytes, size_t length,
                                   struct intake_record_view *view)
    __attribute__((warn_unused_result));
/* Starts `iterator` at the first header of a record intake_record_parse accepted. */
INTAKE_API void intake_record_headers(const struct intake_record_view *view,
                                      struct intake_record_header_iterator *iterator);
/* The next header: 1 with *header filled, 0 after the last one, -EBADMSG if the bytes under
 * the view changed since the parse (overwrite retention) and no longer parse. */
INTAKE_API int intake_record_header_next(struct intake_record_header_iterator *iterator,
                                         struct intake_record_header *header);

/* ------------------------------------------------------------------ SIGBUS --- */

enum intake_sigbus_mode {
    /* The library installs its handler on first open (the default; see "Signals" above). */
    INTAKE_SIGBUS_LIBRARY = 0,
    /* The host owns SIGBUS and hands each one to intake_sigbus_handle first. */
    INTAKE_SIGBUS_HOST = 1,
};

/* Chooses who handles SIGBUS, process-wide. Call it before the first open (of a consumer or a
 * set) in the process: 0, or -EBUSY once the library's handler is installed (it stays), or
 * -EINVAL for an unknown mode. */
INTAKE_API int intake_sigbus_set_mode(enum intake_sigbus_mode mode);
/* For a host's SIGBUS handler (INTAKE_SIGBUS_HOST): when the fault is inside a mapping of an
 * open consumer or set, replaces that mapping with zero pages (the handle's next call returns
 * -EIO with its reason) and returns 1: the host's handler returns, and the faulting access
 * runs again against the zero pages. Otherwise returns 0 and changes nothing: the fault is the
 * host's. `info` is the handler's siginfo_t * (void * here so that this header needs no POSIX
 * feature macro). Async-signal-safe. */
INTAKE_API int intake_sigbus_handle(int signal_number, void *info, void *context);

/* ------------------------------------------------------ log introspection --- */
/*
 * A read-only look at topics' logs and their consumers, for tools that watch intake (intake-stat,
 * intaked's /metrics, the Kafka bridge) without reading the format themselves. Nothing is
 * registered and nothing written: each file is mapped read-only, checked as a consumer checks it
 * (magic, version, identity checksum, sizes, the topic, the region's pairing with its log), and
 * guarded against truncation like a consumer's mappings (a file truncated under a look is -EIO,
 * never SIGBUS).
 *
 * An inspector keeps what does not change between looks at a directory's logs: each log's
 * identity (its file and its region's, and its creation time) and the read-only mappings of its
 * header and consumer region. Looking again at a log costs loads from memory, no system call.
 * It maps the directory's intake.notify too, whose logs_changed counter moves whenever a log
 * there is created or recreated: a moved counter (or, without intake.notify, every one to two
 * seconds; and every INTAKE_LOG_INSPECT_REVALIDATE_SECONDS to twice that in any case, spread
 * over the logs, for a log removed while no daemon held it) makes the next look check that
 * each path still names the file it mapped, and map the new one if not. The consumer slots in
 * use are remembered the same way: all 64 are read again when the region's registration
 * counter moved (every registration moves it), and every 10 to 20 seconds. Storage for
 * `logs_max` logs is allocated at open; past that, the least recently looked-at log gives its
 * place up.
 *
 * Descriptors: an inspector keeps one (the directory) open; mappings keep no descriptor.
 * Thread: an inspector belongs to one thread at a time.
 */

/* Slots in a log's consumer region: the most consumers one look reports. */
#define INTAKE_LOG_CONSUMERS_MAX 64
/* Room for a topic, NUL included. */
#define INTAKE_LOG_TOPIC_BYTES 256
/* Room for a consumer's name, NUL included. */
#define INTAKE_LOG_CONSUMER_NAME_BYTES 64
/* An offset that is not known (a consumer that never committed; a writer that died inside a
 * publish left the commit offset unknown). */
#define INTAKE_LOG_OFFSET_NONE UINT64_MAX
/* A removed log's last state is reported as if it were there for at most twice this. */
#define INTAKE_LOG_INSPECT_REVALIDATE_SECONDS 30

/* Flags of intake_log_inspect. */
/* `name` is the log's file name in the directory (as a listing shows it, ending in ".log"),
 * not a topic: the topic is read from the log (and checked against the file name). */
#define INTAKE_LOG_INSPECT_FILE_NAME 1u
/* Also find out whether a writer holds the log now (writer_alive): it opens the file and takes
 * a shared lock for an instant, as intake_consumer_writer_alive does. Two more system calls and
 * a descriptor for the duration of the call. */
#define INTAKE_LOG_INSPECT_WRITER 2u

enum intake_log_retention {
    INTAKE_LOG_RETENTION_BLOCK = 0,     /* slow live consumers hold the writer back */
    INTAKE_LOG_RETENTION_OVERWRITE = 1, /* the writer never waits */
};

enum intake_log_consumer_state {
    INTAKE_LOG_CONSUMER_ACTIVE = 2,   /* registered (live only if its process holds the slot) */
    INTAKE_LOG_CONSUMER_DETACHED = 4, /* closed, keeping its committed cursor */
};

/* One consumer slot in use (active or detached). What a slot holds is written by consumers:
 * reported as found (the name bounded and terminated), never trusted. */
struct intake_log_consumer {
    char name[INTAKE_LOG_CONSUMER_NAME_BYTES];
    uint32_t slot;               /* its index in the region, < INTAKE_LOG_CONSUMERS_MAX */
    uint32_t state;              /* enum intake_log_consumer_state */
    uint32_t ephemeral;          /* 1: freed on close, its cursor never resumed */
    int32_t pid;                 /* informational (pid namespaces differ) */
    uint64_t heartbeat_ns;       /* CLOCK_MONOTONIC of its last poll, wait or commit */
    uint64_t read_position;      /* it is done with every byte below */
    uint64_t committed_position; /* where its name resumes (a hint) */
    uint64_t committed_offset;   /* the offset expected there, INTAKE_LOG_OFFSET_NONE if never */
    uint64_t lag_bytes;          /* commit_position - read_position (0 when not behind) */
    uint64_t lag_records;        /* commit_offset - committed_offset; 0 when either is unknown */
};

/* What one look reports: a struct that grows (see "Structs that grow" above; set struct_bytes,
 * as INTAKE_LOG_INFO_INIT does). Of consumers[], only the first consumer_count are written. */
struct intake_log_info {
    uint32_t struct_bytes; /* sizeof(struct intake_log_info); 0: the 1.0 layout */
    uint32_t version;      /* the log format version (SHM_LOG_VERSION) */
    char topic[INTAKE_LOG_TOPIC_BYTES];
    uint64_t created_wall_ns;    /* CLOCK_REALTIME at creation: a recreated log has another */
    uint64_t capacity_bytes;     /* the ring */
    uint64_t record_bytes_max;   /* the largest record it holds */
    uint32_t retention;          /* enum intake_log_retention, of the running (or last) writer */
    int32_t writer_pid;          /* informational; 0 after a clean close */
    uint64_t consumer_stale_ns;  /* a consumer silent this long stops holding the writer */
    uint64_t commit_position;    /* end of the published entries */
    uint64_t commit_offset;      /* the next record's offset, or INTAKE_LOG_OFFSET_NONE */
    uint64_t retained_position;  /* the oldest intact entry */
    uint64_t retained_offset;    /* its offset (informational) */
    uint32_t writer_alive;       /* with INTAKE_LOG_INSPECT_WRITER: 1 a writer holds it, else 0 */
    uint32_t consumers_readable; /* 1: the region checked out and consumers[] is filled */
    uint32_t consumer_count;     /* entries of consumers[] filled, in slot order */
    uint32_t reserved;
    struct intake_log_consumer consumers[INTAKE_LOG_CONSUMERS_MAX];
};
#define INTAKE_LOG_INFO_INIT                                                                       \
    { .struct_bytes = sizeof(struct intake_log_info) }

struct intake_log_inspector;

/* Prepares looks at the logs in `directory`, remembering up to `logs_max` (1..1048576) of them.
 * Allocates everything it will use. -ENOENT or -EACCES when the directory cannot be opened,
 * -EINVAL for bad arguments, -ENOMEM; `why` holds one line. */
INTAKE_API int intake_log_inspector_open(const char *directory, uint32_t logs_max,
                                         struct intake_log_inspector **out, char *why,
                                         size_t why_capacity) __attribute__((warn_unused_result));
/* Unmaps everything and frees the inspector. NULL is fine. */
INTAKE_API void intake_log_inspector_close(struct intake_log_inspector *inspector);

/* Fills `info` (info->struct_bytes set by the caller, and kept) with the state of topic
 * `name`'s log and its consumers now (`flags`: INTAKE_LOG_INSPECT_*). 0, or a negative errno
 * with one line in `why`: -ENOENT no log for it; -EACCES not readable (the log group is
 * needed); -EPROTO another format version; -EBADMSG a file that fails its checks (or holds
 * another topic); -EIO a file truncated under the look (looked at afresh next time); -EINVAL
 * bad arguments or a struct_bytes below the 1.0 size. Never aborts on what the files hold. */
INTAKE_API int intake_log_inspect(struct intake_log_inspector *inspector, const char *name,
                                  uint32_t flags, struct intake_log_info *info, char *why,
                                  size_t why_capacity) __attribute__((warn_unused_result));

#ifdef __cplusplus
}
#endif

#endif
