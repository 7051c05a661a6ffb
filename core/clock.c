#include "core/core.h"

#include <time.h>

uint64_t kf_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t kf_now_ms(void)
{
    return kf_now_us() / 1000u;
}
