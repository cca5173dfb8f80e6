/* vbox.h -- a local Zero-OS VM: VirtualBox through VBoxManage, or qemu.
 *
 * Every VirtualBox operation is a short script of VBoxManage commands (the
 * sequence of core0-protocol.md §9.7), written once as a chain of steps that
 * two drivers share:
 *
 *   step(NULL) --> argv --run--> {status, stdout, stderr} --step(result)--> argv --> ... --> done
 *                               |                                                      (rc, err)
 *        blocking: vb->run (fork/execvp, waits)   async: a child watched by libevent
 *
 * VBoxManage is always started by execvp with an argv array: VM names and
 * paths are never seen by a shell.  Errors name the failed subcommand, the
 * first error line VBoxManage wrote and the whole command:
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
#include <sys/types.h>

#include <event2/event.h>

#define ZOS_VBOX_NOTFOUND (-2) /* VBoxManage (or qemu) not on PATH: "not installed" */
#define ZOS_VBOX_CONFLICT (-3) /* "port N already taken by VM 'X'" */
#define ZOS_VBOX_NOVM     (-4) /* no registered VM of that name */

#define ZOS_VBOX_DEFAULT_PORT   4444  /* host port forwarded to the guest's 6379 */
#define ZOS_VBOX_DEFAULT_MEMORY 4096  /* MB (the original's --memory 4) */
#define ZOS_VBOX_DEFAULT_DISK   20480 /* MB (the original's --disksize 20) */
#define ZOS_VBOX_GUEST_PORT     6379

/* ---- running a command ------------------------------------------------ */

/* What a finished child left.  STATUS is the exit status (0..255), 128+N when
 * signal N killed it, -1 when it could not be collected.  OUT and ERR are
 * NUL-terminated ("" when it wrote nothing, NULL only when out of memory),
 * at most 4 MiB each, and owned by the result. */
struct zos_vbox_result {
    int status;
    char *out;
    char *err;
};

/* Frees OUT and ERR and zeroes R.  Accepts a zeroed result. */
void zos_vbox_result_clear(struct zos_vbox_result *r);

/* Runs ARGV (argv[0] found by execvp, NULL-terminated), fills RES (the caller
 * clears it).  Returns ZOS_OK when the child ran, whatever its status; ZOS_ERR
 * with ERR when it could not be started (fork/pipe/exec failure). */
typedef int (*zos_vbox_run_fn)(void *arg, char *const argv[], struct zos_vbox_result *res,
                               char *err, size_t errlen);

/* The default runner: fork + execvp, stdin from /dev/null, stdout and stderr
 * captured separately, descriptors above 2 closed in the child, SIGPIPE reset.
 * Returns when the child has exited and its pipes are drained (or shortly
 * after it exited if a grandchild kept them open).  ARG is unused. */
int zos_vbox_exec(void *arg, char *const argv[], struct zos_vbox_result *res, char *err,
                  size_t errlen);

/* The asynchronous runner.  Design: no SIGCHLD at all.  The child's stdout
 * and stderr are non-blocking pipes read by libevent; when both reach EOF the
 * child is reaped with waitpid(pid, WNOHANG), retried on a short backoff
 * timer (1 ms doubling to 100 ms) if it has not exited yet.  While the pipes
 * are open a slow timer (250 ms) polls waitpid too, so a grandchild that
 * inherited the pipes (a daemon) cannot hold the callback: it comes about
 * 0.75 s after the child's exit.  Not libevent's signal event: libevent
 * delivers a signal to one event base only, and a SIGCHLD handler would race
 * with every other module's children.  This needs no signal disposition; it
 * only requires that SIGCHLD is not set to SIG_IGN (then the kernel reaps
 * children itself and STATUS is -1). */
struct zos_vbox_proc;

/* Called once, from the loop, when the child has exited.  RES is borrowed for
 * the call; the callee may take RES->out/err (set them to NULL).  ERR is
 * non-NULL when the output could not be collected (STATUS may still be
 * valid).  The proc is freed after the callback returns. */
typedef void (*zos_vbox_proc_fn)(void *arg, struct zos_vbox_result *res, const char *err);

/* Starts ARGV (borrowed for the call only) on BASE.  The call blocks only for
 * fork and exec (an exec failure is reported here, through a close-on-exec
 * pipe).  NULL with ERR when the child could not be started (then FN is never
 * called).  FN never runs inside this call. */
struct zos_vbox_proc *zos_vbox_spawn(struct event_base *base, char *const argv[],
                                     zos_vbox_proc_fn fn, void *arg, char *err, size_t errlen);

/* Kills the child (SIGKILL), reaps it and frees P without calling FN.
 * Accepts NULL.  Not from inside P's own callback. */
void zos_vbox_proc_cancel(struct zos_vbox_proc *p);

/* ---- VirtualBox ------------------------------------------------------- */

struct zos_vbox {
    char bin[PATH_MAX];  /* VBoxManage, absolute (found on PATH) */
    char home[PATH_MAX]; /* holds "VirtualBox VMs/<name>" */
    zos_vbox_run_fn run; /* blocking runner: zos_vbox_exec by default */
    void *run_arg;
    bool gui; /* start with a window when DISPLAY is set (default: headless) */
};

/* Finds "VBoxManage" or "vboxmanage" on PATH and fills VB (runner
 * zos_vbox_exec, headless).  HOME NULL means $HOME.  Returns ZOS_VBOX_NOTFOUND
 * with "VirtualBox is not installed: VBoxManage not found on PATH". */
