/*
 * The control thread: loads the configuration, starts the workers, runs the
 * health checks and the admin endpoints, reloads on SIGHUP and drains on
 * SIGTERM. Workers hear of every change through their command queues.
 */
#include "proxy/proxy.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy/cli.h"
#include "proxy/l7.h"
#include "proxy/proxy_internal.h"
#include "proxy/l7_cache.h"

#define DRAIN_POLL_MS 100

static void publish(struct px_daemon *d, struct px_generation *gen)
{
    struct px_generation *old = d->gen;

    fair_limit_set_max(&d->global_limit, gen->cfg->maxconn);
    kf_log_threshold = gen->cfg->log_level;
    for (unsigned i = 0; i < d->n_workers; i++) {
        px_generation_retain(gen);
        px_worker_send(&d->workers[i], PX_CMD_GENERATION, gen);
    }
    d->gen = gen;
    if (old) {
        lb_stop_checks(old->lb);
        px_generation_release(old);
    }
}

static void log_diags(const struct config_diags *diags)
{
    for (size_t i = 0; i < diags->n; i++) {
        const struct config_diag *dg = &diags->items[i];
        kf_log(dg->severity == CONFIG_ERROR ? KF_LOG_ERROR : KF_LOG_WARN, "config", "%s:%d:%d: %s",
               dg->file, dg->line, dg->column, dg->message);
    }
}

static void reload(struct px_daemon *d, const struct px_cli *cli)
{
    struct config_diags diags;
    struct config *cfg;
    struct px_generation *gen;

    if (!cli->config_path && !cli->haproxy_path) {
        kf_warn("config", "SIGHUP: the configuration came from flags; nothing to reload");
        return;
    }
    if (px_cli_load_config(cli, &cfg, &diags) < 0) {
        log_diags(&diags);
        kf_err("config", "reload refused; still serving configuration %u", d->gen->id);
        atomic_fetch_add(&d->reloads_failed, 1);
        return;
    }
    log_diags(&diags);
    if (cfg->workers && cfg->workers != d->n_workers)
        kf_warn("config",
                "workers: a reload cannot change the number of workers (%u); "
                "restart to apply %u",
                d->n_workers, cfg->workers);
    gen = px_generation_build(d, cfg, &diags);
    if (!gen || lb_start_checks(gen->lb, d->base) < 0) {
        log_diags(&diags);
        kf_err("config", "reload refused; still serving configuration %u", d->gen->id);
        if (gen)
            px_generation_release(gen);
        else
            config_free(cfg);
        atomic_fetch_add(&d->reloads_failed, 1);
        return;
    }
    publish(d, gen);
    atomic_fetch_add(&d->reloads_ok, 1);
    kf_info("config", "configuration %u loaded from %s", gen->id, cfg->source);
}

static void on_drain_tick(evutil_socket_t fd, short what, void *arg)
{
    struct px_daemon *d = arg;
    uint64_t active = px_workers_active_tunnels(d) + px_http_connections(d);
    uint64_t elapsed = kf_now_ms() - d->drain_started_ms;

    (void)fd;
    (void)what;
    if (active == 0) {
        kf_info("proxy", "drained: every connection finished after %" PRIu64 " ms", elapsed);
        event_base_loopbreak(d->base);
    } else if (elapsed >= d->gen->cfg->timeouts.drain_ms) {
        kf_warn("proxy", "drain deadline (%u ms) passed: closing %" PRIu64 " connections",
                d->gen->cfg->timeouts.drain_ms, active);
        event_base_loopbreak(d->base); /* the exit path closes what is left */
    }
}

static void start_drain(struct px_daemon *d)
{
    struct timeval tv = {0, DRAIN_POLL_MS * 1000};

    if (atomic_load(&d->draining)) {
        kf_warn("proxy", "second stop signal: exiting now");
        event_base_loopbreak(d->base);
        return;
    }
    atomic_store(&d->draining, true);
    d->drain_started_ms = kf_now_ms();
    kf_info("proxy", "draining: no new connections; %" PRIu64 " open, deadline %u ms",
            px_workers_active_tunnels(d), d->gen->cfg->timeouts.drain_ms);
    for (unsigned i = 0; i < d->n_workers; i++)
        px_worker_send(&d->workers[i], PX_CMD_STOP_LISTENING, NULL);
    px_http_shutdown(d); /* HTTP/2 GOAWAY; HTTP/1 closes after the request in flight */
    d->drain_timer = event_new(d->base, -1, EV_PERSIST, on_drain_tick, d);
    event_add(d->drain_timer, &tv);
}

struct signal_ctx {
    struct px_daemon *d;
    const struct px_cli *cli;
};

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct signal_ctx *ctx = arg;

    (void)what;
    if (sig == SIGHUP)
        reload(ctx->d, ctx->cli);
    else
        start_drain(ctx->d);
}

