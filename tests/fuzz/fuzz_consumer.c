/*
 * fuzz_consumer.c: the consumer library (include/intake/consumer.h) reading a topic's files
 * whose bytes were mutated, as any local process that can write them could leave them.
 *
 * Once per process (LLVMFuzzerInitialize, or the first input): the daemon's own writer
 * (src/delivery/shm_log.h) builds a valid log in a private /dev/shm directory: a small ring
 * that has wrapped (padding entries, a retained position past zero), and a detached consumer
 * slot with a committed cursor. The bytes of the topic's files (the log, and the consumer
 * region next to it) are the template.
 *
 * Per input: the template with the input applied as a patch, written to both files; then
 * open, a bounded number of polls (touching every byte of every record returned), record_valid,
 * commit, a wait that may not sleep, the informational calls, close. The consumer must return
 * an error or records for every file: never crash, assert or spin (libFuzzer's -timeout in
 * tests/fuzz/run catches a spin). Only the public consumer API is used, so the target keeps
 * working while the format changes; only template_build knows the writer, and the files are
 * whatever it leaves in the directory (one file, or the log and its consumer region).
 *
 * Input: a patch (from the head): repeated [offset high][offset low][count][count bytes], each
 * XORed at offset (mod the total) into the files' bytes taken end to end (log first); then from
 * the tail one control byte:
 *   bits 0-1: start (COMMITTED, OLDEST, END, OFFSET); bit 2: ephemeral; bit 3: the name of
 *   the committed slot ("keeper") or a new one ("fuzz"); bits 4-5: the log file's size (as
 *   built, one page shorter, one page longer, one byte shorter); bits 6-7: the same for the
 *   other file;
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

#define TEMPLATE_TOPIC    "fuzz"
#define TEMPLATE_CAPACITY 4096u
/* Polls per input: enough to read the whole small ring and a little more. */
#define POLLS_MAX 64

/* The files the writer leaves for one topic: the log first, then any others (sorted). */
#define TEMPLATE_FILES_MAX 4

struct template_file {
    char path[64 + 256 + 2];
    uint8_t *bytes;
    size_t length;
};

static char directory[64];
static struct template_file template_files[TEMPLATE_FILES_MAX];
static size_t template_file_count;
static size_t template_total_length;
static int template_ready;

/* Removes the private directory when the process ends (libFuzzer exits through exit()). */
static void template_cleanup(void) {
    for (size_t index = 0; index < template_file_count; index++) unlink(template_files[index].path);
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

static void file_read(const char *path, struct template_file *file) {
    snprintf(file->path, sizeof(file->path), "%s", path);
    FILE *stream = fopen(path, "rb");
    FUZZ_CHECK(stream != NULL);
    FUZZ_CHECK(fseek(stream, 0, SEEK_END) == 0);
    long length = ftell(stream);
    FUZZ_CHECK(length > 0);
    rewind(stream);
    file->length = (size_t)length;
    file->bytes = malloc(file->length);
    FUZZ_CHECK(file->bytes != NULL);
    FUZZ_CHECK(fread(file->bytes, 1, file->length, stream) == file->length);
    fclose(stream);
}

/* Reads every file the writer left: the log (shm_log_file_name) first, the others after. */
static void template_read(void) {
    char log_name[SHM_LOG_FILE_NAME_BYTES], path[64 + 256 + 2];
    shm_log_file_name(TEMPLATE_TOPIC, log_name);
    snprintf(path, sizeof(path), "%s/%s", directory, log_name);
    file_read(path, &template_files[template_file_count++]);
    struct dirent **entries = NULL;
    int count = scandir(directory, &entries, NULL, alphasort);
    FUZZ_CHECK(count >= 0);
    for (int index = 0; index < count; index++) {
        const char *name = entries[index]->d_name;
        if (name[0] != '.' && strcmp(name, log_name) != 0) {
            FUZZ_CHECK(template_file_count < TEMPLATE_FILES_MAX);
            snprintf(path, sizeof(path), "%s/%s", directory, name);
            file_read(path, &template_files[template_file_count++]);
        }
        free(entries[index]);
    }
    free(entries);
    for (size_t index = 0; index < template_file_count; index++)
        template_total_length += template_files[index].length;
}

/* The one place that knows the writer: builds a valid, wrapped log and reads it back. */
static void template_build(void) {
    stale_directories_remove();
    snprintf(directory, sizeof(directory), "/dev/shm/intake-fuzz-consumer-%d", (int)getpid());
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
        FUZZ_CHECK(shm_log_append(log, &slice, 1, slice.length, index + 1, 1000 + index, &offset) ==
                   SHM_LOG_APPENDED);
        if (index % 3 == 2) FUZZ_CHECK(shm_log_publish(log));
        if (index == 30) {
            struct intake_consumer_options options = {
                .start = INTAKE_CONSUMER_START_OLDEST, .start_offset = 0, .ephemeral = false};
            struct intake_consumer *keeper = NULL;
            FUZZ_CHECK(intake_consumer_open(directory, TEMPLATE_TOPIC, "keeper", &options, &keeper,
                                            why, sizeof(why)) == 0);
            struct intake_consumer_record record;
            for (int polls = 0; polls < 3; polls++)
                FUZZ_CHECK(intake_consumer_poll(keeper, &record) == 1);
            intake_consumer_commit(keeper);
            intake_consumer_close(keeper);
        }
    }
    FUZZ_CHECK(shm_log_publish(log));
    shm_log_close(log);
    template_read();
    template_ready = 1;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    if (!template_ready) template_build();
    return 0;
}

