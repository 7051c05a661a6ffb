/* Fuzz the field selector parser (for every type), matcher and pin lookup. */
#include "cache/codec/codec.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    enum codec_kind kind = (enum codec_kind)(data[0] % CODEC_KIND_COUNT);
    char *text = malloc(size);
    char err[256];
    if (!text)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    struct codec_field_selector sel;
    memset(err, 'x', sizeof(err));
    if (codec_field_selector_parse(text, kind, &sel, err, sizeof(err)) == 0) {
        struct codec_meta m;
        const char *v;
        memset(&m, 0, sizeof(m));
        m.fields[0] = (struct codec_field){"metadata.name", {"n", 1}};
        m.n_fields = 1;
        codec_field_selector_matches(&sel, &m);
        if (codec_field_selector_pins(&sel, "metadata.name", &v) && !v)
            __builtin_trap();
    } else if (!memchr(err, 0, sizeof(err))) {
        __builtin_trap();
    }
    codec_field_selector_free(&sel);
    free(text);
    return 0;
}
