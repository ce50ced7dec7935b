/*
 * bench_time.c: sleeping and the calling thread's CPU clock (bench_time.h). Any thread.
 */
#include "bench_time.h"

#include <time.h>

void sleep_ns(uint64_t duration_ns) {
    struct timespec pause = {(time_t)(duration_ns / 1000000000u),
                             (long)(duration_ns % 1000000000u)};
    nanosleep(&pause, NULL);
}

/* The calling thread's CPU time so far (user + system), ns: each side's cost per record is its
 * threads' CPU time over the records delivered (issue 10). */
uint64_t thread_cpu_ns(void) {
    struct timespec now;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now) != 0) return 0;
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}
