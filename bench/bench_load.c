/*
 * bench_load.c: one load run (bench_load.h): main starts the consumer and the producers,
 * supervises the deadline, drains, joins, and prints the result line.
 */
#include "bench_load.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "bench_consumer.h"
#include "bench_histogram.h"
#include "bench_producer.h"
#include "bench_time.h"
#include "common.h"

void run_fail(struct bench_run *run, int error, const char *what) {
    int expected = 0;
    if (atomic_compare_exchange_strong(&run->failure, &expected, error ? error : -1))
        fprintf(stderr, "intake-bench: %s%s%s\n", what, error ? ": " : "",
                error ? strerror(error < 0 ? -error : error) : "");
    atomic_store(&run->stop_producing, true);
    atomic_store(&run->stop_consuming, true);
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
    int result = bench_consumer_prepare(run);
    if (result != 0) {
        run_fail(run, result, "consumer setup");
        return result;
    }
    if (pthread_create(thread, NULL, bench_consumer_thread, run) != 0) return -EAGAIN;
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

int run_load(const struct bench_options *options) {
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
    bench_consumer_release(&run.consumer);
    bench_tls_context_free(run.tls_context);
    return atomic_load(&run.failure) == 0 ? 0 : 1;
}
