/*
 * One upstream connection's transport: a non-blocking TCP connect on a raw
 * socket, then a bufferevent (plain, or OpenSSL with ALPN) that the protocol
 * (upstream_h1.c / upstream_h2.c) reads and writes.
 *
 *   CONNECTING -> TLS -> PREFACE -> READY -> DRAINING -> CLOSED
 *        |          `------------------^        (any state may end in CLOSED)
 *        `--> (plaintext) PREFACE or READY
 *
 * One timer serves the connect deadline (TCP, TLS and the server's first
 * SETTINGS must all happen within connect_timeout_ms), the protocol's PINGs
 * and the idle timeout. The connect itself is done by hand, not by
 * bufferevent_socket_connect, so that the TCP connect time and a TLS failure
 * are told apart in passive health reports and logs.
 */
#include "lb/upstream_internal.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

/* Dead peers on quiet HTTP/1 connections: what ARCHITECTURE.md gives every socket. */
#define KEEPALIVE_IDLE_S  30
#define KEEPALIVE_INTVL_S 10
#define KEEPALIVE_COUNT   3

/* Deferred callbacks: no bufferevent callback ever runs inside a call that
 * wrote to it (lb_ureq_start submitting a request, a consumer's consume). */
#define BEV_OPTS (BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS)

static const char *const conn_state_names[] = {
    [UP_CONN_CONNECTING] = "connecting", [UP_CONN_TLS] = "tls handshake",
    [UP_CONN_PREFACE] = "preface",       [UP_CONN_READY] = "ready",
    [UP_CONN_DRAINING] = "draining",     [UP_CONN_CLOSED] = "closed",
};

#define FROM(s) (1u << (s))
static const unsigned legal_from[] = {
    [UP_CONN_CONNECTING] = 0,
    [UP_CONN_TLS] = FROM(UP_CONN_CONNECTING),
    [UP_CONN_PREFACE] = FROM(UP_CONN_CONNECTING) | FROM(UP_CONN_TLS),
    [UP_CONN_READY] = FROM(UP_CONN_CONNECTING) | FROM(UP_CONN_TLS) | FROM(UP_CONN_PREFACE),
    [UP_CONN_DRAINING] = FROM(UP_CONN_READY),
    [UP_CONN_CLOSED] = FROM(UP_CONN_CONNECTING) | FROM(UP_CONN_TLS) | FROM(UP_CONN_PREFACE) |
                       FROM(UP_CONN_READY) | FROM(UP_CONN_DRAINING),
};

static bool pending(enum up_conn_state s)
{
    return s < UP_CONN_READY;
}

void up_conn_set_state(struct up_conn *c, enum up_conn_state next)
{
    KF_BUG_ON(!(legal_from[next] & FROM(c->state)));
    kf_debug("lb", "upstream %s %s: %s -> %s", lb_server_label(c->us->server),
             c->ops ? c->ops->name : "-", conn_state_names[c->state], conn_state_names[next]);
    if (pending(c->state) && !pending(next))
        c->us->n_pending--;
    c->state = next;
}

/* ---- timers and deferred work ------------------------------------------------------ */

static uint64_t earliest(uint64_t a, uint64_t b)
{
    return !a ? b : !b ? a : a < b ? a : b;
}

void up_conn_arm_timer(struct up_conn *c)
{
    uint64_t now = kf_now_ms(), next = 0;

    if (c->state == UP_CONN_CLOSED)
        return;
    if (c->pending_error || pending(c->state)) {
        next = c->pending_error ? now : c->deadline_ms;
    } else {
        if (c->ops->deadline)
            next = c->ops->deadline(c);
        if (c->n_reqs == 0)
            next = earliest(next, c->idle_since_ms + c->up->cfg.idle_timeout_ms);
    }
    if (!next) {
        evtimer_del(c->timer);
        return;
    }
    uint64_t ms = next > now ? next - now : 0;
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(c->timer, &tv);
}

