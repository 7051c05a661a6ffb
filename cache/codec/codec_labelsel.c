/*
 * Label selectors: the apiserver's grammar (k8s.io/apimachinery pkg/labels),
 * its token rules and its error messages, so a selector kfront rejects is
 * rejected with the same 400 text, and one it accepts matches the same objects.
 */
#include "cache/codec/codec_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum tok {
    T_ERROR,
    T_END,
    T_CLOSE,
    T_COMMA,
    T_NOT,
    T_DEQ,
    T_EQ,
    T_GT,
    T_ID,
    T_IN,
    T_LT,
    T_NEQ,
    T_NOTIN,
    T_OPEN
};

struct item {
    enum tok t;
    const char *lit;
};

struct parser {
    struct item *items;
    size_t n, pos;
    struct kf_arena *tmp;
    struct codec_buf *err;
    struct codec_label_req *reqs;
    size_t nreq, capreq;
};

static const struct {
    const char *s;
    enum tok t;
} keywords[] = {{")", T_CLOSE}, {",", T_COMMA},     {"!", T_NOT}, {"==", T_DEQ},
                {"=", T_EQ},    {">", T_GT},        {"in", T_IN}, {"<", T_LT},
                {"!=", T_NEQ},  {"notin", T_NOTIN}, {"(", T_OPEN}};

static enum tok keyword(const char *s, size_t n)
{
    for (size_t i = 0; i < KF_ARRAY_SIZE(keywords); i++) {
        if (strlen(keywords[i].s) == n && memcmp(keywords[i].s, s, n) == 0)
            return keywords[i].t;
    }
    return T_ERROR;
}

static bool ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool special(char c)
{
    return c && strchr("=!(),><", c);
}

/* The longest run of special characters that is still a token ("!=" but "!" + "!"). */
static size_t lex_special(const char *s, struct item *it, struct kf_arena *a)
{
    size_t n = 0, best = 0;
    enum tok t = T_ERROR;
    while (special(s[n])) {
        n++;
        enum tok k = keyword(s, n);
        if (k != T_ERROR) {
            t = k;
            best = n;
        } else if (t != T_ERROR) {
            break;
        }
    }
    it->t = t;
    if (t == T_ERROR) {
        it->lit = kf_arena_sprintf(a, "error expected: keyword found '%.*s'", (int)n, s);
        return n;
    }
    it->lit = kf_arena_strndup(a, s, best);
    return best;
}

static int lex_all(struct parser *p, const char *s)
{
    size_t cap = strlen(s) + 2; /* at most one token per byte, plus the end */
    p->items = kf_arena_alloc(p->tmp, cap * sizeof(*p->items));
    if (!p->items)
        return -ENOMEM;
    for (;;) {
        while (ws(*s))
            s++;
        struct item *it = &p->items[p->n++];
        if (!*s) {
            it->t = T_END;
            it->lit = "";
            return 0;
        }
        size_t n;
        if (special(*s)) {
            n = lex_special(s, it, p->tmp);
        } else {
            for (n = 0; s[n] && !special(s[n]) && !ws(s[n]); n++)
                ;
            enum tok k = keyword(s, n);
            it->t = k == T_IN || k == T_NOTIN ? k : T_ID;
            it->lit = kf_arena_strndup(p->tmp, s, n);
        }
        if (!it->lit)
            return -ENOMEM;
        s += n;
    }
}

/* In a value position "in" and "notin" are plain identifiers. */
static struct item look(const struct parser *p, bool values)
{
    struct item it = p->items[p->pos < p->n ? p->pos : p->n - 1];
    if (values && (it.t == T_IN || it.t == T_NOTIN))
        it.t = T_ID;
    return it;
}

static struct item take(struct parser *p, bool values)
{
    struct item it = look(p, values);
    if (p->pos < p->n - 1)
        p->pos++;
    return it;
}

/* An error "<pre><lit><post>"; lit may be long, so no fixed-size formatting. */
static int fail(struct parser *p, const char *pre, const char *lit, const char *post)
{
    codec_buf_puts(p->err, pre);
    codec_buf_puts(p->err, lit);
    codec_buf_puts(p->err, post);
    return -EINVAL;
}

/* <path>: Invalid value: "<v>": <detail> (a field.Error). */
static void field_error(struct codec_buf *b, const char *path, const char *v, const char *detail,
                        size_t dlen)
{
    codec_buf_puts(b, path);
    codec_buf_puts(b, ": Invalid value: ");
    codec_go_quote(b, v, strlen(v));
    codec_buf_puts(b, ": ");
    codec_buf_append(b, detail, dlen);
}

/* strconv.ParseInt(s, 10, 64) succeeds (an optional sign, then decimal digits). */
static bool go_int64(const char *s)
{
    int64_t v;
    const char *d = *s == '+' ? s + 1 : s;
    if (*s == '+' && *d == '-')
        return false;
    return parse_i64((struct codec_str){d, strlen(d)}, &v);
}

