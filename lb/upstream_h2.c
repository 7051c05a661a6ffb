/*
 * HTTP/2 on an upstream connection: an nghttp2 client session fed from and
 * written to the connection's bufferevent.
 *
 * Flow control is end to end per stream: automatic WINDOW_UPDATEs are off,
 * the connection window is given back as soon as a DATA frame arrives (so one
 * stalled stream never holds the others), and a stream's window only when the
 * consumer calls lb_ureq_consume() after passing the bytes on. The bytes held
 * for a slow client are thus bounded by stream_window per stream.
 *
 * Liveness: a connection with streams that has heard nothing for
 * ping_interval sends a PING, and one whose PING stays unanswered for
 * ping_timeout is dead, so a half-open watch after an apiserver restart ends
 * within seconds instead of at the TCP keepalive's minutes. A stream started
 * on a connection that has been silent that long sends a PING at once.
 *
 * Requests are looked up by stream id in the connection's list (with a
 * one-entry cache for runs of DATA frames): nghttp2's stream user data is not
 * used, so a cancelled request can never be reached through a stale pointer.
 */
#include "lb/upstream_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <nghttp2/nghttp2.h>

#define CONN_WINDOW (16 << 20)
/* Frames are held in nghttp2 (not copied out) while this much waits for the socket. */
#define OUT_HIGH (64 * 1024)

struct h2_conn {
    nghttp2_session *session;
    struct lb_ureq *last; /* lookup cache */
    bool body_drain_due;  /* a request has body_drain_due */
    bool ping_out;
    uint64_t ping_sent_ms;
};

static struct lb_ureq *find(struct up_conn *c, int32_t stream_id)
{
    struct h2_conn *h = c->proto;

    if (h->last && h->last->stream_id == stream_id)
        return h->last;
    h->last = up_conn_find(c, stream_id);
    return h->last;
}

static void fail_session(struct up_conn *c, int rv)
{
    snprintf(c->error, sizeof(c->error), "http2: %s", nghttp2_strerror(rv));
    up_conn_fail(c, rv == NGHTTP2_ERR_NOMEM ? -ENOMEM : -EPROTO, c->error);
}

/* ---- sending ----------------------------------------------------------------------- */

/*
 * After nghttp2 took streaming body bytes: tell their writers. A callback may
 * start or cancel requests, so the list is walked again after each.
 */
static void body_drains(struct up_conn *c)
{
    struct h2_conn *h = c->proto;
    bool again = h->body_drain_due;
    struct kf_list *pos;

    h->body_drain_due = false;
    while (again && c->state != UP_CONN_CLOSED) {
        again = false;
        kf_list_for_each(pos, &c->reqs)
        {
            struct lb_ureq *req = kf_container_of(pos, struct lb_ureq, link);

            if (req->body_drain_due) {
                req->body_drain_due = false;
                up_req_body_progress(req);
                again = true;
                break;
            }
        }
    }
}

static void h2_flush(struct up_conn *c)
{
    struct h2_conn *h = c->proto;

    while (c->state != UP_CONN_CLOSED && up_conn_output_len(c) < OUT_HIGH) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(h->session, &data);
        if (n < 0) {
            fail_session(c, (int)n);
            return;
        }
        if (n == 0)
            break;
        if (up_conn_write(c, data, (size_t)n) < 0) {
            up_conn_fail(c, -ENOMEM, "out of memory");
            return;
        }
    }
    body_drains(c);
    if (c->state != UP_CONN_CLOSED)
        up_conn_send_now(c);
    if (c->state == UP_CONN_CLOSED || nghttp2_session_want_read(h->session) ||
        nghttp2_session_want_write(h->session))
        return;
    /* GOAWAY both ways, or a fatal error that nghttp2 already answered */
    if (c->state == UP_CONN_PREFACE)
        up_conn_fail(c, -EPROTO, "http2 session ended before the server's SETTINGS");
    else if (c->n_reqs)
        up_conn_fail(c, -ECONNRESET, "http2 session ended");
    else
        up_conn_close(c);
}

static void send_ping(struct up_conn *c, uint64_t now)
{
    struct h2_conn *h = c->proto;

    if (nghttp2_submit_ping(h->session, NGHTTP2_FLAG_NONE, NULL) != 0)
        return;
    h->ping_out = true;
    h->ping_sent_ms = now;
    up_conn_kick(c);
    up_conn_arm_timer(c);
}

