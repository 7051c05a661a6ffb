/*
 * The check: authenticate, then authorize, each answered from the worker's
 * cache or by a review upstream that every identical check in the meantime
 * waits on. A wait goes AUTHN -> AUTHZ -> DONE (or straight to DONE); it
 * lives in the request's arena, so the request outlives it by construction.
 *
 * Reviews go to the backend's servers through the worker's upstream pool, as
 * kfront itself: in front-proxy mode with X-Remote-User set to
 * authorization.user over the front-proxy certificate, otherwise with
 * kfront's own credentials. Failures are answered PX_AUTHZ_ERROR and not
 * cached: the caller forwards the request, and the apiserver decides.
 */
#include "proxy/authz_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "cache/codec/codec.h"
#include "proxy/l7.h"

#define MODULE             "authz"
#define MAX_ANSWER         (64 * 1024)
#define TOKEN_FAIL_TTL_MS  2000
#define DEFAULT_TIMEOUT_MS 5000
#define TOKENREVIEW_PATH   "/apis/authentication.k8s.io/v1/tokenreviews"
#define SAR_PATH           "/apis/authorization.k8s.io/v1/subjectaccessreviews"

enum review_outcome {
    OUTCOME_YES, /* authenticated / allowed */
    OUTCOME_NO,  /* rejected / denied */
    OUTCOME_ERROR,
};

struct px_authz {
    struct px_worker *worker;
    struct authz_cache cache[2]; /* by enum authz_kind */
    uint32_t timeout_ms;
    int last_failure;               /* status (or -errno) last logged, to log changes only */
    _Atomic uint64_t reviews[2][3]; /* kind x outcome */
};

struct authz_review {
    struct px_authz *az;
    struct authz_entry *entry;
    enum authz_kind kind;
    struct lb_ureq *ureq;
    struct lb *lb;
    struct event *timer;
    int status;
    struct codec_buf answer;
};

enum wait_state {
    WAIT_AUTHN,
    WAIT_AUTHZ_WIDE, /* is the verb allowed on the whole resource (no name)? */
    WAIT_AUTHZ,      /* on the named object */
    WAIT_DONE,
};

static const char *const wait_state_name[] = {"authn", "authz-wide", "authz", "done"};

/* What the wait is for: a decision on serving from the cache, or who forwarded requests act as */
enum wait_goal {
    GOAL_ACCESS,
    GOAL_IDENTITY,
};

struct px_authz_wait {
    enum wait_state state;
    enum wait_goal goal;
    bool in_check; /* decided inside px_authz_check: no callback */
    struct kf_list link;
    struct px_authz *az; /* NULL once orphaned by px_authz_worker_free */
    struct px_request *preq;
    struct px_reqinfo info;
    struct px_authz_decision *out;
    px_authz_cb cb;
    void *arg;
    uint8_t scope[AUTHZ_KEY_LEN]; /* the backend: caches never mix clusters */
    struct lb *lb;                /* retained while the wait lives */
    struct px_generation *gen;    /* retained: its backend's identity signs the reviews */
    const struct config_backend *backend;
    struct lb_pool *pool;
    struct lb_upstream *up;
    const struct px_user *user; /* WAIT_AUTHZ_WIDE: for the named review that may follow */
};

static void wait_set_state(struct px_authz_wait *wt, enum wait_state next)
{
    KF_BUG_ON(wt->state == WAIT_DONE);
    KF_BUG_ON(next == WAIT_AUTHN || next <= wt->state);
    kf_debug(MODULE, "%s %s: %s -> %s", wt->info.verb, wt->info.resource,
             wait_state_name[wt->state], wait_state_name[next]);
    wt->state = next;
}

/* ---- worker state -------------------------------------------------------------------- */

static struct px_authz *authz_get(struct px_worker *w)
{
    struct px_authz *az = atomic_load_explicit(&w->authz, memory_order_acquire);
    size_t max = w->gen ? w->gen->cfg->authorization.cache_size : 10000;

