/*
 * test_shm_log_daemon.c: a real intaked against shared-memory damage and restarts (issue 9).
 *
 *   truncated_log:  a topic's log truncated under the running daemon: the daemon survives (no
 *                   SIGBUS), the record caught in it is answered INTERNAL (never acked OK), the
 *                   log is quarantined and recreated, and the topic serves again.
 *   larger_restart: a restart with a larger --log-size and --max-frame keeps the existing log's
 *                   record limit: a larger record is REJECTED with a reason, the daemon lives.
 *   shm_group:      --shm-group gives the directory and files (the counters region too) the
 *                   group; an unsafe --shm-dir
 *                   is refused at startup with one line.
 */
#include <grp.h>

#include "daemon_util.h"

/* daemon_util.h helpers this program does not use. */
static void unused_helpers(void) __attribute__((unused));
static void unused_helpers(void) {
}
#include "intake/consumer.h"
#include "intake/producer.h"

static struct intake_producer *producer_open(const struct daemon *daemon) {
    struct intake_producer_config config = {.address = daemon->address, .acks = true};
    struct intake_producer *producer = NULL;
    char why[256];
    if (intake_producer_open(&config, &producer, why, sizeof(why)) != 0)
        fprintf(stderr, "producer: %s\n", why);
    REQUIRE(producer != NULL);
    return producer;
}

/* Sends `count` records of `bytes` to `topic` and waits for their acks: 0 or the error. */
static int produce(struct intake_producer *producer, const char *topic, int count, size_t bytes) {
    static char value[300000];
    memset(value, 'v', sizeof(value));
    uint64_t sequence = 0;
    for (int index = 0; index < count; index++) {
        int result = intake_producer_send(producer, topic, "k", 1, value, bytes, 0, &sequence);
        if (result != 0) return result;
    }
    return intake_producer_wait_acks(producer, sequence, 30000);
}

static int quarantined(const char *directory, const char *name) {
    char command[700];
    snprintf(command, sizeof(command), "ls %s | grep -c '^%s\\.corrupt-'", directory, name);
    FILE *pipe = popen(command, "r");
    REQUIRE(pipe != NULL);
    int count = -1;
    if (fscanf(pipe, "%d", &count) != 1) count = -1;
    pclose(pipe);
    return count;
}

static void test_truncated_log(void) {
    char directory[256];
    daemon_directory_make(directory, sizeof(directory), "truncated");
    const char *const flags[] = {"--backend", "pbuf",        "--topic", "t", "--log-size",
                                 "64K",       "--max-frame", "16K",     NULL};
    struct daemon daemon;
    REQUIRE(daemon_start(&daemon, directory, flags));
    struct intake_producer *producer = producer_open(&daemon);
    CHECK(produce(producer, "t", 10, 1000) == 0);
    char path[400];
    snprintf(path, sizeof(path), "%s/t.log", directory);
    REQUIRE(truncate(path, 4096) == 0); /* the header stays, the ring is gone */
    /* The next record lands in the missing ring: answered INTERNAL, not acked. */
    int result = produce(producer, "t", 1, 1000);
    CHECK(result == -EPROTO);
    CHECK(strstr(intake_producer_last_error(producer), "INTERNAL") != NULL);
    intake_producer_close(producer);
    CHECK(kill(daemon.pid, 0) == 0); /* alive */
    CHECK(quarantined(directory, "t.log") == 1);
    /* The topic serves again from a recreated log, offsets continuing. */
    producer = producer_open(&daemon);
    CHECK(produce(producer, "t", 5, 1000) == 0);
    intake_producer_close(producer);
    struct intake_consumer_options options = {
        .start = INTAKE_CONSUMER_START_OLDEST, .start_offset = 0, .ephemeral = true};
    struct intake_consumer *consumer = NULL;
    char why[INTAKE_CONSUMER_ERROR_BYTES];
    REQUIRE(intake_consumer_open(directory, "t", "check", &options, &consumer, why, sizeof(why)) ==
            0);
    struct intake_consumer_record record;
    int count = 0;
    while (intake_consumer_poll(consumer, &record) == 1) {
        CHECK(record.offset == 10 + (uint64_t)count);
        count++;
    }
    CHECK(count == 5);
    intake_consumer_close(consumer);
    CHECK(daemon_stop(&daemon) == 0);
    CHECK(strstr(daemon.log, "failed its checks (the file was truncated") != NULL);
    daemon_directory_remove(directory);
}

