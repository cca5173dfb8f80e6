/* seal.h -- what a client may see and change of a node's secrets.
 *
 * The proxy holds each node's secret (its requirepass) so that clients never
 * do.  CONFIG GET answers the parameters that hold secrets as if they were
 * empty; CONFIG SET of them, the ACL sub-commands that read or change users
 * and REPLICAOF (the node would send its masterauth to the host given) are
 * refused unless the node's section says `admin = yes`.
 */
#ifndef ZOS_SEAL_H
#define ZOS_SEAL_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/buffer.h>

#include "zos/resp.h"

enum zos_seal {
    ZOS_SEAL_PASS,   /* forward as it is */
    ZOS_SEAL_REFUSE, /* answer the NOPERM error, forward nothing */
    ZOS_SEAL_FILTER, /* forward; its reply is a CONFIG GET reply to filter */
};

/* The command AV (from index FIRST on) for a node; ADMIN: the node's admin
 * key.  REFUSE writes the error (without '-') to ERR. */
enum zos_seal zos_seal_check(const struct zos_resp_argv *av, size_t first, bool admin, char *err,
                             size_t errlen);

/* Whether a command name (LEN bytes) may need zos_seal_check (CONFIG, ACL,
 * REPLICAOF/SLAVEOF):
 * a cheap test so that other commands are never copied out. */
bool zos_seal_candidate(const char *name, size_t len);

/* Writes to OUT the first LEN bytes of REPLY (removed from it) with the
 * values of secret parameters emptied.  WHICH NULL: REPLY answers CONFIG GET.
 * Otherwise REPLY answers EXEC and WHICH[i] (NWHICH entries) says whether its
 * element i answers a CONFIG GET.  A reply of another shape (an error, say)
 * is moved as it is; one that cannot be filtered becomes an error reply. */
void zos_seal_filter(struct evbuffer *reply, size_t len, struct evbuffer *out, const bool *which,
                     size_t nwhich);

#endif
