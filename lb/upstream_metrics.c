/*
 * kfront_upstream_* metrics. The counters live in the shared lb_server
 * (every worker's pool adds to the same atomics), so a scrape reads them
 * once per server, like the kfront_backend_* families.
 */
#include "lb/upstream_internal.h"

#include <stddef.h>

#include <event2/buffer.h>

struct up_family {
    const char *name, *type, *help;
    size_t offset; /* of the _Atomic uint64_t in struct lb_up_counters */
};

#define UP_COUNTER(field) offsetof(struct lb_up_counters, field)

static const struct up_family families[] = {
    {"kfront_upstream_streams", "gauge", "Requests (streams) open to the server.",
     UP_COUNTER(streams_open)},
    {"kfront_upstream_streams_total", "counter", "Requests (streams) sent to the server.",
     UP_COUNTER(streams_total)},
    {"kfront_upstream_stream_errors_total", "counter",
     "Requests to the server that ended with an error.", UP_COUNTER(stream_errors)},
    {"kfront_upstream_retries_total", "counter",
     "Requests that failed on the server and were sent again elsewhere.", UP_COUNTER(retries)},
    {"kfront_upstream_ping_timeouts_total", "counter",
     "HTTP/2 connections to the server declared dead for an unanswered PING.",
     UP_COUNTER(ping_timeouts)},
    {"kfront_upstream_connect_failures_total", "counter",
     "Upstream connection attempts (TCP or TLS) to the server that failed.",
     UP_COUNTER(connect_failures)},
    {"kfront_upstream_queued_requests", "gauge",
     "Requests waiting for a stream on a connection to the server.", UP_COUNTER(queued)},
};

static uint64_t counter_at(const struct lb_up_counters *k, size_t offset)
{
    return atomic_load_explicit((_Atomic uint64_t *)(void *)((char *)(uintptr_t)k + offset),
                                memory_order_relaxed);
}

static void put_family(struct lb *lb, struct evbuffer *out, const struct up_family *f)
{
    struct lb_server *s;

    lb_metrics_header(out, f->name, f->type, f->help);
    LB_FOR_EACH_SERVER(lb, s)
    {
        lb_metrics_series(out, f->name, s);
        evbuffer_add_printf(out, "} %llu\n", (unsigned long long)counter_at(&s->up, f->offset));
    }
}

static void put_conns(struct lb *lb, struct evbuffer *out, bool total)
{
    static const char *const protos[] = {[LB_UP_H1] = "http/1.1", [LB_UP_H2] = "h2"};
    const char *name = total ? "kfront_upstream_connections_total" : "kfront_upstream_connections";
    struct lb_server *s;

    lb_metrics_header(out, name, total ? "counter" : "gauge",
                      total ? "Upstream connections established to the server, by protocol."
                            : "Upstream connections open to the server, by protocol.");
    LB_FOR_EACH_SERVER(lb, s)
    {
        for (int p = LB_UP_H1; p <= LB_UP_H2; p++) {
            _Atomic uint64_t *v = total ? &s->up.conns_total[p] : &s->up.conns_open[p];
            lb_metrics_series(out, name, s);
            evbuffer_add_printf(out, ",protocol=\"%s\"} %llu\n", protos[p],
                                (unsigned long long)atomic_load(v));
        }
    }
}

void lb_upstream_metrics_write(struct lb *lb, struct evbuffer *out)
{
    put_conns(lb, out, false);
    put_conns(lb, out, true);
    for (size_t i = 0; i < KF_ARRAY_SIZE(families); i++)
        put_family(lb, out, &families[i]);
}
