/*
 * SPDY/3.1 framing, as kubectl's port-forward speaks it (spdystream): frame
 * parsing and writing, and the zlib-compressed name/value header blocks.
 *
 * Frames (all integers big-endian):
 *   control: 1 bit 1, 15 bits version (3), 16 bits type, 8 bits flags,
 *            24 bits length, then length bytes;
 *   data:    1 bit 0, 31 bits stream id, 8 bits flags (FIN = 1), 24 bits
 *            length, then the payload.
 * Header blocks are one zlib stream per direction for the whole connection,
 * primed with the SPDY/3 dictionary, each block ended with a sync flush;
 * decompressed, a block is a 32-bit pair count, then per pair a 32-bit
 * length and the name, a 32-bit length and the value (NUL separates
 * several values).
 *
 * Bad input never crashes: sizes are bounded (KS_SPDY_MAX_*) before any
 * copy, and every malformed frame is -EPROTO (a session error: the header
 * compression state cannot be trusted after one).
 */
#include "loadgen/kube-sim/kube_sim.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <zlib.h>

/* The SPDY/3 header dictionary (draft-mbelshe-httpbis-spdy-00, 2.6.10.1): these
 * words, each after its 32-bit length, then the tail as it is. Built once. */
static const char *const dict_words[] = {"options",
                                         "head",
                                         "post",
                                         "put",
                                         "delete",
                                         "trace",
                                         "accept",
                                         "accept-charset",
                                         "accept-encoding",
                                         "accept-language",
                                         "accept-ranges",
                                         "age",
                                         "allow",
                                         "authorization",
                                         "cache-control",
                                         "connection",
                                         "content-base",
                                         "content-encoding",
                                         "content-language",
                                         "content-length",
                                         "content-location",
                                         "content-md5",
                                         "content-range",
                                         "content-type",
                                         "date",
                                         "etag",
                                         "expect",
                                         "expires",
                                         "from",
                                         "host",
                                         "if-match",
                                         "if-modified-since",
                                         "if-none-match",
                                         "if-range",
                                         "if-unmodified-since",
                                         "last-modified",
                                         "location",
                                         "max-forwards",
                                         "pragma",
                                         "proxy-authenticate",
                                         "proxy-authorization",
                                         "range",
                                         "referer",
                                         "retry-after",
                                         "server",
                                         "te",
                                         "trailer",
                                         "transfer-encoding",
                                         "upgrade",
                                         "user-agent",
                                         "vary",
                                         "via",
                                         "warning",
                                         "www-authenticate",
                                         "method",
                                         "get",
                                         "status",
                                         "200 OK",
                                         "version",
                                         "HTTP/1.1",
                                         "url",
                                         "public",
                                         "set-cookie",
                                         "keep-alive",
                                         "origin"};
static const char dict_tail[] =
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 "
    "Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 "
    "Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, "
    "Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,application/xml,"
    "application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=gzip,deflate,sdch"
    "charset=utf-8charset=iso-8859-1,utf-,*,enq=0.";

static uint8_t dict[1536];
static size_t dict_len;

