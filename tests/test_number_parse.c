/*
 * test_number_parse.c: the one number syntax (src/base/number_parse.h) and the command-line
 * conventions on top of it (src/base/cli.h). Every refusal class with its own result and its
 * one line; the limits of 64 bits and of a spec's range, at and one past each edge; the binary
 * suffixes; durations with and without units, fractions, and their nanosecond floor; the
 * formatter that writes ranges into refusal lines; cli_next's readings of --help, --version,
 * unknown options, missing values and "--flag=value". Single-threaded.
 *
 * intake-test: no-tsan (single-threaded pure code)
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "harness.h"
#include "number_parse.h"

static const struct number_spec any_count = NUMBER_COUNT_SPEC(0, UINT64_MAX);
static const struct number_spec any_size = NUMBER_SIZE_SPEC(0, UINT64_MAX);
static const struct number_spec any_ms = {NUMBER_DURATION, 0, UINT64_MAX, NUMBER_MS};
static const struct number_spec any_seconds = {NUMBER_DURATION, 0, UINT64_MAX, NUMBER_SECONDS};

/* Parses `text` and checks it gives `expected`; on NUMBER_OK also the value, on a refusal that
 * the value was left alone and the line is "NAME: 'TEXT' ...". */
static void expect(const struct number_spec *spec, const char *text, enum number_result expected,
                   uint64_t expected_value) {
    uint64_t value = 12345;
    char why[256] = "";
    enum number_result result = number_parse("--flag", text, spec, &value, why, sizeof(why));
    CHECK(result == expected);
    if (result != expected)
        fprintf(stderr, "  '%s': result %d, expected %d (%s)\n", text, result, expected, why);
    if (expected == NUMBER_OK) {
        CHECK(value == expected_value);
        if (value != expected_value)
            fprintf(stderr, "  '%s': %llu, expected %llu\n", text, (unsigned long long)value,
                    (unsigned long long)expected_value);
        CHECK(why[0] == '\0');
        return;
    }
    char prefix[128];
    snprintf(prefix, sizeof(prefix), "--flag: '%s' is ", text);
    CHECK(value == 12345);
    CHECK(strncmp(why, prefix, strlen(prefix)) == 0);
    CHECK(strchr(why, '\n') == NULL);
}

/* Parses `text` as the flag `name` and checks the result and the refusal line's opening
 * (the whole line when `line_start` is all of it). */
static void expect_line(const struct number_spec *spec, const char *name, const char *text,
                        enum number_result expected, const char *line_start) {
    char why[256] = "";
    uint64_t value = 0;
    CHECK(number_parse(name, text, spec, &value, why, sizeof(why)) == expected);
    CHECK(strncmp(why, line_start, strlen(line_start)) == 0);
    if (strncmp(why, line_start, strlen(line_start)) != 0)
        fprintf(stderr, "  got \"%s\", expected \"%s...\"\n", why, line_start);
}

static void check_refusal_classes(void) {
    /* Empty, and everything that does not begin with a digit. */
    expect(&any_count, "", NUMBER_EMPTY, 0);
    const char *not_numbers[] = {"-1", "+4", " 4", "x", ".5", "K", "\t1", "-0", "one"};
    for (size_t index = 0; index < INTAKE_ARRAY_LENGTH(not_numbers); index++) {
        expect(&any_count, not_numbers[index], NUMBER_NOT_NUMBER, 0);
        expect(&any_size, not_numbers[index], NUMBER_NOT_NUMBER, 0);
        expect(&any_ms, not_numbers[index], NUMBER_NOT_NUMBER, 0);
    }
    /* Digits, then what is no suffix of the kind: trailing garbage, a second suffix, a space. */
    const char *bad_suffixes[] = {"10x", "4 ", "4KK", "0x10", "1.5", "1e3", "4KB", "4Ki", "4T"};
    for (size_t index = 0; index < INTAKE_ARRAY_LENGTH(bad_suffixes); index++) {
        expect(&any_count, bad_suffixes[index], NUMBER_BAD_SUFFIX, 0);
        expect(&any_size, bad_suffixes[index], NUMBER_BAD_SUFFIX, 0);
    }
    const char *bad_units[] = {"10x", "1.", "1.s", "5 s", "5S", "5sec", "5M", "5K", "1..5", "5ms "};
    for (size_t index = 0; index < INTAKE_ARRAY_LENGTH(bad_units); index++)
        expect(&any_ms, bad_units[index], NUMBER_BAD_SUFFIX, 0);
    /* Garbage after a number too large is garbage first: the text is no number at all. */
    expect(&any_count, "99999999999999999999x", NUMBER_BAD_SUFFIX, 0);
}

