/*
 * rx_backend.c: what both receive backends share: creation by kind and per-unit reference
 * counts. Runs on the owning reactor's thread only.
 */
#include "rx_backend.h"

#include <errno.h>
#include <string.h>

/* Indexed by enum rx_backend_kind. auto tries zcrx first, then falls back to pbuf. */
static const struct rx_backend_type rx_backend_types[] = {
    [RX_BACKEND_PBUF] =
        {
            .name = "pbuf",
            .kind = RX_BACKEND_PBUF,
            .ring_flags = 0,
            .steered_by_rx_queue = false,
            .fallback = NULL,
            .defaults = rx_pbuf_defaults,
            .check = rx_pbuf_check,
            .create = rx_pbuf_create,
            .frame_bytes_limit = rx_pbuf_frame_bytes_limit,
        },
    [RX_BACKEND_ZCRX] =
        {
            .name = "zcrx",
            .kind = RX_BACKEND_ZCRX,
            /* zcrx completions carry a second 16-byte half (the area offset): 32-byte CQEs. */
            .ring_flags = IORING_SETUP_CQE32,
            .steered_by_rx_queue = true,
            .fallback = "pbuf",
            .defaults = rx_zcrx_defaults,
            .check = rx_zcrx_check,
            .create = rx_zcrx_create,
            .frame_bytes_limit = rx_zcrx_frame_bytes_limit,
        },
};
#define RX_BACKEND_AUTO_FIRST RX_BACKEND_ZCRX

const struct rx_backend_type *rx_backend_type_find(const char *name) {
    INTAKE_ASSERT(name != NULL);
    for (size_t index = 0; index < INTAKE_ARRAY_LENGTH(rx_backend_types); index++)
        if (strcmp(rx_backend_types[index].name, name) == 0) return &rx_backend_types[index];
    return NULL;
}

const struct rx_backend_type *rx_backend_auto_first(void) {
    return &rx_backend_types[RX_BACKEND_AUTO_FIRST];
}

const struct rx_backend_type *rx_backend_type_of(const struct rx_backend *backend) {
    INTAKE_ASSERT(backend != NULL);
    INTAKE_ASSERT((size_t)backend->kind < INTAKE_ARRAY_LENGTH(rx_backend_types));
    return &rx_backend_types[backend->kind];
}

const char *rx_backend_names(void) {
    return "auto|pbuf|zcrx";
}

void rx_backend_config_defaults(struct rx_backend_config *config) {
    memset(config, 0, sizeof(*config));
    for (size_t index = 0; index < INTAKE_ARRAY_LENGTH(rx_backend_types); index++)
        rx_backend_types[index].defaults(config);
}

uint32_t rx_backend_ring_flags(enum rx_backend_kind kind) {
    INTAKE_ASSERT((size_t)kind < INTAKE_ARRAY_LENGTH(rx_backend_types));
    return rx_backend_types[kind].ring_flags;
}

int rx_backend_create(const struct rx_backend_config *config, struct io_uring *ring,
                      struct rx_backend **out, char *why, size_t why_capacity) {
    INTAKE_ASSERT(out != NULL);
    INTAKE_ASSERT(why != NULL && why_capacity > 0);
    INTAKE_ASSERT((size_t)config->kind < INTAKE_ARRAY_LENGTH(rx_backend_types));
    why[0] = '\0';
    return rx_backend_types[config->kind].create(config, ring, out, why, why_capacity);
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
