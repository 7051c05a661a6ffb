/*
 * haproxy.c: import the haproxy.cfg that sits in front of the masters today.
 *
 * Lines are split into words the way haproxy does it (quotes, backslash
 * escapes, '#' comments), then each directive is looked up in a table that
 * says in which sections it may appear and what it maps to. The rule is that
 * nothing is dropped silently: a directive either maps onto the config, is a
 * warning ("ignored: ...") because it does not touch the data path (logging,
 * daemon, stats), or is an error naming its line because kfront would behave
 * differently without it.
 */
#include "config/config_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct hp_directive {
    const char *name; /* a trailing '*' matches any suffix */
    unsigned where;   /* enum hp_kind bits */
    hp_fn fn;         /* NULL: ignored with a warning giving why */
    const char *why;
};

#define HP_PROXY (HP_DEFAULTS | HP_FRONTEND | HP_BACKEND | HP_LISTEN)
#define HP_FE    (HP_DEFAULTS | HP_FRONTEND | HP_LISTEN)
#define HP_BE    (HP_DEFAULTS | HP_BACKEND | HP_LISTEN)
#define HP_ANY   (HP_GLOBAL | HP_PROXY)

/* ---- global and common directives ----------------------------------------------------- */

static void d_maxconn(struct hp_ctx *c, const struct hp_line *l)
{
    uint32_t *target = c->section == HP_GLOBAL ? &c->cfg->maxconn : &c->cur.maxconn;

    hp_uint(c, l, 1, 1, UINT32_MAX, target);
}

static void d_nbthread(struct hp_ctx *c, const struct hp_line *l)
{
    hp_uint(c, l, 1, 1, CFG_MAX_WORKERS, &c->cfg->workers);
}

static void d_nbproc(struct hp_ctx *c, const struct hp_line *l)
{
    uint32_t n;

    if (hp_uint(c, l, 1, 1, UINT32_MAX, &n) && n > 1)
        hp_error(c, l, 1, "nbproc %u is not supported: kfront runs one process, use nbthread", n);
}

static void d_hard_stop(struct hp_ctx *c, const struct hp_line *l)
{
    hp_time(c, l, 1, &c->cfg->timeouts.drain_ms);
}

static void d_base(struct hp_ctx *c, const struct hp_line *l)
{
    const char **target = strcmp(l->argv[0], "ca-base") == 0 ? &c->ca_base : &c->crt_base;

    if (hp_want_args(c, l, 2, "a directory"))
        *target = hp_strdup(c, l->argv[1]);
}

static void d_ssl_server_verify(struct hp_ctx *c, const struct hp_line *l)
{
    if (l->argc == 2 && strcmp(l->argv[1], "none") == 0)
        c->verify_default = 0;
    else if (l->argc == 2 && strcmp(l->argv[1], "required") == 0)
        c->verify_default = 1;
    else
        hp_error(c, l, l->argc > 1 ? 1 : 0, "'ssl-server-verify' expects none or required");
}

static void d_stats(struct hp_ctx *c, const struct hp_line *l)
{
    char where[128];

    if ((c->section & (HP_FRONTEND | HP_BACKEND | HP_LISTEN)) && !c->cur.stats_loc.line)
        c->cur.stats_loc = (struct config_loc){l->lineno, l->col[0]};
    hp_warn(c, l, 0, "ignored: 'stats' %s (kfront serves its metrics on admin.listen)",
            hp_where(c, where, sizeof(where)));
}

static void d_mode(struct hp_ctx *c, const struct hp_line *l)
{
    int i = l->argc == 2 ? cfg_name_index(config_mode_names, 2, l->argv[1]) : -1;

    if (i < 0) {
        hp_error(c, l, l->argc > 1 ? 1 : 0, "'mode' expects tcp or http");
        return;
    }
    c->cur.mode = (enum config_mode)i;
}

