/*
 * api: the request front of kube-sim. Parses the path into resource,
 * namespace, name and subresource, negotiates the response format, runs
 * authentication, authorization and injected faults, and dispatches. Also the
 * reply helpers every handler uses, so headers and Status bodies look like
 * the apiserver's everywhere.
 */
#include "loadgen/kube-sim/kube_sim.h"
#include "proxy/http/http.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#define MODULE "kube-sim"

const char *const ks_verb_name[KS_V_N] = {
    [KS_V_GET] = "get",       [KS_V_LIST] = "list",
    [KS_V_WATCH] = "watch",   [KS_V_CREATE] = "create",
    [KS_V_UPDATE] = "update", [KS_V_PATCH] = "patch",
    [KS_V_DELETE] = "delete", [KS_V_DELETECOLLECTION] = "deletecollection",
};

/* The verb label of apiserver_request_total. */
static const char *const metric_verb[KS_V_N] = {
    [KS_V_GET] = "GET",       [KS_V_LIST] = "LIST",
    [KS_V_WATCH] = "WATCH",   [KS_V_CREATE] = "POST",
    [KS_V_UPDATE] = "PUT",    [KS_V_PATCH] = "PATCH",
    [KS_V_DELETE] = "DELETE", [KS_V_DELETECOLLECTION] = "DELETECOLLECTION",
};

/* ---- replies ------------------------------------------------------------------------- */

struct event_base *ks_base;

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

void ks_rng_seed(uint64_t seed)
{
    rng_state = seed ? seed : 0x9e3779b97f4a7c15ull;
}

uint64_t ks_rng(void)
{
    /* xorshift64*: cheap and reproducible with --seed */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

double ks_rng_unit(void)
{
    return (double)(ks_rng() >> 11) / (double)(1ull << 53);
}

void ks_uuid(char out[37])
{
    static const char hex[] = "0123456789abcdef";
    uint64_t a = ks_rng(), b = ks_rng();
    unsigned char u[16];
    size_t o = 0;

    memcpy(u, &a, 8);
    memcpy(u + 8, &b, 8);
    u[6] = (unsigned char)((u[6] & 0x0f) | 0x40);
    u[8] = (unsigned char)((u[8] & 0x3f) | 0x80);
    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[u[i] >> 4];
        out[o++] = hex[u[i] & 15];
    }
    out[o] = '\0';
}

void ks_headers(struct ks_req *r, const char *content_type)
{
    char uuid[37];

    ks_uuid(uuid);
    px_response_header(r->px, "Audit-Id", uuid);
    px_response_header(r->px, "Cache-Control", "no-cache, private");
    if (content_type)
        px_response_header(r->px, "Content-Type", content_type);
    if (r->code == 403)
        px_response_header(r->px, "X-Content-Type-Options", "nosniff");
    if (r->user.name) {
        px_response_header(r->px, "X-Kubernetes-Pf-Flowschema-Uid",
                           "edf1413a-a675-4771-b91c-72f316d43336");
        px_response_header(r->px, "X-Kubernetes-Pf-Prioritylevel-Uid",
                           "f0b4ee28-0986-4293-877e-d749b3cc25cc");
    }
}

static void count(struct ks_req *r)
{
    if (r->counted)
        return;
    r->counted = true;
    ks_metrics_request(r->verb_known ? metric_verb[r->verb] : r->method, r->res ? r->res->name : "",
                       r->sub, r->code);
}

/* A finished body: pretty-printed when the client gets pretty JSON. */
void ks_reply_body(struct ks_req *r, int code, const char *ctype, const char *body, size_t len)
{
    r->code = code;
    count(r);
    ks_headers(r, NULL);
    if (r->pretty && ctype && strcmp(ctype, "application/json") == 0) {
        struct ks_sb sb;
        ks_sb_init(&sb, len + len / 2 + 64);
        /* the apiserver's Encode adds a newline; MarshalIndent does not */
        ks_json_indent(&sb, body, len);
        px_response_simple(r->px, code, ctype, sb.p ? sb.p : "", sb.len);
        ks_metrics_bytes(sb.len);
        ks_sb_free(&sb);
        return;
    }
    px_response_simple(r->px, code, ctype, body, len);
    ks_metrics_bytes(len);
}

