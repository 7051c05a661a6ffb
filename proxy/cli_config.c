/* Turning a command line into a struct config. */
#include "proxy/cli.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Split "a,b,c" into arena strings; returns how many (0 on ENOMEM). */
static size_t split_list(struct kf_arena *a, const char *text, const char ***out)
{
    size_t n = 1, i = 0;

    for (const char *p = text; *p; p++)
        n += *p == ',';
    *out = kf_arena_alloc(a, n * sizeof(**out));
    for (const char *p = text; *out && i < n; i++) {
        size_t len = strcspn(p, ",");
        (*out)[i] = kf_arena_strndup(a, p, len);
        p += len + (p[len] == ',');
    }
    return *out ? n : 0;
}

/* --tls-sni-cert-key CERT,KEY[:NAME,...] as the apiserver reads it. */
static void flags_sni(const struct px_cli *cli, struct kf_arena *a, struct config_frontend *fe)
{
    fe->tls.sni = kf_arena_alloc(a, (cli->n_tls_sni + 1) * sizeof(*fe->tls.sni));
    for (size_t i = 0; fe->tls.sni && i < cli->n_tls_sni; i++) {
        const char *arg = cli->tls_sni[i], *colon = strchr(arg, ':');
        const char **pair;
        char *files = kf_arena_strndup(a, arg, colon ? (size_t)(colon - arg) : strlen(arg));
        struct config_sni_cert *s = &fe->tls.sni[fe->tls.n_sni++];

        memset(s, 0, sizeof(*s));
        if (files && split_list(a, files, &pair) >= 2) {
            s->cert_file = pair[0];
            s->key_file = pair[1];
        }
        if (colon && colon[1])
            s->n_names = split_list(a, colon + 1, &s->names);
    }
}

/* Mode http from the apiserver-style flags; validation says what is missing. */
static void flags_http(const struct px_cli *cli, struct config *cfg, struct config_frontend *fe,
                       struct config_backend *be)
{
    fe->mode = cli->mode;
    fe->max_concurrent_streams = 100;
    fe->goaway_chance_ppm = cli->goaway_chance_ppm;
    if (cli->request_timeout_set)
        cfg->timeouts.request_ms = cli->request_timeout_ms;
    fe->tls.cert_file = cli->tls_cert_file;
    fe->tls.key_file = cli->tls_key_file;
    fe->tls.client_ca_file = cli->client_ca_file;
    flags_sni(cli, cfg->arena, fe);
    be->upstream_tls.ca_file = cli->upstream_ca_file;
    /* kubeconfig credentials are kfront's own: without a front-proxy certificate they can
     * vouch for clients only by impersonating them */
    bool impersonate = cli->upstream_kubeconfig && !cli->proxy_client_cert_file;
    cfg->identity.mode =
        cli->identity_mode_set || !impersonate ? cli->identity_mode : CONFIG_IDENTITY_IMPERSONATE;
    cfg->identity.proxy_client_cert_file = cli->proxy_client_cert_file;
    cfg->identity.proxy_client_key_file = cli->proxy_client_key_file;
}

/*
 * --upstream-kubeconfig: how to reach and trust the apiservers (CA, client certificate,
 * tls-server-name), and the server itself when no --upstream names one.
 */
static int upstream_from_kubeconfig(const struct px_cli *cli, struct config *cfg,
                                    struct config_backend *be)
{
    struct config_kubeconfig kc;
    char err[512];

    if (config_kubeconfig_load(cli->upstream_kubeconfig, cfg->arena, &kc, err, sizeof(err)) < 0) {
        fprintf(stderr, "kfront: --upstream-kubeconfig: %s\n", err);
        return -EINVAL;
    }
    return config_backend_apply_kubeconfig(be, &kc, cfg->arena);
}

