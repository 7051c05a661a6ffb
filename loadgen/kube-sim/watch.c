/*
 * watch: WATCH streams. A watcher has a cursor into its resource's history;
 * while it keeps up, new events are written to it as they are committed; when
 * its connection backs up it stops taking events and, on drain, catches up
 * from the history (which is its only queue, so a slow watcher costs
 * nothing). A watcher whose cursor falls out of the history is closed, and the
 * client resumes or relists, as with the apiserver.
 *
 * Encodings of an event are built once, on first use, and shared by
 * reference by every watcher that receives it.
 */
#include "loadgen/kube-sim/kube_sim.h"
#include "proxy/http/http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#define PENDING_HIGH (1024 * 1024)
#define INIT_CHUNK   (128 * 1024)

enum wstate { W_INITIAL, W_REPLAY, W_LIVE, W_DONE };
static const char *const wstate_name[] = {"initial", "replay", "live", "done"};

/* Watchers pinned to one value (an object key or an index_field value). */
struct bucket {
    struct kf_list head;
    size_t n;
};

struct ks_watch {
    struct kf_list link; /* res->watchers, or a bucket's list */
    struct kf_map *map;  /* the index map holding its bucket, NULL for res->watchers */
    const char *map_key;
    struct kf_list all; /* every watch (admin close) */
    struct ks_req *r;
    struct ks_res *res;
    const char *prefix;
    struct ks_sel *sel;
    bool pb, table, bookmarks, initial_end;
    enum wstate state;
    uint64_t cursor; /* events up to here are done */
    struct ks_snapshot init;
    size_t init_pos;
    struct event *deadline_ev, *bookmark_ev;
    uint64_t deadline_ms;
    uint64_t events_sent;
    uint64_t blocked_since_ms; /* backed up without progress since (0: not) */
    uint64_t swept_sent;       /* events_sent at the last sweep */
    bool closing;              /* the client went away: the reaper ends it */
};

static struct kf_list all_watches = {&all_watches, &all_watches};
unsigned ks_bookmark_interval_ms = 60000;

static void set_state(struct ks_watch *w, enum wstate s)
{
    /* legal: initial -> replay -> live <-> replay, anything -> done */
    KF_BUG_ON(w->state == W_DONE);
    KF_BUG_ON(s == W_INITIAL);
    KF_BUG_ON(s == W_LIVE && w->state == W_INITIAL);
    kf_debug("kube-sim", "watch %s %s -> %s", w->res->name, wstate_name[w->state], wstate_name[s]);
    w->state = s;
}

/* ---- encodings ------------------------------------------------------------------------------ */

static struct ks_bytes *encode(enum ks_ev_type type, const struct ks_obj *o, bool pb)
{
    struct ks_sb sb;
    struct ks_bytes *b;

    ks_sb_init(&sb, o->json_len + 64);
    if (pb) {
        ks_watch_frame(&sb, ks_ev_type_name[type], o->pb, o->pb_len);
    } else {
        ks_sb_adds(&sb, "{\"type\":\"");
        ks_sb_adds(&sb, ks_ev_type_name[type]);
        ks_sb_adds(&sb, "\",\"object\":");
        ks_sb_add(&sb, o->json, o->json_len);
        ks_sb_add(&sb, "}\n", 2);
    }
    b = sb.err ? NULL : ks_bytes_new(sb.p, sb.len);
    ks_sb_free(&sb);
    return b;
}

/* The shared bytes of ev as seen through variant (see enum ks_enc). */
static struct ks_bytes *event_bytes(struct ks_event *ev, enum ks_enc which)
{
    if (ev->enc[which])
        return ev->enc[which];
    bool pb = which & 1;
    switch (which) {
    case KS_ENC_JSON:
    case KS_ENC_PB:
        ev->enc[which] = encode(ev->type, ev->obj, pb);
        break;
    case KS_ENC_JSON_ADDED:
    case KS_ENC_PB_ADDED:
        ev->enc[which] = encode(KS_ADDED, ev->obj, pb);
        break;
    default:
        if (!ev->prev_at_rv)
            ev->prev_at_rv = ks_obj_with_rv(ev->prev, ev->rv);
        if (ev->prev_at_rv)
            ev->enc[which] = encode(KS_DELETED, ev->prev_at_rv, pb);
        break;
    }
    return ev->enc[which];
}

