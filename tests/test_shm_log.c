/*
 * test_shm_log.c: the shared-memory log, writer (src/shm_log.c) against the consumer library
 * (src/consumer.c), through real shared memory under /dev/shm and real processes (fork).
 *
 *   exactly_once:  block mode, the writer at full speed, 3 consumer processes (and 3 consumer
 *                  threads, for ThreadSanitizer): every record once, in order, intact.
 *   overwrite:     a deliberately slow consumer: gaps reported exactly, never a torn read.
 *   block_stale:   consumers that die (pid gone), hang dead (zombie, heartbeat stale) or stop
 *                  and come back stop holding the writer back; the returning one learns its gap.
 *   restart:       offsets and named consumer cursors continue after closing and reopening.
 *   contract:      start positions, errors and their reasons, file names, limits.
 */
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "harness.h"
#include "intake/consumer.h"
#include "intake/shm_log_format.h"
#include "shm_test_util.h"

#ifdef INTAKE_SANITIZED
#define EXACTLY_ONCE_RECORDS 300000u
#else
#define EXACTLY_ONCE_RECORDS 2000000u
#endif
#define EXACTLY_ONCE_CONSUMERS 3
#define LARGE_RECORD_BYTES 60000u
/* Bound on waits for a peer that should make progress: generous, never a timing assertion. */
#define PROGRESS_TIMEOUT_NS (60ull * 1000000000ull)

static uint8_t record_buffer[1u << 20];

static struct shm_log *writer_open(const char *topic, uint64_t capacity,
                                   enum shm_log_retention retention, uint64_t stale_ns) {
    struct shm_log_config config = {test_directory, topic, capacity, retention, stale_ns};
    struct shm_log *log = NULL;
    char why[512];
    int result = shm_log_open_writer(&config, &log, why, sizeof(why));
    if (result != 0) fprintf(stderr, "open writer %s: %s\n", topic, why);
    REQUIRE(result == 0);
    return log;
}

/* Writes `total` pattern records; on FULL publishes, refreshes and yields. Returns how many
 * appends were refused. */
static uint64_t writer_run(struct shm_log *log, uint64_t first, uint64_t total, uint32_t large_max,
                           uint32_t pause_every) {
    uint64_t full_count = 0, wrong_offsets = 0;
    uint64_t offset = first;
    while (offset < first + total) {
        uint64_t assigned = 0;
        if (pattern_append(log, offset, large_max, record_buffer, &assigned) == SHM_LOG_FULL) {
            shm_log_publish(log);
            (void)shm_log_refresh_space(log);
            full_count++;
            sched_yield();
            continue;
        }
        if (assigned != offset) wrong_offsets++;
        offset++;
        if (offset % 64 == 0) shm_log_publish(log);
        if (pause_every != 0 && offset % pause_every == 0) usleep(100);
    }
    shm_log_publish(log);
    CHECK(wrong_offsets == 0);
    return full_count;
}

struct reader_task {
    const char *topic;
    char name[32];
    uint64_t total;
    uint32_t large_max;
    int ready_fd;               /* processes: a byte is written here once registered */
    _Atomic int *ready_counter; /* threads: incremented once registered */
    int result;
};

