/*
 * test_acl.c: the --acl file's parser and policy (acl.h), the quota buckets (quota.h) and the
 * rule-set exchange (acl_exchange.h), without a daemon.
 *
 *   - every malformed case gives its line number and reason, and nothing else is accepted;
 *   - good files parse to what they say: classes, rules adding up (own + `*`), prefixes, quoted
 *     names, quotas (own, `*`, unlimited), comments, CRLF; acl_policy_load's one-line errors;
 *   - buckets against a clock the test drives: the burst, the debt, idle credit not hoarded, each
 *     dimension alone, a greedy admitter held to its rate over simulated time, and THREADS
 *     threads charging at once losing nothing;
 *   - the exchange: generations, reclamation only once every reader moved on, a full retired list
 *     refused, and readers reading sets while the main thread publishes and frees (ASan and TSan
 *     builds check the frees and the orders).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "acl.h"
#include "acl_exchange.h"
#include "harness.h"
#include "quota.h"

#define THREADS 4

static struct acl_policy *parse_ok(const char *text) {
    struct acl_policy *policy = NULL;
    uint32_t line = 0;
    char why[ACL_WHY_BYTES] = "";
    int result = acl_policy_parse(text, strlen(text), &policy, &line, why, sizeof(why));
    if (result != 0) fprintf(stderr, "unexpected refusal at line %u: %s\n", line, why);
    REQUIRE(result == 0 && policy != NULL);
    return policy;
}

/* Parses `length` bytes and checks the refusal: its line and a piece of its reason. */
static void refused_bytes(const char *text, size_t length, uint32_t expected_line,
                          const char *expected_reason) {
    struct acl_policy *policy = NULL;
    uint32_t line = 12345;
    char why[ACL_WHY_BYTES] = "";
    int result = acl_policy_parse(text, length, &policy, &line, why, sizeof(why));
    CHECK(result == -EINVAL);
    CHECK(policy == NULL);
    CHECK(line == expected_line);
    CHECK(strstr(why, expected_reason) != NULL);
    if (line != expected_line || strstr(why, expected_reason) == NULL)
        fprintf(stderr, "  expected line %u \"%s\", got line %u \"%s\"\n", expected_line,
                expected_reason, line, why);
}

static void refused(const char *text, uint32_t expected_line, const char *expected_reason) {
    refused_bytes(text, strlen(text), expected_line, expected_reason);
}

