/*
 * JSON tokenising: the only file that includes jsmn. Debian's libjsmn-dev is
 * header-only: without JSMN_HEADER the header defines the functions, and
 * JSMN_STATIC makes them static so they cannot clash with another copy.
 * JSMN_STRICT rejects bare words and primitives used as keys; JSMN_PARENT_LINKS
 * makes closing brackets O(1) (without it jsmn searches backwards, quadratic
 * on hostile input) and lets us check the document's shape in one pass.
 */
#define JSMN_STATIC
#define JSMN_STRICT
#define JSMN_PARENT_LINKS
#include <jsmn.h>

#include "cache/codec/codec_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(struct jtok) == sizeof(jsmntok_t), "jtok mirrors jsmntok_t");
_Static_assert(offsetof(struct jtok, start) == offsetof(jsmntok_t, start), "jtok.start");
_Static_assert(offsetof(struct jtok, end) == offsetof(jsmntok_t, end), "jtok.end");
_Static_assert(offsetof(struct jtok, size) == offsetof(jsmntok_t, size), "jtok.size");
_Static_assert(offsetof(struct jtok, parent) == offsetof(jsmntok_t, parent), "jtok.parent");

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/*
 * A byte pre-scan, much cheaper than jsmn, for two things jsmn cannot do:
 * bound the nesting depth (jsmn's close-bracket search walks up from the last
 * token, so its cost grows with depth: O(bytes x depth) on hostile input), and
 * size the token array once (tokens <= 2 x containers + strings + commas + 1).
 */
static int prescan(const char *js, size_t len, unsigned *ntok)
{
    size_t count = 1, depth = 0;
    bool in_str = false;
    for (size_t i = 0; i < len; i++) {
        char c = js[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
            continue;
        }
        if (c == '"') {
            in_str = true;
            count++;
        } else if (c == '{' || c == '[') {
            if (++depth > JSON_MAX_DEPTH)
                return -EBADMSG;
            count += 2;
        } else if (c == '}' || c == ']') {
            depth -= depth > 0;
        } else if (c == ',') {
            count++;
        }
    }
    *ntok = (unsigned)count;
    return 0;
}

/* One jsmn pass over a token array sized by prescan. */
static int tokenise(struct jdoc *d)
{
    jsmn_parser p;
    unsigned cap;
    int rc = prescan(d->js, d->len, &cap);
    if (rc < 0)
        return rc;
    d->tok = malloc(cap * sizeof(*d->tok));
    if (!d->tok)
        return -ENOMEM;
    jsmn_init(&p);
    rc = jsmn_parse(&p, d->js, d->len, (jsmntok_t *)(void *)d->tok, cap);
    if (rc < 0)
        return -EBADMSG; /* NOMEM cannot happen: prescan's count is an upper bound */
    d->n = rc;
    return 0;
}

/* Object members are string keys holding exactly one value; one root only. */
static int check_shape(const struct jdoc *d)
{
    for (int t = 1; t < d->n; t++) {
        int p = d->tok[t].parent;
        if (p < 0 || p >= t)
            return -EBADMSG;
        enum jtype pt = d->tok[p].type;
        if (pt == JT_OBJECT && (d->tok[t].type != JT_STRING || d->tok[t].size != 1))
            return -EBADMSG;
        if (pt == JT_PRIMITIVE || (pt == JT_STRING && d->tok[p].parent < 0))
            return -EBADMSG;
        if (d->tok[t].type == JT_STRING && d->tok[t].size > 0 && pt != JT_OBJECT)
            return -EBADMSG;
    }
    return 0;
}

static int jdoc_check(struct jdoc *d)
{
    const char *js = d->js;

    if (d->n < 1 || d->tok[0].type != JT_OBJECT || d->tok[0].end < 0)
        return -EBADMSG;
    /* jsmn stops at a NUL and happily reads several roots: only whitespace may follow */
    for (size_t i = (size_t)d->tok[0].end; i < d->len; i++) {
        if (!is_ws(js[i]))
            return -EBADMSG;
    }
    for (size_t i = 0; i < (size_t)d->tok[0].start; i++) {
        if (!is_ws(js[i]))
            return -EBADMSG;
    }
    return check_shape(d);
}

int jdoc_parse(struct jdoc *d, const char *js, size_t len)
{
    memset(d, 0, sizeof(*d));
    if (len > JSON_MAX_LEN)
        return -EMSGSIZE;
    d->js = js;
    d->len = len;
    int rc = tokenise(d);
    if (rc == 0)
        rc = jdoc_check(d);
    if (rc < 0)
        jdoc_free(d); /* a failed parse holds nothing: callers need not free it */
    return rc;
}

void jdoc_free(struct jdoc *d)
{
    free(d->tok);
    d->tok = NULL;
    d->n = 0;
}

int jskip(const struct jdoc *d, int i)
{
    int end = d->tok[i].end;
    int j = i + 1;
    while (j < d->n && d->tok[j].start < end)
        j++;
    return j;
}

struct codec_str jraw(const struct jdoc *d, int i)
{
    struct codec_str s = {d->js + d->tok[i].start, (size_t)(d->tok[i].end - d->tok[i].start)};
    return s;
}

bool jeq(const struct jdoc *d, int i, const char *s)
{
    return d->tok[i].type == JT_STRING && codec_str_eq(jraw(d, i), s);
}

bool utf8_valid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str, *end = s + len;
    while (s < end) {
        unsigned c = *s;
        if (c < 0x80) {
            s++;
            continue;
        }
        size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
        if (n == 0 || c > 0xf4 || (size_t)(end - s) < n)
            return false;
        uint32_t cp = c & (0x3f >> (n - 1));
        for (size_t k = 1; k < n; k++) {
            if ((s[k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[k] & 0x3f);
        }
        if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        s += n;
    }
    return true;
}

static int hex4(const char *p, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return -EBADMSG;
    }
    *out = v;
    return 0;
}

