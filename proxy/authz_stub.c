#include "proxy/authz.h"
#include <string.h>
int px_authz_check(struct px_worker *w, struct px_request *preq, const struct px_reqinfo *info,
                   px_authz_cb cb, void *arg, struct px_authz_wait **wait)
{
    (void)w;
    (void)info;
    (void)cb;
    (void)arg;
    (void)wait;
    const struct px_peer_identity *p = px_request_peer(preq);
    for (size_t i = 0; p && i < p->n_orgs; i++)
        if (strcmp(p->orgs[i], "system:masters") == 0)
            return PX_AUTHZ_ALLOW;
    return PX_AUTHZ_ERROR;
}
void px_authz_cancel(struct px_authz_wait *wait)
{
    (void)wait;
}
void px_authz_reply(struct px_request *preq, const struct px_reqinfo *info,
                    enum px_authz_result res)
{
    (void)info;
    (void)res;
    px_response_simple(preq, 403, "application/json", "{}", 2);
}
