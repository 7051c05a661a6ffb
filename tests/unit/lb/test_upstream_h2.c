/*
 * The upstream pool over HTTP/2 (h2c with prior knowledge) against the
 * in-process nghttp2 server: balancing, stream reuse and limits, flow
 * control, retries, liveness, health, cancel.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "test_upstream_harness.h"

static struct tfx f;

static void one_server(void)
{
    tfx_init(&f);
    ts_start(&f.s[0], f.base, "s1", false);
}

static void two_servers(void)
{
    one_server();
    ts_start(&f.s[1], f.base, "s2", false);
}

static void teardown(void)
{
    tfx_done(&f);
}

TestSuite(upstream_h2, .fini = teardown);

Test(upstream_h2, get_returns_head_and_body)
{
    struct tc_req r = {0};

    one_server();
    tfx_up(&f, f.s[0].addr, NULL);
    tc_start(f.up, f.pool, &r, "GET", "/ok", NULL);
    cr_assert(tc_wait(f.base, &r.ended, 2000));
    cr_assert_eq(r.error, 0);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.n_heads, 1);
    cr_assert_str_eq(r.body, "s1:/ok");
    cr_assert(strstr(r.head, "x-server: s1\n"), "head: %s", r.head);
    cr_assert_str_eq(f.s[0].last_method, "GET");
    cr_assert(strstr(f.s[0].last_headers, ":authority: 127.0.0.1:"), "%s", f.s[0].last_headers);
    cr_assert(strstr(f.s[0].last_headers, ":scheme: http\n"));
}

Test(upstream_h2, requests_alternate_between_servers)
{
    struct tc_req r[4] = {0};
    const char *seen[4];

    two_servers();
    tfx_up(&f, f.s[0].addr, f.s[1].addr);
    for (int i = 0; i < 4; i++) {
        tc_start(f.up, f.pool, &r[i], "GET", "/ok", NULL);
        cr_assert(tc_wait(f.base, &r[i].ended, 2000));
        cr_assert_eq(r[i].error, 0);
        seen[i] = r[i].body;
    }
    cr_assert_str_eq(seen[0], "s1:/ok");
    cr_assert_str_eq(seen[1], "s2:/ok");
    cr_assert_str_eq(seen[2], "s1:/ok");
    cr_assert_str_eq(seen[3], "s2:/ok");
    /* balanced per request, yet each server got one connection */
    cr_assert_eq(f.s[0].conns, 1);
    cr_assert_eq(f.s[1].conns, 1);
}

Test(upstream_h2, sequential_requests_reuse_one_connection)
{
    struct tc_req r[3] = {0};

    one_server();
    tfx_up(&f, f.s[0].addr, NULL);
    for (int i = 0; i < 3; i++) {
        tc_start(f.up, f.pool, &r[i], "GET", "/ok", NULL);
        cr_assert(tc_wait(f.base, &r[i].ended, 2000));
        cr_assert_eq(r[i].error, 0);
    }
    cr_assert_eq(f.s[0].conns, 1);
    cr_assert_eq(f.s[0].last_stream_id, 5); /* streams 1, 3, 5 on the same connection */
    cr_assert_eq(atomic_load(&tfx_server(&f, 0)->up.streams_total), 3);
    cr_assert_eq(atomic_load(&tfx_server(&f, 0)->up.conns_total[LB_UP_H2]), 1);
}

Test(upstream_h2, concurrent_streams_spread_over_conns_per_server)
{
    struct tc_req r[4] = {0};

    one_server();
    f.cfg.conns_per_server = 2;
    tfx_up(&f, f.s[0].addr, NULL);
    for (int i = 0; i < 4; i++)
        tc_start(f.up, f.pool, &r[i], "GET", "/slow", NULL);
    for (int i = 0; i < 4; i++) {
        cr_assert(tc_wait(f.base, &r[i].ended, 3000));
        cr_assert_eq(r[i].error, 0);
        cr_assert_str_eq(r[i].body, "chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n");
    }
    cr_assert_eq(f.s[0].conns, 2);
}

