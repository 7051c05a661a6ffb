/*
 * HTTP/1.1 protocol upgrades in mode http: kubectl exec, attach and
 * port-forward (WebSocket, or SPDY/3.1 from older clients).
 *
 * The upstream pool speaks HTTP/2 and cannot carry an upgrade, so each
 * upgrade gets its own HTTP/1.1 connection to an apiserver chosen with
 * lb_pick (health respected), over the backend's upstream TLS context (so
 * front-proxy or impersonation identity applies exactly as for other
 * requests). The request goes out with the identity headers kfront vouches
 * for; a 101 answer is passed to the client and the two byte streams are
 * spliced; any other answer is relayed as a normal response.
 *
 * States: CONNECTING (TCP + TLS to a server; a failure tries the next one,
 * nothing was sent yet) -> HANDSHAKE (request sent, reading the response
 * head) -> RELAY (not 101: the body goes to the client as a response) or
 * SWITCHING (101 queued to the client, waiting for its connection) ->
 * TUNNEL (bytes both ways, no idle timeout: exec sessions idle for long) ->
 * DRAINING (one side ended: what it sent is delivered to the other, which is
 * then closed; a TLS peer cannot be half-closed without ending both
 * directions) -> CLOSED. Any state may go to CLOSED.
 *
 * HTTP/2 clients may offer WebSockets by extended CONNECT (RFC 8441): the
 * apiserver still gets an HTTP/1.1 Upgrade (kfront makes the key and checks
 * the accept), and on 101 the client's stream gets 200 and becomes the
 * tunnel's client side: its DATA goes upstream through the request-body
 * stream, upstream bytes go back as response DATA, each side paused while
 * the other is full. SWITCHING is skipped: the stream is already ours.
 */
#include "proxy/l7.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <http_parser.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>

#define UP_MAX_HEAD        (16 * 1024) /* upstream response head, as a sane apiserver sends */
#define UP_MAX_HEADERS     64
#define UP_HEAD_TIMEOUT_S  60 /* the apiserver dials the kubelet before it answers */
#define UP_DRAIN_TIMEOUT_S 5  /* delivering the last bytes to a peer that does not read */
#define UP_HIGH_WATER      (256 * 1024)
#define UP_MAX_TRIES       8
#define UP_MAX_OPENING     8 /* per client connection: upgrades not yet answered upstream */

enum up_state {
    UP_CONNECTING,
    UP_HANDSHAKE,
    UP_RELAY,
    UP_SWITCHING,
    UP_TUNNEL,
    UP_DRAINING,
    UP_CLOSED,
};

static const char *const up_state_name[] = {"connecting", "handshake", "relay", "switching",
                                            "tunnel",     "draining",  "closed"};

struct up_hdr {
    char *name, *value;
    size_t name_len, value_len;
};

struct px_upgrade {
    struct kf_list link; /* in worker->upgrades */
    enum up_state state;
    struct px_worker *worker;
    struct px_request *preq; /* until the response ends or the 101 is handed over */
    struct lb *lb;
    struct lb_pool *pool;
    struct lb_server *server;
    struct lb_server *tried[UP_MAX_TRIES];
    unsigned n_tried, max_tries;
    SSL_CTX *tls; /* referenced: a reload may free the generation meanwhile */
    char *server_name;
    struct evbuffer *request; /* the head to send, built while the generation is at hand */
    uint32_t connect_ms;
    uint64_t started_us, connect_started_us;
    struct bufferevent *up, *client;
    http_parser parser;
    struct up_hdr hdrs[UP_MAX_HEADERS];
    size_t n_hdrs;
    bool overflow, message_done;
    int code;
    struct px_reqinfo info;
    /* RFC 8441: the client is this HTTP/2 stream (preq stays ours in the tunnel) */
    const char *connect_protocol;
    char ws_key[32];    /* the Sec-WebSocket-Key kfront sent for it */
    bool client_paused; /* its DATA waits for the upstream output to drain */
    bool client_ended;  /* it sent END_STREAM */
};

static void up_close(struct px_upgrade *u, const char *reason);
static void tunnel_pump(struct bufferevent *src, struct px_upgrade *u);

