/*
 * bridge_forward.c: the librdkafka producer side of the bridge (see bridge_forward.h): builds
 * each Kafka record from an intake record in the log, produces it, and turns delivery reports
 * into per-topic in-flight counts, dead letters, or a fatal stop.
 */
#include "bridge_forward.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge_resume.h"
#include "common.h"

/* librdkafka errors and warnings are printed at most this often (brokers down repeat them). */
#define FORWARD_LOG_INTERVAL_NS 1000000000ull
/* The low bit of a delivery report's opaque marks a dead-letter record (topics are aligned). */
#define FORWARD_OPAQUE_DEAD_LETTER ((uintptr_t)1)

struct bridge_forward {
    rd_kafka_t *producer;
    struct bridge_forward_options options;
    uint64_t in_flight_total;
    bool uncertain; /* a connection failed with records in flight (see bridge_forward.h) */
    bool closing;
    bool failed;
    char failure[640];
    uint64_t last_log_ns;
    struct bridge_forward_counters counters;
};

static void forward_fail(struct bridge_forward *forward, const char *what, const char *detail) {
    if (forward->failed || forward->closing) return;
    forward->failed = true;
    snprintf(forward->failure, sizeof(forward->failure), "%.300s: %.300s", what, detail);
}

/* The number as decimal text, for headers (Kafka headers are bytes; text is what kcat and
 * people read). */
static const char *u64_text(uint64_t value, char text[24]) {
    snprintf(text, 24, "%" PRIu64, value);
    return text;
}

/* Appends the origin headers (and `error_text`, if any) after whatever `headers` holds. */
static void origin_headers_add(const struct bridge_forward *forward, rd_kafka_headers_t *headers,
                               const struct bridge_topic *topic, uint64_t intake_offset,
                               const char *error_text) {
    char number[24];
    rd_kafka_header_add(headers, BRIDGE_HEADER_TOPIC, -1, topic->name, -1);
    rd_kafka_header_add(headers, BRIDGE_HEADER_OFFSET, -1, u64_text(intake_offset, number), -1);
    rd_kafka_header_add(headers, BRIDGE_HEADER_INSTANCE, -1, forward->options.instance, -1);
    rd_kafka_header_add(headers, BRIDGE_HEADER_LOG, -1, u64_text(topic->log_id, number), -1);
    if (error_text != NULL) rd_kafka_header_add(headers, BRIDGE_HEADER_ERROR, -1, error_text, -1);
}

/* The record's own headers, then the origin headers. */
static rd_kafka_headers_t *headers_build(const struct bridge_forward *forward,
                                         const struct bridge_topic *topic, uint64_t offset,
                                         const struct intake_record_view *view,
                                         const char *error_text) {
    uint32_t own = view != NULL ? view->header_count : 0;
    rd_kafka_headers_t *headers = rd_kafka_headers_new(own + 5);
    struct intake_record_header_iterator iterator;
    struct intake_record_header header;
    intake_record_headers(view, &iterator);
    while (intake_record_header_next(&iterator, &header) == 1) {
        /* Absent and empty are the same in proto3; an empty value travels as empty, not null. */
        const void *name = header.key.bytes != NULL ? (const void *)header.key.bytes : "";
        const void *value = header.value.bytes != NULL ? (const void *)header.value.bytes : "";
        rd_kafka_header_add(headers, name, (ssize_t)header.key.length, value,
                            (ssize_t)header.value.length);
    }
    origin_headers_add(forward, headers, topic, offset, error_text);
    return headers;
}

/* Produces one message (copied); on failure the headers are destroyed here. */
static rd_kafka_resp_err_t produce(struct bridge_forward *forward, const char *kafka_topic,
                                   void *opaque, struct intake_bytes key, struct intake_bytes value,
                                   rd_kafka_headers_t *headers, int64_t timestamp_ms) {
    /* An empty key is no key (proto3 cannot tell them apart); an empty value is no value. */
    const void *key_bytes = key.length > 0 ? (const void *)key.bytes : NULL;
    void *value_bytes = value.length > 0 ? (void *)value.bytes : NULL;
    rd_kafka_resp_err_t error = rd_kafka_producev(
        forward->producer, RD_KAFKA_V_TOPIC(kafka_topic),
        RD_KAFKA_V_PARTITION(forward->options.partition), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(key_bytes, key.length), RD_KAFKA_V_VALUE(value_bytes, value.length),
        RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_TIMESTAMP(timestamp_ms), RD_KAFKA_V_OPAQUE(opaque),
        RD_KAFKA_V_END);
    /* On success librdkafka owns the headers; on failure they are still ours. */
    if (error != RD_KAFKA_RESP_ERR_NO_ERROR) rd_kafka_headers_destroy(headers);
    return error;
}

