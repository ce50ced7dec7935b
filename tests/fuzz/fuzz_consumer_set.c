/*
 * fuzz_consumer_set.c: consumer sets (intake_consumer_set_* in include/intake/consumer.h)
 * reading a directory whose files were mutated, as any local process that can write them could
 * leave them: two topics' logs and consumer regions, and the directory's wake-up files
 * (intake.notify and intake.notify-waiters, docs/shm-log-format.md).
 *
 * Once per process: the daemon's own writer (src/delivery/shm_log.h, shm_notify.h) builds a
 * valid directory in a private /dev/shm directory: the wake-up files, and two small logs that
 * have wrapped, each with a detached consumer slot ("keeper") holding a committed cursor. The
 * six files' bytes are the template.
 *
 * Per input: the template with the input applied as a patch, written to the six files (two of
 * them possibly resized, or removed); then a set is opened over them and driven: rounds of a
 * poll (touching every byte of every record returned, checking record_valid) and a wait that
 * may not sleep, then commit, stats, writer_alive, close. Properties: never crash, assert or
 * spin; open fails with a reason or succeeds; a poll returns a count within capacity (never an
 * error but -EINVAL), records name a topic of the set; and a set whose polls return nothing
 * does not keep saying there is something to read (wait returning 1 round after round while
 * polls find nothing is the spin issue 18 fixed).
 *
 * Input: a patch (from the head): repeated [offset high][offset low][count][count bytes], each
 * XORed at offset (mod the total) into the files' bytes taken end to end in the order
 * intake.notify, intake.notify-waiters, alpha.log, alpha.consumers, beta.log, beta.consumers;
 * then from the tail two control bytes:
 *   first:  bits 0-1 start (COMMITTED, OLDEST, END, OFFSET); bit 2 ephemeral; bit 3 every topic
 *           (else the list "alpha", "beta" and, with bit 4 of the second, "gamma", which has no
 *           log); bits 4-5 intake.notify's size, bits 6-7 intake.notify-waiters' (as built, one
 *           page shorter, one page longer, one byte shorter);
 *   second: bits 0-1 per-topic batch (0 default, 1, 3, 64); bits 2-3 topics_max (1, 2, 3, 8);
 *           bit 4 list "gamma" too; bit 5 the name "keeper" (the committed slots) or "fuzz";
 *           bit 6 remove alpha's consumer region; bit 7 remove intake.notify-waiters;
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
#include "shm_notify.h"

#define ROUNDS      12
#define RECORDS_MAX 16
#define FILES       6

static const char *const file_names[FILES] = {SHM_LOG_NOTIFY_FILE_NAME,
                                              SHM_LOG_NOTIFY_WAITERS_FILE_NAME,
                                              "alpha.log",
                                              "alpha.consumers",
                                              "beta.log",
                                              "beta.consumers"};

static char directory[64];
static struct fuzz_file template_files[FILES];
static int template_ready;

static void template_cleanup(void) {
    for (size_t index = 0; index < FILES; index++) unlink(template_files[index].path);
    if (directory[0] != '\0') rmdir(directory);
}

/* A wrapped log for `topic` with a keeper's committed cursor. */
static void template_log(struct shm_notify *notify, const char *topic) {
    const struct fuzz_template_log plan = {.directory = directory,
                                           .topic = topic,
                                           .notify = notify,
                                           .records = 40,
                                           .length_stride = 53,
                                           .publish_every = 4,
                                           .keeper_at = 25,
                                           .keeper_polls = 2};
    fuzz_template_log_build(&plan);
}

/* The one place that knows the writer: builds the directory and reads its files back. */
static void template_build(void) {
    fuzz_stale_directories_remove("intake-fuzz-set-");
    snprintf(directory, sizeof(directory), "/dev/shm/intake-fuzz-set-%d", (int)getpid());
    atexit(template_cleanup);
    char why[256];
    FUZZ_CHECK(shm_log_directory_prepare(directory, false, 0, why, sizeof(why)) == 0);
    struct shm_notify notify;
    shm_notify_init(&notify);
    FUZZ_CHECK(shm_notify_open(&notify, directory, false, 0, why, sizeof(why)) == 0);
    template_log(&notify, "alpha");
    template_log(&notify, "beta");
    shm_notify_close(&notify);
    for (size_t index = 0; index < FILES; index++) {
        snprintf(template_files[index].path, sizeof(template_files[index].path), "%s/%s", directory,
                 file_names[index]);
        fuzz_file_read(template_files[index].path, &template_files[index].bytes,
                       &template_files[index].length);
    }
    template_ready = 1;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    if (!template_ready) template_build();
    return 0;
}

