/*
 * address.h: "ADDR:PORT" as every listening flag takes it (--listen, --metrics-listen).
 *
 * ADDR is an IPv4 address, a host name, "[IPv6]" or empty (all addresses); PORT is 1..65535 in
 * decimal digits. Main thread, at startup (it may resolve a name).
 */
#ifndef INTAKE_ADDRESS_H
#define INTAKE_ADDRESS_H

#include <stddef.h>
#include <sys/socket.h>

#include "common.h"

/* Fills *address and *length; on failure returns -EINVAL and `why` holds one line that names
 * `flag` and the text. */
int intake_address_parse(const char *flag, const char *text, struct sockaddr_storage *address,
                         socklen_t *length, char *why, size_t why_capacity) INTAKE_MUST_CHECK;

#endif