const uint8_t *ks_spdy_dictionary(size_t *len)
{
    if (!dict_len) {
        size_t n = 0;
        for (size_t i = 0; i < KF_ARRAY_SIZE(dict_words); i++) {
            size_t w = strlen(dict_words[i]);
            dict[n] = dict[n + 1] = dict[n + 2] = 0;
            dict[n + 3] = (uint8_t)w;
            memcpy(dict + n + 4, dict_words[i], w);
            n += 4 + w;
        }
        memcpy(dict + n, dict_tail, sizeof(dict_tail) - 1);
        dict_len = n + sizeof(dict_tail) - 1;
    }
    *len = dict_len;
    return dict;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* ---- codec state --------------------------------------------------------------------------- */

int ks_spdy_init(struct ks_spdy *s)
{
    size_t len;
    const uint8_t *d = ks_spdy_dictionary(&len);

    memset(s, 0, sizeof(*s));
    ks_sb_init(&s->block, 512);
    s->inflate = calloc(1, sizeof(z_stream));
    s->deflate = calloc(1, sizeof(z_stream));
    if (!s->inflate || !s->deflate || inflateInit(s->inflate) != Z_OK)
        goto fail;
    s->inflate_ok = true;
    if (deflateInit(s->deflate, Z_DEFAULT_COMPRESSION) != Z_OK)
        goto fail;
    s->deflate_ok = true;
    if (deflateSetDictionary(s->deflate, d, (uInt)len) != Z_OK)
        goto fail;
    return 0;
fail:
    ks_spdy_free(s);
    return -ENOMEM;
}

void ks_spdy_free(struct ks_spdy *s)
{
    if (s->inflate_ok)
        inflateEnd(s->inflate);
    if (s->deflate_ok)
        deflateEnd(s->deflate);
    s->inflate_ok = s->deflate_ok = false;
    free(s->inflate);
    free(s->deflate);
    s->inflate = s->deflate = NULL;
    ks_sb_free(&s->block);
}

/* ---- reading ----------------------------------------------------------------------------------
 */

int ks_spdy_frame_size(const uint8_t head[8], size_t *size)
{
    uint32_t len = get32(head + 4) & 0xffffff;
    bool control = head[0] & 0x80;

    if (len > (control ? KS_SPDY_MAX_CONTROL : KS_SPDY_MAX_DATA))
        return -EMSGSIZE;
    *size = 8 + (size_t)len;
    return 0;
}

/* Inflate one header block into s->block (the stream goes on across frames). */
static int inflate_block(struct ks_spdy *s, const uint8_t *p, size_t len)
{
    z_stream *z = s->inflate;
    uint8_t buf[4096];

    s->block.len = 0;
    z->next_in = (Bytef *)(uintptr_t)p;
    z->avail_in = (uInt)len;
    for (;;) {
        z->next_out = buf;
        z->avail_out = sizeof(buf);
        int rc = inflate(z, Z_SYNC_FLUSH);
        if (rc == Z_NEED_DICT) {
            size_t dlen;
            const uint8_t *d = ks_spdy_dictionary(&dlen);
            if (inflateSetDictionary(z, d, (uInt)dlen) != Z_OK)
                return -EPROTO;
            continue;
        }
        if (rc != Z_OK && rc != Z_BUF_ERROR && rc != Z_STREAM_END)
            return -EPROTO;
        ks_sb_add(&s->block, buf, sizeof(buf) - z->avail_out);
        if (s->block.err || s->block.len > KS_SPDY_MAX_HEADER_BLOCK)
            return -EPROTO;                          /* a decompression bomb, or no memory */
        if (z->avail_out != 0 || rc == Z_STREAM_END) /* all the input it could use */
            break;
    }
    return z->avail_in == 0 ? 0 : -EPROTO;
}

/* The decompressed block as name/value pairs pointing into s->block. */
static int parse_block(struct ks_spdy *s, struct ks_spdy_frame *f)
{
    const uint8_t *p = (const uint8_t *)s->block.p, *end = p + s->block.len;

    if (end - p < 4)
        return -EPROTO;
    uint32_t n = get32(p);
    p += 4;
    if (n > KS_SPDY_MAX_HEADERS)
        return -EPROTO;
    for (uint32_t i = 0; i < n; i++) {
        struct ks_spdy_header *h = &f->headers[i];
        for (int part = 0; part < 2; part++) {
            if (end - p < 4)
                return -EPROTO;
            uint32_t len = get32(p);
            p += 4;
            if ((size_t)(end - p) < len || (part == 0 && len == 0))
                return -EPROTO; /* past the block, or an empty name */
            if (part == 0)
                h->name = (const char *)p, h->name_len = len;
            else
                h->value = (const char *)p, h->value_len = len;
            p += len;
        }
    }
    f->n_headers = n;
    return p == end ? 0 : -EPROTO;
}

static int parse_headers(struct ks_spdy *s, struct ks_spdy_frame *f, const uint8_t *p, size_t len)
{
    int rc = inflate_block(s, p, len);
    return rc < 0 ? rc : parse_block(s, f);
}

/* The body of a control frame (p after the 8-byte head, len bytes). */
static int parse_control(struct ks_spdy *s, struct ks_spdy_frame *f, const uint8_t *p, size_t len)
{
    switch (f->type) {
    case KS_SPDY_SYN_STREAM:
        if (len < 10)
            return -EPROTO;
        f->stream_id = get32(p) & 0x7fffffff;
        f->value = get32(p + 4) & 0x7fffffff; /* associated-to stream */
        return f->stream_id ? parse_headers(s, f, p + 10, len - 10) : -EPROTO;
    case KS_SPDY_SYN_REPLY:
    case KS_SPDY_HEADERS:
        if (len < 4)
            return -EPROTO;
        f->stream_id = get32(p) & 0x7fffffff;
        return f->stream_id ? parse_headers(s, f, p + 4, len - 4) : -EPROTO;
    case KS_SPDY_RST_STREAM:
    case KS_SPDY_GOAWAY:
    case KS_SPDY_WINDOW_UPDATE:
        if (len != 8)
            return -EPROTO;
        f->stream_id = get32(p) & 0x7fffffff;
        f->value = get32(p + 4) & (f->type == KS_SPDY_WINDOW_UPDATE ? 0x7fffffff : 0xffffffff);
        return f->type != KS_SPDY_RST_STREAM || f->stream_id ? 0 : -EPROTO; /* 0: session */
    case KS_SPDY_PING:
        if (len != 4)
            return -EPROTO;
        f->value = get32(p);
        return 0;
    case KS_SPDY_SETTINGS:
        if (len < 4 || (uint64_t)get32(p) * 8 + 4 != len)
            return -EPROTO;
        f->value = get32(p); /* the number of entries, which are not used here */
        return 0;
    default:
        return 0; /* unknown control frames are ignored (SPDY/3 2.2.1) */
    }
}

int ks_spdy_parse(struct ks_spdy *s, const uint8_t *p, size_t len, struct ks_spdy_frame *f)
{
    size_t size;

    memset(f, 0, sizeof(*f));
    if (len < 8 || ks_spdy_frame_size(p, &size) < 0 || size != len)
        return -EPROTO;
    f->flags = p[4];
    if (!(p[0] & 0x80)) {
        f->type = KS_SPDY_DATA;
        f->stream_id = get32(p) & 0x7fffffff;
        f->data = p + 8;
        f->len = len - 8;
        return f->stream_id ? 0 : -EPROTO;
    }
    if (((p[0] & 0x7f) << 8 | p[1]) != 3)
        return -EPROTO; /* only version 3 */
    f->type = p[2] << 8 | p[3];
    return parse_control(s, f, p + 8, len - 8);
}

bool ks_spdy_header(const struct ks_spdy_frame *f, const char *name, char *out, size_t size)
{
    size_t n = strlen(name);

    for (size_t i = 0; i < f->n_headers; i++) {
        const struct ks_spdy_header *h = &f->headers[i];
        if (h->name_len != n || strncasecmp(h->name, name, n) != 0)
            continue;
        if (h->value_len >= size || memchr(h->value, '\0', h->value_len))
            return false; /* too long, or several values */
        memcpy(out, h->value, h->value_len);
        out[h->value_len] = '\0';
        return true;
    }
    return false;
}

/* ---- writing -------------------------------------------------------------------------------- */

static void control_head(uint8_t h[8], int type, uint8_t flags, size_t len)
{
    h[0] = 0x80;
    h[1] = 3;
    h[2] = (uint8_t)(type >> 8);
    h[3] = (uint8_t)type;
    put32(h + 4, (uint32_t)len);
    h[4] = flags;
}

void ks_spdy_write_data(struct evbuffer *out, uint32_t stream_id, const void *data, size_t len,
                        bool fin)
{
    uint8_t h[8];

    KF_BUG_ON(len > 0xffffff);
    put32(h, stream_id & 0x7fffffff);
    put32(h + 4, (uint32_t)len);
    h[4] = fin ? KS_SPDY_FLAG_FIN : 0;
    evbuffer_add(out, h, 8);
    evbuffer_add(out, data, len);
}

void ks_spdy_write_control(struct evbuffer *out, int type, uint32_t a, uint32_t b)
{
    uint8_t f[16];
    size_t len = type == KS_SPDY_PING ? 4 : 8;

    control_head(f, type, 0, len);
    put32(f + 8, a);
    put32(f + 12, b);
    evbuffer_add(out, f, 8 + len);
}

/* Deflate in (the plain block) onto sb, ending with a sync flush. */
static int deflate_block(struct ks_spdy *s, const struct ks_sb *in, struct ks_sb *sb)
{
    z_stream *z = s->deflate;
    uint8_t buf[1024];

    z->next_in = (Bytef *)in->p;
    z->avail_in = (uInt)in->len;
    do {
        z->next_out = buf;
        z->avail_out = sizeof(buf);
        if (deflate(z, Z_SYNC_FLUSH) == Z_STREAM_ERROR)
            return -EINVAL;
        ks_sb_add(sb, buf, sizeof(buf) - z->avail_out);
    } while (z->avail_out == 0);
    return sb->err ? -ENOMEM : 0;
}

int ks_spdy_write_headers(struct ks_spdy *s, struct evbuffer *out, int type, uint32_t stream_id,
                          uint8_t flags, const struct ks_spdy_header *h, size_t n)
{
    struct ks_sb plain, frame;
    uint8_t num[4];
    size_t fixed = type == KS_SPDY_SYN_STREAM ? 18 : 12;
    int rc;

    ks_sb_init(&plain, 256);
    ks_sb_init(&frame, 256);
    put32(num, (uint32_t)n);
    ks_sb_add(&plain, num, 4);
    for (size_t i = 0; i < n; i++) {
        put32(num, (uint32_t)h[i].name_len);
        ks_sb_add(&plain, num, 4);
        ks_sb_add(&plain, h[i].name, h[i].name_len);
        put32(num, (uint32_t)h[i].value_len);
        ks_sb_add(&plain, num, 4);
        ks_sb_add(&plain, h[i].value, h[i].value_len);
    }
    ks_sb_add(&frame, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", fixed); /* heads, filled below */
    rc = plain.err ? -ENOMEM : deflate_block(s, &plain, &frame);
    if (rc == 0 && frame.len - 8 > KS_SPDY_MAX_CONTROL)
        rc = -EMSGSIZE;
    if (rc == 0) {
        uint8_t *f = (uint8_t *)frame.p;
        control_head(f, type, flags, frame.len - 8);
        put32(f + 8, stream_id & 0x7fffffff); /* SYN_STREAM: associated-to 0, priority 0 */
        evbuffer_add(out, frame.p, frame.len);
    }
    ks_sb_free(&plain);
    ks_sb_free(&frame);
    return rc;
}
