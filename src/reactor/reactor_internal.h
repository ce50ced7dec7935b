/*
 * reactor_internal.h: what the reactor's files share (never included outside src/reactor).
 *
 *   reactor_loop.c   the loop: submit and wait, completion dispatch with the user_data codec,
 *                    the batched work, the one finishing point per batch, shutdown, stalls
 *   connection.c     the connection table, lists, open / end / advance / close, connection_check
 *   admission.c      framing hand-off, the --acl check and quotas, admission into topic
 *                    queues, pauses and resumes
 *   acks.c           cumulative and final Acks, lingering close
 *   timers.c         the periodic tick: receive deadlines (frame, idle, handshake), accept
 *                    pauses after EMFILE, eviction of stale partial records holding the pool
 *   tls_handshake.c  a TLS connection's handshake: its records read through the ring, handed
 *                    to a handshake thread and answered, its slot, its failure reasons
 *   tls_input.c      a TLS connection's input after the handshake: records opened in place in
 *                    the backlog, their plaintext framed where it lies; its alerts
 *   reactor_setup.c  ring and backend setup (the backend table's auto chain), thread lifecycle,
 *                    counters
 *
 * A connection is a small state machine. Its phase says what it is doing; what it has in the
 * kernel is counted (receives, sends, linger operations); connection_check() asserts the
 * invariants of its phase after every completion handler and at the finishing point.
 *
 *   FREE --accept--> READING <--pause/resume--> PAUSED
 *   FREE --accept on the TLS listener--> HANDSHAKE --done--> READING
 *   HANDSHAKE --failed, timed out, peer gone, shutdown--> (its alert sent, its SSL object
 *                                                          freed by the thread) FREE
 *   READING/PAUSED --end (peer closed, bad input, limit, reset, shutdown)--> DRAINING
 *   DRAINING --every admitted record came back--> FINAL_ACK (last Ack sent, its status if not OK)
 *   FINAL_ACK --sends and receives back--> LINGERING (ended by intake, peer may still send)
 *                                        | FREE
 *   LINGERING --peer closed / idle / total bound--> FREE
 *
 * Only reactor_advance_connections (once per loop iteration, after the batched work) moves a
 * connection past DRAINING or frees it; handlers only note that it may advance
 * (connection_touch).
 *
 * A TLS connection's input (tls_input.c). Every received chunk goes to the backlog, which then
 * holds, in order: the record being framed (opened: decrypted in place, tag verified; its
 * plaintext framed up to the cursor), then ciphertext not opened yet, possibly ending in an
 * incomplete record. A record is opened only when it is complete and the one before it is fully
 * framed, so at most one record's plaintext waits at a time; nothing is copied to coalesce
 * (the record layer reads a record spread over backlog nodes as segments). A READING TLS
 * connection has no opened record and no complete record waiting: all it may hold is the start
 * of the next record. A PAUSED one keeps its cursor and resumes exactly there.
 */
#ifndef INTAKE_REACTOR_INTERNAL_H
#define INTAKE_REACTOR_INTERNAL_H

#include <liburing.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "ack_frame.h"
#include "ack_window.h"
#include "framer.h"
#include "handshake.h"
#include "keyed_hash.h"
#include "principal.h"
#include "reactor.h"
#include "record.h"
#include "record_pool.h"
#include "rx_backend.h"
#include "tls_record.h"

/* Most completions handled before the batched work runs again. */
#define REACTOR_CQE_BATCH_MAX 512
/* While a connection is blocked on a topic queue that other reactors' records may fill, the
 * worker that drains it wakes those reactors, not this one: look again this often. */
#define REACTOR_BLOCKED_RECHECK_NS 1000000ll
/* Lingering close: after a final Ack, input is read and discarded until the peer closes, at most
 * this long without input, and this long in all. */
#define REACTOR_LINGER_IDLE_NS  1000000000ll
#define REACTOR_LINGER_TOTAL_NS 2000000000ull
/* A connection of a class with a quota charges the shared bucket at the end of each chunk, or
 * sooner once it admitted this many records or bytes: what it may overshoot before its check
 * sees the debt. */
#define REACTOR_QUOTA_CHARGE_RECORDS 64u
#define REACTOR_QUOTA_CHARGE_BYTES   65536u
/* Most returned records taken from one return ring per iteration. */
#define REACTOR_RETURN_BATCH_MAX 256
/* Returned records prefetched this many places ahead of the one being processed. */
#define REACTOR_RETURN_PREFETCH 4
/* A paused connection keeps its multishot receive (its bytes wait in its backlog) until it holds
 * this many chunks, receive units run short (fewer than 1/REACTOR_UNITS_RESERVE_SHARE of them
 * free) or the backlog nodes do: only then is the receive cancelled, so TCP pushes back. */