    if (az)
        return az;
    az = calloc(1, sizeof(*az));
    if (!az)
        return NULL;
    az->worker = w;
    az->timeout_ms = DEFAULT_TIMEOUT_MS;
    if (authz_cache_init(&az->cache[AUTHZ_TOKEN], max) < 0 ||
        authz_cache_init(&az->cache[AUTHZ_SAR], max) < 0) {
        authz_cache_free(&az->cache[AUTHZ_TOKEN]);
        free(az);
        return NULL;
    }
    atomic_store_explicit(&w->authz, az, memory_order_release);
    return az;
}

void px_authz_set_review_timeout(struct px_worker *w, uint32_t ms)
{
    struct px_authz *az = authz_get(w);

    if (az)
        az->timeout_ms = ms;
}

void px_authz_get_stats(struct px_worker *w, int kind, struct px_authz_stats *out)
{
    struct px_authz *az = atomic_load_explicit(&w->authz, memory_order_acquire);
    const struct authz_cache *c = az ? &az->cache[kind ? AUTHZ_SAR : AUTHZ_TOKEN] : NULL;

    memset(out, 0, sizeof(*out));
    if (!c)
        return;
    out->hits = atomic_load(&c->hits);
    out->misses = atomic_load(&c->misses);
    out->evictions = atomic_load(&c->evictions);
    out->coalesced = atomic_load(&c->coalesced);
    out->entries = atomic_load(&c->entries);
}

/* SHA-256 of scope, kind and data: what a cache entry is about, never the data itself. */
static void key_of(uint8_t *key, const uint8_t *scope, enum authz_kind kind, const void *data,
                   size_t len)
{
    uint8_t stack[1024], *buf = len + AUTHZ_KEY_LEN + 1 <= sizeof(stack) ? stack : NULL;

    if (!buf && !(buf = malloc(len + AUTHZ_KEY_LEN + 1))) {
        memset(key, 0xff, AUTHZ_KEY_LEN); /* callers check the scope; see below */
        return;
    }
    memcpy(buf, scope, AUTHZ_KEY_LEN);
    buf[AUTHZ_KEY_LEN] = (uint8_t)kind;
    memcpy(buf + AUTHZ_KEY_LEN + 1, data, len);
    SHA256(buf, len + AUTHZ_KEY_LEN + 1, key);
    OPENSSL_cleanse(buf, len + AUTHZ_KEY_LEN + 1); /* it may hold a bearer token */
    if (buf != stack)
        free(buf);
}

/* ---- finishing a wait ------------------------------------------------------------------ */

static void wait_release(struct px_authz_wait *wt)
{
    kf_list_remove(&wt->link);
    if (wt->lb)
        lb_release(wt->lb);
    wt->lb = NULL;
    if (wt->gen)
        px_generation_release(wt->gen);
    wt->gen = NULL;
}

static void finish(struct px_authz_wait *wt, enum px_authz_result res, const char *reason)
{
    struct kf_arena *a = px_request_arena(wt->preq);

    wait_set_state(wt, WAIT_DONE);
    wait_release(wt);
    wt->out->result = res;
    wt->out->reason = reason && reason[0] ? kf_arena_strdup(a, reason) : NULL;
    if (res == PX_AUTHZ_UNAUTHENTICATED)
        wt->out->user = NULL;
    if (!wt->in_check)
        wt->cb(res, wt->arg); /* may end the request: wt is gone after this */
}

/* ---- reviews upstream ---------------------------------------------------------------- */

static void review_done(struct authz_review *rv, enum review_outcome outcome,
                        struct kf_arena *arena);
static void on_timeout(evutil_socket_t fd, short what, void *arg);

static void on_headers(struct lb_ureq *ureq, int status, const struct lb_uhdr *h, size_t n,
                       void *arg)
{
    struct authz_review *rv = arg;

    (void)ureq, (void)h, (void)n;
    rv->status = status;
}

