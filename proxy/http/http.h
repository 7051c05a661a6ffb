/*
 * http: server-side HTTP/1.1 and HTTP/2 plumbing (plain or TLS) that turns
 * client connections into px_request objects. The handler never sees the
 * wire protocol: one request struct, one response API, for both versions.
 *
 * Threading: a px_server may be shared by several event loops (one per
 * worker thread); a connection and its requests live on the loop that
 * accepted them and every px_request_* / px_response_* call must be made on
 * that loop's thread. px_server_shutdown() is the only call meant to be made
 * from any thread (it needs evthread_use_pthreads() when loops run in other
 * threads).
 *
 * Return convention (core/core.h): 0 on success, negative errno on failure.
 *
 * Request ownership (the one rule to remember):
 *   - The handler is given a request and owns it until it calls
 *     px_response_end() or px_response_abort(); it must call exactly one of
 *     them exactly once, even if the client has gone away meanwhile.
 *   - If the client goes away first (connection closed, HTTP/2 stream reset,
 *     timeout), the on_close callback fires once; from then on writes fail
 *     with -EPIPE and do nothing, but the request stays valid (accessors,
 *     arena) until the handler ends or aborts it.
 *   - The request (and its arena) is freed once both the handler has ended it
 *     and the transport is done with it; never touch it after end/abort.
 *
 * A minimal server (single loop, as kube-sim uses it):
 *
 *     static void handle(struct px_request *req, void *arg)
 *     {
 *         if (strcmp(px_request_path(req), "/healthz") == 0)
 *             px_response_simple(req, 200, "text/plain", "ok", 2);
 *         else
 *             start_watch(req); // px_response_start, then writes from elsewhere
 *     }
 *     struct px_server_config cfg = {.handler = handle, .tls = ctx};
 *     struct px_server *srv = px_server_new(&cfg);
 *     struct px_listener *l = px_listen(base, srv, "127.0.0.1:6443");
 *     event_base_dispatch(base);
 *
 * A long stream (watch): px_response_header(req, "Content-Type", ...);
 * px_response_start(req, 200); then px_response_write[_ref] per event; check
 * px_response_pending() and wait for on_drain when it is too high; on_close
 * tells you to stop; px_response_end() when done (also after on_close).
 */
#ifndef KF_PROXY_HTTP_H
#define KF_PROXY_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct event_base;
struct bufferevent;
struct ssl_ctx_st;    /* OpenSSL's SSL_CTX */
struct x509_st;       /* OpenSSL's X509 */
struct stack_st_X509; /* OpenSSL's STACK_OF(X509) */
struct kf_arena;

struct px_server;
struct px_conn;
struct px_request;
struct px_listener;

/* ---- TLS --------------------------------------------------------------- */

enum px_client_auth {
    PX_CLIENT_AUTH_NONE = 0, /* never ask for a client certificate */
    /*
     * Ask for one; a missing or unverifiable certificate does not fail the
     * handshake, the request simply has no peer identity (the apiserver
     * behaves like this: a bad cert means "anonymous", then 401/403). Without
     * client_ca_file any certificate is taken and nothing verifies; use
     * px_request_peer_cert() to verify against your own CA pools.
     */
    PX_CLIENT_AUTH_REQUEST = 1,
    /* Fail the handshake unless a certificate that verifies is presented. */
    PX_CLIENT_AUTH_REQUIRE = 2,
};

/** A certificate served by SNI (the apiserver's --tls-sni-cert-key). */
struct px_tls_sni_cert {
    const char *cert_file, *key_file;
    const char *const *names; /* "api.example.com", "*.example.com"; none: the cert's own */
    size_t n_names;
};

struct px_tls_config {
    const char *cert_file;             /* PEM chain, leaf first (required) */
    const char *key_file;              /* PEM private key (required) */
    const char *client_ca_file;        /* PEM CA bundle for client certs, or NULL */
    enum px_client_auth client_auth;   /* REQUIRE needs client_ca_file */
    bool disable_h2;                   /* ALPN offers only http/1.1 */
    const struct px_tls_sni_cert *sni; /* more certificates, chosen by the client's SNI */
    size_t n_sni;
};