/* haproxy takes the client timeout from frontends and the others from backends. */
static bool timeout_unused(struct hp_ctx *c, const struct hp_line *l, int t)
{
    char where[128];
    bool client = t == HP_T_CLIENT;

    if ((c->section == HP_FRONTEND && !client) || (c->section == HP_BACKEND && client)) {
        hp_warn(c, l, 1, "ignored: 'timeout %s' %s (haproxy only uses it in %ss)", l->argv[1],
                hp_where(c, where, sizeof(where)), client ? "frontend" : "backend");
        return true;
    }
    return false;
}

static void d_timeout(struct hp_ctx *c, const struct hp_line *l)
{
    static const struct {
        const char *name;
        int t; /* enum hp_timeout, or -1 for ignored ones */
        const char *why;
    } names[] = {
        {"connect", HP_T_CONNECT, NULL},
        {"client", HP_T_CLIENT, NULL},
        {"server", HP_T_SERVER, NULL},
        {"tunnel", HP_T_TUNNEL, NULL},
        {"check", HP_T_CHECK, NULL},
        {"queue", -1, "kfront does not queue connections"},
        {"http-request", -1, "kfront bounds the first bytes with timeouts.clientHello"},
        {"http-keep-alive", -1, "kfront manages idle HTTP connections itself"},
        {"client-fin", -1, "kfront closes both directions together"},
        {"server-fin", -1, "kfront closes both directions together"},
        {"tarpit", -1, "kfront has no tarpit"},
    };
    char where[128];

    if (!hp_want_args(c, l, 3, "a name and a time"))
        return;
    for (size_t i = 0; i < KF_ARRAY_SIZE(names); i++) {
        uint32_t ms;

        if (strcmp(l->argv[1], names[i].name) != 0)
            continue;
        if (names[i].t < 0) {
            hp_warn(c, l, 0, "ignored: 'timeout %s' %s (%s)", names[i].name,
                    hp_where(c, where, sizeof(where)), names[i].why);
        } else if (l->argc > 3) {
            hp_error(c, l, 3, "unexpected '%s' after the time", l->argv[3]);
        } else if (hp_time(c, l, 2, &ms) && !timeout_unused(c, l, names[i].t)) {
            c->cur.timeout[names[i].t] = ms;
            c->cur.timeout_loc[names[i].t] = (struct config_loc){l->lineno, l->col[0]};
        }
        return;
    }
    hp_error(c, l, 1, "unsupported timeout '%s'", l->argv[1]);
}

/* ---- frontend directives ---------------------------------------------------------------- */

static void add_listen(struct hp_ctx *c, const struct hp_line *l, size_t arg, const char *text)
{
    struct hp_proxy *p = &c->cur;
    struct kf_arena *arena = c->cfg->arena;
    size_t cap = p->cap_listen;
    bool family = strncmp(text, "ipv4@", 5) == 0 || strncmp(text, "ipv6@", 5) == 0;
    const char *body = family ? text + 5 : text;

    if (strchr(body, '/') || strchr(body, '@') || strchr(body, '-')) {
        hp_error(c, l, arg,
                 "bind '%s': only IPv4 and IPv6 ADDR:PORT addresses (no unix sockets, "
                 "port ranges or fd@) are supported",
                 text);
        return;
    }
    p->listen = cfg_array_grow(arena, p->listen, p->n_listen, &cap, sizeof(*p->listen));
    p->listen_locs =
        cfg_array_grow(arena, p->listen_locs, p->n_listen, &p->cap_listen, sizeof(*p->listen_locs));
    if (!p->listen || !p->listen_locs) {
        c->oom = true;
        return;
    }
    p->listen_locs[p->n_listen] = (struct config_loc){l->lineno, l->col[arg]};
    p->listen[p->n_listen++] = hp_address(c, text);
}