/* Reads offsets 0..total-1 and checks each one arrives once, in order, intact. */
static int reader_exact(void *argument) {
    struct reader_task *task = argument;
    struct intake_consumer_options options = {INTAKE_CONSUMER_START_OFFSET, 0, false};
    struct intake_consumer *consumer = NULL;
    char why[INTAKE_CONSUMER_ERROR_BYTES];
    if (intake_consumer_open(test_directory, task->topic, task->name, &options, &consumer, why,
                             sizeof(why)) != 0) {
        fprintf(stderr, "%s: open: %s\n", task->name, why);
        return 10;
    }
    if (task->ready_fd >= 0 && write(task->ready_fd, "r", 1) != 1) return 11;
    if (task->ready_counter) atomic_fetch_add(task->ready_counter, 1);
    uint64_t expected = 0, idle_since_ns = intake_now_ns();
    while (expected < task->total) {
        struct intake_consumer_record record;
        int polled = intake_consumer_poll(consumer, &record);
        if (polled < 0) {
            fprintf(stderr, "%s: poll: %s\n", task->name, intake_consumer_error(consumer));
            return 12;
        }
        if (polled == 0) {
            if (intake_now_ns() - idle_since_ns > PROGRESS_TIMEOUT_NS) return 13;
            if (intake_consumer_wait(consumer, 200000000ull) < 0) return 14;
            continue;
        }
        idle_since_ns = intake_now_ns();
        if (record.offset != expected || record.missed != 0) {
            fprintf(stderr, "%s: got offset %llu (missed %llu), expected %llu\n", task->name,
                    (unsigned long long)record.offset, (unsigned long long)record.missed,
                    (unsigned long long)expected);
            return 15;
        }
        if (!pattern_matches(record.bytes, record.length, record.offset, task->large_max) ||
            record.sequence != expected + 1 || record.receive_time_ns != expected * 3) {
            fprintf(stderr, "%s: record %llu damaged\n", task->name, (unsigned long long)expected);
            return 16;
        }
        expected++;
        if (expected % 65536 == 0) intake_consumer_commit(consumer);
    }
    intake_consumer_close(consumer);
    return 0;
}

static void *reader_exact_thread(void *argument) {
    struct reader_task *task = argument;
    task->result = reader_exact(task);
    return NULL;
}

static void test_exactly_once_processes(void) {
    const char *topic = "exact/processes";
    struct shm_log *log = writer_open(topic, 1u << 20, SHM_LOG_RETENTION_BLOCK, 30000000000ull);
    uint32_t large_max = LARGE_RECORD_BYTES;
    REQUIRE(large_max <= shm_log_record_bytes_max(log));
    int ready[2];
    REQUIRE(pipe(ready) == 0);
    struct reader_task tasks[EXACTLY_ONCE_CONSUMERS];
    pid_t pids[EXACTLY_ONCE_CONSUMERS];
    for (int index = 0; index < EXACTLY_ONCE_CONSUMERS; index++) {
        tasks[index] = (struct reader_task){topic, "", EXACTLY_ONCE_RECORDS, large_max, ready[1],
                                            NULL, 0};
        snprintf(tasks[index].name, sizeof(tasks[index].name), "reader-%d", index);
        pids[index] = child_start(reader_exact, &tasks[index]);
        REQUIRE(pids[index] > 0);
    }
    char byte;
    for (int index = 0; index < EXACTLY_ONCE_CONSUMERS; index++)
        REQUIRE(read(ready[0], &byte, 1) == 1);
    uint64_t start_ns = intake_now_ns();
    uint64_t full_count = writer_run(log, 0, EXACTLY_ONCE_RECORDS, large_max, 0);
    for (int index = 0; index < EXACTLY_ONCE_CONSUMERS; index++) {
        int code = child_finish(pids[index]);
        if (code != 0) fprintf(stderr, "reader-%d exited with %d\n", index, code);
        CHECK(code == 0);
    }
    printf("exactly_once/processes: %u records to %d readers in %.2f s (writer full %llu times)\n",
           EXACTLY_ONCE_RECORDS, EXACTLY_ONCE_CONSUMERS, (intake_now_ns() - start_ns) / 1e9,
           (unsigned long long)full_count);
    CHECK(shm_log_next_offset(log) == EXACTLY_ONCE_RECORDS);
    close(ready[0]);
    close(ready[1]);
    shm_log_close(log);
}

