/*
 * worker.h: a delivery thread. Owns the topics whose id % worker_count is its index: drains
 * their queues, appends each record to the topic's shared-memory log (the one user-space copy
 * of the payload) with what the reactor's scan read from it (the scan is the one parse; sanitizer
 * builds also decode it with nanopb as a check), publishes a batch, and only then hands every
 * record of the batch back to its reactor: an acknowledged record is always readable.
 *
 * The worker owns its topics' logs (opened when it first sees the topic) and nothing else;
 * records are lent to it by the reactors. Other threads reach it only through what the pipeline
 * handed it (struct worker_links): the topic queues and its doorbell. When every queue is empty
 * it sleeps on its doorbell until a reactor rings it; when a log is full in block mode it
 * re-checks the log's consumers every millisecond (no spinning).
 */
#ifndef INTAKE_WORKER_H
#define INTAKE_WORKER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common.h"
#include "counters_write.h"
#include "doorbell.h"
#include "spsc_ring.h"
#include "topic_queue.h"
#include "topic_table.h"

struct log_opener;
struct worker;

/* What a worker may touch, handed over by the pipeline; all of it outlives the worker. */
struct worker_links {
    uint32_t index; /* owns topics with id % worker_count == index */
    uint32_t worker_count;
    uint32_t reactor_count;
    uint32_t topics_max;
    struct topic_table *topics;
    struct topic_queue *topic_queues;    /* [topics_max], indexed by topic id */
    struct spsc_ring *return_rings;      /* its row: [reactor_count], ring r leads to reactor r */
    struct doorbell *reactor_doorbells;  /* [reactor_count]: rung after returning records */
    struct doorbell *doorbell;           /* its own (futex): reactors and the log opener ring it */
    struct log_opener *log_opener;       /* asked for topic logs */
    const _Atomic bool *stopping;        /* reactors have drained: finish and exit */
    const _Atomic bool *abandon_waiting; /* the shutdown deadline passed: fail, do not wait */
    /* Its rows of the counters region (include/intake/counters_format.h): its own row, and the
     * rows of the topics it owns; written only by this worker, never read back. */
    struct intake_counters_worker_row *counters_row;
    struct intake_counters_topic_row *topic_rows; /* [topics_max], by topic id */
};

int worker_create(const struct worker_links *links, struct worker **out) INTAKE_MUST_CHECK;
int worker_start(struct worker *worker, char *why, size_t why_capacity) INTAKE_MUST_CHECK;
/* Any thread: the worker prints its counters from its own thread. */
void worker_request_report(struct worker *worker);
/* Main thread, after links.stopping is set: waits for the worker to exit. */
void worker_join(struct worker *worker);
void worker_destroy(struct worker *worker);
void worker_print_counters(struct worker *worker, FILE *out, const char *when);
uint64_t worker_bytes_copied(const struct worker *worker);

#endif
