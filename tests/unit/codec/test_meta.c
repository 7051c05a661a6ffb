/* metadata and selector fields from JSON and protobuf */
#include "cache/codec/codec.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct kf_arena *arena;

static void setup(void)
{
    arena = kf_arena_new(4096);
}
static void teardown(void)
{
    kf_arena_free(arena);
}

static bool str_same(struct codec_str a, struct codec_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

#define EXPECT_SAME(what, a, b)                                                                    \
    cr_expect(str_same(a, b), "%s: %s differs: '%.*s' vs '%.*s'", name, what, (int)(a).len,        \
              (a).ptr, (int)(b).len, (b).ptr)

static void compare_kv(const char *name, const char *what, const struct codec_kv *a, size_t na,
                       const struct codec_kv *b, size_t nb)
{
    cr_assert_eq(na, nb, "%s: %s count %zu vs %zu", name, what, na, nb);
    for (size_t i = 0; i < na; i++) {
        EXPECT_SAME("key", a[i].key, b[i].key);
        EXPECT_SAME("value", a[i].value, b[i].value);
    }
}

static void compare_meta(const char *name, const struct codec_meta *j, const struct codec_meta *p)
{
    cr_expect_eq(j->kind, p->kind, "%s: kind", name);
    EXPECT_SAME("name", j->name, p->name);
    EXPECT_SAME("namespace", j->namespace_, p->namespace_);
    EXPECT_SAME("uid", j->uid, p->uid);
    EXPECT_SAME("generateName", j->generate_name, p->generate_name);
    EXPECT_SAME("resourceVersion", j->resource_version, p->resource_version);
    cr_expect_eq(j->rv_valid, p->rv_valid, "%s: rv_valid", name);
    cr_expect_eq(j->rv, p->rv, "%s: rv", name);
    cr_expect_eq(j->generation, p->generation, "%s: generation", name);
    cr_expect_eq(j->creation_ts, p->creation_ts, "%s: creation", name);
    cr_expect_eq(j->deleting, p->deleting, "%s: deleting", name);
    cr_expect_eq(j->deletion_ts, p->deletion_ts, "%s: deletion", name);
    compare_kv(name, "labels", j->labels, j->n_labels, p->labels, p->n_labels);
    compare_kv(name, "annotations", j->annotations, j->n_annotations, p->annotations,
               p->n_annotations);
    cr_assert_eq(j->n_owners, p->n_owners, "%s: owners", name);
    for (size_t i = 0; i < j->n_owners; i++) {
        EXPECT_SAME("owner uid", j->owners[i].uid, p->owners[i].uid);
        EXPECT_SAME("owner kind", j->owners[i].kind, p->owners[i].kind);
        EXPECT_SAME("owner name", j->owners[i].name, p->owners[i].name);
        EXPECT_SAME("owner apiVersion", j->owners[i].api_version, p->owners[i].api_version);
        cr_expect_eq(j->owners[i].controller, p->owners[i].controller, "%s: controller", name);
    }
    cr_assert_eq(j->n_fields, p->n_fields, "%s: field count", name);
    for (size_t i = 0; i < j->n_fields; i++) {
        cr_expect_str_eq(j->fields[i].path, p->fields[i].path);
        EXPECT_SAME(j->fields[i].path, j->fields[i].value, p->fields[i].value);
    }
}

static void load_pair(const char *name, char **js, size_t *jl, char **pb, size_t *pl)
{
    char rel[512];
    snprintf(rel, sizeof(rel), "k8s-api/%s.json", name);
    *js = tu_read_fixture(rel, jl);
    snprintf(rel, sizeof(rel), "k8s-api/%s.pb", name);
    *pb = tu_read_fixture(rel, pl);
    cr_assert(*js && *pb, "%s: fixture missing", name);
}

TestSuite(meta, .init = setup, .fini = teardown);

Test(meta, fixtures_json_and_pb_agree)
{
    char **names;
    size_t n = tu_list_api_fixtures(&names), checked = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = names[i];
        char *js, *pb;
        size_t jl, pl;
        load_pair(name, &js, &jl, &pb, &pl);
        struct codec_meta mj, mp;
        int rj = codec_meta_from_json(js, jl, CODEC_KIND_UNKNOWN, &mj, arena);
        int rp = codec_meta_from_pb(pb, pl, CODEC_KIND_UNKNOWN, &mp, arena);
        cr_expect_eq(rj, rp, "%s: %d vs %d", name, rj, rp);
        if (rj == 0 && rp == 0) {
            compare_meta(name, &mj, &mp);
            checked++;
            /* every fixture sets every field to a recognisable value */
            cr_expect(codec_str_eq(mj.name, "nameValue"), "%s", name);
            cr_expect_eq(mj.n_labels, 1, "%s", name);
            cr_expect_eq(mj.creation_ts, 1199149261, "%s", name); /* 2008-01-01T01:01:01Z */
            cr_expect(mj.deleting, "%s", name);
        } else {
            cr_expect_eq(rj, -ENOENT, "%s: only unknown kinds may fail (%d)", name, rj);
        }
        free(js);
        free(pb);
    }
    cr_expect_eq(checked, 11);
    tu_free_names(names, n);
}

