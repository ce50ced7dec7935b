/*
 * test_consumer_set.c: consumers of many topics (intake_consumer_set_*) against a real intaked.
 *
 *   all_topics:  a set over every topic, opened before any exists, reads records produced into
 *                24 topics plus one created after a first poll: each exactly once, in order per
 *                topic, with the bytes that were sent.
 *   listed:      a set over named topics, one of which has no log at open, reads them all and
 *                nothing of a topic it does not list.
 *   wake:        a thread waiting on the set is woken by a publish on the last of many topics:
 *                wait returns 1 and the daemon consumed the waiters flag (it took the wake path).
 *   bounded:     topics_max below the topics present: the first are followed, the rest counted.
 *   restart:     a set open across a daemon restart keeps reading and is woken through the same
 *                wake-up files (the new daemon reuses them), and sees the daemon's absence.
 *   recreated:   a topic's log truncated under the daemon and the set: the daemon recreates it,
 *                and the set reopens it and continues at the next offset, nothing twice.
 *   notify_files: the daemon's side in-process: files and modes, reuse across a restart, a
 *                waiters file that is not the pair replaced, the flag swapped by a publish,
 *                and a truncated waiters file survived (SIGBUS recovered) with wakes kept.
 *   garbage:     a consumer scribbles over intake.notify-waiters, then truncates it: the daemon
 *                keeps acking, exits 0, and a waiting set is still woken.
 */
#include <dirent.h>
#include <pthread.h>
#include <sys/mman.h>

#include "daemon_util.h"
#include "fault_guard.h"
#include "shm_notify.h"
#include "intake/consumer.h"
#include "intake/producer.h"
#include "intake/shm_log_format.h"

static void unused_helpers(void) __attribute__((unused));
static void unused_helpers(void) {
}

#define TOPICS    24
#define PER_TOPIC 300

static struct intake_producer *producer_open(const struct daemon *daemon) {
    struct intake_producer_config config = {.address = daemon->address, .acks = true};
    struct intake_producer *producer = NULL;
    char why[256];
    if (intake_producer_open(&config, &producer, why, sizeof(why)) != 0)
        fprintf(stderr, "producer: %s\n", why);
    REQUIRE(producer != NULL);
    return producer;
}

/* Sends records `first`..`first + count - 1` of `topic` (value "<topic>#<n>") and waits for
 * their acks. */
static void produce(struct intake_producer *producer, const char *topic, int first, int count) {
    uint64_t sequence = 0;
    for (int index = first; index < first + count; index++) {
        char value[300];
        int length = snprintf(value, sizeof(value), "%s#%d.", topic, index);
        REQUIRE(intake_producer_send(producer, topic, "k", 1, value, (size_t)length, 0,
                                     &sequence) == 0);
    }
    REQUIRE(intake_producer_wait_acks(producer, sequence, 30000) == 0);
}

static bool record_holds(const struct intake_consumer_set_record *record, const char *topic,
                         uint64_t number) {
    char value[300];
    int length = snprintf(value, sizeof(value), "%s#%llu.", topic, (unsigned long long)number);
    return memmem(record->record.bytes, record->record.length, value, (size_t)length) != NULL;
}

static const char *const daemon_flags[] = {
    "--backend",    "pbuf", "--log-size",          "256K",  "--max-frame", "64K",
    "--topics-max", "64",   "--consumer-stale-ms", "60000", NULL};

/* Polls until `expected` records arrived (bounded), checking order and content per topic:
 * `seen[i]` counts topic i's records (topic names "t<i>"). */
static uint64_t drain(struct intake_consumer_set *set, uint64_t expected, uint64_t *seen,
                      uint32_t topic_slots, uint64_t *bad) {
    static struct intake_consumer_set_record records[256];
    uint64_t total = 0;
    for (int idle = 0; total < expected && idle < 2000;) {
        int got = intake_consumer_set_poll(set, records, 256);
        REQUIRE(got >= 0);
        if (got == 0) {
            idle++;
            CHECK(intake_consumer_set_wait(set, 10000000ull) >= 0);
            continue;
        }
        for (int index = 0; index < got; index++) {
            const struct intake_consumer_set_record *record = &records[index];
            unsigned topic = 0;
            if (sscanf(record->topic, "t%u", &topic) != 1 || topic >= topic_slots) {
                (*bad)++;
                continue;
            }
            /* Exactly once and in order: the n-th record of a topic is its record n. */
            if (record->record.offset != seen[topic] || record->record.missed != 0 ||
                !record_holds(record, record->topic, seen[topic]))
                (*bad)++;
            seen[topic]++;
            total++;
        }
    }
    return total;
}

