/*
 * keyed_hash.h: the keyed hash of peer-chosen identifiers (issue 17).
 *
 * A peer chooses its producer_id, so an unkeyed hash of it (FNV-1a, CRC32C) lets the peer
 * choose ids that collide, turning the producer table's chains and the deduplication index's
 * probes into linear walks: 16,384 colliding ids cost quadratic time. Hashing with a secret key
 * drawn at startup makes collisions unpredictable to a peer. The PRF is SipHash-2-4 with a
 * 64-bit output, from OpenSSL 3's EVP_MAC ("SIPHASH"): no hand-written hash.
 *
 * What is hashed: the principal's tag (8 bytes, little-endian), then the producer_id's bytes, so
 * equal ids of two principals are two keys. The key lives in memory only: hashes mean nothing
 * across restarts and are never written to a file.
 *
 * Cost: about 50 ns per hash here. The reactor hashes once per connection (its record_origin);
 * the log opener once per producer entry it loads and once per record it replays. Nothing
 * hashes per record on the delivery path.
 *
 * Thread: a keyed_hasher belongs to one thread (it holds an EVP_MAC_CTX); the key is copied
 * into each.
 */
#ifndef INTAKE_KEYED_HASH_H
#define INTAKE_KEYED_HASH_H

#include <stdint.h>

#include "common.h"

#define KEYED_HASH_KEY_BYTES 16

struct keyed_hash_key {
    uint8_t bytes[KEYED_HASH_KEY_BYTES];
};

struct keyed_hasher {
    void *mac;     /* EVP_MAC * */
    void *context; /* EVP_MAC_CTX *, keyed with `key` at every hash */
    struct keyed_hash_key key;
};

/* A fresh random key (getrandom). 0, or a negative errno. Main thread, at startup. */
int keyed_hash_key_random(struct keyed_hash_key *key) INTAKE_MUST_CHECK;

/* Prepares a hasher for `key`. 0, or -ENOSYS when OpenSSL has no SipHash, -ENOMEM. */
int keyed_hasher_init(struct keyed_hasher *hasher,
                      const struct keyed_hash_key *key) INTAKE_MUST_CHECK;
void keyed_hasher_free(struct keyed_hasher *hasher);

/* SipHash-2-4 of (principal tag LE, id bytes); never 0 (0 means "no producer_id"). */
uint64_t keyed_hash_producer(struct keyed_hasher *hasher, uint64_t principal, const uint8_t *id,
                             uint32_t length);

/* SipHash-2-4 of `length` bytes (the test vectors of the SipHash paper check it). */
uint64_t keyed_hash_bytes(struct keyed_hasher *hasher, const uint8_t *bytes, uint32_t length);

#endif
