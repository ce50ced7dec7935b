/*
 * bridge_forward.h: produces intake records into Kafka with librdkafka and learns, from its
 * delivery reports, when each topic's records are in Kafka (so the main loop may commit the
 * intake cursor).
 *
 * The producer is idempotent with acks=all (forced: -X cannot turn them off), so librdkafka's
 * own retries neither duplicate nor reorder a partition's records. message.timeout.ms defaults
 * to 0 (retry forever): brokers that are down make the queue fill, and a full queue stops the
 * bridge from reading intake, which then pushes back on its producers.
 *
 * Every Kafka record carries the origin headers of bridge_resume.h after the record's own.
 * A record too large for Kafka (librdkafka refuses it against message.max.bytes, or a broker
 * answers MSG_SIZE_TOO_LARGE) goes to the dead-letter topic instead: same key, same headers,
 * an intake-error header saying why, and no value (an unparsable record keeps its bytes as the
 * value). A dead letter travels alone: it is produced only once every earlier record of its
 * topic is delivered (BRIDGE_FORWARD_WAIT), and it sets topic->draining so nothing later is
 * produced before its own report. So what is in Kafka is always a prefix of the topic's
 * offsets, split between the target and the dead-letter topic, and bridge_resume may take the
 * newest of both. (A broker refusing a record the client accepted is rerouted from the
 * delivery report, after later records may have gone: keep message.max.bytes at or below the
 * brokers' limit so librdkafka refuses first.) Any other delivery failure is fatal: the
 * bridge stops without committing, and its restart finds in Kafka what was delivered.
 *
 * Thread: main thread only. Delivery reports run inside bridge_forward_serve.
 */
#ifndef BRIDGE_FORWARD_H
#define BRIDGE_FORWARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bridge_kafka_conf.h"
#include "bridge_topics.h"

enum bridge_value_mode {
    BRIDGE_VALUE_VALUE = 0,  /* the record's value field */
    BRIDGE_VALUE_RECORD = 1, /* the whole encoded intake.v1.Record, as it sits in the log */
};

struct bridge_forward_options {
    const struct bridge_kafka_settings *settings;
    enum bridge_value_mode value_mode;
    const char *dead_letter_topic;
    const char *instance; /* the intake-instance header */
    int32_t partition;    /* the Kafka partition every record goes to */
};

enum bridge_forward_result {
    BRIDGE_FORWARD_QUEUED = 0, /* librdkafka has it (a copy); its report will come */
    BRIDGE_FORWARD_FULL = 1,   /* librdkafka's queue is full: serve, then offer it again */
    BRIDGE_FORWARD_WAIT = 2,   /* a dead letter waits for the topic's in-flight records:
                                * offer it again once topic->in_flight is 0 */
    BRIDGE_FORWARD_FATAL = -1, /* see bridge_forward_failure */
};

struct bridge_forward_counters {
    uint64_t delivered;     /* reports without error, main topics */
    uint64_t dead_lettered; /* reports without error, dead-letter topic */
    uint64_t too_large;     /* records sent to the dead-letter topic for their size */
    uint64_t undecodable;   /* records sent to the dead-letter topic unparsed */
    uint64_t queue_full;    /* times librdkafka's queue was full */
    uint64_t purged;        /* dropped by bridge_forward_purge (to be read back) */
};

struct bridge_forward;

int bridge_forward_open(const struct bridge_forward_options *options, struct bridge_forward **out,
                        char *why, size_t why_bytes) __attribute__((warn_unused_result));
/* Destroys the producer. Undelivered records are dropped from memory only: their intake
 * cursor was never committed. */
void bridge_forward_close(struct bridge_forward *forward);

/* Hands one record of `topic` to librdkafka (copied). On QUEUED, topic->in_flight grew by one
 * and the record's bytes are no longer needed; a dead letter also set topic->draining. */
enum bridge_forward_result bridge_forward_record(struct bridge_forward *forward,
                                                 struct bridge_topic *topic,
                                                 const struct intake_consumer_record *record)
    __attribute__((warn_unused_result));

/* Serves librdkafka's events (delivery reports, errors) for up to `timeout_ms`. Returns the
 * number of events served. */
int bridge_forward_serve(struct bridge_forward *forward, int timeout_ms);

/* Waits up to `timeout_ms` for every queued record's report. Returns 0 when none is left. */
int bridge_forward_flush(struct bridge_forward *forward, int timeout_ms);

/* True once a connection to a broker failed (or a request timed out) while records were in
 * flight. librdkafka would resend them itself, and a resend after an idempotence epoch bump is
 * a duplicate of a record that did reach Kafka. So the caller stops producing, calls
 * bridge_forward_purge, waits for in_flight to reach 0 (purged reports), and reads back what
 * Kafka has for each topic (bridge_resume) before going on. Purged records are never resent;
 * records produced later get new sequence numbers, which is correct after an epoch bump. */
bool bridge_forward_uncertain(const struct bridge_forward *forward);
/* Drops every queued and in-flight record (their reports come with a purge error and only
 * lower the in-flight counts). Clears the uncertain flag. */
void bridge_forward_purge(struct bridge_forward *forward);

/* Records handed to librdkafka without a report yet, every topic. */
uint64_t bridge_forward_in_flight(const struct bridge_forward *forward);

/* True once a delivery failed for good or librdkafka raised a fatal error; `why` then says
 * what happened. The caller must stop without committing. */
bool bridge_forward_failed(const struct bridge_forward *forward, const char **why);

const struct bridge_forward_counters *bridge_forward_counters(const struct bridge_forward *f);

#endif
