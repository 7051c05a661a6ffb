/* Fuzz the `k8s\0` + runtime.Unknown envelope: parse, rebuild, parse again. */
#include "cache/codec/codec.h"

#include <stdio.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct codec_envelope env, again;
    if (codec_pb_envelope_parse(data, size, &env) != 0)
        return 0;
    char av[256], kind[256];
    if (env.api_version.len >= sizeof(av) || env.kind.len >= sizeof(kind) ||
        memchr(env.api_version.ptr, 0, env.api_version.len) ||
        memchr(env.kind.ptr, 0, env.kind.len))
        return 0;
    snprintf(av, sizeof(av), "%.*s", (int)env.api_version.len, env.api_version.ptr);
    snprintf(kind, sizeof(kind), "%.*s", (int)env.kind.len, env.kind.ptr);
    struct codec_buf b;
    codec_buf_init(&b);
    if (codec_pb_envelope_write(&b, av, kind, env.raw.ptr, env.raw.len) == 0) {
        /* what we write, we read back identically */
        if (codec_pb_envelope_parse(b.data, b.len, &again) != 0 || again.raw.len != env.raw.len ||
            memcmp(again.raw.ptr, env.raw.ptr, env.raw.len) || !codec_str_eq(again.kind, kind) ||
            !codec_str_eq(again.api_version, av))
            __builtin_trap();
    }
    codec_buf_free(&b);
    return 0;
}
