/*
 * kube-sim: a simulated kube-apiserver for kfront's tests and benchmarks.
 *
 *   kube-sim --listen ADDR:PORT [--listen-plain ADDR:PORT] --cert-dir DIR
 *            --kubeconfig-out FILE --nodes N --pods P --configmaps C --secrets S
 *            --churn RATE [--policy FILE] [--admin-listen ADDR:PORT]
 *            [--history N] [--seed N] [--user-cert CN[=GROUP,...]]...
 *
 * Prints "kube-sim ready https://127.0.0.1:PORT" on stdout once it serves.
 */
#include "loadgen/kube-sim/kube_sim.h"
#include "proxy/http/http.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#define MODULE "kube-sim"

static unsigned shutdown_delay_ms;

struct options {
    const char *listen, *listen_plain, *admin_listen;
    const char *cert_dir, *kubeconfig, *policy;
    const char *users[32];
    size_t n_users;
    size_t nodes, pods, configmaps, secrets, history;
    double churn, goaway_chance;
    uint64_t seed;
};

static void usage(void)
{
    fprintf(stderr,
            "usage: kube-sim --listen ADDR:PORT [--listen-plain ADDR:PORT] --cert-dir DIR\n"
            "                --kubeconfig-out FILE [--nodes N] [--pods P] [--configmaps C]\n"
            "                [--secrets S] [--churn RATE] [--policy FILE]\n"
            "                [--admin-listen ADDR:PORT] [--history N] [--seed N]\n"
            "                [--user-cert CN[=GROUP,...]] [--bookmark-interval MS]\n"
            "                [--pod-termination MS] [--slow-watch MS] [--shutdown-delay MS]\n"
            "                [--goaway-chance P] [--log-level LEVEL]\n");
}

static int parse_args(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"listen", 1, NULL, 'l'},
        {"listen-plain", 1, NULL, 'p'},
        {"cert-dir", 1, NULL, 'd'},
        {"kubeconfig-out", 1, NULL, 'k'},
        {"nodes", 1, NULL, 'n'},
        {"pods", 1, NULL, 'P'},
        {"configmaps", 1, NULL, 'c'},
        {"secrets", 1, NULL, 's'},
        {"churn", 1, NULL, 'C'},
        {"policy", 1, NULL, 'y'},
        {"admin-listen", 1, NULL, 'a'},
        {"history", 1, NULL, 'H'},
        {"seed", 1, NULL, 'S'},
        {"user-cert", 1, NULL, 'u'},
        {"bookmark-interval", 1, NULL, 'b'},
        {"pod-termination", 1, NULL, 't'},
        {"log-level", 1, NULL, 'L'},
        {"slow-watch", 1, NULL, 'w'},
        {"shutdown-delay", 1, NULL, 'D'},
        {"goaway-chance", 1, NULL, 'g'},
        {"help", 0, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    *o = (struct options){.history = 10000, .seed = 1};
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'l':
            o->listen = optarg;
            break;
        case 'p':
            o->listen_plain = optarg;
            break;
        case 'd':
            o->cert_dir = optarg;
            break;
        case 'k':
            o->kubeconfig = optarg;
            break;
        case 'n':
            o->nodes = strtoull(optarg, NULL, 10);
            break;
        case 'P':
            o->pods = strtoull(optarg, NULL, 10);
            break;
        case 'c':
            o->configmaps = strtoull(optarg, NULL, 10);
            break;
        case 's':
            o->secrets = strtoull(optarg, NULL, 10);
            break;
        case 'C':
            o->churn = atof(optarg);
            break;
        case 'y':
            o->policy = optarg;
            break;
        case 'a':
            o->admin_listen = optarg;
            break;
        case 'H':
            o->history = strtoull(optarg, NULL, 10);
            break;
        case 'S':
            o->seed = strtoull(optarg, NULL, 10);
            break;
        case 'b':
            ks_bookmark_interval_ms = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 't':
            ks_pod_termination_ms = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'w':
            ks_slow_watch_ms = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'D':
            shutdown_delay_ms = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'g':
            o->goaway_chance = atof(optarg);
            break;
        case 'u':
            if (o->n_users < KF_ARRAY_SIZE(o->users))
                o->users[o->n_users++] = optarg;
            break;
        case 'L':
            if (kf_log_level_parse(optarg, &kf_log_threshold) < 0)
                return -EINVAL;
            break;
        default:
            return -EINVAL;
        }
    }
    if (optind != argc || !o->listen || !o->cert_dir)
        return -EINVAL;
    return 0;
}

