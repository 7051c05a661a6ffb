/*
 * The cache: its thread (reflectors and their upstream connections), the
 * stores, and the hand-off of published events to every worker's inbox.
 */
#include "cache/cache_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/thread.h>

struct cache_local_inbox;
void cache_local_push(struct cache_local *l, struct cache_event **evs, size_t n);

/* "pods" or "endpointslices.discovery.k8s.io" -> its type */
static const struct codec_type *type_of(const char *spec)
{
    const char *dot = strchr(spec, '.');
    char res[96];

    if (!dot)
        return codec_type_by_resource("", spec);
    snprintf(res, sizeof(res), "%.*s", (int)(dot - spec), spec);
    return codec_type_by_resource(dot + 1, res);
}

static int add_stores(struct cache *c, const char *spec)
{
    const struct codec_type *t = type_of(spec);

    if (!t || !t->list_kind) {
        kf_err("cache",
               "cache.resources: \"%s\" is not a resource kfront can cache (built-in "
               "types with a protobuf schema only, as resource[.group])",
               spec);
        return -EINVAL;
    }
    for (size_t i = 0; i < c->n_stores; i++)
        if (c->stores[i]->type == t)
            return 0; /* listed twice */
    if (c->n_stores + 2 > CACHE_MAX_STORES)
        return -E2BIG;
    for (int fmt = CACHE_JSON; fmt <= CACHE_PB; fmt++) {
        struct cache_store *s = malloc(sizeof(*s));
        if (!s)
            return -ENOMEM;
        store_init(s, c, (int)c->n_stores, t, (enum cache_format)fmt);
        c->stores[c->n_stores++] = s;
    }
    return 0;
}

static int copy_headers(struct cache *c, const struct cache_upstream *up)
{
    c->headers = calloc(up->n_headers ? up->n_headers : 1, sizeof(*c->headers));
    if (!c->headers)
        return -ENOMEM;
    for (size_t i = 0; i < up->n_headers; i++) {
        char *n = strndup(up->headers[i].name, up->headers[i].name_len);
        char *v = strndup(up->headers[i].value, up->headers[i].value_len);
        c->headers[c->n_headers++] =
            (struct lb_uhdr){n, up->headers[i].name_len, v, up->headers[i].value_len};
        if (!n || !v)
            return -ENOMEM;
    }
    return 0;
}

static void kick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cache *c = arg;

    (void)fd;
    (void)what;
    for (size_t i = 0; i < c->n_stores; i++) {
        struct cache_store *s = c->stores[i];
        if (atomic_load(&s->wanted) && atomic_load(&s->state) == STORE_IDLE) {
            if (!s->refl)
                s->refl = reflector_new(c, s);
            if (s->refl)
                reflector_start(s->refl);
        }
    }
}

struct cache *cache_new(const struct config_cache *cc, const struct cache_upstream *up)
{
    struct cache *c = calloc(1, sizeof(*c));
    size_t n = cc->resources ? cc->n_resources : config_cache_n_default_resources;

    if (!c)
        return NULL;
    c->cfg = *cc;
    c->window_ms = cc->window_ms ? cc->window_ms : 75000;
    c->upcfg = *up;
    pthread_mutex_init(&c->locals_lock, NULL);
    for (size_t i = 0; i < n; i++)
        if (add_stores(c, cc->resources ? cc->resources[i] : config_cache_default_resources[i]) < 0)
            goto fail;
    if (copy_headers(c, up) < 0)
        goto fail;
    c->base = event_base_new();
    if (!c->base)
        goto fail;
    c->kick = event_new(c->base, -1, 0, kick_cb, c);
    struct lb_upstream_config ucfg = {
        .tls = up->tls,
        .server_name = up->server_name,
        .connect_timeout_ms = up->connect_timeout_ms,
        .stream_window = 4u << 20, /* lists and busy watches: keep the pipe full */
    };
    c->up = lb_upstream_new(c->base, &ucfg);
    if (!c->kick || !c->up)
        goto fail;
    lb_retain(up->lb);
    c->upcfg.headers = NULL;
    return c;
fail:
    kf_err("cache", "cannot set up the watch cache");
    c->upcfg.lb = NULL;
    cache_free(c);
    return NULL;
}

