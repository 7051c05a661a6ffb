/*
 * Events: one change of one object, kept in the store's window and pushed to
 * every worker. Each variant a watcher can need is encoded once, on first
 * use, and shared by every watcher that receives it.
 */
#include "cache/cache_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void event_release(struct cache_ref *ref)
{
    struct cache_event *ev = kf_container_of(ref, struct cache_event, ref);

    for (size_t i = 0; i < KF_ARRAY_SIZE(ev->enc); i++) {
        struct cache_bytes *b = atomic_load(&ev->enc[i]);
        if (b)
            cache_ref_put(&b->ref);
    }
    cache_obj_put(ev->obj);
    cache_obj_put(ev->prev);
    free(ev);
}

struct cache_event *cache_event_new(int store_id, enum codec_event_type type, uint64_t rv,
                                    struct cache_obj *obj, struct cache_obj *prev)
{
    struct cache_event *ev = calloc(1, sizeof(*ev));

    if (!ev)
        return NULL;
    ev->ref.refs = 1;
    ev->ref.release = event_release;
    ev->store_id = store_id;
    ev->type = type;
    ev->rv = rv;
    ev->obj = obj;
    ev->prev = prev;
    ev->at_ms = kf_now_ms();
    if (obj)
        cache_obj_get(obj);
    if (prev)
        cache_obj_get(prev);
    return ev;
}

/* The previous version with the event's resourceVersion, framed as DELETED. */
static int encode_left(const struct cache_event *ev, struct codec_buf *out)
{
    const struct cache_obj *p = ev->prev;
    struct codec_buf obj;
    int rc;

    codec_buf_init(&obj);
    if (p->fmt == CACHE_JSON)
        rc = codec_json_with_rv(&obj, p->data, p->len, &p->meta, ev->rv);
    else
        rc = codec_pb_with_rv(&obj, p->data, p->len, ev->rv);
    if (rc == 0) {
        if (p->fmt == CACHE_JSON)
            rc = codec_watch_event_json(out, CODEC_EV_DELETED, obj.data, obj.len);
        else
            rc = codec_watch_event_pb(out, CODEC_EV_DELETED, obj.data, obj.len);
    }
    codec_buf_free(&obj);
    return rc;
}

static int encode(const struct cache_event *ev, enum cache_variant v, struct codec_buf *out)
{
    const struct cache_obj *o = ev->obj;
    enum codec_event_type t = v == CACHE_AS_ADDED ? CODEC_EV_ADDED : ev->type;

    if (v == CACHE_AS_LEFT)
        return ev->prev ? encode_left(ev, out) : -EINVAL;
    if (o->fmt == CACHE_JSON)
        return codec_watch_event_json(out, t, o->data, o->len);
    return codec_watch_event_pb(out, t, o->data, o->len);
}

struct cache_bytes *cache_event_bytes(struct cache_event *ev, enum cache_variant v)
{
    struct cache_bytes *b = atomic_load_explicit(&ev->enc[v], memory_order_acquire), *mine;
    struct codec_buf buf;

    if (b)
        return b;
    if (v == CACHE_AS_ADDED && ev->obj) {
        /* the same bytes as the object's ADDED frame: share them */
        mine = cache_obj_added(ev->obj);
        if (!mine)
            return NULL;
        cache_ref_get(&mine->ref);
    } else {
        codec_buf_init(&buf);
        int rc = encode(ev, v, &buf);
        mine = rc == 0 && !buf.err ? cache_bytes_new(buf.data, buf.len) : NULL;
        codec_buf_free(&buf);
        if (!mine) {
            kf_warn("cache", "cannot encode an event at rv %llu: %s", (unsigned long long)ev->rv,
                    rc < 0 ? strerror(-rc) : "out of memory");
            return NULL;
        }
    }
    if (atomic_compare_exchange_strong(&ev->enc[v], &b, mine))
        return mine;
    cache_ref_put(&mine->ref);
    return b;
}
