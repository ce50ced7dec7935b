/*
 * log_opener.c: the thread that creates topic logs for the workers (see log_opener.h).
 * Requests come from workers under a mutex (once per topic, never on the per-record path).
 * When no request is waiting, it prefaults the logs it made, 4 MiB at a time, in the order it
 * made them, so a topic's first lap does not fault under the worker's copy; a new request
 * always goes first.
 */
#include "log_opener.h"

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
    pthread_mutex_t lock;         /* guards the request list and `stopping` */
    struct log_request *requests; /* [topics_max]: each topic is requested at most once */
    uint32_t request_capacity;
    uint32_t request_head;        /* next to serve */
    uint32_t request_tail;        /* next free */
    uint32_t prefault_next;       /* request whose log is being prefaulted (< request_head) */
    uint64_t prefault_offset;     /* bytes of it done */
    bool stopping;
};

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
    if (result < 0) {
        slot->log = NULL;
        fprintf(stderr, "intaked: topic \"%s\": %s\n", entry->name, slot->failure);
    }
    /* Release: publishes slot->log (or slot->failure) to the owning worker's acquire load. */
    atomic_store_explicit(&slot->state, result < 0 ? TOPIC_LOG_FAILED : TOPIC_LOG_READY,
                          memory_order_release);
    doorbell_ring(&opener->links.worker_doorbells[request->worker_index]);
}

/* One prefault step of the oldest log not fully prefaulted; false when none is left. Opener
 * thread, without the lock (slots of served requests are only read). */
static bool log_opener_prefault_step(struct log_opener *opener, uint32_t served) {
    while (opener->prefault_next < served) {
        struct topic_log_slot *slot = opener->requests[opener->prefault_next].slot;
        uint64_t done = 0;
        if (atomic_load_explicit(&slot->state, memory_order_acquire) == TOPIC_LOG_READY)
            done = shm_log_prefault(slot->log, opener->prefault_offset, LOG_OPENER_PREFAULT_BYTES);
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
        if (opener->request_head != opener->request_tail) {
            struct log_request request = opener->requests[opener->request_head++];
            pthread_mutex_unlock(&opener->lock);
            log_opener_serve(opener, &request);
            pthread_mutex_lock(&opener->lock);
            continue;
        }
        if (opener->stopping) break;
        uint32_t served = opener->request_head;
        pthread_mutex_unlock(&opener->lock);
        bool more = log_opener_prefault_step(opener, served);
        if (more) {
            pthread_mutex_lock(&opener->lock);
            continue;
        }
        /* The doorbell handshake (doorbell.h): arm, look at the list again, then sleep. */
        uint32_t token = doorbell_arm(opener->links.doorbell);
        pthread_mutex_lock(&opener->lock);
        bool idle = opener->request_head == opener->request_tail && !opener->stopping;
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
    if (opener->requests == NULL) {
        free(opener);
        return -ENOMEM;
    }
    pthread_mutex_init(&opener->lock, NULL);
    int result = pthread_create(&opener->thread, NULL, log_opener_main, opener);
    if (result != 0) {
        snprintf(why, why_capacity, "cannot start the log opener thread: %s", strerror(result));
        pthread_mutex_destroy(&opener->lock);
        free(opener->requests);
        free(opener);
        return -result;
    }
    *out = opener;
    return 0;
}

void log_opener_request(struct log_opener *opener, uint32_t topic_id, uint32_t worker_index,
                        struct topic_log_slot *slot) {
    INTAKE_ASSERT(atomic_load_explicit(&slot->state, memory_order_relaxed) == TOPIC_LOG_NONE);
    atomic_store_explicit(&slot->state, TOPIC_LOG_REQUESTED, memory_order_relaxed);
    pthread_mutex_lock(&opener->lock);
    /* Each topic is requested once, so --topics-max entries always suffice. */
    INTAKE_ASSERT(opener->request_tail < opener->request_capacity);
    opener->requests[opener->request_tail++] =
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
    free(opener->requests);
    free(opener);
}
