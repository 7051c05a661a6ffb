/*
 * gen: a realistic cluster. Namespaces with kube-root-ca.crt, nodes with
 * their leases, apps of pods (owned by a ReplicaSet, two containers, env and
 * volumes from the app's ConfigMap and Secret, the projected service-account
 * volume, resources, a Running status) spread over the nodes, services with
 * endpointslices (kube-proxy's labels), runtimeclasses, csidrivers and a few
 * custom Widgets. Every object goes through the same build path as a write
 * (JSON -> checked protobuf -> both encodings), so generated and written
 * objects look alike. Deterministic for a given --seed.
 */
#include "loadgen/kube-sim/kube_sim.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MODULE "kube-sim"

static struct ks_gen_config cfg;
static char *root_ca_pem; /* JSON-escaped, for kube-root-ca.crt */
static int64_t base_time;

struct app_ref {
    int ns;
    int app;
};

/* ---- helpers ------------------------------------------------------------------------------- */

void ks_gen_time(char *buf, size_t n, int64_t ago)
{
    ks_time_format(buf, n, base_time - ago, 0, false);
}

void ks_gen_hex(char *out, size_t nbytes)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < nbytes; i++) {
        uint64_t r = ks_rng();
        out[2 * i] = digits[r & 15];
        out[2 * i + 1] = digits[(r >> 4) & 15];
    }
    out[2 * nbytes] = '\0';
}

void ks_gen_suffix5(char *out)
{
    static const char chars[] = "bcdfghjklmnpqrstvwxz2456789";

    for (int i = 0; i < 5; i++)
        out[i] = chars[ks_rng() % (sizeof(chars) - 1)];
    out[5] = '\0';
}

/* Parse, build and store one generated object (no event: it is initial state). */
int ks_gen_load(struct ks_res *res, const char *json, size_t len, bool record)
{
    struct kf_arena *a = kf_arena_new(len * 3 + 4096);
    struct ks_json *dom;
    struct ks_obj *obj;
    struct ks_conv_error err;
    char perr[200];
    int rc;

    if (!a)
        return -ENOMEM;
    rc = ks_json_parse(a, json, len, &dom, perr, sizeof(perr));
    if (rc == 0)
        rc = ks_obj_build_text(res, dom, json, len, a, &obj, &err);
    if (rc == 0)
        rc = ks_store_put(obj, record);
    else
        kf_err(MODULE, "generated %s does not build: %s %s %s", res->kind, perr, err.field,
               err.detail);
    kf_arena_free(a);
    return rc;
}

/* The metadata up to creationTimestamp, in ObjectMeta's field order. */
static void meta_head_gen(struct ks_sb *sb, const char *name, const char *generate_name,
                          const char *ns, int64_t age, char uid[37])
{
    char when[40];

    ks_uuid(uid);
    ks_gen_time(when, sizeof(when), age);
    ks_sb_printf(sb, "\"metadata\":{\"name\":\"%s\"", name);
    if (generate_name)
        ks_sb_printf(sb, ",\"generateName\":\"%s\"", generate_name);
    if (ns)
        ks_sb_printf(sb, ",\"namespace\":\"%s\"", ns);
    ks_sb_printf(sb, ",\"uid\":\"%s\",\"resourceVersion\":\"%llu\",\"creationTimestamp\":\"%s\"",
                 uid, (unsigned long long)ks_store_next_rv(), when);
}

static void meta_head_uid(struct ks_sb *sb, const char *name, const char *ns, int64_t age,
                          char uid[37])
{
    meta_head_gen(sb, name, NULL, ns, age, uid);
}

static void meta_head(struct ks_sb *sb, const char *name, const char *ns, int64_t age)
{
    char uid[37];

    meta_head_uid(sb, name, ns, age, uid);
}

static int load_sb(struct ks_res *res, struct ks_sb *sb)
{
    int rc = sb->err ? sb->err : ks_gen_load(res, sb->p, sb->len, false);

    sb->len = 0;
    return rc;
}

