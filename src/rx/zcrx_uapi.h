/*
 * zcrx_uapi.h: the kernel's io_uring zero-copy receive (zcrx) interface, defined by intake.
 *
 * Debian 12's liburing (2.3) predates zcrx, so the project writes the interface itself from the
 * kernel's documentation (Documentation/networking/iou-zcrx.rst, "io_uring zero copy Rx") and its
 * uapi headers (include/uapi/linux/io_uring.h, include/uapi/linux/io_uring/zcrx.h). Every name
 * carries the intake_zcrx_ / INTAKE_ZCRX_ prefix so that a future liburing or kernel header that
 * defines the same things never clashes with ours. Layouts are fixed by the kernel ABI; the
 * _Static_asserts below pin sizes and the offsets the kernel reads or writes.
 *
 * Pure definitions: no state, any thread.
 */
#ifndef INTAKE_ZCRX_UAPI_H
#define INTAKE_ZCRX_UAPI_H

#include <stddef.h>
#include <stdint.h>

/* --- opcodes and register codes (io_uring.h) --- */

/* SQE opcode: multishot zero-copy receive on a socket (Linux 6.15+). */
#define INTAKE_ZCRX_OP_RECV_ZC 58
/* io_uring_register(2) opcode: register an interface queue with its area and refill ring. */
#define INTAKE_ZCRX_REGISTER_IFQ 32
/* io_uring_register(2) opcode: control an ifq (argument struct intake_zcrx_ctrl, nr_args 0). */
#define INTAKE_ZCRX_REGISTER_CTRL 36

/* RECV_ZC requires the multishot flag in sqe->ioprio (same bit as IORING_RECV_MULTISHOT). */
#define INTAKE_ZCRX_RECV_MULTISHOT (1u << 1)

/* Region descriptor type: the memory is user memory at user_addr. */
#define INTAKE_ZCRX_MEM_REGION_TYPE_USER 1u

/* Area offsets in CQEs and refill entries carry the area id from this bit up. */
#define INTAKE_ZCRX_AREA_SHIFT 48
#define INTAKE_ZCRX_AREA_MASK  (~((UINT64_C(1) << INTAKE_ZCRX_AREA_SHIFT) - 1))

/* Registration flags (struct intake_zcrx_ifq_reg.flags). */
#define INTAKE_ZCRX_REG_IMPORT 1u
/* Device-less mode (Linux 7.x): no NIC queue; the kernel copies into the area; refill entries
 * are taken only on INTAKE_ZCRX_CTRL_FLUSH_RQ. */
#define INTAKE_ZCRX_REG_NODEV 2u

/* Area flags (struct intake_zcrx_area_reg.flags). */
#define INTAKE_ZCRX_AREA_DMABUF 1u

/* Control operations (struct intake_zcrx_ctrl.op). */
#define INTAKE_ZCRX_CTRL_FLUSH_RQ 0u
#define INTAKE_ZCRX_CTRL_EXPORT   1u

/* --- structures (io_uring/zcrx.h uapi) --- */

/* Refill queue entry: gives one received fragment back to the kernel. `off` is the area token
 * (area id << INTAKE_ZCRX_AREA_SHIFT) plus the byte offset inside the area. */
struct intake_zcrx_rqe {
    uint64_t off;
    uint32_t len;
    uint32_t pad;
};

/* Second half of a 32-byte CQE of a RECV_ZC completion: where in the area the bytes are. */
struct intake_zcrx_cqe {
    uint64_t off;
    uint64_t pad;
};

/* Where head, tail and the entries sit inside the refill ring region (returned by the kernel). */
struct intake_zcrx_offsets {
    uint32_t head;
    uint32_t tail;
    uint32_t rqes;
    uint32_t reserved2;
    uint64_t reserved[2];
};

/* The receive area: user memory (or a dma-buf) the kernel places payload in. */
struct intake_zcrx_area_reg {
    uint64_t addr;
    uint64_t len;
    uint64_t rq_area_token; /* out: the area id, already shifted, for refill entries */
    uint32_t flags;
    uint32_t dmabuf_fd;
    uint64_t reserved2[2];
};

