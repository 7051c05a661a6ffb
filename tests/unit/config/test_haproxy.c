/* The haproxy.cfg importer. */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "helpers.h"

Test(haproxy, the_masters_config_imports_cleanly)
{
    struct config *cfg = parse_haproxy(masters_cfg);

    cr_assert_not_null(cfg, "%s", diags_text());
    cr_expect_eq(test_diags.n, 0, "%s", diags_text());
    cr_expect_str_eq(cfg->source, "haproxy.cfg");
    cr_expect_eq(cfg->maxconn, 50000);
    cr_expect_eq(cfg->timeouts.connect_ms, 5000);
    cr_expect_eq(cfg->timeouts.client_ms, 50000);
    cr_expect_eq(cfg->timeouts.server_ms, 50000);
    cr_expect_eq(cfg->timeouts.tunnel_ms, 0);

    cr_assert_eq(cfg->n_frontends, 1);
    const struct config_frontend *fe = &cfg->frontends[0];
    cr_expect_str_eq(fe->name, "kube-apiserver");
    cr_assert_eq(fe->n_listen, 1);
    cr_expect_str_eq(fe->listen[0], "*:6443");
    cr_expect_eq(fe->listen_locs[0].line, 9);
    cr_expect_eq(fe->listen_locs[0].column, 8);
    cr_expect_eq(fe->mode, CONFIG_MODE_TCP);
    cr_expect_str_eq(fe->backend, "kube-apiserver-backend");
    cr_expect_eq(fe->loc.line, 8);

    cr_assert_eq(cfg->n_backends, 1);
    const struct config_backend *be = &cfg->backends[0];
    cr_expect_str_eq(be->name, "kube-apiserver-backend");
    cr_expect_eq(be->balance, CONFIG_BALANCE_ROUNDROBIN);
    cr_expect_eq(be->check.type, CONFIG_CHECK_TCP);
    cr_expect_eq(be->check.interval_ms, 2000);
    cr_expect_eq(be->check.rise, 2);
    cr_expect_eq(be->check.fall, 3);
    cr_expect_eq(be->connect_retries, 3);
    cr_assert_eq(be->n_servers, 3);
    for (size_t i = 0; i < 3; i++) {
        char name[16], addr[32];

        snprintf(name, sizeof(name), "master%zu", i + 1);
        snprintf(addr, sizeof(addr), "10.0.1.1%zu:6443", i);
        cr_expect_str_eq(be->servers[i].name, name);
        cr_expect_str_eq(be->servers[i].address, addr);
        cr_expect(be->servers[i].check);
        cr_expect_eq(be->servers[i].weight, 1);
        cr_expect_eq(be->servers[i].state, CONFIG_SERVER_ACTIVE);
        cr_expect_eq(be->servers[i].loc.line, 14 + (int)i);
        cr_expect_eq(be->servers[i].address_loc.column, 18);
    }
    config_free(cfg);
}

/* As in the kubeadm high-availability guide: mode http defaults, tcp proxies, https check. */
static const char kubeadm_cfg[] = "global\n"
                                  "    log /dev/log local0\n"
                                  "    daemon\n"
                                  "defaults\n"
                                  "    mode                    http\n"
                                  "    log                     global\n"
                                  "    option                  httplog\n"
                                  "    option                  dontlognull\n"
                                  "    option http-server-close\n"
                                  "    option forwardfor       except 127.0.0.0/8\n"
                                  "    option                  redispatch\n"
                                  "    retries                 1\n"
                                  "    timeout http-request    10s\n"
                                  "    timeout queue           20s\n"
                                  "    timeout connect         5s\n"
                                  "    timeout client          20s\n"
                                  "    timeout server          20s\n"
                                  "    timeout http-keep-alive 10s\n"
                                  "    timeout check           10s\n"
                                  "frontend apiserver\n"
                                  "    bind *:8443\n"
                                  "    mode tcp\n"
                                  "    option tcplog\n"
                                  "    default_backend apiserver\n"
                                  "backend apiserver\n"
                                  "    option httpchk GET /healthz\n"
                                  "    http-check expect status 200\n"
                                  "    mode tcp\n"
                                  "    option ssl-hello-chk\n"
                                  "    option httpchk GET /healthz\n"
                                  "    balance     roundrobin\n"
                                  "        server m1 10.0.1.10:6443 check check-ssl verify none\n"
                                  "        server m2 10.0.1.11:6443 check check-ssl verify none\n"
                                  "        server m3 10.0.1.12:6443 check check-ssl verify none\n";

