#include <criterion/criterion.h>

#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "core/core.h"

static struct event_base *base;
static struct bufferevent *bev;

static void setup(void)
{
    base = event_base_new();
    bev = bufferevent_socket_new(base, -1, 0); /* no socket: the output just stays */
    cr_assert(base && bev);
}

static void teardown(void)
{
    bufferevent_free(bev);
    event_base_free(base);
}

static void no_cleanup(const void *data, size_t len, void *arg)
{
    (void)data;
    (void)len;
    (void)arg;
}

static int chains(void)
{
    return evbuffer_peek(bufferevent_get_output(bev), -1, NULL, NULL, 0);
}

/* n answers as an HTTP/2 server queues them: frame headers copied, the payload by reference */
static size_t queue_answers(int n, const char *payload, size_t len)
{
    struct evbuffer *out = bufferevent_get_output(bev);

    for (int i = 0; i < n; i++) {
        cr_assert(evbuffer_add(out, "frame-headers", 13) == 0);
        cr_assert(evbuffer_add_reference(out, payload, len, no_cleanup, NULL) == 0);
    }
    return (size_t)n * (13 + len);
}

static bool output_is(int n, const char *payload, size_t len)
{
    struct evbuffer *out = bufferevent_get_output(bev);
    size_t total = evbuffer_get_length(out);
    const unsigned char *p = evbuffer_pullup(out, -1);

    if (total != (size_t)n * (13 + len))
        return false;
    for (int i = 0; i < n; i++, p += 13 + len)
        if (memcmp(p, "frame-headers", 13) != 0 || memcmp(p + 13, payload, len) != 0)
            return false;
    return true;
}

TestSuite(bev, .init = setup, .fini = teardown);

Test(bev, tls_output_in_pieces_becomes_contiguous)
{
    static char payload[4181];

    memset(payload, 'p', sizeof(payload));
    queue_answers(10, payload, sizeof(payload));
    cr_assert_eq(chains(), 20);
    kf_bev_send_now(bev, true);
    cr_expect_eq(chains(), 1, "one chain, cut into full records by the TLS writer");
    cr_expect(output_is(10, payload, sizeof(payload)));
}

Test(bev, plain_output_keeps_its_references)
{
    static char payload[4181];

    queue_answers(10, payload, sizeof(payload));
    kf_bev_send_now(bev, false); /* writev sends every chain in one call */
    cr_expect_eq(chains(), 20);
}

Test(bev, output_that_already_fills_records_is_not_copied)
{
    static char payload[40000];
    struct evbuffer_iovec v[2];

    queue_answers(1, payload, sizeof(payload));
    kf_bev_send_now(bev, true);
    cr_assert_eq(chains(), 2);
    cr_assert_eq(evbuffer_peek(bufferevent_get_output(bev), -1, NULL, v, 2), 2);
    cr_expect_eq(v[1].iov_base, (void *)payload, "the payload is still the caller's bytes");
}

Test(bev, a_large_output_of_small_pieces_is_coalesced_a_bounded_run_at_a_time)
{
    static char payload[600];
    struct evbuffer_iovec v;
    size_t total = queue_answers(1000, payload, sizeof(payload)); /* 2,000 pieces, 613 KB */

    memset(payload, 'q', sizeof(payload));
    kf_bev_send_now(bev, true);
    cr_assert_gt(chains(), 1000, "not copied beyond the run");
    cr_assert_eq(evbuffer_peek(bufferevent_get_output(bev), -1, NULL, &v, 1), 1);
    cr_expect_geq(v.iov_len, 64 * 1024);
    cr_expect_leq(v.iov_len, 256 * 1024);
    cr_expect_eq(evbuffer_get_length(bufferevent_get_output(bev)), total);
    cr_expect(output_is(1000, payload, sizeof(payload)));
}

Test(bev, small_pieces_before_a_big_chain_are_coalesced_and_the_big_chain_is_not_copied)
{
    static char payload[4181], bulk[100000];
    struct evbuffer *out = bufferevent_get_output(bev);
    struct evbuffer_iovec v[2];

    memset(payload, 'p', sizeof(payload));
    queue_answers(8, payload, sizeof(payload));
    cr_assert(evbuffer_add_reference(out, bulk, sizeof(bulk), no_cleanup, NULL) == 0);
    kf_bev_send_now(bev, true);
    cr_assert_eq(chains(), 2);
    cr_assert_eq(evbuffer_peek(out, -1, NULL, v, 2), 2);
    cr_expect_eq(v[0].iov_len, 8 * (13 + sizeof(payload)));
    cr_expect_eq(v[1].iov_base, (void *)bulk);
}
