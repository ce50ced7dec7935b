/*
 * test_topic_table.c: the topic table under concurrent creators, its limit, and split views.
 *
 * THREADS threads intern overlapping, differently shuffled sets of names from a universe larger
 * than topics_max, several rounds over fresh tables, so creators race on the same names and on
 * the last free id. Afterwards: every name has at most one id across threads, ids are exactly
 * 0..topics_max-1, the limit holds exactly, and a name that got an id was never refused.
 */
#include <pthread.h>
#include <string.h>

#include "harness.h"
#include "record.h"
#include "topic_table.h"

#define THREADS        4
#define TOPICS_MAX     200
#define NAME_UNIVERSE  260
#define ROUNDS         200
#define NAME_BYTES_MAX 32
#define RESULT_FULL    UINT32_MAX

struct name_set {
    char names[NAME_UNIVERSE][NAME_BYTES_MAX];
    uint32_t lengths[NAME_UNIVERSE];
};

struct creator {
    pthread_t thread;
    struct topic_table *table;
    const struct name_set *set;
    uint64_t seed;
    uint32_t results[NAME_UNIVERSE]; /* id, or RESULT_FULL */
    uint32_t created_count;
    uint32_t inconsistent; /* a second intern of a name disagreed with the first */
};

/* Interns the name as a view split into three slices at the given cuts, inside a larger buffer
 * (a prefix before the name, as in a real record). */
static enum topic_table_result intern_split(struct topic_table *table, const char *name,
                                            uint32_t length, uint32_t cut_a, uint32_t cut_b,
                                            uint32_t *topic_id) {
    uint8_t buffer[8 + NAME_BYTES_MAX];
    memcpy(buffer, "\x0a\x07prefix", 8);
    memcpy(buffer + 8, name, length);
    uint32_t first = 8 + cut_a;
    uint32_t second = 8 + cut_b;
    struct slice slices[3] = {
        {buffer, first, 0},
        {buffer + first, second - first, 1},
        {buffer + second, 8 + length - second, 2},
    };
    struct record_view view = {slices, 3, 8 + length};
    return topic_table_intern_view(table, &view, 8, length, topic_id);
}

static void *creator_run(void *argument) {
    struct creator *creator = argument;
    uint32_t order[NAME_UNIVERSE];
    for (uint32_t index = 0; index < NAME_UNIVERSE; index++) order[index] = index;
    for (uint32_t index = NAME_UNIVERSE - 1; index > 0; index--) {
        uint32_t other = (uint32_t)(test_random_next(&creator->seed) % (index + 1));
        uint32_t swap = order[index];
        order[index] = order[other];
        order[other] = swap;
    }
    for (uint32_t position = 0; position < NAME_UNIVERSE; position++) {
        uint32_t name = order[position];
        uint32_t length = creator->set->lengths[name];
        uint32_t id = RESULT_FULL;
        enum topic_table_result result;
        /* Alternate plain names and split views so both paths race. */
        if (position % 2 == 0)
            result =
                topic_table_intern_name(creator->table, creator->set->names[name], length, &id);
        else
            result = intern_split(creator->table, creator->set->names[name], length, length / 3,
                                  2 * length / 3, &id);
        if (result == TOPIC_TABLE_FULL) id = RESULT_FULL;
        if (result == TOPIC_TABLE_CREATED) creator->created_count++;
        creator->results[name] = id;
        /* Looking it up again must agree (a second lookup can never create it). */
        uint32_t again = RESULT_FULL;
        enum topic_table_result second =
            topic_table_intern_name(creator->table, creator->set->names[name], length, &again);
        if (second == TOPIC_TABLE_CREATED) creator->inconsistent++;
        if (second == TOPIC_TABLE_FULL) again = RESULT_FULL;
        if (again != id) creator->inconsistent++;
    }
    return NULL;
}

/* Checks one round's results against each other and against the table. */
static void check_round(struct topic_table *table, struct creator *creators) {
    uint32_t created_total = 0;
    uint32_t id_owner[TOPICS_MAX];
    for (uint32_t id = 0; id < TOPICS_MAX; id++) id_owner[id] = UINT32_MAX;
    for (uint32_t thread = 0; thread < THREADS; thread++) {
        created_total += creators[thread].created_count;
        CHECK(creators[thread].inconsistent == 0);
    }
    CHECK(created_total == TOPICS_MAX);
    CHECK(topic_table_count(table) == TOPICS_MAX);
    for (uint32_t name = 0; name < NAME_UNIVERSE; name++) {
        uint32_t id = creators[0].results[name];
        /* Every thread saw the same answer: one id, or refused everywhere. */
        for (uint32_t thread = 1; thread < THREADS; thread++)
            CHECK(creators[thread].results[name] == id);
        if (id == RESULT_FULL) continue;
        CHECK(id < TOPICS_MAX);
        if (id >= TOPICS_MAX) continue;
        CHECK(id_owner[id] == UINT32_MAX); /* no two names share an id */
        id_owner[id] = name;
    }
    /* Dense: every id 0..TOPICS_MAX-1 belongs to a name, and its entry says so. */
    for (uint32_t id = 0; id < TOPICS_MAX; id++) {
        CHECK(id_owner[id] != UINT32_MAX);
        const struct topic_entry *entry = topic_table_entry(table, id);
        CHECK(entry != NULL);
        if (entry == NULL || id_owner[id] == UINT32_MAX) continue;
        CHECK(entry->id == id);
        CHECK(strcmp(entry->name, creators[0].set->names[id_owner[id]]) == 0);
    }
    CHECK(topic_table_entry(table, TOPICS_MAX) == NULL);
}

