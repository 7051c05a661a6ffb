/* Continue tokens: the recorded apiserver's bytes, round trips, and every malformed form. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "cache/codec/codec.h"

Test(continue_token, encodes_what_the_apiserver_sent)
{
    /* fixtures/recordings/list-cm-limit1-json.body.bin: a namespaced list, page after cm1 */
    struct codec_buf b;

    codec_buf_init(&b);
    cr_assert_eq(codec_continue_encode(&b, 199, "cm1"), 0);
    cr_expect_eq(b.len,
                 strlen("eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MTk5LCJzdGFydCI6ImNtMVx1MDAwMCJ9"));
    cr_expect_eq(memcmp(b.data,
                        "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MTk5LCJzdGFydCI6ImNtMVx1MDAwMCJ9",
                        b.len),
                 0);
    codec_buf_free(&b);
}

Test(continue_token, round_trip_including_the_latest_state_form)
{
    const int64_t rvs[] = {1, 4259, -1};
    for (size_t i = 0; i < 3; i++) {
        struct codec_buf b;
        struct kf_arena *a = kf_arena_new(256);
        int64_t rv = 0;
        char *start = NULL, err[256], tok[256];
        bool after = false;

        codec_buf_init(&b);
        cr_assert_eq(codec_continue_encode(&b, rvs[i], "team-000/app-config-12"), 0);
        snprintf(tok, sizeof(tok), "%.*s", (int)b.len, b.data);
        cr_assert_eq(codec_continue_decode(tok, a, &rv, &start, &after, err, sizeof(err)), 0, "%s",
                     err);
        cr_expect_eq(rv, rvs[i]);
        cr_expect_str_eq(start, "team-000/app-config-12");
        cr_expect(after);
        codec_buf_free(&b);
        kf_arena_free(a);
    }
}

Test(continue_token, malformed_tokens_say_why)
{
    static const struct {
        const char *token, *why;
    } cases[] = {
        {"not*base64", "illegal base64 data at input byte 3"},
        {"e30", "server does not recognize this encoded version"},          /* {} */
        {"eyJ2IjoieCJ9", "server does not recognize this encoded version"}, /* {"v":"x"} */
        /* {"v":"meta.k8s.io/v1","rv":0,"start":"a"} */
        {"eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MCwic3RhcnQiOiJhIn0", "incorrect encoded start"},
        /* {"v":"meta.k8s.io/v1","rv":5,"start":""} */
        {"eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6NSwic3RhcnQiOiIifQ", "encoded start key empty"},
        /* {"v":"meta.k8s.io/v1","rv":5,"start":"../x"} */
        {"eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6NSwic3RhcnQiOiIuLi94In0", "../x"},
        {"W10", "cannot unmarshal"}, /* [] */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct kf_arena *a = kf_arena_new(256);
        int64_t rv;
        char *start, err[256] = "";
        bool after;
        cr_expect_lt(
            codec_continue_decode(cases[i].token, a, &rv, &start, &after, err, sizeof(err)), 0,
            "case %zu", i);
        cr_expect_not_null(strstr(err, cases[i].why), "case %zu: %s", i, err);
        kf_arena_free(a);
    }
}