/* A server that takes one stream per connection: r[1] starts while r[0] holds one. */
static void two_on_one_stream_server(struct tc_req r[2], uint32_t max_conns)
{
    one_server();
    f.s[0].max_streams = 1;
    f.cfg.conns_per_server = 1;
    f.cfg.max_conns_per_server = max_conns;
    tfx_up(&f, f.s[0].addr, NULL);
    /* the first connection is up (and its limit known) before the second request */
    tc_start(f.up, f.pool, &r[0], "GET", "/slow", NULL);
    cr_assert(tc_wait_int(f.base, &f.s[0].requests, 1, 2000));
    tc_start(f.up, f.pool, &r[1], "GET", "/slow", NULL);
    cr_assert(tc_wait(f.base, &r[1].ended, 3000));
    cr_assert(tc_wait(f.base, &r[0].ended, 3000));
    cr_assert_eq(r[0].error, 0);
    cr_assert_eq(r[1].error, 0);
}

Test(upstream_h2, server_stream_limit_opens_another_connection)
{
    struct tc_req r[2] = {0};

    two_on_one_stream_server(r, 4);
    cr_assert_eq(f.s[0].conns, 2);
    cr_assert_lt(r[1].head_ms, r[0].end_ms); /* both streams ran at once */
}

Test(upstream_h2, full_connections_at_the_cap_queue_requests)
{
    struct tc_req r[2] = {0};

    two_on_one_stream_server(r, 1);
    cr_assert_eq(f.s[0].conns, 1);
    cr_assert_leq(r[0].end_ms, r[1].head_ms); /* the second waited for the first */
}

Test(upstream_h2, unconsumed_stream_stalls_alone)
{
    struct tc_req big = {.manual = true}, small = {0};

    one_server();
    f.cfg.conns_per_server = 1;
    f.cfg.stream_window = 16384;
    tfx_up(&f, f.s[0].addr, NULL);
    tc_start(f.up, f.pool, &big, "GET", "/big", NULL);
    cr_assert(tc_wait_int(f.base, &big.n_heads, 1, 2000));
    tc_start(f.up, f.pool, &small, "GET", "/ok", NULL);
    cr_assert(tc_wait(f.base, &small.ended, 2000));
    cr_assert_eq(small.error, 0);
    t_run_for(f.base, 50);
    /* the big stream got its window and no more, on the same connection */
    cr_assert_eq(f.s[0].conns, 1);
    cr_assert_not(big.ended);
    cr_assert_eq(big.received, 16384);
    for (uint64_t end = kf_now_ms() + 3000; !big.ended && kf_now_ms() < end;) {
        cr_assert_leq(big.unconsumed, 16384); /* never more than the window in flight */
        tc_consume(&big, big.unconsumed);
        t_run_for(f.base, 2);
    }
    cr_assert(big.ended);
    cr_assert_eq(big.error, 0);
    cr_assert_eq(big.received, 256 * 1024);
}

Test(upstream_h2, refused_stream_is_retried_on_the_other_server)
{
    struct tc_req r = {0};

    two_servers();
    f.s[0].mode = TS_REFUSE_ALL;
    tfx_up(&f, f.s[0].addr, f.s[1].addr);
    tc_start(f.up, f.pool, &r, "GET", "/ok", NULL);
    cr_assert(tc_wait(f.base, &r.ended, 2000));
    cr_assert_eq(r.error, 0);
    cr_assert_str_eq(r.body, "s2:/ok");
    cr_assert_eq(r.n_heads, 1);
    cr_assert_eq(f.s[0].requests, 1);
    cr_assert_eq(atomic_load(&tfx_server(&f, 0)->up.retries), 1);
}

Test(upstream_h2, post_is_not_retried_once_sent)
{
    struct tc_req r = {0};
    struct lb_ureq_spec spec = {.body = "{}", .body_len = 2};

    two_servers();
    f.s[0].mode = TS_REFUSE_ALL;
    tfx_up(&f, f.s[0].addr, f.s[1].addr);
    tc_start(f.up, f.pool, &r, "POST", "/ok", &spec);
    cr_assert(tc_wait(f.base, &r.ended, 2000));
    cr_assert_eq(r.error, -ECONNREFUSED);
    cr_assert_eq(r.n_heads, 0);
    cr_assert_eq(f.s[0].requests, 1);
    cr_assert_eq(f.s[1].requests, 0);
    cr_assert_eq(atomic_load(&tfx_server(&f, 0)->up.stream_errors), 1);
}

