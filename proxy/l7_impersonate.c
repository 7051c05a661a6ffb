/*
 * A client that asks to act as someone else (Impersonate-User, -Group, -Uid,
 * -Extra-*) through kfront in impersonate mode. kfront's own impersonation
 * already speaks for the client and the apiserver honours one level only, so
 * kfront asks what the apiserver would have asked: may this client
 * impersonate each of them (SubjectAccessReviews, verb impersonate, cached
 * like every review, in the apiserver's order: users/NAME, or serviceaccounts
 * NAME in namespace NS for system:serviceaccount:NS:NAME; groups/NAME;
 * userextras/KEY named VALUE; uids/UID), and then impersonates the requested
 * identity itself. The first attribute refused gets the apiserver's 403;
 * groups, extras or a uid without a user its 500. In front-proxy mode the
 * headers go through and the apiserver does this itself.
 *
 * States: CHECKING (one review at a time) -> FORWARDED | ANSWERED, or GONE
 * when the client leaves.
 */
#include "cache/codec/codec.h"
#include "proxy/authz.h"
#include "proxy/l7.h"
#include "proxy/l7_cache.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define MAX_GROUPS 64
#define MAX_EXTRA  32

enum imp_state { IMP_CHECKING, IMP_FORWARDED, IMP_ANSWERED, IMP_GONE };

static const char *const imp_state_name[] = {"checking", "forwarded", "answered", "gone"};

struct l7_impersonation {
    enum imp_state state;
    struct px_worker *worker;
    struct px_frontend *fe;
    struct px_request *preq;
    struct px_reqinfo info;  /* the request's own */
    struct px_reqinfo check; /* the attribute under review */
    struct px_authz_decision decision;
    struct px_authz_wait *wait;
    size_t step;
    struct px_user as; /* who the client asks to be */
    const char *groups[MAX_GROUPS];
    struct px_user_extra extra[MAX_EXTRA];
    bool too_many; /* more groups or extra keys than kfront reviews */
};

static void imp_set_state(struct l7_impersonation *m, enum imp_state next)
{
    KF_BUG_ON(m->state != IMP_CHECKING || next == IMP_CHECKING);
    kf_debug("l7", "impersonation by the client of %s %s: %s -> %s", m->info.verb, m->info.resource,
             imp_state_name[m->state], imp_state_name[next]);
    m->state = next;
}

/* As the apiserver reads them (Header.Get: the first value): an empty Impersonate-User or
 * -Uid asks for nothing; any Impersonate-Group or -Extra-* asks. */
bool px_l7_impersonation_requested(struct px_request *preq)
{
    const char *name, *value;
    bool seen_user = false, seen_uid = false;

    /* one pass, and one byte compared for most headers: this runs for every cacheable read */
    for (size_t i = 0; px_request_header_at(preq, i, &name, &value); i++) {
        if ((name[0] | 0x20) != 'i' || strncasecmp(name, "impersonate-", 12) != 0)
            continue;
        const char *rest = name + 12;
        if (strcasecmp(rest, "group") == 0 || strncasecmp(rest, "extra-", 6) == 0)
            return true;
        if (strcasecmp(rest, "user") == 0 && !seen_user) { /* the first one counts */
            seen_user = true;
            if (value[0])
                return true;
        } else if (strcasecmp(rest, "uid") == 0 && !seen_uid) {
            seen_uid = true;
            if (value[0])
                return true;
        }
    }
    return false;
}

bool px_l7_wants_impersonation(struct px_worker *w, struct px_request *preq)
{
    return w && w->gen && w->gen->cfg->identity.mode == CONFIG_IDENTITY_IMPERSONATE &&
           px_l7_impersonation_requested(preq);
}

/* An extra key from a header name as the apiserver reads it: lower-cased, then
 * url.PathUnescape'd ("%2f" -> "/"); a malformed escape leaves the lower-cased key as is. */
