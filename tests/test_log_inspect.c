/*
 * test_log_inspect.c: intake_log_inspect, the consumer library's read-only look at a log and
 * its consumers (include/intake/consumer.h), against logs written in this process (shm_log.h,
 * with the directory's wake-up files open as intaked has them).
 *
 *   fields:      every field against what was written: topic, sizes, retention, positions and
 *                offsets, consumers (active and detached, ephemeral, lag in bytes and records),
 *                the writer's liveness on request; by topic and by file name.
 *   arguments:   no log (-ENOENT), a struct_bytes below the 1.0 size (-EINVAL), 0 (the 1.0
 *                size), a longer (newer) struct's own bytes left alone, consumers[] written
 *                only as far as consumer_count, a topic that is not the file's.
 *   damage:      a bad magic (-EBADMSG), another version (-EPROTO), a region of another log
 *                (reported unreadable, the log's part still there).
 *   truncation:  the region and the log truncated under a cached look: -EIO (no SIGBUS), then
 *                the files restored are read afresh.
 *   replaced:    a log recreated (intake.notify's logs_changed moves): the next look reports the
 *                new log; a log removed without a daemon: reported gone once revalidated.
 *   eviction:    an inspector for 2 logs looking at 3 in turn stays correct.
 */
#include <fcntl.h>
#include <stddef.h>
#include <time.h>

#include "harness.h"
#include "intake/consumer.h"
#include "intake/shm_log_format.h"
#include "shm_notify.h"
#include "shm_test_util.h"

static uint8_t record_buffer[1u << 16];
static struct shm_notify notify;
static struct intake_log_info info;
static char why[INTAKE_CONSUMER_ERROR_BYTES];

static struct shm_log *writer_open(const char *topic, enum shm_log_retention retention) {
    struct shm_log *log =
        test_writer_try_open(topic, 1u << 16, retention, 10ull * 1000 * 1000 * 1000, &notify);
    REQUIRE(log != NULL);
    return log;
}

static uint64_t append_range(struct shm_log *log, uint64_t first, uint64_t end) {
    uint64_t assigned = 0, bytes = 0;
    for (uint64_t offset = first; offset < end; offset++) {
        REQUIRE(pattern_append(log, offset, 1000, record_buffer, &assigned) == SHM_LOG_APPENDED);
        bytes += shm_log_entry_span(pattern_length(offset, 1000));
    }
    REQUIRE(shm_log_publish(log));
    return bytes;
}

static struct intake_consumer *consumer_open(const char *topic, const char *name, bool ephemeral) {
    struct intake_consumer_options options = {.start = INTAKE_CONSUMER_START_OLDEST,
                                              .ephemeral = ephemeral};
    struct intake_consumer *consumer = NULL;
    REQUIRE(intake_consumer_open(test_directory, topic, name, &options, &consumer, why,
                                 sizeof(why)) == 0);
    return consumer;
}

static int look(struct intake_log_inspector *inspector, const char *name, uint32_t flags) {
    memset(&info, 0xa5, sizeof(info)); /* nothing left over from a look before */
    info.struct_bytes = sizeof(info);
    return intake_log_inspect(inspector, name, flags, &info, why, sizeof(why));
}

static const struct intake_log_consumer *consumer_named(const char *name) {
    for (uint32_t index = 0; index < info.consumer_count; index++)
        if (strcmp(info.consumers[index].name, name) == 0) return &info.consumers[index];
    return NULL;
}

static void file_path(const char *topic, const char *suffix, char *out, size_t capacity) {
    char name[SHM_LOG_FILE_NAME_BYTES];
    shm_log_file_base_name(topic, name);
    snprintf(out, capacity, "%s/%s%s", test_directory, name, suffix);
}

static void file_write(const char *topic, const char *suffix, uint64_t at, const void *bytes,
                       size_t length) {
    char path[4096];
    file_path(topic, suffix, path, sizeof(path));
    int fd = open(path, O_WRONLY);
    REQUIRE(fd >= 0);
    REQUIRE(pwrite(fd, bytes, length, (off_t)at) == (ssize_t)length);
    close(fd);
}

static struct intake_log_inspector *inspector_open(uint32_t logs_max) {
    struct intake_log_inspector *inspector = NULL;
    REQUIRE(intake_log_inspector_open(test_directory, logs_max, &inspector, why, sizeof(why)) == 0);
    return inspector;
}

