/*
 * bench_histogram.h: the latency histogram of one run. Log-linear buckets (HDR histogram's
 * layout with 6 significant bits): values below 2^HISTOGRAM_LINEAR_BITS ns are exact, above
 * each power of two is split into HISTOGRAM_HALF linear steps, so a reported quantile is off by
 * at most about 1.5%. Not thread-safe: one writer (the consumer thread), read after the join.
 */
#ifndef BENCH_HISTOGRAM_H
#define BENCH_HISTOGRAM_H

#include <stdint.h>

#define HISTOGRAM_LINEAR_BITS 6
#define HISTOGRAM_LINEAR      (1u << HISTOGRAM_LINEAR_BITS)
#define HISTOGRAM_HALF        (HISTOGRAM_LINEAR / 2)
#define HISTOGRAM_BUCKETS     (HISTOGRAM_LINEAR + (64 - HISTOGRAM_LINEAR_BITS + 1) * HISTOGRAM_HALF)

struct latency_histogram {
    uint64_t counts[HISTOGRAM_BUCKETS];
    uint64_t total;
    uint64_t max_ns;
};

/* Bucket of a value in ns (monotonic in the value). */
uint32_t histogram_index(uint64_t value_ns);
/* Midpoint of a bucket's value range. */
uint64_t histogram_bucket_value(uint32_t index);
/* Counts one value (ns). */
void histogram_record(struct latency_histogram *histogram, uint64_t value_ns);
/* Value at quantile (0..1], never above the largest recorded; 0 when empty. */
uint64_t histogram_quantile(const struct latency_histogram *histogram, double quantile);

#endif
