/*
 * rx_backend.c: what both receive backends share: creation by kind and per-unit reference
 * counts. Runs on the owning reactor's thread only.
 */
#include "rx_backend.h"

#include <errno.h>
#include <string.h>

uint32_t rx_backend_ring_flags(enum rx_backend_kind kind) {
    /* zcrx completions carry a second 16-byte half (the area offset): 32-byte CQEs. */
    return kind == RX_BACKEND_ZCRX ? IORING_SETUP_CQE32 : 0;
}

int rx_backend_create(const struct rx_backend_config *config, struct io_uring *ring,
                      struct rx_backend **out, char *why, size_t why_capacity) {
    INTAKE_ASSERT(out != NULL);
    INTAKE_ASSERT(why != NULL && why_capacity > 0);
    why[0] = '\0';
    if (config->kind == RX_BACKEND_ZCRX) return rx_zcrx_create(config, ring, out, why, why_capacity);
    return rx_pbuf_create(config, ring, out, why, why_capacity);
}

int rx_backend_init_common(struct rx_backend *backend, const struct rx_backend_ops *ops,
                           enum rx_backend_kind kind, uint32_t unit_count) {
    INTAKE_ASSERT(unit_count > 0);
    memset(backend, 0, sizeof(*backend));
    backend->unit_references = calloc(unit_count, sizeof(uint32_t));
    if (backend->unit_references == NULL) return -ENOMEM;
    backend->ops = ops;
    backend->kind = kind;
    backend->unit_count = unit_count;
    return 0;
}

void rx_backend_destroy_common(struct rx_backend *backend) {
    free(backend->unit_references);
    backend->unit_references = NULL;
}

void rx_backend_ref(struct rx_backend *backend, uint32_t unit) {
    INTAKE_ASSERT(unit < backend->unit_count);
    if (backend->unit_references[unit]++ == 0) backend->units_referenced++;
    INTAKE_ASSERT(backend->unit_references[unit] != 0);
}

void rx_backend_unref(struct rx_backend *backend, uint32_t unit) {
    INTAKE_ASSERT(unit < backend->unit_count);
    INTAKE_ASSERT(backend->unit_references[unit] > 0);
    if (--backend->unit_references[unit] == 0) {
        INTAKE_ASSERT(backend->units_referenced > 0);
        backend->units_referenced--;
        backend->ops->recycle(backend, unit);
    }
}
