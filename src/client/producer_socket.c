/*
 * producer_socket.c: addresses, connects and error lines for the producer library. Runs on the
 * caller's thread. Owns nothing beyond the sockets it returns to its caller.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "intake.pb.h"
#include "producer_internal.h"

int producer_error(struct intake_producer *producer, int error, bool fatal, const char *format,
                   ...) {
    INTAKE_ASSERT(error < 0);
    va_list arguments;
    va_start(arguments, format);
    intake_error_vline(producer->error, sizeof(producer->error), format, arguments);
    va_end(arguments);
    if (fatal && producer->failed == 0) producer->failed = error;
    return error;
}

int64_t producer_remaining_ms(uint64_t deadline_ns) {
    uint64_t now = intake_now_ns();
    return now >= deadline_ns ? 0 : (int64_t)((deadline_ns - now) / 1000000u) + 1;
}

const char *producer_status_name(uint32_t status) {
    switch (status) {
    case intake_v1_Ack_Status_OK: return "OK";
    case intake_v1_Ack_Status_REJECTED: return "REJECTED";
    case intake_v1_Ack_Status_RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case intake_v1_Ack_Status_SHUTTING_DOWN: return "SHUTTING_DOWN";
    case intake_v1_Ack_Status_INTERNAL: return "INTERNAL";
    default: return "UNKNOWN_STATUS";
    }
}

/* Splits "host:port" / "[v6]:port" into host and port (copied into `host`). */
static int producer_split_address(const char *address, char *host, size_t host_capacity,
                                  const char **port) {
    const char *colon = strrchr(address, ':');
    if (colon == NULL || colon[1] == '\0') return -EINVAL;
    const char *host_start = address;
    size_t host_length = (size_t)(colon - address);
    if (host_length >= 2 && address[0] == '[' && colon[-1] == ']') {
        host_start++;
        host_length -= 2;
    }
    if (host_length == 0 || host_length >= host_capacity) return -EINVAL;
    memcpy(host, host_start, host_length);
    host[host_length] = '\0';
    *port = colon + 1;
    return 0;
}

static int producer_lookup(const char *address, struct addrinfo **infos, char *why,
                           size_t why_capacity) {
    char host[256];
    const char *port = NULL;
    if (producer_split_address(address, host, sizeof(host), &port) < 0) {
        snprintf(why, why_capacity, "bad address '%s' (expected HOST:PORT or [IPv6]:PORT)",
                 address);
        return -EINVAL;
    }
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int lookup = getaddrinfo(host, port, &hints, infos);
    if (lookup != 0) {
        snprintf(why, why_capacity, "resolve %s: %s", address, gai_strerror(lookup));
        return -EHOSTUNREACH;
    }
    return 0;
}

int producer_resolve(const char *address, struct sockaddr_storage *addresses, socklen_t *lengths,
                     uint32_t capacity, char *why, size_t why_capacity) {
    struct addrinfo *infos = NULL;
    int result = producer_lookup(address, &infos, why, why_capacity);
    if (result < 0) return result;
    uint32_t count = 0;
    for (const struct addrinfo *info = infos; info != NULL && count < capacity;
         info = info->ai_next) {
        if (info->ai_addrlen > sizeof(addresses[0])) continue;
        memcpy(&addresses[count], info->ai_addr, info->ai_addrlen);
        lengths[count] = info->ai_addrlen;
        count++;
    }
    freeaddrinfo(infos);
    if (count == 0) {
        snprintf(why, why_capacity, "resolve %s: no usable address", address);
        return -EHOSTUNREACH;
    }
    return (int)count;
}

/* We batch ourselves; a flush must go out now, not after Nagle's delay. */
static void producer_no_delay(int fd) {
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int producer_connect_start(const struct sockaddr_storage *address, socklen_t length,
                           bool *in_progress) {
    *in_progress = false;
    int fd = socket(address->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    if (connect(fd, (const struct sockaddr *)address, length) == 0) {
        producer_no_delay(fd);
        return fd;
    }
    int error = errno;
    if (error == EINPROGRESS) {
        *in_progress = true;
        return fd;
    }
    close(fd);
    return -error;
}

int producer_connect_result(int fd) {
    int socket_error = 0;
    socklen_t length = sizeof(socket_error);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &socket_error, &length) < 0) return -errno;
    if (socket_error != 0) return -socket_error;
    producer_no_delay(fd);
    return 0;
}

/* Non-blocking connect bounded by timeout_ms; returns the socket or a negative errno. */
static int producer_connect_one(const struct addrinfo *info, uint32_t timeout_ms) {
    bool in_progress = false;
    struct sockaddr_storage address;
    memcpy(&address, info->ai_addr, info->ai_addrlen);
    int fd = producer_connect_start(&address, info->ai_addrlen, &in_progress);
    if (fd < 0 || !in_progress) return fd;
    struct pollfd poll_fd = {fd, POLLOUT, 0};
    int ready = poll(&poll_fd, 1, (int)timeout_ms);
    int result = ready == 0 ? -ETIMEDOUT : ready < 0 ? -errno : producer_connect_result(fd);
    if (result < 0) {
        close(fd);
        return result;
    }
    return fd;
}

int producer_connect(const char *address, uint32_t timeout_ms, char *why, size_t why_capacity) {
    struct addrinfo *infos = NULL;
    int result = producer_lookup(address, &infos, why, why_capacity);
    if (result < 0) return result;
    result = -EHOSTUNREACH;
    for (const struct addrinfo *info = infos; info != NULL; info = info->ai_next) {
        if (info->ai_addrlen > sizeof(struct sockaddr_storage)) continue;
        result = producer_connect_one(info, timeout_ms);
        if (result >= 0) break;
    }
    freeaddrinfo(infos);
    if (result < 0) snprintf(why, why_capacity, "connect to %s: %s", address, strerror(-result));
    return result;
}