/* ---- cluster-scoped objects ---------------------------------------------------------------- */

static const char *ns_name(char *buf, size_t n, int i)
{
    snprintf(buf, n, "team-%03d", i);
    return buf;
}

static int gen_namespace(struct ks_sb *sb, const char *name)
{
    ks_sb_adds(sb, "{\"kind\":\"Namespace\",\"apiVersion\":\"v1\",");
    meta_head(sb, name, NULL, 86400 * 30);
    ks_sb_printf(sb,
                 ",\"labels\":{\"kubernetes.io/metadata.name\":\"%s\"}},\"spec\":{"
                 "\"finalizers\":[\"kubernetes\"]},\"status\":{\"phase\":\"Active\"}}",
                 name);
    int rc = load_sb(&ks_res_namespaces, sb);
    if (rc < 0)
        return rc;
    ks_sb_adds(sb, "{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\",");
    meta_head(sb, "kube-root-ca.crt", name, 86400 * 30);
    ks_sb_printf(sb,
                 ",\"annotations\":{\"kubernetes.io/description\":\"Contains a CA bundle that "
                 "can be used to verify the kube-apiserver when using internal endpoints such "
                 "as the internal service IP or kubernetes.default.svc. No other usage is "
                 "guaranteed across distributions of Kubernetes clusters.\"}},\"data\":{"
                 "\"ca.crt\":\"%s\"}}",
                 root_ca_pem ? root_ca_pem : "");
    return load_sb(&ks_res_configmaps, sb);
}

void ks_gen_node_name(char *buf, size_t n, int i)
{
    snprintf(buf, n, "node-%05d", i);
}

static void node_condition(struct ks_sb *sb, const char *type, const char *status,
                           const char *reason, const char *msg, const char *hb, const char *tr,
                           bool last)
{
    ks_sb_printf(sb,
                 "{\"type\":\"%s\",\"status\":\"%s\",\"lastHeartbeatTime\":\"%s\","
                 "\"lastTransitionTime\":\"%s\",\"reason\":\"%s\",\"message\":\"%s\"}%s",
                 type, status, hb, tr, reason, msg, last ? "" : ",");
}

