/*
 * client_abi.h: how the client library reads and fills the public structs that grow (see
 * "Structs that grow" in include/intake/consumer.h), and the sizes those structs had in 1.0.
 * Any thread; pure functions over the caller's memory.
 *
 * A struct's first field is `uint32_t struct_bytes`, the sizeof the caller was compiled with
 * (0: the 1.0 size). In: the library copies what the caller has into a zeroed struct of its
 * own, so fields an older caller lacks read as zero (the default), and refuses a newer
 * caller's struct whose bytes it does not know are not zero (a field it would ignore). Out: the
 * library writes no byte past the caller's size.
 */
#ifndef INTAKE_CLIENT_ABI_H
#define INTAKE_CLIENT_ABI_H

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "common.h"
#include "intake/consumer.h"
#include "intake/producer.h"

/* The sizes of 1.0's structs: what struct_bytes 0 means. This is 1.0, so they are today's
 * sizes; a version that adds a field writes the number the struct had here instead. */
#define CLIENT_PRODUCER_CONFIG_BYTES_V1  sizeof(struct intake_producer_config)
#define CLIENT_PRODUCER_STATS_BYTES_V1   sizeof(struct intake_producer_stats)
#define CLIENT_PRODUCER_RECORD_BYTES_V1  sizeof(struct intake_producer_record)
#define CLIENT_CONSUMER_OPTIONS_BYTES_V1 sizeof(struct intake_consumer_options)
#define CLIENT_SET_OPTIONS_BYTES_V1      sizeof(struct intake_consumer_set_options)
#define CLIENT_SET_STATS_BYTES_V1        sizeof(struct intake_consumer_set_stats)
#define CLIENT_RECORD_VIEW_BYTES_V1      sizeof(struct intake_record_view)

/* The size a caller's struct claims (0 stands for the 1.0 size). */
static inline size_t client_struct_bytes(const void *given, size_t v1_bytes) {
    uint32_t claimed;
    memcpy(&claimed, given, sizeof(claimed));
    return claimed == 0 ? v1_bytes : claimed;
}

/* Copies the caller's struct `given` into `ours` (ours_bytes, the library's sizeof). 0, or
 * -EINVAL with `why` set when it is shorter than 1.0's or longer with non-zero bytes past ours.
 * ours->struct_bytes is left as the library's size. */
static inline int client_struct_in(void *ours, size_t ours_bytes, size_t v1_bytes,
                                   const void *given, const char *what, char *why,
                                   size_t why_capacity) {
    size_t given_bytes = client_struct_bytes(given, v1_bytes);
    if (given_bytes < v1_bytes) {
        intake_error_line(why, why_capacity, "%s: struct_bytes %zu is below its 1.0 size %zu", what,
                          given_bytes, v1_bytes);
        return -EINVAL;
    }
    const uint8_t *bytes = given;
    for (size_t index = ours_bytes; index < given_bytes; index++) {
        if (bytes[index] != 0) {
            intake_error_line(why, why_capacity,
                              "%s sets a field this library (%s) does not know (at byte %zu of "
                              "%zu): link a newer libintake",
                              what, INTAKE_VERSION_STRING, index, given_bytes);
            return -EINVAL;
        }
    }
    memset(ours, 0, ours_bytes);
    memcpy(ours, given, given_bytes < ours_bytes ? given_bytes : ours_bytes);
    uint32_t own = (uint32_t)ours_bytes;
    memcpy(ours, &own, sizeof(own));
    return 0;
}

/* Writes the library's `ours` into the caller's struct, no further than its struct_bytes,
 * which keeps its value. False (nothing written) when it claims less than 1.0's size. */
static inline bool client_struct_out(void *given, const void *ours, size_t ours_bytes,
                                     size_t v1_bytes) {
    uint32_t claimed;
    memcpy(&claimed, given, sizeof(claimed));
    size_t given_bytes = client_struct_bytes(given, v1_bytes);
    if (given_bytes < v1_bytes) return false;
    size_t count = given_bytes < ours_bytes ? given_bytes : ours_bytes;
    memcpy((uint8_t *)given + sizeof(claimed), (const uint8_t *)ours + sizeof(claimed),
           count - sizeof(claimed));
    return true;
}

#endif
