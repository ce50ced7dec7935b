/*
 * bench_socket.c: TCP for the bench's own clients (bench_socket.h): connect with Nagle off and
 * bounded timeouts, write whole buffers until the run's end. Any thread, on its own socket.
 */
#include "bench_socket.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common.h"

/* Writes all of bytes[0..length), giving up at the run's end (the socket has a send timeout, so
 * a stalled server cannot hold a producer past the deadline). */
int write_all(struct bench_run *run, int fd, const uint8_t *bytes, size_t length) {
    size_t done = 0;
    while (done < length) {
        ssize_t written = send(fd, bytes + done, length - done, MSG_NOSIGNAL);
        if (written > 0) {
            done += (size_t)written;
            continue;
        }
        if (written < 0 && errno == EINTR) continue;
        if (written < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (intake_now_ns() > run->deadline_ns + BENCH_DRAIN_TIMEOUT_NS) return -ETIMEDOUT;
            continue;
        }
        return written < 0 ? -errno : -EPIPE;
    }
    return 0;
}

static int set_socket_timeouts(int fd, uint32_t timeout_ms) {
    struct timeval timeout = {(time_t)(timeout_ms / 1000), (suseconds_t)(timeout_ms % 1000) * 1000};
    if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout) != 0) return -errno;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout) != 0) return -errno;
    return 0;
}

/* A TCP connection to host:port with Nagle off (batches are written whole; small open-loop
 * writes must not wait for an ACK) and 1 s socket timeouts so no call blocks for long. The
 * connect itself may take up to connect_timeout_ms (a SYN dropped by a full accept queue is
 * retransmitted after 1 s, so opening thousands of connections needs more than 1 s). */
int connect_tcp(const char *host, uint16_t port, uint32_t connect_timeout_ms, int *out_fd) {
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, host, &address.sin_addr) != 1) return -EINVAL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1;
    int result = 0;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) result = -errno;
    if (result == 0) result = set_socket_timeouts(fd, connect_timeout_ms);
    if (result == 0 && connect(fd, (struct sockaddr *)&address, sizeof address) != 0)
        result = -errno;
    if (result == 0) result = set_socket_timeouts(fd, 1000);
    if (result != 0) {
        close(fd);
        return result;
    }
    *out_fd = fd;
    return 0;
}
