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
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>

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
#define LARGE_RECORD_BYTES     60000u
/* Bound on waits for a peer that should make progress: generous, never a timing assertion. */
#define PROGRESS_TIMEOUT_NS (60ull * 1000000000ull)

static uint8_t record_buffer[1u << 20];

static struct shm_log *writer_open(const char *topic, uint64_t capacity,
                                   enum shm_log_retention retention, uint64_t stale_ns) {
    struct shm_log_config config = {.directory = test_directory,
                                    .topic = topic,
                                    .capacity_bytes = capacity,
                                    .retention = retention,
                                    .consumer_stale_ns = stale_ns};
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
            CHECK(shm_log_publish(log));
            (void)shm_log_refresh_space(log);
            full_count++;
            sched_yield();
            continue;
        }
        if (assigned != offset) wrong_offsets++;
        offset++;
        if (offset % 64 == 0) CHECK(shm_log_publish(log));
        if (pause_every != 0 && offset % pause_every == 0) usleep(100);
    }
    CHECK(shm_log_publish(log));
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
    struct intake_consumer_options options = {
        .start = INTAKE_CONSUMER_START_OFFSET, .start_offset = 0, .ephemeral = false};
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
        tasks[index] =
            (struct reader_task){topic, "", EXACTLY_ONCE_RECORDS, large_max, ready[1], NULL, 0};
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

/* A ring of 4 KiB holds a few records: the writer moves both positions by more than the ring
 * between any two loads of a reader, which must never take that for damage. */
static void test_exactly_once_tiny_ring(void) {
    const char *topic = "exact/tiny";
    struct shm_log *log = writer_open(topic, 1u << 12, SHM_LOG_RETENTION_BLOCK, 30000000000ull);
    uint64_t total = EXACTLY_ONCE_RECORDS / 10;
    _Atomic int ready_counter = 0;
    struct reader_task tasks[2];
    pthread_t threads[2];
    for (int index = 0; index < 2; index++) {
        tasks[index] = (struct reader_task){topic, "", total, 1000, -1, &ready_counter, -1};
        snprintf(tasks[index].name, sizeof(tasks[index].name), "tiny-%d", index);
        REQUIRE(pthread_create(&threads[index], NULL, reader_exact_thread, &tasks[index]) == 0);
    }
    while (atomic_load(&ready_counter) < 2) sched_yield();
    (void)writer_run(log, 0, total, 1000, 0);
    for (int index = 0; index < 2; index++) {
        REQUIRE(pthread_join(threads[index], NULL) == 0);
        CHECK(tasks[index].result == 0);
    }
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
    if (!intake_consumer_record_valid(consumer, record))
        report->invalidated++;
    else if (!intact)
        report->torn++;
}

