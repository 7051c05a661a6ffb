/*
 * The upstream pool over plaintext HTTP/1.1 against the in-process server:
 * chunked and close-delimited bodies, keep-alive reuse, backpressure by the
 * high-water mark, cancel, malformed responses.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "test_upstream_harness.h"

static struct tfx f;

static void setup_h1(void)
{
    tfx_init(&f);
    f.cfg.proto = LB_UPSTREAM_HTTP1;
    ts_start(&f.s[0], f.base, "s1", true);
}

static void up_h1(void)
{
    tfx_up(&f, f.s[0].addr, NULL);
}

static void teardown(void)
{
    tfx_done(&f);
}

TestSuite(upstream_h1, .init = setup_h1, .fini = teardown);

/* Run one request to completion; asserts it ended. */
static void run(struct tc_req *r, const char *method, const char *path,
                const struct lb_ureq_spec *spec)
{
    tc_start(f.up, f.pool, r, method, path, spec);
    cr_assert(tc_wait(f.base, &r->ended, 2000), "%s %s did not end", method, path);
}

Test(upstream_h1, chunked_responses_on_a_kept_alive_connection)
{
    struct tc_req r[2] = {0};

    up_h1();
    for (int i = 0; i < 2; i++) {
        run(&r[i], "GET", "/ok", NULL);
        cr_assert_eq(r[i].error, 0);
        cr_assert_eq(r[i].status, 200);
        cr_assert_str_eq(r[i].body, "s1:/ok");
        /* decoded here: the consumer gets the body, not this hop's framing */
        cr_assert_null(strstr(r[i].head, "Transfer-Encoding"), "%s", r[i].head);
    }
    cr_assert_eq(f.s[0].conns, 1);
    cr_assert_eq(f.s[0].requests, 2);
    cr_assert_eq(atomic_load(&tfx_server(&f, 0)->up.conns_total[LB_UP_H1]), 1);
    cr_assert(strstr(f.s[0].last_headers, "Host: 127.0.0.1:"), "%s", f.s[0].last_headers);
}

Test(upstream_h1, request_bodies_whole_and_chunked)
{
    struct tc_req whole = {0}, streamed = {0};
    struct lb_ureq_spec w = {.body = "{\"a\":1}", .body_len = 7};
    struct lb_ureq_spec s = {.body_streaming = true};
    const struct lb_uhdr h[] = {{"Connection", 10, "keep-alive", 10}, {"X-Kept", 6, "yes", 3}};

    up_h1();
    w.headers = h;
    w.n_headers = KF_ARRAY_SIZE(h);
    run(&whole, "POST", "/ok", &w);
    cr_assert_eq(whole.error, 0);
    cr_assert_str_eq(f.s[0].last_method, "POST");
    cr_assert_str_eq(f.s[0].last_body, "{\"a\":1}");
    cr_assert(strstr(f.s[0].last_headers, "Content-Length: 7\n"), "%s", f.s[0].last_headers);
    cr_assert(strstr(f.s[0].last_headers, "x-kept: yes\n"), "%s", f.s[0].last_headers);
    cr_assert_null(strstr(f.s[0].last_headers, "onnection"), "%s", f.s[0].last_headers);

    tc_start(f.up, f.pool, &streamed, "PATCH", "/ok", &s);
    cr_assert_eq(lb_ureq_write_body(streamed.req, "abc", 3), 0);
    t_run_for(f.base, 20);
    cr_assert_eq(lb_ureq_write_body(streamed.req, "def", 3), 0);
    cr_assert_eq(lb_ureq_end_body(streamed.req), 0);
    cr_assert(tc_wait(f.base, &streamed.ended, 2000));
    cr_assert_eq(streamed.error, 0);
    cr_assert_str_eq(f.s[0].last_body, "abcdef");
    cr_assert(strstr(f.s[0].last_headers, "Transfer-Encoding: chunked\n"));
}

Test(upstream_h1, unconsumed_bytes_stop_the_reading)
{
    struct tc_req big = {.manual = true}, other = {0};

    f.cfg.h1_high_water = 16384;
    up_h1();
    tc_start(f.up, f.pool, &big, "GET", "/big", NULL);
    cr_assert(tc_wait_int(f.base, &big.n_heads, 1, 2000));
    t_run_for(f.base, 100);
    cr_assert_not(big.ended);
    /* the high-water mark plus at most one parse slice */
    cr_assert_geq(big.received, 16384);
    cr_assert_lt(big.received, 2 * 16384);
    /* another request gets its own connection and is not held back */
    run(&other, "GET", "/ok", NULL);
    cr_assert_eq(other.error, 0);
    cr_assert_eq(f.s[0].conns, 2);
    for (uint64_t end = kf_now_ms() + 3000; !big.ended && kf_now_ms() < end;) {
        tc_consume(&big, big.unconsumed);
        t_run_for(f.base, 2);
    }
    cr_assert(big.ended);
    cr_assert_eq(big.error, 0);
    cr_assert_eq(big.received, 256 * 1024);
}