static void test_all_topics(void) {
    char directory[256];
    daemon_directory_make(directory, sizeof(directory), "set-all");
    struct daemon daemon;
    REQUIRE(daemon_start(&daemon, directory, daemon_flags));
    struct intake_consumer_set_options options = {
        .consumer = &(struct intake_consumer_options){.start = INTAKE_CONSUMER_START_OLDEST,
                                                      .ephemeral = true},
        .topics_max = 64,
        .all_topics = true,
        .per_topic_batch = 16,
    };
    struct intake_consumer_set *set = NULL;
    char why[INTAKE_CONSUMER_ERROR_BYTES];
    int opened = intake_consumer_set_open(directory, "all", &options, &set, why, sizeof(why));
    if (opened != 0) fprintf(stderr, "set open: %s\n", why);
    REQUIRE(opened == 0);
    CHECK(intake_consumer_set_writer_alive(set));
    struct intake_producer *producer = producer_open(&daemon);
    for (int topic = 0; topic < TOPICS; topic++) {
        char name[16];
        snprintf(name, sizeof(name), "t%d", topic);
        produce(producer, name, 0, PER_TOPIC);
    }
    uint64_t seen[TOPICS + 1] = {0}, bad = 0;
    uint64_t total = drain(set, (uint64_t)TOPICS * PER_TOPIC, seen, TOPICS + 1, &bad);
    CHECK(total == (uint64_t)TOPICS * PER_TOPIC);
    /* A topic created after the set's first polls, and more records for the old ones. */
    char late[16];
    snprintf(late, sizeof(late), "t%d", TOPICS);
    produce(producer, late, 0, PER_TOPIC);
    produce(producer, "t0", PER_TOPIC, 10);
    total = drain(set, PER_TOPIC + 10, seen, TOPICS + 1, &bad);
    CHECK(total == PER_TOPIC + 10);
    CHECK(bad == 0);
    for (int topic = 1; topic <= TOPICS; topic++) CHECK(seen[topic] == PER_TOPIC);
    CHECK(seen[0] == PER_TOPIC + 10);
    struct intake_consumer_set_record extra[4];
    CHECK(intake_consumer_set_poll(set, extra, 4) == 0);
    struct intake_consumer_set_stats stats = INTAKE_CONSUMER_SET_STATS_INIT;
    intake_consumer_set_stats(set, &stats);
    CHECK(stats.topics_followed == TOPICS + 1);
    CHECK(stats.topics_refused == 0 && stats.missed_total == 0 && stats.topic_errors == 0);
    intake_producer_close(producer);
    intake_consumer_set_close(set);
    CHECK(daemon_stop(&daemon) == 0);
    daemon_directory_remove(directory);
}

static void test_listed(void) {
    char directory[256];
    daemon_directory_make(directory, sizeof(directory), "set-listed");
    struct daemon daemon;
    REQUIRE(daemon_start(&daemon, directory, daemon_flags));
    struct intake_producer *producer = producer_open(&daemon);
    produce(producer, "t0", 0, 50);
    produce(producer, "t1", 0, 50);
    const char *topics[] = {"t0", "t2", "t0"}; /* t2 has no log yet; a duplicate is ignored */
    struct intake_consumer_set_options options = {
        .consumer = &(struct intake_consumer_options){.start = INTAKE_CONSUMER_START_OLDEST,
                                                      .ephemeral = true},
        .topics_max = 4,
        .topics = topics,
        .topic_count = 3,
    };
    struct intake_consumer_set *set = NULL;
    char why[INTAKE_CONSUMER_ERROR_BYTES];
    REQUIRE(intake_consumer_set_open(directory, "listed", &options, &set, why, sizeof(why)) == 0);
    struct intake_consumer_set_stats stats = INTAKE_CONSUMER_SET_STATS_INIT;
    intake_consumer_set_stats(set, &stats);
    CHECK(stats.topics_followed == 1 && stats.topics_waiting == 1);
    produce(producer, "t2", 0, 70);
    uint64_t seen[3] = {0}, bad = 0;
    CHECK(drain(set, 120, seen, 3, &bad) == 120);
    CHECK(seen[0] == 50 && seen[1] == 0 && seen[2] == 70 && bad == 0);
    intake_producer_close(producer);
    intake_consumer_set_close(set);
    CHECK(daemon_stop(&daemon) == 0);
    daemon_directory_remove(directory);
}

