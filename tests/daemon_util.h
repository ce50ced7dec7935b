/*
 * daemon_util.h: runs a real intaked as a child process for end-to-end tests.
 *
 * daemon_start picks a free loopback port, execs $INTAKE_BIN_DIR/intaked with the given extra
 * flags plus --listen and --shm-dir, captures its stderr in a file, and waits (bounded) until it
 * accepts connections. daemon_stop sends SIGTERM and returns the exit status; the log stays
 * readable through daemon_log. Header-only so each test stays one file plus the harness.
 */
#ifndef INTAKE_DAEMON_UTIL_H
#define INTAKE_DAEMON_UTIL_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

struct daemon {
    pid_t pid;
    uint16_t port;
    char address[64];
    char log_path[256];
    char log[1 << 16];
};

static uint16_t daemon_free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t length = sizeof(address);
    if (fd < 0 || bind(fd, (struct sockaddr *)&address, sizeof(address)) < 0 ||
        getsockname(fd, (struct sockaddr *)&address, &length) < 0)
        return 0;
    close(fd);
    return ntohs(address.sin_port);
}

static bool daemon_accepts(uint16_t port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool connected = connect(fd, (struct sockaddr *)&address, sizeof(address)) == 0;
    close(fd);
    return connected;
}

static int daemon_remove_entry(const char *path, const struct stat *status, int flag,
                               struct FTW *walk) {
    (void)status;
    (void)flag;
    (void)walk;
    return remove(path);
}

/* Re-reads the daemon's log (while it runs) into daemon->log. */
static void daemon_log_refresh(struct daemon *daemon) {
    FILE *log = fopen(daemon->log_path, "r");
    if (log == NULL) return;
    size_t read_bytes = fread(daemon->log, 1, sizeof(daemon->log) - 1, log);
    daemon->log[read_bytes] = '\0';
    fclose(log);
}

/* A fresh /dev/shm/intake-e2e-<pid>-<name> for the daemon's logs; removed by directory_remove. */
static const char *daemon_directory_make(char *path, size_t capacity, const char *name) {
    snprintf(path, capacity, "/dev/shm/intake-e2e-%d-%s", (int)getpid(), name);
    nftw(path, daemon_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return path;
}

static void daemon_directory_remove(const char *path) {
    nftw(path, daemon_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* `flags` is NULL-terminated; port 0 picks a free one (a restart passes the previous one).
 * Returns false (and logs why) when it did not come up in 10 s. */
static bool daemon_start_port(struct daemon *daemon, const char *shm_directory,
                              const char *const *flags, uint16_t port) {
    memset(daemon, 0, sizeof(*daemon));
    daemon->port = port ? port : daemon_free_port();
    snprintf(daemon->address, sizeof(daemon->address), "127.0.0.1:%u", daemon->port);
    snprintf(daemon->log_path, sizeof(daemon->log_path), "/tmp/intaked-test-%d-%u.log",
             (int)getpid(), daemon->port);
    const char *arguments[64];
    int count = 0;
    arguments[count++] = "intaked";
    arguments[count++] = "--listen";
    arguments[count++] = daemon->address;
    arguments[count++] = "--shm-dir";
    arguments[count++] = shm_directory;
    for (int index = 0; flags && flags[index] && count < 62; index++)
        arguments[count++] = flags[index];
    arguments[count] = NULL;
    char program[4096];
    snprintf(program, sizeof(program), "%s", test_program_path("intaked"));
    daemon->pid = fork();
    if (daemon->pid == 0) {
        /* A test that crashes must not leave its daemon running. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int log = open(daemon->log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(log, 2);
        execv(program, (char *const *)arguments);
        _exit(127);
    }
    /* Up means the daemon said so: its listeners exist one by one, and a connect that works
     * on the first one says nothing about the others. */
    for (int attempt = 0; attempt < 1000; attempt++) {
        daemon_log_refresh(daemon);
        if (strstr(daemon->log, "intaked: listening on") && daemon_accepts(daemon->port))
            return true;
        int status = 0;
        if (waitpid(daemon->pid, &status, WNOHANG) == daemon->pid) break;
        struct timespec pause = {0, 10 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    fprintf(stderr, "intaked did not come up on %s; its log:\n", daemon->address);
    daemon_log_refresh(daemon);
    fputs(daemon->log, stderr);
    return false;
}

static bool daemon_start(struct daemon *daemon, const char *shm_directory,
                         const char *const *flags) {
    return daemon_start_port(daemon, shm_directory, flags, 0);
}

/* SIGTERM, wait, read the log. Returns the exit code, or -signal when it died of a signal. */
static int daemon_stop(struct daemon *daemon) {
    kill(daemon->pid, SIGTERM);
    int status = 0;
    waitpid(daemon->pid, &status, 0);
    daemon_log_refresh(daemon);
    unlink(daemon->log_path);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

/* Waits (up to timeout_ms) until the running daemon's log holds `text`. */
__attribute__((unused)) static bool daemon_log_wait(struct daemon *daemon, const char *text,
                                                    int timeout_ms) {
    for (int waited = 0; waited <= timeout_ms; waited += 10) {
        daemon_log_refresh(daemon);
        if (strstr(daemon->log, text) != NULL) return true;
        struct timespec pause = {0, 10 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    fprintf(stderr, "the daemon's log never said \"%s\"; it holds:\n%s\n", text, daemon->log);
    return false;
}

/* Reads `name=<number>` summed over every line of the daemon's log that contains `line_tag`. */
__attribute__((unused)) static uint64_t daemon_log_counter(const struct daemon *daemon,
                                                           const char *line_tag, const char *name) {
    uint64_t total = 0;
    const char *line = daemon->log;
    char pattern[64];
    snprintf(pattern, sizeof(pattern), " %s=", name);
    while (line && *line) {
        const char *end = strchr(line, '\n');
        size_t length = end ? (size_t)(end - line) : strlen(line);
        char copy[2048];
        if (length >= sizeof(copy)) length = sizeof(copy) - 1;
        memcpy(copy, line, length);
        copy[length] = '\0';
        const char *found = strstr(copy, pattern);
        if (strstr(copy, line_tag) && found) total += strtoull(found + strlen(pattern), NULL, 10);
        line = end ? end + 1 : NULL;
    }
    return total;
}

#endif
