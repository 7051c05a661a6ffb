/*
 * kube-sim: a simulated kube-apiserver (internal header shared by its files).
 *
 * Single-threaded: everything runs on one libevent loop. Objects are
 * immutable, reference-counted versions holding their JSON and protobuf
 * encodings; responses reference those bytes.
 */
#ifndef KF_LOADGEN_KUBE_SIM_H
#define KF_LOADGEN_KUBE_SIM_H

#include "core/core.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct kf_arena;
struct ProtobufCMessageDescriptor;

/* ---- string builder (json.c) ------------------------------------------------ */

/* A growable byte buffer; err latches the first allocation failure. */
struct ks_sb {
    char *p;
    size_t len, cap;
    int err;
};

void ks_sb_init(struct ks_sb *sb, size_t cap);
void ks_sb_free(struct ks_sb *sb);
/** Make room for extra more bytes; false (and sb->err set) on ENOMEM. */
bool ks_sb_reserve(struct ks_sb *sb, size_t extra);
void ks_sb_add(struct ks_sb *sb, const void *data, size_t n);
void ks_sb_adds(struct ks_sb *sb, const char *s);
void ks_sb_addc(struct ks_sb *sb, char c);
void ks_sb_printf(struct ks_sb *sb, const char *fmt, ...) KF_PRINTF(2, 3);
void ks_sb_u64(struct ks_sb *sb, uint64_t v);
void ks_sb_i64(struct ks_sb *sb, int64_t v);
/** NUL-terminate (not counted in len) and return the bytes; NULL on ENOMEM. */
char *ks_sb_cstr(struct ks_sb *sb);
/** Append s as a quoted JSON string escaped exactly as Go's encoding/json does. */
void ks_sb_json_str(struct ks_sb *sb, const char *s, size_t n);
void ks_sb_json_cstr(struct ks_sb *sb, const char *s);
/** Go's json.Indent(dst, src, "", "  "): the apiserver's pretty output. */
void ks_json_indent(struct ks_sb *out, const char *src, size_t n);

/* ---- JSON DOM (json.c) ------------------------------------------------------- */

enum ks_jt { KS_J_NULL, KS_J_BOOL, KS_J_NUM, KS_J_STR, KS_J_ARR, KS_J_OBJ };

struct ks_json {
    enum ks_jt t;
    bool b;
    const char *s; /* STR: unescaped, NUL-terminated; NUM: the literal */
    size_t n;
    const char *key; /* member name inside an object */
    size_t key_len;
    struct ks_json *kids, *next; /* members / elements, in order */
    size_t count;
};

/**
 * Parse text into a DOM allocated in arena. Strict RFC 8259 (depth limit 256).
 * On error returns -EINVAL and writes Go's wording ("invalid character 'x'
 * looking for beginning of value", "unexpected end of JSON input") to err.
 */
int ks_json_parse(struct kf_arena *arena, const char *text, size_t len, struct ks_json **out,
                  char *err, size_t err_size);
/** Member of an object by name, or NULL. */
struct ks_json *ks_json_get(const struct ks_json *obj, const char *key);
/** String member value, or NULL when absent or not a string. */
const char *ks_json_get_str(const struct ks_json *obj, const char *key);
/** Compact serialisation with Go escaping. */
void ks_json_write(struct ks_sb *sb, const struct ks_json *j);

/* ---- certificates (pki.c) ------------------------------------------------------ */

/**
 * Create (or reuse) ca.*, front-proxy-ca.*, and write apiserver.*, admin.*,
 * front-proxy-client.*, client-ca-bundle.crt and one user-<CN>.* per
 * "CN[=GROUP,...]" spec in dir.
 */
int ks_pki_setup(const char *dir, const char *const *user_specs, size_t n_users);
/** Write dir/client-ca-bundle.crt = ca.crt + front-proxy-ca.crt. */
int ks_pki_write_bundle(const char *dir);
/** Write a kubeconfig for the admin user with embedded base64 data. */
int ks_kubeconfig_write(const char *path, const char *server_url, const char *cert_dir);

/* ---- shared immutable bytes ------------------------------------------------------ */

/* Reference-counted bytes handed to px_response_write_ref() (single thread). */
struct ks_bytes {
    uint32_t refs;
    uint32_t len;
    char data[];
};

/** New bytes with refs = 1 holding a copy of data (len bytes); NULL on ENOMEM. */
struct ks_bytes *ks_bytes_new(const void *data, size_t len);
void ks_bytes_ref(struct ks_bytes *b);
void ks_bytes_unref(struct ks_bytes *b);
/** px_free_cb-compatible cleanup: arg is the struct ks_bytes. */
void ks_bytes_free_cb(const void *data, size_t len, void *arg);

/* A small set of current object versions (members of one index bucket). */
struct ks_objset {
    struct ks_obj **v;
    size_t n, cap;
};

/* ---- resources (resources.c) -------------------------------------------------------- */

enum { KS_MAX_FIELDS = 12 };

struct ks_table {
    struct ks_obj **items; /* sorted by key, bytewise (etcd key order) */
    size_t n, cap;
};