#define REACTOR_PAUSED_BACKLOG_CHUNKS_MAX 8
#define REACTOR_UNITS_RESERVE_SHARE       2
#define REACTOR_SQ_ENTRIES                1024
#define REACTOR_NO_NODE                   UINT32_MAX
/* After EMFILE/ENFILE (or ENOBUFS/ENOMEM) on accept, accepting stops for this long: the
 * pending connection stays in the listen backlog, and retrying at once would only spin. */
#define REACTOR_ACCEPT_PAUSE_NS 100000000ll
/* The tick that drives receive deadlines: an eighth of the shortest timeout, within bounds. */
#define REACTOR_TICK_MIN_NS 10000000ull
#define REACTOR_TICK_MAX_NS 1000000000ull
/* A partial record younger than this is never evicted to make room in the record pool: a
 * producer in the middle of an honest record is not cut off (see timers.c). */
#define REACTOR_PARTIAL_EVICT_AGE_NS 1000000000ull

/* A TLS record whose partial start waits in a READING connection's backlog holds nodes; each TLS
 * connection may hold about this many at once, and the node pool is sized for it. */
#define REACTOR_TLS_BACKLOG_NODES_PER_CONNECTION 4
/* The listeners of a reactor (the slot field of an accept's user_data). */
#define REACTOR_LISTENER_PLAIN 0u
#define REACTOR_LISTENER_TLS   1u
#define REACTOR_LISTENERS      2u

/* --- user_data: tag (7 bits) | linger-timeout bit | slot (24 bits) | generation (32 bits) --- */
enum reactor_tag {
    REACTOR_TAG_ACCEPT = 1, /* slot: the listener (REACTOR_LISTENER_*) */
    REACTOR_TAG_RECEIVE = 2,
    REACTOR_TAG_SEND = 3,
    REACTOR_TAG_CANCEL = 4,
    REACTOR_TAG_WAKE = 5,
    REACTOR_TAG_LINGER = 6, /* a discarding receive of a lingering close, or its linked timeout */
    REACTOR_TAG_TICK = 7,   /* the periodic tick that drives receive deadlines */
    REACTOR_TAG_ACCEPT_RESUME = 8,     /* the end of an accept pause (EMFILE) */
    REACTOR_TAG_HANDSHAKE_RECEIVE = 9, /* a receive of a handshake record's bytes */
    REACTOR_TAG_HANDSHAKE_SEND = 10,   /* OpenSSL's output going out */
};
#define USER_DATA_TAG_BITS         7
#define USER_DATA_LINGER_TIMEOUT   (1ull << USER_DATA_TAG_BITS)
#define USER_DATA_SLOT_SHIFT       8
#define USER_DATA_SLOT_BITS        24
#define USER_DATA_GENERATION_SHIFT 32
_Static_assert(USER_DATA_TAG_BITS + 1 == USER_DATA_SLOT_SHIFT, "tag and flag fill the low byte");
_Static_assert(USER_DATA_SLOT_SHIFT + USER_DATA_SLOT_BITS == USER_DATA_GENERATION_SHIFT,
               "slot ends where the generation starts");
_Static_assert(USER_DATA_GENERATION_SHIFT + 32 == 64, "user_data fields fill 64 bits");
_Static_assert(REACTOR_TAG_HANDSHAKE_SEND < (1 << USER_DATA_TAG_BITS), "tags fit their bits");

static inline uint64_t user_data_encode(enum reactor_tag tag, uint32_t slot, uint32_t generation) {
    INTAKE_ASSERT((uint32_t)tag < (1u << USER_DATA_TAG_BITS));
    INTAKE_ASSERT(slot < (1u << USER_DATA_SLOT_BITS));
    return (uint64_t)tag | ((uint64_t)slot << USER_DATA_SLOT_SHIFT) |
           ((uint64_t)generation << USER_DATA_GENERATION_SHIFT);
}
static inline enum reactor_tag user_data_tag(uint64_t data) {
    return (enum reactor_tag)(data & ((1u << USER_DATA_TAG_BITS) - 1));
}
static inline bool user_data_is_linger_timeout(uint64_t data) {
    return (data & USER_DATA_LINGER_TIMEOUT) != 0;
}
static inline uint32_t user_data_slot(uint64_t data) {
    return (uint32_t)(data >> USER_DATA_SLOT_SHIFT) & ((1u << USER_DATA_SLOT_BITS) - 1);
}
static inline uint32_t user_data_generation(uint64_t data) {
    return (uint32_t)(data >> USER_DATA_GENERATION_SHIFT);
}