void ks_reply_status(struct ks_req *r, const struct ks_status *st)
{
    struct ks_sb sb;

    if (st->retry_after > 0) {
        char ra[16];
        snprintf(ra, sizeof(ra), "%d", st->retry_after);
        px_response_header(r->px, "Retry-After", ra);
    }
    ks_sb_init(&sb, 512);
    if (r->err_pb) {
        ks_status_pb(&sb, st);
        ks_reply_body(r, st->code, KS_CT_PB, sb.p, sb.len);
    } else {
        ks_status_json(&sb, st);
        ks_sb_addc(&sb, '\n');
        ks_reply_body(r, st->code, "application/json", sb.p, sb.len);
    }
    ks_sb_free(&sb);
}

static void reply_verror(struct ks_req *r, int code, const char *reason, const char *fmt,
                         va_list ap) KF_PRINTF(4, 0);

static void reply_verror(struct ks_req *r, int code, const char *reason, const char *fmt,
                         va_list ap)
{
    struct ks_status st;
    char msg[1024];

    vsnprintf(msg, sizeof(msg), fmt, ap);
    ks_status_init(&st, code, reason, msg);
    ks_reply_status(r, &st);
}

void ks_reply_error(struct ks_req *r, int code, const char *reason, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    reply_verror(r, code, reason, fmt, ap);
    va_end(ap);
}

/* `pods "x" not found` with details, as recorded in get-missing-*. */
void ks_reply_not_found(struct ks_req *r, struct ks_res *res, const char *name)
{
    struct ks_status st;
    char msg[600], qr[160];

    snprintf(msg, sizeof(msg), "%s \"%s\" not found", ks_res_qualified(res, qr, sizeof(qr)), name);
    ks_status_init(&st, 404, "NotFound", msg);
    ks_status_details(&st, name, res->group, res->name);
    ks_reply_status(r, &st);
}

/* The 404 for a path that names no resource: details present but empty. */
void ks_reply_no_route(struct ks_req *r)
{
    struct ks_status st;

    ks_status_init(&st, 404, "NotFound", "the server could not find the requested resource");
    ks_status_details(&st, NULL, NULL, NULL);
    ks_reply_status(r, &st);
}

void ks_reply_bad_request(struct ks_req *r, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    reply_verror(r, 400, "BadRequest", fmt, ap);
    va_end(ap);
}

/* One object version: referenced bytes, no copy (pretty output excepted). */
void ks_reply_obj(struct ks_req *r, int code, struct ks_obj *o)
{
    char len[24];

    if (r->fmt == KS_FMT_TABLE) {
        ks_table_reply_obj(r, code, o);
        return;
    }
    bool pb = r->fmt == KS_FMT_PB && o->pb;
    if (r->pretty && !pb) {
        ks_reply_body(r, code, "application/json", o->json, o->json_len);
        return;
    }
    size_t n = pb ? o->pb_len : o->json_len + 1;
    r->code = code;
    count(r);
    ks_headers(r, pb ? KS_CT_PB : "application/json");
    snprintf(len, sizeof(len), "%zu", n);
    px_response_header(r->px, "Content-Length", len);
    px_response_start(r->px, code);
    px_response_write_ref(r->px, pb ? (const void *)o->pb : o->json, n, ks_obj_free_cb,
                          ks_obj_ref(o));
    px_response_end(r->px);
    ks_metrics_bytes(n);
}

void ks_reply_sb_json(struct ks_req *r, int code, struct ks_sb *sb)
{
    if (sb->err) {
        ks_reply_error(r, 500, "InternalError", "Internal error occurred: out of memory");
        return;
    }
    ks_sb_addc(sb, '\n');
    ks_reply_body(r, code, "application/json", sb->p, sb->len);
}

