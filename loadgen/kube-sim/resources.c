/*
 * resources: the API resources kube-sim serves, with what discovery, field
 * selectors, bookmarks and tables need to know about each.
 */
#include "loadgen/kube-sim/kube_sim.h"

#include "cache/codec/codec.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

struct ks_res ks_res_pods = {
    .name = "pods",
    .singular = "pod",
    .kind = "Pod",
    .group = "",
    .version = "v1",
    .api_version = "v1",
    .short_names = "\"po\"",
    .categories = "\"all\"",
    .namespaced = true,
    .fields = {"spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
               "spec.serviceAccountName", "spec.hostNetwork", "status.phase", "status.podIP",
               "status.nominatedNodeName"},
    .n_fields = 8,
    .bookmark_tail = ",\"spec\":{\"containers\":null},\"status\":{}",
    .subresources = {"binding", "status"},
    .index_field = "spec.nodeName",
};

struct ks_res ks_res_nodes = {
    .name = "nodes",
    .singular = "node",
    .kind = "Node",
    .group = "",
    .version = "v1",
    .api_version = "v1",
    .short_names = "\"no\"",
    .categories = "",
    .fields = {"spec.unschedulable"},
    .n_fields = 1,
    .bookmark_tail =
        ",\"spec\":{},\"status\":{\"daemonEndpoints\":{\"kubeletEndpoint\":{\"Port\":0}},"
        "\"nodeInfo\":{\"machineID\":\"\",\"systemUUID\":\"\",\"bootID\":\"\",\"kernelVersion\":"
        "\"\",\"osImage\":\"\",\"containerRuntimeVersion\":\"\",\"kubeletVersion\":\"\","
        "\"kubeProxyVersion\":\"\",\"operatingSystem\":\"\",\"architecture\":\"\"}}",
    .subresources = {"status"},
};

struct ks_res ks_res_configmaps = {
    .name = "configmaps",
    .singular = "configmap",
    .kind = "ConfigMap",
    .group = "",
    .version = "v1",
    .api_version = "v1",
    .short_names = "\"cm\"",
    .categories = "",
    .namespaced = true,
    .bookmark_tail = "",
};

struct ks_res ks_res_secrets = {
    .name = "secrets",
    .singular = "secret",
    .kind = "Secret",
    .group = "",
    .version = "v1",
    .api_version = "v1",
    .short_names = "",
    .categories = "",
    .namespaced = true,
    .fields = {"type"},
    .n_fields = 1,
    .bookmark_tail = "",
};

struct ks_res ks_res_services = {
    .name = "services",
    .singular = "service",
    .kind = "Service",
    .group = "",
    .version = "v1",
    .api_version = "v1",
    .short_names = "\"svc\"",
    .categories = "\"all\"",
    .namespaced = true,
    .fields = {"spec.clusterIP", "spec.type"},
    .n_fields = 2,
    .bookmark_tail = ",\"spec\":{},\"status\":{\"loadBalancer\":{}}",
    .subresources = {"status"},
};

struct ks_res ks_res_namespaces = {
    .name = "namespaces",
    .singular = "namespace",
    .kind = "Namespace",
    .group = "",
    .version = "v1",
    .api_version = "v1",
    .short_names = "\"ns\"",
    .categories = "",
    .fields = {"status.phase"},
    .n_fields = 1,
    .bookmark_tail = ",\"spec\":{},\"status\":{}",
    .subresources = {"status"},
};

struct ks_res ks_res_events = {
    .name = "events",
    .singular = "event",
    .kind = "Event",
    .group = "",
    .version = "v1",
    .api_version = "v1",
    .short_names = "\"ev\"",
    .categories = "",
    .namespaced = true,
    .fields = {"involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
               "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
               "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"},
    .n_fields = 11,
    .bookmark_tail = ",\"involvedObject\":{},\"source\":{},\"firstTimestamp\":null,"
                     "\"lastTimestamp\":null,\"eventTime\":null,\"reportingComponent\":\"\","
                     "\"reportingInstance\":\"\"",
};

