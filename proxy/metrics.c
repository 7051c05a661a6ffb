/* Prometheus text for the proxy's own counters; lb adds the backends'. */
#include "proxy/proxy_internal.h"

#include <inttypes.h>

#include <event2/buffer.h>

#include "proxy/l7.h"
#include "proxy/l7_cache.h"

typedef uint64_t (*stat_get_fn)(const struct px_worker_stats *s);

#define STAT_GETTER(field)                                                                         \
    static uint64_t get_##field(const struct px_worker_stats *s)                                   \
    {                                                                                              \
        return atomic_load_explicit(&s->field, memory_order_relaxed);                              \
    }
STAT_GETTER(tunnels_active)
STAT_GETTER(tunnels_total)
STAT_GETTER(bytes_client_to_server)
STAT_GETTER(bytes_server_to_client)
STAT_GETTER(connect_retries)
STAT_GETTER(connect_failures)
STAT_GETTER(timeouts_client_hello)
STAT_GETTER(timeouts_client)
STAT_GETTER(timeouts_server)
STAT_GETTER(timeouts_tunnel)
STAT_GETTER(resets)
STAT_GETTER(drain_closed)
STAT_GETTER(rejected_global_maxconn)
STAT_GETTER(upgrades_active)
STAT_GETTER(upgrades_total)
STAT_GETTER(http_connections)

static uint64_t sum(struct px_daemon *d, stat_get_fn get)
{
    uint64_t total = 0;
    for (unsigned i = 0; i < d->n_workers; i++)
        total += get(&d->workers[i].stats);
    return total;
}

static void family(struct evbuffer *out, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void write_simple(struct px_daemon *d, struct evbuffer *out)
{
    static const struct {
        const char *name, *type, *help;
        stat_get_fn get;
    } simple[] = {
        {"kfront_connections_active", "gauge", "Client connections open now.", get_tunnels_active},
        {"kfront_connections_total", "counter", "Client connections accepted.", get_tunnels_total},
        {"kfront_http_upgrades_active", "gauge",
         "Mode http protocol upgrades (exec, attach, port-forward) open now.", get_upgrades_active},
        {"kfront_http_upgrades_total", "counter", "Mode http protocol upgrades started.",
         get_upgrades_total},
        {"kfront_bytes_client_to_server_total", "counter", "Bytes forwarded to backends.",
         get_bytes_client_to_server},
        {"kfront_bytes_server_to_client_total", "counter", "Bytes forwarded to clients.",
         get_bytes_server_to_client},
        {"kfront_connect_retries_total", "counter",
         "Connects retried on another backend after a failure.", get_connect_retries},
        {"kfront_connect_failures_total", "counter", "Backend connects that failed.",
         get_connect_failures},
        {"kfront_connection_resets_total", "counter",
         "Connections ended by a socket error on either side.", get_resets},
        {"kfront_drain_closed_total", "counter",
         "Connections closed because a drain deadline passed.", get_drain_closed},
    };

    for (size_t i = 0; i < KF_ARRAY_SIZE(simple); i++) {
        family(out, simple[i].name, simple[i].type, simple[i].help);
        evbuffer_add_printf(out, "%s %" PRIu64 "\n", simple[i].name, sum(d, simple[i].get));
    }
    family(out, "kfront_worker_http_connections_total", "counter",
           "Mode http connections each worker took (they are spread round robin).");
    for (unsigned i = 0; i < d->n_workers; i++)
        evbuffer_add_printf(out,
                            "kfront_worker_http_connections_total{worker=\"%u\"} %" PRIu64 "\n", i,
                            get_http_connections(&d->workers[i].stats));
    family(out, "kfront_timeouts_total", "counter", "Connections closed by a timeout, by kind.");
    evbuffer_add_printf(out, "kfront_timeouts_total{kind=\"client-hello\"} %" PRIu64 "\n",
                        sum(d, get_timeouts_client_hello));
    evbuffer_add_printf(out, "kfront_timeouts_total{kind=\"client\"} %" PRIu64 "\n",
                        sum(d, get_timeouts_client));
    evbuffer_add_printf(out, "kfront_timeouts_total{kind=\"server\"} %" PRIu64 "\n",
                        sum(d, get_timeouts_server));
    evbuffer_add_printf(out, "kfront_timeouts_total{kind=\"tunnel\"} %" PRIu64 "\n",
                        sum(d, get_timeouts_tunnel));
}

static void write_frontends(struct px_daemon *d, struct evbuffer *out)
{
    struct kf_list *pos;

    family(out, "kfront_frontend_connections_active", "gauge", "Open connections per frontend.");
    kf_list_for_each(pos, &d->frontends)
    {
        struct px_frontend *fe = kf_container_of(pos, struct px_frontend, link);
        evbuffer_add_printf(out, "kfront_frontend_connections_active{frontend=\"%s\"} %u\n",
                            fe->name, fair_in_use(&fe->limit));
    }
    family(out, "kfront_frontend_connections_total", "counter",
           "Connections accepted per frontend.");
    kf_list_for_each(pos, &d->frontends)
    {
        struct px_frontend *fe = kf_container_of(pos, struct px_frontend, link);
        evbuffer_add_printf(out, "kfront_frontend_connections_total{frontend=\"%s\"} %" PRIu64 "\n",
                            fe->name, atomic_load(&fe->accepted));
    }
    family(out, "kfront_frontend_rejected_total", "counter",
           "Connections refused per frontend, by reason.");
    kf_list_for_each(pos, &d->frontends)
    {
        struct px_frontend *fe = kf_container_of(pos, struct px_frontend, link);
        evbuffer_add_printf(out,
                            "kfront_frontend_rejected_total{frontend=\"%s\",reason=\"maxconn\"} "
                            "%" PRIu64 "\n"
                            "kfront_frontend_rejected_total{frontend=\"%s\",reason=\"no-backend\"} "
                            "%" PRIu64 "\n",
                            fe->name, atomic_load(&fe->rejected_maxconn), fe->name,
                            atomic_load(&fe->no_backend));
    }
    evbuffer_add_printf(out,
                        "kfront_frontend_rejected_total{frontend=\"*\",reason=\"global-maxconn\"} "
                        "%" PRIu64 "\n",
                        sum(d, get_rejected_global_maxconn));
}

void px_metrics_write(struct px_daemon *d, struct evbuffer *out)
{
    write_simple(d, out);
    write_frontends(d, out);
    family(out, "kfront_config_reloads_total", "counter", "Configuration reloads, by result.");
    evbuffer_add_printf(out, "kfront_config_reloads_total{result=\"success\"} %" PRIu64 "\n",
                        atomic_load(&d->reloads_ok));
    evbuffer_add_printf(out, "kfront_config_reloads_total{result=\"failure\"} %" PRIu64 "\n",
                        atomic_load(&d->reloads_failed));
    family(out, "kfront_draining", "gauge", "1 while a graceful shutdown is in progress.");
    evbuffer_add_printf(out, "kfront_draining %d\n", atomic_load(&d->draining) ? 1 : 0);
    px_l7_metrics_write(d, out);
    px_l7_cache_metrics_write(d, out);
    lb_metrics_write(d->gen->lb, out);
    lb_upstream_metrics_write(d->gen->lb, out); /* mode http's pools (zero in mode tcp) */
}
