/*
 * table: the meta.k8s.io/v1 Table responses kubectl asks for
 * (Accept: application/json;as=Table;v=v1;g=meta.k8s.io), for GET, LIST and
 * WATCH, with the apiserver's columns for the common kinds and its default
 * (Name, Created At) for the rest.
 */
#include "loadgen/kube-sim/kube_sim.h"
#include "proxy/http/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Pod columns (the apiserver's printer, descriptions from its OpenAPI). */
static const char pod_columns[] =
    "[{\"name\":\"Name\",\"type\":\"string\",\"format\":\"name\",\"description\":\"Name mus"
    "t be unique within a namespace. Is required when creating resources, although some res"
    "ources may allow a client to request the generation of an appropriate name automatical"
    "ly. Name is primarily intended for creation idempotence and configuration definition. "
    "Cannot be updated. More info: http://kubernetes.io/docs/user-guide/identifiers#names\""
    ",\"priority\":0},{\"name\":\"Ready\",\"type\":\"string\",\"format\":\"\",\"description"
    "\":\"The aggregate readiness state of this pod for accepting traffic.\",\"priority\":0"
    "},{\"name\":\"Status\",\"type\":\"string\",\"format\":\"\",\"description\":\"The aggre"
    "gate status of the containers in this pod.\",\"priority\":0},{\"name\":\"Restarts\",\""
    "type\":\"string\",\"format\":\"\",\"description\":\"The number of times the containers"
    " in this pod have been restarted and when the last container in this pod has restarted"
    ".\",\"priority\":0},{\"name\":\"Age\",\"type\":\"string\",\"format\":\"\",\"descriptio"
    "n\":\"CreationTimestamp is a timestamp representing the server time when this object w"
    "as created. It is not guaranteed to be set in happens-before order across separate ope"
    "rations. Clients may not set this value. It is represented in RFC3339 form and is in U"
    "TC.\\n\\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8"
    "s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata\",\"pri"
    "ority\":0},{\"name\":\"IP\",\"type\":\"string\",\"format\":\"\",\"description\":\"IP a"
    "ddress allocated to the pod. Routable at least within the cluster. Empty if not yet al"
    "located.\",\"priority\":1},{\"name\":\"Node\",\"type\":\"string\",\"format\":\"\",\"de"
    "scription\":\"NodeName is a request to schedule this pod onto a specific node. If it i"
    "s non-empty, the scheduler simply schedules this pod onto that node, assuming that it "
    "fits resource requirements.\",\"priority\":1},{\"name\":\"Nominated Node\",\"type\":\""
    "string\",\"format\":\"\",\"description\":\"nominatedNodeName is set only when this pod"
    " preempts other pods on the node, but it cannot be scheduled right away as preemption "
    "victims receive their graceful termination periods. This field does not guarantee that"
    " the pod will be scheduled on this node. Scheduler may decide to place the pod elsewhe"
    "re if other nodes become available sooner. Scheduler may also decide to give the resou"
    "rces on this node to a higher priority pod that is created after preemption. As a resu"
    "lt, this field may be different than PodSpec.nodeName when the pod is scheduled.\",\"p"
    "riority\":1},{\"name\":\"Readiness Gates\",\"type\":\"string\",\"format\":\"\",\"descr"
    "iption\":\"If specified, all readiness gates will be evaluated for pod readiness. A po"
    "d is ready when all its containers are ready AND all conditions specified in the readi"
    "ness gates have status equal to \\\"True\\\" More info: https://git.k8s.io/enhancement"
    "s/keps/sig-network/580-pod-readiness-gates\",\"priority\":1}]";

#define COL(name, type, format, desc, prio)                                                        \
    "{\"name\":\"" name "\",\"type\":\"" type "\",\"format\":\"" format                            \
    "\",\"description\":\"" desc "\",\"priority\":" #prio "}"
#define NAME_COL                                                                                   \
    COL("Name", "string", "name",                                                                  \
        "Name must be unique within a namespace. Is required when creating resources, although "   \
        "some resources may allow a client to request the generation of an appropriate name "      \
        "automatically. Name is primarily intended for creation idempotence and configuration "    \
        "definition. Cannot be updated. More info: "                                               \
        "http://kubernetes.io/docs/user-guide/identifiers#names",                                  \
        0)
#define AGE_COL                                                                                    \
    COL("Age", "string", "",                                                                       \
        "CreationTimestamp is a timestamp representing the server time when this object was "      \
        "created.",                                                                                \
        0)