static void bookmark_json(struct ks_sb *sb, const struct ks_res *res, uint64_t rv, bool end)
{
    ks_sb_printf(sb,
                 "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"%s\",\"apiVersion\":\"%s\","
                 "\"metadata\":{\"resourceVersion\":\"%llu\"",
                 res->kind, res->api_version, (unsigned long long)rv);
    if (!res->json_only)
        ks_sb_adds(sb, ",\"creationTimestamp\":null");
    if (end)
        ks_sb_adds(sb, ",\"annotations\":{\"k8s.io/initial-events-end\":\"true\"}");
    ks_sb_addc(sb, '}');
    ks_sb_adds(sb, res->bookmark_tail);
    ks_sb_adds(sb, "}}\n");
}

static void bookmark_pb(struct ks_sb *sb, const struct ks_res *res, uint64_t rv, bool end)
{
    struct ks_sb obj;
    size_t raw, meta;
    char rvs[24];

    ks_sb_init(&obj, 128);
    snprintf(rvs, sizeof(rvs), "%llu", (unsigned long long)rv);
    ks_pb_envelope_begin(&obj, res->api_version, res->kind, &raw);
    meta = ks_pb_begin(&obj, 1);
    ks_pb_str(&obj, 6, rvs);
    if (end) {
        size_t e = ks_pb_begin(&obj, 12);
        ks_pb_str(&obj, 1, "k8s.io/initial-events-end");
        ks_pb_str(&obj, 2, "true");
        ks_pb_end(&obj, e);
    }
    ks_pb_end(&obj, meta);
    ks_pb_envelope_end(&obj, raw);
    ks_watch_frame(sb, "BOOKMARK", (const uint8_t *)obj.p, obj.len);
    if (obj.err)
        sb->err = obj.err;
    ks_sb_free(&obj);
}

/* ---- writing -----------------------------------------------------------------------------------
 */

static bool backed_up(const struct ks_watch *w)
{
    return px_response_pending(w->r->px) >= PENDING_HIGH;
}

static void write_bytes(struct ks_watch *w, struct ks_bytes *b)
{
    ks_bytes_ref(b);
    px_response_write_ref(w->r->px, b->data, b->len, ks_bytes_free_cb, b);
    ks_metrics_bytes(b->len);
    w->events_sent++;
}

static void write_sb(struct ks_watch *w, struct ks_sb *sb)
{
    if (sb->err || !sb->len)
        return;
    struct ks_bytes *b = ks_bytes_new(sb->p, sb->len);
    if (b) {
        write_bytes(w, b);
        ks_bytes_unref(b);
    }
}

static void send_bookmark(struct ks_watch *w, uint64_t rv, bool end)
{
    struct ks_sb sb;

    ks_sb_init(&sb, 512);
    if (w->pb)
        bookmark_pb(&sb, w->res, rv, end);
    else
        bookmark_json(&sb, w->res, rv, end);
    write_sb(w, &sb);
    ks_sb_free(&sb);
}

static bool in_scope(const struct ks_watch *w, const struct ks_obj *o)
{
    return !w->prefix || strncmp(o->key, w->prefix, strlen(w->prefix)) == 0;
}

/* Which variant of ev this watcher sees; -1 when none. */
static int variant_for(const struct ks_watch *w, const struct ks_event *ev)
{
    if (!in_scope(w, ev->obj))
        return -1;
    if (ks_sel_empty(w->sel))
        return KS_ENC_JSON;
    if (ev->type == KS_DELETED)
        return ks_sel_match(w->sel, ev->prev) ? KS_ENC_JSON : -1;
    bool now = ks_sel_match(w->sel, ev->obj);
    bool before = ev->prev && ks_sel_match(w->sel, ev->prev);
    if (now)
        return before || ev->type == KS_ADDED ? KS_ENC_JSON : KS_ENC_JSON_ADDED;
    return before ? KS_ENC_JSON_DELETED : -1;
}

static void deliver(struct ks_watch *w, struct ks_event *ev)
{
    int v = variant_for(w, ev);

    w->cursor = ev->rv;
    if (v < 0)
        return;
    if (w->table) {
        enum ks_ev_type type = v == KS_ENC_JSON         ? ev->type
                               : v == KS_ENC_JSON_ADDED ? KS_ADDED
                                                        : KS_DELETED;
        const struct ks_obj *o = v == KS_ENC_JSON_DELETED ? ev->prev : ev->obj;
        struct ks_sb sb;
        ks_sb_init(&sb, 2048);
        ks_table_watch_event(&sb, w->r, type, o, ev->rv);
        write_sb(w, &sb);
        ks_sb_free(&sb);
        return;
    }
    struct ks_bytes *b = event_bytes(ev, (enum ks_enc)(v + (w->pb ? 1 : 0)));
    if (b)
        write_bytes(w, b);
}

