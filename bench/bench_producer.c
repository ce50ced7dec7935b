/*
 * bench_producer.c: the producer threads (bench_producer.h): one connection each, writing
 * batches closed loop (a bounded window of bytes in flight) or open loop (paced per 1 ms slice),
 * through intake-bench's encoder or the product's producer library, reading acks or NATS
 * control lines back. Each producer is touched only by its own thread between prepare and join.
 */
#include "bench_producer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_acks.h"
#include "bench_nats.h"
#include "bench_socket.h"
#include "bench_time.h"
#include "common.h"

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

void *producer_thread(void *argument) {
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

int producer_prepare(struct producer *producer, struct bench_run *run, uint32_t index) {
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

void producer_release(struct producer *producer) {
    bench_tls_close(producer->tls);
    if (producer->fd >= 0) close(producer->fd);
    bench_library_close(&producer->library);
    free(producer->topic_names);
    batch_destroy(&producer->batch);
}