/**
 * Build a server SSL_CTX: TLS 1.2 and 1.3 only, ALPN "h2" then "http/1.1",
 * client certificate policy from cfg, and cfg's SNI certificates (exact names
 * before wildcards, explicit names before a certificate's own, earlier
 * before later; the default certificate when nothing matches). On failure returns NULL and writes a
 * one-line reason (including OpenSSL's) into err. The caller owns the result
 * (SSL_CTX_free); px_server_set_tls() takes its own reference.
 */
struct ssl_ctx_st *px_tls_ctx_new(const struct px_tls_config *cfg, char *err, size_t err_size);

/* ---- server ------------------------------------------------------------ */

/**
 * Called once per request when its head and whole body have arrived, or, for
 * a body that is streamed (see px_body_mode_cb), as soon as the head has.
 */
typedef void (*px_handler_cb)(struct px_request *req, void *arg);
/**
 * Chooses how the handler gets the body of a request that has one: false
 * buffers it whole (up to max_body_bytes) before the handler runs, as
 * px_request_body() shows; true runs the handler once the head has arrived
 * and streams the body to it (px_request_body_stream()). Called with the
 * head complete and the handler's arg; it may read the request but must not
 * answer it.
 */
typedef bool (*px_body_mode_cb)(const struct px_request *req, void *arg);
/** on_drain / on_close notifications. */
typedef void (*px_request_cb)(struct px_request *req, void *arg);
/** Frees data handed to px_response_write_ref() once it has been sent or dropped. */
typedef void (*px_free_cb)(const void *data, size_t len, void *arg);
/**
 * Takes over an HTTP/1.1 connection after "101 Switching Protocols" was
 * queued. bev's input may already hold bytes of the new protocol; from now on
 * the callee owns bev (free it with bufferevent_free, which closes the fd).
 * bev is NULL if the connection died before the 101 could be flushed.
 */
typedef void (*px_upgrade_cb)(struct bufferevent *bev, void *arg);

struct px_server_config {
    px_handler_cb handler; /* required */
    void *handler_arg;
    struct ssl_ctx_st *tls; /* NULL: plaintext (HTTP/1.1 + h2c prior knowledge) */

    /* 0 selects the default given in brackets. */
    size_t max_header_bytes;         /* request line + headers [64 KiB] -> 431 */
    size_t max_body_bytes;           /* [3 MiB, like the apiserver] -> 413 */
    uint32_t max_concurrent_streams; /* HTTP/2 SETTINGS [100] */
    unsigned header_timeout_ms;      /* TLS handshake / whole request head [10 s] */
    unsigned idle_timeout_ms;        /* keep-alive with no request in flight [90 s] */
    unsigned body_timeout_ms;        /* no body byte for this long [60 s] */
    unsigned write_timeout_ms;       /* queued output makes no progress [60 s] */
    size_t low_water_bytes;          /* px_request_on_drain threshold [64 KiB] */
    /*
     * Probability in [0, 0.02] that an HTTP/2 connection is sent a graceful
     * GOAWAY when a response starts, so long-lived clients rebalance across
     * servers (the apiserver's --goaway-chance). 0 disables.
     */
    double goaway_chance;
    bool disable_h2c;            /* plaintext: refuse the HTTP/2 prior-knowledge preface */
    px_body_mode_cb stream_body; /* NULL: every request body is buffered */
};

/**
 * A server: configuration, handler and counters shared by its connections.
 * Copies cfg (and takes a reference on cfg->tls). Returns NULL on bad
 * configuration (logged) or ENOMEM.
 */
struct px_server *px_server_new(const struct px_server_config *cfg);

/**
 * Free the server. Call only when no loop that has its connections is
 * running (and before those event_bases are freed); connections that are
 * still open are closed without goodbye (their handlers get on_close and must
 * end their requests there), and each loop is run once, non-blocking, so
 * libevent can finish freeing them.
 */
void px_server_free(struct px_server *server);

/**
 * Replace the TLS context used for new connections (certificate rotation);
 * existing connections keep the context they started with. Takes a
 * reference on ctx; safe from any thread.
 */
void px_server_set_tls(struct px_server *server, struct ssl_ctx_st *ctx);

/**
 * Graceful shutdown: no new requests. HTTP/2 connections get GOAWAY and close
 * once their streams are done; HTTP/1 connections answer the request in
 * flight with "Connection: close" and idle ones are closed. Safe from any
 * thread: the work runs on each connection's loop.
 */
void px_server_shutdown(struct px_server *server);

