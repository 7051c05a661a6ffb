/*
 * One informer: LIST (limit=500, resourceVersion=0) then WATCH from the list's
 * RV with bookmarks, re-watching from the last RV when a watch ends and
 * relisting on 410, like client-go's reflector. It keeps its view (key ->
 * resourceVersion) and checks every event against it and its selector.
 *
 * States: LISTING -> WATCHING -> (WATCHING | BACKOFF -> WATCHING | LISTING).
 */
#include "loadgen/kubelets/watch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

enum { W_IDLE, W_LISTING, W_WATCHING, W_BACKOFF, W_STOPPED };

static void list_start(struct kl_watch *w);
static void watch_start(struct kl_watch *w);

static void wrong(struct kl_watch *w, const char *what, struct codec_str key, uint64_t rv)
{
    kl_stats.events_wrong++;
    if (kl_stats.events_wrong <= 20)
        fprintf(stderr, "loadgen: WRONG %s %s: %s %.*s rv %llu\n", w->node ? w->node : "-", w->what,
                what, (int)key.len, key.ptr, (unsigned long long)rv);
}

static void view_set(struct kl_watch *w, const char *key, uint64_t rv)
{
    uint64_t *v = kf_map_get(&w->view, key);

    if (!v && (v = malloc(sizeof(*v))) && kf_map_put(&w->view, key, v) < 0) {
        free(v);
        return;
    }
    if (v)
        *v = rv;
}

static void view_clear(struct kl_watch *w)
{
    kf_map_free(&w->view, free);
}

static int key_of(const struct codec_meta *m, char *buf, size_t size)
{
    if (m->namespace_.len)
        return snprintf(buf, size, "%.*s/%.*s", (int)m->namespace_.len, m->namespace_.ptr,
                        (int)m->name.len, m->name.ptr);
    return snprintf(buf, size, "%.*s", (int)m->name.len, m->name.ptr);
}

static bool selected(const struct kl_watch *w, const struct codec_meta *m)
{
    struct codec_str v;

    if (!w->pin_field)
        return true;
    return codec_meta_field(m, w->pin_field, &v) && codec_str_eq(v, w->pin_value);
}

/* ---- HTTP -------------------------------------------------------------------------------- */

static int send_get(struct kl_watch *w, const char *path, const struct lb_ureq_callbacks *cbs)
{
    const char *accept = w->pb ? "application/vnd.kubernetes.protobuf, */*" : "application/json";
    char auth[300];
    struct lb_uhdr h[3];
    size_t n = 0;

    h[n++] = (struct lb_uhdr){"accept", 6, accept, strlen(accept)};
    h[n++] = (struct lb_uhdr){"user-agent", 10, "kubelet/v1.32 (loadgen)", 23};
    if (w->token) {
        snprintf(auth, sizeof(auth), "Bearer %s", w->token);
        h[n++] = (struct lb_uhdr){"authorization", 13, auth, strlen(auth)};
    }
    struct lb_ureq_spec spec = {
        .method = "GET", .path = path, .headers = h, .n_headers = n, .idempotent = true};
    w->status = 0;
    codec_buf_reset(&w->body);
    return lb_ureq_start(w->ep->up, w->ep->pool, &spec, cbs, w, &w->req);
}

static void count_status(int status)
{
    int c = status / 100;
    kl_stats.status[c >= 2 && c <= 5 ? c - 2 : 4]++;
    if (status >= 400)
        kl_stats.http_errors++;
}

static void on_headers(struct lb_ureq *req, int status, const struct lb_uhdr *h, size_t n,
                       void *arg)
{
    struct kl_watch *w = arg;

    (void)req;
    (void)h;
    (void)n;
    w->status = status;
    if (!w->truth)
        count_status(status);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct kl_watch *w = arg;

    (void)fd;
    (void)what;
    if (w->state == W_STOPPED)
        return;
    if (w->relist)
        list_start(w);
    else
        watch_start(w);
}

static void later(struct kl_watch *w, bool relist, unsigned ms)
{
    struct timeval tv = {ms / 1000, (suseconds_t)(ms % 1000) * 1000};

    w->state = W_BACKOFF;
    w->relist = relist;
    evtimer_add(w->timer, &tv);
}

/* ---- LIST ---------------------------------------------------------------------------------- */

