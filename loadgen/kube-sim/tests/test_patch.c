/* Merge patch, strategic merge patch (merge keys, directives) and JSON patch on the DOM. */
#include "loadgen/kube-sim/kube_sim.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

static struct ks_json *parse(struct kf_arena *a, const char *text)
{
    struct ks_json *j;
    char err[200];
    cr_assert_eq(ks_json_parse(a, text, strlen(text), &j, err, sizeof(err)), 0, "%s: %s", text,
                 err);
    return j;
}

static void expect(const char *doc, const char *patch, int kind, const char *want)
{
    struct kf_arena *a = kf_arena_new(4096);
    struct ks_json *d = parse(a, doc), *p = parse(a, patch), *w = parse(a, want);
    char err[200];
    int rc = kind == 2 ? ks_patch_json(a, d, p, err, sizeof(err))
                       : ks_patch_merge(a, d, p, kind == 1, &ks_res_pods, err, sizeof(err));
    cr_assert_eq(rc, 0, "%s: %s", patch, err);
    struct ks_sb got;
    ks_sb_init(&got, 256);
    ks_json_write(&got, d);
    cr_expect(ks_json_equal(d, w), "patch %s\ngot  %.*s\nwant %s", patch, (int)got.len, got.p,
              want);
    ks_sb_free(&got);
    kf_arena_free(a);
}

Test(patch, merge_patch_rfc7386)
{
    expect("{\"a\":{\"b\":1,\"c\":2},\"l\":[1,2]}",
           "{\"a\":{\"b\":null,\"d\":{\"x\":null,\"y\":3}},\"l\":[3]}", 0,
           "{\"a\":{\"c\":2,\"d\":{\"y\":3}},\"l\":[3]}");
    /* merge patch replaces lists even where a strategic merge would merge them */
    expect("{\"spec\":{\"containers\":[{\"name\":\"a\",\"image\":\"1\"}]}}",
           "{\"spec\":{\"containers\":[{\"name\":\"b\"}]}}", 0,
           "{\"spec\":{\"containers\":[{\"name\":\"b\"}]}}");
}

Test(patch, strategic_merges_lists_by_key)
{
    expect("{\"spec\":{\"containers\":[{\"name\":\"a\",\"image\":\"1\"},{\"name\":\"b\",\"image\":"
           "\"2\"}]}}",
           "{\"spec\":{\"containers\":[{\"name\":\"b\",\"image\":\"3\"},{\"name\":\"c\",\"image\":"
           "\"4\"}]}}",
           1,
           "{\"spec\":{\"containers\":[{\"name\":\"a\",\"image\":\"1\"},{\"name\":\"b\",\"image\":"
           "\"3\"},"
           "{\"name\":\"c\",\"image\":\"4\"}]}}");
    /* a kubelet's node status patch: conditions by type, with an ordering directive */
    expect("{\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\",\"t\":\"1\"},"
           "{\"type\":\"DiskPressure\",\"status\":\"False\"}]}}",
           "{\"status\":{\"$setElementOrder/"
           "conditions\":[{\"type\":\"Ready\"},{\"type\":\"DiskPressure\"}],"
           "\"conditions\":[{\"type\":\"Ready\",\"t\":\"2\"}]}}",
           1,
           "{\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\",\"t\":\"2\"},"
           "{\"type\":\"DiskPressure\",\"status\":\"False\"}]}}");
    expect("{\"spec\":{\"volumes\":[{\"name\":\"a\"},{\"name\":\"b\"}]}}",
           "{\"spec\":{\"volumes\":[{\"name\":\"a\",\"$patch\":\"delete\"}]}}", 1,
           "{\"spec\":{\"volumes\":[{\"name\":\"b\"}]}}");
    expect("{\"metadata\":{\"finalizers\":[\"x\"]}}",
           "{\"metadata\":{\"finalizers\":[\"y\",\"x\"]}}", 1,
           "{\"metadata\":{\"finalizers\":[\"x\",\"y\"]}}");
    expect("{\"metadata\":{\"finalizers\":[\"x\",\"y\"]}}",
           "{\"metadata\":{\"$deleteFromPrimitiveList/finalizers\":[\"x\"]}}", 1,
           "{\"metadata\":{\"finalizers\":[\"y\"]}}");
    /* lists without a merge key (tolerations) are replaced */
    expect("{\"spec\":{\"tolerations\":[{\"key\":\"a\"}]}}",
           "{\"spec\":{\"tolerations\":[{\"key\":\"b\"}]}}", 1,
           "{\"spec\":{\"tolerations\":[{\"key\":\"b\"}]}}");
}

Test(patch, strategic_errors)
{
    struct kf_arena *a = kf_arena_new(4096);
    char err[200];
    struct ks_json *d = parse(a, "{\"spec\":{\"containers\":[{\"name\":\"a\"}]}}");
    cr_expect_eq(ks_patch_merge(a, d, parse(a, "{\"spec\":{\"containers\":[{\"image\":\"x\"}]}}"),
                                true, &ks_res_pods, err, sizeof(err)),
                 -EINVAL);
    cr_expect(strstr(err, "does not contain declared merge key: name") != NULL, "%s", err);
    cr_expect_eq(ks_patch_merge(a, d, parse(a, "[1]"), false, &ks_res_pods, err, sizeof(err)),
                 -EINVAL);
    kf_arena_free(a);
}

Test(patch, json_patch_rfc6902)
{
    expect("{\"a\":{\"b\":[1,2]},\"c\":1}",
           "[{\"op\":\"add\",\"path\":\"/a/b/1\",\"value\":9},{\"op\":\"remove\",\"path\":\"/c\"},"
           "{\"op\":\"replace\",\"path\":\"/a/b/0\",\"value\":0},{\"op\":\"add\",\"path\":\"/a/b/"
           "-\",\"value\":3},"
           "{\"op\":\"add\",\"path\":\"/a/x~1y\",\"value\":true},{\"op\":\"test\",\"path\":\"/a/b/"
           "1\",\"value\":9}]",
           2, "{\"a\":{\"b\":[0,9,2,3],\"x/y\":true}}");
    struct kf_arena *a = kf_arena_new(4096);
    char err[200];
    struct ks_json *d = parse(a, "{\"a\":1}");
    cr_expect_eq(ks_patch_json(a, d, parse(a, "[{\"op\":\"test\",\"path\":\"/a\",\"value\":2}]"),
                               err, sizeof(err)),
                 -EINVAL);
    cr_expect_str_eq(err, "testing value /a failed: test failed");
    cr_expect_eq(ks_patch_json(a, d, parse(a, "[{\"op\":\"remove\",\"path\":\"/nope/x\"}]"), err,
                               sizeof(err)),
                 -EINVAL);
    cr_expect_eq(ks_patch_json(a, d, parse(a, "{}"), err, sizeof(err)), -EINVAL);
    kf_arena_free(a);
}