static void h2_tick(struct up_conn *c, uint64_t now)
{
    struct h2_conn *h = c->proto;
    const struct lb_upstream_config *cfg = &c->up->cfg;

    if (h->ping_out) {
        if (now < h->ping_sent_ms + cfg->ping_timeout_ms)
            return;
        atomic_fetch_add_explicit(&c->us->server->up.ping_timeouts, 1, memory_order_relaxed);
        snprintf(c->error, sizeof(c->error), "no PING ack within %u ms", cfg->ping_timeout_ms);
        up_conn_fail(c, -ETIMEDOUT, c->error);
        return;
    }
    if (c->n_reqs > 0 && now >= c->last_recv_ms + cfg->ping_interval_ms)
        send_ping(c, now);
}

static uint64_t h2_deadline(struct up_conn *c)
{
    struct h2_conn *h = c->proto;

    if (h->ping_out)
        return h->ping_sent_ms + c->up->cfg.ping_timeout_ms;
    return c->n_reqs > 0 ? c->last_recv_ms + c->up->cfg.ping_interval_ms : 0;
}

static ssize_t read_body(nghttp2_session *session KF_UNUSED, int32_t stream_id, uint8_t *buf,
                         size_t length, uint32_t *data_flags, nghttp2_data_source *source KF_UNUSED,
                         void *user_data)
{
    struct lb_ureq *req = find(user_data, stream_id);
    bool eof = false;
    size_t n;

    if (!req)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    n = up_req_body_read(req, buf, length, &eof);
    if (n && req->body_drain_armed) { /* told once nghttp2 has returned */
        req->body_drain_due = true;
        ((struct h2_conn *)((struct up_conn *)user_data)->proto)->body_drain_due = true;
    }
    if (eof)
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    else if (n == 0)
        return NGHTTP2_ERR_DEFERRED;
    return (ssize_t)n;
}

static nghttp2_nv make_nv(const char *name, size_t name_len, const char *value, size_t value_len)
{
    return (nghttp2_nv){(uint8_t *)(uintptr_t)name, (uint8_t *)(uintptr_t)value, name_len,
                        value_len, NGHTTP2_NV_FLAG_NONE};
}

static nghttp2_nv *build_nv(struct up_conn *c, struct lb_ureq *req, size_t *n)
{
    nghttp2_nv *nv = kf_arena_alloc(req->arena, (req->n_headers + 5) * sizeof(*nv));
    const char *scheme = c->up->cfg.tls ? "https" : "http";
    const char *authority = up_req_authority(req);
    const char *cl = up_req_content_length(req);

    if (!nv)
        return NULL;
    nv[0] = make_nv(":method", 7, req->method, strlen(req->method));
    nv[1] = make_nv(":scheme", 7, scheme, strlen(scheme));
    nv[2] = make_nv(":authority", 10, authority, strlen(authority));
    nv[3] = make_nv(":path", 5, req->path, strlen(req->path));
    *n = 4;
    for (size_t i = 0; i < req->n_headers; i++)
        nv[(*n)++] = make_nv(req->headers[i].name, req->headers[i].name_len, req->headers[i].value,
                             req->headers[i].value_len);
    if (cl)
        nv[(*n)++] = make_nv("content-length", 14, cl, strlen(cl));
    return nv;
}

static int h2_submit(struct up_conn *c, struct lb_ureq *req)
{
    struct h2_conn *h = c->proto;
    nghttp2_data_provider prd = {.read_callback = read_body};
    bool has_body = req->body_streaming || req->body_len > 0;
    size_t n;
    nghttp2_nv *nv = build_nv(c, req, &n);
    int32_t id;
    uint64_t now = kf_now_ms();

    if (!nv)
        return -ENOMEM;
    req->body_off = 0;
    id = nghttp2_submit_request(h->session, NULL, nv, n, has_body ? &prd : NULL, NULL);
    if (id < 0) {
        if (id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE)
            up_conn_drain(c);
        return id == NGHTTP2_ERR_NOMEM ? -ENOMEM : -EAGAIN;
    }
    req->stream_id = id;
    /* A connection silent for a ping interval may be half-open: probe it now. */
    if (!h->ping_out && now >= c->last_recv_ms + c->up->cfg.ping_interval_ms)
        send_ping(c, now);
    up_conn_kick(c);
    return 0;
}

static void h2_body_more(struct up_conn *c, struct lb_ureq *req)
{
    struct h2_conn *h = c->proto;

    if (req->stream_id > 0)
        nghttp2_session_resume_data(h->session, req->stream_id);
    up_conn_kick(c);
}

static void h2_consume(struct up_conn *c, struct lb_ureq *req, size_t n)
{
    struct h2_conn *h = c->proto;

    if (req->stream_id > 0 && nghttp2_session_consume_stream(h->session, req->stream_id, n) == 0)
        up_conn_kick(c);
}

