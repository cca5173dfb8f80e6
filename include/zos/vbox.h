/* vbox.h -- a local Zero-OS VM under VirtualBox, through VBoxManage (qemu: qemu.h).
 *
 * Every VirtualBox operation is a short script of VBoxManage commands (the
 * sequence of core0-protocol.md §9.7), written once as a chain of steps that
 * two drivers share:
 *
 *   step(NULL) --> argv --run--> {status, stdout, stderr} --step(result)--> argv --> ... --> done
 *                               |                                                      (rc, err)
 *        blocking: vb->run (zos_proc_exec)   async: zos_proc_spawn, a child watched by libevent
 *
 * VBoxManage is always started by execvp with an argv array (proc.h): VM
 * names and paths are never seen by a shell; what it prints is read by
 * vboxmanage.h.  Errors name the failed subcommand, the first error line
 * VBoxManage wrote and the whole command:
 *   "VBoxManage storagectl failed (exit 1): VBoxManage: error: ... [VBoxManage storagectl ...]"
 *
 * Error classes: every function returns ZOS_OK (0) on success and a negative
 * value on failure; ZOS_VBOX_NOTFOUND, ZOS_VBOX_CONFLICT and ZOS_VBOX_NOVM are
 * distinguishable failures (the CLI's exit codes 4 and 8), anything else is
 * ZOS_ERR.
 */
#ifndef ZOS_VBOX_H
#define ZOS_VBOX_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>

#include "zos/proc.h"
#include "zos/vboxmanage.h"

#define ZOS_VBOX_NOTFOUND (-2) /* VBoxManage (or qemu) not on PATH: "not installed" */
#define ZOS_VBOX_CONFLICT (-3) /* "port N already taken by VM 'X'" */
#define ZOS_VBOX_NOVM     (-4) /* no registered VM of that name */

#define ZOS_VBOX_DEFAULT_PORT   4444  /* host port forwarded to the guest's 6379 */
#define ZOS_VBOX_DEFAULT_MEMORY 4096  /* MB (the original's --memory 4) */
#define ZOS_VBOX_DEFAULT_DISK   20480 /* MB (the original's --disksize 20) */
#define ZOS_VBOX_GUEST_PORT     6379

/* ---- VirtualBox ------------------------------------------------------- */

struct zos_vbox {
    char bin[PATH_MAX];  /* VBoxManage, absolute (found on PATH) */
    char home[PATH_MAX]; /* holds "VirtualBox VMs/<name>" */
    zos_proc_run_fn run; /* blocking runner: zos_proc_exec by default */
    void *run_arg;
    bool gui; /* start with a window when DISPLAY is set (default: headless) */
};

/* Finds "VBoxManage" or "vboxmanage" on PATH and fills VB (runner
 * zos_proc_exec, headless).  HOME NULL means $HOME.  Returns ZOS_VBOX_NOTFOUND
 * with "VirtualBox is not installed: VBoxManage not found on PATH". */
int zos_vbox_init(struct zos_vbox *vb, const char *home, char *err, size_t errlen);

/* What to create.  Strings are borrowed.  NAME: 1..128 bytes, no '/', no
 * control characters, not starting with '-', not "." or "..". */
struct zos_vbox_spec {
    const char *name;
    const char *iso; /* boot ISO (CREATE, RESET); made absolute */
    int memory_mb;   /* > 0 */
    int disk_mb;     /* 0: no disk */
    int port;        /* host port forwarded to guest 6379 */
};

/* NAME and ISO as given, the original's defaults for the numbers. */
void zos_vbox_spec_defaults(struct zos_vbox_spec *s, const char *name, const char *iso);

/* Whether NAME is a VM name as above (qemu's too); when not, ERR says why:
 * "invalid VM name '-rf': it starts with '-'". */
bool zos_vbox_name_valid(const char *name, char *err, size_t errlen);

/* Blocking operations.  VB and every string are borrowed.  OUT parameters
 * are filled on success and owned by the caller (clear them). */

/* `list vms`. */
int zos_vbox_list(const struct zos_vbox *vb, struct zos_vboxmanage_list *out, char *err,
                  size_t errlen);
/* list vms, showvminfo <uuid>.  ZOS_VBOX_NOVM when NAME is not registered. */
int zos_vbox_info(const struct zos_vbox *vb, const char *name, struct zos_vboxmanage_info *out,
                  char *err, size_t errlen);
