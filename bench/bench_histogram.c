/*
 * bench_histogram.c: the latency histogram (bench_histogram.h): log-linear buckets, about 3%
 * resolution. Owned by the consumer thread while a run is on; main reads it after the join.
 */
#include "bench_histogram.h"

#include "common.h"

uint32_t histogram_index(uint64_t value_ns) {
    if (value_ns < HISTOGRAM_LINEAR) return (uint32_t)value_ns;
    uint32_t most_significant_bit = 63u - (uint32_t)__builtin_clzll(value_ns);
    uint32_t shift = most_significant_bit - (HISTOGRAM_LINEAR_BITS - 1);
    uint32_t step = (uint32_t)(value_ns >> shift) - HISTOGRAM_HALF;
    uint32_t index = HISTOGRAM_LINEAR + (shift - 1) * HISTOGRAM_HALF + step;
    INTAKE_ASSERT(index < HISTOGRAM_BUCKETS);
    return index;
}

/* Midpoint of the bucket's value range, so a reported percentile is off by at most ~1.5%. */
uint64_t histogram_bucket_value(uint32_t index) {
    INTAKE_ASSERT(index < HISTOGRAM_BUCKETS);
    if (index < HISTOGRAM_LINEAR) return index;
    uint32_t shift = (index - HISTOGRAM_LINEAR) / HISTOGRAM_HALF + 1;
    uint64_t mantissa = (index - HISTOGRAM_LINEAR) % HISTOGRAM_HALF + HISTOGRAM_HALF;
    return (mantissa << shift) + ((1ull << shift) >> 1);
}

void histogram_record(struct latency_histogram *histogram, uint64_t value_ns) {
    histogram->counts[histogram_index(value_ns)]++;
    histogram->total++;
    if (value_ns > histogram->max_ns) histogram->max_ns = value_ns;
}

/* Value at quantile (0..1]; 0 when empty. */
uint64_t histogram_quantile(const struct latency_histogram *histogram, double quantile) {
    if (histogram->total == 0) return 0;
    uint64_t wanted = (uint64_t)(quantile * (double)histogram->total + 0.999999);
    if (wanted == 0) wanted = 1;
    uint64_t seen = 0;
    for (uint32_t index = 0; index < HISTOGRAM_BUCKETS; index++) {
        seen += histogram->counts[index];
        if (seen >= wanted) {
            uint64_t value = histogram_bucket_value(index);
            return value < histogram->max_ns ? value : histogram->max_ns;
        }
    }
    return histogram->max_ns;
}
