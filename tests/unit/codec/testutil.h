/* Shared helpers of the codec unit tests. */
#ifndef KF_TEST_CODEC_UTIL_H
#define KF_TEST_CODEC_UTIL_H

#include <stddef.h>

/* Read FIXTURES_DIR/rel whole; NULL if it cannot be read. Caller frees. */
char *tu_read_fixture(const char *rel, size_t *len);
/* Names (without extension) of the fixtures in FIXTURES_DIR/k8s-api with a .pb file;
 * returns the count, names[] are malloc'ed. */
size_t tu_list_api_fixtures(char ***names);
void tu_free_names(char **names, size_t n);

#endif
