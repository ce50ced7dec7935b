/*
 * crc32c-rate.c: a micro-benchmark of the two CRC32C implementations of the tree, the
 * format's bitwise reference (shm_log_crc32c, include/intake/shm_log_format.h) and the fast
 * one every checksum of intake uses (intake_crc32c, src/base/crc32c.c), at 64 B, 256 B,
 * 4 KiB and 64 KiB: the sizes of a small record, a typical one, a page and a large record.
 * Each cell checksums buffers of its size back to back over a 1 MiB area (in cache, as the
 * writer's copy is) for at least --bytes bytes (the reference a 32nd of that), five times, and
 * prints the median pass in ns per byte and GB/s, measured in the thread's CPU time.
 * Usage: crc32c-rate [--bytes N]   (default 256 MiB for the fast one)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "crc32c.h"
#include "intake/shm_log_format.h"

#define AREA_BYTES        (1u << 20)
#define PASSES            5
#define REFERENCE_DIVISOR 32u

static uint8_t area[AREA_BYTES];

static uint64_t cpu_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
    return (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
}

static int compare_double(const void *left, const void *right) {
    double a = *(const double *)left, b = *(const double *)right;
    return (a > b) - (a < b);
}

/* The median of PASSES passes, in ns per byte, of `crc32c` over buffers of `size` bytes. */
static double measure(shm_log_crc32c_function *crc32c, size_t size, uint64_t bytes) {
    uint64_t calls = bytes / size > 0 ? bytes / size : 1;
    size_t places = AREA_BYTES / size;
    double pass_ns_per_byte[PASSES];
    volatile uint32_t sink = 0;
    for (int pass = 0; pass < PASSES; pass++) {
        uint32_t folded = 0;
        uint64_t start = cpu_ns();
        for (uint64_t call = 0; call < calls; call++)
            folded ^= crc32c(0, area + (call % places) * size, size);
        uint64_t elapsed = cpu_ns() - start;
        sink ^= folded;
        pass_ns_per_byte[pass] = (double)elapsed / ((double)calls * (double)size);
    }
    (void)sink;
    qsort(pass_ns_per_byte, PASSES, sizeof(double), compare_double);
    return pass_ns_per_byte[PASSES / 2];
}

static void usage(FILE *out) {
    fputs("usage: crc32c-rate [--bytes N]\n"
          "  ns per byte of CRC32C, the format's bitwise reference and intake_crc32c, at 64 B,\n"
          "  256 B, 4 KiB and 64 KiB over N bytes each (default 256M; K/M/G); --help, --version\n",
          out);
}

int main(int argc, char **argv) {
    uint64_t bytes = 256ull << 20;
    const struct cli_number_flag flags[] = {
        {"bytes", NUMBER_SIZE_SPEC(1, 1ull << 40), NULL, &bytes},
    };
    int exit_now =
        cli_parse_numbers("crc32c-rate", argc, argv, flags, INTAKE_ARRAY_LENGTH(flags), usage);
    if (exit_now >= 0) return exit_now;
    for (size_t index = 0; index < AREA_BYTES; index++) area[index] = (uint8_t)(index * 131 + 7);
    static const size_t sizes[] = {64, 256, 4096, 65536};
    printf("crc32c-rate: fast = intake_crc32c (%s), reference = shm_log_crc32c (bitwise)\n",
           intake_crc32c_implementation());
    printf("%8s %16s %16s %12s %12s %10s\n", "bytes", "reference ns/B", "reference GB/s",
           "fast ns/B", "fast GB/s", "speedup");
    for (size_t index = 0; index < sizeof(sizes) / sizeof(sizes[0]); index++) {
        double reference = measure(shm_log_crc32c, sizes[index], bytes / REFERENCE_DIVISOR);
        double fast = measure(intake_crc32c, sizes[index], bytes);
        printf("%8zu %16.3f %16.3f %12.4f %12.2f %10.1f\n", sizes[index], reference,
               1.0 / reference, fast, 1.0 / fast, reference / fast);
    }
    return 0;
}
