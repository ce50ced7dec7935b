/*
 * dedupe-check.c: a micro-benchmark of the deduplication table's per-record path (issue 12's
 * cost of idempotence): dedupe_table_check, dedupe_table_appended and, once per batch,
 * dedupe_table_batch_end (which writes the touched entries and covered_offset to the table's
 * file), driven as a worker drives it: each record points at its connection's origin (the
 * principal, the producer_id and its keyed hash, computed once per connection). The log's append is left out: it costs the same with or
 * without a producer_id. Prints ns per record for two orders of records in a batch:
 *   runs    each producer's records come in runs of --run (a worker batch holds a connection's
 *           records together: the common case)
 *   mixed   every record from a different producer than the one before (the worst case)
 * Times are the thread's CPU time (a shared machine preempts it; wall time would count that).
 * Usage: dedupe-check [--producers N] [--batch N] [--run N] [--records N] [--id-bytes N]
 * The table lives in a fresh directory under /dev/shm (removed on exit), with a real log.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "dedupe_table.h"
#include "intake/shm_log_format.h"
#include "shm_log.h"

#define TOPIC         "dedupe-bench"
#define PRODUCERS_MAX 64u
/* A power of two: the order of producers repeats every ORDER_RECORDS records. */
#define ORDER_RECORDS 65536u

struct options {
    uint32_t producers, batch, run, id_bytes;
    uint64_t records;
};

/* One connection per producer: the origin its records point at. */
struct bench_record {
    struct record_origin origin;
};

static uint64_t now_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
    return (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
}

static void records_make(struct bench_record *records, const struct options *options,
                         struct keyed_hasher *hasher) {
    for (uint32_t producer = 0; producer < options->producers; producer++) {
        struct record_origin *origin = &records[producer].origin;
        /* A UUID-like id: every producer's differs only near its end, as UUIDs of one host
         * often do. */
        char id[RECORD_PRODUCER_ID_BYTES_MAX + 1];
        memset(id, 'a', sizeof(id));
        snprintf(id + options->id_bytes - 4, 5, "%04x", producer & 0xffffu);
        origin->principal = 0x2f183a4e64493af3ull;
        origin->producer_id_length = options->id_bytes;
        memcpy(origin->producer_id, id, options->id_bytes);
        origin->producer_hash =
            keyed_hash_producer(hasher, origin->principal, origin->producer_id, options->id_bytes);
    }
}

/* ns per record over options->records records, the producer of record i chosen by `mixed`. */
static double measure(struct dedupe_table *table, struct bench_record *records,
                      const struct options *options, bool mixed, uint64_t *sequence,
                      uint64_t *offset) {
    /* The order of producers, worked out before the clock starts (no division per record). */
    static uint8_t order[ORDER_RECORDS];
    for (uint32_t index = 0; index < ORDER_RECORDS; index++)
        order[index] = (uint8_t)(mixed ? index % options->producers
                                       : index / options->run % options->producers);
    uint64_t start = now_ns();
    uint64_t appended = 0;
    uint32_t in_batch = 0;
    for (uint64_t index = 0; index < options->records; index++) {
        uint32_t producer = order[index % ORDER_RECORDS];
        struct bench_record *record = &records[producer];
        uint32_t entry = DEDUPE_ENTRY_NONE;
        uint64_t next = ++sequence[producer];
        if (dedupe_table_check(table, &record->origin, next, 0, &entry) == DEDUPE_NEW) {
            dedupe_table_appended(table, entry, next, (*offset)++);
            appended++;
        }
        if (++in_batch == options->batch) {
            dedupe_table_batch_end(table, true, *offset);
            in_batch = 0;
        }
    }
    dedupe_table_batch_end(table, true, *offset);
    uint64_t elapsed = now_ns() - start;
    if (appended != options->records) {
        fprintf(stderr, "dedupe-check: %llu of %llu records appended\n",
                (unsigned long long)appended, (unsigned long long)options->records);
        exit(1);
    }
    return (double)elapsed / (double)options->records;
}

