/*
 * patch: JSON merge patch (RFC 7386), strategic merge patch for the list
 * fields kubectl and kubelets touch (merged by their Kubernetes merge keys;
 * other lists are replaced, as for lists without a patch strategy), and JSON
 * patch (RFC 6902: add, remove, replace, test) on the DOM.
 */
#include "loadgen/kube-sim/kube_sim.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pctx {
    struct kf_arena *a;
    bool strategic;
    bool service; /* Service.spec.ports merge on "port" */
    char *err;
    size_t errlen;
};

/* patchMergeKey of the list fields that have one (by field name). */
static const char *merge_key(const struct pctx *c, const char *field)
{
    static const struct {
        const char *field, *key;
    } keys[] = {
        {"containers", "name"},
        {"initContainers", "name"},
        {"ephemeralContainers", "name"},
        {"volumes", "name"},
        {"env", "name"},
        {"imagePullSecrets", "name"},
        {"resourceClaims", "name"},
        {"volumeMounts", "mountPath"},
        {"volumeDevices", "devicePath"},
        {"conditions", "type"},
        {"addresses", "type"},
        {"ownerReferences", "uid"},
        {"taints", "key"},
        {"hostAliases", "ip"},
        {"topologySpreadConstraints", "topologyKey"},
        {"readinessGates", "conditionType"},
    };
    if (strcmp(field, "ports") == 0)
        return c->service ? "port" : "containerPort";
    for (size_t i = 0; i < KF_ARRAY_SIZE(keys); i++)
        if (strcmp(keys[i].field, field) == 0)
            return keys[i].key;
    return NULL;
}

static bool primitive_merge(const char *field)
{
    return strcmp(field, "finalizers") == 0;
}

static bool json_equal(const struct ks_json *x, const struct ks_json *y)
{
    if (!x || !y || x->t != y->t)
        return false;
    switch (x->t) {
    case KS_J_NULL:
        return true;
    case KS_J_BOOL:
        return x->b == y->b;
    case KS_J_NUM:
    case KS_J_STR:
        return x->n == y->n && memcmp(x->s, y->s, x->n) == 0;
    case KS_J_ARR: {
        const struct ks_json *a = x->kids, *b = y->kids;
        for (; a && b; a = a->next, b = b->next)
            if (!json_equal(a, b))
                return false;
        return !a && !b;
    }
    case KS_J_OBJ:
        if (x->count != y->count)
            return false;
        for (const struct ks_json *m = x->kids; m; m = m->next)
            if (!json_equal(m, ks_json_get(y, m->key)))
                return false;
        return true;
    }
    return false;
}

/* Drop null members (and strategic directives) from a value about to be stored. */
static void clean(struct ks_json *j)
{
    if (j->t == KS_J_OBJ) {
        for (struct ks_json **link = &j->kids; *link;) {
            struct ks_json *m = *link;
            if (m->t == KS_J_NULL || m->key[0] == '$') {
                *link = m->next;
                j->count--;
                continue;
            }
            clean(m);
            link = &m->next;
        }
    } else if (j->t == KS_J_ARR) {
        for (struct ks_json *e = j->kids; e; e = e->next)
            clean(e);
    }
}

static void append(struct ks_json *arr, struct ks_json *el)
{
    struct ks_json **tail = &arr->kids;

    while (*tail)
        tail = &(*tail)->next;
    el->next = NULL;
    el->key = NULL;
    *tail = el;
    arr->count++;
}

static int merge(struct pctx *c, struct ks_json *target, struct ks_json *patch);

static struct ks_json *find_by_key(struct ks_json *arr, const char *key, const struct ks_json *v)
{
    for (struct ks_json *e = arr->kids; e; e = e->next)
        if (json_equal(ks_json_get(e, key), v))
            return e;
    return NULL;
}

static void remove_el(struct ks_json *arr, struct ks_json *el)
{
    for (struct ks_json **link = &arr->kids; *link; link = &(*link)->next) {
        if (*link == el) {
            *link = el->next;
            arr->count--;
            return;
        }
    }
}

/* Strategic merge of a list of objects by their merge key. */
static int merge_list(struct pctx *c, struct ks_json *target, struct ks_json *patch,
                      const char *key)
{
    struct ks_json *next;

    for (struct ks_json *e = patch->kids; e; e = next) {
        next = e->next;
        if (e->t != KS_J_OBJ) {
            snprintf(c->err, c->errlen,
                     "unable to find api field in struct for the json field "
                     "\"%s\"",
                     key);
            return -EINVAL;
        }
        const struct ks_json *kv = ks_json_get(e, key);
        const char *directive = ks_json_get_str(e, "$patch");
        struct ks_json *have = kv ? find_by_key(target, key, kv) : NULL;
        if (directive && strcmp(directive, "delete") == 0) {
            if (have)
                remove_el(target, have);
            continue;
        }
        if (!kv) {
            snprintf(c->err, c->errlen, "map: %s does not contain declared merge key: %s", "item",
                     key);
            return -EINVAL;
        }
        if (have) {
            int rc = merge(c, have, e);
            if (rc < 0)
                return rc;
        } else {
            clean(e);
            append(target, e);
        }
    }
    return 0;
}

