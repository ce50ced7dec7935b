/*
 * tls_record.h: the TLS 1.3 record layer of one connection once its handshake is done
 * (RFC 8446 §5): records received are opened where they lie, records intake sends are sealed.
 *
 * Pure code over bytes, like src/wire: no system calls, no threads, no allocation except the
 * two AEAD contexts a session creates when it is initialised (once per connection, on the
 * handshake thread) and, on a key update, the KDF context of one derivation. The cryptography is
 * OpenSSL's EVP: the AEADs (AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305) and HKDF-Expand-Label
 * (EVP_KDF "TLS13-KDF"). Nothing here implements a cipher, and nothing here is TLS beyond the
 * record layer: the handshake is OpenSSL's (src/handshake).
 *
 * Opening. A received record (header, ciphertext, tag) may lie in several segments (receive
 * buffers or zcrx fragments that are not contiguous). tls_record_open decrypts the ciphertext in
 * place, segment by segment, verifies the tag, and only then says what the record held: the
 * caller frames plaintext only after the tag verified, never before. The 5-byte header and the
 * 16-byte tag are gathered into small buffers when they straddle segments; payload bytes are
 * never copied. The inner content type and the zero padding are stripped by length: the
 * plaintext is the `plaintext_bytes` bytes right after the header, where they lie.
 *
 * Rules enforced (each answered with the alert RFC 8446 names, and the record's connection
 * ends; nothing else is affected):
 *   - after the handshake every record has outer type application_data; change_cipher_spec,
 *     plaintext alerts or handshake records are unexpected_message;
 *   - a length above 2^14 + 256, or an inner plaintext above 2^14 + 1 (content and type), is
 *     record_overflow; a record too short to hold a tag, or one whose tag does not verify, is
 *     bad_record_mac; a record with no non-zero byte (no content type) is unexpected_message;
 *   - the nonce is the IV XOR the 64-bit sequence number of the record under its key
 *     (per direction, starting at 0, reset by each key update, never wrapped);
 *   - handshake content after the handshake must be exactly one KeyUpdate (RFC 8446 §4.6.3)
 *     ending at the record's end: any other handshake message is unexpected_message, a
 *     malformed one decode_error or illegal_parameter. Post-handshake handshake messages split
 *     across records are refused (unexpected_message): no TLS stack splits a 5-byte KeyUpdate;
 *   - alert content is exactly two bytes: close_notify ends input in order (like end of
 *     stream); any other alert ends the connection and nothing more is sent.
 *
 * Key updates. A peer's KeyUpdate moves the read key to the next traffic secret. When it asks
 * for an update (update_requested), or when our write key has sealed records_per_key_max records
 * (the AEAD's limit, RFC 8446 §5.5), we owe a KeyUpdate: it is sealed before our next record and
 * the write key moves on after it. When the peer's read key has opened records_per_key_max
 * records, our next KeyUpdate asks the peer to update too.
 *
 * Thread: one session belongs to one thread at a time (the handshake thread initialises it, the
 * reactor that owns the connection uses it after the hand-off).
 */
#ifndef INTAKE_TLS_RECORD_H
#define INTAKE_TLS_RECORD_H

#include <stdbool.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "common.h"

