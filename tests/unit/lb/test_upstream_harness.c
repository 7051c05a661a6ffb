#include "test_upstream_harness.h"

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <http_parser.h>
#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>

#define DEFAULT_BIG (256 * 1024)
#define SLOW_CHUNKS 5
#define SLOW_MS     20

enum ts_behaviour {
    B_OK,
    B_BIG,
    B_SLOW,
    B_HANG,
    B_HALF_OPEN,
    B_NEVER,
    B_REFUSE,
    B_GOAWAY,
    B_CLOSE_MID,
    B_EOF,
    B_BAD,
    B_CONTINUE,
};

struct ts_conn {
    struct kf_list link;
    struct ts_server *srv;
    struct bufferevent *bev;
    nghttp2_session *h2;
    struct kf_list streams;
    bool h1, frozen, close_after_write;
    http_parser parser; /* HTTP/1.1 requests */
    struct ts_stream *cur;
    bool in_value;
    char field[64];
};

/* One request; for HTTP/1.1 the connection's current one. */
struct ts_stream {
    struct kf_list link;
    struct ts_conn *conn;
    int32_t id;
    char method[16], path[256], headers[2048];
    char body[4096];
    size_t body_len, hlen;
    size_t body_total;    /* all of it, also past what body keeps */
    struct evbuffer *out; /* body bytes ready to send */
    bool more;            /* more body bytes will come (or never) */
    int chunks;
    struct event *tick;
};

static enum ts_behaviour behaviour(const struct ts_server *s, const char *path)
{
    static const struct {
        const char *path;
        enum ts_behaviour b;
    } map[] = {
        {"/big", B_BIG},           {"/slow", B_SLOW},
        {"/hang", B_HANG},         {"/halfopen", B_HALF_OPEN},
        {"/never", B_NEVER},       {"/refuse", B_REFUSE},
        {"/goaway", B_GOAWAY},     {"/closemid", B_CLOSE_MID},
        {"/eof", B_EOF},           {"/bad", B_BAD},
        {"/continue", B_CONTINUE},
    };

    if (s->mode == TS_REFUSE_ALL)
        return B_REFUSE;
    if (s->mode == TS_GOAWAY_ALL)
        return B_GOAWAY;
    for (size_t i = 0; i < KF_ARRAY_SIZE(map); i++)
        if (strncmp(path, map[i].path, strlen(map[i].path)) == 0)
            return map[i].b;
    return B_OK;
}

/* ---- connections ------------------------------------------------------------------------ */

static void stream_free(struct ts_stream *st)
{
    kf_list_remove(&st->link);
    if (st->tick)
        event_free(st->tick);
    evbuffer_free(st->out);
    free(st);
}

static struct ts_stream *stream_new(struct ts_conn *c, int32_t id)
{
    struct ts_stream *st = calloc(1, sizeof(*st));

    cr_assert_not_null(st);
    st->conn = c;
    st->id = id;
    st->out = evbuffer_new();
    kf_list_insert_tail(&c->streams, &st->link);
    return st;
}

static void conn_free(struct ts_conn *c)
{
    while (!kf_list_empty(&c->streams))
        stream_free(kf_container_of(c->streams.next, struct ts_stream, link));
    nghttp2_session_del(c->h2);
    bufferevent_free(c->bev);
    kf_list_remove(&c->link);
    c->srv->open_conns--;
    free(c);
}

static void h2_flush(struct ts_conn *c)
{
    const uint8_t *data;
    ssize_t n;

    if (c->frozen)
        return;
    while ((n = nghttp2_session_mem_send(c->h2, &data)) > 0)
        bufferevent_write(c->bev, data, (size_t)n);
}

static void record(struct ts_server *s, const struct ts_stream *st)
{
    s->requests++;
    s->last_stream_id = st->id;
    snprintf(s->last_method, sizeof(s->last_method), "%s", st->method);
    snprintf(s->last_path, sizeof(s->last_path), "%s", st->path);
    snprintf(s->last_headers, sizeof(s->last_headers), "%s", st->headers);
    memcpy(s->last_body, st->body, st->body_len);
    s->last_body[st->body_len] = '\0';
    s->last_body_len = st->body_len;
    s->last_body_total = st->body_total;
}

