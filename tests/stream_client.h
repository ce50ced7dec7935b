/*
 * stream_client.h: a producer thread for tests that need load while something else happens
 * (a reload, a quota): one connection streaming numbered records (sequences 1, 2, 3...) to one
 * topic, in batches of STREAM_BATCH per write, reading every Ack as it comes, until told to stop
 * or answered with a final non-OK Ack. Then the log can be checked against what it was told:
 * stream_log_sequences reads a topic's log with the consumer library. Header-only, like
 * raw_client.h.
 *
 * Plaintext, or TLS 1.3 through OpenSSL with a client certificate (stream_start_tls): the
 * principal of an mTLS listener is the certificate's name, so two certificates are two
 * principals. The socket is non-blocking under TLS and every OpenSSL "want" is waited for.
 */
#ifndef INTAKE_TEST_STREAM_CLIENT_H
#define INTAKE_TEST_STREAM_CLIENT_H

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "intake/consumer.h"
#include "raw_client.h"

/* Helpers are static; not every test program uses every one. */
#define STREAM_HELPER static __attribute__((unused))

#define STREAM_BATCH       32
#define STREAM_VALUE_BYTES 64
/* Records sent but not yet acked, at most: the streamer waits for Acks beyond this. */
#define STREAM_UNACKED_MAX 1024

struct stream_client {
    uint16_t port;
    char topic[64];
    _Atomic bool stop;      /* the test: finish (close, read the last Acks) */
    uint64_t limit;         /* finish by itself after this many records (0: until stopped) */
    _Atomic uint64_t sent;  /* the last sequence sent */
    _Atomic uint64_t acked; /* the highest sequence acked OK */
    _Atomic bool finished;  /* the thread is done: the fields below are final */
    bool final_not_ok;      /* a final Ack that was not OK came (final_ack holds it) */
    bool closed_unacked;    /* the connection ended without acking everything sent */
    struct raw_ack final_ack;
    uint64_t start_ns, end_ns; /* first write, and the last Ack read */
    pthread_t thread;
    struct raw_ack_reader reader;
    /* TLS (stream_start_tls): PEM files; tls_ca empty for plaintext. */
    char tls_ca[512], tls_certificate[512], tls_key[512];
    SSL_CTX *tls_context;
    SSL *tls;
    bool tls_failed; /* the handshake failed (nothing was sent) */
};

STREAM_HELPER uint64_t stream_now_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
}

/* Waits up to timeout_ms for the socket to be readable (POLLIN) or writable (POLLOUT). */
STREAM_HELPER void stream_wait_fd(int fd, short events, int timeout_ms) {
    struct pollfd descriptor = {.fd = fd, .events = events};
    poll(&descriptor, 1, timeout_ms);
}

/* Reads what arrived within `timeout_ms` into the reader: > 0 bytes, 0 nothing yet, -1 the
 * connection is over. */
STREAM_HELPER ssize_t stream_receive(struct stream_client *client, int timeout_ms) {
    struct raw_ack_reader *reader = &client->reader;
    size_t room = sizeof(reader->buffer) - reader->length;
    if (client->tls == NULL) {
        struct pollfd descriptor = {.fd = reader->fd, .events = POLLIN};
        if (poll(&descriptor, 1, timeout_ms) <= 0) return 0;
        ssize_t got = read(reader->fd, reader->buffer + reader->length, room);
        return got > 0 ? got : -1;
    }
    if (SSL_pending(client->tls) == 0) stream_wait_fd(reader->fd, POLLIN, timeout_ms);
    int got = SSL_read(client->tls, reader->buffer + reader->length, (int)room);
    if (got > 0) return got;
    int error = SSL_get_error(client->tls, got);
    return error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE ? 0 : -1;
}

/* Writes all of `bytes`; false when the connection is over (its final Ack says why). */
STREAM_HELPER bool stream_send(struct stream_client *client, const uint8_t *bytes, size_t length) {
    for (size_t done = 0; done < length;) {
        if (client->tls == NULL) {
            ssize_t written = send(client->reader.fd, bytes + done, length - done, MSG_NOSIGNAL);
            if (written <= 0) return false;
            done += (size_t)written;
            continue;
        }
        int written = SSL_write(client->tls, bytes + done, (int)(length - done));
        if (written > 0) {
            done += (size_t)written;
            continue;
        }
        int error = SSL_get_error(client->tls, written);
        if (error == SSL_ERROR_WANT_WRITE)
            stream_wait_fd(client->reader.fd, POLLOUT, 100);
        else if (error == SSL_ERROR_WANT_READ)
            stream_wait_fd(client->reader.fd, POLLIN, 100);
        else
            return false;
    }
    return true;
}

