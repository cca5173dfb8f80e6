/* util.h -- small helpers shared by the proxy and the CLI. */
#ifndef ZOS_UTIL_H
#define ZOS_UTIL_H

#include <cjson/cJSON.h>

/* V as JSON text indented by two spaces ("key": value), as the original zos
 * printed it.  Caller frees with free().  NULL on allocation failure. */
char *zos_json_pretty(const cJSON *v);

/* Where ssh host keys of containers are pinned: "zos-known_hosts" beside
 * the config file CONF_PATH (so tests with ZOS_CONFIG in a temp dir keep
 * their pins there too).  Writes BUF. */
void zos_known_hosts_path(const char *conf_path, char *buf, size_t len);

#endif
