/* cache private types: objects, events, stores, reflectors, per-worker state. */
#ifndef KF_CACHE_INTERNAL_H
#define KF_CACHE_INTERNAL_H

#include <bsd/sys/tree.h>
#include <pthread.h>
#include <stdatomic.h>

#include "cache/cache.h"
#include "lb/lb.h"

#define CACHE_MAX_STORES 64 /* resources x 2 formats */
#define CACHE_WAIT_RV_MS 3000

/* ---- objects ---------------------------------------------------------------------------- */

/*
 * One version of one object, immutable once published. data is what a GET
 * returns (JSON with kind/apiVersion, or the enveloped protobuf); the list
 * item is a slice of it (JSON: "{" + data[item_off..]; protobuf: the raw
 * object message). meta's slices point into data or into arena.
 */
struct cache_obj {
    struct cache_ref ref;
    enum cache_format fmt;
    uint64_t rv;
    char *key; /* "ns/name" or "name" */
    const char *ns, *name, *node_name;
    char *data;
    size_t len;
    size_t item_off, item_len;
    struct codec_meta meta;
    struct kf_arena *arena;
    /* the ADDED watch frame, made on first use and shared (initial events, entering a filter) */
    _Atomic(struct cache_bytes *) added;
    RB_ENTRY(cache_obj) node; /* in the store's tree while current */
};

/* Refcounted encoded bytes. */
struct cache_bytes {
    struct cache_ref ref;
    size_t len;
    char data[];
};
struct cache_bytes *cache_bytes_new(const void *data, size_t len);
/* An empty block with room for cap bytes (len 0), filled by the caller before it is shared. */
struct cache_bytes *cache_bytes_alloc(size_t cap);

/* Build an object from its GET form (JSON with kind/apiVersion, or enveloped protobuf). */
int cache_obj_new(enum cache_format fmt, const struct codec_type *type, const char *data,
                  size_t len, struct cache_obj **out);
/* From a list item (JSON list-item form, or a bare protobuf object message). */
int cache_obj_from_item(enum cache_format fmt, const struct codec_type *type, const char *item,
                        size_t len, struct cache_obj **out);
void cache_obj_get(struct cache_obj *o);
/* The shared ADDED frame of o; NULL on ENOMEM. Not referenced for the caller. */
struct cache_bytes *cache_obj_added(struct cache_obj *o);
/* Whether the query's namespace/selectors select o. */
bool cache_query_matches(const struct cache_query *q, const struct cache_obj *o);

/* ---- events ---------------------------------------------------------------------------------- */

enum cache_variant {
    CACHE_AS_IS = 0,    /* the event as it happened */
    CACHE_AS_ADDED = 1, /* the object entered a filter */
    CACHE_AS_LEFT = 2,  /* it left one: DELETED of the previous version at the event's RV */
};

struct cache_event {
    struct cache_ref ref;
    int store_id;
    enum codec_event_type type; /* BOOKMARK: progress only (obj NULL) */
    uint64_t rv;
    struct cache_obj *obj;  /* the new version (the deleted one for DELETED) */
    struct cache_obj *prev; /* the version before, or NULL */
    uint64_t at_ms;
    _Atomic(struct cache_bytes *) enc[3]; /* per variant, made on first use */
};

struct cache_event *cache_event_new(int store_id, enum codec_event_type type, uint64_t rv,
                                    struct cache_obj *obj, struct cache_obj *prev);
/* The frame of ev as seen through a variant; NULL on ENOMEM / encoding failure. */
struct cache_bytes *cache_event_bytes(struct cache_event *ev, enum cache_variant v);

/* ---- stores ---------------------------------------------------------------------------------- */

RB_HEAD(cache_tree, cache_obj);
int cache_obj_cmp_key(const struct cache_obj *a, const struct cache_obj *b);
RB_PROTOTYPE(cache_tree, cache_obj, node, cache_obj_cmp_key)

/* One node's pods (by spec.nodeName). */
struct cache_objset {
    struct cache_obj **v;
    size_t n, cap;
};

enum store_state {
    STORE_IDLE, /* not started (protobuf before the first client) */
    STORE_FILLING,
    STORE_READY,
};

struct cache_store {
    struct cache *cache;
    int id;
    const struct codec_type *type;
    enum cache_format fmt;
    _Atomic(enum store_state) state;
    atomic_bool wanted; /* a client asked: start (cache thread) */
    pthread_rwlock_t lock;
    /* under lock */
    struct cache_tree tree;
    struct kf_map by_key;  /* key -> obj */
    struct kf_map by_node; /* pods: spec.nodeName -> struct cache_objset */
    size_t n_objs;
    size_t bytes;
    uint64_t rv;           /* the newest RV reached (events and bookmarks) */
    uint64_t window_start; /* a watch from rv >= this can be replayed */
    /* a state at rv >= this can be rebuilt by undoing events: a relist after 410 publishes
     * only the difference over a gap, so states inside the gap are gone (as compacted) */
    uint64_t states_from;
    struct cache_event **win;
    size_t win_cap, win_head, win_n;
    /* cache thread only */
    struct reflector *refl;
    /* counters (relaxed atomics) */
    atomic_uint_fast64_t events, relists, watch_restarts, served_lists, served_gets;
    atomic_bool upstream_watching; /* the reflector has a watch open */
};

/* Apply a batch of events (cache thread, takes the write lock) and publish it. */
void store_publish(struct cache_store *s, struct cache_event **evs, size_t n);
/* Replace the whole content after a (re)list at rv: publishes the difference as events. */
int store_replace(struct cache_store *s, struct cache_obj **objs, size_t n, uint64_t rv);
/* Replay: references to the window's events with rv > after, at most max; *more if truncated.
 * -ERANGE when after is older than the window. Takes the read lock. */
int store_window_after(struct cache_store *s, uint64_t after, struct cache_event **out, size_t max,
                       size_t *n, bool *more);
void store_init(struct cache_store *s, struct cache *c, int id, const struct codec_type *type,
                enum cache_format fmt);
void store_destroy(struct cache_store *s);

/* ---- reflectors (cache thread) ------------------------------------------------------------- */

struct reflector;
struct reflector *reflector_new(struct cache *c, struct cache_store *s);
void reflector_start(struct reflector *r);
void reflector_free(struct reflector *r);

/* ---- the cache ---------------------------------------------------------------------------------
 */

struct cache {
    struct config_cache cfg;
    unsigned window_ms;
    struct event_base *base;
    pthread_t thread;
    bool running;
    struct event *kick; /* a store is wanted */
    struct lb_upstream *up;
    struct cache_upstream upcfg;
    struct lb_uhdr *headers;
    size_t n_headers;
    struct cache_store *stores[CACHE_MAX_STORES];
    size_t n_stores;
    pthread_mutex_t locals_lock;
    struct cache_local *locals[64];
    size_t n_locals;
    atomic_uint_fast64_t watches_active, watches_total, slow_closed;
};

/* Push a published batch to every worker's inbox (called under the store's write lock). */
void cache_broadcast(struct cache *c, struct cache_event **evs, size_t n);

#endif