static void test_exactly_once_threads(void) {
    const char *topic = "exact/threads";
    struct shm_log *log = writer_open(topic, 1u << 18, SHM_LOG_RETENTION_BLOCK, 30000000000ull);
    uint32_t large_max = 30000;
    uint64_t total = EXACTLY_ONCE_RECORDS / 4;
    _Atomic int ready_counter = 0;
    struct reader_task tasks[EXACTLY_ONCE_CONSUMERS];
    pthread_t threads[EXACTLY_ONCE_CONSUMERS];
    for (int index = 0; index < EXACTLY_ONCE_CONSUMERS; index++) {
        tasks[index] = (struct reader_task){topic, "", total, large_max, -1, &ready_counter, -1};
        snprintf(tasks[index].name, sizeof(tasks[index].name), "thread-%d", index);
        REQUIRE(pthread_create(&threads[index], NULL, reader_exact_thread, &tasks[index]) == 0);
    }
    while (atomic_load(&ready_counter) < EXACTLY_ONCE_CONSUMERS) sched_yield();
    (void)writer_run(log, 0, total, large_max, 0);
    for (int index = 0; index < EXACTLY_ONCE_CONSUMERS; index++) {
        REQUIRE(pthread_join(threads[index], NULL) == 0);
        CHECK(tasks[index].result == 0);
    }
    shm_log_close(log);
}

struct slow_report {
    uint64_t received, missed, invalidated, torn, out_of_order, wrong_gap;
};

struct slow_task {
    const char *topic;
    uint64_t total;
    uint32_t large_max;
    int ready_fd;
    int report_fd;
};

/* Checks one record polled by the slow reader, using its bytes after a delay sometimes, so
 * that the writer overwrites some of them while "in use". */
static void slow_record_check(struct intake_consumer *consumer,
                              const struct intake_consumer_record *record,
                              const struct slow_task *task, struct slow_report *report) {
    if (report->received % 97 == 0) usleep(300);
    bool intact = pattern_matches(record->bytes, record->length, record->offset, task->large_max) &&
                  record->sequence == record->offset + 1;
    if (!intake_consumer_record_valid(consumer, record)) report->invalidated++;
    else if (!intact) report->torn++;
}

static int reader_slow(void *argument) {
    struct slow_task *task = argument;
    struct intake_consumer_options options = {INTAKE_CONSUMER_START_OFFSET, 0, true};
    struct intake_consumer *consumer = NULL;
    if (intake_consumer_open(test_directory, task->topic, "slow", &options, &consumer, NULL, 0) != 0)
        return 10;
    if (write(task->ready_fd, "r", 1) != 1) return 11;
    struct slow_report report = {0};
    uint64_t next = 0, idle_since_ns = intake_now_ns();
    while (next < task->total) {
        struct intake_consumer_record record;
        int polled = intake_consumer_poll(consumer, &record);
        if (polled < 0) return 12;
        if (polled == 0) {
            if (intake_now_ns() - idle_since_ns > PROGRESS_TIMEOUT_NS) return 13;
            if (intake_consumer_wait(consumer, 200000000ull) < 0) return 14;
            continue;
        }
        idle_since_ns = intake_now_ns();
        if (record.offset < next) report.out_of_order++;
        if (record.offset - next != record.missed) report.wrong_gap++;
        report.missed += record.missed;
        report.received++;
        slow_record_check(consumer, &record, task, &report);
        next = record.offset + 1;
        if (report.received % 50 == 0) usleep(2000);
    }
    if (intake_consumer_missed_total(consumer) != report.missed) report.wrong_gap++;
    intake_consumer_close(consumer);
    return write(task->report_fd, &report, sizeof(report)) == sizeof(report) ? 0 : 15;
}