Test(haproxy, the_kubeadm_guide_config)
{
    struct config *cfg = parse_haproxy(kubeadm_cfg);
    char *got;

    cr_assert_not_null(cfg, "%s", diags_text());
    const struct config_backend *be = &cfg->backends[0];
    cr_expect_eq(be->check.type, CONFIG_CHECK_HTTPS);
    cr_expect_str_eq(be->check.path, "/healthz");
    cr_expect_eq(be->check.expect_status, 200);
    cr_expect(be->check.tls.insecure_skip_verify);
    cr_expect_null(be->check.tls.ca_file);
    /* timeout check 10s + min(timeout connect 5s, inter 2s) */
    cr_expect_eq(be->check.timeout_ms, 12000);
    cr_expect_eq(be->connect_retries, 1);
    cr_expect_eq(cfg->frontends[0].mode, CONFIG_MODE_TCP);
    cr_expect_str_eq(cfg->frontends[0].listen[0], "*:8443");
    cr_expect_eq(cfg->timeouts.client_ms, 20000);
    got = diags_text();
    cr_expect_str_eq(
        got,
        "haproxy.cfg:2:5: warning: ignored: 'log' in global section (kfront logs to stderr)\n"
        "haproxy.cfg:3:5: warning: ignored: 'daemon' in global section (kfront runs in the "
        "foreground under its service manager)\n"
        "haproxy.cfg:6:5: warning: ignored: 'log' in defaults section (kfront logs to stderr)\n"
        "haproxy.cfg:7:29: warning: ignored: 'option httplog' in defaults section (kfront logs "
        "requests its own way)\n"
        "haproxy.cfg:8:29: warning: ignored: 'option dontlognull' in defaults section (kfront does "
        "not log empty connections)\n"
        "haproxy.cfg:9:12: warning: ignored: 'option http-server-close' in defaults section "
        "(kfront manages HTTP connections itself)\n"
        "haproxy.cfg:10:12: warning: ignored: option forwardfor does nothing for 'apiserver' (mode "
        "tcp)\n"
        "haproxy.cfg:11:29: warning: ignored: 'option redispatch' in defaults section (kfront "
        "always retries a failed connect on another server)\n"
        "haproxy.cfg:13:5: warning: ignored: 'timeout http-request' in defaults section (kfront "
        "bounds the first bytes with timeouts.clientHello)\n"
        "haproxy.cfg:14:5: warning: ignored: 'timeout queue' in defaults section (kfront does not "
        "queue connections)\n"
        "haproxy.cfg:18:5: warning: ignored: 'timeout http-keep-alive' in defaults section (kfront "
        "manages idle HTTP connections itself)\n"
        "haproxy.cfg:23:12: warning: ignored: 'option tcplog' in frontend 'apiserver' (kfront logs "
        "connections its own way)\n"
        "haproxy.cfg:32:9: warning: backends[0].healthCheck: timeout (12000 ms) is longer than "
        "interval (2000 ms)\n");
    free(got);
    config_free(cfg);
}

