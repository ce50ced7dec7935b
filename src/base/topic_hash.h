/*
 * topic_hash.h: the one hash of topic names (FNV-1a 64), shared by the record scan (src/wire,
 * which hashes a topic where it lies in the receive slices) and the topic table
 * (src/concurrent, which stores each name's hash): both must agree, so there is one function.
 * Fed run by run, so a name split across slices hashes as if it were contiguous. Any thread.
 */
#ifndef INTAKE_TOPIC_HASH_H
#define INTAKE_TOPIC_HASH_H

#include <stdint.h>

/* FNV-1a 64's offset basis: the hash of the empty name, where every hash starts. */
#define TOPIC_HASH_INITIAL 0xcbf29ce484222325ull

/* Continues `hash` over `length` bytes at `bytes` (xor each byte, then multiply by the FNV
 * prime 0x100000001b3). */
uint64_t topic_hash_feed(uint64_t hash, const uint8_t *bytes, uint32_t length);

#endif