int zos_vbox_init(struct zos_vbox *vb, const char *home, char *err, size_t errlen);

/* The first executable PROG in $PATH, written to PATH (LEN bytes). */
bool zos_vbox_which(const char *prog, char *path, size_t len);

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

/* One line of `VBoxManage list vms`: "name" {uuid}.  Names are kept as
 * VirtualBox prints them (case, spaces). */
struct zos_vbox_vm {
    char *name;
    char uuid[40];
};

struct zos_vbox_list {
    struct zos_vbox_vm *vms;
    size_t n;
};

/* Parses the output of `list vms` into L (zeroed by the caller or cleared);
 * lines that are not "name" {uuid} are skipped.  ZOS_ERR only when out of
 * memory. */
int zos_vbox_parse_list(const char *text, struct zos_vbox_list *l);
void zos_vbox_list_clear(struct zos_vbox_list *l);
/* The VM named NAME (exact match) in L, or NULL.  Borrowed from L. */
const struct zos_vbox_vm *zos_vbox_list_find(const struct zos_vbox_list *l, const char *name);

/* One NAT forwarding rule of showvminfo:
 *   NIC 1 Rule(0):   name = redis, protocol = tcp, host ip = , host port = 4444, ... */
struct zos_vbox_fwd {
    int nic;
    char name[64];
    char proto[8];
    char host_ip[64];
    int host_port;
    char guest_ip[64];
    int guest_port;
};

struct zos_vbox_info {
    char state[32]; /* "running", "powered off", ... (without "(since ...)") */
    struct zos_vbox_fwd *fwd;
    size_t nfwd;
};

/* Parses showvminfo's human-readable output into I (zeroed or cleared). */
int zos_vbox_parse_info(const char *text, struct zos_vbox_info *i);
void zos_vbox_info_clear(struct zos_vbox_info *i);
/* State "running"? */
bool zos_vbox_info_running(const struct zos_vbox_info *i);

/* Blocking operations.  VB and every string are borrowed.  OUT parameters
 * are filled on success and owned by the caller (clear them). */

/* `list vms`. */
int zos_vbox_list(const struct zos_vbox *vb, struct zos_vbox_list *out, char *err, size_t errlen);
/* list vms, showvminfo <uuid>.  ZOS_VBOX_NOVM when NAME is not registered. */
int zos_vbox_info(const struct zos_vbox *vb, const char *name, struct zos_vbox_info *out, char *err,
                  size_t errlen);
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
    int rc;                           /* ZOS_OK or one of the error classes */
    const char *err;                  /* "" on success */
    const struct zos_vbox_list *list; /* LIST: the VMs */
    const struct zos_vbox_info *info; /* INFO: state and forwards */
};

typedef void (*zos_vbox_done_fn)(void *arg, const struct zos_vbox_reply *r);

struct zos_vbox_op;

/* Runs VERB's command sequence on BASE, one VBoxManage child at a time, and
 * calls FN once when it is over (never inside this call).  VB and SPEC are
 * copied (SPEC->name is used by every verb but LIST; iso, memory, disk, port by
 * CREATE and RESET).  The children are spawned with zos_vbox_spawn from
 * vb->bin: vb->run is used by the blocking forms only.  NULL when out of
 * memory. */
struct zos_vbox_op *zos_vbox_submit(const struct zos_vbox *vb, struct event_base *base,
                                    enum zos_vbox_verb verb, const struct zos_vbox_spec *spec,
                                    zos_vbox_done_fn fn, void *arg);

/* Stops OP (its running child is killed) without calling FN.  A half-run
 * CREATE is not rolled back.  Accepts NULL.  Not from inside OP's callback. */
void zos_vbox_op_cancel(struct zos_vbox_op *op);

/* ---- qemu ------------------------------------------------------------- */

/* A qemu VM: the same node as under VirtualBox, with a user-net forward
 * 127.0.0.1:PORT -> guest 6379.  Strings are borrowed. */
struct zos_vbox_qemu {
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
 * NULL-terminated; free with zos_vbox_argv_free.  NULL with ERR on a bad
 * field. */
char **zos_vbox_qemu_argv(const struct zos_vbox_qemu *q, char *err, size_t errlen);
void zos_vbox_argv_free(char **argv);

/* HOME/.zos/qemu/NAME into BUF (LEN bytes).  ZOS_ERR when it does not fit. */
int zos_vbox_qemu_dir(const char *home, const char *name, char *buf, size_t len);

/* Creates the disk PATH of SIZE_MB when it does not exist: `qemu-img create
 * -f qcow2` for a .qcow2 path (ZOS_VBOX_NOTFOUND without qemu-img), a sparse
 * raw file otherwise. */
int zos_vbox_qemu_disk(const char *path, int size_mb, char *err, size_t errlen);

/* Starts Q daemonized (the state dir is created, mode 0700) and returns once
 * qemu has set up the forward.  ZOS_VBOX_NOTFOUND when qemu is not on PATH;
 * ZOS_ERR when it runs already or qemu fails (its first stderr line). */
int zos_vbox_qemu_start(const struct zos_vbox_qemu *q, char *err, size_t errlen);

/* The pid of the qemu of STATE_DIR when it is alive, else 0. */
pid_t zos_vbox_qemu_pid(const char *state_dir);

/* SIGTERM to the qemu of STATE_DIR, SIGKILL after 5 s; removes the pidfile.
 * ZOS_OK when it was not running. */
int zos_vbox_qemu_stop(const char *state_dir, char *err, size_t errlen);

#endif
