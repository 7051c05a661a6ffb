/*
 * What an L7 request needs from the worker it runs on: its generation's
 * binding, the worker's upstream pools (one per backend, made on first use
 * and kept across reloads so that no reload cuts a watch), and per-worker
 * request counters that /metrics sums.
 */
#include "proxy/l7.h"
#include "proxy/authz.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <openssl/ssl.h>

static _Thread_local struct px_worker *self;

struct px_worker *px_worker_self(void)
{
    return self;
}

void px_worker_set_self(struct px_worker *w)
{
    self = w;
}

const struct px_binding *px_worker_binding(struct px_worker *w, const struct px_frontend *fe)
{
    for (size_t i = 0; w->gen && i < w->gen->n_bindings; i++)
        if (w->gen->bindings[i].frontend == fe)
            return &w->gen->bindings[i];
    return NULL;
}

struct lb_upstream *px_worker_upstream(struct px_worker *w, const struct px_binding *b)
{
    struct px_upstream_slot *slots;
    struct lb_upstream_config ucfg = {0};

    if (!b->pool || !b->backend)
        return NULL;
    for (size_t i = 0; i < w->n_upstreams; i++)
        if (strcmp(w->upstreams[i].backend, b->backend->name) == 0)
            return w->upstreams[i].up;
    slots = realloc(w->upstreams, (w->n_upstreams + 1) * sizeof(*slots));
    if (!slots)
        return NULL;
    w->upstreams = slots;
    ucfg.tls = b->upstream_tls;
    ucfg.server_name = b->backend->upstream_tls.server_name;
    ucfg.connect_timeout_ms = w->gen->cfg->timeouts.connect_ms;
    struct lb_upstream *up = lb_upstream_new(w->base, &ucfg);
    char *name = strdup(b->backend->name);
    if (!up || !name) {
        if (up)
            lb_upstream_free(up);
        free(name);
        return NULL;
    }
    slots[w->n_upstreams++] = (struct px_upstream_slot){name, up};
    return up;
}

void px_worker_upstreams_free(struct px_worker *w)
{
    px_authz_worker_free(w); /* its reviews run on these upstreams */
    for (size_t i = 0; i < w->n_upstreams; i++) {
        lb_upstream_free(w->upstreams[i].up);
        free(w->upstreams[i].backend);
    }
    free(w->upstreams);
    w->upstreams = NULL;
    w->n_upstreams = 0;
}

/* ---- request counters ------------------------------------------------------------- */

static const uint64_t bucket_us[PX_L7_BUCKETS] = {5000,    25000,   100000,   250000,  500000,
                                                  1000000, 5000000, 30000000, 60000000};

