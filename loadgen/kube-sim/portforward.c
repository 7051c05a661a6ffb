/*
 * pods/NAME/portforward: the kubelet's port-forward server (SPDY/3.1,
 * protocol portforward.k8s.io) with an echo server "listening" on every port
 * of every pod, so clients and proxies can be tested end to end.
 *
 * Transports, as the apiserver offers them to kubectl:
 *   - WebSocket with subprotocol SPDY/3.1+portforward.k8s.io (KEP-4006,
 *     kubectl 1.31+ tries it first): the SPDY byte stream travels in binary
 *     messages, cut anywhere;
 *   - a plain upgrade, "Upgrade: SPDY/3.1" with X-Stream-Protocol-Version:
 *     portforward.k8s.io (kubectl's fallback, and older clients).
 *
 * The protocol (client-go tools/portforward, the kubelet's httpstream
 * handler): for each local connection the client opens an "error" stream and
 * then a "data" stream (SYN_STREAM with headers streamtype, port, requestid),
 * half-closing the error stream at once. Each valid stream gets an empty
 * SYN_REPLY (a stream with a missing or bad port or type is reset, CANCEL).
 * Bytes on the data stream are echoed back on it. When the client half-closes
 * the data stream (FIN), the echo ends: FIN on the data stream, then FIN on
 * the error stream with nothing written on it (any text there would make
 * kubectl drop the whole session). A reset data stream also ends its error
 * stream. Client PINGs are answered; GOAWAY stops new streams. There is no
 * flow control (spdystream has none: WINDOW_UPDATE and SETTINGS are ignored),
 * so backpressure is TCP's: reading stops while PF_HIGH_WATER bytes wait to
 * be sent.
 *
 * Session states: OPEN -> GOING_AWAY (the client sent GOAWAY) -> CLOSING (a
 * WebSocket close, or our GOAWAY after a protocol error, is queued; the
 * session is freed when the client closes or PF_LINGER_S after the output is
 * flushed). The client closing the connection frees the session in any state.
 */
#include "loadgen/kube-sim/kube_sim.h"
#include "proxy/http/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#define PF_HIGH_WATER  (1024 * 1024) /* stop reading while this much output waits */
#define PF_WS_CHUNK    (64 * 1024)   /* SPDY bytes per WebSocket message */
#define PF_MAX_STREAMS 256
#define PF_LINGER_S    2
#define PF_WS_PROTOCOL "SPDY/3.1+portforward.k8s.io"
#define PF_PROTOCOL    "portforward.k8s.io"

enum pf_state { PF_OPEN, PF_GOING_AWAY, PF_CLOSING };

static const char *const pf_state_name[] = {"open", "going-away", "closing"};

/* A stream: OPEN -> REMOTE_DONE (the client's FIN) or LOCAL_DONE (ours) -> CLOSED (both, or
 * a reset either way: freed then). */
enum pf_stream_state { ST_OPEN, ST_REMOTE_DONE, ST_LOCAL_DONE, ST_CLOSED };

static const char *const stream_state_name[] = {"open", "remote-done", "local-done", "closed"};

struct pf_stream {
    struct kf_list link; /* in sess->streams */
    enum pf_stream_state state;
    uint32_t id;
    bool data; /* a data stream (else an error stream) */
    char request_id[32];
};

struct pf_sess {
    struct kf_list link; /* in sessions */
    enum pf_state state;
    struct bufferevent *bev;
    bool ws;
    struct ks_ws wsr;
    struct evbuffer *in, *out; /* SPDY bytes; WebSocket: unwrapped / to wrap, else bev's */
    struct ks_spdy spdy;
    struct kf_list streams;
    size_t n_streams;
    uint32_t last_id; /* the highest stream the client opened */
    char pod[200];    /* "ns/name", for logs */
};

static struct kf_list sessions = {&sessions, &sessions};

static void sess_set_state(struct pf_sess *s, enum pf_state next)
{
    KF_BUG_ON(next <= s->state);
    kf_debug("kube-sim", "port-forward %s: %s -> %s", s->pod, pf_state_name[s->state],
             pf_state_name[next]);
    s->state = next;
}

static void sess_free(struct pf_sess *s)
{
    kf_list_remove(&s->link);
    while (!kf_list_empty(&s->streams)) {
        struct kf_list *l = s->streams.next;
        kf_list_remove(l);
        free(kf_container_of(l, struct pf_stream, link));
    }
    if (s->bev)
        bufferevent_free(s->bev);
    if (s->ws && s->in)
        evbuffer_free(s->in);
    if (s->ws && s->out)
        evbuffer_free(s->out);
    ks_ws_free(&s->wsr);
    ks_spdy_free(&s->spdy);
    free(s);
}

