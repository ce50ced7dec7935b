/*
 * bench_time.h: time for intake-bench's threads. Any thread may call these.
 */
#ifndef BENCH_TIME_H
#define BENCH_TIME_H

#include <stdint.h>

/* Sleeps about duration_ns (nanosleep; a signal may cut it short). */
void sleep_ns(uint64_t duration_ns);
/* The calling thread's CPU time so far (user + system), ns; 0 if the clock cannot be read.
 * Each side's cost per record is its threads' CPU time over the records delivered (issue 10). */
uint64_t thread_cpu_ns(void);

#endif
