#include "core/core.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static int parse_port(const char *s, uint16_t *port)
{
    char *end;
    long v;

    if (*s == '\0')
        return -EINVAL;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end != '\0' || v < 1 || v > 65535)
        return -EINVAL;
    *port = (uint16_t)v;
    return 0;
}

int kf_addr_parse(const char *text, struct sockaddr_storage *ss, unsigned *len)
{
    char host[64];
    const char *colon;
    uint16_t port;

    memset(ss, 0, sizeof(*ss));
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

        if (!close || close[1] != ':' || (size_t)(close - text - 1) >= sizeof(host))
            return -EINVAL;
        memcpy(host, text + 1, (size_t)(close - text - 1));
        host[close - text - 1] = '\0';
        if (parse_port(close + 2, &port) < 0 || inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
            return -EINVAL;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        *len = sizeof(*sin6);
        return 0;
    }
    colon = strrchr(text, ':');
    if (!colon || (size_t)(colon - text) >= sizeof(host) || strchr(text, ':') != colon)
        return -EINVAL;
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    if (parse_port(colon + 1, &port) < 0)
        return -EINVAL;
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    if (host[0] == '\0' || strcmp(host, "*") == 0)
        sin->sin_addr.s_addr = htonl(INADDR_ANY);
    else if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
        return -EINVAL;
    *len = sizeof(*sin);
    return 0;
}

const char *kf_addr_host(const struct sockaddr *sa, char *buf, size_t size)
{
    const void *bin = NULL;

    if (sa->sa_family == AF_INET6)
        bin = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
    else if (sa->sa_family == AF_INET)
        bin = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
    if (!bin || !inet_ntop(sa->sa_family, bin, buf, (socklen_t)size))
        buf[0] = '\0';
    return buf;
}

const char *kf_addr_format(const struct sockaddr *sa, char *buf, size_t size)
{
    char host[INET6_ADDRSTRLEN];

    kf_addr_host(sa, host, sizeof(host));
    if (sa->sa_family == AF_INET6)
        snprintf(buf, size, "[%s]:%u", host,
                 ntohs(((const struct sockaddr_in6 *)(const void *)sa)->sin6_port));
    else if (sa->sa_family == AF_INET)
        snprintf(buf, size, "%s:%u", host,
                 ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port));
    else
        snprintf(buf, size, "?");
    return buf;
}
