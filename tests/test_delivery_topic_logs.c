/*
 * test_delivery_topic_logs: what a producer is told when a topic's log cannot take its records,
 * against a real intaked. Each scenario also checks that nothing the producer was not acked for
 * is committed (so resending from the last Ack never duplicates), and that the daemon survives.
 *
 *   log_limit_after_restart  a log keeps the record limit it was made with: after a restart with
 *                            a larger --log-size and --max-frame, a record above that limit is
 *                            refused REJECTED with the sizes named, whether the topic's log was
 *                            open yet (the worker's check) or not (the reactor's, at admission);
 *                            the daemon lives on, other topics work, later records of the
 *                            refused connection are not committed;
 *   log_allocation_failure   on a tiny tmpfs, a topic whose log cannot be allocated answers
 *                            RESOURCE_EXHAUSTED with the real reason; the same connection's
 *                            records to other topics after it are not committed; other
 *                            connections and topics work; once space is freed the topic
 *                            recovers without a restart (retried at most once a second);
 *   topics_per_connection    a connection creates at most --topics-per-connection topics; the
 *                            next one ends it with RESOURCE_EXHAUSTED; existing topics and other
 *                            connections are unaffected.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "daemon_util.h"
#include "harness.h"
#include "intake/consumer.h"
#include "raw_client.h"
#include "record.h"
#include "record_decode.h"

#define ACK_TIMEOUT_MS 10000

static void sleep_ms(long milliseconds) {
    struct timespec pause = {milliseconds / 1000, (milliseconds % 1000) * 1000000L};
    nanosleep(&pause, NULL);
}

/* The indexes (first 4 value bytes) of every record in `topic`'s log, oldest first. */
static uint32_t topic_indexes(const char *directory, const char *topic, uint32_t *indexes,
                              uint32_t capacity) {
    struct intake_consumer_options options = {.start = INTAKE_CONSUMER_START_OLDEST,
                                              .ephemeral = true};
    struct intake_consumer *consumer = NULL;
    char why[INTAKE_CONSUMER_ERROR_BYTES] = "";
    int result =
        intake_consumer_open(directory, topic, "checker", &options, &consumer, why, sizeof(why));
    if (result == -ENOENT) return 0;
    if (result != 0) fprintf(stderr, "consumer of %s: %s\n", topic, why);
    REQUIRE(result == 0);
    uint32_t count = 0;
    struct intake_consumer_record record;
    while (intake_consumer_poll(consumer, &record) == 1) {
        struct slice slice = {record.bytes, record.length, 0};
        struct record_view view = {&slice, 1, record.length};
        struct record_decoded decoded;
        const char *detail = NULL;
        REQUIRE(record_decode(&view, &decoded, &detail) == RECORD_DECODE_OK);
        REQUIRE(decoded.value.length >= 4);
        REQUIRE(count < capacity);
        memcpy(&indexes[count++], record.bytes + decoded.value.offset, 4);
    }
    intake_consumer_close(consumer);
    return count;
}

static int connect_daemon(const struct daemon *daemon, struct raw_ack_reader *reader) {
    memset(reader, 0, sizeof(*reader));
    reader->fd = raw_connect_port(daemon->port);
    return reader->fd;
}

/* ----------------------------------------------------- log_limit_after_restart --- */

