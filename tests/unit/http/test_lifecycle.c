/* Connection and request lifecycle over HTTP/1.1: backpressure, close, timeouts, upgrade. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static struct srv S;

static void setup_fast(void)
{
    struct px_server_config cfg = {
        .header_timeout_ms = 300,
        .idle_timeout_ms = 300,
        .body_timeout_ms = 300,
        .low_water_bytes = 64 * 1024,
    };

    srv_start(&S, &cfg);
}

static void teardown_srv(void)
{
    srv_stop(&S);
}

TestSuite(life, .init = setup_fast, .fini = teardown_srv);

static bool one_request(void *arg)
{
    return srv_stats(arg).requests_total == 1;
}

static bool no_streams(void *arg)
{
    return srv_stats(arg).streams_current == 0;
}

Test(life, slow_reader_backpressure_then_drain)
{
    const size_t total = 16 << 20;
    int fd = tcp_connect(S.port, 16384);
    char *buf = malloc(1 << 20);
    size_t got = 0;
    bool closed = false;

    send_str(fd, "GET /big?bytes=16777216 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    cr_assert(wait_int(&ts.waiting, 1, 2000), "the writer never felt backpressure");
    /* kernel buffers fill first (a few drains), then the writer stays blocked */
    usleep(300 * 1000);
    int drains = atomic_load(&ts.drains);
    size_t sent = atomic_load(&ts.big_sent);

    usleep(200 * 1000);
    cr_expect_eq(atomic_load(&ts.waiting), 1);
    cr_expect_eq(atomic_load(&ts.drains), drains);
    cr_expect_eq(atomic_load(&ts.big_sent), sent, "wrote on although nothing drained");
    cr_expect_gt(atomic_load(&ts.max_pending), 64 * 1024);
    cr_expect_lt(sent, total / 2);
    while (!closed && got < total + 4096) {
        size_t n = read_all(fd, buf, 1 << 20, 2000, &closed);

        if (n == 0 && !closed)
            break;
        got += n;
    }
    cr_expect_gt(got, total, "got %zu", got);
    cr_expect_gt(atomic_load(&ts.drains), drains, "on_drain never fired");
    cr_expect_eq(atomic_load(&ts.big_sent), total);
    cr_expect_lt(atomic_load(&ts.max_pending), 64 * 1024 + 16384 + 1);
    free(buf);
    close(fd);
}

Test(life, client_disconnect_fires_on_close)
{
    int fd = tcp_connect(S.port, 0);
    char buf[1024];

    send_str(fd, "GET /hang?start=1 HTTP/1.1\r\nHost: a\r\n\r\n");
    read_until(fd, buf, sizeof(buf), "started\n", 2000);
    cr_assert(strstr(buf, "HTTP/1.1 200 OK"), "%s", buf);
    cr_expect_eq(atomic_load(&ts.closes), 0);
    close(fd);
    cr_expect(wait_int(&ts.closes, 1, 2000), "on_close did not fire");
    cr_expect(wait_for(srv_no_conns, &S, 2000));
    cr_expect(wait_for(no_streams, &S, 2000));
    cr_expect_eq(srv_stats(&S).client_resets, 1);
}

Test(life, disconnect_before_response_fires_on_close)
{
    int fd = tcp_connect(S.port, 0);

    send_str(fd, "GET /hang HTTP/1.1\r\nHost: a\r\n\r\n");
    cr_assert(wait_for(one_request, &S, 2000));
    close(fd);
    cr_expect(wait_int(&ts.closes, 1, 2000));
    cr_expect(wait_for(no_streams, &S, 2000));
}