/* Sends a dead letter for `topic`'s record at `offset`. `value` is kept when it fits, else
 * dropped. Returns the produce result. */
static rd_kafka_resp_err_t dead_letter_send(struct bridge_forward *forward,
                                            struct bridge_topic *topic, uint64_t offset,
                                            struct intake_bytes key, struct intake_bytes value,
                                            const struct intake_record_view *view,
                                            const char *reason, int64_t timestamp_ms) {
    void *opaque = (void *)((uintptr_t)topic | FORWARD_OPAQUE_DEAD_LETTER);
    rd_kafka_resp_err_t error =
        produce(forward, forward->options.dead_letter_topic, opaque, key, value,
                headers_build(forward, topic, offset, view, reason), timestamp_ms);
    if (error == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE && value.length > 0)
        error = produce(forward, forward->options.dead_letter_topic, opaque, key,
                        (struct intake_bytes){0},
                        headers_build(forward, topic, offset, view, reason), timestamp_ms);
    return error;
}

static void log_dead_letter(struct bridge_topic *topic, uint64_t offset, const char *reason) {
    fprintf(stderr, "intake-kafka: topic %s offset %" PRIu64 " sent to the dead-letter topic: %s\n",
            topic->name, offset, reason);
}

enum bridge_forward_result bridge_forward_record(struct bridge_forward *forward,
                                                 struct bridge_topic *topic,
                                                 const struct intake_consumer_record *record) {
    INTAKE_ASSERT(topic->phase == BRIDGE_TOPIC_FORWARDING);
    if (forward->failed) return BRIDGE_FORWARD_FATAL;
    struct intake_record_view view = INTAKE_RECORD_VIEW_INIT;
    int parsed = intake_record_parse(record->bytes, record->length, &view);
    int64_t timestamp_ms = (int64_t)(record->receive_time_ns / 1000000u);
    char reason[160];
    rd_kafka_resp_err_t error;
    uint64_t too_large_before = forward->counters.too_large;
    if (parsed != 0) {
        /* A dead letter waits until everything before it is delivered (see the header). */
        if (topic->in_flight > 0) return BRIDGE_FORWARD_WAIT;
        /* The whole record travels as the value, so nothing is lost. */
        snprintf(reason, sizeof(reason), "the record does not parse as intake.v1.Record: %s",
                 view.problem != NULL ? view.problem : strerror(-parsed));
        struct intake_bytes whole = {record->bytes, record->length};
        error = dead_letter_send(forward, topic, record->offset, (struct intake_bytes){0}, whole,
                                 NULL, reason, timestamp_ms);
        if (error == RD_KAFKA_RESP_ERR_NO_ERROR) {
            forward->counters.undecodable++;
            log_dead_letter(topic, record->offset, reason);
        }
    } else {
        if (view.timestamp_ns != 0) timestamp_ms = (int64_t)(view.timestamp_ns / 1000000u);
        struct intake_bytes value = view.value;
        if (forward->options.value_mode == BRIDGE_VALUE_RECORD)
            value = (struct intake_bytes){record->bytes, record->length};
        error = produce(forward, topic->kafka_topic, topic, view.key, value,
                        headers_build(forward, topic, record->offset, &view, NULL), timestamp_ms);
        if (error == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) {
            if (topic->in_flight > 0) return BRIDGE_FORWARD_WAIT;
            snprintf(reason, sizeof(reason),
                     "%u bytes: larger than message.max.bytes (refused by librdkafka)",
                     record->length);
            error = dead_letter_send(forward, topic, record->offset, view.key,
                                     (struct intake_bytes){0}, &view, reason, timestamp_ms);
            if (error == RD_KAFKA_RESP_ERR_NO_ERROR) {
                forward->counters.too_large++;
                log_dead_letter(topic, record->offset, reason);
            }
        }
    }
    if (error == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        forward->counters.queue_full++;
        return BRIDGE_FORWARD_FULL;
    }
    if (error != RD_KAFKA_RESP_ERR_NO_ERROR) {
        forward_fail(forward, "produce", rd_kafka_err2str(error));
        return BRIDGE_FORWARD_FATAL;
    }
    topic->in_flight++;
    forward->in_flight_total++;
    /* A dead letter travels alone: nothing after it is produced before its report. */
    if (parsed != 0 || forward->counters.too_large != too_large_before) topic->draining = true;
    return BRIDGE_FORWARD_QUEUED;
}

/* A broker refused a record for its size: the same record, without its value, goes to the
 * dead-letter topic; it stays in flight until that report comes. */
