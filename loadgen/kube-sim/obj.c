/*
 * obj: from a JSON DOM to a stored object version. The DOM is the canonical
 * form of every write (generated, JSON or protobuf body, patched): it is
 * checked and converted to protobuf, serialised to JSON, and the metadata,
 * labels and selector fields are extracted, all once.
 */
#include "loadgen/kube-sim/kube_sim.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <protobuf-c/protobuf-c.h>

/* ObjectMeta's fields in Go struct order: the order the apiserver writes them. */
static const char *const meta_order[] = {
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
};

static int order_of(const char *const *order, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(order[i], key) == 0)
            return (int)i;
    return (int)n;
}

struct ks_json *ks_json_new(struct kf_arena *a, enum ks_jt t)
{
    struct ks_json *j = kf_arena_alloc(a, sizeof(*j));

    if (j)
        j->t = t;
    return j;
}

struct ks_json *ks_json_new_str(struct kf_arena *a, const char *s)
{
    struct ks_json *j = ks_json_new(a, KS_J_STR);

    if (j) {
        j->s = kf_arena_strdup(a, s);
        j->n = strlen(s);
        if (!j->s)
            return NULL;
    }
    return j;
}

struct ks_json *ks_json_new_num(struct kf_arena *a, int64_t v)
{
    struct ks_json *j = ks_json_new(a, KS_J_NUM);

    if (j) {
        j->s = kf_arena_sprintf(a, "%lld", (long long)v);
        j->n = j->s ? strlen(j->s) : 0;
        if (!j->s)
            return NULL;
    }
    return j;
}

struct ks_json *ks_json_clone(struct kf_arena *a, const struct ks_json *j)
{
    struct ks_json *c = ks_json_new(a, j->t), **tail;

    if (!c)
        return NULL;
    c->b = j->b;
    c->s = j->s; /* scalars are immutable: share the bytes */
    c->n = j->n;
    tail = &c->kids;
    for (const struct ks_json *k = j->kids; k; k = k->next) {
        struct ks_json *kc = ks_json_clone(a, k);
        if (!kc)
            return NULL;
        kc->key = k->key;
        kc->key_len = k->key_len;
        *tail = kc;
        tail = &kc->next;
        c->count++;
    }
    return c;
}

void ks_json_remove(struct ks_json *obj, const char *key)
{
    if (!obj || obj->t != KS_J_OBJ)
        return;
    for (struct ks_json **link = &obj->kids; *link; link = &(*link)->next) {
        if (strcmp((*link)->key, key) == 0) {
            *link = (*link)->next;
            obj->count--;
            return;
        }
    }
}

/*
 * Set obj[key] = val. An existing member is replaced where it is; a new one
 * goes before the first member that comes later in order (NULL: at the end).
 */
void ks_json_set(struct kf_arena *a, struct ks_json *obj, const char *key, struct ks_json *val,
                 const char *const *order, size_t n_order)
{
    struct ks_json **link;
    int rank = order ? order_of(order, n_order, key) : 0;

    val->key = kf_arena_strdup(a, key);
    val->key_len = strlen(key);
    for (link = &obj->kids; *link; link = &(*link)->next) {
        if (strcmp((*link)->key, key) == 0) {
            val->next = (*link)->next;
            *link = val;
            return;
        }
    }
    for (link = &obj->kids; *link; link = &(*link)->next)
        if (order && order_of(order, n_order, (*link)->key) > rank)
            break;
    val->next = *link;
    *link = val;
    obj->count++;
}

void ks_meta_set(struct kf_arena *a, struct ks_json *meta, const char *key, struct ks_json *val)
{
    ks_json_set(a, meta, key, val, meta_order, KF_ARRAY_SIZE(meta_order));
}

/* root["metadata"], created (in its place after kind/apiVersion) when absent. */
struct ks_json *ks_meta(struct kf_arena *a, struct ks_json *root)
{
    static const char *const top[] = {"kind", "apiVersion", "metadata"};
    struct ks_json *m = ks_json_get(root, "metadata");

