/* qemu.h -- a local Zero-OS VM under qemu: the command line, the disk, start and stop.
 *
 * The same node as under VirtualBox (vbox.h), with a user-net forward
 * 127.0.0.1:PORT -> guest 6379 (ZOS_VBOX_GUEST_PORT).  VM names follow the
 * rule of zos_vbox_name_valid; "not installed" is ZOS_VBOX_NOTFOUND, as for
 * VirtualBox, so that the CLI maps both to one exit code.
 */
#ifndef ZOS_QEMU_H
#define ZOS_QEMU_H

#include <stddef.h>
#include <sys/types.h>

/* A qemu VM.  Strings are borrowed. */
struct zos_qemu {
    const char *name;      /* -name guest=NAME */
    const char *iso;       /* booted as a CD-ROM before the disk */
    const char *disk;      /* NULL: none; qcow2 when it ends in ".qcow2", else raw */
    int memory_mb;         /* > 0 */
    int port;              /* host port on 127.0.0.1 */
    const char *state_dir; /* qemu.pid and serial.log live here */
    const char *nic;       /* NULL: "virtio-net-pci" (or "e1000") */
    const char *accel;     /* NULL: kvm falling back to tcg when /dev/kvm opens, else tcg */
    const char *binary;    /* NULL: "qemu-system-x86_64" (found by execvp) */
};

/* The qemu-system-x86_64 command line (daemonized, -display none, pidfile in
 * the state dir).  Commas inside option values are doubled as qemu wants.
 * NULL-terminated; free with zos_proc_argv_free.  NULL with ERR on a bad
 * field. */
char **zos_qemu_argv(const struct zos_qemu *q, char *err, size_t errlen);

/* HOME/.zos/qemu/NAME into BUF (LEN bytes).  ZOS_ERR when HOME is NULL, NAME
 * is not a valid VM name or the path does not fit. */
int zos_qemu_dir(const char *home, const char *name, char *buf, size_t len);

/* Creates the disk PATH of SIZE_MB when it does not exist: `qemu-img create
 * -f qcow2` for a .qcow2 path (ZOS_VBOX_NOTFOUND without qemu-img), a sparse
 * raw file otherwise. */
int zos_qemu_disk(const char *path, int size_mb, char *err, size_t errlen);

/* Starts Q daemonized (the state dir is created, mode 0700) and returns once
 * qemu has set up the forward.  ZOS_VBOX_NOTFOUND when qemu is not on PATH;
 * ZOS_ERR when it runs already or qemu fails (its first stderr line). */
int zos_qemu_start(const struct zos_qemu *q, char *err, size_t errlen);

/* The pid of the qemu of STATE_DIR when it is alive (and a qemu), else 0. */
pid_t zos_qemu_pid(const char *state_dir);

/* SIGTERM to the qemu of STATE_DIR, SIGKILL after 5 s; removes the pidfile.
 * ZOS_OK when it was not running. */
int zos_qemu_stop(const char *state_dir, char *err, size_t errlen);

#endif
