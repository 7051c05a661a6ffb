/*
 * gen_pod: the generated pods. Pods of one app differ only in a few values
 * (name, uid, node, addresses, container ids), so the first pod of an app
 * goes through the full build (JSON -> checked message -> protobuf) and its
 * replicas reuse that message with those values set before packing it again:
 * several times cheaper, and the unit tests check that every generated pod
 * is byte for byte what the full path would store.
 */
#include "loadgen/kube-sim/kube_sim.h"

#include "k8s_core_v1.pb-c.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What differs between the pods of one app. */
struct pod_vals {
    char name[96], uid[37], rv[24], sa[6], node[32];
    char host_ip[24], pod_ip[24];
    char cid1[80], cid2[80];       /* containerd://... */
    char image1[160], image2[160]; /* ...@sha256:... */
    char api_volume[32];           /* kube-api-access-XXXXX */
};

static void pod_vals_new(struct pod_vals *v, const struct ks_pod_spec *p, int node, int ip_host)
{
    char sfx[6], h1[65], h2[65];
    int o2 = 64 + (node >> 8) % 64, o3 = node & 255;

    ks_gen_suffix5(sfx);
    ks_gen_suffix5(v->sa);
    snprintf(v->name, sizeof(v->name), "app-%d-%s-%s", p->app, p->hash, sfx);
    ks_uuid(v->uid);
    snprintf(v->rv, sizeof(v->rv), "%llu", (unsigned long long)ks_store_next_rv());
    ks_gen_node_name(v->node, sizeof(v->node), node);
    snprintf(v->host_ip, sizeof(v->host_ip), "10.0.%d.%d", (node >> 8) & 255, node & 255);
    snprintf(v->pod_ip, sizeof(v->pod_ip), "10.%d.%d.%d", o2, o3, ip_host);
    ks_gen_hex(h1, 32);
    ks_gen_hex(h2, 32);
    snprintf(v->cid1, sizeof(v->cid1), "containerd://%s", h1);
    snprintf(v->cid2, sizeof(v->cid2), "containerd://%s", h2);
    snprintf(v->image1, sizeof(v->image1), "registry.example.com/app@sha256:%s", h2);
    snprintf(v->image2, sizeof(v->image2), "registry.example.com/log-shipper@sha256:%s", h1);
    snprintf(v->api_volume, sizeof(v->api_volume), "kube-api-access-%s", v->sa);
}

static void pod_meta(struct ks_sb *sb, const struct ks_pod_spec *p, const struct pod_vals *v,
                     const char *t)
{
    ks_sb_printf(sb,
                 "\"metadata\":{\"name\":\"%s\",\"namespace\":\"%s\",\"uid\":\"%s\","
                 "\"resourceVersion\":\"%s\",\"creationTimestamp\":\"%s\"",
                 v->name, p->ns, v->uid, v->rv, t);
    ks_sb_printf(
        sb,
        ",\"labels\":{\"app\":\"app-%d\",\"pod-template-hash\":\"%s\",\"tier\":\"backend\"},"
        "\"ownerReferences\":[{\"apiVersion\":\"apps/v1\",\"kind\":\"ReplicaSet\",\"name\":"
        "\"app-%d-%s\",\"uid\":\"%s\",\"controller\":true,\"blockOwnerDeletion\":true}],"
        "\"managedFields\":[{\"manager\":\"kube-controller-manager\",\"operation\":"
        "\"Update\",\"apiVersion\":\"v1\",\"time\":\"%s\",\"fieldsType\":\"FieldsV1\","
        "\"fieldsV1\":{\"f:metadata\":{\"f:generateName\":{},\"f:labels\":{\".\":{},"
        "\"f:app\":{},\"f:pod-template-hash\":{}},\"f:ownerReferences\":{\".\":{},"
        "\"k:{\\\"uid\\\":\\\"%s\\\"}\":{}}},\"f:spec\":{\"f:containers\":{"
        "\"k:{\\\"name\\\":\\\"app\\\"}\":{\".\":{},\"f:env\":{},\"f:image\":{},"
        "\"f:name\":{},\"f:resources\":{}}}}}},{\"manager\":\"kubelet\",\"operation\":"
        "\"Update\",\"apiVersion\":\"v1\",\"time\":\"%s\",\"fieldsType\":\"FieldsV1\","
        "\"fieldsV1\":{\"f:status\":{\"f:conditions\":{},\"f:containerStatuses\":{},"
        "\"f:hostIP\":{},\"f:phase\":{},\"f:podIP\":{},\"f:podIPs\":{},\"f:startTime\":{}}},"
        "\"subresource\":\"status\"}]},",
        p->app, p->hash, p->app, p->hash, p->rs_uid, t, p->rs_uid, t);
}

