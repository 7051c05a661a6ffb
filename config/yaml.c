/*
 * yaml.c: the native configuration file, read with libyaml's document API
 * (every node carries its line and column) and mapped onto struct config by
 * tables of fields, so that each key is described once: its type, range and
 * where it goes. Unknown keys, duplicate keys and wrong types are errors that
 * name file:line:column and the key path; loading goes on after an error so
 * one run reports as many problems as it can.
 */
#include "config/config_internal.h"

#include <errno.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

struct yctx {
    yaml_document_t *doc;
    struct config *cfg;
    struct config_diags *diags;
    const char *file;
    bool oom;
    int n_maps;
    size_t path_len;
    char path[256]; /* key path of the node being loaded: backends[0].servers[1].weight */
};

enum fkind {
    F_CONST,    /* a string that must equal names[0] (apiVersion, kind) */
    F_STRING,   /* const char * */
    F_U32,      /* uint32_t in min..max */
    F_INT,      /* int in min..max */
    F_BOOL,     /* bool */
    F_DURATION, /* uint32_t milliseconds, at least min */
    F_ENUM,     /* an enum, one of names[] */
    F_MAP,      /* a nested struct described by sub */
    F_CUSTOM,   /* fn(y, node, struct base) */
};

#define MAX_MAPPINGS 100000

struct fieldset;
typedef void (*field_fn)(struct yctx *y, yaml_node_t *node, void *base);

struct field {
    const char *key;
    enum fkind kind;
    size_t off; /* of the target within the struct being filled */
    uint32_t min, max;
    const char *const *names;
    size_t n_names;
    const struct fieldset *sub;
    field_fn fn;
    bool required;
    bool has_vloc;   /* store where the value was written at vloc_off */
    size_t vloc_off; /* a struct config_loc within the struct being filled */
};

struct fieldset {
    const struct field *fields;
    size_t n;
    bool has_loc; /* store where the mapping starts at loc_off */
    size_t loc_off;
};

/* Enums are stored through an unsigned *: they must all be that size. */
_Static_assert(sizeof(enum config_mode) == sizeof(unsigned), "enum size");
_Static_assert(sizeof(enum config_balance) == sizeof(unsigned), "enum size");
_Static_assert(sizeof(enum config_check_type) == sizeof(unsigned), "enum size");
_Static_assert(sizeof(enum config_server_state) == sizeof(unsigned), "enum size");
_Static_assert(sizeof(enum kf_log_level) == sizeof(unsigned), "enum size");
_Static_assert(sizeof(enum config_identity_mode) == sizeof(unsigned), "enum size");
_Static_assert(sizeof(enum config_cache_not_ready) == sizeof(unsigned), "enum size");

/* ---- diagnostics ---------------------------------------------------------------- */

static struct config_loc mark_loc(yaml_mark_t mark)
{
    return (struct config_loc){.line = (int)mark.line + 1, .column = (int)mark.column + 1};
}

static struct config_loc node_loc(const yaml_node_t *node)
{
    return mark_loc(node->start_mark);
}

static void yerr(struct yctx *y, const yaml_node_t *node, const char *fmt, ...) KF_PRINTF(3, 4);

/* One error at node, prefixed by the current key path. */
static void yerr(struct yctx *y, const yaml_node_t *node, const char *fmt, ...)
{
    char msg[400];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (y->path_len > 0)
        config_diags_add(y->diags, CONFIG_ERROR, y->file, node_loc(node), "%s: %s", y->path, msg);
    else
        config_diags_add(y->diags, CONFIG_ERROR, y->file, node_loc(node), "%s", msg);
}

