/*
 * Server, per-loop registry, accepting (TLS handshake, ALPN, h2c preface
 * sniffing), the protocol-neutral connection lifecycle, and the listener.
 */
#include "proxy/http/http_internal.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/ssl.h>

static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define H2_PREFACE_LEN (sizeof(h2_preface) - 1)

static _Atomic uint64_t next_conn_id = 1;

/* ---- server --------------------------------------------------------------- */

static void config_defaults(struct px_server_config *c)
{
    if (!c->max_header_bytes)
        c->max_header_bytes = 64 * 1024;
    if (!c->max_body_bytes)
        c->max_body_bytes = 3 * 1024 * 1024;
    if (!c->max_concurrent_streams)
        c->max_concurrent_streams = 100;
    if (!c->header_timeout_ms)
        c->header_timeout_ms = 10000;
    if (!c->idle_timeout_ms)
        c->idle_timeout_ms = 90000;
    if (!c->body_timeout_ms)
        c->body_timeout_ms = 60000;
    if (!c->write_timeout_ms)
        c->write_timeout_ms = 60000;
    if (!c->low_water_bytes)
        c->low_water_bytes = 64 * 1024;
}

struct px_server *px_server_new(const struct px_server_config *cfg)
{
    struct px_server *s;

    if (!cfg->handler || !(cfg->goaway_chance >= 0 && cfg->goaway_chance <= 0.02)) {
        kf_err(PX_MOD, "server config: handler required, goaway_chance must be in [0, 0.02]");
        return NULL;
    }
    s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->cfg = *cfg;
    config_defaults(&s->cfg);
    s->cfg.tls = NULL;
    pthread_mutex_init(&s->lock, NULL);
    kf_list_init(&s->loops);
    if (cfg->tls)
        px_server_set_tls(s, cfg->tls);
    return s;
}

void px_server_set_tls(struct px_server *server, struct ssl_ctx_st *ctx)
{
    SSL_CTX *old;

    if (ctx)
        SSL_CTX_up_ref(ctx);
    pthread_mutex_lock(&server->lock);
    old = server->tls;
    server->tls = ctx;
    pthread_mutex_unlock(&server->lock);
    SSL_CTX_free(old);
}

static SSL_CTX *server_tls_get(struct px_server *server)
{
    SSL_CTX *ctx;

    pthread_mutex_lock(&server->lock);
    ctx = server->tls;
    if (ctx)
        SSL_CTX_up_ref(ctx);
    pthread_mutex_unlock(&server->lock);
    return ctx;
}

struct px_loop *px_loop_get(struct px_server *server, struct event_base *base)
{
    struct kf_list *pos;
    struct px_loop *loop = NULL;

    pthread_mutex_lock(&server->lock);
    kf_list_for_each(pos, &server->loops)
    {
        struct px_loop *l = kf_container_of(pos, struct px_loop, node);

        if (l->base == base) {
            loop = l;
            break;
        }
    }
    if (!loop && (loop = calloc(1, sizeof(*loop)))) {
        loop->server = server;
        loop->base = base;
        kf_list_init(&loop->conns);
        kf_list_init(&loop->pending);
        kf_list_insert_tail(&server->loops, &loop->node);
    }
    pthread_mutex_unlock(&server->lock);
    return loop;
}

/* Runs on the loop's own thread. */
static void loop_shutdown_cb(evutil_socket_t fd, short what, void *arg)
{
    struct px_loop *loop = arg;
    struct kf_list *pos, *tmp;

    (void)fd;
    (void)what;
    kf_list_for_each_safe(pos, tmp, &loop->conns)
    {
        px_conn_goaway(kf_container_of(pos, struct px_conn, node));
    }
}

