/* Fuzz the watch stream readers: the input arrives in chunks whose sizes the
 * fuzzer picks; events must come out whole, in order, within the bound. */
#include "cache/codec/codec.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef int (*next_fn)(struct codec_watch_reader *, const char *, size_t, struct codec_str *,
                       size_t *);

static int next_pb(struct codec_watch_reader *r, const char *b, size_t l, struct codec_str *e,
                   size_t *u)
{
    return codec_watch_next_pb(r, b, l, e, u);
}

static void drive(next_fn next, const char *s, size_t len, uint8_t step)
{
    struct codec_watch_reader r;
    codec_watch_reader_init(&r, 4096);
    size_t start = 0, avail = 0;
    while (avail < len) {
        avail += step ? step : 1;
        if (avail > len)
            avail = len;
        struct codec_str ev;
        size_t used;
        int rc;
        while ((rc = next(&r, s + start, avail - start, &ev, &used)) == 0) {
            if (used == 0 || used > avail - start || ev.ptr < s + start ||
                ev.ptr + ev.len > s + start + used || ev.len > 4096)
                __builtin_trap();
            start += used;
        }
        if (rc < 0)
            return; /* -EMSGSIZE: the stream is abandoned */
        if (rc == KF_AGAIN && used <= avail - start)
            start += used;
        else
            __builtin_trap();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    drive(codec_watch_next_json, (const char *)data + 1, size - 1, data[0]);
    drive(next_pb, (const char *)data + 1, size - 1, data[0]);
    return 0;
}