static void up_set_state(struct px_upgrade *u, enum up_state next)
{
    static const unsigned legal[] = {
        [UP_CONNECTING] = 1u << UP_HANDSHAKE,
        [UP_HANDSHAKE] = 1u << UP_RELAY | 1u << UP_SWITCHING | 1u << UP_TUNNEL,
        [UP_RELAY] = 0,
        [UP_SWITCHING] = 1u << UP_TUNNEL,
        [UP_TUNNEL] = 1u << UP_DRAINING,
        [UP_DRAINING] = 0,
    };
    KF_BUG_ON(u->state == UP_CLOSED);
    KF_BUG_ON(next != UP_CLOSED && !(legal[u->state] & (1u << next)));
    kf_debug("l7", "upgrade %s: %s -> %s", u->info.resource, up_state_name[u->state],
             up_state_name[next]);
    u->state = next;
}

/* ---- answering the client before the switch ------------------------------------------ */

/* A failure Status like the apiserver's; message is kfront's own text (nothing to escape). */
static void up_fail(struct px_upgrade *u, int code, const char *reason, const char *message)
{
    char body[512];
    int n = snprintf(body, sizeof(body),
                     "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":"
                     "\"Failure\",\"message\":\"%s\",\"reason\":\"%s\",\"code\":%d}\n",
                     message, reason, code);

    u->code = code;
    if (u->preq) {
        px_request_on_close(u->preq, NULL, NULL);
        px_request_on_drain(u->preq, NULL, NULL);
        if (code == 503)
            px_response_header(u->preq, "Retry-After", "1");
        px_response_header(u->preq, "Cache-Control", "no-cache, private");
        px_response_simple(u->preq, code, "application/json", body,
                           (size_t)n < sizeof(body) ? (size_t)n : sizeof(body) - 1);
        u->preq = NULL;
    }
    up_close(u, message);
}

static void on_client_gone(struct px_request *preq, void *arg)
{
    struct px_upgrade *u = arg;

    (void)preq;
    if (u->state != UP_TUNNEL)
        u->code = 499; /* nginx's "client closed request" */
    px_response_end(u->preq);
    u->preq = NULL;
    up_close(u, "client went away");
}

/* ---- TLS and connecting -------------------------------------------------------------- */

static struct bufferevent *up_bev_new(struct px_upgrade *u, const char *host)
{
    static const unsigned char alpn_h1[] = "\x08http/1.1"; /* an upgrade needs HTTP/1.1 */
    struct event_base *base = u->worker->base;
    struct bufferevent *bev;
    SSL *ssl;