struct ks_res {
    const char *name;        /* "pods" */
    const char *singular;    /* "pod" */
    const char *kind;        /* "Pod" */
    const char *group;       /* "" for the core group */
    const char *version;     /* "v1" */
    const char *api_version; /* "v1", "coordination.k8s.io/v1" */
    const char *short_names; /* JSON array body: "\"po\"" or "" */
    const char *categories;  /* JSON array body or "" */
    bool namespaced;
    bool json_only; /* a custom resource: no protobuf */
    const char *subresources[4];
    const struct ProtobufCMessageDescriptor *desc; /* protobuf type (set by ks_res_bind) */
    /* field selector paths besides metadata.name/metadata.namespace */
    const char *fields[KS_MAX_FIELDS];
    size_t n_fields;
    /* JSON after "metadata" in a BOOKMARK object, e.g. ,"spec":{"containers":null},"status":{} */
    const char *bookmark_tail;
    /* a field the store indexes (pods: spec.nodeName), NULL for none */
    const char *index_field;
    /* runtime */
    size_t index;
    struct kf_map by_field; /* index_field value -> struct ks_objset * */
    struct ks_table table;
    struct ks_evq *events;        /* this resource's part of the history */
    struct kf_list watchers;      /* watches not pinned to one object or index value */
    struct kf_map watch_by_key;   /* "ns/name" -> watches with metadata.name=name */
    struct kf_map watch_by_field; /* index_field value -> watches pinned to it */
    uint64_t n_watchers;
};

extern struct ks_res *ks_resources[];
extern size_t ks_n_resources;

/** Resource by group and plural name ("" for core); NULL if unknown. */
struct ks_res *ks_res_find(const char *group, const char *version, const char *name);
/** Resource by kind. */
struct ks_res *ks_res_by_kind(const char *kind);
/** True when res has subresource sub ("status", "binding"). */
bool ks_res_has_subresource(const struct ks_res *res, const char *sub);
/** "pods" or "leases.coordination.k8s.io": how error messages name a resource. */
const char *ks_res_qualified(const struct ks_res *res, char *buf, size_t size);
/** Attach the protobuf descriptors to the resources; -ENOENT if some are missing. */
int ks_res_bind(void);

extern struct ks_res ks_res_pods, ks_res_nodes, ks_res_configmaps, ks_res_secrets, ks_res_services,
    ks_res_namespaces, ks_res_events, ks_res_endpointslices, ks_res_leases, ks_res_runtimeclasses,
    ks_res_csidrivers, ks_res_widgets;

/* ---- objects and store (store.c) ---------------------------------------------------- */

/*
 * One immutable version of one object. One allocation holds the struct, the
 * strings, the JSON (with kind/apiVersion, compact, followed by a '\n' that
 * is not counted in json_len) and the enveloped protobuf.
 */
struct ks_obj {
    uint32_t refs;
    uint32_t json_len;
    uint32_t json_body_off; /* offset of "\"metadata\"": a list item is "{" + json + off */
    uint32_t pb_len;
    uint32_t pb_item_off, pb_item_len; /* "0x12 len raw" inside the envelope = list item */
    uint32_t n_labels;
    uint32_t n_objrefs;
    bool terminating; /* deletionTimestamp set */
    struct ks_res *res;
    uint64_t rv;
    int64_t created; /* creationTimestamp, Unix seconds */
    const char *key; /* "ns/name" or "name": the etcd key below the resource prefix */
    const char *ns;  /* "" when cluster-scoped */
    const char *name;
    const char *uid;
    const char *json;
    const uint8_t *pb;          /* NULL for JSON-only resources */
    const char *const *labels;  /* n_labels pairs key, value; sorted by key */
    const char *const *fields;  /* res->n_fields values ("" when absent) */
    const char *const *objrefs; /* pods: "configmaps/x", "secrets/y" (node authorizer) */
};

/* What ks_obj_new copies into the new object. */
struct ks_obj_parts {
    struct ks_res *res;
    uint64_t rv;
    int64_t created;
    bool terminating;
    const char *ns, *name, *uid;
    const char *json;
    size_t json_len, json_body_off;
    const uint8_t *pb;
    size_t pb_len, pb_item_off, pb_item_len;
    const char *const *labels; /* pairs */
    size_t n_labels;
    const char *fields[KS_MAX_FIELDS];
    const char *const *objrefs;
    size_t n_objrefs;
};

/** A new object version with refs = 1; NULL on ENOMEM. */
struct ks_obj *ks_obj_new(const struct ks_obj_parts *parts);
static inline struct ks_obj *ks_obj_ref(struct ks_obj *o)
{
    o->refs++;
    return o;
}
void ks_obj_unref(struct ks_obj *o);
/** px_free_cb-compatible cleanup: arg is the struct ks_obj. */
void ks_obj_free_cb(const void *data, size_t len, void *arg);
/** Value of a label, or NULL. */
const char *ks_obj_label(const struct ks_obj *o, const char *key);
/** Value of a field selector path ("metadata.name", "spec.nodeName"), or NULL if unsupported. */
const char *ks_obj_field(const struct ks_obj *o, const char *path);
/** Bytes in memory for this version (for the startup report). */
size_t ks_obj_size(const struct ks_obj *o);

enum ks_ev_type { KS_ADDED = 0, KS_MODIFIED = 1, KS_DELETED = 2, KS_BOOKMARK = 3, KS_ERROR = 4 };
extern const char *const ks_ev_type_name[];

/* Encodings of an event, built on first use. */
enum ks_enc {
    KS_ENC_JSON,         /* as recorded (type, obj) */
    KS_ENC_PB,           /* same, protobuf frame */
    KS_ENC_JSON_ADDED,   /* obj as ADDED: filtered watch, object started matching */
    KS_ENC_PB_ADDED,     /* */
    KS_ENC_JSON_DELETED, /* prev at this rv as DELETED: filtered watch, stopped matching */
    KS_ENC_PB_DELETED,   /* */
    KS_ENC_N
};

