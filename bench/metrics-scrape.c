/*
 * metrics-scrape: the load bench/metrics-cost puts on intaked's metrics endpoint.
 *
 *   metrics-scrape --port P [--host ADDR] --scrapers N [--interval-ms I] [--duration-s S |
 *                  --count C] [--path /metrics]
 *       N scrapers, one thread and one keep-alive connection each, every I ms (0: back to
 *       back); each scraper starts at its own fraction of the interval, as independent
 *       Prometheus servers would. Prints one line: scrapes, bytes, latency, failures.
 *   metrics-scrape --port P [--host ADDR] --idle N --probes K [--path /healthz]
 *       holds N idle connections open, then sends K probes, each on a fresh connection with a
 *       2 s timeout (the shipped liveness probe's). Prints one line: how many were answered
 *       and how long they took.
 *
 * It measures what the endpoint gives a client; the server's CPU is read by the script from
 * /proc (schedstat of intaked's metrics threads).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SCRAPERS_MAX     256
#define LATENCIES_MAX    (1u << 20)
#define PROBE_TIMEOUT_MS 2000
#define RESPONSE_BYTES   (64u << 20)

struct options {
    const char *host;
    uint16_t port;
    const char *path;
    uint32_t scrapers;
    uint32_t interval_ms;
    double duration_s;
    uint64_t count; /* per scraper */
    uint32_t idle;
    uint32_t probes;
};

struct scraper {
    const struct options *options;
    uint32_t index;
    pthread_t thread;
    uint64_t scrapes, failures, bytes;
    uint64_t *latencies_ns; /* [LATENCIES_MAX] */
    uint64_t latency_count;
    char *response; /* [RESPONSE_BYTES] */
};

static uint64_t now_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
}