static void test_log_limit_after_restart(void) {
    char directory[256];
    daemon_directory_make(directory, sizeof(directory), "limit");
    static struct raw_ack_reader reader;
    struct raw_ack ack;
    struct daemon daemon;

    /* First life: 64 KiB logs, so each takes records up to 16 KiB. */
    const char *const small[] = {"--backend",   "pbuf", "--log-size", "64K",
                                 "--max-frame", "16K",  NULL};
    REQUIRE(daemon_start(&daemon, directory, small));
    int fd = connect_daemon(&daemon, &reader);
    raw_send_record(fd, "small", 1, 1000, 1);
    raw_send_record(fd, "small-unopened", 2, 1000, 2);
    CHECK(!raw_read_acks(&reader, 2, ACK_TIMEOUT_MS, &ack) && ack.sequence == 2);
    close(fd);
    CHECK(daemon_stop(&daemon) == 0);

    /* Second life: larger logs and frames. The existing logs keep their 16 KiB limit. */
    const char *const large[] = {"--backend", "pbuf",    "--log-size", "1M", "--max-frame",
                                 "256K",      "--topic", "small",      NULL};
    REQUIRE(daemon_start(&daemon, directory, large));

    /* The topic's log is not open when its first record arrives (the topic is not configured):
     * the worker refuses it; the record after it, to another topic, is never committed. */
    fd = connect_daemon(&daemon, &reader);
    raw_send_record(fd, "small-unopened", 10, 100000, 1);
    raw_send_record(fd, "fresh", 11, 100, 2);
    bool final = raw_read_acks(&reader, 0, ACK_TIMEOUT_MS, &ack);
    CHECK(final);
    CHECK(ack.status == RAW_ACK_REJECTED);
    CHECK(ack.sequence == 0);
    CHECK(strstr(ack.detail, "exceeds this topic's log limit of 16384 bytes") != NULL);
    fprintf(stderr, "log_limit (worker check): Ack{%" PRIu64 ", %u, \"%s\"}\n", ack.sequence,
            ack.status, ack.detail);
    close(fd);

    /* The topic's log is open (configured topic): refused at admission, with both sizes. */
    fd = connect_daemon(&daemon, &reader);
    raw_send_record(fd, "small", 20, 1000, 1);
    raw_send_record(fd, "small", 21, 100000, 2);
    raw_send_record(fd, "fresh", 22, 100, 3);
    final = raw_read_acks(&reader, 0, ACK_TIMEOUT_MS, &ack);
    CHECK(final);
    CHECK(ack.status == RAW_ACK_REJECTED);
    CHECK(ack.sequence == 1);
    unsigned named_bytes = 0;
    CHECK(sscanf(ack.detail, "record of %u bytes", &named_bytes) == 1 && named_bytes > 100000);
    CHECK(strstr(ack.detail, "exceeds this topic's log limit of 16384 bytes") != NULL);
    CHECK(strstr(ack.detail, "--log-size") != NULL);
    fprintf(stderr, "log_limit (admission): Ack{%" PRIu64 ", %u, \"%s\"}\n", ack.sequence,
            ack.status, ack.detail);
    close(fd);

    /* The daemon lives on: other topics, and the same topic within its limit, work. */
    fd = connect_daemon(&daemon, &reader);
    raw_send_record(fd, "fresh", 30, 100, 1);
    raw_send_record(fd, "small", 31, 1000, 2);
    raw_send_record(fd, "small-unopened", 32, 16000, 3);
    CHECK(!raw_read_acks(&reader, 3, ACK_TIMEOUT_MS, &ack) && ack.sequence == 3 && ack.status == 0);
    close(fd);

    uint32_t indexes[16];
    uint32_t count = topic_indexes(directory, "fresh", indexes, 16);
    CHECK(count == 1 && indexes[0] == 30);
    count = topic_indexes(directory, "small", indexes, 16);
    CHECK(count == 3 && indexes[0] == 1 && indexes[1] == 20 && indexes[2] == 31);
    count = topic_indexes(directory, "small-unopened", indexes, 16);
    CHECK(count == 2 && indexes[0] == 2 && indexes[1] == 32);

    CHECK(daemon_stop(&daemon) == 0);
    CHECK(strstr(daemon.log, "its log takes records up to 16384 bytes") != NULL);
    CHECK(DAEMON_REACTOR_COUNTER(&daemon, records_over_log_limit) == 1);
    daemon_directory_remove(directory);
}

/* ----------------------------------------------------- log_allocation_failure --- */

/* 1 MiB of tmpfs, of which a filler takes 600 KiB: one 256 KiB log (plus its 12 KiB header)
 * fits, a second does not until the filler goes. */
#define TMPFS_OPTIONS "size=1m"
#define FILLER_BYTES  (600 * 1024)

