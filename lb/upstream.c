/*
 * The upstream pool of one worker: per-server request queues and
 * connections, per-request balancing, retries, and the health poll.
 *
 * A request picks its server with lb_pick() and waits in that server's
 * queue until a connection has room: the HTTP/2 connection with the fewest
 * streams below the server's SETTINGS_MAX_CONCURRENT_STREAMS, or an idle
 * HTTP/1.1 connection. When none has room, another connection is opened (up
 * to max_conns_per_server); an HTTP/2 stream that has to share a connection
 * while fewer than conns_per_server are open also opens one, so concurrent
 * streams spread over a few TCP connections. Queued requests are dispatched
 * from an event, never from inside a protocol engine's callbacks.
 *
 * Retries: a failed attempt is retried once, on a server the request has
 * not tried (lb_pick's exclude list), when no response byte has arrived and
 * either nothing of the request left kfront or it is idempotent and its body
 * can be sent again. The consumer sees nothing of the failed attempt.
 *
 * Health: every health_poll_ms the pool looks at its servers. A server that
 * turned DOWN loses its connections at once (streams end with -ECONNRESET,
 * or are retried if they may be, so clients re-watch elsewhere); one that is
 * merely no longer eligible (drain, disabled, weight 0) gets no new streams
 * and its connections close as their streams finish.
 */
#include "lb/upstream_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#define DEF_CONNS_PER_SERVER     2
#define DEF_MAX_CONNS_PER_SERVER 16
#define DEF_H1_IDLE              4
#define DEF_CONNECT_TIMEOUT_MS   3000
#define DEF_PING_INTERVAL_MS     10000
#define DEF_PING_TIMEOUT_MS      5000
#define DEF_IDLE_TIMEOUT_MS      60000
#define DEF_QUEUE_TIMEOUT_MS     10000
#define DEF_HEALTH_POLL_MS       200
#define DEF_STREAM_WINDOW        (256 * 1024)
#define DEF_H1_HIGH_WATER        (256 * 1024)
#define MAX_STREAM_WINDOW        ((1u << 31) - 1)

/* ---- servers ---------------------------------------------------------------------------- */

static struct up_server *server_find(struct lb_upstream *up, struct lb_server *s, bool create)
{
    struct kf_list *pos;
    struct up_server *us;

    kf_list_for_each(pos, &up->servers)
    {
        us = kf_container_of(pos, struct up_server, link);
        if (us->server == s)
            return us;
    }
    if (!create || !(us = calloc(1, sizeof(*us))))
        return NULL;
    us->up = up;
    us->server = s;
    lb_server_retain(s);
    kf_list_init(&us->conns);
    kf_list_init(&us->queue);
    us->was_eligible = true;
    us->was_down = lb_server_health(s) == LB_HEALTH_DOWN;
    us->empty_since_ms = kf_now_ms();
    kf_list_insert_tail(&up->servers, &us->link);
    return us;
}

static void server_free(struct up_server *us)
{
    kf_list_remove(&us->link);
    lb_server_release(us->server);
    free(us);
}

void up_req_enqueue(struct lb_ureq *req)
{
    struct up_server *us = req->us;

    kf_list_insert_tail(&us->queue, &req->link);
    us->n_queued++;
    req->queued_ms = kf_now_ms();
    atomic_fetch_add_explicit(&us->server->up.queued, 1, memory_order_relaxed);
}

void up_req_dequeue(struct lb_ureq *req)
{
    kf_list_remove(&req->link);
    req->us->n_queued--;
    atomic_fetch_sub_explicit(&req->server->up.queued, 1, memory_order_relaxed);
}

/* Fail every queued request of us (each may be retried on another server). */
static void fail_queue(struct up_server *us, int error)
{
    while (!kf_list_empty(&us->queue)) {
        struct lb_ureq *req = kf_container_of(us->queue.next, struct lb_ureq, link);
        up_req_dequeue(req);
        up_req_failed(req, error);
    }
}

