/*
 * tls_util.h: TLS peers for the producer's TLS tests (header-only, like daemon_util.h).
 *
 *   tls_certs_make:      a fresh directory of certificates from scripts/tls-dev-certs (made at
 *                        test time with the openssl command line; no key is committed);
 *   tls_peer_terminator: tests/tls_terminator.py (Python's ssl module) in front of a real
 *                        plaintext intaked, so records sent over TLS land in its logs;
 *   tls_peer_s_server:   `openssl s_server -tls1_3` (optionally -Verify, -msg), which prints
 *                        what it decrypts, for the checks that need only a TLS 1.3 peer.
 * Both peers are our children, started on a free loopback port, stopped by pid.
 */
#ifndef INTAKE_TLS_UTIL_H
#define INTAKE_TLS_UTIL_H

#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon_util.h"
#include "harness.h"

struct tls_peer {
    pid_t pid;
    uint16_t port;
    char address[64];
    int stdin_fd; /* s_server reads its stdin; closing it would end it */
    char log_path[400];
};

static void tls_sleep_ms(int milliseconds) {
    struct timespec pause = {milliseconds / 1000, (long)(milliseconds % 1000) * 1000000L};
    nanosleep(&pause, NULL);
}

/* `directory`/<name>, in a static ring of buffers (several may be in use in one call). */
static const char *tls_path(const char *directory, const char *name) {
    static char paths[8][320];
    static int next;
    char *path = paths[next++ % 8];
    snprintf(path, sizeof(paths[0]), "%s/%s", directory, name);
    return path;
}

/* Makes /tmp/intake-tls-<pid>-<name> with scripts/tls-dev-certs; false when it failed. The
 * peers' outputs go into it too, so removing it (tls_certs_remove) leaves nothing behind. */
static bool tls_certs_make(char *directory, size_t capacity, const char *name) {
    snprintf(directory, capacity, "/tmp/intake-tls-%d-%s", (int)getpid(), name);
    const char *source = getenv("INTAKE_SOURCE_DIR");
    char command[1024];
    snprintf(command, sizeof(command), "rm -rf '%s' && '%s/scripts/tls-dev-certs' '%s'", directory,
             source ? source : ".", directory);
    int status = system(command);
    if (status != 0) fprintf(stderr, "%s: exit status %d\n", command, status);
    return status == 0;
}

static void tls_certs_remove(const char *directory) {
    char command[512];
    snprintf(command, sizeof(command), "rm -rf '%s'", directory);
    if (system(command) != 0) fprintf(stderr, "could not remove %s\n", directory);
}

/* Forks `arguments[0]` with stdin from a pipe (kept in peer->stdin_fd), stdout into `output`. */
static pid_t tls_spawn(const char *const *arguments, const char *output, int *stdin_fd) {
    int input[2];
    if (pipe(input) != 0) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(input[0], 0);
        close(input[1]);
        int out = open(output, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(out, 1);
        dup2(out, 2);
        execvp(arguments[0], (char *const *)arguments);
        _exit(127);
    }
    close(input[0]);
    *stdin_fd = input[1];
    return pid;
}

/* How many times `text` occurs in the file at `path`. */
static int tls_count_text(const char *path, const char *text) {
    FILE *file = fopen(path, "r");
    if (!file) return 0;
    static char content[1 << 22];
    size_t length = fread(content, 1, sizeof(content) - 1, file);
    content[length] = '\0';
    fclose(file);
    int count = 0;
    for (const char *at = strstr(content, text); at; at = strstr(at + 1, text)) count++;
    return count;
}

/* Waits (timeout_ms at most) until `text` occurs `count` times in `path`; false if not. */
static bool tls_wait_for_count(const char *path, const char *text, int count, int timeout_ms) {
    for (int waited = 0; waited <= timeout_ms; waited += 10) {
        if (tls_count_text(path, text) >= count) return true;
        tls_sleep_ms(10);
    }
    return false;
}

static bool tls_wait_for_text(const char *path, const char *text, int timeout_ms) {
    return tls_wait_for_count(path, text, 1, timeout_ms);
}

