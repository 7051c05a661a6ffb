/*
 * The per-worker side: the inbox the cache thread fills (one lock per batch)
 * and the dispatch of each event to the watches of the buckets it can match.
 */
#include "cache/local.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#define SWEEP_MS 1000

/* cache thread: queue references and wake the worker */
void cache_local_push(struct cache_local *l, struct cache_event **evs, size_t n);
void cache_local_push(struct cache_local *l, struct cache_event **evs, size_t n)
{
    bool wake;

    pthread_mutex_lock(&l->lock);
    if (l->n_inbox + n > l->cap_inbox) {
        size_t cap = l->cap_inbox ? l->cap_inbox : 256;
        while (cap < l->n_inbox + n)
            cap *= 2;
        struct cache_event **v = realloc(l->inbox, cap * sizeof(*v));
        if (!v) {
            pthread_mutex_unlock(&l->lock);
            kf_err("cache", "out of memory queueing events to a worker: its watches resume");
            return; /* the watches catch up from the window when they next pump */
        }
        l->inbox = v;
        l->cap_inbox = cap;
    }
    wake = l->n_inbox == 0;
    for (size_t i = 0; i < n; i++) {
        cache_ref_get(&evs[i]->ref);
        l->inbox[l->n_inbox++] = evs[i];
    }
    pthread_mutex_unlock(&l->lock);
    if (wake)
        event_active(l->wake, EV_READ, 0);
}

static void offer_list(struct kf_list *head, struct cache_event *ev)
{
    struct kf_list *pos;

    if (!head)
        return;
    kf_list_for_each(pos, head) watch_offer(kf_container_of(pos, struct cache_watch, link), ev);
}

static struct kf_list *bucket(struct kf_map *m, const char *key)
{
    struct local_bucket *b = m->n ? kf_map_get(m, key) : NULL;
    return b ? &b->head : NULL;
}

static void dispatch(struct cache_local *l, struct cache_event *ev)
{
    struct local_store *ls = &l->stores[ev->store_id];
    const struct cache_obj *o = ev->obj, *p = ev->prev;

    if (ev->rv > ls->rv)
        ls->rv = ev->rv;
    if (!o)
        return;
    offer_list(&ls->all, ev);
    offer_list(bucket(&ls->by_ns, o->ns), ev);
    offer_list(bucket(&ls->by_key, o->key), ev);
    if (o->node_name[0])
        offer_list(bucket(&ls->by_node, o->node_name), ev);
    if (p && p->node_name[0] && strcmp(p->node_name, o->node_name) != 0)
        offer_list(bucket(&ls->by_node, p->node_name), ev);
}

static void wake_waits(struct local_store *ls)
{
    struct kf_list *pos, *tmp;

    kf_list_for_each_safe(pos, tmp, &ls->waits)
    {
        struct cache_wait *w = kf_container_of(pos, struct cache_wait, link);
        if (w->rv <= ls->rv) {
            kf_list_remove(&w->link);
            event_free(w->timer);
            w->cb(w->arg, true);
            free(w);
        }
    }
}

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cache_local *l = arg;
    struct cache_event **evs;
    size_t n;
    bool touched[CACHE_MAX_STORES] = {false};

    (void)fd;
    (void)what;
    pthread_mutex_lock(&l->lock);
    evs = l->inbox;
    n = l->n_inbox;
    l->inbox = NULL;
    l->n_inbox = l->cap_inbox = 0;
    pthread_mutex_unlock(&l->lock);
    for (size_t i = 0; i < n; i++) {
        dispatch(l, evs[i]);
        touched[evs[i]->store_id] = true;
        cache_ref_put(&evs[i]->ref);
    }
    free(evs);
    for (size_t s = 0; s < CACHE_MAX_STORES; s++)
        if (touched[s])
            wake_waits(&l->stores[s]);
}

static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cache_local *l = arg;
    struct kf_list *pos, *tmp;

    (void)fd;
    (void)what;
    kf_list_for_each_safe(pos, tmp, &l->watches)
    {
        struct cache_watch *w = kf_container_of(pos, struct cache_watch, all_link);
        if (w->state == CW_DONE)
            watch_free(w);
    }
}

void local_reap_later(struct cache_local *l)
{
    event_active(l->reap, EV_TIMEOUT, 0);
}

