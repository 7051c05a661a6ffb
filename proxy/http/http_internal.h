/*
 * Private types of the http module: the server, the per-loop registry, the
 * protocol-neutral connection and request, and the ops tables through which
 * the HTTP/1.1 (h1.c) and HTTP/2 (h2.c) implementations plug in.
 */
#ifndef KF_PROXY_HTTP_INTERNAL_H
#define KF_PROXY_HTTP_INTERNAL_H

#include "core/core.h"
#include "proxy/http/http.h"

#include <pthread.h>
#include <stdatomic.h>
#include <netinet/in.h>
#include <sys/socket.h>

struct evbuffer;
struct event;

#define PX_MOD "http"

/* Output budget of one connection: above it, HTTP/2 stops framing data. */
#define PX_CONN_OUT_HIGH (256 * 1024)
/* Streamed body bytes an HTTP/1.1 request holds before the connection stops being read. */
#define PX_BODY_BUF (64 * 1024)
/* HTTP/2 receive window of each stream: what a paused streamed body may hold (as the
 * apiserver's MaxUploadBufferPerStream). */
#define PX_H2_STREAM_WINDOW (256 * 1024)
/* How long a closing connection keeps discarding input (lingering close). */
#define PX_LINGER_MS 2000

/* ---- server ------------------------------------------------------------ */

struct px_counters {
    _Atomic uint64_t conns_current, conns_total, conns_h1, conns_h2;
    _Atomic uint64_t streams_current, requests_total;
    _Atomic uint64_t tls_handshake_failures, protocol_errors, body_too_large;
    _Atomic uint64_t timeouts, goaways_sent, client_resets;
};

#define PX_COUNT(server, field, delta)                                                             \
    atomic_fetch_add_explicit(&(server)->counters.field, (uint64_t)(delta), memory_order_relaxed)
#define PX_INC(server, field) PX_COUNT(server, field, 1)
#define PX_DEC(server, field)                                                                      \
    atomic_fetch_sub_explicit(&(server)->counters.field, 1, memory_order_relaxed)

/* The connections of one server on one event loop, so shutdown can reach them. */
struct px_loop {
    struct kf_list node; /* in px_server.loops */
    struct px_server *server;
    struct event_base *base;
    struct kf_list conns;   /* px_conn.node */
    struct kf_list pending; /* px_accepting.node: handshakes not yet a conn */
};

struct px_server {
    struct px_server_config cfg; /* defaults filled in */
    pthread_mutex_t lock;        /* guards tls and loops */
    struct ssl_ctx_st *tls;
    struct kf_list loops;
    atomic_bool shutting_down;
    struct px_counters counters;
};

/* Find or create the loop record of base (locks server). NULL on ENOMEM. */
struct px_loop *px_loop_get(struct px_server *server, struct event_base *base);
/* Deterministic-enough coin for goaway_chance (thread-local xorshift). */
bool px_coin(double p);

/* ---- connection (protocol-neutral part) ------------------------------------ */

enum px_conn_state {
    PX_CONN_ACTIVE,   /* the protocol reads and writes */
    PX_CONN_DRAINING, /* goaway: finish what is in flight, accept nothing new */
    PX_CONN_FLUSHING, /* protocol done: waiting for output to reach the socket */
    PX_CONN_LINGER,   /* write side shut: discard input until EOF or timeout */
    PX_CONN_CLOSED,   /* transport gone; struct lives while requests hold it */
};
extern const char *const px_conn_state_name[];

struct px_conn;
struct px_request;

/* What HTTP/1.1 and HTTP/2 implement. */
struct px_conn_ops {
    const char *name;
    void (*on_read)(struct px_conn *c);    /* input arrived */
    void (*on_write)(struct px_conn *c);   /* output fell to the low-water mark */
    void (*on_kick)(struct px_conn *c);    /* deferred work (see px_conn_kick) */
    void (*on_timeout)(struct px_conn *c); /* protocol timer fired */
    void (*goaway)(struct px_conn *c);     /* graceful close requested */
    void (*teardown)(struct px_conn *c);   /* transport going away: release requests */
    void (*destroy)(struct px_conn *c);    /* free the protocol struct */

    /* Response side of a request on this connection. */
    int (*resp_start)(struct px_request *req, bool no_body);
    /* copy: data is copied now; else referenced until cleanup (may be NULL). */
    int (*resp_write)(struct px_request *req, const void *data, size_t len, bool copy,
                      px_free_cb cleanup, void *arg);
    int (*resp_end)(struct px_request *req);
    void (*resp_abort)(struct px_request *req);
    size_t (*resp_pending)(const struct px_request *req);
    void (*req_free)(struct px_request *req); /* protocol resources of a request */
    /* HTTP/1.1 only (NULL on HTTP/2): queue 101 and hand over the transport. */
    int (*resp_upgrade)(struct px_request *req, px_upgrade_cb cb, void *arg);
    /* A streamed body may be delivered again (receiver set, resumed): schedule it. */
    void (*body_kick)(struct px_request *req);
};

