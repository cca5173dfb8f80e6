/* util.h -- small helpers shared by the proxy and the CLI. */
#ifndef ZOS_UTIL_H
#define ZOS_UTIL_H

#include <cjson/cJSON.h>

/* V as JSON text indented by two spaces ("key": value), as the original zos
 * printed it.  Caller frees with free().  NULL on allocation failure. */
char *zos_json_pretty(const cJSON *v);

#endif
