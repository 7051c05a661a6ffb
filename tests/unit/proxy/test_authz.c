/*
 * px_authz_check end to end in one loop: a client (lb upstream pool) asks a
 * front px_server whose handler runs the check, against a fake apiserver
 * px_server that answers TokenReview and SubjectAccessReview (or fails in the
 * ways a real one can). Counts what reached the fake apiserver to prove
 * caching and coalescing.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "cache/codec/codec.h"
#include "proxy/authz_internal.h"
#include "proxy/l7.h"

#define FIXTURES KF_FIXTURES_DIR "/recordings/"

enum fake_mode { FAKE_OK, FAKE_500, FAKE_GARBAGE, FAKE_HOLD };

static struct {
    struct event_base *base;
    struct px_server *api_srv, *front_srv;
    struct px_listener *api_l, *front_l;
    struct config *cfg;
    struct lb *lb;
    struct px_generation gen;
    struct px_binding binding;
    struct px_worker w;
    struct lb_upstream *client;
    struct lb_pool *front_pool;
    /* the fake apiserver */
    enum fake_mode mode;
    int n_tokenreviews, n_sars;
    char last_sar[4096], last_headers[1024];
    struct px_request *held;
} T;

/* ---- the fake apiserver ---------------------------------------------------------------- */

static void token_answer(struct px_request *preq, const char *body)
{
    char out[512];
    const char *user = strstr(body, "\"good-alice\"")     ? "alice"
                       : strstr(body, "\"node-1-token\"") ? "system:node:node-1"
                                                          : NULL;
    int n;

    if (user)
        n = snprintf(out, sizeof(out),
                     "{\"kind\":\"TokenReview\",\"apiVersion\":\"authentication.k8s.io/v1\","
                     "\"status\":{\"authenticated\":true,\"user\":{\"username\":\"%s\","
                     "\"uid\":\"u-1\",\"groups\":[\"%s\",\"system:authenticated\"],"
                     "\"extra\":{\"k\":[\"v\"]}}}}",
                     user, user[0] == 'a' ? "dev" : "system:nodes");
    else
        n = snprintf(out, sizeof(out),
                     "{\"kind\":\"TokenReview\",\"apiVersion\":\"authentication.k8s.io/v1\","
                     "\"status\":{\"user\":{},\"error\":\"invalid bearer token\"}}");
    px_response_simple(preq, 201, "application/json", out, (size_t)n);
}

/*
 * alice may get anything but secrets, and secret s1 only (a rule with resourceNames); the
 * node may read pods and secret sec1 (with a reason when not).
 */
static void sar_answer(struct px_request *preq, const char *body)
{
    char out[512];
    bool node = strstr(body, "\"user\":\"system:node:node-1\"") != NULL;
    bool secret = strstr(body, "\"resource\":\"secrets\"") != NULL;
    bool allowed = (strstr(body, "\"user\":\"alice\"") && strstr(body, "\"verb\":\"get\"") &&
                    (!secret || strstr(body, "\"name\":\"s1\""))) ||
                   (node && (!secret || strstr(body, "\"name\":\"sec1\"")));
    const char *reason = node && !allowed ? ",\"reason\":\"no relationship found between node "
                                            "'node-1' and this object\""
                                          : "";
    int n = snprintf(out, sizeof(out),
                     "{\"kind\":\"SubjectAccessReview\",\"apiVersion\":\"authorization.k8s.io/"
                     "v1\",\"status\":{\"allowed\":%s%s}}",
                     allowed ? "true" : "false", reason);

    px_response_simple(preq, 201, "application/json", out, (size_t)n);
}

static void api_handle(struct px_request *preq, void *arg)
{
    const char *path = px_request_path(preq), *name, *value;
    const char *body = px_request_body(preq, &(size_t){0});
    bool tr = strstr(path, "tokenreviews") != NULL;
    size_t o = 0;

    (void)arg;
    T.n_tokenreviews += tr;
    T.n_sars += !tr;
    if (!tr)
        snprintf(T.last_sar, sizeof(T.last_sar), "%s", body);
    for (size_t i = 0; px_request_header_at(preq, i, &name, &value); i++)
        o += (size_t)snprintf(T.last_headers + o, sizeof(T.last_headers) - o, "%s: %s\n", name,
                              value);
    if (T.mode == FAKE_HOLD && !T.held)
        T.held = preq;
    else if (T.mode == FAKE_HOLD)
        px_response_simple(preq, 503, NULL, "", 0);
    else if (T.mode == FAKE_500)
        px_response_simple(preq, 500, "application/json", "{}", 2);
    else if (T.mode == FAKE_GARBAGE)
        px_response_simple(preq, 201, "application/json", "{\"status\":[", 11);
    else if (tr)
        token_answer(preq, body);
    else
        sar_answer(preq, body);
}

