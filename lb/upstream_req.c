/*
 * Upstream requests: the spec is validated and copied once (so a retry can
 * send it again and the caller's memory is free after lb_ureq_start), the
 * consumer's callbacks run under a guard that defers the free, and a request
 * ends exactly once.
 *
 *   QUEUED -> SENT -> RESPONDING -> DONE
 *      ^-------'  (a retry queues it again, on another server)
 */
#include "lb/upstream_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#define MAX_RESP_HEADERS 256

static const char *const req_state_names[] = {
    [UREQ_QUEUED] = "queued",
    [UREQ_SENT] = "sent",
    [UREQ_RESPONDING] = "responding",
    [UREQ_DONE] = "done",
};

/* Bit i set in legal_from[s]: state i may move to s. */
static const unsigned legal_from[] = {
    [UREQ_QUEUED] = 1u << UREQ_QUEUED | 1u << UREQ_SENT,
    [UREQ_SENT] = 1u << UREQ_QUEUED,
    [UREQ_RESPONDING] = 1u << UREQ_SENT,
    [UREQ_DONE] = 1u << UREQ_QUEUED | 1u << UREQ_SENT | 1u << UREQ_RESPONDING,
};

void up_req_set_state(struct lb_ureq *req, enum up_req_state next)
{
    KF_BUG_ON(!(legal_from[next] & (1u << req->state)));
    kf_debug("lb", "ureq %s %s on %s: %s -> %s", req->method, req->path,
             req->server ? lb_server_label(req->server) : "-", req_state_names[req->state],
             req_state_names[next]);
    req->state = next;
}

/* ---- validation and copy ------------------------------------------------------------ */

static bool is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_token(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!is_tchar((unsigned char)s[i]))
            return false;
    return true;
}

/* Request-target and authority: no space or control byte can reach the wire. */
static bool is_visible(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= ' ' || *p == 0x7f)
            return false;
    return true;
}

/* A value may not split the header block (CR, LF) or be cut short (NUL). */
static bool is_field_value(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
            return false;
    return true;
}

bool lb_uhdr_valid(const struct lb_uhdr *h)
{
    return h->name && h->value && is_token(h->name, h->name_len) &&
           is_field_value(h->value, h->value_len);
}

static bool name_is_n(const struct lb_uhdr *h, const char *name, size_t len)
{
    return h->name_len == len && strncasecmp(h->name, name, len) == 0;
}
#define name_is(h, literal) name_is_n((h), (literal), sizeof(literal) - 1)

/* Trimmed, case-insensitive comparison of a whole value with word. */
static bool value_eq(const char *v, size_t len, const char *word, size_t word_len)
{
    while (len && (*v == ' ' || *v == '\t'))
        v++, len--;
    while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
        len--;
    return len == word_len && strncasecmp(v, word, len) == 0;
}

/* Whether h is named by a token of any Connection header (RFC 9110 7.6.1). */
static bool nominated(const struct lb_uhdr *hs, size_t n, const struct lb_uhdr *h)
{
    for (size_t i = 0; i < n; i++) {
        if (!name_is(&hs[i], "connection"))
            continue;
        const char *v = hs[i].value, *end = v + hs[i].value_len;
        while (v < end) {
            const char *comma = memchr(v, ',', (size_t)(end - v));
            const char *stop = comma ? comma : end;
            if (value_eq(v, (size_t)(stop - v), h->name, h->name_len))
                return true;
            v = stop + 1;
        }
    }
    return false;
}

/* Hop-by-hop headers end at kfront: RFC 9110 7.6.1 and RFC 9113 8.2.2. */
bool up_hop_by_hop(const struct lb_uhdr *hs, size_t n, const struct lb_uhdr *h)
{
    static const struct kf_token names[] = {KF_TOKEN("connection"), KF_TOKEN("keep-alive"),
                                            KF_TOKEN("proxy-connection"),
                                            KF_TOKEN("transfer-encoding"), KF_TOKEN("upgrade")};

    if (kf_token_in(h->name, h->name_len, names, KF_ARRAY_SIZE(names)))
        return true;
    if (name_is(h, "te"))
        return !value_eq(h->value, h->value_len, "trailers", 8);
    return nominated(hs, n, h);
}

