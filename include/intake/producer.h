/*
 * intake/producer.h: the producer library. Sends intake.v1.Record frames to intaked over TCP and
 * reads back its cumulative Acks. Part of libintake (pkg-config intake); needs no io_uring.
 *
 * Thread-safety: one producer per thread. A producer is not safe to share between threads
 * without external locking; distinct producers are fully independent.
 *
 * Two modes, chosen at open:
 *
 * PLAIN (the default; `acks` optional). Records are encoded straight into a batch buffer sized
 * at open and written when it fills or on flush, so a write carries many records. A record
 * larger than the batch is streamed through in pieces. With `acks`, records get sequences 1, 2,
 * 3, ... per connection and intake acknowledges them cumulatively; without, they carry
 * sequence 0 and intake acknowledges nothing. A connection error or a non-OK Ack is sticky:
 * every later call returns the same error. Nothing is kept for a resend: records in flight
 * when a connection breaks may or may not be in the log, and sending them again may log them
 * twice.
 *
 * IDEMPOTENT (`idempotent`, or a `producer_id` given; implies acks). Exactly once from this
 * producer into the topics' logs, like librdkafka's enable.idempotence:
 *   - Every record carries the producer's id (Record.producer_id, 1..64 bytes; a UUID string is
 *     generated when none is given) and a sequence that grows across all of its topics and
 *     connections: first_sequence (default 1), then +1 per record.
 *   - Every record stays in the producer's window (bytes and records bounded at open; nothing
 *     allocates after open) until intake acknowledges it or it fails.
 *   - Each connection starts with a Hello; intake answers with H, the producer's highest
 *     sequence it knows is committed. Records up to H are released as delivered, the rest are
 *     resent in order with their original sequences. intake deduplicates per (principal,
 *     producer_id, topic) with state kept next to each topic's log, so a record it already
 *     committed is acknowledged again and not appended twice.
 *   - An answer above the highest sequence this producer has sent (written on a connection, or
 *     below its first_sequence) means another producer uses this id under the same principal,
 *     or an earlier life of this one went further than first_sequence says: nothing is
 *     released; every retained record is reported REJECTED with a detail that says so, and the
 *     producer stops (every call returns -EPROTO).
 *   - On a connection the records go out with consecutive sequences (intake refuses a skip
 *     within a connection); a record that expires before it was written on a connection that
 *     wrote others ends that connection, and the next one continues after it.
 *   - A lost connection, a daemon that is SIGKILLed and restarted on the same --shm-dir, and
 *     the producer's own resends after those: exactly once, in sequence order per topic, and
 *     no gap (every record is delivered or reported failed).
 *   - Connection errors are not sticky: the producer reconnects by itself with jittered
 *     exponential backoff (reconnect_backoff_min_ms doubling up to reconnect_backoff_max_ms,
 *     each delay drawn from its upper half) during any call that services it (send, flush,
 *     wait_acks, poll). A connection that makes no progress for io_timeout_ms while records
 *     are outstanding (no bytes taken, no ack), or whose connect or Hello takes longer, is
 *     dropped and retried. Acks with SHUTTING_DOWN or RESOURCE_EXHAUSTED are retried after a
 *     backoff. REJECTED or INTERNAL fail the record they name (the first after the cumulative
 *     ack, i.e. the oldest retained), which is reported and not retried; the producer goes on
 *     with the rest on a new connection at once.
 *   - A record not acknowledged within delivery_timeout_ms of its send fails with
 *     INTAKE_DELIVERY_TIMED_OUT. If it had been written it may still be committed: it is the
 *     only report that means "unknown", and its detail says so.
 *   NOT exactly once:
 *   - A producer process that loses its state (it crashes, or closes with records pending)
 *     cannot resend what it held; a new instance has new records, not the old ones.
 *   - Reusing a producer_id across the application's own restarts is supported only when the
 *     sequences continue (first_sequence = one above the last sequence the previous instance
 *     used). One that restarts at 1 is refused at its Hello while intake knows the id (see
 *     above); if intake's producer table has forgotten it but a topic's deduplication table
 *     has not, its records there at or below what that table remembers are answered as
 *     duplicates of the earlier instance's (acknowledged, not appended again).
 *   - A host reboot: the logs and the dedupe state live in /dev/shm, which is memory.
 *   - intake remembers a bounded number of producers per topic (its dedupe window, see the
 *     README): a producer evicted from it and resending afterwards is not deduplicated.
 *
 * Pushback (idempotent): send needs room in the window, and a sequence at most
 * INTAKE_PRODUCER_SEQUENCE_LEAD_MAX above the highest sent. When either is short, send services the
 * connection (reads acks, reconnects, resends) until there is room, for up to io_timeout_ms,
 * then returns -EAGAIN; with `nonblocking` it makes one pass without waiting and returns
 * -EAGAIN at once. -EAGAIN is not sticky: call poll (or send again) later.
 *
 * Delivery reports (idempotent): `on_delivery` is called once per record, in sequence order,
 * with its sequence, topic, status and detail, when it is acknowledged or fails. It runs on the
 * caller's thread inside send, send_raw, flush, wait_acks or poll; it may read the producer
 * (acked, last_sequence, stats) but must not send, flush, wait, poll or close. A producer that
 * sends in bursts calls intake_producer_poll between them so reports and reconnects happen.
 * Records still pending at close are dropped without a report (wait_acks first).
 *
 * TLS (`tls_ca_file` set): every connection is TLS 1.3 (OpenSSL 3; nothing older is offered),
 * with AES-128-GCM, AES-256-GCM or ChaCha20-Poly1305 (AES-128-GCM preferred: the fastest with
 * AES-NI). The server's certificate must chain to tls_ca_file and carry tls_server_name (default:
 * the host part of `address`; an IP address is matched against the certificate's IP SANs and
 * is not sent as SNI). With tls_cert_file and tls_key_file (both or neither) the producer
 * presents that certificate (mutual TLS; the daemon's principal is its first URI SAN, else its
 * CN). Everything above holds unchanged over TLS: blocking and non-blocking calls, timeouts,
 * reconnects with backoff (each connection a full handshake, bounded by io_timeout_ms like a
 * connect), Hello and resend, acks. The files are read once, at open. The library allocates
 * nothing per record. OpenSSL seals each TLS record (up to 16 KiB of intake records, one
 * write(2)) in a write buffer it keeps for the connection; OpenSSL 3.0 itself allocates three
 * 40-byte bookkeeping frames per TLS record it writes and one per record it reads, and frees
 * them before returning (test_producer_tls counts them): at 256-byte records, about one
 * allocation per 20 records. After 2^24 TLS records on one connection the producer updates
 * its traffic keys (KeyUpdate, RFC 8446 section 5.5). close sends a close_notify and does not
 * wait. It first reads what intake sent that nobody read (TLS servers send session tickets
 * after the handshake), because closing a socket with unread bytes resets the connection,
 * and a reset can lose bytes still on their way; without acks, wait for something the server
 * did before closing, as wait_acks does.
 *   Failures: bad files (unreadable, not PEM, a key that does not match its certificate, a
 *   passphrase-protected key) fail open with -EINVAL, or the errno of reading them, and a line
 *   naming the file. A handshake that fails (the server's certificate does not verify: the
 *   line names the certificate and why, e.g. "certificate has expired" or "hostname
 *   mismatch"; the server refused ours; a plaintext listener) or a TLS alert or bad record
 *   later is -ECONNABORTED with that line: plain mode fails open or, later, sticks; idempotent
 *   mode retries with backoff like any connection failure and keeps the line in last_error.
 *
 * Errors: every function that can fail returns 0 or a negative errno, and
 * intake_producer_last_error gives one line saying why. In plain mode errors other than
 * -EINVAL and -EAGAIN are sticky.
 *   -EINVAL       bad argument (empty, over-long or non-UTF-8 topic; waiting on an unsent
 *                 sequence; a raw record with its own sequence or producer_id in idempotent
 *                 mode)
 *   -EMSGSIZE     idempotent: a record larger than the window's bytes
 *   -EAGAIN       idempotent: the window is full (see Pushback)
 *   -EPROTO       intake answered with a non-OK Ack: last_error is "REJECTED: <detail>" (or
 *                 RESOURCE_EXHAUSTED, SHUTTING_DOWN, INTERNAL), or it sent an unreadable Ack;
 *                 idempotent: wait_acks returns it when a record in its range failed, and it
 *                 is sticky only when intake refuses the Hello itself or answers it with a
 *                 sequence above the highest this producer sent
 *   -ETIMEDOUT    wait_acks, or (plain) a write stalled longer than io_timeout_ms;
 *                 idempotent: wait_acks when a record in its range timed out
 *   -ECONNRESET   plain: intake closed the connection
 *   -ECONNABORTED TLS: the handshake or the TLS layer failed (see TLS)
 *   other         from connect/send/recv (e.g. -ECONNREFUSED)
 * Misuse (a NULL producer, config or required pointer, a length without its bytes) returns
 * -EINVAL with the reason in `why` or last_error; the library never aborts the caller.
 *
 * ABI: C, stable within libintake.so.1 (intake/version.h). Structs the caller passes in or
 * gets filled start with `struct_bytes`: see "Structs that grow" in intake/consumer.h.
 */