struct ks_event {
    uint64_t rv;
    enum ks_ev_type type;
    struct ks_res *res;
    struct ks_obj *obj;  /* the new version; for DELETED the last one at the delete rv */
    struct ks_obj *prev; /* the version before, NULL for ADDED */
    struct ks_obj *prev_at_rv;
    struct ks_bytes *enc[KS_ENC_N];
};

/* A resource's events in rv order (a ring). */
struct ks_evq {
    struct ks_event **v;
    size_t cap, head, n;
};
static inline struct ks_event *ks_evq_at(const struct ks_evq *q, size_t i)
{
    return q->v[(q->head + i) % q->cap];
}
/** Index of the first event with rv > after (q->n if none). */
size_t ks_evq_after(const struct ks_evq *q, uint64_t after);

typedef void (*ks_event_cb)(struct ks_event *ev, void *arg);

struct ks_store {
    uint64_t rv;           /* last resourceVersion handed out */
    uint64_t compacted_rv; /* history starts after this */
    size_t history_max;
    struct ks_evq all; /* every event, for eviction order */
    ks_event_cb on_event;
    void *on_event_arg;
    uint64_t n_objects;
    uint64_t bytes;
    uint64_t events_total;
};

extern struct ks_store ks_store;

/** Reset the store with a history bound of history_max events. */
int ks_store_init(size_t history_max);
/** Free every object and event. */
void ks_store_free(void);
/** The resourceVersion for the next write. */
static inline uint64_t ks_store_next_rv(void)
{
    return ++ks_store.rv;
}
/** Current version of res/key (borrowed), or NULL. */
struct ks_obj *ks_store_get(struct ks_res *res, const char *key);
/**
 * Commit a version made with rv = ks_store_next_rv(): it replaces the current
 * one (or is added), an event is recorded and on_event runs. Takes over the
 * caller's reference. record=false (initial load) keeps no event.
 */
int ks_store_put(struct ks_obj *obj, bool record);
/**
 * Remove res/key; final is the last version re-encoded at the delete rv and
 * becomes the DELETED event's object. Takes over final's reference.
 */
int ks_store_delete(struct ks_obj *final);
/** Drop all history: watches and Exact lists from before now get 410. */
void ks_store_compact(void);

/* First index in table whose key is >= key. */
size_t ks_table_lower_bound(const struct ks_table *t, const char *key);

/*
 * A consistent view of a key range: referenced objects sorted by key. Built
 * from the current state, or at an older rv by undoing the history.
 */
struct ks_snapshot {
    struct ks_obj **items;
    size_t n;
    uint64_t rv;
};

/**
 * Snapshot of res at rv (0 = now) for keys with prefix (NULL = all).
 * -ERANGE when rv is older than the history (410), -EAGAIN when rv is in
 * the future.
 */
int ks_snapshot_take(struct ks_snapshot *s, struct ks_res *res, const char *prefix, uint64_t rv);
void ks_snapshot_release(struct ks_snapshot *s);
/** Current objects of res whose index_field equals value (NULL when none). */
const struct ks_objset *ks_store_indexed(struct ks_res *res, const char *value);
/** Snapshot (now) of the objects of res with index_field == value, under prefix. */
int ks_snapshot_take_indexed(struct ks_snapshot *s, struct ks_res *res, const char *prefix,
                             const char *value);

/* ---- protobuf wire helpers (pbw.c) ---------------------------------------------------- */

size_t ks_pb_varint_len(uint64_t v);
/** Write v as a varint to out (10 bytes room); returns the bytes used. */
size_t ks_pb_put_varint(uint8_t *out, uint64_t v);
void ks_pb_varint(struct ks_sb *sb, uint64_t v);
void ks_pb_tag(struct ks_sb *sb, unsigned field, unsigned wire_type);
void ks_pb_bytes(struct ks_sb *sb, unsigned field, const void *data, size_t len);
/** A string field, written even when empty (gogo's non-nullable fields). */
void ks_pb_str(struct ks_sb *sb, unsigned field, const char *s);
void ks_pb_int(struct ks_sb *sb, unsigned field, int64_t v);
/** Open a length-delimited field; returns the start to give ks_pb_end(). */
size_t ks_pb_begin(struct ks_sb *sb, unsigned field);
void ks_pb_end(struct ks_sb *sb, size_t start);
/** "k8s\0" + runtime.Unknown{typeMeta, raw: ...} up to the raw bytes. */
void ks_pb_envelope_begin(struct ks_sb *sb, const char *api_version, const char *kind,
                          size_t *raw_start);
void ks_pb_envelope_end(struct ks_sb *sb, size_t raw_start);
/** metav1.ListMeta as field `field`; remaining < 0 leaves remainingItemCount out. */
void ks_pb_list_meta(struct ks_sb *sb, unsigned field, uint64_t rv, const char *cont,
                     int64_t remaining);
/** The raw object bytes inside "k8s\0" + runtime.Unknown; -EINVAL when malformed. */
int ks_pb_unwrap(const uint8_t *data, size_t len, const uint8_t **raw, size_t *raw_len);
/** Read a varint at *p (< end), advancing *p; -EINVAL when truncated. */
int ks_pb_read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v);
/** A protobuf watch frame: 4-byte length + WatchEvent{type, object{raw: obj}}. */
void ks_watch_frame(struct ks_sb *sb, const char *type, const uint8_t *obj, size_t obj_len);

/* ---- Status (status.c) ---------------------------------------------------------------- */

struct ks_cause {
    const char *reason, *message, *field;
};