void px_server_shutdown(struct px_server *server)
{
    struct kf_list *pos;
    static const struct timeval now = {0, 0};

    atomic_store(&server->shutting_down, true);
    pthread_mutex_lock(&server->lock);
    kf_list_for_each(pos, &server->loops)
    {
        struct px_loop *l = kf_container_of(pos, struct px_loop, node);

        if (event_base_once(l->base, -1, EV_TIMEOUT, loop_shutdown_cb, l, &now) < 0)
            kf_warn(PX_MOD, "shutdown: cannot schedule the drain on a loop");
    }
    pthread_mutex_unlock(&server->lock);
}

struct px_accepting;
static void accepting_free(struct px_accepting *a);

void px_server_free(struct px_server *server)
{
    struct kf_list *pos, *tmp, *c, *ctmp;

    if (!server)
        return;
    kf_list_for_each_safe(pos, tmp, &server->loops)
    {
        struct px_loop *l = kf_container_of(pos, struct px_loop, node);

        kf_list_for_each_safe(c, ctmp, &l->conns)
        {
            px_conn_close(kf_container_of(c, struct px_conn, node), "server freed");
        }
        while (!kf_list_empty(&l->pending))
            accepting_free((struct px_accepting *)(void *)l->pending.next);
        /* Deferred bufferevent callbacks hold references: let them run so the frees complete. */
        event_base_loop(l->base, EVLOOP_NONBLOCK);
        free(l);
    }
    SSL_CTX_free(server->tls);
    pthread_mutex_destroy(&server->lock);
    free(server);
}

void px_server_get_stats(const struct px_server *server, struct px_server_stats *out)
{
    const struct px_counters *c = &server->counters;

    out->conns_current = c->conns_current;
    out->conns_total = c->conns_total;
    out->conns_h1 = c->conns_h1;
    out->conns_h2 = c->conns_h2;
    out->streams_current = c->streams_current;
    out->requests_total = c->requests_total;
    out->tls_handshake_failures = c->tls_handshake_failures;
    out->protocol_errors = c->protocol_errors;
    out->body_too_large = c->body_too_large;
    out->timeouts = c->timeouts;
    out->goaways_sent = c->goaways_sent;
    out->client_resets = c->client_resets;
}

bool px_coin(double p)
{
    static _Thread_local uint64_t x;

    if (p <= 0)
        return false;
    if (!x)
        x = kf_now_us() ^ (uint64_t)(uintptr_t)&x ^ 0x9e3779b97f4a7c15ull;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return (double)(x >> 11) / (double)(1ull << 53) < p;
}

/* ---- accepting: handshake and protocol choice ---------------------------------- */

enum acc_state { ACC_HANDSHAKE, ACC_SNIFF };

struct px_accepting {
    struct kf_list node; /* first member: px_loop.pending */
    enum acc_state state;
    struct px_transport t;
    struct event *timer;
};

static void accepting_free(struct px_accepting *a)
{
    kf_list_remove(&a->node);
    if (a->timer)
        event_free(a->timer);
    if (a->t.bev)
        bufferevent_free(a->t.bev);
    px_tls_peer_free(a->t.tls_peer);
    free(a);
}

static void accepting_handover(struct px_accepting *a, bool h2)
{
    struct px_transport t = a->t;
    struct px_server *server = a->t.loop->server;
    int rc;

    a->t.bev = NULL;
    a->t.tls_peer = NULL;
    accepting_free(a);
    bufferevent_setcb(t.bev, NULL, NULL, NULL, NULL);
    if (atomic_load(&server->shutting_down)) {
        bufferevent_free(t.bev);
        px_tls_peer_free(t.tls_peer);
        return;
    }
    rc = h2 ? px_h2_start(&t) : px_h1_start(&t);
    if (rc < 0)
        kf_warn(PX_MOD, "cannot start %s connection: %s", h2 ? "h2" : "h1", strerror(-rc));
}