/* ---- the front: what the cache code will do ------------------------------------------------ */

struct front_req {
    struct px_request *preq;
    struct px_reqinfo info;
    struct px_authz_decision dec;
    struct px_authz_wait *wait;
};

static void respond(struct front_req *fr)
{
    char text[256];
    int n;

    if (fr->dec.result == PX_AUTHZ_DENY || fr->dec.result == PX_AUTHZ_UNAUTHENTICATED) {
        px_authz_reply(fr->preq, &fr->info, &fr->dec);
        return;
    }
    n = snprintf(text, sizeof(text), "%s %s", fr->dec.result == PX_AUTHZ_ALLOW ? "allow" : "error",
                 fr->dec.user ? fr->dec.user : "-");
    px_response_simple(fr->preq, 200, "text/plain", text, (size_t)n);
}

static void on_decided(enum px_authz_result res, void *arg)
{
    struct front_req *fr = arg;

    cr_assert_eq(res, fr->dec.result);
    px_request_on_close(fr->preq, NULL, NULL);
    respond(fr);
}

static void on_front_close(struct px_request *preq, void *arg)
{
    struct front_req *fr = arg;

    px_authz_cancel(fr->wait);
    px_response_end(preq);
}

static void front_handle(struct px_request *preq, void *arg)
{
    struct front_req *fr = kf_arena_alloc(px_request_arena(preq), sizeof(*fr));

    (void)arg;
    fr->preq = preq;
    px_reqinfo_parse(px_request_method(preq), px_request_path(preq),
                     px_reqinfo_watch_param(px_request_query(preq, "watch")), &fr->info);
    px_reqinfo_field_selector(&fr->info, px_request_query(preq, "fieldSelector"));
    if (px_authz_check(&T.w, &T.binding, preq, &fr->info, &fr->dec, on_decided, fr, &fr->wait) ==
        KF_AGAIN) {
        px_request_on_close(preq, on_front_close, fr);
        return;
    }
    respond(fr);
}

/* ---- the client ------------------------------------------------------------------------- */

struct creq {
    struct lb_ureq *u;
    int status, error;
    bool ended;
    char ctype[64];
    char body[4096];
    size_t len;
};

static void c_headers(struct lb_ureq *u, int status, const struct lb_uhdr *h, size_t n, void *arg)
{
    struct creq *r = arg;

    (void)u;
    r->status = status;
    for (size_t i = 0; i < n; i++)
        if (h[i].name_len == 12 && strncasecmp(h[i].name, "content-type", 12) == 0)
            snprintf(r->ctype, sizeof(r->ctype), "%.*s", (int)h[i].value_len, h[i].value);
}

static void c_data(struct lb_ureq *u, const uint8_t *data, size_t len, void *arg)
{
    struct creq *r = arg;

    cr_assert_lt(r->len + len, sizeof(r->body));
    memcpy(r->body + r->len, data, len);
    r->len += len;
    lb_ureq_consume(u, len);
}

static void c_end(struct lb_ureq *u, int error, void *arg)
{
    struct creq *r = arg;

    (void)u;
    r->error = error;
    r->ended = true;
}

static const struct lb_ureq_callbacks client_cbs = {c_headers, c_data, c_end};

/* GET path with "Authorization: Bearer token" (if any) and optional UA / Accept. */
static void c_start(struct creq *r, const char *path, const char *token, const char *ua,
                    const char *accept)
{
    char auth[128];
    struct lb_uhdr h[3];
    size_t n = 0;

    memset(r, 0, sizeof(*r));
    if (token) {
        snprintf(auth, sizeof(auth), "Bearer %s", token);
        h[n++] = (struct lb_uhdr){"Authorization", 13, auth, strlen(auth)};
    }
    if (ua)
        h[n++] = (struct lb_uhdr){"User-Agent", 10, ua, strlen(ua)};
    if (accept)
        h[n++] = (struct lb_uhdr){"Accept", 6, accept, strlen(accept)};
    struct lb_ureq_spec spec = {.method = "GET", .path = path, .headers = h, .n_headers = n};
    cr_assert_eq(lb_ureq_start(T.client, T.front_pool, &spec, &client_cbs, r, &r->u), 0);
}

static void run_ms(int ms)
{
    struct timeval tv = {0, ms * 1000};

    event_base_loopexit(T.base, &tv);
    event_base_dispatch(T.base);
}

static void c_wait(struct creq *r)
{
    for (uint64_t end = kf_now_ms() + 3000; !r->ended && kf_now_ms() < end;)
        run_ms(5);
    cr_assert(r->ended, "request did not end");
    cr_assert_eq(r->error, 0);
    r->body[r->len] = '\0';
}

