/*
 * store: like etcd under the apiserver. One global revision counter, per
 * resource a key-sorted table of current object versions, and a bounded
 * history of events (each with the version before it, so an older state can
 * be rebuilt for Exact lists and continue tokens).
 */
#include "loadgen/kube-sim/kube_sim.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct ks_store ks_store;

const char *const ks_ev_type_name[] = {"ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"};

/* ---- bytes ------------------------------------------------------------------------ */

struct ks_bytes *ks_bytes_new(const void *data, size_t len)
{
    struct ks_bytes *b = malloc(sizeof(*b) + len + 1);

    if (!b || len > UINT32_MAX) {
        free(b);
        return NULL;
    }
    b->refs = 1;
    b->len = (uint32_t)len;
    if (data)
        memcpy(b->data, data, len);
    b->data[len] = '\0';
    return b;
}

void ks_bytes_ref(struct ks_bytes *b)
{
    b->refs++;
}

void ks_bytes_unref(struct ks_bytes *b)
{
    if (b && --b->refs == 0)
        free(b);
}

void ks_bytes_free_cb(const void *data, size_t len, void *arg)
{
    (void)data;
    (void)len;
    ks_bytes_unref(arg);
}

/* ---- objects ------------------------------------------------------------------------ */

static size_t str_size(const char *s)
{
    return s ? strlen(s) + 1 : 1;
}

/* Copy s (NULL -> "") to *cursor and advance it. */
static const char *put_str(char **cursor, const char *s)
{
    size_t n = str_size(s);
    char *dst = *cursor;

    if (s)
        memcpy(dst, s, n);
    else
        dst[0] = '\0';
    *cursor += n;
    return dst;
}

static size_t parts_size(const struct ks_obj_parts *p)
{
    size_t n = sizeof(struct ks_obj);
    size_t nf = p->res->n_fields;

    n += (2 * p->n_labels + nf + p->n_objrefs) * sizeof(char *);
    n += 2 * str_size(p->ns) + 2 * str_size(p->name) + str_size(p->uid);
    for (size_t i = 0; i < 2 * p->n_labels; i++)
        n += str_size(p->labels[i]);
    for (size_t i = 0; i < nf; i++)
        n += str_size(p->fields[i]);
    for (size_t i = 0; i < p->n_objrefs; i++)
        n += str_size(p->objrefs[i]);
    n += p->json_len + 1 + 8 + p->pb_len;
    return n;
}

static void put_key(struct ks_obj *o, char **cur, const struct ks_obj_parts *p)
{
    char *key = *cur;
    size_t ns_len = p->ns ? strlen(p->ns) : 0;

    if (ns_len) {
        memcpy(key, p->ns, ns_len);
        key[ns_len++] = '/';
    }
    strcpy(key + ns_len, p->name ? p->name : "");
    *cur += ns_len + strlen(key + ns_len) + 1;
    o->key = key;
}

struct ks_obj *ks_obj_new(const struct ks_obj_parts *p)
{
    size_t size = parts_size(p);
    struct ks_obj *o = malloc(size);
    size_t nf = p->res->n_fields;

