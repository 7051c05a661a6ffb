/*
 * loadgen kubelets: N simulated nodes, each with its own HTTP/2 + TLS
 * connection and bearer token (system:node:<name>), sending what a kubelet
 * sends (fixtures/kubelet): informers for its pods (spec.nodeName), its Node
 * (metadata.name), services, runtimeclasses, csidrivers and each ConfigMap
 * and Secret its pods reference (metadata.name), plus kube-proxy's services
 * and endpointslices every --kube-proxy-every nodes; and every 10 s a
 * GET of its Node at resourceVersion=0 and a PUT of its Lease.
 *
 * Every event is checked as it arrives (watch.c). Delivery latency is the
 * arrival time minus the arrival time of the same (object, resourceVersion)
 * on a reference watch straight on the truth server (--truth-kubeconfig):
 * what the path in between (kfront, or a TCP proxy) adds. At the end, with
 * --truth-admin, churn is stopped and each informer's view is compared with
 * a fresh LIST from the truth server, made with the informer's own token: what
 * differs counts as missing. The node authorizer refuses a node a ConfigMap or
 * Secret once the pods that referenced it have moved: an informer that had
 * listed is then compared with the admin's LIST (its watch goes on); one that
 * never could list is counted apart, as not compared.
 */
#include "loadgen/kubelets/watch.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <openssl/ssl.h>

#define KUBE_PROXY_TOKEN "kube-proxy-token"

struct node {
    char name[32], token[64];
    struct kl_endpoint ep;
    struct kl_watch *w[64];
    size_t n_w;
    struct kf_map refs; /* "configmaps/ns/name" already watched */
    struct event *beat;
    bool lease_exists;
};

static struct {
    const char *kubeconfig, *truth_kubeconfig, *truth_admin, *prefix, *report;
    unsigned nodes, first, duration, kube_proxy_every, progress_s;
    bool pb;
    struct event_base *base;
    struct kf_arena *arena;
    struct config_kubeconfig kc, tkc;
    struct ssl_ctx_st *tls, *ttls, *ttls_token;
    struct node *n;
    struct kl_endpoint truth, truth_as_node; /* admin's client certificate; a node's token */
    struct kl_watch *truth_w[16], *check_w[4096 * 16];
    size_t n_truth, n_check, checks_pending;
    uint64_t started_us;
} g = {.prefix = "node-", .first = 1, .duration = 30, .kube_proxy_every = 50, .pb = true};

/* ---- informers ---------------------------------------------------------------------------- */

static struct kl_watch *informer(struct node *nd, const char *what, const char *path,
                                 const char *query, enum codec_kind kind, const char *resource)
{
    struct kl_watch *w;

    if (nd->n_w == KF_ARRAY_SIZE(nd->w) || !(w = kl_watch_new(g.base, &nd->ep, what)))
        return NULL;
    w->token = nd->token;
    w->node = nd->name;
    snprintf(w->path, sizeof(w->path), "%s", path);
    snprintf(w->query, sizeof(w->query), "%s", query);
    w->kind = kind;
    w->resource = resource;
    w->pb = g.pb;
    w->arg = nd;
    nd->w[nd->n_w++] = w;
    return w;
}

/* A ConfigMap or Secret referenced by a pod of this node: one informer by name. */
static void reference(struct node *nd, const char *resource, struct codec_str ns, const char *name)
{
    char key[256], path[256], query[256], what[96];
    struct kl_watch *w;

    snprintf(key, sizeof(key), "%s/%.*s/%s", resource, (int)ns.len, ns.ptr, name);
    if (kf_map_get(&nd->refs, key) || kf_map_put(&nd->refs, key, nd) < 0)
        return;
    snprintf(path, sizeof(path), "/api/v1/namespaces/%.*s/%s", (int)ns.len, ns.ptr, resource);
    snprintf(query, sizeof(query), "fieldSelector=metadata.name%%3D%s", name);
    snprintf(what, sizeof(what), "%s %.*s/%s", resource, (int)ns.len, ns.ptr, name);
    w = informer(nd, what, path, query,
                 strcmp(resource, "secrets") == 0 ? CODEC_KIND_SECRET : CODEC_KIND_CONFIGMAP,
                 resource);
    if (!w)
        return;
    w->pin_field = "metadata.name";
    snprintf(w->pin_buf, sizeof(w->pin_buf), "%s", name);
    w->pin_value = w->pin_buf;
    kl_watch_start(w, 0);
}