static void on_data(struct lb_ureq *ureq, const uint8_t *data, size_t len, void *arg)
{
    struct authz_review *rv = arg;

    if (rv->answer.len + len <= MAX_ANSWER)
        codec_buf_append(&rv->answer, data, len);
    else
        rv->answer.err = -EMSGSIZE;
    lb_ureq_consume(ureq, len);
}

static void log_failure(struct px_authz *az, int failure, const char *what)
{
    if (failure == az->last_failure)
        return; /* counted in kfront_authz_requests_total{result="error"}; logged on change */
    az->last_failure = failure;
    kf_warn(MODULE, "%s failed: %s %d; such requests are forwarded until reviews work again", what,
            failure < 0 ? "error" : "status", failure < 0 ? -failure : failure);
}

/* Read the answer into outcome (and the entry's arena). */
static enum review_outcome read_answer(struct authz_review *rv, int error, struct kf_arena *arena)
{
    struct authz_entry *e = rv->entry;
    const char *what = rv->kind == AUTHZ_TOKEN ? "TokenReview" : "SubjectAccessReview";
    int rc;

    if (error || rv->answer.err || (rv->status != 201 && rv->status != 200)) {
        log_failure(rv->az, error ? error : rv->answer.err ? rv->answer.err : rv->status, what);
        return OUTCOME_ERROR;
    }
    if (rv->kind == AUTHZ_TOKEN)
        rc = px_authz_parse_token_review(rv->answer.data, rv->answer.len, arena, &e->user);
    else
        rc = px_authz_parse_sar(rv->answer.data, rv->answer.len, arena, &e->reason);
    if (rc < 0) {
        log_failure(rv->az, -EBADMSG, what);
        return OUTCOME_ERROR;
    }
    rv->az->last_failure = 0;
    return rc == 1 ? OUTCOME_YES : OUTCOME_NO;
}

static void on_end(struct lb_ureq *ureq, int error, void *arg)
{
    struct authz_review *rv = arg;
    struct kf_arena *arena = kf_arena_new(1024);

    (void)ureq;
    rv->ureq = NULL;
    if (!arena) {
        review_done(rv, OUTCOME_ERROR, NULL);
        return;
    }
    review_done(rv, read_answer(rv, error, arena), arena);
}

static const struct lb_ureq_callbacks review_cbs = {
    .on_headers = on_headers,
    .on_data = on_data,
    .on_end = on_end,
};

static int review_start(struct px_authz_wait *wt, struct authz_entry *e, enum authz_kind kind,
                        const struct codec_buf *body)
{
    struct lb_uhdr h[5] = {
        {"Content-Type", 12, "application/json", 16},
        {"Accept", 6, "application/json", 16},
    };
    struct lb_ureq_spec spec = {
        .method = "POST",
        .path = kind == AUTHZ_TOKEN ? TOKENREVIEW_PATH : SAR_PATH,
        .headers = h,
        .n_headers = 2 + px_l7_own_identity_headers(wt->gen->cfg, wt->backend, h + 2, 3),
        .body = body->data,
        .body_len = body->len,
        .idempotent = true, /* a review changes nothing: safe to send again */
    };
    struct authz_review *rv = calloc(1, sizeof(*rv));
    struct timeval tv = {wt->az->timeout_ms / 1000, (wt->az->timeout_ms % 1000) * 1000};
    int rc;

    if (!rv || !(rv->timer = evtimer_new(wt->az->worker->base, on_timeout, rv))) {
        free(rv);
        return -ENOMEM;
    }
    rv->az = wt->az;
    rv->entry = e;
    rv->kind = kind;
    codec_buf_init(&rv->answer);
    rc = lb_ureq_start(wt->up, wt->pool, &spec, &review_cbs, rv, &rv->ureq);
    if (rc < 0) {
        event_free(rv->timer);
        free(rv);
        return rc;
    }
    rv->lb = wt->lb;
    lb_retain(rv->lb);
    evtimer_add(rv->timer, &tv);
    e->review = rv;
    return 0;
}

