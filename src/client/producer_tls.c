/*
 * producer_tls.c: TLS 1.3 for the producer library (include/intake/producer.h, "TLS"), through
 * OpenSSL 3. Runs on the caller's thread, inside the public calls. Owns the SSL_CTX made at open
 * from the configured files, the BIO method through which OpenSSL reaches the socket, and one
 * SSL session per connection. The socket itself belongs to the caller (producer_session.c or
 * producer_plain.c), which decides when to wait and for what.
 *
 * Three choices the header does not spell out:
 *   - OpenSSL reaches the socket through our own BIO (tls_socket_write, tls_socket_read), not
 *     BIO_s_socket: that one writes with write(2), which raises SIGPIPE on a reset connection,
 *     and a library must neither die of it nor change the process's signal disposition. Ours
 *     sends with MSG_NOSIGNAL, never blocks, and keeps the errno of its last failure for the
 *     caller's error line.
 *   - Writes use SSL_MODE_ENABLE_PARTIAL_WRITE (each call returns once one record is out) and
 *     SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER. When a write would block, OpenSSL has already
 *     sealed those bytes into a record and will finish sending it on the next call, which must
 *     therefore present the same bytes again: `write_owed` says so, and the idempotent
 *     session keeps those bytes (it does not expire their record) until they are out.
 *   - A TCP end of stream without close_notify is an ordinary end of stream
 *     (SSL_OP_IGNORE_UNEXPECTED_EOF): intake's frames carry their own lengths, so a truncation
 *     can only lose bytes, as over plaintext, and is handled the same way (the acks say what
 *     was committed).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "producer_internal.h"

/* Offered in this order: AES-128-GCM first (the fastest with AES-NI), then the other two
 * suites intaked accepts. Nothing below TLS 1.3 is offered. */
#define TLS_CIPHERSUITES                                                                           \
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

/* --- the socket BIO --- */

static int tls_socket_write(BIO *bio, const char *bytes, int length) {
    struct producer_tls *tls = BIO_get_data(bio);
    BIO_clear_retry_flags(bio);
    ssize_t sent = send(tls->fd, bytes, (size_t)length, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent >= 0) return (int)sent;
    tls->socket_errno = errno;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) BIO_set_retry_write(bio);
    return -1;
}

static int tls_socket_read(BIO *bio, char *buffer, int capacity) {
    struct producer_tls *tls = BIO_get_data(bio);
    BIO_clear_retry_flags(bio);
    ssize_t received = recv(tls->fd, buffer, (size_t)capacity, MSG_DONTWAIT);
    if (received >= 0) return (int)received;
    tls->socket_errno = errno;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) BIO_set_retry_read(bio);
    return -1;
}

static long tls_socket_control(BIO *bio, int command, long number, void *pointer) {
    (void)bio;
    (void)number;
    (void)pointer;
    /* Writes go straight to the socket: there is nothing to flush. Nothing else applies. */
    return command == BIO_CTRL_FLUSH ? 1 : 0;
}

static int tls_socket_create(BIO *bio) {
    BIO_set_init(bio, 1);
    return 1;
}

static BIO_METHOD *tls_socket_method_new(void) {
    BIO_METHOD *method = BIO_meth_new(BIO_TYPE_SOURCE_SINK, "intake producer socket");
    if (method == NULL) return NULL;
    if (!BIO_meth_set_write(method, tls_socket_write) ||
        !BIO_meth_set_read(method, tls_socket_read) ||
        !BIO_meth_set_ctrl(method, tls_socket_control) ||
        !BIO_meth_set_create(method, tls_socket_create)) {
        BIO_meth_free(method);
        return NULL;
    }
    return method;
}

/* --- reasons --- */

