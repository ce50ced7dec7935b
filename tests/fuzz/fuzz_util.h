/*
 * fuzz_util.h: what the fuzz targets share: a reader that takes parameters from the tail of an
 * input (FuzzedDataProvider-style, so the head stays the bytes under test), chunk splits
 * derived from those parameters, and the one failure macro.
 *
 * Each target defines LLVMFuzzerTestOneInput (and maybe LLVMFuzzerInitialize). The same source
 * links either with libFuzzer (tests/fuzz/run, INTAKE_FUZZ=ON) or with replay_main.c, which
 * replays the corpus and tests/fuzz/regressions/ in the ordinary ctest suites (gcc, ASan).
 * Single-threaded; everything a target allocates is freed before it returns.
 */
#ifndef INTAKE_FUZZ_UTIL_H
#define INTAKE_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A property the target asserts failed: print it and abort, which both libFuzzer and the
 * replay driver report as a crash with the input attached. */
#define FUZZ_CHECK(expression)                                                                     \
    do {                                                                                           \
        if (!(expression)) {                                                                       \
            fprintf(stderr, "fuzz property failed: %s (%s:%d)\n", #expression, __FILE__,           \
                    __LINE__);                                                                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* The input split into the bytes under test (head) and parameters (tail, read backwards). */
struct fuzz_input {
    const uint8_t *head;
    size_t head_length;
};

/* Takes one parameter byte from the tail (0 once the input is used up). */
static inline uint8_t fuzz_take_byte(struct fuzz_input *input) {
    if (input->head_length == 0) return 0;
    input->head_length--;
    return input->head[input->head_length];
}

/* Takes up to `wanted` parameter bytes from the tail; returns how many it took. */
static inline size_t fuzz_take_bytes(struct fuzz_input *input, uint8_t *out, size_t wanted) {
    size_t taken = 0;
    while (taken < wanted && input->head_length > 0) out[taken++] = fuzz_take_byte(input);
    return taken;
}

/*
 * How a stream is cut into chunks, as receive buffers deliver it. Each split byte gives one
 * chunk: its low 6 bits a length (1..63, or 4096 for 63), its top 2 bits where it lives:
 *   0: right after the previous chunk, same unit     (the framer merges them into one slice)
 *   1: right after the previous chunk, another unit  (contiguous, yet a new slice)
 *   2: its own allocation, another unit              (ASan sees any read outside it)
 *   3: its own allocation, the same unit             (same unit, not contiguous: a new slice)
 * The split bytes are used round-robin until the stream is covered; none: one chunk.
 */
#define FUZZ_SPLIT_BYTES_MAX 32

struct fuzz_chunk {
    const uint8_t *bytes;
    uint32_t length;
    uint32_t unit;
    uint8_t *owned; /* its own allocation (freed by fuzz_chunks_free), or NULL */
};

struct fuzz_chunks {
    struct fuzz_chunk *chunks;
    size_t count;
    uint8_t *stream_copy; /* the stream in one exact-sized allocation (modes 0 and 1) */
};

/* Cuts `stream` as `splits` say (63 in the low bits means a long chunk of up to 4096 bytes). */
static inline void fuzz_chunks_make(const uint8_t *stream, size_t length, const uint8_t *splits,
                                    size_t split_count, struct fuzz_chunks *out) {
    memset(out, 0, sizeof(*out));
    out->stream_copy = malloc(length ? length : 1);
    FUZZ_CHECK(out->stream_copy != NULL);
    if (length > 0) memcpy(out->stream_copy, stream, length);
    out->chunks = calloc(length ? length : 1, sizeof(*out->chunks));
    FUZZ_CHECK(out->chunks != NULL);
    size_t position = 0;
    uint32_t unit = 0;
    while (position < length) {
        uint8_t split = split_count ? splits[out->count % split_count] : 0;
        uint32_t chunk_length = (uint32_t)length;
        if (split_count > 0) chunk_length = (split & 63) == 63 ? 4096u : (uint32_t)(split & 63) + 1;
        if (chunk_length > length - position) chunk_length = (uint32_t)(length - position);
        unsigned mode = split_count ? split >> 6 : 0;
        struct fuzz_chunk *chunk = &out->chunks[out->count++];
        if (mode == 1 || mode == 2) unit++;
        chunk->length = chunk_length;
        chunk->unit = unit;
        if (mode >= 2) {
            chunk->owned = malloc(chunk_length);
            FUZZ_CHECK(chunk->owned != NULL);
            memcpy(chunk->owned, stream + position, chunk_length);
            chunk->bytes = chunk->owned;
        } else {
            chunk->bytes = out->stream_copy + position;
        }
        position += chunk_length;
    }
}

static inline void fuzz_chunks_free(struct fuzz_chunks *chunks) {
    for (size_t index = 0; index < chunks->count; index++) free(chunks->chunks[index].owned);
    free(chunks->chunks);
    free(chunks->stream_copy);
    memset(chunks, 0, sizeof(*chunks));
}

#endif