static void pod_volumes(struct ks_sb *sb, const struct ks_pod_spec *p, const char *sa)
{
    ks_sb_adds(sb, "\"spec\":{\"volumes\":[");
    if (p->cm >= 0)
        ks_sb_printf(sb,
                     "{\"name\":\"config\",\"configMap\":{\"name\":\"app-config-%d\","
                     "\"defaultMode\":420}},",
                     p->cm);
    if (p->sec >= 0)
        ks_sb_printf(sb,
                     "{\"name\":\"secret\",\"secret\":{\"secretName\":\"app-secret-%d\","
                     "\"defaultMode\":420}},",
                     p->sec);
    ks_sb_printf(sb,
                 "{\"name\":\"kube-api-access-%s\",\"projected\":{\"sources\":[{"
                 "\"serviceAccountToken\":{\"expirationSeconds\":3607,\"path\":\"token\"}},{"
                 "\"configMap\":{\"name\":\"kube-root-ca.crt\",\"items\":[{\"key\":\"ca.crt\","
                 "\"path\":\"ca.crt\"}]}},{\"downwardAPI\":{\"items\":[{\"path\":\"namespace\","
                 "\"fieldRef\":{\"apiVersion\":\"v1\",\"fieldPath\":\"metadata.namespace\"}}]}}],"
                 "\"defaultMode\":420}}],",
                 sa);
}

static void pod_containers(struct ks_sb *sb, const struct ks_pod_spec *p, const char *sa)
{
    ks_sb_printf(sb,
                 "\"containers\":[{\"name\":\"app\",\"image\":\"registry.example.com/app:1.4.2\","
                 "\"ports\":[{\"name\":\"http\",\"containerPort\":8080,\"protocol\":\"TCP\"}],"
                 "\"env\":[{\"name\":\"APP_NAME\",\"value\":\"app-%d\"},",
                 p->app);
    if (p->cm >= 0)
        ks_sb_printf(sb,
                     "{\"name\":\"LOG_LEVEL\",\"valueFrom\":{\"configMapKeyRef\":{\"name\":"
                     "\"app-config-%d\",\"key\":\"log.level\"}}},",
                     p->cm);
    if (p->sec >= 0)
        ks_sb_printf(sb,
                     "{\"name\":\"API_KEY\",\"valueFrom\":{\"secretKeyRef\":{\"name\":"
                     "\"app-secret-%d\",\"key\":\"api-key\"}}},",
                     p->sec);
    ks_sb_adds(sb, "{\"name\":\"POD_IP\",\"valueFrom\":{\"fieldRef\":{\"apiVersion\":\"v1\","
                   "\"fieldPath\":\"status.podIP\"}}}],\"resources\":{\"limits\":{\"cpu\":\"500m\","
                   "\"memory\":\"512Mi\"},\"requests\":{\"cpu\":\"100m\",\"memory\":\"128Mi\"}},"
                   "\"volumeMounts\":[");
    if (p->cm >= 0)
        ks_sb_adds(sb, "{\"name\":\"config\",\"readOnly\":true,\"mountPath\":\"/etc/app\"},");
    if (p->sec >= 0)
        ks_sb_adds(sb, "{\"name\":\"secret\",\"readOnly\":true,\"mountPath\":\"/etc/secret\"},");
    ks_sb_printf(sb,
                 "{\"name\":\"kube-api-access-%s\",\"readOnly\":true,\"mountPath\":"
                 "\"/var/run/secrets/kubernetes.io/serviceaccount\"}],\"livenessProbe\":{"
                 "\"httpGet\":{\"path\":\"/healthz\",\"port\":8080,\"scheme\":\"HTTP\"},"
                 "\"timeoutSeconds\":1,\"periodSeconds\":10,\"successThreshold\":1,"
                 "\"failureThreshold\":3},\"terminationMessagePath\":\"/dev/termination-log\","
                 "\"terminationMessagePolicy\":\"File\",\"imagePullPolicy\":\"IfNotPresent\"},{"
                 "\"name\":\"log-shipper\",\"image\":\"registry.example.com/log-shipper:2.4.1\","
                 "\"resources\":{\"requests\":{\"cpu\":\"10m\",\"memory\":\"32Mi\"}},"
                 "\"volumeMounts\":[{\"name\":\"kube-api-access-%s\",\"readOnly\":true,"
                 "\"mountPath\":\"/var/run/secrets/kubernetes.io/serviceaccount\"}],"
                 "\"terminationMessagePath\":\"/dev/termination-log\",\"terminationMessagePolicy\":"
                 "\"File\",\"imagePullPolicy\":\"IfNotPresent\"}],",
                 sa, sa);
}