struct ks_status {
    int code;
    const char *status; /* "Success" / "Failure" */
    const char *message;
    const char *reason;
    bool has_details;
    const char *d_name, *d_group, *d_kind, *d_uid;
    int retry_after;
    struct ks_cause causes[8];
    size_t n_causes;
    const char *continue_token;
    bool no_code; /* Status.code left out (0), e.g. a DELETE's success; HTTP status is code */
    char msgbuf[1024];
};

/** A Status with code, reason and message (copied); no details. */
void ks_status_init(struct ks_status *st, int code, const char *reason, const char *message);
/** Add details {name, group, kind}. Strings are borrowed. */
void ks_status_details(struct ks_status *st, const char *name, const char *group, const char *kind);
/** Compact JSON (no trailing newline). */
void ks_status_json(struct ks_sb *sb, const struct ks_status *st);
/** Enveloped protobuf. */
void ks_status_pb(struct ks_sb *sb, const struct ks_status *st);
/** An ERROR watch event carrying st, in JSON (one line) or as a protobuf frame. */
void ks_status_watch_event(struct ks_sb *sb, const struct ks_status *st, bool pb);

/* ---- JSON <-> protobuf (conv.c) --------------------------------------------------------- */

struct ProtobufCMessage;

enum ks_conv_err_kind { KS_CONV_OK = 0, KS_CONV_UNKNOWN, KS_CONV_TYPE };

struct ks_conv_error {
    enum ks_conv_err_kind kind;
    char field[512];  /* JSON path of the offending field, e.g. spec.containers[0].foo */
    char detail[600]; /* Go's wording: unknown field "spec.foo" / cannot unmarshal ... */
};

/**
 * Fill a message of type desc from a JSON object (strict: unknown fields are
 * errors). Normalises root in place (nulls dropped, numeric quantities made
 * strings). Top-level "kind"/"apiVersion" are skipped. Memory from arena.
 */
int ks_conv_from_json(const struct ProtobufCMessageDescriptor *desc, struct ks_json *root,
                      struct kf_arena *arena, struct ProtobufCMessage **out,
                      struct ks_conv_error *err);
/** The JSON DOM of a message (fields in field-number order, empty values left out). */
int ks_conv_to_json(const struct ProtobufCMessage *msg, struct kf_arena *arena,
                    struct ks_json **out, struct ks_conv_error *err);
/**
 * Append "k8s\0" + runtime.Unknown{typeMeta, raw = msg} to out (which must
 * start empty); item_off/item_len give the "0x12 len raw" slice (a list item).
 */
int ks_conv_pack(const struct ProtobufCMessage *msg, const char *api_version, const char *kind,
                 struct ks_sb *out, size_t *item_off, size_t *item_len);
/** Unpack raw protobuf bytes (no envelope) into arena memory; -EINVAL when malformed. */
int ks_conv_unpack(const struct ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len,
                   struct kf_arena *arena, struct ProtobufCMessage **out);
void *ks_conv_arena_alloc(void *arena, size_t size);
void ks_conv_arena_free(void *arena, void *ptr);
/* A message's field numbers in declaration (Go struct) order; generated table. */
struct ks_field_order {
    const char *message; /* full name, e.g. "k8s.io.api.core.v1.PodSpec" */
    const uint32_t *numbers;
    size_t n;
};
extern const struct ks_field_order ks_field_orders[]; /* sorted by message */
extern const size_t ks_n_field_orders;

/** RFC 3339 (with optional fraction and offset) to Unix seconds + nanoseconds. */
int ks_time_parse(const char *s, int64_t *sec, int32_t *nsec);
/** Unix time as "2006-01-02T15:04:05Z" (micro: with 6 fractional digits). */
void ks_time_format(char *buf, size_t size, int64_t sec, int32_t nsec, bool micro);

/* ---- building object versions (obj.c) --------------------------------------------------- */

struct ks_json *ks_json_new(struct kf_arena *a, enum ks_jt t);
struct ks_json *ks_json_new_str(struct kf_arena *a, const char *s);
struct ks_json *ks_json_new_num(struct kf_arena *a, int64_t v);
/** Deep copy (a node may live in one tree only: its next link belongs to it). */
struct ks_json *ks_json_clone(struct kf_arena *a, const struct ks_json *j);
/** Remove member key from an object (no-op when absent). */
void ks_json_remove(struct ks_json *obj, const char *key);
/**
 * Set obj[key] = val: replaced in place if present, else inserted before the
 * first member ranked later in order (order NULL: appended).
 */
void ks_json_set(struct kf_arena *a, struct ks_json *obj, const char *key, struct ks_json *val,
                 const char *const *order, size_t n_order);
/** Member at a dotted path ("spec.nodeName"), or NULL. */
const struct ks_json *ks_json_path(const struct ks_json *j, const char *path);
/** root.metadata (created when missing). */
struct ks_json *ks_meta(struct kf_arena *a, struct ks_json *root);
/** Set a metadata field, keeping ObjectMeta's Go field order. */
void ks_meta_set(struct kf_arena *a, struct ks_json *meta, const char *key, struct ks_json *val);
/**
 * Build an object version of res from root (metadata must be complete):
 * kind/apiVersion put first, checked and converted to protobuf (err says why
 * not: -EINVAL), serialised, metadata/labels/fields extracted.
 */
int ks_obj_build(struct ks_res *res, struct ks_json *root, struct kf_arena *a, struct ks_obj **out,
                 struct ks_conv_error *err);