static void add_header_text(struct ts_stream *st, const char *name, size_t nlen, const char *value,
                            size_t vlen)
{
    int n = snprintf(st->headers + st->hlen, sizeof(st->headers) - st->hlen, "%.*s: %.*s\n",
                     (int)nlen, name, (int)vlen, value);
    if (n > 0 && st->hlen + (size_t)n < sizeof(st->headers))
        st->hlen += (size_t)n;
}

static void add_body(struct ts_stream *st, const void *data, size_t len)
{
    size_t room = sizeof(st->body) - 1 - st->body_len;
    size_t n = len < room ? len : room;

    memcpy(st->body + st->body_len, data, n);
    st->body_len += n;
    st->body_total += len;
}

/* ---- HTTP/2 responses --------------------------------------------------------------------- */

static ssize_t h2_body(nghttp2_session *session KF_UNUSED, int32_t id KF_UNUSED, uint8_t *buf,
                       size_t len, uint32_t *flags, nghttp2_data_source *source,
                       void *user_data KF_UNUSED)
{
    struct ts_stream *st = source->ptr;
    int n = evbuffer_remove(st->out, buf, len);

    if (n > 0)
        return n;
    if (st->more)
        return NGHTTP2_ERR_DEFERRED;
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    return 0;
}

static void h1_body(struct ts_conn *c, struct ts_stream *st);

static void slow_tick(evutil_socket_t fd KF_UNUSED, short what KF_UNUSED, void *arg)
{
    struct ts_stream *st = arg;
    struct ts_conn *c = st->conn;
    struct timeval tv = {0, SLOW_MS * 1000};

    evbuffer_add_printf(st->out, "chunk %d\n", st->chunks++);
    st->more = st->chunks < SLOW_CHUNKS;
    if (st->more)
        evtimer_add(st->tick, &tv);
    if (c->h2) {
        nghttp2_session_resume_data(c->h2, st->id);
        h2_flush(c); /* may end the stream and free st */
    } else {
        h1_body(c, st);
    }
}

static void h2_respond(struct ts_conn *c, struct ts_stream *st)
{
    nghttp2_nv nv[] = {
        {(uint8_t *)":status", (uint8_t *)"200", 7, 3, 0},
        {(uint8_t *)"x-server", (uint8_t *)c->srv->name, 8, strlen(c->srv->name), 0}};
    nghttp2_data_provider prd = {.source.ptr = st, .read_callback = h2_body};

    nghttp2_submit_response(c->h2, st->id, nv, 2, &prd);
}

static void fill_body(struct ts_stream *st, enum ts_behaviour b)
{
    struct ts_server *s = st->conn->srv;
    struct timeval tv = {0, SLOW_MS * 1000};

    switch (b) {
    case B_BIG:
        for (size_t i = 0; i < (s->big_len ? s->big_len : DEFAULT_BIG); i++)
            evbuffer_add(st->out, "x", 1);
        break;
    case B_SLOW:
        st->more = true;
        st->tick = evtimer_new(s->base, slow_tick, st);
        evtimer_add(st->tick, &tv);
        break;
    case B_HANG:
    case B_HALF_OPEN:
        st->more = true;
        break;
    case B_CLOSE_MID:
        evbuffer_add_printf(st->out, "partial");
        st->more = true;
        break;
    default:
        evbuffer_add_printf(st->out, "%s:%s", s->name, st->path);
        break;
    }
}

