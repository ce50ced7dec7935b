/*
 * rx_zcrx.c: the zero-copy receive backend (io_uring zcrx) behind rx_backend.h.
 *
 * One backend per reactor, created on that reactor's ring and used only from its thread. It owns:
 *   - the area: anonymous memory registered with the kernel; the NIC (or, device-less, the
 *     kernel) places payload there and each RECV_ZC completion says where (area offset, length);
 *   - the refill ring: user memory shared with the kernel (region descriptor); we produce refill
 *     entries that give fragments back, the kernel consumes them;
 *   - the unit table: one slot per completion still referenced by the reactor or its workers,
 *     holding the (offset, length) its refill entry will carry.
 * Layout and protocol: Documentation/networking/iou-zcrx.rst; definitions in zcrx_uapi.h.
 *
 * Sizing rule that keeps refill entries from ever being dropped: the unit table has exactly as
 * many slots as the refill ring has entries, and the ring has at least as many entries as the
 * area has buffers. A refill entry exists only for a slot being given back, and a buffer the
 * kernel has not yet taken back cannot be handed out again, so the ring can never fill; recycle
 * asserts it.
 */
#include "rx_zcrx.h"

#include "record.h"
#include "rx_backend.h"
#include "zcrx_uapi.h"

#include <errno.h>
#include <net/if.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The kernel caps refill rings at this many entries (io_uring/zcrx.c IO_RQ_MAX_ENTRIES). */
#define ZCRX_REFILL_ENTRIES_MAX 32768u
/* Room before the entries in the refill region for the kernel's head and tail words. */
#define ZCRX_REFILL_HEADER_BYTES 4096u

struct zcrx_slot {
    uint64_t area_offset; /* byte offset inside our area (no area token) */
    uint32_t length;
    uint32_t next_free; /* free list link while the slot is free */
};

struct rx_zcrx {
    struct rx_backend base; /* first: the ops receive &base */
    int ring_fd;
    bool nodev;
    uint32_t zcrx_id;
    uint8_t *area;
    uint64_t area_bytes;
    uint64_t area_token;      /* area id << INTAKE_ZCRX_AREA_SHIFT, from the kernel */
    uint32_t area_buffers;    /* area_bytes / page size: most fragments the kernel can hand out */
    uint32_t rx_buffer_bytes; /* what the kernel accepted (0: its default, the page size) */
    uint8_t *refill_region;
    size_t refill_region_bytes;
    const uint32_t *refill_head; /* written by the kernel */
    uint32_t *refill_tail;       /* written by us */
    struct intake_zcrx_rqe *refill_entries;
    uint32_t refill_mask;
    uint32_t refill_tail_local; /* entries written; published to *refill_tail on flush */
    uint32_t refill_tail_published;
    struct zcrx_slot *slots; /* base.unit_count of them */
    uint32_t slot_free_head;
    uint32_t slots_free;
    uint64_t slots_exhausted; /* completions that found no slot (sizing broke) */
    uint64_t flush_errors;
};

static const struct rx_backend_ops rx_zcrx_ops;

static struct rx_zcrx *zcrx_of(struct rx_backend *backend) {
    INTAKE_ASSERT(backend != NULL);
    INTAKE_ASSERT(backend->ops == &rx_zcrx_ops);
    return (struct rx_zcrx *)backend;
}

static int zcrx_register(int ring_fd, unsigned opcode, void *argument, unsigned count) {
    long result = syscall(__NR_io_uring_register, ring_fd, opcode, argument, count);
    return result < 0 ? -errno : (int)result;
}

__attribute__((format(printf, 4, 5))) static int zcrx_fail(char *why, size_t why_capacity,
                                                           int error, const char *format, ...) {
    INTAKE_ASSERT(error > 0);
    va_list arguments;
    va_start(arguments, format);
    intake_error_vline(why, why_capacity, format, arguments);
    va_end(arguments);
    return -error;
}

/* --- creation --------------------------------------------------------------------------- */

