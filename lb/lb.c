/*
 * lb: building the runtime backends from a config, server lifetime and the
 * reporters the data path calls.
 */
#include "lb/lb_internal.h"

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Defaults for fields a hand-built config may leave at zero. */
#define DEFAULT_INTERVAL_MS 2000
#define DEFAULT_TIMEOUT_MS  1000
#define DEFAULT_RISE        2
#define DEFAULT_FALL        3
#define DEFAULT_STATUS      200
#define MAX_WEIGHT          256

static void add_diag(struct config_diags *diags, const struct config *cfg, struct config_loc loc,
                     const char *fmt, ...) KF_PRINTF(4, 5);

static void add_diag(struct config_diags *diags, const struct config *cfg, struct config_loc loc,
                     const char *fmt, ...)
{
    struct config_diag *d;
    va_list ap;

    if (!diags || diags->n >= CONFIG_MAX_DIAGS)
        return;
    d = &diags->items[diags->n++];
    diags->n_errors++;
    d->severity = CONFIG_ERROR;
    snprintf(d->file, sizeof(d->file), "%s", cfg->source ? cfg->source : "<config>");
    d->line = loc.line;
    d->column = loc.column;
    va_start(ap, fmt);
    vsnprintf(d->message, sizeof(d->message), fmt, ap);
    va_end(ap);
}

static uint32_t or_default(uint32_t value, uint32_t def)
{
    return value ? value : def;
}

/* ---- servers ------------------------------------------------------------------ */

void lb_server_retain(struct lb_server *server)
{
    atomic_fetch_add_explicit(&server->refs, 1, memory_order_relaxed);
}

void lb_server_release(struct lb_server *server)
{
    if (!server || atomic_fetch_sub_explicit(&server->refs, 1, memory_order_acq_rel) != 1)
        return;
    pthread_mutex_destroy(&server->mu);
    free(server->backend);
    free(server->name);
    free(server->label);
    free(server->address);
    free(server->host);
    free(server);
}

/* The host part of "host:port" / "[v6]:port", for SNI, verification and Host. */
static char *address_host(const char *address)
{
    const char *colon;

    if (address[0] == '[') {
        const char *close = strchr(address, ']');
        return close ? strndup(address + 1, (size_t)(close - address - 1)) : NULL;
    }
    colon = strrchr(address, ':');
    return colon ? strndup(address, (size_t)(colon - address)) : NULL;
}

