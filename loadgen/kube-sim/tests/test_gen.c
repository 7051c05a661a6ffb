/*
 * The generator writes its objects' JSON directly (no re-encoding) for speed:
 * that text must be exactly what the normalising write path would produce
 * (Go field order, sorted map keys), or generated and written objects differ.
 */
#include "loadgen/kube-sim/kube_sim.h"

#include <criterion/criterion.h>
#include <string.h>

Test(gen, generated_json_is_canonical)
{
    struct ks_gen_config cfg = {.nodes = 3, .pods = 1200, .configmaps = 6, .secrets = 6};

    cr_assert_eq(ks_res_bind(), 0);
    cr_assert_eq(ks_store_init(100), 0);
    cr_assert_eq(ks_gen_cluster(&cfg), 0);
    size_t checked = 0;
    for (size_t r = 0; r < ks_n_resources; r++) {
        struct ks_res *res = ks_resources[r];
        for (size_t i = 0; i < res->table.n; i++) {
            const struct ks_obj *o = res->table.items[i];
            struct kf_arena *a = kf_arena_new(16384);
            struct ks_json *dom;
            struct ks_obj *again;
            struct ks_conv_error err;
            cr_assert_eq(ks_obj_dom(o, a, &dom), 0);
            cr_assert_eq(ks_obj_build(res, dom, a, &again, &err), 0, "%s %s: %s", res->kind,
                         o->name, err.detail);
            cr_expect(again->json_len == o->json_len &&
                          memcmp(again->json, o->json, o->json_len) == 0,
                      "%s %s:\n%.*s\nnormalised:\n%.*s", res->kind, o->name, (int)o->json_len,
                      o->json, (int)again->json_len, again->json);
            cr_expect(again->pb_len == o->pb_len &&
                          (!o->pb || memcmp(again->pb, o->pb, o->pb_len) == 0),
                      "%s %s: protobuf differs", res->kind, o->name);
            ks_obj_unref(again);
            kf_arena_free(a);
            checked++;
        }
    }
    cr_expect_gt(checked, 1200);
    /* 500 pods a namespace: team-000..team-002, each with its configmaps and a service */
    cr_expect_not_null(ks_store_get(&ks_res_namespaces, "team-002"));
    cr_expect_null(ks_store_get(&ks_res_namespaces, "team-003"));
    cr_expect_not_null(ks_store_get(&ks_res_configmaps, "team-002/app-config-1"));
    cr_expect_not_null(ks_store_get(&ks_res_configmaps, "team-002/kube-root-ca.crt"));
    cr_expect_eq(ks_res_pods.table.n, 1200);
    cr_expect_eq(ks_res_leases.table.n, 3);
    ks_store_free();
    ks_gen_free();
}
