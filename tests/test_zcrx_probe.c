/*
 * test_zcrx_probe: the zcrx backend on whatever kernel runs it.
 *
 * Always: probes RECV_ZC, checks that a ring without 32-byte CQEs is refused with a clear line,
 * then tries a device-less registration (ZCRX_REG_NODEV) through rx_backend_create.
 *   - Refused (kernels before 7.x, such as the hosts' 6.18): checks the refusal is clean (a
 *     "zcrx: " line, no backend, no mapping left behind, the ring still works, a second attempt
 *     fails the same way) and ends as skipped (test_skip: "skipped: <why>", exit 77, which
 *     ctest shows as skipped, not passed).
 *   - Accepted (the VM of tests/vm/run): goes end to end over a loopback TCP pair: a sender thread
 *     writes ZCRX_TEST_BYTES (default 64 MiB) of a known pattern; the receive loop uses only the
 *     backend's arm/parse/unref/flush, holds a window of chunks before giving them back (as
 *     workers would), re-arms after ENOSPC/ENOMEM, verifies every byte and prints
 *     "zcrx-e2e: PASS bytes=<n> records=<n> ..." with the counters. Then a pressure phase on a
 *     second ring with a 32-buffer area, a 16-entry CQ and a hold window larger than the area:
 *     the multishot must end with -ENOMEM (and maybe -ENOSPC), be re-armed after the chunks go
 *     back, and still deliver every byte in order.
 * Single-threaded apart from the sender.
 *
 * intake-test: no-tsan (on the hosts the kernel refuses device-less zcrx and it skips; tests/vm runs it end to end)
 */
#include "harness.h"

#include "rx_backend.h"
#include "rx_zcrx.h"
#include "zcrx_uapi.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define TEST_QUEUE_ENTRIES  256
#define TEST_CQ_ENTRIES     8192
#define TEST_AREA_BYTES     (8u << 20)
#define TEST_REFILL_ENTRIES 4096
/* Asked for; device-less mode refuses it, which exercises the fallback. */
#define TEST_RX_BUFFER_BYTES         16384
#define TEST_HOLD_MAX                256 /* chunks held back before their reference is dropped */
#define TEST_PRESSURE_AREA_BYTES     (32u * 4096u)
#define TEST_PRESSURE_REFILL_ENTRIES 64
#define TEST_PRESSURE_CQ_ENTRIES     16
#define TEST_PRESSURE_BYTES          (8ull << 20)
#define TEST_IDLE_TIMEOUT_MS         20000
#define TEST_USER_DATA               0x7a637278u

/* rx_backend.c names the provided-buffer backend, which lives in another module; this program
 * links only zcrx. A weak stand-in keeps the link working until (and after) rx_pbuf.c exists. */
__attribute__((weak)) int rx_pbuf_create(const struct rx_backend_config *config,
                                         struct io_uring *ring, struct rx_backend **out, char *why,
                                         size_t why_capacity) {
    (void)config, (void)ring, (void)out;
    snprintf(why, why_capacity, "pbuf backend not linked into this test");
    return -ENOSYS;
}

static uint8_t pattern_byte(uint64_t position) {
    uint64_t mixed = position * 0x9E3779B97F4A7C15ull;
    return (uint8_t)(mixed >> 56) ^ (uint8_t)position;
}

static int ring_create(struct io_uring *ring, uint32_t extra_flags, uint32_t cq_entries) {
    struct io_uring_params params;
    memset(&params, 0, sizeof(params));
    params.flags =
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE | extra_flags;
    params.cq_entries = cq_entries;
    uint32_t sq_entries = cq_entries < TEST_QUEUE_ENTRIES ? cq_entries : TEST_QUEUE_ENTRIES;
    return io_uring_queue_init_params(sq_entries, ring, &params);
}