static void timer_cb(evutil_socket_t fd KF_UNUSED, short what KF_UNUSED, void *arg)
{
    struct up_conn *c = arg;
    uint64_t now = kf_now_ms();

    if (c->state == UP_CONN_CLOSED)
        return;
    if (c->pending_error) {
        up_conn_fail(c, c->pending_error, c->error);
        return;
    }
    if (pending(c->state) && now >= c->deadline_ms) {
        snprintf(c->error, sizeof(c->error), "connect timeout after %u ms (%s)",
                 c->up->cfg.connect_timeout_ms, conn_state_names[c->state]);
        up_conn_fail(c, -ETIMEDOUT, c->error);
        return;
    }
    if (!pending(c->state) && c->n_reqs == 0 &&
        now >= c->idle_since_ms + c->up->cfg.idle_timeout_ms) {
        up_conn_close(c);
        return;
    }
    if (!pending(c->state) && c->ops->tick)
        c->ops->tick(c, now);
    up_conn_arm_timer(c);
}

static void kick_cb(evutil_socket_t fd KF_UNUSED, short what KF_UNUSED, void *arg)
{
    struct up_conn *c = arg;

    c->kick_queued = false;
    if (c->state != UP_CONN_CLOSED && c->ops)
        c->ops->flush(c);
}

void up_conn_kick(struct up_conn *c)
{
    if (c->state != UP_CONN_CLOSED && !c->kick_queued) {
        c->kick_queued = true;
        event_active(c->kick, EV_TIMEOUT, 1);
    }
}

/* A failure found synchronously is reported from the loop, never to the caller's stack. */
static void defer_error(struct up_conn *c, int error, const char *what)
{
    snprintf(c->error, sizeof(c->error), "%s: %s", what, strerror(-error));
    c->pending_error = error;
    event_active(c->timer, EV_TIMEOUT, 1);
}

/* ---- I/O ---------------------------------------------------------------------------- */

struct evbuffer *up_conn_input(struct up_conn *c)
{
    return bufferevent_get_input(c->bev);
}

size_t up_conn_output_len(struct up_conn *c)
{
    return evbuffer_get_length(bufferevent_get_output(c->bev));
}

int up_conn_write(struct up_conn *c, const void *data, size_t len)
{
    if (bufferevent_write(c->bev, data, len) < 0)
        return -ENOMEM;
    lb_server_add_bytes(c->us->server, len, 0);
    return 0;
}

void up_conn_send_now(struct up_conn *c)
{
    if (c->bev)
        kf_bev_send_now(c->bev, bufferevent_openssl_get_ssl(c->bev) != NULL);
}

int up_conn_write_buffer(struct up_conn *c, struct evbuffer *buf)
{
    size_t len = evbuffer_get_length(buf);

    if (bufferevent_write_buffer(c->bev, buf) < 0)
        return -ENOMEM;
    lb_server_add_bytes(c->us->server, len, 0);
    return 0;
}

void up_conn_drain_input(struct up_conn *c, size_t n)
{
    evbuffer_drain(bufferevent_get_input(c->bev), n);
    lb_server_add_bytes(c->us->server, 0, n);
}

static void read_cb(struct bufferevent *bev KF_UNUSED, void *arg)
{
    struct up_conn *c = arg;

    c->last_recv_ms = kf_now_ms();
    if (c->state != UP_CONN_CLOSED && c->ops)
        c->ops->read(c);
}

/* The output drained: the protocol may have held frames or body bytes back. */
static void write_cb(struct bufferevent *bev KF_UNUSED, void *arg)
{
    struct up_conn *c = arg;

    if (c->state != UP_CONN_CLOSED && c->ops)
        c->ops->flush(c);
}

/* ---- protocol start --------------------------------------------------------------- */

static void start_protocol(struct up_conn *c, enum up_proto proto)
{
    struct lb_up_counters *k = &c->us->server->up;
    int idx = proto == UP_PROTO_H2 ? LB_UP_H2 : LB_UP_H1;

    c->ops = proto == UP_PROTO_H2 ? &up_h2_ops : &up_h1_ops;
    c->us->proto = proto;
    c->us->tls_warned = false;
    c->counted = true;
    atomic_fetch_add_explicit(&k->conns_open[idx], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&k->conns_total[idx], 1, memory_order_relaxed);
    c->last_recv_ms = kf_now_ms();
    int rc = c->ops->init(c);
    if (rc < 0)
        up_conn_fail(c, rc, "protocol setup failed");
}

static enum up_proto plain_proto(const struct lb_upstream *up)
{
    return up->cfg.proto == LB_UPSTREAM_HTTP1 ? UP_PROTO_H1 : UP_PROTO_H2;
}

