/*
 * test_dedupe_table.c: the per-topic deduplication table (src/delivery/dedupe_table.h) against a
 * real shared-memory log under /dev/shm, driven the way a worker drives it (check, append,
 * appended, publish, batch_end).
 *
 *   rule:       at or below the highest committed is a duplicate; gaps are allowed; a repeat
 *               inside one batch is a duplicate; a failed publish forgets the batch.
 *   straddle:   a producer_id split over several slices finds the same producer.
 *   producers:  two producers on one topic never suppress each other.
 *   eviction:   a full table evicts the least recently committed; a producer that comes back
 *               is appended as new and counted unremembered.
 *   crash:      the log published but the table not updated (a SIGKILL between the two): the
 *               reopened table re-applies the log and still knows the last sequence.
 *   damage:     a corrupted file is moved aside and rebuilt from the log.
 *   lap:        records the table never covered were overwritten: entries in the file survive.
 *   resize:     reopened with a smaller capacity, the most recently committed producers stay.
 *   churn:      many producers through a small table: the index stays whole.
 *   last:       the last-producer cache: alternating producers, ids that differ in their last
 *               or first byte or are a prefix, the cached producer evicted and returning,
 *               ids straddling slices.
 */
#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dedupe_table.h"
#include "harness.h"
#include "intake/shm_log_format.h"
#include "shm_log.h"
#include "shm_test_util.h"

#define TOPIC "dedupe-topic"

static uint8_t encoded[512];

/* An intake.v1.Record: topic (1), value (3), sequence (5), producer_id (7) when id is set. */
static uint32_t record_encode(const char *id, uint64_t sequence, const char *value) {
    uint32_t length = 0;
    encoded[length++] = 0x0a;
    encoded[length++] = (uint8_t)strlen(TOPIC);
    memcpy(encoded + length, TOPIC, strlen(TOPIC));
    length += (uint32_t)strlen(TOPIC);
    encoded[length++] = 0x1a;
    encoded[length++] = (uint8_t)strlen(value);
    memcpy(encoded + length, value, strlen(value));
    length += (uint32_t)strlen(value);
    if (sequence != 0) {
        encoded[length++] = 0x28;
        uint64_t rest = sequence;
        while (rest >= 0x80) {
            encoded[length++] = (uint8_t)(rest | 0x80);
            rest >>= 7;
        }
        encoded[length++] = (uint8_t)rest;
    }
    if (id != NULL) {
        encoded[length++] = 0x3a;
        encoded[length++] = (uint8_t)strlen(id);
        memcpy(encoded + length, id, strlen(id));
        length += (uint32_t)strlen(id);
    }
    return length;
}

static struct shm_log *log_open(uint64_t capacity) {
    struct shm_log_config config = {.directory = test_directory,
                                    .topic = TOPIC,
                                    .capacity_bytes = capacity,
                                    .retention = SHM_LOG_RETENTION_OVERWRITE,
                                    .consumer_stale_ns = 1000000000ull};
    struct shm_log *log = NULL;
    char why[512];
    int result = shm_log_open_writer(&config, &log, why, sizeof(why));
    if (result != 0) fprintf(stderr, "open log: %s\n", why);
    REQUIRE(result == 0);
    return log;
}

static struct dedupe_table *table_open(struct shm_log *log, uint32_t producers_max) {
    struct dedupe_table *table = NULL;
    char why[512];
    int result =
        dedupe_table_open(test_directory, TOPIC, producers_max, log, &table, why, sizeof(why));
    if (result != 0) fprintf(stderr, "open table: %s\n", why);
    REQUIRE(result == 0);
    return table;
}

/* One record the way a worker handles it, from one contiguous slice; no publish. Returns
 * whether it was appended (false: a duplicate). */
static bool deliver(struct shm_log *log, struct dedupe_table *table, const char *id,
                    uint64_t sequence) {
    uint32_t length = record_encode(id, sequence, "payload");
    struct slice slice = {.bytes = encoded, .length = length, .unit = 0};
    struct record_view view = {&slice, 1, length};
    uint32_t entry = DEDUPE_ENTRY_NONE;
    if (id != NULL) {
        /* The id is the last field: its bytes end the record. */
        uint32_t id_length = (uint32_t)strlen(id);
        if (dedupe_table_check(table, &view, length - id_length, id_length, sequence, &entry) ==
            DEDUPE_DUPLICATE)
            return false;
    }
    uint64_t offset = 0;
    REQUIRE(shm_log_append(log, &slice, 1, length, sequence, 0, &offset) == SHM_LOG_APPENDED);
    if (id != NULL) dedupe_table_appended(table, entry, sequence, offset);
    return true;
}

