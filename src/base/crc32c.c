/*
 * crc32c.c: the fast CRC32C (see crc32c.h for what runs where, and why not ISA-L).
 *
 * One algorithm over one primitive per machine: crc32c_word and crc32c_byte are the CPU's
 * CRC32C instruction on a raw state (no inversions), and everything else is shared. The shift
 * tables are built once, on the first call, by running that instruction over zeros from each
 * byte value (the raw CRC is linear in its state, so four byte tables give the shift of any
 * state past a lane). The instructions take the 8 bytes of a word lowest first, which is the
 * order of the bytes in memory on both machines (little-endian).
 */
#include "crc32c.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "common.h"

#include "intake/shm_log_format.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>
#define CRC32C_HARDWARE 1
#define CRC32C_TARGET   __attribute__((target("sse4.2")))
#define CRC32C_NAME     "x86-64 sse4.2"

CRC32C_TARGET static inline uint64_t crc32c_word(uint64_t state, uint64_t word) {
    return _mm_crc32_u64(state, word);
}

CRC32C_TARGET static inline uint64_t crc32c_byte(uint64_t state, uint8_t byte) {
    return _mm_crc32_u8((uint32_t)state, byte);
}

static bool crc32c_hardware_present(void) {
    return __builtin_cpu_supports("sse4.2");
}

#elif defined(__aarch64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__)) &&   \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#include <sys/auxv.h>
#define CRC32C_HARDWARE 1
#define CRC32C_NAME     "arm64 crc32"
/* The CRC instructions for these functions only, whatever -march the build has (Debian's
 * arm64 default is armv8-a, without +crc). The compilers spell the feature differently, and the
 * builtins stand in for <arm_acle.h>'s __crc32cd and __crc32cb, which clang 14 declares only
 * when the whole build has +crc. The instruction runs only after crc32c_hardware_present said
 * the CPU has it. */
#ifdef __clang__
#define CRC32C_TARGET           __attribute__((target("crc")))
#define CRC32C_INSTRUCTION_WORD __builtin_arm_crc32cd
#define CRC32C_INSTRUCTION_BYTE __builtin_arm_crc32cb
#else
#define CRC32C_TARGET           __attribute__((target("+crc")))
#define CRC32C_INSTRUCTION_WORD __builtin_aarch64_crc32cx
#define CRC32C_INSTRUCTION_BYTE __builtin_aarch64_crc32cb
#endif
/* <asm/hwcap.h>'s bit, for a libc whose <sys/auxv.h> does not bring it. */
#ifndef HWCAP_CRC32
#define HWCAP_CRC32 (1ul << 7)
#endif

CRC32C_TARGET static inline uint64_t crc32c_word(uint64_t state, uint64_t word) {
    return CRC32C_INSTRUCTION_WORD((uint32_t)state, word);
}

CRC32C_TARGET static inline uint64_t crc32c_byte(uint64_t state, uint8_t byte) {
    return CRC32C_INSTRUCTION_BYTE((uint32_t)state, byte);
}

static bool crc32c_hardware_present(void) {
    return (getauxval(AT_HWCAP) & HWCAP_CRC32) != 0;
}
#endif

#ifdef CRC32C_HARDWARE
/* Three lane sizes: long buffers go 4 KiB lanes, the rest 256-byte lanes, then 64-byte lanes
 * where they can (a record of a few hundred bytes is one append's whole checksum). */
#define CRC32C_SHORT_LANE_BYTES 256u
#define CRC32C_TINY_LANE_BYTES  64u
static uint32_t crc32c_shift_long[4][256], crc32c_shift_short[4][256], crc32c_shift_tiny[4][256];

/* Fills `table`: entry [byte][value] is the raw state after `lane` zero bytes from the state
 * `value << (8 * byte)`. */
CRC32C_TARGET static void crc32c_shift_fill(uint32_t table[4][256], uint32_t lane) {
    for (uint32_t byte = 0; byte < 4; byte++) {
        for (uint32_t value = 0; value < 256; value++) {
            uint64_t state = (uint64_t)value << (8 * byte);
            for (uint32_t word = 0; word < lane / 8; word++) state = crc32c_word(state, 0);
            table[byte][value] = (uint32_t)state;
        }
    }
}

/* The raw state after one lane of zero bytes. */
static inline uint32_t crc32c_shift(const uint32_t table[4][256], uint32_t state) {
    return table[0][state & 0xff] ^ table[1][(state >> 8) & 0xff] ^ table[2][(state >> 16) & 0xff] ^
           table[3][state >> 24];
}