static void h2_act(struct ts_conn *c, struct ts_stream *st)
{
    enum ts_behaviour b = behaviour(c->srv, st->path);

    record(c->srv, st);
    switch (b) {
    case B_NEVER:
        return;
    case B_REFUSE:
        nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_REFUSED_STREAM);
        return;
    case B_GOAWAY:
        nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE, st->id > 2 ? st->id - 2 : 0,
                              NGHTTP2_NO_ERROR, NULL, 0);
        return;
    default:
        break;
    }
    fill_body(st, b);
    h2_respond(c, st);
    if (b == B_HALF_OPEN) {
        h2_flush(c);
        c->frozen = true; /* from now on: no reads, no writes, no PING acks */
        bufferevent_disable(c->bev, EV_READ);
    } else if (b == B_CLOSE_MID) {
        h2_flush(c);
        c->close_after_write = true;
    }
}

/* ---- HTTP/2 session ----------------------------------------------------------------------- */

static int h2_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    struct ts_stream *st = stream_new(user_data, frame->hd.stream_id);

    nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, st);
    return 0;
}

static int h2_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags KF_UNUSED,
                     void *user_data KF_UNUSED)
{
    struct ts_stream *st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);

    if (!st)
        return 0;
    if (nlen == 7 && memcmp(name, ":method", 7) == 0)
        snprintf(st->method, sizeof(st->method), "%.*s", (int)vlen, value);
    else if (nlen == 5 && memcmp(name, ":path", 5) == 0)
        snprintf(st->path, sizeof(st->path), "%.*s", (int)vlen, value);
    add_header_text(st, (const char *)name, nlen, (const char *)value, vlen);
    return 0;
}

static int h2_data(nghttp2_session *session, uint8_t flags KF_UNUSED, int32_t id,
                   const uint8_t *data, size_t len, void *user_data KF_UNUSED)
{
    struct ts_stream *st = nghttp2_session_get_stream_user_data(session, id);

    if (st)
        add_body(st, data, len);
    return 0;
}

static int h2_frame(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    struct ts_conn *c = user_data;
    struct ts_stream *st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);

    if (frame->hd.type == NGHTTP2_RST_STREAM && frame->rst_stream.error_code == NGHTTP2_CANCEL)
        c->srv->rst_cancel++;
    if (st && (frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        h2_act(c, st);
    return 0;
}

static int h2_close(nghttp2_session *session, int32_t id, uint32_t code KF_UNUSED,
                    void *ud KF_UNUSED)
{
    struct ts_stream *st = nghttp2_session_get_stream_user_data(session, id);

    if (st)
        stream_free(st);
    return 0;
}

static void h2_setup(struct ts_conn *c)
{
    nghttp2_session_callbacks *cbs;
    nghttp2_settings_entry iv[1] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, c->srv->max_streams}};

    cr_assert_eq(nghttp2_session_callbacks_new(&cbs), 0);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, h2_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, h2_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, h2_data);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, h2_frame);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, h2_close);
    cr_assert_eq(nghttp2_session_server_new(&c->h2, cbs, c), 0);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, c->srv->max_streams ? 1 : 0);
    h2_flush(c);
}

/* ---- HTTP/1.1 ---------------------------------------------------------------------------- */

static void h1_write(struct ts_conn *c, const char *text)
{
    bufferevent_write(c->bev, text, strlen(text));
}

static void h1_chunk(struct ts_conn *c, const void *data, size_t len)
{
    char size[16];

    snprintf(size, sizeof(size), "%zx\r\n", len);
    h1_write(c, size);
    bufferevent_write(c->bev, data, len);
    h1_write(c, "\r\n");
}

/* Write what st has of its body as chunks, and the last chunk once it is complete. */
static void h1_body(struct ts_conn *c, struct ts_stream *st)
{
    size_t len;

    while ((len = evbuffer_get_length(st->out)) > 0) {
        size_t n = len < 16384 ? len : 16384;
        h1_chunk(c, evbuffer_pullup(st->out, (ssize_t)n), n);
        evbuffer_drain(st->out, n);
    }
    if (!st->more)
        h1_write(c, "0\r\n\r\n");
}

