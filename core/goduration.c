/*
 * Go's time.ParseDuration, for the apiserver's ?timeout= (filters/request_deadline.go):
 * a value Go refuses is the apiserver's 400, whose message carries Go's error text. kfront
 * only needs to know whether a value is valid (it forwards those that are not); kube-sim
 * writes the 400.
 *
 * Grammar: [-+]? ( "0" | ( [0-9]* ( "." [0-9]* )? unit )+ ), with at least one digit before
 * or after each point; units ns, us, µs (U+00B5), μs (U+03BC), ms, s, m, h. Totals beyond
 * 2^63-1 ns (2^63 when negative) are invalid, as are integer parts beyond 2^63.
 */
#include "core/core.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define LIMIT (UINT64_C(1) << 63)

struct unit {
    const char *name;
    uint64_t ns;
};

static const struct unit units[] = {
    {"ns", 1},
    {"us", 1000},
    {"\xc2\xb5s", 1000}, /* µs, MICRO SIGN */
    {"\xce\xbcs", 1000}, /* μs, GREEK SMALL LETTER MU */
    {"ms", 1000000},
    {"s", UINT64_C(1000000000)},
    {"m", UINT64_C(60000000000)},
    {"h", UINT64_C(3600000000000)},
};

/* Go's time.quote: "..." with " and \ escaped and every byte outside printable ASCII as \xHH
 * (a multi-byte character byte by byte, as Go does). */
static void go_time_quote(char *out, size_t size, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;

#define PUT(c)                                                                                     \
    do {                                                                                           \
        if (n + 1 < size)                                                                          \
            out[n++] = (c);                                                                        \
    } while (0)
    PUT('"');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x80) {
            PUT('\\');
            PUT('x');
            PUT(hex[c >> 4]);
            PUT(hex[c & 15]);
            continue;
        }
        if (c == '"' || c == '\\')
            PUT('\\');
        PUT((char)c);
    }
    PUT('"');
#undef PUT
    out[size ? (n < size ? n : size - 1) : 0] = '\0';
}

static int fail(char *err, size_t errlen, const char *orig, size_t olen, const char *what)
{
    char q[256];

    go_time_quote(q, sizeof(q), orig, olen);
    if (err && errlen)
        snprintf(err, errlen, "time: %s %s", what, q);
    return -EINVAL;
}

static int fail_unit(char *err, size_t errlen, const char *orig, size_t olen, const char *u,
                     size_t ulen)
{
    char qu[128], what[160];

    go_time_quote(qu, sizeof(qu), u, ulen);
    snprintf(what, sizeof(what), "unknown unit %s in duration", qu);
    return fail(err, errlen, orig, olen, what);
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Digits before the point; false when they pass 2^63 (Go's errLeadingInt). */
static bool leading_int(const char **s, const char *end, uint64_t *out)
{
    uint64_t x = 0;

    for (; *s < end && is_digit(**s); (*s)++) {
        if (x > LIMIT / 10)
            return false;
        x = x * 10 + (uint64_t)(**s - '0');
        if (x > LIMIT)
            return false;
    }
    *out = x;
    return true;
}

/* Digits after the point: the value and 10^digits kept, later digits read and dropped once
 * more would pass 2^63. */
static void leading_fraction(const char **s, const char *end, uint64_t *out, double *scale)
{
    uint64_t x = 0;
    bool overflow = false;

    *scale = 1;
    for (; *s < end && is_digit(**s); (*s)++) {
        if (overflow)
            continue;
        if (x > (LIMIT - 1) / 10) {
            overflow = true;
            continue;
        }
        uint64_t y = x * 10 + (uint64_t)(**s - '0');
        if (y > LIMIT) {
            overflow = true;
            continue;
        }
        x = y;
        *scale *= 10;
    }
    *out = x;
}

int kf_go_duration_parse(const char *orig, int64_t *out, char *err, size_t errlen)
{
    size_t olen = strlen(orig);
    const char *s = orig, *end = orig + olen;
    uint64_t total = 0;
    bool neg = false;

    if (s < end && (*s == '-' || *s == '+'))
        neg = *s++ == '-';
    if (end - s == 1 && *s == '0') {
        *out = 0;
        return 0;
    }
    if (s == end)
        return fail(err, errlen, orig, olen, "invalid duration");
    while (s < end) {
        uint64_t v = 0, f = 0;
        double scale = 1;
        const char *start = s;

        if (*s != '.' && !is_digit(*s))
            return fail(err, errlen, orig, olen, "invalid duration");
        if (!leading_int(&s, end, &v))
            return fail(err, errlen, orig, olen, "invalid duration");
        bool pre = s != start, post = false;
        if (s < end && *s == '.') {
            const char *frac = ++s;
            leading_fraction(&s, end, &f, &scale);
            post = s != frac;
        }
        if (!pre && !post)
            return fail(err, errlen, orig, olen, "invalid duration");
        const char *u = s;
        while (s < end && *s != '.' && !is_digit(*s))
            s++;
        if (s == u)
            return fail(err, errlen, orig, olen, "missing unit in duration");
        const struct unit *unit = NULL;
        for (size_t i = 0; i < KF_ARRAY_SIZE(units) && !unit; i++)
            if (strlen(units[i].name) == (size_t)(s - u) && memcmp(units[i].name, u, s - u) == 0)
                unit = &units[i];
        if (!unit)
            return fail_unit(err, errlen, orig, olen, u, (size_t)(s - u));
        if (v > LIMIT / unit->ns)
            return fail(err, errlen, orig, olen, "invalid duration");
        v *= unit->ns;
        if (f > 0) {
            /* as Go: in floating point, exact to the nanosecond for fractions of an hour */
            v += (uint64_t)((double)f * ((double)unit->ns / scale));
            if (v > LIMIT)
                return fail(err, errlen, orig, olen, "invalid duration");
        }
        total += v;
        if (total > LIMIT)
            return fail(err, errlen, orig, olen, "invalid duration");
    }
    if (!neg && total > LIMIT - 1)
        return fail(err, errlen, orig, olen, "invalid duration");
    *out = neg ? (int64_t)(0 - total) : (int64_t)total;
    return 0;
}
