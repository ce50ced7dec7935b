/*
 * rx_backend.h: the seam between a reactor and the way received bytes reach memory.
 *
 * Two backends implement it:
 *   pbuf (rx_pbuf.c): a provided buffer ring; the kernel copies into our buffers; multishot
 *        IORING_OP_RECV with buffer selection, incremental consumption where supported.
 *   zcrx (rx_zcrx.c): io_uring zero-copy receive; the NIC (or, device-less, the kernel) places
 *        payload in a registered area; multishot IORING_OP_RECV_ZC; units go back through the
 *        refill ring.
 *
 * Everything here runs on the owning reactor's thread: the backend is single-threaded state of
 * that reactor. Workers never touch it; records they finish come back over the return channel
 * and the reactor drops their references here.
 *
 * Receive units and references. Received bytes live in "units" (pbuf: a buffer id; zcrx: one
 * completion's fragment of the area). The backend counts references per unit; when a unit's
 * count reaches zero it goes back to the kernel (ring re-add, or a refill entry) on the next
 * rx_backend_flush. rx_backend_parse returns each chunk with one reference already taken for the
 * caller ("the chunk reference"); the reactor takes one more per record slice (rx_backend_ref)
 * and drops the chunk reference when the framer has consumed the chunk.
 */
#ifndef INTAKE_RX_BACKEND_H
#define INTAKE_RX_BACKEND_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

#include "common.h"

enum rx_backend_kind {
    RX_BACKEND_PBUF = 0,
    RX_BACKEND_ZCRX = 1,
};

struct rx_backend_config {
    enum rx_backend_kind kind;
    uint16_t reactor_index;
    /* pbuf */
    uint32_t buffer_count; /* power of two */
    uint32_t buffer_bytes; /* each provided buffer */
    uint16_t buffer_group; /* io_uring buffer group id */
    /* zcrx */
    const char *zcrx_interface; /* NULL with zcrx_nodev */
    uint32_t zcrx_queue;        /* hardware rx queue this reactor binds */
    bool zcrx_nodev;            /* ZCRX_REG_NODEV: device-less mode (kernel copies) */
    uint64_t zcrx_area_bytes;
    uint32_t zcrx_rx_buffer_bytes; /* 0: kernel default (page size) */
    uint32_t zcrx_refill_entries;  /* power of two, above the most units that can be in flight;
                                      0: sized by the backend from the area */
};

/* What a receive completion meant. */
enum rx_event {
    RX_EVENT_DATA = 0,          /* chunk filled, one reference taken for the caller */
    RX_EVENT_END_OF_STREAM = 1, /* the peer closed its side (res == 0) */
    RX_EVENT_OUT_OF_UNITS = 2,  /* no buffers / area exhausted: backpressure; re-arm after
                                    units come back (rx_backend_units_available) */
    RX_EVENT_RETRY = 3,         /* the multishot ended for a reason that only needs a re-arm
                                    (CQ overflow -ENOSPC, -EAGAIN/-EINTR, end without data) */
    RX_EVENT_CANCELED = 4,      /* our own cancel landed */
    RX_EVENT_ERROR = 5,         /* the connection failed (reset...): errno_value says why */
};

/*
 * A chunk's bytes are writable, and the reactor may write them: the TLS record layer decrypts
 * records in place (tls_record.h). That is sound because the memory is ours and, between the
 * completion that delivered a unit and the moment its count drops to zero, nobody else touches
 * it: pbuf buffers are our own mapping, which the kernel fills only while the buffer is in the
 * ring (and, in incremental mode, only past what it already handed out); the zcrx area is our
 * own mapping too, registered with the kernel, which (or the NIC) writes a fragment only after
 * its refill entry gave it back. Only the connection that received a chunk writes it, only inside
 * the TLS record the chunk holds, and before any record slice points at those bytes.
 */
struct rx_chunk {
    uint8_t *bytes;
    uint32_t length;
    uint32_t unit;
};

/* Counters, read at shutdown and on SIGUSR1 (owning thread only; printed by the reactor). */
struct rx_backend_stats {
    uint64_t bytes_received;
    uint64_t completions;    /* data completions */
    uint64_t units_recycled; /* pbuf: buffers re-added; zcrx: refill entries posted */
    uint64_t rearms_out_of_units;
    uint64_t rearms_overflow; /* -ENOSPC: CQ was full */
    uint64_t rearms_other;
    uint64_t refill_flushes; /* zcrx device-less: ZCRX_CTRL_FLUSH_RQ calls */
};

struct rx_backend;

struct rx_backend_ops {
    const char *name;
    /* Queues one multishot receive SQE for `fd`, tagged `user_data`. -EBUSY when the SQ is full. */
    int (*arm)(struct rx_backend *backend, struct io_uring *ring, int fd, uint64_t user_data);
    /* Interprets a receive completion (the reactor decoded the tag already). */
    enum rx_event (*parse)(struct rx_backend *backend, const struct io_uring_cqe *cqe,
                           struct rx_chunk *chunk, int *errno_value);
    /* The unit's count reached zero: queue it for return to the kernel. */
    void (*recycle)(struct rx_backend *backend, uint32_t unit);
    /* Makes queued returns visible to the kernel (buffer ring tail, refill tail, flush). */
    void (*flush)(struct rx_backend *backend, struct io_uring *ring);
    /* Units the kernel can still fill right now (approximate), for re-arm decisions. */
    uint32_t (*units_available)(const struct rx_backend *backend);
    void (*destroy)(struct rx_backend *backend, struct io_uring *ring);
};

