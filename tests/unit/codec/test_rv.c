/* An object at another resourceVersion (codec_json_with_rv, codec_pb_with_rv), list pages
 * (codec_list_parse_json/pb) and Status codes, against the upstream fixtures. */
#include "cache/codec/codec.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include "k8s_meta_v1.pb-c.h"
#include <protobuf-c/protobuf-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NEW_RV 9876543210123ull

static bool str_same(struct codec_str a, struct codec_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* Every metadata field the codec extracts, except the resourceVersion. */
static void expect_meta_same_but_rv(const char *name, const struct codec_meta *a,
                                    const struct codec_meta *b)
{
    cr_expect(str_same(a->name, b->name), "%s: name", name);
    cr_expect(str_same(a->namespace_, b->namespace_), "%s: namespace", name);
    cr_expect(str_same(a->uid, b->uid), "%s: uid", name);
    cr_expect(str_same(a->generate_name, b->generate_name), "%s: generateName", name);
    cr_expect_eq(a->generation, b->generation, "%s: generation", name);
    cr_expect_eq(a->creation_ts, b->creation_ts, "%s: creation", name);
    cr_expect_eq(a->deleting, b->deleting, "%s: deleting", name);
    cr_assert_eq(a->n_labels, b->n_labels, "%s: labels", name);
    for (size_t i = 0; i < a->n_labels; i++)
        cr_expect(str_same(a->labels[i].value, b->labels[i].value), "%s: label %zu", name, i);
    cr_assert_eq(a->n_annotations, b->n_annotations, "%s: annotations", name);
    cr_assert_eq(a->n_owners, b->n_owners, "%s: owners", name);
    cr_assert_eq(a->n_fields, b->n_fields, "%s: fields", name);
    for (size_t i = 0; i < a->n_fields; i++)
        cr_expect(str_same(a->fields[i].value, b->fields[i].value), "%s: %s", name,
                  a->fields[i].path);
}

Test(with_rv, json_fixtures_change_only_the_rv)
{
    char **names;
    size_t n = tu_list_api_fixtures(&names), done = 0;
    char rvs[32];

    snprintf(rvs, sizeof(rvs), "%llu", NEW_RV);
    for (size_t i = 0; i < n; i++) {
        char rel[512];
        size_t len;
        snprintf(rel, sizeof(rel), "k8s-api/%s.json", names[i]);
        char *js = tu_read_fixture(rel, &len);
        cr_assert_not_null(js);
        struct kf_arena *arena = kf_arena_new(4096);
        struct codec_meta m0, m1;
        if (codec_meta_from_json(js, len, CODEC_KIND_UNKNOWN, &m0, arena) < 0) {
            kf_arena_free(arena); /* a type the codec does not know (apps/v1) */
            free(js);
            continue;
        }
        struct codec_buf b;
        codec_buf_init(&b);
        cr_assert_eq(codec_json_with_rv(&b, js, len, &m0, NEW_RV), 0, "%s", names[i]);
        cr_assert_eq(codec_meta_from_json(b.data, b.len, CODEC_KIND_UNKNOWN, &m1, arena), 0);
        cr_expect(m1.rv_valid && m1.rv == NEW_RV, "%s: rv", names[i]);
        cr_expect_eq(m1.resource_version.len, strlen(rvs));
        expect_meta_same_but_rv(names[i], &m0, &m1);
        /* the bytes: the input with that one string replaced */
        size_t off = (size_t)(m0.resource_version.ptr - js);
        cr_expect_eq(b.len, len - m0.resource_version.len + strlen(rvs));
        cr_expect(memcmp(b.data, js, off) == 0);
        cr_expect(memcmp(b.data + off, rvs, strlen(rvs)) == 0);
        cr_expect(memcmp(b.data + off + strlen(rvs), js + off + m0.resource_version.len,
                         len - off - m0.resource_version.len) == 0);
        codec_buf_free(&b);
        kf_arena_free(arena);
        free(js);
        done++;
    }
    cr_expect_geq(done, 11);
    tu_free_names(names, n);
}

Test(with_rv, json_refuses_an_rv_it_cannot_splice)
{
    static const char js[] = "{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\",\"metadata\":"
                             "{\"name\":\"a\",\"namespace\":\"b\"}}";
    struct kf_arena *arena = kf_arena_new(1024);
    struct codec_meta m;
    struct codec_buf b;

    codec_buf_init(&b);
    cr_assert_eq(codec_meta_from_json(js, sizeof(js) - 1, CODEC_KIND_UNKNOWN, &m, arena), 0);
    cr_expect_eq(codec_json_with_rv(&b, js, sizeof(js) - 1, &m, 5), -EBADMSG, "no RV");
    /* a slice outside the buffer (meta of another object) */
    m.resource_version.ptr = "12";
    m.resource_version.len = 2;
    cr_expect_eq(codec_json_with_rv(&b, js, sizeof(js) - 1, &m, 5), -EBADMSG, "foreign slice");
    codec_buf_free(&b);
    kf_arena_free(arena);
}

/* The object message's ObjectMeta (field 1 of every k8s object). */
static K8s__Io__Apimachinery__Pkg__Apis__Meta__V1__ObjectMeta **meta_of(ProtobufCMessage *m)
{
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(m->descriptor, 1);
    cr_assert_not_null(f);
    return (K8s__Io__Apimachinery__Pkg__Apis__Meta__V1__ObjectMeta **)((char *)m + f->offset);
}

static uint8_t *pack(ProtobufCMessage *m, size_t *n)
{
    *n = protobuf_c_message_get_packed_size(m);
    uint8_t *out = malloc(*n ? *n : 1);
    protobuf_c_message_pack(m, out);
    return out;
}

/* codec_pb_with_rv(env) must equal what protobuf-c packs for the object with meta's RV set
 * to rvs: byte for byte (Go and protobuf-c both write fields in number order). */
static void check_pb(const char *name, const struct codec_type *t, const char *env_buf,
                     size_t env_len, ProtobufCMessage *want)
{
    struct codec_buf b;
    struct codec_envelope env;
    char rvs[32];

    snprintf(rvs, sizeof(rvs), "%llu", NEW_RV);
    (*meta_of(want))->resourceversion = rvs;
    codec_buf_init(&b);
    cr_assert_eq(codec_pb_with_rv(&b, env_buf, env_len, NEW_RV), 0, "%s", name);
    cr_assert_eq(codec_pb_envelope_parse(b.data, b.len, &env), 0, "%s: envelope", name);
    size_t n;
    uint8_t *exp = pack(want, &n);
    cr_expect(env.raw.len == n && memcmp(env.raw.ptr, exp, n) == 0, "%s: %zu bytes vs %zu expected",
              name, env.raw.len, n);
    /* and the metadata the cache reads from it */
    struct kf_arena *arena = kf_arena_new(4096);
    struct codec_meta m;
    cr_assert_eq(codec_meta_from_pb(b.data, b.len, t->id, &m, arena), 0);
    cr_expect(m.rv_valid && m.rv == NEW_RV, "%s: rv", name);
    kf_arena_free(arena);
    free(exp);
    codec_buf_free(&b);
}

Test(with_rv, pb_fixtures_change_only_the_rv)
{
    char **names;
    size_t n = tu_list_api_fixtures(&names), done = 0;

    for (size_t i = 0; i < n; i++) {
        char rel[512];
        size_t len;
        snprintf(rel, sizeof(rel), "k8s-api/%s.pb", names[i]);
        char *buf = tu_read_fixture(rel, &len);
        struct codec_envelope env;
        cr_assert_eq(codec_pb_envelope_parse(buf, len, &env), 0, "%s", names[i]);
        const struct codec_type *t = codec_type_by_kind(env.api_version, env.kind);
        if (t) {
            ProtobufCMessage *m =
                protobuf_c_message_unpack(t->pb, NULL, env.raw.len, (const uint8_t *)env.raw.ptr);
            cr_assert_not_null(m);
            char *old = (*meta_of(m))->resourceversion;
            check_pb(names[i], t, buf, len, m);
            (*meta_of(m))->resourceversion = old;
            protobuf_c_message_free_unpacked(m, NULL);
            done++;
        }
        free(buf);
    }
    cr_expect_eq(done, 11);
    tu_free_names(names, n);
}

Test(with_rv, pb_inserts_a_missing_rv_in_field_order)
{
    size_t len;
    char *buf = tu_read_fixture("k8s-api/core.v1.Pod.pb", &len);
    struct codec_envelope env;
    cr_assert_eq(codec_pb_envelope_parse(buf, len, &env), 0);
    const struct codec_type *t = codec_type_by_kind(env.api_version, env.kind);
    ProtobufCMessage *m =
        protobuf_c_message_unpack(t->pb, NULL, env.raw.len, (const uint8_t *)env.raw.ptr);
    char *old = (*meta_of(m))->resourceversion;

    /* the same pod without a resourceVersion, re-enveloped */
    (*meta_of(m))->resourceversion = NULL;
    size_t n;
    uint8_t *raw = pack(m, &n);
    struct codec_buf e;
    codec_buf_init(&e);
    cr_assert_eq(codec_pb_envelope_write(&e, t->api_version, t->kind, raw, n), 0);
    check_pb("Pod without rv", t, e.data, e.len, m);
    /* with only fields before 6 (name, namespace): it goes at the end */
    K8s__Io__Apimachinery__Pkg__Apis__Meta__V1__ObjectMeta *full = *meta_of(m), small;
    k8s__io__apimachinery__pkg__apis__meta__v1__object_meta__init(&small);
    small.name = "p";
    small.namespace_ = "ns";
    *meta_of(m) = &small;
    free(raw);
    raw = pack(m, &n);
    codec_buf_reset(&e);
    cr_assert_eq(codec_pb_envelope_write(&e, t->api_version, t->kind, raw, n), 0);
    check_pb("Pod with a short meta", t, e.data, e.len, m);
    *meta_of(m) = full;
    full->resourceversion = old;
    codec_buf_free(&e);
    free(raw);
    protobuf_c_message_free_unpacked(m, NULL);
    free(buf);
}

Test(with_rv, pb_malformed_inputs_fail_cleanly)
{
    size_t len;
    char *buf = tu_read_fixture("k8s-api/core.v1.ConfigMap.pb", &len);
    struct codec_buf b;
    size_t ok = 0;

    cr_assert_not_null(buf);
    /* every truncation: no crash; an error, or (at a field boundary) a shorter valid object */
    for (size_t cut = 0; cut < len; cut++) {
        codec_buf_init(&b);
        int rc = codec_pb_with_rv(&b, buf, cut, 7);
        cr_expect(rc <= 0);
        if (rc == 0) {
            struct codec_envelope env;
            cr_expect_eq(codec_pb_envelope_parse(b.data, b.len, &env), 0, "cut %zu", cut);
            ok++;
        }
        codec_buf_free(&b);
    }
    cr_expect_lt(ok, len / 4, "most truncations must be refused");
    /* every single-byte corruption: no crash, no read past the input (ASan) */
    for (size_t i = 0; i < len; i++) {
        char *c = malloc(len);
        memcpy(c, buf, len);
        c[i] = (char)(c[i] ^ 0xff);
        codec_buf_init(&b);
        cr_expect_leq(codec_pb_with_rv(&b, c, len, 7), 0);
        codec_buf_free(&b);
        free(c);
    }
    codec_buf_init(&b);
    cr_expect_lt(codec_pb_with_rv(&b, "k8s", 3, 1), 0);
    cr_expect_lt(codec_pb_with_rv(&b, "{\"kind\":\"Pod\"}", 14, 1), 0);
    /* an envelope whose raw object has no metadata */
    cr_expect_lt(codec_pb_envelope_write(&b, "v1", "Pod", "\x1a\x00", 2), 1);
    struct codec_buf out;
    codec_buf_init(&out);
    cr_expect_lt(codec_pb_with_rv(&out, b.data, b.len, 1), 0, "no ObjectMeta");
    codec_buf_free(&out);
    codec_buf_free(&b);
    free(buf);
}

/* ---- list pages ---------------------------------------------------------------------------- */

struct items {
    size_t n;
    enum codec_kind kind;
    bool pb;
    int fail_at; /* return -ECANCELED at this item (-1: never) */
    char names[64][128];
};

static int take_item(const char *item, size_t len, void *arg)
{
    struct items *it = arg;
    struct kf_arena *arena;
    struct codec_meta m;
    int rc;

    if (it->fail_at >= 0 && (size_t)it->fail_at == it->n)
        return -ECANCELED;
    arena = kf_arena_new(2048);
    rc = it->pb ? codec_meta_from_pb(item, len, it->kind, &m, arena)
                : codec_meta_from_json(item, len, it->kind, &m, arena);
    cr_expect_eq(rc, 0, "item %zu does not parse", it->n);
    if (rc == 0 && it->n < 64)
        snprintf(it->names[it->n], sizeof(it->names[0]), "%.*s/%.*s", (int)m.namespace_.len,
                 m.namespace_.ptr, (int)m.name.len, m.name.ptr);
    it->n++;
    kf_arena_free(arena);
    return 0;
}

/* JSON and protobuf recordings of the same list give the same items and RV. */
static void parse_pair(const char *json_rel, const char *pb_rel, enum codec_kind kind,
                       bool want_continue)
{
    size_t jl, pl;
    char *js = tu_read_fixture(json_rel, &jl), *pb = tu_read_fixture(pb_rel, &pl);
    struct kf_arena *arena = kf_arena_new(4096);
    struct codec_list_page pj, pp;
    struct items *ij = calloc(1, sizeof(*ij)), *ip = calloc(1, sizeof(*ip));

    cr_assert(js && pb, "%s", json_rel);
    *ij = (struct items){.kind = kind, .fail_at = -1};
    *ip = (struct items){.kind = kind, .pb = true, .fail_at = -1};
    cr_assert_eq(codec_list_parse_json(js, jl, &pj, arena, take_item, ij), 0, "%s", json_rel);
    cr_assert_eq(codec_list_parse_pb(pb, pl, &pp, take_item, ip), 0, "%s", pb_rel);
    cr_expect_gt(pj.n_items, 0);
    cr_expect_eq(pj.n_items, ij->n);
    cr_expect_eq(pp.n_items, ip->n);
    cr_expect_eq(pj.n_items, pp.n_items, "%s: %zu vs %zu items", json_rel, pj.n_items, pp.n_items);
    for (size_t i = 0; i < ij->n && i < ip->n && i < 64; i++)
        cr_expect_str_eq(ij->names[i], ip->names[i]);
    cr_expect_gt(pj.resource_version.len, 0);
    cr_expect_eq(want_continue, pj.continue_token.len > 0, "%s: continue", json_rel);
    cr_expect_eq(want_continue, pp.continue_token.len > 0, "%s: continue", pb_rel);
    /* the RV is the list's own, not an item's: the first one in the body (the list's metadata
     * comes before its items) */
    const char *lm = strstr(js, "\"resourceVersion\"");
    cr_assert_not_null(lm);
    lm = strchr(lm + 17, '"');
    cr_assert_not_null(lm);
    cr_expect(strncmp(lm + 1, pj.resource_version.ptr, pj.resource_version.len) == 0 &&
                  lm[1 + pj.resource_version.len] == '"',
              "%s: list RV %.*s", json_rel, (int)pj.resource_version.len, pj.resource_version.ptr);
    /* the protobuf recording may be at another RV: a number all the same */
    cr_expect(pp.resource_version.len > 0 && pp.resource_version.ptr[0] >= '1' &&
              pp.resource_version.ptr[0] <= '9');
    /* the callback's error stops the walk and is returned */
    if (ij->n > 1) {
        struct items stop = {.kind = kind, .fail_at = 1};
        cr_expect_eq(codec_list_parse_json(js, jl, &pj, arena, take_item, &stop), -ECANCELED);
        cr_expect_eq(stop.n, 1);
        stop = (struct items){.kind = kind, .pb = true, .fail_at = 1};
        cr_expect_eq(codec_list_parse_pb(pb, pl, &pp, take_item, &stop), -ECANCELED);
        cr_expect_eq(stop.n, 1);
    }
    free(ij);
    free(ip);
    kf_arena_free(arena);
    free(js);
    free(pb);
}

Test(list_parse, recordings_json_and_protobuf_agree)
{
    parse_pair("recordings/list-pods-json.body.bin", "recordings/list-pods-protobuf.body.bin",
               CODEC_KIND_POD, false);
    parse_pair("recordings/list-pods-node1-json.body.bin",
               "recordings/list-pods-node1-protobuf.body.bin", CODEC_KIND_POD, false);
    parse_pair("recordings/list-cm-limit1-json.body.bin",
               "recordings/list-cm-limit1-protobuf.body.bin", CODEC_KIND_CONFIGMAP, true);
}

static int count_only(const char *item, size_t len, void *arg)
{
    (void)item;
    (void)len;
    (*(size_t *)arg)++;
    return 0;
}

Test(list_parse, malformed_lists_fail_cleanly)
{
    static const char *const bad_json[] = {
        "",
        "[]",
        "{",
        "{\"items\":{}}",
        "{\"items\":[1,2]}",
        "{\"metadata\":[],\"items\":[]}",
        "{\"items\":[{}",
        "{\"metadata\":{\"resourceVersion\":5},\"items\":[]}",
        "{\"items\":[\"x\"]}",
        "{\"kind\":\"PodList\",\"items\":[{\"a\":1}]]}",
    };
    struct kf_arena *arena = kf_arena_new(4096);
    struct codec_list_page p;
    size_t n = 0;

    for (size_t i = 0; i < KF_ARRAY_SIZE(bad_json); i++)
        cr_expect_lt(
            codec_list_parse_json(bad_json[i], strlen(bad_json[i]), &p, arena, count_only, &n), 0,
            "accepted: %s", bad_json[i]);
    /* null items is an empty list, as Go writes it */
    static const char empty[] = "{\"metadata\":{\"resourceVersion\":\"9\"},\"items\":null}";
    cr_expect_eq(codec_list_parse_json(empty, sizeof(empty) - 1, &p, arena, count_only, &n), 0);
    cr_expect_eq(p.n_items, 0);
    /* truncations of real lists never crash; a cut JSON list is always refused */
    size_t jl, pl;
    char *js = tu_read_fixture("recordings/list-cm-limit1-json.body.bin", &jl);
    char *pb = tu_read_fixture("recordings/list-cm-limit1-protobuf.body.bin", &pl);
    cr_assert(js && pb);
    for (size_t cut = 0; cut < jl; cut++) {
        char *c = malloc(cut ? cut : 1);
        memcpy(c, js, cut);
        /* a JSON body ends with "}\n": cutting only the newline leaves a valid list */
        if (cut < jl - 1)
            cr_expect_lt(codec_list_parse_json(c, cut, &p, arena, count_only, &n), 0, "cut %zu",
                         cut);
        free(c);
    }
    for (size_t cut = 0; cut < pl; cut++) {
        char *c = malloc(cut ? cut : 1);
        memcpy(c, pb, cut);
        cr_expect_leq(codec_list_parse_pb(c, cut, &p, count_only, &n), 0);
        free(c);
    }
    free(js);
    free(pb);
    kf_arena_free(arena);
}

Test(status_code, recordings_and_garbage)
{
    size_t l;
    char *b = tu_read_fixture("recordings/get-missing-json.body.bin", &l);
    cr_assert_not_null(b);
    cr_expect_eq(codec_status_code_json(b, l), 404);
    free(b);
    b = tu_read_fixture("recordings/get-missing-protobuf.body.bin", &l);
    cr_assert_not_null(b);
    cr_expect_eq(codec_status_code_pb(b, l), 404);
    for (size_t cut = 0; cut < l; cut++)
        cr_expect_lt(codec_status_code_pb(b, cut), 1000);
    free(b);
    b = tu_read_fixture("recordings/watch-too-old-json.body.bin", &l);
    cr_assert_not_null(b);
    cr_expect_eq(codec_status_code_json("{\"code\":410}", 12), 410);
    free(b);
    cr_expect_eq(codec_status_code_json("", 0), 0);
    cr_expect_eq(codec_status_code_json("{\"code\":\"410\"}", 14), 0);
    cr_expect_eq(codec_status_code_json("{\"code\":-1}", 11), 0);
    cr_expect_eq(codec_status_code_json("{\"code\":99999999999999999999}", 30), 0);
    cr_expect_eq(codec_status_code_json("{\"code\"", 7), 0);
    cr_expect_eq(codec_status_code_pb("k8s\0", 4), 0);
    cr_expect_eq(codec_status_code_pb("xyz", 3), 0);
}
