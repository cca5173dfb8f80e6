/* cmd_config.c -- configure, remove, forgetvm, setdefault, showconfig,
 * showactive, showactiveconfig: the commands that only touch the config file.
 *
 * They never connect to a node.  Every change goes through zos_conf_set
 * (the same validation as loading) and zos_conf_save (atomic, mode 0600).
 * Secrets (secret, password, requirepass) are never printed: the show*
 * commands print "********" instead.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "zos/zos.h"

#define MASK "********"

static bool is_secret_key(const char *key, size_t len)
{
    static const char *secrets[] = {"secret", "password", "requirepass"};
    for (size_t i = 0; i < ZOS_ARRAY_LEN(secrets); i++)
        if (strlen(secrets[i]) == len && strncasecmp(key, secrets[i], len) == 0)
            return true;
    return false;
}

static bool reserved_name(const char *name)
{
    return strcasecmp(name, "app") == 0 || strcasecmp(name, "proxy") == 0;
}

/* The name from --name=<name>, or from one word; prints the error otherwise. */
static int name_arg(const char *cmd, int argc, char **argv, const char **name)
{
    const struct zos_cli_opt opts[] = {{"name", true, name, NULL}};
    char *pos[1];
    size_t npos;
    int rc = zos_cli_args_parse(cmd, argc, argv, opts, 1, 0, pos, 1, &npos);
    if (rc >= 0)
        return rc;
    if (*name == NULL && npos == 1)
        *name = pos[0];
    else if (npos == 1)
        return zos_cli_fail(ZOS_EXIT_MALFORMED_ARGS, "%s: give the name once, with --name", cmd);
    if (*name == NULL || (*name)[0] == '\0') {
        return zos_cli_usage_error(cmd, "--name is required");
    }
    return -1;
}

static int unknown_node(const struct zos_cli *cli, const char *name)
{
    return zos_cli_fail(ZOS_EXIT_NOT_CONFIGURED,
                        "no node named '%s' in %s ('zos showconfig' lists them)", name,
                        cli->conf_path);
}

/* zos_conf_set with the CLI's messages: a bad node name is exit 22. */
static int set_key(struct zos_cli *cli, const char *section, const char *key, const char *value,
                   const char *option)
{
    char err[512];
    if (zos_conf_set(cli->conf, section, key, value, err, sizeof(err)) == 0)
        return 0;
    if (strncmp(err, "bad section name", 16) == 0)
        return zos_cli_fail(ZOS_EXIT_INVALID_NAME, "--name: %s", err);
    return zos_cli_fail(ZOS_EXIT_MALFORMED_ARGS, "--%s: %s", option, err);
}

/* "~/x" as "$HOME/x"; other paths as given.  BUF holds the result. */
static const char *expand_home(const char *path, char *buf, size_t len)
{
    const char *home = getenv("HOME");
    if (strncmp(path, "~/", 2) != 0 || home == NULL)
        return path;
    snprintf(buf, len, "%s/%s", home, path + 2);
    return buf;
}

struct configure_args {
    const char *name, *address, *port, *secret, *sshkey;
    bool setdefault, tls, notls;
};

static int configure_check(const struct configure_args *a)
{
    long port;
    if (a->name == NULL || a->name[0] == '\0') {
        return zos_cli_usage_error("configure", "--name is required");
    }
    if (reserved_name(a->name))
        return zos_cli_fail(ZOS_EXIT_INVALID_NAME,
                            "--name: '%s' is reserved for the settings of zos; choose another name",
                            a->name);
    if (a->port != NULL && !zos_cli_parse_int(a->port, 1, 65535, &port))
        return zos_cli_fail(ZOS_EXIT_MALFORMED_ARGS,
                            "--port: expected a port number from 1 to 65535, got '%s'", a->port);
    if (a->address != NULL && a->address[0] == '\0')
        return zos_cli_fail(ZOS_EXIT_MALFORMED_ARGS, "--address: must not be empty");
    if (a->tls && a->notls)
        return zos_cli_fail(ZOS_EXIT_MALFORMED_ARGS, "give --tls or --no-tls, not both");
    return -1;
}