/*
 * What a pod references, found the way kube-sim names it (app-config-N, app-secret-N,
 * kube-root-ca.crt): a byte scan works on JSON and protobuf alike.
 */
static void scan_refs(struct node *nd, const char *obj, size_t len, const struct codec_meta *m)
{
    static const struct {
        const char *prefix, *resource;
    } kinds[] = {{"app-config-", "configmaps"}, {"app-secret-", "secrets"}};
    char name[64];

    reference(nd, "configmaps", m->namespace_, "kube-root-ca.crt");
    for (size_t k = 0; k < KF_ARRAY_SIZE(kinds); k++) {
        size_t pl = strlen(kinds[k].prefix);
        for (const char *p = obj, *end = obj + len; p < end;) {
            const char *hit = memmem(p, (size_t)(end - p), kinds[k].prefix, pl);
            if (!hit)
                break;
            size_t d = 0;
            while (hit + pl + d < end && d < 10 && hit[pl + d] >= '0' && hit[pl + d] <= '9')
                d++;
            if (d) {
                snprintf(name, sizeof(name), "%s%.*s", kinds[k].prefix, (int)d, hit + pl);
                reference(nd, kinds[k].resource, m->namespace_, name);
            }
            p = hit + pl;
        }
    }
}

static void pod_item(struct kl_watch *w, const char *item, size_t len, const struct codec_meta *m)
{
    scan_refs(w->arg, item, len, m);
}

static void pod_event(struct kl_watch *w, enum codec_event_type t, struct codec_str obj,
                      const struct codec_meta *m)
{
    if (t == CODEC_EV_ADDED)
        scan_refs(w->arg, obj.ptr, obj.len, m);
}

static void node_start(struct node *nd, unsigned delay_ms, bool kube_proxy)
{
    char q[128], what[96];
    struct kl_watch *w;

    snprintf(q, sizeof(q), "fieldSelector=spec.nodeName%%3D%s", nd->name);
    snprintf(what, sizeof(what), "pods of %s", nd->name);
    if ((w = informer(nd, what, "/api/v1/pods", q, CODEC_KIND_POD, "pods"))) {
        w->pin_field = "spec.nodeName";
        w->pin_value = nd->name;
        w->on_item = pod_item;
        w->on_event = pod_event;
    }
    snprintf(q, sizeof(q), "fieldSelector=metadata.name%%3D%s", nd->name);
    if ((w = informer(nd, "its node", "/api/v1/nodes", q, CODEC_KIND_NODE, "nodes"))) {
        w->pin_field = "metadata.name";
        w->pin_value = nd->name;
    }
    informer(nd, "services", "/api/v1/services", "", CODEC_KIND_SERVICE, "services");
    informer(nd, "runtimeclasses", "/apis/node.k8s.io/v1/runtimeclasses", "",
             CODEC_KIND_RUNTIMECLASS, "runtimeclasses");
    informer(nd, "csidrivers", "/apis/storage.k8s.io/v1/csidrivers", "", CODEC_KIND_CSIDRIVER,
             "csidrivers");
    if (kube_proxy) {
        const char *sel = "labelSelector=%21service.kubernetes.io%2Fheadless%2C%21service."
                          "kubernetes.io%2Fservice-proxy-name";
        /* kube-proxy runs as system:kube-proxy: the Node authorizer does not cover it */
        if ((w = informer(nd, "kube-proxy services", "/api/v1/services", sel, CODEC_KIND_SERVICE,
                          "services")))
            w->token = KUBE_PROXY_TOKEN;
        if ((w = informer(nd, "kube-proxy endpointslices",
                          "/apis/discovery.k8s.io/v1/endpointslices", sel, CODEC_KIND_ENDPOINTSLICE,
                          "endpointslices")))
            w->token = KUBE_PROXY_TOKEN;
    }
    for (size_t i = 0; i < nd->n_w; i++)
        kl_watch_start(nd->w[i], delay_ms);
}