static void d_bind(struct hp_ctx *c, const struct hp_line *l)
{
    static const char *const ignored[] = {"name",    "id",      "process", "thread", "nice",
                                          "backlog", "maxconn", "v4v6",    "v6only", "level"};
    static const char *const with_arg[] = {"name", "id",      "process", "thread",
                                           "nice", "backlog", "maxconn", "level"};
    char *list, *save = NULL;

    if (!hp_want_args(c, l, 2, "ADDR:PORT"))
        return;
    list = kf_arena_strdup(c->cfg->arena, l->argv[1]);
    if (!list) {
        c->oom = true;
        return;
    }
    for (char *a = strtok_r(list, ",", &save); a; a = strtok_r(NULL, ",", &save))
        add_listen(c, l, 1, a);
    for (size_t i = 2; i < l->argc; i++) {
        if (cfg_name_index(ignored, KF_ARRAY_SIZE(ignored), l->argv[i]) < 0) {
            hp_error(c, l, i, "unsupported bind option '%s'%s", l->argv[i],
                     strcmp(l->argv[i], "ssl") == 0 ? ": kfront does not terminate TLS from a "
                                                      "haproxy.cfg import (mode tcp passes it "
                                                      "through)"
                                                    : "");
            return; /* the words after an unknown option cannot be classified */
        }
        hp_warn(c, l, i, "ignored: bind option '%s'", l->argv[i]);
        if (cfg_name_index(with_arg, KF_ARRAY_SIZE(with_arg), l->argv[i]) >= 0)
            i++;
    }
}

static void d_default_backend(struct hp_ctx *c, const struct hp_line *l)
{
    if (!hp_want_args(c, l, 2, "a backend name"))
        return;
    if (l->argc > 2)
        hp_error(c, l, 2, "unexpected '%s' after the backend name", l->argv[2]);
    c->cur.default_backend = hp_strdup(c, l->argv[1]);
    c->cur.backend_loc = (struct config_loc){l->lineno, l->col[1]};
}

/* ---- options ---------------------------------------------------------------------------- */

/* forwardfor only acts in mode http, which is known when the proxy ends. */
static void o_http_only(struct hp_ctx *c, const struct hp_line *l)
{
    if (c->cur.http_only_loc.line)
        return;
    c->cur.http_only = hp_strdup(c, l->argv[1]);
    c->cur.http_only_loc = (struct config_loc){l->lineno, l->col[1]};
}

static void check_http_only(struct hp_ctx *c)
{
    const struct hp_proxy *p = &c->cur;

    /* Inherited from defaults it would be reported once per proxy. */
    if (!p->http_only_loc.line || p->http_only_loc.line == c->http_only_reported)
        return;
    c->http_only_reported = p->http_only_loc.line;
    if (p->mode == CONFIG_MODE_HTTP)
        config_diags_add(c->diags, CONFIG_ERROR, c->file, p->http_only_loc,
                         "option %s is not supported for '%s' (mode http): kfront's http mode "
                         "sets its own request headers",
                         p->http_only, p->name);
    else
        config_diags_add(c->diags, CONFIG_WARNING, c->file, p->http_only_loc,
                         "ignored: option %s does nothing for '%s' (mode tcp)", p->http_only,
                         p->name);
}