static int gen_node(struct ks_sb *sb, int i)
{
    char name[32], hb[40], tr[40], id[40], boot[40], uid[37];
    static const char *const zones[] = {"eu-west-1a", "eu-west-1b", "eu-west-1c"};

    ks_gen_node_name(name, sizeof(name), i);
    ks_gen_time(hb, sizeof(hb), 5);
    ks_gen_time(tr, sizeof(tr), 86400 * 20);
    ks_gen_hex(id, 16);
    ks_uuid(boot);
    ks_sb_adds(sb, "{\"kind\":\"Node\",\"apiVersion\":\"v1\",");
    meta_head_uid(sb, name, NULL, 86400 * 20, uid);
    ks_sb_printf(
        sb,
        ",\"labels\":{\"beta.kubernetes.io/arch\":\"amd64\",\"beta.kubernetes.io/os\":"
        "\"linux\",\"kubernetes.io/arch\":\"amd64\",\"kubernetes.io/hostname\":\"%s\","
        "\"kubernetes.io/os\":\"linux\",\"node.kubernetes.io/instance-type\":\"m5.xlarge\","
        "\"topology.kubernetes.io/region\":\"eu-west-1\",\"topology.kubernetes.io/zone\":"
        "\"%s\"},\"annotations\":{\"node.alpha.kubernetes.io/ttl\":\"0\","
        "\"volumes.kubernetes.io/controller-managed-attach-detach\":\"true\"}},",
        name, zones[i % 3]);
    ks_sb_printf(sb,
                 "\"spec\":{\"podCIDR\":\"10.%d.%d.0/24\",\"podCIDRs\":[\"10.%d.%d.0/24\"],"
                 "\"providerID\":\"aws:///%s/i-%s\"},",
                 64 + (i >> 8) % 64, i & 255, 64 + (i >> 8) % 64, i & 255, zones[i % 3], id);
    ks_sb_adds(sb, "\"status\":{\"capacity\":{\"cpu\":\"4\",\"ephemeral-storage\":\"101430960Ki\","
                   "\"hugepages-1Gi\":\"0\",\"hugepages-2Mi\":\"0\",\"memory\":\"16023952Ki\","
                   "\"pods\":\"110\"},\"allocatable\":{\"cpu\":\"3920m\",\"ephemeral-storage\":"
                   "\"93478772582\",\"hugepages-1Gi\":\"0\",\"hugepages-2Mi\":\"0\",\"memory\":"
                   "\"15102352Ki\",\"pods\":\"110\"},\"conditions\":[");
    node_condition(sb, "MemoryPressure", "False", "KubeletHasSufficientMemory",
                   "kubelet has sufficient memory available", hb, tr, false);
    node_condition(sb, "DiskPressure", "False", "KubeletHasNoDiskPressure",
                   "kubelet has no disk pressure", hb, tr, false);
    node_condition(sb, "PIDPressure", "False", "KubeletHasSufficientPID",
                   "kubelet has sufficient PID available", hb, tr, false);
    node_condition(sb, "Ready", "True", "KubeletReady", "kubelet is posting ready status", hb, tr,
                   true);
    ks_sb_printf(sb,
                 "],\"addresses\":[{\"type\":\"InternalIP\",\"address\":\"10.0.%d.%d\"},{\"type\":"
                 "\"Hostname\",\"address\":\"%s\"}],\"daemonEndpoints\":{\"kubeletEndpoint\":{"
                 "\"Port\":10250}},\"nodeInfo\":{\"machineID\":\"%s\",\"systemUUID\":\"%s\","
                 "\"bootID\":\"%s\",\"kernelVersion\":\"5.15.0-1019-aws\",\"osImage\":\"Ubuntu "
                 "22.04.1 LTS\",\"containerRuntimeVersion\":\"containerd://1.6.8\","
                 "\"kubeletVersion\":\"v1.26.1\",\"kubeProxyVersion\":\"v1.26.1\","
                 "\"operatingSystem\":\"linux\",\"architecture\":\"amd64\"},\"images\":[{\"names\":"
                 "[\"registry.example.com/app@sha256:%s\",\"registry.example.com/app:1.4.2\"],"
                 "\"sizeBytes\":187263422},{\"names\":[\"registry.example.com/log-shipper@sha256:"
                 "%s\",\"registry.example.com/log-shipper:2.4.1\"],\"sizeBytes\":45128001}]}}",
                 (i >> 8) & 255, i & 255, name, id, boot, boot, id, id);
    int rc = load_sb(&ks_res_nodes, sb);
    if (rc < 0)
        return rc;
    /* its lease in kube-node-lease, renewed by churn like a kubelet does every 10 s */
    char renew[48];
    ks_time_format(renew, sizeof(renew), base_time - 3, 123456000, true);
    ks_sb_adds(sb, "{\"kind\":\"Lease\",\"apiVersion\":\"coordination.k8s.io/v1\",");
    meta_head(sb, name, "kube-node-lease", 86400 * 20);
    ks_sb_printf(
        sb,
        ",\"ownerReferences\":[{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"name\":\"%s\","
        "\"uid\":\"%s\"}]},\"spec\":{\"holderIdentity\":\"%s\",\"leaseDurationSeconds\":40,"
        "\"renewTime\":\"%s\"}}",
        name, uid, name, renew);
    return load_sb(&ks_res_leases, sb);
}

/* ---- namespaced objects ------------------------------------------------------------------- */

