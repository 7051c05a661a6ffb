/* protobuf envelope and generated bindings against the upstream fixtures */
#include "cache/codec/codec.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include "k8s_core_v1.pb-c.h"
#include <protobuf-c/protobuf-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Unpack the object with the generated code and pack it again. */
static bool repacks_identically(const struct codec_type *t, struct codec_str raw)
{
    ProtobufCMessage *m = protobuf_c_message_unpack(t->pb, NULL, raw.len, (const uint8_t *)raw.ptr);
    cr_assert_not_null(m, "%s: protobuf-c cannot unpack the fixture", t->kind);
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *out = malloc(n ? n : 1);
    protobuf_c_message_pack(m, out);
    bool same = n == raw.len && memcmp(out, raw.ptr, n) == 0;
    if (!same)
        fprintf(stderr, "%s: re-pack differs (%zu vs %zu bytes, %u unknown fields)\n", t->kind, n,
                raw.len, m->n_unknown_fields);
    free(out);
    protobuf_c_message_free_unpacked(m, NULL);
    return same;
}

Test(envelope, fixtures_unpack_and_repack_byte_exact)
{
    char **names;
    size_t n = tu_list_api_fixtures(&names), known = 0;
    cr_assert_gt(n, 10, "fixtures missing under %s", FIXTURES_DIR);
    for (size_t i = 0; i < n; i++) {
        char rel[512];
        size_t len;
        snprintf(rel, sizeof(rel), "k8s-api/%s.pb", names[i]);
        char *buf = tu_read_fixture(rel, &len);
        cr_assert_not_null(buf);
        struct codec_envelope env;
        cr_assert_eq(codec_pb_envelope_parse(buf, len, &env), 0, "%s", names[i]);
        const struct codec_type *t = codec_type_by_kind(env.api_version, env.kind);
        if (t) { /* apps/v1 and events.k8s.io are not in our schema subset */
            known++;
            cr_expect(repacks_identically(t, env.raw), "%s", names[i]);
        }
        /* the envelope itself is rebuilt byte for byte */
        struct codec_buf b;
        codec_buf_init(&b);
        char av[128], kind[128];
        snprintf(av, sizeof(av), "%.*s", (int)env.api_version.len, env.api_version.ptr);
        snprintf(kind, sizeof(kind), "%.*s", (int)env.kind.len, env.kind.ptr);
        cr_assert_eq(codec_pb_envelope_write(&b, av, kind, env.raw.ptr, env.raw.len), 0);
        cr_expect(b.len == len && memcmp(b.data, buf, len) == 0, "%s: envelope differs", names[i]);
        codec_buf_free(&b);
        free(buf);
    }
    cr_expect_eq(known, 11); /* core, discovery, coordination fixtures */
    tu_free_names(names, n);
}

Test(envelope, recordings_parse)
{
    const char *files[] = {"recordings/get-pod-protobuf.body.bin",
                           "recordings/list-pods-protobuf.body.bin",
                           "recordings/get-missing-protobuf.body.bin"};
    const char *kinds[] = {"Pod", "PodList", "Status"};
    for (size_t i = 0; i < 3; i++) {
        size_t len;
        char *buf = tu_read_fixture(files[i], &len);
        cr_assert_not_null(buf);
        struct codec_envelope env;
        cr_assert_eq(codec_pb_envelope_parse(buf, len, &env), 0);
        cr_expect(codec_str_eq(env.kind, kinds[i]));
        cr_expect(codec_str_eq(env.api_version, "v1"));
        cr_expect_eq(env.content_type.len, 0);
        cr_expect_eq(env.raw.ptr + env.raw.len + 4, buf + len); /* raw, then two empty fields */
        free(buf);
    }
}

Test(envelope, bad_magic_and_truncation)
{
    struct codec_envelope env;
    cr_expect_eq(codec_pb_envelope_parse("", 0, &env), -EPROTO);
    cr_expect_eq(codec_pb_envelope_parse("k8s", 3, &env), -EPROTO);
    cr_expect_eq(codec_pb_envelope_parse("{\"kind\":1}", 10, &env), -EPROTO);
    /* magic alone: an empty Unknown is valid (all fields absent) */
    cr_expect_eq(codec_pb_envelope_parse("k8s\0", 4, &env), 0);
    cr_expect_eq(env.raw.len, 0);

    size_t len;
    char *buf = tu_read_fixture("recordings/get-pod-protobuf.body.bin", &len);
    cr_assert_not_null(buf);
    /* every proper prefix that cuts a field is rejected, never read past */
    size_t rejected = 0;
    for (size_t cut = 5; cut < len; cut++) {
        char *copy = malloc(cut);
        memcpy(copy, buf, cut);
        int rc = codec_pb_envelope_parse(copy, cut, &env);
        cr_assert(rc == 0 || rc == -EBADMSG);
        rejected += rc == -EBADMSG;
        free(copy);
    }
    cr_expect_geq(rejected, len - 5 - 4); /* only the cuts between whole fields parse */
    free(buf);
}

