/*
 * L7 reads served from the watch cache: GET, LIST and WATCH that the
 * apiserver would itself answer from its watch cache (resourceVersion "0" or
 * "not older than N"), in the wire format the client asked for, after the
 * apiserver has said (SubjectAccessReview, cached) that this client may
 * read it. Everything else, and anything kfront is unsure about, is
 * forwarded: a request the cache cannot answer exactly goes upstream.
 *
 * Request states: AUTHZ (waiting for the decision) -> WAIT_RV (waiting for
 * the cache to reach the requested RV) -> SERVING (list slices or watch
 * stream) -> DONE.
 */
#include "proxy/l7_cache.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cache/cache.h"
#include "proxy/authz.h"

#define CT_PB       "application/vnd.kubernetes.protobuf"
#define WATCH_MIN_S 1800 /* the apiserver's --min-request-timeout */

enum l7c_kind { L7C_GET, L7C_LIST, L7C_WATCH };
enum l7c_state { L7C_AUTHZ, L7C_WAIT_RV, L7C_SERVING, L7C_DONE };
static const char *const l7c_state_name[] = {"authz", "wait-rv", "serving", "done"};

struct l7c_req {
    enum l7c_state state;
    enum l7c_kind kind;
    struct px_worker *worker;
    struct px_frontend *fe;
    struct px_request *preq;
    struct px_reqinfo info;
    struct cache_query q;
    struct codec_label_selector labels;
    struct codec_field_selector fields;
    bool has_labels, has_fields;
    uint64_t rv; /* requested: 0 = any */
    bool initial_events, initial_events_end, bookmarks;
    uint64_t timeout_ms;
    struct px_authz_wait *authz;
    struct px_authz_decision decision; /* filled by px_authz_check, valid until decided */
    struct cache_wait *wait;
    struct cache_list *list;
    struct cache_watch *watch;
    uint64_t started_us;
    int code;
    bool writing_list; /* inside cache_list_write: a close must not free the list under it */
    struct cache_list_opts list_opts; /* limit, continue, Exact */
    bool continued;                   /* the request carried a continue token */
    bool closed;
};

static void set_state(struct l7c_req *r, enum l7c_state next)
{
    KF_BUG_ON(r->state == L7C_DONE);
    kf_debug("l7", "cache %s %s: %s -> %s", r->info.verb, r->info.resource,
             l7c_state_name[r->state], l7c_state_name[next]);
    r->state = next;
}

static void req_free(struct l7c_req *r)
{
    if (r->has_labels)
        codec_label_selector_free(&r->labels);
    if (r->has_fields)
        codec_field_selector_free(&r->fields);
    cache_list_free(r->list);
    free(r);
}

enum l7c_end { L7C_END, L7C_ABORT, L7C_ENDED };

/* Count the request, end its response (END, ABORT, or ENDED: the caller already did) and
 * free it. Counting comes first: once the last byte is out, a client may read /metrics and
 * must find this request there. */
static void finish(struct l7c_req *r, enum l7c_end how)
{
    if (r->state != L7C_DONE)
        set_state(r, L7C_DONE);
    px_l7_count(r->worker, &r->info, r->code, kf_now_us() - r->started_us);
    px_l7_cache_count(r->worker, true);
    if (how == L7C_END)
        px_response_end(r->preq);
    else if (how == L7C_ABORT)
        px_response_abort(r->preq);
    req_free(r);
}

static void common_headers(struct l7c_req *r, const char *ctype)
{
    char id[40];

    px_l7_audit_id(id, sizeof(id));
    px_response_header(r->preq, "Audit-Id", id);
    px_response_header(r->preq, "Cache-Control", "no-cache, private");
    px_response_header(r->preq, "Content-Type", ctype);
}

static bool is_pb(const struct l7c_req *r)
{
    return cache_store_format(r->q.store) == CACHE_PB;
}

