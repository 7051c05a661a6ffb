/*
 * Arenas: one malloc holds the arena and its first block; more blocks are
 * chained when it fills. Every request makes two (px_request, lb_ureq), so a
 * freed arena that never grew goes to a small per-thread cache and the next
 * kf_arena_new of the same size takes it back without malloc or free.
 */
#include "core/core.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct arena_block {
    struct arena_block *next;
    size_t used, size;
    _Alignas(max_align_t) unsigned char data[];
};

struct kf_arena {
    struct arena_block *head; /* newest first; the last is first_block */
    size_t block_size;
    struct kf_arena *next_free;     /* in the thread's cache */
    struct arena_block first_block; /* its data follows: block_size bytes */
};

#define ARENA_CACHE_SIZES 4
#define ARENA_CACHE_MAX   64 /* per size and thread: a worker's requests in flight */

struct arena_cache {
    size_t block_size;
    unsigned n;
    struct kf_arena *list;
};

static _Thread_local struct arena_cache arena_cache[ARENA_CACHE_SIZES];
static _Thread_local bool arena_cache_registered;
static pthread_key_t arena_cache_key;
static pthread_once_t arena_cache_once = PTHREAD_ONCE_INIT;

/* A thread's cached arenas are freed when it exits (the key's destructor). */
static void arena_cache_drain(void *unused)
{
    (void)unused;
    for (size_t i = 0; i < ARENA_CACHE_SIZES; i++) {
        while (arena_cache[i].list) {
            struct kf_arena *a = arena_cache[i].list;
            arena_cache[i].list = a->next_free;
            free(a);
        }
        arena_cache[i].n = 0;
    }
}

static void arena_cache_key_create(void)
{
    if (pthread_key_create(&arena_cache_key, arena_cache_drain) != 0)
        arena_cache_key = (pthread_key_t)-1;
}

static struct arena_cache *cache_for(size_t block_size, bool claim)
{
    for (size_t i = 0; i < ARENA_CACHE_SIZES; i++)
        if (arena_cache[i].block_size == block_size)
            return &arena_cache[i];
    for (size_t i = 0; claim && i < ARENA_CACHE_SIZES; i++)
        if (arena_cache[i].block_size == 0) {
            arena_cache[i].block_size = block_size;
            return &arena_cache[i];
        }
    return NULL;
}

struct kf_arena *kf_arena_new(size_t block_size)
{
    struct arena_cache *c;
    struct kf_arena *arena;

    block_size = block_size < 256 ? 256 : block_size;
    c = cache_for(block_size, false);
    if (c && c->list) {
        arena = c->list;
        c->list = arena->next_free;
        c->n--;
        arena->next_free = NULL;
        arena->first_block.used = 0;
        return arena;
    }
    if (!(arena = malloc(sizeof(*arena) + block_size)))
        return NULL;
    arena->block_size = block_size;
    arena->next_free = NULL;
    arena->first_block = (struct arena_block){NULL, 0, block_size};
    arena->head = &arena->first_block;
    return arena;
}

/* Uninitialised memory: most allocations are string copies, written over at once. */
static void *arena_take(struct kf_arena *arena, size_t size)
{
    const size_t align = _Alignof(max_align_t);
    struct arena_block *b = arena->head;

    size = (size + align - 1) & ~(align - 1);
    if (size == 0)
        size = align;
    if (!b || b->size - b->used < size) {
        size_t cap = size > arena->block_size ? size : arena->block_size;
        b = malloc(sizeof(*b) + cap);
        if (!b)
            return NULL;
        b->size = cap;
        b->used = 0;
        b->next = arena->head;
        arena->head = b;
    }
    void *p = b->data + b->used;
    b->used += size;
    return p;
}

void *kf_arena_alloc(struct kf_arena *arena, size_t size)
{
    void *p = arena_take(arena, size);

    if (p)
        memset(p, 0, size);
    return p;
}

char *kf_arena_strndup(struct kf_arena *arena, const char *s, size_t n)
{
    char *p = arena_take(arena, n + 1);

    if (p) {
        if (n)
            memcpy(p, s, n); /* s may be NULL when n is 0 */
        p[n] = '\0';
    }
    return p;
}

char *kf_arena_strdup(struct kf_arena *arena, const char *s)
{
    return kf_arena_strndup(arena, s, strlen(s));
}

char *kf_arena_sprintf(struct kf_arena *arena, const char *fmt, ...)
{
    va_list ap;
    int n;
    char *p;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    p = kf_arena_alloc(arena, (size_t)n + 1);
    if (!p)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

void kf_arena_free(struct kf_arena *arena)
{
    struct arena_cache *c;

    if (!arena)
        return;
    for (struct arena_block *b = arena->head, *next; b != &arena->first_block; b = next) {
        next = b->next;
        free(b);
    }
    arena->head = &arena->first_block;
    c = cache_for(arena->block_size, true);
    if (c && c->n < ARENA_CACHE_MAX) {
        if (!arena_cache_registered) {
            pthread_once(&arena_cache_once, arena_cache_key_create);
            if (arena_cache_key == (pthread_key_t)-1 ||
                pthread_setspecific(arena_cache_key, arena_cache) != 0)
                goto release;
            arena_cache_registered = true;
        }
        arena->next_free = c->list;
        c->list = arena;
        c->n++;
        return;
    }
release:
    free(arena);
}
