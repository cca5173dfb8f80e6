/* zos.h -- return codes and small helpers shared by every module of libzos. */
#ifndef ZOS_ZOS_H
#define ZOS_ZOS_H

#include <stddef.h>

#define ZOS_OK    0
#define ZOS_ERR   (-1)
#define ZOS_AGAIN 1 /* "not yet": more input is needed */

#ifndef ZOS_VERSION
#define ZOS_VERSION "0.0.0"
#endif

#define ZOS_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* What kind of failure an error is.  Set where the failure arises, it
 * travels beside the error's text (struct zos_err) through the library's
 * callbacks; the CLI turns it into an exit code (cli/exitcode.c), so a
 * reworded message never changes one. */
enum zos_errcat {
    ZOS_ERRCAT_NONE = 0,     /* no error (a zeroed struct zos_err) */
    ZOS_ERRCAT_OTHER,        /* none below: out of memory, a closed handle, local limits */
    ZOS_ERRCAT_UNREACHABLE,  /* no connection: refused, no such name, connect timeout, lost,
                                a node that does not answer or takes no job */
    ZOS_ERRCAT_AUTH,         /* the node or the proxy refused the credentials, or wants some */
    ZOS_ERRCAT_TLS,          /* TLS handshake, certificate or pin */
    ZOS_ERRCAT_TIMEOUT,      /* a job did not end within the time it was given */
    ZOS_ERRCAT_PROTOCOL,     /* the peer does not speak the protocol: a malformed reply, a
                                result that is not a core0 result object */
    ZOS_ERRCAT_NODE,         /* the node answered the command with an error reply */
    ZOS_ERRCAT_JOB_FAILED,   /* the job ran and did not succeed */
    ZOS_ERRCAT_NOT_FOUND,    /* a job the node does not know (unknown id, expired result) */
    ZOS_ERRCAT_NO_NODE,      /* a zos-proxy knows no node of that name */
    ZOS_ERRCAT_NO_CONTAINER, /* core0 says the container does not exist */
};
#define ZOS_ERRCAT_COUNT (ZOS_ERRCAT_NO_CONTAINER + 1)

/* An error: its category and its text (zos/err.h sets and reads them). */
struct zos_err {
    enum zos_errcat cat;
    char text[256];
};

#endif
