#include "core/core.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

enum kf_log_level kf_log_threshold = KF_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int kf_log_level_parse(const char *name, enum kf_log_level *out)
{
    for (size_t i = 0; i < KF_ARRAY_SIZE(level_names); i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (enum kf_log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

const char *kf_log_level_name(enum kf_log_level level)
{
    if ((size_t)level >= KF_ARRAY_SIZE(level_names))
        return "?";
    return level_names[level];
}

void kf_log_write(enum kf_log_level level, const char *module, const char *fmt, ...)
{
    char line[1024];
    struct timeval tv;
    struct tm tm;
    va_list ap;
    int n;

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = snprintf(line, sizeof(line),
                 "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s: ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)(tv.tv_usec / 1000),
                 kf_log_level_name(level), module);
    if (n < 0 || (size_t)n >= sizeof(line))
        n = 0;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    /* One write per line so that lines from several threads never interleave. */
    size_t len = strnlen(line, sizeof(line) - 2);
    line[len++] = '\n';
    fwrite(line, 1, len, stderr);
}

void kf_bug(const char *file, int line, const char *what)
{
    fprintf(stderr, "BUG at %s:%d: %s\n", file, line, what);
    abort();
}
