/* container.c -- what a node stores about a container and its ssh access. */
#include "zos/container.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const field_names[ZOS_CONTAINER_NFIELDS] = {
    [ZOS_CONTAINER_IP] = "ip",
    [ZOS_CONTAINER_SSHPORT] = "sshport",
    [ZOS_CONTAINER_SSHKEY] = "sshkey",
    [ZOS_CONTAINER_SSHENABLED] = "sshenabled",
    [ZOS_CONTAINER_LAYEREDSSH] = "layeredssh",
    [ZOS_CONTAINER_ZEROTIERIP] = "zerotierip",
};

const char *zos_container_field_name(enum zos_container_field f)
{
    return f < ZOS_CONTAINER_NFIELDS ? field_names[f] : "?";
}

void zos_container_key(unsigned long cid, enum zos_container_field f,
                       char key[ZOS_CONTAINER_KEY_LEN])
{
    snprintf(key, ZOS_CONTAINER_KEY_LEN, "container:%lu:%s", cid, zos_container_field_name(f));
}

/* ---- the ssh facts ---- */

/* What zos writes for "none yet" ("false"), or no key at all. */
static bool unset(const char *v)
{
    return v == NULL || strcmp(v, "false") == 0;
}

/* 1 to MAX bytes of letters, digits and the characters of EXTRA, not
 * starting with '-' (it reaches option lists: ssh's, sshfs's -o). */
static bool plain_word(const char *w, const char *extra, size_t max)
{
    size_t n = strlen(w);
    if (n == 0 || n > max || w[0] == '-')
        return false;
    for (const char *c = w; *c != '\0'; c++)
        if (!isalnum((unsigned char)*c) && strchr(extra, *c) == NULL)
            return false;
    return true;
}

static bool has_dotdot(const char *path)
{
    for (const char *p = path; p != NULL; p = strchr(p, '/')) {
        p += *p == '/';
        if (strncmp(p, "..", 2) == 0 && (p[2] == '/' || p[2] == '\0'))
            return true;
    }
    return false;
}

static bool plain_port(const char *v, int *port)
{
    size_t n = strspn(v, "0123456789");
    long p = n > 0 && n <= 5 && v[n] == '\0' ? strtol(v, NULL, 10) : 0;
    *port = (int)p;
    return p >= 1 && p <= 65535;
}

static bool plain_key(const char *v)
{
    return plain_word(v, "._-/+@~", ZOS_CONTAINER_KEY_MAX) && !has_dotdot(v);
}

static enum zos_container_verdict refuse(enum zos_container_verdict why, unsigned long cid,
                                         enum zos_container_field f, char *err, size_t errlen)
{
    char key[ZOS_CONTAINER_KEY_LEN];
    zos_container_key(cid, f, key);
    if (why == ZOS_CONTAINER_NO_SSH)
        snprintf(err, errlen, "container %lu has no ssh port forward (zos did not create it)", cid);
    else if (why == ZOS_CONTAINER_SSH_OFF)
        snprintf(err, errlen,
                 "ssh is not enabled in container %lu: run 'zos container %lu "
                 "sshenable'",
                 cid, cid);
    else
        snprintf(err, errlen, "container %lu: %s stored on the node is not plausible: refusing it",
                 cid, key);
    return why;
}

enum zos_container_verdict zos_container_ssh_check(unsigned long cid, char *const values[],
                                                   bool need_enabled, struct zos_container_ssh *out,
                                                   char *err, size_t errlen)
{
    const char *ip = values[ZOS_CONTAINER_IP], *port = values[ZOS_CONTAINER_SSHPORT];
    const char *key = values[ZOS_CONTAINER_SSHKEY];
    const char *on = values[ZOS_CONTAINER_SSHENABLED], *layered = values[ZOS_CONTAINER_LAYEREDSSH];

    memset(out, 0, sizeof(*out));
    if (unset(port) || unset(ip))
        return refuse(ZOS_CONTAINER_NO_SSH, cid,
                      unset(port) ? ZOS_CONTAINER_SSHPORT : ZOS_CONTAINER_IP, err, errlen);
    if (!plain_port(port, &out->port))
        return refuse(ZOS_CONTAINER_IMPLAUSIBLE, cid, ZOS_CONTAINER_SSHPORT, err, errlen);
    if (!plain_word(ip, "._-:", ZOS_CONTAINER_IP_MAX))
        return refuse(ZOS_CONTAINER_IMPLAUSIBLE, cid, ZOS_CONTAINER_IP, err, errlen);
    if (!unset(key) && !plain_key(key)) /* "" too: zos writes a path or "false" */
        return refuse(ZOS_CONTAINER_IMPLAUSIBLE, cid, ZOS_CONTAINER_SSHKEY, err, errlen);
    snprintf(out->ip, sizeof(out->ip), "%s", ip);
    snprintf(out->key, sizeof(out->key), "%s", unset(key) ? "" : key);
    out->enabled = on != NULL && strcmp(on, "true") == 0;
    out->layered = layered != NULL && strcmp(layered, "true") == 0;
    if (need_enabled && !out->enabled)
        return refuse(ZOS_CONTAINER_SSH_OFF, cid, ZOS_CONTAINER_SSHENABLED, err, errlen);
    return ZOS_CONTAINER_OK;
}

void zos_container_ssh_line(const struct zos_container_ssh *s, char *buf, size_t len)
{
    snprintf(buf, len, "root@%s -p %d%s%s", s->ip, s->port, s->key[0] ? " -i " : "", s->key);
}

/* ---- corex.dispatch ---- */

cJSON *zos_container_dispatch_args(unsigned long cid, cJSON *command)
{
    cJSON *args = command != NULL ? cJSON_CreateObject() : NULL;
    if (args == NULL || cJSON_AddNumberToObject(args, "container", (double)cid) == NULL ||
        !cJSON_AddItemToObject(args, "command", command)) {
        cJSON_Delete(command); /* not attached: still ours */
        cJSON_Delete(args);
        return NULL;
    }
    return args;
}
