/*
 * pipeline_acl.c: --acl at startup and on SIGHUP (see pipeline_acl.h). Main thread only.
 */
#include "pipeline_acl.h"

#include <errno.h>
#include <string.h>
#include <time.h>

/* Row 0 is `other`; named principals take rows from 1 on. */
#define PIPELINE_ACL_OTHER_ROW 0u

static bool pipeline_acl_row_is(const struct pipeline_acl *acl, uint32_t row,
                                const struct acl_class *class) {
    return acl->row_name_lengths[row] == class->name_length &&
           memcmp(acl->row_names[row], class->name, class->name_length) == 0;
}

static bool pipeline_acl_row_taken(const uint16_t *rows, uint32_t count, uint32_t row) {
    for (uint32_t index = 0; index < count; index++)
        if (rows[index] == row) return true;
    return false;
}

/* A row for a principal that has none: one never used, else one whose principal no rule set a
 * reactor may hold names any more. */
static uint32_t pipeline_acl_free_row(const struct pipeline_acl *acl, const uint16_t *rows,
                                      uint32_t assigned) {
    for (uint32_t row = 1; row < INTAKE_COUNTERS_PRINCIPAL_ROWS; row++)
        if (acl->row_name_lengths[row] == 0 && !pipeline_acl_row_taken(rows, assigned, row))
            return row;
    for (uint32_t row = 1; row < INTAKE_COUNTERS_PRINCIPAL_ROWS; row++) {
        if (pipeline_acl_row_taken(rows, assigned, row)) continue;
        if (acl->exchange.readers != NULL && acl_exchange_row_in_use(&acl->exchange, (uint16_t)row))
            continue;
        return row;
    }
    return PIPELINE_ACL_OTHER_ROW;
}

/* Each class's row: the one its principal already has, else a free one. Changes nothing. */
static int pipeline_acl_assign_rows(const struct pipeline_acl *acl, const struct acl_policy *policy,
                                    uint16_t *rows, char *why, size_t why_capacity) {
    INTAKE_ASSERT(policy->class_count >= 1 && policy->class_count <= ACL_CLASSES_MAX);
    rows[ACL_CLASS_OTHER] = PIPELINE_ACL_OTHER_ROW;
    for (uint32_t class_index = 1; class_index < policy->class_count; class_index++) {
        const struct acl_class *class = &policy->classes[class_index];
        uint32_t row = PIPELINE_ACL_OTHER_ROW;
        for (uint32_t candidate = 1; candidate < INTAKE_COUNTERS_PRINCIPAL_ROWS; candidate++)
            if (pipeline_acl_row_is(acl, candidate, class)) row = candidate;
        if (row == PIPELINE_ACL_OTHER_ROW) row = pipeline_acl_free_row(acl, rows, class_index);
        if (row == PIPELINE_ACL_OTHER_ROW) {
            intake_error_line(why, why_capacity,
                              "no counters row free for principal \"%s\": the rule sets still in "
                              "use name %u principals in all",
                              class->name, INTAKE_COUNTERS_PRINCIPAL_ROWS - 1);
            return -EBUSY;
        }
        rows[class_index] = (uint16_t)row;
    }
    return 0;
}

/* Gives each class's row to its principal (counters and bucket restart for a row changing
 * hands: no rule set a reactor may hold uses it) and publishes the quotas in force. */
static void pipeline_acl_claim_rows(struct pipeline_acl *acl, const struct acl_policy *policy,
                                    const uint16_t *rows) {
    for (uint32_t class_index = 0; class_index < policy->class_count; class_index++) {
        const struct acl_class *class = &policy->classes[class_index];
        uint32_t row = rows[class_index];
        INTAKE_ASSERT(row < INTAKE_COUNTERS_PRINCIPAL_ROWS);
        if (!pipeline_acl_row_is(acl, row, class)) {
            quota_bucket_reset(&acl->buckets[row]);
            memcpy(acl->row_names[row], class->name, class->name_length);
            acl->row_names[row][class->name_length] = '\0';
            acl->row_name_lengths[row] = class->name_length;
        }
        struct counters_principal principal = {
            .name = class->name,
            .name_length = class->name_length,
            .in_force = true,
            .quota_records_per_second = class->quota.records_per_second,
            .quota_bytes_per_second = class->quota.bytes_per_second,
        };
        counters_region_principal_set(acl->counters, row, &principal);
    }
}