static const char default_columns[] =
    "[" NAME_COL "," COL("Created At", "date", "",
                         "CreationTimestamp is a timestamp representing the server time when "
                         "this object was created.",
                         0) "]";
static const char configmap_columns[] =
    "[" NAME_COL
    "," COL("Data", "string", "", "Data contains the configuration data.", 0) "," AGE_COL "]";
static const char secret_columns[] =
    "[" NAME_COL
    "," COL("Type", "string", "", "Used to facilitate programmatic handling of secret data.",
            0) "," COL("Data", "string", "", "Data contains the secret data.", 0) "," AGE_COL "]";
static const char node_columns[] =
    "[" NAME_COL "," COL("Status", "string", "", "The status of the node", 0) "," COL(
        "Roles", "string", "", "The roles of the node",
        0) "," AGE_COL
           "," COL("Version", "string", "", "Kubelet Version reported by the node.", 0) "]";
static const char namespace_columns[] =
    "[" NAME_COL "," COL("Status", "string", "", "The status of the namespace", 0) "," AGE_COL "]";

static const char service_columns[] =
    "[" NAME_COL "," COL("Type", "string", "", "The type of the service", 0) "," COL(
        "Cluster-IP", "string", "", "The cluster IP of the service",
        0) "," COL("External-IP", "string", "", "The external IP of the service",
                   0) "," COL("Port(s)", "string", "", "The ports of the service",
                              0) "," AGE_COL "," COL("Selector", "string", "",
                                                     "The label selector of the service", 1) "]";
static const char lease_columns[] =
    "[" NAME_COL "," COL("Holder", "string", "", "The holder of the lease", 0) "," AGE_COL "]";

/* Go's duration.HumanDuration, as kubectl shows ages. */
void ks_human_duration(char *buf, size_t size, int64_t secs)
{
    int64_t m = secs / 60, h = secs / 3600, d = h / 24, y = d / 365;

    if (secs < -1)
        snprintf(buf, size, "<invalid>");
    else if (secs < 0)
        snprintf(buf, size, "0s");
    else if (secs < 120)
        snprintf(buf, size, "%llds", (long long)secs);
    else if (m < 10)
        snprintf(buf, size, secs % 60 ? "%lldm%llds" : "%lldm", (long long)m,
                 (long long)(secs % 60));
    else if (m < 180)
        snprintf(buf, size, "%lldm", (long long)m);
    else if (h < 8)
        snprintf(buf, size, m % 60 ? "%lldh%lldm" : "%lldh", (long long)h, (long long)(m % 60));
    else if (h < 48)
        snprintf(buf, size, "%lldh", (long long)h);
    else if (h < 192)
        snprintf(buf, size, h % 24 ? "%lldd%lldh" : "%lldd", (long long)d, (long long)(h % 24));
    else if (y < 2)
        snprintf(buf, size, "%lldd", (long long)d);
    else if (y < 8)
        snprintf(buf, size, d % 365 ? "%lldy%lldd" : "%lldy", (long long)y, (long long)(d % 365));
    else
        snprintf(buf, size, "%lldy", (long long)y);
}

static const char *columns_for(const struct ks_res *res)
{
    if (res == &ks_res_pods)
        return pod_columns;
    if (res == &ks_res_configmaps)
        return configmap_columns;
    if (res == &ks_res_secrets)
        return secret_columns;
    if (res == &ks_res_nodes)
        return node_columns;
    if (res == &ks_res_namespaces)
        return namespace_columns;
    if (res == &ks_res_services)
        return service_columns;
    if (res == &ks_res_leases)
        return lease_columns;
    return default_columns;
}

static void cell(struct ks_sb *sb, const char *v)
{
    ks_sb_addc(sb, ',');
    ks_sb_json_cstr(sb, v && v[0] ? v : "<none>");
}

