/* cmd_ssh.c -- the ssh sub-commands of "zos container": sshenable, sshinfo,
 * shell, exec, upload, download, mount.
 *
 *   sshenable: flist-layer when the root has no sshd --> inside the container
 *              (corex.dispatch): mkdir /root/.ssh /etc/ssh, chmod, service ssh
 *              start --> container:<id>:sshenabled = true --> the connection line
 *   shell/exec/upload/download: the ssh module (libssh, host key pinned in
 *              <config dir>/known_hosts) to root@<ip>:<sshport>
 *   mount:     sshfs, a child process
 *
 * Where a container is reached comes from the keys zos stored when it made
 * the container (container:<id>:ip, :sshport, :sshkey).
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "zos/ssh.h"
#include "zos/zos.h"

#define SSH_FLIST     "https://hub.grid.tf/tf-bootable/ubuntu:16.04.flist"
#define SSH_TIMEOUT_S 60

/* The stored facts about a container's ssh. */
struct ssh_keys {
    char *ip, *port, *key, *enabled, *layered;
};

static void keys_free(struct ssh_keys *k)
{
    free(k->ip);
    free(k->port);
    free(k->key);
    free(k->enabled);
    free(k->layered);
}

static int get_key(struct zos_cli_node *n, unsigned long cid, const char *what, char **out)
{
    char key[64];
    snprintf(key, sizeof(key), "container:%lu:%s", cid, what);
    return zos_cli_node_get(n, key, out);
}

/* Letters and digits and the characters of EXTRA only, not starting with '-'. */
static bool plain_word(const char *w, const char *extra)
{
    if (*w == '\0' || *w == '-')
        return false;
    for (const char *c = w; *c != '\0'; c++)
        if (!isalnum((unsigned char)*c) && strchr(extra, *c) == NULL)
            return false;
    return true;
}

static int load_keys(struct zos_cli_node *n, unsigned long cid, struct ssh_keys *k)
{
    int rc;
    memset(k, 0, sizeof(*k));
    if ((rc = get_key(n, cid, "ip", &k->ip)) != 0 ||
        (rc = get_key(n, cid, "sshport", &k->port)) != 0 ||
        (rc = get_key(n, cid, "sshkey", &k->key)) != 0 ||
        (rc = get_key(n, cid, "sshenabled", &k->enabled)) != 0 ||
        (rc = get_key(n, cid, "layeredssh", &k->layered)) != 0)
        return rc;
    if (k->port == NULL || k->ip == NULL)
        return zos_cli_fail(ZOS_EXIT_SSH_NOT_ENABLED,
                            "container %lu has no ssh port forward (zos did not create it)", cid);
    /* These come from the node's Redis, which others may write: they reach
     * ssh options and sshfs's comma-separated -o list. */
    if (!plain_word(k->ip, "._-:") || !plain_word(k->port, "") ||
        (k->key != NULL && !plain_word(k->key, "._-/+@~")))
        return zos_cli_fail(ZOS_EXIT_GENERAL,
                            "container %lu: the ssh settings stored on the node "
                            "(container:%lu:ip/sshport/sshkey) are not plausible: refusing them",
                            cid, cid);
    return 0;
}

static bool enabled(const struct ssh_keys *k)
{
    return k->enabled != NULL && strcmp(k->enabled, "true") == 0;
}

static const char *private_key(const struct ssh_keys *k)
{
    return k->key != NULL && strcmp(k->key, "false") != 0 && k->key[0] != '\0' ? k->key : NULL;
}

static void print_info(const struct ssh_keys *k)
{
    const char *key = private_key(k);
    printf("root@%s -p %s%s%s\n", k->ip, k->port, key != NULL ? " -i " : "",
           key != NULL ? key : "");
}

