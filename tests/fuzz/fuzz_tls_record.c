/*
 * fuzz_tls_record.c: the TLS record layer (src/tls/tls_record.c) opening a client's records
 * after a real handshake, the records shaped and mutated by the input.
 *
 * Once per process, intake's own handshake code (handshake_run_job) completes a handshake with
 * an OpenSSL client for each of the three suites (credentials made at run time, nothing
 * committed); the traffic secrets it logged start every run. The input then describes, op by op,
 * what a client sends, and this target seals it with its own EVP code (independent of
 * tls_record.c's sealing; HKDF-Expand-Label is the record layer's, which the handshake proved
 * against OpenSSL): application data with padding, 2^14-byte and larger contents, KeyUpdates
 * (the client's key moves on after each), alerts, arbitrary inner content types, a bit flipped
 * in any byte of the last record, unencrypted garbage, a cut.
 *
 * Input: byte 0 picks the suite, byte 1 the records per key (0: the AEAD's limit; else 1..8, so
 * intaked's own key updates and update requests run), byte 2 the chunk sizes; then ops.
 *
 * The stream is opened twice, as the reactor opens it: once with each record in one segment,
 * once cut into the input's chunks, each in its own allocation (records in more than 64 of them
 * fall back to 64 equal parts). Properties:
 *   1. No crash, no read or write outside a segment (ASan), no spin.
 *   2. Splits do not matter: both runs give the same results, alerts and plaintext.
 *   3. Up to the first record the input damaged (a flipped bit, garbage, an arbitrary inner
 *      type), every record opens as the model says: application data with exactly the content
 *      sealed, or record_overflow above 2^14 bytes; KeyUpdates (request 0 or 1) move the read
 *      key and owe ours when asked, request 2 is illegal_parameter; alerts end the input
 *      (close_notify) or the connection (any other). A flipped bit is never accepted as data.
 *   4. After every record opened as data, what intake seals back (an Ack-sized record, with the
 *      KeyUpdate it owes first) opens on the client's side to exactly those bytes.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "tls_record.h"
#include "tls_test_util.h"

#define FUZZ_STREAM_BYTES_MAX (1u << 20)
#define FUZZ_RECORDS_MAX      256
#define FUZZ_SUITES           3

/* The secrets of one real handshake per suite. */
struct fuzz_handshake {
    uint16_t suite;
    uint8_t client_secret[TLS_SECRET_BYTES_MAX];
    uint8_t server_secret[TLS_SECRET_BYTES_MAX];
    uint32_t secret_bytes;
};
static struct fuzz_handshake handshakes[FUZZ_SUITES];

static void fuzz_handshakes(void) {
    static bool done;
    if (done) return;
    done = true;
    char directory[] = "/tmp/intake-fuzz-tls-XXXXXX";
    FUZZ_CHECK(mkdtemp(directory) != NULL);
    struct tls_test_credentials credentials;
    tls_test_credentials_write(&credentials, directory, TLS_TEST_KEY_ECDSA_P256);
    struct tls_server server;
    tls_test_server(&server, &credentials, false);
    static const char *const names[FUZZ_SUITES] = {
        "TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"};
    static struct handshake_slot slot;
    for (int index = 0; index < FUZZ_SUITES; index++) {
        SSL_free(tls_test_connect(&server, names[index], 0, &slot));
        handshakes[index].suite = slot.session.cipher_suite;
        handshakes[index].secret_bytes = slot.session.secret_bytes;
        memcpy(handshakes[index].client_secret, slot.session.read.secret, TLS_SECRET_BYTES_MAX);
        memcpy(handshakes[index].server_secret, slot.session.write.secret, TLS_SECRET_BYTES_MAX);
        tls_session_destroy(&slot.session);
    }
    tls_server_destroy(&server);
    char command[128];
    snprintf(command, sizeof(command), "rm -rf %s", directory);
    FUZZ_CHECK(system(command) == 0);
}

/* ---------------------------------------------------------------- the client --- */

/* The client: its suite's parameters (cipher, digest, sizes; no AEAD contexts), its current
 * write secret and the next record's number under it. */
struct client {
    struct tls_session suite;
    uint8_t secret[TLS_SECRET_BYTES_MAX];
    uint64_t sequence;
};

/* Seals `inner` (content, type, padding) as one application_data record at `out`. */
static uint32_t client_seal(struct client *client, const uint8_t *inner, uint32_t inner_bytes,
                            uint8_t *out) {
    return tls_test_raw_seal(&client->suite, client->secret, client->sequence++,
                             TLS_CONTENT_APPLICATION_DATA, inner, inner_bytes, out);
}