static struct rx_backend_config nodev_config(void) {
    struct rx_backend_config config;
    memset(&config, 0, sizeof(config));
    config.kind = RX_BACKEND_ZCRX;
    config.zcrx_nodev = true;
    config.zcrx_area_bytes = TEST_AREA_BYTES;
    config.zcrx_rx_buffer_bytes = TEST_RX_BUFFER_BYTES;
    config.zcrx_refill_entries = TEST_REFILL_ENTRIES;
    return config;
}

/* Mappings of the process: a refused registration must leave none behind. Sanitizer runtimes map
 * memory of their own at any time, so under them the count is not comparable and reads as -1. */
static int count_mappings(void) {
#ifdef INTAKE_SANITIZED
    return -1;
#endif
    FILE *maps = fopen("/proc/self/maps", "r");
    if (maps == NULL) return -1;
    int lines = 0;
    for (int c; (c = fgetc(maps)) != EOF;) lines += c == '\n';
    fclose(maps);
    return lines;
}

/* A NOP round trip: the ring still works after whatever happened to it. */
static int ring_nop_works(struct io_uring *ring) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    if (sqe == NULL) return 0;
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data64(sqe, 42);
    struct io_uring_cqe *cqe = NULL;
    if (io_uring_submit_and_wait(ring, 1) < 0 || io_uring_peek_cqe(ring, &cqe) != 0) return 0;
    int ok = cqe->res == 0 && cqe->user_data == 42;
    io_uring_cqe_seen(ring, cqe);
    return ok;
}

static void check_probe(struct io_uring *ring) {
    struct io_uring_probe *probe = io_uring_get_probe_ring(ring);
    REQUIRE(probe != NULL);
    int supported = io_uring_opcode_supported(probe, INTAKE_ZCRX_OP_RECV_ZC);
    printf("probe: last_op=%d RECV_ZC=%s\n", probe->last_op, supported ? "supported" : "absent");
    /* An opcode beyond the kernel's last one can never be reported as supported. */
    CHECK(!(supported && probe->last_op < INTAKE_ZCRX_OP_RECV_ZC));
    io_uring_free_probe(probe);
}

/* A ring without CQE32 must be refused before anything reaches the kernel. */
static void check_refuses_plain_ring(void) {
    struct io_uring ring;
    REQUIRE(ring_create(&ring, 0, TEST_CQ_ENTRIES) == 0);
    struct rx_backend_config config = nodev_config();
    struct rx_backend *backend = (struct rx_backend *)&ring; /* must be overwritten with NULL */
    char why[256];
    int result = rx_backend_create(&config, &ring, &backend, why, sizeof(why));
    CHECK(result == -EINVAL);
    CHECK(backend == NULL);
    CHECK(strstr(why, "CQE32") != NULL);
    printf("plain ring: %s\n", why);
    io_uring_queue_exit(&ring);
}

/* The registration was refused: everything must be as before, with a reason worth logging. */
static int check_clean_refusal(struct io_uring *ring, int result, const char *why,
                               const struct rx_backend *backend, int mappings_before) {
    CHECK(result < 0);
    CHECK(backend == NULL);
    CHECK(strncmp(why, "zcrx: ", 6) == 0);
    CHECK(strchr(why, '\n') == NULL);
    CHECK(count_mappings() == mappings_before);
    CHECK(ring_nop_works(ring));
    struct rx_backend_config config = nodev_config();
    struct rx_backend *again = NULL;
    char why_again[256];
    int result_again = rx_backend_create(&config, ring, &again, why_again, sizeof(why_again));
    CHECK(result_again == result);
    CHECK(again == NULL);
    CHECK(strcmp(why_again, why) == 0);
    CHECK(count_mappings() == mappings_before);
    return test_skip(why);
}

/* --- end to end ------------------------------------------------------------------------- */

struct sender {
    int fd;
    uint64_t total_bytes;
    int error;
};

