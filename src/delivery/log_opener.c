/*
 * log_opener.c: the thread that creates topic logs for the workers (see log_opener.h).
 * Requests come from workers under a mutex (once per topic, again after a failure at most once
 * a second; never on the per-record path).
 * When no request is waiting, it prefaults the logs it made, 4 MiB at a time, in the order it
 * made them, so a topic's first lap does not fault under the worker's copy; a new request
 * always goes first.
 */
#include "log_opener.h"
#include "shm_notify.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* Prefault step: small enough that a new topic's request waits at most a few milliseconds. */
#define LOG_OPENER_PREFAULT_BYTES (4u << 20)

struct log_request {
    uint32_t topic_id;
    uint32_t worker_index;
    struct topic_log_slot *slot;
};

struct log_opener {
    struct log_opener_links links;
    pthread_t thread;
    pthread_mutex_t lock; /* guards the request ring and `stopping` */
    /* A ring of [topics_max]: a topic has at most one request outstanding. */
    struct log_request *requests;
    uint32_t request_capacity;
    uint32_t request_head;  /* next to serve, < request_capacity */
    uint32_t request_count; /* waiting to be served */
    /* Logs made READY, in the order they were made: a topic becomes READY at most once.
     * Opener thread only. */
    struct keyed_hasher hasher; /* the ids the deduplication tables load and replay */
    struct topic_log_slot **prefault_slots;
    uint32_t prefault_count;
    uint32_t prefault_next;   /* log being prefaulted (< prefault_count) */
    uint64_t prefault_offset; /* bytes of it done */
    bool stopping;
};

/* "64 MiB", "256 KiB" or "N bytes": a --log-size as the operator wrote it. */
static void log_opener_size_text(uint64_t bytes, char *out, size_t capacity) {
    if (bytes >= (1ull << 20) && bytes % (1ull << 20) == 0)
        snprintf(out, capacity, "%llu MiB", (unsigned long long)(bytes >> 20));
    else if (bytes >= 1024 && bytes % 1024 == 0)
        snprintf(out, capacity, "%llu KiB", (unsigned long long)(bytes >> 10));
    else
        snprintf(out, capacity, "%llu bytes", (unsigned long long)bytes);
}

/* The reason a producer gets when a topic's log cannot be made. Running out of space says what
 * was asked for and where, because that is what the operator has to change. */
static void log_opener_describe_failure(const struct shm_log_config *config, const char *topic,
                                        int result, struct topic_log_slot *slot) {
    int error = -result;
    if (error == ENOSPC || error == ENOMEM || error == EDQUOT || error == EFBIG) {
        slot->failure_status = RECORD_STATUS_RESOURCE_EXHAUSTED;
        char size[32];
        log_opener_size_text(config->capacity_bytes, size, sizeof(size));
        intake_error_line(slot->failure, sizeof(slot->failure),
                          "cannot allocate %s for topic \"%s\"'s log in %s: %s "
                          "(--log-size x topics must fit; retried at most once a second)",
                          size, topic, config->directory, strerror(error));
        return;
    }
    slot->failure_status = RECORD_STATUS_INTERNAL;
    /* shm_log's line already names the file and the call; keep it, prefixed by the topic. */
    char reason[sizeof(slot->failure)];
    snprintf(reason, sizeof(reason), "%s", slot->failure);
    intake_error_line(slot->failure, sizeof(slot->failure),
                      "topic \"%s\"'s log cannot be opened: %s", topic, reason);
}

/* A log that keeps a smaller limit than --max-frame (it was created with a smaller --log-size):
 * say so once, at open; records above its limit are refused at admission. */
static void log_opener_note_limit(uint32_t frame_bytes_max, const char *topic, uint64_t limit) {
    if (limit >= frame_bytes_max) return;
    fprintf(stderr,
            "intaked: topic \"%s\": its log takes records up to %llu bytes, below "
            "--max-frame %u (it was created with a smaller --log-size); larger records "
            "are refused REJECTED; intake-topic --remove recreates it at today's size\n",
            topic, (unsigned long long)limit, frame_bytes_max);
}

/* Opens the deduplication table of a log just opened. On failure the log is closed again and
 * the slot says why (a topic without its table would let resent records in twice). */
