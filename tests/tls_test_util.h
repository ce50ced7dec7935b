/*
 * tls_test_util.h: TLS helpers for tests, the record-layer fuzz target and the TLS benchmarks.
 *
 *   - tls_test_credentials: a CA, a server certificate for "localhost" and two client
 *     certificates (one with a URI SAN, one with only a CN), ECDSA P-256 or RSA-2048, made with
 *     OpenSSL's API at run time and written as PEM files into a directory (no key is ever
 *     committed);
 *   - tls_test_client: an OpenSSL client (memory BIOs) for one suite, optionally with a client
 *     certificate;
 *   - tls_test_handshake: drives intake's own handshake code (handshake_run_job, the job a
 *     handshake thread runs) against that client in memory, one record per job exactly as a
 *     reactor feeds it; tls_test_connect does it all for a new client and aborts unless done;
 *   - tls_test_raw_seal: seals a record with EVP directly (not with tls_record.c's sealing), for
 *     records that break the rules or for an independent client.
 * Header-only; everything here may abort on an OpenSSL failure (tests, not the daemon).
 */
#ifndef INTAKE_TLS_TEST_UTIL_H
#define INTAKE_TLS_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "handshake.h"
#include "tls_server.h"

#define TLS_TEST_REQUIRE(condition)                                                                \
    do {                                                                                           \
        if (!(condition)) {                                                                        \
            fprintf(stderr, "%s:%d: TLS test setup failed: %s\n", __FILE__, __LINE__, #condition); \
            ERR_print_errors_fp(stderr);                                                           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

enum tls_test_key { TLS_TEST_KEY_ECDSA_P256 = 0, TLS_TEST_KEY_RSA_2048 = 1 };

struct tls_test_credentials {
    char directory[256];
    char ca[300], server_certificate[300], server_key[300];
    char client_uri_certificate[300], client_uri_key[300]; /* URI SAN spiffe://intake/test/uri */
    char client_cn_certificate[300], client_cn_key[300];   /* only CN "cn-only-client" */
};

static inline EVP_PKEY *tls_test_key_new(enum tls_test_key type) {
    EVP_PKEY *key = type == TLS_TEST_KEY_RSA_2048 ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
    TLS_TEST_REQUIRE(key != NULL);
    return key;
}

static inline void tls_test_add_extension(X509 *certificate, X509 *issuer, int nid,
                                          const char *value) {
    X509V3_CTX context;
    X509V3_set_ctx_nodb(&context);
    X509V3_set_ctx(&context, issuer, certificate, NULL, NULL, 0);
    X509_EXTENSION *extension = X509V3_EXT_conf_nid(NULL, &context, nid, value);
    TLS_TEST_REQUIRE(extension != NULL);
    TLS_TEST_REQUIRE(X509_add_ext(certificate, extension, -1) == 1);
    X509_EXTENSION_free(extension);
}

/* A certificate for `key`, named `common_name`, signed by `issuer_key` (self-signed when
 * issuer is NULL), valid from an hour ago for a day. `san` may be NULL. */
static inline X509 *tls_test_certificate(EVP_PKEY *key, const char *common_name, X509 *issuer,
                                         EVP_PKEY *issuer_key, const char *san, bool is_ca) {
    static long serial = 1;
    X509 *certificate = X509_new();
    TLS_TEST_REQUIRE(certificate != NULL);
    X509_set_version(certificate, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(certificate), serial++);
    X509_gmtime_adj(X509_getm_notBefore(certificate), -3600);
    X509_gmtime_adj(X509_getm_notAfter(certificate), 86400);
    X509_set_pubkey(certificate, key);
    X509_NAME *name = X509_get_subject_name(certificate);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)common_name, -1, -1,
                               0);
    X509_set_issuer_name(certificate, issuer ? X509_get_subject_name(issuer) : name);
    X509 *signer = issuer ? issuer : certificate;
    tls_test_add_extension(certificate, signer, NID_basic_constraints,
                           is_ca ? "critical,CA:TRUE" : "CA:FALSE");
    if (san != NULL) tls_test_add_extension(certificate, signer, NID_subject_alt_name, san);
    TLS_TEST_REQUIRE(X509_sign(certificate, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
    return certificate;
}

static inline void tls_test_write_pem(const char *path, X509 *certificate, EVP_PKEY *key) {
    FILE *file = fopen(path, "w");
    TLS_TEST_REQUIRE(file != NULL);
    if (certificate != NULL) TLS_TEST_REQUIRE(PEM_write_X509(file, certificate) == 1);
    if (key != NULL)
        TLS_TEST_REQUIRE(PEM_write_PrivateKey(file, key, NULL, NULL, 0, NULL, NULL) == 1);
    fclose(file);
}

/* Makes `directory` (mkdir -p semantics are the caller's) and writes every credential in it. */
static inline void tls_test_credentials_write(struct tls_test_credentials *out,
                                              const char *directory, enum tls_test_key type) {
    memset(out, 0, sizeof(*out));
    snprintf(out->directory, sizeof(out->directory), "%s", directory);
#define TLS_TEST_PATH(field, name) snprintf(out->field, sizeof(out->field), "%s/" name, directory)
    TLS_TEST_PATH(ca, "ca.pem");
    TLS_TEST_PATH(server_certificate, "server.pem");
    TLS_TEST_PATH(server_key, "server.key");
    TLS_TEST_PATH(client_uri_certificate, "client-uri.pem");
    TLS_TEST_PATH(client_uri_key, "client-uri.key");
    TLS_TEST_PATH(client_cn_certificate, "client-cn.pem");
    TLS_TEST_PATH(client_cn_key, "client-cn.key");
#undef TLS_TEST_PATH
    EVP_PKEY *ca_key = tls_test_key_new(type);
    X509 *ca = tls_test_certificate(ca_key, "intake test CA", NULL, NULL, NULL, true);
    EVP_PKEY *server_key = tls_test_key_new(type);
    X509 *server = tls_test_certificate(server_key, "localhost", ca, ca_key,
                                        "DNS:localhost,IP:127.0.0.1", false);
    EVP_PKEY *uri_key = tls_test_key_new(type);
    X509 *uri = tls_test_certificate(uri_key, "uri-client", ca, ca_key,
                                     "URI:spiffe://intake/test/uri", false);
    EVP_PKEY *cn_key = tls_test_key_new(type);
    X509 *cn = tls_test_certificate(cn_key, "cn-only-client", ca, ca_key, NULL, false);
    tls_test_write_pem(out->ca, ca, NULL);
    tls_test_write_pem(out->server_certificate, server, NULL);
    tls_test_write_pem(out->server_key, NULL, server_key);
    tls_test_write_pem(out->client_uri_certificate, uri, NULL);
    tls_test_write_pem(out->client_uri_key, NULL, uri_key);
    tls_test_write_pem(out->client_cn_certificate, cn, NULL);
    tls_test_write_pem(out->client_cn_key, NULL, cn_key);
    X509 *certificates[] = {ca, server, uri, cn};
    EVP_PKEY *keys[] = {ca_key, server_key, uri_key, cn_key};
    for (size_t index = 0; index < 4; index++) {
        X509_free(certificates[index]);
        EVP_PKEY_free(keys[index]);
    }
}

/* An OpenSSL TLS 1.3 client with memory BIOs offering only `suite` (its IANA name), trusting
 * `ca` (NULL: no verification), presenting `certificate`/`key` when given. */
static inline SSL *tls_test_client(const char *suite, const char *ca, const char *certificate,
                                   const char *key) {
    SSL_CTX *context = SSL_CTX_new(TLS_client_method());
    TLS_TEST_REQUIRE(context != NULL);
    TLS_TEST_REQUIRE(SSL_CTX_set_min_proto_version(context, TLS1_3_VERSION) == 1);
    TLS_TEST_REQUIRE(SSL_CTX_set_ciphersuites(context, suite) == 1);
    if (ca != NULL) {
        TLS_TEST_REQUIRE(SSL_CTX_load_verify_locations(context, ca, NULL) == 1);
        SSL_CTX_set_verify(context, SSL_VERIFY_PEER, NULL);
    }
    if (certificate != NULL) {
        TLS_TEST_REQUIRE(SSL_CTX_use_certificate_file(context, certificate, SSL_FILETYPE_PEM) == 1);
        TLS_TEST_REQUIRE(SSL_CTX_use_PrivateKey_file(context, key, SSL_FILETYPE_PEM) == 1);
    }
    SSL *client = SSL_new(context);
    SSL_CTX_free(context); /* the SSL keeps its reference */
    TLS_TEST_REQUIRE(client != NULL);
    SSL_set_bio(client, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
    SSL_set_connect_state(client);
    SSL_set_tlsext_host_name(client, "localhost");
    return client;
}

/* Bytes the client wrote (into its write BIO), appended to `buffer` (grown as needed). */
static inline size_t tls_test_take_client_output(SSL *client, uint8_t **buffer, size_t *length,
                                                 size_t *capacity) {
    BIO *output = SSL_get_wbio(client);
    size_t pending = BIO_ctrl_pending(output);
    if (*length + pending > *capacity) {
        *capacity = (*length + pending) * 2 + 4096;
        *buffer = realloc(*buffer, *capacity);
        TLS_TEST_REQUIRE(*buffer != NULL);
    }
    if (pending > 0) TLS_TEST_REQUIRE(BIO_read(output, *buffer + *length, (int)pending) > 0);
    *length += pending;
    return pending;
}

/* Runs intake's handshake (handshake_run_job, one whole record per job) against `client`.
 * Returns the slot's last result (HANDSHAKE_DONE or HANDSHAKE_FAILED); `slot` holds the session
 * and principal, or the failure. Client bytes after the record that finished the handshake are
 * left in *leftover (malloc'ed, *leftover_bytes long) for the caller. */
static inline enum handshake_result tls_test_handshake(struct tls_server *server, SSL *client,
                                                       struct handshake_slot *slot,
                                                       uint64_t records_per_key_max,
                                                       uint8_t **leftover, size_t *leftover_bytes) {
    uint8_t *pending = NULL;
    size_t pending_bytes = 0, capacity = 0;
    enum handshake_result result = HANDSHAKE_CONTINUE;
    for (int round = 0; round < 16 && result == HANDSHAKE_CONTINUE; round++) {
        SSL_do_handshake(client);
        tls_test_take_client_output(client, &pending, &pending_bytes, &capacity);
        /* One record at a time, as the reactor reads them. */
        while (result == HANDSHAKE_CONTINUE && pending_bytes >= TLS_RECORD_HEADER_BYTES) {
            size_t record = TLS_RECORD_HEADER_BYTES + ((size_t)pending[3] << 8) + pending[4];
            if (record > pending_bytes) break;
            TLS_TEST_REQUIRE(record <= sizeof(slot->input));
            memcpy(slot->input, pending, record);
            slot->input_bytes = (uint32_t)record;
            slot->job = HANDSHAKE_JOB_STEP;
            handshake_run_job(server, records_per_key_max, slot);
            result = (enum handshake_result)slot->result;
            memmove(pending, pending + record, pending_bytes - record);
            pending_bytes -= record;
            if (slot->output_bytes > 0)
                TLS_TEST_REQUIRE(BIO_write(SSL_get_rbio(client), slot->output,
                                           (int)slot->output_bytes) == (int)slot->output_bytes);
        }
    }
    /* Let the client take the server's last flight (or its alert). */
    SSL_do_handshake(client);
    tls_test_take_client_output(client, &pending, &pending_bytes, &capacity);
    *leftover = pending;
    *leftover_bytes = pending_bytes;
    return result;
}

/* A new client (offering `suite`, verifying nothing) whose handshake with `server` finished: the
 * client, and intake's session and principal in `slot`. Aborts when it did not finish or left
 * bytes over. */
static inline SSL *tls_test_connect(struct tls_server *server, const char *suite,
                                    uint64_t records_per_key_max, struct handshake_slot *slot) {
    SSL *client = tls_test_client(suite, NULL, NULL, NULL);
    memset(slot, 0, sizeof(*slot));
    uint8_t *leftover = NULL;
    size_t leftover_bytes = 0;
    TLS_TEST_REQUIRE(tls_test_handshake(server, client, slot, records_per_key_max, &leftover,
                                        &leftover_bytes) == HANDSHAKE_DONE);
    TLS_TEST_REQUIRE(leftover_bytes == 0);
    free(leftover);
    return client;
}

/* Seals `inner` (content, inner type, padding: what goes under the AEAD) as one record of outer
 * type `outer_type` with the key and IV of `secret` (HKDF-Expand-Label: the record layer's, which
 * the handshake tests prove against OpenSSL), as record number `sequence` under that key. The
 * AEAD is EVP's, called here directly. Returns the record's bytes at `out`. */
static inline uint32_t tls_test_raw_seal(const struct tls_session *suite, const uint8_t *secret,
                                         uint64_t sequence, uint8_t outer_type,
                                         const uint8_t *inner, uint32_t inner_bytes, uint8_t *out) {
    uint8_t key[TLS_KEY_BYTES_MAX], iv[TLS_IV_BYTES];
    TLS_TEST_REQUIRE(tls_expand_label(suite->digest, secret, suite->secret_bytes, "key", key,
                                      suite->key_bytes) == 0);
    TLS_TEST_REQUIRE(
        tls_expand_label(suite->digest, secret, suite->secret_bytes, "iv", iv, TLS_IV_BYTES) == 0);
    for (int index = 0; index < 8; index++)
        iv[TLS_IV_BYTES - 1 - index] ^= (uint8_t)(sequence >> (8 * index));
    uint32_t length = inner_bytes + TLS_TAG_BYTES;
    uint8_t header[5] = {outer_type, 3, 3, (uint8_t)(length >> 8), (uint8_t)length};
    memcpy(out, header, sizeof(header));
    EVP_CIPHER_CTX *context = EVP_CIPHER_CTX_new();
    int produced = 0, ignored = 0;
    TLS_TEST_REQUIRE(context != NULL);
    TLS_TEST_REQUIRE(EVP_EncryptInit_ex(context, suite->cipher, NULL, key, iv) == 1);
    TLS_TEST_REQUIRE(EVP_EncryptUpdate(context, NULL, &ignored, header, sizeof(header)) == 1);
    TLS_TEST_REQUIRE(EVP_EncryptUpdate(context, out + 5, &produced, inner, (int)inner_bytes) == 1);
    TLS_TEST_REQUIRE(EVP_EncryptFinal_ex(context, out + 5 + inner_bytes, &ignored) == 1);
    TLS_TEST_REQUIRE(EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_AEAD_GET_TAG, TLS_TAG_BYTES,
                                         out + 5 + inner_bytes) == 1);
    EVP_CIPHER_CTX_free(context);
    return 5 + length;
}

/* A server for `credentials`, with client certificates required when `mutual`. */
static inline void tls_test_server(struct tls_server *server,
                                   const struct tls_test_credentials *credentials, bool mutual) {
    struct tls_server_files files = {
        .certificate_path = credentials->server_certificate,
        .key_path = credentials->server_key,
        .client_ca_path = mutual ? credentials->ca : NULL,
    };
    char why[256] = "";
    int result = tls_server_init(server, &files, handshake_callbacks(), why, sizeof(why));
    if (result < 0) fprintf(stderr, "tls_server_init: %s\n", why);
    TLS_TEST_REQUIRE(result == 0);
}

#endif