static int flags_config(const struct px_cli *cli, struct config **out)
{
    struct config *cfg = config_new_default();
    struct kf_arena *a;
    size_t n_servers = cli->n_upstreams + cli->n_local_upstreams;

    if (!cfg)
        return -ENOMEM;
    a = cfg->arena;
    cfg->source = "<flags>";
    struct config_frontend *fe = kf_arena_alloc(a, sizeof(*fe));
    struct config_backend *be = kf_arena_alloc(a, sizeof(*be));
    const char **listen = kf_arena_alloc(a, (cli->n_listen + 1) * sizeof(*listen));
    struct config_server *servers = kf_arena_alloc(a, (n_servers + 1) * sizeof(*servers));
    if (!fe || !be || !listen || !servers)
        goto nomem;
    for (size_t i = 0; i < cli->n_listen; i++)
        listen[i] = cli->listen[i];
    if (cli->n_listen == 0)
        listen[0] = "0.0.0.0:6443";
    *fe = (struct config_frontend){.name = "kube-apiserver",
                                   .listen = listen,
                                   .n_listen = cli->n_listen ? cli->n_listen : 1,
                                   .mode = CONFIG_MODE_TCP,
                                   .backend = "apiservers"};
    be->name = "apiservers";
    be->balance = cli->balance_set         ? cli->balance
                  : cli->n_local_upstreams ? CONFIG_BALANCE_LOCAL_FIRST
                                           : CONFIG_BALANCE_ROUNDROBIN;
    be->connect_retries = 2;
    be->check =
        (struct config_check){.type = cli->check_type_set ? cli->check_type : CONFIG_CHECK_TCP,
                              .path = cli->check_path ? cli->check_path : "/readyz",
                              .expect_status = 200,
                              .interval_ms = 2000,
                              .timeout_ms = 1000,
                              .rise = 2,
                              .fall = 3};
    be->check.tls.ca_file = cli->check_ca_file;
    be->check.tls.insecure_skip_verify = cli->check_insecure;
    for (size_t i = 0; i < n_servers; i++) {
        bool local = i >= cli->n_upstreams;
        const char *addr = local ? cli->local_upstreams[i - cli->n_upstreams] : cli->upstreams[i];
        servers[i] = (struct config_server){.name = kf_arena_sprintf(a, "apiserver-%zu", i + 1),
                                            .address = addr,
                                            .weight = 1,
                                            .local = local,
                                            .check = be->check.type != CONFIG_CHECK_NONE,
                                            .state = CONFIG_SERVER_ACTIVE};
        if (!servers[i].name)
            goto nomem;
    }
    be->servers = servers;
    be->n_servers = n_servers;
    flags_http(cli, cfg, fe, be);
    if (cli->upstream_kubeconfig && upstream_from_kubeconfig(cli, cfg, be) < 0) {
        config_free(cfg);
        return -EINVAL;
    }
    cfg->frontends = fe;
    cfg->n_frontends = 1;
    cfg->backends = be;
    cfg->n_backends = 1;
    *out = cfg;
    return 0;
nomem:
    config_free(cfg);
    return -ENOMEM;
}

/* --cache-resources a,b,c into the config's arena. */
static int cache_resources_from_flag(struct config *cfg, const char *list)
{
    size_t n = 1;

    for (const char *p = list; *p; p++)
        n += *p == ',';
    const char **v = kf_arena_alloc(cfg->arena, n * sizeof(*v));
    struct config_loc *locs = kf_arena_alloc(cfg->arena, n * sizeof(*locs));
    if (!v || !locs)
        return -ENOMEM;
    cfg->cache.n_resources = 0;
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ",");
        if (len && !(v[cfg->cache.n_resources++] = kf_arena_strndup(cfg->arena, p, len)))
            return -ENOMEM;
        p += len + (p[len] == ',');
    }
    cfg->cache.resources = v;
    cfg->cache.resource_locs = locs;
    return 0;
}

int px_cli_load_config(const struct px_cli *cli, struct config **out, struct config_diags *diags)
{
    struct config *cfg = NULL;
    int rc;

    memset(diags, 0, sizeof(*diags));
    if (cli->config_path)
        rc = config_load_yaml(cli->config_path, &cfg, diags);
    else if (cli->haproxy_path)
        rc = config_load_haproxy(cli->haproxy_path, &cfg, diags);
    else
        rc = flags_config(cli, &cfg);
    if (rc < 0)
        return rc;
    if (cli->workers_set)
        cfg->workers = cli->workers;
    if (cli->maxconn_set)
        cfg->maxconn = cli->maxconn;
    if (cli->log_level_set)
        cfg->log_level = cli->log_level;
    if (cli->admin_listen)
        cfg->admin.listen = cli->admin_listen;
    if (cli->cache_set)
        cfg->cache.enabled = cli->cache_enabled;
    if (cli->cache_resources && cache_resources_from_flag(cfg, cli->cache_resources) < 0) {
        config_free(cfg);
        return -ENOMEM;
    }
    if (!cli->config_path && !cli->haproxy_path && config_validate(cfg, diags) < 0) {
        config_free(cfg);
        return -EINVAL;
    }
    *out = cfg;
    return 0;
}