static struct creq get(const char *path, const char *token)
{
    struct creq r;

    c_start(&r, path, token, NULL, NULL);
    c_wait(&r);
    return r;
}

/* ---- set-up ---------------------------------------------------------------------------- */

static void start(const char *authorization)
{
    char yaml[1024];
    struct px_server_config api = {.handler = api_handle}, front = {.handler = front_handle};
    struct lb_upstream_config ucfg = {0};

    memset(&T, 0, sizeof(T));
    T.base = event_base_new();
    T.api_srv = px_server_new(&api);
    T.front_srv = px_server_new(&front);
    T.api_l = px_listen(T.base, T.api_srv, "127.0.0.1:0");
    T.front_l = px_listen(T.base, T.front_srv, "127.0.0.1:0");
    cr_assert(T.api_l && T.front_l);
    snprintf(yaml, sizeof(yaml),
             "apiVersion: kfront.io/v1alpha1\nkind: KfrontConfiguration\n%s\n"
             "frontends: [{name: fe, listen: \"127.0.0.1:1\", mode: tcp, backend: api}]\n"
             "backends:\n"
             "  - {name: api, servers: [{name: s, address: \"127.0.0.1:%u\"}]}\n"
             "  - {name: front, servers: [{name: s, address: \"127.0.0.1:%u\"}]}\n",
             authorization, px_listener_port(T.api_l), px_listener_port(T.front_l));
    cr_assert_eq(config_parse_yaml("t.yaml", yaml, strlen(yaml), &T.cfg, NULL), 0, "%s", yaml);
    T.lb = lb_new(T.cfg, NULL, NULL);
    cr_assert_not_null(T.lb);
    T.gen.cfg = T.cfg;
    T.gen.lb = T.lb;
    atomic_init(&T.gen.refs, 1); /* the test owns it: waits only borrow it */
    T.binding.pool = lb_find_pool(T.lb, "api");
    T.binding.backend = &T.cfg->backends[0];
    T.w.base = T.base;
    T.w.gen = &T.gen;
    T.front_pool = lb_find_pool(T.lb, "front");
    T.client = lb_upstream_new(T.base, &ucfg);
    cr_assert(T.binding.pool && T.front_pool && T.client);
}

static void stop(void)
{
    if (T.held)
        px_response_simple(T.held, 503, NULL, "", 0);
    px_worker_upstreams_free(&T.w);
    lb_upstream_free(T.client);
    px_listener_free(T.api_l);
    px_listener_free(T.front_l);
    px_server_free(T.api_srv);
    px_server_free(T.front_srv);
    lb_release(T.lb);
    config_free(T.cfg);
    event_base_free(T.base);
}

/* the default: reviews by name, one per object (resourceWideAllow: see authz_wide) */
static void setup_default(void)
{
    start("");
}

TestSuite(authz, .init = setup_default, .fini = stop);

static void setup_wide(void)
{
    start("authorization: {resourceWideAllow: true}");
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = calloc(1, 65536);

    cr_assert(f && buf, "%s", path);
    *len = fread(buf, 1, 65535, f);
    fclose(f);
    return buf;
}

static struct px_authz_stats stats(int kind)
{
    struct px_authz_stats s;

    px_authz_get_stats(&T.w, kind, &s);
    return s;
}

/* ---- end to end ------------------------------------------------------------------------- */

Test(authz, token_then_decision_then_cached)
{
    struct creq r = get("/api/v1/namespaces/demo/pods/p1", "good-alice");

    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "allow alice");
    cr_assert_eq(T.n_tokenreviews, 1);
    cr_assert_eq(T.n_sars, 1);
    /* kfront names itself in front-proxy mode, and the raw token never becomes a key */
    cr_assert(strstr(T.last_headers, "x-remote-user: system:kfront\n"), "%s", T.last_headers);
    cr_assert(strstr(T.last_sar, "\"resourceAttributes\":{\"namespace\":\"demo\",\"verb\":\"get\","
                                 "\"version\":\"v1\",\"resource\":\"pods\",\"name\":\"p1\"}"),
              "%s", T.last_sar);
    cr_assert(strstr(T.last_sar, "\"user\":\"alice\",\"groups\":[\"dev\",\"system:authenticated\"],"
                                 "\"extra\":{\"k\":[\"v\"]},\"uid\":\"u-1\""),
              "%s", T.last_sar);

    r = get("/api/v1/namespaces/demo/pods/p1", "good-alice");
    cr_assert_str_eq(r.body, "allow alice");
    cr_assert_eq(T.n_tokenreviews, 1, "token review cached");
    cr_assert_eq(T.n_sars, 1, "decision cached");
    cr_assert_eq(stats(0).hits, 1);
    cr_assert_eq(stats(1).hits, 1);
}