static const struct hp_directive options[] = {
    {"tcplog", HP_PROXY, NULL, "kfront logs connections its own way"},
    {"httplog", HP_PROXY, NULL, "kfront logs requests its own way"},
    {"dontlognull", HP_PROXY, NULL, "kfront does not log empty connections"},
    {"dontlog-normal", HP_PROXY, NULL, "kfront logs connections its own way"},
    {"log-separate-errors", HP_PROXY, NULL, "kfront logs connections its own way"},
    {"logasap", HP_PROXY, NULL, "kfront logs connections its own way"},
    {"log-health-checks", HP_BE, NULL, "kfront logs every server state change"},
    {"redispatch", HP_BE, NULL, "kfront always retries a failed connect on another server"},
    {"tcpka", HP_PROXY, NULL, "kfront enables TCP keepalive on every connection"},
    {"clitcpka", HP_FE, NULL, "kfront enables TCP keepalive on every connection"},
    {"srvtcpka", HP_BE, NULL, "kfront enables TCP keepalive on every connection"},
    {"splice-auto", HP_PROXY, NULL, "no effect on kfront"},
    {"splice-request", HP_PROXY, NULL, "no effect on kfront"},
    {"splice-response", HP_PROXY, NULL, "no effect on kfront"},
    {"http-server-close", HP_PROXY, NULL, "kfront manages HTTP connections itself"},
    {"http-keep-alive", HP_PROXY, NULL, "kfront manages HTTP connections itself"},
    {"httpclose", HP_PROXY, NULL, "kfront manages HTTP connections itself"},
    {"forwardfor", HP_PROXY, o_http_only, NULL},
    {"tcp-check", HP_BE, hp_option_tcp_check, NULL},
    {"httpchk", HP_BE, hp_option_httpchk, NULL},
    {"ssl-hello-chk", HP_BE, hp_option_ssl_hello, NULL},
};

static const struct hp_directive *find(const struct hp_directive *table, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(table[i].name);

        if (table[i].name[len - 1] == '*' ? strncmp(table[i].name, name, len - 1) == 0
                                          : strcmp(table[i].name, name) == 0)
            return &table[i];
    }
    return NULL;
}

/* Run d for l (whose keyword is word arg), or say why it is not supported. */
static void apply(struct hp_ctx *c, const struct hp_line *l, size_t arg,
                  const struct hp_directive *d, const char *what)
{
    char where[128];

    hp_where(c, where, sizeof(where));
    if (!d)
        hp_error(c, l, arg, "unsupported %s '%s' %s", what, l->argv[arg], where);
    else if (!(d->where & c->section))
        hp_error(c, l, arg, "%s '%s' is not allowed %s", what, l->argv[arg], where);
    else if (!d->fn)
        hp_warn(c, l, arg, "ignored: '%s%s' %s (%s)", arg ? "option " : "", l->argv[arg], where,
                d->why);
    else
        d->fn(c, l);
}

static void d_option(struct hp_ctx *c, const struct hp_line *l)
{
    if (hp_want_args(c, l, 2, "an option name"))
        apply(c, l, 1, find(options, KF_ARRAY_SIZE(options), l->argv[1]), "option");
}

/* "no option X": only options that are warnings anyway can be turned off. */
static void d_no(struct hp_ctx *c, const struct hp_line *l)
{
    const struct hp_directive *d;

    if (l->argc < 3 || strcmp(l->argv[1], "option") != 0) {
        hp_error(c, l, 0, "'no' expects 'option NAME'");
        return;
    }
    d = find(options, KF_ARRAY_SIZE(options), l->argv[2]);
    if (d && !d->fn)
        apply(c, l, 2, d, "option");
    else
        hp_error(c, l, 2, "unsupported 'no option %s'", l->argv[2]);
}

/* ---- the directive table ---------------------------------------------------------------- */

