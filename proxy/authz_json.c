/*
 * The JSON of the reviews: SubjectAccessReview requests as the apiserver's
 * webhook authorizer builds them (authorization.k8s.io/v1, Go field order,
 * empty fields omitted), and the TokenReview / SubjectAccessReview answers
 * read with jsmn. Answers come from the network: every shape error is
 * -EBADMSG, never a crash and never an allow.
 */
#define JSMN_STATIC
#define JSMN_STRICT
#define JSMN_PARENT_LINKS
#include <jsmn.h>

#include "proxy/authz_internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cache/codec/codec.h"

#define MAX_TOKENS   4096
#define MAX_SEL_REQS 32

/* ---- the request -------------------------------------------------------------------- */

static void member(struct codec_buf *b, bool *first, const char *key, const char *v)
{
    if (!v || !v[0])
        return;
    codec_buf_puts(b, *first ? "\"" : ",\"");
    codec_buf_puts(b, key);
    codec_buf_puts(b, "\":");
    codec_json_string(b, v, strlen(v));
    *first = false;
}

static void string_array(struct codec_buf *b, const char *const *v, size_t n)
{
    codec_buf_puts(b, "[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            codec_buf_puts(b, ",");
        codec_json_string(b, v[i], strlen(v[i]));
    }
    codec_buf_puts(b, "]");
}

static void requirement(struct codec_buf *b, bool *first, const char *key, const char *op,
                        const char *const *values, size_t n)
{
    codec_buf_puts(b, *first ? "{\"key\":" : ",{\"key\":");
    codec_json_string(b, key, strlen(key));
    codec_buf_puts(b, ",\"operator\":\"");
    codec_buf_puts(b, op);
    codec_buf_puts(b, "\"");
    if (n) {
        codec_buf_puts(b, ",\"values\":");
        string_array(b, values, n);
    }
    codec_buf_puts(b, "}");
    *first = false;
}

/* Requirements only narrow a request: one that cannot be expressed is left out (the review
 * is then for a broader request), and a selector that does not parse is left out whole. */
static void field_requirements(struct codec_buf *b, const char *text)
{
    struct px_field_term t[MAX_SEL_REQS];
    char buf[2048];
    bool first = true;
    int n = text ? px_fieldsel_parse(text, buf, sizeof(buf), t, MAX_SEL_REQS) : 0;

    if (n <= 0)
        return;
    codec_buf_puts(b, ",\"fieldSelector\":{\"requirements\":[");
    for (int i = 0; i < n; i++)
        requirement(b, &first, t[i].key, t[i].neq ? "NotIn" : "In", &t[i].value, 1);
    codec_buf_puts(b, "]}");
}

static const char *label_op(enum codec_sel_op op)
{
    switch (op) {
    case CODEC_SEL_EQ:
    case CODEC_SEL_IN:
        return "In";
    case CODEC_SEL_NEQ:
    case CODEC_SEL_NOTIN:
        return "NotIn";
    case CODEC_SEL_EXISTS:
        return "Exists";
    case CODEC_SEL_NOT_EXISTS:
        return "DoesNotExist";
    default:
        return NULL; /* Gt, Lt: not expressible, left out as the apiserver does */
    }
}

static void label_requirements(struct codec_buf *b, const char *text)
{
    struct codec_label_selector sel = {0};
    char err[256];
    bool first = true;

    if (text && codec_label_selector_parse(text, &sel, err, sizeof(err)) == 0 && sel.n) {
        codec_buf_puts(b, ",\"labelSelector\":{\"requirements\":[");
        for (size_t i = 0; i < sel.n; i++) {
            const struct codec_label_req *r = &sel.reqs[i];
            if (label_op(r->op))
                requirement(b, &first, r->key, label_op(r->op), r->values, r->n_values);
        }
        codec_buf_puts(b, "]}");
    }
    codec_label_selector_free(&sel);
}

static bool selects(const struct px_reqinfo *info)
{
    return strcmp(info->verb, "list") == 0 || strcmp(info->verb, "watch") == 0 ||
           strcmp(info->verb, "deletecollection") == 0;
}

