/*
 * test_consumer_set_damage.c: consumer sets and damaged logs (issue 18, item 5). consumer.h
 * promises that a reader "never crashes or spins on a damaged file"; a set must report the
 * damaged topic, keep serving the others, and sleep.
 *
 *   damaged_member:  one topic's entry fails its CRC32C. The set returns every record of the
 *                    healthy topic and those of the damaged one before the damage, names the
 *                    damaged topic, does not poll it again at once, and its wait sleeps (a
 *                    300 ms wait with nothing new returns 0) until a publish elsewhere or the
 *                    damaged topic's rest ends; then it is polled again, once.
 *   padding_commit:  a commit position inside the implicit padding at the ring's end gives
 *                    -EBADMSG with its reason at once, not "lapped by the writer" (-EAGAIN)
 *                    after millions of steps with no writer running.
 *   tail_follow_cpu: `intake-tail --all --follow` on a directory with a damaged log prints the
 *                    healthy topic's records (also one published later) and uses less than a
 *                    tenth of a second of CPU in a 2 s window (the window is the measurement,
 *                    a resource bound on the process, not a latency limit).
 * The writers run in this process (shm_log.h) with the directory's wake-up files open
 * (shm_notify.h), as intaked would have them; the damage is written into the files as their
 * owner could.
 */
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <time.h>

#include "harness.h"
#include "intake/consumer.h"
#include "intake/shm_log_format.h"
#include "shm_notify.h"
#include "shm_test_util.h"

static uint8_t record_buffer[1u << 16];
static struct shm_notify notify;

static struct shm_log *writer_open(const char *topic, uint64_t capacity) {
    struct shm_log *log = test_writer_try_open(topic, capacity, SHM_LOG_RETENTION_OVERWRITE,
                                               10ull * 1000 * 1000 * 1000, &notify);
    REQUIRE(log != NULL);
    return log;
}

static void append_range(struct shm_log *log, uint64_t first, uint64_t end) {
    uint64_t assigned = 0;
    for (uint64_t offset = first; offset < end; offset++)
        REQUIRE(pattern_append(log, offset, 1000, record_buffer, &assigned) == SHM_LOG_APPENDED);
    REQUIRE(shm_log_publish(log));
}

static void file_write(const char *topic, uint64_t at, const void *bytes, size_t length) {
    char name[SHM_LOG_FILE_NAME_BYTES], path[4096];
    shm_log_file_name(topic, name);
    snprintf(path, sizeof(path), "%s/%s", test_directory, name);
    int fd = open(path, O_WRONLY);
    REQUIRE(fd >= 0);
    REQUIRE(pwrite(fd, bytes, length, (off_t)at) == (ssize_t)length);
    close(fd);
}

/* The ring position of the pattern record `offset` in a log that holds records 0.. from
 * position 0 (no wrap). */
static uint64_t pattern_position(uint64_t offset) {
    uint64_t position = 0;
    for (uint64_t before = 0; before < offset; before++)
        position += shm_log_entry_span(pattern_length(before, 1000));
    return position;
}

/* Flips one byte of record `offset`'s bytes: its entry then fails its checksum. */
static void record_damage(const char *topic, uint64_t offset) {
    uint8_t flipped = (uint8_t)~pattern_byte(offset, 0);
    file_write(topic, SHM_LOG_HEADER_BYTES + pattern_position(offset) + SHM_LOG_ENTRY_HEADER_BYTES,
               &flipped, 1);
}

static struct intake_consumer_set *set_open_all(void) {
    static const struct intake_consumer_options consumer = {
        .struct_bytes = sizeof(consumer), .start = INTAKE_CONSUMER_START_OLDEST, .ephemeral = true};
    struct intake_consumer_set_options options = {.struct_bytes = sizeof(options),
                                                  .consumer = &consumer,
                                                  .topics_max = 16,
                                                  .all_topics = true};
    struct intake_consumer_set *set = NULL;
    char why[INTAKE_CONSUMER_ERROR_BYTES];
    int result =
        intake_consumer_set_open(test_directory, "damage-test", &options, &set, why, sizeof(why));
    if (result != 0) fprintf(stderr, "set open: %s\n", why);
    REQUIRE(result == 0);
    return set;
}

