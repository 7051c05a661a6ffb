/*
 * write: CREATE, UPDATE, PATCH, DELETE and pods/binding with the apiserver's
 * semantics and error bodies: generateName, uid, creationTimestamp,
 * optimistic concurrency (409 on a stale resourceVersion), no-op updates that
 * do not bump the resourceVersion, status subresources, graceful pod deletion
 * (deletionTimestamp first, then gone, as a kubelet would confirm).
 */
#include "loadgen/kube-sim/kube_sim.h"
#include "proxy/http/http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <protobuf-c/protobuf-c.h>

/* How long a "kubelet" takes to confirm a graceful pod deletion. */
unsigned ks_pod_termination_ms = 1000;

static void now_rfc3339(char *buf, size_t size, int64_t offset_s)
{
    ks_time_format(buf, size, (int64_t)time(NULL) + offset_s, 0, false);
}

static const char *base_type(struct ks_req *r, const char *ct)
{
    const char *semi = ct ? strchr(ct, ';') : NULL;
    char *t = ct ? kf_arena_strndup(r->arena, ct, semi ? (size_t)(semi - ct) : strlen(ct)) : NULL;

    if (t)
        for (char *p = t; *p; p++)
            *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    return t ? t : "";
}

static void unsupported_media(struct ks_req *r, const char *accepted)
{
    ks_reply_error(r, 415, "UnsupportedMediaType",
                   "the body of the request was in an unknown format - accepted media types "
                   "include: %s",
                   accepted);
}

/* A protobuf body: "k8s\0" + runtime.Unknown{typeMeta, raw} -> the object's DOM. */
static struct ks_json *pb_body(struct ks_req *r, const struct ks_res *res, const char *body,
                               size_t len)
{
    const uint8_t *raw;
    size_t raw_len;
    struct ProtobufCMessage *msg;
    struct ks_json *dom;
    struct ks_conv_error err;

    if (ks_pb_unwrap((const uint8_t *)body, len, &raw, &raw_len) < 0 ||
        ks_conv_unpack(res->desc, raw, raw_len, r->arena, &msg) < 0 ||
        ks_conv_to_json(msg, r->arena, &dom, &err) < 0) {
        ks_reply_bad_request(r, "the object provided is unrecognized: protobuf decode failed");
        return NULL;
    }
    return dom;
}

/* The request body as a DOM (JSON or protobuf); NULL after sending the error. */
struct ks_json *ks_body_dom(struct ks_req *r, const struct ks_res *res, bool patch)
{
    size_t len;
    const char *body = px_request_body(r->px, &len);
    const char *ct = base_type(r, px_request_header(r->px, "content-type"));
    struct ks_json *dom;
    char err[200];

    if (!patch && strcmp(ct, KS_CT_PB) == 0 && res->desc && !res->json_only)
        return pb_body(r, res, body, len);
    if (!patch && strcmp(ct, "application/json") != 0 && ct[0]) {
        unsupported_media(r, res->json_only ? "application/json, application/yaml"
                                            : "application/json, application/yaml, "
                                              "application/vnd.kubernetes.protobuf");
        return NULL;
    }
    if (ks_json_parse(r->arena, body, len, &dom, err, sizeof(err)) < 0) {
        ks_reply_bad_request(r, "couldn't get version/kind; json parse error: %s", err);
        return NULL;
    }
    if (!patch && dom->t != KS_J_OBJ) {
        ks_reply_bad_request(r,
                             "couldn't get version/kind; json parse error: json: cannot "
                             "unmarshal %s into Go value of type struct { APIVersion string "
                             "\"json:\\\"apiVersion,omitempty\\\"\"; Kind string "
                             "\"json:\\\"kind,omitempty\\\"\" }",
                             dom->t == KS_J_ARR ? "array" : "string");
        return NULL;
    }
    return dom;
}

/* ---- checks --------------------------------------------------------------------------------- */

static bool dns_subdomain(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && !((c == '-' || c == '.') && i > 0 && i + 1 < n))
            return false;
    }
    return true;
}

