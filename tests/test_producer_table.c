/*
 * test_producer_table.c: what the daemon knows of each producer (producer_table.h), driven the
 * way the reactor drives it: a connection acquires its producer's entry (Hello or first
 * record), presents its first record and then the next ones, and releases the entry with its
 * committed level when it ends.
 *
 *   basics:     Hello answers (0 when unknown, the folded level after), levels never lowered,
 *               ids that differ in length or one byte, and the same id under two principals
 *               are distinct producers (issue 17: ids belong to their principal).
 *   bound:      a first record more than W ahead of what was seen is PRODUCER_AHEAD; exactly W
 *               is admitted; an unknown producer has no bound.
 *   gaps:       a jump records a gap; another connection's records inside it, and resends into
 *               it, are gap fills; records outside are not; the Hello answer stays below a gap;
 *               a release with the range committed removes it; gaps beyond PRODUCER_GAPS_MAX
 *               merge (over-approximate, never drop).
 *   unknown:    a producer's first record above 1 on a table that does not know it makes the
 *               gap [1, s-1]; seeding makes it known.
 *   segments:   producers with two committing connections survive a flood of 1,100 one-record
 *               made-up ids; a pinned entry is never evicted; a table whose every entry is
 *               pinned refuses.
 *   concurrent: one thread streams a producer at the front while another jumps ahead of it
 *               several times: afterwards a sequence is in a gap exactly when it was skipped by
 *               a jump (the streaming thread was told "gap fill" for exactly those it sent),
 *               under ThreadSanitizer (scripts/test).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "harness.h"
#include "keyed_hash.h"
#include "producer_table.h"

#define PRINCIPAL_A 0xf33a49644e3a182full
#define PRINCIPAL_B 0xbadd993358e137e2ull

static struct keyed_hasher hasher;
static pthread_mutex_t hasher_lock = PTHREAD_MUTEX_INITIALIZER;

static struct record_origin origin_as(uint64_t principal, const char *id) {
    struct record_origin origin = {.principal = principal};
    origin.producer_id_length = (uint32_t)strlen(id);
    memcpy(origin.producer_id, id, origin.producer_id_length);
    pthread_mutex_lock(&hasher_lock);
    origin.producer_hash =
        keyed_hash_producer(&hasher, principal, origin.producer_id, origin.producer_id_length);
    pthread_mutex_unlock(&hasher_lock);
    return origin;
}

/* A Hello: only looks (an unknown producer is answered 0 and gets no entry). */
static uint64_t hello(struct producer_table *table, uint64_t principal, const char *id) {
    struct record_origin origin = origin_as(principal, id);
    struct producer_entry *entry = producer_table_acquire(table, &origin, false);
    if (entry == NULL) return 0;
    uint64_t answer = producer_table_hello_answer(table, entry);
    producer_table_release(table, entry, 0, 0);
    return answer;
}

/* One connection of `id` presenting first..last, all committed up to `committed` (0: none). */
static enum producer_admission connection(struct producer_table *table, uint64_t principal,
                                          const char *id, uint64_t first, uint64_t last,
                                          uint64_t committed) {
    struct record_origin origin = origin_as(principal, id);
    struct producer_entry *entry = producer_table_acquire(table, &origin, true);
    REQUIRE(entry != NULL);
    uint64_t known = 0;
    enum producer_admission verdict = producer_table_first(table, entry, first, &known);
    if (verdict != PRODUCER_AHEAD)
        for (uint64_t sequence = first + 1; sequence <= last; sequence++)
            CHECK(producer_table_next(table, entry, sequence) != PRODUCER_AHEAD);
    producer_table_release(table, entry, verdict == PRODUCER_AHEAD ? 0 : first,
                           verdict == PRODUCER_AHEAD ? 0 : committed);
    return verdict;
}

/* Whether `sequence` (at or below what was seen) lies in a gap: a probe connection's first
 * record answers it. */
static bool in_gap(struct producer_table *table, uint64_t principal, const char *id,
                   uint64_t sequence) {
    struct record_origin origin = origin_as(principal, id);
    struct producer_entry *entry = producer_table_acquire(table, &origin, true);
    REQUIRE(entry != NULL);
    uint64_t known = 0;
    enum producer_admission verdict = producer_table_first(table, entry, sequence, &known);
    producer_table_release(table, entry, 0, 0);
    return verdict == PRODUCER_ADMIT_GAP_FILL;
}

