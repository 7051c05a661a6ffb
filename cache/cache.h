/*
 * cache: the watch cache. Reflectors LIST and WATCH each cached resource
 * upstream (once per wire format clients use) on the cache's own thread; the
 * objects and encoded events they publish are immutable and refcounted, so
 * worker threads serve GET, LIST and WATCH from them without copying or
 * re-encoding, and without a lock on the per-event, per-watcher path.
 *
 * Threads:
 *   - the cache thread owns the reflectors and is the only writer of the
 *     stores (one store = one resource in one wire format);
 *   - each worker loop has a struct cache_local: an inbox the cache thread
 *     pushes every published event into (one lock per batch), and the
 *     watches of that worker's clients, indexed by what they select on;
 *   - readers (GET, LIST, a watch's start or catch-up) take the store's read
 *     lock just long enough to take references.
 *
 * Bytes reach clients through a sink the caller implements (struct
 * cache_sink_ops), so the cache never includes client-side code. Every
 * function taking a cache_local runs on that worker's loop thread.
 *
 * Return convention: 0 or negative errno; KF_AGAIN where documented.
 */
#ifndef KF_CACHE_H
#define KF_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/codec/codec.h"
#include "config/config.h"

struct event_base;
struct lb;
struct lb_pool;
struct lb_uhdr;
struct ssl_ctx_st;

struct cache;
struct cache_local;
struct cache_store;
struct cache_watch;
struct cache_list;
struct cache_obj;

enum cache_format {
    CACHE_JSON = 0,
    CACHE_PB = 1,
};

/* ---- refcounted immutable bytes ------------------------------------------------------- */

/** Anything shared by reference: objects, encoded events. */
struct cache_ref {
    unsigned refs; /* atomic */
    void (*release)(struct cache_ref *ref);
};
void cache_ref_get(struct cache_ref *ref);
void cache_ref_put(struct cache_ref *ref);
/** A px_free_cb-compatible cleanup whose arg is a struct cache_ref. */
void cache_ref_free_cb(const void *data, size_t len, void *arg);

/* ---- the cache (owned by the daemon) -------------------------------------------------- */

/** How the reflectors reach the apiservers. */
struct cache_upstream {
    struct lb *lb; /* retained by the cache */
    struct lb_pool *pool;
    struct ssl_ctx_st *tls; /* referenced by the cache; NULL: plain */
    const char *server_name;
    unsigned connect_timeout_ms;
    /* extra request headers of every reflector request (the identity kfront lists as) */
    const struct lb_uhdr *headers;
    size_t n_headers;
};

/**
 * A cache for the resources of cc (or the defaults). Nothing runs until
 * cache_start. NULL with a reason logged on bad configuration or ENOMEM.
 */
struct cache *cache_new(const struct config_cache *cc, const struct cache_upstream *up);
/** Start the cache thread: JSON reflectors begin listing at once. */
int cache_start(struct cache *c);
/** Stop the thread and free everything. Every cache_local must be freed first. */
void cache_free(struct cache *c);

/** Counters for /metrics (Prometheus text appended to buf). */
struct codec_buf;
void cache_metrics_write(struct cache *c, struct codec_buf *buf);

/* ---- per worker ---------------------------------------------------------------------------- */

/** The worker's view: its inbox and watches. On base's thread only. */
struct cache_local *cache_local_new(struct cache *c, struct event_base *base);
/** End every watch of the worker cleanly (drain: clients resume elsewhere); it stays usable. */
void cache_local_end_watches(struct cache_local *l);
/** Ends the worker's watches (sinks are told to end) and frees the local state. */
void cache_local_free(struct cache_local *l);

/**
 * The store serving group/resource (plural, "" for core) in fmt.
 * 0 with *out when it is ready to serve; -ENOENT when the resource is not
 * cached; KF_AGAIN when it is cached but not yet ready (for protobuf, the
 * first such call starts its reflector).
 */
int cache_store_find(struct cache *c, const char *group, const char *resource,
                     enum cache_format fmt, struct cache_store **out);
/** The type a store holds. */
const struct codec_type *cache_store_type(const struct cache_store *s);
/** The wire format a store holds. */
enum cache_format cache_store_format(const struct cache_store *s);

/* ---- what a read selects ----------------------------------------------------------------- */

struct cache_query {
    struct cache_store *store;
    const char *namespace_;                    /* NULL or "": every namespace */
    const char *name;                          /* GET */
    const struct codec_label_selector *labels; /* borrowed; NULL: everything */
    const struct codec_field_selector *fields; /* borrowed; NULL: everything */
};

/**
 * Wait until the store has reached rv (resourceVersion "not older than"):
 * 0 at once when it has; otherwise KF_AGAIN and cb(arg, true) on the local
 * loop once it has, or cb(arg, false) after timeout_ms. A wait that has not
 * fired yet is dropped with cache_wait_cancel (the wait is freed after cb).
 */
