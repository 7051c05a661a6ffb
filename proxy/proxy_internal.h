/* Types shared by the files of the proxy module; nothing outside proxy/ sees them. */
#ifndef KF_PROXY_INTERNAL_H
#define KF_PROXY_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "config/config.h"
#include "core/core.h"
#include "fairness/fairness.h"
#include "lb/lb.h"

#define PX_MAX_WORKERS 64

struct px_daemon;
struct px_worker;
struct px_server;
struct ssl_ctx_st;
struct lb_upstream;

/*
 * A frontend's runtime state outlives reloads: it is matched by name, so its
 * connection limit and counters carry over. Freed only at exit.
 */
struct px_frontend {
    struct kf_list link; /* in px_daemon.frontends */
    char *name;
    struct fair_limit limit; /* per-frontend maxconn */
    _Atomic uint64_t accepted;
    _Atomic uint64_t rejected_maxconn;
    _Atomic uint64_t no_backend;
    struct px_server *http; /* mode http: made once, its TLS swapped on reload */
};

/*
 * One listening address, bound once per worker with SO_REUSEPORT so that the
 * kernel spreads new connections over the workers. Shared by every
 * generation that lists the address, so a reload never rebinds a port that
 * stays; the sockets close when the last generation using them is freed.
 */
struct px_listener {
    _Atomic int refs;
    char *address;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int fds[PX_MAX_WORKERS];
    unsigned n_fds;
};

/* What a frontend listens with in one generation. */
struct px_binding {
    struct px_listener *listener;
    struct px_frontend *frontend;
    struct lb_pool *pool; /* NULL: no such backend (config_validate prevents it) */
    enum config_mode mode;
    const struct config_frontend *cfe;    /* in the generation's cfg */
    const struct config_backend *backend; /* in the generation's cfg */
    struct ssl_ctx_st *upstream_tls;      /* mode http: how to reach the backend's servers */
};

/*
 * Everything derived from one loaded configuration. Immutable once
 * published; workers hold a reference to the one they use. Connections do
 * not: they keep only the lb (for retries) and the server they use.
 */
struct px_generation {
    _Atomic int refs;
    unsigned id;
    struct config *cfg;
    struct lb *lb;
    struct px_binding *bindings;
    size_t n_bindings;
    struct ssl_ctx_st **upstream_tls; /* per cfg->backends entry; NULL where unused */
};

/* Per-worker counters: written by one thread, summed by the admin endpoint. */
struct px_worker_stats {
    _Atomic uint64_t tunnels_active;
    _Atomic uint64_t tunnels_total;
    _Atomic uint64_t bytes_client_to_server;
    _Atomic uint64_t bytes_server_to_client;
    _Atomic uint64_t connect_retries;
    _Atomic uint64_t connect_failures;
    _Atomic uint64_t timeouts_client_hello;
    _Atomic uint64_t timeouts_client;
    _Atomic uint64_t timeouts_server;
    _Atomic uint64_t timeouts_tunnel;
    _Atomic uint64_t resets;
    _Atomic uint64_t drain_closed;
    _Atomic uint64_t rejected_global_maxconn;
    _Atomic uint64_t upgrades_active; /* mode http: exec/attach/port-forward tunnels */
    _Atomic uint64_t upgrades_total;
    _Atomic uint64_t http_connections; /* mode-http connections this worker took */
};

enum px_cmd_type {
    PX_CMD_GENERATION, /* switch to cmd.gen (takes over its reference) */
    PX_CMD_STOP_LISTENING,
    PX_CMD_CLOSE_ALL, /* drain deadline passed: close every connection */
    PX_CMD_EXIT,
    PX_CMD_ADOPT, /* a mode-http connection another worker accepted for this one */
};

struct px_cmd {
    struct kf_list link;
    enum px_cmd_type type;
    struct px_generation *gen;
    /* PX_CMD_ADOPT: the connection, and its binding in gen (the command holds a reference) */
    int fd;
    const struct px_binding *binding;
    struct sockaddr_storage peer;
    socklen_t peer_len;
};

struct px_accept_slot {
    struct event ev;
    struct px_worker *worker;
    struct px_listener *listener;
    const struct px_binding *binding; /* in worker->gen */
    bool armed;
};

struct px_buf;
struct px_authz;

/* A worker's upstream pool for one backend (mode http). */
struct px_upstream_slot {
    char *backend;
    struct lb_upstream *up;
};

#define PX_L7_STATS   256
#define PX_L7_BUCKETS 9