/* What the server chose with ALPN; no ALPN at all means HTTP/1.1. */
static int alpn_proto(struct up_conn *c, enum up_proto *proto)
{
    const unsigned char *p = NULL;
    unsigned len = 0;

    SSL_get0_alpn_selected(bufferevent_openssl_get_ssl(c->bev), &p, &len);
    *proto = len == 2 && memcmp(p, "h2", 2) == 0 ? UP_PROTO_H2 : UP_PROTO_H1;
    if (*proto == UP_PROTO_H1 && c->up->cfg.proto == LB_UPSTREAM_H2) {
        snprintf(c->error, sizeof(c->error), "tls: server did not select h2 with ALPN");
        return -EPROTO;
    }
    return 0;
}

static void tls_reason(struct up_conn *c)
{
    SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
    long verify = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    unsigned long e = bufferevent_get_openssl_error(c->bev);
    int sock_err = EVUTIL_SOCKET_ERROR();
    char buf[120];

    if (verify != X509_V_OK) {
        snprintf(c->error, sizeof(c->error), "tls: certificate verify failed: %s",
                 X509_verify_cert_error_string(verify));
    } else if (e) {
        ERR_error_string_n(e, buf, sizeof(buf));
        snprintf(c->error, sizeof(c->error), "tls: %s", buf);
    } else {
        snprintf(c->error, sizeof(c->error), "tls: %s",
                 sock_err ? strerror(sock_err) : "connection closed during the handshake");
    }
    while (bufferevent_get_openssl_error(c->bev))
        ;
}

static void event_cb(struct bufferevent *bev KF_UNUSED, short what, void *arg)
{
    struct up_conn *c = arg;
    enum up_proto proto;

    if (c->state == UP_CONN_CLOSED)
        return;
    if (what & BEV_EVENT_CONNECTED) {
        if (alpn_proto(c, &proto) < 0)
            up_conn_fail(c, -EPROTO, c->error);
        else
            start_protocol(c, proto);
        return;
    }
    if (c->state == UP_CONN_TLS) {
        tls_reason(c);
        up_conn_fail(c, -EPROTO, c->error);
        return;
    }
    if ((what & BEV_EVENT_EOF) && c->ops->eof && c->ops->eof(c))
        return;
    if (c->n_reqs == 0 && !pending(c->state)) {
        up_conn_close(c); /* an idle connection the server closed: nothing lost */
        return;
    }
    int err = EVUTIL_SOCKET_ERROR();
    snprintf(c->error, sizeof(c->error), "%s",
             (what & BEV_EVENT_EOF) || !err ? "connection closed by the server" : strerror(err));
    up_conn_fail(c, -ECONNRESET, c->error);
}

/* ---- connect ---------------------------------------------------------------------- */

static int tls_begin(struct up_conn *c)
{
    static const unsigned char alpn_auto[] = "\x02h2\x08http/1.1";
    static const unsigned char alpn_h2[] = "\x02h2", alpn_h1[] = "\x08http/1.1";
    const struct lb_upstream *up = c->up;
    const char *name = up->cfg.server_name ? up->cfg.server_name : c->us->server->host;
    bool verify = SSL_CTX_get_verify_mode(up->cfg.tls) != SSL_VERIFY_NONE;
    const unsigned char *alpn = up->cfg.proto == LB_UPSTREAM_H2      ? alpn_h2
                                : up->cfg.proto == LB_UPSTREAM_HTTP1 ? alpn_h1
                                                                     : alpn_auto;
    SSL *ssl = SSL_new(up->cfg.tls);

    ERR_clear_error();
    if (!ssl || (name && lb_tls_set_peer_name(ssl, name, verify) < 0) ||
        SSL_set_alpn_protos(ssl, alpn, (unsigned)strlen((const char *)alpn)) != 0) {
        SSL_free(ssl);
        return -EINVAL;
    }
    c->bev =
        bufferevent_openssl_socket_new(up->base, c->fd, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPTS);
    if (!c->bev) {
        SSL_free(ssl);
        return -ENOMEM;
    }
    c->fd = -1; /* the bufferevent owns it */
    bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
    up_conn_set_state(c, UP_CONN_TLS);
    return 0;
}

static void transport_up(struct up_conn *c)
{
    int rc = 0;

    c->connect_us = kf_now_us() - c->started_us;
    if (c->up->cfg.tls) {
        rc = tls_begin(c);
    } else {
        c->bev = bufferevent_socket_new(c->up->base, c->fd, BEV_OPTS);
        rc = c->bev ? 0 : -ENOMEM;
        if (c->bev)
            c->fd = -1;
    }
    if (rc < 0) {
        up_conn_fail(c, rc, rc == -ENOMEM ? "out of memory" : "tls setup failed");
        return;
    }
    bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    if (!c->up->cfg.tls)
        start_protocol(c, plain_proto(c->up));
}

