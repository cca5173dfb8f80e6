/* cmd_new.c -- zos container new: a container as the original made it.
 *
 *   options --> name (adjective_surname), ports/env/zerotier/extraconfig checked,
 *               public keys found (--sshkey, agent, ~/.ssh) -- all before connecting
 *   --> corex.create (default + zerotier nics, authorized_keys via "config",
 *       --extraconfig merged over) --> prints the id
 *   --> SET zos:lastcontainerid --> socat.reserve --> container:<id>:* keys
 *   --> corex.portforward-add <port> -> 22  (core0-protocol.md §9.3)
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "zos/zos.h"

#define DEFAULT_ROOT     "https://hub.grid.tf/tf-bootable/ubuntu:18.04.flist"
#define DEFAULT_ZEROTIER "9bee8941b5717835"
#define CREATE_TIMEOUT_S 120

struct new_args {
    const char *name, *root, *hostname, *ports, *env, *sshkey, *zerotier, *extraconfig;
    bool privileged, ssh;
    char genname[64];
    cJSON *port_map, *env_map, *extra;
    char *keys, *private_path;
    const char *zt; /* network id, or NULL for none */
};

static void new_args_free(struct new_args *a)
{
    cJSON_Delete(a->port_map);
    cJSON_Delete(a->env_map);
    cJSON_Delete(a->extra);
    free(a->keys);
    free(a->private_path);
}

/* Splits LIST on commas; FN checks and adds each "a:b" item.  0 or exit 15. */
static int each_pair(const char *opt, const char *list, cJSON *out,
                     int (*fn)(const char *opt, const char *item, const char *colon, cJSON *out))
{
    char *copy = strdup(list), *save = NULL;
    int rc = 0;
    if (copy == NULL)
        return zos_cli_fail(ZOS_EXIT_GENERAL, "out of memory");
    if (list[0] == '\0' || list[strlen(list) - 1] == ',' || strstr(list, ",,") != NULL ||
        list[0] == ',')
        rc = zos_cli_fail(ZOS_EXIT_MALFORMED_ARGS, "--%s: empty entry in '%s'", opt, list);
    for (char *it = rc == 0 ? strtok_r(copy, ",", &save) : NULL; it != NULL && rc == 0;
         it = strtok_r(NULL, ",", &save)) {
        while (*it == ' ')
            it++;
        size_t n = strlen(it);
        while (n > 0 && it[n - 1] == ' ')
            it[--n] = '\0';
        const char *colon = strchr(it, ':');
        rc = fn(opt, it, colon, out);
    }
    free(copy);
    return rc;
}

static int add_port(const char *opt, const char *item, const char *colon, cJSON *out)
{
    char host[16];
    long h, c;
    if (colon == NULL)
        return zos_cli_fail(ZOS_EXIT_MALFORMED_ARGS,
                            "--ports: '%s' is not HOST:CONTAINER (e.g. 2222:22)", item);
    snprintf(host, sizeof(host), "%.*s", (int)(colon - item < 15 ? colon - item : 15), item);
    if (colon - item > 5 || !zos_cli_parse_int(host, 1, 65535, &h))
        return zos_cli_fail(ZOS_EXIT_MALFORMED_ARGS,
                            "--ports: '%s': the host port must be a number from 1 to 65535", item);
    if (!zos_cli_parse_int(colon + 1, 1, 65535, &c))
        return zos_cli_fail(ZOS_EXIT_MALFORMED_ARGS,
                            "--ports: '%s': the container port must be a number from 1 to 65535",
                            item);
    snprintf(host, sizeof(host), "%ld", h);
    if (cJSON_GetObjectItemCaseSensitive(out, host) != NULL)
        return zos_cli_fail(ZOS_EXIT_MALFORMED_ARGS, "--ports: host port %ld is given twice", h);
    cJSON_AddNumberToObject(out, host, (double)c);
    return 0;
}

static int add_env(const char *opt, const char *item, const char *colon, cJSON *out)
{
    char name[256];
    if (colon == NULL)
        return zos_cli_fail(ZOS_EXIT_MALFORMED_ARGS,
                            "--env: '%s' is not KEY:VALUE (e.g. LANG:C.UTF-8)", item);
    size_t n = (size_t)(colon - item);
    if (n == 0 || n >= sizeof(name))
        return zos_cli_fail(ZOS_EXIT_MALFORMED_ARGS, "--env: '%s' has no variable name", item);
    memcpy(name, item, n);
    name[n] = '\0';
    bool ok = isalpha((unsigned char)name[0]) || name[0] == '_';
    for (size_t i = 1; ok && i < n; i++)
        ok = isalnum((unsigned char)name[i]) || name[i] == '_';
    if (!ok)
        return zos_cli_fail(ZOS_EXIT_MALFORMED_ARGS,
                            "--env: '%s' is not a variable name (letters, digits and '_')", name);
    if (cJSON_GetObjectItemCaseSensitive(out, name) != NULL)
        return zos_cli_fail(ZOS_EXIT_MALFORMED_ARGS, "--env: %s is given twice", name);
    cJSON_AddStringToObject(out, name, colon + 1);
    return 0;
}