static void client_update(struct client *client) {
    uint8_t next[TLS_SECRET_BYTES_MAX];
    FUZZ_CHECK(tls_expand_label(client->suite.digest, client->secret, client->suite.secret_bytes,
                                "traffic upd", next, client->suite.secret_bytes) == 0);
    memcpy(client->secret, next, client->suite.secret_bytes);
    client->sequence = 0;
}

/* ------------------------------------------------------------ the model --- */

enum expect_kind { EXPECT_DATA, EXPECT_KEY_UPDATE, EXPECT_CLOSE, EXPECT_ALERT, EXPECT_FAIL };

struct planned {
    uint32_t offset, bytes;  /* in the stream */
    bool modelled;           /* before any damage: the model's prediction holds */
    bool flipped;            /* the input flipped a bit in it (the first damage) */
    uint8_t kind;            /* enum expect_kind */
    uint8_t alert;           /* EXPECT_ALERT: the peer's; EXPECT_FAIL: ours */
    bool owes;               /* EXPECT_KEY_UPDATE: update_requested */
    uint32_t content_offset; /* EXPECT_DATA: the content, in `contents` */
    uint32_t content_bytes;
};

struct plan {
    uint8_t *stream;
    uint32_t stream_bytes;
    uint8_t *contents; /* what data records carried, for the model */
    uint32_t contents_bytes;
    struct planned records[FUZZ_RECORDS_MAX];
    uint32_t count;
    bool damaged;
};

static uint8_t inner_buffer[TLS_CIPHERTEXT_BYTES_MAX];

/* Appends one record sealed from inner_buffer[0..inner_bytes). */
static struct planned *plan_seal(struct plan *plan, struct client *client, uint32_t inner_bytes) {
    if (plan->count == FUZZ_RECORDS_MAX) return NULL;
    if (plan->stream_bytes + inner_bytes + TLS_RECORD_OVERHEAD_BYTES > FUZZ_STREAM_BYTES_MAX)
        return NULL;
    struct planned *record = &plan->records[plan->count++];
    memset(record, 0, sizeof(*record));
    record->offset = plan->stream_bytes;
    record->bytes =
        client_seal(client, inner_buffer, inner_bytes, plan->stream + plan->stream_bytes);
    plan->stream_bytes += record->bytes;
    record->modelled = !plan->damaged;
    return record;
}

/* Application data: `content_bytes` of content (from the input, or a pattern), then padding. */
static void plan_data(struct plan *plan, struct client *client, struct fuzz_input *input,
                      uint32_t content_bytes, bool from_input, uint32_t padding) {
    if (content_bytes + 1 + padding > TLS_CIPHERTEXT_BYTES_MAX - TLS_TAG_BYTES) return;
    for (uint32_t index = 0; index < content_bytes; index++)
        inner_buffer[index] = from_input ? fuzz_take_byte(input) : (uint8_t)(index * 7 + 1);
    inner_buffer[content_bytes] = TLS_CONTENT_APPLICATION_DATA;
    memset(inner_buffer + content_bytes + 1, 0, padding);
    uint32_t content_offset = plan->contents_bytes;
    memcpy(plan->contents + content_offset, inner_buffer, content_bytes);
    struct planned *record = plan_seal(plan, client, content_bytes + 1 + padding);
    if (record == NULL) return;
    plan->contents_bytes += content_bytes;
    bool overflows = content_bytes + 1 + padding > TLS_PLAINTEXT_BYTES_MAX + 1;
    record->kind = overflows ? EXPECT_FAIL : EXPECT_DATA;
    record->alert = overflows ? TLS_ALERT_RECORD_OVERFLOW : 0;
    record->content_offset = content_offset;
    record->content_bytes = content_bytes;
}

static void plan_key_update(struct plan *plan, struct client *client, uint8_t request) {
    uint8_t message[6] = {24, 0, 0, 1, request, TLS_CONTENT_HANDSHAKE};
    memcpy(inner_buffer, message, sizeof(message));
    struct planned *record = plan_seal(plan, client, sizeof(message));
    if (record == NULL) return;
    record->kind = request <= 1 ? EXPECT_KEY_UPDATE : EXPECT_FAIL;
    record->alert = request <= 1 ? 0 : TLS_ALERT_ILLEGAL_PARAMETER;
    record->owes = request == 1;
    if (request <= 1) client_update(client);
}

