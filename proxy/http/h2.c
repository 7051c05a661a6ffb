/*
 * HTTP/2 connections over an nghttp2 server session.
 *
 * Input: mem_recv on whatever arrived; complete requests are queued and
 * handed to the handler after nghttp2 returns (handlers never run inside
 * nghttp2's callbacks, so they may submit anything). Output: nghttp2_session_send
 * copies frame headers into the bufferevent, and DATA payloads move from the
 * stream's evbuffer with NGHTTP2_DATA_FLAG_NO_COPY (chains are moved, so
 * px_response_write_ref data is never copied). Output stops at
 * PX_CONN_OUT_HIGH and resumes from the write callback; flow-control windows
 * are nghttp2's: a stream with no window simply is not asked for data.
 *
 * Request bodies: WINDOW_UPDATEs are sent by hand (no_auto_window_update).
 * The connection window is given back as each DATA frame arrives, so one
 * stalled stream never holds the others; a stream's window when its bytes
 * are buffered (buffered bodies, bounded by max_body_bytes) or delivered to
 * the handler (streamed bodies), so a paused handler holds its client back
 * after PX_H2_STREAM_WINDOW bytes. A streamed body is delivered after
 * nghttp2 returns, like dispatch; the body timeout of each stream runs on the
 * connection timer while the server waits for the client.
 */
#include "proxy/http/http_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <nghttp2/nghttp2.h>

enum h2_state {
    H2_PREFACE, /* waiting for the client's SETTINGS */
    H2_OPEN,
    H2_GOAWAY, /* we sent GOAWAY: finishing the streams in flight */
    H2_DONE,   /* session over */
};

static const char *const h2_state_name[] = {
    [H2_PREFACE] = "preface", [H2_OPEN] = "open", [H2_GOAWAY] = "goaway", [H2_DONE] = "done"};

static const unsigned h2_allowed[] = {
    [H2_PREFACE] = 1u << H2_OPEN | 1u << H2_GOAWAY | 1u << H2_DONE,
    [H2_OPEN] = 1u << H2_GOAWAY | 1u << H2_DONE,
    [H2_GOAWAY] = 1u << H2_DONE,
    [H2_DONE] = 0,
};

enum h2s_state {
    H2S_HEADERS,  /* header block arriving */
    H2S_BODY,     /* DATA arriving */
    H2S_QUEUED,   /* complete, waiting to be dispatched */
    H2S_HANDLER,  /* the handler has it */
    H2S_REJECTED, /* answered by the server itself; input ignored */
    H2S_CLOSED,   /* nghttp2 closed the stream */
};

static const char *const h2s_state_name[] = {
    [H2S_HEADERS] = "headers", [H2S_BODY] = "body",         [H2S_QUEUED] = "queued",
    [H2S_HANDLER] = "handler", [H2S_REJECTED] = "rejected", [H2S_CLOSED] = "closed",
};

static const unsigned h2s_allowed[] = {
    [H2S_HEADERS] = 1u << H2S_BODY | 1u << H2S_QUEUED | 1u << H2S_REJECTED | 1u << H2S_CLOSED,
    [H2S_BODY] = 1u << H2S_QUEUED | 1u << H2S_REJECTED | 1u << H2S_CLOSED,
    [H2S_QUEUED] = 1u << H2S_HANDLER | 1u << H2S_CLOSED,
    [H2S_HANDLER] = 1u << H2S_CLOSED,
    [H2S_REJECTED] = 1u << H2S_CLOSED,
    [H2S_CLOSED] = 0,
};

struct h2_stream {
    struct px_request req; /* first: allocated by px_request_new */
    enum h2s_state state;
    int32_t id;
    struct evbuffer *out; /* response body not yet framed */
    size_t header_bytes;
    struct kf_list queue; /* h2_conn.ready */
    bool headers_too_large;
    bool deferred;    /* the data source said DEFERRED; resume on more data */
    bool eof;         /* no more data after out */
    bool body_due;    /* streamed body bytes or its end may be delivered */
    uint64_t body_ms; /* last progress of the request body (timeout) */
};

