/*
 * intaked: the intake daemon. Parses flags, starts the pipeline (reactors, workers, topic logs,
 * TLS handshake threads), then waits for signals on the main thread:
 *   SIGTERM, SIGINT: stop accepting, finish what was received, print counters, exit 0;
 *   SIGHUP: reload (pipeline_reload: the TLS certificate, key and client CA, then the --acl
 *   file): one line saying what was reloaded, or why not (the old configuration of that part
 *   then stays); connections keep going;
 *   SIGUSR1: every reactor and worker prints its counters.
 * Startup errors (bad flags, port in use, kernel lacking a needed io_uring feature) print one
 * line and exit non-zero: 2 for usage, 1 for everything else.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "metrics_http.h"
#include "pipeline.h"
#include "preflight.h"
#include "record.h"

static void report_started(struct pipeline *pipeline) {
    const struct pipeline_config *config = &pipeline->config;
    /* One line per step of auto's fallback chain, each saying why. */
    for (const char *line = pipeline_fallback_lines(pipeline); *line != '\0';) {
        const char *end = strchr(line, '\n');
        int length = end ? (int)(end - line) : (int)strlen(line);
        fprintf(stderr, "intaked: backend auto: %.*s\n", length, line);
        line += length + (end ? 1 : 0);
    }
    uint32_t frame_bytes_max = pipeline_frame_bytes_max(pipeline);
    if (frame_bytes_max < config->frame_bytes_max)
        fprintf(stderr,
                "intaked: --max-frame %u lowered to %u: the backend's fixed-size receive "
                "fragments hold no more in %u slices (raise --zcrx-rx-buf where the kernel "
                "allows)\n",
                config->frame_bytes_max, frame_bytes_max, RECORD_SLICES_MAX);
    uint32_t tls_frame_bytes_max = pipeline_tls_frame_bytes_max(pipeline);
    if (config->tls_listen_set && tls_frame_bytes_max < frame_bytes_max)
        fprintf(stderr,
                "intaked: TLS connections take records of at most %u bytes (not %u): every TLS "
                "record cuts a record's bytes once more, and a record must fit in %u slices of "
                "%s's receive units\n",
                tls_frame_bytes_max, frame_bytes_max, RECORD_SLICES_MAX,
                pipeline_backend_name(pipeline));
    if (config->tls_listen_set)
        fprintf(stderr,
                "intaked: TLS 1.3 on %s (certificate %s%s%s), handshakes on %u thread(s), at most "
                "%u at once per reactor, within %llu ms\n",
                config->tls_listen_text, config->tls_certificate_path,
                config->tls_client_ca_path ? "; client certificates required, CA " : "",
                config->tls_client_ca_path ? config->tls_client_ca_path : "",
                config->handshake_threads, config->handshakes_max,
                (unsigned long long)(config->handshake_timeout_ns / 1000000u));
    char acl_line[512];
    pipeline_describe_acl(pipeline, acl_line, sizeof(acl_line));
    fprintf(stderr, "intaked: %s\n", acl_line);
    /* Everything above is up; the port is the bound one (--listen ADDR:0 resolved). Tests and
     * scripts wait for readiness in the counters region, not for this line. */
    fprintf(stderr,
            "intaked: listening on %s%s%s, backend %s (asked %s), %u reactor(s), %u worker(s), "
            "logs in %s, max frame %u bytes\n",
            config->listen_none ? "" : config->listen_text,
            config->listen_none ? "" : (config->tls_listen_set ? " and " : ""),
            config->tls_listen_set ? config->tls_listen_text : "", pipeline_backend_name(pipeline),
            config->backend_name, config->reactor_count, config->worker_count,
            config->shm_directory, frame_bytes_max);
}

int main(int argc, char **argv) {
    struct pipeline_config config;
    char why[512] = "";
    switch (config_parse(argc, argv, &config, why, sizeof(why))) {
    case CONFIG_DONE: return 0;
    case CONFIG_ERROR: fprintf(stderr, "intaked: %s\n", why); return 2;
    case CONFIG_OK: break;
    }
    /* Every thread inherits this mask; only the main thread takes the signals, in sigwait. */
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGHUP);
    sigaddset(&signals, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* One line naming cause and fix for what the environment gets wrong (seccomp, sysctl,
     * limits, shm space), before any thread starts. What it adjusted or warns about is shown
     * once the daemon is up, so a failed startup still prints exactly one line. */
    static char preflight_notes[4096];
    FILE *notes = fmemopen(preflight_notes, sizeof(preflight_notes), "w");
    int preflight = preflight_run(&config, notes ? notes : stderr, why, sizeof(why));
    if (notes != NULL) fclose(notes);
    if (preflight < 0) {
        fprintf(stderr, "intaked: %s\n", why);
        return 1;
    }
    static struct pipeline pipeline;
    if (pipeline_start(&pipeline, &config, why, sizeof(why)) < 0) {
        fprintf(stderr, "intaked: %s\n", why);
        return 1;
    }
    /* /metrics, /healthz, /readyz: libmicrohttpd's own threads read the counters region. */
    struct metrics_http *metrics = NULL;
    if (config.metrics_listen != NULL) {
        char counters_path[4096];
        pipeline_counters_path(&config, counters_path, sizeof(counters_path));
        if (metrics_http_start(config.metrics_listen, counters_path, config.shm_directory,
                               config.metrics_connections_max, &metrics, why, sizeof(why)) < 0) {
            fprintf(stderr, "intaked: %s\n", why);
            pipeline_stop(&pipeline);
            pipeline_destroy(&pipeline);
            return 1;
        }
    }
    fputs(preflight_notes, stderr);
    report_started(&pipeline);
    if (config.metrics_listen != NULL)
        fprintf(stderr, "intaked: metrics on http://%s/metrics (and /healthz, /readyz)\n",
                config.metrics_listen);
    /* Ready (the counters region's state, what intake-stat --wait-ready waits for) only now,
     * after every line above: a reader that saw it finds them in the log. */
    pipeline_mark_running(&pipeline);
    int signal_number = 0;
    for (;;) {
        if (sigwait(&signals, &signal_number) != 0) continue;
        if (signal_number == SIGUSR1) {
            pipeline_request_report(&pipeline);
        } else if (signal_number == SIGHUP) {
            /* One line either way; a failed reload changes nothing. */
            char reason[512] = "";
            if (pipeline_reload(&pipeline, reason, sizeof(reason)) < 0)
                fprintf(stderr,
                        "intaked: SIGHUP: reload failed, keeping the old configuration: "
                        "%s\n",
                        reason);
            else
                fprintf(stderr, "intaked: SIGHUP: %s\n", reason);
        } else {
            break;
        }
    }
    fprintf(stderr, "intaked: %s: stopping: no new connections; finishing what was received\n",
            strsignal(signal_number));
    pipeline_stop(&pipeline);
    metrics_http_stop(metrics);
    pipeline_report(&pipeline, "at shutdown");
    bool units_returned = pipeline_all_units_returned(&pipeline);
    fprintf(stderr, "intaked: stopped; receive units all returned: %s\n",
            units_returned ? "yes" : "NO");
    pipeline_destroy(&pipeline);
    return units_returned ? 0 : 1;
}
