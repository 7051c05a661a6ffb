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
/* `k8s\0` + Unknown up to the first byte of raw (whose length is raw_len). */
void pb_envelope_head(struct codec_buf *out, const char *api_version, const char *kind,
                      size_t raw_len);

/* ---- JSON tokens (jsmn lives in codec_json.c only) ------------------------- */

enum jtype { JT_UNDEFINED = 0, JT_OBJECT = 1, JT_ARRAY = 2, JT_STRING = 3, JT_PRIMITIVE = 4 };

/* Same layout as jsmntok_t with JSMN_PARENT_LINKS (checked in codec_json.c). */
struct jtok {
    enum jtype type;
    int start, end, size;
    int parent;
};

/* A tokenised JSON document whose root is an object. */
struct jdoc {
    const char *js;
    size_t len;
    struct jtok *tok;
    int n;
};

/* Bound on JSON input: jsmn keeps offsets in int. */
#define JSON_MAX_LEN (1u << 30)
/* Bound on nesting (Go's decoder allows 10000; Kubernetes objects of the types
 * kfront handles nest about 15 deep). Bounds jsmn's O(bytes x depth) worst case. */
#define JSON_MAX_DEPTH 512

/*
 * Tokenise js (one pass) and check its shape (one pass over the tokens): the
 * root is one object, every object member is a string key with one value.
 * 0, -EBADMSG, -EMSGSIZE, -ENOMEM. Free with jdoc_free after success (a failure frees
 * what it took).
 */
int jdoc_parse(struct jdoc *d, const char *js, size_t len);
void jdoc_free(struct jdoc *d);
/* Index of the token after the subtree rooted at i. */
int jskip(const struct jdoc *d, int i);
/* True if token i is a string equal to s (raw bytes, no unescaping). */
bool jeq(const struct jdoc *d, int i, const char *s);
/* Raw bytes of token i. */
struct codec_str jraw(const struct jdoc *d, int i);
/*
 * Value of a string token: a slice of the input, or an unescaped copy in the
 * arena when it has escapes; null gives an empty slice. -EBADMSG for another
 * type, a bad escape, a control character or invalid UTF-8.
 */
int jstring(const struct jdoc *d, int i, struct kf_arena *arena, struct codec_str *out);

/* Validate UTF-8 (no overlongs, surrogates or values past U+10FFFF). */
bool utf8_valid(const char *s, size_t len);
/* Parse a decimal int64 / uint64 in a slice; false if not entirely a number in range. */
bool parse_i64(struct codec_str s, int64_t *out);
bool parse_u64(struct codec_str s, uint64_t *out);
/* Seconds since the epoch of an RFC 3339 time; false if malformed. */
bool parse_rfc3339(struct codec_str s, int64_t *out);

/* ---- selectable fields per type (codec_fields.c) ------------------------------ */

enum { FD_BOOL = 1 /* a bool: absent means "false" */, FD_HIDDEN = 2 /* helper, not selectable */ };

/* Where a selectable field lives, in JSON member names and protobuf field numbers. */
struct fdef {
    const char *path;
    const char *json[3];
    uint8_t pb[3];
    uint8_t depth;
    uint8_t flags;
    int8_t alt;    /* index of another def consulted too, -1 for none */
    bool alt_wins; /* alt's value wins when non-empty (else: alt used when ours is empty) */
};

/* Selectable fields and field-selector rules of one type. */
struct kind_fields {
    const struct fdef *defs;
    size_t n;
    /* labels the apiserver's field label conversion accepts, NULL-terminated;
     * NULL for types with the default conversion (metadata.name/namespace only) */
    const char *const *accepted;
};

/* ---- validation messages (codec_validate.c) ----------------------------------- */

/* Append the apiserver's reasons why key is not a label key ("; "-joined); true if any. */
bool label_key_errors(const char *key, struct codec_buf *b);
/* Same for a label value. */
bool label_value_errors(const char *value, struct codec_buf *b);

/* Rules for a type; never NULL (unknown types get the default). */
const struct kind_fields *kind_fields(enum codec_kind k);

/* Fill meta->fields from the values the extractor found for each def. */
void fields_finish(struct codec_meta *meta, const struct kind_fields *kf,
                   const struct codec_str *vals);

#endif
