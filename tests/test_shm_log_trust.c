/*
 * test_shm_log_trust.c: the shared-memory log against files it did not write (issue 9).
 *
 * The test writes into the log files directly, as their owner would (or as a consumer in the
 * log group would, for the consumer region), and checks that neither the writer nor the
 * consumer library crashes, asserts, stalls silently or lets the damage spread:
 *   ring_garbage:       a scribbled entry is found on restart; the log is quarantined.
 *   truncation:         a log truncated under the writer and a consumer: no SIGBUS, the
 *                       batch is refused, the log is recreated, offsets continue; the same for
 *                       the consumer region.
 *   forged_slots:       ACTIVE slots with pid 1 and a heartbeat in the future (or a fresh one
 *                       but no lock) never hold the writer, before or after a restart.
 *   bogus_retained:     a retained_position written for a moment never stalls a follower.
 *   corrupt_for_reader: damaged entries and random mutations: errors with reasons, no crash.
 *   slots_reclaimed:    64 names that ran once do not lock out a 65th, even across restarts.
 *   permissions:        a non-root consumer in the log group attaches and reads; one outside
 *                       it cannot open; an unsafe --shm-dir is refused.
 *   record_limit:       a log reopened with a larger size keeps its record limit; a larger
 *                       record is refused, not asserted on.
 */
#include <fcntl.h>
#include <grp.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/mman.h>

#include "fault_guard.h"
#include "harness.h"
#include "intake/consumer.h"
#include "intake/shm_log_format.h"
#include "shm_test_util.h"

static uint8_t record_buffer[1u << 16];

static struct shm_log *writer_open(const char *topic, uint64_t capacity,
                                   enum shm_log_retention retention, uint64_t stale_ns) {
    struct shm_log_config config = {.directory = test_directory,
                                    .topic = topic,
                                    .capacity_bytes = capacity,
                                    .retention = retention,
                                    .consumer_stale_ns = stale_ns};
    struct shm_log *log = NULL;
    char why[512];
    int result = shm_log_open_writer(&config, &log, why, sizeof(why));
    if (result != 0) fprintf(stderr, "open writer %s: %s\n", topic, why);
    REQUIRE(result == 0);
    return log;
}

static void append_range(struct shm_log *log, uint64_t first, uint64_t end) {
    uint64_t assigned;
    for (uint64_t offset = first; offset < end; offset++) {
        REQUIRE(pattern_append(log, offset, 1000, record_buffer, &assigned) == SHM_LOG_APPENDED);
        CHECK(assigned == offset);
    }
    CHECK(shm_log_publish(log));
}

static char open_why[INTAKE_CONSUMER_ERROR_BYTES];

static int consumer_open(const char *topic, const char *name, enum intake_consumer_start start,
                         bool ephemeral, struct intake_consumer **out) {
    struct intake_consumer_options options = {
        .start = start, .start_offset = 0, .ephemeral = ephemeral};
    return intake_consumer_open(test_directory, topic, name, &options, out, open_why,
                                sizeof(open_why));
}

static void file_path(const char *name, char *out, size_t capacity) {
    snprintf(out, capacity, "%s/%s", test_directory, name);
}

static void file_write(const char *name, uint64_t at, const void *bytes, size_t length) {
    char path[600];
    file_path(name, path, sizeof(path));
    int fd = open(path, O_WRONLY);
    REQUIRE(fd >= 0);
    CHECK(pwrite(fd, bytes, length, (off_t)at) == (ssize_t)length);
    close(fd);
}

static uint64_t file_read_u64(const char *name, uint64_t at) {
    char path[600];
    file_path(name, path, sizeof(path));
    int fd = open(path, O_RDONLY);
    REQUIRE(fd >= 0);
    uint64_t value = 0;
    CHECK(pread(fd, &value, 8, (off_t)at) == 8);
    close(fd);
    return value;
}

static int quarantined_count(const char *name) {
    char command[700];
    snprintf(command, sizeof(command), "ls %s | grep -c '^%s\\.corrupt-'", test_directory, name);
    FILE *pipe = popen(command, "r");
    REQUIRE(pipe != NULL);
    int count = 0;
    if (fscanf(pipe, "%d", &count) != 1) count = -1;
    pclose(pipe);
    return count;
}

