/*
 * Watches, on the worker loop that owns the client. Each worker keeps its
 * watches in buckets by what they select on (all, namespace, object key,
 * node), so an event only visits the watches that can match it. A watch is
 * a cursor: LIVE ones take events from the inbox as they come; one whose
 * sink backs up stops taking them (REPLAY) and, once drained, catches up from
 * the store's window, so a slow client costs no memory beyond its own socket
 * buffer and never delays anyone. One that falls out of the window, or stays
 * blocked, is closed and resumes from its last RV like any client.
 *
 * States: INITIAL (ADDED events of a snapshot) -> REPLAY <-> LIVE -> DONE.
 */
#include "cache/cache_internal.h"
#include "cache/local.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#define SINK_HIGH              (256 * 1024)
#define REPLAY_BATCH           256
#define BOOKMARK_EVERY_MS      60000
#define BOOKMARK_BEFORE_END_MS 2000
#define STALLED_MS             30000

static const char *const state_name[] = {"initial", "replay", "live", "done"};

static void set_state(struct cache_watch *w, enum cw_state next)
{
    KF_BUG_ON(w->state == CW_DONE);
    KF_BUG_ON(next == CW_INITIAL);
    kf_debug("cache", "watch %s: %s -> %s", w->q.store->type->resource, state_name[w->state],
             state_name[next]);
    w->state = next;
}

/* ---- buckets ------------------------------------------------------------------------------------
 */

static struct kf_list *bucket_get(struct kf_map *map, const char *key, bool create)
{
    struct local_bucket *b = kf_map_get(map, key);

    if (!b && create) {
        b = calloc(1, sizeof(*b));
        if (!b || kf_map_put(map, key, b) < 0) {
            free(b);
            return NULL;
        }
        kf_list_init(&b->head);
    }
    return b ? &b->head : NULL;
}

static void place(struct cache_watch *w)
{
    struct local_store *ls = &w->l->stores[w->q.store->id];
    const char *name = cache_query_pinned_name(&w->q), *node = cache_query_pinned_node(&w->q);
    bool has_ns = w->q.namespace_ && w->q.namespace_[0];
    struct kf_list *head = NULL;

    if (name && (has_ns || !w->q.store->type->namespaced)) {
        w->map = &ls->by_key;
        w->map_key = has_ns ? kf_arena_sprintf(w->arena, "%s/%s", w->q.namespace_, name)
                            : kf_arena_strdup(w->arena, name);
    } else if (node) {
        w->map = &ls->by_node;
        w->map_key = kf_arena_strdup(w->arena, node);
    } else if (has_ns) {
        w->map = &ls->by_ns;
        w->map_key = kf_arena_strdup(w->arena, w->q.namespace_);
    }
    if (w->map && w->map_key)
        head = bucket_get(w->map, w->map_key, true);
    if (!head) {
        w->map = NULL;
        head = &ls->all;
    }
    kf_list_insert_tail(head, &w->link);
}

static void unplace(struct cache_watch *w)
{
    kf_list_remove(&w->link);
    if (w->map) {
        struct local_bucket *b = kf_map_get(w->map, w->map_key);
        if (b && kf_list_empty(&b->head))
            free(kf_map_remove(w->map, w->map_key));
    }
}

/* ---- writing ------------------------------------------------------------------------------------
 */

static bool backed_up(const struct cache_watch *w)
{
    /* a finished watch (its client went away mid-write) takes nothing more */
    return !w->sink || w->ops->pending(w->sink) >= SINK_HIGH;
}

static int write_bytes(struct cache_watch *w, struct cache_bytes *b)
{
    cache_ref_get(&b->ref);
    if (w->ops->write(w->sink, b->data, b->len, &b->ref) < 0)
        return -EPIPE;
    w->last_progress_ms = kf_now_ms();
    return 0;
}