void up_server_connect_failed(struct up_server *us, int error)
{
    /* With no other attempt under way nothing will serve the queue here:
     * send it elsewhere rather than reconnect in a loop. */
    if (us->n_pending == 0)
        fail_queue(us, error);
}

/* ---- dispatch ------------------------------------------------------------------------------ */

static struct up_conn *best_conn(struct up_server *us)
{
    struct up_conn *best = NULL;
    struct kf_list *pos;

    kf_list_for_each(pos, &us->conns)
    {
        struct up_conn *c = kf_container_of(pos, struct up_conn, link);
        if (c->state == UP_CONN_READY && c->ops->has_capacity(c) &&
            (!best || c->n_reqs < best->n_reqs))
            best = c;
    }
    return best;
}

static bool is_h1(const struct up_server *us)
{
    return us->proto == UP_PROTO_H1 || us->up->cfg.proto == LB_UPSTREAM_HTTP1;
}

/* Connections for what still waits: HTTP/1 one per request, HTTP/2 one at a time. */
static void open_more(struct up_server *us)
{
    uint32_t max = us->up->cfg.max_conns_per_server;

    if (is_h1(us)) {
        while (us->n_pending < us->n_queued && us->n_conns < max)
            if (!up_conn_open(us))
                return;
    } else if (us->n_pending == 0 && us->n_conns < max) {
        up_conn_open(us);
    }
}

/* A stream had to share a connection: open another while fewer than conns_per_server. */
static void spread(struct up_server *us, const struct up_conn *c)
{
    if (c->ops == &up_h2_ops && c->n_reqs > 1 && us->n_pending == 0 &&
        us->n_conns < us->up->cfg.conns_per_server)
        up_conn_open(us);
}

static void server_dispatch(struct up_server *us)
{
    while (!kf_list_empty(&us->queue)) {
        struct up_conn *c = best_conn(us);
        struct lb_ureq *req = kf_container_of(us->queue.next, struct lb_ureq, link);

        if (!c)
            break;
        up_req_dequeue(req);
        if (up_conn_submit(c, req) < 0) {
            /* back to the head of the queue; the queue timeout bounds the wait */
            kf_list_insert_tail(us->queue.next, &req->link);
            us->n_queued++;
            atomic_fetch_add_explicit(&us->server->up.queued, 1, memory_order_relaxed);
            if (c->ops->has_capacity(c))
                return;
            continue;
        }
        spread(us, c);
    }
    /* no eligibility check: a passively down server on trial is not eligible
     * right after lb_pick chose it, and its trial request must still go out */
    if (us->n_queued)
        open_more(us);
}

static void reap(struct lb_upstream *up)
{
    while (!kf_list_empty(&up->reap)) {
        struct up_conn *c = kf_container_of(up->reap.next, struct up_conn, link);
        kf_list_remove(&c->link);
        up_conn_free(c);
    }
}

static void dispatch_cb(evutil_socket_t fd KF_UNUSED, short what KF_UNUSED, void *arg)
{
    struct lb_upstream *up = arg;
    struct kf_list *pos, *tmp;

    reap(up);
    kf_list_for_each_safe(pos, tmp, &up->servers)
    {
        server_dispatch(kf_container_of(pos, struct up_server, link));
    }
    reap(up); /* what the dispatch closed */
}

void up_schedule_dispatch(struct lb_upstream *up)
{
    if (!up->freeing)
        event_active(up->dispatch_ev, EV_TIMEOUT, 1);
}

/* ---- retries ------------------------------------------------------------------------------ */

static bool may_retry(const struct lb_ureq *req)
{
    if (req->retried || req->cancelled || (req->state != UREQ_SENT && req->state != UREQ_QUEUED))
        return false;
    if (!req->wire)
        return true; /* nothing of it left kfront: safe for any method */
    return req->idempotent && req->body_taken == 0;
}