static size_t out_len(const struct pf_sess *s)
{
    return evbuffer_get_length(bufferevent_get_output(s->bev)) +
           (s->ws ? evbuffer_get_length(s->out) : 0);
}

/* WebSocket: wrap the SPDY bytes written so far into binary messages. */
static void flush_ws(struct pf_sess *s)
{
    struct evbuffer *raw = bufferevent_get_output(s->bev);
    size_t n;

    while (s->ws && (n = evbuffer_get_length(s->out)) > 0) {
        n = n < PF_WS_CHUNK ? n : PF_WS_CHUNK;
        ks_ws_frame(raw, KS_WS_BINARY, -1, evbuffer_pullup(s->out, (ev_ssize_t)n), n);
        evbuffer_drain(s->out, n);
    }
}

/* Queue the end (our GOAWAY if status >= 0, the WebSocket close) and stop reading. */
static void sess_close(struct pf_sess *s, int goaway_status)
{
    if (s->state == PF_CLOSING)
        return;
    if (goaway_status >= 0)
        ks_spdy_write_control(s->out, KS_SPDY_GOAWAY, s->last_id, (uint32_t)goaway_status);
    flush_ws(s);
    if (s->ws) /* 1000 normal closure, 1002 protocol error */
        ks_ws_frame(bufferevent_get_output(s->bev), KS_WS_CLOSE, -1,
                    goaway_status > 0 ? "\x03\xea" : "\x03\xe8", 2);
    sess_set_state(s, PF_CLOSING);
    bufferevent_setwatermark(s->bev, EV_WRITE, 0, 0);
    if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0) {
        struct timeval linger = {PF_LINGER_S, 0};
        bufferevent_set_timeouts(s->bev, &linger, NULL);
    }
}

/* ---- streams ----------------------------------------------------------------------------- */

static struct pf_stream *stream_find(struct pf_sess *s, uint32_t id)
{
    struct kf_list *l;

    kf_list_for_each(l, &s->streams)
    {
        struct pf_stream *st = kf_container_of(l, struct pf_stream, link);
        if (st->id == id)
            return st;
    }
    return NULL;
}

/* The error stream of a data stream's request (the kubelet pairs them by requestid). */
static struct pf_stream *stream_error_of(struct pf_sess *s, const struct pf_stream *data)
{
    struct kf_list *l;

    kf_list_for_each(l, &s->streams)
    {
        struct pf_stream *st = kf_container_of(l, struct pf_stream, link);
        if (!st->data && strcmp(st->request_id, data->request_id) == 0)
            return st;
    }
    return NULL;
}

/* The one way a stream changes state; CLOSED frees it. */
static void stream_set_state(struct pf_sess *s, struct pf_stream *st, enum pf_stream_state next)
{
    KF_BUG_ON(next == st->state || (next != ST_CLOSED && st->state != ST_OPEN));
    kf_debug("kube-sim", "port-forward %s stream %u: %s -> %s", s->pod, st->id,
             stream_state_name[st->state], stream_state_name[next]);
    st->state = next;
    if (next != ST_CLOSED)
        return;
    kf_list_remove(&st->link);
    s->n_streams--;
    free(st);
}

/* The client's FIN. */
static void stream_remote_fin(struct pf_sess *s, struct pf_stream *st)
{
    stream_set_state(s, st, st->state == ST_OPEN ? ST_REMOTE_DONE : ST_CLOSED);
}

/* Our half-close (an empty DATA with FIN), unless it was sent already. */
static void stream_close_local(struct pf_sess *s, struct pf_stream *st)
{
    if (st->state == ST_LOCAL_DONE)
        return;
    ks_spdy_write_data(s->out, st->id, "", 0, true);
    stream_set_state(s, st, st->state == ST_OPEN ? ST_LOCAL_DONE : ST_CLOSED);
}

/* A data stream is over (client FIN or reset): its error stream ends, empty. */
static void data_done(struct pf_sess *s, struct pf_stream *data, bool reset)
{
    struct pf_stream *err = stream_error_of(s, data);

    if (reset)
        stream_set_state(s, data, ST_CLOSED);
    else
        stream_close_local(s, data);
    if (err)
        stream_close_local(s, err);
}

