/*
 * test_tls_record: intake's TLS 1.3 record layer (src/tls/tls_record.c) against OpenSSL, a TLS
 * stack we did not write.
 *
 * Every session comes from a real handshake: an OpenSSL client against intake's own handshake
 * code (handshake_run_job, what a handshake thread runs), in memory. Then, for each of the three
 * suites:
 *   - records the OpenSSL client wrote (1 byte to 40000 bytes, so 2^14-byte records too) are
 *     split into up to 64 separately allocated segments at random points (headers and tags
 *     straddle them) and opened in place: the plaintext is exactly what the client wrote;
 *   - records intake seals are read by the OpenSSL client;
 *   - KeyUpdate in both directions: the client's (requested or not) moves our read key, and a
 *     request makes our next record carry our own KeyUpdate, which the client follows; with a
 *     limit of 3 records per key we update our write key by ourselves and ask the client to
 *     update its own, which it does;
 *   - a flipped bit in the header, the body or the tag fails authentication (and leaves the
 *     session usable for the unmodified record: the sequence does not move);
 *   - close_notify, and an alert intake sends that the client reports;
 *   - records sealed by this test's own EVP code (independent of tls_record.c's sealing) that
 *     break the rules: change_cipher_spec and other content types, handshake messages other than
 *     KeyUpdate, malformed KeyUpdates, wrong alerts, padding, no content type, 2^14 + 1 bytes
 *     of content, outer types and lengths the header check refuses.
 */
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "harness.h"
#include "tls_record.h"
#include "tls_test_util.h"

#include <sys/stat.h>
#include <unistd.h>

static uint64_t random_state = 0x5eed7153ull;

/* A record split into separately allocated segments (none contiguous with another). */
struct split_record {
    struct tls_segment segments[TLS_SEGMENTS_MAX];
    uint32_t count;
    uint32_t bytes;
};

static void split_record_make(struct split_record *split, const uint8_t *record, uint32_t bytes,
                              uint32_t pieces) {
    if (pieces > bytes) pieces = bytes;
    if (pieces > TLS_SEGMENTS_MAX) pieces = TLS_SEGMENTS_MAX;
    if (pieces == 0) pieces = 1;
    /* pieces - 1 distinct cut points in (0, bytes). */
    uint32_t cuts[TLS_SEGMENTS_MAX + 1];
    uint32_t cut_count = 0;
    cuts[cut_count++] = 0;
    while (cut_count < pieces) {
        uint32_t cut = 1 + (uint32_t)(test_random_next(&random_state) % (bytes - 1));
        bool seen = false;
        for (uint32_t index = 0; index < cut_count; index++) seen |= cuts[index] == cut;
        if (!seen) cuts[cut_count++] = cut;
    }
    for (uint32_t i = 1; i < cut_count; i++)
        for (uint32_t j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
            uint32_t swap = cuts[j];
            cuts[j] = cuts[j - 1];
            cuts[j - 1] = swap;
        }
    cuts[cut_count] = bytes;
    split->count = cut_count;
    split->bytes = bytes;
    for (uint32_t index = 0; index < cut_count; index++) {
        uint32_t length = cuts[index + 1] - cuts[index];
        split->segments[index].bytes = malloc(length);
        REQUIRE(split->segments[index].bytes != NULL);
        memcpy(split->segments[index].bytes, record + cuts[index], length);
        split->segments[index].length = length;
    }
}

static void split_record_free(struct split_record *split) {
    for (uint32_t index = 0; index < split->count; index++) free(split->segments[index].bytes);
    split->count = 0;
}

/* The `count` bytes at record position `position`, gathered back out of the segments. */
static void split_record_read(const struct split_record *split, uint32_t position, uint8_t *out,
                              uint32_t count) {
    for (uint32_t index = 0; index < split->count && count > 0; index++) {
        uint32_t length = split->segments[index].length;
        if (position >= length) {
            position -= length;
            continue;
        }
        uint32_t step = length - position < count ? length - position : count;
        memcpy(out, split->segments[index].bytes + position, step);
        out += step;
        count -= step;
        position = 0;
    }
}

