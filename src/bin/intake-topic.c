/*
 * intake-topic: removes a topic's shared-memory log, giving its memory back.
 *
 *   intake-topic --shm-dir DIR --remove NAME
 *
 * A topic's log is a file of --log-size bytes in --shm-dir (RAM, on tmpfs) that outlives the
 * daemon, with its consumer region and the daemon's deduplication table beside it (<name>.log,
 * <name>.consumers and <name>.dedupe, see intake/shm_log_format.h). Removing them is safe only while no daemon writes the log: a
 * running intaked holds an exclusive flock on every log it has open (one writer per log), so
 * this tool takes that same lock, and refuses while the lock is held. Under the lock it unlinks
 * the deduplication table, the consumer region, then the log, so a daemon that opens the topic afterwards creates both
 * afresh (at today's --log-size), and one that raced to open the old log fails to lock it and
 * tries again later.
 *
 * Consumers that still map the removed file keep reading what it held; its memory is freed
 * when the last of them closes it. Offsets of a recreated topic start again at 0.
 *
 * Exit status: 0 removed; 1 refused (no such log, not an intake log, held by a daemon, or a
 * system error), with one line saying why; 2 bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "intake/shm_log_format.h"

/* A consumer probes a log's writer lock with a brief shared lock: try a few times. */
#define TOPIC_LOCK_ATTEMPTS 50

static void usage(FILE *out) {
    fputs("usage: intake-topic --shm-dir DIR --remove NAME\n"
          "  --shm-dir DIR   the daemon's --shm-dir (default /dev/shm/intake)\n"
          "  --remove NAME   remove topic NAME's log; refused while a running intaked holds it\n",
          out);
}

static int lock_exclusive(int fd) {
    for (int attempt = 0; attempt < TOPIC_LOCK_ATTEMPTS; attempt++) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) return 0;
        if (errno != EWOULDBLOCK) return -errno;
        struct timespec pause = {0, 2 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    return -EWOULDBLOCK;
}

/* Checks that `fd` is an intake log of `topic`; fills `why` otherwise. */
static int check_header(int fd, const char *path, const char *topic, struct shm_log_header *header,
                        char *why, size_t why_capacity) {
    ssize_t got = pread(fd, header, sizeof(*header), 0);
    if (got != (ssize_t)sizeof(*header) || header->magic != SHM_LOG_MAGIC) {
        snprintf(why, why_capacity, "%s is not an intake log; left alone", path);
        return -1;
    }
    size_t length = strlen(topic);
    if (header->topic_length != length || memcmp(header->topic, topic, length) != 0) {
        snprintf(why, why_capacity, "%s holds another topic; left alone", path);
        return -1;
    }
    return 0;
}

static int remove_topic(const char *directory, const char *topic) {
    char name[SHM_LOG_FILE_NAME_BYTES];
    char path[4096 + SHM_LOG_FILE_NAME_BYTES];
    char consumers_path[4096 + SHM_LOG_FILE_NAME_BYTES];
    char dedupe_path[4096 + SHM_LOG_FILE_NAME_BYTES];
    char why[4096 + 512];
    shm_log_file_name(topic, name);
    snprintf(path, sizeof(path), "%s/%s", directory, name);
    shm_log_consumers_file_name(topic, name);
    snprintf(consumers_path, sizeof(consumers_path), "%s/%s", directory, name);
    shm_log_dedupe_file_name(topic, name);
    snprintf(dedupe_path, sizeof(dedupe_path), "%s/%s", directory, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int error = errno;
        if (error == ENOENT)
            fprintf(stderr, "intake-topic: no log for topic \"%s\" in %s\n", topic, directory);
        else
            fprintf(stderr, "intake-topic: cannot open %s: %s\n", path, strerror(error));
        return 1;
    }
    static struct shm_log_header header;
    if (check_header(fd, path, topic, &header, why, sizeof(why)) < 0) {
        fprintf(stderr, "intake-topic: %s\n", why);
        close(fd);
        return 1;
    }
    int locked = lock_exclusive(fd);
    if (locked == -EWOULDBLOCK) {
        fprintf(stderr,
                "intake-topic: topic \"%s\"'s log is held by a running intaked (pid %d); "
                "stop the daemon, then remove it\n",
                topic, (int)atomic_load_explicit(&header.writer_pid, memory_order_relaxed));
        close(fd);
        return 1;
    }
    if (locked < 0) {
        fprintf(stderr, "intake-topic: cannot lock %s: %s\n", path, strerror(-locked));
        close(fd);
        return 1;
    }
    struct stat status;
    long long bytes = fstat(fd, &status) == 0 ? (long long)status.st_size : -1;
    /* Under the lock: no daemon can have made this file its log meanwhile. The deduplication
     * table goes first (a table left without its log would remember sequences a new log never
     * held; a log without a table gets one rebuilt from it), then the consumer region, so no
     * log is ever left without one. */
    if (unlink(dedupe_path) != 0 && errno != ENOENT) {
        int error = errno;
        fprintf(stderr, "intake-topic: cannot remove %s: %s\n", dedupe_path, strerror(error));
        close(fd);
        return 1;
    }
    if (unlink(consumers_path) != 0 && errno != ENOENT) {
        int error = errno;
        fprintf(stderr, "intake-topic: cannot remove %s: %s\n", consumers_path, strerror(error));
        close(fd);
        return 1;
    }
    if (unlink(path) != 0) {
        int error = errno;
        fprintf(stderr, "intake-topic: cannot remove %s: %s\n", path, strerror(error));
        close(fd);
        return 1;
    }
    close(fd);
    fprintf(stderr,
            "intake-topic: removed topic \"%s\"'s log %s (%lld bytes, freed once no "
            "consumer maps it)\n",
            topic, path, bytes);
    return 0;
}

int main(int argc, char **argv) {
    static const struct option options[] = {
        {"shm-dir", required_argument, NULL, 'd'},
        {"remove", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *directory = "/dev/shm/intake";
    const char *topic = NULL;
    opterr = 0;
    for (;;) {
        int option = getopt_long(argc, argv, "", options, NULL);
        if (option == -1) break;
        if (option == 'd')
            directory = optarg;
        else if (option == 'r')
            topic = optarg;
        else if (option == 'h') {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "intake-topic: unknown or incomplete option \"%s\" (see --help)\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc || topic == NULL) {
        fprintf(stderr, "intake-topic: --remove NAME is required (see --help)\n");
        return 2;
    }
    size_t length = strlen(topic);
    if (length == 0 || length > SHM_LOG_TOPIC_BYTES - 1) {
        fprintf(stderr, "intake-topic: a topic is 1..255 bytes\n");
        return 2;
    }
    return remove_topic(directory, topic);
}