struct px_conn {
    const struct px_conn_ops *ops;
    struct px_server *server;
    struct px_loop *loop;
    struct kf_list node; /* px_loop.conns */
    enum px_conn_state state;
    unsigned refs; /* 1 for the transport + 1 per live request + temporary holds */
    uint64_t id;   /* for logs */
    struct bufferevent *bev;
    struct event *timer; /* protocol timeouts; linger */
    struct event *kick;  /* run ops->on_kick on the next loop iteration */
    /* The timer is lazy: moving the deadline later only records it, and the event, when it
     * fires early, re-arms for the rest (a timer reset per response cost an event_add). */
    uint64_t timer_deadline_us; /* 0: disarmed */
    uint64_t timer_fires_us;    /* when the pending event fires; 0: not pending */
    bool kick_queued;           /* kick is active: more kicks this iteration are one */
    struct sockaddr_storage peer;
    socklen_t peer_len;
    char peer_ip[INET6_ADDRSTRLEN]; /* formatted once, for X-Forwarded-For; "" if none */
    bool tls;
    bool goaway_requested;
    struct px_tls_peer *tls_peer; /* client certificate, or NULL */
};

/* Where the handshake / sniffing hands over a ready transport. */
struct px_transport {
    struct px_loop *loop;
    struct bufferevent *bev;
    struct sockaddr_storage peer;
    socklen_t peer_len;
    bool tls;
    struct px_tls_peer *tls_peer;
};

/* Fill the common part, take over bev and register the connection. */
int px_conn_init(struct px_conn *c, const struct px_conn_ops *ops, struct px_transport *t);
void px_conn_set_state(struct px_conn *c, enum px_conn_state next);
void px_conn_hold(struct px_conn *c);
void px_conn_put(struct px_conn *c);
/* Abrupt close: teardown (requests see on_close), free the transport. */
void px_conn_close(struct px_conn *c, const char *why);
/* Graceful: the protocol has queued its last bytes; flush, linger, close. */
void px_conn_finish(struct px_conn *c);
/* Detach the bufferevent for an upgrade and close the rest; returns bev. */
struct bufferevent *px_conn_detach(struct px_conn *c);
void px_conn_kick(struct px_conn *c);
void px_conn_timer(struct px_conn *c, unsigned ms); /* 0 disarms */
size_t px_conn_out_len(const struct px_conn *c);
void px_conn_coalesce(struct px_conn *c);
bool px_conn_open(const struct px_conn *c); /* ACTIVE or DRAINING */

/* Protocol entry points, called once the protocol is known. */
int px_h1_start(struct px_transport *t);
int px_h2_start(struct px_transport *t);

/* What the client's certificate says (tls.c). */
struct px_tls_peer {
    struct px_peer_identity *id; /* NULL unless it verified */
    struct x509_st *cert;
    struct stack_st_X509 *chain;
};
/* The peer of a finished handshake; NULL if no certificate (or ENOMEM). */
struct px_tls_peer *px_tls_peer_get(struct bufferevent *bev);
void px_tls_peer_free(struct px_tls_peer *peer);

/* ---- request ------------------------------------------------------------- */

enum px_req_state {
    PX_REQ_RECV,      /* head/body arriving; only the transport holds it */
    PX_REQ_HANDLER,   /* dispatched, no response yet */
    PX_REQ_STREAMING, /* response started */
    PX_REQ_ENDED,     /* handler done; transport may still be sending */
    PX_REQ_CLOSED,    /* client gone while the handler held it */
};
extern const char *const px_req_state_name[];

/*
 * A streamed request body (buffered bodies stay NONE):
 *   NONE -> OPEN -> END -> DONE      complete; on_end(0) once every byte went out
 *             |---> FAILED -> DONE   too large, malformed, timed out: on_end(error)
 *             '---> DONE             the handler ended the request, or the client left
 */
enum px_body_state {
    PX_BODY_NONE,
    PX_BODY_OPEN,   /* bytes arriving */
    PX_BODY_END,    /* all arrived; some may wait in the buffer */
    PX_BODY_FAILED, /* no more bytes; on_end(error) is due */
    PX_BODY_DONE,   /* on_end ran, or nobody wants the body any more */
};
extern const char *const px_body_state_name[];

struct px_header {
    const char *name, *value;
    size_t name_len, value_len; /* lookups compare lengths before bytes */
};

struct px_headers {
    struct px_header *v;
    size_t n, cap;
};

struct px_request {
    enum px_req_state state;
    bool handler_owned, transport_owned;
    struct px_conn *conn;
    struct kf_arena *arena;
    struct kf_list node; /* protocol's list of requests of the conn */
    int version;         /* 1 or 2 */