#ifndef INTAKE_PRODUCER_H
#define INTAKE_PRODUCER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "intake/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever a declaration below changes incompatibly (additions do not bump it). 2: the
 * structs carry struct_bytes; TLS fields; intake_producer_send_record with headers. */
#define INTAKE_PRODUCER_API_VERSION 2

#define INTAKE_PRODUCER_MUST_CHECK __attribute__((warn_unused_result))

/* Default batch buffer, bytes (idempotent: unsent bytes gathered before a write). */
#define INTAKE_PRODUCER_BATCH_BYTES_DEFAULT (64u * 1024u)
/* Default connect and stalled-write timeout, milliseconds. */
#define INTAKE_PRODUCER_IO_TIMEOUT_MS_DEFAULT 30000
/* Longest topic, bytes of UTF-8 (as the daemon enforces). */
#define INTAKE_PRODUCER_TOPIC_BYTES_MAX 255
/* Longest producer_id, bytes (the wire's limit). */
#define INTAKE_PRODUCER_ID_BYTES_MAX 64
/* Most headers one record may carry through intake_producer_send_record. */
#define INTAKE_PRODUCER_HEADERS_MAX 1024
/* Idempotent defaults: window bytes and records, reconnect backoff, delivery timeout. */
#define INTAKE_PRODUCER_WINDOW_BYTES_DEFAULT   (4u * 1024u * 1024u)
#define INTAKE_PRODUCER_WINDOW_RECORDS_DEFAULT 16384u
/* The largest window_records (intake bounds how far a producer may run ahead, see below). */
#define INTAKE_PRODUCER_WINDOW_RECORDS_MAX (1u << 20)
/* How far the next sequence may run above the highest this producer has sent (written on a
 * connection, or below first_sequence): intake refuses a connection's first record that runs
 * more than 2^22 ahead of what it has seen of the producer, and this keeps an honest producer
 * (whose records expire unwritten while intake is unreachable) well inside that. Reached, send
 * pushes back as when the window is full. */