static void test_malformed(void) {
    refused("allow anonymous produce\n", 1, "allow takes PRINCIPAL produce TOPICS");
    refused("# comment\n\n   \nallow a consume t\n", 4, "unknown operation \"consume\"");
    refused("allow a produce t\ndeny a produce t\n", 2, "unknown rule \"deny\"");
    refused("allow a produce t extra\n", 1, "too many words");
    refused("allow \"a b produce t\n", 1, "no closing quote");
    refused("allow \"a\"b produce t\n", 1, "a closing quote must end its word");
    refused("allow a\"b produce t\n", 1, "a quote inside a word");
    refused("allow a \"produce\" t\n", 1, "unknown operation \"produce\"");
    refused("\"allow\" a produce t\n", 1, "unknown rule \"allow\"");
    refused("allow other produce t\n", 1, "\"other\" is reserved");
    refused("quota other 1 1\n", 1, "\"other\" is reserved");
    refused("allow a produce lo*gs\n", 1, "'*' may only end a topic pattern");
    refused("allow a produce **\n", 1, "'*' may only end a topic pattern");
    refused("allow a produce \xff\xfe\n", 1, "not UTF-8");
    refused("allow a produce \"\"\n", 1, "an empty topic");
    refused("allow \"\" produce t\n", 1, "an empty principal");
    refused("quota a 10\n", 1, "quota takes PRINCIPAL RECORDS_PER_S BYTES_PER_S");
    refused("quota a ten 0\n", 1, "bad rate \"ten\"");
    refused("quota a 1 -5\n", 1, "bad rate \"-5\"");
    refused("quota a 1025G 0\n", 1, "bad rate \"1025G\"");
    refused("quota a 10KB 0\n", 1, "bad rate \"10KB\"");
    refused("quota a \"10\" 0\n", 1, "bad rate");
    refused("quota a 1 1\nallow a produce t\nquota a 2 2\n", 3,
            "a second quota for principal \"a\" (the first is on line 1)");
    refused("quota * 1 1\nquota * 2 2\n", 2, "a second quota for * (the first is on line 1)");
    static const char with_nul[] = "allow a produce t\nallow a\0 produce t\n";
    refused_bytes(with_nul, sizeof(with_nul) - 1, 2, "a NUL byte");

    char long_name[600];
    memset(long_name, 'p', 256);
    long_name[256] = '\0';
    char line[1200];
    snprintf(line, sizeof(line), "allow a produce t\nallow %s produce t\n", long_name);
    refused(line, 2, "a principal of 256 bytes (at most 255)");
    snprintf(line, sizeof(line), "allow a produce %s\n", long_name);
    refused(line, 1, "a topic of 256 bytes (at most 255)");
    /* A prefix of 255 bytes plus its '*' is the longest pattern. */
    long_name[255] = '*';
    snprintf(line, sizeof(line), "allow a produce %s\n", long_name);
    acl_policy_free(parse_ok(line));
    memset(line, ' ', 1025);
    memcpy(line + 1015, "# comment", 9);
    line[1025] = '\0';
    refused(line, 1, "a line of 1025 bytes (at most 1024)");
    line[1024] = '\0';
    acl_policy_free(parse_ok(line)); /* exactly the limit, only a comment */

    /* 255 principals are the most; the 256th is refused on its line. */
    size_t capacity = 300 * 40;
    char *text = malloc(capacity);
    REQUIRE(text != NULL);
    size_t used = 0;
    for (uint32_t principal = 0; principal < ACL_PRINCIPALS_MAX; principal++)
        used += (size_t)snprintf(text + used, capacity - used, "quota p%u 1 1\n", principal);
    acl_policy_free(parse_ok(text));
    used += (size_t)snprintf(text + used, capacity - used, "allow p255 produce t\n");
    refused(text, ACL_PRINCIPALS_MAX + 1, "more than 255 principals named");
    free(text);

    /* 4096 allow rules are the most. */
    capacity = (ACL_RULES_MAX + 1) * 32;
    text = malloc(capacity);
    REQUIRE(text != NULL);
    used = 0;
    for (uint32_t rule = 0; rule < ACL_RULES_MAX; rule++)
        used += (size_t)snprintf(text + used, capacity - used, "allow * produce t%u\n", rule);
    struct acl_policy *policy = parse_ok(text);
    CHECK(policy->rule_count == ACL_RULES_MAX && policy->class_count == 1);
    acl_policy_free(policy);
    used += (size_t)snprintf(text + used, capacity - used, "allow * produce last\n");
    refused(text, ACL_RULES_MAX + 1, "more than 4096 allow rules");
    free(text);

    /* The file as a whole: over 1 MiB is refused before any line. */
    char *big = calloc(1, ACL_FILE_BYTES_MAX + 2); /* and a NUL */
    REQUIRE(big != NULL);
    memset(big, '\n', ACL_FILE_BYTES_MAX + 1);
    refused_bytes(big, ACL_FILE_BYTES_MAX + 1, 0, "bytes (at most 1048576)");
    acl_policy_free(parse_ok(big + 1)); /* 1 MiB of empty lines is a file with no rules */
    free(big);
}

static struct principal named(const char *name) {
    struct principal principal;
    REQUIRE(principal_set(&principal, name, (uint32_t)strlen(name)) == 0);
    return principal;
}

static bool allows(const struct acl_policy *policy, const char *principal_name, const char *topic) {
    struct principal principal = named(principal_name);
    uint32_t class_index = acl_policy_class_of(policy, &principal);
    return acl_policy_allows(policy, class_index, topic, (uint32_t)strlen(topic));
}

