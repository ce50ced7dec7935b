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
 * line saying why); 2 for bad flags (one line naming the flag, cli.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
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
          "  --interval SECONDS     print every SECONDS (default: once; 0.5, or with a unit:\n"
          "                         250ms, 1m)\n"
          "  --count N              with --interval, stop after N prints\n"
          "  --format text|prometheus  terminal text (default) or the /metrics exposition\n"
          "  --check live|ready     exit 0 when /healthz (live) or /readyz (ready) would say 200\n"
          "  --wait-ready[=SECONDS] wait until ready (30 s), then print listen=ADDR:PORT\n"
          "  --pid PID              with --wait-ready: the intaked to wait for\n"
          "  --help, --version\n",
          out);
}

enum stat_check { STAT_CHECK_NONE, STAT_CHECK_LIVE, STAT_CHECK_READY };

/* What the command line asks for. */
struct stat_options {
    const char *directory;
    const char *counters_path;
    uint64_t interval_ns; /* 0: print once */
    uint64_t count;       /* with an interval, prints at most; 0: no limit */
    int format;           /* enum counters_render_format */
    int check;            /* enum stat_check */
    uint64_t wait_ns;     /* --wait-ready: how long; 0: not asked */
    uint64_t pid;         /* --pid: the intaked to wait for; 0: any */
};

/* One line per flag; a new flag is a line here and a case in stat_apply. */
static const struct option stat_option_table[] = {
    {"shm-dir", required_argument, NULL, 'd'},
    {"counters", required_argument, NULL, 'c'},
    {"interval", required_argument, NULL, 'i'},
    {"count", required_argument, NULL, 'n'},
    {"format", required_argument, NULL, 'f'},
    {"check", required_argument, NULL, 'k'},
    {"wait-ready", optional_argument, NULL, 'w'},
    {"pid", required_argument, NULL, 'p'},
    CLI_STANDARD_OPTIONS,
    {NULL, 0, NULL, 0},
};

/* --interval: seconds (fractions and units allowed), from 1 ms to a day. */
static const struct number_spec stat_interval_spec = {
    .kind = NUMBER_DURATION,
    .minimum = NUMBER_MS,
    .maximum = 24 * NUMBER_HOURS,
    .unit_ns = NUMBER_SECONDS,
};

/* --wait-ready[=SECONDS]: fractions and units allowed, up to an hour; 30 s when bare. */
static const struct number_spec stat_wait_spec = {
    .kind = NUMBER_DURATION,
    .minimum = NUMBER_MS,
    .maximum = NUMBER_HOURS,
    .unit_ns = NUMBER_SECONDS,
};

static const struct cli_word stat_formats[] = {{"text", COUNTERS_RENDER_TEXT},
                                               {"prometheus", COUNTERS_RENDER_PROMETHEUS}};
static const struct cli_word stat_checks[] = {{"live", STAT_CHECK_LIVE},
                                              {"ready", STAT_CHECK_READY}};

/* Applies one option (cli_apply_fn); 0, or -1 with the refusal in cli->why. */
static int stat_apply(struct cli *cli, int option, void *context) {
    struct stat_options *options = context;
    switch (option) {
    case 'd': options->directory = optarg; return 0;
    case 'c': options->counters_path = optarg; return 0;
    case 'i': return cli_number(cli, &stat_interval_spec, &options->interval_ns);
    case 'n': return cli_number(cli, &NUMBER_COUNT_SPEC(1, UINT64_MAX), &options->count);
    case 'f': return cli_choose(cli, stat_formats, 2, &options->format);
    case 'k': return cli_choose(cli, stat_checks, 2, &options->check);
    case 'w':
        options->wait_ns = 30 * NUMBER_SECONDS;
        return optarg == NULL ? 0 : cli_number(cli, &stat_wait_spec, &options->wait_ns);
    case 'p': return cli_number(cli, &NUMBER_COUNT_SPEC(1, INT32_MAX), &options->pid);
    default: INTAKE_ASSERT(!"an option without a case"); return -1;
    }
}

/* --wait-ready: where it listens once ready, or one line saying why not. */
static int wait_ready(const char *path, pid_t pid, uint64_t wait_ns) {
    struct counters_view view;
    char why[512];
    if (counters_wait_ready(path, pid, wait_ns, &view, why, sizeof(why)) < 0) {
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
    struct stat_options options = {.directory = "/dev/shm/intake", .format = COUNTERS_RENDER_TEXT};
    struct cli cli;
    cli_start(&cli, "intake-stat", stat_option_table, usage);
    int exit_now = cli_parse(&cli, argc, argv, stat_apply, &options);
    if (exit_now >= 0) return exit_now;
    const char *directory = options.directory;
    const char *counters_path = options.counters_path;
    enum counters_render_format format = (enum counters_render_format)options.format;
    char path[4096];
    if (counters_path != NULL)
        snprintf(path, sizeof(path), "%s", counters_path);
    else
        snprintf(path, sizeof(path), "%s/%s", directory, INTAKE_COUNTERS_FILE_NAME);
    struct counters_view view;
    char why[512];
    if (options.wait_ns > 0) return wait_ready(path, (pid_t)options.pid, options.wait_ns);
    if (counters_view_open(path, &view, why, sizeof(why)) < 0) {
        fprintf(stderr, "intake-stat: %s (is intaked running with this --shm-dir?)\n", why);
        return 1;
    }
    if (options.check != STAT_CHECK_NONE) {
        bool live = options.check == STAT_CHECK_LIVE;
        bool healthy = live ? counters_view_live(&view, intake_now_ns(), COUNTERS_VIEW_LIVE_NS, why,
                                                 sizeof(why))
                            : counters_view_ready(&view, intake_now_ns(), COUNTERS_VIEW_READY_NS,
                                                  why, sizeof(why));
        printf("intake-stat: %s: %s\n", live ? "live" : "ready", healthy ? "yes" : why);
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
        if (options.interval_ns > 0 && format == COUNTERS_RENDER_TEXT && printed > 0)
            fputs("\n", stdout);
        fwrite(text, 1, length, stdout);
        fflush(stdout);
        free(text);
        if (options.interval_ns == 0 || (options.count > 0 && printed + 1 >= options.count)) break;
        struct timespec pause = {(time_t)(options.interval_ns / NUMBER_SECONDS),
                                 (long)(options.interval_ns % NUMBER_SECONDS)};
        nanosleep(&pause, NULL);
    }
    counters_renderer_close(&renderer);
    counters_view_close(&view);
    return 0;
}
