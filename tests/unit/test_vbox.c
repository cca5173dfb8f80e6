/* test_vbox.c -- vbox's VBoxManage sequences against tests/fixtures/VBoxManage (a stand-in
 * on PATH), blocking and on an event loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <event2/event.h>

#include "zos/util.h"
#include "zos/vbox.h"
#include "zos/zos.h"

#include "testutil.h"

static char fixtures[PATH_MAX]; /* tests/fixtures, absolute */
static char orig_path[8192];

/* One test's world: HOME, the stub's log and state in a fresh temp dir. */
struct env {
    char dir[PATH_MAX];
    char log[PATH_MAX + 16];
    char iso[PATH_MAX + 16];
    struct zos_vbox vb;
};

/* Expected command lines, arguments joined with '|'. */
struct seq {
    char s[32][1400];
    size_t n;
};

static void seq_add(struct seq *q, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void seq_add(struct seq *q, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q->s[q->n++], sizeof q->s[0], fmt, ap);
    va_end(ap);
}

/* The stub's log as "arg|arg|..." lines; the log is emptied. */
static char **log_take(const struct env *e, size_t *n)
{
    char line[8192];
    char **out = NULL;
    *n = 0;
    FILE *f = fopen(e->log, "r");
    while (f != NULL && fgets(line, sizeof line, f) != NULL) {
        cJSON *arr = cJSON_Parse(line);
        assert_true(cJSON_IsArray(arr));
        char joined[8192] = "";
        size_t off = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, arr)
        {
            off += (size_t)snprintf(joined + off, sizeof joined - off, "%s%s", off ? "|" : "",
                                    it->valuestring);
        }
        cJSON_Delete(arr);
        out = realloc(out, (*n + 1) * sizeof *out);
        assert_non_null(out);
        out[(*n)++] = strdup(joined);
    }
    if (f != NULL)
        fclose(f);
    assert_true(truncate(e->log, 0) == 0 || errno == ENOENT);
    return out;
}

static void log_free(char **lines, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
}

/* The commands run since the last check are exactly Q. */
static void expect_cmds(const struct env *e, const struct seq *q)
{
    size_t n;
    char **got = log_take(e, &n);
    for (size_t i = 0; i < n && i < q->n; i++)
        assert_string_equal(got[i], q->s[i]);
    if (n != q->n) {
        for (size_t i = 0; i < n; i++)
            print_message("  ran: %s\n", got[i]);
    }
    assert_int_equal(n, q->n);
    log_free(got, n);
}

static void log_reset(const struct env *e)
{
    assert_true(truncate(e->log, 0) == 0 || errno == ENOENT);
}

/* Empties Q, then the commands every verb starts with: the VMs listed and,
 * for a VM that exists (UUID not NULL), that VM looked at. */
static void seq_begin(struct seq *q, const char *uuid)
{
    q->n = 0;
    seq_add(q, "list|vms");
    if (uuid != NULL)
        seq_add(q, "showvminfo|%s", uuid);
}

static int env_setup(void **state)
{
    struct env *e = calloc(1, sizeof *e);
    char tmpl[64], path[sizeof orig_path + PATH_MAX + 2], err[256];
    assert_non_null(e);
    assert_non_null(tu_mkdtemp(tmpl, sizeof tmpl, "vbox"));
    assert_non_null(realpath(tmpl, e->dir));
    snprintf(e->log, sizeof e->log, "%s/stub.log", e->dir);
    snprintf(e->iso, sizeof e->iso, "%s/zos.iso", e->dir);
    snprintf(path, sizeof path, "%s/stub.json", e->dir);
    setenv("VBOX_STUB_STATE", path, 1);
    setenv("VBOX_STUB_LOG", e->log, 1);
    setenv("HOME", e->dir, 1);
    snprintf(path, sizeof path, "%s:%s", fixtures, orig_path);
    setenv("PATH", path, 1);
    unsetenv("DISPLAY");
    unsetenv("VBOX_STUB_FAIL");
    unsetenv("VBOX_STUB_FAIL_MSG");
    unsetenv("VBOX_STUB_LOCKED");
    assert_int_equal(tu_write_file(e->iso, "not really an iso\n", 18, 0644), 0);
    assert_int_equal(zos_vbox_init(&e->vb, NULL, err, sizeof err), ZOS_OK);
    *state = e;
    return 0;
}

