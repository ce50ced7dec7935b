/*
 * test_producer_table.c: the producers' acknowledged watermarks (producer_table.h).
 *
 * Single-threaded: unknown producers read 0; a fold keeps the maximum and a fold of 0 changes
 * nothing; ids that differ only in length or in one byte are distinct; when full, the least
 * recently *folded* producer is the one forgotten (a lookup does not refresh it); a table of
 * capacity 1; a churn of many producers through a small table checked against a model.
 * Concurrent: THREADS threads fold increasing levels for shared and private producers while
 * looking them up; afterwards each producer holds exactly the maximum folded for it (run under
 * ThreadSanitizer by scripts/test).
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "harness.h"
#include "producer_table.h"

#define THREADS          4
#define FOLDS_PER_THREAD 20000
#define SHARED_IDS       8

static uint64_t lookup_text(struct producer_table *table, const char *id) {
    return producer_table_lookup(table, (const uint8_t *)id, (uint32_t)strlen(id));
}

static void fold_text(struct producer_table *table, const char *id, uint64_t level) {
    producer_table_fold(table, (const uint8_t *)id, (uint32_t)strlen(id), level);
}

static void test_basics(void) {
    struct producer_table *table = NULL;
    CHECK(producer_table_create(0, &table) == -EINVAL && table == NULL);
    CHECK(producer_table_create(PRODUCER_TABLE_CAPACITY_MAX + 1, &table) == -EINVAL);
    REQUIRE(producer_table_create(3, &table) == 0);
    CHECK(lookup_text(table, "a") == 0);
    fold_text(table, "a", 10);
    CHECK(lookup_text(table, "a") == 10);
    fold_text(table, "a", 7); /* never lowered */
    CHECK(lookup_text(table, "a") == 10);
    fold_text(table, "a", 0); /* nothing committed: no change */
    fold_text(table, "b", 0); /* and no entry */
    struct producer_table_stats stats;
    producer_table_stats(table, &stats);
    CHECK(stats.producers == 1 && stats.evictions == 0);
    fold_text(table, "ab", 3); /* a longer id is another producer */
    fold_text(table, "b", 4);
    CHECK(lookup_text(table, "a") == 10 && lookup_text(table, "ab") == 3);
    CHECK(lookup_text(table, "b") == 4);
    /* 64 bytes: the most an id has; ids differing in the last byte are distinct. */
    uint8_t long_id[RECORD_PRODUCER_ID_BYTES_MAX];
    memset(long_id, 'z', sizeof(long_id));
    producer_table_fold(table, long_id, sizeof(long_id), 99); /* full: evicts "a" */
    long_id[63] = 'y';
    CHECK(producer_table_lookup(table, long_id, sizeof(long_id)) == 0);
    long_id[63] = 'z';
    CHECK(producer_table_lookup(table, long_id, sizeof(long_id)) == 99);
    CHECK(lookup_text(table, "a") == 0);
    producer_table_stats(table, &stats);
    CHECK(stats.producers == 3 && stats.evictions == 1);
    /* Recency is by fold, not by lookup: "ab" was folded before "b", so it goes next even
     * though it was just looked up; folding "b" again makes "ab" the oldest still. */
    CHECK(lookup_text(table, "ab") == 3);
    fold_text(table, "b", 5);
    fold_text(table, "c", 1);
    CHECK(lookup_text(table, "ab") == 0);
    CHECK(lookup_text(table, "b") == 5 && lookup_text(table, "c") == 1);
    producer_table_destroy(table);

    REQUIRE(producer_table_create(1, &table) == 0);
    fold_text(table, "one", 1);
    fold_text(table, "two", 2);
    CHECK(lookup_text(table, "one") == 0 && lookup_text(table, "two") == 2);
    producer_table_destroy(table);
}

/* Many producers through a table of 50 (chains, evictions, reuse of entries) against a model:
 * an array of every id's level and the order of folds. */
