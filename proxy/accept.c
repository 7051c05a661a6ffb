/*
 * Accepting on a worker: one accept slot per listener in the worker's
 * generation. A new generation keeps the slots of listeners it still has
 * (same socket, so nothing queued in the kernel is lost) and drops the rest.
 */
#include "proxy/proxy_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy/http/http.h"

#define ACCEPT_BATCH 64

/*
 * Mode http connections are owned by the HTTP server, which has no hook for
 * their end; so its own count of open connections is the limit's measure
 * (connections still in their TLS handshake are not in it).
 */
static void accept_http(struct px_worker *w, const struct px_binding *b, int cfd,
                        const struct sockaddr_storage *peer, socklen_t peer_len)
{
    struct px_frontend *fe = b->frontend;
    struct px_server_stats st;
    uint32_t max = b->cfe->maxconn;

    px_server_get_stats(fe->http, &st);
    if (max && st.conns_current >= max) {
        atomic_fetch_add_explicit(&fe->rejected_maxconn, 1, memory_order_relaxed);
        close(cfd);
        return;
    }
    atomic_fetch_add_explicit(&fe->accepted, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&w->stats.http_connections, 1, memory_order_relaxed);
    px_conn_accept(fe->http, w->base, cfd, (const struct sockaddr *)peer, peer_len);
}

void px_accept_adopted(struct px_worker *w, struct px_cmd *cmd)
{
    if (w->exiting || atomic_load(&w->daemon->draining)) {
        close(cmd->fd);
        return;
    }
    accept_http(w, cmd->binding, cmd->fd, &cmd->peer, cmd->peer_len);
}

/*
 * Mode-http connections go round robin over the workers. SO_REUSEPORT spreads them by a hash
 * of addresses and ports, so a few long-lived ones (HTTP/2 clients, a sidecar's kubelets)
 * can load one worker far more than another: 10 h2load connections gave 100:60 of CPU.
 */
static struct px_worker *next_worker(struct px_daemon *d)
{
    unsigned n = d->n_workers;

    return n > 1 ? &d->workers[atomic_fetch_add(&d->next_worker, 1) % n] : NULL;
}

static void on_acceptable(evutil_socket_t fd, short what, void *arg)
{
    struct px_accept_slot *slot = arg;
    struct px_worker *w = slot->worker;
    struct px_daemon *d = w->daemon;

    (void)what;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage peer;
        socklen_t peer_len = sizeof(peer);
        int cfd = accept4(fd, (struct sockaddr *)&peer, &peer_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                kf_warn("proxy", "accept on %s: %s", slot->listener->address, strerror(errno));
            return;
        }
        struct px_frontend *fe = slot->binding->frontend;
        if (slot->binding->mode == CONFIG_MODE_HTTP) {
            struct px_worker *to = next_worker(d);
            if (to && to != w)
                px_worker_adopt(to, cfd, slot->binding, w->gen, &peer, peer_len);
            else
                accept_http(w, slot->binding, cfd, &peer, peer_len);
            continue;
        }
        if (!fair_admit(&d->global_limit)) {
            atomic_fetch_add_explicit(&w->stats.rejected_global_maxconn, 1, memory_order_relaxed);
            close(cfd);
            continue;
        }
        if (!fair_admit(&fe->limit)) {
            fair_release(&d->global_limit);
            atomic_fetch_add_explicit(&fe->rejected_maxconn, 1, memory_order_relaxed);
            close(cfd);
            continue;
        }
        atomic_fetch_add_explicit(&fe->accepted, 1, memory_order_relaxed);
        px_tunnel_start(w, cfd, slot->binding);
    }
}

static struct px_accept_slot *find_slot(struct px_worker *w, const struct px_listener *l)
{
    for (size_t i = 0; i < w->n_slots; i++)
        if (w->slots[i].listener == l)
            return &w->slots[i];
    return NULL;
}

static void slot_disarm(struct px_accept_slot *slot)
{
    if (slot->armed) {
        event_del(&slot->ev);
        slot->armed = false;
    }
}

void px_worker_apply_generation(struct px_worker *w, struct px_generation *gen)
{
    struct px_accept_slot *slots = calloc(gen->n_bindings ? gen->n_bindings : 1, sizeof(*slots));

    if (!slots) {
        kf_err("proxy", "worker %u: out of memory applying configuration %u", w->index, gen->id);
        px_generation_release(gen);
        return;
    }
    for (size_t i = 0; i < gen->n_bindings; i++) {
        const struct px_binding *b = &gen->bindings[i];
        struct px_accept_slot *slot = &slots[i];
        struct px_accept_slot *old = find_slot(w, b->listener);

        slot->worker = w;
        slot->listener = b->listener;
        slot->binding = b;
        if (old)
            slot_disarm(old); /* same socket: re-armed below, nothing is lost */
        event_assign(&slot->ev, w->base, b->listener->fds[w->index], EV_READ | EV_PERSIST,
                     on_acceptable, slot);
        if (!w->daemon->draining) {
            event_add(&slot->ev, NULL);
            slot->armed = true;
        }
    }
    for (size_t i = 0; i < w->n_slots; i++)
        slot_disarm(&w->slots[i]);
    free(w->slots);
    w->slots = slots;
    w->n_slots = gen->n_bindings;
    if (w->gen)
        px_generation_release(w->gen);
    w->gen = gen;
}

/*
 * Shutting down the read side of this worker's listening socket makes the
 * kernel stop routing new connections to it (SO_REUSEPORT) and reset the ones
 * queued, so clients see a refusal and go elsewhere instead of hanging.
 */
void px_worker_stop_listening(struct px_worker *w)
{
    for (size_t i = 0; i < w->n_slots; i++) {
        slot_disarm(&w->slots[i]);
        if (atomic_load(&w->daemon->draining))
            shutdown(w->slots[i].listener->fds[w->index], SHUT_RD);
    }
}
