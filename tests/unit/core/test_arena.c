#include <criterion/criterion.h>

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "core/core.h"

Test(arena, allocations_are_aligned_zeroed_and_independent)
{
    struct kf_arena *a = kf_arena_new(256);
    char *s = kf_arena_strdup(a, "kube-apiserver");
    uint64_t *big = kf_arena_alloc(a, 10000);

    cr_assert_not_null(big);
    cr_expect_eq((uintptr_t)big % _Alignof(max_align_t), 0);
    for (size_t i = 0; i < 10000 / sizeof(*big); i++)
        cr_assert_eq(big[i], 0);
    memset(big, 0xff, 10000);
    cr_expect_str_eq(s, "kube-apiserver");
    cr_expect_str_eq(kf_arena_sprintf(a, "%s:%d", "m1", 6443), "m1:6443");
    cr_expect_str_eq(kf_arena_strndup(a, "abcdef", 3), "abc");
    kf_arena_free(a);
    kf_arena_free(NULL);
}

Test(arena, a_reused_arena_starts_empty_and_zeroed)
{
    for (int round = 0; round < 3; round++) {
        struct kf_arena *a = kf_arena_new(1024);
        unsigned char *p = kf_arena_alloc(a, 1000);

        cr_assert_not_null(p);
        for (size_t i = 0; i < 1000; i++)
            cr_assert_eq(p[i], 0, "round %d byte %zu", round, i);
        memset(p, 0xab, 1000);
        /* grows past the first block: those blocks go, the first stays for reuse */
        for (int i = 0; i < 20; i++)
            cr_assert_not_null(kf_arena_alloc(a, 700));
        kf_arena_free(a);
    }
}

static void *arenas_in_a_thread(void *arg)
{
    struct kf_arena *a[100];

    (void)arg;
    for (size_t i = 0; i < 100; i++) {
        a[i] = kf_arena_new(i % 2 ? 4096 : 1024);
        cr_assert_not_null(kf_arena_strdup(a[i], "cached when freed"));
    }
    for (size_t i = 0; i < 100; i++)
        kf_arena_free(a[i]);
    return NULL; /* the thread's cache is freed as it exits: LeakSanitizer checks it */
}

Test(arena, a_threads_cached_arenas_die_with_it)
{
    pthread_t t;

    cr_assert_eq(pthread_create(&t, NULL, arenas_in_a_thread, NULL), 0);
    cr_assert_eq(pthread_join(t, NULL), 0);
}