/* Write st in the client's format (what the apiserver's handlers write) and end. */
static void reply_status_full(struct l7c_req *r, const struct codec_status *st_in,
                              const char *continue_token)
{
    struct codec_status st = *st_in;
    int code = st.code, retry_after = st.retry_after_seconds;
    struct codec_buf b;
    char len[24];

    st.continue_token = continue_token;
    codec_buf_init(&b);
    if (is_pb(r))
        codec_status_pb(&b, &st);
    else if (codec_status_json(&b, &st) == 0)
        codec_buf_append(&b, "\n", 1);
    common_headers(r, is_pb(r) ? CT_PB : "application/json");
    if (retry_after) {
        snprintf(len, sizeof(len), "%d", retry_after);
        px_response_header(r->preq, "Retry-After", len);
    }
    snprintf(len, sizeof(len), "%zu", b.len);
    px_response_header(r->preq, "Content-Length", len);
    px_response_start(r->preq, code);
    px_response_write(r->preq, b.data, b.len);
    codec_buf_free(&b);
    r->code = code;
    finish(r, L7C_END);
}

/* A failure Status; details name the object (NotFound) when details_name is set. */
static void reply_status(struct l7c_req *r, int code, const char *reason, const char *message,
                         const char *details_name, int retry_after)
{
    struct codec_status st = {.status = "Failure",
                              .message = message,
                              .reason = reason,
                              .code = code,
                              .retry_after_seconds = retry_after};

    if (details_name) {
        st.has_details = true;
        st.details_name = details_name;
        st.details_group =
            cache_store_type(r->q.store)->group[0] ? cache_store_type(r->q.store)->group : NULL;
        st.details_kind = cache_store_type(r->q.store)->resource;
    }
    reply_status_full(r, &st, NULL);
}

/* ---- the sink: cache -> client -----------------------------------------------------------------
 */

static int sink_write(void *sink, const void *data, size_t len, struct cache_ref *owner)
{
    struct l7c_req *r = sink;

    if (!owner)
        return px_response_write(r->preq, data, len);
    return px_response_write_ref(r->preq, data, len, cache_ref_free_cb, owner);
}

static size_t sink_pending(void *sink)
{
    return px_response_pending(((struct l7c_req *)sink)->preq);
}

static void sink_end(void *sink, enum cache_end how)
{
    struct l7c_req *r = sink;

    r->watch = NULL;
    px_request_on_close(r->preq, NULL, NULL);
    px_request_on_drain(r->preq, NULL, NULL);
    finish(r, how == CACHE_END_OK ? L7C_END : L7C_ABORT);
}

static const struct cache_sink_ops sink_ops = {sink_write, sink_pending, sink_end};

/* ---- serving
 * ------------------------------------------------------------------------------------------ */

static void on_close(struct px_request *preq, void *arg)
{
    struct l7c_req *r = arg;

    KF_BUG_ON(r->preq != preq);
    if (r->writing_list) {
        r->closed = true; /* list_pump finishes once cache_list_write returns */
        return;
    }
    if (r->authz)
        px_authz_cancel(r->authz);
    if (r->wait)
        cache_wait_cancel(r->wait);
    if (r->watch)
        cache_watch_cancel(r->watch);
    r->authz = NULL;
    r->wait = NULL;
    r->watch = NULL;
    r->code = 499;
    finish(r, L7C_END);
}

static void list_pump(struct l7c_req *r)
{
    int rc;

    r->writing_list = true;
    rc = cache_list_write(r->list, &sink_ops, r);
    r->writing_list = false;
    if (r->closed) {
        r->code = 499;
        rc = -EPIPE;
    } else if (rc == KF_AGAIN) {
        return;
    }
    px_request_on_close(r->preq, NULL, NULL);
    px_request_on_drain(r->preq, NULL, NULL);
    finish(r, rc == 0 ? L7C_END : L7C_ABORT);
}

static void on_drain(struct px_request *preq, void *arg)
{
    struct l7c_req *r = arg;

    (void)preq;
    if (r->kind == L7C_LIST && r->list)
        list_pump(r);
    else if (r->kind == L7C_WATCH && r->watch)
        cache_watch_drained(r->watch);
}

