/*
 * common.h: the few definitions every intake module shares.
 *
 * Assertions: INTAKE_ASSERT stays on in release builds. It is for programmer errors (broken
 * invariants between our own modules), never for bad input from the network, which is rejected,
 * counted and answered instead.
 *
 * Out-of-memory policy, stated once: memory is allocated only at startup (pools, rings, queues,
 * logs). A failed startup allocation is returned as -ENOMEM to the caller, which reports it and
 * exits non-zero. Nothing on a hot path allocates.
 */
#ifndef INTAKE_COMMON_H
#define INTAKE_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define INTAKE_CACHE_LINE_BYTES 64

#define INTAKE_LIKELY(x)          __builtin_expect(!!(x), 1)
#define INTAKE_UNLIKELY(x)        __builtin_expect(!!(x), 0)
#define INTAKE_MUST_CHECK         __attribute__((warn_unused_result))
#define INTAKE_ALIGNED_CACHE_LINE __attribute__((aligned(INTAKE_CACHE_LINE_BYTES)))

__attribute__((noreturn, cold)) void intake_assert_fail(const char *expression, const char *file,
                                                        int line, const char *function);

#define INTAKE_ASSERT(expression)                                                                  \
    do {                                                                                           \
        if (INTAKE_UNLIKELY(!(expression)))                                                        \
            intake_assert_fail(#expression, __FILE__, __LINE__, __func__);                         \
    } while (0)

#define INTAKE_ARRAY_LENGTH(array) (sizeof(array) / sizeof((array)[0]))

static inline bool intake_is_power_of_two(uint64_t value) {
    return value != 0 && (value & (value - 1)) == 0;
}

/* The one error-line helper: formats one line into `line` (capacity bytes, NUL included),
 * truncating if needed; a NULL line or zero capacity discards it. Every module that reports a
 * reason to a caller's buffer uses this. */
void intake_error_line(char *line, size_t capacity, const char *format, ...)
    __attribute__((format(printf, 3, 4)));
/* The same, for wrappers that take their own variadic arguments. */
void intake_error_vline(char *line, size_t capacity, const char *format, va_list arguments)
    __attribute__((format(printf, 3, 0)));

/* Monotonic clock, nanoseconds. */
uint64_t intake_now_ns(void);
/* The monotonic time `timeout_ns` from now, saturating: a timeout that would pass the end of
 * the clock (UINT64_MAX, for one) is UINT64_MAX, "no deadline", never a time in the past. */
static inline uint64_t intake_deadline_ns(uint64_t timeout_ns) {
    uint64_t now_ns = intake_now_ns();
    return timeout_ns > UINT64_MAX - now_ns ? UINT64_MAX : now_ns + timeout_ns;
}
/* Wall clock (CLOCK_REALTIME), nanoseconds since the Unix epoch. */
uint64_t intake_wall_ns(void);

/* Returns true when the `length` bytes at `bytes` are valid UTF-8 (no overlongs, no
 * surrogates, nothing above U+10FFFF). Segmented callers keep `state` across calls: start it at
 * 0, feed each segment, and the text is valid when every call returned true and the final
 * state is 0. */
bool intake_utf8_feed(uint32_t *state, const uint8_t *bytes, size_t length);

#endif
