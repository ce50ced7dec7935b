/*
 * harness.h: the few checks every intake test program uses.
 *
 * CHECK counts a passed or failed check and keeps going (so one run shows every failure);
 * REQUIRE stops the test on failure. test_finish prints the closing line
 * "N passed, N failed" and returns the exit code (0 only when nothing failed and at least one
 * check ran, so a test that checks nothing cannot pass). test_skip ends a test that cannot run
 * here (the kernel lacks a feature): ctest shows it as skipped, never as passed, and a check
 * that failed before the skip still fails it.
 */
#ifndef INTAKE_TEST_HARNESS_H
#define INTAKE_TEST_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

extern unsigned long test_checks_passed;
extern unsigned long test_checks_failed;

void test_check_failed(const char *expression, const char *file, int line);

#define CHECK(expression)                                                                          \
    do {                                                                                           \
        if (expression)                                                                            \
            test_checks_passed++;                                                                  \
        else                                                                                       \
            test_check_failed(#expression, __FILE__, __LINE__);                                    \
    } while (0)

#define REQUIRE(expression)                                                                        \
    do {                                                                                           \
        if (expression)                                                                            \
            test_checks_passed++;                                                                  \
        else {                                                                                     \
            test_check_failed(#expression, __FILE__, __LINE__);                                    \
            exit(test_finish());                                                                   \
        }                                                                                          \
    } while (0)

int test_finish(void);

/* The exit code ctest reads as "skipped" (SKIP_RETURN_CODE of every test, CMakeLists.txt). */
#define TEST_SKIP_EXIT_CODE 77
/* Prints "skipped: <why>" and returns TEST_SKIP_EXIT_CODE, or, when a check already failed,
 * test_finish's failure. */
int test_skip(const char *why);

/* Deterministic pseudo-random numbers (xorshift64*), seeded per test for reproducibility. */
uint64_t test_random_next(uint64_t *state);

/* Runs a shell command, its output (stdout; add 2>&1 for stderr) in `output`, NUL-terminated
 * and cut at capacity - 1. Returns its exit status, or -1 when it could not run or was killed. */
int test_run_command(const char *command, char *output, size_t capacity);

/* $INTAKE_BIN_DIR/<name>, or ./<name> when unset; static buffer. */
const char *test_program_path(const char *name);

#endif
