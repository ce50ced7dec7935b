/*
 * replay_main.c: runs a fuzz target's LLVMFuzzerTestOneInput over files, without libFuzzer, so
 * the corpus and every regression input are checked in the ordinary ctest suites (gcc, and
 * ASan+UBSan in the sanitizer build).
 *
 *   fuzz_replay_NAME [--known FILE] PATH...
 *
 * PATH is an input file or a directory of them (not recursive; names starting with '.' and
 * README files are skipped). Each input runs in a child process with a 60 s alarm, so one
 * crash or spin is reported with its file name and the rest still run. Exit status 0 when
 * every input passed, 1 otherwise, 2 when no input was found.
 *
 * Known findings: FILE lists inputs (one path per line, relative to tests/fuzz, '#' comments)
 * that crash in code another branch is fixing. A listed input that still fails is reported as
 * "known, open" and does not fail the run; one that passes is reported so it can be unlisted.
 */
#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

#define KNOWN_MAX            256
#define REPLAY_ALARM_SECONDS 60

static char *known[KNOWN_MAX];
static size_t known_count;
static unsigned long inputs_passed, inputs_failed, known_open, known_fixed;

static void known_load(const char *path) {
    FILE *file = fopen(path, "r");
    if (file == NULL) return;
    char line[1024];
    while (fgets(line, sizeof(line), file) != NULL && known_count < KNOWN_MAX) {
        char *entry = strtok(line, " \t\r\n");
        if (entry == NULL || entry[0] == '#') continue;
        known[known_count++] = strdup(entry);
    }
    fclose(file);
}

static int is_known(const char *path) {
    size_t length = strlen(path);
    for (size_t index = 0; index < known_count; index++) {
        size_t entry_length = strlen(known[index]);
        if (entry_length <= length && strcmp(path + length - entry_length, known[index]) == 0 &&
            (entry_length == length || path[length - entry_length - 1] == '/'))
            return 1;
    }
    return 0;
}

/* Runs one input in the child; returns its exit status (0 passed). */
static int run_child(const char *path) {
    FILE *file = fopen(path, "rb");
    if (file == NULL) {
        perror(path);
        return 1;
    }
    uint8_t *data = NULL;
    size_t size = 0, capacity = 0;
    for (;;) {
        if (size == capacity) {
            capacity = capacity ? 2 * capacity : 4096;
            data = realloc(data, capacity);
            if (data == NULL) return 1;
        }
        size_t got = fread(data + size, 1, capacity - size, file);
        if (got == 0) break;
        size += got;
    }
    fclose(file);
    alarm(REPLAY_ALARM_SECONDS);
    LLVMFuzzerTestOneInput(data, size);
    free(data);
    return 0;
}

static void replay_file(const char *path) {
    fflush(NULL);
    pid_t child = fork();
    if (child < 0) {
        perror("fork");
        inputs_failed++;
        return;
    }
    if (child == 0) _exit(run_child(path));
    int status = 0;
    if (waitpid(child, &status, 0) != child) status = -1;
    int passed = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    int listed = is_known(path);
    if (passed && !listed) {
        inputs_passed++;
        return;
    }
    if (passed) {
        known_fixed++;
        printf("known finding now passes (unlist it): %s\n", path);
        return;
    }
    const char *how = WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM ? "timed out" : "crashed";
    if (listed) {
        known_open++;
        printf("known finding, still open (%s): %s\n", how, path);
    } else {
        inputs_failed++;
        printf("FAILED (%s): %s\n", how, path);
    }
}

static void replay_path(const char *path) {
    struct stat status;
    if (stat(path, &status) != 0) return; /* an empty regressions folder is not in git */
    if (!S_ISDIR(status.st_mode)) {
        replay_file(path);
        return;
    }
    struct dirent **entries = NULL;
    int count = scandir(path, &entries, NULL, alphasort);
    for (int index = 0; index < count; index++) {
        const char *name = entries[index]->d_name;
        if (name[0] != '.' && strncmp(name, "README", 6) != 0) {
            char child[4096];
            snprintf(child, sizeof(child), "%s/%s", path, name);
            struct stat child_status;
            if (stat(child, &child_status) == 0 && S_ISREG(child_status.st_mode))
                replay_file(child);
        }
        free(entries[index]);
    }
    free(entries);
}

int main(int argc, char **argv) {
    int first = 1;
    if (argc > 2 && strcmp(argv[1], "--known") == 0) {
        known_load(argv[2]);
        first = 3;
    }
    /* Once, before the children fork, as libFuzzer does (fuzz_consumer builds its template). */
    if (LLVMFuzzerInitialize != NULL) LLVMFuzzerInitialize(&argc, &argv);
    for (int index = first; index < argc; index++) replay_path(argv[index]);
    printf("%lu inputs passed, %lu failed, %lu known findings open, %lu known now passing\n",
           inputs_passed, inputs_failed, known_open, known_fixed);
    if (inputs_passed + inputs_failed + known_open + known_fixed == 0) return 2;
    return inputs_failed == 0 ? 0 : 1;
}