    if (m && m->t == KS_J_OBJ)
        return m;
    m = ks_json_new(a, KS_J_OBJ);
    if (m)
        ks_json_set(a, root, "metadata", m, top, 3);
    return m;
}

/* Put kind and apiVersion first, with the resource's values. */
static int set_type_meta(struct kf_arena *a, struct ks_res *res, struct ks_json *root)
{
    static const char *const top[] = {"kind", "apiVersion", "metadata"};
    struct ks_json *k = ks_json_new_str(a, res->kind), *v = ks_json_new_str(a, res->api_version);

    if (!k || !v || !ks_meta(a, root))
        return -ENOMEM;
    ks_json_remove(root, "kind");
    ks_json_remove(root, "apiVersion");
    ks_json_set(a, root, "kind", k, top, 3);
    ks_json_set(a, root, "apiVersion", v, top, 3);
    /* metadata goes right after them */
    struct ks_json *m = ks_json_get(root, "metadata");
    ks_json_remove(root, "metadata");
    ks_json_set(a, root, "metadata", m, top, 3);
    return 0;
}

/* A dotted path ("spec.nodeName") through objects. */
const struct ks_json *ks_json_path(const struct ks_json *j, const char *path)
{
    char part[128];

    while (j && *path) {
        const char *dot = strchr(path, '.');
        size_t len = dot ? (size_t)(dot - path) : strlen(path);
        if (len >= sizeof(part))
            return NULL;
        memcpy(part, path, len);
        part[len] = '\0';
        j = ks_json_get(j, part);
        path += len + (dot ? 1 : 0);
    }
    return j;
}

/* The value a field selector sees: strings as they are, bools as "true"/"false". */
static const char *field_value(struct kf_arena *a, const struct ks_json *root, const char *path)
{
    const struct ks_json *v = ks_json_path(root, path);

    (void)a;
    if (strcmp(path, "status.podIP") == 0) {
        /* the apiserver selects on podIPs[0].ip; podIP only for old writers */
        const struct ks_json *ips = ks_json_path(root, "status.podIPs");
        const char *ip =
            ips && ips->t == KS_J_ARR && ips->kids ? ks_json_get_str(ips->kids, "ip") : NULL;
        if (ip)
            return ip;
    } else if (strcmp(path, "source") == 0) {
        /* an Event's source is source.component, or reportingComponent */
        const char *c = ks_json_get_str(ks_json_get(root, "source"), "component");
        return c && c[0] ? c : field_value(a, root, "reportingComponent");
    }
    if (!v)
        return strcmp(path, "spec.hostNetwork") == 0 || strcmp(path, "spec.unschedulable") == 0
                   ? "false"
                   : "";
    if (v->t == KS_J_BOOL)
        return v->b ? "true" : "false";
    if (v->t == KS_J_STR || v->t == KS_J_NUM)
        return v->s;
    return "";
}

static int cmp_label(const void *x, const void *y)
{
    const char *const *a = x, *const *b = y;
    return strcmp(a[0], b[0]);
}

static int collect_labels(struct kf_arena *a, const struct ks_json *meta, struct ks_obj_parts *p)
{
    const struct ks_json *labels = ks_json_get(meta, "labels");
    size_t n = 0;

    if (!labels || labels->t != KS_J_OBJ || !labels->count)
        return 0;
    const char **pairs = kf_arena_alloc(a, 2 * labels->count * sizeof(char *));
    if (!pairs)
        return -ENOMEM;
    for (const struct ks_json *l = labels->kids; l; l = l->next) {
        pairs[2 * n] = l->key;
        pairs[2 * n + 1] = l->t == KS_J_STR ? l->s : "";
        n++;
    }
    qsort(pairs, n, 2 * sizeof(char *), cmp_label);
    p->labels = pairs;
    p->n_labels = n;
    return 0;
}

struct refs {
    struct kf_arena *a;
    const char **v;
    size_t n, cap;
};