/* Opens one whole record from `record` (its header says how long) split `pieces` ways. */
static enum tls_open_result open_split(struct tls_session *session, const uint8_t *record,
                                       uint32_t pieces, struct tls_opened *opened,
                                       uint8_t *plaintext) {
    uint32_t bytes = TLS_RECORD_HEADER_BYTES + (((uint32_t)record[3] << 8) | record[4]);
    struct split_record split;
    split_record_make(&split, record, bytes, pieces);
    enum tls_open_result result = tls_record_open(session, split.segments, split.count, opened);
    if (result == TLS_OPEN_DATA && plaintext != NULL)
        split_record_read(&split, TLS_RECORD_HEADER_BYTES, plaintext, opened->plaintext_bytes);
    split_record_free(&split);
    return result;
}

/* Client output as a byte stream, consumed record by record. */
struct stream {
    uint8_t *bytes;
    size_t length;
    size_t capacity;
    size_t position;
};

static void stream_take(struct stream *stream, SSL *client) {
    tls_test_take_client_output(client, &stream->bytes, &stream->length, &stream->capacity);
}

static const uint8_t *stream_next(struct stream *stream) {
    if (stream->length - stream->position < TLS_RECORD_HEADER_BYTES) return NULL;
    const uint8_t *record = stream->bytes + stream->position;
    size_t bytes = TLS_RECORD_HEADER_BYTES + (((size_t)record[3] << 8) | record[4]);
    if (stream->length - stream->position < bytes) return NULL;
    stream->position += bytes;
    return record;
}

/* Seals with our session and hands the bytes to the client; returns what the client read. */
static int deliver_to_client(struct tls_session *session, SSL *client, const char *text,
                             char *read_back, int capacity) {
    uint8_t sealed[2 * TLS_KEY_UPDATE_RECORD_BYTES + 256];
    uint32_t bytes = tls_record_seal(session, TLS_CONTENT_APPLICATION_DATA, (const uint8_t *)text,
                                     (uint32_t)strlen(text), sealed, sizeof(sealed));
    if (bytes == 0) return -1;
    BIO_write(SSL_get_rbio(client), sealed, (int)bytes);
    return SSL_read(client, read_back, capacity);
}

static SSL *handshake_with(struct tls_server *server, const char *suite, uint64_t per_key,
                           struct tls_session *session) {
    static struct handshake_slot slot;
    SSL *client = tls_test_connect(server, suite, per_key, &slot);
    CHECK(SSL_is_init_finished(client));
    *session = slot.session;
    memset(&slot.session, 0, sizeof(slot.session));
    CHECK(strcmp(tls_suite_name(session->cipher_suite), suite) == 0);
    CHECK(strcmp(slot.principal.name, PRINCIPAL_ANONYMOUS) == 0);
    return client;
}

/* Client records of many sizes, split at random, opened in place. */
static void check_client_records(struct tls_session *session, SSL *client) {
    static const uint32_t sizes[] = {1, 2, 100, 1000, 16383, 16384, 16385, 40000};
    static uint8_t written[40000], opened_bytes[TLS_PLAINTEXT_BYTES_MAX];
    struct stream stream = {0};
    for (size_t index = 0; index < INTAKE_ARRAY_LENGTH(sizes); index++) {
        for (uint32_t byte = 0; byte < sizes[index]; byte++)
            written[byte] = (uint8_t)test_random_next(&random_state);
        REQUIRE(SSL_write(client, written, (int)sizes[index]) == (int)sizes[index]);
        stream_take(&stream, client);
        uint32_t received = 0;
        bool same = true;
        for (const uint8_t *record; (record = stream_next(&stream)) != NULL;) {
            struct tls_opened opened;
            uint32_t pieces = 1 + (uint32_t)(test_random_next(&random_state) % TLS_SEGMENTS_MAX);
            enum tls_open_result result =
                open_split(session, record, pieces, &opened, opened_bytes);
            CHECK(result == TLS_OPEN_DATA);
            CHECK(opened.plaintext_bytes <= TLS_PLAINTEXT_BYTES_MAX);
            if (result != TLS_OPEN_DATA || received + opened.plaintext_bytes > sizes[index]) {
                same = false;
                break;
            }
            same &= memcmp(opened_bytes, written + received, opened.plaintext_bytes) == 0;
            received += opened.plaintext_bytes;
        }
        CHECK(same);
        CHECK(received == sizes[index]);
    }
    free(stream.bytes);
}

