/*
 * HTTP/1.1 connections: one request at a time (pipelined requests wait in
 * the input buffer), http-parser for framing, and a strict pre-check of every
 * request head so that ambiguous framing never reaches the parser: anything a
 * front proxy and a backend could read differently is a 400 and a close.
 */
#include "proxy/http/http_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <http_parser.h>

enum h1_state {
    H1_IDLE,      /* between requests */
    H1_HEAD,      /* reading a request head */
    H1_BODY,      /* reading its body (buffered) */
    H1_STREAM,    /* the handler has it; its body is still arriving (streamed) */
    H1_BUSY,      /* the handler has it; input waits */
    H1_UPGRADING, /* 101 queued; hand over once flushed */
    H1_DONE,      /* no more requests on this connection */
};

static const char *const h1_state_name[] = {
    [H1_IDLE] = "idle", [H1_HEAD] = "head",           [H1_BODY] = "body", [H1_STREAM] = "stream",
    [H1_BUSY] = "busy", [H1_UPGRADING] = "upgrading", [H1_DONE] = "done",
};

static const unsigned h1_allowed[] = {
    [H1_IDLE] = 1u << H1_HEAD | 1u << H1_DONE,
    [H1_HEAD] = 1u << H1_BODY | 1u << H1_STREAM | 1u << H1_BUSY | 1u << H1_DONE,
    [H1_BODY] = 1u << H1_BUSY | 1u << H1_DONE,
    [H1_STREAM] = 1u << H1_BUSY | 1u << H1_DONE,
    [H1_BUSY] = 1u << H1_IDLE | 1u << H1_UPGRADING | 1u << H1_DONE,
    [H1_UPGRADING] = 1u << H1_DONE,
    [H1_DONE] = 0,
};

struct h1_conn {
    struct px_conn base;
    enum h1_state state;
    http_parser parser;
    struct px_request *req; /* being received or served; transport-owned */
    unsigned served;        /* requests answered on this connection */
    size_t scan_from;       /* resume point of the search for the end of the head */
    /* parser callback scratch: pieces of the current field, inside the head buffer */
    const char *url, *field, *value;
    size_t url_len, field_len, value_len;
    int err_status; /* set by a callback that rejects the request */
    const char *err_msg;
    bool msg_done;     /* on_message_complete seen */
    bool close_after;  /* no keep-alive after the current response */
    bool chunked_resp; /* the current response uses chunked framing */
    int minor;         /* HTTP/1.minor of the current request */
    bool body_timer;   /* STREAM: the body timeout runs (the connection is being read) */
    px_upgrade_cb up_cb;
    void *up_arg;
};

static struct h1_conn *h1_of(struct px_conn *c)
{
    return kf_container_of(c, struct h1_conn, base);
}

static void h1_set_state(struct h1_conn *h, enum h1_state next)
{
    KF_BUG_ON(!(h1_allowed[h->state] & (1u << next)));
    kf_debug(PX_MOD, "conn %llu h1: %s -> %s", (unsigned long long)h->base.id,
             h1_state_name[h->state], h1_state_name[next]);
    h->state = next;
}

/* ---- strict head check ------------------------------------------------------ */

/*
 * head is a complete request head ending in CRLF CRLF. Rejects what
 * http-parser tolerates but an upstream might read differently: bare CR or
 * LF, control characters, obs-fold continuation lines, and anything but a
 * token right before the colon (e.g. "Content-Length : 5").
 */
static int h1_head_check(const char *head, size_t len, const char **why)
{
    size_t i = 0;

    for (bool first = true; i < len; first = false) {
        const char *lf = memchr(head + i, '\n', len - i);
        size_t end = (size_t)(lf - head), k = 0;
        const char *line = head + i;

        if (!lf || end == i || head[end - 1] != '\r')
            return *why = "bare LF", -EINVAL;
        size_t llen = end - 1 - i;

        if (llen == 0)
            return end + 1 == len ? 0 : (*why = "stray empty line", -EINVAL);
        for (size_t j = 0; j < llen; j++) {
            unsigned char ch = (unsigned char)line[j];

            if (ch == '\r' || (ch < 0x20 && (ch != '\t' || first)) || ch == 0x7f)
                return *why = "control character", -EINVAL;
        }
        if (!first) {
            if (line[0] == ' ' || line[0] == '\t')
                return *why = "obsolete line folding", -EINVAL;
            while (k < llen && px_is_tchar((unsigned char)line[k]))
                k++;
            if (k == 0 || k == llen || line[k] != ':')
                return *why = "invalid header name", -EINVAL;
        }
        i = end + 1;
    }
    return *why = "no end of head", -EINVAL;
}