    if (!u->tls)
        return bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    ssl = SSL_new(u->tls);
    if (!ssl ||
        lb_tls_set_peer_name(ssl, u->server_name ? u->server_name : host,
                             SSL_CTX_get_verify_mode(u->tls) != SSL_VERIFY_NONE) < 0 ||
        SSL_set_alpn_protos(ssl, alpn_h1, sizeof(alpn_h1) - 1) != 0) {
        SSL_free(ssl);
        return NULL;
    }
    bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                         BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        SSL_free(ssl);
        return NULL;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

static void set_timeouts(struct bufferevent *bev, long read_ms, long write_ms)
{
    struct timeval r = {read_ms / 1000, (read_ms % 1000) * 1000};
    struct timeval w = {write_ms / 1000, (write_ms % 1000) * 1000};

    bufferevent_set_timeouts(bev, read_ms ? &r : NULL, write_ms ? &w : NULL);
}

static void up_on_read(struct bufferevent *bev, void *arg);
static void up_on_event(struct bufferevent *bev, short what, void *arg);

/* Start a connect to u->server. Returns 0 (in progress) or -errno. */
static int up_connect_server(struct px_upgrade *u)
{
    socklen_t alen;
    const struct sockaddr *sa = lb_server_addr(u->server, &alen);

    ERR_clear_error();
    u->up = up_bev_new(u, lb_server_host(u->server));
    if (!u->up)
        return -ENOMEM;
    bufferevent_setcb(u->up, up_on_read, NULL, up_on_event, u);
    bufferevent_enable(u->up, EV_READ | EV_WRITE); /* a new bufferevent only writes */
    set_timeouts(u->up, u->connect_ms, u->connect_ms);
    u->connect_started_us = kf_now_us();
    if (bufferevent_socket_connect(u->up, sa, (int)alen) < 0)
        return -ECONNREFUSED;
    return 0;
}

static void up_connect_next(struct px_upgrade *u)
{
    for (;;) {
        if (u->up) {
            bufferevent_free(u->up);
            u->up = NULL;
        }
        if (u->server) {
            lb_server_conn_end(u->server);
            u->server = NULL;
        }
        if (u->n_tried >= u->max_tries) {
            up_fail(u, 503, "ServiceUnavailable", "no apiserver could be reached");
            return;
        }
        u->server = lb_pick(u->pool, u->tried, u->n_tried);
        if (!u->server) {
            up_fail(u, 503, "ServiceUnavailable", "no apiserver is available");
            return;
        }
        u->tried[u->n_tried++] = u->server;
        if (up_connect_server(u) == 0)
            return;
        lb_server_report_connect(u->server, false, 0);
    }
}

/* ---- the request ---------------------------------------------------------------------- */

/* What an HTTP/1.1 WebSocket handshake has and an RFC 8441 one does not: a key (and the
 * version, if the client left it out). */
static int ws_request_headers(struct px_upgrade *u, struct evbuffer *out)
{
    unsigned char nonce[16];

    if (RAND_bytes(nonce, sizeof(nonce)) != 1)
        return -EIO;
    EVP_EncodeBlock((unsigned char *)u->ws_key, nonce, sizeof(nonce));
    evbuffer_add_printf(out, "Sec-WebSocket-Key: %s\r\n", u->ws_key);
    if (!px_request_header(u->preq, "sec-websocket-version"))
        evbuffer_add_printf(out, "Sec-WebSocket-Version: 13\r\n");
    return 0;
}

/* RFC 6455 4.2.2: the accept the apiserver must send back for our key. */
static bool ws_accept_ok(const struct px_upgrade *u, const char *accept)
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char digest[SHA_DIGEST_LENGTH];
    char want[64], in[sizeof(u->ws_key) + sizeof(guid)];

    if (strcasecmp(u->connect_protocol, "websocket") != 0)
        return true; /* another protocol: nothing to check */
    snprintf(in, sizeof(in), "%s%s", u->ws_key, guid);
    SHA1((const unsigned char *)in, strlen(in), digest);
    EVP_EncodeBlock((unsigned char *)want, digest, sizeof(digest));
    return accept && strcmp(accept, want) == 0;
}

/* The request head as the server gets it, made at once: the binding's backend (identity
 * token) belongs to a generation that a reload may free before the connect completes. */
static int build_request(struct px_upgrade *u, const struct px_binding *b,
                         const struct px_user *reviewed)
{
    struct lb_uhdr *h;
    const char *authority = px_request_authority(u->preq);
    ssize_t n = px_l7_identity_headers(u->preq, u->worker->gen->cfg, b->backend, reviewed, 0, &h);
    struct evbuffer *out;

    for (ssize_t i = 0; i < n; i++)
        if (!lb_uhdr_valid(&h[i]))
            return -EINVAL; /* a CR LF in a value would add headers of the client's choosing */
    if (n < 0 || !(out = u->request = evbuffer_new()))
        return -ENOMEM;
    evbuffer_add_printf(out, "%s %s HTTP/1.1\r\nHost: %s\r\n",
                        u->connect_protocol ? "GET" : px_request_method(u->preq),
                        px_l7_target(u->preq), authority[0] ? authority : "kubernetes");
    for (ssize_t i = 0; i < n; i++)
        evbuffer_add_printf(out, "%.*s: %.*s\r\n", (int)h[i].name_len, h[i].name,
                            (int)h[i].value_len, h[i].value);
    if (u->connect_protocol && ws_request_headers(u, out) < 0)
        return -ENOMEM;
    /* identity headers drop hop-by-hop ones; these two are what this request is about */
    evbuffer_add_printf(out, "Connection: Upgrade\r\nUpgrade: %s\r\n\r\n",
                        u->connect_protocol ? u->connect_protocol
                                            : px_request_header(u->preq, "upgrade"));
    return 0;
}

static void up_connected(struct px_upgrade *u)
{
    lb_server_report_connect(u->server, true, kf_now_us() - u->connect_started_us);
    up_set_state(u, UP_HANDSHAKE);
    evbuffer_add_buffer(bufferevent_get_output(u->up), u->request);
    set_timeouts(u->up, UP_HEAD_TIMEOUT_S * 1000, UP_HEAD_TIMEOUT_S * 1000);
}