Test(upstream_h2, connect_refused_is_retried_and_reported)
{
    struct tc_req get = {0}, post = {0};
    struct lb_ureq_spec spec = {.body = "x", .body_len = 1};
    char closed[32];

    snprintf(closed, sizeof(closed), "127.0.0.1:%u", t_closed_port());
    tfx_init(&f);
    ts_start(&f.s[1], f.base, "s2", false);
    tfx_up(&f, closed, f.s[1].addr);
    tc_start(f.up, f.pool, &get, "GET", "/ok", NULL);
    cr_assert(tc_wait(f.base, &get.ended, 2000));
    cr_assert_eq(get.error, 0);
    cr_assert_str_eq(get.body, "s2:/ok");
    cr_assert_geq(atomic_load(&tfx_server(&f, 0)->up.connect_failures), 1);
    cr_assert_geq(atomic_load(&tfx_server(&f, 0)->connect_failures), 1); /* passive health */
    /* nothing of a POST left kfront when the connect failed: it may go elsewhere */
    tc_start(f.up, f.pool, &post, "POST", "/ok", &spec);
    cr_assert(tc_wait(f.base, &post.ended, 2000));
    cr_assert_eq(post.error, 0);
    cr_assert_str_eq(f.s[1].last_body, "x");
}

Test(upstream_h2, retry_happens_only_once)
{
    struct tc_req r = {0};

    two_servers();
    f.s[0].mode = TS_REFUSE_ALL;
    f.s[1].mode = TS_REFUSE_ALL;
    tfx_up(&f, f.s[0].addr, f.s[1].addr);
    tc_start(f.up, f.pool, &r, "GET", "/ok", NULL);
    cr_assert(tc_wait(f.base, &r.ended, 2000));
    cr_assert_eq(r.error, -ECONNREFUSED);
    cr_assert_eq(f.s[0].requests + f.s[1].requests, 2);
}

Test(upstream_h2, goaway_below_the_stream_is_retried)
{
    struct tc_req r = {0}, more[2] = {0};

    two_servers();
    f.s[0].mode = TS_GOAWAY_ALL;
    tfx_up(&f, f.s[0].addr, f.s[1].addr);
    tc_start(f.up, f.pool, &r, "GET", "/ok", NULL);
    cr_assert(tc_wait(f.base, &r.ended, 2000));
    cr_assert_eq(r.error, 0, "error %d", r.error);
    cr_assert_str_eq(r.body, "s2:/ok");
    /* the connection that got GOAWAY takes no new stream: s1 gets a new one */
    f.s[0].mode = TS_BY_PATH;
    for (int i = 0; i < 2; i++) {
        tc_start(f.up, f.pool, &more[i], "GET", "/ok", NULL);
        cr_assert(tc_wait(f.base, &more[i].ended, 2000));
        cr_assert_eq(more[i].error, 0);
    }
    cr_assert_eq(f.s[0].conns, 2);
    cr_assert_eq(f.s[0].requests, 2);
}

/* One server, PING interval and timeout of ms each, a request to path. */
static void start_pinging(struct tc_req *r, const char *path, uint32_t ms)
{
    one_server();
    f.cfg.ping_interval_ms = ms;
    f.cfg.ping_timeout_ms = ms;
    tfx_up(&f, f.s[0].addr, NULL);
    tc_start(f.up, f.pool, r, "GET", path, NULL);
    cr_assert(tc_wait_int(f.base, &r->n_heads, 1, 2000));
}

Test(upstream_h2, half_open_connection_dies_by_ping_timeout)
{
    struct tc_req r = {0};

    start_pinging(&r, "/halfopen", 100);
    cr_assert(tc_wait(f.base, &r.ended, 2000));
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.error, -ETIMEDOUT);
    uint64_t took = r.end_ms - r.head_ms;
    cr_assert_geq(took, 190, "ended after %llu ms", (unsigned long long)took);
    cr_assert_leq(took, 200 + 150, "ended after %llu ms", (unsigned long long)took);
    cr_assert_eq(atomic_load(&tfx_server(&f, 0)->up.ping_timeouts), 1);
}

Test(upstream_h2, answered_pings_keep_a_quiet_stream)
{
    struct tc_req r = {0};

    start_pinging(&r, "/hang", 50);
    t_run_for(f.base, 400);
    cr_assert_not(r.ended);
    cr_assert_eq(atomic_load(&tfx_server(&f, 0)->up.ping_timeouts), 0);
    lb_ureq_cancel(r.req); /* r is on this stack: nothing may reach it from the teardown */
}

