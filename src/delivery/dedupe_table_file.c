/*
 * dedupe_table_file.c: the deduplication table's file (see dedupe_table.h and
 * docs/shm-log-format.md, "The deduplication table"): opening it (read with pread into private
 * memory and checked there, never trusted through a mapping), recovery from the log, rewriting
 * it whole, and the per-batch updates through its mapping.
 * Thread: the log opener (open), then the worker that owns the topic.
 */
#include "dedupe_table_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "fault_guard.h"
#include "record_scan.h"

uint64_t dedupe_table_file_bytes(uint32_t producers_max) {
    return DEDUPE_FILE_HEADER_BYTES + (uint64_t)producers_max * DEDUPE_FILE_ENTRY_BYTES +
           (uint64_t)producers_max * DEDUPE_FINGERPRINTS_PER_PRODUCER * sizeof(uint64_t);
}

static uint32_t identity_checksum(const struct dedupe_file_header *header) {
    struct dedupe_file_header copy;
    memcpy(&copy, header, 32);
    copy.identity_checksum = 0;
    return intake_crc32c(0, &copy, 32);
}

static uint32_t copy_checksum(const struct dedupe_file_copy *copy) {
    struct dedupe_file_copy zeroed = *copy;
    zeroed.checksum = 0;
    return intake_crc32c(0, &zeroed, sizeof(zeroed));
}

static struct dedupe_file_header *file_header(struct dedupe_table *table) {
    return (struct dedupe_file_header *)(void *)table->map;
}

static struct dedupe_file_entry *file_entry(uint8_t *base, uint32_t slot) {
    return (struct dedupe_file_entry *)(void *)(base + DEDUPE_FILE_HEADER_BYTES +
                                                (size_t)slot * DEDUPE_FILE_ENTRY_BYTES);
}

static uint64_t *file_fingerprints(uint8_t *base, uint32_t producers_max) {
    return (uint64_t *)(void *)(base + DEDUPE_FILE_HEADER_BYTES +
                                (size_t)producers_max * DEDUPE_FILE_ENTRY_BYTES);
}

static void table_line(const struct dedupe_table *table, const char *line) {
    fprintf(stderr, "intaked: topic \"%s\": %s\n", table->topic, line);
}

/* --------------------------------------------------------- runtime updates --- */

static bool file_usable(struct dedupe_table *table) {
    return table->map != NULL && !atomic_load_explicit(&table->map_broken, memory_order_relaxed);
}

/* Fills the inactive copy in place and checksums it there (with its checksum field zero, as
 * copy_checksum does): nobody reads an inactive copy, so no private copy is needed. */
static void copy_fill(struct dedupe_file_copy *copy, const struct dedupe_producer *producer) {
    copy->highest_sequence = producer->committed;
    copy->last_offset = producer->recency;
    copy->reserved = 0;
    copy->id_length = producer->id_length;
    copy->checksum = 0;
    memcpy(copy->id, producer->id, producer->id_length);
    memset(copy->id + producer->id_length, 0, sizeof(copy->id) - producer->id_length);
    copy->checksum = intake_crc32c(0, copy, sizeof(*copy));
}

void dedupe_file_entry_write(struct dedupe_table *table, uint32_t slot) {
    if (!file_usable(table)) return;
    struct dedupe_producer *producer = &table->producers[slot];
    INTAKE_ASSERT(producer->id_length != 0 && producer->committed >= 1);
    struct dedupe_file_entry *entry = file_entry(table->map, slot);
    uint8_t next = producer->file_active ^ 1u;
    copy_fill(&entry->copies[next], producer);
    /* Release: the copy is whole before the index names it (for a SIGKILL only program order
     * matters: the stores land in the shared page either way). */
    atomic_store_explicit(&entry->active, next, memory_order_release);
    producer->file_active = next;
}

void dedupe_file_covered_set(struct dedupe_table *table, uint64_t covered_offset) {
    if (!file_usable(table)) return;
    /* Release: every entry written for offsets below is stored before the offset says so. */
    atomic_store_explicit(&file_header(table)->covered_offset, covered_offset,
                          memory_order_release);
}

void dedupe_file_fingerprint_write(struct dedupe_table *table, uint64_t fingerprint) {
    if (!file_usable(table) || table->replaying) return;
    uint64_t written = table->fingerprints_written; /* already counted in memory */
    file_fingerprints(table->map, table->producers_max)[(written - 1) % table->fingerprints_max] =
        fingerprint;
    atomic_store_explicit(&file_header(table)->fingerprints_written, written, memory_order_release);
}