static void resource_attributes(struct codec_buf *b, const struct px_reqinfo *info, const char *fs,
                                const char *ls)
{
    char resource[sizeof(info->resource)];
    char *sub;
    bool first = true;

    memcpy(resource, info->resource, sizeof(resource));
    sub = strchr(resource, '/');
    if (sub)
        *sub++ = '\0';
    codec_buf_puts(b, "\"resourceAttributes\":{");
    member(b, &first, "namespace", info->namespace_);
    member(b, &first, "verb", info->verb);
    member(b, &first, "group", info->api_group);
    member(b, &first, "version", info->api_version);
    member(b, &first, "resource", resource);
    member(b, &first, "subresource", sub);
    member(b, &first, "name", info->name);
    if (selects(info)) {
        field_requirements(b, fs);
        label_requirements(b, ls);
    }
    codec_buf_puts(b, "}");
}

static void user_fields(struct codec_buf *b, const struct px_user *u)
{
    bool first = false;

    member(b, &first, "user", u->name);
    if (u->n_groups) {
        codec_buf_puts(b, ",\"groups\":");
        string_array(b, u->groups, u->n_groups);
    }
    if (u->n_extra) {
        codec_buf_puts(b, ",\"extra\":{");
        for (size_t i = 0; i < u->n_extra; i++) {
            codec_buf_puts(b, i ? "," : "");
            codec_json_string(b, u->extra[i].key, strlen(u->extra[i].key));
            codec_buf_puts(b, ":");
            string_array(b, u->extra[i].values, u->extra[i].n_values);
        }
        codec_buf_puts(b, "}");
    }
    member(b, &first, "uid", u->uid);
}

int px_authz_sar_body(struct codec_buf *out, const struct px_user *user,
                      const struct px_reqinfo *info, const char *path, const char *field_selector,
                      const char *label_selector)
{
    codec_buf_puts(out, "{\"kind\":\"SubjectAccessReview\",\"apiVersion\":"
                        "\"authorization.k8s.io/v1\",\"spec\":{");
    if (info->is_resource) {
        resource_attributes(out, info, field_selector, label_selector);
    } else {
        bool first = true;
        codec_buf_puts(out, "\"nonResourceAttributes\":{");
        member(out, &first, "path", path ? path : "/");
        member(out, &first, "verb", info->verb);
        codec_buf_puts(out, "}");
    }
    user_fields(out, user);
    codec_buf_puts(out, "}}");
    return out->err;
}

/* ---- reading answers ------------------------------------------------------------------ */

struct jdoc {
    const char *js;
    jsmntok_t *t;
    int n;
};

static int jdoc_parse(struct jdoc *d, const char *js, size_t len)
{
    jsmn_parser p;

    d->js = js;
    d->t = calloc(MAX_TOKENS, sizeof(*d->t));
    if (!d->t)
        return -ENOMEM;
    jsmn_init(&p);
    d->n = jsmn_parse(&p, js, len, d->t, MAX_TOKENS);
    if (d->n < 1 || d->t[0].type != JSMN_OBJECT)
        return -EBADMSG;
    return 0;
}

/* The token after i's whole subtree. */
static int skip(const struct jdoc *d, int i)
{
    int end = d->t[i].end, j = i + 1;

    while (j < d->n && d->t[j].start < end)
        j++;
    return j;
}

static bool tok_eq(const struct jdoc *d, int i, const char *s)
{
    size_t len = (size_t)(d->t[i].end - d->t[i].start);

    return d->t[i].type == JSMN_STRING && strlen(s) == len &&
           memcmp(d->js + d->t[i].start, s, len) == 0;
}

/* The value of key in object obj, or -1. */
static int get(const struct jdoc *d, int obj, const char *key)
{
    if (obj < 0 || d->t[obj].type != JSMN_OBJECT)
        return -1;
    for (int i = obj + 1, k = 0; k < d->t[obj].size && i + 1 < d->n; k++) {
        if (tok_eq(d, i, key))
            return i + 1;
        i = skip(d, i + 1);
    }
    return -1;
}

/* 1 true, 0 false or absent, -EBADMSG anything else. */
static int get_bool(const struct jdoc *d, int obj, const char *key)
{
    int v = get(d, obj, key);

    if (v < 0)
        return 0;
    if (d->t[v].type != JSMN_PRIMITIVE)
        return -EBADMSG;
    if (d->js[d->t[v].start] == 't')
        return 1;
    return d->js[d->t[v].start] == 'f' ? 0 : -EBADMSG;
}