/* --- connections --- */

enum connection_phase {
    CONNECTION_FREE = 0,
    CONNECTION_READING,   /* input is framed as it arrives; a receive is armed or about to be */
    CONNECTION_PAUSED,    /* open, not reading: `pause` says what it waits for */
    CONNECTION_DRAINING,  /* input over; its admitted records still commit and are acked */
    CONNECTION_FINAL_ACK, /* every record back; its last Ack is out or going out */
    CONNECTION_LINGERING, /* write side shut; input discarded until the peer closes (bounded) */
    CONNECTION_HANDSHAKE, /* TLS: the handshake runs (handshake_step says where it stands) */
};

/* Where a HANDSHAKE connection stands. */
enum connection_handshake_step {
    HANDSHAKE_STEP_RECEIVING = 1, /* a receive of the next record's bytes is in flight */
    HANDSHAKE_STEP_THREAD = 2,    /* its slot is with a handshake thread */
    HANDSHAKE_STEP_SENDING = 3,   /* OpenSSL's output is going out; then handshake_next */
    HANDSHAKE_STEP_ENDING = 4,    /* failed: waits for its operations and for its SSL object to
                                   * be freed on the thread, then closes */
};

/* What a PAUSED connection waits for. */
enum connection_pause {
    PAUSE_NONE = 0,
    PAUSE_TOPIC_QUEUE, /* its next record's topic queue is full (blocked_record holds it) */
    PAUSE_RECORD_POOL, /* the reactor's record pool is empty */
    PAUSE_ACK_WINDOW,  /* too many of its records are not committed yet (blocked_record) */
    PAUSE_UNITS,       /* its receive ended for lack of receive units */
    PAUSE_TOPIC_LOG,   /* its last record went to a topic whose log was not open: until it is
                        * back (awaited_position), nothing after it is admitted */
    PAUSE_QUOTA,       /* its principal is over its --acl quota (blocked_record holds the next
                        * record) until the shared bucket opens (quota.h) */
};

/* The reactor's slot lists a connection is on (bits of connection.lists). A slot is freed only
 * when it is on none: the lists hold slots, and a slot must not change hands under them. */
enum connection_list {
    LIST_RETRY = 1u << 0,   /* paused on a queue, the pool or its window: retried each pass */
    LIST_ACK = 1u << 1,     /* its cumulative Ack may have grown */
    LIST_UNITS = 1u << 2,   /* paused for receive units */
    LIST_ADVANCE = 1u << 3, /* may advance: looked at by the finishing point */
};

/* A received chunk not framed yet (its connection was paused, or, with TLS, the chunk holds a
 * record not complete or not framed yet). Holds the chunk reference. */
struct backlog_node {
    struct rx_chunk chunk;
    uint32_t next;
};