static void review_free(struct authz_review *rv)
{
    if (rv->ureq)
        lb_ureq_cancel(rv->ureq);
    event_free(rv->timer);
    lb_release(rv->lb);
    codec_buf_free(&rv->answer);
    free(rv);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct authz_review *rv = arg;

    (void)fd, (void)what;
    log_failure(rv->az, -ETIMEDOUT, rv->kind == AUTHZ_TOKEN ? "TokenReview" : "SAR");
    review_done(rv, OUTCOME_ERROR, NULL);
}

/* ---- the stages ------------------------------------------------------------------------- */

static void authorize(struct px_authz_wait *wt, const struct px_user *user);

/* Join e, or make it and start its review; false when the wait was finished with an error. */
static bool wait_on(struct px_authz_wait *wt, enum authz_kind kind, const uint8_t *key,
                    const struct codec_buf *body, bool node_subject)
{
    struct authz_cache *c = &wt->az->cache[kind];
    struct authz_entry *e = authz_cache_add(c, key);

    if (!e || review_start(wt, e, kind, body) < 0) {
        if (e)
            authz_cache_remove(c, e);
        finish(wt, PX_AUTHZ_ERROR, NULL);
        return false;
    }
    e->node_subject = node_subject;
    kf_list_insert_tail(&e->waiters, &wt->link);
    return true;
}

static bool in_group(const struct px_user *u, const char *group)
{
    for (size_t i = 0; i < u->n_groups; i++)
        if (strcmp(u->groups[i], group) == 0)
            return true;
    return false;
}

/* Copy u into a: the cache entry it comes from may be evicted while the request lives. */
static struct px_user *user_copy(struct kf_arena *a, const struct px_user *u)
{
    struct px_user *c = kf_arena_alloc(a, sizeof(*c));
    const char **groups = kf_arena_alloc(a, (u->n_groups + 1) * sizeof(*groups));
    struct px_user_extra *extra = kf_arena_alloc(a, (u->n_extra + 1) * sizeof(*extra));

    if (!c || !groups || !extra)
        return NULL;
    *c = (struct px_user){kf_arena_strdup(a, u->name),
                          kf_arena_strdup(a, u->uid ? u->uid : ""),
                          groups,
                          u->n_groups,
                          extra,
                          u->n_extra};
    for (size_t i = 0; i < u->n_groups; i++)
        groups[i] = kf_arena_strdup(a, u->groups[i]);
    for (size_t i = 0; i < u->n_extra; i++) {
        const char **v = kf_arena_alloc(a, (u->extra[i].n_values + 1) * sizeof(*v));
        if (!v)
            return NULL;
        for (size_t j = 0; j < u->extra[i].n_values; j++)
            v[j] = kf_arena_strdup(a, u->extra[i].values[j]);
        extra[i] =
            (struct px_user_extra){kf_arena_strdup(a, u->extra[i].key), v, u->extra[i].n_values};
    }
    return c;
}

/* A token entry is settled (or was cached): go on with its user, or refuse. */
static void token_known(struct px_authz_wait *wt, const struct authz_entry *e)
{
    if (!e->verdict) {
        finish(wt, PX_AUTHZ_UNAUTHENTICATED, NULL);
    } else if (wt->goal == GOAL_ACCESS) {
        authorize(wt, &e->user);
    } else {
        wt->out->identity = user_copy(px_request_arena(wt->preq), &e->user);
        wt->out->user = wt->out->identity ? wt->out->identity->name : NULL;
        finish(wt, wt->out->identity ? PX_AUTHZ_ALLOW : PX_AUTHZ_ERROR, NULL);
    }
}

static void decide(struct px_authz_wait *wt, const struct px_user *user,
                   const struct px_reqinfo *info, enum wait_state state);

/* A decision is settled (or was cached): the answer, or on to the named object's review. */
static void sar_known(struct px_authz_wait *wt, const struct authz_entry *e, enum wait_state stage,
                      const struct px_user *user)
{
    if (stage == WAIT_AUTHZ_WIDE && !e->verdict)
        decide(wt, user, &wt->info, WAIT_AUTHZ);
    else
        finish(wt, e->verdict ? PX_AUTHZ_ALLOW : PX_AUTHZ_DENY, e->verdict ? NULL : e->reason);
}

