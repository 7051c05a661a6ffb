/*
 * An object with another resourceVersion: what the watch cache sends when an
 * object leaves a filtered watch (DELETED carrying the previous version with
 * the event's resourceVersion). The bytes are spliced, not re-serialised: Go
 * would write the same object with only that string changed, so everything
 * around it is copied verbatim and only the enclosing lengths are rewritten.
 */
#include "cache/codec/codec_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int codec_json_with_rv(struct codec_buf *out, const char *json, size_t len,
                       const struct codec_meta *meta, uint64_t rv)
{
    const char *at = meta->resource_version.ptr;
    char rvs[24];

    /* the slice must lie in json: escaped values were unescaped into an arena, and an
     * absent one cannot be spliced (the apiserver always sets it on stored objects) */
    if (!at || at < json || at + meta->resource_version.len > json + len ||
        !meta->resource_version.len)
        return -EBADMSG;
    snprintf(rvs, sizeof(rvs), "%llu", (unsigned long long)rv);
    codec_buf_append(out, json, (size_t)(at - json));
    codec_buf_puts(out, rvs);
    at += meta->resource_version.len;
    codec_buf_append(out, at, (size_t)(json + len - at));
    return out->err;
}

/* Append one length-delimited field: tag, new length, then the pieces. */
static void pbw_len_head(struct codec_buf *b, uint32_t num, size_t len)
{
    pbw_tag(b, num, PBW_LEN);
    pbw_varint(b, len);
}

/* The field number num (LEN) among the top-level fields of s; false if absent. */
static int find_len_field(struct codec_str s, uint32_t num, struct codec_str *field,
                          const uint8_t **field_start)
{
    struct pbr r = pbr_of_str(s);
    struct pbf f;
    int rc;

    for (;;) {
        const uint8_t *start = r.p;
        rc = pbr_next(&r, &f);
        if (rc <= 0)
            return rc < 0 ? rc : -EBADMSG;
        if (f.num == num && f.type == PBW_LEN) {
            *field = f.s;
            *field_start = start;
            return 0;
        }
    }
}

/*
 * ObjectMeta with field 6 (resourceVersion) set to rvs: fields before it
 * copied, the new value, fields after it copied (Go writes fields in number order,
 * so a missing 6 goes before the first field numbered above 6).
 */
static int meta_with_rv(struct codec_buf *b, struct codec_str meta, const char *rvs)
{
    struct pbr r = pbr_of_str(meta);
    struct pbf f;
    bool written = false;
    int rc;

    for (;;) {
        const uint8_t *start = r.p;
        rc = pbr_next(&r, &f);
        if (rc < 0)
            return rc;
        if (!written && (rc == 0 || f.num >= 6)) {
            pbw_string(b, 6, rvs);
            written = true;
        }
        if (rc == 0)
            return b->err;
        if (f.num != 6)
            codec_buf_append(b, start, (size_t)(r.p - start));
    }
}

int codec_pb_with_rv(struct codec_buf *out, const void *buf, size_t len, uint64_t rv)
{
    struct codec_envelope env;
    struct codec_str meta;
    const uint8_t *meta_start, *raw_start;
    struct codec_buf m;
    char rvs[24];
    int rc;

    rc = codec_pb_envelope_parse(buf, len, &env);
    if (rc < 0)
        return rc;
    struct codec_str unknown = {(const char *)buf + CODEC_PB_MAGIC_LEN, len - CODEC_PB_MAGIC_LEN};
    struct codec_str raw;
    rc = find_len_field(unknown, 2, &raw, &raw_start);
    if (rc == 0)
        rc = find_len_field(raw, 1, &meta, &meta_start);
    if (rc < 0)
        return rc;
    snprintf(rvs, sizeof(rvs), "%llu", (unsigned long long)rv);
    codec_buf_init(&m);
    rc = meta_with_rv(&m, meta, rvs);
    if (rc < 0)
        goto out;
    const char *raw_end = raw.ptr + raw.len, *meta_end = meta.ptr + meta.len;
    size_t before = (size_t)((const char *)meta_start - raw.ptr);
    size_t after = (size_t)(raw_end - meta_end);
    size_t new_raw = before + pb_len_field_size(1, m.len) + after;
    codec_buf_append(out, buf, (size_t)(raw_start - (const uint8_t *)buf));
    pbw_len_head(out, 2, new_raw);
    codec_buf_append(out, raw.ptr, before);
    pbw_len_head(out, 1, m.len);
    codec_buf_append(out, m.data, m.len);
    codec_buf_append(out, meta_end, after);
    codec_buf_append(out, raw_end, (size_t)((const char *)buf + len - raw_end));
    rc = out->err;
out:
    codec_buf_free(&m);
    return rc;
}
