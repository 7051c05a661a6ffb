/*
 * Admin endpoints on the control thread: /healthz, /readyz, /metrics.
 * Loopback by default and tiny: one GET per connection, answered and closed,
 * parsed with http-parser. It deliberately does not use the data plane's
 * HTTP stack, so the operator's view survives whatever happens there.
 */
#include "proxy/proxy_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <http_parser.h>

#define ADMIN_MAX_REQUEST 8192
#define ADMIN_TIMEOUT_S   10

struct px_admin {
    struct px_daemon *daemon;
    struct evconnlistener *listener;
    struct kf_list conns; /* freed with the admin if still open at exit */
};

struct admin_conn {
    struct kf_list link;
    struct px_admin *admin;
    struct bufferevent *bev;
    http_parser parser;
    char path[256];
    size_t path_len;
    bool complete, path_too_long;
};

static void conn_free(struct admin_conn *c)
{
    kf_list_remove(&c->link);
    bufferevent_free(c->bev);
    free(c);
}

static void reply(struct admin_conn *c, int status, const char *reason, struct evbuffer *body)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);

    evbuffer_add_printf(out,
                        "HTTP/1.1 %d %s\r\nContent-Type: text/plain; version=0.0.4; "
                        "charset=utf-8\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                        status, reason, evbuffer_get_length(body));
    evbuffer_add_buffer(out, body);
}

static void serve(struct admin_conn *c)
{
    struct px_daemon *d = c->admin->daemon;
    struct evbuffer *body = evbuffer_new();
    char *q = strchr(c->path, '?');

    if (!body)
        return;
    if (q)
        *q = '\0';
    if (c->parser.method != HTTP_GET && c->parser.method != HTTP_HEAD) {
        evbuffer_add_printf(body, "method not allowed\n");
        reply(c, 405, "Method Not Allowed", body);
    } else if (strcmp(c->path, "/healthz") == 0 || strcmp(c->path, "/livez") == 0) {
        evbuffer_add_printf(body, "ok\n");
        reply(c, 200, "OK", body);
    } else if (strcmp(c->path, "/readyz") == 0) {
        bool draining = atomic_load(&d->draining), up = lb_any_server_up(d->gen->lb);
        evbuffer_add_printf(body, "%s\n", draining ? "draining" : up ? "ok" : "no backend is up");
        if (!draining && up)
            reply(c, 200, "OK", body);
        else
            reply(c, 503, "Service Unavailable", body);
    } else if (strcmp(c->path, "/metrics") == 0) {
        px_metrics_write(d, body);
        reply(c, 200, "OK", body);
    } else {
        evbuffer_add_printf(body, "not found; try /healthz, /readyz or /metrics\n");
        reply(c, 404, "Not Found", body);
    }
    evbuffer_free(body);
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct admin_conn *c = p->data;

    if (c->path_len + len >= sizeof(c->path)) {
        c->path_too_long = true;
        return 0;
    }
    memcpy(c->path + c->path_len, at, len);
    c->path_len += len;
    c->path[c->path_len] = '\0';
    return 0;
}

static int on_complete(http_parser *p)
{
    struct admin_conn *c = p->data;
    c->complete = true;
    return 1; /* one request per connection: stop parsing */
}

static const http_parser_settings parser_settings = {
    .on_url = on_url,
    .on_message_complete = on_complete,
};

static void on_written(struct bufferevent *bev, void *arg)
{
    (void)bev;
    conn_free(arg);
}

static void fail(struct admin_conn *c, int status, const char *reason)
{
    struct evbuffer *body = evbuffer_new();
    if (body) {
        evbuffer_add_printf(body, "%s\n", reason);
        reply(c, status, reason, body);
        evbuffer_free(body);
    }
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct admin_conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t len = evbuffer_get_length(in);
    char *data = (char *)evbuffer_pullup(in, -1);

    http_parser_execute(&c->parser, &parser_settings, data, len);
    evbuffer_drain(in, len);
    if (c->complete && !c->path_too_long)
        serve(c);
    else if (c->complete || c->path_too_long)
        fail(c, 414, "URI Too Long");
    else if (HTTP_PARSER_ERRNO(&c->parser) != HPE_OK || c->parser.nread > ADMIN_MAX_REQUEST)
        fail(c, 400, "Bad Request");
    else
        return; /* need more */
    bufferevent_disable(bev, EV_READ);
    bufferevent_setcb(bev, NULL, on_written, NULL, c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    (void)what;
    conn_free(arg); /* EOF, error or timeout */
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                      void *arg)
{
    struct px_admin *admin = arg;
    struct admin_conn *c = calloc(1, sizeof(*c));
    struct timeval tv = {ADMIN_TIMEOUT_S, 0};

    (void)sa;
    (void)len;
    if (!c) {
        evutil_closesocket(fd);
        return;
    }
    c->admin = admin;
    c->bev = bufferevent_socket_new(evconnlistener_get_base(l), fd, BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev) {
        evutil_closesocket(fd);
        free(c);
        return;
    }
    kf_list_insert_tail(&admin->conns, &c->link);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
    bufferevent_set_timeouts(c->bev, &tv, &tv);
    bufferevent_enable(c->bev, EV_READ);
}

struct px_admin *px_admin_start(struct px_daemon *d, const char *listen)
{
    struct px_admin *admin = calloc(1, sizeof(*admin));
    struct sockaddr_storage ss;
    unsigned len;

    if (!admin)
        return NULL;
    admin->daemon = d;
    kf_list_init(&admin->conns);
    if (kf_addr_parse(listen, &ss, &len) < 0) {
        kf_err("admin", "admin listen address \"%s\" is not ADDR:PORT", listen);
        goto fail;
    }
    admin->listener =
        evconnlistener_new_bind(d->base, on_accept, admin,
                                LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
                                128, (struct sockaddr *)&ss, (int)len);
    if (!admin->listener) {
        kf_err("admin", "cannot listen on %s: %s", listen, strerror(errno));
        goto fail;
    }
    kf_info("admin", "admin endpoints on http://%s (/healthz /readyz /metrics)", listen);
    return admin;
fail:
    free(admin);
    return NULL;
}

void px_admin_free(struct px_admin *admin)
{
    if (!admin)
        return;
    evconnlistener_free(admin->listener);
    while (!kf_list_empty(&admin->conns))
        conn_free(kf_container_of(admin->conns.next, struct admin_conn, link));
    free(admin);
}
