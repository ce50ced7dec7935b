/*
 * bench_idle.c: --idle-connections (bench_idle.h): open N connections and hold them, so
 * bench/run can read the server's memory per idle connection. Main thread only.
 */
#include "bench_idle.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_load.h"
#include "bench_socket.h"
#include "bench_time.h"
#include "common.h"

/* Raises the open-file limit (soft and, as root, hard) to fit `needed` descriptors. */
static int raise_open_file_limit(uint64_t needed) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return -errno;
    if (limit.rlim_cur >= needed) return 0;
    if (limit.rlim_max < needed) limit.rlim_max = needed;
    limit.rlim_cur = needed;
    return setrlimit(RLIMIT_NOFILE, &limit) == 0 ? 0 : -errno;
}

/* Opens --idle-connections connections (NATS ones say CONNECT, so the server keeps them), prints
 * "idle ... ready", holds them for --hold-s seconds, then closes them. */
int run_idle_connections(const struct bench_options *options) {
    uint32_t count = options->idle_connections;
    int result = raise_open_file_limit((uint64_t)count + 256);
    if (result != 0) {
        fprintf(stderr, "intake-bench: cannot raise the open-file limit to %u: %s\n", count + 256,
                strerror(-result));
        return 1;
    }
    int *fds = malloc(sizeof(int) * count);
    if (!fds) return 1;
    static const char nats_hello[] = "CONNECT {\"verbose\":false,\"pedantic\":false}\r\nPING\r\n";
    uint32_t opened = 0;
    uint64_t start_ns = intake_now_ns();
    for (; opened < count; opened++) {
        result = connect_tcp(options->host, options->port, 30000, &fds[opened]);
        if (result == 0 && options->target == TARGET_NATS &&
            send(fds[opened], nats_hello, sizeof nats_hello - 1, MSG_NOSIGNAL) < 0)
            result = -errno;
        if (result != 0) break;
    }
    double connect_s = (double)(intake_now_ns() - start_ns) / 1e9;
    printf("idle target=%s connections=%u opened=%u connect_secs=%.2f ready\n",
           target_name(options->target), count, opened, connect_s);
    fflush(stdout);
    if (result == 0)
        sleep_ns((uint64_t)(options->hold_s * 1e9));
    else
        fprintf(stderr, "intake-bench: connection %u: %s\n", opened, strerror(-result));
    for (uint32_t index = 0; index < opened; index++) close(fds[index]);
    free(fds);
    printf("result target=%s mode=idle conns=%u opened=%u\n", target_name(options->target), count,
           opened);
    return result == 0 ? 0 : 1;
}
