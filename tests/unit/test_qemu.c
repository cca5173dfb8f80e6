/* test_qemu.c -- qemu: the command line, the state directory, disks, the pidfile, and a real
 * start and stop when qemu-system-x86_64 is installed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "zos/proc.h"
#include "zos/qemu.h"
#include "zos/vbox.h"
#include "zos/zos.h"

#include "testutil.h"

static void test_qemu_argv(void **state)
{
    (void)state;
    char err[256];
    struct zos_qemu q = {
        .name = "zos,1",
        .iso = "/home/u/.zos/zos.iso",
        .disk = "/home/u/my,disks/zos.qcow2",
        .memory_mb = 2048,
        .port = 4444,
        .state_dir = "/home/u/.zos/qemu/zos",
        .accel = "tcg",
    };
    static const char *const want[] = {
        "qemu-system-x86_64",
        "-name",
        "guest=zos,,1",
        "-accel",
        "tcg",
        "-m",
        "2048",
        "-boot",
        "order=dc",
        "-cdrom",
        "/home/u/.zos/zos.iso",
        "-drive",
        "file=/home/u/my,,disks/zos.qcow2,format=qcow2,if=virtio",
        "-netdev",
        "user,id=n0,hostfwd=tcp:127.0.0.1:4444-:6379",
        "-device",
        "virtio-net-pci,netdev=n0",
        "-display",
        "none",
        "-serial",
        "file:/home/u/.zos/qemu/zos/serial.log",
        "-monitor",
        "none",
        "-pidfile",
        "/home/u/.zos/qemu/zos/qemu.pid",
        "-daemonize",
    };
    char **argv = zos_qemu_argv(&q, err, sizeof err);
    assert_non_null(argv);
    size_t n = 0;
    for (; argv[n] != NULL; n++) {
        assert_true(n < ZOS_ARRAY_LEN(want));
        assert_string_equal(argv[n], want[n]);
    }
    assert_int_equal(n, ZOS_ARRAY_LEN(want));
    zos_proc_argv_free(argv);

    /* A raw disk, e1000, no disk at all. */
    q.disk = "/d/zos.img";
    q.nic = "e1000";
    argv = zos_qemu_argv(&q, err, sizeof err);
    assert_string_equal(argv[12], "file=/d/zos.img,format=raw,if=virtio");
    assert_string_equal(argv[16], "e1000,netdev=n0");
    zos_proc_argv_free(argv);
    q.disk = NULL;
    argv = zos_qemu_argv(&q, err, sizeof err);
    assert_string_equal(argv[11], "-netdev");
    zos_proc_argv_free(argv);

    q.port = 70000;
    assert_null(zos_qemu_argv(&q, err, sizeof err));
    assert_string_equal(err, "qemu VM 'zos,1': port must be 1..65535");
    q.port = 4444;
    q.nic = "e1000,romfile=/etc/shadow";
    assert_null(zos_qemu_argv(&q, err, sizeof err));
    assert_string_equal(err, "qemu VM 'zos,1': bad NIC model");

    char dir[256];
    assert_int_equal(zos_qemu_dir("/home/u", "zos", dir, sizeof dir), ZOS_OK);
    assert_string_equal(dir, "/home/u/.zos/qemu/zos");
    assert_int_equal(zos_qemu_dir("/home/u", "../x", dir, sizeof dir), ZOS_ERR);
}

static void test_qemu_disk(void **state)
{
    const char *tmp = *state;
    char path[PATH_MAX + 32], err[256];
    struct stat st;
    snprintf(path, sizeof path, "%s/disk.img", tmp);
    assert_int_equal(zos_qemu_disk(path, 64, err, sizeof err), ZOS_OK);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 64 << 20);
    assert_int_equal(zos_qemu_disk(path, 128, err, sizeof err), ZOS_OK); /* kept */
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 64 << 20);

    char img[PATH_MAX];
    snprintf(path, sizeof path, "%s/disk.qcow2", tmp);
    if (!zos_proc_which("qemu-img", img, sizeof img)) {
        assert_int_equal(zos_qemu_disk(path, 64, err, sizeof err), ZOS_VBOX_NOTFOUND);
        print_message("qemu-img not installed: qcow2 creation not exercised\n");
        return;
    }
    assert_int_equal(zos_qemu_disk(path, 64, err, sizeof err), ZOS_OK);
    char magic[4] = "";
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fread(magic, 1, 4, f), 4);
    fclose(f);
    assert_memory_equal(magic, "QFI\xfb", 4);
}

/* A minimal ISO 9660 image: 16 empty sectors, a primary volume descriptor,
 * the set terminator.  Nothing boots from it; qemu only has to open it. */
static void make_tiny_iso(const char *path)
{
    static char img[19 * 2048];
    memset(img, 0, sizeof img);
    memcpy(img + 16 * 2048,
           "\x01"
           "CD001\x01",
           7);
    memcpy(img + 16 * 2048 + 40, "ZOS_TEST", 8);
    memcpy(img + 17 * 2048,
           "\xff"
           "CD001\x01",
           7);
    assert_int_equal(tu_write_file(path, img, sizeof img, 0644), 0);
}

