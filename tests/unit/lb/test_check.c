/*
 * Active checks against real sockets on 127.0.0.1: listening, closed, silent,
 * HTTP and TLS servers run inside the test process.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "lb_test.h"

struct fixture {
    struct tcfg t;
    char addr[32];
    struct lb *lb;
    struct event_base *base;
    struct lb_server *s;
};

static struct config_backend *setup(struct fixture *f, enum config_check_type type, uint16_t port)
{
    tcfg_init(&f->t);
    struct config_backend *b = tcfg_backend(&f->t, "masters", CONFIG_BALANCE_ROUNDROBIN);
    snprintf(f->addr, sizeof(f->addr), "127.0.0.1:%u", port);
    tcfg_server(&f->t, b, "m1", f->addr);
    tcfg_check(b, type);
    return b;
}

static struct lb_server *go(struct fixture *f)
{
    f->lb = t_lb_new(&f->t, NULL);
    if (getenv("LB_DEBUG"))
        kf_log_threshold = KF_LOG_DEBUG;
    f->base = event_base_new();
    cr_assert_not_null(f->base);
    cr_assert_eq(lb_start_checks(f->lb, f->base), 0);
    f->s = t_server(f->lb, "masters", "m1");
    return f->s;
}

/* go, then run until the server has health want */
static bool t_run_until_go(struct fixture *f, enum lb_health want, int max_ms)
{
    go(f);
    return t_run_until(f->base, f->s, want, max_ms);
}

static void done(struct fixture *f)
{
    lb_stop_checks(f->lb);
    /* nothing of the checks may be left on the loop */
    cr_expect_eq(event_base_loop(f->base, EVLOOP_NONBLOCK), 1);
    lb_release(f->lb);
    event_base_free(f->base);
}

static void expect_failure(struct lb_server *s, const char *needle)
{
    char why[192];

    lb_server_last_failure(s, why, sizeof(why));
    cr_expect(strstr(why, needle) != NULL, "last failure \"%s\" lacks \"%s\"", why, needle);
}

Test(check_tcp, listening_socket_is_up)
{
    struct fixture f;
    uint16_t port;
    int fd = t_listen(&port);

    setup(&f, CONFIG_CHECK_TCP, port);
    cr_assert(t_run_until_go(&f, LB_HEALTH_UP, 1000));
    t_run_for(f.base, 200);
    cr_expect_geq(atomic_load(&f.s->checks_ok), 2, "checks repeat every interval");
    cr_expect_eq(atomic_load(&f.s->checks_failed), 0);
    done(&f);
    close(fd);
}

Test(check_tcp, closed_port_is_down)
{
    struct fixture f;

    setup(&f, CONFIG_CHECK_TCP, t_closed_port());
    cr_assert(t_run_until_go(&f, LB_HEALTH_DOWN, 1000));
    expect_failure(f.s, "connect: Connection refused");
    cr_expect(lb_pick(lb_find_pool(f.lb, "masters"), NULL, 0) == NULL);
    done(&f);
}

Test(check_tcp, server_that_goes_away_goes_down_and_comes_back)
{
    struct fixture f;
    uint16_t port;
    int fd = t_listen(&port);
    struct config_backend *b = setup(&f, CONFIG_CHECK_TCP, port);

    b->check.fall = 2;
    b->check.rise = 2;
    cr_assert(t_run_until_go(&f, LB_HEALTH_UP, 1000));
    close(fd);
    cr_assert(t_run_until(f.base, f.s, LB_HEALTH_DOWN, 1000));
    cr_expect_geq(atomic_load(&f.s->checks_failed), 2, "fall 2 needs two failures");
    /* listen on the same port again */
    struct sockaddr_in sin = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    cr_assert_eq(listen(fd, 16), 0);
    cr_assert(t_run_until(f.base, f.s, LB_HEALTH_UP, 1000));
    done(&f);
    close(fd);
}

Test(check_http, silent_server_fails_by_timeout)
{
    struct fixture f;
    uint16_t port;
    int fd = t_listen(&port); /* connects complete in the kernel; nobody ever answers */
    struct config_backend *b = setup(&f, CONFIG_CHECK_HTTP, port);

    b->check.timeout_ms = 100;
    uint64_t start = kf_now_us();
    cr_assert(t_run_until_go(&f, LB_HEALTH_DOWN, 2000));
    /* libevent measures from its cached loop time, which may lag by a little */
    cr_expect_geq(kf_now_us() - start, 95000, "not before the timeout");
    expect_failure(f.s, "timeout after 100 ms while reading");
    done(&f);
    close(fd);
}

