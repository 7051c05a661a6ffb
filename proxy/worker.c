/*
 * Worker threads: one event loop each; connections never leave the worker
 * that accepted them. The control thread talks to a worker only through its
 * command queue, so nothing on the data path takes a lock.
 */
#include "proxy/proxy_internal.h"
#include "cache/cache.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/thread.h>

#include "proxy/l7.h"

static void worker_run_cmd(struct px_worker *w, struct px_cmd *cmd)
{
    switch (cmd->type) {
    case PX_CMD_GENERATION:
        px_worker_apply_generation(w, cmd->gen);
        break;
    case PX_CMD_STOP_LISTENING:
        px_worker_stop_listening(w);
        /* draining: cache watches end now, as the apiserver ends its watches at shutdown,
         * so clients re-watch elsewhere instead of holding the drain to its deadline */
        if (w->cache_local)
            cache_local_end_watches(w->cache_local);
        px_l7_end_watches(w);
        break;
    case PX_CMD_CLOSE_ALL:
        px_tunnels_close_all(w);
        px_upgrades_close_all(w);
        break;
    case PX_CMD_ADOPT:
        px_accept_adopted(w, cmd);
        px_generation_release(cmd->gen);
        break;
    case PX_CMD_EXIT:
        w->exiting = true;
        px_worker_stop_listening(w);
        px_tunnels_close_all(w);
        px_upgrades_close_all(w);
        event_base_loopbreak(w->base);
        break;
    }
}

static void on_cmd(evutil_socket_t fd, short what, void *arg)
{
    struct px_worker *w = arg;
    struct kf_list batch;

    (void)fd;
    (void)what;
    kf_list_init(&batch);
    pthread_mutex_lock(&w->cmd_lock);
    if (!kf_list_empty(&w->cmds)) { /* take the whole queue at once */
        batch.next = w->cmds.next;
        batch.prev = w->cmds.prev;
        batch.next->prev = &batch;
        batch.prev->next = &batch;
        kf_list_init(&w->cmds);
    }
    pthread_mutex_unlock(&w->cmd_lock);
    while (!kf_list_empty(&batch)) {
        struct px_cmd *cmd = kf_container_of(batch.next, struct px_cmd, link);
        kf_list_remove(&cmd->link);
        worker_run_cmd(w, cmd);
        free(cmd);
    }
}

void px_worker_send(struct px_worker *w, enum px_cmd_type type, struct px_generation *gen)
{
    struct px_cmd *cmd = calloc(1, sizeof(*cmd));

    KF_BUG_ON(!cmd); /* a lost command would leave a worker on an old config */
    cmd->type = type;
    cmd->gen = gen;
    pthread_mutex_lock(&w->cmd_lock);
    kf_list_insert_tail(&w->cmds, &cmd->link);
    pthread_mutex_unlock(&w->cmd_lock);
    event_active(w->cmd_ev, EV_READ, 0);
}

void px_worker_adopt(struct px_worker *w, int fd, const struct px_binding *binding,
                     struct px_generation *gen, const struct sockaddr_storage *peer,
                     socklen_t peer_len)
{
    struct px_cmd *cmd = calloc(1, sizeof(*cmd));

    if (!cmd) {
        close(fd);
        return;
    }
    px_generation_retain(gen);
    *cmd = (struct px_cmd){.type = PX_CMD_ADOPT,
                           .gen = gen,
                           .fd = fd,
                           .binding = binding,
                           .peer = *peer,
                           .peer_len = peer_len};
    pthread_mutex_lock(&w->cmd_lock);
    kf_list_insert_tail(&w->cmds, &cmd->link);
    pthread_mutex_unlock(&w->cmd_lock);
    event_active(w->cmd_ev, EV_READ, 0);
}

static void *worker_main(void *arg)
{
    struct px_worker *w = arg;
    sigset_t all;

    px_worker_set_self(w);
    sigfillset(&all); /* signals are the control thread's */
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

/*
 * The changelist merges the add/del pairs a tunnel makes within one loop pass
 * into one epoll_ctl; it is safe because kfront never dup()s a socket.
 */
static struct event_base *worker_base_new(void)
{
    struct event_config *cfg = event_config_new();
    struct event_base *base;

    if (!cfg)
        return NULL;
    event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    return base;
}

int px_workers_start(struct px_daemon *d, unsigned n)
{
    static bool threads_ready;

    if (!threads_ready && evthread_use_pthreads() < 0)
        return -ENOSYS;
    threads_ready = true;
    for (unsigned i = 0; i < n; i++) {
        struct px_worker *w = &d->workers[i];
        w->index = i;
        w->daemon = d;
        kf_list_init(&w->tunnels);
        kf_list_init(&w->upgrades);
        kf_list_init(&w->watches);
        kf_list_init(&w->cmds);
        pthread_mutex_init(&w->cmd_lock, NULL);
        w->base = worker_base_new();
        if (!w->base)
            return -ENOMEM;
        w->cmd_ev = event_new(w->base, -1, EV_PERSIST, on_cmd, w);
        if (!w->cmd_ev)
            return -ENOMEM;
        event_add(w->cmd_ev, NULL);
        int rc = pthread_create(&w->thread, NULL, worker_main, w);
        if (rc != 0)
            return -rc;
        d->n_workers = i + 1;
    }
    return 0;
}

void px_workers_stop(struct px_daemon *d)
{
    for (unsigned i = 0; i < d->n_workers; i++)
        px_worker_send(&d->workers[i], PX_CMD_EXIT, NULL);
    for (unsigned i = 0; i < d->n_workers; i++)
        pthread_join(d->workers[i].thread, NULL);
}

/* After px_workers_stop and after the HTTP servers (their connections live on these loops). */
void px_workers_free(struct px_daemon *d)
{
    for (unsigned i = 0; i < d->n_workers; i++) {
        struct px_worker *w = &d->workers[i];
        on_cmd(-1, 0, w); /* free what arrived after the exit command */
        px_worker_stop_listening(w);
        free(w->slots);
        w->slots = NULL;
        w->n_slots = 0;
        if (w->gen)
            px_generation_release(w->gen);
        w->gen = NULL;
        px_bufs_free(w);
        event_free(w->cmd_ev);
        event_base_free(w->base);
        pthread_mutex_destroy(&w->cmd_lock);
    }
}

uint64_t px_workers_active_tunnels(struct px_daemon *d)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < d->n_workers; i++)
        n += atomic_load_explicit(&d->workers[i].stats.tunnels_active, memory_order_relaxed);
    return n;
}
