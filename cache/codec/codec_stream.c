/*
 * Watch streams as kfront's reflectors receive them: newline-delimited JSON
 * events, or protobuf frames (4-byte big-endian length + WatchEvent). The
 * readers never copy: they find the next complete event in the caller's
 * buffer and say how many bytes to drop.
 */
#include "cache/codec/codec_internal.h"

#include <errno.h>
#include <string.h>

void codec_watch_reader_init(struct codec_watch_reader *r, size_t max)
{
    r->max = max ? max : CODEC_WATCH_MAX_DEFAULT;
    r->scanned = 0;
}

static size_t bound(const struct codec_watch_reader *r)
{
    return r->max ? r->max : CODEC_WATCH_MAX_DEFAULT;
}

static bool blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            return false;
    }
    return true;
}

int codec_watch_next_json(struct codec_watch_reader *r, const char *buf, size_t len,
                          struct codec_str *event, size_t *consumed)
{
    size_t off = 0; /* start of the current line (blank lines before it are skipped) */
    size_t from = r->scanned < len ? r->scanned : len;
    for (;;) {
        const char *nl = memchr(buf + from, '\n', len - from);
        if (!nl) {
            if (len - off > bound(r))
                return -EMSGSIZE;
            *consumed = off; /* blank lines may go */
            r->scanned = len - off;
            return KF_AGAIN;
        }
        size_t end = (size_t)(nl - buf);
        if (end - off > bound(r))
            return -EMSGSIZE;
        if (!blank(buf + off, end - off)) {
            size_t n = end - off;
            if (n && buf[off + n - 1] == '\r')
                n--;
            event->ptr = buf + off;
            event->len = n;
            *consumed = end + 1;
            r->scanned = 0;
            return 0;
        }
        off = from = end + 1;
    }
}

int codec_watch_next_pb(struct codec_watch_reader *r, const void *buf, size_t len,
                        struct codec_str *event, size_t *consumed)
{
    const uint8_t *p = buf;
    *consumed = 0;
    if (len < 4)
        return KF_AGAIN;
    size_t n = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
    if (n > bound(r))
        return -EMSGSIZE;
    if (len - 4 < n)
        return KF_AGAIN;
    event->ptr = (const char *)p + 4;
    event->len = n;
    *consumed = 4 + n;
    return 0;
}

/* The apiserver's own layout: {"type":"NAME","object":{...}} — sliced, not tokenised. */
static bool fast_json_event(const char *s, size_t len, struct codec_watch_event *ev)
{
    static const char head[] = "{\"type\":\"", mid[] = "\",\"object\":";
    size_t h = sizeof(head) - 1, m = sizeof(mid) - 1, i = h;
    if (len < h || memcmp(s, head, h) != 0)
        return false;
    while (i < len && s[i] >= 'A' && s[i] <= 'Z')
        i++;
    if (len - i < m + 3 || memcmp(s + i, mid, m) != 0 || s[len - 1] != '}' || s[i + m] != '{')
        return false;
    ev->type_name.ptr = s + h;
    ev->type_name.len = i - h;
    ev->object.ptr = s + i + m;
    ev->object.len = len - 1 - (i + m);
    return ev->object.ptr[ev->object.len - 1] == '}';
}

static int slow_json_event(const char *s, size_t len, struct codec_watch_event *ev)
{
    struct jdoc d;
    int rc = jdoc_parse(&d, s, len);
    if (rc < 0)
        goto out;
    rc = -EBADMSG;
    for (int i = 1, left = d.tok[0].size; left > 0; left--, i = jskip(&d, i + 1)) {
        if (jeq(&d, i, "type") && d.tok[i + 1].type == JT_STRING)
            ev->type_name = jraw(&d, i + 1);
        else if (jeq(&d, i, "object") && d.tok[i + 1].type == JT_OBJECT)
            ev->object = jraw(&d, i + 1);
    }
    if (ev->object.ptr && ev->type_name.ptr)
        rc = 0;
out:
    jdoc_free(&d);
    return rc;
}

int codec_watch_event_parse_json(const char *line, size_t len, struct codec_watch_event *ev)
{
    memset(ev, 0, sizeof(*ev));
    if (!fast_json_event(line, len, ev)) {
        memset(ev, 0, sizeof(*ev));
        int rc = slow_json_event(line, len, ev);
        if (rc < 0)
            return rc;
    }
    ev->type = codec_event_type_parse(ev->type_name);
    return ev->type == CODEC_EV_UNKNOWN ? -EBADMSG : 0;
}

int codec_watch_event_parse_pb(const void *buf, size_t len, struct codec_watch_event *ev)
{
    struct pbr r = pbr_of(buf, len);
    struct pbf f;
    int rc;
    memset(ev, 0, sizeof(*ev));
    while ((rc = pbr_next(&r, &f)) > 0) {
        if (f.type != PBW_LEN)
            return -EBADMSG;
        if (f.num == 1) {
            ev->type_name = f.s;
        } else if (f.num == 2) { /* RawExtension{raw = 1} */
            struct pbr x = pbr_of_str(f.s);
            struct pbf g;
            int xr;
            while ((xr = pbr_next(&x, &g)) > 0) {
                if (g.num == 1 && g.type == PBW_LEN)
                    ev->object = g.s;
            }
            if (xr < 0)
                return -EBADMSG;
        }
    }
    if (rc < 0)
        return -EBADMSG;
    ev->type = codec_event_type_parse(ev->type_name);
    return ev->type == CODEC_EV_UNKNOWN ? -EBADMSG : 0;
}
