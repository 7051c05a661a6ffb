/* HTTP/2 (h2c prior knowledge): streams, flow control, resets, GOAWAY, hostile frames. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "proxy/http/http_internal.h"

static struct srv S;

static void setup_h2(void)
{
    struct px_server_config cfg = {
        .max_body_bytes = 1024, .max_header_bytes = 2048, .idle_timeout_ms = 400};

    srv_start(&S, &cfg);
}

static void teardown_srv(void)
{
    srv_stop(&S);
}

TestSuite(h2, .init = setup_h2, .fini = teardown_srv);

Test(h2, get_and_settings)
{
    struct h2c c;
    int32_t id;

    cr_assert(h2c_open(&c, S.port, 0, false));
    id = h2c_request(&c, "GET", "/hello", NULL, 0);
    cr_assert(h2c_wait_closed(&c, id, 2000));
    cr_expect_eq(h2c_stream(&c, id)->status, 200);
    cr_expect_str_eq(h2c_stream(&c, id)->data, "hello\n");
    cr_expect_eq(nghttp2_session_get_remote_settings(c.s, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS),
                 100);
    cr_expect_eq(srv_stats(&S).conns_h2, 1);
    cr_expect_eq(srv_stats(&S).conns_h1, 0);
    h2c_free(&c);
}

Test(h2, request_fields_and_body)
{
    struct h2c c;
    int32_t id;
    const char *d;

    cr_assert(h2c_open(&c, S.port, 0, false));
    id = h2c_request(&c, "POST", "/echo?watch=1&fieldSelector=spec.nodeName%3Dn1", "payload", 7);
    cr_assert(h2c_wait_closed(&c, id, 2000));
    d = h2c_stream(&c, id)->data;
    cr_assert_not_null(d);
    cr_expect(strstr(d, "method=POST\n"));
    cr_expect(strstr(d, "path=/echo\n"));
    cr_expect(strstr(d, "v=2\n"));
    cr_expect(strstr(d, "authority=test\n"));
    cr_expect(strstr(d, "body=payload\n"), "%s", d);
    cr_expect(strstr(d, "q:watch=1\nq:fieldSelector=spec.nodeName=n1\n"), "%s", d);
    h2c_free(&c);
}

static void check_stream_lines(const char *d, int n)
{
    char want[32];

    for (int i = 0; i < n; i++) {
        int len = snprintf(want, sizeof(want), "chunk %d\n", i);

        cr_assert(d && strncmp(d, want, (size_t)len) == 0, "line %d: %.20s", i, d);
        d += len;
    }
    cr_expect_eq(*d, 0);
}

Test(h2, streaming_1000_chunks_in_order_with_concurrent_streams)
{
    struct h2c c;
    int32_t ids[8];

    cr_assert(h2c_open(&c, S.port, 0, false));
    for (int i = 0; i < 8; i++)
        ids[i] = h2c_request(&c, "GET", i % 2 ? "/stream?n=1000" : "/hello", NULL, 0);
    for (int i = 0; i < 8; i++) {
        cr_assert(h2c_wait_closed(&c, ids[i], 3000));
        cr_expect_eq(h2c_stream(&c, ids[i])->error, 0);
        if (i % 2)
            check_stream_lines(h2c_stream(&c, ids[i])->data, 1000);
        else
            cr_expect_str_eq(h2c_stream(&c, ids[i])->data, "hello\n");
    }
    cr_expect(wait_int(&ts.ref_frees, 2000, 2000));
    h2c_free(&c);
}

Test(h2, curl_prior_knowledge_stream)
{
    static char out[1 << 16];
    char cmd[256];

    snprintf(cmd, sizeof(cmd), "curl -s --http2-prior-knowledge http://127.0.0.1:%u/stream?n=1000",
             S.port);
    cr_assert_eq(run_cmd(cmd, out, sizeof(out)), 0);
    check_stream_lines(out, 1000);
}

Test(h2, flow_control_window_is_honoured)
{
    struct h2c c;
    int32_t id;
    struct h2c_stream *st;

    cr_assert(h2c_open(&c, S.port, 1000, true));
    id = h2c_request(&c, "GET", "/big?bytes=300000", NULL, 0);
    st = h2c_stream(&c, id);
    cr_assert(wait_int(&ts.waiting, 1, 2000), "the writer never felt backpressure");
    for (int i = 0; i < 10; i++)
        h2c_pump(&c, 20);
    cr_expect_eq(st->len, 1000, "the server overran the window: %zu", st->len);
    cr_expect_eq(atomic_load(&ts.waiting), 1);
    cr_expect_eq(atomic_load(&ts.drains), 0);
    nghttp2_submit_window_update(c.s, NGHTTP2_FLAG_NONE, id, 1 << 20);
    nghttp2_submit_window_update(c.s, NGHTTP2_FLAG_NONE, 0, 1 << 20);
    cr_assert(h2c_wait_closed(&c, id, 3000));
    cr_expect_eq(st->len, 300000);
    cr_expect_gt(atomic_load(&ts.drains), 0);
    h2c_free(&c);
}

Test(h2, rst_stream_fires_on_close_and_connection_lives_on)
{
    struct h2c c;
    int32_t id, id2;

    cr_assert(h2c_open(&c, S.port, 0, false));
    id = h2c_request(&c, "GET", "/hang?start=1", NULL, 0);
    for (int i = 0; i < 100 && !h2c_stream(&c, id)->len; i++)
        h2c_pump(&c, 10);
    cr_assert_str_eq(h2c_stream(&c, id)->data, "started\n");
    cr_expect_eq(atomic_load(&ts.closes), 0);
    nghttp2_submit_rst_stream(c.s, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    h2c_pump(&c, 0);
    cr_expect(wait_int(&ts.closes, 1, 2000), "on_close did not fire on RST_STREAM");
    id2 = h2c_request(&c, "GET", "/hello", NULL, 0);
    cr_assert(h2c_wait_closed(&c, id2, 2000));
    cr_expect_eq(h2c_stream(&c, id2)->status, 200);
    cr_expect_eq(srv_stats(&S).streams_current, 0);
    h2c_free(&c);
}

Test(h2, connection_loss_fires_on_close_for_every_stream)
{
    struct h2c c;

    cr_assert(h2c_open(&c, S.port, 0, false));
    for (int i = 0; i < 3; i++)
        h2c_request(&c, "GET", "/hang", NULL, 0);
    for (int i = 0; i < 50 && srv_stats(&S).requests_total < 3; i++)
        h2c_pump(&c, 10);
    h2c_free(&c);
    cr_expect(wait_int(&ts.closes, 3, 2000));
    cr_expect(wait_for(srv_no_conns, &S, 2000));
    cr_expect_eq(srv_stats(&S).streams_current, 0);
}

Test(h2, body_over_limit_is_413)
{
    struct h2c c;
    char *body = calloc(1, 4096);
    int32_t id;

    cr_assert(h2c_open(&c, S.port, 0, false));
    id = h2c_request(&c, "POST", "/echo", body, 4096);
    cr_assert(h2c_wait_closed(&c, id, 2000));
    cr_expect_eq(h2c_stream(&c, id)->status, 413);
    cr_expect(strstr(h2c_stream(&c, id)->data, "RequestEntityTooLarge"));
    cr_expect_eq(srv_stats(&S).requests_total, 0);
    cr_expect_eq(srv_stats(&S).body_too_large, 1);
    id = h2c_request(&c, "GET", "/hello", NULL, 0); /* the connection is fine */
    cr_assert(h2c_wait_closed(&c, id, 2000));
    cr_expect_eq(h2c_stream(&c, id)->status, 200);
    free(body);
    h2c_free(&c);
}