static void connect_cb(evutil_socket_t fd, short what KF_UNUSED, void *arg)
{
    struct up_conn *c = arg;
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err) {
        snprintf(c->error, sizeof(c->error), "connect: %s", strerror(err));
        up_conn_fail(c, -err, c->error);
        return;
    }
    transport_up(c);
}

static void tune_socket(int fd)
{
    int one = 1, idle = KEEPALIVE_IDLE_S, intvl = KEEPALIVE_INTVL_S, cnt = KEEPALIVE_COUNT;

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

static void start_connect(struct up_conn *c)
{
    socklen_t len;
    const struct sockaddr *sa = lb_server_addr(c->us->server, &len);

    c->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        defer_error(c, -errno, "socket");
        return;
    }
    tune_socket(c->fd);
    /* A loopback connect may finish (or be refused) at once: either way the
     * outcome is read from the loop, after the caller's stack is gone. */
    if (connect(c->fd, sa, len) < 0 && errno != EINPROGRESS) {
        defer_error(c, -errno, "connect");
        return;
    }
    event_assign(c->io, c->up->base, c->fd, EV_WRITE, connect_cb, c);
    event_add(c->io, NULL);
}

struct up_conn *up_conn_open(struct up_server *us)
{
    struct lb_upstream *up = us->up;
    struct up_conn *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    c->fd = -1;
    c->us = us;
    c->up = up;
    kf_list_init(&c->reqs);
    c->timer = evtimer_new(up->base, timer_cb, c);
    c->kick = event_new(up->base, -1, 0, kick_cb, c);
    c->io = event_new(up->base, -1, 0, connect_cb, c);
    if (!c->timer || !c->kick || !c->io) {
        up_conn_free(c);
        return NULL;
    }
    kf_list_insert_tail(&us->conns, &c->link);
    us->n_conns++;
    us->n_pending++;
    c->started_us = kf_now_us();
    c->deadline_ms = kf_now_ms() + up->cfg.connect_timeout_ms;
    up_conn_arm_timer(c);
    start_connect(c);
    return c;
}

/* ---- state changes ------------------------------------------------------------------- */

void up_conn_ready(struct up_conn *c)
{
    /* Only now is the server known to serve: a peer that accepts TCP and never
     * finishes TLS or sends its SETTINGS counts as a failed connect. */
    lb_server_report_connect(c->us->server, true, c->connect_us);
    up_conn_set_state(c, UP_CONN_READY);
    c->idle_since_ms = kf_now_ms();
    up_conn_arm_timer(c);
    up_schedule_dispatch(c->up);
}

/* Off the server's list and onto the reaper's: nothing reaches it any more. */
static void retire(struct up_conn *c)
{
    struct up_server *us = c->us;

    up_conn_set_state(c, UP_CONN_CLOSED);
    us->n_conns--;
    if (us->n_conns == 0)
        us->empty_since_ms = kf_now_ms();
    event_del(c->io);
    evtimer_del(c->timer);
    event_del(c->kick);
    c->kick_queued = false;
    if (c->bev) {
        bufferevent_disable(c->bev, EV_READ | EV_WRITE);
        bufferevent_setcb(c->bev, NULL, NULL, NULL, NULL);
    }
    kf_list_remove(&c->link);
    kf_list_insert_tail(&c->up->reap, &c->link);
    up_schedule_dispatch(c->up); /* also runs the reaper */
}

void up_conn_close(struct up_conn *c)
{
    if (c->state == UP_CONN_CLOSED)
        return;
    KF_BUG_ON(c->n_reqs != 0);
    kf_debug("lb", "upstream %s: closing an idle connection", lb_server_label(c->us->server));
    retire(c);
}

void up_conn_drain(struct up_conn *c)
{
    if (c->state == UP_CONN_READY)
        up_conn_set_state(c, UP_CONN_DRAINING);
    if (c->n_reqs == 0 && c->state != UP_CONN_CLOSED)
        up_conn_close(c);
}

