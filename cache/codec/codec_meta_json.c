/*
 * Object metadata and selector fields from JSON: one jsmn pass, then a walk
 * over the tokens that enters only metadata and the members holding selector
 * fields (everything else is skipped by token offsets).
 */
#include "cache/codec/codec_internal.h"

#include <errno.h>
#include <string.h>

struct jctx {
    const struct jdoc *d;
    struct kf_arena *arena;
    struct codec_meta *meta;
    const struct kind_fields *kf;
    struct codec_str vals[CODEC_MAX_FIELDS];
};

/* Iterate an object's members (k: key token, v: value token); jdoc_parse checked the shape. */
#define FOR_MEMBERS(d, obj, k, v, next)                                                            \
    for (int next = (obj) + 1, k, v, left_ = (d)->tok[obj].size;                                   \
         left_ > 0 && (k = next, v = next + 1, next = jskip((d), v), 1); left_--)

static int check_object(const struct jdoc *d, int i)
{
    return d->tok[i].type == JT_OBJECT ? 0 : -EBADMSG;
}

static bool is_null(const struct jdoc *d, int i)
{
    return d->tok[i].type == JT_PRIMITIVE && codec_str_eq(jraw(d, i), "null");
}

static int kv_map(struct jctx *c, int obj, struct codec_kv **out, size_t *n)
{
    const struct jdoc *d = c->d;
    *n = 0;
    if (is_null(d, obj))
        return 0;
    if (check_object(d, obj) < 0)
        return -EBADMSG;
    *out = kf_arena_alloc(c->arena, (size_t)d->tok[obj].size * sizeof(**out) + 1);
    if (!*out)
        return -ENOMEM;
    FOR_MEMBERS(d, obj, k, v, next)
    {
        struct codec_kv *kv = &(*out)[(*n)++];
        if (jstring(d, k, c->arena, &kv->key) < 0 || d->tok[v].type != JT_STRING ||
            jstring(d, v, c->arena, &kv->value) < 0)
            return -EBADMSG;
    }
    return 0;
}

static int owner_ref(struct jctx *c, int obj, struct codec_owner_ref *o)
{
    const struct jdoc *d = c->d;
    if (check_object(d, obj) < 0)
        return -EBADMSG;
    FOR_MEMBERS(d, obj, k, v, next)
    {
        struct codec_str *dst = jeq(d, k, "apiVersion") ? &o->api_version
                                : jeq(d, k, "kind")     ? &o->kind
                                : jeq(d, k, "name")     ? &o->name
                                : jeq(d, k, "uid")      ? &o->uid
                                                        : NULL;
        if (dst && jstring(d, v, c->arena, dst) < 0)
            return -EBADMSG;
        if (jeq(d, k, "controller"))
            o->controller = codec_str_eq(jraw(d, v), "true");
    }
    return 0;
}

