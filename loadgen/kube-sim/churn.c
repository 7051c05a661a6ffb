/*
 * churn: --churn RATE object updates per second, spread evenly by a 10 ms
 * timer, in the mix a busy cluster produces: lease renewals and node
 * heartbeats, pod status and label changes (some move pods in and out of
 * label selectors), ConfigMap data updates, and pods replaced (deleted and
 * created on another node, which moves them between nodeName watchers).
 */
#include "loadgen/kube-sim/kube_sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#define TICK_MS 10

static struct {
    struct event *timer;
    double rate, budget;
    uint64_t last_ms;
    uint64_t counter;
} churn;

static struct ks_obj *pick(struct ks_res *res)
{
    if (!res->table.n)
        return NULL;
    return res->table.items[ks_rng() % res->table.n];
}

static void now_micro(char *buf, size_t n)
{
    struct timespec t;

    clock_gettime(CLOCK_REALTIME, &t);
    ks_time_format(buf, n, (int64_t)t.tv_sec, (int32_t)t.tv_nsec, true);
}

/* Apply a merge patch (JSON text) to o and store the result as the next version. */
static void update(struct ks_obj *o, const char *patch_json)
{
    struct kf_arena *a = kf_arena_new(16384);
    struct ks_json *dom, *patch;
    struct ks_conv_error err;
    struct ks_obj *next;
    char perr[160], rv[24];

    if (!a)
        return;
    if (ks_obj_dom(o, a, &dom) == 0 &&
        ks_json_parse(a, patch_json, strlen(patch_json), &patch, perr, sizeof(perr)) == 0 &&
        ks_patch_merge(a, dom, patch, true, o->res, perr, sizeof(perr)) == 0) {
        snprintf(rv, sizeof(rv), "%llu", (unsigned long long)ks_store.rv + 1);
        struct ks_json *v = ks_json_new_str(a, rv);
        if (v) {
            ks_meta_set(a, ks_meta(a, dom), "resourceVersion", v);
            if (ks_obj_build(o->res, dom, a, &next, &err) == 0) {
                ks_store_next_rv();
                ks_store_put(next, true);
            }
        }
    }
    kf_arena_free(a);
}

static void renew_lease(void)
{
    struct ks_obj *l = pick(&ks_res_leases);
    char t[48], patch[128];

    if (!l)
        return;
    now_micro(t, sizeof(t));
    snprintf(patch, sizeof(patch), "{\"spec\":{\"renewTime\":\"%s\"}}", t);
    update(l, patch);
}

static void node_heartbeat(void)
{
    struct ks_obj *n = pick(&ks_res_nodes);
    char t[40], patch[256];

    if (!n)
        return;
    ks_time_format(t, sizeof(t), (int64_t)time(NULL), 0, false);
    snprintf(patch, sizeof(patch),
             "{\"status\":{\"conditions\":[{\"type\":\"Ready\",\"lastHeartbeatTime\":\"%s\"}]}}",
             t);
    update(n, patch);
}

static void pod_update(void)
{
    struct ks_obj *p = pick(&ks_res_pods);
    char patch[256];

    if (!p || p->terminating)
        return;
    churn.counter++;
    if (churn.counter % 10 == 0) /* a label change: selector watches see ADDED/DELETED */
        snprintf(patch, sizeof(patch), "{\"metadata\":{\"labels\":{\"churn-phase\":\"%s\"}}}",
                 churn.counter % 20 ? "a" : "b");
    else
        snprintf(patch, sizeof(patch),
                 "{\"metadata\":{\"annotations\":{\"kube-sim.kfront.io/churn\":\"%llu\"}}}",
                 (unsigned long long)churn.counter);
    update(p, patch);
}

static void configmap_update(void)
{
    struct ks_obj *c = pick(&ks_res_configmaps);
    char patch[160];

    if (!c || strcmp(c->name, "kube-root-ca.crt") == 0)
        return;
    churn.counter++;
    snprintf(patch, sizeof(patch), "{\"data\":{\"revision\":\"%llu\"}}",
             (unsigned long long)churn.counter);
    update(c, patch);
}

/* A pod is replaced: the old one goes, a new one of the same app lands on another node. */
static void pod_replace(void)
{
    struct ks_obj *p = pick(&ks_res_pods);
    struct kf_arena *a;
    struct ks_json *dom;

    if (!p || p->terminating || !ks_res_nodes.table.n)
        return;
    a = kf_arena_new(16384);
    if (!a)
        return;
    if (ks_obj_dom(p, a, &dom) == 0) {
        struct ks_obj *final = ks_obj_with_rv(p, ks_store.rv + 1);
        if (final) {
            ks_store_next_rv();
            ks_store_delete(final);
        }
        ks_churn_respawn(a, dom);
    }
    kf_arena_free(a);
}

static void one(void)
{
    unsigned r = (unsigned)(ks_rng() % 100);

    if (r < 30)
        renew_lease();
    else if (r < 40)
        node_heartbeat();
    else if (r < 75)
        pod_update();
    else if (r < 90)
        configmap_update();
    else
        pod_replace();
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
    uint64_t now = kf_now_ms();

    (void)fd;
    (void)what;
    (void)arg;
    churn.budget += churn.rate * (double)(now - churn.last_ms) / 1000.0;
    churn.last_ms = now;
    if (churn.budget > churn.rate + 1)
        churn.budget = churn.rate + 1; /* after a stall, do not burst a backlog */
    while (churn.budget >= 1.0) {
        one();
        churn.budget -= 1.0;
    }
}

int ks_churn_start(double rate)
{
    struct timeval tv = {0, TICK_MS * 1000};

    churn.rate = rate;
    churn.last_ms = kf_now_ms();
    churn.timer = event_new(ks_base, -1, EV_PERSIST, tick, NULL);
    if (!churn.timer)
        return -1;
    return event_add(churn.timer, &tv);
}

void ks_churn_set_rate(double rate)
{
    churn.rate = rate < 0 ? 0 : rate;
}

double ks_churn_rate(void)
{
    return churn.rate;
}

void ks_churn_stop(void)
{
    if (churn.timer)
        event_free(churn.timer);
    churn.timer = NULL;
}