static int env_teardown(void **state)
{
    struct env *e = *state;
    tu_rm_tree(e->dir);
    free(e);
    setenv("PATH", orig_path, 1);
    return 0;
}

static void spec_of(struct zos_vbox_spec *s, const struct env *e, const char *name, int port,
                    int disk_mb)
{
    zos_vbox_spec_defaults(s, name, e->iso);
    s->port = port;
    s->disk_mb = disk_mb;
}

static void create_ok(struct env *e, const char *name, int port, int disk_mb)
{
    struct zos_vbox_spec s;
    char err[1024] = "";
    spec_of(&s, e, name, port, disk_mb);
    int rc = zos_vbox_create(&e->vb, &s, err, sizeof err);
    if (rc != ZOS_OK)
        print_message("create %s: %s\n", name, err);
    assert_int_equal(rc, ZOS_OK);
}

/* The uuid VirtualBox (the stub) gave NAME. */
static void uuid_of(const struct env *e, const char *name, char *uuid)
{
    struct zos_vboxmanage_list l = {0};
    char err[1024];
    assert_int_equal(zos_vbox_list(&e->vb, &l, err, sizeof err), ZOS_OK);
    const struct zos_vboxmanage_vm *vm = zos_vboxmanage_list_find(&l, name);
    assert_non_null(vm);
    strcpy(uuid, vm->uuid);
    zos_vboxmanage_list_clear(&l);
    log_reset(e);
}

static void state_of(const struct env *e, const char *name, char *state, size_t len)
{
    struct zos_vboxmanage_info info = {0};
    char err[1024];
    assert_int_equal(zos_vbox_info(&e->vb, name, &info, err, sizeof err), ZOS_OK);
    snprintf(state, len, "%s", info.state);
    zos_vboxmanage_info_clear(&info);
    log_reset(e);
}

/* The §9.7 creation commands of a new VM NAME in E (after the port scan). */
static void seq_create(struct seq *q, const struct env *e, const char *name, int port, int disk,
                       bool make_hostonly)
{
    seq_add(q, "list|hostonlyifs");
    if (make_hostonly)
        seq_add(q, "hostonlyif|create");
    seq_add(q, "createvm|--name|%s|--ostype|Linux_64|--register|--basefolder|%s/VirtualBox VMs",
            name, e->dir);
    seq_add(q,
            "modifyvm|%s|--memory|4096|--ioapic|on|--boot1|dvd|--boot2|disk|--nic1|nat|--nic2|"
            "hostonly|--hostonlyadapter2|vboxnet0|--vrde|on|--natpf1|redis,tcp,,%d,,6379",
            name, port);
    seq_add(q, "list|vms");
    if (disk > 0) {
        seq_add(
            q,
            "createmedium|disk|--filename|%s/VirtualBox VMs/%s/main%s.vdi|--size|%d|--format|VDI",
            e->dir, name, name, disk);
        seq_add(q, "storagectl|%s|--name|SATA Controller|--add|sata|--controller|IntelAHCI", name);
        seq_add(q,
                "storageattach|%s|--storagectl|SATA Controller|--port|0|--device|0|--type|hdd|"
                "--medium|%s/VirtualBox VMs/%s/main%s.vdi",
                name, e->dir, name, name);
    }
    seq_add(q, "storagectl|%s|--name|IDE Controller|--add|ide", name);
    seq_add(q,
            "storageattach|%s|--storagectl|IDE Controller|--port|0|--device|0|--type|dvddrive|"
            "--medium|%s",
            name, e->iso);
}

/* Starts (stop_ok: stops) NAME; the commands that ran are not checked. */
static void start_ok(struct env *e, const char *name)
{
    char err[1024];
    assert_int_equal(zos_vbox_start(&e->vb, name, err, sizeof err), ZOS_OK);
    log_reset(e);
}

static void stop_ok(struct env *e, const char *name)
{
    char err[1024];
    assert_int_equal(zos_vbox_stop(&e->vb, name, err, sizeof err), ZOS_OK);
    log_reset(e);
}

