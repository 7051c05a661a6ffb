/*
 * HTTP/1.1 on an upstream connection: one request at a time, the response
 * parsed with http-parser (HTTP_RESPONSE: Content-Length, chunked, or read to
 * EOF; 1xx heads skipped; HEAD bodies skipped).
 *
 * Backpressure: the parser is fed at most PARSE_CHUNK bytes at a time and
 * stops while the consumer holds more than h1_high_water unconsumed bytes;
 * what is not parsed stays in the input buffer, whose read high-water mark
 * (the same value) makes libevent stop reading the socket. So a slow client
 * slows its upstream connection, which carries nothing else.
 *
 * A connection is reused only when the response ended cleanly, the server
 * did not ask to close, the whole request went out, and nothing unexpected
 * follows; idle connections beyond h1_idle_per_server are closed.
 */
#include "lb/upstream_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <http_parser.h>

#define PARSE_CHUNK (16 * 1024)
#define MAX_HEAD    (64 * 1024)
#define MAX_FIELDS  128

struct h1_field {
    size_t name_off, name_len, value_off, value_len;
};

struct h1_conn {
    http_parser parser;
    struct lb_ureq *req; /* the one request on the connection */
    char *head;          /* header names and values as they arrive */
    size_t head_len;
    struct h1_field fields[MAX_FIELDS];
    size_t n_fields;
    bool in_value;      /* the last piece was a value */
    bool informational; /* a 1xx head is being skipped */
    bool message_done;
    bool body_sent; /* the whole request went out */
    bool chunked;   /* streaming body without a length */
    bool eof;
};

static struct h1_conn *h1_of(http_parser *p)
{
    return ((struct up_conn *)p->data)->proto;
}

static void reset_head(struct h1_conn *h)
{
    h->head_len = 0;
    h->n_fields = 0;
    h->in_value = false;
}

/* ---- parser callbacks ----------------------------------------------------------------- */

static int append(struct h1_conn *h, const char *at, size_t len)
{
    if (h->head_len + len > MAX_HEAD)
        return -1;
    memcpy(h->head + h->head_len, at, len);
    h->head_len += len;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct h1_conn *h = h1_of(p);
    struct h1_field *f;

    if (h->in_value) {
        h->n_fields++;
        h->in_value = false;
    }
    if (h->n_fields >= MAX_FIELDS)
        return -1;
    f = &h->fields[h->n_fields];
    if (f->name_len == 0 || f->name_off + f->name_len != h->head_len) {
        f->name_off = h->head_len;
        f->name_len = 0;
        f->value_len = 0;
    }
    f->name_len += len;
    return append(h, at, len);
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct h1_conn *h = h1_of(p);
    struct h1_field *f = &h->fields[h->n_fields];

    if (!h->in_value) {
        h->in_value = true;
        f->value_off = h->head_len;
        f->value_len = 0;
    }
    f->value_len += len;
    return append(h, at, len);
}

/* The head as the consumer sees it: without what concerned this hop only (a
 * chunked Transfer-Encoding is already decoded, Connection is ours). */
static int copy_fields(struct h1_conn *h, struct lb_ureq *req)
{
    struct lb_uhdr all[MAX_FIELDS];

    for (size_t i = 0; i < h->n_fields; i++) {
        const struct h1_field *f = &h->fields[i];
        all[i] = (struct lb_uhdr){h->head + f->name_off, f->name_len, h->head + f->value_off,
                                  f->value_len};
    }
    up_req_reset_headers(req);
    for (size_t i = 0; i < h->n_fields; i++)
        if (!up_hop_by_hop(all, h->n_fields, &all[i]) &&
            up_req_add_header(req, all[i].name, all[i].name_len, all[i].value, all[i].value_len) <
                0)
            return -1;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct up_conn *c = p->data;
    struct h1_conn *h = c->proto;
    struct lb_ureq *req = h->req;

    if (h->in_value)
        h->n_fields++;
    h->in_value = false;
    if (p->status_code >= 100 && p->status_code < 200 && p->status_code != 101) {
        h->informational = true; /* 100 Continue, 103 Early Hints: not passed on */
        reset_head(h);
        return 0;
    }
    if (p->status_code == 101 || copy_fields(h, req) < 0)
        return -1; /* no upgrade was asked for; or too many headers */
    if (!up_req_deliver_headers(req, p->status_code))
        return -1; /* cancelled: the connection is closed */
    return req->head ? 1 : 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct h1_conn *h = h1_of(p);

    return up_req_deliver_data(h->req, (const uint8_t *)at, len) ? 0 : -1;
}