struct rx_backend {
    const struct rx_backend_ops *ops;
    enum rx_backend_kind kind;
    uint32_t unit_count;           /* units are 0..unit_count-1 */
    uint32_t *unit_references;     /* per unit, owned by the reactor thread */
    uint32_t units_referenced;     /* units with a nonzero count (leak checks, tests) */
    uint32_t units_held_by_kernel; /* of those, units the kernel still fills (pbuf incremental
                                      mode holds one reference for the kernel): not leaks */
    uint32_t unit_bytes;           /* the most bytes one unit holds (a buffer, a fragment) */
    struct rx_backend_stats stats;
};

/* io_uring_params.flags a backend needs on its reactor's ring (zcrx: IORING_SETUP_CQE32). */
uint32_t rx_backend_ring_flags(enum rx_backend_kind kind);

/*
 * The backend table: each receive backend described once. Callers (reactor, pipeline, config)
 * never name a backend: they look one up by the name the user gave, or walk the auto chain from
 * rx_backend_auto_first through each type's `fallback`.
 */
struct rx_backend_type {
    const char *name; /* what --backend takes */
    enum rx_backend_kind kind;
    uint32_t ring_flags; /* io_uring_params.flags its ring needs */
    /* Connections must reach the reactor whose hardware queue their packets arrive on (the
     * pipeline attaches the queue-steering reuseport program when queues are configured). */
    bool steered_by_rx_queue;
    const char *fallback; /* the type auto tries next when this one cannot be set up */
    /* Its share of the defaults (buffer counts and sizes, area size). */
    void (*defaults)(struct rx_backend_config *config);
    /* The flags it needs were given: 0, or -EINVAL with one line for the user. */
    int (*check)(const struct rx_backend_config *config, char *why, size_t why_capacity);
    int (*create)(const struct rx_backend_config *config, struct io_uring *ring,
                  struct rx_backend **out, char *why, size_t why_capacity);
    /* The largest record its units can hold in RECORD_SLICES_MAX slices, at most `asked`. */
    uint32_t (*frame_bytes_limit)(const struct rx_backend *backend, uint32_t asked);
};

#define RX_BACKEND_AUTO_NAME "auto"

/* The type named `name`, or NULL (also for "auto", which is a walk, not a type). */
const struct rx_backend_type *rx_backend_type_find(const char *name);
/* The first type auto tries. */
const struct rx_backend_type *rx_backend_auto_first(void);
/* The type an instance was created from. */
const struct rx_backend_type *rx_backend_type_of(const struct rx_backend *backend);
/* "auto|pbuf|zcrx", for usage lines. */
const char *rx_backend_names(void);
/* Every type's defaults into `config` (zeroed first). */
void rx_backend_config_defaults(struct rx_backend_config *config);

/* Creates the backend on an initialised ring (registers the buffer ring or the zcrx ifq).
 * Errors are negative errno values with `why` set to one clear line for the log, e.g.
 * "zcrx: kernel lacks IORING_REGISTER_ZCRX_IFQ (needs Linux 6.15)". */
int rx_backend_create(const struct rx_backend_config *config, struct io_uring *ring,
                      struct rx_backend **out, char *why, size_t why_capacity) INTAKE_MUST_CHECK;
int rx_pbuf_create(const struct rx_backend_config *config, struct io_uring *ring,
                   struct rx_backend **out, char *why, size_t why_capacity) INTAKE_MUST_CHECK;
int rx_zcrx_create(const struct rx_backend_config *config, struct io_uring *ring,
                   struct rx_backend **out, char *why, size_t why_capacity) INTAKE_MUST_CHECK;

/* Filled into the table by each backend's file. */
void rx_pbuf_defaults(struct rx_backend_config *config);
int rx_pbuf_check(const struct rx_backend_config *config, char *why, size_t why_capacity);
uint32_t rx_pbuf_frame_bytes_limit(const struct rx_backend *backend, uint32_t asked);
void rx_zcrx_defaults(struct rx_backend_config *config);
int rx_zcrx_check(const struct rx_backend_config *config, char *why, size_t why_capacity);
uint32_t rx_zcrx_frame_bytes_limit(const struct rx_backend *backend, uint32_t asked);

/* Shared reference counting (rx_backend.c); the owning reactor's thread only. */
void rx_backend_ref(struct rx_backend *backend, uint32_t unit);
void rx_backend_unref(struct rx_backend *backend, uint32_t unit);
/* Used by backends: allocates unit_references for `unit_count` units. */
int rx_backend_init_common(struct rx_backend *backend, const struct rx_backend_ops *ops,
                           enum rx_backend_kind kind, uint32_t unit_count) INTAKE_MUST_CHECK;
void rx_backend_destroy_common(struct rx_backend *backend);

static inline void rx_backend_flush(struct rx_backend *backend, struct io_uring *ring) {
    backend->ops->flush(backend, ring);
}

#endif
