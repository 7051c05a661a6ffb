/*
 * lb: backend servers, their health, and the choice of a server for a new
 * connection (or, in L7 mode, a new request).
 *
 * Threads: health checks run on one control event loop; worker threads call
 * lb_pick() and the lb_server_* reporters concurrently. Everything a worker
 * reads is atomic; health transitions take a per-server mutex (they are rare).
 *
 * Lifetime: a struct lb is built from a struct config. On reload the new lb
 * reuses the struct lb_server of every server whose (backend, name, address)
 * did not change, so health, counters and active connections carry over. A
 * server is refcounted: each picked connection holds a reference until
 * lb_server_conn_end(), so a server removed by a reload stays valid until its
 * last connection ends.
 */
#ifndef KF_LB_H
#define KF_LB_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config/config.h"

struct event_base;
struct evbuffer;

enum lb_health {
    LB_HEALTH_UNKNOWN = 0, /* no check result yet: eligible, so startup is not delayed */
    LB_HEALTH_UP,
    LB_HEALTH_DOWN,
};

struct lb;
struct lb_pool;
struct lb_server;

/**
 * Build the runtime backends of cfg. Servers are taken over from previous
 * (may be NULL) where they match. Hostnames are resolved here (blocking: call
 * it off the worker loops). Checks are not started. Returns NULL and fills
 * diags (if non-NULL) on failure: an address that is not HOST:PORT or does
 * not resolve, a check path that cannot go in a request line, TLS files that
 * do not load. cfg is not referenced after the call.
 */
struct lb *lb_new(const struct config *cfg, struct lb *previous, struct config_diags *diags);

/**
 * Start active checks on base (the control loop). Returns 0, -EALREADY when
 * they run already, or -ENOMEM. TLS checks write through OpenSSL with
 * write(2): the process must ignore SIGPIPE (the daemon does).
 */
int lb_start_checks(struct lb *lb, struct event_base *base);

/** Stop active checks (before a reload replaces this lb, or at shutdown). */
void lb_stop_checks(struct lb *lb);

/**
 * Take / drop a reference; the last lb_release frees the lb (servers live on
 * while picked connections hold them). Stop the checks on the control loop
 * before the last release: a release that has to stop them itself is only
 * safe while that loop is not running.
 */
void lb_retain(struct lb *lb);
void lb_release(struct lb *lb);

/** The pool built from the backend of that name, or NULL. */
struct lb_pool *lb_find_pool(struct lb *lb, const char *backend_name);

/**
 * Choose a server for a new connection following the pool's balance
 * algorithm, skipping the n_exclude servers in exclude (already tried).
 * Only healthy (or not yet checked), active, non-zero-weight servers are
 * chosen; backup servers only when no other is eligible. The chosen server's
 * active connection count is incremented and a reference taken: the caller
 * must call lb_server_conn_end() exactly once. NULL when none is eligible.
 */
struct lb_server *lb_pick(struct lb_pool *pool, struct lb_server *const *exclude, size_t n_exclude);

/** Release what lb_pick took. */
void lb_server_conn_end(struct lb_server *server);

/**
 * Report the outcome of a connect attempt made by the data path. A failure
 * counts toward the server's fall threshold (passive check) and may take it
 * down; a success resets the passive failure count. connect_us feeds the
 * connect-time histogram.
 */
void lb_server_report_connect(struct lb_server *server, bool ok, uint64_t connect_us);

/** Add to the server's byte counters. */
void lb_server_add_bytes(struct lb_server *server, uint64_t to_server, uint64_t from_server);

/** Address to connect to. */
const struct sockaddr *lb_server_addr(const struct lb_server *server, socklen_t *len);
/** "backend/server" for logs. */
const char *lb_server_label(const struct lb_server *server);
enum lb_health lb_server_health(const struct lb_server *server);
/** True when the server may take new connections (healthy, active, weight > 0). */
bool lb_server_eligible(const struct lb_server *server);

/**
 * Copy the reason of the server's last failed check or passive report into
 * buf (e.g. "connect: Connection refused"); "" when it never failed.
 */
void lb_server_last_failure(struct lb_server *server, char *buf, size_t size);

/** Number of further servers to try after a failed connect, from the backend's config. */
uint32_t lb_pool_connect_retries(const struct lb_pool *pool);

/** True when at least one server of any pool is eligible (for /readyz). */
bool lb_any_server_up(struct lb *lb);

/** Append Prometheus text for every server (kfront_backend_* families). */
void lb_metrics_write(struct lb *lb, struct evbuffer *out);

/** Name of a health state ("unknown", "up", "down"). */
const char *lb_health_name(enum lb_health health);

/* ---- the health state machine, exposed for unit tests ------------------------ */

/** Consecutive-result counters behind one server's health. */
struct lb_health_counter {
    enum lb_health state;
    uint32_t successes; /* consecutive, since the last failure */
    uint32_t failures;  /* consecutive, since the last success */
};

/**
 * Record one check result (active or passive) with thresholds rise and fall.
 * Returns true when the state changed. From UNKNOWN the first result decides
 * (an up server is not held back, a dead one is not picked for fall*interval).
 */
bool lb_health_record(struct lb_health_counter *h, bool ok, uint32_t rise, uint32_t fall);

#endif