/* What an error code from OpenSSL means for an intake producer, when that is not obvious. */
static const char *tls_hint(unsigned long code) {
    if (ERR_GET_LIB(code) != ERR_LIB_SSL) return "";
    switch (ERR_GET_REASON(code)) {
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
        return " (intake requires a client certificate: tls_cert_file, tls_key_file)";
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
        return " (intake refused this producer's certificate)";
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_PACKET_LENGTH_TOO_LONG: return " (not a TLS server: a plaintext listener?)";
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
    case SSL_R_UNSUPPORTED_PROTOCOL: return " (the server does not offer TLS 1.3)";
    default: return "";
    }
}

/* Sets the reason from OpenSSL's error queue (then emptied: it is the calling thread's, and
 * the application may use OpenSSL too). */
static void tls_reason_from_queue(struct producer_tls *tls, const char *what) {
    unsigned long code = ERR_peek_error();
    char text[200] = "no detail from OpenSSL";
    if (code != 0) {
        const char *reason = ERR_reason_error_string(code);
        if (reason != NULL)
            snprintf(text, sizeof(text), "%s", reason);
        else
            ERR_error_string_n(code, text, sizeof(text));
    }
    snprintf(tls->reason, sizeof(tls->reason), "%s: %s%s", what, text, tls_hint(code));
    ERR_clear_error();
}

/* Certificate verification failures: names the certificate that failed and why. Runs inside
 * SSL_connect, on the caller's thread. */
static int tls_verify(int preverified, X509_STORE_CTX *store) {
    if (preverified) return 1;
    SSL *session = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct producer_tls *tls = SSL_get_app_data(session);
    INTAKE_ASSERT(tls != NULL);
    int error = X509_STORE_CTX_get_error(store);
    X509 *certificate = X509_STORE_CTX_get_current_cert(store);
    char subject[160] = "(none)";
    if (certificate != NULL)
        X509_NAME_oneline(X509_get_subject_name(certificate), subject, sizeof(subject));
    char expected[PRODUCER_TLS_NAME_BYTES + 40] = "";
    if (error == X509_V_ERR_HOSTNAME_MISMATCH || error == X509_V_ERR_IP_ADDRESS_MISMATCH)
        snprintf(expected, sizeof(expected), " (it does not name '%s')", tls->server_name);
    if (error == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
        error == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT ||
        error == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN)
        snprintf(expected, sizeof(expected), " (not signed by a CA in tls_ca_file)");
    snprintf(tls->reason, sizeof(tls->reason),
             "intake's certificate %s (depth %d) did not verify: %s%s", subject,
             X509_STORE_CTX_get_error_depth(store), X509_verify_cert_error_string(error), expected);
    tls->reason_error = -ECONNABORTED;
    return 0;
}

/* Maps a failed SSL call to the library's results: -EAGAIN (would block; which way is noted),
 * 0 (end of stream), or an error with the reason set. */
static ssize_t tls_failure(struct producer_tls *tls, int returned, const char *what) {
    switch (SSL_get_error(tls->session, returned)) {
    case SSL_ERROR_WANT_READ: tls->handshake_wants_write = false; return -EAGAIN;
    case SSL_ERROR_WANT_WRITE: tls->handshake_wants_write = true; return -EAGAIN;
    case SSL_ERROR_ZERO_RETURN: return 0;
    case SSL_ERROR_SYSCALL: {
        int error = tls->socket_errno ? tls->socket_errno : ECONNRESET;
        ERR_clear_error();
        snprintf(tls->reason, sizeof(tls->reason), "%s: %s", what, strerror(error));
        tls->reason_error = -error;
        return -error;
    }
    default:
        /* The verify callback has said it better; otherwise OpenSSL's queue says why. */
        if (tls->reason_error != -ECONNABORTED) tls_reason_from_queue(tls, what);
        ERR_clear_error();
        tls->reason_error = -ECONNABORTED;
        return -ECONNABORTED;
    }
}

/* --- the context (open) --- */

/* A key protected by a passphrase would make OpenSSL prompt on the terminal: refuse instead. */
static int tls_no_passphrase(char *buffer, int size, int writing, void *context) {
    (void)buffer;
    (void)size;
    (void)writing;
    (void)context;
    return 0;
}