static void serve_get(struct l7c_req *r)
{
    struct cache_obj *o;
    const char *data;
    size_t len;
    char n[24], msg[600];

    if (cache_get(&r->q, &o) < 0) {
        const struct codec_type *t = cache_store_type(r->q.store);
        /* the apiserver names the group-qualified resource: endpointslices.discovery.k8s.io */
        snprintf(msg, sizeof(msg), "%s%s%s \"%s\" not found", t->resource, t->group[0] ? "." : "",
                 t->group, r->q.name);
        reply_status(r, 404, "NotFound", msg, r->q.name, 0);
        return;
    }
    cache_obj_bytes(o, &data, &len);
    common_headers(r, is_pb(r) ? CT_PB : "application/json");
    /* Go's json.Encoder ends a JSON body with a newline; objects are stored without it */
    snprintf(n, sizeof(n), "%zu", len + (is_pb(r) ? 0 : 1));
    px_response_header(r->preq, "Content-Length", n);
    px_response_start(r->preq, 200);
    px_response_write_ref(r->preq, data, len, cache_ref_free_cb, cache_obj_ref(o));
    if (!is_pb(r))
        px_response_write_ref(r->preq, "\n", 1, NULL, NULL);
    r->code = 200;
    finish(r, L7C_END);
}

/* The request goes to the apiserver after all, as if the cache had not taken it. */
static void hand_to_apiserver(struct l7c_req *r)
{
    struct px_request *preq = r->preq;
    struct px_worker *w = r->worker;
    struct px_frontend *fe = r->fe;
    struct px_reqinfo info = r->info;

    px_request_on_close(preq, NULL, NULL);
    px_request_on_drain(preq, NULL, NULL);
    px_l7_cache_count(w, false);
    req_free(r);
    px_l7_forward(w, fe, preq, &info);
}

static void serve_list(struct l7c_req *r)
{
    char n[24];
    int rc = cache_list_new_opts(&r->q, &r->list_opts, &r->list);

    if (rc == -ERANGE) {
        /* older than the window: etcd may still hold that state (about 5 minutes), and the
         * apiserver reads Exact and continued lists from it */
        hand_to_apiserver(r);
        return;
    }
    if (rc < 0) {
        reply_status(r, 500, "InternalError", "Internal error occurred: out of memory", NULL, 0);
        return;
    }
    common_headers(r, is_pb(r) ? CT_PB : "application/json");
    snprintf(n, sizeof(n), "%zu", cache_list_body_len(r->list));
    px_response_header(r->preq, "Content-Length", n);
    px_response_start(r->preq, 200);
    r->code = 200;
    list_pump(r);
}

static void serve_watch(struct l7c_req *r)
{
    struct cache_watch_params p = {
        .q = r->q,
        .initial_events = r->initial_events,
        .initial_events_end = r->initial_events_end,
        .rv = r->rv,
        .bookmarks = r->bookmarks,
        .timeout_ms = r->timeout_ms,
    };

    common_headers(r, is_pb(r) ? CT_PB ";stream=watch" : "application/json");
    px_response_start(r->preq, 200);
    r->code = 200;
    int rc = cache_watch_start(px_l7_cache_local(r->worker), &p, &sink_ops, r, &r->watch);
    if (rc == 0)
        return;
    if (rc == -ERANGE) {
        /* too old: one ERROR event with 410 Expired, as the watch cache answers */
        struct codec_buf b;
        codec_buf_init(&b);
        if (cache_watch_expired_event(r->q.store, r->rv, &b) == 0)
            px_response_write(r->preq, b.data, b.len);
        codec_buf_free(&b);
    }
    r->watch = NULL;
    px_request_on_close(r->preq, NULL, NULL);
    px_request_on_drain(r->preq, NULL, NULL);
    finish(r, rc == -ERANGE ? L7C_END : L7C_ABORT);
}

static void serve(struct l7c_req *r)
{
    set_state(r, L7C_SERVING);
    if (r->kind == L7C_GET)
        serve_get(r);
    else if (r->kind == L7C_LIST)
        serve_list(r);
    else
        serve_watch(r);
}

