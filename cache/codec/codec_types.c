/* The API types kfront knows: names, URLs and protobuf descriptors. */
#include "cache/codec/codec.h"

#include "k8s_coordination_v1.pb-c.h"
#include "k8s_core_v1.pb-c.h"
#include "k8s_discovery_v1.pb-c.h"
#include "k8s_meta_v1.pb-c.h"
#include "k8s_node_v1.pb-c.h"
#include "k8s_storage_v1.pb-c.h"

#include <string.h>

#define CORE(d) &k8s__io__api__core__v1__##d##__descriptor

static const struct codec_type types[CODEC_KIND_COUNT] = {
    [CODEC_KIND_POD] = {CODEC_KIND_POD, "Pod", "PodList", "", "v1", "pods", true, CORE(pod),
                        CORE(pod_list)},
    [CODEC_KIND_NODE] = {CODEC_KIND_NODE, "Node", "NodeList", "", "v1", "nodes", false, CORE(node),
                         CORE(node_list)},
    [CODEC_KIND_CONFIGMAP] = {CODEC_KIND_CONFIGMAP, "ConfigMap", "ConfigMapList", "", "v1",
                              "configmaps", true, CORE(config_map), CORE(config_map_list)},
    [CODEC_KIND_SECRET] = {CODEC_KIND_SECRET, "Secret", "SecretList", "", "v1", "secrets", true,
                           CORE(secret), CORE(secret_list)},
    [CODEC_KIND_SERVICE] = {CODEC_KIND_SERVICE, "Service", "ServiceList", "", "v1", "services",
                            true, CORE(service), CORE(service_list)},
    [CODEC_KIND_NAMESPACE] = {CODEC_KIND_NAMESPACE, "Namespace", "NamespaceList", "", "v1",
                              "namespaces", false, CORE(namespace), CORE(namespace_list)},
    [CODEC_KIND_EVENT] = {CODEC_KIND_EVENT, "Event", "EventList", "", "v1", "events", true,
                          CORE(event), CORE(event_list)},
    [CODEC_KIND_ENDPOINTS] = {CODEC_KIND_ENDPOINTS, "Endpoints", "EndpointsList", "", "v1",
                              "endpoints", true, CORE(endpoints), CORE(endpoints_list)},
    [CODEC_KIND_SERVICEACCOUNT] = {CODEC_KIND_SERVICEACCOUNT, "ServiceAccount",
                                   "ServiceAccountList", "", "v1", "serviceaccounts", true,
                                   CORE(service_account), CORE(service_account_list)},
    [CODEC_KIND_BINDING] = {CODEC_KIND_BINDING, "Binding", NULL, "", "v1", "bindings", true,
                            CORE(binding), NULL},
    [CODEC_KIND_ENDPOINTSLICE] = {CODEC_KIND_ENDPOINTSLICE, "EndpointSlice", "EndpointSliceList",
                                  "discovery.k8s.io", "discovery.k8s.io/v1", "endpointslices", true,
                                  &k8s__io__api__discovery__v1__endpoint_slice__descriptor,
                                  &k8s__io__api__discovery__v1__endpoint_slice_list__descriptor},
    [CODEC_KIND_LEASE] = {CODEC_KIND_LEASE, "Lease", "LeaseList", "coordination.k8s.io",
                          "coordination.k8s.io/v1", "leases", true,
                          &k8s__io__api__coordination__v1__lease__descriptor,
                          &k8s__io__api__coordination__v1__lease_list__descriptor},
    [CODEC_KIND_RUNTIMECLASS] = {CODEC_KIND_RUNTIMECLASS, "RuntimeClass", "RuntimeClassList",
                                 "node.k8s.io", "node.k8s.io/v1", "runtimeclasses", false,
                                 &k8s__io__api__node__v1__runtime_class__descriptor,
                                 &k8s__io__api__node__v1__runtime_class_list__descriptor},
    [CODEC_KIND_CSIDRIVER] = {CODEC_KIND_CSIDRIVER, "CSIDriver", "CSIDriverList", "storage.k8s.io",
                              "storage.k8s.io/v1", "csidrivers", false,
                              &k8s__io__api__storage__v1__csidriver__descriptor,
                              &k8s__io__api__storage__v1__csidriver_list__descriptor},
    [CODEC_KIND_STATUS] = {CODEC_KIND_STATUS, "Status", NULL, "", "v1", "", false,
                           &k8s__io__apimachinery__pkg__apis__meta__v1__status__descriptor, NULL},
};

const struct codec_type *codec_type_get(enum codec_kind id)
{
    if (id <= CODEC_KIND_UNKNOWN || id >= CODEC_KIND_COUNT)
        return NULL;
    return &types[id];
}

const struct codec_type *codec_type_by_kind(struct codec_str api_version, struct codec_str kind)
{
    for (size_t i = 1; i < CODEC_KIND_COUNT; i++) {
        if (codec_str_eq(kind, types[i].kind) && codec_str_eq(api_version, types[i].api_version))
            return &types[i];
    }
    return NULL;
}

const struct codec_type *codec_type_by_resource(const char *group, const char *resource)
{
    for (size_t i = 1; i < CODEC_KIND_COUNT; i++) {
        if (types[i].resource[0] && strcmp(group, types[i].group) == 0 &&
            strcmp(resource, types[i].resource) == 0)
            return &types[i];
    }
    return NULL;
}