#define INTAKE_PRODUCER_SEQUENCE_LEAD_MAX           (1u << 21)
#define INTAKE_PRODUCER_BACKOFF_MIN_MS_DEFAULT      100u
#define INTAKE_PRODUCER_BACKOFF_MAX_MS_DEFAULT      5000u
#define INTAKE_PRODUCER_DELIVERY_TIMEOUT_MS_DEFAULT 120000u

struct intake_producer;

/* A delivery report's status: the Ack statuses of intake.proto, plus the producer's own. */
enum intake_delivery_status {
    INTAKE_DELIVERY_OK = 0,          /* committed to the topic's log (exactly once) */
    INTAKE_DELIVERY_REJECTED = 1,    /* intake refused the record; never retried */
    INTAKE_DELIVERY_INTERNAL = 4,    /* intake failed on it (a bug); never retried */
    INTAKE_DELIVERY_TIMED_OUT = 100, /* not acked within delivery_timeout_ms: unknown */
};

struct intake_producer_delivery {
    uint64_t sequence;
    const char *topic;   /* not NUL-terminated; valid only during the callback */
    size_t topic_length; /* 0 for a raw record whose topic could not be read */
    enum intake_delivery_status status;
    const char *detail; /* NUL-terminated; "" for OK; valid only during the callback */
};

typedef void (*intake_producer_delivery_callback)(void *context,
                                                  const struct intake_producer_delivery *report);

/* Zero means the default for every number. Fields from `idempotent` to `delivery_context`
 * concern idempotent mode only. Start from INTAKE_PRODUCER_CONFIG_INIT (or zero it and set
 * struct_bytes = sizeof). */
