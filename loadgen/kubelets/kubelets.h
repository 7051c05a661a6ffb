/* loadgen kubelets: simulated kubelets and kube-proxies that check what they receive. */
#ifndef KF_LOADGEN_KUBELETS_H
#define KF_LOADGEN_KUBELETS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "cache/codec/codec.h"
#include "lb/lb.h"

struct event_base;
struct ssl_ctx_st;

#include "config/config.h"

/* A client TLS context from kc (CA, and the client certificate when with_cert). */
struct ssl_ctx_st *kl_tls_ctx(const struct config_kubeconfig *kc, bool with_cert, char *err,
                              size_t errlen);

/* An HTTP/2 endpoint: its own connection(s) to one server. */
struct config;
struct kl_endpoint {
    struct config *cfg;
    struct lb *lb;
    struct lb_pool *pool;
    struct lb_upstream *up;
};
int kl_endpoint_open(struct kl_endpoint *ep, struct event_base *base, const char *server_url,
                     struct ssl_ctx_st *tls, unsigned conns);
void kl_endpoint_close(struct kl_endpoint *ep);

/* Percentiles of latency samples (ms). */
struct kl_hist {
    double *v;
    size_t n, cap;
};
void kl_hist_add(struct kl_hist *h, double ms);
double kl_hist_pct(struct kl_hist *h, double p);

/* Run counters. */
struct kl_stats {
    uint64_t nodes, watches_opened, watches_reopened, relists, lists, gets, lease_puts;
    uint64_t events, bookmarks, events_wrong, events_missing, bytes, http_errors;
    uint64_t views_refused; /* final check: the truth refuses the view's node now */
    uint64_t status[6];     /* 2xx..5xx, other */
    struct kl_hist latency;
};
extern struct kl_stats kl_stats;

/* Event arrival times seen directly on the truth server, keyed by "resource/key@rv". */
void kl_truth_seen(const char *resource, const char *key, uint64_t rv, uint64_t at_us);
bool kl_truth_time(const char *resource, const char *key, uint64_t rv, uint64_t *at_us);

#endif
