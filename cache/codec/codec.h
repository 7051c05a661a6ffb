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
 * Costs (measured on this machine, -O2): metadata from JSON is one byte
 * pre-scan (depth bound, token count), one jsmn pass and a walk over the
 * tokens that only enters metadata and selector-field objects: ~200 MB/s,
 * 17 us for a 3.6 KB pretty-printed pod, one malloc (tokens) plus the arena.
 * From protobuf the wire bytes are walked in place: 1.5 us for a 1.1 KB pod.
 * Builders append to a growable buffer and copy object bytes once.
 *
 * Generated bindings: the schema (proto/) is the upstream one, field for field,
 * for the types in codec_type's table and everything they reference (see
 * proto/extract_k8s.py). protobuf-c keeps fields it does not know but packs
 * them after the known ones, so never re-pack an object to forward it. The
 * generated code has a member named `linux`: compile users in strict C
 * (-std=c17, as this project does), where `linux` is not a predefined macro.
 *
 * JSON keys are compared as raw bytes: a key spelled with escapes
 * ("metad\u0061ta") is not recognised (Go would decode it). Invalid UTF-8 in an
 * extracted string is an error (Go would substitute U+FFFD).
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

/* ---- object metadata ----------------------------------------------------------- */

/** One label or annotation. */
struct codec_kv {
    struct codec_str key, value;
};

/** The parts of an ownerReference the cache uses. */
struct codec_owner_ref {
    struct codec_str api_version, kind, name, uid;
    bool controller; /* controller: true */
};

/** One selectable field of an object, as the apiserver's fields.Set holds it. */
struct codec_field {
    const char *path; /* "spec.nodeName" (static) */
    struct codec_str value;
};

/** Most selectable fields any type has (events: 11 + metadata.name/namespace). */
#define CODEC_MAX_FIELDS 16

/**
 * Metadata and selector fields of one object. Slices point into the input
 * bytes, except JSON strings with escapes, which are unescaped into the arena
 * passed to the extractor; arrays live in that arena too. Absent strings are
 * empty slices; times are seconds since the epoch (UTC).
 */
struct codec_meta {
    enum codec_kind kind; /* from the caller, or from the object's kind/apiVersion */
    struct codec_str name, namespace_, uid, generate_name;
    struct codec_str resource_version; /* text as sent */
    uint64_t rv;                       /* its value; 0 if not a decimal number */
    bool rv_valid;
    int64_t generation;
    int64_t creation_ts; /* 0 when absent */
    bool deleting;       /* deletionTimestamp present */
    int64_t deletion_ts;
    struct codec_kv *labels;
    size_t n_labels;
    struct codec_kv *annotations;
    size_t n_annotations;
    struct codec_owner_ref *owners;
    size_t n_owners;
    /* selector fields of the type (metadata.name and metadata.namespace first);
     * every field of the type is present, absent ones with an empty value, as
     * the apiserver's fields.Set has them */
    struct codec_field fields[CODEC_MAX_FIELDS];
    size_t n_fields;
};

struct kf_arena;

/**
 * Extract metadata and selector fields from one object in JSON (a whole
 * object: GET body, watch event object, or list item). kind may be
 * CODEC_KIND_UNKNOWN when the object carries kind/apiVersion. One jsmn pass
 * over the bytes, then a walk over the tokens that descends only into
 * metadata and the few objects holding selector fields: cost O(bytes), one
 * temporary token array (malloc'ed, freed before returning).
 * -EBADMSG for malformed JSON, a non-object, trailing bytes, invalid UTF-8 or
 * control characters in an extracted string, metadata of the wrong type;
 * -ENOENT if kind is unknown and the object does not name a known type;
 * -EMSGSIZE if len exceeds 1 GiB; -EINVAL without an arena (it is required); -ENOMEM.
 */
int codec_meta_from_json(const char *json, size_t len, enum codec_kind kind,
                         struct codec_meta *meta, struct kf_arena *arena);