/* Requests by (verb, resource, code), written by one worker, read by /metrics. */
struct px_l7_stat {
    _Atomic bool used;
    char verb[24];
    char resource[96];
    int code;
    _Atomic uint64_t count, sum_us;
    _Atomic uint64_t buckets[PX_L7_BUCKETS];
};

struct px_worker {
    unsigned index;
    pthread_t thread;
    struct event_base *base;
    struct px_daemon *daemon;
    struct px_generation *gen;
    struct px_accept_slot *slots;
    size_t n_slots;
    struct kf_list tunnels;   /* every live px_tunnel of this worker */
    struct kf_list upgrades;  /* every live mode-http upgrade (l7_upgrade.c) */
    struct kf_list watches;   /* every forwarded watch (l7.c), ended cleanly on drain */
    struct px_buf *free_bufs; /* typed free list: buffers are reused, not freed */
    unsigned n_free_bufs;
    pthread_mutex_t cmd_lock;
    struct kf_list cmds;
    struct event *cmd_ev;
    struct px_worker_stats stats;
    struct px_upstream_slot *upstreams;
    size_t n_upstreams;
    bool exiting; /* after PX_CMD_EXIT: adopted connections are closed */
    struct px_l7_stat l7_stats[PX_L7_STATS];
    _Atomic uint64_t l7_stats_overflow;
    struct cache_local *cache_local; /* made on first cached read */
    _Atomic uint64_t cache_served, cache_forwarded;
    struct px_authz *_Atomic authz; /* authz.c: review caches, made on first use */
};

struct px_daemon {
    struct event_base *base; /* control loop: signals, checks, admin */
    struct px_worker workers[PX_MAX_WORKERS];
    unsigned n_workers;
    struct px_generation *gen; /* current; the daemon holds a reference */
    struct kf_list frontends;
    struct fair_limit global_limit;
    const char *config_path; /* NULL when built from flags */
    bool config_is_haproxy;
    _Atomic bool draining;
    _Atomic unsigned next_worker; /* round robin of mode-http connections (accept.c) */
    uint64_t drain_started_ms;
    unsigned next_generation_id;
    _Atomic uint64_t reloads_ok, reloads_failed;
    struct event *drain_timer;
    struct px_admin *admin;
    struct cache *cache; /* mode http with cache.enabled; NULL otherwise */
};

/* generation.c */
struct px_generation *px_generation_build(struct px_daemon *d, struct config *cfg,
                                          struct config_diags *diags);
/**
 * Hand connection fd, accepted on another worker's socket for binding (of gen, which the
 * command retains), to worker w; it is closed if w is exiting.
 */
void px_worker_adopt(struct px_worker *w, int fd, const struct px_binding *binding,
                     struct px_generation *gen, const struct sockaddr_storage *peer,
                     socklen_t peer_len);
/** Worker w takes over a connection another worker accepted (accept.c). */
void px_accept_adopted(struct px_worker *w, struct px_cmd *cmd);
void px_generation_retain(struct px_generation *gen);
void px_generation_release(struct px_generation *gen);
void px_listener_release(struct px_listener *listener);
void px_socket_tune(int fd);

/* l7_setup.c */
int px_generation_setup_http(struct px_daemon *d, struct px_generation *gen,
                             struct config_diags *diags);
void px_generation_free_http(struct px_generation *gen);
void px_http_shutdown(struct px_daemon *d);
uint64_t px_http_connections(struct px_daemon *d);
void px_http_free(struct px_daemon *d);

/* worker.c */
int px_workers_start(struct px_daemon *d, unsigned n);
void px_worker_send(struct px_worker *w, enum px_cmd_type type, struct px_generation *gen);
void px_workers_stop(struct px_daemon *d);
void px_workers_free(struct px_daemon *d);
uint64_t px_workers_active_tunnels(struct px_daemon *d);

/* accept.c */
void px_worker_apply_generation(struct px_worker *w, struct px_generation *gen);
void px_worker_stop_listening(struct px_worker *w);

/* tunnel.c */
void px_tunnel_start(struct px_worker *w, int client_fd, const struct px_binding *binding);
void px_tunnels_close_all(struct px_worker *w);
void px_bufs_free(struct px_worker *w);

/* l7_upgrade.c */
/** Close every upgrade of the worker (drain deadline, exit). */
void px_upgrades_close_all(struct px_worker *w);

/* admin.c */
struct px_admin;
struct px_admin *px_admin_start(struct px_daemon *d, const char *listen);
void px_admin_free(struct px_admin *admin);

/* metrics.c */
struct evbuffer;
void px_metrics_write(struct px_daemon *d, struct evbuffer *out);

#endif