void dedupe_file_unmap(struct dedupe_table *table) {
    if (table->map == NULL) return;
    fault_guard_unregister(table->map_guard);
    table->map_guard = -1;
    munmap(table->map, table->map_bytes);
    table->map = NULL;
}

/* ------------------------------------------------------------- rewriting --- */

static void file_fill(struct dedupe_table *table, uint8_t *base, uint64_t covered_offset) {
    struct dedupe_file_header *header = (struct dedupe_file_header *)(void *)base;
    header->magic = DEDUPE_FILE_MAGIC;
    header->version = DEDUPE_FILE_VERSION;
    header->header_bytes = DEDUPE_FILE_HEADER_BYTES;
    header->entry_bytes = DEDUPE_FILE_ENTRY_BYTES;
    header->producers_max = table->producers_max;
    header->fingerprints_max = table->fingerprints_max;
    header->identity_checksum = identity_checksum(header);
    atomic_store_explicit(&header->covered_offset, covered_offset, memory_order_relaxed);
    for (uint32_t slot = 0; slot < table->producers_max; slot++) {
        struct dedupe_producer *producer = &table->producers[slot];
        producer->file_active = 0;
        if (producer->id_length == 0 || producer->committed == 0) continue;
        copy_fill(&file_entry(base, slot)->copies[0], producer);
    }
    uint64_t *ring = file_fingerprints(base, table->producers_max);
    memcpy(ring, table->fingerprints, (size_t)table->fingerprints_max * sizeof(uint64_t));
    atomic_store_explicit(&header->fingerprints_written, table->fingerprints_written,
                          memory_order_relaxed);
}

int dedupe_file_rewrite(struct dedupe_table *table, uint64_t covered_offset, char *why,
                        size_t why_capacity) {
    dedupe_file_unmap(table);
    atomic_store(&table->map_broken, false);
    char temporary[DEDUPE_PATH_BYTES + 32];
    snprintf(temporary, sizeof(temporary), "%s.tmp", table->path);
    (void)unlink(temporary); /* a previous run's, killed while writing it */
    size_t bytes = (size_t)dedupe_table_file_bytes(table->producers_max);
    int fd = open(temporary, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, DEDUPE_FILE_MODE);
    int result = fd < 0 ? -errno : 0;
    if (result == 0 && fchmod(fd, DEDUPE_FILE_MODE) != 0) result = -errno;
    /* Allocated now, so running out of space is an error here and never a SIGBUS later. */
    if (result == 0) result = -posix_fallocate(fd, 0, (off_t)bytes);
    void *map = MAP_FAILED;
    if (result == 0) {
        /* Populated now: the worker's first update of an entry takes no page fault. */
        map = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
        if (map == MAP_FAILED) result = -errno;
    }
    if (result == 0) {
        file_fill(table, map, covered_offset);
        if (rename(temporary, table->path) != 0) result = -errno;
    }
    if (fd >= 0) close(fd); /* the mapping stays valid */
    if (result != 0) {
        if (map != MAP_FAILED) munmap(map, bytes);
        (void)unlink(temporary);
        intake_error_line(why, why_capacity, "cannot write the deduplication table %s: %s",
                          table->path, strerror(-result));
        return result;
    }
    table->map = map;
    table->map_bytes = bytes;
    /* Truncated under us, it costs the file only: the table in memory rewrites it. */
    table->map_guard = fault_guard_register(map, bytes, PROT_READ | PROT_WRITE, &table->map_broken);
    return 0;
}

/* ------------------------------------------------------------- loading --- */

/* Checks a file image read into memory and loads it. Returns false with `reason` set when it
 * does not check out (the caller quarantines it). */
