/*
 * The upstream pool over TLS: ALPN picks h2 or http/1.1, the server's
 * certificate is verified against its IP address (or server_name), and TLS
 * failures count as connect failures.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <string.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "test_upstream_harness.h"

static struct tfx f;
static struct t_certs certs;
static SSL_CTX *client;

/* A client context trusting ca (the caller's job in kfront: identity and CA). */
static SSL_CTX *client_ctx(const char *ca)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    cr_assert_not_null(ctx);
    cr_assert_eq(SSL_CTX_load_verify_locations(ctx, ca, NULL), 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    return ctx;
}

static void setup_tls(void)
{
    t_certs_make(&certs);
    tfx_init(&f);
    client = client_ctx(certs.cert);
    f.cfg.tls = client;
}

static void teardown(void)
{
    tfx_done(&f);
    SSL_CTX_free(client);
    t_certs_remove(&certs);
}

TestSuite(upstream_tls, .init = setup_tls, .fini = teardown);

/* One TLS server (h1_only: ALPN http/1.1 only) and one GET to it. */
static void get_one(struct tc_req *r, bool h1_only)
{
    ts_start_tls(&f.s[0], f.base, "s1", &certs, h1_only);
    tfx_up(&f, f.s[0].addr, NULL);
    tc_start(f.up, f.pool, r, "GET", "/ok", NULL);
    cr_assert(tc_wait(f.base, &r->ended, 2000));
}

Test(upstream_tls, alpn_h2_verified_by_ip)
{
    struct tc_req r = {0};

    get_one(&r, false);
    cr_assert_eq(r.error, 0);
    cr_assert_str_eq(r.body, "s1:/ok");
    cr_assert(strstr(f.s[0].last_headers, ":scheme: https\n"), "%s", f.s[0].last_headers);
    cr_assert_eq(atomic_load(&tfx_server(&f, 0)->up.conns_total[LB_UP_H2]), 1);
    cr_assert_eq(atomic_load(&tfx_server(&f, 0)->up.conns_total[LB_UP_H1]), 0);
}

Test(upstream_tls, alpn_http11_server_gets_http11)
{
    struct tc_req r = {0};

    get_one(&r, true);
    cr_assert_eq(r.error, 0);
    cr_assert_str_eq(r.body, "s1:/ok");
    cr_assert_eq(atomic_load(&tfx_server(&f, 0)->up.conns_total[LB_UP_H1]), 1);
}

Test(upstream_tls, h2_only_client_refuses_an_http11_server)
{
    struct tc_req r = {0};

    f.cfg.proto = LB_UPSTREAM_H2;
    get_one(&r, true);
    cr_assert_eq(r.error, -EPROTO);
    cr_assert_eq(f.s[0].requests, 0);
    cr_assert_eq(atomic_load(&tfx_server(&f, 0)->up.connect_failures), 1);
}

Test(upstream_tls, server_name_override_is_verified)
{
    struct tc_req r = {0};

    f.cfg.server_name = "localhost";
    get_one(&r, false);
    cr_assert_eq(r.error, 0);
}

Test(upstream_tls, wrong_name_fails_and_counts_as_connect_failure)
{
    struct tc_req r = {0};
    struct lb_server *s;

    f.cfg.server_name = "wrong.example";
    get_one(&r, false);
    s = tfx_server(&f, 0);
    cr_assert_eq(r.error, -EPROTO);
    cr_assert_eq(r.n_heads, 0);
    cr_assert_eq(f.s[0].requests, 0);
    cr_assert_eq(atomic_load(&s->up.connect_failures), 1);
    cr_assert_eq(atomic_load(&s->connect_failures), 1); /* passive health saw it */
    cr_assert_eq(lb_server_health(s), LB_HEALTH_DOWN);  /* first result decides from UNKNOWN */
}

Test(upstream_tls, untrusted_certificate_fails)
{
    struct tc_req r = {0};

    SSL_CTX_free(client);
    client = client_ctx(certs.other);
    f.cfg.tls = client;
    get_one(&r, false);
    cr_assert_eq(r.error, -EPROTO);
}

Test(upstream_tls, failed_tls_is_retried_on_another_server)
{
    struct tc_req r = {0};

    /* s1 speaks plaintext h2 only: the TLS handshake fails there */
    ts_start(&f.s[0], f.base, "s1", false);
    ts_start_tls(&f.s[1], f.base, "s2", &certs, false);
    tfx_up(&f, f.s[0].addr, f.s[1].addr);
    tc_start(f.up, f.pool, &r, "GET", "/ok", NULL);
    cr_assert(tc_wait(f.base, &r.ended, 2000));
    cr_assert_eq(r.error, 0);
    cr_assert_str_eq(r.body, "s2:/ok");
    cr_assert_eq(atomic_load(&tfx_server(&f, 0)->up.retries), 1);
}