struct connection {
    int fd;
    uint32_t generation;
    uint8_t phase; /* enum connection_phase */
    uint8_t pause; /* enum connection_pause; PAUSE_NONE unless PAUSED */
    uint8_t lists; /* enum connection_list bits */
    /* Operations in the kernel. */
    uint8_t receives_in_flight; /* 0 or 1: the multishot receive */
    uint8_t sends_in_flight;    /* 0 or 1: one Ack send at a time */
    uint8_t lingers_in_flight;  /* 0..2: a linger receive and its linked timeout */
    bool receive_cancelling;    /* a cancel was sent for the live receive */
    /* Facts about the peer and the Acks. */
    bool peer_closed; /* end of stream seen: no more input */
    bool socket_dead; /* reset or send failure: nothing more can be sent */
    bool final_ack_sent;
    bool linger_done;          /* the linger ended (peer closed, idle, bound, error) */
    uint8_t end_status;        /* enum record_status; OK for an orderly end */
    const char *end_detail;    /* end_detail_text, or NULL */
    uint32_t topics_created;   /* topics this connection created (--topics-per-connection) */
    uint32_t awaited_position; /* PAUSE_TOPIC_LOG: the ack window position waited for */
    uint64_t linger_deadline_ns;
    /* Receive deadlines (timers.c), on the reactor's coarse clock: when the record being framed
     * got its first byte (0 between records), and when input last came. */
    uint64_t frame_started_ns;
    uint64_t last_input_ns;
    /* Who the peer has proven to be (principal.h): anonymous on the plaintext listener; set by
     * the TLS handshake before the first record is framed, then fixed for the connection. */
    struct principal principal;
    /* --acl (issue 17). The principal's class in the rule set of generation acl_generation (0:
     * not looked up yet; looked up again whenever the reactor takes a new set) and that class's
     * principal row; records and bytes admitted since the quota bucket and the row's cells were
     * last charged (within one loop pass); since when it waits for its quota (PAUSE_QUOTA). */
    uint64_t acl_generation;
    uint16_t acl_class;
    uint16_t principal_row;
    bool quota_limited; /* the class has a quota (quota.h) */
    uint32_t quota_records_pending;
    uint64_t quota_bytes_pending;
    uint64_t throttled_since_ns;
    /* What the connection's records point at (record.h): its principal's tag and producer_id
     * with their keyed hash, filled at its first frame (origin_ready) and then fixed. */
    struct record_origin origin;
    bool origin_ready;
    /* The producer table's entry for its producer, pinned from its Hello or first record with a
     * producer_id until it ends (identity.c), and the sequence of that first record. */
    struct producer_entry *producer_entry;
    uint64_t producer_first_sequence;
    struct framer framer;
    /* Slices of the framer's current record that hold a unit reference: a record's units are
     * pinned slice by slice as they are added, because the chunks they came from are released
     * as soon as the framer has walked past them. */
    uint32_t slices_pinned;
    struct record *blocked_record; /* framed, topic resolved, not admitted yet */
    uint32_t backlog_head;         /* backlog_node indexes, REACTOR_NO_NODE when empty */
    uint32_t backlog_tail;
    uint32_t backlog_head_offset; /* bytes of the head chunk already framed */
    uint32_t backlog_chunks;      /* nodes on the backlog */
    struct ack_window window;
    uint64_t ack_sent_sequence;
    /* A Hello was accepted: its answer, Ack{OK, hello_answer}, goes out before any other Ack
     * and leaves the cumulative state (ack_sent_sequence, window) alone. */
    bool hello_answer_pending;
    uint64_t hello_answer;
    uint32_t send_length;
    uint32_t send_offset;
    /* An Ack frame; on a TLS connection, sealed: a KeyUpdate owed, the Ack's record, and after
     * a final Ack its alert (tls_record.h bounds each). */
    uint8_t send_buffer[ACK_FRAME_BYTES_MAX + 2 * TLS_KEY_UPDATE_RECORD_BYTES +
                        TLS_RECORD_OVERHEAD_BYTES + TLS_ALERT_RECORD_BYTES];
    /* TLS (issue 17). `tls`: accepted on the TLS listener (its record state is
     * reactor->tls_states[slot]). The handshake's fields are used in HANDSHAKE only. */
    bool tls;
    uint8_t handshake_step;   /* enum connection_handshake_step */
    uint8_t handshake_next;   /* after SENDING: enum handshake_result */
    bool handshake_at_thread; /* its slot is with a handshake thread */
    bool handshake_ssl_live;  /* the thread holds an SSL object for it */
    bool handshake_failed;    /* counted already (a timeout while the alert goes out) */
    uint32_t handshake_slot;  /* in reactor->handshake_slots */
    uint32_t handshake_sent;  /* bytes of the slot's output sent */
    uint64_t handshake_started_ns;
    /* The final Ack's reason, copied: it often comes from a record that is freed before the Ack
     * goes out. Longer than an Ack carries, so the encoder cuts it at a UTF-8 boundary. */
    char end_detail_text[ACK_DETAIL_BYTES_MAX + 56];
};