static void union_primitives(struct ks_json *target, struct ks_json *patch)
{
    struct ks_json *next;

    for (struct ks_json *e = patch->kids; e; e = next) {
        next = e->next;
        bool found = false;
        for (struct ks_json *t = target->kids; t && !found; t = t->next)
            found = json_equal(t, e);
        if (!found)
            append(target, e);
    }
}

static void delete_primitives(struct ks_json *target, const struct ks_json *values)
{
    if (!target || target->t != KS_J_ARR || !values || values->t != KS_J_ARR)
        return;
    for (const struct ks_json *v = values->kids; v; v = v->next) {
        for (struct ks_json *t = target->kids; t; t = t->next) {
            if (json_equal(t, v)) {
                remove_el(target, t);
                break;
            }
        }
    }
}

/* Strategic directives at object level ($setElementOrder, $retainKeys, ...). */
static int directive(struct pctx *c, struct ks_json *target, struct ks_json *m)
{
    if (strncmp(m->key, "$deleteFromPrimitiveList/", 25) == 0) {
        delete_primitives(ks_json_get(target, m->key + 25), m);
        return 0;
    }
    if (strncmp(m->key, "$setElementOrder/", 17) == 0 || strcmp(m->key, "$retainKeys") == 0)
        return 0; /* ordering and key retention: not modelled */
    if (strcmp(m->key, "$patch") == 0 && m->t == KS_J_STR && strcmp(m->s, "replace") == 0)
        return 1;
    snprintf(c->err, c->errlen, "unknown patch directive %s", m->key);
    return -EINVAL;
}

static int merge_member(struct pctx *c, struct ks_json *target, struct ks_json *m)
{
    struct ks_json *have = ks_json_get(target, m->key);

    if (m->t == KS_J_NULL) {
        ks_json_remove(target, m->key);
        return 0;
    }
    if (m->t == KS_J_OBJ && have && have->t == KS_J_OBJ)
        return merge(c, have, m);
    if (c->strategic && m->t == KS_J_ARR && have && have->t == KS_J_ARR) {
        const char *key = merge_key(c, m->key);
        if (key)
            return merge_list(c, have, m, key);
        if (primitive_merge(m->key)) {
            union_primitives(have, m);
            return 0;
        }
    }
    clean(m);
    ks_json_set(c->a, target, kf_arena_strndup(c->a, m->key, m->key_len), m, NULL, 0);
    return 0;
}

static int merge(struct pctx *c, struct ks_json *target, struct ks_json *patch)
{
    struct ks_json *next;

    if (c->strategic) {
        const char *d = ks_json_get_str(patch, "$patch");
        if (d && strcmp(d, "replace") == 0) {
            clean(patch);
            target->kids = patch->kids;
            target->count = patch->count;
            return 0;
        }
    }
    for (struct ks_json *m = patch->kids; m; m = next) {
        next = m->next;
        if (c->strategic && m->key[0] == '$') {
            int rc = directive(c, target, m);
            if (rc < 0)
                return rc;
            continue;
        }
        int rc = merge_member(c, target, m);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int ks_patch_merge(struct kf_arena *a, struct ks_json *target, struct ks_json *patch,
                   bool strategic, const struct ks_res *res, char *err, size_t errlen)
{
    struct pctx c = {.a = a,
                     .strategic = strategic,
                     .service = res == &ks_res_services,
                     .err = err,
                     .errlen = errlen};

    if (patch->t != KS_J_OBJ || target->t != KS_J_OBJ) {
        snprintf(err, errlen,
                 "json: cannot unmarshal %s into Go value of type map[string]interface {}",
                 patch->t == KS_J_ARR ? "array" : "value");
        return -EINVAL;
    }
    return merge(&c, target, patch);
}

/* ---- JSON patch (RFC 6902)
 * ------------------------------------------------------------------------ */

/* Unescape one reference token of a JSON pointer (~1 -> /, ~0 -> ~). */
static char *token(struct kf_arena *a, const char *s, size_t n)
{
    char *t = kf_arena_alloc(a, n + 1);
    size_t o = 0;

    if (!t)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '~' && i + 1 < n && (s[i + 1] == '0' || s[i + 1] == '1')) {
            t[o++] = s[i + 1] == '0' ? '~' : '/';
            i++;
        } else {
            t[o++] = s[i];
        }
    }
    t[o] = '\0';
    return t;
}