/* Look up the decision on info for user, or start or join its review. */
static void decide(struct px_authz_wait *wt, const struct px_user *user,
                   const struct px_reqinfo *info, enum wait_state state)
{
    struct px_request *preq = wt->preq;
    struct codec_buf body;
    struct authz_entry *e;
    uint8_t key[AUTHZ_KEY_LEN];

    codec_buf_init(&body);
    if (px_authz_sar_body(&body, user, info, px_request_path(preq),
                          px_request_query(preq, "fieldSelector"),
                          px_request_query(preq, "labelSelector")) < 0) {
        codec_buf_free(&body);
        finish(wt, PX_AUTHZ_ERROR, NULL);
        return;
    }
    key_of(key, wt->scope, AUTHZ_SAR, body.data, body.len);
    e = authz_cache_find(&wt->az->cache[AUTHZ_SAR], key, kf_now_ms());
    if (e && e->state == AUTHZ_READY) {
        codec_buf_free(&body);
        sar_known(wt, e, state, user);
        return;
    }
    if (state == WAIT_AUTHZ_WIDE && !(wt->user = user_copy(px_request_arena(preq), user))) {
        codec_buf_free(&body);
        finish(wt, PX_AUTHZ_ERROR, NULL);
        return;
    }
    wait_set_state(wt, state);
    if (e) {
        atomic_fetch_add_explicit(&wt->az->cache[AUTHZ_SAR].coalesced, 1, memory_order_relaxed);
        kf_list_insert_tail(&e->waiters, &wt->link);
    } else {
        wait_on(wt, AUTHZ_SAR, key, &body, in_group(user, "system:nodes"));
    }
    codec_buf_free(&body);
}

/*
 * A get of a named object by a user that may get the whole resource (the same review without
 * a name) is allowed without a review of its own: RBAC, ABAC and the node authorizer never
 * deny by name what they allow without one, and a read-offload client reads thousands of
 * names. Nodes are left out: the node authorizer allows them names only.
 */
static bool wide_first(const struct px_authz_wait *wt, const struct px_user *user)
{
    const struct config *cfg = wt->az->worker->gen ? wt->az->worker->gen->cfg : NULL;

    return cfg && cfg->authorization.resource_wide_allow && wt->info.is_resource &&
           wt->info.name[0] && strcmp(wt->info.verb, "get") == 0 && !in_group(user, "system:nodes");
}

static void authorize(struct px_authz_wait *wt, const struct px_user *user)
{
    wt->out->user = kf_arena_strdup(px_request_arena(wt->preq), user->name);
    if (wide_first(wt, user)) {
        struct px_reqinfo wide = wt->info;
        wide.name[0] = '\0';
        decide(wt, user, &wide, WAIT_AUTHZ_WIDE);
    } else {
        decide(wt, user, &wt->info, WAIT_AUTHZ);
    }
}

static uint64_t sar_ttl(const struct config_authorization *cfg, bool allowed, bool node)
{
    uint64_t ttl = allowed ? cfg->allow_ttl_ms : cfg->deny_ttl_ms;
    uint64_t cap = allowed ? cfg->node_allow_ttl_ms : cfg->node_deny_ttl_ms;

    return node && cap < ttl ? cap : ttl;
}

/* A review ended: settle its entry and move every waiter on. */
static void review_done(struct authz_review *rv, enum review_outcome outcome,
                        struct kf_arena *arena)
{
    struct px_authz *az = rv->az;
    struct authz_entry *e = rv->entry;
    enum authz_kind kind = rv->kind;
    struct authz_cache *c = &az->cache[kind];
    const struct config_authorization *cfg = &az->worker->gen->cfg->authorization;
    uint32_t token_ttl = az->worker->gen->cfg->identity.token_cache_ttl_ms;
    uint64_t ttl;
    struct kf_list waiters;

