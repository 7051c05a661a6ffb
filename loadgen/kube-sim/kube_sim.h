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
    /* runtime */
    size_t index;
    struct ks_table table;
    struct ks_evq *events; /* this resource's part of the history */
    struct kf_list watchers;
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
/** True when path may be used in a field selector on res. */
bool ks_res_field_supported(const struct ks_res *res, const char *path);
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
/** RFC 3339 (with optional fraction and offset) to Unix seconds + nanoseconds. */
int ks_time_parse(const char *s, int64_t *sec, int32_t *nsec);
/** Unix time as "2006-01-02T15:04:05Z" (micro: with 6 fractional digits). */
void ks_time_format(char *buf, size_t size, int64_t sec, int32_t nsec, bool micro);

/* ---- building object versions (obj.c) --------------------------------------------------- */

struct ks_json *ks_json_new(struct kf_arena *a, enum ks_jt t);
struct ks_json *ks_json_new_str(struct kf_arena *a, const char *s);
struct ks_json *ks_json_new_num(struct kf_arena *a, int64_t v);
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
/** Parse a stored version's JSON back into a DOM. */
int ks_obj_dom(const struct ks_obj *o, struct kf_arena *a, struct ks_json **out);
/** A copy of o with metadata.resourceVersion = rv; NULL on failure. */
struct ks_obj *ks_obj_with_rv(const struct ks_obj *o, uint64_t rv);

#endif
