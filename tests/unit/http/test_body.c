/*
 * Streamed request bodies (px_server_config.stream_body) over HTTP/1.1 and
 * HTTP/2: bytes in order whatever the framing, pause and resume held back
 * by real flow control, the limit and the timeout mid-stream, a client that
 * leaves, a handler that answers early, and a receiver that comes late.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/core.h"
#include "harness.h"

static struct srv S;

/* ---- the streaming handler (runs on the server thread) ------------------------------ */

static struct {
    atomic_int ends, closes, data_calls, pauses;
    atomic_int last_error;
    atomic_size_t delivered;
    struct px_request *_Atomic paused;
} sb;

struct sb_req {
    uint64_t hash;
    size_t len;
    bool pause_first;
};

static uint64_t fnv(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;

    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}
#define FNV_START 0xcbf29ce484222325ull

static void sb_answer(struct px_request *req, const struct sb_req *b)
{
    char out[80];
    int n =
        snprintf(out, sizeof(out), "len=%zu hash=%016llx\n", b->len, (unsigned long long)b->hash);

    px_response_simple(req, 200, "text/plain", out, (size_t)n);
}

static int sb_data(struct px_request *req, const void *data, size_t len, void *arg)
{
    struct sb_req *b = arg;

    b->hash = fnv(b->hash, data, len);
    b->len += len;
    atomic_fetch_add(&sb.delivered, len);
    if (atomic_fetch_add(&sb.data_calls, 1) == 0 && b->pause_first) {
        atomic_store(&sb.paused, req);
        atomic_fetch_add(&sb.pauses, 1);
        return KF_AGAIN;
    }
    return 0;
}

static void sb_end(struct px_request *req, int error, void *arg)
{
    atomic_store(&sb.last_error, error);
    if (error == 0)
        sb_answer(req, arg);
    else if (px_response_started(req))
        px_response_abort(req);
    else
        px_response_simple(req,
                           error == -EMSGSIZE    ? 413
                           : error == -ETIMEDOUT ? 408
                                                 : 400,
                           NULL, "body failed\n", 12);
    atomic_fetch_add(&sb.ends, 1);
}

static void sb_close(struct px_request *req, void *arg)
{
    (void)arg;
    atomic_fetch_add(&sb.closes, 1);
    px_response_end(req);
}

static void late_register(evutil_socket_t fd, short what, void *arg)
{
    struct px_request *req = arg;
    struct sb_req *b = kf_arena_alloc(px_request_arena(req), sizeof(*b));

    (void)fd;
    (void)what;
    *b = (struct sb_req){.hash = FNV_START};
    cr_assert_eq(px_request_body_stream(req, sb_data, sb_end, b), 0);
}

static void sb_handler(struct px_request *req, void *arg)
{
    const char *p = px_request_path(req);
    struct sb_req *b = kf_arena_alloc(px_request_arena(req), sizeof(*b));
    static const struct timeval late = {0, 100 * 1000};
    size_t blen;

    (void)arg;
    *b = (struct sb_req){.hash = FNV_START, .pause_first = px_request_query(req, "pause") != NULL};
    if (!px_request_body_streamed(req)) { /* a request without a body, or not /sbody */
        const char *body = px_request_body(req, &blen);

        b->hash = fnv(b->hash, body, blen);
        b->len = blen;
        sb_answer(req, b);
        return;
    }
    px_request_on_close(req, sb_close, NULL);
    cr_assert_eq(px_request_body_stream(req, NULL, sb_end, b), -EINVAL);
    if (strcmp(p, "/sbody/early") == 0)
        px_response_simple(req, 200, "text/plain", "early\n", 6);
    else if (strcmp(p, "/sbody/late") == 0)
        event_base_once(S.base, -1, EV_TIMEOUT, late_register, req, &late);
    else if (strcmp(p, "/sbody/ignore") != 0)
        cr_assert_eq(px_request_body_stream(req, sb_data, sb_end, b), 0);
}

static bool stream_sbody(const struct px_request *req, void *arg)
{
    (void)arg;
    return strncmp(px_request_path(req), "/sbody", 6) == 0;
}