Test(envelope, absurd_lengths)
{
    struct codec_envelope env;
    /* raw claims 2^62 bytes */
    const char huge[] = "k8s\0\x12\x80\x80\x80\x80\x80\x80\x80\x80\x40";
    cr_expect_eq(codec_pb_envelope_parse(huge, sizeof(huge) - 1, &env), -EBADMSG);
    /* varint longer than 10 bytes */
    const char longv[] = "k8s\0\x12\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01";
    cr_expect_eq(codec_pb_envelope_parse(longv, sizeof(longv) - 1, &env), -EBADMSG);
    /* typeMeta with a wrong wire type */
    const char wt[] = "k8s\0\x08\x01";
    cr_expect_eq(codec_pb_envelope_parse(wt, sizeof(wt) - 1, &env), -EBADMSG);
    /* field number zero */
    const char zero[] = "k8s\0\x02\x00";
    cr_expect_eq(codec_pb_envelope_parse(zero, sizeof(zero) - 1, &env), -EBADMSG);
}

Test(types, lookup)
{
    struct codec_str av = {"discovery.k8s.io/v1", 19}, k = {"EndpointSlice", 13};
    const struct codec_type *t = codec_type_by_kind(av, k);
    cr_assert_not_null(t);
    cr_expect_eq(t->id, CODEC_KIND_ENDPOINTSLICE);
    cr_expect_eq(codec_type_by_resource("", "pods"), codec_type_get(CODEC_KIND_POD));
    cr_expect_null(codec_type_by_resource("apps", "pods"));
    cr_expect_null(codec_type_get(CODEC_KIND_UNKNOWN));
    cr_expect_null(codec_type_get(CODEC_KIND_COUNT));
    for (int i = 1; i < CODEC_KIND_COUNT; i++)
        cr_expect_eq(codec_type_get((enum codec_kind)i)->id, i);
}

/*
 * What protobuf-c 1.4 does with fields our schema lacks (a newer server's):
 * it keeps them, but packs them after all known fields. So an object re-packs
 * byte-exactly only if its unknown fields came last; kube-sim and kfront must
 * keep the original bytes rather than re-pack.
 */
static size_t repack(const char *in, size_t n, uint8_t *out, unsigned *unknown)
{
    ProtobufCMessage *m = protobuf_c_message_unpack(&k8s__io__api__core__v1__config_map__descriptor,
                                                    NULL, n, (const uint8_t *)in);
    cr_assert_not_null(m);
    *unknown = m->n_unknown_fields;
    size_t len = protobuf_c_message_pack(m, out);
    protobuf_c_message_free_unpacked(m, NULL);
    return len;
}

Test(envelope, protobuf_c_unknown_fields_move_to_the_end)
{
    /* ConfigMap{metadata{name "a"}, data{"k": "v"}} with field 99 (varint 1) */
    const char meta[] = "\x0a\x03\x0a\x01"
                        "a";
    const char data[] = "\x12\x06\x0a\x01k\x12\x01v";
    const char unk[] = "\x98\x06\x01";
    char last[32], middle[32];
    uint8_t out[64];
    unsigned unknown;
    size_t n = 0;
    memcpy(last, meta, 5), n = 5;
    memcpy(last + n, data, 8), n += 8;
    memcpy(last + n, unk, 3), n += 3;
    memcpy(middle, meta, 5);
    memcpy(middle + 5, unk, 3);
    memcpy(middle + 8, data, 8);
    cr_assert_eq(repack(last, n, out, &unknown), n);
    cr_expect_eq(unknown, 1);
    cr_expect_eq(memcmp(out, last, n), 0, "unknown field at the end: byte-exact");
    cr_assert_eq(repack(middle, n, out, &unknown), n);
    cr_expect_eq(memcmp(out, last, n), 0, "unknown field in the middle: moved to the end");
}