/* ---- lifecycle ---------------------------------------------------------------------------------
 */

static void watch_free(struct ks_watch *w)
{
    if (w->state != W_DONE)
        set_state(w, W_DONE);
    kf_list_remove(&w->link);
    if (w->map) {
        struct bucket *b = kf_map_get(w->map, w->map_key);
        if (b && --b->n == 0)
            free(kf_map_remove(w->map, w->map_key));
    }
    kf_list_remove(&w->all);
    w->res->n_watchers--;
    if (w->deadline_ev)
        event_free(w->deadline_ev);
    if (w->bookmark_ev)
        event_free(w->bookmark_ev);
    ks_snapshot_release(&w->init);
    px_request_on_drain(w->r->px, NULL, NULL);
    px_request_on_close(w->r->px, NULL, NULL);
    free(w);
}

/* End the stream cleanly (deadline, admin close, too slow); abort = reset instead. */
static void watch_end(struct ks_watch *w, bool abort)
{
    struct px_request *px = w->r->px;

    watch_free(w);
    if (abort)
        px_response_abort(px);
    else
        px_response_end(px);
}

/*
 * Initial ADDED events: encoded into one buffer per batch, then written one
 * event per write (one chunk / DATA frame each, as the apiserver flushes
 * them) by reference to slices of that buffer. True when all are written.
 */
static bool pump_initial(struct ks_watch *w)
{
    struct ks_sb sb;
    uint32_t ends[4096];

    ks_sb_init(&sb, INIT_CHUNK + 8192);
    while (w->init_pos < w->init.n && !backed_up(w)) {
        size_t n = 0;
        sb.len = 0;
        while (w->init_pos < w->init.n && sb.len < INIT_CHUNK && n < KF_ARRAY_SIZE(ends)) {
            const struct ks_obj *o = w->init.items[w->init_pos++];
            if (!ks_sel_match(w->sel, o))
                continue;
            if (w->table) {
                ks_table_watch_event(&sb, w->r, KS_ADDED, o, o->rv);
            } else if (w->pb) {
                ks_watch_frame(&sb, "ADDED", o->pb, o->pb_len);
            } else {
                ks_sb_adds(&sb, "{\"type\":\"ADDED\",\"object\":");
                ks_sb_add(&sb, o->json, o->json_len);
                ks_sb_add(&sb, "}\n", 2);
            }
            ends[n++] = (uint32_t)sb.len;
        }
        struct ks_bytes *b = sb.err || !n ? NULL : ks_bytes_new(sb.p, sb.len);
        for (size_t k = 0; b && k < n; k++) {
            uint32_t start = k ? ends[k - 1] : 0;
            ks_bytes_ref(b);
            px_response_write_ref(w->r->px, b->data + start, ends[k] - start, ks_bytes_free_cb, b);
            w->events_sent++;
        }
        if (b) {
            ks_metrics_bytes(b->len);
            ks_bytes_unref(b);
        }
    }
    ks_sb_free(&sb);
    if (w->init_pos < w->init.n)
        return false;
    ks_snapshot_release(&w->init);
    if (w->initial_end)
        send_bookmark(w, w->cursor, true);
    set_state(w, W_REPLAY);
    return true;
}

/* Catch up from the history; false when the watcher had to be closed. */
static bool pump_replay(struct ks_watch *w)
{
    const struct ks_evq *q = w->res->events;

    if (w->cursor < ks_store.compacted_rv) {
        /* what it still needed has been compacted away: close, it resumes (410) */
        kf_info("kube-sim", "closing slow %s watch at rv %llu (history starts after %llu)",
                w->res->name, (unsigned long long)w->cursor,
                (unsigned long long)ks_store.compacted_rv);
        ks_metrics_slow_watch();
        watch_end(w, false);
        return false;
    }
    for (size_t i = ks_evq_after(q, w->cursor); i < q->n; i++) {
        if (backed_up(w))
            return true;
        deliver(w, ks_evq_at(q, i));
    }
    set_state(w, W_LIVE);
    return true;
}

static struct event *reap_ev;

/*
 * A client that goes away is noticed inside the HTTP layer (possibly while
 * we are writing to another stream of the same connection): never free there.
 * Mark the watch and let the reaper, a deferred event, end it.
 */
