/*
 * intake-stat: prints intaked's counters from another process, once or every N seconds (like
 * AeronStat or `nats top`). It maps the daemon's counters region read-only
 * (include/intake/counters_format.h) and looks at the topics' logs through the consumer
 * library's intake_log_inspect for positions and consumer lag; it never talks to the daemon and
 * never writes anything.
 *
 *   intake-stat [--shm-dir DIR | --counters PATH] [--interval SECONDS] [--count N]
 *               [--format text|prometheus]
 *   intake-stat [--shm-dir DIR | --counters PATH] --check live|ready
 *   intake-stat [--shm-dir DIR | --counters PATH] --wait-ready[=SECONDS] [--pid PID]
 *
 * --check is a probe without HTTP (an exec probe, a compose healthcheck): the same verdicts as
 * intaked's /healthz and /readyz, printed as one line.
 *
 * --wait-ready is what a test or script runs after starting intaked (counters_wait.h): it
 * waits until the daemon is ready and prints where it listens, one line per listener,
 * "listen=ADDR:PORT" and "tls_listen=ADDR:PORT" (the bound port: --listen ADDR:0 resolved).
 *
 * Exit: 0 after printing (--check, --wait-ready: healthy, ready); 1 when the region cannot be
 * read (--check: not healthy; --wait-ready: not ready in time, or intaked --pid exited, with one
 * line saying why); 2 for bad flags.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "counters_health.h"
#include "counters_render.h"
#include "counters_view.h"
#include "counters_wait.h"

static void usage(FILE *out) {
    fputs("usage: intake-stat [options]\n"
          "  --shm-dir DIR          intaked's --shm-dir (default /dev/shm/intake): reads\n"
          "                         DIR/intake.counters and the topics' logs in DIR\n"
          "  --counters PATH        the counters region, when intaked ran with --counters\n"
          "  --interval SECONDS     print every SECONDS (default: once)\n"
          "  --count N              with --interval, stop after N prints\n"
          "  --format text|prometheus  terminal text (default) or the /metrics exposition\n"
          "  --check live|ready     exit 0 when /healthz (live) or /readyz (ready) would say 200\n"
          "  --wait-ready[=SECONDS] wait until ready (30 s), then print listen=ADDR:PORT\n"
          "  --pid PID              with --wait-ready: the intaked to wait for\n",
          out);
}

static int parse_positive(const char *text, double *value) {
    char *end = NULL;
    errno = 0;
    double parsed = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !(parsed > 0)) return -EINVAL;
    *value = parsed;
    return 0;
}

/* --wait-ready: where it listens once ready, or one line saying why not. */
static int wait_ready(const char *path, pid_t pid, double seconds) {
    struct counters_view view;
    char why[512];
    if (counters_wait_ready(path, pid, (uint64_t)(seconds * 1e9), &view, why, sizeof(why)) < 0) {
        fprintf(stderr, "intake-stat: %s\n", why);
        return 1;
    }
    /* Final once ready (counters_format.h); bounded copies, as the region is not trusted. */
    const struct intake_counters_header *header = view.header;
    if (header->listen_port != 0)
        printf("listen=%.*s\n", (int)strnlen(header->listen, sizeof(header->listen)),
               header->listen);
    if (header->tls_listen_port != 0)
        printf("tls_listen=%.*s\n", (int)strnlen(header->tls_listen, sizeof(header->tls_listen)),
               header->tls_listen);
    counters_view_close(&view);
    return 0;
}