static void add_ref(struct refs *r, const char *kind, const struct ks_json *name)
{
    if (!name || name->t != KS_J_STR || !name->n)
        return;
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        const char **v = kf_arena_alloc(r->a, cap * sizeof(*v));
        if (!v)
            return;
        if (r->n)
            memcpy(v, r->v, r->n * sizeof(*v));
        r->v = v;
        r->cap = cap;
    }
    size_t kl = strlen(kind);
    char *ref = kf_arena_alloc(r->a, kl + 1 + name->n + 1);
    if (!ref)
        return;
    memcpy(ref, kind, kl);
    ref[kl] = '/';
    memcpy(ref + kl + 1, name->s, name->n + 1);
    r->v[r->n++] = ref;
}

#define EACH(el, arr)                                                                              \
    for (const struct ks_json *el = (arr) && (arr)->t == KS_J_ARR ? (arr)->kids : NULL; el;        \
         el = el->next)

static void container_refs(struct refs *r, const struct ks_json *list)
{
    EACH(c, list)
    {
        EACH(e, ks_json_get(c, "env"))
        {
            const struct ks_json *vf = ks_json_get(e, "valueFrom");
            add_ref(r, "configmaps", ks_json_path(vf, "configMapKeyRef.name"));
            add_ref(r, "secrets", ks_json_path(vf, "secretKeyRef.name"));
        }
        EACH(e, ks_json_get(c, "envFrom"))
        {
            add_ref(r, "configmaps", ks_json_path(e, "configMapRef.name"));
            add_ref(r, "secrets", ks_json_path(e, "secretRef.name"));
        }
    }
}

/* What a pod lets its node read (the Node authorizer's graph edges). */
static void pod_refs(struct kf_arena *a, const struct ks_json *root, struct ks_obj_parts *p)
{
    const struct ks_json *spec = ks_json_get(root, "spec");
    struct refs r = {.a = a};

    EACH(v, ks_json_get(spec, "volumes"))
    {
        add_ref(&r, "configmaps", ks_json_path(v, "configMap.name"));
        add_ref(&r, "secrets", ks_json_path(v, "secret.secretName"));
        add_ref(&r, "persistentvolumeclaims", ks_json_path(v, "persistentVolumeClaim.claimName"));
        EACH(s, ks_json_path(v, "projected.sources"))
        {
            add_ref(&r, "configmaps", ks_json_path(s, "configMap.name"));
            add_ref(&r, "secrets", ks_json_path(s, "secret.name"));
        }
    }
    container_refs(&r, ks_json_get(spec, "containers"));
    container_refs(&r, ks_json_get(spec, "initContainers"));
    container_refs(&r, ks_json_get(spec, "ephemeralContainers"));
    EACH(s, ks_json_get(spec, "imagePullSecrets"))
    add_ref(&r, "secrets", ks_json_get(s, "name"));
    add_ref(&r, "serviceaccounts", ks_json_get(spec, "serviceAccountName"));
    p->objrefs = r.v;
    p->n_objrefs = r.n;
}

static int64_t meta_time(const struct ks_json *meta, const char *key)
{
    const char *s = ks_json_get_str(meta, key);
    int64_t sec = 0;
    int32_t ns;

    if (s && ks_time_parse(s, &sec, &ns) < 0)
        sec = 0;
    return sec;
}

/* Fill parts from the DOM (strings point into the arena/DOM). */
static int extract(struct kf_arena *a, struct ks_res *res, const struct ks_json *root,
                   struct ks_obj_parts *p)
{
    const struct ks_json *meta = ks_json_get(root, "metadata");
    const char *rv = ks_json_get_str(meta, "resourceVersion");

    p->res = res;
    p->name = ks_json_get_str(meta, "name");
    p->ns = res->namespaced ? ks_json_get_str(meta, "namespace") : "";
    p->uid = ks_json_get_str(meta, "uid");
    p->rv = rv ? strtoull(rv, NULL, 10) : 0;
    p->created = meta_time(meta, "creationTimestamp");
    p->terminating = ks_json_get(meta, "deletionTimestamp") != NULL;
    for (size_t i = 0; i < res->n_fields; i++)
        p->fields[i] = field_value(a, root, res->fields[i]);
    if (res == &ks_res_pods)
        pod_refs(a, root, p);
    return collect_labels(a, meta, p);
}

