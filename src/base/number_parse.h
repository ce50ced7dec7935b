/*
 * number_parse.h: the one number syntax of intake's command lines and files. Every program's
 * numeric flags (intaked's, the tools', the bridge's, the bench's) and the --acl file's quotas
 * are read here, so "10x", "-1" and "4294967297" mean the same thing, a refusal, everywhere.
 * Any thread; no state; nothing allocated.
 *
 * The syntax, for the three kinds of number:
 *   count     decimal digits, optionally followed by one binary multiplier: K (x1024),
 *             M (x1024^2) or G (x1024^3), either case. "4096", "4K", "16M".
 *   size      bytes, the same syntax as a count: the multipliers are binary (K = 1024 bytes,
 *             never 1000). "65536", "64K", "1G".
 *   duration  decimal digits with an optional fraction ("0.5"), then
 *             optionally one unit: ns, us, ms, s, m (minutes) or h. Without a unit the number
 *             is in the flag's own unit (spec->unit_ns: --timeout-ms counts milliseconds,
 *             --interval seconds). The value is kept in nanoseconds and must be whole ones.
 *             "30000" (with a ms unit), "1.5s", "250ms", "2h".
 * Refused, each with its own result: an empty text; anything that does not start with a digit
 * (a sign, a space, "0x", a dot); anything after the number that is not one of its kind's
 * suffixes (trailing garbage, a second suffix, a trailing space); a value that does not fit in
 * 64 bits once scaled; one outside the spec's inclusive range; a duration finer than 1 ns.
 *
 * Every refusal also fills `why` with one line that names what was parsed and says what was
 * wanted, in the form users see: "--count: '10x' is not a whole number".
 */
#ifndef INTAKE_NUMBER_PARSE_H
#define INTAKE_NUMBER_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

enum number_kind {
    NUMBER_COUNT,    /* how many of something */
    NUMBER_SIZE,     /* bytes */
    NUMBER_DURATION, /* time, kept in nanoseconds */
};

enum number_result {
    NUMBER_OK = 0,
    NUMBER_EMPTY,       /* "" */
    NUMBER_NOT_NUMBER,  /* does not start with a digit: "-1", "+4", " 4", "x", ".5" */
    NUMBER_BAD_SUFFIX,  /* digits, then something that is not this kind's suffix: "10x", "4KK" */
    NUMBER_OVERFLOW,    /* more than 2^64 - 1 (for a duration: nanoseconds) once scaled */
    NUMBER_BELOW_RANGE, /* less than spec->minimum */
    NUMBER_ABOVE_RANGE, /* more than spec->maximum */
    NUMBER_TOO_FINE,    /* a duration that is not a whole number of nanoseconds: "0.5ns" */
};

/* Nanoseconds per duration unit, for spec->unit_ns and ranges. */
#define NUMBER_NS      1ull
#define NUMBER_US      1000ull
#define NUMBER_MS      1000000ull
#define NUMBER_SECONDS 1000000000ull
#define NUMBER_MINUTES (60ull * NUMBER_SECONDS)
#define NUMBER_HOURS   (60ull * NUMBER_MINUTES)

/* What a number must be. The range is inclusive and in the value's own terms: a count, bytes,
 * or nanoseconds for a duration (a 1..3600000 ms flag is NUMBER_MS .. 3600000 * NUMBER_MS). */
struct number_spec {
    enum number_kind kind;
    uint64_t minimum;
    uint64_t maximum;
    uint64_t unit_ns; /* durations: what a number without a unit counts (NUMBER_MS, ...) */
};

#define NUMBER_COUNT_SPEC(minimum, maximum)                                                        \
    ((struct number_spec){NUMBER_COUNT, (minimum), (maximum), 0})
#define NUMBER_SIZE_SPEC(minimum, maximum)                                                         \
    ((struct number_spec){NUMBER_SIZE, (minimum), (maximum), 0})
/* A duration flag in `unit` (NUMBER_MS, ...) whose range is given in that unit too. */
#define NUMBER_DURATION_SPEC(unit, minimum, maximum)                                               \
    ((struct number_spec){NUMBER_DURATION, (minimum) * (unit), (maximum) * (unit), (unit)})

/* Parses `text` as `spec` says. NUMBER_OK: *value is set (a duration in nanoseconds). Anything
 * else: *value is untouched and `why` (capacity bytes; NULL discards it) holds one line that
 * begins with `name` (the flag, "--count", or a file's "acl line 4: rate"). */
enum number_result number_parse(const char *name, const char *text, const struct number_spec *spec,
                                uint64_t *value, char *why, size_t why_capacity) INTAKE_MUST_CHECK;

/* Writes `value` of `kind` the way the syntax reads it: a count in digits; a size with the
 * largest suffix that is exact ("64K", "1G", "1000"); a duration in the largest unit that is
 * exact ("1500ms", "2h"). For usage texts and refusal lines. Returns `text`. */
const char *number_format(enum number_kind kind, uint64_t value, char *text, size_t capacity);

#endif
