/*
 * tls_server.h: the TLS server configuration every handshake starts from: one OpenSSL SSL_CTX
 * built from the certificate, key and client-CA files, and the one place it is swapped on a
 * reload.
 *
 * The context is TLS 1.3 only, with TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384 and
 * TLS_CHACHA20_POLY1305_SHA256; it issues no session tickets (nothing needs OpenSSL once a
 * handshake is done) and accepts no early data. With a client CA file, a client certificate is
 * required and verified against it (mTLS). Handshake callbacks (key log, certificate checks) are
 * installed by the handshake module through tls_server_callbacks.
 *
 * Building checks what an operator gets wrong and says it in one line: a file that is missing
 * or unreadable, a certificate file with no PEM certificate, a key that is not a PEM private key
 * or does not match the certificate, a certificate that is expired or not yet valid, a CA file
 * with no certificate.
 *
 * Threads: tls_server_build and tls_server_reload run on the main thread (startup, SIGHUP);
 * tls_server_new_ssl on handshake threads. The current context is read under a mutex, and every
 * SSL object keeps a reference to the context it was made from, so a reload never disturbs a
 * handshake in progress: new handshakes use the new context, old ones finish on theirs.
 */
#ifndef INTAKE_TLS_SERVER_H
#define INTAKE_TLS_SERVER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "common.h"

/* The files a context is built from (paths as given on the command line). */
struct tls_server_files {
    const char *certificate_path; /* --tls-cert: PEM, the leaf first, then its chain */
    const char *key_path;         /* --tls-key: PEM private key */
    const char *client_ca_path;   /* --tls-client-ca: PEM CA certificates, or NULL (no mTLS) */
};

/* What the handshake module installs in every context it is handed (callbacks of OpenSSL's). */
struct tls_server_callbacks {
    SSL_CTX_keylog_cb_func keylog;
    SSL_verify_cb verify;
};

struct tls_server {
    pthread_mutex_t lock;
    SSL_CTX *current; /* under lock */
    struct tls_server_files files;
    struct tls_server_callbacks callbacks;
    uint64_t reloads; /* successful reloads, under lock */
};

/* Main thread, startup: builds the first context from `files` (the strings must outlive the
 * server). 0, or a negative errno with one line in `why`. */
int tls_server_init(struct tls_server *server, const struct tls_server_files *files,
                    const struct tls_server_callbacks *callbacks, char *why,
                    size_t why_capacity) INTAKE_MUST_CHECK;
void tls_server_destroy(struct tls_server *server);

/* Main thread: builds a new context from the same files; on success new handshakes use it.
 * On failure the current context stays and `why` says why in one line. */
int tls_server_reload(struct tls_server *server, char *why, size_t why_capacity) INTAKE_MUST_CHECK;

/* Handshake threads: a new server-side SSL object from the current context, or NULL when
 * OpenSSL cannot make one. */
SSL *tls_server_new_ssl(struct tls_server *server);

/* Whether the current configuration verifies client certificates (a client CA file is set). */
bool tls_server_requires_client_certificates(const struct tls_server *server);

/* Builds one context from `files` (the checks above). Exposed for tests and benchmarks. */
int tls_server_build_context(const struct tls_server_files *files,
                             const struct tls_server_callbacks *callbacks, SSL_CTX **out, char *why,
                             size_t why_capacity) INTAKE_MUST_CHECK;

#endif