void up_req_failed(struct lb_ureq *req, int error)
{
    struct lb_server *failed = req->server, *next;
    struct up_server *us;

    if (req->up->freeing || !may_retry(req) || !(next = lb_pick(req->pool, &failed, 1))) {
        up_req_end(req, error);
        return;
    }
    us = server_find(req->up, next, true);
    if (!us) {
        lb_server_conn_end(next);
        up_req_end(req, -ENOMEM);
        return;
    }
    kf_debug("lb", "upstream: retrying %s %s on %s after %s on %s", req->method, req->path,
             lb_server_label(next), strerror(-error), lb_server_label(failed));
    atomic_fetch_add_explicit(&failed->up.retries, 1, memory_order_relaxed);
    lb_server_conn_end(failed);
    req->server = next;
    req->us = us;
    req->retried = true;
    req->wire = false;
    req->stream_id = -1;
    up_req_reset_headers(req);
    if (req->state != UREQ_QUEUED)
        up_req_set_state(req, UREQ_QUEUED);
    up_req_enqueue(req);
    up_schedule_dispatch(req->up);
}

/* ---- the health poll ---------------------------------------------------------------------------
 */

static void fail_conns(struct up_server *us, int error, const char *why)
{
    while (!kf_list_empty(&us->conns)) {
        struct up_conn *c = kf_container_of(us->conns.next, struct up_conn, link);
        up_conn_fail(c, error, why);
    }
}

/* No new streams; connections close as their streams end (pending ones at once). */
static void drain_conns(struct up_server *us)
{
    struct kf_list *pos, *tmp;

    kf_list_for_each_safe(pos, tmp, &us->conns)
    {
        up_conn_drain(kf_container_of(pos, struct up_conn, link));
    }
}

static void poll_server(struct up_server *us, uint64_t now)
{
    bool down = lb_server_health(us->server) == LB_HEALTH_DOWN;
    bool eligible = lb_server_eligible(us->server);

    if (down && !us->was_down) {
        kf_info("lb", "upstream %s is down: closing %zu connection%s", lb_server_label(us->server),
                us->n_conns, us->n_conns == 1 ? "" : "s");
        fail_conns(us, -ECONNRESET, "server is down");
        fail_queue(us, -ECONNRESET);
    } else if (!down && !eligible && us->was_eligible) {
        drain_conns(us);
        fail_queue(us, -ECONNRESET);
    }
    us->was_down = down;
    us->was_eligible = eligible;
    while (!kf_list_empty(&us->queue)) {
        struct lb_ureq *req = kf_container_of(us->queue.next, struct lb_ureq, link);
        if (now < req->queued_ms + us->up->cfg.queue_timeout_ms)
            break; /* the queue is in arrival order */
        up_req_dequeue(req);
        up_req_failed(req, -ETIMEDOUT);
    }
}

static void tick_cb(evutil_socket_t fd KF_UNUSED, short what KF_UNUSED, void *arg)
{
    struct lb_upstream *up = arg;
    struct kf_list *pos, *tmp;
    uint64_t now = kf_now_ms();

    kf_list_for_each_safe(pos, tmp, &up->servers)
    {
        poll_server(kf_container_of(pos, struct up_server, link), now);
    }
    reap(up); /* closed connections point at their up_server */
    kf_list_for_each_safe(pos, tmp, &up->servers)
    {
        struct up_server *us = kf_container_of(pos, struct up_server, link);
        /* forget servers unused for a while: a reload may have removed them */
        if (us->n_conns == 0 && us->n_queued == 0 &&
            now >= us->empty_since_ms + up->cfg.idle_timeout_ms)
            server_free(us);
    }
}

/* ---- the upstream ------------------------------------------------------------------------------
 */

static uint32_t or_default(uint32_t value, uint32_t def)
{
    return value ? value : def;
}