static void test_overwrite_slow_consumer(void) {
    const char *topic = "overwrite slow";
    struct shm_log *log = writer_open(topic, 1u << 16, SHM_LOG_RETENTION_OVERWRITE, 0);
    uint32_t large_max = (uint32_t)shm_log_record_bytes_max(log);
    uint64_t total = 300000;
    int ready[2], reports[2];
    REQUIRE(pipe(ready) == 0 && pipe(reports) == 0);
    struct slow_task task = {topic, total, large_max, ready[1], reports[1]};
    pid_t pid = child_start(reader_slow, &task);
    REQUIRE(pid > 0);
    char byte;
    REQUIRE(read(ready[0], &byte, 1) == 1);
    uint64_t full_count = writer_run(log, 0, total, large_max, 512);
    CHECK(full_count == 0); /* overwrite mode never refuses */
    struct slow_report report = {0};
    CHECK(read(reports[0], &report, sizeof(report)) == sizeof(report));
    CHECK(child_finish(pid) == 0);
    printf("overwrite: received %llu, missed %llu, invalidated after use %llu, torn %llu\n",
           (unsigned long long)report.received, (unsigned long long)report.missed,
           (unsigned long long)report.invalidated, (unsigned long long)report.torn);
    CHECK(report.received + report.missed == total);
    CHECK(report.missed > 0);
    CHECK(report.received > 0);
    CHECK(report.torn == 0);
    CHECK(report.out_of_order == 0);
    CHECK(report.wrong_gap == 0);
    close(ready[0]), close(ready[1]), close(reports[0]), close(reports[1]);
    shm_log_close(log);
}

struct idle_task {
    const char *topic;
    const char *name;
    int ready_fd;
    int go_fd;      /* -1: never read; else read one byte, then read everything */
    uint64_t total; /* records the writer will have written in all */
    int report_fd;
};

/* Registers, says so, then blocks (no heartbeats) until told to go; then reads to the end and
 * reports received and missed. */
static int reader_idle(void *argument) {
    struct idle_task *task = argument;
    struct intake_consumer_options options = {INTAKE_CONSUMER_START_OFFSET, 0, false};
    struct intake_consumer *consumer = NULL;
    if (intake_consumer_open(test_directory, task->topic, task->name, &options, &consumer, NULL, 0) != 0)
        return 10;
    if (write(task->ready_fd, "r", 1) != 1) return 11;
    char byte;
    if (task->go_fd < 0) for (;;) pause();
    if (read(task->go_fd, &byte, 1) != 1) return 12;
    uint64_t report[2] = {0, 0}, next = 0;
    while (next < task->total) {
        struct intake_consumer_record record;
        int polled = intake_consumer_poll(consumer, &record);
        if (polled <= 0) return 13; /* everything is published before the go byte */
        if (record.offset != next + record.missed) return 14;
        if (!pattern_matches(record.bytes, record.length, record.offset, 1000)) return 15;
        report[0]++;
        report[1] += record.missed;
        next = record.offset + 1;
    }
    intake_consumer_close(consumer);
    return write(task->report_fd, report, sizeof(report)) == sizeof(report) ? 0 : 16;
}

/* Appends until FULL or offset `limit`; returns the next offset. */
static uint64_t writer_fill(struct shm_log *log, uint64_t offset, uint64_t limit) {
    uint64_t assigned;
    while (offset < limit &&
           pattern_append(log, offset, 1000, record_buffer, &assigned) == SHM_LOG_APPENDED)
        offset++;
    shm_log_publish(log);
    return offset;
}

/* Retries (refresh, short sleep, append) a bounded, generous number of times. */
static bool writer_append_eventually(struct shm_log *log, uint64_t offset) {
    uint64_t assigned;
    for (int attempt = 0; attempt < 3000; attempt++) {
        (void)shm_log_refresh_space(log);
        if (pattern_append(log, offset, 1000, record_buffer, &assigned) == SHM_LOG_APPENDED)
            return true;
        usleep(10000);
    }
    return false;
}

