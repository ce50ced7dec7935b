/*
 * tls_server.c: building the server's SSL_CTX from its files, and swapping it on a reload
 * (see tls_server.h). Main thread, except tls_server_new_ssl (handshake threads).
 */
#include "tls_server.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

/* The three TLS 1.3 suites intake offers (tls_record.h names their record protection). */
#define TLS_SERVER_CIPHER_SUITES                                                                   \
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

/* Opens `path` for reading, or says why in one line naming the flag. */
static FILE *tls_server_open(const char *flag, const char *path, char *why, size_t why_capacity) {
    FILE *file = fopen(path, "r");
    if (file == NULL)
        intake_error_line(why, why_capacity, "cannot read %s %s: %s", flag, path, strerror(errno));
    return file;
}

/* "2026-12-07 19:09:25 UTC", or "?" when OpenSSL cannot read the time. */
static void tls_server_time_text(const ASN1_TIME *time, char *text, size_t capacity) {
    struct tm parts;
    if (ASN1_TIME_to_tm(time, &parts) != 1 ||
        strftime(text, capacity, "%Y-%m-%d %H:%M:%S UTC", &parts) == 0)
        snprintf(text, capacity, "?");
}

/* The leaf (the file's first certificate) is within its validity period. */
static int tls_server_check_leaf(const char *path, char *why, size_t why_capacity) {
    FILE *file = tls_server_open("--tls-cert", path, why, why_capacity);
    if (file == NULL) return -ENOENT;
    X509 *leaf = PEM_read_X509(file, NULL, NULL, NULL);
    fclose(file);
    if (leaf == NULL) {
        intake_error_line(why, why_capacity, "--tls-cert %s holds no PEM certificate", path);
        return -EINVAL;
    }
    int result = 0;
    char when[64];
    if (X509_cmp_current_time(X509_get0_notBefore(leaf)) >= 0) {
        tls_server_time_text(X509_get0_notBefore(leaf), when, sizeof(when));
        intake_error_line(why, why_capacity, "--tls-cert %s is not valid until %s", path, when);
        result = -EINVAL;
    } else if (X509_cmp_current_time(X509_get0_notAfter(leaf)) <= 0) {
        tls_server_time_text(X509_get0_notAfter(leaf), when, sizeof(when));
        intake_error_line(why, why_capacity, "--tls-cert %s expired on %s", path, when);
        result = -EINVAL;
    }
    X509_free(leaf);
    return result;
}

/* The CA file is readable and holds at least one certificate. */
static int tls_server_check_client_ca(const char *path, char *why, size_t why_capacity) {
    FILE *file = tls_server_open("--tls-client-ca", path, why, why_capacity);
    if (file == NULL) return -ENOENT;
    uint32_t certificates = 0;
    for (X509 *certificate; (certificate = PEM_read_X509(file, NULL, NULL, NULL)) != NULL;) {
        X509_free(certificate);
        certificates++;
    }
    fclose(file);
    if (certificates == 0) {
        intake_error_line(why, why_capacity, "--tls-client-ca %s holds no certificate", path);
        return -EINVAL;
    }
    return 0;
}

/* Keys with a pass phrase are refused, never prompted for on a terminal. */
static int tls_server_no_pass_phrase(char *buffer, int size, int writing, void *context) {
    (void)buffer;
    (void)size;
    (void)writing;
    (void)context;
    return -1;
}

/* The key file is readable, a PEM private key, and the certificate's. */
static int tls_server_use_key(SSL_CTX *context, const struct tls_server_files *files, char *why,
                              size_t why_capacity) {
    FILE *file = tls_server_open("--tls-key", files->key_path, why, why_capacity);
    if (file == NULL) return -ENOENT;
    EVP_PKEY *key = PEM_read_PrivateKey(file, NULL, tls_server_no_pass_phrase, NULL);
    fclose(file);
    if (key == NULL) {
        intake_error_line(why, why_capacity,
                          "--tls-key %s is not a PEM private key (or it is encrypted)",
                          files->key_path);
        return -EINVAL;
    }
    int result = 0;
    if (SSL_CTX_use_PrivateKey(context, key) != 1 || SSL_CTX_check_private_key(context) != 1) {
        intake_error_line(why, why_capacity, "--tls-key %s does not match the certificate in %s",
                          files->key_path, files->certificate_path);
        result = -EINVAL;
    }
    EVP_PKEY_free(key);
    return result;
}

