/*
 * Stores: the current objects of one resource in one wire format (a tree in
 * key order for lists, a map for gets, pods by node), and the window of recent
 * events watches replay from. The cache thread is the only writer; each
 * batch is applied and handed to the workers under one write lock, so a reader
 * that registers under the read lock sees every event either in the store
 * or in its inbox, never neither.
 */
#include "cache/cache_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define WINDOW_MIN_EVENTS 100
#define WINDOW_MAX_EVENTS (100 * 1024)

int cache_obj_cmp_key(const struct cache_obj *a, const struct cache_obj *b)
{
    return strcmp(a->key, b->key);
}

RB_GENERATE(cache_tree, cache_obj, node, cache_obj_cmp_key)

void store_init(struct cache_store *s, struct cache *c, int id, const struct codec_type *type,
                enum cache_format fmt)
{
    memset(s, 0, sizeof(*s));
    s->cache = c;
    s->id = id;
    s->type = type;
    s->fmt = fmt;
    atomic_init(&s->state, STORE_IDLE);
    pthread_rwlock_init(&s->lock, NULL);
    RB_INIT(&s->tree);
}

static void objset_free(void *p)
{
    struct cache_objset *set = p;

    free(set->v);
    free(set);
}

static void window_clear(struct cache_store *s)
{
    for (size_t i = 0; i < s->win_n; i++)
        cache_ref_put(&s->win[(s->win_head + i) % s->win_cap]->ref);
    s->win_n = 0;
    s->win_head = 0;
}

void store_destroy(struct cache_store *s)
{
    struct cache_obj *o, *next;

    window_clear(s);
    free(s->win);
    for (o = RB_MIN(cache_tree, &s->tree); o; o = next) {
        next = RB_NEXT(cache_tree, &s->tree, o);
        RB_REMOVE(cache_tree, &s->tree, o);
        cache_obj_put(o);
    }
    kf_map_free(&s->by_key, NULL);
    kf_map_free(&s->by_node, objset_free);
    pthread_rwlock_destroy(&s->lock);
}

/* ---- the current objects --------------------------------------------------------------------- */