static void test_concurrent_creators(const struct name_set *set) {
    static struct creator creators[THREADS];
    for (uint32_t round = 0; round < ROUNDS; round++) {
        struct topic_table table;
        REQUIRE(topic_table_init(&table, TOPICS_MAX) == 0);
        memset(creators, 0, sizeof(creators));
        for (uint32_t thread = 0; thread < THREADS; thread++) {
            creators[thread].table = &table;
            creators[thread].set = set;
            creators[thread].seed = 0x9e3779b97f4a7c15ull * (round * THREADS + thread + 1);
            REQUIRE(pthread_create(&creators[thread].thread, NULL, creator_run,
                                   &creators[thread]) == 0);
        }
        for (uint32_t thread = 0; thread < THREADS; thread++)
            REQUIRE(pthread_join(creators[thread].thread, NULL) == 0);
        check_round(&table, creators);
        topic_table_destroy(&table);
    }
}

/* Every way of cutting a name into three slices finds the same topic. */
static void test_split_views(void) {
    struct topic_table table;
    REQUIRE(topic_table_init(&table, 4) == 0);
    const char *name = "orders.eu-west.v2";
    uint32_t length = (uint32_t)strlen(name);
    uint32_t id = UINT32_MAX;
    CHECK(topic_table_intern_name(&table, name, length, &id) == TOPIC_TABLE_CREATED);
    CHECK(id == 0);
    for (uint32_t cut_a = 0; cut_a <= length; cut_a++) {
        for (uint32_t cut_b = cut_a; cut_b <= length; cut_b++) {
            uint32_t found = UINT32_MAX;
            CHECK(intern_split(&table, name, length, cut_a, cut_b, &found) == TOPIC_TABLE_FOUND);
            CHECK(found == 0);
        }
    }
    /* A prefix of a known name, and the name plus a byte, are different topics. */
    CHECK(topic_table_intern_name(&table, name, length - 1, &id) == TOPIC_TABLE_CREATED);
    CHECK(id == 1);
    CHECK(topic_table_intern_name(&table, "orders.eu-west.v2x", length + 1, &id) ==
          TOPIC_TABLE_CREATED);
    CHECK(id == 2);
    CHECK(topic_table_intern_name(&table, "a", 1, &id) == TOPIC_TABLE_CREATED);
    CHECK(id == 3);
    /* The limit is exact: the fifth name is refused, known names are still found. */
    CHECK(topic_table_intern_name(&table, "b", 1, &id) == TOPIC_TABLE_FULL);
    CHECK(topic_table_intern_name(&table, "a", 1, &id) == TOPIC_TABLE_FOUND);
    CHECK(id == 3);
    CHECK(topic_table_count(&table) == 4);
    const struct topic_entry *entry = topic_table_entry(&table, 1);
    CHECK(entry != NULL && entry->name_length == length - 1);
    CHECK(entry != NULL && strcmp(entry->name, "orders.eu-west.v") == 0);
    topic_table_destroy(&table);
}

/* The longest name (255 bytes) round-trips; the FNV-1a hash is exercised across slices. */
static void test_longest_name(void) {
    struct topic_table table;
    REQUIRE(topic_table_init(&table, 1) == 0);
    char name[RECORD_TOPIC_BYTES_MAX];
    memset(name, 'x', sizeof(name));
    uint32_t id = UINT32_MAX;
    CHECK(topic_table_intern_name(&table, name, sizeof(name), &id) == TOPIC_TABLE_CREATED);
    const struct topic_entry *entry = topic_table_entry(&table, 0);
    CHECK(entry != NULL && entry->name_length == RECORD_TOPIC_BYTES_MAX);
    CHECK(entry != NULL && entry->name[RECORD_TOPIC_BYTES_MAX] == '\0');
    CHECK(topic_table_intern_name(&table, "a", 1, &id) == TOPIC_TABLE_FULL);
    topic_table_destroy(&table);
}

/* The stored hash is FNV-1a 64 (it must agree with record_view_hash): published test vectors. */
static void test_hash_is_fnv1a(void) {
    struct topic_table table;
    REQUIRE(topic_table_init(&table, 2) == 0);
    uint32_t id = UINT32_MAX;
    CHECK(topic_table_intern_name(&table, "a", 1, &id) == TOPIC_TABLE_CREATED);
    const struct topic_entry *entry = topic_table_entry(&table, id);
    CHECK(entry != NULL && entry->hash == 0xaf63dc4c8601ec8cull);
    CHECK(intern_split(&table, "foobar", 6, 1, 4, &id) == TOPIC_TABLE_CREATED);
    entry = topic_table_entry(&table, id);
    CHECK(entry != NULL && entry->hash == 0x85944171f73967e8ull);
    topic_table_destroy(&table);
}

int main(void) {
    static struct name_set set;
    for (uint32_t name = 0; name < NAME_UNIVERSE; name++) {
        int written = snprintf(set.names[name], NAME_BYTES_MAX, "topic-%u.events", name);
        REQUIRE(written > 0 && written < NAME_BYTES_MAX);
        set.lengths[name] = (uint32_t)written;
    }
    test_split_views();
    test_longest_name();
    test_hash_is_fnv1a();
    test_concurrent_creators(&set);
    return test_finish();
}