static void reply_invalid_name(struct ks_req *r, const struct ks_res *res, const char *name)
{
    struct ks_status st;
    char msg[700], cause[500];

    snprintf(cause, sizeof(cause),
             "Invalid value: \"%s\": a lowercase RFC 1123 subdomain must consist of lower case "
             "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
             "character (e.g. 'example.com', regex used for validation is "
             "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
             name);
    snprintf(msg, sizeof(msg), "%s \"%s\" is invalid: metadata.name: %s", res->kind, name, cause);
    ks_status_init(&st, 422, "Invalid", msg);
    ks_status_details(&st, name, res->group, res->kind);
    st.causes[0] = (struct ks_cause){"FieldValueInvalid", cause, "metadata.name"};
    st.n_causes = 1;
    ks_reply_status(r, &st);
}

/* Does the body name the resource's kind (when it names one)? */
static bool kind_ok(struct ks_req *r, const struct ks_res *res, const struct ks_json *dom,
                    const char *want_kind)
{
    const char *kind = ks_json_get_str(dom, "kind");
    const char *av = ks_json_get_str(dom, "apiVersion");

    if ((kind && kind[0] && strcmp(kind, want_kind) != 0) ||
        (av && av[0] && strcmp(av, res->api_version) != 0 && strcmp(want_kind, "Binding") != 0)) {
        ks_reply_bad_request(r,
                             "the API version in the data (%s) does not match the expected "
                             "API version (%s)",
                             av ? av : "", res->api_version);
        return false;
    }
    return true;
}

static void reply_conflict(struct ks_req *r, const struct ks_res *res, const char *name,
                           const char *why)
{
    struct ks_status st;
    char msg[700], qr[160];

    snprintf(msg, sizeof(msg), "Operation cannot be fulfilled on %s \"%s\": %s",
             ks_res_qualified(res, qr, sizeof(qr)), name, why);
    ks_status_init(&st, 409, "Conflict", msg);
    ks_status_details(&st, name, res->group, res->name);
    ks_reply_status(r, &st);
}

static void reply_build_error(struct ks_req *r, const struct ks_res *res,
                              const struct ks_conv_error *err, int rc)
{
    if (rc == -ENOMEM || err->kind == KS_CONV_OK) {
        ks_reply_error(r, 500, "InternalError", "Internal error occurred: out of memory");
        return;
    }
    ks_reply_bad_request(
        r, "%s in version \"%s\" cannot be handled as a %s: %s%s", res->kind, res->version,
        res->kind,
        err->kind == KS_CONV_UNKNOWN ? "strict decoding error: " : "json: ", err->detail);
}

/* ---- committing ---------------------------------------------------------------------------------
 */

static void set_meta_str(struct ks_req *r, struct ks_json *meta, const char *key, const char *v)
{
    struct ks_json *j = ks_json_new_str(r->arena, v);
    if (j)
        ks_meta_set(r->arena, meta, key, j);
}

static void set_rv(struct ks_req *r, struct ks_json *root, uint64_t rv)
{
    char buf[24];

    snprintf(buf, sizeof(buf), "%llu", (unsigned long long)rv);
    set_meta_str(r, ks_meta(r->arena, root), "resourceVersion", buf);
}

/*
 * Build and store a new version of dom (its resourceVersion is set here). On
 * success returns the stored version (borrowed from the store) without
 * replying; NULL after sending the error.
 */
struct ks_obj *ks_commit(struct ks_req *r, struct ks_res *res, struct ks_json *dom)
{
    struct ks_conv_error err;
    struct ks_obj *obj;
    uint64_t rv = ks_store.rv + 1;
    int rc;

    set_rv(r, dom, rv);
    rc = ks_obj_build(res, dom, r->arena, &obj, &err);
    if (rc < 0) {
        reply_build_error(r, res, &err, rc);
        return NULL;
    }
    ks_store_next_rv();
    if (ks_store_put(obj, true) < 0) {
        ks_reply_error(r, 500, "InternalError", "Internal error occurred: out of memory");
        return NULL;
    }
    return obj;
}

