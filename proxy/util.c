/* util.c -- small helpers shared by the proxy and the CLI. */
#include "zos/util.h"

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cJSON_Print indents with tabs and writes ":\t"; tabs inside strings are
 * always escaped, so every raw tab in its output is layout we can rewrite. */
char *zos_json_pretty(const cJSON *v)
{
    char *text = cJSON_Print(v);
    if (text == NULL)
        return NULL;
    size_t tabs = 0, len = strlen(text);
    for (size_t i = 0; i < len; i++)
        tabs += text[i] == '\t';
    char *out = malloc(len + tabs + 1), *o = out;
    if (out == NULL) {
        cJSON_free(text);
        return NULL;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] != '\t') {
            *o++ = text[i];
        } else if (i > 0 && text[i - 1] == ':') {
            *o++ = ' ';
        } else {
            *o++ = ' ';
            *o++ = ' ';
        }
    }
    *o = '\0';
    cJSON_free(text);
    return out;
}

void zos_known_hosts_path(const char *conf_path, char *buf, size_t len)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", conf_path != NULL ? conf_path : "./zos.toml");
    snprintf(buf, len, "%s/zos-known_hosts", dirname(dir));
}