/* Starts the stopped VM "zos" (UUID), which must take exactly the commands
 * of a start of TYPE ("headless" or "gui"). */
static void expect_start(struct env *e, const char *uuid, const char *type)
{
    struct seq q;
    char err[1024];
    assert_int_equal(zos_vbox_start(&e->vb, "zos", err, sizeof err), ZOS_OK);
    seq_begin(&q, uuid);
    seq_add(&q, "startvm|%s|--type|%s", uuid, type);
    expect_cmds(e, &q);
}

/* ---- verbs ------------------------------------------------------------- */

static void test_verbs(void **state)
{
    (void)state;
    enum zos_vbox_verb v;
    assert_int_equal(zos_vbox_verb_parse("create", &v), ZOS_OK);
    assert_int_equal(v, ZOS_VBOX_CREATE);
    assert_int_equal(zos_vbox_verb_parse("LIST", &v), ZOS_OK);
    assert_int_equal(v, ZOS_VBOX_LIST);
    assert_int_equal(zos_vbox_verb_parse("Delete", &v), ZOS_OK);
    assert_string_equal(zos_vbox_verb_name(v), "DELETE");
    assert_int_equal(zos_vbox_verb_parse("explode", &v), ZOS_ERR);
    assert_int_equal(zos_vbox_verb_parse(NULL, &v), ZOS_ERR);
    assert_string_equal(zos_vbox_verb_name((enum zos_vbox_verb)99), "?");
}

static void test_name_valid(void **state)
{
    (void)state;
    static const struct {
        const char *name, *why;
    } bad[] = {
        {"", "invalid VM name '': it is empty"},
        {"-rf", "invalid VM name '-rf': it starts with '-'"},
        {"a/b", "invalid VM name 'a/b': it contains '/'"},
        {"..", "invalid VM name '..': it is a directory name"},
        {"tab\there", "invalid VM name 'tab\there': it contains a control character"},
        {"del\x7f", "invalid VM name 'del\x7f': it contains a control character"},
    };
    char err[256], longname[130];
    for (size_t i = 0; i < ZOS_ARRAY_LEN(bad); i++) {
        assert_false(zos_vbox_name_valid(bad[i].name, err, sizeof err));
        assert_string_equal(err, bad[i].why);
    }
    assert_false(zos_vbox_name_valid(NULL, err, sizeof err));
    memset(longname, 'x', 129);
    longname[129] = '\0';
    assert_false(zos_vbox_name_valid(longname, err, sizeof err));
    tu_assert_contains(err, "it is longer than 128 bytes");
    longname[128] = '\0';
    assert_true(zos_vbox_name_valid(longname, err, sizeof err));
    assert_true(zos_vbox_name_valid("ZOS Capital's {1}", err, sizeof err));
}

/* ---- VBoxManage sequences ------------------------------------------------ */

static void test_create_sequence(void **state)
{
    struct env *e = *state;
    struct seq q = {0};
    char st[32];
    create_ok(e, "zos", 4444, 20480);
    seq_begin(&q, NULL);
    seq_create(&q, e, "zos", 4444, 20480, true);
    expect_cmds(e, &q);

    /* What VirtualBox now holds: the redis forward, powered off. */
    struct zos_vboxmanage_info info = {0};
    char err[1024];
    assert_int_equal(zos_vbox_info(&e->vb, "zos", &info, err, sizeof err), ZOS_OK);
    assert_string_equal(info.state, "powered off");
    assert_int_equal(info.nfwd, 1);
    assert_string_equal(info.fwd[0].name, "redis");
    assert_int_equal(info.fwd[0].host_port, 4444);
    assert_int_equal(info.fwd[0].guest_port, 6379);
    zos_vboxmanage_info_clear(&info);
    log_reset(e);

    /* A second VM: the first one's forwards are looked at, vboxnet0 exists now. */
    char uuid[40];
    uuid_of(e, "zos", uuid);
    create_ok(e, "second", 4445, 0);
    seq_begin(&q, uuid);
    seq_create(&q, e, "second", 4445, 0, false);
    expect_cmds(e, &q);
    state_of(e, "second", st, sizeof st);
    assert_string_equal(st, "powered off");

    /* And creating it again is refused before anything is changed. */
    struct zos_vbox_spec s;
    spec_of(&s, e, "zos", 4446, 0);
    assert_int_equal(zos_vbox_create(&e->vb, &s, err, sizeof err), ZOS_ERR);
    assert_string_equal(err, "VirtualBox VM 'zos' already exists");
    seq_begin(&q, NULL);
    expect_cmds(e, &q);
}

