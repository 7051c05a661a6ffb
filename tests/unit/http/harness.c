#include "harness.h"

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/thread.h>

#include <openssl/x509.h>

#include "core/core.h"

struct test_state ts;

/* ---- the routing handler -------------------------------------------------------- */

static void on_close_end(struct px_request *req, void *arg)
{
    (void)arg;
    atomic_fetch_add(&ts.closes, 1);
    px_response_end(req);
}

static void ref_free(const void *data, size_t len, void *arg)
{
    (void)len;
    (void)arg;
    free((void *)data);
    atomic_fetch_add(&ts.ref_frees, 1);
}

static void h_echo(struct px_request *req)
{
    struct kf_arena *a = px_request_arena(req);
    const char *n, *v, *body;
    size_t blen;
    const struct px_peer_identity *id = px_request_peer(req);
    char *out;

    body = px_request_body(req, &blen);
    out =
        kf_arena_sprintf(a, "method=%s\npath=%s\nquery=%s\nv=%d\nauthority=%s\nblen=%zu\nbody=%s\n",
                         px_request_method(req), px_request_path(req), px_request_query_string(req),
                         px_request_http_version(req), px_request_authority(req), blen, body);
    for (size_t i = 0; px_request_query_at(req, i, &n, &v); i++)
        out = kf_arena_sprintf(a, "%sq:%s=%s\n", out, n, v);
    for (size_t i = 0; px_request_header_at(req, i, &n, &v); i++)
        out = kf_arena_sprintf(a, "%sh:%s=%s\n", out, n, v);
    struct stack_st_X509 *chain;
    X509 *cert = px_request_peer_cert(req, &chain);

    if (cert) {
        char subj[256];

        X509_NAME_oneline(X509_get_subject_name(cert), subj, sizeof(subj));
        out = kf_arena_sprintf(a, "%scert=%s\n", out, subj);
    }
    if (id) {
        out = kf_arena_sprintf(a, "%scn=%s\nissuer=%s\n", out, id->subject_cn, id->issuer);
        for (size_t i = 0; i < id->n_orgs; i++)
            out = kf_arena_sprintf(a, "%so=%s\n", out, id->orgs[i]);
    }
    px_response_simple(req, 200, "text/plain", out, strlen(out));
}

static void h_stream(struct px_request *req)
{
    const char *nq = px_request_query(req, "n");
    int n = nq ? atoi(nq) : 10;

    px_response_header(req, "Content-Type", "text/plain");
    px_response_start(req, 200);
    for (int i = 0; i < n; i++) {
        char *line;

        if (i % 2 == 0) {
            char buf[32];
            int len = snprintf(buf, sizeof(buf), "chunk %d\n", i);

            px_response_write(req, buf, (size_t)len);
        } else if (asprintf(&line, "chunk %d\n", i) > 0) {
            px_response_write_ref(req, line, strlen(line), ref_free, NULL);
        }
    }
    px_response_end(req);
}

/* /big: write `bytes` in pieces, never queueing much more than the low-water mark. */
struct big {
    size_t total, sent, limit;
};

static void big_pump(struct px_request *req, void *arg)
{
    struct big *b = arg;
    static char piece[16384];
    size_t pending;

    if (atomic_load(&ts.waiting)) {
        atomic_store(&ts.waiting, 0);
        atomic_fetch_add(&ts.drains, 1);
    }
    memset(piece, 'x', sizeof(piece));
    while (b->sent < b->total) {
        pending = px_response_pending(req);
        if (pending > atomic_load(&ts.max_pending))
            atomic_store(&ts.max_pending, pending);
        if (pending > b->limit) {
            atomic_store(&ts.waiting, 1);
            return; /* on_drain calls us again */
        }
        size_t n = b->total - b->sent < sizeof(piece) ? b->total - b->sent : sizeof(piece);

        cr_assert_eq(px_response_write(req, piece, n), 0);
        b->sent += n;
        atomic_store(&ts.big_sent, b->sent);
    }
    px_response_end(req);
}

static void h_big(struct px_request *req)
{
    struct big *b = kf_arena_alloc(px_request_arena(req), sizeof(*b));

    b->total = strtoul(px_request_query(req, "bytes"), NULL, 10);
    b->limit = 64 * 1024;
    px_request_on_drain(req, big_pump, b);
    px_request_on_close(req, on_close_end, NULL);
    px_response_header(req, "Content-Length",
                       kf_arena_sprintf(px_request_arena(req), "%zu", b->total));
    px_response_start(req, 200);
    big_pump(req, b);
}

