/*
 * L7 mode: every request of a mode-http frontend goes to an apiserver through
 * the worker's upstream pool, balanced per request, with the client's
 * identity conveyed the configured way. Bodies stream both ways with flow
 * control end to end: upstream bytes are acknowledged (lb_ureq_consume) only
 * once the client connection has taken them, so a slow watcher slows only
 * its own upstream stream.
 *
 * Request bodies stream too (the server hands them over as they arrive):
 * bytes go to lb_ureq_write_body, and while more than L7_BODY_HIGH waits
 * upstream the client side is paused (its HTTP/2 window stays shut, its
 * HTTP/1.1 connection unread) until lb says the body drained. A body is
 * never retried once a byte of it has left (lb's rule for mutating requests).
 *
 * Request states: UPSTREAM (waiting for the response head) -> STREAMING ->
 * (ENDING) -> DONE. A client that goes away cancels the upstream stream. When
 * the worker drains, a watch that is streaming ends at its next event boundary
 * (ENDING until then), as the apiserver ends its watches when it shuts down; one
 * answered during the drain ends after its first event.
 *
 * Short requests (not watches, exec, logs, ...) have a deadline like the
 * apiserver's --request-timeout, shortened by their timeout parameter, plus
 * one second so that the apiserver, which applies the same deadline, answers
 * first. Past it the client gets the apiserver's 504 Timeout Status, or a
 * reset stream when the response had begun.
 */
#include "proxy/l7.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "proxy/l7_cache.h"
#include "proxy/reqinfo.h"

#define L7_LOW_WATER         (64 * 1024)
#define L7_DEADLINE_GRACE_MS 1000
/* Body bytes waiting upstream above which the client is paused (> LB_UREQ_BODY_LOW_WATER). */
#define L7_BODY_HIGH (64 * 1024)

enum l7_state {
    L7_UPSTREAM,
    L7_STREAMING,
    L7_ENDING, /* a watch, draining: relayed up to its next event boundary, then ended */
    L7_DONE,
};

static const char *const l7_state_name[] = {"upstream", "streaming", "ending", "done"};

struct l7_req {
    enum l7_state state;
    struct px_request *preq;
    struct lb_ureq *ureq;
    struct lb *lb; /* the pool's lb lives until the upstream request ends */
    struct px_worker *worker;
    size_t unconsumed; /* handed to the client side, not yet acknowledged upstream */
    bool body_paused;  /* the client's body waits for the upstream to drain */
    uint64_t started_us;
    int code;              /* the status the client got */
    struct event deadline; /* short requests only (armed); in place: no allocation per request */
    struct kf_list watch_link;     /* watches: in worker->watches */
    struct px_watch_frames frames; /* watches: where events end */
    struct px_reqinfo info;
};

static void l7_set_state(struct l7_req *r, enum l7_state next)
{
    KF_BUG_ON(r->state == L7_DONE);
    KF_BUG_ON(next == L7_UPSTREAM);
    kf_debug("l7", "%s %s: %s -> %s", px_request_method(r->preq), px_request_path(r->preq),
             l7_state_name[r->state], l7_state_name[next]);
    r->state = next;
}

/* ---- errors the apiserver would answer with a Status ------------------------------ */

static void json_escape(char *out, size_t size, const char *s)
{
    size_t o = 0;

    for (; *s && o + 7 < size; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            o += (size_t)snprintf(out + o, size - o, "\\%c", c);
        else if (c < 0x20 || c == '<' || c == '>' || c == '&')
            o += (size_t)snprintf(out + o, size - o, "\\u%04x", c);
        else
            out[o++] = (char)c;
    }
    out[o] = '\0';
}

/* A failure Status as the apiserver encodes it (compact JSON, Go field order). */
static void reply_status(struct px_request *preq, int code, const char *reason, const char *message)
{
    char msg[512], body[768];
    int n;

    json_escape(msg, sizeof(msg), message);
    n = snprintf(
        body, sizeof(body),
        "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","
        "\"message\":\"%s\",\"reason\":\"%s\",\"code\":%d}\n",
        msg, reason, code);
    if (code == 429 || code == 503)
        px_response_header(preq, "Retry-After", "1");
    px_response_header(preq, "Cache-Control", "no-cache, private");
    px_response_simple(preq, code, "application/json", body, (size_t)n);
}

/* ---- request lifecycle ------------------------------------------------------------------ */

/* Before the response's last byte: a client that then reads /metrics finds the request. */
static void l7_count(struct l7_req *r, int code)
{
    px_l7_count(r->worker, &r->info, code, kf_now_us() - r->started_us);
}