static void check_limits(void) {
    /* 64 bits: the largest value, and one past it, as digits and through a suffix. */
    expect(&any_count, "18446744073709551615", NUMBER_OK, UINT64_MAX);
    expect(&any_count, "18446744073709551616", NUMBER_OVERFLOW, 0);
    expect(&any_count, "99999999999999999999999", NUMBER_OVERFLOW, 0);
    expect(&any_count, "17179869183G", NUMBER_OK, 17179869183ull << 30);
    expect(&any_count, "17179869184G", NUMBER_OVERFLOW, 0);
    expect(&any_size, "16777216T", NUMBER_BAD_SUFFIX, 0);
    /* Leading zeros are digits like any other. */
    expect(&any_count, "0000000000000000000000042", NUMBER_OK, 42);
    /* A spec's range is inclusive at both ends. */
    const struct number_spec reactors = NUMBER_COUNT_SPEC(1, 64);
    expect(&reactors, "1", NUMBER_OK, 1);
    expect(&reactors, "64", NUMBER_OK, 64);
    expect(&reactors, "0", NUMBER_BELOW_RANGE, 0);
    expect(&reactors, "65", NUMBER_ABOVE_RANGE, 0);
    expect(&reactors, "4294967297", NUMBER_ABOVE_RANGE, 0); /* would wrap to 1 in 32 bits */
    expect(&reactors, "1K", NUMBER_ABOVE_RANGE, 0);
    const struct number_spec log_size = NUMBER_SIZE_SPEC(65536, 1ull << 40);
    expect(&log_size, "64K", NUMBER_OK, 65536);
    expect(&log_size, "65535", NUMBER_BELOW_RANGE, 0);
    expect(&log_size, "1024G", NUMBER_OK, 1ull << 40);
    expect(&log_size, "1025G", NUMBER_ABOVE_RANGE, 0);
    /* The range's line says the range in the kind's own terms. */
    expect_line(&log_size, "--log-size", "1025G", NUMBER_ABOVE_RANGE,
                "--log-size: '1025G' is out of range: 64K..1024G");
    expect_line(&reactors, "--workers", "4294967297", NUMBER_ABOVE_RANGE,
                "--workers: '4294967297' is out of range: 1..64");
    expect_line(&any_count, "--count", "10x", NUMBER_BAD_SUFFIX,
                "--count: '10x' is not a whole number (");
    expect_line(&any_count, "--count", "-1", NUMBER_NOT_NUMBER,
                "--count: '-1' is not a whole number (");
    expect_line(&any_size, "--size", "1x", NUMBER_BAD_SUFFIX,
                "--size: '1x' is not a size in bytes");
    expect_line(&any_ms, "--timeout-ms", "0.1ns", NUMBER_TOO_FINE,
                "--timeout-ms: '0.1ns' is finer than a nanosecond");
    uint64_t value = 0;
    /* A NULL line is allowed: the --acl file words its own refusals. */
    CHECK(number_parse("rate", "ten", &any_count, &value, NULL, 0) == NUMBER_NOT_NUMBER);
}

static void check_suffixes(void) {
    /* Binary, both cases, for counts and sizes alike. */
    expect(&any_size, "1K", NUMBER_OK, 1024);
    expect(&any_size, "1k", NUMBER_OK, 1024);
    expect(&any_size, "64K", NUMBER_OK, 65536);
    expect(&any_size, "3M", NUMBER_OK, 3ull << 20);
    expect(&any_size, "1m", NUMBER_OK, 1ull << 20);
    expect(&any_size, "2G", NUMBER_OK, 2ull << 30);
    expect(&any_size, "2g", NUMBER_OK, 2ull << 30);
    expect(&any_count, "16K", NUMBER_OK, 16384);
    expect(&any_count, "0K", NUMBER_OK, 0);
    expect(&any_count, "0", NUMBER_OK, 0);
}

