/*
 * intake-bench: load generator and end-to-end latency meter for intake, nats-server and the
 * machine's own ceilings (issue 5). Benchmarks report; they are not tests.
 *
 * One process does everything ("all-in-one"), so latency needs no clock agreement between hosts:
 *   - M producer threads, one TCP connection each, write batches of records as fast as the
 *     consumer keeps up (closed loop, with a bounded number of bytes in flight) or at a fixed
 *     total rate paced in 1 ms time slices (open loop, --rate);
 *   - one consumer thread receives every record (a NATS subscriber on bench.>, or the intake
 *     shared-memory logs through consume_intake()) and measures producer write -> consumer read
 *     latency from a stamp at the start of each value into a log-linear histogram;
 *   - the main thread connects everything, bounds the run in time, and prints one line:
 *     result target=... size=... conns=... msgs=... secs=... msgs_per_s=... mb_per_s=... p50_us=...
 *     ... exactly_once=yes|no ... producer_us_per_msg=... consumer_us_per_msg=...
 *     Each side's CPU is its threads' own CPU clocks (issue 10): the producer threads' (less
 *     their closed-loop window waits, the bench's own) and the consumer thread's.
 * Variants (issue 10, 12): --producer library (the product's producer library, bench_library.c,
 * instead of the bench's encoder), --producer-id (Record field 7 per connection, with --acks),
 * --consumer set|handles (bench_intake_consumer.c: one consumer set for every topic, or one
 * handle per topic). Issue 17: --tls-ca (and --tls-cert, --tls-key, --tls-server-name,
 * --tls-ciphersuite) makes the intake producers speak TLS 1.3 (bench_tls.c; the library's own
 * TLS with --producer library), to intaked's --tls-listen port. Files: bench.h (shared state),
 * bench_intake_consumer.c, bench_library.c, bench_tls.c.
 * Other modes: --memcpy (single-core copy bandwidth), --idle-connections N (open N connections
 * and hold them, for the server's RSS), --self-test (encoders against decoders).
 *
 * Every value begins with a 16-byte stamp: CLOCK_MONOTONIC send time in ns, then a tag
 * (connection index << 48 | per-connection record number), both little endian. Sizes are value
 * (payload) bytes; MB/s counts payload bytes only, the same for every target.
 *
 * Every loop is bounded by a count or a deadline; the process always stops by itself.
 */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ack_frame.h"
#include "bench.h"
#include "bench_library.h"
#include "common.h"
#include "intake/consumer.h"
#include "varint.h"

/* ---- latency histogram: log-linear buckets (struct in bench.h) ------------------------ */

static uint32_t histogram_index(uint64_t value_ns) {
    if (value_ns < HISTOGRAM_LINEAR) return (uint32_t)value_ns;
    uint32_t most_significant_bit = 63u - (uint32_t)__builtin_clzll(value_ns);
    uint32_t shift = most_significant_bit - (HISTOGRAM_LINEAR_BITS - 1);
    uint32_t step = (uint32_t)(value_ns >> shift) - HISTOGRAM_HALF;
    uint32_t index = HISTOGRAM_LINEAR + (shift - 1) * HISTOGRAM_HALF + step;
    INTAKE_ASSERT(index < HISTOGRAM_BUCKETS);
    return index;
}

/* Midpoint of the bucket's value range, so a reported percentile is off by at most ~1.5%. */
static uint64_t histogram_bucket_value(uint32_t index) {
    INTAKE_ASSERT(index < HISTOGRAM_BUCKETS);
    if (index < HISTOGRAM_LINEAR) return index;
    uint32_t shift = (index - HISTOGRAM_LINEAR) / HISTOGRAM_HALF + 1;
    uint64_t mantissa = (index - HISTOGRAM_LINEAR) % HISTOGRAM_HALF + HISTOGRAM_HALF;
    return (mantissa << shift) + ((1ull << shift) >> 1);
}

static void histogram_record(struct latency_histogram *histogram, uint64_t value_ns) {
    histogram->counts[histogram_index(value_ns)]++;
    histogram->total++;
    if (value_ns > histogram->max_ns) histogram->max_ns = value_ns;
}

/* Value at quantile (0..1]; 0 when empty. */
static uint64_t histogram_quantile(const struct latency_histogram *histogram, double quantile) {
    if (histogram->total == 0) return 0;
    uint64_t wanted = (uint64_t)(quantile * (double)histogram->total + 0.999999);
    if (wanted == 0) wanted = 1;
    uint64_t seen = 0;
    for (uint32_t index = 0; index < HISTOGRAM_BUCKETS; index++) {
        seen += histogram->counts[index];
        if (seen >= wanted) {
            uint64_t value = histogram_bucket_value(index);
            return value < histogram->max_ns ? value : histogram->max_ns;
        }
    }
    return histogram->max_ns;
}

void run_fail(struct bench_run *run, int error, const char *what) {
    int expected = 0;
    if (atomic_compare_exchange_strong(&run->failure, &expected, error ? error : -1))
        fprintf(stderr, "intake-bench: %s%s%s\n", what, error ? ": " : "",
                error ? strerror(error < 0 ? -error : error) : "");
    atomic_store(&run->stop_producing, true);
    atomic_store(&run->stop_consuming, true);
}

void sleep_ns(uint64_t duration_ns) {
    struct timespec pause = {(time_t)(duration_ns / 1000000000u),
                             (long)(duration_ns % 1000000000u)};
    nanosleep(&pause, NULL);
}

/* The calling thread's CPU time so far (user + system), ns: each side's cost per record is its
 * threads' CPU time over the records delivered (issue 10). */
static uint64_t thread_cpu_ns(void) {
    struct timespec now;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now) != 0) return 0;
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

/* ---- wire helpers -------------------------------------------------------------------------- */

/* Decodes a varint from bytes[0..length); returns bytes used, 0 if incomplete or bad. */
static size_t decode_varint(const uint8_t *bytes, size_t length, uint64_t *value) {
    size_t used = 0;
    return varint_decode(bytes, length, value, &used) == VARINT_OK ? used : 0;
}

static void put_u64_le(uint8_t *out, uint64_t value) {
    for (int index = 0; index < 8; index++) out[index] = (uint8_t)(value >> (8 * index));
}

static uint64_t get_u64_le(const uint8_t *bytes) {
    uint64_t value = 0;
    for (int index = 7; index >= 0; index--) value = (value << 8) | bytes[index];
    return value;
}

static uint64_t make_tag(uint32_t connection_index, uint64_t record_number) {
    return ((uint64_t)connection_index << BENCH_TAG_INDEX_SHIFT) | record_number;
}

/* Writes all of bytes[0..length), giving up at the run's end (the socket has a send timeout, so
 * a stalled server cannot hold a producer past the deadline). */
static int write_all(struct bench_run *run, int fd, const uint8_t *bytes, size_t length) {
    size_t done = 0;
    while (done < length) {
        ssize_t written = send(fd, bytes + done, length - done, MSG_NOSIGNAL);
        if (written > 0) {
            done += (size_t)written;
            continue;
        }
        if (written < 0 && errno == EINTR) continue;
        if (written < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (intake_now_ns() > run->deadline_ns + BENCH_DRAIN_TIMEOUT_NS) return -ETIMEDOUT;
            continue;
        }
        return written < 0 ? -errno : -EPIPE;
    }
    return 0;
}

static int set_socket_timeouts(int fd, uint32_t timeout_ms) {
    struct timeval timeout = {(time_t)(timeout_ms / 1000), (suseconds_t)(timeout_ms % 1000) * 1000};
    if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout) != 0) return -errno;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout) != 0) return -errno;
    return 0;
}

/* A TCP connection to host:port with Nagle off (batches are written whole; small open-loop
 * writes must not wait for an ACK) and 1 s socket timeouts so no call blocks for long. The
 * connect itself may take up to connect_timeout_ms (a SYN dropped by a full accept queue is
 * retransmitted after 1 s, so opening thousands of connections needs more than 1 s). */
static int connect_tcp(const char *host, uint16_t port, uint32_t connect_timeout_ms, int *out_fd) {
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, host, &address.sin_addr) != 1) return -EINVAL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1;
    int result = 0;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) result = -errno;
    if (result == 0) result = set_socket_timeouts(fd, connect_timeout_ms);
    if (result == 0 && connect(fd, (struct sockaddr *)&address, sizeof address) != 0)
        result = -errno;
    if (result == 0) result = set_socket_timeouts(fd, 1000);
    if (result != 0) {
        close(fd);
        return result;
    }
    *out_fd = fd;
    return 0;
}

