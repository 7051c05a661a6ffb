/* pods/NAME/portforward (placeholder until the SPDY server lands). */
#include "loadgen/kube-sim/kube_sim.h"

void ks_handle_portforward(struct ks_req *r)
{
    ks_reply_bad_request(r, "port-forward is not served yet");
}

void ks_portforward_shutdown(void)
{
}
