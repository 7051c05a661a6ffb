/* SPDY/3.1 framing: frames both ways, compressed header blocks, and hostile input. */
#include "loadgen/kube-sim/kube_sim.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <zlib.h>

static struct ks_spdy client, server;
static struct evbuffer *wire;

static void setup(void)
{
    cr_assert_eq(ks_spdy_init(&client), 0);
    cr_assert_eq(ks_spdy_init(&server), 0);
    wire = evbuffer_new();
}

static void teardown(void)
{
    ks_spdy_free(&client);
    ks_spdy_free(&server);
    evbuffer_free(wire);
}

TestSuite(spdy, .init = setup, .fini = teardown);

/* Parse the next whole frame on the wire with codec s; returns parse's result. */
static int next_frame(struct ks_spdy *s, struct ks_spdy_frame *f)
{
    size_t size;
    uint8_t head[8];

    cr_assert_geq(evbuffer_get_length(wire), 8);
    evbuffer_copyout(wire, head, 8);
    cr_assert_eq(ks_spdy_frame_size(head, &size), 0);
    cr_assert_geq(evbuffer_get_length(wire), size);
    static uint8_t frame[KS_SPDY_MAX_DATA + 8];
    evbuffer_remove(wire, frame, size);
    return ks_spdy_parse(s, frame, size, f);
}

static struct ks_spdy_header hdr(const char *name, const char *value)
{
    return (struct ks_spdy_header){name, value, strlen(name), strlen(value)};
}

Test(spdy, dictionary_is_the_spdy3_one)
{
    size_t len;
    const uint8_t *d = ks_spdy_dictionary(&len);

    cr_expect_eq(len, 1423);
    cr_expect_eq(adler32(1, d, (uInt)len), 0xe3c6a7c2u);
    cr_expect(memcmp(d, "\0\0\0\7options\0\0\0\4head", 15) == 0);
}

Test(spdy, port_forward_streams_round_trip)
{
    struct ks_spdy_header h[3] = {hdr("streamtype", "error"), hdr("port", "80"),
                                  hdr("requestid", "0")};
    struct ks_spdy_frame f;
    char v[16];

    /* kubectl's two streams per connection: the second block continues the zlib stream */
    cr_assert_eq(ks_spdy_write_headers(&client, wire, KS_SPDY_SYN_STREAM, 1, 0, h, 3), 0);
    h[0] = hdr("streamtype", "data");
    cr_assert_eq(ks_spdy_write_headers(&client, wire, KS_SPDY_SYN_STREAM, 3, 0, h, 3), 0);
    for (uint32_t id = 1; id <= 3; id += 2) {
        cr_assert_eq(next_frame(&server, &f), 0);
        cr_expect_eq(f.type, KS_SPDY_SYN_STREAM);
        cr_expect_eq(f.stream_id, id);
        cr_expect_eq(f.n_headers, 3);
        cr_expect(ks_spdy_header(&f, "StreamType", v, sizeof(v)));
        cr_expect_str_eq(v, id == 1 ? "error" : "data");
        cr_expect(ks_spdy_header(&f, "port", v, sizeof(v)) && strcmp(v, "80") == 0);
        cr_expect(!ks_spdy_header(&f, "missing", v, sizeof(v)));
        cr_expect(!ks_spdy_header(&f, "port", v, 2), "a value that does not fit is refused");
    }
    /* the server's reply: an empty block, as spdystream's SendReply writes it */
    cr_assert_eq(ks_spdy_write_headers(&server, wire, KS_SPDY_SYN_REPLY, 3, 0, NULL, 0), 0);
    cr_assert_eq(next_frame(&client, &f), 0);
    cr_expect_eq(f.type, KS_SPDY_SYN_REPLY);
    cr_expect_eq(f.stream_id, 3);
    cr_expect_eq(f.n_headers, 0);
}

Test(spdy, data_and_control_frames)
{
    struct ks_spdy_frame f;
    uint8_t bytes[64];

    ks_spdy_write_data(wire, 3, "hello", 5, false);
    ks_spdy_write_data(wire, 3, "", 0, true);
    ks_spdy_write_control(wire, KS_SPDY_PING, 7, 0);
    ks_spdy_write_control(wire, KS_SPDY_RST_STREAM, 5, KS_SPDY_CANCEL);
    ks_spdy_write_control(wire, KS_SPDY_GOAWAY, 9, 0);
    /* exact bytes of the first frames (SPDY/3 section 2.2) */
    evbuffer_copyout(wire, bytes, 13 + 8 + 12);
    cr_expect(
        memcmp(bytes, "\0\0\0\3\0\0\0\5hello\0\0\0\3\1\0\0\0\x80\3\0\6\0\0\0\4\0\0\0\7", 33) == 0);
    cr_assert_eq(next_frame(&server, &f), 0);
    cr_expect(f.type == KS_SPDY_DATA && f.stream_id == 3 && f.len == 5 && f.flags == 0);
    cr_expect(memcmp(f.data, "hello", 5) == 0);
    cr_assert_eq(next_frame(&server, &f), 0);
    cr_expect(f.type == KS_SPDY_DATA && f.len == 0 && (f.flags & KS_SPDY_FLAG_FIN));
    cr_assert_eq(next_frame(&server, &f), 0);
    cr_expect(f.type == KS_SPDY_PING && f.value == 7);
    cr_assert_eq(next_frame(&server, &f), 0);
    cr_expect(f.type == KS_SPDY_RST_STREAM && f.stream_id == 5 && f.value == KS_SPDY_CANCEL);
    cr_assert_eq(next_frame(&server, &f), 0);
    cr_expect(f.type == KS_SPDY_GOAWAY && f.stream_id == 9 && f.value == 0);
}

