/*
 * tls_record.c: the TLS 1.3 record layer (see tls_record.h). Runs on whichever thread owns the
 * session; owns nothing but the session's two AEAD contexts.
 *
 * A record is addressed by its position from the first byte of its header across the caller's
 * segments. Opening walks the segments three times at most: once to feed the ciphertext to the
 * AEAD in place, once backwards over the (usually absent) zero padding to find the content type,
 * and, for the few bytes of an alert or KeyUpdate, a gather.
 */
#include "tls_record.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/kdf.h>

/* RFC 8446 §4.6.3: HandshakeType key_update, and its one-byte body. */
#define TLS_HANDSHAKE_KEY_UPDATE   24u
#define TLS_KEY_UPDATE_BODY_BYTES  1u
#define TLS_HANDSHAKE_HEADER_BYTES 4u
#define TLS_ALERT_LEVEL_WARNING    1u
#define TLS_ALERT_LEVEL_FATAL      2u
/* legacy_record_version of every TLS 1.3 record after the ClientHello. */
#define TLS_LEGACY_VERSION 0x0303u

/* ------------------------------------------------------------------ key schedule --- */

static EVP_KDF *tls_kdf;
static pthread_once_t tls_kdf_once = PTHREAD_ONCE_INIT;

/* Fetched once per process: a fetch takes the provider store's lock. */
static void tls_kdf_fetch(void) {
    tls_kdf = EVP_KDF_fetch(NULL, "TLS13-KDF", NULL);
}

int tls_expand_label(const EVP_MD *digest, const uint8_t *secret, uint32_t secret_bytes,
                     const char *label, uint8_t *out, uint32_t out_bytes) {
    INTAKE_ASSERT(digest != NULL && secret != NULL && label != NULL && out != NULL);
    INTAKE_ASSERT(secret_bytes <= TLS_SECRET_BYTES_MAX && out_bytes <= TLS_SECRET_BYTES_MAX);
    pthread_once(&tls_kdf_once, tls_kdf_fetch);
    if (tls_kdf == NULL) return -EIO;
    EVP_KDF_CTX *context = EVP_KDF_CTX_new(tls_kdf);
    if (context == NULL) return -ENOMEM;
    int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
    static const char prefix[] = "tls13 ";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)EVP_MD_get0_name(digest),
                                         0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, secret_bytes),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PREFIX, (void *)prefix,
                                          sizeof(prefix) - 1),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_LABEL, (void *)label, strlen(label)),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_DATA, (void *)"", 0),
        OSSL_PARAM_construct_end(),
    };
    int derived = EVP_KDF_derive(context, out, out_bytes, params);
    EVP_KDF_CTX_free(context);
    return derived == 1 ? 0 : -EIO;
}

/* Keys the direction's AEAD from its current secret (a new key, sequence 0). */
static int tls_direction_key(const struct tls_session *session, struct tls_direction *direction,
                             int encrypt) {
    uint8_t key[TLS_KEY_BYTES_MAX];
    int result = tls_expand_label(session->digest, direction->secret, session->secret_bytes, "key",
                                  key, session->key_bytes);
    if (result == 0)
        result = tls_expand_label(session->digest, direction->secret, session->secret_bytes, "iv",
                                  direction->iv, TLS_IV_BYTES);
    if (result == 0 &&
        EVP_CipherInit_ex(direction->aead, session->cipher, NULL, key, NULL, encrypt) != 1)
        result = -EIO;
    OPENSSL_cleanse(key, sizeof(key));
    direction->sequence = 0;
    return result;
}

/* The next traffic secret (RFC 8446 §7.2), then the key and IV from it. */
static int tls_direction_update(const struct tls_session *session, struct tls_direction *direction,
                                int encrypt) {
    uint8_t next[TLS_SECRET_BYTES_MAX];
    int result = tls_expand_label(session->digest, direction->secret, session->secret_bytes,
                                  "traffic upd", next, session->secret_bytes);
    if (result < 0) return result;
    memcpy(direction->secret, next, session->secret_bytes);
    OPENSSL_cleanse(next, sizeof(next));
    direction->key_updates++;
    return tls_direction_key(session, direction, encrypt);
}

