/*
 * lb: backend servers, their health, and the choice of a server for a new
 * connection (or, in L7 mode, a new request).
 *
 * Threads: health checks run on one control event loop; worker threads call
 * lb_pick() and the lb_server_* reporters concurrently. Everything a worker
 * reads is atomic; health transitions take a per-server mutex (they are rare).
 *
 * Lifetime: a struct lb is built from a struct config. On reload the new lb
 * reuses the struct lb_server of every server whose (backend, name, address)
 * did not change, so health, counters and active connections carry over. A
 * server is refcounted: each picked connection holds a reference until
 * lb_server_conn_end(), so a server removed by a reload stays valid until its
 * last connection ends.
 */
#ifndef KF_LB_H
#define KF_LB_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config/config.h"

struct event_base;
struct evbuffer;

enum lb_health {
    LB_HEALTH_UNKNOWN = 0, /* no check result yet: eligible, so startup is not delayed */
    LB_HEALTH_UP,
    LB_HEALTH_DOWN,
};

struct lb;
struct lb_pool;
struct lb_server;

/**
 * Build the runtime backends of cfg. Servers are taken over from previous
 * (may be NULL) where they match. Hostnames are resolved here (blocking: call
 * it off the worker loops). Checks are not started. Returns NULL and fills
 * diags (if non-NULL) on failure: an address that is not HOST:PORT or does
 * not resolve, a check path that cannot go in a request line, TLS files that
 * do not load. cfg is not referenced after the call.
 */
struct lb *lb_new(const struct config *cfg, struct lb *previous, struct config_diags *diags);

/**
 * Start active checks on base (the control loop). Returns 0, -EALREADY when
 * they run already, or -ENOMEM. TLS checks write through OpenSSL with
 * write(2): the process must ignore SIGPIPE (the daemon does).
 */
int lb_start_checks(struct lb *lb, struct event_base *base);

/** Stop active checks (before a reload replaces this lb, or at shutdown). */
void lb_stop_checks(struct lb *lb);

/**
 * Take / drop a reference; the last lb_release frees the lb (servers live on
 * while picked connections hold them). Stop the checks on the control loop
 * before the last release: a release that has to stop them itself is only
 * safe while that loop is not running.
 */
void lb_retain(struct lb *lb);
void lb_release(struct lb *lb);

/** The pool built from the backend of that name, or NULL. */
struct lb_pool *lb_find_pool(struct lb *lb, const char *backend_name);

/**
 * Choose a server for a new connection following the pool's balance
 * algorithm, skipping the n_exclude servers in exclude (already tried).
 * Only healthy (or not yet checked), active, non-zero-weight servers are
 * chosen; backup servers only when no other is eligible. The chosen server's
 * active connection count is incremented and a reference taken: the caller
 * must call lb_server_conn_end() exactly once. NULL when none is eligible.
 */
struct lb_server *lb_pick(struct lb_pool *pool, struct lb_server *const *exclude, size_t n_exclude);

/** Release what lb_pick took. */
void lb_server_conn_end(struct lb_server *server);

/**
 * Report the outcome of a connect attempt made by the data path. A failure
 * counts toward the server's fall threshold (passive check) and may take it
 * down; a success resets the passive failure count. connect_us feeds the
 * connect-time histogram.
 */
void lb_server_report_connect(struct lb_server *server, bool ok, uint64_t connect_us);

/** Add to the server's byte counters. */
void lb_server_add_bytes(struct lb_server *server, uint64_t to_server, uint64_t from_server);

/** Address to connect to. */
const struct sockaddr *lb_server_addr(const struct lb_server *server, socklen_t *len);
/** "backend/server" for logs. */
const char *lb_server_label(const struct lb_server *server);
/** The server's host (address without port): the TLS name to verify by default. */
const char *lb_server_host(const struct lb_server *server);
/** Set SNI and, when verify, the name the server's certificate must carry (host or IP). */
struct ssl_st;
int lb_tls_set_peer_name(struct ssl_st *ssl, const char *name, bool verify);
enum lb_health lb_server_health(const struct lb_server *server);
/** True when the server may take new connections (healthy, active, weight > 0). */
bool lb_server_eligible(const struct lb_server *server);

/**
 * Copy the reason of the server's last failed check or passive report into
 * buf (e.g. "connect: Connection refused"); "" when it never failed.
 */
void lb_server_last_failure(struct lb_server *server, char *buf, size_t size);

/** Number of further servers to try after a failed connect, from the backend's config. */
uint32_t lb_pool_connect_retries(const struct lb_pool *pool);

