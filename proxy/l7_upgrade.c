/*
 * Protocol upgrades in L7 mode (exec, attach, port-forward: WebSocket, or SPDY
 * on older clients). The request goes to one apiserver over its own HTTP/1.1
 * connection (TLS with the backend's upstream context, so the identity
 * certificate applies) with the identity headers kfront vouches for; when the
 * apiserver answers 101, the client's connection is handed over and bytes are
 * copied both ways until either side closes. Any other answer is relayed as a
 * normal response.
 *
 * States: CONNECTING -> HANDSHAKE (request sent, reading the answer head) ->
 * TUNNEL -> CLOSED.
 */
#include "proxy/l7_upgrade.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/ssl.h>

#define MAX_HEAD   (16 * 1024)
#define MAX_BODY   (1024 * 1024)
#define HIGH_WATER (1024 * 1024)
#define MAX_HDRS   (L7_MAX_UPGRADE_HEADERS + 8)

enum up_state { UPG_CONNECTING, UPG_HANDSHAKE, UPG_TUNNEL, UPG_CLOSED };
static const char *const up_state_name[] = {"connecting", "handshake", "tunnel", "closed"};

struct l7_upgrade {
    enum up_state state;
    struct px_worker *worker;
    struct px_request *preq; /* until the handshake ends */
    struct px_reqinfo info;
    struct lb *lb;
    struct lb_server *server;
    struct bufferevent *up, *client;
    uint64_t started_us;
    int code;
};

static void set_state(struct l7_upgrade *u, enum up_state next)
{
    KF_BUG_ON(u->state == UPG_CLOSED);
    kf_debug("l7", "upgrade %s: %s -> %s", u->info.resource, up_state_name[u->state],
             up_state_name[next]);
    u->state = next;
}

static void upgrade_free(struct l7_upgrade *u)
{
    if (u->state != UPG_CLOSED)
        set_state(u, UPG_CLOSED);
    if (u->up)
        bufferevent_free(u->up);
    if (u->client)
        bufferevent_free(u->client);
    if (u->server)
        lb_server_conn_end(u->server);
    px_l7_count(u->worker, &u->info, u->code, kf_now_us() - u->started_us);
    lb_release(u->lb);
    free(u);
}

/* Before the hand-over: answer the client with a Status and end. */
static void fail(struct l7_upgrade *u, int code, const char *message)
{
    char body[512];
    int n;

    if (!u->preq) { /* between the 101 and the hand-over: nobody to answer */
        upgrade_free(u);
        return;
    }
    n = snprintf(body, sizeof(body),
                 "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":"
                 "\"Failure\",\"message\":\"%s\",\"reason\":\"ServiceUnavailable\",\"code\":%d}\n",
                 message, code);

    px_request_on_close(u->preq, NULL, NULL);
    px_response_simple(u->preq, code, "application/json", body, (size_t)n);
    u->code = code;
    upgrade_free(u);
}

static void on_client_gone(struct px_request *preq, void *arg)
{
    struct l7_upgrade *u = arg;

    px_response_end(preq);
    u->code = 499;
    upgrade_free(u);
}

/* ---- the tunnel -------------------------------------------------------------------------- */

static void tunnel_read(struct bufferevent *from, void *arg)
{
    struct l7_upgrade *u = arg;
    struct bufferevent *to = from == u->up ? u->client : u->up;

    evbuffer_add_buffer(bufferevent_get_output(to), bufferevent_get_input(from));
    if (evbuffer_get_length(bufferevent_get_output(to)) >= HIGH_WATER)
        bufferevent_disable(from, EV_READ); /* resumed when `to` drains */
}

static void tunnel_drained(struct bufferevent *to, void *arg)
{
    struct l7_upgrade *u = arg;
    struct bufferevent *from = to == u->up ? u->client : u->up;

    if (u->state == UPG_TUNNEL)
        bufferevent_enable(from, EV_READ);
}

/* Either side closed or failed: what the other still has to say is flushed, then both go. */
static void tunnel_event(struct bufferevent *bev, short what, void *arg)
{
    struct l7_upgrade *u = arg;
    struct bufferevent *other = bev == u->up ? u->client : u->up;

    (void)what;
    evbuffer_add_buffer(bufferevent_get_output(other), bufferevent_get_input(bev));
    bufferevent_flush(other, EV_WRITE, BEV_FLUSH);
    upgrade_free(u);
}