/* Defaults the apiserver applies on create that clients look at. */
static void defaults(struct ks_req *r, struct ks_res *res, struct ks_json *dom)
{
    struct kf_arena *a = r->arena;

    if (res == &ks_res_pods && !ks_json_get(dom, "status")) {
        struct ks_json *st = ks_json_new(a, KS_J_OBJ), *ph = ks_json_new_str(a, "Pending");
        if (st && ph) {
            ks_json_set(a, st, "phase", ph, NULL, 0);
            ks_json_set(a, dom, "status", st, NULL, 0);
        }
    } else if (res == &ks_res_namespaces) {
        struct ks_json *st = ks_json_new(a, KS_J_OBJ), *ph = ks_json_new_str(a, "Active");
        if (st && ph) {
            ks_json_set(a, st, "phase", ph, NULL, 0);
            ks_json_set(a, dom, "status", st, NULL, 0);
        }
    } else if (res == &ks_res_secrets && !ks_json_get(dom, "type")) {
        struct ks_json *t = ks_json_new_str(a, "Opaque");
        if (t)
            ks_json_set(a, dom, "type", t, NULL, 0);
    }
}

static const char gen_chars[] = "bcdfghjklmnpqrstvwxz2456789";

static bool namespace_exists(const char *ns)
{
    return ks_store_get(&ks_res_namespaces, ns) != NULL;
}

void ks_reply_ns_not_found(struct ks_req *r, const char *ns)
{
    ks_reply_not_found(r, &ks_res_namespaces, ns);
}

/* Name from metadata.name or generateName; NULL after sending the 422. */
static const char *create_name(struct ks_req *r, struct ks_res *res, struct ks_json *meta)
{
    const char *name = ks_json_get_str(meta, "name");
    const char *gen = ks_json_get_str(meta, "generateName");

    if ((!name || !name[0]) && gen && gen[0]) {
        char suffix[6];
        for (int i = 0; i < 5; i++)
            suffix[i] = gen_chars[ks_rng() % (sizeof(gen_chars) - 1)];
        suffix[5] = '\0';
        name = kf_arena_sprintf(r->arena, "%.58s%s", gen, suffix);
        set_meta_str(r, meta, "name", name);
    }
    if (!name || !name[0]) {
        struct ks_status st;
        char msg[300];
        snprintf(msg, sizeof(msg),
                 "%s \"\" is invalid: metadata.name: Required value: name or generateName is "
                 "required",
                 res->kind);
        ks_status_init(&st, 422, "Invalid", msg);
        ks_status_details(&st, NULL, res->group, res->kind);
        st.causes[0] =
            (struct ks_cause){"FieldValueRequired",
                              "Required value: name or generateName is required", "metadata.name"};
        st.n_causes = 1;
        ks_reply_status(r, &st);
        return NULL;
    }
    if (!dns_subdomain(name)) {
        reply_invalid_name(r, res, name);
        return NULL;
    }
    return name;
}

/* Namespace of the body must agree with the URL's; false after the 400. */
static bool namespace_ok(struct ks_req *r, struct ks_res *res, struct ks_json *meta)
{
    const char *ns = ks_json_get_str(meta, "namespace");

    if (!res->namespaced) {
        ks_json_remove(meta, "namespace");
        return true;
    }
    if (ns && ns[0] && strcmp(ns, r->ns) != 0) {
        ks_reply_bad_request(r, "the namespace of the provided object does not match the "
                                "namespace sent on the request");
        return false;
    }
    set_meta_str(r, meta, "namespace", r->ns);
    return true;
}

void ks_reply_already_exists(struct ks_req *r, const struct ks_res *res, const char *name)
{
    struct ks_status st;
    char msg[600], qr[160];

    snprintf(msg, sizeof(msg), "%s \"%s\" already exists", ks_res_qualified(res, qr, sizeof(qr)),
             name);
    ks_status_init(&st, 409, "AlreadyExists", msg);
    ks_status_details(&st, name, res->group, res->name);
    ks_reply_status(r, &st);
}

/* ---- CREATE ------------------------------------------------------------------------------------
 */

static void create_binding(struct ks_req *r);

