/*
 * acl-check.c: a micro-benchmark of --acl's per-record path (issue 17), driven as a reactor
 * drives it (src/reactor/access.c): once per loop pass the reactor takes the rule set
 * (acl_exchange_take); per record it compares its connection's cached class generation, loads the
 * cached decision for (class, topic id), and, for a class with a quota, checks the shared bucket
 * (two relaxed loads) and counts what it admitted; every 64 records it charges the bucket with
 * one compare-and-swap. Prints ns per record (the thread's CPU time) for:
 *   decide        the decision alone (no quota): what every record pays with --acl
 *   quota         the decision, the quota check and the charge (a rate too high to hold back)
 *   miss          working a decision out from the rules (--rules allow lines, no match before
 *                 the last): what the first record of a class pays for a topic, once per rule set
 * Usage: acl-check [--records N] [--classes N] [--topics N] [--rules N] [--pass N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acl.h"
#include "cli.h"
#include "acl_exchange.h"
#include "quota.h"

#define CHARGE_RECORDS 64u
/* A power of two: the order of (connection, topic) repeats every ORDER_RECORDS records. */
#define ORDER_RECORDS 65536u

struct options {
    uint64_t records;
    uint32_t classes, topics, rules, pass;
};

/* What a connection keeps (reactor_internal.h): its class in the set of generation... */
struct bench_connection {
    uint64_t generation;
    uint32_t class_index;
    uint32_t row;
    uint32_t pending_records;
    uint64_t pending_bytes;
};

static uint64_t now_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
    return (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
}

static uint64_t monotonic_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
}

/* A file naming `classes - 1` principals, each allowed every topic, each with a quota (rates
 * far above what one thread admits, so nothing is held back) when `limited`. */
static struct acl_set *make_set(const struct options *options, bool limited) {
    size_t capacity = (size_t)options->classes * 96 + 64;
    char *text = malloc(capacity);
    size_t used = 0;
    for (uint32_t index = 1; index < options->classes; index++) {
        used += (size_t)snprintf(text + used, capacity - used, "allow p%u produce *\n", index);
        if (limited)
            used += (size_t)snprintf(text + used, capacity - used, "quota p%u 1G 1024G\n", index);
    }
    struct acl_policy *policy = NULL;
    uint32_t line = 0;
    char why[ACL_WHY_BYTES];
    if (acl_policy_parse(text, used, &policy, &line, why, sizeof(why)) != 0) {
        fprintf(stderr, "acl-check: line %u: %s\n", line, why);
        exit(1);
    }
    free(text);
    uint16_t rows[ACL_CLASSES_MAX];
    for (uint32_t index = 0; index < ACL_CLASSES_MAX; index++) rows[index] = (uint16_t)index;
    struct acl_set *set = NULL;
    if (acl_set_create(policy, options->topics, rows, &set) != 0) exit(1);
    /* Warm: every decision known, as after the first record of each (class, topic). */
    for (uint32_t class_index = 0; class_index < options->classes; class_index++)
        for (uint32_t topic = 0; topic < options->topics; topic++)
            acl_set_remember(set, class_index, topic, class_index != ACL_CLASS_OTHER);
    return set;
}

/* ns per record over options->records records, cycling through connections of every named
 * class and topics. */