struct intake_producer_config {
    uint32_t struct_bytes;     /* sizeof(struct intake_producer_config); 0: the 1.0 layout */
    const char *address;       /* "HOST:PORT", "IPv4:PORT" or "[IPv6]:PORT" */
    uint32_t batch_bytes;      /* 0: INTAKE_PRODUCER_BATCH_BYTES_DEFAULT */
    uint32_t io_timeout_ms;    /* 0: INTAKE_PRODUCER_IO_TIMEOUT_MS_DEFAULT */
    bool acks;                 /* assign sequences 1, 2, 3, ... and accept wait_acks */
    bool idempotent;           /* exactly once, see above; implied by a producer_id */
    const void *producer_id;   /* 1..64 bytes; NULL: a random UUID string (when idempotent) */
    size_t producer_id_length; /* bytes of producer_id */
    uint64_t first_sequence;   /* 0: 1. Continue a reused producer_id's sequence (see above) */
    uint32_t window_bytes;     /* retained frame bytes; also the largest record */
    uint32_t window_records;   /* retained records */
    uint32_t reconnect_backoff_min_ms;
    uint32_t reconnect_backoff_max_ms;
    uint32_t delivery_timeout_ms;                  /* from send to ack, per record */
    bool nonblocking;                              /* a full window returns -EAGAIN at once */
    intake_producer_delivery_callback on_delivery; /* NULL: no reports */
    void *delivery_context;
    /* TLS to intaked (see "TLS" above): paths of PEM files, and a name. NULL tls_ca_file:
     * plaintext, and the other three must be NULL too. */
    const char *tls_ca_file;     /* the CA (or CAs) that signed intaked's certificate */
    const char *tls_cert_file;   /* mTLS: this producer's certificate (chain allowed) */
    const char *tls_key_file;    /* mTLS: its private key (unencrypted PEM) */
    const char *tls_server_name; /* the name verified and sent (SNI); NULL: address's host */
};
#define INTAKE_PRODUCER_CONFIG_INIT                                                                \
    { .struct_bytes = sizeof(struct intake_producer_config) }

/* Idempotent producer's counters (plain: all zero). The caller sets struct_bytes (start from
 * INTAKE_PRODUCER_STATS_INIT): with any other value the library writes nothing or only the
 * fields that value covers. */
struct intake_producer_stats {
    uint32_t struct_bytes;        /* sizeof(struct intake_producer_stats); 0: the 1.0 layout */
    uint32_t pending;             /* records retained now (sent or not, not yet acked) */
    uint64_t connections;         /* connections whose Hello was answered */
    uint64_t disconnects;         /* connections lost or dropped (any reason) */
    uint64_t resent;              /* records written again on a later connection */
    uint64_t delivered;           /* reported OK */
    uint64_t failed;              /* reported REJECTED, INTERNAL or TIMED_OUT */
    uint64_t last_hello_sequence; /* H of the latest Hello answer */
};
#define INTAKE_PRODUCER_STATS_INIT                                                                 \
    { .struct_bytes = sizeof(struct intake_producer_stats) }

/* One header of a record (Record.headers: a Header{key, value}). The key must be UTF-8. */
struct intake_producer_header {
    const void *key;
    size_t key_length;
    const void *value;
    size_t value_length;
};

/* One record for intake_producer_send_record. The caller sets struct_bytes (or starts from
 * INTAKE_PRODUCER_RECORD_INIT). */
struct intake_producer_record {
    uint32_t struct_bytes; /* sizeof(struct intake_producer_record); 0: the 1.0 layout */
    uint32_t header_count; /* entries of `headers`, at most INTAKE_PRODUCER_HEADERS_MAX */
    const char *topic;     /* NUL-terminated, 1..255 bytes of UTF-8 */
    const void *key;       /* may be NULL when key_length is 0 */
    size_t key_length;
    const void *value; /* may be NULL when value_length is 0 */
    size_t value_length;
    const struct intake_producer_header *headers;
    uint64_t timestamp_ns; /* 0: now (wall clock) */
};
#define INTAKE_PRODUCER_RECORD_INIT                                                                \
    { .struct_bytes = sizeof(struct intake_producer_record) }

/* Allocates the producer and connects. On failure *producer is NULL and `why` (if not NULL)
 * holds one line, e.g. "connect to 127.0.0.1:7000: Connection refused". Idempotent: only a bad
 * configuration or an address that does not resolve fail; connecting starts here and is
 * retried in later calls, so open succeeds while intake is down. */
INTAKE_API int intake_producer_open(const struct intake_producer_config *config,
                                    struct intake_producer **producer, char *why,
                                    size_t why_capacity) INTAKE_PRODUCER_MUST_CHECK;
/* Flushes nothing (call flush or wait_acks first), closes the socket and frees the producer.
 * Idempotent: records still pending are dropped without reports. NULL is ignored. */
INTAKE_API void intake_producer_close(struct intake_producer *producer);

