/*
 * principal.c: principal names and their tags (see principal.h). The digest is OpenSSL's
 * SHA-256 (EVP), computed once per connection, never per record.
 */
#include "principal.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include <openssl/evp.h>

uint64_t principal_tag_of(const char *name, uint32_t length) {
    INTAKE_ASSERT(name != NULL);
    uint8_t digest[EVP_MAX_MD_SIZE];
    unsigned int digest_length = 0;
    if (EVP_Digest(name, length, digest, &digest_length, EVP_sha256(), NULL) != 1) return 0;
    INTAKE_ASSERT(digest_length >= 8);
    uint64_t tag = 0;
    for (int index = 7; index >= 0; index--) tag = (tag << 8) | digest[index];
    return tag;
}

int principal_set(struct principal *principal, const char *name, uint32_t length) {
    INTAKE_ASSERT(principal != NULL);
    if (name == NULL || length == 0 || length > PRINCIPAL_NAME_BYTES_MAX) return -EINVAL;
    if (memchr(name, '\0', length) != NULL) return -EINVAL;
    uint64_t tag = principal_tag_of(name, length);
    if (tag == 0) return -EIO; /* a digest failure (a real tag of 0 is 2^-64 likely) */
    memcpy(principal->name, name, length);
    principal->name[length] = '\0';
    principal->name_length = (uint16_t)length;
    principal->tag = tag;
    return 0;
}

static struct principal anonymous_principal;
static pthread_once_t anonymous_once = PTHREAD_ONCE_INIT;

static void anonymous_init(void) {
    int result = principal_set(&anonymous_principal, PRINCIPAL_ANONYMOUS,
                               (uint32_t)strlen(PRINCIPAL_ANONYMOUS));
    INTAKE_ASSERT(result == 0);
}

const struct principal *principal_anonymous(void) {
    pthread_once(&anonymous_once, anonymous_init);
    return &anonymous_principal;
}
