/*
 * Who the apiserver should think the client is.
 *
 * kfront vouches for a client with a verified certificate (user = CN,
 * groups = O) or a bearer token the apiserver's TokenReview accepted (its
 * user, groups and extra; see l7_authn.c).
 * front-proxy: a vouched-for client is sent as X-Remote-User, X-Remote-Group
 *   and X-Remote-Extra-<key> over kfront's front-proxy connection, and its
 *   Authorization header is dropped. A client kfront cannot vouch for keeps
 *   its Authorization header: the apiserver's request-header authenticator
 *   then finds no X-Remote-User and judges the client as if it had come
 *   directly.
 * impersonate: the same identity becomes Impersonate-User/-Group/-Extra-* on
 *   kfront's own credentials (its client certificate, or the bearer token of
 *   an --upstream-kubeconfig user); a client kfront cannot vouch for is
 *   impersonated as system:anonymous (its Authorization is not forwarded:
 *   kfront's connection would otherwise lend it kfront's identity).
 * passthrough: the Authorization header goes through untouched.
 * In every mode the client's own X-Remote-* headers are dropped: only kfront
 * may vouch for an identity. The client's address is appended to
 * X-Forwarded-For (one header, as the apiserver reads only the first), so the
 * apiserver's audit sourceIPs end with the address kfront saw.
 */
#include "proxy/authz.h"
#include "proxy/l7.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static bool has_prefix(const char *s, const char *prefix)
{
    return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

static bool drop_header(const char *name, enum config_identity_mode mode, bool vouched)
{
    static const struct kf_token hop[] = {KF_TOKEN("connection"),
                                          KF_TOKEN("keep-alive"),
                                          KF_TOKEN("proxy-connection"),
                                          KF_TOKEN("transfer-encoding"),
                                          KF_TOKEN("upgrade"),
                                          KF_TOKEN("te"),
                                          KF_TOKEN("host"),
                                          KF_TOKEN("content-length"),
                                          KF_TOKEN("http2-settings")};
    size_t len = strlen(name);

    if (kf_token_in(name, len, hop, KF_ARRAY_SIZE(hop)))
        return true;
    if (has_prefix(name, "x-remote-"))
        return true;
    if (mode == CONFIG_IDENTITY_IMPERSONATE &&
        (has_prefix(name, "impersonate-") || strcasecmp(name, "authorization") == 0))
        return true;
    if (mode == CONFIG_IDENTITY_FRONT_PROXY && vouched && strcasecmp(name, "authorization") == 0)
        return true;
    return false;
}

/* out is sized for everything pushed (identity_capacity): nothing is ever dropped, since a
 * dropped identity header would let the request run as kfront itself. */
static size_t push(struct lb_uhdr *out, size_t n, size_t max, const char *name, const char *value)
{
    KF_BUG_ON(n >= max);
    out[n] = (struct lb_uhdr){name, strlen(name), value, strlen(value)};
    return n + 1;
}

/* The client's X-Forwarded-For values (every such header, in order) and its address after
 * them; NULL without an address or memory. */
static const char *forwarded_for(struct px_request *req, const char *prior)
{
    const char *ip = px_request_remote_ip(req);

    if (!ip[0])
        return prior;
    return prior ? kf_arena_sprintf(px_request_arena(req), "%s, %s", prior, ip) : ip;
}

/* How many headers px_l7_identity_headers may write: all the client's, and the identity. */
static size_t identity_capacity(struct px_request *req, const struct px_peer_identity *peer,
                                const struct px_user *reviewed)
{
    size_t n = px_request_header_count(req) + 1 /* Authorization */ + 2 /* anonymous */ +
               1 /* X-Forwarded-For */;

    if (reviewed) {
        n += 2 + reviewed->n_groups;
        for (size_t i = 0; i < reviewed->n_extra; i++)
            n += reviewed->extra[i].n_values;
    } else if (peer) {
        n += 1 + peer->n_orgs;
    }
    return n;
}

/* An extra key as a header name: the apiserver path-unescapes what follows the prefix. */
static const char *extra_header(struct kf_arena *a, const char *prefix, const char *key)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t plen = strlen(prefix), klen = strlen(key);
    char *s = kf_arena_alloc(a, plen + 3 * klen + 1), *p;

    if (!s)
        return NULL;
    memcpy(s, prefix, plen);
    p = s + plen;
    for (const unsigned char *k = (const unsigned char *)key; *k; k++) {
        if (isalnum(*k) || *k == '-' || *k == '.' || *k == '_' || *k == '~') {
            *p++ = (char)*k;
        } else {
            *p++ = '%';
            *p++ = hex[*k >> 4];
            *p++ = hex[*k & 15];
        }
    }
    *p = '\0';
    return s;
}

