/* cmd_vm.c -- zos init (a local Zero-OS machine) and the VM side of zos remove.
 *
 *   init: options checked --> ISO (--iso, else ~/.zos/zos.iso, downloaded
 *         once from $ZOS_ISO_URL or bootstrap.grid.tf when missing)
 *         --> VirtualBox (vbox module: create or reset, start) or qemu
 *         --> PING until PONG (spinner) --> the node configured as default
 *
 * The VirtualBox work itself (VBoxManage sequence, port conflicts) is the
 * vbox module's, the download the fetch module's; this file maps their
 * error classes to the original's exit codes: not installed 4 (qemu 7),
 * port taken 8, download failed 14.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "zos/fetch.h"
#include "zos/qemu.h"
#include "zos/util.h"
#include "zos/vbox.h"
#include "zos/zos.h"

#define BOOT_TIMEOUT_S 600
#define ISO_URL        "https://bootstrap.grid.tf/iso/master/0/development%20debug"
#define ISO_URL_ENV    "ZOS_ISO_URL" /* overrides ISO_URL; http:// allowed (tests) */

struct init_args {
    const char *name, *disksize, *memory, *redisport, *iso, *hypervisor;
    bool reset;
    long disk_gb, mem_gb, port;
    bool qemu;
    bool download; /* no --iso and no ~/.zos/zos.iso yet */
    char iso_path[4096];
};

bool zos_cli_vbox_available(void)
{
    return true;
}

static int vbox_error(int rc, const char *err)
{
    if (rc == ZOS_VBOX_NOTFOUND)
        return zos_cli_fail(ZOS_EXIT_VBOX_NOT_INSTALLED, "%s", err);
    if (rc == ZOS_VBOX_CONFLICT)
        return zos_cli_fail(ZOS_EXIT_PORT_FORWARD_EXISTS, "%s", err);
    return zos_cli_fail(ZOS_EXIT_GENERAL, "%s", err);
}

static bool valid_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 64 || strcasecmp(name, "app") == 0 || strcasecmp(name, "proxy") == 0)
        return false;
    return strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == n;
}

static int number_opt(const char *opt, const char *text, long min, long max, long def, long *out)
{
    if (text == NULL) {
        *out = def;
        return -1;
    }
    if (!zos_cli_parse_int(text, min, max, out))
        return zos_cli_fail(ZOS_EXIT_MALFORMED_ARGS,
                            "--%s: expected a number from %ld to %ld, got '%s'", opt, min, max,
                            text);
    return -1;
}

static int init_check(struct init_args *a)
{
    int rc;
    const char *home = getenv("HOME");
    if (a->name == NULL) {
        return zos_cli_usage_error("init", "--name is required");
    }
    if (!valid_name(a->name))
        return zos_cli_fail(ZOS_EXIT_INVALID_NAME,
                            "--name: '%s' is not a valid machine name (1 to 64 letters, digits, "
                            "'-', '_' or '.'; not 'app' or 'proxy')",
                            a->name);
    if ((rc = number_opt("disksize", a->disksize, 0, 4096, ZOS_VBOX_DEFAULT_DISK / 1024,
                         &a->disk_gb)) >= 0 ||
        (rc = number_opt("memory", a->memory, 1, 1024, ZOS_VBOX_DEFAULT_MEMORY / 1024,
                         &a->mem_gb)) >= 0 ||
        (rc = number_opt("redisport", a->redisport, 1, 65535, ZOS_VBOX_DEFAULT_PORT, &a->port)) >=
            0)
        return rc;
    if (a->hypervisor != NULL && strcmp(a->hypervisor, "qemu") != 0 &&
        strcmp(a->hypervisor, "virtualbox") != 0)
        return zos_cli_fail(ZOS_EXIT_MALFORMED_ARGS,
                            "--hypervisor: 'virtualbox' or 'qemu', got '%s'", a->hypervisor);
    a->qemu = a->hypervisor != NULL && strcmp(a->hypervisor, "qemu") == 0;
    if (a->iso != NULL) {
        snprintf(a->iso_path, sizeof(a->iso_path), "%s", a->iso);
        if (access(a->iso_path, R_OK) != 0)
            return zos_cli_fail(ZOS_EXIT_FILE_DOESNT_EXIST, "--iso: %s: %s", a->iso,
                                strerror(errno));
        return -1;
    }
    if (home == NULL || home[0] != '/')
        return zos_cli_fail(ZOS_EXIT_FILE_DOESNT_EXIST,
                            "HOME is not set, so there is no ~/.zos/zos.iso: give --iso");
    snprintf(a->iso_path, sizeof(a->iso_path), "%s/.zos/zos.iso", home);
    a->download = access(a->iso_path, R_OK) != 0;
    return -1;
}