/* ---- heartbeats: GET node at RV 0, PUT lease ---------------------------------------------- */

struct beat_req {
    struct node *nd;
    char *body;
    bool lease, create;
};

static void beat_headers(struct lb_ureq *r, int status, const struct lb_uhdr *h, size_t n,
                         void *arg)
{
    struct beat_req *b = arg;

    (void)r;
    (void)h;
    (void)n;
    kl_stats.status[status / 100 >= 2 && status / 100 <= 5 ? status / 100 - 2 : 4]++;
    if (b->lease && status == 404)
        b->nd->lease_exists = false; /* created next time */
    else if (b->lease && (status == 200 || status == 201 || status == 409))
        b->nd->lease_exists = true;
    else if (status >= 400)
        kl_stats.http_errors++;
}

static void beat_data(struct lb_ureq *r, const uint8_t *d, size_t len, void *arg)
{
    (void)d;
    (void)arg;
    kl_stats.bytes += len;
    lb_ureq_consume(r, len);
}

static void beat_end(struct lb_ureq *r, int error, void *arg)
{
    struct beat_req *b = arg;

    (void)r;
    (void)error;
    free(b->body);
    free(b);
}

static const struct lb_ureq_callbacks beat_cbs = {beat_headers, beat_data, beat_end};

static void send_req(struct node *nd, const char *method, const char *path, char *body, bool lease)
{
    struct beat_req *b = calloc(1, sizeof(*b));
    char auth[128];
    struct lb_uhdr h[4];
    size_t n = 0;
    struct lb_ureq *req;
    const char *accept = g.pb ? "application/vnd.kubernetes.protobuf, */*" : "application/json";

    if (!b) {
        free(body);
        return;
    }
    b->nd = nd;
    b->body = body;
    b->lease = lease;
    snprintf(auth, sizeof(auth), "Bearer %s", nd->token);
    h[n++] = (struct lb_uhdr){"authorization", 13, auth, strlen(auth)};
    h[n++] = (struct lb_uhdr){"accept", 6, accept, strlen(accept)};
    if (body)
        h[n++] = (struct lb_uhdr){"content-type", 12, "application/json", 16};
    struct lb_ureq_spec spec = {.method = method,
                                .path = path,
                                .headers = h,
                                .n_headers = n,
                                .body = body,
                                .body_len = body ? strlen(body) : 0,
                                .body_by_reference = true,
                                .idempotent = strcmp(method, "GET") == 0};
    if (lb_ureq_start(nd->ep.up, nd->ep.pool, &spec, &beat_cbs, b, &req) < 0)
        beat_end(NULL, -EIO, b);
}

static void beat_cb(evutil_socket_t fd, short what, void *arg)
{
    struct node *nd = arg;
    char path[256], *body = NULL, now[40];
    time_t t = time(NULL);
    struct tm tm;

    (void)fd;
    (void)what;
    snprintf(path, sizeof(path), "/api/v1/nodes/%s?resourceVersion=0", nd->name);
    send_req(nd, "GET", path, NULL, false);
    kl_stats.gets++;
    gmtime_r(&t, &tm);
    strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%S.000000Z", &tm);
    if (asprintf(&body,
                 "{\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\",\"metadata\":{"
                 "\"name\":\"%s\",\"namespace\":\"kube-node-lease\"},\"spec\":{\"holderIdentity\":"
                 "\"%s\",\"leaseDurationSeconds\":40,\"renewTime\":\"%s\"}}",
                 nd->name, nd->name, now) < 0)
        return;
    if (nd->lease_exists) {
        snprintf(path, sizeof(path),
                 "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/%s", nd->name);
        send_req(nd, "PUT", path, body, true);
    } else {
        send_req(nd, "POST", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", body,
                 true);
    }
    kl_stats.lease_puts++;
}

/* ---- the truth: reference watches and the final comparison ------------------------------------
 */

