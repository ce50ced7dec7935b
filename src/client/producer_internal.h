/*
 * producer_internal.h: the producer library's state, shared by its files (not public).
 *
 *   producer.c          the public API and record encoding
 *   producer_plain.c    the plain (non-idempotent) path: batch writes, sticky errors
 *   producer_socket.c   address resolution, connects, error lines, and a connection's bytes:
 *                       through the socket, or through TLS
 *   producer_tls.c      TLS 1.3 with OpenSSL: the context from the configured files (at open),
 *                       one TLS session per connection, its handshake, reads and writes
 *   producer_window.c   the retained records of an idempotent producer (a byte ring plus a
 *                       record ring, both sized at open)
 *   producer_session.c  the idempotent connection: Hello, acks, resends, reconnects with
 *                       backoff, delivery timeouts and reports
 *
 * Everything runs on the caller's thread; one producer per thread.
 */
#ifndef INTAKE_PRODUCER_INTERNAL_H
#define INTAKE_PRODUCER_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "common.h"
#include "intake/producer.h"
#include "varint.h"

/* Ack receive buffer; an Ack frame longer than this is a protocol error. */
#define PRODUCER_ACK_BUFFER_BYTES 4096
#define PRODUCER_ERROR_BYTES      640
/* Addresses kept from the resolution at open; reconnects rotate through them. */
#define PRODUCER_ADDRESSES_MAX 4
/* A Hello frame: prefix, the two-byte tag of field 16, a length, up to 64 bytes of id. */
#define PRODUCER_HELLO_BYTES_MAX (1 + 2 + 1 + INTAKE_PRODUCER_ID_BYTES_MAX)

/* --- TLS (producer_tls.c) --- */

/* After this many TLS records on one connection the producer sends a KeyUpdate: AES-GCM's
 * limit per key is 2^24.5 full-size records (RFC 8446 section 5.5). */
#define PRODUCER_TLS_KEY_UPDATE_RECORDS (1ull << 24)
#define PRODUCER_TLS_NAME_BYTES         256

/* OpenSSL's types, named without its headers (they stay inside producer_tls.c). */
struct ssl_ctx_st;
struct ssl_st;
struct bio_method_st;

/* A producer's TLS: the context made at open (NULL: plaintext) and the current connection's
 * session (NULL between connections). */
struct producer_tls {
    struct ssl_ctx_st *context;
    struct bio_method_st *socket_method; /* our socket BIO: send with MSG_NOSIGNAL */
    struct ssl_st *session;
    int fd;           /* the session's socket (owned by the caller) */
    int socket_errno; /* the errno of the BIO's last failed call */
    char server_name[PRODUCER_TLS_NAME_BYTES];
    bool server_name_is_address; /* an IP address: matched against IP SANs, no SNI */
    bool handshake_wants_write;  /* the handshake waits for POLLOUT (else POLLIN) */
    /* A write returned -EAGAIN after OpenSSL took bytes into a record: the next write must
     * present the same bytes again (at least as many), so they must not be dropped meanwhile. */
    bool write_owed;
    uint64_t records_since_key_update; /* on this session */
    uint64_t key_update_records;       /* PRODUCER_TLS_KEY_UPDATE_RECORDS (tests lower it) */
    /* Over all sessions: KeyUpdates sent, TLS records written and read (successful calls). */
    uint64_t key_updates;
    uint64_t records_written;
    uint64_t records_read;
    int reason_error; /* the error `reason` explains (0: none) */
    char reason[PRODUCER_ERROR_BYTES / 2];
};

static inline bool producer_tls_enabled(const struct producer_tls *tls) {
    return tls->context != NULL;
}
/* Makes the context from config's tls_* fields (nothing when tls_ca_file is NULL): 0, or a
 * negative errno with one line in `why`. */
int producer_tls_open(struct producer_tls *tls, const struct intake_producer_config *config,
                      char *why, size_t why_capacity);
