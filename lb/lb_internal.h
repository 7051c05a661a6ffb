/*
 * lb internals: the runtime objects behind lb.h. Only files in lb/ include
 * this header.
 *
 * Concurrency: worker threads read servers through atomics only (lb_pick,
 * the reporters, metrics). Settings that a reload may change (weight, flags,
 * admin state, thresholds) are atomics too, because the same struct
 * lb_server is shared by the old and the new lb. The health counter is under
 * the server's mutex (transitions are rare); its outcome is mirrored into
 * atomics so the data path never takes that mutex on a success.
 */
#ifndef KF_LB_INTERNAL_H
#define KF_LB_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "lb/lb.h"

/* Prometheus-style histogram upper bounds, in microseconds (0.5 ms .. 5 s). */
#define LB_HIST_BUCKETS 13
extern const uint64_t lb_hist_bounds_us[LB_HIST_BUCKETS];

/** Non-cumulative bucket counts (the last one is +Inf); cumulated when written. */
struct lb_hist {
    _Atomic uint64_t buckets[LB_HIST_BUCKETS + 1];
    _Atomic uint64_t sum_us;
};

void lb_hist_observe(struct lb_hist *hist, uint64_t us);

/* Counters of the L7 upstream pools (upstream*.c), written by every worker's
 * lb_upstream; index LB_UP_H1 / LB_UP_H2 by protocol. */
enum { LB_UP_H1 = 0, LB_UP_H2 = 1 };
struct lb_up_counters {
    _Atomic uint64_t conns_open[2], conns_total[2];
    _Atomic uint64_t streams_open, streams_total, stream_errors;
    _Atomic uint64_t retries, ping_timeouts, connect_failures, queued;
};

struct lb_server {
    _Atomic uint32_t refs;

    /* Identity: fixed for the object's life. */
    char *backend;
    char *name;
    char *label;   /* "backend/server" */
    char *address; /* as written in the config */
    char *host;    /* address without port (and brackets): default TLS name */
    char addr_text[64];
    struct sockaddr_storage addr;
    socklen_t addr_len;

    /* Settings from the latest config that references the server. */
    _Atomic uint32_t weight;
    atomic_bool backup;
    atomic_bool local;
    _Atomic int admin_state;            /* enum config_server_state */
    _Atomic uint32_t rise, fall;        /* thresholds */
    _Atomic uint32_t retry_interval_ms; /* passive-only retry, see lb_server_eligible */

    /* Health. */
    pthread_mutex_t mu;
    struct lb_health_counter health; /* under mu */
    char last_failure[192];          /* under mu */
    _Atomic int health_state;        /* mirror of health.state */
    _Atomic uint32_t fail_streak;    /* mirror of health.failures */
    _Atomic uint64_t retry_at_ms;    /* passively down: next trial after this */
    _Atomic uint32_t checkers;       /* lbs running active checks on it */

    /* Counters. */
    _Atomic uint64_t active_conns;
    _Atomic uint64_t total_conns;
    _Atomic uint64_t connect_failures;
    _Atomic uint64_t bytes_to, bytes_from;
    _Atomic uint64_t checks_ok, checks_failed;
    struct lb_hist connect_hist;
    struct lb_hist check_hist;
    struct lb_up_counters up;
};

/** Check settings of a backend, copied out of the config. */
struct lb_check_params {
    enum config_check_type type;
    char *path;
    int expect_status;
    uint32_t interval_ms;
    uint32_t timeout_ms;
    char *server_name; /* NULL: the server's host */
    bool verify;
    struct ssl_ctx_st *ssl_ctx; /* TLS and HTTPS checks */
};

struct lb_pool {
    char *name;
    enum config_balance balance;
    uint32_t connect_retries;
    struct lb_check_params check;
    struct lb_server **servers;
    bool *checked; /* per server: this config asks for active checks */
    size_t n_servers;
    /* Smooth weighted round robin state, under rr_mu (see pick.c for why a lock). */
    pthread_mutex_t rr_mu;
    int64_t *current;        /* per server, parallel to servers */
    _Atomic uint64_t cursor; /* rotation for leastconn ties */
};

/* One active check state machine per checked server, owned by one lb. */
enum lb_check_state {
    LB_CHECK_IDLE = 0,      /* waiting for the next interval */
    LB_CHECK_CONNECTING,    /* non-blocking TCP connect in progress */
    LB_CHECK_TLS_HANDSHAKE, /* TLS and HTTPS checks */
    LB_CHECK_SENDING,       /* HTTP(S): writing the GET */
    LB_CHECK_READING,       /* HTTP(S): waiting for the status line */
};

struct lb_check {
    enum lb_check_state state;
    struct lb *lb;
    struct lb_pool *pool;
    struct lb_server *server; /* referenced */
    struct event *timer;      /* IDLE: starts the next check; otherwise: its timeout */
    struct event *io;
    int fd;
    struct ssl_st *ssl;
    char *request;
    size_t request_len, sent;
    char status[256]; /* the status line as it arrives */
    size_t status_len;
    uint64_t started_us;
    char error[192]; /* why the current attempt failed */
};

struct lb {
    _Atomic uint32_t refs;
    struct lb_pool *pools;
    size_t n_pools;
    /* Active checks: only touched on the control loop. */
    struct event_base *base;
    struct lb_check **checks;
    size_t n_checks;
    uint64_t rng;
};

/* lb.c */
void lb_server_retain(struct lb_server *server);
void lb_server_release(struct lb_server *server);
/** Feed one result to the server's health; logs a state change once. */
void lb_server_record(struct lb_server *server, bool ok, const char *detail);

/* check_tls.c: the TLS side of a check. The I/O calls return 0, KF_AGAIN with
 * *want set to EV_READ or EV_WRITE, or a negative errno with c->error filled. */
int lb_tls_ctx_new(struct lb_check_params *params, const struct config_tls_client *tls, char *err,
                   size_t err_size);
void lb_tls_ctx_free(struct lb_check_params *params);
int lb_check_tls_begin(struct lb_check *c);
int lb_check_tls_handshake(struct lb_check *c, short *want);
/** Read or write once; *n == 0 (and 0 returned) on a clean end of stream. */
int lb_check_tls_io(struct lb_check *c, bool writing, char *buf, size_t len, size_t *n,
                    short *want);
void lb_check_tls_end(struct lb_check *c);
/**
 * Name the peer of ssl: SNI (not for an IP literal, per RFC 6066) and, when
 * verify, the name or IP address its certificate must carry.
 */
/** Describe the first queued OpenSSL error (and clear the queue) into err. */
void lb_tls_error_string(char *err, size_t size, const char *what);

/* metrics.c: building blocks for every family, one sample per server. */
void lb_metrics_header(struct evbuffer *out, const char *name, const char *type, const char *help);
/** name{backend="..",server=".." -- the caller adds labels and closes the braces */
void lb_metrics_series(struct evbuffer *out, const char *name, const struct lb_server *s);
#define LB_FOR_EACH_SERVER(lb, s)                                                                  \
    for (size_t pi_ = 0; pi_ < (lb)->n_pools; pi_++)                                               \
        for (size_t si_ = 0;                                                                       \
             si_ < (lb)->pools[pi_].n_servers && ((s) = (lb)->pools[pi_].servers[si_]); si_++)

#endif
