/*
 * crc32c.h: CRC32C for the hot paths (the log writer's copy, the consumer's checks).
 *
 * The same function as shm_log_crc32c in include/intake/shm_log_format.h (the format's
 * reference, whose test vectors test_shm_log_format checks against both), but faster on long
 * buffers: with SSE4.2 it runs three independent crc32 streams over three lanes (4 KiB, then
 * 256, then 64 bytes) and joins them with tables that shift a CRC past a lane of zeros (CRC is linear),
 * since one stream is bound by the instruction's latency, not its throughput. Any thread.
 */
#ifndef INTAKE_CRC32C_H
#define INTAKE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Lane bytes of the three-stream form for long buffers (shorter ones use 256- and 64-byte
 * lanes). */
#define INTAKE_CRC32C_LANE_BYTES 4096u

/* CRC32C of `length` bytes continued from `crc` (0 to start), as shm_log_crc32c. */
uint32_t intake_crc32c(uint32_t crc, const void *data, size_t length);

#endif
