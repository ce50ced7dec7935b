/*
 * stream_client.h: a producer thread for tests that need load while something else happens
 * (a reload, a quota): one connection streaming numbered records (sequences 1, 2, 3...) to one
 * topic, in batches of STREAM_BATCH per write, reading every Ack as it comes, until told to stop
 * or answered with a final non-OK Ack. Then the log can be checked against what it was told:
 * stream_log_sequences reads a topic's log with the consumer library. Header-only, like
 * raw_client.h.
 */
#ifndef INTAKE_TEST_STREAM_CLIENT_H
#define INTAKE_TEST_STREAM_CLIENT_H

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

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
    _Atomic uint64_t sent;  /* the last sequence sent */
    _Atomic uint64_t acked; /* the highest sequence acked OK */
    _Atomic bool finished;  /* the thread is done: the fields below are final */
    bool final_not_ok;      /* a final Ack that was not OK came (final_ack holds it) */
    bool closed_unacked;    /* the connection ended without acking everything sent */
    struct raw_ack final_ack;
    uint64_t start_ns, end_ns; /* first write, and the last Ack read */
    pthread_t thread;
    struct raw_ack_reader reader;
};

STREAM_HELPER uint64_t stream_now_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
}

/* Takes the Acks that arrived within `timeout_ms`; false once the connection is over (a final
 * non-OK Ack, or the peer closed). */
STREAM_HELPER bool stream_read_acks(struct stream_client *client, int timeout_ms) {
    struct raw_ack_reader *reader = &client->reader;
    struct pollfd descriptor = {.fd = reader->fd, .events = POLLIN};
    if (poll(&descriptor, 1, timeout_ms) > 0) {
        ssize_t got = read(reader->fd, reader->buffer + reader->length,
                           sizeof(reader->buffer) - reader->length);
        if (got <= 0) return false;
        reader->length += (size_t)got;
    }
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

STREAM_HELPER void *stream_thread(void *argument) {
    struct stream_client *client = argument;
    /* No check is counted on this thread (the harness's counters are the main thread's): a
     * failed connect shows as a stream that sent nothing and ended unacked. */
    client->reader.fd = raw_try_connect_port(client->port);
    if (client->reader.fd < 0) {
        client->closed_unacked = true;
        atomic_store(&client->finished, true);
        return NULL;
    }
    static _Thread_local uint8_t batch[STREAM_BATCH * (STREAM_VALUE_BYTES + 128)];
    bool open = true;
    client->start_ns = stream_now_ns();
    while (open && !atomic_load(&client->stop)) {
        uint64_t sequence = atomic_load(&client->sent);
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
        for (size_t done = 0; done < length;) {
            ssize_t written = send(client->reader.fd, batch + done, length - done, MSG_NOSIGNAL);
            if (written <= 0) break;
            done += (size_t)written;
        }
        atomic_store(&client->sent, sequence);
        open = stream_read_acks(client, 0);
    }
    /* Done sending: half-close, then every Ack up to the last record, or the final one. */
    shutdown(client->reader.fd, SHUT_WR);
    uint64_t deadline = stream_now_ns() + 60ull * 1000000000ull;
    while (open && atomic_load(&client->acked) < atomic_load(&client->sent) &&
           stream_now_ns() < deadline)
        open = stream_read_acks(client, 10);
    client->end_ns = stream_now_ns();
    client->closed_unacked = atomic_load(&client->acked) < atomic_load(&client->sent);
    close(client->reader.fd);
    atomic_store(&client->finished, true);
    return NULL;
}

STREAM_HELPER void stream_start(struct stream_client *client, uint16_t port, const char *topic) {
    memset(client, 0, sizeof(*client));
    client->port = port;
    snprintf(client->topic, sizeof(client->topic), "%s", topic);
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
    struct intake_consumer_options options = {INTAKE_CONSUMER_START_OLDEST, 0, true};
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