static void test_block_pid_gone(void) {
    const char *topic = "block/pid-gone";
    /* A stale time no test run reaches: only the pid check can release the consumer. */
    struct shm_log *log = writer_open(topic, 1u << 16, SHM_LOG_RETENTION_BLOCK, 3600000000000ull);
    int ready[2];
    REQUIRE(pipe(ready) == 0);
    struct idle_task task = {topic, "doomed", ready[1], -1, 0, -1};
    pid_t pid = child_start(reader_idle, &task);
    char byte;
    REQUIRE(read(ready[0], &byte, 1) == 1);
    uint64_t offset = writer_fill(log, 0, 1000000);
    CHECK(offset > 0);
    CHECK(offset < 1000); /* 64 KiB hold far fewer records of up to 150 bytes */
    uint64_t assigned;
    CHECK(!shm_log_refresh_space(log)); /* alive and registered: still holds back */
    CHECK(pattern_append(log, offset, 1000, record_buffer, &assigned) == SHM_LOG_FULL);
    kill(pid, SIGKILL);
    CHECK(child_finish(pid) == 128 + SIGKILL);
    CHECK(shm_log_refresh_space(log)); /* its pid is gone */
    CHECK(pattern_append(log, offset, 1000, record_buffer, &assigned) == SHM_LOG_APPENDED);
    CHECK(assigned == offset);
    close(ready[0]), close(ready[1]);
    shm_log_close(log);
}

static void test_block_heartbeat_stale(void) {
    const char *topic = "block/zombie";
    struct shm_log *log = writer_open(topic, 1u << 16, SHM_LOG_RETENTION_BLOCK, 200000000ull);
    int ready[2];
    REQUIRE(pipe(ready) == 0);
    struct idle_task task = {topic, "zombie", ready[1], -1, 0, -1};
    pid_t pid = child_start(reader_idle, &task);
    char byte;
    REQUIRE(read(ready[0], &byte, 1) == 1);
    uint64_t offset = writer_fill(log, 0, 1000000);
    /* Killed but not reaped: kill(pid, 0) still succeeds, so only its stale heartbeat
     * releases it. */
    kill(pid, SIGKILL);
    CHECK(writer_append_eventually(log, offset));
    CHECK(child_finish(pid) == 128 + SIGKILL);
    close(ready[0]), close(ready[1]);
    shm_log_close(log);
}

static void test_block_stopped_then_back(void) {
    const char *topic = "block/comeback";
    struct shm_log *log = writer_open(topic, 1u << 16, SHM_LOG_RETENTION_BLOCK, 200000000ull);
    int ready[2], go[2], reports[2];
    REQUIRE(pipe(ready) == 0 && pipe(go) == 0 && pipe(reports) == 0);
    uint64_t total = 5000; /* several laps of the 64 KiB ring */
    struct idle_task task = {topic, "sleeper", ready[1], go[0], total, reports[1]};
    pid_t pid = child_start(reader_idle, &task);
    char byte;
    REQUIRE(read(ready[0], &byte, 1) == 1);
    uint64_t offset = writer_fill(log, 0, total);
    CHECK(offset < total); /* the sleeper held the writer back at first */
    bool passed = true;
    while (passed && offset < total) {
        passed = writer_append_eventually(log, offset);
        offset++;
        offset = writer_fill(log, offset, total);
    }
    CHECK(passed);
    shm_log_publish(log);
    REQUIRE(write(go[1], "g", 1) == 1);
    uint64_t report[2] = {0, 0};
    CHECK(read(reports[0], report, sizeof(report)) == sizeof(report));
    CHECK(child_finish(pid) == 0);
    printf("block/comeback: received %llu, missed %llu of %llu\n", (unsigned long long)report[0],
           (unsigned long long)report[1], (unsigned long long)total);
    CHECK(report[0] + report[1] == total);
    CHECK(report[1] > 0);
    CHECK(report[0] > 0);
    close(ready[0]), close(ready[1]), close(go[0]), close(go[1]);
    close(reports[0]), close(reports[1]);
    shm_log_close(log);
}

/* The reason the last consumer_open failed. */
static char consumer_open_why[INTAKE_CONSUMER_ERROR_BYTES];

static int consumer_open(const char *topic, const char *name, enum intake_consumer_start start,
                         uint64_t start_offset, struct intake_consumer **out) {
    struct intake_consumer_options options = {start, start_offset, false};
    return intake_consumer_open(test_directory, topic, name, &options, out, consumer_open_why,
                                sizeof(consumer_open_why));
}

