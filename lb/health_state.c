#include "lb/lb.h"

const char *lb_health_name(enum lb_health health)
{
    switch (health) {
    case LB_HEALTH_UP:
        return "up";
    case LB_HEALTH_DOWN:
        return "down";
    case LB_HEALTH_UNKNOWN:
        break;
    }
    return "unknown";
}

bool lb_health_record(struct lb_health_counter *h, bool ok, uint32_t rise, uint32_t fall)
{
    enum lb_health before = h->state;

    if (ok) {
        h->failures = 0;
        h->successes++;
        if (h->state == LB_HEALTH_UNKNOWN || (h->state == LB_HEALTH_DOWN && h->successes >= rise))
            h->state = LB_HEALTH_UP;
    } else {
        h->successes = 0;
        h->failures++;
        if (h->state == LB_HEALTH_UNKNOWN || (h->state == LB_HEALTH_UP && h->failures >= fall))
            h->state = LB_HEALTH_DOWN;
    }
    return h->state != before;
}
