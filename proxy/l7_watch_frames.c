/*
 * Where the events of a forwarded watch end, so that a drain can end the stream between two
 * events instead of inside one: a JSON watch stream is one event per line (Go's json.Encoder
 * ends each with "\n"); a protobuf one (application/vnd.kubernetes.protobuf;stream=watch) is
 * frames of a 4-byte big-endian length and that many bytes. Other formats are not followed.
 */
#include "proxy/l7.h"

#include <string.h>
#include <strings.h>

void px_watch_frames_init(struct px_watch_frames *f, const char *content_type, size_t len)
{
    static const char json[] = "application/json", pb[] = "application/vnd.kubernetes.protobuf";

    memset(f, 0, sizeof(*f));
    f->at_boundary = true;
    if (len >= sizeof(json) - 1 && strncasecmp(content_type, json, sizeof(json) - 1) == 0)
        f->framing = PX_FRAMING_LINES;
    else if (len >= sizeof(pb) - 1 && strncasecmp(content_type, pb, sizeof(pb) - 1) == 0)
        f->framing = PX_FRAMING_LENGTH;
}

static size_t advance_lines(struct px_watch_frames *f, const uint8_t *data, size_t n, bool stop)
{
    const uint8_t *nl = stop ? memchr(data, '\n', n) : NULL;

    if (nl) {
        f->at_boundary = true;
        return (size_t)(nl - data) + 1;
    }
    f->at_boundary = data[n - 1] == '\n';
    return n;
}

static size_t advance_frames(struct px_watch_frames *f, const uint8_t *data, size_t n, bool stop)
{
    size_t i = 0;

    while (i < n) {
        if (f->prefix_have < 4) {
            f->prefix = f->prefix << 8 | data[i++];
            if (++f->prefix_have < 4)
                continue;
            f->body_left = f->prefix;
        } else {
            size_t take = n - i < f->body_left ? n - i : f->body_left;
            i += take;
            f->body_left -= (uint32_t)take;
        }
        if (f->body_left == 0) { /* a whole frame */
            f->prefix_have = 0;
            f->prefix = 0;
            if (stop)
                break;
        }
    }
    f->at_boundary = f->prefix_have == 0;
    return i;
}

size_t px_watch_frames_advance(struct px_watch_frames *f, const uint8_t *data, size_t n, bool stop)
{
    if (n == 0 || f->framing == PX_FRAMING_NONE)
        return n;
    return f->framing == PX_FRAMING_LINES ? advance_lines(f, data, n, stop)
                                          : advance_frames(f, data, n, stop);
}
