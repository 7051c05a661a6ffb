/*
 * Forwarded requests from clients with a bearer token. In front-proxy and
 * impersonate modes kfront vouches for the clients it forwards: one with a
 * verified certificate is vouched for at once; one with only a token is first
 * authenticated with a TokenReview (cached by a hash of the token and shared
 * with the cache's authorization, so a kubelet's requests cost one review per
 * TTL) and then goes upstream as the user the apiserver named, with its
 * groups and extra (l7_identity.c). A token the apiserver rejects gets its 401
 * Status here, as the apiserver would answer it.
 *
 * A client with neither is anonymous; in impersonate mode kfront would make
 * it system:anonymous itself, so with identity.anonymous false (the
 * apiservers' --anonymous-auth=false) it gets their 401 here instead.
 *
 * When the review cannot be made (no apiserver answers, a malformed answer):
 * in front-proxy mode the token goes upstream untouched and the apiserver
 * judges it itself; in impersonate mode kfront cannot vouch and answers 503.
 *
 * States: REVIEWING -> FORWARDED | ANSWERED; the client may go away while
 * REVIEWING (the review goes on and its answer is cached).
 */
#include "proxy/authz.h"
#include "proxy/l7.h"
#include "proxy/l7_cache.h"

enum authn_state { AUTHN_REVIEWING, AUTHN_FORWARDED, AUTHN_ANSWERED, AUTHN_GONE };

static const char *const authn_state_name[] = {"reviewing", "forwarded", "answered", "gone"};

struct l7_authn {
    enum authn_state state;
    struct px_worker *worker;
    struct px_frontend *fe;
    struct px_request *preq;
    struct px_reqinfo info;
    struct px_authz_decision decision;
    struct px_authz_wait *wait;
};

static void authn_set_state(struct l7_authn *a, enum authn_state next)
{
    KF_BUG_ON(a->state != AUTHN_REVIEWING || next == AUTHN_REVIEWING);
    kf_debug("l7", "token review for %s %s: %s -> %s", a->info.verb, a->info.resource,
             authn_state_name[a->state], authn_state_name[next]);
    a->state = next;
}

static void on_client_gone(struct px_request *preq, void *arg)
{
    struct l7_authn *a = arg;

    authn_set_state(a, AUTHN_GONE);
    px_authz_cancel(a->wait);
    px_response_end(preq);
}

static void on_reviewed(enum px_authz_result res, void *arg)
{
    struct l7_authn *a = arg; /* in the request's arena: gone once the request is answered */
    struct px_request *preq = a->preq;
    struct px_worker *w = a->worker;
    struct px_reqinfo info = a->info;
    bool impersonate = w->gen->cfg->identity.mode == CONFIG_IDENTITY_IMPERSONATE;

    px_request_on_close(preq, NULL, NULL);
    a->wait = NULL;
    if (res == PX_AUTHZ_UNAUTHENTICATED) {
        authn_set_state(a, AUTHN_ANSWERED);
        px_l7_count(w, &info, 401, 0); /* before the last byte goes out */
        px_authz_reply(preq, &info, &a->decision);
    } else if (res == PX_AUTHZ_ERROR && impersonate) {
        authn_set_state(a, AUTHN_ANSWERED);
        px_l7_reject(a->worker, preq, &a->info, 503, "ServiceUnavailable",
                     "kfront could not authenticate the bearer token (TokenReview failed)");
    } else {
        authn_set_state(a, AUTHN_FORWARDED);
        px_l7_forward_as(a->worker, a->fe, preq, &a->info,
                         res == PX_AUTHZ_ALLOW ? a->decision.identity : NULL);
    }
}

/* kfront vouches for this client only after a TokenReview. */
static bool needs_review(struct px_worker *w, struct px_request *preq)
{
    const struct px_peer_identity *peer = px_request_peer(preq);

    return w && w->gen && w->gen->cfg->identity.mode != CONFIG_IDENTITY_PASSTHROUGH &&
           !(peer && peer->subject_cn[0]) && px_authz_has_token(preq);
}

/* Impersonate mode, no credentials, and the apiservers refuse anonymous requests. */
static bool refused_anonymous(struct px_worker *w, struct px_request *preq)
{
    const struct px_peer_identity *peer = px_request_peer(preq);
    const struct config_identity *id = w && w->gen ? &w->gen->cfg->identity : NULL;

    return id && id->mode == CONFIG_IDENTITY_IMPERSONATE && !id->anonymous &&
           !(peer && peer->subject_cn[0]) && !px_authz_has_token(preq);
}

void px_l7_forward(struct px_worker *w, struct px_frontend *fe, struct px_request *preq,
                   const struct px_reqinfo *info)
{
    const struct px_binding *b = w ? px_worker_binding(w, fe) : NULL;
    struct l7_authn *a;
    int rc;

    if (refused_anonymous(w, preq)) {
        struct px_authz_decision d = {.result = PX_AUTHZ_UNAUTHENTICATED};
        struct px_reqinfo copy = *info;
        px_l7_count(w, &copy, 401, 0);
        px_authz_reply(preq, &copy, &d);
        return;
    }
    if (b && b->pool && px_l7_wants_impersonation(w, preq)) {
        px_l7_impersonate(w, fe, preq, info);
        return;
    }
    if (!b || !b->pool || !needs_review(w, preq) ||
        !(a = kf_arena_alloc(px_request_arena(preq), sizeof(*a)))) {
        px_l7_forward_as(w, fe, preq, info, NULL);
        return;
    }
    *a = (struct l7_authn){
        .state = AUTHN_REVIEWING, .worker = w, .fe = fe, .preq = preq, .info = *info};
    px_request_on_close(preq, on_client_gone, a);
    rc = px_authz_authenticate(w, b, preq, &a->info, &a->decision, on_reviewed, a, &a->wait);
    if (rc == 0)
        on_reviewed(a->decision.result, a);
}
