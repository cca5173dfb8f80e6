/* err.c -- errors with a category: the setter, the names, and what an error
 * reply from a node or a zos-proxy means. */
#include "zos/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

struct zos_err *zos_err_set(struct zos_err *e, enum zos_errcat cat, const char *fmt, ...)
{
    va_list ap;
    e->cat = cat;
    va_start(ap, fmt);
    vsnprintf(e->text, sizeof(e->text), fmt, ap);
    va_end(ap);
    return e;
}

const char *zos_errcat_name(enum zos_errcat cat)
{
    static const char *const names[ZOS_ERRCAT_COUNT] = {
        [ZOS_ERRCAT_NONE] = "none",
        [ZOS_ERRCAT_OTHER] = "other",
        [ZOS_ERRCAT_UNREACHABLE] = "unreachable",
        [ZOS_ERRCAT_AUTH] = "auth",
        [ZOS_ERRCAT_TLS] = "tls",
        [ZOS_ERRCAT_TIMEOUT] = "timeout",
        [ZOS_ERRCAT_PROTOCOL] = "protocol",
        [ZOS_ERRCAT_NODE] = "node",
        [ZOS_ERRCAT_JOB_FAILED] = "job-failed",
        [ZOS_ERRCAT_NOT_FOUND] = "not-found",
        [ZOS_ERRCAT_NO_NODE] = "no-node",
        [ZOS_ERRCAT_NO_CONTAINER] = "no-container",
    };
    return (unsigned)cat < ZOS_ERRCAT_COUNT ? names[cat] : "?";
}

static bool starts(const char *text, const char *prefix)
{
    return strncmp(text, prefix, strlen(prefix)) == 0;
}

/* A zos-proxy's report on one of its nodes: "ERR node '<name>' <rest>"
 * (client.c); the rest after the quoted name, else NULL. */
static const char *proxy_node_report(const char *text)
{
    if (!starts(text, "ERR node '"))
        return NULL;
    const char *end = strstr(text + 10, "' ");
    return end != NULL ? end + 2 : NULL;
}

enum zos_errcat zos_errcat_of_reply(const char *text)
{
    static const char *const auth[] = {"NOAUTH", "NOPERM", "ERR invalid password", "invalid jwt",
                                       "permission denied"};
    const char *rest;

    if (starts(text, "ERR unknown node '") || starts(text, "WRONGPASS unknown node '"))
        return ZOS_ERRCAT_NO_NODE;
    if (starts(text, "WRONGPASS"))
        return ZOS_ERRCAT_AUTH;
    for (size_t i = 0; i < ZOS_ARRAY_LEN(auth); i++)
        if (strncasecmp(text, auth[i], strlen(auth[i])) == 0)
            return ZOS_ERRCAT_AUTH;
    if ((rest = proxy_node_report(text)) != NULL && starts(rest, "unavailable: ")) {
        /* The node refused the proxy's own handshake ("AUTH failed: WRONGPASS ...",
         * "PING failed: NOAUTH ..."): the secret is wrong, wherever it is kept. */
        const char *why = rest + 13, *said = strstr(why, " failed: ");
        if (starts(why, "AUTH failed: ") ||
            (said != NULL && zos_errcat_of_reply(said + 9) == ZOS_ERRCAT_AUTH))
            return ZOS_ERRCAT_AUTH;
        return ZOS_ERRCAT_UNREACHABLE;
    }
    if (rest != NULL && starts(rest, "protocol error: "))
        return ZOS_ERRCAT_PROTOCOL;
    return ZOS_ERRCAT_NODE;
}
