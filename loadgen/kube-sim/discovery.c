/*
 * discovery: /api, /apis and the per group-version resource lists that
 * kubectl and client-go read before anything else, plus the non-resource
 * endpoints (/version, health checks, /metrics, /openapi).
 */
#include "loadgen/kube-sim/kube_sim.h"
#include "proxy/http/http.h"

#include <string.h>

const char *ks_advertise = "127.0.0.1:6443";
char ks_advertise_buf[64];

static const char *const verbs_all =
    "[\"create\",\"delete\",\"deletecollection\",\"get\",\"list\",\"patch\",\"update\",\"watch\"]";

/* Groups besides core, in the order /apis lists them. */
static const char *const groups[] = {
    "authentication.k8s.io", "authorization.k8s.io", "coordination.k8s.io", "discovery.k8s.io",
    "node.k8s.io",           "storage.k8s.io",       "example.kfront.io",
};

static bool group_known(const char *g)
{
    for (size_t i = 0; i < KF_ARRAY_SIZE(groups); i++)
        if (strcmp(groups[i], g) == 0)
            return true;
    return false;
}

static void group_json(struct ks_sb *sb, const char *g, bool with_kind)
{
    if (with_kind)
        ks_sb_adds(sb, "{\"kind\":\"APIGroup\",\"apiVersion\":\"v1\",");
    else
        ks_sb_addc(sb, '{');
    ks_sb_printf(sb,
                 "\"name\":\"%s\",\"versions\":[{\"groupVersion\":\"%s/v1\",\"version\":\"v1\"}],"
                 "\"preferredVersion\":{\"groupVersion\":\"%s/v1\",\"version\":\"v1\"}}",
                 g, g, g);
}

static void resource_json(struct ks_sb *sb, const struct ks_res *res)
{
    ks_sb_printf(sb,
                 "{\"name\":\"%s\",\"singularName\":\"%s\",\"namespaced\":%s,\"kind\":\"%s\","
                 "\"verbs\":%s",
                 res->name, res->singular, res->namespaced ? "true" : "false", res->kind,
                 verbs_all);
    if (res->short_names[0])
        ks_sb_printf(sb, ",\"shortNames\":[%s]", res->short_names);
    if (res->categories[0])
        ks_sb_printf(sb, ",\"categories\":[%s]", res->categories);
    ks_sb_addc(sb, '}');
    for (size_t i = 0; i < KF_ARRAY_SIZE(res->subresources) && res->subresources[i]; i++) {
        bool binding = strcmp(res->subresources[i], "binding") == 0;
        ks_sb_printf(sb,
                     ",{\"name\":\"%s/%s\",\"singularName\":\"\",\"namespaced\":%s,"
                     "\"kind\":\"%s\",\"verbs\":%s}",
                     res->name, res->subresources[i], res->namespaced ? "true" : "false",
                     binding ? "Binding" : res->kind,
                     binding ? "[\"create\"]" : "[\"get\",\"patch\",\"update\"]");
    }
}

static void review_resources(struct ks_sb *sb, const char *group)
{
    if (strcmp(group, "authentication.k8s.io") == 0)
        ks_sb_adds(sb,
                   "{\"name\":\"selfsubjectreviews\",\"singularName\":\"\","
                   "\"namespaced\":false,\"kind\":\"SelfSubjectReview\",\"verbs\":[\"create\"]},"
                   "{\"name\":\"tokenreviews\",\"singularName\":\"\",\"namespaced\":false,"
                   "\"kind\":\"TokenReview\",\"verbs\":[\"create\"]}");
    else
        ks_sb_adds(sb, "{\"name\":\"subjectaccessreviews\",\"singularName\":\"\","
                       "\"namespaced\":false,\"kind\":\"SubjectAccessReview\","
                       "\"verbs\":[\"create\"]}");
}

static void resource_list(struct ks_req *r, const char *group)
{
    struct ks_sb sb;
    bool first = true;

    ks_sb_init(&sb, 4096);
    /* the core list has no apiVersion, the group ones do */
    ks_sb_printf(&sb, "{\"kind\":\"APIResourceList\",%s\"groupVersion\":\"%s%sv1\",\"resources\":[",
                 group[0] ? "\"apiVersion\":\"v1\"," : "", group, group[0] ? "/" : "");
    if (strncmp(group, "authentication.", 15) == 0 || strncmp(group, "authorization.", 14) == 0) {
        review_resources(&sb, group);
        first = false;
    }
    for (size_t i = 0; i < ks_n_resources; i++) {
        if (strcmp(ks_resources[i]->group, group) != 0)
            continue;
        if (!first)
            ks_sb_addc(&sb, ',');
        first = false;
        resource_json(&sb, ks_resources[i]);
    }
    ks_sb_adds(&sb, "]}");
    ks_reply_sb_json(r, 200, &sb);
    ks_sb_free(&sb);
}