/* ---- the response head ------------------------------------------------------------------ */

static int on_hfield(http_parser *p, const char *at, size_t len)
{
    struct px_upgrade *u = p->data;

    if (u->n_hdrs >= UP_MAX_HEADERS) {
        u->overflow = true;
        return 1;
    }
    u->hdrs[u->n_hdrs++] = (struct up_hdr){(char *)at, NULL, len, 0};
    return 0;
}

static int on_hvalue(http_parser *p, const char *at, size_t len)
{
    struct px_upgrade *u = p->data;

    u->hdrs[u->n_hdrs - 1].value = (char *)at;
    u->hdrs[u->n_hdrs - 1].value_len = len;
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct px_upgrade *u = p->data;

    px_response_write(u->preq, at, len); /* a gone client is noticed by on_close */
    return 0;
}

static int on_complete(http_parser *p)
{
    ((struct px_upgrade *)p->data)->message_done = true;
    return 0;
}

static const http_parser_settings head_settings = {
    .on_header_field = on_hfield,
    .on_header_value = on_hvalue,
    .on_message_complete = on_complete,
};

static const http_parser_settings body_settings = {
    .on_body = on_body,
    .on_message_complete = on_complete,
};

static bool hop_by_hop(const char *name)
{
    static const char *const names[] = {"connection",        "keep-alive", "proxy-connection",
                                        "transfer-encoding", "te",         "trailer"};
    for (size_t i = 0; i < KF_ARRAY_SIZE(names); i++)
        if (strcasecmp(names[i], name) == 0)
            return true;
    return false;
}

/* Parse the whole head (len bytes, writable). false when malformed. */
static bool parse_head(struct px_upgrade *u, char *head, size_t len)
{
    size_t used;

    http_parser_init(&u->parser, HTTP_RESPONSE);
    u->parser.data = u;
    used = http_parser_execute(&u->parser, &head_settings, head, len);
    if (u->overflow || HTTP_PARSER_ERRNO(&u->parser) != HPE_OK || used != len)
        return false;
    for (size_t i = 0; i < u->n_hdrs; i++) {
        if (!u->hdrs[i].value)
            return false;
        u->hdrs[i].name[u->hdrs[i].name_len] = '\0'; /* ':' and CR are no longer needed */
        u->hdrs[i].value[u->hdrs[i].value_len] = '\0';
    }
    u->code = u->parser.status_code;
    /* http-parser sets upgrade for a 101 only with Upgrade and Connection: upgrade */
    if (u->code == 101)
        return u->parser.upgrade;
    return u->code >= 200 && u->code <= 599;
}

static void copy_headers(struct px_upgrade *u)
{
    for (size_t i = 0; i < u->n_hdrs; i++)
        if (!hop_by_hop(u->hdrs[i].name))
            px_response_header(u->preq, u->hdrs[i].name, u->hdrs[i].value);
}

static void on_client_drain(struct px_request *preq, void *arg)
{
    struct px_upgrade *u = arg;

    (void)preq;
    if (u->state == UP_RELAY)
        bufferevent_enable(u->up, EV_READ);
}

static void relay_end(struct px_upgrade *u, bool complete, const char *reason)
{
    px_request_on_close(u->preq, NULL, NULL);
    px_request_on_drain(u->preq, NULL, NULL);
    if (complete)
        px_response_end(u->preq);
    else
        px_response_abort(u->preq); /* the client must not take a cut body as whole */
    u->preq = NULL;
    up_close(u, reason);
}

static void relay_body(struct px_upgrade *u)
{
    struct evbuffer *in = bufferevent_get_input(u->up);

    while (!u->message_done && evbuffer_get_length(in)) {
        size_t len = evbuffer_get_contiguous_space(in);
        const char *data = (const char *)evbuffer_pullup(in, (ev_ssize_t)len);
        size_t used = http_parser_execute(&u->parser, &body_settings, data, len);
        evbuffer_drain(in, used);
        if (HTTP_PARSER_ERRNO(&u->parser) != HPE_OK) {
            relay_end(u, false, "malformed upstream response body");
            return;
        }
    }
    if (u->message_done)
        relay_end(u, true, NULL);
    else if (px_response_pending(u->preq) > UP_HIGH_WATER)
        bufferevent_disable(u->up, EV_READ); /* on_client_drain resumes */
}