/* The same guide's newer form: http-check send and connect ssl, server verify none. */
Test(haproxy, http_check_send_and_connect_ssl)
{
    struct config *cfg = parse_haproxy("defaults\n"
                                       "  timeout connect 5s\n"
                                       "frontend apiserver\n"
                                       "  bind *:8443\n"
                                       "  default_backend apiserverbackend\n"
                                       "backend apiserverbackend\n"
                                       "  option httpchk\n"
                                       "  http-check connect ssl\n"
                                       "  http-check send meth GET uri /readyz\n"
                                       "  http-check expect status 200\n"
                                       "  server m1 10.0.1.10:6443 check verify none\n");

    cr_assert_not_null(cfg, "%s", diags_text());
    cr_expect_eq(cfg->backends[0].check.type, CONFIG_CHECK_HTTPS);
    cr_expect_str_eq(cfg->backends[0].check.path, "/readyz");
    cr_expect(cfg->backends[0].check.tls.insecure_skip_verify);
    cr_expect_eq(cfg->backends[0].check.timeout_ms, 2000);
    cr_expect_eq(test_diags.n, 1);
    cr_expect_str_eq(diag(0), "haproxy.cfg:7:10: warning: kfront checks with GET /, not haproxy's "
                              "default OPTIONS /");
    config_free(cfg);
}

static char *errors_of(const char *text)
{
    cr_assert_null(parse_haproxy(text), "expected the import to fail");
    return diags_text();
}

#define FE  "frontend fe\n  bind :6443\n  default_backend be\n"
#define BE  "backend be\n"
#define SRV "  server m1 10.0.1.10:6443 check\n"

Test(haproxy, unsupported_directives_name_their_line)
{
    char *got = errors_of(FE BE "  balance roundrobin\n"
                                "  stick-table type ip size 1m expire 30m\n"
                                "  stick on src\n" SRV);

    cr_expect_str_eq(got,
                     "haproxy.cfg:6:3: error: unsupported directive 'stick-table' in backend "
                     "'be'\n"
                     "haproxy.cfg:7:3: error: unsupported directive 'stick' in backend 'be'\n");
    free(got);
    got = errors_of("maxconn 10\n" FE BE SRV);
    cr_expect_str_eq(got, "haproxy.cfg:1:1: error: 'maxconn' outside of a section (global, "
                          "defaults, frontend, backend or listen)\n");
    free(got);
}

Test(haproxy, errors_of_every_kind)
{
    char *got = errors_of("global\n"
                          "  nbproc 2\n"
                          "  setenv X 1\n"
                          "bind *:1\n"
                          "defaults\n"
                          "  timeout connect 5sec\n"
                          "  timeout idle 5s\n"
                          "  mode health\n"
                          "frontend fe\n"
                          "  bind *:6443 ssl crt /etc/haproxy/site.pem\n"
                          "  server x 10.0.0.1:1\n"
                          "  use_backend be if { ssl_fc }\n"
                          "  default_backend nope\n"
                          "frontend lonely\n"
                          "  bind 127.0.0.1:7000\n"
                          "backend be\n"
                          "  balance source\n"
                          "  maxconn 10\n"
                          "  tcp-check send PING\\r\\n\n"
                          "  http-check expect string ok\n"
                          "  server m1 10.0.1.10:6443 check weight 300 rise 0 inter 2x send-proxy\n"
                          "  server m2 10.0.1.11 check port 8080\n"
                          "  server m3 10.0.1.12:6443 check port 8080\n"
                          "  server m4 10.0.1.13:6443 sni req.hdr(host)\n");

    cr_expect_str_eq(
        got,
        "haproxy.cfg:2:10: error: nbproc 2 is not supported: kfront runs one process, use "
        "nbthread\n"
        "haproxy.cfg:3:3: error: unsupported directive 'setenv' in global section\n"
        "haproxy.cfg:4:1: error: directive 'bind' is not allowed in global section\n"
        "haproxy.cfg:6:19: error: 'connect' expects a time such as 5000 (ms), 5s, 1m (units us, "
        "ms, s, m, h, d), got '5sec'\n"
        "haproxy.cfg:7:11: error: unsupported timeout 'idle'\n"
        "haproxy.cfg:8:8: error: 'mode' expects tcp or http\n"
        "haproxy.cfg:10:15: error: unsupported bind option 'ssl': kfront does not terminate TLS "
        "from a haproxy.cfg import (mode tcp passes it through)\n"
        "haproxy.cfg:11:3: error: directive 'server' is not allowed in frontend 'fe'\n"
        "haproxy.cfg:12:3: error: unsupported directive 'use_backend' in frontend 'fe'\n"
        "haproxy.cfg:13:19: error: default_backend 'nope': no backend or listen section of that "
        "name\n"
        "haproxy.cfg:14:1: error: frontend 'lonely' has no default_backend\n"
        "haproxy.cfg:17:11: error: balance 'source' is not supported (kfront has roundrobin and "
        "leastconn)\n"
        "haproxy.cfg:18:3: error: directive 'maxconn' is not allowed in backend 'be'\n"
        "haproxy.cfg:19:13: error: unsupported 'tcp-check send': kfront's tcp check only "
        "connects\n"
        "haproxy.cfg:20:21: error: only 'http-check expect status CODE' is supported (kfront "
        "expects one status)\n"
        "haproxy.cfg:21:41: error: 'weight' expects an integer from 0 to 256, got '300'\n"
        "haproxy.cfg:21:50: error: 'rise' expects an integer from 1 to 1000, got '0'\n"
        "haproxy.cfg:21:58: error: 'inter' expects a time such as 5000 (ms), 5s, 1m (units us, ms, "
        "s, m, h, d), got '2x'\n"
        "haproxy.cfg:21:61: error: unsupported server option 'send-proxy' in backend 'be'\n"
        "haproxy.cfg:22:13: error: server 'm2': address '10.0.1.11': missing :PORT\n"
        "haproxy.cfg:22:29: error: check port '8080' is not supported: kfront checks the port the "
        "server serves on\n"
        "haproxy.cfg:23:34: error: check port '8080' is not supported: kfront checks the port the "
        "server serves on\n"
        "haproxy.cfg:24:32: error: sni 'req.hdr(host)' is not supported (only a fixed "
        "str(NAME))\n");
    free(got);
}