void ks_discovery(struct ks_req *r, const char *group, const char *version)
{
    struct ks_sb sb;

    ks_sb_init(&sb, 2048);
    if (!group) { /* /api or /apis */
        if (strcmp(px_request_path(r->px), "/apis") == 0 ||
            strcmp(px_request_path(r->px), "/apis/") == 0) {
            ks_sb_adds(&sb, "{\"kind\":\"APIGroupList\",\"apiVersion\":\"v1\",\"groups\":[");
            for (size_t i = 0; i < KF_ARRAY_SIZE(groups); i++) {
                if (i)
                    ks_sb_addc(&sb, ',');
                group_json(&sb, groups[i], false);
            }
            ks_sb_adds(&sb, "]}");
        } else {
            ks_sb_printf(&sb,
                         "{\"kind\":\"APIVersions\",\"versions\":[\"v1\"],"
                         "\"serverAddressByClientCIDRs\":[{\"clientCIDR\":\"0.0.0.0/0\","
                         "\"serverAddress\":\"%s\"}]}",
                         ks_advertise);
        }
        ks_reply_sb_json(r, 200, &sb);
    } else if (group[0] && !group_known(group)) {
        ks_reply_no_route(r);
    } else if (!version) {
        group_json(&sb, group, true);
        ks_reply_sb_json(r, 200, &sb);
    } else if (strcmp(version, "v1") != 0) {
        ks_reply_no_route(r);
    } else {
        resource_list(r, group);
    }
    ks_sb_free(&sb);
}

static void text(struct ks_req *r, int code, const char *body)
{
    ks_req_count(r, code);
    ks_headers(r, NULL);
    px_response_header(r->px, "X-Content-Type-Options", "nosniff");
    px_response_simple(r->px, code, "text/plain; charset=utf-8", body, strlen(body));
}

static void version(struct ks_req *r)
{
    static const char body[] =
        "{\"major\":\"1\",\"minor\":\"26\",\"gitVersion\":\"v1.26.1\",\"gitCommit\":"
        "\"8f94681cd294aa8cfd3407b8191f6c70214973a4\",\"gitTreeState\":\"\",\"buildDate\":"
        "\"1970-01-01T00:00:00Z\",\"goVersion\":\"go1.19.8\",\"compiler\":\"gc\",\"platform\":"
        "\"linux/amd64\"}\n";
    ks_reply_body(r, 200, "application/json", body, sizeof(body) - 1);
}

/*
 * /openapi/v2: a valid but empty document. kubectl downloads it before it
 * validates or applies; types it finds no schema for are not checked on the
 * client (the server still refuses unknown fields), and apply falls back to
 * its built-in strategic merge metadata.
 */
static void openapi_v2(struct ks_req *r)
{
    const char *accept = px_request_header(r->px, "accept");

    if (accept && strstr(accept, "protobuf")) {
        /* gnostic openapi_v2.Document{swagger: "2.0", info: {title, version}, paths: {}} */
        static const char pb[] = "\x0a\x03"
                                 "2.0"
                                 "\x12\x15\x0a\x0a"
                                 "Kubernetes"
                                 "\x12\x07"
                                 "v1.26.1"
                                 "\x42\x00";
        ks_req_count(r, 200);
        ks_headers(r, NULL);
        px_response_simple(r->px, 200, "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
                           pb, sizeof(pb) - 1);
        return;
    }
    static const char json[] =
        "{\"swagger\":\"2.0\",\"info\":{\"title\":\"Kubernetes\",\"version\":"
        "\"v1.26.1\"},\"paths\":{}}\n";
    ks_reply_body(r, 200, "application/json", json, sizeof(json) - 1);
}

void ks_nonresource(struct ks_req *r, char **seg, size_t n)
{
    const char *first = n ? seg[0] : "";

    if (strcmp(first, "version") == 0 && n == 1) {
        version(r);
    } else if ((strcmp(first, "healthz") == 0 || strcmp(first, "livez") == 0) && n <= 2) {
        text(r, 200, "ok");
    } else if (strcmp(first, "readyz") == 0 && n <= 2) {
        if (ks_faults.not_ready)
            text(r, 500,
                 "[+]ping ok\n[-]kube-sim-ready failed: reason withheld\n"
                 "readyz check failed\n");
        else
            text(r, 200, "ok");
    } else if (strcmp(first, "metrics") == 0 && n == 1) {
        ks_metrics_reply(r);
    } else if (strcmp(first, "openapi") == 0 && n == 2 && strcmp(seg[1], "v2") == 0) {
        openapi_v2(r);
    } else {
        ks_reply_no_route(r);
    }
}
