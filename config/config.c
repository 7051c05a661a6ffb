/*
 * config.c: the parts every loader shares: defaults, the arena that owns a
 * config, diagnostics, and reading a file.
 */
#include "config/config_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- defaults ---------------------------------------------------------------- */

void cfg_frontend_defaults(struct config_frontend *fe)
{
    memset(fe, 0, sizeof(*fe));
    fe->mode = CONFIG_MODE_TCP;
    fe->max_concurrent_streams = 100; /* the apiserver's */
}

void cfg_check_defaults(struct config_check *check)
{
    memset(check, 0, sizeof(*check));
    /* A load balancer without a health check sends clients to dead masters;
     * a TCP connect is what haproxy's plain "check" does. */
    check->type = CONFIG_CHECK_TCP;
    check->path = CFG_DEFAULT_PATH;
    check->expect_status = 200;
    check->interval_ms = 2000;
    check->timeout_ms = 1000;
    check->rise = 2;
    check->fall = 3;
}

void cfg_backend_defaults(struct config_backend *be)
{
    memset(be, 0, sizeof(*be));
    be->balance = CONFIG_BALANCE_ROUNDROBIN;
    be->connect_retries = 2;
    cfg_check_defaults(&be->check);
}

void cfg_server_defaults(struct config_server *srv)
{
    memset(srv, 0, sizeof(*srv));
    srv->weight = 1;
    srv->check = true;
    srv->state = CONFIG_SERVER_ACTIVE;
}

struct config *cfg_alloc(const char *source)
{
    struct kf_arena *arena = kf_arena_new(CFG_ARENA_BLOCK);
    struct config *cfg;

    if (!arena)
        return NULL;
    cfg = kf_arena_alloc(arena, sizeof(*cfg));
    if (!cfg)
        goto fail;
    cfg->arena = arena;
    cfg->source = kf_arena_strdup(arena, source);
    cfg->admin.listen = CFG_DEFAULT_ADMIN;
    cfg->identity.mode = CONFIG_IDENTITY_FRONT_PROXY;
    cfg->identity.token_cache_ttl_ms = 10000;
    cfg->identity.anonymous = true;
    cfg->cache.enabled = true;
    cfg->cache.window_ms = 75000;
    cfg->authorization.allow_ttl_ms = 300000;
    cfg->authorization.deny_ttl_ms = 10000;
    cfg->authorization.node_allow_ttl_ms = 10000;
    cfg->authorization.node_deny_ttl_ms = 1000;
    cfg->authorization.cache_size = 10000;
    cfg->authorization.user = "system:kfront";
    cfg->authorization.group = "system:masters";
    if (!cfg->source)
        goto fail;
    cfg->workers = 0;
    cfg->maxconn = 50000;
    cfg->log_level = KF_LOG_INFO;
    cfg->timeouts.connect_ms = 5000;
    cfg->timeouts.client_hello_ms = 10000;
    cfg->timeouts.drain_ms = 30000;
    cfg->timeouts.request_ms = 60000; /* the apiserver's --request-timeout */
    return cfg;
fail:
    kf_arena_free(arena);
    return NULL;
}

struct config *config_new_default(void)
{
    return cfg_alloc("<flags>");
}

void config_free(struct config *cfg)
{
    if (cfg)
        kf_arena_free(cfg->arena); /* cfg itself lives in its arena */
}

const struct config_backend *config_find_backend(const struct config *cfg, const char *name)
{
    if (!cfg || !name)
        return NULL;
    for (size_t i = 0; i < cfg->n_backends; i++)
        if (cfg->backends[i].name && strcmp(cfg->backends[i].name, name) == 0)
            return &cfg->backends[i];
    return NULL;
}

void *cfg_array_grow(struct kf_arena *arena, void *array, size_t n, size_t *cap, size_t elem)
{
    void *bigger;

    if (n < *cap)
        return array;
    /* Doubling wastes at most as much arena memory as the final array. */
    *cap = *cap ? *cap * 2 : 4;
    bigger = kf_arena_alloc(arena, *cap * elem);
    if (bigger && n)
        memcpy(bigger, array, n * elem);
    return bigger;
}