Test(check_http, status_decides)
{
    struct fixture f;
    struct t_http h;

    t_http_start(&h, 200, NULL);
    struct config_backend *b = setup(&f, CONFIG_CHECK_HTTP, h.port);
    b->check.fall = 2;
    cr_assert(t_run_until_go(&f, LB_HEALTH_UP, 1000));
    atomic_store(&h.status, 503);
    cr_assert(t_run_until(f.base, f.s, LB_HEALTH_DOWN, 1000));
    expect_failure(f.s, "http GET /readyz -> 503, expected 200");
    atomic_store(&h.status, 200);
    cr_assert(t_run_until(f.base, f.s, LB_HEALTH_UP, 1000));
    done(&f);
    t_http_stop(&h);
    cr_expect_geq(atomic_load(&h.served), 3);
}

Test(check_http, request_is_a_get_with_host_and_connection_close)
{
    struct fixture f;
    struct t_http h;
    char want[128];

    t_http_start(&h, 200, NULL);
    struct config_backend *b = setup(&f, CONFIG_CHECK_HTTP, h.port);
    b->check.path = "/livez?verbose";
    cr_assert(t_run_until_go(&f, LB_HEALTH_UP, 1000));
    done(&f);
    t_http_stop(&h);
    snprintf(want, sizeof(want), "GET /livez?verbose HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n", h.port);
    cr_expect(strncmp(h.last_request, want, strlen(want)) == 0, "%s", h.last_request);
    cr_expect(strstr(h.last_request, "\r\nConnection: close\r\n"));
}

Test(check_http, stop_during_a_check_leaves_nothing_behind)
{
    struct fixture f;
    uint16_t port;
    int fd = t_listen(&port);
    struct config_backend *b = setup(&f, CONFIG_CHECK_HTTP, port);

    b->check.timeout_ms = 5000;
    go(&f);
    t_run_for(f.base, 60);
    cr_assert_eq(f.lb->checks[0]->state, LB_CHECK_READING);
    done(&f); /* asserts that no event is left on the loop */
    close(fd);
}

Test(check_http, expected_status_is_configurable)
{
    struct fixture f;
    struct t_http h;

    t_http_start(&h, 204, NULL);
    struct config_backend *b = setup(&f, CONFIG_CHECK_HTTP, h.port);
    b->check.expect_status = 204;
    cr_assert(t_run_until_go(&f, LB_HEALTH_UP, 1000));
    done(&f);
    t_http_stop(&h);
}

Test(check_http, server_closing_without_answer_is_down)
{
    struct fixture f;
    struct t_http h;

    /* a TLS server spoken to in plain HTTP: it drops the connection */
    struct t_certs certs;
    t_certs_make(&certs);
    t_http_start(&h, 200, t_server_ctx(&certs, false));
    setup(&f, CONFIG_CHECK_HTTP, h.port);
    cr_assert(t_run_until_go(&f, LB_HEALTH_DOWN, 2000));
    char why[192];
    lb_server_last_failure(f.s, why, sizeof(why));
    cr_expect(strstr(why, "closed before the status line") || strstr(why, "malformed") ||
                  strstr(why, "recv"),
              "%s", why);
    done(&f);
    t_http_stop(&h);
    t_certs_remove(&certs);
}

/* A plain HTTP check against a server that answers raw; returns the final health. */
static enum lb_health raw_answer(const char *raw, bool trickle, enum lb_health want,
                                 const char *why)
{
    struct fixture f;
    struct t_http h;

    t_http_start_raw(&h, raw, trickle);
    setup(&f, CONFIG_CHECK_HTTP, h.port);
    bool reached = t_run_until_go(&f, want, 1000);
    enum lb_health got = lb_server_health(f.s);
    if (reached && why)
        expect_failure(f.s, why);
    done(&f);
    t_http_stop(&h);
    return got;
}