static void sweep_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cache_local *l = arg;
    struct kf_list *pos;
    uint64_t now = kf_now_ms();

    (void)fd;
    (void)what;
    kf_list_for_each(pos, &l->watches)
        watch_sweep(kf_container_of(pos, struct cache_watch, all_link), now);
}

struct cache_local *cache_local_new(struct cache *c, struct event_base *base)
{
    struct cache_local *l = calloc(1, sizeof(*l));
    struct timeval tv = {SWEEP_MS / 1000, 0};

    if (!l)
        return NULL;
    l->cache = c;
    l->base = base;
    pthread_mutex_init(&l->lock, NULL);
    kf_list_init(&l->watches);
    for (size_t i = 0; i < CACHE_MAX_STORES; i++) {
        kf_list_init(&l->stores[i].all);
        kf_list_init(&l->stores[i].waits);
    }
    l->wake = event_new(base, -1, 0, wake_cb, l);
    l->reap = event_new(base, -1, 0, reap_cb, l);
    l->sweep = event_new(base, -1, EV_PERSIST, sweep_cb, l);
    if (!l->wake || !l->reap || !l->sweep) {
        cache_local_free(l);
        return NULL;
    }
    event_add(l->sweep, &tv);
    pthread_mutex_lock(&c->locals_lock);
    if (c->n_locals < KF_ARRAY_SIZE(c->locals))
        c->locals[c->n_locals++] = l;
    pthread_mutex_unlock(&c->locals_lock);
    return l;
}

static void free_bucket(void *p)
{
    free(p);
}

void cache_local_free(struct cache_local *l)
{
    struct kf_list *pos, *tmp;
    struct cache *c = l->cache;

    pthread_mutex_lock(&c->locals_lock);
    for (size_t i = 0; i < c->n_locals; i++)
        if (c->locals[i] == l)
            c->locals[i] = c->locals[--c->n_locals];
    pthread_mutex_unlock(&c->locals_lock);
    kf_list_for_each_safe(pos, tmp, &l->watches)
    {
        struct cache_watch *w = kf_container_of(pos, struct cache_watch, all_link);
        if (w->state != CW_DONE && w->sink)
            w->ops->end(w->sink, CACHE_END_OK);
        w->state = CW_DONE;
        watch_free(w);
    }
    for (size_t i = 0; i < CACHE_MAX_STORES; i++) {
        struct local_store *ls = &l->stores[i];
        kf_list_for_each_safe(pos, tmp, &ls->waits)
        {
            struct cache_wait *w = kf_container_of(pos, struct cache_wait, link);
            kf_list_remove(&w->link);
            event_free(w->timer);
            w->cb(w->arg, false);
            free(w);
        }
        kf_map_free(&ls->by_ns, free_bucket);
        kf_map_free(&ls->by_key, free_bucket);
        kf_map_free(&ls->by_node, free_bucket);
    }
    for (size_t i = 0; i < l->n_inbox; i++)
        cache_ref_put(&l->inbox[i]->ref);
    free(l->inbox);
    if (l->wake)
        event_free(l->wake);
    if (l->reap)
        event_free(l->reap);
    if (l->sweep)
        event_free(l->sweep);
    pthread_mutex_destroy(&l->lock);
    free(l);
}

/* ---- waiting for a resourceVersion -------------------------------------------------------------
 */

static void wait_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct cache_wait *w = arg;

    (void)fd;
    (void)what;
    kf_list_remove(&w->link);
    event_free(w->timer);
    w->cb(w->arg, false);
    free(w);
}

int cache_wait_rv(struct cache_local *l, struct cache_store *s, uint64_t rv, unsigned timeout_ms,
                  cache_wait_cb cb, void *arg, struct cache_wait **out)
{
    struct local_store *ls = &l->stores[s->id];
    struct timeval tv = {(time_t)(timeout_ms / 1000), (suseconds_t)(timeout_ms % 1000) * 1000};

    if (cache_store_rv(s) >= rv)
        return 0;
    struct cache_wait *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->l = l;
    w->rv = rv;
    w->cb = cb;
    w->arg = arg;
    w->timer = evtimer_new(l->base, wait_timeout, w);
    if (!w->timer) {
        free(w);
        return -ENOMEM;
    }
    evtimer_add(w->timer, &tv);
    kf_list_insert_tail(&ls->waits, &w->link);
    *out = w;
    return KF_AGAIN;
}

void cache_wait_cancel(struct cache_wait *w)
{
    kf_list_remove(&w->link);
    event_free(w->timer);
    free(w);
}