/* Runs LINE inside the container (corex.dispatch, core.system). */
static int inside(struct zos_cli_node *n, unsigned long cid, const char *name, const char *arg1,
                  const char *arg2, const char *arg3)
{
    struct zos_job_result *r = NULL;
    cJSON *args = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(args, "args");
    const char *words[] = {arg1, arg2, arg3};
    cJSON_AddStringToObject(args, "name", name);
    for (size_t i = 0; i < 3 && words[i] != NULL; i++)
        cJSON_AddItemToArray(list, cJSON_CreateString(words[i]));
    cJSON_AddStringToObject(args, "dir", "");
    cJSON_AddStringToObject(args, "stdin", "");
    int rc =
        zos_cli_node_job(n, cid, "core.system", args, zos_cli_node_timeout_ms(n, SSH_TIMEOUT_S),
                         "enabling ssh", ZOS_EXIT_SSH_NOT_ENABLED, &r);
    if (rc != 0 && r != NULL)
        zos_cli_print_failure(name, r);
    zos_job_result_free(r);
    cJSON_Delete(args);
    return rc;
}

/* The root flist of CID (corex.get), into ROOT. */
static int container_root(struct zos_cli_node *n, unsigned long cid, char *root, size_t len)
{
    struct zos_job_result *r = NULL;
    cJSON *args = cJSON_CreateObject();
    cJSON_AddNumberToObject(args, "query", (double)cid);
    int rc = zos_cli_node_job(n, 0, "corex.get", args, zos_cli_node_timeout_ms(n, 30), NULL,
                              ZOS_EXIT_CMD_FAILED, &r);
    cJSON_Delete(args);
    const cJSON *c = rc == 0 ? cJSON_GetObjectItemCaseSensitive(r->value, "container") : NULL;
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(c, "arguments");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(a, "root");
    if (rc == 0 && c == NULL)
        rc = zos_cli_fail(ZOS_EXIT_CONTAINER_DOESNT_EXIST, "container %lu does not exist", cid);
    else if (rc != 0 && r != NULL)
        zos_cli_print_failure("corex.get", r);
    snprintf(root, len, "%s", cJSON_IsString(v) ? v->valuestring : "");
    zos_job_result_free(r);
    return rc;
}

static int sshenable(struct zos_cli_node *n, unsigned long cid, struct ssh_keys *k)
{
    char key[64], root[1024];
    int rc;
    if (k->layered == NULL || strcmp(k->layered, "true") != 0) {
        if ((rc = container_root(n, cid, root, sizeof(root))) != 0)
            return rc;
        if (strstr(root, "tf-bootable/ubuntu") == NULL) {
            struct zos_job_result *r = NULL;
            cJSON *args = cJSON_CreateObject();
            cJSON_AddNumberToObject(args, "container", (double)cid);
            cJSON_AddStringToObject(args, "flist", SSH_FLIST);
            rc = zos_cli_node_job(n, 0, "corex.flist-layer", args,
                                  zos_cli_node_timeout_ms(n, SSH_TIMEOUT_S), "layering ssh",
                                  ZOS_EXIT_SSH_NOT_ENABLED, &r);
            if (rc != 0 && r != NULL)
                zos_cli_print_failure("corex.flist-layer", r);
            zos_job_result_free(r);
            cJSON_Delete(args);
            if (rc != 0)
                return rc;
        }
        snprintf(key, sizeof(key), "container:%lu:layeredssh", cid);
        if ((rc = zos_cli_node_set(n, key, "true")) != 0)
            return rc;
    }
    if ((rc = inside(n, cid, "/bin/mkdir", "-p", "/root/.ssh", NULL)) != 0 ||
        (rc = inside(n, cid, "/bin/mkdir", "-p", "/etc/ssh", NULL)) != 0 ||
        (rc = inside(n, cid, "/bin/chmod", "700", "-R", "/etc/ssh")) != 0 ||
        (rc = inside(n, cid, "service", "ssh", "start", NULL)) != 0)
        return rc;
    snprintf(key, sizeof(key), "container:%lu:sshenabled", cid);
    if ((rc = zos_cli_node_set(n, key, "true")) != 0)
        return rc;
    print_info(k);
    return 0;
}

/* ---- the ssh module ---- */

static void known_hosts(const struct zos_cli *cli, char *buf, size_t len)
{
    const char *slash = strrchr(cli->conf_path, '/');
    int dir = slash != NULL ? (int)(slash - cli->conf_path) : 1;
    snprintf(buf, len, "%.*s/known_hosts", dir, slash != NULL ? cli->conf_path : ".");
}

