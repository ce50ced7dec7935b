/*
 * test_topic_remove.c: `intake-topic --remove` against a writer opening the same log (issue 18,
 * item 1), each race driven deterministically: the racing process is held under ptrace at the
 * entry of its flock on the log (tests/traced_child.h), the other side acts, then it goes on.
 *
 *   writer_after_remove: a writer opened the existing log, and intake-topic removed it before
 *                        the writer's lock. The writer must not keep the unlinked file: the
 *                        record it then publishes is readable under the topic's path.
 *   writer_after_unlink: the same, with the files unlinked under the lock by a process that does
 *                        not mark the unlinked log (an older intake-topic, a script): the
 *                        writer's own check after locking is what catches it.
 *   remove_after_replace: intake-topic opened the log, and a writer replaced it (quarantine and
 *                        recreation) before intake-topic's lock. intake-topic must not remove
 *                        the new, live log; it refuses and names the holder.
 *   removed_file_marked: a process that opened the log before the removal and takes its lock
 *                        after it gets a file that is plainly no log (unlinked, magic gone).
 *   holder_named:        a consumer's shared lock is named as such, with its pid, not as
 *                        "a running intaked (pid 0)".
 */
#include <fcntl.h>
#include <stddef.h>
#include <sys/file.h>
#include <sys/syscall.h>

#include "harness.h"
#include "intake/consumer.h"
#include "intake/shm_log_format.h"
#include "shm_test_util.h"
#include "traced_child.h"

static uint8_t record_buffer[1u << 16];
static const char after_remove_bytes[] = "published after the race";

static struct shm_log *writer_open(const char *topic) {
    return test_writer_try_open(topic, 64 * 1024, SHM_LOG_RETENTION_OVERWRITE,
                                10ull * 1000 * 1000 * 1000, NULL);
}

static bool publish_text(struct shm_log *log, const char *text) {
    uint32_t length = (uint32_t)strlen(text);
    struct slice slice = {(const uint8_t *)text, length, 0};
    uint64_t offset = 0;
    return shm_log_append(log, &slice, 1, length, 1, 1, 0, &offset) == SHM_LOG_APPENDED &&
           shm_log_publish(log);
}

/* A log for `topic` holding `count` records, with no writer left. */
static void log_make(const char *topic, uint64_t count) {
    struct shm_log *log = writer_open(topic);
    REQUIRE(log != NULL);
    uint64_t assigned = 0;
    for (uint64_t offset = 0; offset < count; offset++)
        REQUIRE(pattern_append(log, offset, 1000, record_buffer, &assigned) == SHM_LOG_APPENDED);
    REQUIRE(shm_log_publish(log));
    shm_log_close(log);
}

static void log_path(const char *topic, char *out, size_t capacity) {
    char name[SHM_LOG_FILE_NAME_BYTES];
    shm_log_file_name(topic, name);
    snprintf(out, capacity, "%s/%s", test_directory, name);
}

/* The first record a fresh consumer reads from the topic's log (by its path); false when there
 * is no log or no record. */
static bool first_record(const char *topic, char *text, size_t capacity, uint64_t *offset) {
    struct intake_consumer_options options = {.start = INTAKE_CONSUMER_START_OLDEST,
                                              .ephemeral = true};
    struct intake_consumer *consumer = NULL;
    char why[INTAKE_CONSUMER_ERROR_BYTES];
    if (intake_consumer_open(test_directory, topic, "remove-test", &options, &consumer, why,
                             sizeof(why)) != 0) {
        fprintf(stderr, "consumer open %s: %s\n", topic, why);
        return false;
    }
    struct intake_consumer_record record;
    bool found = intake_consumer_poll(consumer, &record) == 1;
    if (found) {
        snprintf(text, capacity, "%.*s", (int)record.length, (const char *)record.bytes);
        *offset = record.offset;
    }
    intake_consumer_close(consumer);
    return found;
}

static char topic_tool_output[4096];