/* ---- parser callbacks ----------------------------------------------------------- */

static int h1_reject(struct h1_conn *h, int status, const char *msg)
{
    h->err_status = status;
    h->err_msg = msg;
    return -1;
}

/* Pieces of one element are adjacent because the head is parsed from one buffer. */
static void piece(const char **start, size_t *len, const char *at, size_t n)
{
    if (!*start)
        *start = at;
    *len += n;
}

static int h1_commit_field(struct h1_conn *h)
{
    int rc = 0;

    if (h->field)
        rc = px_headers_add(h->req->arena, &h->req->headers, h->field, h->field_len,
                            h->value ? h->value : "", h->value_len, true);
    h->field = h->value = NULL;
    h->field_len = h->value_len = 0;
    return rc < 0 ? h1_reject(h, 500, "out of memory") : 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    struct h1_conn *h = p->data;

    piece(&h->url, &h->url_len, at, n);
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    struct h1_conn *h = p->data;

    if (h->state != H1_HEAD)
        return 0; /* chunked trailers: ignored */
    if (h->value && h1_commit_field(h) < 0)
        return -1;
    piece(&h->field, &h->field_len, at, n);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    struct h1_conn *h = p->data;

    if (h->state == H1_HEAD)
        piece(&h->value, &h->value_len, at, n);
    return 0;
}

static size_t header_count(const struct px_request *req, const char *name)
{
    size_t n = 0;

    for (size_t i = 0; i < req->headers.n; i++)
        n += strcmp(req->headers.v[i].name, name) == 0;
    return n;
}

/* origin-form, absolute-form or "*"; CONNECT's authority-form is refused. */
static int h1_target(struct h1_conn *h, struct px_request *req)
{
    struct http_parser_url u;

    if (h->url_len && (h->url[0] == '/' || (h->url_len == 1 && h->url[0] == '*')))
        return px_request_set_target(req, h->url, h->url_len);
    http_parser_url_init(&u);
    if (http_parser_parse_url(h->url, h->url_len, 0, &u) != 0 || !(u.field_set & (1 << UF_HOST)))
        return -EINVAL;
    if (u.field_set & (1 << UF_PATH))
        px_request_set_target(req, h->url + u.field_data[UF_PATH].off,
                              h->url_len - u.field_data[UF_PATH].off);
    else
        px_request_set_target(req, "/", 1);
    size_t host_end = u.field_data[UF_HOST].off + u.field_data[UF_HOST].len;

    if (u.field_set & (1 << UF_PORT))
        host_end = u.field_data[UF_PORT].off + u.field_data[UF_PORT].len;
    req->authority = kf_arena_strndup(req->arena, h->url + u.field_data[UF_HOST].off,
                                      host_end - u.field_data[UF_HOST].off);
    return 0;
}

/* Framing rules: the smuggling defences beyond http-parser's own. */
static int h1_check_framing(struct h1_conn *h, http_parser *p, struct px_request *req)
{
    size_t te = header_count(req, "transfer-encoding");
    bool has_body = (p->flags & F_CHUNKED) || ((p->flags & F_CONTENTLENGTH) && p->content_length);

    if (te && (te > 1 || !(p->flags & F_CHUNKED) ||
               strcasecmp(px_request_header(req, "transfer-encoding"), "chunked") != 0))
        return h1_reject(h, 400, "unsupported Transfer-Encoding");
    if (te && header_count(req, "content-length"))
        return h1_reject(h, 400, "both Content-Length and Transfer-Encoding");
    if (header_count(req, "content-length") > 1)
        return h1_reject(h, 400, "multiple Content-Length");
    if (h->minor >= 1 ? header_count(req, "host") != 1 : header_count(req, "host") > 1)
        return h1_reject(h, 400, "missing or repeated Host");
    if (req->is_upgrade && has_body)
        return h1_reject(h, 400, "upgrade request with a body");
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > h->base.server->cfg.max_body_bytes)
        return h1_reject(h, 413, "request body too large");
    return 0;
}

