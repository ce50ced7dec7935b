/*
 * intake-topic: removes a topic's shared-memory log, giving its memory back.
 *
 *   intake-topic --shm-dir DIR --remove NAME
 *
 * A topic's log is a file of --log-size bytes in --shm-dir (RAM, on tmpfs) that outlives the
 * daemon, with its consumer region and the daemon's deduplication table beside it (<name>.log,
 * <name>.consumers and <name>.dedupe, see intake/shm_log_format.h). Removing them is safe only
 * while no daemon writes the log: a running intaked holds an exclusive flock on every log it has open (one writer per log), so
 * this tool takes that same lock, and refuses while the lock is held, naming the holder. Once it
 * holds the lock it checks that the path still names the file it locked (a daemon may have
 * replaced it meanwhile), unlinks the deduplication table, the consumer region, then the log,
 * and marks the unlinked file as no log before letting go. A daemon that opens the topic
 * afterwards creates both afresh (at today's --log-size); one that raced to open the old log
 * finds, once it has the lock, that its path names nothing, and opens the path again.
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
#include <stdbool.h>
#include <stddef.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "intake/shm_log_format.h"

/* A consumer probes a log's writer lock with a brief shared lock: try a few times. */
#define TOPIC_LOCK_ATTEMPTS 50
/* Times the log's path is looked up again when the file locked is no longer the one it names
 * (a daemon quarantined and recreated it meanwhile). */
#define TOPIC_OPEN_ATTEMPTS 8

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
static int check_header(int fd, const char *path, const char *topic, char *why,
                        size_t why_capacity) {
    static struct shm_log_header header;
    ssize_t got = pread(fd, &header, sizeof(header), 0);
    if (got != (ssize_t)sizeof(header) || header.magic != SHM_LOG_MAGIC) {
        snprintf(why, why_capacity, "%s is not an intake log; left alone", path);
        return -1;
    }
    size_t length = strlen(topic);
    if (header.topic_length != length || memcmp(header.topic, topic, length) != 0) {
        snprintf(why, why_capacity, "%s holds another topic; left alone", path);
        return -1;
    }
    return 0;
}

/* Who holds a lock on the file `status` describes, from /proc/locks (pids as this process's
 * pid namespace sees them; 0 when none is listed). An exclusive flock is a writer's (intaked
 * holds one for as long as it has the log open); a shared one is a consumer checking, for an
 * instant, whether a writer runs. */
struct lock_holder {
    int pid;
    bool exclusive;
};

static struct lock_holder lock_holder_find(const struct stat *status) {
    struct lock_holder holder = {0, false};
    FILE *locks = fopen("/proc/locks", "r");
    if (locks == NULL) return holder;
    char line[256];
    while (fgets(line, sizeof(line), locks) != NULL) {
        char kind[16], advisory[16], mode[16];
        int pid = 0;
        unsigned int device_major = 0, device_minor = 0;
        unsigned long inode = 0;
        /* "1: FLOCK  ADVISORY  WRITE 1234 00:1a:5678 0 EOF"; a waiter's line has "->" and
         * does not parse (it holds nothing). */
        if (sscanf(line, "%*d: %15s %15s %15s %d %x:%x:%lu", kind, advisory, mode, &pid,
                   &device_major, &device_minor, &inode) != 7)
            continue;
        if (strcmp(kind, "FLOCK") != 0 || inode != (unsigned long)status->st_ino ||
            device_major != major(status->st_dev) || device_minor != minor(status->st_dev))
            continue;
        holder.pid = pid;
        holder.exclusive = strcmp(mode, "WRITE") == 0;
        if (holder.exclusive) break; /* the writer is the one to name */
    }
    fclose(locks);
    return holder;
}

/* The refusal line when the log's lock is held: names the holder. */
static void refuse_held(const char *topic, const struct stat *status) {
    struct lock_holder holder = lock_holder_find(status);
    char command[32] = "";
    if (holder.pid > 0) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/comm", holder.pid);
        FILE *comm = fopen(path, "r");
        if (comm != NULL) {
            if (fgets(command, sizeof(command), comm) == NULL) command[0] = '\0';
            command[strcspn(command, "\n")] = '\0';
            fclose(comm);
        }
    }
    if (holder.pid > 0 && holder.exclusive && strcmp(command, "intaked") == 0)
        fprintf(stderr,
                "intake-topic: topic \"%s\"'s log is held by a running intaked (pid %d); "
                "stop the daemon, then remove it\n",
                topic, holder.pid);
    else if (holder.pid > 0 && holder.exclusive)
        fprintf(stderr,
                "intake-topic: topic \"%s\"'s log is locked by pid %d (%s), the way a writer "
                "holds it; try again once it lets go\n",
                topic, holder.pid, command[0] ? command : "exited");
    else if (holder.pid > 0)
        fprintf(stderr,
                "intake-topic: topic \"%s\"'s log is share-locked by pid %d (%s), a consumer "
                "checking whether a writer runs; try again\n",
                topic, holder.pid, command[0] ? command : "exited");
    else
        fprintf(stderr,
                "intake-topic: topic \"%s\"'s log was locked by another process, which let go "
                "meanwhile; try again\n",
                topic);
}

