/*
 * address.c: parses "ADDR:PORT" for the listening flags (see address.h).
 */
#include "address.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>

#include "number_parse.h"

int intake_address_parse(const char *flag, const char *text, struct sockaddr_storage *address,
                         socklen_t *length, char *why, size_t why_capacity) {
    INTAKE_ASSERT(flag != NULL && text != NULL);
    INTAKE_ASSERT(address != NULL && length != NULL);
    char host[128];
    const char *colon = strrchr(text, ':');
    if (colon == NULL || (size_t)(colon - text) >= sizeof(host) || colon[1] == '\0') {
        intake_error_line(why, why_capacity, "%s wants ADDR:PORT, got \"%s\"", flag, text);
        return -EINVAL;
    }
    /* The port in the one number syntax (no sign, no spaces, no wrapping), handed to
     * getaddrinfo as the digits it stands for. */
    uint64_t port = 0;
    char port_digits[8];
    const struct number_spec port_spec = NUMBER_COUNT_SPEC(0, 65535); /* 0: the kernel picks */
    if (number_parse(flag, colon + 1, &port_spec, &port, NULL, 0) != NUMBER_OK) {
        intake_error_line(why, why_capacity, "%s %s: the port must be a number 0..65535", flag,
                          text);
        return -EINVAL;
    }
    size_t host_length = (size_t)(colon - text);
    memcpy(host, text, host_length);
    host[host_length] = '\0';
    /* [v6]:port */
    char *host_start = host;
    if (host_length >= 2 && host[0] == '[' && host[host_length - 1] == ']') {
        host[host_length - 1] = '\0';
        host_start = host + 1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *found = NULL;
    snprintf(port_digits, sizeof(port_digits), "%u", (unsigned)port);
    int result = getaddrinfo(host_start[0] ? host_start : NULL, port_digits, &hints, &found);
    if (result != 0) {
        intake_error_line(why, why_capacity, "%s %s: %s", flag, text, gai_strerror(result));
        return -EINVAL;
    }
    INTAKE_ASSERT(found->ai_addrlen <= sizeof(*address));
    memcpy(address, found->ai_addr, found->ai_addrlen);
    *length = found->ai_addrlen;
    freeaddrinfo(found);
    return 0;
}

uint16_t intake_address_port(const struct sockaddr_storage *address) {
    INTAKE_ASSERT(address->ss_family == AF_INET || address->ss_family == AF_INET6);
    if (address->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)address)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)address)->sin6_port);
}

void intake_address_set_port(struct sockaddr_storage *address, uint16_t port) {
    INTAKE_ASSERT(address->ss_family == AF_INET || address->ss_family == AF_INET6);
    if (address->ss_family == AF_INET)
        ((struct sockaddr_in *)address)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)address)->sin6_port = htons(port);
}

void intake_address_text_with_port(const char *text, uint16_t port, char *out, size_t capacity) {
    const char *colon = strrchr(text, ':');
    INTAKE_ASSERT(colon != NULL); /* intake_address_parse accepted it */
    snprintf(out, capacity, "%.*s:%u", (int)(colon - text), text, (unsigned)port);
}