Test(haproxy, default_backend_must_exist)
{
    char *got = errors_of("frontend fe\n  bind :6443\n  default_backend nope\n" BE SRV);

    cr_expect_str_eq(got, "haproxy.cfg:3:19: error: default_backend 'nope': no backend or listen "
                          "section of that name\n");
    free(got);
}

Test(haproxy, forwardfor_in_mode_http_is_an_error)
{
    char *got = errors_of("defaults\n  mode http\n  option forwardfor\n" FE BE SRV);

    cr_expect_str_eq(got, "haproxy.cfg:3:10: error: option forwardfor is not supported for 'fe' "
                          "(mode http): kfront's http mode sets its own request headers\n"
                          "haproxy.cfg:4:1: warning: 'fe' is mode http: haproxy speaks plain HTTP "
                          "there, kfront's http mode terminates TLS; check it before use\n");
    free(got);
}

Test(haproxy, words_quotes_and_comments)
{
    char *got;

    got = errors_of("global # comment\n  maxconn \"12\"'34' # 1234\n"
                    "  log \"unterminated\n");
    cr_expect_str_eq(got, "haproxy.cfg:3:7: error: missing closing \"\n");
    free(got);
    got = errors_of("global\n  log \"$HOSTNAME\" local0\n");
    cr_expect_str_eq(got, "haproxy.cfg:2:7: error: environment variables are not supported\n");
    free(got);
    got = errors_of("global\n  maxconn 1\\x\n");
    cr_expect_str_eq(got, "haproxy.cfg:2:11: error: bad backslash escape\n");
    free(got);

    struct config *cfg = parse_haproxy("global # comment\n"
                                       "  maxconn \"12\"'34'#5\n"
                                       "frontend 'f e'\n"
                                       "  bind :6443\r\n"
                                       "  default_backend b\\ e\n"
                                       "backend \"b e\"\n"
                                       "  server 'm 1' 10.0.1.10:6443\n");
    cr_assert_not_null(cfg, "%s", diags_text());
    cr_expect_eq(cfg->maxconn, 1234);
    cr_expect_str_eq(cfg->frontends[0].name, "f e");
    cr_expect_str_eq(cfg->frontends[0].backend, "b e");
    cr_expect_str_eq(cfg->backends[0].servers[0].name, "m 1");
    cr_expect_not(cfg->backends[0].servers[0].check);
    config_free(cfg);
}

