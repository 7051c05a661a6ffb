/*
 * admin: fault injection and control over a plain-HTTP admin listener
 * (POST /faults?notReady=1&error429=0.3&error5xx=0.1&delayMs=200,
 * /close-watches, /drop-connections, /compact, /churn?rate=N; GET /faults,
 * /stats, /metrics), and the Prometheus metrics also served on /metrics.
 */
#include "loadgen/kube-sim/kube_sim.h"
#include "proxy/http/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct ks_faults ks_faults;

static struct {
    struct kf_map requests; /* "verb\tresource\tsub\tcode" -> uint64_t * */
    uint64_t bytes_sent;
    uint64_t slow_watches;
} metrics;

void ks_metrics_request(const char *verb, const char *resource, const char *sub, int code)
{
    char key[256];

    /* "-" stands for an empty label so the key splits back cleanly */
    snprintf(key, sizeof(key), "%s\t%s\t%s\t%d", verb, resource && resource[0] ? resource : "-",
             sub && sub[0] ? sub : "-", code);
    uint64_t *n = kf_map_get(&metrics.requests, key);
    if (!n) {
        n = calloc(1, sizeof(*n));
        if (!n || kf_map_put(&metrics.requests, key, n) < 0) {
            free(n);
            return;
        }
    }
    (*n)++;
}

void ks_metrics_bytes(size_t n)
{
    metrics.bytes_sent += n;
}

void ks_metrics_slow_watch(void)
{
    metrics.slow_watches++;
}