/** Counters, a consistent-enough snapshot (relaxed atomics). */
struct px_server_stats {
    uint64_t conns_current, conns_total;
    uint64_t conns_h1, conns_h2; /* protocol chosen, totals */
    uint64_t streams_current;    /* requests alive (both protocols) */
    uint64_t requests_total;
    uint64_t tls_handshake_failures;
    uint64_t protocol_errors; /* malformed input: 400/431, bad frames, bad preface */
    uint64_t body_too_large;  /* 413 */
    uint64_t timeouts;        /* header, idle, body and write timeouts */
    uint64_t goaways_sent;
    uint64_t client_resets; /* requests that ended because the client went away */
};
void px_server_get_stats(const struct px_server *server, struct px_server_stats *out);

/**
 * Take over an accepted, connected socket: make it non-blocking, run the TLS
 * handshake if the server has TLS, pick HTTP/2 or HTTP/1.1 (ALPN, or the
 * preface on plaintext) and serve it on base. The fd is owned by kfront from
 * now on, even on failure (closed). Returns 0, or -errno (ENOMEM, or
 * ESHUTDOWN after px_server_shutdown()).
 */
int px_conn_accept(struct px_server *server, struct event_base *base, int fd,
                   const struct sockaddr *peer, socklen_t peer_len);

/**
 * Ask the connection to go away gracefully: HTTP/2 sends GOAWAY (streams in
 * flight finish, new ones are refused), HTTP/1 closes after the current
 * response. Used for rebalancing.
 */
void px_conn_goaway(struct px_conn *conn);

/* ---- listener (tests, kube-sim, single-threaded tools) --------------------- */

/**
 * Listen on "HOST:PORT" (kf_addr_parse syntax; port 0 picks a free port) and
 * px_conn_accept every connection on base. Returns NULL on failure (logged).
 */
struct px_listener *px_listen(struct event_base *base, struct px_server *server, const char *addr);
/** The port actually bound (useful with port 0). */
uint16_t px_listener_port(const struct px_listener *listener);
/** Stop listening and free; accepted connections are not affected. */
void px_listener_free(struct px_listener *listener);

/* ---- request ------------------------------------------------------------ */

/** "GET", "PUT", ... as sent. */
const char *px_request_method(const struct px_request *req);
/** Raw path as sent, still percent-encoded, without the query ("/api/v1/pods"). */
const char *px_request_path(const struct px_request *req);
/** Raw query after '?', not decoded; "" when there is none. */
const char *px_request_query_string(const struct px_request *req);
/**
 * First value of a query parameter, percent- and '+'-decoded; "" for a bare
 * "name" or "name="; NULL if absent. Malformed pairs are skipped (as Go's
 * URL.Query() does).
 */
const char *px_request_query(struct px_request *req, const char *name);
/** Number of decoded query parameters. */
size_t px_request_query_count(struct px_request *req);
/** The i-th decoded query parameter, in order; false when i is out of range. */
bool px_request_query_at(struct px_request *req, size_t i, const char **name, const char **value);
/** Host header (HTTP/1) or :authority (HTTP/2); "" when absent. */
const char *px_request_authority(const struct px_request *req);
/** First value of a header, case-insensitive name; NULL if absent. */
const char *px_request_header(const struct px_request *req, const char *name);
/** Number of request headers (repeats counted; HTTP/2 pseudo-headers excluded). */
size_t px_request_header_count(const struct px_request *req);
/** The i-th header (name lower-cased), in arrival order; false past the end. */
bool px_request_header_at(const struct px_request *req, size_t i, const char **name,
                          const char **value);
/** 1 for HTTP/1.x, 2 for HTTP/2. */
int px_request_http_version(const struct px_request *req);
/** The client's IP address as text ("" when not IPv4 or IPv6). */
const char *px_request_remote_ip(const struct px_request *req);
/** True when the connection is TLS. */
bool px_request_is_tls(const struct px_request *req);

/** A verified client certificate (see px_client_auth). */
struct px_peer_identity {
    const char *subject_cn;  /* "" if the subject has no CN */
    const char *const *orgs; /* subject O values, in order (Kubernetes groups) */
    size_t n_orgs;
    const char *issuer; /* RFC 2253 form of the issuer name */
};
/** The verified client certificate identity, or NULL (none, or it did not verify). */
const struct px_peer_identity *px_request_peer(const struct px_request *req);