static void pod_cells(struct ks_sb *sb, const struct ks_json *pod, bool terminating)
{
    const struct ks_json *st = ks_json_get(pod, "status");
    const struct ks_json *statuses = ks_json_get(st, "containerStatuses");
    const struct ks_json *containers = ks_json_path(pod, "spec.containers");
    size_t total = containers && containers->t == KS_J_ARR ? containers->count : 0, ready = 0;
    long long restarts = 0;
    char buf[64];

    for (const struct ks_json *c = statuses ? statuses->kids : NULL; c; c = c->next) {
        const struct ks_json *rd = ks_json_get(c, "ready"), *rc = ks_json_get(c, "restartCount");
        ready += rd && rd->t == KS_J_BOOL && rd->b;
        restarts += rc && rc->t == KS_J_NUM ? strtoll(rc->s, NULL, 10) : 0;
    }
    snprintf(buf, sizeof(buf), "%zu/%zu", ready, total);
    cell(sb, buf);
    const char *phase = ks_json_get_str(st, "phase");
    const char *reason = ks_json_get_str(st, "reason");
    cell(sb, terminating ? "Terminating" : reason ? reason : phase);
    snprintf(buf, sizeof(buf), "%lld", restarts);
    cell(sb, buf);
}

static void age_cell(struct ks_sb *sb, const struct ks_obj *o)
{
    char buf[32];

    ks_human_duration(buf, sizeof(buf), (int64_t)time(NULL) - o->created);
    cell(sb, buf);
}

static size_t map_size(const struct ks_json *root, const char *a, const char *b)
{
    const struct ks_json *x = ks_json_get(root, a), *y = b ? ks_json_get(root, b) : NULL;
    return (x && x->t == KS_J_OBJ ? x->count : 0) + (y && y->t == KS_J_OBJ ? y->count : 0);
}

static void node_cells(struct ks_sb *sb, const struct ks_json *node)
{
    const char *ready = "Unknown";
    const struct ks_json *conds = ks_json_path(node, "status.conditions");

    for (const struct ks_json *c = conds ? conds->kids : NULL; c; c = c->next) {
        const char *t = ks_json_get_str(c, "type"), *s = ks_json_get_str(c, "status");
        if (t && s && strcmp(t, "Ready") == 0)
            ready = strcmp(s, "True") == 0 ? "Ready" : "NotReady";
    }
    cell(sb, ready);
    cell(sb, NULL);
}

/* "80/TCP,443/TCP" and "app=x,tier=y" as kubectl's service printer writes them. */
static void service_cells(struct ks_sb *sb, const struct ks_obj *o, const struct ks_json *svc)
{
    const struct ks_json *spec = ks_json_get(svc, "spec");
    const struct ks_json *ports = ks_json_get(spec, "ports"), *sel = ks_json_get(spec, "selector");
    struct ks_sb list;

    cell(sb, ks_json_get_str(spec, "type"));
    cell(sb, ks_json_get_str(spec, "clusterIP"));
    cell(sb, NULL);
    ks_sb_init(&list, 128);
    for (const struct ks_json *p = ports && ports->t == KS_J_ARR ? ports->kids : NULL; p;
         p = p->next) {
        const struct ks_json *port = ks_json_get(p, "port");
        const char *proto = ks_json_get_str(p, "protocol");
        ks_sb_printf(&list, "%s%s/%s", list.len ? "," : "", port ? port->s : "?",
                     proto ? proto : "TCP");
    }
    cell(sb, ks_sb_cstr(&list));
    age_cell(sb, o);
    list.len = 0;
    for (const struct ks_json *l = sel && sel->t == KS_J_OBJ ? sel->kids : NULL; l; l = l->next)
        ks_sb_printf(&list, "%s%s=%s", list.len ? "," : "", l->key, l->t == KS_J_STR ? l->s : "");
    cell(sb, ks_sb_cstr(&list));
    ks_sb_free(&list);
}

/* The cells of one row, without the brackets. */
static void cells(struct ks_sb *sb, const struct ks_obj *o, const struct ks_json *dom)
{
    const struct ks_res *res = o->res;
    char buf[32];

    ks_sb_json_cstr(sb, o->name);
    if (res == &ks_res_pods) {
        pod_cells(sb, dom, o->terminating);
        age_cell(sb, o);
        cell(sb, ks_json_get_str(ks_json_get(dom, "status"), "podIP"));
        cell(sb, ks_obj_field(o, "spec.nodeName"));
        cell(sb, NULL);
        cell(sb, NULL);
    } else if (res == &ks_res_configmaps || res == &ks_res_secrets) {
        if (res == &ks_res_secrets)
            cell(sb, ks_obj_field(o, "type"));
        snprintf(buf, sizeof(buf), "%zu", map_size(dom, "data", "binaryData"));
        cell(sb, buf);
        age_cell(sb, o);
    } else if (res == &ks_res_nodes) {
        node_cells(sb, dom);
        age_cell(sb, o);
        cell(sb, ks_json_get_str(ks_json_path(dom, "status.nodeInfo"), "kubeletVersion"));
    } else if (res == &ks_res_services) {
        service_cells(sb, o, dom);
    } else if (res == &ks_res_leases) {
        cell(sb, ks_json_get_str(ks_json_get(dom, "spec"), "holderIdentity"));
        age_cell(sb, o);
    } else if (res == &ks_res_namespaces) {
        cell(sb, o->terminating ? "Terminating" : ks_obj_field(o, "status.phase"));
        age_cell(sb, o);
    } else {
        char ts[40];
        ks_time_format(ts, sizeof(ts), o->created, 0, false);
        cell(sb, ts);
    }
}

