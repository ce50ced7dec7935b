/*
 * rx_pbuf.c: the provided-buffer receive backend (see rx_backend.h).
 *
 * The kernel copies received bytes into buffers from a ring we registered (one buffer group per
 * reactor); a multishot IORING_OP_RECV with buffer selection keeps delivering completions, each
 * naming the buffer it filled. Units are buffer ids.
 *
 * Incremental consumption (IOU_PBUF_RING_INC, Linux 6.12+): the kernel fills a buffer in pieces,
 * from any connection of the reactor, and flags IORING_CQE_F_BUF_MORE while it keeps the buffer
 * for more. Small reads then pack densely instead of costing a whole buffer each. While the
 * kernel keeps a buffer we hold one reference on its behalf, dropped at the completion without
 * BUF_MORE, so a buffer is never re-added while the kernel is still filling it.
 *
 * Thread: the owning reactor only. Owns the buffer ring memory and the buffers.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "rx_backend.h"

/* Kernel ABI (include/uapi/linux/io_uring.h) newer than Debian's liburing 2.3. */
#define PBUF_RING_FLAG_INCREMENTAL 2u        /* IOU_PBUF_RING_INC, in io_uring_buf_reg.flags */
#define PBUF_CQE_FLAG_BUFFER_MORE  (1u << 4) /* IORING_CQE_F_BUF_MORE */

struct rx_pbuf {
    struct rx_backend base;
    struct io_uring_buf_ring *buffer_ring;
    size_t buffer_ring_bytes;
    uint8_t *buffers;
    size_t buffers_bytes;
    uint32_t buffer_count;
    uint32_t buffer_bytes;
    uint16_t buffer_group;
    bool incremental;
    uint32_t *consumed_bytes; /* incremental mode: bytes of each buffer already delivered */
    bool *held_by_kernel;     /* incremental mode: the kernel keeps filling this buffer */
    uint32_t buffers_in_ring; /* not yet handed to us by a completion */
    uint32_t adds_pending;    /* re-added since the last tail advance */
};

static struct rx_pbuf *pbuf_of(struct rx_backend *backend) {
    INTAKE_ASSERT(backend->kind == RX_BACKEND_PBUF);
    return (struct rx_pbuf *)backend;
}

static int pbuf_arm(struct rx_backend *backend, struct io_uring *ring, int fd, uint64_t user_data) {
    struct rx_pbuf *pbuf = pbuf_of(backend);
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    if (sqe == NULL) return -EBUSY;
    io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = pbuf->buffer_group;
    io_uring_sqe_set_data64(sqe, user_data);
    return 0;
}

/* Counted like zcrx counts its own: every multishot end that only needs a re-arm. */
static enum rx_event pbuf_event_for_error(struct rx_backend *backend, int result,
                                          int *errno_value) {
    INTAKE_ASSERT(result < 0);
    *errno_value = -result;
    switch (-result) {
    case ENOBUFS: backend->stats.rearms_out_of_units++; return RX_EVENT_OUT_OF_UNITS;
    case ECANCELED: return RX_EVENT_CANCELED;
    case ENOSPC: /* the CQ overflowed: the multishot ended; re-arm */
        backend->stats.rearms_overflow++;
        return RX_EVENT_RETRY;
    case EAGAIN:
    case EINTR: backend->stats.rearms_other++; return RX_EVENT_RETRY;
    default: return RX_EVENT_ERROR;
    }
}

/* Incremental mode: the chunk starts where the previous piece of this buffer ended. */
static uint8_t *pbuf_take_incremental(struct rx_pbuf *pbuf, uint32_t buffer_id, uint32_t length,
                                      uint32_t cqe_flags) {
    uint32_t offset = pbuf->consumed_bytes[buffer_id];
    INTAKE_ASSERT(offset + length <= pbuf->buffer_bytes);
    pbuf->consumed_bytes[buffer_id] = offset + length;
    /* The chunk reference first, so dropping the kernel's can never reach zero here. */
    rx_backend_ref(&pbuf->base, buffer_id);
    bool kernel_keeps = (cqe_flags & PBUF_CQE_FLAG_BUFFER_MORE) != 0;
    if (kernel_keeps && !pbuf->held_by_kernel[buffer_id]) {
        pbuf->held_by_kernel[buffer_id] = true;
        pbuf->base.units_held_by_kernel++;
        rx_backend_ref(&pbuf->base, buffer_id);
    } else if (!kernel_keeps && pbuf->held_by_kernel[buffer_id]) {
        pbuf->held_by_kernel[buffer_id] = false;
        pbuf->base.units_held_by_kernel--;
        rx_backend_unref(&pbuf->base, buffer_id);
    }
    if (!kernel_keeps) pbuf->buffers_in_ring--;
    return pbuf->buffers + (size_t)buffer_id * pbuf->buffer_bytes + offset;
}