static void check_durations(void) {
    /* A bare number counts the spec's unit. */
    expect(&any_ms, "30000", NUMBER_OK, 30000 * NUMBER_MS);
    expect(&any_seconds, "5", NUMBER_OK, 5 * NUMBER_SECONDS);
    expect(&any_ms, "0", NUMBER_OK, 0);
    /* Every unit. */
    expect(&any_ms, "7ns", NUMBER_OK, 7);
    expect(&any_ms, "7us", NUMBER_OK, 7000);
    expect(&any_ms, "7ms", NUMBER_OK, 7 * NUMBER_MS);
    expect(&any_ms, "7s", NUMBER_OK, 7 * NUMBER_SECONDS);
    expect(&any_ms, "7m", NUMBER_OK, 420 * NUMBER_SECONDS);
    expect(&any_ms, "7h", NUMBER_OK, 7 * 3600 * NUMBER_SECONDS);
    /* Fractions, exact to the nanosecond. */
    expect(&any_seconds, "0.5", NUMBER_OK, 500 * NUMBER_MS);
    expect(&any_seconds, "1.25", NUMBER_OK, 1250 * NUMBER_MS);
    expect(&any_ms, "1.5", NUMBER_OK, 1500 * NUMBER_US);
    expect(&any_ms, "1.5s", NUMBER_OK, 1500 * NUMBER_MS);
    expect(&any_ms, "0.000001", NUMBER_OK, 1);
    expect(&any_seconds, "0.000000001", NUMBER_OK, 1);
    expect(&any_seconds, "0.0000000015", NUMBER_TOO_FINE, 0);
    expect(&any_ms, "0.5ns", NUMBER_TOO_FINE, 0);
    expect(&any_ms, "1.0000000000000000000000000ms", NUMBER_OK, NUMBER_MS); /* zeros past 18 */
    expect(&any_ms, "1.0000000000000000000000001ms", NUMBER_TOO_FINE, 0);
    expect(&any_ms, "0.0000001h", NUMBER_OK, 360 * NUMBER_US);
    /* 64 bits of nanoseconds: 18446744073709551615 ns is about 584 years. */
    expect(&any_ms, "18446744073709551615ns", NUMBER_OK, UINT64_MAX);
    expect(&any_ms, "18446744073709551616ns", NUMBER_OVERFLOW, 0);
    expect(&any_ms, "5124095h", NUMBER_OK, 5124095ull * 3600 * NUMBER_SECONDS);
    expect(&any_ms, "5124096h", NUMBER_OVERFLOW, 0);
    expect(&any_ms, "18446744073.709551615s", NUMBER_OK, UINT64_MAX);
    expect(&any_ms, "18446744073.709551616s", NUMBER_OVERFLOW, 0);
    /* A range given in the flag's unit. */
    const struct number_spec interval = NUMBER_DURATION_SPEC(NUMBER_MS, 10, 3600000);
    expect(&interval, "10", NUMBER_OK, 10 * NUMBER_MS);
    expect(&interval, "9.999", NUMBER_BELOW_RANGE, 0);
    expect(&interval, "1h", NUMBER_OK, 3600 * NUMBER_SECONDS);
    expect(&interval, "3600000.000001", NUMBER_ABOVE_RANGE, 0);
    expect_line(&interval, "--scan-interval-ms", "2h", NUMBER_ABOVE_RANGE,
                "--scan-interval-ms: '2h' is out of range: 10ms..1h");
    expect_line(&any_seconds, "--interval", "5x", NUMBER_BAD_SUFFIX,
                "--interval: '5x' is not a duration (a number of s, or with a unit: ns, us, ms");
}

static void check_format(void) {
    char text[32];
    CHECK(strcmp(number_format(NUMBER_COUNT, 65536, text, sizeof(text)), "65536") == 0);
    CHECK(strcmp(number_format(NUMBER_SIZE, 65536, text, sizeof(text)), "64K") == 0);
    CHECK(strcmp(number_format(NUMBER_SIZE, 1ull << 40, text, sizeof(text)), "1024G") == 0);
    CHECK(strcmp(number_format(NUMBER_SIZE, 3ull << 20, text, sizeof(text)), "3M") == 0);
    CHECK(strcmp(number_format(NUMBER_SIZE, 1000, text, sizeof(text)), "1000") == 0);
    CHECK(strcmp(number_format(NUMBER_SIZE, 0, text, sizeof(text)), "0") == 0);
    CHECK(strcmp(number_format(NUMBER_DURATION, 0, text, sizeof(text)), "0") == 0);
    CHECK(strcmp(number_format(NUMBER_DURATION, 1500 * NUMBER_MS, text, sizeof(text)), "1500ms") ==
          0);
    CHECK(strcmp(number_format(NUMBER_DURATION, 2 * NUMBER_HOURS, text, sizeof(text)), "2h") == 0);
    CHECK(strcmp(number_format(NUMBER_DURATION, 7, text, sizeof(text)), "7ns") == 0);
    /* What the formatter writes, the parser reads back to the same value. */
    uint64_t state = 0x243F6A8885A308D3ull;
    for (int round = 0; round < 3000; round++) {
        uint64_t random = test_random_next(&state);
        uint64_t value = random >> (random % 64);
        enum number_kind kind = (enum number_kind)(round % 3);
        if (kind == NUMBER_SIZE && round % 2 == 0) value <<= 10 * (round % 4);
        const struct number_spec *spec = kind == NUMBER_COUNT  ? &any_count
                                         : kind == NUMBER_SIZE ? &any_size
                                                               : &any_ms;
        uint64_t parsed = 0;
        number_format(kind, value, text, sizeof(text));
        CHECK(number_parse("--flag", text, spec, &parsed, NULL, 0) == NUMBER_OK && parsed == value);
    }
}

static void check_usage(FILE *out) {
    fputs("usage: check\n", out);
}