static int log_opener_open_dedupe(struct log_opener *opener, const struct shm_log_config *config,
                                  struct topic_log_slot *slot) {
    if (opener->links.dedupe_producers == 0) return 0;
    char why[sizeof(slot->failure)];
    int result = dedupe_table_open(config->directory, config->topic, opener->links.dedupe_producers,
                                   slot->log, &opener->hasher, &slot->dedupe, why, sizeof(why));
    if (result == 0) return 0;
    shm_log_close(slot->log);
    slot->log = NULL;
    slot->dedupe = NULL;
    int error = -result;
    /* A table that cannot be had now (descriptors, memory, space) is waited for: never
     * discarded (dedupe_table.h). */
    slot->failure_status = (error == ENOSPC || error == ENOMEM || error == EDQUOT ||
                            error == EMFILE || error == ENFILE || error == EAGAIN)
                               ? RECORD_STATUS_RESOURCE_EXHAUSTED
                               : RECORD_STATUS_INTERNAL;
    intake_error_line(slot->failure, sizeof(slot->failure),
                      "topic \"%s\": %s (retried at most "
                      "once a second)",
                      config->topic, why);
    return result;
}

/* Creates one topic's log and publishes the outcome in its slot. Opener thread. */
static void log_opener_serve(struct log_opener *opener, const struct log_request *request) {
    const struct topic_entry *entry = topic_table_entry(opener->links.topics, request->topic_id);
    /* A topic is routed (and so requested) only after its entry is published. */
    INTAKE_ASSERT(entry != NULL);
    INTAKE_ASSERT(request->worker_index < opener->links.worker_count);
    struct shm_log_config log_config = opener->links.log_template;
    log_config.topic = entry->name;
    struct topic_log_slot *slot = request->slot;
    int result = shm_log_open_writer(&log_config, &slot->log, slot->failure, sizeof(slot->failure));
    slot->dedupe = NULL;
    if (result < 0) {
        slot->log = NULL;
        log_opener_describe_failure(&opener->links.log_template, entry->name, result, slot);
        fprintf(stderr, "intaked: %s\n", slot->failure);
    } else if ((result = log_opener_open_dedupe(opener, &log_config, slot)) < 0) {
        fprintf(stderr, "intaked: %s\n", slot->failure);
    } else {
        uint64_t limit = shm_log_record_bytes_max(slot->log);
        log_opener_note_limit(opener->links.frame_bytes_max, entry->name, limit);
        INTAKE_ASSERT(opener->prefault_count < opener->request_capacity);
        opener->prefault_slots[opener->prefault_count++] = slot;
        topic_table_publish_log_limit(opener->links.topics, request->topic_id,
                                      limit < UINT32_MAX ? (uint32_t)limit : UINT32_MAX);
        /* The files are in place: consumers that follow every topic rescan for them. */
        if (log_config.notify != NULL) shm_notify_logs_changed(log_config.notify);
    }
    /* Release: publishes slot->log (or slot->failure) to the owning worker's acquire load. */
    atomic_store_explicit(&slot->state, result < 0 ? TOPIC_LOG_FAILED : TOPIC_LOG_READY,
                          memory_order_release);
    doorbell_ring(&opener->links.worker_doorbells[request->worker_index]);
}

/* One prefault step of the oldest log not fully prefaulted; false when none is left. Opener
 * thread (the slots listed are READY and stay so). */
static bool log_opener_prefault_step(struct log_opener *opener) {
    while (opener->prefault_next < opener->prefault_count) {
        struct topic_log_slot *slot = opener->prefault_slots[opener->prefault_next];
        uint64_t done =
            shm_log_prefault(slot->log, opener->prefault_offset, LOG_OPENER_PREFAULT_BYTES);
        if (done > 0) {
            opener->prefault_offset += done;
            return true;
        }
        opener->prefault_next++;
        opener->prefault_offset = 0;
    }
    return false;
}

