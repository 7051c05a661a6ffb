/*
 * sel: label and field selectors of LIST and WATCH requests, with the
 * apiserver's error wording for the cases clients hit.
 */
#include "loadgen/kube-sim/kube_sim.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum op { OP_EXISTS, OP_NOT_EXISTS, OP_EQ, OP_NE, OP_IN, OP_NOTIN, OP_GT, OP_LT };

struct term {
    const char *key;
    enum op op;
    const char **vals;
    size_t n_vals;
};

struct ks_sel {
    struct term *labels, *fields;
    size_t n_labels, n_fields;
};

static char *trim(char *s)
{
    while (*s == ' ')
        s++;
    size_t n = strlen(s);
    while (n && s[n - 1] == ' ')
        s[--n] = '\0';
    return s;
}

static bool key_char(char c)
{
    return isalnum((unsigned char)c) || c == '-' || c == '_' || c == '.' || c == '/';
}

static bool value_ok(const char *v)
{
    for (; *v; v++)
        if (!isalnum((unsigned char)*v) && *v != '-' && *v != '_' && *v != '.')
            return false;
    return true;
}

/* Split s at top-level commas (not inside parentheses). */
static size_t split_terms(char *s, char **out, size_t max)
{
    size_t n = 0;
    int depth = 0;
    char *start = s;

    for (char *p = s;; p++) {
        if (*p == '(')
            depth++;
        else if (*p == ')')
            depth--;
        if ((*p == ',' && depth == 0) || *p == '\0') {
            bool end = *p == '\0';
            *p = '\0';
            if (n < max)
                out[n++] = trim(start);
            if (end)
                break;
            start = p + 1;
        }
    }
    return n;
}

static int set_values(struct kf_arena *a, struct term *t, char *list, char *err, size_t errlen)
{
    char *vals[64];
    size_t n = split_terms(list, vals, KF_ARRAY_SIZE(vals));

    t->vals = kf_arena_alloc(a, (n + 1) * sizeof(char *));
    if (!t->vals)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (!value_ok(vals[i])) {
            snprintf(err, errlen,
                     "unable to parse requirement: values[%zu][%s]: Invalid value: "
                     "\"%s\": a valid label must be an empty string or consist of "
                     "alphanumeric characters, '-', '_' or '.'",
                     i, t->key, vals[i]);
            return -EINVAL;
        }
        t->vals[t->n_vals++] = vals[i];
    }
    return 0;
}

static int parse_label_term(struct kf_arena *a, char *s, struct term *t, char *err, size_t errlen)
{
    char *p = s;

    if (*p == '!') {
        t->op = OP_NOT_EXISTS;
        t->key = trim(p + 1);
        goto check_key;
    }
    while (*p && key_char(*p))
        p++;
    t->key = kf_arena_strndup(a, s, (size_t)(p - s));
    char *rest = trim(p);
    if (!t->key)
        return -ENOMEM;
    if (!*rest) {
        t->op = OP_EXISTS;
    } else if (rest[0] == '=' || rest[0] == '>' || rest[0] == '<' || strncmp(rest, "!=", 2) == 0) {
        t->op = rest[0] == '!' ? OP_NE : rest[0] == '>' ? OP_GT : rest[0] == '<' ? OP_LT : OP_EQ;
        bool two = rest[0] == '!' || (rest[0] == '=' && rest[1] == '=');
        char *v = trim(rest + (two ? 2 : 1));
        if (strchr(v, '=') || strchr(v, '!') || !value_ok(v)) {
            snprintf(err, errlen,
                     "unable to parse requirement: values[0][%s]: Invalid value: \"%s\": a valid "
                     "label must be an empty string or consist of alphanumeric characters, '-', "
                     "'_' or '.'",
                     t->key, v);
            return -EINVAL;
        }
        t->vals = kf_arena_alloc(a, sizeof(char *));
        if (!t->vals)
            return -ENOMEM;
        t->vals[0] = v;
        t->n_vals = 1;
    } else if (strncmp(rest, "in", 2) == 0 || strncmp(rest, "notin", 5) == 0) {
        t->op = rest[0] == 'i' ? OP_IN : OP_NOTIN;
        char *lp = trim(rest + (t->op == OP_IN ? 2 : 5));
        size_t len = strlen(lp);
        if (lp[0] != '(' || len < 2 || lp[len - 1] != ')') {
            snprintf(err, errlen, "unable to parse requirement: found '%s', expected: '('", lp);
            return -EINVAL;
        }
        lp[len - 1] = '\0';
        int rc = set_values(a, t, lp + 1, err, errlen);
        if (rc < 0)
            return rc;
    } else {
        snprintf(err, errlen,
                 "unable to parse requirement: found '%s', expected: in, notin, =, ==, !=, gt, lt",
                 rest);
        return -EINVAL;
    }
check_key:
    if (!t->key[0] || strspn(t->key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                     "0123456789-_./") != strlen(t->key)) {
        snprintf(err, errlen, "unable to parse requirement: found '%s', expected: identifier",
                 t->key);
        return -EINVAL;
    }
    return 0;
}