static int gen_configmap(struct ks_sb *sb, const char *ns, int i)
{
    char name[48];

    snprintf(name, sizeof(name), "app-config-%d", i);
    ks_sb_adds(sb, "{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\",");
    meta_head(sb, name, ns, 86400 * 10);
    ks_sb_printf(sb,
                 ",\"labels\":{\"app.kubernetes.io/part-of\":\"app-%d\"}},\"data\":{"
                 "\"app.properties\":\"server.port=8080\\nserver.threads=64\\ncache.size=256MB\\n"
                 "cache.ttl=300s\\nupstream.url=http://backend-%d.%s.svc:8080\\nretry.max=3\\n"
                 "retry.backoff=250ms\\nfeature.x=true\\nfeature.y=false\\n\",\"feature.flags\":"
                 "\"{\\\"newCheckout\\\":true,\\\"darkMode\\\":false,\\\"revision\\\":%d}\","
                 "\"log.level\":\"info\"}}",
                 i, i, ns, i);
    return load_sb(&ks_res_configmaps, sb);
}

static int gen_secret(struct ks_sb *sb, const char *ns, int i)
{
    char name[48], key[129];

    snprintf(name, sizeof(name), "app-secret-%d", i);
    ks_gen_hex(key, 64);
    ks_sb_adds(sb, "{\"kind\":\"Secret\",\"apiVersion\":\"v1\",");
    meta_head(sb, name, ns, 86400 * 10);
    ks_sb_printf(sb,
                 ",\"labels\":{\"app.kubernetes.io/part-of\":\"app-%d\"}},\"data\":{\"api-key\":"
                 "\"",
                 i);
    /* base64 of the hex key: hex is ASCII, so encode it plainly */
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t k = 0; k + 3 <= 126; k += 3) {
        unsigned v = (unsigned)key[k] << 16 | (unsigned)key[k + 1] << 8 | (unsigned)key[k + 2];
        char q[4] = {b64[v >> 18], b64[(v >> 12) & 63], b64[(v >> 6) & 63], b64[v & 63]};
        ks_sb_add(sb, q, 4);
    }
    ks_sb_adds(sb, "\",\"password\":\"czNjcjN0LXBhc3N3b3JkLTEyMzQ1Ng==\",\"username\":"
                   "\"YXBwLXVzZXI=\"},\"type\":\"Opaque\"}");
    return load_sb(&ks_res_secrets, sb);
}