static int node_index_add(struct cache_store *s, struct cache_obj *o)
{
    struct cache_objset *set;

    if (s->type->id != CODEC_KIND_POD || !o->node_name[0])
        return 0;
    set = kf_map_get(&s->by_node, o->node_name);
    if (!set) {
        set = calloc(1, sizeof(*set));
        if (!set || kf_map_put(&s->by_node, o->node_name, set) < 0) {
            free(set);
            return -ENOMEM;
        }
    }
    if (set->n == set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 8;
        struct cache_obj **v = realloc(set->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        set->v = v;
        set->cap = cap;
    }
    set->v[set->n++] = o;
    return 0;
}

static void node_index_remove(struct cache_store *s, struct cache_obj *o)
{
    struct cache_objset *set;

    if (s->type->id != CODEC_KIND_POD || !o->node_name[0])
        return;
    set = kf_map_get(&s->by_node, o->node_name);
    for (size_t i = 0; set && i < set->n; i++) {
        if (set->v[i] == o) {
            set->v[i] = set->v[--set->n];
            break;
        }
    }
    if (set && set->n == 0)
        objset_free(kf_map_remove(&s->by_node, o->node_name));
}

/* Take o out of every index; the store's reference passes to the caller. */
static void unlink_obj(struct cache_store *s, struct cache_obj *o)
{
    RB_REMOVE(cache_tree, &s->tree, o);
    kf_map_remove(&s->by_key, o->key);
    node_index_remove(s, o);
    s->n_objs--;
    s->bytes -= o->len;
}

/* Put o (the store takes a reference) in place of whatever has its key; returns the old one
 * (the caller gets the store's reference) or NULL. */
static struct cache_obj *link_obj(struct cache_store *s, struct cache_obj *o)
{
    struct cache_obj *old = kf_map_get(&s->by_key, o->key);

    if (old)
        unlink_obj(s, old);
    if (kf_map_put(&s->by_key, o->key, o) < 0 || node_index_add(s, o) < 0) {
        /* out of memory: keep the store coherent without the object */
        kf_map_remove(&s->by_key, o->key);
        kf_err("cache", "out of memory indexing %s %s; it is missing from the cache",
               s->type->resource, o->key);
        return old;
    }
    cache_obj_get(o);
    RB_INSERT(cache_tree, &s->tree, o);
    s->n_objs++;
    s->bytes += o->len;
    return old;
}

struct cache_obj *store_lookup(struct cache_store *s, const char *key);
struct cache_obj *store_lookup(struct cache_store *s, const char *key)
{
    return kf_map_get(&s->by_key, key);
}

/* ---- the event window ------------------------------------------------------------------------ */

static void window_trim(struct cache_store *s, uint64_t now_ms)
{
    unsigned keep_ms = s->cache->window_ms;

    while (s->win_n > WINDOW_MIN_EVENTS) {
        struct cache_event *old = s->win[s->win_head];
        if (s->win_n < WINDOW_MAX_EVENTS && now_ms - old->at_ms < keep_ms)
            break;
        s->window_start = old->rv;
        s->win_head = (s->win_head + 1) % s->win_cap;
        s->win_n--;
        cache_ref_put(&old->ref);
    }
}

static int window_push(struct cache_store *s, struct cache_event *ev)
{
    if (s->win_n == s->win_cap) {
        size_t cap = s->win_cap ? s->win_cap * 2 : 1024;
        struct cache_event **w = malloc(cap * sizeof(*w));
        if (!w)
            return -ENOMEM;
        for (size_t i = 0; i < s->win_n; i++)
            w[i] = s->win[(s->win_head + i) % s->win_cap];
        free(s->win);
        s->win = w;
        s->win_cap = cap;
        s->win_head = 0;
    }
    cache_ref_get(&ev->ref);
    s->win[(s->win_head + s->win_n++) % s->win_cap] = ev;
    return 0;
}

int store_window_after(struct cache_store *s, uint64_t after, struct cache_event **out, size_t max,
                       size_t *n, bool *more)
{
    size_t lo, hi;

    *n = 0;
    *more = false;
    pthread_rwlock_rdlock(&s->lock);
    if (after < s->window_start) {
        pthread_rwlock_unlock(&s->lock);
        return -ERANGE;
    }
    /* first event with rv > after */
    lo = 0;
    hi = s->win_n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->win[(s->win_head + mid) % s->win_cap]->rv <= after)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i < s->win_n; i++) {
        if (*n == max) {
            *more = true;
            break;
        }
        struct cache_event *ev = s->win[(s->win_head + i) % s->win_cap];
        cache_ref_get(&ev->ref);
        out[(*n)++] = ev;
    }
    pthread_rwlock_unlock(&s->lock);
    return 0;
}

/* ---- publishing --------------------------------------------------------------------------------
 */

static void apply(struct cache_store *s, struct cache_event *ev)
{
    if (ev->type == CODEC_EV_BOOKMARK || !ev->obj)
        goto done;
    struct cache_obj *old = store_lookup(s, ev->obj->key);
    if (ev->type == CODEC_EV_DELETED) {
        if (old)
            unlink_obj(s, old);
    } else {
        old = link_obj(s, ev->obj);
    }
    if (!ev->prev)
        ev->prev = old; /* the store's reference passes to the event */
    else
        cache_obj_put(old);
    window_push(s, ev);
done:
    if (ev->rv > s->rv)
        s->rv = ev->rv;
}

void store_publish(struct cache_store *s, struct cache_event **evs, size_t n)
{
    pthread_rwlock_wrlock(&s->lock);
    for (size_t i = 0; i < n; i++)
        apply(s, evs[i]);
    window_trim(s, kf_now_ms());
    cache_broadcast(s->cache, evs, n);
    pthread_rwlock_unlock(&s->lock);
    atomic_fetch_add_explicit(&s->events, n, memory_order_relaxed);
}

/* ---- relisting ----------------------------------------------------------------------------------
 */