static void test_basics(void) {
    struct producer_table *table = NULL;
    CHECK(producer_table_create(0, &table) == -EINVAL && table == NULL);
    CHECK(producer_table_create(PRODUCER_TABLE_CAPACITY_MAX + 1, &table) == -EINVAL);
    REQUIRE(producer_table_create(16, &table) == 0);
    CHECK(hello(table, PRINCIPAL_A, "a") == 0);
    CHECK(connection(table, PRINCIPAL_A, "a", 1, 10, 10) == PRODUCER_ADMIT);
    CHECK(hello(table, PRINCIPAL_A, "a") == 10);
    CHECK(connection(table, PRINCIPAL_A, "a", 11, 12, 0) == PRODUCER_ADMIT); /* none committed */
    CHECK(hello(table, PRINCIPAL_A, "a") == 10);
    CHECK(connection(table, PRINCIPAL_A, "a", 5, 7, 7) == PRODUCER_ADMIT); /* a resend */
    CHECK(hello(table, PRINCIPAL_A, "a") == 10);                           /* never lowered */
    /* Another principal's "a" is another producer: A's state is neither read nor moved. */
    CHECK(hello(table, PRINCIPAL_B, "a") == 0);
    CHECK(connection(table, PRINCIPAL_B, "a", 1000000, 1000000, 1000000) == PRODUCER_ADMIT);
    CHECK(hello(table, PRINCIPAL_A, "a") == 10);
    CHECK(connection(table, PRINCIPAL_A, "a", 13, 13, 13) == PRODUCER_ADMIT); /* no gap for A */
    CHECK(hello(table, PRINCIPAL_A, "a") == 13);
    CHECK(hello(table, PRINCIPAL_A, "ab") == 0); /* a longer id is another producer */
    char long_id[RECORD_PRODUCER_ID_BYTES_MAX + 1];
    memset(long_id, 'z', RECORD_PRODUCER_ID_BYTES_MAX);
    long_id[RECORD_PRODUCER_ID_BYTES_MAX] = '\0';
    CHECK(connection(table, PRINCIPAL_A, long_id, 1, 99, 99) == PRODUCER_ADMIT);
    long_id[63] = 'y';
    CHECK(hello(table, PRINCIPAL_A, long_id) == 0);
    long_id[63] = 'z';
    CHECK(hello(table, PRINCIPAL_A, long_id) == 99);
    producer_table_destroy(table);
}

static void test_bound(void) {
    struct producer_table *table = NULL;
    REQUIRE(producer_table_create(16, &table) == 0);
    CHECK(connection(table, PRINCIPAL_A, "bounded", 1, 1000, 1000) == PRODUCER_ADMIT);
    struct record_origin origin = origin_as(PRINCIPAL_A, "bounded");
    struct producer_entry *entry = producer_table_acquire(table, &origin, true);
    uint64_t known = 0;
    CHECK(producer_table_first(table, entry, 1000 + PRODUCER_SEQUENCE_LEAD_MAX + 1, &known) ==
          PRODUCER_AHEAD);
    CHECK(known == 1000);
    producer_table_release(table, entry, 0, 0);
    /* The attack: 10^18 on a known producer. */
    CHECK(connection(table, PRINCIPAL_A, "bounded", 1000000000000000000ull, 1000000000000000000ull,
                     0) == PRODUCER_AHEAD);
    CHECK(hello(table, PRINCIPAL_A, "bounded") == 1000);
    /* Exactly W ahead is admitted (and skips W - 1 sequences: a gap). */
    CHECK(connection(table, PRINCIPAL_A, "bounded", 1000 + PRODUCER_SEQUENCE_LEAD_MAX,
                     1000 + PRODUCER_SEQUENCE_LEAD_MAX, 0) == PRODUCER_ADMIT);
    CHECK(in_gap(table, PRINCIPAL_A, "bounded", 1001));
    /* An unknown producer has no bound: nothing is known to run ahead of. */
    CHECK(connection(table, PRINCIPAL_A, "fresh", 1ull << 40, 1ull << 40, 1ull << 40) ==
          PRODUCER_ADMIT);
    producer_table_destroy(table);
}