struct h2_conn {
    struct px_conn base;
    enum h2_state state;
    nghttp2_session *ngh;
    struct kf_list streams; /* px_request.node of transport-owned streams */
    struct kf_list ready;   /* h2_stream.queue */
    bool body_due;          /* some stream has body_due */
    bool body_timer;        /* the timer runs for body timeouts */
};

static struct h2_conn *h2_of(struct px_conn *c)
{
    return kf_container_of(c, struct h2_conn, base);
}

static struct h2_stream *stream_of(struct px_request *req)
{
    return kf_container_of(req, struct h2_stream, req);
}

static void h2_set_state(struct h2_conn *h, enum h2_state next)
{
    KF_BUG_ON(!(h2_allowed[h->state] & (1u << next)));
    kf_debug(PX_MOD, "conn %llu h2: %s -> %s", (unsigned long long)h->base.id,
             h2_state_name[h->state], h2_state_name[next]);
    h->state = next;
}

static void h2s_set_state(struct h2_stream *s, enum h2s_state next)
{
    KF_BUG_ON(!(h2s_allowed[s->state] & (1u << next)));
    kf_debug(PX_MOD, "conn %llu stream %d: %s -> %s", (unsigned long long)s->req.conn->id,
             (int)s->id, h2s_state_name[s->state], h2s_state_name[next]);
    s->state = next;
}

static struct h2_stream *stream_get(struct h2_conn *h, int32_t id)
{
    return nghttp2_session_get_stream_user_data(h->ngh, id);
}

/* ---- output ------------------------------------------------------------------ */

