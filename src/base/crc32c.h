/*
 * crc32c.h: the one fast CRC32C of the tree (the log writer's copy and recovery scan, every
 * consumer's checks, the deduplication table and its file). Any thread.
 *
 * The same function as shm_log_crc32c in include/intake/shm_log_format.h, the format's
 * bitwise reference (docs/shm-log-format.md's vectors are checked against both by
 * test_shm_log_format; test_crc32c checks this one against the reference at every length to
 * several KiB and every alignment). Two places compute CRC32C in intake: that reference, and
 * this module.
 *
 * What runs: the CPU's CRC32C instruction, chosen once at run time,
 *   x86-64  SSE4.2's crc32 (__builtin_cpu_supports("sse4.2"));
 *   arm64   ARMv8's crc32cx/crc32cb (getauxval(AT_HWCAP) & HWCAP_CRC32; optional in ARMv8.0,
 *           required from ARMv8.1);
 * and the reference on any other machine (a CPU without the instruction, another
 * architecture), which is correct but 140 to 240 times slower (bench/crc32c-rate).
 * One instruction stream is bound by the instruction's latency (3 cycles on x86-64) rather
 * than its throughput (one a cycle), so buffers of 192 bytes and more run three streams over
 * three adjacent lanes (4 KiB, then 256, then 64 bytes) and join them with tables that shift a
 * CRC past a lane of zeros (a CRC without its inversions is linear in its state). The lanes and
 * the join are the same code on both machines; only the instruction differs.
 *
 * Why this and not Debian's ISA-L (libisal-dev, crc32_iscsi), a well-kept library which on an
 * x86-64 CPU with AVX-512 is 1.7 to 1.9 times as fast from 256 bytes on, and 1.8 times slower
 * at 64 bytes (docs/performance.md, "CRC32C"):
 *   - Debian ships ISA-L only as a shared library (no libisal.a), and the VM test links intaked
 *     statically (INTAKE_STATIC), as does anyone who links libintake.a;
 *   - libintake.so.1 and every consumer process (the Python and Go bindings, the Kafka bridge,
 *     the container image) would load libisal.so.2, for one small function;
 *   - a record is 100 to 1,000 bytes: at 256 bytes the difference is about 7 ns a record.
 */
#ifndef INTAKE_CRC32C_H
#define INTAKE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Lane bytes of the three-stream form for long buffers (shorter ones use 256- and 64-byte
 * lanes): a caller that checksums in chunks makes them a multiple of three lanes. */
#define INTAKE_CRC32C_LANE_BYTES 4096u

/* CRC32C of `length` bytes continued from `crc` (0 to start), as shm_log_crc32c: a
 * shm_log_crc32c_function (include/intake/shm_log_format.h). */
uint32_t intake_crc32c(uint32_t crc, const void *data, size_t length);

/* What intake_crc32c runs on this machine: "x86-64 sse4.2", "arm64 crc32" or "reference"
 * (a static string). Tests and the benchmark print it, so a figure says what it measured. */
const char *intake_crc32c_implementation(void);

#endif