static int list_item(const char *item, size_t len, void *arg)
{
    struct kl_watch *w = arg;
    struct codec_meta m;
    struct kf_arena *a = kf_arena_new(1024);
    char key[512];
    int rc;

    if (!a)
        return -ENOMEM;
    rc = w->pb ? codec_meta_from_pb(item, len, w->kind, &m, a)
               : codec_meta_from_json(item, len, w->kind, &m, a);
    if (rc == 0) {
        key_of(&m, key, sizeof(key));
        if (!selected(w, &m))
            wrong(w, "LIST item outside the selector", m.name, m.rv);
        view_set(w, key, m.rv);
        if (w->on_item)
            w->on_item(w, item, len, &m);
    }
    kf_arena_free(a);
    return rc;
}

static void on_data(struct lb_ureq *req, const uint8_t *data, size_t len, void *arg)
{
    struct kl_watch *w = arg;

    codec_buf_append(&w->body, data, len);
    if (!w->truth)
        kl_stats.bytes += len;
    lb_ureq_consume(req, len);
}

static void on_list_end(struct lb_ureq *req, int error, void *arg)
{
    struct kl_watch *w = arg;
    struct codec_list_page page;
    struct kf_arena *a = kf_arena_new(1024);
    int rc = -EIO;

    (void)req;
    w->req = NULL;
    if (!w->truth)
        kl_stats.lists++;
    if (!error && w->status == 200 && a) {
        view_clear(w);
        rc = w->pb ? codec_list_parse_pb(w->body.data, w->body.len, &page, list_item, w)
                   : codec_list_parse_json(w->body.data, w->body.len, &page, a, list_item, w);
        if (rc == 0) {
            char rvs[24];
            snprintf(rvs, sizeof(rvs), "%.*s", (int)page.resource_version.len,
                     page.resource_version.ptr);
            w->rv = strtoull(rvs, NULL, 10);
        }
    }
    kf_arena_free(a);
    if (w->state == W_STOPPED)
        return;
    if (rc < 0 && w->list_only && !error && w->status >= 400 && w->status < 500) {
        w->state = W_STOPPED; /* a refusal is an answer: the caller reads w->status */
        if (w->on_listed)
            w->on_listed(w);
        return;
    }
    if (rc < 0) {
        later(w, true, 1000);
        return;
    }
    if (w->on_listed)
        w->on_listed(w);
    if (w->list_only)
        w->state = W_STOPPED;
    else
        watch_start(w);
}

static const struct lb_ureq_callbacks list_cbs = {on_headers, on_data, on_list_end};

static void list_start(struct kl_watch *w)
{
    char path[1024];

    w->state = W_LISTING;
    snprintf(path, sizeof(path), "%s?%s%slimit=500&resourceVersion=0", w->path, w->query,
             w->query[0] ? "&" : "");
    if (send_get(w, path, &list_cbs) < 0)
        later(w, true, 1000);
}

/* ---- WATCH ---------------------------------------------------------------------------------- */

static void take_event(struct kl_watch *w, struct codec_str raw)
{
    struct codec_watch_event ev;
    struct codec_meta m;
    struct kf_arena *a;
    char key[512];
    int rc;

    rc = w->pb ? codec_watch_event_parse_pb(raw.ptr, raw.len, &ev)
               : codec_watch_event_parse_json(raw.ptr, raw.len, &ev);
    if (rc < 0) {
        wrong(w, "unreadable event", raw, 0);
        return;
    }
    if (ev.type == CODEC_EV_ERROR) {
        int code = w->pb ? codec_status_code_pb(ev.object.ptr, ev.object.len)
                         : codec_status_code_json(ev.object.ptr, ev.object.len);
        w->expired = code == 410;
        return;
    }
    if (!(a = kf_arena_new(1024)))
        return;
    rc = w->pb ? codec_meta_from_pb(ev.object.ptr, ev.object.len, CODEC_KIND_UNKNOWN, &m, a)
               : codec_meta_from_json(ev.object.ptr, ev.object.len, CODEC_KIND_UNKNOWN, &m, a);
    if (rc < 0 || m.kind != w->kind) {
        wrong(w, "unreadable object or wrong kind", ev.type_name, 0);
        kf_arena_free(a);
        return;
    }
    if (w->truth) {
        key_of(&m, key, sizeof(key));
        if (ev.type != CODEC_EV_BOOKMARK)
            kl_truth_seen(w->resource, key, m.rv, kf_now_us());
        w->rv = m.rv > w->rv ? m.rv : w->rv;
        kf_arena_free(a);
        return;
    }
    if (ev.type == CODEC_EV_BOOKMARK) {
        kl_stats.bookmarks++;
        if (m.rv < w->rv)
            wrong(w, "bookmark going back", m.resource_version, m.rv);
        w->rv = m.rv;
        kf_arena_free(a);
        return;
    }
    kl_stats.events++;
    key_of(&m, key, sizeof(key));
    uint64_t *known = kf_map_get(&w->view, key), t0;
    if (m.rv <= w->rv)
        wrong(w, "resourceVersion not increasing", m.name, m.rv);
    if (ev.type == CODEC_EV_ADDED && known)
        wrong(w, "ADDED for an object already seen", m.name, m.rv);
    if (ev.type != CODEC_EV_ADDED && !known)
        wrong(w, "MODIFIED/DELETED for an unknown object", m.name, m.rv);
    if (ev.type != CODEC_EV_DELETED && !selected(w, &m))
        wrong(w, "object outside the selector", m.name, m.rv);
    if (ev.type == CODEC_EV_DELETED)
        free(kf_map_remove(&w->view, key));
    else
        view_set(w, key, m.rv);
    w->rv = m.rv > w->rv ? m.rv : w->rv;
    if (kl_truth_time(w->resource, key, m.rv, &t0))
        kl_hist_add(&kl_stats.latency, (double)(kf_now_us() - t0) / 1000.0);
    if (w->on_event)
        w->on_event(w, ev.type, ev.object, &m);
    kf_arena_free(a);
}

