/*
 * bench_memcpy.h: --memcpy: single-core copy bandwidth in --size chunks over buffers far larger
 * than the last-level cache, for --duration-s; prints "result target=memcpy mode=closed
 * size=... msgs_per_s=... mb_per_s=...". bench/run's other ceiling, and one term of the floor
 * (intake_vs_floor_cycles). Main thread.
 */
#ifndef BENCH_MEMCPY_H
#define BENCH_MEMCPY_H

#include "bench.h"

/* The process's exit status (1 when the buffers cannot be allocated). */
int run_memcpy(const struct bench_options *options);

#endif