static void test_ring_garbage(void) {
    struct shm_log *log =
        writer_open("garbage-ring", 1u << 16, SHM_LOG_RETENTION_BLOCK, 1000000000ull);
    append_range(log, 0, 50);
    struct intake_consumer *attached = NULL;
    REQUIRE(consumer_open("garbage-ring", "attached", INTAKE_CONSUMER_START_END, true, &attached) ==
            0);
    shm_log_close(log);
    /* One payload byte of an entry in the middle of the ring. */
    uint8_t byte = 0x5a;
    file_write("garbage-ring.log", SHM_LOG_HEADER_BYTES + 2000, &byte, 1);
    log = writer_open("garbage-ring", 1u << 16, SHM_LOG_RETENTION_BLOCK, 1000000000ull);
    CHECK(strstr(shm_log_error(log), "bad checksum") != NULL);
    CHECK(quarantined_count("garbage-ring.log") == 1);
    CHECK(shm_log_next_offset(log) == 50); /* the header's identity held: offsets continue */
    /* A consumer attached to the quarantined file is told, once its wait times out. */
    CHECK(intake_consumer_wait(attached, 10000000ull) == -ESTALE);
    CHECK(strstr(intake_consumer_error(attached), "was replaced") != NULL);
    intake_consumer_close(attached);
    append_range(log, 50, 60);
    struct intake_consumer *consumer = NULL;
    REQUIRE(consumer_open("garbage-ring", "after", INTAKE_CONSUMER_START_OLDEST, true, &consumer) ==
            0);
    struct intake_consumer_record record;
    REQUIRE(intake_consumer_poll(consumer, &record) == 1);
    CHECK(record.offset == 50 && record.missed == 0);
    intake_consumer_close(consumer);
    shm_log_close(log);
}

static void test_truncation(void) {
    const char *topic = "truncated";
    struct shm_log *log = writer_open(topic, 1u << 16, SHM_LOG_RETENTION_BLOCK, 1000000000ull);
    append_range(log, 0, 100);
    struct intake_consumer *before = NULL;
    REQUIRE(consumer_open(topic, "before", INTAKE_CONSUMER_START_OLDEST, true, &before) == 0);
    uint64_t recovered = fault_guard_recovered_count();
    char path[600];
    file_path("truncated.log", path, sizeof(path));
    REQUIRE(truncate(path, SHM_LOG_HEADER_BYTES) == 0); /* the ring is gone */
    /* The consumer touches the missing ring: an error with a reason, not SIGBUS. */
    struct intake_consumer_record record;
    CHECK(intake_consumer_poll(before, &record) == -EIO);
    CHECK(strstr(intake_consumer_error(before), "truncated") != NULL);
    CHECK(intake_consumer_poll(before, &record) == -EIO);
    intake_consumer_close(before);
    /* A consumer opening the truncated file is refused with a reason. */
    struct intake_consumer *late = NULL;
    CHECK(consumer_open(topic, "late", INTAKE_CONSUMER_START_OLDEST, true, &late) == -EINVAL);
    CHECK(strstr(open_why, "not an intake log") != NULL);
    /* The writer: the batch it was writing is refused, never published as readable. */
    uint64_t assigned;
    enum shm_log_append_result result = SHM_LOG_APPENDED;
    for (uint64_t offset = 100; offset < 110 && result == SHM_LOG_APPENDED; offset++)
        result = pattern_append(log, offset, 1000, record_buffer, &assigned);
    CHECK(result == SHM_LOG_BROKEN);
    CHECK(!shm_log_publish(log));
    CHECK(fault_guard_recovered_count() >= recovered + 2);
    CHECK(quarantined_count("truncated.log") == 1);
    CHECK(strstr(shm_log_error(log), "truncated") != NULL);
    /* Recreated: offsets continue from the last published one. */
    CHECK(shm_log_next_offset(log) == 100);
    append_range(log, 100, 120);
    REQUIRE(consumer_open(topic, "after", INTAKE_CONSUMER_START_OLDEST, true, &late) == 0);
    REQUIRE(intake_consumer_poll(late, &record) == 1);
    CHECK(record.offset == 100);
    intake_consumer_close(late);

    /* The consumer region (writable by the log group) truncated under the writer. */
    file_path("truncated.consumers", path, sizeof(path));
    REQUIRE(truncate(path, 0) == 0);
    append_range(log, 120, 130); /* publish touches the region: recovered, not killed */
    append_range(log, 130, 140); /* and recreates it */
    CHECK(quarantined_count("truncated.consumers") >= 1);
    REQUIRE(consumer_open(topic, "region", INTAKE_CONSUMER_START_OLDEST, true, &late) == 0);
    REQUIRE(intake_consumer_poll(late, &record) == 1);
    CHECK(record.offset == 100);
    intake_consumer_close(late);
    shm_log_close(log);
}