static int ssh_open(struct zos_cli *cli, const struct ssh_keys *k, struct zos_ssh **s)
{
    char pins[4200], err[512];
    long port;
    known_hosts(cli, pins, sizeof(pins));
    if (!zos_cli_parse_int(k->port, 1, 65535, &port))
        return zos_cli_fail(ZOS_EXIT_SSH_NOT_ENABLED, "bad ssh port '%s' stored for the container",
                            k->port);
    struct zos_ssh_opts o = {
        .host = k->ip,
        .port = (int)port,
        .user = "root",
        .key_path = private_key(k),
        .known_hosts = pins,
        .timeout_ms = (cli->timeout_s > 0 ? cli->timeout_s : 10) * 1000,
    };
    if (zos_ssh_init() != ZOS_OK)
        return zos_cli_fail(ZOS_EXIT_GENERAL, "cannot initialise libssh");
    *s = zos_ssh_connect(&o, err, sizeof(err));
    if (*s == NULL)
        return zos_cli_fail(ZOS_EXIT_UNREACHABLE, "%s", err);
    return 0;
}

static int ssh_session(struct zos_cli *cli, const struct ssh_keys *k, const char *sub, int argc,
                       char **argv)
{
    struct zos_ssh *s = NULL;
    struct zos_ssh_result res = {0};
    struct zos_ssh_bar bar = {.out = stderr};
    char err[512];
    int status = 0, rc = ssh_open(cli, k, &s);
    if (rc != 0)
        return rc;
    if (strcmp(sub, "shell") == 0) {
        rc = zos_ssh_shell(s, NULL, &status, err, sizeof(err)) == ZOS_OK ? status : -1;
    } else if (strcmp(sub, "exec") == 0) {
        char *line = zos_cli_join(argv, (size_t)argc);
        struct zos_ssh_exec_io io = {.out = stdout, .err = stderr};
        fflush(stdout);
        rc = zos_ssh_exec(s, line != NULL ? line : "", &io, &res, err, sizeof(err)) == ZOS_OK
                 ? res.status
                 : -1;
        zos_ssh_result_clear(&res);
        free(line);
    } else if (strcmp(sub, "upload") == 0) {
        rc = zos_ssh_upload(s, argv[0], argc > 1 ? argv[1] : ".", zos_ssh_bar_progress, &bar, err,
                            sizeof(err));
    } else {
        rc = zos_ssh_download(s, argv[0], argc > 1 ? argv[1] : ".", zos_ssh_bar_progress, &bar, err,
                              sizeof(err));
    }
    if (rc < 0)
        rc = zos_cli_fail(ZOS_EXIT_GENERAL, "%s: %s", sub, err);
    zos_ssh_free(s);
    zos_ssh_cleanup();
    return rc;
}

/* ---- sshfs ---- */

static bool on_path(const char *prog)
{
    const char *path = getenv("PATH");
    char buf[4096];
    while (path != NULL && *path != '\0') {
        size_t n = strcspn(path, ":");
        snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, n ? path : ".", prog);
        if (access(buf, X_OK) == 0)
            return true;
        path += n + (path[n] == ':');
    }
    return false;
}

static bool is_mountpoint(const char *dir)
{
    char real[4096], line[8192];
    FILE *f = fopen("/proc/self/mounts", "r");
    bool found = false;
    if (f == NULL || realpath(dir, real) == NULL) {
        if (f != NULL)
            fclose(f);
        return false;
    }
    while (!found && fgets(line, sizeof(line), f) != NULL) {
        char dev[4096], mnt[4096];
        if (sscanf(line, "%4095s %4095s", dev, mnt) == 2 && strcmp(mnt, real) == 0)
            found = true;
    }
    fclose(f);
    return found;
}

static const char *mount_dest(int argc, char **argv)
{
    if (argc > 1)
        return argv[1];
    const char *base = strrchr(argv[0], '/');
    return base != NULL && base[1] != '\0' ? base + 1 : "zos-mount";
}