/* A record appended with no table looking (the daemon's table is stale from here). */
static void append_only(struct shm_log *log, const char *id, uint64_t sequence) {
    uint32_t length = record_encode(id, sequence, "payload");
    struct slice slice = {.bytes = encoded, .length = length, .unit = 0};
    uint64_t offset = 0;
    REQUIRE(shm_log_append(log, &slice, 1, length, sequence, 0, &offset) == SHM_LOG_APPENDED);
}

static void publish(struct shm_log *log, struct dedupe_table *table) {
    bool published = shm_log_publish(log);
    REQUIRE(published);
    dedupe_table_batch_end(table, true, shm_log_next_offset(log));
}

static uint64_t highest(const struct dedupe_table *table, const char *id) {
    return dedupe_table_highest(table, (const uint8_t *)id, (uint32_t)strlen(id));
}

static void remove_topic_files(void) {
    char path[512];
    snprintf(path, sizeof(path), "rm -f %s/*", test_directory);
    CHECK(system(path) == 0);
}

static void test_rule(void) {
    struct shm_log *log = log_open(1u << 16);
    struct dedupe_table *table = table_open(log, 16);
    CHECK(deliver(log, table, "alpha", 1));
    CHECK(deliver(log, table, "alpha", 2));
    publish(log, table);
    CHECK(highest(table, "alpha") == 2);
    CHECK(!deliver(log, table, "alpha", 1));
    CHECK(!deliver(log, table, "alpha", 2));
    CHECK(deliver(log, table, "alpha", 7));  /* a gap: its sequence is shared by other topics */
    CHECK(!deliver(log, table, "alpha", 7)); /* the same batch: already appended */
    CHECK(!deliver(log, table, "alpha", 5)); /* backwards within the window */
    publish(log, table);
    CHECK(highest(table, "alpha") == 7);
    CHECK(dedupe_table_counts(table)->duplicates == 4);
    /* A failed publish forgets what the batch appended. */
    uint32_t length = record_encode("alpha", 8, "x");
    struct slice slice = {.bytes = encoded, .length = length, .unit = 0};
    struct record_view view = {&slice, 1, length};
    uint32_t entry = DEDUPE_ENTRY_NONE;
    CHECK(dedupe_table_check(table, &view, length - 5, 5, 8, &entry) == DEDUPE_NEW);
    dedupe_table_appended(table, entry, 8, 99);
    dedupe_table_batch_end(table, false, shm_log_next_offset(log));
    CHECK(highest(table, "alpha") == 7);
    CHECK(dedupe_table_check(table, &view, length - 5, 5, 8, &entry) == DEDUPE_NEW);
    /* Records without a producer_id never reach the table. */
    CHECK(deliver(log, table, NULL, 0));
    publish(log, table);
    dedupe_table_close(table);
    shm_log_close(log);
    remove_topic_files();
}

static void test_straddle(void) {
    struct shm_log *log = log_open(1u << 16);
    struct dedupe_table *table = table_open(log, 16);
    const char *id = "0123456789abcdef-producer";
    CHECK(deliver(log, table, id, 3));
    publish(log, table);
    /* The same record in four slices that cut the id in three places. */
    uint32_t length = record_encode(id, 3, "payload");
    uint32_t id_offset = length - (uint32_t)strlen(id);
    uint32_t cuts[] = {id_offset - 1, id_offset + 1, id_offset + 9, length};
    struct slice slices[4];
    uint32_t start = 0;
    for (uint32_t index = 0; index < 4; index++) {
        slices[index] = (struct slice){.bytes = encoded + start, .length = cuts[index] - start};
        start = cuts[index];
    }
    struct record_view view = {slices, 4, length};
    uint32_t entry = DEDUPE_ENTRY_NONE;
    CHECK(dedupe_table_check(table, &view, id_offset, (uint32_t)strlen(id), 3, &entry) ==
          DEDUPE_DUPLICATE);
    CHECK(dedupe_table_check(table, &view, id_offset, (uint32_t)strlen(id), 4, &entry) ==
          DEDUPE_NEW);
    CHECK(dedupe_table_size(table) == 1);
    dedupe_table_close(table);
    shm_log_close(log);
    remove_topic_files();
}

