#include "core/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct arena_block {
    struct arena_block *next;
    size_t used, size;
    _Alignas(max_align_t) unsigned char data[];
};

struct kf_arena {
    struct arena_block *head;
    size_t block_size;
};

struct kf_arena *kf_arena_new(size_t block_size)
{
    struct kf_arena *arena = calloc(1, sizeof(*arena));

    if (!arena)
        return NULL;
    arena->block_size = block_size < 256 ? 256 : block_size;
    return arena;
}

void *kf_arena_alloc(struct kf_arena *arena, size_t size)
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
    memset(p, 0, size);
    return p;
}

char *kf_arena_strndup(struct kf_arena *arena, const char *s, size_t n)
{
    char *p = kf_arena_alloc(arena, n + 1);

    if (p && n)
        memcpy(p, s, n);
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
    if (!arena)
        return;
    for (struct arena_block *b = arena->head, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    free(arena);
}