Test(authz, denial_is_the_apiservers_403_byte_for_byte)
{
    struct creq r;
    size_t len;
    char *want = slurp(FIXTURES "forbidden-alice-list-pods.body.bin", &len);

    c_start(&r, "/api/v1/namespaces/demo/pods", "good-alice", "curl/8.5.0", "application/json");
    c_wait(&r);
    cr_assert_eq(r.status, 403);
    cr_assert_str_eq(r.ctype, "application/json");
    cr_assert_eq(r.len, len, "%s", r.body);
    cr_assert_eq(memcmp(r.body, want, len), 0, "%s", r.body);
    free(want);

    /* client-go gets the compact form, the same Status */
    r = get("/api/v1/namespaces/demo/pods", "good-alice");
    cr_assert_str_eq(r.body,
                     "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":"
                     "\"Failure\",\"message\":\"pods is forbidden: User \\\"alice\\\" cannot list "
                     "resource \\\"pods\\\" in API group \\\"\\\" in the namespace \\\"demo\\\"\","
                     "\"reason\":\"Forbidden\",\"details\":{\"kind\":\"pods\"},\"code\":403}\n");
    cr_assert_eq(T.n_sars, 1, "the denial was cached");
}

Test(authz, bad_token_is_the_apiservers_401)
{
    struct creq r;
    size_t len;
    char *want = slurp(FIXTURES "bearer-bad-token.body.bin", &len);

    c_start(&r, "/api/v1/namespaces/demo/pods", "not-a-valid-token", "curl/8.5.0", NULL);
    c_wait(&r);
    cr_assert_eq(r.status, 401);
    cr_assert_eq(r.len, len, "%s", r.body);
    cr_assert_eq(memcmp(r.body, want, len), 0, "%s", r.body);
    cr_assert_eq(T.n_sars, 0);
    free(want);

    /* a kubelet asks for protobuf: the Status comes enveloped */
    c_start(&r, "/api/v1/pods", "not-a-valid-token", NULL,
            "application/vnd.kubernetes.protobuf, */*");
    c_wait(&r);
    cr_assert_eq(r.status, 401);
    cr_assert_str_eq(r.ctype, "application/vnd.kubernetes.protobuf");
    cr_assert_eq(memcmp(r.body, "k8s\0", 4), 0);
    cr_assert_eq(T.n_tokenreviews, 1, "the rejection was cached");
}

Test(authz, anonymous_without_credentials)
{
    struct creq r = get("/api/v1/namespaces/demo/pods", NULL);

    cr_assert_eq(r.status, 403);
    cr_assert(strstr(r.body, "User \\\"system:anonymous\\\" cannot list"), "%s", r.body);
    cr_assert_eq(T.n_tokenreviews, 0);
    cr_assert(strstr(T.last_sar, "\"user\":\"system:anonymous\",\"groups\":"
                                 "[\"system:unauthenticated\"]"),
              "%s", T.last_sar);
}

Test(authz, concurrent_identical_checks_share_one_review)
{
    struct creq r[3];

    for (int i = 0; i < 3; i++)
        c_start(&r[i], "/api/v1/namespaces/demo/pods/p1", "good-alice", NULL, NULL);
    for (int i = 0; i < 3; i++) {
        c_wait(&r[i]);
        cr_assert_str_eq(r[i].body, "allow alice");
    }
    cr_assert_eq(T.n_tokenreviews, 1);
    cr_assert_eq(T.n_sars, 1);
    cr_assert_eq(stats(0).coalesced, 2);
    cr_assert_eq(stats(1).coalesced, 2);
}

Test(authz, node_requests_carry_selectors_and_names)
{
    struct creq r = get("/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-1&labelSelector=app%20in"
                        "%20(b,a),!tier,x%3E1&watch=1",
                        "node-1-token");

    cr_assert_str_eq(r.body, "allow system:node:node-1");
    cr_assert(strstr(T.last_sar,
                     "\"verb\":\"watch\",\"version\":\"v1\",\"resource\":\"pods\","
                     "\"fieldSelector\":{\"requirements\":[{\"key\":\"spec.nodeName\","
                     "\"operator\":\"In\",\"values\":[\"node-1\"]}]},\"labelSelector\":{"
                     "\"requirements\":[{\"key\":\"app\",\"operator\":\"In\",\"values\":"
                     "[\"a\",\"b\"]},{\"key\":\"tier\",\"operator\":\"DoesNotExist\"}]}}"),
              "%s", T.last_sar);

    r = get("/api/v1/namespaces/demo/secrets?fieldSelector=metadata.name%3Dsec1", "node-1-token");
    cr_assert_str_eq(r.body, "allow system:node:node-1");
    cr_assert(strstr(T.last_sar, "\"name\":\"sec1\""), "%s", T.last_sar);

    r = get("/api/v1/namespaces/demo/secrets?fieldSelector=metadata.name%3Dsec2", "node-1-token");
    cr_assert_eq(r.status, 403);
    cr_assert(strstr(r.body, "secrets \\\"sec2\\\" is forbidden: User \\\"system:node:node-1\\\" "
                             "cannot list resource \\\"secrets\\\" in API group \\\"\\\" in the "
                             "namespace \\\"demo\\\": no relationship found between node "
                             "'node-1' and this object\""),
              "%s", r.body);
    cr_assert(strstr(r.body, "\"details\":{\"name\":\"sec2\",\"kind\":\"secrets\"}"), "%s", r.body);
    cr_assert_eq(T.n_tokenreviews, 1);
}

