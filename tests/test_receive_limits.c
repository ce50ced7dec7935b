/*
 * test_receive_limits: what a client can hold in a reactor, and for how long, through a real
 * intaked (raw sockets on loopback).
 *
 *   frame_deadline   half a record, then silence: after --frame-timeout-ms the connection gets
 *                    a final Ack REJECTED naming the flag; a connection that completes its
 *                    records and pauses between them is not touched;
 *   idle_timeout     a connection that sends nothing gets a final Ack RESOURCE_EXHAUSTED after
 *                    --idle-timeout-ms; one that keeps sending records is not touched;
 *   partial_records  many connections that each send the first bytes of a record and stop
 *                    hold record-pool entries; an honest producer still gets every record
 *                    acked (partial records are capped, the oldest is evicted), with the frame
 *                    deadline far away so it is not what rescues it;
 *   stall_oldest     every receive buffer pinned: by slow connections that stopped halfway
 *                    through their records, and by an honest producer of 1 MB records. The
 *                    stall breaker ends the connections that pinned buffers longest without
 *                    completing a record, not the honest one that pins the most;
 *   early_rejection  a frame whose first body bytes are already malformed is answered REJECTED
 *                    at once, not when its announced length has arrived.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "daemon_util.h"
#include "ack_take.h"
#include "harness.h"
#include "varint.h"

#define STATUS_OK                 0u
#define STATUS_REJECTED           1u
#define STATUS_RESOURCE_EXHAUSTED 2u

static void sleep_ms(long milliseconds) {
    struct timespec pause = {milliseconds / 1000, (milliseconds % 1000) * 1000000L};
    nanosleep(&pause, NULL);
}

static int raw_connect(const struct daemon *daemon) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    struct sockaddr_in address = {.sin_family = AF_INET,
                                  .sin_port = htons(daemon->port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    REQUIRE(connect(fd, (struct sockaddr *)&address, sizeof(address)) == 0);
    return fd;
}

static void write_all(int fd, const uint8_t *bytes, size_t length) {
    while (length > 0) {
        ssize_t written = send(fd, bytes, length, MSG_NOSIGNAL);
        REQUIRE(written > 0);
        bytes += written;
        length -= (size_t)written;
    }
}

static size_t put_bytes_field(uint8_t *out, uint32_t field, const void *bytes, size_t length) {
    size_t used = varint_encode((uint64_t)field << 3 | 2, out);
    used += varint_encode(length, out + used);
    memcpy(out + used, bytes, length);
    return used + length;
}

/* A delimited Record{topic, value of `value_length` bytes 'v', sequence} in a new buffer. */
static uint8_t *frame_record(const char *topic, size_t value_length, uint64_t sequence,
                             size_t *frame_length) {
    uint8_t *body = malloc(value_length + 64);
    uint8_t *value = malloc(value_length + 1);
    REQUIRE(body != NULL && value != NULL);
    memset(value, 'v', value_length);
    size_t length = put_bytes_field(body, 1, topic, strlen(topic));
    length += put_bytes_field(body + length, 3, value, value_length);
    body[length++] = 5 << 3;
    length += varint_encode(sequence, body + length);
    uint8_t *frame = malloc(length + 16);
    REQUIRE(frame != NULL);
    size_t prefix = varint_encode(length, frame);
    memcpy(frame + prefix, body, length);
    free(body);
    free(value);
    *frame_length = prefix + length;
    return frame;
}

struct ack {
    uint64_t sequence;
    uint32_t status;
    char detail[256];
};

struct ack_reader {
    uint8_t buffer[1 << 14];
    size_t length;
    bool closed;
};

/* Decodes one complete Ack from the buffer with the wire layer's decoder (what the producer
 * library uses); false when none is complete yet. intaked must never send an unreadable one. */
static bool ack_take(struct ack_reader *reader, struct ack *ack) {
    return ack_take_from(reader->buffer, &reader->length, sizeof(reader->buffer), &ack->sequence,
                         &ack->status, ack->detail, sizeof(ack->detail));
}

