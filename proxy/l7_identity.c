/*
 * Who the apiserver should think the client is.
 *
 * front-proxy: a client with a verified certificate is sent as X-Remote-User
 *   (CN) and X-Remote-Group (each O) over kfront's front-proxy connection, and
 *   its Authorization header is dropped. A client without one keeps its
 *   Authorization header: the apiserver's request-header authenticator then
 *   finds no X-Remote-User and its token authenticators judge the token, as
 *   if the client had come directly.
 * impersonate: the verified certificate becomes Impersonate-User/-Group on
 *   kfront's own credentials; a client without one is refused upstream as
 *   anonymous would be (no Authorization is forwarded, or it would run as kfront).
 * passthrough: the Authorization header goes through untouched.
 * In every mode the client's own X-Remote-* headers are dropped: only kfront
 * may vouch for an identity.
 */
#include "proxy/l7.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static bool has_prefix(const char *s, const char *prefix)
{
    return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

static bool drop_header(const char *name, enum config_identity_mode mode, bool vouched)
{
    static const char *const hop[] = {
        "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade",
        "te",         "host",       "content-length",   "http2-settings"};

    for (size_t i = 0; i < KF_ARRAY_SIZE(hop); i++)
        if (strcasecmp(name, hop[i]) == 0)
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

static size_t push(struct lb_uhdr *out, size_t n, size_t max, const char *name, const char *value)
{
    if (n >= max)
        return n;
    out[n] = (struct lb_uhdr){name, strlen(name), value, strlen(value)};
    return n + 1;
}

size_t px_l7_identity_headers(struct px_request *req, const struct config *cfg, struct lb_uhdr *out,
                              size_t max)
{
    enum config_identity_mode mode = cfg->identity.mode;
    const struct px_peer_identity *peer = px_request_peer(req);
    bool vouch = peer && peer->subject_cn[0] && mode != CONFIG_IDENTITY_PASSTHROUGH;
    const char *user_hdr =
        mode == CONFIG_IDENTITY_IMPERSONATE ? "Impersonate-User" : "X-Remote-User";
    const char *group_hdr =
        mode == CONFIG_IDENTITY_IMPERSONATE ? "Impersonate-Group" : "X-Remote-Group";
    size_t n = 0, count = px_request_header_count(req);

    for (size_t i = 0; i < count; i++) {
        const char *name, *value;
        if (px_request_header_at(req, i, &name, &value) && !drop_header(name, mode, vouch))
            n = push(out, n, max, name, value);
    }
    if (!vouch && mode == CONFIG_IDENTITY_IMPERSONATE) {
        /* kfront's own credentials carry the request: without a verified client it must
         * not run as kfront, so it runs as the apiserver's anonymous user */
        n = push(out, n, max, user_hdr, "system:anonymous");
        return push(out, n, max, group_hdr, "system:unauthenticated");
    }
    if (!vouch)
        return n;
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