static void *cache_thread(void *arg)
{
    struct cache *c = arg;

    event_base_loop(c->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

int cache_start(struct cache *c)
{
    for (size_t i = 0; i < c->n_stores; i++)
        if (c->stores[i]->fmt == CACHE_JSON)
            atomic_store(&c->stores[i]->wanted, true);
    event_active(c->kick, EV_TIMEOUT, 0);
    if (pthread_create(&c->thread, NULL, cache_thread, c) != 0)
        return -EAGAIN;
    c->running = true;
    return 0;
}

void cache_free(struct cache *c)
{
    if (!c)
        return;
    if (c->running) {
        event_base_loopbreak(c->base);
        pthread_join(c->thread, NULL);
    }
    for (size_t i = 0; i < c->n_stores; i++) {
        reflector_free(c->stores[i]->refl);
        store_destroy(c->stores[i]);
        free(c->stores[i]);
    }
    if (c->up)
        lb_upstream_free(c->up);
    if (c->kick)
        event_free(c->kick);
    if (c->base)
        event_base_free(c->base);
    for (size_t i = 0; i < c->n_headers; i++) {
        free((char *)c->headers[i].name);
        free((char *)c->headers[i].value);
    }
    free(c->headers);
    if (c->upcfg.lb)
        lb_release(c->upcfg.lb);
    pthread_mutex_destroy(&c->locals_lock);
    free(c);
}

int cache_store_find(struct cache *c, const char *group, const char *resource,
                     enum cache_format fmt, struct cache_store **out)
{
    for (size_t i = 0; i < c->n_stores; i++) {
        struct cache_store *s = c->stores[i];
        if (s->fmt != fmt || strcmp(s->type->resource, resource) != 0 ||
            strcmp(s->type->group, group) != 0)
            continue;
        enum store_state st = atomic_load(&s->state);
        if (st == STORE_READY) {
            *out = s;
            return 0;
        }
        if (st == STORE_IDLE && !atomic_exchange(&s->wanted, true))
            event_active(c->kick, EV_TIMEOUT, 0);
        return KF_AGAIN;
    }
    return -ENOENT;
}

const struct codec_type *cache_store_type(const struct cache_store *s)
{
    return s->type;
}

enum cache_format cache_store_format(const struct cache_store *s)
{
    return s->fmt;
}

uint64_t cache_store_rv(struct cache_store *s)
{
    uint64_t rv;

    pthread_rwlock_rdlock(&s->lock);
    rv = s->rv;
    pthread_rwlock_unlock(&s->lock);
    return rv;
}

void cache_broadcast(struct cache *c, struct cache_event **evs, size_t n)
{
    pthread_mutex_lock(&c->locals_lock);
    for (size_t i = 0; i < c->n_locals; i++)
        cache_local_push(c->locals[i], evs, n);
    pthread_mutex_unlock(&c->locals_lock);
}

static void family(struct codec_buf *b, const char *name, const char *type, const char *help)
{
    char line[256];

    snprintf(line, sizeof(line), "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
    codec_buf_puts(b, line);
}

static uint64_t store_value(struct cache_store *s, int which)
{
    switch (which) {
    case 0:
        return s->n_objs; /* a torn read of a gauge is harmless */
    case 1:
        return s->bytes;
    case 2:
        return atomic_load(&s->events);
    case 3:
        return atomic_load(&s->relists);
    case 4:
        return atomic_load(&s->watch_restarts);
    case 5:
        return atomic_load(&s->upstream_watching);
    case 6:
        return atomic_load(&s->served_lists);
    default:
        return atomic_load(&s->served_gets);
    }
}

void cache_metrics_write(struct cache *c, struct codec_buf *b)
{
    static const struct {
        const char *name, *type, *help;
    } fams[] = {
        {"kfront_cache_objects", "gauge", "Objects held, per resource and wire format."},
        {"kfront_cache_object_bytes", "gauge", "Bytes of the objects held."},
        {"kfront_cache_events_total", "counter", "Events received from the apiservers."},
        {"kfront_cache_relists_total", "counter", "Complete LISTs (start, and after 410)."},
        {"kfront_cache_upstream_watch_restarts_total", "counter", "Upstream watches resumed."},
        {"kfront_cache_upstream_watches", "gauge", "Upstream watches open (one per store)."},
        {"kfront_cache_lists_served_total", "counter", "LISTs answered from the cache."},
        {"kfront_cache_gets_served_total", "counter", "GETs answered from the cache."},
    };
    char line[512];

    for (int f = 0; f < (int)KF_ARRAY_SIZE(fams); f++) {
        family(b, fams[f].name, fams[f].type, fams[f].help);
        for (size_t i = 0; i < c->n_stores; i++) {
            struct cache_store *s = c->stores[i];
            if (atomic_load(&s->state) == STORE_IDLE)
                continue;
            snprintf(line, sizeof(line), "%s{resource=\"%s\",format=\"%s\"} %" PRIu64 "\n",
                     fams[f].name, s->type->resource, s->fmt == CACHE_PB ? "protobuf" : "json",
                     store_value(s, f));
            codec_buf_puts(b, line);
        }
    }
    family(b, "kfront_cache_watches", "gauge", "Client watches served from the cache.");
    snprintf(line, sizeof(line), "kfront_cache_watches %" PRIu64 "\n",
             (uint64_t)atomic_load(&c->watches_active));
    codec_buf_puts(b, line);
    family(b, "kfront_cache_watches_total", "counter", "Client watches started from the cache.");
    snprintf(line, sizeof(line), "kfront_cache_watches_total %" PRIu64 "\n",
             (uint64_t)atomic_load(&c->watches_total));
    codec_buf_puts(b, line);
    family(b, "kfront_cache_slow_watches_closed_total", "counter",
           "Client watches closed for not keeping up (they resume).");
    snprintf(line, sizeof(line), "kfront_cache_slow_watches_closed_total %" PRIu64 "\n",
             (uint64_t)atomic_load(&c->slow_closed));
    codec_buf_puts(b, line);
}
