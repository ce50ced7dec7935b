/*
 * raw_client.h: a producer written by hand for tests that need exact control of what is sent
 * and exact sight of every Ack (sequence, status, detail): delimited Records built byte by byte,
 * Acks decoded from the socket. Header-only, like daemon_util.h.
 */
#ifndef INTAKE_TEST_RAW_CLIENT_H
#define INTAKE_TEST_RAW_CLIENT_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ack_take.h"
#include "harness.h"
#include "record_encoder.h"
#include "varint.h"

/* A connection to the daemon, or -1 (for threads other than the test's main one, which must not
 * count checks: the harness's counters are not atomic). */
static int raw_try_connect_port(uint16_t port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd >= 0 && connect(fd, (struct sockaddr *)&address, sizeof(address)) == 0) return fd;
    if (fd >= 0) close(fd);
    return -1;
}

__attribute__((unused)) static int raw_connect_port(uint16_t port) {
    int fd = raw_try_connect_port(port);
    REQUIRE(fd >= 0);
    return fd;
}

/* Encodes one delimited Record{topic, value of `value_bytes` bytes (the first 4 carry `index`),
 * sequence} into `out` (at least raw_record_bytes_max(topic, value_bytes) bytes); returns its
 * length. */
static size_t raw_record_bytes_max(const char *topic, size_t value_bytes) {
    return strlen(topic) + value_bytes + 64;
}

static size_t raw_encode_record(uint8_t *out, const char *topic, uint32_t index, size_t value_bytes,
                                uint64_t sequence) {
    /* Any thread may encode (no check counted): a broken invariant of the test itself aborts. */
    size_t capacity = raw_record_bytes_max(topic, value_bytes);
    uint8_t *value = calloc(1, value_bytes);
    uint8_t *body = malloc(capacity);
    if (value_bytes < 4 || value == NULL || body == NULL) abort();
    memcpy(value, &index, 4);
    struct record_encoder encoder = {.bytes = body, .capacity = capacity, .length = 0};
    struct record_fields fields = {
        .topic = topic, .value = value, .value_bytes = value_bytes, .sequence = sequence};
    record_encode_fields(&encoder, &fields);
    size_t length = record_encoder_delimited(&encoder, out, capacity);
    free(value);
    free(body);
    return length;
}

/* Sends one such Record. A send that fails is left alone: the daemon ended the connection, its
 * Ack says why. */
__attribute__((unused)) static void raw_send_record(int fd, const char *topic, uint32_t index,
                                                    size_t value_bytes, uint64_t sequence) {
    uint8_t *frame = malloc(raw_record_bytes_max(topic, value_bytes));
    REQUIRE(frame != NULL);
    size_t length = raw_encode_record(frame, topic, index, value_bytes, sequence);
    for (size_t done = 0; done < length;) {
        ssize_t written = send(fd, frame + done, length - done, MSG_NOSIGNAL);
        if (written <= 0) break;
        done += (size_t)written;
    }
    free(frame);
}

struct raw_ack {
    uint64_t sequence;
    uint32_t status;
    char detail[512];
};

enum { RAW_ACK_OK = 0, RAW_ACK_REJECTED = 1, RAW_ACK_RESOURCE_EXHAUSTED = 2, RAW_ACK_INTERNAL = 4 };

/* Acks arriving on one connection. */
struct raw_ack_reader {
    int fd;
    uint8_t buffer[1 << 16];
    size_t length;
};

/* Decodes one complete Ack from the buffer with the wire layer's decoder (what the producer
 * library uses); false when none is complete yet. intaked must never send an unreadable one. */
static bool raw_ack_take(struct raw_ack_reader *reader, struct raw_ack *ack) {
    return ack_take_from(reader->buffer, &reader->length, sizeof(reader->buffer), &ack->sequence,
                         &ack->status, ack->detail, sizeof(ack->detail));
}

/* Reads Acks into *last until one is not OK (returns true: the final Ack), one covers
 * `sequence` with OK (returns false, *last is it), the peer closes or `timeout_ms` pass (false).
 * `sequence` 0: wait only for a final Ack. */
__attribute__((unused)) static bool raw_read_acks(struct raw_ack_reader *reader, uint64_t sequence,
                                                  int timeout_ms, struct raw_ack *last) {
    memset(last, 0, sizeof(*last));
    for (int waited = 0; waited < timeout_ms;) {
        struct raw_ack ack;
        while (raw_ack_take(reader, &ack)) {
            *last = ack;
            if (ack.status != RAW_ACK_OK) return true;
            if (sequence != 0 && ack.sequence >= sequence) return false;
        }
        struct pollfd descriptor = {.fd = reader->fd, .events = POLLIN};
        if (poll(&descriptor, 1, 10) <= 0) {
            waited += 10;
            continue;
        }
        ssize_t got = read(reader->fd, reader->buffer + reader->length,
                           sizeof(reader->buffer) - reader->length);
        if (got <= 0) return false;
        reader->length += (size_t)got;
    }
    return false;
}

#endif