static void on_shutdown_delay(evutil_socket_t fd, short what, void *arg);

/* Servers to shut down gracefully on SIGTERM. */
static struct px_server *servers[3];
static struct event *shutdown_ev;

static void finish_shutdown(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    event_base_loopbreak(ks_base);
}

/*
 * Like the apiserver's graceful termination: /readyz fails at once, requests
 * keep being served for --shutdown-delay, then connections get GOAWAY and
 * watches end, and the process exits a moment later. SIGINT (or a second
 * signal) stops at once.
 */
static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct timeval tv = {shutdown_delay_ms / 1000, (shutdown_delay_ms % 1000) * 1000};

    (void)what;
    (void)arg;
    if (sig == SIGINT || shutdown_ev || !shutdown_delay_ms) {
        event_base_loopbreak(ks_base);
        return;
    }
    kf_info(MODULE, "terminating: not ready now, going away in %u ms", shutdown_delay_ms);
    ks_faults.not_ready = true;
    shutdown_ev = evtimer_new(ks_base, on_shutdown_delay, NULL);
    if (!shutdown_ev || evtimer_add(shutdown_ev, &tv) < 0)
        event_base_loopbreak(ks_base);
}

static void on_shutdown_delay(evutil_socket_t fd, short what, void *arg)
{
    struct timeval tv = {0, 200000};

    (void)fd;
    (void)what;
    (void)arg;
    ks_churn_stop();
    for (size_t i = 0; i < KF_ARRAY_SIZE(servers); i++)
        if (servers[i])
            px_server_shutdown(servers[i]);
    ks_watch_close_all(false);
    ks_logs_shutdown();
    event_free(shutdown_ev);
    shutdown_ev = evtimer_new(ks_base, finish_shutdown, NULL);
    if (!shutdown_ev || evtimer_add(shutdown_ev, &tv) < 0)
        event_base_loopbreak(ks_base);
}

/* Generate the cluster and say what it costs. */
static int populate(const struct options *o)
{
    char ca[4096];
    struct ks_gen_config g = {o->nodes, o->pods, o->configmaps, o->secrets, ca};
    uint64_t rss0 = ks_rss_bytes(), t0 = kf_now_ms();

    snprintf(ca, sizeof(ca), "%s/ca.crt", o->cert_dir);
    int rc = ks_gen_cluster(&g);
    if (rc < 0) {
        kf_err(MODULE, "generating the cluster failed: %s", strerror(-rc));
        return rc;
    }
    uint64_t rss = ks_rss_bytes();
    fprintf(stderr,
            "kube-sim: generated %llu objects (%zu nodes, %zu pods, %zu pods-per-node avg) in "
            "%.2f s; store %.1f MiB encoded, RSS %.1f MiB (%.0f bytes/object), rv %llu\n",
            (unsigned long long)ks_store.n_objects, o->nodes, o->pods,
            o->nodes ? o->pods / o->nodes : 0, (double)(kf_now_ms() - t0) / 1000.0,
            (double)ks_store.bytes / 1048576.0, (double)rss / 1048576.0,
            ks_store.n_objects ? (double)(rss - rss0) / (double)ks_store.n_objects : 0.0,
            (unsigned long long)ks_store.rv);
    return 0;
}

static struct px_server *api_server(const struct options *o)
{
    char cert[4096], key[4096], bundle[4096], err[512];