Test(haproxy, listen_sections_and_server_options)
{
    struct config *cfg = parse_haproxy(
        "global\n"
        "  nbthread 4\n"
        "  hard-stop-after 1m\n"
        "  ca-base /etc/ssl\n"
        "  crt-base /etc/kfront\n"
        "defaults\n"
        "  mode tcp\n"
        "  timeout connect 3s\n"
        "  timeout tunnel 1h\n"
        "  retries 2\n"
        "  maxconn 1000\n"
        "  default-server inter 3s rise 3 fall 2 weight 10\n"
        "listen api\n"
        "  bind 0.0.0.0:6443,ipv6@:6443\n"
        "  bind :::7443 v4v6\n"
        "  balance leastconn\n"
        "  default-server check-ssl ca-file ca.pem crt /abs/client.pem sni str(api.local)\n"
        "  server m1 10.0.1.10:6443 check\n"
        "  server m2 fd00::2:6443 check backup\n"
        "  server m3 m3.example.com:6443 disabled weight 0\n");

    cr_assert_not_null(cfg, "%s", diags_text());
    cr_expect_str_eq(diag(0), "haproxy.cfg:15:16: warning: ignored: bind option 'v4v6'");
    cr_expect_eq(test_diags.n, 1);
    cr_expect_eq(cfg->workers, 4);
    cr_expect_eq(cfg->timeouts.drain_ms, 60000);
    cr_expect_eq(cfg->timeouts.connect_ms, 3000);
    cr_expect_eq(cfg->timeouts.tunnel_ms, 3600000);
    cr_assert_eq(cfg->n_frontends, 1);
    const struct config_frontend *fe = &cfg->frontends[0];
    cr_expect_str_eq(fe->name, "api");
    cr_expect_str_eq(fe->backend, "api");
    cr_expect_eq(fe->maxconn, 1000);
    cr_assert_eq(fe->n_listen, 3);
    cr_expect_str_eq(fe->listen[0], "0.0.0.0:6443");
    cr_expect_str_eq(fe->listen[1], "[::]:6443");
    cr_expect_str_eq(fe->listen[2], "[::]:7443");
    const struct config_backend *be = &cfg->backends[0];
    cr_expect_eq(be->balance, CONFIG_BALANCE_LEASTCONN);
    cr_expect_eq(be->connect_retries, 2);
    cr_expect_eq(be->check.type, CONFIG_CHECK_TLS);
    cr_expect_eq(be->check.interval_ms, 3000);
    cr_expect_eq(be->check.timeout_ms, 3000);
    cr_expect_eq(be->check.rise, 3);
    cr_expect_eq(be->check.fall, 2);
    cr_expect_str_eq(be->check.tls.ca_file, "/etc/ssl/ca.pem");
    cr_expect_str_eq(be->check.tls.cert_file, "/abs/client.pem");
    cr_expect_str_eq(be->check.tls.key_file, "/abs/client.pem");
    cr_expect_str_eq(be->check.tls.server_name, "api.local");
    cr_expect_not(be->check.tls.insecure_skip_verify);
    cr_assert_eq(be->n_servers, 3);
    cr_expect_eq(be->servers[0].weight, 10);
    cr_expect_str_eq(be->servers[1].address, "[fd00::2]:6443");
    cr_expect(be->servers[1].backup);
    cr_expect_str_eq(be->servers[2].address, "m3.example.com:6443");
    cr_expect_eq(be->servers[2].state, CONFIG_SERVER_DISABLED);
    cr_expect_eq(be->servers[2].weight, 0);
    cr_expect_not(be->servers[2].check);
    config_free(cfg);
}