static void *sender_main(void *argument) {
    struct sender *sender = argument;
    static uint8_t block[1 << 16];
    uint64_t sent = 0;
    while (sent < sender->total_bytes) {
        size_t length = sizeof(block);
        if (length > sender->total_bytes - sent) length = (size_t)(sender->total_bytes - sent);
        for (size_t index = 0; index < length; index++) block[index] = pattern_byte(sent + index);
        size_t offset = 0;
        while (offset < length) {
            ssize_t written = write(sender->fd, block + offset, length - offset);
            if (written < 0 && errno == EINTR) continue;
            if (written <= 0) {
                sender->error = errno;
                return NULL;
            }
            offset += (size_t)written;
        }
        sent += length;
    }
    shutdown(sender->fd, SHUT_WR);
    return NULL;
}

/* A connected loopback pair: *receiver is the accepted side, *sender_fd the client. */
static int tcp_pair(int *receiver, int *sender_fd) {
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    if (listener < 0) return -errno;
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t length = sizeof(address);
    if (bind(listener, (struct sockaddr *)&address, sizeof(address)) != 0 ||
        listen(listener, 1) != 0 ||
        getsockname(listener, (struct sockaddr *)&address, &length) != 0) {
        close(listener);
        return -errno;
    }
    *sender_fd = socket(AF_INET, SOCK_STREAM, 0);
    if (*sender_fd < 0 || connect(*sender_fd, (struct sockaddr *)&address, sizeof(address)) != 0) {
        close(listener);
        return -errno;
    }
    *receiver = accept(listener, NULL, NULL);
    close(listener);
    return *receiver < 0 ? -errno : 0;
}

struct receiver {
    struct rx_backend *backend;
    struct io_uring *ring;
    int fd;
    uint64_t received;
    uint64_t chunks;
    uint64_t mismatches;
    uint64_t rearms;
    uint32_t held[TEST_HOLD_MAX];
    uint32_t held_count;
    int done; /* 1: end of stream, -1: failure */
};

static void release_held(struct receiver *receiver, uint32_t keep) {
    INTAKE_ASSERT(keep <= receiver->held_count);
    uint32_t drop = receiver->held_count - keep;
    for (uint32_t index = 0; index < drop; index++)
        rx_backend_unref(receiver->backend, receiver->held[index]);
    memmove(receiver->held, receiver->held + drop, keep * sizeof(uint32_t));
    receiver->held_count = keep;
}

static void take_chunk(struct receiver *receiver, const struct rx_chunk *chunk) {
    for (uint32_t index = 0; index < chunk->length; index++)
        if (chunk->bytes[index] != pattern_byte(receiver->received + index)) receiver->mismatches++;
    receiver->received += chunk->length;
    receiver->chunks++;
    if (receiver->held_count == TEST_HOLD_MAX) release_held(receiver, TEST_HOLD_MAX / 2);
    receiver->held[receiver->held_count++] = chunk->unit;
}

/* One completion; returns nonzero when the multishot must be re-armed. */
static int handle_cqe(struct receiver *receiver, const struct io_uring_cqe *cqe) {
    struct rx_chunk chunk;
    int error = 0;
    INTAKE_ASSERT(cqe->user_data == TEST_USER_DATA);
    enum rx_event event = receiver->backend->ops->parse(receiver->backend, cqe, &chunk, &error);
    if (event == RX_EVENT_DATA) take_chunk(receiver, &chunk);
    if (event == RX_EVENT_END_OF_STREAM) receiver->done = 1;
    if (event == RX_EVENT_ERROR || event == RX_EVENT_CANCELED) {
        fprintf(stderr, "zcrx-e2e: receive failed: %s\n", strerror(error));
        receiver->done = -1;
    }
    /* Out of area: give everything back before re-arming, or the kernel has nothing to fill. */
    if (event == RX_EVENT_OUT_OF_UNITS) release_held(receiver, 0);
    return receiver->done == 0 && !(cqe->flags & IORING_CQE_F_MORE);
}

