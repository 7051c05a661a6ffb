/* TLS: ALPN, client certificates, protocol floor, reload, bad input. */
#include <criterion/criterion.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "proxy/http/http_internal.h"

static struct srv S;
static char dir[64];

static struct ssl_ctx_st *make_ctx(const char *cert, const char *key, enum px_client_auth auth)
{
    char c[128], k[128], ca[128], err[256] = "";
    struct px_tls_config tc = {.cert_file = c, .key_file = k, .client_auth = auth};
    struct ssl_ctx_st *ctx;

    snprintf(c, sizeof(c), "%s/%s", dir, cert);
    snprintf(k, sizeof(k), "%s/%s", dir, key);
    snprintf(ca, sizeof(ca), "%s/ca.crt", dir);
    if (auth != PX_CLIENT_AUTH_NONE)
        tc.client_ca_file = ca;
    ctx = px_tls_ctx_new(&tc, err, sizeof(err));
    cr_assert_not_null(ctx, "%s", err);
    return ctx;
}

static void start_tls(enum px_client_auth auth)
{
    struct px_server_config cfg = {0};

    tls_make_certs(dir, sizeof(dir));
    cfg.tls = make_ctx("server.crt", "server.key", auth);
    srv_start(&S, &cfg);
    SSL_CTX_free(cfg.tls); /* the server holds its own reference */
}

static void setup_request(void)
{
    start_tls(PX_CLIENT_AUTH_REQUEST);
}

static void setup_require(void)
{
    start_tls(PX_CLIENT_AUTH_REQUIRE);
}

static void teardown_tls(void)
{
    char cmd[128];

    srv_stop(&S);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    run_cmd(cmd, NULL, 0);
}

TestSuite(tls, .init = setup_request, .fini = teardown_tls);
TestSuite(mtls, .init = setup_require, .fini = teardown_tls);

/* curl against the test server; returns curl's exit status, body in out. */
static int curl(const char *opts, const char *path, char *out, size_t cap)
{
    char cmd[1024];

    snprintf(cmd, sizeof(cmd),
             "cd %s && curl -s --cacert server.crt %s https://localhost:%u%s "
             "--resolve localhost:%u:127.0.0.1 2>&1",
             dir, opts, S.port, path, S.port);
    return run_cmd(cmd, out, cap);
}

Test(tls, alpn_picks_h2_or_http11)
{
    char out[4096];

    cr_assert_eq(curl("--http2", "/echo", out, sizeof(out)), 0, "%s", out);
    cr_expect(strstr(out, "v=2\n"), "%s", out);
    cr_assert_eq(curl("--http1.1", "/echo", out, sizeof(out)), 0, "%s", out);
    cr_expect(strstr(out, "v=1\n"), "%s", out);
    cr_expect_eq(srv_stats(&S).conns_h2, 1);
    cr_expect_eq(srv_stats(&S).conns_h1, 1);
}

Test(tls, verified_client_cert_gives_identity)
{
    char out[4096];

    cr_assert_eq(curl("--cert client.crt --key client.key", "/echo", out, sizeof(out)), 0);
    cr_expect(strstr(out, "cn=system:node:n1\n"), "%s", out);
    cr_expect(strstr(out, "o=system:nodes\no=team-a\n"), "%s", out);
    cr_expect(strstr(out, "issuer=CN=test-ca\n"), "%s", out);
    cr_expect(strstr(out, "cert=/O=system:nodes/O=team-a/CN=system:node:n1\n"), "%s", out);
}

Test(tls, missing_or_untrusted_cert_is_anonymous_in_request_mode)
{
    char out[4096];

    cr_assert_eq(curl("", "/echo", out, sizeof(out)), 0, "%s", out);
    cr_expect(strstr(out, "method=GET"));
    cr_expect_null(strstr(out, "cn="), "%s", out);
    cr_expect_null(strstr(out, "cert="), "%s", out);
    cr_assert_eq(curl("--cert rogue.crt --key rogue.key", "/echo", out, sizeof(out)), 0, "%s", out);
    cr_expect(strstr(out, "method=GET"));
    cr_expect_null(strstr(out, "\ncn="), "untrusted cert accepted as identity: %s", out);
    cr_expect(strstr(out, "cert=/CN=rogue\n"), "raw certificate not exposed: %s", out);
}

Test(tls, old_protocols_are_refused)
{
    char out[4096];

    cr_expect_neq(curl("--tlsv1.0 --tls-max 1.1", "/hello", out, sizeof(out)), 0, "%s", out);
    cr_expect_eq(curl("--tlsv1.2 --tls-max 1.2", "/hello", out, sizeof(out)), 0, "%s", out);
    cr_expect_str_eq(out, "hello\n");
}