struct reactor_counters {
    uint64_t connections_accepted;
    uint64_t connections_refused; /* every slot was taken */
    uint64_t connections_closed;
    uint64_t connections_failed; /* ended by bad input or a limit (got a non-OK ack) */
    uint64_t records_admitted;
    uint64_t records_returned;
    uint64_t records_failed;   /* came back not committed */
    uint64_t frames_truncated; /* a partial frame was pending when its connection ended */
    uint64_t acks_sent;
    uint64_t pauses_topic_queue;
    uint64_t pauses_record_pool;
    uint64_t pauses_ack_window;
    uint64_t pauses_out_of_units;
    uint64_t pauses_topic_log;        /* a record went to a topic whose log was not open yet */
    uint64_t records_over_log_limit;  /* refused: larger than their topic's log takes */
    uint64_t topic_creations_refused; /* --topics-per-connection reached */
    uint64_t backlog_exhausted;
    uint64_t stalls_broken; /* connections ended to free buffers pinned by partial frames */
    uint64_t lingered;      /* closes that waited for the peer after a final Ack */
    uint64_t wakeups;
    uint64_t submit_busy;          /* io_uring_enter said EBUSY/EAGAIN/EINTR: reaped, retried */
    uint64_t socket_option_errors; /* setsockopt/shutdown failed on a connection */
    uint64_t deadline_kills_frame; /* a record not complete within --frame-timeout-ms */
    uint64_t deadline_kills_idle;  /* silent past --idle-timeout-ms with nothing in flight */
    uint64_t accept_errors;        /* accept completions with an error */
    uint64_t accept_pauses;        /* accepting paused after EMFILE/ENFILE/ENOBUFS/ENOMEM */
    uint64_t partial_cap_pauses;   /* a frame waited: partial records reached their share */
    uint64_t partial_evictions;    /* oldest partial record's connection ended for the pool */
    uint64_t connections_ended[5]; /* by final status (enum record_status) */
    uint64_t hellos_answered;      /* Hello frames answered with the producer's watermark */
    uint64_t identity_rejections;  /* a misplaced or malformed Hello, a producer_id of a size
                                    * refused or differing on a connection (framer.h) */
    uint64_t sequence_rejections;  /* out of order on a connection, or too far ahead */
    uint64_t sequence_gap_fills;   /* records inside a gap of their producer */
    uint64_t producer_refusals;    /* the producer table was full of live producers */
    /* TLS (issue 17) */
    uint64_t tls_handshakes_ok;
    /* By enum handshake_failure. */
    uint64_t tls_handshakes_failed[HANDSHAKE_FAILURES];
    uint64_t tls_handshakes_refused; /* every handshake slot was taken */
    uint64_t tls_records_decrypted;  /* application data records opened */
    uint64_t tls_auth_failures;      /* records whose tag did not verify */
    uint64_t tls_record_errors;      /* other record-layer violations (each ended one) */
    uint64_t tls_key_updates_received;
    uint64_t tls_key_updates_sent;
    uint64_t tls_alerts_received; /* error alerts from peers (close_notify not counted) */
};

/* A TLS connection's record layer and the cursors of its input (tls_input.c). */
struct connection_tls {
    struct tls_session session; /* live from the end of the handshake to the close */
    bool established;
    bool input_closed;     /* close_notify came: later input is ignored */
    bool opened;           /* the backlog's first record is open; its plaintext is being framed */
    uint8_t alert;         /* the alert a failed connection sends after its final Ack */
    bool alert_owed;       /* `alert` is owed (else close_notify ends the connection) */
    bool closing_sent;     /* the alert or close_notify went out: nothing more is sealed */
    uint32_t record_bytes; /* the opened record's size, header and tag included */
    uint32_t plain_node;   /* backlog node of the next plaintext byte to frame */
    uint32_t plain_offset; /* its offset in that node's chunk */
    uint32_t plain_remaining; /* plaintext of the opened record not framed yet */
    uint32_t backlog_bytes;   /* bytes on the backlog past backlog_head_offset */
    uint32_t needed_bytes;    /* what the next record needs on the backlog to be processed */
};

struct reactor {
    struct reactor_links links;
    uint32_t index;
    pthread_t thread;
    bool thread_started;
    sem_t started;
    int start_result;
    char start_why[256];
    char fallback_lines[512];

    struct io_uring ring;
    bool ring_ready;
    struct rx_backend *backend;
    /* --max-frame, or lower when the backend's units cannot hold it in RECORD_SLICES_MAX
     * slices (the backend table's frame_bytes_limit). */
    uint32_t frame_bytes_max;
    uint32_t tls_frame_bytes_max; /* the same for TLS connections (reactor_setup.c says why) */
    /* The plaintext and the TLS listener (-1 when not configured), each with its multishot
     * accept. */
    int listen_fds[REACTOR_LISTENERS];
    bool accept_armed[REACTOR_LISTENERS];
    bool accept_cancelled[REACTOR_LISTENERS];

    /* TLS: every connection slot's record state (NULL without a TLS listener), the handshake
     * slots (--handshakes-max), the free ones, and the last failure's reason. */
    struct connection_tls *tls_states;
    size_t tls_states_bytes;
    struct handshake_slot *handshake_slots;
    size_t handshake_slots_bytes;
    uint32_t *handshake_free;
    uint32_t handshake_free_count;
    char tls_last_failure[192];

