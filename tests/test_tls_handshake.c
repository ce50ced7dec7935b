/*
 * test_tls_handshake: intake's handshake code (handshake_run_job, one record per job, as a
 * handshake thread runs it) and its server context (tls_server.c), against OpenSSL clients.
 *
 *   - principals: with client certificates required, a certificate's first URI SAN, else its
 *     CN; a certificate naming neither, a URI SAN longer than 255 bytes, or a CN holding a NUL
 *     fails the handshake with the reason "principal"; without mTLS every peer is anonymous;
 *   - failure reasons: no client certificate, another CA's certificate, a TLS 1.2 client, no
 *     shared suite; each failure still hands back OpenSSL's alert to send;
 *   - RSA-2048 credentials as well as ECDSA P-256;
 *   - the startup checks, each with its one line: missing or unreadable files, a certificate file
 *     without a certificate, a key that is not one or does not match, an expired or not yet valid
 *     certificate, a CA file without a certificate;
 *   - reload: a good one swaps the context, a broken one keeps the old and says why.
 */
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "tls_test_util.h"

static char directory[] = "/tmp/intake-tls-handshake-XXXXXX";

static struct handshake_slot slot;

/* A handshake of a fresh client with `server`; returns the slot's result. */
static enum handshake_result run(struct tls_server *server, const char *suite, const char *ca,
                                 const char *certificate, const char *key) {
    SSL *client = tls_test_client(suite, ca, certificate, key);
    memset(&slot, 0, sizeof(slot));
    uint8_t *leftover = NULL;
    size_t leftover_bytes = 0;
    enum handshake_result result =
        tls_test_handshake(server, client, &slot, 0, &leftover, &leftover_bytes);
    free(leftover);
    tls_session_destroy(&slot.session);
    CHECK(slot.ssl == NULL); /* the thread frees its SSL object when the handshake ends */
    SSL_free(client);
    return result;
}

/* A client certificate with `san` (may be NULL) and subject CN `common_name`
 * (`common_name_bytes` long, NUL allowed; 0: no CN at all), signed by a CA of its own: written
 * to PATH.pem, PATH.key and PATH-ca.pem. */
static void make_client(const char *path, const char *san, const char *common_name,
                        int common_name_bytes) {
    EVP_PKEY *ca_key = tls_test_key_new(TLS_TEST_KEY_ECDSA_P256);
    X509 *extra_ca = tls_test_certificate(ca_key, "extra CA", NULL, NULL, NULL, true);
    EVP_PKEY *key = tls_test_key_new(TLS_TEST_KEY_ECDSA_P256);
    X509 *certificate = X509_new();
    X509_set_version(certificate, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(certificate), 77);
    X509_gmtime_adj(X509_getm_notBefore(certificate), -3600);
    X509_gmtime_adj(X509_getm_notAfter(certificate), 86400);
    X509_set_pubkey(certificate, key);
    X509_NAME *name = X509_get_subject_name(certificate);
    if (common_name_bytes > 0)
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)common_name,
                                   common_name_bytes, -1, 0);
    else
        X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"intake", -1, -1,
                                   0);
    X509_set_issuer_name(certificate, X509_get_subject_name(extra_ca));
    if (san != NULL) tls_test_add_extension(certificate, extra_ca, NID_subject_alt_name, san);
    REQUIRE(X509_sign(certificate, ca_key, EVP_sha256()) > 0);
    char certificate_path[512], key_path[512], ca_path[512];
    snprintf(certificate_path, sizeof(certificate_path), "%s.pem", path);
    snprintf(key_path, sizeof(key_path), "%s.key", path);
    snprintf(ca_path, sizeof(ca_path), "%s-ca.pem", path);
    tls_test_write_pem(certificate_path, certificate, NULL);
    tls_test_write_pem(key_path, NULL, key);
    tls_test_write_pem(ca_path, extra_ca, NULL);
    X509_free(certificate);
    X509_free(extra_ca);
    EVP_PKEY_free(key);
    EVP_PKEY_free(ca_key);
}