static void on_handed_over(struct bufferevent *client, void *arg)
{
    struct l7_upgrade *u = arg;

    if (!client) {
        upgrade_free(u);
        return;
    }
    u->client = client;
    set_state(u, UPG_TUNNEL);
    bufferevent_setwatermark(u->up, EV_WRITE, HIGH_WATER / 2, 0);
    bufferevent_setwatermark(client, EV_WRITE, HIGH_WATER / 2, 0);
    bufferevent_setcb(u->up, tunnel_read, tunnel_drained, tunnel_event, u);
    bufferevent_setcb(client, tunnel_read, tunnel_drained, tunnel_event, u);
    bufferevent_enable(u->up, EV_READ | EV_WRITE);
    bufferevent_enable(client, EV_READ | EV_WRITE);
    /* bytes that came with the 101, and any the client sent early */
    tunnel_read(u->up, u);
    tunnel_read(client, u);
}

/* ---- the apiserver's answer --------------------------------------------------------------- */

struct head {
    int status;
    char *names[MAX_HDRS], *values[MAX_HDRS];
    size_t n;
    size_t content_length;
    bool has_length;
};

/* Parse "HTTP/1.1 101 Switching Protocols\r\nName: value\r\n...\r\n\r\n" in place. */
static int parse_head(char *text, struct head *h)
{
    char *line = text, *next;

    memset(h, 0, sizeof(*h));
    next = strstr(line, "\r\n");
    if (!next || strncmp(line, "HTTP/1.", 7) != 0 || strlen(line) < 12)
        return -EPROTO;
    *next = '\0';
    h->status = atoi(line + 9);
    if (h->status < 100 || h->status > 599)
        return -EPROTO;
    for (line = next + 2; *line; line = next + 2) {
        next = strstr(line, "\r\n");
        if (!next)
            return -EPROTO;
        *next = '\0';
        if (!*line)
            break;
        char *colon = strchr(line, ':');
        if (!colon || colon == line || h->n == MAX_HDRS)
            return -EPROTO;
        *colon = '\0';
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        if (strcasecmp(line, "content-length") == 0) {
            char *end;
            h->content_length = strtoul(v, &end, 10);
            h->has_length = *end == '\0';
        }
        h->names[h->n] = line;
        h->values[h->n++] = v;
    }
    return 0;
}

static void relay_answer(struct l7_upgrade *u, struct head *h, struct evbuffer *in)
{
    size_t avail = evbuffer_get_length(in);

    if (h->status == 101) {
        for (size_t i = 0; i < h->n; i++)
            px_response_header(u->preq, h->names[i], h->values[i]);
        px_request_on_close(u->preq, NULL, NULL);
        bufferevent_disable(u->up, EV_READ);
        bufferevent_setcb(u->up, NULL, NULL, NULL, NULL); /* on_handed_over takes it from here */
        u->code = 101;
        struct px_request *preq = u->preq;
        u->preq = NULL;
        if (px_request_upgrade(preq, on_handed_over, u) < 0)
            upgrade_free(u); /* the client is gone: on_handed_over is not called */
        return;
    }
    /* a refusal (403, 400, ...): relay it as it came, body included */
    if (h->has_length && avail < h->content_length)
        return; /* more to come */
    size_t n = h->has_length ? h->content_length : avail;
    char *body = malloc(n ? n : 1);
    if (body)
        evbuffer_remove(in, body, n);
    for (size_t i = 0; i < h->n; i++)
        if (strcasecmp(h->names[i], "content-length") != 0)
            px_response_header(u->preq, h->names[i], h->values[i]);
    px_request_on_close(u->preq, NULL, NULL);
    px_response_simple(u->preq, h->status, NULL, body, body ? n : 0);
    free(body);
    u->code = h->status;
    upgrade_free(u);
}

static void handshake_read(struct bufferevent *bev, void *arg)
{
    struct l7_upgrade *u = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
    struct head h;

    if (end.pos < 0) {
        if (evbuffer_get_length(in) > MAX_HEAD)
            fail(u, 502, "the apiserver's answer to the upgrade is too large");
        return;
    }
    size_t len = (size_t)end.pos + 4;
    char *text = malloc(len + 1);
    if (!text) {
        fail(u, 503, "out of memory");
        return;
    }
    evbuffer_copyout(in, text, len);
    text[len] = '\0';
    if (parse_head(text, &h) < 0) {
        free(text);
        fail(u, 502, "the apiserver's answer to the upgrade is not HTTP/1.1");
        return;
    }
    if (h.has_length && h.content_length > MAX_BODY) {
        free(text);
        fail(u, 502, "the apiserver's answer to the upgrade is too large");
        return;
    }
    if (h.status == 101 || !h.has_length || evbuffer_get_length(in) - len >= h.content_length) {
        evbuffer_drain(in, len);
        relay_answer(u, &h, in);
    }
    free(text);
}