    struct keyed_hasher hasher; /* producer ids, once per connection (identity.c) */
    struct record_pool pool;
    struct connection *connections;
    uint32_t connection_count_max;
    uint32_t *free_slots;
    uint32_t free_slot_count;
    uint64_t *window_sequences; /* all connections' ack windows, carved per slot */
    uint16_t *window_states;
    size_t window_region_bytes;

    struct backlog_node *backlog_nodes;
    uint32_t backlog_node_count;
    uint32_t backlog_free_head;
    /* What waits for workers to give records back (reactor_returns_awaited): admitted records
     * with a nonzero sequence (an Ack is owed) and connections draining toward their final Ack. */
    uint64_t numbered_in_flight;
    uint32_t draining_connections;
    /* Wall clock for records admitted now: read once per chunk framed or connection resumed. */
    uint64_t admit_wall_ns;
    uint32_t backlog_free_count;
    uint32_t backlog_reserve; /* free nodes kept for receives that are being cancelled */

    uint32_t *retry_list; /* LIST_RETRY slots */
    uint32_t retry_count;
    /* Where the next retry pass starts in the list: it moves on by one each pass, so paused
     * connections that compete for one thing (a principal's quota, a topic queue) take turns
     * being first to find it free, instead of the same one winning every time. */
    uint32_t retry_rotation;
    uint32_t *ack_list; /* LIST_ACK slots */
    uint32_t ack_count;
    uint32_t *units_wait_list; /* LIST_UNITS slots */
    uint32_t units_wait_count;
    uint32_t *advance_list; /* LIST_ADVANCE slots */
    uint32_t advance_count;
    bool *workers_to_wake;

    uint64_t wake_value;
    /* Where lingering connections' discarded input lands; shared, never read. */
    uint8_t linger_scratch[16384];
    _Atomic bool report_requested;
    bool stop_started;
    /* The coarse clock: read once per loop iteration (deadlines need no finer). */
    uint64_t now_ns;
    /* The tick (timers.c): armed while any receive deadline is on. */
    struct __kernel_timespec tick;
    bool tick_armed;
    bool sweep_due;
    struct __kernel_timespec accept_pause;
    bool accept_paused;
    /* Records the framers hold for incomplete frames, and the most they may hold: the rest of
     * the pool is reserved for records admitted and in flight, so connections that send a few
     * bytes and stop cannot take every entry. */
    uint32_t partial_records;
    uint32_t partial_records_max;
    bool partial_cap_reached;
    char frame_timeout_detail[96];
    char idle_timeout_detail[96];
    /* A stall seen once waits for confirmation: seen again after a timed wait with no progress
     * in between (buffers the kernel filled for completions not yet reaped look pinned). */
    bool stall_suspected;
    uint64_t stall_progress_mark;
    uint32_t open_connections;
    /* --acl: the rule set taken at the start of this loop pass (acl_exchange_take); NULL
     * without --acl. Used only until the next pass takes one again. */
    const struct acl_set *acl;
    struct reactor_counters counters;
};

static inline uint32_t connection_slot(const struct reactor *reactor,
                                       const struct connection *connection) {
    INTAKE_ASSERT(connection >= reactor->connections);
    INTAKE_ASSERT(connection < reactor->connections + reactor->connection_count_max);
    return (uint32_t)(connection - reactor->connections);
}

static inline bool connection_is_open(const struct connection *connection) {
    return connection->phase == CONNECTION_READING || connection->phase == CONNECTION_PAUSED;
}

/* reactor_setup.c: copies the counters into the reactor's row of the counters region, with a
 * heartbeat; once per loop iteration (relaxed stores of values only this thread writes). */
void reactor_publish_counters(struct reactor *reactor);

/* reactor_loop.c */
struct io_uring_sqe *reactor_sqe(struct reactor *reactor);
void reactor_submit(struct reactor *reactor);
void reactor_arm_accept(struct reactor *reactor);
void reactor_cancel_accept(struct reactor *reactor);
bool reactor_accepting(const struct reactor *reactor);
void reactor_loop(struct reactor *reactor);

/* connection.c. `tls`: accepted on the TLS listener (it starts with its handshake). */
void connection_open(struct reactor *reactor, int fd, bool tls);
void connection_end(struct reactor *reactor, struct connection *connection,
                    enum record_status status, const char *detail);