static void test_fields(void) {
    struct shm_log *log = writer_open("orders/eu", SHM_LOG_RETENTION_BLOCK);
    uint64_t bytes = append_range(log, 0, 20);
    struct intake_consumer *reader = consumer_open("orders/eu", "reader", false);
    struct intake_consumer *tail = consumer_open("orders/eu", "tail", true);
    struct intake_consumer_record record;
    for (int index = 0; index < 5; index++) REQUIRE(intake_consumer_poll(reader, &record) == 1);
    intake_consumer_commit(reader);
    intake_consumer_close(reader); /* detached, its cursor at offset 5 */
    struct intake_log_inspector *inspector = inspector_open(8);
    REQUIRE(look(inspector, "orders/eu", INTAKE_LOG_INSPECT_WRITER) == 0);
    CHECK(strcmp(info.topic, "orders/eu") == 0);
    CHECK(info.version == SHM_LOG_VERSION);
    CHECK(info.capacity_bytes == 1u << 16);
    CHECK(info.record_bytes_max == (1u << 16) / 4);
    CHECK(info.retention == INTAKE_LOG_RETENTION_BLOCK);
    CHECK(info.writer_pid == (int32_t)getpid());
    CHECK(info.consumer_stale_ns == 10ull * 1000 * 1000 * 1000);
    CHECK(info.commit_position == bytes);
    CHECK(info.commit_offset == 20);
    CHECK(info.retained_position == 0 && info.retained_offset == 0);
    CHECK(info.created_wall_ns != 0);
    CHECK(info.writer_alive == 1);
    CHECK(info.consumers_readable == 1);
    CHECK(info.consumer_count == 2);
    const struct intake_log_consumer *detached = consumer_named("reader");
    REQUIRE(detached != NULL);
    CHECK(detached->state == INTAKE_LOG_CONSUMER_DETACHED && detached->ephemeral == 0);
    CHECK(detached->committed_offset == 5);
    CHECK(detached->lag_records == 15);
    CHECK(detached->lag_bytes == bytes - detached->read_position);
    const struct intake_log_consumer *live = consumer_named("tail");
    REQUIRE(live != NULL);
    CHECK(live->state == INTAKE_LOG_CONSUMER_ACTIVE && live->ephemeral == 1);
    CHECK(live->pid == (int32_t)getpid());
    CHECK(live->committed_offset == INTAKE_LOG_OFFSET_NONE && live->lag_records == 0);
    CHECK(live->lag_bytes == bytes); /* it has read nothing */
    CHECK(live->slot < INTAKE_LOG_CONSUMERS_MAX && live->slot != detached->slot);
    /* A second look sees what moved meanwhile (from the cached mappings). */
    uint64_t more = append_range(log, 20, 30);
    REQUIRE(look(inspector, "orders/eu", 0) == 0);
    CHECK(info.commit_position == bytes + more);
    CHECK(info.commit_offset == 30);
    CHECK(consumer_named("reader") != NULL && consumer_named("reader")->lag_records == 25);
    /* By file name, as a directory listing shows it. */
    REQUIRE(look(inspector, "orders%2Feu.log", INTAKE_LOG_INSPECT_FILE_NAME) == 0);
    CHECK(strcmp(info.topic, "orders/eu") == 0 && info.commit_offset == 30);
    intake_consumer_close(tail);
    shm_log_close(log);
    REQUIRE(look(inspector, "orders/eu", INTAKE_LOG_INSPECT_WRITER) == 0);
    CHECK(info.writer_alive == 0 && info.writer_pid == 0);
    CHECK(info.consumer_count == 1); /* the ephemeral slot was freed on close */
    intake_log_inspector_close(inspector);
}