static int zcrx_check_config(const struct rx_backend_config *config, uint32_t page_bytes, char *why,
                             size_t why_capacity) {
    uint32_t entries = config->zcrx_refill_entries;
    if (!intake_is_power_of_two(entries) || entries > ZCRX_REFILL_ENTRIES_MAX)
        return zcrx_fail(why, why_capacity, EINVAL,
                         "zcrx: refill entries %u must be a power of two up to %u", entries,
                         ZCRX_REFILL_ENTRIES_MAX);
    if (config->zcrx_area_bytes == 0 || config->zcrx_area_bytes % page_bytes != 0)
        return zcrx_fail(why, why_capacity, EINVAL,
                         "zcrx: area of %llu bytes must be a nonzero multiple of the page size",
                         (unsigned long long)config->zcrx_area_bytes);
    uint64_t buffers = config->zcrx_area_bytes / page_bytes;
    if (buffers > entries)
        return zcrx_fail(why, why_capacity, EINVAL,
                         "zcrx: refill ring (%u entries) smaller than the area's %llu buffers: "
                         "a refill entry could be dropped",
                         entries, (unsigned long long)buffers);
    uint32_t rx_bytes = config->zcrx_rx_buffer_bytes;
    if (rx_bytes != 0 && (!intake_is_power_of_two(rx_bytes) || rx_bytes < page_bytes))
        return zcrx_fail(why, why_capacity, EINVAL,
                         "zcrx: rx buffer size %u must be a power of two >= the page size",
                         rx_bytes);
    /* Said as what is missing: under --backend auto this line is the fallback's reason. */
    if (!config->zcrx_nodev && config->zcrx_interface == NULL)
        return zcrx_fail(why, why_capacity, EINVAL,
                         "zcrx: not configured (no --zcrx-if IFNAME or --zcrx-nodev)");
    if (config->zcrx_nodev && config->zcrx_interface != NULL)
        return zcrx_fail(why, why_capacity, EINVAL,
                         "zcrx: --zcrx-if and --zcrx-nodev exclude each other");
    return 0;
}

/* Above the most units that can be in flight: each zcrx completion holds one receive buffer of
 * the area until it is refilled, so the area's buffer count bounds them. */
static uint32_t zcrx_refill_entries_for(const struct rx_backend_config *config,
                                        uint32_t page_bytes) {
    INTAKE_ASSERT(page_bytes > 0);
    uint64_t rx_buffer_bytes =
        config->zcrx_rx_buffer_bytes ? config->zcrx_rx_buffer_bytes : page_bytes;
    uint64_t area_buffers = config->zcrx_area_bytes / rx_buffer_bytes;
    uint32_t refill = 64;
    while (refill < area_buffers && refill < ZCRX_REFILL_ENTRIES_MAX) refill <<= 1;
    INTAKE_ASSERT(intake_is_power_of_two(refill));
    return refill;
}

/* The ring must have been created for zcrx, and the kernel must know RECV_ZC. */
static int zcrx_check_ring(struct io_uring *ring, char *why, size_t why_capacity) {
    if (!(ring->flags & IORING_SETUP_CQE32))
        return zcrx_fail(why, why_capacity, EINVAL,
                         "zcrx: ring lacks IORING_SETUP_CQE32 (use rx_backend_ring_flags)");
    if (!(ring->flags & IORING_SETUP_DEFER_TASKRUN))
        return zcrx_fail(why, why_capacity, EINVAL,
                         "zcrx: ring lacks IORING_SETUP_DEFER_TASKRUN, which zcrx requires");
    struct io_uring_probe *probe = io_uring_get_probe_ring(ring);
    if (probe == NULL)
        return zcrx_fail(why, why_capacity, EOPNOTSUPP, "zcrx: io_uring opcode probe failed");
    int last_op = probe->last_op;
    int supported = io_uring_opcode_supported(probe, INTAKE_ZCRX_OP_RECV_ZC);
    io_uring_free_probe(probe);
    if (last_op < INTAKE_ZCRX_OP_RECV_ZC)
        return zcrx_fail(why, why_capacity, EOPNOTSUPP,
                         "zcrx: kernel lacks IORING_REGISTER_ZCRX_IFQ (needs Linux 6.15+)");
    if (!supported)
        return zcrx_fail(why, why_capacity, EOPNOTSUPP,
                         "zcrx: kernel built without CONFIG_IO_URING_ZCRX (RECV_ZC unsupported)");
    return 0;
}