static bool file_load(struct dedupe_table *table, const uint8_t *image, uint64_t image_bytes,
                      uint64_t *covered_offset, char *reason, size_t reason_capacity) {
    struct dedupe_file_header header;
    if (image_bytes < sizeof(header)) {
        intake_error_line(reason, reason_capacity, "shorter than its header");
        return false;
    }
    memcpy(&header, image, sizeof(header));
    if (header.magic != DEDUPE_FILE_MAGIC || header.version != DEDUPE_FILE_VERSION ||
        header.identity_checksum != identity_checksum(&header)) {
        intake_error_line(reason, reason_capacity,
                          "not a version %u table (magic, version or "
                          "checksum)",
                          DEDUPE_FILE_VERSION);
        return false;
    }
    if (header.header_bytes != DEDUPE_FILE_HEADER_BYTES ||
        header.entry_bytes != DEDUPE_FILE_ENTRY_BYTES || header.producers_max == 0 ||
        header.producers_max > DEDUPE_PRODUCERS_MAX ||
        header.fingerprints_max != header.producers_max * DEDUPE_FINGERPRINTS_PER_PRODUCER ||
        image_bytes != dedupe_table_file_bytes(header.producers_max)) {
        intake_error_line(reason, reason_capacity, "sizes do not match the file (%llu bytes)",
                          (unsigned long long)image_bytes);
        return false;
    }
    /* The ring, oldest first: a fingerprint is only a hint (how a return is counted). */
    const uint8_t *ring =
        image + DEDUPE_FILE_HEADER_BYTES + (size_t)header.producers_max * DEDUPE_FILE_ENTRY_BYTES;
    uint64_t written = atomic_load_explicit(&header.fingerprints_written, memory_order_relaxed);
    uint64_t held = written < header.fingerprints_max ? written : header.fingerprints_max;
    for (uint64_t index = 0; index < held; index++) {
        uint64_t fingerprint;
        memcpy(&fingerprint, ring + ((written - held + index) % header.fingerprints_max) * 8, 8);
        dedupe_table_fingerprint_add(table, fingerprint);
    }
    /* Entries, oldest first would be best; load in file order and let a smaller table evict
     * by recency (dedupe_table_apply evicts the least recently committed). */
    for (uint32_t slot = 0; slot < header.producers_max; slot++) {
        struct dedupe_file_entry entry;
        memcpy(&entry, image + DEDUPE_FILE_HEADER_BYTES + (size_t)slot * DEDUPE_FILE_ENTRY_BYTES,
               sizeof(entry));
        uint32_t active = atomic_load_explicit(&entry.active, memory_order_relaxed);
        if (active > 1) {
            intake_error_line(reason, reason_capacity, "entry %u: active copy %u", slot, active);
            return false;
        }
        const struct dedupe_file_copy *copy = &entry.copies[active];
        static const struct dedupe_file_copy empty;
        if (memcmp(copy, &empty, sizeof(empty)) == 0) continue; /* never used */
        const char *problem = NULL;
        if (copy->checksum != copy_checksum(copy))
            problem = "bad checksum";
        else if (copy->id_length == 0 || copy->id_length > RECORD_PRODUCER_ID_BYTES_MAX)
            problem = "impossible id length";
        else if (copy->highest_sequence == 0)
            problem = "sequence 0";
        else if (dedupe_table_highest(table, copy->id, copy->id_length) != 0)
            problem = "a producer listed twice";
        if (problem != NULL) {
            intake_error_line(reason, reason_capacity, "entry %u: %s", slot, problem);
            return false;
        }
        dedupe_table_apply(table, copy->id, copy->id_length, copy->highest_sequence,
                           copy->last_offset);
    }
    *covered_offset = atomic_load_explicit(&header.covered_offset, memory_order_relaxed);
    return true;
}

/* Reads the existing file whole into memory. 1 when there is none, 0 when read, negative
 * errno (with `reason`) when it is not a regular file of ours of a possible size. */
static int file_read(const struct dedupe_table *table, uint8_t **image, uint64_t *image_bytes,
                     char *reason, size_t reason_capacity) {
    int fd = open(table->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ENOENT) return 1;
        int error = errno;
        intake_error_line(reason, reason_capacity, "cannot open it: %s", strerror(error));
        return -error;
    }
    struct stat status;
    int result = 0;
    if (fstat(fd, &status) != 0 || !S_ISREG(status.st_mode) || status.st_uid != geteuid() ||
        status.st_size < (off_t)DEDUPE_FILE_HEADER_BYTES ||
        (uint64_t)status.st_size > dedupe_table_file_bytes(DEDUPE_PRODUCERS_MAX)) {
        intake_error_line(reason, reason_capacity, "not a table file of ours of a possible size");
        result = -EINVAL;
    }
    uint8_t *buffer = result == 0 ? malloc((size_t)status.st_size) : NULL;
    if (result == 0 && buffer == NULL) result = -ENOMEM;
    if (result == 0 && pread(fd, buffer, (size_t)status.st_size, 0) != status.st_size) {
        intake_error_line(reason, reason_capacity, "short read");
        result = -EIO;
    }
    close(fd);
    if (result != 0) {
        free(buffer);
        return result;
    }
    *image = buffer;
    *image_bytes = (uint64_t)status.st_size;
    return 0;
}

