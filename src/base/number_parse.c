/*
 * number_parse.c: the one number syntax (see number_parse.h). The text is read in one pass:
 * digits, then (durations) a fraction, then the kind's suffix, then it must end. Overflow is
 * noted while reading and reported only once the text is known to be a number, so "1e99"
 * is "not a whole number" rather than "too large".
 */
#include "number_parse.h"

#include <inttypes.h>
#include <string.h>

/* Digits read past this many in a fraction cannot be exact in 64-bit arithmetic. */
#define NUMBER_FRACTION_DIGITS_MAX 18

static bool number_is_digit(char character) {
    return character >= '0' && character <= '9';
}

/* Reads decimal digits at *cursor into *value; *overflow is set (and *value meaningless) when
 * they do not fit in 64 bits. Returns how many digits were read. */
static size_t number_read_digits(const char **cursor, uint64_t *value, bool *overflow) {
    size_t digits = 0;
    *value = 0;
    *overflow = false;
    for (; number_is_digit(**cursor); (*cursor)++, digits++) {
        uint64_t digit = (uint64_t)(**cursor - '0');
        if (__builtin_mul_overflow(*value, 10u, value) ||
            __builtin_add_overflow(*value, digit, value))
            *overflow = true;
    }
    return digits;
}

/* A count's or size's binary multiplier: 1 when there is none, 0 when the suffix is unknown. */
static uint64_t number_binary_multiplier(const char **cursor) {
    uint64_t multiplier = 1;
    switch (**cursor) {
    case '\0': return 1;
    case 'K':
    case 'k': multiplier = 1ull << 10; break;
    case 'M':
    case 'm': multiplier = 1ull << 20; break;
    case 'G':
    case 'g': multiplier = 1ull << 30; break;
    default: return 0;
    }
    (*cursor)++;
    return multiplier;
}

static enum number_result number_read_whole(const char *text, uint64_t *value) {
    const char *cursor = text;
    bool overflow = false;
    uint64_t digits_value = 0;
    number_read_digits(&cursor, &digits_value, &overflow);
    uint64_t multiplier = number_binary_multiplier(&cursor);
    if (multiplier == 0 || *cursor != '\0') return NUMBER_BAD_SUFFIX;
    if (overflow || __builtin_mul_overflow(digits_value, multiplier, value)) return NUMBER_OVERFLOW;
    return NUMBER_OK;
}

struct number_unit {
    const char *name;
    uint64_t nanoseconds;
};

/* Two-letter units first, so "ms" is not read as "m" followed by garbage. */
static const struct number_unit number_units[] = {
    {"ns", NUMBER_NS},     {"us", NUMBER_US},     {"ms", NUMBER_MS},
    {"s", NUMBER_SECONDS}, {"m", NUMBER_MINUTES}, {"h", NUMBER_HOURS},
};

/* The name of a unit a spec counts bare numbers in (one of the table's). */
static const char *number_unit_name(uint64_t unit_ns) {
    for (size_t index = 0; index < INTAKE_ARRAY_LENGTH(number_units); index++)
        if (number_units[index].nanoseconds == unit_ns) return number_units[index].name;
    INTAKE_ASSERT(!"a duration spec's unit_ns is one of NUMBER_NS .. NUMBER_HOURS");
    return "";
}

/* The unit at `cursor` (the whole rest of the text); 0 when it is no unit. */
static uint64_t number_unit_at(const char *cursor, uint64_t default_unit_ns) {
    if (*cursor == '\0') return default_unit_ns;
    for (size_t index = 0; index < INTAKE_ARRAY_LENGTH(number_units); index++)
        if (strcmp(cursor, number_units[index].name) == 0) return number_units[index].nanoseconds;
    return 0;
}

