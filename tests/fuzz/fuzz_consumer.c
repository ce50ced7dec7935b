/*
 * fuzz_consumer.c: the consumer library (include/intake/consumer.h) reading a log file whose
 * bytes were mutated, as any local process that can write the file could leave it.
 *
 * Once per process (LLVMFuzzerInitialize, or the first input): the daemon's own writer
 * (src/delivery/shm_log.h) builds a valid log in a private /dev/shm directory: a small ring
 * that has wrapped (padding entries, a retained position past zero), and a detached consumer
 * slot with a committed cursor. Its bytes are the template.
 *
 * Per input: the template with the input applied as a patch, written to the log file; then
 * open, a bounded number of polls (touching every byte of every record returned), record_valid,
 * commit, a wait that may not sleep, the informational calls, close. The consumer must return
 * an error or records for every file: never crash, assert or spin (libFuzzer's -timeout in
 * tests/fuzz/run catches a spin). Only the public consumer API is used, so the target keeps
 * working while the log format changes; only template_build knows the writer.
 *
 * Input: a patch (from the head): repeated [offset high][offset low][count][count bytes], each
 * XORed into the file at offset (mod the file size); then from the tail one control byte:
 *   bits 0-1: start (COMMITTED, OLDEST, END, OFFSET); bit 2: ephemeral; bit 3: the name of
 *   the committed slot ("keeper") or a new one ("fuzz"); bits 4-5: file size (as built, one
 *   page shorter, one page longer, one byte shorter); bits 6-7: unused;
 * and one byte of start offset.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "intake/consumer.h"
#include "intake/shm_log_format.h"
#include "shm_log.h"

#define TEMPLATE_TOPIC "fuzz"
#define TEMPLATE_CAPACITY 4096u
/* Polls per input: enough to read the whole small ring and a little more. */
#define POLLS_MAX 64

static char directory[64];
static char log_path[64 + SHM_LOG_FILE_NAME_BYTES + 2];
static uint8_t *template_bytes;
static size_t template_length;

/* Removes the private directory when the process ends (libFuzzer exits through exit()). */
static void template_cleanup(void) {
    if (log_path[0] != '\0') unlink(log_path);
    if (directory[0] != '\0') rmdir(directory);
}

/* Removes the directories of earlier fuzz_consumer processes that died without cleaning up
 * (a crash skips atexit): only ours, by prefix, and only when their process is gone. */