static void check_key_updates(struct tls_session *session, SSL *client) {
    struct stream stream = {0};
    struct tls_opened opened;
    uint8_t plaintext[64];
    char read_back[64];
    /* The client updates its key and asks us to update ours. */
    REQUIRE(SSL_key_update(client, SSL_KEY_UPDATE_REQUESTED) == 1);
    REQUIRE(SSL_write(client, "after-update", 12) == 12);
    stream_take(&stream, client);
    const uint8_t *record = stream_next(&stream);
    REQUIRE(record != NULL);
    CHECK(open_split(session, record, 3, &opened, NULL) == TLS_OPEN_KEY_UPDATE);
    CHECK(session->read.key_updates == 1);
    CHECK(session->read.sequence == 0);
    CHECK(tls_session_owes_record(session));
    record = stream_next(&stream);
    REQUIRE(record != NULL);
    CHECK(open_split(session, record, 2, &opened, plaintext) == TLS_OPEN_DATA);
    CHECK(opened.plaintext_bytes == 12 && memcmp(plaintext, "after-update", 12) == 0);
    /* Our next record carries our KeyUpdate first; the client follows it. */
    int read = deliver_to_client(session, client, "ack-1", read_back, sizeof(read_back));
    CHECK(read == 5 && memcmp(read_back, "ack-1", 5) == 0);
    CHECK(session->write.key_updates == 1);
    CHECK(!tls_session_owes_record(session));
    read = deliver_to_client(session, client, "ack-2", read_back, sizeof(read_back));
    CHECK(read == 5 && memcmp(read_back, "ack-2", 5) == 0);
    /* Not requested: only our read key moves. */
    REQUIRE(SSL_key_update(client, SSL_KEY_UPDATE_NOT_REQUESTED) == 1);
    REQUIRE(SSL_write(client, "x", 1) == 1);
    stream_take(&stream, client);
    CHECK(open_split(session, stream_next(&stream), 1, &opened, NULL) == TLS_OPEN_KEY_UPDATE);
    CHECK(!tls_session_owes_record(session));
    CHECK(open_split(session, stream_next(&stream), 6, &opened, plaintext) == TLS_OPEN_DATA);
    CHECK(session->read.key_updates == 2 && session->write.key_updates == 1);
    free(stream.bytes);
}

/* With 3 records per key we update our write key ourselves and ask the client to update. */
static void check_key_limit(struct tls_server *server, const char *suite) {
    struct tls_session session;
    SSL *client = handshake_with(server, suite, 3, &session);
    CHECK(session.records_per_key_max == 3);
    char read_back[64];
    bool all_read = true;
    for (int index = 0; index < 10; index++) {
        char text[16];
        snprintf(text, sizeof(text), "ack-%d", index);
        int read = deliver_to_client(&session, client, text, read_back, sizeof(read_back));
        all_read &= read == (int)strlen(text) && memcmp(read_back, text, (size_t)read) == 0;
    }
    CHECK(all_read);
    CHECK(session.write.key_updates == 3); /* after records 3, 6 and 9 */
    struct stream stream = {0};
    struct tls_opened opened;
    int updates_seen = 0, data_seen = 0;
    for (int index = 0; index < 8; index++) {
        REQUIRE(SSL_write(client, "data", 4) == 4);
        stream_take(&stream, client);
        for (const uint8_t *record; (record = stream_next(&stream)) != NULL;) {
            enum tls_open_result result = open_split(&session, record, 2, &opened, NULL);
            updates_seen += result == TLS_OPEN_KEY_UPDATE;
            data_seen += result == TLS_OPEN_DATA;
        }
        /* Our answers carry the request whenever the client's key reached the limit. */
        SSL_read(client, read_back, sizeof(read_back));
        deliver_to_client(&session, client, "ok", read_back, sizeof(read_back));
    }
    CHECK(data_seen == 8);
    CHECK(updates_seen >= 2);
    CHECK(session.read.key_updates == (uint64_t)updates_seen);
    free(stream.bytes);
    tls_session_destroy(&session);
    SSL_free(client);
}