static double measure(const struct options *options, bool limited) {
    struct acl_exchange exchange;
    if (acl_exchange_init(&exchange, 1, make_set(options, limited)) != 0) exit(1);
    struct quota_bucket *buckets =
        aligned_alloc(INTAKE_CACHE_LINE_BYTES, ACL_CLASSES_MAX * sizeof(*buckets));
    for (uint32_t row = 0; row < ACL_CLASSES_MAX; row++) quota_bucket_reset(&buckets[row]);
    struct bench_connection connections[ACL_CLASSES_MAX];
    memset(connections, 0, sizeof(connections));
    struct principal principals[ACL_CLASSES_MAX];
    for (uint32_t index = 1; index < options->classes; index++) {
        char name[16];
        int length = snprintf(name, sizeof(name), "p%u", index);
        if (principal_set(&principals[index], name, (uint32_t)length) != 0) exit(1);
    }
    /* The order of connections and topics, worked out before the clock starts (no division per
     * record): connections of every named class in turn, topics changing every round. */
    static struct { uint16_t which, topic; } order[ORDER_RECORDS];
    for (uint32_t index = 0; index < ORDER_RECORDS; index++) {
        order[index].which = (uint16_t)(1 + index % (options->classes - 1));
        order[index].topic = (uint16_t)(index / (options->classes - 1) % options->topics);
    }
    uint64_t clock = monotonic_ns();
    uint64_t denied = 0;
    uint64_t start = now_ns();
    const struct acl_set *set = NULL;
    uint32_t in_pass = 0;
    for (uint64_t index = 0; index < options->records; index++) {
        if (in_pass-- == 0) {
            set = acl_exchange_take(&exchange, 0);
            in_pass = options->pass - 1;
        }
        uint32_t which = order[index % ORDER_RECORDS].which;
        uint32_t topic = order[index % ORDER_RECORDS].topic;
        struct bench_connection *connection = &connections[which];
        if (connection->generation != set->generation) {
            connection->class_index = acl_policy_class_of(set->policy, &principals[which]);
            connection->row = set->row_of_class[connection->class_index];
            connection->generation = set->generation;
        }
        if (acl_set_cached(set, connection->class_index, topic) != ACL_DECISION_ALLOW) {
            denied++;
            continue;
        }
        const struct acl_quota *quota = &set->policy->classes[connection->class_index].quota;
        if (!quota_is_limited(quota)) continue;
        if (!quota_bucket_open(&buckets[connection->row], quota, clock)) denied++;
        connection->pending_records++;
        connection->pending_bytes += 256;
        if (connection->pending_records == CHARGE_RECORDS) {
            quota_bucket_charge(&buckets[connection->row], quota, connection->pending_records,
                                connection->pending_bytes, clock);
            connection->pending_records = 0;
            connection->pending_bytes = 0;
        }
    }
    uint64_t elapsed = now_ns() - start;
    if (denied != 0) {
        fprintf(stderr, "acl-check: %llu records held back or denied\n",
                (unsigned long long)denied);
        exit(1);
    }
    free(buckets);
    acl_exchange_destroy(&exchange);
    return (double)elapsed / (double)options->records;
}

/* ns per decision worked out from `rules` allow lines of one principal, only the last of which
 * matches. */
static double measure_miss(const struct options *options) {
    size_t capacity = (size_t)options->rules * 48 + 64;
    char *text = malloc(capacity);
    size_t used = 0;
    for (uint32_t index = 0; index + 1 < options->rules; index++)
        used += (size_t)snprintf(text + used, capacity - used, "allow p produce topic-%u\n", index);
    used += (size_t)snprintf(text + used, capacity - used, "allow p produce bench.*\n");
    struct acl_policy *policy = NULL;
    uint32_t line = 0;
    char why[ACL_WHY_BYTES];
    if (acl_policy_parse(text, used, &policy, &line, why, sizeof(why)) != 0) exit(1);
    free(text);
    struct principal principal;
    if (principal_set(&principal, "p", 1) != 0) exit(1);
    uint32_t class_index = acl_policy_class_of(policy, &principal);
    const char *topic = "bench.records";
    uint32_t length = (uint32_t)strlen(topic);
    uint64_t count = options->records / 100 + 1;
    uint64_t allowed = 0;
    uint64_t start = now_ns();
    for (uint64_t index = 0; index < count; index++)
        allowed += acl_policy_allows(policy, class_index, topic, length);
    uint64_t elapsed = now_ns() - start;
    acl_policy_free(policy);
    if (allowed != count) exit(1);
    return (double)elapsed / (double)count;
}

static void usage(FILE *out) {
    fprintf(out,
            "usage: acl-check [--records N] [--classes 2..%u] [--topics 1..65535]\n"
            "                 [--rules 1..%u] [--pass N]\n"
            "  ns per record of --acl's path; --help, --version\n",
            ACL_CLASSES_MAX, ACL_RULES_MAX);
}

int main(int argc, char **argv) {
    struct options options = {
        .records = 50000000, .classes = 16, .topics = 64, .rules = 100, .pass = 256};
    const struct cli_number_flag flags[] = {
        {"records", NUMBER_COUNT_SPEC(1, UINT64_MAX), NULL, &options.records},
        {"classes", NUMBER_COUNT_SPEC(2, ACL_CLASSES_MAX), &options.classes, NULL},
        {"topics", NUMBER_COUNT_SPEC(1, 65535), &options.topics, NULL},
        {"rules", NUMBER_COUNT_SPEC(1, ACL_RULES_MAX), &options.rules, NULL},
        {"pass", NUMBER_COUNT_SPEC(1, UINT32_MAX), &options.pass, NULL},
    };
    int exit_now =
        cli_parse_numbers("acl-check", argc, argv, flags, INTAKE_ARRAY_LENGTH(flags), usage);
    if (exit_now >= 0) return exit_now;
    double decide = measure(&options, false);
    double quota = measure(&options, true);
    double miss = measure_miss(&options);
    printf("acl-check records=%llu classes=%u topics=%u pass=%u rules=%u decide_ns=%.1f "
           "quota_ns=%.1f miss_ns=%.1f\n",
           (unsigned long long)options.records, options.classes, options.topics, options.pass,
           options.rules, decide, quota, miss);
    return 0;
}