Test(tls, streams_in_order_over_both_protocols)
{
    static char out[1 << 16];
    char want[32];

    for (int v = 1; v <= 2; v++) {
        const char *p = out;

        cr_assert_eq(curl(v == 2 ? "--http2" : "--http1.1", "/stream?n=1000", out, sizeof(out)), 0);
        for (int i = 0; i < 1000; i++) {
            int len = snprintf(want, sizeof(want), "chunk %d\n", i);

            cr_assert(strncmp(p, want, (size_t)len) == 0, "v%d line %d: %.20s", v, i, p);
            p += len;
        }
    }
}

Test(tls, large_bodies_drain_through_tls_on_both_protocols)
{
    char out[256];

    cr_assert_eq(
        curl("--http1.1 -o /dev/null -w %{size_download}", "/big?bytes=4194304", out, sizeof(out)),
        0);
    cr_expect_str_eq(out, "4194304");
    int drains = atomic_load(&ts.drains);

    cr_expect_gt(drains, 0);
    cr_assert_eq(
        curl("--http2 -o /dev/null -w %{size_download}", "/big?bytes=4194304", out, sizeof(out)),
        0);
    cr_expect_str_eq(out, "4194304");
    cr_expect_gt(atomic_load(&ts.drains), drains);
}

Test(tls, plaintext_on_tls_port_is_a_failed_handshake)
{
    char buf[256];
    bool closed;
    int fd = tcp_connect(S.port, 0);

    send_str(fd, "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n");
    read_all(fd, buf, sizeof(buf), 2000, &closed);
    cr_expect(closed);
    cr_expect_null(strstr(buf, "hello"));
    close(fd);
    cr_expect_geq(srv_stats(&S).tls_handshake_failures, 1);
    cr_expect_eq(srv_stats(&S).requests_total, 0);
}

Test(tls, reload_changes_the_certificate_for_new_connections)
{
    char out[8192];
    struct ssl_ctx_st *ctx = make_ctx("rogue.crt", "rogue.key", PX_CLIENT_AUTH_NONE);

    cr_assert_eq(curl("-v", "/hello", out, sizeof(out)), 0);
    cr_expect(strstr(out, "CN=localhost"), "%s", out);
    px_server_set_tls(S.server, ctx);
    SSL_CTX_free(ctx);
    cr_expect_neq(curl("", "/hello", out, sizeof(out)), 0, "old CA still verifies: %s", out);
    cr_assert_eq(curl("-k -v", "/hello", out, sizeof(out)), 0);
    cr_expect(strstr(out, "CN=rogue"), "%s", out);
}

Test(tls, bad_config_is_reported)
{
    char err[256] = "";
    struct px_tls_config tc = {.cert_file = "/nonexistent.crt", .key_file = "/nonexistent.key"};

    cr_expect_null(px_tls_ctx_new(&tc, err, sizeof(err)));
    cr_expect(strstr(err, "certificate /nonexistent.crt"), "%s", err);
    char c[128], k[128];

    snprintf(c, sizeof(c), "%s/server.crt", dir);
    snprintf(k, sizeof(k), "%s/rogue.key", dir);
    tc.cert_file = c;
    tc.key_file = k;
    cr_expect_null(px_tls_ctx_new(&tc, err, sizeof(err)), "mismatched key accepted");
    snprintf(k, sizeof(k), "%s/server.key", dir);
    tc.client_auth = PX_CLIENT_AUTH_REQUIRE;
    cr_expect_null(px_tls_ctx_new(&tc, err, sizeof(err)));
    cr_expect(strstr(err, "client_ca_file"), "%s", err);
    tc.client_auth = PX_CLIENT_AUTH_REQUEST; /* no CA: take any certificate, verify none */
    struct ssl_ctx_st *ctx = px_tls_ctx_new(&tc, err, sizeof(err));

    cr_expect_not_null(ctx, "%s", err);
    SSL_CTX_free(ctx);
}

Test(mtls, certificate_is_required)
{
    char out[4096];

    cr_expect_neq(curl("", "/hello", out, sizeof(out)), 0, "%s", out);
    cr_expect_neq(curl("--cert rogue.crt --key rogue.key", "/hello", out, sizeof(out)), 0);
    cr_assert_eq(curl("--cert client.crt --key client.key --http2", "/echo", out, sizeof(out)), 0);
    cr_expect(strstr(out, "cn=system:node:n1\n"), "%s", out);
    cr_expect(strstr(out, "v=2\n"), "%s", out);
    cr_expect_geq(srv_stats(&S).tls_handshake_failures, 1);
}

/* Certificates for SNI: a.test (CN and SAN), *.wild.test (SAN), and one for explicit names. */
static void make_sni_certs(void)
{
    char cmd[2048];

    snprintf(cmd, sizeof(cmd),
             "(cd %s && K='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1' && "
             "openssl req -x509 $K -keyout a.key -out a.crt -subj /CN=a.test "
             "-addext subjectAltName=DNS:a.test,DNS:alias.test && "
             "openssl req -x509 $K -keyout w.key -out w.crt -subj /CN=wild "
             "-addext subjectAltName=DNS:*.wild.test && "
             "openssl req -x509 $K -keyout x.key -out x.crt -subj /CN=x.test"
             ") >/dev/null 2>&1",
             dir);
    cr_assert_eq(run_cmd(cmd, NULL, 0), 0, "openssl failed");
}

