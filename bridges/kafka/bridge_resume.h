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
 * Thread: main thread. One handle serves every topic, one lookup at a time.
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
#define BRIDGE_HEADER_TOPIC "intake-topic"
#define BRIDGE_HEADER_OFFSET "intake-offset"
#define BRIDGE_HEADER_INSTANCE "intake-instance"
#define BRIDGE_HEADER_LOG "intake-log"
#define BRIDGE_HEADER_ERROR "intake-error"

struct bridge_origin {
    const char *intake_topic;
    const char *instance;
    uint64_t log_id; /* the log's creation time, ns since the epoch */
};

enum bridge_resume_outcome {
    BRIDGE_RESUME_FOUND = 0,     /* *offset_out: the highest intake offset already delivered */
    BRIDGE_RESUME_NOTHING = 1,   /* nothing of this origin (or of this log) in the partition;
                                  * `why` says which case */
    BRIDGE_RESUME_LIMIT = 2,     /* scanned `scan_max` messages without finding this origin */
    BRIDGE_RESUME_ERROR = -1,    /* the cluster did not answer in time: `why` says what */
};

struct bridge_resume;

int bridge_resume_open(const struct bridge_kafka_settings *settings, struct bridge_resume **out,
                       char *why, size_t why_bytes) __attribute__((warn_unused_result));
void bridge_resume_close(struct bridge_resume *resume);

/* Called between blocking steps (at least every 200 ms of reading, and around each request),
 * so the caller keeps its intake consumers' heartbeats going. */
struct bridge_resume_tick {
    void (*function)(void *context);
    void *context;
};

/* Finds the newest message of `origin` in `kafka_topic` [`partition`], looking at most at the
 * last `scan_max` messages. A topic that does not exist yet counts as empty. Each request
 * blocks up to `timeout_ms`; `tick` runs between them. */
enum bridge_resume_outcome bridge_resume_find(struct bridge_resume *resume,
                                              const char *kafka_topic, int32_t partition,
                                              const struct bridge_origin *origin,
                                              uint64_t scan_max, int timeout_ms,
                                              const struct bridge_resume_tick *tick,
                                              uint64_t *offset_out, char *why, size_t why_bytes)
    __attribute__((warn_unused_result));

#endif
