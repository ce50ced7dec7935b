/*
 * dedupe_table_file.c: the deduplication table's file (see dedupe_table.h and
 * docs/shm-log-format.md, "The deduplication table"): opening it (read with pread into private
 * memory and checked there, never trusted through a mapping), recovery from the log, rewriting
 * it whole, the per-batch updates through its mapping, and reading a file for the producer
 * table's seeding. Resource errors (the file cannot be opened or read) are returned, never
 * taken for damage.
 * Thread: the log opener (open), then the worker that owns the topic; the main thread reads
 * files for seeding before any of them runs.
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

/* Fills a copy in place and checksums it there (with its checksum field zero, as
 * copy_checksum does): the copy written is never the newest, so no reader needs it whole
 * until it is, and a write cut short leaves its checksum wrong. */
static void copy_fill(struct dedupe_file_copy *copy, const struct dedupe_producer *producer,
                      uint64_t generation) {
    copy->highest_sequence = producer->committed;
    copy->last_offset = producer->recency;
    copy->generation = generation;
    copy->principal = producer->principal;
    copy->id_length = producer->id_length;
    copy->flags = producer->segment == DEDUPE_SEGMENT_PROTECTED ? DEDUPE_COPY_FLAG_PROTECTED : 0;
    copy->checksum = 0;
    copy->reserved = 0;
    memcpy(copy->id, producer->id, producer->id_length);
    memset(copy->id + producer->id_length, 0, sizeof(copy->id) - producer->id_length);
    copy->checksum = intake_crc32c(0, copy, sizeof(*copy));
}

