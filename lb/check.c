/*
 * Active health checks: one state machine per checked server, driven by the
 * control event loop with raw non-blocking sockets.
 *
 *   IDLE -> CONNECTING -> (TLS_HANDSHAKE) -> (SENDING -> READING) -> IDLE
 *
 * tcp ends at the connect, tls at the handshake, http(s) when the status line
 * has arrived (nothing after it is read). A single timer serves both phases:
 * while IDLE it starts the next check, otherwise it is the check's timeout, so
 * a server that accepts and never answers fails when the timeout fires.
 */
#include "lb/lb_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

static const char *const check_state_names[] = {
    [LB_CHECK_IDLE] = "idle",
    [LB_CHECK_CONNECTING] = "connecting",
    [LB_CHECK_TLS_HANDSHAKE] = "tls handshake",
    [LB_CHECK_SENDING] = "sending",
    [LB_CHECK_READING] = "reading",
};

/* Bit i set in legal_from[s]: state i may move to s. Any state may end in IDLE. */
static const unsigned legal_from[] = {
    [LB_CHECK_IDLE] = 0x1f,
    [LB_CHECK_CONNECTING] = 1u << LB_CHECK_IDLE,
    [LB_CHECK_TLS_HANDSHAKE] = 1u << LB_CHECK_CONNECTING,
    [LB_CHECK_SENDING] = 1u << LB_CHECK_CONNECTING | 1u << LB_CHECK_TLS_HANDSHAKE,
    [LB_CHECK_READING] = 1u << LB_CHECK_SENDING,
};

static void check_set_state(struct lb_check *c, enum lb_check_state next)
{
    KF_BUG_ON(!(legal_from[next] & (1u << c->state)));
    kf_debug("lb", "check %s: %s -> %s", c->server->label, check_state_names[c->state],
             check_state_names[next]);
    c->state = next;
}

static bool is_http(const struct lb_check *c)
{
    return c->pool->check.type == CONFIG_CHECK_HTTP || c->pool->check.type == CONFIG_CHECK_HTTPS;
}

static bool is_tls(const struct lb_check *c)
{
    return c->pool->check.type == CONFIG_CHECK_TLS || c->pool->check.type == CONFIG_CHECK_HTTPS;
}

/* xorshift64: jitter only needs to spread checks, not to be unpredictable. */
static uint64_t next_random(struct lb *lb)
{
    lb->rng ^= lb->rng << 13;
    lb->rng ^= lb->rng >> 7;
    lb->rng ^= lb->rng << 17;
    return lb->rng;
}

static void arm_timer(struct lb_check *c, uint64_t ms)
{
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(c->timer, &tv);
}

/* The next check after interval +-10 %, so that checks of many servers that
 * started together drift apart instead of hitting the backends in bursts. */
static void schedule_next(struct lb_check *c, bool first)
{
    uint64_t interval = c->pool->check.interval_ms;
    uint64_t spread = interval / 5 + 1;
    uint64_t jitter = next_random(c->lb) % spread;

    arm_timer(c, first ? jitter / 2 : interval - interval / 10 + jitter);
}

