/* The `k8s\0` + runtime.Unknown envelope of every protobuf body. */
#include "cache/codec/codec_internal.h"

#include <errno.h>
#include <string.h>

/* runtime.Unknown and runtime.TypeMeta field numbers */
enum { UNK_TYPEMETA = 1, UNK_RAW = 2, UNK_ENCODING = 3, UNK_CONTENT_TYPE = 4 };
enum { TM_API_VERSION = 1, TM_KIND = 2 };

static int parse_typemeta(struct codec_str s, struct codec_envelope *out)
{
    struct pbr r = pbr_of_str(s);
    struct pbf f;
    int rc;
    while ((rc = pbr_next(&r, &f)) > 0) {
        if (f.num != TM_API_VERSION && f.num != TM_KIND)
            continue;
        if (f.type != PBW_LEN)
            return -EBADMSG;
        if (f.num == TM_API_VERSION)
            out->api_version = f.s;
        else
            out->kind = f.s;
    }
    return rc;
}

static struct codec_str *unknown_slot(struct codec_envelope *out, uint32_t num)
{
    switch (num) {
    case UNK_RAW:
        return &out->raw;
    case UNK_ENCODING:
        return &out->content_encoding;
    case UNK_CONTENT_TYPE:
        return &out->content_type;
    default:
        return NULL;
    }
}

int codec_pb_envelope_parse(const void *buf, size_t len, struct codec_envelope *out)
{
    memset(out, 0, sizeof(*out));
    if (len < CODEC_PB_MAGIC_LEN || memcmp(buf, CODEC_PB_MAGIC, CODEC_PB_MAGIC_LEN) != 0)
        return -EPROTO;
    struct pbr r = pbr_of((const char *)buf + CODEC_PB_MAGIC_LEN, len - CODEC_PB_MAGIC_LEN);
    struct pbf f;
    int rc;
    while ((rc = pbr_next(&r, &f)) > 0) {
        if (f.num == UNK_TYPEMETA) {
            if (f.type != PBW_LEN || parse_typemeta(f.s, out) < 0)
                return -EBADMSG;
            continue;
        }
        struct codec_str *slot = unknown_slot(out, f.num);
        if (!slot)
            continue; /* a field newer than us: skip, as protobuf readers must */
        if (f.type != PBW_LEN)
            return -EBADMSG;
        *slot = f.s;
    }
    return rc < 0 ? -EBADMSG : 0;
}

void pb_envelope_head(struct codec_buf *out, const char *api_version, const char *kind,
                      size_t raw_len)
{
    size_t av = strlen(api_version), k = strlen(kind);
    codec_buf_append(out, CODEC_PB_MAGIC, CODEC_PB_MAGIC_LEN);
    pbw_tag(out, UNK_TYPEMETA, PBW_LEN);
    pbw_varint(out, pb_len_field_size(TM_API_VERSION, av) + pb_len_field_size(TM_KIND, k));
    pbw_bytes(out, TM_API_VERSION, api_version, av);
    pbw_bytes(out, TM_KIND, kind, k);
    pbw_tag(out, UNK_RAW, PBW_LEN);
    pbw_varint(out, raw_len);
}

int codec_pb_envelope_write(struct codec_buf *out, const char *api_version, const char *kind,
                            const void *raw, size_t raw_len)
{
    pb_envelope_head(out, api_version, kind, raw_len);
    codec_buf_append(out, raw, raw_len);
    /* the apiserver always writes the two empty strings */
    pbw_bytes(out, UNK_ENCODING, "", 0);
    pbw_bytes(out, UNK_CONTENT_TYPE, "", 0);
    return out->err;
}