static void on_client_upgraded(struct bufferevent *bev, void *arg);

/* ---- HTTP/2 extended CONNECT: the client side is a stream -------------------------------- */

static const char *head_value(const struct px_upgrade *u, const char *name)
{
    for (size_t i = 0; i < u->n_hdrs; i++)
        if (strcasecmp(u->hdrs[i].name, name) == 0)
            return u->hdrs[i].value;
    return NULL;
}

/* Upstream bytes become the stream's DATA; reading stops while the client is behind. */
static void stream_pump_up(struct px_upgrade *u)
{
    struct evbuffer *in = bufferevent_get_input(u->up);
    size_t n = evbuffer_get_length(in);

    while (evbuffer_get_length(in)) {
        size_t len = evbuffer_get_contiguous_space(in);
        px_response_write(u->preq, evbuffer_pullup(in, (ev_ssize_t)len), len);
        evbuffer_drain(in, len);
    }
    lb_server_add_bytes(u->server, 0, n);
    if (px_response_pending(u->preq) > UP_HIGH_WATER)
        bufferevent_disable(u->up, EV_READ); /* stream_on_client_drain resumes */
}

static void stream_on_up_read(struct bufferevent *bev, void *arg)
{
    (void)bev;
    stream_pump_up(arg);
}

static void stream_on_client_drain(struct px_request *preq, void *arg)
{
    struct px_upgrade *u = arg;

    (void)preq;
    bufferevent_enable(u->up, EV_READ);
}

/* The stream's DATA goes upstream; the client is paused while the upstream output is full. */
static int stream_on_data(struct px_request *preq, const void *data, size_t len, void *arg)
{
    struct px_upgrade *u = arg;
    struct evbuffer *out = bufferevent_get_output(u->up);

    (void)preq;
    if (evbuffer_add(out, data, len) < 0) {
        relay_end(u, false, "out of memory");
        return KF_AGAIN; /* nothing more is delivered to an ended request */
    }
    lb_server_add_bytes(u->server, len, 0);
    if (evbuffer_get_length(out) < UP_HIGH_WATER)
        return 0;
    u->client_paused = true;
    bufferevent_setwatermark(u->up, EV_WRITE, UP_HIGH_WATER / 2, 0);
    return KF_AGAIN;
}

/* The upstream output drained (below the low-water mark, or empty). */
static void stream_on_up_write(struct bufferevent *bev, void *arg)
{
    struct px_upgrade *u = arg;

    if (u->client_paused) {
        u->client_paused = false;
        bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
        px_request_body_resume(u->preq);
    }
}

/* END_STREAM from the client: the apiserver answers the close and hangs up (or is cut off). */
static void stream_on_end(struct px_request *preq, int error, void *arg)
{
    struct px_upgrade *u = arg;

    (void)preq;
    if (error) {
        relay_end(u, false, "the client's stream failed");
        return;
    }
    u->client_ended = true;
    set_timeouts(u->up, UP_DRAIN_TIMEOUT_S * 1000, UP_DRAIN_TIMEOUT_S * 1000);
}

static void stream_on_up_event(struct bufferevent *bev, short what, void *arg)
{
    struct px_upgrade *u = arg;
    bool eof = what & BEV_EVENT_EOF;

    (void)bev;
    stream_pump_up(u); /* what it sent before it ended */
    relay_end(u, eof || u->client_ended, eof ? NULL : "the apiserver's side failed");
}

