/*
 * The L4 tunnel: one client connection, one server connection, bytes copied
 * both ways through one buffer per direction, taken from the worker's free
 * list only while data is in flight (an idle watch holds no buffer).
 *
 * Tunnel states: CONNECTING (server connect in progress; client not read, the
 * kernel keeps what it sends) -> ESTABLISHED -> CLOSED. Each direction has
 * its own small state machine: READING (waiting for the source), WRITING
 * (buffered bytes wait for the destination), SHUT (source ended, destination
 * write side shut down). The tunnel ends when both directions are SHUT, on
 * any error, on a timeout, or when a drain deadline passes.
 */
#include "proxy/proxy_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PX_BUF_SIZE          (16 * 1024)
#define PX_MAX_FREE_BUFS     256
#define PX_READ_BUDGET       (256 * 1024) /* per wakeup, so one stream cannot starve the loop */
#define PX_MAX_CONNECT_TRIES 8

struct px_buf {
    struct px_buf *next;
    size_t off, len;
    char data[PX_BUF_SIZE];
};

enum tunnel_state {
    TUNNEL_CONNECTING,
    TUNNEL_ESTABLISHED,
    TUNNEL_CLOSED,
};

static const char *const tunnel_state_name[] = {"connecting", "established", "closed"};

enum dir_state {
    DIR_READING,
    DIR_WRITING,
    DIR_SHUT,
};

struct px_dir {
    enum dir_state state;
    int src, dst;
    struct px_buf *buf;
    uint64_t bytes;
    uint64_t last_read_ms;
    struct event rev; /* src readable */
    struct event wev; /* dst writable */
};

struct px_tunnel {
    struct kf_list link; /* in worker->tunnels */
    enum tunnel_state state;
    struct px_worker *worker;
    struct px_frontend *frontend;
    struct lb *lb;
    struct lb_pool *pool;
    struct lb_server *server;
    struct lb_server *tried[PX_MAX_CONNECT_TRIES];
    unsigned n_tried, max_tries;
    struct config_timeouts timeouts;
    int client_fd, server_fd;
    uint64_t started_ms, connect_started_us;
    struct px_dir c2s, s2c;
    struct event timer;
};

static void tunnel_close(struct px_tunnel *t, const char *reason);
static void tunnel_connect_next(struct px_tunnel *t);
static void dir_on_readable(evutil_socket_t fd, short what, void *arg);
static void dir_on_writable(evutil_socket_t fd, short what, void *arg);

static void tunnel_set_state(struct px_tunnel *t, enum tunnel_state next)
{
    /* Legal: CONNECTING -> ESTABLISHED, any -> CLOSED, never back. */
    KF_BUG_ON(t->state == TUNNEL_CLOSED);
    KF_BUG_ON(next == TUNNEL_CONNECTING);
    KF_BUG_ON(next == TUNNEL_ESTABLISHED && t->state != TUNNEL_CONNECTING);
    kf_debug("proxy", "tunnel fd %d: %s -> %s", t->client_fd, tunnel_state_name[t->state],
             tunnel_state_name[next]);
    t->state = next;
}

/* ---- buffers ---------------------------------------------------------------------- */

static struct px_buf *buf_get(struct px_worker *w)
{
    struct px_buf *b = w->free_bufs;

    if (b) {
        w->free_bufs = b->next;
        w->n_free_bufs--;
    } else {
        b = malloc(sizeof(*b));
        if (!b)
            return NULL;
    }
    b->next = NULL;
    b->off = b->len = 0;
    return b;
}

static void buf_put(struct px_worker *w, struct px_buf *b)
{
    if (w->n_free_bufs >= PX_MAX_FREE_BUFS) {
        free(b);
        return;
    }
    b->next = w->free_bufs;
    w->free_bufs = b;
    w->n_free_bufs++;
}

void px_bufs_free(struct px_worker *w)
{
    while (w->free_bufs) {
        struct px_buf *b = w->free_bufs;
        w->free_bufs = b->next;
        free(b);
    }
    w->n_free_bufs = 0;
}

/* ---- sockets ----------------------------------------------------------------------- */

/* ---- timeouts ----------------------------------------------------------------------- */

static uint64_t deadline_after(uint64_t since, uint32_t ms)
{
    return ms ? since + ms : UINT64_MAX;
}

