/*
 * bench_tls.h: TLS 1.3 for intake-bench's own producers (--tls-ca), so bench/run can put TLS
 * producers next to plaintext ones and measure what TLS costs each side (issue 17). OpenSSL
 * runs on the producer's own blocking socket (1 s timeouts, as without TLS); the cipher suite
 * is --tls-ciphersuite (TLS_AES_128_GCM_SHA256 by default), the only one offered, so the run
 * measures the suite it names. The library producers (--producer library) use the producer
 * library's own TLS (include/intake/producer.h) instead.
 *
 * Threads: main makes the context before the producers start (nothing changes it after);
 * each producer thread owns its connection's SSL.
 */
#ifndef BENCH_TLS_H
#define BENCH_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define BENCH_TLS_CIPHERSUITE_DEFAULT "TLS_AES_128_GCM_SHA256"

struct bench_tls_options {
    const char *ca_file;   /* NULL: no TLS */
    const char *cert_file; /* a client certificate (mutual TLS), with key_file */
    const char *key_file;
    const char *server_name; /* verified and sent as SNI; NULL: the --host address, as an IP */
    const char *ciphersuite; /* the TLS 1.3 suite offered */
};

struct ssl_ctx_st;
struct ssl_st;

/* A TLS 1.3 client context for `options`: 0, or a negative errno with one line in `why`. */
int bench_tls_context(const struct bench_tls_options *options, struct ssl_ctx_st **context,
                      char *why, size_t why_capacity) __attribute__((warn_unused_result));
void bench_tls_context_free(struct ssl_ctx_st *context);
/* The handshake on a connected blocking socket (retried through its timeouts up to
 * timeout_ms): 0 with *session set, or a negative errno with one line in `why`. */
int bench_tls_connect(struct ssl_ctx_st *context, int fd, const struct bench_tls_options *options,
                      const char *host, uint32_t timeout_ms, struct ssl_st **session, char *why,
                      size_t why_capacity) __attribute__((warn_unused_result));
/* Writes all of bytes[0..length), retrying through the socket's send timeout until
 * deadline_ns: 0, -ETIMEDOUT or a negative errno. */
int bench_tls_write_all(struct ssl_st *session, const uint8_t *bytes, size_t length,
                        uint64_t deadline_ns) __attribute__((warn_unused_result));
/* One read of plaintext: bytes (> 0), 0 at the end of the stream, -EAGAIN when nothing came
 * (without `wait`, nothing is read unless something is buffered or readable; with it, up to
 * the socket's receive timeout), or a negative errno. */
ssize_t bench_tls_read(struct ssl_st *session, int fd, void *buffer, size_t capacity, bool wait);
/* The negotiated suite's name (for the result line). */
const char *bench_tls_cipher(const struct ssl_st *session);
/* Sends close_notify (without waiting) and frees the session; the caller closes the socket. */
void bench_tls_close(struct ssl_st *session);

#endif