static void echo_read(struct bufferevent *bev, void *arg)
{
    (void)arg;
    bufferevent_write_buffer(bev, bufferevent_get_input(bev));
}

static void echo_event(struct bufferevent *bev, short what, void *arg)
{
    (void)what;
    (void)arg;
    bufferevent_free(bev);
    atomic_fetch_add(&ts.upgrade_ends, 1);
}

static void upgraded(struct bufferevent *bev, void *arg)
{
    (void)arg;
    if (!bev)
        return;
    atomic_fetch_add(&ts.upgrades, 1);
    bufferevent_setcb(bev, echo_read, NULL, echo_event, NULL);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    echo_read(bev, NULL); /* bytes that came with the request */
}

static void h_upgrade(struct px_request *req)
{
    if (!px_request_is_upgrade(req)) {
        px_response_simple(req, 400, NULL, "no upgrade\n", 11);
        return;
    }
    if (px_request_query(req, "refuse")) {
        px_response_simple(req, 403, NULL, "refused\n", 8);
        return;
    }
    px_response_header(req, "Upgrade", "echo");
    cr_assert_eq(px_request_upgrade(req, upgraded, NULL), 0);
}

static void h_hang(struct px_request *req)
{
    px_request_on_close(req, on_close_end, NULL);
    if (px_request_query(req, "start")) {
        px_response_start(req, 200);
        px_response_write(req, "started\n", 8);
    }
}

static void test_handler(struct px_request *req, void *arg)
{
    const char *p = px_request_path(req);

    (void)arg;
    if (strcmp(p, "/hello") == 0) {
        px_response_simple(req, 200, "text/plain", "hello\n", 6);
    } else if (strcmp(p, "/echo") == 0) {
        h_echo(req);
    } else if (strcmp(p, "/stream") == 0) {
        h_stream(req);
    } else if (strcmp(p, "/big") == 0) {
        h_big(req);
    } else if (strcmp(p, "/hang") == 0) {
        h_hang(req);
    } else if (strcmp(p, "/upgrade") == 0) {
        h_upgrade(req);
    } else if (strcmp(p, "/goaway") == 0) {
        px_conn_goaway(px_request_conn(req));
        px_response_simple(req, 200, "text/plain", "bye\n", 4);
    } else if (strcmp(p, "/shutdown") == 0) {
        px_server_shutdown(ts.server);
        px_response_simple(req, 200, "text/plain", "down\n", 5);
    } else if (strcmp(p, "/abort") == 0) {
        px_response_start(req, 200);
        px_response_write(req, "partial", 7);
        px_response_abort(req);
    } else if (strcmp(p, "/noresponse") == 0) {
        px_response_end(req);
    } else {
        px_response_simple(req, 404, "text/plain", "not found\n", 10);
    }
}

/* ---- server thread ------------------------------------------------------------------- */

static void *srv_main(void *arg)
{
    struct srv *s = arg;

    event_base_loop(s->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

void srv_start(struct srv *s, struct px_server_config *cfg)
{
    static bool threads_on;

    if (!threads_on) {
        evthread_use_pthreads();
        threads_on = true;
    }
    if (!cfg->handler)
        cfg->handler = test_handler;
    s->base = event_base_new();
    cr_assert_not_null(s->base);
    s->server = px_server_new(cfg);
    cr_assert_not_null(s->server);
    ts.server = s->server;
    s->listener = px_listen(s->base, s->server, "127.0.0.1:0");
    cr_assert_not_null(s->listener);
    s->port = px_listener_port(s->listener);
    cr_assert_neq(s->port, 0);
    cr_assert_eq(pthread_create(&s->thread, NULL, srv_main, s), 0);
}

static void srv_break(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

void srv_stop(struct srv *s)
{
    static const struct timeval now = {0, 0};

    /* from inside the loop: a loopbreak before the loop starts would be lost */
    event_base_once(s->base, -1, EV_TIMEOUT, srv_break, s->base, &now);
    pthread_join(s->thread, NULL);
    px_listener_free(s->listener);
    px_server_free(s->server);
    event_base_free(s->base);
}

struct px_server_stats srv_stats(struct srv *s)
{
    struct px_server_stats st;

    px_server_get_stats(s->server, &st);
    return st;
}

bool srv_no_conns(void *srv)
{
    return srv_stats(srv).conns_current == 0;
}

bool wait_for(bool (*pred)(void *), void *arg, int ms)
{
    uint64_t end = kf_now_ms() + (uint64_t)ms;

    while (!pred(arg)) {
        if (kf_now_ms() > end)
            return false;
        usleep(2000);
    }
    return true;
}

bool wait_int(atomic_int *v, int at_least, int ms)
{
    uint64_t end = kf_now_ms() + (uint64_t)ms;

    while (atomic_load(v) < at_least) {
        if (kf_now_ms() > end)
            return false;
        usleep(2000);
    }
    return true;
}

/* ---- raw sockets ----------------------------------------------------------------------- */

int tcp_connect(uint16_t port, int rcvbuf)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    cr_assert_geq(fd, 0);
    if (rcvbuf)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0, "connect: %s",
                 strerror(errno));
    return fd;
}

void send_all(int fd, const void *data, size_t len)
{
    const char *p = data;

    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; /* the server may legitimately have closed */
        p += n;
        len -= (size_t)n;
    }
}

