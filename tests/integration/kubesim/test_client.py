#!/usr/bin/python3
"""The kubernetes Python client (client-go's cousin): list with paging, watch from a
resource_version, create/update/patch/delete, 409 on a stale resourceVersion, 404s."""
import sys

try:
    from kubernetes import client, config, watch
    from kubernetes.client.rest import ApiException
except ImportError:
    print("the kubernetes Python package is not installed: skipped")
    sys.exit(77)

from ksim import KubeSim, check, finish

with KubeSim(churn=0) as ks:
    config.load_kube_config(config_file=ks.kubeconfig)
    v1 = client.CoreV1Api()
    first = v1.list_pod_for_all_namespaces(limit=25)
    check(len(first.items) == 25 and first.metadata._continue and first.metadata.remaining_item_count == 35,
          "paged list: %d %r" % (len(first.items), first.metadata.remaining_item_count))
    rest, tok = [], first.metadata._continue
    while tok:
        page = v1.list_pod_for_all_namespaces(limit=25, _continue=tok)
        rest += page.items
        tok = page.metadata._continue
    check(len(rest) == 35, "all pages: %d" % len(rest))
    check(first.items[0].spec.containers[0].resources.limits["cpu"] == "500m", "quantities decode")
    check(first.items[0].spec.containers[0].liveness_probe.http_get.port == 8080, "IntOrString decodes")

    rv = v1.list_namespaced_config_map("default").metadata.resource_version
    cm = v1.create_namespaced_config_map("default", {"metadata": {"name": "py1", "labels": {"a": "1"}}, "data": {"k": "v"}})
    check(cm.metadata.uid and int(cm.metadata.resource_version) > int(rv), "create")
    cm.data["k"] = "v2"
    upd = v1.replace_namespaced_config_map("py1", "default", cm)
    check(upd.data["k"] == "v2" and upd.metadata.resource_version != cm.metadata.resource_version, "update")
    try:
        v1.replace_namespaced_config_map("py1", "default", cm)  # stale resourceVersion
        check(False, "stale update must conflict")
    except ApiException as e:
        check(e.status == 409 and "the object has been modified" in e.body, "409: %s" % e.body)
    v1.patch_namespaced_config_map("py1", "default", {"metadata": {"labels": {"b": "2"}}})
    v1.delete_namespaced_config_map("py1", "default")
    try:
        v1.read_namespaced_config_map("py1", "default")
        check(False, "deleted configmap is gone")
    except ApiException as e:
        check(e.status == 404, "404 after delete")
    try:
        v1.create_namespaced_config_map("no-such-ns", {"metadata": {"name": "x"}})
        check(False, "creating in a missing namespace fails")
    except ApiException as e:
        check(e.status == 404 and 'namespaces \\"no-such-ns\\" not found' in e.body, "namespace 404: %s" % e.body)

    seen = [(ev["type"], ev["object"].metadata.name) for ev in
            watch.Watch().stream(v1.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=1)]
    check(seen == [("ADDED", "py1"), ("MODIFIED", "py1"), ("MODIFIED", "py1"), ("DELETED", "py1")],
          "watch from resource_version: %r" % seen)

    nodes = v1.list_node(field_selector="metadata.name=node-00002").items
    check(len(nodes) == 1 and nodes[0].status.node_info.kubelet_version == "v1.26.1", "node by name")
    leases = client.CoordinationV1Api().list_namespaced_lease("kube-node-lease").items
    check(len(leases) == 6 and leases[0].spec.renew_time is not None, "leases with MicroTime")
    slices = client.DiscoveryV1Api().list_endpoint_slice_for_all_namespaces().items
    check(slices and slices[0].endpoints[0].conditions.ready, "endpointslices")
    check(len(client.NodeV1Api().list_runtime_class().items) == 2, "runtimeclasses")
    check(len(client.StorageV1Api().list_csi_driver().items) == 2, "csidrivers")
    widgets = client.CustomObjectsApi().list_namespaced_custom_object("example.kfront.io", "v1", "default", "widgets")
    check(len(widgets["items"]) == 3, "custom resources")
finish()