static void send_bookmark(struct cache_watch *w, uint64_t rv, bool initial_end)
{
    struct codec_buf obj, b;
    unsigned flags = initial_end ? CODEC_BOOKMARK_INITIAL_EVENTS_END : 0;
    int rc;

    /* codec_bookmark_* make the object only: it goes out framed as a BOOKMARK event */
    codec_buf_init(&obj);
    codec_buf_init(&b);
    if (w->q.store->fmt == CACHE_JSON) {
        rc = codec_bookmark_json(&obj, w->q.store->type->id, rv,
                                 flags | CODEC_BOOKMARK_NULL_CREATION);
        if (rc == 0 && !obj.err)
            rc = codec_watch_event_json(&b, CODEC_EV_BOOKMARK, obj.data, obj.len);
    } else {
        rc = codec_bookmark_pb(&obj, w->q.store->type->id, rv, flags);
        if (rc == 0 && !obj.err)
            rc = codec_watch_event_pb(&b, CODEC_EV_BOOKMARK, obj.data, obj.len);
    }
    if (rc == 0 && !obj.err && !b.err && b.len)
        w->ops->write(w->sink, b.data, b.len, NULL);
    codec_buf_free(&obj);
    codec_buf_free(&b);
}

/* Which form of ev this watch sees; -1 for none. */
static int variant_for(const struct cache_watch *w, const struct cache_event *ev)
{
    if (ev->type == CODEC_EV_BOOKMARK || !ev->obj)
        return -1;
    if (ev->type == CODEC_EV_DELETED)
        return cache_query_matches(&w->q, ev->obj) ? CACHE_AS_IS : -1;
    bool now = cache_query_matches(&w->q, ev->obj);
    bool before = ev->prev && cache_query_matches(&w->q, ev->prev);
    if (now)
        return before || ev->type == CODEC_EV_ADDED ? CACHE_AS_IS : CACHE_AS_ADDED;
    return before ? CACHE_AS_LEFT : -1;
}

/* 0, or -EPIPE when the client is gone. */
static int deliver(struct cache_watch *w, struct cache_event *ev)
{
    if (ev->rv <= w->cursor)
        return 0;
    int v = variant_for(w, ev);
    w->cursor = ev->rv;
    if (v < 0)
        return 0;
    struct cache_bytes *b = cache_event_bytes(ev, (enum cache_variant)v);
    return b ? write_bytes(w, b) : 0;
}

/* ---- ending -------------------------------------------------------------------------------------
 */

void watch_free(struct cache_watch *w)
{
    if (w->counted)
        atomic_fetch_sub(&w->l->cache->watches_active, 1);
    unplace(w);
    kf_list_remove(&w->all_link);
    if (w->deadline)
        event_free(w->deadline);
    if (w->bookmark)
        event_free(w->bookmark);
    for (size_t i = w->init_pos; i < w->n_init; i++)
        cache_obj_put(w->init[i]);
    free(w->init);
    kf_arena_free(w->arena);
    free(w);
}

/* Done: the sink is forgotten now; the memory goes at the next reap (we may be inside a walk
 * over a bucket holding w). */
static void watch_finish(struct cache_watch *w, bool tell_sink, enum cache_end how)
{
    if (w->state == CW_DONE)
        return;
    set_state(w, CW_DONE);
    evtimer_del(w->deadline);
    evtimer_del(w->bookmark);
    if (tell_sink)
        w->ops->end(w->sink, how);
    w->sink = NULL;
    local_reap_later(w->l);
}

void cache_local_end_watches(struct cache_local *l)
{
    struct kf_list *pos;

    kf_list_for_each(pos, &l->watches)
    {
        struct cache_watch *w = kf_container_of(pos, struct cache_watch, all_link);
        if (w->state != CW_DONE)
            watch_finish(w, true, CACHE_END_OK);
    }
}

void cache_watch_cancel(struct cache_watch *w)
{
    watch_finish(w, false, CACHE_END_OK);
}

/* ---- pumping
 * --------------------------------------------------------------------------------------- */