/** True when at least one server of any pool is eligible (for /readyz). */
bool lb_any_server_up(struct lb *lb);

/** Append Prometheus text for every server (kfront_backend_* families). */
void lb_metrics_write(struct lb *lb, struct evbuffer *out);

/** Name of a health state ("unknown", "up", "down"). */
const char *lb_health_name(enum lb_health health);

/* ---- the health state machine, exposed for unit tests ------------------------ */

/** Consecutive-result counters behind one server's health. */
struct lb_health_counter {
    enum lb_health state;
    uint32_t successes; /* consecutive, since the last failure */
    uint32_t failures;  /* consecutive, since the last success */
};

/**
 * Record one check result (active or passive) with thresholds rise and fall.
 * Returns true when the state changed. From UNKNOWN the first result decides
 * (an up server is not held back, a dead one is not picked for fall*interval).
 */
bool lb_health_record(struct lb_health_counter *h, bool ok, uint32_t rise, uint32_t fall);

/* ---- upstream client pool (L7) ------------------------------------------------
 *
 * One struct lb_upstream per worker loop talks HTTP/2 (or HTTP/1.1) to the
 * servers of any pool. Each request is balanced on its own with lb_pick() and
 * holds that pick until it ends, so leastconn counts streams. Connections are
 * shared by the requests to one server: HTTP/2 multiplexes up to the server's
 * SETTINGS_MAX_CONCURRENT_STREAMS per connection, HTTP/1.1 carries one
 * request at a time with a small keep-alive pool.
 *
 * Callbacks run on the worker loop, never from inside lb_ureq_start(). In a
 * callback the consumer may start, cancel and consume requests (its own
 * included), but not free the upstream.
 */

struct lb_upstream;
struct lb_ureq;
struct ssl_ctx_st;

enum lb_upstream_proto {
    LB_UPSTREAM_AUTO = 0, /* TLS: ALPN h2 then http/1.1; plaintext: h2c with prior knowledge */
    LB_UPSTREAM_H2,       /* TLS: ALPN h2 only; plaintext: h2c with prior knowledge */
    LB_UPSTREAM_HTTP1,    /* HTTP/1.1 only (ALPN http/1.1 over TLS) */
};

/** Zero in any field means its default. */
struct lb_upstream_config {
    struct ssl_ctx_st *tls;  /* client context (identity, CA); referenced; NULL: plaintext */
    const char *server_name; /* SNI and name verified; NULL: the host of the server's address */
    enum lb_upstream_proto proto;
    uint32_t conns_per_server;     /* 2: HTTP/2 connections busy streams are spread over */
    uint32_t max_conns_per_server; /* 16: cap, when every connection is full */
    uint32_t h1_idle_per_server;   /* 4: idle HTTP/1.1 connections kept for reuse */
    uint32_t connect_timeout_ms;   /* 3000: TCP + TLS + the server's first SETTINGS */
    uint32_t ping_interval_ms;     /* 10000: PING a connection with streams this long silent */
    uint32_t ping_timeout_ms;      /* 5000: a PING unanswered this long kills the connection */
    uint32_t idle_timeout_ms;      /* 60000: close connections without streams after this */
    uint32_t queue_timeout_ms;     /* 10000: longest wait for a stream on a busy server */
    uint32_t health_poll_ms;       /* 200: how often server eligibility is looked at */
    uint32_t stream_window;        /* 256 KiB: HTTP/2 receive window per stream */
    uint32_t h1_high_water;        /* 256 KiB: unconsumed bytes that pause an HTTP/1 read */
};