/* Client certificates are required and verified against the CA file (mTLS). */
static int tls_server_use_client_ca(SSL_CTX *context, const struct tls_server_files *files,
                                    const struct tls_server_callbacks *callbacks, char *why,
                                    size_t why_capacity) {
    int result = tls_server_check_client_ca(files->client_ca_path, why, why_capacity);
    if (result < 0) return result;
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(files->client_ca_path);
    if (SSL_CTX_load_verify_locations(context, files->client_ca_path, NULL) != 1 || names == NULL) {
        sk_X509_NAME_pop_free(names, X509_NAME_free);
        intake_error_line(why, why_capacity, "--tls-client-ca %s: OpenSSL cannot load it",
                          files->client_ca_path);
        return -EINVAL;
    }
    /* The CertificateRequest names these CAs, so a client with several certificates picks. */
    SSL_CTX_set_client_CA_list(context, names);
    SSL_CTX_set_verify(context, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                       callbacks->verify);
    return 0;
}

/* What every context has: the protocol, the suites, no tickets, no resumption, no early data. */
static int tls_server_protocol(SSL_CTX *context, const struct tls_server_callbacks *callbacks) {
    if (SSL_CTX_set_min_proto_version(context, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(context, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_ciphersuites(context, TLS_SERVER_CIPHER_SUITES) != 1 ||
        SSL_CTX_set_num_tickets(context, 0) != 1)
        return -EIO;
    SSL_CTX_set_options(context, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_session_cache_mode(context, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_max_early_data(context, 0);
    SSL_CTX_set_keylog_callback(context, callbacks->keylog);
    return 0;
}

int tls_server_build_context(const struct tls_server_files *files,
                             const struct tls_server_callbacks *callbacks, SSL_CTX **out, char *why,
                             size_t why_capacity) {
    INTAKE_ASSERT(files != NULL && callbacks != NULL && out != NULL);
    INTAKE_ASSERT(files->certificate_path != NULL && files->key_path != NULL);
    *out = NULL;
    SSL_CTX *context = NULL;
    int result = tls_server_check_leaf(files->certificate_path, why, why_capacity);
    if (result < 0) goto fail;
    context = SSL_CTX_new(TLS_server_method());
    if (context == NULL || tls_server_protocol(context, callbacks) < 0) {
        intake_error_line(why, why_capacity, "OpenSSL cannot make a TLS 1.3 server context");
        result = -EIO;
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(context, files->certificate_path) != 1) {
        intake_error_line(why, why_capacity, "--tls-cert %s: OpenSSL cannot load its chain",
                          files->certificate_path);
        result = -EINVAL;
        goto fail;
    }
    result = tls_server_use_key(context, files, why, why_capacity);
    if (result == 0 && files->client_ca_path != NULL)
        result = tls_server_use_client_ca(context, files, callbacks, why, why_capacity);
    if (result < 0) goto fail;
    /* Reading PEM files to their end leaves "no start line" behind even when all went well. */
    ERR_clear_error();
    *out = context;
    return 0;

fail:
    /* What OpenSSL queued on the way is said in `why`; it must not leak into later calls. */
    ERR_clear_error();
    SSL_CTX_free(context);
    return result;
}

int tls_server_init(struct tls_server *server, const struct tls_server_files *files,
                    const struct tls_server_callbacks *callbacks, char *why, size_t why_capacity) {
    memset(server, 0, sizeof(*server));
    server->files = *files;
    server->callbacks = *callbacks;
    int result = tls_server_build_context(files, callbacks, &server->current, why, why_capacity);
    if (result < 0) return result;
    pthread_mutex_init(&server->lock, NULL);
    return 0;
}

void tls_server_destroy(struct tls_server *server) {
    if (server->current == NULL) return;
    SSL_CTX_free(server->current);
    server->current = NULL;
    pthread_mutex_destroy(&server->lock);
}

int tls_server_reload(struct tls_server *server, char *why, size_t why_capacity) {
    INTAKE_ASSERT(server->current != NULL);
    SSL_CTX *fresh = NULL;
    int result =
        tls_server_build_context(&server->files, &server->callbacks, &fresh, why, why_capacity);
    if (result < 0) return result;
    pthread_mutex_lock(&server->lock);
    SSL_CTX *old = server->current;
    server->current = fresh;
    server->reloads++;
    pthread_mutex_unlock(&server->lock);
    /* Handshakes still on the old context hold their own references to it. */
    SSL_CTX_free(old);
    return 0;
}

SSL *tls_server_new_ssl(struct tls_server *server) {
    pthread_mutex_lock(&server->lock);
    INTAKE_ASSERT(server->current != NULL);
    SSL *ssl = SSL_new(server->current);
    pthread_mutex_unlock(&server->lock);
    return ssl;
}

bool tls_server_requires_client_certificates(const struct tls_server *server) {
    return server->files.client_ca_path != NULL;
}