    snprintf(cert, sizeof(cert), "%s/apiserver.crt", o->cert_dir);
    snprintf(key, sizeof(key), "%s/apiserver.key", o->cert_dir);
    snprintf(bundle, sizeof(bundle), "%s/client-ca-bundle.crt", o->cert_dir);
    struct px_tls_config tls = {.cert_file = cert,
                                .key_file = key,
                                .client_ca_file = bundle,
                                .client_auth = PX_CLIENT_AUTH_REQUEST};
    SSL_CTX *ctx = px_tls_ctx_new(&tls, err, sizeof(err));
    if (!ctx) {
        kf_err(MODULE, "TLS setup failed: %s", err);
        return NULL;
    }
    struct px_server_config cfg = {
        .handler = ks_api_handle, .tls = ctx, .max_concurrent_streams = 1000};
    struct px_server *s = px_server_new(&cfg);
    SSL_CTX_free(ctx);
    return s;
}

int main(int argc, char **argv)
{
    struct options o;
    struct px_server *tls_srv = NULL, *plain_srv = NULL, *admin_srv = NULL;
    struct px_listener *l_tls = NULL, *l_plain = NULL, *l_admin = NULL;
    int status = 1;

    if (parse_args(argc, argv, &o) < 0) {
        usage();
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    ks_rng_seed(o.seed);
    ks_base = event_base_new();
    if (!ks_base || ks_pki_setup(o.cert_dir, o.users, o.n_users) < 0 || ks_res_bind() < 0 ||
        ks_store_init(o.history) < 0)
        goto out;
    ks_auth_init(o.cert_dir);
    if (o.policy && ks_policy_load(o.policy) < 0)
        goto out;
    ks_watch_init();
    if (populate(&o) < 0)
        goto out;
    tls_srv = api_server(&o);
    if (!tls_srv || !(l_tls = px_listen(ks_base, tls_srv, o.listen)))
        goto out;
    char url[128];
    snprintf(url, sizeof(url), "https://127.0.0.1:%u", px_listener_port(l_tls));
    snprintf(ks_advertise_buf, sizeof(ks_advertise_buf), "127.0.0.1:%u", px_listener_port(l_tls));
    ks_advertise = ks_advertise_buf;
    if (o.kubeconfig && ks_kubeconfig_write(o.kubeconfig, url, o.cert_dir) < 0)
        goto out;
    if (o.listen_plain) {
        struct px_server_config cfg = {.handler = ks_api_handle};
        plain_srv = px_server_new(&cfg);
        if (!plain_srv || !(l_plain = px_listen(ks_base, plain_srv, o.listen_plain)))
            goto out;
    }
    if (o.admin_listen) {
        struct px_server_config cfg = {.handler = ks_admin_handle};
        admin_srv = px_server_new(&cfg);
        if (!admin_srv || !(l_admin = px_listen(ks_base, admin_srv, o.admin_listen)))
            goto out;
    }
    if (o.churn > 0 && ks_churn_start(o.churn) < 0)
        goto out;
    servers[0] = tls_srv;
    servers[1] = plain_srv;
    servers[2] = admin_srv;
    struct event *sigint = evsignal_new(ks_base, SIGINT, on_signal, NULL);
    struct event *sigterm = evsignal_new(ks_base, SIGTERM, on_signal, NULL);
    event_add(sigint, NULL);
    event_add(sigterm, NULL);
    printf("kube-sim ready %s", url);
    if (l_plain)
        printf(" plain=http://127.0.0.1:%u", px_listener_port(l_plain));
    if (l_admin)
        printf(" admin=http://127.0.0.1:%u", px_listener_port(l_admin));
    printf("\n");
    fflush(stdout);
    event_base_dispatch(ks_base);
    event_free(sigint);
    event_free(sigterm);
    if (shutdown_ev)
        event_free(shutdown_ev);
    status = 0;
out:
    ks_churn_stop();
    ks_write_shutdown();
    ks_watch_shutdown();
    ks_logs_shutdown();
    if (l_tls)
        px_listener_free(l_tls);
    if (l_plain)
        px_listener_free(l_plain);
    if (l_admin)
        px_listener_free(l_admin);
    if (tls_srv)
        px_server_free(tls_srv);
    if (plain_srv)
        px_server_free(plain_srv);
    if (admin_srv)
        px_server_free(admin_srv);
    ks_exec_shutdown();
    ks_portforward_shutdown();
    ks_store_free();
    ks_policy_free();
    ks_metrics_free();
    ks_gen_free();
    if (ks_base)
        event_base_free(ks_base);
    return status;
}
