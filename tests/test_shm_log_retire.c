/*
 * test_shm_log_retire.c: where the writer retires entries. The writer stops retirement at entry
 * boundaries it noted in its own memory (src/delivery/shm_log.c, boundary_note) instead of
 * reading the headers of the lap before. Whatever it picks, the header must name a real entry:
 * walking the ring from retained_position, entry by entry, gives consecutive offsets starting
 * at retained_offset and ends exactly at commit_position with commit_offset.
 *
 * Checked after every publish over many laps of a small ring, with record sizes from 1 byte to
 * near the largest (so wrap padding and large strides both occur), in overwrite and block mode
 * (no consumer), and across a close and reopen in mid-lap (the noted boundaries start empty and
 * the first retirement walks from the header's retained_position).
 *
 * writer_checks: what docs/shm-log-format.md says the writer checks while it runs, both ways
 * (a header it walks is checked; a record's bytes never are).
 */
#include <fcntl.h>
#include <stddef.h>
#include <sys/mman.h>

#include "harness.h"
#include "intake/consumer.h"
#include "intake/shm_log_format.h"
#include "shm_test_util.h"

#define RING_BYTES (1u << 16)
#define LARGE_MAX  6000u

static uint8_t record_buffer[1u << 16];

struct mapped_log {
    int fd;
    size_t bytes;
    const uint8_t *base;
};

static struct shm_log *writer_open(const char *topic, enum shm_log_retention retention) {
    struct shm_log_config config = {.directory = test_directory,
                                    .topic = topic,
                                    .capacity_bytes = RING_BYTES,
                                    .retention = retention,
                                    .consumer_stale_ns = 0};
    struct shm_log *log = NULL;
    char why[512];
    int result = shm_log_open_writer(&config, &log, why, sizeof(why));
    if (result != 0) fprintf(stderr, "open writer %s: %s\n", topic, why);
    REQUIRE(result == 0);
    return log;
}

static struct mapped_log map_log(const char *topic) {
    char name[SHM_LOG_FILE_NAME_BYTES], path[600];
    shm_log_file_name(topic, name);
    snprintf(path, sizeof(path), "%s/%s", test_directory, name);
    struct mapped_log mapped = {.fd = open(path, O_RDONLY)};
    REQUIRE(mapped.fd >= 0);
    mapped.bytes = SHM_LOG_HEADER_BYTES + RING_BYTES;
    void *base = mmap(NULL, mapped.bytes, PROT_READ, MAP_SHARED, mapped.fd, 0);
    REQUIRE(base != MAP_FAILED);
    mapped.base = base;
    return mapped;
}

static void unmap_log(struct mapped_log *mapped) {
    munmap((void *)mapped->base, mapped->bytes);
    close(mapped->fd);
}

/* The walk from retained_position to commit_position; false (and a line) on the first entry
 * that is not where the header says. The writer is this thread: nothing moves meanwhile. */
static bool retained_walk_ok(const struct mapped_log *mapped, uint64_t *retained_moves,
                             uint64_t *last_retained) {
    const struct shm_log_header *header = (const struct shm_log_header *)mapped->base;
    const uint8_t *ring = mapped->base + SHM_LOG_HEADER_BYTES;
    uint64_t position = atomic_load(&header->retained_position);
    uint64_t offset = atomic_load(&header->retained_offset);
    uint64_t end = atomic_load(&header->commit_position);
    uint64_t end_offset = atomic_load(&header->commit_offset);
    if (atomic_load(&header->retiring_position) != position) {
        fprintf(stderr, "retiring %llu != retained %llu\n",
                (unsigned long long)atomic_load(&header->retiring_position),
                (unsigned long long)position);
        return false;
    }
    if (position != *last_retained) (*retained_moves)++;
    *last_retained = position;
    if (end - position > RING_BYTES) return false;
    while (position < end) {
        uint64_t room = RING_BYTES - (position & (RING_BYTES - 1));
        if (room < SHM_LOG_ENTRY_HEADER_BYTES) {
            position += room;
            continue;
        }
        const struct shm_log_entry_header *entry = shm_log_entry_at(ring, RING_BYTES, position);
        if (entry->length == SHM_LOG_ENTRY_LENGTH_PADDING) {
            position += room;
            continue;
        }
        if (entry->offset != offset || shm_log_entry_span(entry->length) > room) {
            fprintf(stderr, "at %llu: offset %llu, expected %llu\n", (unsigned long long)position,
                    (unsigned long long)entry->offset, (unsigned long long)offset);
            return false;
        }
        position += shm_log_entry_span(entry->length);
        offset++;
    }
    return position == end && offset == end_offset;
}

