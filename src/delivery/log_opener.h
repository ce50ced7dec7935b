/*
 * log_opener.h: creates topics' shared-memory logs off the workers' delivery path.
 *
 * Creating a log allocates all of it (shm_log.c: no SIGBUS later, no page faults while
 * delivering), which takes milliseconds per topic. Done on a worker, it would stall every other
 * topic the worker owns; so a worker that meets a topic without a log asks the opener, keeps
 * delivering its other topics, and is woken when the log is ready. Meanwhile the new topic's
 * records wait in its queue, which pushes back on that topic only.
 *
 * One opener thread per pipeline. A topic has at most one request outstanding (a worker asks
 * again only after the previous attempt FAILED), so the request ring (sized for --topics-max)
 * never fills. The slot is owned by the worker; the opener writes it while it is REQUESTED and
 * publishes the outcome with a release store of its state. A READY log's record limit is also
 * published in the topic table, where reactors check records against it at admission.
 * With the log, the opener opens the topic's deduplication table (dedupe_table.h), which
 * re-applies what the log holds beyond what the table's file covers.
 */
#ifndef INTAKE_LOG_OPENER_H
#define INTAKE_LOG_OPENER_H

#include <stdatomic.h>
#include <stdint.h>

#include "common.h"
#include "dedupe_table.h"
#include "doorbell.h"
#include "keyed_hash.h"
#include "shm_log.h"
#include "topic_table.h"

enum topic_log_state {
    TOPIC_LOG_NONE = 0,      /* not requested yet */
    TOPIC_LOG_REQUESTED = 1, /* the opener is on it */
    TOPIC_LOG_READY = 2,     /* `log` is usable by the owning worker */
    TOPIC_LOG_FAILED = 3,    /* `failure` says why; records are answered `failure_status` until
                              * the worker asks again (worker.c: at most once a second) */
};

struct topic_log_slot {
    _Atomic uint32_t state; /* enum topic_log_state; READY/FAILED published with release */
    struct shm_log *log;
    struct dedupe_table *dedupe; /* with a READY log, unless --dedupe-producers is 0 */
    uint32_t failure_status;     /* enum record_status: RESOURCE_EXHAUSTED when out of space */
    char failure[RECORD_STATUS_TEXT_BYTES];
};

struct log_opener;

/* What the opener may touch, handed over by the pipeline; all of it outlives the opener. */
struct log_opener_links {
    struct topic_table *topics;         /* names of the topics it is asked for */
    uint32_t topics_max;                /* at most one request per topic is outstanding */
    struct shm_log_config log_template; /* every field but .topic, which each request sets */
    uint32_t frame_bytes_max;           /* --max-frame: a log that takes less is worth a line */
    uint32_t dedupe_producers;          /* --dedupe-producers: 0 opens no deduplication table */
    struct keyed_hash_key hash_key;     /* the daemon's key for producer ids (keyed_hash.h) */
    struct doorbell *worker_doorbells;  /* [worker_count]: rung once a requested log is ready */
    uint32_t worker_count;
    struct doorbell *doorbell; /* its own (futex): workers ring it with requests */
};

/* Main thread. */
int log_opener_start(const struct log_opener_links *links, struct log_opener **out, char *why,
                     size_t why_capacity) INTAKE_MUST_CHECK;
/* After every worker has exited: finishes pending requests, joins, frees. */
void log_opener_stop(struct log_opener *opener);

/* A worker, for a topic it owns whose slot is TOPIC_LOG_NONE or TOPIC_LOG_FAILED (a retry):
 * marks it REQUESTED and queues it. The opener wakes `worker_index` once the slot is READY or
 * FAILED. */
void log_opener_request(struct log_opener *opener, uint32_t topic_id, uint32_t worker_index,
                        struct topic_log_slot *slot);

#endif
