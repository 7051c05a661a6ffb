/*
 * Continue tokens, as the apiserver mints them:
 * base64url(no padding) of {"v":"meta.k8s.io/v1","rv":RV,"start":"<key>\u0000"}, where key is
 * the last returned object's key relative to the list's prefix ("name", or "ns/name" for a
 * list across namespaces) and the NUL means "the keys after it".
 */
#include "cache/codec/codec_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

int codec_continue_encode(struct codec_buf *out, int64_t rv, const char *last_key)
{
    struct codec_buf json;
    char num[24];
    size_t n = strlen(last_key);
    int rc;

    codec_buf_init(&json);
    codec_buf_puts(&json, "{\"v\":\"meta.k8s.io/v1\",\"rv\":");
    snprintf(num, sizeof(num), "%lld", (long long)rv);
    codec_buf_puts(&json, num);
    codec_buf_puts(&json, ",\"start\":");
    char *key = malloc(n + 1);
    if (key) {
        memcpy(key, last_key, n);
        key[n] = '\0';
        codec_json_string(&json, key, n + 1); /* the NUL, escaped \u0000 as Go writes it */
        free(key);
    } else {
        json.err = -ENOMEM;
    }
    codec_buf_puts(&json, "}");
    rc = json.err;
    if (rc == 0) {
        size_t start = out->len, cap = 4 * ((json.len + 2) / 3) + 1;
        char *tmp = malloc(cap);
        if (!tmp) {
            rc = -ENOMEM;
        } else {
            int len =
                EVP_EncodeBlock((unsigned char *)tmp, (unsigned char *)json.data, (int)json.len);
            while (len > 0 && tmp[len - 1] == '=') /* base64.RawURLEncoding: no padding */
                len--;
            for (int i = 0; i < len; i++)
                tmp[i] = tmp[i] == '+' ? '-' : tmp[i] == '/' ? '_' : tmp[i];
            codec_buf_append(out, tmp, (size_t)len);
            free(tmp);
            rc = out->err;
            (void)start;
        }
    }
    codec_buf_free(&json);
    return rc;
}

/* base64url without padding into a malloc'ed, NUL-terminated buffer; -(i+1) for a bad byte i. */
static int b64url_decode(const char *in, char **out, size_t *out_len)
{
    size_t n = strlen(in), padded = n;
    char *std = malloc(n + 4), *raw = malloc(n + 4);
    int len;

    if (!std || !raw) {
        free(std);
        free(raw);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (c == '-')
            c = '+';
        else if (c == '_')
            c = '/';
        else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) {
            free(std);
            free(raw);
            return -(int)(i + 1);
        }
        std[i] = c;
    }
    while (padded % 4)
        std[padded++] = '=';
    std[padded] = '\0';
    len =
        n % 4 == 1 ? -1 : EVP_DecodeBlock((unsigned char *)raw, (unsigned char *)std, (int)padded);
    free(std);
    if (len < 0) {
        free(raw);
        return -(int)(n + 1);
    }
    len -= (int)(padded - n);
    raw[len] = '\0';
    *out = raw;
    *out_len = (size_t)len;
    return 0;
}

static int member(const struct jdoc *d, const char *key)
{
    int n = d->tok[0].size, i = 1;

    for (int m = 0; m < n; m++) {
        if (jeq(d, i, key))
            return i + 1;
        i = jskip(d, i + 1);
    }
    return -1;
}

static int fail(char *err, size_t errlen, const char *what)
{
    snprintf(err, errlen, "continue key is not valid: %s", what);
    return -EINVAL;
}

int codec_continue_decode(const char *token, struct kf_arena *arena, int64_t *rv, char **start,
                          bool *after, char *err, size_t errlen)
{
    char *raw = NULL, msg[96];
    size_t len = 0;
    struct jdoc d;
    int rc = b64url_decode(token, &raw, &len);

    if (rc == -ENOMEM)
        return rc;
    if (rc < 0) {
        snprintf(msg, sizeof(msg), "illegal base64 data at input byte %d", -rc - 1);
        return fail(err, errlen, msg);
    }
    rc = jdoc_parse(&d, raw, len);
    if (rc < 0) {
        free(raw);
        return fail(err, errlen, "json: cannot unmarshal into continueToken");
    }
    int v = member(&d, "v"), r = member(&d, "rv"), s = member(&d, "start");
    struct codec_str sv = {"", 0};
    int64_t n = 0;
    if (s >= 0 && d.tok[s].type == JT_STRING)
        sv = jraw(&d, s); /* keys are names: no escapes but the final \u0000 */
    if (v < 0 || !jeq(&d, v, "meta.k8s.io/v1"))
        rc = fail(err, errlen, "server does not recognize this encoded version");
    else if (r < 0 || d.tok[r].type != JT_PRIMITIVE || !parse_i64(jraw(&d, r), &n) || n == 0)
        rc = fail(err, errlen, "incorrect encoded start resourceVersion (version meta.k8s.io/v1)");
    else if (!sv.len)
        rc = fail(err, errlen, "encoded start key empty (version meta.k8s.io/v1)");
    if (rc == 0) {
        *rv = n;
        /* "key\u0000" (what the apiserver hands out) means: the keys after key */
        *after = sv.len > 6 && memcmp(sv.ptr + sv.len - 6, "\\u0000", 6) == 0;
        *start = kf_arena_strndup(arena, sv.ptr, sv.len - (*after ? 6 : 0));
        if (!*start)
            rc = -ENOMEM;
        else if (strchr(*start, '\\') || strstr(*start, "..") || (*start)[0] == '/' || !(*start)[0])
            rc = fail(err, errlen, *start);
    }
    jdoc_free(&d);
    free(raw);
    return rc;
}