/* Appends offsets [first, first + count), publishing every `publish_every`, checking the
 * retained entry after each publish. Returns the number of failed checks. */
static uint64_t append_and_check(struct shm_log *log, const struct mapped_log *mapped,
                                 uint64_t first, uint64_t count, uint32_t publish_every,
                                 uint64_t *retained_moves) {
    uint64_t failures = 0, last_retained = 0;
    for (uint64_t offset = first; offset < first + count; offset++) {
        uint64_t assigned = 0;
        REQUIRE(pattern_append(log, offset, LARGE_MAX, record_buffer, &assigned) ==
                SHM_LOG_APPENDED);
        if (assigned != offset) failures++;
        if ((offset + 1) % publish_every != 0) continue;
        REQUIRE(shm_log_publish(log));
        if (!retained_walk_ok(mapped, retained_moves, &last_retained)) failures++;
    }
    return failures;
}

static void test_mode(const char *topic, enum shm_log_retention retention) {
    struct shm_log *log = writer_open(topic, retention);
    struct mapped_log mapped = map_log(topic);
    uint64_t moves = 0;
    /* About 800 small records a lap: 60 laps, publishing at varying strides. */
    CHECK(append_and_check(log, &mapped, 0, 30000, 7, &moves) == 0);
    CHECK(append_and_check(log, &mapped, 30000, 20000, 1, &moves) == 0);
    shm_log_close(log);
    unmap_log(&mapped);
    /* Reopened mid-lap: the writer knows no boundary of what it wrote before. */
    log = writer_open(topic, retention);
    mapped = map_log(topic);
    CHECK(shm_log_next_offset(log) == 50000);
    CHECK(append_and_check(log, &mapped, 50000, 20000, 3, &moves) == 0);
    shm_log_close(log);
    unmap_log(&mapped);
    printf("%s: retained_position moved %llu times\n", topic, (unsigned long long)moves);
    CHECK(moves > 100); /* the ring lapped many times: retirement really ran */
}

/* What docs/shm-log-format.md says the writer checks while it runs: the entry headers it walks
 * (here, after a reopen, when it knows no boundary) are checked, and one that is not what it
 * wrote breaks the log, which is quarantined and recreated with offsets continuing; a record's
 * bytes are never read, so an entry scribbled on is overwritten without a word, while readers
 * refuse it by its checksum until then. */
static int quarantined_files(const char *topic) {
    char command[700];
    snprintf(command, sizeof(command), "ls %s | grep -c '^%s.log.corrupt-'", test_directory, topic);
    FILE *pipe = popen(command, "r");
    int count = 0;
    if (pipe != NULL) {
        if (fscanf(pipe, "%d", &count) != 1) count = 0;
        pclose(pipe);
    }
    return count;
}

static void ring_write(const char *topic, uint64_t position, uint64_t at, const void *bytes,
                       size_t length) {
    char name[SHM_LOG_FILE_NAME_BYTES], path[600];
    shm_log_file_name(topic, name);
    snprintf(path, sizeof(path), "%s/%s", test_directory, name);
    int fd = open(path, O_WRONLY);
    REQUIRE(fd >= 0);
    off_t where = (off_t)(SHM_LOG_HEADER_BYTES + (position & (RING_BYTES - 1)) + at);
    REQUIRE(pwrite(fd, bytes, length, where) == (ssize_t)length);
    close(fd);
}

