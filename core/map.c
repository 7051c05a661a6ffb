/*
 * map: a string-keyed open-addressing hash map (linear probing, tombstones),
 * for indexes (kube-sim's store, kfront's cache). Keys are copied; values are the caller's.
 */
#include "core/core.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define TOMBSTONE ((char *)1)

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */

    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

static size_t slot_of(const struct kf_map *m, const char *key, bool for_insert)
{
    size_t mask = m->cap - 1, i = hash(key) & mask, tomb = SIZE_MAX;

    for (;;) {
        char *k = m->keys[i];
        if (!k)
            return for_insert && tomb != SIZE_MAX ? tomb : i;
        if (k == TOMBSTONE) {
            if (tomb == SIZE_MAX)
                tomb = i;
        } else if (strcmp(k, key) == 0) {
            return i;
        }
        i = (i + 1) & mask;
    }
}

static int grow(struct kf_map *m)
{
    /* rehash at a size for the live keys: under add/remove churn tombstones fill the table
     * without the map growing, and doubling for them would grow it forever */
    size_t cap = 64;
    while (cap * 3 <= (m->n + 1) * 8)
        cap *= 2;
    struct kf_map bigger = {.cap = cap};

    bigger.keys = calloc(bigger.cap, sizeof(*bigger.keys));
    bigger.values = calloc(bigger.cap, sizeof(*bigger.values));
    if (!bigger.keys || !bigger.values) {
        free(bigger.keys);
        free(bigger.values);
        return -ENOMEM;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (m->keys[i] && m->keys[i] != TOMBSTONE) {
            size_t s = slot_of(&bigger, m->keys[i], true);
            bigger.keys[s] = m->keys[i];
            bigger.values[s] = m->values[i];
            bigger.n++;
        }
    }
    free(m->keys);
    free(m->values);
    *m = bigger;
    m->used = m->n;
    return 0;
}

void *kf_map_get(const struct kf_map *m, const char *key)
{
    if (!m->cap)
        return NULL;
    size_t s = slot_of(m, key, false);
    return m->keys[s] && m->keys[s] != TOMBSTONE ? m->values[s] : NULL;
}

int kf_map_put(struct kf_map *m, const char *key, void *value)
{
    if ((m->used + 1) * 4 >= m->cap * 3 && grow(m) < 0)
        return -ENOMEM;
    size_t s = slot_of(m, key, true);
    if (m->keys[s] && m->keys[s] != TOMBSTONE) {
        m->values[s] = value;
        return 0;
    }
    char *copy = strdup(key);
    if (!copy)
        return -ENOMEM;
    if (!m->keys[s])
        m->used++;
    m->keys[s] = copy;
    m->values[s] = value;
    m->n++;
    return 0;
}

void *kf_map_remove(struct kf_map *m, const char *key)
{
    if (!m->cap)
        return NULL;
    size_t s = slot_of(m, key, false);
    if (!m->keys[s] || m->keys[s] == TOMBSTONE)
        return NULL;
    void *v = m->values[s];
    free(m->keys[s]);
    m->keys[s] = TOMBSTONE;
    m->values[s] = NULL;
    m->n--;
    return v;
}

void kf_map_free(struct kf_map *m, void (*free_value)(void *))
{
    for (size_t i = 0; i < m->cap; i++) {
        if (m->keys[i] && m->keys[i] != TOMBSTONE) {
            if (free_value)
                free_value(m->values[i]);
            free(m->keys[i]);
        }
    }
    free(m->keys);
    free(m->values);
    memset(m, 0, sizeof(*m));
}