Test(authz, upstream_failures_are_errors_and_not_cached)
{
    enum fake_mode modes[] = {FAKE_500, FAKE_GARBAGE};

    for (size_t i = 0; i < KF_ARRAY_SIZE(modes); i++) {
        T.mode = modes[i];
        cr_assert_str_eq(get("/api/v1/namespaces/demo/pods/p1", "good-alice").body, "error -");
        cr_assert_str_eq(get("/api/v1/namespaces/demo/pods/p1", NULL).body,
                         "error system:anonymous");
    }
    cr_assert_eq(T.n_tokenreviews, 2, "failed reviews are asked again");
    cr_assert_eq(T.n_sars, 2);
    T.mode = FAKE_OK;
    cr_assert_str_eq(get("/api/v1/namespaces/demo/pods/p1", "good-alice").body, "allow alice");
}

Test(authz, review_timeout_is_an_error)
{
    T.mode = FAKE_HOLD;
    px_authz_set_review_timeout(&T.w, 100);
    uint64_t t0 = kf_now_ms();
    cr_assert_str_eq(get("/api/v1/namespaces/demo/pods/p1", NULL).body, "error system:anonymous");
    cr_assert_geq(kf_now_ms() - t0, 90);
    cr_assert_eq(stats(1).entries, 0);
}

/* An anonymous GET whose first review the fake apiserver holds; the client then leaves. */
static void client_leaves_during_the_first_review(const char *path)
{
    struct creq r;

    T.mode = FAKE_HOLD;
    c_start(&r, path, NULL, NULL, NULL);
    for (int i = 0; i < 100 && !T.held; i++)
        run_ms(5);
    cr_assert_not_null(T.held);
    lb_ureq_cancel(r.u); /* the front's on_close cancels the wait */
    run_ms(20);
}

Test(authz, client_gone_while_waiting)
{
    client_leaves_during_the_first_review("/api/v1/namespaces/demo/pods/p1");
    sar_answer(T.held, T.last_sar);
    T.held = NULL;
    run_ms(20);
    cr_assert_eq(stats(1).entries, 1, "the answer is still cached");
    T.mode = FAKE_OK;
    cr_assert_eq(get("/api/v1/namespaces/demo/pods/p1", NULL).status, 403);
    cr_assert_eq(T.n_sars, 1);
}

TestSuite(authz_cfg, .fini = stop);

Test(authz_cfg, decisions_expire)
{
    start("authorization: {allowTTL: 100ms, denyTTL: 50ms}\nidentity: {tokenCacheTTL: 150ms}");
    get("/api/v1/namespaces/demo/pods/p1", "good-alice");
    get("/api/v1/namespaces/demo/pods", "good-alice");
    cr_assert_eq(T.n_sars, 2);
    run_ms(70); /* the denial has expired, the rest not */
    get("/api/v1/namespaces/demo/pods/p1", "good-alice");
    get("/api/v1/namespaces/demo/pods", "good-alice");
    cr_assert_eq(T.n_sars, 3);
    cr_assert_eq(T.n_tokenreviews, 1);
    run_ms(100);
    get("/api/v1/namespaces/demo/pods/p1", "good-alice");
    cr_assert_eq(T.n_sars, 4);
    cr_assert_eq(T.n_tokenreviews, 2);
}

Test(authz_cfg, node_decisions_follow_the_node_ttls)
{
    const char *pods = "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-1";
    const char *sec2 = "/api/v1/namespaces/demo/secrets?fieldSelector=metadata.name%3Dsec2";

    start("authorization: {allowTTL: 1h, denyTTL: 1h, nodeAllowTTL: 120ms, nodeDenyTTL: 40ms}");
    cr_assert_eq(get(pods, "node-1-token").status, 200);
    cr_assert_eq(get(sec2, "node-1-token").status, 403);
    get("/api/v1/namespaces/demo/pods", "good-alice");
    cr_assert_eq(T.n_sars, 3);
    run_ms(60); /* the node's denial has expired; its allow and alice's decision have not */
    cr_assert_eq(get(sec2, "node-1-token").status, 403);
    cr_assert_eq(get(pods, "node-1-token").status, 200);
    get("/api/v1/namespaces/demo/pods", "good-alice");
    cr_assert_eq(T.n_sars, 4);
    run_ms(100); /* now the node's allow too; alice's lasts an hour */
    cr_assert_eq(get(pods, "node-1-token").status, 200);
    get("/api/v1/namespaces/demo/pods", "good-alice");
    cr_assert_eq(T.n_sars, 5);
}

