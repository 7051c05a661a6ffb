/*
 * The per-worker review caches: a hash table over SHA-256 keys (already
 * uniformly spread: the first 8 bytes are the hash) with a size bound and LRU
 * eviction. Entries with a review in flight are never evicted (their waiters
 * hang on them); answered entries expire lazily, when looked up.
 */
#include "proxy/authz_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *const entry_state_name[] = {"pending", "ready"};

static void entry_set_state(struct authz_entry *e, enum authz_entry_state next)
{
    KF_BUG_ON(!(e->state == AUTHZ_PENDING && next == AUTHZ_READY));
    kf_debug("authz", "cache entry %s -> %s", entry_state_name[e->state], entry_state_name[next]);
    e->state = next;
}

int authz_cache_init(struct authz_cache *c, size_t max)
{
    size_t n = 16;

    memset(c, 0, sizeof(*c));
    while (n < max && n < ((size_t)1 << 24))
        n <<= 1;
    c->buckets = calloc(n, sizeof(*c->buckets));
    if (!c->buckets)
        return -ENOMEM;
    c->mask = n - 1;
    c->max = max ? max : 1;
    kf_list_init(&c->lru);
    return 0;
}

static size_t bucket_of(const struct authz_cache *c, const uint8_t *key)
{
    uint64_t h;

    memcpy(&h, key, sizeof(h));
    return (size_t)h & c->mask;
}

static void entry_free(struct authz_entry *e)
{
    if (e->arena)
        kf_arena_free(e->arena);
    free(e);
}

void authz_cache_remove(struct authz_cache *c, struct authz_entry *e)
{
    struct authz_entry **p = &c->buckets[bucket_of(c, e->key)];

    KF_BUG_ON(!kf_list_empty(&e->waiters));
    while (*p && *p != e)
        p = &(*p)->hnext;
    if (*p)
        *p = e->hnext;
    kf_list_remove(&e->lru);
    c->n--;
    atomic_store_explicit(&c->entries, c->n, memory_order_relaxed);
    entry_free(e);
}

void authz_cache_free(struct authz_cache *c)
{
    for (size_t i = 0; c->buckets && i <= c->mask; i++)
        while (c->buckets[i]) {
            struct authz_entry *e = c->buckets[i];
            c->buckets[i] = e->hnext;
            entry_free(e);
        }
    free(c->buckets);
    c->buckets = NULL;
    c->n = 0;
}

static void count(_Atomic uint64_t *counter)
{
    atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
}

struct authz_entry *authz_cache_find(struct authz_cache *c, const uint8_t *key, uint64_t now_ms)
{
    struct authz_entry *e = c->buckets[bucket_of(c, key)];

    while (e && memcmp(e->key, key, AUTHZ_KEY_LEN) != 0)
        e = e->hnext;
    if (e && e->state == AUTHZ_READY && !e->pinned && now_ms >= e->expires_ms) {
        authz_cache_remove(c, e);
        e = NULL;
    }
    if (!e) {
        count(&c->misses);
        return NULL;
    }
    count(&c->hits);
    if (e->state == AUTHZ_READY) {
        kf_list_remove(&e->lru);
        kf_list_insert_tail(&c->lru, &e->lru);
    }
    return e;
}

struct authz_entry *authz_cache_add(struct authz_cache *c, const uint8_t *key)
{
    struct authz_entry *e;
    size_t b;

    if (c->n >= c->max) {
        struct kf_list *pos = c->lru.next;
        while (pos != &c->lru && kf_container_of(pos, struct authz_entry, lru)->pinned)
            pos = pos->next;
        if (pos == &c->lru)
            return NULL; /* all pending or pinned: the caller forwards instead */
        authz_cache_remove(c, kf_container_of(pos, struct authz_entry, lru));
        count(&c->evictions);
    }
    e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    memcpy(e->key, key, AUTHZ_KEY_LEN);
    e->state = AUTHZ_PENDING;
    kf_list_init(&e->lru);
    kf_list_init(&e->waiters);
    b = bucket_of(c, key);
    e->hnext = c->buckets[b];
    c->buckets[b] = e;
    c->n++;
    atomic_store_explicit(&c->entries, c->n, memory_order_relaxed);
    return e;
}

void authz_cache_ready(struct authz_cache *c, struct authz_entry *e, uint64_t expires_ms)
{
    entry_set_state(e, AUTHZ_READY);
    e->expires_ms = expires_ms;
    e->review = NULL;
    kf_list_insert_tail(&c->lru, &e->lru);
}