    atomic_fetch_add_explicit(&az->reviews[kind][outcome], 1, memory_order_relaxed);
    review_free(rv);
    kf_list_init(&waiters);
    if (!kf_list_empty(&e->waiters)) { /* take them all: callbacks may add new ones to e */
        waiters = e->waiters;
        waiters.next->prev = waiters.prev->next = &waiters;
        kf_list_init(&e->waiters);
    }
    if (outcome == OUTCOME_ERROR) {
        if (arena)
            kf_arena_free(arena);
        authz_cache_remove(c, e);
        e = NULL;
    } else {
        if (kind == AUTHZ_TOKEN)
            ttl = outcome == OUTCOME_YES          ? token_ttl
                  : token_ttl < TOKEN_FAIL_TTL_MS ? token_ttl
                                                  : TOKEN_FAIL_TTL_MS;
        else
            ttl = sar_ttl(cfg, outcome == OUTCOME_YES, e->node_subject);
        e->verdict = outcome == OUTCOME_YES;
        e->arena = arena;
        authz_cache_ready(c, e, kf_now_ms() + ttl);
    }
    if (e)
        e->pinned = true; /* a waiter's next review may fill the cache: e must outlive them */
    while (!kf_list_empty(&waiters)) {
        struct px_authz_wait *wt = kf_container_of(waiters.next, struct px_authz_wait, link);
        kf_list_remove(&wt->link);
        if (!e)
            finish(wt, PX_AUTHZ_ERROR, NULL);
        else if (wt->state == WAIT_AUTHN)
            token_known(wt, e);
        else
            sar_known(wt, e, wt->state, wt->user);
    }
    if (e)
        e->pinned = false;
}

/* ---- authentication ------------------------------------------------------------------ */

static const char *const *cert_groups(struct kf_arena *a, const struct px_peer_identity *peer,
                                      size_t *n)
{
    const char **g = kf_arena_alloc(a, (peer->n_orgs + 1) * sizeof(*g));

    *n = 0;
    if (!g)
        return NULL;
    for (size_t i = 0; i < peer->n_orgs; i++)
        g[(*n)++] = peer->orgs[i];
    g[(*n)++] = "system:authenticated";
    return g;
}

/* The bearer token as the apiserver reads it ("Bearer" then the next word), or NULL. */
static const char *bearer_token(struct px_request *preq, size_t *len)
{
    const char *auth = px_request_header(preq, "authorization");

    if (!auth || strncasecmp(auth, "bearer ", 7) != 0)
        return NULL;
    *len = strcspn(auth + 7, " ");
    return *len ? auth + 7 : NULL;
}

/* TokenReview of the token, from the cache or upstream. */
static void authenticate_token(struct px_authz_wait *wt, const char *token, size_t len)
{
    struct authz_cache *c = &wt->az->cache[AUTHZ_TOKEN];
    uint8_t key[AUTHZ_KEY_LEN];
    struct codec_buf body;
    struct authz_entry *e;

    key_of(key, wt->scope, AUTHZ_TOKEN, token, len);
    e = authz_cache_find(c, key, kf_now_ms());
    if (e && e->state == AUTHZ_READY) {
        token_known(wt, e);
        return;
    }
    if (e) {
        atomic_fetch_add_explicit(&c->coalesced, 1, memory_order_relaxed);
        kf_list_insert_tail(&e->waiters, &wt->link);
        return;
    }
    codec_buf_init(&body);
    codec_buf_puts(&body, "{\"kind\":\"TokenReview\",\"apiVersion\":"
                          "\"authentication.k8s.io/v1\",\"spec\":{\"token\":");
    codec_json_string(&body, token, len);
    codec_buf_puts(&body, "}}");
    if (body.err)
        finish(wt, PX_AUTHZ_ERROR, NULL);
    else
        wait_on(wt, AUTHZ_TOKEN, key, &body, false);
    if (body.data)
        OPENSSL_cleanse(body.data, body.len); /* it holds the token */
    codec_buf_free(&body);
}