/* Rows of principals the rules in force no longer name. */
static void pipeline_acl_retire_rows(struct pipeline_acl *acl, const uint16_t *rows,
                                     uint32_t count) {
    for (uint32_t row = 1; row < INTAKE_COUNTERS_PRINCIPAL_ROWS; row++)
        if (acl->row_name_lengths[row] != 0 && !pipeline_acl_row_taken(rows, count, row))
            counters_region_principal_in_force(acl->counters, row, false);
}

void pipeline_acl_describe(const struct pipeline_acl *acl, char *line, size_t capacity) {
    if (!acl->enabled) {
        intake_error_line(line, capacity, "no --acl: every principal may produce to every topic");
        return;
    }
    const struct acl_set *set = acl_exchange_current(&acl->exchange);
    const struct acl_policy *policy = set->policy;
    intake_error_line(line, capacity,
                      "--acl %s: rule set %llu: %u allow rules, %u quotas, %u principals named "
                      "(and other)%s",
                      acl->path, (unsigned long long)set->generation, policy->allow_lines,
                      policy->quota_lines, policy->class_count - 1,
                      policy->allow_lines == 0 ? "; no allow rule: every record is denied" : "");
}

int pipeline_acl_start(struct pipeline_acl *acl, const char *path, struct acl_policy *policy,
                       uint32_t topics_max, uint32_t reactor_count,
                       struct doorbell *reactor_doorbells, struct counters_region *counters,
                       char *why, size_t why_capacity) {
    memset(acl, 0, sizeof(*acl));
    acl->counters = counters;
    if (policy == NULL) {
        counters_region_set_acl(counters, false, 0, 0);
        return 0;
    }
    INTAKE_ASSERT(path != NULL);
    /* The region was made with the principal section (pipeline_create_counters saw --acl). */
    INTAKE_ASSERT(counters->header->principal_row_count == INTAKE_COUNTERS_PRINCIPAL_ROWS);
    acl->path = path;
    acl->topics_max = topics_max;
    acl->reactor_count = reactor_count;
    acl->reactor_doorbells = reactor_doorbells;
    acl->buckets = aligned_alloc(INTAKE_CACHE_LINE_BYTES,
                                 INTAKE_COUNTERS_PRINCIPAL_ROWS * sizeof(*acl->buckets));
    acl->row_names = calloc(INTAKE_COUNTERS_PRINCIPAL_ROWS, sizeof(*acl->row_names));
    uint16_t rows[ACL_CLASSES_MAX];
    struct acl_set *set = NULL;
    int result = acl->buckets != NULL && acl->row_names != NULL ? 0 : -ENOMEM;
    if (result == 0) {
        for (uint32_t row = 0; row < INTAKE_COUNTERS_PRINCIPAL_ROWS; row++)
            quota_bucket_reset(&acl->buckets[row]);
        result = pipeline_acl_assign_rows(acl, policy, rows, why, why_capacity);
    }
    if (result == 0) {
        pipeline_acl_claim_rows(acl, policy, rows);
        result = acl_set_create(policy, topics_max, rows, &set);
        policy = NULL; /* the set owns it now, or freed it */
    }
    if (result == 0) result = acl_exchange_init(&acl->exchange, reactor_count, set);
    if (result < 0) {
        if (result == -ENOMEM) intake_error_line(why, why_capacity, "--acl: out of memory");
        if (acl->exchange.readers == NULL) acl_set_free(set);
        acl_policy_free(policy);
        free(acl->buckets);
        free(acl->row_names);
        memset(acl, 0, sizeof(*acl));
        return result;
    }
    acl->enabled = true;
    counters_region_set_acl(counters, true, 1, 0);
    return 0;
}