void connection_touch(struct reactor *reactor, struct connection *connection);
void connection_list_add(struct reactor *reactor, struct connection *connection,
                         enum connection_list list);
void connection_arm_receive(struct reactor *reactor, struct connection *connection);
void connection_cancel_receive(struct reactor *reactor, struct connection *connection);
void connection_maybe_rearm(struct reactor *reactor, struct connection *connection);
void connection_check(const struct reactor *reactor, const struct connection *connection);
struct connection *reactor_connection_for(struct reactor *reactor, uint64_t user_data);
void reactor_on_receive(struct reactor *reactor, const struct io_uring_cqe *cqe);
void reactor_advance_connections(struct reactor *reactor);
void reactor_release_record(struct reactor *reactor, struct record *record);

/* reactor_loop.c */
void reactor_take_returns(struct reactor *reactor);

/* access.c: the --acl check and quotas (issue 17); only while reactor->acl is set. The per-record
 * questions are inline here (a compare and a load or two each); what they rarely need is in
 * access.c. */
/* Looks the connection's principal up in the rule set this pass holds (a new set, or its first
 * record): its class, row and whether the class has a quota. */
uint32_t connection_acl_lookup(struct reactor *reactor, struct connection *connection);
/* The class of the connection's principal in the rule set this pass holds. */
static inline uint32_t connection_acl_class(struct reactor *reactor,
                                            struct connection *connection) {
    INTAKE_ASSERT(reactor->acl != NULL);
    if (INTAKE_LIKELY(connection->acl_generation == reactor->acl->generation))
        return connection->acl_class;
    return connection_acl_lookup(reactor, connection);
}
/* The refusal of a topic of the table the cached decision did not allow (works it out when
 * unknown): NULL when allowed after all, else the detail (in end_detail_text), counted. */
const char *connection_acl_decide_topic(struct reactor *reactor, struct connection *connection,
                                        uint32_t topic_id);
/* NULL when the principal may produce to the topic; else the refusal's detail (in
 * end_detail_text), counted as a denial. _topic for a topic of the table, _name for one that
 * does not exist yet (decided from the record's topic name, before anything is created). */
static inline const char *connection_acl_check_topic(struct reactor *reactor,
                                                     struct connection *connection,
                                                     uint32_t topic_id) {
    uint32_t class_index = connection_acl_class(reactor, connection);
    if (INTAKE_LIKELY(acl_set_cached(reactor->acl, class_index, topic_id) == ACL_DECISION_ALLOW))
        return NULL;
    return connection_acl_decide_topic(reactor, connection, topic_id);
}
const char *connection_acl_check_name(struct reactor *reactor, struct connection *connection,
                                      const struct record *record);
/* Whether the principal's quota lets the connection admit now (always once stopping). */
static inline bool connection_quota_open(struct reactor *reactor, struct connection *connection) {
    connection_acl_class(reactor, connection);
    if (!connection->quota_limited || reactor->stop_started) return true;
    INTAKE_ASSERT(connection->principal_row < INTAKE_COUNTERS_PRINCIPAL_ROWS);
    return quota_bucket_open(&reactor->links.quota_buckets[connection->principal_row],
                             &reactor->acl->policy->classes[connection->acl_class].quota,
                             reactor->now_ns);
}
/* A record of `frame_bytes` was admitted: charged with the others at the end of the chunk (or
 * sooner: REACTOR_QUOTA_CHARGE_RECORDS / _BYTES). */
void connection_quota_note(struct reactor *reactor, struct connection *connection,
                           uint32_t frame_bytes);
/* Charges what the connection admitted to its principal's cells and bucket. Before the loop
 * pass ends (the class is the pass's). */
void connection_quota_charge(struct reactor *reactor, struct connection *connection);
/* The connection just paused for its quota / adds the time it has waited so far to its
 * principal's throttled time. */
void connection_quota_pause_started(struct reactor *reactor, struct connection *connection);
void connection_account_throttle(struct reactor *reactor, struct connection *connection);

/* admission.c */
void connection_receive_chunk(struct reactor *reactor, struct connection *connection,
                              const struct rx_chunk *chunk);
void connection_resume(struct reactor *reactor, struct connection *connection);
void connection_drop_input(struct reactor *reactor, struct connection *connection);
/* Shared with tls_input.c, which frames plaintext and keeps ciphertext on the same backlog. */
enum admission_frame_result {
    ADMISSION_FRAME_CONSUMED,
    ADMISSION_FRAME_PAUSED,
    ADMISSION_FRAME_ENDED
};
enum admission_frame_result connection_frame(struct reactor *reactor, struct connection *connection,
                                             const struct rx_chunk *chunk, uint32_t *offset);