static void test_arguments(void) {
    struct intake_log_inspector *inspector = inspector_open(8);
    CHECK(look(inspector, "absent", 0) == -ENOENT);
    CHECK(strstr(why, "absent") != NULL);
    CHECK(look(inspector, "", 0) == -EINVAL);
    CHECK(look(inspector, "not-a-log-name", INTAKE_LOG_INSPECT_FILE_NAME) == -EINVAL);
    /* A struct that grows: shorter than 1.0's is refused; 0 is 1.0's; a newer caller's longer
     * struct keeps the bytes past ours; consumers[] is written as far as consumer_count. */
    info.struct_bytes = 8;
    CHECK(intake_log_inspect(inspector, "orders/eu", 0, &info, why, sizeof(why)) == -EINVAL);
    static union {
        struct intake_log_info info;
        uint8_t bytes[sizeof(struct intake_log_info) + 64];
    } room;
    memset(&room, 0x5a, sizeof(room));
    room.info.struct_bytes = 0;
    struct intake_consumer *first = consumer_open("orders/eu", "first", true);
    CHECK(intake_log_inspect(inspector, "orders/eu", 0, &room.info, why, sizeof(why)) == 0);
    CHECK(room.info.struct_bytes == 0); /* kept */
    CHECK(room.info.commit_offset == 30);
    CHECK(room.info.consumer_count == 2);
    const uint8_t *unwritten = (const uint8_t *)&room.info.consumers[room.info.consumer_count];
    CHECK(unwritten[0] == 0x5a); /* consumers past consumer_count are left as they were */
    memset(&room, 0x5a, sizeof(room));
    room.info.struct_bytes = (uint32_t)sizeof(room);
    CHECK(intake_log_inspect(inspector, "orders/eu", 0, &room.info, why, sizeof(why)) == 0);
    CHECK(room.info.commit_offset == 30 && room.info.consumer_count == 2);
    CHECK(room.bytes[sizeof(struct intake_log_info)] == 0x5a); /* a newer caller's own bytes */
    intake_consumer_close(first);
    /* A file whose name is not its topic's. */
    char from[4096], to[4096];
    file_path("orders/eu", ".log", from, sizeof(from));
    file_path("renamed", ".log", to, sizeof(to));
    REQUIRE(link(from, to) == 0);
    CHECK(look(inspector, "renamed", 0) == -EBADMSG);
    CHECK(look(inspector, "renamed.log", INTAKE_LOG_INSPECT_FILE_NAME) == -EBADMSG);
    unlink(to);
    intake_log_inspector_close(inspector);
}

static void test_damage(void) {
    struct shm_log *log = writer_open("damaged", SHM_LOG_RETENTION_OVERWRITE);
    append_range(log, 0, 3);
    shm_log_close(log);
    struct intake_log_inspector *inspector = inspector_open(8);
    uint32_t version = 99;
    file_write("damaged", ".log", offsetof(struct shm_log_header, version), &version, 4);
    CHECK(look(inspector, "damaged", 0) == -EPROTO);
    uint64_t magic = 0;
    file_write("damaged", ".log", 0, &magic, 8);
    CHECK(look(inspector, "damaged", 0) == -EBADMSG);
    intake_log_inspector_close(inspector);
    /* A region whose pairing does not match: the log is reported, its consumers unknown. */
    log = writer_open("unpaired", SHM_LOG_RETENTION_OVERWRITE);
    append_range(log, 0, 3);
    shm_log_close(log);
    uint64_t other = 12345;
    file_write("unpaired", ".consumers", offsetof(struct shm_log_consumers, log_created_wall_ns),
               &other, 8);
    inspector = inspector_open(8);
    REQUIRE(look(inspector, "unpaired", 0) == 0);
    CHECK(info.commit_offset == 3);
    CHECK(info.consumers_readable == 0 && info.consumer_count == 0);
    intake_log_inspector_close(inspector);
}

static void test_truncation(void) {
    struct shm_log *log = writer_open("truncated", SHM_LOG_RETENTION_OVERWRITE);
    append_range(log, 0, 4);
    struct intake_consumer *reader = consumer_open("truncated", "reader", false);
    struct intake_log_inspector *inspector = inspector_open(8);
    REQUIRE(look(inspector, "truncated", 0) == 0);
    CHECK(info.consumer_count == 1);
    char path[4096];
    file_path("truncated", ".consumers", path, sizeof(path));
    /* Truncated under the cached mapping: the look reads the slots, faults, and says so. */
    REQUIRE(truncate(path, 0) == 0);
    CHECK(look(inspector, "truncated", 0) == -EIO);
    CHECK(strstr(why, "truncated") != NULL);
    /* Restored: read afresh (its identity is gone with the zeros: consumers unknown). */
    REQUIRE(truncate(path, SHM_LOG_CONSUMERS_FILE_BYTES) == 0);
    REQUIRE(look(inspector, "truncated", 0) == 0);
    CHECK(info.commit_offset == 4);
    CHECK(info.consumers_readable == 0);
    intake_consumer_close(reader);
    /* The log cut to nothing under the cached header page: -EIO, and afresh it is not a
     * log's size; extended back, its zeros are no log. */
    file_path("truncated", ".log", path, sizeof(path));
    REQUIRE(look(inspector, "truncated", 0) == 0);
    REQUIRE(truncate(path, 0) == 0);
    CHECK(look(inspector, "truncated", 0) == -EIO);
    CHECK(look(inspector, "truncated", 0) == -EBADMSG);
    REQUIRE(truncate(path, SHM_LOG_HEADER_BYTES + (1u << 16)) == 0);
    REQUIRE(look(inspector, "truncated", 0) == -EBADMSG); /* zeros: no magic */
    intake_log_inspector_close(inspector);
    shm_log_close(log);
}

