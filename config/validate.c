/*
 * validate.c: checks that need the whole config (names, references,
 * addresses, TLS settings) or that protect configs built by code or imported
 * from haproxy.cfg, which do not pass through the YAML loader's ranges.
 * Messages name the YAML key path and point at the offending node.
 */
#include "config/config_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

struct vctx {
    struct config *cfg;
    struct config_diags *diags;
    char path[96];
};

static void vdiag(struct vctx *v, enum config_severity sev, struct config_loc loc, const char *fmt,
                  ...) KF_PRINTF(4, 5);

/* One diagnostic prefixed with v->path, the key path being checked. */
static void vdiag(struct vctx *v, enum config_severity sev, struct config_loc loc, const char *fmt,
                  ...)
{
    char msg[400];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    config_diags_add(v->diags, sev, v->cfg->source, loc, "%s: %s", v->path, msg);
}

#define verr(v, loc, ...)  vdiag((v), CONFIG_ERROR, (loc), __VA_ARGS__)
#define vwarn(v, loc, ...) vdiag((v), CONFIG_WARNING, (loc), __VA_ARGS__)

static void setpath(struct vctx *v, const char *fmt, ...) KF_PRINTF(2, 3);

static void setpath(struct vctx *v, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(v->path, sizeof(v->path), fmt, ap);
    va_end(ap);
}

/* ---- addresses ----------------------------------------------------------------- */

static bool port_ok(const char *s)
{
    unsigned long port = 0;

    if (*s == '\0' || strlen(s) > 5)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        port = port * 10 + (unsigned long)(*s - '0');
    }
    return port >= 1 && port <= 65535;
}