/* The errno of opening `path`, so that a missing or unreadable file says so plainly. */
static int tls_check_readable(const char *field, const char *path, char *why, size_t capacity) {
    FILE *file = fopen(path, "r");
    if (file == NULL) {
        int error = errno;
        snprintf(why, capacity, "%s %s: %s", field, path, strerror(error));
        return -error;
    }
    fclose(file);
    return 0;
}

static int tls_openssl_refused(char *why, size_t capacity, const char *field, const char *path,
                               const char *what) {
    unsigned long code = ERR_peek_last_error();
    const char *reason = code ? ERR_reason_error_string(code) : NULL;
    snprintf(why, capacity, "%s %s: %s (OpenSSL: %s)", field, path, what,
             reason ? reason : "no detail");
    ERR_clear_error();
    return -EINVAL;
}

static int tls_load_files(SSL_CTX *context, const struct intake_producer_config *config, char *why,
                          size_t capacity) {
    int result = tls_check_readable("tls_ca_file", config->tls_ca_file, why, capacity);
    if (result < 0) return result;
    if (!SSL_CTX_load_verify_file(context, config->tls_ca_file))
        return tls_openssl_refused(why, capacity, "tls_ca_file", config->tls_ca_file,
                                   "no usable PEM certificate in it");
    if (config->tls_cert_file == NULL) return 0;
    result = tls_check_readable("tls_cert_file", config->tls_cert_file, why, capacity);
    if (result == 0)
        result = tls_check_readable("tls_key_file", config->tls_key_file, why, capacity);
    if (result < 0) return result;
    if (!SSL_CTX_use_certificate_chain_file(context, config->tls_cert_file))
        return tls_openssl_refused(why, capacity, "tls_cert_file", config->tls_cert_file,
                                   "no usable PEM certificate in it");
    if (!SSL_CTX_use_PrivateKey_file(context, config->tls_key_file, SSL_FILETYPE_PEM)) {
        bool mismatch = ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH;
        return tls_openssl_refused(why, capacity, "tls_key_file", config->tls_key_file,
                                   mismatch ? "does not match tls_cert_file"
                                            : "no usable unencrypted PEM private key in it");
    }
    if (!SSL_CTX_check_private_key(context))
        return tls_openssl_refused(why, capacity, "tls_key_file", config->tls_key_file,
                                   "does not match tls_cert_file");
    return 0;
}

static int tls_check_config(const struct intake_producer_config *config, char *why,
                            size_t capacity) {
    if (config->tls_ca_file == NULL &&
        (config->tls_cert_file || config->tls_key_file || config->tls_server_name)) {
        snprintf(why, capacity, "TLS needs tls_ca_file (to verify intake's certificate)");
        return -EINVAL;
    }
    if ((config->tls_cert_file == NULL) != (config->tls_key_file == NULL)) {
        snprintf(why, capacity, "tls_cert_file and tls_key_file go together");
        return -EINVAL;
    }
    if (config->tls_server_name != NULL &&
        (config->tls_server_name[0] == '\0' ||
         strlen(config->tls_server_name) >= PRODUCER_TLS_NAME_BYTES)) {
        snprintf(why, capacity, "tls_server_name must be 1 to %d bytes",
                 PRODUCER_TLS_NAME_BYTES - 1);
        return -EINVAL;
    }
    return 0;
}

/* The name to verify: tls_server_name, else the address's host. */
static int tls_choose_name(struct producer_tls *tls, const struct intake_producer_config *config,
                           char *why, size_t capacity) {
    if (config->tls_server_name != NULL) {
        snprintf(tls->server_name, sizeof(tls->server_name), "%s", config->tls_server_name);
    } else if (producer_address_host(config->address, tls->server_name, sizeof(tls->server_name)) <
               0) {
        snprintf(why, capacity, "bad address '%s' (expected HOST:PORT or [IPv6]:PORT)",
                 config->address);
        return -EINVAL;
    }
    uint8_t address[16];
    tls->server_name_is_address = inet_pton(AF_INET, tls->server_name, address) == 1 ||
                                  inet_pton(AF_INET6, tls->server_name, address) == 1;
    return 0;
}