Test(check_http, bad_status_lines_are_failures)
{
    char overlong[400];

    memset(overlong, 'A', sizeof(overlong) - 1);
    overlong[sizeof(overlong) - 1] = '\0';
    cr_expect_eq(raw_answer("HELLO\r\n", false, LB_HEALTH_DOWN, "malformed status line"),
                 LB_HEALTH_DOWN);
    cr_expect_eq(raw_answer("HTTP/1.1 20\r\n", false, LB_HEALTH_DOWN, "malformed"), LB_HEALTH_DOWN);
    cr_expect_eq(raw_answer("HTTP/2 200\r\n", false, LB_HEALTH_DOWN, "malformed"), LB_HEALTH_DOWN);
    cr_expect_eq(raw_answer(overlong, false, LB_HEALTH_DOWN, "malformed"), LB_HEALTH_DOWN);
    cr_expect_eq(raw_answer("HTTP/1.1 200", false, LB_HEALTH_DOWN, "closed before the status line"),
                 LB_HEALTH_DOWN);
    cr_expect_eq(raw_answer("", false, LB_HEALTH_DOWN, "closed before the status line"),
                 LB_HEALTH_DOWN);
}

Test(check_http, good_status_lines_in_any_shape)
{
    cr_expect_eq(raw_answer("HTTP/1.0 200 OK\r\n\r\n", false, LB_HEALTH_UP, NULL), LB_HEALTH_UP);
    cr_expect_eq(raw_answer("HTTP/1.1 200\r\n", false, LB_HEALTH_UP, NULL), LB_HEALTH_UP);
    cr_expect_eq(raw_answer("HTTP/1.1 200 OK\n", false, LB_HEALTH_UP, NULL), LB_HEALTH_UP);
    /* the status line in 1-byte pieces: read until the line is complete */
    cr_expect_eq(
        raw_answer("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true, LB_HEALTH_UP, NULL),
        LB_HEALTH_UP);
}

Test(check_config, unchecked_servers_stay_unknown)
{
    struct fixture f;
    uint16_t port = t_closed_port();
    struct config_backend *b = setup(&f, CONFIG_CHECK_TCP, port);

    b->servers[0].check = false;
    go(&f);
    t_run_for(f.base, 150);
    cr_expect_eq(lb_server_health(f.s), LB_HEALTH_UNKNOWN);
    cr_expect_eq(atomic_load(&f.s->checks_failed), 0);
    cr_expect(lb_server_eligible(f.s));
    done(&f);

    b = setup(&f, CONFIG_CHECK_NONE, port);
    go(&f);
    t_run_for(f.base, 100);
    cr_expect_eq(lb_server_health(f.s), LB_HEALTH_UNKNOWN);
    done(&f);
}

Test(check_config, disabled_servers_are_not_checked)
{
    struct fixture f;
    struct config_backend *b = setup(&f, CONFIG_CHECK_TCP, t_closed_port());

    b->servers[0].state = CONFIG_SERVER_DISABLED;
    go(&f);
    t_run_for(f.base, 150);
    cr_expect_eq(atomic_load(&f.s->checks_failed) + atomic_load(&f.s->checks_ok), 0);
    cr_expect_eq(lb_server_health(f.s), LB_HEALTH_UNKNOWN);
    cr_expect_eq(lb_start_checks(f.lb, f.base), -EALREADY);
    done(&f);
}

/* ---- TLS and HTTPS ---------------------------------------------------------------- */

struct tls_case {
    enum config_check_type type;
    const char *ca;          /* "cert", "other" or NULL */
    const char *server_name; /* NULL: the address */
    bool insecure;
    bool client_cert;
    bool require_client;
    int status;
    enum lb_health want;
    const char *why; /* expected failure reason */
};

static void run_tls_case(const struct tls_case *tc)
{
    struct t_certs certs;
    struct t_http h;
    struct fixture f;

    t_certs_make(&certs);
    t_http_start(&h, tc->status, t_server_ctx(&certs, tc->require_client));
    struct config_backend *b = setup(&f, tc->type, h.port);
    b->check.timeout_ms = 1000;
    b->check.tls.ca_file = tc->ca && strcmp(tc->ca, "other") == 0 ? certs.other : certs.cert;
    b->check.tls.server_name = tc->server_name;
    b->check.tls.insecure_skip_verify = tc->insecure;
    if (tc->client_cert) {
        b->check.tls.cert_file = certs.cert;
        b->check.tls.key_file = certs.key;
    }
    cr_assert(t_run_until_go(&f, tc->want, 3000), "health %s, wanted %s",
              lb_health_name(lb_server_health(f.s)), lb_health_name(tc->want));
    if (tc->why)
        expect_failure(f.s, tc->why);
    done(&f);
    t_http_stop(&h);
    t_certs_remove(&certs);
}

Test(check_tls, verified_handshake_is_up)
{
    run_tls_case(&(struct tls_case){.type = CONFIG_CHECK_TLS, .ca = "cert", .want = LB_HEALTH_UP});
}

Test(check_tls, dns_server_name_is_verified)
{
    run_tls_case(&(struct tls_case){
        .type = CONFIG_CHECK_TLS, .ca = "cert", .server_name = "localhost", .want = LB_HEALTH_UP});
}

Test(check_tls, wrong_ca_is_down)
{
    run_tls_case(&(struct tls_case){.type = CONFIG_CHECK_TLS,
                                    .ca = "other",
                                    .want = LB_HEALTH_DOWN,
                                    .why = "certificate verify failed"});
}

Test(check_tls, wrong_name_is_down)
{
    run_tls_case(&(struct tls_case){.type = CONFIG_CHECK_TLS,
                                    .ca = "cert",
                                    .server_name = "apiserver.example",
                                    .want = LB_HEALTH_DOWN,
                                    .why = "certificate verify failed"});
}

Test(check_tls, insecure_skips_verification)
{
    run_tls_case(&(struct tls_case){
        .type = CONFIG_CHECK_TLS, .ca = "other", .insecure = true, .want = LB_HEALTH_UP});
}

Test(check_https, status_200_is_up)
{
    run_tls_case(&(struct tls_case){
        .type = CONFIG_CHECK_HTTPS, .ca = "cert", .status = 200, .want = LB_HEALTH_UP});
}

Test(check_https, status_503_is_down)
{
    run_tls_case(&(struct tls_case){.type = CONFIG_CHECK_HTTPS,
                                    .ca = "cert",
                                    .status = 503,
                                    .want = LB_HEALTH_DOWN,
                                    .why = "https GET /readyz -> 503, expected 200"});
}

Test(check_https, wrong_ca_is_down)
{
    run_tls_case(&(struct tls_case){.type = CONFIG_CHECK_HTTPS,
                                    .ca = "other",
                                    .status = 200,
                                    .want = LB_HEALTH_DOWN,
                                    .why = "certificate verify failed"});
}

Test(check_https, client_certificate_is_presented)
{
    run_tls_case(&(struct tls_case){.type = CONFIG_CHECK_HTTPS,
                                    .ca = "cert",
                                    .client_cert = true,
                                    .require_client = true,
                                    .status = 200,
                                    .want = LB_HEALTH_UP});
}

Test(check_https, missing_client_certificate_is_down)
{
    run_tls_case(&(struct tls_case){.type = CONFIG_CHECK_HTTPS,
                                    .ca = "cert",
                                    .require_client = true,
                                    .status = 200,
                                    .want = LB_HEALTH_DOWN,
                                    .why = "tls"});
}

Test(check_https, silent_tls_server_fails_by_timeout)
{
    struct t_certs certs;
    struct fixture f;
    uint16_t port;
    int fd = t_listen(&port);

    t_certs_make(&certs);
    struct config_backend *b = setup(&f, CONFIG_CHECK_HTTPS, port);
    b->check.tls.ca_file = certs.cert;
    b->check.timeout_ms = 80;
    cr_assert(t_run_until_go(&f, LB_HEALTH_DOWN, 2000));
    expect_failure(f.s, "timeout after 80 ms while tls handshake");
    done(&f);
    close(fd);
    t_certs_remove(&certs);
}

Test(check_reload, health_and_counters_survive_a_reload)
{
    struct fixture f;
    uint16_t port;
    int fd = t_listen(&port);

    setup(&f, CONFIG_CHECK_TCP, port);
    cr_assert(t_run_until_go(&f, LB_HEALTH_UP, 1000));
    uint64_t ok_before = atomic_load(&f.s->checks_ok);

    /* the reload: build the new lb, stop the old checks, start the new ones */
    f.t.backends[0].check.path = "/livez"; /* some other change */
    struct lb *next = t_lb_new(&f.t, f.lb);
    lb_stop_checks(f.lb);
    lb_release(f.lb);
    f.lb = next;
    cr_assert_eq(t_server(next, "masters", "m1"), f.s);
    cr_expect_eq(lb_server_health(f.s), LB_HEALTH_UP, "no need to re-learn health");
    cr_assert_eq(lb_start_checks(next, f.base), 0);
    t_run_for(f.base, 150);
    cr_expect_gt(atomic_load(&f.s->checks_ok), ok_before, "the new lb checks the same server");
    done(&f);
    close(fd);
}