static const struct acl_class *class_named(const struct acl_policy *policy, const char *name) {
    struct principal principal = named(name);
    uint32_t class_index = acl_policy_class_of(policy, &principal);
    REQUIRE(class_index != ACL_CLASS_OTHER);
    return &policy->classes[class_index];
}

static void test_good_file(void) {
    const char *text = "# who may produce where\r\n"
                       "allow alice produce orders   # trailing comment\r\n"
                       "\tallow alice\tproduce logs.*\n"
                       "allow * produce public\n"
                       "allow \"CN=Bob Smith\" produce \"a*\"\n"
                       "allow \"#hash\" produce \"with space\"\n"
                       "quota alice 1K 2M\n"
                       "quota * 10 0\n"
                       "allow bob produce *\n"
                       "allow alice produce orders\n" /* a repeated rule changes nothing */
                       "quota \"*\" 0 5\n";           /* a principal literally named "*" */
    struct acl_policy *policy = parse_ok(text);
    CHECK(policy->class_count == 6); /* other, alice, CN=Bob Smith, #hash, bob, "*" */
    CHECK(policy->allow_lines == 7 && policy->quota_lines == 3);
    CHECK(strcmp(acl_policy_class_name(policy, ACL_CLASS_OTHER), "other") == 0);
    /* alice: her own rules and the `*` rule. */
    CHECK(allows(policy, "alice", "orders"));
    CHECK(allows(policy, "alice", "logs.app"));
    CHECK(allows(policy, "alice", "logs."));
    CHECK(allows(policy, "alice", "public"));
    CHECK(!allows(policy, "alice", "logs"));
    CHECK(!allows(policy, "alice", "order"));
    CHECK(!allows(policy, "alice", "orders2"));
    CHECK(!allows(policy, "alice", "publicity"));
    /* A quoted name holds spaces; a quoted '*' is literal. */
    CHECK(allows(policy, "CN=Bob Smith", "a*"));
    CHECK(!allows(policy, "CN=Bob Smith", "ab"));
    CHECK(allows(policy, "CN=Bob Smith", "public"));
    CHECK(allows(policy, "#hash", "with space"));
    /* bob: every topic. */
    CHECK(allows(policy, "bob", "anything"));
    CHECK(allows(policy, "bob", "a"));
    /* Principals the file does not name are `other`: only the `*` rules. */
    struct principal stranger = named("mallory");
    CHECK(acl_policy_class_of(policy, &stranger) == ACL_CLASS_OTHER);
    CHECK(acl_policy_class_of(policy, principal_anonymous()) == ACL_CLASS_OTHER);
    CHECK(allows(policy, "mallory", "public"));
    CHECK(allows(policy, PRINCIPAL_ANONYMOUS, "public"));
    CHECK(!allows(policy, "mallory", "orders"));
    CHECK(!allows(policy, "alic", "orders"));   /* a prefix of a name is another name */
    CHECK(!allows(policy, "alice ", "orders")); /* and so is a longer one */
    /* Quotas: alice's own (powers of 1024); `*` for the other named ones and for `other`; the
     * principal named "*" has its own. */
    const struct acl_class *alice = class_named(policy, "alice");
    CHECK(alice->quota.records_per_second == 1024 && alice->quota.bytes_per_second == 2u << 20);
    CHECK(alice->quota_line == 7);
    const struct acl_class *bob = class_named(policy, "bob");
    CHECK(bob->quota.records_per_second == 10 && bob->quota.bytes_per_second == 0);
    CHECK(bob->quota_line == 8);
    const struct acl_class *other = &policy->classes[ACL_CLASS_OTHER];
    CHECK(other->quota.records_per_second == 10 && other->quota_line == 8);
    const struct acl_class *star = class_named(policy, "*");
    CHECK(star->quota.records_per_second == 0 && star->quota.bytes_per_second == 5);
    CHECK(!allows(policy, "*", "orders"));
    acl_policy_free(policy);

    /* No `quota *`: classes without a line of their own are unlimited. */
    policy = parse_ok("allow a produce t\nquota b 5 6\n");
    CHECK(!quota_is_limited(&class_named(policy, "a")->quota));
    CHECK(!quota_is_limited(&policy->classes[ACL_CLASS_OTHER].quota));
    CHECK(class_named(policy, "b")->quota.bytes_per_second == 6);
    CHECK(!allows(policy, "b", "t")); /* a quota allows nothing */
    acl_policy_free(policy);

    /* An empty file (or only comments) allows nothing. */
    policy = parse_ok("");
    CHECK(policy->class_count == 1 && policy->rule_count == 0);
    CHECK(!allows(policy, "anyone", "t"));
    acl_policy_free(policy);
    policy = parse_ok("# nothing\n\n");
    CHECK(!allows(policy, PRINCIPAL_ANONYMOUS, "t"));
    acl_policy_free(policy);
}

