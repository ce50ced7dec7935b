/*
 * bench_consumer.h: the consumer thread of a load run. Main prepares its state
 * (bench_consumer_prepare), starts bench_consumer_thread, and after joining it reads the state and
 * releases it. While the run is on, only the consumer thread writes run->consumer; what others
 * read goes through consumer_publish's atomics.
 */
#ifndef BENCH_CONSUMER_H
#define BENCH_CONSUMER_H

#include <stddef.h>
#include <stdint.h>

#include "bench.h"

/* Allocates the order table and, for intake, the topic tables; for NATS connects the
 * subscriber and registers SUB bench.>. 0 or a negative errno. Main thread. */
int bench_consumer_prepare(struct bench_run *run);
/* The thread's body (argument: the run): consume_nats or consume_intake until stop_consuming,
 * then stores its own CPU time in run->consumer.cpu_ns. */
void *bench_consumer_thread(void *argument);
/* Frees what bench_consumer_prepare made (after the join). Main thread. */
void bench_consumer_release(struct consumer_state *consumer);
/* One delivered value of topic `topic` read at now_ns: latency from its stamp, and order per
 * (producer connection, topic). A value too short for a stamp, or with a connection index
 * out of range, is counted in short_records, never asserted. Consumer thread. */
void consumer_deliver(struct consumer_state *consumer, uint32_t connection_count, uint32_t topic,
                      const uint8_t *value, size_t value_bytes, uint64_t now_ns);
/* Makes the consumer's totals visible to producers (closed-loop window) and to main (relaxed:
 * they are a rate limiter and a report, not a hand-off of data). Consumer thread. */
void consumer_publish(struct bench_run *run, uint64_t now_ns);

#endif