static void check_principals(const struct tls_test_credentials *made) {
    struct tls_server server;
    tls_test_server(&server, made, true);
    const char *suite = "TLS_AES_128_GCM_SHA256";
    CHECK(run(&server, suite, made->ca, made->client_uri_certificate, made->client_uri_key) ==
          HANDSHAKE_DONE);
    CHECK(strcmp(slot.principal.name, "spiffe://intake/test/uri") == 0);
    CHECK(slot.principal.tag == principal_tag_of("spiffe://intake/test/uri", 24));
    CHECK(run(&server, suite, made->ca, made->client_cn_certificate, made->client_cn_key) ==
          HANDSHAKE_DONE);
    CHECK(strcmp(slot.principal.name, "cn-only-client") == 0);
    /* No certificate: refused, and OpenSSL's alert (certificate_required) goes back. */
    CHECK(run(&server, suite, made->ca, NULL, NULL) == HANDSHAKE_FAILED);
    CHECK(slot.failure == HANDSHAKE_FAILURE_NO_CLIENT_CERT);
    CHECK(slot.output_bytes > 0);
    tls_server_destroy(&server);

    /* Names from certificates of another CA, trusted by a server made for them. */
    struct {
        const char *name, *san, *common_name;
        int common_name_bytes;
        enum handshake_result result;
        const char *principal;
    } cases[] = {
        {"uri-first", "URI:spiffe://a/first,URI:spiffe://b/second", "ignored", 7, HANDSHAKE_DONE,
         "spiffe://a/first"},
        {"dns-then-cn", "DNS:host.example", "the-cn", 6, HANDSHAKE_DONE, "the-cn"},
        {"unicode-cn", NULL, "caf\xc3\xa9", 5, HANDSHAKE_DONE, "caf\xc3\xa9"},
        {"nameless", NULL, NULL, 0, HANDSHAKE_FAILED, NULL},
        {"nul-in-cn", NULL, "evil\0.example", 13, HANDSHAKE_FAILED, NULL},
        {"uri-too-long", NULL, "fine", 4, HANDSHAKE_FAILED, NULL},
    };
    char long_uri[300 + 8];
    snprintf(long_uri, sizeof(long_uri), "URI:spiffe://%0280d", 0);
    cases[5].san = long_uri;
    for (size_t index = 0; index < INTAKE_ARRAY_LENGTH(cases); index++) {
        char path[400], certificate[420], key[420], ca[420];
        snprintf(path, sizeof(path), "%s/%s", directory, cases[index].name);
        make_client(path, cases[index].san, cases[index].common_name,
                    cases[index].common_name_bytes);
        snprintf(certificate, sizeof(certificate), "%s.pem", path);
        snprintf(key, sizeof(key), "%s.key", path);
        snprintf(ca, sizeof(ca), "%s-ca.pem", path);
        struct tls_server_files files = {made->server_certificate, made->server_key, ca};
        char why[256] = "";
        struct tls_server extra;
        REQUIRE(tls_server_init(&extra, &files, handshake_callbacks(), why, sizeof(why)) == 0);
        enum handshake_result result = run(&extra, suite, made->ca, certificate, key);
        bool as_expected = result == cases[index].result;
        if (result == HANDSHAKE_DONE && cases[index].principal != NULL)
            as_expected &= strcmp(slot.principal.name, cases[index].principal) == 0;
        if (result == HANDSHAKE_FAILED)
            as_expected &= slot.failure == HANDSHAKE_FAILURE_PRINCIPAL && slot.output_bytes > 0;
        if (!as_expected)
            fprintf(stderr, "principal case %s: result %d failure %u principal \"%s\" (%s)\n",
                    cases[index].name, (int)result, slot.failure, slot.principal.name,
                    slot.failure_detail);
        CHECK(as_expected);
        /* The same certificate is someone else's on the server that trusts only the test CA. */
        tls_server_destroy(&extra);
    }
    tls_test_server(&server, made, true);
    char stranger[420], stranger_key[420];
    snprintf(stranger, sizeof(stranger), "%s/uri-first.pem", directory);
    snprintf(stranger_key, sizeof(stranger_key), "%s/uri-first.key", directory);
    CHECK(run(&server, suite, made->ca, stranger, stranger_key) == HANDSHAKE_FAILED);
    CHECK(slot.failure == HANDSHAKE_FAILURE_BAD_CERT);
    CHECK(strstr(slot.failure_detail, "certificate verify failed") != NULL);
    tls_server_destroy(&server);
}