static ssize_t send_cb(nghttp2_session *ngh, const uint8_t *data, size_t len, int flags, void *user)
{
    struct h2_conn *h = user;

    (void)ngh;
    (void)flags;
    if (!h->base.bev)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    if (px_conn_out_len(&h->base) >= PX_CONN_OUT_HIGH)
        return NGHTTP2_ERR_WOULDBLOCK;
    if (evbuffer_add(bufferevent_get_output(h->base.bev), data, len) < 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    return (ssize_t)len;
}

static int send_data_cb(nghttp2_session *ngh, nghttp2_frame *frame, const uint8_t *framehd,
                        size_t length, nghttp2_data_source *source, void *user)
{
    struct h2_conn *h = user;
    struct h2_stream *s = source->ptr;
    struct evbuffer *out;

    (void)ngh;
    if (!h->base.bev)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    if (px_conn_out_len(&h->base) >= PX_CONN_OUT_HIGH)
        return NGHTTP2_ERR_WOULDBLOCK;
    KF_BUG_ON(frame->data.padlen != 0); /* no padding callback is installed */
    out = bufferevent_get_output(h->base.bev);
    if (evbuffer_add(out, framehd, 9) < 0 ||
        evbuffer_remove_buffer(s->out, out, length) != (int)length)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    return 0;
}

static ssize_t data_read_cb(nghttp2_session *ngh, int32_t id, uint8_t *buf, size_t length,
                            uint32_t *flags, nghttp2_data_source *source, void *user)
{
    struct h2_stream *s = source->ptr;
    size_t avail = evbuffer_get_length(s->out);
    size_t n = avail < length ? avail : length;

    (void)ngh;
    (void)id;
    (void)buf;
    (void)user;
    if (avail == 0 && !s->eof) {
        s->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    if (n)
        *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    if (s->eof && n == avail)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

/* HTTP/2 field names are lower case; most already are (an apiserver's answer over h2). */
static const char *lower_name(struct kf_arena *a, const struct px_header *h)
{
    char *copy;
    size_t i = 0;

    while (i < h->name_len && !(h->name[i] >= 'A' && h->name[i] <= 'Z'))
        i++;
    if (i == h->name_len)
        return h->name;
    if (!(copy = kf_arena_strndup(a, h->name, h->name_len)))
        return NULL;
    for (; i < h->name_len; i++)
        copy[i] = (char)(copy[i] >= 'A' && copy[i] <= 'Z' ? copy[i] - 'A' + 'a' : copy[i]);
    return copy;
}

/* Queue :status, the headers and a body source (unless no_body). */
static int h2_submit(struct h2_conn *h, struct h2_stream *s, int status,
                     const struct px_headers *hdrs, int64_t length, bool no_body)
{
    struct kf_arena *a = s->req.arena;
    size_t n = 0, cap = hdrs->n + 3;
    nghttp2_nv *nva = kf_arena_alloc(a, cap * sizeof(*nva));
    nghttp2_data_provider prd = {.source.ptr = s, .read_callback = data_read_cb};
    char *st = kf_arena_alloc(a, 4), *cl = length >= 0 ? kf_arena_alloc(a, 21) : NULL;

#define NVL(nm, nlen, val, vlen, flags)                                                            \
    (nva[n++] = (nghttp2_nv){(uint8_t *)(nm), (uint8_t *)(val), (nlen), (vlen), (flags)})
#define NV(nm, val) NVL(nm, strlen(nm), val, strlen(val), NGHTTP2_NV_FLAG_NONE)
    if (!nva || !st || (length >= 0 && !cl))
        return -ENOMEM;
    st[0] = (char)('0' + status / 100), st[1] = (char)('0' + status / 10 % 10);
    st[2] = (char)('0' + status % 10), st[3] = '\0'; /* px_response_start: 200..999 */
    NV(":status", st);
    for (size_t i = 0; i < hdrs->n; i++) {
        const struct px_header *f = &hdrs->v[i];
        const char *name = lower_name(a, f);
        bool unique;

        if (!name)
            return -ENOMEM;
        /* unique per response: indexing it would only evict the fields that repeat */
        unique = f->name_len == 8 && memcmp(name, "audit-id", 8) == 0;
        NVL(name, f->name_len, f->value, f->value_len,
            unique ? NGHTTP2_NV_FLAG_NO_INDEX : NGHTTP2_NV_FLAG_NONE);
    }
    if (cl) {
        kf_u64_format(cl, (uint64_t)length);
        NV("content-length", cl);
    }
    if (!px_headers_get(hdrs, "date"))
        NV("date", px_http_date());
#undef NV
#undef NVL
    if (!no_body && !s->out && !(s->out = evbuffer_new()))
        return -ENOMEM;
    if (nghttp2_submit_response(h->ngh, s->id, nva, n, no_body ? NULL : &prd) != 0)
        return -EIO;
    px_conn_kick(&h->base);
    return 0;
}

/*
 * The server answers a stream itself (413, 431, 400, 408); the handler never
 * sees it. A client still sending is reset once the answer is out.
 */
static void h2_reject(struct h2_conn *h, struct h2_stream *s, int status, const char *msg)
{
    struct px_headers hdrs = {0};
    size_t len;
    const char *body = px_status_body(s->req.arena, status, msg, &len);

    if (status == 413)
        PX_INC(h->base.server, body_too_large);
    else if (status != 408)
        PX_INC(h->base.server, protocol_errors);
    h2s_set_state(s, H2S_REJECTED);
    px_headers_add(s->req.arena, &hdrs, "content-type", 12, "application/json", 16, false);
    if (!(s->out = evbuffer_new()) || evbuffer_add(s->out, body, len) < 0 ||
        h2_submit(h, s, status, &hdrs, (int64_t)len, false) < 0)
        nghttp2_submit_rst_stream(h->ngh, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
    s->eof = true;
}

/* ---- streamed bodies ---------------------------------------------------------------- */

static void h2_body_due(struct h2_conn *h, struct h2_stream *s)
{
    s->body_due = true;
    h->body_due = true;
}

/* The client ended the body (0), or it failed: the handler hears it on delivery. */
static void h2_body_end(struct h2_conn *h, struct h2_stream *s, int error)
{
    if (error == -EMSGSIZE)
        PX_INC(h->base.server, body_too_large);
    else if (error && error != -ETIMEDOUT)
        PX_INC(h->base.server, protocol_errors);
    px_body_finish(&s->req, error);
    h2_body_due(h, s);
}

/* Deliver to one stream's handler, then reopen its window by what it took. */
static void h2_deliver(struct h2_conn *h, struct h2_stream *s)
{
    int32_t id = s->id;
    size_t n = px_body_deliver(&s->req); /* may end and free the request */

    if (n && h->ngh)
        nghttp2_session_consume_stream(h->ngh, id, n);
}

/* Outside nghttp2: handlers may do anything, so the list is walked again after each. */
static void h2_deliver_bodies(struct h2_conn *h)
{
    bool again = h->body_due;
    struct kf_list *pos;

    h->body_due = false;
    while (again && h->ngh) {
        again = false;
        kf_list_for_each(pos, &h->streams)
        {
            struct h2_stream *s = (struct h2_stream *)kf_container_of(pos, struct px_request, node);

            if (s->body_due) {
                s->body_due = false;
                h2_deliver(h, s);
                again = true;
                break;
            }
        }
    }
}

/* Whether the server waits for the client to send body bytes on s (its timeout runs). */
static bool h2_waits_for_body(const struct h2_stream *s)
{
    const struct px_request *req = &s->req;

    /* a tunnel's bytes come when its user types: no body timeout */
    return s->state == H2S_BODY ||
           (px_body_open(req) && req->on_body && !req->body_paused && !req->connect_protocol);
}

static bool h2_any_body_wait(struct h2_conn *h)
{
    struct kf_list *pos;

    kf_list_for_each(pos, &h->streams)
    {
        if (h2_waits_for_body((struct h2_stream *)kf_container_of(pos, struct px_request, node)))
            return true;
    }
    return false;
}

/* The body timer fired: expire the streams that waited too long, re-arm for the rest. */
static void h2_body_timeouts(struct h2_conn *h)
{
    uint64_t now = kf_now_ms(), timeout = h->base.server->cfg.body_timeout_ms, next = 0;
    struct kf_list *pos, *tmp;

    kf_list_for_each_safe(pos, tmp, &h->streams)
    {
        struct h2_stream *s = (struct h2_stream *)kf_container_of(pos, struct px_request, node);
        uint64_t left = s->body_ms + timeout > now ? s->body_ms + timeout - now : 0;

        if (!h2_waits_for_body(s)) {
            continue;
        } else if (left == 0) {
            PX_INC(h->base.server, timeouts);
            if (s->state == H2S_BODY)
                h2_reject(h, s, 408, "request body timeout");
            else
                h2_body_end(h, s, -ETIMEDOUT);
        } else if (next == 0 || left < next) {
            next = left;
        }
    }
    if (next) {
        h->body_timer = true;
        px_conn_timer(&h->base, (unsigned)next);
    }
}

/* ---- input callbacks -------------------------------------------------------------- */

static int on_begin_headers(nghttp2_session *ngh, const nghttp2_frame *frame, void *user)
{
    struct h2_conn *h = user;
    struct h2_stream *s;

    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    s = (struct h2_stream *)px_request_new(&h->base, sizeof(*s), 2);
    if (!s)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets this stream only */
    s->id = frame->hd.stream_id;
    s->state = H2S_HEADERS;
    kf_list_init(&s->queue);
    kf_list_insert_tail(&h->streams, &s->req.node);
    nghttp2_session_set_stream_user_data(ngh, s->id, s);
    return 0;
}

static int on_header(nghttp2_session *ngh, const nghttp2_frame *frame, const uint8_t *name,
                     size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *user)
{
    struct h2_stream *s = stream_get(user, frame->hd.stream_id);
    struct px_request *req = s ? &s->req : NULL;
    const char *v;

    (void)ngh;
    (void)flags;
    if (!s || s->state != H2S_HEADERS || s->headers_too_large)
        return 0;                        /* trailers, or already rejected */
    s->header_bytes += nlen + vlen + 32; /* RFC 9113's header list size */
    if (s->header_bytes > s->req.conn->server->cfg.max_header_bytes) {
        s->headers_too_large = true;
        return 0;
    }
    if (nlen == 0 || name[0] != ':')
        return px_headers_add(req->arena, &req->headers, (const char *)name, nlen,
                              (const char *)value, vlen, false) < 0
                   ? NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE
                   : 0;
    v = kf_arena_strndup(req->arena, (const char *)value, vlen);
    if (!v)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    if (nlen == 7 && memcmp(name, ":method", 7) == 0)
        req->method = v;
    else if (nlen == 10 && memcmp(name, ":authority", 10) == 0)
        req->authority = v;
    else if (nlen == 5 && memcmp(name, ":path", 5) == 0 && px_request_set_target(req, v, vlen) < 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    else if (nlen == 9 && memcmp(name, ":protocol", 9) == 0) /* nghttp2 checked it is allowed */
        req->connect_protocol = v;
    return 0;
}

static void h2_queue(struct h2_conn *h, struct h2_stream *s)
{
    h2s_set_state(s, H2S_QUEUED);
    kf_list_insert_tail(&h->ready, &s->queue);
}

static void h2_headers_done(struct h2_conn *h, struct h2_stream *s, bool end_stream)
{
    struct px_request *req = &s->req;
    const char *cl = px_request_header(req, "content-length");
    const char *host = px_request_header(req, "host");

    if (!*req->authority && host)
        req->authority = host;
    req->head_only = strcmp(req->method, "HEAD") == 0;
    s->body_ms = kf_now_ms();
    if (s->headers_too_large)
        h2_reject(h, s, 431, "request header fields too large");
    else if ((strcmp(req->method, "CONNECT") == 0) != (req->connect_protocol != NULL) ||
             (req->path[0] != '/' && strcmp(req->path, "*")))
        h2_reject(h, s, 400, "invalid request target"); /* plain CONNECT: not a proxy */
    else if (cl && strtoull(cl, NULL, 10) > h->base.server->cfg.max_body_bytes)
        h2_reject(h, s, 413, "request body too large");
    else if (end_stream || px_body_choose(req))
        h2_queue(h, s); /* no body, or a streamed one: the handler gets it now */
    else
        h2s_set_state(s, H2S_BODY);
}

static int on_frame_recv(nghttp2_session *ngh, const nghttp2_frame *frame, void *user)
{
    struct h2_conn *h = user;
    struct h2_stream *s;
    bool end = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;

    (void)ngh;
    if (frame->hd.type == NGHTTP2_SETTINGS && h->state == H2_PREFACE)
        h2_set_state(h, H2_OPEN);
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
        return 0;
    s = stream_get(h, frame->hd.stream_id);
    if (!s)
        return 0;
    if (frame->hd.type == NGHTTP2_HEADERS && s->state == H2S_HEADERS)
        h2_headers_done(h, s, end);
    else if (end && s->state == H2S_BODY)
        h2_queue(h, s);
    else if (end && px_body_open(&s->req))
        h2_body_end(h, s, 0);
    return 0;
}

/* A buffered body: its window reopens at once, max_body_bytes bounds it. */
static int body_buffered(struct h2_conn *h, struct h2_stream *s, const uint8_t *data, size_t len)
{
    int rc = px_body_append(&s->req, data, len);

    if (rc == -EMSGSIZE) {
        h2_reject(h, s, 413, "request body too large");
        return 0;
    }
    nghttp2_session_consume_stream(h->ngh, s->id, len);
    return rc < 0 ? NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE : 0;
}

static int on_data_chunk(nghttp2_session *ngh, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *user)
{
    struct h2_conn *h = user;
    struct h2_stream *s = stream_get(h, id);
    int rc;

    (void)flags;
    nghttp2_session_consume_connection(ngh, len);
    if (!s)
        return 0;
    s->body_ms = kf_now_ms();
    if (s->state == H2S_BODY)
        return body_buffered(h, s, data, len);
    if (!px_body_open(&s->req))
        return 0; /* rejected, failed or abandoned: the stream's window stays shut */
    rc = px_body_append(&s->req, data, len);
    if (rc < 0)
        h2_body_end(h, s, rc);
    h2_body_due(h, s);
    return 0;
}

static int on_stream_close(nghttp2_session *ngh, int32_t id, uint32_t error, void *user)
{
    struct h2_stream *s = stream_get(user, id);

    (void)ngh;
    if (!s)
        return 0;
    kf_debug(PX_MOD, "conn %llu stream %d closed (%s)", (unsigned long long)s->req.conn->id,
             (int)id, nghttp2_http2_strerror(error));
    h2s_set_state(s, H2S_CLOSED);
    kf_list_remove(&s->queue);
    nghttp2_session_set_stream_user_data(ngh, id, NULL);
    px_request_transport_done(&s->req); /* on_close if the handler still has it */
    return 0;
}

static int on_frame_send(nghttp2_session *ngh, const nghttp2_frame *frame, void *user)
{
    struct h2_conn *h = user;
    struct h2_stream *s;

    if (frame->hd.type == NGHTTP2_GOAWAY) {
        PX_INC(h->base.server, goaways_sent);
        if (frame->goaway.error_code != NGHTTP2_NO_ERROR)
            PX_INC(h->base.server, protocol_errors);
        if (h->state != H2_GOAWAY && h->state != H2_DONE)
            h2_set_state(h, H2_GOAWAY);
        return 0;
    }
    if (!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM) ||
        (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA))
        return 0;
    s = stream_get(h, frame->hd.stream_id);
    /* answered before the client finished its body: ask it to stop (RFC 9113 8.1) */
    if (s && nghttp2_session_get_stream_remote_close(ngh, s->id) == 0)
        nghttp2_submit_rst_stream(ngh, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_NO_ERROR);
    return 0;
}

static int on_invalid_frame(nghttp2_session *ngh, const nghttp2_frame *frame, int err, void *user)
{
    struct h2_conn *h = user;

    (void)ngh;
    (void)frame;
    PX_INC(h->base.server, protocol_errors);
    kf_debug(PX_MOD, "conn %llu h2: invalid frame: %s", (unsigned long long)h->base.id,
             nghttp2_strerror(err));
    return 0;
}

/* ---- connection driving ------------------------------------------------------------- */

static void h2_dispatch_ready(struct h2_conn *h)
{
    while (!kf_list_empty(&h->ready) && px_conn_open(&h->base)) {
        struct h2_stream *s = kf_container_of(h->ready.next, struct h2_stream, queue);

        kf_list_remove(&s->queue);
        h2s_set_state(s, H2S_HANDLER);
        px_request_dispatch(&s->req);
    }
}

static void h2_check_drains(struct h2_conn *h)
{
    struct kf_list *pos, *tmp;

    kf_list_for_each_safe(pos, tmp, &h->streams)
    {
        px_request_check_drain(kf_container_of(pos, struct px_request, node));
    }
}

static void h2_flush(struct h2_conn *h)
{
    int rv;

    if (!px_conn_open(&h->base) || !h->ngh)
        return;
    rv = nghttp2_session_send(h->ngh);
    if (rv < 0) {
        px_conn_close(&h->base, nghttp2_strerror(rv));
        return;
    }
    px_conn_coalesce(&h->base);
    h2_check_drains(h);
    if (!px_conn_open(&h->base))
        return;
    if (!nghttp2_session_want_read(h->ngh) && !nghttp2_session_want_write(h->ngh)) {
        h2_set_state(h, H2_DONE);
        px_conn_finish(&h->base);
    } else if (kf_list_empty(&h->streams)) {
        h->body_timer = false;
        px_conn_timer(&h->base, h->state == H2_PREFACE ? h->base.server->cfg.header_timeout_ms
                                                       : h->base.server->cfg.idle_timeout_ms);
    } else if (h2_any_body_wait(h)) {
        if (!h->body_timer) /* a running one keeps its deadline */
            px_conn_timer(&h->base, h->base.server->cfg.body_timeout_ms);
        h->body_timer = true;
    } else {
        h->body_timer = false;
        px_conn_timer(&h->base, 0);
    }
}

static void h2_on_read(struct px_conn *c)
{
    struct h2_conn *h = h2_of(c);
    struct evbuffer *in = bufferevent_get_input(c->bev);
    struct evbuffer_iovec v;

    while (h->ngh && evbuffer_peek(in, -1, NULL, &v, 1) > 0 && v.iov_len) {
        ssize_t rv = nghttp2_session_mem_recv(h->ngh, v.iov_base, v.iov_len);

        if (rv < 0) {
            PX_INC(c->server, protocol_errors);
            px_conn_close(c, nghttp2_strerror((int)rv));
            return;
        }
        evbuffer_drain(in, (size_t)rv);
    }
    h2_dispatch_ready(h);
    h2_deliver_bodies(h);
    h2_flush(h);
    if (c->state != PX_CONN_CLOSED && c->bev)
        kf_bev_read_buffered(c->bev);
}

static void h2_on_write(struct px_conn *c)
{
    h2_flush(h2_of(c));
}

static void h2_on_kick(struct px_conn *c)
{
    h2_deliver_bodies(h2_of(c));
    h2_flush(h2_of(c));
}

static void h2_on_timeout(struct px_conn *c)
{
    struct h2_conn *h = h2_of(c);

    if (h->body_timer) {
        h->body_timer = false;
        h2_body_timeouts(h);
        h2_deliver_bodies(h);
        h2_flush(h);
        return;
    }
    PX_INC(c->server, timeouts);
    px_conn_goaway(c);
}

static void h2_goaway(struct px_conn *c)
{
    struct h2_conn *h = h2_of(c);

    if (!h->ngh || h->state == H2_GOAWAY || h->state == H2_DONE)
        return;
    nghttp2_submit_goaway(h->ngh, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(h->ngh), NGHTTP2_NO_ERROR, NULL,
                          0);
    px_conn_kick(c);
}

static void h2_teardown(struct px_conn *c)
{
    struct h2_conn *h = h2_of(c);

    while (!kf_list_empty(&h->streams)) {
        struct h2_stream *s =
            (struct h2_stream *)kf_container_of(h->streams.next, struct px_request, node);

        if (s->state != H2S_CLOSED)
            h2s_set_state(s, H2S_CLOSED);
        kf_list_remove(&s->queue);
        px_request_transport_done(&s->req);
    }
    if (h->state != H2_DONE)
        h2_set_state(h, H2_DONE);
    nghttp2_session_del(h->ngh);
    h->ngh = NULL;
}

static void h2_destroy(struct px_conn *c)
{
    free(h2_of(c));
}

/* ---- response ops ------------------------------------------------------------------------ */

static int h2_resp_start(struct px_request *req, bool no_body)
{
    struct h2_conn *h = h2_of(req->conn);
    int rc =
        h2_submit(h, stream_of(req), req->status, &req->resp_headers, req->resp_length, no_body);

    if (rc == 0 && px_coin(h->base.server->cfg.goaway_chance))
        px_conn_goaway(&h->base); /* rebalance: this client reconnects elsewhere later */
    return rc;
}

static void h2_resume(struct h2_conn *h, struct h2_stream *s)
{
    if (s->deferred && h->ngh) {
        s->deferred = false;
        nghttp2_session_resume_data(h->ngh, s->id);
    }
    px_conn_kick(&h->base);
}

static int h2_resp_write(struct px_request *req, const void *data, size_t len, bool copy,
                         px_free_cb cleanup, void *arg)
{
    struct h2_stream *s = stream_of(req);
    int rc = !s->out ? -1
             : copy  ? evbuffer_add(s->out, data, len)
                     : evbuffer_add_reference(s->out, data, len, cleanup, arg);

    if (rc < 0) {
        if (!copy && cleanup)
            cleanup(data, len, arg);
        return -ENOMEM;
    }
    h2_resume(h2_of(req->conn), s);
    return 0;
}

static int h2_resp_end(struct px_request *req)
{
    struct h2_stream *s = stream_of(req);

    s->eof = true;
    h2_resume(h2_of(req->conn), s);
    return 0;
}

static void h2_resp_abort(struct px_request *req)
{
    struct h2_conn *h = h2_of(req->conn);
    struct h2_stream *s = stream_of(req);

    if (h->ngh)
        nghttp2_submit_rst_stream(h->ngh, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
    px_conn_kick(&h->base);
}

static size_t h2_resp_pending(const struct px_request *req)
{
    const struct h2_stream *s = kf_container_of(req, const struct h2_stream, req);

    return s->out ? evbuffer_get_length(s->out) : 0;
}

static void h2_body_kick(struct px_request *req)
{
    struct h2_stream *s = stream_of(req);

    s->body_ms = kf_now_ms(); /* a pause is not the client's delay */
    h2_body_due(h2_of(req->conn), s);
    px_conn_kick(req->conn);
}

static void h2_req_free(struct px_request *req)
{
    struct h2_stream *s = stream_of(req);

    kf_list_remove(&s->queue);
    if (s->out)
        evbuffer_free(s->out); /* runs the cleanups of unsent references */
    s->out = NULL;
}

static const struct px_conn_ops h2_ops = {
    .name = "h2",
    .on_read = h2_on_read,
    .on_write = h2_on_write,
    .on_kick = h2_on_kick,
    .on_timeout = h2_on_timeout,
    .goaway = h2_goaway,
    .teardown = h2_teardown,
    .destroy = h2_destroy,
    .resp_start = h2_resp_start,
    .resp_write = h2_resp_write,
    .resp_end = h2_resp_end,
    .resp_abort = h2_resp_abort,
    .resp_pending = h2_resp_pending,
    .req_free = h2_req_free,
    .resp_upgrade = NULL,
    .body_kick = h2_body_kick,
};

static int h2_session_new(struct h2_conn *h)
{
    const struct px_server_config *cfg = &h->base.server->cfg;
    nghttp2_session_callbacks *cbs;
    nghttp2_option *opt = NULL;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, cfg->max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, PX_H2_STREAM_WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)cfg->max_header_bytes},
        {NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1}, /* WebSockets over HTTP/2, RFC 8441 */
    };
    int rv;

    if (nghttp2_session_callbacks_new(&cbs) != 0)
        return -ENOMEM;
    nghttp2_session_callbacks_set_send_callback(cbs, send_cb);
    nghttp2_session_callbacks_set_send_data_callback(cbs, send_data_cb);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cbs, on_invalid_frame);
    rv = nghttp2_option_new(&opt);
    if (rv == 0) {
        nghttp2_option_set_no_auto_window_update(opt, 1); /* see "Request bodies" above */
        rv = nghttp2_session_server_new2(&h->ngh, cbs, h, opt);
    }
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cbs);
    if (rv != 0)
        return -ENOMEM;
    if (nghttp2_submit_settings(h->ngh, NGHTTP2_FLAG_NONE, iv, KF_ARRAY_SIZE(iv)) != 0 ||
        nghttp2_session_set_local_window_size(h->ngh, NGHTTP2_FLAG_NONE, 0, 1 << 22) != 0)
        return -ENOMEM;
    return 0;
}

int px_h2_start(struct px_transport *t)
{
    struct h2_conn *h = calloc(1, sizeof(*h));
    int rc = h ? px_conn_init(&h->base, &h2_ops, t) : -ENOMEM;

    if (rc < 0) {
        free(h);
        bufferevent_free(t->bev);
        px_tls_peer_free(t->tls_peer);
        return rc;
    }
    kf_list_init(&h->streams);
    kf_list_init(&h->ready);
    h->state = H2_PREFACE;
    PX_INC(h->base.server, conns_h2);
    rc = h2_session_new(h);
    if (rc < 0) {
        px_conn_close(&h->base, "cannot create the HTTP/2 session");
        return rc;
    }
    px_conn_timer(&h->base, h->base.server->cfg.header_timeout_ms);
    kf_bev_tls_read_ahead(h->base.bev);
    /* as conn_read_cb does: a failed send closes the connection inside, and h2_on_read still
     * looks at it afterwards */
    px_conn_hold(&h->base);
    h2_on_read(&h->base);
    px_conn_put(&h->base);
    return 0;
}