/* Numeric addresses parse directly; names go through the resolver (lb_new may block). */
static int resolve(const char *address, const char *host, struct sockaddr_storage *ss,
                   socklen_t *len, char *err, size_t err_size)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    unsigned ulen;
    int rc;

    if (kf_addr_parse(address, ss, &ulen) == 0) {
        *len = (socklen_t)ulen;
        return 0;
    }
    const char *colon = strrchr(address, ':');
    if (address[0] == '[' || !host || !colon || host[0] == '\0' || colon[1] == '\0') {
        snprintf(err, err_size, "address \"%s\" is not HOST:PORT", address);
        return -EINVAL;
    }
    rc = getaddrinfo(host, colon + 1, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(err, err_size, "cannot resolve \"%s\": %s", address, gai_strerror(rc));
        return -EHOSTUNREACH;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static struct lb_server *server_new(const char *backend, const struct config_server *sc, char *err,
                                    size_t err_size)
{
    struct lb_server *s = calloc(1, sizeof(*s));

    if (!s)
        goto nomem;
    atomic_init(&s->refs, 1);
    pthread_mutex_init(&s->mu, NULL);
    s->backend = strdup(backend);
    s->name = strdup(sc->name);
    s->address = strdup(sc->address);
    s->host = address_host(sc->address);
    if (!s->backend || !s->name || !s->address ||
        asprintf(&s->label, "%s/%s", backend, sc->name) < 0) {
        s->label = NULL;
        goto nomem;
    }
    if (resolve(sc->address, s->host, &s->addr, &s->addr_len, err, err_size) < 0) {
        lb_server_release(s);
        return NULL;
    }
    kf_addr_format((struct sockaddr *)&s->addr, s->addr_text, sizeof(s->addr_text));
    return s;
nomem:
    snprintf(err, err_size, "out of memory");
    lb_server_release(s);
    return NULL;
}

/* The server of the previous lb this one continues, or NULL. */
static struct lb_server *find_previous(struct lb *previous, const struct lb_pool *pool,
                                       const struct lb_server *fresh)
{
    struct lb_pool *old = previous ? lb_find_pool(previous, pool->name) : NULL;

    for (size_t i = 0; old && i < old->n_servers; i++) {
        struct lb_server *s = old->servers[i];
        if (strcmp(s->name, fresh->name) == 0 && strcmp(s->address, fresh->address) == 0 &&
            s->addr_len == fresh->addr_len && memcmp(&s->addr, &fresh->addr, s->addr_len) == 0)
            return s;
    }
    return NULL;
}

static bool pool_has(const struct lb_pool *pool, const struct lb_server *server)
{
    for (size_t i = 0; i < pool->n_servers; i++)
        if (pool->servers[i] == server)
            return true;
    return false;
}

/* Settings a reload may change; the object may be in use by workers meanwhile. */
static void server_apply(struct lb_server *s, const struct config_backend *bc,
                         const struct config_server *sc)
{
    uint32_t weight = sc->weight > MAX_WEIGHT ? MAX_WEIGHT : sc->weight;

    atomic_store(&s->weight, weight);
    atomic_store(&s->backup, sc->backup);
    atomic_store(&s->local, sc->local);
    atomic_store(&s->admin_state, (int)sc->state);
    atomic_store(&s->rise, or_default(bc->check.rise, DEFAULT_RISE));
    atomic_store(&s->fall, or_default(bc->check.fall, DEFAULT_FALL));
    atomic_store(&s->retry_interval_ms, or_default(bc->check.interval_ms, DEFAULT_INTERVAL_MS));
}

static int pool_add_server(struct lb_pool *pool, const struct config *cfg,
                           const struct config_backend *bc, const struct config_server *sc,
                           struct lb *previous, struct config_diags *diags)
{
    char err[256];
    struct lb_server *fresh, *old;

    if (!sc->name || !sc->address) {
        add_diag(diags, cfg, sc->loc, "backend \"%s\": server without name or address", bc->name);
        return -EINVAL;
    }
    fresh = server_new(bc->name, sc, err, sizeof(err));
    if (!fresh) {
        add_diag(diags, cfg, sc->loc, "backend \"%s\" server \"%s\": %s", bc->name, sc->name, err);
        return -EINVAL;
    }
    old = find_previous(previous, pool, fresh);
    if (old && !pool_has(pool, old)) {
        lb_server_release(fresh);
        lb_server_retain(old);
        fresh = old;
    }
    server_apply(fresh, bc, sc);
    pool->checked[pool->n_servers] = sc->check && bc->check.type != CONFIG_CHECK_NONE;
    pool->servers[pool->n_servers++] = fresh;
    return 0;
}

/* ---- pools ------------------------------------------------------------------ */

static void pool_destroy(struct lb_pool *pool)
{
    for (size_t i = 0; i < pool->n_servers; i++)
        lb_server_release(pool->servers[i]);
    lb_tls_ctx_free(&pool->check);
    pthread_mutex_destroy(&pool->rr_mu);
    free(pool->servers);
    free(pool->current);
    free(pool->checked);
    free(pool->name);
    free(pool->check.path);
    free(pool->check.server_name);
}

/* The path goes verbatim into the request line. */
static bool valid_path(const char *path)
{
    if (path[0] != '/')
        return false;
    for (const unsigned char *p = (const unsigned char *)path; *p; p++)
        if (*p <= ' ' || *p == 0x7f)
            return false;
    return true;
}

static int pool_copy_check(struct lb_pool *pool, const struct config *cfg,
                           const struct config_backend *bc, struct config_diags *diags)
{
    const struct config_check *cc = &bc->check;
    struct lb_check_params *p = &pool->check;
    char err[256];

    p->type = cc->type;
    p->path = strdup(cc->path ? cc->path : "/readyz");
    p->expect_status = cc->expect_status ? cc->expect_status : DEFAULT_STATUS;
    p->interval_ms = or_default(cc->interval_ms, DEFAULT_INTERVAL_MS);
    p->timeout_ms = or_default(cc->timeout_ms, DEFAULT_TIMEOUT_MS);
    p->verify = !cc->tls.insecure_skip_verify;
    p->server_name = cc->tls.server_name ? strdup(cc->tls.server_name) : NULL;
    if (!p->path || (cc->tls.server_name && !p->server_name))
        return -ENOMEM;
    if (!valid_path(p->path)) {
        add_diag(
            diags, cfg, cc->loc,
            "backend \"%s\" check path must start with / and have no spaces or control characters",
            bc->name);
        return -EINVAL;
    }
    if (cc->type != CONFIG_CHECK_TLS && cc->type != CONFIG_CHECK_HTTPS)
        return 0;
    if (lb_tls_ctx_new(p, &cc->tls, err, sizeof(err)) < 0) {
        add_diag(diags, cfg, cc->tls.loc, "backend \"%s\" check tls: %s", bc->name, err);
        return -EINVAL;
    }
    return 0;
}

static int pool_init(struct lb_pool *pool, const struct config *cfg,
                     const struct config_backend *bc, struct lb *previous,
                     struct config_diags *diags)
{
    pthread_mutex_init(&pool->rr_mu, NULL);
    pool->name = strdup(bc->name ? bc->name : "");
    pool->balance = bc->balance;
    pool->connect_retries = bc->connect_retries;
    pool->servers = calloc(bc->n_servers ? bc->n_servers : 1, sizeof(*pool->servers));
    pool->current = calloc(bc->n_servers ? bc->n_servers : 1, sizeof(*pool->current));
    pool->checked = calloc(bc->n_servers ? bc->n_servers : 1, sizeof(*pool->checked));
    if (!pool->name || !pool->servers || !pool->current || !pool->checked) {
        add_diag(diags, cfg, bc->loc, "out of memory");
        return -ENOMEM;
    }
    if (pool_copy_check(pool, cfg, bc, diags) < 0)
        return -EINVAL;
    for (size_t i = 0; i < bc->n_servers; i++)
        if (pool_add_server(pool, cfg, bc, &bc->servers[i], previous, diags) < 0)
            return -EINVAL;
    return 0;
}

/* ---- the lb ------------------------------------------------------------------- */

static void lb_free(struct lb *lb)
{
    lb_stop_checks(lb);
    for (size_t i = 0; i < lb->n_pools; i++)
        pool_destroy(&lb->pools[i]);
    free(lb->pools);
    free(lb);
}

struct lb *lb_new(const struct config *cfg, struct lb *previous, struct config_diags *diags)
{
    struct lb *lb = calloc(1, sizeof(*lb));

    if (!lb)
        return NULL;
    atomic_init(&lb->refs, 1);
    lb->rng = (kf_now_us() ^ (uint64_t)(uintptr_t)lb) | 1;
    lb->pools = calloc(cfg->n_backends ? cfg->n_backends : 1, sizeof(*lb->pools));
    if (!lb->pools)
        goto fail;
    for (size_t i = 0; i < cfg->n_backends; i++) {
        lb->n_pools++; /* counted first, so that lb_free cleans a half-built pool */
        if (pool_init(&lb->pools[i], cfg, &cfg->backends[i], previous, diags) < 0)
            goto fail;
    }
    return lb;
fail:
    lb_free(lb);
    return NULL;
}

void lb_retain(struct lb *lb)
{
    atomic_fetch_add_explicit(&lb->refs, 1, memory_order_relaxed);
}

void lb_release(struct lb *lb)
{
    if (lb && atomic_fetch_sub_explicit(&lb->refs, 1, memory_order_acq_rel) == 1)
        lb_free(lb);
}

struct lb_pool *lb_find_pool(struct lb *lb, const char *backend_name)
{
    for (size_t i = 0; i < lb->n_pools; i++)
        if (strcmp(lb->pools[i].name, backend_name) == 0)
            return &lb->pools[i];
    return NULL;
}

uint32_t lb_pool_connect_retries(const struct lb_pool *pool)
{
    return pool->connect_retries;
}

bool lb_any_server_up(struct lb *lb)
{
    for (size_t i = 0; i < lb->n_pools; i++)
        for (size_t j = 0; j < lb->pools[i].n_servers; j++)
            if (lb_server_eligible(lb->pools[i].servers[j]))
                return true;
    return false;
}

/* ---- health ------------------------------------------------------------------- */

void lb_server_record(struct lb_server *s, bool ok, const char *detail)
{
    struct lb_health_counter snap;
    bool changed;

    pthread_mutex_lock(&s->mu);
    changed = lb_health_record(&s->health, ok, atomic_load(&s->rise), atomic_load(&s->fall));
    snap = s->health;
    atomic_store(&s->health_state, (int)snap.state);
    atomic_store(&s->fail_streak, snap.failures);
    if (!ok)
        snprintf(s->last_failure, sizeof(s->last_failure), "%s", detail);
    if (!ok && snap.state == LB_HEALTH_DOWN)
        atomic_store(&s->retry_at_ms, kf_now_ms() + atomic_load(&s->retry_interval_ms));
    pthread_mutex_unlock(&s->mu);

    if (!changed)
        return;
    if (snap.state == LB_HEALTH_DOWN)
        kf_warn("lb", "server %s (%s) is DOWN: %u consecutive failure%s, last: %s", s->label,
                s->addr_text, snap.failures, snap.failures == 1 ? "" : "s", detail);
    else
        kf_info("lb", "server %s (%s) is UP: %u consecutive success%s (%s)", s->label, s->addr_text,
                snap.successes, snap.successes == 1 ? "" : "es", detail);
}

void lb_server_last_failure(struct lb_server *s, char *buf, size_t size)
{
    pthread_mutex_lock(&s->mu);
    snprintf(buf, size, "%s", s->last_failure);
    pthread_mutex_unlock(&s->mu);
}

enum lb_health lb_server_health(const struct lb_server *server)
{
    return (enum lb_health)atomic_load_explicit(&server->health_state, memory_order_relaxed);
}

/*
 * Without active checks nothing would ever bring a passively downed server
 * back. So such a server becomes eligible again retry_interval (the check
 * interval) after its last failure; lb_pick then pushes retry_at forward, so
 * about one trial connection per interval reaches it, and rise successful
 * trials bring it up.
 */
bool lb_server_eligible(const struct lb_server *s)
{
    if (atomic_load_explicit(&s->admin_state, memory_order_relaxed) != CONFIG_SERVER_ACTIVE ||
        atomic_load_explicit(&s->weight, memory_order_relaxed) == 0)
        return false;
    if (lb_server_health(s) != LB_HEALTH_DOWN)
        return true;
    if (atomic_load_explicit(&s->checkers, memory_order_relaxed) > 0)
        return false;
    return kf_now_ms() >= atomic_load_explicit(&s->retry_at_ms, memory_order_relaxed);
}

void lb_server_report_connect(struct lb_server *s, bool ok, uint64_t connect_us)
{
    char detail[96];

    if (ok) {
        lb_hist_observe(&s->connect_hist, connect_us);
        /* The common case takes no lock: already up with no failure to reset. */
        if (lb_server_health(s) == LB_HEALTH_UP && atomic_load(&s->fail_streak) == 0)
            return;
        snprintf(detail, sizeof(detail), "passive: connect in %.1f ms", (double)connect_us / 1e3);
    } else {
        atomic_fetch_add_explicit(&s->connect_failures, 1, memory_order_relaxed);
        snprintf(detail, sizeof(detail), "passive: connect failed after %.1f ms",
                 (double)connect_us / 1e3);
    }
    lb_server_record(s, ok, detail);
}

void lb_server_add_bytes(struct lb_server *s, uint64_t to_server, uint64_t from_server)
{
    atomic_fetch_add_explicit(&s->bytes_to, to_server, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->bytes_from, from_server, memory_order_relaxed);
}

void lb_server_conn_end(struct lb_server *s)
{
    atomic_fetch_sub_explicit(&s->active_conns, 1, memory_order_relaxed);
    lb_server_release(s);
}

const struct sockaddr *lb_server_addr(const struct lb_server *s, socklen_t *len)
{
    *len = s->addr_len;
    return (const struct sockaddr *)&s->addr;
}

const char *lb_server_label(const struct lb_server *s)
{
    return s->label;
}

const char *lb_server_host(const struct lb_server *s)
{
    return s->host;
}