static int parse_length(const char *v, size_t len, int64_t *out)
{
    int64_t n = 0;

    while (len && (v[len - 1] == ' ' || v[len - 1] == '\t')) /* trailing OWS is not the value */
        len--;
    if (len == 0 || len > 18)
        return -EINVAL;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -EINVAL;
        n = n * 10 + (v[i] - '0');
    }
    *out = n;
    return 0;
}

static char *lower_dup(struct kf_arena *a, const char *s, size_t len)
{
    char *p = kf_arena_strndup(a, s, len);

    for (size_t i = 0; p && i < len; i++)
        if (p[i] >= 'A' && p[i] <= 'Z')
            p[i] = (char)(p[i] - 'A' + 'a');
    return p;
}

/* One header of the spec: checked, then dropped, taken as a setting, or copied. */
static int copy_header(struct lb_ureq *req, const struct lb_ureq_spec *spec,
                       const struct lb_uhdr *h)
{
    struct lb_uhdr *out = &req->headers[req->n_headers];

    if (!h->name || !h->value || !is_field_value(h->value, h->value_len))
        return -EINVAL;
    if (h->name_len && h->name[0] == ':')
        return 0; /* pseudo-headers are built here, never passed through */
    if (!is_token(h->name, h->name_len))
        return -EINVAL;
    if (up_hop_by_hop(spec->headers, spec->n_headers, h))
        return 0;
    if (name_is(h, "host")) {
        if (!spec->authority && !req->authority)
            req->authority = kf_arena_strndup(req->arena, h->value, h->value_len);
        return 0;
    }
    if (name_is(h, "content-length")) {
        /* a whole body gets its own; a streaming one keeps the client's */
        if (spec->body_streaming && parse_length(h->value, h->value_len, &req->content_length) < 0)
            return -EINVAL;
        return 0;
    }
    out->name = lower_dup(req->arena, h->name, h->name_len);
    out->name_len = h->name_len;
    out->value = kf_arena_strndup(req->arena, h->value, h->value_len);
    out->value_len = h->value_len;
    if (!out->name || !out->value)
        return -ENOMEM;
    req->n_headers++;
    return 0;
}

static int copy_spec(struct lb_ureq *req, const struct lb_ureq_spec *spec)
{
    if (!spec->method || !is_token(spec->method, strlen(spec->method)) || !spec->path ||
        (spec->path[0] != '/' && strcmp(spec->path, "*") != 0) || !is_visible(spec->path) ||
        (spec->authority && (!spec->authority[0] || !is_visible(spec->authority))) ||
        (spec->n_headers && !spec->headers) || (spec->body_len && !spec->body))
        return -EINVAL;
    req->method = kf_arena_strdup(req->arena, spec->method);
    req->path = kf_arena_strdup(req->arena, spec->path);
    req->authority = spec->authority ? kf_arena_strdup(req->arena, spec->authority) : NULL;
    req->headers = kf_arena_alloc(req->arena, (spec->n_headers + 1) * sizeof(*req->headers));
    if (!req->method || !req->path || (spec->authority && !req->authority) || !req->headers)
        return -ENOMEM;
    for (size_t i = 0; i < spec->n_headers; i++) {
        int rc = copy_header(req, spec, &spec->headers[i]);
        if (rc < 0)
            return rc;
    }
    if (req->authority && !is_visible(req->authority))
        return -EINVAL;
    return 0;
}

static int copy_body(struct lb_ureq *req, const struct lb_ureq_spec *spec)
{
    uint8_t *copy;

    if (spec->body_streaming) {
        req->body_buf = evbuffer_new();
        return req->body_buf ? 0 : -ENOMEM;
    }
    if (spec->body_by_reference || spec->body_len == 0) {
        req->body = spec->body;
        req->body_len = spec->body_len;
        return 0;
    }
    copy = kf_arena_alloc(req->arena, spec->body_len);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, spec->body, spec->body_len);
    req->body = copy;
    req->body_len = spec->body_len;
    return 0;
}

