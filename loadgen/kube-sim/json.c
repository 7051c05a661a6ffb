/*
 * json: a string builder, Go encoding/json compatible string escaping, a
 * small validating DOM parser for request bodies, and Go's json.Indent.
 *
 * The apiserver encodes with Go's encoding/json (HTML escaping on), so every
 * string we emit goes through ks_sb_json_str() to produce the same bytes.
 */
#include "loadgen/kube-sim/kube_sim.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- string builder ------------------------------------------------------- */

void ks_sb_init(struct ks_sb *sb, size_t cap)
{
    sb->len = 0;
    sb->err = 0;
    sb->cap = cap ? cap : 256;
    sb->p = malloc(sb->cap);
    if (!sb->p) {
        sb->cap = 0;
        sb->err = -ENOMEM;
    }
}

void ks_sb_free(struct ks_sb *sb)
{
    free(sb->p);
    sb->p = NULL;
    sb->len = sb->cap = 0;
}

bool ks_sb_reserve(struct ks_sb *sb, size_t extra)
{
    if (sb->err)
        return false;
    if (sb->cap - sb->len >= extra)
        return true;
    size_t cap = sb->cap ? sb->cap : 256;
    while (cap - sb->len < extra)
        cap *= 2;
    char *p = realloc(sb->p, cap);
    if (!p) {
        sb->err = -ENOMEM;
        return false;
    }
    sb->p = p;
    sb->cap = cap;
    return true;
}

void ks_sb_add(struct ks_sb *sb, const void *data, size_t n)
{
    if (n && ks_sb_reserve(sb, n)) {
        memcpy(sb->p + sb->len, data, n);
        sb->len += n;
    }
}

void ks_sb_adds(struct ks_sb *sb, const char *s)
{
    ks_sb_add(sb, s, strlen(s));
}

void ks_sb_addc(struct ks_sb *sb, char c)
{
    if (ks_sb_reserve(sb, 1))
        sb->p[sb->len++] = c;
}

static void sb_vprintf(struct ks_sb *sb, const char *fmt, va_list ap) KF_PRINTF(2, 0);

static void sb_vprintf(struct ks_sb *sb, const char *fmt, va_list ap)
{
    va_list copy;
    int n;

    /* one pass when it fits, which is nearly always */
    if (!ks_sb_reserve(sb, 256))
        return;
    va_copy(copy, ap);
    n = vsnprintf(sb->p + sb->len, sb->cap - sb->len, fmt, copy);
    va_end(copy);
    if (n < 0)
        return;
    if ((size_t)n >= sb->cap - sb->len) {
        if (!ks_sb_reserve(sb, (size_t)n + 1))
            return;
        vsnprintf(sb->p + sb->len, (size_t)n + 1, fmt, ap);
    }
    sb->len += (size_t)n;
}

/*
 * The generator's templates are long and mostly literal: copy literal runs
 * with memcpy and format only the few conversions (%s %d %u %lld %llu %zu %%),
 * several times faster than vsnprintf. Anything else goes to vsnprintf.
 */
/* Only %s %d %u %lld %llu %zu %% in fmt? */
static bool fast_format(const char *fmt)
{
    static const char *const ok[] = {"s", "d", "u", "lld", "llu", "zu", "%"};

    for (const char *p = strchr(fmt, '%'); p; p = strchr(p, '%')) {
        size_t i;
        p++;
        for (i = 0; i < KF_ARRAY_SIZE(ok); i++)
            if (strncmp(p, ok[i], strlen(ok[i])) == 0)
                break;
        if (i == KF_ARRAY_SIZE(ok))
            return false;
        p += strlen(ok[i]);
    }
    return true;
}