static void h2_detach(struct up_conn *c, struct lb_ureq *req, bool cancel)
{
    struct h2_conn *h = c->proto;

    if (h->last == req)
        h->last = NULL;
    if (!cancel || req->stream_id <= 0 || c->state == UP_CONN_CLOSED)
        return;
    /* nghttp2 also withdraws HEADERS that were not sent yet */
    nghttp2_submit_rst_stream(h->session, NGHTTP2_FLAG_NONE, req->stream_id, NGHTTP2_CANCEL);
    up_conn_kick(c);
}

static bool h2_has_capacity(struct up_conn *c)
{
    struct h2_conn *h = c->proto;
    uint32_t max =
        nghttp2_session_get_remote_settings(h->session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);

    return c->state == UP_CONN_READY && c->n_reqs < max &&
           nghttp2_session_get_next_stream_id(h->session) < (1u << 31);
}

/* ---- receiving -------------------------------------------------------------------------- */

static void h2_read(struct up_conn *c)
{
    struct h2_conn *h = c->proto;
    struct evbuffer *in = up_conn_input(c);
    size_t len;

    while (c->state != UP_CONN_CLOSED && (len = evbuffer_get_contiguous_space(in)) > 0) {
        const uint8_t *p = evbuffer_pullup(in, (ssize_t)len);
        ssize_t rv = nghttp2_session_mem_recv(h->session, p, len);
        if (c->state == UP_CONN_CLOSED)
            return;
        if (rv < 0) {
            fail_session(c, (int)rv);
            return;
        }
        up_conn_drain_input(c, (size_t)rv);
    }
    if (c->state != UP_CONN_CLOSED)
        h2_flush(c);
    if (c->state != UP_CONN_CLOSED)
        kf_bev_read_buffered(c->bev);
}

static int on_begin_headers(nghttp2_session *session KF_UNUSED, const nghttp2_frame *frame,
                            void *user_data)
{
    struct lb_ureq *req = find(user_data, frame->hd.stream_id);

    if (req && frame->hd.type == NGHTTP2_HEADERS) {
        up_req_responding(req);
        req->status = 0;
    }
    return 0;
}