static char *unescape_key(struct kf_arena *a, const char *s)
{
    char *out = kf_arena_strdup(a, s), *o = out;

    for (char *p = out; p && *p; p++)
        *p = (char)tolower((unsigned char)*p);
    for (const char *p = out; p && *p; p++)
        if (*p == '%' && (!isxdigit((unsigned char)p[1]) || !isxdigit((unsigned char)p[2])))
            return out;
    for (const char *p = out; out && *p; p++) {
        unsigned v;
        if (p[0] == '%' && sscanf(p + 1, "%2x", &v) == 1) {
            *o++ = (char)v;
            p += 2;
        } else {
            *o++ = *p;
        }
    }
    if (out)
        *o = '\0';
    return out;
}

static void add_extra(struct l7_impersonation *m, struct kf_arena *a, const char *key,
                      const char *value)
{
    size_t i = 0;

    if (!key) { /* out of memory: refused rather than reviewed in part */
        m->too_many = true;
        return;
    }
    while (i < m->as.n_extra && strcmp(m->extra[i].key, key) != 0)
        i++;
    if (i == MAX_EXTRA) {
        m->too_many = true;
        return;
    }
    if (i == m->as.n_extra)
        m->extra[m->as.n_extra++] = (struct px_user_extra){key, NULL, 0};
    const char **v = kf_arena_alloc(a, (m->extra[i].n_values + 1) * sizeof(*v));
    if (!v) {
        m->too_many = true;
        return;
    }
    if (m->extra[i].n_values)
        memcpy(v, m->extra[i].values, m->extra[i].n_values * sizeof(*v));
    v[m->extra[i].n_values] = value;
    m->extra[i].values = v;
    m->extra[i].n_values++;
}

/* The identity the client asks for, from its Impersonate-* headers. */
static void read_request(struct l7_impersonation *m)
{
    struct kf_arena *a = px_request_arena(m->preq);
    const char *name, *value;

    m->as = (struct px_user){.name = px_request_header(m->preq, "impersonate-user"),
                             .uid = px_request_header(m->preq, "impersonate-uid"),
                             .groups = m->groups,
                             .extra = m->extra};
    if (m->as.name && !m->as.name[0])
        m->as.name = NULL;
    if (m->as.uid && !m->as.uid[0])
        m->as.uid = NULL;
    for (size_t i = 0; px_request_header_at(m->preq, i, &name, &value); i++) {
        if (strcasecmp(name, "impersonate-group") == 0 && m->as.n_groups == MAX_GROUPS)
            m->too_many = true;
        else if (strcasecmp(name, "impersonate-group") == 0)
            m->groups[m->as.n_groups++] = value;
        else if (strncasecmp(name, "impersonate-extra-", 18) == 0)
            add_extra(m, a, unescape_key(a, name + 18), value);
    }
}

static void set_check(struct px_reqinfo *c, const char *group, const char *resource, const char *ns,
                      const char *name)
{
    memset(c, 0, sizeof(*c));
    c->is_resource = true;
    kf_strlcpy(c->verb, "impersonate", sizeof(c->verb));
    kf_strlcpy(c->api_group, group, sizeof(c->api_group));
    /* the apiserver's references carry a version for authentication.k8s.io kinds only */
    kf_strlcpy(c->api_version, group[0] ? "v1" : "", sizeof(c->api_version));
    kf_strlcpy(c->resource, resource, sizeof(c->resource));
    kf_strlcpy(c->namespace_, ns ? ns : "", sizeof(c->namespace_));
    kf_strlcpy(c->name, name ? name : "", sizeof(c->name));
}

/* serviceaccount.SplitUsername: system:serviceaccount:NS:NAME, NS a DNS label, NAME a
 * DNS subdomain. */
