#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/core.h"

Test(str, token_in_ignores_case_and_needs_the_whole_name)
{
    static const struct kf_token hop[] = {KF_TOKEN("te"), KF_TOKEN("connection"),
                                          KF_TOKEN("transfer-encoding")};

    cr_assert(kf_token_in("TE", 2, hop, KF_ARRAY_SIZE(hop)));
    cr_assert(kf_token_in("Connection", 10, hop, KF_ARRAY_SIZE(hop)));
    cr_assert(kf_token_in("transfer-encoding", 17, hop, KF_ARRAY_SIZE(hop)));
    cr_assert(!kf_token_in("tea", 3, hop, KF_ARRAY_SIZE(hop)));
    cr_assert(!kf_token_in("t", 1, hop, KF_ARRAY_SIZE(hop)));
    cr_assert(!kf_token_in("connectio", 9, hop, KF_ARRAY_SIZE(hop)));
    cr_assert(!kf_token_in("", 0, hop, KF_ARRAY_SIZE(hop)));
    cr_assert(!kf_token_in("te", 2, hop, 0));
}

Test(str, u64_format_matches_printf)
{
    static const uint64_t v[] = {0, 7, 10, 99, 100, 4123, 1000000007ULL, UINT64_MAX};
    char got[21], want[32];

    for (size_t i = 0; i < KF_ARRAY_SIZE(v); i++) {
        size_t n = kf_u64_format(got, v[i]);
        snprintf(want, sizeof(want), "%llu", (unsigned long long)v[i]);
        cr_assert_str_eq(got, want);
        cr_assert_eq(n, strlen(want));
    }
}

Test(str, strlcpy_truncates_and_terminates)
{
    char buf[5];

    cr_assert_eq(kf_strlcpy(buf, "pods", sizeof(buf)), 4);
    cr_assert_str_eq(buf, "pods");
    cr_assert_eq(kf_strlcpy(buf, "configmaps", sizeof(buf)), 10);
    cr_assert_str_eq(buf, "conf");
    cr_assert_eq(kf_strlcpy(buf, "", sizeof(buf)), 0);
    cr_assert_str_eq(buf, "");
    buf[0] = 'x';
    cr_assert_eq(kf_strlcpy(buf, "abc", 0), 3);
    cr_assert_eq(buf[0], 'x');
}