/* Writes one patched file, `length` bytes long. */
static void file_write(const char *path, const uint8_t *bytes, size_t length) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
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
    int result =
        intake_consumer_open(directory, TEMPLATE_TOPIC, name, options, &consumer, why, sizeof(why));
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
    if (!template_ready) template_build();
    struct fuzz_input input = {data, size};
    uint8_t control = fuzz_take_byte(&input);
    uint8_t start_offset = fuzz_take_byte(&input);
    /* The files end to end, patched. */
    uint8_t *bytes = malloc(template_total_length);
    FUZZ_CHECK(bytes != NULL);
    size_t at = 0;
    for (size_t index = 0; index < template_file_count; index++) {
        memcpy(bytes + at, template_files[index].bytes, template_files[index].length);
        at += template_files[index].length;
    }
    size_t position = 0;
    while (position + 3 <= input.head_length) {
        size_t offset =
            ((size_t)input.head[position] << 8 | input.head[position + 1]) % template_total_length;
        size_t count = input.head[position + 2];
        position += 3;
        for (size_t index = 0; index < count && position < input.head_length; index++)
            bytes[(offset + index) % template_total_length] ^= input.head[position++];
    }
    /* Each file written back, the first two possibly resized. */
    static const long size_changes[4] = {0, -4096, 4096, -1};
    size_t log_length = 0;
    at = 0;
    for (size_t index = 0; index < template_file_count; index++) {
        const struct template_file *file = &template_files[index];
        long change = index < 2 ? size_changes[(control >> (4 + 2 * index)) & 3] : 0;
        if ((long)file->length + change <= 0) change = 0;
        size_t length = (size_t)((long)file->length + change);
        uint8_t *patched = calloc(1, length > file->length ? length : file->length);
        FUZZ_CHECK(patched != NULL);
        memcpy(patched, bytes + at, file->length);
        file_write(file->path, patched, length);
        free(patched);
        if (index == 0) log_length = length;
        at += file->length;
    }
    free(bytes);
    struct intake_consumer_options options = {.start = (enum intake_consumer_start)(control & 3),
                                              .start_offset = start_offset,
                                              .ephemeral = (control & 4) != 0};
    consumer_exercise(&options, (control & 8) ? "keeper" : "fuzz", log_length);
    return 0;
}