/* "two" as a message shows it: quoted, escaped, cut short. */
static const char *describe(const yaml_node_t *node, char *buf, size_t size)
{
    size_t o = 0;

    if (node->type == YAML_MAPPING_NODE)
        return "a mapping";
    if (node->type == YAML_SEQUENCE_NODE)
        return "a sequence";
    o += (size_t)snprintf(buf, size, "%s\"",
                          node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE ? ""
                                                                             : "a quoted string ");
    for (size_t i = 0; i < node->data.scalar.length && o + 8 < size; i++) {
        unsigned char c = node->data.scalar.value[i];

        if (i == 60) {
            o += (size_t)snprintf(buf + o, size - o, "...");
            break;
        }
        if (c == '"' || c == '\\')
            o += (size_t)snprintf(buf + o, size - o, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
        else
            buf[o++] = (char)c;
    }
    snprintf(buf + o, size - o, "\"");
    return buf;
}

static void expected(struct yctx *y, const yaml_node_t *node, const char *what)
{
    char got[128];

    yerr(y, node, "expected %s, got %s", what, describe(node, got, sizeof(got)));
}

/* ---- key paths --------------------------------------------------------------------- */

static size_t path_end(size_t old, int n, size_t size)
{
    if (n < 0)
        return old;
    return old + (size_t)n < size ? old + (size_t)n : size - 1; /* snprintf truncated it */
}

static size_t path_push_key(struct yctx *y, const char *key)
{
    size_t old = y->path_len;
    int n = snprintf(y->path + old, sizeof(y->path) - old, "%s%s", old ? "." : "", key);

    y->path_len = path_end(old, n, sizeof(y->path));
    return old;
}

static size_t path_push_index(struct yctx *y, size_t index)
{
    size_t old = y->path_len;
    int n = snprintf(y->path + old, sizeof(y->path) - old, "[%zu]", index);

    y->path_len = path_end(old, n, sizeof(y->path));
    return old;
}

static void path_pop(struct yctx *y, size_t old)
{
    y->path_len = old;
    y->path[old] = '\0';
}

/* ---- scalars ------------------------------------------------------------------------ */

static const char *scalar(const yaml_node_t *node)
{
    return (const char *)node->data.scalar.value;
}

static bool is_plain(const yaml_node_t *node)
{
    return node->type == YAML_SCALAR_NODE && node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

/* A plain empty, ~ or null value leaves the default in place, as in Kubernetes. */
static bool is_null(const yaml_node_t *node)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};

    return is_plain(node) && cfg_name_index(nulls, KF_ARRAY_SIZE(nulls), scalar(node)) >= 0;
}

static bool want_scalar(struct yctx *y, const yaml_node_t *node, const char *what)
{
    if (node->type == YAML_SCALAR_NODE) {
        if (strlen(scalar(node)) == node->data.scalar.length)
            return true;
        yerr(y, node, "expected %s without NUL characters", what);
        return false;
    }
    expected(y, node, what);
    return false;
}

static const char *ystrdup(struct yctx *y, const yaml_node_t *node)
{
    char *s = kf_arena_strdup(y->cfg->arena, scalar(node));

    if (!s && !y->oom) {
        y->oom = true;
        yerr(y, node, "out of memory");
    }
    return s;
}

static const char *range_text(uint32_t min, uint32_t max, char *buf, size_t size)
{
    if (max == UINT32_MAX)
        return min == 0 ? "a non-negative integer" : "a positive integer";
    snprintf(buf, size, "an integer from %u to %u", min, max);
    return buf;
}

/* Decimal digits only: YAML's 0x10, 1_000 and +5 are not what people mean here. */
static bool load_number(struct yctx *y, const yaml_node_t *node, const struct field *f,
                        uint32_t *out)
{
    char buf[64];
    const char *s, *what = range_text(f->min, f->max, buf, sizeof(buf));
    uint64_t v = 0;

    if (!want_scalar(y, node, what))
        return false;
    s = scalar(node);
    if (!is_plain(node) || *s == '\0')
        goto bad;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            goto bad;
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > UINT32_MAX)
            goto bad;
    }
    if (v < f->min || v > f->max)
        goto bad;
    *out = (uint32_t)v;
    return true;
bad:
    expected(y, node, what);
    return false;
}

static void load_bool(struct yctx *y, const yaml_node_t *node, bool *out)
{
    static const char *const truths[] = {"true", "True", "TRUE"};
    static const char *const lies[] = {"false", "False", "FALSE"};
    const char *s = scalar(node);

    if (node->type == YAML_SCALAR_NODE && is_plain(node)) {
        if (cfg_name_index(truths, KF_ARRAY_SIZE(truths), s) >= 0) {
            *out = true;
            return;
        }
        if (cfg_name_index(lies, KF_ARRAY_SIZE(lies), s) >= 0) {
            *out = false;
            return;
        }
    }
    expected(y, node, "true or false");
}