/* ZOS_VBOX_CONFLICT when a VM other than EXCEPT (may be NULL) forwards tcp
 * host port PORT: list vms, then showvminfo <uuid> of each other VM. */
int zos_vbox_check_port(const struct zos_vbox *vb, int port, const char *except, char *err,
                        size_t errlen);
/* The §9.7 creation sequence: port check (list vms, showvminfo of the
 * others), list hostonlyifs (+ hostonlyif create without vboxnet0), createvm
 * --basefolder HOME/VirtualBox VMs (the original relied on VirtualBox's
 * default folder; naming it keeps the disk path and delete's rm in step),
 * modifyvm (memory, ioapic, boot dvd+disk, nic1 nat, nic2 hostonly vboxnet0,
 * vrde, natpf1 redis,tcp,,PORT,,6379), list vms, then when DISK_MB > 0
 * createmedium disk main<name>.vdi on a "SATA Controller", then the ISO on
 * an "IDE Controller".  Fails when the VM exists already.  A failure after
 * createvm unregisters and deletes the half-made VM. */
int zos_vbox_create(const struct zos_vbox *vb, const struct zos_vbox_spec *spec, char *err,
                    size_t errlen);
/* startvm <uuid> --type headless (gui only when vb->gui and DISPLAY is set);
 * nothing when it is running already. */
int zos_vbox_start(const struct zos_vbox *vb, const char *name, char *err, size_t errlen);
/* controlvm <uuid> poweroff; nothing when it is not running. */
int zos_vbox_stop(const struct zos_vbox *vb, const char *name, char *err, size_t errlen);
/* The original's vmDelete: poweroff if running, unregistervm <uuid> --delete
 * (retried while the session is still locked), then HOME/VirtualBox VMs/<name>
 * removed. */
int zos_vbox_delete(const struct zos_vbox *vb, const char *name, char *err, size_t errlen);
/* The port check (a conflict deletes nothing), then delete when registered
 * (the directory is removed either way), then the creation sequence. */
int zos_vbox_reset(const struct zos_vbox *vb, const struct zos_vbox_spec *spec, char *err,
                   size_t errlen);

/* ---- the same operations on an event loop (the ZOS.VBOX verb) ---------- */

enum zos_vbox_verb {
    ZOS_VBOX_LIST,
    ZOS_VBOX_INFO,
    ZOS_VBOX_CREATE,
    ZOS_VBOX_START,
    ZOS_VBOX_STOP,
    ZOS_VBOX_DELETE,
    ZOS_VBOX_RESET,
};

/* "create", "START", ... (any case) into OUT.  ZOS_ERR for another word. */
int zos_vbox_verb_parse(const char *word, enum zos_vbox_verb *out);
const char *zos_vbox_verb_name(enum zos_vbox_verb v);

/* What an operation ended with; everything is borrowed for the callback. */
struct zos_vbox_reply {
    int rc;                                 /* ZOS_OK or one of the error classes */
    const char *err;                        /* "" on success */
    const struct zos_vboxmanage_list *list; /* LIST: the VMs */
    const struct zos_vboxmanage_info *info; /* INFO: state and forwards */
};

typedef void (*zos_vbox_done_fn)(void *arg, const struct zos_vbox_reply *r);

struct zos_vbox_op;

/* Runs VERB's command sequence on BASE, one VBoxManage child at a time, and
 * calls FN once when it is over (never inside this call).  VB and SPEC are
 * copied (SPEC->name is used by every verb but LIST; iso, memory, disk, port by
 * CREATE and RESET).  The children are spawned with zos_proc_spawn from
 * vb->bin: vb->run is used by the blocking forms only.  NULL when out of
 * memory. */
struct zos_vbox_op *zos_vbox_submit(const struct zos_vbox *vb, struct event_base *base,
                                    enum zos_vbox_verb verb, const struct zos_vbox_spec *spec,
                                    zos_vbox_done_fn fn, void *arg);

/* Stops OP (its running child is killed) without calling FN.  A half-run
 * CREATE is not rolled back.  Accepts NULL.  Not from inside OP's callback. */
void zos_vbox_op_cancel(struct zos_vbox_op *op);

#endif
