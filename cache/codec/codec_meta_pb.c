/*
 * Object metadata and selector fields from protobuf wire bytes, read in place:
 * ObjectMeta (field 1 of every object) and the few nested messages holding
 * selector fields are walked; everything else is skipped by its length.
 */
#include "cache/codec/codec_internal.h"

#include <errno.h>
#include <string.h>

/* metav1.ObjectMeta field numbers */
enum {
    OM_NAME = 1,
    OM_GENERATE_NAME = 2,
    OM_NAMESPACE = 3,
    OM_UID = 5,
    OM_RESOURCE_VERSION = 6,
    OM_GENERATION = 7,
    OM_CREATION = 8,
    OM_DELETION = 9,
    OM_LABELS = 11,
    OM_ANNOTATIONS = 12,
    OM_OWNER_REFS = 13,
};
/* metav1.OwnerReference */
enum { OR_KIND = 1, OR_NAME = 3, OR_UID = 4, OR_API_VERSION = 5, OR_CONTROLLER = 6 };

struct pctx {
    struct kf_arena *arena;
    struct codec_meta *meta;
    const struct kind_fields *kf;
    struct codec_str vals[CODEC_MAX_FIELDS];
    uint32_t set; /* defs already filled: the first occurrence wins (podIPs[0]) */
};

static int want_len(const struct pbf *f)
{
    return f->type == PBW_LEN ? 0 : -EBADMSG;
}

/* A string field: protobuf strings must be UTF-8. */
static int pb_string(const struct pbf *f, struct codec_str *out)
{
    if (want_len(f) < 0 || !utf8_valid(f->s.ptr, f->s.len))
        return -EBADMSG;
    *out = f->s;
    return 0;
}

/* Call cb for each field of the embedded message f. */
static int pb_each(const struct pbf *f, int (*cb)(const struct pbf *g, void *ctx), void *ctx)
{
    struct pbr r = pbr_of_str(f->s);
    struct pbf g;
    int rc;
    if (want_len(f) < 0)
        return -EBADMSG;
    while ((rc = pbr_next(&r, &g)) > 0) {
        if (cb(&g, ctx) < 0)
            return -EBADMSG;
    }
    return rc;
}

/* metav1.Time: seconds (1) and nanos (2); only whole seconds are kept. */
static int time_field(const struct pbf *g, void *ctx)
{
    if (g->num != 1)
        return 0;
    *(int64_t *)ctx = (int64_t)g->v;
    return g->type == PBW_VARINT ? 0 : -EBADMSG;
}

static int pb_time(const struct pbf *f, int64_t *ts)
{
    *ts = 0;
    return pb_each(f, time_field, ts);
}

/* A map<string,string> entry: key (1), value (2). */
static int kv_field(const struct pbf *g, void *ctx)
{
    struct codec_kv *kv = ctx;
    if (g->num == 1)
        return pb_string(g, &kv->key);
    if (g->num == 2)
        return pb_string(g, &kv->value);
    return 0;
}

static int pb_kv(const struct pbf *f, struct codec_kv *kv)
{
    memset(kv, 0, sizeof(*kv));
    return pb_each(f, kv_field, kv);
}

static int owner_field(const struct pbf *g, void *ctx)
{
    struct codec_owner_ref *o = ctx;
    struct codec_str *dst = g->num == OR_KIND          ? &o->kind
                            : g->num == OR_NAME        ? &o->name
                            : g->num == OR_UID         ? &o->uid
                            : g->num == OR_API_VERSION ? &o->api_version
                                                       : NULL;
    if (dst)
        return pb_string(g, dst);
    if (g->num == OR_CONTROLLER)
        o->controller = g->type == PBW_VARINT && g->v != 0;
    return 0;
}

static int pb_owner(const struct pbf *f, struct codec_owner_ref *o)
{
    return pb_each(f, owner_field, o);
}

/* Count repeated fields first so each array is allocated once, at its size. */
static int count_repeated(struct codec_str om, size_t counts[3])
{
    struct pbr r = pbr_of_str(om);
    struct pbf f;
    int rc;
    counts[0] = counts[1] = counts[2] = 0;
    while ((rc = pbr_next(&r, &f)) > 0) {
        if (f.num >= OM_LABELS && f.num <= OM_OWNER_REFS)
            counts[f.num - OM_LABELS]++;
    }
    return rc;
}

static int alloc_arrays(struct pctx *c, struct codec_str om)
{
    size_t n[3];
    struct codec_meta *m = c->meta;
    if (count_repeated(om, n) < 0)
        return -EBADMSG;
    /* a repeated ObjectMeta replaces the earlier one rather than overflowing its arrays */
    m->n_labels = m->n_annotations = m->n_owners = 0;
    if (!n[0] && !n[1] && !n[2])
        return 0;
    m->labels = kf_arena_alloc(c->arena, n[0] * sizeof(*m->labels) + 1);
    m->annotations = kf_arena_alloc(c->arena, n[1] * sizeof(*m->annotations) + 1);
    m->owners = kf_arena_alloc(c->arena, n[2] * sizeof(*m->owners) + 1);
    return m->labels && m->annotations && m->owners ? 0 : -ENOMEM;
}

