/* watch stream readers: partial input, bounds, event splitting */
#include "cache/codec/codec.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

Test(stream, json_lines_byte_by_byte)
{
    /* feed a recorded stream one byte at a time: every event comes out whole, once */
    size_t len;
    char *body = tu_read_fixture("recordings/watch-pods-json.body.bin", &len);
    cr_assert_not_null(body);
    size_t expected = 0;
    for (size_t i = 0; i < len; i++)
        expected += body[i] == '\n';
    struct codec_watch_reader r;
    codec_watch_reader_init(&r, 0);
    size_t start = 0, got = 0;
    for (size_t avail = 0; avail <= len; avail++) {
        struct codec_str ev;
        size_t used;
        int rc;
        while ((rc = codec_watch_next_json(&r, body + start, avail - start, &ev, &used)) == 0) {
            cr_assert_eq(ev.ptr, body + start);
            cr_assert_eq(body[start + used - 1], '\n');
            start += used;
            got++;
        }
        cr_assert_eq(rc, KF_AGAIN);
        start += used; /* blank lines may be dropped while waiting */
    }
    cr_expect_eq(got, expected);
    cr_expect_eq(start, len);
    free(body);
}

Test(stream, json_blank_lines_crlf_and_bounds)
{
    struct codec_watch_reader r;
    codec_watch_reader_init(&r, 16);
    struct codec_str ev;
    size_t used;
    const char *in = "\n \r\n{\"a\":1}\r\nrest";
    cr_assert_eq(codec_watch_next_json(&r, in, strlen(in), &ev, &used), 0);
    cr_expect(codec_str_eq(ev, "{\"a\":1}"));
    cr_expect_eq(used, strlen(in) - 4);
    /* a line longer than the bound, complete or not */
    cr_expect_eq(codec_watch_next_json(&r, "0123456789abcdefg\n", 18, &ev, &used), -EMSGSIZE);
    codec_watch_reader_init(&r, 16);
    cr_expect_eq(codec_watch_next_json(&r, "0123456789abcdefg", 17, &ev, &used), -EMSGSIZE);
    codec_watch_reader_init(&r, 16);
    cr_expect_eq(codec_watch_next_json(&r, "0123456789abcdef", 16, &ev, &used), KF_AGAIN);
}

Test(stream, pb_frames_partial_and_bounds)
{
    size_t len;
    char *body = tu_read_fixture("recordings/watch-pods-protobuf.body.bin", &len);
    cr_assert_not_null(body);
    struct codec_watch_reader r;
    codec_watch_reader_init(&r, 0);
    size_t start = 0, got = 0;
    for (size_t avail = 0; avail <= len; avail++) {
        struct codec_str ev;
        size_t used;
        int rc;
        while ((rc = codec_watch_next_pb(&r, body + start, avail - start, &ev, &used)) == 0) {
            struct codec_watch_event we;
            cr_assert_eq(codec_watch_event_parse_pb(ev.ptr, ev.len, &we), 0);
            start += used;
            got++;
        }
        cr_assert_eq(rc, KF_AGAIN);
    }
    cr_expect_eq(start, len);
    cr_expect_gt(got, 3);
    free(body);
    /* a length over the bound is refused before waiting for its bytes */
    struct codec_str ev;
    size_t used;
    codec_watch_reader_init(&r, 0);
    cr_expect_eq(codec_watch_next_pb(&r, "\x04\x00\x00\x01", 4, &ev, &used), -EMSGSIZE);
    codec_watch_reader_init(&r, 100);
    cr_expect_eq(codec_watch_next_pb(&r, "\x00\x00\x00\x65", 4, &ev, &used), -EMSGSIZE);
    cr_expect_eq(codec_watch_next_pb(&r, "\x00\x00\x00\x64", 4, &ev, &used), KF_AGAIN);
    cr_expect_eq(codec_watch_next_pb(&r, "\x00\x00", 2, &ev, &used), KF_AGAIN);
}

