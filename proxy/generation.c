/*
 * A generation is what one configuration turns into: the lb, and a binding
 * of each listen address to its frontend and pool. Building one binds every
 * new address first, so a reload that cannot bind is refused whole and the
 * running generation keeps serving.
 */
#include "proxy/proxy_internal.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void listen_error(struct config_diags *diags, const struct config *cfg,
                         struct config_loc loc, const char *address, int err)
{
    if (!diags || diags->n >= CONFIG_MAX_DIAGS)
        return;
    struct config_diag *d = &diags->items[diags->n++];
    d->severity = CONFIG_ERROR;
    snprintf(d->file, sizeof(d->file), "%s", cfg->source ? cfg->source : "<config>");
    d->line = loc.line;
    d->column = loc.column;
    snprintf(d->message, sizeof(d->message), "cannot listen on %s: %s", address, strerror(err));
    diags->n_errors++;
}

static int bind_one(const struct sockaddr_storage *ss, socklen_t len)
{
    int one = 1;
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -errno;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    px_socket_tune(fd);            /* accepted sockets inherit these: no syscalls per connection */
    if (ss->ss_family == AF_INET6) /* "[::]:6443" and "0.0.0.0:6443" can both be listed */
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)ss, len) < 0 || listen(fd, 4096) < 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}

/* Keepalive finds dead peers of quiet watches without an inactivity timeout. */
void px_socket_tune(int fd)
{
    int one = 1, idle = 30, intvl = 10, cnt = 3;

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

void px_listener_release(struct px_listener *l)
{
    if (!l || atomic_fetch_sub(&l->refs, 1) != 1)
        return;
    for (unsigned i = 0; i < l->n_fds; i++)
        close(l->fds[i]);
    free(l->address);
    free(l);
}

/* Bind a listener with one socket per worker. Port 0 binds the first socket to
 * an ephemeral port and the others to the same one. */
static int listener_open(const char *address, unsigned n_workers, struct px_listener **out)
{
    struct px_listener *l = calloc(1, sizeof(*l));
    unsigned len;
    int rc;

    if (!l)
        return -ENOMEM;
    atomic_init(&l->refs, 1);
    l->address = strdup(address);
    if (!l->address || kf_addr_parse(address, &l->addr, &len) < 0) {
        rc = l->address ? -EINVAL : -ENOMEM;
        goto fail;
    }
    l->addrlen = len;
    for (unsigned i = 0; i < n_workers; i++) {
        rc = bind_one(&l->addr, l->addrlen);
        if (rc < 0)
            goto fail;
        l->fds[l->n_fds++] = rc;
        if (i == 0) { /* learn the port the kernel chose for ":0" */
            socklen_t alen = sizeof(l->addr);
            getsockname(rc, (struct sockaddr *)&l->addr, &alen);
        }
    }
    *out = l;
    return 0;
fail:
    px_listener_release(l);
    return rc;
}

static struct px_listener *find_listener(struct px_generation *gen, const char *address)
{
    for (size_t i = 0; gen && i < gen->n_bindings; i++)
        if (strcmp(gen->bindings[i].listener->address, address) == 0)
            return gen->bindings[i].listener;
    return NULL;
}

static struct px_frontend *frontend_get(struct px_daemon *d, const struct config_frontend *cf)
{
    struct kf_list *pos;
    struct px_frontend *fe;

    kf_list_for_each(pos, &d->frontends)
    {
        fe = kf_container_of(pos, struct px_frontend, link);
        if (strcmp(fe->name, cf->name) == 0) {
            fair_limit_set_max(&fe->limit, cf->maxconn);
            return fe;
        }
    }
    fe = calloc(1, sizeof(*fe));
    if (!fe || !(fe->name = strdup(cf->name))) {
        free(fe);
        return NULL;
    }
    fair_limit_init(&fe->limit, cf->maxconn);
    kf_list_insert_tail(&d->frontends, &fe->link);
    return fe;
}

static size_t count_bindings(const struct config *cfg)
{
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_frontends; i++)
        n += cfg->frontends[i].n_listen;
    return n;
}

static int bind_frontend(struct px_daemon *d, struct px_generation *gen,
                         const struct config_frontend *cf, struct config_diags *diags)
{
    struct px_frontend *fe = frontend_get(d, cf);

    if (!fe)
        return -ENOMEM;
    for (size_t j = 0; j < cf->n_listen; j++) {
        struct px_binding *b = &gen->bindings[gen->n_bindings];
        struct px_listener *l = find_listener(d->gen, cf->listen[j]);
        if (l) {
            atomic_fetch_add(&l->refs, 1);
        } else {
            int rc = listener_open(cf->listen[j], d->n_workers, &l);
            if (rc < 0) {
                listen_error(diags, gen->cfg, cf->loc, cf->listen[j], -rc);
                return rc;
            }
        }
        b->listener = l;
        b->frontend = fe;
        b->mode = cf->mode;
        b->cfe = cf;
        gen->n_bindings++;
    }
    return 0;
}

struct px_generation *px_generation_build(struct px_daemon *d, struct config *cfg,
                                          struct config_diags *diags)
{
    struct px_generation *gen = calloc(1, sizeof(*gen));

    if (!gen)
        return NULL;
    atomic_init(&gen->refs, 1);
    gen->id = ++d->next_generation_id;
    gen->cfg = cfg;
    gen->bindings = calloc(count_bindings(cfg) + 1, sizeof(*gen->bindings));
    if (!gen->bindings)
        goto fail;
    /* Bind first: lb_new takes over servers of the running lb, so it must be the last step
     * that can fail. */
    for (size_t i = 0; i < cfg->n_frontends; i++)
        if (bind_frontend(d, gen, &cfg->frontends[i], diags) < 0)
            goto fail;
    gen->lb = lb_new(cfg, d->gen ? d->gen->lb : NULL, diags);
    if (!gen->lb)
        goto fail;
    for (size_t i = 0, k = 0; i < cfg->n_frontends; i++)
        for (size_t j = 0; j < cfg->frontends[i].n_listen; j++, k++) {
            gen->bindings[k].pool = lb_find_pool(gen->lb, cfg->frontends[i].backend);
            gen->bindings[k].backend = config_find_backend(cfg, cfg->frontends[i].backend);
        }
    if (px_generation_setup_http(d, gen, diags) < 0)
        goto fail;
    return gen;
fail:
    gen->cfg = NULL; /* the caller still owns cfg on failure */
    px_generation_release(gen);
    return NULL;
}

void px_generation_retain(struct px_generation *gen)
{
    atomic_fetch_add(&gen->refs, 1);
}

void px_generation_release(struct px_generation *gen)
{
    if (!gen || atomic_fetch_sub(&gen->refs, 1) != 1)
        return;
    for (size_t i = 0; i < gen->n_bindings; i++)
        px_listener_release(gen->bindings[i].listener);
    px_generation_free_http(gen);
    free(gen->bindings);
    if (gen->lb)
        lb_release(gen->lb);
    config_free(gen->cfg);
    free(gen);
}