Test(authz_cfg, cache_is_bounded_with_lru_eviction)
{
    start("authorization: {cacheSize: 2, resourceWideAllow: false}");
    get("/api/v1/namespaces/demo/pods/a", "good-alice");
    get("/api/v1/namespaces/demo/pods/b", "good-alice");
    get("/api/v1/namespaces/demo/pods/a", "good-alice"); /* a is now the most recent */
    get("/api/v1/namespaces/demo/pods/c", "good-alice"); /* evicts b */
    cr_assert_eq(T.n_sars, 3);
    cr_assert_eq(stats(1).evictions, 1);
    cr_assert_eq(stats(1).entries, 2);
    get("/api/v1/namespaces/demo/pods/a", "good-alice");
    cr_assert_eq(T.n_sars, 3);
    get("/api/v1/namespaces/demo/pods/b", "good-alice");
    cr_assert_eq(T.n_sars, 4);
}

/* ---- parsers and bodies ---------------------------------------------------------------- */

/* ---- resourceWideAllow: a get first asks about the whole resource ---------------------- */

TestSuite(authz_wide, .init = setup_wide, .fini = stop);

Test(authz_wide, one_review_answers_every_name)
{
    for (int i = 0; i < 50; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/api/v1/namespaces/demo/configmaps/cm-%d", i);
        cr_assert_str_eq(get(path, "good-alice").body, "allow alice");
    }
    cr_assert_eq(T.n_sars, 1);
    cr_assert(strstr(T.last_sar, "\"resourceAttributes\":{\"namespace\":\"demo\",\"verb\":\"get\","
                                 "\"version\":\"v1\",\"resource\":\"configmaps\"}"),
              "%s", T.last_sar);
    /* another namespace is another question */
    get("/api/v1/namespaces/other/configmaps/cm-1", "good-alice");
    cr_assert_eq(T.n_sars, 2);
}

Test(authz_wide, a_wide_denial_falls_back_to_the_name)
{
    struct creq r = get("/api/v1/namespaces/demo/secrets/s1", "good-alice");

    cr_assert_str_eq(r.body, "allow alice");
    cr_assert_eq(T.n_sars, 2, "the whole resource, then the name");
    cr_assert(strstr(T.last_sar, "\"name\":\"s1\""), "%s", T.last_sar);
    r = get("/api/v1/namespaces/demo/secrets/s2", "good-alice");
    cr_assert_eq(r.status, 403);
    cr_assert(strstr(r.body, "secrets \\\"s2\\\" is forbidden"), "%s", r.body);
    cr_assert_eq(T.n_sars, 3, "the wide denial was cached: one review by name");
    get("/api/v1/namespaces/demo/secrets/s1", "good-alice");
    cr_assert_eq(T.n_sars, 3);
}

Test(authz_wide, concurrent_gets_share_the_wide_review)
{
    struct creq r[8];

    for (int i = 0; i < 8; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/api/v1/namespaces/demo/pods/p%d", i);
        c_start(&r[i], path, "good-alice", NULL, NULL);
    }
    for (int i = 0; i < 8; i++) {
        c_wait(&r[i]);
        cr_assert_str_eq(r[i].body, "allow alice");
    }
    cr_assert_eq(T.n_sars, 1);
}

Test(authz_wide, nodes_and_other_verbs_are_reviewed_as_asked)
{
    cr_assert_str_eq(get("/api/v1/namespaces/demo/secrets/sec1", "node-1-token").body,
                     "allow system:node:node-1");
    cr_assert_eq(T.n_sars, 1);
    cr_assert(strstr(T.last_sar, "\"name\":\"sec1\""), "%s", T.last_sar);
    cr_assert_eq(get("/api/v1/namespaces/demo/secrets/sec2", "node-1-token").status, 403);
    cr_assert_eq(T.n_sars, 2);
    /* a LIST has no name: one review, as before */
    get("/api/v1/namespaces/demo/pods", "good-alice");
    cr_assert_eq(T.n_sars, 3);
}

/* A waiter's named review fills a one-entry cache while the wide denial's other waiters are
 * still being told: the denial must outlive them (it was read after being evicted). */