uint32_t tls_suite_secret_bytes(uint16_t cipher_suite) {
    switch (cipher_suite) {
    case TLS_SUITE_AES_128_GCM_SHA256:
    case TLS_SUITE_CHACHA20_POLY1305_SHA256: return 32;
    case TLS_SUITE_AES_256_GCM_SHA384: return 48;
    }
    return 0;
}

const char *tls_suite_name(uint16_t cipher_suite) {
    switch (cipher_suite) {
    case TLS_SUITE_AES_128_GCM_SHA256: return "TLS_AES_128_GCM_SHA256";
    case TLS_SUITE_AES_256_GCM_SHA384: return "TLS_AES_256_GCM_SHA384";
    case TLS_SUITE_CHACHA20_POLY1305_SHA256: return "TLS_CHACHA20_POLY1305_SHA256";
    }
    return "unknown";
}

int tls_session_init(struct tls_session *session, uint16_t cipher_suite, const uint8_t *read_secret,
                     const uint8_t *write_secret, uint32_t secret_bytes,
                     uint64_t records_per_key_max) {
    INTAKE_ASSERT(session != NULL && read_secret != NULL && write_secret != NULL);
    memset(session, 0, sizeof(*session));
    if (secret_bytes == 0 || secret_bytes != tls_suite_secret_bytes(cipher_suite)) return -EINVAL;
    session->cipher_suite = cipher_suite;
    session->secret_bytes = (uint8_t)secret_bytes;
    uint64_t suite_limit = TLS_GCM_RECORDS_PER_KEY_MAX;
    switch (cipher_suite) {
    case TLS_SUITE_AES_128_GCM_SHA256:
        session->cipher = EVP_aes_128_gcm();
        session->digest = EVP_sha256();
        session->key_bytes = 16;
        break;
    case TLS_SUITE_AES_256_GCM_SHA384:
        session->cipher = EVP_aes_256_gcm();
        session->digest = EVP_sha384();
        session->key_bytes = 32;
        break;
    default:
        session->cipher = EVP_chacha20_poly1305();
        session->digest = EVP_sha256();
        session->key_bytes = 32;
        suite_limit = TLS_CHACHA_RECORDS_PER_KEY_MAX;
        break;
    }
    session->records_per_key_max = records_per_key_max != 0 && records_per_key_max < suite_limit
                                       ? records_per_key_max
                                       : suite_limit;
    memcpy(session->read.secret, read_secret, secret_bytes);
    memcpy(session->write.secret, write_secret, secret_bytes);
    session->read.aead = EVP_CIPHER_CTX_new();
    session->write.aead = EVP_CIPHER_CTX_new();
    int result = session->read.aead && session->write.aead ? 0 : -ENOMEM;
    if (result == 0) result = tls_direction_key(session, &session->read, 0);
    if (result == 0) result = tls_direction_key(session, &session->write, 1);
    if (result < 0) tls_session_destroy(session);
    return result;
}

void tls_session_destroy(struct tls_session *session) {
    if (session == NULL) return;
    EVP_CIPHER_CTX_free(session->read.aead);
    EVP_CIPHER_CTX_free(session->write.aead);
    /* Zeroes the secrets too (OPENSSL_cleanse is a memset the compiler cannot drop). */
    OPENSSL_cleanse(session, sizeof(*session));
}

bool tls_session_owes_record(const struct tls_session *session) {
    return session->key_update_owed;
}

/* The per-record nonce: the IV XOR the sequence number, left-padded to the IV's length. */
static void tls_nonce(const struct tls_direction *direction, uint8_t nonce[TLS_IV_BYTES]) {
    memcpy(nonce, direction->iv, TLS_IV_BYTES);
    for (uint32_t index = 0; index < 8; index++)
        nonce[TLS_IV_BYTES - 1 - index] ^= (uint8_t)(direction->sequence >> (8 * index));
}

/* ---------------------------------------------------------------------- opening --- */