static void test_producers(void) {
    struct shm_log *log = log_open(1u << 16);
    struct dedupe_table *table = table_open(log, 16);
    for (uint64_t sequence = 1; sequence <= 5; sequence++) {
        CHECK(deliver(log, table, "left", sequence));
        CHECK(deliver(log, table, "right", sequence));
    }
    publish(log, table);
    CHECK(!deliver(log, table, "left", 5));
    CHECK(deliver(log, table, "right", 6));
    CHECK(deliver(log, table, "left-longer", 1)); /* a prefix of another id is another id */
    publish(log, table);
    CHECK(highest(table, "left") == 5 && highest(table, "right") == 6);
    dedupe_table_close(table);
    shm_log_close(log);
    remove_topic_files();
}

static void test_eviction(void) {
    struct shm_log *log = log_open(1u << 16);
    struct dedupe_table *table = table_open(log, 2);
    CHECK(deliver(log, table, "first", 10));
    publish(log, table);
    CHECK(deliver(log, table, "second", 10));
    publish(log, table);
    CHECK(deliver(log, table, "third", 10)); /* evicts "first", least recently committed */
    publish(log, table);
    CHECK(dedupe_table_counts(table)->evictions == 1);
    CHECK(highest(table, "first") == 0 && highest(table, "second") == 10);
    /* "first" comes back with an old sequence: past the window, appended and counted. */
    CHECK(deliver(log, table, "first", 9));
    publish(log, table);
    CHECK(dedupe_table_counts(table)->unremembered == 1);
    CHECK(dedupe_table_counts(table)->evictions == 2); /* "second" went this time */
    /* Remembered again from now on. */
    CHECK(!deliver(log, table, "first", 9));
    /* The fingerprint ring survives a reopen: "second" returning is counted too. */
    dedupe_table_close(table);
    table = table_open(log, 2);
    CHECK(highest(table, "first") == 9 && highest(table, "third") == 10);
    CHECK(deliver(log, table, "second", 11));
    publish(log, table);
    CHECK(dedupe_table_counts(table)->unremembered == 1);
    dedupe_table_close(table);
    /* A table of one: a second producer in the same batch is appended without being remembered
     * (the first, appended to in the open batch, is never evicted), as dedupe_table.h says. */
    table = table_open(log, 1);
    CHECK(deliver(log, table, "solo", 1));
    CHECK(deliver(log, table, "crowd", 1));
    CHECK(deliver(log, table, "crowd", 1)); /* not remembered: appended again */
    publish(log, table);
    CHECK(highest(table, "solo") == 1 && highest(table, "crowd") == 0);
    CHECK(deliver(log, table, "crowd", 2)); /* a new batch: "solo" is evicted now */
    publish(log, table);
    CHECK(highest(table, "solo") == 0 && highest(table, "crowd") == 2);
    dedupe_table_close(table);
    shm_log_close(log);
    remove_topic_files();
}

/* deliver, with the record in two slices cut `cut` bytes into the id. */
static bool deliver_split(struct shm_log *log, struct dedupe_table *table, const char *id,
                          uint64_t sequence, uint32_t cut) {
    uint32_t length = record_encode(id, sequence, "payload");
    uint32_t id_length = (uint32_t)strlen(id);
    uint32_t id_offset = length - id_length;
    struct slice slices[2] = {{.bytes = encoded, .length = id_offset + cut},
                              {.bytes = encoded + id_offset + cut, .length = id_length - cut}};
    struct record_view view = {slices, 2, length};
    uint32_t entry = DEDUPE_ENTRY_NONE;
    if (dedupe_table_check(table, &view, id_offset, id_length, sequence, &entry) ==
        DEDUPE_DUPLICATE)
        return false;
    uint64_t offset = 0;
    REQUIRE(shm_log_append(log, slices, 2, length, sequence, 0, &offset) == SHM_LOG_APPENDED);
    dedupe_table_appended(table, entry, sequence, offset);
    return true;
}

/* The last-producer cache (a check compares the id with the producer the previous check found
 * before it hashes): every order that moves it finds the right producer. */
