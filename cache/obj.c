/*
 * Objects and shared bytes: one allocation of the object's wire bytes plus
 * its parsed metadata, immutable once built and freed with its last reference.
 */
#include "cache/cache_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- references ------------------------------------------------------------------------- */

void cache_ref_get(struct cache_ref *ref)
{
    __atomic_fetch_add(&ref->refs, 1, __ATOMIC_RELAXED);
}

void cache_ref_put(struct cache_ref *ref)
{
    if (ref && __atomic_sub_fetch(&ref->refs, 1, __ATOMIC_ACQ_REL) == 0)
        ref->release(ref);
}

void cache_ref_free_cb(const void *data, size_t len, void *arg)
{
    (void)data;
    (void)len;
    cache_ref_put(arg);
}

static void bytes_release(struct cache_ref *ref)
{
    free(kf_container_of(ref, struct cache_bytes, ref));
}

struct cache_bytes *cache_bytes_alloc(size_t cap)
{
    struct cache_bytes *b = malloc(sizeof(*b) + cap);

    if (!b)
        return NULL;
    b->ref.refs = 1;
    b->ref.release = bytes_release;
    b->len = 0;
    return b;
}

struct cache_bytes *cache_bytes_new(const void *data, size_t len)
{
    struct cache_bytes *b = malloc(sizeof(*b) + len);

    if (!b)
        return NULL;
    b->ref.refs = 1;
    b->ref.release = bytes_release;
    b->len = len;
    memcpy(b->data, data, len);
    return b;
}

/* ---- objects ------------------------------------------------------------------------------ */

static void obj_release(struct cache_ref *ref)
{
    struct cache_obj *o = kf_container_of(ref, struct cache_obj, ref);
    struct cache_bytes *added = atomic_load(&o->added);

    if (added)
        cache_ref_put(&added->ref);
    kf_arena_free(o->arena);
    free(o->data);
    free(o);
}

void cache_obj_get(struct cache_obj *o)
{
    cache_ref_get(&o->ref);
}

void cache_obj_put(struct cache_obj *o)
{
    if (o)
        cache_ref_put(&o->ref);
}

struct cache_ref *cache_obj_ref(struct cache_obj *o)
{
    return &o->ref;
}

void cache_obj_bytes(const struct cache_obj *o, const char **data, size_t *len)
{
    *data = o->data;
    *len = o->len;
}

/* Key and the fields the indexes use, from meta. */
static int obj_index_fields(struct cache_obj *o, const struct codec_type *type)
{
    struct codec_str node = {"", 0};

    if (!o->meta.name.len || (type->namespaced && !o->meta.namespace_.len))
        return -EBADMSG;
    o->name = kf_arena_strndup(o->arena, o->meta.name.ptr, o->meta.name.len);
    /* a cluster-scoped object has no namespace slice at all (ptr NULL): memcpy must not see it */
    o->ns = kf_arena_strndup(o->arena, o->meta.namespace_.len ? o->meta.namespace_.ptr : "",
                             o->meta.namespace_.len);
    o->key = type->namespaced ? kf_arena_sprintf(o->arena, "%s/%s", o->ns, o->name)
                              : kf_arena_strdup(o->arena, o->name);
    if (type->id == CODEC_KIND_POD)
        codec_meta_field(&o->meta, "spec.nodeName", &node);
    o->node_name =
        kf_arena_strndup(o->arena, node.len ? node.ptr : "", node.len); /* unbound: NULL */
    if (!o->name || !o->ns || !o->key || !o->node_name)
        return -ENOMEM;
    if (!o->meta.rv_valid)
        return -EBADMSG;
    o->rv = o->meta.rv;
    return 0;
}

/* Takes ownership of data (malloc'ed). */
static int obj_build(enum cache_format fmt, const struct codec_type *type, char *data, size_t len,
                     struct cache_obj **out)
{
    struct cache_obj *o = calloc(1, sizeof(*o));
    int rc = -ENOMEM;

    if (!o) {
        free(data);
        return -ENOMEM;
    }
    o->ref.refs = 1;
    o->ref.release = obj_release;
    o->fmt = fmt;
    o->data = data;
    o->len = len;
    o->arena = kf_arena_new(512);
    if (!o->arena)
        goto fail;
    if (fmt == CACHE_JSON) {
        rc = codec_meta_from_json(data, len, type->id, &o->meta, o->arena);
        if (rc == 0)
            rc = codec_json_item_tail(data, len, &o->item_off);
        o->item_len = len - o->item_off;
    } else {
        struct codec_envelope env;
        rc = codec_pb_envelope_parse(data, len, &env);
        if (rc == 0)
            rc = codec_meta_from_pb(env.raw.ptr, env.raw.len, type->id, &o->meta, o->arena);
        o->item_off = (size_t)(env.raw.ptr - data);
        o->item_len = env.raw.len;
    }
    if (rc == 0)
        rc = obj_index_fields(o, type);
    if (rc < 0)
        goto fail;
    *out = o;
    return 0;
fail:
    obj_release(&o->ref);
    return rc;
}

int cache_obj_new(enum cache_format fmt, const struct codec_type *type, const char *data,
                  size_t len, struct cache_obj **out)
{
    char *copy = malloc(len ? len : 1);

    if (!copy)
        return -ENOMEM;
    memcpy(copy, data, len);
    return obj_build(fmt, type, copy, len, out);
}

int cache_obj_from_item(enum cache_format fmt, const struct codec_type *type, const char *item,
                        size_t len, struct cache_obj **out)
{
    struct codec_buf b;
    int rc;

    codec_buf_init(&b);
    if (fmt == CACHE_JSON)
        rc = codec_json_from_item(&b, item, len, type->api_version, type->kind);
    else
        rc = codec_pb_envelope_write(&b, type->api_version, type->kind, item, len);
    if (rc < 0 || b.err) {
        codec_buf_free(&b);
        return rc < 0 ? rc : b.err;
    }
    size_t n;
    char *data = codec_buf_steal(&b, &n);
    /* the growable buffer may hold up to twice the bytes: objects live long, trim it */
    char *exact = realloc(data, n ? n : 1);
    return obj_build(fmt, type, exact ? exact : data, n, out);
}

struct cache_bytes *cache_obj_added(struct cache_obj *o)
{
    struct cache_bytes *b = atomic_load_explicit(&o->added, memory_order_acquire), *mine;
    struct codec_buf buf;

    if (b)
        return b;
    codec_buf_init(&buf);
    if (o->fmt == CACHE_JSON)
        codec_watch_event_json(&buf, CODEC_EV_ADDED, o->data, o->len);
    else
        codec_watch_event_pb(&buf, CODEC_EV_ADDED, o->data, o->len);
    mine = buf.err ? NULL : cache_bytes_new(buf.data, buf.len);
    codec_buf_free(&buf);
    if (!mine)
        return NULL;
    /* two workers may race to make it: one wins, the other frees its copy */
    if (atomic_compare_exchange_strong(&o->added, &b, mine))
        return mine;
    cache_ref_put(&mine->ref);
    return b;
}

bool cache_query_matches(const struct cache_query *q, const struct cache_obj *o)
{
    if (q->namespace_ && q->namespace_[0] && strcmp(q->namespace_, o->ns) != 0)
        return false;
    if (q->name && q->name[0] && strcmp(q->name, o->name) != 0)
        return false;
    if (q->labels && !codec_label_selector_matches(q->labels, &o->meta))
        return false;
    return !q->fields || codec_field_selector_matches(q->fields, &o->meta);
}
