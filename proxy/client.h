/* client.h -- one client connection of the proxy: parse, route, answer in order.
 *
 *   bytes -> parser -> request --local verb----------------------> slot (reply written now or
 * later)
 *                           \--node command--> shared or pinned link --> slot
 *   slots: head ... tail, in request order; the head's reply is written to the
 *   socket as soon as it is complete, so replies leave in request order
 *   whichever node answered first.
 *
 * A slot may outlive its client (the reply is still on its way): the client
 * then orphans it and whoever completes it frees it.
 */
#ifndef ZOS_CLIENT_H
#define ZOS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "state.h"
#include "zos/resp.h"

/* HELLO, RESET, QUIT and CLIENT KILL for the verbs (srv->client_ops). */
extern const struct zos_client_ops zos_client_ops;

/* Takes FD (an accepted socket); NODE is the fixed node of a per-node
 * listener or NULL.  The client is linked into SRV's list.  NULL on failure
 * (FD closed). */
struct zos_client *zos_client_new(struct zos_server *srv, int fd, struct zos_node *fixed);

/* Closes at once, orphaning slots whose replies are still on their way. */
void zos_client_free(struct zos_client *c);
/* SIGTERM: requests read and not yet sent are answered with an error, then
 * as zos_client_close_after_flush (replies in flight still come). */
void zos_client_shutdown(struct zos_client *c);
/* Stop reading, flush what is complete, then close. */
void zos_client_close_after_flush(struct zos_client *c);
/* Writes the output of every client that got some during this loop turn:
 * one write per client per turn, straight to the socket (the server's flush
 * event runs it after the turn's other callbacks). */
void zos_client_flush_all(struct zos_server *srv);
/* Number of slots whose reply is not written yet. */
size_t zos_client_pending(const struct zos_client *c);

/* Sends a command (ARGV) to NODE for client C as if C had sent it, with the
 * same routing (shared or pinned) and ordering rules.  Used by ZOS.AT. */
int zos_client_forward_argv(struct zos_client *c, struct zos_node *node,
                            const struct zos_resp_argv *av, size_t first);

#endif
