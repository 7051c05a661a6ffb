/* Shared helpers of the config unit tests. */
#ifndef KF_TEST_CONFIG_HELPERS_H
#define KF_TEST_CONFIG_HELPERS_H

#include "config/config.h"

/* The diagnostics of the last parse, one per line as config_diags_print writes them. */
extern struct config_diags test_diags;

/* Parse text as YAML / haproxy.cfg named "kfront.yaml" / "haproxy.cfg"; return the
 * config or NULL (test_diags holds the diagnostics either way). */
struct config *parse_yaml(const char *text);
struct config *parse_haproxy(const char *text);

/* All diagnostics of the last parse as config_diags_print writes them (malloc'd). */
char *diags_text(void);
/* Diagnostic i of the last parse, formatted (static buffer). */
const char *diag(size_t i);
/* Whether any diagnostic of the last parse formats exactly as line. */
bool has_diag(const char *line);

/* The haproxy.cfg of the mission: 3 masters behind mode tcp, roundrobin, tcp checks. */
extern const char masters_cfg[];

/* cfg printed as YAML (malloc'd). */
char *print_yaml(const struct config *cfg);

/* The minimal valid YAML header and a minimal valid body to build on. */
#define YAML_HEAD "apiVersion: kfront.io/v1alpha1\nkind: KfrontConfiguration\n"
#define YAML_MIN                                                                                   \
    YAML_HEAD "frontends:\n"                                                                       \
              "  - name: fe\n"                                                                     \
              "    listen: [\"0.0.0.0:6443\"]\n"                                                   \
              "    backend: be\n"                                                                  \
              "backends:\n"                                                                        \
              "  - name: be\n"                                                                     \
              "    servers:\n"                                                                     \
              "      - name: m1\n"                                                                 \
              "        address: 10.0.1.10:6443\n"

#endif
