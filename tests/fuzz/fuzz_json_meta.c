/* Fuzz JSON readers: metadata extraction, watch event split, item shaping, compaction. */
#include "cache/codec/codec.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_meta(const struct codec_meta *m)
{
    /* every slice the extractor returns is readable */
    volatile char sink = 0;
    for (size_t i = 0; i < m->n_labels; i++)
        sink ^= m->labels[i].key.len ? m->labels[i].key.ptr[m->labels[i].key.len - 1] : 0;
    for (size_t i = 0; i < m->n_fields; i++)
        sink ^= m->fields[i].value.len ? m->fields[i].value.ptr[m->fields[i].value.len - 1] : 0;
    (void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    enum codec_kind kind = (enum codec_kind)(data[0] % CODEC_KIND_COUNT);
    const char *js = (const char *)data + 1;
    size_t len = size - 1;
    struct kf_arena *arena = kf_arena_new(4096);
    struct codec_meta m;
    if (codec_meta_from_json(js, len, kind, &m, arena) == 0)
        check_meta(&m);
    struct codec_watch_event ev;
    if (codec_watch_event_parse_json(js, len, &ev) == 0 &&
        codec_meta_from_json(ev.object.ptr, ev.object.len, kind, &m, arena) == 0)
        check_meta(&m);
    struct codec_buf b;
    codec_buf_init(&b);
    size_t tail;
    if (codec_json_item_tail(js, len, &tail) == 0 && tail > len)
        __builtin_trap();
    codec_json_to_item(&b, js, len);
    codec_buf_reset(&b);
    codec_json_compact(&b, js, len);
    codec_buf_reset(&b);
    codec_json_string(&b, js, len);
    codec_buf_free(&b);
    kf_arena_free(arena);
    return 0;
}