/* cli_next over a fixed argv; returns the last answer, the options seen in `seen`. */
static int run_cli(struct cli *cli, char **argv, int argc, uint64_t *count, int *seen) {
    static const struct option options[] = {{"count", required_argument, NULL, 'n'},
                                            {"follow", no_argument, NULL, 'f'},
                                            CLI_STANDARD_OPTIONS,
                                            {NULL, 0, NULL, 0}};
    cli_start(cli, "check", options, check_usage);
    *seen = 0;
    int option = CLI_END;
    while ((option = cli_next(cli, argc, argv)) >= 0) {
        (*seen)++;
        if (option == 'n' && cli_number(cli, &NUMBER_COUNT_SPEC(1, 100), count) < 0)
            return CLI_STOP;
    }
    return option;
}

static void check_cli(void) {
    struct cli cli;
    uint64_t count = 0;
    int seen = 0;
    char *good[] = {"check", "--count=7", "--follow", NULL};
    CHECK(run_cli(&cli, good, 3, &count, &seen) == CLI_END && count == 7 && seen == 2);
    CHECK(strcmp(cli.flag, "--follow") == 0 && cli.exit_status == 0);
    char *abbreviated[] = {"check", "--cou", "9", NULL};
    CHECK(run_cli(&cli, abbreviated, 3, &count, &seen) == CLI_END && count == 9);
    CHECK(strcmp(cli.flag, "--count") == 0);
    char *bad_value[] = {"check", "--count", "10x", NULL};
    CHECK(run_cli(&cli, bad_value, 3, &count, &seen) == CLI_STOP && count == 9);
    CHECK(cli.exit_status == CLI_EXIT_USAGE);
    CHECK(strncmp(cli.why, "--count: '10x' is not a whole number", 36) == 0);
    char *out_of_range[] = {"check", "--count=101", NULL};
    CHECK(run_cli(&cli, out_of_range, 2, &count, &seen) == CLI_STOP);
    CHECK(strcmp(cli.why, "--count: '101' is out of range: 1..100") == 0);
    char *unknown[] = {"check", "--counts", "1", NULL};
    CHECK(run_cli(&cli, unknown, 3, &count, &seen) == CLI_STOP);
    CHECK(cli.exit_status == CLI_EXIT_USAGE);
    CHECK(strcmp(cli.why, "unknown option '--counts' (see --help)") == 0);
    char *missing[] = {"check", "--follow", "--count", NULL};
    CHECK(run_cli(&cli, missing, 3, &count, &seen) == CLI_STOP && seen == 1);
    CHECK(strcmp(cli.why, "--count needs a value (see --help)") == 0);
    char *extra[] = {"check", "--follow", "stray", NULL};
    CHECK(run_cli(&cli, extra, 3, &count, &seen) == CLI_STOP);
    CHECK(cli.exit_status == CLI_EXIT_USAGE);
    CHECK(strcmp(cli.why, "unexpected argument 'stray' (see --help)") == 0);
    /* --help and --version stop with 0 and print on stdout (not checked here: the programs'
     * test, test_program_flags, reads what they print). */
    FILE *saved = stdout;
    stdout = fopen("/dev/null", "w");
    REQUIRE(stdout != NULL);
    char *help[] = {"check", "--follow", "--help", "--count", "10x", NULL};
    int help_answer = run_cli(&cli, help, 5, &count, &seen);
    char *version[] = {"check", "--version", NULL};
    int version_answer = run_cli(&cli, version, 2, &count, &seen);
    fclose(stdout);
    stdout = saved;
    CHECK(help_answer == CLI_STOP);
    CHECK(version_answer == CLI_STOP && cli.exit_status == 0 && cli.why[0] == '\0');
    /* A table of numeric flags (the micro-benchmarks). */
    uint32_t records = 5;
    uint64_t bytes = 0;
    const struct cli_number_flag flags[] = {
        {"records", NUMBER_COUNT_SPEC(1, 1000), &records, NULL},
        {"bytes", NUMBER_SIZE_SPEC(0, 1ull << 30), NULL, &bytes},
    };
    char *numbers[] = {"check", "--bytes", "4K", "--records", "1000", NULL};
    CHECK(cli_parse_numbers("check", 5, numbers, flags, 2, check_usage) == -1);
    CHECK(records == 1000 && bytes == 4096);
    char *too_many[] = {"check", "--records", "1001", NULL};
    fprintf(stderr, "(the next line is the refusal this test expects)\n");
    CHECK(cli_parse_numbers("check", 3, too_many, flags, 2, check_usage) == CLI_EXIT_USAGE);
    CHECK(records == 1000);
}

int main(void) {
    check_refusal_classes();
    check_limits();
    check_suffixes();
    check_durations();
    check_format();
    check_cli();
    return test_finish();
}
