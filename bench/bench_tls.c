/*
 * bench_tls.c: TLS 1.3 for intake-bench's own producers (see bench_tls.h). Runs on main (the
 * context) and on each producer thread (its session). intake-bench ignores SIGPIPE when TLS is
 * on: OpenSSL writes to the socket with write(2).
 */
#include "bench_tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common.h"

/* One line from OpenSSL's queue (then emptied: it is the calling thread's). */
static void bench_tls_reason(char *why, size_t capacity, const char *what) {
    unsigned long code = ERR_peek_error();
    const char *reason = code ? ERR_reason_error_string(code) : NULL;
    snprintf(why, capacity, "%s: %s", what, reason ? reason : "no detail from OpenSSL");
    ERR_clear_error();
}

int bench_tls_context(const struct bench_tls_options *options, SSL_CTX **out, char *why,
                      size_t why_capacity) {
    INTAKE_ASSERT(options->ca_file != NULL);
    *out = NULL;
    SSL_CTX *context = SSL_CTX_new(TLS_client_method());
    if (context == NULL) {
        bench_tls_reason(why, why_capacity, "SSL_CTX_new");
        return -ENOMEM;
    }
    const char *problem = NULL;
    if (!SSL_CTX_set_min_proto_version(context, TLS1_3_VERSION) ||
        !SSL_CTX_set_max_proto_version(context, TLS1_3_VERSION))
        problem = "TLS 1.3 only";
    else if (!SSL_CTX_set_ciphersuites(context, options->ciphersuite))
        problem = "--tls-ciphersuite";
    else if (!SSL_CTX_load_verify_file(context, options->ca_file))
        problem = "--tls-ca";
    else if (options->cert_file && !SSL_CTX_use_certificate_chain_file(context, options->cert_file))
        problem = "--tls-cert";
    else if (options->key_file &&
             !SSL_CTX_use_PrivateKey_file(context, options->key_file, SSL_FILETYPE_PEM))
        problem = "--tls-key";
    if (problem != NULL) {
        bench_tls_reason(why, why_capacity, problem);
        SSL_CTX_free(context);
        return -EINVAL;
    }
    SSL_CTX_set_verify(context, SSL_VERIFY_PEER, NULL);
    *out = context;
    return 0;
}

void bench_tls_context_free(SSL_CTX *context) {
    SSL_CTX_free(context);
}

/* Waits for the socket as OpenSSL asks, up to the deadline: true when it may go on. */
static bool bench_tls_wait(SSL *session, int fd, int result, uint64_t deadline_ns) {
    int error = SSL_get_error(session, result);
    if (error != SSL_ERROR_WANT_READ && error != SSL_ERROR_WANT_WRITE) return false;
    uint64_t now_ns = intake_now_ns();
    if (now_ns >= deadline_ns) return false;
    struct pollfd poll_fd = {fd, error == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, 0};
    (void)poll(&poll_fd, 1, (int)((deadline_ns - now_ns) / 1000000u) + 1);
    return true;
}

static bool bench_tls_name(SSL *session, const struct bench_tls_options *options,
                           const char *host) {
    if (options->server_name != NULL)
        return SSL_set_tlsext_host_name(session, options->server_name) &&
               SSL_set1_host(session, options->server_name);
    uint8_t address[16];
    if (inet_pton(AF_INET, host, address) == 1 || inet_pton(AF_INET6, host, address) == 1)
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(session), host);
    return SSL_set_tlsext_host_name(session, host) && SSL_set1_host(session, host);
}

int bench_tls_connect(SSL_CTX *context, int fd, const struct bench_tls_options *options,
                      const char *host, uint32_t timeout_ms, SSL **out, char *why,
                      size_t why_capacity) {
    *out = NULL;
    SSL *session = SSL_new(context);
    if (session == NULL || !SSL_set_fd(session, fd) || !bench_tls_name(session, options, host)) {
        bench_tls_reason(why, why_capacity, "TLS session");
        SSL_free(session);
        return -ENOMEM;
    }
    uint64_t deadline_ns = intake_now_ns() + (uint64_t)timeout_ms * 1000000u;
    int result;
    while ((result = SSL_connect(session)) != 1) {
        if (bench_tls_wait(session, fd, result, deadline_ns)) continue;
        long verified = SSL_get_verify_result(session);
        if (verified != X509_V_OK)
            snprintf(why, why_capacity, "TLS handshake: the server's certificate: %s",
                     X509_verify_cert_error_string(verified));
        else
            bench_tls_reason(why, why_capacity, "TLS handshake");
        ERR_clear_error();
        SSL_free(session);
        return -ECONNABORTED;
    }
    *out = session;
    return 0;
}

int bench_tls_write_all(SSL *session, const uint8_t *bytes, size_t length, uint64_t deadline_ns) {
    int fd = SSL_get_fd(session);
    while (length > 0) {
        size_t written = 0;
        /* A retry after a timeout presents the same bytes, as OpenSSL requires. */
        int result = SSL_write_ex(session, bytes, length, &written);
        if (result == 1) {
            bytes += written;
            length -= written;
            continue;
        }
        if (!bench_tls_wait(session, fd, result, deadline_ns)) {
            int error = SSL_get_error(session, result);
            ERR_clear_error();
            return error == SSL_ERROR_WANT_WRITE || error == SSL_ERROR_WANT_READ ? -ETIMEDOUT
                   : errno                                                       ? -errno
                                                                                 : -EPIPE;
        }
    }
    return 0;
}

ssize_t bench_tls_read(SSL *session, int fd, void *buffer, size_t capacity, bool wait) {
    if (!wait && SSL_pending(session) == 0) {
        struct pollfd poll_fd = {fd, POLLIN, 0};
        if (poll(&poll_fd, 1, 0) <= 0) return -EAGAIN;
    }
    size_t received = 0;
    int result = SSL_read_ex(session, buffer, capacity, &received);
    if (result == 1) return (ssize_t)received;
    int error = SSL_get_error(session, result);
    ERR_clear_error();
    if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) return -EAGAIN;
    if (error == SSL_ERROR_ZERO_RETURN) return 0;
    return errno ? -errno : -EPROTO;
}

const char *bench_tls_cipher(const SSL *session) {
    return SSL_get_cipher_name(session);
}

void bench_tls_close(SSL *session) {
    if (session == NULL) return;
    (void)SSL_shutdown(session);
    ERR_clear_error();
    SSL_free(session);
}