static struct ks_json *child_at(struct ks_json *j, const char *tok, struct ks_json ***link_out)
{
    if (j->t == KS_J_OBJ) {
        for (struct ks_json **link = &j->kids; *link; link = &(*link)->next) {
            if (strcmp((*link)->key, tok) == 0) {
                if (link_out)
                    *link_out = link;
                return *link;
            }
        }
        return NULL;
    }
    if (j->t != KS_J_ARR)
        return NULL;
    char *end;
    long idx = strtol(tok, &end, 10);
    if (*end || !tok[0] || idx < 0)
        return NULL;
    struct ks_json **link = &j->kids;
    for (long i = 0; *link && i < idx; i++)
        link = &(*link)->next;
    if (link_out)
        *link_out = link;
    return *link;
}

/* Resolve all but the last token; returns the parent and sets *last. */
static struct ks_json *resolve_parent(struct kf_arena *a, struct ks_json *root, const char *path,
                                      char **last)
{
    struct ks_json *cur = root;

    if (path[0] != '/')
        return NULL;
    for (;;) {
        const char *start = path + 1, *slash = strchr(start, '/');
        size_t n = slash ? (size_t)(slash - start) : strlen(start);
        char *tok = token(a, start, n);
        if (!tok)
            return NULL;
        if (!slash) {
            *last = tok;
            return cur;
        }
        cur = child_at(cur, tok, NULL);
        if (!cur)
            return NULL;
        path = slash;
    }
}

static int op_add(struct kf_arena *a, struct ks_json *parent, const char *last, struct ks_json *v,
                  bool replace)
{
    struct ks_json **link = NULL;
    struct ks_json *have = child_at(parent, last, &link);

    if (parent->t == KS_J_OBJ) {
        if (replace && !have)
            return -ENOENT;
        ks_json_set(a, parent, last, v, NULL, 0);
        return 0;
    }
    if (parent->t != KS_J_ARR)
        return -ENOENT;
    if (strcmp(last, "-") == 0 && !replace) {
        append(parent, v);
        return 0;
    }
    if (!link || (replace && !have))
        return -ENOENT;
    v->key = NULL;
    v->next = replace ? have->next : *link;
    *link = v;
    if (!replace)
        parent->count++;
    return 0;
}

static int op_remove(struct ks_json *parent, const char *last)
{
    struct ks_json **link = NULL;
    struct ks_json *have = child_at(parent, last, &link);

    if (!have)
        return -ENOENT;
    *link = have->next;
    parent->count--;
    return 0;
}

static int json_patch_op(struct kf_arena *a, struct ks_json *root, struct ks_json *op, char *err,
                         size_t errlen)
{
    const char *name = ks_json_get_str(op, "op"), *path = ks_json_get_str(op, "path");
    struct ks_json *value = ks_json_get(op, "value");
    char *last = NULL;
    struct ks_json *parent;
    int rc;

    if (!name || !path) {
        snprintf(err, errlen, "json patch operation is missing \"op\" or \"path\"");
        return -EINVAL;
    }
    parent = resolve_parent(a, root, path, &last);
    if (!parent) {
        snprintf(err, errlen, "doc is missing path: \"%s\": missing value", path);
        return -EINVAL;
    }
    if ((strcmp(name, "add") == 0 || strcmp(name, "replace") == 0 || strcmp(name, "test") == 0) &&
        !value) {
        snprintf(err, errlen, "json patch %s operation does not apply: missing value", name);
        return -EINVAL;
    }
    if (strcmp(name, "add") == 0)
        rc = op_add(a, parent, last, value, false);
    else if (strcmp(name, "replace") == 0)
        rc = op_add(a, parent, last, value, true);
    else if (strcmp(name, "remove") == 0)
        rc = op_remove(parent, last);
    else if (strcmp(name, "test") == 0)
        rc = json_equal(child_at(parent, last, NULL), value) ? 0 : -EILSEQ;
    else {
        snprintf(err, errlen, "Unexpected kind: %s", name);
        return -EINVAL;
    }
    if (rc == -EILSEQ)
        snprintf(err, errlen, "testing value %s failed: test failed", path);
    else if (rc < 0)
        snprintf(err, errlen, "doc is missing path: \"%s\": missing value", path);
    return rc < 0 ? -EINVAL : 0;
}

int ks_patch_json(struct kf_arena *a, struct ks_json *root, struct ks_json *ops, char *err,
                  size_t errlen)
{
    if (ops->t != KS_J_ARR) {
        snprintf(err, errlen,
                 "json: cannot unmarshal object into Go value of type jsonpatch.Patch");
        return -EINVAL;
    }
    for (struct ks_json *op = ops->kids; op; op = op->next) {
        int rc = json_patch_op(a, root, op, err, errlen);
        if (rc < 0)
            return rc;
    }
    return 0;
}

bool ks_json_equal(const struct ks_json *x, const struct ks_json *y)
{
    return json_equal(x, y);
}
