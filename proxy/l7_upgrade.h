/* L7 protocol upgrades: exec, attach, port-forward (private to proxy/). */
#ifndef KF_PROXY_L7_UPGRADE_H
#define KF_PROXY_L7_UPGRADE_H

#include "proxy/l7.h"

#define L7_MAX_UPGRADE_HEADERS 128

/**
 * Send the HTTP/1.1 upgrade request preq to one apiserver of b's backend and,
 * on 101, tunnel the client's connection to it; any other answer is relayed.
 * Takes over preq.
 */
void px_l7_upgrade(struct px_worker *w, const struct px_binding *b, struct px_request *preq,
                   const struct px_reqinfo *info);

#endif