static struct codec_str field(const struct codec_meta *m, const char *path)
{
    struct codec_str v = {NULL, 0};
    cr_assert(codec_meta_field(m, path, &v), "no field %s", path);
    return v;
}

Test(meta, pod_fields_from_fixture)
{
    char *js, *pb;
    size_t jl, pl;
    load_pair("core.v1.Pod", &js, &jl, &pb, &pl);
    struct codec_meta m;
    cr_assert_eq(codec_meta_from_pb(pb, pl, CODEC_KIND_UNKNOWN, &m, arena), 0);
    cr_expect_eq(m.kind, CODEC_KIND_POD);
    cr_expect(codec_str_eq(field(&m, "spec.nodeName"), "nodeNameValue"));
    cr_expect(codec_str_eq(field(&m, "spec.hostNetwork"), "true"));
    cr_expect(codec_str_eq(field(&m, "status.podIP"), "ipValue")); /* podIPs[0] wins */
    cr_expect(codec_str_eq(field(&m, "metadata.namespace"), "namespaceValue"));
    cr_expect(codec_str_eq(m.owners[0].uid, "uidValue"));
    cr_expect(m.owners[0].controller);
    struct codec_str v;
    cr_expect_not(codec_meta_field(&m, "status.podIPs[0].ip", &v), "helper fields stay hidden");
    cr_expect(codec_meta_label(&m, "labelsKey", &v) && codec_str_eq(v, "labelsValue"));
    free(js);
    free(pb);
}

Test(meta, event_source_falls_back_to_reporting_component)
{
    const char *js = "{\"kind\":\"Event\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"e\"},"
                     "\"involvedObject\":{\"kind\":\"Pod\",\"name\":\"p\"},\"source\":{},"
                     "\"reportingComponent\":\"kubelet\",\"type\":\"Normal\"}";
    struct codec_meta m;
    cr_assert_eq(codec_meta_from_json(js, strlen(js), CODEC_KIND_UNKNOWN, &m, arena), 0);
    cr_expect(codec_str_eq(field(&m, "source"), "kubelet"));
    cr_expect(codec_str_eq(field(&m, "involvedObject.kind"), "Pod"));
    cr_expect(codec_str_eq(field(&m, "involvedObject.uid"), ""));
    cr_expect_eq(m.n_fields, 13);
}

Test(meta, defaults_and_list_items)
{
    /* a list item: no kind, so the caller names it; absent bools read "false" */
    const char *js = "{\"metadata\":{\"name\":\"n1\",\"resourceVersion\":\"42\"},\"spec\":{}}";
    struct codec_meta m;
    cr_assert_eq(codec_meta_from_json(js, strlen(js), CODEC_KIND_NODE, &m, arena), 0);
    cr_expect(codec_str_eq(field(&m, "spec.unschedulable"), "false"));
    cr_expect(m.rv_valid);
    cr_expect_eq(m.rv, 42);
    cr_expect_eq(codec_meta_from_json(js, strlen(js), CODEC_KIND_UNKNOWN, &m, arena), -ENOENT);
}