static void l7_free(struct l7_req *r)
{
    kf_list_remove(&r->watch_link);
    if (evtimer_initialized(&r->deadline))
        evtimer_del(&r->deadline);
    if (r->lb)
        lb_release(r->lb);
    free(r);
}

static void on_client_drain(struct px_request *preq, void *arg)
{
    struct l7_req *r = arg;

    (void)preq;
    if (r->ureq && r->unconsumed) {
        lb_ureq_consume(r->ureq, r->unconsumed);
        r->unconsumed = 0;
    }
}

static void on_client_close(struct px_request *preq, void *arg)
{
    struct l7_req *r = arg;

    if (r->ureq) {
        lb_ureq_cancel(r->ureq);
        r->ureq = NULL;
    }
    l7_set_state(r, L7_DONE);
    l7_count(r, 499);      /* nginx's "client closed request" */
    px_response_end(preq); /* releases the request; the client is gone */
    l7_free(r);
}

/* Content-Length goes through: the body is forwarded byte for byte, and clients see the
 * apiserver's framing (an aborted upstream stream aborts the client's). */
static void on_up_headers(struct lb_ureq *ureq, int status, const struct lb_uhdr *h, size_t n,
                          void *arg)
{
    struct l7_req *r = arg;

    (void)ureq;
    /* by reference: the fields live in ureq until it ends, after px_response_start below;
     * hop-by-hop fields are dropped there */
    for (size_t i = 0; i < n; i++) {
        px_response_header_ref(r->preq, h[i].name, h[i].name_len, h[i].value, h[i].value_len);
        if (!kf_list_empty(&r->watch_link) && status == 200 && h[i].name_len == 12 &&
            strncasecmp(h[i].name, "content-type", 12) == 0)
            px_watch_frames_init(&r->frames, h[i].value, h[i].value_len);
    }
    l7_set_state(r, L7_STREAMING);
    px_response_start(r->preq, status);
    r->code = status;
    /* answered while draining: it ends after its first event */
    if (r->frames.framing != PX_FRAMING_NONE &&
        atomic_load_explicit(&r->worker->daemon->draining, memory_order_relaxed))
        l7_set_state(r, L7_ENDING);
}

static void watch_end(struct l7_req *r);

static void on_up_data(struct lb_ureq *ureq, const uint8_t *data, size_t len, void *arg)
{
    struct l7_req *r = arg;

    if (r->frames.framing != PX_FRAMING_NONE) {
        size_t n = px_watch_frames_advance(&r->frames, data, len, r->state == L7_ENDING);
        if (r->state == L7_ENDING && r->frames.at_boundary) {
            if (px_response_write(r->preq, data, n) == 0)
                watch_end(r); /* the rest is the next event's: not sent */
            return;
        }
    }
    if (px_response_write(r->preq, data, len) < 0)
        return; /* the client is gone; on_close cancels */
    if (px_response_pending(r->preq) <= L7_LOW_WATER)
        lb_ureq_consume(ureq, len);
    else
        r->unconsumed += len; /* acknowledged when the client drains */
}

static void on_up_end(struct lb_ureq *ureq, int error, void *arg)
{
    struct l7_req *r = arg;

    (void)ureq;
    r->ureq = NULL;
    if (r->state == L7_STREAMING || r->state == L7_ENDING) {
        l7_count(r, r->code);
        if (error == 0)
            px_response_end(r->preq);
        else
            px_response_abort(r->preq); /* the client must not take a cut stream as whole */
    } else {
        char msg[160];
        snprintf(msg, sizeof(msg), "no apiserver answered: %s", strerror(-error));
        l7_count(r, 503);
        reply_status(r->preq, 503, "ServiceUnavailable", msg);
    }
    l7_set_state(r, L7_DONE);
    l7_free(r);
}

/* A draining watch reached an event boundary: its stream ends there, cleanly. */
static void watch_end(struct l7_req *r)
{
    if (r->ureq) {
        lb_ureq_cancel(r->ureq);
        r->ureq = NULL;
    }
    px_request_on_close(r->preq, NULL, NULL);
    px_request_on_drain(r->preq, NULL, NULL);
    l7_count(r, r->code);
    px_response_end(r->preq);
    l7_set_state(r, L7_DONE);
    l7_free(r);
}

