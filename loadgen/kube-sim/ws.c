/*
 * WebSocket (RFC 6455) server side, shared by exec (the channel protocol)
 * and port-forward (SPDY tunnelled in binary messages): the handshake answer,
 * frames out (unmasked, as a server sends them) and frames in (masked, as a
 * client must send them), with fragmented messages reassembled up to
 * KS_WS_MAX_MESSAGE bytes.
 */
#include "loadgen/kube-sim/kube_sim.h"
#include "proxy/http/http.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

void ks_ws_init(struct ks_ws *w)
{
    ks_sb_init(&w->msg, 256);
    w->msg_op = 0;
}

void ks_ws_free(struct ks_ws *w)
{
    ks_sb_free(&w->msg);
}

void ks_ws_frame(struct evbuffer *out, int op, int channel, const void *data, size_t len)
{
    size_t total = len + (channel >= 0);
    uint8_t h[10];
    size_t n = 2;

    h[0] = (uint8_t)(0x80 | op);
    if (total < 126) {
        h[1] = (uint8_t)total;
    } else if (total <= 0xffff) {
        h[1] = 126;
        h[2] = (uint8_t)(total >> 8);
        h[3] = (uint8_t)total;
        n = 4;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (uint8_t)((uint64_t)total >> (56 - 8 * i));
        n = 10;
    }
    evbuffer_add(out, h, n);
    if (channel >= 0) {
        uint8_t c = (uint8_t)channel;
        evbuffer_add(out, &c, 1);
    }
    evbuffer_add(out, data, len);
}

/* One complete frame's payload (unmasked). Returns false to stop reading. */
static bool on_frame(struct ks_ws *w, struct evbuffer *out, int op, bool fin, const uint8_t *p,
                     size_t len, ks_ws_message_cb cb, void *arg)
{
    switch (op) {
    case KS_WS_PING:
        ks_ws_frame(out, KS_WS_PONG, -1, p, len);
        return true;
    case KS_WS_PONG:
        return true;
    case KS_WS_CLOSE:
        cb(arg, KS_WS_CLOSE, p, len);
        return false; /* nothing may follow a close */
    case KS_WS_TEXT:
    case KS_WS_BINARY:
        w->msg.len = 0;
        w->msg_op = op;
        break;
    case KS_WS_CONT:
        if (!w->msg_op)
            return false;
        break;
    default:
        return false;
    }
    ks_sb_add(&w->msg, p, len);
    if (w->msg.err || w->msg.len > KS_WS_MAX_MESSAGE)
        return false;
    if (!fin)
        return true;
    int msg_op = w->msg_op;
    w->msg_op = 0;
    return cb(arg, msg_op, (const uint8_t *)w->msg.p, w->msg.len);
}

int ks_ws_read(struct ks_ws *w, struct evbuffer *in, struct evbuffer *out, ks_ws_message_cb cb,
               void *arg)
{
    size_t avail = evbuffer_get_length(in), hlen = 2;
    uint8_t h[14];
    uint64_t len;

    if (avail < 2)
        return 0;
    evbuffer_copyout(in, h, avail < sizeof(h) ? avail : sizeof(h));
    if (!(h[1] & 0x80) || (h[0] & 0x70))
        return -1; /* client frames must be masked; no extensions were agreed */
    len = h[1] & 0x7f;
    if (len == 126) {
        hlen = 4;
        len = avail >= 4 ? (uint64_t)h[2] << 8 | h[3] : 0;
    } else if (len == 127) {
        hlen = 10;
        len = 0;
        for (int i = 0; i < 8 && avail >= 10; i++)
            len = len << 8 | h[2 + i];
    }
    hlen += 4;
    if (avail < hlen)
        return 0;
    if (len > KS_WS_MAX_MESSAGE)
        return -1;
    if (avail < hlen + len)
        return 0;
    uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)(hlen + len)) + hlen;
    const uint8_t *mask = p - 4;
    for (size_t i = 0; i < len; i++)
        p[i] ^= mask[i & 3];
    bool go_on = on_frame(w, out, h[0] & 0x0f, h[0] & 0x80, p, (size_t)len, cb, arg);
    evbuffer_drain(in, hlen + len);
    return go_on ? 1 : -1;
}

/* ---- the handshake --------------------------------------------------------------------- */

bool ks_header_has_token(const char *value, const char *token)
{
    size_t n = strlen(token);

    for (const char *p = value; p && *p;) {
        p += strspn(p, " \t,");
        size_t len = strcspn(p, " \t,");
        if (len == n && strncasecmp(p, token, n) == 0)
            return true;
        p += len;
    }
    return false;
}

const char *ks_ws_accept(struct ks_req *r, const char *const *protos, size_t n)
{
    const char *upgrade = px_request_header(r->px, "upgrade");
    const char *key = px_request_header(r->px, "sec-websocket-key");
    const char *offered = px_request_header(r->px, "sec-websocket-protocol");
    const char *proto = NULL;
    char buf[128], accept[32];
    unsigned char digest[SHA_DIGEST_LENGTH];

    for (size_t i = 0; i < n && offered && !proto; i++)
        if (ks_header_has_token(offered, protos[i]))
            proto = protos[i];
    if (!px_request_is_upgrade(r->px) || !upgrade || strcasecmp(upgrade, "websocket") != 0 ||
        !key || strlen(key) > 64 || !proto)
        return NULL;
    int len = snprintf(buf, sizeof(buf), "%s" WS_GUID, key);
    SHA1((const unsigned char *)buf, (size_t)len, digest);
    EVP_EncodeBlock((unsigned char *)accept, digest, SHA_DIGEST_LENGTH);
    px_response_header(r->px, "Upgrade", "websocket");
    px_response_header(r->px, "Sec-WebSocket-Accept", accept);
    px_response_header(r->px, "Sec-WebSocket-Protocol", proto);
    return proto;
}
