/*
 * The store: versions, the global resourceVersion, history with eviction
 * (compaction), snapshots rebuilt at an older revision, the nodeName index,
 * and continue tokens exactly as the apiserver encodes them.
 */
#include "loadgen/kube-sim/kube_sim.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static void setup(void)
{
    cr_assert_eq(ks_res_bind(), 0);
    cr_assert_eq(ks_store_init(4), 0);
}

static void teardown(void)
{
    ks_store_free();
}

TestSuite(store, .init = setup, .fini = teardown);

/* A ConfigMap version through the real build path. */
static struct ks_obj *cm(const char *ns, const char *name, const char *value, uint64_t rv)
{
    char json[512];
    struct kf_arena *a = kf_arena_new(4096);
    struct ks_json *dom;
    struct ks_obj *o;
    struct ks_conv_error err;
    char perr[100];

    snprintf(json, sizeof(json),
             "{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"%s\","
             "\"namespace\":\"%s\",\"uid\":\"u-%s\",\"resourceVersion\":\"%llu\","
             "\"labels\":{\"app\":\"%s\"}},\"data\":{\"k\":\"%s\"}}",
             name, ns, name, (unsigned long long)rv, value, value);
    cr_assert_eq(ks_json_parse(a, json, strlen(json), &dom, perr, sizeof(perr)), 0);
    cr_assert_eq(ks_obj_build(&ks_res_configmaps, dom, a, &o, &err), 0, "%s", err.detail);
    kf_arena_free(a);
    return o;
}

static uint64_t put(const char *ns, const char *name, const char *value)
{
    uint64_t rv = ks_store_next_rv();
    cr_assert_eq(ks_store_put(cm(ns, name, value, rv), true), 0);
    return rv;
}

static uint64_t del(const char *ns, const char *name)
{
    char key[128];
    snprintf(key, sizeof(key), "%s/%s", ns, name);
    struct ks_obj *cur = ks_store_get(&ks_res_configmaps, key);
    cr_assert_not_null(cur);
    struct ks_obj *final = ks_obj_with_rv(cur, ks_store.rv + 1);
    cr_assert_not_null(final);
    ks_store_next_rv();
    cr_assert_eq(ks_store_delete(final), 0);
    return ks_store.rv;
}

Test(store, versions_and_keys_in_etcd_order)
{
    put("ns", "b", "1");
    put("ns", "a", "1");
    put("ns-2", "a", "1");
    uint64_t rv = put("ns", "b", "2");
    const struct ks_table *t = &ks_res_configmaps.table;
    cr_assert_eq(t->n, 3);
    /* bytewise key order: "ns-2/a" < "ns/a" < "ns/b" ('-' sorts before '/') */
    cr_expect_str_eq(t->items[0]->key, "ns-2/a");
    cr_expect_str_eq(t->items[1]->key, "ns/a");
    cr_expect_str_eq(t->items[2]->key, "ns/b");
    struct ks_obj *b = ks_store_get(&ks_res_configmaps, "ns/b");
    cr_expect_eq(b->rv, rv);
    cr_expect_str_eq(ks_obj_label(b, "app"), "2");
    cr_expect_str_eq(ks_obj_field(b, "metadata.name"), "b");
    cr_expect_null(ks_obj_label(b, "nope"));
    /* the stored JSON carries the rv and kind; the list item drops kind/apiVersion */
    cr_expect(strstr(b->json, "\"resourceVersion\":\"4\"") != NULL);
    cr_expect(strncmp(b->json + b->json_body_off, "\"metadata\"", 10) == 0);
    cr_expect(b->json[b->json_len] == '\n');
    cr_expect_eq(b->pb[b->pb_item_off], 0x12);
}

Test(store, history_is_bounded_and_compacts)
{
    for (int i = 0; i < 6; i++)
        put("ns", "a", i % 2 ? "x" : "y");
    /* 6 events, history of 4: the two oldest are gone */
    cr_expect_eq(ks_store.all.n, 4);
    cr_expect_eq(ks_store.compacted_rv, 2);
    cr_expect_eq(ks_res_configmaps.events->n, 4);
    cr_expect_eq(ks_evq_after(ks_res_configmaps.events, 4), 2);
    cr_expect_eq(ks_evq_after(ks_res_configmaps.events, 0), 0);
    cr_expect_eq(ks_evq_after(ks_res_configmaps.events, 6), 4);
    ks_store_compact();
    cr_expect_eq(ks_store.all.n, 0);
    cr_expect_eq(ks_store.compacted_rv, 6);
}

