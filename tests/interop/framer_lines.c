/*
 * framer_lines.c: `framer-lines FILE` frames, scans and decodes every delimited intake.v1.Record
 * in FILE with intake's own framer, record_scan and record_decode, and prints one line per
 * record, then "records=N". test_python_interop.sh compares the lines with those
 * tests/interop/make_records.py prints from Google's protobuf parse of the same records.
 *
 * The file is fed in 509-byte chunks that alternate between two buffer units, so records that
 * cross a chunk boundary are decoded from several slices, as records spanning receive buffers
 * are in intaked. Single-threaded. Exit 0 when every record framed and decoded, the scan and
 * the decoder agreed, and the stream ended between records; 1 otherwise; 2 for a file it
 * cannot read.
 *
 * Line: topic=<hex> sequence=<n> timestamp_ns=<n> headers=<n> key=<hex, first 64 bytes>
 *       value_bytes=<n> value_fnv=<FNV-1a 64, hex> body_bytes=<n> body_fnv=<hex>
 * ("-" for an empty topic or key; " scan-decode-mismatch" appended when they disagree).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "framer.h"
#include "record_decode.h"
#include "record_pool.h"
#include "record_scan.h"

#define FRAMER_LINES_CHUNK_BYTES 509u        /* prime: boundaries fall everywhere in records */
#define FRAMER_LINES_UNITS       2u          /* chunks alternate between two buffer units */
#define FRAMER_LINES_FILE_MAX    (64u << 20) /* a bigger file is refused, not read */
#define FRAMER_LINES_FRAME_MAX   (1u << 24)
#define FRAMER_LINES_KEY_SHOWN   64u

struct framer_lines_totals {
    size_t records;
    size_t failures; /* records that did not decode, or where scan and decode disagree */
};

static void print_hex(const struct record_view *view, uint32_t offset, uint32_t length) {
    uint8_t bytes[RECORD_TOPIC_BYTES_MAX + 1];
    uint32_t copied = record_view_copy(view, offset, length, bytes, sizeof(bytes));
    for (uint32_t index = 0; index < copied; index++) printf("%02x", bytes[index]);
    if (copied == 0) printf("-");
}

static void print_record(const struct record *record, size_t index,
                         struct framer_lines_totals *totals) {
    struct record_view view = record_view_of(record);
    struct record_decoded decoded;
    const char *detail = NULL;
    if (record_decode(&view, &decoded, &detail) != RECORD_DECODE_OK) {
        printf("record %zu decode failed: %s\n", index, detail);
        totals->failures++;
        return;
    }
    int agrees = decoded.topic.offset == record->topic_offset &&
                 decoded.topic.length == record->topic_length &&
                 decoded.sequence == record->sequence &&
                 decoded.timestamp_ns == record->timestamp_ns;
    if (!agrees) totals->failures++;
    printf("topic=");
    print_hex(&view, record->topic_offset, record->topic_length);
    printf(" sequence=%llu timestamp_ns=%llu headers=%u key=", (unsigned long long)record->sequence,
           (unsigned long long)record->timestamp_ns, decoded.header_count);
    print_hex(&view, decoded.key.offset,
              decoded.key.length < FRAMER_LINES_KEY_SHOWN ? decoded.key.length
                                                          : FRAMER_LINES_KEY_SHOWN);
    printf(" value_bytes=%u value_fnv=%016llx body_bytes=%u body_fnv=%016llx%s\n",
           decoded.value.length,
           (unsigned long long)record_view_hash(&view, decoded.value.offset, decoded.value.length),
           record->frame_bytes, (unsigned long long)record_view_hash(&view, 0, record->frame_bytes),
           agrees ? "" : " scan-decode-mismatch");
}

/* The whole file in *contents (the caller frees it): 0, or 2 after a line on stderr. */
static int read_file(const char *path, uint8_t **contents, size_t *length) {
    FILE *file = fopen(path, "rb");
    if (file == NULL) {
        perror(path);
        return 2;
    }
    uint8_t *bytes = malloc(FRAMER_LINES_FILE_MAX + 1);
    size_t got = bytes ? fread(bytes, 1, FRAMER_LINES_FILE_MAX + 1, file) : 0;
    int failed = bytes == NULL || ferror(file) || got > FRAMER_LINES_FILE_MAX;
    fclose(file);
    if (failed) {
        fprintf(stderr, "framer-lines: %s: unreadable or larger than %u bytes\n", path,
                FRAMER_LINES_FILE_MAX);
        free(bytes);
        return 2;
    }
    *contents = bytes;
    *length = got;
    return 0;
}

/* Feeds one chunk; returns 0, or 1 once the framer reported an error (printed). */
static int feed_chunk(struct framer *framer, struct record_pool *pool, const uint8_t *bytes,
                      uint32_t length, uint32_t unit, struct framer_lines_totals *totals) {
    uint32_t offset = 0;
    for (;;) {
        switch (framer_feed(framer, bytes, length, unit, &offset)) {
        case FRAMER_NEED_INPUT: return 0;
        case FRAMER_NEED_RECORD: framer_give_record(framer, record_pool_take(pool)); break;
        case FRAMER_RECORD: {
            struct record *record = framer_take_record(framer);
            print_record(record, totals->records++, totals);
            record_pool_give(pool, record);
            break;
        }
        case FRAMER_HELLO: record_pool_give(pool, framer_take_hello(framer)); break;
        case FRAMER_ERROR:
            printf("framer error %d: %s\n", framer->error_status, framer->error_detail);
            return 1;
        }
    }
}

int main(int argc, char **argv) {
    if (argc != 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: framer-lines FILE   (delimited intake.v1.Records)\n");
        return 2;
    }
    uint8_t *contents = NULL;
    size_t length = 0;
    int result = read_file(argv[1], &contents, &length);
    if (result != 0) return result;
    /* Two records: one being framed, one the framer may hold while asking for the next. */
    struct record_pool pool;
    if (record_pool_init(&pool, 2, 0) != 0) {
        fprintf(stderr, "framer-lines: record_pool_init failed\n");
        free(contents);
        return 2;
    }
    struct framer framer;
    framer_init(&framer, FRAMER_LINES_FRAME_MAX);
    struct framer_lines_totals totals = {0};
    int framer_failed = 0;
    for (size_t start = 0, chunk = 0; start < length && !framer_failed;
         start += FRAMER_LINES_CHUNK_BYTES, chunk++) {
        size_t left = length - start;
        uint32_t chunk_bytes =
            (uint32_t)(left < FRAMER_LINES_CHUNK_BYTES ? left : FRAMER_LINES_CHUNK_BYTES);
        framer_failed = feed_chunk(&framer, &pool, contents + start, chunk_bytes,
                                   (uint32_t)(chunk % FRAMER_LINES_UNITS), &totals);
    }
    int idle_at_end = framer_is_idle(&framer);
    struct record *held = framer_release_record(&framer);
    if (held != NULL) record_pool_give(&pool, held);
    printf("records=%zu\n", totals.records);
    record_pool_destroy(&pool);
    free(contents);
    return (totals.failures == 0 && !framer_failed && idle_at_end) ? 0 : 1;
}