/* Writes a slot as a hostile member of the log group would. */
static void slot_forge(const char *file, uint32_t index, uint64_t heartbeat_ns) {
    struct shm_log_consumer_slot slot;
    memset(&slot, 0, sizeof(slot));
    snprintf(slot.name, sizeof(slot.name), "forged-%u", index);
    atomic_init(&slot.state, SHM_LOG_SLOT_ACTIVE);
    atomic_init(&slot.pid, 1);
    atomic_init(&slot.heartbeat_ns, heartbeat_ns);
    atomic_init(&slot.read_position, 0);
    atomic_init(&slot.committed_offset, SHM_LOG_OFFSET_NONE);
    file_write(file, shm_log_slot_lock_start(index), &slot, sizeof(slot));
    uint64_t registrations = file_read_u64(file, offsetof(struct shm_log_consumers, registrations));
    registrations += 1;
    file_write(file, offsetof(struct shm_log_consumers, registrations), &registrations, 8);
}

/* Appends `count` records; true when none was refused for longer than a bounded retry. */
static bool writer_passes(struct shm_log *log, uint64_t first, uint64_t count) {
    uint64_t assigned;
    for (uint64_t offset = first; offset < first + count; offset++) {
        int attempts = 0;
        while (pattern_append(log, offset, 1000, record_buffer, &assigned) != SHM_LOG_APPENDED) {
            if (++attempts > 200) return false;
            if (!shm_log_publish(log)) return false;
            (void)shm_log_refresh_space(log);
            usleep(1000);
        }
        if (offset % 32 == 0 && !shm_log_publish(log)) return false;
    }
    return shm_log_publish(log);
}

static void test_forged_slots(void) {
    const char *topic = "forged";
    /* A stale time no test run reaches: only the lock can tell that nobody is there. */
    struct shm_log *log = writer_open(topic, 1u << 16, SHM_LOG_RETENTION_BLOCK, 3600000000000ull);
    append_range(log, 0, 10);
    slot_forge("forged.consumers", 5, intake_now_ns() + 3600000000000ull); /* in the future */
    slot_forge("forged.consumers", 6, intake_now_ns());                    /* fresh, no lock */
    slot_forge("forged.consumers", 7, UINT64_MAX);
    CHECK(writer_passes(log, 10, 3000)); /* several laps of 64 KiB */
    shm_log_close(log);
    /* After a restart the forged slots are still there, and still hold nothing. */
    log = writer_open(topic, 1u << 16, SHM_LOG_RETENTION_BLOCK, 3600000000000ull);
    slot_forge("forged.consumers", 8, intake_now_ns());
    CHECK(writer_passes(log, 3010, 3000));
    /* A real consumer still holds it back. */
    struct intake_consumer *real = NULL;
    REQUIRE(consumer_open(topic, "real", INTAKE_CONSUMER_START_END, true, &real) == 0);
    CHECK(!writer_passes(log, 6010, 3000));
    intake_consumer_close(real);
    shm_log_close(log);
}