static void test_qemu_start(void **state)
{
    const char *tmp = *state;
    char err[512], bin[PATH_MAX], iso[PATH_MAX + 16], dir[PATH_MAX];
    struct zos_qemu q = {.name = "zos", .memory_mb = 64, .iso = iso, .state_dir = dir};
    snprintf(iso, sizeof iso, "%s/tiny.iso", tmp);
    assert_int_equal(zos_qemu_dir(tmp, "zos", dir, sizeof dir), ZOS_OK);

    q.binary = "qemu-system-none-such";
    q.port = 4444;
    assert_int_equal(zos_qemu_start(&q, err, sizeof err), ZOS_VBOX_NOTFOUND);
    assert_string_equal(err, "qemu is not installed: qemu-system-none-such not found on PATH");
    q.binary = NULL;

    if (!zos_proc_which("qemu-system-x86_64", bin, sizeof bin)) {
        print_message(
            "test_qemu_start: skipped: qemu-system-x86_64 is not installed (apt-get install "
            "qemu-system-x86): the qemu start test did not run\n");
        skip();
    }
    make_tiny_iso(iso);
    q.port = tu_free_port();
    assert_true(q.port > 0);
    assert_false(tu_port_open(q.port));
    int rc = zos_qemu_start(&q, err, sizeof err);
    if (rc != ZOS_OK)
        print_message("qemu start: %s\n", err);
    assert_int_equal(rc, ZOS_OK);
    pid_t pid = zos_qemu_pid(dir);
    assert_true(pid > 1);

    bool accepted = false;
    for (int i = 0; i < 100 && !accepted; i++) { /* daemonize returns once it listens */
        accepted = tu_port_open(q.port);
        if (!accepted)
            tu_nap_ms(100);
    }
    assert_int_equal(zos_qemu_start(&q, err, sizeof err), ZOS_ERR);
    assert_non_null(strstr(err, "is already running"));
    assert_int_equal(zos_qemu_stop(dir, err, sizeof err), ZOS_OK);
    assert_true(accepted);
    assert_int_equal(zos_qemu_pid(dir), 0);
    assert_false(tu_port_open(q.port));
    assert_int_equal(zos_qemu_stop(dir, err, sizeof err), ZOS_OK); /* not running: fine */
}

/* The pidfile names a live qemu only: a missing file, garbage, a dead pid
 * and a live process that is not a qemu (a recycled pid) all read as 0. */
static void test_qemu_pidfile(void **state)
{
    const char *tmp = *state;
    char pidfile[PATH_MAX + 16], text[32], err[256];
    tu_sfmt(pidfile, sizeof pidfile, "%s/qemu.pid", tmp);
    assert_int_equal(zos_qemu_pid(tmp), 0);
    assert_int_equal(tu_write_file(pidfile, "garbage\n", 8, 0644), 0);
    assert_int_equal(zos_qemu_pid(tmp), 0);
    tu_sfmt(text, sizeof text, "%d\n", (int)getpid()); /* alive, but not a qemu */
    assert_int_equal(tu_write_file(pidfile, text, strlen(text), 0644), 0);
    assert_int_equal(zos_qemu_pid(tmp), 0);

    /* A stale pidfile is removed by stop, which finds nothing to kill. */
    assert_int_equal(zos_qemu_stop(tmp, err, sizeof err), ZOS_OK);
    assert_false(tu_exists(pidfile));
    assert_true(kill(getpid(), 0) == 0);
}

static void test_qemu_refused(void **state)
{
    const char *tmp = *state;
    char err[256], dir[PATH_MAX];
    struct zos_qemu q = {.name = "zos",
                         .memory_mb = 64,
                         .port = 4444,
                         .iso = "/nonexistent.iso",
                         .state_dir = tmp,
                         .binary = "/bin/true"};
    /* An unreadable ISO is refused before anything runs. */
    assert_int_equal(zos_qemu_start(&q, err, sizeof err), ZOS_ERR);
    assert_string_equal(err, "ISO /nonexistent.iso: No such file or directory");
    q.name = "-rf";
    assert_int_equal(zos_qemu_start(&q, err, sizeof err), ZOS_ERR);
    assert_string_equal(err, "invalid VM name '-rf': it starts with '-'");
    q.name = "zos";
    q.memory_mb = 0;
    assert_null(zos_qemu_argv(&q, err, sizeof err));
    assert_string_equal(err, "qemu VM 'zos': memory must be > 0 MB");
    assert_int_equal(zos_qemu_dir(NULL, "zos", dir, sizeof dir), ZOS_ERR);
    assert_int_equal(zos_qemu_dir("/home/u", "zos", dir, 10), ZOS_ERR); /* does not fit */
    assert_int_equal(zos_qemu_disk("-o", 64, err, sizeof err), ZOS_ERR);
    assert_string_equal(err, "bad disk path or size");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qemu_argv),
        cmocka_unit_test_setup_teardown(test_qemu_disk, tu_tmpdir_setup, tu_tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_qemu_pidfile, tu_tmpdir_setup, tu_tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_qemu_refused, tu_tmpdir_setup, tu_tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_qemu_start, tu_tmpdir_setup, tu_tmpdir_teardown),
    };
    return cmocka_run_group_tests_name("qemu", tests, NULL, NULL);
}