static int connect_to(const struct options *options, int timeout_ms) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(options->port)};
    inet_pton(AF_INET, options->host, &address.sin_addr);
    if (connect(fd, (struct sockaddr *)&address, sizeof(address)) != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    if (timeout_ms < 0) return fd;
    struct pollfd wait = {.fd = fd, .events = POLLOUT};
    int error = 0;
    socklen_t length = sizeof(error);
    if (poll(&wait, 1, timeout_ms) != 1 ||
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0 || error != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* Reads until `have` bytes hold a whole response (headers, then Content-Length bytes), or the
 * deadline. Returns the response's length (its status in *status), 0 on failure. */
static size_t response_read(int fd, char *buffer, size_t capacity, uint64_t deadline_ns,
                            int *status) {
    size_t have = 0, whole = 0;
    while (whole == 0 || have < whole) {
        uint64_t now = now_ns();
        if (now >= deadline_ns || have == capacity - 1) return 0;
        struct pollfd wait = {.fd = fd, .events = POLLIN};
        if (poll(&wait, 1, (int)((deadline_ns - now) / 1000000u) + 1) != 1) continue;
        ssize_t got = recv(fd, buffer + have, capacity - 1 - have, 0);
        if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (got <= 0) return 0;
        have += (size_t)got;
        buffer[have] = '\0';
        if (whole != 0) continue;
        const char *end = strstr(buffer, "\r\n\r\n");
        if (end == NULL) continue;
        const char *field = strcasestr(buffer, "\r\nContent-Length:");
        if (field == NULL || field > end) return 0;
        whole = (size_t)(end + 4 - buffer) + strtoull(field + 17, NULL, 10);
        if (sscanf(buffer, "HTTP/1.%*d %d", status) != 1) return 0;
    }
    return whole;
}

static bool request_send(int fd, const char *path, bool keep_alive) {
    char request[512];
    int length = snprintf(request, sizeof(request), "GET %s HTTP/1.1\r\nHost: bench\r\n%s\r\n",
                          path, keep_alive ? "" : "Connection: close\r\n");
    for (int done = 0; done < length;) {
        ssize_t sent = send(fd, request + done, (size_t)(length - done), MSG_NOSIGNAL);
        if (sent < 0 && errno == EAGAIN) {
            struct pollfd wait = {.fd = fd, .events = POLLOUT};
            poll(&wait, 1, 1000);
            continue;
        }
        if (sent <= 0) return false;
        done += (int)sent;
    }
    return true;
}

static void *scraper_run(void *argument) {
    struct scraper *scraper = argument;
    const struct options *options = scraper->options;
    uint64_t interval_ns = (uint64_t)options->interval_ms * 1000000u;
    uint64_t start = now_ns();
    uint64_t end = options->count > 0 ? UINT64_MAX : start + (uint64_t)(options->duration_s * 1e9);
    /* Independent scrapers: each its own phase of the interval. */
    uint64_t next = start + interval_ns * scraper->index / options->scrapers;
    int fd = -1;
    while (now_ns() < end && (options->count == 0 || scraper->scrapes < options->count)) {
        if (interval_ns > 0) {
            uint64_t now = now_ns();
            if (now < next) {
                struct timespec pause = {(time_t)((next - now) / 1000000000u),
                                         (long)((next - now) % 1000000000u)};
                nanosleep(&pause, NULL);
            }
            next += interval_ns;
        }
        uint64_t began = now_ns();
        if (fd < 0) fd = connect_to(options, 10000);
        int status = 0;
        size_t length = fd >= 0 && request_send(fd, options->path, true)
                            ? response_read(fd, scraper->response, RESPONSE_BYTES,
                                            began + 10000000000ull, &status)
                            : 0;
        if (length == 0 || status != 200) {
            scraper->failures++;
            if (fd >= 0) close(fd);
            fd = -1;
            continue;
        }
        scraper->scrapes++;
        scraper->bytes += length;
        if (scraper->latency_count < LATENCIES_MAX)
            scraper->latencies_ns[scraper->latency_count++] = now_ns() - began;
    }
    if (fd >= 0) close(fd);
    return NULL;
}

static int compare_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double quantile_ms(uint64_t *values, uint64_t count, double q) {
    if (count == 0) return 0;
    uint64_t at = (uint64_t)(q * (double)(count - 1));
    return (double)values[at] / 1e6;
}

static int scrape(const struct options *options) {
    static struct scraper scrapers[SCRAPERS_MAX];
    uint64_t start = now_ns();
    for (uint32_t index = 0; index < options->scrapers; index++) {
        scrapers[index] = (struct scraper){.options = options, .index = index};
        scrapers[index].latencies_ns = malloc(LATENCIES_MAX * sizeof(uint64_t));
        scrapers[index].response = malloc(RESPONSE_BYTES);
        if (scrapers[index].latencies_ns == NULL || scrapers[index].response == NULL) return 1;
        pthread_create(&scrapers[index].thread, NULL, scraper_run, &scrapers[index]);
    }
    uint64_t scrapes = 0, failures = 0, bytes = 0, count = 0;
    static uint64_t latencies[LATENCIES_MAX];
    for (uint32_t index = 0; index < options->scrapers; index++) {
        pthread_join(scrapers[index].thread, NULL);
        scrapes += scrapers[index].scrapes;
        failures += scrapers[index].failures;
        bytes += scrapers[index].bytes;
        for (uint64_t at = 0; at < scrapers[index].latency_count && count < LATENCIES_MAX; at++)
            latencies[count++] = scrapers[index].latencies_ns[at];
    }
    double seconds = (double)(now_ns() - start) / 1e9;
    qsort(latencies, count, sizeof(latencies[0]), compare_u64);
    /* The scrapers' own CPU (receiving the bodies): on this machine it competes with ingest,
     * which a Prometheus elsewhere would not. */
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    double cpu_s = (double)usage.ru_utime.tv_sec + (double)usage.ru_utime.tv_usec / 1e6 +
                   (double)usage.ru_stime.tv_sec + (double)usage.ru_stime.tv_usec / 1e6;
    printf("scrape scrapers=%u interval_ms=%u scrapes=%llu failures=%llu bytes_per_scrape=%llu "
           "secs=%.3f scrapes_per_s=%.1f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f client_cpu_s=%.3f\n",
           options->scrapers, options->interval_ms, (unsigned long long)scrapes,
           (unsigned long long)failures, (unsigned long long)(scrapes ? bytes / scrapes : 0),
           seconds, seconds > 0 ? (double)scrapes / seconds : 0, quantile_ms(latencies, count, 0.5),
           quantile_ms(latencies, count, 0.99), quantile_ms(latencies, count, 1.0), cpu_s);
    return failures == 0 ? 0 : 1;
}

static int probe(const struct options *options) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < options->idle + 64) {
        limit.rlim_cur = limit.rlim_max == RLIM_INFINITY || limit.rlim_max > options->idle + 64
                             ? options->idle + 64
                             : limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
    }
    int *idle = malloc(options->idle * sizeof(int));
    uint32_t opened = 0;
    for (uint32_t index = 0; idle != NULL && index < options->idle; index++) {
        idle[index] = connect_to(options, -1);
        opened += idle[index] >= 0;
    }
    /* Let the connections complete and the server take them. */
    struct timespec settle = {1, 0};
    nanosleep(&settle, NULL);
    static char response[1 << 16];
    uint64_t latencies[1024];
    uint32_t answered = 0, count = 0;
    for (uint32_t index = 0; index < options->probes && index < 1024; index++) {
        uint64_t began = now_ns();
        uint64_t deadline = began + PROBE_TIMEOUT_MS * 1000000ull;
        int fd = connect_to(options, PROBE_TIMEOUT_MS);
        int status = 0;
        size_t length = 0;
        if (fd >= 0 && request_send(fd, options->path, false))
            length = response_read(fd, response, sizeof(response), deadline, &status);
        if (fd >= 0) close(fd);
        uint64_t took = now_ns() - began;
        latencies[count++] = took;
        answered += length > 0 && status == 200;
    }
    qsort(latencies, count, sizeof(latencies[0]), compare_u64);
    printf("probe idle=%u opened=%u probes=%u answered=%u timeout_ms=%u p50_ms=%.2f max_ms=%.2f\n",
           options->idle, opened, options->probes, answered, PROBE_TIMEOUT_MS,
           quantile_ms(latencies, count, 0.5), quantile_ms(latencies, count, 1.0));
    for (uint32_t index = 0; idle != NULL && index < options->idle; index++)
        if (idle[index] >= 0) close(idle[index]);
    free(idle);
    return answered == options->probes ? 0 : 1;
}