Test(authz_wide, a_full_cache_keeps_the_decision_its_waiters_are_told)
{
    struct creq r[3];

    stop();
    start("authorization: {cacheSize: 1, resourceWideAllow: true}");
    get("/api/v1/namespaces/demo/pods", "good-alice"); /* the token review is cached */
    for (int i = 0; i < 3; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/api/v1/namespaces/demo/secrets/s%d", i + 2);
        c_start(&r[i], path, "good-alice", NULL, NULL);
    }
    /* denied, or an error (kfront then forwards): never allowed */
    for (int i = 0; i < 3; i++) {
        c_wait(&r[i]);
        cr_assert(r[i].status == 403 || strncmp(r[i].body, "error", 5) == 0, "%d: %d %s", i,
                  r[i].status, r[i].body);
    }
}

Test(authz_wide, a_client_gone_during_the_wide_review)
{
    client_leaves_during_the_first_review("/api/v1/namespaces/demo/pods/p1");
    cr_assert_null(strstr(T.last_sar, "\"name\""), "the wide review: %s", T.last_sar);
    sar_answer(T.held, T.last_sar); /* system:anonymous: denied */
    T.held = NULL;
    T.mode = FAKE_OK;
    run_ms(20);
    cr_assert_eq(get("/api/v1/namespaces/demo/pods/p1", NULL).status, 403);
    cr_assert_eq(T.n_sars, 2, "the wide denial was cached; then the name");
}

Test(authz_parse, malformed_answers_are_errors)
{
    static const char *const bad_tr[] = {
        "",
        "[]",
        "{\"status\":",
        "{\"kind\":\"SubjectAccessReview\",\"status\":{\"authenticated\":true}}",
        "{\"status\":[]}",
        "{\"status\":{\"authenticated\":\"yes\"}}",
        "{\"status\":{\"authenticated\":true}}",
        "{\"status\":{\"authenticated\":true,\"user\":{}}}",
        "{\"status\":{\"authenticated\":true,\"user\":{\"username\":7}}}",
        "{\"status\":{\"authenticated\":true,\"user\":{\"username\":\"a\",\"groups\":\"g\"}}}",
        "{\"status\":{\"authenticated\":true,\"user\":{\"username\":\"a\",\"groups\":[1]}}}",
        "{\"status\":{\"authenticated\":true,\"user\":{\"username\":\"a\",\"extra\":{\"k\":\"v\"}}}"
        "}",
        "{\"status\":{\"authenticated\":true,\"user\":{\"username\":\"a\\u12\"}}}",
        "{\"status\":{\"authenticated\":true,\"user\":{\"username\":\"a\\q\"}}}",
        /* identities that header values cannot carry: refused, never forwarded */
        "{\"status\":{\"authenticated\":true,\"user\":{\"username\":\"bob\\r\\nX-Remote-Group: "
        "system:masters\"}}}",
        "{\"status\":{\"authenticated\":true,\"user\":{\"username\":\"bob\",\"groups\":[\"a\\nb\"]}"
        "}}",
        "{\"status\":{\"authenticated\":true,\"user\":{\"username\":\"bob\",\"uid\":\"\\u0007\"}}}",
        "{\"status\":{\"authenticated\":true,\"user\":{\"username\":\"bob\",\"extra\":{\"k\\r\":["
        "\"v\"]}}}"
        "}",
        "{\"status\":{\"authenticated\":true,\"user\":{\"username\":\"bob\",\"extra\":{\"k\":["
        "\"v\\n\"]}}"
        "}}",
    };
    static const char *const bad_sar[] = {
        "{}",
        "{\"status\":{}}",
        "{\"status\":{\"allowed\":null}}",
        "{\"status\":{\"allowed\":false,\"evaluationError\":\"webhook down\"}}",
        "{\"status\":{\"allowed\":false,\"reason\":3}}",
        "{\"kind\":\"TokenReview\",\"status\":{\"allowed\":true}}",
        "{\"status\":{\"allowed\":true",
    };
    struct kf_arena *a = kf_arena_new(1024);
    struct px_user u;
    const char *reason;

    for (size_t i = 0; i < KF_ARRAY_SIZE(bad_tr); i++)
        cr_expect_eq(px_authz_parse_token_review(bad_tr[i], strlen(bad_tr[i]), a, &u), -EBADMSG,
                     "%s", bad_tr[i]);
    for (size_t i = 0; i < KF_ARRAY_SIZE(bad_sar); i++)
        cr_expect_eq(px_authz_parse_sar(bad_sar[i], strlen(bad_sar[i]), a, &reason), -EBADMSG, "%s",
                     bad_sar[i]);
    kf_arena_free(a);
}

