/*
 * address.h: "ADDR:PORT" as every listening flag takes it (--listen, --metrics-listen).
 *
 * ADDR is an IPv4 address, a host name, "[IPv6]" or empty (all addresses); PORT is 0..65535 in
 * decimal digits (0: the kernel picks a free port when the socket is bound; the caller reports
 * the one it got). Main thread, at startup (it may resolve a name).
 */
#ifndef INTAKE_ADDRESS_H
#define INTAKE_ADDRESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common.h"

/* Fills *address and *length; on failure returns -EINVAL and `why` holds one line that names
 * `flag` and the text. */
int intake_address_parse(const char *flag, const char *text, struct sockaddr_storage *address,
                         socklen_t *length, char *why, size_t why_capacity) INTAKE_MUST_CHECK;

/* The port of an IPv4 or IPv6 address, in host order. */
uint16_t intake_address_port(const struct sockaddr_storage *address);

/* Sets the port of an IPv4 or IPv6 address (host order). */
void intake_address_set_port(struct sockaddr_storage *address, uint16_t port);

/* `text` ("ADDR:PORT", as parsed above) with its port replaced by `port`, into `out`. */
void intake_address_text_with_port(const char *text, uint16_t port, char *out, size_t capacity);

#endif