/**
 * ks_obj_build for a DOM parsed from text that is already canonical (compact,
 * Go-escaped, kind and apiVersion first, as the generator writes it): the
 * text is stored as it is instead of being serialised again.
 */
int ks_obj_build_text(struct ks_res *res, struct ks_json *root, const char *text, size_t text_len,
                      struct kf_arena *a, struct ks_obj **out, struct ks_conv_error *err);
/** ks_obj_build_text that also hands back the message (in arena a). */
int ks_obj_build_msg(struct ks_res *res, struct ks_json *root, const char *text, size_t text_len,
                     struct kf_arena *a, struct ks_obj **out, struct ProtobufCMessage **msg_out,
                     struct ks_conv_error *err);
/** Parse a stored version's JSON back into a DOM. */
int ks_obj_dom(const struct ks_obj *o, struct kf_arena *a, struct ks_json **out);
/** A copy of o with metadata.resourceVersion = rv; NULL on failure. */
struct ks_obj *ks_obj_with_rv(const struct ks_obj *o, uint64_t rv);

/* ---- patches (patch.c) ---------------------------------------------------------------------- */

/** Merge patch (RFC 7386) or, strategic, Kubernetes strategic merge patch into target. */
int ks_patch_merge(struct kf_arena *a, struct ks_json *target, struct ks_json *patch,
                   bool strategic, const struct ks_res *res, char *err, size_t errlen);
/** RFC 6902 JSON patch (add, remove, replace, test) applied to root in place. */
int ks_patch_json(struct kf_arena *a, struct ks_json *root, struct ks_json *ops, char *err,
                  size_t errlen);
/** Deep equality of two JSON values (object member order ignored). */
bool ks_json_equal(const struct ks_json *x, const struct ks_json *y);

/* ---- selectors (sel.c) ------------------------------------------------------------------ */

struct ks_sel;

/**
 * Parse labelSelector and fieldSelector (either may be NULL) for res. On
 * error -EINVAL with the apiserver's message in err (a 400).
 */
int ks_sel_parse(struct kf_arena *a, struct ks_res *res, const char *labels, const char *fields,
                 struct ks_sel **out, char *err, size_t errlen);
/** Does o match? (NULL selector matches everything.) */
bool ks_sel_match(const struct ks_sel *s, const struct ks_obj *o);
/** No terms at all. */
bool ks_sel_empty(const struct ks_sel *s);
/** The value of an "=" field term on path (e.g. spec.nodeName=X), or NULL. */
const char *ks_sel_exact_field(const struct ks_sel *s, const char *path);

/* ---- requests (api.c) ------------------------------------------------------------------- */

struct px_request;
struct event_base;
struct event;

#define KS_CT_PB "application/vnd.kubernetes.protobuf"

enum ks_verb {
    KS_V_GET,
    KS_V_LIST,
    KS_V_WATCH,
    KS_V_CREATE,
    KS_V_UPDATE,
    KS_V_PATCH,
    KS_V_DELETE,
    KS_V_DELETECOLLECTION,
    KS_V_N
};
extern const char *const ks_verb_name[KS_V_N];

enum ks_fmt { KS_FMT_JSON, KS_FMT_PB, KS_FMT_TABLE };

enum { KS_MAX_GROUPS = 16 };

struct ks_user {
    const char *name;
    const char *uid;
    const char *groups[KS_MAX_GROUPS];
    size_t n_groups;
    const char *extra_keys[8];
    const char *extra_values[8];
    size_t n_extra;
};

struct ks_req;
typedef void (*ks_req_cb)(struct ks_req *r);

/* One API request; lives in the request's arena. */
struct ks_req {
    struct px_request *px;
    struct kf_arena *arena;
    const char *method;
    enum ks_verb verb;
    bool verb_known;
    struct ks_res *res;
    const char *ns, *name, *sub;
    enum ks_fmt fmt;
    bool pretty;
    bool err_pb; /* Status bodies in protobuf */
    bool counted;
    struct ks_user user;
    int code;
    uint64_t start_us;
    struct event *timer;
    bool table_columns_sent;   /* a Table watch sends its columns once */
    uint64_t wait_deadline_ms; /* waiting for a future resourceVersion */
    ks_req_cb wait_again;
};

extern struct event_base *ks_base;
/** host:port that /api advertises. */
extern const char *ks_advertise;
extern char ks_advertise_buf[64];

/** The px_handler_cb of the API listener(s). */
void ks_api_handle(struct px_request *px, void *arg);
void ks_rng_seed(uint64_t seed);
uint64_t ks_rng(void);
/** Uniform in [0, 1). */
double ks_rng_unit(void);
/** A random (v4) UUID string. */
void ks_uuid(char out[37]);
/** Query parameter parsed like Go's strconv.ParseBool accepting true. */
bool ks_param_bool(struct ks_req *r, const char *name);

/** Audit-Id, Cache-Control, Content-Type (if not NULL), APF headers. */
void ks_headers(struct ks_req *r, const char *content_type);
/** Whole response; JSON is pretty-printed for curl / ?pretty. Counts the request. */
void ks_reply_body(struct ks_req *r, int code, const char *ctype, const char *body, size_t len);
void ks_reply_sb_json(struct ks_req *r, int code, struct ks_sb *sb);
void ks_reply_status(struct ks_req *r, const struct ks_status *st);
void ks_reply_error(struct ks_req *r, int code, const char *reason, const char *fmt, ...)
    KF_PRINTF(4, 5);
