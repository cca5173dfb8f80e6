/* cmd_ssh.c -- the ssh sub-commands of "zos container": sshenable, sshinfo,
 * shell, exec, upload, download, mount.
 *
 *   sshenable: flist-layer when the root has no sshd --> inside the container
 *              (corex.dispatch): mkdir /root/.ssh /etc/ssh, chmod, service ssh
 *              start --> container:<id>:sshenabled = true --> the connection line
 *   shell/exec/upload/download: the ssh module (libssh, host key pinned in
 *              zos-known_hosts beside the config file, the proxy's too) to
 *              root@<ip>:<sshport>
 *   mount:     sshfs, a child process
 *
 * Where a container is reached comes from the keys zos stored when it made
 * the container (container:<id>:ip, :sshport, :sshkey), read with five GETs
 * and checked by the container module, as the proxy's ZOS.SSH does.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "zos/ssh.h"
#include "zos/util.h"
#include "zos/zos.h"

#define SSH_FLIST     "https://hub.grid.tf/tf-bootable/ubuntu:16.04.flist"
#define SSH_TIMEOUT_S 60

/* The ssh facts of CID from the node, checked (zos_container_ssh_check):
 * 0 or the exit code. */
static int load_facts(struct zos_cli_node *n, unsigned long cid, bool need_enabled,
                      struct zos_container_ssh *k)
{
    static const int exit_codes[] = {
        [ZOS_CONTAINER_NO_SSH] = ZOS_EXIT_SSH_NOT_ENABLED,
        [ZOS_CONTAINER_IMPLAUSIBLE] = ZOS_EXIT_GENERAL,
        [ZOS_CONTAINER_SSH_OFF] = ZOS_EXIT_SSH_NOT_ENABLED,
    };
    char *v[ZOS_CONTAINER_NSSH] = {NULL}, key[ZOS_CONTAINER_KEY_LEN], err[256];
    int rc = 0;
    for (int f = 0; rc == 0 && f < ZOS_CONTAINER_NSSH; f++) {
        zos_container_key(cid, (enum zos_container_field)f, key);
        rc = zos_cli_node_get(n, key, &v[f]);
    }
    enum zos_container_verdict why =
        rc == 0 ? zos_container_ssh_check(cid, v, need_enabled, k, err, sizeof(err))
                : ZOS_CONTAINER_OK;
    if (why != ZOS_CONTAINER_OK)
        rc = zos_cli_fail(exit_codes[why], "%s", err);
    for (int f = 0; f < ZOS_CONTAINER_NSSH; f++)
        free(v[f]);
    return rc;
}

static const char *private_key(const struct zos_container_ssh *k)
{
    return k->key[0] != '\0' ? k->key : NULL;
}

static void print_info(const struct zos_container_ssh *k)
{
    char line[ZOS_CONTAINER_IP_MAX + ZOS_CONTAINER_KEY_MAX + 32];
    zos_container_ssh_line(k, line, sizeof(line));
    printf("%s\n", line);
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

static int sshenable(struct zos_cli_node *n, unsigned long cid, const struct zos_container_ssh *k)
{
    char root[1024];
    int rc;
    if (!k->layered) {
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
        if ((rc = zos_cli_container_set(n, cid, ZOS_CONTAINER_LAYEREDSSH, "true")) != 0)
            return rc;
    }
    if ((rc = inside(n, cid, "/bin/mkdir", "-p", "/root/.ssh", NULL)) != 0 ||
        (rc = inside(n, cid, "/bin/mkdir", "-p", "/etc/ssh", NULL)) != 0 ||
        (rc = inside(n, cid, "/bin/chmod", "700", "-R", "/etc/ssh")) != 0 ||
        (rc = inside(n, cid, "service", "ssh", "start", NULL)) != 0)
        return rc;
    if ((rc = zos_cli_container_set(n, cid, ZOS_CONTAINER_SSHENABLED, "true")) != 0)
        return rc;
    print_info(k);
    return 0;
}

/* ---- the ssh module ---- */

/* The pin file, zos-known_hosts beside the config file (the proxy's too).
 * zos before it used <config dir>/known_hosts: its pins move over the first
 * time (zos_ssh_pins_migrate; that file becomes known_hosts.migrated). */
/* sshfs (OpenSSH) pins in "<pin file>.sshfs": the file an earlier zos kept
 * beside its old pin file OLD moves to TO's, once -- never over one that
 * exists, never a symlink or anything but a regular file. */
static void move_sshfs_pins(const struct zos_cli *cli, const char *old, const char *to)
{
    char from[4300], dest[4300];
    struct stat st;
    snprintf(from, sizeof(from), "%s.sshfs", old);
    snprintf(dest, sizeof(dest), "%s.sshfs", to);
    if (lstat(from, &st) != 0 || !S_ISREG(st.st_mode))
        return;
    if (link(from, dest) != 0) { /* EEXIST: the new one wins */
        zos_cli_debug(cli, "ssh: %s left as it is: %s", from, strerror(errno));
        return;
    }
    if (unlink(from) != 0)
        zos_cli_debug(cli, "ssh: %s: %s", from, strerror(errno));
    else
        zos_cli_debug(cli, "ssh: sshfs host keys moved from %s to %s", from, dest);
}

static void known_hosts(const struct zos_cli *cli, char *buf, size_t len)
{
    static const char name[] = "zos-known_hosts";
    char old[4200], err[512];
    zos_known_hosts_path(cli->conf_path, buf, len);
    size_t dir = strlen(buf) - (sizeof(name) - 1); /* BUF ends with NAME */
    snprintf(old, sizeof(old), "%.*sknown_hosts", (int)dir, buf);
    int moved = zos_ssh_pins_migrate(old, buf, err, sizeof(err));
    if (moved < 0)
        zos_cli_debug(cli, "ssh: %s", err);
    else if (moved > 0)
        zos_cli_debug(cli, "ssh: %d host keys moved from %s to %s", moved, old, buf);
    move_sshfs_pins(cli, old, buf);
}

static int ssh_open(struct zos_cli *cli, const struct zos_container_ssh *k, struct zos_ssh **s)
{
    char pins[4200], err[512];
    known_hosts(cli, pins, sizeof(pins));
    struct zos_ssh_opts o = {
        .host = k->ip,
        .port = k->port,
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

static int ssh_session(struct zos_cli *cli, const struct zos_container_ssh *k, const char *sub,
                       int argc, char **argv)
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

static int sshfs(struct zos_cli *cli, const struct zos_container_ssh *k, int argc, char **argv)
{
    char remote[4096], port[32], opts[4200 + ZOS_CONTAINER_KEY_MAX + 100], pins[4200];
    const char *dest = mount_dest(argc, argv), *key = private_key(k);
    int status;
    known_hosts(cli, pins, sizeof(pins));
    snprintf(remote, sizeof(remote), "root@%s:%s", k->ip, argv[0]);
    snprintf(port, sizeof(port), "%d", k->port);
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
    struct zos_container_ssh k;
    bool enable = strcmp(sub, "sshenable") == 0;
    int rc = load_facts(n, cid, !enable, &k);
    if (rc != 0)
        return rc;
    if (enable) {
        rc = sshenable(n, cid, &k);
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
    return rc;
}