static const struct {
    const char *resource, *path;
    enum codec_kind kind;
} truth_resources[] = {
    {"pods", "/api/v1/pods", CODEC_KIND_POD},
    {"nodes", "/api/v1/nodes", CODEC_KIND_NODE},
    {"services", "/api/v1/services", CODEC_KIND_SERVICE},
    {"configmaps", "/api/v1/configmaps", CODEC_KIND_CONFIGMAP},
    {"secrets", "/api/v1/secrets", CODEC_KIND_SECRET},
    {"endpointslices", "/apis/discovery.k8s.io/v1/endpointslices", CODEC_KIND_ENDPOINTSLICE},
};

static void truth_start(void)
{
    for (size_t i = 0; i < KF_ARRAY_SIZE(truth_resources); i++) {
        struct kl_watch *w = kl_watch_new(g.base, &g.truth, truth_resources[i].resource);
        if (!w)
            continue;
        w->truth = true;
        snprintf(w->path, sizeof(w->path), "%s", truth_resources[i].path);
        w->kind = truth_resources[i].kind;
        w->resource = truth_resources[i].resource;
        g.truth_w[g.n_truth++] = w;
        kl_watch_start(w, 0);
    }
}

static void compare_view(struct kl_watch *check);

/* A LIST of the truth with the informer's query, as its node (token) or as the admin (NULL). */
static bool start_check(struct kl_watch *w, const char *token)
{
    struct kl_watch *c;

    if (g.n_check == KF_ARRAY_SIZE(g.check_w) ||
        !(c = kl_watch_new(g.base, token ? &g.truth_as_node : &g.truth, w->what)))
        return false;
    c->truth = c->list_only = true;
    c->token = token;
    snprintf(c->path, sizeof(c->path), "%s", w->path);
    snprintf(c->query, sizeof(c->query), "%s", w->query);
    c->kind = w->kind;
    c->arg = w;
    c->on_listed = compare_view;
    g.check_w[g.n_check++] = c;
    g.checks_pending++;
    kl_watch_start(c, 0);
    return true;
}

/*
 * The informer's view against the truth's LIST. The node's own LIST says what it may see now.
 * If that is refused (its pods have moved) but the informer had listed, its watch went on (an
 * apiserver authorizes a watch when it starts), so the admin's LIST is what it should hold.
 */
static void compare_view(struct kl_watch *check)
{
    struct kl_watch *w = check->arg;
    size_t bad = 0;

    if (check->status != 200) {
        if (check->token && w->rv && start_check(w, NULL))
            goto done; /* it had listed: compare_view again, with the admin's LIST */
        if (kl_stats.views_refused++ < 20)
            fprintf(stderr,
                    "loadgen: %s of %s not compared: never listed, refused to its node %d\n",
                    w->what, w->node, check->status);
        goto done;
    }
    for (size_t i = 0; i < check->view.cap; i++) {
        const char *k = check->view.keys[i];
        if (!k || k == (char *)1)
            continue;
        uint64_t *want = check->view.values[i], *have = kf_map_get(&w->view, k);
        if (!have || *have != *want)
            bad++;
    }
    for (size_t i = 0; i < w->view.cap; i++) {
        const char *k = w->view.keys[i];
        if (k && k != (char *)1 && !kf_map_get(&check->view, k))
            bad++;
    }
    if (bad && kl_stats.events_missing < 20)
        fprintf(stderr, "loadgen: %s of %s differs from the truth in %zu objects\n", w->what,
                w->node, bad);
    kl_stats.events_missing += bad;
done:
    if (--g.checks_pending == 0)
        event_base_loopbreak(g.base);
}

static void verify_start(void)
{
    for (unsigned i = 0; i < g.nodes; i++) {
        struct node *nd = &g.n[i];
        for (size_t k = 0; k < nd->n_w; k++) {
            kl_watch_stop(nd->w[k]);
            start_check(nd->w[k], nd->w[k]->token);
        }
    }
    if (!g.checks_pending)
        event_base_loopbreak(g.base);
}

