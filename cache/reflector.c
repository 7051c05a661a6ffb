/*
 * Reflectors: one per store, on the cache thread. LIST the resource upstream
 * page by page, then WATCH from the list's resourceVersion with bookmarks;
 * a watch that ends is resumed from the last RV seen (on whichever apiserver
 * the balancer picks, so a failed backend is left behind); a 410 relists and
 * hands watchers the difference instead of making every client relist.
 *
 * States: IDLE -> LISTING -> WATCHING -> (WATCHING | BACKOFF -> WATCHING |
 * LISTING); BACKOFF after a failed list goes back to LISTING.
 */
#include "cache/cache_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#define LIST_PAGE           500
#define MAX_LIST_PAGE       (256u << 20)
#define BACKOFF_MIN_MS      500
#define BACKOFF_MAX_MS      30000
#define WATCH_TIMEOUT_MIN_S 300

enum refl_state { R_IDLE, R_LISTING, R_WATCHING, R_BACKOFF };
static const char *const refl_state_name[] = {"idle", "listing", "watching", "backoff"};

struct reflector {
    enum refl_state state;
    struct cache *cache;
    struct cache_store *store;
    struct lb_ureq *req;
    int status;
    struct codec_buf body; /* a list page, or the unparsed tail of the watch stream */
    struct codec_watch_reader reader;
    char *continue_token;
    struct cache_obj **objs; /* the list so far */
    size_t n_objs, cap_objs;
    bool relist_after; /* the next list replaces content that watchers have seen */
    uint64_t watch_rv;
    unsigned backoff_ms;
    bool backoff_relist;
    struct event *timer;
};

static void list_page(struct reflector *r);
static void watch_start(struct reflector *r);

static void set_state(struct reflector *r, enum refl_state next)
{
    KF_BUG_ON(next == R_IDLE);
    kf_debug("cache", "reflector %s%s: %s -> %s", r->store->type->resource,
             r->store->fmt == CACHE_PB ? " (protobuf)" : "", refl_state_name[r->state],
             refl_state_name[next]);
    r->state = next;
    atomic_store(&r->store->upstream_watching, next == R_WATCHING);
}

static const char *accept_of(const struct reflector *r)
{
    return r->store->fmt == CACHE_PB ? "application/vnd.kubernetes.protobuf" : "application/json";
}

static int start_request(struct reflector *r, const char *path, const struct lb_ureq_callbacks *cbs)
{
    struct cache *c = r->cache;
    struct lb_uhdr h[16];
    size_t n = 0;
    struct lb_ureq_spec spec = {.method = "GET", .path = path, .idempotent = true};
    const char *accept = accept_of(r), *ua = "kfront/cache";

    h[n++] = (struct lb_uhdr){"accept", 6, accept, strlen(accept)};
    h[n++] = (struct lb_uhdr){"user-agent", 10, ua, strlen(ua)};
    for (size_t i = 0; i < c->n_headers && n < KF_ARRAY_SIZE(h); i++)
        h[n++] = c->headers[i];
    spec.headers = h;
    spec.n_headers = n;
    r->status = 0;
    codec_buf_reset(&r->body);
    return lb_ureq_start(c->up, c->upcfg.pool, &spec, cbs, r, &r->req);
}

/* "/api/v1/pods" or "/apis/discovery.k8s.io/v1/endpointslices" */
static void resource_path(const struct codec_type *t, char *buf, size_t size)
{
    if (t->group[0])
        snprintf(buf, size, "/apis/%s/%s", t->api_version, t->resource);
    else
        snprintf(buf, size, "/api/%s/%s", t->api_version, t->resource);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct reflector *r = arg;

    (void)fd;
    (void)what;
    if (r->backoff_relist) {
        set_state(r, R_LISTING);
        list_page(r);
    } else {
        watch_start(r);
    }
}

