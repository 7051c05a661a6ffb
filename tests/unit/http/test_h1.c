/* HTTP/1.1 over raw sockets: framing, keep-alive, pipelining, smuggling defences. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static struct srv S;

static void setup_small(void)
{
    struct px_server_config cfg = {.max_body_bytes = 1024, .max_header_bytes = 4096};

    srv_start(&S, &cfg);
}

static void teardown_srv(void)
{
    srv_stop(&S);
}

TestSuite(h1, .init = setup_small, .fini = teardown_srv);

/* Send raw bytes on a fresh connection; return everything until close or 2 s. */
static char *exchange(const char *raw, bool *closed)
{
    static char buf[1 << 16];
    int fd = tcp_connect(S.port, 0);

    send_str(fd, raw);
    read_all(fd, buf, sizeof(buf), 2000, closed);
    close(fd);
    return buf;
}

Test(h1, simple_get_has_content_length_and_keeps_alive)
{
    int fd = tcp_connect(S.port, 0);
    char buf[4096];

    send_str(fd, "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n");
    read_until(fd, buf, sizeof(buf), "hello\n", 2000);
    cr_assert(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", buf);
    cr_expect(strstr(buf, "Content-Length: 6\r\n"));
    cr_expect(strstr(buf, "Date: "));
    cr_expect_null(strstr(buf, "Connection: close"));
    /* same connection again */
    send_str(fd, "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n");
    read_until(fd, buf, sizeof(buf), "hello\n", 2000);
    cr_expect(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", buf);
    close(fd);
    cr_expect_eq(srv_stats(&S).requests_total, 2);
    cr_expect_eq(srv_stats(&S).conns_h1, 1);
}

Test(h1, request_fields_reach_the_handler)
{
    bool closed;
    char *r = exchange("POST /echo?a=1&b=x+y%2Fz&a=2&bad=%zz&c HTTP/1.1\r\nHost: kube:6443\r\n"
                       "X-Remote-User: Alice\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"
                       "hello",
                       &closed);

    cr_assert(strstr(r, "HTTP/1.1 200 OK"), "%s", r);
    cr_expect(closed);
    cr_expect(strstr(r, "Connection: close\r\n"));
    cr_expect(strstr(r, "method=POST\n"));
    cr_expect(strstr(r, "path=/echo\n"));
    cr_expect(strstr(r, "query=a=1&b=x+y%2Fz&a=2&bad=%zz&c\n"));
    cr_expect(strstr(r, "q:a=1\nq:b=x y/z\nq:a=2\nq:c=\n"), "%s", r); /* bad pair skipped */
    cr_expect(strstr(r, "authority=kube:6443\n"));
    cr_expect(strstr(r, "h:x-remote-user=Alice\n"));
    cr_expect(strstr(r, "body=hello\n"));
    cr_expect(strstr(r, "v=1\n"));
}

Test(h1, chunked_request_body_and_absolute_form)
{
    bool closed;
    char *r = exchange("PUT http://h:1/echo?x=1 HTTP/1.1\r\nHost: h:1\r\n"
                       "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                       "3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\nX-Trailer: t\r\n\r\n",
                       &closed);

    cr_assert(strstr(r, "HTTP/1.1 200 OK"), "%s", r);
    cr_expect(strstr(r, "body=abcdefg\n"), "%s", r);
    cr_expect(strstr(r, "path=/echo\n"));
    cr_expect(strstr(r, "q:x=1\n"));
    cr_expect(strstr(r, "authority=h:1\n"));
}

Test(h1, pipelined_requests_answered_in_order)
{
    bool closed;
    char *r = exchange("GET /echo?i=1 HTTP/1.1\r\nHost: a\r\n\r\n"
                       "POST /echo?i=2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nxyz"
                       "GET /stream?n=3 HTTP/1.1\r\nHost: a\r\n\r\n"
                       "GET /echo?i=4 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                       &closed);
    char *p1 = strstr(r, "q:i=1"), *p2 = strstr(r, "q:i=2"), *p3 = strstr(r, "chunk 2\n");
    char *p4 = strstr(r, "q:i=4");

    cr_assert(p1 && p2 && p3 && p4, "%s", r);
    cr_expect(p1 < p2 && p2 < p3 && p3 < p4);
    cr_expect(strstr(r, "body=xyz"));
    cr_expect_eq(count_str(r, "HTTP/1.1 200 OK"), 4);
    cr_expect(closed);
}

Test(h1, streaming_response_is_chunked_in_order)
{
    static char buf[1 << 16];
    int fd = tcp_connect(S.port, 0);
    char want[32];
    char *p;

    send_str(fd, "GET /stream?n=1000 HTTP/1.1\r\nHost: a\r\n\r\n");
    read_until(fd, buf, sizeof(buf), "\r\n0\r\n\r\n", 3000);
    close(fd);
    cr_assert(strstr(buf, "Transfer-Encoding: chunked\r\n"), "%.300s", buf);
    cr_expect_null(strstr(buf, "Content-Length"));
    p = strstr(buf, "\r\n\r\n") + 2;
    for (int i = 0; i < 1000; i++) {
        /* each write is its own chunk: "<hex len>\r\nchunk i\n\r\n" */
        int len = snprintf(want, sizeof(want), "chunk %d\n", i);
        char head[64];

        snprintf(head, sizeof(head), "\r\n%x\r\nchunk %d\n\r\n", len, i);
        cr_assert(p && strncmp(p, head, strlen(head)) == 0, "chunk %d at: %.40s", i, p);
        p += strlen(head) - 2;
    }
    cr_expect(strncmp(p, "\r\n0\r\n\r\n", 7) == 0);
    /* every write_ref is freed once sent (just after the bytes left) */
    cr_expect(wait_int(&ts.ref_frees, 500, 2000));
    cr_expect_eq(atomic_load(&ts.ref_frees), 500);
}

Test(h1, http10_stream_is_close_delimited)
{
    bool closed;
    char *r = exchange("GET /stream?n=3 HTTP/1.0\r\n\r\n", &closed);

    cr_assert(strstr(r, "HTTP/1.1 200 OK\r\n"), "%s", r);
    cr_expect(strstr(r, "Connection: close\r\n"));
    cr_expect_null(strstr(r, "chunked"));
    cr_expect(strstr(r, "\r\n\r\nchunk 0\nchunk 1\nchunk 2\n"), "%s", r);
    cr_expect(closed);
}

Test(h1, head_request_gets_no_body)
{
    int fd = tcp_connect(S.port, 0);
    char buf[4096];

    send_str(fd, "HEAD /hello HTTP/1.1\r\nHost: a\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n");
    read_until(fd, buf, sizeof(buf), "hello\n", 2000);
    close(fd);
    cr_expect_eq(count_str(buf, "HTTP/1.1 200 OK"), 2, "%s", buf);
    cr_expect_eq(count_str(buf, "hello\n"), 1); /* only the GET has a body */
}

Test(h1, expect_100_continue)
{
    int fd = tcp_connect(S.port, 0);
    char buf[4096];

    send_str(fd,
             "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
    read_until(fd, buf, sizeof(buf), "\r\n\r\n", 2000);
    cr_assert_str_eq(buf, "HTTP/1.1 100 Continue\r\n\r\n");
    send_str(fd, "data");
    read_until(fd, buf, sizeof(buf), "body=data", 2000);
    cr_expect(strstr(buf, "HTTP/1.1 200 OK"), "%s", buf);
    close(fd);
}

Test(h1, unknown_expectation_is_417)
{
    bool closed;
    char *r = exchange("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nExpect: x\r\n\r\nz",
                       &closed);

    cr_expect(strncmp(r, "HTTP/1.1 417 ", 13) == 0, "%s", r);
    cr_expect(closed);
}

/* Every smuggling shape: 400 (or the status given), then the connection closes. */
static void expect_reject(const char *raw, const char *status)
{
    bool closed;
    char *r = exchange(raw, &closed);

    cr_expect(strncmp(r, status, strlen(status)) == 0, "request:\n%s\nresponse:\n%s", raw, r);
    cr_expect(strstr(r, "Connection: close\r\n"), "%s", r);
    cr_expect(closed, "connection stays open after: %s", raw);
}

Test(h1, smuggling_shapes_are_rejected_and_closed)
{
    static const char *const bad[] = {
        /* CL + TE */
        "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
        "0\r\n\r\n",
        "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
        "0\r\n\r\n",
        /* differing and repeated Content-Length */
        "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
        "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4, 4\r\n\r\nabcd",
        "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: +4\r\n\r\nabcd",
        /* transfer codings other than exactly "chunked" */
        "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
        "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
        "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
        /* bad chunk sizes */
        "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "
        "chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
        "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        "ffffffffffffffffff1\r\nabc\r\n",
        "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "
        "chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n",
        /* obs-fold, whitespace before the colon, bad characters */
        "GET /echo HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n",
        "GET /echo HTTP/1.1\r\nHost: a\r\n\tX-A: b\r\n\r\n",
        "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length : 4\r\n\r\nabcd",
        "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length\t: 4\r\n\r\nabcd",
        "GET /echo HTTP/1.1\r\nHost: a\r\nX A: b\r\n\r\n",
        "GET /echo HTTP/1.1\r\nHost: a\r\nX-A: b\x01z\r\n\r\n",
        "GET /echo HTTP/1.1\r\nHost: a\r\nX-A: b\rz\r\n\r\n",
        "GET /echo HTTP/1.1\r\nHost: a\r\nX-A: b\nX-B: c\r\n\r\n",
        "GET /echo HTTP/1.1\r\nHost: a\r\n: empty\r\n\r\n",
        /* request line and Host */
        "GET /echo HTTP/1.1\r\n\r\n",
        "GET /echo HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET /e\tcho HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /echo HTTP/2.0\r\nHost: a\r\n\r\n",
        "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
        "GET echo HTTP/1.1\r\nHost: a\r\n\r\n",
        "G@T /echo HTTP/1.1\r\nHost: a\r\n\r\n",
        /* an upgrade that carries a body */
        "POST /upgrade HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: echo\r\n"
        "Content-Length: 3\r\n\r\nabc",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_reject(bad[i], "HTTP/1.1 400 ");
    cr_expect_eq(srv_stats(&S).requests_total, 0, "a handler saw a bad request");
    cr_expect_geq(srv_stats(&S).protocol_errors, sizeof(bad) / sizeof(bad[0]));
}

Test(h1, oversize_head_is_431)
{
    char *raw = malloc(8192);

    snprintf(raw, 8192, "GET /echo HTTP/1.1\r\nHost: a\r\nX-Big: %06000d\r\n\r\n", 1);
    expect_reject(raw, "HTTP/1.1 431 ");
    /* also when the end of the head never comes */
    snprintf(raw, 8192, "GET /echo HTTP/1.1\r\nHost: a\r\nX-Big: %06000d", 1);
    expect_reject(raw, "HTTP/1.1 431 ");
    free(raw);
}

Test(h1, body_over_limit_is_413)
{
    expect_reject("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4096\r\n\r\n",
                  "HTTP/1.1 413 ");
    cr_expect_eq(srv_stats(&S).body_too_large, 1);

    char *raw = malloc(4096);
    int n =
        snprintf(raw, 4096, "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");

    for (int i = 0; i < 3; i++)
        n += snprintf(raw + n, 4096 - (size_t)n, "200\r\n%0512d\r\n", 0);
    expect_reject(raw, "HTTP/1.1 413 ");
    free(raw);
    cr_expect_eq(srv_stats(&S).body_too_large, 2);
    cr_expect_eq(srv_stats(&S).requests_total, 0);
}

Test(h1, bad_request_after_good_one_still_answers_the_first)
{
    bool closed;
    char *r =
        exchange("GET /hello HTTP/1.1\r\nHost: a\r\n\r\n"
                 "GET /hello HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                 &closed);

    cr_expect(strncmp(r, "HTTP/1.1 200 OK", 15) == 0, "%s", r);
    cr_expect(strstr(r, "HTTP/1.1 400 "), "%s", r);
    cr_expect(closed);
}

Test(h1, leading_empty_lines_are_ignored)
{
    bool closed;
    char *r =
        exchange("\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", &closed);

    cr_expect(strncmp(r, "HTTP/1.1 200 OK", 15) == 0, "%s", r);
}

Test(h1, handler_without_response_gets_500_and_abort_closes)
{
    bool closed;
    char *r = exchange("GET /noresponse HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", &closed);

    cr_expect(strncmp(r, "HTTP/1.1 500 ", 13) == 0, "%s", r);
    r = exchange("GET /abort HTTP/1.1\r\nHost: a\r\n\r\n", &closed);
    cr_expect(closed);
    cr_expect(strstr(r, "HTTP/1.1 200 OK"), "%s", r);
    cr_expect_null(strstr(r, "\r\n0\r\n\r\n"), "aborted stream must not look complete");
}

Test(h1, not_found_route)
{
    bool closed;
    char *r = exchange("GET /nope HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", &closed);

    cr_expect(strncmp(r, "HTTP/1.1 404 Not Found\r\n", 24) == 0, "%s", r);
}