static void test_bogus_retained(void) {
    const char *topic = "bogus";
    struct shm_log *log = writer_open(topic, 1u << 16, SHM_LOG_RETENTION_BLOCK, 1000000000ull);
    append_range(log, 0, 10);
    struct intake_consumer *follower = NULL;
    REQUIRE(consumer_open(topic, "follower", INTAKE_CONSUMER_START_OLDEST, true, &follower) == 0);
    struct intake_consumer_record record;
    for (int index = 0; index < 10; index++) REQUIRE(intake_consumer_poll(follower, &record) == 1);
    uint64_t retained_at = offsetof(struct shm_log_header, retained_position);
    uint64_t real = file_read_u64("bogus.log", retained_at);
    uint64_t commit = file_read_u64("bogus.log", offsetof(struct shm_log_header, commit_position));
    /* 1. Above the commit position, for a moment: the follower neither moves nor spins. */
    uint64_t bogus = commit + (1u << 20);
    file_write("bogus.log", retained_at, &bogus, 8);
    CHECK(intake_consumer_poll(follower, &record) == 0);
    uint64_t start_ns = intake_now_ns();
    CHECK(intake_consumer_wait(follower, 50000000ull) == 0); /* slept, did not return at once */
    CHECK(intake_now_ns() - start_ns >= 40000000ull);
    file_write("bogus.log", retained_at, &real, 8);
    append_range(log, 10, 20);
    for (uint64_t offset = 10; offset < 20; offset++) {
        REQUIRE(intake_consumer_poll(follower, &record) == 1);
        CHECK(record.offset == offset && record.missed == 0);
    }
    /* 2. Inside the window but off an entry boundary: an error with a reason, then, once
     * restored, every record exactly once. */
    uint64_t commit_position_at = offsetof(struct shm_log_header, commit_position);
    uint64_t follower_at = file_read_u64("bogus.log", commit_position_at); /* read up to here */
    append_range(log, 20, 30);
    bogus = follower_at + 8; /* inside record 20's entry */
    file_write("bogus.log", retained_at, &bogus, 8);
    int polled = intake_consumer_poll(follower, &record);
    CHECK(polled == -EBADMSG);
    CHECK(strstr(intake_consumer_error(follower), "failed its checks") != NULL);
    file_write("bogus.log", retained_at, &real, 8);
    for (uint64_t offset = 20; offset < 30; offset++) {
        REQUIRE(intake_consumer_poll(follower, &record) == 1);
        CHECK(record.offset == offset && record.missed == 0);
    }
    CHECK(intake_consumer_poll(follower, &record) == 0);
    /* 3. Inconsistent positions (retained far below commit): an error with a reason. */
    bogus = 0;
    uint64_t real_commit = file_read_u64("bogus.log", commit_position_at);
    uint64_t far_commit = real_commit + (1u << 20);
    file_write("bogus.log", commit_position_at, &far_commit, 8);
    file_write("bogus.log", retained_at, &bogus, 8);
    CHECK(intake_consumer_poll(follower, &record) == -EBADMSG);
    CHECK(strstr(intake_consumer_error(follower), "inconsistent") != NULL);
    file_write("bogus.log", retained_at, &real, 8);
    file_write("bogus.log", commit_position_at, &real_commit, 8);
    intake_consumer_close(follower);
    shm_log_close(log); /* stores its own positions back */
}

/* Opens a consumer on a copy of a log whose bytes were mutated and reads what it can: the
 * library must answer every call (records or errors with reasons) in bounded time. */
/* A writer that died inside publish: the seqlock left odd, the commit offset stored ahead of
 * the position. Readers do not spin on it; the next writer repairs it from the entries. */
static void test_died_in_publish(void) {
    const char *topic = "died";
    struct shm_log *log = writer_open(topic, 1u << 14, SHM_LOG_RETENTION_BLOCK, 1000000000ull);
    append_range(log, 0, 20);
    shm_log_close(log);
    uint32_t odd = 7;
    file_write("died.log", offsetof(struct shm_log_header, commit_sequence), &odd, 4);
    uint64_t ahead = 25;
    file_write("died.log", offsetof(struct shm_log_header, commit_offset), &ahead, 8);
    uint64_t start_ns = intake_now_ns();
    struct intake_consumer *end = NULL, *oldest = NULL;
    REQUIRE(consumer_open(topic, "end", INTAKE_CONSUMER_START_END, true, &end) == 0);
    REQUIRE(consumer_open(topic, "oldest", INTAKE_CONSUMER_START_OLDEST, true, &oldest) == 0);
    CHECK(intake_now_ns() - start_ns < 1000000000ull); /* no spinning on the odd sequence */
    struct intake_consumer_record record;
    REQUIRE(intake_consumer_poll(oldest, &record) == 1);
    CHECK(record.offset == 0 && record.missed == 0);
    log = writer_open(topic, 1u << 14, SHM_LOG_RETENTION_BLOCK, 1000000000ull);
    CHECK(quarantined_count("died.log") == 0); /* repaired, not quarantined */
    CHECK(shm_log_next_offset(log) == 20);
    append_range(log, 20, 22);
    REQUIRE(intake_consumer_poll(end, &record) == 1);
    CHECK(record.offset == 20 && record.missed == 0);
    intake_consumer_close(end);
    intake_consumer_close(oldest);
    shm_log_close(log);
}