/* Polls until a poll returns nothing; counts records per topic (by the topic's first letter). */
static void set_drain(struct intake_consumer_set *set, uint64_t *good, uint64_t *bad) {
    struct intake_consumer_set_record records[32];
    for (int round = 0; round < 100; round++) {
        int got = intake_consumer_set_poll(set, records, 32);
        REQUIRE(got >= 0);
        if (got == 0) return;
        for (int index = 0; index < got; index++) {
            if (records[index].topic[0] == 'g') {
                CHECK(pattern_matches(records[index].record.bytes, records[index].record.length,
                                      records[index].record.offset, 1000));
                CHECK(records[index].record.offset == *good);
                (*good)++;
            } else {
                (*bad)++;
            }
        }
    }
}

static void test_damaged_member(void) {
    struct shm_log *good = writer_open("good", 1u << 16);
    struct shm_log *bad = writer_open("bad", 1u << 16);
    append_range(good, 0, 10);
    append_range(bad, 0, 10);
    record_damage("bad", 4);
    struct intake_consumer_set *set = set_open_all();
    uint64_t good_count = 0, bad_count = 0;
    set_drain(set, &good_count, &bad_count);
    CHECK(good_count == 10);
    CHECK(bad_count == 4); /* what lies before the damage */
    struct intake_consumer_set_stats stats = {.struct_bytes = sizeof(stats)};
    intake_consumer_set_stats(set, &stats);
    CHECK(stats.topic_errors == 1);
    CHECK(strstr(intake_consumer_set_error(set), "topic bad:") != NULL);
    CHECK(strstr(intake_consumer_set_error(set), "failed its checks") != NULL);
    /* At rest: not polled again at once, and the wait sleeps (nothing else is new). */
    struct intake_consumer_set_record record;
    CHECK(intake_consumer_set_poll(set, &record, 1) == 0);
    intake_consumer_set_stats(set, &stats);
    CHECK(stats.topic_errors == 1);
    CHECK(intake_consumer_set_wait(set, 300ull * 1000 * 1000) == 0);
    /* The healthy topic is still served. */
    append_range(good, 10, 11);
    CHECK(intake_consumer_set_wait(set, 5ull * 1000 * 1000 * 1000) == 1);
    set_drain(set, &good_count, &bad_count);
    CHECK(good_count == 11);
    /* The rest ends (about a second): the wait returns for it, and the damaged topic is polled
     * once more, failing the same way. */
    intake_consumer_set_stats(set, &stats);
    uint64_t errors_before = stats.topic_errors;
    CHECK(intake_consumer_set_wait(set, 5ull * 1000 * 1000 * 1000) == 1);
    set_drain(set, &good_count, &bad_count);
    intake_consumer_set_stats(set, &stats);
    CHECK(stats.topic_errors == errors_before + 1);
    CHECK(bad_count == 4);
    intake_consumer_set_close(set);
    shm_log_close(good);
    shm_log_close(bad);
}

static void test_padding_commit(void) {
    /* A 4 KiB ring filled to 16 bytes before its end: three records of the largest size (a
     * quarter of the ring) and one that brings the spans to 4080. The 16 bytes left are
     * implicit padding (no entry header fits). */
    struct shm_log *log = writer_open("padded", 4096);
    _Static_assert(SHM_LOG_ENTRY_HEADER_BYTES > 16, "16 bytes hold no entry header");
    uint32_t last = 4080 - 3 * (uint32_t)shm_log_entry_span(1024) - SHM_LOG_ENTRY_HEADER_BYTES;
    REQUIRE(shm_log_entry_span(last) + 3 * shm_log_entry_span(1024) == 4080);
    const uint32_t lengths[4] = {1024, 1024, 1024, last};
    static uint8_t bytes[1024];
    memset(bytes, 0x5a, sizeof(bytes));
    uint64_t offset = 0;
    for (int index = 0; index < 4; index++) {
        struct slice slice = {bytes, lengths[index], 0};
        REQUIRE(shm_log_append(log, &slice, 1, lengths[index], 1, 1, 0, &offset) ==
                SHM_LOG_APPENDED);
    }
    REQUIRE(shm_log_publish(log));
    shm_log_close(log);
    /* The owner moves the commit position into the padding: aligned, within a lap of retained,
     * so only the walk can tell. */
    uint64_t commit = 4088;
    file_write("padded", offsetof(struct shm_log_header, commit_position), &commit, sizeof(commit));
    struct intake_consumer_options options = {.start = INTAKE_CONSUMER_START_OLDEST,
                                              .ephemeral = true};
    struct intake_consumer *consumer = NULL;
    char why[INTAKE_CONSUMER_ERROR_BYTES];
    REQUIRE(intake_consumer_open(test_directory, "padded", "padding-test", &options, &consumer, why,
                                 sizeof(why)) == 0);
    struct intake_consumer_record record;
    int result = 0, records = 0;
    for (int poll = 0; poll < 10 && (result = intake_consumer_poll(consumer, &record)) == 1; poll++)
        records++;
    CHECK(records == 4);
    CHECK(result == -EBADMSG);
    CHECK(strstr(intake_consumer_error(consumer), "padding") != NULL);
    if (result != -EBADMSG)
        fprintf(stderr, "poll: %d %s\n", result, intake_consumer_error(consumer));
    intake_consumer_close(consumer);
    char name[SHM_LOG_FILE_NAME_BYTES], path[4096];
    shm_log_file_name("padded", name);
    snprintf(path, sizeof(path), "%s/%s", test_directory, name);
    unlink(path);
    shm_log_consumers_file_name("padded", name);
    snprintf(path, sizeof(path), "%s/%s", test_directory, name);
    unlink(path);
}

