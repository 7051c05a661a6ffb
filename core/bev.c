/*
 * Sending what a bufferevent holds within this loop iteration.
 *
 * libevent 2.1's TLS bufferevents do not write when data is queued: they add
 * the write event and write once epoll reports the socket writable, one loop
 * iteration later, then remove it again (two epoll_ctl calls per response on
 * every connection). Activating the already pending write event runs the
 * write now; emptying the buffer in the same iteration removes the event, so
 * the change list cancels both changes and no epoll_ctl is made.
 *
 * Over TLS each chain of the buffer is also its own SSL_write, i.e. its own
 * record and write(2): making the first 16 KiB contiguous sends a small
 * response (frame headers, HEADERS, DATA) as one record.
 */
#include "core/core.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_struct.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/ssl.h>

void kf_bev_send_now(struct bufferevent *bev, bool tls)
{
    struct evbuffer *out = bufferevent_get_output(bev);
    size_t n = evbuffer_get_length(out);

    if (n == 0)
        return;
    if (tls && n > 1 && n <= 16384)
        evbuffer_pullup(out, (ev_ssize_t)n);
    if (event_pending(&bev->ev_write, EV_WRITE, NULL))
        event_active(&bev->ev_write, EV_WRITE, 1);
}

void kf_bev_tls_read_ahead(struct bufferevent *bev)
{
    SSL *ssl = bufferevent_openssl_get_ssl(bev);

    if (ssl)
        SSL_set_read_ahead(ssl, 1);
}

void kf_bev_read_buffered(struct bufferevent *bev)
{
    SSL *ssl = bufferevent_openssl_get_ssl(bev);

    if (ssl && SSL_has_pending(ssl) && (bufferevent_get_enabled(bev) & EV_READ))
        event_active(&bev->ev_read, EV_READ, 1);
}
