/*
 * read: GET and LIST. A LIST takes a snapshot (references to immutable
 * versions, so writes meanwhile do not disturb it), works out the page and
 * then streams it in slices driven by the connection's drain callback, so a
 * 150,000-pod list never blocks the loop nor buffers more than a few MB.
 */
#include "loadgen/kube-sim/kube_sim.h"
#include "cache/codec/codec.h"
#include "proxy/http/http.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <openssl/evp.h>

#define WAIT_MS 3000

/* ---- resourceVersion parameters ------------------------------------------------------------ */

/* "Invalid value" for an unparsable resourceVersion, as the storage layer words it. */
static void invalid_rv(struct ks_req *r, const char *rv)
{
    struct ks_status st;
    char msg[400];

    snprintf(msg, sizeof(msg),
             "%s \"%s\" is invalid: resourceVersion: Invalid value: \"%s\": strconv.ParseUint: "
             "parsing \"%s\": invalid syntax",
             r->res->name, r->name ? r->name : "", rv, rv);
    ks_status_init(&st, 422, "Invalid", msg);
    ks_status_details(&st, r->name, r->res->group, r->res->name);
    st.causes[0].reason = "FieldValueInvalid";
    snprintf(msg, sizeof(msg),
             "Invalid value: \"%s\": strconv.ParseUint: parsing \"%s\": invalid syntax", rv, rv);
    st.causes[0].message = msg;
    st.causes[0].field = "resourceVersion";
    st.n_causes = 1;
    ks_reply_status(r, &st);
}

int ks_parse_rv(struct ks_req *r, const char *text, uint64_t *rv)
{
    char *end;

    *rv = 0;
    if (!text || !text[0])
        return 0;
    if (text[0] < '0' || text[0] > '9') {
        invalid_rv(r, text);
        return -EINVAL;
    }
    errno = 0;
    *rv = strtoull(text, &end, 10);
    if (*end || errno) {
        invalid_rv(r, text);
        return -EINVAL;
    }
    return 0;
}

static void wait_tick(evutil_socket_t fd, short what, void *arg)
{
    struct ks_req *r = arg;
    void (*again)(struct ks_req *) = r->wait_again;

    (void)fd;
    (void)what;
    event_free(r->timer);
    r->timer = NULL;
    if (px_request_is_closed(r->px)) {
        ks_req_count(r, 499);
        px_response_end(r->px);
        return;
    }
    again(r);
}

/*
 * The request asks for rv newer than the store has. Like the watch cache,
 * wait up to 3 s for it (re-running again(r) every 10 ms); then 504.
 * Returns true while waiting (the caller returns), false when a reply was sent.
 */
bool ks_wait_for_rv(struct ks_req *r, uint64_t rv, void (*again)(struct ks_req *))
{
    uint64_t now = kf_now_ms();

    if (!r->wait_deadline_ms)
        r->wait_deadline_ms = now + WAIT_MS;
    if (now < r->wait_deadline_ms) {
        struct timeval tv = {0, 10000};
        r->wait_again = again;
        r->timer = evtimer_new(ks_base, wait_tick, r);
        if (r->timer && evtimer_add(r->timer, &tv) == 0)
            return true;
    }
    struct ks_status st;
    char msg[200];
    snprintf(msg, sizeof(msg), "Timeout: Too large resource version: %llu, current: %llu",
             (unsigned long long)rv, (unsigned long long)ks_store.rv);
    ks_status_init(&st, 504, "Timeout", msg);
    ks_status_details(&st, NULL, NULL, NULL);
    st.causes[0].reason = "ResourceVersionTooLarge";
    st.causes[0].message = "Too large resource version";
    st.n_causes = 1;
    st.retry_after = 1;
    ks_reply_status(r, &st);
    return false;
}

/* ---- GET -------------------------------------------------------------------------------- */

const char *ks_req_key(struct ks_req *r, const char *name)
{
    if (!r->res->namespaced)
        return name;
    return kf_arena_sprintf(r->arena, "%s/%s", r->ns ? r->ns : "", name);
}

void ks_handle_get(struct ks_req *r)
{
    uint64_t rv;

    if (ks_parse_rv(r, px_request_query(r->px, "resourceVersion"), &rv) < 0)
        return;
    if (rv > ks_store.rv) {
        ks_wait_for_rv(r, rv, ks_handle_get);
        return;
    }
    if (r->res->namespaced && !r->ns) {
        ks_reply_no_route(r);
        return;
    }
    struct ks_obj *o = ks_store_get(r->res, ks_req_key(r, r->name));
    if (!o) {
        ks_reply_not_found(r, r->res, r->name);
        return;
    }
    ks_reply_obj(r, 200, o);
}

/* ---- continue tokens (the codec's, shared with kfront) ------------------------------------ */

char *ks_continue_encode(struct kf_arena *a, uint64_t rv, int64_t rv_signed, const char *start)
{
    struct codec_buf b;
    char *out = NULL;

    codec_buf_init(&b);
    if (codec_continue_encode(&b, rv_signed < 0 ? rv_signed : (int64_t)rv, start) == 0)
        out = kf_arena_strndup(a, b.data, b.len);
    codec_buf_free(&b);
    return out;
}

int ks_continue_decode(struct kf_arena *a, const char *token, char **start, bool *after,
                       int64_t *rv, char *err, size_t errlen)
{
    return codec_continue_decode(token, a, rv, start, after, err, errlen);
}