int main(int argc, char **argv) {
    struct options options = {.host = "127.0.0.1", .path = NULL, .scrapers = 1, .duration_s = 5};
    static const struct option long_options[] = {
        {"host", required_argument, NULL, 'h'},        {"port", required_argument, NULL, 'p'},
        {"path", required_argument, NULL, 'P'},        {"scrapers", required_argument, NULL, 's'},
        {"interval-ms", required_argument, NULL, 'i'}, {"duration-s", required_argument, NULL, 'd'},
        {"count", required_argument, NULL, 'c'},       {"idle", required_argument, NULL, 'I'},
        {"probes", required_argument, NULL, 'r'},      {NULL, 0, NULL, 0},
    };
    int option;
    while ((option = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
        switch (option) {
        case 'h': options.host = optarg; break;
        case 'p': options.port = (uint16_t)atoi(optarg); break;
        case 'P': options.path = optarg; break;
        case 's': options.scrapers = (uint32_t)atoi(optarg); break;
        case 'i': options.interval_ms = (uint32_t)atoi(optarg); break;
        case 'd': options.duration_s = atof(optarg); break;
        case 'c': options.count = strtoull(optarg, NULL, 10); break;
        case 'I': options.idle = (uint32_t)atoi(optarg); break;
        case 'r': options.probes = (uint32_t)atoi(optarg); break;
        default:
            fprintf(stderr, "metrics-scrape: see the comment at the top of the source\n");
            return 2;
        }
    }
    if (options.port == 0 || options.scrapers == 0 || options.scrapers > SCRAPERS_MAX) {
        fprintf(stderr, "metrics-scrape: --port P and 1..%u --scrapers are required\n",
                SCRAPERS_MAX);
        return 2;
    }
    if (options.probes > 0) {
        if (options.path == NULL) options.path = "/healthz";
        return probe(&options);
    }
    if (options.path == NULL) options.path = "/metrics";
    return scrape(&options);
}
