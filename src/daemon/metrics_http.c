/*
 * metrics_http.c: /metrics, /healthz and /readyz over libmicrohttpd (see metrics_http.h).
 * Requests are answered on libmicrohttpd's pool of METRICS_HTTP_THREADS threads; renderings of
 * /metrics take turns under a mutex (one renderer and its cached log mappings), the probes
 * never wait for one.
 */
#include "metrics_http.h"

#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "address.h"
#include "counters_health.h"
#include "counters_render.h"
#include "counters_view.h"

struct metrics_http {
    struct MHD_Daemon *daemon;
    int listen_fd;
    struct counters_view view;
    pthread_mutex_t render_lock; /* one rendering at a time: the renderer is not shared */
    struct counters_renderer renderer;
};

/* Each of libmicrohttpd's threads lowers its own priority on its first request (Linux nices
 * threads one by one): scrapes and probes get the CPU the data path leaves. */
static _Thread_local bool thread_niced;

static void thread_nice(void) {
    if (thread_niced) return;
    thread_niced = true;
    pid_t thread = (pid_t)syscall(SYS_gettid);
    int current = getpriority(PRIO_PROCESS, (id_t)thread);
    if (current < METRICS_HTTP_NICE)
        (void)setpriority(PRIO_PROCESS, (id_t)thread, METRICS_HTTP_NICE);
}

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
    thread_nice();
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return respond_text(connection, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD");
    /* The first call comes with the headers; answering then makes libmicrohttpd close the
     * connection (the request might still have a body). Answered on the second call, once the
     * request is complete, the connection stays open for a scraper's next request. */
    static int headers_seen;
    if (*request_state == NULL) {
        *request_state = &headers_seen;
        return MHD_YES;
    }
    if (*upload_data_size != 0) {
        *upload_data_size = 0; /* a body nobody asked for: read and dropped */
        return MHD_YES;
    }
    uint64_t now = intake_now_ns();
    char why[160];
    if (strcmp(url, "/metrics") == 0) {
        size_t length = 0;
        pthread_mutex_lock(&server->render_lock);
        char *body = counters_render_alloc(&server->renderer, &server->view, now,
                                           COUNTERS_RENDER_PROMETHEUS, &length);
        pthread_mutex_unlock(&server->render_lock);
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
    if (bind(fd, (struct sockaddr *)&address, length) != 0 ||
        listen(fd, METRICS_HTTP_BACKLOG) != 0) {
        int error = errno;
        close(fd);
        intake_error_line(why, why_capacity, "cannot listen on --metrics-listen %s: %s",
                          listen_text, strerror(error));
        return -error;
    }
    return fd;
}

int metrics_http_start(const char *listen_text, const char *counters_path,
                       const char *log_directory, uint32_t connections_max,
                       struct metrics_http **out, char *why, size_t why_capacity) {
    INTAKE_ASSERT(connections_max >= METRICS_HTTP_CONNECTIONS_MIN);
    struct metrics_http *server = calloc(1, sizeof(*server));
    if (server == NULL) return -ENOMEM;
    pthread_mutex_init(&server->render_lock, NULL);
    int result = counters_view_open(counters_path, &server->view, why, why_capacity);
    if (result < 0) goto fail_view;
    counters_renderer_open(&server->renderer, &server->view, log_directory);
    server->listen_fd = metrics_http_listen(listen_text, why, why_capacity);
    if (server->listen_fd < 0) {
        result = server->listen_fd;
        goto fail_listen;
    }
    /* epoll in each of a small pool of threads: thousands of idle connections cost nothing
     * per event, and no rendering delays a probe. At most half the connections per source
     * address: one flooding client cannot take them all. */
    server->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC | MHD_USE_ERROR_LOG, 0, NULL,
        NULL, metrics_http_answer, server, MHD_OPTION_LISTEN_SOCKET, server->listen_fd,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)METRICS_HTTP_THREADS,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)connections_max,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)(connections_max / 2),
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)METRICS_HTTP_IDLE_SECONDS,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)METRICS_HTTP_CONNECTION_MEMORY_BYTES,
        MHD_OPTION_END);
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
    pthread_mutex_destroy(&server->render_lock);
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
    pthread_mutex_destroy(&server->render_lock);
    free(server);
}