static void test_corrupt_for_reader(void) {
    const char *topic = "mutated";
    struct shm_log *log = writer_open(topic, 1u << 14, SHM_LOG_RETENTION_OVERWRITE, 0);
    append_range(log, 0, 400); /* wraps the 16 KiB ring */
    shm_log_close(log);
    char path[600];
    file_path("mutated.log", path, sizeof(path));
    int fd = open(path, O_RDWR);
    REQUIRE(fd >= 0);
    size_t bytes = SHM_LOG_HEADER_BYTES + (1u << 14);
    uint8_t *original = malloc(bytes);
    REQUIRE(original != NULL && pread(fd, original, bytes, 0) == (ssize_t)bytes);
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    int opened = 0, errors_with_reason = 0, errors_without = 0;
    uint64_t records = 0;
    for (int round = 0; round < 400; round++) {
        uint8_t *copy = malloc(bytes);
        REQUIRE(copy != NULL);
        memcpy(copy, original, bytes);
        int mutations = 1 + (int)(test_random_next(&seed) % 8);
        for (int index = 0; index < mutations; index++) {
            /* Half in the header's first lines (positions, identity), half anywhere. */
            uint64_t at = test_random_next(&seed) % ((index & 1) ? bytes : 448);
            copy[at] ^= (uint8_t)(1 + test_random_next(&seed) % 255);
        }
        /* Keep the identity checksum valid in some rounds, so the positions and the ring are
         * reached behind it. */
        if (round % 2 == 0) {
            struct shm_log_header *header = (struct shm_log_header *)(void *)copy;
            header->identity_checksum = shm_log_identity_checksum(header, shm_log_crc32c);
        }
        REQUIRE(pwrite(fd, copy, bytes, 0) == (ssize_t)bytes);
        free(copy);
        struct intake_consumer *consumer = NULL;
        int result =
            consumer_open(topic, "fuzz",
                          round % 3 == 0 ? INTAKE_CONSUMER_START_END : INTAKE_CONSUMER_START_OLDEST,
                          true, &consumer);
        if (result != 0) {
            if (open_why[0] != '\0')
                errors_with_reason++;
            else
                errors_without++;
            continue;
        }
        opened++;
        for (int poll = 0; poll < 600; poll++) {
            struct intake_consumer_record record;
            int polled = intake_consumer_poll(consumer, &record);
            if (polled == 1) {
                records++;
                continue;
            }
            if (polled < 0) {
                if (intake_consumer_error(consumer)[0] != '\0')
                    errors_with_reason++;
                else
                    errors_without++;
            }
            break;
        }
        intake_consumer_close(consumer);
    }
    printf("mutated logs: 400 rounds, %d opened, %llu records, %d errors with a reason, "
           "%d without\n",
           opened, (unsigned long long)records, errors_with_reason, errors_without);
    CHECK(errors_without == 0);
    CHECK(errors_with_reason > 0);
    CHECK(opened > 0);
    /* A good log: its records; then a damaged entry: the records before it, then the reason. */
    REQUIRE(pwrite(fd, original, bytes, 0) == (ssize_t)bytes);
    struct intake_consumer *consumer = NULL;
    REQUIRE(consumer_open(topic, "check", INTAKE_CONSUMER_START_OLDEST, true, &consumer) == 0);
    struct intake_consumer_record record;
    REQUIRE(intake_consumer_poll(consumer, &record) == 1);
    uint64_t first = record.offset;
    /* Damage the payload of the entry three records on (found by walking the ring copy). */
    const uint8_t *ring = original + SHM_LOG_HEADER_BYTES;
    uint64_t position =
        file_read_u64("mutated.log", offsetof(struct shm_log_header, retained_position));
    bool found = false;
    for (int step = 0; step < 1000 && !found; step++) {
        uint64_t room = (1u << 14) - (position & ((1u << 14) - 1));
        struct shm_log_entry_header entry;
        if (room < SHM_LOG_ENTRY_HEADER_BYTES) {
            position += room;
            continue;
        }
        memcpy(&entry, ring + (position & ((1u << 14) - 1)), sizeof(entry));
        if (entry.length == SHM_LOG_ENTRY_LENGTH_PADDING) {
            position += room;
            continue;
        }
        found = entry.offset == first + 3;
        if (!found) position += shm_log_entry_span(entry.length);
    }
    REQUIRE(found);
    uint8_t flipped = ring[(position & ((1u << 14) - 1)) + SHM_LOG_ENTRY_HEADER_BYTES] ^ 0xff;
    REQUIRE(pwrite(fd, &flipped, 1,
                   (off_t)(SHM_LOG_HEADER_BYTES + (position & ((1u << 14) - 1)) +
                           SHM_LOG_ENTRY_HEADER_BYTES)) == 1);
    for (uint64_t offset = first + 1; offset < first + 3; offset++) {
        REQUIRE(intake_consumer_poll(consumer, &record) == 1);
        CHECK(record.offset == offset);
    }
    CHECK(intake_consumer_poll(consumer, &record) == -EBADMSG);
    CHECK(strstr(intake_consumer_error(consumer), "failed its checks") != NULL);
    CHECK(intake_consumer_poll(consumer, &record) == -EBADMSG); /* still says so, no crash */
    intake_consumer_close(consumer);
    close(fd);
    free(original);
    /* A consumer region that does not belong to its log, with no writer running: refused at
     * once with the reason (not after waiting for a writer). */
    uint64_t garbage = 0x0123456789abcdefull;
    file_write("mutated.consumers", 0, &garbage, 8);
    uint64_t start_ns = intake_now_ns();
    CHECK(consumer_open(topic, "region", INTAKE_CONSUMER_START_OLDEST, true, &consumer) == -EAGAIN);
    CHECK(strstr(open_why, "does not belong") != NULL);
    CHECK(intake_now_ns() - start_ns < 1000000000ull);
}