void ks_handle_create(struct ks_req *r)
{
    struct ks_res *res = r->res;

    if (r->sub && strcmp(r->sub, "binding") == 0) {
        create_binding(r);
        return;
    }
    if (r->name || r->sub || (res->namespaced && !r->ns)) {
        ks_reply_error(r, 405, "MethodNotAllowed",
                       "the server does not allow this method on the requested resource");
        return;
    }
    struct ks_json *dom = ks_body_dom(r, res, false);
    if (!dom || !kind_ok(r, res, dom, res->kind))
        return;
    struct ks_json *meta = ks_meta(r->arena, dom);
    const char *name;
    if (!meta || !namespace_ok(r, res, meta) || !(name = create_name(r, res, meta)))
        return;
    if (res->namespaced && !namespace_exists(r->ns)) {
        ks_reply_ns_not_found(r, r->ns);
        return;
    }
    if (ks_store_get(res, ks_req_key(r, name))) {
        ks_reply_already_exists(r, res, name);
        return;
    }
    char uid[37], ts[40];
    ks_uuid(uid);
    now_rfc3339(ts, sizeof(ts), 0);
    static const char *const server_set[] = {"selfLink", "deletionTimestamp",
                                             "deletionGracePeriodSeconds", "generation"};
    for (size_t i = 0; i < KF_ARRAY_SIZE(server_set); i++)
        ks_json_remove(meta, server_set[i]);
    set_meta_str(r, meta, "uid", uid);
    set_meta_str(r, meta, "creationTimestamp", ts);
    defaults(r, res, dom);
    struct ks_obj *o = ks_commit(r, res, dom);
    if (o)
        ks_reply_obj(r, 201, o);
}

/* POST pods/NAME/binding: set spec.nodeName once (409 when already bound). */
static void create_binding(struct ks_req *r)
{
    struct ks_json *dom = ks_body_dom(r, r->res, false), *pod;
    struct ks_obj *cur;
    const char *node;

    if (!dom || !kind_ok(r, r->res, dom, "Binding"))
        return;
    node = ks_json_get_str(ks_json_get(dom, "target"), "name");
    if (!node || !node[0]) {
        ks_reply_error(r, 422, "Invalid", "Binding \"%s\" is invalid: target.name: Required value",
                       r->name);
        return;
    }
    cur = ks_store_get(r->res, ks_req_key(r, r->name));
    if (!cur) {
        ks_reply_not_found(r, r->res, r->name);
        return;
    }
    const char *bound = ks_obj_field(cur, "spec.nodeName");
    if (bound && bound[0]) {
        struct ks_status st;
        char msg[600];
        snprintf(msg, sizeof(msg),
                 "Operation cannot be fulfilled on pods/binding \"%s\": pod %s is already "
                 "assigned to node \"%s\"",
                 r->name, r->name, bound);
        ks_status_init(&st, 409, "Conflict", msg);
        ks_status_details(&st, r->name, "", "pods/binding");
        ks_reply_status(r, &st);
        return;
    }
    if (ks_obj_dom(cur, r->arena, &pod) < 0 || ks_pod_bind(r->arena, pod, node) < 0) {
        ks_reply_error(r, 500, "InternalError", "Internal error occurred: out of memory");
        return;
    }
    if (!ks_commit(r, r->res, pod))
        return;
    struct ks_status st;
    ks_status_init(&st, 201, NULL, NULL);
    ks_reply_status(r, &st);
}

/* spec.nodeName = node and a PodScheduled condition, as the binding REST does. */
int ks_pod_bind(struct kf_arena *a, struct ks_json *pod, const char *node)
{
    struct ks_json *spec = ks_json_get(pod, "spec"), *status = ks_json_get(pod, "status");
    char ts[40];
    char err[160];
    struct ks_json *cond;

    if (!spec) {
        spec = ks_json_new(a, KS_J_OBJ);
        if (!spec)
            return -ENOMEM;
        ks_json_set(a, pod, "spec", spec, NULL, 0);
    }
    struct ks_json *n = ks_json_new_str(a, node);
    if (!n)
        return -ENOMEM;
    ks_json_set(a, spec, "nodeName", n, NULL, 0);
    if (!status) {
        status = ks_json_new(a, KS_J_OBJ);
        if (!status)
            return -ENOMEM;
        ks_json_set(a, pod, "status", status, NULL, 0);
    }
    now_rfc3339(ts, sizeof(ts), 0);
    char *text = kf_arena_sprintf(a,
                                  "{\"conditions\":[{\"type\":\"PodScheduled\",\"status\":\"True\","
                                  "\"lastProbeTime\":null,\"lastTransitionTime\":\"%s\"}]}",
                                  ts);
    if (!text || ks_json_parse(a, text, strlen(text), &cond, err, sizeof(err)) < 0)
        return -ENOMEM;
    return ks_patch_merge(a, status, cond, true, &ks_res_pods, err, sizeof(err));
}