/* Try again later, doubling the wait each time up to 30 s (reset by a good watch). */
static void backoff(struct reflector *r, bool relist, const char *why)
{
    unsigned ms = r->backoff_ms ? r->backoff_ms : BACKOFF_MIN_MS;
    struct timeval tv = {ms / 1000, (suseconds_t)(ms % 1000) * 1000};

    kf_warn("cache", "%s%s: %s; retrying in %u ms", r->store->type->resource,
            r->store->fmt == CACHE_PB ? " (protobuf)" : "", why, ms);
    r->backoff_ms = ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : ms * 2;
    r->backoff_relist = relist;
    set_state(r, R_BACKOFF);
    evtimer_add(r->timer, &tv);
}

static void on_headers(struct lb_ureq *req, int status, const struct lb_uhdr *h, size_t n,
                       void *arg)
{
    struct reflector *r = arg;

    (void)req;
    (void)h;
    (void)n;
    r->status = status;
}

/* ---- LIST --------------------------------------------------------------------------------------
 */

static void drop_objs(struct reflector *r)
{
    for (size_t i = 0; i < r->n_objs; i++)
        cache_obj_put(r->objs[i]);
    r->n_objs = 0;
    free(r->continue_token);
    r->continue_token = NULL;
}

static int add_item(const char *item, size_t len, void *arg)
{
    struct reflector *r = arg;
    struct cache_obj *o;
    int rc;

    if (r->n_objs == r->cap_objs) {
        size_t cap = r->cap_objs ? r->cap_objs * 2 : 1024;
        struct cache_obj **v = realloc(r->objs, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        r->objs = v;
        r->cap_objs = cap;
    }
    rc = cache_obj_from_item(r->store->fmt, r->store->type, item, len, &o);
    if (rc < 0)
        return rc;
    r->objs[r->n_objs++] = o;
    return 0;
}

static void on_list_data(struct lb_ureq *req, const uint8_t *data, size_t len, void *arg)
{
    struct reflector *r = arg;

    if (r->body.len + len <= MAX_LIST_PAGE)
        codec_buf_append(&r->body, data, len);
    else
        r->body.err = -EMSGSIZE;
    lb_ureq_consume(req, len);
}

static int parse_page(struct reflector *r, uint64_t *rv, bool *last)
{
    struct codec_list_page page;
    struct kf_arena *a = kf_arena_new(1024);
    int rc;

    if (!a)
        return -ENOMEM;
    if (r->store->fmt == CACHE_JSON)
        rc = codec_list_parse_json(r->body.data, r->body.len, &page, a, add_item, r);
    else
        rc = codec_list_parse_pb(r->body.data, r->body.len, &page, add_item, r);
    if (rc == 0) {
        char rvs[24];
        snprintf(rvs, sizeof(rvs), "%.*s", (int)page.resource_version.len,
                 page.resource_version.ptr);
        char *end;
        *rv = strtoull(rvs, &end, 10);
        if (!page.resource_version.len || *end)
            rc = -EBADMSG;
        *last = page.continue_token.len == 0;
        free(r->continue_token);
        r->continue_token =
            *last ? NULL : strndup(page.continue_token.ptr, page.continue_token.len);
        if (!*last && !r->continue_token)
            rc = -ENOMEM;
    }
    kf_arena_free(a);
    return rc;
}

static void on_list_end(struct lb_ureq *req, int error, void *arg)
{
    struct reflector *r = arg;
    uint64_t rv = 0;
    bool last = false;
    char why[96];
    int rc;

    (void)req;
    r->req = NULL;
    if (error || r->status != 200 || r->body.err) {
        snprintf(why, sizeof(why), "list failed: %s",
                 error         ? strerror(-error)
                 : r->body.err ? strerror(-r->body.err)
                               : "bad status");
        if (!error && !r->body.err)
            snprintf(why, sizeof(why), "list answered %d", r->status);
        drop_objs(r);
        backoff(r, true, why);
        return;
    }
    rc = parse_page(r, &rv, &last);
    if (rc < 0) {
        snprintf(why, sizeof(why), "unreadable list page: %s", strerror(-rc));
        drop_objs(r);
        backoff(r, true, why);
        return;
    }
    if (!last) {
        list_page(r);
        return;
    }
    rc = store_replace(r->store, r->objs, r->n_objs, rv);
    kf_info("cache", "%s%s: listed %zu objects at rv %llu", r->store->type->resource,
            r->store->fmt == CACHE_PB ? " (protobuf)" : "", r->n_objs, (unsigned long long)rv);
    drop_objs(r);
    atomic_fetch_add_explicit(&r->store->relists, 1, memory_order_relaxed);
    if (rc < 0) {
        backoff(r, true, "out of memory applying the list");
        return;
    }
    r->watch_rv = rv;
    watch_start(r);
}

static const struct lb_ureq_callbacks list_cbs = {on_headers, on_list_data, on_list_end};

static void list_page(struct reflector *r)
{
    char path[512], base[256];
    size_t o;

    resource_path(r->store->type, base, sizeof(base));
    o = (size_t)snprintf(path, sizeof(path), "%s?limit=%d", base, LIST_PAGE);
    if (r->continue_token) {
        struct codec_buf enc;
        codec_buf_init(&enc);
        for (const char *p = r->continue_token; *p; p++) {
            char tmp[4];
            bool plain = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                         (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.';
            snprintf(tmp, sizeof(tmp), plain ? "%c" : "%%%02X", (unsigned char)*p);
            codec_buf_puts(&enc, tmp);
        }
        snprintf(path + o, sizeof(path) - o, "&continue=%.*s", (int)enc.len, enc.data);
        codec_buf_free(&enc);
    }
    if (start_request(r, path, &list_cbs) < 0)
        backoff(r, true, "no apiserver available to list");
}

/* ---- WATCH -------------------------------------------------------------------------------------
 */

/* The code of an ERROR event's Status (0 when unreadable). */
static int status_code(const struct reflector *r, struct codec_str obj)
{
    return r->store->fmt == CACHE_JSON ? codec_status_code_json(obj.ptr, obj.len)
                                       : codec_status_code_pb(obj.ptr, obj.len);
}

struct batch {
    struct cache_event *v[256];
    size_t n;
};

static void flush(struct reflector *r, struct batch *b)
{
    if (!b->n)
        return;
    store_publish(r->store, b->v, b->n);
    for (size_t i = 0; i < b->n; i++)
        cache_ref_put(&b->v[i]->ref);
    b->n = 0;
}

/* One upstream event: 0, or -EPROTO to end the watch (and why in *relist). */
static int take_event(struct reflector *r, struct codec_str raw, struct batch *b, bool *relist)
{
    struct codec_watch_event ev;
    struct cache_obj *o = NULL;
    int rc;

    rc = r->store->fmt == CACHE_JSON ? codec_watch_event_parse_json(raw.ptr, raw.len, &ev)
                                     : codec_watch_event_parse_pb(raw.ptr, raw.len, &ev);
    if (rc < 0)
        return rc;
    if (ev.type == CODEC_EV_ERROR) {
        *relist = status_code(r, ev.object) == 410;
        return -EPROTO;
    }
    if (ev.type == CODEC_EV_BOOKMARK) {
        struct codec_meta m;
        struct kf_arena *a = kf_arena_new(512);
        rc = !a ? -ENOMEM
             : r->store->fmt == CACHE_JSON
                 ? codec_meta_from_json(ev.object.ptr, ev.object.len, r->store->type->id, &m, a)
                 : codec_meta_from_pb(ev.object.ptr, ev.object.len, r->store->type->id, &m, a);
        uint64_t rv = rc == 0 && m.rv_valid ? m.rv : 0;
        kf_arena_free(a);
        if (!rv)
            return rc < 0 ? rc : -EBADMSG;
        b->v[b->n] = cache_event_new(r->store->id, CODEC_EV_BOOKMARK, rv, NULL, NULL);
    } else if (ev.type == CODEC_EV_UNKNOWN) {
        return -EBADMSG;
    } else {
        rc = cache_obj_new(r->store->fmt, r->store->type, ev.object.ptr, ev.object.len, &o);
        if (rc < 0)
            return rc;
        b->v[b->n] = cache_event_new(r->store->id, ev.type, o->rv, o, NULL);
        cache_obj_put(o);
    }
    if (!b->v[b->n])
        return -ENOMEM;
    r->watch_rv = b->v[b->n]->rv;
    if (++b->n == KF_ARRAY_SIZE(b->v))
        flush(r, b);
    return 0;
}

static void on_watch_data(struct lb_ureq *req, const uint8_t *data, size_t len, void *arg)
{
    struct reflector *r = arg;
    struct batch b = {.n = 0};
    size_t off = 0;
    int rc = 0;
    bool relist = false;

    lb_ureq_consume(req, len);
    if (r->status != 200)
        return;
    codec_buf_append(&r->body, data, len);
    while (rc == 0 && !r->body.err) {
        struct codec_str raw;
        size_t used = 0;
        rc = r->store->fmt == CACHE_JSON ? codec_watch_next_json(&r->reader, r->body.data + off,
                                                                 r->body.len - off, &raw, &used)
                                         : codec_watch_next_pb(&r->reader, r->body.data + off,
                                                               r->body.len - off, &raw, &used);
        if (rc == 0)
            rc = take_event(r, raw, &b, &relist);
        off += used;
    }
    flush(r, &b);
    memmove(r->body.data, r->body.data + off, r->body.len - off);
    r->body.len -= off;
    if (rc == KF_AGAIN && !r->body.err)
        return;
    /* a broken stream or an ERROR event: end this watch, then resume or relist */
    lb_ureq_cancel(r->req);
    r->req = NULL;
    atomic_fetch_add_explicit(&r->store->watch_restarts, 1, memory_order_relaxed);
    if (relist) {
        set_state(r, R_LISTING);
        kf_info("cache", "%s: watch from rv %llu expired (410): relisting",
                r->store->type->resource, (unsigned long long)r->watch_rv);
        list_page(r);
    } else {
        backoff(r, false,
                rc == -EPROTO ? "watch ended with an error event" : "unreadable watch event");
    }
}

static void on_watch_end(struct lb_ureq *req, int error, void *arg)
{
    struct reflector *r = arg;

    (void)req;
    r->req = NULL;
    atomic_fetch_add_explicit(&r->store->watch_restarts, 1, memory_order_relaxed);
    if (error == 0 && r->status == 200) {
        watch_start(r); /* the timeout ended it: resume where it stopped */
        return;
    }
    if (r->status == 410) {
        set_state(r, R_LISTING);
        list_page(r);
        return;
    }
    char why[96];
    snprintf(why, sizeof(why), "watch from rv %llu ended: %s", (unsigned long long)r->watch_rv,
             error ? strerror(-error) : "bad status");
    backoff(r, false, why);
}

static const struct lb_ureq_callbacks watch_cbs = {on_headers, on_watch_data, on_watch_end};

static void watch_start(struct reflector *r)
{
    char path[512], base[256];
    unsigned timeout = WATCH_TIMEOUT_MIN_S + (unsigned)(kf_now_us() % WATCH_TIMEOUT_MIN_S);

    set_state(r, R_WATCHING);
    resource_path(r->store->type, base, sizeof(base));
    snprintf(path, sizeof(path),
             "%s?allowWatchBookmarks=true&resourceVersion=%llu&timeoutSeconds=%u&watch=true", base,
             (unsigned long long)r->watch_rv, timeout);
    codec_watch_reader_init(&r->reader, 0);
    if (start_request(r, path, &watch_cbs) < 0) {
        backoff(r, false, "no apiserver available to watch");
        return;
    }
    r->backoff_ms = 0;
}

/* ---- lifecycle ---------------------------------------------------------------------------------
 */

struct reflector *reflector_new(struct cache *c, struct cache_store *s)
{
    struct reflector *r = calloc(1, sizeof(*r));

    if (!r)
        return NULL;
    r->cache = c;
    r->store = s;
    r->state = R_IDLE;
    codec_buf_init(&r->body);
    r->timer = evtimer_new(c->base, timer_cb, r);
    if (!r->timer) {
        free(r);
        return NULL;
    }
    return r;
}

void reflector_start(struct reflector *r)
{
    if (r->state != R_IDLE)
        return;
    atomic_store(&r->store->state, STORE_FILLING);
    set_state(r, R_LISTING);
    list_page(r);
}

void reflector_free(struct reflector *r)
{
    if (!r)
        return;
    if (r->req)
        lb_ureq_cancel(r->req);
    event_free(r->timer);
    drop_objs(r);
    free(r->objs);
    codec_buf_free(&r->body);
    free(r);
}