static const struct hp_directive directives[] = {
    {"maxconn", HP_GLOBAL | HP_FE, d_maxconn, NULL},
    {"nbthread", HP_GLOBAL, d_nbthread, NULL},
    {"nbproc", HP_GLOBAL, d_nbproc, NULL},
    {"hard-stop-after", HP_GLOBAL, d_hard_stop, NULL},
    {"ca-base", HP_GLOBAL, d_base, NULL},
    {"crt-base", HP_GLOBAL, d_base, NULL},
    {"ssl-server-verify", HP_GLOBAL, d_ssl_server_verify, NULL},
    {"stats", HP_ANY, d_stats, NULL},
    {"log", HP_ANY, NULL, "kfront logs to stderr"},
    {"log-tag", HP_ANY, NULL, "kfront logs to stderr"},
    {"log-send-hostname", HP_GLOBAL, NULL, "kfront logs to stderr"},
    {"daemon", HP_GLOBAL, NULL, "kfront runs in the foreground under its service manager"},
    {"master-worker", HP_GLOBAL, NULL, "kfront runs one process"},
    {"user", HP_GLOBAL, NULL, "the service manager chooses kfront's user"},
    {"group", HP_GLOBAL, NULL, "the service manager chooses kfront's group"},
    {"uid", HP_GLOBAL, NULL, "the service manager chooses kfront's user"},
    {"gid", HP_GLOBAL, NULL, "the service manager chooses kfront's group"},
    {"chroot", HP_GLOBAL, NULL, "the service manager sandboxes kfront"},
    {"pidfile", HP_GLOBAL, NULL, "kfront runs in the foreground"},
    {"ulimit-n", HP_GLOBAL, NULL, "set the file limit in the service manager"},
    {"cpu-map", HP_GLOBAL, NULL, "set CPU affinity in the service manager"},
    {"spread-checks", HP_GLOBAL, NULL, "kfront schedules its checks itself"},
    {"node", HP_GLOBAL, NULL, "no effect on kfront"},
    {"description", HP_ANY, NULL, "no effect on kfront"},
    {"tune.*", HP_GLOBAL, NULL, "kfront sizes its own buffers"},
    {"ssl-default-*", HP_GLOBAL, NULL, "kfront does not terminate TLS from a haproxy.cfg import"},
    {"mode", HP_PROXY, d_mode, NULL},
    {"timeout", HP_PROXY, d_timeout, NULL},
    {"option", HP_PROXY, d_option, NULL},
    {"no", HP_PROXY, d_no, NULL},
    {"bind", HP_FRONTEND | HP_LISTEN, d_bind, NULL},
    {"default_backend", HP_FE, d_default_backend, NULL},
    {"balance", HP_BE, hp_balance, NULL},
    {"retries", HP_BE, hp_retries, NULL},
    {"server", HP_BACKEND | HP_LISTEN, hp_server, NULL},
    {"default-server", HP_BE, hp_default_server, NULL},
    {"http-check", HP_BE, hp_http_check, NULL},
    {"tcp-check", HP_BE, hp_tcp_check, NULL},
};

/* ---- sections ------------------------------------------------------------------------------ */

static void merge_timeout(struct hp_ctx *c, enum hp_timeout t)
{
    static const char *const names[] = {"connect", "client", "server", "tunnel", "check"};
    const struct hp_proxy *p = &c->cur;

    if (!p->timeout_loc[t].line)
        return;
    if (!c->timeout_loc[t].line) {
        c->timeout[t] = p->timeout[t];
        c->timeout_loc[t] = p->timeout_loc[t];
    } else if (c->timeout[t] != p->timeout[t]) {
        config_diags_add(c->diags, CONFIG_WARNING, c->file, p->timeout_loc[t],
                         "timeout %s %u ms for '%s' differs from %u ms (line %d); kfront has "
                         "one %s timeout and keeps %u ms",
                         names[t], p->timeout[t], p->name, c->timeout[t], c->timeout_loc[t].line,
                         names[t], c->timeout[t]);
    }
}

