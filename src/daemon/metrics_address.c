/*
 * metrics_address.c: parses --metrics-listen ADDR:PORT (metrics_http.h). Main thread, at
 * startup; built whether or not the HTTP endpoint is (INTAKE_METRICS_HTTP).
 */
#include "metrics_http.h"

#include <errno.h>
#include <netdb.h>
#include <string.h>

int metrics_http_parse_address(const char *text, struct sockaddr_storage *address,
                               socklen_t *length, char *why, size_t why_capacity) {
    char host[128];
    const char *colon = strrchr(text, ':');
    if (colon == NULL || (size_t)(colon - text) >= sizeof(host) || colon[1] == '\0') {
        intake_error_line(why, why_capacity, "--metrics-listen wants ADDR:PORT, got \"%s\"", text);
        return -EINVAL;
    }
    size_t host_length = (size_t)(colon - text);
    memcpy(host, text, host_length);
    host[host_length] = '\0';
    char *host_start = host;
    if (host_length >= 2 && host[0] == '[' && host[host_length - 1] == ']') {
        host[host_length - 1] = '\0';
        host_start = host + 1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *found = NULL;
    int result = getaddrinfo(host_start[0] ? host_start : NULL, colon + 1, &hints, &found);
    if (result != 0) {
        intake_error_line(why, why_capacity, "--metrics-listen %s: %s", text, gai_strerror(result));
        return -EINVAL;
    }
    memcpy(address, found->ai_addr, found->ai_addrlen);
    *length = found->ai_addrlen;
    freeaddrinfo(found);
    return 0;
}
