/*
 * Test harness for the http module: a server on 127.0.0.1:<ephemeral> run by
 * a thread, a routing handler with observable state, raw-socket helpers, a
 * small blocking nghttp2 client and TLS material made with the openssl CLI.
 */
#ifndef KF_TEST_HTTP_HARNESS_H
#define KF_TEST_HTTP_HARNESS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nghttp2/nghttp2.h>

#include "proxy/http/http.h"

/* What the test handler saw and did (written by the server thread). */
struct test_state {
    atomic_int closes;       /* on_close callbacks */
    atomic_int drains;       /* on_drain callbacks */
    atomic_int waiting;      /* /big pump currently blocked on backpressure */
    atomic_int ref_frees;    /* write_ref cleanups */
    atomic_int upgrades;     /* upgrade callbacks with a live bufferevent */
    atomic_int upgrade_ends; /* upgraded connections freed by the test */
    atomic_size_t max_pending;
    atomic_size_t big_sent;
    struct px_server *server;
};
extern struct test_state ts;

struct srv {
    struct event_base *base;
    struct px_server *server;
    struct px_listener *listener;
    pthread_t thread;
    uint16_t port;
};

/* Start a server thread; cfg->handler defaults to the routing test handler. */
void srv_start(struct srv *s, struct px_server_config *cfg);
void srv_stop(struct srv *s);
struct px_server_stats srv_stats(struct srv *s);
/* wait_for predicate: the server (a struct srv *) has no connection left. */
bool srv_no_conns(void *srv);
/* Poll until pred holds or ms pass. */
bool wait_for(bool (*pred)(void *), void *arg, int ms);
bool wait_int(atomic_int *v, int at_least, int ms);

/* ---- raw sockets ---- */
int tcp_connect(uint16_t port, int rcvbuf);
void send_str(int fd, const char *s);
void send_all(int fd, const void *data, size_t len);
/* Read until EOF/reset or timeout; NUL-terminates; *closed says which. */
size_t read_all(int fd, char *buf, size_t cap, int ms, bool *closed);
/* Read until `until` appears (or timeout); returns bytes in buf. */
size_t read_until(int fd, char *buf, size_t cap, const char *until, int ms);
/* Count how many times needle occurs. */
int count_str(const char *hay, const char *needle);

/* ---- HTTP/2 client ---- */
struct h2c_stream {
    int32_t id;
    int status;
    char *data;
    size_t len;
    bool closed;
    uint32_t error;
};

struct h2c {
    int fd;
    nghttp2_session *s;
    struct h2c_stream st[16];
    int nst;
    bool goaway, eof;
    uint32_t goaway_error;
    const char *body; /* request body being sent */
    size_t body_len, body_off;
};

/* window: client's initial stream window (0: default); manual: no auto WINDOW_UPDATE. */
bool h2c_open(struct h2c *c, uint16_t port, uint32_t window, bool manual);
int32_t h2c_request(struct h2c *c, const char *method, const char *path, const char *body,
                    size_t body_len);
struct h2c_stream *h2c_stream(struct h2c *c, int32_t id);
/* Drive I/O once (send all, wait up to ms for input); false once the socket is gone. */
bool h2c_pump(struct h2c *c, int ms);
bool h2c_wait_closed(struct h2c *c, int32_t id, int ms);
void h2c_free(struct h2c *c);

/* ---- TLS material and command-line clients ---- */
/* Make ca, server (CN localhost), client (signed by ca) and rogue (self-signed) certs. */
void tls_make_certs(char *dir, size_t size);
/* Run a shell command, capture stdout; returns the exit status. */
int run_cmd(const char *cmd, char *out, size_t cap);

#endif