/* A flipped bit anywhere authenticated fails the tag; the session then opens the original. */
static void check_corruption(struct tls_session *session, SSL *client) {
    struct stream stream = {0};
    REQUIRE(SSL_write(client, "corrupt me", 10) == 10);
    stream_take(&stream, client);
    const uint8_t *record = stream_next(&stream);
    REQUIRE(record != NULL);
    uint32_t bytes = (uint32_t)(stream.position);
    uint8_t copy[256];
    REQUIRE(bytes <= sizeof(copy));
    uint32_t positions[] = {1,        2, 5, 9, bytes - TLS_TAG_BYTES - 1, bytes - TLS_TAG_BYTES,
                            bytes - 1};
    struct tls_opened opened;
    for (size_t index = 0; index < INTAKE_ARRAY_LENGTH(positions); index++) {
        memcpy(copy, record, bytes);
        copy[positions[index]] ^= 0x04;
        CHECK(open_split(session, copy, 4, &opened, NULL) == TLS_OPEN_BAD_TAG);
        CHECK(opened.alert == TLS_ALERT_BAD_RECORD_MAC);
    }
    uint8_t plaintext[16];
    CHECK(open_split(session, record, 4, &opened, plaintext) == TLS_OPEN_DATA);
    CHECK(opened.plaintext_bytes == 10 && memcmp(plaintext, "corrupt me", 10) == 0);
    free(stream.bytes);
}

static void check_alerts(struct tls_session *session, SSL *client) {
    /* Ours: the client reports it. */
    uint8_t sealed[128];
    uint32_t bytes =
        tls_record_seal_alert(session, TLS_ALERT_BAD_RECORD_MAC, sealed, sizeof(sealed));
    CHECK(bytes == TLS_ALERT_RECORD_BYTES);
    BIO_write(SSL_get_rbio(client), sealed, (int)bytes);
    char buffer[16];
    CHECK(SSL_read(client, buffer, sizeof(buffer)) <= 0);
    CHECK(ERR_GET_REASON(ERR_peek_last_error()) == SSL_R_SSLV3_ALERT_BAD_RECORD_MAC);
    ERR_clear_error();
}

static void check_close_notify(struct tls_session *session, SSL *client) {
    struct stream stream = {0};
    SSL_shutdown(client);
    stream_take(&stream, client);
    struct tls_opened opened;
    CHECK(open_split(session, stream_next(&stream), 2, &opened, NULL) == TLS_OPEN_CLOSE_NOTIFY);
    free(stream.bytes);
}

/* ------------------------------------------------- records the rules refuse --- */

/* This test's own sealer (EVP directly, not tls_record.c's): the client's side of `session`. */
static uint32_t raw_seal(const struct tls_session *session, const uint8_t *client_secret,
                         uint8_t outer_type, const uint8_t *inner, uint32_t inner_bytes,
                         uint8_t *out) {
    return tls_test_raw_seal(session, client_secret, session->read.sequence, outer_type, inner,
                             inner_bytes, out);
}

struct crafted_case {
    const char *name;
    uint8_t inner[16];
    uint32_t inner_bytes;
    enum tls_open_result result;
    uint8_t alert;
    uint32_t plaintext_bytes;
};