/* ---- UPDATE and PATCH -------------------------------------------------------------------------
 */

static bool has_status_sub(const struct ks_res *res)
{
    return ks_res_has_subresource(res, "status");
}

/* Copy member key of from into to (or remove it from to when from has none). */
static void carry(struct ks_req *r, struct ks_json *to, const struct ks_json *from, const char *key,
                  const char *const *order, size_t n_order)
{
    struct ks_json *v = ks_json_get(from, key);

    if (!to || to->t != KS_J_OBJ)
        return;
    if (v && (v = ks_json_clone(r->arena, v)))
        ks_json_set(r->arena, to, key, v, order, n_order);
    else
        ks_json_remove(to, key);
}

/* Preconditions in the new metadata: resourceVersion and uid. False after the 409. */
static bool preconditions_ok(struct ks_req *r, const struct ks_obj *cur, const struct ks_json *meta)
{
    const char *rv = ks_json_get_str(meta, "resourceVersion");
    const char *uid = ks_json_get_str(meta, "uid");

    if (rv && rv[0] && strtoull(rv, NULL, 10) != cur->rv) {
        reply_conflict(r, cur->res, cur->name,
                       "the object has been modified; please apply your changes to the latest "
                       "version and try again");
        return false;
    }
    if (uid && uid[0] && strcmp(uid, cur->uid) != 0) {
        char why[200];
        snprintf(why, sizeof(why),
                 "Precondition failed: UID in precondition: %s, UID in object "
                 "meta: %s",
                 uid, cur->uid);
        reply_conflict(r, cur->res, cur->name, why);
        return false;
    }
    return true;
}

/*
 * Would dom, stored at cur's resourceVersion, be byte for byte cur? (The
 * normalised encoding decides, as the apiserver compares what it would write.)
 */
static bool same_as_stored(struct ks_req *r, const struct ks_obj *cur, struct ks_json *dom)
{
    struct ks_json *copy = ks_json_clone(r->arena, dom);
    struct ks_conv_error err;
    struct ks_obj *o;
    bool same;

    if (!copy || ks_obj_build(cur->res, copy, r->arena, &o, &err) < 0)
        return false;
    same = o->json_len == cur->json_len && memcmp(o->json, cur->json, o->json_len) == 0 &&
           o->pb_len == cur->pb_len && (!o->pb || memcmp(o->pb, cur->pb, o->pb_len) == 0);
    ks_obj_unref(o);
    return same;
}

/*
 * dom is the proposed new state of cur. Server-owned fields come from cur,
 * status is split between the main resource and its subresource, a no-op
 * keeps cur, anything else becomes a new version.
 */
static void finish_update(struct ks_req *r, struct ks_obj *cur, struct ks_json *dom)
{
    struct ks_json *old, *meta = ks_meta(r->arena, dom), *old_meta;
    static const char *const kept[] = {
        "uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "namespace",
        "name"};

    if (!meta || ks_obj_dom(cur, r->arena, &old) < 0) {
        ks_reply_error(r, 500, "InternalError", "Internal error occurred: out of memory");
        return;
    }
    old_meta = ks_meta(r->arena, old);
    if (!preconditions_ok(r, cur, meta))
        return;
    if (r->sub && strcmp(r->sub, "status") == 0) {
        /* the status subresource changes status only */
        carry(r, old, dom, "status", NULL, 0);
        dom = old;
        ks_obj_dom(cur, r->arena, &old);
        meta = ks_meta(r->arena, dom);
        old_meta = ks_meta(r->arena, old);
    } else if (has_status_sub(cur->res)) {
        carry(r, dom, old, "status", NULL, 0);
    }
    for (size_t i = 0; i < KF_ARRAY_SIZE(kept); i++) {
        struct ks_json *v = ks_json_get(old_meta, kept[i]);
        if (v && (v = ks_json_clone(r->arena, v)))
            ks_meta_set(r->arena, meta, kept[i], v);
        else
            ks_json_remove(meta, kept[i]);
    }
    set_rv(r, dom, cur->rv);
    struct ks_json *kind = ks_json_new_str(r->arena, cur->res->kind);
    struct ks_json *av = ks_json_new_str(r->arena, cur->res->api_version);
    if (kind && av) {
        ks_json_set(r->arena, dom, "kind", kind, NULL, 0);
        ks_json_set(r->arena, dom, "apiVersion", av, NULL, 0);
    }
    if (ks_json_equal(dom, old) || same_as_stored(r, cur, dom)) {
        ks_reply_obj(r, 200, cur); /* no-op: no new resourceVersion, no event */
        return;
    }
    struct ks_obj *o = ks_commit(r, cur->res, dom);
    if (o)
        ks_reply_obj(r, 200, o);
}