static void close_conn(struct lb_check *c)
{
    if (c->io)
        event_del(c->io);
    lb_check_tls_end(c);
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

static void check_finish(struct lb_check *c, bool ok, const char *detail)
{
    struct lb_server *s = c->server;

    lb_hist_observe(&s->check_hist, kf_now_us() - c->started_us);
    atomic_fetch_add_explicit(ok ? &s->checks_ok : &s->checks_failed, 1, memory_order_relaxed);
    close_conn(c);
    evtimer_del(c->timer);
    check_set_state(c, LB_CHECK_IDLE);
    lb_server_record(s, ok, detail);
    schedule_next(c, false);
}

static void check_fail(struct lb_check *c)
{
    check_finish(c, false, c->error);
}

static void check_succeed(struct lb_check *c, int status)
{
    char detail[256];
    double ms = (double)(kf_now_us() - c->started_us) / 1e3;
    const char *type = config_check_type_name(c->pool->check.type);

    if (is_http(c))
        snprintf(detail, sizeof(detail), "%s GET %s -> %d in %.1f ms", type, c->pool->check.path,
                 status, ms);
    else
        snprintf(detail, sizeof(detail), "%s %s in %.1f ms", type,
                 is_tls(c) ? "handshake" : "connect", ms);
    check_finish(c, true, detail);
}

static void io_cb(evutil_socket_t fd, short what, void *arg);

static void wait_io(struct lb_check *c, short what)
{
    event_del(c->io);
    event_assign(c->io, c->lb->base, c->fd, what, io_cb, c);
    event_add(c->io, NULL);
}

/* ---- plain transport ---------------------------------------------------------- */

/* One read or write on the plain socket or through TLS; *n == 0 at end of stream. */
static int xfer(struct lb_check *c, bool writing, char *buf, size_t len, size_t *n, short *want)
{
    ssize_t r;

    if (c->ssl)
        return lb_check_tls_io(c, writing, buf, len, n, want);
    r = writing ? send(c->fd, buf, len, MSG_NOSIGNAL) : recv(c->fd, buf, len, 0);
    if (r >= 0) {
        *n = (size_t)r;
        return 0;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        *want = writing ? EV_WRITE : EV_READ;
        return KF_AGAIN;
    }
    snprintf(c->error, sizeof(c->error), "%s: %s", writing ? "send" : "recv", strerror(errno));
    return -errno;
}

/* ---- the steps ----------------------------------------------------------------- */

/* "HTTP/1.x NNN" followed by a space or the end of the line. */
static int parse_status_line(const char *line, size_t len, int *code)
{
    if (len < 13 || memcmp(line, "HTTP/1.", 7) != 0 || line[8] != ' ')
        return -EINVAL;
    for (int i = 9; i < 12; i++)
        if (line[i] < '0' || line[i] > '9')
            return -EINVAL;
    if (line[12] != ' ' && line[12] != '\r' && line[12] != '\n')
        return -EINVAL;
    *code = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
    return 0;
}

static void step_status(struct lb_check *c)
{
    int code;
    int expect = c->pool->check.expect_status;

    if (parse_status_line(c->status, c->status_len, &code) < 0) {
        snprintf(c->error, sizeof(c->error), "%s GET %s: malformed status line",
                 config_check_type_name(c->pool->check.type), c->pool->check.path);
        check_fail(c);
    } else if (code != expect) {
        snprintf(c->error, sizeof(c->error), "%s GET %s -> %d, expected %d",
                 config_check_type_name(c->pool->check.type), c->pool->check.path, code, expect);
        check_fail(c);
    } else {
        check_succeed(c, code);
    }
}

static void step_read(struct lb_check *c)
{
    short want = EV_READ;

    while (!memchr(c->status, '\n', c->status_len)) {
        size_t room = sizeof(c->status) - c->status_len, n = 0;
        int rc;

        if (room == 0)
            break; /* an overlong line is malformed: step_status says so */
        rc = xfer(c, false, c->status + c->status_len, room, &n, &want);
        if (rc == KF_AGAIN) {
            wait_io(c, want);
            return;
        }
        if (rc < 0) {
            check_fail(c);
            return;
        }
        if (n == 0) {
            snprintf(c->error, sizeof(c->error),
                     "%s GET %s: connection closed before the status line",
                     config_check_type_name(c->pool->check.type), c->pool->check.path);
            check_fail(c);
            return;
        }
        c->status_len += n;
    }
    step_status(c);
}

static void step_send(struct lb_check *c)
{
    short want = EV_WRITE;

    while (c->sent < c->request_len) {
        size_t n = 0;
        int rc = xfer(c, true, c->request + c->sent, c->request_len - c->sent, &n, &want);

        if (rc == KF_AGAIN) {
            wait_io(c, want);
            return;
        }
        if (rc == 0 && n == 0)
            snprintf(c->error, sizeof(c->error), "connection closed while sending");
        if (rc < 0 || n == 0) {
            check_fail(c);
            return;
        }
        c->sent += n;
    }
    check_set_state(c, LB_CHECK_READING);
    step_read(c);
}

static void start_http(struct lb_check *c)
{
    c->sent = 0;
    c->status_len = 0;
    check_set_state(c, LB_CHECK_SENDING);
    step_send(c);
}

static void step_handshake(struct lb_check *c)
{
    short want = EV_READ;
    int rc = lb_check_tls_handshake(c, &want);

    if (rc == KF_AGAIN)
        wait_io(c, want);
    else if (rc < 0)
        check_fail(c);
    else if (is_http(c))
        start_http(c);
    else
        check_succeed(c, 0);
}

static void step_connected(struct lb_check *c)
{
    if (is_tls(c)) {
        check_set_state(c, LB_CHECK_TLS_HANDSHAKE);
        if (lb_check_tls_begin(c) < 0) {
            check_fail(c);
            return;
        }
        step_handshake(c);
    } else if (is_http(c)) {
        start_http(c);
    } else {
        check_succeed(c, 0);
    }
}

static void step_connect_result(struct lb_check *c)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err) {
        snprintf(c->error, sizeof(c->error), "connect: %s", strerror(err));
        check_fail(c);
        return;
    }
    step_connected(c);
}