static void check_crafted(const char *suite) {
    struct tls_test_credentials *credentials = NULL;
    (void)credentials;
    static const struct crafted_case cases[] = {
        {"zero-length application data", {23}, 1, TLS_OPEN_DATA, 0, 0},
        {"padded application data", {'x', 23, 0, 0, 0, 0, 0, 0, 0, 0}, 10, TLS_OPEN_DATA, 0, 1},
        {"no content type", {0, 0, 0, 0}, 4, TLS_OPEN_FAILED, TLS_ALERT_UNEXPECTED_MESSAGE, 0},
        {"change_cipher_spec inside", {1, 20}, 2, TLS_OPEN_FAILED, TLS_ALERT_UNEXPECTED_MESSAGE, 0},
        {"heartbeat type", {1, 24}, 2, TLS_OPEN_FAILED, TLS_ALERT_UNEXPECTED_MESSAGE, 0},
        {"empty handshake", {22}, 1, TLS_OPEN_FAILED, TLS_ALERT_UNEXPECTED_MESSAGE, 0},
        {"empty alert", {21}, 1, TLS_OPEN_FAILED, TLS_ALERT_UNEXPECTED_MESSAGE, 0},
        {"ClientHello after the handshake",
         {1, 0, 0, 1, 0, 22},
         6,
         TLS_OPEN_FAILED,
         TLS_ALERT_UNEXPECTED_MESSAGE,
         0},
        {"KeyUpdate request 2",
         {24, 0, 0, 1, 2, 22},
         6,
         TLS_OPEN_FAILED,
         TLS_ALERT_ILLEGAL_PARAMETER,
         0},
        {"KeyUpdate length 2",
         {24, 0, 0, 2, 0, 0, 22},
         7,
         TLS_OPEN_FAILED,
         TLS_ALERT_DECODE_ERROR,
         0},
        {"KeyUpdate and more",
         {24, 0, 0, 1, 0, 24, 22},
         7,
         TLS_OPEN_FAILED,
         TLS_ALERT_UNEXPECTED_MESSAGE,
         0},
        {"KeyUpdate split", {24, 0, 0, 1, 22}, 5, TLS_OPEN_FAILED, TLS_ALERT_UNEXPECTED_MESSAGE, 0},
        {"alert of 3 bytes", {2, 40, 0, 21}, 4, TLS_OPEN_FAILED, TLS_ALERT_DECODE_ERROR, 0},
        {"fatal handshake_failure", {2, 40, 21}, 3, TLS_OPEN_PEER_ALERT, 40, 0},
        {"close_notify, padded", {1, 0, 21, 0, 0}, 5, TLS_OPEN_CLOSE_NOTIFY, 0, 0},
    };
    char directory[] = "/tmp/intake-tls-record-XXXXXX";
    REQUIRE(mkdtemp(directory) != NULL);
    struct tls_test_credentials made;
    tls_test_credentials_write(&made, directory, TLS_TEST_KEY_ECDSA_P256);
    struct tls_server server;
    tls_test_server(&server, &made, false);
    struct tls_session session;
    SSL *client = handshake_with(&server, suite, 0, &session);
    /* The client's write secret is our read secret, as the handshake left it. */
    uint8_t client_secret[TLS_SECRET_BYTES_MAX];
    memcpy(client_secret, session.read.secret, session.secret_bytes);
    static uint8_t record[TLS_RECORD_BYTES_MAX + 64];
    struct tls_opened opened;
    for (size_t index = 0; index < INTAKE_ARRAY_LENGTH(cases); index++) {
        const struct crafted_case *entry = &cases[index];
        uint32_t bytes = raw_seal(&session, client_secret, TLS_CONTENT_APPLICATION_DATA,
                                  entry->inner, entry->inner_bytes, record);
        (void)bytes;
        enum tls_open_result result = open_split(&session, record, 3, &opened, NULL);
        bool as_expected = result == entry->result && opened.alert == entry->alert &&
                           opened.plaintext_bytes == entry->plaintext_bytes;
        if (!as_expected)
            fprintf(stderr, "crafted %s (%s): result %d alert %u bytes %u\n", entry->name, suite,
                    (int)result, opened.alert, opened.plaintext_bytes);
        CHECK(as_expected);
    }
    /* 2^14 bytes of content fit; one more (or one byte of padding more) overflows. */
    static uint8_t inner[TLS_PLAINTEXT_BYTES_MAX + 2];
    memset(inner, 'a', sizeof(inner));
    inner[TLS_PLAINTEXT_BYTES_MAX] = 23;
    raw_seal(&session, client_secret, TLS_CONTENT_APPLICATION_DATA, inner,
             TLS_PLAINTEXT_BYTES_MAX + 1, record);
    CHECK(open_split(&session, record, 7, &opened, NULL) == TLS_OPEN_DATA);
    CHECK(opened.plaintext_bytes == TLS_PLAINTEXT_BYTES_MAX);
    inner[TLS_PLAINTEXT_BYTES_MAX + 1] = 0;
    raw_seal(&session, client_secret, TLS_CONTENT_APPLICATION_DATA, inner,
             TLS_PLAINTEXT_BYTES_MAX + 2, record);
    CHECK(open_split(&session, record, 7, &opened, NULL) == TLS_OPEN_FAILED);
    CHECK(opened.alert == TLS_ALERT_RECORD_OVERFLOW);
    inner[TLS_PLAINTEXT_BYTES_MAX] = 'a';
    inner[TLS_PLAINTEXT_BYTES_MAX + 1] = 23;
    raw_seal(&session, client_secret, TLS_CONTENT_APPLICATION_DATA, inner,
             TLS_PLAINTEXT_BYTES_MAX + 2, record);
    CHECK(open_split(&session, record, 7, &opened, NULL) == TLS_OPEN_FAILED);
    CHECK(opened.alert == TLS_ALERT_RECORD_OVERFLOW);
    /* Headers refused before any decryption. */
    struct {
        uint8_t header[5];
        uint8_t alert;
    } headers[] = {
        {{20, 3, 3, 0, 1}, TLS_ALERT_UNEXPECTED_MESSAGE},  /* change_cipher_spec */
        {{21, 3, 3, 0, 2}, TLS_ALERT_UNEXPECTED_MESSAGE},  /* a plaintext alert */
        {{22, 3, 3, 0, 40}, TLS_ALERT_UNEXPECTED_MESSAGE}, /* a plaintext handshake */
        {{23, 3, 3, 0x41, 0x01}, TLS_ALERT_RECORD_OVERFLOW},
        {{23, 3, 3, 0, 16}, TLS_ALERT_UNEXPECTED_MESSAGE},
        {{23, 3, 3, 0, 5}, TLS_ALERT_BAD_RECORD_MAC},
    };
    for (size_t index = 0; index < INTAKE_ARRAY_LENGTH(headers); index++) {
        uint32_t record_bytes = 0;
        uint8_t alert = 0;
        CHECK(tls_record_header(headers[index].header, &record_bytes, &alert) == TLS_HEADER_BAD);
        CHECK(alert == headers[index].alert);
    }
    uint32_t record_bytes = 0;
    uint8_t alert = 0;
    uint8_t largest[5] = {23, 3, 3, 0x41, 0x00};
    CHECK(tls_record_header(largest, &record_bytes, &alert) == TLS_HEADER_OK);
    CHECK(record_bytes == TLS_RECORD_BYTES_MAX);
    tls_session_destroy(&session);
    SSL_free(client);
    tls_server_destroy(&server);
    char command[512];
    snprintf(command, sizeof(command), "rm -rf %s", directory);
    CHECK(system(command) == 0);
}