static const char *cn_of(SSL_CTX *ctx)
{
    static char cn[64];
    X509 *cert = ctx ? SSL_CTX_get0_certificate(ctx) : NULL;

    if (!cert)
        return "default";
    X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn));
    return cn;
}

Test(tls, sni_picks_exact_then_wildcard_explicit_then_extracted)
{
    char a[3][2][128], err[256] = "";
    const char *x_names[] = {"alias.test", "*.wild.test"};

    make_sni_certs();
    const char *files[3] = {"a", "w", "x"};
    for (int i = 0; i < 3; i++) {
        snprintf(a[i][0], sizeof(a[i][0]), "%s/%s.crt", dir, files[i]);
        snprintf(a[i][1], sizeof(a[i][1]), "%s/%s.key", dir, files[i]);
    }
    struct px_tls_sni_cert sni[] = {
        {a[0][0], a[0][1], NULL, 0},
        {a[1][0], a[1][1], NULL, 0},
        {a[2][0], a[2][1], x_names, 2}, /* explicit: beats a.test's own alias.test */
    };
    char c[128], k[128];
    snprintf(c, sizeof(c), "%s/server.crt", dir);
    snprintf(k, sizeof(k), "%s/server.key", dir);
    struct px_tls_config tc = {.cert_file = c, .key_file = k, .sni = sni, .n_sni = 3};
    SSL_CTX *ctx = px_tls_ctx_new(&tc, err, sizeof(err));

    cr_assert_not_null(ctx, "%s", err);
    cr_expect_str_eq(cn_of(px_tls_sni_match(ctx, "a.test")), "a.test");
    cr_expect_str_eq(cn_of(px_tls_sni_match(ctx, "A.TEST")), "a.test");
    cr_expect_str_eq(cn_of(px_tls_sni_match(ctx, "alias.test")), "x.test");
    cr_expect_str_eq(cn_of(px_tls_sni_match(ctx, "foo.wild.test")), "x.test");  /* explicit */
    cr_expect_str_eq(cn_of(px_tls_sni_match(ctx, "a.b.wild.test")), "default"); /* one label */
    cr_expect_str_eq(cn_of(px_tls_sni_match(ctx, "wild.test")), "default");
    cr_expect_str_eq(cn_of(px_tls_sni_match(ctx, "nothing.test")), "default");
    cr_expect_str_eq(cn_of(px_tls_sni_match(ctx, "")), "default");
    cr_expect_str_eq(cn_of(px_tls_sni_match(ctx, NULL)), "default");
    SSL_CTX_free(ctx);

    /* without x's explicit names, the wildcard certificate's own name serves */
    tc.n_sni = 2;
    ctx = px_tls_ctx_new(&tc, err, sizeof(err));
    cr_assert_not_null(ctx, "%s", err);
    cr_expect_str_eq(cn_of(px_tls_sni_match(ctx, "foo.wild.test")), "wild");
    cr_expect_str_eq(cn_of(px_tls_sni_match(ctx, "alias.test")), "a.test");
    SSL_CTX_free(ctx);

    /* a bad SNI certificate fails the whole context with a reason */
    sni[1].key_file = a[0][1];
    cr_expect_null(px_tls_ctx_new(&tc, err, sizeof(err)));
    cr_expect(strstr(err, "private key"), "%s", err);
}

Test(tls, sni_certificate_is_served_on_the_wire)
{
    char out[4096], cmd[1024], err[256] = "", a_crt[128], a_key[128], c[128], k[128];

    make_sni_certs();
    snprintf(a_crt, sizeof(a_crt), "%s/a.crt", dir);
    snprintf(a_key, sizeof(a_key), "%s/a.key", dir);
    snprintf(c, sizeof(c), "%s/server.crt", dir);
    snprintf(k, sizeof(k), "%s/server.key", dir);
    struct px_tls_sni_cert sni[] = {{a_crt, a_key, NULL, 0}};
    struct px_tls_config tc = {.cert_file = c, .key_file = k, .sni = sni, .n_sni = 1};
    SSL_CTX *ctx = px_tls_ctx_new(&tc, err, sizeof(err));
    cr_assert_not_null(ctx, "%s", err);
    px_server_set_tls(S.server, ctx);
    SSL_CTX_free(ctx);
    /* curl trusts a.crt for a.test only if that is what the server sends for that name */
    snprintf(cmd, sizeof(cmd),
             "cd %s && curl -s --http2 --cacert a.crt --resolve a.test:%u:127.0.0.1 "
             "https://a.test:%u/echo && curl -s --cacert server.crt https://localhost:%u/echo",
             dir, S.port, S.port, S.port);
    cr_expect_eq(run_cmd(cmd, out, sizeof(out)), 0, "%s", out);
}
