/*
 * shm_test_util.h: helpers shared by the shared-memory log tests: a temporary directory under
 * /dev/shm, records whose bytes are a pattern derived from their offset, and child processes.
 * Header-only (static functions) so each test program stays one file plus the harness.
 */
#ifndef INTAKE_SHM_TEST_UTIL_H
#define INTAKE_SHM_TEST_UTIL_H

#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "record.h"
#include "shm_log.h"

/* Helpers are static; not every test program uses every one. */
#define SHM_TEST_HELPER static __attribute__((unused))

static char test_directory[256];

SHM_TEST_HELPER int test_remove_entry(const char *path, const struct stat *status, int flag,
                                      struct FTW *walk) {
    (void)status;
    (void)flag;
    (void)walk;
    return remove(path);
}

SHM_TEST_HELPER void test_directory_remove(void) {
    if (test_directory[0] == '\0') return;
    nftw(test_directory, test_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* /dev/shm/intake-test-<pid>[-suffix]; removed at exit. */
SHM_TEST_HELPER const char *test_directory_make(const char *suffix) {
    snprintf(test_directory, sizeof(test_directory), "/dev/shm/intake-test-%d%s%s", (int)getpid(),
             suffix[0] ? "-" : "", suffix);
    test_directory_remove();
    atexit(test_directory_remove);
    return test_directory;
}

/* Opens (creating or reopening) `topic`'s writer in test_directory, with the directory's
 * wake-up files when `notify` is not NULL; NULL after one line saying why. */
SHM_TEST_HELPER struct shm_log *test_writer_try_open(const char *topic, uint64_t capacity,
                                                     enum shm_log_retention retention,
                                                     uint64_t stale_ns, struct shm_notify *notify) {
    struct shm_log_config config = {.directory = test_directory,
                                    .topic = topic,
                                    .capacity_bytes = capacity,
                                    .retention = retention,
                                    .consumer_stale_ns = stale_ns,
                                    .notify = notify};
    struct shm_log *log = NULL;
    char why[512];
    int result = shm_log_open_writer(&config, &log, why, sizeof(why));
    if (result != 0) fprintf(stderr, "open writer %s: %s\n", topic, why);
    return result == 0 ? log : NULL;
}

/* Record length for an offset: mostly small, every 997th one large (capped at `large_max`). */
SHM_TEST_HELPER uint32_t pattern_length(uint64_t offset, uint32_t large_max) {
    if (offset % 997 == 500) return large_max - (uint32_t)(offset % 64);
    return 1 + (uint32_t)((offset * 2654435761u) % 150);
}

SHM_TEST_HELPER uint8_t pattern_byte(uint64_t offset, uint32_t index) {
    return (uint8_t)(offset * 31 + index * 7 + (index >> 8) + (offset >> 8));
}

SHM_TEST_HELPER void pattern_fill(uint8_t *out, uint64_t offset, uint32_t length) {
    for (uint32_t index = 0; index < length; index++) out[index] = pattern_byte(offset, index);
}

SHM_TEST_HELPER bool pattern_matches(const uint8_t *bytes, uint32_t length, uint64_t offset,
                                     uint32_t large_max) {
    if (length != pattern_length(offset, large_max)) return false;
    for (uint32_t index = 0; index < length; index++)
        if (bytes[index] != pattern_byte(offset, index)) return false;
    return true;
}

/* Appends the pattern record for `offset` in up to three slices (sequence offset + 1, receive
 * time offset * 3, principal pattern_principal(offset)). */
SHM_TEST_HELPER uint64_t pattern_principal(uint64_t offset) {
    return offset * 0x9e3779b97f4a7c15ull + 1;
}

SHM_TEST_HELPER enum shm_log_append_result pattern_append(struct shm_log *log, uint64_t offset,
                                                          uint32_t large_max, uint8_t *buffer,
                                                          uint64_t *assigned) {
    uint32_t length = pattern_length(offset, large_max);
    pattern_fill(buffer, offset, length);
    struct slice slices[3];
    uint32_t first = length / 3, second = length / 2;
    slices[0] = (struct slice){buffer, first, 0};
    slices[1] = (struct slice){buffer + first, second - first, 1};
    slices[2] = (struct slice){buffer + second, length - second, 2};
    return shm_log_append(log, slices, 3, length, offset + 1, offset * 3, pattern_principal(offset),
                          assigned);
}

/* A writer for `topic`'s log in test_directory: 64 KiB, block retention, 1 s stale time. 0 or
 * the open's error (its reason in `why`). */
SHM_TEST_HELPER int shm_test_writer_open(const char *topic, struct shm_log **log, char *why,
                                         size_t why_capacity) {
    struct shm_log_config config = {.directory = test_directory,
                                    .topic = topic,
                                    .capacity_bytes = 1u << 16,
                                    .retention = SHM_LOG_RETENTION_BLOCK,
                                    .consumer_stale_ns = 1000000000ull};
    return shm_log_open_writer(&config, log, why, why_capacity);
}

/* Forks a child running `body(argument)`; the child exits with its return value. */
SHM_TEST_HELPER pid_t child_start(int (*body)(void *), void *argument) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        int code = body(argument);
        fflush(stdout);
        fflush(stderr);
        _exit(code);
    }
    return pid;
}

/* Waits for a child; returns its exit code, or 128 + signal. */
SHM_TEST_HELPER int child_finish(pid_t pid) {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) continue;
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

#endif
