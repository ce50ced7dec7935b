/*
 * test_dedupe_table.c: the per-topic deduplication table (src/delivery/dedupe_table.h) against a
 * real shared-memory log under /dev/shm, driven the way a worker drives it (check, append,
 * appended, publish, batch_end).
 *
 *   rule:       at or below the highest committed is a duplicate; gaps are allowed; a repeat
 *               inside one batch is a duplicate; a failed publish forgets the batch.
 *   gap fill:   a record marked as inside its producer's gap is appended, never a duplicate,
 *               and counted unprotected (issue 17).
 *   principals: the same producer_id under two principals is two producers (issue 17).
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
 *               or first byte or are a prefix, the cached producer evicted and returning.
 *   flood:      made-up ids that commit once each never evict producers that committed in two
 *               batches (the segmented LRU); unprotected appends are counted (issue 18 item 8).
 *   torn:       the newest copy of an entry damaged (where version 1 kept its `active` index):
 *               the valid copy is kept, the whole log re-applied, said and counted (item 4).
 *   emfile:     a table that cannot be opened for lack of descriptors is refused, never taken
 *               for damage; it loads whole once descriptors are back (item 3).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dedupe_table.h"
#include "harness.h"
#include "intake/shm_log_format.h"
#include "record_encoder.h"
#include "shm_log.h"
#include "shm_test_util.h"

#define TOPIC "dedupe-topic"
/* The anonymous principal's tag (docs/shm-log-format.md's vector), and another one. */
#define PRINCIPAL_A 0xf33a49644e3a182full
#define PRINCIPAL_B 0xbadd993358e137e2ull
/* The file offset of the first entry (docs/shm-log-format.md: after the 128-byte header). */
#define DEDUPE_TEST_ENTRY_START 128

static uint8_t encoded[512];
static struct keyed_hasher hasher;

/* The origin a connection of `principal` with producer_id `id` gives its records. */
static struct record_origin origin_as(uint64_t principal, const char *id) {
    struct record_origin origin = {.principal = principal};
    origin.producer_id_length = (uint32_t)strlen(id);
    REQUIRE(origin.producer_id_length >= 1 &&
            origin.producer_id_length <= RECORD_PRODUCER_ID_BYTES_MAX);
    memcpy(origin.producer_id, id, origin.producer_id_length);
    origin.producer_hash =
        keyed_hash_producer(&hasher, principal, origin.producer_id, origin.producer_id_length);
    return origin;
}

/* An intake.v1.Record: topic, value, sequence and producer_id when id is set. */
static uint32_t record_encode(const char *id, uint64_t sequence, const char *value) {
    struct record_encoder encoder = RECORD_ENCODER(encoded);
    struct record_fields fields = {.topic = TOPIC,
                                   .value = value,
                                   .value_bytes = strlen(value),
                                   .sequence = sequence,
                                   .producer_id = id};
    record_encode_fields(&encoder, &fields);
    return (uint32_t)encoder.length;
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
    int result = dedupe_table_open(test_directory, TOPIC, producers_max, log, &hasher, &table, why,
                                   sizeof(why));
    if (result != 0) fprintf(stderr, "open table: %s\n", why);
    REQUIRE(result == 0);
    return table;
}

/* One record the way a worker handles it, from one contiguous slice, as `principal`, with the
 * record's RECORD_SEQUENCE_* flags; no publish. Returns whether it was appended (false: a
 * duplicate). */
static bool deliver_flagged(struct shm_log *log, struct dedupe_table *table, uint64_t principal,
                            const char *id, uint64_t sequence, uint32_t flags) {
    uint32_t length = record_encode(id, sequence, "payload");
    struct slice slice = {.bytes = encoded, .length = length, .unit = 0};
    uint32_t entry = DEDUPE_ENTRY_NONE;
    if (id != NULL) {
        struct record_origin origin = origin_as(principal, id);
        if (dedupe_table_check(table, &origin, sequence, flags, &entry) == DEDUPE_DUPLICATE)
            return false;
    }
    uint64_t offset = 0;
    REQUIRE(shm_log_append(log, &slice, 1, length, sequence, 0, principal, &offset) ==
            SHM_LOG_APPENDED);
    if (id != NULL) dedupe_table_appended(table, entry, sequence, offset);
    return true;
}