    if (!o || p->json_len > UINT32_MAX || p->pb_len > UINT32_MAX) {
        free(o);
        return NULL;
    }
    memset(o, 0, sizeof(*o));
    const char **ptrs = (const char **)(o + 1);
    char *cur = (char *)(ptrs + 2 * p->n_labels + nf + p->n_objrefs);
    o->refs = 1;
    o->res = p->res;
    o->rv = p->rv;
    o->created = p->created;
    o->terminating = p->terminating;
    put_key(o, &cur, p);
    o->ns = put_str(&cur, p->ns);
    o->name = put_str(&cur, p->name);
    o->uid = put_str(&cur, p->uid);
    o->labels = ptrs;
    o->n_labels = (uint32_t)p->n_labels;
    for (size_t i = 0; i < 2 * p->n_labels; i++)
        *ptrs++ = put_str(&cur, p->labels[i]);
    o->fields = ptrs;
    for (size_t i = 0; i < nf; i++)
        *ptrs++ = put_str(&cur, p->fields[i]);
    o->objrefs = ptrs;
    o->n_objrefs = (uint32_t)p->n_objrefs;
    for (size_t i = 0; i < p->n_objrefs; i++)
        *ptrs++ = put_str(&cur, p->objrefs[i]);
    char *json = cur;
    memcpy(json, p->json, p->json_len);
    json[p->json_len] = '\n';
    o->json = json;
    o->json_len = (uint32_t)p->json_len;
    o->json_body_off = (uint32_t)p->json_body_off;
    cur += p->json_len + 1;
    if (p->pb) {
        uint8_t *pb = (uint8_t *)cur;
        memcpy(pb, p->pb, p->pb_len);
        o->pb = pb;
        o->pb_len = (uint32_t)p->pb_len;
        o->pb_item_off = (uint32_t)p->pb_item_off;
        o->pb_item_len = (uint32_t)p->pb_item_len;
    }
    return o;
}

void ks_obj_unref(struct ks_obj *o)
{
    if (o && --o->refs == 0)
        free(o);
}

void ks_obj_free_cb(const void *data, size_t len, void *arg)
{
    (void)data;
    (void)len;
    ks_obj_unref(arg);
}

size_t ks_obj_size(const struct ks_obj *o)
{
    return (size_t)((const char *)o->json - (const char *)o) + o->json_len + 1 + o->pb_len;
}