/** A header; neither string needs a terminating NUL. */
struct lb_uhdr {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/** What to send. Everything is copied by lb_ureq_start() except a body by reference. */
/** A header that can go on the wire: a token name and a value without CR, LF or NUL. */
bool lb_uhdr_valid(const struct lb_uhdr *h);

struct lb_ureq_spec {
    const char *method;    /* "GET", ... */
    const char *path;      /* path with the raw query, e.g. "/api/v1/pods?watch=1" */
    const char *authority; /* NULL: the request's Host header, else the server's address */
    const struct lb_uhdr *headers;
    size_t n_headers;
    const void *body;
    size_t body_len;
    bool body_by_reference; /* body stays valid until on_end (or cancel): not copied */
    bool body_streaming;    /* the body follows with lb_ureq_write_body / lb_ureq_end_body */
    bool idempotent;        /* may be sent again after a failure (GET, HEAD, LIST, WATCH) */
};

/**
 * The response head, once; status >= 200 (1xx heads are skipped). Header
 * names are as the server sent them (lowercase over HTTP/2); hop-by-hop
 * headers are not included. The array lives until on_end.
 */
typedef void (*lb_ureq_headers_cb)(struct lb_ureq *req, int status, const struct lb_uhdr *headers,
                                   size_t n_headers, void *arg);
/** Body bytes; hand them on, then call lb_ureq_consume(req, len). */
typedef void (*lb_ureq_data_cb)(struct lb_ureq *req, const uint8_t *data, size_t len, void *arg);
/** The end: 0 for a complete response, else a negative errno. The req is freed after it. */
typedef void (*lb_ureq_end_cb)(struct lb_ureq *req, int error, void *arg);
/**
 * A streaming body drained: lb_ureq_body_pending() fell to
 * LB_UREQ_BODY_LOW_WATER or below after a write had left it above. Time to
 * write more (and to resume whatever was paused for backpressure).
 */
typedef void (*lb_ureq_drain_cb)(struct lb_ureq *req, void *arg);

/* See lb_ureq_drain_cb: pause a body writer only above this, or no drain will wake it. */
#define LB_UREQ_BODY_LOW_WATER (16 * 1024)

struct lb_ureq_callbacks {
    lb_ureq_headers_cb on_headers;
    lb_ureq_data_cb on_data;
    lb_ureq_end_cb on_end;
};

/**
 * A pool of upstream connections for the worker loop base. cfg is copied
 * (cfg->tls is referenced). NULL on ENOMEM or an invalid config.
 */
struct lb_upstream *lb_upstream_new(struct event_base *base, const struct lb_upstream_config *cfg);

/**
 * Close every connection and end every live request with on_end(-ESHUTDOWN).
 * Not from inside a callback of this upstream.
 */
void lb_upstream_free(struct lb_upstream *up);

/**
 * Start a request on a server of pool, chosen with lb_pick(). The pool (its
 * lb) must stay alive until on_end: a retry picks from it again. On success
 * *out is the request and exactly one on_end will follow, unless the request
 * is cancelled. Returns -EINVAL for a malformed spec (method, path or header
 * that cannot go on the wire), -EHOSTUNREACH when no server is eligible,
 * -ENOMEM; no callback runs for a request that failed to start.
 *
 * Failures before any response byte (connect refused or timed out, TLS
 * failure, REFUSED_STREAM, GOAWAY, reset) are retried once on another
 * server, without callbacks, when the request is idempotent or when nothing
 * of it was sent yet.
 */
int lb_ureq_start(struct lb_upstream *up, struct lb_pool *pool, const struct lb_ureq_spec *spec,
                  const struct lb_ureq_callbacks *cbs, void *arg, struct lb_ureq **out);

/**
 * The consumer has passed on len bytes it got through on_data: HTTP/2 opens
 * the stream's window by that much, HTTP/1 resumes reading below the
 * high-water mark. Bytes not consumed hold back only this request.
 */
void lb_ureq_consume(struct lb_ureq *req, size_t len);

/**
 * The client went away: reset the stream (RST_STREAM CANCEL; HTTP/1 closes
 * the connection) and free req. No callback runs for it afterwards.
 */
void lb_ureq_cancel(struct lb_ureq *req);

/**
 * Append to a streaming request body (spec.body_streaming); bytes are
 * copied. Returns 0, -EINVAL when the body is not streaming or has ended,
 * -ENOMEM.
 */
int lb_ureq_write_body(struct lb_ureq *req, const void *data, size_t len);

/** End a streaming request body. Returns 0 or -EINVAL (not streaming, already ended). */
int lb_ureq_end_body(struct lb_ureq *req);

/** Streaming body bytes written but not yet sent: the caller's backpressure signal. */
size_t lb_ureq_body_pending(const struct lb_ureq *req);

/**
 * Call cb (with the request's arg) when the streaming body drains (see
 * lb_ureq_drain_cb); NULL stops it. Like every callback, it runs on the
 * worker loop, never inside lb_ureq_write_body().
 */
void lb_ureq_on_body_drain(struct lb_ureq *req, lb_ureq_drain_cb cb);

/** The server the request is on now (it changes on a retry). */
const struct lb_server *lb_ureq_server(const struct lb_ureq *req);

/**
 * Append Prometheus text for the upstream pools of every worker
 * (kfront_upstream_* families, per server of lb; counters live in the
 * shared servers, so nothing needs summing).
 */
void lb_upstream_metrics_write(struct lb *lb, struct evbuffer *out);

#endif