/* TLS 1.3 with the client's certificate over the connected socket (made non-blocking). */
STREAM_HELPER bool stream_handshake(struct stream_client *client) {
    SSL_CTX *context = SSL_CTX_new(TLS_client_method());
    client->tls_context = context;
    if (context == NULL || SSL_CTX_set_min_proto_version(context, TLS1_3_VERSION) != 1 ||
        SSL_CTX_load_verify_locations(context, client->tls_ca, NULL) != 1 ||
        SSL_CTX_use_certificate_chain_file(context, client->tls_certificate) != 1 ||
        SSL_CTX_use_PrivateKey_file(context, client->tls_key, SSL_FILETYPE_PEM) != 1)
        return false;
    SSL_CTX_set_verify(context, SSL_VERIFY_PEER, NULL);
    client->tls = SSL_new(context);
    if (client->tls == NULL || SSL_set_fd(client->tls, client->reader.fd) != 1 ||
        SSL_set_tlsext_host_name(client->tls, "localhost") != 1 ||
        SSL_set1_host(client->tls, "localhost") != 1)
        return false;
    fcntl(client->reader.fd, F_SETFL, fcntl(client->reader.fd, F_GETFL) | O_NONBLOCK);
    uint64_t deadline = stream_now_ns() + 30ull * 1000000000ull;
    for (;;) {
        int result = SSL_connect(client->tls);
        if (result == 1) return true;
        int error = SSL_get_error(client->tls, result);
        if (stream_now_ns() > deadline) return false;
        if (error == SSL_ERROR_WANT_READ)
            stream_wait_fd(client->reader.fd, POLLIN, 100);
        else if (error == SSL_ERROR_WANT_WRITE)
            stream_wait_fd(client->reader.fd, POLLOUT, 100);
        else
            return false;
    }
}

/* Takes the Acks that arrived within `timeout_ms`; false once the connection is over (a final
 * non-OK Ack, or the peer closed). */
STREAM_HELPER bool stream_read_acks(struct stream_client *client, int timeout_ms) {
    struct raw_ack_reader *reader = &client->reader;
    ssize_t got = stream_receive(client, timeout_ms);
    if (got < 0) return false;
    reader->length += (size_t)got;
    struct raw_ack ack;
    while (raw_ack_take(reader, &ack)) {
        if (ack.status != RAW_ACK_OK) {
            client->final_ack = ack;
            client->final_not_ok = true;
            return false;
        }
        if (ack.sequence > atomic_load(&client->acked)) atomic_store(&client->acked, ack.sequence);
    }
    return true;
}

/* The end of sending: close_notify under TLS, then the write side's FIN. */
STREAM_HELPER void stream_close_write(struct stream_client *client) {
    if (client->tls != NULL) SSL_shutdown(client->tls);
    shutdown(client->reader.fd, SHUT_WR);
}

STREAM_HELPER void stream_close(struct stream_client *client) {
    close(client->reader.fd);
    if (client->tls != NULL) SSL_free(client->tls);
    if (client->tls_context != NULL) SSL_CTX_free(client->tls_context);
    client->tls = NULL;
    client->tls_context = NULL;
}

STREAM_HELPER void *stream_thread(void *argument) {
    struct stream_client *client = argument;
    /* No check is counted on this thread (the harness's counters are the main thread's): a
     * failed connect shows as a stream that sent nothing and ended unacked. */
    client->reader.fd = raw_try_connect_port(client->port);
    bool connected = client->reader.fd >= 0;
    if (connected && client->tls_ca[0] != '\0' && !stream_handshake(client)) {
        client->tls_failed = true;
        connected = false;
        stream_close(client);
    }
    if (!connected) {
        client->closed_unacked = true;
        atomic_store(&client->finished, true);
        return NULL;
    }
    static _Thread_local uint8_t batch[STREAM_BATCH * (STREAM_VALUE_BYTES + 128)];
    bool open = true;
    client->start_ns = stream_now_ns();
    while (open && !atomic_load(&client->stop)) {
        uint64_t sequence = atomic_load(&client->sent);
        if (client->limit != 0 && sequence >= client->limit) break;
        if (sequence - atomic_load(&client->acked) >= STREAM_UNACKED_MAX) {
            open = stream_read_acks(client, 10);
            continue;
        }
        size_t length = 0;
        for (int index = 0; index < STREAM_BATCH; index++) {
            sequence++;
            length += raw_encode_record(batch + length, client->topic, (uint32_t)sequence,
                                        STREAM_VALUE_BYTES, sequence);
        }
        /* A failed write means the daemon ended the connection: its final Ack says why. */
        stream_send(client, batch, length);
        atomic_store(&client->sent, sequence);
        open = stream_read_acks(client, 0);
    }
    /* Done sending: half-close, then every Ack up to the last record, or the final one. */
    stream_close_write(client);
    uint64_t deadline = stream_now_ns() + 60ull * 1000000000ull;
    while (open && atomic_load(&client->acked) < atomic_load(&client->sent) &&
           stream_now_ns() < deadline)
        open = stream_read_acks(client, 10);
    client->end_ns = stream_now_ns();
    client->closed_unacked = atomic_load(&client->acked) < atomic_load(&client->sent);
    stream_close(client);
    atomic_store(&client->finished, true);
    return NULL;
}