static void test_slots_reclaimed(void) {
    const char *topic = "slots";
    struct shm_log *log = writer_open(topic, 1u << 14, SHM_LOG_RETENTION_BLOCK, 1000000000ull);
    append_range(log, 0, 10);
    struct intake_consumer *consumer = NULL;
    char name[32];
    /* 64 distinct named consumers, each run once and committed. */
    for (int index = 0; index < SHM_LOG_CONSUMER_SLOTS; index++) {
        snprintf(name, sizeof(name), "once-%d", index);
        REQUIRE(consumer_open(topic, name, INTAKE_CONSUMER_START_COMMITTED, false, &consumer) == 0);
        struct intake_consumer_record record;
        CHECK(intake_consumer_poll(consumer, &record) == 1);
        intake_consumer_commit(consumer);
        intake_consumer_close(consumer);
        usleep(100); /* distinct last-use times */
    }
    /* A 65th name is not locked out: the least recently used name gives up its slot. */
    CHECK(consumer_open(topic, "newcomer", INTAKE_CONSUMER_START_COMMITTED, false, &consumer) == 0);
    intake_consumer_close(consumer);
    /* The most recent names kept their cursors; the oldest lost it. */
    struct intake_consumer_record record;
    REQUIRE(consumer_open(topic, "once-63", INTAKE_CONSUMER_START_COMMITTED, false, &consumer) ==
            0);
    REQUIRE(intake_consumer_poll(consumer, &record) == 1);
    CHECK(record.offset == 1);
    intake_consumer_close(consumer);
    REQUIRE(consumer_open(topic, "once-0", INTAKE_CONSUMER_START_COMMITTED, false, &consumer) == 0);
    REQUIRE(intake_consumer_poll(consumer, &record) == 1);
    CHECK(record.offset == 0);
    intake_consumer_close(consumer);
    /* Across a restart too. */
    shm_log_close(log);
    log = writer_open(topic, 1u << 14, SHM_LOG_RETENTION_BLOCK, 1000000000ull);
    CHECK(consumer_open(topic, "after-restart", INTAKE_CONSUMER_START_OLDEST, false, &consumer) ==
          0);
    intake_consumer_close(consumer);
    /* Only live consumers are never displaced: with 64 of them, the 65th is refused. */
    struct intake_consumer *live[SHM_LOG_CONSUMER_SLOTS];
    for (int index = 0; index < SHM_LOG_CONSUMER_SLOTS; index++) {
        snprintf(name, sizeof(name), "live-%d", index);
        REQUIRE(consumer_open(topic, name, INTAKE_CONSUMER_START_END, index % 2 == 0,
                              &live[index]) == 0);
    }
    CHECK(consumer_open(topic, "one-too-many", INTAKE_CONSUMER_START_END, true, &consumer) ==
          -EBUSY);
    CHECK(strstr(open_why, "held by live consumers") != NULL);
    intake_consumer_close(live[7]);
    CHECK(consumer_open(topic, "one-too-many", INTAKE_CONSUMER_START_END, true, &consumer) == 0);
    intake_consumer_close(consumer);
    for (int index = 0; index < SHM_LOG_CONSUMER_SLOTS; index++)
        if (index != 7) intake_consumer_close(live[index]);
    /* A process that died registered (ephemeral, no close) leaves a slot the next one takes. */
    for (int index = 0; index < SHM_LOG_CONSUMER_SLOTS + 4; index++) {
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid == 0) {
            char child_name[32];
            snprintf(child_name, sizeof(child_name), "crashed-%d", index);
            struct intake_consumer *lost = NULL;
            _exit(consumer_open(topic, child_name, INTAKE_CONSUMER_START_END, true, &lost) == 0
                      ? 0
                      : 1);
        }
        CHECK(child_finish(pid) == 0);
    }
    shm_log_close(log);
}