static int parse_field_term(struct kf_arena *a, struct ks_res *res, char *s, struct term *t,
                            char *err, size_t errlen)
{
    char *ne = strstr(s, "!="), *eq = strchr(s, '=');
    char *v;

    if (ne) {
        t->op = OP_NE;
        *ne = '\0';
        v = ne + 2;
    } else if (eq) {
        t->op = OP_EQ;
        *eq = '\0';
        v = eq + (eq[1] == '=' ? 2 : 1);
    } else {
        snprintf(err, errlen, "invalid selector: '%s'; can't understand '%s'", s, s);
        return -EINVAL;
    }
    t->key = trim(s);
    t->vals = kf_arena_alloc(a, sizeof(char *));
    if (!t->vals)
        return -ENOMEM;
    t->vals[0] = v;
    t->n_vals = 1;
    if (!ks_res_field_supported(res, t->key)) {
        snprintf(err, errlen, "field label not supported: %s", t->key);
        return -EINVAL;
    }
    return 0;
}

static int parse_list(struct kf_arena *a, struct ks_res *res, const char *text, bool fields,
                      struct term **out, size_t *n_out, char *err, size_t errlen)
{
    char *copy = kf_arena_strdup(a, text ? text : "");
    char *terms[64];
    size_t n;

    if (!copy)
        return -ENOMEM;
    if (!trim(copy)[0])
        return 0;
    n = split_terms(copy, terms, KF_ARRAY_SIZE(terms));
    *out = kf_arena_alloc(a, (n + 1) * sizeof(**out));
    if (!*out)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        int rc = fields ? parse_field_term(a, res, terms[i], &(*out)[i], err, errlen)
                        : parse_label_term(a, terms[i], &(*out)[i], err, errlen);
        if (rc < 0)
            return rc;
    }
    *n_out = n;
    return 0;
}

int ks_sel_parse(struct kf_arena *a, struct ks_res *res, const char *labels, const char *fields,
                 struct ks_sel **out, char *err, size_t errlen)
{
    struct ks_sel *s = kf_arena_alloc(a, sizeof(*s));
    int rc;

    err[0] = '\0';
    if (!s)
        return -ENOMEM;
    rc = parse_list(a, res, labels, false, &s->labels, &s->n_labels, err, errlen);
    if (rc == 0)
        rc = parse_list(a, res, fields, true, &s->fields, &s->n_fields, err, errlen);
    *out = rc == 0 ? s : NULL;
    return rc;
}

static bool in_list(const struct term *t, const char *v)
{
    for (size_t i = 0; i < t->n_vals; i++)
        if (strcmp(t->vals[i], v) == 0)
            return true;
    return false;
}

static bool term_match(const struct term *t, const char *v)
{
    switch (t->op) {
    case OP_EXISTS:
        return v != NULL;
    case OP_NOT_EXISTS:
        return v == NULL;
    case OP_EQ:
    case OP_IN:
        return v && in_list(t, v);
    case OP_NE:
    case OP_NOTIN:
        return !v || !in_list(t, v);
    case OP_GT:
    case OP_LT: {
        char *end;
        long long have, want = strtoll(t->vals[0], NULL, 10);
        if (!v)
            return false;
        have = strtoll(v, &end, 10);
        if (*end)
            return false;
        return t->op == OP_GT ? have > want : have < want;
    }
    }
    return false;
}

bool ks_sel_match(const struct ks_sel *s, const struct ks_obj *o)
{
    if (!s)
        return true;
    for (size_t i = 0; i < s->n_labels; i++)
        if (!term_match(&s->labels[i], ks_obj_label(o, s->labels[i].key)))
            return false;
    for (size_t i = 0; i < s->n_fields; i++) {
        const char *v = ks_obj_field(o, s->fields[i].key);
        if (!term_match(&s->fields[i], v ? v : ""))
            return false;
    }
    return true;
}

bool ks_sel_empty(const struct ks_sel *s)
{
    return !s || (s->n_labels == 0 && s->n_fields == 0);
}

const char *ks_sel_exact_field(const struct ks_sel *s, const char *path)
{
    for (size_t i = 0; s && i < s->n_fields; i++)
        if (s->fields[i].op == OP_EQ && strcmp(s->fields[i].key, path) == 0)
            return s->fields[i].vals[0];
    return NULL;
}
