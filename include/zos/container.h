/* container.h -- what a node stores about a container and its ssh access.
 *
 *   zos container new --> SET container:<id>:{sshkey,layeredssh,sshenabled,sshport,ip}
 *   zos container ssh / ZOS.SSH --> GET (CLI) or MGET (proxy) of the ssh fields
 *                               --> zos_container_ssh_check: one verdict, one reason
 *   zosexec, invoke, sshenable --> corex.dispatch {"container": id, "command": <request>}
 *
 * The node's Redis is written by whoever holds its secret, so every value read
 * back is checked before it reaches libssh, sshfs's -o list or a terminal: the
 * CLI and the proxy call the same check and give the same answer for the same
 * facts.  No I/O here: callers fetch the values their own way (blocking in the
 * CLI, on the event loop in the proxy).  Keys: core0-protocol.md §9.2.
 */
#ifndef ZOS_CONTAINER_H
#define ZOS_CONTAINER_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

/* The keys zos keeps per container.  The first ZOS_CONTAINER_NSSH are the
 * ssh facts, in the order zos_container_ssh_check reads them. */
enum zos_container_field {
    ZOS_CONTAINER_IP,         /* address that reaches the forwarded port */
    ZOS_CONTAINER_SSHPORT,    /* host port forwarded to the container's 22 */
    ZOS_CONTAINER_SSHKEY,     /* private key path, or "false" (the agent's keys) */
    ZOS_CONTAINER_SSHENABLED, /* "true" once sshenable ran */
    ZOS_CONTAINER_LAYEREDSSH, /* "true" once the ssh flist was layered */
    ZOS_CONTAINER_ZEROTIERIP, /* the original's cache; only deleted */
    ZOS_CONTAINER_NFIELDS
};
#define ZOS_CONTAINER_NSSH    5
#define ZOS_CONTAINER_KEY_LEN 64 /* "container:<id>:<field>" with its NUL */
#define ZOS_CONTAINER_IP_MAX  253
#define ZOS_CONTAINER_KEY_MAX 4095

/* "sshport", "ip", ...: the last part of the key. */
const char *zos_container_field_name(enum zos_container_field f);
/* Writes "container:<CID>:<field>" into KEY. */
void zos_container_key(unsigned long cid, enum zos_container_field f,
                       char key[ZOS_CONTAINER_KEY_LEN]);

/* The ssh facts once checked. */
struct zos_container_ssh {
    char ip[ZOS_CONTAINER_IP_MAX + 1];
    int port;                            /* 1..65535 */
    char key[ZOS_CONTAINER_KEY_MAX + 1]; /* "" when none is stored ("false" or absent) */
    bool enabled;                        /* sshenabled is "true" */
    bool layered;                        /* layeredssh is "true" */
};

enum zos_container_verdict {
    ZOS_CONTAINER_OK,
    ZOS_CONTAINER_NO_SSH,      /* no port or no address stored: zos did not make it */
    ZOS_CONTAINER_IMPLAUSIBLE, /* a value zos would never have written: refused */
    ZOS_CONTAINER_SSH_OFF,     /* NEED_ENABLED and sshenable has not run */
};

/* Checks the ssh facts VALUES[0..ZOS_CONTAINER_NSSH) (indexed by field; NULL
 * for a key the node does not have), borrowed, and fills OUT.  Refused: a
 * port that is not 1..65535 in decimal, an address or key path that is empty,
 * too long, starts with '-' or holds anything but letters, digits and
 * "._-:" (address) or "._-/+@~" (key), a key path with a ".." component.
 * NEED_ENABLED: also refuse while sshenabled is not "true" (everything but
 * sshenable itself).  Not ZOS_CONTAINER_OK: ERR says why in one line that
 * names the key but never echoes its value. */
enum zos_container_verdict zos_container_ssh_check(unsigned long cid, char *const values[],
                                                   bool need_enabled, struct zos_container_ssh *out,
                                                   char *err, size_t errlen);

/* "root@<ip> -p <port>[ -i <key>]": what sshinfo prints and ZOS.SSH.INFO
 * answers. */
void zos_container_ssh_line(const struct zos_container_ssh *s, char *buf, size_t len);

/* The job that runs another job inside a container (core0-protocol.md §6.4). */
#define ZOS_CONTAINER_DISPATCH "corex.dispatch"

/* The arguments of corex.dispatch running COMMAND (a request object, as
 * zos_job_request_object builds it) in container CID:
 * {"container": CID, "command": COMMAND}.  Takes COMMAND, also when it fails
 * (and accepts NULL, then fails).  The caller owns the result (cJSON_Delete);
 * NULL when out of memory. */
cJSON *zos_container_dispatch_args(unsigned long cid, cJSON *command);

#endif