static void pod_status(struct ks_sb *sb, const struct pod_vals *v, const char *t)
{
    ks_sb_adds(sb, "\"status\":{\"phase\":\"Running\",\"conditions\":[");
    static const char *const conds[] = {"Initialized", "Ready", "ContainersReady", "PodScheduled"};
    for (size_t i = 0; i < 4; i++)
        ks_sb_printf(sb,
                     "{\"type\":\"%s\",\"status\":\"True\",\"lastProbeTime\":null,"
                     "\"lastTransitionTime\":\"%s\"}%s",
                     conds[i], t, i < 3 ? "," : "");
    ks_sb_printf(sb,
                 "],\"hostIP\":\"%s\",\"podIP\":\"%s\",\"podIPs\":[{\"ip\":\"%s\"}],"
                 "\"startTime\":\"%s\",\"containerStatuses\":[{\"name\":\"app\",\"state\":{"
                 "\"running\":{\"startedAt\":\"%s\"}},\"lastState\":{},\"ready\":true,"
                 "\"restartCount\":0,\"image\":\"registry.example.com/app:1.4.2\",\"imageID\":"
                 "\"%s\",\"containerID\":\"%s\",\"started\":true},{\"name\":\"log-shipper\","
                 "\"state\":{\"running\":{\"startedAt\":\"%s\"}},\"lastState\":{},\"ready\":true,"
                 "\"restartCount\":0,\"image\":\"registry.example.com/log-shipper:2.4.1\","
                 "\"imageID\":\"%s\",\"containerID\":\"%s\",\"started\":true}],"
                 "\"qosClass\":\"Burstable\"}}",
                 v->host_ip, v->pod_ip, v->pod_ip, t, t, v->image1, v->cid1, t, v->image2, v->cid2);
}

/* The pod's JSON, canonical (Go field order, as the full write path would write it). */
static void pod_text(struct ks_sb *sb, const struct ks_pod_spec *p, const struct pod_vals *v)
{
    char t[40];

    ks_gen_time(t, sizeof(t), 86400 * 2);
    ks_sb_adds(sb, "{\"kind\":\"Pod\",\"apiVersion\":\"v1\",");
    pod_meta(sb, p, v, t);
    pod_volumes(sb, p, v->sa);
    pod_containers(sb, p, v->sa);
    ks_sb_printf(sb,
                 "\"restartPolicy\":\"Always\",\"terminationGracePeriodSeconds\":30,\"dnsPolicy\":"
                 "\"ClusterFirst\",\"serviceAccountName\":\"default\",\"serviceAccount\":"
                 "\"default\",\"nodeName\":\"%s\",\"securityContext\":{},\"schedulerName\":"
                 "\"default-scheduler\",\"tolerations\":[{\"key\":\"node.kubernetes.io/not-ready\","
                 "\"operator\":\"Exists\",\"effect\":\"NoExecute\",\"tolerationSeconds\":300},{"
                 "\"key\":\"node.kubernetes.io/unreachable\",\"operator\":\"Exists\",\"effect\":"
                 "\"NoExecute\",\"tolerationSeconds\":300}],\"priority\":0,\"enableServiceLinks\":"
                 "true,\"preemptionPolicy\":\"PreemptLowerPriority\"},",
                 v->node);
    pod_status(sb, v, t);
}