/* 101 to an extended CONNECT: the stream gets 200 and carries the tunnel. */
static void connect_tunnel(struct px_upgrade *u)
{
    if (!ws_accept_ok(u, head_value(u, "sec-websocket-accept"))) {
        up_fail(u, 502, "InternalError", "the apiserver's WebSocket accept does not match");
        return;
    }
    for (size_t i = 0; i < u->n_hdrs; i++) {
        const char *name = u->hdrs[i].name;
        if (!hop_by_hop(name) && strcasecmp(name, "upgrade") != 0 &&
            strcasecmp(name, "sec-websocket-accept") != 0)
            px_response_header(u->preq, name, u->hdrs[i].value);
    }
    set_timeouts(u->up, 0, 0); /* exec sessions idle for long */
    up_set_state(u, UP_TUNNEL);
    u->code = 200;
    bufferevent_setcb(u->up, stream_on_up_read, stream_on_up_write, stream_on_up_event, u);
    px_request_on_drain(u->preq, stream_on_client_drain, u);
    px_response_start(u->preq, 200);
    px_request_body_stream(u->preq, stream_on_data, stream_on_end, u);
    if (u->state == UP_TUNNEL)
        stream_pump_up(u); /* bytes that followed the 101 head */
}

static void switch_protocols(struct px_upgrade *u)
{
    struct px_request *preq = u->preq;

    copy_headers(u);
    bufferevent_disable(u->up, EV_READ); /* new-protocol bytes wait until the client is ours */
    set_timeouts(u->up, 0, 0);
    up_set_state(u, UP_SWITCHING);
    px_request_on_close(preq, NULL, NULL);
    px_request_on_drain(preq, NULL, NULL);
    u->preq = NULL;
    if (px_request_upgrade(preq, on_client_upgraded, u) < 0)
        up_close(u, "client went away before the switch");
}

static void read_head(struct px_upgrade *u)
{
    struct evbuffer *in = bufferevent_get_input(u->up);
    struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
    char *head;

    if (end.pos < 0 || (size_t)end.pos + 4 > UP_MAX_HEAD) {
        if (end.pos >= 0 || evbuffer_get_length(in) > UP_MAX_HEAD)
            up_fail(u, 502, "InternalError", "the apiserver's response head is too large");
        return;
    }
    size_t len = (size_t)end.pos + 4;
    head = kf_arena_alloc(px_request_arena(u->preq), len + 1);
    if (!head) {
        up_fail(u, 503, "ServiceUnavailable", "out of memory");
        return;
    }
    evbuffer_remove(in, head, len);
    if (!parse_head(u, head, len)) {
        up_fail(u, 502, "InternalError", "malformed response from the apiserver");
        return;
    }
    if (u->code == 101) {
        if (u->connect_protocol)
            connect_tunnel(u);
        else
            switch_protocols(u);
        return;
    }
    copy_headers(u);
    up_set_state(u, UP_RELAY);
    px_request_on_drain(u->preq, on_client_drain, u);
    px_response_start(u->preq, u->code);
    relay_body(u);
}

static void up_on_read(struct bufferevent *bev, void *arg)
{
    struct px_upgrade *u = arg;

    if (u->state == UP_HANDSHAKE)
        read_head(u);
    else if (u->state == UP_RELAY)
        relay_body(u);
    else if (u->state == UP_TUNNEL)
        tunnel_pump(bev, u);
}

static void up_on_event(struct bufferevent *bev, short what, void *arg)
{
    struct px_upgrade *u = arg;

    (void)bev;
    if (u->state == UP_CONNECTING) {
        if (what & BEV_EVENT_CONNECTED) {
            up_connected(u);
            return;
        }
        lb_server_report_connect(u->server, false, kf_now_us() - u->connect_started_us);
        kf_info("l7", "upgrade: connect to %s failed%s", lb_server_label(u->server),
                (what & BEV_EVENT_TIMEOUT) ? ": timed out" : "");
        up_connect_next(u);
        return;
    }
    if (u->state == UP_HANDSHAKE) {
        up_fail(u, 502, "InternalError",
                (what & BEV_EVENT_TIMEOUT) ? "the apiserver did not answer the upgrade in time"
                                           : "the apiserver closed the connection");
        return;
    }
    if (u->state == UP_RELAY) {
        /* a body delimited by the connection's end completes here; any other is cut */
        if (what & BEV_EVENT_EOF)
            http_parser_execute(&u->parser, &body_settings, NULL, 0);
        relay_end(u, u->message_done, u->message_done ? NULL : "the apiserver's response was cut");
    }
}

/* ---- the tunnel --------------------------------------------------------------------------- */

static struct bufferevent *peer_of(struct px_upgrade *u, struct bufferevent *bev)
{
    return bev == u->up ? u->client : u->up;
}