#define TLS_RECORD_HEADER_BYTES 5
/* Most content one record carries (2^14), and its ciphertext length bound (2^14 + 256). */
#define TLS_PLAINTEXT_BYTES_MAX  16384u
#define TLS_CIPHERTEXT_BYTES_MAX (16384u + 256u)
#define TLS_RECORD_BYTES_MAX     (TLS_RECORD_HEADER_BYTES + TLS_CIPHERTEXT_BYTES_MAX)
#define TLS_TAG_BYTES            16u
#define TLS_IV_BYTES             12u
#define TLS_KEY_BYTES_MAX        32u
#define TLS_SECRET_BYTES_MAX     48u /* SHA-384 */
/* What sealing adds to a record's content: header, inner content type, tag. */
#define TLS_RECORD_OVERHEAD_BYTES (TLS_RECORD_HEADER_BYTES + 1u + TLS_TAG_BYTES)
/* A sealed KeyUpdate record (handshake header 4 bytes, request 1 byte) and a sealed alert. */
#define TLS_KEY_UPDATE_RECORD_BYTES (TLS_RECORD_OVERHEAD_BYTES + 5u)
#define TLS_ALERT_RECORD_BYTES      (TLS_RECORD_OVERHEAD_BYTES + 2u)
/* Segments one record may lie in; a record in more is the caller's limit to answer. */
#define TLS_SEGMENTS_MAX 64u
/* Records under one key before we update it: AES-GCM's limit is 2^24.5 full-size records
 * (RFC 8446 §5.5); ChaCha20-Poly1305's is beyond any connection's life, so only the 64-bit
 * sequence bounds it (kept far from wrapping). */
#define TLS_GCM_RECORDS_PER_KEY_MAX    (1ull << 24)
#define TLS_CHACHA_RECORDS_PER_KEY_MAX (1ull << 62)

enum tls_content_type {
    TLS_CONTENT_CHANGE_CIPHER_SPEC = 20,
    TLS_CONTENT_ALERT = 21,
    TLS_CONTENT_HANDSHAKE = 22,
    TLS_CONTENT_APPLICATION_DATA = 23,
};

/* The alerts this layer sends or names (RFC 8446 §6). */
enum tls_alert {
    TLS_ALERT_CLOSE_NOTIFY = 0,
    TLS_ALERT_UNEXPECTED_MESSAGE = 10,
    TLS_ALERT_BAD_RECORD_MAC = 20,
    TLS_ALERT_RECORD_OVERFLOW = 22,
    TLS_ALERT_ILLEGAL_PARAMETER = 47,
    TLS_ALERT_DECODE_ERROR = 50,
    TLS_ALERT_INTERNAL_ERROR = 80,
};

/* The cipher suites intake offers (their IANA values). */
enum tls_cipher_suite {
    TLS_SUITE_AES_128_GCM_SHA256 = 0x1301,
    TLS_SUITE_AES_256_GCM_SHA384 = 0x1302,
    TLS_SUITE_CHACHA20_POLY1305_SHA256 = 0x1303,
};

/* One direction's key state. */
struct tls_direction {
    EVP_CIPHER_CTX *aead; /* keyed with this direction's current key */
    uint8_t secret[TLS_SECRET_BYTES_MAX];
    uint8_t iv[TLS_IV_BYTES];
    uint64_t sequence;    /* the next record's number under the current key */
    uint64_t key_updates; /* times this direction's key moved on */
};

struct tls_session {
    uint16_t cipher_suite; /* enum tls_cipher_suite */
    uint8_t secret_bytes;  /* the suite's hash length: 32 or 48 */
    uint8_t key_bytes;     /* 16 or 32 */
    const EVP_CIPHER *cipher;
    const EVP_MD *digest;
    struct tls_direction read;
    struct tls_direction write;
    uint64_t records_per_key_max;
    bool key_update_owed;     /* seal a KeyUpdate before our next record */
    bool update_request_owed; /* and ask the peer to update (its key reached the limit) */
    bool update_requested;    /* asked since the peer's last KeyUpdate: do not ask again */
    uint64_t records_opened;  /* application data records opened (counters) */
};

/* One contiguous, writable piece of received memory. */
struct tls_segment {
    uint8_t *bytes;
    uint32_t length;
};

/* What tls_record_header says about the next record. */
enum tls_header_result {
    TLS_HEADER_OK = 0,  /* *record_bytes (header included) is what to wait for */
    TLS_HEADER_BAD = 1, /* *alert says why; the connection ends */
};