static void mark_closing(struct ks_watch *w)
{
    if (w->closing)
        return;
    w->closing = true;
    if (reap_ev)
        event_active(reap_ev, EV_TIMEOUT, 0);
}

static void reap(evutil_socket_t fd, short what, void *arg)
{
    struct kf_list *pos, *tmp;

    (void)fd;
    (void)what;
    (void)arg;
    kf_list_for_each_safe(pos, tmp, &all_watches)
    {
        struct ks_watch *w = kf_container_of(pos, struct ks_watch, all);
        if (w->closing)
            watch_end(w, false);
    }
}

static void pump(struct ks_watch *w)
{
    if (w->closing || px_request_is_closed(w->r->px)) {
        mark_closing(w);
        return;
    }
    if (w->state == W_INITIAL && !pump_initial(w))
        return;
    if (w->state == W_REPLAY)
        pump_replay(w);
}

static void on_drain(struct px_request *px, void *arg)
{
    (void)px;
    pump(arg);
}

static void on_close(struct px_request *px, void *arg)
{
    (void)px;
    mark_closing(arg);
}

static void offer(struct kf_list *list, struct ks_event *ev)
{
    struct kf_list *pos, *tmp;

    kf_list_for_each_safe(pos, tmp, list)
    {
        struct ks_watch *w = kf_container_of(pos, struct ks_watch, link);
        if (w->state != W_LIVE || w->closing)
            continue;
        if (backed_up(w)) {
            set_state(w, W_REPLAY); /* on_drain catches up from the history */
            continue;
        }
        deliver(w, ev);
    }
}

static void offer_bucket(struct kf_map *map, const char *key, struct ks_event *ev)
{
    struct bucket *b = key && key[0] ? kf_map_get(map, key) : NULL;

    if (b)
        offer(&b->head, ev);
}

/*
 * A committed event: straight to every live watcher that can match it. Watchers
 * pinned to one object (metadata.name=X) or one node (spec.nodeName=X) sit in
 * index buckets, so an event visits only its own (and its previous node's).
 */
static void on_event(struct ks_event *ev, void *arg)
{
    struct ks_res *res = ev->res;

    (void)arg;
    offer(&res->watchers, ev);
    offer_bucket(&res->watch_by_key, ev->obj->key, ev);
    if (res->index_field) {
        const char *now = ks_obj_field(ev->obj, res->index_field);
        const char *before = ev->prev ? ks_obj_field(ev->prev, res->index_field) : NULL;
        offer_bucket(&res->watch_by_field, now, ev);
        if (before && (!now || strcmp(before, now) != 0))
            offer_bucket(&res->watch_by_field, before, ev);
    }
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    watch_end(arg, false);
}

static void arm_bookmark(struct ks_watch *w);

static void on_bookmark(evutil_socket_t fd, short what, void *arg)
{
    struct ks_watch *w = arg;

    (void)fd;
    (void)what;
    if (w->state == W_LIVE && !backed_up(w))
        send_bookmark(w, ks_store.rv, false);
    arm_bookmark(w);
}

/* Next bookmark: every interval, and one ~2 s before the deadline. */
static void arm_bookmark(struct ks_watch *w)
{
    uint64_t now = kf_now_ms(), at = now + ks_bookmark_interval_ms;

    if (w->deadline_ms > now + 2000 && w->deadline_ms - 2000 < at)
        at = w->deadline_ms - 2000;
    if (at >= w->deadline_ms)
        return;
    struct timeval tv = {(time_t)((at - now) / 1000), (suseconds_t)((at - now) % 1000 * 1000)};
    evtimer_add(w->bookmark_ev, &tv);
}

/* How long a watcher may leave its connection backed up before it is closed. */
unsigned ks_slow_watch_ms = 10000;
static struct event *sweep_ev;

/*
 * Once a second: a watcher whose client stopped reading is closed, like the
 * apiserver terminates unresponsive watchers, once it has been blocked for
 * ks_slow_watch_ms or the history it still needs is gone. Its client
 * resumes from its last resourceVersion (or relists after a 410).
 */