#define GROUP_ID       4242
#define OTHER_GROUP_ID 4343
#define USER_ID        4444

/* Child: drops to USER_ID with only `group`, then reads the topic. */
static int reader_unprivileged(void *argument) {
    gid_t group = (gid_t)(uintptr_t)argument;
    if (setgroups(1, &group) != 0 || setresgid(group, group, group) != 0 ||
        setresuid(USER_ID, USER_ID, USER_ID) != 0)
        return 20;
    char path[600];
    file_path("private.log", path, sizeof(path));
    if (open(path, O_RDWR) >= 0) return 21; /* nobody but the writer may write the log */
    struct intake_consumer *consumer = NULL;
    int result =
        consumer_open("private", "unprivileged", INTAKE_CONSUMER_START_OLDEST, false, &consumer);
    if (result != 0) {
        fprintf(stderr, "unprivileged (gid %u): %s\n", (unsigned)group, open_why);
        return result == -EACCES && strstr(open_why, "Permission denied") ? 30 : 22;
    }
    for (uint64_t offset = 0; offset < 20; offset++) {
        struct intake_consumer_record record;
        if (intake_consumer_poll(consumer, &record) != 1 || record.offset != offset) return 23;
    }
    intake_consumer_commit(consumer);
    intake_consumer_close(consumer);
    return 0;
}

static void test_permissions(void) {
    if (geteuid() != 0) {
        printf("permissions: skipped (needs root to switch users)\n");
        return;
    }
    struct shm_log_config config = {.directory = test_directory,
                                    .topic = "private",
                                    .capacity_bytes = 1u << 14,
                                    .retention = SHM_LOG_RETENTION_BLOCK,
                                    .consumer_stale_ns = 1000000000ull,
                                    .group_set = true,
                                    .group = GROUP_ID};
    struct shm_log *log = NULL;
    char why[512];
    REQUIRE(shm_log_open_writer(&config, &log, why, sizeof(why)) == 0);
    append_range(log, 0, 20);
    char path[600];
    struct stat status;
    file_path("private.log", path, sizeof(path));
    REQUIRE(stat(path, &status) == 0);
    CHECK(status.st_gid == GROUP_ID && (status.st_mode & 07777) == 0640);
    REQUIRE(stat(test_directory, &status) == 0);
    CHECK(status.st_gid == GROUP_ID && (status.st_mode & 07777) == 0750);
    pid_t pid = child_start(reader_unprivileged, (void *)(uintptr_t)GROUP_ID);
    CHECK(child_finish(pid) == 0);
    pid = child_start(reader_unprivileged, (void *)(uintptr_t)OTHER_GROUP_ID);
    CHECK(child_finish(pid) == 30); /* refused, with the reason */
    shm_log_close(log);

    /* Unsafe directories are refused with one line. */
    char unsafe[600];
    snprintf(unsafe, sizeof(unsafe), "%s/open-to-all", test_directory);
    REQUIRE(mkdir(unsafe, 0700) == 0 && chmod(unsafe, 0777) == 0);
    CHECK(shm_log_directory_prepare(unsafe, false, 0, why, sizeof(why)) == -EPERM);
    CHECK(strstr(why, "writable by others") != NULL);
    REQUIRE(chmod(unsafe, 0750) == 0 && chown(unsafe, USER_ID, 0) == 0);
    CHECK(shm_log_directory_prepare(unsafe, false, 0, why, sizeof(why)) == -EPERM);
    CHECK(strstr(why, "owned by uid 4444") != NULL);
    REQUIRE(chown(unsafe, 0, 0) == 0);
    CHECK(shm_log_directory_prepare(unsafe, false, 0, why, sizeof(why)) == 0);
}