static int owner_refs(struct jctx *c, int arr)
{
    const struct jdoc *d = c->d;
    struct codec_meta *m = c->meta;
    m->n_owners = 0; /* a repeated member replaces the earlier one, as in Go */
    if (is_null(d, arr))
        return 0;
    if (d->tok[arr].type != JT_ARRAY)
        return -EBADMSG;
    m->owners = kf_arena_alloc(c->arena, (size_t)d->tok[arr].size * sizeof(*m->owners) + 1);
    if (!m->owners)
        return -ENOMEM;
    int i = arr + 1;
    for (int left = d->tok[arr].size; left > 0; left--, i = jskip(d, i)) {
        int rc = owner_ref(c, i, &m->owners[m->n_owners++]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int timestamp(const struct jdoc *d, int v, int64_t *ts, bool *present)
{
    if (is_null(d, v))
        return 0;
    if (d->tok[v].type != JT_STRING || !parse_rfc3339(jraw(d, v), ts))
        return -EBADMSG;
    if (present)
        *present = true;
    return 0;
}

static int meta_scalar(struct jctx *c, int k, int v)
{
    const struct jdoc *d = c->d;
    struct codec_meta *m = c->meta;
    struct codec_str *dst = jeq(d, k, "name")              ? &m->name
                            : jeq(d, k, "namespace")       ? &m->namespace_
                            : jeq(d, k, "uid")             ? &m->uid
                            : jeq(d, k, "generateName")    ? &m->generate_name
                            : jeq(d, k, "resourceVersion") ? &m->resource_version
                                                           : NULL;
    if (dst)
        return jstring(d, v, c->arena, dst);
    if (jeq(d, k, "generation"))
        return d->tok[v].type == JT_PRIMITIVE && parse_i64(jraw(d, v), &m->generation) ? 0
                                                                                       : -EBADMSG;
    if (jeq(d, k, "creationTimestamp"))
        return timestamp(d, v, &m->creation_ts, NULL);
    if (jeq(d, k, "deletionTimestamp"))
        return timestamp(d, v, &m->deletion_ts, &m->deleting);
    return 0;
}

static int metadata(struct jctx *c, int obj)
{
    const struct jdoc *d = c->d;
    struct codec_meta *m = c->meta;
    if (check_object(d, obj) < 0)
        return -EBADMSG;
    FOR_MEMBERS(d, obj, k, v, next)
    {
        int rc;
        if (jeq(d, k, "labels"))
            rc = kv_map(c, v, &m->labels, &m->n_labels);
        else if (jeq(d, k, "annotations"))
            rc = kv_map(c, v, &m->annotations, &m->n_annotations);
        else if (jeq(d, k, "ownerReferences"))
            rc = owner_refs(c, v);
        else
            rc = meta_scalar(c, k, v);
        if (rc < 0)
            return rc;
    }
    m->rv_valid = parse_u64(m->resource_version, &m->rv);
    return 0;
}

/* A selector field's value: strings, or the raw text of a bool / number. */
static int field_value(struct jctx *c, int v, struct codec_str *out)
{
    const struct jdoc *d = c->d;
    if (d->tok[v].type == JT_PRIMITIVE && !is_null(d, v)) {
        *out = jraw(d, v);
        return 0;
    }
    return jstring(d, v, c->arena, out);
}

/* Match the members of obj against the defs in mask at this depth, descending as needed. */
static int walk_fields(struct jctx *c, int obj, unsigned depth, uint32_t mask)
{
    const struct jdoc *d = c->d;
    FOR_MEMBERS(d, obj, k, v, next)
    {
        uint32_t sub = 0;
        for (size_t i = 0; i < c->kf->n; i++) {
            const struct fdef *f = &c->kf->defs[i];
            if (!(mask & (1u << i)) || !jeq(d, k, f->json[depth]))
                continue;
            if (f->depth == depth + 1) {
                if (field_value(c, v, &c->vals[i]) < 0)
                    return -EBADMSG;
            } else {
                sub |= 1u << i;
            }
        }
        int o = v;
        if (sub && d->tok[o].type == JT_ARRAY && d->tok[o].size > 0)
            o++; /* the first element (status.podIPs[0]) */
        if (sub && d->tok[o].type == JT_OBJECT) {
            int rc = walk_fields(c, o, depth + 1, sub);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

/* kind/apiVersion of the object, when the caller did not say. */
static enum codec_kind detect_kind(const struct jdoc *d)
{
    struct codec_str kind = {NULL, 0}, av = {NULL, 0};
    FOR_MEMBERS(d, 0, k, v, next)
    {
        if (jeq(d, k, "kind") && d->tok[v].type == JT_STRING)
            kind = jraw(d, v);
        else if (jeq(d, k, "apiVersion") && d->tok[v].type == JT_STRING)
            av = jraw(d, v);
    }
    const struct codec_type *t = codec_type_by_kind(av, kind);
    return t ? t->id : CODEC_KIND_UNKNOWN;
}

static int extract(struct jctx *c)
{
    const struct jdoc *d = c->d;
    FOR_MEMBERS(d, 0, k, v, next)
    {
        if (jeq(d, k, "metadata")) {
            int rc = metadata(c, v);
            if (rc < 0)
                return rc;
        }
    }
    uint32_t all = c->kf->n ? (uint32_t)((1ull << c->kf->n) - 1) : 0;
    return all ? walk_fields(c, 0, 0, all) : 0;
}

int codec_meta_from_json(const char *json, size_t len, enum codec_kind kind,
                         struct codec_meta *meta, struct kf_arena *arena)
{
    struct jdoc d;
    memset(meta, 0, sizeof(*meta));
    if (!arena)
        return -EINVAL;
    int rc = jdoc_parse(&d, json, len);
    if (rc < 0)
        goto out;
    if (kind == CODEC_KIND_UNKNOWN && (kind = detect_kind(&d)) == CODEC_KIND_UNKNOWN) {
        rc = -ENOENT;
        goto out;
    }
    struct jctx c = {.d = &d, .arena = arena, .meta = meta, .kf = kind_fields(kind)};
    meta->kind = kind;
    rc = extract(&c);
    if (rc == 0)
        fields_finish(meta, c.kf, c.vals);
out:
    jdoc_free(&d);
    return rc;
}