static int h1_expect(struct h1_conn *h, http_parser *p, struct px_request *req)
{
    const char *expect = px_request_header(req, "expect");
    bool has_body = (p->flags & F_CHUNKED) || ((p->flags & F_CONTENTLENGTH) && p->content_length);

    if (!expect)
        return 0;
    if (strcasecmp(expect, "100-continue") != 0 || h->minor < 1)
        return h1_reject(h, 417, "unsupported expectation");
    if (has_body)
        evbuffer_add(bufferevent_get_output(h->base.bev), "HTTP/1.1 100 Continue\r\n\r\n", 25);
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct h1_conn *h = p->data;
    struct px_request *req = h->req;
    const char *host;

    if (h1_commit_field(h) < 0)
        return -1;
    if (p->http_major != 1)
        return h1_reject(h, 400, "unsupported HTTP version");
    h->minor = p->http_minor;
    req->method = http_method_str(p->method);
    req->head_only = p->method == HTTP_HEAD;
    req->is_upgrade = p->upgrade && p->method != HTTP_CONNECT;
    if (p->method == HTTP_CONNECT || h1_target(h, req) < 0)
        return h1_reject(h, 400, "invalid request target");
    if (h1_check_framing(h, p, req) < 0 || h1_expect(h, p, req) < 0)
        return -1;
    host = px_request_header(req, "host");
    if (host && !*req->authority)
        req->authority = host;
    h->close_after = !http_should_keep_alive(p) || req->is_upgrade || !px_conn_open(&h->base) ||
                     h->base.goaway_requested;
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    struct h1_conn *h = p->data;
    int rc;

    if (h->state == H1_STREAM && !px_body_open(h->req))
        return 0; /* nobody wants it any more */
    rc = px_body_append(h->req, at, n);
    if (rc == -EMSGSIZE)
        return h1_reject(h, 413, "request body too large");
    return rc < 0 ? h1_reject(h, 500, "out of memory") : 0;
}

static int on_message_complete(http_parser *p)
{
    struct h1_conn *h = p->data;

    h->msg_done = true;
    http_parser_pause(p, 1); /* one request at a time */
    return 0;
}

static const http_parser_settings h1_settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- request flow ------------------------------------------------------------------ */

static void h1_release_req(struct h1_conn *h)
{
    struct px_request *req = h->req;

    h->req = NULL;
    if (req)
        px_request_transport_done(req);
}

/* A response the server writes itself, then the connection closes. */
static void h1_fail(struct h1_conn *h, int status, const char *msg)
{
    struct evbuffer *out = bufferevent_get_output(h->base.bev);
    struct kf_arena *a = h->req ? h->req->arena : NULL;
    size_t len;
    const char *body = a ? px_status_body(a, status, msg, &len) : "";

    if (!a)
        len = 0;
    PX_INC(h->base.server, protocol_errors);
    if (status == 413) {
        PX_DEC(h->base.server, protocol_errors);
        PX_INC(h->base.server, body_too_large);
    }
    kf_debug(PX_MOD, "conn %llu h1: %d %s", (unsigned long long)h->base.id, status, msg);
    evbuffer_add_printf(out,
                        "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: "
                        "%zu\r\nConnection: close\r\nDate: %s\r\n\r\n",
                        status, px_status_reason(status), len, px_http_date());
    evbuffer_add(out, body, len);
    h1_set_state(h, H1_DONE);
    h1_release_req(h);
    px_conn_finish(&h->base);
}

static void h1_parser_reset(struct h1_conn *h)
{
    http_parser_init(&h->parser, HTTP_REQUEST);
    h->parser.data = h;
    h->url = h->field = h->value = NULL;
    h->url_len = h->field_len = h->value_len = 0;
    h->err_status = 0;
    h->msg_done = false;
    h->scan_from = 0;
}

