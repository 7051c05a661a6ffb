/*
 * The converter against Kubernetes' own round-trip fixtures: each object's
 * JSON, converted by kube-sim, must pack to the same protobuf message as the
 * fixture's protobuf bytes, and the fixture's protobuf, converted back, must
 * give the fixture's JSON.
 */
#include "cache/codec/codec.h"
#include "loadgen/kube-sim/kube_sim.h"

#include "fixture.h"

#include <criterion/criterion.h>
#include <protobuf-c/protobuf-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Re-pack a message with protobuf-c (canonical for comparing two messages). */
static uint8_t *repack(const ProtobufCMessage *m, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *out = malloc(*len + 1);
    protobuf_c_message_pack(m, out);
    return out;
}

static void round_trip(const char *file, struct ks_res *res)
{
    struct kf_arena *a = kf_arena_new(65536);
    size_t jlen, plen;
    char *json = ks_test_fixture("k8s-api", file, &jlen);
    char pbname[256], err[200];
    snprintf(pbname, sizeof(pbname), "%.*s.pb", (int)(strlen(file) - 5), file);
    char *pb = ks_test_fixture("k8s-api", pbname, &plen);
    struct ks_json *dom;
    struct ProtobufCMessage *from_json, *from_pb;
    struct ks_conv_error cerr;
    struct codec_envelope env;

    cr_assert_eq(ks_res_bind(), 0);
    cr_assert_eq(ks_json_parse(a, json, jlen, &dom, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(ks_conv_from_json(res->desc, dom, a, &from_json, &cerr), 0, "%s: %s %s", file,
                 cerr.field, cerr.detail);
    cr_assert_eq(codec_pb_envelope_parse(pb, plen, &env), 0);
    cr_assert_eq(ks_conv_unpack(res->desc, (const uint8_t *)env.raw.ptr, env.raw.len, a, &from_pb),
                 0);
    size_t la, lb;
    uint8_t *pa = repack(from_json, &la), *pbb = repack(from_pb, &lb);
    cr_expect_eq(la, lb, "%s: packed sizes differ: from JSON %zu, from protobuf %zu", file, la, lb);
    cr_expect(la == lb && memcmp(pa, pbb, la) == 0, "%s: messages differ", file);

    /* and back: the protobuf's JSON equals the fixture's JSON (minus kind/apiVersion) */
    struct ks_json *back, *orig;
    cr_assert_eq(ks_conv_to_json(from_pb, a, &back, &cerr), 0);
    cr_assert_eq(ks_json_parse(a, json, jlen, &orig, err, sizeof(err)), 0);
    ks_json_remove(orig, "kind");
    ks_json_remove(orig, "apiVersion");
    struct ks_sb x, y;
    ks_sb_init(&x, 4096);
    ks_sb_init(&y, 4096);
    ks_json_write(&x, back);
    ks_json_write(&y, orig);
    /* same content, and the same field order as Go writes it */
    cr_expect(ks_json_equal(back, orig), "%s: JSON from protobuf differs:\n%.*s\nwant\n%.*s", file,
              (int)x.len, x.p, (int)y.len, y.p);
    cr_expect(x.len == y.len && memcmp(x.p, y.p, x.len) == 0,
              "%s: field order differs:\n%.*s\nwant\n%.*s", file, (int)x.len, x.p, (int)y.len, y.p);
    ks_sb_free(&x);
    ks_sb_free(&y);
    free(pa);
    free(pbb);
    free(json);
    free(pb);
    kf_arena_free(a);
}

Test(conv, configmap)
{
    round_trip("core.v1.ConfigMap.json", &ks_res_configmaps);
}
Test(conv, secret)
{
    round_trip("core.v1.Secret.json", &ks_res_secrets);
}
Test(conv, pod)
{
    round_trip("core.v1.Pod.json", &ks_res_pods);
}
Test(conv, node)
{
    round_trip("core.v1.Node.json", &ks_res_nodes);
}
Test(conv, service)
{
    round_trip("core.v1.Service.json", &ks_res_services);
}
Test(conv, namespace)
{
    round_trip("core.v1.Namespace.json", &ks_res_namespaces);
}
Test(conv, event)
{
    round_trip("core.v1.Event.json", &ks_res_events);
}
Test(conv, endpointslice)
{
    round_trip("discovery.k8s.io.v1.EndpointSlice.json", &ks_res_endpointslices);
}
Test(conv, lease)
{
    round_trip("coordination.k8s.io.v1.Lease.json", &ks_res_leases);
}
