/*
 * The upstream client pool behind lb_upstream_* / lb_ureq_* (lb.h).
 *
 *   upstream.c       the pool: per-server queues, dispatch, retries, health poll
 *   upstream_req.c   requests: spec validation and copy, callbacks, end and free
 *   upstream_conn.c  one connection's transport: TCP connect, TLS, timers, close
 *   upstream_h2.c    HTTP/2 over a connection (nghttp2 client session)
 *   upstream_h1.c    HTTP/1.1 over a connection (http-parser)
 *
 * Everything here belongs to one worker loop and is touched by it alone; the
 * only shared objects are the lb_server (atomics) and the caller's SSL_CTX.
 *
 * Reentrancy: user callbacks may start and cancel requests. So a request is
 * never freed while a callback on it runs (in_cb), a connection is never
 * freed while its own code is on the stack (closed ones wait on up->reap),
 * and work that would re-enter a protocol engine (dispatching queued
 * requests, writing frames) is deferred to events.
 */
#ifndef KF_LB_UPSTREAM_INTERNAL_H
#define KF_LB_UPSTREAM_INTERNAL_H

#include "lb/lb_internal.h"

struct bufferevent;
struct event;
struct evbuffer;

enum up_proto {
    UP_PROTO_NONE = 0, /* not known yet (TLS before ALPN) */
    UP_PROTO_H1,
    UP_PROTO_H2,
};

/* ---- connections --------------------------------------------------------------- */

enum up_conn_state {
    UP_CONN_CONNECTING = 0, /* non-blocking TCP connect */
    UP_CONN_TLS,            /* TLS handshake with ALPN */
    UP_CONN_PREFACE,        /* h2: preface sent, waiting for the server's SETTINGS */
    UP_CONN_READY,          /* takes new requests (up to its capacity) */
    UP_CONN_DRAINING,       /* no new requests (GOAWAY, server drained): closes when idle */
    UP_CONN_CLOSED,         /* dead; waits on up->reap to be freed */
};

struct up_conn;
struct lb_ureq;

/* What a wire protocol does on an established connection. */
struct up_proto_ops {
    const char *name;
    enum up_proto proto;
    /** Transport is up: set up the protocol and move to PREFACE or READY. */
    int (*init)(struct up_conn *c);
    void (*destroy)(struct up_conn *c);
    /** Bytes wait in the input buffer. */
    void (*read)(struct up_conn *c);
    /** Deferred work: write what is pending (h2), parse what was held back (h1). */
    void (*flush)(struct up_conn *c);
    /**
     * The peer closed, optional: finish what the close completes (an HTTP/1
     * body read to EOF). Returns false to let the connection fail.
     */
    bool (*eof)(struct up_conn *c);
    bool (*has_capacity)(struct up_conn *c);
    /** Put req (already attached) on the wire. */
    int (*submit)(struct up_conn *c, struct lb_ureq *req);
    /** req leaves the connection; cancel: the client went away (reset its stream). */
    void (*detach)(struct up_conn *c, struct lb_ureq *req, bool cancel);
    void (*consume)(struct up_conn *c, struct lb_ureq *req, size_t n);
    /** More streaming body bytes (or its end) are waiting in req. */
    void (*body_more)(struct up_conn *c, struct lb_ureq *req);
    /** Protocol timers (PING), optional: act on them now, and the next deadline (ms, 0: none). */
    void (*tick)(struct up_conn *c, uint64_t now_ms);
    uint64_t (*deadline)(struct up_conn *c);
};

extern const struct up_proto_ops up_h1_ops;
extern const struct up_proto_ops up_h2_ops;

struct up_conn {
    enum up_conn_state state;
    struct kf_list link; /* in us->conns; in up->reap once CLOSED */
    struct up_server *us;
    struct lb_upstream *up;
    const struct up_proto_ops *ops; /* NULL until the protocol is known */
    void *proto;                    /* the protocol's own state */
    int fd;                         /* until the bufferevent owns it */
    struct bufferevent *bev;
    struct event *io;    /* CONNECTING: writable */
    struct event *timer; /* connect deadline, protocol ticks, idle timeout */
    struct event *kick;  /* deferred ops->flush */
    bool kick_queued;    /* kick is active: more kicks this iteration are one */
    struct kf_list reqs; /* attached struct lb_ureq */
    size_t n_reqs;
    int pending_error; /* a synchronous failure, reported from the timer */
    char error[160];   /* why it failed, for the log */
    uint64_t started_us, connect_us;
    uint64_t deadline_ms; /* connect deadline until READY */
    uint64_t last_recv_ms, idle_since_ms;
    bool counted; /* in the conns_open counter of its protocol */
};