/* ---- diagnostics --------------------------------------------------------------- */

void config_diags_add(struct config_diags *diags, enum config_severity severity, const char *file,
                      struct config_loc loc, const char *fmt, ...)
{
    struct config_diag *d;
    va_list ap;

    if (!diags)
        return;
    if (severity == CONFIG_ERROR)
        diags->n_errors++;
    if (diags->n >= CONFIG_MAX_DIAGS)
        return;
    d = &diags->items[diags->n++];
    d->severity = severity;
    snprintf(d->file, sizeof(d->file), "%s", file ? file : "<config>");
    d->line = loc.line;
    d->column = loc.column;
    va_start(ap, fmt);
    vsnprintf(d->message, sizeof(d->message), fmt, ap);
    va_end(ap);
}

void config_diags_print(const struct config_diags *diags, FILE *out)
{
    for (size_t i = 0; diags && i < diags->n; i++) {
        const struct config_diag *d = &diags->items[i];
        const char *sev = d->severity == CONFIG_ERROR ? "error" : "warning";

        if (d->line > 0)
            fprintf(out, "%s:%d:%d: %s: %s\n", d->file, d->line, d->column, sev, d->message);
        else
            fprintf(out, "%s: %s: %s\n", d->file, sev, d->message);
    }
}

struct config_diags *cfg_diags_begin(struct config_diags *diags, struct config_diags *scratch)
{
    if (!diags)
        diags = scratch;
    diags->n = 0;
    diags->n_errors = 0;
    return diags;
}

/* Diagnostics without a line (whole-config problems) go last. */
static bool diag_before(const struct config_diag *a, const struct config_diag *b)
{
    if (a->line == 0 || b->line == 0)
        return a->line != 0 && b->line == 0;
    return a->line < b->line || (a->line == b->line && a->column < b->column);
}

/* Insertion sort: stable, and there are at most CONFIG_MAX_DIAGS items. */
static void diags_sort(struct config_diags *diags)
{
    for (size_t i = 1; i < diags->n; i++) {
        struct config_diag tmp = diags->items[i];
        size_t j = i;

        while (j > 0 && diag_before(&tmp, &diags->items[j - 1])) {
            diags->items[j] = diags->items[j - 1];
            j--;
        }
        diags->items[j] = tmp;
    }
}

int cfg_load_finish(struct config *cfg, struct config_diags *diags, struct config **out)
{
    /* Validating a config whose fields failed to load would only add noise
     * about the same lines. */
    if (diags->n_errors == 0)
        config_validate(cfg, diags);
    diags_sort(diags);
    if (diags->n_errors > 0) {
        config_free(cfg);
        *out = NULL;
        return -EINVAL;
    }
    *out = cfg;
    return 0;
}

static int read_file(const char *path, char **text, size_t *len, struct config_diags *diags)
{
    static const struct config_loc none;
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n;
    int err;

    if (!f)
        goto fail_errno;
    buf = malloc(CFG_MAX_FILE_BYTES + 1);
    if (!buf)
        goto fail_errno;
    n = fread(buf, 1, CFG_MAX_FILE_BYTES + 1, f);
    if (ferror(f))
        goto fail_errno;
    fclose(f);
    if (n > CFG_MAX_FILE_BYTES) {
        free(buf);
        config_diags_add(diags, CONFIG_ERROR, path, none, "file is larger than %u bytes",
                         CFG_MAX_FILE_BYTES);
        return -EFBIG;
    }
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return 0;
fail_errno:
    err = errno ? errno : EIO;
    free(buf);
    if (f)
        fclose(f);
    config_diags_add(diags, CONFIG_ERROR, path, none, "cannot read: %s", strerror(err));
    return -err;
}

int cfg_load_file(const char *path, cfg_parse_fn parse, struct config **out,
                  struct config_diags *diags)
{
    struct config_diags scratch;
    char *text = NULL;
    size_t len = 0;
    int rc;

    *out = NULL;
    diags = cfg_diags_begin(diags, &scratch);
    rc = read_file(path, &text, &len, diags);
    if (rc < 0)
        return rc;
    rc = parse(path, text, len, out, diags);
    free(text);
    return rc;
}