static void start(size_t max_body, unsigned body_timeout_ms)
{
    struct px_server_config cfg = {.handler = sb_handler,
                                   .stream_body = stream_sbody,
                                   .max_body_bytes = max_body,
                                   .body_timeout_ms = body_timeout_ms};

    memset(&sb, 0, sizeof(sb));
    srv_start(&S, &cfg);
}

static void setup_big(void)
{
    start(64 << 20, 2000);
}

static void setup_small(void)
{
    start(256 * 1024, 300);
}

static void teardown(void)
{
    srv_stop(&S);
}

TestSuite(sbody, .init = setup_big, .fini = teardown);
TestSuite(sbody_limits, .init = setup_small, .fini = teardown);

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    px_request_body_resume(atomic_load(&sb.paused));
}

static void resume_on_server(void)
{
    static const struct timeval now = {0, 0};

    event_base_once(S.base, -1, EV_TIMEOUT, resume_cb, NULL, &now);
}

/* ---- client helpers ------------------------------------------------------------------------- */

static uint8_t *pattern(size_t len)
{
    uint8_t *p = malloc(len ? len : 1);

    cr_assert_not_null(p);
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)((i * 2654435761u) >> 13);
    return p;
}

static void expect_answer(const char *got, const uint8_t *body, size_t len)
{
    char want[80];

    snprintf(want, sizeof(want), "len=%zu hash=%016llx\n", len,
             (unsigned long long)fnv(FNV_START, body, len));
    cr_assert(got && strstr(got, want), "want %s got: %s", want, got ? got : "(null)");
}

/* body as HTTP/1.1 chunks of random sizes, in one buffer */
static char *chunked(const uint8_t *body, size_t len, unsigned seed, size_t *wire_len)
{
    char *w = malloc(len + len / 2 + 64);
    size_t o = 0;

    cr_assert_not_null(w);
    for (size_t off = 0; off < len;) {
        size_t n = 1 + (size_t)rand_r(&seed) % 9000;

        n = n < len - off ? n : len - off;
        o += (size_t)sprintf(w + o, "%zx\r\n", n);
        memcpy(w + o, body + off, n);
        o += n;
        memcpy(w + o, "\r\n", 2);
        o += 2;
        off += n;
    }
    memcpy(w + o, "0\r\n\r\n", 5);
    *wire_len = o + 5;
    return w;
}

/* Send in pieces of random size, with short pauses, so reads split anywhere. */
static void send_pieces(int fd, const char *w, size_t len, unsigned seed)
{
    for (size_t off = 0; off < len;) {
        size_t n = 1 + (size_t)rand_r(&seed) % 3000;

        n = n < len - off ? n : len - off;
        send_all(fd, w + off, n);
        off += n;
        if (rand_r(&seed) % 8 == 0)
            usleep(200);
    }
}

/* HTTP/2 body source: DATA frames of random sizes; stops (DEFERRED) at `stop` if set. */
struct src {
    const uint8_t *p;
    size_t len, off, stop;
    unsigned seed;
};