/* Legal state moves; asserts, logs at debug. */
void up_conn_set_state(struct up_conn *c, enum up_conn_state next);
/** Open a connection to the server of us (connect runs in the background). NULL on ENOMEM. */
struct up_conn *up_conn_open(struct up_server *us);
/** The protocol is set up and the connection takes requests. */
void up_conn_ready(struct up_conn *c);
/** No new requests; the connection closes once its requests are done. */
void up_conn_drain(struct up_conn *c);
/**
 * The connection is dead: every attached request fails with error (and may
 * be retried), the connection goes to the reaper. why goes to the log.
 */
void up_conn_fail(struct up_conn *c, int error, const char *why);
/** Close a connection that carries no request. */
void up_conn_close(struct up_conn *c);
/** Run ops->flush from the loop (never re-entering the protocol engine). */
void up_conn_kick(struct up_conn *c);
/** The output of a burst is queued: write it in this loop iteration. */
void up_conn_send_now(struct up_conn *c);
/** Recompute and arm the connection's timer. */
void up_conn_arm_timer(struct up_conn *c);
/** Write bytes to the peer (counted as bytes sent to the server). */
int up_conn_write(struct up_conn *c, const void *data, size_t len);
/** Move all of buf to the peer's output. */
int up_conn_write_buffer(struct up_conn *c, struct evbuffer *buf);
struct evbuffer *up_conn_input(struct up_conn *c);
/** Bytes waiting to be written to the peer. */
size_t up_conn_output_len(struct up_conn *c);
/** Drop n parsed bytes from the input (counted as bytes from the server). */
void up_conn_drain_input(struct up_conn *c, size_t n);
/** Free a CLOSED connection (from the reaper). */
void up_conn_free(struct up_conn *c);

/** Attach req to c and submit it; 0, or a negative errno with req detached again. */
int up_conn_submit(struct up_conn *c, struct lb_ureq *req);
/** req leaves c (done, failed or cancelled); the connection may go idle or close. */
void up_conn_detach(struct up_conn *c, struct lb_ureq *req, bool cancel);
/** The request found by a protocol's stream id, or NULL. */
struct lb_ureq *up_conn_find(struct up_conn *c, int32_t stream_id);

/* ---- servers (per upstream) ------------------------------------------------------- */

struct up_server {
    struct kf_list link; /* in up->servers */
    struct lb_upstream *up;
    struct lb_server *server;  /* referenced */
    enum up_proto proto;       /* learned from its connections */
    struct kf_list conns;      /* not CLOSED */
    size_t n_conns, n_pending; /* pending: not READY yet */
    struct kf_list queue;      /* requests waiting for a stream */
    size_t n_queued;
    bool was_down, was_eligible;
    bool tls_warned; /* a TLS failure was logged (once until a success) */
    uint64_t empty_since_ms;
};

/** A connection attempt failed before READY: the queue may have to go elsewhere. */
void up_server_connect_failed(struct up_server *us, int error);
/** Dispatch the queues of every server from the loop. */
void up_schedule_dispatch(struct lb_upstream *up);

/* ---- requests ------------------------------------------------------------------------ */

enum up_req_state {
    UREQ_QUEUED = 0, /* waiting in its server's queue */
    UREQ_SENT,       /* on a connection, no response byte yet */
    UREQ_RESPONDING, /* response bytes arrived: never retried from here */
    UREQ_DONE,       /* on_end ran or it was cancelled: freed once no callback runs */
};

