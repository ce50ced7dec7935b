/*
 * fuzz_files.h: what the targets that fuzz files share (fuzz_consumer, fuzz_consumer_set): a
 * private directory under /dev/shm per process (and the removal of those that crashed
 * processes left), reading and writing whole files, the patch format both read from the head
 * of an input, and the template logs the daemon's writer builds. Single-threaded, like every
 * target.
 */
#ifndef INTAKE_FUZZ_FILES_H
#define INTAKE_FUZZ_FILES_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "intake/consumer.h"
#include "shm_log.h"

/* Removes the /dev/shm directories named `prefix`<pid> whose process is gone (a crash skips
 * atexit): only ours, by prefix, and only when their process no longer exists. */
static inline void fuzz_stale_directories_remove(const char *prefix) {
    DIR *shm = opendir("/dev/shm");
    if (shm == NULL) return;
    size_t prefix_length = strlen(prefix);
    struct dirent *entry;
    while ((entry = readdir(shm)) != NULL) {
        if (strncmp(entry->d_name, prefix, prefix_length) != 0) continue;
        long pid = strtol(entry->d_name + prefix_length, NULL, 10);
        if (pid <= 0 || kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        char path[300];
        snprintf(path, sizeof(path), "/dev/shm/%s", entry->d_name);
        DIR *stale = opendir(path);
        if (stale == NULL) continue;
        struct dirent *file;
        while ((file = readdir(stale)) != NULL) {
            if (file->d_name[0] == '.') continue;
            char file_path[600];
            snprintf(file_path, sizeof(file_path), "%s/%s", path, file->d_name);
            unlink(file_path);
        }
        closedir(stale);
        rmdir(path);
    }
    closedir(shm);
}

/* Reads the whole file at `path` into a new allocation. */
static inline void fuzz_file_read(const char *path, uint8_t **bytes, size_t *length) {
    FILE *stream = fopen(path, "rb");
    FUZZ_CHECK(stream != NULL);
    FUZZ_CHECK(fseek(stream, 0, SEEK_END) == 0);
    long size = ftell(stream);
    FUZZ_CHECK(size > 0);
    rewind(stream);
    *length = (size_t)size;
    *bytes = malloc(*length);
    FUZZ_CHECK(*bytes != NULL);
    FUZZ_CHECK(fread(*bytes, 1, *length, stream) == *length);
    fclose(stream);
}

/* Writes `path` anew with exactly `length` bytes. */
static inline void fuzz_file_write(const char *path, const uint8_t *bytes, size_t length) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FUZZ_CHECK(fd >= 0);
    size_t written = 0;
    while (written < length) {
        ssize_t result = write(fd, bytes + written, length - written);
        FUZZ_CHECK(result > 0);
        written += (size_t)result;
    }
    close(fd);
}

/* Applies a patch to `bytes` (`total` of them): repeated [offset high][offset low][count]
 * [count bytes], each XORed at offset (mod the total). */
static inline void fuzz_patch_apply(const uint8_t *patch, size_t patch_length, uint8_t *bytes,
                                    size_t total) {
    size_t position = 0;
    while (position + 3 <= patch_length) {
        size_t offset = ((size_t)patch[position] << 8 | patch[position + 1]) % total;
        size_t count = patch[position + 2];
        position += 3;
        for (size_t index = 0; index < count && position < patch_length; index++)
            bytes[(offset + index) % total] ^= patch[position++];
    }
}

/* A file of a template: where it lives and its bytes as built. */
struct fuzz_file {
    char path[64 + 256 + 2];
    uint8_t *bytes;
    size_t length;
};

/* The size change `code` (0..3) selects: as built, one page shorter, one page longer, one byte
 * shorter. */
static inline long fuzz_size_change(unsigned code) {
    static const long changes[4] = {0, -4096, 4096, -1};
    return changes[code & 3];
}

/* Writes the template's `count` files back with the patch applied to their bytes taken end to
 * end; file i gets the size change `size_codes[i]` (fuzz_size_change; ignored when that would
 * leave nothing). Returns the first file's length as written. */
