/*
 * bench_memcpy.c: --memcpy (bench_memcpy.h): single-core copy bandwidth, the ceiling one copy
 * of a payload is measured against. Main thread only.
 */
#include "bench_memcpy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define MEMCPY_BUFFER_BYTES (256u << 20) /* well past the last-level cache: memory bandwidth */

/* Copies --size chunks from one buffer to another, walking both sequentially, for --duration-s. */
int run_memcpy(const struct bench_options *options) {
    uint32_t chunk_bytes = options->sizes[0];
    uint8_t *source = malloc(MEMCPY_BUFFER_BYTES);
    uint8_t *destination = malloc(MEMCPY_BUFFER_BYTES);
    if (!source || !destination) return 1;
    /* Touch every page first so the timing has no page faults. */
    memset(source, 'm', MEMCPY_BUFFER_BYTES);
    /* Not zero: the compiler would turn malloc+memset(0) into calloc's lazy zero pages. */
    memset(destination, 'd', MEMCPY_BUFFER_BYTES);
    uint64_t chunks_per_lap = MEMCPY_BUFFER_BYTES / chunk_bytes;
    uint64_t copied_chunks = 0, start_ns = intake_now_ns(), now_ns = start_ns;
    uint64_t end_ns = start_ns + (uint64_t)(options->duration_s * 1e9);
    while (now_ns < end_ns) {
        /* A clock read per 16 MiB keeps timing overhead negligible for 64-byte chunks. */
        for (uint64_t step = 0; step < (16u << 20) / chunk_bytes; step++) {
            uint64_t at = (copied_chunks++ % chunks_per_lap) * chunk_bytes;
            memcpy(destination + at, source + at, chunk_bytes);
        }
        now_ns = intake_now_ns();
    }
    /* Reading the destination keeps the compiler from dropping the copies. */
    volatile uint8_t sink = destination[(copied_chunks * 7919) % MEMCPY_BUFFER_BYTES];
    (void)sink;
    double seconds = (double)(now_ns - start_ns) / 1e9;
    printf("result target=memcpy mode=closed size=%u conns=1 msgs=%llu secs=%.3f msgs_per_s=%.0f "
           "mb_per_s=%.1f\n",
           chunk_bytes, (unsigned long long)copied_chunks, seconds, copied_chunks / seconds,
           (double)copied_chunks * chunk_bytes / seconds / 1e6);
    free(source);
    free(destination);
    return 0;
}