/* Polls once: every byte of every record touched; returns the count. */
static int set_poll_touching(struct intake_consumer_set *set, uint32_t capacity,
                             uint32_t topics_max) {
    struct intake_consumer_set_record records[RECORDS_MAX];
    int got = intake_consumer_set_poll(set, records, capacity);
    FUZZ_CHECK(got >= 0 && (uint32_t)got <= capacity);
    volatile uint32_t touched = 0;
    for (int index = 0; index < got; index++) {
        const struct intake_consumer_set_record *record = &records[index];
        FUZZ_CHECK(record->topic != NULL && record->topic_index < topics_max);
        FUZZ_CHECK(strcmp(record->topic, "alpha") == 0 || strcmp(record->topic, "beta") == 0);
        for (uint32_t at = 0; at < record->record.length; at++) touched += record->record.bytes[at];
        (void)intake_consumer_set_record_valid(set, record);
    }
    (void)touched;
    return got;
}

static void set_exercise(const struct intake_consumer_set_options *options, const char *name) {
    struct intake_consumer_set *set = NULL;
    char why[INTAKE_CONSUMER_ERROR_BYTES];
    int result = intake_consumer_set_open(directory, name, options, &set, why, sizeof(why));
    if (result != 0) {
        FUZZ_CHECK(result < 0 && set == NULL);
        FUZZ_CHECK(why[0] != '\0');
        return;
    }
    FUZZ_CHECK(set != NULL);
    uint32_t capacity = options->per_topic_batch == 1 ? 5 : RECORDS_MAX;
    /* Wakes with nothing found, one after another: a set that spins on something it cannot
     * read keeps answering its wait at once. */
    int empty_wakes = 0, woke = 0;
    for (int round = 0; round < ROUNDS; round++) {
        int got = set_poll_touching(set, capacity, options->topics_max);
        if (got == 0 && woke) empty_wakes++;
        if (got > 0) empty_wakes = 0;
        FUZZ_CHECK(empty_wakes < 3);
        woke = intake_consumer_set_wait(set, 0);
        FUZZ_CHECK(woke == 0 || woke == 1 || woke == -EINTR);
        woke = woke == 1;
        if (round == 4) intake_consumer_set_commit(set);
    }
    /* A short real wait: bounded by its timeout, whatever the files say. */
    result = intake_consumer_set_wait(set, 1000000);
    FUZZ_CHECK(result == 0 || result == 1 || result == -EINTR);
    struct intake_consumer_set_stats stats = {.struct_bytes = sizeof(stats)};
    intake_consumer_set_stats(set, &stats);
    FUZZ_CHECK(stats.topics_followed + stats.topics_waiting <= options->topics_max);
    (void)intake_consumer_set_writer_alive(set);
    (void)intake_consumer_set_error(set);
    intake_consumer_set_commit(set);
    intake_consumer_set_close(set);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!template_ready) template_build();
    struct fuzz_input input = {data, size};
    uint8_t first = fuzz_take_byte(&input);
    uint8_t second = fuzz_take_byte(&input);
    uint8_t start_offset = fuzz_take_byte(&input);
    /* The wake-up files possibly resized; every file written back. */
    unsigned size_codes[FILES] = {(first >> 4) & 3, (first >> 6) & 3, 0, 0, 0, 0};
    (void)fuzz_files_write_patched(template_files, FILES, input.head, input.head_length,
                                   size_codes);
    if (second & 0x40) unlink(template_files[3].path); /* alpha.consumers */
    if (second & 0x80) unlink(template_files[1].path); /* intake.notify-waiters */
    static const uint32_t batches[4] = {0, 1, 3, 64};
    static const uint32_t topics_maxima[4] = {1, 2, 3, 8};
    static const char *const listed[3] = {"alpha", "beta", "gamma"};
    struct intake_consumer_options consumer = {.struct_bytes = sizeof(consumer),
                                               .start = (enum intake_consumer_start)(first & 3),
                                               .start_offset = start_offset,
                                               .ephemeral = (first & 4) != 0};
    struct intake_consumer_set_options options = {.struct_bytes = sizeof(options),
                                                  .consumer = &consumer,
                                                  .topics_max = topics_maxima[(second >> 2) & 3],
                                                  .all_topics = (first & 8) != 0,
                                                  .topics = listed,
                                                  .topic_count = (second & 0x10) ? 3 : 2,
                                                  .per_topic_batch = batches[second & 3]};
    if (!options.all_topics && options.topic_count > options.topics_max)
        options.topic_count = options.topics_max;
    set_exercise(&options, (second & 0x20) ? "keeper" : "fuzz");
    return 0;
}
