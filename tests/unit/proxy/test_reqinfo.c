#include <criterion/criterion.h>

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