struct waiter {
    struct intake_consumer_set *set;
    int result;
};

static void *waiter_main(void *argument) {
    struct waiter *waiter = argument;
    waiter->result = intake_consumer_set_wait(waiter->set, 20ull * 1000 * 1000 * 1000);
    return NULL;
}

/* The waiters flag as the daemon left it (read through our own mapping of the file). */
static uint32_t waiters_flag(const char *directory) {
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", directory, SHM_LOG_NOTIFY_WAITERS_FILE_NAME);
    int fd = open(path, O_RDONLY);
    uint32_t flag = UINT32_MAX;
    if (fd >= 0 && pread(fd, &flag, 4, 64) != 4) flag = UINT32_MAX;
    if (fd >= 0) close(fd);
    return flag;
}

/* Opens a set over every topic, starts a thread waiting on it, waits until it sleeps (the flag
 * is set), publishes one record on `topic`, and returns the wait's result. */
static int wake_once(const char *directory, struct daemon *daemon, const char *topic,
                     struct intake_consumer_set *set) {
    struct waiter waiter = {.set = set, .result = -1000};
    pthread_t thread;
    REQUIRE(pthread_create(&thread, NULL, waiter_main, &waiter) == 0);
    for (int step = 0; step < 2000 && waiters_flag(directory) == 0; step++) {
        struct timespec pause = {0, 1000000};
        nanosleep(&pause, NULL);
    }
    struct intake_producer *producer = producer_open(daemon);
    produce(producer, topic, 1000, 1);
    intake_producer_close(producer);
    pthread_join(thread, NULL);
    return waiter.result;
}

static void test_wake(void) {
    char directory[256];
    daemon_directory_make(directory, sizeof(directory), "set-wake");
    struct daemon daemon;
    REQUIRE(daemon_start(&daemon, directory, daemon_flags));
    struct intake_producer *producer = producer_open(&daemon);
    for (int topic = 0; topic < 16; topic++) {
        char name[16];
        snprintf(name, sizeof(name), "t%d", topic);
        produce(producer, name, 0, 1);
    }
    intake_producer_close(producer);
    struct intake_consumer_set_options options = {
        .consumer = &(struct intake_consumer_options){.start = INTAKE_CONSUMER_START_END,
                                                      .ephemeral = true},
        .topics_max = 64,
        .all_topics = true,
    };
    struct intake_consumer_set *set = NULL;
    char why[INTAKE_CONSUMER_ERROR_BYTES];
    REQUIRE(intake_consumer_set_open(directory, "wake", &options, &set, why, sizeof(why)) == 0);
    struct intake_consumer_set_record records[8];
    CHECK(intake_consumer_set_poll(set, records, 8) == 0);
    CHECK(wake_once(directory, &daemon, "t15", set) == 1);
    /* The daemon swapped the flag to 0 before waking: it took the wake path. */
    CHECK(waiters_flag(directory) == 0);
    int got = intake_consumer_set_poll(set, records, 8);
    CHECK(got == 1);
    CHECK(got == 1 && strcmp(records[0].topic, "t15") == 0 &&
          record_holds(&records[0], "t15", 1000));
    intake_consumer_set_close(set);
    CHECK(daemon_stop(&daemon) == 0);
    daemon_directory_remove(directory);
}

