/*
 * daemon_util.h: runs a real intaked as a child process for end-to-end tests.
 *
 * daemon_start execs $INTAKE_BIN_DIR/intaked with the given extra flags plus --listen and
 * --shm-dir, captures its stderr in a file, and waits (bounded) until its counters region says
 * ready (src/stat/counters_wait.h, what intake-stat --wait-ready runs). It listens on
 * 127.0.0.1:0 unless a port is given: intaked binds a port the kernel picks and the region names
 * it, so tests run in parallel (ctest -j) never race for a port. A restart that must keep its
 * port passes the previous one (daemon_start_port).
 *
 * Figures come from the counters region, never from the log: DAEMON_REACTOR_COUNTER and
 * DAEMON_WORKER_COUNTER sum a field over the rows, read-only, and work after daemon_stop too
 * (the region stays, state STOPPED, with the final values). The log stays readable through
 * daemon->log for what is not a figure (a startup line, a refusal's reason).
 *
 * daemon_stop sends SIGTERM and returns the exit status. Header-only so each test stays one file
 * plus the harness.
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
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "counters_view.h"
#include "counters_wait.h"
#include "harness.h"

/* How long daemon_start waits for readiness (sanitizer builds on a busy machine are slow). */
#define DAEMON_READY_TIMEOUT_NS (30ull * 1000 * 1000 * 1000)

struct daemon {
    pid_t pid;
    uint16_t port;            /* the bound --listen port */
    char address[64];         /* "127.0.0.1:<port>" */
    uint16_t tls_port;        /* the bound --tls-listen port, 0 without one */
    char tls_address[64];     /* "127.0.0.1:<tls_port>", empty without one */
    char counters_path[4096]; /* --counters, or <shm-dir>/intake.counters */
    char log_path[256];
    char log[1 << 16];
};

/* A port that was free a moment ago, for a listener intaked does not report (--metrics-listen);
 * intaked's own --listen and --tls-listen take 127.0.0.1:0 instead. */
__attribute__((unused)) static uint16_t daemon_free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t length = sizeof(address);
    if (fd < 0 || bind(fd, (struct sockaddr *)&address, sizeof(address)) < 0 ||
        getsockname(fd, (struct sockaddr *)&address, &length) < 0)
        return 0;
    close(fd);
    return ntohs(address.sin_port);
}

__attribute__((unused)) static bool daemon_accepts(uint16_t port) {
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

/* Where the daemon's counters region is: --counters in `flags`, or the default in the directory. */
static void daemon_counters_path(struct daemon *daemon, const char *shm_directory,
                                 const char *const *flags) {
    snprintf(daemon->counters_path, sizeof(daemon->counters_path), "%s/%s", shm_directory,
             INTAKE_COUNTERS_FILE_NAME);
    for (int index = 0; flags && flags[index] && flags[index + 1]; index++)
        if (strcmp(flags[index], "--counters") == 0)
            snprintf(daemon->counters_path, sizeof(daemon->counters_path), "%s", flags[index + 1]);
}

/* Waits for the region to say ready, then takes the bound ports from it. */
static bool daemon_wait_ready(struct daemon *daemon) {
    struct counters_view view;
    char why[512];
    if (counters_wait_ready(daemon->counters_path, daemon->pid, DAEMON_READY_TIMEOUT_NS, &view, why,
                            sizeof(why)) < 0) {
        fprintf(stderr, "intaked did not come up: %s\n", why);
        return false;
    }
    /* Final once ready (counters_format.h). */
    daemon->port = (uint16_t)view.header->listen_port;
    daemon->tls_port = (uint16_t)view.header->tls_listen_port;
    counters_view_close(&view);
    snprintf(daemon->address, sizeof(daemon->address), "127.0.0.1:%u", daemon->port);
    if (daemon->tls_port != 0)
        snprintf(daemon->tls_address, sizeof(daemon->tls_address), "127.0.0.1:%u",
                 daemon->tls_port);
    return true;
}

/* `flags` is NULL-terminated; port 0 lets intaked bind one the kernel picks (a restart passes
 * the previous one). A --tls-listen 127.0.0.1:0 in `flags` is resolved the same way (tls_port).
 * Returns false (and logs why, with the daemon's log) when it did not come up in time. */
static bool daemon_start_port(struct daemon *daemon, const char *shm_directory,
                              const char *const *flags, uint16_t port) {
    static unsigned started;
    memset(daemon, 0, sizeof(*daemon));
    char listen[64];
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", port);
    snprintf(daemon->log_path, sizeof(daemon->log_path), "/tmp/intaked-test-%d-%u.log",
             (int)getpid(), started++);
    daemon_counters_path(daemon, shm_directory, flags);
    const char *arguments[64];
    int count = 0;
    arguments[count++] = "intaked";
    arguments[count++] = "--listen";
    arguments[count++] = listen;
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
    /* Up means the region says ready: every listener of every reactor exists then, and every
     * startup line is in the log. */
    bool ready = daemon_wait_ready(daemon);
    daemon_log_refresh(daemon);
    if (!ready) {
        fprintf(stderr, "its log:\n");
        fputs(daemon->log, stderr);
    }
    return ready;
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

enum daemon_row { DAEMON_ROW_REACTOR, DAEMON_ROW_WORKER };

/* The sum over every reactor's (or worker's) row of the 64-bit counter at `offset` of the row,
 * read from the counters region (running or stopped). A region that cannot be read fails the
 * test (a failed check), so no comparison on the 0 returned then can pass it. */
__attribute__((unused)) static uint64_t daemon_counter_sum(const struct daemon *daemon,
                                                           enum daemon_row kind, size_t offset,
                                                           const char *name) {
    struct counters_view view;
    char why[512];
    if (counters_view_open(daemon->counters_path, &view, why, sizeof(why)) < 0) {
        fprintf(stderr, "counter %s: %s\n", name, why);
        test_check_failed("the counters region is readable", __FILE__, __LINE__);
        return 0;
    }
    bool reactors = kind == DAEMON_ROW_REACTOR;
    uint32_t rows = reactors ? view.header->reactor_count : view.header->worker_count;
    uint64_t total = 0;
    for (uint32_t row = 0; row < rows; row++) {
        const uint8_t *base = reactors ? (const uint8_t *)counters_view_reactor(&view, row)
                                       : (const uint8_t *)counters_view_worker(&view, row);
        total += counters_load((const _Atomic uint64_t *)(base + offset));
    }
    counters_view_close(&view);
    return total;
}

/* A reactor row's (worker row's) field summed over the daemon's reactors (workers). */
#define DAEMON_REACTOR_COUNTER(daemon, field)                                                      \
    daemon_counter_sum((daemon), DAEMON_ROW_REACTOR,                                               \
                       offsetof(struct intake_counters_reactor_row, field), #field)
#define DAEMON_WORKER_COUNTER(daemon, field)                                                       \
    daemon_counter_sum((daemon), DAEMON_ROW_WORKER,                                                \
                       offsetof(struct intake_counters_worker_row, field), #field)

#endif