static void test_load(void) {
    char why[512] = "";
    struct acl_policy *policy = NULL;
    CHECK(acl_policy_load("/nonexistent/acl", &policy, why, sizeof(why)) == -ENOENT);
    CHECK(policy == NULL);
    CHECK(strstr(why, "--acl /nonexistent/acl: No such file or directory") != NULL);
    char path[] = "/tmp/test-acl-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    const char *text = "allow a produce t\nallow b produce t\nquota a x 1\n";
    REQUIRE(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    CHECK(acl_policy_load(path, &policy, why, sizeof(why)) == -EINVAL);
    char expected[256];
    snprintf(expected, sizeof(expected), "--acl %s line 3: bad rate \"x\"", path);
    CHECK(strstr(why, expected) != NULL);
    REQUIRE(truncate(path, 36) == 0); /* the first two lines */
    CHECK(acl_policy_load(path, &policy, why, sizeof(why)) == 0);
    CHECK(policy != NULL && policy->allow_lines == 2);
    acl_policy_free(policy);
    unlink(path);
    CHECK(acl_policy_load("/tmp", &policy, why, sizeof(why)) == -EINVAL);
    CHECK(strstr(why, "not a regular file") != NULL);
    /* The example the Kubernetes overlay ships parses, and says what its comments say. */
    const char *source = getenv("INTAKE_SOURCE_DIR");
    char example[1024];
    snprintf(example, sizeof(example), "%s/deploy/kubernetes/overlays/acl/acl.conf",
             source ? source : ".");
    int loaded = acl_policy_load(example, &policy, why, sizeof(why));
    if (loaded != 0) fprintf(stderr, "%s\n", why);
    REQUIRE(loaded == 0);
    CHECK(allows(policy, "spiffe://example.org/any", "events"));
    CHECK(allows(policy, PRINCIPAL_ANONYMOUS, "logs.app") && !allows(policy, "x", "logs.app"));
    const struct acl_class *anonymous = class_named(policy, PRINCIPAL_ANONYMOUS);
    CHECK(anonymous->quota.records_per_second == 5000);
    CHECK(anonymous->quota.bytes_per_second == 8u << 20);
    acl_policy_free(policy);
}

/* ------------------------------------------------------------------------ quotas --- */

#define MS 1000000ull
#define S  1000000000ull

static void test_bucket_clock(void) {
    struct quota_bucket bucket;
    quota_bucket_reset(&bucket);
    struct acl_quota quota = {.records_per_second = 1000, .bytes_per_second = 0};
    uint64_t now = 5 * S;
    CHECK(quota_bucket_open(&bucket, &quota, now));
    /* A burst of 100 ms is 100 records: the 100th leaves it open, the 101st closes it. */
    quota_bucket_charge(&bucket, &quota, 100, 1 << 30, now);
    CHECK(quota_bucket_open(&bucket, &quota, now));
    quota_bucket_charge(&bucket, &quota, 1, 0, now);
    CHECK(!quota_bucket_open(&bucket, &quota, now));
    CHECK(quota_bucket_opens_at(&bucket, &quota, now) == now + 1 * MS);
    CHECK(!quota_bucket_open(&bucket, &quota, now + 1 * MS - 1));
    CHECK(quota_bucket_open(&bucket, &quota, now + 1 * MS));
    /* A debt is paid by waiting: 1,000 records more cost a second. */
    quota_bucket_charge(&bucket, &quota, 1000, 0, now);
    CHECK(quota_bucket_opens_at(&bucket, &quota, now) == now + 1001 * MS);
    /* Idle time is not hoarded: after 10 s, one burst again, no more. */
    now += 10 * S;
    CHECK(quota_bucket_open(&bucket, &quota, now));
    quota_bucket_charge(&bucket, &quota, 101, 0, now);
    CHECK(!quota_bucket_open(&bucket, &quota, now));
    /* The bytes dimension alone: 1 MiB/s, the records rate unlimited. */
    struct acl_quota bytes = {.records_per_second = 0, .bytes_per_second = 1 << 20};
    quota_bucket_reset(&bucket);
    quota_bucket_charge(&bucket, &bytes, 1000000, 100 << 10, now);
    CHECK(quota_bucket_open(&bucket, &bytes, now)); /* 100 KiB: under 100 ms */
    quota_bucket_charge(&bucket, &bytes, 0, 8 << 10, now);
    CHECK(!quota_bucket_open(&bucket, &bytes, now));
    CHECK(quota_bucket_open(&bucket, &bytes, now + 8 * MS));
    /* Costs round up (never more than the rate) and a huge charge does not wrap. */
    struct acl_quota slow = {.records_per_second = 3, .bytes_per_second = 1};
    quota_bucket_reset(&bucket);
    quota_bucket_charge(&bucket, &slow, 1, 0, now);
    CHECK(quota_bucket_opens_at(&bucket, &slow, now) == now + 333333334 - 100 * MS);
    quota_bucket_charge(&bucket, &slow, 0, 1ull << 40, now);
    CHECK(quota_bucket_opens_at(&bucket, &slow, now) > now + 100 * S);
    /* Unlimited: never closes, never charged. */
    struct acl_quota unlimited = {0, 0};
    quota_bucket_reset(&bucket);
    quota_bucket_charge(&bucket, &unlimited, 1u << 30, 1u << 30, now);
    CHECK(quota_bucket_open(&bucket, &unlimited, now));
    CHECK(atomic_load(&bucket.records_due_ns) == 0 && atomic_load(&bucket.bytes_due_ns) == 0);
}

/* A greedy admitter on a simulated clock, as a reactor drives it: it checks before each record
 * and charges every 64 records; the clock advances 1 ms whenever it is held back. Over 20 s it
 * gets the rate, within a burst and a charge batch. */
static void test_bucket_rate(void) {
    struct quota_bucket bucket;
    quota_bucket_reset(&bucket);
    struct acl_quota quota = {.records_per_second = 5000, .bytes_per_second = 0};
    uint64_t start = 1 * S;
    uint64_t now = start;
    uint64_t admitted = 0;
    uint32_t pending = 0;
    while (now < start + 20 * S) {
        if (!quota_bucket_open(&bucket, &quota, now)) {
            now += 1 * MS;
            continue;
        }
        admitted++;
        if (++pending == 64) {
            quota_bucket_charge(&bucket, &quota, pending, 0, now);
            pending = 0;
        }
    }
    uint64_t expected = 20 * 5000;
    CHECK(admitted >= expected - 64 && admitted <= expected + 500 + 64);
    fprintf(stderr, "greedy admitter: %lu records in 20 simulated s at 5000/s\n",
            (unsigned long)admitted);
}

struct charger {
    struct quota_bucket *bucket;
    const struct acl_quota *quota;
    uint64_t now;
};

static void *charge_thread(void *argument) {
    struct charger *charger = argument;
    for (int index = 0; index < 20000; index++)
        quota_bucket_charge(charger->bucket, charger->quota, 1, 3, charger->now);
    return NULL;
}

/* THREADS threads charging one bucket at once: no charge is lost. */
static void test_bucket_threads(void) {
    struct quota_bucket bucket;
    quota_bucket_reset(&bucket);
    struct acl_quota quota = {.records_per_second = 1000000, .bytes_per_second = 3000000};
    struct charger charger = {&bucket, &quota, 7 * S};
    pthread_t threads[THREADS];
    for (int thread = 0; thread < THREADS; thread++)
        REQUIRE(pthread_create(&threads[thread], NULL, charge_thread, &charger) == 0);
    for (int thread = 0; thread < THREADS; thread++) pthread_join(threads[thread], NULL);
    /* Each record costs 1 us in both dimensions. */
    CHECK(atomic_load(&bucket.records_due_ns) == 7 * S + THREADS * 20000ull * 1000);
    CHECK(atomic_load(&bucket.bytes_due_ns) == 7 * S + THREADS * 20000ull * 1000);
}

/* ---------------------------------------------------------------------- exchange --- */

static struct acl_set *make_set(const char *text, const uint16_t *rows) {
    struct acl_set *set = NULL;
    REQUIRE(acl_set_create(parse_ok(text), 8, rows, &set) == 0);
    return set;
}

static void test_exchange(void) {
    static const uint16_t rows_a[3] = {0, 1, 2};
    static const uint16_t rows_b[2] = {0, 3};
    struct acl_exchange exchange;
    REQUIRE(acl_exchange_init(&exchange, 2, make_set("allow a produce t\nquota b 1 1\n", rows_a)) ==
            0);
    CHECK(acl_exchange_current(&exchange)->generation == 1);
    CHECK(acl_exchange_row_in_use(&exchange, 2) && !acl_exchange_row_in_use(&exchange, 3));
    const struct acl_set *taken = acl_exchange_take(&exchange, 0);
    CHECK(taken->generation == 1 && acl_exchange_all_took(&exchange, 0));
    CHECK(!acl_exchange_all_took(&exchange, 1)); /* reader 1 has not taken one yet */
    CHECK(acl_set_cached(taken, 1, 5) == ACL_DECISION_UNKNOWN);
    acl_set_remember(taken, 1, 5, true);
    acl_set_remember(taken, 0, 5, false);
    CHECK(acl_set_cached(taken, 1, 5) == ACL_DECISION_ALLOW);
    CHECK(acl_set_cached(taken, 0, 5) == ACL_DECISION_DENY);
    acl_exchange_take(&exchange, 1);

    REQUIRE(acl_exchange_publish(&exchange, make_set("allow c produce t\n", rows_b)) == 0);
    CHECK(acl_exchange_current(&exchange)->generation == 2);
    /* The new set starts with an empty cache; the old one is retired, its rows still in use. */
    CHECK(acl_set_cached(acl_exchange_current(&exchange), 1, 5) == ACL_DECISION_UNKNOWN);
    CHECK(acl_exchange_row_in_use(&exchange, 2) && acl_exchange_row_in_use(&exchange, 3));
    CHECK(acl_exchange_reclaim(&exchange) == 1);
    CHECK(acl_exchange_take(&exchange, 0)->generation == 2);
    CHECK(acl_exchange_reclaim(&exchange) == 1); /* reader 1 may still hold generation 1 */
    CHECK(acl_exchange_take(&exchange, 1)->generation == 2);
    CHECK(acl_exchange_all_took(&exchange, 2));
    CHECK(acl_exchange_reclaim(&exchange) == 0); /* freed (ASan checks the rest) */
    CHECK(!acl_exchange_row_in_use(&exchange, 2) && acl_exchange_row_in_use(&exchange, 3));

    /* A reader that never takes again: the retired list fills, and the next publish is refused
     * with nothing changed. */
    for (uint32_t index = 0; index < ACL_EXCHANGE_RETIRED_MAX; index++)
        REQUIRE(acl_exchange_publish(&exchange, make_set("", rows_a)) == 0);
    struct acl_set *refused_set = make_set("", rows_a);
    CHECK(acl_exchange_publish(&exchange, refused_set) == -EBUSY);
    CHECK(acl_exchange_current(&exchange)->generation == 2 + ACL_EXCHANGE_RETIRED_MAX);
    acl_set_free(refused_set);
    acl_exchange_take(&exchange, 0);
    acl_exchange_take(&exchange, 1);
    CHECK(acl_exchange_reclaim(&exchange) == 0);
    acl_exchange_destroy(&exchange);
}

struct reader {
    struct acl_exchange *exchange;
    uint32_t index;
    _Atomic bool *stop;
    uint64_t passes;
    uint64_t last_generation;
    bool generations_grew;
};

/* A reactor's use of the sets: take one per pass, read it all through, decide and remember. */
static void *reader_thread(void *argument) {
    struct reader *reader = argument;
    reader->generations_grew = true;
    while (!atomic_load_explicit(reader->stop, memory_order_relaxed)) {
        const struct acl_set *set = acl_exchange_take(reader->exchange, reader->index);
        if (set->generation < reader->last_generation) reader->generations_grew = false;
        reader->last_generation = set->generation;
        const struct acl_policy *policy = set->policy;
        for (uint32_t class_index = 0; class_index < policy->class_count; class_index++)
            for (uint32_t topic = 0; topic < set->topics_max; topic++) {
                if (acl_set_cached(set, class_index, topic) != ACL_DECISION_UNKNOWN) continue;
                char name[16];
                snprintf(name, sizeof(name), "t%u", topic);
                bool allowed = acl_policy_allows(policy, class_index, name, (uint32_t)strlen(name));
                acl_set_remember(set, class_index, topic, allowed);
            }
        reader->passes++;
    }
    return NULL;
}

static void test_exchange_threads(void) {
    static const uint16_t rows[3] = {0, 1, 2};
    struct acl_exchange exchange;
    REQUIRE(acl_exchange_init(&exchange, THREADS, make_set("allow a produce t1\n", rows)) == 0);
    _Atomic bool stop = false;
    struct reader readers[THREADS];
    pthread_t threads[THREADS];
    for (uint32_t index = 0; index < THREADS; index++) {
        readers[index] = (struct reader){.exchange = &exchange, .index = index, .stop = &stop};
        REQUIRE(pthread_create(&threads[index], NULL, reader_thread, &readers[index]) == 0);
    }
    uint32_t published = 0;
    while (published < 300) {
        if (acl_exchange_reclaim(&exchange) == ACL_EXCHANGE_RETIRED_MAX) {
            sched_yield();
            continue;
        }
        const char *text = published % 2 ? "allow * produce t*\nallow b produce t3\n"
                                         : "allow a produce t2\nquota b 1 1\n";
        REQUIRE(acl_exchange_publish(&exchange, make_set(text, rows)) == 0);
        published++;
    }
    uint64_t last = acl_exchange_current(&exchange)->generation;
    while (!acl_exchange_all_took(&exchange, last)) sched_yield();
    atomic_store(&stop, true);
    for (uint32_t index = 0; index < THREADS; index++) {
        pthread_join(threads[index], NULL);
        CHECK(readers[index].generations_grew);
        CHECK(readers[index].last_generation == last);
    }
    CHECK(last == 301);
    CHECK(acl_exchange_reclaim(&exchange) == 0);
    acl_exchange_destroy(&exchange);
}

int main(void) {
    test_malformed();
    test_good_file();
    test_load();
    test_bucket_clock();
    test_bucket_rate();
    test_bucket_threads();
    test_exchange();
    test_exchange_threads();
    return test_finish();
}