enum tls_header_result tls_record_header(const uint8_t header[TLS_RECORD_HEADER_BYTES],
                                         uint32_t *record_bytes, uint8_t *alert) {
    INTAKE_ASSERT(header != NULL && record_bytes != NULL && alert != NULL);
    uint32_t length = ((uint32_t)header[3] << 8) | header[4];
    *record_bytes = TLS_RECORD_HEADER_BYTES + length;
    /* The version is not checked here: it is part of the additional data, so a record whose
     * header was altered fails its tag. */
    if (header[0] != TLS_CONTENT_APPLICATION_DATA) {
        *alert = TLS_ALERT_UNEXPECTED_MESSAGE;
        return TLS_HEADER_BAD;
    }
    if (length > TLS_CIPHERTEXT_BYTES_MAX) {
        *alert = TLS_ALERT_RECORD_OVERFLOW;
        return TLS_HEADER_BAD;
    }
    if (length <= TLS_TAG_BYTES) {
        /* No room for a tag and a content type: nothing in it could be authentic. */
        *alert = length == TLS_TAG_BYTES ? TLS_ALERT_UNEXPECTED_MESSAGE : TLS_ALERT_BAD_RECORD_MAC;
        return TLS_HEADER_BAD;
    }
    return TLS_HEADER_OK;
}

/* Copies `count` bytes at record position `position` out of the segments. */
static void tls_gather(const struct tls_segment *segments, uint32_t segment_count,
                       uint32_t position, uint8_t *out, uint32_t count) {
    for (uint32_t index = 0; index < segment_count && count > 0; index++) {
        uint32_t length = segments[index].length;
        if (position >= length) {
            position -= length;
            continue;
        }
        uint32_t step = length - position < count ? length - position : count;
        memcpy(out, segments[index].bytes + position, step);
        out += step;
        count -= step;
        position = 0;
    }
    INTAKE_ASSERT(count == 0);
}

/* Feeds record positions [start, end) to the AEAD, decrypting in place. */
static bool tls_decrypt_span(EVP_CIPHER_CTX *aead, const struct tls_segment *segments,
                             uint32_t segment_count, uint32_t start, uint32_t end) {
    uint32_t segment_start = 0;
    for (uint32_t index = 0; index < segment_count && start < end; index++) {
        uint32_t length = segments[index].length;
        uint32_t segment_end = segment_start + length;
        if (start < segment_end) {
            uint32_t stop = end < segment_end ? end : segment_end;
            uint8_t *bytes = segments[index].bytes + (start - segment_start);
            int produced = 0;
            if (EVP_DecryptUpdate(aead, bytes, &produced, bytes, (int)(stop - start)) != 1)
                return false;
            /* Both AEADs are stream modes: what goes in comes out, in place. */
            INTAKE_ASSERT(produced == (int)(stop - start));
            start = stop;
        }
        segment_start = segment_end;
    }
    INTAKE_ASSERT(start == end);
    return true;
}

/* The position of the last non-zero byte in [start, end), or UINT32_MAX: the content type
 * that ends TLSInnerPlaintext, after which only zero padding may follow. */
static uint32_t tls_find_content_type(const struct tls_segment *segments, uint32_t segment_count,
                                      uint32_t start, uint32_t end) {
    uint32_t segment_end = 0;
    for (uint32_t index = 0; index < segment_count; index++) segment_end += segments[index].length;
    for (uint32_t index = segment_count; index-- > 0 && end > start;) {
        uint32_t segment_start = segment_end - segments[index].length;
        while (end > start && end > segment_start) {
            if (segments[index].bytes[end - 1 - segment_start] != 0) return end - 1;
            end--;
        }
        segment_end = segment_start;
    }
    return UINT32_MAX;
}