static void test_bounded(void) {
    char directory[256];
    daemon_directory_make(directory, sizeof(directory), "set-bounded");
    struct daemon daemon;
    REQUIRE(daemon_start(&daemon, directory, daemon_flags));
    struct intake_producer *producer = producer_open(&daemon);
    for (int topic = 0; topic < 6; topic++) {
        char name[16];
        snprintf(name, sizeof(name), "t%d", topic);
        produce(producer, name, 0, 5);
    }
    struct intake_consumer_set_options options = {
        .consumer = &(struct intake_consumer_options){.start = INTAKE_CONSUMER_START_OLDEST,
                                                      .ephemeral = true},
        .topics_max = 4,
        .all_topics = true,
    };
    struct intake_consumer_set *set = NULL;
    char why[INTAKE_CONSUMER_ERROR_BYTES];
    REQUIRE(intake_consumer_set_open(directory, "bounded", &options, &set, why, sizeof(why)) == 0);
    struct intake_consumer_set_stats stats = INTAKE_CONSUMER_SET_STATS_INIT;
    intake_consumer_set_stats(set, &stats);
    CHECK(stats.topics_followed == 4);
    CHECK(stats.topics_refused == 2);
    CHECK(strstr(intake_consumer_set_error(set), "not followed") != NULL);
    uint64_t seen[6] = {0}, bad = 0;
    CHECK(drain(set, 20, seen, 6, &bad) == 20);
    CHECK(bad == 0);
    intake_producer_close(producer);
    intake_consumer_set_close(set);
    CHECK(daemon_stop(&daemon) == 0);
    daemon_directory_remove(directory);
}

static void test_restart(void) {
    char directory[256];
    daemon_directory_make(directory, sizeof(directory), "set-restart");
    struct daemon daemon;
    REQUIRE(daemon_start(&daemon, directory, daemon_flags));
    struct intake_producer *producer = producer_open(&daemon);
    produce(producer, "t0", 0, 10);
    intake_producer_close(producer);
    struct intake_consumer_set_options options = {
        .consumer = &(struct intake_consumer_options){.start = INTAKE_CONSUMER_START_OLDEST,
                                                      .ephemeral = true},
        .topics_max = 8,
        .all_topics = true,
    };
    struct intake_consumer_set *set = NULL;
    char why[INTAKE_CONSUMER_ERROR_BYTES];
    REQUIRE(intake_consumer_set_open(directory, "restart", &options, &set, why, sizeof(why)) == 0);
    uint64_t seen[2] = {0}, bad = 0;
    CHECK(drain(set, 10, seen, 2, &bad) == 10);
    CHECK(daemon_stop(&daemon) == 0);
    CHECK(!intake_consumer_set_writer_alive(set));
    REQUIRE(daemon_start(&daemon, directory, daemon_flags));
    CHECK(intake_consumer_set_writer_alive(set));
    producer = producer_open(&daemon);
    produce(producer, "t0", 10, 10);
    produce(producer, "t1", 0, 5);
    intake_producer_close(producer);
    CHECK(drain(set, 15, seen, 2, &bad) == 15);
    CHECK(seen[0] == 20 && seen[1] == 5 && bad == 0);
    CHECK(wake_once(directory, &daemon, "t1", set) == 1);
    CHECK(waiters_flag(directory) == 0);
    struct intake_consumer_set_record records[4];
    int got = intake_consumer_set_poll(set, records, 4);
    CHECK(got == 1 && strcmp(records[0].topic, "t1") == 0 && records[0].record.offset == 5);
    intake_consumer_set_close(set);
    CHECK(daemon_stop(&daemon) == 0);
    daemon_directory_remove(directory);
}

/* Sends record `number` of `topic` until one is acknowledged OK (the first after a log broke
 * may be answered INTERNAL: it was never readable). */
static void produce_until_ok(const struct daemon *daemon, const char *topic, int number) {
    for (int attempt = 0; attempt < 50; attempt++) {
        struct intake_producer *producer = producer_open(daemon);
        char value[64];
        int length = snprintf(value, sizeof(value), "%s#%d.", topic, number);
        uint64_t sequence = 0;
        bool acked = intake_producer_send(producer, topic, "k", 1, value, (size_t)length, 0,
                                          &sequence) == 0 &&
                     intake_producer_wait_acks(producer, sequence, 10000) == 0;
        intake_producer_close(producer);
        if (acked) return;
        struct timespec pause = {0, 20000000};
        nanosleep(&pause, NULL);
    }
    REQUIRE(!"a record was acknowledged after the log was recreated");
}

/* Whether the daemon quarantined a file named `prefix`.corrupt-* (it recreated the log). */
static bool quarantined(const char *directory, const char *prefix) {
    DIR *listing = opendir(directory);
    REQUIRE(listing != NULL);
    bool found = false;
    for (struct dirent *entry = readdir(listing); entry != NULL; entry = readdir(listing))
        if (strncmp(entry->d_name, prefix, strlen(prefix)) == 0 &&
            strstr(entry->d_name, ".corrupt-") != NULL)
            found = true;
    closedir(listing);
    return found;
}

