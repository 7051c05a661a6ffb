/* Fuzz the label selector parser and matcher. */
#include "cache/codec/codec.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    char err[256];
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    struct codec_label_selector sel;
    static const struct codec_kv labels[] = {{{"app", 3}, {"web", 3}}, {{"tier", 4}, {"1", 1}}};
    memset(err, 'x', sizeof(err));
    int rc = codec_label_selector_parse(text, &sel, err, sizeof(err));
    if (rc == 0)
        codec_label_selector_matches_kv(&sel, labels, 2);
    else if (!memchr(err, 0, sizeof(err)))
        __builtin_trap(); /* the message is always terminated */
    codec_label_selector_free(&sel);
    free(text);
    return 0;
}