static void acc_sniff_cb(struct bufferevent *bev, void *arg)
{
    struct px_accepting *a = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    char buf[H2_PREFACE_LEN];
    size_t n = evbuffer_get_length(in);

    if (n > H2_PREFACE_LEN)
        n = H2_PREFACE_LEN;
    evbuffer_copyout(in, buf, n);
    if (memcmp(buf, h2_preface, n) != 0)
        accepting_handover(a, false);
    else if (n == H2_PREFACE_LEN)
        accepting_handover(a, !a->t.loop->server->cfg.disable_h2c);
}

static void acc_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct px_accepting *a = arg;
    struct px_server *server = a->t.loop->server;
    const unsigned char *proto = NULL;
    unsigned proto_len = 0;

    if ((what & BEV_EVENT_CONNECTED) && a->state == ACC_HANDSHAKE) {
        SSL *ssl = bufferevent_openssl_get_ssl(bev);

        SSL_get0_alpn_selected(ssl, &proto, &proto_len);
        a->t.tls_peer = px_tls_peer_get(bev);
        accepting_handover(a, proto_len == 2 && memcmp(proto, "h2", 2) == 0);
        return;
    }
    if (a->state == ACC_HANDSHAKE) {
        PX_INC(server, tls_handshake_failures);
        kf_debug(PX_MOD, "TLS handshake failed (events 0x%x, ssl error %lu)", (unsigned)what,
                 bufferevent_get_openssl_error(bev));
    }
    accepting_free(a);
}

static void acc_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct px_accepting *a = arg;

    (void)fd;
    (void)what;
    PX_INC(a->t.loop->server, timeouts);
    if (a->state == ACC_HANDSHAKE)
        PX_INC(a->t.loop->server, tls_handshake_failures);
    accepting_free(a);
}

static struct bufferevent *accept_bev(struct px_server *server, struct event_base *base, int fd)
{
    int opts = BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS;
    SSL_CTX *ctx = server_tls_get(server);
    struct bufferevent *bev;
    SSL *ssl;

    if (!ctx)
        return bufferevent_socket_new(base, fd, opts);
    ssl = SSL_new(ctx);
    SSL_CTX_free(ctx); /* the SSL holds its own reference */
    if (!ssl)
        return NULL;
    bev = bufferevent_openssl_socket_new(base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, opts);
    if (!bev)
        SSL_free(ssl);
    return bev;
}

int px_conn_accept(struct px_server *server, struct event_base *base, int fd,
                   const struct sockaddr *peer, socklen_t peer_len)
{
    struct px_loop *loop = atomic_load(&server->shutting_down) ? NULL : px_loop_get(server, base);
    struct px_accepting *a = loop ? calloc(1, sizeof(*a)) : NULL;
    int one = 1;
    struct timeval tv = {server->cfg.header_timeout_ms / 1000,
                         (server->cfg.header_timeout_ms % 1000) * 1000};

    if (!a) {
        close(fd);
        return loop ? -ENOMEM : atomic_load(&server->shutting_down) ? -ESHUTDOWN : -ENOMEM;
    }
    kf_list_init(&a->node);
    a->t.loop = loop;
    if (peer_len > sizeof(a->t.peer))
        peer_len = sizeof(a->t.peer);
    memcpy(&a->t.peer, peer, peer_len);
    a->t.peer_len = peer_len;
    evutil_make_socket_nonblocking(fd);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* watch events are small */
    a->t.bev = accept_bev(server, base, fd);
    a->timer = evtimer_new(base, acc_timeout_cb, a);
    if (!a->t.bev || !a->timer) {
        if (!a->t.bev)
            close(fd);
        accepting_free(a);
        return -ENOMEM;
    }
    a->t.tls = bufferevent_openssl_get_ssl(a->t.bev) != NULL;
    a->state = a->t.tls ? ACC_HANDSHAKE : ACC_SNIFF;
    bufferevent_setcb(a->t.bev, a->t.tls ? NULL : acc_sniff_cb, NULL, acc_event_cb, a);
    bufferevent_enable(a->t.bev, EV_READ | EV_WRITE);
    evtimer_add(a->timer, &tv);
    kf_list_insert_tail(&loop->pending, &a->node);
    return 0;
}