void producer_tls_close(struct producer_tls *tls);
/* Starts a session on a connected non-blocking socket: 0 or a negative errno (reason set). */
int producer_tls_begin(struct producer_tls *tls, int fd);
/* One non-blocking handshake step: 0 when done, -EAGAIN to wait (handshake_wants_write says
 * for what), else -ECONNABORTED or an errno, with the reason set. */
int producer_tls_handshake(struct producer_tls *tls);
/* Ends the session: a close_notify when `graceful` (best effort, never waits), then frees it. */
void producer_tls_end(struct producer_tls *tls, bool graceful);
/* Writes up to `length` bytes as one TLS record at most: the bytes taken (> 0), -EAGAIN, or
 * an error with the reason set. */
ssize_t producer_tls_write(struct producer_tls *tls, const void *bytes, size_t length);
/* Reads plaintext: bytes (> 0), 0 at the end of the stream, -EAGAIN, or an error. */
ssize_t producer_tls_read(struct producer_tls *tls, void *buffer, size_t capacity);

/* --- the retained records (producer_window.c) --- */

struct producer_window_record {
    uint64_t sequence;
    uint64_t deadline_ns;  /* the delivery timeout: fails unacked at this time */
    uint32_t offset;       /* of the frame (prefix included) in the byte ring */
    uint32_t length;       /* frame bytes */
    uint32_t topic_offset; /* of the topic's bytes, from the frame's start */
    uint32_t topic_length; /* 0 when unknown (an unparseable raw record) */
};

/* Records [first, end) are retained, in sequence order. [first, sent) are fully written on the
 * current connection and `sent_partial` bytes of record `sent` are. Bytes are laid in order
 * in the ring; a record that does not fit before its end starts again at 0 (the gap stays
 * unused until the ring drains past it). */
struct producer_window {
    uint8_t *bytes;
    uint32_t bytes_capacity;
    struct producer_window_record *records;
    uint32_t records_capacity;
    uint64_t first;
    uint64_t end;
    uint64_t sent;
    uint32_t sent_partial;
    uint32_t byte_head; /* offset of record `first` (when there is one) */
    uint32_t byte_tail; /* where the next record goes when it fits there */
    uint64_t unsent_bytes;
};

int producer_window_init(struct producer_window *window, uint32_t bytes, uint32_t records);
void producer_window_free(struct producer_window *window);
static inline uint32_t producer_window_count(const struct producer_window *window) {
    return (uint32_t)(window->end - window->first);
}
static inline struct producer_window_record *producer_window_at(struct producer_window *window,
                                                                uint64_t index) {
    return &window->records[index % window->records_capacity];
}
/* Room for one more record of `length` frame bytes: its offset, or -1 (window full). */
int64_t producer_window_room(const struct producer_window *window, uint32_t length);
/* Appends a record whose frame the caller wrote at `offset` (from producer_window_room). */
void producer_window_push(struct producer_window *window, uint32_t offset,
                          const struct producer_window_record *record);
/* Drops the oldest record (delivered or failed); it must not be partly written. */
void producer_window_pop(struct producer_window *window);
/* Marks everything unsent again (a new connection resends from the oldest record). */
void producer_window_rewind(struct producer_window *window);
/* Fills up to `capacity` iovecs with the unsent bytes, adjacent records merged; the count. */
int producer_window_unsent(const struct producer_window *window, struct iovec *iov, int capacity);
/* Records `written` bytes as sent; returns how many records were completed. `highest_written`
 * (in/out) counts a completed record at or below it as a resend in *resent. */
uint32_t producer_window_advance(struct producer_window *window, size_t written,
                                 uint64_t *highest_written, uint64_t *resent);

/* --- the idempotent session (producer_session.c) --- */

/* Failed records kept for wait_acks to return (the callback sees every one). */
#define PRODUCER_FAILURES_KEPT      16
#define PRODUCER_FAILURE_LINE_BYTES 240

struct producer_failure {
    uint64_t sequence;
    int error; /* -EPROTO (REJECTED, INTERNAL) or -ETIMEDOUT */
    char line[PRODUCER_FAILURE_LINE_BYTES];
};

