/*
 * quota.c: charging a class's rate limiter (see quota.h). Any thread; lock-free.
 */
#include "quota.h"

/* The time `units` take at `per_second`, rounded up (a class never gets more than its rate).
 * 128-bit: units x 10^9 overflows 64 bits beyond 18 GB in one charge. */
static uint64_t quota_cost_ns(uint64_t units, uint64_t per_second) {
    INTAKE_ASSERT(per_second != 0);
    INTAKE_ASSERT(per_second <= ACL_RATE_MAX);
    unsigned __int128 cost = ((unsigned __int128)units * 1000000000u + per_second - 1) / per_second;
    /* A charge of more than a century of debt is still a wait: keep the sum from wrapping. */
    return cost > (UINT64_MAX >> 2) ? (UINT64_MAX >> 2) : (uint64_t)cost;
}

static void quota_advance(_Atomic uint64_t *due, uint64_t cost_ns, uint64_t now_ns) {
    /* Relaxed (quota.h): the CAS keeps concurrent charges whole; nothing else is published. */
    uint64_t old = atomic_load_explicit(due, memory_order_relaxed);
    uint64_t next;
    do {
        uint64_t base = old > now_ns ? old : now_ns;
        next = base + cost_ns;
        INTAKE_ASSERT(next >= base);
    } while (!atomic_compare_exchange_weak_explicit(due, &old, next, memory_order_relaxed,
                                                    memory_order_relaxed));
}

void quota_bucket_charge(struct quota_bucket *bucket, const struct acl_quota *quota,
                         uint64_t records, uint64_t bytes, uint64_t now_ns) {
    INTAKE_ASSERT(bucket != NULL && quota != NULL);
    if (quota->records_per_second != 0 && records != 0)
        quota_advance(&bucket->records_due_ns, quota_cost_ns(records, quota->records_per_second),
                      now_ns);
    if (quota->bytes_per_second != 0 && bytes != 0)
        quota_advance(&bucket->bytes_due_ns, quota_cost_ns(bytes, quota->bytes_per_second), now_ns);
}

uint64_t quota_bucket_opens_at(const struct quota_bucket *bucket, const struct acl_quota *quota,
                               uint64_t now_ns) {
    uint64_t opens = now_ns;
    uint64_t due = 0;
    if (quota->records_per_second != 0) {
        due = atomic_load_explicit(&bucket->records_due_ns, memory_order_relaxed);
        if (due > QUOTA_BURST_NS && due - QUOTA_BURST_NS > opens) opens = due - QUOTA_BURST_NS;
    }
    if (quota->bytes_per_second != 0) {
        due = atomic_load_explicit(&bucket->bytes_due_ns, memory_order_relaxed);
        if (due > QUOTA_BURST_NS && due - QUOTA_BURST_NS > opens) opens = due - QUOTA_BURST_NS;
    }
    return opens;
}

void quota_bucket_reset(struct quota_bucket *bucket) {
    atomic_store_explicit(&bucket->records_due_ns, 0, memory_order_relaxed);
    atomic_store_explicit(&bucket->bytes_due_ns, 0, memory_order_relaxed);
}
