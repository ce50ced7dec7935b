/*
 * bridge_resume.h: what the bridge already delivered, read back from Kafka at startup.
 *
 * Every record the bridge produces carries its origin in Kafka headers: intake-topic,
 * intake-offset, intake-instance (this host's bridge) and intake-log (the creation time of the
 * topic's shared-memory log, so a log recreated after a reboot, whose offsets start again at 0,
 * is not mistaken for the old one). Before forwarding a topic, the bridge reads the tail of its
 * target partition with a librdkafka consumer, newest messages first (in windows, going back),
 * and takes the intake-offset of the newest message with the same origin. The records up to it
 * are already in Kafka and are skipped, whatever the intake cursor says.
 *
 * Thread: the main thread starts lookups and takes their answers; this module's own thread
 * runs them, one at a time, on its own librdkafka consumer.
 */
#ifndef BRIDGE_RESUME_H
#define BRIDGE_RESUME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bridge_kafka_conf.h"

/* Messages read per window while going back from the end of a partition. */
#define BRIDGE_RESUME_WINDOW_MESSAGES 256

/* Origin headers, written by bridge_forward.c and read here. */
#define BRIDGE_HEADER_TOPIC    "intake-topic"
#define BRIDGE_HEADER_OFFSET   "intake-offset"
#define BRIDGE_HEADER_INSTANCE "intake-instance"
#define BRIDGE_HEADER_LOG      "intake-log"
#define BRIDGE_HEADER_ERROR    "intake-error"

struct bridge_origin {
    const char *intake_topic;
    const char *instance;
    uint64_t log_id; /* the log's creation time, ns since the epoch */
};

enum bridge_resume_outcome {
    BRIDGE_RESUME_FOUND = 0,   /* *offset_out: the highest intake offset already delivered */
    BRIDGE_RESUME_NOTHING = 1, /* nothing of this origin (or of this log) in the partition;
                                  * `why` says which case */
    BRIDGE_RESUME_LIMIT = 2,   /* scanned `scan_max` messages without finding this origin */
    BRIDGE_RESUME_ERROR = -1,  /* the cluster did not answer in time: `why` says what */
};

/* One lookup: the newest message of the origin in `kafka_topic` [`partition`], looking at most
 * at the last `scan_max` messages. A topic that does not exist yet counts as empty. */
struct bridge_resume_request {
    char kafka_topic[256];
    int32_t partition;
    char intake_topic[256];
    char instance[256];
    uint64_t log_id;
    uint64_t scan_max;
    int timeout_ms; /* per request to the cluster */
};

struct bridge_resume_result {
    enum bridge_resume_outcome outcome;
    uint64_t offset; /* BRIDGE_RESUME_FOUND: the highest intake offset already delivered */
    char why[512];   /* ERROR, NOTHING and LIMIT: what happened */
};

struct bridge_resume;

/* Creates the read-back consumer and the thread that runs lookups on it, so the caller's loop
 * never blocks on Kafka: librdkafka's metadata and offset requests were seen blocking well
 * past their timeouts while brokers were down, long enough for intaked to think the bridge
 * stale and release the log. */
int bridge_resume_open(const struct bridge_kafka_settings *settings, struct bridge_resume **out,
                       char *why, size_t why_bytes) __attribute__((warn_unused_result));
/* Waits for a lookup in progress, then stops the thread and the consumer. */
void bridge_resume_close(struct bridge_resume *resume);

/* Hands a lookup to the thread. -EBUSY while one is in progress or its answer not taken. */
int bridge_resume_start(struct bridge_resume *resume, const struct bridge_resume_request *request)
    __attribute__((warn_unused_result));
/* Non-blocking: true (and *result filled, the slot free again) once the answer is there. */
bool bridge_resume_take(struct bridge_resume *resume, struct bridge_resume_result *result);

#endif