void send_str(int fd, const char *s)
{
    send_all(fd, s, strlen(s));
}

static ssize_t read_wait(int fd, char *buf, size_t cap, int ms)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int rc = poll(&pfd, 1, ms);

    if (rc <= 0)
        return -2; /* timeout */
    ssize_t n = recv(fd, buf, cap, 0);

    return n < 0 ? -1 : n;
}

size_t read_all(int fd, char *buf, size_t cap, int ms, bool *closed)
{
    size_t len = 0;
    uint64_t end = kf_now_ms() + (uint64_t)ms;

    *closed = false;
    while (len + 1 < cap && kf_now_ms() < end) {
        ssize_t n = read_wait(fd, buf + len, cap - 1 - len, (int)(end - kf_now_ms()) + 1);

        if (n == -2)
            break;
        if (n <= 0) {
            *closed = true;
            break;
        }
        len += (size_t)n;
    }
    buf[len] = 0;
    return len;
}

size_t read_until(int fd, char *buf, size_t cap, const char *until, int ms)
{
    size_t len = 0;
    uint64_t end = kf_now_ms() + (uint64_t)ms;

    buf[0] = 0;
    while (len + 1 < cap && !strstr(buf, until) && kf_now_ms() < end) {
        ssize_t n = read_wait(fd, buf + len, cap - 1 - len, (int)(end - kf_now_ms()) + 1);

        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = 0;
    }
    return len;
}

int count_str(const char *hay, const char *needle)
{
    int n = 0;

    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* ---- HTTP/2 client --------------------------------------------------------------------------- */

struct h2c_stream *h2c_stream(struct h2c *c, int32_t id)
{
    for (int i = 0; i < c->nst; i++)
        if (c->st[i].id == id)
            return &c->st[i];
    return NULL;
}

static ssize_t c_send(nghttp2_session *s, const uint8_t *data, size_t len, int flags, void *u)
{
    struct h2c *c = u;

    (void)s;
    (void)flags;
    send_all(c->fd, data, len);
    return (ssize_t)len;
}

static int c_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nlen,
                    const uint8_t *value, size_t vlen, uint8_t flags, void *u)
{
    struct h2c_stream *st = h2c_stream(u, f->hd.stream_id);

    (void)s;
    (void)flags;
    (void)vlen;
    if (st && nlen == 7 && memcmp(name, ":status", 7) == 0)
        st->status = atoi((const char *)value);
    return 0;
}

static int c_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                  void *u)
{
    struct h2c_stream *st = h2c_stream(u, id);

    (void)s;
    (void)flags;
    if (!st)
        return 0;
    st->data = realloc(st->data, st->len + len + 1);
    memcpy(st->data + st->len, data, len);
    st->len += len;
    st->data[st->len] = 0;
    return 0;
}

static int c_close(nghttp2_session *s, int32_t id, uint32_t err, void *u)
{
    struct h2c_stream *st = h2c_stream(u, id);

    (void)s;
    if (st) {
        st->closed = true;
        st->error = err;
    }
    return 0;
}

static int c_frame(nghttp2_session *s, const nghttp2_frame *f, void *u)
{
    struct h2c *c = u;

    (void)s;
    if (f->hd.type == NGHTTP2_GOAWAY) {
        c->goaway = true;
        c->goaway_error = f->goaway.error_code;
    }
    return 0;
}

