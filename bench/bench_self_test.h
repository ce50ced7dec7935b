/*
 * bench_self_test.h: --self-test: the bench's encoders against decoders and its histogram's
 * accuracy, so bench/run's figures rest on a bench that works (tests/test_bench_paths.sh runs
 * it). Prints "self-test: ok" or "self-test: FAILED" after a line per failed check.
 */
#ifndef BENCH_SELF_TEST_H
#define BENCH_SELF_TEST_H

/* 0 when every check passed, else 1. */
int run_self_test(void);

#endif
