/*
 * counters_render.c: what the two renderings share (see counters_render.h): the renderer's
 * inspector of the topics' logs, its scratch, and rendering into a buffer grown until the
 * output fits. The renderings themselves are render_prometheus.c and render_text.c.
 */
#include "counters_render.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void counters_renderer_open(struct counters_renderer *renderer, const struct counters_view *view,
                            const char *log_directory) {
    memset(renderer, 0, sizeof(*renderer));
    snprintf(renderer->log_directory, sizeof(renderer->log_directory), "%s",
             log_directory != NULL ? log_directory : view->header->shm_directory);
    char why[INTAKE_CONSUMER_ERROR_BYTES];
    /* Room for every topic the daemon can have: once seen, no log is mapped again. */
    if (intake_log_inspector_open(renderer->log_directory, view->header->topics_max,
                                  &renderer->logs, why, sizeof(why)) != 0)
        renderer->logs = NULL;
    renderer->info.struct_bytes = sizeof(renderer->info);
}

void counters_renderer_close(struct counters_renderer *renderer) {
    intake_log_inspector_close(renderer->logs);
    free(renderer->samples);
    free(renderer->labels.data);
    free(renderer->lag_bytes.data);
    free(renderer->lag_records.data);
    memset(renderer, 0, sizeof(*renderer));
}

static bool buffer_reserve(struct text_buffer *buffer, size_t capacity) {
    if (buffer->capacity < capacity) {
        char *grown = realloc(buffer->data, capacity);
        if (grown == NULL) return false;
        buffer->data = grown;
        buffer->capacity = capacity;
    }
    buffer->length = 0;
    buffer->truncated = false;
    buffer->data[0] = '\0';
    return true;
}

bool counters_renderer_reserve(struct counters_renderer *renderer, size_t capacity) {
    return buffer_reserve(&renderer->labels, capacity) &&
           buffer_reserve(&renderer->lag_bytes, capacity) &&
           buffer_reserve(&renderer->lag_records, capacity);
}

const struct intake_log_info *counters_renderer_look(struct counters_renderer *renderer,
                                                     const char *topic) {
    if (renderer->logs == NULL) return NULL;
    char why[INTAKE_CONSUMER_ERROR_BYTES];
    renderer->info.struct_bytes = sizeof(renderer->info);
    if (intake_log_inspect(renderer->logs, topic, 0, &renderer->info, why, sizeof(why)) != 0)
        return NULL;
    return &renderer->info;
}

char *counters_render_alloc(struct counters_renderer *renderer, const struct counters_view *view,
                            uint64_t now_ns, enum counters_render_format format, size_t *length) {
    /* Start at the size the last rendering needed: a scrape renders once, not once per
     * doubling. */
    size_t start = renderer->render_capacity > 256 * 1024 ? renderer->render_capacity : 256 * 1024;
    for (size_t capacity = start; capacity <= COUNTERS_RENDER_BYTES_MAX; capacity *= 2) {
        struct text_buffer out = {.data = malloc(capacity), .capacity = capacity};
        if (out.data == NULL) return NULL;
        out.data[0] = '\0';
        if (format == COUNTERS_RENDER_PROMETHEUS)
            counters_render_prometheus(renderer, view, now_ns, &out);
        else
            counters_render_text(renderer, view, now_ns, &out);
        if (!out.truncated) {
            *length = out.length;
            renderer->render_capacity = capacity;
            return out.data;
        }
        free(out.data);
    }
    return NULL;
}
