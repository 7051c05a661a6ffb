#include "lb_test.h"

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

/* ---- configs ------------------------------------------------------------------ */

void tcfg_init(struct tcfg *t)
{
    memset(t, 0, sizeof(*t));
    t->cfg.source = "test.yaml";
    t->cfg.backends = t->backends;
}

struct config_backend *tcfg_backend(struct tcfg *t, const char *name, enum config_balance balance)
{
    cr_assert_lt(t->cfg.n_backends, T_MAX_BACKENDS);
    struct config_backend *b = &t->backends[t->cfg.n_backends];
    b->name = name;
    b->balance = balance;
    b->connect_retries = 2;
    b->servers = t->servers[t->cfg.n_backends];
    t->cfg.n_backends++;
    return b;
}

struct config_server *tcfg_server(struct tcfg *t KF_UNUSED, struct config_backend *b,
                                  const char *name, const char *address)
{
    cr_assert_lt(b->n_servers, T_MAX_SERVERS);
    struct config_server *s = &b->servers[b->n_servers++];
    s->name = name;
    s->address = address;
    s->weight = 1;
    s->check = true;
    s->state = CONFIG_SERVER_ACTIVE;
    return s;
}

void tcfg_check(struct config_backend *b, enum config_check_type type)
{
    b->check.type = type;
    b->check.path = "/readyz";
    b->check.expect_status = 200;
    b->check.interval_ms = 50;
    b->check.timeout_ms = 200;
    b->check.rise = 1;
    b->check.fall = 1;
}

struct lb *t_lb_new(const struct tcfg *t, struct lb *previous)
{
    struct config_diags diags = {0};
    struct lb *lb = lb_new(&t->cfg, previous, &diags);

    cr_assert_not_null(lb, "lb_new failed: %s", diags.n ? diags.items[0].message : "?");
    return lb;
}

struct lb_server *t_server(struct lb *lb, const char *backend, const char *name)
{
    struct lb_pool *pool = lb_find_pool(lb, backend);

    for (size_t i = 0; pool && i < pool->n_servers; i++)
        if (strcmp(pool->servers[i]->name, name) == 0)
            return pool->servers[i];
    return NULL;
}

/* ---- event loop ----------------------------------------------------------------- */

void t_run_for(struct event_base *base, int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
}

bool t_run_until(struct event_base *base, struct lb_server *s, enum lb_health want, int max_ms)
{
    uint64_t deadline = kf_now_ms() + (uint64_t)max_ms;

    while (lb_server_health(s) != want && kf_now_ms() < deadline)
        t_run_for(base, 5);
    return lb_server_health(s) == want;
}

/* ---- sockets ---------------------------------------------------------------------- */

