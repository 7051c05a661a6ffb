/*
 * Request bodies, protocol-neutral: the byte count against max_body_bytes,
 * the buffer of a buffered body, and the streamed-body state machine that
 * hands bytes to the handler while it takes them. The transports (h1.c,
 * h2.c) append what they receive and call px_body_deliver(); what they read
 * from the client next depends on what was delivered, which is how the flow
 * control reaches the client.
 */
#include "proxy/http/http_internal.h"

#include <errno.h>

#include <event2/buffer.h>

const char *const px_body_state_name[] = {
    [PX_BODY_NONE] = "none",     [PX_BODY_OPEN] = "open", [PX_BODY_END] = "end",
    [PX_BODY_FAILED] = "failed", [PX_BODY_DONE] = "done",
};

/* Bit n of body_allowed[from] set means from -> n is legal. */
static const unsigned body_allowed[] = {
    [PX_BODY_NONE] = 1u << PX_BODY_OPEN,
    [PX_BODY_OPEN] = 1u << PX_BODY_END | 1u << PX_BODY_FAILED | 1u << PX_BODY_DONE,
    [PX_BODY_END] = 1u << PX_BODY_DONE,
    [PX_BODY_FAILED] = 1u << PX_BODY_DONE,
    [PX_BODY_DONE] = 0,
};

static void body_set_state(struct px_request *req, enum px_body_state next)
{
    KF_BUG_ON(!(body_allowed[req->body_state] & (1u << next)));
    kf_debug(PX_MOD, "conn %llu %s %s: body %s -> %s", (unsigned long long)req->conn->id,
             req->method, req->path, px_body_state_name[req->body_state], px_body_state_name[next]);
    req->body_state = next;
}

bool px_body_choose(struct px_request *req)
{
    const struct px_server_config *cfg = &req->conn->server->cfg;

    if (!cfg->stream_body || !cfg->stream_body(req, cfg->handler_arg))
        return false;
    body_set_state(req, PX_BODY_OPEN);
    return true;
}

int px_body_append(struct px_request *req, const void *data, size_t len)
{
    if (req->body_received + len > req->conn->server->cfg.max_body_bytes && !req->connect_protocol)
        return -EMSGSIZE; /* a tunnel's bytes are not a body */
    if (!req->body && !(req->body = evbuffer_new()))
        return -ENOMEM;
    if (evbuffer_add(req->body, data, len) < 0)
        return -ENOMEM;
    req->body_received += len;
    return 0;
}

void px_body_finish(struct px_request *req, int error)
{
    if (req->body_state != PX_BODY_OPEN)
        return;
    req->body_error = error;
    body_set_state(req, error ? PX_BODY_FAILED : PX_BODY_END);
    if (error && req->body) /* what was not delivered will not be: the body is cut */
        evbuffer_drain(req->body, evbuffer_get_length(req->body));
}

bool px_body_open(const struct px_request *req)
{
    return req->body_state == PX_BODY_OPEN;
}

size_t px_body_buffered(const struct px_request *req)
{
    return req->body ? evbuffer_get_length(req->body) : 0;
}

void px_body_abandon(struct px_request *req)
{
    if (req->body_state == PX_BODY_NONE || req->body_state == PX_BODY_DONE)
        return;
    body_set_state(req, PX_BODY_DONE);
    req->on_body = NULL;
    req->on_body_end = NULL;
    if (req->body)
        evbuffer_drain(req->body, evbuffer_get_length(req->body));
}

/* Bytes while the receiver takes them; returns how many it got. */
static size_t deliver_bytes(struct px_request *req)
{
    struct evbuffer_iovec v;
    size_t total = 0;

    while ((req->body_state == PX_BODY_OPEN || req->body_state == PX_BODY_END) &&
           !req->body_paused && req->on_body && req->body &&
           evbuffer_peek(req->body, -1, NULL, &v, 1) == 1 && v.iov_len) {
        int rc = req->on_body(req, v.iov_base, v.iov_len, req->body_arg);

        /* an abandon inside the callback emptied the buffer already: drain clamps */
        evbuffer_drain(req->body, v.iov_len);
        total += v.iov_len;
        if (rc == KF_AGAIN)
            req->body_paused = true;
    }
    return total;
}

size_t px_body_deliver(struct px_request *req)
{
    size_t total;
    bool ended;

    if (!req->on_body)
        return 0;
    px_request_hold(req);
    total = deliver_bytes(req);
    ended = req->body_state == PX_BODY_FAILED ||
            (req->body_state == PX_BODY_END && px_body_buffered(req) == 0);
    if (ended && req->on_body_end) {
        px_body_end_cb cb = req->on_body_end;

        body_set_state(req, PX_BODY_DONE);
        req->on_body = NULL;
        req->on_body_end = NULL;
        cb(req, req->body_error, req->body_arg);
    }
    px_request_put(req);
    return total;
}

/* ---- public ------------------------------------------------------------------------ */

bool px_request_body_streamed(const struct px_request *req)
{
    return req->body_state != PX_BODY_NONE;
}

int px_request_body_stream(struct px_request *req, px_body_data_cb on_data, px_body_end_cb on_end,
                           void *arg)
{
    if (!on_data || !on_end || req->body_state == PX_BODY_NONE || req->on_body ||
        !req->handler_owned)
        return -EINVAL;
    if (req->body_state == PX_BODY_DONE)
        return 0; /* the client is gone: on_close tells the handler */
    req->on_body = on_data;
    req->on_body_end = on_end;
    req->body_arg = arg;
    req->conn->ops->body_kick(req);
    return 0;
}

void px_request_body_pause(struct px_request *req)
{
    req->body_paused = true;
}

void px_request_body_resume(struct px_request *req)
{
    if (!req->body_paused)
        return;
    req->body_paused = false;
    if (req->on_body && req->body_state != PX_BODY_DONE && req->state != PX_REQ_CLOSED)
        req->conn->ops->body_kick(req);
}