static void load_duration(struct yctx *y, const yaml_node_t *node, const struct field *f,
                          uint32_t *out)
{
    uint32_t ms;

    if (!want_scalar(y, node, "a duration such as 5s, 250ms or 1m30s"))
        return;
    if (config_parse_duration_ms(scalar(node), &ms) < 0)
        expected(y, node, "a duration such as 5s, 250ms or 1m30s");
    else if (ms < f->min)
        expected(y, node, "a positive duration");
    else
        *out = ms;
}

static void load_enum(struct yctx *y, const yaml_node_t *node, const struct field *f, unsigned *out)
{
    char list[160], what[180];
    int i;

    snprintf(what, sizeof(what), "one of %s",
             cfg_names_list(f->names, f->n_names, list, sizeof(list)));
    if (!want_scalar(y, node, what))
        return;
    i = cfg_name_index(f->names, f->n_names, scalar(node));
    if (i < 0)
        expected(y, node, what);
    else
        *out = (unsigned)i;
}

static void load_const(struct yctx *y, const yaml_node_t *node, const struct field *f)
{
    char what[64];

    snprintf(what, sizeof(what), "\"%s\"", f->names[0]);
    if (want_scalar(y, node, what) && strcmp(scalar(node), f->names[0]) != 0)
        expected(y, node, what);
}

/* ---- mappings ------------------------------------------------------------------------ */

static void load_map(struct yctx *y, yaml_node_t *node, const struct fieldset *set, void *base);

static void load_field(struct yctx *y, yaml_node_t *node, const struct field *f, char *base)
{
    void *target = base + f->off;
    uint32_t n;

    if (f->has_vloc)
        *(struct config_loc *)(void *)(base + f->vloc_off) = node_loc(node);
    switch (f->kind) {
    case F_CONST:
        load_const(y, node, f);
        break;
    case F_STRING:
        if (want_scalar(y, node, "a string"))
            *(const char **)target = ystrdup(y, node);
        break;
    case F_U32:
        load_number(y, node, f, target);
        break;
    case F_INT:
        if (load_number(y, node, f, &n))
            *(int *)target = (int)n;
        break;
    case F_BOOL:
        load_bool(y, node, target);
        break;
    case F_DURATION:
        load_duration(y, node, f, target);
        break;
    case F_ENUM:
        load_enum(y, node, f, target);
        break;
    case F_MAP:
        load_map(y, node, f->sub, target);
        break;
    case F_CUSTOM:
        f->fn(y, node, base);
        break;
    }
}

static const struct field *find_field(const struct fieldset *set, const char *key)
{
    for (size_t i = 0; i < set->n; i++)
        if (strcmp(set->fields[i].key, key) == 0)
            return &set->fields[i];
    return NULL;
}

static void unknown_key(struct yctx *y, const yaml_node_t *key, const struct fieldset *set)
{
    const char *names[16];
    char list[300];
    size_t n = 0;

    for (size_t i = 0; i < set->n && n < KF_ARRAY_SIZE(names); i++)
        names[n++] = set->fields[i].key;
    yerr(y, key, "unknown key, expected one of %s", cfg_names_list(names, n, list, sizeof(list)));
}

#define MAX_FIELDS 16 /* per mapping; the largest has 9 */

/* Check one key; returns its field or NULL when the pair is to be skipped.
 * first[] remembers where each known key was first written, which finds
 * duplicates in linear time even in a hostile file. */
