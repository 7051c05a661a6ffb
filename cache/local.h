/* cache private: the per-worker side (inbox, watch buckets, waits) and the watch struct. */
#ifndef KF_CACHE_LOCAL_H
#define KF_CACHE_LOCAL_H

#include "cache/cache_internal.h"

struct event;

struct local_bucket {
    struct kf_list head;
};

/* What one worker knows of one store. */
struct local_store {
    uint64_t rv;           /* newest RV that reached this worker's inbox */
    struct kf_list all;    /* watches selecting on nothing indexable */
    struct kf_map by_ns;   /* namespace -> struct local_bucket */
    struct kf_map by_key;  /* "ns/name" -> bucket (metadata.name pinned) */
    struct kf_map by_node; /* spec.nodeName -> bucket */
    struct kf_list waits;
};

struct cache_local {
    struct cache *cache;
    struct event_base *base;
    pthread_mutex_t lock;
    struct cache_event **inbox; /* under lock */
    size_t n_inbox, cap_inbox;
    struct event *wake, *reap, *sweep;
    struct local_store stores[CACHE_MAX_STORES];
    struct kf_list watches;
};

enum cw_state { CW_INITIAL, CW_REPLAY, CW_LIVE, CW_DONE };

struct cache_watch {
    enum cw_state state;
    struct cache_local *l;
    struct cache_query q;
    const struct cache_sink_ops *ops;
    void *sink;
    uint64_t cursor; /* every event up to here has been dealt with */
    struct cache_obj **init;
    size_t n_init, init_pos;
    bool initial_end;
    struct event *deadline, *bookmark;
    uint64_t deadline_ms, last_progress_ms;
    struct kf_list link; /* its bucket */
    struct kf_map *map;  /* the map holding the bucket, NULL for `all` */
    const char *map_key;
    struct kf_list all_link; /* l->watches */
    struct kf_arena *arena;
    bool counted; /* in cache->watches_active */
};

struct cache_wait {
    struct kf_list link;
    struct cache_local *l;
    uint64_t rv;
    cache_wait_cb cb;
    void *arg;
    struct event *timer;
};

void local_reap_later(struct cache_local *l);
void watch_offer(struct cache_watch *w, struct cache_event *ev);
void watch_sweep(struct cache_watch *w, uint64_t now_ms);
void watch_free(struct cache_watch *w);
const char *cache_query_pinned_name(const struct cache_query *q);
const char *cache_query_pinned_node(const struct cache_query *q);

#endif