static void h1_respond(struct ts_conn *c, struct ts_stream *st, enum ts_behaviour b)
{
    if (b == B_EOF) {
        h1_write(c, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbody until the close");
        c->close_after_write = true;
        return;
    }
    if (b == B_BAD || b == B_CONTINUE) {
        h1_write(c, b == B_BAD ? "HTTP/1.1 2x0 Nope\r\n\r\n"
                               : "HTTP/1.1 100 Continue\r\n\r\n"
                                 "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        return;
    }
    h1_write(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    fill_body(st, b);
    h1_body(c, st);
    if (b == B_CLOSE_MID)
        c->close_after_write = true;
}

static int h1_url(http_parser *p, const char *at, size_t len)
{
    struct ts_conn *c = p->data;
    size_t have = strlen(c->cur->path);

    snprintf(c->cur->path + have, sizeof(c->cur->path) - have, "%.*s", (int)len, at);
    return 0;
}

static int h1_field(http_parser *p, const char *at, size_t len)
{
    struct ts_conn *c = p->data;

    snprintf(c->field, sizeof(c->field), "%.*s", (int)len, at);
    return 0;
}

static int h1_value(http_parser *p, const char *at, size_t len)
{
    struct ts_conn *c = p->data;

    add_header_text(c->cur, c->field, strlen(c->field), at, len);
    return 0;
}

static int h1_body_cb(http_parser *p, const char *at, size_t len)
{
    add_body(((struct ts_conn *)p->data)->cur, at, len);
    return 0;
}

static int h1_begin(http_parser *p)
{
    struct ts_conn *c = p->data;

    c->cur = stream_new(c, ++c->srv->last_stream_id);
    return 0;
}

static int h1_complete(http_parser *p)
{
    struct ts_conn *c = p->data;
    struct ts_stream *st = c->cur;
    enum ts_behaviour b;

    snprintf(st->method, sizeof(st->method), "%s", http_method_str(p->method));
    b = behaviour(c->srv, st->path);
    record(c->srv, st);
    if (c->srv->raw) {
        h1_write(c, c->srv->raw);
        c->close_after_write = true;
    } else if (b != B_NEVER)
        h1_respond(c, st, b);
    return 0;
}

static const http_parser_settings h1_settings = {
    .on_message_begin = h1_begin,
    .on_url = h1_url,
    .on_header_field = h1_field,
    .on_header_value = h1_value,
    .on_body = h1_body_cb,
    .on_message_complete = h1_complete,
};

/* ---- transport --------------------------------------------------------------------------- */

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct ts_conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t len = evbuffer_get_length(in);
    char *data = (char *)evbuffer_pullup(in, -1);

    if (c->frozen)
        return;
    if (c->h1)
        http_parser_execute(&c->parser, &h1_settings, data, len);
    else
        nghttp2_session_mem_recv(c->h2, (const uint8_t *)data, len);
    evbuffer_drain(in, len);
    if (c->h2)
        h2_flush(c);
    if (c->close_after_write && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        conn_free(c); /* nothing was written: no write callback will come */
}

static void write_cb(struct bufferevent *bev KF_UNUSED, void *arg)
{
    struct ts_conn *c = arg;

    if (c->close_after_write)
        conn_free(c);
}

static void start_proto(struct ts_conn *c, bool h1)
{
    c->h1 = h1;
    if (h1) {
        http_parser_init(&c->parser, HTTP_REQUEST);
        c->parser.data = c;
    } else {
        h2_setup(c);
    }
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct ts_conn *c = arg;
    const unsigned char *p = NULL;
    unsigned len = 0;

    if (what & BEV_EVENT_CONNECTED) {
        SSL_get0_alpn_selected(bufferevent_openssl_get_ssl(bev), &p, &len);
        start_proto(c, !(len == 2 && memcmp(p, "h2", 2) == 0));
        return;
    }
    c->srv->client_closes++;
    conn_free(c);
}

static void accept_cb(struct evconnlistener *l KF_UNUSED, evutil_socket_t fd,
                      struct sockaddr *sa KF_UNUSED, int socklen KF_UNUSED, void *arg)
{
    struct ts_server *s = arg;
    struct ts_conn *c = calloc(1, sizeof(*c));

    cr_assert_not_null(c);
    c->srv = s;
    kf_list_init(&c->streams);
    if (s->tls)
        c->bev = bufferevent_openssl_socket_new(s->base, fd, SSL_new(s->tls),
                                                BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    else
        c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
    cr_assert_not_null(c->bev);
    kf_list_insert_tail(&s->live, &c->link);
    s->conns++;
    s->open_conns++;
    bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    if (!s->tls)
        start_proto(c, s->h1);
}

static int alpn_select(SSL *ssl KF_UNUSED, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned inlen, void *arg)
{
    static const unsigned char h2[] = "\x02h2\x08http/1.1", h1[] = "\x08http/1.1";
    const struct ts_server *s = arg;
    const unsigned char *mine = s->h1 ? h1 : h2;

    if (SSL_select_next_proto((unsigned char **)out, outlen, mine,
                              (unsigned)strlen((const char *)mine), in,
                              inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    return SSL_TLSEXT_ERR_OK;
}

void ts_start(struct ts_server *s, struct event_base *base, const char *name, bool h1)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);

    signal(SIGPIPE, SIG_IGN);
    memset(s, 0, sizeof(*s));
    s->base = base;
    s->h1 = h1;
    kf_list_init(&s->live);
    snprintf(s->name, sizeof(s->name), "%s", name);
    s->listener = evconnlistener_new_bind(base, accept_cb, s, LEV_OPT_CLOSE_ON_FREE, 64,
                                          (struct sockaddr *)&sin, sizeof(sin));
    cr_assert_not_null(s->listener);
    getsockname(evconnlistener_get_fd(s->listener), (struct sockaddr *)&sin, &len);
    s->port = ntohs(sin.sin_port);
    snprintf(s->addr, sizeof(s->addr), "127.0.0.1:%u", s->port);
}

void ts_start_tls(struct ts_server *s, struct event_base *base, const char *name,
                  const struct t_certs *certs, bool h1_only)
{
    ts_start(s, base, name, h1_only);
    s->tls = t_server_ctx(certs, false);
    SSL_CTX_set_alpn_select_cb(s->tls, alpn_select, s);
}

void ts_freeze(struct ts_server *s)
{
    struct kf_list *pos;

    kf_list_for_each(pos, &s->live)
    {
        struct ts_conn *c = kf_container_of(pos, struct ts_conn, link);
        c->frozen = true;
        bufferevent_disable(c->bev, EV_READ);
    }
}

void ts_stop(struct ts_server *s)
{
    if (!s->base)
        return; /* never started */
    while (!kf_list_empty(&s->live))
        conn_free(kf_container_of(s->live.next, struct ts_conn, link));
    if (s->listener)
        evconnlistener_free(s->listener);
    s->listener = NULL;
    SSL_CTX_free(s->tls);
    s->tls = NULL;
}

/* ---- client side ---------------------------------------------------------------------------- */

static void tc_headers(struct lb_ureq *req, int status, const struct lb_uhdr *h, size_t n,
                       void *arg)
{
    struct tc_req *r = arg;
    size_t len = 0;

    r->status = status;
    r->n_heads++;
    r->server = lb_ureq_server(req);
    r->head_ms = kf_now_ms();
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(r->head + len, sizeof(r->head) - len, "%.*s: %.*s\n", (int)h[i].name_len,
                         h[i].name, (int)h[i].value_len, h[i].value);
        if (w > 0 && len + (size_t)w < sizeof(r->head))
            len += (size_t)w;
    }
}

static void tc_data(struct lb_ureq *req, const uint8_t *data, size_t len, void *arg)
{
    struct tc_req *r = arg;
    size_t room = r->received < sizeof(r->body) ? sizeof(r->body) - r->received : 0;

    memcpy(r->body + r->received, data, len < room ? len : room);
    r->received += len;
    if (r->cancel_in_data) {
        lb_ureq_cancel(req);
        r->req = NULL;
        r->ended = true; /* the test's "done": no on_end comes for a cancelled request */
        return;
    }
    if (r->manual)
        r->unconsumed += len;
    else
        lb_ureq_consume(req, len);
}

static void tc_end(struct lb_ureq *req KF_UNUSED, int error, void *arg)
{
    struct tc_req *r = arg;

    cr_assert_not(r->ended, "on_end ran twice");
    r->ended = true;
    r->error = error;
    r->end_ms = kf_now_ms();
    r->req = NULL;
    if (r->cancel_then && r->cancel_then->req) {
        lb_ureq_cancel(r->cancel_then->req);
        r->cancel_then->req = NULL;
    }
    if (r->then)
        tc_start(r->up, r->pool, r->then, "GET", r->then_path, NULL);
}

const struct lb_ureq_callbacks tc_cbs = {tc_headers, tc_data, tc_end};

void tc_start(struct lb_upstream *up, struct lb_pool *pool, struct tc_req *r, const char *method,
              const char *path, const struct lb_ureq_spec *base)
{
    struct lb_ureq_spec spec = base ? *base : (struct lb_ureq_spec){0};
    int rc;

    r->up = up;
    r->pool = pool;
    spec.method = method;
    spec.path = path;
    if (!base)
        spec.idempotent = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    rc = lb_ureq_start(up, pool, &spec, &tc_cbs, r, &r->req);
    cr_assert_eq(rc, 0, "lb_ureq_start %s %s: %d", method, path, rc);
}

bool tc_wait(struct event_base *base, const bool *flag, int max_ms)
{
    uint64_t deadline = kf_now_ms() + (uint64_t)max_ms;

    while (!*flag && kf_now_ms() < deadline)
        t_run_for(base, 2);
    return *flag;
}

bool tc_wait_int(struct event_base *base, const int *v, int want, int max_ms)
{
    uint64_t deadline = kf_now_ms() + (uint64_t)max_ms;

    while (*v < want && kf_now_ms() < deadline)
        t_run_for(base, 2);
    return *v >= want;
}

void tc_consume(struct tc_req *r, size_t n)
{
    r->unconsumed -= n;
    lb_ureq_consume(r->req, n);
}

void tfx_init(struct tfx *f)
{
    memset(f, 0, sizeof(*f));
    if (getenv("LB_DEBUG"))
        kf_log_threshold = KF_LOG_DEBUG;
    f->base = event_base_new();
    cr_assert_not_null(f->base);
    f->cfg.connect_timeout_ms = 500;
    f->cfg.health_poll_ms = 20;
    f->cfg.queue_timeout_ms = 2000;
    f->cfg.ping_interval_ms = 2000;
    f->cfg.ping_timeout_ms = 1000;
}

void tfx_up(struct tfx *f, const char *addr1, const char *addr2)
{
    struct config_backend *b;

    tcfg_init(&f->t);
    b = tcfg_backend(&f->t, "api", CONFIG_BALANCE_ROUNDROBIN);
    tcfg_server(&f->t, b, "s1", addr1)->check = false;
    if (addr2)
        tcfg_server(&f->t, b, "s2", addr2)->check = false;
    f->lb = t_lb_new(&f->t, NULL);
    f->pool = lb_find_pool(f->lb, "api");
    f->up = lb_upstream_new(f->base, &f->cfg);
    cr_assert_not_null(f->up);
}

struct lb_server *tfx_server(struct tfx *f, int i)
{
    return t_server(f->lb, "api", i == 0 ? "s1" : "s2");
}

void tfx_done(struct tfx *f)
{
    lb_upstream_free(f->up);
    for (int i = 0; i < 2; i++) {
        struct lb_server *s = f->lb ? tfx_server(f, i) : NULL;
        if (s)
            cr_expect_eq(atomic_load(&s->active_conns), 0, "picks left on %s", s->label);
        ts_stop(&f->s[i]);
    }
    lb_release(f->lb);
    event_base_free(f->base);
}
