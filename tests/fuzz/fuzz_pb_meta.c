/* Fuzz protobuf readers: metadata (enveloped or bare) and WatchEvent. */
#include "cache/codec/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    enum codec_kind kind = (enum codec_kind)(data[0] % CODEC_KIND_COUNT);
    struct kf_arena *arena = kf_arena_new(4096);
    struct codec_meta m;
    codec_meta_from_pb(data + 1, size - 1, kind, &m, arena);
    struct codec_watch_event ev;
    if (codec_watch_event_parse_pb(data + 1, size - 1, &ev) == 0)
        codec_meta_from_pb(ev.object.ptr, ev.object.len, kind, &m, arena);
    kf_arena_free(arena);
    return 0;
}
