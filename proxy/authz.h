/* Interim authorizer (to be replaced by SubjectAccessReview): system:masters certificates are
 * allowed, as the apiserver always allows them; every other request gets ERROR, so it is forwarded.
 */
#ifndef KF_PROXY_AUTHZ_H
#define KF_PROXY_AUTHZ_H
#include "proxy/l7.h"
enum px_authz_result {
    PX_AUTHZ_ALLOW = 10,
    PX_AUTHZ_DENY,
    PX_AUTHZ_UNAUTHENTICATED,
    PX_AUTHZ_ERROR
};
typedef void (*px_authz_cb)(enum px_authz_result res, void *arg);
struct px_authz_wait;
int px_authz_check(struct px_worker *w, struct px_request *preq, const struct px_reqinfo *info,
                   px_authz_cb cb, void *arg, struct px_authz_wait **wait);
void px_authz_cancel(struct px_authz_wait *wait);
void px_authz_reply(struct px_request *preq, const struct px_reqinfo *info,
                    enum px_authz_result res);
#endif
