/*
 * haproxy_lex.c: the words of a haproxy.cfg line (quotes, backslash escapes,
 * comments, as haproxy splits them), their values (integers, haproxy times,
 * addresses) and the diagnostics that point at them.
 */
#include "config/config_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---- diagnostics and arguments ----------------------------------------------------- */

static void hp_vdiag(struct hp_ctx *c, enum config_severity sev, const struct hp_line *l,
                     size_t arg, const char *fmt, va_list ap) KF_PRINTF(5, 0);

static void hp_vdiag(struct hp_ctx *c, enum config_severity sev, const struct hp_line *l,
                     size_t arg, const char *fmt, va_list ap)
{
    char msg[400];
    struct config_loc at = {l->lineno, arg < l->argc ? l->col[arg] : 1};

    vsnprintf(msg, sizeof(msg), fmt, ap);
    config_diags_add(c->diags, sev, c->file, at, "%s", msg);
}

void hp_error(struct hp_ctx *c, const struct hp_line *l, size_t arg, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    hp_vdiag(c, CONFIG_ERROR, l, arg, fmt, ap);
    va_end(ap);
}

void hp_warn(struct hp_ctx *c, const struct hp_line *l, size_t arg, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    hp_vdiag(c, CONFIG_WARNING, l, arg, fmt, ap);
    va_end(ap);
}

const char *hp_where(const struct hp_ctx *c, char *buf, size_t size)
{
    static const struct {
        enum hp_kind kind;
        const char *name;
    } kinds[] = {{HP_FRONTEND, "frontend"}, {HP_BACKEND, "backend"}, {HP_LISTEN, "listen"}};

    for (size_t i = 0; i < KF_ARRAY_SIZE(kinds); i++)
        if (c->section == kinds[i].kind) {
            snprintf(buf, size, "in %s '%s'", kinds[i].name, c->cur.name);
            return buf;
        }
    snprintf(buf, size, "in %s section", c->section == HP_GLOBAL ? "global" : "defaults");
    return buf;
}

bool hp_want_args(struct hp_ctx *c, const struct hp_line *l, size_t n, const char *usage)
{
    if (l->argc >= n)
        return true;
    hp_error(c, l, 0, "'%s' expects %s", l->argv[0], usage);
    return false;
}

bool hp_uint(struct hp_ctx *c, const struct hp_line *l, size_t arg, uint32_t min, uint32_t max,
             uint32_t *out)
{
    const char *s = arg < l->argc ? l->argv[arg] : "";
    uint64_t v = 0;

    for (const char *p = s; *p && v <= UINT32_MAX; p++)
        v = *p >= '0' && *p <= '9' ? v * 10 + (uint64_t)(*p - '0') : UINT64_MAX;
    if (*s && v >= min && v <= max) {
        *out = (uint32_t)v;
        return true;
    }
    hp_error(c, l, arg < l->argc ? arg : 0, "'%s' expects an integer from %u to %u, got '%s'",
             l->argv[arg < l->argc ? arg - 1 : 0], min, max, s);
    return false;
}

/* haproxy times: a number of ms, or with one unit of us, ms, s, m, h or d. */
static int parse_time(const char *s, uint32_t *out)
{
    static const struct {
        const char *unit;
        uint64_t num, den; /* ms = value * num / den, rounded up */
    } units[] = {{"", 1, 1},      {"us", 1, 1000},   {"ms", 1, 1},      {"s", 1000, 1},
                 {"m", 60000, 1}, {"h", 3600000, 1}, {"d", 86400000, 1}};
    uint64_t v = 0;
    const char *p = s;

    for (; *p >= '0' && *p <= '9'; p++)
        if ((v = v * 10 + (uint64_t)(*p - '0')) > UINT32_MAX)
            return -ERANGE;
    if (p == s)
        return -EINVAL;
    for (size_t i = 0; i < KF_ARRAY_SIZE(units); i++) {
        if (strcmp(p, units[i].unit) != 0)
            continue;
        v = (v * units[i].num + units[i].den - 1) / units[i].den;
        if (v > UINT32_MAX)
            return -ERANGE;
        *out = (uint32_t)v;
        return 0;
    }
    return -EINVAL;
}

