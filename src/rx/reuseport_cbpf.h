/*
 * reuseport_cbpf.h: queue-affine listener selection for a SO_REUSEPORT group.
 *
 * With zcrx each reactor owns the ifq of one hardware receive queue, so a connection whose
 * packets arrive on queue q must be accepted by the reactor that owns q, or its bytes land in
 * another reactor's area. The reactors' listeners form one SO_REUSEPORT group; a classic BPF
 * program attached with SO_ATTACH_REUSEPORT_CBPF returns, for each new connection, the index of
 * the listener (in the order the sockets joined the group) from the packet's receive queue:
 *   reactor i serves queue list[i] (--zcrx-queues, e.g. "4,5,6,7");
 *   a queue that is not in the list goes to reactor queue % count.
 * reuseport_queue_to_reactor is the same mapping as a plain function; reuseport_cbpf_run
 * interprets the emitted instructions so tests can prove the two agree.
 *
 * Pure functions apart from reuseport_cbpf_attach; any thread.
 */
#ifndef INTAKE_REUSEPORT_CBPF_H
#define INTAKE_REUSEPORT_CBPF_H

#include <linux/filter.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

/* Most reactors (listeners) the program maps queues to; keeps every jump within 8 bits. */
#define REUSEPORT_REACTORS_MAX 64
/* Instructions the program needs at most: load, one compare per reactor, the fallback (modulo,
 * return), one return per reactor. */
#define REUSEPORT_CBPF_INSTRUCTIONS_MAX (1 + 2 * REUSEPORT_REACTORS_MAX + 2)

/* The reactor serving receive queue `queue`; `count` (1..REUSEPORT_REACTORS_MAX) entries. */
uint32_t reuseport_queue_to_reactor(uint32_t queue, const uint32_t *list, uint32_t count);

/* Emits the program into `program` (room for REUSEPORT_CBPF_INSTRUCTIONS_MAX); returns the
 * number of instructions. */
uint32_t reuseport_cbpf_build(const uint32_t *list, uint32_t count, struct sock_filter *program);

/* Runs `length` instructions of the subset reuseport_cbpf_build emits, as the kernel would for a
 * packet received on `queue`. Returns the program's result, or -1 for an instruction outside the
 * subset or a jump out of the program. */
int64_t reuseport_cbpf_run(const struct sock_filter *program, uint32_t length, uint32_t queue);

/* Attaches the program for `list` to the SO_REUSEPORT group of `socket_fd` (any member; the
 * group's selection changes for all). Returns 0 or a negative errno. */
int reuseport_cbpf_attach(int socket_fd, const uint32_t *list, uint32_t count) INTAKE_MUST_CHECK;

/* Parses a queue list such as "4,5,6,7" (decimal, comma separated, no duplicates) into `list`.
 * Returns the count, or -EINVAL for malformed text, duplicates, or more than `capacity`. */
int reuseport_parse_queue_list(const char *text, uint32_t *list,
                               uint32_t capacity) INTAKE_MUST_CHECK;

#endif