static int zcrx_map_memory(struct rx_zcrx *zcrx, const struct rx_backend_config *config,
                           uint32_t page_bytes, char *why, size_t why_capacity) {
    zcrx->area_bytes = config->zcrx_area_bytes;
    void *area = mmap(NULL, zcrx->area_bytes, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (area == MAP_FAILED)
        return zcrx_fail(why, why_capacity, ENOMEM, "zcrx: cannot map a %llu-byte area",
                         (unsigned long long)zcrx->area_bytes);
    zcrx->area = area;
    size_t region = ZCRX_REFILL_HEADER_BYTES +
                    (size_t)config->zcrx_refill_entries * sizeof(struct intake_zcrx_rqe);
    region = (region + page_bytes - 1) / page_bytes * page_bytes;
    void *refill = mmap(NULL, region, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (refill == MAP_FAILED) {
        munmap(zcrx->area, zcrx->area_bytes);
        zcrx->area = NULL;
        return zcrx_fail(why, why_capacity, ENOMEM, "zcrx: cannot map the refill ring");
    }
    zcrx->refill_region = refill;
    zcrx->refill_region_bytes = region;
    return 0;
}

static void zcrx_unmap_memory(struct rx_zcrx *zcrx) {
    if (zcrx->refill_region != NULL) munmap(zcrx->refill_region, zcrx->refill_region_bytes);
    if (zcrx->area != NULL) munmap(zcrx->area, zcrx->area_bytes);
    zcrx->refill_region = NULL;
    zcrx->area = NULL;
}

/* Turns a refused registration into one line that says what to do about it. */
static int zcrx_explain_refusal(const struct rx_backend_config *config, int error, char *why,
                                size_t why_capacity) {
    if (error == -EPERM || error == -EACCES)
        return zcrx_fail(why, why_capacity, -error,
                         "zcrx: permission denied (needs CAP_NET_ADMIN)");
    if (config->zcrx_nodev && (error == -EINVAL || error == -EOPNOTSUPP))
        return zcrx_fail(why, why_capacity, -error,
                         "zcrx: device-less mode not supported by this kernel "
                         "(ZCRX_REG_NODEV needs 7.x): %s",
                         strerror(-error));
    if (config->zcrx_nodev)
        return zcrx_fail(why, why_capacity, -error, "zcrx: device-less registration failed: %s",
                         strerror(-error));
    if (error == -EOPNOTSUPP)
        return zcrx_fail(why, why_capacity, EOPNOTSUPP,
                         "zcrx: interface %s queue %u refused: EOPNOTSUPP "
                         "(driver without header split / zcrx support)",
                         config->zcrx_interface, config->zcrx_queue);
    return zcrx_fail(why, why_capacity, -error, "zcrx: interface %s queue %u refused: %s",
                     config->zcrx_interface, config->zcrx_queue, strerror(-error));
}

/* Registers the ifq; asks for the configured rx buffer size and falls back to the kernel's
 * default when the kernel refuses it (older kernels: EINVAL, device-less mode: EOPNOTSUPP). */
static int zcrx_register_ifq(struct rx_zcrx *zcrx, const struct rx_backend_config *config,
                             uint32_t interface_index, struct intake_zcrx_ifq_reg *reg,
                             struct intake_zcrx_area_reg *area) {
    struct intake_zcrx_region_desc region;
    uint32_t rx_bytes = config->zcrx_rx_buffer_bytes;
    for (;;) {
        memset(&region, 0, sizeof(region));
        region.user_addr = (uint64_t)(uintptr_t)zcrx->refill_region;
        region.size = zcrx->refill_region_bytes;
        region.flags = INTAKE_ZCRX_MEM_REGION_TYPE_USER;
        memset(area, 0, sizeof(*area));
        area->addr = (uint64_t)(uintptr_t)zcrx->area;
        area->len = zcrx->area_bytes;
        memset(reg, 0, sizeof(*reg));
        reg->if_idx = interface_index;
        reg->if_rxq = config->zcrx_nodev ? 0 : config->zcrx_queue;
        reg->rq_entries = config->zcrx_refill_entries;
        reg->flags = config->zcrx_nodev ? INTAKE_ZCRX_REG_NODEV : 0;
        reg->area_ptr = (uint64_t)(uintptr_t)area;
        reg->region_ptr = (uint64_t)(uintptr_t)&region;
        reg->rx_buf_len = rx_bytes;
        int result = zcrx_register(zcrx->ring_fd, INTAKE_ZCRX_REGISTER_IFQ, reg, 1);
        if (result >= 0) {
            zcrx->rx_buffer_bytes = rx_bytes;
            return 0;
        }
        if (rx_bytes == 0 || (result != -EINVAL && result != -EOPNOTSUPP)) return result;
        rx_bytes = 0;
    }
}

/* Points into the refill region at the places the kernel reported, after checking them. */
static int zcrx_attach_refill(struct rx_zcrx *zcrx, const struct intake_zcrx_ifq_reg *reg,
                              uint32_t entries_requested, char *why, size_t why_capacity) {
    const struct intake_zcrx_offsets *offsets = &reg->offsets;
    size_t entries_end =
        (size_t)offsets->rqes + (size_t)reg->rq_entries * sizeof(struct intake_zcrx_rqe);
    if (reg->rq_entries != entries_requested || entries_end > zcrx->refill_region_bytes ||
        offsets->head + sizeof(uint32_t) > zcrx->refill_region_bytes ||
        offsets->tail + sizeof(uint32_t) > zcrx->refill_region_bytes ||
        offsets->head % sizeof(uint32_t) != 0 || offsets->tail % sizeof(uint32_t) != 0 ||
        offsets->rqes % sizeof(uint64_t) != 0)
        return zcrx_fail(why, why_capacity, EPROTO,
                         "zcrx: kernel returned a refill ring layout we cannot use "
                         "(entries %u, head %u, tail %u, rqes %u); close the ring",
                         reg->rq_entries, offsets->head, offsets->tail, offsets->rqes);
    zcrx->refill_head = (const uint32_t *)(zcrx->refill_region + offsets->head);
    zcrx->refill_tail = (uint32_t *)(zcrx->refill_region + offsets->tail);
    zcrx->refill_entries = (struct intake_zcrx_rqe *)(zcrx->refill_region + offsets->rqes);
    zcrx->refill_mask = reg->rq_entries - 1;
    /* The kernel starts both at zero; a fresh ring has nothing in flight. */
    zcrx->refill_tail_local = __atomic_load_n(zcrx->refill_tail, __ATOMIC_RELAXED);
    zcrx->refill_tail_published = zcrx->refill_tail_local;
    zcrx->zcrx_id = reg->zcrx_id;
    return 0;
}

static int zcrx_init_units(struct rx_zcrx *zcrx, uint32_t unit_count) {
    int result = rx_backend_init_common(&zcrx->base, &rx_zcrx_ops, RX_BACKEND_ZCRX, unit_count);
    if (result < 0) return result;
    zcrx->slots = calloc(unit_count, sizeof(struct zcrx_slot));
    if (zcrx->slots == NULL) {
        rx_backend_destroy_common(&zcrx->base);
        return -ENOMEM;
    }
    for (uint32_t index = 0; index < unit_count; index++) zcrx->slots[index].next_free = index + 1;
    zcrx->slot_free_head = 0;
    zcrx->slots_free = unit_count;
    return 0;
}

int rx_zcrx_create(const struct rx_backend_config *config, struct io_uring *ring,
                   struct rx_backend **out, char *why, size_t why_capacity) {
    INTAKE_ASSERT(config != NULL && ring != NULL);
    INTAKE_ASSERT(out != NULL && why != NULL && why_capacity > 0);
    *out = NULL;
    uint32_t page_bytes = (uint32_t)sysconf(_SC_PAGESIZE);
    struct rx_backend_config sized = *config;
    if (sized.zcrx_refill_entries == 0)
        sized.zcrx_refill_entries = zcrx_refill_entries_for(&sized, page_bytes);
    config = &sized;
    int result = zcrx_check_config(config, page_bytes, why, why_capacity);
    if (result < 0) return result;
    result = zcrx_check_ring(ring, why, why_capacity);
    if (result < 0) return result;
    uint32_t interface_index = 0;
    if (!config->zcrx_nodev) {
        interface_index = if_nametoindex(config->zcrx_interface);
        if (interface_index == 0)
            return zcrx_fail(why, why_capacity, ENODEV, "zcrx: no interface named %s",
                             config->zcrx_interface);
    }
    struct rx_zcrx *zcrx = calloc(1, sizeof(*zcrx));
    if (zcrx == NULL) return zcrx_fail(why, why_capacity, ENOMEM, "zcrx: out of memory");
    zcrx->ring_fd = ring->ring_fd;
    zcrx->nodev = config->zcrx_nodev;
    zcrx->area_buffers = (uint32_t)(config->zcrx_area_bytes / page_bytes);
    result = zcrx_map_memory(zcrx, config, page_bytes, why, why_capacity);
    if (result < 0) goto fail_free;
    struct intake_zcrx_ifq_reg reg;
    struct intake_zcrx_area_reg area;
    result = zcrx_register_ifq(zcrx, config, interface_index, &reg, &area);
    if (result < 0) {
        result = zcrx_explain_refusal(config, result, why, why_capacity);
        goto fail_unmap;
    }
    /* From here the kernel holds the registration until the ring is closed. */
    zcrx->area_token = area.rq_area_token;
    result = zcrx_attach_refill(zcrx, &reg, config->zcrx_refill_entries, why, why_capacity);
    if (result < 0) goto fail_unmap;
    result = zcrx_init_units(zcrx, config->zcrx_refill_entries);
    if (result < 0) {
        zcrx_fail(why, why_capacity, ENOMEM, "zcrx: out of memory for the unit table");
        goto fail_unmap;
    }
    zcrx->base.unit_bytes = zcrx->rx_buffer_bytes ? zcrx->rx_buffer_bytes : 4096;
    *out = &zcrx->base;
    return 0;
fail_unmap:
    zcrx_unmap_memory(zcrx);
fail_free:
    free(zcrx);
    return result;
}

/* --- receive path ----------------------------------------------------------------------- */

static int rx_zcrx_arm(struct rx_backend *backend, struct io_uring *ring, int fd,
                       uint64_t user_data) {
    struct rx_zcrx *zcrx = zcrx_of(backend);
    INTAKE_ASSERT(fd >= 0);
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    if (sqe == NULL) return -EBUSY;
    /* len 0: no limit; address fields stay zero (the area says where bytes go). */
    io_uring_prep_rw(INTAKE_ZCRX_OP_RECV_ZC, sqe, fd, NULL, 0, 0);
    sqe->ioprio = INTAKE_ZCRX_RECV_MULTISHOT;
    /* The zcrx instance is named in the field shared with file_index. */
    sqe->file_index = zcrx->zcrx_id;
    io_uring_sqe_set_data64(sqe, user_data);
    return 0;
}

static uint32_t zcrx_slot_take(struct rx_zcrx *zcrx) {
    INTAKE_ASSERT(zcrx->slots_free > 0);
    uint32_t slot = zcrx->slot_free_head;
    INTAKE_ASSERT(slot < zcrx->base.unit_count);
    zcrx->slot_free_head = zcrx->slots[slot].next_free;
    zcrx->slots_free--;
    return slot;
}

static void zcrx_slot_put(struct rx_zcrx *zcrx, uint32_t slot) {
    INTAKE_ASSERT(slot < zcrx->base.unit_count);
    INTAKE_ASSERT(zcrx->slots_free < zcrx->base.unit_count);
    zcrx->slots[slot].next_free = zcrx->slot_free_head;
    zcrx->slot_free_head = slot;
    zcrx->slots_free++;
}

/* Writes one refill entry (not yet visible to the kernel: flush publishes the tail). */
static void zcrx_refill_push(struct rx_zcrx *zcrx, uint64_t area_offset, uint32_t length) {
    /* Acquire: the kernel has finished reading every entry before head, so those may be reused. */
    uint32_t head = __atomic_load_n(zcrx->refill_head, __ATOMIC_ACQUIRE);
    uint32_t used = zcrx->refill_tail_local - head;
    /* The sizing rule (ring entries >= area buffers, one slot per entry) makes this unreachable. */
    INTAKE_ASSERT(used <= zcrx->refill_mask);
    uint32_t index = zcrx->refill_tail_local & zcrx->refill_mask;
    struct intake_zcrx_rqe *entry = &zcrx->refill_entries[index];
    entry->off = (area_offset & ~INTAKE_ZCRX_AREA_MASK) | zcrx->area_token;
    entry->len = length;
    entry->pad = 0;
    zcrx->refill_tail_local++;
}

/* A completion whose fragment we cannot track: give it straight back and fail the connection
 * (its stream now has a hole). Only reachable if the kernel hands out more fragments than the
 * area has buffers. */
static enum rx_event zcrx_no_slot(struct rx_zcrx *zcrx, uint64_t area_offset, uint32_t length,
                                  int *errno_value) {
    zcrx->slots_exhausted++;
    zcrx_refill_push(zcrx, area_offset, length);
    *errno_value = ENOBUFS;
    return RX_EVENT_ERROR;
}

static enum rx_event zcrx_parse_data(struct rx_zcrx *zcrx, const struct io_uring_cqe *cqe,
                                     struct rx_chunk *chunk, int *errno_value) {
    /* The zcrx half follows the normal 16 bytes of a 32-byte CQE. */
    const struct intake_zcrx_cqe *zcqe = (const struct intake_zcrx_cqe *)(cqe + 1);
    uint64_t area_offset = zcqe->off & ~INTAKE_ZCRX_AREA_MASK;
    uint32_t length = (uint32_t)cqe->res;
    INTAKE_ASSERT((zcqe->off & INTAKE_ZCRX_AREA_MASK) == zcrx->area_token);
    INTAKE_ASSERT(area_offset < zcrx->area_bytes);
    INTAKE_ASSERT(length <= zcrx->area_bytes - area_offset);
    if (INTAKE_UNLIKELY(zcrx->slots_free == 0))
        return zcrx_no_slot(zcrx, area_offset, length, errno_value);
    uint32_t slot = zcrx_slot_take(zcrx);
    zcrx->slots[slot].area_offset = area_offset;
    zcrx->slots[slot].length = length;
    rx_backend_ref(&zcrx->base, slot);
    chunk->bytes = zcrx->area + area_offset;
    chunk->length = length;
    chunk->unit = slot;
    zcrx->base.stats.bytes_received += length;
    zcrx->base.stats.completions++;
    return RX_EVENT_DATA;
}

static enum rx_event rx_zcrx_parse(struct rx_backend *backend, const struct io_uring_cqe *cqe,
                                   struct rx_chunk *chunk, int *errno_value) {
    struct rx_zcrx *zcrx = zcrx_of(backend);
    INTAKE_ASSERT(cqe != NULL && chunk != NULL && errno_value != NULL);
    *errno_value = 0;
    if (cqe->res > 0) return zcrx_parse_data(zcrx, cqe, chunk, errno_value);
    switch (cqe->res) {
    case 0: return RX_EVENT_END_OF_STREAM;
    case -ENOSPC: /* the CQ overflowed: the multishot ended; re-arm */
        backend->stats.rearms_overflow++;
        return RX_EVENT_RETRY;
    case -ENOMEM: /* the area is exhausted: give fragments back, flush, re-arm */
        backend->stats.rearms_out_of_units++;
        return RX_EVENT_OUT_OF_UNITS;
    case -EAGAIN:
    case -EINTR: backend->stats.rearms_other++; return RX_EVENT_RETRY;
    case -ECANCELED: return RX_EVENT_CANCELED;
    default: *errno_value = -cqe->res; return RX_EVENT_ERROR;
    }
}

static void rx_zcrx_recycle(struct rx_backend *backend, uint32_t unit) {
    struct rx_zcrx *zcrx = zcrx_of(backend);
    INTAKE_ASSERT(unit < backend->unit_count);
    INTAKE_ASSERT(backend->unit_references[unit] == 0);
    zcrx_refill_push(zcrx, zcrx->slots[unit].area_offset, zcrx->slots[unit].length);
    zcrx_slot_put(zcrx, unit);
    backend->stats.units_recycled++;
}

static void rx_zcrx_flush(struct rx_backend *backend, struct io_uring *ring) {
    struct rx_zcrx *zcrx = zcrx_of(backend);
    INTAKE_ASSERT(ring == NULL || ring->ring_fd == zcrx->ring_fd);
    if (zcrx->refill_tail_local == zcrx->refill_tail_published) return;
    /* Release: the entries written since the last flush become visible to the kernel before
     * the tail that covers them. */
    __atomic_store_n(zcrx->refill_tail, zcrx->refill_tail_local, __ATOMIC_RELEASE);
    zcrx->refill_tail_published = zcrx->refill_tail_local;
    if (!zcrx->nodev) return;
    /* Device-less mode has no page pool pulling from the refill ring: ask the kernel to take
     * the entries now, or the area runs dry. */
    struct intake_zcrx_ctrl control;
    memset(&control, 0, sizeof(control));
    control.zcrx_id = zcrx->zcrx_id;
    control.op = INTAKE_ZCRX_CTRL_FLUSH_RQ;
    if (zcrx_register(zcrx->ring_fd, INTAKE_ZCRX_REGISTER_CTRL, &control, 0) < 0)
        zcrx->flush_errors++;
    else
        backend->stats.refill_flushes++;
}

/* Buffers the kernel can still fill: the area's buffers minus those we hold or have written
 * back but not yet published. */
static uint32_t rx_zcrx_units_available(const struct rx_backend *backend) {
    INTAKE_ASSERT(backend != NULL && backend->ops == &rx_zcrx_ops);
    const struct rx_zcrx *zcrx = (const struct rx_zcrx *)backend;
    uint32_t held = backend->unit_count - zcrx->slots_free;
    uint32_t unpublished = zcrx->refill_tail_local - zcrx->refill_tail_published;
    uint32_t in_flight = held + unpublished;
    if (in_flight >= zcrx->area_buffers) return 0;
    return zcrx->area_buffers - in_flight < zcrx->slots_free ? zcrx->area_buffers - in_flight
                                                             : zcrx->slots_free;
}

/* Call after the last receive on the ring has completed. The kernel keeps its registration and
 * page pins until the ring is closed, so unmapping here is safe. */
static void rx_zcrx_destroy(struct rx_backend *backend, struct io_uring *ring) {
    struct rx_zcrx *zcrx = zcrx_of(backend);
    if (ring != NULL) INTAKE_ASSERT(ring->ring_fd == zcrx->ring_fd);
    zcrx_unmap_memory(zcrx);
    free(zcrx->slots);
    rx_backend_destroy_common(backend);
    free(zcrx);
}

static const struct rx_backend_ops rx_zcrx_ops = {
    .name = "zcrx",
    .arm = rx_zcrx_arm,
    .parse = rx_zcrx_parse,
    .recycle = rx_zcrx_recycle,
    .flush = rx_zcrx_flush,
    .units_available = rx_zcrx_units_available,
    .destroy = rx_zcrx_destroy,
};

void rx_zcrx_info(const struct rx_backend *backend, struct rx_zcrx_info *info) {
    INTAKE_ASSERT(backend != NULL && info != NULL);
    INTAKE_ASSERT(backend->ops == &rx_zcrx_ops);
    const struct rx_zcrx *zcrx = (const struct rx_zcrx *)backend;
    memset(info, 0, sizeof(*info));
    info->nodev = zcrx->nodev;
    info->zcrx_id = zcrx->zcrx_id;
    info->rx_buffer_bytes = zcrx->rx_buffer_bytes;
    info->refill_entries = zcrx->refill_mask + 1;
    info->area_buffers = zcrx->area_buffers;
    info->units_held = backend->unit_count - zcrx->slots_free;
    info->slots_exhausted = zcrx->slots_exhausted;
    info->flush_errors = zcrx->flush_errors;
}

/* --- its entry in the backend table ------------------------------------------------------ */

void rx_zcrx_defaults(struct rx_backend_config *config) {
    config->zcrx_area_bytes = 64ull << 20;
    config->zcrx_rx_buffer_bytes = 0;
    config->zcrx_refill_entries = 0;
}

/* What --backend zcrx needs from the command line (the rest is checked at creation). */
int rx_zcrx_check(const struct rx_backend_config *config, char *why, size_t why_capacity) {
    INTAKE_ASSERT(config != NULL);
    INTAKE_ASSERT(why != NULL && why_capacity > 0);
    if (config->zcrx_nodev || config->zcrx_interface != NULL) return 0;
    intake_error_line(why, why_capacity, "--backend zcrx needs --zcrx-if IFNAME or --zcrx-nodev");
    return -EINVAL;
}

/* A record of N bytes in fragments of F bytes spans at most ceil(N / F) + 1 of them (its ends
 * may share fragments with its neighbours): the fixed fragment size caps what --max-frame can
 * promise. */
uint32_t rx_zcrx_frame_bytes_limit(const struct rx_backend *backend, uint32_t asked) {
    INTAKE_ASSERT(backend->ops == &rx_zcrx_ops);
    INTAKE_ASSERT(asked > 0);
    const struct rx_zcrx *zcrx = (const struct rx_zcrx *)backend;
    uint64_t fragment_bytes = zcrx->rx_buffer_bytes ? zcrx->rx_buffer_bytes : 4096;
    uint64_t limit = fragment_bytes * (RECORD_SLICES_MAX - 2);
    return limit < asked ? (uint32_t)limit : asked;
}