static void check_protocol_refusals(const struct tls_test_credentials *made) {
    struct tls_server server;
    tls_test_server(&server, made, false);
    /* A client that speaks TLS 1.2 at most. */
    SSL_CTX *context = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_max_proto_version(context, TLS1_2_VERSION);
    SSL *client = SSL_new(context);
    SSL_set_bio(client, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
    SSL_set_connect_state(client);
    memset(&slot, 0, sizeof(slot));
    uint8_t *leftover = NULL;
    size_t leftover_bytes = 0;
    CHECK(tls_test_handshake(&server, client, &slot, 0, &leftover, &leftover_bytes) ==
          HANDSHAKE_FAILED);
    CHECK(slot.failure == HANDSHAKE_FAILURE_PROTOCOL);
    free(leftover);
    SSL_free(client);
    SSL_CTX_free(context);
    /* TLS 1.3 with a suite intake does not offer. */
    CHECK(run(&server, "TLS_AES_128_CCM_SHA256", NULL, NULL, NULL) == HANDSHAKE_FAILED);
    CHECK(slot.failure == HANDSHAKE_FAILURE_PROTOCOL);
    CHECK(slot.output_bytes > 0);
    /* Every offered suite works, and the principal is anonymous without mTLS. */
    CHECK(run(&server, "TLS_CHACHA20_POLY1305_SHA256", NULL, NULL, NULL) == HANDSHAKE_DONE);
    CHECK(strcmp(slot.principal.name, PRINCIPAL_ANONYMOUS) == 0);
    tls_server_destroy(&server);
}

static void check_rsa(void) {
    char rsa_directory[512];
    snprintf(rsa_directory, sizeof(rsa_directory), "%s/rsa", directory);
    REQUIRE(mkdir(rsa_directory, 0700) == 0);
    struct tls_test_credentials rsa;
    tls_test_credentials_write(&rsa, rsa_directory, TLS_TEST_KEY_RSA_2048);
    struct tls_server server;
    tls_test_server(&server, &rsa, true);
    CHECK(run(&server, "TLS_AES_256_GCM_SHA384", rsa.ca, rsa.client_uri_certificate,
              rsa.client_uri_key) == HANDSHAKE_DONE);
    CHECK(strcmp(slot.principal.name, "spiffe://intake/test/uri") == 0);
    tls_server_destroy(&server);
}

/* tls_server_build_context refuses `files` with a line containing `expected`. */
static void expect_refused(const struct tls_server_files *files, const char *expected) {
    SSL_CTX *context = NULL;
    char why[512] = "";
    int result = tls_server_build_context(files, handshake_callbacks(), &context, why, sizeof(why));
    bool refused = result < 0 && context == NULL && strstr(why, expected) != NULL;
    if (!refused)
        fprintf(stderr, "expected a refusal naming \"%s\", got %d: %s\n", expected, result, why);
    CHECK(refused);
    CHECK(strchr(why, '\n') == NULL);
    CHECK(ERR_peek_error() == 0);
    SSL_CTX_free(context);
}

/* A certificate for the server's key valid only from `from` to `until` seconds from now. */
static void make_dated(const struct tls_test_credentials *made, const char *path, long from,
                       long until) {
    FILE *file = fopen(made->server_key, "r");
    EVP_PKEY *key = PEM_read_PrivateKey(file, NULL, NULL, NULL);
    fclose(file);
    REQUIRE(key != NULL);
    X509 *certificate = tls_test_certificate(key, "localhost", NULL, NULL, NULL, false);
    X509_gmtime_adj(X509_getm_notBefore(certificate), from);
    X509_gmtime_adj(X509_getm_notAfter(certificate), until);
    REQUIRE(X509_sign(certificate, key, EVP_sha256()) > 0);
    tls_test_write_pem(path, certificate, NULL);
    X509_free(certificate);
    EVP_PKEY_free(key);
}

static void check_files(const struct tls_test_credentials *made) {
    char missing[512], expired[512], future[512], empty[512];
    snprintf(missing, sizeof(missing), "%s/missing.pem", directory);
    snprintf(expired, sizeof(expired), "%s/expired.pem", directory);
    snprintf(future, sizeof(future), "%s/future.pem", directory);
    snprintf(empty, sizeof(empty), "%s/empty.pem", directory);
    make_dated(made, expired, -7200, -3600);
    make_dated(made, future, 3600, 7200);
    FILE *file = fopen(empty, "w");
    fputs("# no certificate here\n", file);
    fclose(file);
    const char *certificate = made->server_certificate, *key = made->server_key;
    struct tls_server_files cases[] = {
        {missing, key, NULL},
        {certificate, missing, NULL},
        {key, key, NULL},
        {certificate, certificate, NULL},
        {certificate, made->client_cn_key, NULL},
        {expired, key, NULL},
        {future, key, NULL},
        {certificate, key, empty},
        {certificate, key, missing},
    };
    const char *expected[] = {
        "cannot read --tls-cert",
        "cannot read --tls-key",
        "holds no PEM certificate",
        "is not a PEM private key",
        "does not match the certificate",
        "expired on",
        "is not valid until",
        "--tls-client-ca",
        "cannot read --tls-client-ca",
    };
    for (size_t index = 0; index < INTAKE_ARRAY_LENGTH(cases); index++)
        expect_refused(&cases[index], expected[index]);
    /* An unreadable file (a directory stands in for one). */
    struct tls_server_files unreadable = {directory, key, NULL};
    expect_refused(&unreadable, "--tls-cert");
}

static void check_reload(const struct tls_test_credentials *made) {
    char rotated[512], rotated_key[512];
    snprintf(rotated, sizeof(rotated), "%s/rotating.pem", directory);
    snprintf(rotated_key, sizeof(rotated_key), "%s/rotating.key", directory);
    char command[2048];
    snprintf(command, sizeof(command), "cp %s %s && cp %s %s", made->server_certificate, rotated,
             made->server_key, rotated_key);
    REQUIRE(system(command) == 0);
    struct tls_server_files files = {rotated, rotated_key, NULL};
    struct tls_server server;
    char why[512] = "";
    REQUIRE(tls_server_init(&server, &files, handshake_callbacks(), why, sizeof(why)) == 0);
    SSL_CTX *first = server.current;
    /* A good reload: a new context, handshakes work on it. */
    CHECK(tls_server_reload(&server, why, sizeof(why)) == 0);
    CHECK(server.current != first && server.reloads == 1);
    CHECK(run(&server, "TLS_AES_128_GCM_SHA256", NULL, NULL, NULL) == HANDSHAKE_DONE);
    /* A broken key: the old context stays, and the line says why. */
    snprintf(command, sizeof(command), "cp %s %s", made->client_cn_key, rotated_key);
    REQUIRE(system(command) == 0);
    SSL_CTX *kept = server.current;
    CHECK(tls_server_reload(&server, why, sizeof(why)) < 0);
    CHECK(strstr(why, "does not match") != NULL);
    CHECK(server.current == kept && server.reloads == 1);
    CHECK(run(&server, "TLS_AES_128_GCM_SHA256", NULL, NULL, NULL) == HANDSHAKE_DONE);
    tls_server_destroy(&server);
}

int main(void) {
    REQUIRE(mkdtemp(directory) != NULL);
    struct tls_test_credentials made;
    tls_test_credentials_write(&made, directory, TLS_TEST_KEY_ECDSA_P256);
    check_principals(&made);
    check_protocol_refusals(&made);
    check_rsa();
    check_files(&made);
    check_reload(&made);
    char command[512];
    snprintf(command, sizeof(command), "rm -rf %s", directory);
    CHECK(system(command) == 0);
    return test_finish();
}
