/*
 * harness.c: check counting and the closing line for intake's test programs (see harness.h).
 */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

unsigned long test_checks_passed;
unsigned long test_checks_failed;

void test_check_failed(const char *expression, const char *file, int line) {
    test_checks_failed++;
    fprintf(stderr, "FAILED: %s (%s:%d)\n", expression, file, line);
}

int test_finish(void) {
    printf("%lu passed, %lu failed\n", test_checks_passed, test_checks_failed);
    fflush(stdout);
    return (test_checks_failed == 0 && test_checks_passed > 0) ? 0 : 1;
}

int test_skip(const char *why) {
    if (test_checks_failed != 0) return test_finish();
    printf("%lu passed, 0 failed; skipped: %s\n", test_checks_passed, why);
    fflush(stdout);
    return TEST_SKIP_EXIT_CODE;
}

uint64_t test_random_next(uint64_t *state) {
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

int test_run_command(const char *command, char *output, size_t capacity) {
    FILE *pipe = popen(command, "r");
    if (pipe == NULL) return -1;
    size_t length = fread(output, 1, capacity - 1, pipe);
    output[length] = '\0';
    int status = pclose(pipe);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

const char *test_program_path(const char *name) {
    static char path[4096];
    const char *directory = getenv("INTAKE_BIN_DIR");
    snprintf(path, sizeof(path), "%s/%s", directory ? directory : ".", name);
    return path;
}
