/*
 * px_request: lifecycle (state machine and the two owners), accessors, and
 * the lazily decoded query string. Protocol-neutral.
 */
#include "proxy/http/http_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

const char *const px_req_state_name[] = {
    [PX_REQ_RECV] = "recv",   [PX_REQ_HANDLER] = "handler", [PX_REQ_STREAMING] = "streaming",
    [PX_REQ_ENDED] = "ended", [PX_REQ_CLOSED] = "closed",
};

/* Legal transitions: bit n of allowed[from] set means from -> n is legal. */
static const unsigned req_allowed[] = {
    [PX_REQ_RECV] = 1u << PX_REQ_HANDLER | 1u << PX_REQ_CLOSED,
    [PX_REQ_HANDLER] = 1u << PX_REQ_STREAMING | 1u << PX_REQ_ENDED | 1u << PX_REQ_CLOSED,
    [PX_REQ_STREAMING] = 1u << PX_REQ_ENDED | 1u << PX_REQ_CLOSED,
    [PX_REQ_ENDED] = 0,
    [PX_REQ_CLOSED] = 0,
};

void px_request_set_state(struct px_request *req, enum px_req_state next)
{
    KF_BUG_ON(!(req_allowed[req->state] & (1u << next)));
    kf_debug(PX_MOD, "conn %llu request %s -> %s", (unsigned long long)req->conn->id,
             px_req_state_name[req->state], px_req_state_name[next]);
    req->state = next;
}

struct px_request *px_request_new(struct px_conn *conn, size_t size, int version)
{
    struct kf_arena *arena = kf_arena_new(4096);
    struct px_request *req;

    if (!arena)
        return NULL;
    req = kf_arena_alloc(arena, size);
    if (!req) {
        kf_arena_free(arena);
        return NULL;
    }
    req->arena = arena;
    req->conn = conn;
    req->version = version;
    req->state = PX_REQ_RECV;
    req->transport_owned = true;
    req->resp_length = -1;
    req->method = req->path = req->query_raw = req->authority = "";
    req->body_data = "";
    kf_list_init(&req->node);
    px_conn_hold(conn);
    PX_INC(conn->server, streams_current);
    return req;
}

void px_request_maybe_free(struct px_request *req)
{
    struct px_conn *conn = req->conn;

    if (req->handler_owned || req->transport_owned || req->holds)
        return;
    conn->ops->req_free(req);
    kf_list_remove(&req->node);
    if (req->body)
        evbuffer_free(req->body);
    PX_DEC(conn->server, streams_current);
    kf_arena_free(req->arena);
    px_conn_put(conn);
}

void px_request_hold(struct px_request *req)
{
    req->holds++;
}

void px_request_put(struct px_request *req)
{
    KF_BUG_ON(req->holds == 0);
    req->holds--;
    px_request_maybe_free(req);
}

void px_request_dispatch(struct px_request *req)
{
    struct px_server *server = req->conn->server;

    if (req->body && req->body_state == PX_BODY_NONE) {
        size_t len = evbuffer_get_length(req->body);

        if (evbuffer_add(req->body, "", 1) == 0)
            req->body_data = (const char *)evbuffer_pullup(req->body, -1);
        if (!req->body_data) {
            req->body_data = "";
            len = 0;
        }
        req->body_len = len;
    }
    px_request_set_state(req, PX_REQ_HANDLER);
    req->handler_owned = true;
    PX_INC(server, requests_total);
    server->cfg.handler(req, server->cfg.handler_arg);
}

void px_request_transport_done(struct px_request *req)
{
    req->transport_owned = false;
    kf_list_remove(&req->node);
    px_body_abandon(req); /* no body callback after on_close */
    if (req->state == PX_REQ_HANDLER || req->state == PX_REQ_STREAMING) {
        px_request_set_state(req, PX_REQ_CLOSED);
        PX_INC(req->conn->server, client_resets);
        if (req->on_close)
            req->on_close(req, req->close_arg); /* may end (and free) req */
        return;
    }
    if (req->state == PX_REQ_RECV)
        px_request_set_state(req, PX_REQ_CLOSED);
    px_request_maybe_free(req);
}