Test(store, snapshot_at_older_revision_undoes_history)
{
    put("ns", "a", "1");               /* rv 1 */
    uint64_t r2 = put("ns", "b", "1"); /* rv 2 */
    put("ns", "a", "2");               /* rv 3 */
    del("ns", "b");                    /* rv 4 */
    struct ks_snapshot now, then;
    cr_assert_eq(ks_snapshot_take(&now, &ks_res_configmaps, "ns/", 0), 0);
    cr_expect_eq(now.n, 1);
    cr_expect_eq(now.rv, 4);
    cr_assert_eq(ks_snapshot_take(&then, &ks_res_configmaps, "ns/", r2), 0);
    cr_assert_eq(then.n, 2);
    cr_expect_str_eq(then.items[0]->key, "ns/a");
    cr_expect_str_eq(ks_obj_label(then.items[0], "app"), "1");
    cr_expect_str_eq(then.items[1]->key, "ns/b");
    cr_expect_eq(then.rv, r2);
    ks_snapshot_release(&now);
    ks_snapshot_release(&then);
    /* too old once compacted, in the future never */
    for (int i = 0; i < 5; i++)
        put("ns", "c", "z");
    cr_expect_eq(ks_snapshot_take(&then, &ks_res_configmaps, NULL, 1), -ERANGE);
    cr_expect_eq(ks_snapshot_take(&then, &ks_res_configmaps, NULL, ks_store.rv + 5), -EAGAIN);
}

Test(store, deleted_event_carries_object_at_delete_rv)
{
    put("ns", "a", "1");
    uint64_t rv = del("ns", "a");
    struct ks_event *ev = ks_evq_at(ks_res_configmaps.events, ks_res_configmaps.events->n - 1);
    cr_expect_eq(ev->type, KS_DELETED);
    cr_expect_eq(ev->rv, rv);
    cr_expect_eq(ev->obj->rv, rv);
    cr_expect_eq(ev->prev->rv, 1);
    cr_expect_null(ks_store_get(&ks_res_configmaps, "ns/a"));
}

Test(store, continue_token_is_the_apiservers)
{
    struct kf_arena *a = kf_arena_new(1024);
    /* recorded in list-cm-limit1-json: rv 199, after "cm1" */
    char *tok = ks_continue_encode(a, 199, 0, "cm1");
    cr_expect_str_eq(tok, "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MTk5LCJzdGFydCI6ImNtMVx1MDAwMCJ9");
    char *start, err[200];
    bool after;
    int64_t rv;
    cr_assert_eq(ks_continue_decode(a, tok, &start, &after, &rv, err, sizeof(err)), 0, "%s", err);
    cr_expect_str_eq(start, "cm1");
    cr_expect(after);
    cr_expect_eq(rv, 199);
    /* the inconsistent token of a 410 continues at the latest state (rv -1) */
    tok = ks_continue_encode(a, 0, -1, "cm1");
    cr_assert_eq(ks_continue_decode(a, tok, &start, &after, &rv, err, sizeof(err)), 0);
    cr_expect_eq(rv, -1);
    cr_expect_eq(ks_continue_decode(a, "!!!", &start, &after, &rv, err, sizeof(err)), -EINVAL);
    cr_expect_str_eq(err, "continue key is not valid: illegal base64 data at input byte 0");
    /* {"v":"meta.k8s.io/v1","rv":0,"start":"x"} */
    cr_expect_eq(ks_continue_decode(a, "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MCwic3RhcnQiOiJ4In0",
                                    &start, &after, &rv, err, sizeof(err)),
                 -EINVAL);
    cr_expect_str_eq(err, "continue key is not valid: incorrect encoded start resourceVersion "
                          "(version meta.k8s.io/v1)");
    kf_arena_free(a);
}

Test(store, pod_node_index_follows_versions)
{
#define POD_TPL                                                                                    \
    "{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"p\","                        \
    "\"namespace\":\"n\",\"resourceVersion\":\"%llu\"},\"spec\":{\"nodeName\":"                    \
    "\"%s\",\"containers\":[{\"name\":\"c\",\"env\":[{\"name\":\"X\",\"valueFrom\":"               \
    "{\"secretKeyRef\":{\"name\":\"s1\",\"key\":\"k\"}}}]}]}}"
    const char *nodes[] = {"node-1", "node-2"};
    for (int i = 0; i < 2; i++) {
        char json[1024];
        struct kf_arena *a = kf_arena_new(4096);
        struct ks_json *dom;
        struct ks_obj *o;
        struct ks_conv_error err;
        char perr[100];
        snprintf(json, sizeof(json), POD_TPL, (unsigned long long)ks_store.rv + 1, nodes[i]);
        cr_assert_eq(ks_json_parse(a, json, strlen(json), &dom, perr, sizeof(perr)), 0);
        cr_assert_eq(ks_obj_build(&ks_res_pods, dom, a, &o, &err), 0, "%s", err.detail);
        ks_store_next_rv();
        cr_assert_eq(ks_store_put(o, true), 0);
        kf_arena_free(a);
    }
    cr_expect_null(ks_store_indexed(&ks_res_pods, "node-1"));
    const struct ks_objset *on2 = ks_store_indexed(&ks_res_pods, "node-2");
    cr_assert_not_null(on2);
    cr_assert_eq(on2->n, 1);
    /* the pod's references feed the Node authorizer */
    cr_assert_eq(on2->v[0]->n_objrefs, 1);
    cr_expect_str_eq(on2->v[0]->objrefs[0], "secrets/s1");
}
