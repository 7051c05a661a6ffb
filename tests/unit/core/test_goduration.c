/* kf_go_duration_parse against what Go's time.ParseDuration answers (values and error texts
 * as Go 1.22 prints them). */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdint.h>

#include "core/core.h"

static int64_t ok(const char *s)
{
    int64_t v = -42;
    char err[200] = "";

    cr_assert_eq(kf_go_duration_parse(s, &v, err, sizeof(err)), 0, "%s refused: %s", s, err);
    return v;
}

static const char *bad(const char *s)
{
    static char err[300];
    int64_t v = 0;

    cr_assert_eq(kf_go_duration_parse(s, &v, err, sizeof(err)), -EINVAL, "%s accepted", s);
    return err;
}

Test(goduration, valid_values)
{
    cr_expect_eq(ok("0"), 0);
    cr_expect_eq(ok("-0"), 0);
    cr_expect_eq(ok("+0"), 0);
    cr_expect_eq(ok("5s"), INT64_C(5000000000));
    cr_expect_eq(ok("30s"), INT64_C(30000000000));
    cr_expect_eq(ok("-5s"), INT64_C(-5000000000));
    cr_expect_eq(ok("+5s"), INT64_C(5000000000));
    cr_expect_eq(ok("1.5h"), INT64_C(5400000000000));
    cr_expect_eq(ok(".5m"), INT64_C(30000000000));
    cr_expect_eq(ok("1.s"), INT64_C(1000000000));
    cr_expect_eq(ok("1h2m3s4ms5us6ns"), INT64_C(3723004005006));
    cr_expect_eq(ok("3\xc2\xb5s"), 3000);
    cr_expect_eq(ok("3\xce\xbcs"), 3000);
    cr_expect_eq(ok("0s"), 0);
    cr_expect_eq(ok("00010s"), INT64_C(10000000000));
    cr_expect_eq(ok("9223372036854775807ns"), INT64_MAX);
    cr_expect_eq(ok("-9223372036854775808ns"), INT64_MIN);
    cr_expect_eq(ok("0.100000000000000000000h"), INT64_C(360000000000));
    cr_expect_eq(ok("2562047h"), INT64_C(9223369200000000000));
}

Test(goduration, go_error_texts)
{
    cr_expect_str_eq(bad(""), "time: invalid duration \"\"");
    cr_expect_str_eq(bad("-"), "time: invalid duration \"-\"");
    cr_expect_str_eq(bad("abc"), "time: invalid duration \"abc\"");
    cr_expect_str_eq(bad("."), "time: invalid duration \".\"");
    cr_expect_str_eq(bad(".s"), "time: invalid duration \".s\"");
    cr_expect_str_eq(bad("+.s"), "time: invalid duration \"+.s\"");
    cr_expect_str_eq(bad("3"), "time: missing unit in duration \"3\"");
    cr_expect_str_eq(bad("1s2"), "time: missing unit in duration \"1s2\"");
    cr_expect_str_eq(bad("1d"), "time: unknown unit \"d\" in duration \"1d\"");
    cr_expect_str_eq(bad("1 s"), "time: unknown unit \" s\" in duration \"1 s\"");
    cr_expect_str_eq(bad("9223372036854775808ns"),
                     "time: invalid duration \"9223372036854775808ns\"");
    cr_expect_str_eq(bad("3000000h"), "time: invalid duration \"3000000h\"");
    cr_expect_str_eq(bad("99999999999999999999s"),
                     "time: invalid duration \"99999999999999999999s\"");
    cr_expect_str_eq(bad("1\"s"), "time: unknown unit \"\\\"s\" in duration \"1\\\"s\"");
    cr_expect_str_eq(bad("\xc3\xa9"), "time: invalid duration \"\\xc3\\xa9\"");
    cr_expect_str_eq(bad("1\tx"), "time: unknown unit \"\\x09x\" in duration \"1\\x09x\"");
}

Test(goduration, error_buffer_may_be_absent_or_short)
{
    int64_t v;
    char tiny[8];

    cr_expect_eq(kf_go_duration_parse("nope", &v, NULL, 0), -EINVAL);
    cr_expect_eq(kf_go_duration_parse("nope", &v, tiny, sizeof(tiny)), -EINVAL);
    cr_expect_str_eq(tiny, "time: i");
}