/* Memory region descriptor (io_uring.h), used here for the refill ring. */
struct intake_zcrx_region_desc {
    uint64_t user_addr;
    uint64_t size;
    uint32_t flags;
    uint32_t id;
    uint64_t mmap_offset;
    uint64_t reserved[4];
};

/* Argument of INTAKE_ZCRX_REGISTER_IFQ. rx_buf_len was a reserved zero field before the kernel
 * learnt to choose the receive buffer size: older kernels refuse a nonzero value with EINVAL,
 * device-less mode refuses a non-page size with EOPNOTSUPP; 0 means the kernel default. */
struct intake_zcrx_ifq_reg {
    uint32_t if_idx;
    uint32_t if_rxq;
    uint32_t rq_entries; /* in: power of two; out: what the kernel allocated */
    uint32_t flags;
    uint64_t area_ptr;                  /* struct intake_zcrx_area_reg * */
    uint64_t region_ptr;                /* struct intake_zcrx_region_desc * */
    struct intake_zcrx_offsets offsets; /* out */
    uint32_t zcrx_id;                   /* out: goes in the RECV_ZC SQE */
    uint32_t rx_buf_len;
    uint64_t reserved[3]; /* later kernels use the first for an event descriptor; keep zero */
};

/* Argument of INTAKE_ZCRX_REGISTER_CTRL. */
struct intake_zcrx_ctrl {
    uint32_t zcrx_id;
    uint32_t op;
    uint64_t reserved[2];
    union {
        struct {
            uint64_t reserved[6];
        } flush_rq;
        struct {
            uint32_t zcrx_fd;
            uint32_t reserved[11];
        } export_fd;
    };
};

/* The kernel ABI, pinned. */
_Static_assert(sizeof(struct intake_zcrx_rqe) == 16, "refill entry is 16 bytes");
_Static_assert(sizeof(struct intake_zcrx_cqe) == 16, "zcrx CQE half is 16 bytes");
_Static_assert(sizeof(struct intake_zcrx_offsets) == 32, "zcrx offsets are 32 bytes");
_Static_assert(sizeof(struct intake_zcrx_area_reg) == 48, "area registration is 48 bytes");
_Static_assert(sizeof(struct intake_zcrx_region_desc) == 64, "region descriptor is 64 bytes");
_Static_assert(sizeof(struct intake_zcrx_ifq_reg) == 96, "ifq registration is 96 bytes");
_Static_assert(sizeof(struct intake_zcrx_ctrl) == 72, "zcrx ctrl is 72 bytes");
_Static_assert(offsetof(struct intake_zcrx_rqe, len) == 8, "rqe len");
_Static_assert(offsetof(struct intake_zcrx_area_reg, rq_area_token) == 16, "area token");
_Static_assert(offsetof(struct intake_zcrx_area_reg, flags) == 24, "area flags");
_Static_assert(offsetof(struct intake_zcrx_region_desc, flags) == 16, "region flags");
_Static_assert(offsetof(struct intake_zcrx_region_desc, mmap_offset) == 24, "region mmap");
_Static_assert(offsetof(struct intake_zcrx_ifq_reg, rq_entries) == 8, "ifq rq_entries");
_Static_assert(offsetof(struct intake_zcrx_ifq_reg, area_ptr) == 16, "ifq area_ptr");
_Static_assert(offsetof(struct intake_zcrx_ifq_reg, region_ptr) == 24, "ifq region_ptr");
_Static_assert(offsetof(struct intake_zcrx_ifq_reg, offsets) == 32, "ifq offsets");
_Static_assert(offsetof(struct intake_zcrx_ifq_reg, zcrx_id) == 64, "ifq zcrx_id");
_Static_assert(offsetof(struct intake_zcrx_ifq_reg, rx_buf_len) == 68, "ifq rx_buf_len");
_Static_assert(offsetof(struct intake_zcrx_ctrl, op) == 4, "ctrl op");
_Static_assert(offsetof(struct intake_zcrx_ctrl, flush_rq) == 24, "ctrl payload");

#endif