static void finish_frontend(struct hp_ctx *c)
{
    struct hp_proxy *p = &c->cur;
    struct config *cfg = c->cfg;
    struct config_frontend *fe;

    cfg->frontends = cfg_array_grow(cfg->arena, cfg->frontends, cfg->n_frontends, &c->cap_frontends,
                                    sizeof(*cfg->frontends));
    if (!cfg->frontends) {
        c->oom = true;
        return;
    }
    fe = &cfg->frontends[cfg->n_frontends++];
    cfg_frontend_defaults(fe);
    fe->name = p->name;
    fe->loc = p->loc;
    fe->mode = p->mode;
    fe->maxconn = p->maxconn;
    fe->listen = p->listen;
    fe->listen_locs = p->listen_locs;
    fe->n_listen = p->n_listen;
    if (p->kind == HP_LISTEN && p->default_backend)
        config_diags_add(c->diags, CONFIG_ERROR, c->file, p->backend_loc,
                         "default_backend in listen '%s' is not supported: a listen section uses "
                         "its own servers",
                         p->name);
    fe->backend = p->kind == HP_LISTEN ? p->name : p->default_backend;
    fe->backend_loc = p->kind == HP_LISTEN ? p->loc : p->backend_loc;
    if (p->n_listen == 0)
        config_diags_add(c->diags, CONFIG_ERROR, c->file, p->loc, "%s '%s' has no bind line",
                         p->kind == HP_LISTEN ? "listen" : "frontend", p->name);
    if (!fe->backend)
        config_diags_add(c->diags, CONFIG_ERROR, c->file, p->loc,
                         "frontend '%s' has no default_backend", p->name);
    if (fe->mode == CONFIG_MODE_HTTP)
        config_diags_add(c->diags, CONFIG_WARNING, c->file, p->loc,
                         "'%s' is mode http: haproxy speaks plain HTTP there, kfront's http mode "
                         "terminates TLS; check it before use",
                         p->name);
    merge_timeout(c, HP_T_CLIENT);
}

static void finish_section(struct hp_ctx *c)
{
    struct hp_proxy *p = &c->cur;
    bool stats_only = p->stats_loc.line && p->n_servers == 0 && !p->default_backend;

    if (c->section & (HP_FRONTEND | HP_BACKEND | HP_LISTEN) && stats_only) {
        config_diags_add(c->diags, CONFIG_WARNING, c->file, p->loc,
                         "ignored: '%s' only serves haproxy statistics", p->name);
        return;
    }
    if (c->section & (HP_FRONTEND | HP_BACKEND | HP_LISTEN))
        check_http_only(c);
    if (c->section & (HP_FRONTEND | HP_LISTEN))
        finish_frontend(c);
    if (c->section & (HP_BACKEND | HP_LISTEN)) {
        hp_finish_backend(c);
        merge_timeout(c, HP_T_CONNECT);
        merge_timeout(c, HP_T_SERVER);
        merge_timeout(c, HP_T_TUNNEL);
    }
    if (c->section == HP_DEFAULTS)
        c->defaults = c->cur;
}

static void start_section(struct hp_ctx *c, const struct hp_line *l, enum hp_kind kind)
{
    finish_section(c);
    c->section = kind;
    if (kind == HP_DEFAULTS)
        hp_proxy_init(&c->cur, kind);
    else
        c->cur = c->defaults; /* a proxy starts from the last defaults section */
    c->cur.kind = kind;
    c->cur.loc = (struct config_loc){l->lineno, l->col[0]};
    c->cur.name = kind == HP_GLOBAL ? "global" : "defaults";
    if (kind & (HP_FRONTEND | HP_BACKEND | HP_LISTEN)) {
        if (!hp_want_args(c, l, 2, "a name"))
            c->cur.name = "";
        else
            c->cur.name = hp_strdup(c, l->argv[1]);
    }
    if (l->argc > (kind == HP_GLOBAL ? 1u : 2u))
        hp_error(c, l, kind == HP_GLOBAL ? 1 : 2, "unsupported '%s' after the section name",
                 l->argv[kind == HP_GLOBAL ? 1 : 2]);
}

static bool section_line(struct hp_ctx *c, const struct hp_line *l)
{
    static const struct {
        const char *name;
        enum hp_kind kind;
    } sections[] = {{"global", HP_GLOBAL},
                    {"defaults", HP_DEFAULTS},
                    {"frontend", HP_FRONTEND},
                    {"backend", HP_BACKEND},
                    {"listen", HP_LISTEN}};
    static const char *const ignored[] = {"userlist",    "mailers",     "ring",
                                          "log-forward", "http-errors", "program",
                                          "peers",       "resolvers",   "cache"};

    for (size_t i = 0; i < KF_ARRAY_SIZE(sections); i++)
        if (strcmp(l->argv[0], sections[i].name) == 0) {
            start_section(c, l, sections[i].kind);
            return true;
        }
    if (cfg_name_index(ignored, KF_ARRAY_SIZE(ignored), l->argv[0]) < 0)
        return false;
    finish_section(c);
    c->section = HP_IGNORED;
    hp_warn(c, l, 0, "ignored: section '%s' and everything in it", l->argv[0]);
    return true;
}

