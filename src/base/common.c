/*
 * common.c: assertion failure reporting, clocks and the UTF-8 validator shared by all modules.
 * Any thread may call these.
 */
#include "common.h"

#include <errno.h>
#include <stdarg.h>
#include <time.h>

void intake_assert_fail(const char *expression, const char *file, int line, const char *function) {
    fprintf(stderr, "intake: assertion failed: %s (%s:%d in %s)\n", expression, file, line,
            function);
    fflush(stderr);
    abort();
}

uint64_t intake_now_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

uint64_t intake_wall_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

/*
 * UTF-8 validation as a small state machine so that text split across receive slices is checked
 * without gathering it. State encodes what the next continuation byte must look like:
 *   0: expecting a lead byte;
 *   low byte: continuation bytes still expected; bits 8..15: the allowed range of the next byte
 *   (0 = 0x80..0xBF, 1 = 0xA0..0xBF after E0, 2 = 0x80..0x9F after ED, 3 = 0x90..0xBF after F0,
 *   4 = 0x80..0x8F after F4).
 */
bool intake_utf8_feed(uint32_t *state, const uint8_t *bytes, size_t length) {
    uint32_t remaining = *state & 0xffu;
    uint32_t range = (*state >> 8) & 0xffu;
    for (size_t index = 0; index < length; index++) {
        uint8_t byte = bytes[index];
        if (remaining == 0) {
            if (byte < 0x80) continue;
            if (byte >= 0xC2 && byte <= 0xDF) {
                remaining = 1;
                range = 0;
            } else if (byte == 0xE0) {
                remaining = 2;
                range = 1;
            } else if (byte == 0xED) {
                remaining = 2;
                range = 2;
            } else if (byte >= 0xE1 && byte <= 0xEF) {
                remaining = 2;
                range = 0;
            } else if (byte == 0xF0) {
                remaining = 3;
                range = 3;
            } else if (byte >= 0xF1 && byte <= 0xF3) {
                remaining = 3;
                range = 0;
            } else if (byte == 0xF4) {
                remaining = 3;
                range = 4;
            } else
                return false;
            continue;
        }
        uint8_t low = 0x80, high = 0xBF;
        if (range == 1)
            low = 0xA0;
        else if (range == 2)
            high = 0x9F;
        else if (range == 3)
            low = 0x90;
        else if (range == 4)
            high = 0x8F;
        if (byte < low || byte > high) return false;
        range = 0;
        remaining--;
    }
    *state = remaining | (range << 8);
    return true;
}

void intake_error_line(char *line, size_t capacity, const char *format, ...) {
    va_list arguments;
    va_start(arguments, format);
    intake_error_vline(line, capacity, format, arguments);
    va_end(arguments);
}

void intake_error_vline(char *line, size_t capacity, const char *format, va_list arguments) {
    if (line == NULL || capacity == 0) return;
    vsnprintf(line, capacity, format, arguments);
}