static void test_gaps(void) {
    struct producer_table *table = NULL;
    REQUIRE(producer_table_create(16, &table) == 0);
    /* The case c: 1, 2, 3, then a connection starting at 10, then 4..9. */
    CHECK(connection(table, PRINCIPAL_A, "p", 1, 3, 3) == PRODUCER_ADMIT);
    CHECK(connection(table, PRINCIPAL_A, "p", 10, 10, 10) == PRODUCER_ADMIT);
    CHECK(hello(table, PRINCIPAL_A, "p") == 3); /* below the gap, though 10 was committed */
    for (uint64_t sequence = 4; sequence <= 9; sequence++)
        CHECK(in_gap(table, PRINCIPAL_A, "p", sequence));
    CHECK(!in_gap(table, PRINCIPAL_A, "p", 3) && !in_gap(table, PRINCIPAL_A, "p", 10));
    /* A connection that sent 4..9 (gap fills) and had them committed closes the gap. */
    CHECK(connection(table, PRINCIPAL_A, "p", 4, 9, 9) == PRODUCER_ADMIT_GAP_FILL);
    CHECK(!in_gap(table, PRINCIPAL_A, "p", 6));
    CHECK(hello(table, PRINCIPAL_A, "p") == 10);
    /* A live connection at the front, overtaken by another's jump: its next records are gap
     * fills until it reaches the jumper's. */
    struct record_origin origin = origin_as(PRINCIPAL_A, "p");
    struct producer_entry *front = producer_table_acquire(table, &origin, true);
    uint64_t known = 0;
    CHECK(producer_table_first(table, front, 11, &known) == PRODUCER_ADMIT);
    CHECK(producer_table_next(table, front, 12) == PRODUCER_ADMIT);
    CHECK(connection(table, PRINCIPAL_A, "p", 20, 21, 0) == PRODUCER_ADMIT);
    for (uint64_t sequence = 13; sequence <= 19; sequence++)
        CHECK(producer_table_next(table, front, sequence) == PRODUCER_ADMIT_GAP_FILL);
    CHECK(producer_table_next(table, front, 20) == PRODUCER_ADMIT);
    CHECK(producer_table_next(table, front, 21) == PRODUCER_ADMIT);
    CHECK(producer_table_next(table, front, 22) == PRODUCER_ADMIT);
    /* Committed up to 17: 13..17 leave the gap, 18..19 stay. */
    producer_table_release(table, front, 11, 17);
    CHECK(!in_gap(table, PRINCIPAL_A, "p", 15) && in_gap(table, PRINCIPAL_A, "p", 18));
    CHECK(hello(table, PRINCIPAL_A, "p") == 17);
    /* Six more jumps over a producer with room for four gaps: merged, never dropped. */
    uint64_t start = 100;
    for (int jump = 0; jump < 6; jump++, start += 10)
        CHECK(connection(table, PRINCIPAL_A, "p", start, start, 0) == PRODUCER_ADMIT);
    uint64_t acknowledged = 0, seen = 0;
    uint32_t gap_count = 0;
    CHECK(producer_table_inspect(table, &origin, &acknowledged, &seen, &gap_count));
    CHECK(gap_count == PRODUCER_GAPS_MAX && seen == 150);
    for (uint64_t sequence = 23; sequence < 150; sequence++)
        if (sequence % 10 != 0) CHECK(in_gap(table, PRINCIPAL_A, "p", sequence));
    CHECK(in_gap(table, PRINCIPAL_A, "p", 18));
    struct producer_table_stats stats;
    producer_table_stats(table, &stats);
    CHECK(stats.gap_merges > 0);
    producer_table_destroy(table);
}

static void test_unknown(void) {
    struct producer_table *table = NULL;
    REQUIRE(producer_table_create(16, &table) == 0);
    /* Unknown (a restart, or forgotten): everything below its first record may or may not have
     * been written: a gap, so nothing there is ever answered as a duplicate. */
    CHECK(connection(table, PRINCIPAL_A, "late", 500, 510, 510) == PRODUCER_ADMIT);
    CHECK(in_gap(table, PRINCIPAL_A, "late", 1) && in_gap(table, PRINCIPAL_A, "late", 499));
    CHECK(hello(table, PRINCIPAL_A, "late") == 0);
    /* Seeded from a deduplication table file, it is known: no gap, the bound applies. */
    struct record_origin origin = origin_as(PRINCIPAL_A, "seeded");
    CHECK(producer_table_seed(table, &origin, 500, true));
    CHECK(connection(table, PRINCIPAL_A, "seeded", 501, 510, 510) == PRODUCER_ADMIT);
    CHECK(!in_gap(table, PRINCIPAL_A, "seeded", 499));
    CHECK(hello(table, PRINCIPAL_A, "seeded") == 510);
    CHECK(connection(table, PRINCIPAL_A, "seeded", 510 + PRODUCER_SEQUENCE_LEAD_MAX + 1,
                     510 + PRODUCER_SEQUENCE_LEAD_MAX + 1, 0) == PRODUCER_AHEAD);
    producer_table_destroy(table);
}