static bool service_account(const char *user, char *ns, size_t ns_size, const char **name)
{
    static const char prefix[] = "system:serviceaccount:";
    const char *rest = user + sizeof(prefix) - 1, *colon;
    size_t ns_len;

    if (strncmp(user, prefix, sizeof(prefix) - 1) != 0 || !(colon = strchr(rest, ':')) ||
        strchr(colon + 1, ':'))
        return false;
    ns_len = (size_t)(colon - rest);
    if (ns_len > 63 || ns_len >= ns_size || memchr(rest, '.', ns_len) ||
        !codec_dns_subdomain_ok(rest, ns_len) || strlen(colon + 1) > 253 ||
        !codec_dns_subdomain_ok(colon + 1, strlen(colon + 1)))
        return false;
    memcpy(ns, rest, ns_len);
    ns[ns_len] = '\0';
    *name = colon + 1;
    return true;
}

/* Whether every attribute fits a review (px_reqinfo's fields): a truncated one would be
 * reviewed for a name other than the one then impersonated. */
static bool fits(const struct l7_impersonation *m)
{
    struct px_reqinfo c;
    bool ok = !m->too_many && (!m->as.name || strlen(m->as.name) < sizeof(c.name)) &&
              (!m->as.uid || strlen(m->as.uid) < sizeof(c.name));

    for (size_t i = 0; ok && i < m->as.n_groups; i++)
        ok = strlen(m->as.groups[i]) < sizeof(c.name);
    for (size_t i = 0; ok && i < m->as.n_extra; i++) {
        ok =
            m->extra[i].key && strlen("userextras/") + strlen(m->extra[i].key) < sizeof(c.resource);
        for (size_t v = 0; ok && v < m->extra[i].n_values; v++)
            ok = strlen(m->extra[i].values[v]) < sizeof(c.name);
    }
    return ok;
}

/* The attribute reviewed at step, in the apiserver's order; false once all are done. */
static bool check_at(const struct l7_impersonation *m, size_t step, struct px_reqinfo *c)
{
    char sub[96], ns[64];
    const char *sa_name;

    if (step == 0) {
        if (service_account(m->as.name, ns, sizeof(ns), &sa_name))
            set_check(c, "", "serviceaccounts", ns, sa_name);
        else
            set_check(c, "", "users", NULL, m->as.name);
        return true;
    }
    if (--step < m->as.n_groups) {
        set_check(c, "", "groups", NULL, m->as.groups[step]);
        return true;
    }
    step -= m->as.n_groups;
    for (size_t i = 0; i < m->as.n_extra; i++) {
        if (step >= m->extra[i].n_values) {
            step -= m->extra[i].n_values;
            continue;
        }
        snprintf(sub, sizeof(sub), "userextras/%s", m->extra[i].key);
        set_check(c, "authentication.k8s.io", sub, NULL, m->extra[i].values[step]);
        return true;
    }
    if (m->as.uid && step == 0) {
        set_check(c, "authentication.k8s.io", "uids", NULL, m->as.uid);
        return true;
    }
    return false;
}

/*
 * Groups, extras or a uid without a user: the apiserver's buildImpersonationRequests error,
 * its requests printed as Go prints v1.ObjectReference values (Kind Namespace Name UID
 * APIVersion ResourceVersion FieldPath).
 */
static void reply_without_user(struct l7_impersonation *m)
{
    const char *av = "authentication.k8s.io/v1";
    struct kf_arena *a = px_request_arena(m->preq);
    struct codec_buf msg, body;
    const char *sep = "";

    codec_buf_init(&msg);
    codec_buf_init(&body);
    codec_buf_puts(&msg, "requested [");
    for (size_t i = 0; i < m->as.n_groups; i++, sep = " ")
        codec_buf_puts(&msg, kf_arena_sprintf(a, "%s{Group  %s    }", sep, m->as.groups[i]));
    for (size_t i = 0; i < m->as.n_extra; i++)
        for (size_t v = 0; v < m->extra[i].n_values; v++, sep = " ")
            codec_buf_puts(&msg, kf_arena_sprintf(a, "%s{UserExtra  %s  %s  %s}", sep,
                                                  m->extra[i].values[v], av, m->extra[i].key));
    if (m->as.uid)
        codec_buf_puts(&msg, kf_arena_sprintf(a, "%s{UID  %s  %s  }", sep, m->as.uid, av));
    codec_buf_puts(&msg, "] without impersonating a user");
    codec_buf_append(&msg, "", 1);
    if (msg.err || codec_internal_error_text(&body, px_l7_target(m->preq), msg.data) != 0) {
        px_l7_reject(m->worker, m->preq, &m->info, 503, "ServiceUnavailable", "out of memory");
    } else {
        px_l7_count(m->worker, &m->info, 500, 0); /* before the last byte goes out */
        px_response_header(m->preq, "X-Content-Type-Options", "nosniff");
        px_response_simple(m->preq, 500, "text/plain; charset=utf-8", body.data, body.len);
    }
    codec_buf_free(&msg);
    codec_buf_free(&body);
}