/* The zerotier network: --zerotier, $GRID_ZEROTIER_ID_TESTING,
 * $GRID_ZEROTIER_ID, the original's default; "none" or "" for none. */
static int pick_zerotier(struct new_args *a)
{
    const char *src = "--zerotier", *v = a->zerotier;
    if (v == NULL && (v = getenv("GRID_ZEROTIER_ID_TESTING")) != NULL && v[0] != '\0')
        src = "GRID_ZEROTIER_ID_TESTING";
    else if (a->zerotier == NULL && (v = getenv("GRID_ZEROTIER_ID")) != NULL && v[0] != '\0')
        src = "GRID_ZEROTIER_ID";
    else if (a->zerotier == NULL)
        v = DEFAULT_ZEROTIER;
    if (v[0] == '\0' || strcmp(v, "none") == 0) {
        a->zt = NULL;
        return 0;
    }
    bool ok = strlen(v) == 16;
    for (size_t i = 0; ok && i < 16; i++)
        ok = isxdigit((unsigned char)v[i]);
    if (!ok)
        return zos_cli_fail(ZOS_EXIT_MALFORMED_ARGS,
                            "%s: a ZeroTier network id is 16 hexadecimal digits, got '%s'", src, v);
    a->zt = v;
    return 0;
}

static const char *const create_keys[] = {
    "root",     "mount",   "host_network", "identity", "nics", "port",    "privileged",
    "hostname", "storage", "name",         "tags",     "env",  "cgroups", "config",
};

static int check_extra(const cJSON *extra)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, extra)
    {
        bool known = false;
        for (size_t i = 0; i < ZOS_ARRAY_LEN(create_keys); i++)
            known |= strcmp(it->string, create_keys[i]) == 0;
        if (!known)
            return zos_cli_fail(ZOS_EXIT_MALFORMED_ARGS,
                                "--extraconfig: unknown key '%s' (known: mount, host_network, "
                                "nics, port, storage, identity, env, cgroups, config, and the "
                                "arguments of corex.create)",
                                it->string);
    }
    return 0;
}

/* The sshkey configured for the node commands go to, or NULL. */
static const char *node_sshkey(const struct zos_cli *cli)
{
    const struct zos_conf *c = cli->conf;
    const char *name = cli->node != NULL ? cli->node : c->app.defaultzos;
    const struct zos_node_conf *n = name != NULL     ? zos_conf_node(c, name)
                                    : c->nnodes == 1 ? &c->nodes[0]
                                                     : NULL;
    return n != NULL ? n->sshkey : NULL;
}

/* Everything but the node: parsed, checked, keys read.  -1 when fine. */
static int new_parse(struct zos_cli *cli, struct new_args *a, int argc, char **argv)
{
    const struct zos_cli_opt opts[] = {
        {"name", true, &a->name, NULL},
        {"root", true, &a->root, NULL},
        {"hostname", true, &a->hostname, NULL},
        {"ports", true, &a->ports, NULL},
        {"env", true, &a->env, NULL},
        {"sshkey", true, &a->sshkey, NULL},
        {"zerotier", true, &a->zerotier, NULL},
        {"extraconfig", true, &a->extraconfig, NULL},
        {"privileged", false, NULL, &a->privileged},
        {"ssh", false, NULL, &a->ssh},
    };
    char *pos[1];
    size_t npos;
    int rc = zos_cli_args_parse("container new", argc, argv, opts, ZOS_ARRAY_LEN(opts), 0, pos, 0,
                                &npos);
    if (rc >= 0)
        return rc;
    if ((a->name != NULL && a->name[0] == '\0') || (a->root != NULL && a->root[0] == '\0'))
        return zos_cli_fail(ZOS_EXIT_MALFORMED_ARGS, "--%s: must not be empty",
                            a->name != NULL && a->name[0] == '\0' ? "name" : "root");
    if (a->name == NULL) {
        zos_cli_name_random(a->genname, sizeof(a->genname));
        a->name = a->genname;
    }
    a->port_map = cJSON_CreateObject();
    a->env_map = cJSON_CreateObject();
    if ((a->ports != NULL && each_pair("ports", a->ports, a->port_map, add_port) != 0) ||
        (a->env != NULL && each_pair("env", a->env, a->env_map, add_env) != 0) ||
        pick_zerotier(a) != 0)
        return ZOS_EXIT_MALFORMED_ARGS;
    if (a->extraconfig != NULL &&
        ((a->extra = zos_cli_json_arg("extraconfig", a->extraconfig)) == NULL ||
         check_extra(a->extra) != 0))
        return ZOS_EXIT_MALFORMED_ARGS;
    if ((rc = zos_cli_sshkeys(a->sshkey != NULL ? a->sshkey : node_sshkey(cli), &a->keys,
                              &a->private_path)) != 0)
        return rc;
    return -1;
}