static enum rx_event pbuf_parse(struct rx_backend *backend, const struct io_uring_cqe *cqe,
                                struct rx_chunk *chunk, int *errno_value) {
    struct rx_pbuf *pbuf = pbuf_of(backend);
    *errno_value = 0;
    if (cqe->res < 0) return pbuf_event_for_error(backend, cqe->res, errno_value);
    if (cqe->res == 0) return RX_EVENT_END_OF_STREAM;
    INTAKE_ASSERT(cqe->flags & IORING_CQE_F_BUFFER);
    uint32_t buffer_id = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
    INTAKE_ASSERT(buffer_id < pbuf->buffer_count);
    uint32_t length = (uint32_t)cqe->res;
    INTAKE_ASSERT(length <= pbuf->buffer_bytes);
    if (pbuf->incremental) {
        chunk->bytes = pbuf_take_incremental(pbuf, buffer_id, length, cqe->flags);
    } else {
        rx_backend_ref(backend, buffer_id);
        pbuf->buffers_in_ring--;
        chunk->bytes = pbuf->buffers + (size_t)buffer_id * pbuf->buffer_bytes;
    }
    chunk->length = length;
    chunk->unit = buffer_id;
    backend->stats.bytes_received += length;
    backend->stats.completions++;
    return RX_EVENT_DATA;
}

static void pbuf_recycle(struct rx_backend *backend, uint32_t unit) {
    struct rx_pbuf *pbuf = pbuf_of(backend);
    INTAKE_ASSERT(unit < pbuf->buffer_count);
    INTAKE_ASSERT(!pbuf->held_by_kernel[unit]);
    pbuf->consumed_bytes[unit] = 0;
    io_uring_buf_ring_add(pbuf->buffer_ring, pbuf->buffers + (size_t)unit * pbuf->buffer_bytes,
                          pbuf->buffer_bytes, (unsigned short)unit,
                          io_uring_buf_ring_mask(pbuf->buffer_count), (int)pbuf->adds_pending);
    pbuf->adds_pending++;
    pbuf->buffers_in_ring++;
    INTAKE_ASSERT(pbuf->buffers_in_ring <= pbuf->buffer_count);
    backend->stats.units_recycled++;
}

static void pbuf_flush(struct rx_backend *backend, struct io_uring *ring) {
    struct rx_pbuf *pbuf = pbuf_of(backend);
    if (pbuf->adds_pending == 0) return;
    /* Release-stores the ring tail: the kernel sees every entry added since the last flush. */
    io_uring_buf_ring_advance(pbuf->buffer_ring, (int)pbuf->adds_pending);
    pbuf->adds_pending = 0;
}

static uint32_t pbuf_units_available(const struct rx_backend *backend) {
    const struct rx_pbuf *pbuf = (const struct rx_pbuf *)backend;
    return pbuf->buffers_in_ring;
}

static void pbuf_destroy(struct rx_backend *backend, struct io_uring *ring) {
    struct rx_pbuf *pbuf = pbuf_of(backend);
    if (ring != NULL) io_uring_unregister_buf_ring(ring, pbuf->buffer_group);
    if (pbuf->buffer_ring != NULL) munmap(pbuf->buffer_ring, pbuf->buffer_ring_bytes);
    if (pbuf->buffers != NULL) munmap(pbuf->buffers, pbuf->buffers_bytes);
    free(pbuf->consumed_bytes);
    free(pbuf->held_by_kernel);
    rx_backend_destroy_common(backend);
    free(pbuf);
}

static const struct rx_backend_ops pbuf_ops = {
    .name = "pbuf",
    .arm = pbuf_arm,
    .parse = pbuf_parse,
    .recycle = pbuf_recycle,
    .flush = pbuf_flush,
    .units_available = pbuf_units_available,
    .destroy = pbuf_destroy,
};