typedef void (*cache_wait_cb)(void *arg, bool reached);
struct cache_wait;
int cache_wait_rv(struct cache_local *l, struct cache_store *s, uint64_t rv, unsigned timeout_ms,
                  cache_wait_cb cb, void *arg, struct cache_wait **out);
void cache_wait_cancel(struct cache_wait *w);
/** The newest resourceVersion the store has reached. */
uint64_t cache_store_rv(struct cache_store *s);

/* ---- GET ---------------------------------------------------------------------------------- */

/**
 * The current object q->namespace_/q->name: 0 with a reference in *out
 * (release with cache_obj_put), -ENOENT when absent.
 */
int cache_get(const struct cache_query *q, struct cache_obj **out);
/** The object's bytes as a GET returns them (JSON, or enveloped protobuf). */
void cache_obj_bytes(const struct cache_obj *o, const char **data, size_t *len);
/** The object's shared reference (for zero-copy writes). */
struct cache_ref *cache_obj_ref(struct cache_obj *o);
void cache_obj_put(struct cache_obj *o);

/* ---- sinks: where the cache writes a response body --------------------------------------- */

enum cache_end {
    CACHE_END_OK,    /* the body is complete */
    CACHE_END_ABORT, /* cut: the client must see an error, not a short body */
};

struct cache_sink_ops {
    /** Queue bytes: owner != NULL means by reference (the callee takes one ref and
     * releases it when sent or dropped); NULL means copy now. <0 when the client is gone. */
    int (*write)(void *sink, const void *data, size_t len, struct cache_ref *owner);
    /** Bytes queued and not yet taken by the client. */
    size_t (*pending)(void *sink);
    /** The cache ends the body (watch deadline, slow watcher closed). Called at most once;
     * the cache forgets the sink before calling it. */
    void (*end)(void *sink, enum cache_end how);
};

/* ---- LIST ---------------------------------------------------------------------------------- */

/**
 * Take a snapshot of what q selects now, sorted by key. Its body length and
 * resourceVersion are known before a byte is written (Content-Length).
 */
int cache_list_new(const struct cache_query *q, struct cache_list **out);

/** A page, or a list at an exact resourceVersion (the apiserver's limit/continue/Exact). */
struct cache_list_opts {
    uint64_t exact_rv; /* the state at this RV (from the window); 0: the current state */
    const char *start; /* continue: the key to start at, relative to the list's namespace */
    bool after;        /* start after that key (what continue tokens say) */
    size_t limit;      /* 0: everything */
};
/**
 * Like cache_list_new, for opts. -ERANGE when exact_rv is older than the event
 * window (the caller answers 410). The continue token and remainingItemCount
 * go in the list's metadata.
 */
int cache_list_new_opts(const struct cache_query *q, const struct cache_list_opts *opts,
                        struct cache_list **out);
size_t cache_list_body_len(const struct cache_list *l);
size_t cache_list_count(const struct cache_list *l);
/**
 * Write the body in slices of a few hundred KiB while the sink's pending
 * bytes stay low: returns 0 when everything is queued (then the caller ends
 * the response and frees the list), KF_AGAIN when the caller must call again
 * after the sink drains.
 */
int cache_list_write(struct cache_list *l, const struct cache_sink_ops *ops, void *sink);
void cache_list_free(struct cache_list *l);

/* ---- WATCH --------------------------------------------------------------------------------- */

struct cache_watch_params {
    struct cache_query q;
    /* where the stream starts */
    bool initial_events;     /* ADDED for the current state first (RV 0/unset, sendInitialEvents) */
    bool initial_events_end; /* then the k8s.io/initial-events-end bookmark (watch-list) */
    uint64_t rv;             /* without initial events: replay from after rv (0: from now) */
    bool bookmarks;          /* allowWatchBookmarks */
    uint64_t timeout_ms;     /* the watch ends cleanly then */
};

/**
 * Start a watch whose events go to sink (the response head is the caller's
 * and must already be written). 0 with *out; -ERANGE when p->rv is older
 * than the event window: nothing was written and the caller answers with
 * cache_watch_write_expired(). Call cache_watch_drained() on every drain of
 * the sink, and cache_watch_cancel() when the client goes away first.
 */
int cache_watch_start(struct cache_local *l, const struct cache_watch_params *p,
                      const struct cache_sink_ops *ops, void *sink, struct cache_watch **out);
void cache_watch_drained(struct cache_watch *w);
/** The client is gone: forget the watch (the sink's end is not called). */
void cache_watch_cancel(struct cache_watch *w);
/** The ERROR event (410 Expired) for a watch from rv that is too old, in s's format. */
int cache_watch_expired_event(struct cache_store *s, uint64_t rv, struct codec_buf *out);

#endif