/* Decrypts the record in place and checks its tag. */
static bool tls_record_decrypt(struct tls_session *session, const struct tls_segment *segments,
                               uint32_t segment_count, uint32_t record_bytes) {
    struct tls_direction *read = &session->read;
    uint8_t header[TLS_RECORD_HEADER_BYTES];
    uint8_t tag[TLS_TAG_BYTES];
    uint8_t nonce[TLS_IV_BYTES];
    uint32_t tag_start = record_bytes - TLS_TAG_BYTES;
    tls_gather(segments, segment_count, 0, header, sizeof(header));
    tls_gather(segments, segment_count, tag_start, tag, sizeof(tag));
    tls_nonce(read, nonce);
    int ignored = 0;
    if (EVP_DecryptInit_ex(read->aead, NULL, NULL, NULL, nonce) != 1) return false;
    if (EVP_DecryptUpdate(read->aead, NULL, &ignored, header, sizeof(header)) != 1) return false;
    if (!tls_decrypt_span(read->aead, segments, segment_count, TLS_RECORD_HEADER_BYTES, tag_start))
        return false;
    if (EVP_CIPHER_CTX_ctrl(read->aead, EVP_CTRL_AEAD_SET_TAG, TLS_TAG_BYTES, tag) != 1)
        return false;
    return EVP_DecryptFinal_ex(read->aead, tag, &ignored) == 1;
}

static enum tls_open_result tls_open_fail(struct tls_opened *out, uint8_t alert) {
    out->alert = alert;
    return TLS_OPEN_FAILED;
}

/* Handshake content after the handshake: exactly one whole KeyUpdate. */
static enum tls_open_result tls_open_key_update(struct tls_session *session, const uint8_t *content,
                                                uint32_t content_bytes, struct tls_opened *out) {
    if (content_bytes < TLS_HANDSHAKE_HEADER_BYTES || content[0] != TLS_HANDSHAKE_KEY_UPDATE)
        return tls_open_fail(out, TLS_ALERT_UNEXPECTED_MESSAGE);
    uint32_t body_bytes = ((uint32_t)content[1] << 16) | ((uint32_t)content[2] << 8) | content[3];
    if (body_bytes != TLS_KEY_UPDATE_BODY_BYTES) return tls_open_fail(out, TLS_ALERT_DECODE_ERROR);
    /* Split across records, or followed by more in this record (a key change must end at a
     * record boundary, RFC 8446 §5.1). */
    if (content_bytes != TLS_HANDSHAKE_HEADER_BYTES + TLS_KEY_UPDATE_BODY_BYTES)
        return tls_open_fail(out, TLS_ALERT_UNEXPECTED_MESSAGE);
    uint8_t request = content[4];
    if (request > 1) return tls_open_fail(out, TLS_ALERT_ILLEGAL_PARAMETER);
    if (tls_direction_update(session, &session->read, 0) < 0)
        return tls_open_fail(out, TLS_ALERT_INTERNAL_ERROR);
    session->update_requested = false;
    /* update_requested: our own KeyUpdate goes before our next record (RFC 8446 §4.6.3). */
    if (request == 1) session->key_update_owed = true;
    return TLS_OPEN_KEY_UPDATE;
}

static enum tls_open_result tls_open_alert(const uint8_t *content, uint32_t content_bytes,
                                           struct tls_opened *out) {
    if (content_bytes != 2) return tls_open_fail(out, TLS_ALERT_DECODE_ERROR);
    out->alert = content[1];
    return content[1] == TLS_ALERT_CLOSE_NOTIFY ? TLS_OPEN_CLOSE_NOTIFY : TLS_OPEN_PEER_ALERT;
}

