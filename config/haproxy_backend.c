/*
 * haproxy_backend.c: the backend half of the haproxy.cfg import: balance,
 * retries, servers and their options, and the health-check directives,
 * which haproxy spreads over "option", "http-check", "tcp-check" and each
 * server line and kfront keeps as one check per backend.
 */
#include "config/config_internal.h"

#include <stdio.h>
#include <string.h>

void hp_proxy_init(struct hp_proxy *p, enum hp_kind kind)
{
    memset(p, 0, sizeof(*p));
    p->kind = kind;
    p->mode = CONFIG_MODE_TCP;
    p->balance = CONFIG_BALANCE_ROUNDROBIN;
    p->retries = 3; /* haproxy's default, not kfront's 2: the import keeps behaviour */
    p->chk = HP_CHK_TCP;
    p->chk_path = CFG_DEFAULT_PATH;
    p->chk_status = 200;
    p->defsrv.inter = 2000;
    p->defsrv.rise = 2;
    p->defsrv.fall = 3;
    p->defsrv.weight = 1;
    p->defsrv.verify = -1;
}

void hp_balance(struct hp_ctx *c, const struct hp_line *l)
{
    int i;

    if (!hp_want_args(c, l, 2, "roundrobin or leastconn"))
        return;
    i = cfg_name_index(config_balance_names, 2, l->argv[1]); /* not local-first */
    if (i < 0)
        hp_error(c, l, 1, "balance '%s' is not supported (kfront has roundrobin and leastconn)",
                 l->argv[1]);
    else if (l->argc > 2)
        hp_error(c, l, 2, "unexpected '%s' after the algorithm", l->argv[2]);
    else
        c->cur.balance = (enum config_balance)i;
}

void hp_retries(struct hp_ctx *c, const struct hp_line *l)
{
    hp_uint(c, l, 1, 0, 100, &c->cur.retries);
}

/* ---- server options ------------------------------------------------------------------ */

static const struct {
    const char *name;
    size_t off;
    bool value;
} srv_flags[] = {
    {"check", offsetof(struct hp_srvopts, check), true},
    {"no-check", offsetof(struct hp_srvopts, check), false},
    {"check-ssl", offsetof(struct hp_srvopts, check_ssl), true},
    {"no-check-ssl", offsetof(struct hp_srvopts, check_ssl), false},
    {"backup", offsetof(struct hp_srvopts, backup), true},
    {"no-backup", offsetof(struct hp_srvopts, backup), false},
    {"disabled", offsetof(struct hp_srvopts, disabled), true},
    {"enabled", offsetof(struct hp_srvopts, disabled), false},
};

/* Options with one argument that do not change where connections go. */
static const struct {
    const char *name;
    const char *why;
} srv_ignored[] = {
    {"maxconn", "kfront does not queue per server"},
    {"maxqueue", "kfront does not queue per server"},
    {"minconn", "kfront does not queue per server"},
    {"fastinter", "kfront checks at one interval"},
    {"downinter", "kfront checks at one interval"},
    {"slowstart", "kfront has no slow start"},
    {"observe", "kfront always counts failed connections as passive checks"},
    {"error-limit", "kfront counts passive failures against fall"},
    {"on-error", "kfront counts passive failures against fall"},
    {"resolvers", "kfront resolves server names itself"},
    {"resolve-prefer", "kfront resolves server names itself"},
    {"resolve-opts", "kfront resolves server names itself"},
    {"init-addr", "kfront resolves server names when it loads the config"},
    {"id", "no effect on kfront"},
    {"pool-max-conn", "kfront does not pool server connections"},
    {"pool-purge-delay", "kfront does not pool server connections"},
};

static bool srv_flag(const char *name, struct hp_srvopts *o)
{
    for (size_t i = 0; i < KF_ARRAY_SIZE(srv_flags); i++)
        if (strcmp(srv_flags[i].name, name) == 0) {
            *(bool *)(void *)((char *)o + srv_flags[i].off) = srv_flags[i].value;
            return true;
        }
    return false;
}