/* EXTRA over ARGS: objects merged key by key (one level), anything else replaced. */
static void merge(cJSON *args, const cJSON *extra)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, extra)
    {
        cJSON *have = cJSON_GetObjectItemCaseSensitive(args, it->string);
        if (cJSON_IsObject(have) && cJSON_IsObject(it)) {
            const cJSON *kv;
            cJSON_ArrayForEach(kv, it)
            {
                cJSON_DeleteItemFromObjectCaseSensitive(have, kv->string);
                cJSON_AddItemToObject(have, kv->string, cJSON_Duplicate(kv, 1));
            }
        } else {
            cJSON_DeleteItemFromObjectCaseSensitive(args, it->string);
            cJSON_AddItemToObject(args, it->string, cJSON_Duplicate(it, 1));
        }
    }
}

/* The arguments of corex.create (§9.3 step 2). */
static cJSON *create_args(struct new_args *a)
{
    cJSON *args = cJSON_CreateObject(), *nics = cJSON_CreateArray(), *nic, *config;
    cJSON_AddStringToObject(args, "root", a->root != NULL ? a->root : DEFAULT_ROOT);
    cJSON_AddStringToObject(args, "name", a->name);
    cJSON_AddStringToObject(args, "hostname", a->hostname != NULL ? a->hostname : a->name);
    cJSON_AddBoolToObject(args, "privileged", a->privileged);
    nic = cJSON_CreateObject();
    cJSON_AddStringToObject(nic, "type", "default");
    cJSON_AddItemToArray(nics, nic);
    if (a->zt != NULL) {
        nic = cJSON_CreateObject();
        cJSON_AddStringToObject(nic, "type", "zerotier");
        cJSON_AddStringToObject(nic, "id", a->zt);
        cJSON_AddItemToArray(nics, nic);
    }
    cJSON_AddItemToObject(args, "nics", nics);
    cJSON_AddItemToObject(args, "port", a->port_map);
    cJSON_AddItemToObject(args, "env", a->env_map);
    a->port_map = a->env_map = NULL;
    config = cJSON_AddObjectToObject(args, "config");
    cJSON_AddStringToObject(config, "/root/.ssh/authorized_keys", a->keys);
    if (a->extra != NULL)
        merge(args, a->extra);
    return args;
}

/* Whether ARGS gives the container a default nic (port forwards need one). */
static bool has_default_nic(const cJSON *args)
{
    const cJSON *nic;
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(args, "host_network")))
        return false;
    cJSON_ArrayForEach(nic, cJSON_GetObjectItemCaseSensitive(args, "nics"))
    {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(nic, "type");
        if (cJSON_IsString(t) && strcmp(t->valuestring, "default") == 0)
            return true;
    }
    return false;
}

/* Where the container's forwarded ports are reached: the node's address,
 * or under VirtualBox the guest's host-only 192.168.* address (info.nic). */
static void container_ip(struct zos_cli_node *n, char *ip, size_t len)
{
    const struct zos_node_conf *c = zos_cli_node_conf(n);
    struct zos_job_result *r = NULL;
    const cJSON *nic, *addr;
    snprintf(ip, len, "%s", zos_cli_node_address(n));
    if (c == NULL || !c->isvbox ||
        zos_cli_node_job(n, 0, "info.nic", NULL, 10000, NULL, ZOS_EXIT_GENERAL, &r) != 0) {
        zos_job_result_free(r);
        return;
    }
    cJSON_ArrayForEach(nic, r->value)
    {
        cJSON_ArrayForEach(addr, cJSON_GetObjectItemCaseSensitive(nic, "addrs"))
        {
            const cJSON *a = cJSON_GetObjectItemCaseSensitive(addr, "addr");
            if (cJSON_IsString(a) && strncmp(a->valuestring, "192.168.", 8) == 0) {
                snprintf(ip, len, "%.*s", (int)strcspn(a->valuestring, "/"), a->valuestring);
                zos_job_result_free(r);
                return;
            }
        }
    }
    zos_job_result_free(r);
}