int zos_cli_cmd_configure(struct zos_cli *cli, int argc, char **argv)
{
    struct configure_args a = {0};
    const struct zos_cli_opt opts[] = {
        {"name", true, &a.name, NULL},     {"address", true, &a.address, NULL},
        {"port", true, &a.port, NULL},     {"secret", true, &a.secret, NULL},
        {"sshkey", true, &a.sshkey, NULL}, {"setdefault", false, NULL, &a.setdefault},
        {"tls", false, NULL, &a.tls},      {"no-tls", false, NULL, &a.notls},
    };
    char *pos[1], keybuf[4096];
    size_t npos;
    int rc =
        zos_cli_args_parse("configure", argc, argv, opts, ZOS_ARRAY_LEN(opts), 0, pos, 0, &npos);
    if (rc >= 0 || (rc = configure_check(&a)) >= 0)
        return rc;
    bool exists = zos_conf_node(cli->conf, a.name) != NULL;
    const char *address = a.address != NULL ? a.address : exists ? NULL : "127.0.0.1";
    if ((address != NULL && (rc = set_key(cli, a.name, "address", address, "address")) != 0) ||
        (a.port != NULL && (rc = set_key(cli, a.name, "port", a.port, "port")) != 0) ||
        (a.secret != NULL &&
         (rc = set_key(cli, a.name, "secret", a.secret[0] ? a.secret : NULL, "secret")) != 0) ||
        (a.sshkey != NULL &&
         (rc = set_key(cli, a.name, "sshkey",
                       a.sshkey[0] ? expand_home(a.sshkey, keybuf, sizeof(keybuf)) : NULL,
                       "sshkey")) != 0) ||
        ((a.tls || a.notls) &&
         (rc = set_key(cli, a.name, "tls", a.tls ? "yes" : "no", "tls")) != 0))
        return rc;
    if ((a.setdefault || cli->conf->app.defaultzos == NULL) &&
        (rc = set_key(cli, "app", "defaultzos", a.name, "setdefault")) != 0)
        return rc;
    return zos_cli_save_conf(cli);
}

static int remove_node(struct zos_cli *cli, const char *cmd, int argc, char **argv, bool vm)
{
    const char *name = NULL;
    int rc = name_arg(cmd, argc, argv, &name);
    if (rc >= 0)
        return rc;
    const struct zos_node_conf *n = zos_conf_node(cli->conf, name);
    if (n == NULL)
        return unknown_node(cli, name);
    if (vm && (rc = zos_cli_vm_delete(cli, n)) != 0)
        return rc;
    zos_conf_remove_node(cli->conf, name);
    return zos_cli_save_conf(cli);
}

int zos_cli_cmd_remove(struct zos_cli *cli, int argc, char **argv)
{
    return remove_node(cli, "remove", argc, argv, true);
}

int zos_cli_cmd_forgetvm(struct zos_cli *cli, int argc, char **argv)
{
    return remove_node(cli, "forgetvm", argc, argv, false);
}

int zos_cli_cmd_setdefault(struct zos_cli *cli, int argc, char **argv)
{
    char *pos[1];
    size_t npos;
    int rc = zos_cli_args_parse("setdefault", argc, argv, NULL, 0, 0, pos, 1, &npos);
    if (rc >= 0)
        return rc;
    if (npos == 0) {
        return zos_cli_usage_error("setdefault", "which node?");
    }
    if (zos_conf_node(cli->conf, pos[0]) == NULL)
        return unknown_node(cli, pos[0]);
    if ((rc = set_key(cli, "app", "defaultzos", pos[0], "setdefault")) != 0)
        return rc;
    return zos_cli_save_conf(cli);
}