/* Next Ack, waiting up to `timeout_ms`; false on timeout or end of stream. */
static bool ack_read(int fd, struct ack_reader *reader, struct ack *ack, int timeout_ms) {
    for (int waited = 0; waited <= timeout_ms; waited += 10) {
        if (ack_take(reader, ack)) return true;
        if (reader->closed) return false;
        struct pollfd descriptor = {.fd = fd, .events = POLLIN};
        if (poll(&descriptor, 1, 10) <= 0) continue;
        ssize_t got =
            read(fd, reader->buffer + reader->length, sizeof(reader->buffer) - reader->length);
        if (got <= 0)
            reader->closed = true;
        else
            reader->length += (size_t)got;
    }
    return false;
}

/* The last Ack before the daemon closes the connection (its final one), within timeout_ms. */
static struct ack final_ack(int fd, int timeout_ms) {
    struct ack_reader *reader = calloc(1, sizeof(*reader));
    REQUIRE(reader != NULL);
    struct ack ack, last = {.status = 99};
    while (ack_read(fd, reader, &ack, timeout_ms)) last = ack;
    CHECK(reader->closed);
    free(reader);
    return last;
}

static const char *test_dir(char *buffer, size_t capacity, const char *name) {
    char unique[64];
    snprintf(unique, sizeof(unique), "limits-%s", name);
    return daemon_directory_make(buffer, capacity, unique);
}

/* ------------------------------------------------------------ frame deadline --- */

static void test_frame_deadline(void) {
    char directory[256];
    test_dir(directory, sizeof(directory), "frame");
    const char *const flags[] = {
        "--backend", "pbuf", "--frame-timeout-ms", "300", "--idle-timeout-ms", "0", NULL};
    struct daemon daemon;
    REQUIRE(daemon_start(&daemon, directory, flags));
    size_t length = 0;
    uint8_t *frame = frame_record("deadline", 1000, 1, &length);
    /* A producer that completes its records and pauses longer than the deadline between them. */
    int honest = raw_connect(&daemon);
    struct ack_reader *reader = calloc(1, sizeof(*reader));
    REQUIRE(reader != NULL);
    /* The slow one: half a record, then nothing. */
    int slow = raw_connect(&daemon);
    write_all(slow, frame, length / 2);
    for (uint64_t sequence = 1; sequence <= 3; sequence++) {
        size_t record_length = 0;
        uint8_t *record = frame_record("deadline", 1000, sequence, &record_length);
        write_all(honest, record, record_length);
        free(record);
        struct ack ack = {0};
        CHECK(ack_read(honest, reader, &ack, 5000));
        CHECK(ack.sequence == sequence && ack.status == STATUS_OK);
        sleep_ms(450);
    }
    struct ack last = final_ack(slow, 5000);
    fprintf(stderr, "frame_deadline: slow connection's final ack status %u \"%s\"\n", last.status,
            last.detail);
    CHECK(last.status == STATUS_REJECTED);
    CHECK(strstr(last.detail, "--frame-timeout-ms 300") != NULL);
    close(slow);
    close(honest);
    free(reader);
    free(frame);
    CHECK(daemon_stop(&daemon) == 0);
    CHECK(DAEMON_REACTOR_COUNTER(&daemon, deadline_kills_frame) == 1);
    CHECK(DAEMON_REACTOR_COUNTER(&daemon, deadline_kills_idle) == 0);
    daemon_directory_remove(directory);
}

/* -------------------------------------------------------------- idle timeout --- */