Test(haproxy, check_types)
{
    static const struct {
        const char *lines;
        enum config_check_type type;
        const char *path;
    } cases[] = {
        {"  server m1 10.0.1.10:6443 check\n", CONFIG_CHECK_TCP, "/readyz"},
        {"  server m1 10.0.1.10:6443 check check-ssl verify none\n", CONFIG_CHECK_TLS, "/readyz"},
        {"  option tcp-check\n  tcp-check connect ssl\n  server m1 10.0.1.10:6443 check\n",
         CONFIG_CHECK_TLS, "/readyz"},
        {"  option ssl-hello-chk\n  server m1 10.0.1.10:6443 check\n", CONFIG_CHECK_TLS, "/readyz"},
        {"  option httpchk /livez\n  server m1 10.0.1.10:6443 check\n", CONFIG_CHECK_HTTP,
         "/livez"},
        {"  option httpchk GET /readyz HTTP/1.1\n  server m1 10.0.1.10:6443 check check-ssl\n",
         CONFIG_CHECK_HTTPS, "/readyz"},
        {"  default-server check-ssl\n  option httpchk GET /x\n  server m1 10.0.1.10:6443 check\n",
         CONFIG_CHECK_HTTPS, "/x"},
    };

    for (size_t i = 0; i < KF_ARRAY_SIZE(cases); i++) {
        char text[512];
        struct config *cfg;

        snprintf(text, sizeof(text), FE BE "%s", cases[i].lines);
        cfg = parse_haproxy(text);
        cr_assert_not_null(cfg, "case %zu: %s", i, diags_text());
        cr_expect_eq(cfg->backends[0].check.type, cases[i].type, "case %zu", i);
        cr_expect_str_eq(cfg->backends[0].check.path, cases[i].path, "case %zu", i);
        /* without check-ssl nothing asks for verification: ssl-hello-chk only wants a hello */
        cr_expect_eq(cfg->backends[0].check.tls.insecure_skip_verify,
                     strstr(cases[i].lines, "verify none") || strstr(cases[i].lines, "hello"),
                     "case %zu", i);
        config_free(cfg);
    }
}

Test(haproxy, warnings_for_what_kfront_does_its_own_way)
{
    struct config *cfg = parse_haproxy("global\n"
                                       "  stats socket /run/haproxy.sock mode 660\n"
                                       "userlist admins\n"
                                       "  user admin password x\n"
                                       "defaults\n"
                                       "  timeout client 30s\n"
                                       "listen stats\n"
                                       "  bind *:8404\n"
                                       "  stats enable\n"
                                       "  stats uri /stats\n"
                                       "frontend fe\n"
                                       "  bind :6443\n"
                                       "  timeout client 60s\n"
                                       "  default_backend be\n"
                                       "frontend fe2\n"
                                       "  bind :7443\n"
                                       "  default_backend be\n"
                                       "backend be\n"
                                       "  option httpchk HEAD / HTTP/1.0\\r\\nHost:\\ k8s\n"
                                       "  server m1 10.0.1.10:6443 check inter 1s maxconn 100\n"
                                       "  server m2 10.0.1.11:6443 check inter 5s\n");
    char *got;

    cr_assert_not_null(cfg, "%s", diags_text());
    got = diags_text();
    cr_expect_str_eq(
        got,
        "haproxy.cfg:2:3: warning: ignored: 'stats' in global section (kfront serves its metrics "
        "on admin.listen)\n"
        "haproxy.cfg:3:1: warning: ignored: section 'userlist' and everything in it\n"
        "haproxy.cfg:6:3: warning: timeout client 30000 ms for 'fe2' differs from 60000 ms (line "
        "13); kfront has one client timeout and keeps 60000 ms\n"
        "haproxy.cfg:7:1: warning: ignored: 'stats' only serves haproxy statistics\n"
        "haproxy.cfg:9:3: warning: ignored: 'stats' in listen 'stats' (kfront serves its metrics "
        "on admin.listen)\n"
        "haproxy.cfg:10:3: warning: ignored: 'stats' in listen 'stats' (kfront serves its metrics "
        "on admin.listen)\n"
        "haproxy.cfg:19:18: warning: kfront checks with GET, not HEAD\n"
        "haproxy.cfg:19:25: warning: ignored: headers after the HTTP version (kfront sends its "
        "own)\n"
        "haproxy.cfg:20:43: warning: ignored: server option 'maxconn' in backend 'be' (kfront does "
        "not queue per server)\n"
        "haproxy.cfg:21:3: warning: server 'm2': check settings differ from line 20; kfront runs "
        "one health check per backend and uses those of line 20\n");
    cr_expect_eq(cfg->n_frontends, 2);
    cr_expect_eq(cfg->timeouts.client_ms, 60000);
    cr_expect_eq(cfg->backends[0].check.interval_ms, 1000);
    free(got);
    config_free(cfg);
}