static void authenticate(struct px_authz_wait *wt)
{
    static const char *const anonymous_groups[] = {"system:unauthenticated"};
    const struct px_peer_identity *peer = px_request_peer(wt->preq);
    enum config_identity_mode mode = wt->az->worker->gen->cfg->identity.mode;
    struct px_user u = {.name = "system:anonymous", .uid = ""};
    const char *token;
    size_t len;

    if (peer && peer->subject_cn[0] && mode != CONFIG_IDENTITY_PASSTHROUGH) {
        u.name = peer->subject_cn;
        u.groups = cert_groups(px_request_arena(wt->preq), peer, &u.n_groups);
        if (!u.groups) {
            finish(wt, PX_AUTHZ_ERROR, NULL);
            return;
        }
    } else if ((token = bearer_token(wt->preq, &len))) {
        authenticate_token(wt, token, len);
        return;
    } else if (!wt->gen->cfg->identity.anonymous) {
        finish(wt, PX_AUTHZ_UNAUTHENTICATED, NULL); /* the apiserver's --anonymous-auth=false */
        return;
    } else {
        u.groups = anonymous_groups;
        u.n_groups = 1;
    }
    authorize(wt, &u);
}

/* ---- API ------------------------------------------------------------------------------ */

static struct px_authz_wait *wait_new(struct px_worker *w, const struct px_binding *b,
                                      struct px_request *preq, const struct px_reqinfo *info)
{
    struct px_authz *az = authz_get(w);
    struct lb_upstream *up = b && b->pool ? px_worker_upstream(w, b) : NULL;
    struct px_authz_wait *wt;

    if (!az || !up || !w->gen)
        return NULL;
    wt = kf_arena_alloc(px_request_arena(preq), sizeof(*wt));
    if (!wt)
        return NULL;
    memset(wt, 0, sizeof(*wt));
    kf_list_init(&wt->link);
    wt->state = WAIT_AUTHN;
    wt->az = az;
    wt->preq = preq;
    wt->info = *info;
    wt->pool = b->pool;
    wt->up = up;
    wt->lb = w->gen->lb;
    lb_retain(wt->lb);
    wt->gen = w->gen;
    px_generation_retain(wt->gen);
    wt->backend = b->backend;
    SHA256((const unsigned char *)b->backend->name, strlen(b->backend->name), wt->scope);
    return wt;
}

static int wait_start(struct px_worker *w, const struct px_binding *b, struct px_request *preq,
                      const struct px_reqinfo *info, enum wait_goal goal,
                      struct px_authz_decision *out, px_authz_cb cb, void *arg,
                      struct px_authz_wait **wait)
{
    struct px_authz_wait *wt = wait_new(w, b, preq, info);
    const char *token;
    size_t len;

    *wait = NULL;
    memset(out, 0, sizeof(*out));
    out->result = PX_AUTHZ_ERROR;
    if (!wt)
        return 0;
    wt->goal = goal;
    wt->out = out;
    wt->cb = cb;
    wt->arg = arg;
    wt->in_check = true;
    if (goal == GOAL_ACCESS)
        authenticate(wt);
    else if ((token = bearer_token(preq, &len)))
        authenticate_token(wt, token, len);
    else
        finish(wt, PX_AUTHZ_UNAUTHENTICATED, NULL);
    wt->in_check = false;
    if (wt->state == WAIT_DONE)
        return 0;
    *wait = wt;
    return KF_AGAIN;
}

int px_authz_check(struct px_worker *w, const struct px_binding *b, struct px_request *preq,
                   const struct px_reqinfo *info, struct px_authz_decision *out, px_authz_cb cb,
                   void *arg, struct px_authz_wait **wait)
{
    return wait_start(w, b, preq, info, GOAL_ACCESS, out, cb, arg, wait);
}

int px_authz_authenticate(struct px_worker *w, const struct px_binding *b, struct px_request *preq,
                          const struct px_reqinfo *info, struct px_authz_decision *out,
                          px_authz_cb cb, void *arg, struct px_authz_wait **wait)
{
    return wait_start(w, b, preq, info, GOAL_IDENTITY, out, cb, arg, wait);
}

