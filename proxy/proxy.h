/*
 * proxy: the client side of kfront. Listeners, worker threads with one event
 * loop each, the L4 tunnel, the admin endpoints, configuration reload and
 * graceful drain. The HTTP plumbing lives in the proxy/http module.
 */
#ifndef KF_PROXY_H
#define KF_PROXY_H

/**
 * Run kfront with the given command line until it is told to stop (SIGTERM
 * or SIGINT drains, a second one stops at once). Returns the process exit
 * status: 0 after a clean drain, 1 on a configuration error, 2 on bad usage.
 */
int px_main(int argc, char **argv);

#endif