/* \uXXXX at p (p points at 'u'), with a following low surrogate when needed.
 * Lone surrogates become U+FFFD, as Go's decoder does. Returns bytes consumed after '\\'. */
static int unescape_u(const char *p, const char *end, uint32_t *cp)
{
    if (end - p < 5 || hex4(p + 1, cp) < 0)
        return -EBADMSG;
    if (*cp < 0xd800 || *cp > 0xdfff)
        return 5;
    uint32_t lo;
    if (*cp <= 0xdbff && end - p >= 11 && p[5] == '\\' && p[6] == 'u' && hex4(p + 7, &lo) == 0 &&
        lo >= 0xdc00 && lo <= 0xdfff) {
        *cp = 0x10000 + ((*cp - 0xd800) << 10) + (lo - 0xdc00);
        return 11;
    }
    *cp = 0xfffd;
    return 5;
}

static int unescape_one(const char **pp, const char *end, char *o, size_t *olen)
{
    const char *p = *pp + 1; /* past the backslash */
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    if (p >= end)
        return -EBADMSG;
    const char *hit = *p ? strchr(from, *p) : NULL;
    if (hit) {
        o[(*olen)++] = to[hit - from];
        *pp = p + 1;
        return 0;
    }
    if (*p != 'u')
        return -EBADMSG;
    uint32_t cp;
    int used = unescape_u(p, end, &cp);
    if (used < 0)
        return used;
    *olen += kf_utf8_encode(o + *olen, cp);
    *pp = p + used;
    return 0;
}

/* Unescape [s, s+len) into the arena (the result is never longer than the input). */
static int unescape(struct codec_str in, struct kf_arena *arena, struct codec_str *out)
{
    char *o = arena ? kf_arena_alloc(arena, in.len + 1) : NULL;
    if (!o)
        return -ENOMEM;
    size_t olen = 0;
    const char *p = in.ptr, *end = in.ptr + in.len;
    while (p < end) {
        if (*p != '\\') {
            o[olen++] = *p++;
            continue;
        }
        int rc = unescape_one(&p, end, o, &olen);
        if (rc < 0)
            return rc;
    }
    out->ptr = o;
    out->len = olen;
    return 0;
}

int jstring(const struct jdoc *d, int i, struct kf_arena *arena, struct codec_str *out)
{
    struct codec_str raw = jraw(d, i);
    out->ptr = raw.ptr;
    out->len = 0;
    if (d->tok[i].type == JT_PRIMITIVE && codec_str_eq(raw, "null"))
        return 0;
    if (d->tok[i].type != JT_STRING)
        return -EBADMSG;
    bool escaped = false;
    for (size_t k = 0; k < raw.len; k++) {
        unsigned char c = (unsigned char)raw.ptr[k];
        if (c < 0x20)
            return -EBADMSG; /* raw control characters are not JSON */
        escaped |= c == '\\';
    }
    if (!utf8_valid(raw.ptr, raw.len))
        return -EBADMSG;
    if (!escaped) {
        *out = raw;
        return 0;
    }
    return unescape(raw, arena, out);
}

bool parse_u64(struct codec_str s, uint64_t *out)
{
    uint64_t v = 0;
    if (s.len == 0 || s.len > 20)
        return false;
    for (size_t i = 0; i < s.len; i++) {
        unsigned dgt = (unsigned)(s.ptr[i] - '0');
        if (dgt > 9 || v > (UINT64_MAX - dgt) / 10)
            return false;
        v = v * 10 + dgt;
    }
    *out = v;
    return true;
}

bool parse_i64(struct codec_str s, int64_t *out)
{
    bool neg = s.len > 0 && s.ptr[0] == '-';
    struct codec_str digits = {s.ptr + neg, s.len - neg};
    uint64_t v;
    if (!parse_u64(digits, &v) || v > (uint64_t)INT64_MAX + neg)
        return false;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

static bool digits(const char *p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The zone after the seconds (and any fraction): Z or +hh:mm / -hh:mm. */
static bool parse_zone(const char *p, const char *end, int64_t *offset)
{
    if (p < end && *p == '.') {
        p++;
        while (p < end && *p >= '0' && *p <= '9')
            p++; /* the fraction: metadata times have whole seconds */
    }
    if (end - p == 1 && (*p == 'Z' || *p == 'z')) {
        *offset = 0;
        return true;
    }
    int hh, mm;
    if (end - p != 6 || (*p != '+' && *p != '-') || p[3] != ':' || !digits(p + 1, 2, &hh) ||
        !digits(p + 4, 2, &mm))
        return false;
    *offset = (hh * 3600 + mm * 60) * (*p == '-' ? -1 : 1);
    return true;
}

bool parse_rfc3339(struct codec_str s, int64_t *out)
{
    const char *p = s.ptr;
    int y, mo, d, h, mi, sec;
    if (s.len < 20 || p[4] != '-' || p[7] != '-' || (p[10] != 'T' && p[10] != 't') ||
        p[13] != ':' || p[16] != ':')
        return false;
    if (!digits(p, 4, &y) || !digits(p + 5, 2, &mo) || !digits(p + 8, 2, &d) ||
        !digits(p + 11, 2, &h) || !digits(p + 14, 2, &mi) || !digits(p + 17, 2, &sec))
        return false;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return false;
    int64_t offset;
    if (!parse_zone(p + 19, s.ptr + s.len, &offset))
        return false;
    *out = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset;
    return true;
}