Test(authz_parse, answers_as_the_apiserver_writes_them)
{
    size_t len;
    char *tr = slurp(FIXTURES "tokenreview-static-token.body.bin", &len);
    char *sar = NULL;
    struct kf_arena *a = kf_arena_new(1024);
    struct px_user u;
    const char *reason;
    static const char esc[] = "{\"status\":{\"authenticated\":true,\"user\":{\"username\":"
                              "\"\\u00e9\\ud83d\\ude00\\/\",\"groups\":null}}}";

    cr_assert_eq(px_authz_parse_token_review(tr, len, a, &u), 1);
    cr_expect_str_eq(u.name, "tokenuser");
    cr_expect_geq(u.n_groups, 1);
    free(tr);
    tr = slurp(FIXTURES "tokenreview-bad-token.body.bin", &len);
    cr_expect_eq(px_authz_parse_token_review(tr, len, a, &u), 0);
    free(tr);
    cr_assert_eq(px_authz_parse_token_review(esc, strlen(esc), a, &u), 1);
    cr_expect_str_eq(u.name, "\xc3\xa9\xf0\x9f\x98\x80/");
    sar = slurp(FIXTURES "sar-denied-alice-list-pods.body.bin", &len);
    cr_expect_eq(px_authz_parse_sar(sar, len, a, &reason), 0);
    cr_expect_null(reason);
    free(sar);
    sar = slurp(FIXTURES "sar-allowed-admin-list-pods.body.bin", &len);
    cr_expect_eq(px_authz_parse_sar(sar, len, a, &reason), 1);
    free(sar);
    sar = slurp(FIXTURES "sar-node-get-secret-unrelated.body.bin", &len);
    cr_expect_eq(px_authz_parse_sar(sar, len, a, &reason), 0);
    cr_expect(reason && strstr(reason, "no relationship found"), "%s", reason);
    free(sar);
    kf_arena_free(a);
}

static const char *text_of(struct codec_buf *b)
{
    static char text[2048];

    snprintf(text, sizeof(text), "%.*s", (int)b->len, b->data);
    return text;
}

Test(authz_status, bodies)
{
    struct px_reqinfo info;
    struct px_authz_decision d = {.result = PX_AUTHZ_DENY, .user = "u", .reason = "r"};
    struct codec_buf b;

    codec_buf_init(&b);
    px_reqinfo_parse("GET", "/apis/apps/v1/namespaces/ns/deployments/d/scale", false, &info);
    cr_assert_eq(px_authz_status_body(&b, &info, &d, false, false), 403);
    cr_assert_str_eq(text_of(&b),
                     "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":"
                     "\"Failure\",\"message\":\"deployments.apps \\\"d\\\" is forbidden: User "
                     "\\\"u\\\" cannot get resource \\\"deployments/scale\\\" in API group "
                     "\\\"apps\\\" in the namespace \\\"ns\\\": r\",\"reason\":\"Forbidden\","
                     "\"details\":{\"name\":\"d\",\"group\":\"apps\",\"kind\":\"deployments\"},"
                     "\"code\":403}\n");
    codec_buf_reset(&b);
    px_reqinfo_parse("GET", "/api/v1/nodes", false, &info);
    d.reason = NULL;
    cr_assert_eq(px_authz_status_body(&b, &info, &d, false, false), 403);
    cr_assert(strstr(text_of(&b), "nodes is forbidden: User \\\"u\\\" cannot list "
                                  "resource \\\"nodes\\\" in API group \\\"\\\" at the "
                                  "cluster scope\""));
    codec_buf_reset(&b);
    d.result = PX_AUTHZ_ERROR;
    cr_assert_eq(px_authz_status_body(&b, &info, &d, true, false), 500);
    codec_buf_free(&b);
}

Test(authz_cache, lookups_expiry_and_pending_entries)
{
    struct authz_cache c;
    uint8_t k[3][AUTHZ_KEY_LEN] = {{1}, {2}, {3}};
    struct authz_entry *e;

    cr_assert_eq(authz_cache_init(&c, 2), 0);
    cr_assert_null(authz_cache_find(&c, k[0], 0));
    cr_assert_not_null(e = authz_cache_add(&c, k[0]));
    cr_assert_eq(authz_cache_find(&c, k[0], 0), e);
    cr_assert_eq(e->state, AUTHZ_PENDING);
    cr_assert_not_null(authz_cache_add(&c, k[1]));
    cr_assert_null(authz_cache_add(&c, k[2]), "full of pending entries: nothing to evict");
    authz_cache_ready(&c, e, 100);
    cr_assert_eq(authz_cache_find(&c, k[0], 99), e);
    cr_assert_null(authz_cache_find(&c, k[0], 100), "expired");
    cr_assert_eq(c.n, 1);
    cr_assert_eq(atomic_load(&c.misses), 2);
    cr_assert_eq(atomic_load(&c.hits), 2);
    authz_cache_free(&c);
}