static struct ks_obj *current(struct ks_req *r)
{
    struct ks_obj *cur;

    if (!r->name || (r->res->namespaced && !r->ns)) {
        ks_reply_error(r, 405, "MethodNotAllowed",
                       "the server does not allow this method on the requested resource");
        return NULL;
    }
    cur = ks_store_get(r->res, ks_req_key(r, r->name));
    if (!cur)
        ks_reply_not_found(r, r->res, r->name);
    return cur;
}

void ks_handle_update(struct ks_req *r)
{
    struct ks_obj *cur = current(r);
    struct ks_json *dom;

    if (!cur || !(dom = ks_body_dom(r, r->res, false)) || !kind_ok(r, r->res, dom, r->res->kind))
        return;
    const char *name = ks_json_get_str(ks_json_get(dom, "metadata"), "name");
    if (name && name[0] && strcmp(name, r->name) != 0) {
        ks_reply_bad_request(r,
                             "the name of the object (%s) does not match the name on the URL "
                             "(%s)",
                             name, r->name);
        return;
    }
    struct ks_json *meta = ks_meta(r->arena, dom);
    if (!meta || !namespace_ok(r, r->res, meta))
        return;
    finish_update(r, cur, dom);
}

void ks_handle_patch(struct ks_req *r)
{
    const char *ct = base_type(r, px_request_header(r->px, "content-type"));
    bool merge = strcmp(ct, "application/merge-patch+json") == 0;
    bool smp = strcmp(ct, "application/strategic-merge-patch+json") == 0 && !r->res->json_only;
    bool jp = strcmp(ct, "application/json-patch+json") == 0;
    struct ks_obj *cur;
    struct ks_json *patch, *dom;
    char err[300];

    if (!merge && !smp && !jp) {
        unsupported_media(r, r->res->json_only
                                 ? "application/json-patch+json, application/merge-patch+json"
                                 : "application/json-patch+json, application/merge-patch+json, "
                                   "application/strategic-merge-patch+json");
        return;
    }
    if (!(cur = current(r)) || !(patch = ks_body_dom(r, r->res, true)))
        return;
    if (ks_obj_dom(cur, r->arena, &dom) < 0) {
        ks_reply_error(r, 500, "InternalError", "Internal error occurred: out of memory");
        return;
    }
    /* the patch may not carry a resourceVersion precondition: drop the stored one first */
    struct ks_json *meta = ks_meta(r->arena, dom);
    ks_json_remove(meta, "resourceVersion");
    int rc = jp ? ks_patch_json(r->arena, dom, patch, err, sizeof(err))
                : ks_patch_merge(r->arena, dom, patch, smp, r->res, err, sizeof(err));
    if (rc < 0) {
        if (jp)
            ks_reply_error(r, 422, "Invalid", "%s", err);
        else
            ks_reply_bad_request(r, "%s", err);
        return;
    }
    if (dom->t != KS_J_OBJ) {
        ks_reply_bad_request(r, "the patch does not result in an object");
        return;
    }
    finish_update(r, cur, dom);
}

/* ---- DELETE
 * ----------------------------------------------------------------------------------------- */

/* Remove cur for good: the DELETED event carries it at the delete rv. */
static struct ks_obj *remove_now(struct ks_obj *cur)
{
    struct ks_obj *final = ks_obj_with_rv(cur, ks_store.rv + 1);

    if (!final)
        return NULL;
    ks_store_next_rv();
    ks_obj_ref(final); /* one for the store's event, one for the caller */
    if (ks_store_delete(final) < 0) {
        ks_obj_unref(final);
        return NULL;
    }
    return final;
}

static void reply_deleted_status(struct ks_req *r, const struct ks_obj *cur)
{
    struct ks_status st;

    ks_status_init(&st, 200, NULL, NULL);
    ks_status_details(&st, cur->name, cur->res->group, cur->res->name);
    st.d_uid = cur->uid;
    st.no_code = true;
    ks_reply_status(r, &st);
}