static int receive_loop(struct receiver *receiver) {
    int arm = 1;
    while (receiver->done == 0) {
        if (arm) {
            rx_backend_flush(receiver->backend, receiver->ring);
            if (receiver->backend->ops->arm(receiver->backend, receiver->ring, receiver->fd,
                                            TEST_USER_DATA) != 0)
                return -EBUSY;
            receiver->rearms++;
            arm = 0;
        }
        struct __kernel_timespec timeout = {.tv_sec = TEST_IDLE_TIMEOUT_MS / 1000};
        struct io_uring_cqe *cqe = NULL;
        int result = io_uring_submit_and_wait_timeout(receiver->ring, &cqe, 1, &timeout, NULL);
        if (result == -ETIME) return -ETIME;
        if (result < 0 && result != -EINTR) return result;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(receiver->ring, head, cqe) {
            arm |= handle_cqe(receiver, cqe);
            if (++seen == TEST_CQ_ENTRIES) break;
        }
        io_uring_cq_advance(receiver->ring, seen);
        rx_backend_flush(receiver->backend, receiver->ring);
    }
    release_held(receiver, 0);
    rx_backend_flush(receiver->backend, receiver->ring);
    return receiver->done > 0 ? 0 : -EIO;
}

static uint64_t test_bytes(void) {
    const char *text = getenv("ZCRX_TEST_BYTES");
    return text != NULL ? strtoull(text, NULL, 0) : (64ull << 20);
}

struct phase {
    const char *name;
    uint64_t bytes;
    uint32_t refill_entries;
    bool expect_out_of_units;
};

/* Moves phase->bytes through `backend`; returns the chunks received (0 on failure). */
static uint64_t run_end_to_end(struct io_uring *ring, struct rx_backend *backend,
                               const struct phase *phase) {
    struct rx_zcrx_info info;
    rx_zcrx_info(backend, &info);
    unsigned long failed_before = test_checks_failed;
    CHECK(info.nodev);
    CHECK(info.refill_entries == phase->refill_entries);
    printf("%s: registered zcrx_id=%u rx_buffer_bytes=%u (asked %u) area_buffers=%u\n", phase->name,
           info.zcrx_id, info.rx_buffer_bytes, TEST_RX_BUFFER_BYTES, info.area_buffers);
    int receive_fd = -1, send_fd = -1;
    REQUIRE(tcp_pair(&receive_fd, &send_fd) == 0);
    struct sender sender = {.fd = send_fd, .total_bytes = phase->bytes};
    pthread_t thread;
    REQUIRE(pthread_create(&thread, NULL, sender_main, &sender) == 0);
    struct receiver receiver = {.backend = backend, .ring = ring, .fd = receive_fd};
    uint64_t start_ns = intake_now_ns();
    int result = receive_loop(&receiver);
    uint64_t elapsed_ns = intake_now_ns() - start_ns;
    pthread_join(thread, NULL);
    const struct rx_backend_stats *stats = &backend->stats;
    rx_zcrx_info(backend, &info);
    printf("zcrx-e2e: %s counters bytes=%llu completions=%llu refill_posted=%llu flushes=%llu "
           "rearm_enospc=%llu rearm_enomem=%llu rearm_other=%llu arms=%llu held=%u "
           "slots_exhausted=%llu flush_errors=%llu seconds=%.2f\n",
           phase->name, (unsigned long long)stats->bytes_received,
           (unsigned long long)stats->completions, (unsigned long long)stats->units_recycled,
           (unsigned long long)stats->refill_flushes, (unsigned long long)stats->rearms_overflow,
           (unsigned long long)stats->rearms_out_of_units, (unsigned long long)stats->rearms_other,
           (unsigned long long)receiver.rearms, info.units_held,
           (unsigned long long)info.slots_exhausted, (unsigned long long)info.flush_errors,
           (double)elapsed_ns / 1e9);
    CHECK(result == 0);
    CHECK(sender.error == 0);
    CHECK(receiver.received == sender.total_bytes);
    CHECK(receiver.mismatches == 0);
    CHECK(stats->bytes_received == sender.total_bytes);
    CHECK(stats->completions == receiver.chunks);
    CHECK(stats->units_recycled == receiver.chunks);
    CHECK(stats->refill_flushes > 0);
    CHECK(backend->units_referenced == 0);
    CHECK(info.units_held == 0);
    CHECK(info.slots_exhausted == 0 && info.flush_errors == 0);
    if (phase->expect_out_of_units) CHECK(stats->rearms_out_of_units > 0);
    close(receive_fd);
    close(send_fd);
    if (test_checks_failed != failed_before) {
        printf("zcrx-e2e: %s FAIL received=%llu of %llu mismatches=%llu\n", phase->name,
               (unsigned long long)receiver.received, (unsigned long long)sender.total_bytes,
               (unsigned long long)receiver.mismatches);
        return 0;
    }
    return receiver.chunks;
}