Test(upstream_h2, server_going_down_ends_its_streams)
{
    struct tc_req r = {0};
    struct lb_server *s1;

    two_servers();
    tfx_up(&f, f.s[0].addr, f.s[1].addr);
    s1 = tfx_server(&f, 0);
    tc_start(f.up, f.pool, &r, "GET", "/hang", NULL);
    cr_assert(tc_wait_int(f.base, &r.n_heads, 1, 2000));
    atomic_store(&s1->fall, 1);
    lb_server_record(s1, false, "test: marked down");
    cr_assert_eq(lb_server_health(s1), LB_HEALTH_DOWN);
    cr_assert(tc_wait(f.base, &r.ended, 500));
    cr_assert_eq(r.error, -ECONNRESET);
    cr_assert(tc_wait_int(f.base, &f.s[0].client_closes, 1, 500));
    cr_assert_eq(atomic_load(&s1->up.conns_open[LB_UP_H2]), 0);
}

Test(upstream_h2, drained_server_finishes_streams_then_closes)
{
    struct tc_req slow = {0}, next = {0};
    struct lb_server *s1;

    two_servers();
    tfx_up(&f, f.s[0].addr, f.s[1].addr);
    s1 = tfx_server(&f, 0);
    tc_start(f.up, f.pool, &slow, "GET", "/slow", NULL);
    cr_assert(tc_wait_int(f.base, &slow.n_heads, 1, 2000));
    atomic_store(&s1->admin_state, CONFIG_SERVER_DRAIN);
    t_run_for(f.base, 50); /* the health poll sees it */
    tc_start(f.up, f.pool, &next, "GET", "/ok", NULL);
    cr_assert(tc_wait(f.base, &next.ended, 2000));
    cr_assert_str_eq(next.body, "s2:/ok");
    cr_assert(tc_wait(f.base, &slow.ended, 2000));
    cr_assert_eq(slow.error, 0);
    cr_assert(tc_wait_int(f.base, &f.s[0].client_closes, 1, 500));
}

Test(upstream_h2, cancel_resets_the_stream)
{
    struct tc_req r = {0}, after = {0};

    one_server();
    tfx_up(&f, f.s[0].addr, NULL);
    tc_start(f.up, f.pool, &r, "GET", "/never", NULL);
    cr_assert(tc_wait_int(f.base, &f.s[0].requests, 1, 2000));
    lb_ureq_cancel(r.req);
    cr_assert(tc_wait_int(f.base, &f.s[0].rst_cancel, 1, 1000));
    cr_assert_not(r.ended); /* no callback after a cancel */
    /* the connection stays usable */
    tc_start(f.up, f.pool, &after, "GET", "/ok", NULL);
    cr_assert(tc_wait(f.base, &after.ended, 2000));
    cr_assert_eq(after.error, 0);
    cr_assert_eq(f.s[0].conns, 1);
}

Test(upstream_h2, cancel_from_inside_on_data)
{
    struct tc_req r = {.cancel_in_data = true};

    one_server();
    tfx_up(&f, f.s[0].addr, NULL);
    tc_start(f.up, f.pool, &r, "GET", "/slow", NULL);
    cr_assert(tc_wait(f.base, &r.ended, 2000));
    cr_assert(tc_wait_int(f.base, &f.s[0].rst_cancel, 1, 1000));
    cr_assert_eq(r.received, 8); /* "chunk 0\n", then nothing */
    t_run_for(f.base, 100);
    cr_assert_eq(r.received, 8);
}

Test(upstream_h2, cancel_while_queued)
{
    struct tc_req r = {0};

    one_server();
    tfx_up(&f, f.s[0].addr, NULL);
    tc_start(f.up, f.pool, &r, "GET", "/ok", NULL);
    lb_ureq_cancel(r.req); /* still waiting for the connection */
    t_run_for(f.base, 100);
    cr_assert_not(r.ended);
    cr_assert_eq(f.s[0].requests, 0);
    cr_assert_eq(atomic_load(&tfx_server(&f, 0)->up.queued), 0);
}

Test(upstream_h2, connection_closed_mid_body_is_an_error)
{
    struct tc_req r = {0};

    two_servers();
    tfx_up(&f, f.s[0].addr, f.s[1].addr);
    tc_start(f.up, f.pool, &r, "GET", "/closemid", NULL);
    cr_assert(tc_wait(f.base, &r.ended, 2000));
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "partial");
    cr_assert_eq(r.error, -ECONNRESET);
    cr_assert_eq(f.s[1].requests, 0); /* response bytes arrived: never retried */
}

