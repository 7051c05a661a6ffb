/*
 * authz (private to proxy/): may this client see what kfront would serve it
 * from its cache? Answered as the apiserver would answer the request itself:
 *
 * 1. Authentication into a px_user: a verified client certificate (CN = user,
 *    O = groups; not in passthrough mode, where the apiserver never sees it),
 *    else "Authorization: Bearer T" checked with a TokenReview, else
 *    anonymous. A token the apiserver rejects is PX_AUTHZ_UNAUTHENTICATED.
 * 2. Authorization with a SubjectAccessReview of the request's attributes
 *    (verb, group, version, resource, subresource, namespace, name, and the
 *    field and label selector requirements).
 *
 * Both reviews go upstream through the worker's upstream pool and are cached
 * per worker, keyed by SHA-256 digests (never the raw token): tokens for
 * identity.tokenCacheTTL (rejections for at most 2 s), decisions for
 * authorization.allowTTL / denyTTL. Identical reviews in flight are coalesced:
 * one upstream request, many waiters. An upstream failure, a timeout or an
 * answer that does not parse is PX_AUTHZ_ERROR and is never cached: the
 * caller then forwards the request instead of serving it (never allow on
 * error).
 *
 * Everything runs on the worker loop of the request.
 */
#ifndef KF_PROXY_AUTHZ_H
#define KF_PROXY_AUTHZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/http/http.h"
#include "proxy/proxy_internal.h"
#include "proxy/reqinfo.h"

enum px_authz_result {
    PX_AUTHZ_ALLOW,
    PX_AUTHZ_DENY,
    PX_AUTHZ_UNAUTHENTICATED,
    PX_AUTHZ_ERROR,
};

/** Called once, on the worker loop, when a check that returned KF_AGAIN is decided. */
typedef void (*px_authz_cb)(enum px_authz_result res, void *arg);

/** A check in progress (lives in the request's arena). */
struct px_authz_wait;

struct px_user;

/** What px_authz_reply needs to word the apiserver's answer. */
struct px_authz_decision {
    enum px_authz_result result;
    const char *user;               /* the authenticated user's name; NULL when unauthenticated */
    const char *reason;             /* the authorizer's reason for a denial; NULL when none */
    const struct px_user *identity; /* px_authz_authenticate's user (request arena) */
};

/** One extra attribute of a user (authentication.k8s.io ExtraValue). */
struct px_user_extra {
    const char *key;
    const char *const *values;
    size_t n_values;
};

/** An authenticated user, as the apiserver's user.Info. */
struct px_user {
    const char *name;
    const char *uid; /* "" when none */
    const char *const *groups;
    size_t n_groups;
    const struct px_user_extra *extra;
    size_t n_extra;
};

/**
 * Authenticate preq and authorize info for it, towards the backend of
 * binding b (its pool and the worker's upstream for it). out is filled when
 * the check is decided and must stay valid until then. Returns 0 when the
 * decision was made now (everything cached, or the client has a certificate
 * and the decision is cached; cb is not called), or KF_AGAIN with *wait set:
 * cb runs later on the worker loop, after which *wait is gone. A failure to
 * even start is decided now as PX_AUTHZ_ERROR.
 */
int px_authz_check(struct px_worker *w, const struct px_binding *b, struct px_request *preq,
                   const struct px_reqinfo *info, struct px_authz_decision *out, px_authz_cb cb,
                   void *arg, struct px_authz_wait **wait);

/**
 * Authenticate preq's bearer token (TokenReview, cached like px_authz_check's)
 * for a request kfront forwards and vouches for. Decided as PX_AUTHZ_ALLOW
 * with out->identity set, PX_AUTHZ_UNAUTHENTICATED (the apiserver rejects the
 * token, or there is none), or PX_AUTHZ_ERROR. Returns like px_authz_check.
 */
int px_authz_authenticate(struct px_worker *w, const struct px_binding *b, struct px_request *preq,
                          const struct px_reqinfo *info, struct px_authz_decision *out,
                          px_authz_cb cb, void *arg, struct px_authz_wait **wait);

/** Does preq carry "Authorization: Bearer T" as the apiserver reads it? */
bool px_authz_has_token(struct px_request *preq);

/**
 * The client went away: forget the wait (cb will not run). The reviews it
 * started go on and their answers are cached. Also valid after the worker's
 * authz state was freed; must be called before the request is ended.
 */
void px_authz_cancel(struct px_authz_wait *wait);

/**
 * Answer preq with the apiserver's Status for a denied (403 Forbidden,
 * worded like its forbidden message, with the authorizer's reason) or
 * unauthenticated (401 Unauthorized) request: protobuf when the client's
 * Accept prefers application/vnd.kubernetes.protobuf, else JSON, pretty
 * printed for ?pretty=true and curl/Wget/browsers as the apiserver does.
 * Ends the request. PX_AUTHZ_ALLOW and PX_AUTHZ_ERROR are caller bugs
 * answered with a 500 Status.
 */
void px_authz_reply(struct px_request *preq, const struct px_reqinfo *info,
                    const struct px_authz_decision *d);

/** Free the worker's authz state (at exit): reviews are cancelled, waits orphaned. */
void px_authz_worker_free(struct px_worker *w);

/** Append kfront_authz_* families, summed over workers. */
void px_authz_metrics_write(struct px_daemon *d, struct evbuffer *out);

/* ---- pieces exposed for unit tests ---------------------------------------------------- */

struct codec_buf;

/** The body of a Status for d (see px_authz_reply); returns its HTTP code. */
int px_authz_status_body(struct codec_buf *out, const struct px_reqinfo *info,
                         const struct px_authz_decision *d, bool protobuf, bool pretty);

/**
 * Append a SubjectAccessReview request body for user doing info (path: the
 * URL path of a non-resource request), with the requirements of the field and
 * label selectors of a list, watch or deletecollection (either may be NULL).
 */
int px_authz_sar_body(struct codec_buf *out, const struct px_user *user,
                      const struct px_reqinfo *info, const char *path, const char *field_selector,
                      const char *label_selector);

/**
 * Read a TokenReview answer: 1 with *user (strings in arena) when
 * authenticated, 0 when not, -EBADMSG when it is not a TokenReview answer.
 */
int px_authz_parse_token_review(const char *json, size_t len, struct kf_arena *arena,
                                struct px_user *user);

/**
 * Read a SubjectAccessReview answer: 1 allowed, 0 denied (*reason in arena,
 * NULL when none), -EBADMSG when it does not parse or the authorizer could
 * not evaluate the request (evaluationError without allowed).
 */
int px_authz_parse_sar(const char *json, size_t len, struct kf_arena *arena, const char **reason);

/** Counters of one worker's caches, for tests and metrics. */
struct px_authz_stats {
    uint64_t hits, misses, evictions, coalesced, entries;
};

/** kind 0: token reviews, 1: decisions. Zeros when the worker has no authz state. */
void px_authz_get_stats(struct px_worker *w, int kind, struct px_authz_stats *out);

/** Upstream review timeout (default 5 s); tests shorten it. */
void px_authz_set_review_timeout(struct px_worker *w, uint32_t ms);

#endif