static inline size_t fuzz_files_write_patched(const struct fuzz_file *files, size_t count,
                                              const uint8_t *patch, size_t patch_length,
                                              const unsigned *size_codes) {
    size_t total = 0;
    for (size_t index = 0; index < count; index++) total += files[index].length;
    uint8_t *bytes = malloc(total);
    FUZZ_CHECK(bytes != NULL);
    size_t at = 0;
    for (size_t index = 0; index < count; index++) {
        memcpy(bytes + at, files[index].bytes, files[index].length);
        at += files[index].length;
    }
    fuzz_patch_apply(patch, patch_length, bytes, total);
    size_t first_length = 0;
    at = 0;
    for (size_t index = 0; index < count; index++) {
        const struct fuzz_file *file = &files[index];
        long change = fuzz_size_change(size_codes[index]);
        if ((long)file->length + change <= 0) change = 0;
        size_t length = (size_t)((long)file->length + change);
        uint8_t *patched = calloc(1, length > file->length ? length : file->length);
        FUZZ_CHECK(patched != NULL);
        memcpy(patched, bytes + at, file->length);
        fuzz_file_write(file->path, patched, length);
        free(patched);
        if (index == 0) first_length = length;
        at += file->length;
    }
    free(bytes);
    return first_length;
}

/* How a template log is written: `records` records of 1 + (index * length_stride) % 397 bytes,
 * published every `publish_every`, a "keeper" consumer that reads `keeper_polls` records and
 * commits once `keeper_at` records were appended. */
struct fuzz_template_log {
    const char *directory;
    const char *topic;
    struct shm_notify *notify; /* the directory's wake-up files, or NULL */
    uint32_t records, length_stride, publish_every, keeper_at;
    int keeper_polls;
};

/* Builds a wrapped log (ring of 4 KiB, overwrite) with the daemon's own writer: the one place
 * the file targets know the writer. */
static inline void fuzz_template_log_build(const struct fuzz_template_log *plan) {
    struct shm_log_config config = {.directory = plan->directory,
                                    .topic = plan->topic,
                                    .capacity_bytes = 4096,
                                    .retention = SHM_LOG_RETENTION_OVERWRITE,
                                    .consumer_stale_ns = 1000000000ull,
                                    .notify = plan->notify};
    struct shm_log *log = NULL;
    char why[256];
    if (shm_log_open_writer(&config, &log, why, sizeof(why)) != 0) {
        fprintf(stderr, "fuzz: cannot build the template log: %s\n", why);
        abort();
    }
    uint8_t payload[400];
    for (size_t index = 0; index < sizeof(payload); index++) payload[index] = (uint8_t)index;
    for (uint32_t index = 0; index < plan->records; index++) {
        struct slice slice = {payload, 1 + (index * plan->length_stride) % 397, 0};
        uint64_t offset = 0;
        FUZZ_CHECK(shm_log_append(log, &slice, 1, slice.length, index + 1, 1000 + index, 0,
                                  &offset) == SHM_LOG_APPENDED);
        if (index % plan->publish_every == plan->publish_every - 1)
            FUZZ_CHECK(shm_log_publish(log));
        if (index != plan->keeper_at) continue;
        struct intake_consumer_options options = {
            .start = INTAKE_CONSUMER_START_OLDEST, .start_offset = 0, .ephemeral = false};
        struct intake_consumer *keeper = NULL;
        FUZZ_CHECK(intake_consumer_open(plan->directory, plan->topic, "keeper", &options, &keeper,
                                        why, sizeof(why)) == 0);
        struct intake_consumer_record record;
        for (int polls = 0; polls < plan->keeper_polls; polls++)
            FUZZ_CHECK(intake_consumer_poll(keeper, &record) == 1);
        intake_consumer_commit(keeper);
        intake_consumer_close(keeper);
    }
    FUZZ_CHECK(shm_log_publish(log));
    shm_log_close(log);
}

#endif