Test(h2, oversize_header_list_is_431)
{
    struct h2c c;
    char path[3000] = "/echo?x=";
    int32_t id;

    memset(path + 8, 'a', sizeof(path) - 9);
    cr_assert(h2c_open(&c, S.port, 0, false));
    id = h2c_request(&c, "GET", path, NULL, 0);
    cr_assert(h2c_wait_closed(&c, id, 2000));
    cr_expect_eq(h2c_stream(&c, id)->status, 431);
    cr_expect_eq(srv_stats(&S).requests_total, 0);
    id = h2c_request(&c, "GET", "/hello", NULL, 0);
    cr_assert(h2c_wait_closed(&c, id, 2000));
    cr_expect_eq(h2c_stream(&c, id)->status, 200);
    h2c_free(&c);
}

Test(h2, goaway_lets_the_stream_finish_then_closes)
{
    struct h2c c;
    int32_t id;

    cr_assert(h2c_open(&c, S.port, 0, false));
    id = h2c_request(&c, "GET", "/goaway", NULL, 0);
    cr_assert(h2c_wait_closed(&c, id, 2000));
    cr_expect_eq(h2c_stream(&c, id)->status, 200);
    cr_expect_str_eq(h2c_stream(&c, id)->data, "bye\n");
    for (int i = 0; i < 100 && !c.eof; i++)
        h2c_pump(&c, 10);
    cr_expect(c.goaway);
    cr_expect_eq(c.goaway_error, NGHTTP2_NO_ERROR);
    cr_expect(c.eof, "connection not closed after GOAWAY");
    cr_expect_eq(srv_stats(&S).goaways_sent, 1);
    h2c_free(&c);
}