/* utilerrors.Aggregate's text: one message alone, several as [a, b]. */
static void aggregate(struct codec_buf *out, char **msgs, size_t n)
{
    if (n > 1)
        codec_buf_puts(out, "[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            codec_buf_puts(out, ", ");
        codec_buf_puts(out, msgs[i]);
    }
    if (n > 1)
        codec_buf_puts(out, "]");
}

static char *value_error(struct parser *p, const char *path, const char *v, const char *detail,
                         size_t dlen)
{
    struct codec_buf m;
    if (!path)
        return NULL;
    codec_buf_init(&m);
    field_error(&m, path, v, detail, dlen);
    codec_buf_append(&m, "", 1);
    char *s = m.err ? NULL : kf_arena_strdup(p->tmp, m.data);
    codec_buf_free(&m);
    return s;
}

/* NewRequirement's checks of the values: integers for gt/lt, label value syntax. */
static int check_values(struct parser *p, const char *key, enum codec_sel_op op, const char **vals,
                        size_t n)
{
    char **msgs = kf_arena_alloc(p->tmp, (2 * n + 1) * sizeof(*msgs));
    size_t nm = 0;
    static const char gtlt[] = "for 'Gt', 'Lt' operators, the value must be an integer";
    if (!msgs)
        return -ENOMEM;
    for (size_t i = 0; (op == CODEC_SEL_GT || op == CODEC_SEL_LT) && i < n; i++) {
        const char *path = kf_arena_sprintf(p->tmp, "values[%zu]", i);
        if (!go_int64(vals[i]) &&
            !(msgs[nm++] = value_error(p, path, vals[i], gtlt, sizeof(gtlt) - 1)))
            return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        struct codec_buf d;
        codec_buf_init(&d);
        if (label_value_errors(vals[i], &d)) {
            const char *path = kf_arena_sprintf(p->tmp, "values[%zu][%s]", i, key);
            msgs[nm++] = value_error(p, path, vals[i], d.data, d.len);
        }
        codec_buf_free(&d);
        if (nm && !msgs[nm - 1])
            return -ENOMEM;
    }
    if (!nm)
        return 0;
    codec_buf_puts(p->err, "unable to parse requirement: ");
    aggregate(p->err, msgs, nm);
    return -EINVAL;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* sets.String semantics: sorted, unique. */
static size_t sort_unique(const char **v, size_t n)
{
    size_t o = 0;
    if (n > 1)
        qsort(v, n, sizeof(*v), cmp_str);
    for (size_t i = 0; i < n; i++) {
        if (o == 0 || strcmp(v[o - 1], v[i]) != 0)
            v[o++] = v[i];
    }
    return o;
}

static int add_req(struct parser *p, const char *key, enum codec_sel_op op, const char **vals,
                   size_t n)
{
    n = sort_unique(vals, n);
    int rc = check_values(p, key, op, vals, n);
    if (rc < 0)
        return rc;
    if (p->nreq == p->capreq) {
        size_t cap = p->capreq ? 2 * p->capreq : 8;
        struct codec_label_req *r = kf_arena_alloc(p->tmp, cap * sizeof(*r));
        if (!r)
            return -ENOMEM;
        if (p->nreq)
            memcpy(r, p->reqs, p->nreq * sizeof(*r));
        p->reqs = r;
        p->capreq = cap;
    }
    p->reqs[p->nreq++] = (struct codec_label_req){key, op, vals, n};
    return 0;
}

/* key, "!key" (does not exist) or key followed by end/comma (exists). */
static int parse_key(struct parser *p, const char **key, enum codec_sel_op *op, bool *unary)
{
    struct item it = take(p, true);
    *unary = false;
    if (it.t == T_NOT) {
        *op = CODEC_SEL_NOT_EXISTS;
        *unary = true;
        it = take(p, true);
    }
    if (it.t != T_ID)
        return fail(p, "unable to parse requirement: found '", it.lit, "', expected: identifier");
    struct codec_buf d;
    codec_buf_init(&d);
    if (label_key_errors(it.lit, &d)) {
        codec_buf_puts(p->err, "unable to parse requirement: ");
        field_error(p->err, "<nil>", it.lit, d.data, d.len);
        codec_buf_free(&d);
        return -EINVAL;
    }
    codec_buf_free(&d);
    *key = it.lit;
    enum tok next = look(p, true).t;
    if (!*unary && (next == T_END || next == T_COMMA)) {
        *op = CODEC_SEL_EXISTS;
        *unary = true;
    }
    return 0;
}

static int parse_operator(struct parser *p, enum codec_sel_op *op)
{
    struct item it = take(p, false);
    switch (it.t) {
    case T_IN:
        *op = CODEC_SEL_IN;
        return 0;
    case T_EQ:
    case T_DEQ:
        *op = CODEC_SEL_EQ;
        return 0;
    case T_GT:
        *op = CODEC_SEL_GT;
        return 0;
    case T_LT:
        *op = CODEC_SEL_LT;
        return 0;
    case T_NOTIN:
        *op = CODEC_SEL_NOTIN;
        return 0;
    case T_NEQ:
        *op = CODEC_SEL_NEQ;
        return 0;
    default:
        return fail(p, "unable to parse requirement: found '", it.lit,
                    "', expected: in, notin, =, ==, !=, gt, lt");
    }
}

/* A growable array of values in the parser's scratch arena. */
struct vals {
    const char **v;
    size_t n, cap;
};

static int push(struct parser *p, struct vals *vs, const char *s)
{
    if (vs->n == vs->cap) {
        size_t cap = vs->cap ? 2 * vs->cap : 4;
        const char **v = kf_arena_alloc(p->tmp, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        if (vs->n)
            memcpy(v, vs->v, vs->n * sizeof(*v));
        vs->v = v;
        vs->cap = cap;
    }
    vs->v[vs->n++] = s;
    return 0;
}

/* Inside "( ... )": identifiers and commas; empty members mean the empty value. */
static int parse_ident_list(struct parser *p, struct vals *vs)
{
    for (;;) {
        struct item it = take(p, true);
        if (it.t == T_ID) {
            if (push(p, vs, it.lit) < 0)
                return -ENOMEM;
            struct item next = look(p, true);
            if (next.t == T_CLOSE)
                return 0;
            if (next.t != T_COMMA)
                return fail(p, "unable to parse requirement: found '", next.lit,
                            "', expected: ',' or ')'");
        } else if (it.t == T_COMMA) {
            enum tok next = look(p, true).t;
            /* "(," ",)" and ",," each stand for an empty value */
            if ((vs->n == 0 || next == T_CLOSE || next == T_COMMA) && push(p, vs, "") < 0)
                return -ENOMEM;
            if (next == T_CLOSE)
                return 0;
        } else {
            return fail(p, "unable to parse requirement: found '", it.lit,
                        "', expected: ',', or identifier");
        }
    }
}

static int parse_values(struct parser *p, struct vals *vs)
{
    struct item it = take(p, true);
    if (it.t != T_OPEN)
        return fail(p, "unable to parse requirement: found '", it.lit, "' expected: '('");
    it = look(p, true);
    if (it.t == T_ID || it.t == T_COMMA) {
        int rc = parse_ident_list(p, vs);
        if (rc < 0)
            return rc;
        /* the apiserver reports the token that opened the list here, not the one found */
        if (take(p, true).t != T_CLOSE)
            return fail(p, "unable to parse requirement: found '", it.lit, "', expected: ')'");
        return 0;
    }
    if (it.t == T_CLOSE) {
        take(p, true);
        return push(p, vs, "");
    }
    return fail(p, "unable to parse requirement: found '", it.lit,
                "', expected: ',', ')' or identifier");
}

static int parse_exact(struct parser *p, struct vals *vs)
{
    enum tok next = look(p, true).t;
    if (next == T_END || next == T_COMMA)
        return push(p, vs, "");
    struct item it = take(p, true);
    if (it.t != T_ID)
        return fail(p, "unable to parse requirement: found '", it.lit, "', expected: identifier");
    return push(p, vs, it.lit);
}

static int parse_requirement(struct parser *p)
{
    const char *key;
    enum codec_sel_op op;
    bool unary;
    struct vals vs = {NULL, 0, 0};
    int rc = parse_key(p, &key, &op, &unary);
    if (rc < 0)
        return rc;
    if (!unary) {
        rc = parse_operator(p, &op);
        if (rc == 0)
            rc = op == CODEC_SEL_IN || op == CODEC_SEL_NOTIN ? parse_values(p, &vs)
                                                             : parse_exact(p, &vs);
        if (rc < 0)
            return rc;
    }
    return add_req(p, key, op, vs.v, vs.n);
}

static int parse(struct parser *p)
{
    for (;;) {
        struct item it = look(p, true);
        if (it.t == T_END)
            return 0;
        if (it.t != T_ID && it.t != T_NOT)
            return fail(p, "found '", it.lit, "', expected: !, identifier, or 'end of string'");
        int rc = parse_requirement(p);
        if (rc < 0)
            return rc;
        it = take(p, true);
        if (it.t == T_END)
            return 0;
        if (it.t != T_COMMA)
            return fail(p, "found '", it.lit, "', expected: ',' or 'end of string'");
        struct item next = look(p, true);
        if (next.t != T_ID && next.t != T_NOT)
            return fail(p, "found '", next.lit, "', expected: identifier after ','");
    }
}

static int cmp_req(const void *a, const void *b)
{
    return strcmp(((const struct codec_label_req *)a)->key,
                  ((const struct codec_label_req *)b)->key);
}

/* Copy the result out of the scratch arena into the selector's own. */
static int keep(struct codec_label_selector *sel, const struct parser *p)
{
    sel->reqs = kf_arena_alloc(sel->arena, (p->nreq + 1) * sizeof(*sel->reqs));
    if (!sel->reqs)
        return -ENOMEM;
    for (size_t i = 0; i < p->nreq; i++) {
        const struct codec_label_req *r = &p->reqs[i];
        struct codec_label_req *o = &sel->reqs[i];
        o->op = r->op;
        o->n_values = r->n_values;
        o->key = kf_arena_strdup(sel->arena, r->key);
        o->values = kf_arena_alloc(sel->arena, (r->n_values + 1) * sizeof(*o->values));
        if (!o->key || !o->values)
            return -ENOMEM;
        for (size_t k = 0; k < r->n_values; k++) {
            if (!(o->values[k] = kf_arena_strdup(sel->arena, r->values[k])))
                return -ENOMEM;
        }
    }
    sel->n = p->nreq;
    if (sel->n > 1)
        qsort(sel->reqs, sel->n, sizeof(*sel->reqs), cmp_req);
    return 0;
}

static void copy_err(struct codec_buf *err, char *errbuf, size_t errlen)
{
    if (!errbuf || !errlen)
        return;
    size_t n = err->len < errlen - 1 ? err->len : errlen - 1;
    if (n)
        memcpy(errbuf, err->data, n);
    errbuf[n] = '\0';
}

int codec_label_selector_parse(const char *text, struct codec_label_selector *sel, char *errbuf,
                               size_t errlen)
{
    struct codec_buf err;
    struct parser p = {0};
    memset(sel, 0, sizeof(*sel));
    codec_buf_init(&err);
    p.err = &err;
    sel->arena = kf_arena_new(512);
    p.tmp = kf_arena_new(1024);
    int rc = -ENOMEM;
    if (sel->arena && p.tmp && (rc = lex_all(&p, text)) == 0 && (rc = parse(&p)) == 0)
        rc = keep(sel, &p);
    if (rc == -ENOMEM && !err.len)
        codec_buf_puts(&err, "out of memory");
    if (rc < 0)
        copy_err(&err, errbuf, errlen);
    kf_arena_free(p.tmp);
    codec_buf_free(&err);
    return rc;
}

void codec_label_selector_free(struct codec_label_selector *sel)
{
    kf_arena_free(sel->arena);
    memset(sel, 0, sizeof(*sel));
}

static bool has_value(const struct codec_label_req *r, struct codec_str v)
{
    for (size_t i = 0; i < r->n_values; i++) {
        if (codec_str_eq(v, r->values[i]))
            return true;
    }
    return false;
}

static bool lookup(const struct codec_kv *labels, size_t n, const char *key, struct codec_str *v)
{
    for (size_t i = 0; i < n; i++) {
        if (codec_str_eq(labels[i].key, key)) {
            *v = labels[i].value;
            return true;
        }
    }
    return false;
}

/* gt / lt: both sides must be integers, as the apiserver requires. */
static bool compare_int(const struct codec_label_req *r, struct codec_str v)
{
    int64_t have, want;
    struct codec_str w = {r->values[0], strlen(r->values[0])};
    if (r->n_values != 1 || !parse_i64(v, &have) || !parse_i64(w, &want))
        return false;
    return r->op == CODEC_SEL_GT ? have > want : have < want;
}

static bool req_matches(const struct codec_label_req *r, const struct codec_kv *labels, size_t n)
{
    struct codec_str v;
    bool exists = lookup(labels, n, r->key, &v);
    switch (r->op) {
    case CODEC_SEL_EQ:
    case CODEC_SEL_IN:
        return exists && has_value(r, v);
    case CODEC_SEL_NEQ:
    case CODEC_SEL_NOTIN:
        return !exists || !has_value(r, v);
    case CODEC_SEL_EXISTS:
        return exists;
    case CODEC_SEL_NOT_EXISTS:
        return !exists;
    case CODEC_SEL_GT:
    case CODEC_SEL_LT:
        return exists && compare_int(r, v);
    }
    return false;
}

bool codec_label_selector_matches_kv(const struct codec_label_selector *sel,
                                     const struct codec_kv *labels, size_t n)
{
    for (size_t i = 0; i < sel->n; i++) {
        if (!req_matches(&sel->reqs[i], labels, n))
            return false;
    }
    return true;
}

bool codec_label_selector_matches(const struct codec_label_selector *sel,
                                  const struct codec_meta *meta)
{
    return codec_label_selector_matches_kv(sel, meta->labels, meta->n_labels);
}