Test(meta, escapes_are_unescaped)
{
    const char *js =
        "{\"metadata\":{\"name\":\"a\\u00e9\\n\\\"b\",\"labels\":{\"k\\/x\":\"\\ud83d\\ude00\"}}}";
    struct codec_meta m;
    cr_assert_eq(codec_meta_from_json(js, strlen(js), CODEC_KIND_CONFIGMAP, &m, arena), 0);
    cr_expect(codec_str_eq(m.name, "a\xc3\xa9\n\"b"));
    cr_expect(codec_str_eq(m.labels[0].key, "k/x"));
    cr_expect(codec_str_eq(m.labels[0].value, "\xf0\x9f\x98\x80"));
}

Test(meta, repeated_members_replace)
{
    /* duplicate keys: the last wins (as Go decodes), never overflowing the first's arrays */
    const char *js = "{\"metadata\":{\"ownerReferences\":[{\"uid\":\"a\"}],"
                     "\"ownerReferences\":[{\"uid\":\"b\"},{\"uid\":\"c\"}],"
                     "\"labels\":{\"x\":\"1\"},\"labels\":{\"y\":\"2\",\"z\":\"3\"}}}";
    struct codec_meta m;
    cr_assert_eq(codec_meta_from_json(js, strlen(js), CODEC_KIND_POD, &m, arena), 0);
    cr_assert_eq(m.n_owners, 2);
    cr_expect(codec_str_eq(m.owners[1].uid, "c"));
    cr_assert_eq(m.n_labels, 2);
    cr_expect(codec_str_eq(m.labels[0].key, "y"));
}

Test(meta, recordings_watch_objects_match)
{
    /* the same pod from a JSON GET and a protobuf GET */
    size_t jl, pl;
    char *js = tu_read_fixture("recordings/get-pod-json.body.bin", &jl);
    char *pb = tu_read_fixture("recordings/get-pod-protobuf.body.bin", &pl);
    cr_assert(js && pb);
    struct codec_meta mj, mp;
    cr_assert_eq(codec_meta_from_json(js, jl, CODEC_KIND_UNKNOWN, &mj, arena), 0);
    cr_assert_eq(codec_meta_from_pb(pb, pl, CODEC_KIND_UNKNOWN, &mp, arena), 0);
    const char *name = "get-pod";
    compare_meta(name, &mj, &mp);
    cr_expect(codec_str_eq(mj.name, "pod1"));
    cr_expect_eq(mj.rv, 197);
    free(js);
    free(pb);
}

static int json_rc(const char *js)
{
    struct codec_meta m;
    return codec_meta_from_json(js, strlen(js), CODEC_KIND_POD, &m, arena);
}

Test(meta, malformed_json)
{
    cr_expect_eq(json_rc(""), -EBADMSG);
    cr_expect_eq(json_rc("[]"), -EBADMSG);
    cr_expect_eq(json_rc("{\"metadata\":{}"), -EBADMSG);                     /* truncated */
    cr_expect_eq(json_rc("{\"metadata\":{}} {}"), -EBADMSG);                 /* two roots */
    cr_expect_eq(json_rc("{\"metadata\":{}}x"), -EBADMSG);                   /* trailing bytes */
    cr_expect_eq(json_rc("{\"metadata\"}"), -EBADMSG);                       /* key without value */
    cr_expect_eq(json_rc("{\"metadata\":[]}"), -EBADMSG);                    /* wrong type */
    cr_expect_eq(json_rc("{\"metadata\":{\"name\":1}}"), -EBADMSG);          /* name not a string */
    cr_expect_eq(json_rc("{\"metadata\":{\"name\":\"a\\q\"}}"), -EBADMSG);   /* bad escape */
    cr_expect_eq(json_rc("{\"metadata\":{\"name\":\"a\\u12\"}}"), -EBADMSG); /* short \u */
    cr_expect_eq(json_rc("{\"metadata\":{\"name\":\"\xff\xfe\"}}"), -EBADMSG);     /* bad UTF-8 */
    cr_expect_eq(json_rc("{\"metadata\":{\"name\":\"\xc0\xaf\"}}"), -EBADMSG);     /* overlong */
    cr_expect_eq(json_rc("{\"metadata\":{\"name\":\"\xed\xa0\x80\"}}"), -EBADMSG); /* surrogate */
    cr_expect_eq(json_rc("{\"metadata\":{\"name\":\"a\x01\"}}"), -EBADMSG); /* control char */
    cr_expect_eq(json_rc("{\"metadata\":{\"creationTimestamp\":\"yesterday\"}}"), -EBADMSG);
    cr_expect_eq(json_rc("{\"metadata\":{\"generation\":1e99}}"), -EBADMSG);
    cr_expect_eq(json_rc("{\"metadata\":{\"labels\":{\"a\":1}}}"), -EBADMSG);
    cr_expect_eq(json_rc("{\"metadata\":{}}\0{}"), 0); /* a C string ends at the NUL */
    struct codec_meta m;
    cr_expect_eq(codec_meta_from_json("{}", 2, CODEC_KIND_POD, &m, NULL), -EINVAL);
    cr_expect_eq(codec_meta_from_pb("", 0, CODEC_KIND_POD, &m, NULL), -EINVAL);
}

