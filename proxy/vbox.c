/* vbox.c -- a local Zero-OS VM under VirtualBox: VBoxManage command sequences.
 *
 *   zos_vbox_create() ----.                      .--> vb->run (zos_proc_exec, waits)
 *                         +--> struct op: step() +
 *   zos_vbox_submit() ----'   argv <- result     '--> zos_proc_spawn (libevent, no SIGCHLD)
 *
 * Each operation is a chain of small step functions: a step looks at the
 * result of the command it asked for and either asks for the next command
 * (STEP_RUN, argv in op->argv), asks to be called again later (STEP_WAIT) or
 * ends the operation (STEP_DONE, rc and err in the op).  Writing the
 * sequences once this way lets the CLI (blocking) and the proxy (event loop)
 * run exactly the same commands.  Running a child is proc.c's; reading what
 * VBoxManage printed is vboxmanage.c's.
 */
#include "zos/vbox.h"
#include "zos/util.h"
#include "zos/zos.h"

#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_ARGS         40
#define UNREGISTER_TRIES 20  /* x UNREGISTER_WAIT: the session lock outlives poweroff a bit */
#define UNREGISTER_WAIT  500 /* ms */
#define VMS_DIR          "VirtualBox VMs"
#define HOSTONLY_IF      "vboxnet0"

/* ---- names, paths --------------------------------------------------------- */

bool zos_vbox_name_valid(const char *name, char *err, size_t errlen)
{
    const char *why = NULL;
    if (name == NULL || *name == '\0')
        why = "it is empty";
    else if (strlen(name) > 128)
        why = "it is longer than 128 bytes";
    else if (name[0] == '-')
        why = "it starts with '-'";
    else if (strchr(name, '/') != NULL)
        why = "it contains '/'";
    else if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        why = "it is a directory name";
    for (const char *p = name; why == NULL && *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            why = "it contains a control character";
    }
    if (why != NULL)
        snprintf(err, errlen, "invalid VM name '%s': %s", name ? name : "", why);
    return why == NULL;
}

