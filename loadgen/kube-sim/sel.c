/*
 * sel: label and field selectors of LIST and WATCH requests: parsed by the
 * codec (the apiserver's grammar and error texts), matched here against a
 * stored version's labels and selectable fields.
 */
#include "loadgen/kube-sim/kube_sim.h"
#include "cache/codec/codec.h"

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

/* Copy the codec's parse into request memory (the codec's own arena is freed at once). */
static int take_labels(struct kf_arena *a, const struct codec_label_selector *cl, struct ks_sel *s)
{
    static const enum op ops[] = {
        [CODEC_SEL_EQ] = OP_EQ,         [CODEC_SEL_NEQ] = OP_NE,
        [CODEC_SEL_IN] = OP_IN,         [CODEC_SEL_NOTIN] = OP_NOTIN,
        [CODEC_SEL_EXISTS] = OP_EXISTS, [CODEC_SEL_NOT_EXISTS] = OP_NOT_EXISTS,
        [CODEC_SEL_GT] = OP_GT,         [CODEC_SEL_LT] = OP_LT};

    s->labels = kf_arena_alloc(a, (cl->n + 1) * sizeof(*s->labels));
    if (!s->labels)
        return -ENOMEM;
    for (size_t i = 0; i < cl->n; i++) {
        const struct codec_label_req *q = &cl->reqs[i];
        struct term *t = &s->labels[i];
        t->key = kf_arena_strdup(a, q->key);
        t->op = ops[q->op];
        t->vals = kf_arena_alloc(a, (q->n_values + 1) * sizeof(char *));
        if (!t->key || !t->vals)
            return -ENOMEM;
        for (size_t v = 0; v < q->n_values; v++)
            if (!(t->vals[t->n_vals++] = kf_arena_strdup(a, q->values[v])))
                return -ENOMEM;
    }
    s->n_labels = cl->n;
    return 0;
}

static int take_fields(struct kf_arena *a, const struct codec_field_selector *cf, struct ks_sel *s)
{
    s->fields = kf_arena_alloc(a, (cf->n + 1) * sizeof(*s->fields));
    if (!s->fields)
        return -ENOMEM;
    for (size_t i = 0; i < cf->n; i++) {
        struct term *t = &s->fields[i];
        t->key = cf->reqs[i].field; /* a static canonical path */
        t->op = cf->reqs[i].neq ? OP_NE : OP_EQ;
        t->vals = kf_arena_alloc(a, sizeof(char *));
        if (!t->vals || !(t->vals[0] = kf_arena_strdup(a, cf->reqs[i].value)))
            return -ENOMEM;
        t->n_vals = 1;
    }
    s->n_fields = cf->n;
    return 0;
}

/* Parsing (and its error texts) is the codec's: the same code kfront's cache uses. */
int ks_sel_parse(struct kf_arena *a, struct ks_res *res, const char *labels, const char *fields,
                 struct ks_sel **out, char *err, size_t errlen)
{
    struct ks_sel *s = kf_arena_alloc(a, sizeof(*s));
    const struct codec_type *type = codec_type_by_resource(res->group, res->name);
    struct codec_label_selector cl = {0};
    struct codec_field_selector cf = {0};
    int rc;

    err[0] = '\0';
    *out = NULL;
    if (!s)
        return -ENOMEM;
    rc = codec_label_selector_parse(labels ? labels : "", &cl, err, errlen);
    if (rc == 0)
        rc = take_labels(a, &cl, s);
    codec_label_selector_free(&cl);
    if (rc < 0)
        return rc;
    rc = codec_field_selector_parse(fields ? fields : "", type ? type->id : CODEC_KIND_UNKNOWN, &cf,
                                    err, errlen);
    if (rc == 0)
        rc = take_fields(a, &cf, s);
    codec_field_selector_free(&cf);
    if (rc == 0)
        *out = s;
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