static void test_segments(void) {
    enum { CAPACITY = 16 };
    struct producer_table *table = NULL;
    REQUIRE(producer_table_create(CAPACITY, &table) == 0);
    char id[32];
    /* Eight established producers: two committing connections each. */
    for (int round = 0; round < 2; round++)
        for (int producer = 0; producer < 8; producer++) {
            snprintf(id, sizeof(id), "real-%d", producer);
            CHECK(connection(table, PRINCIPAL_A, id, round * 10 + 1, round * 10 + 10,
                             round * 10 + 10) == PRODUCER_ADMIT);
        }
    /* One more, pinned by a live connection that has committed nothing. */
    struct record_origin live = origin_as(PRINCIPAL_A, "live");
    struct producer_entry *pinned = producer_table_acquire(table, &live, true);
    REQUIRE(pinned != NULL);
    /* The flood: 1,100 made-up ids, one record each. */
    for (int made_up = 0; made_up < 1100; made_up++) {
        snprintf(id, sizeof(id), "made-up-%d", made_up);
        CHECK(connection(table, PRINCIPAL_A, id, 1, 1, 1) == PRODUCER_ADMIT);
    }
    int kept = 0;
    for (int producer = 0; producer < 8; producer++) {
        snprintf(id, sizeof(id), "real-%d", producer);
        kept += hello(table, PRINCIPAL_A, id) == 20;
    }
    struct producer_table_stats stats;
    producer_table_stats(table, &stats);
    printf("segments: %d of 8 established producers kept through 1,100 made-up ids "
           "(%llu evictions)\n",
           kept, (unsigned long long)stats.evictions);
    CHECK(kept == 8);
    CHECK(stats.protected_count == 8 && stats.pinned == 1);
    CHECK(producer_table_acquire(table, &live, true) == pinned); /* still there, now twice pinned */
    producer_table_release(table, pinned, 0, 0);
    producer_table_release(table, pinned, 0, 0);
    producer_table_destroy(table);
    /* Every entry pinned: a new producer is refused. */
    REQUIRE(producer_table_create(2, &table) == 0);
    struct record_origin one = origin_as(PRINCIPAL_A, "one"), two = origin_as(PRINCIPAL_A, "two");
    struct record_origin three = origin_as(PRINCIPAL_A, "three");
    struct producer_entry *first = producer_table_acquire(table, &one, true);
    struct producer_entry *second = producer_table_acquire(table, &two, true);
    CHECK(first != NULL && second != NULL);
    CHECK(producer_table_acquire(table, &three, true) == NULL);
    producer_table_release(table, first, 0, 0);
    struct producer_entry *third = producer_table_acquire(table, &three, true);
    CHECK(third != NULL);
    producer_table_stats(table, &stats);
    CHECK(stats.refusals == 1 && stats.evictions == 1);
    producer_table_release(table, second, 0, 0);
    producer_table_release(table, third, 0, 0);
    producer_table_destroy(table);
}

/* --- concurrent: a producer streamed at the front while another thread jumps ahead of it --- */

enum { STREAM_RECORDS = 200000, JUMPS = 3, JUMP_RECORDS = 5, JUMP_AHEAD = 20000 };

struct race {
    struct producer_table *table;
    uint8_t verdict[STREAM_RECORDS + 2]; /* the streamer's verdict per sequence */
    uint64_t jumped_first[JUMPS];        /* the jumper's first records */
    _Atomic uint64_t streamed;           /* the streamer's last sequence */
    _Atomic int jumps_started;           /* the jumper is about to jump this many times */
    _Atomic uint32_t thread_errors;      /* unexpected answers seen by the threads */
};

/* The threads count what went wrong here and the main thread checks it after the join: the
 * harness's counters are not for other threads. */