static void fill_defaults(struct lb_upstream_config *c)
{
    c->conns_per_server = or_default(c->conns_per_server, DEF_CONNS_PER_SERVER);
    c->max_conns_per_server = or_default(c->max_conns_per_server, DEF_MAX_CONNS_PER_SERVER);
    if (c->max_conns_per_server < c->conns_per_server)
        c->max_conns_per_server = c->conns_per_server;
    c->h1_idle_per_server = or_default(c->h1_idle_per_server, DEF_H1_IDLE);
    c->connect_timeout_ms = or_default(c->connect_timeout_ms, DEF_CONNECT_TIMEOUT_MS);
    c->ping_interval_ms = or_default(c->ping_interval_ms, DEF_PING_INTERVAL_MS);
    c->ping_timeout_ms = or_default(c->ping_timeout_ms, DEF_PING_TIMEOUT_MS);
    c->idle_timeout_ms = or_default(c->idle_timeout_ms, DEF_IDLE_TIMEOUT_MS);
    c->queue_timeout_ms = or_default(c->queue_timeout_ms, DEF_QUEUE_TIMEOUT_MS);
    c->health_poll_ms = or_default(c->health_poll_ms, DEF_HEALTH_POLL_MS);
    c->stream_window = or_default(c->stream_window, DEF_STREAM_WINDOW);
    if (c->stream_window > MAX_STREAM_WINDOW)
        c->stream_window = MAX_STREAM_WINDOW;
    c->h1_high_water = or_default(c->h1_high_water, DEF_H1_HIGH_WATER);
}

struct lb_upstream *lb_upstream_new(struct event_base *base, const struct lb_upstream_config *cfg)
{
    struct lb_upstream *up;
    struct timeval tv;

    if (!base || !cfg || cfg->proto > LB_UPSTREAM_HTTP1 || !(up = calloc(1, sizeof(*up))))
        return NULL;
    up->base = base;
    up->cfg = *cfg;
    fill_defaults(&up->cfg);
    kf_list_init(&up->servers);
    kf_list_init(&up->reap);
    up->cfg.server_name = cfg->server_name ? strdup(cfg->server_name) : NULL;
    up->tick = event_new(base, -1, EV_PERSIST, tick_cb, up);
    up->dispatch_ev = event_new(base, -1, 0, dispatch_cb, up);
    if ((cfg->server_name && !up->cfg.server_name) || !up->tick || !up->dispatch_ev) {
        up->cfg.tls = NULL;
        lb_upstream_free(up);
        return NULL;
    }
    if (up->cfg.tls)
        SSL_CTX_up_ref(up->cfg.tls);
    tv.tv_sec = up->cfg.health_poll_ms / 1000;
    tv.tv_usec = (suseconds_t)(up->cfg.health_poll_ms % 1000) * 1000;
    event_add(up->tick, &tv);
    return up;
}

void lb_upstream_free(struct lb_upstream *up)
{
    if (!up)
        return;
    up->freeing = true; /* no retries, no dispatch: everything ends now */
    while (!kf_list_empty(&up->servers)) {
        struct up_server *us = kf_container_of(up->servers.next, struct up_server, link);
        fail_conns(us, -ESHUTDOWN, "upstream pool freed");
        fail_queue(us, -ESHUTDOWN);
        reap(up);
        server_free(us);
    }
    if (up->tick)
        event_free(up->tick);
    if (up->dispatch_ev)
        event_free(up->dispatch_ev);
    SSL_CTX_free(up->cfg.tls);
    free((char *)up->cfg.server_name);
    free(up);
}

int lb_ureq_start(struct lb_upstream *up, struct lb_pool *pool, const struct lb_ureq_spec *spec,
                  const struct lb_ureq_callbacks *cbs, void *arg, struct lb_ureq **out)
{
    struct lb_ureq *req;
    int rc;

    if (!up || !out || up->freeing)
        return -EINVAL;
    rc = up_req_new(up, pool, spec, cbs, arg, &req);
    if (rc < 0)
        return rc;
    req->server = lb_pick(pool, NULL, 0);
    if (!req->server) {
        up_req_free(req);
        return -EHOSTUNREACH;
    }
    req->us = server_find(up, req->server, true);
    if (!req->us) {
        up_req_free(req);
        return -ENOMEM;
    }
    up_req_enqueue(req);
    server_dispatch(req->us); /* no callback can run from here: see the file comment */
    *out = req;
    return 0;
}