static int init_virtualbox(const struct init_args *a)
{
    struct zos_vbox vb;
    struct zos_vbox_spec spec;
    struct zos_vboxmanage_info info = {0};
    char err[1024];
    int rc = zos_vbox_init(&vb, NULL, err, sizeof(err));
    if (rc != ZOS_OK)
        return vbox_error(rc, err);
    zos_vbox_spec_defaults(&spec, a->name, a->iso_path);
    spec.memory_mb = (int)a->mem_gb * 1024;
    spec.disk_mb = (int)a->disk_gb * 1024;
    spec.port = (int)a->port;
    if (a->reset) {
        rc = zos_vbox_reset(&vb, &spec, err, sizeof(err));
    } else if ((rc = zos_vbox_info(&vb, a->name, &info, err, sizeof(err))) == ZOS_VBOX_NOVM) {
        rc = zos_vbox_create(&vb, &spec, err, sizeof(err));
    } else if (rc == ZOS_OK) {
        rc = zos_vbox_check_port(&vb, spec.port, a->name, err, sizeof(err));
    }
    zos_vboxmanage_info_clear(&info);
    if (rc == ZOS_OK)
        rc = zos_vbox_start(&vb, a->name, err, sizeof(err));
    return rc == ZOS_OK ? 0 : vbox_error(rc, err);
}

/* Before a download: is the hypervisor there at all?  -1 when it is. */
static int init_hypervisor_present(const struct init_args *a)
{
    struct zos_vbox vb;
    char path[4096], err[256];
    int rc;

    if (a->qemu)
        return zos_proc_which("qemu-system-x86_64", path, sizeof(path))
                   ? -1
                   : zos_cli_fail(ZOS_EXIT_DEPS_NOT_INSTALLED,
                                  "qemu is not installed: qemu-system-x86_64 not found on PATH");
    rc = zos_vbox_init(&vb, NULL, err, sizeof(err));
    return rc == ZOS_OK ? -1 : vbox_error(rc, err);
}

/* ~/.zos/zos.iso from $ZOS_ISO_URL or the original's URL, once (the
 * fetch module only ever renames a complete download into place), with a
 * progress bar on a terminal.  -1 when it is there, else exit 14. */
static int init_download(const struct init_args *a)
{
    const char *url = getenv(ISO_URL_ENV);
    char dir[4096], err[1024];

    if (url == NULL || url[0] == '\0')
        url = ISO_URL;
    snprintf(dir, sizeof(dir), "%s", a->iso_path);
    *strrchr(dir, '/') = '\0';
    if (zos_mkdir_p(dir, 0700, NULL, 0) != 0)
        return zos_cli_fail(ZOS_EXIT_GENERAL, "%s: %s", dir, strerror(errno));
    fflush(stdout);
    fprintf(stderr, "zos: downloading the Zero-OS ISO from %s to %s\n", url, a->iso_path);
    if (zos_fetch(url, a->iso_path, NULL, err, sizeof(err)) != ZOS_OK)
        return zos_cli_fail(
            ZOS_EXIT_GENERAL,
            "cannot download the Zero-OS ISO: %s (give --iso=<file>, or set " ISO_URL_ENV ")", err);
    return -1;
}

static int init_qemu(const struct init_args *a)
{
    char dir[4096], disk[4200], err[1024];
    const char *home = getenv("HOME");
    if (zos_qemu_dir(home != NULL ? home : "", a->name, dir, sizeof(dir)) != ZOS_OK)
        return zos_cli_fail(ZOS_EXIT_GENERAL, "home directory path too long");
    snprintf(disk, sizeof(disk), "%s/disk.img", dir);
    if (a->reset) {
        if (zos_qemu_stop(dir, err, sizeof(err)) != ZOS_OK)
            return zos_cli_fail(ZOS_EXIT_GENERAL, "%s", err);
        unlink(disk);
    }
    if (zos_qemu_pid(dir) > 0)
        return 0; /* running already, as init on a running VirtualBox VM */
    struct zos_qemu q = {
        .name = a->name,
        .iso = a->iso_path,
        .disk = a->disk_gb > 0 ? disk : NULL,
        .memory_mb = (int)a->mem_gb * 1024,
        .port = (int)a->port,
        .state_dir = dir,
    };
    int rc = ZOS_OK;
    if (zos_mkdir_p(dir, 0700, NULL, 0) != 0)
        return zos_cli_fail(ZOS_EXIT_GENERAL, "%s: %s", dir, strerror(errno));
    if (q.disk != NULL)
        rc = zos_qemu_disk(disk, (int)a->disk_gb * 1024, err, sizeof(err));
    if (rc == ZOS_OK)
        rc = zos_qemu_start(&q, err, sizeof(err));
    if (rc == ZOS_VBOX_NOTFOUND)
        return zos_cli_fail(ZOS_EXIT_DEPS_NOT_INSTALLED, "%s", err);
    return rc == ZOS_OK ? 0 : zos_cli_fail(ZOS_EXIT_GENERAL, "%s", err);
}