void px_request_note_queued(struct px_request *req)
{
    if (req->conn->ops->resp_pending(req) > req->conn->server->cfg.low_water_bytes)
        req->drain_armed = true;
}

void px_request_check_drain(struct px_request *req)
{
    if (!req->drain_armed || req->state != PX_REQ_STREAMING)
        return;
    if (req->conn->ops->resp_pending(req) > req->conn->server->cfg.low_water_bytes)
        return;
    req->drain_armed = false;
    if (req->on_drain)
        req->on_drain(req, req->drain_arg);
}

/* ---- headers ---------------------------------------------------------------- */

static struct px_header *headers_next(struct kf_arena *a, struct px_headers *h)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 16;
        struct px_header *v = kf_arena_alloc(a, cap * sizeof(*v));

        if (!v)
            return NULL;
        if (h->n)
            memcpy(v, h->v, h->n * sizeof(*v));
        h->v = v;
        h->cap = cap;
    }
    return &h->v[h->n];
}

int px_headers_add(struct kf_arena *a, struct px_headers *h, const char *name, size_t nlen,
                   const char *value, size_t vlen, bool lower)
{
    struct px_header *f = headers_next(a, h);
    char *n = kf_arena_strndup(a, name, nlen);
    char *val = kf_arena_strndup(a, value, vlen);

    if (!f || !n || !val)
        return -ENOMEM;
    for (char *p = n; lower && *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    /* what lookups see: a decoded %00 ends the name */
    *f = (struct px_header){n, val, strlen(n), strlen(val)};
    h->n++;
    return 0;
}

int px_headers_add_ref(struct kf_arena *a, struct px_headers *h, const char *name, size_t nlen,
                       const char *value, size_t vlen)
{
    struct px_header *f = headers_next(a, h);

    if (!f)
        return -ENOMEM;
    *f = (struct px_header){name, value, nlen, vlen};
    h->n++;
    return 0;
}

const char *px_headers_get(const struct px_headers *h, const char *name)
{
    size_t len = strlen(name);

    for (size_t i = 0; i < h->n; i++)
        if (h->v[i].name_len == len && strncasecmp(h->v[i].name, name, len) == 0)
            return h->v[i].value;
    return NULL;
}

int px_request_set_target(struct px_request *req, const char *target, size_t len)
{
    const char *q = memchr(target, '?', len);
    size_t plen = q ? (size_t)(q - target) : len;
    const char *hash = memchr(target, '#', len);

    if (hash && (!q || hash > q))
        len = (size_t)(hash - target); /* fragments are never sent; drop one if it is */
    req->path = kf_arena_strndup(req->arena, target, plen < len ? plen : len);
    req->query_raw = q && plen < len ? kf_arena_strndup(req->arena, q + 1, len - plen - 1) : "";
    return req->path && req->query_raw ? 0 : -ENOMEM;
}

/* ---- query string ------------------------------------------------------------ */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decode '+' and %XX into out (at least len bytes); false on a bad escape. */
static bool query_decode(const char *s, size_t len, char *out, size_t *out_len)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        if (s[i] == '+') {
            out[o++] = ' ';
        } else if (s[i] == '%') {
            if (i + 2 >= len)
                return false;
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);

            if (hi < 0 || lo < 0)
                return false;
            out[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    *out_len = o;
    return true;
}

static void query_add_pair(struct px_request *req, const char *pair, size_t len)
{
    const char *eq = memchr(pair, '=', len);
    size_t nlen = eq ? (size_t)(eq - pair) : len;
    size_t vlen = eq ? len - nlen - 1 : 0;
    char *n = kf_arena_alloc(req->arena, nlen + 1);
    char *v = kf_arena_alloc(req->arena, vlen + 1);
    size_t dn, dv;

    /* Like Go since 1.17: a ';' makes the pair invalid instead of splitting it. */
    if (!n || !v || memchr(pair, ';', len))
        return;
    if (!query_decode(pair, nlen, n, &dn) || !query_decode(eq ? eq + 1 : "", vlen, v, &dv))
        return;
    px_headers_add(req->arena, &req->query, n, dn, v, dv, false);
}

static void query_parse(struct px_request *req)
{
    const char *s = req->query_raw;

    req->query_parsed = true;
    while (*s) {
        const char *amp = strchr(s, '&');
        size_t len = amp ? (size_t)(amp - s) : strlen(s);

        if (len)
            query_add_pair(req, s, len);
        s += len + (amp ? 1 : 0);
    }
}

const char *px_request_query(struct px_request *req, const char *name)
{
    if (!req->query_parsed)
        query_parse(req);
    for (size_t i = 0; i < req->query.n; i++)
        if (strcmp(req->query.v[i].name, name) == 0)
            return req->query.v[i].value;
    return NULL;
}

size_t px_request_query_count(struct px_request *req)
{
    if (!req->query_parsed)
        query_parse(req);
    return req->query.n;
}

bool px_request_query_at(struct px_request *req, size_t i, const char **name, const char **value)
{
    if (i >= px_request_query_count(req))
        return false;
    *name = req->query.v[i].name;
    *value = req->query.v[i].value;
    return true;
}

/* ---- accessors ------------------------------------------------------------------ */

const char *px_request_method(const struct px_request *req)
{
    return req->method;
}

const char *px_request_path(const struct px_request *req)
{
    return req->path;
}

const char *px_request_query_string(const struct px_request *req)
{
    return req->query_raw;
}

const char *px_request_authority(const struct px_request *req)
{
    return req->authority;
}

const char *px_request_header(const struct px_request *req, const char *name)
{
    return px_headers_get(&req->headers, name);
}

size_t px_request_header_count(const struct px_request *req)
{
    return req->headers.n;
}

bool px_request_header_at(const struct px_request *req, size_t i, const char **name,
                          const char **value)
{
    if (i >= req->headers.n)
        return false;
    *name = req->headers.v[i].name;
    *value = req->headers.v[i].value;
    return true;
}

int px_request_http_version(const struct px_request *req)
{
    return req->version;
}

const char *px_request_remote_ip(const struct px_request *req)
{
    return req->conn->peer_ip;
}

bool px_request_is_tls(const struct px_request *req)
{
    return req->conn->tls;
}

const struct px_peer_identity *px_request_peer(const struct px_request *req)
{
    return req->conn->tls_peer ? req->conn->tls_peer->id : NULL;
}

struct x509_st *px_request_peer_cert(const struct px_request *req, struct stack_st_X509 **chain)
{
    const struct px_tls_peer *p = req->conn->tls_peer;

    if (chain)
        *chain = p ? p->chain : NULL;
    return p ? p->cert : NULL;
}

const char *px_request_body(const struct px_request *req, size_t *len)
{
    if (len)
        *len = req->body_len;
    return req->body_data;
}

struct kf_arena *px_request_arena(struct px_request *req)
{
    return req->arena;
}

struct px_conn *px_request_conn(struct px_request *req)
{
    return req->conn;
}

bool px_request_is_upgrade(const struct px_request *req)
{
    return req->is_upgrade;
}

const char *px_request_connect_protocol(const struct px_request *req)
{
    return req->connect_protocol;
}

void px_request_on_drain(struct px_request *req, px_request_cb cb, void *arg)
{
    req->on_drain = cb;
    req->drain_arg = arg;
}

void px_request_on_close(struct px_request *req, px_request_cb cb, void *arg)
{
    req->on_close = cb;
    req->close_arg = arg;
}

bool px_request_is_closed(const struct px_request *req)
{
    return req->state == PX_REQ_CLOSED;
}