static void io_cb(evutil_socket_t fd KF_UNUSED, short what KF_UNUSED, void *arg)
{
    struct lb_check *c = arg;

    switch (c->state) {
    case LB_CHECK_CONNECTING:
        step_connect_result(c);
        break;
    case LB_CHECK_TLS_HANDSHAKE:
        step_handshake(c);
        break;
    case LB_CHECK_SENDING:
        step_send(c);
        break;
    case LB_CHECK_READING:
        step_read(c);
        break;
    case LB_CHECK_IDLE:
        break; /* a stale wakeup: close_conn deleted the event */
    }
}

static void check_start(struct lb_check *c)
{
    const struct lb_server *s = c->server;

    c->started_us = kf_now_us();
    c->error[0] = '\0';
    check_set_state(c, LB_CHECK_CONNECTING);
    arm_timer(c, c->pool->check.timeout_ms);
    c->fd = socket(s->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        snprintf(c->error, sizeof(c->error), "socket: %s", strerror(errno));
        check_fail(c);
        return;
    }
    if (connect(c->fd, (const struct sockaddr *)&s->addr, s->addr_len) == 0) {
        step_connected(c);
        return;
    }
    if (errno != EINPROGRESS) {
        snprintf(c->error, sizeof(c->error), "connect: %s", strerror(errno));
        check_fail(c);
        return;
    }
    wait_io(c, EV_WRITE);
}

static void timer_cb(evutil_socket_t fd KF_UNUSED, short what KF_UNUSED, void *arg)
{
    struct lb_check *c = arg;

    if (c->state != LB_CHECK_IDLE) {
        snprintf(c->error, sizeof(c->error), "timeout after %u ms while %s",
                 c->pool->check.timeout_ms, check_state_names[c->state]);
        check_fail(c);
        return;
    }
    /* Disabled servers are not checked; a reload may enable them (with a new lb). */
    if (atomic_load(&c->server->admin_state) == CONFIG_SERVER_DISABLED) {
        schedule_next(c, false);
        return;
    }
    check_start(c);
}

/* ---- lifecycle ------------------------------------------------------------------ */

static void check_free(struct lb_check *c)
{
    if (!c)
        return;
    close_conn(c);
    if (c->timer)
        event_free(c->timer);
    if (c->io)
        event_free(c->io);
    atomic_fetch_sub(&c->server->checkers, 1);
    lb_server_release(c->server);
    free(c->request);
    free(c);
}

static struct lb_check *check_new(struct lb *lb, struct lb_pool *pool, struct lb_server *s)
{
    struct lb_check *c = calloc(1, sizeof(*c));
    const char *host = pool->check.server_name ? pool->check.server_name : s->address;

    if (!c)
        return NULL;
    c->lb = lb;
    c->pool = pool;
    c->server = s;
    c->fd = -1;
    lb_server_retain(s);
    atomic_fetch_add(&s->checkers, 1);
    c->timer = evtimer_new(lb->base, timer_cb, c);
    c->io = event_new(lb->base, -1, 0, io_cb, c);
    if (asprintf(&c->request,
                 "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: kfront-health-check\r\n"
                 "Accept: */*\r\nConnection: close\r\n\r\n",
                 pool->check.path, host) < 0)
        c->request = NULL;
    if (!c->timer || !c->io || !c->request) {
        check_free(c);
        return NULL;
    }
    c->request_len = strlen(c->request);
    return c;
}

static size_t count_checked(const struct lb *lb)
{
    size_t n = 0;

    for (size_t i = 0; i < lb->n_pools; i++)
        for (size_t j = 0; j < lb->pools[i].n_servers; j++)
            n += lb->pools[i].checked[j];
    return n;
}

int lb_start_checks(struct lb *lb, struct event_base *base)
{
    if (lb->base)
        return -EALREADY;
    lb->base = base;
    lb->checks = calloc(count_checked(lb) + 1, sizeof(*lb->checks));
    if (!lb->checks)
        goto nomem;
    for (size_t i = 0; i < lb->n_pools; i++) {
        struct lb_pool *pool = &lb->pools[i];
        for (size_t j = 0; j < pool->n_servers; j++) {
            if (!pool->checked[j])
                continue;
            struct lb_check *c = check_new(lb, pool, pool->servers[j]);
            if (!c)
                goto nomem;
            lb->checks[lb->n_checks++] = c;
            schedule_next(c, true);
        }
    }
    return 0;
nomem:
    lb_stop_checks(lb);
    return -ENOMEM;
}

void lb_stop_checks(struct lb *lb)
{
    for (size_t i = 0; i < lb->n_checks; i++)
        check_free(lb->checks[i]);
    free(lb->checks);
    lb->checks = NULL;
    lb->n_checks = 0;
    lb->base = NULL;
}