/* A new version of a pod with deletionTimestamp = now + grace; NULL on failure. */
static struct ks_obj *mark_terminating(struct kf_arena *a, struct ks_obj *cur, int64_t grace)
{
    struct ks_json *dom, *meta, *ts, *gp;
    struct ks_conv_error err;
    struct ks_obj *o;
    char when[40], rvs[24];

    if (ks_obj_dom(cur, a, &dom) < 0 || !(meta = ks_meta(a, dom)))
        return NULL;
    now_rfc3339(when, sizeof(when), grace);
    snprintf(rvs, sizeof(rvs), "%llu", (unsigned long long)ks_store.rv + 1);
    ts = ks_json_new_str(a, when);
    gp = ks_json_new_num(a, grace);
    struct ks_json *rv = ks_json_new_str(a, rvs);
    if (!ts || !gp || !rv)
        return NULL;
    ks_meta_set(a, meta, "deletionTimestamp", ts);
    ks_meta_set(a, meta, "deletionGracePeriodSeconds", gp);
    ks_meta_set(a, meta, "resourceVersion", rv);
    if (ks_obj_build(cur->res, dom, a, &o, &err) < 0)
        return NULL;
    ks_store_next_rv();
    if (ks_store_put(o, true) < 0)
        return NULL;
    return o;
}

/* Force-delete a scheduled pod: grace 0 first (MODIFIED), then gone (DELETED). */
static struct ks_obj *pod_force_delete(struct kf_arena *a, struct ks_obj *cur)
{
    struct ks_obj *zero = mark_terminating(a, cur, 0);

    return zero ? remove_now(zero) : NULL;
}

struct pending_delete {
    struct kf_list link; /* pending_deletes */
    struct event *ev;
    struct ks_res *res;
    char uid[40];
    char key[];
};

static struct kf_list pending_deletes = {&pending_deletes, &pending_deletes};

static void pending_free(struct pending_delete *p)
{
    kf_list_remove(&p->link);
    event_free(p->ev);
    free(p);
}

void ks_write_shutdown(void)
{
    while (!kf_list_empty(&pending_deletes))
        pending_free(kf_container_of(pending_deletes.next, struct pending_delete, link));
}

static void confirm_termination(evutil_socket_t fd, short what, void *arg)
{
    struct pending_delete *p = arg;
    struct ks_obj *cur = ks_store_get(p->res, p->key);

    (void)fd;
    (void)what;
    if (cur && cur->terminating && strcmp(cur->uid, p->uid) == 0) {
        struct kf_arena *a = kf_arena_new(16384);
        struct ks_obj *gone = a ? pod_force_delete(a, cur) : NULL;
        ks_obj_unref(gone);
        kf_arena_free(a);
    }
    pending_free(p);
}

/* What the kubelet does after a graceful delete: confirm it once the pod stopped. */
static void schedule_confirmation(const struct ks_obj *o, int64_t grace)
{
    size_t klen = strlen(o->key);
    struct pending_delete *p = calloc(1, sizeof(*p) + klen + 1);
    uint64_t ms = (uint64_t)grace * 1000 < ks_pod_termination_ms ? (uint64_t)grace * 1000
                                                                 : ks_pod_termination_ms;

    if (!p)
        return;
    p->res = o->res;
    snprintf(p->uid, sizeof(p->uid), "%s", o->uid);
    memcpy(p->key, o->key, klen + 1);
    p->ev = evtimer_new(ks_base, confirm_termination, p);
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000 * 1000)};
    if (!p->ev || evtimer_add(p->ev, &tv) < 0) {
        if (p->ev)
            event_free(p->ev);
        free(p);
        return;
    }
    kf_list_insert_tail(&pending_deletes, &p->link);
}

static int64_t grace_period(struct ks_req *r, const struct ks_json *opts, const struct ks_obj *cur)
{
    const char *q = px_request_query(r->px, "gracePeriodSeconds");
    const struct ks_json *b = ks_json_get(opts, "gracePeriodSeconds");
    const struct ks_json *spec_gp = NULL;
    struct ks_json *dom;

    if (q && q[0])
        return strtoll(q, NULL, 10);
    if (b && b->t == KS_J_NUM)
        return strtoll(b->s, NULL, 10);
    if (ks_obj_dom(cur, r->arena, &dom) == 0)
        spec_gp = ks_json_path(dom, "spec.terminationGracePeriodSeconds");
    return spec_gp && spec_gp->t == KS_J_NUM ? strtoll(spec_gp->s, NULL, 10) : 30;
}