enum producer_phase {
    PRODUCER_DISCONNECTED = 0, /* waiting for next_attempt_ns */
    PRODUCER_CONNECTING = 1,   /* non-blocking connect in progress */
    PRODUCER_HANDSHAKE = 2,    /* TLS handshake in progress (TLS only) */
    PRODUCER_HELLO = 3,        /* Hello written; its Ack not read yet; no records sent */
    PRODUCER_STREAMING = 4,    /* records flow; acks release them */
};

/* What a session run waits for. */
enum producer_goal {
    PRODUCER_GOAL_NONE = 0,     /* one pass, no waiting */
    PRODUCER_GOAL_ROOM = 1,     /* room in the window for goal_value frame bytes */
    PRODUCER_GOAL_FLUSHED = 2,  /* nothing unsent, or disconnected (sent on reconnect) */
    PRODUCER_GOAL_FINISHED = 3, /* every record up to goal_value delivered or failed */
    PRODUCER_GOAL_REPORTED = 4, /* at least one more delivery report made */
};

struct producer_session {
    enum producer_phase phase;
    struct sockaddr_storage addresses[PRODUCER_ADDRESSES_MAX];
    socklen_t address_lengths[PRODUCER_ADDRESSES_MAX];
    uint32_t address_count;
    uint32_t attempts; /* connection attempts, rotates through the addresses */
    uint8_t hello[PRODUCER_HELLO_BYTES_MAX];
    size_t hello_length;
    uint8_t producer_id[INTAKE_PRODUCER_ID_BYTES_MAX];
    size_t producer_id_length;
    uint64_t next_sequence;
    uint64_t sent_floor; /* first_sequence - 1: below it, this producer's earlier life sent */
    struct producer_window window;
    uint64_t phase_deadline_ns; /* connect or Hello must complete by then */
    uint64_t progress_ns;       /* last write or ack progress, for the stall timeout */
    uint64_t next_attempt_ns;
    uint64_t backoff_ns; /* the next backoff before jitter */
    uint64_t backoff_min_ns;
    uint64_t backoff_max_ns;
    uint64_t delivery_timeout_ns;
    uint64_t random_state;
    bool nonblocking;
    intake_producer_delivery_callback on_delivery;
    void *delivery_context;
    char problem[PRODUCER_ERROR_BYTES]; /* why the last connection ended; "" when none */
    uint64_t highest_written; /* the highest sequence ever written whole, any connection */
    bool connection_wrote;    /* a record was written whole on the current connection */
    uint64_t reports;         /* delivery reports made */
    /* Failures wait_acks has not returned yet, in sequence order (reports come in order):
     * a ring of the first PRODUCER_FAILURES_KEPT; later ones are only counted. */
    struct producer_failure failures[PRODUCER_FAILURES_KEPT];
    uint64_t failures_first;
    uint64_t failures_end;
    uint64_t failures_not_kept;         /* beyond the ring: counted, reported by callback only */
    uint64_t failures_not_kept_highest; /* the highest sequence among those */
    struct intake_producer_stats stats;
};

struct intake_producer {
    int fd; /* -1 while an idempotent producer has no connection */
    bool acks;
    bool idempotent;
    int failed; /* sticky negative errno; 0 while healthy */
    uint32_t io_timeout_ms;
    uint64_t highest_sent; /* plain path: highest sequence sent by send or send_raw */
    uint64_t acked;        /* plain path: highest cumulative ack received */
    uint8_t *batch;        /* plain path only; an idempotent producer encodes into its window */
    size_t batch_capacity;
    size_t batch_fill;
    uint8_t ack_buffer[PRODUCER_ACK_BUFFER_BYTES];
    size_t ack_fill;
    char address_text[256];
    char error[PRODUCER_ERROR_BYTES];
    struct producer_tls tls;
    struct producer_session session;
};

/* --- producer_socket.c --- */