/* Polls one record and checks its offset and pattern. */
static void poll_expect(struct intake_consumer *consumer, uint64_t offset, uint64_t missed) {
    struct intake_consumer_record record;
    int polled = intake_consumer_poll(consumer, &record);
    CHECK(polled == 1);
    if (polled != 1) return;
    CHECK(record.offset == offset);
    CHECK(record.missed == missed);
    CHECK(pattern_matches(record.bytes, record.length, record.offset, 1000));
}

static void test_restart_continuity(void) {
    const char *topic = "restart";
    struct shm_log *log = writer_open(topic, 1u << 16, SHM_LOG_RETENTION_BLOCK, 1000000000ull);
    uint64_t assigned;
    for (uint64_t offset = 0; offset < 100; offset++)
        REQUIRE(pattern_append(log, offset, 1000, record_buffer, &assigned) == SHM_LOG_APPENDED);
    shm_log_publish(log);
    shm_log_close(log);

    struct intake_consumer *consumer = NULL;
    REQUIRE(consumer_open(topic, "resumer", INTAKE_CONSUMER_START_COMMITTED, 0, &consumer) == 0);
    for (uint64_t offset = 0; offset < 40; offset++) poll_expect(consumer, offset, 0);
    intake_consumer_commit(consumer);
    poll_expect(consumer, 40, 0); /* read but not committed: read again after the restart */
    intake_consumer_close(consumer);

    log = writer_open(topic, 1u << 12, SHM_LOG_RETENTION_BLOCK, 1000000000ull);
    CHECK(shm_log_next_offset(log) == 100);
    CHECK(shm_log_record_bytes_max(log) == (1u << 16) / 4); /* the file's capacity, not 4 KiB */
    for (uint64_t offset = 100; offset < 150; offset++) {
        REQUIRE(pattern_append(log, offset, 1000, record_buffer, &assigned) == SHM_LOG_APPENDED);
        CHECK(assigned == offset);
    }
    shm_log_publish(log);

    REQUIRE(consumer_open(topic, "resumer", INTAKE_CONSUMER_START_COMMITTED, 0, &consumer) == 0);
    for (uint64_t offset = 40; offset < 150; offset++) poll_expect(consumer, offset, 0);
    struct intake_consumer_record record;
    CHECK(intake_consumer_poll(consumer, &record) == 0);
    CHECK(intake_consumer_next_offset(consumer) == 150);
    intake_consumer_close(consumer);
    shm_log_close(log);
}

static void test_start_positions(void) {
    const char *topic = "starts";
    struct shm_log *log = writer_open(topic, 1u << 16, SHM_LOG_RETENTION_OVERWRITE, 0);
    uint64_t assigned;
    for (uint64_t offset = 0; offset < 20; offset++)
        REQUIRE(pattern_append(log, offset, 1000, record_buffer, &assigned) == SHM_LOG_APPENDED);
    shm_log_publish(log);
    struct intake_consumer *end = NULL, *from = NULL, *oldest = NULL, *future = NULL;
    REQUIRE(consumer_open(topic, "end", INTAKE_CONSUMER_START_END, 0, &end) == 0);
    REQUIRE(consumer_open(topic, "from", INTAKE_CONSUMER_START_OFFSET, 12, &from) == 0);
    REQUIRE(consumer_open(topic, "oldest", INTAKE_CONSUMER_START_OLDEST, 0, &oldest) == 0);
    REQUIRE(consumer_open(topic, "future", INTAKE_CONSUMER_START_OFFSET, 22, &future) == 0);
    struct intake_consumer_record record;
    CHECK(intake_consumer_poll(end, &record) == 0);
    CHECK(intake_consumer_wait(end, 10000000ull) == 0); /* nothing new: times out */
    poll_expect(from, 12, 0);
    poll_expect(oldest, 0, 0);
    CHECK(intake_consumer_poll(future, &record) == 0);
    for (uint64_t offset = 20; offset < 25; offset++)
        REQUIRE(pattern_append(log, offset, 1000, record_buffer, &assigned) == SHM_LOG_APPENDED);
    shm_log_publish(log);
    CHECK(intake_consumer_wait(end, 1000000000ull) == 1);
    poll_expect(end, 20, 0);
    poll_expect(future, 22, 0);
    struct intake_consumer *busy = NULL;
    CHECK(consumer_open(topic, "end", INTAKE_CONSUMER_START_END, 0, &busy) == -EBUSY);
    CHECK(strstr(consumer_open_why, "in use") != NULL);
    intake_consumer_close(end);
    intake_consumer_close(from);
    intake_consumer_close(oldest);
    intake_consumer_close(future);
    shm_log_close(log);
}