static void count_connect_failure(struct up_conn *c, const char *why)
{
    struct up_server *us = c->us;
    bool tls = c->state == UP_CONN_TLS;

    atomic_fetch_add_explicit(&us->server->up.connect_failures, 1, memory_order_relaxed);
    lb_server_report_connect(us->server, false, kf_now_us() - c->started_us);
    if (tls && !us->tls_warned) {
        us->tls_warned = true;
        kf_warn("lb", "upstream %s: %s", lb_server_label(us->server), why);
    } else {
        kf_debug("lb", "upstream %s: %s", lb_server_label(us->server), why);
    }
}

/* Once per failed connection: a connect failure feeds passive health. */
static void report_failure(struct up_conn *c, const char *why)
{
    if (c->up->freeing)
        return; /* shutting down is nobody's failure */
    if (pending(c->state)) {
        count_connect_failure(c, why);
        return;
    }
    kf_info("lb", "upstream %s %s connection failed with %zu stream%s: %s",
            lb_server_label(c->us->server), c->ops ? c->ops->name : "-", c->n_reqs,
            c->n_reqs == 1 ? "" : "s", why);
}

void up_conn_fail(struct up_conn *c, int error, const char *why)
{
    bool never_ready = pending(c->state);

    if (c->state == UP_CONN_CLOSED)
        return;
    report_failure(c, why);
    retire(c);
    /* Requests are taken one at a time: a callback may cancel the others. */
    while (!kf_list_empty(&c->reqs)) {
        struct lb_ureq *req = kf_container_of(c->reqs.next, struct lb_ureq, link);
        up_conn_detach(c, req, false);
        up_req_failed(req, error);
    }
    if (never_ready)
        up_server_connect_failed(c->us, error);
}

/* ---- requests on the connection ---------------------------------------------------------- */

static void count_stream(struct up_conn *c, int delta)
{
    struct lb_up_counters *k = &c->us->server->up;

    if (delta > 0)
        atomic_fetch_add_explicit(&k->streams_open, 1, memory_order_relaxed);
    else
        atomic_fetch_sub_explicit(&k->streams_open, 1, memory_order_relaxed);
}

int up_conn_submit(struct up_conn *c, struct lb_ureq *req)
{
    int rc;

    kf_list_insert_tail(&c->reqs, &req->link);
    c->n_reqs++;
    req->conn = c;
    up_req_set_state(req, UREQ_SENT);
    count_stream(c, 1);
    rc = c->ops->submit(c, req);
    if (rc < 0) {
        kf_list_remove(&req->link);
        c->n_reqs--;
        req->conn = NULL;
        up_req_set_state(req, UREQ_QUEUED);
        count_stream(c, -1);
        return rc;
    }
    atomic_fetch_add_explicit(&c->us->server->up.streams_total, 1, memory_order_relaxed);
    if (c->n_reqs == 1)
        up_conn_arm_timer(c);
    return 0;
}

void up_conn_detach(struct up_conn *c, struct lb_ureq *req, bool cancel)
{
    kf_list_remove(&req->link);
    c->n_reqs--;
    req->conn = NULL;
    count_stream(c, -1);
    c->ops->detach(c, req, cancel);
    if (c->state == UP_CONN_CLOSED || c->n_reqs > 0) {
        if (c->state == UP_CONN_READY && c->us->n_queued)
            up_schedule_dispatch(c->up);
        return;
    }
    c->idle_since_ms = kf_now_ms();
    if (c->state == UP_CONN_DRAINING) {
        up_conn_close(c);
        return;
    }
    up_conn_arm_timer(c);
    if (c->us->n_queued)
        up_schedule_dispatch(c->up);
}

struct lb_ureq *up_conn_find(struct up_conn *c, int32_t stream_id)
{
    struct kf_list *pos;

    kf_list_for_each(pos, &c->reqs)
    {
        struct lb_ureq *req = kf_container_of(pos, struct lb_ureq, link);
        if (req->stream_id == stream_id)
            return req;
    }
    return NULL;
}

void up_conn_free(struct up_conn *c)
{
    if (c->ops)
        c->ops->destroy(c);
    if (c->bev)
        bufferevent_free(c->bev);
    else if (c->fd >= 0)
        close(c->fd);
    if (c->counted) {
        int idx = c->ops == &up_h2_ops ? LB_UP_H2 : LB_UP_H1;
        atomic_fetch_sub_explicit(&c->us->server->up.conns_open[idx], 1, memory_order_relaxed);
    }
    if (c->io)
        event_free(c->io);
    if (c->timer)
        event_free(c->timer);
    if (c->kick)
        event_free(c->kick);
    free(c);
}
