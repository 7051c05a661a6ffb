/*
 * Helpers for the lb unit tests: configs built by hand (the config loaders
 * are another module), local test servers and throwaway certificates.
 */
#ifndef KF_LB_TEST_H
#define KF_LB_TEST_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "lb/lb_internal.h"

#define T_MAX_BACKENDS 4
#define T_MAX_SERVERS  8

/** A struct config with room for a few backends, all in one static-friendly block. */
struct tcfg {
    struct config cfg;
    struct config_backend backends[T_MAX_BACKENDS];
    struct config_server servers[T_MAX_BACKENDS][T_MAX_SERVERS];
};

void tcfg_init(struct tcfg *t);
/** Add a backend (check none, 2 connect retries). */
struct config_backend *tcfg_backend(struct tcfg *t, const char *name, enum config_balance balance);
/** Add an active, weight-1 server with checks on. */
struct config_server *tcfg_server(struct tcfg *t, struct config_backend *b, const char *name,
                                  const char *address);
/** Set a short check on b: interval 50 ms, timeout 200 ms, rise 1, fall 1. */
void tcfg_check(struct config_backend *b, enum config_check_type type);

/** lb_new that fails the test when it fails. */
struct lb *t_lb_new(const struct tcfg *t, struct lb *previous);
/** The server of that name in that backend of lb, or NULL. */
struct lb_server *t_server(struct lb *lb, const char *backend, const char *name);

/** Run base in short slices until s has health want or max_ms passes. */
bool t_run_until(struct event_base *base, struct lb_server *s, enum lb_health want, int max_ms);
/** Run base for ms milliseconds. */
void t_run_for(struct event_base *base, int ms);

/** A listening socket on 127.0.0.1 that nobody accepts from (the kernel completes connects). */
int t_listen(uint16_t *port);
/** A 127.0.0.1 port with nothing listening. */
uint16_t t_closed_port(void);

/** Minimal HTTP(S) server on its own thread, answering every request with status. */
struct t_http {
    int fd;
    uint16_t port;
    pthread_t thread;
    atomic_bool stop;
    atomic_int status;
    atomic_int served;
    pthread_mutex_t mu;
    char last_request[1024]; /* under mu */
    struct ssl_ctx_st *tls;  /* NULL: plain HTTP */
    const char *raw;         /* if set: sent instead of a response (plain HTTP only) */
    bool trickle;            /* send raw one byte at a time */
};

void t_http_start(struct t_http *h, int status, struct ssl_ctx_st *tls);
/** A plain server that answers every request with raw bytes, then closes. */
void t_http_start_raw(struct t_http *h, const char *raw, bool trickle);
void t_http_stop(struct t_http *h);

/** Throwaway certificates in a temp dir: cert.pem/key.pem (127.0.0.1, localhost) and other.pem. */
struct t_certs {
    char dir[64];
    char cert[96], key[96], other[96];
};

void t_certs_make(struct t_certs *c);
void t_certs_remove(struct t_certs *c);
/** A server SSL_CTX with cert/key; require_client asks for a client certificate signed by cert. */
struct ssl_ctx_st *t_server_ctx(const struct t_certs *c, bool require_client);

#endif