/**
 * The client certificate as presented, verified or not (NULL if none), and
 * the chain the client sent after it (*chain may be NULL). Both are borrowed
 * and valid for the request's lifetime. For authenticators that verify
 * against their own CA pools, as the apiserver checks x509 users and
 * front-proxy clients against different CAs.
 */
struct x509_st *px_request_peer_cert(const struct px_request *req, struct stack_st_X509 **chain);

/**
 * The whole request body (contiguous, NUL-terminated for convenience; len
 * excludes the NUL). Empty body, or one that is streamed: "" and 0.
 */
const char *px_request_body(const struct px_request *req, size_t *len);

/* ---- streamed request bodies ----------------------------------------------------
 *
 * A request whose body the server config's stream_body chose to stream
 * reaches the handler with only its head; the body follows through the
 * callbacks given to px_request_body_stream(), with flow control back to the
 * client: bytes that are not delivered (not registered yet, or paused) are
 * held in a small per-request buffer (64 KiB on HTTP/1.1, the stream's
 * 256 KiB window on HTTP/2), beyond which HTTP/1.1 stops reading the
 * connection and HTTP/2 stops opening the stream's flow-control window.
 *
 * A handler may answer before the body has ended (e.g. an early error from
 * upstream): the rest of the body is then refused, HTTP/1.1 closes the
 * connection after the response and HTTP/2 resets the stream (NO_ERROR)
 * after it. No body callback runs once the handler has ended or aborted the
 * request, or once the client is gone (on_close fires instead).
 */

/**
 * Body bytes, in order, in pieces of any size. Return 0 for more, or
 * KF_AGAIN to pause after these (they are taken either way) until
 * px_request_body_resume().
 */
typedef int (*px_body_data_cb)(struct px_request *req, const void *data, size_t len, void *arg);
/**
 * The body ended, once: 0 when it is complete (every byte was delivered), or
 * a failure after which no byte follows: -EMSGSIZE (more than
 * max_body_bytes), -EBADMSG (malformed framing), -ETIMEDOUT (no byte for
 * body_timeout_ms while the server was waiting for one), -ENOMEM. After a
 * failure the handler answers (e.g. 413, 400 or 408 when no response was
 * started, else px_response_abort()).
 */
typedef void (*px_body_end_cb)(struct px_request *req, int error, void *arg);

/** True when the body of req is streamed (px_request_body_stream()) rather than buffered. */
bool px_request_body_streamed(const struct px_request *req);

/**
 * Receive the streamed body of req. Callbacks run from the connection's
 * loop, never inside this call; bytes that arrived before it are delivered
 * first. -EINVAL if the body is not streamed or already has a receiver.
 */
int px_request_body_stream(struct px_request *req, px_body_data_cb on_data, px_body_end_cb on_end,
                           void *arg);

/**
 * Deliver no more body bytes until px_request_body_resume(). The client is
 * held back by flow control once the request's buffer is full; the body
 * timeout does not run while the server is not reading.
 */
void px_request_body_pause(struct px_request *req);

/** Deliver body bytes again (from the loop, not inside this call). */
void px_request_body_resume(struct px_request *req);

/** Memory that lives exactly as long as the request. */
struct kf_arena *px_request_arena(struct px_request *req);

/** The connection the request arrived on (for px_conn_goaway). */
struct px_conn *px_request_conn(struct px_request *req);

/**
 * True for an HTTP/1.1 request asking to switch protocols (Connection:
 * upgrade + Upgrade: x), e.g. WebSocket for exec/port-forward. Never true on
 * HTTP/2. A handler that answers such a request normally (any
 * px_response_*) gets the connection closed afterwards, so the bytes that
 * follow are never parsed as HTTP.
 */
bool px_request_is_upgrade(const struct px_request *req);

/**
 * An HTTP/2 extended CONNECT (RFC 8441; the server offers it): the protocol
 * the client asks for ("websocket"), else NULL. Its DATA is a tunnel's bytes:
 * streamed with px_request_body_stream without the body size limit or body
 * timeout; the answer is 200 and then a streamed response.
 */
const char *px_request_connect_protocol(const struct px_request *req);