/* The stream's type, port and request id as the kubelet checks them; false: reset it. */
static bool stream_headers(const struct ks_spdy_frame *f, struct pf_stream *st)
{
    char type[16], port[16];
    char *end;

    if (!ks_spdy_header(f, "port", port, sizeof(port)) ||
        !ks_spdy_header(f, "streamtype", type, sizeof(type)))
        return false;
    unsigned long p = strtoul(port, &end, 10);
    if (!port[0] || *end || p < 1 || p > 65535 || port[0] == '-' || port[0] == '+')
        return false;
    if (strcmp(type, "data") != 0 && strcmp(type, "error") != 0)
        return false;
    st->data = type[0] == 'd';
    if (!ks_spdy_header(f, "requestid", st->request_id, sizeof(st->request_id)))
        /* old clients: the kubelet derives it from the stream ids (error n, data n + 2) */
        snprintf(st->request_id, sizeof(st->request_id), "%u",
                 st->data ? f->stream_id - 2 : f->stream_id);
    return true;
}

static void on_syn_stream(struct pf_sess *s, const struct ks_spdy_frame *f)
{
    struct pf_stream *st;

    if (s->state != PF_OPEN)
        return; /* after GOAWAY new streams are ignored */
    if (!(f->stream_id & 1) || f->stream_id <= s->last_id) {
        ks_spdy_write_control(s->out, KS_SPDY_RST_STREAM, f->stream_id, KS_SPDY_PROTOCOL_ERROR);
        return;
    }
    s->last_id = f->stream_id;
    if (s->n_streams >= PF_MAX_STREAMS || !(st = calloc(1, sizeof(*st)))) {
        ks_spdy_write_control(s->out, KS_SPDY_RST_STREAM, f->stream_id, KS_SPDY_REFUSED_STREAM);
        return;
    }
    st->id = f->stream_id;
    if (!stream_headers(f, st)) {
        free(st);
        ks_spdy_write_control(s->out, KS_SPDY_RST_STREAM, f->stream_id, KS_SPDY_CANCEL);
        return;
    }
    kf_list_insert_tail(&s->streams, &st->link);
    s->n_streams++;
    if (ks_spdy_write_headers(&s->spdy, s->out, KS_SPDY_SYN_REPLY, st->id, 0, NULL, 0) < 0) {
        sess_close(s, KS_SPDY_PROTOCOL_ERROR);
        return;
    }
    if (f->flags & KS_SPDY_FLAG_FIN) {
        stream_remote_fin(s, st);
        if (st->data)
            data_done(s, st, false);
    }
}

static void on_data(struct pf_sess *s, const struct ks_spdy_frame *f)
{
    struct pf_stream *st = stream_find(s, f->stream_id);

    if (!st || st->state == ST_REMOTE_DONE)
        return; /* a stream that is gone or done (spdystream ignores these too) */
    if (st->data && st->state == ST_OPEN && f->len)
        ks_spdy_write_data(s->out, st->id, f->data, f->len, false); /* the echo */
    if (!(f->flags & KS_SPDY_FLAG_FIN))
        return;
    bool echo_over = st->data && st->state == ST_OPEN;
    stream_remote_fin(s, st); /* frees a stream we had ended already */
    if (echo_over)
        data_done(s, st, false);
}

static void on_frame(struct pf_sess *s, const struct ks_spdy_frame *f)
{
    struct pf_stream *st;

    switch (f->type) {
    case KS_SPDY_SYN_STREAM:
        on_syn_stream(s, f);
        break;
    case KS_SPDY_DATA:
        on_data(s, f);
        break;
    case KS_SPDY_RST_STREAM:
        if ((st = stream_find(s, f->stream_id)) != NULL) {
            if (st->data)
                data_done(s, st, true);
            else
                stream_set_state(s, st, ST_CLOSED);
        }
        break;
    case KS_SPDY_PING:
        if (f->value & 1) /* the client's (ours would be even; we send none) */
            ks_spdy_write_control(s->out, KS_SPDY_PING, f->value, 0);
        break;
    case KS_SPDY_GOAWAY:
        if (s->state == PF_OPEN)
            sess_set_state(s, PF_GOING_AWAY);
        break;
    default: /* SYN_REPLY, HEADERS, SETTINGS, WINDOW_UPDATE, unknown: nothing to do */
        break;
    }
}

/* ---- reading ---------------------------------------------------------------------------- */