static void delivery_reroute(struct bridge_forward *forward, struct bridge_topic *topic,
                             const rd_kafka_message_t *message) {
    rd_kafka_headers_t *original = NULL, *headers;
    if (rd_kafka_message_headers(message, &original) == RD_KAFKA_RESP_ERR_NO_ERROR)
        headers = rd_kafka_headers_copy(original);
    else
        headers = rd_kafka_headers_new(1);
    uint64_t offset = 0;
    const void *text;
    size_t size;
    char number[24] = "";
    if (rd_kafka_header_get_last(headers, BRIDGE_HEADER_OFFSET, &text, &size) == 0 &&
        size < sizeof(number)) {
        memcpy(number, text, size);
        offset = strtoull(number, NULL, 10);
    }
    char reason[160];
    snprintf(reason, sizeof(reason), "%zu bytes: %s (answered by the broker)", message->len,
             rd_kafka_err2str(message->err));
    rd_kafka_header_add(headers, BRIDGE_HEADER_ERROR, -1, reason, -1);
    struct intake_bytes key = {message->key, message->key_len};
    rd_kafka_timestamp_type_t type;
    int64_t timestamp_ms = rd_kafka_message_timestamp(message, &type);
    void *opaque = (void *)((uintptr_t)topic | FORWARD_OPAQUE_DEAD_LETTER);
    rd_kafka_resp_err_t error = produce(forward, forward->options.dead_letter_topic, opaque, key,
                                        (struct intake_bytes){0}, headers, timestamp_ms);
    if (error != RD_KAFKA_RESP_ERR_NO_ERROR) {
        forward_fail(forward, "dead letter after a broker refused a record's size",
                     rd_kafka_err2str(error));
        return;
    }
    forward->counters.too_large++;
    log_dead_letter(topic, offset, reason);
}

static void on_delivery(rd_kafka_t *producer, const rd_kafka_message_t *message, void *opaque) {
    (void)producer;
    struct bridge_forward *forward = opaque;
    uintptr_t tagged = (uintptr_t)message->_private;
    bool dead_letter = (tagged & FORWARD_OPAQUE_DEAD_LETTER) != 0;
    struct bridge_topic *topic = (struct bridge_topic *)(tagged & ~FORWARD_OPAQUE_DEAD_LETTER);
    INTAKE_ASSERT(topic != NULL);
    if (forward->closing) return;
    if (message->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE ||
        message->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT) {
        /* bridge_forward_purge dropped it: never delivered by us, never committed. */
        INTAKE_ASSERT(topic->in_flight > 0);
        topic->in_flight--;
        forward->in_flight_total--;
        forward->counters.purged++;
        return;
    }
    if (message->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        INTAKE_ASSERT(topic->in_flight > 0);
        INTAKE_ASSERT(forward->in_flight_total > 0);
        topic->in_flight--;
        forward->in_flight_total--;
        if (dead_letter) {
            topic->dead_lettered++;
            forward->counters.dead_lettered++;
        } else {
            topic->forwarded++;
            forward->counters.delivered++;
        }
        return;
    }
    if (!dead_letter && message->err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) {
        delivery_reroute(forward, topic, message);
        return;
    }
    char what[400];
    snprintf(what, sizeof(what), "delivery to %s [%d] (intake topic %s)",
             rd_kafka_topic_name(message->rkt), message->partition, topic->name);
    forward_fail(forward, what, rd_kafka_err2str(message->err));
}

static void on_error(rd_kafka_t *producer, int error, const char *reason, void *opaque) {
    struct bridge_forward *forward = opaque;
    if (error == RD_KAFKA_RESP_ERR__FATAL) {
        char fatal[512];
        rd_kafka_fatal_error(producer, fatal, sizeof(fatal));
        forward_fail(forward, "librdkafka fatal error", fatal);
        return;
    }
    /* A connection failed while records were in flight: some may be in Kafka without their
     * acknowledgement. librdkafka would resend them, and after an idempotence epoch bump
     * (leader change, timeouts) a resend is a duplicate. The loop purges instead and reads
     * back what Kafka has, as after a restart. */
    if (forward->in_flight_total > 0 &&
        (error == RD_KAFKA_RESP_ERR__TRANSPORT || error == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN ||
         error == RD_KAFKA_RESP_ERR__TIMED_OUT || error == RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT))
        forward->uncertain = true;
    /* Transient (brokers down, connections refused): librdkafka retries by itself. */
    uint64_t now_ns = intake_now_ns();
    if (now_ns - forward->last_log_ns < FORWARD_LOG_INTERVAL_NS) return;
    forward->last_log_ns = now_ns;
    fprintf(stderr, "intake-kafka: kafka: %s (retrying)\n", reason);
}