static void h1_enter_idle(struct h1_conn *h)
{
    h1_set_state(h, H1_IDLE);
    px_conn_timer(&h->base, h->base.server->cfg.idle_timeout_ms);
}

static void h1_dispatch(struct h1_conn *h)
{
    h1_set_state(h, H1_BUSY);
    px_conn_timer(&h->base, 0);
    px_request_dispatch(h->req);
}

/* A streamed body: the handler gets the request now, the body as it comes. */
static void h1_dispatch_stream(struct h1_conn *h)
{
    h1_set_state(h, H1_STREAM);
    h->body_timer = true;
    px_conn_timer(&h->base, h->base.server->cfg.body_timeout_ms);
    px_request_dispatch(h->req);
}

/* Start the next request once a byte of it is here; skips stray CRLFs. */
static bool h1_begin(struct h1_conn *h, struct evbuffer *in)
{
    char crlf[2];

    while (evbuffer_copyout(in, crlf, 2) == 2 && crlf[0] == '\r' && crlf[1] == '\n')
        evbuffer_drain(in, 2);
    if (evbuffer_get_length(in) == 0 || (evbuffer_get_length(in) == 1 && crlf[0] == '\r'))
        return false;
    h->req = px_request_new(&h->base, sizeof(struct px_request), 1);
    if (!h->req) {
        px_conn_close(&h->base, "out of memory");
        return false;
    }
    h1_parser_reset(h);
    h1_set_state(h, H1_HEAD);
    px_conn_timer(&h->base, h->base.server->cfg.header_timeout_ms);
    return true;
}

static void h1_body_failed(struct h1_conn *h, int error);

/* Feed http-parser and report its verdict; true if it may go on. */
static bool h1_parse(struct h1_conn *h, const char *data, size_t len, size_t *used)
{
    enum http_errno e;
    int status;

    *used = http_parser_execute(&h->parser, &h1_settings, data, len);
    e = HTTP_PARSER_ERRNO(&h->parser);
    if (!h->err_status && (e == HPE_OK || e == HPE_PAUSED))
        return true;
    status = h->err_status ? h->err_status : 400;
    if (h->state == H1_STREAM) /* the handler has the request: it answers */
        h1_body_failed(h, status == 413 ? -EMSGSIZE : status == 500 ? -ENOMEM : -EBADMSG);
    else
        h1_fail(h, status, h->err_status ? h->err_msg : http_errno_description(e));
    return false;
}

static bool h1_read_head(struct h1_conn *h, struct evbuffer *in)
{
    size_t max = h->base.server->cfg.max_header_bytes, avail = evbuffer_get_length(in), used;
    struct evbuffer_ptr from, end;
    const char *why;
    char *head;

    evbuffer_ptr_set(in, &from, h->scan_from, EVBUFFER_PTR_SET);
    end = evbuffer_search(in, "\r\n\r\n", 4, &from);
    if (end.pos < 0 || (size_t)end.pos + 4 > max) {
        if (avail > max || (end.pos >= 0 && (size_t)end.pos + 4 > max))
            h1_fail(h, 431, "request header fields too large");
        else
            h->scan_from = avail > 3 ? avail - 3 : 0;
        return false;
    }
    size_t head_len = (size_t)end.pos + 4;

    head = (char *)evbuffer_pullup(in, (ssize_t)head_len);
    if (!head) {
        px_conn_close(&h->base, "out of memory");
        return false;
    }
    if (h1_head_check(head, head_len, &why) < 0) {
        h1_fail(h, 400, why);
        return false;
    }
    if (!h1_parse(h, head, head_len, &used))
        return false;
    evbuffer_drain(in, used);
    if (h->msg_done) {
        h1_dispatch(h);
    } else if (px_body_choose(h->req)) {
        h1_dispatch_stream(h);
    } else {
        h1_set_state(h, H1_BODY);
        px_conn_timer(&h->base, h->base.server->cfg.body_timeout_ms);
    }
    return true;
}