static void on_rv(void *arg, bool reached)
{
    struct l7c_req *r = arg;
    char msg[160];

    r->wait = NULL;
    if (reached) {
        serve(r);
        return;
    }
    /* storage.NewTooLargeResourceVersionError: a Timeout with its cause, retry after 1 s */
    static const struct codec_status_cause cause = {.reason = "ResourceVersionTooLarge",
                                                    .message = "Too large resource version"};
    snprintf(msg, sizeof(msg),
             "Timeout: Too large resource version: %" PRIu64 ", current: %" PRIu64, r->rv,
             cache_store_rv(r->q.store));
    struct codec_status st = {.status = "Failure",
                              .message = msg,
                              .reason = "Timeout",
                              .code = 504,
                              .has_details = true,
                              .causes = &cause,
                              .n_causes = 1,
                              .retry_after_seconds = 1};
    reply_status_full(r, &st, NULL);
}

/* Serve once the cache has reached the RV the client asked not to go below. */
static void after_authz(struct l7c_req *r)
{
    int rc = 0;

    set_state(r, L7C_WAIT_RV);
    if (r->rv && (r->kind != L7C_WATCH || r->initial_events))
        rc = cache_wait_rv(px_l7_cache_local(r->worker), r->q.store, r->rv, 3000, on_rv, r,
                           &r->wait);
    if (rc == KF_AGAIN)
        return;
    if (rc < 0) {
        reply_status(r, 500, "InternalError", "Internal error occurred: out of memory", NULL, 0);
        return;
    }
    serve(r);
}

static void on_authz(enum px_authz_result res, void *arg)
{
    struct l7c_req *r = arg;

    r->authz = NULL;
    if (res == PX_AUTHZ_ALLOW) {
        after_authz(r);
        return;
    }
    px_request_on_close(r->preq, NULL, NULL);
    px_request_on_drain(r->preq, NULL, NULL);
    if (res == PX_AUTHZ_ERROR) { /* no decision: the apiserver decides */
        hand_to_apiserver(r);
        return;
    }
    r->code = res == PX_AUTHZ_DENY ? 403 : 401;
    px_authz_reply(r->preq, &r->info, &r->decision);
    finish(r, L7C_ENDED);
}

/* ---- deciding
 * ------------------------------------------------------------------------------------------- */

/* Go's query conversion: present and not "0" or "false" (any case), "" included. */
static bool param_true(const char *v)
{
    return px_reqinfo_watch_param(v);
}

/* Only parameters whose meaning the cache reproduces; any other goes upstream. */
static bool params_known(struct px_request *preq)
{
    static const char *const known[] = {
        "resourceVersion", "resourceVersionMatch", "labelSelector",  "fieldSelector",     "limit",
        "watch",           "allowWatchBookmarks",  "timeoutSeconds", "sendInitialEvents", "timeout",
        "continue"};
    const char *name, *value;

    for (size_t i = 0; px_request_query_at(preq, i, &name, &value); i++) {
        bool ok = false;
        for (size_t k = 0; k < KF_ARRAY_SIZE(known) && !ok; k++)
            ok = strcmp(name, known[k]) == 0;
        if (!ok)
            return false;
    }
    return true;
}

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;

    if (!s || !s[0] || s[0] == '-' || s[0] == '+')
        return false;
    errno = 0;
    *out = strtoull(s, &end, 10);
    return !errno && !*end;
}