static int nested_rc(size_t depth, bool balanced)
{
    size_t len = 2 * depth + 64;
    char *js = malloc(len);
    size_t o = (size_t)sprintf(js, "{\"metadata\":{},\"spec\":");
    for (size_t i = 0; i < depth; i++)
        js[o++] = '[';
    for (size_t i = 0; i < depth - !balanced; i++)
        js[o++] = ']';
    js[o++] = '}';
    struct codec_meta m;
    int rc = codec_meta_from_json(js, o, CODEC_KIND_POD, &m, arena);
    free(js);
    return rc;
}

Test(meta, deeply_nested_json, .timeout = 10)
{
    /* nesting is bounded (512) before jsmn runs, so hostile depth costs one byte scan */
    cr_expect_eq(nested_rc(500, true), 0);
    cr_expect_eq(nested_rc(500, false), -EBADMSG);
    cr_expect_eq(nested_rc(600, true), -EBADMSG);
    cr_expect_eq(nested_rc(2000000, true), -EBADMSG);
}

Test(meta, malformed_pb)
{
    struct codec_meta m;
    size_t pl;
    char *pb = tu_read_fixture("recordings/get-pod-protobuf.body.bin", &pl);
    cr_assert_not_null(pb);
    struct codec_envelope env;
    cr_assert_eq(codec_pb_envelope_parse(pb, pl, &env), 0);
    /* the bare message needs a kind */
    cr_expect_eq(codec_meta_from_pb(env.raw.ptr, env.raw.len, CODEC_KIND_UNKNOWN, &m, arena),
                 -ENOENT);
    cr_expect_eq(codec_meta_from_pb(env.raw.ptr, env.raw.len, CODEC_KIND_POD, &m, arena), 0);
    /* every truncation of the bare message fails cleanly or parses a prefix */
    for (size_t cut = 0; cut < env.raw.len; cut++) {
        char *copy = malloc(cut + 1);
        memcpy(copy, env.raw.ptr, cut);
        int rc = codec_meta_from_pb(copy, cut, CODEC_KIND_POD, &m, arena);
        cr_assert(rc == 0 || rc == -EBADMSG, "cut %zu: %d", cut, rc);
        free(copy);
    }
    /* metadata with a varint wire type */
    cr_expect_eq(codec_meta_from_pb("\x08\x01", 2, CODEC_KIND_POD, &m, arena), -EBADMSG);
    /* name with invalid UTF-8 */
    cr_expect_eq(codec_meta_from_pb("\x0a\x04\x0a\x02\xff\xfe", 6, CODEC_KIND_POD, &m, arena),
                 -EBADMSG);
    /* metadata twice, the second with more labels: no overflow, the last wins */
    const char twice[] = "\x0a\x07\x5a\x05\x0a\x01k\x12\x00"
                         "\x0a\x0e\x5a\x05\x0a\x01k\x12\x00\x5a\x05\x0a\x01j\x12\x00";
    cr_expect_eq(codec_meta_from_pb(twice, sizeof(twice) - 1, CODEC_KIND_POD, &m, arena), 0);
    cr_expect_eq(m.n_labels, 2);
    free(pb);
}