void ks_reply_bad_request(struct ks_req *r, const char *fmt, ...) KF_PRINTF(2, 3);
void ks_reply_not_found(struct ks_req *r, struct ks_res *res, const char *name);
void ks_reply_no_route(struct ks_req *r);
/** One object version in the negotiated format (bytes referenced, not copied). */
void ks_reply_obj(struct ks_req *r, int code, struct ks_obj *o);
/** Count a request that finished outside ks_reply_* (streams). */
void ks_req_count(struct ks_req *r, int code);

/* discovery and non-resource endpoints (discovery.c) */
void ks_discovery(struct ks_req *r, const char *group, const char *version);
void ks_nonresource(struct ks_req *r, char **seg, size_t n);

/* reads (read.c), watches (watch.c), writes (write.c) */
void ks_handle_get(struct ks_req *r);
void ks_handle_list(struct ks_req *r);
void ks_handle_watch(struct ks_req *r);
void ks_handle_create(struct ks_req *r);
void ks_handle_update(struct ks_req *r);
void ks_handle_patch(struct ks_req *r);
void ks_handle_delete(struct ks_req *r);
void ks_handle_delete_collection(struct ks_req *r);

/* WebSocket server side (ws.c), shared by exec and port-forward */
struct evbuffer;

enum {
    KS_WS_CONT = 0,
    KS_WS_TEXT = 1,
    KS_WS_BINARY = 2,
    KS_WS_CLOSE = 8,
    KS_WS_PING = 9,
    KS_WS_PONG = 10
};
#define KS_WS_MAX_MESSAGE (1024 * 1024)

/* Reassembly of a fragmented message. */
struct ks_ws {
    struct ks_sb msg;
    int msg_op; /* the message being assembled, 0 for none */
};

/** A complete data message (op TEXT/BINARY) or a close frame (op CLOSE); false stops reading. */
typedef bool (*ks_ws_message_cb)(void *arg, int op, const uint8_t *p, size_t len);

void ks_ws_init(struct ks_ws *w);
void ks_ws_free(struct ks_ws *w);
/** Queue one unmasked frame on out: op, then the channel byte (if channel >= 0) and data. */
void ks_ws_frame(struct evbuffer *out, int op, int channel, const void *data, size_t len);
/**
 * Consume one client frame from in: pings are answered on out, pongs ignored,
 * complete messages and close frames go to cb. Returns 1 when a frame was
 * consumed, 0 when in holds no complete frame, -1 on a protocol error (an
 * unmasked frame, a message over KS_WS_MAX_MESSAGE), after a close frame, or
 * when cb returned false.
 */
int ks_ws_read(struct ks_ws *w, struct evbuffer *in, struct evbuffer *out, ks_ws_message_cb cb,
               void *arg);
/** Does a comma/space separated header value hold token (case-insensitive)? */
bool ks_header_has_token(const char *value, const char *token);
/**
 * Check r is a WebSocket upgrade offering one of protos (tried in order) and
 * set the 101's Upgrade, Sec-WebSocket-Accept and Sec-WebSocket-Protocol
 * headers. Returns the chosen protocol, or NULL (no header set) when r is not
 * such a request.
 */
const char *ks_ws_accept(struct ks_req *r, const char *const *protos, size_t n);

/* SPDY/3.1 framing (spdy.c), what port-forward speaks */
struct z_stream_s;

enum ks_spdy_type {
    KS_SPDY_DATA = 0, /* not a control type: a data frame */
    KS_SPDY_SYN_STREAM = 1,
    KS_SPDY_SYN_REPLY = 2,
    KS_SPDY_RST_STREAM = 3,
    KS_SPDY_SETTINGS = 4,
    KS_SPDY_PING = 6,
    KS_SPDY_GOAWAY = 7,
    KS_SPDY_HEADERS = 8,
    KS_SPDY_WINDOW_UPDATE = 9,
};
enum { KS_SPDY_FLAG_FIN = 0x01 };
/* RST_STREAM and GOAWAY status codes used here */
enum { KS_SPDY_PROTOCOL_ERROR = 1, KS_SPDY_REFUSED_STREAM = 3, KS_SPDY_CANCEL = 5 };
/* Bounds (bigger frames are a session error; kubectl's DATA frames are at most 32 KiB) */
#define KS_SPDY_MAX_DATA         (1024 * 1024)
#define KS_SPDY_MAX_CONTROL      (64 * 1024)
#define KS_SPDY_MAX_HEADER_BLOCK (64 * 1024) /* decompressed */
#define KS_SPDY_MAX_HEADERS      32

/* One name/value pair; the bytes are not NUL-terminated (value: NUL between values). */
struct ks_spdy_header {
    const char *name, *value;
    size_t name_len, value_len;
};

/* A parsed frame; pointers valid until the next parse or the input is drained. */
struct ks_spdy_frame {
    int type; /* enum ks_spdy_type, or an unknown control type (to be ignored) */
    uint8_t flags;
    uint32_t stream_id;  /* GOAWAY: the last good stream */
    uint32_t value;      /* RST/GOAWAY status, PING id, WINDOW_UPDATE delta, SETTINGS count,
                            SYN_STREAM associated-to stream */
    const uint8_t *data; /* DATA payload */
    size_t len;
    struct ks_spdy_header headers[KS_SPDY_MAX_HEADERS]; /* SYN_STREAM, SYN_REPLY, HEADERS */
    size_t n_headers;
};

/* One direction's header compression each way (a connection's whole life). */
struct ks_spdy {
    struct z_stream_s *inflate, *deflate;
    bool inflate_ok, deflate_ok;
    struct ks_sb block; /* the last decompressed header block */
};