static int topic_tool_exec(void *argument) {
    const char *topic = argument;
    char tool[4096];
    snprintf(tool, sizeof(tool), "%s", test_program_path("intake-topic"));
    char output[256];
    snprintf(output, sizeof(output), "/tmp/intake-topic-test-%d.err", (int)getppid());
    int fd = open(output, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) dup2(fd, 2);
    execl(tool, "intake-topic", "--shm-dir", test_directory, "--remove", topic, (char *)NULL);
    return 127;
}

/* Reads what an intake-topic child wrote to stderr (topic_tool_exec). */
static void topic_tool_output_read(void) {
    char output[256];
    snprintf(output, sizeof(output), "/tmp/intake-topic-test-%d.err", (int)getpid());
    FILE *file = fopen(output, "r");
    topic_tool_output[0] = '\0';
    if (file != NULL) {
        size_t length = fread(topic_tool_output, 1, sizeof(topic_tool_output) - 1, file);
        topic_tool_output[length] = '\0';
        fclose(file);
    }
    unlink(output);
}

/* Runs intake-topic --remove `topic` to its end; its exit code, its stderr in the buffer. */
static int topic_tool_run(const char *topic) {
    pid_t pid = child_start(topic_tool_exec, (void *)topic);
    int code = child_finish(pid);
    topic_tool_output_read();
    return code;
}

/* ---------------------------------------------------------------------------------------- */

static int writer_reopen_child(void *argument) {
    const char *topic = argument;
    struct shm_log *log = writer_open(topic);
    if (log == NULL) return 2;
    bool published = publish_text(log, after_remove_bytes);
    shm_log_close(log);
    return published ? 0 : 3;
}

/* Lets the held writer go on, and checks that what it published after the race is what the
 * topic's path holds: a fresh log, offsets from 0. With the unlinked file kept, there would be
 * no log there at all. */
static void writer_finish_checked(pid_t writer, const char *topic) {
    traced_release(writer);
    CHECK(child_finish(writer) == 0);
    char text[128] = "";
    uint64_t offset = UINT64_MAX;
    CHECK(first_record(topic, text, sizeof(text), &offset));
    CHECK(strcmp(text, after_remove_bytes) == 0);
    CHECK(offset == 0);
}

static void test_writer_after_remove(void) {
    const char *topic = "race-writer";
    log_make(topic, 5);
    pid_t writer = traced_start(writer_reopen_child, (void *)topic);
    REQUIRE(writer > 0);
    /* The writer has the old log open and is about to lock it. */
    REQUIRE(traced_stop_at(writer, SYS_flock, "/race-writer.log"));
    int removed = topic_tool_run(topic);
    CHECK(removed == 0);
    CHECK(strstr(topic_tool_output, "removed topic \"race-writer\"") != NULL);
    writer_finish_checked(writer, topic);
}

/* Removes the topic's three files under the log's writer lock and lets go, marking nothing. */
static void unlink_under_lock(const char *topic) {
    char path[4096], name[SHM_LOG_FILE_NAME_BYTES], other[4096 + SHM_LOG_FILE_NAME_BYTES];
    log_path(topic, path, sizeof(path));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    REQUIRE(flock(fd, LOCK_EX | LOCK_NB) == 0);
    shm_log_dedupe_file_name(topic, name);
    snprintf(other, sizeof(other), "%s/%s", test_directory, name);
    unlink(other);
    shm_log_consumers_file_name(topic, name);
    snprintf(other, sizeof(other), "%s/%s", test_directory, name);
    CHECK(unlink(other) == 0);
    CHECK(unlink(path) == 0);
    close(fd);
}

static void test_writer_after_unlink(void) {
    const char *topic = "race-unlink";
    log_make(topic, 5);
    pid_t writer = traced_start(writer_reopen_child, (void *)topic);
    REQUIRE(writer > 0);
    REQUIRE(traced_stop_at(writer, SYS_flock, "/race-unlink.log"));
    unlink_under_lock(topic);
    writer_finish_checked(writer, topic);
}

