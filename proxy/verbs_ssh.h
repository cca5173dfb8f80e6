/* verbs_ssh.h -- ZOS.SSH, ZOS.SSH.INFO and ZOS.VBOX (table merged by verbs.c). */
#ifndef ZOS_VERBS_SSH_H
#define ZOS_VERBS_SSH_H

#include <stddef.h>

#include "verb.h"

struct zos_server;

/* Sorted by name, like the table of verbs.c. */
extern const struct zos_verb zos_verbs_ssh[];
extern const size_t zos_verbs_ssh_count;

/* Waits for running ssh workers and frees their state. */
void zos_verbs_ssh_free(struct zos_server *srv);

#endif