static void test_churn(void) {
    enum { CAPACITY = 50, IDS = 400, STEPS = 20000 };
    static uint64_t model_level[IDS];
    static uint64_t model_folded_at[IDS]; /* step of the last fold; 0 never */
    struct producer_table *table = NULL;
    REQUIRE(producer_table_create(CAPACITY, &table) == 0);
    uint64_t state = 0x9e3779b97f4a7c15ull;
    int mismatches = 0;
    for (uint64_t step = 1; step <= STEPS; step++) {
        state ^= state << 13, state ^= state >> 7, state ^= state << 17;
        uint32_t id = (uint32_t)(state % IDS);
        char text[16];
        snprintf(text, sizeof(text), "id-%u", id);
        if ((state >> 32) % 3 == 0) {
            /* Kept: among the CAPACITY most recently folded ids. */
            uint32_t newer = 0;
            for (uint32_t other = 0; other < IDS; other++)
                if (model_folded_at[other] > model_folded_at[id]) newer++;
            uint64_t expected = model_folded_at[id] != 0 && newer < CAPACITY ? model_level[id] : 0;
            if (lookup_text(table, text) != expected) mismatches++;
            continue;
        }
        uint64_t level = (state >> 40) % 1000 + 1;
        uint32_t newer = 0;
        for (uint32_t other = 0; other < IDS; other++)
            if (model_folded_at[other] > model_folded_at[id]) newer++;
        bool remembered = model_folded_at[id] != 0 && newer < CAPACITY;
        model_level[id] = remembered && model_level[id] > level ? model_level[id] : level;
        model_folded_at[id] = step;
        fold_text(table, text, level);
    }
    CHECK(mismatches == 0);
    struct producer_table_stats stats;
    producer_table_stats(table, &stats);
    CHECK(stats.producers == CAPACITY);
    CHECK(stats.evictions > 0);
    printf("churn: %d steps over %d ids in %d entries, %llu evictions, %d mismatches\n", STEPS, IDS,
           CAPACITY, (unsigned long long)stats.evictions, mismatches);
    producer_table_destroy(table);
}

struct folder {
    pthread_t thread;
    struct producer_table *table;
    uint32_t index;
};

static void *folder_main(void *argument) {
    struct folder *folder = argument;
    char shared[16], own[16];
    snprintf(own, sizeof(own), "own-%u", folder->index);
    for (uint64_t fold = 1; fold <= FOLDS_PER_THREAD; fold++) {
        snprintf(shared, sizeof(shared), "shared-%u", (unsigned)(fold % SHARED_IDS));
        /* Thread t folds levels ending in t for shared ids: the maximum is known. */
        fold_text(folder->table, shared, fold * THREADS + folder->index);
        fold_text(folder->table, own, fold);
        (void)lookup_text(folder->table, shared);
    }
    return NULL;
}

static void test_concurrent(void) {
    struct producer_table *table = NULL;
    REQUIRE(producer_table_create(SHARED_IDS + THREADS, &table) == 0);
    struct folder folders[THREADS];
    for (uint32_t index = 0; index < THREADS; index++) {
        folders[index] = (struct folder){.table = table, .index = index};
        REQUIRE(pthread_create(&folders[index].thread, NULL, folder_main, &folders[index]) == 0);
    }
    for (uint32_t index = 0; index < THREADS; index++) pthread_join(folders[index].thread, NULL);
    for (uint32_t id = 0; id < SHARED_IDS; id++) {
        char shared[16];
        snprintf(shared, sizeof(shared), "shared-%u", id);
        /* The last fold of id is at fold = FOLDS_PER_THREAD - ((FOLDS_PER_THREAD - id) %
         * SHARED_IDS), and thread THREADS-1 folded the largest level for it. */
        uint64_t last = FOLDS_PER_THREAD - ((FOLDS_PER_THREAD - id) % SHARED_IDS);
        CHECK(lookup_text(table, shared) == last * THREADS + THREADS - 1);
    }
    for (uint32_t index = 0; index < THREADS; index++) {
        char own[16];
        snprintf(own, sizeof(own), "own-%u", index);
        CHECK(lookup_text(table, own) == FOLDS_PER_THREAD);
    }
    struct producer_table_stats stats;
    producer_table_stats(table, &stats);
    CHECK(stats.producers == SHARED_IDS + THREADS && stats.evictions == 0);
    producer_table_destroy(table);
}

int main(void) {
    test_basics();
    test_churn();
    test_concurrent();
    return test_finish();
}
