/*
 * pbw: the few protobuf wire primitives kube-sim writes by hand (envelopes,
 * list framing, watch frames, Status) so they come out byte for byte like
 * gogo-protobuf's output.
 */
#include "loadgen/kube-sim/kube_sim.h"

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
