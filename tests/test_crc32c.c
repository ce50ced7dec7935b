/*
 * test_crc32c.c: src/base/crc32c.c (the fast CRC32C) against the format's reference,
 * shm_log_crc32c in include/intake/shm_log_format.h.
 *
 *   implementation   on a CPU with the instruction (SSE4.2 on x86-64, CRC32 on arm64) the fast
 *                    path is the hardware one, not a silent fall back to the reference
 *   first_use        threads racing to the first call all get the right CRC (the setup that
 *                    detects the CPU and builds the shift tables runs once, before any use)
 *   every_length     every length 0..1100 (both sides of the 192- and 768-byte lane groups and
 *                    every tail) from each of 16 alignments, with a random starting CRC
 *   random_lengths   random lengths 0..8 KiB from every alignment 0..63
 *   long_lengths     both sides of the 12 KiB group of 4 KiB lanes, and up to 64 KiB and more
 *   chaining         a buffer cut in random places gives the CRC of the whole
 * docs/shm-log-format.md's vectors are checked against both in test_shm_log_format.
 */
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#if defined(__aarch64__)
#include <sys/auxv.h>
#endif

#include "crc32c.h"
#include "harness.h"
#include "intake/shm_log_format.h"

#define DATA_BYTES        (70000 + 64)
#define FIRST_USE_THREADS 4
#define RANDOM_LENGTH_MAX 8192u
#define RANDOM_LENGTHS    300u
#define ALIGNMENTS_ALL    64u
#define ALIGNMENTS_SOME   16u

static uint8_t data[DATA_BYTES];

/* One case: the fast CRC of `length` bytes at `offset`, from `start`, against the reference. */
static bool crc_agrees(uint32_t start, size_t offset, size_t length) {
    REQUIRE(offset + length <= sizeof(data));
    uint32_t fast = intake_crc32c(start, data + offset, length);
    uint32_t reference = shm_log_crc32c(start, data + offset, length);
    if (fast != reference)
        fprintf(stderr, "mismatch: start %08x offset %zu length %zu: fast %08x reference %08x\n",
                start, offset, length, fast, reference);
    return fast == reference;
}

static void implementation(void) {
    const char *name = intake_crc32c_implementation();
    printf("implementation: %s\n", name);
#if defined(__x86_64__)
    if (__builtin_cpu_supports("sse4.2")) CHECK(strcmp(name, "x86-64 sse4.2") == 0);
#elif defined(__aarch64__)
    if (getauxval(AT_HWCAP) & HWCAP_CRC32) CHECK(strcmp(name, "arm64 crc32") == 0);
#endif
    CHECK(name[0] != '\0');
}

/* No harness macro here: the harness's counters belong to the main thread. */
static void *first_use_thread(void *argument) {
    size_t length = 3 * INTAKE_CRC32C_LANE_BYTES + (size_t)(uintptr_t)argument;
    bool agreed = intake_crc32c(0, data, length) == shm_log_crc32c(0, data, length);
    return (void *)(uintptr_t)agreed;
}

static void first_use(void) {
    pthread_t threads[FIRST_USE_THREADS];
    for (uintptr_t index = 0; index < FIRST_USE_THREADS; index++)
        REQUIRE(pthread_create(&threads[index], NULL, first_use_thread, (void *)index) == 0);
    for (uint32_t index = 0; index < FIRST_USE_THREADS; index++) {
        void *agreed = NULL;
        REQUIRE(pthread_join(threads[index], &agreed) == 0);
        CHECK(agreed != NULL);
    }
}

/* Cases tried and how many disagreed. */
struct tally {
    unsigned cases, mismatches;
};

/* `length` bytes from each of `alignments` alignments (as many as fit), random starting CRCs. */
static void length_try(struct tally *tally, size_t length, size_t alignments, uint64_t *seed) {
    for (size_t align = 0; align < alignments && align + length <= sizeof(data); align++) {
        if (!crc_agrees((uint32_t)test_random_next(seed), align, length)) tally->mismatches++;
        tally->cases++;
    }
}

static void tally_check(const char *what, const struct tally *tally, unsigned cases_min) {
    printf("%s: %u cases, %u mismatches\n", what, tally->cases, tally->mismatches);
    CHECK(tally->cases >= cases_min);
    CHECK(tally->mismatches == 0);
}

static void every_length(uint64_t *seed) {
    struct tally tally = {0, 0};
    for (size_t length = 0; length <= 1100; length++)
        length_try(&tally, length, ALIGNMENTS_SOME, seed);
    tally_check("every_length", &tally, 1101 * ALIGNMENTS_SOME);
}

static void random_lengths(uint64_t *seed) {
    struct tally tally = {0, 0};
    for (unsigned round = 0; round < RANDOM_LENGTHS; round++)
        length_try(&tally, (size_t)(test_random_next(seed) % (RANDOM_LENGTH_MAX + 1)),
                   ALIGNMENTS_ALL, seed);
    tally_check("random_lengths", &tally, RANDOM_LENGTHS * ALIGNMENTS_ALL);
}

static void long_lengths(uint64_t *seed) {
    const size_t group = 3 * INTAKE_CRC32C_LANE_BYTES;
    const size_t lengths[] = {group - 1, group,         group + 1, group + 191, group + 192,
                              2 * group, 2 * group + 7, 65536,     65536 + 13,  70000};
    struct tally tally = {0, 0};
    for (size_t index = 0; index < sizeof(lengths) / sizeof(lengths[0]); index++)
        length_try(&tally, lengths[index], 8, seed);
    tally_check("long_lengths", &tally, 60);
}

static void chaining(uint64_t *seed) {
    unsigned mismatches = 0;
    for (unsigned round = 0; round < 200; round++) {
        size_t length = (size_t)(test_random_next(seed) % 20000);
        uint32_t whole = shm_log_crc32c(0, data, length);
        uint32_t crc = 0;
        for (size_t done = 0; done < length;) {
            size_t piece = (size_t)(test_random_next(seed) % 5000);
            if (piece > length - done) piece = length - done;
            crc = intake_crc32c(crc, data + done, piece);
            done += piece;
        }
        if (crc != whole) mismatches++;
    }
    printf("chaining: 200 buffers, %u mismatches\n", mismatches);
    CHECK(mismatches == 0);
}

int main(void) {
    uint64_t seed = 20;
    for (size_t index = 0; index < sizeof(data); index++)
        data[index] = (uint8_t)test_random_next(&seed);
    first_use();
    implementation();
    every_length(&seed);
    random_lengths(&seed);
    long_lengths(&seed);
    chaining(&seed);
    return test_finish();
}
