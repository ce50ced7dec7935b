/*
 * test_shm_log_format.c: the test vectors of docs/shm-log-format.md against the code.
 *
 * Parses every line of the document's ```vectors block (so the specification and the
 * implementation cannot drift apart silently) and checks CRC32C (the header's reference and
 * src/base/crc32c.c's fast one, whole and split at every byte), entry checksums (both) and
 * exact entry bytes, file names, and principal tags. Also checks that there are vectors of
 * each kind, so an emptied block fails.
 */
#include <stdbool.h>
#include <stdlib.h>

#include "crc32c.h"
#include "harness.h"
#include "intake/shm_log_format.h"
#include "principal.h"

#define LINE_BYTES 4096

static int hex_value(char digit) {
    if (digit >= '0' && digit <= '9') return digit - '0';
    if (digit >= 'a' && digit <= 'f') return digit - 'a' + 10;
    if (digit >= 'A' && digit <= 'F') return digit - 'A' + 10;
    return -1;
}

/* Decodes "ascii:TEXT", "hex:HEX" or "x250" into `out`; returns the length or -1. */
static long bytes_parse(const char *text, uint8_t *out, size_t capacity) {
    if (strncmp(text, "ascii:", 6) == 0) {
        size_t length = strlen(text + 6);
        if (length > capacity) return -1;
        memcpy(out, text + 6, length);
        return (long)length;
    }
    if (strcmp(text, "x250") == 0) {
        memset(out, 'x', 250);
        return 250;
    }
    if (strncmp(text, "hex:", 4) != 0) return -1;
    const char *digits = text + 4;
    size_t length = strlen(digits);
    if (length % 2 != 0 || length / 2 > capacity) return -1;
    for (size_t index = 0; index < length / 2; index++) {
        int high = hex_value(digits[2 * index]), low = hex_value(digits[2 * index + 1]);
        if (high < 0 || low < 0) return -1;
        out[index] = (uint8_t)(high * 16 + low);
    }
    return (long)(length / 2);
}

static void hex_write(const uint8_t *bytes, size_t length, char *out) {
    for (size_t index = 0; index < length; index++) sprintf(out + 2 * index, "%02x", bytes[index]);
    out[2 * length] = '\0';
}

static int crc_vectors, entry_vectors, name_vectors, principal_vectors;

static void vector_crc32c(char **fields, int count) {
    uint8_t data[1024];
    REQUIRE(count == 3);
    long length = bytes_parse(fields[1], data, sizeof(data));
    REQUIRE(length >= 0);
    uint32_t expected = (uint32_t)strtoul(fields[2], NULL, 16);
    CHECK(shm_log_crc32c(0, data, (size_t)length) == expected);
    CHECK(intake_crc32c(0, data, (size_t)length) == expected);
    /* Chaining: any split gives the same CRC, in either implementation. */
    for (long split = 0; split <= length; split++) {
        size_t rest = (size_t)(length - split);
        CHECK(shm_log_crc32c(shm_log_crc32c(0, data, (size_t)split), data + split, rest) ==
              expected);
        CHECK(intake_crc32c(intake_crc32c(0, data, (size_t)split), data + split, rest) == expected);
    }
    crc_vectors++;
}

static void vector_entry(char **fields, int count) {
    REQUIRE(count == 9);
    uint8_t ring[1024] = {0}, record[512];
    long record_length = bytes_parse(fields[6], record, sizeof(record));
    REQUIRE(record_length >= 0);
    bool padding = strcmp(fields[1], "padding") == 0;
    struct shm_log_entry_header entry = {
        .length = padding ? SHM_LOG_ENTRY_LENGTH_PADDING : (uint32_t)strtoul(fields[1], NULL, 10),
        .offset = strtoull(fields[2], NULL, 10),
        .sequence = strtoull(fields[3], NULL, 10),
        .receive_time_ns = strtoull(fields[4], NULL, 10),
        .principal = strtoull(fields[5], NULL, 16),
    };
    CHECK(padding || entry.length == (uint32_t)record_length);
    memcpy(ring + SHM_LOG_ENTRY_HEADER_BYTES, record, (size_t)record_length);
    entry.checksum =
        shm_log_entry_checksum(&entry, ring + SHM_LOG_ENTRY_HEADER_BYTES, shm_log_crc32c);
    CHECK(entry.checksum == (uint32_t)strtoul(fields[7], NULL, 16));
    CHECK(shm_log_entry_checksum(&entry, ring + SHM_LOG_ENTRY_HEADER_BYTES, intake_crc32c) ==
          entry.checksum);
    memcpy(ring, &entry, sizeof(entry));
    size_t span =
        padding ? SHM_LOG_ENTRY_HEADER_BYTES : (size_t)shm_log_entry_span((uint64_t)record_length);
    char hex[2 * sizeof(ring) + 1];
    hex_write(ring, span, hex);
    CHECK(strcmp(hex, fields[8]) == 0);
    if (strcmp(hex, fields[8]) != 0) fprintf(stderr, "entry bytes: %s\n", hex);
    entry_vectors++;
}