static int hex4(const char *p)
{
    char digits[5] = {0};

    for (int i = 0; i < 4; i++) {
        if (!isxdigit((unsigned char)p[i]))
            return -1;
        digits[i] = p[i];
    }
    return (int)strtol(digits, NULL, 16);
}

/* \uXXXX (with a surrogate pair) at p[0..]; returns bytes read or -1. */
static int unicode_escape(const char *p, const char *end, char **o)
{
    int cp = end - p >= 6 ? hex4(p + 2) : -1, used = 6;

    if (cp >= 0xd800 && cp < 0xdc00 && end - p >= 12 && p[6] == '\\' && p[7] == 'u') {
        int lo = hex4(p + 8);
        if (lo >= 0xdc00 && lo < 0xe000) {
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            used = 12;
        }
    }
    if (cp < 0)
        return -1;
    *o += kf_utf8_encode(*o, (uint32_t)cp);
    return used;
}

/* The decoded string at token i, in arena; NULL if it is not a string (or ENOMEM). */
static const char *str_at(const struct jdoc *d, int i, struct kf_arena *arena)
{
    const char *p, *end;
    char *out, *o;

    if (i < 0 || d->t[i].type != JSMN_STRING)
        return NULL;
    p = d->js + d->t[i].start;
    end = d->js + d->t[i].end;
    out = o = kf_arena_alloc(arena, (size_t)(end - p) * 2 + 1); /* \uXXXX -> at most 4 bytes */
    while (out && p < end) {
        if (*p != '\\') {
            *o++ = *p++;
            continue;
        }
        static const char esc[] = "\"\\/bfnrt", val[] = "\"\\/\b\f\n\r\t";
        const char *e = p + 1 < end ? strchr(esc, p[1]) : NULL;
        if (e && *e) {
            *o++ = val[e - esc];
            p += 2;
        } else {
            int used = p + 1 < end && p[1] == 'u' ? unicode_escape(p, end, &o) : -1;
            if (used < 0)
                return NULL;
            p += used;
        }
    }
    if (out)
        *o = '\0';
    return out;
}

/* A JSON array of strings into a NULL-free array in arena; -EBADMSG on other shapes. */
static int str_array(const struct jdoc *d, int i, struct kf_arena *arena, const char ***out,
                     size_t *n)
{
    const char **v;

    *out = NULL;
    *n = 0;
    if (i < 0 || (d->t[i].type == JSMN_PRIMITIVE && d->js[d->t[i].start] == 'n'))
        return 0; /* absent or null */
    if (d->t[i].type != JSMN_ARRAY)
        return -EBADMSG;
    v = kf_arena_alloc(arena, ((size_t)d->t[i].size + 1) * sizeof(*v));
    if (!v)
        return -ENOMEM;
    for (int k = 0, j = i + 1; k < d->t[i].size; k++, j = skip(d, j))
        if (!(v[k] = str_at(d, j, arena)))
            return -EBADMSG;
    *out = v;
    *n = (size_t)d->t[i].size;
    return 0;
}

static int read_extra(const struct jdoc *d, int obj, struct kf_arena *arena, struct px_user *u)
{
    struct px_user_extra *x;
    int n;

    if (obj < 0)
        return 0;
    if (d->t[obj].type != JSMN_OBJECT)
        return -EBADMSG;
    n = d->t[obj].size;
    x = kf_arena_alloc(arena, ((size_t)n + 1) * sizeof(*x));
    if (!x)
        return -ENOMEM;
    for (int k = 0, i = obj + 1; k < n; k++, i = skip(d, i + 1)) {
        const char **values;
        x[k].key = str_at(d, i, arena);
        if (!x[k].key || str_array(d, i + 1, arena, &values, &x[k].n_values) < 0)
            return -EBADMSG;
        x[k].values = values;
    }
    u->extra = x;
    u->n_extra = (size_t)n;
    return 0;
}