bool hp_time(struct hp_ctx *c, const struct hp_line *l, size_t arg, uint32_t *out)
{
    const char *s = arg < l->argc ? l->argv[arg] : "";
    int rc = parse_time(s, out);

    if (rc == 0)
        return true;
    hp_error(c, l, arg < l->argc ? arg : 0, "'%s' expects %s, got '%s'",
             l->argv[arg < l->argc ? arg - 1 : 0],
             rc == -ERANGE ? "a time below 49 days"
                           : "a time such as 5000 (ms), 5s, 1m (units us, ms, s, m, h, d)",
             s);
    return false;
}

const char *hp_strdup(struct hp_ctx *c, const char *s)
{
    char *copy = kf_arena_strdup(c->cfg->arena, s);

    if (!copy)
        c->oom = true;
    return copy;
}

const char *hp_address(struct hp_ctx *c, const char *text)
{
    bool v6 = strncmp(text, "ipv6@", 5) == 0;
    const char *colon, *host;
    char *out;

    if (v6 || strncmp(text, "ipv4@", 5) == 0)
        text += 5;
    colon = strrchr(text, ':');
    if (text[0] == '[' || !colon)
        return hp_strdup(c, text);
    host = memchr(text, ':', (size_t)(colon - text)) ? text : NULL;
    if (!host && !(v6 && (colon == text || (colon == text + 1 && text[0] == '*'))))
        return hp_strdup(c, text);
    /* haproxy writes IPv6 without brackets ("fd00::1:6443", ":::6443"). */
    if (!host)
        out = kf_arena_sprintf(c->cfg->arena, "[::]%s", colon);
    else
        out = kf_arena_sprintf(c->cfg->arena, "[%.*s]%s", (int)(colon - text), text, colon);
    if (!out)
        c->oom = true;
    return out;
}

/* ---- words --------------------------------------------------------------------------- */

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f')
        return (ch | 0x20) - 'a' + 10;
    return -1;
}

/* A backslash escape at s[*i]: \r \n \t \xHH or the next character itself. */
static int escape(const char *s, size_t len, size_t *i, char *out)
{
    char e;

    if (*i + 1 >= len)
        return -EINVAL;
    e = s[*i + 1];
    *i += 2;
    switch (e) {
    case 'r':
        *out = '\r';
        return 0;
    case 'n':
        *out = '\n';
        return 0;
    case 't':
        *out = '\t';
        return 0;
    case 'x':
        if (*i + 2 > len || hexval(s[*i]) < 0 || hexval(s[*i + 1]) < 0)
            return -EINVAL;
        *out = (char)(hexval(s[*i]) * 16 + hexval(s[*i + 1]));
        *i += 2;
        return 0;
    default:
        *out = e;
        return 0;
    }
}

bool hp_split_words(struct hp_ctx *c, const char *s, size_t len, struct hp_line *l)
{
    size_t i = 0, o = 0;

    l->argc = 0;
    for (;;) {
        char quote = 0;

        while (i < len && (s[i] == ' ' || s[i] == '\t'))
            i++;
        if (i >= len || s[i] == '#')
            return true;
        if (l->argc == HP_MAX_ARGS) {
            hp_error(c, l, 0, "more than %d words on one line", HP_MAX_ARGS);
            return false;
        }
        l->col[l->argc] = (int)i + 1;
        l->argv[l->argc++] = l->buf + o;
        while (i < len && (quote || (s[i] != ' ' && s[i] != '\t' && s[i] != '#'))) {
            if (s[i] == '\\' && quote != '\'') {
                if (escape(s, len, &i, &l->buf[o++]) < 0)
                    goto bad_escape;
            } else if (!quote && (s[i] == '"' || s[i] == '\'')) {
                quote = s[i++];
            } else if (quote && s[i] == quote) {
                quote = 0, i++;
            } else if (quote == '"' && s[i] == '$') {
                hp_error(c, l, l->argc - 1, "environment variables are not supported");
                return false;
            } else {
                l->buf[o++] = s[i++];
            }
        }
        if (quote) {
            hp_error(c, l, l->argc - 1, "missing closing %c", quote);
            return false;
        }
        l->buf[o++] = '\0';
    }
bad_escape:
    hp_error(c, l, l->argc - 1, "bad backslash escape");
    return false;
}