/* ---- request parsing ---------------------------------------------------------------------- */

static bool param_true(struct ks_req *r, const char *name)
{
    const char *v = px_request_query(r->px, name);
    return v && (strcmp(v, "true") == 0 || strcmp(v, "1") == 0 || strcmp(v, "True") == 0 ||
                 strcmp(v, "TRUE") == 0 || strcmp(v, "t") == 0 || strcmp(v, "T") == 0);
}

bool ks_param_bool(struct ks_req *r, const char *name)
{
    return param_true(r, name);
}

/* Does one media type (with its parameters) name something we can produce? */
static bool media_ok(struct ks_req *r, char *mt, enum ks_fmt *fmt)
{
    char *save = NULL, *type = strtok_r(mt, ";", &save), *p;
    const char *as = NULL, *g = NULL, *v = NULL;
    bool pb;

    if (!type)
        return false;
    while ((p = strtok_r(NULL, ";", &save))) {
        while (*p == ' ')
            p++;
        if (strncmp(p, "as=", 3) == 0)
            as = p + 3;
        else if (strncmp(p, "g=", 2) == 0)
            g = p + 2;
        else if (strncmp(p, "v=", 2) == 0)
            v = p + 2;
    }
    pb = strcmp(type, KS_CT_PB) == 0;
    if (!pb && strcmp(type, "application/json") != 0 && strcmp(type, "*/*") != 0 &&
        strcmp(type, "application/*") != 0)
        return false;
    if (as) {
        bool table = strcmp(as, "Table") == 0 && g && strcmp(g, "meta.k8s.io") == 0 && v &&
                     strcmp(v, "v1") == 0 && !pb;
        if (!table || !r->res || r->sub)
            return false;
        *fmt = KS_FMT_TABLE;
        return true;
    }
    if (pb && (!r->res || r->res->json_only))
        return false; /* CRDs (and discovery here) do not speak protobuf */
    *fmt = pb ? KS_FMT_PB : KS_FMT_JSON;
    return true;
}

/* Pick the first acceptable media type of the Accept header; false -> 406. */
static bool negotiate(struct ks_req *r)
{
    const char *accept = px_request_header(r->px, "accept");
    char *copy, *save = NULL;

    r->fmt = KS_FMT_JSON;
    if (!accept || !accept[0])
        return true;
    copy = kf_arena_strdup(r->arena, accept);
    r->err_pb = strstr(accept, KS_CT_PB) != NULL;
    for (char *mt = strtok_r(copy, ",", &save); mt; mt = strtok_r(NULL, ",", &save)) {
        while (*mt == ' ')
            mt++;
        char *one = kf_arena_strdup(r->arena, mt);
        if (one && media_ok(r, one, &r->fmt)) {
            r->err_pb = r->fmt == KS_FMT_PB;
            return true;
        }
    }
    r->err_pb = false;
    return false;
}

static size_t split_path(struct kf_arena *a, const char *path, char **seg, size_t max)
{
    char *copy = kf_arena_strdup(a, path), *save = NULL;
    size_t n = 0;

    if (!copy)
        return 0;
    for (char *s = strtok_r(copy, "/", &save); s && n < max; s = strtok_r(NULL, "/", &save))
        seg[n++] = s;
    return n;
}

static bool verb_from_method(struct ks_req *r)
{
    const char *m = r->method;

    if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0)
        r->verb = r->name ? KS_V_GET : param_true(r, "watch") ? KS_V_WATCH : KS_V_LIST;
    else if (strcmp(m, "POST") == 0)
        r->verb = KS_V_CREATE;
    else if (strcmp(m, "PUT") == 0)
        r->verb = KS_V_UPDATE;
    else if (strcmp(m, "PATCH") == 0)
        r->verb = KS_V_PATCH;
    else if (strcmp(m, "DELETE") == 0)
        r->verb = r->name ? KS_V_DELETE : KS_V_DELETECOLLECTION;
    else
        return false;
    r->verb_known = true;
    return true;
}

