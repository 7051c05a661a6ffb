/* Minimal protobuf wire reader/writer: enough to walk envelopes and metadata
 * in place (no allocation, no generated code) and to build the few messages
 * the apiserver builds itself. */
#include "cache/codec/codec_internal.h"

#include <errno.h>
#include <string.h>

int pbr_varint(struct pbr *r, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end)
            return -EBADMSG;
        uint8_t c = *r->p++;
        x |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -EBADMSG; /* an 11th byte would not fit in 64 bits */
}

static int skip(struct pbr *r, size_t n)
{
    if ((size_t)(r->end - r->p) < n)
        return -EBADMSG;
    r->p += n;
    return 0;
}

int pbr_next(struct pbr *r, struct pbf *f)
{
    uint64_t key;
    if (r->p >= r->end)
        return 0;
    if (pbr_varint(r, &key) < 0 || key >> 3 == 0 || key >> 3 > UINT32_MAX)
        return -EBADMSG;
    f->num = (uint32_t)(key >> 3);
    f->type = (enum pbw)(key & 7);
    f->v = 0;
    f->s.ptr = NULL;
    f->s.len = 0;
    switch (f->type) {
    case PBW_VARINT:
        return pbr_varint(r, &f->v) < 0 ? -EBADMSG : 1;
    case PBW_I64:
        f->s.ptr = (const char *)r->p;
        return skip(r, 8) < 0 ? -EBADMSG : 1;
    case PBW_I32:
        f->s.ptr = (const char *)r->p;
        return skip(r, 4) < 0 ? -EBADMSG : 1;
    case PBW_LEN:
        if (pbr_varint(r, &f->v) < 0 || f->v > (uint64_t)(r->end - r->p))
            return -EBADMSG;
        f->s.ptr = (const char *)r->p;
        f->s.len = (size_t)f->v;
        r->p += f->v;
        return 1;
    }
    return -EBADMSG; /* groups (3, 4) and reserved types never appear in Kubernetes */
}

size_t pb_varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

void pbw_varint(struct codec_buf *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    while (v >= 0x80) {
        tmp[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    tmp[n++] = (uint8_t)v;
    codec_buf_append(b, tmp, n);
}

void pbw_tag(struct codec_buf *b, uint32_t num, enum pbw type)
{
    pbw_varint(b, ((uint64_t)num << 3) | (uint64_t)type);
}

void pbw_bytes(struct codec_buf *b, uint32_t num, const void *data, size_t len)
{
    pbw_tag(b, num, PBW_LEN);
    pbw_varint(b, len);
    codec_buf_append(b, data, len);
}

void pbw_string(struct codec_buf *b, uint32_t num, const char *s)
{
    pbw_bytes(b, num, s, s ? strlen(s) : 0);
}

void pbw_uint(struct codec_buf *b, uint32_t num, uint64_t v)
{
    pbw_tag(b, num, PBW_VARINT);
    pbw_varint(b, v);
}

size_t pb_len_field_size(uint32_t num, size_t len)
{
    return pb_varint_size((uint64_t)num << 3) + pb_varint_size(len) + len;
}