static bool h1_read_body(struct h1_conn *h, struct evbuffer *in)
{
    struct evbuffer_iovec v;
    size_t used;
    bool progress = false;

    while (!h->msg_done && evbuffer_peek(in, -1, NULL, &v, 1) > 0 && v.iov_len) {
        if (!h1_parse(h, v.iov_base, v.iov_len, &used))
            return false;
        evbuffer_drain(in, used);
        progress = true;
        if (used < v.iov_len && !h->msg_done) {
            h1_fail(h, 400, "malformed body");
            return false;
        }
    }
    if (h->msg_done) {
        h1_dispatch(h);
        return true;
    }
    if (progress)
        px_conn_timer(&h->base, h->base.server->cfg.body_timeout_ms);
    return false;
}

/* ---- streamed bodies ----------------------------------------------------------------- */

/* The body stops short: the rest is never read, the handler hears why and answers. */
static void h1_body_failed(struct h1_conn *h, int error)
{
    if (error == -EMSGSIZE)
        PX_INC(h->base.server, body_too_large);
    else if (error != -ETIMEDOUT)
        PX_INC(h->base.server, protocol_errors);
    kf_debug(PX_MOD, "conn %llu h1: streamed body failed: %s", (unsigned long long)h->base.id,
             strerror(-error));
    h->close_after = true;
    px_body_finish(h->req, error);
    h1_set_state(h, H1_BUSY);
    px_conn_timer(&h->base, 0);
}

/* Give the handler what it will take; true when that moved the connection on (it answered). */
static bool h1_deliver(struct h1_conn *h)
{
    enum h1_state before = h->state;

    if (!h->req || !px_request_body_streamed(h->req))
        return false;
    px_body_deliver(h->req); /* may end and free the request */
    return h->state != before;
}

/* The body timeout runs only while the connection is read for this body. */
static void h1_body_timer(struct h1_conn *h, bool progress)
{
    if (px_body_buffered(h->req) >= PX_BODY_BUF) {
        px_conn_timer(&h->base, 0);
        h->body_timer = false;
    } else if (progress || !h->body_timer) {
        px_conn_timer(&h->base, h->base.server->cfg.body_timeout_ms);
        h->body_timer = true;
    }
}

/*
 * Parse body bytes while the request's buffer has room for them: a paused or
 * slow handler leaves the input unparsed, and a full input buffer stops
 * libevent from reading the socket, so the client's TCP window closes.
 */
static bool h1_read_stream(struct h1_conn *h, struct evbuffer *in)
{
    struct evbuffer_iovec v;
    size_t used;
    bool progress = false;

    if (h1_deliver(h))
        return true;
    while (!h->msg_done && px_body_buffered(h->req) < PX_BODY_BUF &&
           evbuffer_peek(in, -1, NULL, &v, 1) > 0 && v.iov_len) {
        size_t room = PX_BODY_BUF - px_body_buffered(h->req);
        size_t n = v.iov_len < room ? v.iov_len : room;

        if (!h1_parse(h, v.iov_base, n, &used))
            return true;
        evbuffer_drain(in, used);
        progress = true;
        if (used < n && !h->msg_done) {
            h1_body_failed(h, -EBADMSG);
            return true;
        }
    }
    if (h->msg_done) {
        px_body_finish(h->req, 0);
        h1_set_state(h, H1_BUSY);
        px_conn_timer(&h->base, 0);
        return true;
    }
    h1_body_timer(h, progress);
    return progress;
}

static void h1_process(struct h1_conn *h)
{
    struct evbuffer *in;
    bool more = true;

    px_conn_hold(&h->base);
    while (more && px_conn_open(&h->base) && h->base.bev) {
        in = bufferevent_get_input(h->base.bev);
        switch (h->state) {
        case H1_IDLE:
            more = !h->base.goaway_requested && h1_begin(h, in);
            break;
        case H1_HEAD:
            more = h1_read_head(h, in);
            break;
        case H1_BODY:
            more = h1_read_body(h, in);
            break;
        case H1_STREAM:
            more = h1_read_stream(h, in);
            break;
        case H1_BUSY:
            more = h1_deliver(h);
            break;
        default:
            more = false;
        }
    }
    px_conn_put(&h->base);
}

/* ---- response ops ------------------------------------------------------------------ */

