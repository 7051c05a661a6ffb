/* JSON: Go's escaping, the DOM parser's errors, Go's indentation, Status bodies. */
#include "loadgen/kube-sim/kube_sim.h"

#include "fixture.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void expect_escaped(const char *in, size_t n, const char *want)
{
    struct ks_sb sb;
    ks_sb_init(&sb, 16);
    ks_sb_json_str(&sb, in, n);
    cr_expect_eq(sb.len, strlen(want), "got %.*s want %s", (int)sb.len, sb.p, want);
    cr_expect(memcmp(sb.p, want, sb.len) == 0, "got %.*s want %s", (int)sb.len, sb.p, want);
    ks_sb_free(&sb);
}

Test(json, go_escaping)
{
    expect_escaped("a<b>&c", 6, "\"a\\u003cb\\u003e\\u0026c\"");
    expect_escaped("q\"\\\n\r\t", 6, "\"q\\\"\\\\\\n\\r\\t\"");
    expect_escaped("\x01\x1f", 2, "\"\\u0001\\u001f\"");
    expect_escaped("\xff", 1, "\"\\ufffd\"");
    expect_escaped("\xe2\x80\xa8", 3, "\"\\u2028\"");
    expect_escaped("h\xc3\xa9", 3, "\"h\xc3\xa9\"");
    expect_escaped("k\0", 2, "\"k\\u0000\"");
}

static void expect_parse_error(const char *text, const char *want)
{
    struct kf_arena *a = kf_arena_new(1024);
    struct ks_json *j;
    char err[200];
    cr_expect_eq(ks_json_parse(a, text, strlen(text), &j, err, sizeof(err)), -EINVAL, "%s", text);
    cr_expect_str_eq(err, want, "input %s", text);
    kf_arena_free(a);
}

Test(json, parse_errors_in_go_words)
{
    expect_parse_error("{bad", "invalid character 'b' looking for beginning of object key string");
    expect_parse_error("{\"a\":1", "unexpected end of JSON input");
    expect_parse_error("", "unexpected end of JSON input");
    expect_parse_error("[1,]", "invalid character ']' looking for beginning of value");
    expect_parse_error("{\"a\" 1}", "invalid character '1' after object key");
    expect_parse_error("01", "invalid character '1' after top-level value");
    expect_parse_error("\"a\x01\"", "invalid character '\\x01' in string literal");
    expect_parse_error("tru", "unexpected end of JSON input");
}

Test(json, deep_nesting_is_refused)
{
    char deep[2000];
    memset(deep, '[', sizeof(deep) - 1);
    deep[sizeof(deep) - 1] = '\0';
    expect_parse_error(deep, "exceeded max depth of 256");
}

Test(json, round_trip_and_unescape)
{
    const char *text =
        "{\"a\":[1,-2.5e3,true,false,null],\"s\":\"x\\u00e9\\ud83d\\ude00\\n\",\"o\":{}}";
    struct kf_arena *a = kf_arena_new(1024);
    struct ks_json *j;
    char err[200];
    cr_assert_eq(ks_json_parse(a, text, strlen(text), &j, err, sizeof(err)), 0, "%s", err);
    cr_expect_str_eq(ks_json_get_str(j, "s"), "x\xc3\xa9\xf0\x9f\x98\x80\n");
    struct ks_sb sb;
    ks_sb_init(&sb, 64);
    ks_json_write(&sb, j);
    cr_expect_str_eq(
        ks_sb_cstr(&sb),
        "{\"a\":[1,-2.5e3,true,false,null],\"s\":\"x\xc3\xa9\xf0\x9f\x98\x80\\n\",\"o\":{}}");
    ks_sb_free(&sb);
    kf_arena_free(a);
}

/* The recorded 404: our Status, indented as for curl, is byte for byte the apiserver's. */
Test(json, status_not_found_matches_recording)
{
    size_t n;
    char *want = ks_test_fixture("recordings", "get-missing-json.body.bin", &n);
    struct ks_status st;
    struct ks_sb c, p;
    ks_status_init(&st, 404, "NotFound", "pods \"does-not-exist\" not found");
    ks_status_details(&st, "does-not-exist", "", "pods");
    ks_sb_init(&c, 256);
    ks_sb_init(&p, 256);
    ks_status_json(&c, &st);
    ks_json_indent(&p, c.p, c.len);
    cr_expect_eq(p.len, n);
    cr_expect(memcmp(p.p, want, n) == 0, "got\n%.*s", (int)p.len, p.p);
    ks_sb_free(&c);
    ks_sb_free(&p);
    free(want);
}

Test(json, status_protobuf_matches_recording)
{
    size_t n;
    char *want = ks_test_fixture("recordings", "get-missing-protobuf.body.bin", &n);
    struct ks_status st;
    struct ks_sb sb;
    ks_status_init(&st, 404, "NotFound", "pods \"does-not-exist\" not found");
    ks_status_details(&st, "does-not-exist", "", "pods");
    ks_sb_init(&sb, 256);
    ks_status_pb(&sb, &st);
    cr_expect_eq(sb.len, n);
    cr_expect(memcmp(sb.p, want, n) == 0);
    ks_sb_free(&sb);
    free(want);
}

Test(json, watch_error_event_matches_recording)
{
    size_t n;
    char *want = ks_test_fixture("recordings", "watch-too-old-protobuf.body.bin", &n);
    struct ks_status st;
    struct ks_sb sb;
    ks_status_init(&st, 410, "Expired", "too old resource version: 1 (209)");
    ks_sb_init(&sb, 256);
    ks_status_watch_event(&sb, &st, true);
    cr_expect_eq(sb.len, n);
    cr_expect(memcmp(sb.p, want, n) == 0);
    sb.len = 0;
    free(want);
    want = ks_test_fixture("recordings", "watch-too-old-json.body.bin", &n);
    ks_status_watch_event(&sb, &st, false);
    cr_expect_eq(sb.len, n);
    cr_expect(memcmp(sb.p, want, n) == 0, "got %.*s", (int)sb.len, sb.p);
    ks_sb_free(&sb);
    free(want);
}

Test(json, human_duration)
{
    char b[32];
    static const struct {
        int64_t s;
        const char *want;
    } cases[] = {{0, "0s"},      {59, "59s"},    {119, "119s"},    {120, "2m"},
                 {150, "2m30s"}, {3600, "60m"},  {10800, "3h"},    {11100, "3h5m"},
                 {86400, "24h"}, {172800, "2d"}, {190800, "2d5h"}, {-5, "<invalid>"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ks_human_duration(b, sizeof(b), cases[i].s);
        cr_expect_str_eq(b, cases[i].want, "%lld", (long long)cases[i].s);
    }
}