static void test_idle_timeout(void) {
    char directory[256];
    test_dir(directory, sizeof(directory), "idle");
    const char *const flags[] = {"--backend", "pbuf", "--idle-timeout-ms", "800", NULL};
    struct daemon daemon;
    REQUIRE(daemon_start(&daemon, directory, flags));
    int silent = raw_connect(&daemon);
    int busy = raw_connect(&daemon);
    struct ack_reader *reader = calloc(1, sizeof(*reader));
    REQUIRE(reader != NULL);
    /* Records every 100 ms for a second and a half: never idle for 800 ms. */
    for (uint64_t sequence = 1; sequence <= 15; sequence++) {
        size_t length = 0;
        uint8_t *record = frame_record("idle", 100, sequence, &length);
        write_all(busy, record, length);
        free(record);
        struct ack ack = {0};
        CHECK(ack_read(busy, reader, &ack, 5000));
        CHECK(ack.sequence == sequence && ack.status == STATUS_OK);
        sleep_ms(100);
    }
    struct ack last = final_ack(silent, 5000);
    fprintf(stderr, "idle_timeout: silent connection's final ack status %u \"%s\"\n", last.status,
            last.detail);
    CHECK(last.status == STATUS_RESOURCE_EXHAUSTED);
    CHECK(strstr(last.detail, "--idle-timeout-ms 800") != NULL);
    close(silent);
    close(busy);
    free(reader);
    CHECK(daemon_stop(&daemon) == 0);
    CHECK(DAEMON_REACTOR_COUNTER(&daemon, deadline_kills_idle) == 1);
    CHECK(DAEMON_REACTOR_COUNTER(&daemon, deadline_kills_frame) == 0);
    daemon_directory_remove(directory);
}

/* ----------------------------------------------------------- partial records --- */

#define PARTIAL_HOLDERS        40
#define PARTIAL_HONEST_RECORDS 50

static void test_partial_records(void) {
    char directory[256];
    test_dir(directory, sizeof(directory), "partial");
    /* A pool of 16 records; the frame deadline a minute away. */
    const char *const flags[] = {
        "--backend", "pbuf", "--records-per-reactor", "16", "--frame-timeout-ms", "60000", NULL};
    struct daemon daemon;
    REQUIRE(daemon_start(&daemon, directory, flags));
    size_t length = 0;
    uint8_t *frame = frame_record("partial", 1000, 1, &length);
    int holders[PARTIAL_HOLDERS];
    for (int index = 0; index < PARTIAL_HOLDERS; index++) {
        holders[index] = raw_connect(&daemon);
        write_all(holders[index], frame, 16); /* the length prefix and a few body bytes */
    }
    /* Old enough to be evicted. */
    sleep_ms(1200);
    int honest = raw_connect(&daemon);
    struct ack_reader *reader = calloc(1, sizeof(*reader));
    REQUIRE(reader != NULL);
    uint64_t acked = 0;
    for (uint64_t sequence = 1; sequence <= PARTIAL_HONEST_RECORDS; sequence++) {
        size_t record_length = 0;
        uint8_t *record = frame_record("partial", 200, sequence, &record_length);
        write_all(honest, record, record_length);
        free(record);
    }
    struct ack ack = {0};
    while (acked < PARTIAL_HONEST_RECORDS && ack_read(honest, reader, &ack, 20000)) {
        CHECK(ack.status == STATUS_OK);
        acked = ack.sequence;
    }
    fprintf(stderr, "partial_records: honest producer acked %" PRIu64 " of %d\n", acked,
            PARTIAL_HONEST_RECORDS);
    CHECK(acked == PARTIAL_HONEST_RECORDS);
    close(honest);
    for (int index = 0; index < PARTIAL_HOLDERS; index++) close(holders[index]);
    free(reader);
    free(frame);
    CHECK(daemon_stop(&daemon) == 0);
    CHECK(DAEMON_REACTOR_COUNTER(&daemon, partial_evictions) >= 1);
    CHECK(DAEMON_REACTOR_COUNTER(&daemon, partial_cap_pauses) >= 1);
    daemon_directory_remove(directory);
}

/* ------------------------------------------------------------- stall, oldest --- */

#define STALL_SLOW_CONNECTIONS   6
#define STALL_HONEST_RECORDS     3
#define STALL_HONEST_VALUE_BYTES 1000000