static int reader_slow(void *argument) {
    struct slow_task *task = argument;
    struct intake_consumer_options options = {
        .start = INTAKE_CONSUMER_START_OFFSET, .start_offset = 0, .ephemeral = true};
    struct intake_consumer *consumer = NULL;
    if (intake_consumer_open(test_directory, task->topic, "slow", &options, &consumer, NULL, 0) !=
        0)
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
    struct intake_consumer_options options = {
        .start = INTAKE_CONSUMER_START_OFFSET, .start_offset = 0, .ephemeral = false};
    struct intake_consumer *consumer = NULL;
    if (intake_consumer_open(test_directory, task->topic, task->name, &options, &consumer, NULL,
                             0) != 0)
        return 10;
    if (write(task->ready_fd, "r", 1) != 1) return 11;
    char byte;
    if (task->go_fd < 0)
        for (;;) pause();
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
    CHECK(shm_log_publish(log));
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
    CHECK(shm_log_publish(log));
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

/* Files in the test directory named <name>.corrupt-*: quarantined by the writer. */
static int quarantined_count(const char *name) {
    DIR *directory = opendir(test_directory);
    REQUIRE(directory != NULL);
    char prefix[300];
    snprintf(prefix, sizeof(prefix), "%s.corrupt-", name);
    int count = 0;
    for (struct dirent *entry = readdir(directory); entry != NULL; entry = readdir(directory))
        if (strncmp(entry->d_name, prefix, strlen(prefix)) == 0) count++;
    closedir(directory);
    return count;
}

/* The permissions of `name` in the test directory ("" for the directory itself). */
static mode_t file_mode(const char *name) {
    char path[600];
    snprintf(path, sizeof(path), "%s/%s", test_directory, name);
    struct stat status;
    REQUIRE(stat(path, &status) == 0);
    return status.st_mode & 07777;
}

/* The permissions column of this process's mapping of the file whose path ends with `suffix`
 * ("" when there is none), from /proc/self/maps. */
static void mapping_permissions(const char *suffix, char *out) {
    FILE *maps = fopen("/proc/self/maps", "r");
    REQUIRE(maps != NULL);
    char line[1024];
    out[0] = '\0';
    while (fgets(line, sizeof(line), maps) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        size_t length = strlen(line), suffix_length = strlen(suffix);
        if (length < suffix_length || strcmp(line + length - suffix_length, suffix) != 0) continue;
        char range[64], permissions[8];
        if (sscanf(line, "%63s %7s", range, permissions) == 2) snprintf(out, 8, "%s", permissions);
    }
    fclose(maps);
}

/* The reason the last consumer_open failed. */
static char consumer_open_why[INTAKE_CONSUMER_ERROR_BYTES];

static int consumer_open(const char *topic, const char *name, enum intake_consumer_start start,
                         uint64_t start_offset, struct intake_consumer **out) {
    struct intake_consumer_options options = {
        .start = start, .start_offset = start_offset, .ephemeral = false};
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
    CHECK(shm_log_publish(log));
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
    CHECK(shm_log_publish(log));

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
    CHECK(shm_log_publish(log));
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
    CHECK(shm_log_publish(log));
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
    struct shm_log_config config = {.directory = test_directory,
                                    .topic = long_topic,
                                    .capacity_bytes = 1u << 12,
                                    .retention = SHM_LOG_RETENTION_BLOCK,
                                    .consumer_stale_ns = 1};
    CHECK(shm_log_open_writer(&config, &second, why, sizeof(why)) == -EBUSY);
    CHECK(strstr(why, "another writer") != NULL);
    shm_log_close(log);

    /* Garbage where a log should be: moved aside and recreated, with the reason. */
    char path[600];
    snprintf(path, sizeof(path), "%s/garbage.log", test_directory);
    FILE *file = fopen(path, "w");
    REQUIRE(file != NULL);
    for (int index = 0; index < 20000; index++) fputc('x', file);
    fclose(file);
    config.topic = "garbage";
    REQUIRE(shm_log_open_writer(&config, &second, why, sizeof(why)) == 0);
    CHECK(strstr(shm_log_error(second), "magic") != NULL);
    CHECK(quarantined_count("garbage.log") == 1);
    CHECK(shm_log_next_offset(second) == 0);
    shm_log_close(second);
    config.topic = "fine";
    config.capacity_bytes = 5000;
    CHECK(shm_log_open_writer(&config, &second, why, sizeof(why)) == -EINVAL);
    CHECK(strstr(why, "power of two") != NULL);

    /* Inconsistent positions: quarantined; offsets continue from the header's commit offset. */
    config.topic = "corrupt";
    config.capacity_bytes = 1u << 12;
    REQUIRE(shm_log_open_writer(&config, &second, why, sizeof(why)) == 0);
    uint64_t assigned;
    for (uint64_t offset = 0; offset < 10; offset++)
        REQUIRE(pattern_append(second, offset, 1000, record_buffer, &assigned) == SHM_LOG_APPENDED);
    CHECK(shm_log_publish(second));
    shm_log_close(second);
    snprintf(path, sizeof(path), "%s/corrupt.log", test_directory);
    int fd = open(path, O_WRONLY);
    uint64_t bad_position = 7;
    CHECK(pwrite(fd, &bad_position, 8, offsetof(struct shm_log_header, commit_position)) == 8);
    close(fd);
    REQUIRE(shm_log_open_writer(&config, &second, why, sizeof(why)) == 0);
    CHECK(strstr(shm_log_error(second), "inconsistent") != NULL);
    CHECK(quarantined_count("corrupt.log") == 1);
    CHECK(quarantined_count("corrupt.consumers") == 1);
    CHECK(shm_log_next_offset(second) == 10);
    shm_log_close(second);

    struct intake_consumer *consumer = NULL;
    CHECK(consumer_open("absent", "x", INTAKE_CONSUMER_START_END, 0, &consumer) == -ENOENT);
    char expected[700];
    snprintf(expected, sizeof(expected), "no log for topic absent in %s", test_directory);
    CHECK(strcmp(consumer_open_why, expected) == 0);
}

/* ---- issue 9, promise 1: a consumer that registers mid-lap holds the writer at once ---- */

#define LATE_READERS        6
#define LATE_READER_RECORDS 20000u

struct late_task {
    const char *topic;
    int go_fd;     /* one byte: register now */
    int report_fd; /* uint64_t[3]: received, missed, errors */
};

/* Registers (oldest record, on a log the writer keeps lapping), then reads a stretch of
 * records: every one must arrive, consecutive, intact, with nothing missed. */
static int reader_late(void *argument) {
    struct late_task *task = argument;
    char byte;
    if (read(task->go_fd, &byte, 1) != 1) return 10;
    struct intake_consumer_options options = {
        .start = INTAKE_CONSUMER_START_OLDEST, .start_offset = 0, .ephemeral = true};
    struct intake_consumer *consumer = NULL;
    char why[INTAKE_CONSUMER_ERROR_BYTES];
    char name[32];
    snprintf(name, sizeof(name), "late-%d", (int)getpid());
    if (intake_consumer_open(test_directory, task->topic, name, &options, &consumer, why,
                             sizeof(why)) != 0) {
        fprintf(stderr, "late reader: %s\n", why);
        return 11;
    }
    uint64_t report[3] = {0, 0, 0}, next = UINT64_MAX, idle_since_ns = intake_now_ns();
    while (report[0] < LATE_READER_RECORDS) {
        struct intake_consumer_record record;
        int polled = intake_consumer_poll(consumer, &record);
        if (polled < 0) return 12;
        if (polled == 0) {
            if (intake_now_ns() - idle_since_ns > PROGRESS_TIMEOUT_NS) return 13;
            if (intake_consumer_wait(consumer, 100000000ull) < 0) return 14;
            continue;
        }
        idle_since_ns = intake_now_ns();
        report[1] += record.missed;
        if ((next != UINT64_MAX && record.offset != next) ||
            !pattern_matches(record.bytes, record.length, record.offset, 1000))
            report[2]++;
        next = record.offset + 1;
        report[0]++;
    }
    intake_consumer_close(consumer);
    return write(task->report_fd, report, sizeof(report)) == sizeof(report) ? 0 : 15;
}

static void test_late_registration_mid_lap(void) {
    const char *topic = "late/mid-lap";
    /* 64 KiB: about 800 records a lap. No consumer at first, so the writer laps freely. */
    struct shm_log *log = writer_open(topic, 1u << 16, SHM_LOG_RETENTION_BLOCK, 30000000000ull);
    int go[2], reports[2];
    REQUIRE(pipe(go) == 0 && pipe(reports) == 0);
    struct late_task task = {topic, go[0], reports[1]};
    pid_t pids[LATE_READERS];
    for (int index = 0; index < LATE_READERS; index++)
        pids[index] = child_start(reader_late, &task);
    uint64_t offset = 0, released = 0, exited = 0, full = 0;
    int codes[LATE_READERS];
    /* Release one reader every ~2.3 laps, at varying points of the lap, while writing flat out;
     * keep writing until every reader has read its stretch (bounded). */
    while (exited < LATE_READERS && offset < 50000000u) {
        uint64_t assigned;
        if (pattern_append(log, offset, 1000, record_buffer, &assigned) == SHM_LOG_FULL) {
            CHECK(shm_log_publish(log));
            (void)shm_log_refresh_space(log);
            full++;
            sched_yield();
        } else {
            offset++;
            if (offset % 16 == 0) CHECK(shm_log_publish(log));
        }
        if (released < LATE_READERS && offset >= 3000 + released * 1877) {
            REQUIRE(write(go[1], "g", 1) == 1);
            released++;
        }
        if (offset % 1024 == 0 || full % 1024 == 1) {
            for (int index = 0; index < LATE_READERS; index++) {
                int status;
                if (pids[index] <= 0 || waitpid(pids[index], &status, WNOHANG) != pids[index])
                    continue;
                codes[index] = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                pids[index] = 0;
                exited++;
            }
        }
    }
    CHECK(shm_log_publish(log));
    uint64_t received = 0, missed = 0, errors = 0;
    for (int index = 0; index < LATE_READERS; index++) {
        if (pids[index] > 0) codes[index] = child_finish(pids[index]);
        CHECK(codes[index] == 0);
        uint64_t report[3];
        if (codes[index] == 0 && read(reports[0], report, sizeof(report)) == sizeof(report)) {
            received += report[0];
            missed += report[1];
            errors += report[2];
        }
    }
    printf("late registration: %d readers registered mid-lap, %llu records read, %llu missed, "
           "%llu out of order (writer at offset %llu, full %llu times)\n",
           LATE_READERS, (unsigned long long)received, (unsigned long long)missed,
           (unsigned long long)errors, (unsigned long long)offset, (unsigned long long)full);
    CHECK(received == (uint64_t)LATE_READERS * LATE_READER_RECORDS);
    CHECK(missed == 0);
    CHECK(errors == 0);
    close(go[0]), close(go[1]), close(reports[0]), close(reports[1]);
    shm_log_close(log);
}

/* ---- issue 9, promise 2: a consumer lapped before its first record is told exactly ---- */

/* The log header's retained_offset: the writer's own account of the oldest record. */
static uint64_t header_retained_offset(const char *file) {
    char path[600];
    snprintf(path, sizeof(path), "%s/%s", test_directory, file);
    int fd = open(path, O_RDONLY);
    REQUIRE(fd >= 0);
    uint64_t value = 0;
    CHECK(pread(fd, &value, 8, offsetof(struct shm_log_header, retained_offset)) == 8);
    close(fd);
    return value;
}

static void test_lapped_before_first_record(void) {
    const char *topic = "lapped-first";
    struct shm_log *log = writer_open(topic, 1u << 16, SHM_LOG_RETENTION_OVERWRITE, 0);
    uint64_t assigned, offset = 0;
    for (; offset < 3000; offset++) /* several laps: the oldest record is not offset 0 */
        REQUIRE(pattern_append(log, offset, 1000, record_buffer, &assigned) == SHM_LOG_APPENDED);
    CHECK(shm_log_publish(log));
    uint64_t oldest = header_retained_offset("lapped-first.log");
    CHECK(oldest > 0 && oldest < 3000);
    struct intake_consumer *from_oldest = NULL, *named = NULL, *from_end = NULL;
    REQUIRE(consumer_open(topic, "oldest", INTAKE_CONSUMER_START_OLDEST, 0, &from_oldest) == 0);
    /* A named consumer with no committed cursor starts at the oldest record too. */
    REQUIRE(consumer_open(topic, "named", INTAKE_CONSUMER_START_COMMITTED, 0, &named) == 0);
    REQUIRE(consumer_open(topic, "end", INTAKE_CONSUMER_START_END, 0, &from_end) == 0);
    CHECK(intake_consumer_next_offset(from_oldest) == oldest);
    for (; offset < 10000; offset++) /* laps all three before they read anything */
        REQUIRE(pattern_append(log, offset, 1000, record_buffer, &assigned) == SHM_LOG_APPENDED);
    CHECK(shm_log_publish(log));
    struct intake_consumer *readers[3] = {from_oldest, named, from_end};
    uint64_t starts[3] = {oldest, oldest, 3000};
    for (int index = 0; index < 3; index++) {
        struct intake_consumer_record record;
        REQUIRE(intake_consumer_poll(readers[index], &record) == 1);
        CHECK(record.offset > starts[index]);
        CHECK(record.missed == record.offset - starts[index]);
        uint64_t received = 1;
        while (intake_consumer_poll(readers[index], &record) == 1) received++;
        CHECK(received + intake_consumer_missed_total(readers[index]) == 10000 - starts[index]);
        intake_consumer_close(readers[index]);
    }
    shm_log_close(log);
}

/* Format v2: the ring and the writer's header are mapped read-only by consumers, in a file
 * only the writer may write; the consumer region is a separate file. */
static void test_files_and_modes(void) {
    const char *topic = "modes";
    struct shm_log *log = writer_open(topic, 1u << 12, SHM_LOG_RETENTION_BLOCK, 1000000000ull);
    CHECK(file_mode("") == 0750);
    CHECK(file_mode("modes.log") == 0640);
    CHECK(file_mode("modes.consumers") == 0660);
    struct intake_consumer *consumer = NULL;
    REQUIRE(consumer_open(topic, "reader", INTAKE_CONSUMER_START_OLDEST, 0, &consumer) == 0);
    char permissions[8];
    /* The writer (this process too) maps the log rw; the consumer's mapping is the r--s one. */
    FILE *maps = fopen("/proc/self/maps", "r");
    REQUIRE(maps != NULL);
    char line[1024];
    int log_read_only = 0, log_writable = 0;
    while (fgets(line, sizeof(line), maps) != NULL) {
        if (strstr(line, "/modes.log") == NULL) continue;
        if (strncmp(strchr(line, ' ') + 1, "r--s", 4) == 0) log_read_only++;
        if (strncmp(strchr(line, ' ') + 1, "rw-s", 4) == 0) log_writable++;
    }
    fclose(maps);
    CHECK(log_read_only == 1); /* the consumer's */
    CHECK(log_writable == 1);  /* the writer's */
    mapping_permissions("/modes.consumers", permissions);
    CHECK(strcmp(permissions, "rw-s") == 0);
    intake_consumer_close(consumer);
    shm_log_close(log);
    /* A log of another format version is refused by readers with both versions named. */
    char path[600];
    snprintf(path, sizeof(path), "%s/modes.log", test_directory);
    int fd = open(path, O_WRONLY);
    uint32_t old_version = 1;
    CHECK(pwrite(fd, &old_version, 4, offsetof(struct shm_log_header, version)) == 4);
    close(fd);
    CHECK(consumer_open(topic, "reader", INTAKE_CONSUMER_START_OLDEST, 0, &consumer) == -EPROTO);
    CHECK(strstr(consumer_open_why, "version 1; this consumer library reads version 2") != NULL);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    test_directory_make("");
    test_contract_errors();
    test_files_and_modes();
    test_lapped_before_first_record();
    test_late_registration_mid_lap();
    test_restart_continuity();
    test_start_positions();
    test_block_pid_gone();
    test_block_heartbeat_stale();
    test_block_stopped_then_back();
    test_overwrite_slow_consumer();
    test_exactly_once_threads();
    test_exactly_once_tiny_ring();
    test_exactly_once_processes();
    return test_finish();
}
