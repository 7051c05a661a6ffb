/*
 * Small string helpers for the request path, where snprintf and lists of
 * strcasecmp calls showed up in instruction profiles (callgrind, bench/l7.sh).
 */
#include "core/core.h"

#include <string.h>
#include <strings.h>

bool kf_token_in(const char *s, size_t len, const struct kf_token *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (list[i].len == len && strncasecmp(s, list[i].s, len) == 0)
            return true;
    return false;
}

size_t kf_u64_format(char *out, uint64_t v)
{
    char tmp[20];
    size_t n = 0;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\0';
    return n;
}

size_t kf_strlcpy(char *dst, const char *src, size_t size)
{
    size_t len = strlen(src);

    if (size) {
        size_t n = len < size - 1 ? len : size - 1;
        memcpy(dst, src, n);
        dst[n] = '\0';
    }
    return len;
}