enum tls_open_result {
    TLS_OPEN_DATA = 0,         /* application data: plaintext_bytes bytes after the header */
    TLS_OPEN_KEY_UPDATE = 1,   /* the peer's key moved on (and maybe owes us an update) */
    TLS_OPEN_CLOSE_NOTIFY = 2, /* the peer's input ends here, in order */
    TLS_OPEN_PEER_ALERT = 3,   /* the peer sent an error alert (`alert`): end, send nothing */
    TLS_OPEN_BAD_TAG = 4,      /* authentication failed: answer bad_record_mac */
    TLS_OPEN_FAILED = 5,       /* another violation: answer `alert` */
};

struct tls_opened {
    uint32_t plaintext_bytes; /* TLS_OPEN_DATA: 0..2^14 */
    uint8_t alert;            /* enum tls_alert (the peer's, or the one to send) */
};

/* Initialises a session for `cipher_suite` from the two traffic secrets (secret_bytes each):
 * the daemon reads with the client's and writes with the server's; a test client the reverse.
 * `records_per_key_max` 0 takes the suite's limit. Returns 0, -EINVAL for a suite intake does
 * not offer or a wrong secret length, -ENOMEM or -EIO when OpenSSL fails. */
int tls_session_init(struct tls_session *session, uint16_t cipher_suite, const uint8_t *read_secret,
                     const uint8_t *write_secret, uint32_t secret_bytes,
                     uint64_t records_per_key_max) INTAKE_MUST_CHECK;
void tls_session_destroy(struct tls_session *session);

/* The suite's hash length (32 or 48), or 0 for a suite intake does not offer. */
uint32_t tls_suite_secret_bytes(uint16_t cipher_suite);
/* The suite's name ("TLS_AES_128_GCM_SHA256"...), or "unknown". */
const char *tls_suite_name(uint16_t cipher_suite);

/* Checks the 5-byte header of the next received record; sets *record_bytes to the whole
 * record's size (5 + length). */
enum tls_header_result tls_record_header(const uint8_t header[TLS_RECORD_HEADER_BYTES],
                                         uint32_t *record_bytes, uint8_t *alert);

/* Opens one whole record that lies in `segments` (their lengths add up to exactly the record's
 * size from tls_record_header, 1..TLS_SEGMENTS_MAX of them): decrypts it in place and verifies
 * it. On TLS_OPEN_DATA the content is the plaintext_bytes bytes that follow the header. */
enum tls_open_result tls_record_open(struct tls_session *session,
                                     const struct tls_segment *segments, uint32_t segment_count,
                                     struct tls_opened *out);

/* Whether a KeyUpdate is owed (the caller sends one even with nothing else to send). */
bool tls_session_owes_record(const struct tls_session *session);

/* Sealing: each writes whole records at `out` (`capacity` bytes) and returns their length.
 * Every one first seals the KeyUpdate owed, if any (and moves the write key on after it).
 * The capacity must hold what is written: TLS_KEY_UPDATE_RECORD_BYTES plus the record (asserted;
 * callers size their buffers from these constants). Returns 0 only when OpenSSL fails. */
uint32_t tls_record_seal(struct tls_session *session, uint8_t content_type, const uint8_t *content,
                         uint32_t content_bytes, uint8_t *out, uint32_t capacity) INTAKE_MUST_CHECK;
uint32_t tls_record_seal_alert(struct tls_session *session, uint8_t alert, uint8_t *out,
                               uint32_t capacity) INTAKE_MUST_CHECK;
/* Only the owed KeyUpdate (0 bytes when none is owed). */
uint32_t tls_record_seal_owed(struct tls_session *session, uint8_t *out,
                              uint32_t capacity) INTAKE_MUST_CHECK;

/* HKDF-Expand-Label(secret, label, "", out_bytes) with the suite's hash (RFC 8446 §7.1).
 * Returns 0, or -EIO when OpenSSL fails. Exposed for tests. */
int tls_expand_label(const EVP_MD *digest, const uint8_t *secret, uint32_t secret_bytes,
                     const char *label, uint8_t *out, uint32_t out_bytes) INTAKE_MUST_CHECK;

#endif