/**
 * Same from protobuf: either an enveloped body (`k8s\0`..., kind taken from the
 * envelope when kind is CODEC_KIND_UNKNOWN) or the bare object message (list
 * items, Unknown.raw) with kind given. Reads the wire bytes in place, without
 * generated code: cost O(bytes of metadata + the messages holding selector
 * fields). -EBADMSG for malformed input, -ENOENT for an unknown kind.
 */
int codec_meta_from_pb(const void *buf, size_t len, enum codec_kind kind, struct codec_meta *meta,
                       struct kf_arena *arena);

/** Value of a selectable field ("spec.nodeName"); false if the type has no such field. */
bool codec_meta_field(const struct codec_meta *meta, const char *path, struct codec_str *value);
/** Value of a label; false if the object has no such label. */
bool codec_meta_label(const struct codec_meta *meta, const char *key, struct codec_str *value);

/* ---- JSON helpers ---------------------------------------------------------------- */

/**
 * List-item form of an object: apiserver list items lack kind and apiVersion,
 * which Go always writes as the object's first two members. On success the
 * item is "{" followed by json[*tail_off..len): callers send the two pieces
 * (zero copy). If the object has no leading kind/apiVersion, *tail_off is just
 * past the "{". -EBADMSG if json does not start with an object.
 */
int codec_json_item_tail(const char *json, size_t len, size_t *tail_off);

/** Append the list-item form of json to out (copying; see codec_json_item_tail). */
int codec_json_to_item(struct codec_buf *out, const char *json, size_t len);

/**
 * Reverse: append {"kind":K,"apiVersion":V, + the item's members to out.
 * item must be a compact object ("{...}"); -EBADMSG otherwise.
 */
int codec_json_from_item(struct codec_buf *out, const char *item, size_t len,
                         const char *api_version, const char *kind);

/**
 * Remove insignificant whitespace (turns the apiserver's pretty-printed
 * output into its compact output). Appends to out; -EBADMSG on an unterminated string.
 */
int codec_json_compact(struct codec_buf *out, const char *json, size_t len);

/** Append s as a JSON string literal with Go's encoding/json escaping (\u003c for <, ...). */
int codec_json_string(struct codec_buf *out, const char *s, size_t len);

/* ---- what the apiserver builds itself ------------------------------------------ */

/** One cause of a Status (metav1.StatusCause); NULL members are omitted. */
struct codec_status_cause {
    const char *reason, *message, *field;
};

/** A metav1.Status. NULL / 0 members are omitted as the apiserver omits them. */
struct codec_status {
    const char *status; /* "Failure" or "Success" */
    const char *message, *reason;
    bool has_details; /* details present (possibly empty) */
    const char *details_name, *details_group, *details_kind, *details_uid;
    const struct codec_status_cause *causes;
    size_t n_causes;
    int32_t retry_after_seconds;
    int32_t code;
    const char *continue_token; /* metadata.continue (an expired continue's 410), or NULL */
};

/**
 * Append a Status object in compact JSON (no trailing newline; a response body
 * needs "\n" after it, as Go's json.Encoder writes one).
 */
int codec_status_json(struct codec_buf *out, const struct codec_status *st);
/** Append a Status as an enveloped protobuf body. */
int codec_status_pb(struct codec_buf *out, const struct codec_status *st);
/** The Status of an ERROR watch event for a too old resourceVersion (410 Expired). */
void codec_status_expired(struct codec_status *st, char *msgbuf, size_t size, uint64_t requested,
                          uint64_t oldest);

/**
 * Append the text body of the apiserver's responsewriters.InternalError: "Internal Server
 * Error: %q: MESSAGE\n" with the request URI quoted as Go's %q does and & < > of the whole
 * line HTML-escaped. Sent as 500, text/plain; charset=utf-8.
 */
int codec_internal_error_text(struct codec_buf *out, const char *request_uri, const char *message);

/** Append s quoted as Go's %q (strconv.Quote) does. */
void codec_go_quote(struct codec_buf *b, const char *s, size_t len);
/** A lowercase RFC 1123 subdomain: [a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*
 */
