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

static void *first_use_thread(void *argument) {
    size_t length = 3 * INTAKE_CRC32C_LANE_BYTES + (size_t)(uintptr_t)argument;
    return (void *)(uintptr_t)crc_agrees(0, 0, length);
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

static void every_length(uint64_t *seed) {
    unsigned cases = 0, mismatches = 0;
    for (size_t length = 0; length <= 1100; length++) {
        for (size_t align = 0; align < ALIGNMENTS_SOME; align++) {
            if (!crc_agrees((uint32_t)test_random_next(seed), align, length)) mismatches++;
            cases++;
        }
    }
    printf("every_length: %u cases, %u mismatches\n", cases, mismatches);
    CHECK(mismatches == 0);
}

static void random_lengths(uint64_t *seed) {
    unsigned cases = 0, mismatches = 0;
    for (unsigned round = 0; round < RANDOM_LENGTHS; round++) {
        size_t length = (size_t)(test_random_next(seed) % (RANDOM_LENGTH_MAX + 1));
        for (size_t align = 0; align < ALIGNMENTS_ALL; align++) {
            if (!crc_agrees((uint32_t)test_random_next(seed), align, length)) mismatches++;
            cases++;
        }
    }
    printf("random_lengths: %u cases, %u mismatches\n", cases, mismatches);
    CHECK(mismatches == 0);
}

static void long_lengths(uint64_t *seed) {
    const size_t group = 3 * INTAKE_CRC32C_LANE_BYTES;
    const size_t lengths[] = {group - 1, group,         group + 1, group + 191, group + 192,
                              2 * group, 2 * group + 7, 65536,     65536 + 13,  70000};
    unsigned cases = 0, mismatches = 0;
    for (size_t index = 0; index < sizeof(lengths) / sizeof(lengths[0]); index++) {
        for (size_t align = 0; align < 8 && align + lengths[index] <= sizeof(data); align++) {
            if (!crc_agrees((uint32_t)test_random_next(seed), align, lengths[index])) mismatches++;
            cases++;
        }
    }
    printf("long_lengths: %u cases, %u mismatches\n", cases, mismatches);
    CHECK(cases >= 60);
    CHECK(mismatches == 0);
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