struct ks_res ks_res_endpointslices = {
    .name = "endpointslices",
    .singular = "endpointslice",
    .kind = "EndpointSlice",
    .group = "discovery.k8s.io",
    .version = "v1",
    .api_version = "discovery.k8s.io/v1",
    .short_names = "",
    .categories = "",
    .namespaced = true,
    .bookmark_tail = ",\"addressType\":\"\",\"endpoints\":null",
};

struct ks_res ks_res_leases = {
    .name = "leases",
    .singular = "lease",
    .kind = "Lease",
    .group = "coordination.k8s.io",
    .version = "v1",
    .api_version = "coordination.k8s.io/v1",
    .short_names = "",
    .categories = "",
    .namespaced = true,
    .bookmark_tail = ",\"spec\":{}",
};

struct ks_res ks_res_runtimeclasses = {
    .name = "runtimeclasses",
    .singular = "runtimeclass",
    .kind = "RuntimeClass",
    .group = "node.k8s.io",
    .version = "v1",
    .api_version = "node.k8s.io/v1",
    .short_names = "",
    .categories = "",
    .bookmark_tail = ",\"handler\":\"\"",
};

struct ks_res ks_res_csidrivers = {
    .name = "csidrivers",
    .singular = "csidriver",
    .kind = "CSIDriver",
    .group = "storage.k8s.io",
    .version = "v1",
    .api_version = "storage.k8s.io/v1",
    .short_names = "",
    .categories = "",
    .bookmark_tail = ",\"spec\":{}",
};

/* A custom resource: JSON only, like every CRD. */
struct ks_res ks_res_widgets = {
    .name = "widgets",
    .singular = "widget",
    .kind = "Widget",
    .group = "example.kfront.io",
    .version = "v1",
    .api_version = "example.kfront.io/v1",
    .short_names = "\"wd\"",
    .categories = "",
    .namespaced = true,
    .json_only = true,
    .bookmark_tail = "",
};

struct ks_res *ks_resources[] = {
    &ks_res_pods,     &ks_res_nodes,          &ks_res_configmaps, &ks_res_secrets,
    &ks_res_services, &ks_res_namespaces,     &ks_res_events,     &ks_res_endpointslices,
    &ks_res_leases,   &ks_res_runtimeclasses, &ks_res_csidrivers, &ks_res_widgets,
};
size_t ks_n_resources = KF_ARRAY_SIZE(ks_resources);

struct ks_res *ks_res_find(const char *group, const char *version, const char *name)
{
    for (size_t i = 0; i < ks_n_resources; i++) {
        struct ks_res *r = ks_resources[i];
        if (strcmp(r->group, group) == 0 && strcmp(r->version, version) == 0 &&
            strcmp(r->name, name) == 0)
            return r;
    }
    return NULL;
}

struct ks_res *ks_res_by_kind(const char *kind)
{
    for (size_t i = 0; i < ks_n_resources; i++)
        if (strcmp(ks_resources[i]->kind, kind) == 0)
            return ks_resources[i];
    return NULL;
}

bool ks_res_has_subresource(const struct ks_res *res, const char *sub)
{
    for (size_t i = 0; i < KF_ARRAY_SIZE(res->subresources) && res->subresources[i]; i++)
        if (strcmp(res->subresources[i], sub) == 0)
            return true;
    return false;
}

int ks_res_bind(void)
{
    int rc = 0;

    for (size_t i = 0; i < ks_n_resources; i++) {
        struct ks_res *r = ks_resources[i];
        if (r->json_only)
            continue;
        const struct codec_type *t = codec_type_by_resource(r->group, r->name);
        r->desc = t ? t->pb : NULL;
        if (!r->desc) {
            kf_err("kube-sim", "no protobuf type for %s", r->name);
            rc = -ENOENT;
        }
    }
    return rc;
}

const char *ks_res_qualified(const struct ks_res *res, char *buf, size_t size)
{
    snprintf(buf, size, "%s%s%s", res->name, res->group[0] ? "." : "", res->group);
    return buf;
}