/* The bridge's correctness rests on these two; -X may not set them otherwise. */
static int forced_settings_check(const struct bridge_kafka_settings *settings, char *why,
                                 size_t why_bytes) {
    for (uint32_t index = 0; index < settings->property_count; index++) {
        const struct bridge_kafka_property *property = &settings->properties[index];
        bool idempotence = strcmp(property->name, "enable.idempotence") == 0;
        bool acks = strcmp(property->name, "acks") == 0 ||
                    strcmp(property->name, "request.required.acks") == 0;
        if ((idempotence && strcmp(property->value, "true") != 0) ||
            (acks && strcmp(property->value, "all") != 0 && strcmp(property->value, "-1") != 0)) {
            snprintf(why, why_bytes,
                     "-X %s=%s: the bridge needs enable.idempotence=true and acks=all "
                     "(its exactly-once argument rests on them)",
                     property->name, property->value);
            return -1;
        }
    }
    return 0;
}

/* Creates the librdkafka producer of `forward` from its options. */
static int producer_create(struct bridge_forward *forward, char *why, size_t why_bytes) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* Defaults first (-X may change them), the user's -X, then what correctness needs. */
    const struct bridge_kafka_settings *settings = forward->options.settings;
    int failed =
        bridge_kafka_conf_set(conf, "linger.ms", "5", why, why_bytes) ||
        bridge_kafka_conf_set(conf, "message.timeout.ms", "0", why, why_bytes) ||
        bridge_kafka_conf_set(conf, "queue.buffering.max.messages", "100000", why, why_bytes) ||
        bridge_kafka_conf_set(conf, "queue.buffering.max.kbytes", "65536", why, why_bytes) ||
        bridge_kafka_conf_apply(conf, settings, why, why_bytes) ||
        bridge_kafka_conf_set(conf, "enable.idempotence", "true", why, why_bytes) ||
        bridge_kafka_conf_set(conf, "acks", "all", why, why_bytes);
    if (failed) {
        rd_kafka_conf_destroy(conf);
        return -EINVAL;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_opaque(conf, forward);
    char reason[512];
    forward->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, reason, sizeof(reason));
    if (forward->producer == NULL) {
        snprintf(why, why_bytes, "librdkafka producer: %s", reason);
        rd_kafka_conf_destroy(conf);
        return -EINVAL;
    }
    return 0;
}

int bridge_forward_open(const struct bridge_forward_options *options, struct bridge_forward **out,
                        char *why, size_t why_bytes) {
    if (forced_settings_check(options->settings, why, why_bytes) != 0) return -EINVAL;
    struct bridge_forward *forward = calloc(1, sizeof(*forward));
    if (forward == NULL) return snprintf(why, why_bytes, "out of memory"), -ENOMEM;
    forward->options = *options;
    int result = producer_create(forward, why, why_bytes);
    if (result != 0) {
        free(forward);
        return result;
    }
    *out = forward;
    return 0;
}

void bridge_forward_close(struct bridge_forward *forward) {
    if (forward == NULL) return;
    forward->closing = true;
    rd_kafka_destroy(forward->producer);
    free(forward);
}

int bridge_forward_serve(struct bridge_forward *forward, int timeout_ms) {
    return rd_kafka_poll(forward->producer, timeout_ms);
}

int bridge_forward_flush(struct bridge_forward *forward, int timeout_ms) {
    rd_kafka_resp_err_t error = rd_kafka_flush(forward->producer, timeout_ms);
    return error == RD_KAFKA_RESP_ERR_NO_ERROR && forward->in_flight_total == 0 ? 0 : -ETIMEDOUT;
}

bool bridge_forward_uncertain(const struct bridge_forward *forward) {
    return forward->uncertain;
}

void bridge_forward_purge(struct bridge_forward *forward) {
    forward->uncertain = false;
    /* Non-blocking: the purged reports arrive through bridge_forward_serve, while the loop
     * keeps heartbeating (a call that blocks for seconds would let intaked think the bridge
     * stale and release the log). Purged records are never sent again by librdkafka. */
    rd_kafka_resp_err_t error =
        rd_kafka_purge(forward->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT |
                                              RD_KAFKA_PURGE_F_NON_BLOCKING);
    if (error != RD_KAFKA_RESP_ERR_NO_ERROR)
        forward_fail(forward, "purge after a lost connection", rd_kafka_err2str(error));
}

uint64_t bridge_forward_in_flight(const struct bridge_forward *forward) {
    return forward->in_flight_total;
}

bool bridge_forward_failed(const struct bridge_forward *forward, const char **why) {
    if (forward->failed && why != NULL) *why = forward->failure;
    return forward->failed;
}

const struct bridge_forward_counters *bridge_forward_counters(const struct bridge_forward *f) {
    return &f->counters;
}