/* No control bytes: a user kfront carries in header values (X-Remote-*, Impersonate-*). */
static bool header_safe(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

static bool user_header_safe(const struct px_user *u)
{
    bool ok = header_safe(u->name) && header_safe(u->uid);

    for (size_t i = 0; ok && i < u->n_groups; i++)
        ok = header_safe(u->groups[i]);
    for (size_t i = 0; ok && i < u->n_extra; i++) {
        ok = header_safe(u->extra[i].key);
        for (size_t j = 0; ok && j < u->extra[i].n_values; j++)
            ok = header_safe(u->extra[i].values[j]);
    }
    return ok;
}

static int read_user(const struct jdoc *d, int obj, struct kf_arena *arena, struct px_user *u)
{
    const char **groups;
    int uid = get(d, obj, "uid");

    memset(u, 0, sizeof(*u));
    u->name = str_at(d, get(d, obj, "username"), arena);
    u->uid = uid < 0 ? "" : str_at(d, uid, arena);
    if (!u->name || !u->name[0] || !u->uid ||
        str_array(d, get(d, obj, "groups"), arena, &groups, &u->n_groups) < 0 ||
        read_extra(d, get(d, obj, "extra"), arena, u) < 0)
        return -EBADMSG;
    u->groups = groups;
    /* such a user cannot be vouched for in headers: the review counts as failed (front-proxy
     * mode then passes the token through for the apiserver to judge) */
    return user_header_safe(u) ? 0 : -EBADMSG;
}

static bool is_kind(const struct jdoc *d, const char *kind)
{
    int k = get(d, 0, "kind");

    return k < 0 || tok_eq(d, k, kind); /* kind may be left out; never another kind */
}

int px_authz_parse_token_review(const char *json, size_t len, struct kf_arena *arena,
                                struct px_user *user)
{
    struct jdoc d;
    int rc = jdoc_parse(&d, json, len), status = rc < 0 ? -1 : get(&d, 0, "status"), ok;

    if (rc < 0 || !is_kind(&d, "TokenReview") || status < 0 || d.t[status].type != JSMN_OBJECT) {
        rc = rc == -ENOMEM ? rc : -EBADMSG;
    } else if ((ok = get_bool(&d, status, "authenticated")) <= 0) {
        rc = ok < 0 ? -EBADMSG : 0;
    } else {
        int u = get(&d, status, "user");
        rc = u >= 0 && read_user(&d, u, arena, user) == 0 ? 1 : -EBADMSG;
    }
    free(d.t);
    return rc;
}

int px_authz_parse_sar(const char *json, size_t len, struct kf_arena *arena, const char **reason)
{
    struct jdoc d;
    int rc = jdoc_parse(&d, json, len), status = rc < 0 ? -1 : get(&d, 0, "status");

    *reason = NULL;
    if (rc < 0 || !is_kind(&d, "SubjectAccessReview") || status < 0 ||
        d.t[status].type != JSMN_OBJECT) {
        rc = rc == -ENOMEM ? rc : -EBADMSG;
    } else {
        int allowed = get(&d, status, "allowed"), r = get(&d, status, "reason");
        rc = allowed < 0 ? -EBADMSG : get_bool(&d, status, "allowed");
        if (rc == 0 && get(&d, status, "evaluationError") >= 0)
            rc = -EBADMSG; /* the authorizer could not decide: let the apiserver judge */
        if (rc == 0 && r >= 0 && !(*reason = str_at(&d, r, arena)))
            rc = -EBADMSG;
    }
    free(d.t);
    return rc;
}

/* ---- pretty printing ----------------------------------------------------------------- */

static void newline(struct codec_buf *out, int depth)
{
    codec_buf_puts(out, "\n");
    for (int i = 0; i < depth; i++)
        codec_buf_puts(out, "  ");
}

int authz_json_indent(struct codec_buf *out, const char *in, size_t len)
{
    int depth = 0;
    bool in_str = false;

    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (in_str) {
            codec_buf_append(out, &c, 1);
            if (c == '\\' && i + 1 < len)
                codec_buf_append(out, &in[++i], 1);
            else if (c == '"')
                in_str = false;
            continue;
        }
        if ((c == '{' || c == '[') && i + 1 < len && (in[i + 1] == '}' || in[i + 1] == ']')) {
            codec_buf_append(out, in + i, 2); /* empty: {} and [] stay as they are */
            i++;
        } else if (c == '{' || c == '[') {
            codec_buf_append(out, &c, 1);
            newline(out, ++depth);
        } else if (c == '}' || c == ']') {
            newline(out, --depth);
            codec_buf_append(out, &c, 1);
        } else if (c == ',') {
            codec_buf_puts(out, ",");
            newline(out, depth);
        } else if (c == ':') {
            codec_buf_puts(out, ": ");
        } else {
            in_str = c == '"';
            codec_buf_append(out, &c, 1);
        }
    }
    return out->err;
}