/* A header block compressed by plain zlib with the dictionary, as Go's framer does it. */
static size_t zlib_block(const uint8_t *plain, size_t n, uint8_t *out, size_t size)
{
    z_stream z;
    size_t dlen;
    const uint8_t *d = ks_spdy_dictionary(&dlen);

    memset(&z, 0, sizeof(z));
    cr_assert_eq(deflateInit2(&z, 9, Z_DEFLATED, 15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    cr_assert_eq(deflateSetDictionary(&z, d, (uInt)dlen), Z_OK);
    z.next_in = (Bytef *)(uintptr_t)plain;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)size;
    cr_assert_eq(deflate(&z, Z_SYNC_FLUSH), Z_OK);
    size_t used = size - z.avail_out;
    deflateEnd(&z);
    return used;
}

/* A SYN_STREAM for stream 1 around block (already compressed, or raw garbage). */
static size_t syn_stream(uint8_t *frame, const uint8_t *block, size_t n)
{
    memcpy(frame, "\x80\3\0\1\0\0\0\0\0\0\0\1\0\0\0\0\0\0", 18);
    frame[5] = (uint8_t)((n + 10) >> 16);
    frame[6] = (uint8_t)((n + 10) >> 8);
    frame[7] = (uint8_t)(n + 10);
    memcpy(frame + 18, block, n);
    return n + 18;
}

Test(spdy, independent_zlib_block_parses)
{
    static const uint8_t plain[] = "\0\0\0\1\0\0\0\4port\0\0\0\4"
                                   "8080";
    uint8_t block[256], frame[300];
    struct ks_spdy_frame f;
    char v[8];

    size_t n = syn_stream(frame, block, zlib_block(plain, sizeof(plain) - 1, block, sizeof(block)));
    cr_assert_eq(ks_spdy_parse(&server, frame, n, &f), 0);
    cr_expect(ks_spdy_header(&f, "port", v, sizeof(v)) && strcmp(v, "8080") == 0);
}

static void expect_bad_block(const uint8_t *plain, size_t n, const char *what)
{
    struct ks_spdy s;
    uint8_t block[4096], *frame = malloc(n + 4200);
    struct ks_spdy_frame f;

    cr_assert_eq(ks_spdy_init(&s), 0);
    size_t len = syn_stream(frame, block, zlib_block(plain, n, block, sizeof(block)));
    cr_expect_eq(ks_spdy_parse(&s, frame, len, &f), -EPROTO, "%s", what);
    ks_spdy_free(&s);
    free(frame);
}

Test(spdy, bad_header_blocks_are_refused)
{
    expect_bad_block((const uint8_t *)"\0\0\0", 3, "short count");
    expect_bad_block((const uint8_t *)"\0\0\0\1\0\0\0\4po", 10, "name past the end");
    expect_bad_block((const uint8_t *)"\0\0\0\1\0\0\0\0\0\0\0\0", 12, "empty name");
    expect_bad_block((const uint8_t *)"\0\0\0\1\0\0\0\1p\0\0\0\5ab", 15, "value past the end");
    expect_bad_block((const uint8_t *)"\0\0\0\1\0\0\0\1p\0\0\0\0zz", 15, "bytes after the pairs");
    uint8_t many[4 + 33 * 10] = {0, 0, 0, 33};
    for (size_t i = 0; i < 33; i++) /* name "a", value "b" */
        memcpy(many + 4 + i * 10, "\0\0\0\1a\0\0\0\1b", 10);
    expect_bad_block(many, sizeof(many), "more pairs than allowed");
    expect_bad_block((const uint8_t *)"\xff\xff\xff\xff", 4, "a huge count");
    /* a small block that inflates past the bound */
    uint8_t *bomb = calloc(1, KS_SPDY_MAX_HEADER_BLOCK + 100);
    expect_bad_block(bomb, KS_SPDY_MAX_HEADER_BLOCK + 100, "decompression bomb");
    free(bomb);
}

Test(spdy, bad_frames_are_refused)
{
    struct ks_spdy_frame f;
    uint8_t frame[64], head[8] = {0x80, 3, 0, 1, 0, 0x10, 0, 0};
    size_t size;

    cr_expect_eq(ks_spdy_frame_size(head, &size), -EMSGSIZE, "1 MiB control frame");
    memcpy(head, "\0\0\0\1\0\x10\0\1", 8);
    cr_expect_eq(ks_spdy_frame_size(head, &size), -EMSGSIZE, "data frame over 1 MiB");
    memcpy(head, "\0\0\0\1\0\x10\0\0", 8);
    cr_expect_eq(ks_spdy_frame_size(head, &size), 0);
    cr_expect_eq(size, 8 + 1024 * 1024);
    /* version 2; lengths that do not fit the type; stream 0 */
    memcpy(frame, "\x80\2\0\6\0\0\0\4\0\0\0\1", 12);
    cr_expect_eq(ks_spdy_parse(&server, frame, 12, &f), -EPROTO, "version 2");
    memcpy(frame, "\x80\3\0\6\0\0\0\3\0\0\1", 11);
    cr_expect_eq(ks_spdy_parse(&server, frame, 11, &f), -EPROTO, "PING of 3 bytes");
    memcpy(frame, "\x80\3\0\3\0\0\0\x08\0\0\0\0\0\0\0\1", 16);
    cr_expect_eq(ks_spdy_parse(&server, frame, 16, &f), -EPROTO, "RST_STREAM of stream 0");
    memcpy(frame, "\x80\3\0\x09\0\0\0\x08\0\0\0\0\0\0\0\1", 16);
    cr_expect_eq(ks_spdy_parse(&server, frame, 16, &f), 0, "session WINDOW_UPDATE");
    memcpy(frame, "\0\0\0\0\1\0\0\0", 8);
    cr_expect_eq(ks_spdy_parse(&server, frame, 8, &f), -EPROTO, "DATA on stream 0");
    memcpy(frame, "\x80\3\0\4\0\0\0\x0c\0\0\0\2\0\0\0\1\0\0\0\1", 20);
    cr_expect_eq(ks_spdy_parse(&server, frame, 16, &f), -EPROTO, "length disagrees with size");
    cr_expect_eq(ks_spdy_parse(&server, frame, 20, &f), -EPROTO, "SETTINGS count 2 in 8 bytes");
    memcpy(frame, "\x80\3\0\x0b\0\0\0\2ab", 10);
    cr_expect_eq(ks_spdy_parse(&server, frame, 10, &f), 0, "an unknown type is ignored");
    cr_expect_eq(f.type, 11);
    cr_expect_eq(ks_spdy_parse(&server, frame, 7, &f), -EPROTO, "shorter than a head");
    /* a header block that is not zlib at all */
    size_t n = syn_stream(frame, (const uint8_t *)"garbage!", 8);
    cr_expect_eq(ks_spdy_parse(&server, frame, n, &f), -EPROTO, "not zlib");
    memcpy(frame, "\x80\3\0\1\0\0\0\x09\0\0\0\1\0\0\0\0\0", 17);
    cr_expect_eq(ks_spdy_parse(&server, frame, 17, &f), -EPROTO, "SYN_STREAM under 10 bytes");
}

/* Random frames and random mutations of good ones: any result, never a crash. */
Test(spdy, garbage_never_crashes)
{
    struct ks_spdy_header h[2] = {hdr("streamtype", "data"), hdr("port", "80")};
    uint8_t good[512], frame[2048];
    struct ks_spdy_frame f;
    unsigned seed = 12345;
    size_t size;
    int ok = 0;

    cr_assert_eq(ks_spdy_write_headers(&client, wire, KS_SPDY_SYN_STREAM, 1, 0, h, 2), 0);
    size_t good_len = evbuffer_remove(wire, good, sizeof(good));
    for (int round = 0; round < 5000; round++) {
        struct ks_spdy s;
        cr_assert_eq(ks_spdy_init(&s), 0);
        size_t len = good_len;
        memcpy(frame, good, len);
        if (round % 2) { /* random bytes behind a plausible head */
            len = 8 + (size_t)rand_r(&seed) % 600;
            for (size_t i = 0; i < len; i++)
                frame[i] = (uint8_t)rand_r(&seed);
            frame[0] = (uint8_t)(round % 4 == 1 ? 0x80 : frame[0] & 0x7f);
            frame[1] = 3;
            if (round % 8 == 1) { /* a length that fits what follows */
                frame[5] = 0;
                frame[6] = (uint8_t)((len - 8) >> 8);
                frame[7] = (uint8_t)(len - 8);
            }
        } else { /* flip a few bytes of a good SYN_STREAM */
            for (int k = 0; k < 1 + round % 4; k++)
                frame[(size_t)rand_r(&seed) % len] ^= (uint8_t)(1 + rand_r(&seed) % 255);
        }
        if (ks_spdy_frame_size(frame, &size) == 0 && size <= len) {
            int rc = ks_spdy_parse(&s, frame, size, &f);
            cr_assert(rc == 0 || rc == -EPROTO, "rc %d", rc);
            ok += rc == 0;
            for (size_t i = 0; rc == 0 && i < f.n_headers; i++)
                cr_assert(f.headers[i].name_len > 0 && f.headers[i].name_len < 600);
        }
        ks_spdy_free(&s);
    }
    cr_expect_gt(ok, 0, "some mutations still parse");
}