STREAM_HELPER void stream_start(struct stream_client *client, uint16_t port, const char *topic) {
    memset(client, 0, sizeof(*client));
    client->port = port;
    snprintf(client->topic, sizeof(client->topic), "%s", topic);
    REQUIRE(pthread_create(&client->thread, NULL, stream_thread, client) == 0);
}

/* The same over TLS 1.3: trusting `ca` for the server ("localhost"), presenting `certificate`
 * and `key`; it finishes by itself after `limit` records (0: only when stopped). */
STREAM_HELPER void stream_start_tls(struct stream_client *client, uint16_t port, const char *topic,
                                    const char *ca, const char *certificate, const char *key,
                                    uint64_t limit) {
    memset(client, 0, sizeof(*client));
    client->port = port;
    client->limit = limit;
    snprintf(client->topic, sizeof(client->topic), "%s", topic);
    snprintf(client->tls_ca, sizeof(client->tls_ca), "%s", ca);
    snprintf(client->tls_certificate, sizeof(client->tls_certificate), "%s", certificate);
    snprintf(client->tls_key, sizeof(client->tls_key), "%s", key);
    REQUIRE(pthread_create(&client->thread, NULL, stream_thread, client) == 0);
}

/* Waits (up to timeout_ms) until `acked` reaches `wanted` or the stream is over. */
STREAM_HELPER bool stream_wait_acked(struct stream_client *client, uint64_t wanted,
                                     int timeout_ms) {
    for (int waited = 0; waited < timeout_ms; waited += 5) {
        if (atomic_load(&client->acked) >= wanted) return true;
        if (atomic_load(&client->finished)) return false;
        struct timespec pause = {0, 5 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    return false;
}

STREAM_HELPER void stream_finish(struct stream_client *client) {
    atomic_store(&client->stop, true);
    pthread_join(client->thread, NULL);
}

/* The sequences in `topic`'s log, in log order, up to `capacity`; -1 when it has no log. */
STREAM_HELPER long stream_log_sequences(const char *directory, const char *topic, uint64_t *out,
                                        size_t capacity) {
    struct intake_consumer_options options = INTAKE_CONSUMER_OPTIONS_INIT;
    options.start = INTAKE_CONSUMER_START_OLDEST;
    options.ephemeral = true;
    struct intake_consumer *consumer = NULL;
    if (intake_consumer_open(directory, topic, "stream-check", &options, &consumer, NULL, 0) != 0)
        return -1;
    size_t count = 0;
    struct intake_consumer_record record;
    while (intake_consumer_poll(consumer, &record) == 1) {
        if (count < capacity) out[count] = record.sequence;
        count++;
    }
    intake_consumer_close(consumer);
    return (long)count;
}

/* Whether `topic`'s log holds exactly the sequences 1..last, once each, in order. */
STREAM_HELPER bool stream_log_is(const char *directory, const char *topic, uint64_t last) {
    uint64_t *sequences = calloc(last + 1, sizeof(uint64_t));
    REQUIRE(sequences != NULL);
    long count = stream_log_sequences(directory, topic, sequences, last + 1);
    bool exact = count == (long)last;
    for (uint64_t index = 0; exact && index < last; index++) exact = sequences[index] == index + 1;
    if (!exact)
        fprintf(stderr, "%s: %ld records in the log, expected sequences 1..%lu\n", topic, count,
                (unsigned long)last);
    free(sequences);
    return exact;
}

#endif