static void handshake_event(struct bufferevent *bev, short what, void *arg)
{
    struct l7_upgrade *u = arg;

    (void)bev;
    if (what & BEV_EVENT_CONNECTED) {
        lb_server_report_connect(u->server, true, kf_now_us() - u->started_us);
        set_state(u, UPG_HANDSHAKE);
        return;
    }
    if (u->state == UPG_CONNECTING)
        lb_server_report_connect(u->server, false, 0);
    fail(u, 503,
         u->state == UPG_CONNECTING ? "no apiserver answered the upgrade"
                                    : "the apiserver closed during the upgrade");
}

/* ---- starting ------------------------------------------------------------------------------ */

static void write_request(struct l7_upgrade *u, struct px_request *preq, const struct config *cfg)
{
    struct evbuffer *out = bufferevent_get_output(u->up);
    struct lb_uhdr h[MAX_HDRS];
    size_t n = px_l7_identity_headers(preq, cfg, h, MAX_HDRS);
    const char *upgrade = px_request_header(preq, "upgrade");

    evbuffer_add_printf(out, "%s %s HTTP/1.1\r\n", px_request_method(preq), px_l7_target(preq));
    for (size_t i = 0; i < n; i++)
        evbuffer_add_printf(out, "%.*s: %.*s\r\n", (int)h[i].name_len, h[i].name,
                            (int)h[i].value_len, h[i].value);
    /* the identity headers leave out hop-by-hop ones: the upgrade needs these two back */
    evbuffer_add_printf(out, "Connection: Upgrade\r\nUpgrade: %s\r\n\r\n", upgrade ? upgrade : "");
}

static struct bufferevent *connect_server(struct l7_upgrade *u, const struct px_binding *b)
{
    socklen_t len;
    const struct sockaddr *sa = lb_server_addr(u->server, &len);
    struct bufferevent *bev;
    SSL *ssl = NULL;

    if (b->upstream_tls) {
        const char *name = b->backend->upstream_tls.server_name
                               ? b->backend->upstream_tls.server_name
                               : lb_server_host(u->server);
        bool verify = SSL_CTX_get_verify_mode(b->upstream_tls) != SSL_VERIFY_NONE;
        ssl = SSL_new(b->upstream_tls);
        if (!ssl || lb_tls_set_peer_name(ssl, name, verify) < 0 ||
            SSL_set_alpn_protos(ssl, (const unsigned char *)"\x08http/1.1", 9) != 0) {
            SSL_free(ssl);
            return NULL;
        }
        bev = bufferevent_openssl_socket_new(u->worker->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                             BEV_OPT_CLOSE_ON_FREE);
        if (bev)
            bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    } else {
        bev = bufferevent_socket_new(u->worker->base, -1, BEV_OPT_CLOSE_ON_FREE);
    }
    if (!bev) {
        SSL_free(ssl);
        return NULL;
    }
    if (bufferevent_socket_connect(bev, sa, (int)len) < 0) {
        bufferevent_free(bev);
        return NULL;
    }
    return bev;
}

void px_l7_upgrade(struct px_worker *w, const struct px_binding *b, struct px_request *preq,
                   const struct px_reqinfo *info)
{
    struct l7_upgrade *u = calloc(1, sizeof(*u));

    if (!u) {
        px_response_simple(preq, 503, NULL, NULL, 0);
        return;
    }
    u->state = UPG_CONNECTING;
    u->worker = w;
    u->preq = preq;
    u->info = *info;
    u->started_us = kf_now_us();
    u->lb = w->gen->lb;
    lb_retain(u->lb);
    u->server = lb_pick(b->pool, NULL, 0);
    px_request_on_close(preq, on_client_gone, u);
    if (!u->server) {
        fail(u, 503, "no apiserver is available");
        return;
    }
    u->up = connect_server(u, b);
    if (!u->up) {
        fail(u, 503, "cannot connect to the apiserver");
        return;
    }
    bufferevent_setcb(u->up, handshake_read, NULL, handshake_event, u);
    bufferevent_enable(u->up, EV_READ | EV_WRITE);
    write_request(u, preq, w->gen->cfg);
}