Test(stream, event_parsing)
{
    struct codec_watch_event ev;
    const char *fast = "{\"type\":\"MODIFIED\",\"object\":{\"a\":1}}";
    cr_assert_eq(codec_watch_event_parse_json(fast, strlen(fast), &ev), 0);
    cr_expect_eq(ev.type, CODEC_EV_MODIFIED);
    cr_expect(codec_str_eq(ev.object, "{\"a\":1}"));
    /* other member order and whitespace: tokenised */
    const char *slow = "{ \"object\" : {\"b\":[1]} , \"type\" : \"DELETED\" }";
    cr_assert_eq(codec_watch_event_parse_json(slow, strlen(slow), &ev), 0);
    cr_expect_eq(ev.type, CODEC_EV_DELETED);
    cr_expect(codec_str_eq(ev.object, "{\"b\":[1]}"));
    const char *bad[] = {"",
                         "{}",
                         "{\"type\":\"NOPE\",\"object\":{}}",
                         "{\"type\":\"ADDED\"}",
                         "{\"type\":\"ADDED\",\"object\":[]}",
                         "{\"type\":\"ADDED\",\"object\":{"};
    for (size_t i = 0; i < KF_ARRAY_SIZE(bad); i++)
        cr_expect_eq(codec_watch_event_parse_json(bad[i], strlen(bad[i]), &ev), -EBADMSG, "%s",
                     bad[i]);
    /* protobuf: wrong wire type, unknown type name, truncated */
    cr_expect_eq(codec_watch_event_parse_pb("\x08\x01", 2, &ev), -EBADMSG);
    cr_expect_eq(codec_watch_event_parse_pb("\x0a\x02XY", 4, &ev), -EBADMSG);
    cr_expect_eq(codec_watch_event_parse_pb("\x0a\x05"
                                            "ADD",
                                            5, &ev),
                 -EBADMSG);
    cr_expect_eq(codec_watch_event_parse_pb("\x0a\x05"
                                            "ADDED\x12\x02\x0a\x05",
                                            11, &ev),
                 -EBADMSG);
    cr_expect_eq(codec_watch_event_parse_pb("\x0a\x05"
                                            "ADDED\x12\x02\x0a\x00",
                                            11, &ev),
                 0);
    cr_expect_eq(ev.type, CODEC_EV_ADDED);
}

Test(stream, bookmarks)
{
    struct codec_buf b;
    codec_buf_init(&b);
    cr_assert_eq(
        codec_bookmark_json(&b, CODEC_KIND_CONFIGMAP, 42, CODEC_BOOKMARK_INITIAL_EVENTS_END), 0);
    const char want[] = "{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\",\"metadata\":{"
                        "\"resourceVersion\":\"42\",\"annotations\":{"
                        "\"k8s.io/initial-events-end\":\"true\"}}}";
    cr_expect(b.len == sizeof(want) - 1 && !memcmp(b.data, want, b.len), "%.*s", (int)b.len,
              b.data);
    /* the protobuf twin decodes to the same metadata */
    struct kf_arena *a = kf_arena_new(1024);
    struct codec_meta m;
    struct codec_str v;
    for (int k = CODEC_KIND_POD; k <= CODEC_KIND_CSIDRIVER; k++) {
        if (k == CODEC_KIND_BINDING) {
            cr_expect_eq(codec_bookmark_pb(&b, (enum codec_kind)k, 1, 0), -ENOENT);
            continue;
        }
        codec_buf_reset(&b);
        cr_assert_eq(
            codec_bookmark_pb(&b, (enum codec_kind)k, 7, CODEC_BOOKMARK_INITIAL_EVENTS_END), 0);
        cr_assert_eq(codec_meta_from_pb(b.data, b.len, CODEC_KIND_UNKNOWN, &m, a), 0);
        cr_expect_eq(m.kind, k);
        cr_expect_eq(m.rv, 7);
        cr_expect(m.n_annotations == 1 && codec_str_eq(m.annotations[0].value, "true"));
        codec_buf_reset(&b);
        cr_assert_eq(codec_bookmark_json(&b, (enum codec_kind)k, 7, 0), 0);
        cr_assert_eq(codec_meta_from_json(b.data, b.len, CODEC_KIND_UNKNOWN, &m, a), 0);
        cr_expect_eq(m.kind, k);
        cr_expect(!codec_meta_label(&m, "x", &v));
    }
    kf_arena_free(a);
    codec_buf_free(&b);
}