static int gen_service(struct ks_sb *sb, const char *ns, int app, int idx, bool headless)
{
    char name[48], svc_uid[37];
    int a = 96 + (idx >> 16) % 16, b = (idx >> 8) & 255, c = idx & 255;

    snprintf(name, sizeof(name), "app-%d", app);
    ks_sb_adds(sb, "{\"kind\":\"Service\",\"apiVersion\":\"v1\",");
    meta_head_uid(sb, name, ns, 86400 * 10, svc_uid);
    ks_sb_printf(sb,
                 ",\"labels\":{\"app\":\"app-%d\"%s}},\"spec\":{\"ports\":[{\"name\":\"http\","
                 "\"protocol\":\"TCP\",\"port\":80,\"targetPort\":8080}],\"selector\":{"
                 "\"app\":\"app-%d\"},",
                 app, headless ? ",\"service.kubernetes.io/headless\":\"\"" : "", app);
    if (headless)
        ks_sb_adds(sb, "\"clusterIP\":\"None\",\"clusterIPs\":[\"None\"],");
    else
        ks_sb_printf(sb, "\"clusterIP\":\"10.%d.%d.%d\",\"clusterIPs\":[\"10.%d.%d.%d\"],", a, b, c,
                     a, b, c);
    ks_sb_adds(sb, "\"type\":\"ClusterIP\",\"sessionAffinity\":\"None\",\"ipFamilies\":[\"IPv4\"],"
                   "\"ipFamilyPolicy\":\"SingleStack\",\"internalTrafficPolicy\":\"Cluster\"},"
                   "\"status\":{\"loadBalancer\":{}}}");
    int rc = load_sb(&ks_res_services, sb);
    if (rc < 0)
        return rc;
    /* its EndpointSlice, listing up to 10 of the app's pods */
    char slice[64], sfx[6];
    ks_gen_suffix5(sfx);
    snprintf(slice, sizeof(slice), "%s-%s", name, sfx);
    ks_sb_adds(sb, "{\"kind\":\"EndpointSlice\",\"apiVersion\":\"discovery.k8s.io/v1\",");
    char gen[64], slice_uid[37];
    snprintf(gen, sizeof(gen), "%s-", name);
    meta_head_gen(sb, slice, gen, ns, 86400 * 10, slice_uid);
    ks_sb_printf(sb,
                 ",\"labels\":{\"endpointslice.kubernetes.io/managed-by\":"
                 "\"endpointslice-controller.k8s.io\",\"kubernetes.io/service-name\":\"%s\"%s},"
                 "\"ownerReferences\":[{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"name\":\"%s\","
                 "\"uid\":\"%s\",\"controller\":true,\"blockOwnerDeletion\":true}]},"
                 "\"addressType\":\"IPv4\",\"endpoints\":[",
                 name, headless ? ",\"service.kubernetes.io/headless\":\"\"" : "", name, svc_uid);
    for (int e = 0; e < 3; e++) {
        int node = (app * 7 + e) % (cfg.nodes ? cfg.nodes : 1);
        ks_sb_printf(sb,
                     "%s{\"addresses\":[\"10.%d.%d.%d\"],\"conditions\":{\"ready\":true,"
                     "\"serving\":true,\"terminating\":false},\"nodeName\":\"node-%05d\","
                     "\"zone\":\"eu-west-1a\"}",
                     e ? "," : "", 64 + (node >> 8) % 64, node & 255, 10 + e, node);
    }
    ks_sb_adds(sb, "],\"ports\":[{\"name\":\"http\",\"protocol\":\"TCP\",\"port\":8080}]}");
    return load_sb(&ks_res_endpointslices, sb);
}

/* default/kubernetes: the service every in-cluster client and kube-proxy expects. */
static int gen_kubernetes_service(struct ks_sb *sb)
{
    ks_sb_adds(sb, "{\"kind\":\"Service\",\"apiVersion\":\"v1\",");
    meta_head(sb, "kubernetes", "default", 86400 * 30);
    ks_sb_adds(sb, ",\"labels\":{\"component\":\"apiserver\",\"provider\":\"kubernetes\"}},"
                   "\"spec\":{\"ports\":[{\"name\":\"https\",\"protocol\":\"TCP\",\"port\":443,"
                   "\"targetPort\":6443}],\"clusterIP\":\"10.96.0.1\",\"clusterIPs\":["
                   "\"10.96.0.1\"],\"type\":\"ClusterIP\",\"sessionAffinity\":\"None\","
                   "\"ipFamilies\":[\"IPv4\"],\"ipFamilyPolicy\":\"SingleStack\","
                   "\"internalTrafficPolicy\":\"Cluster\"},\"status\":{\"loadBalancer\":{}}}");
    int rc = load_sb(&ks_res_services, sb);
    if (rc < 0)
        return rc;
    ks_sb_adds(sb, "{\"kind\":\"EndpointSlice\",\"apiVersion\":\"discovery.k8s.io/v1\",");
    meta_head(sb, "kubernetes", "default", 86400 * 30);
    ks_sb_adds(sb, ",\"labels\":{\"kubernetes.io/service-name\":\"kubernetes\"}},"
                   "\"addressType\":\"IPv4\",\"endpoints\":[{\"addresses\":[\"127.0.0.1\"],"
                   "\"conditions\":{\"ready\":true}}],\"ports\":[{\"name\":\"https\","
                   "\"protocol\":\"TCP\",\"port\":6443}]}");
    return load_sb(&ks_res_endpointslices, sb);
}