static void h1_write_headers(struct evbuffer *out, const struct px_request *req)
{
    for (size_t i = 0; i < req->resp_headers.n; i++) {
        const struct px_header *f = &req->resp_headers.v[i];

        evbuffer_add(out, f->name, f->name_len); /* lengths: relayed fields are not copied */
        evbuffer_add(out, ": ", 2);
        evbuffer_add(out, f->value, f->value_len);
        evbuffer_add(out, "\r\n", 2);
    }
    if (!px_headers_get(&req->resp_headers, "date"))
        evbuffer_add_printf(out, "Date: %s\r\n", px_http_date());
}

static int h1_resp_start(struct px_request *req, bool no_body)
{
    struct h1_conn *h = h1_of(req->conn);
    struct evbuffer *out = bufferevent_get_output(h->base.bev);

    if (h->base.goaway_requested || atomic_load(&h->base.server->shutting_down))
        h->close_after = true;
    if (h->state == H1_STREAM)
        h->close_after = true; /* the rest of the body is not read: no keep-alive */
    h->chunked_resp = false;
    evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n", req->status, px_status_reason(req->status));
    h1_write_headers(out, req);
    if (req->resp_length >= 0)
        evbuffer_add_printf(out, "Content-Length: %lld\r\n", (long long)req->resp_length);
    else if (!no_body && h->minor >= 1)
        h->chunked_resp = true, evbuffer_add(out, "Transfer-Encoding: chunked\r\n", 28);
    else if (!no_body)
        h->close_after = true; /* HTTP/1.0 stream: the close delimits the body */
    else if (req->status != 204 && req->status != 304 && !req->head_only)
        evbuffer_add(out, "Content-Length: 0\r\n", 19);
    if (h->close_after)
        evbuffer_add(out, "Connection: close\r\n", 19);
    else if (h->minor == 0)
        evbuffer_add(out, "Connection: keep-alive\r\n", 24);
    evbuffer_add(out, "\r\n", 2);
    return 0;
}

static int h1_resp_write(struct px_request *req, const void *data, size_t len, bool copy,
                         px_free_cb cleanup, void *arg)
{
    struct h1_conn *h = h1_of(req->conn);
    struct evbuffer *out = bufferevent_get_output(h->base.bev);
    int rc;

    if (h->chunked_resp)
        evbuffer_add_printf(out, "%zx\r\n", len);
    rc = copy ? evbuffer_add(out, data, len) : evbuffer_add_reference(out, data, len, cleanup, arg);
    if (rc < 0) {
        if (!copy && cleanup)
            cleanup(data, len, arg);
        px_conn_close(&h->base, "out of memory");
        return -ENOMEM;
    }
    if (h->chunked_resp)
        evbuffer_add(out, "\r\n", 2);
    px_conn_kick(&h->base); /* h1_on_kick sends the burst coalesced: a chunk is three pieces */
    return 0;
}

static int h1_resp_end(struct px_request *req)
{
    struct h1_conn *h = h1_of(req->conn);

    if (h->chunked_resp)
        evbuffer_add(bufferevent_get_output(h->base.bev), "0\r\n\r\n", 5);
    h->served++;
    h1_release_req(h);
    if (h->close_after) {
        px_conn_coalesce(&h->base);
        h1_set_state(h, H1_DONE);
        px_conn_finish(&h->base);
    } else {
        h1_enter_idle(h);
        px_conn_kick(&h->base); /* the answer goes out; a pipelined request may be waiting */
    }
    return 0;
}

/* Flush what was queued, then close without the last chunk: the client sees a short body. */
static void h1_resp_abort(struct px_request *req)
{
    struct h1_conn *h = h1_of(req->conn);

    h1_release_req(h);
    h1_set_state(h, H1_DONE);
    px_conn_finish(&h->base);
}

static size_t h1_resp_pending(const struct px_request *req)
{
    return px_conn_out_len(req->conn);
}

