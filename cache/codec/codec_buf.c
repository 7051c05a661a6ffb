/* Growable output buffers with a sticky error, and slice helpers. */
#include "cache/codec/codec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void codec_buf_init(struct codec_buf *b)
{
    memset(b, 0, sizeof(*b));
}

void codec_buf_free(struct codec_buf *b)
{
    free(b->data);
    codec_buf_init(b);
}

void codec_buf_reset(struct codec_buf *b)
{
    b->len = 0;
    b->err = 0;
}

static int grow(struct codec_buf *b, size_t need)
{
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        if (cap > SIZE_MAX / 2)
            return -ENOMEM;
        cap *= 2;
    }
    char *d = realloc(b->data, cap);
    if (!d)
        return -ENOMEM;
    b->data = d;
    b->cap = cap;
    return 0;
}

int codec_buf_append(struct codec_buf *b, const void *data, size_t n)
{
    if (b->err)
        return b->err;
    if (n == 0)
        return 0;
    if (n > SIZE_MAX - b->len) {
        b->err = -ENOMEM;
        return b->err;
    }
    if (b->len + n > b->cap) {
        int rc = grow(b, b->len + n);
        if (rc < 0) {
            b->err = rc;
            return rc;
        }
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
    return 0;
}

int codec_buf_puts(struct codec_buf *b, const char *s)
{
    return codec_buf_append(b, s, strlen(s));
}

char *codec_buf_steal(struct codec_buf *b, size_t *len)
{
    char *d = b->data;
    if (len)
        *len = b->len;
    codec_buf_init(b);
    return d;
}

bool codec_str_eq(struct codec_str a, const char *s)
{
    size_t n = strlen(s);
    return a.len == n && (n == 0 || memcmp(a.ptr, s, n) == 0);
}