static const struct field *map_key(struct yctx *y, const yaml_node_pair_t *pair,
                                   const struct fieldset *set, const yaml_node_t **first)
{
    const yaml_node_t *key = yaml_document_get_node(y->doc, pair->key);
    const struct field *f;
    size_t old;

    if (key->type != YAML_SCALAR_NODE) {
        expected(y, key, "a key (a string)");
        return NULL;
    }
    old = path_push_key(y, scalar(key));
    f = find_field(set, scalar(key));
    if (!f) {
        unknown_key(y, key, set);
    } else if (first[f - set->fields]) {
        struct config_loc at = node_loc(first[f - set->fields]);
        yerr(y, key, "duplicate key (first set at %d:%d)", at.line, at.column);
        f = NULL;
    } else {
        first[f - set->fields] = key;
    }
    path_pop(y, old);
    return f;
}

static bool too_many_nodes(struct yctx *y, const yaml_node_t *node)
{
    /* Aliases can make a small file expand to millions of mappings. */
    if (++y->n_maps <= MAX_MAPPINGS)
        return false;
    if (y->n_maps == MAX_MAPPINGS + 1)
        yerr(y, node, "more than %d mappings (alias expansion?)", MAX_MAPPINGS);
    return true;
}

static void load_map(struct yctx *y, yaml_node_t *node, const struct fieldset *set, void *base)
{
    const yaml_node_t *first[MAX_FIELDS] = {0};

    if (node->type != YAML_MAPPING_NODE) {
        expected(y, node, "a mapping");
        return;
    }
    if (too_many_nodes(y, node))
        return;
    if (set->has_loc)
        *(struct config_loc *)(void *)((char *)base + set->loc_off) = node_loc(node);
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top;
         p++) {
        const struct field *f = map_key(y, p, set, first);
        yaml_node_t *value = yaml_document_get_node(y->doc, p->value);
        size_t old;

        if (!f || (is_null(value) && !f->required))
            continue;
        old = path_push_key(y, f->key);
        if (is_null(value))
            expected(y, value, "a value"); /* null would leave a required key unset */
        else
            load_field(y, value, f, base);
        path_pop(y, old);
    }
    for (size_t i = 0; i < set->n; i++) {
        if (!set->fields[i].required)
            continue;
        if (!first[i])
            yerr(y, node, "missing required key \"%s\"", set->fields[i].key);
    }
}

/* ---- sequences ----------------------------------------------------------------------- */

/* A sequence of mappings into a new arena array of n elements of elem bytes. */
static void *load_list(struct yctx *y, yaml_node_t *node, const struct fieldset *set, size_t elem,
                       void (*init)(void *), size_t *n_out)
{
    size_t n;
    char *array;

    if (node->type != YAML_SEQUENCE_NODE) {
        expected(y, node, "a sequence");
        return NULL;
    }
    n = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
    if (n == 0)
        return NULL;
    array = kf_arena_alloc(y->cfg->arena, n * elem);
    if (!array) {
        y->oom = true;
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        size_t old = path_push_index(y, i);

        if (init)
            init(array + i * elem);
        else
            memset(array + i * elem, 0, elem);
        load_map(y, yaml_document_get_node(y->doc, node->data.sequence.items.start[i]), set,
                 array + i * elem);
        path_pop(y, old);
    }
    *n_out = n;
    return array;
}

static void init_frontend(void *p)
{
    cfg_frontend_defaults(p);
}

static void init_backend(void *p)
{
    cfg_backend_defaults(p);
}

static void init_server(void *p)
{
    cfg_server_defaults(p);
}

/* listen: a sequence of "ADDR:PORT", or one such string. */
/* A scalar or a sequence of scalars, each with its location. */
static void load_strings(struct yctx *y, yaml_node_t *node, const char *what, const char ***out,
                         const struct config_loc **out_locs, size_t *n_out)
{
    yaml_node_item_t *items = NULL;
    size_t n = 1;
    const char **v;
    struct config_loc *locs;

    if (node->type == YAML_SEQUENCE_NODE) {
        items = node->data.sequence.items.start;
        n = (size_t)(node->data.sequence.items.top - items);
    } else if (!want_scalar(y, node, "a sequence"))
        return;
    *out = v = kf_arena_alloc(y->cfg->arena, (n ? n : 1) * sizeof(*v));
    *out_locs = locs = kf_arena_alloc(y->cfg->arena, (n ? n : 1) * sizeof(*locs));
    if (!v || !locs) {
        y->oom = true;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = items ? yaml_document_get_node(y->doc, items[i]) : node;
        size_t old = path_push_index(y, i);

        if (want_scalar(y, item, what)) {
            locs[*n_out] = node_loc(item);
            v[(*n_out)++] = ystrdup(y, item);
        }
        path_pop(y, old);
    }
}