Test(life, slowloris_head_times_out)
{
    int fd = tcp_connect(S.port, 0);
    bool closed;
    char buf[256];
    uint64_t t0;

    send_str(fd, "GET /hello HTTP/1.1\r\nHost: a\r\n");
    t0 = (uint64_t)time(NULL);
    for (int i = 0; i < 4; i++) { /* trickle bytes: the deadline is for the whole head */
        usleep(100 * 1000);
        send_str(fd, "X: y\r\n");
    }
    read_all(fd, buf, sizeof(buf), 2000, &closed);
    cr_expect(closed);
    cr_expect_eq(buf[0], 0, "no response expected: %s", buf);
    cr_expect_leq((uint64_t)time(NULL) - t0, 2);
    cr_expect_geq(srv_stats(&S).timeouts, 1);
    close(fd);
}

Test(life, idle_keepalive_times_out)
{
    int fd = tcp_connect(S.port, 0);
    bool closed;
    char buf[1024];

    send_str(fd, "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n");
    read_until(fd, buf, sizeof(buf), "hello\n", 2000);
    read_all(fd, buf, sizeof(buf), 2000, &closed);
    cr_expect(closed, "idle connection not closed");
    close(fd);
    cr_expect(wait_for(srv_no_conns, &S, 1000));
}

Test(life, silent_connection_times_out)
{
    int fd = tcp_connect(S.port, 0);
    bool closed;
    char buf[64];

    read_all(fd, buf, sizeof(buf), 2000, &closed);
    cr_expect(closed);
    close(fd);
}

Test(life, upgrade_hands_over_the_socket)
{
    int fd = tcp_connect(S.port, 0);
    char buf[1024];

    /* the first bytes of the new protocol travel with the request */
    send_str(fd, "GET /upgrade HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"
                 "ping1");
    read_until(fd, buf, sizeof(buf), "ping1", 2000);
    cr_assert(strncmp(buf, "HTTP/1.1 101 Switching Protocols\r\n", 34) == 0, "%s", buf);
    cr_expect(strstr(buf, "Upgrade: echo\r\n"));
    cr_expect(strstr(buf, "Connection: Upgrade\r\n"));
    cr_expect(strstr(buf, "\r\n\r\nping1"));
    send_str(fd, "GET / HTTP/1.1\r\n\r\n"); /* now just bytes: echoed, not parsed */
    read_until(fd, buf, sizeof(buf), "HTTP/1.1\r\n\r\n", 2000);
    cr_expect_str_eq(buf, "GET / HTTP/1.1\r\n\r\n");
    cr_expect_eq(atomic_load(&ts.upgrades), 1);
    cr_expect(wait_for(srv_no_conns, &S, 1000), "upgraded connection still counted");
    close(fd);
    cr_expect(wait_int(&ts.upgrade_ends, 1, 2000));
}

Test(life, refused_upgrade_closes_so_tunnel_bytes_are_never_parsed)
{
    int fd = tcp_connect(S.port, 0);
    bool closed;
    char buf[2048];

    send_str(fd, "GET /upgrade?refuse=1 HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
                 "Upgrade: echo\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n");
    read_all(fd, buf, sizeof(buf), 2000, &closed);
    cr_expect(strncmp(buf, "HTTP/1.1 403 ", 13) == 0, "%s", buf);
    cr_expect(strstr(buf, "Connection: close\r\n"));
    cr_expect_null(strstr(buf, "hello"), "smuggled request was served: %s", buf);
    cr_expect(closed);
    cr_expect_eq(srv_stats(&S).requests_total, 1);
    close(fd);
}

Test(life, shutdown_closes_idle_and_finishes_in_flight)
{
    int idle = tcp_connect(S.port, 0);
    int busy = tcp_connect(S.port, 0);
    bool closed;
    char buf[2048];

    send_str(idle, "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n");
    read_until(idle, buf, sizeof(buf), "hello\n", 2000);
    send_str(busy, "GET /shutdown HTTP/1.1\r\nHost: a\r\n\r\n");
    read_all(busy, buf, sizeof(buf), 2000, &closed);
    cr_expect(strstr(buf, "HTTP/1.1 200 OK"), "%s", buf);
    cr_expect(strstr(buf, "Connection: close\r\n"), "%s", buf);
    cr_expect(closed);
    read_all(idle, buf, sizeof(buf), 2000, &closed);
    cr_expect(closed, "idle keep-alive connection survived shutdown");
    close(idle);
    close(busy);
    cr_expect(wait_for(srv_no_conns, &S, 1000));
    cr_expect_lt(px_conn_accept(S.server, NULL, tcp_connect(S.port, 0), NULL, 0), 0);
}