bool px_authz_has_token(struct px_request *preq)
{
    size_t len;

    return bearer_token(preq, &len) != NULL;
}

void px_authz_cancel(struct px_authz_wait *wt)
{
    if (!wt || wt->state == WAIT_DONE)
        return;
    wait_set_state(wt, WAIT_DONE);
    wait_release(wt);
}

/* Orphan the waiters of every pending entry and cancel its review. */
static void settle_pending(struct authz_cache *c)
{
    for (size_t i = 0; i <= c->mask; i++)
        for (struct authz_entry *e = c->buckets[i]; e; e = e->hnext) {
            while (!kf_list_empty(&e->waiters)) {
                struct px_authz_wait *wt =
                    kf_container_of(e->waiters.next, struct px_authz_wait, link);
                wait_release(wt);
                wt->az = NULL;
            }
            if (e->state == AUTHZ_PENDING && e->review) {
                review_free(e->review);
                e->review = NULL;
            }
        }
}

void px_authz_worker_free(struct px_worker *w)
{
    struct px_authz *az = atomic_exchange(&w->authz, NULL);

    if (!az)
        return;
    for (int k = 0; k < 2; k++) {
        settle_pending(&az->cache[k]);
        authz_cache_free(&az->cache[k]);
    }
    free(az);
}

/* ---- metrics ------------------------------------------------------------------------- */

static const char *const kind_label[] = {"tokenreview", "sar"};
static const char *const outcome_label[2][3] = {
    {"authenticated", "unauthenticated", "error"},
    {"allowed", "denied", "error"},
};

void px_authz_metrics_write(struct px_daemon *d, struct evbuffer *out)
{
    uint64_t reviews[2][3] = {{0}}, cache[2][5] = {{0}};
    static const char *const cname[] = {"hits", "misses", "evictions", "coalesced"};

    for (unsigned i = 0; i < d->n_workers; i++)
        for (int k = 0; k < 2; k++) {
            struct px_authz *az = atomic_load_explicit(&d->workers[i].authz, memory_order_acquire);
            struct px_authz_stats s;
            px_authz_get_stats(&d->workers[i], k, &s);
            for (int o = 0; az && o < 3; o++)
                reviews[k][o] += atomic_load(&az->reviews[k][o]);
            cache[k][0] += s.hits, cache[k][1] += s.misses, cache[k][2] += s.evictions;
            cache[k][3] += s.coalesced, cache[k][4] += s.entries;
        }
    evbuffer_add_printf(out, "# HELP kfront_authz_requests_total Reviews sent upstream to "
                             "authenticate clients and authorize cached reads, by result.\n"
                             "# TYPE kfront_authz_requests_total counter\n");
    for (int k = 0; k < 2; k++)
        for (int o = 0; o < 3; o++)
            evbuffer_add_printf(
                out, "kfront_authz_requests_total{kind=\"%s\",result=\"%s\"} %" PRIu64 "\n",
                kind_label[k], outcome_label[k][o], reviews[k][o]);
    for (int c = 0; c < 4; c++) {
        evbuffer_add_printf(out,
                            "# HELP kfront_authz_cache_%s_total Review cache %s.\n"
                            "# TYPE kfront_authz_cache_%s_total counter\n",
                            cname[c], cname[c], cname[c]);
        for (int k = 0; k < 2; k++)
            evbuffer_add_printf(out, "kfront_authz_cache_%s_total{kind=\"%s\"} %" PRIu64 "\n",
                                cname[c], kind_label[k], cache[k][c]);
    }
    evbuffer_add_printf(out, "# HELP kfront_authz_cache_entries Cached reviews.\n"
                             "# TYPE kfront_authz_cache_entries gauge\n");
    for (int k = 0; k < 2; k++)
        evbuffer_add_printf(out, "kfront_authz_cache_entries{kind=\"%s\"} %" PRIu64 "\n",
                            kind_label[k], cache[k][4]);
}
