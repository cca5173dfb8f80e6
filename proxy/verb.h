/* verb.h -- what a command the proxy answers itself is (struct zos_verb),
 * shared by the verb tables (verbs.c, verbs_job.c, verbs_ssh.c) and the
 * client that runs them. */
#ifndef ZOS_VERB_H
#define ZOS_VERB_H

#include <stddef.h>

#include "slot.h"
#include "zos/resp.h"

struct zos_client;

#define ZOS_VERB_NOAUTH 0x1 /* allowed before AUTH when requirepass is set */
#define ZOS_VERB_NODE                                                                              \
    0x2                    /* PING/ECHO/INFO: forwarded by ZOS.AT, and when the node holds         \
                               state for the client (MULTI, pub/sub) */
#define ZOS_VERB_ROUTE 0x4 /* ZOS.AT, ZOS.ALL: handled by the client's router */
#define ZOS_VERB_ONNODE                                                                            \
    0x8 /* ZOS.* verbs acting on a node: ZOS.AT runs them there,                                   \
            ZOS.ALL on every node (zos_verbs_run_all) */

/* The error of a node command when the connection has no node. */
#define ZOS_NO_NODE_ERR                                                                            \
    "ERR no node selected: configure a node, or use ZOS.USE <node> or AUTH <node> <password>"

/* A handler writes its reply into S now or later (zos_slot_buf + done).
 * AV is borrowed for the call only. */
typedef void (*zos_verb_fn)(struct zos_client *c, struct zos_slot *s,
                            const struct zos_resp_argv *av);

struct zos_verb {
    const char *name;
    int min_argc; /* including the verb itself */
    int max_argc; /* -1: no limit */
    unsigned flags;
    zos_verb_fn fn;
};

/* Runs V for C: checks the argument count, then calls the handler. */
void zos_verbs_run(const struct zos_verb *v, struct zos_client *c, struct zos_slot *s,
                   const struct zos_resp_argv *av);

/* Arguments FIRST..LAST-1 joined by single spaces (a shell command line).
 * Caller frees; NULL when out of memory. */
char *zos_verbs_join(const struct zos_resp_argv *av, size_t first, size_t last);

#endif
