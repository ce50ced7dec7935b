/*
 * acl_exchange.h: handing rule sets to the reactors (issue 17). The main thread publishes an
 * immutable set (at startup, and on every SIGHUP that parsed a new --acl file); each reactor
 * takes the current one once per loop pass and uses only that one until its next pass; the main
 * thread frees an old set once no reactor can still hold it. No lock, nothing allocated on the
 * reactor's side.
 *
 * A set is a parsed policy (acl.h) plus what the daemon adds to it: its generation (1, 2, ... in
 * publication order), each class's counters row and quota bucket, and a decision cache, one byte
 * per (class, topic id), so the per-record question "may this class produce to this topic" is
 * one relaxed load once answered. The cache belongs to its set, so new rules start with an empty
 * cache and nothing ever has to be invalidated.
 *
 * Memory orders, each with its pair:
 *   - publish: the main thread fills a set, then release-stores `current`; a reactor
 *     acquire-loads `current`, so every field of the set (and its zeroed cache) is visible.
 *   - quiescence: a reactor that took a set release-stores its generation in its own `seen`
 *     slot, after its last use of any older set; the main thread acquire-loads every slot before
 *     freeing a set older than all of them, so those uses happen before the free.
 *   - the decision cache: relaxed loads and stores. A decision is a pure function of the
 *     immutable set and the topic's name, so a racing reader sees either "unknown" (and works
 *     the same answer out again) or the answer itself.
 */
#ifndef INTAKE_ACL_EXCHANGE_H
#define INTAKE_ACL_EXCHANGE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "acl.h"
#include "common.h"

/* Old sets waiting for the reactors to move on; a reload finding them all still in use fails. */
#define ACL_EXCHANGE_RETIRED_MAX 4u

enum acl_decision {
    ACL_DECISION_UNKNOWN = 0,
    ACL_DECISION_ALLOW = 1,
    ACL_DECISION_DENY = 2,
};

struct acl_set {
    uint64_t generation;
    struct acl_policy *policy; /* owned */
    uint32_t topics_max;
    /* Each class's counters row (include/intake/counters_format.h) and quota bucket index. */
    uint16_t row_of_class[ACL_CLASSES_MAX];
    _Atomic uint8_t *decisions; /* [policy->class_count * topics_max], enum acl_decision */
};

/* Main thread. Takes `policy` (freed with the set, also on failure); `rows` gives each class's
 * row. -ENOMEM when the cache cannot be allocated. */
int acl_set_create(struct acl_policy *policy, uint32_t topics_max, const uint16_t *rows,
                   struct acl_set **out) INTAKE_MUST_CHECK;
void acl_set_free(struct acl_set *set);

/* Any thread holding the set: the cached decision for (class, topic id). */
static inline enum acl_decision acl_set_cached(const struct acl_set *set, uint32_t class_index,
                                               uint32_t topic_id) {
    INTAKE_ASSERT(class_index < set->policy->class_count);
    INTAKE_ASSERT(topic_id < set->topics_max);
    /* Relaxed: see the header comment (a pure function of immutable data). */
    return (enum acl_decision)atomic_load_explicit(
        &set->decisions[(size_t)class_index * set->topics_max + topic_id], memory_order_relaxed);
}
static inline void acl_set_remember(const struct acl_set *set, uint32_t class_index,
                                    uint32_t topic_id, bool allowed) {
    INTAKE_ASSERT(class_index < set->policy->class_count);
    INTAKE_ASSERT(topic_id < set->topics_max);
    atomic_store_explicit(&set->decisions[(size_t)class_index * set->topics_max + topic_id],
                          allowed ? ACL_DECISION_ALLOW : ACL_DECISION_DENY, memory_order_relaxed);
}

/* One reactor's quiescence slot, on its own cache line (each reactor writes its own). */
struct acl_exchange_reader {
    _Atomic uint64_t seen_generation; /* the generation of the set it holds; 0 before any */
} INTAKE_ALIGNED_CACHE_LINE;

struct acl_exchange {
    _Atomic(struct acl_set *) current;
    uint32_t reader_count;
    struct acl_exchange_reader *readers; /* [reader_count] */
    /* Main thread only: published sets that reactors may still hold, oldest first. */
    struct acl_set *retired[ACL_EXCHANGE_RETIRED_MAX];
    uint32_t retired_count;
};

/* Main thread, before any reader starts: `initial` (generation 1) becomes current. */
int acl_exchange_init(struct acl_exchange *exchange, uint32_t reader_count,
                      struct acl_set *initial) INTAKE_MUST_CHECK;
/* Main thread, after every reader has stopped: frees every set. */
void acl_exchange_destroy(struct acl_exchange *exchange);

/* Reader `reader` (a reactor), once per loop pass: the set to use until its next call. From this
 * call on it holds no older set. */
const struct acl_set *acl_exchange_take(struct acl_exchange *exchange, uint32_t reader);

/* Main thread. Frees the retired sets no reader can hold any more; returns how many remain. */
uint32_t acl_exchange_reclaim(struct acl_exchange *exchange);
/* Main thread: whether every reader has taken a set of at least `generation`. */
bool acl_exchange_all_took(const struct acl_exchange *exchange, uint64_t generation);
/* Main thread: makes `set` current (its generation must be the current one's plus one) and
 * retires the old one. -EBUSY, with nothing changed, when the retired list is full even after
 * reclaiming (a reader has not taken a set for that many reloads). */
int acl_exchange_publish(struct acl_exchange *exchange, struct acl_set *set) INTAKE_MUST_CHECK;
/* Main thread: the current set (only the main thread publishes, so a relaxed read). */
struct acl_set *acl_exchange_current(const struct acl_exchange *exchange);
/* Main thread: whether `row` is used by the current or a retired set (rows of sets no reader can
 * hold are free for another principal). */
bool acl_exchange_row_in_use(const struct acl_exchange *exchange, uint16_t row);

#endif
