/* err.h -- errors with a category (enum zos_errcat in zos.h): setting one
 * where it arises, and the category of an error reply from a node (Redis,
 * core0) or from a zos-proxy, decided here once. */
#ifndef ZOS_ERR_H
#define ZOS_ERR_H

#include <stdbool.h>

#include "zos/zos.h"

/* Sets E to CAT and the formatted text (cut to fit).  Returns E. */
struct zos_err *zos_err_set(struct zos_err *e, enum zos_errcat cat, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The category's name ("unreachable", "auth", ...), for logs and tests;
 * "?" for a value outside the enum. */
const char *zos_errcat_name(enum zos_errcat cat);

/* The category of the error reply TEXT (without its '-'), by its leading
 * word and the words its senders use for the case:
 *   NOAUTH, WRONGPASS, NOPERM, "ERR invalid password" (Redis), "invalid jwt",
 *   "permission denied" (core0's redis proxy)            -> ZOS_ERRCAT_AUTH
 *   zos-proxy: "ERR unknown node '<n>'", "WRONGPASS unknown node '<n>'"
 *                                                        -> ZOS_ERRCAT_NO_NODE
 *   zos-proxy: "ERR node '<n>' unavailable: <why>"       -> ZOS_ERRCAT_UNREACHABLE,
 *     but ZOS_ERRCAT_AUTH when WHY is the node refusing the proxy's handshake
 *     ("AUTH failed: ...", "PING failed: NOAUTH ...")
 *   zos-proxy: "ERR node '<n>' protocol error: <why>"    -> ZOS_ERRCAT_PROTOCOL
 *   anything else                                        -> ZOS_ERRCAT_NODE */
enum zos_errcat zos_errcat_of_reply(const char *text);

#endif