int main(void) {
    char directory[] = "/tmp/intake-tls-record-XXXXXX";
    REQUIRE(mkdtemp(directory) != NULL);
    struct tls_test_credentials credentials;
    tls_test_credentials_write(&credentials, directory, TLS_TEST_KEY_ECDSA_P256);
    struct tls_server server;
    tls_test_server(&server, &credentials, false);
    static const char *const suites[] = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                                         "TLS_CHACHA20_POLY1305_SHA256"};
    for (size_t index = 0; index < INTAKE_ARRAY_LENGTH(suites); index++) {
        struct tls_session session;
        SSL *client = handshake_with(&server, suites[index], 0, &session);
        check_client_records(&session, client);
        char read_back[16];
        CHECK(deliver_to_client(&session, client, "hello", read_back, sizeof(read_back)) == 5);
        check_key_updates(&session, client);
        check_corruption(&session, client);
        check_close_notify(&session, client);
        check_alerts(&session, client);
        tls_session_destroy(&session);
        SSL_free(client);
        check_key_limit(&server, suites[index]);
        check_crafted(suites[index]);
        printf("test_tls_record: %s checked\n", suites[index]);
    }
    tls_server_destroy(&server);
    char command[512];
    snprintf(command, sizeof(command), "rm -rf %s", directory);
    CHECK(system(command) == 0);
    return test_finish();
}