Test(h2, shutdown_sends_goaway_to_idle_and_busy)
{
    struct h2c idle, busy;
    int32_t id;

    cr_assert(h2c_open(&idle, S.port, 0, false));
    cr_assert(h2c_open(&busy, S.port, 0, false));
    id = h2c_request(&busy, "GET", "/shutdown", NULL, 0);
    cr_assert(h2c_wait_closed(&busy, id, 2000));
    cr_expect_eq(h2c_stream(&busy, id)->status, 200);
    for (int i = 0; i < 100 && !(idle.eof && busy.eof); i++) {
        h2c_pump(&idle, 5);
        h2c_pump(&busy, 5);
    }
    cr_expect(idle.goaway && busy.goaway);
    cr_expect(idle.eof && busy.eof);
    h2c_free(&idle);
    h2c_free(&busy);
}

Test(h2, idle_connection_gets_goaway)
{
    struct h2c c;

    cr_assert(h2c_open(&c, S.port, 0, false));
    for (int i = 0; i < 200 && !c.eof; i++)
        h2c_pump(&c, 10);
    cr_expect(c.goaway);
    cr_expect(c.eof);
    cr_expect_geq(srv_stats(&S).timeouts, 1);
    h2c_free(&c);
}

/*
 * Raw bytes after a valid preface; the server must drop the connection.
 * *goaway_code is the error code of the GOAWAY it sent, or -1 for none.
 */
static bool hostile(const void *frames, size_t len, long *goaway_code)
{
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    static const unsigned char settings[] = {0, 0, 0, 4, 0, 0, 0, 0, 0};
    char buf[4096];
    bool closed;
    int fd = tcp_connect(S.port, 0);
    size_t n;

    send_all(fd, preface, sizeof(preface) - 1);
    send_all(fd, settings, sizeof(settings));
    send_all(fd, frames, len);
    n = read_all(fd, buf, sizeof(buf), 2000, &closed);
    close(fd);
    *goaway_code = -1;
    for (size_t off = 0; off + 9 <= n;) { /* walk the frames the server sent */
        const unsigned char *f = (const unsigned char *)buf + off;
        size_t flen = (size_t)f[0] << 16 | (size_t)f[1] << 8 | f[2];

        if (f[3] == 7 && off + 9 + 8 <= n) /* GOAWAY: last-stream-id, error code */
            *goaway_code = (long)((uint32_t)f[13] << 24 | (uint32_t)f[14] << 16 |
                                  (uint32_t)f[15] << 8 | f[16]);
        off += 9 + flen;
    }
    return closed;
}

Test(h2, hostile_frames_close_only_their_connection)
{
    /* SETTINGS with a length that is not a multiple of 6 */
    static const unsigned char bad_settings[] = {0, 0, 5, 4, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5};
    /* HEADERS on stream 0 */
    static const unsigned char headers0[] = {0, 0, 1, 1, 5, 0, 0, 0, 0, 0x82};
    /* DATA on an idle stream */
    static const unsigned char data_idle[] = {0, 0, 1, 0, 1, 0, 0, 0, 1, 'x'};
    /* WINDOW_UPDATE of 0 on the connection */
    static const unsigned char wu0[] = {0, 0, 4, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    unsigned char junk[4096];
    struct h2c good;
    long goaway;
    int32_t id;

    cr_assert(h2c_open(&good, S.port, 0, false));
    cr_expect(hostile(bad_settings, sizeof(bad_settings), &goaway));
    cr_expect_eq(goaway, NGHTTP2_FRAME_SIZE_ERROR);
    cr_expect(hostile(headers0, sizeof(headers0), &goaway));
    cr_expect_eq(goaway, NGHTTP2_PROTOCOL_ERROR);
    cr_expect(hostile(data_idle, sizeof(data_idle), &goaway));
    cr_expect_eq(goaway, NGHTTP2_PROTOCOL_ERROR);
    cr_expect(hostile(wu0, sizeof(wu0), &goaway));
    cr_expect_eq(goaway, NGHTTP2_PROTOCOL_ERROR);
    srand(7);
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (unsigned char)rand();
    cr_expect(hostile(junk, sizeof(junk), &goaway));
    cr_expect_geq(srv_stats(&S).protocol_errors, 5);
    /* the good connection did not notice */
    id = h2c_request(&good, "GET", "/hello", NULL, 0);
    cr_assert(h2c_wait_closed(&good, id, 2000));
    cr_expect_eq(h2c_stream(&good, id)->status, 200);
    h2c_free(&good);
}

Test(h2, bad_preface_is_not_http2)
{
    char buf[1024];
    bool closed;
    int fd = tcp_connect(S.port, 0);

    send_str(fd, "PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n");
    read_all(fd, buf, sizeof(buf), 2000, &closed);
    cr_expect(strncmp(buf, "HTTP/1.1 400 ", 13) == 0, "%s", buf);
    cr_expect(closed);
    close(fd);
}

Test(h2, goaway_coin_is_fair)
{
    int heads = 0;

    for (int i = 0; i < 20000; i++)
        heads += px_coin(0.02);
    cr_expect(heads > 250 && heads < 550, "%d", heads);
    cr_expect_not(px_coin(0));
}