int up_req_new(struct lb_upstream *up, struct lb_pool *pool, const struct lb_ureq_spec *spec,
               const struct lb_ureq_callbacks *cbs, void *arg, struct lb_ureq **out)
{
    struct lb_ureq *req;
    int rc = -ENOMEM;

    if (!spec || !cbs || !cbs->on_headers || !cbs->on_data || !cbs->on_end || !pool)
        return -EINVAL;
    req = calloc(1, sizeof(*req));
    if (!req || !(req->arena = kf_arena_new(4096))) /* fields both ways fit one block */
        goto fail;
    kf_list_init(&req->link);
    req->up = up;
    req->pool = pool;
    req->cbs = *cbs;
    req->arg = arg;
    req->content_length = -1;
    req->stream_id = -1;
    req->idempotent = spec->idempotent;
    req->body_streaming = spec->body_streaming;
    if ((rc = copy_spec(req, spec)) < 0 || (rc = copy_body(req, spec)) < 0)
        goto fail;
    req->head = strcmp(req->method, "HEAD") == 0;
    *out = req;
    return 0;
fail:
    up_req_free(req);
    return rc;
}

void up_req_free(struct lb_ureq *req)
{
    if (!req)
        return;
    if (req->server)
        lb_server_conn_end(req->server);
    if (req->body_buf)
        evbuffer_free(req->body_buf);
    kf_arena_free(req->arena);
    free(req);
}

/* ---- the response ------------------------------------------------------------------- */

void up_req_responding(struct lb_ureq *req)
{
    if (req->state == UREQ_SENT)
        up_req_set_state(req, UREQ_RESPONDING);
}

int up_req_add_header(struct lb_ureq *req, const char *name, size_t name_len, const char *value,
                      size_t value_len)
{
    struct lb_uhdr *h;

    if (req->n_resp == req->cap_resp) {
        size_t cap = req->cap_resp ? req->cap_resp * 2 : 16;
        struct lb_uhdr *grown;
        if (cap > MAX_RESP_HEADERS)
            return -E2BIG;
        grown = kf_arena_alloc(req->arena, cap * sizeof(*grown)); /* dies with the request */
        if (!grown)
            return -ENOMEM;
        if (req->n_resp)
            memcpy(grown, req->resp, req->n_resp * sizeof(*grown));
        req->resp = grown;
        req->cap_resp = cap;
    }
    h = &req->resp[req->n_resp];
    h->name = kf_arena_strndup(req->arena, name, name_len);
    h->value = kf_arena_strndup(req->arena, value, value_len);
    if (!h->name || !h->value)
        return -ENOMEM;
    h->name_len = name_len;
    h->value_len = value_len;
    req->n_resp++;
    return 0;
}

void up_req_reset_headers(struct lb_ureq *req)
{
    req->n_resp = 0;
}

/* After a callback: a request cancelled inside it is freed now, by the outermost guard. */
static bool callback_done(struct lb_ureq *req)
{
    req->in_cb--;
    if (!req->cancelled)
        return true;
    if (req->in_cb == 0)
        up_req_free(req);
    return false;
}

bool up_req_deliver_headers(struct lb_ureq *req, int status)
{
    req->headers_done = true;
    req->in_cb++;
    req->cbs.on_headers(req, status, req->resp, req->n_resp, req->arg);
    return callback_done(req);
}

bool up_req_deliver_data(struct lb_ureq *req, const uint8_t *data, size_t len)
{
    req->unconsumed += len;
    req->in_cb++;
    req->cbs.on_data(req, data, len, req->arg);
    return callback_done(req);
}

/* The one on_end; the request is freed after it (or by the guard around a callback). */
static void req_end(struct lb_ureq *req, int error)
{
    up_req_set_state(req, UREQ_DONE);
    if (error && req->server)
        atomic_fetch_add_explicit(&req->server->up.stream_errors, 1, memory_order_relaxed);
    req->in_cb++;
    req->cbs.on_end(req, error, req->arg);
    req->cancelled = true; /* nothing may reach the consumer any more */
    callback_done(req);
}

void up_req_complete(struct lb_ureq *req)
{
    req_end(req, 0);
}

void up_req_end(struct lb_ureq *req, int error)
{
    req_end(req, error);
}

/* ---- body ----------------------------------------------------------------------------- */

