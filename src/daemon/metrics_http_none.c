/*
 * metrics_http_none.c: the metrics endpoint of a build without libmicrohttpd
 * (-DINTAKE_METRICS_HTTP=OFF, the default of static builds: Debian ships no static p11-kit or
 * libunistring for libmicrohttpd's TLS dependencies). --metrics-listen is refused with one line;
 * the counters region, and so intake-stat, work as in every build.
 */
#include "metrics_http.h"

#include <errno.h>

int metrics_http_start(const char *listen_text, const char *counters_path,
                       const char *log_directory, uint32_t connections_max,
                       struct metrics_http **out, char *why, size_t why_capacity) {
    INTAKE_ASSERT(listen_text != NULL);
    INTAKE_ASSERT(out != NULL);
    (void)counters_path;
    (void)log_directory;
    (void)connections_max;
    *out = NULL;
    intake_error_line(why, why_capacity,
                      "--metrics-listen %s: this intaked was built without the HTTP endpoint "
                      "(INTAKE_METRICS_HTTP=OFF); read the counters with intake-stat",
                      listen_text);
    return -ENOTSUP;
}

void metrics_http_stop(struct metrics_http *server) {
    INTAKE_ASSERT(server == NULL);
}
