/* verbs_job.h -- the ZOS.* verbs that run core0 jobs (table merged by verbs.c). */
#ifndef ZOS_VERBS_JOB_H
#define ZOS_VERBS_JOB_H

#include <stddef.h>

#include "zos/verbs.h"

struct zos_server;

/* Sorted by name, like the table of verbs.c. */
extern const struct zos_verb zos_verbs_job[];
extern const size_t zos_verbs_job_count;

/* Frees the per-node job machinery (before the router and its links). */
void zos_verbs_job_free(struct zos_server *srv);

#endif
