/*
 * topic_hash.c: FNV-1a 64 over topic names (see topic_hash.h).
 */
#include "topic_hash.h"

#include "common.h"

#define TOPIC_HASH_PRIME 0x100000001b3ull

uint64_t topic_hash_feed(uint64_t hash, const uint8_t *bytes, uint32_t length) {
    INTAKE_ASSERT(bytes != NULL || length == 0);
    for (uint32_t index = 0; index < length; index++) {
        hash ^= bytes[index];
        hash *= TOPIC_HASH_PRIME;
    }
    return hash;
}