/** The SPDY/3 zlib dictionary (1423 bytes, Adler-32 0xe3c6a7c2). */
const uint8_t *ks_spdy_dictionary(size_t *len);
int ks_spdy_init(struct ks_spdy *s);
void ks_spdy_free(struct ks_spdy *s);
/** Size of the frame whose first 8 bytes are head; -EMSGSIZE past the bounds above. */
int ks_spdy_frame_size(const uint8_t head[8], size_t *size);
/**
 * Parse exactly one whole frame (len = its ks_spdy_frame_size). -EPROTO for
 * a malformed one: a wrong version or length, stream id 0 where one is
 * needed, a header block that does not inflate or parse (after that the
 * compression state is lost: end the session).
 */
int ks_spdy_parse(struct ks_spdy *s, const uint8_t *p, size_t len, struct ks_spdy_frame *f);
/** Copy the single value of header name (case-insensitive) into out; false if absent. */
bool ks_spdy_header(const struct ks_spdy_frame *f, const char *name, char *out, size_t size);
/** Queue a DATA frame (len < 2^24). */
void ks_spdy_write_data(struct evbuffer *out, uint32_t stream_id, const void *data, size_t len,
                        bool fin);
/** Queue RST_STREAM(a = stream, b = status), GOAWAY(a = last good, b = status), PING(a = id). */
void ks_spdy_write_control(struct evbuffer *out, int type, uint32_t a, uint32_t b);
/** Queue SYN_STREAM, SYN_REPLY or HEADERS with a compressed header block. */
int ks_spdy_write_headers(struct ks_spdy *s, struct evbuffer *out, int type, uint32_t stream_id,
                          uint8_t flags, const struct ks_spdy_header *h, size_t n);

/* exec (exec.c), port-forward (portforward.c), logs (logs.c): pod subresources served here
 * but not listed by kube-sim's discovery (it names only those with objects) */
static inline bool ks_is_pod_sub(const struct ks_req *r, const char *sub)
{
    return r->res == &ks_res_pods && r->sub && strcmp(r->sub, sub) == 0;
}
/** pods/NAME/exec? */
/** exec or attach: both speak the kubelet's remote command protocol. */
static inline bool ks_is_exec(const struct ks_req *r)
{
    return ks_is_pod_sub(r, "exec") || ks_is_pod_sub(r, "attach");
}
/** Serve pods/NAME/exec or /attach over WebSocket (the request is authorized already). */
void ks_handle_exec(struct ks_req *r);
/** Free every exec session (shutdown, after the servers are freed). */
void ks_exec_shutdown(void);
/**
 * Serve pods/NAME/portforward (authorized already): SPDY/3.1 with an echo
 * server on every port, over WebSocket (subprotocol SPDY/3.1+portforward.k8s.io,
 * kubectl 1.31+) or a plain SPDY/3.1 upgrade.
 */
void ks_handle_portforward(struct ks_req *r);
/** Free every port-forward session (shutdown, after the servers are freed). */
void ks_portforward_shutdown(void);
/** Open port-forward sessions; *streams gets their open streams. */
size_t ks_portforward_count(size_t *streams);
/** Serve GET pods/NAME/log (authorized already): fake lines, tailLines, follow, ... */
void ks_handle_log(struct ks_req *r);
/** End every follow=true log stream (shutdown). */
void ks_logs_shutdown(void);
/** Open follow=true log streams. */
size_t ks_logs_following(void);

/* writes (write.c) */
extern unsigned ks_pod_termination_ms;
/** Cancel pending graceful-deletion confirmations (shutdown). */
void ks_write_shutdown(void);
/** The request body as a JSON DOM (JSON or protobuf); NULL after sending the error. */
struct ks_json *ks_body_dom(struct ks_req *r, const struct ks_res *res, bool patch);
/** Store dom as the next version (rv set here); NULL after sending the error. */
struct ks_obj *ks_commit(struct ks_req *r, struct ks_res *res, struct ks_json *dom);
/** Bind a pod DOM to node (spec.nodeName + PodScheduled condition). */
int ks_pod_bind(struct kf_arena *a, struct ks_json *pod, const char *node);
void ks_reply_already_exists(struct ks_req *r, const struct ks_res *res, const char *name);
void ks_reply_ns_not_found(struct ks_req *r, const char *ns);

/* tables (table.c) */
/** Go's duration.HumanDuration (kubectl's AGE column). */
void ks_human_duration(char *buf, size_t size, int64_t secs);
void ks_table_reply_obj(struct ks_req *r, int code, struct ks_obj *o);
/** One watch event whose object is a Table row (kubectl get -w). */
void ks_table_watch_event(struct ks_sb *sb, struct ks_req *r, enum ks_ev_type type,
                          const struct ks_obj *o, uint64_t rv);
void ks_table_reply_list(struct ks_req *r, const struct ks_snapshot *snap, const uint32_t *idx,
                         size_t n, const char *cont, int64_t remaining);