static void load_listen(struct yctx *y, yaml_node_t *node, void *base)
{
    struct config_frontend *fe = base;

    load_strings(y, node, "an address (HOST:PORT)", &fe->listen, &fe->listen_locs, &fe->n_listen);
}

static void load_cache_resources(struct yctx *y, yaml_node_t *node, void *base)
{
    struct config_cache *c = base;

    load_strings(y, node, "a resource (\"pods\", \"endpointslices.discovery.k8s.io\")",
                 &c->resources, &c->resource_locs, &c->n_resources);
}

static void load_sni_names(struct yctx *y, yaml_node_t *node, void *base)
{
    struct config_sni_cert *s = base;

    load_strings(y, node, "a server name (\"api.example.com\" or \"*.example.com\")", &s->names,
                 &s->name_locs, &s->n_names);
}

static const struct fieldset frontend_set, backend_set, server_set;

static void load_frontends(struct yctx *y, yaml_node_t *node, void *base)
{
    struct config *cfg = base;

    cfg->frontends = load_list(y, node, &frontend_set, sizeof(struct config_frontend),
                               init_frontend, &cfg->n_frontends);
}

static void load_backends(struct yctx *y, yaml_node_t *node, void *base)
{
    struct config *cfg = base;

    cfg->backends = load_list(y, node, &backend_set, sizeof(struct config_backend), init_backend,
                              &cfg->n_backends);
}

static void load_servers(struct yctx *y, yaml_node_t *node, void *base)
{
    struct config_backend *be = base;

    be->servers =
        load_list(y, node, &server_set, sizeof(struct config_server), init_server, &be->n_servers);
}

/* kubeconfig: kept with where it was written; read once the whole document is loaded. */
static void load_kubeconfig(struct yctx *y, yaml_node_t *node, void *base)
{
    struct config_backend *be = base;

    if (!want_scalar(y, node, "a kubeconfig file path"))
        return;
    be->kubeconfig = ystrdup(y, node);
    be->kubeconfig_loc = node_loc(node);
}

/* Each backend's kubeconfig (relative to the configuration file's folder), under what the
 * document says itself: its upstreamTLS keys and servers win. */
static void apply_kubeconfigs(struct yctx *y)
{
    for (size_t i = 0; i < y->cfg->n_backends; i++) {
        struct config_backend *be = &y->cfg->backends[i];
        struct config_kubeconfig kc;
        char err[512], *dir, *path;

        if (!be->kubeconfig)
            continue;
        dir = kf_arena_strdup(y->cfg->arena, y->file);
        path = be->kubeconfig[0] == '/' || !dir
                   ? (char *)be->kubeconfig
                   : kf_arena_sprintf(y->cfg->arena, "%s/%s", dirname(dir), be->kubeconfig);
        be->kubeconfig = path; /* as printed back: relative to nothing */
        if (!path || config_kubeconfig_load(path, y->cfg->arena, &kc, err, sizeof(err)) < 0 ||
            config_backend_apply_kubeconfig(be, &kc, y->cfg->arena) < 0)
            config_diags_add(y->diags, CONFIG_ERROR, y->file, be->kubeconfig_loc,
                             "backends[%zu].kubeconfig: %s", i, path ? err : "out of memory");
    }
}

/* goawayChance: a decimal probability as the apiserver's --goaway-chance, 0 to 0.02. */
static void load_goaway(struct yctx *y, yaml_node_t *node, void *base)
{
    struct config_frontend *fe = base;
    const char *text;
    char *end;
    double v;

    if (node->type != YAML_SCALAR_NODE) {
        expected(y, node, "a number from 0 to 0.02");
        return;
    }
    text = scalar(node);
    errno = 0;
    v = strtod(text, &end);
    if (errno || end == text || *end || v < 0 || v > 0.02) {
        yerr(y, node,
             "expected a number from 0 to 0.02 (the apiserver's --goaway-chance), "
             "got \"%.40s\"",
             text);
        return;
    }
    fe->goaway_chance_ppm = (uint32_t)(v * 1e6 + 0.5);
}