uint64_t ks_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size, rss = 0;

    if (f) {
        if (fscanf(f, "%lu %lu", &size, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE);
}

static void metrics_text(struct ks_sb *sb)
{
    size_t pf_streams, pf_sessions = ks_portforward_count(&pf_streams);

    ks_sb_adds(sb, "# HELP apiserver_request_total Requests by verb, resource and code.\n"
                   "# TYPE apiserver_request_total counter\n");
    for (size_t i = 0; i < metrics.requests.cap; i++) {
        char *k = metrics.requests.keys[i];
        if (!k || k == (char *)1)
            continue;
        char verb[64], res[64], sub[64];
        int code;
        if (sscanf(k, "%63[^\t]\t%63[^\t]\t%63[^\t]\t%d", verb, res, sub, &code) != 4)
            continue;
        if (strcmp(res, "-") == 0)
            res[0] = '\0';
        if (strcmp(sub, "-") == 0)
            sub[0] = '\0';
        ks_sb_printf(sb,
                     "apiserver_request_total{code=\"%d\",resource=\"%s\",subresource=\"%s\","
                     "verb=\"%s\"} %llu\n",
                     code, res, sub, verb,
                     (unsigned long long)*(uint64_t *)metrics.requests.values[i]);
    }
    ks_sb_adds(sb, "# HELP apiserver_registered_watchers Open watches by resource.\n"
                   "# TYPE apiserver_registered_watchers gauge\n");
    for (size_t i = 0; i < ks_n_resources; i++) {
        const struct ks_res *r = ks_resources[i];
        ks_sb_printf(sb,
                     "apiserver_registered_watchers{group=\"%s\",kind=\"%s\",resource=\"%s\","
                     "version=\"%s\"} %llu\n",
                     r->group, r->kind, r->name, r->version, (unsigned long long)r->n_watchers);
    }
    ks_sb_adds(sb, "# TYPE kubesim_objects gauge\n");
    for (size_t i = 0; i < ks_n_resources; i++)
        ks_sb_printf(sb, "kubesim_objects{resource=\"%s\"} %zu\n", ks_resources[i]->name,
                     ks_resources[i]->table.n);
    ks_sb_printf(sb,
                 "# TYPE kubesim_bytes_sent_total counter\nkubesim_bytes_sent_total %llu\n"
                 "# TYPE kubesim_store_bytes gauge\nkubesim_store_bytes %llu\n"
                 "# TYPE kubesim_resource_version gauge\nkubesim_resource_version %llu\n"
                 "# TYPE kubesim_compacted_resource_version gauge\n"
                 "kubesim_compacted_resource_version %llu\n"
                 "# TYPE kubesim_events_total counter\nkubesim_events_total %llu\n"
                 "# TYPE kubesim_slow_watches_closed_total counter\n"
                 "kubesim_slow_watches_closed_total %llu\n"
                 "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %llu\n"
                 "# TYPE kubesim_log_follows gauge\nkubesim_log_follows %zu\n"
                 "# TYPE kubesim_portforward_sessions gauge\nkubesim_portforward_sessions %zu\n"
                 "# TYPE kubesim_portforward_streams gauge\nkubesim_portforward_streams %zu\n",
                 (unsigned long long)metrics.bytes_sent, (unsigned long long)ks_store.bytes,
                 (unsigned long long)ks_store.rv, (unsigned long long)ks_store.compacted_rv,
                 (unsigned long long)ks_store.events_total,
                 (unsigned long long)metrics.slow_watches, (unsigned long long)ks_rss_bytes(),
                 ks_logs_following(), pf_sessions, pf_streams);
}

void ks_metrics_reply(struct ks_req *r)
{
    struct ks_sb sb;

    if (!ks_authorize_path(r, "/metrics"))
        return;
    ks_sb_init(&sb, 8192);
    metrics_text(&sb);
    ks_req_count(r, 200);
    px_response_simple(r->px, 200, "text/plain; version=0.0.4", sb.p, sb.len);
    ks_sb_free(&sb);
}

void ks_metrics_free(void)
{
    kf_map_free(&metrics.requests, free);
}

/* ---- the admin listener -----------------------------------------------------------------------
 */

static void faults_json(struct ks_sb *sb)
{
    ks_sb_printf(sb,
                 "{\"notReady\":%s,\"error429\":%g,\"error5xx\":%g,\"delayMs\":%u,"
                 "\"churn\":%g}\n",
                 ks_faults.not_ready ? "true" : "false", ks_faults.error429, ks_faults.error5xx,
                 ks_faults.delay_ms, ks_churn_rate());
}

static void set_faults(struct px_request *req)
{
    const char *v;

    if ((v = px_request_query(req, "reset")) && strcmp(v, "1") == 0)
        memset(&ks_faults, 0, sizeof(ks_faults));
    if ((v = px_request_query(req, "notReady")))
        ks_faults.not_ready = strcmp(v, "1") == 0 || strcmp(v, "true") == 0;
    if ((v = px_request_query(req, "error429")))
        ks_faults.error429 = atof(v);
    if ((v = px_request_query(req, "error5xx")))
        ks_faults.error5xx = atof(v);
    if ((v = px_request_query(req, "delayMs")))
        ks_faults.delay_ms = (unsigned)strtoul(v, NULL, 10);
}

static void stats_json(struct ks_sb *sb)
{
    ks_sb_printf(sb,
                 "{\"resourceVersion\":%llu,\"compactedResourceVersion\":%llu,\"objects\":%llu,"
                 "\"storeBytes\":%llu,\"watches\":%llu,\"lists\":%llu,\"events\":%llu,"
                 "\"rssBytes\":%llu}\n",
                 (unsigned long long)ks_store.rv, (unsigned long long)ks_store.compacted_rv,
                 (unsigned long long)ks_store.n_objects, (unsigned long long)ks_store.bytes,
                 (unsigned long long)ks_watch_count(), (unsigned long long)ks_list_count(),
                 (unsigned long long)ks_store.events_total, (unsigned long long)ks_rss_bytes());
}

void ks_admin_handle(struct px_request *req, void *arg)
{
    const char *path = px_request_path(req), *m = px_request_method(req);
    bool post = strcmp(m, "POST") == 0;
    struct ks_sb sb;

    (void)arg;
    ks_sb_init(&sb, 4096);
    if (strcmp(path, "/faults") == 0) {
        if (post)
            set_faults(req);
        faults_json(&sb);
    } else if (post && strcmp(path, "/close-watches") == 0) {
        ks_watch_close_all(false);
        ks_sb_adds(&sb, "{\"closed\":true}\n");
    } else if (post && strcmp(path, "/drop-connections") == 0) {
        ks_watch_close_all(true);
        ks_sb_adds(&sb, "{\"dropped\":true}\n");
    } else if (post && strcmp(path, "/compact") == 0) {
        ks_store_compact();
        ks_sb_printf(&sb, "{\"compactedResourceVersion\":%llu}\n",
                     (unsigned long long)ks_store.compacted_rv);
    } else if (post && strcmp(path, "/churn") == 0) {
        const char *rate = px_request_query(req, "rate");
        if (rate)
            ks_churn_set_rate(atof(rate));
        faults_json(&sb);
    } else if (strcmp(path, "/stats") == 0) {
        stats_json(&sb);
    } else if (strcmp(path, "/metrics") == 0) {
        metrics_text(&sb);
        px_response_simple(req, 200, "text/plain; version=0.0.4", sb.p, sb.len);
        ks_sb_free(&sb);
        return;
    } else {
        px_response_simple(req, 404, "text/plain", "not found\n", 10);
        ks_sb_free(&sb);
        return;
    }
    px_response_simple(req, 200, "application/json", sb.p, sb.len);
    ks_sb_free(&sb);
}