/* After the tag verified: what the record held. */
static enum tls_open_result tls_open_content(struct tls_session *session,
                                             const struct tls_segment *segments,
                                             uint32_t segment_count, uint32_t record_bytes,
                                             struct tls_opened *out) {
    uint32_t content_end = record_bytes - TLS_TAG_BYTES;
    /* TLSInnerPlaintext (content, type, padding) holds at most 2^14 + 1 bytes. */
    if (content_end - TLS_RECORD_HEADER_BYTES > TLS_PLAINTEXT_BYTES_MAX + 1)
        return tls_open_fail(out, TLS_ALERT_RECORD_OVERFLOW);
    uint32_t type_position =
        tls_find_content_type(segments, segment_count, TLS_RECORD_HEADER_BYTES, content_end);
    if (type_position == UINT32_MAX) return tls_open_fail(out, TLS_ALERT_UNEXPECTED_MESSAGE);
    uint8_t type = 0;
    tls_gather(segments, segment_count, type_position, &type, 1);
    uint32_t content_bytes = type_position - TLS_RECORD_HEADER_BYTES;
    if (type == TLS_CONTENT_APPLICATION_DATA) {
        out->plaintext_bytes = content_bytes;
        session->records_opened++;
        return TLS_OPEN_DATA;
    }
    /* change_cipher_spec after the handshake, heartbeat, a type that does not exist, or empty
     * alert or handshake content (RFC 8446 §5.1 forbids it). */
    if ((type != TLS_CONTENT_ALERT && type != TLS_CONTENT_HANDSHAKE) || content_bytes == 0)
        return tls_open_fail(out, TLS_ALERT_UNEXPECTED_MESSAGE);
    /* An alert is 2 bytes and a KeyUpdate 5: a few more are enough to tell what is wrong. */
    uint8_t content[TLS_HANDSHAKE_HEADER_BYTES + TLS_KEY_UPDATE_BODY_BYTES + 1];
    uint32_t gathered = content_bytes < sizeof(content) ? content_bytes : sizeof(content);
    tls_gather(segments, segment_count, TLS_RECORD_HEADER_BYTES, content, gathered);
    if (type == TLS_CONTENT_ALERT) return tls_open_alert(content, content_bytes, out);
    return tls_open_key_update(session, content, content_bytes, out);
}

enum tls_open_result tls_record_open(struct tls_session *session,
                                     const struct tls_segment *segments, uint32_t segment_count,
                                     struct tls_opened *out) {
    INTAKE_ASSERT(session != NULL && segments != NULL && out != NULL);
    INTAKE_ASSERT(segment_count > 0 && segment_count <= TLS_SEGMENTS_MAX);
    out->plaintext_bytes = 0;
    out->alert = TLS_ALERT_CLOSE_NOTIFY;
    uint32_t record_bytes = 0;
    for (uint32_t index = 0; index < segment_count; index++) record_bytes += segments[index].length;
    uint8_t header[TLS_RECORD_HEADER_BYTES];
    INTAKE_ASSERT(record_bytes >= TLS_RECORD_HEADER_BYTES);
    tls_gather(segments, segment_count, 0, header, sizeof(header));
    uint32_t expected = 0;
    uint8_t alert = 0;
    if (tls_record_header(header, &expected, &alert) != TLS_HEADER_OK)
        return tls_open_fail(out, alert);
    INTAKE_ASSERT(expected == record_bytes);
    /* A sequence number is never reused or wrapped (RFC 8446 §5.3). */
    if (session->read.sequence == UINT64_MAX) return tls_open_fail(out, TLS_ALERT_INTERNAL_ERROR);
    if (!tls_record_decrypt(session, segments, segment_count, record_bytes)) {
        out->alert = TLS_ALERT_BAD_RECORD_MAC;
        return TLS_OPEN_BAD_TAG;
    }
    session->read.sequence++;
    if (session->read.sequence >= session->records_per_key_max && !session->update_requested) {
        /* The peer's key reached its limit: our next KeyUpdate asks for a new one. */
        session->update_requested = true;
        session->update_request_owed = true;
        session->key_update_owed = true;
    }
    return tls_open_content(session, segments, segment_count, record_bytes, out);
}

/* ---------------------------------------------------------------------- sealing --- */