static void parse_line(struct hp_ctx *c, const struct hp_line *l)
{
    if (section_line(c, l) || c->section == HP_IGNORED)
        return;
    if (c->section == HP_NONE) {
        hp_error(c, l, 0,
                 "'%s' outside of a section (global, defaults, frontend, backend or "
                 "listen)",
                 l->argv[0]);
        return;
    }
    apply(c, l, 0, find(directives, KF_ARRAY_SIZE(directives), l->argv[0]), "directive");
}

/* ---- the whole file -------------------------------------------------------------------------- */

static void parse_text(struct hp_ctx *c, const char *text, size_t len)
{
    struct hp_line *l = &c->line;
    size_t start = 0;

    for (int lineno = 1; start < len && !c->oom; lineno++) {
        const char *nl = memchr(text + start, '\n', len - start);
        size_t end = nl ? (size_t)(nl - text) : len, n = end - start;

        l->lineno = lineno;
        l->argc = 0;
        if (n > 0 && text[end - 1] == '\r')
            n--;
        if (n > HP_MAX_LINE || memchr(text + start, '\0', n))
            hp_error(c, l, 0,
                     n > HP_MAX_LINE ? "line longer than %d bytes"
                                     : "NUL byte in line (limit %d bytes)",
                     HP_MAX_LINE);
        else if (hp_split_words(c, text + start, n, l) && l->argc > 0)
            parse_line(c, l);
        start = end + 1;
    }
    finish_section(c);
}

/* After the last section: timeouts, and the backends frontends refer to. */
static void finish_config(struct hp_ctx *c)
{
    struct config *cfg = c->cfg;
    struct config_timeouts *t = &cfg->timeouts;
    uint32_t *targets[] = {&t->connect_ms, &t->client_ms, &t->server_ms, &t->tunnel_ms};

    for (size_t i = 0; i < KF_ARRAY_SIZE(targets); i++)
        if (c->timeout_loc[i].line)
            *targets[i] = c->timeout[i];
    for (size_t i = 0; i < cfg->n_frontends; i++) {
        const struct config_frontend *fe = &cfg->frontends[i];

        if (fe->backend && !config_find_backend(cfg, fe->backend))
            config_diags_add(c->diags, CONFIG_ERROR, c->file, fe->backend_loc,
                             "default_backend '%s': no backend or listen section of that name",
                             fe->backend);
    }
}

int config_parse_haproxy(const char *name, const char *text, size_t len, struct config **out,
                         struct config_diags *diags)
{
    struct config_diags scratch;
    struct hp_ctx *c = calloc(1, sizeof(*c)); /* 6 KB with its line buffer */
    int rc;

    *out = NULL;
    if (!c)
        return -ENOMEM;
    c->diags = cfg_diags_begin(diags, &scratch);
    c->file = name;
    c->verify_default = 1;
    c->cfg = cfg_alloc(name);
    if (!c->cfg) {
        free(c);
        return -ENOMEM;
    }
    hp_proxy_init(&c->defaults, HP_DEFAULTS);
    parse_text(c, text, len);
    finish_config(c);
    if (c->oom) {
        config_free(c->cfg);
        free(c);
        return -ENOMEM;
    }
    rc = cfg_load_finish(c->cfg, c->diags, out);
    free(c);
    return rc;
}

int config_load_haproxy(const char *path, struct config **out, struct config_diags *diags)
{
    return cfg_load_file(path, config_parse_haproxy, out, diags);
}
