/*
 * producer_seed.c: seeds the producer table from the deduplication table files at startup
 * (see producer_seed.h). Main thread, before any other thread runs.
 */
#include "producer_seed.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "dedupe_table.h"
#include "intake/shm_log_format.h"

struct seed_context {
    struct producer_table *table;
    struct keyed_hasher hasher;
    struct producer_seed_result *result;
};

static void seed_visit(void *context, uint64_t principal, const uint8_t *id, uint32_t id_length,
                       uint64_t highest, bool established) {
    struct seed_context *seed = context;
    struct record_origin origin = {.principal = principal, .producer_id_length = id_length};
    memcpy(origin.producer_id, id, id_length);
    origin.producer_hash = keyed_hash_producer(&seed->hasher, principal, id, id_length);
    seed->result->producers++;
    if (!producer_table_seed(seed->table, &origin, highest, established))
        seed->result->not_seeded++;
}

/* A deduplication table file: "<base>.dedupe", not a temporary or quarantined one. */
static bool is_table_file(const char *name) {
    size_t length = strlen(name), suffix = strlen(SHM_LOG_DEDUPE_FILE_SUFFIX);
    return length > suffix && strcmp(name + length - suffix, SHM_LOG_DEDUPE_FILE_SUFFIX) == 0;
}

int producer_seed_from_tables(struct producer_table *table, const char *directory,
                              const struct keyed_hash_key *key,
                              struct producer_seed_result *result) {
    INTAKE_ASSERT(table != NULL && directory != NULL && result != NULL);
    memset(result, 0, sizeof(*result));
    struct seed_context seed = {.table = table, .result = result};
    int made = keyed_hasher_init(&seed.hasher, key);
    if (made != 0) return made;
    DIR *dir = opendir(directory);
    if (dir == NULL) {
        fprintf(stderr, "intaked: cannot list %s to seed the producer table: %s\n", directory,
                strerror(errno));
        keyed_hasher_free(&seed.hasher);
        return 0;
    }
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (!is_table_file(entry->d_name)) continue;
        char path[4096 + 256 + 2];
        snprintf(path, sizeof(path), "%s/%s", directory, entry->d_name);
        if (dedupe_file_visit(path, seed_visit, &seed) >= 0) result->files++;
    }
    closedir(dir);
    keyed_hasher_free(&seed.hasher);
    return 0;
}