static void test_last_producer(void) {
    struct shm_log *log = log_open(1u << 16);
    struct dedupe_table *table = table_open(log, 2);
    /* 36 bytes (a UUID's text) that differ only in the last byte, then only in the first. */
    const char *a = "6f9619ff-8b86-d011-b42d-00c04fc9640a";
    const char *b = "6f9619ff-8b86-d011-b42d-00c04fc9640b";
    const char *c = "7f9619ff-8b86-d011-b42d-00c04fc9640a";
    CHECK(deliver(log, table, a, 1));
    CHECK(deliver(log, table, b, 1)); /* alternating: each check misses the cache */
    CHECK(deliver(log, table, a, 2));
    CHECK(deliver(log, table, b, 2));
    CHECK(!deliver(log, table, a, 2)); /* the same batch, cache on b */
    CHECK(!deliver(log, table, a, 1)); /* the same batch, cache on a */
    CHECK(deliver(log, table, a, 3));
    publish(log, table);
    CHECK(highest(table, a) == 3 && highest(table, b) == 2);
    CHECK(!deliver(log, table, b, 2)); /* cache on b, committed */
    publish(log, table);
    /* c differs from a in the first byte only: with the cache on a, it is another producer
     * (the table holds two: c evicts b, least recently committed, while a is the cached one). */
    CHECK(!deliver(log, table, a, 3));
    CHECK(deliver(log, table, c, 1));
    publish(log, table);
    CHECK(dedupe_table_counts(table)->evictions == 1);
    CHECK(highest(table, a) == 3 && highest(table, c) == 1 && highest(table, b) == 0);
    /* The cached producer evicted, then returning: appended as new, counted unremembered. a is
     * the least recently committed; the cache is put on it by a duplicate, then b evicts it. */
    CHECK(!deliver(log, table, a, 3));
    CHECK(deliver(log, table, b, 9));
    publish(log, table);
    CHECK(highest(table, a) == 0 && dedupe_table_counts(table)->evictions == 2);
    uint64_t unremembered = dedupe_table_counts(table)->unremembered;
    CHECK(deliver(log, table, a, 2)); /* past the window: below what it had, appended */
    publish(log, table);
    CHECK(dedupe_table_counts(table)->unremembered == unremembered + 1);
    CHECK(highest(table, a) == 2 && highest(table, c) == 0 && highest(table, b) == 9);
    dedupe_table_close(table);
    /* Short ids (under 8 bytes: no word comparison), an id that is a prefix of the cached one,
     * and ids straddling two slices, against the cache and the index. */
    table = table_open(log, 16);
    CHECK(deliver(log, table, "prod-1", 1));
    CHECK(deliver(log, table, "prod-2", 1));
    CHECK(!deliver(log, table, "prod-2", 1));
    CHECK(deliver(log, table, "prod-", 1)); /* a prefix of the cached id */
    CHECK(deliver(log, table, "prod-1", 2));
    CHECK(!deliver_split(log, table, "prod-1", 2, 3)); /* straddling, cache on prod-1 */
    CHECK(deliver_split(log, table, a, 10, 35));       /* straddling, then contiguous: the cache */
    CHECK(!deliver(log, table, a, 10));
    CHECK(!deliver_split(log, table, a, 10, 1));
    CHECK(deliver_split(log, table, b, 10, 20)); /* straddling, a cached, last byte differs */
    publish(log, table);
    CHECK(highest(table, "prod-1") == 2 && highest(table, "prod-2") == 1);
    CHECK(highest(table, "prod-") == 1 && highest(table, a) == 10 && highest(table, b) == 10);
    CHECK(dedupe_table_size(table) == 5);
    dedupe_table_close(table);
    shm_log_close(log);
    remove_topic_files();
}

static void test_crash(void) {
    struct shm_log *log = log_open(1u << 16);
    struct dedupe_table *table = table_open(log, 16);
    for (uint64_t sequence = 1; sequence <= 20; sequence++) {
        CHECK(deliver(log, table, "crashy", sequence));
        if (sequence % 4 == 0) publish(log, table);
    }
    /* The last batch reaches the log, then the daemon dies before the table hears of it. */
    CHECK(deliver(log, table, "crashy", 21));
    CHECK(deliver(log, table, "other", 1));
    bool published = shm_log_publish(log);
    CHECK(published);
    dedupe_table_close(table); /* unmaps only: what the file holds is what a SIGKILL leaves */
    shm_log_close(log);
    log = log_open(1u << 16);
    table = table_open(log, 16);
    CHECK(highest(table, "crashy") == 21);
    CHECK(highest(table, "other") == 1);
    CHECK(!deliver(log, table, "crashy", 21));
    CHECK(!deliver(log, table, "other", 1));
    CHECK(deliver(log, table, "crashy", 22));
    publish(log, table);
    dedupe_table_close(table);
    shm_log_close(log);
    remove_topic_files();
}

static bool directory_has(const char *fragment) {
    DIR *dir = opendir(test_directory);
    REQUIRE(dir != NULL);
    bool found = false;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) found |= strstr(entry->d_name, fragment) != NULL;
    closedir(dir);
    return found;
}