/* ---- NATS client protocol (the subset a publisher and a subscriber need) ------------------- */

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
static int nats_handshake(int fd, const char *after_connect) {
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

/* ---- batches: records encoded once, stamps patched per write -------------------------------- */

/* One producer's batch buffer. Layout is fixed per batch position (size and topic depend only
 * on the position), so without acks the batch is encoded once and each write only patches the
 * stamps; with acks each record carries a growing sequence, so the batch is re-encoded. */
struct batch {
    uint8_t *bytes;
    size_t capacity;
    uint32_t record_count;
    uint32_t *record_end;   /* offset just past record i (partial writes) */
    uint32_t *stamp_offset; /* offset of record i's stamp */
    uint64_t payload_bytes; /* sum of value sizes in a full batch */
};

static uint32_t batch_value_bytes(const struct bench_options *options, uint32_t position) {
    return options->sizes[position % options->size_count];
}

/* Topic of batch position `position` of connection `index`: connections spread over topics
 * first, then positions, so 16 connections with batch 64 reach up to 1,024 topics. */
static uint32_t batch_topic(const struct bench_options *options, uint32_t index,
                            uint32_t position) {
    return (uint32_t)(((uint64_t)index + (uint64_t)position * options->connection_count) %
                      options->topic_count);
}

static size_t batch_capacity_needed(const struct bench_options *options) {
    size_t capacity = 0;
    for (uint32_t position = 0; position < options->batch_records; position++)
        capacity += batch_value_bytes(options, position) + BENCH_TOPIC_NAME_BYTES_MAX +
                    BENCH_PRODUCER_ID_BYTES_MAX + 64;
    return capacity;
}

static int batch_init(struct batch *batch, const struct bench_options *options) {
    memset(batch, 0, sizeof *batch);
    batch->capacity = batch_capacity_needed(options);
    batch->record_count = options->batch_records;
    batch->bytes = malloc(batch->capacity);
    batch->record_end = calloc(options->batch_records, sizeof *batch->record_end);
    batch->stamp_offset = calloc(options->batch_records, sizeof *batch->stamp_offset);
    if (!batch->bytes || !batch->record_end || !batch->stamp_offset) return -ENOMEM;
    return 0;
}

static void batch_destroy(struct batch *batch) {
    free(batch->bytes);
    free(batch->record_end);
    free(batch->stamp_offset);
}

/* The value: room for the stamp, then filler. */
static size_t put_value(uint8_t *out, uint32_t value_bytes) {
    INTAKE_ASSERT(value_bytes >= BENCH_STAMP_BYTES);
    memset(out, 0, BENCH_STAMP_BYTES);
    memset(out + BENCH_STAMP_BYTES, 'v', value_bytes - BENCH_STAMP_BYTES);
    return value_bytes;
}

/* One delimited intake.v1.Record: topic (1), value (3), sequence (5) when nonzero, and
 * producer_id (7) when not NULL (issue 12; an unknown field to a daemon that predates it). */
static size_t encode_intake_record(uint8_t *out, const char *topic, uint32_t value_bytes,
                                   uint64_t sequence, const char *producer_id,
                                   uint32_t *stamp_offset) {
    size_t topic_bytes = strlen(topic);
    size_t id_bytes = producer_id ? strlen(producer_id) : 0;
    INTAKE_ASSERT(id_bytes <= BENCH_PRODUCER_ID_BYTES_MAX);
    size_t frame_bytes = 1 + varint_length(topic_bytes) + topic_bytes + 1 +
                         varint_length(value_bytes) + value_bytes +
                         (sequence ? 1 + varint_length(sequence) : 0) +
                         (producer_id ? 1 + varint_length(id_bytes) + id_bytes : 0);
    size_t at = varint_encode(frame_bytes, out);
    size_t frame_start = at;
    out[at++] = 0x0a; /* field 1, length-delimited */
    at += varint_encode(topic_bytes, out + at);
    memcpy(out + at, topic, topic_bytes);
    at += topic_bytes;
    out[at++] = 0x1a; /* field 3, length-delimited */
    at += varint_encode(value_bytes, out + at);
    *stamp_offset = (uint32_t)at;
    at += put_value(out + at, value_bytes);
    if (sequence) {
        out[at++] = 0x28; /* field 5, varint */
        at += varint_encode(sequence, out + at);
    }
    if (producer_id) {
        out[at++] = 0x3a; /* field 7, length-delimited */
        at += varint_encode(id_bytes, out + at);
        memcpy(out + at, producer_id, id_bytes);
        at += id_bytes;
    }
    INTAKE_ASSERT(at - frame_start == frame_bytes);
    return at;
}

/* One NATS "PUB subject length\r\n<payload>\r\n". */
static size_t encode_nats_publish(uint8_t *out, const char *subject, uint32_t value_bytes,
                                  uint32_t *stamp_offset) {
    int header = sprintf((char *)out, "PUB %s %u\r\n", subject, value_bytes);
    INTAKE_ASSERT(header > 0);
    size_t at = (size_t)header;
    *stamp_offset = (uint32_t)at;
    at += put_value(out + at, value_bytes);
    out[at++] = '\r';
    out[at++] = '\n';
    return at;
}

/* Encodes a full batch for connection `index`; first_sequence 0 means no sequences (no acks);
 * producer_id NULL means no field 7. */
static void batch_encode(struct batch *batch, const struct bench_options *options, uint32_t index,
                         uint64_t first_sequence, const char *producer_id) {
    size_t at = 0;
    batch->payload_bytes = 0;
    for (uint32_t position = 0; position < batch->record_count; position++) {
        char name[BENCH_TOPIC_NAME_BYTES_MAX];
        uint32_t topic = batch_topic(options, index, position);
        uint32_t value_bytes = batch_value_bytes(options, position);
        uint32_t stamp_offset = 0;
        size_t record_start = at;
        INTAKE_ASSERT(at + value_bytes + BENCH_TOPIC_NAME_BYTES_MAX + BENCH_PRODUCER_ID_BYTES_MAX +
                          64 <=
                      batch->capacity);
        if (options->target == TARGET_NATS) {
            snprintf(name, sizeof name, BENCH_NATS_SUBJECT_PREFIX "%u", topic);
            at += encode_nats_publish(batch->bytes + at, name, value_bytes, &stamp_offset);
        } else {
            snprintf(name, sizeof name, BENCH_INTAKE_TOPIC_PREFIX "%u", topic);
            uint64_t sequence = first_sequence ? first_sequence + position : 0;
            at += encode_intake_record(batch->bytes + at, name, value_bytes, sequence, producer_id,
                                       &stamp_offset);
        }
        batch->stamp_offset[position] = (uint32_t)(record_start + stamp_offset);
        batch->record_end[position] = (uint32_t)at;
        batch->payload_bytes += value_bytes;
    }
}

/* Writes the send time and tags into the first `record_count` stamps, just before the write. */
static void batch_stamp(struct batch *batch, uint32_t record_count, uint32_t index,
                        uint64_t first_record_number, uint64_t now_ns) {
    INTAKE_ASSERT(record_count <= batch->record_count);
    for (uint32_t position = 0; position < record_count; position++) {
        uint8_t *stamp = batch->bytes + batch->stamp_offset[position];
        put_u64_le(stamp, now_ns);
        put_u64_le(stamp + 8, make_tag(index, first_record_number + position));
    }
}

/* ---- consumer side: what every delivered record goes through ------------------------------- */

/* One delivered value of topic `topic` read at now_ns: latency from its stamp, and order per
 * (producer connection, topic) when the consumer keeps topics apart (order_topics > 1). */
void consumer_deliver(struct consumer_state *consumer, uint32_t connection_count, uint32_t topic,
                      const uint8_t *value, size_t value_bytes, uint64_t now_ns) {
    consumer->records++;
    consumer->bytes += value_bytes;
    if (value_bytes < BENCH_STAMP_BYTES) {
        consumer->short_records++;
        return;
    }
    uint64_t sent_ns = get_u64_le(value);
    uint64_t tag = get_u64_le(value + 8);
    if (sent_ns >= atomic_load_explicit(&consumer->latency_from_ns, memory_order_relaxed))
        histogram_record(&consumer->histogram, now_ns > sent_ns ? now_ns - sent_ns : 0);
    uint64_t index = tag >> BENCH_TAG_INDEX_SHIFT;
    uint64_t record_number = tag & ((1ull << BENCH_TAG_INDEX_SHIFT) - 1);
    if (index >= connection_count) {
        consumer->short_records++;
        return;
    }
    /* Records of one connection to one topic come back in order; a number not above the last
     * one seen is a reordering or a duplicate. Gaps are normal across several topics. */
    INTAKE_ASSERT(consumer->order_topics >= 1);
    uint64_t slot = index * consumer->order_topics + topic % consumer->order_topics;
    if (record_number < consumer->next_record_number[slot])
        consumer->out_of_order++;
    else
        consumer->next_record_number[slot] = record_number + 1;
}

/* Makes the consumer's totals visible to producers (closed-loop window) and to main. */
void consumer_publish(struct bench_run *run, uint64_t now_ns) {
    atomic_store_explicit(&run->delivered_records, run->consumer.records, memory_order_relaxed);
    atomic_store_explicit(&run->delivered_bytes, run->consumer.bytes, memory_order_relaxed);
    atomic_store_explicit(&run->last_delivery_ns, now_ns, memory_order_relaxed);
}

/* Parses every complete MSG (and answers PING) in buffer[0..filled); returns bytes consumed. */
static size_t nats_parse_messages(struct bench_run *run, const uint8_t *buffer, size_t filled,
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
static int consume_nats(struct bench_run *run) {
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

static void *consumer_thread(void *argument) {
    struct bench_run *run = argument;
    if (run->options->target == TARGET_NATS)
        (void)consume_nats(run);
    else
        (void)consume_intake(run);
    run->consumer.cpu_ns = thread_cpu_ns();
    return NULL;
}

static int consumer_prepare(struct bench_run *run) {
    const struct bench_options *options = run->options;
    struct consumer_state *consumer = &run->consumer;
    consumer->socket_fd = -1;
    consumer->order_topics = options->target == TARGET_INTAKE ? options->topic_count : 1;
    consumer->next_record_number =
        calloc((size_t)options->connection_count * consumer->order_topics, sizeof(uint64_t));
    if (!consumer->next_record_number) return -ENOMEM;
    if (options->target == TARGET_INTAKE) {
        consumer->topic_logs = calloc(options->topic_count, sizeof *consumer->topic_logs);
        consumer->set_records = calloc(BENCH_POLL_RECORDS_MAX, sizeof *consumer->set_records);
        consumer->set_topic_number =
            malloc(options->topic_count * sizeof *consumer->set_topic_number);
        if (!consumer->topic_logs || !consumer->set_records || !consumer->set_topic_number)
            return -ENOMEM;
        for (uint32_t topic = 0; topic < options->topic_count; topic++)
            consumer->set_topic_number[topic] = -1;
        return 0;
    }
    consumer->buffer = malloc(BENCH_CONSUMER_BUFFER_BYTES);
    if (!consumer->buffer) return -ENOMEM;
    int result = connect_tcp(options->host, options->port, 5000, &consumer->socket_fd);
    if (result != 0) return result;
    /* A larger receive buffer so bursts of 64 KiB messages do not stall the server's writes. */
    int receive_bytes = 4 << 20;
    (void)setsockopt(consumer->socket_fd, SOL_SOCKET, SO_RCVBUF, &receive_bytes,
                     sizeof receive_bytes);
    return nats_handshake(consumer->socket_fd, "SUB " BENCH_NATS_SUBJECT_PREFIX "> 1\r\n");
}

static void consumer_release(struct consumer_state *consumer) {
    if (consumer->socket_fd >= 0) close(consumer->socket_fd);
    free(consumer->buffer);
    free(consumer->next_record_number);
    free(consumer->topic_logs);
    free(consumer->set_records);
    free(consumer->set_topic_number);
}

/* ---- producers ----------------------------------------------------------------------------- */

struct producer {
    struct bench_run *run;
    uint32_t index;     /* connection index, in every record's tag */
    int fd;             /* raw producers; the library producer owns its own socket */
    struct ssl_st *tls; /* raw producers with --tls-ca: the TLS session on fd */
    pthread_t thread;
    struct batch batch;
    struct bench_library_producer library;             /* --producer library */
    char (*topic_names)[BENCH_TOPIC_NAME_BYTES_MAX];   /* --producer library: per batch position */
    char producer_id[BENCH_PRODUCER_ID_BYTES_MAX + 1]; /* --producer-id, else "" */
    uint64_t cpu_ns;         /* this thread's CPU time (user + system), stored when it ends */
    uint64_t wait_cpu_ns;    /* of which spent waiting for the closed-loop window (the bench's) */
    uint64_t records_sent;   /* record numbers (and sequences) start at 1 */
    uint64_t record_quota;   /* this connection's share of --count; 0: none */
    uint64_t acked_sequence; /* highest cumulative Ack.sequence seen */
    uint8_t reply_buffer[BENCH_ACK_BUFFER_BYTES];
    size_t reply_filled;
    uint32_t writes_since_reply_check;
};

/* Reads delimited intake.v1.Ack frames with the wire stage's decoder (ack_frame_decode, the
 * producer library's); a non-OK status or an unreadable frame ends the run with its detail.
 * Returns the bytes consumed (whole frames). */
static size_t producer_parse_acks(struct producer *producer, const uint8_t *bytes, size_t filled) {
    size_t at = 0;
    while (at < filled) {
        struct ack_frame_decoded ack;
        enum ack_frame_result result =
            ack_frame_decode(bytes + at, filled - at, BENCH_ACK_BUFFER_BYTES, &ack);
        if (result == ACK_FRAME_NEED_MORE) break;
        if (result != ACK_FRAME_OK) {
            fprintf(stderr, "intake-bench: connection %u: unreadable ack: %s\n", producer->index,
                    result == ACK_FRAME_UNREADABLE ? ack.problem : "bad or oversized prefix");
            run_fail(producer->run, -EPROTO, "intake sent an unreadable ack");
            return filled; /* nothing after it can be framed */
        }
        if (ack.status != 0) {
            fprintf(stderr, "intake-bench: connection %u: ack status %u: %s\n", producer->index,
                    ack.status, ack.detail);
            run_fail(producer->run, -EPROTO, "intake rejected records");
        }
        if (ack.sequence > producer->acked_sequence) producer->acked_sequence = ack.sequence;
        at += ack.frame_bytes;
    }
    return at;
}

/* Parses NATS control lines sent to a publisher: answers PING, reports -ERR. */
static size_t producer_parse_nats_lines(struct producer *producer, const uint8_t *bytes,
                                        size_t filled) {
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

/* Reads whatever the server sent back (acks, PING, errors). wait=false never blocks; wait=true
 * blocks up to the socket's 1 s receive timeout. Bounded: one recv per call. */
static void producer_read_replies(struct producer *producer, bool wait) {
    size_t room = sizeof producer->reply_buffer - producer->reply_filled;
    ssize_t got = 0;
    if (producer->tls) {
        got = bench_tls_read(producer->tls, producer->fd,
                             producer->reply_buffer + producer->reply_filled, room, wait);
        if (got == -EAGAIN) return;
        if (got < 0) {
            run_fail(producer->run, (int)got, "producer TLS read");
            return;
        }
    } else {
        got = recv(producer->fd, producer->reply_buffer + producer->reply_filled, room,
                   wait ? 0 : MSG_DONTWAIT);
    }
    if (got == 0) {
        run_fail(producer->run, -ECONNRESET, "the server closed a producer connection");
        return;
    }
    if (got < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            run_fail(producer->run, -errno, "producer read");
        return;
    }
    producer->reply_filled += (size_t)got;
    size_t consumed =
        producer->run->options->target == TARGET_NATS
            ? producer_parse_nats_lines(producer, producer->reply_buffer, producer->reply_filled)
            : producer_parse_acks(producer, producer->reply_buffer, producer->reply_filled);
    if (consumed == 0 && producer->reply_filled == sizeof producer->reply_buffer) {
        run_fail(producer->run, -EMSGSIZE, "a reply larger than the reply buffer");
        return;
    }
    memmove(producer->reply_buffer, producer->reply_buffer + consumed,
            producer->reply_filled - consumed);
    producer->reply_filled -= consumed;
}

/* --producer library: the same records (topics, sizes, stamps) through the producer library,
 * one record at a time, then one flush: the library's encoding replaces the patched batch. */
static int producer_send_library(struct producer *producer, uint32_t record_count,
                                 uint64_t first_number) {
    const struct bench_options *options = producer->run->options;
    INTAKE_ASSERT(producer->topic_names != NULL);
    uint64_t now_ns = intake_now_ns();
    uint8_t stamp[BENCH_STAMP_BYTES];
    put_u64_le(stamp, now_ns);
    for (uint32_t position = 0; position < record_count; position++) {
        put_u64_le(stamp + 8, make_tag(producer->index, first_number + position));
        int result = bench_library_send(&producer->library, producer->topic_names[position],
                                        batch_value_bytes(options, position), stamp);
        if (result != 0) return result;
    }
    int result = bench_library_flush(&producer->library);
    producer->acked_sequence = bench_library_acked(&producer->library);
    return result;
}

/* Stamps and writes the first record_count records of the batch. */
static int producer_send(struct producer *producer, uint32_t record_count) {
    struct bench_run *run = producer->run;
    const struct bench_options *options = run->options;
    struct batch *batch = &producer->batch;
    INTAKE_ASSERT(record_count > 0 && record_count <= batch->record_count);
    uint64_t first_number = producer->records_sent + 1;
    int result = 0;
    if (options->producer_kind == PRODUCER_LIBRARY) {
        result = producer_send_library(producer, record_count, first_number);
        if (result != 0) {
            fprintf(stderr, "intake-bench: connection %u: %s\n", producer->index,
                    bench_library_error(&producer->library));
            return result;
        }
    } else {
        if (options->acks)
            batch_encode(batch, options, producer->index, first_number,
                         producer->producer_id[0] ? producer->producer_id : NULL);
        batch_stamp(batch, record_count, producer->index, first_number, intake_now_ns());
        size_t length = batch->record_end[record_count - 1];
        result = producer->tls ? bench_tls_write_all(producer->tls, batch->bytes, length,
                                                     run->deadline_ns + BENCH_DRAIN_TIMEOUT_NS)
                               : write_all(run, producer->fd, batch->bytes, length);
        if (result != 0) return result;
    }
    uint64_t payload_bytes = 0;
    for (uint32_t position = 0; position < record_count; position++)
        payload_bytes += batch_value_bytes(options, position);
    producer->records_sent += record_count;
    atomic_fetch_add_explicit(&run->sent_records, record_count, memory_order_relaxed);
    atomic_fetch_add_explicit(&run->sent_bytes, payload_bytes, memory_order_relaxed);
    /* Acks are read after every write (they are small and the daemon coalesces them); NATS only
     * sends a rare PING to publishers, so look every 64 writes. */
    if (options->producer_kind == PRODUCER_LIBRARY) return 0; /* the library reads its acks */
    if (options->acks || ++producer->writes_since_reply_check >= 64) {
        producer->writes_since_reply_check = 0;
        producer_read_replies(producer, false);
    }
    return 0;
}

static bool producer_should_stop(const struct producer *producer) {
    return atomic_load_explicit(&producer->run->stop_producing, memory_order_relaxed);
}

/* Records to write next: what is allowed by now (schedule, quota) minus what is sent, capped
 * at one batch. allowed_total is UINT64_MAX in closed loop. */
static uint32_t producer_next_count(const struct producer *producer, uint64_t allowed_total) {
    uint32_t batch_records = producer->run->options->batch_records;
    if (producer->record_quota && producer->record_quota < allowed_total)
        allowed_total = producer->record_quota;
    if (allowed_total <= producer->records_sent) return 0;
    uint64_t remaining = allowed_total - producer->records_sent;
    return remaining < batch_records ? (uint32_t)remaining : batch_records;
}

/* Closed loop: waits while more than --window bytes are sent but not yet consumed (so neither
 * server nor subscriber is overrun; NATS would drop a "slow consumer"). */
static bool producer_window_open(const struct bench_run *run) {
    uint64_t sent = atomic_load_explicit(&run->sent_bytes, memory_order_relaxed);
    uint64_t delivered = atomic_load_explicit(&run->delivered_bytes, memory_order_relaxed);
    return sent - delivered < run->options->window_bytes;
}

/* The CPU this wait costs is the bench's rate limiter, not a producer's work: it is counted
 * apart (wait_cpu_ns) and left out of the producer side's CPU per record. The sleep is long
 * enough that 16 waiting threads do not take a core from the server and the consumer (20 us
 * sleeps took about 0.6 of a core here), and short against the window (16 MiB is 65 ms of
 * 256-byte records at 1 M/s, 11 ms of 64 KiB ones at 1.4 GB/s). */
static void producer_wait_for_window(struct producer *producer) {
    struct bench_run *run = producer->run;
    if (!run->options->consume || producer_window_open(run)) return;
    uint64_t cpu_before_ns = thread_cpu_ns();
    while (!producer_should_stop(producer) && !producer_window_open(run))
        sleep_ns(BENCH_WINDOW_SLEEP_NS);
    producer->wait_cpu_ns += thread_cpu_ns() - cpu_before_ns;
}

static void producer_run_closed_loop(struct producer *producer) {
    while (!producer_should_stop(producer)) {
        uint32_t count = producer_next_count(producer, UINT64_MAX);
        if (count == 0) return;
        producer_wait_for_window(producer);
        if (producer_should_stop(producer)) return;
        int result = producer_send(producer, count);
        if (result != 0) {
            run_fail(producer->run, result, "producer write");
            return;
        }
    }
}

/* Open loop: in each 1 ms slice, sends what the schedule says is due by now, then sleeps to the
 * next slice. If the server is slow the deficit is sent as soon as possible (no omission). */
static void producer_run_open_loop(struct producer *producer) {
    struct bench_run *run = producer->run;
    double rate_per_ns = run->options->rate_per_s / run->options->connection_count / 1e9;
    uint64_t next_slice_ns = run->start_ns;
    while (!producer_should_stop(producer)) {
        uint64_t due = (uint64_t)((double)(intake_now_ns() - run->start_ns) * rate_per_ns) + 1;
        for (uint32_t count = producer_next_count(producer, due); count > 0;
             count = producer_next_count(producer, due)) {
            int result = producer_send(producer, count);
            if (result != 0) {
                run_fail(run, result, "producer write");
                return;
            }
            if (producer_should_stop(producer)) return;
        }
        if (producer->record_quota && producer->records_sent >= producer->record_quota) return;
        next_slice_ns += BENCH_SLICE_NS;
        uint64_t now_ns = intake_now_ns();
        if (next_slice_ns > now_ns)
            sleep_ns(next_slice_ns - now_ns);
        else
            next_slice_ns = now_ns;
    }
}

/* With --acks: after the last write, waits (bounded) for the ack of the last record. */
static void producer_wait_for_acks(struct producer *producer) {
    if (producer->run->options->producer_kind == PRODUCER_LIBRARY) {
        int result =
            bench_library_wait_acks(&producer->library, (int)(BENCH_DRAIN_TIMEOUT_NS / 1000000u));
        producer->acked_sequence = bench_library_acked(&producer->library);
        if (result != 0) {
            fprintf(stderr, "intake-bench: connection %u: %s\n", producer->index,
                    bench_library_error(&producer->library));
            run_fail(producer->run, result, "library producer: waiting for acks");
        }
        return;
    }
    uint64_t deadline_ns = intake_now_ns() + BENCH_DRAIN_TIMEOUT_NS;
    while (producer->acked_sequence < producer->records_sent && intake_now_ns() < deadline_ns &&
           atomic_load(&producer->run->failure) == 0)
        producer_read_replies(producer, true);
}

static void *producer_thread(void *argument) {
    struct producer *producer = argument;
    if (producer->run->options->rate_per_s > 0)
        producer_run_open_loop(producer);
    else
        producer_run_closed_loop(producer);
    if (producer->run->options->acks) producer_wait_for_acks(producer);
    producer->cpu_ns = thread_cpu_ns();
    atomic_fetch_sub(&producer->run->producers_running, 1);
    return NULL;
}

/* --producer library: topic names per batch position (named once, not per record) and a
 * library producer whose batch holds a whole bench batch, so it writes only on flush. */
static int producer_prepare_library(struct producer *producer) {
    const struct bench_options *options = producer->run->options;
    uint32_t value_bytes_max = 0;
    producer->topic_names = calloc(options->batch_records, sizeof *producer->topic_names);
    if (!producer->topic_names) return -ENOMEM;
    for (uint32_t position = 0; position < options->batch_records; position++) {
        snprintf(producer->topic_names[position], BENCH_TOPIC_NAME_BYTES_MAX,
                 BENCH_INTAKE_TOPIC_PREFIX "%u", batch_topic(options, producer->index, position));
        if (batch_value_bytes(options, position) > value_bytes_max)
            value_bytes_max = batch_value_bytes(options, position);
    }
    char why[256];
    int result = bench_library_open(&producer->library, options->host, options->port,
                                    (uint32_t)producer->batch.capacity, options->acks,
                                    value_bytes_max, &options->tls, why, sizeof why);
    if (result != 0) fprintf(stderr, "intake-bench: library producer: %s\n", why);
    return result;
}

static int producer_prepare(struct producer *producer, struct bench_run *run, uint32_t index) {
    const struct bench_options *options = run->options;
    memset(producer, 0, sizeof *producer);
    producer->run = run;
    producer->index = index;
    producer->fd = -1;
    if (options->record_count) {
        uint64_t share = options->record_count / options->connection_count;
        producer->record_quota =
            share + (index < options->record_count % options->connection_count);
        if (producer->record_quota == 0) producer->record_quota = 1;
    }
    /* Unique per run and connection, so ids never repeat across runs against one daemon. */
    if (options->producer_id)
        snprintf(producer->producer_id, sizeof producer->producer_id, "bench-%08x-%u",
                 (unsigned)(intake_now_ns() ^ ((uint64_t)getpid() << 20)), index);
    int result = batch_init(&producer->batch, options);
    if (result != 0) return result;
    batch_encode(&producer->batch, options, index, options->acks ? 1 : 0,
                 producer->producer_id[0] ? producer->producer_id : NULL);
    if (options->producer_kind == PRODUCER_LIBRARY) return producer_prepare_library(producer);
    result = connect_tcp(options->host, options->port, 5000, &producer->fd);
    if (result == 0 && options->target == TARGET_NATS) result = nats_handshake(producer->fd, "");
    if (result == 0 && run->tls_context != NULL) {
        char why[256];
        result = bench_tls_connect(run->tls_context, producer->fd, &options->tls, options->host,
                                   BENCH_HANDSHAKE_TIMEOUT_MS, &producer->tls, why, sizeof why);
        if (result != 0) fprintf(stderr, "intake-bench: connection %u: %s\n", index, why);
    }
    return result;
}

static void producer_release(struct producer *producer) {
    bench_tls_close(producer->tls);
    if (producer->fd >= 0) close(producer->fd);
    bench_library_close(&producer->library);
    free(producer->topic_names);
    batch_destroy(&producer->batch);
}

/* ---- one load run -------------------------------------------------------------------------- */

static const char *target_name(enum bench_target target) {
    return target == TARGET_NATS ? "nats" : target == TARGET_INTAKE ? "intake" : "none";
}

/* Waits (bounded) until the consumer has every record that was sent, or the drain timeout. */
static void run_wait_for_deliveries(struct bench_run *run) {
    uint64_t deadline_ns = intake_now_ns() + BENCH_DRAIN_TIMEOUT_NS;
    while (intake_now_ns() < deadline_ns && atomic_load(&run->failure) == 0) {
        uint64_t sent = atomic_load(&run->sent_records);
        if (atomic_load(&run->delivered_records) >= sent) return;
        sleep_ns(1000000);
    }
}

/* What the producers spoke: "none", the raw producers' negotiated suite, or "library" (the
 * producer library's TLS, whose suite the daemon chose among the library's offers). */
static const char *run_tls_name(const struct bench_options *options,
                                const struct producer *producers) {
    if (options->tls.ca_file == NULL) return "none";
    if (options->producer_kind == PRODUCER_LIBRARY) return "library";
    return producers[0].tls ? bench_tls_cipher(producers[0].tls) : "none";
}

static void run_print_result(struct bench_run *run, const struct producer *producers,
                             uint64_t production_end_ns) {
    const struct bench_options *options = run->options;
    uint64_t sent = atomic_load(&run->sent_records);
    uint64_t messages = sent, bytes = atomic_load(&run->sent_bytes), end_ns = production_end_ns;
    if (options->consume) {
        messages = atomic_load(&run->delivered_records);
        bytes = atomic_load(&run->delivered_bytes);
        end_ns = atomic_load(&run->last_delivery_ns);
    } else if (options->acks) {
        messages = 0; /* without a consumer, acked records are the delivered ones */
        for (uint32_t index = 0; index < options->connection_count; index++)
            messages += producers[index].acked_sequence;
    }
    double seconds = end_ns > run->start_ns ? (double)(end_ns - run->start_ns) / 1e9 : 0;
    const struct consumer_state *consumer = &run->consumer;
    const struct latency_histogram *histogram = &consumer->histogram;
    /* Exactly once: as many delivered as sent, none reported missed, none short, and per
     * (connection, topic) every record number above the previous one (no duplicates). */
    bool exactly_once = options->consume && messages == sent && consumer->missed == 0 &&
                        consumer->out_of_order == 0 && consumer->short_records == 0;
    /* Each side's CPU per delivered record: the producer threads' and the consumer thread's
     * own CPU clocks (user + system, so send/recv syscalls count for the side that made them). */
    uint64_t producer_cpu_ns = 0, producer_wait_cpu_ns = 0;
    for (uint32_t index = 0; index < options->connection_count; index++) {
        producer_cpu_ns += producers[index].cpu_ns - producers[index].wait_cpu_ns;
        producer_wait_cpu_ns += producers[index].wait_cpu_ns;
    }
    double per_message_us = messages ? 1e-3 / (double)messages : 0;
    printf("result target=%s mode=%s size=%s conns=%u batch=%u topics=%u rate=%.0f msgs=%llu "
           "sent=%llu lost=%llu secs=%.3f msgs_per_s=%.0f mb_per_s=%.1f p50_us=%.1f p99_us=%.1f "
           "p999_us=%.1f max_us=%.1f out_of_order=%llu missed=%llu exactly_once=%s "
           "consumer=%s consumer_api=%s producer=%s producer_id=%s producer_cpu_s=%.3f "
           "producer_wait_cpu_s=%.3f "
           "consumer_cpu_s=%.3f "
           "producer_us_per_msg=%.3f consumer_us_per_msg=%.3f tls=%s\n",
           target_name(options->target), options->rate_per_s > 0 ? "open" : "closed",
           options->sizes_text, options->connection_count, options->batch_records,
           options->topic_count, options->rate_per_s, (unsigned long long)messages,
           (unsigned long long)sent, (unsigned long long)(sent > messages ? sent - messages : 0),
           seconds, seconds > 0 ? messages / seconds : 0, seconds > 0 ? bytes / seconds / 1e6 : 0,
           histogram_quantile(histogram, 0.50) / 1e3, histogram_quantile(histogram, 0.99) / 1e3,
           histogram_quantile(histogram, 0.999) / 1e3, histogram->max_ns / 1e3,
           (unsigned long long)consumer->out_of_order, (unsigned long long)consumer->missed,
           !options->consume ? "unchecked"
           : exactly_once    ? "yes"
                             : "no",
           options->consume ? "yes"
           : options->acks  ? "acks"
                            : "none",
           options->target != TARGET_INTAKE         ? "nats"
           : options->consumer_kind == CONSUMER_SET ? "set"
                                                    : "handles",
           options->producer_kind == PRODUCER_LIBRARY ? "library" : "raw",
           options->producer_id ? "yes" : "no", producer_cpu_ns / 1e9, producer_wait_cpu_ns / 1e9,
           consumer->cpu_ns / 1e9, (double)producer_cpu_ns * per_message_us,
           (double)consumer->cpu_ns * per_message_us, run_tls_name(options, producers));
    fflush(stdout);
}

/* Main thread's part while producers run: wait for the deadline, all producers done, or failure. */
static void run_supervise(struct bench_run *run) {
    while (intake_now_ns() < run->deadline_ns && atomic_load(&run->producers_running) > 0 &&
           atomic_load(&run->failure) == 0)
        sleep_ns(5000000);
    atomic_store(&run->stop_producing, true);
}

static int run_start_consumer(struct bench_run *run, pthread_t *thread, bool *started) {
    int result = consumer_prepare(run);
    if (result != 0) {
        run_fail(run, result, "consumer setup");
        return result;
    }
    if (pthread_create(thread, NULL, consumer_thread, run) != 0) return -EAGAIN;
    *started = true;
    uint64_t deadline_ns = intake_now_ns() + (uint64_t)BENCH_HANDSHAKE_TIMEOUT_MS * 1000000u;
    while (!atomic_load(&run->consumer_ready) && atomic_load(&run->failure) == 0 &&
           intake_now_ns() < deadline_ns)
        sleep_ns(1000000);
    if (atomic_load(&run->consumer_ready)) return 0;
    run_fail(run, -ETIMEDOUT, "the consumer did not become ready");
    return -ETIMEDOUT;
}

static void run_stop_consumer(struct bench_run *run, pthread_t thread) {
    run_wait_for_deliveries(run);
    atomic_store(&run->stop_consuming, true);
    /* Wakes a subscriber blocked in recv at once instead of after its 1 s timeout. */
    if (run->consumer.socket_fd >= 0) shutdown(run->consumer.socket_fd, SHUT_RD);
    pthread_join(thread, NULL);
}

/* Prepares every producer and starts its thread; *created says how many threads exist, which
 * main must join (not producers_running: a producer bound by --count may have finished and
 * counted itself out before main looks). */
static int run_start_producers(struct bench_run *run, struct producer *producers,
                               uint32_t *created) {
    const struct bench_options *options = run->options;
    *created = 0;
    uint32_t prepared = 0;
    for (; prepared < options->connection_count; prepared++) {
        int result = producer_prepare(&producers[prepared], run, prepared);
        if (result != 0) {
            run_fail(run, result, "producer connection");
            return result;
        }
    }
    double duration_s = options->duration_s > 0 ? options->duration_s : BENCH_RUN_SECONDS_MAX;
    run->start_ns = intake_now_ns();
    run->deadline_ns = run->start_ns + (uint64_t)(duration_s * 1e9);
    atomic_store_explicit(&run->consumer.latency_from_ns,
                          run->start_ns + (uint64_t)(options->warmup_s * 1e9),
                          memory_order_relaxed);
    atomic_store(&run->producers_running, options->connection_count);
    for (uint32_t index = 0; index < options->connection_count; index++) {
        if (pthread_create(&producers[index].thread, NULL, producer_thread, &producers[index]) !=
            0) {
            /* Threads already started stop on the flag; main joins exactly those. */
            run_fail(run, -EAGAIN, "pthread_create");
            return -EAGAIN;
        }
        *created = index + 1;
    }
    return 0;
}

static int run_load(const struct bench_options *options) {
    static struct bench_run run; /* large (histogram); one run per process */
    run.options = options;
    run.consumer.socket_fd = -1;
    if (options->tls.ca_file != NULL && options->producer_kind == PRODUCER_RAW) {
        char why[256];
        if (bench_tls_context(&options->tls, &run.tls_context, why, sizeof why) != 0) {
            fprintf(stderr, "intake-bench: %s\n", why);
            return 1;
        }
    }
    struct producer *producers = calloc(options->connection_count, sizeof *producers);
    if (!producers) return 1;
    for (uint32_t index = 0; index < options->connection_count; index++) producers[index].fd = -1;
    pthread_t consumer;
    bool consumer_started = false;
    int result = 0;
    if (options->consume) {
        result = run_start_consumer(&run, &consumer, &consumer_started);
    }
    uint32_t started = 0;
    if (result == 0) {
        result = run_start_producers(&run, producers, &started);
        if (result == 0) run_supervise(&run);
    }
    atomic_store(&run.stop_producing, true);
    for (uint32_t index = 0; index < started; index++) pthread_join(producers[index].thread, NULL);
    uint64_t production_end_ns = intake_now_ns();
    if (consumer_started) run_stop_consumer(&run, consumer);
    if (atomic_load(&run.failure) == 0) run_print_result(&run, producers, production_end_ns);
    for (uint32_t index = 0; index < options->connection_count; index++)
        producer_release(&producers[index]);
    free(producers);
    consumer_release(&run.consumer);
    bench_tls_context_free(run.tls_context);
    return atomic_load(&run.failure) == 0 ? 0 : 1;
}

/* ---- idle connections: the server's memory per connection ---------------------------------- */

/* Raises the open-file limit (soft and, as root, hard) to fit `needed` descriptors. */
static int raise_open_file_limit(uint64_t needed) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return -errno;
    if (limit.rlim_cur >= needed) return 0;
    if (limit.rlim_max < needed) limit.rlim_max = needed;
    limit.rlim_cur = needed;
    return setrlimit(RLIMIT_NOFILE, &limit) == 0 ? 0 : -errno;
}

/* Opens --idle-connections connections (NATS ones say CONNECT, so the server keeps them), prints
 * "idle ... ready", holds them for --hold-s seconds, then closes them. */
static int run_idle_connections(const struct bench_options *options) {
    uint32_t count = options->idle_connections;
    int result = raise_open_file_limit((uint64_t)count + 256);
    if (result != 0) {
        fprintf(stderr, "intake-bench: cannot raise the open-file limit to %u: %s\n", count + 256,
                strerror(-result));
        return 1;
    }
    int *fds = malloc(sizeof(int) * count);
    if (!fds) return 1;
    static const char nats_hello[] = "CONNECT {\"verbose\":false,\"pedantic\":false}\r\nPING\r\n";
    uint32_t opened = 0;
    uint64_t start_ns = intake_now_ns();
    for (; opened < count; opened++) {
        result = connect_tcp(options->host, options->port, 30000, &fds[opened]);
        if (result == 0 && options->target == TARGET_NATS &&
            send(fds[opened], nats_hello, sizeof nats_hello - 1, MSG_NOSIGNAL) < 0)
            result = -errno;
        if (result != 0) break;
    }
    double connect_s = (double)(intake_now_ns() - start_ns) / 1e9;
    printf("idle target=%s connections=%u opened=%u connect_secs=%.2f ready\n",
           target_name(options->target), count, opened, connect_s);
    fflush(stdout);
    if (result == 0)
        sleep_ns((uint64_t)(options->hold_s * 1e9));
    else
        fprintf(stderr, "intake-bench: connection %u: %s\n", opened, strerror(-result));
    for (uint32_t index = 0; index < opened; index++) close(fds[index]);
    free(fds);
    printf("result target=%s mode=idle conns=%u opened=%u\n", target_name(options->target), count,
           opened);
    return result == 0 ? 0 : 1;
}

/* ---- memcpy: single-core copy bandwidth, the other ceiling --------------------------------- */

#define MEMCPY_BUFFER_BYTES (256u << 20) /* well past the last-level cache: memory bandwidth */

/* Copies --size chunks from one buffer to another, walking both sequentially, for --duration-s. */
static int run_memcpy(const struct bench_options *options) {
    uint32_t chunk_bytes = options->sizes[0];
    uint8_t *source = malloc(MEMCPY_BUFFER_BYTES);
    uint8_t *destination = malloc(MEMCPY_BUFFER_BYTES);
    if (!source || !destination) return 1;
    /* Touch every page first so the timing has no page faults. */
    memset(source, 'm', MEMCPY_BUFFER_BYTES);
    /* Not zero: the compiler would turn malloc+memset(0) into calloc's lazy zero pages. */
    memset(destination, 'd', MEMCPY_BUFFER_BYTES);
    uint64_t chunks_per_lap = MEMCPY_BUFFER_BYTES / chunk_bytes;
    uint64_t copied_chunks = 0, start_ns = intake_now_ns(), now_ns = start_ns;
    uint64_t end_ns = start_ns + (uint64_t)(options->duration_s * 1e9);
    while (now_ns < end_ns) {
        /* A clock read per 16 MiB keeps timing overhead negligible for 64-byte chunks. */
        for (uint64_t step = 0; step < (16u << 20) / chunk_bytes; step++) {
            uint64_t at = (copied_chunks++ % chunks_per_lap) * chunk_bytes;
            memcpy(destination + at, source + at, chunk_bytes);
        }
        now_ns = intake_now_ns();
    }
    /* Reading the destination keeps the compiler from dropping the copies. */
    volatile uint8_t sink = destination[(copied_chunks * 7919) % MEMCPY_BUFFER_BYTES];
    (void)sink;
    double seconds = (double)(now_ns - start_ns) / 1e9;
    printf("result target=memcpy mode=closed size=%u conns=1 msgs=%llu secs=%.3f msgs_per_s=%.0f "
           "mb_per_s=%.1f\n",
           chunk_bytes, (unsigned long long)copied_chunks, seconds, copied_chunks / seconds,
           (double)copied_chunks * chunk_bytes / seconds / 1e6);
    free(source);
    free(destination);
    return 0;
}

/* ---- self-test: encoders against decoders, histogram accuracy ------------------------------ */

static int self_test_failures;
#define SELF_CHECK(condition)                                                                      \
    do {                                                                                           \
        if (!(condition)) {                                                                        \
            fprintf(stderr, "self-test failed: %s (line %d)\n", #condition, __LINE__);             \
            self_test_failures++;                                                                  \
        }                                                                                          \
    } while (0)

static void self_test_histogram(void) {
    static struct latency_histogram histogram;
    uint32_t previous_index = 0;
    for (double step = 1; step < 1e12; step *= 1.01) {
        double value = (double)(uint64_t)step;
        uint32_t index = histogram_index((uint64_t)value);
        double reported = (double)histogram_bucket_value(index);
        SELF_CHECK(index >= previous_index);
        if (!(reported >= value * 0.97 && reported <= value * 1.03 + 1)) {
            fprintf(stderr, "self-test: %.0f reported as %.0f\n", value, reported);
            self_test_failures++;
            break;
        }
        previous_index = index;
    }
    for (uint64_t value = 1; value <= 100000; value++) histogram_record(&histogram, value);
    double median = (double)histogram_quantile(&histogram, 0.5);
    double tail = (double)histogram_quantile(&histogram, 0.999);
    SELF_CHECK(median > 48000 && median < 52000);
    SELF_CHECK(tail > 97000 && tail <= 100000);
}

/* Encodes intake batches (with and without sequences) and reads every record back. */
static void self_test_intake_encoding(void) {
    struct bench_options options = {.target = TARGET_INTAKE,
                                    .connection_count = 3,
                                    .sizes = {64, 300, 70000},
                                    .size_count = 3,
                                    .batch_records = 7,
                                    .topic_count = 5};
    struct batch batch;
    SELF_CHECK(batch_init(&batch, &options) == 0);
    for (uint64_t first_sequence = 0; first_sequence <= 200; first_sequence += 200) {
        const char *producer_id = first_sequence ? "bench-0000beef-2" : NULL;
        batch_encode(&batch, &options, 2, first_sequence, producer_id);
        batch_stamp(&batch, batch.record_count, 2, 41, 123456789);
        size_t at = 0;
        for (uint32_t position = 0; position < batch.record_count; position++) {
            uint64_t frame_bytes = 0;
            size_t used = decode_varint(batch.bytes + at, batch.capacity - at, &frame_bytes);
            SELF_CHECK(used > 0);
            struct intake_record_view view = INTAKE_RECORD_VIEW_INIT;
            SELF_CHECK(intake_record_parse(batch.bytes + at + used, frame_bytes, &view) == 0);
            const uint8_t *value = view.value.bytes;
            SELF_CHECK(view.value.length == batch_value_bytes(&options, position));
            SELF_CHECK(value && get_u64_le(value) == 123456789);
            SELF_CHECK(value && get_u64_le(value + 8) == make_tag(2, 41 + position));
            const uint8_t *id = view.producer_id.bytes;
            size_t id_bytes = view.producer_id.length;
            SELF_CHECK((id != NULL) == (producer_id != NULL));
            SELF_CHECK(!producer_id ||
                       (id_bytes == strlen(producer_id) && memcmp(id, producer_id, id_bytes) == 0));
            at += used + frame_bytes;
            SELF_CHECK(at == batch.record_end[position]);
        }
    }
    batch_destroy(&batch);
}

/* Encodes a NATS batch, turns each PUB into the MSG the server would deliver, and parses the
 * stream split at an awkward point, as a subscriber read would see it. */
static void self_test_nats_encoding(void) {
    static struct bench_options options = {.target = TARGET_NATS,
                                           .connection_count = 4,
                                           .sizes = {64, 4096},
                                           .size_count = 2,
                                           .batch_records = 9,
                                           .topic_count = 3};
    static struct bench_run run;
    static uint64_t next_numbers[4];
    static uint8_t stream[1 << 16];
    struct batch batch;
    SELF_CHECK(batch_init(&batch, &options) == 0);
    batch_encode(&batch, &options, 3, 0, NULL);
    batch_stamp(&batch, batch.record_count, 3, 1, 5);
    size_t filled = 0;
    for (uint32_t position = 0; position < batch.record_count; position++) {
        uint32_t value_bytes = batch_value_bytes(&options, position);
        filled += (size_t)sprintf((char *)stream + filled, "MSG bench.%u 1 %u\r\n",
                                  batch_topic(&options, 3, position), value_bytes);
        memcpy(stream + filled, batch.bytes + batch.stamp_offset[position], value_bytes + 2);
        filled += value_bytes + 2;
    }
    run.options = &options;
    run.consumer.next_record_number = next_numbers;
    run.consumer.order_topics = 1;
    size_t split = filled / 2 + 3;
    size_t consumed = nats_parse_messages(&run, stream, split, 1000);
    memmove(stream, stream + consumed, filled - consumed);
    consumed = nats_parse_messages(&run, stream, filled - consumed, 1000);
    SELF_CHECK(run.consumer.records == batch.record_count);
    SELF_CHECK(run.consumer.out_of_order == 0 && run.consumer.short_records == 0);
    SELF_CHECK(next_numbers[3] == batch.record_count + 1);
    SELF_CHECK(histogram_quantile(&run.consumer.histogram, 0.5) == 995);
    batch_destroy(&batch);
}

static int run_self_test(void) {
    self_test_histogram();
    self_test_intake_encoding();
    self_test_nats_encoding();
    printf("self-test: %s\n", self_test_failures ? "FAILED" : "ok");
    return self_test_failures ? 1 : 0;
}

/* ---- options and main ---------------------------------------------------------------------- */

static void usage(FILE *out) {
    fprintf(
        out,
        "usage: intake-bench --target intake|nats --port PORT [options]   (load run)\n"
        "       intake-bench --target intake|nats --port PORT --idle-connections N [--hold-s S]\n"
        "       intake-bench --memcpy [--size BYTES] [--duration-s S]\n"
        "       intake-bench --self-test\n"
        "  --host ADDR          server address (default 127.0.0.1)\n"
        "  --connections M      producer connections, one thread each (default 1)\n"
        "  --size B[,B...]      value bytes, >= 16; a list cycles per record (default 256)\n"
        "  --batch N            records per write (default 64)\n"
        "  --topics K           topics bench-0..K-1 / subjects bench.0..K-1 (default 1)\n"
        "  --duration-s S       stop producing after S seconds (default 5)\n"
        "  --warmup-s W         leave records sent in the first W seconds out of the latency "
        "figures\n"
        "  --count N            stop after N records in total (0: time only)\n"
        "  --rate R             open loop: R records/s in total, paced per 1 ms (default 0: "
        "closed)\n"
        "  --window-bytes B     closed loop: payload bytes in flight at most (default 16 MiB)\n"
        "  --acks               intake: number records and read cumulative acks\n"
        "  --producer-id        intake: give each connection a producer_id (field 7; with --acks)\n"
        "  --consumer set|handles  intake: one consumer set for every topic (default) or one\n"
        "                       consumer handle per topic, polled in turn\n"
        "  --producer raw|library  intake: intake-bench's own encoder (default) or the product's\n"
        "                       producer library (include/intake/producer.h)\n"
        "  --no-consume         no consumer thread (throughput from sent or acked records)\n"
        "  --tls-ca FILE        intake: producers speak TLS 1.3 (to --tls-listen), verifying\n"
        "                       the server against FILE; --tls-cert FILE --tls-key FILE: a\n"
        "                       client certificate; --tls-server-name NAME (default: --host)\n"
        "  --tls-ciphersuite S  the suite the bench's own producers offer (default\n"
        "                       " BENCH_TLS_CIPHERSUITE_DEFAULT ")\n"
        "  --shm-dir DIR        intake's shared-memory directory (default /dev/shm/intake)\n");
}

static int parse_sizes(struct bench_options *options, const char *text) {
    char copy[128];
    if (strlen(text) >= sizeof copy) return -EINVAL;
    strcpy(copy, text);
    options->size_count = 0;
    for (char *save = NULL, *word = strtok_r(copy, ",", &save); word;
         word = strtok_r(NULL, ",", &save)) {
        unsigned long value = strtoul(word, NULL, 10);
        if (options->size_count == BENCH_SIZE_MIX_MAX || value < BENCH_STAMP_BYTES ||
            value > BENCH_VALUE_BYTES_MAX)
            return -EINVAL;
        options->sizes[options->size_count++] = (uint32_t)value;
    }
    options->sizes_text = text;
    return options->size_count ? 0 : -EINVAL;
}

enum option_id {
    OPT_TARGET = 256,
    OPT_HOST,
    OPT_PORT,
    OPT_CONNECTIONS,
    OPT_SIZE,
    OPT_BATCH,
    OPT_TOPICS,
    OPT_DURATION,
    OPT_WARMUP,
    OPT_COUNT,
    OPT_RATE,
    OPT_WINDOW,
    OPT_ACKS,
    OPT_PRODUCER_ID,
    OPT_PRODUCER,
    OPT_CONSUMER,
    OPT_NO_CONSUME,
    OPT_SHM_DIR,
    OPT_IDLE,
    OPT_HOLD,
    OPT_MEMCPY,
    OPT_SELF_TEST,
    OPT_HELP,
    OPT_TLS_CA,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
    OPT_TLS_SERVER_NAME,
    OPT_TLS_CIPHERSUITE
};

static const struct option long_options[] = {{"target", 1, NULL, OPT_TARGET},
                                             {"host", 1, NULL, OPT_HOST},
                                             {"port", 1, NULL, OPT_PORT},
                                             {"connections", 1, NULL, OPT_CONNECTIONS},
                                             {"size", 1, NULL, OPT_SIZE},
                                             {"batch", 1, NULL, OPT_BATCH},
                                             {"topics", 1, NULL, OPT_TOPICS},
                                             {"duration-s", 1, NULL, OPT_DURATION},
                                             {"warmup-s", 1, NULL, OPT_WARMUP},
                                             {"count", 1, NULL, OPT_COUNT},
                                             {"rate", 1, NULL, OPT_RATE},
                                             {"window-bytes", 1, NULL, OPT_WINDOW},
                                             {"acks", 0, NULL, OPT_ACKS},
                                             {"producer-id", 0, NULL, OPT_PRODUCER_ID},
                                             {"producer", 1, NULL, OPT_PRODUCER},
                                             {"consumer", 1, NULL, OPT_CONSUMER},
                                             {"no-consume", 0, NULL, OPT_NO_CONSUME},
                                             {"shm-dir", 1, NULL, OPT_SHM_DIR},
                                             {"idle-connections", 1, NULL, OPT_IDLE},
                                             {"hold-s", 1, NULL, OPT_HOLD},
                                             {"memcpy", 0, NULL, OPT_MEMCPY},
                                             {"self-test", 0, NULL, OPT_SELF_TEST},
                                             {"help", 0, NULL, OPT_HELP},
                                             {"tls-ca", 1, NULL, OPT_TLS_CA},
                                             {"tls-cert", 1, NULL, OPT_TLS_CERT},
                                             {"tls-key", 1, NULL, OPT_TLS_KEY},
                                             {"tls-server-name", 1, NULL, OPT_TLS_SERVER_NAME},
                                             {"tls-ciphersuite", 1, NULL, OPT_TLS_CIPHERSUITE},
                                             {NULL, 0, NULL, 0}};

/* Applies one option; returns 0, or -EINVAL for a bad value or an unknown option. */
static int apply_option(struct bench_options *options, int id, const char *value) {
    switch (id) {
    case OPT_TARGET:
        options->target = strcmp(value, "nats") == 0     ? TARGET_NATS
                          : strcmp(value, "intake") == 0 ? TARGET_INTAKE
                                                         : TARGET_NONE;
        return options->target == TARGET_NONE ? -EINVAL : 0;
    case OPT_HOST: options->host = value; return 0;
    case OPT_PORT: options->port = (uint16_t)strtoul(value, NULL, 10); return 0;
    case OPT_CONNECTIONS: options->connection_count = (uint32_t)strtoul(value, NULL, 10); return 0;
    case OPT_SIZE: return parse_sizes(options, value);
    case OPT_BATCH: options->batch_records = (uint32_t)strtoul(value, NULL, 10); return 0;
    case OPT_TOPICS: options->topic_count = (uint32_t)strtoul(value, NULL, 10); return 0;
    case OPT_DURATION: options->duration_s = strtod(value, NULL); return 0;
    case OPT_WARMUP: options->warmup_s = strtod(value, NULL); return 0;
    case OPT_COUNT: options->record_count = strtoull(value, NULL, 10); return 0;
    case OPT_RATE: options->rate_per_s = strtod(value, NULL); return 0;
    case OPT_WINDOW: options->window_bytes = strtoull(value, NULL, 10); return 0;
    case OPT_ACKS: options->acks = true; return 0;
    case OPT_PRODUCER_ID: options->producer_id = true; return 0;
    case OPT_CONSUMER:
        if (strcmp(value, "set") == 0)
            options->consumer_kind = CONSUMER_SET;
        else if (strcmp(value, "handles") == 0)
            options->consumer_kind = CONSUMER_HANDLES;
        else
            return -EINVAL;
        return 0;
    case OPT_PRODUCER:
        if (strcmp(value, "raw") == 0)
            options->producer_kind = PRODUCER_RAW;
        else if (strcmp(value, "library") == 0)
            options->producer_kind = PRODUCER_LIBRARY;
        else
            return -EINVAL;
        return 0;
    case OPT_NO_CONSUME: options->consume = false; return 0;
    case OPT_SHM_DIR: options->shm_dir = value; return 0;
    case OPT_IDLE: options->idle_connections = (uint32_t)strtoul(value, NULL, 10); return 0;
    case OPT_HOLD: options->hold_s = strtod(value, NULL); return 0;
    case OPT_MEMCPY: options->memcpy_mode = true; return 0;
    case OPT_SELF_TEST: options->self_test = true; return 0;
    case OPT_TLS_CA: options->tls.ca_file = value; return 0;
    case OPT_TLS_CERT: options->tls.cert_file = value; return 0;
    case OPT_TLS_KEY: options->tls.key_file = value; return 0;
    case OPT_TLS_SERVER_NAME: options->tls.server_name = value; return 0;
    case OPT_TLS_CIPHERSUITE: options->tls.ciphersuite = value; return 0;
    default: return -EINVAL;
    }
}

/* Checks combinations; returns a one-line complaint or NULL. */
static const char *validate_options(const struct bench_options *options) {
    if (options->self_test || options->memcpy_mode) return NULL;
    if (options->target == TARGET_NONE) return "--target intake|nats is required";
    if (options->port == 0) return "--port is required";
    if (options->idle_connections) return NULL;
    if (options->connection_count == 0 || options->connection_count > BENCH_CONNECTIONS_MAX)
        return "--connections must be 1..4096";
    if (options->batch_records == 0 || options->batch_records > BENCH_BATCH_RECORDS_MAX)
        return "--batch must be 1..4096";
    if (options->topic_count == 0) return "--topics must be at least 1";
    if (options->duration_s <= 0 && options->record_count == 0)
        return "a run needs --duration-s or --count";
    if (options->duration_s > BENCH_RUN_SECONDS_MAX) return "--duration-s is at most 3600";
    if (options->acks && options->target != TARGET_INTAKE) return "--acks is for --target intake";
    if (options->producer_id && !options->acks) return "--producer-id needs --acks (sequences)";
    if (options->consumer_kind == CONSUMER_SET && options->target == TARGET_INTAKE &&
        options->topic_count > INTAKE_CONSUMER_SET_TOPICS_MAX)
        return "--consumer set follows at most INTAKE_CONSUMER_SET_TOPICS_MAX topics";
    if (options->producer_kind == PRODUCER_LIBRARY && options->target != TARGET_INTAKE)
        return "--producer library is for --target intake";
    /* The library cannot set field 7 yet (issue 12 adds it); --producer-id is the raw encoder's. */
    if (options->producer_kind == PRODUCER_LIBRARY && options->producer_id)
        return "--producer-id is for --producer raw";
    if (options->tls.ca_file && options->target != TARGET_INTAKE) return "--tls-ca is for intake";
    if ((options->tls.cert_file == NULL) != (options->tls.key_file == NULL))
        return "--tls-cert and --tls-key go together";
    if (!options->tls.ca_file &&
        (options->tls.cert_file || options->tls.server_name || options->tls.ciphersuite))
        return "the --tls-* options need --tls-ca";
    return NULL;
}

int main(int argc, char **argv) {
    struct bench_options options = {.host = "127.0.0.1",
                                    .connection_count = 1,
                                    .sizes = {256},
                                    .size_count = 1,
                                    .sizes_text = "256",
                                    .batch_records = 64,
                                    .topic_count = 1,
                                    .duration_s = 5,
                                    .window_bytes = BENCH_DEFAULT_WINDOW_BYTES,
                                    .consume = true,
                                    .shm_dir = "/dev/shm/intake",
                                    .hold_s = 10};
    int id;
    while ((id = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
        if (id == OPT_HELP) {
            usage(stdout);
            return 0;
        }
        if (apply_option(&options, id, optarg) != 0) {
            if (id != '?')
                fprintf(stderr, "intake-bench: bad value for --%s\n",
                        long_options[id - OPT_TARGET].name);
            usage(stderr);
            return 1;
        }
    }
    const char *complaint = validate_options(&options);
    if (complaint) {
        fprintf(stderr, "intake-bench: %s\n", complaint);
        return 1;
    }
    if (options.tls.ciphersuite == NULL) options.tls.ciphersuite = BENCH_TLS_CIPHERSUITE_DEFAULT;
    /* OpenSSL writes with write(2): a server gone mid-run is an error we report, not SIGPIPE. */
    if (options.tls.ca_file) signal(SIGPIPE, SIG_IGN);
    if (options.self_test) return run_self_test();
    if (options.memcpy_mode) return run_memcpy(&options);
    if (options.idle_connections) return run_idle_connections(&options);
    return run_load(&options);
}
