/*
 * text_buffer.c: the bounded text buffer of the renderings (see text_buffer.h).
 */
#include "text_buffer.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common.h"

void text_buffer_printf(struct text_buffer *buffer, const char *format, ...) {
    if (buffer->truncated) return;
    size_t room = buffer->capacity - buffer->length;
    va_list arguments;
    va_start(arguments, format);
    int written = vsnprintf(buffer->data + buffer->length, room, format, arguments);
    va_end(arguments);
    if (written < 0 || (size_t)written >= room) {
        buffer->truncated = true;
        buffer->data[buffer->length] = '\0';
        return;
    }
    buffer->length += (size_t)written;
}

void text_buffer_append(struct text_buffer *buffer, const char *bytes, size_t length) {
    if (buffer->truncated) return;
    /* One byte stays for the terminating NUL. */
    if (length >= buffer->capacity - buffer->length) {
        buffer->truncated = true;
        return;
    }
    memcpy(buffer->data + buffer->length, bytes, length);
    buffer->length += length;
    buffer->data[buffer->length] = '\0';
}

void text_buffer_append_string(struct text_buffer *buffer, const char *text) {
    text_buffer_append(buffer, text, strlen(text));
}

void text_buffer_append_u64(struct text_buffer *buffer, uint64_t value) {
    char digits[20];
    size_t at = text_u64_digits(value, digits);
    text_buffer_append(buffer, digits + at, sizeof(digits) - at);
}

void text_buffer_append_label_value(struct text_buffer *buffer, const char *value) {
    size_t length = strlen(value);
    uint32_t state = 0;
    bool utf8 = intake_utf8_feed(&state, (const uint8_t *)value, length) && state == 0;
    size_t start = 0;
    for (size_t index = 0; index < length; index++) {
        char byte = value[index];
        const char *escape = NULL;
        if (byte == '\\')
            escape = "\\\\";
        else if (byte == '"')
            escape = "\\\"";
        else if (byte == '\n')
            escape = "\\n";
        else if (!utf8 && (uint8_t)byte > 0x7f)
            escape = "?";
        if (escape == NULL) continue;
        text_buffer_append(buffer, value + start, index - start);
        text_buffer_append_string(buffer, escape);
        start = index + 1;
    }
    text_buffer_append(buffer, value + start, length - start);
}