/* The reviewed user's headers (user, groups, extra) under the mode's names. */
static size_t push_user(struct px_request *req, bool imp, const struct px_user *u,
                        struct lb_uhdr *out, size_t n, size_t max)
{
    n = push(out, n, max, imp ? "Impersonate-User" : "X-Remote-User", u->name);
    if (u->uid && u->uid[0]) /* X-Remote-Uid: apiservers with --requestheader-uid-headers */
        n = push(out, n, max, imp ? "Impersonate-Uid" : "X-Remote-Uid", u->uid);
    for (size_t i = 0; i < u->n_groups; i++)
        n = push(out, n, max, imp ? "Impersonate-Group" : "X-Remote-Group", u->groups[i]);
    for (size_t i = 0; i < u->n_extra; i++) {
        const char *name = extra_header(
            px_request_arena(req), imp ? "Impersonate-Extra-" : "X-Remote-Extra-", u->extra[i].key);
        for (size_t j = 0; name && j < u->extra[i].n_values; j++)
            n = push(out, n, max, name, u->extra[i].values[j]);
    }
    return n;
}

ssize_t px_l7_identity_headers(struct px_request *req, const struct config *cfg,
                               const struct config_backend *be, const struct px_user *reviewed,
                               size_t spare, struct lb_uhdr **headers)
{
    enum config_identity_mode mode = cfg->identity.mode;
    const struct px_peer_identity *peer = px_request_peer(req);
    bool by_cert = peer && peer->subject_cn[0] && mode != CONFIG_IDENTITY_PASSTHROUGH;
    bool vouch = mode != CONFIG_IDENTITY_PASSTHROUGH && (by_cert || reviewed);
    const char *user_hdr =
        mode == CONFIG_IDENTITY_IMPERSONATE ? "Impersonate-User" : "X-Remote-User";
    const char *group_hdr =
        mode == CONFIG_IDENTITY_IMPERSONATE ? "Impersonate-Group" : "X-Remote-Group";
    size_t n = 0, count = px_request_header_count(req);
    size_t max = identity_capacity(req, peer, reviewed);
    struct lb_uhdr *out = kf_arena_alloc(px_request_arena(req), (max + spare) * sizeof(*out));

    *headers = out;
    if (!out)
        return -ENOMEM;
    const char *xff = NULL;
    for (size_t i = 0; i < count; i++) {
        const char *name, *value;
        if (!px_request_header_at(req, i, &name, &value) || drop_header(name, mode, vouch))
            continue;
        if (strcasecmp(name, "x-forwarded-for") != 0)
            n = push(out, n, max, name, value);
        else /* joined into one below */
            xff = xff ? kf_arena_sprintf(px_request_arena(req), "%s, %s", xff, value) : value;
    }
    if ((xff = forwarded_for(req, xff)))
        n = push(out, n, max, "X-Forwarded-For", xff);
    if (mode != CONFIG_IDENTITY_IMPERSONATE && !vouch)
        return n;
    /* kfront's own token (a kubeconfig user's) carries the impersonation */
    if (mode == CONFIG_IDENTITY_IMPERSONATE && be && be->upstream_tls.authorization)
        n = push(out, n, max, "Authorization", be->upstream_tls.authorization);
    if (!vouch) {
        /* kfront's connection authenticates as kfront whatever the headers say: a client it
         * cannot vouch for is made anonymous explicitly, or it would act as kfront */
        n = push(out, n, max, user_hdr, "system:anonymous");
        return push(out, n, max, group_hdr, "system:unauthenticated");
    }
    if (reviewed) /* a reviewed token's user, or whom a client may impersonate */
        return push_user(req, mode == CONFIG_IDENTITY_IMPERSONATE, reviewed, out, n, max);
    n = push(out, n, max, user_hdr, peer->subject_cn);
    for (size_t i = 0; i < peer->n_orgs; i++)
        n = push(out, n, max, group_hdr, peer->orgs[i]);
    return n;
}

const char *px_l7_target(struct px_request *req)
{
    const char *q = px_request_query_string(req);

    if (!q[0])
        return px_request_path(req);
    return kf_arena_sprintf(px_request_arena(req), "%s?%s", px_request_path(req), q);
}

size_t px_l7_own_identity_headers(const struct config *cfg, const struct config_backend *be,
                                  struct lb_uhdr *out, size_t max)
{
    const struct config_authorization *cc = &cfg->authorization;
    bool imp = cfg->identity.mode == CONFIG_IDENTITY_IMPERSONATE;
    size_t n = 0;

    /* a kubeconfig user's token is kfront's credential whatever the mode */
    if (be && be->upstream_tls.authorization)
        n = push(out, n, max, "Authorization", be->upstream_tls.authorization);
    if (cfg->identity.mode == CONFIG_IDENTITY_PASSTHROUGH || !cc->user || !cc->user[0])
        return n; /* kfront's own credentials speak for it */
    n = push(out, n, max, imp ? "Impersonate-User" : "X-Remote-User", cc->user);
    if (cc->group && cc->group[0])
        n = push(out, n, max, imp ? "Impersonate-Group" : "X-Remote-Group", cc->group);
    return n;
}