static int sshfs(struct zos_cli *cli, const struct ssh_keys *k, int argc, char **argv)
{
    char remote[4096], port[32], opts[4400], pins[4200];
    const char *dest = mount_dest(argc, argv), *key = private_key(k);
    int status;
    known_hosts(cli, pins, sizeof(pins));
    snprintf(remote, sizeof(remote), "root@%s:%s", k->ip, argv[0]);
    snprintf(port, sizeof(port), "%s", k->port);
    snprintf(opts, sizeof(opts), "StrictHostKeyChecking=accept-new,UserKnownHostsFile=%s.sshfs%s%s",
             pins, key != NULL ? ",IdentityFile=" : "", key != NULL ? key : "");
    if (mkdir(dest, 0755) != 0 && errno != EEXIST)
        return zos_cli_fail(ZOS_EXIT_GENERAL, "mount: %s: %s", dest, strerror(errno));
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        char *const child[] = {"sshfs", "-p", port, "-o", opts, "--", remote, (char *)dest, NULL};
        execvp("sshfs", child);
        _exit(127);
    }
    if (pid < 0 || waitpid(pid, &status, 0) < 0)
        return zos_cli_fail(ZOS_EXIT_GENERAL, "mount: cannot run sshfs: %s", strerror(errno));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return zos_cli_fail(ZOS_EXIT_GENERAL, "mount: sshfs failed (exit status %d)",
                            WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    printf("%s mounted on %s\n", remote, dest);
    return 0;
}

/* ---- entry points ---- */

int zos_cli_ssh_check(const char *sub, int argc, char **argv)
{
    char cmd[64], **pos = calloc((size_t)argc + 1, sizeof(*pos));
    size_t npos = 0;
    bool words = strcmp(sub, "exec") == 0;
    size_t want =
        words ? (size_t)argc
        : strcmp(sub, "upload") == 0 || strcmp(sub, "download") == 0 || strcmp(sub, "mount") == 0
            ? 2
            : 0;
    snprintf(cmd, sizeof(cmd), "container %s", sub);
    int rc = pos == NULL
                 ? ZOS_EXIT_GENERAL
                 : zos_cli_args_parse(cmd, argc, argv, NULL, 0,
                                      words ? ZOS_ARGS_STOP_AT_POSITIONAL : 0, pos, want, &npos);
    if (rc < 0 && (words || want > 0) && npos == 0) {
        rc = zos_cli_usage_error(cmd, "%s", words ? "which command?" : "which file?");
    } else if (rc < 0 && strcmp(sub, "upload") == 0 && access(pos[0], F_OK) != 0) {
        rc = zos_cli_fail(ZOS_EXIT_FILE_DOESNT_EXIST, "upload: %s: %s", pos[0], strerror(errno));
    } else if (rc < 0 && strcmp(sub, "mount") == 0 && !on_path("sshfs")) {
        rc = zos_cli_fail(ZOS_EXIT_DEPS_NOT_INSTALLED,
                          "mount: sshfs is not installed (Debian: apt-get install sshfs)");
    } else if (rc < 0 && strcmp(sub, "mount") == 0 && is_mountpoint(mount_dest((int)npos, pos))) {
        rc = zos_cli_fail(ZOS_EXIT_PATH_MOUNTED, "mount: %s is already a mount point",
                          mount_dest((int)npos, pos));
    }
    free(pos);
    return rc;
}

int zos_cli_ssh_run(struct zos_cli *cli, struct zos_cli_node *n, unsigned long cid, const char *sub,
                    int argc, char **argv)
{
    struct ssh_keys k;
    int rc = load_keys(n, cid, &k);
    if (rc != 0) {
        keys_free(&k);
        return rc;
    }
    if (strcmp(sub, "sshenable") == 0) {
        rc = sshenable(n, cid, &k);
    } else if (!enabled(&k)) {
        rc = zos_cli_fail(ZOS_EXIT_SSH_NOT_ENABLED,
                          "ssh is not enabled in container %lu: run 'zos container %lu sshenable'",
                          cid, cid);
    } else if (strcmp(sub, "sshinfo") == 0) {
        print_info(&k);
    } else if (strcmp(sub, "mount") == 0) {
        rc = sshfs(cli, &k, argc, argv);
    } else {
        char **words = argv;
        int nwords = argc;
        while (nwords > 0 && strcmp(words[0], "--") == 0) {
            words++;
            nwords--;
        }
        rc = ssh_session(cli, &k, sub, nwords, words);
    }
    keys_free(&k);
    return rc;
}
