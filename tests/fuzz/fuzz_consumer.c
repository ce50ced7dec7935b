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

#include "fuzz_files.h"
#include "fuzz_util.h"
#include "intake/consumer.h"
#include "intake/shm_log_format.h"
#include "shm_log.h"

#define TEMPLATE_TOPIC "fuzz"
/* Polls per input: enough to read the whole small ring and a little more. */
#define POLLS_MAX 64

/* The files the writer leaves for one topic: the log first, then any others (sorted). */
#define TEMPLATE_FILES_MAX 4

static char directory[64];
static struct fuzz_file template_files[TEMPLATE_FILES_MAX];
static size_t template_file_count;
static int template_ready;

/* Removes the private directory when the process ends (libFuzzer exits through exit()). */
static void template_cleanup(void) {
    for (size_t index = 0; index < template_file_count; index++) unlink(template_files[index].path);
    if (directory[0] != '\0') rmdir(directory);
}

static void file_read(const char *path, struct fuzz_file *file) {
    snprintf(file->path, sizeof(file->path), "%s", path);
    fuzz_file_read(path, &file->bytes, &file->length);
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
}

/* The one place that knows the writer: builds a valid, wrapped log and reads it back. */
static void template_build(void) {
    fuzz_stale_directories_remove("intake-fuzz-consumer-");
    snprintf(directory, sizeof(directory), "/dev/shm/intake-fuzz-consumer-%d", (int)getpid());
    atexit(template_cleanup);
    /* About three laps of the ring in records of 1..397 bytes: padding entries and a
     * retained position past the start; a keeper consumer commits halfway. */
    const struct fuzz_template_log plan = {.directory = directory,
                                           .topic = TEMPLATE_TOPIC,
                                           .records = 48,
                                           .length_stride = 37,
                                           .publish_every = 3,
                                           .keeper_at = 30,
                                           .keeper_polls = 3};
    fuzz_template_log_build(&plan);
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
    /* The files end to end, patched; each written back, the first two possibly resized. */
    unsigned size_codes[TEMPLATE_FILES_MAX] = {(control >> 4) & 3, (control >> 6) & 3, 0, 0};
    size_t log_length = fuzz_files_write_patched(template_files, template_file_count, input.head,
                                                 input.head_length, size_codes);
    struct intake_consumer_options options = {.start = (enum intake_consumer_start)(control & 3),
                                              .start_offset = start_offset,
                                              .ephemeral = (control & 4) != 0};
    consumer_exercise(&options, (control & 8) ? "keeper" : "fuzz", log_length);
    return 0;
}