static void sweep(evutil_socket_t fd, short what, void *arg)
{
    struct kf_list *pos, *tmp;
    uint64_t now = kf_now_ms();

    (void)fd;
    (void)what;
    (void)arg;
    kf_list_for_each_safe(pos, tmp, &all_watches)
    {
        struct ks_watch *w = kf_container_of(pos, struct ks_watch, all);
        if (w->closing)
            continue;
        bool progress = w->events_sent != w->swept_sent; /* the client read, we wrote */
        w->swept_sent = w->events_sent;
        if (!backed_up(w) || progress) {
            w->blocked_since_ms = 0;
            continue;
        }
        if (!w->blocked_since_ms)
            w->blocked_since_ms = now;
        bool lost = w->state != W_INITIAL && w->cursor < ks_store.compacted_rv;
        if (lost || now - w->blocked_since_ms >= ks_slow_watch_ms) {
            kf_info("kube-sim", "closing unresponsive %s watch (%s, blocked %llu ms)", w->res->name,
                    lost ? "history gone" : "too slow",
                    (unsigned long long)(now - w->blocked_since_ms));
            ks_metrics_slow_watch();
            watch_end(w, true);
        }
    }
}

void ks_watch_init(void)
{
    struct timeval second = {1, 0};

    ks_store.on_event = on_event;
    ks_store.on_event_arg = NULL;
    sweep_ev = event_new(ks_base, -1, EV_PERSIST, sweep, NULL);
    if (sweep_ev)
        event_add(sweep_ev, &second);
    reap_ev = event_new(ks_base, -1, 0, reap, NULL);
}

void ks_watch_shutdown(void)
{
    ks_watch_close_all(true);
    if (sweep_ev)
        event_free(sweep_ev);
    if (reap_ev)
        event_free(reap_ev);
    sweep_ev = reap_ev = NULL;
}

void ks_watch_close_all(bool abort)
{
    while (!kf_list_empty(&all_watches)) {
        struct ks_watch *w = kf_container_of(all_watches.next, struct ks_watch, all);
        if (abort)
            px_conn_goaway(px_request_conn(w->r->px));
        watch_end(w, abort);
    }
}

/* ---- the handler
 * ----------------------------------------------------------------------------------- */

/* 200 with one ERROR event carrying 410 Expired, as the watch cache answers. */
static void reply_too_old(struct ks_req *r, uint64_t rv, bool pb)
{
    struct ks_status st;
    struct ks_sb sb;
    char msg[128];

    snprintf(msg, sizeof(msg), "too old resource version: %llu (%llu)", (unsigned long long)rv,
             (unsigned long long)ks_store.compacted_rv);
    ks_status_init(&st, 410, "Expired", msg);
    ks_sb_init(&sb, 256);
    ks_status_watch_event(&sb, &st, pb);
    ks_req_count(r, 200);
    ks_headers(r, pb ? KS_CT_PB ";stream=watch" : "application/json");
    px_response_start(r->px, 200);
    px_response_write(r->px, sb.p, sb.len);
    px_response_end(r->px);
    ks_sb_free(&sb);
}

static bool watch_timeout(struct ks_req *r, uint64_t *ms)
{
    const char *t = px_request_query(r->px, "timeoutSeconds");
    char *end;

    if (t && t[0]) {
        long long v = strtoll(t, &end, 10);
        if (*end || v < 0) {
            ks_reply_bad_request(r, "strconv.ParseInt: parsing \"%s\": invalid syntax", t);
            return false;
        }
        if (v > 0) {
            *ms = (uint64_t)v * 1000;
            return true;
        }
    }
    /* the apiserver's --min-request-timeout (1800 s), randomised to [1x, 2x) */
    *ms = (uint64_t)((1800.0 + 1800.0 * ks_rng_unit()) * 1000.0);
    return true;
}

/* Into the bucket its selector pins it to, or the resource's general list. */
static void watch_place(struct ks_watch *w)
{
    struct ks_res *res = w->res;
    const char *name = ks_sel_exact_field(w->sel, "metadata.name");
    const char *field = res->index_field ? ks_sel_exact_field(w->sel, res->index_field) : NULL;
    struct kf_map *map = NULL;
    const char *key = NULL;

    if (name && (!res->namespaced || w->prefix)) {
        map = &res->watch_by_key;
        key = res->namespaced ? kf_arena_sprintf(w->r->arena, "%s%s", w->prefix, name) : name;
    } else if (field && field[0]) {
        map = &res->watch_by_field;
        key = field;
    }
    struct bucket *b = map && key ? kf_map_get(map, key) : NULL;
    if (map && key && !b && (b = calloc(1, sizeof(*b)))) {
        kf_list_init(&b->head);
        if (kf_map_put(map, key, b) < 0) {
            free(b);
            b = NULL;
        }
    }
    if (!b) {
        kf_list_insert_tail(&res->watchers, &w->link);
        return;
    }
    w->map = map;
    w->map_key = key;
    b->n++;
    kf_list_insert_tail(&b->head, &w->link);
}

