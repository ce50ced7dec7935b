/*
 * quota.h: a principal class's rate limit (issue 17), shared by every reactor that serves one of
 * its connections. Lock-free: one atomic word per dimension (records, bytes).
 *
 * The limiter is GCRA (the generic cell rate algorithm, a token bucket kept as one time): each
 * dimension holds `due_ns`, the moment by which everything charged so far would have been paid
 * for at the rate. A charge of n units moves it to max(due, now) + n / rate. The class may go on
 * while due <= now + QUOTA_BURST_NS: after a quiet spell it may send a burst's worth at once,
 * and a class that outruns its rate runs into debt and waits until the debt is paid.
 *
 * Reactors charge after they admit, once per received chunk (not per record: one CAS per chunk),
 * and check before they admit each record (two relaxed loads). So a connection may overshoot by
 * what one chunk holds before its check sees the debt, and that overshoot is then paid back by
 * waiting: over any span T the class is admitted at most rate x T + rate x burst + one chunk per
 * connection, and, when it offers more, not much less than rate x T (it resumes within one
 * reactor recheck of the debt being paid). The clock is CLOCK_MONOTONIC (intake_now_ns), read
 * once per reactor loop pass.
 *
 * Memory order: every access is relaxed. The word is the whole message (nothing else is
 * published with it); the compare-and-swap is what keeps two reactors' charges from being lost.
 */
#ifndef INTAKE_QUOTA_H
#define INTAKE_QUOTA_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "acl.h"
#include "common.h"

/* How far ahead of the clock a class may run: a burst of a tenth of a second of its rate. */
#define QUOTA_BURST_NS 100000000ull

/* One class's state; its own cache line (reactors on different cores charge it). */
struct quota_bucket {
    _Atomic uint64_t records_due_ns;
    _Atomic uint64_t bytes_due_ns;
} INTAKE_ALIGNED_CACHE_LINE;

static inline bool quota_is_limited(const struct acl_quota *quota) {
    return quota->records_per_second != 0 || quota->bytes_per_second != 0;
}

/* Any thread: whether the class may admit now (not in debt beyond the burst). */
static inline bool quota_bucket_open(const struct quota_bucket *bucket,
                                     const struct acl_quota *quota, uint64_t now_ns) {
    uint64_t limit = now_ns + QUOTA_BURST_NS;
    if (quota->records_per_second != 0 &&
        atomic_load_explicit(&bucket->records_due_ns, memory_order_relaxed) > limit)
        return false;
    return quota->bytes_per_second == 0 ||
           atomic_load_explicit(&bucket->bytes_due_ns, memory_order_relaxed) <= limit;
}

/* Any thread: charges what was admitted (dimensions whose rate is 0 are not charged). */
void quota_bucket_charge(struct quota_bucket *bucket, const struct acl_quota *quota,
                         uint64_t records, uint64_t bytes, uint64_t now_ns);
/* Any thread: the earliest moment the bucket opens, or now_ns when it is open. */
uint64_t quota_bucket_opens_at(const struct quota_bucket *bucket, const struct acl_quota *quota,
                               uint64_t now_ns);
/* Main thread, when a bucket changes hands (no reactor can charge it then): forgets all debt. */
void quota_bucket_reset(struct quota_bucket *bucket);

#endif