static const char *srv_ignored_why(const char *name)
{
    for (size_t i = 0; i < KF_ARRAY_SIZE(srv_ignored); i++)
        if (strcmp(srv_ignored[i].name, name) == 0)
            return srv_ignored[i].why;
    return NULL;
}

static const char *base_path(struct hp_ctx *c, const char *base, const char *file)
{
    char *joined;

    if (!base || file[0] == '/')
        return hp_strdup(c, file);
    joined = kf_arena_sprintf(c->cfg->arena, "%s/%s", base, file);
    if (!joined)
        c->oom = true;
    return joined;
}

/* "sni str(NAME)": a fixed name is all a check can use. */
static void srv_sni(struct hp_ctx *c, const struct hp_line *l, size_t i, struct hp_srvopts *o)
{
    const char *s = l->argv[i];
    size_t n = strlen(s);

    if (n > 5 && strncmp(s, "str(", 4) == 0 && s[n - 1] == ')') {
        char *name = kf_arena_strndup(c->cfg->arena, s + 4, n - 5);
        if (!name)
            c->oom = true;
        o->sni = name;
    } else {
        hp_error(c, l, i, "sni '%s' is not supported (only a fixed str(NAME))", s);
    }
}

/* A check port other than the server's own would need a separate address. */
static void srv_port(struct hp_ctx *c, const struct hp_line *l, size_t i, const char *address)
{
    const char *colon = address ? strrchr(address, ':') : NULL;

    if (!colon || strcmp(colon + 1, l->argv[i]) != 0)
        hp_error(c, l, i - 1,
                 "check port '%s' is not supported: kfront checks the port the "
                 "server serves on",
                 l->argv[i]);
}

/* An option with a value at l->argv[i + 1]; false when name is not one. */
static bool srv_value(struct hp_ctx *c, const struct hp_line *l, size_t i, struct hp_srvopts *o,
                      const char *address)
{
    const char *name = l->argv[i], *v = l->argv[i + 1];

    if (strcmp(name, "rise") == 0)
        hp_uint(c, l, i + 1, 1, 1000, &o->rise);
    else if (strcmp(name, "fall") == 0)
        hp_uint(c, l, i + 1, 1, 1000, &o->fall);
    else if (strcmp(name, "weight") == 0)
        hp_uint(c, l, i + 1, 0, CFG_MAX_WEIGHT, &o->weight);
    else if (strcmp(name, "inter") == 0 && hp_time(c, l, i + 1, &o->inter) && o->inter == 0)
        hp_error(c, l, i + 1, "'inter' must be longer than 0");
    else if (strcmp(name, "ca-file") == 0)
        o->ca_file = base_path(c, c->ca_base, v);
    else if (strcmp(name, "crt") == 0)
        o->crt = base_path(c, c->crt_base, v);
    else if (strcmp(name, "check-sni") == 0 || strcmp(name, "verifyhost") == 0)
        o->sni = hp_strdup(c, v);
    else if (strcmp(name, "sni") == 0)
        srv_sni(c, l, i + 1, o);
    else if (strcmp(name, "port") == 0)
        srv_port(c, l, i + 1, address);
    else if (strcmp(name, "verify") != 0)
        return false;
    else if (strcmp(v, "none") == 0 || strcmp(v, "required") == 0)
        o->verify = strcmp(v, "required") == 0;
    else
        hp_error(c, l, i + 1, "'verify' expects none or required, got '%s'", v);
    return true;
}

static bool takes_value(const char *name)
{
    static const char *const names[] = {"rise",      "fall", "weight", "inter",  "ca-file",   "crt",
                                        "check-sni", "sni",  "port",   "verify", "verifyhost"};

    return cfg_name_index(names, KF_ARRAY_SIZE(names), name) >= 0 || srv_ignored_why(name);
}

/* Options of a server line (address set) or default-server (address NULL). */
static void srv_options(struct hp_ctx *c, const struct hp_line *l, size_t i, struct hp_srvopts *o,
                        const char *address)
{
    char where[128];

    hp_where(c, where, sizeof(where));
    while (i < l->argc) {
        const char *name = l->argv[i], *why;

        if (srv_flag(name, o)) {
            i++;
            continue;
        }
        if (!takes_value(name)) {
            hp_error(c, l, i, "unsupported server option '%s' %s", name, where);
            return; /* the words after it cannot be classified */
        }
        if (i + 1 >= l->argc) {
            hp_error(c, l, i, "server option '%s' expects a value", name);
            return;
        }
        why = srv_ignored_why(name);
        if (why)
            hp_warn(c, l, i, "ignored: server option '%s' %s (%s)", name, where, why);
        else
            srv_value(c, l, i, o, address);
        i += 2;
    }
}