static enum number_result number_read_duration(const char *text, uint64_t default_unit_ns,
                                               uint64_t *nanoseconds) {
    INTAKE_ASSERT(default_unit_ns > 0);
    const char *cursor = text;
    bool overflow = false;
    uint64_t whole = 0;
    number_read_digits(&cursor, &whole, &overflow);
    uint64_t fraction = 0;
    uint64_t fraction_scale = 1; /* 10 ^ fraction digits */
    bool too_fine = false;
    if (*cursor == '.') {
        const char *fraction_start = ++cursor;
        while (number_is_digit(*cursor)) cursor++;
        size_t digits = (size_t)(cursor - fraction_start);
        if (digits == 0) return NUMBER_BAD_SUFFIX; /* "1." or "1.s" */
        for (size_t index = 0; index < digits; index++) {
            uint64_t digit = (uint64_t)(fraction_start[index] - '0');
            /* Past what 64 bits hold exactly only zeros may follow. */
            if (index >= NUMBER_FRACTION_DIGITS_MAX) {
                too_fine |= digit != 0;
                continue;
            }
            fraction = fraction * 10 + digit;
            fraction_scale *= 10;
        }
    }
    uint64_t unit_ns = number_unit_at(cursor, default_unit_ns);
    if (unit_ns == 0) return NUMBER_BAD_SUFFIX;
    if (too_fine) return NUMBER_TOO_FINE;
    if (overflow) return NUMBER_OVERFLOW;
    /* whole * unit + fraction * unit / 10^digits, exactly: the product fits in 128 bits. */
    __extension__ unsigned __int128 fraction_ns = (unsigned __int128)fraction * unit_ns;
    if (fraction_ns % fraction_scale != 0) return NUMBER_TOO_FINE;
    fraction_ns /= fraction_scale;
    uint64_t whole_ns = 0;
    if (__builtin_mul_overflow(whole, unit_ns, &whole_ns) ||
        __builtin_add_overflow(whole_ns, (uint64_t)fraction_ns, nanoseconds))
        return NUMBER_OVERFLOW;
    return NUMBER_OK;
}

const char *number_format(enum number_kind kind, uint64_t value, char *text, size_t capacity) {
    if (kind == NUMBER_DURATION && value != 0) {
        /* The largest unit that says it exactly. */
        for (size_t index = INTAKE_ARRAY_LENGTH(number_units); index-- > 0;) {
            uint64_t unit_ns = number_units[index].nanoseconds;
            if (value % unit_ns == 0) {
                snprintf(text, capacity, "%" PRIu64 "%s", value / unit_ns,
                         number_units[index].name);
                return text;
            }
        }
    }
    static const char suffixes[] = {'G', 'M', 'K'};
    for (size_t index = 0; kind == NUMBER_SIZE && value != 0 && index < 3; index++) {
        unsigned shift = 30u - 10u * (unsigned)index;
        if ((value & ((1ull << shift) - 1)) == 0) {
            snprintf(text, capacity, "%" PRIu64 "%c", value >> shift, suffixes[index]);
            return text;
        }
    }
    snprintf(text, capacity, "%" PRIu64, value);
    return text;
}

/* What a text of this kind should have been, for the refusal line. */
static void number_wanted(const struct number_spec *spec, char *text, size_t capacity) {
    if (spec->kind == NUMBER_COUNT) {
        snprintf(text, capacity, "a whole number (digits; K, M, G multiply by 1024)");
    } else if (spec->kind == NUMBER_SIZE) {
        snprintf(text, capacity, "a size in bytes (digits; K, M, G: KiB, MiB, GiB)");
    } else {
        snprintf(text, capacity, "a duration (a number of %s, or with a unit: ns, us, ms, s, m, h)",
                 number_unit_name(spec->unit_ns));
    }
}

enum number_result number_parse(const char *name, const char *text, const struct number_spec *spec,
                                uint64_t *value, char *why, size_t why_capacity) {
    INTAKE_ASSERT(name != NULL && text != NULL);
    INTAKE_ASSERT(spec->minimum <= spec->maximum);
    enum number_result result = NUMBER_OK;
    uint64_t parsed = 0;
    if (text[0] == '\0')
        result = NUMBER_EMPTY;
    else if (!number_is_digit(text[0]))
        result = NUMBER_NOT_NUMBER;
    else if (spec->kind == NUMBER_DURATION)
        result = number_read_duration(text, spec->unit_ns, &parsed);
    else
        result = number_read_whole(text, &parsed);
    if (result == NUMBER_OK && parsed < spec->minimum) result = NUMBER_BELOW_RANGE;
    if (result == NUMBER_OK && parsed > spec->maximum) result = NUMBER_ABOVE_RANGE;
    if (result == NUMBER_OK) {
        *value = parsed;
        return NUMBER_OK;
    }
    char wanted[96], minimum[32], maximum[32];
    switch (result) {
    case NUMBER_EMPTY:
    case NUMBER_NOT_NUMBER:
    case NUMBER_BAD_SUFFIX:
        number_wanted(spec, wanted, sizeof(wanted));
        intake_error_line(why, why_capacity, "%s: '%s' is not %s", name, text, wanted);
        break;
    case NUMBER_TOO_FINE:
        intake_error_line(why, why_capacity, "%s: '%s' is finer than a nanosecond", name, text);
        break;
    default:
        /* Out of range, or of 64 bits: both say the range the flag takes. */
        intake_error_line(why, why_capacity, "%s: '%s' is out of range: %s..%s", name, text,
                          number_format(spec->kind, spec->minimum, minimum, sizeof(minimum)),
                          number_format(spec->kind, spec->maximum, maximum, sizeof(maximum)));
    }
    return result;
}