static void test_recreated(void) {
    char directory[256];
    daemon_directory_make(directory, sizeof(directory), "set-recreated");
    struct daemon daemon;
    REQUIRE(daemon_start(&daemon, directory, daemon_flags));
    struct intake_producer *producer = producer_open(&daemon);
    produce(producer, "t0", 0, 10);
    intake_producer_close(producer);
    struct intake_consumer_set_options options = {
        .consumer = &(struct intake_consumer_options){.start = INTAKE_CONSUMER_START_OLDEST,
                                                      .ephemeral = true},
        .topics_max = 8,
        .all_topics = true,
    };
    struct intake_consumer_set *set = NULL;
    char why[INTAKE_CONSUMER_ERROR_BYTES];
    REQUIRE(intake_consumer_set_open(directory, "recreated", &options, &set, why, sizeof(why)) ==
            0);
    uint64_t seen[1] = {0}, bad = 0;
    CHECK(drain(set, 10, seen, 1, &bad) == 10);
    char path[512];
    snprintf(path, sizeof(path), "%s/t0.log", directory);
    REQUIRE(truncate(path, 0) == 0);
    produce_until_ok(&daemon, "t0", 10);
    producer = producer_open(&daemon);
    produce(producer, "t0", 11, 20);
    intake_producer_close(producer);
    CHECK(drain(set, 21, seen, 1, &bad) == 21);
    CHECK(seen[0] == 31 && bad == 0);
    struct intake_consumer_set_stats stats = INTAKE_CONSUMER_SET_STATS_INIT;
    intake_consumer_set_stats(set, &stats);
    CHECK(stats.topic_errors >= 1 && stats.topics_followed == 1);
    CHECK(quarantined(directory, "t0.log"));
    intake_consumer_set_close(set);
    CHECK(daemon_stop(&daemon) == 0);
    daemon_directory_remove(directory);
}

static uint64_t file_inode(const char *directory, const char *name, mode_t *mode) {
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", directory, name);
    struct stat status;
    if (stat(path, &status) != 0) return 0;
    if (mode != NULL) *mode = status.st_mode & 07777;
    return (uint64_t)status.st_ino;
}

static void test_notify_files(void) {
    char directory[256];
    daemon_directory_make(directory, sizeof(directory), "notify-files");
    REQUIRE(mkdir(directory, 0750) == 0);
    struct shm_notify notify;
    char why[512];
    REQUIRE(shm_notify_open(&notify, directory, false, 0, why, sizeof(why)) == 0);
    mode_t mode = 0, waiters_mode = 0;
    uint64_t inode = file_inode(directory, SHM_LOG_NOTIFY_FILE_NAME, &mode);
    uint64_t waiters_inode = file_inode(directory, SHM_LOG_NOTIFY_WAITERS_FILE_NAME, &waiters_mode);
    CHECK(inode != 0 && mode == 0640);
    CHECK(waiters_inode != 0 && waiters_mode == 0660);
    CHECK(notify.notify->magic == SHM_LOG_NOTIFY_MAGIC && notify.notify->version == 1);
    CHECK(notify.waiters->created_wall_ns == notify.notify->created_wall_ns);
    /* No sleeper flagged: the word moves, the flag stays 0. A flag is swapped back to 0. */
    shm_notify_published(&notify);
    CHECK(atomic_load(&notify.notify->publish_sequence) == 1);
    atomic_store(&notify.waiters->readers_waiting, 7);
    shm_notify_published(&notify);
    CHECK(atomic_load(&notify.notify->publish_sequence) == 2);
    CHECK(atomic_load(&notify.waiters->readers_waiting) == 0);
    shm_notify_logs_changed(&notify);
    CHECK(atomic_load(&notify.notify->logs_changed) == 1);
    shm_notify_close(&notify);
    /* A restart keeps both files (sleepers on them keep working)... */
    REQUIRE(shm_notify_open(&notify, directory, false, 0, why, sizeof(why)) == 0);
    CHECK(file_inode(directory, SHM_LOG_NOTIFY_FILE_NAME, NULL) == inode);
    CHECK(file_inode(directory, SHM_LOG_NOTIFY_WAITERS_FILE_NAME, NULL) == waiters_inode);
    CHECK(atomic_load(&notify.notify->publish_sequence) == 3); /* logs_changed bumped it */
    /* ...but a waiters file that is not the pair (garbage identity) is replaced. */
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", directory, SHM_LOG_NOTIFY_WAITERS_FILE_NAME);
    int fd = open(path, O_RDWR);
    REQUIRE(fd >= 0);
    uint8_t junk[64];
    memset(junk, 0x5a, sizeof(junk));
    CHECK(pwrite(fd, junk, sizeof(junk), 0) == (ssize_t)sizeof(junk));
    close(fd);
    shm_notify_close(&notify);
    REQUIRE(shm_notify_open(&notify, directory, false, 0, why, sizeof(why)) == 0);
    CHECK(file_inode(directory, SHM_LOG_NOTIFY_FILE_NAME, NULL) == inode);
    CHECK(file_inode(directory, SHM_LOG_NOTIFY_WAITERS_FILE_NAME, NULL) != waiters_inode);
    CHECK(notify.waiters->magic == SHM_LOG_NOTIFY_WAITERS_MAGIC);
    /* Truncated under the writer: the publish faults, the guard recovers, wakes go on. */
    fd = open(path, O_RDWR);
    REQUIRE(fd >= 0);
    CHECK(ftruncate(fd, 0) == 0);
    close(fd);
    uint64_t recovered = fault_guard_recovered_count();
    shm_notify_published(&notify);
    CHECK(fault_guard_recovered_count() == recovered + 1);
    CHECK(atomic_load(&notify.waiters_broken));
    CHECK(atomic_load(&notify.notify->publish_sequence) == 4);
    shm_notify_close(&notify);
    daemon_directory_remove(directory);
}