static void test_replaced(void) {
    struct shm_log *log = writer_open("replaced", SHM_LOG_RETENTION_OVERWRITE);
    append_range(log, 0, 7);
    shm_log_close(log);
    struct intake_log_inspector *inspector = inspector_open(8);
    REQUIRE(look(inspector, "replaced", 0) == 0);
    uint64_t first_created = info.created_wall_ns;
    CHECK(info.commit_offset == 7);
    /* Quarantined and recreated, as intaked does (which bumps logs_changed). */
    char path[4096], moved[4200];
    file_path("replaced", ".log", path, sizeof(path));
    snprintf(moved, sizeof(moved), "%s.corrupt-1", path);
    REQUIRE(rename(path, moved) == 0);
    log = writer_open("replaced", SHM_LOG_RETENTION_OVERWRITE);
    shm_notify_logs_changed(&notify);
    append_range(log, 0, 2);
    REQUIRE(look(inspector, "replaced", 0) == 0);
    CHECK(info.created_wall_ns != first_created);
    CHECK(info.commit_offset == 2);
    shm_log_close(log);
    unlink(moved);
    intake_log_inspector_close(inspector);
}

static void test_removed_unnotified(void) {
    /* Without intake.notify (no daemon ran here), a removed log is seen gone within a second. */
    shm_notify_close(&notify);
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", test_directory, SHM_LOG_NOTIFY_FILE_NAME);
    unlink(path);
    snprintf(path, sizeof(path), "%s/%s", test_directory, SHM_LOG_NOTIFY_WAITERS_FILE_NAME);
    unlink(path);
    struct shm_log *log =
        test_writer_try_open("removed", 1u << 16, SHM_LOG_RETENTION_OVERWRITE, 1000000000ull, NULL);
    REQUIRE(log != NULL);
    append_range(log, 0, 1);
    shm_log_close(log);
    struct intake_log_inspector *inspector = inspector_open(8);
    REQUIRE(look(inspector, "removed", 0) == 0);
    file_path("removed", ".log", path, sizeof(path));
    unlink(path);
    file_path("removed", ".consumers", path, sizeof(path));
    unlink(path);
    int result = 0;
    for (int attempt = 0; attempt < 300 && (result = look(inspector, "removed", 0)) == 0;
         attempt++) {
        struct timespec pause = {0, 10 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    CHECK(result == -ENOENT);
    intake_log_inspector_close(inspector);
}

static void test_eviction(void) {
    struct intake_log_inspector *inspector = inspector_open(2);
    static const char *const topics[3] = {"orders/eu", "unpaired", "replaced"};
    static const uint64_t offsets[3] = {30, 3, 2};
    for (int round = 0; round < 6; round++) {
        int at = round % 3;
        REQUIRE(look(inspector, topics[at], 0) == 0);
        CHECK(strcmp(info.topic, topics[at]) == 0);
        CHECK(info.commit_offset == offsets[at]);
    }
    intake_log_inspector_close(inspector);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    test_directory_make("inspect");
    char reason[512];
    REQUIRE(shm_log_directory_prepare(test_directory, false, 0, reason, sizeof(reason)) == 0);
    shm_notify_init(&notify);
    REQUIRE(shm_notify_open(&notify, test_directory, false, 0, reason, sizeof(reason)) == 0);
    test_fields();
    test_arguments();
    test_damage();
    test_truncation();
    test_replaced();
    test_eviction();
    test_removed_unnotified();
    return test_finish();
}