size_t up_req_body_read(struct lb_ureq *req, uint8_t *buf, size_t len, bool *eof)
{
    size_t n;

    if (!req->body_streaming) {
        n = req->body_len - req->body_off < len ? req->body_len - req->body_off : len;
        if (n)
            memcpy(buf, req->body + req->body_off, n);
        req->body_off += n;
        *eof = req->body_off == req->body_len;
        return n;
    }
    int got = evbuffer_remove(req->body_buf, buf, len);
    n = got > 0 ? (size_t)got : 0;
    req->body_taken += n;
    *eof = req->body_ended && evbuffer_get_length(req->body_buf) == 0;
    return n;
}

bool up_req_body_open(const struct lb_ureq *req)
{
    return req->body_streaming && !req->body_ended;
}

bool up_req_body_progress(struct lb_ureq *req)
{
    if (!req->body_drain_armed || req->cancelled || req->state == UREQ_DONE ||
        lb_ureq_body_pending(req) > LB_UREQ_BODY_LOW_WATER)
        return true;
    req->body_drain_armed = false;
    if (!req->on_body_drain)
        return true;
    req->in_cb++;
    req->on_body_drain(req, req->arg);
    return callback_done(req);
}

/* A content-length for a whole body, for a streaming one whose length is known, and
 * for an empty POST/PUT/PATCH (servers may insist on one). */
const char *up_req_content_length(struct lb_ureq *req)
{
    int64_t len = req->body_streaming ? req->content_length : (int64_t)req->body_len;
    bool wants = len > 0 || (!req->body_streaming &&
                             (strcmp(req->method, "POST") == 0 || strcmp(req->method, "PUT") == 0 ||
                              strcmp(req->method, "PATCH") == 0));

    return wants && len >= 0 ? kf_arena_sprintf(req->arena, "%lld", (long long)len) : NULL;
}

const char *up_req_authority(const struct lb_ureq *req)
{
    return req->authority ? req->authority : req->server->address;
}

/* ---- public calls on a request ---------------------------------------------------------- */

void lb_ureq_cancel(struct lb_ureq *req)
{
    if (!req || req->state == UREQ_DONE)
        return;
    if (req->state == UREQ_QUEUED)
        up_req_dequeue(req);
    else if (req->conn)
        up_conn_detach(req->conn, req, true);
    up_req_set_state(req, UREQ_DONE);
    req->cancelled = true;
    if (req->in_cb == 0)
        up_req_free(req);
}

void lb_ureq_consume(struct lb_ureq *req, size_t len)
{
    if (!req || req->state == UREQ_DONE || req->cancelled)
        return;
    if (len > req->unconsumed)
        len = req->unconsumed;
    req->unconsumed -= len;
    if (req->conn && len)
        req->conn->ops->consume(req->conn, req, len);
}

int lb_ureq_write_body(struct lb_ureq *req, const void *data, size_t len)
{
    if (!req || !up_req_body_open(req) || req->cancelled || (len && !data))
        return -EINVAL;
    if (len == 0)
        return 0;
    if (evbuffer_add(req->body_buf, data, len) < 0)
        return -ENOMEM;
    if (req->conn)
        req->conn->ops->body_more(req->conn, req);
    if (lb_ureq_body_pending(req) > LB_UREQ_BODY_LOW_WATER)
        req->body_drain_armed = true;
    return 0;
}

int lb_ureq_end_body(struct lb_ureq *req)
{
    if (!req || !up_req_body_open(req) || req->cancelled)
        return -EINVAL;
    req->body_ended = true;
    if (req->conn)
        req->conn->ops->body_more(req->conn, req);
    return 0;
}

size_t lb_ureq_body_pending(const struct lb_ureq *req)
{
    size_t n = req && req->body_buf ? evbuffer_get_length(req->body_buf) : 0;

    /* HTTP/1 moves the body to the socket's buffer at once; that buffer is this request's */
    if (n == 0 && req && req->body_buf && req->conn && req->conn->ops == &up_h1_ops)
        n = up_conn_output_len(req->conn);
    return n;
}

void lb_ureq_on_body_drain(struct lb_ureq *req, lb_ureq_drain_cb cb)
{
    req->on_body_drain = cb;
}

const struct lb_server *lb_ureq_server(const struct lb_ureq *req)
{
    return req->server;
}
