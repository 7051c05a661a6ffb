/*
 * codec: the Kubernetes wire formats kfront and kube-sim speak.
 *
 * - protobuf: the `k8s\0` + runtime.Unknown envelope, object metadata read
 *   straight from the wire bytes, list / Status / watch-event builders;
 * - JSON: metadata read in one jsmn pass, list-item shaping by slicing,
 *   builders for what the apiserver itself serialises;
 * - watch stream readers (JSON lines, length-prefixed protobuf frames);
 * - label and field selectors with the apiserver's error messages.
 *
 * Objects are never re-serialised: readers return slices into the caller's
 * bytes and builders copy those bytes verbatim around the few fields the
 * apiserver adds itself. The generated protobuf-c bindings of the schema are
 * available to users of dep_codec as "k8s_<package>.pb-c.h".
 *
 * Return convention: 0 on success, negative errno on failure. Malformed input
 * gives -EBADMSG (or -EPROTO for a wrong magic), lengths over a configured
 * bound -EMSGSIZE, allocation failure -ENOMEM; readers of partial input
 * return KF_AGAIN when they need more bytes.
 */
#ifndef KF_CODEC_H
#define KF_CODEC_H

#include "core/core.h"

struct ProtobufCMessageDescriptor;

/* ---- byte slices and growable buffers ----------------------------------- */

/** A slice of bytes owned by someone else (not NUL-terminated). */
struct codec_str {
    const char *ptr;
    size_t len;
};

/**
 * Growable output buffer. Appends after an allocation failure are ignored and
 * the error sticks in err, so a builder checks once at the end.
 */
struct codec_buf {
    char *data;
    size_t len, cap;
    int err;
};

/** An empty buffer (no allocation until the first append). */
void codec_buf_init(struct codec_buf *b);
/** Release the buffer's memory and make it empty again. */
void codec_buf_free(struct codec_buf *b);
/** Forget the contents but keep the memory (and clear err). */
void codec_buf_reset(struct codec_buf *b);
/** Append n bytes; on ENOMEM sets b->err and returns it. */
int codec_buf_append(struct codec_buf *b, const void *data, size_t n);
/** Append a NUL-terminated string. */
int codec_buf_puts(struct codec_buf *b, const char *s);
/** Take the bytes out: returns data (caller frees) and leaves b empty. */
char *codec_buf_steal(struct codec_buf *b, size_t *len);

/** True if the slice equals the NUL-terminated string s. */
bool codec_str_eq(struct codec_str a, const char *s);

/* ---- the API types kfront knows ------------------------------------------ */

enum codec_kind {
    CODEC_KIND_UNKNOWN = 0,
    CODEC_KIND_POD,
    CODEC_KIND_NODE,
    CODEC_KIND_CONFIGMAP,
    CODEC_KIND_SECRET,
    CODEC_KIND_SERVICE,
    CODEC_KIND_NAMESPACE,
    CODEC_KIND_EVENT,
    CODEC_KIND_ENDPOINTS,
    CODEC_KIND_SERVICEACCOUNT,
    CODEC_KIND_BINDING,
    CODEC_KIND_ENDPOINTSLICE,
    CODEC_KIND_LEASE,
    CODEC_KIND_RUNTIMECLASS,
    CODEC_KIND_CSIDRIVER,
    CODEC_KIND_STATUS,
    CODEC_KIND_COUNT,
};

/** Static description of one API type. */
struct codec_type {
    enum codec_kind id;
    const char *kind;        /* "Pod" */
    const char *list_kind;   /* "PodList", NULL when the type has no list */
    const char *group;       /* "" for the core group */
    const char *api_version; /* "v1", "discovery.k8s.io/v1" */
    const char *resource;    /* "pods" (plural, as in URLs) */
    bool namespaced;
    const struct ProtobufCMessageDescriptor *pb;      /* object message */
    const struct ProtobufCMessageDescriptor *pb_list; /* list message or NULL */
};

/** The type for an id, or NULL for CODEC_KIND_UNKNOWN / out of range. */
const struct codec_type *codec_type_get(enum codec_kind id);
/** Look a type up by apiVersion and kind (as in an object or envelope); NULL if unknown. */
const struct codec_type *codec_type_by_kind(struct codec_str api_version, struct codec_str kind);
/** Look a type up by API group ("" for core) and plural resource name; NULL if unknown. */
const struct codec_type *codec_type_by_resource(const char *group, const char *resource);

/* ---- protobuf envelope ------------------------------------------------------ */

/** The 4 bytes every protobuf body starts with. */
#define CODEC_PB_MAGIC     "k8s\0"
#define CODEC_PB_MAGIC_LEN 4

/** A parsed `k8s\0` + runtime.Unknown envelope; every slice points into the input. */
struct codec_envelope {
    struct codec_str api_version, kind;
    struct codec_str raw; /* the object's message bytes */
    struct codec_str content_encoding, content_type;
};

/**
 * Parse an enveloped protobuf body. -EPROTO if the magic is missing, -EBADMSG
 * if the Unknown message is truncated or malformed (including a length that
 * runs past the input).
 */
int codec_pb_envelope_parse(const void *buf, size_t len, struct codec_envelope *out);

/**
 * Append `k8s\0` + Unknown{typeMeta{apiVersion, kind}, raw, "", ""} to out,
 * byte-identical to what the apiserver writes. Returns out->err.
 */
int codec_pb_envelope_write(struct codec_buf *out, const char *api_version, const char *kind,
                            const void *raw, size_t raw_len);

#endif