static void plan_alert(struct plan *plan, struct client *client, uint8_t level,
                       uint8_t description) {
    uint8_t content[3] = {level, description, TLS_CONTENT_ALERT};
    memcpy(inner_buffer, content, sizeof(content));
    struct planned *record = plan_seal(plan, client, sizeof(content));
    if (record == NULL) return;
    record->kind = description == TLS_ALERT_CLOSE_NOTIFY ? EXPECT_CLOSE : EXPECT_ALERT;
    record->alert = description;
}

/* Reads the ops; false when nothing was planned. */
static bool plan_make(struct plan *plan, struct client *client, struct fuzz_input *input) {
    while (input->head_length > 0 && plan->count < FUZZ_RECORDS_MAX) {
        uint8_t op = fuzz_take_byte(input) % 8;
        uint32_t size = fuzz_take_byte(input);
        switch (op) {
        case 0: plan_data(plan, client, input, size, true, fuzz_take_byte(input) % 32); break;
        case 1: {
            uint32_t big = TLS_PLAINTEXT_BYTES_MAX - 64 + size; /* around 2^14 */
            plan_data(plan, client, input, big, false, fuzz_take_byte(input) % 4);
            break;
        }
        case 2: plan_key_update(plan, client, (uint8_t)(size % 3)); break;
        case 3: plan_alert(plan, client, fuzz_take_byte(input), (uint8_t)size); break;
        case 4: { /* arbitrary inner bytes and type: beyond the model from here */
            uint32_t bytes = size % 24;
            for (uint32_t index = 0; index < bytes; index++)
                inner_buffer[index] = fuzz_take_byte(input);
            inner_buffer[bytes] = fuzz_take_byte(input);
            struct planned *record = plan_seal(plan, client, bytes + 1);
            if (record != NULL) record->modelled = false;
            plan->damaged = true;
            break;
        }
        case 5: /* a bit flipped in the last record */
            if (plan->count > 0) {
                struct planned *last = &plan->records[plan->count - 1];
                uint32_t position = ((uint32_t)size << 8 | fuzz_take_byte(input)) % last->bytes;
                plan->stream[last->offset + position] ^=
                    (uint8_t)(1u << (fuzz_take_byte(input) % 8));
                last->flipped = last->modelled;
                last->modelled = false;
                plan->damaged = true;
            }
            break;
        case 6: /* unencrypted garbage */
            for (uint32_t index = 0;
                 index < size % 16 && plan->stream_bytes < FUZZ_STREAM_BYTES_MAX; index++)
                plan->stream[plan->stream_bytes++] = fuzz_take_byte(input);
            plan->damaged = true;
            break;
        case 7: return plan->stream_bytes > 0; /* the cut: nothing after it is sent */
        }
    }
    return plan->stream_bytes > 0;
}

/* -------------------------------------------------------------- opening --- */

struct outcome {
    uint32_t results[FUZZ_RECORDS_MAX + 1];
    uint8_t alerts[FUZZ_RECORDS_MAX + 1];
    uint64_t plaintext_hash[FUZZ_RECORDS_MAX + 1];
    uint32_t count;
};

static uint64_t fuzz_hash(uint64_t hash, const uint8_t *bytes, uint32_t length) {
    for (uint32_t index = 0; index < length; index++)
        hash = (hash ^ bytes[index]) * 0x100000001b3ull;
    return hash;
}

/* Cuts stream[start, start + bytes) into segments: whole (chunk 0), or by the chunk sizes. */
static uint32_t fuzz_segments(uint8_t *copy, uint32_t start, uint32_t bytes, uint8_t chunking,
                              struct tls_segment *segments) {
    uint32_t count = 0;
    uint32_t piece = chunking == 0 ? bytes : 1u + chunking % 61u * (chunking & 1 ? 1 : 37);
    if ((bytes + piece - 1) / piece > TLS_SEGMENTS_MAX)
        piece = (bytes + TLS_SEGMENTS_MAX - 1) / TLS_SEGMENTS_MAX;
    for (uint32_t done = 0; done < bytes; done += piece) {
        uint32_t length = bytes - done < piece ? bytes - done : piece;
        /* Each segment its own allocation: ASan sees a read past it. */
        segments[count].bytes = malloc(length);
        FUZZ_CHECK(segments[count].bytes != NULL);
        memcpy(segments[count].bytes, copy + start + done, length);
        segments[count].length = length;
        count++;
    }
    FUZZ_CHECK(count <= TLS_SEGMENTS_MAX);
    return count;
}