int ks_obj_build_text(struct ks_res *res, struct ks_json *root, const char *text, size_t text_len,
                      struct kf_arena *a, struct ks_obj **out, struct ks_conv_error *err)
{
    return ks_obj_build_msg(res, root, text, text_len, a, out, NULL, err);
}

int ks_obj_build_msg(struct ks_res *res, struct ks_json *root, const char *text, size_t text_len,
                     struct kf_arena *a, struct ks_obj **out, struct ProtobufCMessage **msg_out,
                     struct ks_conv_error *err)
{
    struct ks_obj_parts parts = {0};
    struct ks_sb json, pb;
    int rc;

    memset(err, 0, sizeof(*err));
    *out = NULL;
    if (root->t != KS_J_OBJ || set_type_meta(a, res, root) < 0)
        return -ENOMEM;
    ks_sb_init(&json, text ? 1 : 4096);
    ks_sb_init(&pb, res->desc ? 4096 : 16);
    if (res->desc) {
        ProtobufCMessage *msg;
        rc = ks_conv_from_json(res->desc, root, a, &msg, err);
        if (rc == 0)
            rc = ks_conv_pack(msg, res->api_version, res->kind, &pb, &parts.pb_item_off,
                              &parts.pb_item_len);
        if (rc == 0 && msg_out)
            *msg_out = msg;
        /*
         * The JSON is written back from the message, as the apiserver decodes
         * into its Go struct and encodes that: fields in Go's order whatever
         * order the client used, and exactly what the protobuf says.
         */
        if (rc == 0 && !text && (rc = ks_conv_to_json(msg, a, &root, err)) == 0)
            rc = set_type_meta(a, res, root);
        if (rc < 0)
            goto out;
        parts.pb = (const uint8_t *)pb.p;
        parts.pb_len = pb.len;
    }
    if (!text)
        ks_json_write(&json, root);
    rc = json.err ? json.err : extract(a, res, root, &parts);
    if (rc < 0)
        goto out;
    parts.json = text ? text : json.p;
    parts.json_len = text ? text_len : json.len;
    /* {"kind":"X","apiVersion":"Y", is 27 bytes plus the two values */
    parts.json_body_off = 27 + strlen(res->kind) + strlen(res->api_version);
    *out = ks_obj_new(&parts);
    rc = *out ? 0 : -ENOMEM;
out:
    ks_sb_free(&json);
    ks_sb_free(&pb);
    return rc;
}

int ks_obj_build(struct ks_res *res, struct ks_json *root, struct kf_arena *a, struct ks_obj **out,
                 struct ks_conv_error *err)
{
    return ks_obj_build_text(res, root, NULL, 0, a, out, err);
}

/* The DOM of a stored version (its JSON parsed again). */
int ks_obj_dom(const struct ks_obj *o, struct kf_arena *a, struct ks_json **out)
{
    char err[160];

    return ks_json_parse(a, o->json, o->json_len, out, err, sizeof(err));
}

/* The same object at another resourceVersion (DELETED events carry the delete rv). */
struct ks_obj *ks_obj_with_rv(const struct ks_obj *o, uint64_t rv)
{
    struct kf_arena *a = kf_arena_new(16384);
    struct ks_json *root;
    struct ks_obj *copy = NULL;
    struct ks_conv_error err;
    char rvs[24];

    if (!a)
        return NULL;
    snprintf(rvs, sizeof(rvs), "%llu", (unsigned long long)rv);
    if (ks_obj_dom(o, a, &root) == 0) {
        struct ks_json *v = ks_json_new_str(a, rvs);
        struct ks_json *meta = ks_meta(a, root);
        if (v && meta) {
            ks_meta_set(a, meta, "resourceVersion", v);
            if (ks_obj_build(o->res, root, a, &copy, &err) < 0)
                copy = NULL;
        }
    }
    kf_arena_free(a);
    return copy;
}