static void test_damage(void) {
    struct shm_log *log = log_open(1u << 16);
    struct dedupe_table *table = table_open(log, 16);
    for (uint64_t sequence = 1; sequence <= 6; sequence++)
        CHECK(deliver(log, table, "hurt", sequence));
    publish(log, table);
    dedupe_table_close(table);
    char path[512];
    snprintf(path, sizeof(path), "%s/%s%s", test_directory, TOPIC, SHM_LOG_DEDUPE_FILE_SUFFIX);
    /* Scribble on the first entry's copies. */
    int fd = open(path, O_RDWR);
    REQUIRE(fd >= 0);
    uint8_t junk[200];
    memset(junk, 0x5a, sizeof(junk));
    CHECK(pwrite(fd, junk, sizeof(junk), 128 + 8) == (ssize_t)sizeof(junk));
    close(fd);
    table = table_open(log, 16);
    CHECK(dedupe_table_counts(table)->rebuilds == 1);
    CHECK(directory_has(".dedupe.corrupt-"));
    CHECK(highest(table, "hurt") == 6); /* rebuilt from the log */
    CHECK(!deliver(log, table, "hurt", 6));
    dedupe_table_close(table);
    /* A file of the wrong size, and one that is not ours at all. */
    fd = open(path, O_RDWR | O_TRUNC);
    REQUIRE(fd >= 0);
    CHECK(write(fd, "not a table", 11) == 11);
    close(fd);
    table = table_open(log, 16);
    CHECK(dedupe_table_counts(table)->rebuilds == 1 && highest(table, "hurt") == 6);
    dedupe_table_close(table);
    shm_log_close(log);
    remove_topic_files();
}

static void test_lap(void) {
    struct shm_log *log = log_open(1u << 16);
    struct dedupe_table *table = table_open(log, 16);
    CHECK(deliver(log, table, "lapped", 5));
    publish(log, table);
    dedupe_table_close(table);
    /* The table's file is stale from here: more of "lapped" and a lap of other records. */
    append_only(log, "lapped", 6);
    for (uint32_t index = 0; index < 4000; index++) append_only(log, NULL, 0);
    CHECK(shm_log_publish(log));
    table = table_open(log, 16);
    /* Record 6 was overwritten before the table covered it: the file's entry is what is left. */
    CHECK(highest(table, "lapped") == 5);
    dedupe_table_close(table);
    shm_log_close(log);
    remove_topic_files();
}

static void test_resize(void) {
    struct shm_log *log = log_open(1u << 16);
    struct dedupe_table *table = table_open(log, 8);
    const char *ids[] = {"p0", "p1", "p2", "p3", "p4", "p5"};
    for (uint32_t index = 0; index < 6; index++) {
        CHECK(deliver(log, table, ids[index], 1));
        publish(log, table);
    }
    dedupe_table_close(table);
    table = table_open(log, 3);
    CHECK(dedupe_table_size(table) == 3);
    CHECK(highest(table, "p5") == 1 && highest(table, "p4") == 1 && highest(table, "p3") == 1);
    CHECK(highest(table, "p0") == 0);
    dedupe_table_close(table);
    shm_log_close(log);
    remove_topic_files();
}

/* Many producers through a small table: after every batch, each producer the table holds is
 * found with its own highest sequence, and exactly `size` of them are found (the index stays
 * whole through evictions and backward-shift deletions). */
static void test_churn(void) {
    struct shm_log *log = log_open(1u << 20);
    struct dedupe_table *table = table_open(log, 8);
    enum { PRODUCERS = 40 };
    uint64_t last[PRODUCERS] = {0};
    char ids[PRODUCERS][16];
    for (uint32_t index = 0; index < PRODUCERS; index++)
        snprintf(ids[index], sizeof(ids[index]), "churn-%u", index);
    uint64_t random = 12345;
    for (uint32_t round = 0; round < 3000; round++) {
        uint32_t producer = (uint32_t)(test_random_next(&random) % PRODUCERS);
        last[producer]++;
        deliver(log, table, ids[producer], last[producer]);
        if (round % 3 == 0) publish(log, table);
        if (round % 3 != 0) continue;
        uint32_t found = 0;
        for (uint32_t index = 0; index < PRODUCERS; index++) {
            uint64_t held = highest(table, ids[index]);
            if (held == 0) continue;
            found++;
            CHECK(held == last[index]);
        }
        CHECK(found == dedupe_table_size(table));
    }
    CHECK(dedupe_table_counts(table)->evictions > 100);
    CHECK(dedupe_table_counts(table)->unremembered > 100);
    dedupe_table_close(table);
    shm_log_close(log);
    remove_topic_files();
}

int main(void) {
    test_directory_make("-dedupe");
    test_rule();
    test_straddle();
    test_producers();
    test_eviction();
    test_last_producer();
    test_crash();
    test_damage();
    test_lap();
    test_resize();
    test_churn();
    return test_finish();
}