static bool pump_initial(struct cache_watch *w)
{
    while (w->init_pos < w->n_init && !backed_up(w)) {
        struct cache_obj *o = w->init[w->init_pos++];
        struct cache_bytes *b = cache_obj_added(o);
        int rc = b ? write_bytes(w, b) : 0;
        cache_obj_put(o);
        if (rc < 0)
            return false;
    }
    if (w->init_pos < w->n_init)
        return false;
    free(w->init);
    w->init = NULL;
    w->n_init = w->init_pos = 0;
    if (w->initial_end)
        send_bookmark(w, w->cursor, true);
    set_state(w, CW_REPLAY);
    return true;
}

static void pump_replay(struct cache_watch *w)
{
    struct cache_event *evs[REPLAY_BATCH];
    size_t n, i;
    bool more = true;

    while (more && w->state == CW_REPLAY) {
        if (backed_up(w))
            return;
        if (store_window_after(w->q.store, w->cursor, evs, REPLAY_BATCH, &n, &more) < 0) {
            /* what it still needs is gone: end cleanly, the client resumes (and gets 410) */
            kf_info("cache", "closing a %s watch that fell behind the window at rv %llu",
                    w->q.store->type->resource, (unsigned long long)w->cursor);
            atomic_fetch_add(&w->l->cache->slow_closed, 1);
            watch_finish(w, true, CACHE_END_OK);
            return;
        }
        for (i = 0; i < n && !backed_up(w); i++)
            if (deliver(w, evs[i]) < 0)
                break;
        if (i < n)
            more = true;
        for (size_t k = 0; k < n; k++)
            cache_ref_put(&evs[k]->ref);
    }
    if (!more && w->state == CW_REPLAY && !backed_up(w))
        set_state(w, CW_LIVE);
}

static void pump(struct cache_watch *w)
{
    if (w->state == CW_INITIAL && !pump_initial(w))
        return;
    if (w->state == CW_REPLAY)
        pump_replay(w);
}

void cache_watch_drained(struct cache_watch *w)
{
    if (w->state != CW_DONE && w->state != CW_LIVE)
        pump(w);
}

/* An inbox event for a LIVE watch. */
void watch_offer(struct cache_watch *w, struct cache_event *ev)
{
    if (w->state != CW_LIVE)
        return;
    if (backed_up(w)) {
        set_state(w, CW_REPLAY); /* catches up from the window once drained */
        return;
    }
    deliver(w, ev);
}

/* Blocked without progress for too long: close it, the client resumes. */
void watch_sweep(struct cache_watch *w, uint64_t now_ms)
{
    if (w->state == CW_DONE || !backed_up(w) || now_ms - w->last_progress_ms < STALLED_MS)
        return;
    kf_info("cache", "closing a %s watch whose client has not read for %u s",
            w->q.store->type->resource, STALLED_MS / 1000);
    atomic_fetch_add(&w->l->cache->slow_closed, 1);
    watch_finish(w, true, CACHE_END_OK);
}

/* ---- timers
 * ----------------------------------------------------------------------------------------- */

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    watch_finish(arg, true, CACHE_END_OK);
}

static void arm_bookmark(struct cache_watch *w)
{
    uint64_t now = kf_now_ms(), at = now + BOOKMARK_EVERY_MS;

    if (w->deadline_ms > BOOKMARK_BEFORE_END_MS && at > w->deadline_ms - BOOKMARK_BEFORE_END_MS)
        at = w->deadline_ms - BOOKMARK_BEFORE_END_MS;
    if (at <= now)
        return;
    struct timeval tv = {(time_t)((at - now) / 1000), (suseconds_t)((at - now) % 1000 * 1000)};
    evtimer_add(w->bookmark, &tv);
}