static int no_args(const char *cmd, int argc, char **argv)
{
    char *pos[1];
    size_t npos;
    return zos_cli_args_parse(cmd, argc, argv, NULL, 0, 0, pos, 0, &npos);
}

/* One line of the file, with the value of a secret key replaced. */
static void print_masked_line(const char *line, size_t len)
{
    const char *p = line, *end = line + len;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    const char *key = p;
    while (p < end && *p != '=' && *p != ':' && *p != ' ' && *p != '\t')
        p++;
    size_t klen = (size_t)(p - key);
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (p < end && (*p == '=' || *p == ':') && klen > 0 && key[0] != ';' && key[0] != '#' &&
        key[0] != '[' && is_secret_key(key, klen)) {
        const char *v = p + 1;
        bool blank = v < end && (*v == ' ' || *v == '\t');
        printf("%.*s%s" MASK "\n", (int)(v - line), line, blank ? " " : "");
        return;
    }
    printf("%.*s\n", (int)len, line);
}

int zos_cli_cmd_showconfig(struct zos_cli *cli, int argc, char **argv)
{
    int rc = no_args("showconfig", argc, argv);
    if (rc >= 0)
        return rc;
    FILE *f = fopen(cli->conf_path, "r");
    if (f == NULL)
        return zos_cli_fail(ZOS_EXIT_GENERAL, "%s: cannot read it", cli->conf_path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) >= 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            n--;
        print_masked_line(line, (size_t)n);
    }
    free(line);
    fclose(f);
    return 0;
}

/* The active node: --node, else [app] defaultzos, else the only node;
 * NULL after printing why (*RC: 17 for an unknown --node, else 5 after the
 * first-time message). */
static const struct zos_node_conf *active_node(const struct zos_cli *cli, int *rc)
{
    const struct zos_conf *c = cli->conf;
    *rc = ZOS_EXIT_UNCONFIGURED;
    if (cli->node != NULL) {
        if (zos_conf_node(c, cli->node) == NULL)
            *rc = unknown_node(cli, cli->node);
        return zos_conf_node(c, cli->node);
    }
    if (c->app.defaultzos != NULL)
        return zos_conf_node(c, c->app.defaultzos);
    if (c->nnodes == 1)
        return &c->nodes[0];
    zos_cli_first_time();
    return NULL;
}

int zos_cli_cmd_showactive(struct zos_cli *cli, int argc, char **argv)
{
    int rc = no_args("showactive", argc, argv);
    if (rc >= 0)
        return rc;
    const struct zos_node_conf *n = active_node(cli, &rc);
    if (n == NULL)
        return rc;
    printf("%s\n", n->name);
    return 0;
}

int zos_cli_cmd_showactiveconfig(struct zos_cli *cli, int argc, char **argv)
{
    int rc = no_args("showactiveconfig", argc, argv);
    if (rc >= 0)
        return rc;
    const struct zos_node_conf *n = active_node(cli, &rc);
    if (n == NULL)
        return rc;
    printf("[%s]\naddress = %s\nport = %d\ntls = %s\nisvbox = %s\n", n->name, n->address, n->port,
           n->tls ? "yes" : "no", n->isvbox ? "true" : "false");
    if (n->verify == ZOS_TLS_VERIFY_CA)
        printf("tls-verify = ca:%s\n", n->verify_ca);
    else if (n->verify == ZOS_TLS_VERIFY_SHA256) {
        printf("tls-verify = sha256:");
        for (size_t i = 0; i < sizeof(n->verify_sha256); i++)
            printf("%02x", n->verify_sha256[i]);
        printf("\n");
    }
    if (n->secret != NULL)
        printf("secret = " MASK "\n");
    if (n->sshkey != NULL)
        printf("sshkey = %s\n", n->sshkey);
    if (n->db > 0)
        printf("db = %d\n", n->db);
    if (n->password != NULL)
        printf("password = " MASK "\n");
    if (n->listen != NULL)
        printf("listen = %s\n", n->listen);
    return 0;
}