/* utime + stime of `pid`, in clock ticks (/proc/PID/stat fields 14 and 15). */
static uint64_t process_cpu_ticks(pid_t pid) {
    char path[64], line[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *file = fopen(path, "r");
    if (file == NULL) return 0;
    size_t length = fread(line, 1, sizeof(line) - 1, file);
    fclose(file);
    line[length] = '\0';
    const char *after_name = strrchr(line, ')'); /* the command may hold spaces */
    unsigned long user = 0, system = 0;
    if (after_name == NULL ||
        sscanf(after_name + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &user,
               &system) != 2)
        return 0;
    return user + system;
}

static size_t file_lines(const char *path) {
    FILE *file = fopen(path, "r");
    if (file == NULL) return 0;
    size_t lines = 0;
    for (int byte = fgetc(file); byte != EOF; byte = fgetc(file)) lines += byte == '\n';
    fclose(file);
    return lines;
}

static bool lines_reach(const char *path, size_t wanted) {
    for (int attempt = 0; attempt < 3000; attempt++) {
        if (file_lines(path) >= wanted) return true;
        struct timespec pause = {0, 10 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    return false;
}

static const char *tail_output_path;

static int tail_exec(void *argument) {
    (void)argument;
    int out = open(tail_output_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0) return 126;
    dup2(out, 1);
    char program[4096];
    snprintf(program, sizeof(program), "%s", test_program_path("intake-tail"));
    execl(program, "intake-tail", "--shm-dir", test_directory, "--all", "--follow", "--from-start",
          "--format", "json", (char *)NULL);
    return 127;
}

static void test_tail_follow_cpu(void) {
    /* The logs of damaged_member are still there: good (11 records), bad (damaged at 4). */
    struct shm_log *good = writer_open("good", 1u << 16);
    char output[256];
    snprintf(output, sizeof(output), "/tmp/intake-tail-damage-%d.out", (int)getpid());
    tail_output_path = output;
    pid_t tail = child_start(tail_exec, NULL);
    REQUIRE(tail > 0);
    CHECK(lines_reach(output, 15)); /* 11 good and the 4 before the damage */
    long ticks_per_second = sysconf(_SC_CLK_TCK);
    uint64_t before = process_cpu_ticks(tail);
    struct timespec window = {2, 0};
    nanosleep(&window, NULL);
    uint64_t used = process_cpu_ticks(tail) - before;
    CHECK(used * 10 < (uint64_t)ticks_per_second); /* under 0.1 s of CPU in 2 s */
    fprintf(stderr, "intake-tail used %.2f s of CPU in a 2 s window on a damaged log\n",
            (double)used / (double)ticks_per_second);
    /* Still serving the healthy topic. */
    append_range(good, 11, 12);
    CHECK(lines_reach(output, 16));
    kill(tail, SIGTERM);
    child_finish(tail);
    unlink(output);
    shm_log_close(good);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    test_directory_make("set-damage");
    char why[512];
    REQUIRE(shm_log_directory_prepare(test_directory, false, 0, why, sizeof(why)) == 0);
    shm_notify_init(&notify);
    REQUIRE(shm_notify_open(&notify, test_directory, false, 0, why, sizeof(why)) == 0);
    test_damaged_member();
    test_padding_commit();
    test_tail_follow_cpu();
    shm_notify_close(&notify);
    return test_finish();
}