/* Registers the ring, asking for incremental consumption first. */
static int pbuf_register(struct rx_pbuf *pbuf, struct io_uring *ring, char *why,
                         size_t why_capacity) {
    struct io_uring_buf_reg registration;
    memset(&registration, 0, sizeof(registration));
    registration.ring_addr = (uint64_t)(uintptr_t)pbuf->buffer_ring;
    registration.ring_entries = pbuf->buffer_count;
    registration.bgid = pbuf->buffer_group;
    /* liburing 2.3 calls the kernel's io_uring_buf_reg.flags field "pad". */
    registration.pad = PBUF_RING_FLAG_INCREMENTAL;
    int result = io_uring_register_buf_ring(ring, &registration, 0);
    pbuf->incremental = result == 0;
    if (result == -EINVAL) {
        registration.pad = 0;
        result = io_uring_register_buf_ring(ring, &registration, 0);
    }
    if (result < 0)
        snprintf(why, why_capacity, "pbuf: registering the provided buffer ring failed: %s%s",
                 strerror(-result), result == -EINVAL ? " (needs Linux 5.19+)" : "");
    return result;
}

int rx_pbuf_create(const struct rx_backend_config *config, struct io_uring *ring,
                   struct rx_backend **out, char *why, size_t why_capacity) {
    INTAKE_ASSERT(intake_is_power_of_two(config->buffer_count));
    INTAKE_ASSERT(config->buffer_count <= 32768);
    struct rx_pbuf *pbuf = calloc(1, sizeof(*pbuf));
    if (pbuf == NULL) return -ENOMEM;
    int result =
        rx_backend_init_common(&pbuf->base, &pbuf_ops, RX_BACKEND_PBUF, config->buffer_count);
    if (result < 0) goto fail_free;
    pbuf->buffer_count = config->buffer_count;
    pbuf->buffer_bytes = config->buffer_bytes;
    pbuf->base.unit_bytes = config->buffer_bytes;
    pbuf->buffer_group = config->buffer_group;
    pbuf->buffer_ring_bytes = (size_t)config->buffer_count * sizeof(struct io_uring_buf);
    pbuf->buffers_bytes = (size_t)config->buffer_count * config->buffer_bytes;
    pbuf->consumed_bytes = calloc(config->buffer_count, sizeof(uint32_t));
    pbuf->held_by_kernel = calloc(config->buffer_count, sizeof(bool));
    void *ring_memory = mmap(NULL, pbuf->buffer_ring_bytes, PROT_READ | PROT_WRITE,
                             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    /* Buffers are mapped, not allocated: pages become resident only as the kernel fills them. */
    void *buffers =
        mmap(NULL, pbuf->buffers_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    pbuf->buffer_ring = ring_memory == MAP_FAILED ? NULL : ring_memory;
    pbuf->buffers = buffers == MAP_FAILED ? NULL : buffers;
    result = -ENOMEM;
    if (!pbuf->consumed_bytes || !pbuf->held_by_kernel || !pbuf->buffer_ring || !pbuf->buffers) {
        snprintf(why, why_capacity, "pbuf: cannot map %zu bytes of receive buffers",
                 pbuf->buffers_bytes);
        goto fail_destroy;
    }
    io_uring_buf_ring_init(pbuf->buffer_ring);
    result = pbuf_register(pbuf, ring, why, why_capacity);
    if (result < 0) goto fail_destroy;
    for (uint32_t buffer_id = 0; buffer_id < pbuf->buffer_count; buffer_id++)
        pbuf_recycle(&pbuf->base, buffer_id);
    pbuf->base.stats.units_recycled = 0;
    pbuf_flush(&pbuf->base, ring);
    *out = &pbuf->base;
    return 0;

fail_destroy:
    pbuf_destroy(&pbuf->base, NULL);
    return result;
fail_free:
    free(pbuf);
    return result;
}

/* --- its entry in the backend table ------------------------------------------------------ */

void rx_pbuf_defaults(struct rx_backend_config *config) {
    config->buffer_count = 512;
    config->buffer_bytes = 64 * 1024;
    config->buffer_group = 0;
}

/* Needs nothing beyond its sizes, which config.c bounds. */
int rx_pbuf_check(const struct rx_backend_config *config, char *why, size_t why_capacity) {
    INTAKE_ASSERT(config != NULL);
    INTAKE_ASSERT(why != NULL || why_capacity == 0);
    return 0;
}

/* Buffers are consumed incrementally and a record's slices may each be a whole buffer or less:
 * the framer's RECORD_SLICES_MAX check answers what does not fit, so nothing is lowered. */
uint32_t rx_pbuf_frame_bytes_limit(const struct rx_backend *backend, uint32_t asked) {
    INTAKE_ASSERT(backend->kind == RX_BACKEND_PBUF);
    INTAKE_ASSERT(asked > 0);
    return asked;
}