/* Records `error` with a message; a fatal error also becomes sticky. Returns `error`. */
__attribute__((format(printf, 4, 5))) int
producer_error(struct intake_producer *producer, int error, bool fatal, const char *format, ...);
int64_t producer_remaining_ms(uint64_t deadline_ns);
/* Resolves "host:port" into up to `capacity` socket addresses; returns the count or a negative
 * errno with `why` set. */
int producer_resolve(const char *address, struct sockaddr_storage *addresses, socklen_t *lengths,
                     uint32_t capacity, char *why, size_t why_capacity);
/* A non-blocking TCP socket with connect started: the socket (connected or -EINPROGRESS
 * pending in *in_progress) or a negative errno. */
int producer_connect_start(const struct sockaddr_storage *address, socklen_t length,
                           bool *in_progress);
/* The outcome of a connect that reported writable: 0 or a negative errno. */
int producer_connect_result(int fd);
/* Blocking connect bounded by timeout_ms (plain path); the socket or a negative errno. */
int producer_connect(const char *address, uint32_t timeout_ms, char *why, size_t why_capacity);
const char *producer_status_name(uint32_t status);
/* The host part of "host:port" / "[v6]:port", copied into `host`: 0 or -EINVAL. */
int producer_address_host(const char *address, char *host, size_t host_capacity);

/* A connection's bytes, through TLS when the producer has it, else through the socket. Each
 * returns bytes moved (> 0), -EAGAIN when it would block, or a negative errno; receive returns
 * 0 at the end of the stream. Never blocks, never raises SIGPIPE. */
ssize_t producer_io_send(struct intake_producer *producer, const void *bytes, size_t length);
/* Sends from up to `count` iovecs (TLS: one record, from the first). */
ssize_t producer_io_sendv(struct intake_producer *producer, const struct iovec *iov, int count);
ssize_t producer_io_receive(struct intake_producer *producer, void *buffer, size_t capacity);
/* Text for an error from the calls above (TLS: what failed, from OpenSSL), for error lines. */
const char *producer_io_error_text(const struct intake_producer *producer, int error);
/* Plain path: the TLS handshake on the connected socket, bounded by io_timeout_ms: 0 or a
 * negative errno with one line in `why`. */
int producer_tls_handshake_blocking(struct intake_producer *producer, char *why,
                                    size_t why_capacity);

/* --- producer_plain.c --- */

int producer_drain_acks(struct intake_producer *producer);
int producer_plain_flush(struct intake_producer *producer);
/* Appends bytes to the batch, writing it out when they do not fit. */
int producer_emit(struct intake_producer *producer, const void *bytes, size_t length);
int producer_plain_wait_acks(struct intake_producer *producer, uint64_t sequence, int timeout_ms);

/* --- producer_session.c --- */

int producer_session_open(struct intake_producer *producer,
                          const struct intake_producer_config *config, char *why,
                          size_t why_capacity);
void producer_session_close(struct intake_producer *producer);
/* Runs the connection until `goal` holds or deadline_ns (0: one pass without waiting): 0 when
 * the goal holds, -ETIMEDOUT when the deadline came first, or a sticky error. */
int producer_session_run(struct intake_producer *producer, enum producer_goal goal,
                         uint64_t goal_value, uint64_t deadline_ns);
/* For wait_acks: takes the failures up to `sequence` not returned before; 0 when none, else
 * the earliest one's error, with a line naming it (and how many more) in producer->error. */
int producer_session_take_failures(struct intake_producer *producer, uint64_t sequence);
/* Called after a record was pushed into the window. */
int producer_session_sent_one(struct intake_producer *producer);
/* Room for the next record (sequence next_sequence) of `length` frame bytes: its offset in the
 * window, or -1 when the window is full or the sequence would run more than
 * INTAKE_PRODUCER_SEQUENCE_LEAD_MAX above the highest sequence sent (*lead set then). */
int64_t producer_session_room(const struct intake_producer *producer, uint32_t length, bool *lead);

#endif
