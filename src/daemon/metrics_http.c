/*
 * metrics_http.c: /metrics, /healthz and /readyz over libmicrohttpd (see metrics_http.h).
 * Requests are answered on libmicrohttpd's internal polling thread, one at a time.
 */
#include "metrics_http.h"

#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "address.h"
#include "counters_health.h"
#include "counters_render.h"
#include "counters_view.h"

struct metrics_http {
    struct MHD_Daemon *daemon;
    int listen_fd;
    struct counters_view view;
    struct counters_renderer renderer;
};

static enum MHD_Result respond(struct MHD_Connection *connection, unsigned int status,
                               const char *content_type, char *body, size_t length,
                               enum MHD_ResponseMemoryMode mode) {
    struct MHD_Response *response = MHD_create_response_from_buffer(length, body, mode);
    if (response == NULL) {
        if (mode == MHD_RESPMEM_MUST_FREE) free(body);
        return MHD_NO;
    }
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result result = MHD_queue_response(connection, status, response);
    MHD_destroy_response(response);
    return result;
}

static enum MHD_Result respond_text(struct MHD_Connection *connection, unsigned int status,
                                    const char *text) {
    char line[256];
    int length = snprintf(line, sizeof(line), "%s\n", text);
    if (length < 0) length = 0;
    if ((size_t)length >= sizeof(line)) length = sizeof(line) - 1;
    return respond(connection, status, "text/plain; charset=utf-8", line, (size_t)length,
                   MHD_RESPMEM_MUST_COPY);
}

static enum MHD_Result metrics_http_answer(void *context, struct MHD_Connection *connection,
                                           const char *url, const char *method, const char *version,
                                           const char *upload_data, size_t *upload_data_size,
                                           void **request_state) {
    struct metrics_http *server = context;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return respond_text(connection, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD");
    /* A GET carries no body: answer on the first call. */
    uint64_t now = intake_now_ns();
    char why[160];
    if (strcmp(url, "/metrics") == 0) {
        size_t length = 0;
        char *body = counters_render_alloc(&server->renderer, &server->view, now,
                                           COUNTERS_RENDER_PROMETHEUS, &length);
        if (body == NULL)
            return respond_text(connection, MHD_HTTP_INTERNAL_SERVER_ERROR,
                                "metrics rendering ran out of memory");
        return respond(connection, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body,
                       length, MHD_RESPMEM_MUST_FREE);
    }
    if (strcmp(url, "/healthz") == 0) {
        bool live = counters_view_live(&server->view, now, COUNTERS_VIEW_LIVE_NS, why, sizeof(why));
        return respond_text(connection, live ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
                            live ? "ok" : why);
    }
    if (strcmp(url, "/readyz") == 0) {
        bool ready =
            counters_view_ready(&server->view, now, COUNTERS_VIEW_READY_NS, why, sizeof(why));
        return respond_text(connection, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
                            ready ? "ready" : why);
    }
    return respond_text(connection, MHD_HTTP_NOT_FOUND,
                        "not found: try /metrics, /healthz, /readyz");
}

static int metrics_http_listen(const char *listen_text, char *why, size_t why_capacity) {
    struct sockaddr_storage address;
    socklen_t length = 0;
    int result =
        intake_address_parse("--metrics-listen", listen_text, &address, &length, why, why_capacity);
    if (result < 0) return result;
    int fd = socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int error = errno;
        intake_error_line(why, why_capacity, "--metrics-listen: socket: %s", strerror(error));
        return -error;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&address, length) != 0 || listen(fd, 64) != 0) {
        int error = errno;
        close(fd);
        intake_error_line(why, why_capacity, "cannot listen on --metrics-listen %s: %s",
                          listen_text, strerror(error));
        return -error;
    }
    return fd;
}

int metrics_http_start(const char *listen_text, const char *counters_path,
                       const char *log_directory, struct metrics_http **out, char *why,
                       size_t why_capacity) {
    struct metrics_http *server = calloc(1, sizeof(*server));
    if (server == NULL) return -ENOMEM;
    int result = counters_view_open(counters_path, &server->view, why, why_capacity);
    if (result < 0) goto fail_view;
    counters_renderer_open(&server->renderer, &server->view, log_directory);
    server->listen_fd = metrics_http_listen(listen_text, why, why_capacity);
    if (server->listen_fd < 0) {
        result = server->listen_fd;
        goto fail_listen;
    }
    server->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ITC | MHD_USE_ERROR_LOG, 0, NULL,
        NULL, metrics_http_answer, server, MHD_OPTION_LISTEN_SOCKET, server->listen_fd,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)METRICS_HTTP_CONNECTIONS_MAX,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)METRICS_HTTP_IDLE_SECONDS, MHD_OPTION_END);
    if (server->daemon == NULL) {
        intake_error_line(why, why_capacity, "--metrics-listen %s: libmicrohttpd did not start",
                          listen_text);
        result = -EIO;
        close(server->listen_fd);
        goto fail_listen;
    }
    *out = server;
    return 0;
fail_listen:
    counters_renderer_close(&server->renderer);
    counters_view_close(&server->view);
fail_view:
    free(server);
    return result;
}

void metrics_http_stop(struct metrics_http *server) {
    if (server == NULL) return;
    /* Quiesced first, the listening socket stays ours (MHD_stop_daemon would otherwise close
     * it too); it is closed once the server thread is gone. */
    MHD_quiesce_daemon(server->daemon);
    MHD_stop_daemon(server->daemon);
    close(server->listen_fd);
    counters_renderer_close(&server->renderer);
    counters_view_close(&server->view);
    free(server);
}