static void test_start_stop(void **state)
{
    struct env *e = *state;
    struct seq q = {0};
    char err[1024], uuid[40], st[32];
    create_ok(e, "zos", 4444, 0);
    uuid_of(e, "zos", uuid);

    expect_start(e, uuid, "headless");
    state_of(e, "zos", st, sizeof st);
    assert_string_equal(st, "running");

    /* Already running: looked at, not started twice. */
    assert_int_equal(zos_vbox_start(&e->vb, "zos", err, sizeof err), ZOS_OK);
    seq_begin(&q, uuid);
    expect_cmds(e, &q);

    assert_int_equal(zos_vbox_stop(&e->vb, "zos", err, sizeof err), ZOS_OK);
    seq_add(&q, "controlvm|%s|poweroff", uuid);
    expect_cmds(e, &q);
    state_of(e, "zos", st, sizeof st);
    assert_string_equal(st, "powered off");

    /* Stopping a stopped VM changes nothing. */
    assert_int_equal(zos_vbox_stop(&e->vb, "zos", err, sizeof err), ZOS_OK);
    seq_begin(&q, uuid);
    expect_cmds(e, &q);
}

static void test_start_display(void **state)
{
    struct env *e = *state;
    char uuid[40];
    create_ok(e, "zos", 4444, 0);
    uuid_of(e, "zos", uuid);

    /* A display alone does not make a window: headless is the default. */
    setenv("DISPLAY", ":0", 1);
    expect_start(e, uuid, "headless");
    stop_ok(e, "zos");

    /* gui asked for and a display: a window. */
    e->vb.gui = true;
    expect_start(e, uuid, "gui");
    stop_ok(e, "zos");

    /* gui asked for, no display: headless (the stub's gui start would crash). */
    unsetenv("DISPLAY");
    expect_start(e, uuid, "headless");
}

static void check_delete(struct env *e, bool running)
{
    struct seq q = {0};
    char err[1024], uuid[40], dir[PATH_MAX + 32], junk[PATH_MAX + 64];
    create_ok(e, "zos", 4444, 1024);
    uuid_of(e, "zos", uuid);
    if (running)
        start_ok(e, "zos");
    snprintf(dir, sizeof dir, "%s/VirtualBox VMs/zos", e->dir);
    snprintf(junk, sizeof junk, "%s/Logs", dir);
    assert_int_equal(mkdir(junk, 0700), 0); /* VirtualBox leaves such things behind */
    strcat(junk, "/VBox.log");
    assert_int_equal(tu_write_file(junk, "log\n", 4, 0644), 0);
    log_reset(e);

    assert_int_equal(zos_vbox_delete(&e->vb, "zos", err, sizeof err), ZOS_OK);
    seq_begin(&q, uuid);
    if (running)
        seq_add(&q, "controlvm|%s|poweroff", uuid);
    seq_add(&q, "unregistervm|%s|--delete", uuid);
    expect_cmds(e, &q);
    assert_false(tu_exists(dir));

    struct zos_vboxmanage_list l = {0};
    assert_int_equal(zos_vbox_list(&e->vb, &l, err, sizeof err), ZOS_OK);
    assert_int_equal(l.n, 0);
    zos_vboxmanage_list_clear(&l);

    assert_int_equal(zos_vbox_delete(&e->vb, "zos", err, sizeof err), ZOS_VBOX_NOVM);
    assert_string_equal(err, "no VirtualBox VM named 'zos'");
}

static void test_delete_running(void **state)
{
    check_delete(*state, true);
}

static void test_delete_stopped(void **state)
{
    check_delete(*state, false);
}