static bool deliver_as(struct shm_log *log, struct dedupe_table *table, uint64_t principal,
                       const char *id, uint64_t sequence) {
    return deliver_flagged(log, table, principal, id, sequence, 0);
}

static bool deliver(struct shm_log *log, struct dedupe_table *table, const char *id,
                    uint64_t sequence) {
    return deliver_as(log, table, PRINCIPAL_A, id, sequence);
}

/* A record appended with no table looking (the daemon's table is stale from here). */
static void append_only(struct shm_log *log, const char *id, uint64_t sequence) {
    uint32_t length = record_encode(id, sequence, "payload");
    struct slice slice = {.bytes = encoded, .length = length, .unit = 0};
    uint64_t offset = 0;
    REQUIRE(shm_log_append(log, &slice, 1, length, sequence, 0, PRINCIPAL_A, &offset) ==
            SHM_LOG_APPENDED);
}

static void publish(struct shm_log *log, struct dedupe_table *table) {
    bool published = shm_log_publish(log);
    REQUIRE(published);
    dedupe_table_batch_end(table, true, shm_log_next_offset(log));
}

static uint64_t highest_as(const struct dedupe_table *table, uint64_t principal, const char *id) {
    struct record_origin origin = origin_as(principal, id);
    return dedupe_table_highest(table, &origin);
}

static uint64_t highest(const struct dedupe_table *table, const char *id) {
    return highest_as(table, PRINCIPAL_A, id);
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
    struct record_origin alpha = origin_as(PRINCIPAL_A, "alpha");
    uint32_t entry = DEDUPE_ENTRY_NONE;
    CHECK(dedupe_table_check(table, &alpha, 8, 0, &entry) == DEDUPE_NEW);
    dedupe_table_appended(table, entry, 8, 99);
    dedupe_table_batch_end(table, false, shm_log_next_offset(log));
    CHECK(highest(table, "alpha") == 7);
    CHECK(dedupe_table_check(table, &alpha, 8, 0, &entry) == DEDUPE_NEW);
    /* Records without a producer_id never reach the table. */
    CHECK(deliver(log, table, NULL, 0));
    publish(log, table);
    dedupe_table_close(table);
    shm_log_close(log);
    remove_topic_files();
}

/* A record inside its producer's gap (RECORD_SEQUENCE_GAP_FILL, producer_table.h) was never
 * written: appended even at or below the highest, and counted unprotected; above the highest
 * it is an ordinary new record. */
static void test_gap_fill(void) {
    struct shm_log *log = log_open(1u << 16);
    struct dedupe_table *table = table_open(log, 16);
    CHECK(deliver(log, table, "jumper", 1));
    CHECK(deliver(log, table, "jumper", 10)); /* another connection's first record jumped */
    publish(log, table);
    CHECK(!deliver(log, table, "jumper", 5)); /* unmarked: a duplicate, the old rule */
    CHECK(dedupe_table_counts(table)->unprotected == 0);
    for (uint64_t sequence = 4; sequence <= 9; sequence++)
        CHECK(
            deliver_flagged(log, table, PRINCIPAL_A, "jumper", sequence, RECORD_SEQUENCE_GAP_FILL));
    CHECK(deliver_flagged(log, table, PRINCIPAL_A, "jumper", 11, RECORD_SEQUENCE_GAP_FILL));
    publish(log, table);
    CHECK(highest(table, "jumper") == 11);
    CHECK(dedupe_table_counts(table)->unprotected == 6);
    CHECK(!deliver(log, table, "jumper", 11));
    dedupe_table_close(table);
    shm_log_close(log);
    remove_topic_files();
}

/* A producer_id belongs to its principal: equal ids of two principals never suppress each
 * other, and the log says which principal wrote each record; a reopened table (replaying its
 * log) keeps them apart too. */