/* ------------------------------------------------------------- recovery --- */

static void replay_visit(void *context, uint64_t offset, const uint8_t *bytes, uint32_t length) {
    struct dedupe_table *table = context;
    struct slice slice = {.bytes = bytes, .length = length, .unit = 0};
    struct record_view view = {&slice, 1, length};
    struct record_scan scan;
    /* The log holds only records the scan accepted; one it does not accept now is skipped. */
    if (record_scan_view(&view, &scan) != RECORD_SCAN_OK) return;
    if (scan.producer_id_length == 0 || scan.sequence == 0) return;
    dedupe_table_apply(table, bytes + scan.producer_id_offset, scan.producer_id_length,
                       scan.sequence, offset);
}

/* Re-applies the log's records from `covered` and says, in one line, what it could not. */
static void replay(struct dedupe_table *table, struct shm_log *log, uint64_t covered,
                   bool had_file) {
    uint64_t next = shm_log_next_offset(log);
    char line[512];
    if (covered > next) {
        snprintf(line, sizeof(line),
                 "deduplication table covers offsets below %llu but the log ends at %llu (the "
                 "log was recreated): the table is kept",
                 (unsigned long long)covered, (unsigned long long)next);
        table_line(table, line);
        return;
    }
    table->replaying = true;
    uint64_t oldest = shm_log_visit_published(log, covered, replay_visit, table);
    table->replaying = false;
    if (had_file && oldest > covered) {
        snprintf(line, sizeof(line),
                 "records at offsets %llu..%llu were overwritten before the deduplication table "
                 "covered them: a resend of one of them would be appended again",
                 (unsigned long long)covered, (unsigned long long)oldest - 1);
        table_line(table, line);
    }
}

int dedupe_table_open(const char *directory, const char *topic, uint32_t producers_max,
                      struct shm_log *log, struct dedupe_table **out, char *why,
                      size_t why_capacity) {
    INTAKE_ASSERT(out != NULL && log != NULL);
    *out = NULL;
    struct dedupe_table *table = calloc(1, sizeof(*table));
    if (table == NULL) return -ENOMEM;
    table->map_guard = -1;
    snprintf(table->topic, sizeof(table->topic), "%s", topic);
    char name[SHM_LOG_FILE_NAME_BYTES];
    shm_log_dedupe_file_name(topic, name);
    snprintf(table->path, sizeof(table->path), "%s/%s", directory, name);
    int result = dedupe_table_memory_init(table, producers_max);
    if (result != 0) {
        free(table);
        return result;
    }
    uint8_t *image = NULL;
    uint64_t image_bytes = 0, covered = 0;
    char reason[256] = "";
    table->replaying = true; /* loading is not a return */
    int read = file_read(table, &image, &image_bytes, reason, sizeof(reason));
    bool loaded =
        read == 0 && file_load(table, image, image_bytes, &covered, reason, sizeof(reason));
    table->replaying = false;
    free(image);
    char line[DEDUPE_PATH_BYTES * 2 + 512] = "";
    if (read != 1 && !loaded) {
        /* Damaged (or not ours): moved aside, rebuilt from what the log still holds. */
        dedupe_table_memory_clear(table);
        table->counts.rebuilds = 1;
        covered = 0;
        char moved_to[DEDUPE_PATH_BYTES + 32];
        snprintf(moved_to, sizeof(moved_to), "%s.corrupt-%llu", table->path,
                 (unsigned long long)(intake_wall_ns() / 1000000u));
        if (rename(table->path, moved_to) != 0) snprintf(moved_to, sizeof(moved_to), "nowhere");
        snprintf(line, sizeof(line),
                 "deduplication table %s failed its checks (%s): moved to %s, rebuilt from the "
                 "log",
                 table->path, reason, moved_to);
    }
    replay(table, log, covered, loaded);
    if (line[0] != '\0') {
        size_t length = strlen(line);
        snprintf(line + length, sizeof(line) - length, " (%u producers, log offsets below %llu)",
                 table->size, (unsigned long long)shm_log_next_offset(log));
        table_line(table, line);
    }
    result = dedupe_file_rewrite(table, shm_log_next_offset(log), why, why_capacity);
    if (result != 0) {
        dedupe_table_close(table);
        return result;
    }
    *out = table;
    return 0;
}

void dedupe_table_close(struct dedupe_table *table) {
    if (table == NULL) return;
    dedupe_file_unmap(table);
    dedupe_table_memory_free(table);
    free(table);
}