static void on_watch_data(struct lb_ureq *req, const uint8_t *data, size_t len, void *arg)
{
    struct kl_watch *w = arg;
    size_t off = 0;
    int rc = 0;

    lb_ureq_consume(req, len);
    if (!w->truth)
        kl_stats.bytes += len;
    if (w->status != 200)
        return;
    codec_buf_append(&w->body, data, len);
    while (rc == 0) {
        struct codec_str raw;
        size_t used = 0;
        rc = w->pb ? codec_watch_next_pb(&w->reader, w->body.data + off, w->body.len - off, &raw,
                                         &used)
                   : codec_watch_next_json(&w->reader, w->body.data + off, w->body.len - off, &raw,
                                           &used);
        if (rc == 0)
            take_event(w, raw);
        off += used;
    }
    memmove(w->body.data, w->body.data + off, w->body.len - off);
    w->body.len -= off;
}

static void on_watch_end(struct lb_ureq *req, int error, void *arg)
{
    struct kl_watch *w = arg;

    (void)req;
    w->req = NULL;
    if (w->state == W_STOPPED)
        return;
    if (w->expired || w->status == 410) {
        kl_stats.relists++;
        w->expired = false;
        list_start(w);
        return;
    }
    if (error || w->status != 200) {
        later(w, false, 1000);
        return;
    }
    watch_start(w);
}

static const struct lb_ureq_callbacks watch_cbs = {on_headers, on_watch_data, on_watch_end};

static void watch_start(struct kl_watch *w)
{
    char path[1024];
    unsigned timeout = 300 + (unsigned)(kf_now_us() % 300);

    if (w->truth)
        ;
    else if (w->state == W_WATCHING)
        kl_stats.watches_reopened++;
    else
        kl_stats.watches_opened++;
    w->state = W_WATCHING;
    codec_watch_reader_init(&w->reader, 0);
    snprintf(path, sizeof(path),
             "%s?%s%sallowWatchBookmarks=true&resourceVersion=%llu&timeoutSeconds=%u&watch=true",
             w->path, w->query, w->query[0] ? "&" : "", (unsigned long long)w->rv, timeout);
    if (send_get(w, path, &watch_cbs) < 0)
        later(w, false, 1000);
}

/* ---- lifecycle ----------------------------------------------------------------------------------
 */

struct kl_watch *kl_watch_new(struct event_base *base, struct kl_endpoint *ep, const char *what)
{
    struct kl_watch *w = calloc(1, sizeof(*w));

    if (!w)
        return NULL;
    w->ep = ep;
    snprintf(w->what, sizeof(w->what), "%s", what);
    codec_buf_init(&w->body);
    w->timer = evtimer_new(base, timer_cb, w);
    if (!w->timer) {
        free(w);
        return NULL;
    }
    return w;
}

void kl_watch_start(struct kl_watch *w, unsigned delay_ms)
{
    if (delay_ms)
        later(w, true, delay_ms);
    else
        list_start(w);
}

void kl_watch_stop(struct kl_watch *w)
{
    w->state = W_STOPPED;
    evtimer_del(w->timer);
    if (w->req)
        lb_ureq_cancel(w->req);
    w->req = NULL;
}

void kl_watch_free(struct kl_watch *w)
{
    kl_watch_stop(w);
    event_free(w->timer);
    view_clear(w);
    codec_buf_free(&w->body);
    free(w);
}