/* One stream over `length` bytes: 8 at a time, then the rest one by one. */
CRC32C_TARGET static inline uint64_t crc32c_stream(uint64_t state, const uint8_t *bytes,
                                                   size_t length) {
    for (; length >= 8; length -= 8, bytes += 8) {
        uint64_t word;
        memcpy(&word, bytes, 8);
        state = crc32c_word(state, word);
    }
    for (; length > 0; length--) state = crc32c_byte(state, *bytes++);
    return state;
}

/* Consumes whole groups of three `lane`-byte lanes from *bytes; returns the raw state. */
CRC32C_TARGET static uint32_t crc32c_lanes(uint32_t state, const uint8_t **bytes, size_t *length,
                                           size_t lane, const uint32_t table[4][256]) {
    while (*length >= 3 * lane) {
        const uint8_t *at = *bytes;
        uint64_t state0 = state, state1 = 0, state2 = 0;
        for (size_t index = 0; index < lane; index += 8) {
            uint64_t word0, word1, word2;
            memcpy(&word0, at + index, 8);
            memcpy(&word1, at + lane + index, 8);
            memcpy(&word2, at + 2 * lane + index, 8);
            state0 = crc32c_word(state0, word0);
            state1 = crc32c_word(state1, word1);
            state2 = crc32c_word(state2, word2);
        }
        state = crc32c_shift(table, (uint32_t)state0) ^ (uint32_t)state1;
        state = crc32c_shift(table, state) ^ (uint32_t)state2;
        *bytes += 3 * lane;
        *length -= 3 * lane;
    }
    return state;
}

/* The raw CRC of `length` bytes from the raw `state`. */
CRC32C_TARGET static uint32_t crc32c_hardware_run(uint32_t state, const uint8_t *bytes,
                                                  size_t length) {
    if (length >= 3 * CRC32C_TINY_LANE_BYTES) {
        state = crc32c_lanes(state, &bytes, &length, INTAKE_CRC32C_LANE_BYTES, crc32c_shift_long);
        state = crc32c_lanes(state, &bytes, &length, CRC32C_SHORT_LANE_BYTES, crc32c_shift_short);
        state = crc32c_lanes(state, &bytes, &length, CRC32C_TINY_LANE_BYTES, crc32c_shift_tiny);
    }
    return (uint32_t)crc32c_stream(state, bytes, length);
}
#endif

/* What intake_crc32c runs, decided once by crc32c_setup: 0 until then. */
enum crc32c_mode { CRC32C_MODE_UNKNOWN = 0, CRC32C_MODE_HARDWARE, CRC32C_MODE_REFERENCE };
static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;
static _Atomic uint32_t crc32c_mode = CRC32C_MODE_UNKNOWN;

/* Detects the instruction and builds the shift tables (once, under crc32c_once). */
static void crc32c_setup(void) {
    uint32_t mode = CRC32C_MODE_REFERENCE;
#ifdef CRC32C_HARDWARE
    if (crc32c_hardware_present()) {
        crc32c_shift_fill(crc32c_shift_long, INTAKE_CRC32C_LANE_BYTES);
        crc32c_shift_fill(crc32c_shift_short, CRC32C_SHORT_LANE_BYTES);
        crc32c_shift_fill(crc32c_shift_tiny, CRC32C_TINY_LANE_BYTES);
        mode = CRC32C_MODE_HARDWARE;
    }
#endif
    /* Publishes the tables: pairs with the acquire load in crc32c_mode_get. */
    atomic_store_explicit(&crc32c_mode, mode, memory_order_release);
}

/* The mode, after crc32c_setup (one load on every call after the first: pthread_once's own
 * check costs a call into libc, which is half the time of a 64-byte CRC). */
static inline uint32_t crc32c_mode_get(void) {
    /* Pairs with the release store in crc32c_setup: a mode read as set means tables built. */
    uint32_t mode = atomic_load_explicit(&crc32c_mode, memory_order_acquire);
    if (mode != CRC32C_MODE_UNKNOWN) return mode;
    pthread_once(&crc32c_once, crc32c_setup);
    mode = atomic_load_explicit(&crc32c_mode, memory_order_acquire);
    INTAKE_ASSERT(mode != CRC32C_MODE_UNKNOWN);
    return mode;
}

uint32_t intake_crc32c(uint32_t crc, const void *data, size_t length) {
#ifdef CRC32C_HARDWARE
    if (crc32c_mode_get() == CRC32C_MODE_HARDWARE) return ~crc32c_hardware_run(~crc, data, length);
#endif
    return shm_log_crc32c(crc, data, length);
}

const char *intake_crc32c_implementation(void) {
#ifdef CRC32C_HARDWARE
    if (crc32c_mode_get() == CRC32C_MODE_HARDWARE) return CRC32C_NAME;
#endif
    return "reference";
}