static void on_bookmark(evutil_socket_t fd, short what, void *arg)
{
    struct cache_watch *w = arg;
    uint64_t rv = w->cursor;

    (void)fd;
    (void)what;
    if (w->state == CW_LIVE) {
        /* every event up to the worker's RV has been offered to a live watch */
        uint64_t seen = w->l->stores[w->q.store->id].rv;
        rv = seen > rv ? seen : rv;
        w->cursor = rv;
    }
    if (w->state == CW_LIVE || w->state == CW_REPLAY)
        send_bookmark(w, rv, false);
    arm_bookmark(w);
}

/* ---- starting
 * ---------------------------------------------------------------------------------------- */

int cache_snapshot(const struct cache_query *q, struct cache_obj ***objs, size_t *n, uint64_t *rv);

static int watch_position(struct cache_watch *w, const struct cache_watch_params *p)
{
    struct cache_store *s = p->q.store;

    if (p->initial_events) {
        w->state = CW_INITIAL;
        return cache_snapshot(&w->q, &w->init, &w->n_init, &w->cursor);
    }
    w->state = CW_REPLAY;
    pthread_rwlock_rdlock(&s->lock);
    uint64_t start = s->window_start, now = s->rv;
    pthread_rwlock_unlock(&s->lock);
    if (p->rv && p->rv < start)
        return -ERANGE;
    w->cursor = p->rv ? p->rv : now;
    return 0;
}

int cache_watch_start(struct cache_local *l, const struct cache_watch_params *p,
                      const struct cache_sink_ops *ops, void *sink, struct cache_watch **out)
{
    struct cache_watch *w = calloc(1, sizeof(*w));
    int rc = -ENOMEM;

    if (!w)
        return -ENOMEM;
    kf_list_init(&w->link);
    kf_list_init(&w->all_link);
    w->l = l;
    w->q = p->q;
    w->ops = ops;
    w->sink = sink;
    w->initial_end = p->initial_events_end;
    w->arena = kf_arena_new(256);
    w->deadline = evtimer_new(l->base, on_deadline, w);
    w->bookmark = evtimer_new(l->base, on_bookmark, w);
    if (!w->arena || !w->deadline || !w->bookmark)
        goto fail;
    if (w->q.namespace_)
        w->q.namespace_ = kf_arena_strdup(w->arena, w->q.namespace_);
    rc = watch_position(w, p);
    if (rc < 0)
        goto fail;
    place(w);
    kf_list_insert_tail(&l->watches, &w->all_link);
    w->counted = true;
    atomic_fetch_add(&l->cache->watches_active, 1);
    atomic_fetch_add(&l->cache->watches_total, 1);
    w->deadline_ms = kf_now_ms() + p->timeout_ms;
    w->last_progress_ms = kf_now_ms();
    struct timeval tv = {(time_t)(p->timeout_ms / 1000),
                         (suseconds_t)(p->timeout_ms % 1000 * 1000)};
    evtimer_add(w->deadline, &tv);
    if (p->bookmarks)
        arm_bookmark(w);
    *out = w;
    pump(w);
    return 0;
fail:
    watch_free(w);
    return rc;
}

int cache_watch_expired_event(struct cache_store *s, uint64_t rv, struct codec_buf *out)
{
    struct codec_status st;
    struct codec_buf obj;
    char msg[128];
    int rc;

    pthread_rwlock_rdlock(&s->lock);
    uint64_t oldest = s->window_start;
    pthread_rwlock_unlock(&s->lock);
    codec_status_expired(&st, msg, sizeof(msg), rv, oldest);
    codec_buf_init(&obj);
    if (s->fmt == CACHE_JSON) {
        rc = codec_status_json(&obj, &st);
        if (rc == 0)
            rc = codec_watch_event_json(out, CODEC_EV_ERROR, obj.data, obj.len);
    } else {
        rc = codec_status_pb(&obj, &st);
        if (rc == 0)
            rc = codec_watch_event_pb(out, CODEC_EV_ERROR, obj.data, obj.len);
    }
    codec_buf_free(&obj);
    return rc;
}