static void test_contract_errors(void) {
    char name[SHM_LOG_FILE_NAME_BYTES];
    shm_log_file_name("orders/eu", name);
    CHECK(strcmp(name, "orders%2Feu.log") == 0);
    shm_log_file_name("..", name);
    CHECK(strcmp(name, "%2E..log") == 0);
    char long_topic[256];
    memset(long_topic, '/', 255);
    long_topic[255] = '\0';
    shm_log_file_name(long_topic, name);
    CHECK(strlen(name) < 255);
    struct shm_log *log = writer_open(long_topic, 1u << 12, SHM_LOG_RETENTION_BLOCK, 1);
    CHECK(shm_log_record_bytes_max(log) == 1024);
    struct shm_log *second = NULL;
    char why[512];
    struct shm_log_config config = {test_directory, long_topic, 1u << 12, SHM_LOG_RETENTION_BLOCK,
                                    1};
    CHECK(shm_log_open_writer(&config, &second, why, sizeof(why)) == -EBUSY);
    CHECK(strstr(why, "another writer") != NULL);
    shm_log_close(log);

    char path[600];
    snprintf(path, sizeof(path), "%s/garbage.log", test_directory);
    FILE *file = fopen(path, "w");
    REQUIRE(file != NULL);
    for (int index = 0; index < 20000; index++) fputc('x', file);
    fclose(file);
    config.topic = "garbage";
    CHECK(shm_log_open_writer(&config, &second, why, sizeof(why)) == -EINVAL);
    CHECK(strstr(why, "magic") != NULL);
    config.topic = "fine";
    config.capacity_bytes = 5000;
    CHECK(shm_log_open_writer(&config, &second, why, sizeof(why)) == -EINVAL);
    CHECK(strstr(why, "power of two") != NULL);

    config.topic = "corrupt";
    config.capacity_bytes = 1u << 12;
    REQUIRE(shm_log_open_writer(&config, &second, why, sizeof(why)) == 0);
    shm_log_close(second);
    snprintf(path, sizeof(path), "%s/corrupt.log", test_directory);
    int fd = open(path, O_WRONLY);
    uint64_t bad_position = 7;
    CHECK(pwrite(fd, &bad_position, 8, offsetof(struct shm_log_header, commit_position)) == 8);
    close(fd);
    CHECK(shm_log_open_writer(&config, &second, why, sizeof(why)) == -EINVAL);
    CHECK(strstr(why, "inconsistent") != NULL);

    struct intake_consumer *consumer = NULL;
    CHECK(consumer_open("absent", "x", INTAKE_CONSUMER_START_END, 0, &consumer) == -ENOENT);
    char expected[700];
    snprintf(expected, sizeof(expected), "no log for topic absent in %s", test_directory);
    CHECK(strcmp(consumer_open_why, expected) == 0);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    test_directory_make("");
    test_contract_errors();
    test_restart_continuity();
    test_start_positions();
    test_block_pid_gone();
    test_block_heartbeat_stale();
    test_block_stopped_then_back();
    test_overwrite_slow_consumer();
    test_exactly_once_threads();
    test_exactly_once_processes();
    return test_finish();
}