static const char *skip_ows(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* p starts with word (any case), followed by OWS and then one of the end bytes. */
static bool media_is(const char *p, const char *word, const char **rest)
{
    size_t n = strlen(word);

    if (strncasecmp(p, word, n) != 0)
        return false;
    *rest = skip_ows(p + n);
    return **rest == '\0' || **rest == ',' || **rest == ';';
}

/*
 * The format of an Accept header's first media range, or -1 (the apiserver negotiates it:
 * Table, PartialObjectMetadata, YAML, CBOR, q-values, an unknown type, a parameter kfront
 * does not know). Parameter names are read as the apiserver reads them: any case, spaces
 * around them allowed.
 */
static int media_format(const char *accept)
{
    const char *p = skip_ows(accept), *rest;
    int fmt;

    if (media_is(p, CT_PB, &rest))
        fmt = CACHE_PB;
    else if (media_is(p, "application/json", &rest) || media_is(p, "*/*", &rest))
        fmt = CACHE_JSON;
    else
        return -1;
    while (*rest == ';') { /* only charset may qualify it */
        const char *name = skip_ows(rest + 1);
        if (strncasecmp(name, "charset", 7) != 0 || *skip_ows(name + 7) != '=')
            return -1;
        rest = name + strcspn(name, ";,");
    }
    /* a later range with parameters (q-values, as=...) may outrank this one */
    return strchr(rest, ';') ? -1 : fmt;
}

/* The wire format the client gets, or -1 when the cache cannot produce it (Table, YAML, ...). */
static int format_of(struct px_request *preq)
{
    const char *accept = px_request_header(preq, "accept");
    const char *ua = px_request_header(preq, "user-agent");

    if (ua && (strncmp(ua, "curl", 4) == 0 || strncmp(ua, "Wget", 4) == 0))
        return -1; /* the apiserver pretty-prints for them */
    if (ua && strncmp(ua, "Mozilla/5.0", 11) == 0)
        return -1; /* browsers too */
    if (!accept || !accept[0])
        return CACHE_JSON;
    return media_format(accept);
}

/* resourceVersion semantics the cache serves exactly; false: forward. */
/*
 * LIST: 0 = any state, limit ignored; N = not older than N (waiting for it), paginated from
 * the current state when limited; Exact N (or N with a limit and no match, the apiserver's
 * legacy reading) = the state at N, from the window; continue = the token's state and key.
 * Unset is a consistent read: forwarded. false: forward.
 */
static bool plan_list(struct l7c_req *r, struct px_request *preq, bool rv_set, bool zero,
                      uint64_t v, const char *match)
{
    const char *limit = px_request_query(preq, "limit");
    const char *cont = px_request_query(preq, "continue");
    uint64_t lim = 0;
    char err[256];

    if (limit && limit[0] && (!parse_u64(limit, &lim) || lim > (1u << 30)))
        return false;
    if (cont && cont[0]) {
        int64_t crv;
        char *start;
        if ((rv_set && !zero) || (match && match[0]) ||
            codec_continue_decode(cont, px_request_arena(preq), &crv, &start, &r->list_opts.after,
                                  err, sizeof(err)) < 0)
            return false; /* the apiserver writes the 400 */
        r->list_opts.exact_rv = crv > 0 ? (uint64_t)crv : 0;
        r->list_opts.start = start;
        r->list_opts.limit = lim;
        r->rv = r->list_opts.exact_rv;
        r->continued = true;
        return true;
    }
    if (!rv_set)
        return false;
    if (zero)
        return true; /* limit ignored, like the watch cache */
    bool exact = (match && strcmp(match, "Exact") == 0) || ((!match || !match[0]) && lim);
    r->rv = v;
    r->list_opts.exact_rv = exact ? v : 0;
    r->list_opts.limit = lim;
    return true;
}

/* resourceVersion semantics the cache serves exactly; false: forward. */
static bool plan_versions(struct l7c_req *r, struct px_request *preq)
{
    const char *rvs = px_request_query(preq, "resourceVersion");
    const char *match = px_request_query(preq, "resourceVersionMatch");
    const char *sie = px_request_query(preq, "sendInitialEvents");
    bool rv_set = rvs && rvs[0], zero = rv_set && strcmp(rvs, "0") == 0;
    uint64_t v = 0;

    if (rv_set && !parse_u64(rvs, &v))
        return false;
    if (match && match[0] && strcmp(match, "NotOlderThan") != 0 &&
        !(r->kind == L7C_LIST && strcmp(match, "Exact") == 0 && rv_set && !zero))
        return false; /* invalid combinations: the apiserver answers */
    if (r->kind == L7C_GET)
        return rv_set && (r->rv = v, true); /* unset is a consistent read */
    if (r->kind == L7C_LIST) /* a list with sendInitialEvents is the apiserver's 422 */
        return !sie && plan_list(r, preq, rv_set, zero, v, match);
    r->bookmarks = param_true(px_request_query(preq, "allowWatchBookmarks"));
    if (sie) {
        /* watch-list: the apiserver insists on bookmarks and NotOlderThan, and refuses
         * continue (400/422): those it answers */
        if (!r->bookmarks || !match || strcmp(match, "NotOlderThan") != 0 || !rv_set ||
            px_request_query(preq, "continue"))
            return false;
        r->initial_events = r->initial_events_end = param_true(sie);
        r->rv = v;
        return r->initial_events || v;
    }
    if (match && match[0])
        return false;
    r->initial_events = !rv_set || zero;
    r->rv = r->initial_events ? 0 : v;
    return true;
}

static bool plan_timeout(struct l7c_req *r, struct px_request *preq)
{
    const char *t = px_request_query(preq, "timeoutSeconds");
    uint64_t s = 0;

    if (t && t[0] && !parse_u64(t, &s))
        return false;
    if (!s)
        s = WATCH_MIN_S + kf_now_us() % WATCH_MIN_S;
    r->timeout_ms = s * 1000;
    return true;
}

static bool plan_selectors(struct l7c_req *r, struct px_request *preq)
{
    const char *ls = px_request_query(preq, "labelSelector");
    const char *fs = px_request_query(preq, "fieldSelector");
    char err[256];

    if (ls && ls[0]) {
        r->has_labels = true;
        if (codec_label_selector_parse(ls, &r->labels, err, sizeof(err)) < 0)
            return false; /* the apiserver writes the 400 */
        r->q.labels = &r->labels;
    }
    if (fs && fs[0]) {
        r->has_fields = true;
        if (codec_field_selector_parse(fs, cache_store_type(r->q.store)->id, &r->fields, err,
                                       sizeof(err)) < 0)
            return false;
        r->q.fields = &r->fields;
    }
    return true;
}

/*
 * Timeouts the apiserver answers with 400: a short request's ?timeout= that Go's
 * time.ParseDuration rejects (refused before authentication, filters/request_deadline.go),
 * and a list's timeoutSeconds that is not a number (the list handler's). Such requests are
 * forwarded for that answer.
 */
static bool timeouts_valid(const struct l7c_req *r, struct px_request *preq)
{
    const char *timeout = px_request_query(preq, "timeout");
    const char *seconds = px_request_query(preq, "timeoutSeconds");
    int64_t ns;
    uint64_t n;

    if (r->kind == L7C_WATCH) /* both are read leniently for watches */
        return true;
    if (timeout && timeout[0] && kf_go_duration_parse(timeout, &ns, NULL, 0) < 0)
        return false;
    return r->kind != L7C_LIST || !seconds || !seconds[0] || parse_u64(seconds, &n);
}

static bool plan(struct l7c_req *r, struct px_request *preq)
{
    if (!params_known(preq) || !timeouts_valid(r, preq) || !plan_versions(r, preq) ||
        !plan_selectors(r, preq))
        return false;
    return r->kind != L7C_WATCH || plan_timeout(r, preq);
}

/* A 429 like the apiserver's while its cache initialises. */
static void reply_not_ready(struct px_request *preq, struct px_worker *w,
                            const struct px_reqinfo *info)
{
    static const char body[] =
        "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","
        "\"message\":\"storage is (re)initializing\",\"reason\":\"TooManyRequests\","
        "\"details\":{\"retryAfterSeconds\":1},\"code\":429}\n";

    px_response_header(preq, "Retry-After", "1");
    px_response_header(preq, "Cache-Control", "no-cache, private");
    px_response_simple(preq, 429, "application/json", body, sizeof(body) - 1);
    px_l7_count(w, info, 429, 0);
}

/*
 * The path names the store's type as the apiserver routes it: the same version (the store's
 * "group/version" or core "version"), and a cluster-scoped resource never under
 * namespaces/NS/ (there it is the apiserver's 404). Anything else is forwarded.
 */
static bool path_matches_store(const struct px_reqinfo *info, const struct codec_type *t)
{
    const char *v = strrchr(t->api_version, '/');

    v = v ? v + 1 : t->api_version;
    return strcmp(info->api_version, v) == 0 && (t->namespaced || !info->namespaced_path);
}

static enum l7c_kind kind_of(const struct px_reqinfo *info, bool *ok)
{
    *ok = true;
    if (strcmp(info->verb, "get") == 0)
        return L7C_GET;
    if (strcmp(info->verb, "list") == 0)
        return L7C_LIST;
    if (strcmp(info->verb, "watch") == 0)
        return L7C_WATCH;
    *ok = false;
    return L7C_GET;
}

bool px_l7_cache_try(struct px_worker *w, struct px_frontend *fe, struct px_request *preq,
                     const struct px_reqinfo *info)
{
    struct cache *c = px_l7_cache(w);
    struct cache_store *s = NULL;
    bool ok;
    enum l7c_kind kind = kind_of(info, &ok);
    int fmt, rc;

    /* a client acting as someone else is judged by the apiserver (or l7_impersonate.c); so is
     * a path whose segments did not fit, and the deprecated /watch/ paths (which may name an
     * object) */
    if (!c || !ok || !info->is_resource || info->truncated || info->watch_path ||
        strchr(info->resource, '/') || strcmp(px_request_method(preq), "GET") != 0 ||
        px_request_is_upgrade(preq) || px_l7_impersonation_requested(preq))
        return false;
    fmt = format_of(preq);
    if (fmt < 0)
        return false;
    rc = cache_store_find(c, info->api_group, info->resource, (enum cache_format)fmt, &s);
    if (rc == -ENOENT)
        return false;
    /* the store's type once found (a lookup by name only while it is not ready) */
    const struct codec_type *t =
        rc == 0 ? cache_store_type(s) : codec_type_by_resource(info->api_group, info->resource);
    if (!t || !path_matches_store(info, t))
        return false;
    if (rc == KF_AGAIN) {
        /* A watch forwarded now would stay on the apiserver for its whole life (minutes),
         * defeating the fan-out: it gets the apiserver's own not-ready answer and retries. */
        if (kind == L7C_GET || (kind == L7C_LIST && !px_l7_cache_reject_not_ready(w))) {
            px_l7_cache_count(w, false);
            return false;
        }
        reply_not_ready(preq, w, info);
        return true;
    }
    struct l7c_req *r = calloc(1, sizeof(*r));
    if (!r)
        return false;
    r->state = L7C_AUTHZ;
    r->kind = kind;
    r->worker = w;
    r->fe = fe;
    r->preq = preq;
    r->info = *info;
    r->started_us = kf_now_us();
    r->q.store = s;
    /* RequestInfo puts a namespace's own name in namespace_ (/api/v1/namespaces/default): a
     * cluster-scoped object has no namespace to match */
    /* the query points into r->info: the caller's info is gone when authz answers later */
    r->q.namespace_ =
        r->info.namespace_[0] && cache_store_type(s)->namespaced ? r->info.namespace_ : NULL;
    r->q.name = kind == L7C_GET ? r->info.name : NULL;
    if (!plan(r, preq)) {
        req_free(r);
        px_l7_cache_count(w, false);
        return false;
    }
    const struct px_binding *b = px_worker_binding(w, fe);
    if (!b) {
        req_free(r);
        return false;
    }
    /* a list/watch with fieldSelector metadata.name=X is authorized for X, as the apiserver does */
    px_reqinfo_field_selector(&r->info, px_request_query(preq, "fieldSelector"));
    px_request_on_close(preq, on_close, r);
    px_request_on_drain(preq, on_drain, r);
    rc = px_authz_check(w, b, preq, &r->info, &r->decision, on_authz, r, &r->authz);
    if (rc == KF_AGAIN)
        return true;
    r->authz = NULL;
    on_authz(rc == 0 ? r->decision.result : PX_AUTHZ_ERROR, r);
    return true;
}