/* What the server seals after a data record opens on the client's side as those bytes. */
static void fuzz_check_reply(struct tls_session *server, struct tls_session *client_reader,
                             uint32_t index) {
    uint8_t ack[8];
    for (int byte = 0; byte < 8; byte++) ack[byte] = (uint8_t)(index >> (byte % 4));
    static uint8_t sealed[2 * TLS_KEY_UPDATE_RECORD_BYTES + 64];
    uint32_t bytes = tls_record_seal(server, TLS_CONTENT_APPLICATION_DATA, ack, sizeof(ack), sealed,
                                     sizeof(sealed));
    FUZZ_CHECK(bytes > 0);
    for (uint32_t offset = 0; offset < bytes;) {
        uint32_t record =
            TLS_RECORD_HEADER_BYTES + ((uint32_t)sealed[offset + 3] << 8) + sealed[offset + 4];
        struct tls_segment segment = {sealed + offset, record};
        struct tls_opened opened;
        enum tls_open_result result = tls_record_open(client_reader, &segment, 1, &opened);
        offset += record;
        if (offset < bytes) {
            FUZZ_CHECK(result == TLS_OPEN_KEY_UPDATE); /* the KeyUpdate owed comes first */
        } else {
            FUZZ_CHECK(result == TLS_OPEN_DATA && opened.plaintext_bytes == sizeof(ack));
            FUZZ_CHECK(memcmp(segment.bytes + TLS_RECORD_HEADER_BYTES, ack, sizeof(ack)) == 0);
        }
    }
}

/* Opens the stream record by record as the reactor does; stops at the first end. */
static void fuzz_open(const struct plan *plan, uint32_t handshake, uint64_t per_key,
                      uint8_t chunking, struct outcome *outcome) {
    uint8_t *copy = malloc(plan->stream_bytes);
    FUZZ_CHECK(copy != NULL);
    memcpy(copy, plan->stream, plan->stream_bytes);
    struct tls_session server, client_reader;
    const struct fuzz_handshake *keys = &handshakes[handshake];
    FUZZ_CHECK(tls_session_init(&server, keys->suite, keys->client_secret, keys->server_secret,
                                keys->secret_bytes, per_key) == 0);
    FUZZ_CHECK(tls_session_init(&client_reader, keys->suite, keys->server_secret,
                                keys->client_secret, keys->secret_bytes, 0) == 0);
    memset(outcome, 0, sizeof(*outcome));
    uint32_t position = 0;
    while (outcome->count <= FUZZ_RECORDS_MAX && plan->stream_bytes - position >= 5) {
        uint32_t record_bytes = 0;
        uint8_t alert = 0;
        uint32_t index = outcome->count++;
        if (tls_record_header(copy + position, &record_bytes, &alert) != TLS_HEADER_OK) {
            outcome->results[index] = 100; /* refused by the header check */
            outcome->alerts[index] = alert;
            break;
        }
        if (plan->stream_bytes - position < record_bytes) { /* a cut record: the input ends */
            outcome->results[index] = 101;
            break;
        }
        struct tls_segment segments[TLS_SEGMENTS_MAX];
        uint32_t count = fuzz_segments(copy, position, record_bytes, chunking, segments);
        struct tls_opened opened;
        enum tls_open_result result = tls_record_open(&server, segments, count, &opened);
        outcome->results[index] = result;
        outcome->alerts[index] = opened.alert;
        if (result == TLS_OPEN_DATA) {
            uint64_t hash = 0xcbf29ce484222325ull;
            uint32_t skip = TLS_RECORD_HEADER_BYTES, left = opened.plaintext_bytes;
            for (uint32_t segment = 0; segment < count && left > 0; segment++) {
                uint32_t length = segments[segment].length;
                if (skip >= length) {
                    skip -= length;
                    continue;
                }
                uint32_t take = length - skip < left ? length - skip : left;
                hash = fuzz_hash(hash, segments[segment].bytes + skip, take);
                left -= take;
                skip = 0;
            }
            outcome->plaintext_hash[index] = hash ^ opened.plaintext_bytes;
        }
        /* update_requested: our own KeyUpdate is owed before the next record we seal. */
        if (result == TLS_OPEN_KEY_UPDATE && index < plan->count && plan->records[index].modelled &&
            plan->records[index].owes)
            FUZZ_CHECK(tls_session_owes_record(&server));
        for (uint32_t segment = 0; segment < count; segment++) free(segments[segment].bytes);
        position += record_bytes;
        if (result == TLS_OPEN_DATA) fuzz_check_reply(&server, &client_reader, index);
        if (result != TLS_OPEN_DATA && result != TLS_OPEN_KEY_UPDATE) break;
    }
    tls_session_destroy(&server);
    tls_session_destroy(&client_reader);
    free(copy);
}

