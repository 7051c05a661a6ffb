#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>

#include "proxy/reqinfo.h"

static struct px_reqinfo info(const char *method, const char *path, bool watch)
{
    struct px_reqinfo i;
    px_reqinfo_parse(method, path, watch, &i);
    return i;
}

Test(reqinfo, core_and_group_resources)
{
    struct px_reqinfo i = info("GET", "/api/v1/namespaces/demo/pods/web-1", false);
    cr_expect(i.is_resource);
    cr_expect_str_eq(i.verb, "get");
    cr_expect_str_eq(i.namespace_, "demo");
    cr_expect_str_eq(i.resource, "pods");
    cr_expect_str_eq(i.name, "web-1");

    i = info("GET", "/apis/discovery.k8s.io/v1/endpointslices", true);
    cr_expect_str_eq(i.verb, "watch");
    cr_expect_str_eq(i.api_group, "discovery.k8s.io");
    cr_expect_str_eq(i.resource, "endpointslices");

    i = info("GET", "/api/v1/pods", false);
    cr_expect_str_eq(i.verb, "list");
    cr_expect_str_eq(i.namespace_, "");
}

Test(reqinfo, subresources_namespaces_and_verbs)
{
    struct px_reqinfo i = info("POST", "/api/v1/namespaces/demo/pods/web-1/binding", false);
    cr_expect_str_eq(i.verb, "create");
    cr_expect_str_eq(i.resource, "pods/binding");

    i = info("GET", "/api/v1/namespaces/demo", false);
    cr_expect_str_eq(i.resource, "namespaces");
    cr_expect_str_eq(i.name, "demo");
    cr_expect_str_eq(i.verb, "get");

    i = info("PUT", "/api/v1/namespaces/demo/finalize", false);
    cr_expect_str_eq(i.resource, "namespaces/finalize");
    cr_expect_str_eq(i.name, "demo");
    cr_expect_str_eq(i.verb, "update");

    i = info("DELETE", "/api/v1/namespaces/demo/configmaps", false);
    cr_expect_str_eq(i.verb, "deletecollection");
    i = info("PATCH", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1", false);
    cr_expect_str_eq(i.verb, "patch");
    i = info("PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1", false);
    cr_expect_str_eq(i.verb, "update");
    i = info("GET", "/api/v1/watch/namespaces/demo/pods", false);
    cr_expect_str_eq(i.verb, "watch");
    cr_expect_str_eq(i.resource, "pods");
}

Test(reqinfo, non_resource_paths)
{
    struct px_reqinfo i = info("GET", "/readyz", false);
    cr_expect_not(i.is_resource);
    cr_expect_str_eq(i.verb, "get");
    cr_expect_str_eq(i.resource, "");
    i = info("GET", "/apis", false);
    cr_expect_not(i.is_resource);
    i = info("GET", "/api/v1", false);
    cr_expect_not(i.is_resource);
    i = info("POST", "////", false);
    cr_expect_not(i.is_resource);
    cr_expect_str_eq(i.verb, "post");
}

/* ---- field selectors, as fields.ParseSelector and RequestInfo read them ---- */

Test(reqinfo, field_selector_terms_sorted_unescaped)
{
    struct px_field_term t[8];
    char buf[256];
    int n = px_fieldsel_parse("spec.nodeName=node-1,metadata.name!=a\\,b,status.phase==Running",
                              buf, sizeof(buf), t, 8);

    cr_assert_eq(n, 3);
    cr_expect_str_eq(t[0].key, "metadata.name");
    cr_expect_str_eq(t[0].value, "a,b");
    cr_expect(t[0].neq);
    cr_expect_str_eq(t[1].key, "spec.nodeName");
    cr_expect_str_eq(t[1].value, "node-1");
    cr_expect_not(t[1].neq);
    cr_expect_str_eq(t[2].key, "status.phase");
    cr_expect_str_eq(t[2].value, "Running");
    cr_expect_eq(px_fieldsel_parse("", buf, sizeof(buf), t, 8), 0);
    cr_expect_eq(px_fieldsel_parse(",a=b,", buf, sizeof(buf), t, 8), 1);
    cr_expect_str_eq(t[0].value, "b");
}

Test(reqinfo, field_selector_errors)
{
    struct px_field_term t[2];
    char buf[32];

    cr_expect_eq(px_fieldsel_parse("nooperator", buf, sizeof(buf), t, 2), -EINVAL);
    cr_expect_eq(px_fieldsel_parse("a=b=c", buf, sizeof(buf), t, 2), -EINVAL);
    cr_expect_eq(px_fieldsel_parse("a=b\\x", buf, sizeof(buf), t, 2), -EINVAL);
    cr_expect_eq(px_fieldsel_parse("a=b\\", buf, sizeof(buf), t, 2), -EINVAL);
    cr_expect_eq(px_fieldsel_parse("a=1,b=2,c=3", buf, sizeof(buf), t, 2), -E2BIG);
    cr_expect_eq(
        px_fieldsel_parse("a=0123456789012345678901234567890123456789", buf, sizeof(buf), t, 2),
        -E2BIG);
}

static struct px_reqinfo with_selector(const char *path, bool watch, const char *fs)
{
    struct px_reqinfo i = info("GET", path, watch);
    px_reqinfo_field_selector(&i, fs);
    return i;
}

Test(reqinfo, metadata_name_selector_names_the_object)
{
    struct px_reqinfo i =
        with_selector("/api/v1/namespaces/demo/secrets", true, "metadata.name=sec1");
    cr_expect_str_eq(i.verb, "watch");
    cr_expect_str_eq(i.name, "sec1");

    i = with_selector("/api/v1/nodes", false, "spec.unschedulable=false,metadata.name==node-1");
    cr_expect_str_eq(i.verb, "list");
    cr_expect_str_eq(i.name, "node-1");

    /* not an exact match, not a valid path segment, not a collection: no name */
    cr_expect_str_eq(with_selector("/api/v1/secrets", false, "metadata.name!=x").name, "");
    cr_expect_str_eq(with_selector("/api/v1/secrets", false, "metadata.name=a/b").name, "");
    cr_expect_str_eq(with_selector("/api/v1/secrets", false, "metadata.name=..").name, "");
    cr_expect_str_eq(with_selector("/api/v1/secrets", false, "metadata.name=a,b").name, "");
    cr_expect_str_eq(with_selector("/api/v1/pods", false, "spec.nodeName=n").name, "");
    cr_expect_str_eq(with_selector("/api/v1/namespaces/d/pods/p", false, "metadata.name=q").name,
                     "p");
    cr_expect_str_eq(with_selector("/api/v1/pods", false, NULL).name, "");
}

static bool long_running(const char *method, const char *path, bool watch)
{
    struct px_reqinfo i;

    px_reqinfo_parse(method, path, watch, &i);
    return px_reqinfo_long_running(&i);
}

Test(reqinfo, long_running_like_the_apiservers_check)
{
    cr_expect(long_running("GET", "/api/v1/pods", true));
    cr_expect(long_running("GET", "/api/v1/watch/namespaces/d/pods", false));
    cr_expect(long_running("GET", "/api/v1/namespaces/d/pods/p/log", false));
    cr_expect(long_running("POST", "/api/v1/namespaces/d/pods/p/exec", false));
    cr_expect(long_running("GET", "/api/v1/namespaces/d/pods/p/attach", false));
    cr_expect(long_running("POST", "/api/v1/namespaces/d/pods/p/portforward", false));
    cr_expect(long_running("GET", "/api/v1/namespaces/d/services/s/proxy/x/y", false));
    cr_expect(long_running("GET", "/api/v1/proxy/namespaces/d/pods/p", false));
    cr_expect_not(long_running("GET", "/api/v1/pods", false));
    cr_expect_not(long_running("GET", "/api/v1/namespaces/d/pods/p", false));
    cr_expect_not(long_running("PATCH", "/api/v1/namespaces/d/pods/p/status", false));
    cr_expect_not(long_running("POST", "/apis/authentication.k8s.io/v1/tokenreviews", false));
    cr_expect_not(long_running("GET", "/healthz", false));
}

/* As RequestInfoFactory: ?watch only turns a GET without a name into a watch. */
Test(reqinfo, watch_parameter_only_without_a_name)
{
    struct px_reqinfo i = info("GET", "/api/v1/namespaces/demo/secrets/s1", true);
    cr_expect_str_eq(i.verb, "get");
    cr_expect_str_eq(i.name, "s1");
    cr_expect(!i.watch_path);

    i = info("GET", "/api/v1/watch/namespaces/demo/secrets/s1", false);
    cr_expect_str_eq(i.verb, "watch");
    cr_expect_str_eq(i.name, "s1");
    cr_expect(i.watch_path);

    cr_expect(!px_reqinfo_watch_param(NULL));
    cr_expect(!px_reqinfo_watch_param("0"));
    cr_expect(!px_reqinfo_watch_param("false"));
    cr_expect(!px_reqinfo_watch_param("FALSE"));
    cr_expect(px_reqinfo_watch_param(""));
    cr_expect(px_reqinfo_watch_param("1"));
    cr_expect(px_reqinfo_watch_param("true"));
    cr_expect(px_reqinfo_watch_param("no")); /* only "0" and "false" are false */
}

Test(reqinfo, namespaced_path_and_truncation)
{
    char path[512];
    struct px_reqinfo i = info("GET", "/api/v1/namespaces/demo/nodes/n1", false);
    cr_expect(i.namespaced_path);
    cr_expect_str_eq(i.resource, "nodes");

    i = info("GET", "/api/v1/namespaces/demo", false);
    cr_expect(!i.namespaced_path, "a namespace's own path");
    cr_expect_str_eq(i.name, "demo");

    i = info("GET", "/api/v1/namespaces/demo/status", false);
    cr_expect(!i.namespaced_path);
    cr_expect(!i.truncated);

    /* a namespace of 64 bytes does not fit namespace_[64]: flagged, never silently cut */
    snprintf(path, sizeof(path), "/api/v1/namespaces/%064d/configmaps", 7);
    i = info("GET", path, false);
    cr_expect(i.truncated);
    snprintf(path, sizeof(path), "/api/v1/namespaces/%063d/configmaps/%0300d", 7, 1);
    i = info("GET", path, false);
    cr_expect(i.truncated, "a 300-byte name");
    snprintf(path, sizeof(path), "/api/v1/namespaces/%063d/configmaps/x", 7);
    i = info("GET", path, false);
    cr_expect(!i.truncated);
}
