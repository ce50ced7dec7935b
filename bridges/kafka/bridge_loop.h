/*
 * bridge_loop.h: the bridge's one thread: open topics, find what Kafka already has, read the
 * logs, hand records to librdkafka, and commit each topic's intake cursor once every record
 * polled from it has its delivery report.
 *
 * The commit rule. intake_consumer_commit stores the cursor after the last record polled, so a
 * topic is committed only when nothing of it is in flight (in_flight == 0, no held record).
 * Under a steady stream that moment may never come by itself, so a topic stops polling
 * ("drains") when it has --in-flight-max records in flight or --commit-interval-ms passed since
 * its last commit, commits when the reports are in, and goes on. What a crash loses is only the
 * commit, never a record: bridge_resume skips what Kafka already has.
 *
 * Backpressure. librdkafka's queue is bounded; when it is full, the record stays held (its bytes
 * stay valid: block retention keeps them until the next poll), the loop serves librdkafka and
 * offers it again. Nothing is dropped; intaked's log fills and pushes back on producers. While
 * the bridge does not poll a topic, it heartbeats the consumer so intaked never thinks it stale.
 *
 * Thread: main thread only. Signals only set the flags below.
 */
#ifndef BRIDGE_LOOP_H
#define BRIDGE_LOOP_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "bridge_forward.h"
#include "bridge_kafka_conf.h"

/* Topics named with --topic. */
#define BRIDGE_NAMED_TOPICS_MAX 256

struct bridge_options {
    const char *shm_dir;
    const char *named_topics[BRIDGE_NAMED_TOPICS_MAX];
    uint32_t named_topic_count;
    bool all_topics;
    const char *consumer_name;
    const char *kafka_topic_template; /* "{topic}" by default; --kafka-topic-prefix P: "P{topic}" */
    char kafka_topic_template_storage[256];
    int32_t kafka_partition;
    enum bridge_value_mode value_mode;
    const char *dead_letter_topic;
    char instance[256];
    struct bridge_kafka_settings kafka;
    uint32_t topics_max;
    uint64_t in_flight_max; /* per topic */
    uint64_t commit_interval_ms;
    uint64_t scan_interval_ms;
    uint64_t resume_scan_max; /* messages read back per target partition, at most */
    uint64_t resume_dead_letter_scan_max;
    uint64_t resume_settle_ms;
    uint64_t shutdown_timeout_ms;
};

/* Set by signal handlers. */
extern volatile sig_atomic_t bridge_stop_requested;
extern volatile sig_atomic_t bridge_counters_requested;

/* Runs until a stop is requested or something fatal happens. Returns the exit status: 0 after
 * a clean stop (everything delivered and committed), 1 otherwise (one line says why). */
int bridge_loop_run(const struct bridge_options *options);

#endif