bool codec_dns_subdomain_ok(const char *s, size_t n);

/** metav1.ListMeta of a list response; NULL continue and remaining < 0 are omitted. */
struct codec_list_meta {
    const char *resource_version;
    const char *continue_token;
    int64_t remaining; /* remainingItemCount, < 0 for none */
};

/**
 * JSON list body: begin appends {"kind":..,"apiVersion":..,"metadata":{..},"items":[
 * then the caller appends items (list-item form) separated by ",", then end
 * appends "]}\n".
 */
int codec_json_list_begin(struct codec_buf *out, const char *api_version, const char *list_kind,
                          const struct codec_list_meta *lm);
int codec_json_list_end(struct codec_buf *out);

/** Bytes an item of raw_len bytes takes inside a protobuf list (for codec_pb_list_begin). */
size_t codec_pb_list_item_size(size_t raw_len);
/**
 * Protobuf list body: begin writes the envelope up to the items, given the sum
 * of codec_pb_list_item_size() over all items; then per item either
 * codec_pb_list_item (copies) or codec_pb_list_item_prefix followed by the
 * caller's reference to the raw bytes; then end.
 */
int codec_pb_list_begin(struct codec_buf *out, const char *api_version, const char *list_kind,
                        const struct codec_list_meta *lm, size_t items_size);
int codec_pb_list_item_prefix(struct codec_buf *out, size_t raw_len);
int codec_pb_list_item(struct codec_buf *out, const void *raw, size_t raw_len);
int codec_pb_list_end(struct codec_buf *out);

/** Watch event types. */
enum codec_event_type {
    CODEC_EV_UNKNOWN = 0,
    CODEC_EV_ADDED,
    CODEC_EV_MODIFIED,
    CODEC_EV_DELETED,
    CODEC_EV_BOOKMARK,
    CODEC_EV_ERROR,
};
/** "ADDED", ...; "" for CODEC_EV_UNKNOWN. */
const char *codec_event_type_name(enum codec_event_type t);
/** Parse a type name; CODEC_EV_UNKNOWN if it is none of the five. */
enum codec_event_type codec_event_type_parse(struct codec_str s);

/** Append {"type":T,"object":OBJ}\n (obj: the object with kind/apiVersion). */
int codec_watch_event_json(struct codec_buf *out, enum codec_event_type t, const char *obj,
                           size_t len);
/**
 * Append one protobuf watch frame: 4-byte big-endian length, then
 * WatchEvent{type, object: RawExtension{raw = obj}} where obj is the
 * enveloped object (`k8s\0`...). The WatchEvent itself has no envelope.
 */
int codec_watch_event_pb(struct codec_buf *out, enum codec_event_type t, const void *obj,
                         size_t len);

/** Bookmark options. */
enum {
    /* annotation k8s.io/initial-events-end: "true", which ends a watch-list's initial events */
    CODEC_BOOKMARK_INITIAL_EVENTS_END = 1,
    /* "creationTimestamp":null in JSON, as apiservers wrote before metav1.Time got omitzero
     * (the recorded v1.26 does; current releases omit it) */
    CODEC_BOOKMARK_NULL_CREATION = 2,
};

/**
 * The object of a BOOKMARK event for type t at resourceVersion rv, as the
 * apiserver writes it: an empty object of the type (so Pod bookmarks carry
 * "spec":{"containers":null},"status":{} and their protobuf twin), with
 * kind/apiVersion in JSON or enveloped in protobuf. flags: CODEC_BOOKMARK_*.
 * -ENOENT for a type without a known shape.
 */
int codec_bookmark_json(struct codec_buf *out, enum codec_kind t, uint64_t rv, unsigned flags);
int codec_bookmark_pb(struct codec_buf *out, enum codec_kind t, uint64_t rv, unsigned flags);

/* ---- reading list responses ------------------------------------------------------------ */

/** What a list response says besides its items (slices into the body or the arena). */
struct codec_list_page {
    struct codec_str resource_version;
    struct codec_str continue_token; /* empty on the last page */
    size_t n_items;
};