static int cmp_key(const void *a, const void *b)
{
    return strcmp((*(struct cache_obj *const *)a)->key, (*(struct cache_obj *const *)b)->key);
}

static int push_event(struct cache_event ***v, size_t *n, size_t *cap, struct cache_store *s,
                      enum codec_event_type t, uint64_t rv, struct cache_obj *obj)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 256;
        struct cache_event **nv = realloc(*v, c * sizeof(**v));
        if (!nv)
            return -ENOMEM;
        *v = nv;
        *cap = c;
    }
    struct cache_event *ev = cache_event_new(s->id, t, rv, obj, NULL);
    if (!ev)
        return -ENOMEM;
    (*v)[(*n)++] = ev;
    return 0;
}

/* Events that turn the current content into objs (sorted by key): a merge of two sorted runs. */
static int diff_events(struct cache_store *s, struct cache_obj **objs, size_t n, uint64_t rv,
                       struct cache_event ***out, size_t *n_out)
{
    struct cache_obj *cur = RB_MIN(cache_tree, &s->tree);
    size_t i = 0, cap = 0;
    int rc = 0;

    *out = NULL;
    *n_out = 0;
    while (rc == 0 && (cur || i < n)) {
        int c = !cur ? 1 : i == n ? -1 : strcmp(cur->key, objs[i]->key);
        if (c < 0) {
            rc = push_event(out, n_out, &cap, s, CODEC_EV_DELETED, rv, cur);
            cur = RB_NEXT(cache_tree, &s->tree, cur);
        } else if (c > 0) {
            rc = push_event(out, n_out, &cap, s, CODEC_EV_ADDED, objs[i]->rv, objs[i]);
            i++;
        } else {
            if (cur->rv != objs[i]->rv)
                rc = push_event(out, n_out, &cap, s, CODEC_EV_MODIFIED, objs[i]->rv, objs[i]);
            cur = RB_NEXT(cache_tree, &s->tree, cur);
            i++;
        }
    }
    return rc;
}

static int cmp_event_rv(const void *a, const void *b)
{
    uint64_t x = (*(struct cache_event *const *)a)->rv, y = (*(struct cache_event *const *)b)->rv;
    return x < y ? -1 : x > y;
}

int store_replace(struct cache_store *s, struct cache_obj **objs, size_t n, uint64_t rv)
{
    struct cache_event **evs = NULL;
    size_t n_evs = 0;
    bool first = atomic_load(&s->state) != STORE_READY;
    int rc;

    if (n > 1)
        qsort(objs, n, sizeof(*objs), cmp_key);
    if (first) {
        pthread_rwlock_wrlock(&s->lock);
        for (size_t i = 0; i < n; i++)
            cache_obj_put(link_obj(s, objs[i]));
        s->rv = rv;
        s->window_start = rv;
        s->states_from = rv;
        pthread_rwlock_unlock(&s->lock);
        atomic_store(&s->state, STORE_READY);
        return 0;
    }
    /* a relist after 410: watchers get the difference, in resourceVersion order, as events */
    pthread_rwlock_rdlock(&s->lock);
    rc = diff_events(s, objs, n, rv, &evs, &n_evs);
    pthread_rwlock_unlock(&s->lock);
    if (rc == 0) {
        if (n_evs > 1)
            qsort(evs, n_evs, sizeof(*evs), cmp_event_rv);
        struct cache_event *progress = cache_event_new(s->id, CODEC_EV_BOOKMARK, rv, NULL, NULL);
        store_publish(s, evs, n_evs);
        if (progress)
            store_publish(s, &progress, 1);
        pthread_rwlock_wrlock(&s->lock);
        s->states_from = rv;
        pthread_rwlock_unlock(&s->lock);
        if (progress)
            cache_ref_put(&progress->ref);
        kf_info("cache", "%s: relisted at rv %llu, %zu objects, %zu changes sent to watchers",
                s->type->resource, (unsigned long long)rv, n, n_evs);
    }
    for (size_t i = 0; i < n_evs; i++)
        cache_ref_put(&evs[i]->ref);
    free(evs);
    return rc;
}
