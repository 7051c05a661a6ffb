/*
 * lb_pick: choosing a server for a new connection.
 *
 * Servers are tried in tiers: for local-first, eligible local non-backup
 * servers, then the other non-backup servers; for the other algorithms all
 * non-backup servers; backups last, only when no server of an earlier tier is
 * eligible. Excluded servers (already tried by this connection) count as not
 * eligible, so a retry that has exhausted the primaries reaches a backup.
 *
 * Round robin is the smooth weighted round robin of nginx: every pick adds
 * each candidate's weight to its running score, takes the highest score and
 * subtracts the total weight from it. It interleaves (weights 1:2:3 give
 * c b a c b c, not a b b c c c) and is exact over every sum-of-weights picks.
 * Its state is one score per server, updated together, so it takes a short
 * per-pool mutex: a handful of additions per pick, uncontended unless two
 * workers accept on the same backend in the same instant. Leastconn needs no
 * shared state beyond the connection counters and is lock-free.
 */
#include "lb/lb_internal.h"

struct tier {
    bool backup;
    int local; /* -1: any, 0: not local, 1: local */
};

static const struct tier tiers_plain[] = {{false, -1}, {true, -1}};
static const struct tier tiers_local_first[] = {{false, 1}, {false, 0}, {true, -1}};

static bool excluded(const struct lb_server *s, struct lb_server *const *exclude, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (exclude[i] == s)
            return true;
    return false;
}

static bool candidate(const struct lb_server *s, const struct tier *tier,
                      struct lb_server *const *exclude, size_t n_exclude)
{
    if (atomic_load_explicit(&s->backup, memory_order_relaxed) != tier->backup)
        return false;
    if (tier->local >= 0 && atomic_load_explicit(&s->local, memory_order_relaxed) != tier->local)
        return false;
    return lb_server_eligible(s) && !excluded(s, exclude, n_exclude);
}

static struct lb_server *pick_roundrobin(struct lb_pool *pool, const struct tier *tier,
                                         struct lb_server *const *exclude, size_t n_exclude)
{
    int64_t total = 0;
    size_t best = SIZE_MAX;

    pthread_mutex_lock(&pool->rr_mu);
    for (size_t i = 0; i < pool->n_servers; i++) {
        struct lb_server *s = pool->servers[i];
        if (!candidate(s, tier, exclude, n_exclude))
            continue;
        int64_t w = atomic_load_explicit(&s->weight, memory_order_relaxed);
        pool->current[i] += w;
        total += w;
        if (best == SIZE_MAX || pool->current[i] > pool->current[best])
            best = i;
    }
    if (best != SIZE_MAX)
        pool->current[best] -= total;
    pthread_mutex_unlock(&pool->rr_mu);
    return best == SIZE_MAX ? NULL : pool->servers[best];
}

/* Fewest active connections per unit of weight; the scan starts at a rotating
 * offset so that ties go round robin. */
static struct lb_server *pick_leastconn(struct lb_pool *pool, const struct tier *tier,
                                        struct lb_server *const *exclude, size_t n_exclude)
{
    size_t n = pool->n_servers;
    size_t start =
        n ? (size_t)(atomic_fetch_add_explicit(&pool->cursor, 1, memory_order_relaxed) % n) : 0;
    struct lb_server *best = NULL;
    uint64_t best_conns = 0, best_weight = 1;

    for (size_t k = 0; k < n; k++) {
        struct lb_server *s = pool->servers[(start + k) % n];
        if (!candidate(s, tier, exclude, n_exclude))
            continue;
        uint64_t conns = atomic_load_explicit(&s->active_conns, memory_order_relaxed);
        uint64_t weight = atomic_load_explicit(&s->weight, memory_order_relaxed);
        /* conns / weight < best_conns / best_weight, without division */
        if (!best || conns * best_weight < best_conns * weight) {
            best = s;
            best_conns = conns;
            best_weight = weight;
        }
    }
    return best;
}

static struct lb_server *pick_in_tiers(struct lb_pool *pool, struct lb_server *const *exclude,
                                       size_t n_exclude)
{
    const struct tier *tiers = tiers_plain;
    size_t n_tiers = KF_ARRAY_SIZE(tiers_plain);
    struct lb_server *s = NULL;

    if (pool->balance == CONFIG_BALANCE_LOCAL_FIRST) {
        tiers = tiers_local_first;
        n_tiers = KF_ARRAY_SIZE(tiers_local_first);
    }
    for (size_t t = 0; t < n_tiers && !s; t++) {
        if (pool->balance == CONFIG_BALANCE_LEASTCONN)
            s = pick_leastconn(pool, &tiers[t], exclude, n_exclude);
        else
            s = pick_roundrobin(pool, &tiers[t], exclude, n_exclude);
    }
    return s;
}

struct lb_server *lb_pick(struct lb_pool *pool, struct lb_server *const *exclude, size_t n_exclude)
{
    struct lb_server *s = pick_in_tiers(pool, exclude, n_exclude);

    if (!s)
        return NULL;
    /* A passively downed server on trial (see lb_server_eligible): the next
     * trial waits another interval. */
    if (lb_server_health(s) == LB_HEALTH_DOWN)
        atomic_store_explicit(&s->retry_at_ms, kf_now_ms() + atomic_load(&s->retry_interval_ms),
                              memory_order_relaxed);
    lb_server_retain(s);
    atomic_fetch_add_explicit(&s->active_conns, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->total_conns, 1, memory_order_relaxed);
    return s;
}