/* RFC 1123 host name: dot-separated labels of letters, digits and '-'. */
static bool hostname_ok(const char *host, size_t len)
{
    size_t label = 0;
    bool all_numeric = true;

    if (len == 0 || len > 253)
        return false;
    for (size_t i = 0; i <= len; i++) {
        char c = i < len ? host[i] : '.';

        if (c == '.') {
            if (label == 0 || label > 63 || host[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-'))
            return false;
        if (c == '-' && label == 0)
            return false;
        if (c < '0' || c > '9')
            all_numeric = false;
        label++;
    }
    return !all_numeric; /* "300.1.1.1" is a bad IPv4 address, not a name */
}

static bool is_wildcard(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ((const struct sockaddr_in *)(const void *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
    return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)(const void *)ss)->sin6_addr);
}

/* Why "HOST:PORT" cannot be split, or NULL. */
static const char *split_problem(const char *address, const char **colon)
{
    if (!address || !*address)
        return "empty address";
    *colon = strrchr(address, ':');
    if (!*colon)
        return "missing :PORT";
    if (!port_ok(*colon + 1))
        return "port must be a number from 1 to 65535";
    return NULL;
}

/* A listen address must be numeric; a server may also be HOSTNAME:PORT. */
static const char *address_problem(const char *address, bool server)
{
    struct sockaddr_storage ss;
    const char *colon, *why;
    unsigned len;

    why = split_problem(address, &colon);
    if (why)
        return why;
    if (kf_addr_parse(address, &ss, &len) == 0)
        return server && is_wildcard(&ss) ? "a server cannot be a wildcard address" : NULL;
    if (!server)
        return "expected a numeric address: IPv4:PORT, [IPv6]:PORT or *:PORT";
    if (address[0] == '[')
        return "not a valid [IPv6]:PORT address";
    if (memchr(address, ':', (size_t)(colon - address)))
        return "an IPv6 address must be in brackets, as in [fd00::1]:6443";
    if (!hostname_ok(address, (size_t)(colon - address)))
        return "host is neither an IP address nor a valid host name";
    return NULL;
}

const char *cfg_server_address_problem(const char *address)
{
    return address_problem(address, true);
}

static const char *listen_problem(const char *address)
{
    return address_problem(address, false);
}

/* ---- global settings ------------------------------------------------------------------ */

static void check_global(struct vctx *v)
{
    static const struct config_loc none;
    struct config *cfg = v->cfg;
    const char *why;

    setpath(v, "workers");
    if (cfg->workers > CFG_MAX_WORKERS)
        verr(v, none, "at most %u, got %u", CFG_MAX_WORKERS, cfg->workers);
    setpath(v, "maxConnections");
    if (cfg->maxconn == 0)
        verr(v, none, "must be at least 1");
    setpath(v, "timeouts.connect");
    if (cfg->timeouts.connect_ms == 0)
        verr(v, none, "must be a positive duration");
    setpath(v, "admin.listen");
    if (cfg->admin.listen && cfg->admin.listen[0] && (why = listen_problem(cfg->admin.listen)))
        verr(v, none, "\"%s\": %s", cfg->admin.listen, why);
    setpath(v, "frontends");
    if (cfg->n_frontends == 0)
        verr(v, none, "at least one frontend is required");
}

/* ---- frontends ------------------------------------------------------------------------ */

static bool same_address(const char *a, const char *b)
{
    struct sockaddr_storage sa, sb;
    unsigned la, lb;

    if (kf_addr_parse(a, &sa, &la) < 0 || kf_addr_parse(b, &sb, &lb) < 0)
        return strcmp(a, b) == 0;
    return la == lb && memcmp(&sa, &sb, la) == 0;
}

/* Whether the listen address fi/li was already used by an earlier one. */
static bool listen_seen_before(const struct config *cfg, size_t fi, size_t li)
{
    const char *addr = cfg->frontends[fi].listen[li];

    for (size_t f = 0; f <= fi; f++)
        for (size_t l = 0; l < (f == fi ? li : cfg->frontends[f].n_listen); l++)
            if (cfg->frontends[f].listen[l] && same_address(cfg->frontends[f].listen[l], addr))
                return true;
    return false;
}

static void check_listen(struct vctx *v, size_t fi)
{
    const struct config_frontend *fe = &v->cfg->frontends[fi];
    const char *admin = v->cfg->admin.listen;

    for (size_t i = 0; i < fe->n_listen; i++) {
        struct config_loc at = fe->listen_locs ? fe->listen_locs[i] : fe->loc;
        const char *addr = fe->listen[i], *why;

        setpath(v, "frontends[%zu].listen[%zu]", fi, i);
        if (!addr)
            continue;
        if ((why = listen_problem(addr)))
            verr(v, at, "\"%s\": %s", addr, why);
        else if (listen_seen_before(v->cfg, fi, i))
            verr(v, at, "\"%s\" is listed more than once", addr);
        else if (admin && admin[0] && same_address(admin, addr))
            verr(v, at, "\"%s\" is also the admin listen address", addr);
    }
    if (fe->n_listen == 0) {
        setpath(v, "frontends[%zu].listen", fi);
        verr(v, fe->loc, "at least one address is required");
    }
}

/* Mode http serves TLS, as the apiserver always does; mode tcp passes it through. */
static void check_frontend_http(struct vctx *v, size_t fi)
{
    const struct config_frontend *fe = &v->cfg->frontends[fi];
    const struct config_identity *id = &v->cfg->identity;

    setpath(v, "frontends[%zu].tls", fi);
    if (fe->mode == CONFIG_MODE_TCP) {
        if (fe->tls.cert_file || fe->goaway_chance_ppm)
            vwarn(v, fe->tls.loc.line ? fe->tls.loc : fe->loc,
                  "tls and goawayChance are ignored in mode tcp (TLS passes through)");
        return;
    }
    if (!fe->tls.cert_file)
        verr(v, fe->loc, "mode http needs tls.certFile and tls.keyFile (kfront terminates TLS)");
    setpath(v, "identity");
    if (id->mode == CONFIG_IDENTITY_FRONT_PROXY &&
        (!id->proxy_client_cert_file || !id->proxy_client_key_file))
        verr(v, id->loc.line ? id->loc : fe->loc,
             "mode front-proxy needs proxyClientCertFile and proxyClientKeyFile (a client "
             "certificate signed by the front-proxy CA)");
    setpath(v, "authorization.user");
    if (id->mode == CONFIG_IDENTITY_FRONT_PROXY &&
        (!v->cfg->authorization.user || !v->cfg->authorization.user[0]))
        verr(v, v->cfg->authorization.loc.line ? v->cfg->authorization.loc : fe->loc,
             "must not be empty: kfront names itself with it in its own reviews");
}

static void check_frontend(struct vctx *v, size_t fi)
{
    const struct config_frontend *fe = &v->cfg->frontends[fi];

    setpath(v, "frontends[%zu].name", fi);
    if (!fe->name || !fe->name[0])
        verr(v, fe->loc, "must not be empty");
    for (size_t j = 0; fe->name && j < fi; j++)
        if (v->cfg->frontends[j].name && strcmp(v->cfg->frontends[j].name, fe->name) == 0)
            verr(v, fe->loc, "\"%s\" is also the name of frontends[%zu]", fe->name, j);
    check_listen(v, fi);
    setpath(v, "frontends[%zu].backend", fi);
    if (!fe->backend || !fe->backend[0])
        verr(v, fe->loc, "must name a backend");
    else if (!config_find_backend(v->cfg, fe->backend))
        verr(v, fe->backend_loc.line ? fe->backend_loc : fe->loc, "no backend named \"%s\"",
             fe->backend);
    setpath(v, "frontends[%zu].maxConnections", fi);
    if (fe->maxconn > v->cfg->maxconn)
        vwarn(v, fe->loc, "%u is above the global maxConnections %u, which still applies",
              fe->maxconn, v->cfg->maxconn);
    check_frontend_http(v, fi);
}

/* ---- backends ------------------------------------------------------------------------ */

static bool uses_http(const struct config *cfg, const char *backend)
{
    for (size_t i = 0; i < cfg->n_frontends; i++)
        if (cfg->frontends[i].mode == CONFIG_MODE_HTTP && cfg->frontends[i].backend &&
            strcmp(cfg->frontends[i].backend, backend) == 0)
            return true;
    return false;
}

static bool is_used(const struct config *cfg, const char *backend)
{
    for (size_t i = 0; i < cfg->n_frontends; i++)
        if (cfg->frontends[i].backend && strcmp(cfg->frontends[i].backend, backend) == 0)
            return true;
    return false;
}

static bool tls_set(const struct config_tls_client *tls)
{
    return tls->ca_file || tls->cert_file || tls->key_file || tls->server_name ||
           tls->insecure_skip_verify;
}

static void check_tls(struct vctx *v, size_t bi)
{
    const struct config_backend *be = &v->cfg->backends[bi];
    const struct config_tls_client *tls = &be->check.tls;
    struct config_loc at = tls->loc.line ? tls->loc : be->check.loc;
    bool tls_check = be->check.type == CONFIG_CHECK_TLS || be->check.type == CONFIG_CHECK_HTTPS;

    setpath(v, "backends[%zu].healthCheck.tls", bi);
    if (tls->cert_file && !tls->key_file)
        verr(v, at, "certFile requires keyFile");
    if (tls->key_file && !tls->cert_file)
        verr(v, at, "keyFile requires certFile");
    if (tls->ca_file && tls->insecure_skip_verify)
        vwarn(v, at, "caFile is not used when insecureSkipVerify is true");
    if (tls_set(tls) && !tls_check && !uses_http(v->cfg, be->name))
        vwarn(v, at, "has no effect with a %s check and no http frontend",
              config_check_type_name(be->check.type));
}

static void check_health(struct vctx *v, size_t bi)
{
    const struct config_backend *be = &v->cfg->backends[bi];
    const struct config_check *c = &be->check;
    bool http = c->type == CONFIG_CHECK_HTTP || c->type == CONFIG_CHECK_HTTPS;

    setpath(v, "backends[%zu].healthCheck", bi);
    if (c->type == CONFIG_CHECK_NONE)
        return;
    if (c->interval_ms == 0 || c->timeout_ms == 0)
        verr(v, c->loc, "interval and timeout must be positive durations");
    else if (c->timeout_ms > c->interval_ms)
        vwarn(v, c->loc, "timeout (%u ms) is longer than interval (%u ms)", c->timeout_ms,
              c->interval_ms);
    if (c->rise == 0 || c->fall == 0)
        verr(v, c->loc, "rise and fall must be at least 1");
    if (http && (!c->path || c->path[0] != '/'))
        verr(v, c->loc, "path must start with '/', got \"%s\"", c->path ? c->path : "");
    if (http && (c->expect_status < 100 || c->expect_status > 599))
        verr(v, c->loc, "expectStatus must be from 100 to 599, got %d", c->expect_status);
    check_tls(v, bi);
}

static void check_server(struct vctx *v, size_t bi, size_t si)
{
    const struct config_backend *be = &v->cfg->backends[bi];
    const struct config_server *s = &be->servers[si];
    const char *why;

    setpath(v, "backends[%zu].servers[%zu].name", bi, si);
    if (!s->name || !s->name[0])
        verr(v, s->loc, "must not be empty");
    for (size_t j = 0; s->name && j < si; j++)
        if (be->servers[j].name && strcmp(be->servers[j].name, s->name) == 0)
            verr(v, s->loc, "\"%s\" is also the name of servers[%zu]", s->name, j);
    setpath(v, "backends[%zu].servers[%zu].address", bi, si);
    if ((why = cfg_server_address_problem(s->address)))
        verr(v, s->address_loc.line ? s->address_loc : s->loc, "\"%s\": %s",
             s->address ? s->address : "", why);
    setpath(v, "backends[%zu].servers[%zu].weight", bi, si);
    if (s->weight > CFG_MAX_WEIGHT)
        verr(v, s->loc, "must be from 0 to %u, got %u", CFG_MAX_WEIGHT, s->weight);
}

static void check_servers(struct vctx *v, size_t bi)
{
    const struct config_backend *be = &v->cfg->backends[bi];
    bool usable = false, local = false;

    for (size_t si = 0; si < be->n_servers; si++) {
        const struct config_server *s = &be->servers[si];

        check_server(v, bi, si);
        usable |= s->weight > 0 && s->state == CONFIG_SERVER_ACTIVE;
        local |= s->local;
    }
    setpath(v, "backends[%zu].servers", bi);
    if (be->n_servers == 0)
        verr(v, be->loc, "at least one server is required");
    else if (!usable)
        vwarn(v, be->loc, "no server can take connections (all have weight 0 or are not active)");
    setpath(v, "backends[%zu].balance", bi);
    if (be->balance == CONFIG_BALANCE_LOCAL_FIRST && !local)
        vwarn(v, be->loc, "local-first but no server has local: true; works as roundrobin");
}

static void check_backend(struct vctx *v, size_t bi)
{
    const struct config_backend *be = &v->cfg->backends[bi];

    setpath(v, "backends[%zu].name", bi);
    if (!be->name || !be->name[0]) {
        verr(v, be->loc, "must not be empty");
    } else {
        for (size_t j = 0; j < bi; j++)
            if (v->cfg->backends[j].name && strcmp(v->cfg->backends[j].name, be->name) == 0)
                verr(v, be->loc, "\"%s\" is also the name of backends[%zu]", be->name, j);
        if (!is_used(v->cfg, be->name))
            vwarn(v, be->loc, "backend \"%s\" is not used by any frontend", be->name);
    }
    check_health(v, bi);
    check_servers(v, bi);
}

int config_validate(struct config *cfg, struct config_diags *diags)
{
    struct config_diags scratch = {0};
    struct vctx v = {.cfg = cfg, .diags = diags ? diags : &scratch};
    size_t errors = v.diags->n_errors;

    check_global(&v);
    for (size_t i = 0; i < cfg->n_frontends; i++)
        check_frontend(&v, i);
    for (size_t i = 0; i < cfg->n_backends; i++)
        check_backend(&v, i);
    return v.diags->n_errors > errors ? -EINVAL : 0;
}