static void test_garbage(void) {
    char directory[256];
    daemon_directory_make(directory, sizeof(directory), "set-garbage");
    struct daemon daemon;
    REQUIRE(daemon_start(&daemon, directory, daemon_flags));
    struct intake_producer *producer = producer_open(&daemon);
    produce(producer, "t0", 0, 10);
    struct intake_consumer_set_options options = {
        .consumer = &(struct intake_consumer_options){.start = INTAKE_CONSUMER_START_END,
                                                      .ephemeral = true},
        .topics_max = 8,
        .all_topics = true,
    };
    struct intake_consumer_set *set = NULL;
    char why[INTAKE_CONSUMER_ERROR_BYTES];
    REQUIRE(intake_consumer_set_open(directory, "garbage", &options, &set, why, sizeof(why)) == 0);
    /* Scribble over the whole waiters file, identity included, as any group member could. */
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", directory, SHM_LOG_NOTIFY_WAITERS_FILE_NAME);
    int fd = open(path, O_RDWR);
    REQUIRE(fd >= 0);
    uint8_t junk[SHM_LOG_NOTIFY_FILE_BYTES];
    memset(junk, 0xa5, sizeof(junk));
    CHECK(pwrite(fd, junk, sizeof(junk), 0) == (ssize_t)sizeof(junk));
    produce(producer, "t0", 10, 100);
    produce(producer, "t1", 0, 100);
    /* Truncated under the daemon's mapping: its next publish faults and must survive it. */
    CHECK(ftruncate(fd, 0) == 0);
    close(fd);
    produce(producer, "t1", 100, 100);
    produce(producer, "t2", 0, 100);
    intake_producer_close(producer);
    uint64_t seen[3] = {10, 0, 0}, bad = 0;
    CHECK(drain(set, 400, seen, 3, &bad) == 400);
    CHECK(bad == 0);
    /* A waiting set is still woken: the daemon wakes on every publish now. */
    CHECK(wake_once(directory, &daemon, "t1", set) == 1);
    intake_consumer_set_close(set);
    CHECK(daemon_stop(&daemon) == 0);
    CHECK(strstr(daemon.log, "AddressSanitizer") == NULL);
    daemon_directory_remove(directory);
}

int main(void) {
    test_all_topics();
    test_listed();
    test_wake();
    test_bounded();
    test_restart();
    test_recreated();
    test_notify_files();
    test_garbage();
    return test_finish();
}
