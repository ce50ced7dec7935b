/*
 * test_metrics_http.c: intaked's metrics endpoint under hostile use (issue 18, items 2 and 7),
 * against a real daemon.
 *
 *   truncated_region: members of the log group truncate topics' consumer regions and put
 *                     their size back, over and over, while /metrics is scraped 1,000 times.
 *                     Every scrape is answered 200, the daemon survives (no SIGBUS in the
 *                     metrics thread), and still acks records. (A race by nature: before the
 *                     fix, the daemon died within the first few hundred scrapes.)
 *   idle_flood:       2,000 idle connections to the metrics port, held open: 6 /healthz and
 *                     /readyz probes are each answered within the shipped liveness probe's 2 s
 *                     timeout, /metrics too, and producers are still acked. Then 3,000 more
 *                     from another address, past what one address may hold: the excess is
 *                     closed at once, and probes from elsewhere are still answered.
 * `test_metrics_http truncated_region` (or `idle_flood`) runs one alone, to check it against
 * an older build.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "daemon_util.h"
#include "harness.h"
#include "intake/consumer.h"
#include "intake/shm_log_format.h"
#include "raw_client.h"

static char directory[256];
static uint16_t metrics_port;

/* A TCP connection from `source` (NULL: any) to 127.0.0.1:port, within `timeout_ms`; -1. */
static int connect_from(const char *source, uint16_t port, int timeout_ms) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    if (source != NULL) {
        struct sockaddr_in local = {.sin_family = AF_INET};
        inet_pton(AF_INET, source, &local.sin_addr);
        if (bind(fd, (struct sockaddr *)&local, sizeof(local)) != 0) {
            close(fd);
            return -1;
        }
    }
    struct sockaddr_in address = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&address, sizeof(address)) != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    if (timeout_ms < 0) return fd; /* a flood connection: left to complete on its own */
    struct pollfd wait = {.fd = fd, .events = POLLOUT};
    int error = 0;
    socklen_t length = sizeof(error);
    if (poll(&wait, 1, timeout_ms) != 1 ||
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0 || error != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static uint64_t now_ms(void) {
    return intake_now_ns() / 1000000u;
}

/* GET `path` (HTTP/1.0: the server closes after answering) from `source`, all within
 * `timeout_ms`. Returns the status (0 when no whole answer came in time); the body's first
 * bytes go to `body` when given. */
static int http_get(const char *source, const char *path, int timeout_ms, char *body,
                    size_t body_capacity) {
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    int fd = connect_from(source, metrics_port, timeout_ms);
    if (fd < 0) return 0;
    char request[256];
    int length = snprintf(request, sizeof(request), "GET %s HTTP/1.0\r\nHost: test\r\n\r\n", path);
    if (send(fd, request, (size_t)length, MSG_NOSIGNAL) != length) {
        close(fd);
        return 0;
    }
    static char response[1 << 22];
    size_t received = 0;
    bool closed = false;
    while (!closed) {
        uint64_t now = now_ms();
        if (now >= deadline) break;
        struct pollfd wait = {.fd = fd, .events = POLLIN};
        if (poll(&wait, 1, (int)(deadline - now)) != 1) break;
        ssize_t got = recv(fd, response + received, sizeof(response) - 1 - received, 0);
        if (got < 0 && errno == EAGAIN) continue;
        if (got <= 0) closed = true;
        if (got > 0) received += (size_t)got;
        if (received == sizeof(response) - 1) break;
    }
    close(fd);
    response[received] = '\0';
    int status = 0;
    if (!closed || sscanf(response, "HTTP/1.%*d %d", &status) != 1) return 0;
    if (body != NULL) {
        const char *start = strstr(response, "\r\n\r\n");
        snprintf(body, body_capacity, "%s", start ? start + 4 : "");
    }
    return status;
}

static size_t daemon_descriptors(pid_t pid) {
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    DIR *fds = opendir(path);
    if (fds == NULL) return 0;
    size_t count = 0;
    while (readdir(fds) != NULL) count++;
    closedir(fds);
    return count;
}

static bool daemon_alive(const struct daemon *daemon) {
    int status = 0;
    return waitpid(daemon->pid, &status, WNOHANG) == 0;
}

/* Sends `count` records with sequences to `topic` on one connection; true when all are acked. */
static bool produce_acked(const struct daemon *daemon, const char *topic, uint32_t count) {
    static struct raw_ack_reader reader;
    memset(&reader, 0, sizeof(reader));
    reader.fd = raw_connect_port(daemon->port);
    for (uint32_t index = 0; index < count; index++)
        raw_send_record(reader.fd, topic, index, 32, index + 1);
    struct raw_ack last;
    bool final = raw_read_acks(&reader, count, 10000, &last);
    close(reader.fd);
    return !final && last.status == RAW_ACK_OK && last.sequence >= count;
}

static bool daemon_start_metrics(struct daemon *daemon, const char *name) {
    daemon_directory_make(directory, sizeof(directory), name);
    metrics_port = daemon_free_port();
    char metrics_listen[64];
    snprintf(metrics_listen, sizeof(metrics_listen), "127.0.0.1:%u", metrics_port);
    const char *flags[] = {
        "--metrics-listen",  metrics_listen, "--log-size", "1M",   "--max-frame", "64K",
        "--connections-max", "64",           "--backend",  "pbuf", NULL};
    return daemon_start(daemon, directory, flags);
}

/* Cuts each region to nothing and puts its size back, round and round, until killed. */
static void truncation_loop(char (*paths)[4096 + SHM_LOG_FILE_NAME_BYTES], int count) {
    for (;;) {
        for (int index = 0; index < count; index++) {
            (void)truncate(paths[index], 0);
            (void)truncate(paths[index], SHM_LOG_CONSUMERS_FILE_BYTES);
        }
    }
}

#define TRUNCATED_TOPICS  4
#define TRUNCATED_SCRAPES 1000

static void test_truncated_region(void) {
    struct daemon daemon;
    REQUIRE(daemon_start_metrics(&daemon, "metrics-truncate"));
    static char regions[TRUNCATED_TOPICS][4096 + SHM_LOG_FILE_NAME_BYTES];
    struct intake_consumer *consumers[TRUNCATED_TOPICS];
    for (int index = 0; index < TRUNCATED_TOPICS; index++) {
        char topic[32], name[SHM_LOG_FILE_NAME_BYTES];
        snprintf(topic, sizeof(topic), "scraped-%d", index);
        REQUIRE(produce_acked(&daemon, topic, 20));
        /* A consumer in a slot, so each scrape reads the region's slots. */
        struct intake_consumer_options options = {.start = INTAKE_CONSUMER_START_OLDEST};
        char why[INTAKE_CONSUMER_ERROR_BYTES];
        REQUIRE(intake_consumer_open(directory, topic, "lagging", &options, &consumers[index], why,
                                     sizeof(why)) == 0);
        intake_consumer_commit(consumers[index]);
        shm_log_consumers_file_name(topic, name);
        snprintf(regions[index], sizeof(regions[index]), "%s/%s", directory, name);
    }
    char body[4096];
    REQUIRE(http_get(NULL, "/metrics", 10000, body, sizeof(body)) == 200);
    /* Two group members at it, each on half of the regions. */
    pid_t truncators[2];
    for (int child = 0; child < 2; child++) {
        truncators[child] = fork();
        if (truncators[child] == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            truncation_loop(regions + child * (TRUNCATED_TOPICS / 2), TRUNCATED_TOPICS / 2);
        }
        REQUIRE(truncators[child] > 0);
    }
    int answered = 0;
    for (int scrape = 0; scrape < TRUNCATED_SCRAPES && daemon_alive(&daemon); scrape++)
        answered += http_get(NULL, "/metrics", 10000, body, sizeof(body)) == 200 &&
                    strstr(body, "intake_info") != NULL;
    for (int child = 0; child < 2; child++) {
        kill(truncators[child], SIGKILL);
        waitpid(truncators[child], NULL, 0);
    }
    CHECK(daemon_alive(&daemon));
    CHECK(answered == TRUNCATED_SCRAPES);
    fprintf(stderr, "truncated_region: %d of %d scrapes answered while regions were cut\n",
            answered, TRUNCATED_SCRAPES);
    CHECK(http_get(NULL, "/healthz", 10000, NULL, 0) == 200);
    CHECK(produce_acked(&daemon, "scraped-0", 10));
    for (int index = 0; index < TRUNCATED_TOPICS; index++) intake_consumer_close(consumers[index]);
    CHECK(daemon_stop(&daemon) == 0);
    daemon_directory_remove(directory);
}

/* Opens `count` connections from `source` and leaves them idle. */
static int flood_open(int *fds, int count, const char *source) {
    int opened = 0;
    for (int index = 0; index < count; index++) {
        fds[index] = connect_from(source, metrics_port, -1);
        opened += fds[index] >= 0;
    }
    return opened;
}

static void flood_close(int *fds, int count) {
    for (int index = 0; index < count; index++)
        if (fds[index] >= 0) close(fds[index]);
}

/* Probes as the kubelet would: a fresh connection each, answered within 2 s. */
static int probes_answered(const char *source) {
    static const char *const paths[6] = {"/healthz", "/readyz",  "/healthz",
                                         "/readyz",  "/healthz", "/readyz"};
    int answered = 0;
    for (int probe = 0; probe < 6; probe++)
        answered += http_get(source, paths[probe], 2000, NULL, 0) == 200;
    return answered;
}

static void test_idle_flood(void) {
    struct rlimit limit;
    REQUIRE(getrlimit(RLIMIT_NOFILE, &limit) == 0);
    if (limit.rlim_cur < 6000 && (limit.rlim_max == RLIM_INFINITY || limit.rlim_max >= 6000)) {
        limit.rlim_cur = 6000;
        REQUIRE(setrlimit(RLIMIT_NOFILE, &limit) == 0);
    }
    if (limit.rlim_cur < 6000) {
        fprintf(stderr, "idle_flood: skipped, RLIMIT_NOFILE %lu is below 6000\n",
                (unsigned long)limit.rlim_cur);
        return;
    }
    struct daemon daemon;
    REQUIRE(daemon_start_metrics(&daemon, "metrics-flood"));
    REQUIRE(produce_acked(&daemon, "flooded", 10));
    size_t descriptors_before = daemon_descriptors(daemon.pid);
    static int flood[2000];
    CHECK(flood_open(flood, 2000, "127.0.0.1") == 2000);
    /* Held by the daemon: its descriptors grow by the flood (bounded wait). */
    bool held = false;
    for (int attempt = 0; attempt < 500 && !held; attempt++) {
        held = daemon_descriptors(daemon.pid) >= descriptors_before + 1990;
        if (!held) usleep(10000);
    }
    CHECK(held);
    int answered = probes_answered("127.0.0.1");
    fprintf(stderr, "idle_flood: %d of 6 probes answered with 2,000 idle connections held\n",
            answered);
    CHECK(answered == 6);
    char body[256];
    CHECK(http_get("127.0.0.1", "/metrics", 10000, body, sizeof(body)) == 200);
    CHECK(produce_acked(&daemon, "flooded", 10));
    /* One address past its share: the excess is closed at once; other addresses get in. */
    static int more[3000];
    flood_open(more, 3000, "127.0.0.2");
    int refused = 0;
    for (int attempt = 0; attempt < 500; attempt++) {
        refused = 0;
        for (int index = 0; index < 3000; index++) {
            char byte;
            if (more[index] >= 0 && recv(more[index], &byte, 1, MSG_DONTWAIT) == 0) refused++;
        }
        if (refused >= 3000 - 2048) break;
        usleep(10000);
    }
    CHECK(refused >= 3000 - 2048);
    answered = probes_answered("127.0.0.3");
    fprintf(stderr, "idle_flood: %d of 6 probes answered with 5,000 connections offered\n",
            answered);
    CHECK(answered == 6);
    CHECK(produce_acked(&daemon, "flooded", 10));
    flood_close(flood, 2000);
    flood_close(more, 3000);
    CHECK(daemon_stop(&daemon) == 0);
    daemon_directory_remove(directory);
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    const char *only = argc > 1 ? argv[1] : NULL;
    if (only == NULL || strcmp(only, "truncated_region") == 0) test_truncated_region();
    if (only == NULL || strcmp(only, "idle_flood") == 0) test_idle_flood();
    return test_finish();
}