/* Encodes one Record (topic: NUL-terminated, 1..255 bytes of UTF-8; key may be empty) into the
 * batch; writes the batch first if the record does not fit. timestamp_ns 0 means now (wall
 * clock). *sequence (may be NULL) receives the record's sequence: 1, 2, 3, ... with acks,
 * else 0; idempotent: first_sequence, first_sequence + 1, ... Idempotent: the record goes into
 * the window (see Pushback for -EAGAIN) and is written once batch_bytes are unsent, or on
 * flush, wait_acks or poll. */
INTAKE_API int intake_producer_send(struct intake_producer *producer, const char *topic,
                                    const void *key, size_t key_length, const void *value,
                                    size_t value_length, uint64_t timestamp_ns,
                                    uint64_t *sequence) INTAKE_PRODUCER_MUST_CHECK;
/* As intake_producer_send, with headers (Record field 6, in the order given). -EINVAL for a
 * header key that is not UTF-8 or more than INTAKE_PRODUCER_HEADERS_MAX headers. */
INTAKE_API int intake_producer_send_record(struct intake_producer *producer,
                                           const struct intake_producer_record *record,
                                           uint64_t *sequence) INTAKE_PRODUCER_MUST_CHECK;
/* Sends an already-encoded Record (without a length prefix; the library adds it) byte for byte,
 * e.g. one with unknown fields or fields in an unusual order. Its sequence is whatever field 5
 * says (the last occurrence wins; 0 when absent or unreadable), returned in *sequence (may be
 * NULL). The library does not validate it: intake does. Idempotent: the record must carry no
 * sequence (field 5) nor producer_id (field 7); the library appends both (-EINVAL otherwise),
 * and *sequence is the one it assigned. */
INTAKE_API int intake_producer_send_raw(struct intake_producer *producer, const void *record,
                                        size_t length,
                                        uint64_t *sequence) INTAKE_PRODUCER_MUST_CHECK;
/* Writes everything batched so far. Idempotent: while disconnected it returns 0 at once (the
 * records go out on the next connection, during a later call). */
INTAKE_API int intake_producer_flush(struct intake_producer *producer) INTAKE_PRODUCER_MUST_CHECK;
/* Flushes, then reads Acks until the cumulative ack reaches `sequence`: 0. -ETIMEDOUT when
 * timeout_ms passes first (a negative timeout_ms waits forever); -EPROTO on a non-OK Ack;
 * -EINVAL for a sequence not sent yet (nothing could ever ack it). Idempotent: waits until every
 * record up to `sequence` is delivered or failed, reconnecting as needed. When records up to
 * `sequence` failed that no earlier wait_acks returned, it returns the earliest one's error
 * (-EPROTO for REJECTED/INTERNAL, -ETIMEDOUT for a delivery timeout) and last_error names it
 * and counts the others ("record 51 failed: REJECTED: ... (and 1 more failed)"); those
 * failures are then returned; a later wait returns 0 for them. */
INTAKE_API int intake_producer_wait_acks(struct intake_producer *producer, uint64_t sequence,
                                         int timeout_ms) INTAKE_PRODUCER_MUST_CHECK;

/* Idempotent: services the connection (writes, reads acks, reconnects, makes reports) until at
 * least one report is made or timeout_ms passes (0: one pass without waiting). Returns the
 * number of reports made (0 or more) or a sticky error. Plain: flushes and returns 0. */
INTAKE_API int intake_producer_poll(struct intake_producer *producer,
                                    int timeout_ms) INTAKE_PRODUCER_MUST_CHECK;

/* Highest sequence intake has acknowledged so far. Idempotent: every record up to it is
 * finished (delivered, or failed and reported). 0 for a NULL producer. */
INTAKE_API uint64_t intake_producer_acked(const struct intake_producer *producer);
/* Highest sequence sent so far (by send or send_raw); 0 when none. */
INTAKE_API uint64_t intake_producer_last_sequence(const struct intake_producer *producer);
/* Idempotent: the producer's id (not NUL-terminated) and its length in *length. */
INTAKE_API const void *intake_producer_id(const struct intake_producer *producer, size_t *length);
/* Idempotent: counters and the number of pending records, up to stats->struct_bytes (set it). */
INTAKE_API void intake_producer_stats(const struct intake_producer *producer,
                                      struct intake_producer_stats *stats);
/* One line describing the last error; "" when none. Valid until the next call. Idempotent:
 * also the latest connection problem (retried, not returned). */
INTAKE_API const char *intake_producer_last_error(const struct intake_producer *producer);

#ifdef __cplusplus
}
#endif

#endif
