/*
 * counters_render.h: the two renderings of the counters region (counters_view.h) and the
 * topics' logs: Prometheus text for /metrics and `intake-stat --format prometheus`, and one
 * screen for a terminal (`intake-stat`).
 *
 * Logs are read only through the consumer library's public introspection call
 * (intake_log_inspect in intake/consumer.h): a renderer keeps an inspector, whose cached,
 * read-only, SIGBUS-guarded mappings make a look at a log a few loads from memory, so a scrape
 * at 1,000 topics opens and maps nothing once the logs have been seen, and a log file
 * truncated under a scrape costs that topic's log lines, never the process.
 *
 * Thread: a renderer belongs to one thread at a time (the metrics endpoint serializes its
 * renderings). Renderings allocate (their output and scratch): never on a reactor or worker.
 */
#ifndef INTAKE_COUNTERS_RENDER_H
#define INTAKE_COUNTERS_RENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "counters_view.h"
#include "intake/consumer.h"
#include "text_buffer.h"

struct prometheus_topic_sample;

/* What renderings keep from one to the next. */
struct counters_renderer {
    struct intake_log_inspector *logs; /* NULL when the log directory cannot be opened */
    char log_directory[4096];
    struct intake_log_info info; /* one look's result */
    /* Prometheus scratch, grown by renderings and reused: one sample per topic in use, the
     * escaped labels, and the consumer lag lines gathered while looking at the logs. */
    struct prometheus_topic_sample *samples;
    uint32_t sample_capacity;
    struct text_buffer labels, lag_bytes, lag_records;
    size_t render_capacity; /* the output buffer the last rendering fitted in */
};

/* Prepares renderings of `view`'s topics whose logs are in `log_directory` (NULL: the
 * directory the daemon's header names). A log directory that cannot be opened is not an
 * error: the renderings then leave out what the logs would say. */
void counters_renderer_open(struct counters_renderer *renderer, const struct counters_view *view,
                            const char *log_directory);
void counters_renderer_close(struct counters_renderer *renderer);

/* Prometheus text exposition format 0.0.4. */
void counters_render_prometheus(struct counters_renderer *renderer,
                                const struct counters_view *view, uint64_t now_ns,
                                struct text_buffer *out);
/* One screen for a terminal, with the names intaked's shutdown lines use. */
void counters_render_text(struct counters_renderer *renderer, const struct counters_view *view,
                          uint64_t now_ns, struct text_buffer *out);

enum counters_render_format {
    COUNTERS_RENDER_PROMETHEUS = 0,
    COUNTERS_RENDER_TEXT = 1,
};
/* The largest rendering produced (1,024 topics with every consumer slot in use fit). */
#define COUNTERS_RENDER_BYTES_MAX (256u << 20)
/* Renders into a heap buffer, grown until the output fits; the caller frees it. NULL when out
 * of memory or past COUNTERS_RENDER_BYTES_MAX. */
char *counters_render_alloc(struct counters_renderer *renderer, const struct counters_view *view,
                            uint64_t now_ns, enum counters_render_format format, size_t *length);

/* Internal to the renderers: makes each scratch buffer at least `capacity` (false: no memory).
 * The Prometheus rendering's side buffers can never need more than its output. */
bool counters_renderer_reserve(struct counters_renderer *renderer, size_t capacity);
/* Internal to the renderers: looks at `topic`'s log; NULL when there is none readable. */
const struct intake_log_info *counters_renderer_look(struct counters_renderer *renderer,
                                                     const char *topic);

#endif