Test(upstream_h1, body_until_close)
{
    struct tc_req r = {0}, next = {0};

    up_h1();
    run(&r, "GET", "/eof", NULL);
    cr_assert_eq(r.error, 0);
    cr_assert_str_eq(r.body, "body until the close");
    cr_assert_null(strstr(r.head, "Connection"), "%s", r.head);
    run(&next, "GET", "/ok", NULL);
    cr_assert_eq(next.error, 0);
    cr_assert_eq(f.s[0].conns, 2); /* the closed connection was not reused */
}

Test(upstream_h1, informational_heads_are_skipped)
{
    struct tc_req r = {0};

    up_h1();
    run(&r, "GET", "/continue", NULL);
    cr_assert_eq(r.error, 0);
    cr_assert_eq(r.n_heads, 1);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "ok");
}

Test(upstream_h1, malformed_response_is_a_protocol_error)
{
    struct tc_req r = {0};

    up_h1();
    run(&r, "GET", "/bad", NULL);
    cr_assert_eq(r.error, -EPROTO);
    cr_assert_eq(r.n_heads, 0);
}

/* A response of n headers "X-N: v" (too many), or of one header value of len bytes. */
static char *head_with(int n, size_t len)
{
    size_t cap = 64 + (size_t)n * 16 + len;
    char *p = calloc(1, cap);
    size_t used = (size_t)snprintf(p, cap, "HTTP/1.1 200 OK\r\n");

    for (int i = 0; i < n; i++)
        used += (size_t)snprintf(p + used, cap - used, "X-%d: v\r\n", i);
    if (len) {
        used += (size_t)snprintf(p + used, cap - used, "X-Long: ");
        memset(p + used, 'a', len);
        used += len;
    }
    snprintf(p + used, cap - used, "\r\nContent-Length: 0\r\n\r\n");
    return p;
}

Test(upstream_h1, malformed_responses_fail_cleanly)
{
    char *many = head_with(200, 0), *longv = head_with(0, 70000);
    const struct {
        const char *raw;
        int error;
    } cases[] = {
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", -EPROTO},
        {"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n", -EPROTO},
        {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n", -EPROTO},
        {"\x01\x02 not http at all\r\n\r\n", -EPROTO},
        {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", -ECONNRESET},
        {"HTTP/1.1 200 OK\r\nContent-Len", -ECONNRESET},
        {"", -ECONNRESET},
        {many, -EPROTO},
        {longv, -EPROTO},
    };

    up_h1();
    for (size_t i = 0; i < KF_ARRAY_SIZE(cases); i++) {
        struct tc_req r = {0};
        f.s[0].raw = cases[i].raw;
        run(&r, "GET", "/ok", NULL);
        cr_assert_eq(r.error, cases[i].error, "case %zu: error %d", i, r.error);
    }
    cr_assert_eq(atomic_load(&tfx_server(&f, 0)->up.streams_open), 0);
    free(many);
    free(longv);
}

Test(upstream_h1, close_mid_body_is_an_error)
{
    struct tc_req r = {0};

    up_h1();
    run(&r, "GET", "/closemid", NULL);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "partial");
    cr_assert_eq(r.error, -ECONNRESET);
}

Test(upstream_h1, cancel_closes_the_connection)
{
    struct tc_req r = {0};

    up_h1();
    tc_start(f.up, f.pool, &r, "GET", "/hang", NULL);
    cr_assert(tc_wait_int(f.base, &r.n_heads, 1, 2000));
    lb_ureq_cancel(r.req);
    cr_assert(tc_wait_int(f.base, &f.s[0].client_closes, 1, 1000));
    cr_assert_not(r.ended);
}

Test(upstream_h1, idle_connections_beyond_the_pool_close)
{
    struct tc_req r[3] = {0};

    f.cfg.h1_idle_per_server = 1;
    up_h1();
    for (int i = 0; i < 3; i++)
        tc_start(f.up, f.pool, &r[i], "GET", "/slow", NULL);
    for (int i = 0; i < 3; i++) {
        cr_assert(tc_wait(f.base, &r[i].ended, 3000));
        cr_assert_eq(r[i].error, 0);
        cr_assert_str_eq(r[i].body, "chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n");
    }
    cr_assert_eq(f.s[0].conns, 3); /* one request per connection at a time */
    cr_assert(tc_wait_int(f.base, &f.s[0].client_closes, 2, 1000));
    cr_assert_eq(f.s[0].open_conns, 1);
}
