/*
 * Backend metrics in the Prometheus text exposition format. Every family is
 * written once (HELP, TYPE, then one sample per server) because Prometheus
 * rejects a family that appears twice in one scrape.
 */
#include "lb/lb_internal.h"

#include <event2/buffer.h>

const uint64_t lb_hist_bounds_us[LB_HIST_BUCKETS] = {
    500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000,
};

void lb_hist_observe(struct lb_hist *hist, uint64_t us)
{
    size_t i = 0;

    while (i < LB_HIST_BUCKETS && us > lb_hist_bounds_us[i])
        i++;
    atomic_fetch_add_explicit(&hist->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&hist->sum_us, us, memory_order_relaxed);
}

/* Label values escape backslash, double quote and newline. */
static void put_label(struct evbuffer *out, const char *value)
{
    for (const char *p = value; *p; p++) {
        if (*p == '\\' || *p == '"')
            evbuffer_add_printf(out, "\\%c", *p);
        else if (*p == '\n')
            evbuffer_add(out, "\\n", 2);
        else
            evbuffer_add(out, p, 1);
    }
}

void lb_metrics_series(struct evbuffer *out, const char *name, const struct lb_server *s)
{
    evbuffer_add_printf(out, "%s{backend=\"", name);
    put_label(out, s->backend);
    evbuffer_add(out, "\",server=\"", 10);
    put_label(out, s->name);
    evbuffer_add(out, "\"", 1);
}

void lb_metrics_header(struct evbuffer *out, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

typedef uint64_t (*server_value_cb)(const struct lb_server *s);

/* Health only: whether the server takes traffic also depends on the admin
 * state and weight, which kfront_backend_admin_state shows on its own. */
static uint64_t value_up(const struct lb_server *s)
{
    return lb_server_health(s) != LB_HEALTH_DOWN;
}
static uint64_t value_active(const struct lb_server *s)
{
    return atomic_load(&s->active_conns);
}
static uint64_t value_total(const struct lb_server *s)
{
    return atomic_load(&s->total_conns);
}
static uint64_t value_failures(const struct lb_server *s)
{
    return atomic_load(&s->connect_failures);
}
static uint64_t value_bytes_to(const struct lb_server *s)
{
    return atomic_load(&s->bytes_to);
}
static uint64_t value_bytes_from(const struct lb_server *s)
{
    return atomic_load(&s->bytes_from);
}

struct simple_family {
    const char *name, *type, *help;
    server_value_cb value;
};

static const struct simple_family simple_families[] = {
    {"kfront_backend_up", "gauge",
     "1 unless health checks (active or passive) found the server down.", value_up},
    {"kfront_backend_active_connections", "gauge", "Connections open to the server.", value_active},
    {"kfront_backend_connections_total", "counter", "Connections assigned to the server.",
     value_total},
    {"kfront_backend_connect_failures_total", "counter",
     "Connect attempts to the server that failed.", value_failures},
    {"kfront_backend_bytes_sent_total", "counter", "Bytes sent to the server.", value_bytes_to},
    {"kfront_backend_bytes_received_total", "counter", "Bytes received from the server.",
     value_bytes_from},
};

static void put_simple(struct lb *lb, struct evbuffer *out, const struct simple_family *f)
{
    struct lb_server *s;

    lb_metrics_header(out, f->name, f->type, f->help);
    LB_FOR_EACH_SERVER(lb, s)
    {
        lb_metrics_series(out, f->name, s);
        evbuffer_add_printf(out, "} %llu\n", (unsigned long long)f->value(s));
    }
}

/* One sample per possible value, 1 for the current one (the Prometheus enum idiom). */
static void put_enum(struct lb *lb, struct evbuffer *out, const char *name, const char *help,
                     bool admin)
{
    static const char *const health[] = {"unknown", "up", "down"};
    static const char *const admin_states[] = {"active", "drain", "disabled"};
    const char *const *names = admin ? admin_states : health;
    struct lb_server *s;

    lb_metrics_header(out, name, "gauge", help);
    LB_FOR_EACH_SERVER(lb, s)
    {
        int cur = admin ? atomic_load(&s->admin_state) : atomic_load(&s->health_state);
        for (int v = 0; v < 3; v++) {
            lb_metrics_series(out, name, s);
            evbuffer_add_printf(out, ",state=\"%s\"} %d\n", names[v], v == cur);
        }
    }
}

static void put_checks(struct lb *lb, struct evbuffer *out)
{
    const char *name = "kfront_backend_checks_total";
    struct lb_server *s;

    lb_metrics_header(out, name, "counter", "Active health checks by result.");
    LB_FOR_EACH_SERVER(lb, s)
    {
        lb_metrics_series(out, name, s);
        evbuffer_add_printf(out, ",result=\"success\"} %llu\n",
                            (unsigned long long)atomic_load(&s->checks_ok));
        lb_metrics_series(out, name, s);
        evbuffer_add_printf(out, ",result=\"failure\"} %llu\n",
                            (unsigned long long)atomic_load(&s->checks_failed));
    }
}

static void put_hist_one(struct evbuffer *out, const char *name, const struct lb_server *s,
                         const struct lb_hist *h)
{
    char bucket[128];
    uint64_t cum = 0;

    snprintf(bucket, sizeof(bucket), "%s_bucket", name);
    for (size_t i = 0; i <= LB_HIST_BUCKETS; i++) {
        cum += atomic_load(&h->buckets[i]);
        lb_metrics_series(out, bucket, s);
        if (i < LB_HIST_BUCKETS)
            evbuffer_add_printf(out, ",le=\"%g\"} %llu\n", (double)lb_hist_bounds_us[i] / 1e6,
                                (unsigned long long)cum);
        else
            evbuffer_add_printf(out, ",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    }
    snprintf(bucket, sizeof(bucket), "%s_sum", name);
    lb_metrics_series(out, bucket, s);
    evbuffer_add_printf(out, "} %.6f\n", (double)atomic_load(&h->sum_us) / 1e6);
    snprintf(bucket, sizeof(bucket), "%s_count", name);
    lb_metrics_series(out, bucket, s);
    /* the count is the +Inf bucket, so that both agree within one scrape */
    evbuffer_add_printf(out, "} %llu\n", (unsigned long long)cum);
}

static void put_hist(struct lb *lb, struct evbuffer *out, const char *name, const char *help,
                     bool connect)
{
    struct lb_server *s;

    lb_metrics_header(out, name, "histogram", help);
    LB_FOR_EACH_SERVER(lb, s)
    put_hist_one(out, name, s, connect ? &s->connect_hist : &s->check_hist);
}

void lb_metrics_write(struct lb *lb, struct evbuffer *out)
{
    for (size_t i = 0; i < KF_ARRAY_SIZE(simple_families); i++)
        put_simple(lb, out, &simple_families[i]);
    put_enum(lb, out, "kfront_backend_health_state", "Health of the server (unknown, up, down).",
             false);
    put_enum(lb, out, "kfront_backend_admin_state",
             "Administrative state of the server (active, drain, disabled).", true);
    put_checks(lb, out);
    put_hist(lb, out, "kfront_backend_check_duration_seconds", "Duration of active health checks.",
             false);
    put_hist(lb, out, "kfront_backend_connect_duration_seconds",
             "Time to connect to the server, for successful data-path connects.", true);
}