void hp_default_server(struct hp_ctx *c, const struct hp_line *l)
{
    srv_options(c, l, 1, &c->cur.defsrv, NULL);
}

void hp_server(struct hp_ctx *c, const struct hp_line *l)
{
    struct hp_proxy *p = &c->cur;
    struct kf_arena *arena = c->cfg->arena;
    struct config_server *srv;
    struct hp_srvopts o = p->defsrv;
    const char *why;

    if (!hp_want_args(c, l, 3, "a name and an ADDR:PORT"))
        return;
    p->sopts = cfg_array_grow(arena, p->sopts, p->n_servers, &p->cap_sopts, sizeof(*p->sopts));
    p->servers =
        cfg_array_grow(arena, p->servers, p->n_servers, &p->cap_servers, sizeof(*p->servers));
    if (!p->sopts || !p->servers) {
        c->oom = true;
        return;
    }
    srv = &p->servers[p->n_servers];
    cfg_server_defaults(srv);
    srv->name = hp_strdup(c, l->argv[1]);
    srv->address = hp_address(c, l->argv[2]);
    srv->loc = o.loc = (struct config_loc){l->lineno, l->col[0]};
    srv->address_loc = (struct config_loc){l->lineno, l->col[2]};
    if (srv->address && (why = cfg_server_address_problem(srv->address)))
        hp_error(c, l, 2, "server '%s': address '%s': %s", l->argv[1], l->argv[2], why);
    srv_options(c, l, 3, &o, srv->address);
    srv->weight = o.weight;
    srv->backup = o.backup;
    srv->state = o.disabled ? CONFIG_SERVER_DISABLED : CONFIG_SERVER_ACTIVE;
    srv->check = o.check;
    p->sopts[p->n_servers++] = o;
}

/* ---- health-check directives ---------------------------------------------------------- */

void hp_option_tcp_check(struct hp_ctx *c, const struct hp_line *l)
{
    if (l->argc > 2)
        hp_error(c, l, 2, "unexpected '%s' after 'option tcp-check'", l->argv[2]);
    c->cur.chk = HP_CHK_TCP;
    c->cur.chk_ssl = false;
}

void hp_option_ssl_hello(struct hp_ctx *c, const struct hp_line *l)
{
    if (l->argc > 2)
        hp_error(c, l, 2, "unexpected '%s' after 'option ssl-hello-chk'", l->argv[2]);
    c->cur.chk = HP_CHK_TLS;
    c->cur.chk_ssl = false;
}

static void check_method(struct hp_ctx *c, const struct hp_line *l, size_t i, const char *method)
{
    if (strcmp(method, "GET") != 0)
        hp_warn(c, l, i, "kfront checks with GET, not %s", method);
}

static void check_path(struct hp_ctx *c, const struct hp_line *l, size_t i)
{
    if (l->argv[i][0] != '/')
        hp_error(c, l, i, "check URI '%s' must start with '/'", l->argv[i]);
    else
        c->cur.chk_path = hp_strdup(c, l->argv[i]);
}

/* option httpchk [[METHOD] URI [VERSION]] (the old syntax) */
void hp_option_httpchk(struct hp_ctx *c, const struct hp_line *l)
{
    size_t n = l->argc - 2;

    c->cur.chk = HP_CHK_HTTP;
    c->cur.chk_ssl = false;
    if (n == 0) {
        c->cur.chk_path = "/";
        hp_warn(c, l, 1, "kfront checks with GET /, not haproxy's default OPTIONS /");
    } else if (n == 1) {
        check_path(c, l, 2);
    } else if (n <= 3) {
        check_method(c, l, 2, l->argv[2]);
        check_path(c, l, 3);
        if (n == 3 && strpbrk(l->argv[4], "\r\n"))
            hp_warn(c, l, 4, "ignored: headers after the HTTP version (kfront sends its own)");
    } else {
        hp_error(c, l, 5, "unexpected '%s' after 'option httpchk METHOD URI VERSION'", l->argv[5]);
    }
}