/* ---- the schema ---------------------------------------------------------------------- */

/* Designated initialisers only: each entry sets just what its kind uses. */
#define NAMES(table) .names = (table), .n_names = KF_ARRAY_SIZE(table)
#define F(k, kd, o, ...)                                                                           \
    {                                                                                              \
        .key = (k), .kind = (kd), .off = (o), __VA_ARGS__                                          \
    }
#define STR(k, o, ...)    F(k, F_STRING, o, __VA_ARGS__)
#define NUM(k, o, lo, hi) F(k, F_U32, o, .min = (lo), .max = (hi))
#define BOOL(k, o)        F(k, F_BOOL, o, .required = false)
#define DUR(k, o, lo)     F(k, F_DURATION, o, .min = (lo))
#define ENUM(k, o, table) F(k, F_ENUM, o, NAMES(table))
#define MAP(k, o, set)    F(k, F_MAP, o, .sub = (set))
#define CUSTOM(k, f, req) F(k, F_CUSTOM, 0, .fn = (f), .required = (req))
#define VLOC(o)           .has_vloc = true, .vloc_off = (o)
#define SET(array, ...)                                                                            \
    {                                                                                              \
        .fields = (array), .n = KF_ARRAY_SIZE(array), __VA_ARGS__                                  \
    }
#define SET_LOC(array, o) SET(array, .has_loc = true, .loc_off = (o))

static const char *const api_version[] = {CFG_API_VERSION};
static const char *const kind_name[] = {CFG_KIND};

#define TLS(f) offsetof(struct config_tls_client, f)
static const struct field tls_fields[] = {
    STR("caFile", TLS(ca_file), .required = false),
    STR("certFile", TLS(cert_file), .required = false),
    STR("keyFile", TLS(key_file), .required = false),
    STR("serverName", TLS(server_name), .required = false),
    BOOL("insecureSkipVerify", TLS(insecure_skip_verify)),
};
static const struct fieldset tls_set = SET_LOC(tls_fields, TLS(loc));

#define SNI(f) offsetof(struct config_sni_cert, f)
static const struct field sni_fields[] = {
    STR("certFile", SNI(cert_file), .required = true),
    STR("keyFile", SNI(key_file), .required = false),
    CUSTOM("names", load_sni_names, false),
};
static const struct fieldset sni_set = SET_LOC(sni_fields, SNI(loc));

static void load_sni(struct yctx *y, yaml_node_t *node, void *base)
{
    struct config_tls_server *t = base;

    t->sni = load_list(y, node, &sni_set, sizeof(struct config_sni_cert), NULL, &t->n_sni);
}

#define STLS(f) offsetof(struct config_tls_server, f)
static const struct field server_tls_fields[] = {
    STR("certFile", STLS(cert_file), .required = true),
    STR("keyFile", STLS(key_file), .required = false),
    STR("clientCAFile", STLS(client_ca_file), .required = false),
    CUSTOM("sniCertificates", load_sni, false),
};
static const struct fieldset server_tls_set = SET_LOC(server_tls_fields, STLS(loc));

#define ID(f) offsetof(struct config_identity, f)
static const struct field identity_fields[] = {
    ENUM("mode", ID(mode), config_identity_mode_names),
    STR("proxyClientCertFile", ID(proxy_client_cert_file), .required = false),
    STR("proxyClientKeyFile", ID(proxy_client_key_file), .required = false),
    DUR("tokenCacheTTL", ID(token_cache_ttl_ms), 0),
    BOOL("anonymous", ID(anonymous)),
};
static const struct fieldset identity_set = SET_LOC(identity_fields, ID(loc));

#define CACHE(f) offsetof(struct config_cache, f)
static const struct field cache_fields[] = {
    BOOL("enabled", CACHE(enabled)),
    CUSTOM("resources", load_cache_resources, false),
    ENUM("notReady", CACHE(not_ready), config_cache_not_ready_names),
    DUR("window", CACHE(window_ms), 1000),
};
static const struct fieldset cache_set = SET_LOC(cache_fields, CACHE(loc));