static unsigned worker_count(const struct config *cfg)
{
    long n = cfg->workers ? (long)cfg->workers : sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = 1;
    return n > PX_MAX_WORKERS ? PX_MAX_WORKERS : (unsigned)n;
}

static void log_listeners(const struct px_generation *gen)
{
    char buf[80];
    for (size_t i = 0; i < gen->n_bindings; i++) {
        const struct px_binding *b = &gen->bindings[i];
        kf_info("proxy", "frontend %s listening on %s (%s)", b->frontend->name,
                kf_addr_format((const struct sockaddr *)&b->listener->addr, buf, sizeof(buf)),
                config_mode_name(b->mode));
    }
}

static int run(struct px_daemon *d, const struct px_cli *cli, struct config *cfg)
{
    struct config_diags diags = {0};
    struct signal_ctx ctx = {d, cli};
    struct event *sigs[3];
    const int signums[3] = {SIGHUP, SIGTERM, SIGINT};
    struct px_generation *gen;
    int rc = 1;

    d->n_workers = worker_count(cfg);
    gen = px_generation_build(d, cfg, &diags);
    if (!gen) {
        log_diags(&diags);
        kf_err("proxy", "cannot start");
        config_free(cfg);
        return 1;
    }
    if (px_workers_start(d, d->n_workers) < 0 || lb_start_checks(gen->lb, d->base) < 0) {
        kf_err("proxy", "cannot start workers or health checks");
        px_generation_release(gen);
        return 1;
    }
    publish(d, gen);
    log_listeners(gen);
    if (px_l7_cache_start(d, gen) < 0) {
        kf_err("proxy", "cannot start the watch cache");
        goto out;
    }
    if (cfg->admin.listen && cfg->admin.listen[0] &&
        !(d->admin = px_admin_start(d, cfg->admin.listen)))
        goto out;
    for (int i = 0; i < 3; i++) {
        sigs[i] = evsignal_new(d->base, signums[i], on_signal, &ctx);
        evsignal_add(sigs[i], NULL);
    }
    kf_info("proxy", "kfront running with %u workers, configuration %u from %s", d->n_workers,
            gen->id, cfg->source);
    event_base_loop(d->base, EVLOOP_NO_EXIT_ON_EMPTY);
    for (int i = 0; i < 3; i++)
        event_free(sigs[i]);
    rc = 0;
out:
    px_admin_free(d->admin);
    px_workers_stop(d);
    for (unsigned i = 0; i < d->n_workers; i++)
        px_worker_upstreams_free(&d->workers[i]);
    px_http_free(d); /* its connections live on the worker loops: before those are freed */
    px_l7_cache_stop(d);
    px_workers_free(d);
    lb_stop_checks(d->gen->lb);
    px_generation_release(d->gen);
    d->gen = NULL;
    if (d->drain_timer)
        event_free(d->drain_timer);
    return rc;
}

static void free_frontends(struct px_daemon *d)
{
    while (!kf_list_empty(&d->frontends)) {
        struct px_frontend *fe = kf_container_of(d->frontends.next, struct px_frontend, link);
        kf_list_remove(&fe->link);
        free(fe->name);
        free(fe);
    }
}

int px_main(int argc, char **argv)
{
    struct px_cli cli;
    struct config_diags diags;
    struct config *cfg;
    struct px_daemon *d;
    int rc;

    if (px_cli_parse(&cli, argc, argv) < 0) {
        px_cli_usage(stderr);
        px_cli_free(&cli);
        return 2;
    }
    if (cli.show_help || cli.show_version) {
        if (cli.show_help)
            px_cli_usage(stdout);
        else
            printf("kfront %s\n", KFRONT_VERSION);
        px_cli_free(&cli);
        return 0;
    }
    if (px_cli_load_config(&cli, &cfg, &diags) < 0) {
        config_diags_print(&diags, stderr);
        px_cli_free(&cli);
        return 1;
    }
    config_diags_print(&diags, stderr); /* warnings */
    if (cli.check_only || cli.print_config) {
        if (cli.print_config)
            config_print_yaml(cfg, stdout);
        else
            printf("%s: configuration OK\n", cfg->source);
        config_free(cfg);
        px_cli_free(&cli);
        return 0;
    }
    signal(SIGPIPE, SIG_IGN);
    kf_log_threshold = cfg->log_level;
    d = calloc(1, sizeof(*d));
    if (!d) {
        config_free(cfg);
        px_cli_free(&cli);
        return 1;
    }
    kf_list_init(&d->frontends);
    fair_limit_init(&d->global_limit, cfg->maxconn);
    d->base = event_base_new();
    rc = d->base ? run(d, &cli, cfg) : 1;
    free_frontends(d);
    if (d->base)
        event_base_free(d->base);
    free(d);
    px_cli_free(&cli);
    return rc;
}