void dedupe_file_entry_write(struct dedupe_table *table, uint32_t slot) {
    if (!file_usable(table)) return;
    struct dedupe_producer *producer = &table->producers[slot];
    INTAKE_ASSERT(producer->id_length != 0 && producer->committed >= 1);
    struct dedupe_file_entry *entry = file_entry(table->map, slot);
    /* The copy that is not the newest: the newest stays whole whatever happens to this one. */
    uint8_t next = producer->file_generation == 0 ? 0 : producer->file_newest ^ 1u;
    copy_fill(&entry->copies[next], producer, producer->file_generation + 1);
    producer->file_generation++;
    producer->file_newest = next;
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
        producer->file_generation = 0;
        producer->file_newest = 0;
        if (producer->id_length == 0 || producer->committed == 0) continue;
        copy_fill(&file_entry(base, slot)->copies[0], producer, 1);
        producer->file_generation = 1;
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

/* Whether a copy holds a whole entry: its checksum, a possible id length, a sequence and a
 * generation. */
static bool copy_valid(const struct dedupe_file_copy *copy) {
    return copy->checksum == copy_checksum(copy) && copy->id_length >= 1 &&
           copy->id_length <= RECORD_PRODUCER_ID_BYTES_MAX && copy->highest_sequence >= 1 &&
           copy->generation >= 1 && copy->reserved == 0;
}

static bool copy_blank(const struct dedupe_file_copy *copy) {
    static const struct dedupe_file_copy blank;
    return memcmp(copy, &blank, sizeof(blank)) == 0;
}

/* What one entry of an image holds: its newest valid copy (NULL when the entry is unused), or
 * damage. *torn is set when one copy is invalid and the other whole. */
enum entry_state { ENTRY_UNUSED, ENTRY_VALID, ENTRY_DAMAGED };

static enum entry_state entry_newest(const struct dedupe_file_entry *entry,
                                     const struct dedupe_file_copy **newest, bool *torn) {
    const struct dedupe_file_copy *first = &entry->copies[0], *second = &entry->copies[1];
    bool first_valid = copy_valid(first), second_valid = copy_valid(second);
    bool first_blank = copy_blank(first), second_blank = copy_blank(second);
    *newest = NULL;
    *torn = false;
    if (first_blank && second_blank) return ENTRY_UNUSED;
    if (!first_valid && !second_valid) return ENTRY_DAMAGED;
    if (first_valid && second_valid) {
        /* Two copies of one producer, of distinct generations. */
        if (first->generation == second->generation || first->principal != second->principal ||
            first->id_length != second->id_length ||
            memcmp(first->id, second->id, first->id_length) != 0)
            return ENTRY_DAMAGED;
        *newest = first->generation > second->generation ? first : second;
        return ENTRY_VALID;
    }
    /* One whole copy: the other is blank (written once), or invalid: a write a crash cut short,
     * or damage to either copy (the whole log is then re-applied, dedupe_table_open). */
    *newest = first_valid ? first : second;
    *torn = first_valid ? !second_blank : !first_blank;
    return ENTRY_VALID;
}

/* Checks an image's header. Returns NULL, or the problem. */
static const char *header_problem(const struct dedupe_file_header *header, uint64_t image_bytes) {
    if (header->magic != DEDUPE_FILE_MAGIC || header->version != DEDUPE_FILE_VERSION ||
        header->identity_checksum != identity_checksum(header))
        return "not a version 2 table (magic, version or checksum)";
    if (header->header_bytes != DEDUPE_FILE_HEADER_BYTES ||
        header->entry_bytes != DEDUPE_FILE_ENTRY_BYTES || header->producers_max == 0 ||
        header->producers_max > DEDUPE_PRODUCERS_MAX ||
        header->fingerprints_max != header->producers_max * DEDUPE_FINGERPRINTS_PER_PRODUCER ||
        image_bytes != dedupe_table_file_bytes(header->producers_max))
        return "sizes do not match the file";
    return NULL;
}

static const struct dedupe_file_entry *image_entry(const uint8_t *image, uint32_t slot) {
    return (const struct dedupe_file_entry *)(const void *)(image + DEDUPE_FILE_HEADER_BYTES +
                                                            (size_t)slot * DEDUPE_FILE_ENTRY_BYTES);
}

static int copies_by_recency(const void *left, const void *right) {
    const struct dedupe_file_copy *a = *(const struct dedupe_file_copy *const *)left;
    const struct dedupe_file_copy *b = *(const struct dedupe_file_copy *const *)right;
    return a->last_offset < b->last_offset ? -1 : a->last_offset > b->last_offset;
}

static void origin_of_copy(const struct dedupe_file_copy *copy, struct keyed_hasher *hasher,
                           struct record_origin *origin) {
    origin->principal = copy->principal;
    origin->producer_id_length = copy->id_length;
    memcpy(origin->producer_id, copy->id, copy->id_length);
    origin->producer_hash = keyed_hash_producer(hasher, copy->principal, copy->id, copy->id_length);
}

/* Checks a file image read into memory and loads it. Returns false with `reason` set when it
 * does not check out (the caller quarantines it); *torn when some entry had one copy invalid. */
static bool file_load(struct dedupe_table *table, struct keyed_hasher *hasher, const uint8_t *image,
                      uint64_t image_bytes, uint64_t *covered_offset, bool *torn, char *reason,
                      size_t reason_capacity) {
    struct dedupe_file_header header;
    if (image_bytes < sizeof(header)) {
        intake_error_line(reason, reason_capacity, "shorter than its header");
        return false;
    }
    memcpy(&header, image, sizeof(header));
    const char *problem = header_problem(&header, image_bytes);
    if (problem != NULL) {
        intake_error_line(reason, reason_capacity, "%s (%llu bytes)", problem,
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
    /* The newest copy of every entry, then applied oldest first, so the lists come out in
     * recency order and a smaller table keeps the most recently committed producers. */
    const struct dedupe_file_copy **copies =
        calloc(header.producers_max, sizeof(const struct dedupe_file_copy *));
    if (copies == NULL) {
        intake_error_line(reason, reason_capacity, "out of memory");
        return false;
    }
    uint32_t count = 0;
    *torn = false;
    for (uint32_t slot = 0; slot < header.producers_max; slot++) {
        const struct dedupe_file_copy *newest = NULL;
        bool entry_torn = false;
        enum entry_state state = entry_newest(image_entry(image, slot), &newest, &entry_torn);
        if (state == ENTRY_DAMAGED) {
            intake_error_line(reason, reason_capacity, "entry %u: no whole copy", slot);
            free(copies);
            return false;
        }
        *torn |= entry_torn;
        if (state == ENTRY_VALID) copies[count++] = newest;
    }
    qsort(copies, count, sizeof(*copies), copies_by_recency);
    bool unique = true;
    for (uint32_t index = 0; index < count && unique; index++) {
        struct record_origin origin;
        origin_of_copy(copies[index], hasher, &origin);
        if (dedupe_table_find(table, &origin) != DEDUPE_ENTRY_NONE) {
            intake_error_line(reason, reason_capacity, "a producer listed twice");
            unique = false;
            break;
        }
        dedupe_table_apply(table, &origin, copies[index]->highest_sequence,
                           copies[index]->last_offset,
                           (copies[index]->flags & DEDUPE_COPY_FLAG_PROTECTED) != 0, false);
    }
    free(copies);
    if (!unique) return false;
    *covered_offset = atomic_load_explicit(&header.covered_offset, memory_order_relaxed);
    return true;
}

/* Whether an errno says the file could not be had now (a resource), not that it is bad. */
static bool error_is_resource(int error) {
    return error == EMFILE || error == ENFILE || error == ENOMEM || error == ENOSPC ||
           error == EDQUOT || error == EIO || error == EINTR || error == EAGAIN ||
           error == ENOBUFS || error == EBUSY || error == ETXTBSY;
}

/* Reads the existing file whole into memory. 1 when there is none, 0 when read, 2 when it is
 * not a regular file of ours of a possible size (damage, with `reason`), or a negative errno
 * (with `reason`) when it could not be read: never damage. */
static int file_read(const char *path, uint8_t **image, uint64_t *image_bytes, char *reason,
                     size_t reason_capacity) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
        int error = errno;
        if (error == ENOENT) return 1;
        intake_error_line(reason, reason_capacity, "cannot open it: %s", strerror(error));
        /* A symlink or something else in the file's place is not a table: damage. */
        return error_is_resource(error) || error == EACCES ? -error : 2;
    }
    struct stat status;
    if (fstat(fd, &status) != 0) {
        int error = errno;
        close(fd);
        intake_error_line(reason, reason_capacity, "cannot stat it: %s", strerror(error));
        return -error;
    }
    if (!S_ISREG(status.st_mode) || status.st_uid != geteuid() ||
        status.st_size < (off_t)DEDUPE_FILE_HEADER_BYTES ||
        (uint64_t)status.st_size > dedupe_table_file_bytes(DEDUPE_PRODUCERS_MAX)) {
        close(fd);
        intake_error_line(reason, reason_capacity, "not a table file of ours of a possible size");
        return 2;
    }
    uint8_t *buffer = malloc((size_t)status.st_size);
    if (buffer == NULL) {
        close(fd);
        intake_error_line(reason, reason_capacity, "out of memory reading it");
        return -ENOMEM;
    }
    ssize_t got = pread(fd, buffer, (size_t)status.st_size, 0);
    int error = got < 0 ? errno : 0;
    close(fd);
    if (got != status.st_size) {
        free(buffer);
        /* A short read means the file changed size while read: tried again later. */
        intake_error_line(reason, reason_capacity, "cannot read it: %s",
                          got < 0 ? strerror(error) : "short read");
        return got < 0 ? -error : -EAGAIN;
    }
    *image = buffer;
    *image_bytes = (uint64_t)status.st_size;
    return 0;
}

/* ------------------------------------------------------------- recovery --- */

struct replay_context {
    struct dedupe_table *table;
    struct keyed_hasher *hasher;
    uint64_t insert_from; /* below this offset only producers held are raised (repair) */
};

static void replay_visit(void *context, uint64_t offset, uint64_t principal, const uint8_t *bytes,
                         uint32_t length) {
    struct replay_context *replay = context;
    struct slice slice = {.bytes = bytes, .length = length, .unit = 0};
    struct record_view view = {&slice, 1, length};
    struct record_scan scan;
    /* The log holds only records the scan accepted; one it does not accept now is skipped. */
    if (record_scan_view(&view, &scan) != RECORD_SCAN_OK) return;
    if (scan.producer_id_length == 0 || scan.sequence == 0) return;
    struct record_origin origin = {.principal = principal,
                                   .producer_id_length = scan.producer_id_length};
    memcpy(origin.producer_id, bytes + scan.producer_id_offset, scan.producer_id_length);
    origin.producer_hash = keyed_hash_producer(replay->hasher, principal, origin.producer_id,
                                               origin.producer_id_length);
    dedupe_table_apply(replay->table, &origin, scan.sequence, offset, false,
                       offset < replay->insert_from);
}

/* Re-applies the log's records from `covered` (inserting producers), and before it, when
 * `repair`, to the producers held (raising only); says in one line what it could not. */
static void replay(struct dedupe_table *table, struct keyed_hasher *hasher, struct shm_log *log,
                   uint64_t covered, bool had_file, bool repair) {
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
    struct replay_context context = {table, hasher, covered};
    table->replaying = true;
    uint64_t oldest = shm_log_visit_published(log, repair ? 0 : covered, replay_visit, &context);
    table->replaying = false;
    if (had_file && oldest > covered) {
        snprintf(line, sizeof(line),
                 "records at offsets %llu..%llu were overwritten before the deduplication table "
                 "covered them: a resend of one of them would be appended again",
                 (unsigned long long)covered, (unsigned long long)oldest - 1);
        table_line(table, line);
    }
}

/* Loads the file into a fresh table; a damaged one is moved aside (said in `line`). Returns 0,
 * or a negative errno when it could not be read (then nothing is touched). */
static int table_load(struct dedupe_table *table, struct keyed_hasher *hasher, uint64_t *covered,
                      bool *loaded, bool *torn, char *line, size_t line_capacity) {
    uint8_t *image = NULL;
    uint64_t image_bytes = 0;
    char reason[256] = "";
    *covered = 0;
    *loaded = false;
    *torn = false;
    int read = file_read(table->path, &image, &image_bytes, reason, sizeof(reason));
    if (read < 0) {
        intake_error_line(line, line_capacity,
                          "cannot read the deduplication table %s (%s): the topic waits for it",
                          table->path, reason);
        return read;
    }
    table->replaying = true; /* loading is not a return */
    *loaded = read == 0 &&
              file_load(table, hasher, image, image_bytes, covered, torn, reason, sizeof(reason));
    table->replaying = false;
    free(image);
    if (read == 1 || *loaded) return 0;
    /* Damaged (or not ours): moved aside, rebuilt from what the log still holds. */
    dedupe_table_memory_clear(table);
    table->counts.rebuilds = 1;
    *covered = 0;
    *torn = false;
    char moved_to[DEDUPE_PATH_BYTES + 32];
    snprintf(moved_to, sizeof(moved_to), "%s.corrupt-%llu", table->path,
             (unsigned long long)(intake_wall_ns() / 1000000u));
    if (rename(table->path, moved_to) != 0) snprintf(moved_to, sizeof(moved_to), "nowhere");
    snprintf(line, line_capacity,
             "deduplication table %s failed its checks (%s): moved to %s, rebuilt from the log",
             table->path, reason, moved_to);
    return 0;
}

int dedupe_table_open(const char *directory, const char *topic, uint32_t producers_max,
                      struct shm_log *log, struct keyed_hasher *hasher, struct dedupe_table **out,
                      char *why, size_t why_capacity) {
    INTAKE_ASSERT(out != NULL && log != NULL && hasher != NULL);
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
    uint64_t covered = 0;
    bool loaded = false, torn = false;
    char line[DEDUPE_PATH_BYTES * 2 + 512] = "";
    result = table_load(table, hasher, &covered, &loaded, &torn, line, sizeof(line));
    if (result != 0) {
        intake_error_line(why, why_capacity, "%s", line);
        dedupe_table_close(table);
        return result;
    }
    if (torn) {
        table->counts.repairs = 1;
        snprintf(line, sizeof(line),
                 "deduplication table %s has entries with one copy invalid (a write cut short "
                 "by a crash, or damage): kept their valid copy and re-applied the whole log",
                 table->path);
    }
    replay(table, hasher, log, covered, loaded, torn);
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

/* ------------------------------------------------------------- seeding --- */

int dedupe_file_visit(const char *path, dedupe_file_visit_fn visit, void *context) {
    uint8_t *image = NULL;
    uint64_t image_bytes = 0;
    char reason[256];
    int read = file_read(path, &image, &image_bytes, reason, sizeof(reason));
    if (read < 0) return read;
    if (read != 0) return 0;
    struct dedupe_file_header header;
    memcpy(&header, image, sizeof(header));
    int visited = 0;
    if (header_problem(&header, image_bytes) == NULL) {
        for (uint32_t slot = 0; slot < header.producers_max; slot++) {
            const struct dedupe_file_copy *newest = NULL;
            bool torn = false;
            if (entry_newest(image_entry(image, slot), &newest, &torn) != ENTRY_VALID) continue;
            visit(context, newest->principal, newest->id, newest->id_length,
                  newest->highest_sequence, (newest->flags & DEDUPE_COPY_FLAG_PROTECTED) != 0);
            visited++;
        }
    }
    free(image);
    return visited;
}