Test(upstream_h2, silent_server_times_out_and_retries)
{
    struct tc_req r = {0};
    char silent[32];
    uint16_t port;
    int fd = t_listen(&port); /* the kernel accepts; nobody speaks */

    snprintf(silent, sizeof(silent), "127.0.0.1:%u", port);
    tfx_init(&f);
    ts_start(&f.s[1], f.base, "s2", false);
    f.cfg.connect_timeout_ms = 100;
    tfx_up(&f, silent, f.s[1].addr);
    tc_start(f.up, f.pool, &r, "GET", "/ok", NULL);
    cr_assert(tc_wait(f.base, &r.ended, 2000));
    cr_assert_eq(r.error, 0);
    cr_assert_str_eq(r.body, "s2:/ok");
    cr_assert_eq(atomic_load(&tfx_server(&f, 0)->up.connect_failures), 1);
    cr_assert_eq(lb_server_health(tfx_server(&f, 0)), LB_HEALTH_DOWN); /* passive */
    close(fd);
}

Test(upstream_h2, a_server_that_is_not_http2_fails_the_connect)
{
    struct tc_req r = {0};
    struct t_http raw;

    tfx_init(&f);
    t_http_start_raw(&raw, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", false);
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", raw.port);
    tfx_up(&f, addr, NULL);
    tc_start(f.up, f.pool, &r, "GET", "/ok", NULL);
    cr_assert(tc_wait(f.base, &r.ended, 2000));
    cr_assert_eq(r.error, -EPROTO);
    cr_assert_eq(atomic_load(&tfx_server(&f, 0)->up.connect_failures), 1);
    t_http_stop(&raw);
}

Test(upstream_h2, whole_and_streaming_bodies)
{
    struct tc_req whole = {0}, streamed = {0};
    struct lb_ureq_spec w = {.body = "whole body", .body_len = 10};
    struct lb_ureq_spec s = {.body_streaming = true};

    one_server();
    tfx_up(&f, f.s[0].addr, NULL);
    tc_start(f.up, f.pool, &whole, "PUT", "/ok", &w);
    cr_assert(tc_wait(f.base, &whole.ended, 2000));
    cr_assert_eq(f.s[0].last_body_len, 10);
    cr_assert(strstr(f.s[0].last_headers, "content-length: 10\n"));
    tc_start(f.up, f.pool, &streamed, "POST", "/ok", &s);
    cr_assert_eq(lb_ureq_write_body(streamed.req, "part one, ", 10), 0);
    t_run_for(f.base, 20);
    cr_assert_eq(lb_ureq_write_body(streamed.req, "part two", 8), 0);
    cr_assert_eq(lb_ureq_end_body(streamed.req), 0);
    cr_assert_eq(lb_ureq_end_body(streamed.req), -EINVAL);
    cr_assert(tc_wait(f.base, &streamed.ended, 2000));
    cr_assert_eq(streamed.error, 0);
    cr_assert_eq(f.s[0].last_body_len, 18);
    cr_assert_eq(memcmp(f.s[0].last_body, "part one, part two", 18), 0);
}

/* A client's "Content-Length: 4 " (trailing whitespace is not part of the value) streams. */
Test(upstream_h2, streamed_length_with_trailing_whitespace)
{
    struct tc_req r = {0};
    const struct lb_uhdr h[] = {{"Content-Length", 14, "4 \t", 3}};
    struct lb_ureq_spec s = {.body_streaming = true, .headers = h, .n_headers = 1};

    one_server();
    tfx_up(&f, f.s[0].addr, NULL);
    tc_start(f.up, f.pool, &r, "POST", "/ok", &s);
    cr_assert_eq(lb_ureq_write_body(r.req, "body", 4), 0);
    cr_assert_eq(lb_ureq_end_body(r.req), 0);
    cr_assert(tc_wait(f.base, &r.ended, 2000));
    cr_assert_eq(r.error, 0);
    cr_assert_eq(f.s[0].last_body_len, 4);
    cr_assert(strstr(f.s[0].last_headers, "content-length: 4"), "%s", f.s[0].last_headers);
}

Test(upstream_h2, hop_by_hop_headers_are_stripped)
{
    struct tc_req r = {0};
    const struct lb_uhdr h[] = {
        {"Host", 4, "api.example:6443", 16},
        {"Connection", 10, "close, X-Drop", 13},
        {"X-Drop", 6, "1", 1},
        {"Keep-Alive", 10, "timeout=5", 9},
        {"TE", 2, "trailers", 8},
        {"Transfer-Encoding", 17, "chunked", 7},
        {"Upgrade", 7, "h2c", 3},
        {"Proxy-Connection", 16, "x", 1},
        {"Accept", 6, "application/json", 16},
        {":path", 5, "/evil", 5},
    };
    struct lb_ureq_spec spec = {.headers = h, .n_headers = KF_ARRAY_SIZE(h), .idempotent = true};
    const char *hs;

    one_server();
    tfx_up(&f, f.s[0].addr, NULL);
    tc_start(f.up, f.pool, &r, "GET", "/ok?watch=1&x=%20", &spec);
    cr_assert(tc_wait(f.base, &r.ended, 2000));
    cr_assert_eq(r.error, 0);
    hs = f.s[0].last_headers;
    cr_assert(strstr(hs, ":authority: api.example:6443\n"), "%s", hs);
    cr_assert(strstr(hs, ":path: /ok?watch=1&x=%20\n"), "%s", hs);
    cr_assert(strstr(hs, "accept: application/json\n"), "%s", hs);
    cr_assert(strstr(hs, "te: trailers\n"), "%s", hs);
    cr_assert_null(strstr(hs, "x-drop"), "%s", hs);
    cr_assert_null(strstr(hs, "keep-alive"), "%s", hs);
    cr_assert_null(strstr(hs, "connection"), "%s", hs);
    cr_assert_null(strstr(hs, "upgrade"), "%s", hs);
    cr_assert_null(strstr(hs, "transfer-encoding"), "%s", hs);
    cr_assert_null(strstr(hs, "/evil"), "%s", hs);
    cr_assert_null(strstr(hs, "host:"), "%s", hs);
}

Test(upstream_h2, malformed_specs_are_refused)
{
    struct lb_ureq *req = NULL;
    const struct lb_uhdr crlf[] = {{"X-A", 3, "a\r\nX-Injected: 1", 17}};
    const struct lb_uhdr bad_name[] = {{"X A", 3, "v", 1}};
    struct lb_ureq_spec ok = {.method = "GET", .path = "/ok"};
    struct lb_ureq_spec s;

    one_server();
    tfx_up(&f, f.s[0].addr, NULL);
    s = ok;
    s.path = "/a b";
    cr_assert_eq(lb_ureq_start(f.up, f.pool, &s, &tc_cbs, NULL, &req), -EINVAL);
    s = ok;
    s.path = "relative";
    cr_assert_eq(lb_ureq_start(f.up, f.pool, &s, &tc_cbs, NULL, &req), -EINVAL);
    s = ok;
    s.method = "GE T";
    cr_assert_eq(lb_ureq_start(f.up, f.pool, &s, &tc_cbs, NULL, &req), -EINVAL);
    s = ok;
    s.headers = crlf;
    s.n_headers = 1;
    cr_assert_eq(lb_ureq_start(f.up, f.pool, &s, &tc_cbs, NULL, &req), -EINVAL);
    s.headers = bad_name;
    cr_assert_eq(lb_ureq_start(f.up, f.pool, &s, &tc_cbs, NULL, &req), -EINVAL);
    s = ok;
    s.authority = "a b";
    cr_assert_eq(lb_ureq_start(f.up, f.pool, &s, &tc_cbs, NULL, &req), -EINVAL);
    cr_assert_eq(lb_ureq_start(f.up, f.pool, NULL, &tc_cbs, NULL, &req), -EINVAL);
    cr_assert_eq(lb_ureq_start(f.up, f.pool, &ok, NULL, NULL, &req), -EINVAL);
    cr_assert_null(req);
    atomic_store(&tfx_server(&f, 0)->admin_state, CONFIG_SERVER_DISABLED);
    cr_assert_eq(lb_ureq_start(f.up, f.pool, &ok, &tc_cbs, NULL, &req), -EHOSTUNREACH);
    cr_assert_eq(atomic_load(&tfx_server(&f, 0)->active_conns), 0);
}

Test(upstream_h2, stale_connection_is_probed_and_the_request_retried)
{
    struct tc_req warm[2] = {0}, r = {0};

    two_servers();
    f.cfg.ping_interval_ms = 100;
    f.cfg.ping_timeout_ms = 100;
    tfx_up(&f, f.s[0].addr, f.s[1].addr);
    for (int i = 0; i < 2; i++) {
        tc_start(f.up, f.pool, &warm[i], "GET", "/ok", NULL);
        cr_assert(tc_wait(f.base, &warm[i].ended, 2000));
    }
    ts_freeze(&f.s[0]); /* s1 died without a FIN: its connection is half-open */
    t_run_for(f.base, 150);
    uint64_t start = kf_now_ms();
    tc_start(f.up, f.pool, &r, "GET", "/ok", NULL); /* round robin: s1 again */
    cr_assert(tc_wait(f.base, &r.ended, 2000));
    cr_assert_eq(r.error, 0);
    cr_assert_str_eq(r.body, "s2:/ok");
    cr_assert_leq(r.end_ms - start, 100 + 150, "took %llu ms",
                  (unsigned long long)(r.end_ms - start));
    cr_assert_eq(atomic_load(&tfx_server(&f, 0)->up.ping_timeouts), 1);
}

Test(upstream_h2, on_end_may_start_the_next_request)
{
    struct tc_req first = {0}, second = {0};

    one_server();
    tfx_up(&f, f.s[0].addr, NULL);
    first.then = &second;
    first.then_path = "/again";
    tc_start(f.up, f.pool, &first, "GET", "/ok", NULL);
    cr_assert(tc_wait(f.base, &second.ended, 2000));
    cr_assert_eq(second.error, 0);
    cr_assert_str_eq(second.body, "s1:/again");
    cr_assert_eq(f.s[0].conns, 1);
}

Test(upstream_h2, failure_callbacks_may_cancel_the_others)
{
    struct tc_req a = {0}, b = {0};
    struct lb_server *s1;

    one_server();
    f.cfg.conns_per_server = 1;
    tfx_up(&f, f.s[0].addr, NULL);
    s1 = tfx_server(&f, 0);
    a.cancel_then = &b;
    tc_start(f.up, f.pool, &a, "GET", "/hang", NULL);
    tc_start(f.up, f.pool, &b, "GET", "/hang", NULL);
    cr_assert(tc_wait_int(f.base, &b.n_heads, 1, 2000));
    cr_assert_eq(f.s[0].conns, 1);
    atomic_store(&s1->fall, 1);
    lb_server_record(s1, false, "test: marked down");
    cr_assert(tc_wait(f.base, &a.ended, 500));
    cr_assert_eq(a.error, -ECONNRESET);
    t_run_for(f.base, 50);
    cr_assert_not(b.ended); /* cancelled from a's on_end: no callback of its own */
    cr_assert_eq(atomic_load(&s1->up.streams_open), 0);
}

Test(upstream_h2, free_ends_live_requests)
{
    struct tc_req r = {0};

    one_server();
    tfx_up(&f, f.s[0].addr, NULL);
    tc_start(f.up, f.pool, &r, "GET", "/hang", NULL);
    cr_assert(tc_wait_int(f.base, &r.n_heads, 1, 2000));
    lb_upstream_free(f.up);
    f.up = NULL;
    cr_assert(r.ended);
    cr_assert_eq(r.error, -ESHUTDOWN);
}

Test(upstream_h2, metrics_count_connections_by_protocol)
{
    struct tc_req r = {0};
    struct evbuffer *out = evbuffer_new();
    char *text;

    one_server();
    tfx_up(&f, f.s[0].addr, NULL);
    tc_start(f.up, f.pool, &r, "GET", "/ok", NULL);
    cr_assert(tc_wait(f.base, &r.ended, 2000));
    lb_upstream_metrics_write(f.lb, out);
    evbuffer_add(out, "", 1);
    text = (char *)evbuffer_pullup(out, -1);
    cr_assert(strstr(text, "kfront_upstream_connections{backend=\"api\",server=\"s1\","
                           "protocol=\"h2\"} 1\n"),
              "%s", text);
    cr_assert(strstr(text, "kfront_upstream_streams_total{backend=\"api\",server=\"s1\"} 1\n"));
    cr_assert(strstr(text, "kfront_upstream_streams{backend=\"api\",server=\"s1\"} 0\n"));
    cr_assert(strstr(text, "# TYPE kfront_upstream_retries_total counter\n"));
    evbuffer_free(out);
}