/* Property 3: the modelled records opened as planned. */
static void fuzz_check_model(const struct plan *plan, const struct outcome *outcome) {
    for (uint32_t index = 0; index < outcome->count && index < plan->count; index++) {
        const struct planned *record = &plan->records[index];
        uint32_t result = outcome->results[index];
        if (!record->modelled) break; /* from the first damage on, no prediction */
        switch ((enum expect_kind)record->kind) {
        case EXPECT_DATA: {
            FUZZ_CHECK(result == TLS_OPEN_DATA);
            uint64_t hash =
                fuzz_hash(0xcbf29ce484222325ull, plan->contents + record->content_offset,
                          record->content_bytes);
            FUZZ_CHECK(outcome->plaintext_hash[index] == (hash ^ record->content_bytes));
            break;
        }
        case EXPECT_KEY_UPDATE: FUZZ_CHECK(result == TLS_OPEN_KEY_UPDATE); break;
        case EXPECT_CLOSE: FUZZ_CHECK(result == TLS_OPEN_CLOSE_NOTIFY); break;
        case EXPECT_ALERT:
            FUZZ_CHECK(result == TLS_OPEN_PEER_ALERT && outcome->alerts[index] == record->alert);
            break;
        case EXPECT_FAIL:
            FUZZ_CHECK(result == TLS_OPEN_FAILED && outcome->alerts[index] == record->alert);
            break;
        }
    }
    /* The first damaged record, when the damage is a flipped bit: authenticated bytes changed
     * (header, ciphertext or tag), so it must fail authentication or the header check, or (its
     * length grew past the stream) wait for more. It never opens. */
    for (uint32_t index = 0; index < outcome->count && index < plan->count; index++) {
        const struct planned *record = &plan->records[index];
        if (record->modelled) continue;
        if (record->flipped)
            FUZZ_CHECK(outcome->results[index] == TLS_OPEN_BAD_TAG ||
                       outcome->results[index] == 100 || outcome->results[index] == 101);
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3) return 0;
    fuzz_handshakes();
    uint32_t handshake = data[0] % FUZZ_SUITES;
    uint64_t per_key = data[1] % 9;
    uint8_t chunking = data[2];
    /* The ops read from the rest, front to back. */
    uint8_t *reversed = malloc(size - 3);
    FUZZ_CHECK(reversed != NULL || size == 3);
    for (size_t index = 0; index < size - 3; index++) reversed[index] = data[size - 1 - index];
    struct fuzz_input input = {reversed, size - 3};
    static struct plan plan;
    static uint8_t stream[FUZZ_STREAM_BYTES_MAX];
    static uint8_t contents[FUZZ_STREAM_BYTES_MAX + TLS_CIPHERTEXT_BYTES_MAX];
    memset(&plan, 0, sizeof(plan));
    plan.stream = stream;
    plan.contents = contents;
    struct client client;
    memset(&client, 0, sizeof(client));
    struct tls_session probe;
    FUZZ_CHECK(tls_session_init(&probe, handshakes[handshake].suite,
                                handshakes[handshake].client_secret,
                                handshakes[handshake].server_secret,
                                handshakes[handshake].secret_bytes, 0) == 0);
    client.suite.cipher = probe.cipher;
    client.suite.digest = probe.digest;
    client.suite.secret_bytes = probe.secret_bytes;
    client.suite.key_bytes = probe.key_bytes;
    tls_session_destroy(&probe);
    memcpy(client.secret, handshakes[handshake].client_secret, client.suite.secret_bytes);
    if (plan_make(&plan, &client, &input)) {
        static struct outcome whole, split;
        fuzz_open(&plan, handshake, per_key, 0, &whole);
        fuzz_open(&plan, handshake, per_key, chunking, &split);
        FUZZ_CHECK(whole.count == split.count);
        FUZZ_CHECK(memcmp(whole.results, split.results, sizeof(whole.results)) == 0);
        FUZZ_CHECK(memcmp(whole.alerts, split.alerts, sizeof(whole.alerts)) == 0);
        FUZZ_CHECK(
            memcmp(whole.plaintext_hash, split.plaintext_hash, sizeof(whole.plaintext_hash)) == 0);
        fuzz_check_model(&plan, &whole);
    }
    free(reversed);
    return 0;
}