static int h1_resp_upgrade(struct px_request *req, px_upgrade_cb cb, void *arg)
{
    struct h1_conn *h = h1_of(req->conn);
    struct evbuffer *out = bufferevent_get_output(h->base.bev);

    evbuffer_add(out, "HTTP/1.1 101 Switching Protocols\r\n", 34);
    h1_write_headers(out, req);
    evbuffer_add(out, "Connection: Upgrade\r\n\r\n", 23);
    h->up_cb = cb;
    h->up_arg = arg;
    h1_set_state(h, H1_UPGRADING);
    h1_release_req(h);
    return 0;
}

static void h1_req_free(struct px_request *req)
{
    struct h1_conn *h = h1_of(req->conn);

    if (h->req == req)
        h->req = NULL;
}

/* ---- connection ops ------------------------------------------------------------------ */

static void h1_on_read(struct px_conn *c)
{
    h1_process(h1_of(c));
}

/* Deferred work: a pipelined request, body bytes for the handler, and the output queued since
 * the last kick, sent as one burst (px_conn_coalesce). */
static void h1_on_kick(struct px_conn *c)
{
    h1_process(h1_of(c));
    px_conn_coalesce(c);
}

static void h1_on_write(struct px_conn *c)
{
    struct h1_conn *h = h1_of(c);

    if (h->state == H1_UPGRADING && px_conn_out_len(c) == 0) {
        px_upgrade_cb cb = h->up_cb;

        h1_set_state(h, H1_DONE);
        h->up_cb = NULL;
        cb(px_conn_detach(c), h->up_arg);
    } else if (h->req) {
        px_request_check_drain(h->req);
    }
}

static void h1_on_timeout(struct px_conn *c)
{
    struct h1_conn *h = h1_of(c);

    PX_INC(c->server, timeouts);
    if (h->state == H1_STREAM) { /* the handler answers (408) or aborts */
        h1_body_failed(h, -ETIMEDOUT);
        h1_process(h);
        return;
    }
    px_conn_close(c, h->state == H1_IDLE   ? "idle timeout"
                     : h->state == H1_HEAD ? "header timeout"
                                           : "body timeout");
}

static void h1_goaway(struct px_conn *c)
{
    struct h1_conn *h = h1_of(c);

    h->close_after = true;
    if (h->state == H1_IDLE) {
        h1_set_state(h, H1_DONE);
        px_conn_finish(c);
    }
}

static void h1_teardown(struct px_conn *c)
{
    struct h1_conn *h = h1_of(c);
    px_upgrade_cb cb = h->up_cb;

    h->up_cb = NULL;
    h1_release_req(h);
    if (cb)
        cb(NULL, h->up_arg);
}

static void h1_body_kick(struct px_request *req)
{
    px_conn_kick(req->conn);
}

static void h1_destroy(struct px_conn *c)
{
    free(h1_of(c));
}

static const struct px_conn_ops h1_ops = {
    .name = "h1",
    .on_read = h1_on_read,
    .on_write = h1_on_write,
    .on_kick = h1_on_kick,
    .on_timeout = h1_on_timeout,
    .goaway = h1_goaway,
    .teardown = h1_teardown,
    .destroy = h1_destroy,
    .resp_start = h1_resp_start,
    .resp_write = h1_resp_write,
    .resp_end = h1_resp_end,
    .resp_abort = h1_resp_abort,
    .resp_pending = h1_resp_pending,
    .req_free = h1_req_free,
    .resp_upgrade = h1_resp_upgrade,
    .body_kick = h1_body_kick,
};

int px_h1_start(struct px_transport *t)
{
    struct h1_conn *h = calloc(1, sizeof(*h));
    struct px_server *server = t->loop->server;
    int rc = h ? px_conn_init(&h->base, &h1_ops, t) : -ENOMEM;

    if (rc < 0) {
        free(h);
        bufferevent_free(t->bev);
        px_tls_peer_free(t->tls_peer);
        return rc;
    }
    PX_INC(server, conns_h1);
    /* Bounded input while a request is served: pipelined bytes wait, then reading stops. */
    bufferevent_setwatermark(h->base.bev, EV_READ, 0, server->cfg.max_header_bytes + 4096);
    h->state = H1_IDLE;
    px_conn_timer(&h->base, server->cfg.header_timeout_ms);
    h1_process(h);
    return 0;
}
