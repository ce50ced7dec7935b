/*
 * bench_library.c: intake-bench's producer built on the product's producer library (see
 * bench_library.h). Runs on one producer thread; owns one library producer and one value buffer.
 */
#include "bench_library.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

int bench_library_open(struct bench_library_producer *library, const char *host, uint16_t port,
                       uint32_t batch_bytes, bool acks, uint32_t value_bytes_max,
                       const struct bench_tls_options *tls, char *why, size_t why_capacity) {
    INTAKE_ASSERT(library != NULL);
    INTAKE_ASSERT(value_bytes_max >= BENCH_LIBRARY_STAMP_BYTES);
    memset(library, 0, sizeof *library);
    library->value = malloc(value_bytes_max);
    if (!library->value) {
        snprintf(why, why_capacity, "out of memory for a %u-byte value", value_bytes_max);
        return -ENOMEM;
    }
    library->value_capacity = value_bytes_max;
    memset(library->value, 'v', value_bytes_max);
    char address[96];
    snprintf(address, sizeof address, "%s:%u", host, (unsigned)port);
    struct intake_producer_config config = {.address = address,
                                            .batch_bytes = batch_bytes,
                                            .io_timeout_ms = 10000,
                                            .acks = acks,
                                            .tls_ca_file = tls->ca_file,
                                            .tls_cert_file = tls->cert_file,
                                            .tls_key_file = tls->key_file,
                                            .tls_server_name = tls->server_name};
    int result = intake_producer_open(&config, &library->producer, why, why_capacity);
    if (result != 0) {
        free(library->value);
        library->value = NULL;
    }
    return result;
}

int bench_library_send(struct bench_library_producer *library, const char *topic,
                       uint32_t value_bytes, const uint8_t *stamp) {
    INTAKE_ASSERT(library->producer != NULL);
    INTAKE_ASSERT(value_bytes >= BENCH_LIBRARY_STAMP_BYTES);
    INTAKE_ASSERT(value_bytes <= library->value_capacity);
    memcpy(library->value, stamp, BENCH_LIBRARY_STAMP_BYTES);
    return intake_producer_send(library->producer, topic, NULL, 0, library->value, value_bytes, 0,
                                NULL);
}

int bench_library_flush(struct bench_library_producer *library) {
    INTAKE_ASSERT(library->producer != NULL);
    return intake_producer_flush(library->producer);
}

uint64_t bench_library_acked(const struct bench_library_producer *library) {
    return library->producer ? intake_producer_acked(library->producer) : 0;
}

int bench_library_wait_acks(struct bench_library_producer *library, int timeout_ms) {
    INTAKE_ASSERT(library->producer != NULL);
    uint64_t last = intake_producer_last_sequence(library->producer);
    if (last == 0) return intake_producer_flush(library->producer);
    return intake_producer_wait_acks(library->producer, last, timeout_ms);
}

const char *bench_library_error(const struct bench_library_producer *library) {
    return library->producer ? intake_producer_last_error(library->producer) : "";
}

void bench_library_close(struct bench_library_producer *library) {
    if (library->producer) intake_producer_close(library->producer);
    free(library->value);
    memset(library, 0, sizeof *library);
}
