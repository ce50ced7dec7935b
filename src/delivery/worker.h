/*
 * worker.h: a delivery thread. Owns the topics whose id % worker_count is its index: drains
 * their queues, decodes each record fully with nanopb straight from its slices (a second,
 * independent check of what the framer's scan accepted), appends it to the topic's shared-memory
 * log (the one user-space copy of the payload), publishes a batch, and only then hands every
 * record of the batch back to its reactor: an acknowledged record is always readable.
 *
 * The worker owns its topics' logs (opened when it first sees the topic) and nothing else;
 * records are lent to it by the reactors. Other threads reach it through worker_wake and the
 * topic queues. When every queue is empty it sleeps on a futex until a reactor wakes it; when a
 * log is full in block mode it re-checks the log's consumers every millisecond (no spinning).
 */
#ifndef INTAKE_WORKER_H
#define INTAKE_WORKER_H

#include <stdint.h>
#include <stdio.h>

#include "common.h"

struct pipeline;
struct worker;

int worker_create(struct pipeline *pipeline, uint32_t index, struct worker **out) INTAKE_MUST_CHECK;
int worker_start(struct worker *worker, char *why, size_t why_capacity) INTAKE_MUST_CHECK;
/* Any thread, after publishing records into one of this worker's topic queues. */
void worker_wake(struct worker *worker);
/* Any thread: the worker prints its counters from its own thread. */
void worker_request_report(struct worker *worker);
/* Main thread, after pipeline.workers_stopping is set: waits for the worker to exit. */
void worker_join(struct worker *worker);
void worker_destroy(struct worker *worker);
void worker_print_counters(struct worker *worker, FILE *out, const char *when);
uint64_t worker_bytes_copied(const struct worker *worker);

#endif
