/*
 * crc32c.c: the three-stream CRC32C (see crc32c.h). The shift table is built once, on the
 * first long buffer, by running the crc32 instruction over zeros from each byte value (a CRC
 * without its pre- and post-inversion is linear in its starting state, so four byte tables
 * give the shift of any state).
 */
#include "crc32c.h"

#include <pthread.h>
#include <string.h>

#include "intake/shm_log_format.h"

#ifdef SHM_LOG_CRC32C_HARDWARE
/* Three lane sizes: long buffers go 4 KiB lanes, the rest 256-byte lanes, then 64-byte lanes
 * where they can (a record of a few hundred bytes is one append's whole checksum). */
#define CRC32C_SHORT_LANE_BYTES 256u
#define CRC32C_TINY_LANE_BYTES  64u
static uint32_t crc32c_shift_long[4][256], crc32c_shift_short[4][256], crc32c_shift_tiny[4][256];
static pthread_once_t crc32c_shift_once = PTHREAD_ONCE_INIT;

__attribute__((target("sse4.2"))) static void crc32c_shift_fill(uint32_t table[4][256],
                                                                uint32_t lane) {
    for (uint32_t byte = 0; byte < 4; byte++) {
        for (uint32_t value = 0; value < 256; value++) {
            uint64_t state = (uint64_t)value << (8 * byte);
            for (uint32_t word = 0; word < lane / 8; word++) state = _mm_crc32_u64(state, 0);
            table[byte][value] = (uint32_t)state;
        }
    }
}

static void crc32c_shift_build(void) {
    crc32c_shift_fill(crc32c_shift_long, INTAKE_CRC32C_LANE_BYTES);
    crc32c_shift_fill(crc32c_shift_short, CRC32C_SHORT_LANE_BYTES);
    crc32c_shift_fill(crc32c_shift_tiny, CRC32C_TINY_LANE_BYTES);
}

/* The raw state after one lane of zero bytes. */
static inline uint32_t crc32c_shift(const uint32_t table[4][256], uint32_t state) {
    return table[0][state & 0xff] ^ table[1][(state >> 8) & 0xff] ^ table[2][(state >> 16) & 0xff] ^
           table[3][state >> 24];
}

/* Consumes whole groups of three `lane`-byte lanes from *bytes; returns the raw state. */
__attribute__((target("sse4.2"))) static uint32_t crc32c_lanes(uint32_t state,
                                                               const uint8_t **bytes,
                                                               size_t *length, size_t lane,
                                                               const uint32_t table[4][256]) {
    while (*length >= 3 * lane) {
        const uint8_t *at = *bytes;
        uint64_t state0 = state, state1 = 0, state2 = 0;
        for (size_t index = 0; index < lane; index += 8) {
            uint64_t word0, word1, word2;
            memcpy(&word0, at + index, 8);
            memcpy(&word1, at + lane + index, 8);
            memcpy(&word2, at + 2 * lane + index, 8);
            state0 = _mm_crc32_u64(state0, word0);
            state1 = _mm_crc32_u64(state1, word1);
            state2 = _mm_crc32_u64(state2, word2);
        }
        state = crc32c_shift(table, (uint32_t)state0) ^ (uint32_t)state1;
        state = crc32c_shift(table, state) ^ (uint32_t)state2;
        *bytes += 3 * lane;
        *length -= 3 * lane;
    }
    return state;
}
#endif

uint32_t intake_crc32c(uint32_t crc, const void *data, size_t length) {
#ifdef SHM_LOG_CRC32C_HARDWARE
    if (length >= 3 * CRC32C_TINY_LANE_BYTES && __builtin_cpu_supports("sse4.2")) {
        pthread_once(&crc32c_shift_once, crc32c_shift_build);
        const uint8_t *bytes = data;
        uint32_t state = ~crc;
        state = crc32c_lanes(state, &bytes, &length, INTAKE_CRC32C_LANE_BYTES, crc32c_shift_long);
        state = crc32c_lanes(state, &bytes, &length, CRC32C_SHORT_LANE_BYTES, crc32c_shift_short);
        state = crc32c_lanes(state, &bytes, &length, CRC32C_TINY_LANE_BYTES, crc32c_shift_tiny);
        return shm_log_crc32c_sse42(~state, bytes, length);
    }
#endif
    return shm_log_crc32c(crc, data, length);
}