/* One SPDY frame from s->in: 1 handled, 0 incomplete, -1 the session ended. */
static int spdy_step(struct pf_sess *s)
{
    struct ks_spdy_frame f;
    uint8_t head[8];
    size_t size;

    if (evbuffer_get_length(s->in) < 8)
        return 0;
    evbuffer_copyout(s->in, head, 8);
    if (ks_spdy_frame_size(head, &size) < 0) {
        kf_debug("kube-sim", "port-forward %s: frame of %zu bytes refused", s->pod, size);
        sess_close(s, KS_SPDY_PROTOCOL_ERROR);
        return -1;
    }
    if (evbuffer_get_length(s->in) < size)
        return 0;
    int rc = ks_spdy_parse(&s->spdy, evbuffer_pullup(s->in, (ev_ssize_t)size), size, &f);
    if (rc == 0)
        on_frame(s, &f);
    evbuffer_drain(s->in, size); /* after on_frame: f points into these bytes */
    if (rc < 0) {
        kf_debug("kube-sim", "port-forward %s: malformed frame", s->pod);
        sess_close(s, KS_SPDY_PROTOCOL_ERROR);
        return -1;
    }
    return 1;
}

/* A tunnelled message: more of the SPDY byte stream, or the client's close. */
static bool on_ws_message(void *arg, int op, const uint8_t *p, size_t len)
{
    struct pf_sess *s = arg;

    if (op == KS_WS_CLOSE) {
        sess_close(s, -1);
        return false;
    }
    if (op != KS_WS_BINARY)
        return false; /* the tunnel carries binary messages only */
    evbuffer_add(s->in, p, len);
    return true;
}

/* Handle what can be handled without queueing more than PF_HIGH_WATER of output. */
static void pump(struct pf_sess *s)
{
    struct evbuffer *raw = bufferevent_get_input(s->bev);

    while (s->state != PF_CLOSING && out_len(s) < PF_HIGH_WATER) {
        int rc = spdy_step(s);
        if (rc > 0)
            continue;
        if (rc < 0 || !s->ws)
            break;
        rc = ks_ws_read(&s->wsr, raw, bufferevent_get_output(s->bev), on_ws_message, s);
        if (rc == 0)
            break;
        if (rc < 0)
            sess_close(s, s->state == PF_CLOSING ? -1 : KS_SPDY_PROTOCOL_ERROR);
    }
    flush_ws(s);
    if (s->state == PF_CLOSING) /* the client's last bytes are of no use */
        evbuffer_drain(raw, evbuffer_get_length(raw));
    else if (out_len(s) >= PF_HIGH_WATER)
        bufferevent_disable(s->bev, EV_READ); /* the write callback resumes */
    else
        bufferevent_enable(s->bev, EV_READ);
}

static void sess_on_read(struct bufferevent *bev, void *arg)
{
    (void)bev;
    pump(arg);
}

static void sess_on_write(struct bufferevent *bev, void *arg)
{
    struct pf_sess *s = arg;

    if (s->state != PF_CLOSING) {
        pump(s); /* below the low mark: read again */
        return;
    }
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
        struct timeval linger = {PF_LINGER_S, 0};
        bufferevent_set_timeouts(bev, &linger, NULL);
    }
}

static void sess_on_event(struct bufferevent *bev, short what, void *arg)
{
    struct pf_sess *s = arg;

    (void)bev;
    kf_debug("kube-sim", "port-forward %s: connection ended (%s%s%s), %zu streams open", s->pod,
             what & BEV_EVENT_EOF ? "eof" : "", what & BEV_EVENT_ERROR ? "error" : "",
             what & BEV_EVENT_TIMEOUT ? "timeout" : "", s->n_streams);
    sess_free(s);
}

static void on_upgraded(struct bufferevent *bev, void *arg)
{
    struct pf_sess *s = arg;

    if (!bev) {
        sess_free(s);
        return;
    }
    s->bev = bev;
    if (s->ws) {
        s->in = evbuffer_new();
        s->out = evbuffer_new();
    } else {
        s->in = bufferevent_get_input(bev);
        s->out = bufferevent_get_output(bev);
    }
    if (!s->in || !s->out) {
        sess_free(s);
        return;
    }
    bufferevent_setcb(bev, sess_on_read, sess_on_write, sess_on_event, s);
    bufferevent_setwatermark(bev, EV_WRITE, PF_HIGH_WATER / 2, 0);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    pump(s); /* frames may have come with the handshake */
}

/* ---- the handshake --------------------------------------------------------------------- */