static void stale_directories_remove(void) {
    static const char prefix[] = "intake-fuzz-consumer-";
    DIR *shm = opendir("/dev/shm");
    if (shm == NULL) return;
    struct dirent *entry;
    while ((entry = readdir(shm)) != NULL) {
        if (strncmp(entry->d_name, prefix, sizeof(prefix) - 1) != 0) continue;
        long pid = strtol(entry->d_name + sizeof(prefix) - 1, NULL, 10);
        if (pid <= 0 || kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        char path[300];
        snprintf(path, sizeof(path), "/dev/shm/%s", entry->d_name);
        DIR *stale = opendir(path);
        if (stale == NULL) continue;
        struct dirent *file;
        while ((file = readdir(stale)) != NULL) {
            if (file->d_name[0] == '.') continue;
            char file_path[600];
            snprintf(file_path, sizeof(file_path), "%s/%s", path, file->d_name);
            unlink(file_path);
        }
        closedir(stale);
        rmdir(path);
    }
    closedir(shm);
}

/* The one place that knows the writer: builds a valid, wrapped log and reads it back. */
static void template_build(void) {
    stale_directories_remove();
    snprintf(directory, sizeof(directory), "/dev/shm/intake-fuzz-consumer-%d", (int)getpid());
    char file_name[SHM_LOG_FILE_NAME_BYTES];
    shm_log_file_name(TEMPLATE_TOPIC, file_name);
    snprintf(log_path, sizeof(log_path), "%s/%s", directory, file_name);
    atexit(template_cleanup);
    struct shm_log_config config = {.directory = directory,
                                    .topic = TEMPLATE_TOPIC,
                                    .capacity_bytes = TEMPLATE_CAPACITY,
                                    .retention = SHM_LOG_RETENTION_OVERWRITE,
                                    .consumer_stale_ns = 1000000000ull};
    struct shm_log *log = NULL;
    char why[256];
    if (shm_log_open_writer(&config, &log, why, sizeof(why)) != 0) {
        fprintf(stderr, "fuzz_consumer: cannot build the template log: %s\n", why);
        abort();
    }
    uint8_t payload[400];
    for (size_t index = 0; index < sizeof(payload); index++) payload[index] = (uint8_t)index;
    /* About three laps of the ring in records of 1..397 bytes: padding entries and a
     * retained position past the start; a keeper consumer commits halfway. */
    for (uint32_t index = 0; index < 48; index++) {
        struct slice slice = {payload, 1 + (index * 37) % 397, 0};
        uint64_t offset = 0;
        FUZZ_CHECK(shm_log_append(log, &slice, 1, slice.length, index + 1, 1000 + index,
                                  &offset) == SHM_LOG_APPENDED);
        if (index % 3 == 2) FUZZ_CHECK(shm_log_publish(log));
        if (index == 30) {
            struct intake_consumer_options options = {INTAKE_CONSUMER_START_OLDEST, 0, false};
            struct intake_consumer *keeper = NULL;
            FUZZ_CHECK(intake_consumer_open(directory, TEMPLATE_TOPIC, "keeper", &options,
                                            &keeper, why, sizeof(why)) == 0);
            struct intake_consumer_record record;
            for (int polls = 0; polls < 3; polls++)
                FUZZ_CHECK(intake_consumer_poll(keeper, &record) == 1);
            intake_consumer_commit(keeper);
            intake_consumer_close(keeper);
        }
    }
    FUZZ_CHECK(shm_log_publish(log));
    shm_log_close(log);
    FILE *file = fopen(log_path, "rb");
    FUZZ_CHECK(file != NULL);
    FUZZ_CHECK(fseek(file, 0, SEEK_END) == 0);
    long length = ftell(file);
    FUZZ_CHECK(length > 0);
    rewind(file);
    template_length = (size_t)length;
    template_bytes = malloc(template_length);
    FUZZ_CHECK(template_bytes != NULL);
    FUZZ_CHECK(fread(template_bytes, 1, template_length, file) == template_length);
    fclose(file);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    if (template_bytes == NULL) template_build();
    return 0;
}

/* Writes the patched template to the log file, `length` bytes long. */
static void file_write(const uint8_t *bytes, size_t length) {
    int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FUZZ_CHECK(fd >= 0);
    size_t written = 0;
    while (written < length) {
        ssize_t result = write(fd, bytes + written, length - written);
        FUZZ_CHECK(result > 0);
        written += (size_t)result;
    }
    close(fd);
}

static void consumer_exercise(const struct intake_consumer_options *options, const char *name,
                              size_t file_length) {
    struct intake_consumer *consumer = NULL;
    char why[INTAKE_CONSUMER_ERROR_BYTES];
    int result = intake_consumer_open(directory, TEMPLATE_TOPIC, name, options, &consumer, why,
                                      sizeof(why));
    if (result != 0) {
        FUZZ_CHECK(result < 0 && consumer == NULL);
        FUZZ_CHECK(why[0] != '\0');
        return;
    }
    FUZZ_CHECK(consumer != NULL);
    volatile uint32_t touched = 0;
    for (int poll = 0; poll < POLLS_MAX; poll++) {
        struct intake_consumer_record record;
        result = intake_consumer_poll(consumer, &record);
        if (result <= 0) {
            if (result < 0) FUZZ_CHECK(intake_consumer_error(consumer)[0] != '\0');
            break;
        }
        FUZZ_CHECK(result == 1);
        FUZZ_CHECK(record.length <= file_length);
        /* Every byte returned must be readable: a record outside the mapping faults here. */
        for (uint32_t index = 0; index < record.length; index++) touched += record.bytes[index];
        (void)intake_consumer_record_valid(consumer, &record);
        if (poll == 5) intake_consumer_commit(consumer);
    }
    (void)touched;
    result = intake_consumer_wait(consumer, 0);
    FUZZ_CHECK(result == 0 || result == 1 || result == -EINTR);
    intake_consumer_commit(consumer);
    (void)intake_consumer_missed_total(consumer);
    (void)intake_consumer_next_offset(consumer);
    (void)intake_consumer_writer_alive(consumer);
    intake_consumer_close(consumer);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (template_bytes == NULL) template_build();
    struct fuzz_input input = {data, size};
    uint8_t control = fuzz_take_byte(&input);
    uint8_t start_offset = fuzz_take_byte(&input);
    static const long size_changes[4] = {0, -4096, 4096, -1};
    size_t file_length = (size_t)((long)template_length + size_changes[(control >> 4) & 3]);
    uint8_t *file = calloc(1, file_length > template_length ? file_length : template_length);
    FUZZ_CHECK(file != NULL);
    memcpy(file, template_bytes, template_length);
    size_t position = 0;
    while (position + 3 <= input.head_length) {
        size_t offset = ((size_t)input.head[position] << 8 | input.head[position + 1]) %
                        file_length;
        size_t count = input.head[position + 2];
        position += 3;
        for (size_t index = 0; index < count && position < input.head_length; index++)
            file[(offset + index) % file_length] ^= input.head[position++];
    }
    file_write(file, file_length);
    free(file);
    struct intake_consumer_options options = {(enum intake_consumer_start)(control & 3),
                                              start_offset, (control & 4) != 0};
    consumer_exercise(&options, (control & 8) ? "keeper" : "fuzz", file_length);
    return 0;
}