/* A second ring with a tiny area and CQ: the kernel runs out of buffers (-ENOMEM) and maybe CQ
 * space (-ENOSPC); every byte must still arrive. */
static uint64_t run_pressure(void) {
    struct io_uring ring;
    REQUIRE(ring_create(&ring, rx_backend_ring_flags(RX_BACKEND_ZCRX), TEST_PRESSURE_CQ_ENTRIES) ==
            0);
    struct rx_backend_config config = nodev_config();
    config.zcrx_area_bytes = TEST_PRESSURE_AREA_BYTES;
    config.zcrx_refill_entries = TEST_PRESSURE_REFILL_ENTRIES;
    struct rx_backend *backend = NULL;
    char why[256] = "";
    int result = rx_backend_create(&config, &ring, &backend, why, sizeof(why));
    CHECK(result == 0);
    if (result != 0) {
        fprintf(stderr, "pressure: %s\n", why);
        io_uring_queue_exit(&ring);
        return 0;
    }
    const struct phase phase = {"pressure", TEST_PRESSURE_BYTES, TEST_PRESSURE_REFILL_ENTRIES,
                                true};
    uint64_t chunks = run_end_to_end(&ring, backend, &phase);
    backend->ops->destroy(backend, &ring);
    io_uring_queue_exit(&ring);
    return chunks;
}

int main(void) {
    struct io_uring ring;
    REQUIRE(ring_create(&ring, rx_backend_ring_flags(RX_BACKEND_ZCRX), TEST_CQ_ENTRIES) == 0);
    CHECK(rx_backend_ring_flags(RX_BACKEND_ZCRX) & IORING_SETUP_CQE32);
    check_probe(&ring);
    check_refuses_plain_ring();
    struct rx_backend_config config = nodev_config();
    struct rx_backend *backend = NULL;
    char why[256] = "";
    int mappings_before = count_mappings();
    REQUIRE(mappings_before != 0);
    int result = rx_backend_create(&config, &ring, &backend, why, sizeof(why));
    if (result < 0) {
        int exit_code = check_clean_refusal(&ring, result, why, backend, mappings_before);
        io_uring_queue_exit(&ring);
        return exit_code;
    }
    CHECK(backend != NULL);
    CHECK(strcmp(backend->ops->name, "zcrx") == 0);
    const struct phase bulk = {"bulk", test_bytes(), TEST_REFILL_ENTRIES, false};
    uint64_t chunks = run_end_to_end(&ring, backend, &bulk);
    backend->ops->destroy(backend, &ring);
    io_uring_queue_exit(&ring);
    uint64_t pressure_chunks = run_pressure();
    if (test_checks_failed == 0 && chunks > 0 && pressure_chunks > 0)
        printf("zcrx-e2e: PASS bytes=%llu records=%llu\n",
               (unsigned long long)(bulk.bytes + TEST_PRESSURE_BYTES),
               (unsigned long long)(chunks + pressure_chunks));
    return test_finish();
}