void px_l7_end_watches(struct px_worker *w)
{
    struct kf_list *pos, *tmp;

    kf_list_for_each_safe(pos, tmp, &w->watches)
    {
        struct l7_req *r = kf_container_of(pos, struct l7_req, watch_link);
        if (r->state != L7_STREAMING || r->frames.framing == PX_FRAMING_NONE)
            continue; /* not answered yet, or not followed: the drain deadline ends it */
        if (r->frames.at_boundary)
            watch_end(r);
        else
            l7_set_state(r, L7_ENDING);
    }
}

/* The apiserver's own answer when its request deadline passes (NewTimeoutError). */
static void reply_timeout(struct px_request *preq)
{
    static const char body[] =
        "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","
        "\"message\":\"Timeout: request did not complete within requested timeout - context "
        "deadline exceeded\",\"reason\":\"Timeout\",\"details\":{},\"code\":504}\n";

    px_response_header(preq, "Cache-Control", "no-cache, private");
    px_response_simple(preq, 504, "application/json", body, sizeof(body) - 1);
}

/*
 * The exchange cannot go on: the upstream request goes, the client gets an
 * error (504: the apiserver's timeout Status), or a reset once answered.
 */
static void l7_fail(struct l7_req *r, int code, const char *reason, const char *message)
{
    if (r->ureq) {
        lb_ureq_cancel(r->ureq);
        r->ureq = NULL;
    }
    px_request_on_close(r->preq, NULL, NULL);
    px_request_on_drain(r->preq, NULL, NULL);
    bool answered = r->state == L7_STREAMING || r->state == L7_ENDING;
    if (answered)
        code = r->code; /* what the client was told */
    l7_count(r, code);
    if (answered)
        px_response_abort(r->preq); /* the client must not take a cut stream as whole */
    else if (code == 504)
        reply_timeout(r->preq);
    else
        reply_status(r->preq, code, reason, message);
    l7_set_state(r, L7_DONE);
    l7_free(r);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct l7_req *r = arg;

    (void)fd, (void)what;
    kf_info("l7", "%s %s: no complete answer within the request deadline", r->info.verb,
            r->info.resource[0] ? r->info.resource : px_request_path(r->preq));
    l7_fail(r, 504, NULL, NULL);
}

/* Arm the deadline of a short request: min(timeout parameter, timeouts.request) + grace. */
static void arm_deadline(struct l7_req *r, const struct config *cfg)
{
    uint32_t ms = cfg->timeouts.request_ms, asked;
    const char *param = px_request_query(r->preq, "timeout");

    if (!ms || px_reqinfo_long_running(&r->info))
        return;
    if (param && config_parse_duration_ms(param, &asked) == 0 && asked > 0 && asked < ms)
        ms = asked; /* a malformed one is the apiserver's to refuse (400) */
    ms += L7_DEADLINE_GRACE_MS;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_assign(&r->deadline, r->worker->base, on_deadline, r);
    evtimer_add(&r->deadline, &tv);
}

/* ---- the request body ---------------------------------------------------------------------- */

static int on_client_body(struct px_request *preq, const void *data, size_t len, void *arg)
{
    struct l7_req *r = arg;

    (void)preq;
    if (lb_ureq_write_body(r->ureq, data, len) < 0) {
        l7_fail(r, 503, "ServiceUnavailable", "out of memory");
        return KF_AGAIN; /* nothing more is delivered to an ended request */
    }
    if (lb_ureq_body_pending(r->ureq) <= L7_BODY_HIGH)
        return 0;
    r->body_paused = true;
    return KF_AGAIN;
}

static void on_client_body_end(struct px_request *preq, int error, void *arg)
{
    struct l7_req *r = arg;

    (void)preq;
    if (error == 0)
        lb_ureq_end_body(r->ureq);
    else if (error == -EMSGSIZE)
        l7_fail(r, 413, "RequestEntityTooLarge", "the request body is too large");
    else if (error == -ETIMEDOUT)
        l7_fail(r, 408, "Timeout", "the request body did not arrive in time");
    else if (error == -EBADMSG)
        l7_fail(r, 400, "BadRequest", "malformed request body");
    else
        l7_fail(r, 503, "ServiceUnavailable", strerror(-error));
}

static void on_up_body_drain(struct lb_ureq *ureq, void *arg)
{
    struct l7_req *r = arg;

    (void)ureq;
    if (r->body_paused) {
        r->body_paused = false;
        px_request_body_resume(r->preq);
    }
}

/* A streamed body keeps the client's Content-Length (lb checks it), as the apiserver sees it. */
static size_t stream_length(struct px_request *preq, struct lb_uhdr *out)
{
    const char *cl = px_request_header(preq, "content-length");

    if (!cl)
        return 0;
    *out = (struct lb_uhdr){"content-length", 14, cl, strlen(cl)};
    return 1;
}

