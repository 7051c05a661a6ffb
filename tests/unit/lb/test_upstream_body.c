/*
 * Streaming request bodies over both protocols: backpressure through
 * lb_ureq_body_pending() and the drain callback that says when to write more.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "test_upstream_harness.h"

static struct tfx f;

struct drain_probe {
    int drains;
    size_t pending_at_drain;
    bool cancel; /* cancel the request from inside the callback */
};
static struct drain_probe probe;

static void on_drain(struct lb_ureq *req, void *arg)
{
    struct tc_req *r = arg;

    cr_assert_eq(r->req, req);
    probe.drains++;
    probe.pending_at_drain = lb_ureq_body_pending(req);
    if (probe.cancel) {
        lb_ureq_cancel(req);
        r->req = NULL;
    }
}

static void start(bool h1)
{
    memset(&probe, 0, sizeof(probe));
    tfx_init(&f);
    if (h1)
        f.cfg.proto = LB_UPSTREAM_HTTP1;
    ts_start(&f.s[0], f.base, "s1", h1);
    tfx_up(&f, f.s[0].addr, NULL);
}

static void teardown(void)
{
    tfx_done(&f);
}

TestSuite(upstream_body, .fini = teardown);

/* Write total bytes in pieces, waiting for a drain whenever pending is above the low water. */
static void write_with_backpressure(struct tc_req *r, size_t total, size_t piece)
{
    char *buf = malloc(piece);
    size_t sent = 0;

    cr_assert_not_null(buf);
    while (sent < total) {
        size_t n = total - sent < piece ? total - sent : piece;

        memset(buf, 'a' + (int)(sent / piece % 26), n);
        cr_assert_eq(lb_ureq_write_body(r->req, buf, n), 0);
        sent += n;
        if (lb_ureq_body_pending(r->req) > LB_UREQ_BODY_LOW_WATER) {
            int before = probe.drains;

            cr_assert(tc_wait_int(f.base, &probe.drains, before + 1, 2000),
                      "no drain after %zu bytes (pending %zu)", sent, lb_ureq_body_pending(r->req));
            cr_assert_leq(probe.pending_at_drain, LB_UREQ_BODY_LOW_WATER);
        }
    }
    free(buf);
}

static void drain_wakes_the_writer(bool h1)
{
    struct tc_req r = {0};
    struct lb_ureq_spec s = {.body_streaming = true};

    start(h1);
    tc_start(f.up, f.pool, &r, "POST", "/ok", &s);
    lb_ureq_on_body_drain(r.req, on_drain);
    cr_assert_eq(lb_ureq_write_body(r.req, "small", 5), 0);
    t_run_for(f.base, 30);
    cr_assert_eq(probe.drains, 0, "a write under the low water armed the drain");
    write_with_backpressure(&r, 600 * 1024, 100 * 1024);
    cr_assert_geq(probe.drains, 5);
    cr_assert_eq(lb_ureq_end_body(r.req), 0);
    cr_assert(tc_wait(f.base, &r.ended, 3000));
    cr_assert_eq(r.error, 0);
    cr_assert_eq(f.s[0].last_body_total, 5 + 600 * 1024);
    cr_assert_eq(memcmp(f.s[0].last_body, "smallaaaa", 9), 0);
}

Test(upstream_body, h2_drain_wakes_the_writer)
{
    drain_wakes_the_writer(false);
}

Test(upstream_body, h1_drain_wakes_the_writer)
{
    drain_wakes_the_writer(true);
}

static void cancel_inside_drain(bool h1)
{
    struct tc_req r = {0};
    struct lb_ureq_spec s = {.body_streaming = true};
    static char big[200 * 1024];

    start(h1);
    probe.cancel = true;
    tc_start(f.up, f.pool, &r, "PUT", "/hang", &s);
    lb_ureq_on_body_drain(r.req, on_drain);
    cr_assert_eq(lb_ureq_write_body(r.req, big, sizeof(big)), 0);
    cr_assert(tc_wait_int(f.base, &probe.drains, 1, 2000));
    t_run_for(f.base, 50);
    cr_assert_eq(probe.drains, 1);
    cr_assert_null(r.req);
    cr_assert_not(r.ended, "a cancelled request got on_end");
}

Test(upstream_body, h2_cancel_inside_drain)
{
    cancel_inside_drain(false);
}

Test(upstream_body, h1_cancel_inside_drain)
{
    cancel_inside_drain(true);
}

/* Without a drain callback nothing runs, and pending still tells the writer where it stands. */
Test(upstream_body, no_callback_is_fine)
{
    struct tc_req r = {0};
    struct lb_ureq_spec s = {.body_streaming = true};
    static char big[100 * 1024];

    start(false);
    tc_start(f.up, f.pool, &r, "POST", "/ok", &s);
    cr_assert_eq(lb_ureq_write_body(r.req, big, sizeof(big)), 0);
    cr_assert_gt(lb_ureq_body_pending(r.req), LB_UREQ_BODY_LOW_WATER);
    cr_assert_eq(lb_ureq_end_body(r.req), 0);
    cr_assert(tc_wait(f.base, &r.ended, 3000));
    cr_assert_eq(f.s[0].last_body_total, sizeof(big));
}