static void test_remove_after_replace(void) {
    const char *topic = "race-remove";
    struct shm_log *first = writer_open(topic);
    REQUIRE(first != NULL);
    REQUIRE(publish_text(first, "in the first log"));
    pid_t tool = traced_start(topic_tool_exec, (void *)topic);
    REQUIRE(tool > 0);
    /* intake-topic has the first log open and is about to try its lock (held by `first`). */
    REQUIRE(traced_stop_at(tool, SYS_flock, "/race-remove.log"));
    /* The writer replaces the file as its quarantine does: moved aside, a new one created. */
    char path[4096], moved[4200];
    log_path(topic, path, sizeof(path));
    snprintf(moved, sizeof(moved), "%s.corrupt-1", path);
    REQUIRE(rename(path, moved) == 0);
    shm_log_close(first); /* lets go of the first file's lock */
    struct shm_log *second = writer_open(topic);
    REQUIRE(second != NULL);
    REQUIRE(publish_text(second, "in the live log"));
    traced_release(tool);
    int code = child_finish(tool);
    topic_tool_output_read();
    CHECK(code == 1);
    char pid_text[32];
    snprintf(pid_text, sizeof(pid_text), "pid %d", (int)getpid());
    CHECK(strstr(topic_tool_output, pid_text) != NULL);
    /* The live log is untouched: its path, its region, its record. */
    struct stat status;
    CHECK(stat(path, &status) == 0);
    char text[128] = "";
    uint64_t offset = UINT64_MAX;
    CHECK(first_record(topic, text, sizeof(text), &offset));
    CHECK(strcmp(text, "in the live log") == 0);
    REQUIRE(publish_text(second, "still writable"));
    shm_log_close(second);
    unlink(moved);
}

/* A log for `topic` with `count` records and no writer, opened read-only here. */
static int log_made_open(const char *topic, uint64_t count) {
    log_make(topic, count);
    char path[4096];
    log_path(topic, path, sizeof(path));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    return fd;
}

static void test_removed_file_marked(void) {
    const char *topic = "race-handover";
    /* Opened before the removal, as a daemon that is about to lock it. */
    int fd = log_made_open(topic, 3);
    CHECK(topic_tool_run(topic) == 0);
    CHECK(flock(fd, LOCK_EX | LOCK_NB) == 0); /* the lock is handed over... */
    struct stat status;
    CHECK(fstat(fd, &status) == 0 && status.st_nlink == 0);
    uint64_t magic = SHM_LOG_MAGIC;
    CHECK(pread(fd, &magic, sizeof(magic), 0) == (ssize_t)sizeof(magic));
    CHECK(magic != SHM_LOG_MAGIC); /* ...on a file that is no log any more */
    close(fd);
}

static void test_holder_named(void) {
    const char *topic = "held-by-probe";
    int fd = log_made_open(topic, 1);
    /* What a consumer's writer-alive probe takes, held here for the whole attempt. */
    REQUIRE(flock(fd, LOCK_SH | LOCK_NB) == 0);
    CHECK(topic_tool_run(topic) == 1);
    char expected[64];
    snprintf(expected, sizeof(expected), "share-locked by pid %d", (int)getpid());
    CHECK(strstr(topic_tool_output, expected) != NULL);
    CHECK(strstr(topic_tool_output, "consumer") != NULL);
    CHECK(strstr(topic_tool_output, "intaked (pid 0)") == NULL);
    if (strstr(topic_tool_output, expected) == NULL) fputs(topic_tool_output, stderr);
    struct stat status;
    CHECK(fstat(fd, &status) == 0 && status.st_nlink == 1); /* refused: still there */
    close(fd);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    test_directory_make("remove");
    test_writer_after_remove();
    test_writer_after_unlink();
    test_remove_after_replace();
    test_removed_file_marked();
    test_holder_named();
    return test_finish();
}