/* Seals one record at `out`: header, content (copied), content type, tag. */
static uint32_t tls_seal_one(struct tls_session *session, uint8_t content_type,
                             const uint8_t *content, uint32_t content_bytes, uint8_t *out,
                             uint32_t capacity) {
    struct tls_direction *write = &session->write;
    INTAKE_ASSERT(content_bytes <= TLS_PLAINTEXT_BYTES_MAX);
    uint32_t record_bytes = content_bytes + TLS_RECORD_OVERHEAD_BYTES;
    INTAKE_ASSERT(record_bytes <= capacity);
    /* Our write key is updated well before its limit, so the sequence never nears wrapping. */
    INTAKE_ASSERT(write->sequence < UINT64_MAX);
    uint32_t length = record_bytes - TLS_RECORD_HEADER_BYTES;
    out[0] = TLS_CONTENT_APPLICATION_DATA;
    out[1] = (uint8_t)(TLS_LEGACY_VERSION >> 8);
    out[2] = (uint8_t)TLS_LEGACY_VERSION;
    out[3] = (uint8_t)(length >> 8);
    out[4] = (uint8_t)length;
    uint8_t *inner = out + TLS_RECORD_HEADER_BYTES;
    if (content_bytes > 0) memmove(inner, content, content_bytes);
    inner[content_bytes] = content_type;
    uint8_t nonce[TLS_IV_BYTES];
    tls_nonce(write, nonce);
    int produced = 0;
    int ignored = 0;
    if (EVP_EncryptInit_ex(write->aead, NULL, NULL, NULL, nonce) != 1 ||
        EVP_EncryptUpdate(write->aead, NULL, &ignored, out, TLS_RECORD_HEADER_BYTES) != 1 ||
        EVP_EncryptUpdate(write->aead, inner, &produced, inner, (int)content_bytes + 1) != 1 ||
        EVP_EncryptFinal_ex(write->aead, inner + content_bytes + 1, &ignored) != 1 ||
        EVP_CIPHER_CTX_ctrl(write->aead, EVP_CTRL_AEAD_GET_TAG, TLS_TAG_BYTES,
                            inner + content_bytes + 1) != 1)
        return 0;
    INTAKE_ASSERT(produced == (int)content_bytes + 1);
    write->sequence++;
    return record_bytes;
}

/* The KeyUpdate owed, if any (our write key moves on after it), or one the write key's limit
 * calls for before the next record. */
static uint32_t tls_seal_key_update(struct tls_session *session, uint8_t *out, uint32_t capacity) {
    if (session->write.sequence >= session->records_per_key_max) session->key_update_owed = true;
    if (!session->key_update_owed) return 0;
    uint8_t message[TLS_HANDSHAKE_HEADER_BYTES + TLS_KEY_UPDATE_BODY_BYTES] = {
        TLS_HANDSHAKE_KEY_UPDATE, 0, 0, TLS_KEY_UPDATE_BODY_BYTES,
        session->update_request_owed ? 1 : 0};
    uint32_t written =
        tls_seal_one(session, TLS_CONTENT_HANDSHAKE, message, sizeof(message), out, capacity);
    if (written == 0) return 0;
    if (tls_direction_update(session, &session->write, 1) < 0) return 0;
    session->key_update_owed = false;
    session->update_request_owed = false;
    return written;
}

uint32_t tls_record_seal_owed(struct tls_session *session, uint8_t *out, uint32_t capacity) {
    INTAKE_ASSERT(session != NULL && out != NULL);
    return tls_seal_key_update(session, out, capacity);
}

uint32_t tls_record_seal(struct tls_session *session, uint8_t content_type, const uint8_t *content,
                         uint32_t content_bytes, uint8_t *out, uint32_t capacity) {
    INTAKE_ASSERT(session != NULL && out != NULL);
    INTAKE_ASSERT(content != NULL || content_bytes == 0);
    bool owed = session->key_update_owed || session->write.sequence >= session->records_per_key_max;
    uint32_t key_update = tls_seal_key_update(session, out, capacity);
    if (owed && key_update == 0) return 0;
    uint32_t record = tls_seal_one(session, content_type, content, content_bytes, out + key_update,
                                   capacity - key_update);
    return record == 0 ? 0 : key_update + record;
}

uint32_t tls_record_seal_alert(struct tls_session *session, uint8_t alert, uint8_t *out,
                               uint32_t capacity) {
    /* close_notify is a warning; every other alert intake sends ends the connection. */
    uint8_t content[2] = {
        alert == TLS_ALERT_CLOSE_NOTIFY ? TLS_ALERT_LEVEL_WARNING : TLS_ALERT_LEVEL_FATAL, alert};
    return tls_record_seal(session, TLS_CONTENT_ALERT, content, sizeof(content), out, capacity);
}
