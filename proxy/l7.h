/* L7 mode (private to proxy/): the request handler and what it needs from its worker. */
#ifndef KF_PROXY_L7_H
#define KF_PROXY_L7_H

#include "lb/lb.h"
#include "proxy/http/http.h"
#include "proxy/proxy_internal.h"
#include "proxy/reqinfo.h"

/** px_handler_cb of every mode-http frontend; arg is its struct px_frontend. */
void px_l7_handle(struct px_request *req, void *arg);

/**
 * Tunnel an HTTP/1.1 upgrade request (exec, attach, port-forward) to a
 * server of the binding's backend on its own connection; answers the client
 * (101 and the spliced streams, or the apiserver's other answer, or a
 * Status) and counts it. Takes over preq.
 */
struct px_user;
void px_l7_upgrade(struct px_worker *w, const struct px_binding *b, struct px_request *preq,
                   const struct px_reqinfo *info, const struct px_user *reviewed);

/**
 * Forward preq upstream as the client, or as reviewed (a user whose token a
 * TokenReview accepted) when not NULL: the normal L7 path. px_l7_forward
 * (l7_authn.c) reviews a token client's token first when kfront vouches.
 */
void px_l7_forward_as(struct px_worker *w, struct px_frontend *fe, struct px_request *preq,
                      const struct px_reqinfo *info, const struct px_user *reviewed);

/** Does the client ask to act as someone else (any Impersonate-* header the apiserver reads)? */
bool px_l7_impersonation_requested(struct px_request *preq);
/** Impersonate mode, and the client asks to act as someone else (l7_impersonate.c)? */
bool px_l7_wants_impersonation(struct px_worker *w, struct px_request *preq);
/**
 * Review with the apiserver whether the client may impersonate what it asks
 * for, then forward preq as that identity; or answer the apiserver's 403.
 */
void px_l7_impersonate(struct px_worker *w, struct px_frontend *fe, struct px_request *preq,
                       const struct px_reqinfo *info);

/** How a forwarded watch's events are framed, and whether the bytes so far end one. */
enum px_watch_framing { PX_FRAMING_NONE, PX_FRAMING_LINES, PX_FRAMING_LENGTH };
struct px_watch_frames {
    enum px_watch_framing framing;
    bool at_boundary;    /* the bytes so far end an event */
    uint8_t prefix_have; /* LENGTH: bytes of the current frame's length prefix seen */
    uint32_t prefix;     /* LENGTH: the prefix so far */
    uint32_t body_left;  /* LENGTH: bytes of the current frame still to come */
};
/** Framing from the response's Content-Type (NONE for formats it does not follow). */
void px_watch_frames_init(struct px_watch_frames *f, const char *content_type, size_t len);
/**
 * Follow n more bytes of the stream; with stop, only up to the first event boundary.
 * Returns the bytes followed (n unless stop found a boundary first).
 */
size_t px_watch_frames_advance(struct px_watch_frames *f, const uint8_t *data, size_t n, bool stop);
/** Draining: forwarded watches end at their next event boundary (as the apiserver ends its
 * watches at shutdown), so clients re-watch elsewhere at once. */
void px_l7_end_watches(struct px_worker *w);

/** Answer preq with a Status of code, reason and message, and count it. */
void px_l7_reject(struct px_worker *w, struct px_request *preq, const struct px_reqinfo *info,
                  int code, const char *reason, const char *message);

/** px_body_mode_cb of every mode-http frontend: request bodies are streamed to the apiserver. */
bool px_l7_stream_body(const struct px_request *req, void *arg);

/** The worker whose loop runs on this thread, or NULL on any other thread. */
struct px_worker *px_worker_self(void);
void px_worker_set_self(struct px_worker *w);

/** The first binding of fe in the worker's generation, or NULL. */
const struct px_binding *px_worker_binding(struct px_worker *w, const struct px_frontend *fe);

/** The worker's upstream pool for the binding's backend, made on first use. */
struct lb_upstream *px_worker_upstream(struct px_worker *w, const struct px_binding *b);

/** Free every upstream pool of the worker (at exit, on its loop's thread). */
void px_worker_upstreams_free(struct px_worker *w);

/** Count a finished request for /metrics (verb, resource, code, duration). */
void px_l7_count(struct px_worker *w, const struct px_reqinfo *info, int code, uint64_t us);

/** Append kfront_http_* families, summed over workers. */
void px_l7_metrics_write(struct px_daemon *d, struct evbuffer *out);

/**
 * The headers to send upstream: the client's, less hop-by-hop and identity
 * headers it may not set, plus the identity kfront vouches for
 * (cfg->identity.mode): the client's verified certificate, else reviewed (a
 * user whose token a TokenReview accepted) when not NULL; in impersonate mode
 * be's kubeconfig token as Authorization. *headers is an array in req's arena
 * with room for all of them and spare more: however many headers the client
 * sends, none of kfront's identity headers is ever left out. Returns how many
 * were written, or -ENOMEM.
 */
ssize_t px_l7_identity_headers(struct px_request *req, const struct config *cfg,
                               const struct config_backend *be, const struct px_user *reviewed,
                               size_t spare, struct lb_uhdr **headers);

/**
 * Fill out with the identity of kfront's own requests (reflectors, reviews):
 * the user and group of cfg->authorization, as X-Remote-* in front-proxy mode
 * or Impersonate-* in impersonate mode, and be's kubeconfig token if any.
 * Returns how many were written (at most max).
 */
size_t px_l7_own_identity_headers(const struct config *cfg, const struct config_backend *be,
                                  struct lb_uhdr *out, size_t max);

/** "path?query" as the client sent it, in the request's arena. */
const char *px_l7_target(struct px_request *req);

/**
 * The client TLS context kfront uses towards a backend's servers: CA from
 * upstream_tls, and the client certificate the identity mode calls for.
 * NULL with a reason in err on failure.
 */
struct ssl_ctx_st *px_l7_upstream_tls(const struct config *cfg, const struct config_backend *be,
                                      char *err, size_t err_size);

/** The serving TLS context of a mode-http frontend. */
struct ssl_ctx_st *px_l7_server_tls(const struct config_frontend *fe, char *err, size_t err_size);

#endif
