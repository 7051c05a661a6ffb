/*
 * LIST pages and LISTs at an exact resourceVersion, from the cache: the state
 * at RV N is the current state with every change after N undone, taken from
 * the event window (the previous version of each object's first change after
 * N). A page is then cut from that state, sorted by key, as the apiserver cuts
 * it: from the continue token's key, `limit` matching objects, a continue
 * token when the state has objects after the last one, and remainingItemCount
 * when no selector filters the list.
 */
#include "cache/cache_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cache_obj *store_lookup(struct cache_store *s, const char *key);

/* Marks a key that did not exist at the requested RV. */
static char absent_marker;
#define ABSENT ((void *)&absent_marker)

struct vec {
    struct cache_obj **v;
    size_t n, cap;
};

static int vec_add(struct vec *x, struct cache_obj *o)
{
    if (x->n == x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 256;
        struct cache_obj **v = realloc(x->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        x->v = v;
        x->cap = cap;
    }
    cache_obj_get(o);
    x->v[x->n++] = o;
    return 0;
}

static bool in_prefix(const struct cache_obj *o, const char *prefix, size_t plen)
{
    return !plen || strncmp(o->key, prefix, plen) == 0;
}

/* key -> its version at rv (or ABSENT), for every key changed after rv. Under the read lock. */
static int undo_map(struct cache_store *s, uint64_t rv, struct kf_map *changed)
{
    for (size_t i = 0; i < s->win_n; i++) {
        struct cache_event *ev = s->win[(s->win_head + i) % s->win_cap];
        if (ev->rv <= rv || !ev->obj || kf_map_get(changed, ev->obj->key))
            continue;
        if (kf_map_put(changed, ev->obj->key, ev->prev ? (void *)ev->prev : ABSENT) < 0)
            return -ENOMEM;
    }
    return 0;
}

static int cmp_key(const void *a, const void *b)
{
    return strcmp((*(struct cache_obj *const *)a)->key, (*(struct cache_obj *const *)b)->key);
}

/* Every object under the namespace prefix as of rv (0: now), sorted by key. */
static int state_at(struct cache_store *s, const char *prefix, uint64_t rv, struct vec *out,
                    uint64_t *state_rv)
{
    struct kf_map changed = {0};
    size_t plen = strlen(prefix);
    int rc = 0;

    pthread_rwlock_rdlock(&s->lock);
    if (rv && (rv < s->window_start || rv < s->states_from)) {
        pthread_rwlock_unlock(&s->lock);
        return -ERANGE;
    }
    *state_rv = rv ? rv : s->rv;
    if (rv && rv < s->rv)
        rc = undo_map(s, rv, &changed);
    struct cache_obj *o = RB_MIN(cache_tree, &s->tree);
    if (plen) {
        struct cache_obj probe;
        probe.key = (char *)prefix;
        o = RB_NFIND(cache_tree, &s->tree, &probe);
    }
    for (; o && rc == 0 && in_prefix(o, prefix, plen); o = RB_NEXT(cache_tree, &s->tree, o))
        if (!changed.n || !kf_map_get(&changed, o->key))
            rc = vec_add(out, o);
    for (size_t i = 0; i < changed.cap && rc == 0; i++) {
        struct cache_obj *then = changed.values[i];
        if (changed.keys[i] && changed.keys[i] != (char *)1 && then != ABSENT &&
            in_prefix(then, prefix, plen))
            rc = vec_add(out, then);
    }
    pthread_rwlock_unlock(&s->lock);
    kf_map_free(&changed, NULL);
    if (changed.n || rv)
        qsort(out->v, out->n, sizeof(*out->v), cmp_key);
    return rc;
}

static size_t first_index(const struct vec *x, const char *start, bool after)
{
    size_t lo = 0, hi = x->n;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(x->v[mid]->key, start) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (after && lo < x->n && strcmp(x->v[lo]->key, start) == 0)
        lo++;
    return lo;
}

int cache_page_snapshot(const struct cache_query *q, const struct cache_list_opts *o,
                        struct cache_obj ***objs, size_t *n, uint64_t *rv, char **cont,
                        int64_t *remaining);
int cache_page_snapshot(const struct cache_query *q, const struct cache_list_opts *o,
                        struct cache_obj ***objs, size_t *n, uint64_t *rv, char **cont,
                        int64_t *remaining)
{
    bool has_ns = q->namespace_ && q->namespace_[0];
    char prefix[300], start[600];
    struct vec all = {0}, page = {0};
    size_t i = 0;
    int rc;

    snprintf(prefix, sizeof(prefix), "%s%s", has_ns ? q->namespace_ : "", has_ns ? "/" : "");
    *cont = NULL;
    *remaining = -1;
    rc = state_at(q->store, prefix, o->exact_rv, &all, rv);
    if (rc == 0 && o->start) {
        snprintf(start, sizeof(start), "%s%s", prefix, o->start);
        i = first_index(&all, start, o->after);
    }
    bool filtered = q->labels || q->fields;
    for (; rc == 0 && i < all.n; i++) {
        if (o->limit && page.n == o->limit)
            break;
        if (cache_query_matches(q, all.v[i]))
            rc = vec_add(&page, all.v[i]);
    }
    if (rc == 0 && o->limit && page.n == o->limit && i < all.n) {
        struct codec_buf b;
        codec_buf_init(&b);
        rc = codec_continue_encode(&b, (int64_t)*rv, page.v[page.n - 1]->key + strlen(prefix));
        if (rc == 0 && !(*cont = strndup(b.data, b.len)))
            rc = -ENOMEM;
        codec_buf_free(&b);
        if (!filtered)
            *remaining = (int64_t)(all.n - i);
    }
    for (size_t k = 0; k < all.n; k++)
        cache_obj_put(all.v[k]);
    free(all.v);
    if (rc < 0) {
        for (size_t k = 0; k < page.n; k++)
            cache_obj_put(page.v[k]);
        free(page.v);
        free(*cont);
        *cont = NULL;
        return rc;
    }
    *objs = page.v;
    *n = page.n;
    return 0;
}