bool px_l7_stream_body(const struct px_request *req, void *arg)
{
    (void)arg;
    /* forwarded bodies stream (the cache answers requests whose body it ignores); what
     * follows an upgrade's head is the tunnel's, not a body */
    return !px_request_is_upgrade(req);
}

static const struct lb_ureq_callbacks upstream_cbs = {
    .on_headers = on_up_headers,
    .on_data = on_up_data,
    .on_end = on_up_end,
};

/* ---- the handler -------------------------------------------------------------------------- */

void px_l7_reject(struct px_worker *w, struct px_request *preq, const struct px_reqinfo *info,
                  int code, const char *reason, const char *message)
{
    struct px_reqinfo copy = *info;

    reply_status(preq, code, reason, message);
    px_l7_count(w, &copy, code, 0);
}

void px_l7_handle(struct px_request *preq, void *arg)
{
    struct px_frontend *fe = arg;
    struct px_worker *w = px_worker_self();
    struct px_reqinfo info;

    px_reqinfo_parse(px_request_method(preq), px_request_path(preq),
                     px_reqinfo_watch_param(px_request_query(preq, "watch")), &info);
    if (w && px_l7_cache_try(w, fe, preq, &info))
        return;
    px_l7_forward(w, fe, preq, &info);
}

void px_l7_forward_as(struct px_worker *w, struct px_frontend *fe, struct px_request *preq,
                      const struct px_reqinfo *pinfo, const struct px_user *reviewed)
{
    struct lb_uhdr *headers;
    ssize_t n_headers;
    struct lb_ureq_spec spec = {0};
    struct px_reqinfo info = *pinfo;
    const struct px_binding *b = w ? px_worker_binding(w, fe) : NULL;
    struct lb_upstream *up = b ? px_worker_upstream(w, b) : NULL;
    int rc;

    if (!up) {
        px_l7_reject(w, preq, &info, 503, "ServiceUnavailable",
                     "kfront has no upstream for this frontend");
        return;
    }
    if (px_request_is_upgrade(preq) || px_request_connect_protocol(preq)) {
        px_l7_upgrade(w, b, preq, &info, reviewed); /* exec, attach, port-forward */
        return;
    }
    struct l7_req *r = calloc(1, sizeof(*r));
    if (!r) {
        px_l7_reject(w, preq, &info, 503, "ServiceUnavailable", "out of memory");
        return;
    }
    r->state = L7_UPSTREAM;
    r->preq = preq;
    r->worker = w;
    r->info = info;
    kf_list_init(&r->watch_link);
    if (strcmp(info.verb, "watch") == 0)
        kf_list_insert_tail(&w->watches, &r->watch_link);
    r->started_us = kf_now_us();
    n_headers = px_l7_identity_headers(preq, w->gen->cfg, b->backend, reviewed, 1, &headers);
    if (n_headers < 0) {
        l7_free(r);
        px_l7_reject(w, preq, &info, 503, "ServiceUnavailable", "out of memory");
        return;
    }
    spec.n_headers = (size_t)n_headers;
    spec.headers = headers;
    spec.method = px_request_method(preq);
    spec.path = px_l7_target(preq);
    spec.body_streaming = px_request_body_streamed(preq);
    if (spec.body_streaming)
        spec.n_headers += stream_length(preq, &headers[spec.n_headers]);
    else
        spec.body = px_request_body(preq, &spec.body_len);
    spec.body_by_reference = true; /* the request (and its body) outlives the upstream stream */
    spec.idempotent = strcmp(spec.method, "GET") == 0 || strcmp(spec.method, "HEAD") == 0;
    r->lb = w->gen->lb;
    lb_retain(r->lb);
    px_request_on_close(preq, on_client_close, r);
    px_request_on_drain(preq, on_client_drain, r);
    rc = lb_ureq_start(up, b->pool, &spec, &upstream_cbs, r, &r->ureq);
    if (rc < 0) {
        px_request_on_close(preq, NULL, NULL);
        px_request_on_drain(preq, NULL, NULL);
        l7_count(r, 503);
        reply_status(preq, 503, "ServiceUnavailable",
                     rc == -EHOSTUNREACH ? "no apiserver is available" : strerror(-rc));
        l7_free(r);
        return;
    }
    if (spec.body_streaming) {
        lb_ureq_on_body_drain(r->ureq, on_up_body_drain);
        px_request_body_stream(preq, on_client_body, on_client_body_end, r);
    }
    arm_deadline(r, w->gen->cfg);
}