/* The earliest deadline and what it is for; UINT64_MAX when none applies. */
static uint64_t tunnel_next_deadline(const struct px_tunnel *t, const char **what)
{
    const struct config_timeouts *to = &t->timeouts;
    uint64_t best = UINT64_MAX, d;

    *what = NULL;
    if (t->state == TUNNEL_CONNECTING) {
        best = t->connect_started_us / 1000 + to->connect_ms;
        *what = "connect";
        return best;
    }
    if (t->c2s.bytes == 0 && (d = deadline_after(t->started_ms, to->client_hello_ms)) < best) {
        best = d;
        *what = "client-hello";
    }
    if ((d = deadline_after(t->c2s.last_read_ms, to->client_ms)) < best) {
        best = d;
        *what = "client";
    }
    if ((d = deadline_after(t->s2c.last_read_ms, to->server_ms)) < best) {
        best = d;
        *what = "server";
    }
    d = deadline_after(t->c2s.last_read_ms > t->s2c.last_read_ms ? t->c2s.last_read_ms
                                                                 : t->s2c.last_read_ms,
                       to->tunnel_ms);
    if (d < best) {
        best = d;
        *what = "tunnel";
    }
    return best;
}

static void timer_arm(struct px_tunnel *t)
{
    const char *what;
    uint64_t deadline = tunnel_next_deadline(t, &what), now = kf_now_ms();
    struct timeval tv;

    if (deadline == UINT64_MAX) {
        evtimer_del(&t->timer);
        return;
    }
    uint64_t wait = deadline > now ? deadline - now : 0;
    tv.tv_sec = (time_t)(wait / 1000);
    tv.tv_usec = (suseconds_t)((wait % 1000) * 1000);
    evtimer_add(&t->timer, &tv);
}

static void count_timeout(struct px_worker_stats *s, const char *what)
{
    _Atomic uint64_t *c = &s->timeouts_tunnel;

    if (strcmp(what, "client-hello") == 0)
        c = &s->timeouts_client_hello;
    else if (strcmp(what, "client") == 0)
        c = &s->timeouts_client;
    else if (strcmp(what, "server") == 0)
        c = &s->timeouts_server;
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct px_tunnel *t = arg;
    const char *kind;
    uint64_t deadline = tunnel_next_deadline(t, &kind);

    (void)fd;
    (void)what;
    if (deadline > kf_now_ms()) {
        timer_arm(t); /* activity moved the deadline: sleep again */
        return;
    }
    if (t->state == TUNNEL_CONNECTING) {
        lb_server_report_connect(t->server, false, (kf_now_us() - t->connect_started_us));
        kf_info("proxy", "connect to %s timed out after %u ms", lb_server_label(t->server),
                t->timeouts.connect_ms);
        tunnel_connect_next(t);
        return;
    }
    count_timeout(&t->worker->stats, kind);
    tunnel_close(t, kind);
}

/* ---- the two directions ------------------------------------------------------------- */

static void dir_init(struct px_tunnel *t, struct px_dir *d, int src, int dst)
{
    struct event_base *base = t->worker->base;

    d->state = DIR_READING;
    d->src = src;
    d->dst = dst;
    d->buf = NULL;
    d->bytes = 0;
    d->last_read_ms = kf_now_ms();
    event_assign(&d->rev, base, src, EV_READ | EV_PERSIST, dir_on_readable, t);
    event_assign(&d->wev, base, dst, EV_WRITE | EV_PERSIST, dir_on_writable, t);
}

static struct px_dir *dir_of_read(struct px_tunnel *t, evutil_socket_t fd)
{
    return fd == t->client_fd ? &t->c2s : &t->s2c;
}

static struct px_dir *dir_of_write(struct px_tunnel *t, evutil_socket_t fd)
{
    return fd == t->server_fd ? &t->c2s : &t->s2c;
}

static void dir_count(struct px_tunnel *t, struct px_dir *d, size_t n)
{
    struct px_worker_stats *s = &t->worker->stats;

    d->bytes += n;
    if (d == &t->c2s) {
        atomic_fetch_add_explicit(&s->bytes_client_to_server, n, memory_order_relaxed);
        lb_server_add_bytes(t->server, n, 0);
    } else {
        atomic_fetch_add_explicit(&s->bytes_server_to_client, n, memory_order_relaxed);
        lb_server_add_bytes(t->server, 0, n);
    }
}

/* Write what the buffer holds. Returns 0 when empty, KF_AGAIN, or -errno. */
static int dir_flush(struct px_dir *d)
{
    struct px_buf *b = d->buf;

    while (b->off < b->len) {
        ssize_t n = send(d->dst, b->data + b->off, b->len - b->off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return (errno == EAGAIN || errno == EWOULDBLOCK) ? KF_AGAIN : -errno;
        }
        b->off += (size_t)n;
    }
    return 0;
}