/* Whether `path` still names the file `status` describes (fd's, after its lock). */
static bool path_names_file(const char *path, const struct stat *status) {
    struct stat named;
    if (status->st_nlink == 0 || lstat(path, &named) != 0) return false;
    return named.st_ino == status->st_ino && named.st_dev == status->st_dev;
}

/* Opens the topic's log and takes its writer lock, making sure the path still names the file
 * locked (a daemon may have quarantined and recreated the log between our open and our lock:
 * removing the path then would take the live log from under it). Returns the descriptor, or
 * -1 after saying why. */
static int log_lock(const char *path, const char *directory, const char *topic,
                    struct stat *status) {
    char why[4096 + 512] = "";
    for (int attempt = 0; attempt < TOPIC_OPEN_ATTEMPTS; attempt++) {
        /* Read-write: the removed file's header is marked below. */
        int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) {
            int error = errno;
            if (error == ENOENT)
                fprintf(stderr, "intake-topic: no log for topic \"%s\" in %s\n", topic, directory);
            else
                fprintf(stderr, "intake-topic: cannot open %s: %s\n", path, strerror(error));
            return -1;
        }
        if (fstat(fd, status) != 0 || check_header(fd, path, topic, why, sizeof(why)) < 0) {
            if (why[0] == '\0') snprintf(why, sizeof(why), "cannot read %s", path);
            fprintf(stderr, "intake-topic: %s\n", why);
            close(fd);
            return -1;
        }
        int locked = lock_exclusive(fd);
        if (locked == -EWOULDBLOCK) {
            refuse_held(topic, status);
            close(fd);
            return -1;
        }
        if (locked < 0) {
            fprintf(stderr, "intake-topic: cannot lock %s: %s\n", path, strerror(-locked));
            close(fd);
            return -1;
        }
        if (fstat(fd, status) == 0 && path_names_file(path, status)) return fd;
        close(fd); /* not the topic's log any more: look the path up again */
        why[0] = '\0';
    }
    fprintf(stderr, "intake-topic: %s kept being replaced while locked; try again\n", path);
    return -1;
}

static int remove_topic(const char *directory, const char *topic) {
    char name[SHM_LOG_FILE_NAME_BYTES];
    char path[4096 + SHM_LOG_FILE_NAME_BYTES];
    char consumers_path[4096 + SHM_LOG_FILE_NAME_BYTES];
    char dedupe_path[4096 + SHM_LOG_FILE_NAME_BYTES];
    shm_log_file_name(topic, name);
    snprintf(path, sizeof(path), "%s/%s", directory, name);
    shm_log_consumers_file_name(topic, name);
    snprintf(consumers_path, sizeof(consumers_path), "%s/%s", directory, name);
    shm_log_dedupe_file_name(topic, name);
    snprintf(dedupe_path, sizeof(dedupe_path), "%s/%s", directory, name);
    struct stat status;
    int fd = log_lock(path, directory, topic, &status);
    if (fd < 0) return 1;
    long long bytes = (long long)status.st_size;
    /* Under the lock, and the path names the file locked: no daemon can have made it its log
     * meanwhile. The deduplication table goes first (a table left without its log would
     * remember sequences a new log never held; a log without a table gets one rebuilt from
     * it), then the consumer region, so no log is ever left without one. */
    const char *const paths[3] = {dedupe_path, consumers_path, path};
    for (int index = 0; index < 3; index++) {
        if (unlink(paths[index]) == 0 || (errno == ENOENT && index < 2)) continue;
        int error = errno;
        fprintf(stderr, "intake-topic: cannot remove %s: %s\n", paths[index], strerror(error));
        close(fd);
        return 1;
    }
    /* A daemon that opened the log just before it was unlinked waits for this lock, and gets
     * it on close. Marking the unlinked file "not a log" first means whoever locks it next
     * finds nothing to write into (intaked also checks that the path still names the file it
     * locked). Consumers that map it already checked its header and keep reading. */
    static const uint8_t no_magic[sizeof(uint64_t)] = {0};
    if (pwrite(fd, no_magic, sizeof(no_magic), offsetof(struct shm_log_header, magic)) !=
        (ssize_t)sizeof(no_magic)) {
        int error = errno;
        fprintf(stderr, "intake-topic: removed %s, but cannot mark it removed: %s\n", path,
                strerror(error));
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
