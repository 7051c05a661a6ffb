/* The daemon's watch cache: made from the first mode-http frontend's backend, one per daemon. */
#include "proxy/l7_cache.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cache/cache.h"

#include <event2/buffer.h>
#include <inttypes.h>

struct cache *px_l7_cache(struct px_worker *w)
{
    return w && w->daemon ? w->daemon->cache : NULL;
}

struct cache_local *px_l7_cache_local(struct px_worker *w)
{
    if (!w->cache_local && w->daemon->cache)
        w->cache_local = cache_local_new(w->daemon->cache, w->base);
    return w->cache_local;
}

bool px_l7_cache_reject_not_ready(struct px_worker *w)
{
    return w->gen->cfg->cache.not_ready == CONFIG_CACHE_REJECT;
}

void px_l7_cache_count(struct px_worker *w, bool served)
{
    atomic_fetch_add_explicit(served ? &w->cache_served : &w->cache_forwarded, 1,
                              memory_order_relaxed);
}

void px_l7_audit_id(char *buf, size_t size)
{
    uint8_t b[16];
    uint64_t x = kf_now_us() ^ ((uint64_t)(uintptr_t)buf << 17);

    /* not a secret, only unique: a per-call mix of the clock and a counter */
    static _Atomic uint64_t seq;
    x ^= atomic_fetch_add(&seq, 1) * 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < 16; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b[i] = (uint8_t)x;
    }
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    snprintf(buf, size, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

int px_l7_cache_start(struct px_daemon *d, struct px_generation *gen)
{
    const struct px_binding *b = NULL;
    struct lb_uhdr h[3];

    if (!gen->cfg->cache.enabled)
        return 0;
    for (size_t i = 0; i < gen->n_bindings && !b; i++)
        if (gen->bindings[i].mode == CONFIG_MODE_HTTP && gen->bindings[i].pool)
            b = &gen->bindings[i];
    if (!b)
        return 0;
    /* passthrough presents no certificate of kfront's: without a token its own LISTs, WATCHes
     * and reviews are anonymous, refused by any normal apiserver, retried for ever */
    if (gen->cfg->identity.mode == CONFIG_IDENTITY_PASSTHROUGH &&
        !b->backend->upstream_tls.authorization) {
        kf_warn("proxy",
                "watch cache off: identity mode passthrough gives kfront no credentials of its "
                "own, and backend %s has no token for it (a kubeconfig user's); every read is "
                "forwarded",
                b->backend->name);
        return 0;
    }
    struct cache_upstream up = {
        .lb = gen->lb,
        .pool = b->pool,
        .tls = b->upstream_tls,
        .server_name = b->backend->upstream_tls.server_name,
        .connect_timeout_ms = gen->cfg->timeouts.connect_ms,
        .headers = h,
        .n_headers = px_l7_own_identity_headers(gen->cfg, b->backend, h, KF_ARRAY_SIZE(h)),
    };
    d->cache = cache_new(&gen->cfg->cache, &up);
    if (!d->cache || cache_start(d->cache) < 0)
        return -1;
    kf_info("proxy", "watch cache on, reflectors listing from backend %s", b->backend->name);
    return 0;
}

void px_l7_cache_stop(struct px_daemon *d)
{
    for (unsigned i = 0; i < d->n_workers; i++) {
        if (d->workers[i].cache_local)
            cache_local_free(d->workers[i].cache_local);
        d->workers[i].cache_local = NULL;
    }
    cache_free(d->cache);
    d->cache = NULL;
}

void px_l7_cache_metrics_write(struct px_daemon *d, struct evbuffer *out)
{
    uint64_t served = 0, forwarded = 0;
    struct codec_buf b;

    if (!d->cache)
        return;
    for (unsigned i = 0; i < d->n_workers; i++) {
        served += atomic_load(&d->workers[i].cache_served);
        forwarded += atomic_load(&d->workers[i].cache_forwarded);
    }
    evbuffer_add_printf(out,
                        "# HELP kfront_cache_requests_total Reads of cached resources: served "
                        "from the cache, or forwarded (consistent reads, unsupported options).\n"
                        "# TYPE kfront_cache_requests_total counter\n"
                        "kfront_cache_requests_total{result=\"served\"} %" PRIu64 "\n"
                        "kfront_cache_requests_total{result=\"forwarded\"} %" PRIu64 "\n",
                        served, forwarded);
    codec_buf_init(&b);
    cache_metrics_write(d->cache, &b);
    if (!b.err)
        evbuffer_add(out, b.data, b.len);
    codec_buf_free(&b);
}