static void *streamer_main(void *argument) {
    struct race *race = argument;
    struct record_origin origin = origin_as(PRINCIPAL_A, "raced");
    struct producer_entry *entry = producer_table_acquire(race->table, &origin, true);
    if (entry == NULL) {
        atomic_fetch_add(&race->thread_errors, 1);
        return NULL;
    }
    uint64_t known = 0;
    race->verdict[1] = (uint8_t)producer_table_first(race->table, entry, 1, &known);
    for (uint64_t sequence = 2; sequence <= STREAM_RECORDS; sequence++) {
        race->verdict[sequence] = (uint8_t)producer_table_next(race->table, entry, sequence);
        atomic_store_explicit(&race->streamed, sequence, memory_order_release);
        /* At each checkpoint, wait until the jumper starts its jump (it then races us). */
        int checkpoint = (int)(sequence * (JUMPS + 2) / STREAM_RECORDS);
        if (sequence % (STREAM_RECORDS / (JUMPS + 2)) == 0 && checkpoint <= JUMPS)
            while (atomic_load_explicit(&race->jumps_started, memory_order_acquire) < checkpoint) {}
    }
    producer_table_release(race->table, entry, 1, 0);
    return NULL;
}

static void *jumper_main(void *argument) {
    struct race *race = argument;
    struct record_origin origin = origin_as(PRINCIPAL_A, "raced");
    for (int jump = 0; jump < JUMPS; jump++) {
        /* Wait until the streamer is well on, then jump a little ahead of it. */
        uint64_t wanted = (uint64_t)(jump + 1) * STREAM_RECORDS / (JUMPS + 2);
        while (atomic_load_explicit(&race->streamed, memory_order_acquire) < wanted) {}
        uint64_t first = atomic_load_explicit(&race->streamed, memory_order_acquire) + JUMP_AHEAD;
        atomic_store_explicit(&race->jumps_started, jump + 1, memory_order_release);
        race->jumped_first[jump] = first;
        struct producer_entry *entry = producer_table_acquire(race->table, &origin, true);
        uint64_t known = 0;
        if (entry == NULL ||
            producer_table_first(race->table, entry, first, &known) != PRODUCER_ADMIT) {
            atomic_fetch_add(&race->thread_errors, 1);
            if (entry != NULL) producer_table_release(race->table, entry, 0, 0);
            continue;
        }
        for (uint64_t sequence = first + 1; sequence < first + JUMP_RECORDS; sequence++)
            if (producer_table_next(race->table, entry, sequence) != PRODUCER_ADMIT)
                atomic_fetch_add(&race->thread_errors, 1);
        producer_table_release(race->table, entry, first, 0);
    }
    return NULL;
}

static void test_concurrent(void) {
    static struct race race;
    memset(&race, 0, sizeof(race));
    REQUIRE(producer_table_create(8, &race.table) == 0);
    pthread_t streamer, jumper;
    REQUIRE(pthread_create(&streamer, NULL, streamer_main, &race) == 0);
    REQUIRE(pthread_create(&jumper, NULL, jumper_main, &race) == 0);
    pthread_join(streamer, NULL);
    pthread_join(jumper, NULL);
    CHECK(atomic_load(&race.thread_errors) == 0);
    uint32_t fills = 0, mismatches = 0;
    for (uint64_t sequence = 1; sequence <= STREAM_RECORDS; sequence++) {
        bool jumper_sent = false;
        for (int jump = 0; jump < JUMPS; jump++)
            jumper_sent |= sequence >= race.jumped_first[jump] &&
                           sequence < race.jumped_first[jump] + JUMP_RECORDS;
        bool gap = in_gap(race.table, PRINCIPAL_A, "raced", sequence);
        bool filled = race.verdict[sequence] == PRODUCER_ADMIT_GAP_FILL;
        fills += filled;
        /* In a gap exactly when the streamer was told so: then neither had sent it. */
        if (gap != filled || (gap && jumper_sent)) mismatches++;
    }
    printf("concurrent: %u gap fills of %d streamed records around %d jumps, %u mismatches\n",
           fills, STREAM_RECORDS, JUMPS, mismatches);
    CHECK(mismatches == 0);
    CHECK(fills > 0);
    producer_table_destroy(race.table);
}

int main(void) {
    struct keyed_hash_key key;
    REQUIRE(keyed_hash_key_random(&key) == 0);
    REQUIRE(keyed_hasher_init(&hasher, &key) == 0);
    test_basics();
    test_bound();
    test_gaps();
    test_unknown();
    test_segments();
    test_concurrent();
    keyed_hasher_free(&hasher);
    return test_finish();
}
