/* verbs_job.h -- the ZOS.* verbs that run core0 jobs (table merged by verbs.c). */
#ifndef ZOS_VERBS_JOB_H
#define ZOS_VERBS_JOB_H

#include <stdbool.h>
#include <stddef.h>

#include "verb.h"

struct zos_server;

/* Sorted by name, like the table of verbs.c. */
extern const struct zos_verb zos_verbs_job[];
extern const size_t zos_verbs_job_count;

/* SUBSCRIBE zos:job:[<node>:]<id>: the proxy follows the job and sends its
 * output as messages on that channel (see verbs_job.c), never the node. */
struct zos_client;
struct zos_resp_argv;
struct zos_follow;
/* True for a channel of that reserved prefix. */
bool zos_follow_channel(const char *ch, size_t len);
/* SUBSCRIBE (AV[FIRST] is the command) of job channels only. */
void zos_follow_subscribe(struct zos_client *c, const struct zos_resp_argv *av, size_t first);
/* UNSUBSCRIBE of them (all without an argument). */
void zos_follow_unsubscribe(struct zos_client *c, const struct zos_resp_argv *av, size_t first);
/* Stops following (client gone, RESET): no message more. */
void zos_follow_end_all(struct zos_client *c);

#endif