static void test_record_limit(void) {
    struct shm_log *log = writer_open("limit", 1u << 16, SHM_LOG_RETENTION_BLOCK, 1000000000ull);
    CHECK(shm_log_record_bytes_max(log) == 16384);
    shm_log_close(log);
    log = writer_open("limit", 1u << 20, SHM_LOG_RETENTION_BLOCK, 1000000000ull);
    CHECK(shm_log_record_bytes_max(log) == 16384); /* the file's, not the new size's */
    memset(record_buffer, 'r', 20000);
    struct slice slice = {record_buffer, 20000, 0};
    uint64_t offset = 0;
    CHECK(shm_log_append(log, &slice, 1, 20000, 1, 1, 0, &offset) == SHM_LOG_TOO_LARGE);
    slice.length = 16384;
    CHECK(shm_log_append(log, &slice, 1, 16384, 1, 1, 0, &offset) == SHM_LOG_APPENDED);
    CHECK(shm_log_publish(log));
    shm_log_close(log);
}

/* A version 2 log (32-byte entries, no principal) at startup: quarantined with one line that
 * names both versions, recreated at version 3, its offsets continued (issue 17). */
static void test_old_version(void) {
    const char *topic = "old-version";
    struct shm_log *log = writer_open(topic, 1u << 14, SHM_LOG_RETENTION_BLOCK, 1000000000ull);
    append_range(log, 0, 30);
    shm_log_close(log);
    /* What a version 2 writer left: its version in the header, the identity checksum over it. */
    char path[600];
    file_path("old-version.log", path, sizeof(path));
    int fd = open(path, O_RDWR);
    REQUIRE(fd >= 0);
    struct shm_log_header header;
    REQUIRE(pread(fd, &header, sizeof(header), 0) == (ssize_t)sizeof(header));
    header.version = 2;
    header.identity_checksum = shm_log_identity_checksum(&header, shm_log_crc32c);
    REQUIRE(pwrite(fd, &header, SHM_LOG_IDENTITY_BYTES, 0) == SHM_LOG_IDENTITY_BYTES);
    close(fd);
    log = writer_open(topic, 1u << 14, SHM_LOG_RETENTION_BLOCK, 1000000000ull);
    CHECK(strstr(shm_log_error(log), "log format version 2; this intaked writes version 3") !=
          NULL);
    CHECK(quarantined_count("old-version.log") == 1);
    CHECK(shm_log_next_offset(log) == 30); /* offsets continue */
    append_range(log, 30, 31);
    struct intake_consumer *consumer = NULL;
    REQUIRE(consumer_open(topic, "after", INTAKE_CONSUMER_START_OLDEST, true, &consumer) == 0);
    struct intake_consumer_record record;
    REQUIRE(intake_consumer_poll(consumer, &record) == 1);
    CHECK(record.offset == 30 && record.principal == pattern_principal(30));
    intake_consumer_close(consumer);
    shm_log_close(log);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    test_directory_make("trust");
    test_ring_garbage();
    test_truncation();
    test_forged_slots();
    test_bogus_retained();
    test_died_in_publish();
    test_corrupt_for_reader();
    test_slots_reclaimed();
    test_permissions();
    test_record_limit();
    test_old_version();
    return test_finish();
}