static int gen_small(struct ks_sb *sb)
{
    static const char *const classes[] = {"runc", "gvisor"};
    static const char *const drivers[] = {"ebs.csi.aws.com", "efs.csi.aws.com"};
    int rc = gen_kubernetes_service(sb);

    for (size_t i = 0; rc == 0 && i < 2; i++) {
        ks_sb_adds(sb, "{\"kind\":\"RuntimeClass\",\"apiVersion\":\"node.k8s.io/v1\",");
        meta_head(sb, classes[i], NULL, 86400 * 30);
        ks_sb_printf(sb, "},\"handler\":\"%s\"}", i ? "runsc" : "runc");
        rc = load_sb(&ks_res_runtimeclasses, sb);
    }
    for (size_t i = 0; rc == 0 && i < 2; i++) {
        ks_sb_adds(sb, "{\"kind\":\"CSIDriver\",\"apiVersion\":\"storage.k8s.io/v1\",");
        meta_head(sb, drivers[i], NULL, 86400 * 30);
        ks_sb_adds(sb, "},\"spec\":{\"attachRequired\":true,\"podInfoOnMount\":false,"
                       "\"volumeLifecycleModes\":[\"Persistent\"],\"storageCapacity\":false,"
                       "\"fsGroupPolicy\":\"ReadWriteOnceWithFSType\",\"requiresRepublish\":false,"
                       "\"seLinuxMount\":false}}");
        rc = load_sb(&ks_res_csidrivers, sb);
    }
    for (int i = 0; rc == 0 && i < 3; i++) {
        char name[32];
        snprintf(name, sizeof(name), "widget-%d", i);
        ks_sb_adds(sb, "{\"kind\":\"Widget\",\"apiVersion\":\"example.kfront.io/v1\",");
        meta_head(sb, name, "default", 86400);
        ks_sb_printf(sb, ",\"labels\":{\"color\":\"%s\"}},\"spec\":{\"size\":%d,\"color\":\"%s\"}}",
                     i % 2 ? "red" : "blue", i + 1, i % 2 ? "red" : "blue");
        rc = load_sb(&ks_res_widgets, sb);
    }
    return rc;
}

/* ---- the cluster ---------------------------------------------------------------------------- */

enum { PODS_PER_APP = 10, PODS_PER_NS = 500 };

static int n_namespaces(void)
{
    int n = (int)((cfg.pods + PODS_PER_NS - 1) / PODS_PER_NS);
    return n < 1 ? 1 : n;
}

static int gen_app(struct ks_sb *sb, const char *ns, int app, int cms, int secs, size_t *pod_i,
                   size_t pods_left)
{
    char rs_uid[37], hash[11];
    struct ks_pod_spec p = {.ns = ns, .app = app, .rs_uid = rs_uid, .hash = hash};
    size_t n = pods_left < PODS_PER_APP ? pods_left : PODS_PER_APP;
    int rc;

    ks_uuid(rs_uid);
    ks_gen_hex(hash, 5);
    p.cm = cms ? app % cms : -1;
    p.sec = secs ? app % secs : -1;
    rc = ks_gen_app_pods(sb, &p, *pod_i, n, cfg.nodes);
    *pod_i += n;
    return rc;
}

static int gen_namespace_contents(struct ks_sb *sb, int nsi, int nns, size_t *pod_i)
{
    char ns[32];
    int cms = (int)((cfg.configmaps + (size_t)nns - 1 - (size_t)nsi) / (size_t)nns);
    int secs = (int)((cfg.secrets + (size_t)nns - 1 - (size_t)nsi) / (size_t)nns);
    int rc = gen_namespace(sb, ns_name(ns, sizeof(ns), nsi));

    for (int i = 0; rc == 0 && i < cms; i++)
        rc = gen_configmap(sb, ns, i);
    for (int i = 0; rc == 0 && i < secs; i++)
        rc = gen_secret(sb, ns, i);
    size_t first = *pod_i, share = (cfg.pods - first) / (size_t)(nns - nsi);
    for (int app = 0; rc == 0 && *pod_i < first + share; app++) {
        rc = gen_app(sb, ns, app, cms, secs, pod_i, first + share - *pod_i);
        /* one service per 5 apps; the very first one headless (kube-proxy skips it) */
        if (rc == 0 && app % 5 == 0)
            rc = gen_service(sb, ns, app, nsi * 1000 + app, app == 0 && nsi == 0);
    }
    return rc;
}

