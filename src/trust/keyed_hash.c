/*
 * keyed_hash.c: SipHash-2-4 through OpenSSL's EVP_MAC (see keyed_hash.h). The context is made
 * once per hasher; each hash re-keys it (no allocation), feeds the bytes and reads 8 bytes.
 */
#include "keyed_hash.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

int keyed_hash_key_random(struct keyed_hash_key *key) {
    INTAKE_ASSERT(key != NULL);
    ssize_t got = getrandom(key->bytes, sizeof(key->bytes), 0);
    if (got < 0) return -errno;
    return got == (ssize_t)sizeof(key->bytes) ? 0 : -EIO;
}

int keyed_hasher_init(struct keyed_hasher *hasher, const struct keyed_hash_key *key) {
    INTAKE_ASSERT(hasher != NULL && key != NULL);
    memset(hasher, 0, sizeof(*hasher));
    hasher->key = *key;
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "SIPHASH", NULL);
    if (mac == NULL) return -ENOSYS;
    EVP_MAC_CTX *context = EVP_MAC_CTX_new(mac);
    if (context == NULL) {
        EVP_MAC_free(mac);
        return -ENOMEM;
    }
    /* A 64-bit output: the size stays set across later re-keying inits. */
    size_t size = 8;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size), OSSL_PARAM_END};
    if (EVP_MAC_init(context, hasher->key.bytes, sizeof(hasher->key.bytes), params) != 1) {
        EVP_MAC_CTX_free(context);
        EVP_MAC_free(mac);
        return -ENOSYS;
    }
    hasher->mac = mac;
    hasher->context = context;
    return 0;
}

void keyed_hasher_free(struct keyed_hasher *hasher) {
    if (hasher == NULL) return;
    EVP_MAC_CTX_free(hasher->context);
    EVP_MAC_free(hasher->mac);
    hasher->context = NULL;
    hasher->mac = NULL;
}

static uint64_t hash_pieces(struct keyed_hasher *hasher, const uint8_t *first,
                            uint32_t first_length, const uint8_t *second, uint32_t second_length) {
    INTAKE_ASSERT(hasher->context != NULL);
    EVP_MAC_CTX *context = hasher->context;
    uint8_t out[8];
    size_t out_length = 0;
    int ok = EVP_MAC_init(context, hasher->key.bytes, sizeof(hasher->key.bytes), NULL) == 1 &&
             EVP_MAC_update(context, first, first_length) == 1 &&
             (second_length == 0 || EVP_MAC_update(context, second, second_length) == 1) &&
             EVP_MAC_final(context, out, &out_length, sizeof(out)) == 1;
    /* SipHash over memory cannot fail once the context was made: our invariant. */
    INTAKE_ASSERT(ok);
    INTAKE_ASSERT(out_length == sizeof(out));
    uint64_t value = 0;
    for (int index = 7; index >= 0; index--) value = value << 8 | out[index];
    return value;
}

uint64_t keyed_hash_bytes(struct keyed_hasher *hasher, const uint8_t *bytes, uint32_t length) {
    return hash_pieces(hasher, bytes, length, NULL, 0);
}

uint64_t keyed_hash_producer(struct keyed_hasher *hasher, uint64_t principal, const uint8_t *id,
                             uint32_t length) {
    INTAKE_ASSERT(id != NULL);
    INTAKE_ASSERT(length >= 1 && length <= 64);
    uint8_t tag[8];
    for (int index = 0; index < 8; index++) tag[index] = (uint8_t)(principal >> (8 * index));
    uint64_t value = hash_pieces(hasher, tag, sizeof(tag), id, length);
    return value != 0 ? value : 1;
}