/*
 * seg[0..n) after the group version: [namespaces/NS/]RES[/NAME[/SUB]], or
 * namespaces/NAME[/status]. Returns false when that is not a resource path.
 */
static bool parse_resource(struct ks_req *r, const char *group, const char *version, char **seg,
                           size_t n)
{
    if (n >= 3 && strcmp(seg[0], "namespaces") == 0 &&
        !(n == 3 && (strcmp(seg[2], "status") == 0 || strcmp(seg[2], "finalize") == 0))) {
        r->ns = seg[1];
        seg += 2;
        n -= 2;
    }
    if (n < 1 || n > 3)
        return false;
    r->res = ks_res_find(group, version, seg[0]);
    if (!r->res || (r->ns && !r->res->namespaced))
        return false;
    r->name = n >= 2 ? seg[1] : NULL;
    r->sub = n == 3 ? seg[2] : NULL;
    if (r->sub && !ks_res_has_subresource(r->res, r->sub) && !ks_is_exec(r) &&
        !ks_is_pod_sub(r, "portforward") && !ks_is_pod_sub(r, "log"))
        return false;
    return true;
}

/* Injected 429s and 5xxs (admin /faults); true when one was sent. */
static bool injected_error(struct ks_req *r)
{
    const struct ks_faults *f = &ks_faults;

    if (f->error429 > 0 && ks_rng_unit() < f->error429) {
        struct ks_status st;
        ks_status_init(&st, 429, "TooManyRequests", "Too many requests, please try again later.");
        ks_status_details(&st, NULL, NULL, NULL);
        st.retry_after = 1;
        ks_reply_status(r, &st);
        return true;
    }
    if (f->error5xx > 0 && ks_rng_unit() < f->error5xx) {
        ks_reply_error(r, 500, "InternalError",
                       "Internal error occurred: kube-sim injected a server error");
        return true;
    }
    return false;
}

/* ---- dispatch ------------------------------------------------------------------------------ */

/* exec, port-forward and log: not objects, each served by its own handler. */
static bool dispatch_connect(struct ks_req *r)
{
    bool exec = ks_is_exec(r), pf = ks_is_pod_sub(r, "portforward");

    if (exec || pf) {
        /* authorized as create, whatever the method (the apiserver checks create for
         * WebSocket GETs too) */
        r->verb = KS_V_CREATE;
        r->verb_known = true;
        if (!injected_error(r) && ks_authorize_request(r))
            (exec ? ks_handle_exec : ks_handle_portforward)(r);
        return true;
    }
    if (!ks_is_pod_sub(r, "log"))
        return false;
    if (!verb_from_method(r) || r->verb != KS_V_GET) {
        ks_reply_error(r, 405, "MethodNotAllowed",
                       "the server does not allow this method on the requested resource");
        return true;
    }
    if (!negotiate(r)) /* the body is text/plain whatever was asked; only errors are JSON */
        r->fmt = KS_FMT_JSON;
    if (!injected_error(r) && ks_authorize_request(r))
        ks_handle_log(r);
    return true;
}

/*
 * filters/request_deadline.go: a short request's ?timeout= must be a Go duration, else 400
 * with Go's parse error. (The apiserver checks before authentication and on every path;
 * kube-sim only on resource requests, after authentication.)
 */
static bool deadline_valid(struct ks_req *r)
{
    const char *t = px_request_query(r->px, "timeout");
    char err[512];
    int64_t ns;

    if (r->verb == KS_V_WATCH || !t || !t[0] || kf_go_duration_parse(t, &ns, err, sizeof(err)) == 0)
        return true;
    ks_reply_bad_request(r, "invalid timeout specified in the request URL - %s", err);
    return false;
}