static int on_header(nghttp2_session *session KF_UNUSED, const nghttp2_frame *frame,
                     const uint8_t *name, size_t name_len, const uint8_t *value, size_t value_len,
                     uint8_t flags KF_UNUSED, void *user_data)
{
    struct lb_ureq *req = find(user_data, frame->hd.stream_id);

    if (!req || req->headers_done || frame->hd.type != NGHTTP2_HEADERS)
        return 0; /* trailers and cancelled streams are not passed on */
    if (name_len == 7 && memcmp(name, ":status", 7) == 0) {
        req->status = value_len == 3 ? atoi((const char *)value) : 0;
        return 0;
    }
    if (name_len && name[0] == ':')
        return 0;
    if (up_req_add_header(req, (const char *)name, name_len, (const char *)value, value_len) < 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return 0;
}

/* A response head: informational ones (1xx) are dropped, the final one delivered. */
static void headers_received(struct up_conn *c, int32_t stream_id)
{
    struct lb_ureq *req = find(c, stream_id);

    if (!req || req->headers_done)
        return;
    if (req->status < 200) {
        up_req_reset_headers(req);
        return;
    }
    up_req_deliver_headers(req, req->status);
}

static int on_frame_recv(nghttp2_session *session KF_UNUSED, const nghttp2_frame *frame,
                         void *user_data)
{
    struct up_conn *c = user_data;
    struct h2_conn *h = c->proto;

    switch (frame->hd.type) {
    case NGHTTP2_SETTINGS:
        if (frame->hd.flags & NGHTTP2_FLAG_ACK)
            break;
        if (c->state == UP_CONN_PREFACE)
            up_conn_ready(c);
        else
            up_schedule_dispatch(c->up); /* the stream limit may have grown */
        break;
    case NGHTTP2_HEADERS:
        headers_received(c, frame->hd.stream_id);
        break;
    case NGHTTP2_PING:
        if (frame->hd.flags & NGHTTP2_FLAG_ACK) {
            h->ping_out = false;
            up_conn_arm_timer(c);
        }
        break;
    case NGHTTP2_GOAWAY:
        /* streams above last_stream_id are closed next with REFUSED_STREAM */
        kf_info("lb", "upstream %s: GOAWAY (error %u, last stream %d)",
                lb_server_label(c->us->server), frame->goaway.error_code,
                frame->goaway.last_stream_id);
        if (c->state == UP_CONN_READY)
            up_conn_drain(c);
        up_schedule_dispatch(c->up);
        break;
    default:
        break;
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags KF_UNUSED, int32_t stream_id,
                         const uint8_t *data, size_t len, void *user_data)
{
    struct lb_ureq *req = find(user_data, stream_id);

    nghttp2_session_consume_connection(session, len);
    if (req && req->headers_done)
        up_req_deliver_data(req, data, len);
    return 0;
}

static int stream_error(uint32_t code)
{
    switch (code) {
    case NGHTTP2_REFUSED_STREAM:
        return -ECONNREFUSED;
    case NGHTTP2_PROTOCOL_ERROR:
    case NGHTTP2_NO_ERROR: /* closed without a response head */
        return -EPROTO;
    default:
        return -ECONNRESET;
    }
}

static int on_stream_close(nghttp2_session *session KF_UNUSED, int32_t stream_id,
                           uint32_t error_code, void *user_data)
{
    struct up_conn *c = user_data;
    struct lb_ureq *req = find(c, stream_id);

    if (!req)
        return 0;
    up_conn_detach(c, req, false);
    if (error_code == NGHTTP2_NO_ERROR && req->headers_done)
        up_req_complete(req);
    else
        up_req_failed(req, stream_error(error_code));
    return 0;
}

static int on_frame_send(nghttp2_session *session KF_UNUSED, const nghttp2_frame *frame,
                         void *user_data)
{
    struct lb_ureq *req;

    if (frame->hd.type == NGHTTP2_HEADERS && (req = find(user_data, frame->hd.stream_id)))
        req->wire = true;
    return 0;
}

/* HEADERS that could not go out (a GOAWAY came first): nothing was sent, so any request
 * may go elsewhere. */
static int on_frame_not_send(nghttp2_session *session KF_UNUSED, const nghttp2_frame *frame,
                             int lib_error_code, void *user_data)
{
    struct up_conn *c = user_data;
    struct lb_ureq *req;

    if (frame->hd.type != NGHTTP2_HEADERS || !(req = find(c, frame->hd.stream_id)))
        return 0;
    kf_debug("lb", "upstream %s: request not sent: %s", lb_server_label(c->us->server),
             nghttp2_strerror(lib_error_code));
    up_conn_detach(c, req, false);
    up_req_failed(req, -ECONNREFUSED);
    return 0;
}

/* ---- setup ---------------------------------------------------------------------------- */

static nghttp2_session_callbacks *make_callbacks(void)
{
    nghttp2_session_callbacks *cbs;

    if (nghttp2_session_callbacks_new(&cbs) != 0)
        return NULL;
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    nghttp2_session_callbacks_set_on_frame_not_send_callback(cbs, on_frame_not_send);
    return cbs;
}

static int new_session(struct up_conn *c, struct h2_conn *h)
{
    nghttp2_session_callbacks *cbs = make_callbacks();
    nghttp2_option *opt = NULL;
    int rv = NGHTTP2_ERR_NOMEM;

    if (cbs && nghttp2_option_new(&opt) == 0) {
        nghttp2_option_set_no_auto_window_update(opt, 1);
        rv = nghttp2_session_client_new2(&h->session, cbs, c, opt);
    }
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cbs);
    return rv;
}

static int h2_init(struct up_conn *c)
{
    struct h2_conn *h = calloc(1, sizeof(*h));
    nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, c->up->cfg.stream_window},
    };

    if (!h)
        return -ENOMEM;
    c->proto = h;
    if (new_session(c, h) != 0 ||
        nghttp2_submit_settings(h->session, NGHTTP2_FLAG_NONE, settings, KF_ARRAY_SIZE(settings)) !=
            0 ||
        nghttp2_session_set_local_window_size(h->session, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW) != 0)
        return -ENOMEM;
    /* Requests wait for the server's SETTINGS: its stream limit decides how many fit. */
    up_conn_set_state(c, UP_CONN_PREFACE);
    kf_bev_tls_read_ahead(c->bev);
    up_conn_arm_timer(c);
    h2_flush(c);
    return 0;
}

static void h2_destroy(struct up_conn *c)
{
    struct h2_conn *h = c->proto;

    if (!h)
        return;
    nghttp2_session_del(h->session);
    free(h);
    c->proto = NULL;
}

const struct up_proto_ops up_h2_ops = {
    .name = "h2",
    .proto = UP_PROTO_H2,
    .init = h2_init,
    .destroy = h2_destroy,
    .read = h2_read,
    .flush = h2_flush,
    .eof = NULL,
    .has_capacity = h2_has_capacity,
    .submit = h2_submit,
    .detach = h2_detach,
    .consume = h2_consume,
    .body_more = h2_body_more,
    .tick = h2_tick,
    .deadline = h2_deadline,
};
