/*
 * A client that asks to act as someone else (Impersonate-User, -Group, -Uid,
 * -Extra-*) through kfront in impersonate mode. kfront's own impersonation
 * already speaks for the client and the apiserver honours one level only, so
 * kfront asks what the apiserver would have asked: may this client
 * impersonate each of them (SubjectAccessReviews, verb impersonate, on
 * users/NAME, groups/NAME, uids/UID and userextras/KEY: VALUE, cached like
 * every review), and then impersonates the requested identity itself. The
 * first attribute refused gets the apiserver's 403. In front-proxy mode the
 * headers go through and the apiserver does this itself.
 *
 * States: CHECKING (one review at a time) -> FORWARDED | ANSWERED, or GONE
 * when the client leaves.
 */
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
};

static void imp_set_state(struct l7_impersonation *m, enum imp_state next)
{
    KF_BUG_ON(m->state != IMP_CHECKING || next == IMP_CHECKING);
    kf_debug("l7", "impersonation by the client of %s %s: %s -> %s", m->info.verb, m->info.resource,
             imp_state_name[m->state], imp_state_name[next]);
    m->state = next;
}

bool px_l7_wants_impersonation(struct px_worker *w, struct px_request *preq)
{
    return w && w->gen && w->gen->cfg->identity.mode == CONFIG_IDENTITY_IMPERSONATE &&
           px_request_header(preq, "impersonate-user") != NULL;
}

/* "%2F" -> "/", lower case, as the apiserver reads an extra key from a header name. */
static char *unescape_key(struct kf_arena *a, const char *s)
{
    char *out = kf_arena_strdup(a, s), *o = out;

    for (const char *p = s; out && *p; p++) {
        unsigned v;
        if (p[0] == '%' && isxdigit((unsigned char)p[1]) && isxdigit((unsigned char)p[2]) &&
            sscanf(p + 1, "%2x", &v) == 1) {
            *o++ = (char)v;
            p += 2;
        } else {
            *o++ = (char)tolower((unsigned char)*p);
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

    while (i < m->as.n_extra && strcmp(m->extra[i].key, key) != 0)
        i++;
    if (i == MAX_EXTRA)
        return;
    if (i == m->as.n_extra)
        m->extra[m->as.n_extra++] = (struct px_user_extra){key, NULL, 0};
    const char **v = kf_arena_alloc(a, (m->extra[i].n_values + 1) * sizeof(*v));
    if (!v)
        return;
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
    for (size_t i = 0; px_request_header_at(m->preq, i, &name, &value); i++) {
        if (strcasecmp(name, "impersonate-group") == 0 && m->as.n_groups < MAX_GROUPS)
            m->groups[m->as.n_groups++] = value;
        else if (strncasecmp(name, "impersonate-extra-", 18) == 0)
            add_extra(m, a, unescape_key(a, name + 18), value);
    }
}

static void set_check(struct px_reqinfo *c, const char *group, const char *resource,
                      const char *name)
{
    memset(c, 0, sizeof(*c));
    c->is_resource = true;
    snprintf(c->verb, sizeof(c->verb), "impersonate");
    snprintf(c->api_group, sizeof(c->api_group), "%s", group);
    snprintf(c->api_version, sizeof(c->api_version), "v1");
    snprintf(c->resource, sizeof(c->resource), "%s", resource);
    snprintf(c->name, sizeof(c->name), "%s", name ? name : "");
}

/* The attribute reviewed at step, in the apiserver's order; false once all are done. */
static bool check_at(const struct l7_impersonation *m, size_t step, struct px_reqinfo *c)
{
    char sub[96];

    if (step == 0) {
        set_check(c, "", "users", m->as.name);
        return true;
    }
    if (--step < m->as.n_groups) {
        set_check(c, "", "groups", m->as.groups[step]);
        return true;
    }
    step -= m->as.n_groups;
    if (m->as.uid && step-- == 0) {
        set_check(c, "authentication.k8s.io", "uids", m->as.uid);
        return true;
    }
    for (size_t i = 0; i < m->as.n_extra; i++) {
        if (step >= m->extra[i].n_values) {
            step -= m->extra[i].n_values;
            continue;
        }
        snprintf(sub, sizeof(sub), "userextras/%s", m->extra[i].key);
        set_check(c, "authentication.k8s.io", sub, m->extra[i].values[step]);
        return true;
    }
    return false;
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
    px_authz_reply(m->preq, &check, &m->decision);
    px_l7_count(w, &info, res == PX_AUTHZ_DENY ? 403 : 401, 0);
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
    px_request_on_close(preq, on_client_gone, m);
    next_check(m);
}