static void dispatch_resource(struct ks_req *r)
{
    if (dispatch_connect(r))
        return;
    if (!verb_from_method(r)) {
        ks_reply_error(r, 405, "MethodNotAllowed",
                       "the server does not allow this method on the requested resource");
        return;
    }
    if (!negotiate(r)) {
        ks_reply_error(r, 406, "NotAcceptable",
                       "only the following media types are accepted: application/json, "
                       "application/yaml, application/vnd.kubernetes.protobuf");
        return;
    }
    if (!deadline_valid(r) || injected_error(r) || !ks_authorize_request(r))
        return;
    switch (r->verb) {
    case KS_V_GET:
        ks_handle_get(r);
        break;
    case KS_V_LIST:
        ks_handle_list(r);
        break;
    case KS_V_WATCH:
        ks_handle_watch(r);
        break;
    case KS_V_CREATE:
        ks_handle_create(r);
        break;
    case KS_V_UPDATE:
        ks_handle_update(r);
        break;
    case KS_V_PATCH:
        ks_handle_patch(r);
        break;
    case KS_V_DELETE:
        ks_handle_delete(r);
        break;
    default:
        ks_handle_delete_collection(r);
        break;
    }
}

/* /api..., /apis...: discovery documents or resource paths. */
static void dispatch_api(struct ks_req *r, char **seg, size_t n)
{
    bool core = strcmp(seg[0], "api") == 0;
    size_t gv = core ? 2 : 3; /* segments up to and including the version */

    if (n == 1) {
        ks_discovery(r, NULL, NULL);
        return;
    }
    const char *group = core ? "" : seg[1];
    if (n < gv) {
        ks_discovery(r, group, NULL);
        return;
    }
    const char *version = seg[gv - 1];
    if (n == gv) {
        ks_discovery(r, group, version);
        return;
    }
    if (!core && strcmp(version, "v1") == 0 && ks_review_handles(r, group, seg + gv, n - gv))
        return;
    if (!parse_resource(r, group, version, seg + gv, n - gv)) {
        if (!negotiate(r))
            r->fmt = KS_FMT_JSON;
        ks_reply_no_route(r);
        return;
    }
    dispatch_resource(r);
}

static void dispatch(struct ks_req *r)
{
    char *seg[16];
    size_t n = split_path(r->arena, px_request_path(r->px), seg, KF_ARRAY_SIZE(seg));

    if (n >= 1 && (strcmp(seg[0], "api") == 0 || strcmp(seg[0], "apis") == 0)) {
        dispatch_api(r, seg, n);
        return;
    }
    ks_nonresource(r, seg, n);
}

static void run(struct ks_req *r)
{
    dispatch(r);
}

static void delayed(evutil_socket_t fd, short what, void *arg)
{
    struct ks_req *r = arg;

    (void)fd;
    (void)what;
    event_free(r->timer);
    r->timer = NULL;
    if (px_request_is_closed(r->px)) {
        px_response_end(r->px);
        return;
    }
    run(r);
}

void ks_api_handle(struct px_request *px, void *arg)
{
    struct kf_arena *a = px_request_arena(px);
    struct ks_req *r = kf_arena_alloc(a, sizeof(*r));

    (void)arg;
    if (!r) {
        px_response_simple(px, 500, "text/plain", "out of memory\n", 14);
        return;
    }
    r->px = px;
    r->arena = a;
    r->method = px_request_method(px);
    r->start_us = kf_now_us();
    const char *ua = px_request_header(px, "user-agent");
    r->pretty = param_true(r, "pretty") ||
                (ua && (strncmp(ua, "curl", 4) == 0 || strncmp(ua, "Wget", 4) == 0));
    r->err_pb = false;
    if (!ks_authenticate(r))
        return;
    if (ks_faults.delay_ms > 0 && strncmp(px_request_path(px), "/api", 4) == 0) {
        struct timeval tv = {ks_faults.delay_ms / 1000, (ks_faults.delay_ms % 1000) * 1000};
        r->timer = evtimer_new(ks_base, delayed, r);
        if (r->timer && evtimer_add(r->timer, &tv) == 0)
            return;
    }
    run(r);
}

void ks_req_count(struct ks_req *r, int code)
{
    r->code = code;
    count(r);
}