static SSL_CTX *tls_context_new(void) {
    SSL_CTX *context = SSL_CTX_new(TLS_client_method());
    if (context == NULL) return NULL;
    if (!SSL_CTX_set_min_proto_version(context, TLS1_3_VERSION) ||
        !SSL_CTX_set_max_proto_version(context, TLS1_3_VERSION) ||
        !SSL_CTX_set_ciphersuites(context, TLS_CIPHERSUITES)) {
        SSL_CTX_free(context);
        return NULL;
    }
    SSL_CTX_set_verify(context, SSL_VERIFY_PEER, tls_verify);
    SSL_CTX_set_default_passwd_cb(context, tls_no_passphrase);
    SSL_CTX_set_mode(context, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_options(context, SSL_OP_IGNORE_UNEXPECTED_EOF);
    return context;
}

int producer_tls_open(struct producer_tls *tls, const struct intake_producer_config *config,
                      char *why, size_t why_capacity) {
    INTAKE_ASSERT(tls->context == NULL);
    INTAKE_ASSERT(tls->session == NULL);
    tls->fd = -1;
    tls->key_update_records = PRODUCER_TLS_KEY_UPDATE_RECORDS;
    int result = tls_check_config(config, why, why_capacity);
    if (result < 0 || config->tls_ca_file == NULL) return result;
    result = tls_choose_name(tls, config, why, why_capacity);
    if (result < 0) return result;
    tls->context = tls_context_new();
    tls->socket_method = tls_socket_method_new();
    if (tls->context == NULL || tls->socket_method == NULL) {
        snprintf(why, why_capacity, "OpenSSL could not make a TLS 1.3 client context");
        ERR_clear_error();
        producer_tls_close(tls);
        return -ENOMEM;
    }
    result = tls_load_files(tls->context, config, why, why_capacity);
    if (result < 0) producer_tls_close(tls);
    return result;
}

void producer_tls_close(struct producer_tls *tls) {
    if (tls->session != NULL) producer_tls_end(tls, false);
    SSL_CTX_free(tls->context);
    BIO_meth_free(tls->socket_method);
    tls->context = NULL;
    tls->socket_method = NULL;
}

/* --- one session per connection --- */

int producer_tls_begin(struct producer_tls *tls, int fd) {
    INTAKE_ASSERT(tls->context != NULL);
    INTAKE_ASSERT(tls->session == NULL);
    INTAKE_ASSERT(fd >= 0);
    tls->reason_error = 0;
    tls->reason[0] = '\0';
    tls->fd = fd;
    tls->socket_errno = 0;
    tls->write_owed = false;
    tls->handshake_wants_write = true; /* the ClientHello goes first */
    tls->records_since_key_update = 0;
    SSL *session = SSL_new(tls->context);
    BIO *bio = BIO_new(tls->socket_method);
    if (session == NULL || bio == NULL) {
        SSL_free(session);
        BIO_free(bio);
        ERR_clear_error();
        snprintf(tls->reason, sizeof(tls->reason), "OpenSSL could not start a TLS session");
        tls->reason_error = -ENOMEM;
        return -ENOMEM;
    }
    BIO_set_data(bio, tls);
    SSL_set_bio(session, bio, bio);
    SSL_set_app_data(session, tls);
    /* SNI carries host names only (RFC 6066); an address is matched against IP SANs. */
    bool named = tls->server_name_is_address
                     ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(session), tls->server_name)
                     : SSL_set_tlsext_host_name(session, tls->server_name) &&
                           SSL_set1_host(session, tls->server_name);
    if (!named) {
        SSL_free(session);
        ERR_clear_error();
        snprintf(tls->reason, sizeof(tls->reason), "cannot verify the name '%s'", tls->server_name);
        tls->reason_error = -EINVAL;
        return -EINVAL;
    }
    SSL_set_connect_state(session);
    tls->session = session;
    return 0;
}