static void *log_opener_main(void *argument) {
    struct log_opener *opener = argument;
    pthread_mutex_lock(&opener->lock);
    for (;;) {
        if (opener->request_count > 0) {
            struct log_request request = opener->requests[opener->request_head];
            opener->request_head = (opener->request_head + 1) % opener->request_capacity;
            opener->request_count--;
            pthread_mutex_unlock(&opener->lock);
            log_opener_serve(opener, &request);
            pthread_mutex_lock(&opener->lock);
            continue;
        }
        if (opener->stopping) break;
        pthread_mutex_unlock(&opener->lock);
        bool more = log_opener_prefault_step(opener);
        if (more) {
            pthread_mutex_lock(&opener->lock);
            continue;
        }
        /* The doorbell handshake (doorbell.h): arm, look at the ring again, then sleep. */
        uint32_t token = doorbell_arm(opener->links.doorbell);
        pthread_mutex_lock(&opener->lock);
        bool idle = opener->request_count == 0 && !opener->stopping;
        pthread_mutex_unlock(&opener->lock);
        if (idle) doorbell_sleep(opener->links.doorbell, token, 0);
        doorbell_disarm(opener->links.doorbell);
        pthread_mutex_lock(&opener->lock);
    }
    pthread_mutex_unlock(&opener->lock);
    return NULL;
}

int log_opener_start(const struct log_opener_links *links, struct log_opener **out, char *why,
                     size_t why_capacity) {
    INTAKE_ASSERT(links->topics != NULL && links->worker_doorbells != NULL);
    INTAKE_ASSERT(links->topics_max > 0 && links->worker_count > 0);
    INTAKE_ASSERT(links->doorbell != NULL && links->doorbell->kind == DOORBELL_FUTEX);
    struct log_opener *opener = calloc(1, sizeof(*opener));
    if (opener == NULL) return -ENOMEM;
    opener->links = *links;
    opener->request_capacity = links->topics_max;
    opener->requests = calloc(opener->request_capacity, sizeof(struct log_request));
    opener->prefault_slots = calloc(opener->request_capacity, sizeof(struct topic_log_slot *));
    if (opener->requests == NULL || opener->prefault_slots == NULL) {
        free(opener->requests);
        free(opener->prefault_slots);
        free(opener);
        return -ENOMEM;
    }
    int result = keyed_hasher_init(&opener->hasher, &links->hash_key);
    if (result != 0) {
        snprintf(why, why_capacity, "OpenSSL has no SipHash for producer ids: %s",
                 strerror(-result));
        free(opener->requests);
        free(opener->prefault_slots);
        free(opener);
        return result;
    }
    pthread_mutex_init(&opener->lock, NULL);
    result = pthread_create(&opener->thread, NULL, log_opener_main, opener);
    if (result != 0) {
        snprintf(why, why_capacity, "cannot start the log opener thread: %s", strerror(result));
        pthread_mutex_destroy(&opener->lock);
        keyed_hasher_free(&opener->hasher);
        free(opener->requests);
        free(opener->prefault_slots);
        free(opener);
        return -result;
    }
    *out = opener;
    return 0;
}

void log_opener_request(struct log_opener *opener, uint32_t topic_id, uint32_t worker_index,
                        struct topic_log_slot *slot) {
    uint32_t state = atomic_load_explicit(&slot->state, memory_order_relaxed);
    INTAKE_ASSERT(state == TOPIC_LOG_NONE || state == TOPIC_LOG_FAILED);
    atomic_store_explicit(&slot->state, TOPIC_LOG_REQUESTED, memory_order_relaxed);
    pthread_mutex_lock(&opener->lock);
    /* At most one request per topic is outstanding, so --topics-max entries always suffice. */
    INTAKE_ASSERT(opener->request_count < opener->request_capacity);
    uint32_t tail = (opener->request_head + opener->request_count) % opener->request_capacity;
    opener->request_count++;
    opener->requests[tail] =
        (struct log_request){.topic_id = topic_id, .worker_index = worker_index, .slot = slot};
    pthread_mutex_unlock(&opener->lock);
    doorbell_ring(opener->links.doorbell);
}

void log_opener_stop(struct log_opener *opener) {
    if (opener == NULL) return;
    pthread_mutex_lock(&opener->lock);
    opener->stopping = true;
    pthread_mutex_unlock(&opener->lock);
    doorbell_ring_always(opener->links.doorbell);
    pthread_join(opener->thread, NULL);
    pthread_mutex_destroy(&opener->lock);
    keyed_hasher_free(&opener->hasher);
    free(opener->requests);
    free(opener->prefault_slots);
    free(opener);
}