/* The mount outlives a failed REQUIRE otherwise (it exits): unmounted at exit too. */
static char mounted_at[256];

static void tmpfs_unmount(void) {
    if (mounted_at[0] == '\0') return;
    umount2(mounted_at, MNT_DETACH);
    rmdir(mounted_at);
    mounted_at[0] = '\0';
}

static bool filler_create(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return false;
    bool done = posix_fallocate(fd, 0, FILLER_BYTES) == 0;
    close(fd);
    return done;
}

static void test_log_allocation_failure(void) {
    char mount_point[256], directory[300], filler[300];
    snprintf(mount_point, sizeof(mount_point), "/tmp/intake-tmpfs-%d", (int)getpid());
    snprintf(directory, sizeof(directory), "%s/logs", mount_point);
    snprintf(filler, sizeof(filler), "%s/filler", mount_point);
    mkdir(mount_point, 0700);
    if (mount("tmpfs", mount_point, "tmpfs", 0, TMPFS_OPTIONS) != 0) {
        fprintf(stderr, "log_allocation_failure: SKIPPED: cannot mount a tmpfs (%s); needs root\n",
                strerror(errno));
        rmdir(mount_point);
        return;
    }
    snprintf(mounted_at, sizeof(mounted_at), "%s", mount_point);
    atexit(tmpfs_unmount);
    REQUIRE(filler_create(filler));
    static struct raw_ack_reader reader;
    struct raw_ack ack;
    struct daemon daemon;
    /* --topics-max 8 keeps the counters region (one row per possible topic, in the same
     * directory) small next to the logs this tiny tmpfs is sized for, and --dedupe-producers 16
     * each topic's deduplication table (5 KiB instead of 288 KiB). */
    const char *const flags[] = {
        "--backend",    "pbuf", "--log-size",         "256K", "--max-frame", "64K",
        "--topics-max", "8",    "--dedupe-producers", "16",   NULL};
    REQUIRE(daemon_start(&daemon, directory, flags));

    /* t1's log fits, t2's does not. Record 3 (to t1, after the failed one) must not commit. */
    int fd = connect_daemon(&daemon, &reader);
    raw_send_record(fd, "t1", 1, 100, 1);
    raw_send_record(fd, "t2", 2, 100, 2);
    raw_send_record(fd, "t1", 3, 100, 3);
    bool final = raw_read_acks(&reader, 0, ACK_TIMEOUT_MS, &ack);
    CHECK(final);
    CHECK(ack.status == RAW_ACK_RESOURCE_EXHAUSTED);
    CHECK(ack.sequence == 1);
    CHECK(strstr(ack.detail, "cannot allocate 256 KiB for topic") != NULL);
    CHECK(strstr(ack.detail, "\"t2\"") != NULL);
    CHECK(strstr(ack.detail, "No space left on device") != NULL);
    fprintf(stderr, "log_allocation_failure: Ack{%" PRIu64 ", %u, \"%s\"}\n", ack.sequence,
            ack.status, ack.detail);
    close(fd);

    /* Right after the failure, t2 answers at once with the same reason (no retry storm). */
    fd = connect_daemon(&daemon, &reader);
    raw_send_record(fd, "t2", 4, 100, 1);
    final = raw_read_acks(&reader, 0, ACK_TIMEOUT_MS, &ack);
    CHECK(final && ack.status == RAW_ACK_RESOURCE_EXHAUSTED && ack.sequence == 0);
    CHECK(strstr(ack.detail, "No space left on device") != NULL);
    close(fd);

    /* Other topics and connections keep working. */
    fd = connect_daemon(&daemon, &reader);
    raw_send_record(fd, "t1", 5, 100, 1);
    CHECK(!raw_read_acks(&reader, 1, ACK_TIMEOUT_MS, &ack) && ack.sequence == 1 && ack.status == 0);
    close(fd);
    uint32_t indexes[16];
    uint32_t count = topic_indexes(directory, "t1", indexes, 16);
    CHECK(count == 2 && indexes[0] == 1 && indexes[1] == 5);

    /* Space freed: after the backoff, the next record for t2 makes its log, no restart. */
    CHECK(unlink(filler) == 0);
    sleep_ms(1100);
    fd = connect_daemon(&daemon, &reader);
    raw_send_record(fd, "t2", 6, 100, 1);
    raw_send_record(fd, "t1", 7, 100, 2);
    final = raw_read_acks(&reader, 2, ACK_TIMEOUT_MS, &ack);
    CHECK(!final && ack.sequence == 2 && ack.status == 0);
    if (final) fprintf(stderr, "t2 after freeing space: \"%s\"\n", ack.detail);
    close(fd);
    count = topic_indexes(directory, "t2", indexes, 16);
    CHECK(count == 1 && indexes[0] == 6);

    CHECK(daemon_stop(&daemon) == 0);
    CHECK(DAEMON_WORKER_COUNTER(&daemon, log_retries) >= 1);
    tmpfs_unmount();
}

