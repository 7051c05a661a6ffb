/*
 * The response half of px_request: checks common to both protocols, then the
 * connection's ops do the framing.
 */
#include "proxy/http/http_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const struct {
    int status;
    const char *reason;
} reasons[] = {
    {100, "Continue"},
    {101, "Switching Protocols"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {206, "Partial Content"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {411, "Length Required"},
    {413, "Request Entity Too Large"},
    {415, "Unsupported Media Type"},
    {417, "Expectation Failed"},
    {422, "Unprocessable Entity"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
};

const char *px_status_reason(int status)
{
    for (size_t i = 0; i < KF_ARRAY_SIZE(reasons); i++)
        if (reasons[i].status == status)
            return reasons[i].reason;
    return "Unknown";
}

/* The Kubernetes reason for the statuses the server generates itself. */
static const char *status_k8s_reason(int status)
{
    switch (status) {
    case 400:
        return "BadRequest";
    case 408:
        return "Timeout";
    case 413:
        return "RequestEntityTooLarge";
    case 503:
        return "ServiceUnavailable";
    default:
        return "InternalError";
    }
}

const char *px_status_body(struct kf_arena *a, int status, const char *message, size_t *len)
{
    const char *s = kf_arena_sprintf(a,
                                     "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},"
                                     "\"status\":\"Failure\",\"message\":\"%s\",\"reason\":\"%s\","
                                     "\"code\":%d}\n",
                                     message, status_k8s_reason(status), status);

    *len = s ? strlen(s) : 0;
    return s ? s : "";
}

const char *px_http_date(void)
{
    static _Thread_local time_t cached;
    static _Thread_local char buf[40];
    time_t now = time(NULL);

    if (now != cached) {
        struct tm tm;

        gmtime_r(&now, &tm);
        strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        cached = now;
    }
    return buf;
}

/* RFC 9110 tchar: ALPHA, DIGIT and !#$%&'*+-.^_`|~ (a byte table: names are checked per byte) */
static const bool tchar_table[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 1, 0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0,
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0,
    /* 0x80..0xff: none */
};

static inline bool is_tchar(unsigned char c)
{
    return tchar_table[c];
}

bool px_is_tchar(unsigned char c)
{
    return is_tchar(c);
}

/* A field value has no control byte but HTAB (RFC 9110 5.5). Eight bytes at a time: a word
 * with no byte below 0x20 and none equal to 0x7f passes without a byte loop. */
static bool value_valid(const unsigned char *p, size_t len)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    size_t i = 0;

    for (; i + 8 <= len; i += 8) {
        uint64_t w, del;
        memcpy(&w, p + i, 8);
        del = w ^ (0x7f * ones);
        if (!(((w - 0x20 * ones) | (del - ones)) & ~w & highs))
            continue;
        break; /* something to look at byte by byte (perhaps only a tab) */
    }
    for (; i < len; i++)
        if ((p[i] < 0x20 && p[i] != '\t') || p[i] == 0x7f)
            return false;
    return true;
}

static bool field_valid(const char *name, size_t nlen, const char *value, size_t vlen)
{
    if (!nlen)
        return false;
    for (size_t i = 0; i < nlen; i++)
        if (!is_tchar((unsigned char)name[i]))
            return false;
    return value_valid((const unsigned char *)value, vlen);
}

bool px_header_valid(const char *name, const char *value)
{
    return field_valid(name, strlen(name), value, strlen(value));
}

static bool is_hop(const char *name, size_t len)
{
    static const struct kf_token hop[] = {KF_TOKEN("connection"),
                                          KF_TOKEN("keep-alive"),
                                          KF_TOKEN("proxy-connection"),
                                          KF_TOKEN("transfer-encoding"),
                                          KF_TOKEN("te"),
                                          KF_TOKEN("upgrade"),
                                          KF_TOKEN("trailer")};

    return kf_token_in(name, len, hop, KF_ARRAY_SIZE(hop));
}

bool px_header_is_hop(const char *name)
{
    return is_hop(name, strlen(name));
}

/* Strict decimal, as Content-Length must be. */
static int parse_length(const char *s, size_t len, int64_t *out)
{
    int64_t v = 0;

    if (!len)
        return -EINVAL;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9' || v > (INT64_MAX - 9) / 10)
            return -EINVAL;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static int response_field(struct px_request *req, const char *name, size_t nlen, const char *value,
                          size_t vlen, bool copy)
{
    static const struct kf_token content_length[] = {KF_TOKEN("content-length")},
                                 upgrade[] = {KF_TOKEN("upgrade")};

    if (req->state == PX_REQ_CLOSED)
        return -EPIPE;
    if (req->state != PX_REQ_HANDLER || !field_valid(name, nlen, value, vlen))
        return -EINVAL;
    if (kf_token_in(name, nlen, content_length, 1))
        return parse_length(value, vlen, &req->resp_length);
    if (is_hop(name, nlen) && !(req->is_upgrade && kf_token_in(name, nlen, upgrade, 1)))
        return 0;
    if (!copy)
        return px_headers_add_ref(req->arena, &req->resp_headers, name, nlen, value, vlen);
    return px_headers_add(req->arena, &req->resp_headers, name, nlen, value, vlen, false);
}

int px_response_header_n(struct px_request *req, const char *name, size_t nlen, const char *value,
                         size_t vlen)
{
    return response_field(req, name, nlen, value, vlen, true);
}

int px_response_header_ref(struct px_request *req, const char *name, size_t nlen, const char *value,
                           size_t vlen)
{
    return response_field(req, name, nlen, value, vlen, false);
}

int px_response_header(struct px_request *req, const char *name, const char *value)
{
    return response_field(req, name, strlen(name), value, strlen(value), true);
}

static int response_start(struct px_request *req, int status, bool no_body)
{
    if (req->state == PX_REQ_CLOSED)
        return -EPIPE;
    if (req->state != PX_REQ_HANDLER || status < 200 || status > 999)
        return -EINVAL;
    req->status = status;
    req->no_body = req->head_only || status == 204 || status == 304;
    px_request_set_state(req, PX_REQ_STREAMING);
    return req->conn->ops->resp_start(req, no_body || req->no_body);
}

int px_response_start(struct px_request *req, int status)
{
    return response_start(req, status, req->resp_length == 0);
}

/* Common checks of both write calls; on failure the caller frees the data. */
static int write_check(struct px_request *req, size_t len)
{
    if (req->state == PX_REQ_CLOSED)
        return -EPIPE;
    if (req->state != PX_REQ_STREAMING)
        return -EINVAL;
    if (req->resp_length >= 0 && req->resp_sent + len > (uint64_t)req->resp_length)
        return -EINVAL;
    return 0;
}

/* Both write calls: checks, then the protocol queues (copy) or references the data. */
static int response_queue(struct px_request *req, const void *data, size_t len, bool copy,
                          px_free_cb cleanup, void *arg)
{
    int rc = write_check(req, len);

    if (rc || len == 0 || req->no_body) {
        if (cleanup)
            cleanup(data, len, arg);
        return rc;
    }
    rc = req->conn->ops->resp_write(req, data, len, copy, cleanup, arg);
    if (rc == 0) {
        req->resp_sent += len;
        px_request_note_queued(req);
    }
    return rc;
}

int px_response_write(struct px_request *req, const void *data, size_t len)
{
    return response_queue(req, data, len, true, NULL, NULL);
}

int px_response_write_ref(struct px_request *req, const void *data, size_t len, px_free_cb cleanup,
                          void *arg)
{
    return response_queue(req, data, len, false, cleanup, arg);
}

/* The handler lets go of req; it is freed if the transport is done too. */
static void handler_release(struct px_request *req)
{
    px_body_abandon(req); /* the handler wants no more of the body */
    req->handler_owned = false;
    px_request_maybe_free(req);
}

int px_response_end(struct px_request *req)
{
    int rc;

    if (req->state == PX_REQ_CLOSED) {
        handler_release(req);
        return -EPIPE;
    }
    if (req->state == PX_REQ_HANDLER) {
        kf_warn(PX_MOD, "conn %llu: %s %s ended without a response, sending 500",
                (unsigned long long)req->conn->id, req->method, req->path);
        req->resp_length = 0;
        response_start(req, 500, true);
    }
    if (req->resp_length >= 0 && !req->no_body && req->resp_sent != (uint64_t)req->resp_length) {
        /* Fewer bytes than announced: the framing is broken, the client must see an error. */
        px_request_set_state(req, PX_REQ_ENDED);
        req->conn->ops->resp_abort(req);
        handler_release(req);
        return -EINVAL;
    }
    px_request_set_state(req, PX_REQ_ENDED);
    rc = req->conn->ops->resp_end(req);
    handler_release(req);
    return rc;
}

void px_response_abort(struct px_request *req)
{
    if (req->state == PX_REQ_HANDLER || req->state == PX_REQ_STREAMING) {
        px_request_set_state(req, PX_REQ_ENDED);
        req->conn->ops->resp_abort(req);
    }
    handler_release(req);
}

int px_response_simple(struct px_request *req, int status, const char *content_type,
                       const void *body, size_t len)
{
    int rc = 0, end_rc;

    if (content_type)
        rc = px_response_header(req, "Content-Type", content_type);
    if (rc == 0) {
        req->resp_length = (int64_t)len;
        rc = response_start(req, status, len == 0);
    }
    if (rc == 0 && len)
        rc = px_response_write(req, body, len);
    end_rc = px_response_end(req); /* always releases; sends 500 if start failed */
    return rc ? rc : end_rc;
}

int px_request_upgrade(struct px_request *req, px_upgrade_cb cb, void *arg)
{
    int rc;

    if (req->state == PX_REQ_CLOSED) {
        handler_release(req);
        return -EPIPE;
    }
    if (!req->is_upgrade || req->state != PX_REQ_HANDLER || !req->conn->ops->resp_upgrade)
        return -EINVAL;
    req->status = 101;
    req->no_body = true;
    px_request_set_state(req, PX_REQ_STREAMING);
    px_request_set_state(req, PX_REQ_ENDED);
    rc = req->conn->ops->resp_upgrade(req, cb, arg);
    handler_release(req);
    return rc;
}

size_t px_response_pending(const struct px_request *req)
{
    if (req->state != PX_REQ_STREAMING && req->state != PX_REQ_ENDED)
        return 0;
    return req->conn->ops->resp_pending(req);
}

bool px_response_started(const struct px_request *req)
{
    return req->status != 0;
}
