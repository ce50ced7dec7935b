/*
 * producer_socket.c: addresses, connects, error lines, and a connection's bytes for the
 * producer library: through the socket, or through the producer's TLS session
 * (producer_tls.c) when it has one. Runs on the caller's thread. Owns nothing beyond the
 * sockets it returns to its caller.
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

int producer_address_host(const char *address, char *host, size_t host_capacity) {
    const char *port = NULL;
    return producer_split_address(address, host, host_capacity, &port);
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

/* --- a connection's bytes --- */

ssize_t producer_io_send(struct intake_producer *producer, const void *bytes, size_t length) {
    INTAKE_ASSERT(producer->fd >= 0);
    if (producer->tls.session != NULL) return producer_tls_write(&producer->tls, bytes, length);
    for (;;) {
        /* MSG_NOSIGNAL: a closed connection is an error we return, not a SIGPIPE. */
        ssize_t sent = send(producer->fd, bytes, length, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (sent >= 0) return sent;
        if (errno == EINTR) continue;
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

ssize_t producer_io_sendv(struct intake_producer *producer, const struct iovec *iov, int count) {
    INTAKE_ASSERT(producer->fd >= 0);
    INTAKE_ASSERT(count >= 1);
    /* TLS: one record from the first iovec; the caller's loop comes back for the rest. */
    if (producer->tls.session != NULL)
        return producer_tls_write(&producer->tls, iov[0].iov_base, iov[0].iov_len);
    struct msghdr message = {0};
    message.msg_iov = (struct iovec *)iov;
    message.msg_iovlen = (size_t)count;
    for (;;) {
        ssize_t sent = sendmsg(producer->fd, &message, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (sent >= 0) return sent;
        if (errno == EINTR) continue;
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

ssize_t producer_io_receive(struct intake_producer *producer, void *buffer, size_t capacity) {
    INTAKE_ASSERT(producer->fd >= 0);
    if (producer->tls.session != NULL) return producer_tls_read(&producer->tls, buffer, capacity);
    for (;;) {
        ssize_t received = recv(producer->fd, buffer, capacity, MSG_DONTWAIT);
        if (received >= 0) return received;
        if (errno == EINTR) continue;
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

const char *producer_io_error_text(const struct intake_producer *producer, int error) {
    INTAKE_ASSERT(error < 0);
    if (producer->tls.reason_error == error && producer->tls.reason[0] != '\0')
        return producer->tls.reason;
    return strerror(-error);
}

int producer_tls_handshake_blocking(struct intake_producer *producer, char *why,
                                    size_t why_capacity) {
    struct producer_tls *tls = &producer->tls;
    int result = producer_tls_begin(tls, producer->fd);
    uint64_t deadline_ns = intake_now_ns() + (uint64_t)producer->io_timeout_ms * 1000000u;
    while (result == 0 && (result = producer_tls_handshake(tls)) == -EAGAIN) {
        struct pollfd poll_fd = {producer->fd, tls->handshake_wants_write ? POLLOUT : POLLIN, 0};
        int ready = poll(&poll_fd, 1, (int)producer_remaining_ms(deadline_ns));
        if (ready < 0 && errno != EINTR) result = -errno;
        if (ready == 0) {
            snprintf(why, why_capacity, "TLS handshake with %s: no answer within %u ms",
                     producer->address_text, producer->io_timeout_ms);
            return -ETIMEDOUT;
        }
        if (result == -EAGAIN) result = 0;
    }
    if (result < 0)
        snprintf(why, why_capacity, "%s: %s", producer->address_text,
                 producer_io_error_text(producer, result));
    return result;
}