static void test_reset(void **state)
{
    struct env *e = *state;
    struct seq q = {0};
    struct zos_vbox_spec s;
    char err[1024], uuid[40], uuid2[40], st[32];

    /* Reset of a VM that does not exist yet: a leftover directory goes, then create. */
    char dir[PATH_MAX + 32], leftover[PATH_MAX + 48];
    snprintf(dir, sizeof dir, "%s/VirtualBox VMs/zos", e->dir);
    assert_int_equal(zos_mkdir_p(dir, 0700, NULL, 0), 0);
    snprintf(leftover, sizeof leftover, "%s/zos.vbox", dir);
    /* createvm would refuse to overwrite it */
    assert_int_equal(tu_write_file(leftover, "<old/>\n", 7, 0644), 0);
    spec_of(&s, e, "zos", 4444, 0);
    assert_int_equal(zos_vbox_reset(&e->vb, &s, err, sizeof err), ZOS_OK);
    seq_begin(&q, NULL);
    seq_create(&q, e, "zos", 4444, 0, true);
    expect_cmds(e, &q);

    /* Reset of a running VM: port check, vmDelete, then the creation sequence. */
    uuid_of(e, "zos", uuid);
    start_ok(e, "zos");
    spec_of(&s, e, "zos", 4444, 2048);
    assert_int_equal(zos_vbox_reset(&e->vb, &s, err, sizeof err), ZOS_OK);
    seq_begin(&q, uuid);
    seq_add(&q, "controlvm|%s|poweroff", uuid);
    seq_add(&q, "unregistervm|%s|--delete", uuid);
    seq_create(&q, e, "zos", 4444, 2048, false);
    expect_cmds(e, &q);
    uuid_of(e, "zos", uuid2);
    assert_string_not_equal(uuid, uuid2);
    state_of(e, "zos", st, sizeof st);
    assert_string_equal(st, "powered off");

    /* A reset onto a port another VM forwards deletes nothing. */
    create_ok(e, "other", 4445, 0);
    uuid_of(e, "other", uuid);
    spec_of(&s, e, "zos", 4445, 0);
    assert_int_equal(zos_vbox_reset(&e->vb, &s, err, sizeof err), ZOS_VBOX_CONFLICT);
    assert_string_equal(err, "port 4445 already taken by VM 'other'");
    seq_begin(&q, uuid);
    expect_cmds(e, &q);
    uuid_of(e, "zos", uuid);
    assert_string_equal(uuid, uuid2);
}

/* VirtualBox keeps the session lock a moment after poweroff: unregistervm is retried. */
static void test_delete_locked(void **state)
{
    struct env *e = *state;
    struct seq q = {0};
    char err[1024], uuid[40];
    create_ok(e, "zos", 4444, 0);
    uuid_of(e, "zos", uuid);
    start_ok(e, "zos");
    setenv("VBOX_STUB_LOCKED", "2", 1);
    assert_int_equal(zos_vbox_delete(&e->vb, "zos", err, sizeof err), ZOS_OK);
    unsetenv("VBOX_STUB_LOCKED");
    seq_begin(&q, uuid);
    seq_add(&q, "controlvm|%s|poweroff", uuid);
    for (int i = 0; i < 3; i++)
        seq_add(&q, "unregistervm|%s|--delete", uuid);
    expect_cmds(e, &q);
}

static void test_port_conflict(void **state)
{
    struct env *e = *state;
    struct seq q = {0};
    struct zos_vbox_spec s;
    char err[1024], uuid[40];
    create_ok(e, "Node A", 4444, 0);
    uuid_of(e, "Node A", uuid);

    spec_of(&s, e, "node-b", 4444, 0);
    assert_int_equal(zos_vbox_create(&e->vb, &s, err, sizeof err), ZOS_VBOX_CONFLICT);
    assert_string_equal(err, "port 4444 already taken by VM 'Node A'");
    seq_begin(&q, uuid);
    expect_cmds(e, &q); /* nothing was created */

    assert_int_equal(zos_vbox_check_port(&e->vb, 4444, NULL, err, sizeof err), ZOS_VBOX_CONFLICT);
    assert_string_equal(err, "port 4444 already taken by VM 'Node A'");
    assert_int_equal(zos_vbox_check_port(&e->vb, 4444, "Node A", err, sizeof err), ZOS_OK);
    assert_int_equal(zos_vbox_check_port(&e->vb, 4445, NULL, err, sizeof err), ZOS_OK);
    log_reset(e);

    s.port = 4445;
    assert_int_equal(zos_vbox_create(&e->vb, &s, err, sizeof err), ZOS_OK);
}