struct lb_ureq {
    enum up_req_state state;
    struct kf_list link; /* in us->queue or conn->reqs */
    struct lb_upstream *up;
    struct lb_pool *pool;
    struct lb_server *server; /* from lb_pick, given back at the end */
    struct up_server *us;
    struct up_conn *conn;
    int32_t stream_id;
    struct kf_arena *arena; /* the spec copy and the response head */
    const char *method, *path, *authority;
    struct lb_uhdr *headers; /* filtered: no hop-by-hop, pseudo, host or content-length */
    size_t n_headers;
    int64_t content_length; /* of a streaming body, -1 when not given */
    const uint8_t *body;    /* whole body */
    size_t body_len, body_off;
    struct evbuffer *body_buf; /* streaming body not sent yet */
    size_t body_taken;         /* streaming bytes sent: they cannot be sent again */
    bool body_streaming, body_ended;
    bool body_drain_armed; /* pending went above LB_UREQ_BODY_LOW_WATER: on_body_drain due */
    bool body_drain_due;   /* h2: body bytes were taken while armed (looked at after sending) */
    bool idempotent, retried, head;
    bool wire;         /* some of it was written to a connection */
    bool headers_done; /* on_headers ran */
    bool cancelled;
    uint32_t in_cb;
    struct lb_ureq_callbacks cbs;
    lb_ureq_drain_cb on_body_drain;
    void *arg;
    uint64_t queued_ms;
    size_t unconsumed; /* delivered by on_data, not yet lb_ureq_consume'd */
    int status;        /* of the response head being received */
    struct lb_uhdr *resp;
    size_t n_resp, cap_resp;
};

void up_req_set_state(struct lb_ureq *req, enum up_req_state next);
/** Build a request from spec (validated and copied). */
int up_req_new(struct lb_upstream *up, struct lb_pool *pool, const struct lb_ureq_spec *spec,
               const struct lb_ureq_callbacks *cbs, void *arg, struct lb_ureq **out);
/** Release everything (pick included). */
void up_req_free(struct lb_ureq *req);
/** The first response byte arrived (no retry from now on). */
void up_req_responding(struct lb_ureq *req);
/** Collect one response header (copied); -ENOMEM or -E2BIG. */
int up_req_add_header(struct lb_ureq *req, const char *name, size_t name_len, const char *value,
                      size_t value_len);
/** Forget collected headers (after an informational 1xx response). */
void up_req_reset_headers(struct lb_ureq *req);
/** Hand the head / body bytes to the consumer; false when req is gone (cancelled in it). */
bool up_req_deliver_headers(struct lb_ureq *req, int status);
bool up_req_deliver_data(struct lb_ureq *req, const uint8_t *data, size_t len);
/** The response is complete: on_end(0), free. req must be detached. */
void up_req_complete(struct lb_ureq *req);
/** End req with on_end(error) (no retry), then free it. req must be detached. */
void up_req_end(struct lb_ureq *req, int error);
/** The attempt failed (req detached): retry it elsewhere when allowed, else on_end(error). */
void up_req_failed(struct lb_ureq *req, int error);
/** The authority to send: spec, Host, or the server's address. */
const char *up_req_authority(const struct lb_ureq *req);
/**
 * Whether h, one of the n headers hs, is hop-by-hop: Connection, Keep-Alive,
 * Proxy-Connection, Transfer-Encoding, Upgrade, TE (but "TE: trailers"), or
 * named by a Connection header.
 */
bool up_hop_by_hop(const struct lb_uhdr *hs, size_t n, const struct lb_uhdr *h);
/** The content-length to send (arena string), or NULL for none. */
const char *up_req_content_length(struct lb_ureq *req);
/** Copy up to len bytes of the body from where sending stands; *eof at its end. */
size_t up_req_body_read(struct lb_ureq *req, uint8_t *buf, size_t len, bool *eof);
/** Whether the request has more body to send later (streaming, not ended). */
bool up_req_body_open(const struct lb_ureq *req);
/**
 * Streaming body bytes left the request: run on_body_drain if it is armed
 * and the pending bytes are low. Not from inside a protocol engine. Returns
 * false when req is gone (cancelled in the callback).
 */
bool up_req_body_progress(struct lb_ureq *req);
/** Queue req on the server it holds / take it out of that queue. */
void up_req_enqueue(struct lb_ureq *req);
void up_req_dequeue(struct lb_ureq *req);

/* ---- the upstream --------------------------------------------------------------------- */

struct lb_upstream {
    struct event_base *base;
    struct lb_upstream_config cfg; /* defaults filled in; server_name copied */
    struct kf_list servers;        /* struct up_server */
    struct kf_list reap;           /* CLOSED connections */
    struct event *tick;            /* health poll, queue timeouts */
    struct event *reap_ev, *dispatch_ev;
    bool freeing;
};

#endif