const char *ks_obj_label(const struct ks_obj *o, const char *key)
{
    size_t lo = 0, hi = o->n_labels;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(o->labels[2 * mid], key);
        if (c == 0)
            return o->labels[2 * mid + 1];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const char *ks_obj_field(const struct ks_obj *o, const char *path)
{
    if (strcmp(path, "metadata.name") == 0)
        return o->name;
    if (strcmp(path, "metadata.namespace") == 0)
        return o->ns;
    for (size_t i = 0; i < o->res->n_fields; i++)
        if (strcmp(o->res->fields[i], path) == 0)
            return o->fields[i];
    return NULL;
}

/* ---- key-sorted table ----------------------------------------------------------------- */

size_t ks_table_lower_bound(const struct ks_table *t, const char *key)
{
    size_t lo = 0, hi = t->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(t->items[mid]->key, key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

struct ks_obj *ks_store_get(struct ks_res *res, const char *key)
{
    struct ks_table *t = &res->table;
    size_t i = ks_table_lower_bound(t, key);

    return i < t->n && strcmp(t->items[i]->key, key) == 0 ? t->items[i] : NULL;
}

static int table_insert_at(struct ks_table *t, size_t i, struct ks_obj *o)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        struct ks_obj **items = realloc(t->items, cap * sizeof(*items));
        if (!items)
            return -ENOMEM;
        t->items = items;
        t->cap = cap;
    }
    memmove(t->items + i + 1, t->items + i, (t->n - i) * sizeof(*t->items));
    t->items[i] = o;
    t->n++;
    return 0;
}

static void table_remove_at(struct ks_table *t, size_t i)
{
    memmove(t->items + i, t->items + i + 1, (t->n - i - 1) * sizeof(*t->items));
    t->n--;
}

/* ---- secondary index ------------------------------------------------------------------------- */

static const char *index_value(const struct ks_obj *o)
{
    const char *v = o && o->res->index_field ? ks_obj_field(o, o->res->index_field) : NULL;
    return v && v[0] ? v : NULL;
}

static void objset_free(void *p)
{
    struct ks_objset *set = p;
    free(set->v);
    free(set);
}

static void index_remove(struct ks_res *res, const struct ks_obj *o)
{
    const char *v = index_value(o);
    struct ks_objset *set = v ? kf_map_get(&res->by_field, v) : NULL;

    for (size_t i = 0; set && i < set->n; i++) {
        if (set->v[i] == o) {
            set->v[i] = set->v[--set->n];
            break;
        }
    }
    if (set && set->n == 0)
        objset_free(kf_map_remove(&res->by_field, v));
}

static int index_add(struct ks_res *res, struct ks_obj *o)
{
    const char *v = index_value(o);
    struct ks_objset *set;

    if (!v)
        return 0;
    set = kf_map_get(&res->by_field, v);
    if (!set) {
        set = calloc(1, sizeof(*set));
        if (!set || kf_map_put(&res->by_field, v, set) < 0) {
            free(set);
            return -ENOMEM;
        }
    }
    if (set->n == set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 8;
        struct ks_obj **grown = realloc(set->v, cap * sizeof(*grown));
        if (!grown)
            return -ENOMEM;
        set->v = grown;
        set->cap = cap;
    }
    set->v[set->n++] = o;
    return 0;
}

/* Move the index entry from prev (may be NULL) to obj (may be NULL). */
static void index_update(struct ks_res *res, struct ks_obj *prev, struct ks_obj *obj)
{
    if (!res->index_field)
        return;
    if (prev)
        index_remove(res, prev);
    if (obj && index_add(res, obj) < 0)
        kf_err("kube-sim", "index %s: out of memory", res->name);
}

const struct ks_objset *ks_store_indexed(struct ks_res *res, const char *value)
{
    return res->index_field ? kf_map_get(&res->by_field, value) : NULL;
}

/* ---- history ------------------------------------------------------------------------------ */

static int evq_push(struct ks_evq *q, struct ks_event *ev)
{
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 64;
        struct ks_event **v = malloc(cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        for (size_t i = 0; i < q->n; i++)
            v[i] = ks_evq_at(q, i);
        free(q->v);
        q->v = v;
        q->cap = cap;
        q->head = 0;
    }
    q->v[(q->head + q->n) % q->cap] = ev;
    q->n++;
    return 0;
}

static struct ks_event *evq_pop(struct ks_evq *q)
{
    struct ks_event *ev = q->v[q->head];

    q->head = (q->head + 1) % q->cap;
    q->n--;
    return ev;
}

size_t ks_evq_after(const struct ks_evq *q, uint64_t after)
{
    size_t lo = 0, hi = q->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ks_evq_at(q, mid)->rv <= after)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void event_free(struct ks_event *ev)
{
    for (size_t i = 0; i < KS_ENC_N; i++)
        ks_bytes_unref(ev->enc[i]);
    ks_obj_unref(ev->obj);
    ks_obj_unref(ev->prev);
    ks_obj_unref(ev->prev_at_rv);
    free(ev);
}

/* Forget the oldest event; its rv becomes the compaction point. */
static void evict_oldest(void)
{
    struct ks_event *ev = evq_pop(&ks_store.all);
    struct ks_event *same = evq_pop(ev->res->events);

    KF_BUG_ON(same != ev);
    ks_store.compacted_rv = ev->rv;
    event_free(ev);
}

static int record(struct ks_res *res, enum ks_ev_type type, struct ks_obj *obj, struct ks_obj *prev)
{
    struct ks_event *ev = calloc(1, sizeof(*ev));

    if (!ev)
        return -ENOMEM;
    ev->rv = obj->rv;
    ev->type = type;
    ev->res = res;
    ev->obj = ks_obj_ref(obj);
    ev->prev = prev ? ks_obj_ref(prev) : NULL;
    if (evq_push(&ks_store.all, ev) < 0 || evq_push(res->events, ev) < 0) {
        /* keep both queues consistent: a failed second push undoes the first */
        if (ks_store.all.n && ks_evq_at(&ks_store.all, ks_store.all.n - 1) == ev)
            ks_store.all.n--;
        event_free(ev);
        return -ENOMEM;
    }
    ks_store.events_total++;
    while (ks_store.all.n > ks_store.history_max)
        evict_oldest();
    if (ks_store.on_event)
        ks_store.on_event(ev, ks_store.on_event_arg);
    return 0;
}

int ks_store_put(struct ks_obj *obj, bool rec)
{
    struct ks_res *res = obj->res;
    struct ks_table *t = &res->table;
    size_t i = ks_table_lower_bound(t, obj->key);
    struct ks_obj *prev = NULL;
    int rc;

    if (i < t->n && strcmp(t->items[i]->key, obj->key) == 0) {
        prev = t->items[i];
        t->items[i] = obj;
        ks_store.bytes -= ks_obj_size(prev);
    } else {
        rc = table_insert_at(t, i, obj);
        if (rc < 0) {
            ks_obj_unref(obj);
            return rc;
        }
        ks_store.n_objects++;
    }
    index_update(res, prev, obj);
    ks_store.bytes += ks_obj_size(obj);
    if (obj->rv > ks_store.rv)
        ks_store.rv = obj->rv;
    if (!rec)
        ks_store.compacted_rv = ks_store.rv;
    rc = rec ? record(res, prev ? KS_MODIFIED : KS_ADDED, obj, prev) : 0;
    ks_obj_unref(prev);
    return rc;
}

int ks_store_delete(struct ks_obj *final)
{
    struct ks_res *res = final->res;
    struct ks_table *t = &res->table;
    size_t i = ks_table_lower_bound(t, final->key);
    int rc;

    if (i >= t->n || strcmp(t->items[i]->key, final->key) != 0) {
        ks_obj_unref(final);
        return -ENOENT;
    }
    struct ks_obj *prev = t->items[i];
    table_remove_at(t, i);
    index_update(res, prev, NULL);
    ks_store.n_objects--;
    ks_store.bytes -= ks_obj_size(prev);
    if (final->rv > ks_store.rv)
        ks_store.rv = final->rv;
    rc = record(res, KS_DELETED, final, prev);
    ks_obj_unref(prev);
    ks_obj_unref(final);
    return rc;
}

void ks_store_compact(void)
{
    while (ks_store.all.n)
        evict_oldest();
    ks_store.compacted_rv = ks_store.rv;
}

int ks_store_init(size_t history_max)
{
    memset(&ks_store, 0, sizeof(ks_store));
    ks_store.history_max = history_max ? history_max : 1;
    for (size_t i = 0; i < ks_n_resources; i++) {
        struct ks_res *res = ks_resources[i];
        res->index = i;
        memset(&res->table, 0, sizeof(res->table));
        kf_list_init(&res->watchers);
        memset(&res->by_field, 0, sizeof(res->by_field));
        memset(&res->watch_by_key, 0, sizeof(res->watch_by_key));
        memset(&res->watch_by_field, 0, sizeof(res->watch_by_field));
        res->n_watchers = 0;
        res->events = calloc(1, sizeof(*res->events));
        if (!res->events)
            return -ENOMEM;
    }
    return 0;
}

void ks_store_free(void)
{
    while (ks_store.all.n)
        event_free(evq_pop(&ks_store.all));
    free(ks_store.all.v);
    for (size_t i = 0; i < ks_n_resources; i++) {
        struct ks_res *res = ks_resources[i];
        for (size_t k = 0; k < res->table.n; k++)
            ks_obj_unref(res->table.items[k]);
        free(res->table.items);
        memset(&res->table, 0, sizeof(res->table));
        kf_map_free(&res->by_field, objset_free);
        kf_map_free(&res->watch_by_key, free);
        kf_map_free(&res->watch_by_field, free);
        if (res->events)
            free(res->events->v);
        free(res->events);
        res->events = NULL;
    }
    memset(&ks_store, 0, sizeof(ks_store));
}

/* ---- snapshots ----------------------------------------------------------------------------- */

static bool has_prefix(const char *key, const char *prefix, size_t plen)
{
    return !prefix || strncmp(key, prefix, plen) == 0;
}

/* Insert, replace or remove key in a sorted snapshot while undoing history. */
static int snap_set(struct ks_snapshot *s, size_t *cap, const char *key, struct ks_obj *o)
{
    struct ks_table t = {.items = s->items, .n = s->n, .cap = *cap};
    size_t i = ks_table_lower_bound(&t, key);
    bool found = i < s->n && strcmp(s->items[i]->key, key) == 0;

    if (found) {
        ks_obj_unref(s->items[i]);
        if (o)
            s->items[i] = ks_obj_ref(o);
        else
            table_remove_at(&t, i);
    } else if (o) {
        int rc = table_insert_at(&t, i, ks_obj_ref(o));
        if (rc < 0) {
            ks_obj_unref(o);
            return rc;
        }
    }
    s->items = t.items;
    s->n = t.n;
    *cap = t.cap;
    return 0;
}

/* Walk res's history backwards down to rv, undoing each event in range. */
static int undo_after(struct ks_snapshot *s, size_t *cap, struct ks_res *res, const char *prefix,
                      uint64_t rv)
{
    const struct ks_evq *q = res->events;
    size_t plen = prefix ? strlen(prefix) : 0;

    for (size_t i = q->n; i-- > 0;) {
        struct ks_event *ev = ks_evq_at(q, i);
        if (ev->rv <= rv)
            break;
        if (!has_prefix(ev->obj->key, prefix, plen))
            continue;
        int rc = snap_set(s, cap, ev->obj->key, ev->type == KS_ADDED ? NULL : ev->prev);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int ks_snapshot_take(struct ks_snapshot *s, struct ks_res *res, const char *prefix, uint64_t rv)
{
    const struct ks_table *t = &res->table;
    size_t lo = 0, hi = t->n, cap;

    memset(s, 0, sizeof(*s));
    if (rv && rv < ks_store.compacted_rv)
        return -ERANGE;
    if (rv > ks_store.rv)
        return -EAGAIN;
    if (prefix) {
        size_t plen = strlen(prefix);
        lo = ks_table_lower_bound(t, prefix);
        hi = lo;
        while (hi < t->n && strncmp(t->items[hi]->key, prefix, plen) == 0)
            hi++;
    }
    cap = hi - lo + 16;
    s->items = malloc(cap * sizeof(*s->items));
    if (!s->items)
        return -ENOMEM;
    for (size_t i = lo; i < hi; i++)
        s->items[s->n++] = ks_obj_ref(t->items[i]);
    s->rv = rv ? rv : ks_store.rv;
    if (rv && rv < ks_store.rv) {
        int rc = undo_after(s, &cap, res, prefix, rv);
        if (rc < 0) {
            ks_snapshot_release(s);
            return rc;
        }
    }
    return 0;
}

void ks_snapshot_release(struct ks_snapshot *s)
{
    for (size_t i = 0; i < s->n; i++)
        ks_obj_unref(s->items[i]);
    free(s->items);
    memset(s, 0, sizeof(*s));
}

static int cmp_key(const void *a, const void *b)
{
    const struct ks_obj *const *x = a, *const *y = b;
    return strcmp((*x)->key, (*y)->key);
}

int ks_snapshot_take_indexed(struct ks_snapshot *s, struct ks_res *res, const char *prefix,
                             const char *value)
{
    const struct ks_objset *set = ks_store_indexed(res, value);
    size_t plen = prefix ? strlen(prefix) : 0;

    memset(s, 0, sizeof(*s));
    s->rv = ks_store.rv;
    s->items = malloc(((set ? set->n : 0) + 1) * sizeof(*s->items));
    if (!s->items)
        return -ENOMEM;
    for (size_t i = 0; set && i < set->n; i++)
        if (has_prefix(set->v[i]->key, prefix, plen))
            s->items[s->n++] = ks_obj_ref(set->v[i]);
    qsort(s->items, s->n, sizeof(*s->items), cmp_key);
    return 0;
}