static void test_vboxmanage_missing(void **state)
{
    struct env *e = *state;
    struct zos_vbox vb;
    char err[256], dir[PATH_MAX + 16], link[PATH_MAX + 32], target[PATH_MAX + 16];

    snprintf(dir, sizeof dir, "%s/empty", e->dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    setenv("PATH", dir, 1);
    assert_int_equal(zos_vbox_init(&vb, NULL, err, sizeof err), ZOS_VBOX_NOTFOUND);
    assert_string_equal(err, "VirtualBox is not installed: VBoxManage not found on PATH");

    /* The lower-case name some packages install is found too. */
    snprintf(dir, sizeof dir, "%s/lower", e->dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(link, sizeof link, "%s/vboxmanage", dir);
    snprintf(target, sizeof target, "%s/VBoxManage", fixtures);
    assert_int_equal(symlink(target, link), 0);
    setenv("PATH", dir, 1);
    assert_int_equal(zos_vbox_init(&vb, NULL, err, sizeof err), ZOS_OK);
    assert_string_equal(vb.bin, link);
    assert_string_equal(vb.home, e->dir);
}

static void test_failing_subcommand(void **state)
{
    struct env *e = *state;
    struct zos_vbox_spec s;
    char err[1024];
    size_t n;

    setenv("VBOX_STUB_FAIL", "storagectl", 1);
    spec_of(&s, e, "zos", 4444, 1024);
    assert_int_equal(zos_vbox_create(&e->vb, &s, err, sizeof err), ZOS_ERR);
    assert_string_equal(err,
                        "VBoxManage storagectl failed (exit 1): VBoxManage: error: injected "
                        "failure of storagectl [VBoxManage storagectl zos --name 'SATA Controller' "
                        "--add sata --controller IntelAHCI]");
    /* The half-made VM was taken back. */
    char **ran = log_take(e, &n);
    assert_true(n >= 2);
    assert_string_equal(ran[n - 2], "storagectl|zos|--name|SATA Controller|--add|sata|"
                                    "--controller|IntelAHCI");
    assert_string_equal(ran[n - 1], "unregistervm|zos|--delete");
    log_free(ran, n);
    unsetenv("VBOX_STUB_FAIL");
    struct zos_vboxmanage_list l = {0};
    assert_int_equal(zos_vbox_list(&e->vb, &l, err, sizeof err), ZOS_OK);
    assert_int_equal(l.n, 0);
    zos_vboxmanage_list_clear(&l);

    /* VirtualBox's own message comes through, not a progress line. */
    create_ok(e, "zos", 4444, 0);
    setenv("VBOX_STUB_FAIL", "startvm", 1);
    setenv("VBOX_STUB_FAIL_MSG", "VT-x is not available (VERR_VMX_NO_VMX)", 1);
    assert_int_equal(zos_vbox_start(&e->vb, "zos", err, sizeof err), ZOS_ERR);
    assert_non_null(strstr(err, "VBoxManage startvm failed (exit 1): VBoxManage: error: VT-x "
                                "is not available (VERR_VMX_NO_VMX) [VBoxManage startvm "));

    /* The first command failing: nothing to roll back, the listing error shown. */
    setenv("VBOX_STUB_FAIL", "list", 1);
    unsetenv("VBOX_STUB_FAIL_MSG");
    assert_int_equal(zos_vbox_delete(&e->vb, "zos", err, sizeof err), ZOS_ERR);
    assert_string_equal(err, "VBoxManage list failed (exit 1): VBoxManage: error: injected "
                             "failure of list [VBoxManage list vms]");
}

static void test_names(void **state)
{
    struct env *e = *state;
    struct zos_vboxmanage_list l = {0};
    char err[1024], st[32];
    create_ok(e, "My Node", 4444, 0);
    create_ok(e, "ZOS Capital's", 4445, 0);
    assert_int_equal(zos_vbox_list(&e->vb, &l, err, sizeof err), ZOS_OK);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.vms[0].name, "My Node");
    assert_string_equal(l.vms[1].name, "ZOS Capital's");
    assert_int_equal(strlen(l.vms[1].uuid), 36);
    zos_vboxmanage_list_clear(&l);

    /* Names with spaces, capitals and quotes go through argv untouched. */
    assert_int_equal(zos_vbox_start(&e->vb, "ZOS Capital's", err, sizeof err), ZOS_OK);
    state_of(e, "ZOS Capital's", st, sizeof st);
    assert_string_equal(st, "running");
    assert_int_equal(zos_vbox_start(&e->vb, "zos capital's", err, sizeof err), ZOS_VBOX_NOVM);

    /* Names that could be options or paths are refused before anything runs. */
    static const char *const bad[] = {"", "-rf", "a/b", "..", ".", "tab\there"};
    struct zos_vbox_spec s;
    log_reset(e);
    for (size_t i = 0; i < ZOS_ARRAY_LEN(bad); i++) {
        spec_of(&s, e, bad[i], 4450, 0);
        assert_int_equal(zos_vbox_create(&e->vb, &s, err, sizeof err), ZOS_ERR);
        assert_non_null(strstr(err, "invalid VM name"));
        assert_int_equal(zos_vbox_delete(&e->vb, bad[i], err, sizeof err), ZOS_ERR);
    }
    spec_of(&s, e, "fine", 4450, 0);
    s.iso = "/nonexistent/zos.iso";
    assert_int_equal(zos_vbox_create(&e->vb, &s, err, sizeof err), ZOS_ERR);
    assert_string_equal(err, "ISO '/nonexistent/zos.iso': No such file or directory");
    struct seq none = {0};
    expect_cmds(e, &none);
}

/* ---- the asynchronous operations ----------------------------------------- */

struct op_seen {
    int calls;
    int rc;
    char err[1024];
    char names[8][64];
    size_t nvms;
    char state[32];
    struct event_base *base;
};

static void on_op(void *arg, const struct zos_vbox_reply *r)
{
    struct op_seen *s = arg;
    s->calls++;
    s->rc = r->rc;
    snprintf(s->err, sizeof s->err, "%s", r->err);
    s->nvms = r->list ? r->list->n : 0;
    for (size_t i = 0; r->list && i < r->list->n && i < 8; i++)
        snprintf(s->names[i], sizeof s->names[i], "%s", r->list->vms[i].name);
    snprintf(s->state, sizeof s->state, "%s", r->info ? r->info->state : "");
    event_base_loopbreak(s->base);
}

static int ticks;
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    ticks++;
}