/* Wakes every reactor and waits, bounded, until each took `generation`; then frees what none can
 * hold any more. A reactor that does not take it in time keeps the old set retired. */
static bool pipeline_acl_wait_taken(struct pipeline_acl *acl, uint64_t generation) {
    for (uint32_t reactor = 0; reactor < acl->reactor_count; reactor++)
        doorbell_ring_always(&acl->reactor_doorbells[reactor]);
    uint64_t deadline = intake_now_ns() + PIPELINE_ACL_TAKE_WAIT_NS;
    bool taken = acl_exchange_all_took(&acl->exchange, generation);
    while (!taken && intake_now_ns() < deadline) {
        /* The main thread only polls here, during a reload; 1 ms steps. */
        struct timespec pause = {0, 1000000};
        nanosleep(&pause, NULL);
        taken = acl_exchange_all_took(&acl->exchange, generation);
    }
    acl_exchange_reclaim(&acl->exchange);
    return taken;
}

/* A reload that changed nothing: counted, the rules in force stay. */
static void pipeline_acl_refused(struct pipeline_acl *acl) {
    acl->reload_failures++;
    uint64_t generation = acl_exchange_current(&acl->exchange)->generation;
    counters_region_set_acl(acl->counters, true, generation, acl->reload_failures);
}

int pipeline_acl_reload(struct pipeline_acl *acl, char *why, size_t why_capacity) {
    INTAKE_ASSERT(acl->enabled);
    struct acl_policy *policy = NULL;
    uint16_t rows[ACL_CLASSES_MAX];
    int result = acl_policy_load(acl->path, &policy, why, why_capacity);
    if (result == 0 && acl_exchange_reclaim(&acl->exchange) == ACL_EXCHANGE_RETIRED_MAX) {
        intake_error_line(why, why_capacity,
                          "--acl %s: %u earlier rule sets are still held by a reactor that has "
                          "not run since; try again",
                          acl->path, ACL_EXCHANGE_RETIRED_MAX);
        result = -EBUSY;
    }
    if (result == 0) result = pipeline_acl_assign_rows(acl, policy, rows, why, why_capacity);
    if (result < 0) {
        acl_policy_free(policy);
        pipeline_acl_refused(acl);
        return result;
    }
    uint32_t class_count = policy->class_count;
    struct acl_set *set = NULL;
    result = acl_set_create(policy, acl->topics_max, rows, &set);
    if (result < 0) {
        /* The set took the policy and freed it; nothing has changed. */
        pipeline_acl_refused(acl);
        intake_error_line(why, why_capacity, "--acl %s: out of memory", acl->path);
        return result;
    }
    pipeline_acl_claim_rows(acl, set->policy, rows);
    result = acl_exchange_publish(&acl->exchange, set);
    INTAKE_ASSERT(result == 0); /* reclaimed above, and nothing retired since */
    pipeline_acl_retire_rows(acl, rows, class_count);
    counters_region_set_acl(acl->counters, true, set->generation, acl->reload_failures);
    bool taken = pipeline_acl_wait_taken(acl, set->generation);
    char described[384];
    pipeline_acl_describe(acl, described, sizeof(described));
    intake_error_line(why, why_capacity, "reloaded %s", described);
    if (!taken) {
        size_t used = strlen(why);
        intake_error_line(why + used, why_capacity - used,
                          " (a reactor has not taken it yet; it will at its next pass)");
    }
    return 0;
}

void pipeline_acl_destroy(struct pipeline_acl *acl) {
    if (!acl->enabled) return;
    acl_exchange_destroy(&acl->exchange);
    free(acl->buckets);
    free(acl->row_names);
    memset(acl, 0, sizeof(*acl));
}