/* Set a replica's values in the app's message (the strings are v's). */
static void patch_message(K8s__Io__Api__Core__V1__Pod *m, struct pod_vals *v)
{
    K8s__Io__Api__Core__V1__PodSpec *spec = m->spec;
    K8s__Io__Api__Core__V1__PodStatus *st = m->status;

    m->metadata->name = v->name;
    m->metadata->uid = v->uid;
    m->metadata->resourceversion = v->rv;
    spec->nodename = v->node;
    for (size_t i = 0; i < spec->n_volumes; i++)
        if (strncmp(spec->volumes[i]->name, "kube-api-access-", 16) == 0)
            spec->volumes[i]->name = v->api_volume;
    for (size_t c = 0; c < spec->n_containers; c++)
        for (size_t k = 0; k < spec->containers[c]->n_volumemounts; k++)
            if (strncmp(spec->containers[c]->volumemounts[k]->name, "kube-api-access-", 16) == 0)
                spec->containers[c]->volumemounts[k]->name = v->api_volume;
    st->hostip = v->host_ip;
    st->podip = v->pod_ip;
    st->podips[0]->ip = v->pod_ip;
    st->containerstatuses[0]->containerid = v->cid1;
    st->containerstatuses[0]->imageid = v->image1;
    st->containerstatuses[1]->containerid = v->cid2;
    st->containerstatuses[1]->imageid = v->image2;
}

static int field_index(const char *path)
{
    for (size_t i = 0; i < ks_res_pods.n_fields; i++)
        if (strcmp(ks_res_pods.fields[i], path) == 0)
            return (int)i;
    return -1;
}

/* A replica: the template's message with v's values, packed; everything else shared. */
static int replica(struct ks_sb *sb, const struct ks_obj *tpl, ProtobufCMessage *msg,
                   struct pod_vals *v)
{
    struct ks_sb pb;
    struct ks_obj_parts parts = {0};
    int i_node = field_index("spec.nodeName"), i_ip = field_index("status.podIP");
    int rc;

    patch_message((K8s__Io__Api__Core__V1__Pod *)msg, v);
    ks_sb_init(&pb, tpl->pb_len + 256);
    rc = ks_conv_pack(msg, "v1", "Pod", &pb, &parts.pb_item_off, &parts.pb_item_len);
    if (rc < 0 || sb->err) {
        ks_sb_free(&pb);
        return rc < 0 ? rc : sb->err;
    }
    parts.res = &ks_res_pods;
    parts.rv = strtoull(v->rv, NULL, 10);
    parts.created = tpl->created;
    parts.ns = tpl->ns;
    parts.name = v->name;
    parts.uid = v->uid;
    parts.json = sb->p;
    parts.json_len = sb->len;
    parts.json_body_off = tpl->json_body_off;
    parts.pb = (const uint8_t *)pb.p;
    parts.pb_len = pb.len;
    parts.labels = tpl->labels;
    parts.n_labels = tpl->n_labels;
    for (size_t i = 0; i < ks_res_pods.n_fields; i++)
        parts.fields[i] = tpl->fields[i];
    if (i_node >= 0)
        parts.fields[i_node] = v->node;
    if (i_ip >= 0)
        parts.fields[i_ip] = v->pod_ip;
    parts.objrefs = tpl->objrefs;
    parts.n_objrefs = tpl->n_objrefs;
    struct ks_obj *o = ks_obj_new(&parts);
    ks_sb_free(&pb);
    return o ? ks_store_put(o, false) : -ENOMEM;
}

int ks_gen_app_pods(struct ks_sb *sb, const struct ks_pod_spec *p, size_t first, size_t count,
                    size_t nodes)
{
    struct kf_arena *a = kf_arena_new(32768);
    struct ks_obj *tpl = NULL;
    ProtobufCMessage *msg = NULL;
    int rc = a ? 0 : -ENOMEM;

    for (size_t k = 0; k < count && rc == 0; k++) {
        struct pod_vals v;
        size_t i = first + k;
        /* spread over the nodes like a scheduler would, stable for a seed */
        int node = nodes ? (int)((i * 2654435761u) % (uint64_t)nodes) : 0;
        pod_vals_new(&v, p, node, 2 + (int)(i % 250));
        sb->len = 0;
        pod_text(sb, p, &v);
        if (tpl) {
            rc = replica(sb, tpl, msg, &v);
            continue;
        }
        struct ks_json *dom;
        struct ks_conv_error err = {0};
        char perr[160] = "";
        rc = ks_json_parse(a, sb->p, sb->len, &dom, perr, sizeof(perr));
        if (rc == 0)
            rc = ks_obj_build_msg(&ks_res_pods, dom, sb->p, sb->len, a, &tpl, &msg, &err);
        if (rc == 0)
            rc = ks_store_put(ks_obj_ref(tpl), false);
        if (rc < 0)
            kf_err("kube-sim", "generated pod does not build: %s %s %s", perr, err.field,
                   err.detail);
    }
    if (tpl)
        ks_obj_unref(tpl);
    kf_arena_free(a);
    sb->len = 0;
    return rc;
}
