/*
 * Upstream pool tests: a scripted HTTP/2 (nghttp2) and HTTP/1.1 (http-parser)
 * server that runs on the test's own event loop, so that client and server
 * interleave deterministically, and helpers for the client side.
 *
 * The server picks a behaviour from the request path (unless its mode forces
 * one for every request):
 *   /ok (anything else)  200, body "<name>:<path>" (HTTP/1.1: two chunks)
 *   /big                 200, big_len bytes of 'x'
 *   /slow                200, five chunks "chunk N\n" 20 ms apart
 *   /hang                200 head, then a body that never comes (PINGs answered)
 *   /halfopen            200 head, then the server stops reading and writing
 *   /never               no answer at all
 *   /refuse              RST_STREAM REFUSED_STREAM
 *   /goaway              GOAWAY with a last stream id below the request's
 *   /closemid            200 head and "partial", then the connection closes
 *   /eof                 (HTTP/1.1) 200 without length, body ends with the close
 *   /bad                 (HTTP/1.1) a malformed status line
 *   /continue            (HTTP/1.1) 100 Continue, then 200 "ok"
 */
#ifndef KF_TEST_UPSTREAM_HARNESS_H
#define KF_TEST_UPSTREAM_HARNESS_H

#include "lb_test.h"

struct evconnlistener;

enum ts_mode {
    TS_BY_PATH = 0,
    TS_REFUSE_ALL, /* every request: RST_STREAM REFUSED_STREAM */
    TS_GOAWAY_ALL, /* every request: GOAWAY below it */
};

struct ts_server {
    struct event_base *base;
    struct evconnlistener *listener;
    struct kf_list live; /* struct ts_conn */
    uint16_t port;
    char addr[32];
    char name[16];
    enum ts_mode mode;
    bool h1;                /* HTTP/1.1 (plaintext; with TLS: ALPN http/1.1 only) */
    struct ssl_ctx_st *tls; /* owned; NULL: plaintext */
    uint32_t max_streams;   /* advertised SETTINGS_MAX_CONCURRENT_STREAMS; 0: none */
    size_t big_len;
    const char *raw; /* HTTP/1.1: if set, every response is these bytes, then a close */
    /* what it saw */
    int conns, open_conns, requests, rst_cancel, client_closes;
    int32_t last_stream_id;
    char last_method[16], last_path[256], last_headers[2048];
    char last_body[4096];
    size_t last_body_len, last_body_total; /* the first bytes; and how many came */
};

/** Listen on 127.0.0.1 (random port) on base. h1: HTTP/1.1 instead of h2c. */
void ts_start(struct ts_server *s, struct event_base *base, const char *name, bool h1);
/** The same over TLS with the test certificate; h1_only: ALPN offers http/1.1 only. */
void ts_start_tls(struct ts_server *s, struct event_base *base, const char *name,
                  const struct t_certs *certs, bool h1_only);
/** Make every open connection half-open: no more reads, writes or PING acks. */
void ts_freeze(struct ts_server *s);
/** Close the listener and every connection (the client sees them reset). */
void ts_stop(struct ts_server *s);

/* ---- client side ---------------------------------------------------------------------- */

struct tc_req {
    struct lb_ureq *req;
    int status;
    int n_heads;
    char head[1024]; /* "name: value\n" of the response headers */
    char body[4096]; /* the first bytes */
    size_t received;
    size_t unconsumed;
    bool manual;         /* do not consume in on_data (the test does it) */
    bool cancel_in_data; /* cancel from inside the first on_data */
    bool ended;
    int error;
    const struct lb_server *server; /* at the head */
    uint64_t head_ms, end_ms;
    /* what on_end does, as a consumer might */
    struct tc_req *then; /* start this request (GET then_path) */
    const char *then_path;
    struct tc_req *cancel_then; /* cancel this one */
    struct lb_upstream *up;     /* set by tc_start */
    struct lb_pool *pool;
};

extern const struct lb_ureq_callbacks tc_cbs;

/** Start method path with the spec's other fields from base (may be NULL); asserts it started. */
void tc_start(struct lb_upstream *up, struct lb_pool *pool, struct tc_req *r, const char *method,
              const char *path, const struct lb_ureq_spec *base);
/** Run the loop until *flag or max_ms; returns *flag. */
bool tc_wait(struct event_base *base, const bool *flag, int max_ms);
/** Run the loop until *v >= want or max_ms; returns whether it got there. */
bool tc_wait_int(struct event_base *base, const int *v, int want, int max_ms);
/** Hand back what the test held (manual consumers). */
void tc_consume(struct tc_req *r, size_t n);

/* ---- a test: a loop, up to two servers, an lb and the pool under test ------------------------ */

struct tfx {
    struct event_base *base;
    struct ts_server s[2];
    struct tcfg t;
    struct lb *lb;
    struct lb_pool *pool;
    struct lb_upstream *up;
    struct lb_upstream_config cfg; /* short timers; tests adjust it before tfx_up */
};

/** A loop and a config with test timers (nothing started yet). */
void tfx_init(struct tfx *f);
/** The lb (one roundrobin backend "api" with servers s1 [and s2]) and the pool. */
void tfx_up(struct tfx *f, const char *addr1, const char *addr2);
/** The lb_server of s1 (i = 0) or s2 (i = 1). */
struct lb_server *tfx_server(struct tfx *f, int i);
/** Free the pool (checking it gave every pick back), the servers, the lb and the loop. */
void tfx_done(struct tfx *f);

#endif