Test(haproxy, haproxy_times)
{
    static const struct {
        const char *text;
        uint32_t ms;
    } cases[] = {{"5000", 5000},  {"5000ms", 5000}, {"5s", 5000},  {"2m", 120000},
                 {"1h", 3600000}, {"1d", 86400000}, {"1500us", 2}, {"0", 0}};

    for (size_t i = 0; i < KF_ARRAY_SIZE(cases); i++) {
        char text[256];
        struct config *cfg;

        snprintf(text, sizeof(text), "defaults\n  timeout server %s\n" FE BE SRV, cases[i].text);
        cfg = parse_haproxy(text);
        cr_assert_not_null(cfg, "%s: %s", cases[i].text, diags_text());
        cr_expect_eq(cfg->timeouts.server_ms, cases[i].ms, "%s", cases[i].text);
        config_free(cfg);
    }
    cr_assert_null(parse_haproxy("defaults\n  timeout server 50d\n" FE BE SRV));
    cr_expect_str_eq(diag(0), "haproxy.cfg:2:18: error: 'server' expects a time below 49 days, "
                              "got '50d'");
}

Test(haproxy, long_lines_and_nul_bytes)
{
    char *text = malloc(8192);

    memset(text, 'x', 8191);
    text[8191] = '\0';
    cr_assert_null(parse_haproxy(text));
    cr_expect_str_eq(diag(0), "haproxy.cfg:1:1: error: line longer than 4096 bytes");
    free(text);

    struct config *cfg = NULL;
    cr_expect_lt(config_parse_haproxy("h", "global\0\n", 8, &cfg, &test_diags), 0);
    cr_expect_str_eq(diag(0), "h:1:1: error: NUL byte in line (limit 4096 bytes)");
}

Test(haproxy, empty_file)
{
    cr_assert_null(parse_haproxy("# nothing\n"));
    cr_expect_str_eq(diag(0), "haproxy.cfg: error: frontends: at least one frontend is required");
}

Test(haproxy, load_a_missing_file)
{
    struct config *cfg;
    struct config_diags diags;

    cr_expect_lt(config_load_haproxy("/nonexistent/haproxy.cfg", &cfg, &diags), 0);
    cr_expect_null(cfg);
    cr_expect_eq(diags.n_errors, 1);
}

Test(haproxy, timeouts_where_haproxy_does_not_use_them)
{
    struct config *cfg =
        parse_haproxy("frontend fe\n  bind :6443\n  timeout server 9s\n"
                      "  timeout client 8s\n  default_backend be\n"
                      "backend be\n  timeout client 7s\n  timeout connect 6s\n" SRV);

    cr_assert_not_null(cfg, "%s", diags_text());
    cr_expect_eq(test_diags.n, 2);
    cr_expect_str_eq(diag(0), "haproxy.cfg:3:11: warning: ignored: 'timeout server' in frontend "
                              "'fe' (haproxy only uses it in backends)");
    cr_expect_str_eq(diag(1), "haproxy.cfg:7:11: warning: ignored: 'timeout client' in backend "
                              "'be' (haproxy only uses it in frontends)");
    cr_expect_eq(cfg->timeouts.client_ms, 8000);
    cr_expect_eq(cfg->timeouts.server_ms, 0);
    cr_expect_eq(cfg->timeouts.connect_ms, 6000);
    config_free(cfg);
}

Test(haproxy, listen_with_default_backend)
{
    char *got = errors_of("defaults\n  default_backend x\nlisten api\n  bind :6443\n" SRV);

    cr_expect_str_eq(got, "haproxy.cfg:2:19: error: default_backend in listen 'api' is not "
                          "supported: a listen section uses its own servers\n");
    free(got);
}
