/* L7 reads from the watch cache (private to proxy/). */
#ifndef KF_PROXY_L7_CACHE_H
#define KF_PROXY_L7_CACHE_H

#include "proxy/l7.h"

struct cache;
struct cache_local;

/**
 * Serve preq from the cache if the apiserver would answer it from its own
 * watch cache and the cache can reproduce the answer exactly: true when it
 * took the request (answered, or answering asynchronously), false when the
 * caller must forward it.
 */
bool px_l7_cache_try(struct px_worker *w, struct px_frontend *fe, struct px_request *preq,
                     const struct px_reqinfo *info);

/** Forward preq upstream, reviewing a token client's token first (l7_authn.c). */
void px_l7_forward(struct px_worker *w, struct px_frontend *fe, struct px_request *preq,
                   const struct px_reqinfo *info);

/** The daemon's cache, or NULL when off. */
struct cache *px_l7_cache(struct px_worker *w);
/** The worker's side of the cache, made on first use. */
struct cache_local *px_l7_cache_local(struct px_worker *w);
/** cache.notReady is reject (429) rather than forward. */
bool px_l7_cache_reject_not_ready(struct px_worker *w);
/** Count a read served from the cache (true) or one that could have been and was forwarded. */
void px_l7_cache_count(struct px_worker *w, bool served);
/** A random UUID for the Audit-Id header. */
void px_l7_audit_id(char *buf, size_t size);

/** Build and start the daemon's cache from the first mode-http frontend (0 when none / off). */
int px_l7_cache_start(struct px_daemon *d, struct px_generation *gen);
/** Append kfront_cache_* families. */
struct evbuffer;
void px_l7_cache_metrics_write(struct px_daemon *d, struct evbuffer *out);
/** Free the workers' cache state, then the cache (loops stopped, connections gone). */
void px_l7_cache_stop(struct px_daemon *d);

#endif