static void delete_pod(struct ks_req *r, struct ks_obj *cur, const struct ks_json *opts)
{
    const char *node = ks_obj_field(cur, "spec.nodeName");
    int64_t grace = grace_period(r, opts, cur);
    struct ks_obj *o;

    if (!node || !node[0]) {
        o = remove_now(cur); /* never scheduled: nothing to wait for */
    } else if (grace <= 0) {
        o = pod_force_delete(r->arena, cur);
    } else if (cur->terminating) {
        ks_reply_obj(r, 200, cur); /* already terminating: nothing changes */
        return;
    } else {
        o = mark_terminating(r->arena, cur, grace);
        if (o) {
            schedule_confirmation(o, grace);
            ks_reply_obj(r, 200, o);
            return;
        }
    }
    if (!o) {
        ks_reply_error(r, 500, "InternalError", "Internal error occurred: delete failed");
        return;
    }
    ks_reply_obj(r, 200, o);
    ks_obj_unref(o);
}

/* Deleting a namespace deletes what is in it (the namespace controller's job). */
static void delete_namespace_contents(const char *ns)
{
    char *prefix = malloc(strlen(ns) + 2);

    if (!prefix)
        return;
    sprintf(prefix, "%s/", ns);
    for (size_t i = 0; i < ks_n_resources; i++) {
        struct ks_res *res = ks_resources[i];
        struct ks_snapshot s;
        if (!res->namespaced || ks_snapshot_take(&s, res, prefix, 0) < 0)
            continue;
        for (size_t k = 0; k < s.n; k++)
            ks_obj_unref(remove_now(s.items[k]));
        ks_snapshot_release(&s);
    }
    free(prefix);
}

static bool delete_preconditions_ok(struct ks_req *r, struct ks_obj *cur,
                                    const struct ks_json *opts)
{
    const struct ks_json *pre = ks_json_get(opts, "preconditions");

    return !pre || preconditions_ok(r, cur, pre);
}

void ks_handle_delete(struct ks_req *r)
{
    struct ks_obj *cur = current(r);
    struct ks_json *opts = NULL;
    size_t len;
    char err[160];

    if (!cur)
        return;
    const char *body = px_request_body(r->px, &len);
    if (len && ks_json_parse(r->arena, body, len, &opts, err, sizeof(err)) < 0) {
        ks_reply_bad_request(r, "couldn't get version/kind; json parse error: %s", err);
        return;
    }
    if (!delete_preconditions_ok(r, cur, opts))
        return;
    if (r->res == &ks_res_pods) {
        delete_pod(r, cur, opts);
        return;
    }
    if (r->res == &ks_res_namespaces)
        delete_namespace_contents(cur->name);
    ks_obj_ref(cur);
    struct ks_obj *gone = remove_now(cur);
    if (!gone)
        ks_reply_error(r, 500, "InternalError", "Internal error occurred: delete failed");
    else if (r->res == &ks_res_namespaces)
        ks_reply_obj(r, 200, gone);
    else
        reply_deleted_status(r, cur);
    ks_obj_unref(gone);
    ks_obj_unref(cur);
}

void ks_handle_delete_collection(struct ks_req *r)
{
    struct ks_sel *sel;
    struct ks_snapshot s;

    if (!ks_validate_list_opts(r, false) || !(sel = ks_req_selector(r)))
        return;
    if (ks_snapshot_take(&s, r->res, ks_req_prefix(r), 0) < 0) {
        ks_reply_error(r, 500, "InternalError", "Internal error occurred: out of memory");
        return;
    }
    for (size_t i = 0; i < s.n; i++)
        if (ks_sel_match(sel, s.items[i]))
            ks_obj_unref(remove_now(s.items[i]));
    ks_snapshot_release(&s);
    struct ks_status st;
    ks_status_init(&st, 200, NULL, NULL);
    st.no_code = true;
    ks_reply_status(r, &st);
}