/* Move what src has to its peer; stop reading src while the peer's output is full. */
static void tunnel_pump(struct bufferevent *src, struct px_upgrade *u)
{
    struct bufferevent *dst = peer_of(u, src);
    struct evbuffer *out = bufferevent_get_output(dst);
    size_t n = evbuffer_get_length(bufferevent_get_input(src));

    evbuffer_add_buffer(out, bufferevent_get_input(src));
    lb_server_add_bytes(u->server, src == u->client ? n : 0, src == u->up ? n : 0);
    if (evbuffer_get_length(out) >= UP_HIGH_WATER) {
        bufferevent_disable(src, EV_READ);
        bufferevent_setwatermark(dst, EV_WRITE, UP_HIGH_WATER / 2, 0);
    }
}

static void tunnel_on_read(struct bufferevent *bev, void *arg)
{
    tunnel_pump(bev, arg);
}

/* dst's output fell below the low-water mark: resume reading its peer (or finish draining). */
static void tunnel_on_write(struct bufferevent *dst, void *arg)
{
    struct px_upgrade *u = arg;

    if (u->state == UP_DRAINING) {
        if (evbuffer_get_length(bufferevent_get_output(dst)) == 0)
            up_close(u, NULL);
        return;
    }
    bufferevent_setwatermark(dst, EV_WRITE, 0, 0);
    bufferevent_enable(peer_of(u, dst), EV_READ);
}

static void tunnel_on_event(struct bufferevent *bev, short what, void *arg)
{
    struct px_upgrade *u = arg;
    struct bufferevent *dst = peer_of(u, bev);

    if (u->state == UP_DRAINING) {
        up_close(u, (what & BEV_EVENT_TIMEOUT) ? "drain timeout" : "peer gone while draining");
        return;
    }
    /* bev ended (EOF, or a reset after its last bytes, as a server that closes with unread
     * input causes): deliver what it sent, then close the other side too */
    tunnel_pump(bev, u);
    up_set_state(u, UP_DRAINING);
    bufferevent_disable(bev, EV_READ | EV_WRITE);
    bufferevent_disable(dst, EV_READ);
    if (!(what & BEV_EVENT_EOF))
        kf_debug("l7", "upgrade %s: %s side failed", u->info.resource,
                 bev == u->up ? "upstream" : "client");
    if (evbuffer_get_length(bufferevent_get_output(dst)) == 0) {
        up_close(u, NULL);
        return;
    }
    bufferevent_setwatermark(dst, EV_WRITE, 0, 0);
    set_timeouts(dst, 0, UP_DRAIN_TIMEOUT_S * 1000);
}