/* ---- connection ------------------------------------------------------------------ */

const char *const px_conn_state_name[] = {
    [PX_CONN_ACTIVE] = "active", [PX_CONN_DRAINING] = "draining", [PX_CONN_FLUSHING] = "flushing",
    [PX_CONN_LINGER] = "linger", [PX_CONN_CLOSED] = "closed",
};

static const unsigned conn_allowed[] = {
    [PX_CONN_ACTIVE] = 1u << PX_CONN_DRAINING | 1u << PX_CONN_FLUSHING | 1u << PX_CONN_CLOSED,
    [PX_CONN_DRAINING] = 1u << PX_CONN_FLUSHING | 1u << PX_CONN_CLOSED,
    [PX_CONN_FLUSHING] = 1u << PX_CONN_LINGER | 1u << PX_CONN_CLOSED,
    [PX_CONN_LINGER] = 1u << PX_CONN_CLOSED,
    [PX_CONN_CLOSED] = 0,
};

void px_conn_set_state(struct px_conn *c, enum px_conn_state next)
{
    KF_BUG_ON(!(conn_allowed[c->state] & (1u << next)));
    kf_debug(PX_MOD, "conn %llu %s: %s -> %s", (unsigned long long)c->id, c->ops->name,
             px_conn_state_name[c->state], px_conn_state_name[next]);
    c->state = next;
}

bool px_conn_open(const struct px_conn *c)
{
    return c->state == PX_CONN_ACTIVE || c->state == PX_CONN_DRAINING;
}

void px_conn_hold(struct px_conn *c)
{
    c->refs++;
}

void px_conn_put(struct px_conn *c)
{
    KF_BUG_ON(c->refs == 0);
    if (--c->refs)
        return;
    px_tls_peer_free(c->tls_peer);
    c->ops->destroy(c);
}

/* The burst of output is queued: send it now (core/bev.c says why). */
void px_conn_coalesce(struct px_conn *c)
{
    if (c->bev)
        kf_bev_send_now(c->bev, c->tls);
}

size_t px_conn_out_len(const struct px_conn *c)
{
    return c->bev ? evbuffer_get_length(bufferevent_get_output(c->bev)) : 0;
}

void px_conn_kick(struct px_conn *c)
{
    if (c->kick && !c->kick_queued) {
        c->kick_queued = true;
        event_active(c->kick, EV_TIMEOUT, 0);
    }
}

static void conn_timer_schedule(struct px_conn *c, uint64_t now, uint64_t at)
{
    uint64_t us = at > now ? at - now : 0;
    struct timeval tv = {(time_t)(us / 1000000), (suseconds_t)(us % 1000000)};

    c->timer_fires_us = at;
    evtimer_add(c->timer, &tv);
}

void px_conn_timer(struct px_conn *c, unsigned ms)
{
    uint64_t now, at;

    if (!c->timer)
        return;
    if (!ms) {
        c->timer_deadline_us = 0; /* a pending event finds nothing to do */
        return;
    }
    now = kf_now_us();
    at = now + (uint64_t)ms * 1000;
    c->timer_deadline_us = at;
    if (!c->timer_fires_us || c->timer_fires_us > at)
        conn_timer_schedule(c, now, at);
}