/* tests/tls_terminator.py forwarding to `upstream` (a plaintext intaked); client_ca NULL: no
 * client certificate asked for. Its log of handshakes is peer->log_path. */
static bool tls_peer_terminator(struct tls_peer *peer, const char *certs, const char *upstream,
                                const char *client_ca) {
    memset(peer, 0, sizeof(*peer));
    char script[512];
    const char *source = getenv("INTAKE_SOURCE_DIR");
    snprintf(script, sizeof(script), "%s/tests/tls_terminator.py", source ? source : ".");
    char output[320];
    snprintf(output, sizeof(output), "%s/terminator-%ld.out", certs, (long)random());
    snprintf(peer->log_path, sizeof(peer->log_path), "%s.log", output);
    unlink(peer->log_path);
    const char *arguments[16] = {"/usr/bin/python3",
                                 script,
                                 "--upstream",
                                 upstream,
                                 "--cert",
                                 tls_path(certs, "server.pem"),
                                 "--key",
                                 tls_path(certs, "server.key"),
                                 "--log",
                                 peer->log_path};
    int count = 10;
    if (client_ca != NULL) {
        arguments[count++] = "--client-ca";
        arguments[count++] = client_ca;
    }
    arguments[count] = NULL;
    peer->pid = tls_spawn(arguments, output, &peer->stdin_fd);
    bool listening = peer->pid > 0 && tls_wait_for_text(output, "listening ", 10000);
    if (listening) {
        FILE *file = fopen(output, "r");
        unsigned port = 0;
        if (file && fscanf(file, "listening %u", &port) == 1) peer->port = (uint16_t)port;
        if (file) fclose(file);
    }
    unlink(output);
    snprintf(peer->address, sizeof(peer->address), "127.0.0.1:%u", peer->port);
    if (peer->port == 0) fprintf(stderr, "tls_terminator.py did not start\n");
    return peer->port != 0;
}

/* `openssl s_server -tls1_3 -quiet` with `certificate`/`key` of `certs`; `extra` (NULL-ended)
 * adds flags (-Verify 1 -CAfile ..., -msg -msgfile ...). What it decrypts goes to
 * peer->log_path. */
static bool tls_peer_s_server(struct tls_peer *peer, const char *certs, const char *certificate,
                              const char *key, const char *const *extra) {
    memset(peer, 0, sizeof(*peer));
    peer->port = daemon_free_port();
    snprintf(peer->address, sizeof(peer->address), "127.0.0.1:%u", peer->port);
    snprintf(peer->log_path, sizeof(peer->log_path), "%s/s_server-%u.out", certs, peer->port);
    char accept[32];
    snprintf(accept, sizeof(accept), "127.0.0.1:%u", peer->port);
    const char *arguments[32] = {"openssl", "s_server",
                                 "-tls1_3", "-quiet",
                                 "-accept", accept,
                                 "-cert",   tls_path(certs, certificate),
                                 "-key",    tls_path(certs, key)};
    int count = 10;
    for (int index = 0; extra && extra[index] && count < 30; index++)
        arguments[count++] = extra[index];
    arguments[count] = NULL;
    peer->pid = tls_spawn(arguments, peer->log_path, &peer->stdin_fd);
    /* Listening: a plain TCP connect succeeds (s_server logs the aborted handshake, and goes
     * on accepting). */
    for (int waited = 0; peer->pid > 0 && waited < 10000; waited += 10) {
        if (daemon_accepts(peer->port)) return true;
        tls_sleep_ms(10);
    }
    fprintf(stderr, "openssl s_server did not start on %s\n", accept);
    return false;
}

static void tls_peer_stop(struct tls_peer *peer) {
    if (peer->pid <= 0) return;
    kill(peer->pid, SIGTERM);
    waitpid(peer->pid, NULL, 0);
    close(peer->stdin_fd);
    peer->pid = 0;
}

static void tls_peer_remove_log(struct tls_peer *peer) {
    if (peer->log_path[0]) unlink(peer->log_path);
}

#endif