static bool valid_port(int port)
{
    return port > 0 && port < 65536;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

/* rm -rf PATH (symlinks are removed, never followed).  0 when it is gone. */
static int rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : -1;
    return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- finding VBoxManage ----------------------------------------------- */

int zos_vbox_init(struct zos_vbox *vb, const char *home, char *err, size_t errlen)
{
    memset(vb, 0, sizeof *vb);
    vb->run = zos_proc_exec;
    if (home == NULL)
        home = getenv("HOME");
    if (home == NULL || *home == '\0') {
        snprintf(err, errlen, "HOME is not set: cannot place \"" VMS_DIR "\"");
        return ZOS_ERR;
    }
    if (snprintf(vb->home, sizeof vb->home, "%s", home) >= (int)sizeof vb->home) {
        snprintf(err, errlen, "home directory path too long");
        return ZOS_ERR;
    }
    if (!zos_proc_which("VBoxManage", vb->bin, sizeof vb->bin) &&
        !zos_proc_which("vboxmanage", vb->bin, sizeof vb->bin)) {
        vb->bin[0] = '\0';
        snprintf(err, errlen, "VirtualBox is not installed: VBoxManage not found on PATH");
        return ZOS_VBOX_NOTFOUND;
    }
    return ZOS_OK;
}

void zos_vbox_spec_defaults(struct zos_vbox_spec *s, const char *name, const char *iso)
{
    s->name = name;
    s->iso = iso;
    s->memory_mb = ZOS_VBOX_DEFAULT_MEMORY;
    s->disk_mb = ZOS_VBOX_DEFAULT_DISK;
    s->port = ZOS_VBOX_DEFAULT_PORT;
}

/* ---- operations as chains of steps -------------------------------------- */

enum { STEP_RUN, STEP_WAIT, STEP_DONE };

struct op;
/* Looks at R, the result of the command the previous step asked for (NULL
 * when a step is entered directly or after a wait); returns STEP_*. */
typedef int (*step_fn)(struct op *op, const struct zos_proc_result *r);

struct op {
    struct zos_vbox vb;
    enum zos_vbox_verb verb;
    char *name, *iso, *except; /* owned; iso made absolute */
    int iso_errno;             /* why realpath(iso) failed */
    int memory_mb, disk_mb, port;
    bool must_be_new; /* CREATE, RESET: fail when the VM exists */
    bool check_only;  /* zos_vbox_check_port: stop after the scan */
    step_fn next;     /* what to do with the result of argv */
    step_fn then;     /* where the find and scan sub-sequences continue */
    char *argv[MAX_ARGS + 1];
    int delay_ms; /* STEP_WAIT */
    int rc;
    char err[1024];
    struct zos_vboxmanage_list vms;
    size_t scan;   /* next VM of vms whose forwards to look at */
    char uuid[40]; /* the VM acted on ("" when not registered) */
    struct zos_vboxmanage_info info;
    int tries;
    bool created; /* createvm succeeded: a later failure undoes it */
};

static void op_argv_clear(struct op *op)
{
    for (int i = 0; op->argv[i] != NULL; i++) {
        free(op->argv[i]);
        op->argv[i] = NULL;
    }
}

static void op_clear(struct op *op)
{
    op_argv_clear(op);
    free(op->name);
    free(op->iso);
    free(op->except);
    zos_vboxmanage_list_clear(&op->vms);
    zos_vboxmanage_info_clear(&op->info);
}

static int finish(struct op *op);

__attribute__((format(printf, 3, 4))) static int fail(struct op *op, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(op->err, sizeof op->err, fmt, ap);
    va_end(ap);
    op->rc = rc;
    return finish(op);
}

/* The command in argv failed with R. */
static int fail_cmd(struct op *op, const struct zos_proc_result *r)
{
    char line[512], cmdline[600];
    zos_vboxmanage_error_line(r->err, r->out, line, sizeof line);
    zos_proc_argv_text(op->argv, cmdline, sizeof cmdline);
    return fail(op, ZOS_ERR, "VBoxManage %s failed (exit %d): %s [%s]", op->argv[1], r->status,
                line, cmdline);
}

static int done_ok(struct op *op)
{
    op->rc = ZOS_OK;
    op->err[0] = '\0';
    return STEP_DONE;
}

/* Asks for `VBoxManage ARGS...` (NULL-terminated); NEXT gets its result. */
__attribute__((sentinel)) static int cmd(struct op *op, step_fn next, ...)
{
    va_list ap;
    int i = 0;
    bool oom = false;
    op_argv_clear(op);
    op->argv[i++] = strdup(op->vb.bin);
    va_start(ap, next);
    for (const char *a; (a = va_arg(ap, const char *)) != NULL && i < MAX_ARGS;)
        op->argv[i++] = strdup(a);
    va_end(ap);
    for (int k = 0; k < i; k++)
        oom = oom || op->argv[k] == NULL;
    if (oom) {
        op_argv_clear(op);
        op->created = false;
        return fail(op, ZOS_ERR, "out of memory");
    }
    op->next = next;
    return STEP_RUN;
}

/* Formats a path; false when it does not fit in LEN (never used truncated). */
__attribute__((format(printf, 3, 4))) static bool fmt_path(char *buf, size_t len, const char *fmt,
                                                           ...)
{
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    return w >= 0 && (size_t)w < len;
}

/* The paths below are checked to fit by op_begin. */
static bool vm_dir(const struct op *op, char *buf, size_t len)
{
    return fmt_path(buf, len, "%s/" VMS_DIR "/%s", op->vb.home, op->name);
}

/* Any last command whose failure ends the operation. */
static int last_done(struct op *op, const struct zos_proc_result *r)
{
    return r->status != 0 ? fail_cmd(op, r) : done_ok(op);
}

static int rolled_back(struct op *op, const struct zos_proc_result *r)
{
    (void)r;
    char dir[PATH_MAX];
    vm_dir(op, dir, sizeof dir);
    rm_rf(dir);
    return STEP_DONE;
}

/* The end of a failed operation: a half-made VM is unregistered first. */
static int finish(struct op *op)
{
    if (op->rc != ZOS_OK && op->created) {
        op->created = false;
        return cmd(op, rolled_back, "unregistervm", op->name, "--delete", NULL);
    }
    return STEP_DONE;
}

/* showvminfo output R into op->info. */
static int take_info(struct op *op, const struct zos_proc_result *r)
{
    zos_vboxmanage_info_clear(&op->info);
    return zos_vboxmanage_parse_info(r->out, &op->info);
}

/* find: list vms, op->uuid of op->name, then op->then(NULL). */
static int find_listed(struct op *op, const struct zos_proc_result *r)
{
    if (r->status != 0)
        return fail_cmd(op, r);
    zos_vboxmanage_list_clear(&op->vms);
    if (zos_vboxmanage_parse_list(r->out, &op->vms) != ZOS_OK)
        return fail(op, ZOS_ERR, "out of memory");
    const struct zos_vboxmanage_vm *vm = zos_vboxmanage_list_find(&op->vms, op->name);
    if (vm == NULL)
        return fail(op, ZOS_VBOX_NOVM, "no VirtualBox VM named '%s'", op->name);
    snprintf(op->uuid, sizeof op->uuid, "%s", vm->uuid);
    return op->then(op, NULL);
}

static int find(struct op *op, step_fn then)
{
    op->then = then;
    return cmd(op, find_listed, "list", "vms", NULL);
}

/* LIST */
static int list_got(struct op *op, const struct zos_proc_result *r)
{
    if (r->status != 0)
        return fail_cmd(op, r);
    zos_vboxmanage_list_clear(&op->vms);
    if (zos_vboxmanage_parse_list(r->out, &op->vms) != ZOS_OK)
        return fail(op, ZOS_ERR, "out of memory");
    return done_ok(op);
}

static int list_begin(struct op *op, const struct zos_proc_result *r)
{
    (void)r;
    return cmd(op, list_got, "list", "vms", NULL);
}

/* INFO */
static int info_got(struct op *op, const struct zos_proc_result *r)
{
    if (r->status != 0)
        return fail_cmd(op, r);
    if (take_info(op, r) != ZOS_OK)
        return fail(op, ZOS_ERR, "out of memory");
    return done_ok(op);
}

static int info_found(struct op *op, const struct zos_proc_result *r)
{
    (void)r;
    return cmd(op, info_got, "showvminfo", op->uuid, NULL);
}

static int info_begin(struct op *op, const struct zos_proc_result *r)
{
    (void)r;
    return find(op, info_found);
}

/* START: headless unless asked for a window and there is a display. */
static int start_info(struct op *op, const struct zos_proc_result *r)
{
    if (r->status != 0)
        return fail_cmd(op, r);
    if (take_info(op, r) != ZOS_OK)
        return fail(op, ZOS_ERR, "out of memory");
    if (zos_vboxmanage_info_running(&op->info))
        return done_ok(op);
    const char *display = getenv("DISPLAY");
    bool gui = op->vb.gui && display != NULL && *display != '\0';
    return cmd(op, last_done, "startvm", op->uuid, "--type", gui ? "gui" : "headless", NULL);
}

static int start_found(struct op *op, const struct zos_proc_result *r)
{
    (void)r;
    return cmd(op, start_info, "showvminfo", op->uuid, NULL);
}

static int start_begin(struct op *op, const struct zos_proc_result *r)
{
    (void)r;
    return find(op, start_found);
}

/* STOP */
static int stop_info(struct op *op, const struct zos_proc_result *r)
{
    if (r->status != 0)
        return fail_cmd(op, r);
    if (take_info(op, r) != ZOS_OK)
        return fail(op, ZOS_ERR, "out of memory");
    if (!zos_vboxmanage_info_needs_poweroff(&op->info))
        return done_ok(op);
    return cmd(op, last_done, "controlvm", op->uuid, "poweroff", NULL);
}

static int stop_found(struct op *op, const struct zos_proc_result *r)
{
    (void)r;
    return cmd(op, stop_info, "showvminfo", op->uuid, NULL);
}

static int stop_begin(struct op *op, const struct zos_proc_result *r)
{
    (void)r;
    return find(op, stop_found);
}

/* DELETE (and the middle of RESET): the original's vmDelete. */
static int create_scanned(struct op *op, const struct zos_proc_result *r);

static int delete_files(struct op *op, const struct zos_proc_result *r)
{
    (void)r;
    char dir[PATH_MAX];
    vm_dir(op, dir, sizeof dir);
    if (rm_rf(dir) != 0)
        return fail(op, ZOS_ERR, "cannot remove '%s': %s", dir, strerror(errno));
    if (op->verb == ZOS_VBOX_RESET)
        return create_scanned(op, NULL);
    return done_ok(op);
}

static int delete_unregister(struct op *op, const struct zos_proc_result *r);

static int delete_unregistered(struct op *op, const struct zos_proc_result *r)
{
    if (r->status == 0)
        return delete_files(op, NULL);
    if (r->err != NULL && strstr(r->err, "locked") != NULL && ++op->tries < UNREGISTER_TRIES) {
        op->next = delete_unregister;
        op->delay_ms = UNREGISTER_WAIT;
        return STEP_WAIT;
    }
    return fail_cmd(op, r);
}

/* Entered directly, after the poweroff (R is its result) or after a wait. */
static int delete_unregister(struct op *op, const struct zos_proc_result *r)
{
    if (r != NULL && r->status != 0)
        return fail_cmd(op, r);
    return cmd(op, delete_unregistered, "unregistervm", op->uuid, "--delete", NULL);
}

static int delete_info(struct op *op, const struct zos_proc_result *r)
{
    if (r->status != 0)
        return fail_cmd(op, r);
    if (take_info(op, r) != ZOS_OK)
        return fail(op, ZOS_ERR, "out of memory");
    if (zos_vboxmanage_info_needs_poweroff(&op->info))
        return cmd(op, delete_unregister, "controlvm", op->uuid, "poweroff", NULL);
    return delete_unregister(op, NULL);
}

static int delete_found(struct op *op, const struct zos_proc_result *r)
{
    (void)r;
    if (op->uuid[0] == '\0') /* RESET of an unregistered VM: only its directory */
        return delete_files(op, NULL);
    return cmd(op, delete_info, "showvminfo", op->uuid, NULL);
}

static int delete_begin(struct op *op, const struct zos_proc_result *r)
{
    (void)r;
    return find(op, delete_found);
}

/* The port scan: showvminfo of every VM but op->except, then op->then. */
static int scan_got(struct op *op, const struct zos_proc_result *r);

static int scan_next(struct op *op)
{
    while (op->scan < op->vms.n) {
        const struct zos_vboxmanage_vm *vm = &op->vms.vms[op->scan++];
        if (op->except != NULL && strcmp(vm->name, op->except) == 0)
            continue;
        return cmd(op, scan_got, "showvminfo", vm->uuid, NULL);
    }
    return op->then(op, NULL);
}

/* A VM that cannot be shown (inaccessible) forwards nothing we can know of. */
static int scan_got(struct op *op, const struct zos_proc_result *r)
{
    if (r->status == 0 && take_info(op, r) != ZOS_OK)
        return fail(op, ZOS_ERR, "out of memory");
    for (size_t i = 0; r->status == 0 && i < op->info.nfwd; i++) {
        const struct zos_vboxmanage_fwd *f = &op->info.fwd[i];
        if (f->host_port == op->port && strcasecmp(f->proto, "udp") != 0)
            return fail(op, ZOS_VBOX_CONFLICT, "port %d already taken by VM '%s'", op->port,
                        op->vms.vms[op->scan - 1].name);
    }
    return scan_next(op);
}

static int scan_listed(struct op *op, const struct zos_proc_result *r)
{
    if (r->status != 0)
        return fail_cmd(op, r);
    zos_vboxmanage_list_clear(&op->vms);
    if (zos_vboxmanage_parse_list(r->out, &op->vms) != ZOS_OK)
        return fail(op, ZOS_ERR, "out of memory");
    if (op->must_be_new && zos_vboxmanage_list_find(&op->vms, op->name) != NULL)
        return fail(op, ZOS_ERR, "VirtualBox VM '%s' already exists", op->name);
    op->scan = 0;
    return scan_next(op);
}

static int scan(struct op *op, step_fn then)
{
    op->then = then;
    return cmd(op, scan_listed, "list", "vms", NULL);
}

/* CREATE: §9.7 step 3, after the port check of step 2. */
static bool vdi_path(const struct op *op, char *buf, size_t len)
{
    return fmt_path(buf, len, "%s/" VMS_DIR "/%s/main%s.vdi", op->vb.home, op->name, op->name);
}

static int create_dvd(struct op *op, const struct zos_proc_result *r)
{
    if (r->status != 0)
        return fail_cmd(op, r);
    return cmd(op, last_done, "storageattach", op->name, "--storagectl", "IDE Controller", "--port",
               "0", "--device", "0", "--type", "dvddrive", "--medium", op->iso, NULL);
}

static int create_ide(struct op *op, const struct zos_proc_result *r)
{
    if (r != NULL && r->status != 0)
        return fail_cmd(op, r);
    return cmd(op, create_dvd, "storagectl", op->name, "--name", "IDE Controller", "--add", "ide",
               NULL);
}

static int create_sata_attach(struct op *op, const struct zos_proc_result *r)
{
    if (r->status != 0)
        return fail_cmd(op, r);
    char vdi[PATH_MAX];
    vdi_path(op, vdi, sizeof vdi);
    return cmd(op, create_ide, "storageattach", op->name, "--storagectl", "SATA Controller",
               "--port", "0", "--device", "0", "--type", "hdd", "--medium", vdi, NULL);
}

/* As the original, a disk that could not be made because it exists is used. */
static int create_sata(struct op *op, const struct zos_proc_result *r)
{
    char vdi[PATH_MAX];
    vdi_path(op, vdi, sizeof vdi);
    if (r->status != 0 && access(vdi, F_OK) != 0)
        return fail_cmd(op, r);
    return cmd(op, create_sata_attach, "storagectl", op->name, "--name", "SATA Controller", "--add",
               "sata", "--controller", "IntelAHCI", NULL);
}

static int create_listed(struct op *op, const struct zos_proc_result *r)
{
    if (r->status != 0)
        return fail_cmd(op, r);
    zos_vboxmanage_list_clear(&op->vms);
    if (zos_vboxmanage_parse_list(r->out, &op->vms) != ZOS_OK)
        return fail(op, ZOS_ERR, "out of memory");
    if (zos_vboxmanage_list_find(&op->vms, op->name) == NULL)
        return fail(op, ZOS_ERR, "VM '%s' is not registered after createvm", op->name);
    if (op->disk_mb <= 0)
        return create_ide(op, NULL);
    char vdi[PATH_MAX], mb[16];
    vdi_path(op, vdi, sizeof vdi);
    snprintf(mb, sizeof mb, "%d", op->disk_mb);
    return cmd(op, create_sata, "createmedium", "disk", "--filename", vdi, "--size", mb, "--format",
               "VDI", NULL);
}

static int create_relist(struct op *op, const struct zos_proc_result *r)
{
    if (r->status != 0)
        return fail_cmd(op, r);
    return cmd(op, create_listed, "list", "vms", NULL);
}

static int create_modify(struct op *op, const struct zos_proc_result *r)
{
    if (r->status != 0)
        return fail_cmd(op, r);
    op->created = true;
    char mem[16], pf[64];
    snprintf(mem, sizeof mem, "%d", op->memory_mb);
    snprintf(pf, sizeof pf, "redis,tcp,,%d,,%d", op->port, ZOS_VBOX_GUEST_PORT);
    return cmd(op, create_relist, "modifyvm", op->name, "--memory", mem, "--ioapic", "on",
               "--boot1", "dvd", "--boot2", "disk", "--nic1", "nat", "--nic2", "hostonly",
               "--hostonlyadapter2", HOSTONLY_IF, "--vrde", "on", "--natpf1", pf, NULL);
}

/* Entered after `hostonlyif create`, whose failure is ignored as in the
 * original: modifyvm then names the missing interface. */
static int create_vm(struct op *op, const struct zos_proc_result *r)
{
    (void)r;
    char base[PATH_MAX];
    fmt_path(base, sizeof base, "%s/" VMS_DIR, op->vb.home);
    return cmd(op, create_modify, "createvm", "--name", op->name, "--ostype", "Linux_64",
               "--register", "--basefolder", base, NULL);
}

static int create_hostonly(struct op *op, const struct zos_proc_result *r)
{
    if (r->status == 0 && zos_vboxmanage_lists_iface(r->out, HOSTONLY_IF))
        return create_vm(op, NULL);
    return cmd(op, create_vm, "hostonlyif", "create", NULL);
}

static int create_scanned(struct op *op, const struct zos_proc_result *r)
{
    (void)r;
    if (op->check_only)
        return done_ok(op);
    return cmd(op, create_hostonly, "list", "hostonlyifs", NULL);
}

static int create_begin(struct op *op, const struct zos_proc_result *r)
{
    (void)r;
    op->must_be_new = true;
    return scan(op, create_scanned);
}

/* RESET: the port is checked before anything is deleted; the listing of
 * the scan names the VM to delete (if registered), then vmDelete, then the
 * creation from the host-only interface on. */
static int reset_scanned(struct op *op, const struct zos_proc_result *r)
{
    (void)r;
    const struct zos_vboxmanage_vm *vm = zos_vboxmanage_list_find(&op->vms, op->name);
    snprintf(op->uuid, sizeof op->uuid, "%s", vm ? vm->uuid : "");
    return delete_found(op, NULL);
}

static int reset_begin(struct op *op, const struct zos_proc_result *r)
{
    (void)r;
    return scan(op, reset_scanned);
}

/* Checks the fields VERB uses; the step the operation starts with. */
static int op_begin(struct op *op)
{
    static const step_fn begin[] = {
        [ZOS_VBOX_LIST] = list_begin,     [ZOS_VBOX_INFO] = info_begin,
        [ZOS_VBOX_CREATE] = create_begin, [ZOS_VBOX_START] = start_begin,
        [ZOS_VBOX_STOP] = stop_begin,     [ZOS_VBOX_DELETE] = delete_begin,
        [ZOS_VBOX_RESET] = reset_begin,
    };
    bool creates = op->verb == ZOS_VBOX_CREATE || op->verb == ZOS_VBOX_RESET;
    if ((unsigned)op->verb >= ZOS_ARRAY_LEN(begin))
        return fail(op, ZOS_ERR, "unknown VirtualBox operation %d", (int)op->verb);
    char why[256];
    char path[PATH_MAX];
    if (op->verb != ZOS_VBOX_LIST && !zos_vbox_name_valid(op->name, why, sizeof why))
        return fail(op, ZOS_ERR, "%s", why);
    if (op->verb != ZOS_VBOX_LIST && !vdi_path(op, path, sizeof path))
        return fail(op, ZOS_ERR, "home directory path too long");
    if (creates && (op->iso == NULL || op->iso[0] == '\0'))
        return fail(op, ZOS_ERR, "no ISO given");
    if (creates && op->iso_errno != 0)
        return fail(op, ZOS_ERR, "ISO '%s': %s", op->iso, strerror(op->iso_errno));
    if (creates && op->memory_mb <= 0)
        return fail(op, ZOS_ERR, "memory must be > 0 MB, not %d", op->memory_mb);
    if (creates && (!valid_port(op->port) || op->disk_mb < 0))
        return fail(op, ZOS_ERR, "bad port %d or disk size %d MB", op->port, op->disk_mb);
    if (op->check_only)
        return scan(op, create_scanned);
    return begin[op->verb](op, NULL);
}

/* An op for VERB from VB and SPEC (copied).  The ISO is made absolute now:
 * VirtualBox resolves media paths against its own working directory. */
static int op_init(struct op *op, const struct zos_vbox *vb, enum zos_vbox_verb verb,
                   const struct zos_vbox_spec *spec)
{
    memset(op, 0, sizeof *op);
    op->vb = *vb;
    op->verb = verb;
    if (spec == NULL)
        return ZOS_OK;
    op->name = spec->name ? strdup(spec->name) : NULL;
    op->except = spec->name ? strdup(spec->name) : NULL;
    if (spec->iso != NULL) {
        op->iso = realpath(spec->iso, NULL);
        if (op->iso == NULL) {
            op->iso_errno = errno;
            op->iso = strdup(spec->iso);
        }
    }
    op->memory_mb = spec->memory_mb;
    op->disk_mb = spec->disk_mb;
    op->port = spec->port;
    if ((spec->name && (!op->name || !op->except)) || (spec->iso && !op->iso))
        return ZOS_ERR;
    return ZOS_OK;
}

/* ---- the blocking driver ------------------------------------------------ */

static int op_drive(struct op *op, char *err, size_t errlen)
{
    struct zos_proc_result res = {0};
    int s = op_begin(op);
    while (s != STEP_DONE) {
        if (s == STEP_WAIT) {
            zos_sleep_ms(op->delay_ms);
            s = op->next(op, NULL);
            continue;
        }
        zos_proc_result_clear(&res);
        if (op->vb.run(op->vb.run_arg, op->argv, &res, op->err, sizeof op->err) != ZOS_OK) {
            op->rc = ZOS_ERR;
            break;
        }
        s = op->next(op, &res);
    }
    zos_proc_result_clear(&res);
    if (op->rc != ZOS_OK)
        snprintf(err, errlen, "%s", op->err);
    return op->rc;
}

/* Runs VERB to the end; OP is left for the caller to read and clear. */
static int run_verb(struct op *op, const struct zos_vbox *vb, enum zos_vbox_verb verb,
                    const struct zos_vbox_spec *spec, char *err, size_t errlen)
{
    if (op_init(op, vb, verb, spec) != ZOS_OK) {
        snprintf(err, errlen, "out of memory");
        return ZOS_ERR;
    }
    return op_drive(op, err, errlen);
}

static int run_named(const struct zos_vbox *vb, enum zos_vbox_verb verb, const char *name,
                     char *err, size_t errlen)
{
    struct op op;
    struct zos_vbox_spec spec = {.name = name};
    int rc = run_verb(&op, vb, verb, &spec, err, errlen);
    op_clear(&op);
    return rc;
}

int zos_vbox_list(const struct zos_vbox *vb, struct zos_vboxmanage_list *out, char *err,
                  size_t errlen)
{
    struct op op;
    int rc = run_verb(&op, vb, ZOS_VBOX_LIST, NULL, err, errlen);
    if (rc == ZOS_OK) {
        *out = op.vms;
        memset(&op.vms, 0, sizeof op.vms);
    }
    op_clear(&op);
    return rc;
}

int zos_vbox_info(const struct zos_vbox *vb, const char *name, struct zos_vboxmanage_info *out,
                  char *err, size_t errlen)
{
    struct op op;
    struct zos_vbox_spec spec = {.name = name};
    int rc = run_verb(&op, vb, ZOS_VBOX_INFO, &spec, err, errlen);
    if (rc == ZOS_OK) {
        *out = op.info;
        memset(&op.info, 0, sizeof op.info);
    }
    op_clear(&op);
    return rc;
}

int zos_vbox_check_port(const struct zos_vbox *vb, int port, const char *except, char *err,
                        size_t errlen)
{
    struct op op;
    if (!valid_port(port)) {
        snprintf(err, errlen, "bad port %d", port);
        return ZOS_ERR;
    }
    op_init(&op, vb, ZOS_VBOX_LIST, NULL);
    op.port = port;
    op.check_only = true;
    op.except = except ? strdup(except) : NULL;
    int rc = ZOS_ERR;
    if (except != NULL && op.except == NULL)
        snprintf(err, errlen, "out of memory");
    else
        rc = op_drive(&op, err, errlen);
    op_clear(&op);
    return rc;
}

int zos_vbox_create(const struct zos_vbox *vb, const struct zos_vbox_spec *spec, char *err,
                    size_t errlen)
{
    struct op op;
    int rc = run_verb(&op, vb, ZOS_VBOX_CREATE, spec, err, errlen);
    op_clear(&op);
    return rc;
}

int zos_vbox_reset(const struct zos_vbox *vb, const struct zos_vbox_spec *spec, char *err,
                   size_t errlen)
{
    struct op op;
    int rc = run_verb(&op, vb, ZOS_VBOX_RESET, spec, err, errlen);
    op_clear(&op);
    return rc;
}

int zos_vbox_start(const struct zos_vbox *vb, const char *name, char *err, size_t errlen)
{
    return run_named(vb, ZOS_VBOX_START, name, err, errlen);
}

int zos_vbox_stop(const struct zos_vbox *vb, const char *name, char *err, size_t errlen)
{
    return run_named(vb, ZOS_VBOX_STOP, name, err, errlen);
}

int zos_vbox_delete(const struct zos_vbox *vb, const char *name, char *err, size_t errlen)
{
    return run_named(vb, ZOS_VBOX_DELETE, name, err, errlen);
}

/* ---- the asynchronous driver -------------------------------------------- */

static const char *const verb_names[] = {
    [ZOS_VBOX_LIST] = "LIST",   [ZOS_VBOX_INFO] = "INFO", [ZOS_VBOX_CREATE] = "CREATE",
    [ZOS_VBOX_START] = "START", [ZOS_VBOX_STOP] = "STOP", [ZOS_VBOX_DELETE] = "DELETE",
    [ZOS_VBOX_RESET] = "RESET",
};

int zos_vbox_verb_parse(const char *word, enum zos_vbox_verb *out)
{
    for (size_t i = 0; word != NULL && i < ZOS_ARRAY_LEN(verb_names); i++) {
        if (strcasecmp(word, verb_names[i]) == 0) {
            *out = (enum zos_vbox_verb)i;
            return ZOS_OK;
        }
    }
    return ZOS_ERR;
}

const char *zos_vbox_verb_name(enum zos_vbox_verb v)
{
    return (unsigned)v < ZOS_ARRAY_LEN(verb_names) ? verb_names[v] : "?";
}

struct zos_vbox_op {
    struct op core;
    struct event_base *base;
    struct event *timer; /* the first step, and STEP_WAIT */
    struct zos_proc *proc;
    bool started;
    zos_vbox_done_fn fn;
    void *arg;
};

static void aop_free(struct zos_vbox_op *a)
{
    if (a->timer != NULL)
        event_free(a->timer);
    op_clear(&a->core);
    free(a);
}

static void aop_finish(struct zos_vbox_op *a)
{
    struct zos_vbox_reply reply = {
        .rc = a->core.rc,
        .err = a->core.err,
        .list = a->core.verb == ZOS_VBOX_LIST && a->core.rc == ZOS_OK ? &a->core.vms : NULL,
        .info = a->core.verb == ZOS_VBOX_INFO && a->core.rc == ZOS_OK ? &a->core.info : NULL,
    };
    a->fn(a->arg, &reply);
    aop_free(a);
}

static void aop_proc_done(void *arg, struct zos_proc_result *res, const char *err);

/* Carries out what the last step returned. */
static void aop_step(struct zos_vbox_op *a, int s)
{
    char err[512];
    if (s == STEP_RUN) {
        a->proc = zos_proc_spawn(a->base, a->core.argv, aop_proc_done, a, err, sizeof err);
        if (a->proc != NULL)
            return;
        snprintf(a->core.err, sizeof a->core.err, "%s", err);
        a->core.rc = ZOS_ERR;
    } else if (s == STEP_WAIT) {
        struct timeval tv = {a->core.delay_ms / 1000, (a->core.delay_ms % 1000) * 1000};
        evtimer_add(a->timer, &tv);
        return;
    }
    aop_finish(a);
}

static void aop_proc_done(void *arg, struct zos_proc_result *res, const char *err)
{
    (void)err; /* a status of -1 fails the step, which reports it */
    struct zos_vbox_op *a = arg;
    a->proc = NULL;
    aop_step(a, a->core.next(&a->core, res));
}

static void aop_on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct zos_vbox_op *a = arg;
    int s = a->started ? a->core.next(&a->core, NULL) : op_begin(&a->core);
    a->started = true;
    aop_step(a, s);
}

struct zos_vbox_op *zos_vbox_submit(const struct zos_vbox *vb, struct event_base *base,
                                    enum zos_vbox_verb verb, const struct zos_vbox_spec *spec,
                                    zos_vbox_done_fn fn, void *arg)
{
    struct zos_vbox_op *a = calloc(1, sizeof *a);
    if (a == NULL)
        return NULL;
    int rc = op_init(&a->core, vb, verb, spec);
    a->base = base;
    a->fn = fn;
    a->arg = arg;
    a->timer = evtimer_new(base, aop_on_timer, a);
    struct timeval now = {0, 0};
    if (rc != ZOS_OK || a->timer == NULL || evtimer_add(a->timer, &now) != 0) {
        aop_free(a);
        return NULL;
    }
    return a;
}

void zos_vbox_op_cancel(struct zos_vbox_op *a)
{
    if (a == NULL)
        return;
    zos_proc_cancel(a->proc);
    aop_free(a);
}