static char *json_escape_file(const char *path)
{
    FILE *f = fopen(path, "r");
    char buf[8192];
    size_t n;
    struct ks_sb sb;

    if (!f)
        return NULL;
    n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    ks_sb_init(&sb, 2 * n + 4);
    ks_sb_json_str(&sb, buf, n);
    /* drop the quotes ks_sb_json_str added */
    char *out = sb.err ? NULL : strndup(sb.p + 1, sb.len - 2);
    ks_sb_free(&sb);
    return out;
}

int ks_gen_cluster(const struct ks_gen_config *c)
{
    struct ks_sb sb;
    static const char *const system_ns[] = {"default", "kube-system", "kube-public",
                                            "kube-node-lease"};
    size_t pod_i = 0;
    int rc = 0, nns;

    cfg = *c;
    nns = n_namespaces();
    base_time = (int64_t)time(NULL);
    if (c->ca_file)
        root_ca_pem = json_escape_file(c->ca_file);
    ks_sb_init(&sb, 16384);
    for (size_t i = 0; rc == 0 && i < KF_ARRAY_SIZE(system_ns); i++)
        rc = gen_namespace(&sb, system_ns[i]);
    for (size_t i = 0; rc == 0 && i < cfg.nodes; i++)
        rc = gen_node(&sb, (int)i);
    for (int i = 0; rc == 0 && i < nns; i++)
        rc = gen_namespace_contents(&sb, i, nns, &pod_i);
    if (rc == 0)
        rc = gen_small(&sb);
    ks_sb_free(&sb);
    return rc;
}

void ks_gen_free(void)
{
    free(root_ca_pem);
    root_ca_pem = NULL;
}

/* A replacement pod: same app, new name and uid, another node (churn). */
void ks_churn_respawn(struct kf_arena *a, struct ks_json *pod)
{
    struct ks_json *meta = ks_meta(a, pod), *spec = ks_json_get(pod, "spec");
    const char *gen = ks_json_get_str(meta, "name");
    char name[128], sfx[6], uid[37], when[40], rv[24], node[32];
    struct ks_obj *obj;
    struct ks_conv_error err;

    if (!meta || !spec || !gen || !cfg.nodes)
        return;
    ks_gen_suffix5(sfx);
    ks_uuid(uid);
    ks_time_format(when, sizeof(when), (int64_t)time(NULL), 0, false);
    snprintf(name, sizeof(name), "%.*s%s", (int)(strlen(gen) > 5 ? strlen(gen) - 5 : 0), gen, sfx);
    snprintf(rv, sizeof(rv), "%llu", (unsigned long long)ks_store.rv + 1);
    ks_gen_node_name(node, sizeof(node), (int)(ks_rng() % cfg.nodes));
    struct {
        struct ks_json *parent;
        const char *key, *value;
    } sets[] = {{meta, "name", name},
                {meta, "uid", uid},
                {meta, "resourceVersion", rv},
                {meta, "creationTimestamp", when},
                {spec, "nodeName", node}};
    for (size_t i = 0; i < KF_ARRAY_SIZE(sets); i++) {
        struct ks_json *v = ks_json_new_str(a, sets[i].value);
        if (!v)
            return;
        if (sets[i].parent == meta)
            ks_meta_set(a, meta, sets[i].key, v);
        else
            ks_json_set(a, spec, sets[i].key, v, NULL, 0);
    }
    if (ks_obj_build(&ks_res_pods, pod, a, &obj, &err) == 0) {
        ks_store_next_rv();
        ks_store_put(obj, true);
    }
}
