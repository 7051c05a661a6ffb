/* Test helper: read a file of ../shared/fixtures (KS_FIXTURES) whole. */
#ifndef KS_TEST_FIXTURE_H
#define KS_TEST_FIXTURE_H

#include <stddef.h>

/** The bytes of KS_FIXTURES/dir/name (malloc'd, NUL-terminated); the test fails if missing. */
char *ks_test_fixture(const char *dir, const char *name, size_t *len);

#endif