static void test_principals(void) {
    struct shm_log *log = log_open(1u << 16);
    struct dedupe_table *table = table_open(log, 16);
    CHECK(deliver_as(log, table, PRINCIPAL_A, "shared-id", 1000)); /* A jumps high */
    publish(log, table);
    for (uint64_t sequence = 1; sequence <= 5; sequence++)
        CHECK(deliver_as(log, table, PRINCIPAL_B, "shared-id", sequence));
    publish(log, table);
    CHECK(highest_as(table, PRINCIPAL_A, "shared-id") == 1000);
    CHECK(highest_as(table, PRINCIPAL_B, "shared-id") == 5);
    CHECK(!deliver_as(log, table, PRINCIPAL_B, "shared-id", 5));
    CHECK(dedupe_table_size(table) == 2);
    /* Crash before the table hears of B's next record: the replay keys it by the entry's
     * principal. */
    CHECK(deliver_as(log, table, PRINCIPAL_B, "shared-id", 6));
    CHECK(shm_log_publish(log));
    dedupe_table_close(table);
    table = table_open(log, 16);
    CHECK(highest_as(table, PRINCIPAL_B, "shared-id") == 6);
    CHECK(highest_as(table, PRINCIPAL_A, "shared-id") == 1000);
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
     * and equal ids of another principal, against the cache and the index. */
    table = table_open(log, 16);
    CHECK(deliver(log, table, "prod-1", 1));
    CHECK(deliver(log, table, "prod-2", 1));
    CHECK(!deliver(log, table, "prod-2", 1));
    CHECK(deliver(log, table, "prod-", 1)); /* a prefix of the cached id */
    CHECK(deliver(log, table, "prod-1", 2));
    CHECK(deliver_as(log, table, PRINCIPAL_B, "prod-1", 2)); /* cache on prod-1 of A */
    CHECK(!deliver(log, table, "prod-1", 2));
    CHECK(deliver(log, table, a, 10));
    CHECK(!deliver(log, table, a, 10));
    CHECK(deliver(log, table, b, 10)); /* a cached, last byte differs */
    publish(log, table);
    CHECK(highest(table, "prod-1") == 2 && highest(table, "prod-2") == 1);
    CHECK(highest(table, "prod-") == 1 && highest(table, a) == 10 && highest(table, b) == 10);
    CHECK(highest_as(table, PRINCIPAL_B, "prod-1") == 2);
    CHECK(dedupe_table_size(table) == 6);
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

/* The segmented LRU (dedupe_table.h): producers that committed in two batches are protected; a
 * flood of made-up ids, one record each, only evicts other probation producers. And the issue
 * 18 case: a table of 4 with 12 producers in one batch appends 8 unremembered, counted. */
static void test_flood(void) {
    struct shm_log *log = log_open(1u << 20);
    struct dedupe_table *table = table_open(log, 16);
    char id[32];
    for (uint32_t round = 1; round <= 2; round++) {
        for (uint32_t producer = 0; producer < 8; producer++) {
            snprintf(id, sizeof(id), "real-%u", producer);
            CHECK(deliver(log, table, id, round));
        }
        publish(log, table);
    }
    CHECK(dedupe_table_protected(table) == 8);
    for (uint32_t made_up = 0; made_up < 1100; made_up++) {
        snprintf(id, sizeof(id), "made-up-%u", made_up);
        CHECK(deliver(log, table, id, 1));
        publish(log, table);
    }
    uint32_t kept = 0;
    for (uint32_t producer = 0; producer < 8; producer++) {
        snprintf(id, sizeof(id), "real-%u", producer);
        kept += highest(table, id) == 2;
        CHECK(!deliver(log, table, id, 2)); /* their resend is still recognised */
    }
    publish(log, table);
    printf("flood: %u of 8 established producers kept through 1100 made-up ids; %llu evictions\n",
           kept, (unsigned long long)dedupe_table_counts(table)->evictions);
    CHECK(kept == 8);
    CHECK(dedupe_table_counts(table)->evictions == 1100 - 8);
    CHECK(dedupe_table_counts(table)->unprotected == 0);
    dedupe_table_close(table);
    remove_topic_files();
    shm_log_close(log);
    /* Four producers remembered, twelve in one batch: eight appended unprotected. */
    log = log_open(1u << 20);
    table = table_open(log, 4);
    for (uint32_t producer = 0; producer < 12; producer++) {
        snprintf(id, sizeof(id), "burst-%u", producer);
        CHECK(deliver(log, table, id, 1));
    }
    publish(log, table);
    CHECK(dedupe_table_counts(table)->unprotected == 8);
    CHECK(dedupe_table_size(table) == 4);
    dedupe_table_close(table);
    shm_log_close(log);
    remove_topic_files();
}

static void table_path(char *path, size_t capacity) {
    snprintf(path, capacity, "%s/%s%s", test_directory, TOPIC, SHM_LOG_DEDUPE_FILE_SUFFIX);
}

/* Issue 18 item 4: version 1 kept a 4-byte `active` index at an entry's start, outside every
 * checksum; flipping it selected the older, valid copy, silently. Here the same 4 bytes belong
 * to the first copy, whose checksum then fails: the older copy is kept, the whole log is
 * re-applied (the producer's newest record is still in it), and it is said and counted. */
static void test_torn(void) {
    struct shm_log *log = log_open(1u << 16);
    struct dedupe_table *table = table_open(log, 16);
    for (uint64_t sequence = 1; sequence <= 3; sequence++) {
        CHECK(deliver(log, table, "torn", sequence)); /* copies: 0 (1), 1 (2), 0 (3) */
        publish(log, table);
    }
    dedupe_table_close(table);
    char path[512];
    table_path(path, sizeof(path));
    int fd = open(path, O_RDWR);
    REQUIRE(fd >= 0);
    uint8_t word[4];
    REQUIRE(pread(fd, word, sizeof(word), DEDUPE_TEST_ENTRY_START) == (ssize_t)sizeof(word));
    word[0] ^= 1;
    REQUIRE(pwrite(fd, word, sizeof(word), DEDUPE_TEST_ENTRY_START) == (ssize_t)sizeof(word));
    close(fd);
    table = table_open(log, 16);
    CHECK(highest(table, "torn") == 3);
    CHECK(!deliver(log, table, "torn", 3)); /* the resend is recognised */
    CHECK(dedupe_table_counts(table)->repairs == 1);
    CHECK(dedupe_table_counts(table)->rebuilds == 0);
    CHECK(!directory_has(".dedupe.corrupt-"));
    dedupe_table_close(table);
    shm_log_close(log);
    remove_topic_files();
}

/* Issue 18 item 3: one EMFILE is not damage. With every descriptor taken, the open fails with
 * EMFILE and leaves the file alone; with descriptors back, the table loads whole. */
static void test_emfile(void) {
    struct shm_log *log = log_open(1u << 16);
    struct dedupe_table *table = table_open(log, 16);
    for (uint64_t sequence = 1; sequence <= 100; sequence++)
        CHECK(deliver(log, table, "healthy", sequence));
    publish(log, table);
    dedupe_table_close(table);
    /* Take every descriptor (bounded by a lowered soft limit). */
    struct rlimit saved;
    REQUIRE(getrlimit(RLIMIT_NOFILE, &saved) == 0);
    struct rlimit lowered = saved;
    lowered.rlim_cur = 256;
    REQUIRE(setrlimit(RLIMIT_NOFILE, &lowered) == 0);
    int held[256];
    uint32_t held_count = 0;
    for (int fd; held_count < 256 && (fd = open("/dev/null", O_RDONLY)) >= 0;)
        held[held_count++] = fd;
    CHECK(errno == EMFILE);
    char why[512] = "";
    struct dedupe_table *refused = NULL;
    int result =
        dedupe_table_open(test_directory, TOPIC, 16, log, &hasher, &refused, why, sizeof(why));
    for (uint32_t index = 0; index < held_count; index++) close(held[index]);
    REQUIRE(setrlimit(RLIMIT_NOFILE, &saved) == 0);
    printf("emfile: open returned %d: %s\n", result, why);
    CHECK(result == -EMFILE && refused == NULL);
    CHECK(strstr(why, "Too many open files") != NULL);
    CHECK(!directory_has(".dedupe.corrupt-"));
    table = table_open(log, 16);
    CHECK(highest(table, "healthy") == 100);
    CHECK(dedupe_table_counts(table)->rebuilds == 0);
    CHECK(!deliver(log, table, "healthy", 100));
    dedupe_table_close(table);
    shm_log_close(log);
    remove_topic_files();
}

int main(void) {
    test_directory_make("-dedupe");
    struct keyed_hash_key key;
    REQUIRE(keyed_hash_key_random(&key) == 0);
    REQUIRE(keyed_hasher_init(&hasher, &key) == 0);
    test_rule();
    test_gap_fill();
    test_principals();
    test_producers();
    test_eviction();
    test_last_producer();
    test_crash();
    test_damage();
    test_lap();
    test_resize();
    test_churn();
    test_flood();
    test_torn();
    test_emfile();
    keyed_hasher_free(&hasher);
    return test_finish();
}