static int admin_post(const char *what)
{
    char cmd[512];

    snprintf(cmd, sizeof(cmd), "curl -sf -X POST '%s%s' > /dev/null", g.truth_admin, what);
    return system(cmd) == 0 ? 0 : -EIO;
}

static void settle_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    verify_start();
}

static void end_cb(evutil_socket_t fd, short what, void *arg)
{
    static struct event *settle;
    struct timeval tv = {3, 0};

    (void)fd;
    (void)what;
    (void)arg;
    if (!g.truth_admin) {
        event_base_loopbreak(g.base);
        return;
    }
    if (admin_post("/churn?rate=0") < 0)
        fprintf(stderr, "loadgen: cannot stop churn at %s\n", g.truth_admin);
    settle = evtimer_new(g.base, settle_cb, NULL); /* let the last events arrive */
    evtimer_add(settle, &tv);
}

/* ---- report
 * -------------------------------------------------------------------------------------- */

static void report(FILE *out, bool json)
{
    double secs = (double)(kf_now_us() - g.started_us) / 1e6;
    struct kl_hist *h = &kl_stats.latency;
    double p50 = kl_hist_pct(h, 0.5), p90 = kl_hist_pct(h, 0.9), p99 = kl_hist_pct(h, 0.99),
           max = kl_hist_pct(h, 1.0);

    if (json) {
        fprintf(out,
                "{\"nodes\":%u,\"seconds\":%.1f,\"watches_opened\":%llu,\"watches_reopened\":%llu,"
                "\"relists\":%llu,\"lists\":%llu,\"gets\":%llu,\"lease_updates\":%llu,"
                "\"events\":%llu,\"bookmarks\":%llu,\"events_wrong\":%llu,\"events_missing\":%llu,"
                "\"views_refused\":%llu,"
                "\"bytes\":%llu,\"http_errors\":%llu,\"latency_samples\":%zu,\"latency_ms\":{"
                "\"p50\":%.2f,\"p90\":%.2f,\"p99\":%.2f,\"max\":%.2f}}\n",
                g.nodes, secs, (unsigned long long)kl_stats.watches_opened,
                (unsigned long long)kl_stats.watches_reopened, (unsigned long long)kl_stats.relists,
                (unsigned long long)kl_stats.lists, (unsigned long long)kl_stats.gets,
                (unsigned long long)kl_stats.lease_puts, (unsigned long long)kl_stats.events,
                (unsigned long long)kl_stats.bookmarks, (unsigned long long)kl_stats.events_wrong,
                (unsigned long long)kl_stats.events_missing,
                (unsigned long long)kl_stats.views_refused, (unsigned long long)kl_stats.bytes,
                (unsigned long long)kl_stats.http_errors, h->n, p50, p90, p99, max);
        return;
    }
    fprintf(out,
            "loadgen kubelets: %u nodes, %.1f s, %s\n"
            "  watches opened %llu (re-opened %llu, relists after 410 %llu), lists %llu, "
            "node GETs %llu, lease updates %llu\n"
            "  events received %llu (+%llu bookmarks), wrong %llu, missing %llu; %.1f MB received\n"
            "  views not compared (never listed, refused to their node) %llu\n"
            "  HTTP status 2xx %llu 3xx %llu 4xx %llu 5xx %llu\n"
            "  delivery latency over a direct watch (%zu samples): p50 %.2f ms, p90 %.2f ms, "
            "p99 %.2f ms, max %.2f ms\n",
            g.nodes, secs, g.pb ? "protobuf" : "JSON", (unsigned long long)kl_stats.watches_opened,
            (unsigned long long)kl_stats.watches_reopened, (unsigned long long)kl_stats.relists,
            (unsigned long long)kl_stats.lists, (unsigned long long)kl_stats.gets,
            (unsigned long long)kl_stats.lease_puts, (unsigned long long)kl_stats.events,
            (unsigned long long)kl_stats.bookmarks, (unsigned long long)kl_stats.events_wrong,
            (unsigned long long)kl_stats.events_missing, (double)kl_stats.bytes / 1e6,
            (unsigned long long)kl_stats.views_refused, (unsigned long long)kl_stats.status[0],
            (unsigned long long)kl_stats.status[1], (unsigned long long)kl_stats.status[2],
            (unsigned long long)kl_stats.status[3], h->n, p50, p90, p99, max);
}