static void usage(FILE *out) {
    fprintf(out,
            "usage: dedupe-check [--producers 1..%u] [--batch N] [--run N] [--records N]\n"
            "                    [--id-bytes 4..%u]\n"
            "  ns per record of the deduplication table's path; --help, --version\n",
            PRODUCERS_MAX, RECORD_PRODUCER_ID_BYTES_MAX);
}

int main(int argc, char **argv) {
    struct options options = {
        .producers = 16, .batch = 64, .run = 16, .id_bytes = 36, .records = 20000000};
    const struct cli_number_flag flags[] = {
        {"producers", NUMBER_COUNT_SPEC(1, PRODUCERS_MAX), &options.producers, NULL},
        {"batch", NUMBER_COUNT_SPEC(1, UINT32_MAX), &options.batch, NULL},
        {"run", NUMBER_COUNT_SPEC(1, UINT32_MAX), &options.run, NULL},
        {"records", NUMBER_COUNT_SPEC(1, UINT64_MAX), NULL, &options.records},
        {"id-bytes", NUMBER_COUNT_SPEC(4, RECORD_PRODUCER_ID_BYTES_MAX), &options.id_bytes, NULL},
    };
    int exit_now =
        cli_parse_numbers("dedupe-check", argc, argv, flags, INTAKE_ARRAY_LENGTH(flags), usage);
    if (exit_now >= 0) return exit_now;
    char directory[] = "/dev/shm/dedupe-check.XXXXXX";
    if (mkdtemp(directory) == NULL) {
        perror("dedupe-check: mkdtemp");
        return 1;
    }
    struct shm_log_config config = {.directory = directory,
                                    .topic = TOPIC,
                                    .capacity_bytes = 1u << 20,
                                    .retention = SHM_LOG_RETENTION_OVERWRITE,
                                    .consumer_stale_ns = 1000000000ull};
    struct shm_log *log = NULL;
    struct dedupe_table *table = NULL;
    char why[512];
    int status = 1;
    if (shm_log_open_writer(&config, &log, why, sizeof(why)) != 0) {
        fprintf(stderr, "dedupe-check: %s\n", why);
        goto out;
    }
    struct keyed_hash_key key;
    struct keyed_hasher hasher;
    if (keyed_hash_key_random(&key) != 0 || keyed_hasher_init(&hasher, &key) != 0) {
        fprintf(stderr, "dedupe-check: no keyed hash\n");
        goto out;
    }
    if (dedupe_table_open(directory, TOPIC, DEDUPE_PRODUCERS_DEFAULT, log, &hasher, &table, why,
                          sizeof(why)) != 0) {
        fprintf(stderr, "dedupe-check: %s\n", why);
        keyed_hasher_free(&hasher);
        goto out;
    }
    static struct bench_record records[PRODUCERS_MAX];
    records_make(records, &options, &hasher);
    keyed_hasher_free(&hasher);
    uint64_t sequence[PRODUCERS_MAX] = {0};
    uint64_t offset = 1;
    /* A warm-up pass puts every producer in the table. */
    struct options warm = options;
    warm.records = options.records / 10 + options.producers;
    (void)measure(table, records, &warm, true, sequence, &offset);
    double runs = measure(table, records, &options, false, sequence, &offset);
    double mixed = measure(table, records, &options, true, sequence, &offset);
    printf("dedupe-check producers=%u id_bytes=%u batch=%u run=%u records=%llu runs_ns=%.1f "
           "mixed_ns=%.1f\n",
           options.producers, options.id_bytes, options.batch, options.run,
           (unsigned long long)options.records, runs, mixed);
    status = 0;
out:
    if (table != NULL) dedupe_table_close(table);
    if (log != NULL) shm_log_close(log);
    char command[sizeof(directory) + 16];
    snprintf(command, sizeof(command), "rm -rf %s", directory);
    if (system(command) != 0) fprintf(stderr, "dedupe-check: could not remove %s\n", directory);
    return status;
}
