/*
 * harness.h: the few checks every intake test program uses.
 *
 * CHECK counts a passed or failed check and keeps going (so one run shows every failure);
 * REQUIRE stops the test on failure. test_finish prints the closing line
 * "N passed, N failed" and returns the exit code (0 only when nothing failed and at least one
 * check ran, so a test that checks nothing cannot pass).
 */
#ifndef INTAKE_TEST_HARNESS_H
#define INTAKE_TEST_HARNESS_H

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

/* Deterministic pseudo-random numbers (xorshift64*), seeded per test for reproducibility. */
uint64_t test_random_next(uint64_t *state);

/* $INTAKE_BIN_DIR/<name>, or ./<name> when unset; static buffer. */
const char *test_program_path(const char *name);

#endif