int main(int argc, char **argv) {
    static const struct option options[] = {
        {"shm-dir", required_argument, NULL, 'd'},  {"counters", required_argument, NULL, 'c'},
        {"interval", required_argument, NULL, 'i'}, {"count", required_argument, NULL, 'n'},
        {"format", required_argument, NULL, 'f'},   {"help", no_argument, NULL, 'h'},
        {"check", required_argument, NULL, 'k'},    {"wait-ready", optional_argument, NULL, 'w'},
        {"pid", required_argument, NULL, 'p'},      {NULL, 0, NULL, 0},
    };
    const char *directory = "/dev/shm/intake";
    const char *counters_path = NULL;
    double interval_seconds = 0;
    double count = 0;
    enum counters_render_format format = COUNTERS_RENDER_TEXT;
    const char *check = NULL;
    double wait_seconds = 0, pid = 0;
    int option;
    while ((option = getopt_long(argc, argv, "", options, NULL)) != -1) {
        bool bad = false;
        switch (option) {
        case 'd': directory = optarg; break;
        case 'c': counters_path = optarg; break;
        case 'i': bad = parse_positive(optarg, &interval_seconds) < 0; break;
        case 'n': bad = parse_positive(optarg, &count) < 0; break;
        case 'f':
            if (strcmp(optarg, "text") == 0)
                format = COUNTERS_RENDER_TEXT;
            else if (strcmp(optarg, "prometheus") == 0)
                format = COUNTERS_RENDER_PROMETHEUS;
            else
                bad = true;
            break;
        case 'k':
            check = optarg;
            bad = strcmp(optarg, "live") != 0 && strcmp(optarg, "ready") != 0;
            break;
        case 'w':
            wait_seconds = 30;
            bad = optarg && parse_positive(optarg, &wait_seconds) < 0;
            break;
        case 'p': bad = parse_positive(optarg, &pid) < 0 || pid != (double)(pid_t)pid; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
        if (bad) {
            fprintf(stderr, "intake-stat: bad value for --%s: \"%s\"\n",
                    option == 'i'   ? "interval"
                    : option == 'n' ? "count"
                    : option == 'k' ? "check"
                    : option == 'w' ? "wait-ready"
                    : option == 'p' ? "pid"
                                    : "format",
                    optarg);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    char path[4096];
    if (counters_path != NULL)
        snprintf(path, sizeof(path), "%s", counters_path);
    else
        snprintf(path, sizeof(path), "%s/%s", directory, INTAKE_COUNTERS_FILE_NAME);
    struct counters_view view;
    char why[512];
    if (wait_seconds > 0) return wait_ready(path, (pid_t)pid, wait_seconds);
    if (counters_view_open(path, &view, why, sizeof(why)) < 0) {
        fprintf(stderr, "intake-stat: %s (is intaked running with this --shm-dir?)\n", why);
        return 1;
    }
    if (check != NULL) {
        bool live = strcmp(check, "live") == 0;
        bool healthy = live ? counters_view_live(&view, intake_now_ns(), COUNTERS_VIEW_LIVE_NS, why,
                                                 sizeof(why))
                            : counters_view_ready(&view, intake_now_ns(), COUNTERS_VIEW_READY_NS,
                                                  why, sizeof(why));
        printf("intake-stat: %s: %s\n", check, healthy ? "yes" : why);
        counters_view_close(&view);
        return healthy ? 0 : 1;
    }
    /* Logs are read from the directory given here, which may be mounted elsewhere than where
     * the daemon sees it (another container). */
    const char *log_directory = counters_path != NULL ? NULL : directory;
    struct counters_renderer renderer;
    counters_renderer_open(&renderer, &view, log_directory);
    for (uint64_t printed = 0;; printed++) {
        size_t length = 0;
        char *text = counters_render_alloc(&renderer, &view, intake_now_ns(), format, &length);
        if (text == NULL) {
            fprintf(stderr, "intake-stat: out of memory rendering the counters\n");
            counters_renderer_close(&renderer);
            counters_view_close(&view);
            return 1;
        }
        if (interval_seconds > 0 && format == COUNTERS_RENDER_TEXT && printed > 0)
            fputs("\n", stdout);
        fwrite(text, 1, length, stdout);
        fflush(stdout);
        free(text);
        if (interval_seconds <= 0 || (count > 0 && (double)(printed + 1) >= count)) break;
        struct timespec pause = {
            (time_t)interval_seconds,
            (long)((interval_seconds - (double)(time_t)interval_seconds) * 1e9)};
        nanosleep(&pause, NULL);
    }
    counters_renderer_close(&renderer);
    counters_view_close(&view);
    return 0;
}