/* ------------------------------------------------------ topics_per_connection --- */

static void test_topics_per_connection(void) {
    char directory[256];
    daemon_directory_make(directory, sizeof(directory), "per-connection");
    static struct raw_ack_reader reader;
    struct raw_ack ack;
    struct daemon daemon;
    const char *const flags[] = {"--backend",
                                 "pbuf",
                                 "--log-size",
                                 "64K",
                                 "--max-frame",
                                 "16K",
                                 "--topics-per-connection",
                                 "2",
                                 "--topic",
                                 "configured",
                                 NULL};
    REQUIRE(daemon_start(&daemon, directory, flags));

    /* Creates a and b; uses the configured topic (created by nobody here); c is one too many. */
    int fd = connect_daemon(&daemon, &reader);
    raw_send_record(fd, "a", 1, 100, 1);
    raw_send_record(fd, "b", 2, 100, 2);
    raw_send_record(fd, "configured", 3, 100, 3);
    raw_send_record(fd, "a", 4, 100, 4);
    raw_send_record(fd, "c", 5, 100, 5);
    raw_send_record(fd, "a", 6, 100, 6);
    bool final = raw_read_acks(&reader, 0, ACK_TIMEOUT_MS, &ack);
    CHECK(final);
    CHECK(ack.status == RAW_ACK_RESOURCE_EXHAUSTED);
    CHECK(ack.sequence == 4);
    CHECK(strstr(ack.detail, "--topics-per-connection") != NULL);
    fprintf(stderr, "topics_per_connection: Ack{%" PRIu64 ", %u, \"%s\"}\n", ack.sequence,
            ack.status, ack.detail);
    close(fd);

    /* Another connection has its own allowance. */
    fd = connect_daemon(&daemon, &reader);
    raw_send_record(fd, "c", 7, 100, 1);
    raw_send_record(fd, "a", 8, 100, 2);
    CHECK(!raw_read_acks(&reader, 2, ACK_TIMEOUT_MS, &ack) && ack.sequence == 2 && ack.status == 0);
    close(fd);

    uint32_t indexes[16];
    CHECK(topic_indexes(directory, "a", indexes, 16) == 3);
    CHECK(indexes[0] == 1 && indexes[1] == 4 && indexes[2] == 8);
    CHECK(topic_indexes(directory, "c", indexes, 16) == 1 && indexes[0] == 7);
    CHECK(daemon_stop(&daemon) == 0);
    CHECK(DAEMON_REACTOR_COUNTER(&daemon, topic_creations_refused) == 1);
    daemon_directory_remove(directory);
}

/* With an argument, runs only the scenario of that name. */
int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    const char *only = argc > 1 ? argv[1] : NULL;
    if (!only || strcmp(only, "log_limit_after_restart") == 0) test_log_limit_after_restart();
    if (!only || strcmp(only, "log_allocation_failure") == 0) test_log_allocation_failure();
    if (!only || strcmp(only, "topics_per_connection") == 0) test_topics_per_connection();
    return test_finish();
}