/* ---- main
 * ------------------------------------------------------------------------------------------ */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: loadgen kubelets --kubeconfig FILE --nodes N --duration SECONDS\n"
            "         [--first-node K (1)] [--node-prefix P (node-)] [--json]\n"
            "         [--kube-proxy-every M (50)] [--truth-kubeconfig FILE] [--truth-admin URL]\n"
            "         [--report-json FILE] [--progress SECONDS]\n"
            "       loadgen kubelets --write-policy FILE --nodes N [--first-node K]\n"
            "Node K authenticates with the bearer token node-token-<name>; --write-policy\n"
            "writes the kube-sim policy lines that make those tokens system:node:<name>.\n");
}

static int write_policy(const char *path)
{
    FILE *f = fopen(path, "a");

    if (!f) {
        perror(path);
        return 1;
    }
    for (unsigned i = 0; i < g.nodes; i++)
        fprintf(f, "token node-token-%s%05u system:node:%s%05u groups=system:nodes\n", g.prefix,
                g.first + i, g.prefix, g.first + i);
    fprintf(f,
            "token %s system:kube-proxy\n"
            "allow user=system:kube-proxy verbs=get,list,watch resources=services,endpointslices\n",
            KUBE_PROXY_TOKEN);
    return fclose(f) == 0 ? 0 : 1;
}

static int parse_args(int argc, char **argv, const char **policy)
{
    static const struct option opts[] = {{"kubeconfig", required_argument, NULL, 'k'},
                                         {"nodes", required_argument, NULL, 'n'},
                                         {"duration", required_argument, NULL, 'd'},
                                         {"first-node", required_argument, NULL, 'f'},
                                         {"node-prefix", required_argument, NULL, 'p'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"protobuf", no_argument, NULL, 'P'},
                                         {"kube-proxy-every", required_argument, NULL, 'x'},
                                         {"truth-kubeconfig", required_argument, NULL, 't'},
                                         {"truth-admin", required_argument, NULL, 'a'},
                                         {"report-json", required_argument, NULL, 'r'},
                                         {"write-policy", required_argument, NULL, 'w'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"progress", required_argument, NULL, 'g'},
                                         {NULL, 0, NULL, 0}};
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'k':
            g.kubeconfig = optarg;
            break;
        case 'n':
            g.nodes = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'd':
            g.duration = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'f':
            g.first = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'p':
            g.prefix = optarg;
            break;
        case 'j':
            g.pb = false;
            break;
        case 'P':
            g.pb = true;
            break;
        case 'x':
            g.kube_proxy_every = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 't':
            g.truth_kubeconfig = optarg;
            break;
        case 'a':
            g.truth_admin = optarg;
            break;
        case 'r':
            g.report = optarg;
            break;
        case 'w':
            *policy = optarg;
            break;
        case 'g':
            g.progress_s = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            return -EINVAL;
        }
    }
    if (!g.nodes || (!*policy && !g.kubeconfig)) {
        usage(stderr);
        return -EINVAL;
    }
    return 0;
}

static int setup(void)
{
    char err[256];

    g.arena = kf_arena_new(4096);
    if (!g.arena || config_kubeconfig_load(g.kubeconfig, g.arena, &g.kc, err, sizeof(err)) < 0 ||
        !(g.tls = kl_tls_ctx(&g.kc, false, err, sizeof(err)))) {
        fprintf(stderr, "loadgen: %s\n", err);
        return -EINVAL;
    }
    if (g.truth_kubeconfig &&
        (config_kubeconfig_load(g.truth_kubeconfig, g.arena, &g.tkc, err, sizeof(err)) < 0 ||
         !(g.ttls = kl_tls_ctx(&g.tkc, true, err, sizeof(err))) ||
         !(g.ttls_token = kl_tls_ctx(&g.tkc, false, err, sizeof(err))) ||
         kl_endpoint_open(&g.truth, g.base, g.tkc.server, g.ttls, 2) < 0 ||
         kl_endpoint_open(&g.truth_as_node, g.base, g.tkc.server, g.ttls_token, 2) < 0)) {
        fprintf(stderr, "loadgen: truth: %s\n", err);
        return -EINVAL;
    }
    g.n = calloc(g.nodes, sizeof(*g.n));
    if (!g.n)
        return -ENOMEM;
    for (unsigned i = 0; i < g.nodes; i++) {
        struct node *nd = &g.n[i];
        snprintf(nd->name, sizeof(nd->name), "%s%05u", g.prefix, g.first + i);
        snprintf(nd->token, sizeof(nd->token), "node-token-%s", nd->name);
        if (kl_endpoint_open(&nd->ep, g.base, g.kc.server, g.tls, 1) < 0)
            return -ENOMEM;
    }
    return 0;
}