static void row(struct ks_sb *sb, struct ks_req *r, const struct ks_obj *o)
{
    struct kf_arena *a = kf_arena_new(16384);
    struct ks_json *dom = NULL;
    const char *include = px_request_query(r->px, "includeObject");

    if (a)
        ks_obj_dom(o, a, &dom);
    ks_sb_adds(sb, "{\"cells\":[");
    cells(sb, o, dom);
    ks_sb_adds(sb, "]");
    if (include && strcmp(include, "None") == 0) {
        /* no object */
    } else if (include && strcmp(include, "Object") == 0) {
        ks_sb_adds(sb, ",\"object\":");
        ks_sb_add(sb, o->json, o->json_len);
    } else {
        ks_sb_printf(sb, ",\"object\":{\"kind\":\"PartialObjectMetadata\",\"apiVersion\":"
                         "\"meta.k8s.io/v1\",\"metadata\":");
        const struct ks_json *meta = ks_json_get(dom, "metadata");
        if (meta)
            ks_json_write(sb, meta);
        else
            ks_sb_adds(sb, "{}");
        ks_sb_addc(sb, '}');
    }
    ks_sb_addc(sb, '}');
    kf_arena_free(a);
}

static void table_head(struct ks_sb *sb, const struct ks_res *res, uint64_t rv, const char *cont,
                       int64_t remaining, bool columns)
{
    ks_sb_printf(sb,
                 "{\"kind\":\"Table\",\"apiVersion\":\"meta.k8s.io/v1\",\"metadata\":{"
                 "\"resourceVersion\":\"%llu\"",
                 (unsigned long long)rv);
    if (cont) {
        ks_sb_adds(sb, ",\"continue\":");
        ks_sb_json_cstr(sb, cont);
    }
    if (remaining >= 0)
        ks_sb_printf(sb, ",\"remainingItemCount\":%lld", (long long)remaining);
    ks_sb_adds(sb, "},\"columnDefinitions\":");
    ks_sb_adds(sb, columns ? columns_for(res) : "null");
    ks_sb_adds(sb, ",\"rows\":[");
}

void ks_table_reply_obj(struct ks_req *r, int code, struct ks_obj *o)
{
    struct ks_sb sb;

    ks_sb_init(&sb, 8192);
    table_head(&sb, o->res, o->rv, NULL, -1, true);
    row(&sb, r, o);
    ks_sb_adds(&sb, "]}");
    ks_reply_sb_json(r, code, &sb);
    ks_sb_free(&sb);
}

void ks_table_reply_list(struct ks_req *r, const struct ks_snapshot *snap, const uint32_t *idx,
                         size_t n, const char *cont, int64_t remaining)
{
    struct ks_sb sb;

    ks_sb_init(&sb, 8192 + n * 1024);
    table_head(&sb, r->res, snap->rv, cont, remaining, true);
    for (size_t i = 0; i < n; i++) {
        if (i)
            ks_sb_addc(&sb, ',');
        row(&sb, r, snap->items[idx[i]]);
    }
    ks_sb_adds(&sb, "]}");
    ks_reply_sb_json(r, 200, &sb);
    ks_sb_free(&sb);
}

void ks_table_watch_event(struct ks_sb *sb, struct ks_req *r, enum ks_ev_type type,
                          const struct ks_obj *o, uint64_t rv)
{
    /* the column definitions come with the first event only */
    bool columns = !r->table_columns_sent;

    r->table_columns_sent = true;
    ks_sb_printf(sb, "{\"type\":\"%s\",\"object\":", ks_ev_type_name[type]);
    table_head(sb, o->res, rv, NULL, -1, columns);
    row(sb, r, o);
    ks_sb_adds(sb, "]}}\n");
}