static void vector_file_name(char **fields, int count) {
    REQUIRE(count == 3);
    uint8_t topic[300];
    long length = bytes_parse(fields[1], topic, sizeof(topic) - 1);
    REQUIRE(length > 0);
    topic[length] = '\0';
    char name[SHM_LOG_FILE_NAME_BYTES], expected[SHM_LOG_FILE_NAME_BYTES + 16];
    shm_log_file_base_name((const char *)topic, name);
    CHECK(strcmp(name, fields[2]) == 0);
    if (strcmp(name, fields[2]) != 0) fprintf(stderr, "file name: %s\n", name);
    shm_log_file_name((const char *)topic, name);
    snprintf(expected, sizeof(expected), "%s.log", fields[2]);
    CHECK(strcmp(name, expected) == 0);
    shm_log_consumers_file_name((const char *)topic, name);
    snprintf(expected, sizeof(expected), "%s.consumers", fields[2]);
    CHECK(strcmp(name, expected) == 0);
    CHECK(strlen(name) < 255); /* NAME_MAX */
    name_vectors++;
}

/* `principal NAME TAG`: the tag an entry carries for a principal name (principal.h): the first
 * 8 bytes of SHA-256(NAME), little-endian, as 16 hex digits. */
static void vector_principal(char **fields, int count) {
    REQUIRE(count == 3);
    uint8_t name[300];
    long length = bytes_parse(fields[1], name, sizeof(name));
    REQUIRE(length > 0);
    uint64_t expected = strtoull(fields[2], NULL, 16);
    uint64_t tag = principal_tag_of((const char *)name, (uint32_t)length);
    CHECK(tag == expected);
    if (tag != expected) fprintf(stderr, "principal tag: %016llx\n", (unsigned long long)tag);
    if (strcmp(fields[1], "ascii:" PRINCIPAL_ANONYMOUS) == 0)
        CHECK(principal_anonymous()->tag == expected);
    principal_vectors++;
}

int main(void) {
    const char *source = getenv("INTAKE_SOURCE_DIR");
    char path[4096];
    snprintf(path, sizeof(path), "%s/docs/shm-log-format.md", source ? source : "..");
    FILE *document = fopen(path, "r");
    if (document == NULL) fprintf(stderr, "cannot open %s\n", path);
    REQUIRE(document != NULL);
    char line[LINE_BYTES];
    bool inside = false;
    while (fgets(line, sizeof(line), document) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        if (strcmp(line, "```vectors") == 0) {
            inside = true;
            continue;
        }
        if (inside && strcmp(line, "```") == 0) {
            inside = false;
            continue;
        }
        if (!inside || line[0] == '\0') continue;
        char *fields[16] = {NULL};
        int count = 0;
        for (char *field = strtok(line, " "); field != NULL && count < 16;
             field = strtok(NULL, " "))
            fields[count++] = field;
        if (count == 0) continue;
        if (strcmp(fields[0], "crc32c") == 0)
            vector_crc32c(fields, count);
        else if (strcmp(fields[0], "entry") == 0)
            vector_entry(fields, count);
        else if (strcmp(fields[0], "file-name") == 0)
            vector_file_name(fields, count);
        else if (strcmp(fields[0], "principal") == 0)
            vector_principal(fields, count);
        else {
            fprintf(stderr, "unknown vector kind %s\n", fields[0]);
            CHECK(false);
        }
    }
    fclose(document);
    printf("vectors: %d crc32c, %d entries, %d file names, %d principals\n", crc_vectors,
           entry_vectors, name_vectors, principal_vectors);
    CHECK(crc_vectors >= 4 && entry_vectors >= 2 && name_vectors >= 5 && principal_vectors >= 2);
    return test_finish();
}
