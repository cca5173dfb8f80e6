/* verbs.h -- the commands zos-proxy answers itself (AUTH, PING, INFO, ZOS.*).
 *
 * One table in verbs.c lists every verb once: name, argument counts, flags,
 * handler.  Adding a verb is one entry and one function.
 */
#ifndef ZOS_VERBS_H
#define ZOS_VERBS_H

#include <stddef.h>

#include "state.h"
#include "verb.h"
#include "zos/resp.h"

/* The proxy's own verbs (AUTH, HELLO, ..., ZOS.NODES), sorted by name,
 * case-insensitive; zos_verbs_find looks there, then in verbs_job's and
 * verbs_ssh's tables (sorted the same way). */
extern const struct zos_verb zos_verbs_core[];
extern const size_t zos_verbs_core_count;

/* The verb named NAME (LEN bytes, any case), or NULL. */
const struct zos_verb *zos_verbs_find(const char *name, size_t len);

/* ZOS.ALL for an ONNODE verb: runs V (argv from FIRST) once per node and
 * replies with the flat [node, reply, ...] array.  Returns ZOS_OK. */
int zos_verbs_run_all(const struct zos_verb *v, struct zos_client *c,
                      const struct zos_resp_argv *av, size_t first);

/* Appends the proxy's own INFO section ("# Proxy": its figures and one line
 * per node) to TEXT. */
void zos_verbs_info_proxy(struct zos_client *c, struct evbuffer *text);

#endif