static struct ks_watch *watch_new(struct ks_req *r, struct ks_sel *sel)
{
    struct ks_watch *w = calloc(1, sizeof(*w));

    if (!w)
        return NULL;
    w->r = r;
    w->res = r->res;
    w->sel = sel;
    w->prefix = ks_req_prefix(r);
    w->pb = r->fmt == KS_FMT_PB;
    w->table = r->fmt == KS_FMT_TABLE;
    w->bookmarks = ks_param_bool(r, "allowWatchBookmarks") && !w->table;
    w->deadline_ev = evtimer_new(ks_base, on_deadline, w);
    w->bookmark_ev = evtimer_new(ks_base, on_bookmark, w);
    if (!w->deadline_ev || !w->bookmark_ev) {
        if (w->deadline_ev)
            event_free(w->deadline_ev);
        if (w->bookmark_ev)
            event_free(w->bookmark_ev);
        free(w);
        return NULL;
    }
    watch_place(w);
    kf_list_insert_tail(&all_watches, &w->all);
    r->res->n_watchers++;
    return w;
}

static void watch_start(struct ks_watch *w, uint64_t timeout_ms)
{
    struct ks_req *r = w->r;
    struct timeval tv = {(time_t)(timeout_ms / 1000), (suseconds_t)(timeout_ms % 1000 * 1000)};

    w->deadline_ms = kf_now_ms() + timeout_ms;
    evtimer_add(w->deadline_ev, &tv);
    if (w->bookmarks)
        arm_bookmark(w);
    ks_req_count(r, 200);
    ks_headers(r, w->pb ? KS_CT_PB ";stream=watch" : "application/json");
    px_response_start(r->px, 200);
    px_request_on_drain(r->px, on_drain, w);
    px_request_on_close(r->px, on_close, w);
    pump(w);
}

void ks_handle_watch(struct ks_req *r)
{
    const char *rvs = px_request_query(r->px, "resourceVersion");
    const char *sie = px_request_query(r->px, "sendInitialEvents");
    bool initial_events =
        sie ? ks_param_bool(r, "sendInitialEvents") : (!rvs || !rvs[0] || strcmp(rvs, "0") == 0);
    uint64_t rv, timeout_ms;
    struct ks_sel *sel;

    if (!ks_validate_list_opts(r, true) || ks_parse_rv(r, rvs, &rv) < 0 ||
        !watch_timeout(r, &timeout_ms))
        return;
    if (sie && initial_events && !ks_param_bool(r, "allowWatchBookmarks")) {
        ks_reply_error(r, 422, "Invalid",
                       "ListOptions.meta.k8s.io \"\" is invalid: "
                       "allowWatchBookmarks: Forbidden: sendInitialEvents "
                       "requires setting allowWatchBookmarks to true");
        return;
    }
    sel = ks_req_selector(r);
    if (!sel)
        return;
    if (initial_events && rv > ks_store.rv) {
        ks_wait_for_rv(r, rv, ks_handle_watch);
        return;
    }
    if (!initial_events && rv && rv < ks_store.compacted_rv) {
        reply_too_old(r, rv, r->fmt == KS_FMT_PB);
        return;
    }
    struct ks_watch *w = watch_new(r, sel);
    if (!w) {
        ks_reply_error(r, 500, "InternalError", "Internal error occurred: out of memory");
        return;
    }
    w->initial_end = sie != NULL && initial_events;
    if (initial_events) {
        w->state = W_INITIAL;
        const char *pinned =
            r->res->index_field ? ks_sel_exact_field(sel, r->res->index_field) : NULL;
        int rc = pinned ? ks_snapshot_take_indexed(&w->init, r->res, w->prefix, pinned)
                        : ks_snapshot_take(&w->init, r->res, w->prefix, 0);
        if (rc < 0) {
            watch_free(w);
            ks_reply_error(r, 500, "InternalError", "Internal error occurred: out of memory");
            return;
        }
        w->cursor = w->init.rv;
    } else {
        w->state = W_REPLAY;
        w->cursor = rv ? rv : ks_store.rv;
    }
    watch_start(w, timeout_ms);
}

uint64_t ks_watch_count(void)
{
    uint64_t n = 0;
    struct kf_list *pos;

    kf_list_for_each(pos, &all_watches) n++;
    return n;
}
