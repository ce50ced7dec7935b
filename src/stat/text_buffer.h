/*
 * text_buffer.h: a bounded text buffer the renderings write into (counters_render.h). A write
 * that does not fit marks the buffer truncated and leaves what was there; the caller renders
 * again into a larger one. Appending copies bytes (no format parsing), for the per-topic lines
 * of a scrape at many topics; printf is for everything else.
 */
#ifndef INTAKE_TEXT_BUFFER_H
#define INTAKE_TEXT_BUFFER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct text_buffer {
    char *data;
    size_t capacity;
    size_t length;
    bool truncated;
};

void text_buffer_printf(struct text_buffer *buffer, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
void text_buffer_append(struct text_buffer *buffer, const char *bytes, size_t length);
void text_buffer_append_string(struct text_buffer *buffer, const char *text);
/* Writes the decimal digits of `value` at the end of `digits` (20 bytes, the most a uint64_t
 * has); returns where they start. */
static inline size_t text_u64_digits(uint64_t value, char digits[20]) {
    size_t at = 20;
    do {
        digits[--at] = (char)('0' + value % 10);
        value /= 10;
    } while (value != 0);
    return at;
}
/* The decimal digits of `value`. */
void text_buffer_append_u64(struct text_buffer *buffer, uint64_t value);
/* A label value of the Prometheus text format: backslash, double quote and newline escaped;
 * a value that is not UTF-8 (a consumer's name is whatever its slot holds) has every byte
 * above 0x7F replaced by '?', so the exposition stays parseable. */
void text_buffer_append_label_value(struct text_buffer *buffer, const char *value);

#endif
