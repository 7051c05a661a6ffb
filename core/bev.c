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
 * record and write(2). An HTTP/2 response is at least two chains (frame
 * headers and HEADERS copied, the DATA payload moved in by reference), so a
 * burst of them went out as two records and two writes per response, one per
 * piece. The output's leading pieces smaller than a record are therefore
 * made one chain first (coalesce_records): OpenSSL then cuts it into full
 * 16 KiB records. The copy is cheap next to what it saves (a record's
 * encryption setup, a write(2) and the peer's read of it); the encryption
 * copies the data into the record anyway.
 */
#include "core/core.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_struct.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/ssl.h>

/* The largest TLS record's payload. (libevent hands SSL_write whole chains, and OpenSSL cuts
 * what it is given into records of at most this much, each its own write(2).) */
#define TLS_RECORD_MAX 16384
/* At most this much is made contiguous at a time: with libevent's chain header, one 256 KiB
 * allocation. It bounds what a connection whose peer reads slowly holds as a private copy
 * (cached bytes are otherwise shared by reference). */
#define COALESCE_MAX    (256 * 1024 - 64)
#define COALESCE_CHAINS 256

/*
 * The leading chains smaller than a record are made one, when they would take more records
 * than their bytes need. A chain of a record or more (bulk data, an output coalesced before)
 * fills records by itself and ends the run, so it is never copied.
 */
static void coalesce_records(struct evbuffer *out)
{
    struct evbuffer_iovec v[COALESCE_CHAINS];
    int n = evbuffer_peek(out, COALESCE_MAX, NULL, v, COALESCE_CHAINS);
    size_t run = 0;
    int small = 0;

    if (n > COALESCE_CHAINS)
        n = COALESCE_CHAINS;
    while (small < n && v[small].iov_len < TLS_RECORD_MAX && run + v[small].iov_len <= COALESCE_MAX)
        run += v[small++].iov_len;
    if (small > 1 && (size_t)small > (run + TLS_RECORD_MAX - 1) / TLS_RECORD_MAX)
        evbuffer_pullup(out, (ev_ssize_t)run);
}

void kf_bev_send_now(struct bufferevent *bev, bool tls)
{
    struct evbuffer *out = bufferevent_get_output(bev);
    size_t n = evbuffer_get_length(out);

    if (n == 0)
        return;
    if (tls && n > 1)
        coalesce_records(out);
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