Test(life, goaway_on_http1_means_connection_close)
{
    bool closed;
    char buf[2048];
    int fd = tcp_connect(S.port, 0);

    send_str(fd, "GET /goaway HTTP/1.1\r\nHost: a\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n");
    read_all(fd, buf, sizeof(buf), 2000, &closed);
    cr_expect(strstr(buf, "Connection: close\r\n"), "%s", buf);
    cr_expect_eq(count_str(buf, "HTTP/1.1 200"), 1);
    cr_expect(closed);
    close(fd);
}

Test(life, stalled_body_times_out)
{
    int fd = tcp_connect(S.port, 0);
    bool closed;
    char buf[256];

    send_str(fd, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789");
    read_all(fd, buf, sizeof(buf), 2000, &closed);
    cr_expect(closed);
    cr_expect_eq(srv_stats(&S).requests_total, 0);
    cr_expect_geq(srv_stats(&S).timeouts, 1);
    close(fd);
}

Test(life, input_split_anywhere_parses_the_same)
{
    static const char req[] = "POST /echo?x=1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                              "\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    char buf[4096];

    for (size_t cut = 1; cut < sizeof(req) - 1; cut += 7) {
        int fd = tcp_connect(S.port, 0);

        send_all(fd, req, cut);
        usleep(2000);
        send_all(fd, req + cut, sizeof(req) - 1 - cut);
        read_until(fd, buf, sizeof(buf), "body=hello world\n", 2000);
        cr_expect(strstr(buf, "body=hello world\n"), "cut at %zu: %s", cut, buf);
        close(fd);
    }
}

Test(life, random_bytes_never_crash_the_server)
{
    char junk[512], buf[1024];
    bool closed;

    srand(42);
    for (int i = 0; i < 60; i++) {
        int fd = tcp_connect(S.port, 0);
        size_t n = (size_t)(rand() % (int)sizeof(junk)) + 1;

        for (size_t j = 0; j < n; j++)
            junk[j] = (char)(i % 2 ? rand() : "GET /\r\nHost: a:\t x\r\n"[rand() % 20]);
        send_all(fd, junk, n);
        send_str(fd, "\r\n\r\n");
        read_all(fd, buf, sizeof(buf), 1000, &closed);
        cr_expect(closed || buf[0] == 0, "open after junk %d: %s", i, buf);
        close(fd);
    }
    int fd = tcp_connect(S.port, 0);

    send_str(fd, "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n");
    read_until(fd, buf, sizeof(buf), "hello\n", 2000);
    cr_expect(strstr(buf, "HTTP/1.1 200 OK"));
    close(fd);
}

static void setup_stuck(void)
{
    struct px_server_config cfg = {.write_timeout_ms = 300};

    srv_start(&S, &cfg);
}

TestSuite(stuck, .init = setup_stuck, .fini = teardown_srv);

Test(stuck, client_that_never_reads_is_cut_off)
{
    int fd = tcp_connect(S.port, 16384);

    send_str(fd, "GET /big?bytes=67108864 HTTP/1.1\r\nHost: a\r\n\r\n");
    cr_assert(wait_int(&ts.waiting, 1, 2000));
    cr_expect(wait_int(&ts.closes, 1, 3000), "stuck client not timed out");
    cr_expect_geq(srv_stats(&S).timeouts, 1);
    cr_expect(wait_for(srv_no_conns, &S, 1000));
    close(fd);
}
