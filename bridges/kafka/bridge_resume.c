/*
 * bridge_resume.c: reads the tail of a Kafka partition to find what the bridge already
 * delivered (see bridge_resume.h). A librdkafka consumer assigned to one partition at a time,
 * never subscribed, never committing offsets: it only reads.
 */
#include "bridge_resume.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"

/* A header value copied out for comparison; intake topics are at most 255 bytes. */
#define RESUME_HEADER_TEXT_BYTES 320
/* How long one consumer poll waits for a message. */
#define RESUME_POLL_MS 200

struct bridge_resume {
    rd_kafka_t *consumer; /* used by the resume thread only, once it runs */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    /* Guarded by lock. */
    bool stopping;
    bool requested; /* a request waits for (or is being run by) the thread */
    bool answered;  /* `result` holds its answer */
    struct bridge_resume_request request;
    struct bridge_resume_result result;
};

static void *resume_thread(void *argument);

int bridge_resume_open(const struct bridge_kafka_settings *settings, struct bridge_resume **out,
                       char *why, size_t why_bytes) {
    struct bridge_resume *resume = calloc(1, sizeof(*resume));
    if (resume == NULL) return snprintf(why, why_bytes, "out of memory"), -ENOMEM;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* A group id is needed for rd_kafka_consumer_poll; the group is never joined (assign only)
     * and nothing is committed to it. */
    if (bridge_kafka_conf_set(conf, "group.id", "intake-kafka-resume", why, why_bytes) != 0 ||
        bridge_kafka_conf_set(conf, "enable.auto.commit", "false", why, why_bytes) != 0 ||
        bridge_kafka_conf_set(conf, "enable.auto.offset.store", "false", why, why_bytes) != 0 ||
        bridge_kafka_conf_set(conf, "enable.partition.eof", "true", why, why_bytes) != 0 ||
        bridge_kafka_conf_apply(conf, settings, why, why_bytes) != 0) {
        rd_kafka_conf_destroy(conf);
        free(resume);
        return -EINVAL;
    }
    char reason[512];
    resume->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, reason, sizeof(reason));
    if (resume->consumer == NULL) {
        snprintf(why, why_bytes, "librdkafka consumer: %s", reason);
        rd_kafka_conf_destroy(conf);
        free(resume);
        return -EINVAL;
    }
    rd_kafka_poll_set_consumer(resume->consumer);
    pthread_mutex_init(&resume->lock, NULL);
    pthread_cond_init(&resume->changed, NULL);
    int error = pthread_create(&resume->thread, NULL, resume_thread, resume);
    if (error != 0) {
        snprintf(why, why_bytes, "pthread_create: %s", strerror(error));
        rd_kafka_destroy(resume->consumer);
        free(resume);
        return -error;
    }
    *out = resume;
    return 0;
}

void bridge_resume_close(struct bridge_resume *resume) {
    if (resume == NULL) return;
    pthread_mutex_lock(&resume->lock);
    resume->stopping = true;
    pthread_cond_broadcast(&resume->changed);
    pthread_mutex_unlock(&resume->lock);
    pthread_join(resume->thread, NULL); /* a lookup in progress ends within its timeouts */
    rd_kafka_consumer_close(resume->consumer);
    rd_kafka_destroy(resume->consumer);
    pthread_cond_destroy(&resume->changed);
    pthread_mutex_destroy(&resume->lock);
    free(resume);
}

int bridge_resume_start(struct bridge_resume *resume, const struct bridge_resume_request *request) {
    pthread_mutex_lock(&resume->lock);
    bool busy = resume->requested || resume->answered;
    if (!busy) {
        resume->request = *request;
        resume->requested = true;
        pthread_cond_broadcast(&resume->changed);
    }
    pthread_mutex_unlock(&resume->lock);
    return busy ? -EBUSY : 0;
}

bool bridge_resume_take(struct bridge_resume *resume, struct bridge_resume_result *result) {
    pthread_mutex_lock(&resume->lock);
    bool answered = resume->answered;
    if (answered) {
        *result = resume->result;
        resume->answered = false;
    }
    pthread_mutex_unlock(&resume->lock);
    return answered;
}

static uint64_t resume_now_ms(void) {
    return intake_now_ns() / 1000000u;
}