/* Steps 4-6 of §9.3: a host port for ssh, the keys, the forward to 22. */
static int ssh_port(struct zos_cli_node *n, unsigned long cid, const struct new_args *a)
{
    struct zos_job_result *r = NULL;
    char port[16], ip[256];
    cJSON *args = cJSON_CreateObject();
    cJSON_AddNumberToObject(args, "number", 1);
    int rc = zos_cli_node_job(n, 0, "socat.reserve", args, zos_cli_node_timeout_ms(n, 30), NULL,
                              ZOS_EXIT_CANT_RESERVE_PORT, &r);
    cJSON_Delete(args);
    const cJSON *first = rc == 0 ? cJSON_GetArrayItem(r->value, 0) : NULL;
    if (rc == 0 && !cJSON_IsNumber(first))
        rc = ZOS_EXIT_CANT_RESERVE_PORT;
    if (rc != 0) {
        if (r != NULL)
            zos_cli_print_failure("socat.reserve", r);
        zos_job_result_free(r);
        return rc == ZOS_EXIT_CANT_RESERVE_PORT
                   ? zos_cli_fail(rc, "container %lu: cannot reserve a port for ssh", cid)
                   : rc;
    }
    snprintf(port, sizeof(port), "%.0f", first->valuedouble);
    zos_job_result_free(r);
    container_ip(n, ip, sizeof(ip));
    if ((rc = zos_cli_container_set(n, cid, ZOS_CONTAINER_SSHKEY, a->private_path)) != 0 ||
        (rc = zos_cli_container_set(n, cid, ZOS_CONTAINER_LAYEREDSSH, "false")) != 0 ||
        (rc = zos_cli_container_set(n, cid, ZOS_CONTAINER_SSHENABLED, "false")) != 0 ||
        (rc = zos_cli_container_set(n, cid, ZOS_CONTAINER_SSHPORT, port)) != 0 ||
        (rc = zos_cli_container_set(n, cid, ZOS_CONTAINER_IP, ip)) != 0)
        return rc;
    args = cJSON_CreateObject();
    cJSON_AddNumberToObject(args, "container", (double)cid);
    cJSON_AddStringToObject(args, "host_port", port);
    cJSON_AddNumberToObject(args, "container_port", 22);
    rc = zos_cli_node_job(n, 0, "corex.portforward-add", args, zos_cli_node_timeout_ms(n, 30), NULL,
                          ZOS_EXIT_CANT_CREATE_CONTAINER, &r);
    cJSON_Delete(args);
    if (rc != 0 && r != NULL)
        zos_cli_print_failure("corex.portforward-add", r);
    zos_job_result_free(r);
    return rc;
}

int zos_cli_container_new(struct zos_cli *cli, int argc, char **argv)
{
    struct new_args a = {0};
    struct zos_cli_node *n = NULL;
    struct zos_job_result *r = NULL;
    cJSON *args = NULL;
    char label[160], id[16];
    int rc = new_parse(cli, &a, argc, argv);
    if (rc >= 0 || (rc = zos_cli_node_open(cli, &n)) != 0)
        goto done;
    args = create_args(&a);
    snprintf(label, sizeof(label), "creating container %s", a.name);
    rc = zos_cli_node_job(n, 0, "corex.create", args, zos_cli_node_timeout_ms(n, CREATE_TIMEOUT_S),
                          label, ZOS_EXIT_CANT_CREATE_CONTAINER, &r);
    if (rc == 0 &&
        (!cJSON_IsNumber(r->value) || r->value->valuedouble < 1 || r->value->valuedouble > 65534 ||
         r->value->valuedouble != (double)(unsigned long)r->value->valuedouble))
        rc = zos_cli_fail(ZOS_EXIT_CANT_CREATE_CONTAINER,
                          "corex.create gave no container id from 1 to 65534");
    if (rc != 0) {
        if (r != NULL)
            zos_cli_print_failure("corex.create", r);
        goto done;
    }
    unsigned long cid = (unsigned long)r->value->valuedouble;
    snprintf(id, sizeof(id), "%lu", cid);
    printf("%s\n", id);
    fflush(stdout);
    if ((rc = zos_cli_node_set(n, ZOS_CLI_LAST_CONTAINER_KEY, id)) != 0)
        goto done;
    if (has_default_nic(args) && (rc = ssh_port(n, cid, &a)) != 0) {
        zos_cli_fail(rc, "container %lu was created, but its ssh port forward failed", cid);
        goto done;
    }
    if (a.ssh)
        rc = zos_cli_ssh_run(cli, n, cid, "sshenable", 0, NULL);
done:
    cJSON_Delete(args);
    zos_job_result_free(r);
    new_args_free(&a);
    zos_cli_node_close(n);
    return rc;
}
