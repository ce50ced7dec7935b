/*
 * bench_load.h: one load run (the default mode): the consumer thread, --connections producer
 * threads, the deadline, the drain, and one result line on stdout ("result target=... "; the
 * fields are listed in intake-bench.c). Main thread; one run per process.
 */
#ifndef BENCH_LOAD_H
#define BENCH_LOAD_H

#include "bench.h"

/* Runs the load the options describe; the process's exit status (0, or 1 after a failure said
 * on stderr, in which case no result line is printed). */
int run_load(const struct bench_options *options);

#endif