/** Called per item, in order, with the item's bytes; a negative return stops the walk. */
typedef int (*codec_list_item_cb)(const char *item, size_t len, void *arg);

/**
 * Walk a JSON list body ({"kind":..,"metadata":{..},"items":[..]}): items are
 * in list-item form (see codec_json_item_tail). One jsmn pass over the body.
 * -EBADMSG for malformed input or items that are not objects.
 */
int codec_list_parse_json(const char *json, size_t len, struct codec_list_page *page,
                          struct kf_arena *arena, codec_list_item_cb cb, void *arg);
/** Same for an enveloped protobuf list: items are bare object messages. */
int codec_list_parse_pb(const void *buf, size_t len, struct codec_list_page *page,
                        codec_list_item_cb cb, void *arg);

/** The code of a Status object (JSON, or enveloped protobuf); 0 when it has none or is malformed.
 */
int codec_status_code_json(const char *json, size_t len);
int codec_status_code_pb(const void *buf, size_t len);

/* ---- continue tokens -------------------------------------------------------------------- */

/**
 * Append the apiserver's continue token for a page ending at last_key (relative to
 * the list's prefix) of the state at rv (-1: "continue at the latest state", used in
 * the 410 of an expired token).
 */
int codec_continue_encode(struct codec_buf *out, int64_t rv, const char *last_key);
/**
 * Decode a continue token: its rv, its start key (in arena) and whether the key
 * itself is excluded. -EINVAL with the apiserver's text after "invalid continue
 * token: " in err; -ENOMEM.
 */
int codec_continue_decode(const char *token, struct kf_arena *arena, int64_t *rv, char **start,
                          bool *after, char *err, size_t errlen);

/* ---- the same object at another resourceVersion --------------------------------------- */

/**
 * Append json (one object) with metadata.resourceVersion replaced by rv, as
 * the watch cache sends an object leaving a filtered watch. meta must have been
 * extracted from these bytes. Every other byte is copied. -EBADMSG if the
 * object has no resourceVersion in place (absent, or written with escapes).
 */
int codec_json_with_rv(struct codec_buf *out, const char *json, size_t len,
                       const struct codec_meta *meta, uint64_t rv);
/** Same for an enveloped protobuf object (`k8s\0` + Unknown): lengths are rewritten. */
int codec_pb_with_rv(struct codec_buf *out, const void *buf, size_t len, uint64_t rv);

/* ---- watch streams ---------------------------------------------------------------- */

/** Default bound on one watch event (JSON line or protobuf frame). */
#define CODEC_WATCH_MAX_DEFAULT (64u << 20)

/**
 * Incremental reader of a watch stream held by the caller in one contiguous
 * buffer that grows at the end and is drained at the front: each call looks
 * at buf[0..len) and either returns one complete event or asks for more.
 */
struct codec_watch_reader {
    size_t max;     /* bound on one event; 0 means CODEC_WATCH_MAX_DEFAULT */
    size_t scanned; /* JSON: bytes already known to hold no newline */
};

/** A reader with the given bound (0: default). */
void codec_watch_reader_init(struct codec_watch_reader *r, size_t max);

/**
 * JSON lines: 0 with *event = the line without its newline (and without a
 * "\r" before it) and *consumed = bytes to drop from the front; blank lines
 * are skipped. KF_AGAIN when no complete line is buffered yet (*consumed then
 * counts skipped blank lines: drop them too, the reader remembers how far it
 * scanned relative to the new front); -EMSGSIZE when a line exceeds the bound.
 */
int codec_watch_next_json(struct codec_watch_reader *r, const char *buf, size_t len,
                          struct codec_str *event, size_t *consumed);
/**
 * Protobuf frames: 0 with *event = the frame's WatchEvent bytes; KF_AGAIN
 * when the frame is incomplete; -EMSGSIZE when its length exceeds the bound.
 */