static void test_writer_checks(void) {
    /* Headers on the walk: reopened, the writer knows no boundary in the entries it inherited,
     * so it walks their headers as it retires them; one in the middle of them was rewritten
     * after the open. */
    const char *topic = "retire-checked";
    struct shm_log *log = writer_open(topic, SHM_LOG_RETENTION_OVERWRITE);
    uint64_t assigned = 0;
    for (uint64_t offset = 0; offset < 3000; offset++)
        REQUIRE(pattern_append(log, offset, 1000, record_buffer, &assigned) == SHM_LOG_APPENDED);
    REQUIRE(shm_log_publish(log));
    shm_log_close(log);
    log = writer_open(topic, SHM_LOG_RETENTION_OVERWRITE);
    struct mapped_log mapped = map_log(topic);
    const struct shm_log_header *header = (const struct shm_log_header *)mapped.base;
    const uint8_t *ring = mapped.base + SHM_LOG_HEADER_BYTES;
    uint64_t position = atomic_load(&header->retained_position);
    uint64_t middle = position + RING_BYTES / 2;
    while (position < middle) { /* to the first entry past the middle */
        uint64_t room = RING_BYTES - (position & (RING_BYTES - 1));
        const struct shm_log_entry_header *entry = shm_log_entry_at(ring, RING_BYTES, position);
        if (room < SHM_LOG_ENTRY_HEADER_BYTES || entry->length == SHM_LOG_ENTRY_LENGTH_PADDING)
            position += room;
        else
            position += shm_log_entry_span(entry->length);
    }
    unmap_log(&mapped);
    uint64_t wrong = 12345;
    ring_write(topic, position, offsetof(struct shm_log_entry_header, offset), &wrong,
               sizeof(wrong));
    bool broke = false;
    uint64_t offset = 3000;
    for (; offset < 6000 && !broke; offset++)
        broke = pattern_append(log, offset, 1000, record_buffer, &assigned) == SHM_LOG_BROKEN;
    CHECK(broke);
    offset--;                             /* the record refused */
    CHECK(shm_log_publish(log) == false); /* what was appended since the last publish is lost */
    CHECK(quarantined_files(topic) == 1);
    /* Recreated where it stopped: the next record continues the offsets published. */
    REQUIRE(pattern_append(log, offset, 1000, record_buffer, &assigned) == SHM_LOG_APPENDED);
    CHECK(shm_log_publish(log));
    CHECK(assigned == 3000);
    shm_log_close(log);

    /* A record's bytes: never read by the writer. */
    topic = "retire-unchecked";
    log = writer_open(topic, SHM_LOG_RETENTION_OVERWRITE);
    for (offset = 0; offset < 100; offset++)
        REQUIRE(pattern_append(log, offset, 1000, record_buffer, &assigned) == SHM_LOG_APPENDED);
    REQUIRE(shm_log_publish(log));
    position = 0;
    for (uint64_t before = 0; before < 5; before++)
        position += shm_log_entry_span(pattern_length(before, 1000));
    uint8_t flipped = (uint8_t)~pattern_byte(5, 0);
    ring_write(topic, position, SHM_LOG_ENTRY_HEADER_BYTES, &flipped, 1);
    struct intake_consumer_options options = {.start = INTAKE_CONSUMER_START_OLDEST,
                                              .ephemeral = true};
    struct intake_consumer *consumer = NULL;
    char why[INTAKE_CONSUMER_ERROR_BYTES];
    REQUIRE(intake_consumer_open(test_directory, topic, "reader", &options, &consumer, why,
                                 sizeof(why)) == 0);
    struct intake_consumer_record record;
    int result = 0, records = 0;
    while ((result = intake_consumer_poll(consumer, &record)) == 1) records++;
    CHECK(records == 5);
    CHECK(result == -EBADMSG); /* the reader refuses it */
    bool published = true;
    for (offset = 100; offset < 3000; offset++) {
        REQUIRE(pattern_append(log, offset, 1000, record_buffer, &assigned) == SHM_LOG_APPENDED);
        published = shm_log_publish(log) && published;
    }
    CHECK(published); /* overwritten, the writer none the wiser */
    CHECK(quarantined_files(topic) == 0);
    intake_consumer_close(consumer);
    shm_log_close(log);
}

int main(void) {
    test_directory_make("retire");
    test_writer_checks();
    test_mode("retire-overwrite", SHM_LOG_RETENTION_OVERWRITE);
    test_mode("retire-block", SHM_LOG_RETENTION_BLOCK);
    return test_finish();
}