int producer_tls_handshake(struct producer_tls *tls) {
    INTAKE_ASSERT(tls->session != NULL);
    ERR_clear_error();
    tls->socket_errno = 0;
    int returned = SSL_do_handshake(tls->session);
    if (returned == 1) return 0;
    ssize_t result = tls_failure(tls, returned, "TLS handshake");
    if (result != 0) return (int)result;
    snprintf(tls->reason, sizeof(tls->reason),
             "TLS handshake: intake closed the connection (not a TLS listener, or it refused "
             "the handshake)");
    tls->reason_error = -ECONNABORTED;
    return -ECONNABORTED;
}

void producer_tls_end(struct producer_tls *tls, bool graceful) {
    INTAKE_ASSERT(tls->session != NULL);
    /* A close_notify only on a healthy session, once, without waiting for the reply. Before
     * it, read what has arrived and nobody read (the server's session tickets, acks nobody
     * waited for): a socket closed with unread bytes sends an RST, and an RST can make the
     * server drop the last records it had received but not yet read. Bounded: 64 reads. */
    if (graceful && tls->reason_error == 0 && SSL_is_init_finished(tls->session)) {
        uint8_t discard[1024];
        size_t received = 0;
        for (int reads = 0; reads < 64; reads++) {
            ERR_clear_error();
            if (SSL_read_ex(tls->session, discard, sizeof(discard), &received) != 1) break;
        }
        ERR_clear_error();
        tls->socket_errno = 0;
        (void)SSL_shutdown(tls->session);
    }
    ERR_clear_error();
    SSL_free(tls->session); /* frees the BIO too */
    tls->session = NULL;
    tls->fd = -1;
    tls->write_owed = false;
}

/* After enough records under one key, asks for new traffic keys; sent with the next record. */
static void tls_maybe_update_keys(struct producer_tls *tls) {
    if (tls->records_since_key_update < tls->key_update_records) return;
    tls->records_since_key_update = 0;
    if (SSL_key_update(tls->session, SSL_KEY_UPDATE_NOT_REQUESTED))
        tls->key_updates++;
    else
        ERR_clear_error(); /* not possible right now: tried again after as many records */
}

ssize_t producer_tls_write(struct producer_tls *tls, const void *bytes, size_t length) {
    INTAKE_ASSERT(tls->session != NULL);
    INTAKE_ASSERT(length > 0);
    ERR_clear_error();
    tls->socket_errno = 0;
    bool owed = tls->write_owed;
    size_t written = 0;
    int returned = SSL_write_ex(tls->session, bytes, length, &written);
    if (returned == 1) {
        INTAKE_ASSERT(written > 0 && written <= length);
        tls->write_owed = false;
        /* One record per call (partial writes), plus the one it owed. */
        tls->records_since_key_update += owed ? 2 : 1;
        tls->records_written += owed ? 2 : 1;
        tls_maybe_update_keys(tls);
        return (ssize_t)written;
    }
    ssize_t result = tls_failure(tls, returned, "TLS");
    if (result == -EAGAIN) tls->write_owed = true;
    return result == 0 ? -EPIPE : result;
}

ssize_t producer_tls_read(struct producer_tls *tls, void *buffer, size_t capacity) {
    INTAKE_ASSERT(tls->session != NULL);
    INTAKE_ASSERT(capacity > 0);
    ERR_clear_error();
    tls->socket_errno = 0;
    size_t received = 0;
    if (SSL_read_ex(tls->session, buffer, capacity, &received) == 1) {
        tls->records_read++;
        return (ssize_t)received;
    }
    return tls_failure(tls, 0, "TLS");
}