int codec_watch_next_pb(struct codec_watch_reader *r, const void *buf, size_t len,
                        struct codec_str *event, size_t *consumed);

/** A decoded watch event: type, and the object's bytes inside the event. */
struct codec_watch_event {
    enum codec_event_type type;
    struct codec_str type_name;
    struct codec_str object; /* JSON object, or enveloped protobuf object */
};

/**
 * Split a JSON watch event line into type and object. The apiserver's layout
 * ({"type":..,"object":..}) is sliced without tokenising (the object is
 * validated when its metadata is extracted); other layouts are tokenised.
 */
int codec_watch_event_parse_json(const char *line, size_t len, struct codec_watch_event *ev);
/** Same for a protobuf WatchEvent message (a frame without its length). */
int codec_watch_event_parse_pb(const void *buf, size_t len, struct codec_watch_event *ev);

/* ---- selectors --------------------------------------------------------------------- */

enum codec_sel_op {
    CODEC_SEL_EQ, /* = and == */
    CODEC_SEL_NEQ,
    CODEC_SEL_IN,
    CODEC_SEL_NOTIN,
    CODEC_SEL_EXISTS,
    CODEC_SEL_NOT_EXISTS,
    CODEC_SEL_GT,
    CODEC_SEL_LT,
};

/** One requirement of a label selector; values sorted and unique. */
struct codec_label_req {
    const char *key;
    enum codec_sel_op op;
    const char **values;
    size_t n_values;
};

/** A parsed label selector: requirements sorted by key, ANDed; none = everything. */
struct codec_label_selector {
    struct codec_label_req *reqs;
    size_t n;
    struct kf_arena *arena;
};

/**
 * Parse a labelSelector query value. On error returns -EINVAL and writes the
 * apiserver's 400 message into errbuf ("unable to parse requirement: ...",
 * "found ',', expected: ..."); -ENOMEM. Free with codec_label_selector_free
 * (also after an error).
 */
int codec_label_selector_parse(const char *text, struct codec_label_selector *sel, char *errbuf,
                               size_t errlen);
void codec_label_selector_free(struct codec_label_selector *sel);
/** True if the object's labels satisfy every requirement. */
bool codec_label_selector_matches(const struct codec_label_selector *sel,
                                  const struct codec_meta *meta);
/** Same against a bare label array (e.g. an older version's labels). */
bool codec_label_selector_matches_kv(const struct codec_label_selector *sel,
                                     const struct codec_kv *labels, size_t n);

/** One term of a field selector. */
struct codec_field_req {
    const char *field; /* canonical path (static), e.g. "spec.nodeName" for "spec.host" */
    const char *value; /* unescaped */
    bool neq;          /* != */
};

/** A parsed field selector for one type: terms ANDed; none = everything. */
struct codec_field_selector {
    enum codec_kind kind;
    struct codec_field_req *reqs;
    size_t n;
    struct kf_arena *arena;
};

/**
 * Parse a fieldSelector query value for objects of type kind. Only the field
 * paths the apiserver supports for that type are accepted; otherwise -EINVAL
 * with its 400 message in errbuf ("field label not supported: spec.foo",
 * "\"spec.foo\" is not a known field selector: only \"metadata.name\",
 * \"metadata.namespace\"", "invalid selector: ..."). Free with
 * codec_field_selector_free (also after an error).
 */
int codec_field_selector_parse(const char *text, enum codec_kind kind,
                               struct codec_field_selector *sel, char *errbuf, size_t errlen);
void codec_field_selector_free(struct codec_field_selector *sel);
/** True if the object's fields satisfy every term. */
bool codec_field_selector_matches(const struct codec_field_selector *sel,
                                  const struct codec_meta *meta);
/**
 * Whether the selector pins field to a single value (a "=" or "==" term, as
 * the apiserver's RequiresExactMatch): true with *value set. The cache uses
 * it to dispatch a watcher to an index (spec.nodeName, metadata.name).
 */
bool codec_field_selector_pins(const struct codec_field_selector *sel, const char *field,
                               const char **value);

#endif