/* shared by reads, watches and writes (read.c) */
/** Parse a resourceVersion parameter ("" -> 0); on error the 422 is sent. */
int ks_parse_rv(struct ks_req *r, const char *text, uint64_t *rv);
/** Wait up to 3 s for the store to reach rv, re-running again(r); then 504. */
bool ks_wait_for_rv(struct ks_req *r, uint64_t rv, ks_req_cb again);
/** The store key of name in the request's namespace. */
const char *ks_req_key(struct ks_req *r, const char *name);
/** "ns/" for a namespaced request, NULL for all namespaces. */
const char *ks_req_prefix(struct ks_req *r);
/** The request's label and field selectors; NULL after sending the 400. */
struct ks_sel *ks_req_selector(struct ks_req *r);
/** ValidateListOptions (watch=false) / validateWatchOptions; false after sending the 422. */
bool ks_validate_list_opts(struct ks_req *r, bool watch);
/** base64url({"v":"meta.k8s.io/v1","rv":rv,"start":"<start>\u0000"}); rv_signed < 0 writes it. */
char *ks_continue_encode(struct kf_arena *a, uint64_t rv, int64_t rv_signed, const char *start);
/** Decode a continue token; err gets the text after "invalid continue token: ". */
int ks_continue_decode(struct kf_arena *a, const char *token, char **start, bool *after,
                       int64_t *rv, char *err, size_t errlen);

/* watches (watch.c) */
extern unsigned ks_bookmark_interval_ms;
extern unsigned ks_slow_watch_ms;
/** Hook the watchers to the store's event stream; start the slow-watcher sweep. */
void ks_watch_init(void);
/** Close every watch and stop the sweep (shutdown). */
void ks_watch_shutdown(void);
/** End every watch (abort: reset the streams and GOAWAY their connections). */
void ks_watch_close_all(bool abort);
uint64_t ks_watch_count(void);
/** LIST responses being streamed now (the "lists" of /stats). */
uint64_t ks_list_count(void);

/* ---- auth (auth.c) -------------------------------------------------------------------------- */

/** Authenticate; on failure the 401 is sent and false returned. */
bool ks_authenticate(struct ks_req *r);
/** Authorize r's verb on its resource; on denial the 403 is sent and false returned. */
bool ks_authorize_request(struct ks_req *r);
enum ks_decision { KS_DENY = 0, KS_ALLOW = 1, KS_NO_OPINION = 2 };

/* What is being asked (authorizer.Attributes). */
struct ks_attrs {
    const char *verb, *group, *resource, *sub, *ns, *name;
    const char *path; /* non-resource requests */
    bool nonresource;
};

/** Load the policy file (tokens, anonymous, allow rules); -errno on failure (logged). */
int ks_policy_load(const char *path);
void ks_policy_free(void);
/** Remember the CA subjects that tell x509 users from front-proxy clients. */
void ks_auth_init(const char *cert_dir);
/** The user of a static token (arena memory), or NULL. */
const struct ks_user *ks_token_user(struct kf_arena *a, const char *token);
/** Decide; reason (may stay NULL) says why, as the Node authorizer words its denials. */
enum ks_decision ks_authorize(const char *user, const char *const *groups, size_t n_groups,
                              const struct ks_attrs *a, const char **reason);
void ks_reply_forbidden(struct ks_req *r, const struct ks_attrs *a, const char *reason);
/** Authorize a GET of a non-resource path; false after sending the 403. */
bool ks_authorize_path(struct ks_req *r, const char *path);
/** TokenReview / SubjectAccessReview; true when the path was one of them (reply sent). */
bool ks_review_handles(struct ks_req *r, const char *group, char **seg, size_t n);

/* ---- the generated cluster and its churn (gen.c, churn.c) ------------------------------- */

struct ks_gen_config {
    size_t nodes, pods, configmaps, secrets;
    const char *ca_file; /* PEM for every namespace's kube-root-ca.crt */
};

/** Generate the initial cluster (no events: the history starts after it). */
int ks_gen_cluster(const struct ks_gen_config *c);
void ks_gen_free(void);
/* Generator helpers shared by gen.c and gen_pod.c. */
struct ks_pod_spec {
    const char *ns;
    int app;     /* app index within the namespace */
    int cm, sec; /* referenced configmap / secret index, -1 for none */
    const char *rs_uid;
    const char *hash; /* pod-template-hash */
};
/** count pods of one app (pod indexes first.. spread over nodes), stored without events. */
int ks_gen_app_pods(struct ks_sb *sb, const struct ks_pod_spec *p, size_t first, size_t count,
                    size_t nodes);
void ks_gen_hex(char *out, size_t nbytes);
void ks_gen_suffix5(char *out);
void ks_gen_node_name(char *buf, size_t n, int i);
/** base time of the generated cluster minus ago seconds, RFC 3339. */
void ks_gen_time(char *buf, size_t n, int64_t ago);

/** Parse, build and store one object from JSON (record: as an event). */
int ks_gen_load(struct ks_res *res, const char *json, size_t len, bool record);
/** Start the churn timer: rate updates per second (0 = none). */
int ks_churn_start(double rate);
void ks_churn_set_rate(double rate);
double ks_churn_rate(void);
void ks_churn_stop(void);
/** Store a replacement for a deleted pod (its DOM): new name, uid, node. */
void ks_churn_respawn(struct kf_arena *a, struct ks_json *pod);

/* ---- faults and metrics (admin.c) --------------------------------------------------------- */

struct ks_faults {
    bool not_ready;
    double error429, error5xx;
    unsigned delay_ms;
};
extern struct ks_faults ks_faults;

void ks_metrics_request(const char *verb, const char *resource, const char *sub, int code);
void ks_metrics_bytes(size_t n);
void ks_metrics_slow_watch(void);
/** The Prometheus text of /metrics. */
void ks_metrics_reply(struct ks_req *r);
void ks_metrics_free(void);
/** Resident set size of this process. */
uint64_t ks_rss_bytes(void);
/** The plain-HTTP admin API handler (faults, close/drop, compact, churn, stats, metrics). */
void ks_admin_handle(struct px_request *req, void *arg);

#endif