bool h2c_open(struct h2c *c, uint16_t port, uint32_t window, bool manual)
{
    nghttp2_session_callbacks *cbs;
    nghttp2_option *opt;
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, window}};

    memset(c, 0, sizeof(*c));
    c->fd = tcp_connect(port, 0);
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_send_callback(cbs, c_send);
    nghttp2_session_callbacks_set_on_header_callback(cbs, c_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, c_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, c_close);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, c_frame);
    nghttp2_option_new(&opt);
    nghttp2_option_set_no_auto_window_update(opt, manual);
    nghttp2_session_client_new2(&c->s, cbs, c, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_submit_settings(c->s, NGHTTP2_FLAG_NONE, iv, window ? 1 : 0);
    return h2c_pump(c, 0);
}

static ssize_t c_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                      nghttp2_data_source *src, void *u)
{
    struct h2c *c = u;
    size_t n = c->body_len - c->body_off < len ? c->body_len - c->body_off : len;

    (void)s;
    (void)id;
    (void)src;
    memcpy(buf, c->body + c->body_off, n);
    c->body_off += n;
    if (c->body_off == c->body_len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

int32_t h2c_request(struct h2c *c, const char *method, const char *path, const char *body,
                    size_t body_len)
{
    nghttp2_nv nva[] = {
        {(uint8_t *)":method", (uint8_t *)method, 7, strlen(method), 0},
        {(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0},
        {(uint8_t *)":authority", (uint8_t *)"test", 10, 4, 0},
        {(uint8_t *)":path", (uint8_t *)path, 5, strlen(path), 0},
    };
    nghttp2_data_provider prd = {.read_callback = c_body};
    int32_t id;

    c->body = body;
    c->body_len = body_len;
    c->body_off = 0;
    id = nghttp2_submit_request(c->s, NULL, nva, 4, body ? &prd : NULL, NULL);
    cr_assert_gt(id, 0);
    c->st[c->nst++] = (struct h2c_stream){.id = id};
    h2c_pump(c, 0);
    return id;
}

bool h2c_pump(struct h2c *c, int ms)
{
    char buf[65536];
    ssize_t n;

    if (c->eof)
        return false;
    if (nghttp2_session_send(c->s) != 0)
        return false;
    n = read_wait(c->fd, buf, sizeof(buf), ms);
    if (n == -2)
        return true;
    if (n <= 0) {
        c->eof = true;
        return false;
    }
    if (nghttp2_session_mem_recv(c->s, (uint8_t *)buf, (size_t)n) < 0) {
        c->eof = true;
        return false;
    }
    return nghttp2_session_send(c->s) == 0;
}

bool h2c_wait_closed(struct h2c *c, int32_t id, int ms)
{
    uint64_t end = kf_now_ms() + (uint64_t)ms;
    struct h2c_stream *st = h2c_stream(c, id);

    while (!st->closed && kf_now_ms() < end)
        if (!h2c_pump(c, 20))
            break;
    return st->closed;
}

void h2c_free(struct h2c *c)
{
    nghttp2_session_del(c->s);
    close(c->fd);
    for (int i = 0; i < c->nst; i++)
        free(c->st[i].data);
}

/* ---- TLS material ---------------------------------------------------------------------------- */

int run_cmd(const char *cmd, char *out, size_t cap)
{
    FILE *p = popen(cmd, "r");
    size_t len = 0, n;

    cr_assert_not_null(p);
    while (out && len + 1 < cap && (n = fread(out + len, 1, cap - 1 - len, p)) > 0)
        len += n;
    if (out)
        out[len] = 0;
    int st = pclose(p);

    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void tls_make_certs(char *dir, size_t size)
{
    char cmd[4096];

    snprintf(dir, size, "/tmp/kf-http-test-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(cmd, sizeof(cmd),
             "(cd %s && K='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes' && "
             "openssl req -x509 $K -keyout ca.key -out ca.crt -days 1 -subj /CN=test-ca && "
             "openssl req -x509 $K -keyout server.key -out server.crt -days 1 -subj /CN=localhost "
             "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 && "
             "openssl req $K -keyout client.key -out client.csr "
             "-subj '/O=system:nodes/O=team-a/CN=system:node:n1' && "
             "openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
             "-out client.crt -days 1 && "
             "openssl req -x509 $K -keyout rogue.key -out rogue.crt -days 1 -subj /CN=rogue"
             ") >/dev/null 2>&1",
             dir);
    cr_assert_eq(run_cmd(cmd, NULL, 0), 0, "openssl failed");
}