static void test_larger_restart(void) {
    char directory[256];
    daemon_directory_make(directory, sizeof(directory), "larger");
    const char *const small[] = {"--backend", "pbuf",        "--topic", "big", "--log-size",
                                 "64K",       "--max-frame", "16K",     NULL};
    struct daemon daemon;
    REQUIRE(daemon_start(&daemon, directory, small));
    struct intake_producer *producer = producer_open(&daemon);
    CHECK(produce(producer, "big", 3, 1000) == 0);
    intake_producer_close(producer);
    CHECK(daemon_stop(&daemon) == 0);
    const char *const large[] = {"--backend", "pbuf",        "--topic", "big", "--log-size",
                                 "4M",        "--max-frame", "256K",    NULL};
    REQUIRE(daemon_start(&daemon, directory, large));
    producer = producer_open(&daemon);
    CHECK(produce(producer, "big", 1, 200000) == -EPROTO);
    CHECK(strstr(intake_producer_last_error(producer), "REJECTED") != NULL);
    intake_producer_close(producer);
    CHECK(kill(daemon.pid, 0) == 0);
    producer = producer_open(&daemon);
    CHECK(produce(producer, "big", 2, 1000) == 0);
    intake_producer_close(producer);
    CHECK(daemon_stop(&daemon) == 0);
    CHECK(strstr(daemon.log, "assertion failed") == NULL);
    daemon_directory_remove(directory);
}

static void test_shm_group(void) {
    char directory[256];
    daemon_directory_make(directory, sizeof(directory), "group");
    struct group *found = getgrnam("nogroup");
    if (found == NULL || geteuid() != 0) {
        printf("shm_group: skipped (no group nogroup, or not root)\n");
        return;
    }
    const char *const flags[] = {"--backend",   "pbuf",    "--topic", "g",
                                 "--shm-group", "nogroup", NULL};
    struct daemon daemon;
    REQUIRE(daemon_start(&daemon, directory, flags));
    char path[400];
    struct stat status;
    /* The log opener makes the log, then its consumer region: wait for the second. */
    snprintf(path, sizeof(path), "%s/g.consumers", directory);
    for (int attempt = 0; attempt < 1000 && stat(path, &status) != 0; attempt++) usleep(10000);
    snprintf(path, sizeof(path), "%s/g.log", directory);
    REQUIRE(stat(path, &status) == 0);
    CHECK(status.st_gid == found->gr_gid && (status.st_mode & 07777) == 0640);
    snprintf(path, sizeof(path), "%s/g.consumers", directory);
    REQUIRE(stat(path, &status) == 0);
    CHECK(status.st_gid == found->gr_gid && (status.st_mode & 07777) == 0660);
    REQUIRE(stat(directory, &status) == 0);
    CHECK(status.st_gid == found->gr_gid && (status.st_mode & 07777) == 0750);
    /* The counters region names every topic: the log group's too, not everyone's. */
    snprintf(path, sizeof(path), "%s/intake.counters", directory);
    REQUIRE(stat(path, &status) == 0);
    CHECK(status.st_gid == found->gr_gid && (status.st_mode & 07777) == 0640);
    CHECK(daemon_stop(&daemon) == 0);
    /* Writable by others: refused before anything starts. */
    REQUIRE(chmod(directory, 0777) == 0);
    char command[600];
    snprintf(command, sizeof(command), "%s/intaked --shm-dir %s --listen 127.0.0.1:0 2>&1",
             getenv("INTAKE_BIN_DIR") ? getenv("INTAKE_BIN_DIR") : ".", directory);
    FILE *pipe = popen(command, "r");
    REQUIRE(pipe != NULL);
    char line[512] = "";
    CHECK(fgets(line, sizeof(line), pipe) != NULL);
    CHECK(WEXITSTATUS(pclose(pipe)) == 1);
    CHECK(strstr(line, "is writable by others") != NULL);
    daemon_directory_remove(directory);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    test_truncated_log();
    test_larger_restart();
    test_shm_group();
    return test_finish();
}