    const char *method, *path, *query_raw, *authority;
    struct px_headers headers;
    struct px_headers query; /* decoded, filled lazily */
    bool query_parsed;
    bool is_upgrade;
    const char *connect_protocol; /* HTTP/2 extended CONNECT's :protocol (RFC 8441), or NULL */
    struct evbuffer *body;        /* buffered: the whole body; streamed: bytes not delivered yet */
    const char *body_data;        /* set at dispatch */
    size_t body_len;
    uint64_t body_received; /* against max_body_bytes */
    enum px_body_state body_state;
    int body_error; /* FAILED: what on_end gets */
    bool body_paused;
    px_body_data_cb on_body;
    px_body_end_cb on_body_end;
    void *body_arg;
    unsigned holds; /* callbacks running on it: not freed before they return */

    /* response */
    struct px_headers resp_headers; /* relayed ones by reference: use the lengths */
    int status;
    int64_t resp_length; /* Content-Length set by the handler, or -1 */
    uint64_t resp_sent;  /* body bytes accepted from the handler */
    bool head_only;      /* HEAD request: no body bytes on the wire */
    bool no_body;        /* set at start: HEAD, 1xx, 204, 304 */

    px_request_cb on_drain, on_close;
    void *drain_arg, *close_arg;
    bool drain_armed; /* pending went above low water since the last on_drain */
};

/*
 * Allocate a request of `size` bytes (a protocol struct embedding px_request
 * at offset 0) inside its own arena, on conn. NULL on ENOMEM.
 */
struct px_request *px_request_new(struct px_conn *conn, size_t size, int version);
void px_request_set_state(struct px_request *req, enum px_req_state next);
int px_headers_add(struct kf_arena *a, struct px_headers *h, const char *name, size_t nlen,
                   const char *value, size_t vlen, bool lower);
/* Adds a field by reference (not NUL-terminated, not copied): it must outlive every use. */
int px_headers_add_ref(struct kf_arena *a, struct px_headers *h, const char *name, size_t nlen,
                       const char *value, size_t vlen);
const char *px_headers_get(const struct px_headers *h, const char *name);
/* Split a request-target into path and raw query (arena copies). */
int px_request_set_target(struct px_request *req, const char *target, size_t len);
/* Free req once neither the handler nor the transport holds it. */
void px_request_maybe_free(struct px_request *req);
/* Keep req allocated across a callback that may release it; put frees it if it was. */
void px_request_hold(struct px_request *req);
void px_request_put(struct px_request *req);

/* ---- request body (body.c) ---- */
/* At the end of the head: ask stream_body whether to stream; true moves the body to OPEN. */
bool px_body_choose(struct px_request *req);
/* Received body bytes: 0, -EMSGSIZE past max_body_bytes, -ENOMEM. */
int px_body_append(struct px_request *req, const void *data, size_t len);
/* The transport saw the end of a streamed body (0) or gave up on it (-errno). */
void px_body_finish(struct px_request *req, int error);
/*
 * Hand buffered bytes, then the end, to the receiver while it takes them.
 * Returns the bytes delivered (HTTP/2 reopens the stream's window by that).
 * Callbacks may end (and release) req: the caller must hold it or not touch it.
 */
size_t px_body_deliver(struct px_request *req);
/* Nobody wants the body any more (request ended, client gone): drop it, no callback. */
void px_body_abandon(struct px_request *req);
/* True while a streamed body still expects bytes from the client. */
bool px_body_open(const struct px_request *req);
/* Bytes received and not yet delivered. */
size_t px_body_buffered(const struct px_request *req);
/* Hand the complete request to the handler. */
void px_request_dispatch(struct px_request *req);
/* The transport is done with req: on_close fires if the handler still holds it. */
void px_request_transport_done(struct px_request *req);
/* After queueing output: arm on_drain when pending went above low water. */
void px_request_note_queued(struct px_request *req);
/* After output made progress: fire on_drain if armed and now at/below low water. */
void px_request_check_drain(struct px_request *req);
/* Date header value for now, cached per second per thread. */
const char *px_http_date(void);
/* A Kubernetes-style Status body for errors the server generates itself. */
const char *px_status_body(struct kf_arena *a, int status, const char *message, size_t *len);
/* RFC 9110 token character. */
bool px_is_tchar(unsigned char c);
/* True when name is a token (RFC 9110 tchar+) and value has no CR/LF/NUL. */
bool px_header_valid(const char *name, const char *value);
/* Hop-by-hop headers the server manages itself. */
bool px_header_is_hop(const char *name);

/* ---- tls_sni.c ---- */
/** Build cfg's SNI contexts and hang them on main. 0, or -errno with a reason in err. */
int px_tls_sni_attach(struct ssl_ctx_st *main, const struct px_tls_config *cfg, char *err,
                      size_t size);
/** The SNI context main serves server_name with, or NULL for main's own (tests). */
struct ssl_ctx_st *px_tls_sni_match(struct ssl_ctx_st *main, const char *server_name);

#endif
