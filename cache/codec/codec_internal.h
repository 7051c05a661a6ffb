/* codec private helpers: protobuf wire reading/writing without generated code. */
#ifndef KF_CODEC_INTERNAL_H
#define KF_CODEC_INTERNAL_H

#include "cache/codec/codec.h"

/* protobuf wire types */
enum pbw { PBW_VARINT = 0, PBW_I64 = 1, PBW_LEN = 2, PBW_I32 = 5 };

/* Cursor over protobuf bytes; never reads outside [p, end). */
struct pbr {
    const uint8_t *p, *end;
};

/* One decoded field: number, wire type, and either a varint or a slice. */
struct pbf {
    uint32_t num;
    enum pbw type;
    uint64_t v;
    struct codec_str s;
};

static inline struct pbr pbr_of(const void *buf, size_t len)
{
    struct pbr r = {(const uint8_t *)buf, (const uint8_t *)buf + len};
    return r;
}
static inline struct pbr pbr_of_str(struct codec_str s)
{
    return pbr_of(s.ptr, s.len);
}

/* Next field: 1 if one was read, 0 at the end, -EBADMSG if malformed. */
int pbr_next(struct pbr *r, struct pbf *f);
/* Read a varint; -EBADMSG on truncation or more than 10 bytes. */
int pbr_varint(struct pbr *r, uint64_t *v);

/* Encoded size of a varint. */
size_t pb_varint_size(uint64_t v);
/* Writers: append to b (errors stick in b->err). */
void pbw_varint(struct codec_buf *b, uint64_t v);
void pbw_tag(struct codec_buf *b, uint32_t num, enum pbw type);
void pbw_bytes(struct codec_buf *b, uint32_t num, const void *data, size_t len);
void pbw_string(struct codec_buf *b, uint32_t num, const char *s);
void pbw_uint(struct codec_buf *b, uint32_t num, uint64_t v);
/* Size of a length-delimited field holding len bytes. */
size_t pb_len_field_size(uint32_t num, size_t len);

#endif