static int meta_field(struct pctx *c, const struct pbf *f)
{
    struct codec_meta *m = c->meta;
    switch (f->num) {
    case OM_NAME:
        return pb_string(f, &m->name);
    case OM_GENERATE_NAME:
        return pb_string(f, &m->generate_name);
    case OM_NAMESPACE:
        return pb_string(f, &m->namespace_);
    case OM_UID:
        return pb_string(f, &m->uid);
    case OM_RESOURCE_VERSION:
        return pb_string(f, &m->resource_version);
    case OM_GENERATION:
        m->generation = (int64_t)f->v;
        return f->type == PBW_VARINT ? 0 : -EBADMSG;
    case OM_CREATION:
        return pb_time(f, &m->creation_ts);
    case OM_DELETION:
        m->deleting = true;
        return pb_time(f, &m->deletion_ts);
    case OM_LABELS:
        return pb_kv(f, &m->labels[m->n_labels++]);
    case OM_ANNOTATIONS:
        return pb_kv(f, &m->annotations[m->n_annotations++]);
    case OM_OWNER_REFS:
        return pb_owner(f, &m->owners[m->n_owners++]);
    default:
        return 0;
    }
}

static int metadata(struct pctx *c, const struct pbf *outer)
{
    if (want_len(outer) < 0)
        return -EBADMSG;
    int rc = alloc_arrays(c, outer->s);
    if (rc < 0)
        return rc;
    struct pbr r = pbr_of_str(outer->s);
    struct pbf f;
    while ((rc = pbr_next(&r, &f)) > 0) {
        int e = meta_field(c, &f);
        if (e < 0)
            return e;
    }
    c->meta->rv_valid = parse_u64(c->meta->resource_version, &c->meta->rv);
    return rc;
}

/* A selector field's value: a string, or a bool rendered as Go's strconv.FormatBool. */
static int field_value(const struct fdef *d, const struct pbf *f, struct codec_str *out)
{
    static const struct codec_str t = {"true", 4}, no = {"false", 5};
    if (d->flags & FD_BOOL) {
        if (f->type != PBW_VARINT)
            return -EBADMSG;
        *out = f->v ? t : no;
        return 0;
    }
    return pb_string(f, out);
}

static int walk_fields(struct pctx *c, struct codec_str msg, unsigned depth, uint32_t mask)
{
    struct pbr r = pbr_of_str(msg);
    struct pbf f;
    int rc;
    while ((rc = pbr_next(&r, &f)) > 0) {
        uint32_t sub = 0;
        for (size_t i = 0; i < c->kf->n; i++) {
            const struct fdef *d = &c->kf->defs[i];
            if (!(mask & (1u << i)) || (c->set & (1u << i)) || d->pb[depth] != f.num)
                continue;
            if (d->depth == depth + 1) {
                if (field_value(d, &f, &c->vals[i]) < 0)
                    return -EBADMSG;
                c->set |= 1u << i;
            } else {
                sub |= 1u << i;
            }
        }
        if (sub && (want_len(&f) < 0 || walk_fields(c, f.s, depth + 1, sub) < 0))
            return -EBADMSG;
    }
    return rc;
}

static int extract(struct pctx *c, struct codec_str msg)
{
    struct pbr r = pbr_of_str(msg);
    struct pbf f;
    int rc;
    while ((rc = pbr_next(&r, &f)) > 0) {
        if (f.num == 1) { /* metadata is field 1 of every Kubernetes object */
            int e = metadata(c, &f);
            if (e < 0)
                return e;
        }
    }
    if (rc < 0)
        return rc;
    uint32_t all = c->kf->n ? (uint32_t)((1ull << c->kf->n) - 1) : 0;
    return all ? walk_fields(c, msg, 0, all) : 0;
}

int codec_meta_from_pb(const void *buf, size_t len, enum codec_kind kind, struct codec_meta *meta,
                       struct kf_arena *arena)
{
    struct codec_str msg = {buf, len};
    memset(meta, 0, sizeof(*meta));
    if (!arena)
        return -EINVAL;
    if (len >= CODEC_PB_MAGIC_LEN && memcmp(buf, CODEC_PB_MAGIC, CODEC_PB_MAGIC_LEN) == 0) {
        struct codec_envelope env;
        int rc = codec_pb_envelope_parse(buf, len, &env);
        if (rc < 0)
            return rc;
        if (kind == CODEC_KIND_UNKNOWN) {
            const struct codec_type *t = codec_type_by_kind(env.api_version, env.kind);
            if (!t)
                return -ENOENT;
            kind = t->id;
        }
        msg = env.raw;
    } else if (kind == CODEC_KIND_UNKNOWN) {
        return -ENOENT;
    }
    struct pctx c = {.arena = arena, .meta = meta, .kf = kind_fields(kind)};
    meta->kind = kind;
    int rc = extract(&c, msg);
    if (rc < 0)
        return rc;
    fields_finish(meta, c.kf, c.vals);
    return 0;
}
