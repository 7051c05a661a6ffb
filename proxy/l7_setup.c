/*
 * Mode http pieces of a generation: the serving TLS of each frontend (its
 * px_server is made once and keeps its connections across reloads; a reload
 * swaps the certificate for new connections) and the client TLS towards each
 * backend used by a mode-http frontend. Built before the generation is
 * published, so a bad certificate refuses the reload.
 */
#include "proxy/l7.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ssl.h>

static void tls_error(struct config_diags *diags, const struct config *cfg, struct config_loc loc,
                      const char *what, const char *name, const char *err)
{
    config_diags_add(diags, CONFIG_ERROR, cfg->source ? cfg->source : "<config>", loc, "%s %s: %s",
                     what, name, err);
}

static int setup_frontend(struct px_frontend *fe, const struct config *cfg,
                          const struct config_frontend *cf, struct config_diags *diags)
{
    char err[256];
    SSL_CTX *ctx = px_l7_server_tls(cf, err, sizeof(err));

    if (!ctx) {
        tls_error(diags, cfg, cf->tls.loc, "frontend", cf->name, err);
        return -1;
    }
    if (fe->http) {
        px_server_set_tls(fe->http, ctx);
    } else {
        struct px_server_config scfg = {
            .handler = px_l7_handle,
            .handler_arg = fe,
            .stream_body = px_l7_stream_body,
            .tls = ctx,
            .max_concurrent_streams = cf->max_concurrent_streams,
            .goaway_chance = (double)cf->goaway_chance_ppm / 1e6,
        };
        fe->http = px_server_new(&scfg);
    }
    SSL_CTX_free(ctx); /* the server holds its own reference */
    return fe->http ? 0 : -1;
}

static int setup_backend(struct px_generation *gen, size_t bi, struct config_diags *diags)
{
    const struct config_backend *be = &gen->cfg->backends[bi];
    char err[256];

    if (gen->upstream_tls[bi])
        return 0;
    gen->upstream_tls[bi] = px_l7_upstream_tls(gen->cfg, be, err, sizeof(err));
    if (!gen->upstream_tls[bi]) {
        tls_error(diags, gen->cfg, be->upstream_tls.loc, "backend", be->name, err);
        return -1;
    }
    return 0;
}

int px_generation_setup_http(struct px_daemon *d, struct px_generation *gen,
                             struct config_diags *diags)
{
    (void)d;
    gen->upstream_tls = calloc(gen->cfg->n_backends + 1, sizeof(*gen->upstream_tls));
    if (!gen->upstream_tls)
        return -1;
    for (size_t k = 0; k < gen->n_bindings; k++) {
        struct px_binding *b = &gen->bindings[k];
        bool first_of_frontend = k == 0 || b[-1].cfe != b->cfe;
        if (b->mode != CONFIG_MODE_HTTP || !b->backend)
            continue;
        size_t bi = (size_t)(b->backend - gen->cfg->backends);
        if (first_of_frontend && setup_frontend(b->frontend, gen->cfg, b->cfe, diags) < 0)
            return -1;
        if (setup_backend(gen, bi, diags) < 0)
            return -1;
        b->upstream_tls = gen->upstream_tls[bi];
    }
    return 0;
}

void px_generation_free_http(struct px_generation *gen)
{
    if (!gen->upstream_tls || !gen->cfg)
        goto out;
    for (size_t i = 0; i < gen->cfg->n_backends; i++)
        SSL_CTX_free(gen->upstream_tls[i]);
out:
    free(gen->upstream_tls);
    gen->upstream_tls = NULL;
}

static void for_each_http(struct px_daemon *d, void (*fn)(struct px_frontend *fe, void *arg),
                          void *arg)
{
    struct kf_list *pos;

    kf_list_for_each(pos, &d->frontends)
    {
        struct px_frontend *fe = kf_container_of(pos, struct px_frontend, link);
        if (fe->http)
            fn(fe, arg);
    }
}

static void shutdown_one(struct px_frontend *fe, void *arg)
{
    (void)arg;
    px_server_shutdown(fe->http);
}

static void count_one(struct px_frontend *fe, void *arg)
{
    struct px_server_stats st;

    px_server_get_stats(fe->http, &st);
    *(uint64_t *)arg += st.conns_current;
}

static void free_one(struct px_frontend *fe, void *arg)
{
    (void)arg;
    px_server_free(fe->http);
    fe->http = NULL;
}

void px_http_shutdown(struct px_daemon *d)
{
    for_each_http(d, shutdown_one, NULL);
}

uint64_t px_http_connections(struct px_daemon *d)
{
    uint64_t n = 0;
    for_each_http(d, count_one, &n);
    return n;
}

void px_http_free(struct px_daemon *d)
{
    for_each_http(d, free_one, NULL);
}