bool connection_backlog_push(struct reactor *reactor, struct connection *connection,
                             const struct rx_chunk *chunk, uint32_t offset);
void connection_backlog_pop(struct reactor *reactor, struct connection *connection);
bool connection_backlog_pressed(const struct reactor *reactor, const struct connection *connection);

/* tls_handshake.c: a TLS connection's handshake (HANDSHAKE phase). */
bool connection_handshake_start(struct reactor *reactor, struct connection *connection);
void reactor_on_handshake_receive(struct reactor *reactor, const struct io_uring_cqe *cqe);
void reactor_on_handshake_send(struct reactor *reactor, const struct io_uring_cqe *cqe);
void reactor_take_handshake_answers(struct reactor *reactor);
/* Counts the failure (once) and stops the handshake; it closes once its operations are back. */
void connection_handshake_fail(struct reactor *reactor, struct connection *connection,
                               enum handshake_failure failure, const char *detail);
/* Whether a HANDSHAKE connection can be freed now (posts its SSL's abandon job when due). */
bool connection_handshake_may_close(struct reactor *reactor, struct connection *connection);
void connection_check_handshake(const struct reactor *reactor, const struct connection *connection);

/* tls_input.c: a TLS connection's input and output after the handshake. */
static inline struct connection_tls *connection_tls_of(const struct reactor *reactor,
                                                       const struct connection *connection) {
    INTAKE_ASSERT(connection->tls);
    INTAKE_ASSERT(reactor->tls_states != NULL);
    return &reactor->tls_states[connection_slot(reactor, connection)];
}
void connection_tls_receive(struct reactor *reactor, struct connection *connection,
                            const struct rx_chunk *chunk);
/* Opens and frames what the backlog holds, until it needs more input, pauses or ends. */
void connection_tls_process(struct reactor *reactor, struct connection *connection);
/* Whether the backlog holds input that can move now (an open record, a complete one). */
bool connection_tls_input_pending(const struct reactor *reactor,
                                  const struct connection *connection);
/* The backlog was dropped (the connection ended): the cursors start over. */
void connection_tls_input_dropped(struct reactor *reactor, struct connection *connection);
/* Seals the Ack frame at `frame` into the send buffer (with the KeyUpdate owed and, when
 * `closing`, the alert or close_notify after it). Returns the bytes to send, 0 if sealing
 * failed (the connection can send nothing more). */
uint32_t connection_tls_seal(struct reactor *reactor, struct connection *connection,
                             const uint8_t *frame, uint32_t frame_bytes, bool closing);
/* Whether anything must be sealed and sent without an Ack: a KeyUpdate owed, or the closing
 * alert once the connection's last Ack is out. */
bool connection_tls_owes_send(const struct reactor *reactor, const struct connection *connection);
void connection_tls_release(struct reactor *reactor, struct connection *connection);
void connection_check_tls(const struct reactor *reactor, const struct connection *connection);

/* timers.c */
void reactor_timers_start(struct reactor *reactor);
void reactor_on_tick(struct reactor *reactor, const struct io_uring_cqe *cqe);
void reactor_pause_accept(struct reactor *reactor);
void reactor_on_accept_resume(struct reactor *reactor);
void reactor_sweep_deadlines(struct reactor *reactor);
void reactor_evict_partial(struct reactor *reactor);
struct connection *reactor_oldest_partial(struct reactor *reactor, bool pinning);

/* acks.c */
void connection_flush_ack(struct reactor *reactor, struct connection *connection);
/* identity.c: producer identity (issues 12 and 17). A Hello the framer accepted: gives its
 * record object back and queues its answer. A record the framer completed: points it at the
 * connection's origin and checks its sequence against its producer (false: the connection
 * ended). And, once a connection's records are all back, folds its committed level into the
 * producer table and lets its entry go. */
void connection_take_hello(struct reactor *reactor, struct connection *connection);
bool connection_check_sequence(struct reactor *reactor, struct connection *connection,
                               struct record *record);
void connection_fold_identity(struct reactor *reactor, struct connection *connection);
void reactor_on_send(struct reactor *reactor, const struct io_uring_cqe *cqe);
void reactor_on_linger(struct reactor *reactor, const struct io_uring_cqe *cqe);
bool connection_should_linger(const struct connection *connection);
void connection_linger_start(struct reactor *reactor, struct connection *connection);

#endif