static void on_client_upgraded(struct bufferevent *bev, void *arg)
{
    struct px_upgrade *u = arg;

    if (!bev || !u->up) {
        if (bev)
            bufferevent_free(bev);
        up_close(u, "client went away before the switch");
        return;
    }
    u->client = bev;
    up_set_state(u, UP_TUNNEL);
    bufferevent_setcb(u->client, tunnel_on_read, tunnel_on_write, tunnel_on_event, u);
    bufferevent_setcb(u->up, tunnel_on_read, tunnel_on_write, tunnel_on_event, u);
    bufferevent_enable(u->client, EV_READ | EV_WRITE);
    bufferevent_enable(u->up, EV_READ | EV_WRITE);
    /* either side may already hold bytes of the new protocol */
    tunnel_pump(u->up, u);
    tunnel_pump(u->client, u);
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

static void up_close(struct px_upgrade *u, const char *reason)
{
    if (reason)
        kf_debug("l7", "upgrade %s %s ends in state %s: %s", u->info.verb, u->info.resource,
                 up_state_name[u->state], reason);
    up_set_state(u, UP_CLOSED);
    /* counted before the client sees the close, so its next /metrics read includes it */
    px_l7_count(u->worker, &u->info, u->code ? u->code : 502, kf_now_us() - u->started_us);
    atomic_fetch_sub_explicit(&u->worker->stats.upgrades_active, 1, memory_order_relaxed);
    if (u->preq) /* only on worker exit: the request is still the handler's */
        px_response_abort(u->preq);
    if (u->up)
        bufferevent_free(u->up);
    if (u->client)
        bufferevent_free(u->client);
    if (u->server)
        lb_server_conn_end(u->server);
    lb_release(u->lb);
    SSL_CTX_free(u->tls);
    if (u->request)
        evbuffer_free(u->request);
    free(u->server_name);
    kf_list_remove(&u->link);
    free(u);
}

static struct px_upgrade *up_new(struct px_worker *w, const struct px_binding *b,
                                 struct px_request *preq, const struct px_reqinfo *info)
{
    struct px_upgrade *u = calloc(1, sizeof(*u));
    const char *sni = b->backend->upstream_tls.server_name;

    if (!u)
        return NULL;
    if (sni && !(u->server_name = strdup(sni))) {
        free(u);
        return NULL;
    }
    u->state = UP_CONNECTING;
    u->worker = w;
    u->preq = preq;
    u->connect_protocol = px_request_connect_protocol(preq);
    u->info = *info;
    u->started_us = kf_now_us();
    u->lb = w->gen->lb;
    lb_retain(u->lb);
    u->pool = b->pool;
    u->connect_ms = w->gen->cfg->timeouts.connect_ms ? w->gen->cfg->timeouts.connect_ms : 5000;
    u->max_tries = 1 + lb_pool_connect_retries(b->pool);
    if (u->max_tries > UP_MAX_TRIES)
        u->max_tries = UP_MAX_TRIES;
    if (b->upstream_tls && SSL_CTX_up_ref(b->upstream_tls) == 1)
        u->tls = b->upstream_tls;
    kf_list_insert_tail(&w->upgrades, &u->link);
    atomic_fetch_add_explicit(&w->stats.upgrades_active, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&w->stats.upgrades_total, 1, memory_order_relaxed);
    return u;
}

/*
 * Upgrades of client connection c that are opening (a TCP + TLS connection to an apiserver,
 * or waiting for its answer). Each HTTP/2 extended CONNECT stream opens its own upstream
 * connection: one client must not make kfront open them without bound.
 */
static size_t opening_on(struct px_worker *w, const struct px_conn *c)
{
    size_t n = 0;
    struct kf_list *pos;

    kf_list_for_each(pos, &w->upgrades)
    {
        const struct px_upgrade *u = kf_container_of(pos, struct px_upgrade, link);
        n += u->preq && px_request_conn(u->preq) == c &&
             (u->state == UP_CONNECTING || u->state == UP_HANDSHAKE);
    }
    return n;
}

void px_l7_upgrade(struct px_worker *w, const struct px_binding *b, struct px_request *preq,
                   const struct px_reqinfo *info, const struct px_user *reviewed)
{
    if (opening_on(w, px_request_conn(preq)) >= UP_MAX_OPENING) {
        px_response_header(preq, "Retry-After", "1");
        px_l7_reject(w, preq, info, 429, "TooManyRequests",
                     "too many upgrades are opening on this connection");
        return;
    }
    struct px_upgrade *u = b->pool && b->backend ? up_new(w, b, preq, info) : NULL;

    if (!u) {
        struct px_reqinfo copy = *info;
        px_response_simple(preq, 503, "text/plain", "kfront cannot tunnel this upgrade\n", 34);
        px_l7_count(w, &copy, 503, 0);
        return;
    }
    px_request_on_close(preq, on_client_gone, u);
    int rc = build_request(u, b, reviewed);
    if (rc < 0) {
        up_fail(u, rc == -EINVAL ? 400 : 503, rc == -EINVAL ? "BadRequest" : "ServiceUnavailable",
                rc == -EINVAL ? "a request header cannot be forwarded" : "out of memory");
        return;
    }
    up_connect_next(u);
}

void px_upgrades_close_all(struct px_worker *w)
{
    struct kf_list *pos, *tmp;

    kf_list_for_each_safe(pos, tmp, &w->upgrades)
    {
        struct px_upgrade *u = kf_container_of(pos, struct px_upgrade, link);
        if (u->state == UP_SWITCHING) {
            /* the client connection still belongs to the server, whose teardown calls
             * on_client_upgraded(NULL): that ends u */
            if (u->up)
                bufferevent_free(u->up);
            u->up = NULL;
            continue;
        }
        atomic_fetch_add_explicit(&w->stats.drain_closed, 1, memory_order_relaxed);
        if (u->preq)
            px_request_on_close(u->preq, NULL, NULL);
        up_close(u, "drain deadline");
    }
}
