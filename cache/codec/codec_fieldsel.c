/*
 * Field selectors: the apiserver's grammar (k8s.io/apimachinery pkg/fields),
 * then its per-type field label conversion (which paths a type supports),
 * with the same error messages and the same order of checks.
 */
#include "cache/codec/codec_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct term {
    const char *text; /* the raw term, as split */
    const char *field;
    const char *value;
    bool neq;
};

/* Terms split at commas not escaped by a backslash (the backslash stays in the term). */
static size_t split_terms(char *s, struct term *terms)
{
    size_t n = 0;
    bool in_slash = false;
    terms[n++].text = s;
    for (char *p = s; *p; p++) {
        if (in_slash) {
            in_slash = false;
        } else if (*p == '\\') {
            in_slash = true;
        } else if (*p == ',') {
            *p = '\0';
            terms[n++].text = p + 1;
        }
    }
    return n;
}

static int cmp_term(const void *a, const void *b)
{
    return strcmp(((const struct term *)a)->text, ((const struct term *)b)->text);
}

static void put_err(char *errbuf, size_t errlen, const char *a, const char *b, const char *c,
                    const char *d, const char *e)
{
    if (errbuf && errlen)
        snprintf(errbuf, errlen, "%s%s%s%s%s", a, b, c ? c : "", d ? d : "", e ? e : "");
}

/* fields.UnescapeValue: \\ \, \= are escapes; a bare , or = is an error. In place. */
static int unescape_value(char *v, char *errbuf, size_t errlen)
{
    char *o = v;
    for (char *p = v; *p; p++) {
        if (*p == '\\') {
            char c = p[1];
            if (c != '\\' && c != ',' && c != '=') {
                char seq[8];
                size_t n = c ? 1 : 0;
                if ((unsigned char)c >= 0xc0) /* Go reports the whole rune after the slash */
                    while (((unsigned char)p[1 + n] & 0xc0) == 0x80 && n < 4)
                        n++;
                snprintf(seq, sizeof(seq), "\\%.*s", (int)n, p + 1);
                put_err(errbuf, errlen, "invalid field selector: invalid escape sequence: ", seq,
                        NULL, NULL, NULL);
                return -EINVAL;
            }
            *o++ = c;
            p++;
        } else if (*p == ',' || *p == '=') {
            put_err(errbuf, errlen, "invalid field selector: unescaped character in value: ",
                    *p == ',' ? "44" : "61", NULL, NULL, NULL); /* Go prints the rune as a number */
            return -EINVAL;
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
    return 0;
}

/* Split "lhs<op>rhs" at the first operator: "!=", "==" or "=", tried in that order. */
static bool split_term(struct term *t, char *text)
{
    for (char *p = text; *p; p++) {
        size_t oplen = (p[0] == '!' && p[1] == '=') || (p[0] == '=' && p[1] == '=') ? 2
                       : p[0] == '='                                                ? 1
                                                                                    : 0;
        if (!oplen)
            continue;
        t->neq = p[0] == '!';
        *p = '\0';
        t->field = text;
        t->value = p + oplen;
        return true;
    }
    return false;
}

/* The apiserver's field label conversion: the canonical path, or NULL with the error. */
static const char *convert_label(enum codec_kind kind, const char *label, char *errbuf,
                                 size_t errlen)
{
    const struct kind_fields *kf = kind_fields(kind);
    if (!kf->accepted) {
        if (strcmp(label, "metadata.name") == 0)
            return "metadata.name";
        if (strcmp(label, "metadata.namespace") == 0)
            return "metadata.namespace";
        struct codec_buf q;
        codec_buf_init(&q);
        codec_go_quote(&q, label, strlen(label));
        codec_buf_append(&q, "", 1);
        put_err(errbuf, errlen, q.err ? "?" : q.data,
                " is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
                NULL, NULL, NULL);
        codec_buf_free(&q);
        return NULL;
    }
    if (kind == CODEC_KIND_POD && strcmp(label, "spec.host") == 0)
        return "spec.nodeName"; /* old v1 clients' name for it */
    for (const char *const *a = kf->accepted; *a; a++) {
        if (strcmp(*a, label) == 0)
            return *a;
    }
    put_err(errbuf, errlen, "field label not supported: ", label, NULL, NULL, NULL);
    return NULL;
}

static int parse_terms(const char *text, struct term *terms, size_t n, char *errbuf, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        struct term *t = &terms[i];
        if (!*t->text)
            continue;
        /* split_terms gave us writable storage; split_term only writes when it succeeds */
        if (!split_term(t, (char *)t->text)) {
            put_err(errbuf, errlen, "invalid selector: '", text, "'; can't understand '", t->text,
                    "'");
            return -EINVAL;
        }
        int rc = unescape_value((char *)t->value, errbuf, errlen);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int keep(struct codec_field_selector *sel, const struct term *terms, size_t n, char *errbuf,
                size_t errlen)
{
    sel->reqs = kf_arena_alloc(sel->arena, (n + 1) * sizeof(*sel->reqs));
    if (!sel->reqs)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (!terms[i].field)
            continue; /* an empty term */
        const char *f = convert_label(sel->kind, terms[i].field, errbuf, errlen);
        if (!f)
            return -EINVAL;
        struct codec_field_req *r = &sel->reqs[sel->n++];
        r->field = f;
        r->neq = terms[i].neq;
        if (!(r->value = kf_arena_strdup(sel->arena, terms[i].value)))
            return -ENOMEM;
    }
    return 0;
}

int codec_field_selector_parse(const char *text, enum codec_kind kind,
                               struct codec_field_selector *sel, char *errbuf, size_t errlen)
{
    memset(sel, 0, sizeof(*sel));
    sel->kind = kind;
    size_t len = strlen(text), n;
    if (!(sel->arena = kf_arena_new(256)))
        return -ENOMEM;
    if (len == 0)
        return 0;
    char *work = kf_arena_strdup(sel->arena, text);
    struct term *terms = kf_arena_alloc(sel->arena, (len + 2) * sizeof(*terms));
    if (!work || !terms)
        return -ENOMEM;
    n = split_terms(work, terms);
    qsort(terms, n, sizeof(*terms), cmp_term); /* errors come in sorted order, as upstream */
    int rc = parse_terms(text, terms, n, errbuf, errlen);
    return rc < 0 ? rc : keep(sel, terms, n, errbuf, errlen);
}

void codec_field_selector_free(struct codec_field_selector *sel)
{
    kf_arena_free(sel->arena);
    memset(sel, 0, sizeof(*sel));
}

bool codec_field_selector_matches(const struct codec_field_selector *sel,
                                  const struct codec_meta *meta)
{
    for (size_t i = 0; i < sel->n; i++) {
        const struct codec_field_req *r = &sel->reqs[i];
        struct codec_str v = {"", 0};
        /* a field the type accepts but does not set (status.podIPs) reads as "" upstream too */
        codec_meta_field(meta, r->field, &v);
        if (codec_str_eq(v, r->value) == r->neq)
            return false;
    }
    return true;
}

bool codec_field_selector_pins(const struct codec_field_selector *sel, const char *field,
                               const char **value)
{
    for (size_t i = 0; i < sel->n; i++) {
        if (!sel->reqs[i].neq && strcmp(sel->reqs[i].field, field) == 0) {
            *value = sel->reqs[i].value;
            return true;
        }
    }
    return false;
}