/* ---- option validation ------------------------------------------------------------------ */

struct verr {
    struct ks_cause causes[4];
    char msgs[4][200];
    size_t n;
};

static void verr_add(struct verr *v, const char *reason, const char *field, const char *fmt, ...)
    KF_PRINTF(4, 5);

static void verr_add(struct verr *v, const char *reason, const char *field, const char *fmt, ...)
{
    va_list ap;

    if (v->n >= KF_ARRAY_SIZE(v->causes))
        return;
    va_start(ap, fmt);
    vsnprintf(v->msgs[v->n], sizeof(v->msgs[0]), fmt, ap);
    va_end(ap);
    v->causes[v->n].reason = reason;
    v->causes[v->n].message = v->msgs[v->n];
    v->causes[v->n].field = field;
    v->n++;
}

/* 422 "ListOptions.meta.k8s.io "" is invalid: ..." as errors.NewInvalid words it. */
static void reply_invalid_options(struct ks_req *r, const struct verr *v)
{
    struct ks_status st;
    struct ks_sb sb;

    ks_sb_init(&sb, 256);
    ks_sb_adds(&sb, "ListOptions.meta.k8s.io \"\" is invalid: ");
    if (v->n > 1)
        ks_sb_addc(&sb, '[');
    for (size_t i = 0; i < v->n; i++)
        ks_sb_printf(&sb, "%s%s: %s", i ? ", " : "", v->causes[i].field, v->causes[i].message);
    if (v->n > 1)
        ks_sb_addc(&sb, ']');
    ks_status_init(&st, 422, "Invalid", ks_sb_cstr(&sb));
    ks_status_details(&st, NULL, "meta.k8s.io", "ListOptions");
    memcpy(st.causes, v->causes, v->n * sizeof(v->causes[0]));
    st.n_causes = v->n;
    ks_reply_status(r, &st);
    ks_sb_free(&sb);
}

/* ValidateListOptions / validateWatchOptions of the apiserver. */
bool ks_validate_list_opts(struct ks_req *r, bool watch)
{
    const char *match = px_request_query(r->px, "resourceVersionMatch");
    const char *rv = px_request_query(r->px, "resourceVersion");
    const char *cont = px_request_query(r->px, "continue");
    const char *sie = px_request_query(r->px, "sendInitialEvents");
    bool has_match = match && match[0], has_cont = cont && cont[0];
    struct verr v = {.n = 0};

    if (watch) {
        if (sie && strcmp(match ? match : "", "NotOlderThan") != 0)
            verr_add(&v, "FieldValueForbidden", "resourceVersionMatch",
                     "Forbidden: sendInitialEvents requires setting resourceVersionMatch to "
                     "NotOlderThan");
        if (has_match && !sie)
            verr_add(&v, "FieldValueForbidden", "resourceVersionMatch",
                     "Forbidden: resourceVersionMatch is forbidden for watch unless "
                     "sendInitialEvents is provided");
        if (has_match && strcmp(match, "NotOlderThan") != 0)
            verr_add(&v, "FieldValueNotSupported", "resourceVersionMatch",
                     "Unsupported value: \"%s\": supported values: \"NotOlderThan\"", match);
        if (has_match && has_cont)
            verr_add(&v, "FieldValueForbidden", "resourceVersionMatch",
                     "Forbidden: resourceVersionMatch is forbidden when continue is provided");
    } else {
        if (has_match && !(rv && rv[0]))
            verr_add(&v, "FieldValueForbidden", "resourceVersionMatch",
                     "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is "
                     "provided");
        if (has_match && has_cont)
            verr_add(&v, "FieldValueForbidden", "resourceVersionMatch",
                     "Forbidden: resourceVersionMatch is forbidden when continue is provided");
        if (has_match && strcmp(match, "Exact") != 0 && strcmp(match, "NotOlderThan") != 0)
            verr_add(&v, "FieldValueNotSupported", "resourceVersionMatch",
                     "Unsupported value: \"%s\": supported values: \"Exact\", \"NotOlderThan\", "
                     "\"\"",
                     match);
        if (has_match && strcmp(match, "Exact") == 0 && rv && strcmp(rv, "0") == 0)
            verr_add(&v, "FieldValueForbidden", "resourceVersionMatch",
                     "Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion "
                     "\"0\"");
        if (sie)
            verr_add(&v, "FieldValueForbidden", "sendInitialEvents",
                     "Forbidden: sendInitialEvents is forbidden for list");
    }
    if (v.n) {
        reply_invalid_options(r, &v);
        return false;
    }
    return true;
}

struct ks_sel *ks_req_selector(struct ks_req *r)
{
    struct ks_sel *sel;
    char err[512];
    int rc = ks_sel_parse(r->arena, r->res, px_request_query(r->px, "labelSelector"),
                          px_request_query(r->px, "fieldSelector"), &sel, err, sizeof(err));

    if (rc < 0) {
        ks_reply_bad_request(r, "%s", err[0] ? err : "invalid selector");
        return NULL;
    }
    return sel;
}

/* The key prefix of the request's collection ("ns/" or all). */
const char *ks_req_prefix(struct ks_req *r)
{
    return r->ns ? kf_arena_sprintf(r->arena, "%s/", r->ns) : NULL;
}
