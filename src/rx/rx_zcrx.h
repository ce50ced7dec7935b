/*
 * rx_zcrx.h: what the zcrx backend tells beyond struct rx_backend_stats (for logs and tests).
 * The backend itself is reached through rx_backend.h (rx_zcrx_create and the ops); the zcrx
 * kernel interface it speaks is in zcrx_uapi.h. Owning reactor's thread only.
 */
#ifndef INTAKE_RX_ZCRX_H
#define INTAKE_RX_ZCRX_H

#include <stdbool.h>
#include <stdint.h>

#include "rx_backend.h"

struct rx_zcrx_info {
    bool nodev;               /* device-less mode (the kernel copies) */
    uint32_t zcrx_id;         /* the kernel's id of this ifq */
    uint32_t rx_buffer_bytes; /* accepted rx buffer size; 0: the kernel's default (page) */
    uint32_t refill_entries;  /* refill ring entries == unit slots */
    uint32_t area_buffers;    /* area bytes / page size */
    uint32_t units_held;      /* slots referenced by the reactor or its workers */
    uint64_t slots_exhausted; /* completions that found no slot (connection failed, ENOBUFS) */
    uint64_t flush_errors;    /* ZCRX_CTRL_FLUSH_RQ calls the kernel refused */
};

/* Fills `info` for a backend made by rx_zcrx_create. */
void rx_zcrx_info(const struct rx_backend *backend, struct rx_zcrx_info *info);

#endif