/* http-check send meth M uri U [ver V] [hdr NAME VALUE]... */
static void http_check_send(struct hp_ctx *c, const struct hp_line *l)
{
    for (size_t i = 2; i < l->argc; i += 2) {
        const char *key = l->argv[i];

        if (i + 1 >= l->argc) {
            hp_error(c, l, i, "'http-check send %s' expects a value", key);
        } else if (strcmp(key, "meth") == 0) {
            check_method(c, l, i + 1, l->argv[i + 1]);
        } else if (strcmp(key, "uri") == 0) {
            check_path(c, l, i + 1);
        } else if (strcmp(key, "ver") == 0) {
            if (strcmp(l->argv[i + 1], "HTTP/1.1") != 0)
                hp_warn(c, l, i + 1, "ignored: kfront checks with HTTP/1.1");
        } else if (strcmp(key, "hdr") == 0 && i + 2 < l->argc) {
            hp_warn(c, l, i, "ignored: check header '%s' (kfront sends its own)", l->argv[i + 1]);
            i++;
        } else {
            hp_error(c, l, i, "unsupported 'http-check send' argument '%s'", key);
            return;
        }
    }
}

static void http_check_expect(struct hp_ctx *c, const struct hp_line *l)
{
    uint32_t status;

    if (l->argc != 4 || strcmp(l->argv[2], "status") != 0) {
        hp_error(c, l, l->argc > 2 ? 2 : 1,
                 "only 'http-check expect status CODE' is supported (kfront expects one status)");
        return;
    }
    if (hp_uint(c, l, 3, 100, 599, &status))
        c->cur.chk_status = (int)status;
}

/* "connect [ssl]" of http-check and tcp-check: kfront only picks TLS or not. */
static void check_connect(struct hp_ctx *c, const struct hp_line *l)
{
    for (size_t i = 2; i < l->argc; i++) {
        if (strcmp(l->argv[i], "ssl") == 0 || strcmp(l->argv[i], "default") == 0) {
            c->cur.chk_ssl |= strcmp(l->argv[i], "ssl") == 0;
        } else {
            hp_error(c, l, i, "unsupported '%s connect' argument '%s'", l->argv[0], l->argv[i]);
            return;
        }
    }
}

static bool check_ignored(struct hp_ctx *c, const struct hp_line *l)
{
    static const char *const ignored[] = {"comment", "disable-on-404", "send-state"};

    if (cfg_name_index(ignored, KF_ARRAY_SIZE(ignored), l->argv[1]) < 0)
        return false;
    if (strcmp(l->argv[1], "comment") != 0 || strcmp(l->argv[0], "http-check") == 0)
        hp_warn(c, l, 1, "ignored: '%s %s'", l->argv[0], l->argv[1]);
    return true;
}

void hp_http_check(struct hp_ctx *c, const struct hp_line *l)
{
    if (!hp_want_args(c, l, 2, "send, expect or connect"))
        return;
    if (strcmp(l->argv[1], "send") == 0)
        http_check_send(c, l);
    else if (strcmp(l->argv[1], "expect") == 0)
        http_check_expect(c, l);
    else if (strcmp(l->argv[1], "connect") == 0)
        check_connect(c, l);
    else if (!check_ignored(c, l))
        hp_error(c, l, 1, "unsupported 'http-check %s'", l->argv[1]);
}

void hp_tcp_check(struct hp_ctx *c, const struct hp_line *l)
{
    if (!hp_want_args(c, l, 2, "connect"))
        return;
    if (strcmp(l->argv[1], "connect") == 0)
        check_connect(c, l);
    else if (!check_ignored(c, l))
        hp_error(c, l, 1, "unsupported 'tcp-check %s': kfront's tcp check only connects",
                 l->argv[1]);
}

/* ---- one check per backend ------------------------------------------------------------- */

static bool str_differs(const char *a, const char *b)
{
    return (a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0);
}

