/*
 * bench_consumer.c: the consumer thread (bench_consumer.h): its state's life, its body (the NATS
 * subscriber in bench_nats.c or the intake logs in bench_intake_consumer.c), and what every
 * delivered value goes through (latency, per-connection order, totals for the window).
 */
#include "bench_consumer.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_encoder.h"
#include "bench_histogram.h"
#include "bench_nats.h"
#include "bench_socket.h"
#include "bench_time.h"
#include "common.h"

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

void *bench_consumer_thread(void *argument) {
    struct bench_run *run = argument;
    if (run->options->target == TARGET_NATS)
        (void)consume_nats(run);
    else
        (void)consume_intake(run);
    run->consumer.cpu_ns = thread_cpu_ns();
    return NULL;
}

int bench_consumer_prepare(struct bench_run *run) {
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

void bench_consumer_release(struct consumer_state *consumer) {
    if (consumer->socket_fd >= 0) close(consumer->socket_fd);
    free(consumer->buffer);
    free(consumer->next_record_number);
    free(consumer->topic_logs);
    free(consumer->set_records);
    free(consumer->set_topic_number);
}
