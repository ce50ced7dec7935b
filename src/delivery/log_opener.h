/*
 * log_opener.h: creates topics' shared-memory logs off the workers' delivery path.
 *
 * Creating a log allocates all of it (shm_log.c: no SIGBUS later, no page faults while
 * delivering), which takes milliseconds per topic. Done on a worker, it would stall every other
 * topic the worker owns; so a worker that meets a topic without a log asks the opener, keeps
 * delivering its other topics, and is woken when the log is ready. Meanwhile the new topic's
 * records wait in its queue, which pushes back on that topic only.
 *
 * One opener thread per pipeline. Each topic is requested at most once, so the request list
 * (sized for --topics-max) never fills. The slot is owned by the worker; the opener writes it
 * once and publishes it with a release store of its state.
 */
#ifndef INTAKE_LOG_OPENER_H
#define INTAKE_LOG_OPENER_H

#include <stdatomic.h>
#include <stdint.h>

#include "common.h"
#include "shm_log.h"

enum topic_log_state {
    TOPIC_LOG_NONE = 0,      /* not requested yet */
    TOPIC_LOG_REQUESTED = 1, /* the opener is on it */
    TOPIC_LOG_READY = 2,     /* `log` is usable by the owning worker */
    TOPIC_LOG_FAILED = 3,    /* `failure` says why; the topic's records are answered INTERNAL */
};

struct topic_log_slot {
    _Atomic uint32_t state;  /* enum topic_log_state; READY/FAILED published with release */
    struct shm_log *log;
    char failure[200];
};

struct pipeline;
struct log_opener;

/* Main thread. */
int log_opener_start(struct pipeline *pipeline, struct log_opener **out, char *why,
                     size_t why_capacity) INTAKE_MUST_CHECK;
/* After every worker has exited: finishes pending requests, joins, frees. */
void log_opener_stop(struct log_opener *opener);

/* A worker, for a topic it owns whose slot is TOPIC_LOG_NONE: marks it REQUESTED and queues it.
 * The opener wakes `worker_index` once the slot is READY or FAILED. */
void log_opener_request(struct log_opener *opener, uint32_t topic_id, uint32_t worker_index,
                        struct topic_log_slot *slot);

#endif