static bool check_differs(const struct hp_srvopts *a, const struct hp_srvopts *b)
{
    return a->inter != b->inter || a->rise != b->rise || a->fall != b->fall ||
           a->check_ssl != b->check_ssl || a->verify != b->verify ||
           str_differs(a->ca_file, b->ca_file) || str_differs(a->crt, b->crt) ||
           str_differs(a->sni, b->sni);
}

static enum config_check_type check_type(const struct hp_proxy *p, bool ssl)
{
    if (p->chk == HP_CHK_HTTP)
        return ssl ? CONFIG_CHECK_HTTPS : CONFIG_CHECK_HTTP;
    if (p->chk == HP_CHK_TLS)
        return CONFIG_CHECK_TLS;
    return ssl ? CONFIG_CHECK_TLS : CONFIG_CHECK_TCP;
}

/* haproxy: without "timeout check" the whole check must fit in inter; with it,
 * min(timeout connect, inter) to connect plus timeout check to answer. */
static uint32_t check_timeout(const struct hp_proxy *p, uint32_t inter)
{
    uint32_t connect = inter;

    if (!p->timeout_loc[HP_T_CHECK].line)
        return inter;
    if (p->timeout_loc[HP_T_CONNECT].line && p->timeout[HP_T_CONNECT] < inter)
        connect = p->timeout[HP_T_CONNECT];
    return connect + p->timeout[HP_T_CHECK] > UINT32_MAX - 1 ? UINT32_MAX
                                                             : connect + p->timeout[HP_T_CHECK];
}

static void resolve_check(struct hp_ctx *c, struct config_backend *be)
{
    const struct hp_proxy *p = &c->cur;
    const struct hp_srvopts *ref = &p->defsrv;
    struct config_check *chk = &be->check;
    bool ssl;

    for (size_t i = 0; i < p->n_servers && ref == &p->defsrv; i++)
        if (p->sopts[i].check)
            ref = &p->sopts[i];
    ssl = ref->check_ssl || p->chk_ssl;
    chk->type = check_type(p, ssl);
    chk->path = p->chk_path;
    chk->expect_status = p->chk_status;
    chk->interval_ms = ref->inter;
    chk->timeout_ms = check_timeout(p, ref->inter);
    chk->rise = ref->rise;
    chk->fall = ref->fall;
    chk->loc = chk->tls.loc = ref->loc.line ? ref->loc : p->loc;
    if (ssl) {
        chk->tls.ca_file = ref->ca_file;
        chk->tls.cert_file = chk->tls.key_file = ref->crt; /* haproxy's crt holds both */
        chk->tls.server_name = ref->sni;
        chk->tls.insecure_skip_verify = (ref->verify >= 0 ? ref->verify : c->verify_default) == 0;
    } else if (chk->type == CONFIG_CHECK_TLS) {
        chk->tls.insecure_skip_verify = true; /* ssl-hello-chk only wants a ServerHello */
    }
    for (size_t i = 0; i < p->n_servers; i++)
        if (p->sopts[i].check && &p->sopts[i] != ref && check_differs(ref, &p->sopts[i]))
            config_diags_add(c->diags, CONFIG_WARNING, c->file, p->sopts[i].loc,
                             "server '%s': check settings differ from line %d; kfront runs one "
                             "health check per backend and uses those of line %d",
                             p->servers[i].name, ref->loc.line, ref->loc.line);
}

void hp_finish_backend(struct hp_ctx *c)
{
    const struct hp_proxy *p = &c->cur;
    struct config *cfg = c->cfg;
    struct config_backend *be;

    cfg->backends = cfg_array_grow(cfg->arena, cfg->backends, cfg->n_backends, &c->cap_backends,
                                   sizeof(*cfg->backends));
    if (!cfg->backends) {
        c->oom = true;
        return;
    }
    be = &cfg->backends[cfg->n_backends++];
    cfg_backend_defaults(be);
    be->name = p->name;
    be->loc = p->loc;
    be->balance = p->balance;
    be->connect_retries = p->retries;
    be->servers = p->servers;
    be->n_servers = p->n_servers;
    resolve_check(c, be);
}
