/* qemu.c -- a local Zero-OS VM under qemu: command line, disk, pidfile, start and stop. */
#include "zos/qemu.h"
#include "zos/proc.h"
#include "zos/util.h"
#include "zos/vbox.h"
#include "zos/vboxmanage.h"
#include "zos/zos.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the command line ----------------------------------------------------- */

/* S with every ',' doubled: qemu's escape inside "key=value,..." options. */
static char *qemu_escape(const char *s)
{
    size_t n = strlen(s), commas = 0;
    for (const char *p = s; *p; p++)
        commas += *p == ',';
    char *out = malloc(n + commas + 1), *o = out;
    for (const char *p = s; out != NULL && *p; p++) {
        *o++ = *p;
        if (*p == ',')
            *o++ = ',';
    }
    if (out != NULL)
        *o = '\0';
    return out;
}

struct argvec {
    char **v;
    size_t n;
    bool oom;
};

__attribute__((format(printf, 2, 3))) static void av_add(struct argvec *a, const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    int w = vasprintf(&s, fmt, ap);
    va_end(ap);
    char **v = w < 0 ? NULL : realloc(a->v, (a->n + 2) * sizeof *v);
    if (v == NULL) {
        free(w < 0 ? NULL : s);
        a->oom = true;
        return;
    }
    a->v = v;
    v[a->n++] = s;
    v[a->n] = NULL;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static bool qemu_check(const struct zos_qemu *q, char *err, size_t errlen)
{
    static const char nic_chars[] = "abcdefghijklmnopqrstuvwxyz0123456789-";
    const char *why = NULL;
    if (!zos_vbox_name_valid(q->name, err, errlen))
        return false;
    if (q->iso == NULL || q->iso[0] == '\0')
        why = "no ISO given";
    else if (q->memory_mb <= 0)
        why = "memory must be > 0 MB";
    else if (q->port <= 0 || q->port > 65535)
        why = "port must be 1..65535";
    else if (q->state_dir == NULL || q->state_dir[0] == '\0')
        why = "no state directory";
    else if (q->nic != NULL && strspn(q->nic, nic_chars) != strlen(q->nic))
        why = "bad NIC model";
    if (why != NULL)
        snprintf(err, errlen, "qemu VM '%s': %s", q->name, why);
    return why == NULL;
}

/* Opening it, not access(): root passes access() on a device it cannot use. */
static bool kvm_usable(void)
{
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return false;
    close(fd);
    return true;
}

char **zos_qemu_argv(const struct zos_qemu *q, char *err, size_t errlen)
{
    struct argvec a = {0};
    if (!qemu_check(q, err, errlen))
        return NULL;
    char *name = qemu_escape(q->name), *disk = q->disk ? qemu_escape(q->disk) : NULL;
    av_add(&a, "%s", q->binary ? q->binary : "qemu-system-x86_64");
    av_add(&a, "-name");
    av_add(&a, "guest=%s", name ? name : "");
    if (q->accel != NULL || !kvm_usable()) {
        av_add(&a, "-accel");
        av_add(&a, "%s", q->accel ? q->accel : "tcg");
    } else { /* KVM, and the emulator when KVM refuses (nested, busy) */
        av_add(&a, "-accel");
        av_add(&a, "kvm");
        av_add(&a, "-accel");
        av_add(&a, "tcg");
    }
    av_add(&a, "-m");
    av_add(&a, "%d", q->memory_mb);
    av_add(&a, "-boot");
    av_add(&a, "order=dc");
    av_add(&a, "-cdrom");
    av_add(&a, "%s", q->iso);
    if (q->disk != NULL) {
        av_add(&a, "-drive");
        av_add(&a, "file=%s,format=%s,if=virtio", disk ? disk : "",
               ends_with(q->disk, ".qcow2") ? "qcow2" : "raw");
    }
    av_add(&a, "-netdev");
    av_add(&a, "user,id=n0,hostfwd=tcp:127.0.0.1:%d-:%d", q->port, ZOS_VBOX_GUEST_PORT);
    av_add(&a, "-device");
    av_add(&a, "%s,netdev=n0", q->nic ? q->nic : "virtio-net-pci");
    av_add(&a, "-display");
    av_add(&a, "none");
    av_add(&a, "-serial");
    av_add(&a, "file:%s/serial.log", q->state_dir);
    av_add(&a, "-monitor");
    av_add(&a, "none");
    av_add(&a, "-pidfile");
    av_add(&a, "%s/qemu.pid", q->state_dir);
    av_add(&a, "-daemonize");
    if (name == NULL || (q->disk && disk == NULL))
        a.oom = true;
    free(name);
    free(disk);
    if (a.oom) {
        zos_proc_argv_free(a.v);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    return a.v;
}

/* ---- the state directory and the disk ----------------------------------- */

int zos_qemu_dir(const char *home, const char *name, char *buf, size_t len)
{
    char why[256];
    if (home == NULL || !zos_vbox_name_valid(name, why, sizeof why))
        return ZOS_ERR;
    int w = snprintf(buf, len, "%s/.zos/qemu/%s", home, name);
    return w > 0 && (size_t)w < len ? ZOS_OK : ZOS_ERR;
}

static int qemu_img(const char *path, int size_mb, char *err, size_t errlen)
{
    char img[PATH_MAX], size[32], line[256];
    if (!zos_proc_which("qemu-img", img, sizeof img)) {
        snprintf(err, errlen, "qemu-img not found on PATH (needed for the qcow2 disk %s)", path);
        return ZOS_VBOX_NOTFOUND;
    }
    snprintf(size, sizeof size, "%dM", size_mb);
    char *argv[] = {img, "create", "-q", "-f", "qcow2", (char *)path, size, NULL};
    struct zos_proc_result res = {0};
    int rc = zos_proc_exec(NULL, argv, &res, err, errlen);
    if (rc == ZOS_OK && res.status != 0) {
        zos_vboxmanage_error_line(res.err, res.out, line, sizeof line);
        snprintf(err, errlen, "qemu-img create %s failed (exit %d): %s", path, res.status, line);
        rc = ZOS_ERR;
    }
    zos_proc_result_clear(&res);
    return rc;
}

int zos_qemu_disk(const char *path, int size_mb, char *err, size_t errlen)
{
    if (path == NULL || path[0] == '-' || path[0] == '\0' || size_mb <= 0) {
        snprintf(err, errlen, "bad disk path or size");
        return ZOS_ERR;
    }
    if (access(path, F_OK) == 0)
        return ZOS_OK;
    if (ends_with(path, ".qcow2"))
        return qemu_img(path, size_mb, err, errlen);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || ftruncate(fd, (off_t)size_mb << 20) != 0) {
        snprintf(err, errlen, "cannot create disk %s: %s", path, strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(path);
        }
        return ZOS_ERR;
    }
    close(fd);
    return ZOS_OK;
}

/* ---- the running qemu ----------------------------------------------------- */

/* Alive and not a zombie (a daemonized qemu is reparented; /proc tells). */
static bool qemu_alive(pid_t pid)
{
    char path[64], stat[256] = "";
    if (kill(pid, 0) != 0 && errno != EPERM)
        return false;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return true;
    size_t n = fread(stat, 1, sizeof stat - 1, f);
    fclose(f);
    stat[n] = '\0';
    const char *close_paren = strrchr(stat, ')');
    bool zombie = close_paren != NULL && close_paren[1] == ' ' && close_paren[2] == 'Z';
    /* A recycled pid is not ours: the command must be a qemu. */
    return !zombie && (strstr(stat, "(qemu") != NULL || close_paren == NULL);
}

static void pidfile_path(const char *state_dir, char *buf, size_t len)
{
    snprintf(buf, len, "%s/qemu.pid", state_dir);
}

pid_t zos_qemu_pid(const char *state_dir)
{
    char path[PATH_MAX], text[32] = "";
    pidfile_path(state_dir, path, sizeof path);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return 0;
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    long pid = strtol(text, NULL, 10);
    return pid > 1 && qemu_alive((pid_t)pid) ? (pid_t)pid : 0;
}

int zos_qemu_start(const struct zos_qemu *q, char *err, size_t errlen)
{
    char found[PATH_MAX], pidfile[PATH_MAX], line[256];
    const char *bin = q->binary ? q->binary : "qemu-system-x86_64";
    if (!qemu_check(q, err, errlen))
        return ZOS_ERR;
    if (!zos_proc_which(bin, found, sizeof found)) {
        snprintf(err, errlen, "qemu is not installed: %s not found on PATH", bin);
        return ZOS_VBOX_NOTFOUND;
    }
    pid_t pid = zos_qemu_pid(q->state_dir);
    if (pid != 0) {
        snprintf(err, errlen, "qemu VM '%s' is already running (pid %d)", q->name, (int)pid);
        return ZOS_ERR;
    }
    if (access(q->iso, R_OK) != 0) {
        snprintf(err, errlen, "ISO %s: %s", q->iso, strerror(errno));
        return ZOS_ERR;
    }
    if (zos_mkdir_p(q->state_dir, 0700, NULL, 0) != 0) {
        snprintf(err, errlen, "cannot create %s: %s", q->state_dir, strerror(errno));
        return ZOS_ERR;
    }
    pidfile_path(q->state_dir, pidfile, sizeof pidfile);
    unlink(pidfile); /* stale: its qemu is not alive */
    char **argv = zos_qemu_argv(q, err, errlen);
    if (argv == NULL)
        return ZOS_ERR;
    struct zos_proc_result res = {0};
    int rc = zos_proc_exec(NULL, argv, &res, err, errlen);
    if (rc == ZOS_OK && res.status != 0) {
        zos_vboxmanage_error_line(res.err, res.out, line, sizeof line);
        snprintf(err, errlen, "%s failed (exit %d): %s", bin, res.status, line);
        rc = ZOS_ERR;
    }
    zos_proc_result_clear(&res);
    zos_proc_argv_free(argv);
    return rc;
}

/* Waits up to MS for PID to go away. */
static bool qemu_wait_gone(pid_t pid, int ms)
{
    for (int waited = 0; waited < ms; waited += 50) {
        if (!qemu_alive(pid))
            return true;
        zos_sleep_ms(50);
    }
    return !qemu_alive(pid);
}

int zos_qemu_stop(const char *state_dir, char *err, size_t errlen)
{
    char pidfile[PATH_MAX];
    pidfile_path(state_dir, pidfile, sizeof pidfile);
    pid_t pid = zos_qemu_pid(state_dir);
    if (pid != 0) {
        kill(pid, SIGTERM);
        if (!qemu_wait_gone(pid, 5000)) {
            kill(pid, SIGKILL);
            if (!qemu_wait_gone(pid, 2000)) {
                snprintf(err, errlen, "qemu (pid %d) does not exit", (int)pid);
                return ZOS_ERR;
            }
        }
    }
    unlink(pidfile);
    return ZOS_OK;
}
