/*
 * Reads: GET of one object, and LIST snapshots written in slices. A snapshot
 * is a sorted array of references taken under the read lock, found through
 * the narrowest index the query allows (key, node, namespace range).
 */
#include "cache/cache_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLICE_BYTES (256 * 1024)
#define SINK_HIGH   (2 * 1024 * 1024)
#define COPY_BELOW  (16 * 1024) /* smaller items are copied into slices, larger referenced */

struct cache_obj *store_lookup(struct cache_store *s, const char *key);

struct cache_list {
    struct cache_store *store;
    struct cache_obj **objs;
    size_t n, pos;
    uint64_t rv;
    char *cont;        /* continue token, or NULL */
    int64_t remaining; /* remainingItemCount, -1: none */
    struct codec_buf head, tail;
    size_t body_len;
    bool head_done;
};

/* ---- snapshots
 * ------------------------------------------------------------------------------------ */

struct snap {
    struct cache_obj **v;
    size_t n, cap;
};

static int snap_add(struct snap *sn, struct cache_obj *o)
{
    if (sn->n == sn->cap) {
        size_t cap = sn->cap ? sn->cap * 2 : 64;
        struct cache_obj **v = realloc(sn->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        sn->v = v;
        sn->cap = cap;
    }
    cache_obj_get(o);
    sn->v[sn->n++] = o;
    return 0;
}

static int cmp_key(const void *a, const void *b)
{
    return strcmp((*(struct cache_obj *const *)a)->key, (*(struct cache_obj *const *)b)->key);
}

/* The name a query pins (GET, or fieldSelector metadata.name=X), or NULL. */
const char *cache_query_pinned_name(const struct cache_query *q);
const char *cache_query_pinned_name(const struct cache_query *q)
{
    const char *v = NULL;

    if (q->name && q->name[0])
        return q->name;
    if (q->fields && codec_field_selector_pins(q->fields, "metadata.name", &v) && v[0])
        return v;
    return NULL;
}

const char *cache_query_pinned_node(const struct cache_query *q);
const char *cache_query_pinned_node(const struct cache_query *q)
{
    const char *v = NULL;

    /* pods not yet scheduled (spec.nodeName=, the scheduler's watch) are in no node's index */
    if (q->store->type->id == CODEC_KIND_POD && q->fields &&
        codec_field_selector_pins(q->fields, "spec.nodeName", &v) && v[0])
        return v;
    return NULL;
}

static int snap_fill(const struct cache_query *q, struct snap *sn)
{
    struct cache_store *s = q->store;
    const char *name = cache_query_pinned_name(q), *node = cache_query_pinned_node(q);
    bool has_ns = q->namespace_ && q->namespace_[0];
    int rc = 0;

    if (name && (has_ns || !s->type->namespaced)) {
        char key[512];
        snprintf(key, sizeof(key), "%s%s%s", has_ns ? q->namespace_ : "", has_ns ? "/" : "", name);
        struct cache_obj *o = store_lookup(s, key);
        return o && cache_query_matches(q, o) ? snap_add(sn, o) : 0;
    }
    if (node) {
        struct cache_objset *set = kf_map_get(&s->by_node, node);
        for (size_t i = 0; set && i < set->n && rc == 0; i++)
            if (cache_query_matches(q, set->v[i]))
                rc = snap_add(sn, set->v[i]);
        if (sn->n > 1)
            qsort(sn->v, sn->n, sizeof(*sn->v), cmp_key);
        return rc;
    }
    struct cache_obj *o = RB_MIN(cache_tree, &s->tree);
    size_t plen = 0;
    char prefix[300];
    if (has_ns) {
        /* keys sort by namespace first: start at the first key of the namespace */
        struct cache_obj probe;
        plen = (size_t)snprintf(prefix, sizeof(prefix), "%s/", q->namespace_);
        probe.key = prefix;
        o = RB_NFIND(cache_tree, &s->tree, &probe);
    }
    for (; o && rc == 0; o = RB_NEXT(cache_tree, &s->tree, o)) {
        if (plen && strncmp(o->key, prefix, plen) != 0)
            break;
        if (cache_query_matches(q, o))
            rc = snap_add(sn, o);
    }
    return rc;
}

/* Matching objects (referenced, sorted by key) and the store's RV, under one read lock. */
int cache_snapshot(const struct cache_query *q, struct cache_obj ***objs, size_t *n, uint64_t *rv);
int cache_snapshot(const struct cache_query *q, struct cache_obj ***objs, size_t *n, uint64_t *rv)
{
    struct snap sn = {0};
    int rc;

    pthread_rwlock_rdlock(&q->store->lock);
    rc = snap_fill(q, &sn);
    *rv = q->store->rv;
    pthread_rwlock_unlock(&q->store->lock);
    if (rc < 0) {
        for (size_t i = 0; i < sn.n; i++)
            cache_obj_put(sn.v[i]);
        free(sn.v);
        return rc;
    }
    *objs = sn.v;
    *n = sn.n;
    return 0;
}

/* ---- GET
 * ---------------------------------------------------------------------------------------------- */

int cache_get(const struct cache_query *q, struct cache_obj **out)
{
    struct cache_store *s = q->store;
    bool has_ns = q->namespace_ && q->namespace_[0];
    char key[512];

    if (!q->name || (s->type->namespaced && !has_ns))
        return -EINVAL;
    snprintf(key, sizeof(key), "%s%s%s", has_ns ? q->namespace_ : "", has_ns ? "/" : "", q->name);
    pthread_rwlock_rdlock(&s->lock);
    struct cache_obj *o = store_lookup(s, key);
    if (o)
        cache_obj_get(o);
    pthread_rwlock_unlock(&s->lock);
    atomic_fetch_add_explicit(&s->served_gets, 1, memory_order_relaxed);
    *out = o;
    return o ? 0 : -ENOENT;
}

/* ---- LIST
 * ---------------------------------------------------------------------------------------------- */

static int list_frame(struct cache_list *l)
{
    const struct codec_type *t = l->store->type;
    char rvs[24];
    struct codec_list_meta lm = {
        .resource_version = rvs, .continue_token = l->cont, .remaining = l->remaining};
    size_t items = 0;

    snprintf(rvs, sizeof(rvs), "%llu", (unsigned long long)l->rv);
    codec_buf_init(&l->head);
    codec_buf_init(&l->tail);
    if (l->store->fmt == CACHE_JSON) {
        codec_json_list_begin(&l->head, t->api_version, t->list_kind, &lm);
        for (size_t i = 0; i < l->n; i++)
            items += 1 + l->objs[i]->item_len + (i ? 1 : 0);
        codec_json_list_end(&l->tail);
    } else {
        for (size_t i = 0; i < l->n; i++)
            items += codec_pb_list_item_size(l->objs[i]->item_len);
        codec_pb_list_begin(&l->head, t->api_version, t->list_kind, &lm, items);
        codec_pb_list_end(&l->tail);
    }
    l->body_len = l->head.len + items + l->tail.len;
    return l->head.err ? l->head.err : l->tail.err;
}

int cache_page_snapshot(const struct cache_query *q, const struct cache_list_opts *o,
                        struct cache_obj ***objs, size_t *n, uint64_t *rv, char **cont,
                        int64_t *remaining);

int cache_list_new(const struct cache_query *q, struct cache_list **out)
{
    return cache_list_new_opts(q, NULL, out);
}

int cache_list_new_opts(const struct cache_query *q, const struct cache_list_opts *opts,
                        struct cache_list **out)
{
    struct cache_list *l = calloc(1, sizeof(*l));
    int rc;

    if (!l)
        return -ENOMEM;
    l->store = q->store;
    l->remaining = -1;
    if (opts && (opts->exact_rv || opts->start || opts->limit))
        rc = cache_page_snapshot(q, opts, &l->objs, &l->n, &l->rv, &l->cont, &l->remaining);
    else
        rc = cache_snapshot(q, &l->objs, &l->n, &l->rv);
    if (rc == 0)
        rc = list_frame(l);
    if (rc < 0) {
        cache_list_free(l);
        return rc;
    }
    atomic_fetch_add_explicit(&q->store->served_lists, 1, memory_order_relaxed);
    *out = l;
    return 0;
}

size_t cache_list_body_len(const struct cache_list *l)
{
    return l->body_len;
}

size_t cache_list_count(const struct cache_list *l)
{
    return l->n;
}

/* Items are copied into refcounted slices handed over by reference (one copy in all), except
 * big ones, which are referenced where they lie. */
struct slice {
    struct cache_bytes *b;
    size_t cap;
};

static int slice_flush(struct slice *sl, const struct cache_sink_ops *ops, void *sink)
{
    struct cache_bytes *b = sl->b;

    sl->b = NULL;
    if (!b)
        return 0;
    if (!b->len) {
        cache_ref_put(&b->ref);
        return 0;
    }
    return ops->write(sink, b->data, b->len, &b->ref) < 0 ? -EPIPE : 0;
}

static int slice_add(struct slice *sl, const void *data, size_t len)
{
    if (!sl->b) {
        sl->cap = SLICE_BYTES + COPY_BELOW + 16;
        sl->b = cache_bytes_alloc(sl->cap);
        if (!sl->b)
            return -ENOMEM;
    }
    KF_BUG_ON(sl->b->len + len > sl->cap);
    memcpy(sl->b->data + sl->b->len, data, len);
    sl->b->len += len;
    return 0;
}

static int write_item(struct cache_list *l, struct cache_obj *o, struct slice *sl,
                      const struct cache_sink_ops *ops, void *sink)
{
    const char *item = o->data + o->item_off;
    char prefix[16];
    size_t n;
    int rc;

    if (l->store->fmt == CACHE_JSON) {
        n = l->pos ? 2 : 1;
        memcpy(prefix, l->pos ? ",{" : "{", n);
    } else {
        struct codec_buf pb = {.data = prefix, .cap = sizeof(prefix)};
        codec_pb_list_item_prefix(&pb, o->item_len);
        n = pb.len;
    }
    rc = slice_add(sl, prefix, n);
    if (rc < 0 || o->item_len < COPY_BELOW)
        return rc < 0 ? rc : slice_add(sl, item, o->item_len);
    rc = slice_flush(sl, ops, sink);
    if (rc < 0)
        return rc;
    cache_obj_get(o);
    return ops->write(sink, item, o->item_len, &o->ref);
}

int cache_list_write(struct cache_list *l, const struct cache_sink_ops *ops, void *sink)
{
    struct slice sl = {NULL, 0};
    int rc = 0;

    if (!l->head_done) {
        if (ops->write(sink, l->head.data, l->head.len, NULL) < 0)
            return -EPIPE;
        l->head_done = true;
    }
    while (l->pos < l->n && rc >= 0 && ops->pending(sink) < SINK_HIGH) {
        for (; l->pos < l->n && rc >= 0 && (!sl.b || sl.b->len < SLICE_BYTES); l->pos++)
            rc = write_item(l, l->objs[l->pos], &sl, ops, sink);
        if (rc >= 0)
            rc = slice_flush(&sl, ops, sink);
    }
    if (sl.b)
        cache_ref_put(&sl.b->ref);
    if (rc < 0)
        return rc;
    if (l->pos < l->n)
        return KF_AGAIN;
    return ops->write(sink, l->tail.data, l->tail.len, NULL) < 0 ? -EPIPE : 0;
}

void cache_list_free(struct cache_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        cache_obj_put(l->objs[i]);
    free(l->objs);
    free(l->cont);
    codec_buf_free(&l->head);
    codec_buf_free(&l->tail);
    free(l);
}