static void linger_start(struct px_conn *c)
{
    px_conn_set_state(c, PX_CONN_LINGER);
    /* Half-close so the client reads our last response before any RST. */
    shutdown(bufferevent_getfd(c->bev), SHUT_WR);
    evbuffer_drain(bufferevent_get_input(c->bev),
                   evbuffer_get_length(bufferevent_get_input(c->bev)));
    bufferevent_enable(c->bev, EV_READ);
    px_conn_timer(c, PX_LINGER_MS);
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
    struct px_conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);

    px_conn_hold(c);
    if (px_conn_open(c))
        c->ops->on_read(c);
    else
        evbuffer_drain(in, evbuffer_get_length(in)); /* flushing or lingering: discard */
    px_conn_put(c);
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
    struct px_conn *c = arg;

    (void)bev;
    px_conn_hold(c);
    if (c->state == PX_CONN_FLUSHING && px_conn_out_len(c) == 0)
        linger_start(c);
    else if (px_conn_open(c))
        c->ops->on_write(c);
    px_conn_put(c);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct px_conn *c = arg;

    (void)bev;
    if (what & BEV_EVENT_TIMEOUT) {
        PX_INC(c->server, timeouts);
        px_conn_close(c, "write timeout");
    } else if (c->state == PX_CONN_FLUSHING && (what & BEV_EVENT_EOF)) {
        return; /* the client stopped sending; our response may still go out */
    } else {
        px_conn_close(c, (what & BEV_EVENT_EOF) ? "client closed" : "socket error");
    }
}

static void conn_kick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct px_conn *c = arg;

    (void)fd;
    (void)what;
    c->kick_queued = false; /* kicks from on_kick run on the next iteration */
    px_conn_hold(c);
    if (px_conn_open(c))
        c->ops->on_kick(c);
    px_conn_put(c);
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct px_conn *c = arg;
    uint64_t now = kf_now_us();

    (void)fd;
    (void)what;
    c->timer_fires_us = 0;
    if (!c->timer_deadline_us)
        return; /* disarmed since */
    if (c->timer_deadline_us > now) {
        conn_timer_schedule(c, now, c->timer_deadline_us); /* moved later since */
        return;
    }
    c->timer_deadline_us = 0;
    px_conn_hold(c);
    if (c->state == PX_CONN_LINGER || c->state == PX_CONN_FLUSHING)
        px_conn_close(c, "linger done");
    else if (px_conn_open(c))
        c->ops->on_timeout(c);
    px_conn_put(c);
}

int px_conn_init(struct px_conn *c, const struct px_conn_ops *ops, struct px_transport *t)
{
    struct event_base *base = t->loop->base;
    struct px_server *server = t->loop->server;
    unsigned wt = server->cfg.write_timeout_ms;
    struct timeval wtv = {wt / 1000, (wt % 1000) * 1000};

    c->ops = ops;
    c->server = server;
    c->loop = t->loop;
    c->timer = evtimer_new(base, conn_timer_cb, c);
    c->kick = event_new(base, -1, 0, conn_kick_cb, c);
    if (!c->timer || !c->kick) {
        if (c->timer)
            event_free(c->timer);
        if (c->kick)
            event_free(c->kick);
        return -ENOMEM;
    }
    c->refs = 1;
    c->id = atomic_fetch_add(&next_conn_id, 1);
    c->bev = t->bev;
    memcpy(&c->peer, &t->peer, sizeof(c->peer));
    c->peer_len = t->peer_len;
    /* once per connection: each forwarded request appends it to X-Forwarded-For */
    kf_addr_host((const struct sockaddr *)&c->peer, c->peer_ip, sizeof(c->peer_ip));
    c->tls = t->tls;
    c->tls_peer = t->tls_peer;
    t->bev = NULL;
    t->tls_peer = NULL;
    kf_list_insert_tail(&t->loop->conns, &c->node);
    PX_INC(server, conns_current);
    PX_INC(server, conns_total);
    bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
    bufferevent_setwatermark(c->bev, EV_WRITE, server->cfg.low_water_bytes, 0);
    bufferevent_set_timeouts(c->bev, NULL, &wtv);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    return 0;
}

void px_conn_close(struct px_conn *c, const char *why)
{
    if (c->state == PX_CONN_CLOSED)
        return;
    px_conn_hold(c);
    kf_debug(PX_MOD, "conn %llu %s closing: %s", (unsigned long long)c->id, c->ops->name, why);
    px_conn_set_state(c, PX_CONN_CLOSED);
    c->ops->teardown(c); /* handlers see on_close; they may end their requests */
    if (c->bev)
        bufferevent_free(c->bev);
    c->bev = NULL;
    event_free(c->timer);
    event_free(c->kick);
    c->timer = c->kick = NULL;
    kf_list_remove(&c->node);
    PX_DEC(c->server, conns_current);
    px_conn_put(c); /* the transport's reference */
    px_conn_put(c);
}