/* Copies header `name` of `headers` into `text` as a string; false when absent or too long. */
static bool header_text(rd_kafka_headers_t *headers, const char *name, char *text) {
    const void *value;
    size_t size;
    if (rd_kafka_header_get_last(headers, name, &value, &size) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return false;
    if (value == NULL || size >= RESUME_HEADER_TEXT_BYTES) return false;
    memcpy(text, value, size);
    text[size] = '\0';
    return true;
}

static bool text_to_u64(const char *text, uint64_t *value) {
    char *end;
    errno = 0;
    unsigned long long parsed = strtoull(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0') return false;
    *value = parsed;
    return true;
}

/* The newest match seen so far while going back through a partition. */
struct resume_match {
    bool found;
    uint64_t intake_offset;
    uint64_t log_id;
};

/* Records `message` in *match when it carries `origin`'s topic and instance. Messages are read
 * oldest first within a window, so the last one recorded is the newest. */
static void message_check(const rd_kafka_message_t *message, const struct bridge_origin *origin,
                          struct resume_match *match) {
    rd_kafka_headers_t *headers;
    if (rd_kafka_message_headers(message, &headers) != RD_KAFKA_RESP_ERR_NO_ERROR) return;
    char text[RESUME_HEADER_TEXT_BYTES];
    if (!header_text(headers, BRIDGE_HEADER_TOPIC, text) || strcmp(text, origin->intake_topic))
        return;
    if (!header_text(headers, BRIDGE_HEADER_INSTANCE, text) || strcmp(text, origin->instance))
        return;
    uint64_t intake_offset, log_id;
    if (!header_text(headers, BRIDGE_HEADER_OFFSET, text) || !text_to_u64(text, &intake_offset))
        return;
    if (!header_text(headers, BRIDGE_HEADER_LOG, text) || !text_to_u64(text, &log_id)) return;
    match->found = true;
    match->intake_offset = intake_offset;
    match->log_id = log_id;
}

/* Reads messages [start, end) of the partition. Returns 0, or -1 at the deadline. */
static int window_read(struct bridge_resume *resume, const char *kafka_topic, int32_t partition,
                       int64_t start, int64_t end, const struct bridge_origin *origin,
                       uint64_t deadline_ms, struct resume_match *match, char *why,
                       size_t why_bytes) {
    rd_kafka_topic_partition_list_t *assignment = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(assignment, kafka_topic, partition)->offset = start;
    rd_kafka_resp_err_t error = rd_kafka_assign(resume->consumer, assignment);
    rd_kafka_topic_partition_list_destroy(assignment);
    if (error != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(why, why_bytes, "assign %s [%d]: %s", kafka_topic, partition,
                 rd_kafka_err2str(error));
        return -1;
    }
    int status = 0;
    char last_error[256] = "no message arrived";
    for (int64_t next = start; next < end;) {
        if (resume_now_ms() > deadline_ms) {
            snprintf(why, why_bytes, "reading %s [%d] at offset %" PRId64 ": %s", kafka_topic,
                     partition, next, last_error);
            status = -1;
            break;
        }
        rd_kafka_message_t *message = rd_kafka_consumer_poll(resume->consumer, RESUME_POLL_MS);
        if (message == NULL) continue;
        bool at_end = false;
        if (message->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            at_end = true; /* fewer messages than the watermark said (compaction, markers) */
        } else if (message->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            /* Transient consumer errors (a broker down) are retried until the deadline. */
            snprintf(last_error, sizeof(last_error), "%s", rd_kafka_message_errstr(message));
        } else if (message->partition == partition) {
            if (message->offset >= end) {
                at_end = true;
            } else {
                message_check(message, origin, match);
                next = message->offset + 1;
            }
        }
        rd_kafka_message_destroy(message);
        if (at_end) break;
    }
    (void)rd_kafka_assign(resume->consumer, NULL);
    return status;
}

static bool error_means_no_topic(rd_kafka_resp_err_t error) {
    return error == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
           error == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
           error == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION;
}

/* True only when a broker answered that the topic does not exist (a local "unknown topic"
 * while the cluster is unreachable proves nothing). */
static bool topic_is_unknown(struct bridge_resume *resume, const char *kafka_topic,
                             int timeout_ms) {
    rd_kafka_topic_t *handle = rd_kafka_topic_new(resume->consumer, kafka_topic, NULL);
    if (handle == NULL) return false;
    const struct rd_kafka_metadata *metadata = NULL;
    rd_kafka_resp_err_t error =
        rd_kafka_metadata(resume->consumer, 0, handle, &metadata, timeout_ms);
    bool unknown = error == RD_KAFKA_RESP_ERR_NO_ERROR && metadata->topic_cnt == 1 &&
                   metadata->topics[0].err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
    if (metadata != NULL) rd_kafka_metadata_destroy(metadata);
    rd_kafka_topic_destroy(handle);
    return unknown;
}

/* The lookup itself; runs on the resume thread (see bridge_resume.h). */
static enum bridge_resume_outcome resume_find(struct bridge_resume *resume, const char *kafka_topic,
                                              int32_t partition, const struct bridge_origin *origin,
                                              uint64_t scan_max, int timeout_ms,
                                              uint64_t *offset_out, char *why, size_t why_bytes) {
    int64_t low = 0, high = 0;
    rd_kafka_resp_err_t error = rd_kafka_query_watermark_offsets(
        resume->consumer, kafka_topic, partition, &low, &high, timeout_ms);
    uint64_t deadline_ms = resume_now_ms() + (uint64_t)timeout_ms;
    if (error_means_no_topic(error) && topic_is_unknown(resume, kafka_topic, timeout_ms)) {
        snprintf(why, why_bytes, "the topic does not exist yet");
        return BRIDGE_RESUME_NOTHING;
    }
    if (error != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(why, why_bytes, "watermarks of %s [%d]: %s", kafka_topic, partition,
                 rd_kafka_err2str(error));
        return BRIDGE_RESUME_ERROR;
    }
    uint64_t scanned = 0;
    int64_t end = high;
    while (end > low && scanned < scan_max) {
        int64_t span = BRIDGE_RESUME_WINDOW_MESSAGES;
        if ((uint64_t)span > scan_max - scanned) span = (int64_t)(scan_max - scanned);
        int64_t start = end - span > low ? end - span : low;
        struct resume_match match = {0};
        if (window_read(resume, kafka_topic, partition, start, end, origin, deadline_ms, &match,
                        why, why_bytes) != 0)
            return BRIDGE_RESUME_ERROR;
        if (match.found) {
            /* The newest message of this topic and instance belongs to an older log (offsets
             * restarted): nothing of the current log was delivered yet. */
            if (match.log_id != origin->log_id) {
                snprintf(why, why_bytes, "its newest message there came from an older log");
                return BRIDGE_RESUME_NOTHING;
            }
            *offset_out = match.intake_offset;
            return BRIDGE_RESUME_FOUND;
        }
        scanned += (uint64_t)(end - start);
        end = start;
    }
    snprintf(why, why_bytes, "none of offsets %" PRId64 "..%" PRId64 " is from this origin", low,
             high);
    return end > low ? BRIDGE_RESUME_LIMIT : BRIDGE_RESUME_NOTHING;
}

/* The resume thread: one lookup at a time, so the main loop never blocks on Kafka and keeps
 * its intake consumers' heartbeats going meanwhile. */
static void *resume_thread(void *argument) {
    struct bridge_resume *resume = argument;
    pthread_mutex_lock(&resume->lock);
    for (;;) {
        while (!resume->stopping && !resume->requested)
            pthread_cond_wait(&resume->changed, &resume->lock);
        if (resume->stopping) break;
        struct bridge_resume_request request = resume->request;
        pthread_mutex_unlock(&resume->lock);
        struct bridge_resume_result result = {.outcome = BRIDGE_RESUME_ERROR};
        const struct bridge_origin origin = {request.intake_topic, request.instance,
                                             request.log_id};
        result.outcome =
            resume_find(resume, request.kafka_topic, request.partition, &origin, request.scan_max,
                        request.timeout_ms, &result.offset, result.why, sizeof(result.why));
        pthread_mutex_lock(&resume->lock);
        resume->result = result;
        resume->requested = false;
        resume->answered = true;
    }
    pthread_mutex_unlock(&resume->lock);
    return NULL;
}