static ssize_t src_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                        nghttp2_data_source *ds, void *u)
{
    struct src *x = ds->ptr;
    size_t limit = x->stop ? x->stop : x->len;
    size_t n = 1 + (size_t)rand_r(&x->seed) % 5000;

    (void)s;
    (void)id;
    (void)u;
    if (x->off >= limit && limit < x->len)
        return NGHTTP2_ERR_DEFERRED;
    n = n < len ? n : len;
    n = n < limit - x->off ? n : limit - x->off;
    memcpy(buf, x->p + x->off, n);
    x->off += n;
    if (x->off == x->len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static int32_t h2_post(struct h2c *c, const char *path, struct src *x)
{
    nghttp2_nv nva[] = {
        {(uint8_t *)":method", (uint8_t *)"POST", 7, 4, 0},
        {(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0},
        {(uint8_t *)":authority", (uint8_t *)"test", 10, 4, 0},
        {(uint8_t *)":path", (uint8_t *)path, 5, strlen(path), 0},
    };
    nghttp2_data_provider prd = {.source.ptr = x, .read_callback = src_read};
    int32_t id = nghttp2_submit_request(c->s, NULL, nva, 4, &prd, NULL);

    cr_assert_gt(id, 0);
    c->st[c->nst++] = (struct h2c_stream){.id = id};
    h2c_pump(c, 0);
    return id;
}

/* The connection still serves requests (after a stream of it failed or was reset). */
static void expect_conn_lives(struct h2c *c)
{
    int32_t id = h2c_request(c, "GET", "/plain", NULL, 0);

    cr_assert(h2c_wait_closed(c, id, 2000));
    cr_expect_eq(h2c_stream(c, id)->status, 200);
}

/* Read an HTTP/1.1 answer of sb_answer up to its end of line. */
static void read_answer(int fd, char *buf, size_t cap, int ms)
{
    read_until(fd, buf, cap, "hash=", ms);
    read_until(fd, buf + strlen(buf), cap - strlen(buf), "\n", 500);
}

static void pump_for(struct h2c *c, int ms)
{
    uint64_t end = kf_now_ms() + (uint64_t)ms;

    while (kf_now_ms() < end && h2c_pump(c, 10))
        ;
}

/* ---- HTTP/1.1 ------------------------------------------------------------------------------- */

Test(sbody, h1_chunked_and_content_length_in_order_then_keep_alive)
{
    size_t len = 700 * 1024, wlen;
    uint8_t *body = pattern(len);
    char *wire = chunked(body, len, 11, &wlen), head[128], buf[512];
    int fd = tcp_connect(S.port, 0);

    send_str(fd, "POST /sbody HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    send_pieces(fd, wire, wlen, 5);
    read_answer(fd, buf, sizeof(buf), 3000);
    expect_answer(buf, body, len);
    cr_expect(strstr(buf, "Connection: close") == NULL, "%s", buf);
    /* the same connection: a Content-Length body, then a bodiless request pipelined after it */
    snprintf(head, sizeof(head), "POST /sbody HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n",
             len / 3);
    send_str(fd, head);
    send_pieces(fd, (const char *)body, len / 3, 9);
    send_str(fd, "GET /plain HTTP/1.1\r\nHost: t\r\n\r\n");
    read_until(fd, buf, sizeof(buf), "len=0 ", 3000);
    expect_answer(buf, body, len / 3);
    cr_expect_eq(atomic_load(&sb.ends), 2);
    cr_expect_eq(atomic_load(&sb.last_error), 0);
    cr_expect_eq(srv_stats(&S).requests_total, 3);
    close(fd);
    free(wire);
    free(body);
}

Test(sbody, h1_expect_100_continue)
{
    char buf[512];
    int fd = tcp_connect(S.port, 0);

    send_str(
        fd, "POST /sbody HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    read_until(fd, buf, sizeof(buf), "\r\n\r\n", 2000);
    cr_assert(strncmp(buf, "HTTP/1.1 100 Continue\r\n", 23) == 0, "%s", buf);
    send_str(fd, "hello");
    read_answer(fd, buf, sizeof(buf), 2000);
    expect_answer(buf, (const uint8_t *)"hello", 5);
    close(fd);
}

/* Bytes the client manages to push into a non-blocking socket in ms. */
static size_t push_until_blocked(int fd, const uint8_t *p, size_t len, int ms)
{
    size_t off = 0;
    uint64_t idle_since = kf_now_ms();

    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    while (off < len && kf_now_ms() - idle_since < (uint64_t)ms) {
        ssize_t n = send(fd, p + off, len - off, MSG_NOSIGNAL);

        if (n > 0) {
            off += (size_t)n;
            idle_since = kf_now_ms();
        } else {
            usleep(2000);
        }
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return off;
}

Test(sbody, h1_pause_stops_reading_the_socket)
{
    size_t len = 32 << 20, pushed, delivered;
    uint8_t *body = pattern(len);
    char head[128], buf[512];
    int fd = tcp_connect(S.port, 64 * 1024);
    int sndbuf = 64 * 1024;

    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    snprintf(head, sizeof(head),
             "POST /sbody?pause=1 HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n", len);
    send_str(fd, head);
    pushed = push_until_blocked(fd, body, len, 300);
    delivered = atomic_load(&sb.delivered);
    cr_expect_eq(atomic_load(&sb.pauses), 1);
    cr_expect_eq(atomic_load(&sb.data_calls), 1, "delivered after the pause");
    cr_expect_lt(pushed, len / 2, "the server kept reading: %zu bytes taken", pushed);
    usleep(200 * 1000); /* paused, not a timeout: nothing happens */
    cr_expect_eq(atomic_load(&sb.delivered), delivered);
    cr_expect_eq(atomic_load(&sb.ends), 0);
    resume_on_server();
    send_all(fd, body + pushed, len - pushed);
    read_answer(fd, buf, sizeof(buf), 5000);
    expect_answer(buf, body, len);
    close(fd);
    free(body);
}

Test(sbody, h1_receiver_registered_late_gets_every_byte)
{
    size_t len = 200 * 1024, wlen;
    uint8_t *body = pattern(len);
    char *wire = chunked(body, len, 3, &wlen), buf[512];
    int fd = tcp_connect(S.port, 0);

    send_str(fd, "POST /sbody/late HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    send_all(fd, wire, wlen);
    read_answer(fd, buf, sizeof(buf), 3000);
    expect_answer(buf, body, len);
    close(fd);
    free(wire);
    free(body);
}

Test(sbody, h1_early_answer_closes_the_connection)
{
    char buf[512];
    bool closed;
    int fd = tcp_connect(S.port, 0);

    send_str(fd, "POST /sbody/early HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\nabc");
    read_all(fd, buf, sizeof(buf), 2000, &closed);
    cr_expect(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", buf);
    cr_expect(strstr(buf, "Connection: close\r\n"), "%s", buf);
    cr_expect(strstr(buf, "\r\n\r\nearly\n"), "%s", buf);
    cr_expect(closed, "the unread body must not be parsed as a request");
    cr_expect_eq(atomic_load(&sb.ends), 0);
    close(fd);
}

Test(sbody, h1_client_gone_mid_body_fires_on_close)
{
    int fd = tcp_connect(S.port, 0);

    send_str(fd, "POST /sbody HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\nsome of it");
    cr_assert(wait_int(&sb.data_calls, 1, 2000));
    close(fd);
    cr_expect(wait_int(&sb.closes, 1, 2000), "on_close did not fire");
    cr_expect(wait_for(srv_no_conns, &S, 2000));
    cr_expect_eq(atomic_load(&sb.ends), 0, "no body callback after on_close");
    cr_expect_eq(srv_stats(&S).streams_current, 0);
}

Test(sbody_limits, h1_too_large_mid_stream_is_413)
{
    size_t len = 600 * 1024, wlen;
    uint8_t *body = pattern(len);
    char *wire = chunked(body, len, 1, &wlen), buf[1024];
    bool closed;
    int fd = tcp_connect(S.port, 0);

    send_str(fd, "POST /sbody HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    send_all(fd, wire, wlen); /* the server may close before all of it went */
    read_all(fd, buf, sizeof(buf), 2000, &closed);
    cr_expect(strncmp(buf, "HTTP/1.1 413 ", 13) == 0, "%s", buf);
    cr_expect(closed);
    cr_expect_eq(atomic_load(&sb.last_error), -EMSGSIZE);
    cr_expect_eq(srv_stats(&S).body_too_large, 1);
    cr_expect_leq(atomic_load(&sb.delivered), 256 * 1024);
    close(fd);
    free(wire);
    free(body);
}

Test(sbody_limits, h1_bad_chunk_mid_stream_is_400)
{
    char buf[1024];
    bool closed;
    int fd = tcp_connect(S.port, 0);

    send_str(fd, "POST /sbody HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "5\r\nhello\r\nzz\r\n");
    read_all(fd, buf, sizeof(buf), 2000, &closed);
    cr_expect(strncmp(buf, "HTTP/1.1 400 ", 13) == 0, "%s", buf);
    cr_expect(closed);
    cr_expect_eq(atomic_load(&sb.last_error), -EBADMSG);
    close(fd);
}

Test(sbody_limits, h1_stalled_body_times_out_with_408)
{
    char buf[1024];
    bool closed;
    int fd = tcp_connect(S.port, 0);
    uint64_t t0 = kf_now_ms();

    send_str(fd, "POST /sbody HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly this");
    read_all(fd, buf, sizeof(buf), 3000, &closed);
    cr_expect(strncmp(buf, "HTTP/1.1 408 ", 13) == 0, "%s", buf);
    cr_expect(closed);
    cr_expect_geq(kf_now_ms() - t0, 250);
    cr_expect_eq(atomic_load(&sb.last_error), -ETIMEDOUT);
    cr_expect_geq(srv_stats(&S).timeouts, 1);
    close(fd);
}

/* ---- HTTP/2 ------------------------------------------------------------------------------------
 */

Test(sbody, h2_random_frames_in_order_on_concurrent_streams)
{
    size_t len = 1 << 20;
    uint8_t *body = pattern(len);
    struct src x[3] = {{body, len, 0, 0, 1}, {body, len / 7, 0, 0, 2}, {body, 1, 0, 0, 3}};
    struct h2c c;
    int32_t ids[3];

    cr_assert(h2c_open(&c, S.port, 0, false));
    for (int i = 0; i < 3; i++)
        ids[i] = h2_post(&c, "/sbody", &x[i]);
    for (int i = 0; i < 3; i++) {
        cr_assert(h2c_wait_closed(&c, ids[i], 5000));
        cr_expect_eq(h2c_stream(&c, ids[i])->status, 200);
        expect_answer(h2c_stream(&c, ids[i])->data, body, x[i].len);
    }
    cr_expect_eq(atomic_load(&sb.ends), 3);
    h2c_free(&c);
    free(body);
}

Test(sbody, h2_pause_keeps_the_window_shut)
{
    size_t len = 2 << 20, sent;
    uint8_t *body = pattern(len);
    struct src x = {body, len, 0, 0, 7};
    struct h2c c;
    int32_t id;

    cr_assert(h2c_open(&c, S.port, 0, false));
    id = h2_post(&c, "/sbody?pause=1", &x);
    pump_for(&c, 300);
    sent = x.off;
    cr_expect_eq(atomic_load(&sb.pauses), 1);
    cr_expect_eq(nghttp2_session_get_stream_remote_window_size(c.s, id), 0,
                 "the client still has window while the handler is paused");
    cr_expect_leq(sent, atomic_load(&sb.delivered) + 256 * 1024, "sent %zu, delivered %zu", sent,
                  atomic_load(&sb.delivered));
    pump_for(&c, 200);
    cr_expect_eq(x.off, sent, "a WINDOW_UPDATE reopened a paused stream");
    cr_expect_eq(nghttp2_session_get_stream_remote_window_size(c.s, id), 0);
    /* other streams are not held back by the paused one */
    expect_conn_lives(&c);
    resume_on_server();
    cr_assert(h2c_wait_closed(&c, id, 5000));
    cr_expect_eq(h2c_stream(&c, id)->status, 200);
    expect_answer(h2c_stream(&c, id)->data, body, len);
    h2c_free(&c);
    free(body);
}

Test(sbody, h2_early_answer_resets_the_stream_without_error)
{
    uint8_t *body = pattern(100000);
    struct src x = {body, 100000, 0, 20000, 4};
    struct h2c c;
    int32_t id;

    cr_assert(h2c_open(&c, S.port, 0, false));
    id = h2_post(&c, "/sbody/early", &x);
    cr_assert(h2c_wait_closed(&c, id, 2000));
    cr_expect_eq(h2c_stream(&c, id)->status, 200);
    cr_expect_str_eq(h2c_stream(&c, id)->data, "early\n");
    cr_expect_eq(h2c_stream(&c, id)->error, NGHTTP2_NO_ERROR);
    expect_conn_lives(&c);
    cr_expect_eq(atomic_load(&sb.ends), 0);
    h2c_free(&c);
    free(body);
}

Test(sbody, h2_reset_mid_body_fires_on_close)
{
    uint8_t *body = pattern(100000);
    struct src x = {body, 100000, 0, 30000, 4};
    struct h2c c;
    int32_t id;

    cr_assert(h2c_open(&c, S.port, 0, false));
    id = h2_post(&c, "/sbody", &x);
    cr_assert(wait_int(&sb.data_calls, 1, 2000));
    nghttp2_submit_rst_stream(c.s, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    h2c_pump(&c, 0);
    cr_expect(wait_int(&sb.closes, 1, 2000), "on_close did not fire on RST_STREAM");
    cr_expect_eq(atomic_load(&sb.ends), 0);
    h2c_free(&c);
    cr_expect(wait_for(srv_no_conns, &S, 2000));
    cr_expect_eq(srv_stats(&S).streams_current, 0);
    free(body);
}

Test(sbody, h2_receiver_registered_late_and_ignored_body)
{
    uint8_t *body = pattern(300000);
    struct src late = {body, 300000, 0, 0, 8}, ign = {body, 300000, 0, 0, 9};
    struct h2c c;
    int32_t id;

    cr_assert(h2c_open(&c, S.port, 0, false));
    id = h2_post(&c, "/sbody/late", &late);
    cr_assert(h2c_wait_closed(&c, id, 3000));
    expect_answer(h2c_stream(&c, id)->data, body, 300000);
    /* a handler that never takes the body and never answers: the client is held at the window */
    int32_t id2 = h2_post(&c, "/sbody/ignore", &ign);
    pump_for(&c, 200);
    cr_expect_leq(ign.off, 256 * 1024);
    cr_expect_eq(nghttp2_session_get_stream_remote_window_size(c.s, id2), 0);
    h2c_free(&c);
    cr_expect(wait_int(&sb.closes, 1, 2000));
    free(body);
}

Test(sbody_limits, h2_too_large_mid_stream_is_413_and_the_connection_lives)
{
    uint8_t *body = pattern(1 << 20);
    struct src x = {body, 1 << 20, 0, 0, 5};
    struct h2c c;
    int32_t id;

    cr_assert(h2c_open(&c, S.port, 0, false));
    id = h2_post(&c, "/sbody", &x);
    cr_assert(h2c_wait_closed(&c, id, 3000));
    cr_expect_eq(h2c_stream(&c, id)->status, 413);
    cr_expect_eq(h2c_stream(&c, id)->error, NGHTTP2_NO_ERROR);
    cr_expect_lt(x.off, (size_t)(1 << 20), "the client was not stopped");
    cr_expect_eq(atomic_load(&sb.last_error), -EMSGSIZE);
    cr_expect_eq(srv_stats(&S).body_too_large, 1);
    expect_conn_lives(&c);
    h2c_free(&c);
    free(body);
}

Test(sbody_limits, h2_stalled_bodies_time_out)
{
    uint8_t *body = pattern(50000);
    struct src streamed = {body, 50000, 0, 1000, 6};
    struct h2c c;
    int32_t id, buffered;
    uint64_t t0 = kf_now_ms();

    cr_assert(h2c_open(&c, S.port, 0, false));
    id = h2_post(&c, "/sbody", &streamed);
    /* a buffered body that stalls too: the server answers it itself */
    struct src half = {body, 50000, 0, 1000, 7};
    buffered = h2_post(&c, "/plain", &half);
    cr_assert(h2c_wait_closed(&c, id, 3000));
    cr_assert(h2c_wait_closed(&c, buffered, 3000));
    cr_expect_geq(kf_now_ms() - t0, 250);
    cr_expect_eq(h2c_stream(&c, id)->status, 408);
    cr_expect_eq(h2c_stream(&c, buffered)->status, 408);
    cr_expect_eq(atomic_load(&sb.last_error), -ETIMEDOUT);
    cr_expect_geq(srv_stats(&S).timeouts, 2);
    h2c_free(&c);
    free(body);
}