static int bind_loopback(uint16_t *port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    cr_assert_geq(fd, 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    *port = ntohs(sin.sin_port);
    return fd;
}

int t_listen(uint16_t *port)
{
    int fd = bind_loopback(port);

    cr_assert_eq(listen(fd, 64), 0);
    return fd;
}

uint16_t t_closed_port(void)
{
    uint16_t port;
    int fd = bind_loopback(&port);

    close(fd); /* never listened on: connects are refused */
    return port;
}

/* ---- HTTP(S) server ------------------------------------------------------------- */

static void send_raw(const struct t_http *h, int fd)
{
    size_t len = strlen(h->raw);

    if (!h->trickle) {
        send(fd, h->raw, len, MSG_NOSIGNAL);
        return;
    }
    for (size_t i = 0; i < len; i++) {
        send(fd, h->raw + i, 1, MSG_NOSIGNAL);
        usleep(1000);
    }
}

static void serve_one(struct t_http *h, int fd)
{
    struct timeval tv = {.tv_sec = 1};
    char buf[2048], resp[128];
    size_t got = 0;
    SSL *ssl = NULL;

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (h->tls) {
        ssl = SSL_new(h->tls);
        SSL_set_fd(ssl, fd);
        if (SSL_accept(ssl) != 1)
            goto out;
    }
    while (got < sizeof(buf) - 1) {
        int n = ssl ? SSL_read(ssl, buf + got, (int)(sizeof(buf) - 1 - got))
                    : (int)recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
        if (n <= 0)
            goto out;
        got += (size_t)n;
        buf[got] = '\0';
        if (strstr(buf, "\r\n\r\n"))
            break;
    }
    int len = snprintf(resp, sizeof(resp), "HTTP/1.1 %d Test\r\nContent-Length: 0\r\n\r\n",
                       atomic_load(&h->status));
    if (h->raw)
        send_raw(h, fd);
    else if (ssl)
        SSL_write(ssl, resp, len);
    else
        send(fd, resp, (size_t)len, MSG_NOSIGNAL);
    pthread_mutex_lock(&h->mu);
    memcpy(h->last_request, buf, got + 1);
    pthread_mutex_unlock(&h->mu);
    atomic_fetch_add(&h->served, 1);
out:
    SSL_free(ssl);
    close(fd);
}

static void *http_main(void *arg)
{
    struct t_http *h = arg;

    while (!atomic_load(&h->stop)) {
        struct pollfd p = {.fd = h->fd, .events = POLLIN};
        if (poll(&p, 1, 20) <= 0)
            continue;
        int fd = accept(h->fd, NULL, NULL);
        if (fd >= 0)
            serve_one(h, fd);
    }
    return NULL;
}

static void http_init(struct t_http *h, int status, struct ssl_ctx_st *tls)
{
    /* as the daemon does: a peer closing mid-write must not kill the process */
    signal(SIGPIPE, SIG_IGN);
    memset(h, 0, sizeof(*h));
    h->fd = t_listen(&h->port);
    h->tls = tls;
    pthread_mutex_init(&h->mu, NULL);
    atomic_store(&h->status, status);
}

void t_http_start(struct t_http *h, int status, struct ssl_ctx_st *tls)
{
    http_init(h, status, tls);
    cr_assert_eq(pthread_create(&h->thread, NULL, http_main, h), 0);
}

void t_http_start_raw(struct t_http *h, const char *raw, bool trickle)
{
    http_init(h, 0, NULL);
    h->raw = raw;
    h->trickle = trickle;
    cr_assert_eq(pthread_create(&h->thread, NULL, http_main, h), 0);
}

void t_http_stop(struct t_http *h)
{
    atomic_store(&h->stop, true);
    pthread_join(h->thread, NULL);
    close(h->fd);
    SSL_CTX_free(h->tls);
}

/* ---- certificates --------------------------------------------------------------- */

static void add_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;

    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    cr_assert_not_null(ext);
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
}

/* A self-signed certificate that is its own CA, for IP 127.0.0.1 and localhost. */
static void make_cert(const char *cert_path, const char *key_path, const char *cn, long serial)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_NAME *name = X509_get_subject_name(x);
    FILE *f;

    cr_assert(key && x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509_set_pubkey(x, key);
    add_ext(x, NID_basic_constraints, "critical,CA:TRUE");
    add_ext(x, NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost");
    cr_assert(X509_sign(x, key, EVP_sha256()) > 0);
    f = fopen(cert_path, "w");
    cr_assert_not_null(f);
    PEM_write_X509(f, x);
    fclose(f);
    if (key_path) {
        f = fopen(key_path, "w");
        cr_assert_not_null(f);
        PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
        fclose(f);
    }
    X509_free(x);
    EVP_PKEY_free(key);
}

void t_certs_make(struct t_certs *c)
{
    snprintf(c->dir, sizeof(c->dir), "/tmp/kf-lb-test-XXXXXX");
    cr_assert_not_null(mkdtemp(c->dir));
    snprintf(c->cert, sizeof(c->cert), "%s/cert.pem", c->dir);
    snprintf(c->key, sizeof(c->key), "%s/key.pem", c->dir);
    snprintf(c->other, sizeof(c->other), "%s/other.pem", c->dir);
    make_cert(c->cert, c->key, "kfront test apiserver", 1);
    make_cert(c->other, NULL, "kfront unrelated ca", 2);
}

void t_certs_remove(struct t_certs *c)
{
    unlink(c->cert);
    unlink(c->key);
    unlink(c->other);
    rmdir(c->dir);
}

struct ssl_ctx_st *t_server_ctx(const struct t_certs *c, bool require_client)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    cr_assert_not_null(ctx);
    cr_assert_eq(SSL_CTX_use_certificate_file(ctx, c->cert, SSL_FILETYPE_PEM), 1);
    cr_assert_eq(SSL_CTX_use_PrivateKey_file(ctx, c->key, SSL_FILETYPE_PEM), 1);
    if (require_client) {
        cr_assert_eq(SSL_CTX_load_verify_locations(ctx, c->cert, NULL), 1);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    return ctx;
}