static uint64_t hash_key(const char *verb, const char *resource, int code)
{
    uint64_t h = 1469598103934665603ull ^ (uint64_t)code;
    for (const char *p = verb; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    for (const char *p = resource; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return h;
}

/* The slot for the key, claimed if new; NULL when the table is full. Only the
 * owning worker writes keys; readers see a slot once `used` is set. */
static struct px_l7_stat *stat_slot(struct px_worker *w, const char *verb, const char *resource,
                                    int code)
{
    uint64_t h = hash_key(verb, resource, code);

    for (unsigned i = 0; i < PX_L7_STATS; i++) {
        struct px_l7_stat *s = &w->l7_stats[(h + i) % PX_L7_STATS];
        if (!atomic_load_explicit(&s->used, memory_order_acquire)) {
            snprintf(s->verb, sizeof(s->verb), "%s", verb);
            snprintf(s->resource, sizeof(s->resource), "%s", resource);
            s->code = code;
            atomic_store_explicit(&s->used, true, memory_order_release);
            return s;
        }
        if (s->code == code && strcmp(s->verb, verb) == 0 && strcmp(s->resource, resource) == 0)
            return s;
    }
    return NULL;
}

void px_l7_count(struct px_worker *w, const struct px_reqinfo *info, int code, uint64_t us)
{
    struct px_l7_stat *s;

    if (!w)
        return;
    s = stat_slot(w, info->verb, info->resource, code);
    if (!s) {
        atomic_fetch_add_explicit(&w->l7_stats_overflow, 1, memory_order_relaxed);
        return;
    }
    atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->sum_us, us, memory_order_relaxed);
    for (unsigned b = 0; b < PX_L7_BUCKETS; b++)
        if (us <= bucket_us[b])
            atomic_fetch_add_explicit(&s->buckets[b], 1, memory_order_relaxed);
}

/* Workers count separately; a scrape merges equal label sets so each series appears once. */
struct merged {
    const struct px_l7_stat *key;
    uint64_t count, sum_us, buckets[PX_L7_BUCKETS];
};

static size_t merge(struct px_daemon *d, struct merged *m, size_t cap)
{
    size_t n = 0;

    for (unsigned i = 0; i < d->n_workers; i++)
        for (unsigned j = 0; j < PX_L7_STATS; j++) {
            const struct px_l7_stat *s = &d->workers[i].l7_stats[j];
            size_t k = 0;
            if (!atomic_load_explicit(&s->used, memory_order_acquire))
                continue;
            while (k < n && !(m[k].key->code == s->code && !strcmp(m[k].key->verb, s->verb) &&
                              !strcmp(m[k].key->resource, s->resource)))
                k++;
            if (k == n) {
                if (n == cap)
                    continue;
                memset(&m[n], 0, sizeof(m[n]));
                m[n++].key = s;
            }
            m[k].count += atomic_load(&s->count);
            m[k].sum_us += atomic_load(&s->sum_us);
            for (unsigned b = 0; b < PX_L7_BUCKETS; b++)
                m[k].buckets[b] += atomic_load(&s->buckets[b]);
        }
    return n;
}

#define LABELS "verb=\"%s\",resource=\"%s\",code=\"%d\""

void px_l7_metrics_write(struct px_daemon *d, struct evbuffer *out)
{
    size_t cap = (size_t)d->n_workers * PX_L7_STATS, n;
    struct merged *m = calloc(cap ? cap : 1, sizeof(*m));
    uint64_t overflow = 0;

    if (!m)
        return;
    n = merge(d, m, cap);
    evbuffer_add_printf(out, "# HELP kfront_http_requests_total Requests answered in mode http.\n"
                             "# TYPE kfront_http_requests_total counter\n");
    for (size_t i = 0; i < n; i++)
        evbuffer_add_printf(out, "kfront_http_requests_total{" LABELS "} %" PRIu64 "\n",
                            m[i].key->verb, m[i].key->resource, m[i].key->code, m[i].count);
    evbuffer_add_printf(out, "# HELP kfront_http_request_duration_seconds Time to the end of "
                             "the response.\n"
                             "# TYPE kfront_http_request_duration_seconds histogram\n");
    for (size_t i = 0; i < n; i++) {
        const struct px_l7_stat *k = m[i].key;
        for (unsigned b = 0; b < PX_L7_BUCKETS; b++)
            evbuffer_add_printf(
                out,
                "kfront_http_request_duration_seconds_bucket{" LABELS ",le=\"%g\"} %" PRIu64 "\n",
                k->verb, k->resource, k->code, (double)bucket_us[b] / 1e6, m[i].buckets[b]);
        evbuffer_add_printf(
            out,
            "kfront_http_request_duration_seconds_bucket{" LABELS ",le=\"+Inf\"} %" PRIu64 "\n"
            "kfront_http_request_duration_seconds_sum{" LABELS "} %.6f\n"
            "kfront_http_request_duration_seconds_count{" LABELS "} %" PRIu64 "\n",
            k->verb, k->resource, k->code, m[i].count, k->verb, k->resource, k->code,
            (double)m[i].sum_us / 1e6, k->verb, k->resource, k->code, m[i].count);
    }
    for (unsigned i = 0; i < d->n_workers; i++)
        overflow += atomic_load(&d->workers[i].l7_stats_overflow);
    evbuffer_add_printf(out,
                        "# HELP kfront_http_requests_uncounted_total Requests not broken "
                        "down because the label table was full.\n"
                        "# TYPE kfront_http_requests_uncounted_total counter\n"
                        "kfront_http_requests_uncounted_total %" PRIu64 "\n",
                        overflow);
    free(m);
    px_authz_metrics_write(d, out);
}
