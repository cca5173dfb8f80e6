/* verb.c -- running a verb, and what its handlers share (see verb.h). */
#include "verb.h"

#include <stdlib.h>
#include <string.h>

void zos_verbs_run(const struct zos_verb *v, struct zos_client *c, struct zos_slot *s,
                   const struct zos_resp_argv *av)
{
    if ((int)av->argc < v->min_argc || (v->max_argc >= 0 && (int)av->argc > v->max_argc)) {
        zos_slot_error(s, "ERR wrong number of arguments for '%s' command", v->name);
        return;
    }
    v->fn(c, s, av);
}

char *zos_verbs_join(const struct zos_resp_argv *av, size_t first, size_t last)
{
    size_t len = 1;
    for (size_t i = first; i < last; i++)
        len += av->argvlen[i] + 1;
    char *out = malloc(len), *p = out;
    if (out == NULL)
        return NULL;
    for (size_t i = first; i < last; i++) {
        if (i > first)
            *p++ = ' ';
        memcpy(p, av->argv[i], av->argvlen[i]);
        p += av->argvlen[i];
    }
    *p = '\0';
    return out;
}