#define AZ(f) offsetof(struct config_authorization, f)
static const struct field authorization_fields[] = {
    DUR("allowTTL", AZ(allow_ttl_ms), 0),
    DUR("denyTTL", AZ(deny_ttl_ms), 0),
    DUR("nodeAllowTTL", AZ(node_allow_ttl_ms), 0),
    DUR("nodeDenyTTL", AZ(node_deny_ttl_ms), 0),
    NUM("cacheSize", AZ(cache_size), 1, 1000000),
    STR("user", AZ(user), .required = false),
    STR("group", AZ(group), .required = false),
    BOOL("resourceWideAllow", AZ(resource_wide_allow)),
};
static const struct fieldset authorization_set = SET_LOC(authorization_fields, AZ(loc));

#define CHK(f) offsetof(struct config_check, f)
static const struct field check_fields[] = {
    ENUM("type", CHK(type), config_check_type_names),
    STR("path", CHK(path), .required = false),
    F("expectStatus", F_INT, CHK(expect_status), .min = 100, .max = 599),
    DUR("interval", CHK(interval_ms), 1),
    DUR("timeout", CHK(timeout_ms), 1),
    NUM("rise", CHK(rise), 1, UINT32_MAX),
    NUM("fall", CHK(fall), 1, UINT32_MAX),
    MAP("tls", CHK(tls), &tls_set),
};
static const struct fieldset check_set = SET_LOC(check_fields, CHK(loc));

#define SRV(f) offsetof(struct config_server, f)
static const struct field server_fields[] = {
    STR("name", SRV(name), .required = true),
    STR("address", SRV(address), .required = true, VLOC(SRV(address_loc))),
    NUM("weight", SRV(weight), 0, CFG_MAX_WEIGHT),
    BOOL("backup", SRV(backup)),
    BOOL("local", SRV(local)),
    ENUM("state", SRV(state), config_server_state_names),
    BOOL("check", SRV(check)),
};
static const struct fieldset server_set = SET_LOC(server_fields, SRV(loc));

#define BE(f) offsetof(struct config_backend, f)
static const struct field backend_fields[] = {
    STR("name", BE(name), .required = true),
    ENUM("balance", BE(balance), config_balance_names),
    NUM("connectRetries", BE(connect_retries), 0, 100),
    MAP("healthCheck", BE(check), &check_set),
    MAP("upstreamTLS", BE(upstream_tls), &tls_set),
    CUSTOM("kubeconfig", load_kubeconfig, false),
    CUSTOM("servers", load_servers, false),
};
static const struct fieldset backend_set = SET_LOC(backend_fields, BE(loc));

#define FE(f) offsetof(struct config_frontend, f)
static const struct field frontend_fields[] = {
    STR("name", FE(name), .required = true),
    CUSTOM("listen", load_listen, true),
    ENUM("mode", FE(mode), config_mode_names),
    STR("backend", FE(backend), .required = true, VLOC(FE(backend_loc))),
    NUM("maxConnections", FE(maxconn), 0, UINT32_MAX),
    MAP("tls", FE(tls), &server_tls_set),
    CUSTOM("goawayChance", load_goaway, false),
    NUM("maxConcurrentStreams", FE(max_concurrent_streams), 1, 1000),
};
static const struct fieldset frontend_set = SET_LOC(frontend_fields, FE(loc));

#define TO(f) offsetof(struct config_timeouts, f)
static const struct field timeout_fields[] = {
    DUR("connect", TO(connect_ms), 1), DUR("clientHello", TO(client_hello_ms), 0),
    DUR("client", TO(client_ms), 0),   DUR("server", TO(server_ms), 0),
    DUR("tunnel", TO(tunnel_ms), 0),   DUR("drain", TO(drain_ms), 0),
    DUR("request", TO(request_ms), 0),
};
static const struct fieldset timeout_set = SET(timeout_fields, .has_loc = false);

