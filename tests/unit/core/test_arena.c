#include <criterion/criterion.h>

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