static void dir_shut(struct px_tunnel *t, struct px_dir *d)
{
    struct px_dir *other = d == &t->c2s ? &t->s2c : &t->c2s;

    event_del(&d->rev);
    event_del(&d->wev);
    shutdown(d->dst, SHUT_WR);
    d->state = DIR_SHUT;
    if (other->state == DIR_SHUT)
        tunnel_close(t, NULL);
}

static void dir_set_writing(struct px_dir *d)
{
    d->state = DIR_WRITING;
    event_del(&d->rev);
    event_add(&d->wev, NULL);
}

static void dir_set_reading(struct px_tunnel *t, struct px_dir *d)
{
    buf_put(t->worker, d->buf);
    d->buf = NULL;
    d->state = DIR_READING;
    event_del(&d->wev);
    event_add(&d->rev, NULL);
}

/* Read and forward until the source is empty, the destination is full, or the budget is spent. */
static void dir_pump(struct px_tunnel *t, struct px_dir *d)
{
    size_t moved = 0;

    while (moved < PX_READ_BUDGET) {
        if (!d->buf && !(d->buf = buf_get(t->worker))) {
            tunnel_close(t, "out of memory");
            return;
        }
        ssize_t n = recv(d->src, d->buf->data, PX_BUF_SIZE, 0);
        if (n == 0) {
            dir_shut(t, d);
            return;
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            atomic_fetch_add_explicit(&t->worker->stats.resets, 1, memory_order_relaxed);
            tunnel_close(t, strerror(errno));
            return;
        }
        d->last_read_ms = kf_now_ms();
        d->buf->off = 0;
        d->buf->len = (size_t)n;
        dir_count(t, d, (size_t)n);
        moved += (size_t)n;
        int rc = dir_flush(d);
        if (rc == KF_AGAIN) {
            dir_set_writing(d);
            return;
        }
        if (rc < 0) {
            atomic_fetch_add_explicit(&t->worker->stats.resets, 1, memory_order_relaxed);
            tunnel_close(t, strerror(-rc));
            return;
        }
        /* A short read emptied the socket: epoll is level-triggered and says when more
         * comes, so do not spend a recv() just to hear EAGAIN (one per request saved). */
        if ((size_t)n < PX_BUF_SIZE)
            break;
    }
    if (d->buf) {
        buf_put(t->worker, d->buf);
        d->buf = NULL;
    }
}

static void dir_on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct px_tunnel *t = arg;

    (void)what;
    dir_pump(t, dir_of_read(t, fd));
}

static void dir_on_writable(evutil_socket_t fd, short what, void *arg)
{
    struct px_tunnel *t = arg;
    struct px_dir *d = dir_of_write(t, fd);
    int rc;

    (void)what;
    rc = dir_flush(d);
    if (rc == KF_AGAIN)
        return;
    if (rc < 0) {
        atomic_fetch_add_explicit(&t->worker->stats.resets, 1, memory_order_relaxed);
        tunnel_close(t, strerror(-rc));
        return;
    }
    dir_set_reading(t, d);
    dir_pump(t, d); /* the source may have filled up while we waited */
}

/* ---- connecting ------------------------------------------------------------------------ */

static void tunnel_established(struct px_tunnel *t)
{
    tunnel_set_state(t, TUNNEL_ESTABLISHED);
    lb_server_report_connect(t->server, true, kf_now_us() - t->connect_started_us);
    px_socket_tune(t->server_fd);
    dir_init(t, &t->c2s, t->client_fd, t->server_fd);
    dir_init(t, &t->s2c, t->server_fd, t->client_fd);
    event_add(&t->c2s.rev, NULL);
    event_add(&t->s2c.rev, NULL);
    timer_arm(t);
}

static void on_connected(evutil_socket_t fd, short what, void *arg)
{
    struct px_tunnel *t = arg;
    int err = 0;
    socklen_t len = sizeof(err);

    (void)what;
    event_del(&t->c2s.wev);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err == 0) {
        tunnel_established(t);
        return;
    }
    lb_server_report_connect(t->server, false, kf_now_us() - t->connect_started_us);
    kf_info("proxy", "connect to %s failed: %s", lb_server_label(t->server), strerror(err));
    tunnel_connect_next(t);
}

/* Start a connect to t->server. Returns 0 (in progress or done) or -errno. */
static int tunnel_connect_server(struct px_tunnel *t)
{
    socklen_t alen;
    const struct sockaddr *sa = lb_server_addr(t->server, &alen);
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -errno;
    t->server_fd = fd;
    t->connect_started_us = kf_now_us();
    if (connect(fd, sa, alen) < 0 && errno != EINPROGRESS) {
        int err = errno;
        kf_info("proxy", "connect to %s failed: %s", lb_server_label(t->server), strerror(err));
        return -err;
    }
    /* The c2s write event doubles as the connect-completion event. */
    event_assign(&t->c2s.wev, t->worker->base, fd, EV_WRITE, on_connected, t);
    event_add(&t->c2s.wev, NULL);
    timer_arm(t);
    return 0;
}