/**
 * Accept an upgrade: queue "101 Switching Protocols" with the headers set by
 * px_response_header() (the handler sets Upgrade, Connection and e.g.
 * Sec-WebSocket-Accept), then hand the raw connection to cb once the 101 is
 * flushed. This ends the request (like px_response_end). -EINVAL if the
 * request is not an upgrade or a response was already started; -EPIPE if the
 * client is gone (the request is still ended).
 */
int px_request_upgrade(struct px_request *req, px_upgrade_cb cb, void *arg);

/**
 * Register a callback for when the queued output of this response falls to
 * low_water_bytes or below after having been above it. NULL disables.
 */
void px_request_on_drain(struct px_request *req, px_request_cb cb, void *arg);

/**
 * Register a callback for when the client goes away before the handler ended
 * the request (disconnect, RST_STREAM, GOAWAY teardown, timeout). Fires at
 * most once; the handler must then stop writing and call px_response_end()
 * (or abort) to release the request. NULL disables.
 */
void px_request_on_close(struct px_request *req, px_request_cb cb, void *arg);

/** True once the client is gone (on_close has fired or would have). */
bool px_request_is_closed(const struct px_request *req);

/* ---- response ------------------------------------------------------------ */

/**
 * Add a response header (copied) before px_response_start(). Names are sent
 * lower-case on HTTP/2. Connection-specific headers (Connection, Keep-Alive,
 * Transfer-Encoding, Upgrade except for 101) are managed by the server and
 * ignored here. A "Content-Length" set here fixes the body length (HTTP/1
 * then does not use chunked encoding). -EINVAL after start or on CR/LF/NUL
 * in name or value.
 */
int px_response_header(struct px_request *req, const char *name, const char *value);
/* The same with lengths: name and value need not be NUL-terminated (relayed fields). */
int px_response_header_n(struct px_request *req, const char *name, size_t nlen, const char *value,
                         size_t vlen);
/* Not copied: name and value must stay valid until px_response_start() returns (a relay's
 * upstream fields, started right after). */
int px_response_header_ref(struct px_request *req, const char *name, size_t nlen, const char *value,
                           size_t vlen);

/**
 * Send the status line and headers. Without a Content-Length header the body
 * is streamed: HTTP/1.1 uses chunked encoding (each px_response_write is one
 * chunk, like the apiserver's watch events), HTTP/1.0 closes at the end,
 * HTTP/2 sends DATA frames. -EINVAL if already started; -EPIPE if closed.
 */
int px_response_start(struct px_request *req, int status);

/** Queue a copy of data as body bytes. -EPIPE once the client is gone. */
int px_response_write(struct px_request *req, const void *data, size_t len);

/**
 * Queue data by reference (zero-copy on HTTP/1 and on HTTP/2 DATA frames).
 * data must stay valid and unchanged until cleanup(data, len, arg) is called
 * (cleanup may be NULL for static data; arena memory is NOT safe here unless
 * the request outlives the send, so use px_response_write for it). cleanup is
 * always called exactly once, also when this fails (-EPIPE, -EINVAL).
 */
int px_response_write_ref(struct px_request *req, const void *data, size_t len, px_free_cb cleanup,
                          void *arg);

/**
 * Finish the response (HTTP/1 last chunk, HTTP/2 END_STREAM) and release the
 * handler's ownership of req. If nothing was started, a 500 is sent. Also the
 * way to release a request whose client is gone. Returns 0, or -EPIPE when
 * the client was gone (req is released either way).
 */
int px_response_end(struct px_request *req);

/**
 * Give up on a response midway (e.g. upstream failed mid-stream) so the
 * client sees an error, not a short but complete body: HTTP/2 RST_STREAM
 * INTERNAL_ERROR, HTTP/1 closes the connection. Releases req like end.
 */
void px_response_abort(struct px_request *req);

/**
 * Whole response in one call: status, Content-Type (may be NULL), a
 * Content-Length body (copied), end. Returns like px_response_end.
 */
int px_response_simple(struct px_request *req, int status, const char *content_type,
                       const void *body, size_t len);

/**
 * Response bytes queued for this request and not yet handed to the socket
 * (for HTTP/2: not yet framed, e.g. waiting for flow-control window).
 */
size_t px_response_pending(const struct px_request *req);

/** True once px_response_start() was called. */
bool px_response_started(const struct px_request *req);

/** Standard reason phrase for a status ("OK", "Not Found"); "Unknown" otherwise. */
const char *px_status_reason(int status);

#endif
