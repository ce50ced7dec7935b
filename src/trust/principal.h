/*
 * principal.h: who a connection has proven to be (issue 17).
 *
 * A principal is a name: on a TLS listener with client certificates (mTLS), the client
 * certificate's first URI SAN (a SPIFFE ID, for example), or else its subject CN; everywhere
 * else (the plaintext listener, TLS without client certificates) PRINCIPAL_ANONYMOUS. It is
 * fixed for a connection before its first record is framed and never changes afterwards, so
 * what records carry of it (the tag) may be read by any stage while the record is in flight.
 *
 * The tag is what leaves the reactor: the first 8 bytes of SHA-256 of the name, read as a
 * little-endian 64-bit number. It keys what a principal owns (its producer ids, its
 * deduplication state) and is written into every log entry (docs/shm-log-format.md), so a
 * consumer can tell which principal wrote a record by hashing the name it expects. It is
 * stable across restarts and machines, and a peer cannot choose it (it cannot choose its
 * proven name).
 *
 * Thread: principal_set from any thread (the TLS handshake side fills it in); then read-only.
 */
#ifndef INTAKE_PRINCIPAL_H
#define INTAKE_PRINCIPAL_H

#include <stdbool.h>
#include <stdint.h>

#include "common.h"

/* Longest principal name, bytes (a longer URI SAN or CN is refused at the handshake). */
#define PRINCIPAL_NAME_BYTES_MAX 255
/* The principal of every peer that proved nothing. */
#define PRINCIPAL_ANONYMOUS "anonymous"

struct principal {
    uint64_t tag;         /* SHA-256(name)[0..8], little-endian */
    uint16_t name_length; /* bytes of name, without the NUL */
    char name[PRINCIPAL_NAME_BYTES_MAX + 1];
};

/* Sets `principal` to `name` (`length` bytes, 1..PRINCIPAL_NAME_BYTES_MAX, no NUL inside) and
 * computes its tag. -EINVAL for an empty, too long or NUL-holding name; -EIO when the digest
 * fails (OpenSSL). */
int principal_set(struct principal *principal, const char *name, uint32_t length) INTAKE_MUST_CHECK;

/* The tag of `length` bytes of `name` (the same function principal_set uses). */
uint64_t principal_tag_of(const char *name, uint32_t length);

/* The anonymous principal, computed once (thread-safe). */
const struct principal *principal_anonymous(void);

#endif