void px_conn_finish(struct px_conn *c)
{
    if (!px_conn_open(c))
        return;
    px_conn_set_state(c, PX_CONN_FLUSHING);
    c->ops->teardown(c);
    px_conn_timer(c, c->server->cfg.write_timeout_ms);
    if (px_conn_out_len(c) == 0)
        linger_start(c);
}

struct bufferevent *px_conn_detach(struct px_conn *c)
{
    struct bufferevent *bev = c->bev;

    bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
    bufferevent_set_timeouts(bev, NULL, NULL);
    bufferevent_setwatermark(bev, EV_READ | EV_WRITE, 0, 0);
    c->bev = NULL;
    px_conn_close(c, "upgraded");
    return bev;
}

void px_conn_goaway(struct px_conn *conn)
{
    if (!px_conn_open(conn) || conn->goaway_requested)
        return;
    conn->goaway_requested = true;
    px_conn_set_state(conn, PX_CONN_DRAINING);
    conn->ops->goaway(conn);
}

/* ---- listener ---------------------------------------------------------------------- */

struct px_listener {
    struct evconnlistener *l;
    struct px_server *server;
    uint16_t port;
};

static void listener_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                        void *arg)
{
    struct px_listener *pl = arg;

    px_conn_accept(pl->server, evconnlistener_get_base(l), fd, sa, (socklen_t)len);
}

static void listener_error_cb(struct evconnlistener *l, void *arg)
{
    (void)l;
    (void)arg;
    kf_warn(PX_MOD, "accept failed: %s", strerror(errno));
}

/* kf_addr_parse refuses port 0, which listeners use for "any free port". */
static int listen_addr_parse(const char *addr, struct sockaddr_storage *ss, unsigned *len)
{
    size_t n = strlen(addr);
    char tmp[128];
    int rc;

    if (n < 2 || n >= sizeof(tmp) || strcmp(addr + n - 2, ":0") != 0)
        return kf_addr_parse(addr, ss, len);
    memcpy(tmp, addr, n + 1);
    tmp[n - 1] = '1';
    rc = kf_addr_parse(tmp, ss, len);
    if (rc == 0 && ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = 0;
    else if (rc == 0)
        ((struct sockaddr_in *)ss)->sin_port = 0;
    return rc;
}

struct px_listener *px_listen(struct event_base *base, struct px_server *server, const char *addr)
{
    struct sockaddr_storage ss;
    unsigned len = sizeof(ss);
    socklen_t blen = sizeof(ss);
    struct px_listener *pl = calloc(1, sizeof(*pl));

    if (!pl || listen_addr_parse(addr, &ss, &len) < 0) {
        kf_err(PX_MOD, "listen %s: %s", addr, pl ? "bad address" : "out of memory");
        free(pl);
        return NULL;
    }
    pl->server = server;
    pl->l =
        evconnlistener_new_bind(base, listener_cb, pl, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                                -1, (struct sockaddr *)&ss, (int)len);
    if (!pl->l) {
        kf_err(PX_MOD, "listen %s: %s", addr, strerror(errno));
        free(pl);
        return NULL;
    }
    evconnlistener_set_error_cb(pl->l, listener_error_cb);
    if (getsockname(evconnlistener_get_fd(pl->l), (struct sockaddr *)&ss, &blen) == 0)
        pl->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                  : ((struct sockaddr_in *)&ss)->sin_port);
    return pl;
}

uint16_t px_listener_port(const struct px_listener *listener)
{
    return listener->port;
}

void px_listener_free(struct px_listener *listener)
{
    if (!listener)
        return;
    evconnlistener_free(listener->l);
    free(listener);
}