static int on_message_complete(http_parser *p)
{
    struct h1_conn *h = h1_of(p);

    if (h->informational) {
        h->informational = false;
        return 0;
    }
    h->message_done = true;
    http_parser_pause(p, 1); /* anything after it is not this response */
    return 0;
}

static int on_message_begin(http_parser *p)
{
    reset_head(h1_of(p));
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- reading ------------------------------------------------------------------------- */

static void idle_or_close(struct up_conn *c, bool reuse)
{
    struct kf_list *pos;
    size_t idle = 0;

    if (c->state == UP_CONN_CLOSED)
        return;
    if (reuse) {
        kf_list_for_each(pos, &c->us->conns)
        {
            struct up_conn *o = kf_container_of(pos, struct up_conn, link);
            idle += o->state == UP_CONN_READY && o->n_reqs == 0;
        }
        reuse = idle <= c->up->cfg.h1_idle_per_server;
    }
    if (!reuse)
        up_conn_close(c);
}

static void finish_message(struct up_conn *c)
{
    struct h1_conn *h = c->proto;
    struct lb_ureq *req = h->req;
    bool reuse = http_should_keep_alive(&h->parser) && h->body_sent && !h->eof &&
                 evbuffer_get_length(up_conn_input(c)) == 0;

    h->message_done = false;
    up_conn_detach(c, req, false);
    idle_or_close(c, reuse);
    up_req_complete(req);
}

static int parse(struct up_conn *c, const char *data, size_t len, size_t *parsed)
{
    struct h1_conn *h = c->proto;
    enum http_errno e;

    *parsed = http_parser_execute(&h->parser, &parser_settings, data, len);
    if (c->state == UP_CONN_CLOSED)
        return -ECANCELED;
    e = HTTP_PARSER_ERRNO(&h->parser);
    if (e == HPE_PAUSED) {
        http_parser_pause(&h->parser, 0);
        return 0;
    }
    if (e == HPE_OK)
        return 0;
    snprintf(c->error, sizeof(c->error), "http/1.1 response: %s", http_errno_description(e));
    up_conn_fail(c, -EPROTO, c->error);
    return -EPROTO;
}

/* The server closed: a body delimited by the close ends here, anything else is cut short. */
static void parse_eof(struct up_conn *c)
{
    struct h1_conn *h = c->proto;

    http_parser_execute(&h->parser, &parser_settings, NULL, 0);
    if (c->state == UP_CONN_CLOSED)
        return;
    if (h->message_done)
        finish_message(c);
    else
        up_conn_fail(c, -ECONNRESET, "connection closed before the response ended");
}

static void h1_process(struct up_conn *c)
{
    struct h1_conn *h = c->proto;
    struct evbuffer *in = up_conn_input(c);
    size_t len, parsed;

    if (h->req && h->req->body_drain_armed) { /* the output (its body) may have drained */
        up_req_body_progress(h->req);
        if (c->state == UP_CONN_CLOSED)
            return;
    }
    if (!h->req) {
        if (evbuffer_get_length(in) || h->eof)
            up_conn_close(c); /* bytes or a close on an idle connection: not reusable */
        return;
    }
    if (evbuffer_get_length(in))
        up_req_responding(h->req);
    while (!h->message_done && h->req->unconsumed < c->up->cfg.h1_high_water &&
           (len = evbuffer_get_contiguous_space(in)) > 0) {
        len = len < PARSE_CHUNK ? len : PARSE_CHUNK;
        if (parse(c, (const char *)evbuffer_pullup(in, (ssize_t)len), len, &parsed) < 0)
            return;
        up_conn_drain_input(c, parsed);
    }
    if (h->message_done)
        finish_message(c);
    else if (h->eof && evbuffer_get_length(in) == 0)
        parse_eof(c);
}

static bool h1_eof(struct up_conn *c)
{
    struct h1_conn *h = c->proto;

    h->eof = true;
    h1_process(c);
    return true;
}

/* ---- writing --------------------------------------------------------------------------- */

static int put_head(struct evbuffer *out, struct lb_ureq *req, bool *chunked)
{
    const char *cl = up_req_content_length(req);
    int rc = evbuffer_add_printf(out, "%s %s HTTP/1.1\r\nHost: %s\r\n", req->method, req->path,
                                 up_req_authority(req));

    for (size_t i = 0; rc >= 0 && i < req->n_headers; i++) {
        const struct lb_uhdr *hd = &req->headers[i];
        rc = evbuffer_add_printf(out, "%.*s: %.*s\r\n", (int)hd->name_len, hd->name,
                                 (int)hd->value_len, hd->value);
    }
    *chunked = req->body_streaming && req->content_length < 0;
    if (rc >= 0 && cl)
        rc = evbuffer_add_printf(out, "Content-Length: %s\r\n", cl);
    else if (rc >= 0 && *chunked)
        rc = evbuffer_add_printf(out, "Transfer-Encoding: chunked\r\n");
    if (rc >= 0)
        rc = evbuffer_add(out, "\r\n", 2);
    return rc < 0 ? -ENOMEM : 0;
}

/* Move what the request has of its body to the output (as chunks without a length). */
static int put_body(struct h1_conn *h, struct lb_ureq *req, struct evbuffer *out)
{
    uint8_t buf[16 * 1024];
    bool eof = false;
    size_t n;
    int rc = 0;

    while (rc == 0 && !h->body_sent &&
           ((n = up_req_body_read(req, buf, sizeof(buf), &eof)) || eof)) {
        if (n && h->chunked)
            rc = evbuffer_add_printf(out, "%zx\r\n", n) < 0 || evbuffer_add(out, buf, n) < 0 ||
                         evbuffer_add(out, "\r\n", 2) < 0
                     ? -ENOMEM
                     : 0;
        else if (n)
            rc = evbuffer_add(out, buf, n) < 0 ? -ENOMEM : 0;
        if (rc == 0 && eof) {
            h->body_sent = true;
            if (h->chunked)
                rc = evbuffer_add(out, "0\r\n\r\n", 5) < 0 ? -ENOMEM : 0;
        }
    }
    return rc;
}

static int write_request(struct up_conn *c, struct lb_ureq *req, bool with_head)
{
    struct h1_conn *h = c->proto;
    struct evbuffer *out = evbuffer_new();
    int rc;

    if (!out)
        return -ENOMEM;
    rc = with_head ? put_head(out, req, &h->chunked) : 0;
    if (rc == 0)
        rc = put_body(h, req, out);
    if (rc == 0)
        rc = up_conn_write_buffer(c, out);
    evbuffer_free(out);
    return rc;
}

static int h1_submit(struct up_conn *c, struct lb_ureq *req)
{
    struct h1_conn *h = c->proto;
    int rc;

    h->req = req;
    h->message_done = h->informational = h->body_sent = false;
    reset_head(h);
    http_parser_init(&h->parser, HTTP_RESPONSE);
    h->parser.data = c;
    req->body_off = 0;
    rc = write_request(c, req, true);
    if (rc < 0) {
        h->req = NULL;
        return rc;
    }
    req->wire = true;
    return 0;
}

static void h1_body_more(struct up_conn *c, struct lb_ureq *req)
{
    if (write_request(c, req, false) < 0)
        up_conn_fail(c, -ENOMEM, "out of memory");
}

/* ---- the rest of the ops ----------------------------------------------------------------- */

static void h1_consume(struct up_conn *c, struct lb_ureq *req, size_t n KF_UNUSED)
{
    if (req->unconsumed < c->up->cfg.h1_high_water && evbuffer_get_length(up_conn_input(c)))
        up_conn_kick(c);
}

static void h1_detach(struct up_conn *c, struct lb_ureq *req KF_UNUSED, bool cancel)
{
    struct h1_conn *h = c->proto;

    h->req = NULL;
    /* HTTP/1 cannot abandon a response and keep the connection */
    if (cancel && c->state != UP_CONN_CLOSED)
        up_conn_close(c);
}

static bool h1_has_capacity(struct up_conn *c)
{
    return c->state == UP_CONN_READY && c->n_reqs == 0;
}

static void h1_read(struct up_conn *c)
{
    h1_process(c);
}

static int h1_init(struct up_conn *c)
{
    struct h1_conn *h = calloc(1, sizeof(*h));

    if (!h || !(h->head = malloc(MAX_HEAD))) {
        free(h);
        return -ENOMEM;
    }
    c->proto = h;
    bufferevent_setwatermark(c->bev, EV_READ, 0, c->up->cfg.h1_high_water);
    up_conn_ready(c);
    return 0;
}

static void h1_destroy(struct up_conn *c)
{
    struct h1_conn *h = c->proto;

    if (!h)
        return;
    free(h->head);
    free(h);
    c->proto = NULL;
}

const struct up_proto_ops up_h1_ops = {
    .name = "http/1.1",
    .proto = UP_PROTO_H1,
    .init = h1_init,
    .destroy = h1_destroy,
    .read = h1_read,
    .flush = h1_process,
    .eof = h1_eof,
    .has_capacity = h1_has_capacity,
    .submit = h1_submit,
    .detach = h1_detach,
    .consume = h1_consume,
    .body_more = h1_body_more,
    .tick = NULL,
    .deadline = NULL,
};
