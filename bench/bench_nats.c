/*
 * bench_nats.c: the subset of the NATS client protocol intake-bench speaks (bench_nats.h):
 * the handshake (INFO, CONNECT, PING/PONG) on every connection, the subscriber's MSG parser and
 * read loop (consumer thread), and a publisher's control lines (its producer thread).
 */
#include "bench_nats.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "bench_consumer.h"
#include "bench_producer.h"
#include "bench_socket.h"
#include "common.h"

/* Reads one "\r\n"-terminated control line into line[0..capacity) within the timeout. Reads a
 * byte at a time: used only during the handshake, before any message flows. */
static int nats_read_line(int fd, char *line, size_t capacity, uint32_t timeout_ms) {
    uint64_t deadline_ns = intake_now_ns() + (uint64_t)timeout_ms * 1000000u;
    size_t length = 0;
    while (intake_now_ns() < deadline_ns) {
        char byte;
        ssize_t got = recv(fd, &byte, 1, 0);
        if (got == 0) return -ECONNRESET;
        if (got < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
            return -errno;
        }
        if (length + 1 >= capacity) return -EMSGSIZE;
        line[length++] = byte;
        if (length >= 2 && line[length - 2] == '\r' && line[length - 1] == '\n') {
            line[length - 2] = '\0';
            return 0;
        }
    }
    return -ETIMEDOUT;
}

/* INFO from the server, CONNECT from us, then PING until PONG so that anything sent before
 * (SUB) is known to be registered when this returns. */
int nats_handshake(int fd, const char *after_connect) {
    char line[4096];
    int result = nats_read_line(fd, line, sizeof line, BENCH_HANDSHAKE_TIMEOUT_MS);
    if (result != 0) return result;
    if (strncmp(line, "INFO ", 5) != 0) return -EPROTO;
    char request[512];
    int length = snprintf(request, sizeof request,
                          "CONNECT {\"verbose\":false,\"pedantic\":false,\"name\":\"intake-bench\"}"
                          "\r\n%sPING\r\n",
                          after_connect);
    INTAKE_ASSERT(length > 0 && (size_t)length < sizeof request);
    if (send(fd, request, (size_t)length, MSG_NOSIGNAL) != length) return -EIO;
    /* A bounded number of lines: the server may send INFO updates or PING before our PONG. */
    for (int lines = 0; lines < 16; lines++) {
        result = nats_read_line(fd, line, sizeof line, BENCH_HANDSHAKE_TIMEOUT_MS);
        if (result != 0) return result;
        if (strcmp(line, "PONG") == 0) return 0;
        if (strncmp(line, "-ERR", 4) == 0) {
            fprintf(stderr, "intake-bench: nats-server: %s\n", line);
            return -EPROTO;
        }
    }
    return -EPROTO;
}

/* Parses every complete MSG (and answers PING) in buffer[0..filled); returns bytes consumed. */
size_t nats_parse_messages(struct bench_run *run, const uint8_t *buffer, size_t filled,
                           uint64_t now_ns) {
    struct consumer_state *consumer = &run->consumer;
    size_t at = 0;
    while (at < filled) {
        const uint8_t *line_end = memmem(buffer + at, filled - at, "\r\n", 2);
        if (!line_end) break;
        size_t line_bytes = (size_t)(line_end - (buffer + at));
        const char *line = (const char *)buffer + at;
        if (line_bytes >= 4 && memcmp(line, "MSG ", 4) == 0) {
            /* MSG <subject> <sid> [reply-to] <#bytes>: the size is the last word. */
            size_t word = line_bytes;
            while (word > 0 && line[word - 1] != ' ') word--;
            uint64_t payload_bytes = strtoull(line + word, NULL, 10);
            size_t payload_start = at + line_bytes + 2;
            if (payload_start + payload_bytes + 2 > filled) break; /* wait for the rest */
            consumer_deliver(consumer, run->options->connection_count, 0, buffer + payload_start,
                             (size_t)payload_bytes, now_ns);
            at = payload_start + (size_t)payload_bytes + 2;
            continue;
        }
        if (line_bytes == 4 && memcmp(line, "PING", 4) == 0) {
            if (send(consumer->socket_fd, "PONG\r\n", 6, MSG_NOSIGNAL) != 6)
                run_fail(run, -EIO, "nats subscriber: PONG");
        } else if (line_bytes >= 4 && memcmp(line, "-ERR", 4) == 0) {
            fprintf(stderr, "intake-bench: nats subscriber: %.*s\n", (int)line_bytes, line);
            run_fail(run, -EPROTO, "nats subscriber got an error");
        }
        at += line_bytes + 2; /* +OK, INFO, PONG: nothing to do */
    }
    return at;
}

/* The NATS subscriber: reads everything on bench.> until told to stop (reads time out after
 * 1 s, and the loop checks the flag after every read). */
int consume_nats(struct bench_run *run) {
    struct consumer_state *consumer = &run->consumer;
    size_t filled = 0;
    atomic_store(&run->consumer_ready, true);
    while (!atomic_load_explicit(&run->stop_consuming, memory_order_relaxed)) {
        if (filled == BENCH_CONSUMER_BUFFER_BYTES) {
            run_fail(run, -EMSGSIZE, "nats subscriber: message larger than the read buffer");
            return -EMSGSIZE;
        }
        ssize_t got = recv(consumer->socket_fd, consumer->buffer + filled,
                           BENCH_CONSUMER_BUFFER_BYTES - filled, 0);
        if (got < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
        if (got <= 0) {
            /* At the end main shuts the socket down to wake this read: not an error then. */
            if (atomic_load(&run->stop_consuming)) return 0;
            run_fail(run, got < 0 ? -errno : -ECONNRESET, "nats subscriber: read");
            return -EIO;
        }
        uint64_t now_ns = intake_now_ns(); /* one read = one consumer-read time for its records */
        filled += (size_t)got;
        size_t consumed = nats_parse_messages(run, consumer->buffer, filled, now_ns);
        memmove(consumer->buffer, consumer->buffer + consumed, filled - consumed);
        filled -= consumed;
        consumer_publish(run, now_ns);
    }
    return 0;
}

/* Parses NATS control lines sent to a publisher: answers PING, reports -ERR. */
size_t producer_parse_nats_lines(struct producer *producer, const uint8_t *bytes, size_t filled) {
    size_t at = 0;
    while (at < filled) {
        const uint8_t *line_end = memmem(bytes + at, filled - at, "\r\n", 2);
        if (!line_end) break;
        size_t line_bytes = (size_t)(line_end - (bytes + at));
        if (line_bytes == 4 && memcmp(bytes + at, "PING", 4) == 0) {
            if (write_all(producer->run, producer->fd, (const uint8_t *)"PONG\r\n", 6) != 0)
                run_fail(producer->run, -EIO, "nats publisher: PONG");
        } else if (line_bytes >= 4 && memcmp(bytes + at, "-ERR", 4) == 0) {
            fprintf(stderr, "intake-bench: nats publisher %u: %.*s\n", producer->index,
                    (int)line_bytes, (const char *)bytes + at);
            run_fail(producer->run, -EPROTO, "nats-server sent an error");
        }
        at += line_bytes + 2;
    }
    return at;
}
