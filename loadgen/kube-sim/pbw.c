/*
 * pbw: the few protobuf wire primitives kube-sim writes by hand (envelopes,
 * list framing, watch frames, Status) so they come out byte for byte like
 * gogo-protobuf's output.
 */
#include "loadgen/kube-sim/kube_sim.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

size_t ks_pb_varint_len(uint64_t v)
{
    size_t n = 1;

    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

size_t ks_pb_put_varint(uint8_t *out, uint64_t v)
{
    size_t n = 0;

    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

void ks_pb_varint(struct ks_sb *sb, uint64_t v)
{
    uint8_t tmp[10];

    ks_sb_add(sb, tmp, ks_pb_put_varint(tmp, v));
}

void ks_pb_tag(struct ks_sb *sb, unsigned field, unsigned wire_type)
{
    ks_pb_varint(sb, ((uint64_t)field << 3) | wire_type);
}

void ks_pb_bytes(struct ks_sb *sb, unsigned field, const void *data, size_t len)
{
    ks_pb_tag(sb, field, 2);
    ks_pb_varint(sb, len);
    ks_sb_add(sb, data, len);
}

void ks_pb_str(struct ks_sb *sb, unsigned field, const char *s)
{
    ks_pb_bytes(sb, field, s ? s : "", s ? strlen(s) : 0);
}

void ks_pb_int(struct ks_sb *sb, unsigned field, int64_t v)
{
    ks_pb_tag(sb, field, 0);
    ks_pb_varint(sb, (uint64_t)v);
}

size_t ks_pb_begin(struct ks_sb *sb, unsigned field)
{
    ks_pb_tag(sb, field, 2);
    /* Room for a 5-byte length; ks_pb_end() moves the body back over what it doesn't need. */
    ks_sb_add(sb, "\0\0\0\0\0", 5);
    return sb->len;
}

void ks_pb_end(struct ks_sb *sb, size_t start)
{
    if (sb->err)
        return;
    size_t body = sb->len - start;
    uint8_t tmp[10];
    size_t n = ks_pb_put_varint(tmp, body);
    memcpy(sb->p + start - 5, tmp, n);
    memmove(sb->p + start - 5 + n, sb->p + start, body);
    sb->len -= 5 - n;
}

void ks_pb_envelope_begin(struct ks_sb *sb, const char *api_version, const char *kind,
                          size_t *raw_start)
{
    size_t tm;

    ks_sb_add(sb, "k8s\0", 4);
    tm = ks_pb_begin(sb, 1);
    ks_pb_str(sb, 1, api_version);
    ks_pb_str(sb, 2, kind);
    ks_pb_end(sb, tm);
    *raw_start = ks_pb_begin(sb, 2);
}

void ks_pb_envelope_end(struct ks_sb *sb, size_t raw_start)
{
    ks_pb_end(sb, raw_start);
    /* contentEncoding and contentType: gogo writes the empty strings */
    ks_sb_add(sb, "\x1a\x00\x22\x00", 4);
}

void ks_pb_list_meta(struct ks_sb *sb, unsigned field, uint64_t rv, const char *cont,
                     int64_t remaining)
{
    size_t m = ks_pb_begin(sb, field);
    char rvs[24];

    ks_pb_str(sb, 1, "");
    if (rv)
        snprintf(rvs, sizeof(rvs), "%llu", (unsigned long long)rv);
    else
        rvs[0] = '\0';
    ks_pb_str(sb, 2, rvs);
    ks_pb_str(sb, 3, cont ? cont : "");
    if (remaining >= 0)
        ks_pb_int(sb, 4, remaining);
    ks_pb_end(sb, m);
}

int ks_pb_read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t out = 0;

    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (*p >= end)
            return -EINVAL;
        uint8_t b = *(*p)++;
        out |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = out;
            return 0;
        }
    }
    return -EINVAL;
}

/* Skip one field of wire type wt at *p. */
static int skip_field(const uint8_t **p, const uint8_t *end, unsigned wt)
{
    uint64_t v;

    switch (wt) {
    case 0:
        return ks_pb_read_varint(p, end, &v);
    case 1:
        if (end - *p < 8)
            return -EINVAL;
        *p += 8;
        return 0;
    case 2:
        if (ks_pb_read_varint(p, end, &v) < 0 || v > (uint64_t)(end - *p))
            return -EINVAL;
        *p += v;
        return 0;
    case 5:
        if (end - *p < 4)
            return -EINVAL;
        *p += 4;
        return 0;
    default:
        return -EINVAL;
    }
}

int ks_pb_unwrap(const uint8_t *data, size_t len, const uint8_t **raw, size_t *raw_len)
{
    const uint8_t *p = data + 4, *end = data + len;
    uint64_t key, n;
    bool found = false;

    if (len < 4 || memcmp(data, "k8s\0", 4) != 0)
        return -EINVAL;
    while (p < end) {
        if (ks_pb_read_varint(&p, end, &key) < 0)
            return -EINVAL;
        if (key == ((2 << 3) | 2)) {
            if (ks_pb_read_varint(&p, end, &n) < 0 || n > (uint64_t)(end - p))
                return -EINVAL;
            *raw = p;
            *raw_len = (size_t)n;
            found = true;
            p += n;
        } else if (skip_field(&p, end, (unsigned)(key & 7)) < 0) {
            return -EINVAL;
        }
    }
    return found ? 0 : -EINVAL;
}