void ks_sb_printf(struct ks_sb *sb, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    if (!fast_format(fmt)) {
        sb_vprintf(sb, fmt, ap);
        va_end(ap);
        return;
    }
    for (const char *p = fmt;;) {
        const char *pct = strchr(p, '%');
        if (!pct) {
            ks_sb_adds(sb, p);
            break;
        }
        ks_sb_add(sb, p, (size_t)(pct - p));
        p = pct + 1;
        if (*p == 's') {
            const char *str = va_arg(ap, const char *);
            ks_sb_adds(sb, str ? str : "(null)");
            p++;
        } else if (*p == 'd') {
            ks_sb_i64(sb, va_arg(ap, int));
            p++;
        } else if (*p == 'u') {
            ks_sb_u64(sb, va_arg(ap, unsigned));
            p++;
        } else if (strncmp(p, "lld", 3) == 0) {
            ks_sb_i64(sb, va_arg(ap, long long));
            p += 3;
        } else if (strncmp(p, "llu", 3) == 0) {
            ks_sb_u64(sb, va_arg(ap, unsigned long long));
            p += 3;
        } else if (strncmp(p, "zu", 2) == 0) {
            ks_sb_u64(sb, va_arg(ap, size_t));
            p += 2;
        } else {
            ks_sb_addc(sb, '%');
            p++;
        }
    }
    va_end(ap);
}

void ks_sb_u64(struct ks_sb *sb, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof(tmp);

    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    ks_sb_add(sb, tmp + i, sizeof(tmp) - i);
}

void ks_sb_i64(struct ks_sb *sb, int64_t v)
{
    if (v < 0) {
        ks_sb_addc(sb, '-');
        ks_sb_u64(sb, (uint64_t)0 - (uint64_t)v);
    } else {
        ks_sb_u64(sb, (uint64_t)v);
    }
}

char *ks_sb_cstr(struct ks_sb *sb)
{
    if (!ks_sb_reserve(sb, 1))
        return NULL;
    sb->p[sb->len] = '\0';
    return sb->p;
}

/* ---- Go string escaping ---------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (1..4), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned c = s[0];
    size_t len;
    uint32_t v, min;

    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if ((c & 0xe0) == 0xc0) {
        len = 2, v = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        len = 3, v = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return len;
}

static bool json_plain(unsigned char c)
{
    return c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' && c < 0x80;
}

void ks_sb_json_str(struct ks_sb *sb, const char *str, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;

    ks_sb_addc(sb, '"');
    while (i < n) {
        size_t start = i;
        while (i < n && json_plain(s[i]))
            i++;
        ks_sb_add(sb, s + start, i - start);
        if (i >= n)
            break;
        unsigned char c = s[i];
        uint32_t cp;
        size_t len;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            ks_sb_add(sb, esc, 2);
            i++;
        } else if (c == '\n' || c == '\r' || c == '\t') {
            char esc[2] = {'\\', c == '\n' ? 'n' : c == '\r' ? 'r' : 't'};
            ks_sb_add(sb, esc, 2);
            i++;
        } else if (c < 0x80) {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            ks_sb_add(sb, esc, 6);
            i++;
        } else if ((len = utf8_len(s + i, n - i, &cp)) == 0) {
            ks_sb_adds(sb, "\\ufffd");
            i++;
        } else if (cp == 0x2028 || cp == 0x2029) {
            ks_sb_adds(sb, cp == 0x2028 ? "\\u2028" : "\\u2029");
            i += len;
        } else {
            ks_sb_add(sb, s + i, len);
            i += len;
        }
    }
    ks_sb_addc(sb, '"');
}

void ks_sb_json_cstr(struct ks_sb *sb, const char *s)
{
    ks_sb_json_str(sb, s, strlen(s));
}

/* ---- Go json.Indent(dst, src, "", "  ") ------------------------------------ */

static void newline(struct ks_sb *out, int depth)
{
    ks_sb_addc(out, '\n');
    for (int i = 0; i < depth; i++)
        ks_sb_add(out, "  ", 2);
}