/* The kubelet's httpstream.Handshake for a plain SPDY upgrade; false after its refusal. */
static bool spdy_handshake(struct ks_req *r)
{
    const char *conn = px_request_header(r->px, "connection");
    const char *upgrade = px_request_header(r->px, "upgrade");
    const char *version = px_request_header(r->px, "x-stream-protocol-version");
    char msg[600];

    if (!version) {
        snprintf(msg, sizeof(msg),
                 "unable to upgrade: header X-Stream-Protocol-Version does not exist in request "
                 "with %zu headers\n",
                 px_request_header_count(r->px));
        ks_reply_body(r, 400, "text/plain; charset=utf-8", msg, strlen(msg));
        return false;
    }
    if (!ks_header_has_token(version, PF_PROTOCOL)) {
        snprintf(msg, sizeof(msg),
                 "unable to upgrade: unable to negotiate protocol: client supports [%.400s], "
                 "server accepts [" PF_PROTOCOL "]\n",
                 version);
        px_response_header(r->px, "X-Accepted-Stream-Protocol-Versions", PF_PROTOCOL);
        ks_reply_body(r, 403, "text/plain; charset=utf-8", msg, strlen(msg));
        return false;
    }
    if (!px_request_is_upgrade(r->px) || !conn || !strcasestr(conn, "upgrade") || !upgrade ||
        !strcasestr(upgrade, "spdy/3.1")) {
        snprintf(msg, sizeof(msg), "unable to upgrade: missing upgrade headers in request\n");
        ks_reply_body(r, 400, "text/plain; charset=utf-8", msg, strlen(msg));
        return false;
    }
    px_response_header(r->px, "X-Stream-Protocol-Version", PF_PROTOCOL);
    px_response_header(r->px, "Upgrade", "SPDY/3.1");
    return true;
}

/* The pod exists and runs on a node (PortForwardLocation); false after the error. */
static bool pod_ok(struct ks_req *r)
{
    struct ks_obj *pod = ks_store_get(r->res, ks_req_key(r, r->name));
    struct ks_json *dom;

    if (!pod) {
        ks_reply_not_found(r, r->res, r->name);
        return false;
    }
    if (ks_obj_dom(pod, r->arena, &dom) < 0) {
        ks_reply_error(r, 500, "InternalError", "Internal error occurred: out of memory");
        return false;
    }
    const struct ks_json *node = ks_json_path(dom, "spec.nodeName");
    if (!node || node->t != KS_J_STR || !node->s[0]) {
        ks_reply_bad_request(r, "pod %s does not have a host assigned", r->name);
        return false;
    }
    return true;
}

void ks_handle_portforward(struct ks_req *r)
{
    static const char *const ws_protos[] = {PF_WS_PROTOCOL};
    const char *upgrade = px_request_header(r->px, "upgrade");
    struct pf_sess *s;

    if (!pod_ok(r))
        return;
    s = calloc(1, sizeof(*s));
    if (!s || ks_spdy_init(&s->spdy) < 0) {
        free(s);
        ks_reply_error(r, 500, "InternalError", "out of memory");
        return;
    }
    kf_list_init(&s->link);
    kf_list_init(&s->streams);
    ks_ws_init(&s->wsr);
    snprintf(s->pod, sizeof(s->pod), "%s/%s", r->ns, r->name);
    s->ws = upgrade && strcasecmp(upgrade, "websocket") == 0;
    if (s->ws && !ks_ws_accept(r, ws_protos, KF_ARRAY_SIZE(ws_protos))) {
        ks_reply_bad_request(r, "kube-sim serves port-forward over WebSocket with the "
                                "subprotocol " PF_WS_PROTOCOL " only");
        sess_free(s);
        return;
    }
    if (!s->ws && !spdy_handshake(r)) {
        sess_free(s);
        return;
    }
    kf_list_insert_tail(&sessions, &s->link);
    ks_req_count(r, 101);
    if (px_request_upgrade(r->px, on_upgraded, s) < 0)
        on_upgraded(NULL, s);
}

void ks_portforward_shutdown(void)
{
    while (!kf_list_empty(&sessions))
        sess_free(kf_container_of(sessions.next, struct pf_sess, link));
}

size_t ks_portforward_count(size_t *streams)
{
    size_t n = 0;
    struct kf_list *l;

    *streams = 0;
    kf_list_for_each(l, &sessions)
    {
        n++;
        *streams += kf_container_of(l, struct pf_sess, link)->n_streams;
    }
    return n;
}