static const struct field admin_fields[] = {
    STR("listen", offsetof(struct config_admin, listen), .required = false),
};
static const struct fieldset admin_set = SET(admin_fields, .has_loc = false);

#define CFG(f) offsetof(struct config, f)
static const struct field top_fields[] = {
    F("apiVersion", F_CONST, 0, NAMES(api_version), .required = true),
    F("kind", F_CONST, 0, NAMES(kind_name), .required = true),
    NUM("workers", CFG(workers), 0, CFG_MAX_WORKERS),
    NUM("maxConnections", CFG(maxconn), 1, UINT32_MAX),
    ENUM("logLevel", CFG(log_level), config_log_level_names),
    MAP("admin", CFG(admin), &admin_set),
    MAP("timeouts", CFG(timeouts), &timeout_set),
    MAP("identity", CFG(identity), &identity_set),
    MAP("cache", CFG(cache), &cache_set),
    MAP("authorization", CFG(authorization), &authorization_set),
    CUSTOM("frontends", load_frontends, false),
    CUSTOM("backends", load_backends, false),
};
static const struct fieldset top_set = SET(top_fields, .has_loc = false);

/* ---- documents --------------------------------------------------------------------- */

static void syntax_error(const yaml_parser_t *parser, const char *file, struct config_diags *diags)
{
    struct config_loc at = mark_loc(parser->problem_mark);

    if (parser->error == YAML_MEMORY_ERROR) {
        config_diags_add(diags, CONFIG_ERROR, file, at, "out of memory");
    } else if (parser->context) {
        struct config_loc ctx = mark_loc(parser->context_mark);
        config_diags_add(diags, CONFIG_ERROR, file, at, "YAML syntax error: %s (%s at %d:%d)",
                         parser->problem ? parser->problem : "unknown", parser->context, ctx.line,
                         ctx.column);
    } else {
        config_diags_add(diags, CONFIG_ERROR, file, at, "YAML syntax error: %s",
                         parser->problem ? parser->problem : "unknown");
    }
}

/* A second document would be silently ignored; say so instead. */
static void check_single_document(yaml_parser_t *parser, const char *file,
                                  struct config_diags *diags)
{
    yaml_document_t extra;
    yaml_node_t *root;

    if (!yaml_parser_load(parser, &extra)) {
        syntax_error(parser, file, diags);
        return;
    }
    root = yaml_document_get_root_node(&extra);
    if (root)
        config_diags_add(diags, CONFIG_ERROR, file, mark_loc(extra.start_mark),
                         "only one YAML document is allowed in a configuration file");
    yaml_document_delete(&extra);
}

static void load_document(struct yctx *y, yaml_parser_t *parser)
{
    yaml_node_t *root = yaml_document_get_root_node(y->doc);

    if (!root) {
        config_diags_add(y->diags, CONFIG_ERROR, y->file, (struct config_loc){1, 1},
                         "empty configuration: expected a mapping with apiVersion: %s and "
                         "kind: %s",
                         CFG_API_VERSION, CFG_KIND);
        return;
    }
    load_map(y, root, &top_set, y->cfg);
    apply_kubeconfigs(y);
    check_single_document(parser, y->file, y->diags);
}

int config_parse_yaml(const char *name, const char *text, size_t len, struct config **out,
                      struct config_diags *diags)
{
    struct config_diags scratch;
    struct yctx y = {.file = name, .diags = cfg_diags_begin(diags, &scratch)};
    yaml_parser_t parser;
    yaml_document_t doc;

    *out = NULL;
    y.cfg = cfg_alloc(name);
    if (!y.cfg)
        return -ENOMEM;
    if (!yaml_parser_initialize(&parser)) {
        config_free(y.cfg);
        return -ENOMEM;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        syntax_error(&parser, name, y.diags);
    } else {
        y.doc = &doc;
        load_document(&y, &parser);
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);
    if (y.oom) {
        config_free(y.cfg);
        return -ENOMEM;
    }
    return cfg_load_finish(y.cfg, y.diags, out);
}

int config_load_yaml(const char *path, struct config **out, struct config_diags *diags)
{
    return cfg_load_file(path, config_parse_yaml, out, diags);
}