static void test_stall_oldest(void) {
    char directory[256];
    test_dir(directory, sizeof(directory), "stall");
    /* 2 MiB of receive buffers; the frame deadline a minute away. */
    const char *const flags[] = {
        "--backend",   "pbuf", "--buffers",  "32",  "--buffer-size",      "64K",
        "--max-frame", "1M",   "--log-size", "16M", "--frame-timeout-ms", "60000",
        NULL};
    struct daemon daemon;
    REQUIRE(daemon_start(&daemon, directory, flags));
    /* Slow connections: 240 KB of a 300 KB record each, about 1.4 MiB pinned in all. */
    size_t slow_length = 0;
    uint8_t *slow_frame = frame_record("stall", 300000, 1, &slow_length);
    int slow[STALL_SLOW_CONNECTIONS];
    for (int index = 0; index < STALL_SLOW_CONNECTIONS; index++) {
        slow[index] = raw_connect(&daemon);
        write_all(slow[index], slow_frame, 240000);
    }
    sleep_ms(300);
    /* The honest producer: 1 MB records, each needing about half of all the buffers. */
    int honest = raw_connect(&daemon);
    struct ack_reader *reader = calloc(1, sizeof(*reader));
    REQUIRE(reader != NULL);
    uint64_t acked = 0;
    struct ack ack = {0};
    for (uint64_t sequence = 1; sequence <= STALL_HONEST_RECORDS; sequence++) {
        size_t length = 0;
        uint8_t *record = frame_record("stall", STALL_HONEST_VALUE_BYTES, sequence, &length);
        write_all(honest, record, length);
        free(record);
        while (acked < sequence && ack_read(honest, reader, &ack, 20000)) {
            if (ack.status != STATUS_OK)
                fprintf(stderr, "stall_oldest: honest producer got status %u \"%s\"\n", ack.status,
                        ack.detail);
            CHECK(ack.status == STATUS_OK);
            acked = ack.sequence;
            if (ack.status != STATUS_OK) break;
        }
        if (acked < sequence) break;
    }
    fprintf(stderr, "stall_oldest: honest producer acked %" PRIu64 " of %d records of 1 MB\n",
            acked, STALL_HONEST_RECORDS);
    CHECK(acked == STALL_HONEST_RECORDS);
    int ended = 0;
    for (int index = 0; index < STALL_SLOW_CONNECTIONS; index++) {
        shutdown(slow[index], SHUT_WR);
        struct ack last = final_ack(slow[index], 5000);
        if (last.status == STATUS_RESOURCE_EXHAUSTED && strstr(last.detail, "--buffers")) ended++;
        close(slow[index]);
    }
    fprintf(stderr, "stall_oldest: %d slow connections ended for lack of buffers\n", ended);
    CHECK(ended >= 1);
    close(honest);
    free(reader);
    free(slow_frame);
    CHECK(daemon_stop(&daemon) == 0);
    CHECK(DAEMON_REACTOR_COUNTER(&daemon, stalls_broken) == (uint64_t)ended);
    daemon_directory_remove(directory);
}

/* ------------------------------------------------------------- early rejection --- */

/* A frame announced as 100 KB whose first body byte is already an invalid tag (wire type 7):
 * the framer proves it malformed from that prefix, and the reactor answers at once, long
 * before the rest could arrive or the frame deadline (a minute here) could end it. */
static void test_early_rejection(void) {
    char directory[256];
    test_dir(directory, sizeof(directory), "early");
    const char *const flags[] = {"--backend", "pbuf", "--frame-timeout-ms", "60000", NULL};
    struct daemon daemon;
    REQUIRE(daemon_start(&daemon, directory, flags));
    uint8_t prefix[64];
    size_t length = varint_encode(100000, prefix);
    prefix[length++] = 1 << 3 | 7; /* field 1, wire type 7: no such wire type */
    memset(prefix + length, 'x', 16);
    length += 16;
    int fd = raw_connect(&daemon);
    write_all(fd, prefix, length);
    struct ack last = final_ack(fd, 5000);
    fprintf(stderr, "early_rejection: final ack status %u \"%s\"\n", last.status, last.detail);
    CHECK(last.status == STATUS_REJECTED);
    CHECK(last.detail[0] != '\0');
    close(fd);
    CHECK(daemon_stop(&daemon) == 0);
    CHECK(DAEMON_REACTOR_COUNTER(&daemon, deadline_kills_frame) == 0);
    daemon_directory_remove(directory);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    test_frame_deadline();
    test_idle_timeout();
    test_partial_records();
    test_stall_oldest();
    test_early_rejection();
    return test_finish();
}