static void start_nodes(void)
{
    /* spread the start over up to 5 s, as kubelets do not all start in the same millisecond */
    unsigned spread_ms = g.nodes > 1 ? 5000 : 0;

    for (unsigned i = 0; i < g.nodes; i++) {
        struct node *nd = &g.n[i];
        unsigned delay = spread_ms * i / g.nodes;
        node_start(nd, delay, g.kube_proxy_every && i % g.kube_proxy_every == 0);
        nd->beat = event_new(g.base, -1, EV_PERSIST, beat_cb, nd);
        struct timeval first = {0, 0}, every = {10, 0};
        unsigned off = 10000 * i / g.nodes;
        first.tv_sec = off / 1000;
        first.tv_usec = (suseconds_t)(off % 1000) * 1000;
        (void)first;
        if (nd->beat)
            event_add(nd->beat, &every);
    }
}

/* One line every --progress seconds: what the run has seen so far. */
static void progress_cb(evutil_socket_t fd, short what, void *arg)
{
    static uint64_t last_events, last_us;
    uint64_t now = kf_now_us();
    struct kl_hist *h = &kl_stats.latency;
    (void)fd;
    (void)what;
    (void)arg;
    double p99 = kl_hist_pct(h, 0.99);
    printf("loadgen: %5.0f s  watches %llu  events %llu (%.0f/s)  wrong %llu  latency p99 %.2f "
           "ms\n",
           (double)(now - g.started_us) / 1e6, (unsigned long long)kl_stats.watches_opened,
           (unsigned long long)kl_stats.events,
           last_us ? (double)(kl_stats.events - last_events) * 1e6 / (double)(now - last_us) : 0,
           (unsigned long long)kl_stats.events_wrong, p99);
    fflush(stdout);
    last_events = kl_stats.events;
    last_us = now;
}

int loadgen_kubelets_main(int argc, char **argv);
int loadgen_kubelets_main(int argc, char **argv)
{
    const char *policy = NULL;
    struct event *end, *progress = NULL;
    struct timeval tv;

    if (parse_args(argc, argv, &policy) < 0)
        return 2;
    if (policy)
        return write_policy(policy);
    signal(SIGPIPE, SIG_IGN);
    kf_log_threshold = KF_LOG_WARN; /* one line per connection would drown the report */
    evthread_use_pthreads();
    g.base = event_base_new();
    if (!g.base || setup() < 0)
        return 1;
    g.started_us = kf_now_us();
    if (g.truth_kubeconfig)
        truth_start();
    start_nodes();
    if (g.progress_s) {
        struct timeval ptv = {g.progress_s, 0};
        progress = event_new(g.base, -1, EV_PERSIST, progress_cb, NULL);
        if (progress)
            event_add(progress, &ptv);
    }
    end = evtimer_new(g.base, end_cb, NULL);
    if (!end)
        return 1;
    tv.tv_sec = g.duration;
    tv.tv_usec = 0;
    evtimer_add(end, &tv);
    event_base_dispatch(g.base);
    event_free(end);
    if (progress)
        event_free(progress);
    report(stdout, false);
    if (g.report) {
        FILE *f = fopen(g.report, "w");
        if (f) {
            report(f, true);
            fclose(f);
        }
    }
    return kl_stats.events_wrong || kl_stats.events_missing ? 1 : 0;
}