void ks_json_indent(struct ks_sb *out, const char *src, size_t n)
{
    int depth = 0;
    bool need_indent = false;

    for (size_t i = 0; i < n; i++) {
        char c = src[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
            continue;
        if (need_indent && c != ']' && c != '}') {
            need_indent = false;
            depth++;
            newline(out, depth);
        }
        if (c == '"') {
            size_t start = i++;
            while (i < n && src[i] != '"')
                i += src[i] == '\\' ? 2 : 1;
            ks_sb_add(out, src + start, (i < n ? i + 1 : n) - start);
            continue;
        }
        switch (c) {
        case '{':
        case '[':
            need_indent = true;
            ks_sb_addc(out, c);
            break;
        case ',':
            ks_sb_addc(out, c);
            newline(out, depth);
            break;
        case ':':
            ks_sb_add(out, ": ", 2);
            break;
        case '}':
        case ']':
            if (need_indent) {
                need_indent = false; /* "{}" and "[]" stay compact */
            } else {
                depth--;
                newline(out, depth);
            }
            ks_sb_addc(out, c);
            break;
        default:
            ks_sb_addc(out, c);
        }
    }
}

/* ---- DOM parser ------------------------------------------------------------- */

struct parser {
    const char *s;
    size_t n, i;
    struct kf_arena *arena;
    int depth;
    char *err;
    size_t err_size;
};

#define MAX_DEPTH 256

static void skip_ws(struct parser *p)
{
    while (p->i < p->n &&
           (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
        p->i++;
}

/* Go's wording: "invalid character 'x' looking for beginning of value". */
static int fail_char(struct parser *p, const char *context)
{
    if (p->i >= p->n) {
        snprintf(p->err, p->err_size, "unexpected end of JSON input");
    } else {
        unsigned char c = (unsigned char)p->s[p->i];
        if (c >= 0x20 && c < 0x7f && c != '\'')
            snprintf(p->err, p->err_size, "invalid character '%c' %s", c, context);
        else
            snprintf(p->err, p->err_size, "invalid character '\\x%02x' %s", c, context);
    }
    return -EINVAL;
}

static int hex4(const char *s, uint32_t *v)
{
    *v = 0;
    for (int k = 0; k < 4; k++) {
        char c = s[k];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        *v = (*v << 4) | (uint32_t)d;
    }
    return 0;
}

/* One escape after '\\' at p->i; appends its bytes to o. */
static int unescape(struct parser *p, char *o, size_t *olen)
{
    char c = p->s[p->i];
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *hit = c ? strchr(from, c) : NULL;

    if (hit) {
        o[(*olen)++] = to[hit - from];
        p->i++;
        return 0;
    }
    uint32_t cp, lo;
    if (c != 'u' || p->n - p->i < 5 || hex4(p->s + p->i + 1, &cp) < 0)
        return fail_char(p, "in string escape code");
    p->i += 5;
    if (cp >= 0xd800 && cp < 0xdc00 && p->n - p->i >= 6 && p->s[p->i] == '\\' &&
        p->s[p->i + 1] == 'u' && hex4(p->s + p->i + 2, &lo) == 0 && lo >= 0xdc00 && lo < 0xe000) {
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        p->i += 6;
    } else if (cp >= 0xd800 && cp < 0xe000) {
        cp = 0xfffd;
    }
    *olen += kf_utf8_encode(o + *olen, cp);
    return 0;
}

static const bool special_byte[256] = {
    [0 ... 0x1f] = true,
    ['"'] = true,
    ['\\'] = true,
};

static int parse_string(struct parser *p, const char **out, size_t *out_len)
{
    size_t start = ++p->i, end = start;
    bool plain = true;

    for (;;) {
        /* skip the ordinary bytes fast: only '"', '\\' and control bytes need a look */
        while (end < p->n && !special_byte[(unsigned char)p->s[end]])
            end++;
        if (end >= p->n || p->s[end] == '"')
            break;
        if ((unsigned char)p->s[end] < 0x20) {
            p->i = end;
            return fail_char(p, "in string literal");
        }
        plain = false; /* a backslash */
        end += 2;
    }
    if (end >= p->n) {
        p->i = p->n;
        return fail_char(p, "");
    }
    char *o = kf_arena_alloc(p->arena, end - start + 1);
    if (!o)
        return -ENOMEM;
    size_t olen = 0;
    if (plain) {
        memcpy(o, p->s + start, end - start);
        olen = end - start;
        p->i = end;
    } else {
        while (p->i < end) {
            if (p->s[p->i] == '\\') {
                p->i++;
                int rc = unescape(p, o, &olen);
                if (rc < 0)
                    return rc;
            } else {
                o[olen++] = p->s[p->i++];
            }
        }
    }
    o[olen] = '\0';
    p->i = end + 1;
    *out = o;
    *out_len = olen;
    return 0;
}

static int parse_number(struct parser *p, struct ks_json *j)
{
    size_t start = p->i;
    const char *s = p->s;

    if (p->i < p->n && s[p->i] == '-')
        p->i++;
    if (p->i >= p->n || s[p->i] < '0' || s[p->i] > '9')
        return fail_char(p, "in numeric literal");
    if (s[p->i] == '0')
        p->i++;
    else
        while (p->i < p->n && s[p->i] >= '0' && s[p->i] <= '9')
            p->i++;
    if (p->i < p->n && s[p->i] == '.') {
        p->i++;
        if (p->i >= p->n || s[p->i] < '0' || s[p->i] > '9')
            return fail_char(p, "after decimal point in numeric literal");
        while (p->i < p->n && s[p->i] >= '0' && s[p->i] <= '9')
            p->i++;
    }
    if (p->i < p->n && (s[p->i] == 'e' || s[p->i] == 'E')) {
        p->i++;
        if (p->i < p->n && (s[p->i] == '+' || s[p->i] == '-'))
            p->i++;
        if (p->i >= p->n || s[p->i] < '0' || s[p->i] > '9')
            return fail_char(p, "in exponent of numeric literal");
        while (p->i < p->n && s[p->i] >= '0' && s[p->i] <= '9')
            p->i++;
    }
    j->t = KS_J_NUM;
    j->s = kf_arena_strndup(p->arena, s + start, p->i - start);
    j->n = p->i - start;
    return j->s ? 0 : -ENOMEM;
}

static int parse_value(struct parser *p, struct ks_json *j);

static int parse_literal(struct parser *p, struct ks_json *j, const char *word, enum ks_jt t,
                         bool b)
{
    size_t len = strlen(word);

    for (size_t k = 0; k < len; k++) {
        if (p->i + k >= p->n || p->s[p->i + k] != word[k]) {
            p->i += k;
            return fail_char(p,
                             k ? "in literal (expecting word)" : "looking for beginning of value");
        }
    }
    p->i += len;
    j->t = t;
    j->b = b;
    return 0;
}

static int parse_members(struct parser *p, struct ks_json *j, bool object)
{
    struct ks_json **tail = &j->kids;
    char close = object ? '}' : ']';

    p->i++;
    skip_ws(p);
    if (p->i < p->n && p->s[p->i] == close) {
        p->i++;
        return 0;
    }
    for (;;) {
        struct ks_json *kid = kf_arena_alloc(p->arena, sizeof(*kid));
        int rc;
        if (!kid)
            return -ENOMEM;
        skip_ws(p);
        if (object) {
            if (p->i >= p->n || p->s[p->i] != '"')
                return fail_char(p, "looking for beginning of object key string");
            rc = parse_string(p, &kid->key, &kid->key_len);
            if (rc < 0)
                return rc;
            skip_ws(p);
            if (p->i >= p->n || p->s[p->i] != ':')
                return fail_char(p, "after object key");
            p->i++;
        }
        rc = parse_value(p, kid);
        if (rc < 0)
            return rc;
        *tail = kid;
        tail = &kid->next;
        j->count++;
        skip_ws(p);
        if (p->i < p->n && p->s[p->i] == ',') {
            p->i++;
            continue;
        }
        if (p->i < p->n && p->s[p->i] == close) {
            p->i++;
            return 0;
        }
        return fail_char(p, object ? "after object key:value pair" : "after array element");
    }
}

static int parse_value(struct parser *p, struct ks_json *j)
{
    skip_ws(p);
    if (p->i >= p->n)
        return fail_char(p, "");
    char c = p->s[p->i];
    int rc;
    switch (c) {
    case '{':
    case '[':
        if (++p->depth > MAX_DEPTH) {
            snprintf(p->err, p->err_size, "exceeded max depth of %d", MAX_DEPTH);
            return -EINVAL;
        }
        j->t = c == '{' ? KS_J_OBJ : KS_J_ARR;
        rc = parse_members(p, j, c == '{');
        p->depth--;
        return rc;
    case '"':
        j->t = KS_J_STR;
        return parse_string(p, &j->s, &j->n);
    case 't':
        return parse_literal(p, j, "true", KS_J_BOOL, true);
    case 'f':
        return parse_literal(p, j, "false", KS_J_BOOL, false);
    case 'n':
        return parse_literal(p, j, "null", KS_J_NULL, false);
    default:
        if (c == '-' || (c >= '0' && c <= '9'))
            return parse_number(p, j);
        return fail_char(p, "looking for beginning of value");
    }
}

int ks_json_parse(struct kf_arena *arena, const char *text, size_t len, struct ks_json **out,
                  char *err, size_t err_size)
{
    struct parser p = {.s = text, .n = len, .arena = arena, .err = err, .err_size = err_size};
    struct ks_json *root = kf_arena_alloc(arena, sizeof(*root));
    int rc;

    if (err_size)
        err[0] = '\0';
    if (!root)
        return -ENOMEM;
    rc = parse_value(&p, root);
    if (rc == 0) {
        skip_ws(&p);
        if (p.i < p.n)
            rc = fail_char(&p, "after top-level value");
    }
    if (rc == -ENOMEM)
        snprintf(err, err_size, "out of memory");
    if (rc < 0)
        return rc;
    *out = root;
    return 0;
}

/* ---- DOM helpers ------------------------------------------------------------- */

struct ks_json *ks_json_get(const struct ks_json *obj, const char *key)
{
    if (!obj || obj->t != KS_J_OBJ)
        return NULL;
    size_t len = strlen(key);
    for (struct ks_json *m = obj->kids; m; m = m->next)
        if (m->key_len == len && memcmp(m->key, key, len) == 0)
            return m;
    return NULL;
}

const char *ks_json_get_str(const struct ks_json *obj, const char *key)
{
    struct ks_json *v = ks_json_get(obj, key);
    return v && v->t == KS_J_STR ? v->s : NULL;
}

void ks_json_write(struct ks_sb *sb, const struct ks_json *j)
{
    switch (j->t) {
    case KS_J_NULL:
        ks_sb_add(sb, "null", 4);
        break;
    case KS_J_BOOL:
        ks_sb_adds(sb, j->b ? "true" : "false");
        break;
    case KS_J_NUM:
        ks_sb_add(sb, j->s, j->n);
        break;
    case KS_J_STR:
        ks_sb_json_str(sb, j->s, j->n);
        break;
    case KS_J_ARR:
    case KS_J_OBJ:
        ks_sb_addc(sb, j->t == KS_J_OBJ ? '{' : '[');
        for (struct ks_json *k = j->kids; k; k = k->next) {
            if (k != j->kids)
                ks_sb_addc(sb, ',');
            if (j->t == KS_J_OBJ) {
                ks_sb_json_str(sb, k->key, k->key_len);
                ks_sb_addc(sb, ':');
            }
            ks_json_write(sb, k);
        }
        ks_sb_addc(sb, j->t == KS_J_OBJ ? '}' : ']');
        break;
    }
}