static void run_op(struct env *e, struct event_base *base, enum zos_vbox_verb verb,
                   const struct zos_vbox_spec *spec, struct op_seen *s)
{
    memset(s, 0, sizeof *s);
    s->base = base;
    struct zos_vbox_op *op = zos_vbox_submit(&e->vb, base, verb, spec, on_op, s);
    assert_non_null(op);
    assert_int_equal(s->calls, 0);
    event_base_dispatch(base);
    assert_int_equal(s->calls, 1);
}

static void test_async_ops(void **state)
{
    struct env *e = *state;
    struct event_base *base = event_base_new();
    struct zos_vbox_spec spec;
    struct op_seen s;
    struct seq q = {0};
    char uuid[40];

    /* The loop keeps turning while the sequence runs: a 5 ms timer ticks. */
    struct event *tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
    struct timeval tv = {0, 5000};
    event_add(tick, &tv);
    ticks = 0;
    spec_of(&spec, e, "Async VM", 4444, 512);
    run_op(e, base, ZOS_VBOX_CREATE, &spec, &s);
    assert_int_equal(s.rc, ZOS_OK);
    assert_string_equal(s.err, "");
    assert_true(ticks >= 10);
    seq_begin(&q, NULL);
    seq_create(&q, e, "Async VM", 4444, 512, true);
    expect_cmds(e, &q); /* the same commands as the blocking create */
    event_free(tick);
    tick = NULL;

    run_op(e, base, ZOS_VBOX_LIST, NULL, &s);
    assert_int_equal(s.rc, ZOS_OK);
    assert_int_equal(s.nvms, 1);
    assert_string_equal(s.names[0], "Async VM");
    uuid_of(e, "Async VM", uuid);

    struct zos_vbox_spec named = {.name = "Async VM"};
    run_op(e, base, ZOS_VBOX_START, &named, &s);
    assert_int_equal(s.rc, ZOS_OK);
    seq_begin(&q, uuid);
    seq_add(&q, "startvm|%s|--type|headless", uuid);
    expect_cmds(e, &q);
    run_op(e, base, ZOS_VBOX_INFO, &named, &s);
    assert_string_equal(s.state, "running");

    spec_of(&spec, e, "other", 4444, 0);
    run_op(e, base, ZOS_VBOX_CREATE, &spec, &s);
    assert_int_equal(s.rc, ZOS_VBOX_CONFLICT);
    assert_string_equal(s.err, "port 4444 already taken by VM 'Async VM'");

    run_op(e, base, ZOS_VBOX_STOP, &named, &s);
    assert_int_equal(s.rc, ZOS_OK);
    run_op(e, base, ZOS_VBOX_INFO, &named, &s);
    assert_string_equal(s.state, "powered off");
    log_reset(e);

    setenv("VBOX_STUB_LOCKED", "1", 1); /* the retry waits on a timer, not in a sleep */
    ticks = 0;
    tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
    event_add(tick, &tv);
    run_op(e, base, ZOS_VBOX_DELETE, &named, &s);
    event_free(tick);
    unsetenv("VBOX_STUB_LOCKED");
    assert_int_equal(s.rc, ZOS_OK);
    assert_true(ticks >= 50);
    seq_begin(&q, uuid);
    seq_add(&q, "unregistervm|%s|--delete", uuid);
    seq_add(&q, "unregistervm|%s|--delete", uuid);
    expect_cmds(e, &q);
    run_op(e, base, ZOS_VBOX_DELETE, &named, &s);
    assert_int_equal(s.rc, ZOS_VBOX_NOVM);

    setenv("VBOX_STUB_FAIL", "list", 1);
    run_op(e, base, ZOS_VBOX_LIST, NULL, &s);
    assert_int_equal(s.rc, ZOS_ERR);
    assert_string_equal(s.err, "VBoxManage list failed (exit 1): VBoxManage: error: injected "
                               "failure of list [VBoxManage list vms]");
    unsetenv("VBOX_STUB_FAIL");

    /* Cancelled before the loop ran it, and in the middle of a command. */
    memset(&s, 0, sizeof s);
    struct zos_vbox_op *op = zos_vbox_submit(&e->vb, base, ZOS_VBOX_LIST, NULL, on_op, &s);
    zos_vbox_op_cancel(op);
    spec_of(&spec, e, "cancelled", 4460, 0);
    op = zos_vbox_submit(&e->vb, base, ZOS_VBOX_CREATE, &spec, on_op, &s);
    event_base_loop(base, EVLOOP_ONCE); /* the first command is started */
    zos_vbox_op_cancel(op);
    event_base_loop(base, EVLOOP_NONBLOCK);
    assert_int_equal(s.calls, 0);
    event_base_free(base);
}

static int fds_at_start;

/* After all of the above (a long-running proxy does this all day). */
static void test_no_fd_leaked(void **state)
{
    (void)state;
    assert_int_equal(tu_count_fds(), fds_at_start);
}

int main(void)
{
    const char *path = getenv("PATH");
    snprintf(orig_path, sizeof orig_path, "%s", path ? path : "/usr/bin:/bin");
    if (tu_find_fixtures(fixtures, "VBoxManage", X_OK) != 0)
        return 1;
    fds_at_start = tu_count_fds();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verbs),
        cmocka_unit_test(test_name_valid),
        cmocka_unit_test_setup_teardown(test_create_sequence, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_start_stop, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_start_display, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_delete_running, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_delete_stopped, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_reset, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_delete_locked, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_port_conflict, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_vboxmanage_missing, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_failing_subcommand, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_names, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_async_ops, env_setup, env_teardown),
        cmocka_unit_test(test_no_fd_leaked),
    };
    return cmocka_run_group_tests_name("vbox", tests, NULL, NULL);
}
