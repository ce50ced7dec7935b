/*
 * acl_exchange.c: publishing rule sets to reactors and freeing them once unused (see
 * acl_exchange.h for the protocol and the memory orders). acl_exchange_take runs on reactors;
 * everything else on the main thread.
 */
#include "acl_exchange.h"

#include <errno.h>
#include <string.h>

int acl_set_create(struct acl_policy *policy, uint32_t topics_max, const uint16_t *rows,
                   struct acl_set **out) {
    INTAKE_ASSERT(policy != NULL && rows != NULL);
    INTAKE_ASSERT(topics_max > 0);
    *out = NULL;
    struct acl_set *set = calloc(1, sizeof(*set));
    size_t cells = (size_t)policy->class_count * topics_max;
    _Atomic uint8_t *decisions = calloc(cells, sizeof(*decisions));
    if (set == NULL || decisions == NULL) {
        free(set);
        free((void *)decisions);
        acl_policy_free(policy);
        return -ENOMEM;
    }
    set->policy = policy;
    set->topics_max = topics_max;
    set->decisions = decisions;
    memcpy(set->row_of_class, rows, policy->class_count * sizeof(rows[0]));
    *out = set;
    return 0;
}

void acl_set_free(struct acl_set *set) {
    if (set == NULL) return;
    acl_policy_free(set->policy);
    free((void *)set->decisions);
    free(set);
}

int acl_exchange_init(struct acl_exchange *exchange, uint32_t reader_count,
                      struct acl_set *initial) {
    INTAKE_ASSERT(reader_count > 0);
    INTAKE_ASSERT(initial != NULL);
    memset(exchange, 0, sizeof(*exchange));
    exchange->readers =
        aligned_alloc(INTAKE_CACHE_LINE_BYTES, reader_count * sizeof(*exchange->readers));
    if (exchange->readers == NULL) return -ENOMEM;
    for (uint32_t reader = 0; reader < reader_count; reader++)
        atomic_init(&exchange->readers[reader].seen_generation, 0);
    exchange->reader_count = reader_count;
    initial->generation = 1;
    /* No reader runs yet: the threads that start them publish the set with their creation. */
    atomic_init(&exchange->current, initial);
    return 0;
}

void acl_exchange_destroy(struct acl_exchange *exchange) {
    if (exchange->readers == NULL) return;
    for (uint32_t index = 0; index < exchange->retired_count; index++)
        acl_set_free(exchange->retired[index]);
    acl_set_free(atomic_load_explicit(&exchange->current, memory_order_relaxed));
    free(exchange->readers);
    memset(exchange, 0, sizeof(*exchange));
}

const struct acl_set *acl_exchange_take(struct acl_exchange *exchange, uint32_t reader) {
    INTAKE_ASSERT(reader < exchange->reader_count);
    /* Acquire: pairs with acl_exchange_publish's release store; the set's contents are seen. */
    const struct acl_set *set = atomic_load_explicit(&exchange->current, memory_order_acquire);
    INTAKE_ASSERT(set != NULL);
    _Atomic uint64_t *seen = &exchange->readers[reader].seen_generation;
    /* Relaxed: the reader reads back its own slot. */
    if (atomic_load_explicit(seen, memory_order_relaxed) != set->generation) {
        INTAKE_ASSERT(atomic_load_explicit(seen, memory_order_relaxed) < set->generation);
        /* Release: pairs with the main thread's acquire loads in acl_exchange_all_took; every
         * use of an older set by this reader happened before this store. */
        atomic_store_explicit(seen, set->generation, memory_order_release);
    }
    return set;
}

bool acl_exchange_all_took(const struct acl_exchange *exchange, uint64_t generation) {
    for (uint32_t reader = 0; reader < exchange->reader_count; reader++) {
        /* Acquire: pairs with acl_exchange_take's release store (see the header). */
        uint64_t seen = atomic_load_explicit(
            (_Atomic uint64_t *)&exchange->readers[reader].seen_generation, memory_order_acquire);
        if (seen < generation) return false;
    }
    return true;
}

uint32_t acl_exchange_reclaim(struct acl_exchange *exchange) {
    uint32_t kept = 0;
    for (uint32_t index = 0; index < exchange->retired_count; index++) {
        struct acl_set *set = exchange->retired[index];
        /* Readers hold exactly the generation they last took: once every one took a newer one,
         * none can hold this set. */
        if (acl_exchange_all_took(exchange, set->generation + 1))
            acl_set_free(set);
        else
            exchange->retired[kept++] = set;
    }
    exchange->retired_count = kept;
    return kept;
}

int acl_exchange_publish(struct acl_exchange *exchange, struct acl_set *set) {
    INTAKE_ASSERT(set != NULL);
    struct acl_set *old = acl_exchange_current(exchange);
    if (acl_exchange_reclaim(exchange) == ACL_EXCHANGE_RETIRED_MAX) return -EBUSY;
    set->generation = old->generation + 1;
    exchange->retired[exchange->retired_count++] = old;
    /* Release: pairs with acl_exchange_take's acquire load; the set is complete before it. */
    atomic_store_explicit(&exchange->current, set, memory_order_release);
    return 0;
}

struct acl_set *acl_exchange_current(const struct acl_exchange *exchange) {
    /* Relaxed: only this thread (the main thread) stores `current`. */
    return atomic_load_explicit((_Atomic(struct acl_set *) *)&exchange->current,
                                memory_order_relaxed);
}

static bool acl_set_uses_row(const struct acl_set *set, uint16_t row) {
    for (uint32_t class_index = 0; class_index < set->policy->class_count; class_index++)
        if (set->row_of_class[class_index] == row) return true;
    return false;
}

bool acl_exchange_row_in_use(const struct acl_exchange *exchange, uint16_t row) {
    if (acl_set_uses_row(acl_exchange_current(exchange), row)) return true;
    for (uint32_t index = 0; index < exchange->retired_count; index++)
        if (acl_set_uses_row(exchange->retired[index], row)) return true;
    return false;
}