/* Drop the current server (if any) and try the next eligible one, or give up. */
static void tunnel_connect_next(struct px_tunnel *t)
{
    for (;;) {
        if (t->server_fd >= 0) {
            event_del(&t->c2s.wev);
            close(t->server_fd);
            t->server_fd = -1;
        }
        if (t->server) {
            atomic_fetch_add_explicit(&t->worker->stats.connect_failures, 1, memory_order_relaxed);
            lb_server_conn_end(t->server);
            t->server = NULL;
        }
        if (t->n_tried >= t->max_tries) {
            tunnel_close(t, "no backend could be reached");
            return;
        }
        t->server = lb_pick(t->pool, t->tried, t->n_tried);
        if (!t->server) {
            atomic_fetch_add_explicit(&t->frontend->no_backend, 1, memory_order_relaxed);
            tunnel_close(t, "no eligible backend");
            return;
        }
        if (t->n_tried > 0)
            atomic_fetch_add_explicit(&t->worker->stats.connect_retries, 1, memory_order_relaxed);
        t->tried[t->n_tried++] = t->server;
        if (tunnel_connect_server(t) == 0)
            return;
        lb_server_report_connect(t->server, false, 0);
    }
}

/* ---- lifecycle ---------------------------------------------------------------------- */

void px_tunnel_start(struct px_worker *w, int client_fd, const struct px_binding *binding)
{
    struct px_tunnel *t = calloc(1, sizeof(*t));

    if (!t) {
        close(client_fd);
        fair_release(&binding->frontend->limit);
        fair_release(&w->daemon->global_limit);
        return;
    }
    t->state = TUNNEL_CONNECTING;
    t->worker = w;
    t->frontend = binding->frontend;
    t->lb = w->gen->lb;
    lb_retain(t->lb);
    t->pool = binding->pool;
    t->timeouts = w->gen->cfg->timeouts;
    t->client_fd = client_fd;
    t->server_fd = -1;
    t->started_ms = kf_now_ms();
    t->max_tries = 1 + lb_pool_connect_retries(t->pool);
    if (t->max_tries > PX_MAX_CONNECT_TRIES)
        t->max_tries = PX_MAX_CONNECT_TRIES;
    evtimer_assign(&t->timer, w->base, on_timer, t);
    kf_list_insert_tail(&w->tunnels, &t->link);
    atomic_fetch_add_explicit(&w->stats.tunnels_active, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&w->stats.tunnels_total, 1, memory_order_relaxed);
    tunnel_connect_next(t);
}

static void tunnel_close(struct px_tunnel *t, const char *reason)
{
    struct px_worker *w = t->worker;

    if (reason)
        kf_debug("proxy", "tunnel fd %d closed after %" PRIu64 "/%" PRIu64 " bytes: %s",
                 t->client_fd, t->c2s.bytes, t->s2c.bytes, reason);
    tunnel_set_state(t, TUNNEL_CLOSED);
    evtimer_del(&t->timer);
    if (event_initialized(&t->c2s.rev)) {
        event_del(&t->c2s.rev);
        event_del(&t->s2c.rev);
        event_del(&t->s2c.wev);
    }
    if (event_initialized(&t->c2s.wev))
        event_del(&t->c2s.wev);
    if (t->c2s.buf)
        buf_put(w, t->c2s.buf);
    if (t->s2c.buf)
        buf_put(w, t->s2c.buf);
    if (t->server_fd >= 0)
        close(t->server_fd);
    close(t->client_fd);
    if (t->server)
        lb_server_conn_end(t->server);
    lb_release(t->lb);
    fair_release(&t->frontend->limit);
    fair_release(&w->daemon->global_limit);
    kf_list_remove(&t->link);
    atomic_fetch_sub_explicit(&w->stats.tunnels_active, 1, memory_order_relaxed);
    free(t);
}

void px_tunnels_close_all(struct px_worker *w)
{
    struct kf_list *pos, *tmp;

    kf_list_for_each_safe(pos, tmp, &w->tunnels)
    {
        struct px_tunnel *t = kf_container_of(pos, struct px_tunnel, link);
        atomic_fetch_add_explicit(&w->stats.drain_closed, 1, memory_order_relaxed);
        tunnel_close(t, "drain deadline");
    }
}