/* The new machine as the default node: 127.0.0.1:<redisport>, TLS. */
static int init_configure(struct zos_cli *cli, const struct init_args *a)
{
    char port[16], err[512];
    snprintf(port, sizeof(port), "%ld", a->port);
    if (zos_conf_set(cli->conf, a->name, "address", "127.0.0.1", err, sizeof(err)) != 0 ||
        zos_conf_set(cli->conf, a->name, "port", port, err, sizeof(err)) != 0 ||
        zos_conf_set(cli->conf, a->name, "tls", "yes", err, sizeof(err)) != 0 ||
        zos_conf_set(cli->conf, a->name, "isvbox", a->qemu ? "false" : "true", err, sizeof(err)) !=
            0 ||
        zos_conf_set(cli->conf, "app", "defaultzos", a->name, err, sizeof(err)) != 0)
        return zos_cli_fail(ZOS_EXIT_GENERAL, "%s", err);
    return zos_cli_save_conf(cli);
}

/* A node zos init --hypervisor=qemu made has its qemu state directory. */
static bool qemu_made(const char *name)
{
    char dir[PATH_MAX];
    struct stat st;
    const char *home = getenv("HOME");
    return zos_qemu_dir(home != NULL ? home : "", name, dir, sizeof(dir)) == 0 &&
           stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
}

int zos_cli_cmd_init(struct zos_cli *cli, int argc, char **argv)
{
    struct init_args a = {0};
    const struct zos_cli_opt opts[] = {
        {"name", true, &a.name, NULL},     {"disksize", true, &a.disksize, NULL},
        {"memory", true, &a.memory, NULL}, {"redisport", true, &a.redisport, NULL},
        {"iso", true, &a.iso, NULL},       {"hypervisor", true, &a.hypervisor, NULL},
        {"reset", false, NULL, &a.reset},
    };
    char *pos[1], label[160];
    size_t npos;
    int rc = zos_cli_args_parse("init", argc, argv, opts, ZOS_ARRAY_LEN(opts), 0, pos, 0, &npos);
    if (rc >= 0 || (rc = init_check(&a)) >= 0)
        return rc;
    const struct zos_node_conf *old = zos_conf_node(cli->conf, a.name);
    if (old != NULL && !old->isvbox && !(a.qemu && qemu_made(a.name)))
        return zos_cli_fail(ZOS_EXIT_INVALID_NAME,
                            "--name: '%s' is a configured node that zos init did not make", a.name);
    if (a.download && ((rc = init_hypervisor_present(&a)) >= 0 || (rc = init_download(&a)) >= 0))
        return rc;
    if ((rc = a.qemu ? init_qemu(&a) : init_virtualbox(&a)) != 0)
        return rc;
    struct zos_node_conf target = {
        .name = (char *)a.name, .address = "127.0.0.1", .port = (int)a.port, .tls = true};
    snprintf(label, sizeof(label), "waiting for %s to boot", a.name);
    rc = zos_cli_node_wait_pong(cli, &target, cli->timeout_s > 0 ? cli->timeout_s : BOOT_TIMEOUT_S,
                                label);
    return rc != 0 ? rc : init_configure(cli, &a);
}

int zos_cli_vm_delete(struct zos_cli *cli, const struct zos_node_conf *node)
{
    struct zos_vbox vb;
    char err[1024], dir[4096];
    const char *home = getenv("HOME");
    if (!node->isvbox) {
        /* a machine of "zos init --hypervisor qemu": stop it when it runs */
        if (zos_qemu_dir(home != NULL ? home : "", node->name, dir, sizeof(dir)) == ZOS_OK &&
            zos_qemu_pid(dir) > 0 && zos_qemu_stop(dir, err, sizeof(err)) != ZOS_OK)
            return zos_cli_fail(ZOS_EXIT_GENERAL, "%s", err);
        return 0;
    }
    int rc = zos_vbox_init(&vb, NULL, err, sizeof(err));
    if (rc == ZOS_VBOX_NOTFOUND)
        return zos_cli_fail(ZOS_EXIT_VBOX_NOT_INSTALLED,
                            "%s ('zos forgetvm --name %s' removes the node from the config only)",
                            err, node->name);
    if (rc == ZOS_OK)
        rc = zos_vbox_delete(&vb, node->name, err, sizeof(err));
    if (rc == ZOS_OK || rc == ZOS_VBOX_NOVM)
        return 0;
    return vbox_error(rc, err);
}