/* A review is decided: true to go on; otherwise the client was answered. */
static bool check_passed(struct l7_impersonation *m, enum px_authz_result res)
{
    struct px_reqinfo check = m->check, info = m->info; /* the arena dies with the answer */
    struct px_worker *w = m->worker;

    if (res == PX_AUTHZ_ALLOW)
        return true;
    imp_set_state(m, IMP_ANSWERED);
    px_request_on_close(m->preq, NULL, NULL);
    if (res == PX_AUTHZ_ERROR) {
        px_l7_reject(w, m->preq, &info, 503, "ServiceUnavailable",
                     "kfront could not review the impersonation");
        return false;
    }
    px_l7_count(w, &info, res == PX_AUTHZ_DENY ? 403 : 401, 0);
    px_authz_reply(m->preq, &check, &m->decision);
    return false;
}

static void on_checked(enum px_authz_result res, void *arg);

static void next_check(struct l7_impersonation *m)
{
    const struct px_binding *b = px_worker_binding(m->worker, m->fe);

    for (;; m->step++) {
        if (!check_at(m, m->step, &m->check)) {
            imp_set_state(m, IMP_FORWARDED);
            px_request_on_close(m->preq, NULL, NULL);
            px_l7_forward_as(m->worker, m->fe, m->preq, &m->info, &m->as);
            return;
        }
        int rc = b ? px_authz_check(m->worker, b, m->preq, &m->check, &m->decision, on_checked, m,
                                    &m->wait)
                   : 0;
        if (rc == KF_AGAIN)
            return;
        if (!check_passed(m, b ? m->decision.result : PX_AUTHZ_ERROR))
            return;
    }
}

static void on_checked(enum px_authz_result res, void *arg)
{
    struct l7_impersonation *m = arg;

    m->wait = NULL;
    if (!check_passed(m, res))
        return;
    m->step++;
    next_check(m);
}

static void on_client_gone(struct px_request *preq, void *arg)
{
    struct l7_impersonation *m = arg;

    imp_set_state(m, IMP_GONE);
    px_authz_cancel(m->wait);
    px_response_end(preq);
}

void px_l7_impersonate(struct px_worker *w, struct px_frontend *fe, struct px_request *preq,
                       const struct px_reqinfo *info)
{
    struct l7_impersonation *m = kf_arena_alloc(px_request_arena(preq), sizeof(*m));

    if (!m) {
        px_l7_reject(w, preq, info, 503, "ServiceUnavailable", "out of memory");
        return;
    }
    memset(m, 0, sizeof(*m));
    *m = (struct l7_impersonation){
        .state = IMP_CHECKING, .worker = w, .fe = fe, .preq = preq, .info = *info};
    read_request(m);
    if (!fits(m)) {
        m->state = IMP_ANSWERED;
        px_l7_reject(w, preq, info, 400, "BadRequest",
                     "kfront reviews impersonated names, groups, uids and extra values of at most "
                     "255 bytes, extra keys of at most 84, and at most 64 groups and 32 keys");
        return;
    }
    if (!m->as.name) {
        m->state = IMP_ANSWERED;
        reply_without_user(m);
        return;
    }
    px_request_on_close(preq, on_client_gone, m);
    next_check(m);
}
