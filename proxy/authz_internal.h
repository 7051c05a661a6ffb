/* Types shared by the authz*.c files (private to them). */
#ifndef KF_PROXY_AUTHZ_INTERNAL_H
#define KF_PROXY_AUTHZ_INTERNAL_H

#include "proxy/authz.h"

#define AUTHZ_KEY_LEN 32 /* SHA-256 */

enum authz_kind {
    AUTHZ_TOKEN = 0, /* TokenReview results */
    AUTHZ_SAR = 1,   /* SubjectAccessReview decisions */
};

enum authz_entry_state {
    AUTHZ_PENDING, /* a review is in flight; waiters queue on the entry */
    AUTHZ_READY,   /* answered; in the LRU list until it expires or is evicted */
};

struct authz_review;

/* One cached review, keyed by a digest of what was asked (never the raw token). */
struct authz_entry {
    struct authz_entry *hnext; /* hash chain */
    struct kf_list lru;        /* READY: in authz_cache.lru, most recently used last */
    struct kf_list waiters;    /* PENDING: px_authz_wait.link */
    uint8_t key[AUTHZ_KEY_LEN];
    enum authz_entry_state state;
    uint64_t expires_ms;
    bool verdict;      /* authenticated, or allowed */
    bool node_subject; /* AUTHZ_SAR for a system:nodes user: the node TTLs apply */
    bool pinned;       /* its waiters are being told (their callbacks may use the cache): neither
                        * evicted nor dropped as expired until they all were */
    struct kf_arena *arena;      /* owns user / reason; NULL when there is none */
    struct px_user user;         /* AUTHZ_TOKEN with verdict */
    const char *reason;          /* AUTHZ_SAR denial reason, or NULL */
    struct authz_review *review; /* PENDING */
};

/* A bounded hash table with LRU eviction of answered entries. */
struct authz_cache {
    struct authz_entry **buckets;
    size_t mask;
    struct kf_list lru;
    size_t n, max;
    _Atomic uint64_t hits, misses, evictions, coalesced, entries;
};

/* authz_cache.c */
int authz_cache_init(struct authz_cache *c, size_t max);
/** Free every entry; pending ones must have been settled by the caller. */
void authz_cache_free(struct authz_cache *c);
/**
 * The entry for key, or NULL (a miss; an expired entry is dropped unless pinned). A READY
 * hit becomes the most recently used. Counts hits and misses (a PENDING entry
 * counts as a hit: the caller joins it).
 */
struct authz_entry *authz_cache_find(struct authz_cache *c, const uint8_t *key, uint64_t now_ms);
/**
 * A new PENDING entry for key; evicts the least recently used answered entry
 * that is not pinned when full. NULL when every entry is pending or pinned, or on ENOMEM.
 */
struct authz_entry *authz_cache_add(struct authz_cache *c, const uint8_t *key);
/** PENDING -> READY until expires_ms. */
void authz_cache_ready(struct authz_cache *c, struct authz_entry *e, uint64_t expires_ms);
/** Unlink and free e (its waiters must be gone). */
void authz_cache_remove(struct authz_cache *c, struct authz_entry *e);

/* authz_json.c helpers shared with authz_status.c */
/** Append compact JSON in as Go's json.MarshalIndent(v, "", "  ") would print it. */
int authz_json_indent(struct codec_buf *out, const char *in, size_t len);

#endif
