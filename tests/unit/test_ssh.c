/* test_ssh.c -- the ssh module against a real /usr/sbin/sshd on a loopback port.
 *
 * The group setup makes a temporary directory (HOME points into it, so the
 * real ~/.ssh is never read or written), client keys and host keys made with
 * ssh-keygen, and starts sshd on a free 127.0.0.1 port; the teardown stops it
 * by PID.  Skipped with a message when /usr/sbin/sshd is not installed.
 */
#include "zos/ssh.h"
#include "zos/zos.h"

#include "testutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pty.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#define SSHD     "/usr/sbin/sshd"
#define BIG_SIZE (20u * 1024 * 1024)

static struct {
    char dir[256];  /* everything of the test lives here */
    char home[300]; /* $HOME */
    char log[300];  /* sshd's log */
    char conf[300];
    char key_ed[300], key_rsa[300], key_wrong[300];
    char host1[300], host2[300]; /* host keys */
    char user[64];
    int port;
    pid_t sshd;
    int npins;
} fx;

/* ---- helpers ------------------------------------------------------------ */

static int keygen(char *path, size_t len, const char *name, const char *type)
{
    const char *rsa[] = {"ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N",
                         "",           "-C", name, "-f",  path, NULL};
    const char *other[] = {"ssh-keygen", "-q", "-t", type, "-N", "", "-C", name, "-f", path, NULL};

    tu_sfmt(path, len, "%s/%s", fx.dir, name);
    return tu_run(strcmp(type, "rsa") == 0 ? rsa : other);
}

static void dump_log(void)
{
    char *log = tu_read_file(fx.log, NULL);
    size_t len = log ? strlen(log) : 0;

    fprintf(stderr, "---- sshd log (tail) ----\n%s\n",
            log ? log + (len > 3000 ? len - 3000 : 0) : "");
    free(log);
}

/* sshd in the foreground (-D), logging to fx.log (-e), with HOSTKEY; waits
 * until the port accepts connections. */
static int sshd_start(const char *hostkey)
{
    char port[16], hk[400];
    const char *argv[] = {SSHD,    "-D", "-e", "-p", port,           "-f",
                          fx.conf, "-o", hk,   "-o", "PidFile=none", NULL};
    pid_t pid;

    tu_sfmt(port, sizeof port, "%d", fx.port);
    tu_sfmt(hk, sizeof hk, "HostKey=%s", hostkey);
    pid = tu_spawn(argv, NULL, fx.log); /* the log is appended to across restarts */
    if (pid < 0)
        return -1;
    fx.sshd = pid;
    for (int64_t end = tu_now_ms() + 10000; tu_now_ms() < end; tu_nap_ms(20)) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            fx.sshd = 0;
            dump_log();
            return -1;
        }
        if (tu_port_open(fx.port))
            return 0;
    }
    dump_log();
    tu_stop(&fx.sshd);
    return -1;
}

static int sshd_config(void)
{
    char text[2048], ak[300];
    int n;

    tu_sfmt(ak, sizeof ak, "%s/authorized_keys", fx.dir);
    n = snprintf(text, sizeof text,
                 "ListenAddress 127.0.0.1\n"
                 "UsePAM no\n"
                 "StrictModes no\n"
                 "AuthorizedKeysFile %s\n"
                 "PubkeyAuthentication yes\n"
                 "PasswordAuthentication no\n"
                 "KbdInteractiveAuthentication no\n"
                 "PermitRootLogin prohibit-password\n"
                 "PrintMotd no\n"
                 "PrintLastLog no\n"
                 "Subsystem sftp internal-sftp\n"
                 "SetEnv HISTFILE=/dev/null\n"
                 "LogLevel VERBOSE\n",
                 ak);
    return tu_write_file(fx.conf, text, (size_t)n, 0600);
}

static int authorize(void)
{
    char path[400], *a, *b, *all = NULL;
    int rc;

    tu_sfmt(path, sizeof path, "%s.pub", fx.key_ed);
    a = tu_read_file(path, NULL);
    tu_sfmt(path, sizeof path, "%s.pub", fx.key_rsa);
    b = tu_read_file(path, NULL);
    tu_sfmt(path, sizeof path, "%s/authorized_keys", fx.dir);
    rc = a && b && asprintf(&all, "%s%s", a, b) > 0 ? tu_write_file(path, all, strlen(all), 0600)
                                                    : -1;
    free(a);
    free(b);
    free(all);
    return rc;
}

static int group_setup(void **state)
{
    struct passwd *pw = getpwuid(getuid());

    if (tu_mkdtemp(fx.dir, sizeof fx.dir, "ssh") == NULL || pw == NULL)
        return -1;
    tu_sfmt(fx.user, sizeof fx.user, "%s", pw->pw_name);
    tu_sfmt(fx.home, sizeof fx.home, "%s/home", fx.dir);
    tu_sfmt(fx.log, sizeof fx.log, "%s/sshd.log", fx.dir);
    tu_sfmt(fx.conf, sizeof fx.conf, "%s/sshd_config", fx.dir);
    if (mkdir(fx.home, 0700) < 0 || setenv("HOME", fx.home, 1) < 0)
        return -1;
    unsetenv("SSH_AUTH_SOCK");
    if (mkdir("/run/sshd", 0755) < 0 && errno != EEXIST)
        fprintf(stderr, "mkdir /run/sshd: %s (sshd may refuse to start)\n", strerror(errno));
    if (keygen(fx.key_ed, sizeof fx.key_ed, "id_ed25519", "ed25519") != 0 ||
        keygen(fx.key_rsa, sizeof fx.key_rsa, "id_rsa", "rsa") != 0 ||
        keygen(fx.key_wrong, sizeof fx.key_wrong, "wrong_ed25519", "ed25519") != 0 ||
        keygen(fx.host1, sizeof fx.host1, "host1", "ed25519") != 0 ||
        keygen(fx.host2, sizeof fx.host2, "host2", "ed25519") != 0) {
        fprintf(stderr, "ssh-keygen failed\n");
        return -1;
    }
    fx.port = tu_free_port();
    if (authorize() < 0 || sshd_config() < 0 || fx.port < 0 || sshd_start(fx.host1) < 0)
        return -1;
    return zos_ssh_init() == ZOS_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
    tu_stop(&fx.sshd);
    zos_ssh_cleanup();
    if (fx.dir[0] != '\0')
        tu_rm_tree(fx.dir);
    return 0;
}

/* A fresh pin file (its directory does not exist yet). */
static void new_pins(char *buf, size_t len)
{
    tu_sfmt(buf, len, "%s/conf%d/zos/known_hosts", fx.dir, ++fx.npins);
}

static struct zos_ssh *connect_with(const char *key, const char *pins, char *err, size_t errlen)
{
    struct zos_ssh_opts o = {.host = "127.0.0.1",
                             .port = fx.port,
                             .user = fx.user,
                             .key_path = key,
                             .known_hosts = pins,
                             .timeout_ms = 10000};

    err[0] = '\0';
    return zos_ssh_connect(&o, err, errlen);
}

static struct zos_ssh *must_connect(const char *key)
{
    char pins[400], err[512];
    struct zos_ssh *s;

    new_pins(pins, sizeof pins);
    s = connect_with(key, pins, err, sizeof err);
    if (s == NULL) {
        dump_log();
        fail_msg("connect: %s", err);
    }
    return s;
}

/* ---- authentication and host keys --------------------------------------- */

static void check_pin_file(const char *pins, const struct zos_ssh *s)
{
    char dir[400], want[64], cmd[600], line[512] = "", *text = tu_read_file(pins, NULL);
    struct stat st;
    FILE *p;

    assert_non_null(text);
    tu_sfmt(want, sizeof want, "127.0.0.1:%d ", fx.port);
    assert_int_equal(strncmp(text, want, strlen(want)), 0);
    assert_int_equal(strlen(text), strlen(want) + 64 + 1); /* one line: key, hex, newline */
    assert_int_equal(strspn(text + strlen(want), "0123456789abcdef"), 64);
    free(text);
    assert_int_equal(stat(pins, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    tu_sfmt(dir, sizeof dir, "%.*s", (int)(strrchr(pins, '/') - pins), pins);
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    /* The fingerprint is the one OpenSSH shows for the host key. */
    tu_sfmt(cmd, sizeof cmd, "ssh-keygen -l -E sha256 -f %s.pub", fx.host1);
    p = popen(cmd, "r");
    assert_non_null(p);
    assert_non_null(fgets(line, sizeof line, p));
    pclose(p);
    tu_assert_contains(line, zos_ssh_fingerprint(s));
    assert_int_equal(strncmp(zos_ssh_fingerprint(s), "SHA256:", 7), 0);
}

static void test_auth_ed25519(void **state)
{
    char pins[400], err[512], ssh_dir[400];
    struct zos_ssh_result res;
    struct zos_ssh *s;

    new_pins(pins, sizeof pins);
    s = connect_with(fx.key_ed, pins, err, sizeof err);
    if (s == NULL)
        fail_msg("connect: %s", err);
    assert_int_equal(zos_ssh_exec(s, "echo ok", NULL, &res, err, sizeof err), ZOS_OK);
    assert_int_equal(res.status, 0);
    assert_string_equal(res.out, "ok\n");
    zos_ssh_result_clear(&res);
    check_pin_file(pins, s);
    zos_ssh_free(s);
    /* Nothing went to ~/.ssh (no known_hosts, no config read). */
    tu_sfmt(ssh_dir, sizeof ssh_dir, "%s/.ssh", fx.home);
    assert_int_not_equal(access(ssh_dir, F_OK), 0);
    zos_ssh_free(NULL);
}

static void test_auth_rsa(void **state)
{
    struct zos_ssh *s = must_connect(fx.key_rsa);
    struct zos_ssh_result res;
    char err[512], want[80];

    assert_int_equal(zos_ssh_exec(s, "id -un", NULL, &res, err, sizeof err), ZOS_OK);
    tu_sfmt(want, sizeof want, "%s\n", fx.user);
    assert_string_equal(res.out, want);
    zos_ssh_result_clear(&res);
    zos_ssh_free(s);
}

static void test_wrong_key_refused(void **state)
{
    char pins[400], err[512];

    new_pins(pins, sizeof pins);
    assert_null(connect_with(fx.key_wrong, pins, err, sizeof err));
    tu_assert_contains(err, "permission denied (publickey)");
    tu_assert_contains(err, fx.key_wrong);
}

static void test_bad_key_files(void **state)
{
    char pins[400], err[512], path[400];

    new_pins(pins, sizeof pins);
    tu_sfmt(path, sizeof path, "%s/no-such-key", fx.dir);
    assert_null(connect_with(path, pins, err, sizeof err));
    tu_assert_contains(err, path);
    tu_assert_contains(err, "No such file or directory");

    tu_sfmt(path, sizeof path, "%s/not-a-key", fx.dir);
    assert_int_equal(tu_write_file(path, "hello\n", 6, 0600), 0);
    assert_null(connect_with(path, pins, err, sizeof err));
    tu_assert_contains(err, path);
    tu_assert_contains(err, "cannot load it");
}

static void copy_key(const char *from, const char *name)
{
    char dir[400], to[400], *text = tu_read_file(from, NULL);

    assert_non_null(text);
    tu_sfmt(dir, sizeof dir, "%s/.ssh", fx.home);
    mkdir(dir, 0700);
    tu_sfmt(to, sizeof to, "%s/%s", dir, name);
    assert_int_equal(tu_write_file(to, text, strlen(text), 0600), 0);
    free(text);
}

static void clear_home_ssh(void)
{
    char dir[400];

    tu_sfmt(dir, sizeof dir, "%s/.ssh", fx.home);
    assert_int_equal(tu_rm_tree(dir), 0);
}

/* No key given: ~/.ssh/id_ed25519, id_ecdsa, id_rsa in turn. */
static void test_default_keys(void **state)
{
    char pins[400], err[512];
    struct zos_ssh *s;

    new_pins(pins, sizeof pins);
    clear_home_ssh();
    assert_null(connect_with(NULL, pins, err, sizeof err));
    tu_assert_contains(err, "no ssh key");

    copy_key(fx.key_wrong, "id_ed25519");
    assert_null(connect_with(NULL, pins, err, sizeof err));
    tu_assert_contains(err, "permission denied (publickey)");

    copy_key(fx.key_rsa, "id_rsa"); /* refused ed25519 first, then this one */
    s = connect_with(NULL, pins, err, sizeof err);
    if (s == NULL)
        fail_msg("connect: %s", err);
    zos_ssh_free(s);
    clear_home_ssh();
}

/* No key given and $SSH_AUTH_SOCK set: the agent's keys. */
static void test_agent(void **state)
{
    char sock[400], pins[400], err[512];
    const char *agent_argv[] = {"ssh-agent", "-D", "-a", sock, NULL};
    const char *add[] = {"ssh-add", fx.key_ed, NULL};
    struct zos_ssh *s;
    pid_t agent;

    if (access("/usr/bin/ssh-agent", X_OK) != 0 || access("/usr/bin/ssh-add", X_OK) != 0) {
        fprintf(stderr, "test_agent: skipped: ssh-agent or ssh-add not installed\n");
        skip();
    }
    tu_sfmt(sock, sizeof sock, "%s/agent.sock", fx.dir);
    agent = tu_spawn(agent_argv, NULL, NULL);
    assert_true(agent > 0);
    for (int i = 0; i < 250 && access(sock, F_OK) != 0; i++)
        tu_nap_ms(20);
    setenv("SSH_AUTH_SOCK", sock, 1);
    clear_home_ssh();
    new_pins(pins, sizeof pins);
    s = tu_run(add) == 0 ? connect_with(NULL, pins, err, sizeof err) : NULL;
    unsetenv("SSH_AUTH_SOCK");
    tu_stop(&agent);
    if (s == NULL)
        fail_msg("agent auth failed: %s", err);
    zos_ssh_free(s);
}

static int restart_sshd_host1(void **state)
{
    tu_stop(&fx.sshd);
    return sshd_start(fx.host1);
}

static void test_host_key_pinned_then_changed(void **state)
{
    char pins[400], pins2[400], err[512], first_fp[80], other[200], *before, *after;
    struct zos_ssh *s;

    new_pins(pins, sizeof pins);
    assert_int_equal(connect_with(fx.key_ed, "", err, sizeof err) == NULL, 1);
    tu_assert_contains(err, "known_hosts");

    /* Trust on first use, next to another container's pin and a comment. */
    s = connect_with(fx.key_ed, pins, err, sizeof err); /* creates the directories */
    if (s == NULL)
        fail_msg("connect: %s", err);
    tu_sfmt(first_fp, sizeof first_fp, "%s", zos_ssh_fingerprint(s));
    zos_ssh_free(s);
    before = tu_read_file(pins, NULL);
    assert_non_null(before);
    tu_sfmt(other, sizeof other, "# pins\n127.0.0.1:1 %064d\n%s", 0, before);
    assert_int_equal(tu_write_file(pins, other, strlen(other), 0600), 0);
    free(before);

    s = connect_with(fx.key_ed, pins, err, sizeof err); /* the pin matches */
    if (s == NULL)
        fail_msg("second connect: %s", err);
    zos_ssh_free(s);
    before = tu_read_file(pins, NULL);
    assert_string_equal(before, other); /* nothing appended */

    /* The container was re-created: same port, new host key. */
    tu_stop(&fx.sshd);
    assert_int_equal(sshd_start(fx.host2), 0);
    assert_null(connect_with(fx.key_ed, pins, err, sizeof err));
    char want[200];
    tu_sfmt(want, sizeof want, "host key for 127.0.0.1:%d changed (was %s, now SHA256:", fx.port,
            first_fp);
    tu_assert_contains(err, want);
    tu_assert_contains(err, "if the container was re-created, remove its line from ");
    tu_assert_contains(err, pins);
    after = tu_read_file(pins, NULL);
    assert_string_equal(after, before); /* the old pin stays until the user removes it */
    free(before);
    free(after);

    /* Another pin file knows nothing of the old key. */
    new_pins(pins2, sizeof pins2);
    s = connect_with(fx.key_ed, pins2, err, sizeof err);
    if (s == NULL)
        fail_msg("connect with a fresh pin file: %s", err);
    assert_string_not_equal(zos_ssh_fingerprint(s), first_fp);
    zos_ssh_free(s);

    /* A damaged pin file is reported with its line. */
    assert_int_equal(tu_write_file(pins2, "# ok\nnonsense\n", 14, 0600), 0);
    assert_null(connect_with(fx.key_ed, pins2, err, sizeof err));
    tu_sfmt(want, sizeof want, "%s:2: malformed line", pins2);
    tu_assert_contains(err, want);
}

/* The pins of the CLI's old <config dir>/known_hosts move into zos-known_hosts
 * once; anything that is not such a file is left alone. */
static void test_pins_migrate(void **state)
{
    char dir[400], old[450], to[450], moved[470], err[512], want[1024], *text;
    const char *a = "1111111111111111111111111111111111111111111111111111111111111111";
    const char *b = "2222222222222222222222222222222222222222222222222222222222222222";
    const char *c = "3333333333333333333333333333333333333333333333333333333333333333";

    tu_sfmt(dir, sizeof dir, "%s/migrate", fx.dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    tu_sfmt(old, sizeof old, "%s/known_hosts", dir);
    tu_sfmt(to, sizeof to, "%s/zos-known_hosts", dir);
    tu_sfmt(moved, sizeof moved, "%s.migrated", old);

    /* No old file: nothing happens, nothing is made. */
    assert_int_equal(zos_ssh_pins_migrate(old, to, err, sizeof err), 0);
    assert_false(tu_exists(to));
    /* Nor with an old file without pins, or another program's. */
    assert_int_equal(tu_write_file(old, "# nothing\n", 10, 0600), 0);
    assert_int_equal(zos_ssh_pins_migrate(old, to, err, sizeof err), 0);
    assert_int_equal(tu_write_file(old, "h ssh-ed25519 AAAA\n", 19, 0600), 0);
    assert_int_equal(zos_ssh_pins_migrate(old, to, err, sizeof err), -1);
    assert_false(tu_exists(to));

    /* TO's own pin for a host wins; the others are appended once, in order. */
    tu_sfmt(want, sizeof want,
            "# zos\n10.0.0.1:22 %s\n\n10.0.0.2:2222\t%s \r\n10.0.0.1:22 %s\n"
            "10.0.0.3:22 %s",
            a, b, c, c);
    assert_int_equal(tu_write_file(old, want, strlen(want), 0600), 0);
    tu_sfmt(want, sizeof want, "10.0.0.1:22 %s", c); /* no final newline */
    assert_int_equal(tu_write_file(to, want, strlen(want), 0600), 0);
    assert_int_equal(zos_ssh_pins_migrate(old, to, err, sizeof err), 2);
    text = tu_read_file(to, NULL);
    tu_sfmt(want, sizeof want, "10.0.0.1:22 %s\n10.0.0.2:2222 %s\n10.0.0.3:22 %s\n", c, b, c);
    assert_string_equal(text, want);
    free(text);
    assert_false(tu_exists(old));
    assert_true(tu_exists(moved));
    /* Once: the old file is gone, a second run changes nothing. */
    assert_int_equal(zos_ssh_pins_migrate(old, to, err, sizeof err), 0);
    text = tu_read_file(to, NULL);
    assert_string_equal(text, want);
    free(text);

    /* Another program's file (OpenSSH's format) stays as it is. */
    tu_sfmt(want, sizeof want, "10.0.0.9 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA\n");
    assert_int_equal(tu_write_file(old, want, strlen(want), 0600), 0);
    assert_int_equal(zos_ssh_pins_migrate(old, to, err, sizeof err), -1);
    tu_assert_contains(err, "not a zos pin file");
    text = tu_read_file(old, NULL);
    assert_string_equal(text, want);
    free(text);
    /* So does a file without any pin. */
    assert_int_equal(tu_write_file(old, "# nothing\n", 10, 0600), 0);
    assert_int_equal(zos_ssh_pins_migrate(old, to, err, sizeof err), 0);
    assert_true(tu_exists(old));
    assert_int_equal(unlink(old), 0);

    /* A symlink is not followed (it could point into ~/.ssh). */
    tu_sfmt(want, sizeof want, "10.0.0.7:22 %s\n", a);
    assert_int_equal(tu_write_file(moved, want, strlen(want), 0600), 0);
    assert_int_equal(symlink(moved, old), 0);
    assert_int_equal(zos_ssh_pins_migrate(old, to, err, sizeof err), 0);
    text = tu_read_file(to, NULL);
    assert_null(strstr(text, "10.0.0.7"));
    free(text);
    assert_int_equal(unlink(old), 0);

    /* Never anything in ~/.ssh, even a file of pins. */
    char sshdir[400], ssh_old[450];
    tu_sfmt(sshdir, sizeof sshdir, "%s/.ssh", fx.home);
    assert_true(mkdir(sshdir, 0700) == 0 || errno == EEXIST);
    tu_sfmt(ssh_old, sizeof ssh_old, "%s/known_hosts", sshdir);
    assert_false(tu_exists(ssh_old));
    assert_int_equal(tu_write_file(ssh_old, want, strlen(want), 0600), 0);
    assert_int_equal(zos_ssh_pins_migrate(ssh_old, to, err, sizeof err), 0);
    assert_true(tu_exists(ssh_old));
    text = tu_read_file(to, NULL);
    assert_null(strstr(text, "10.0.0.7"));
    free(text);
    assert_int_equal(unlink(ssh_old), 0);
}

/* ---- exec --------------------------------------------------------------- */

struct counts {
    size_t out, err;
};

static int count_fn(void *arg, int stream, const char *buf, size_t len)
{
    struct counts *c = arg;

    if (stream == ZOS_SSH_STDOUT)
        c->out += len;
    else
        c->err += len;
    return 0;
}

static int refuse_fn(void *arg, int stream, const char *buf, size_t len)
{
    return -1;
}

static void exec_ok(struct zos_ssh *s, const char *cmd, const struct zos_ssh_exec_io *io,
                    struct zos_ssh_result *res)
{
    char err[512];

    if (zos_ssh_exec(s, cmd, io, res, err, sizeof err) != ZOS_OK)
        fail_msg("exec %s: %s", cmd, err);
}

static void test_exec_status_and_streams(void **state)
{
    struct zos_ssh *s = must_connect(fx.key_ed);
    struct zos_ssh_result res;

    exec_ok(s, "echo out; echo err >&2; exit 3", NULL, &res);
    assert_int_equal(res.status, 3);
    assert_int_equal(res.signal, 0);
    assert_string_equal(res.out, "out\n");
    assert_string_equal(res.err, "err\n");
    assert_int_equal(res.out_len, 4);
    zos_ssh_result_clear(&res);

    exec_ok(s, "true", NULL, &res);
    assert_int_equal(res.status, 0);
    assert_string_equal(res.out, "");
    assert_string_equal(res.err, "");
    zos_ssh_result_clear(&res);

    exec_ok(s, "kill -TERM $$", NULL, &res);
    assert_int_equal(res.signal, SIGTERM);
    assert_int_equal(res.status, 128 + SIGTERM);
    assert_string_equal(res.signame, "TERM");
    zos_ssh_result_clear(&res);

    /* More than the channel windows hold, on both streams at once. */
    exec_ok(s, "head -c 3000000 /dev/zero; head -c 2000000 /dev/zero >&2", NULL, &res);
    assert_int_equal(res.status, 0);
    assert_int_equal(res.out_len, 3000000);
    assert_int_equal(res.err_len, 2000000);
    zos_ssh_result_clear(&res);
    zos_ssh_free(s);
}

static void test_exec_sinks(void **state)
{
    struct zos_ssh *s = must_connect(fx.key_ed);
    struct zos_ssh_result res;
    struct counts c = {0, 0};
    char in_path[400], buf[64] = "", err[512];
    FILE *out = tmpfile(), *errf = tmpfile(), *in;
    struct zos_ssh_exec_io io = {.out = out, .err = errf};

    /* FILE* sinks. */
    exec_ok(s, "printf abc; printf de >&2; exit 7", &io, &res);
    assert_int_equal(res.status, 7);
    assert_string_equal(res.out, "");
    rewind(out);
    assert_non_null(fgets(buf, sizeof buf, out));
    assert_string_equal(buf, "abc");
    rewind(errf);
    assert_non_null(fgets(buf, sizeof buf, errf));
    assert_string_equal(buf, "de");
    zos_ssh_result_clear(&res);
    fclose(out);
    fclose(errf);

    /* A callback gets both streams. */
    io = (struct zos_ssh_exec_io){.fn = count_fn, .arg = &c};
    exec_ok(s, "head -c 100000 /dev/zero; head -c 5 /dev/zero >&2", &io, &res);
    assert_int_equal(c.out, 100000);
    assert_int_equal(c.err, 5);
    zos_ssh_result_clear(&res);

    /* Input forwarded until EOF. */
    tu_sfmt(in_path, sizeof in_path, "%s/input", fx.dir);
    assert_int_equal(tu_write_file(in_path, "hello\nworld\n", 12, 0600), 0);
    in = fopen(in_path, "r");
    io = (struct zos_ssh_exec_io){.in = in};
    exec_ok(s, "wc -l; cat", &io, &res);
    assert_string_equal(res.out, "2\n");
    zos_ssh_result_clear(&res);
    fclose(in);

    /* Limits: refused output, too much output, a timeout. */
    io = (struct zos_ssh_exec_io){.fn = refuse_fn};
    assert_int_equal(zos_ssh_exec(s, "echo x", &io, &res, err, sizeof err), ZOS_ERR);
    tu_assert_contains(err, "output refused");
    assert_null(res.out);
    io = (struct zos_ssh_exec_io){.max_output = 10};
    assert_int_equal(zos_ssh_exec(s, "head -c 100 /dev/zero", &io, &res, err, sizeof err), ZOS_ERR);
    tu_assert_contains(err, "output over 10 bytes");
    io = (struct zos_ssh_exec_io){.timeout_ms = 300};
    assert_int_equal(zos_ssh_exec(s, "sleep 5", &io, &res, err, sizeof err), ZOS_ERR);
    tu_assert_contains(err, "timed out"); /* the timeout's error, not the command's end */
    zos_ssh_result_clear(&res);

    /* The session is still good after all that. */
    exec_ok(s, "echo again", NULL, &res);
    assert_string_equal(res.out, "again\n");
    zos_ssh_result_clear(&res);
    zos_ssh_free(s);
}

/* The server side dies under a running command: an error, not a hang. */
static void test_exec_connection_lost(void **state)
{
    struct zos_ssh *s = must_connect(fx.key_ed);
    struct zos_ssh_result res;
    char err[512], want[64];
    int64_t t0 = tu_now_ms();

    /* $PPID is the sshd process serving this connection.  Waiting for the sleep would
     * take 60 s: a return within 30 s (a no-hang guard only) saw the loss. */
    assert_int_equal(zos_ssh_exec(s, "kill -9 $PPID; sleep 60", NULL, &res, err, sizeof err),
                     ZOS_ERR);
    assert_true(tu_now_ms() - t0 < 30000);
    tu_sfmt(want, sizeof want, "ssh 127.0.0.1:%d: ", fx.port);
    tu_assert_contains(err, want);
    assert_null(res.out);
    assert_int_equal(zos_ssh_exec(s, "true", NULL, &res, err, sizeof err), ZOS_ERR);
    zos_ssh_free(s);
}

static void test_connection_refused(void **state)
{
    struct zos_ssh_opts o = {.host = "127.0.0.1", .key_path = fx.key_ed, .timeout_ms = 3000};
    char pins[400], err[512], want[64];

    new_pins(pins, sizeof pins);
    o.known_hosts = pins;
    o.port = tu_free_port(); /* nobody listens there */
    assert_null(zos_ssh_connect(&o, err, sizeof err));
    tu_sfmt(want, sizeof want, "ssh 127.0.0.1:%d: ", o.port);
    tu_assert_contains(err, want);
    tu_assert_contains(err, "refused");
    assert_int_not_equal(access(pins, F_OK), 0); /* nothing pinned */
}

/* ---- SFTP --------------------------------------------------------------- */

static void sha256_file(const char *path, char hex[65])
{
    unsigned char md[32], buf[65536];
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int fd = open(path, O_RDONLY);
    ssize_t n;

    assert_true(fd >= 0);
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    while ((n = read(fd, buf, sizeof buf)) > 0)
        EVP_DigestUpdate(ctx, buf, (size_t)n);
    EVP_DigestFinal_ex(ctx, md, NULL);
    EVP_MD_CTX_free(ctx);
    close(fd);
    for (int i = 0; i < 32; i++)
        tu_sfmt(hex + 2 * i, 3, "%02x", md[i]);
}

/* One line per entry, sorted: "rel type mode size sha256", links followed
 * (as the copies follow them). */
static void tree_sig(FILE *out, const char *root, const char *rel)
{
    char path[1024], hex[65] = "-";
    struct dirent **names;
    struct stat st;
    int n;

    tu_sfmt(path, sizeof path, "%s%s%s", root, rel[0] ? "/" : "", rel);
    assert_int_equal(stat(path, &st), 0);
    if (S_ISREG(st.st_mode))
        sha256_file(path, hex);
    fprintf(out, "%s %c %04o %lld %s\n", rel[0] ? rel : ".", S_ISDIR(st.st_mode) ? 'd' : 'f',
            (unsigned)(st.st_mode & 07777), S_ISDIR(st.st_mode) ? 0LL : (long long)st.st_size, hex);
    if (!S_ISDIR(st.st_mode))
        return;
    n = scandir(path, &names, NULL, alphasort);
    assert_true(n >= 0);
    for (int i = 0; i < n; i++) {
        char sub[1024];
        if (strcmp(names[i]->d_name, ".") != 0 && strcmp(names[i]->d_name, "..") != 0) {
            tu_sfmt(sub, sizeof sub, "%s%s%s", rel, rel[0] ? "/" : "", names[i]->d_name);
            tree_sig(out, root, sub);
        }
        free(names[i]);
    }
    free(names);
}

static char *signature(const char *root)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    tree_sig(f, root, "");
    fclose(f);
    return buf;
}

static void make_dir(const char *root, const char *rel, mode_t mode)
{
    char path[600];

    tu_sfmt(path, sizeof path, "%s/%s", root, rel);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(chmod(path, mode), 0);
}

static void make_file(const char *root, const char *rel, const char *text, mode_t mode)
{
    char path[600];

    tu_sfmt(path, sizeof path, "%s/%s", root, rel);
    assert_int_equal(tu_write_file(path, text, strlen(text), mode), 0);
}

static void make_big(const char *path)
{
    unsigned char *buf = malloc(BIG_SIZE);

    assert_non_null(buf);
    tu_fill_random(buf, BIG_SIZE); /* incompressible, reproducible */
    assert_int_equal(tu_write_file(path, buf, BIG_SIZE, 0604), 0);
    free(buf);
}

/* src/tree: modes of all kinds, an empty and a read-only directory, a link,
 * a 20 MB file.  Returns the total of the file sizes. */
static uint64_t make_tree(const char *tree)
{
    char path[600];

    assert_int_equal(mkdir(tree, 0750), 0);
    assert_int_equal(chmod(tree, 0750), 0);
    make_file(tree, "a.txt", "hello\n", 0640);
    make_dir(tree, "bin", 0755);
    make_file(tree, "bin/run.sh", "#!/bin/sh\necho run\n", 0755);
    make_dir(tree, "empty", 0700);
    make_dir(tree, "deep", 0711);
    make_dir(tree, "deep/er", 0755);
    make_dir(tree, "deep/er/est", 0700);
    make_file(tree, "deep/er/est/f", "deep\n", 0600);
    make_dir(tree, "ro", 0755);
    make_file(tree, "ro/file", "read only\n", 0444);
    assert_int_equal(chmod(strcat(strcpy(path, tree), "/ro"), 0555), 0);
    tu_sfmt(path, sizeof path, "%s/link", tree);
    assert_int_equal(symlink("a.txt", path), 0);
    tu_sfmt(path, sizeof path, "%s/big.bin", tree);
    make_big(path);
    return 6 + 19 + 5 + 10 + 6 + BIG_SIZE;
}

struct progress_rec {
    int calls;
    uint64_t last_done, total;
    bool monotonic, total_changed;
    int cancel_after; /* 0: never */
};

static int record_fn(void *arg, const char *path, uint64_t done, uint64_t total)
{
    struct progress_rec *p = arg;

    if (p->calls > 0 && done < p->last_done)
        p->monotonic = false;
    if (p->calls > 0 && total != p->total)
        p->total_changed = true;
    p->calls++;
    p->last_done = done;
    p->total = total;
    return p->cancel_after && p->calls >= p->cancel_after ? -1 : 0;
}

static void check_progress(const struct progress_rec *p, uint64_t total)
{
    assert_true(p->calls > 100); /* 20 MB in 32-64 KiB chunks */
    assert_true(p->monotonic);
    assert_false(p->total_changed);
    assert_int_equal(p->total, total);
    assert_int_equal(p->last_done, total);
}

static void test_upload_download_tree(void **state)
{
    struct zos_ssh *s = must_connect(fx.key_ed);
    char src[400], tree[400], remote[400], rtree[400], back[400], back2[400], path[500];
    char err[512], *want, *got;
    struct progress_rec up = {.monotonic = true}, down = {.monotonic = true};
    uint64_t total;

    tu_sfmt(src, sizeof src, "%s/src", fx.dir);
    tu_sfmt(tree, sizeof tree, "%s/tree", src);
    tu_sfmt(remote, sizeof remote, "%s/remote", fx.dir);
    tu_sfmt(rtree, sizeof rtree, "%s/tree", remote);
    tu_sfmt(back, sizeof back, "%s/back", fx.dir);
    assert_int_equal(mkdir(src, 0700), 0);
    assert_int_equal(mkdir(remote, 0700), 0);
    total = make_tree(tree);
    want = signature(tree);

    /* REMOTE exists: the tree goes inside it, as cp -r does. */
    if (zos_ssh_upload(s, tree, remote, record_fn, &up, err, sizeof err) != ZOS_OK)
        fail_msg("upload: %s", err);
    got = signature(rtree);
    assert_string_equal(got, want);
    free(got);
    check_progress(&up, total);

    /* BACK does not exist: it becomes the copy. */
    if (zos_ssh_download(s, rtree, back, record_fn, &down, err, sizeof err) != ZOS_OK)
        fail_msg("download: %s", err);
    got = signature(back);
    assert_string_equal(got, want);
    free(got);
    check_progress(&down, total);

    /* A single file into an existing directory. */
    tu_sfmt(back2, sizeof back2, "%s/back2", fx.dir);
    assert_int_equal(mkdir(back2, 0700), 0);
    tu_sfmt(path, sizeof path, "%s/bin/run.sh", rtree);
    assert_int_equal(zos_ssh_download(s, path, back2, NULL, NULL, err, sizeof err), ZOS_OK);
    tu_sfmt(path, sizeof path, "%s/run.sh", back2);
    got = tu_read_file(path, NULL);
    assert_string_equal(got, "#!/bin/sh\necho run\n");
    free(got);
    free(want);
    zos_ssh_free(s);
}

static void test_transfer_errors(void **state)
{
    struct zos_ssh *s = must_connect(fx.key_ed);
    struct progress_rec cancel = {.monotonic = true, .cancel_after = 3};
    char path[400], local[400], err[512];

    tu_sfmt(path, sizeof path, "%s/remote/nope", fx.dir);
    tu_sfmt(local, sizeof local, "%s/got-nope", fx.dir);
    assert_int_equal(zos_ssh_download(s, path, local, NULL, NULL, err, sizeof err), ZOS_ERR);
    tu_assert_contains(err, path);
    tu_assert_contains(err, "no such file");

    assert_int_equal(zos_ssh_upload(s, local, path, NULL, NULL, err, sizeof err), ZOS_ERR);
    tu_assert_contains(err, local);
    tu_assert_contains(err, "No such file or directory");

    /* The remote parent directory does not exist. */
    tu_sfmt(local, sizeof local, "%s/input2", fx.dir);
    assert_int_equal(tu_write_file(local, "x", 1, 0600), 0);
    tu_sfmt(path, sizeof path, "%s/remote/no/such/dir/file", fx.dir);
    assert_int_equal(zos_ssh_upload(s, local, path, NULL, NULL, err, sizeof err), ZOS_ERR);
    tu_assert_contains(err, path);

    /* A directory where a file is. */
    tu_sfmt(path, sizeof path, "%s/src/tree", fx.dir);
    assert_int_equal(zos_ssh_upload(s, path, local, NULL, NULL, err, sizeof err), ZOS_ERR);
    tu_assert_contains(err, "exists and is not a directory");

    /* Cancelled from the progress callback. */
    tu_sfmt(path, sizeof path, "%s/src/tree/big.bin", fx.dir);
    tu_sfmt(local, sizeof local, "%s/remote/cancelled.bin", fx.dir);
    assert_int_equal(zos_ssh_upload(s, path, local, record_fn, &cancel, err, sizeof err), ZOS_ERR);
    tu_assert_contains(err, "cancelled");
    assert_int_equal(cancel.calls, 3);
    zos_ssh_free(s);
}

static void test_progress_bar(void **state)
{
    struct zos_ssh_bar bar = {.out = tmpfile()};
    char buf[4096] = "";
    int master, slave;
    size_t len;

    /* Not a terminal: nothing drawn. */
    zos_ssh_bar_progress(&bar, "/x/big.bin", 50, 100);
    zos_ssh_bar_progress(&bar, "/x/big.bin", 100, 100);
    assert_int_equal(ftell(bar.out), 0);
    fclose(bar.out);

    assert_int_equal(openpty(&master, &slave, NULL, NULL, NULL), 0);
    bar = (struct zos_ssh_bar){.out = fdopen(slave, "w"), .width = 10};
    zos_ssh_bar_progress(&bar, "/x/big.bin", 0, 20u << 20);
    zos_ssh_bar_progress(&bar, "/x/big.bin", 10u << 20, 20u << 20);
    zos_ssh_bar_progress(&bar, "/x/big.bin", 20u << 20, 20u << 20);
    zos_ssh_bar_progress(&bar, "/x/big.bin", 20u << 20, 20u << 20); /* after the end: nothing */
    fclose(bar.out);
    len = tu_drain(master, buf, sizeof buf);
    close(master);
    tu_assert_contains(buf, "big.bin");
    tu_assert_contains(buf, "[#####.....]  50%  10.0/20.0 MiB");
    tu_assert_contains(buf, "[##########] 100%  20.0/20.0 MiB");
    assert_int_equal(strstr(buf, "100%") - buf, strrchr(buf, '%') - buf - 3); /* drawn once */
    assert_true(len > 2 && buf[len - 1] == '\n'); /* the line ends at 100% */
}

/* ---- shell -------------------------------------------------------------- */

struct report {
    int rc, status, restored, connected;
    char err[256];
};

static bool same_modes(const struct termios *a, const struct termios *b)
{
    return a->c_iflag == b->c_iflag && a->c_oflag == b->c_oflag && a->c_cflag == b->c_cflag &&
           a->c_lflag == b->c_lflag && memcmp(a->c_cc, b->c_cc, sizeof a->c_cc) == 0;
}

/* In the child: stdin/stdout are the terminal (or pipes).  Runs the shell and
 * writes a report to FD. */
static void shell_child(int fd)
{
    struct report rep = {.rc = -2};
    struct termios before, after;
    bool tty = tcgetattr(STDIN_FILENO, &before) == 0;
    char pins[400];
    struct zos_ssh *s;

    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the test */
    new_pins(pins, sizeof pins);
    s = connect_with(fx.key_ed, pins, rep.err, sizeof rep.err);
    if (s != NULL) {
        rep.connected = 1;
        rep.rc = zos_ssh_shell(s, NULL, &rep.status, rep.err, sizeof rep.err);
    }
    rep.restored = !tty || (tcgetattr(STDIN_FILENO, &after) == 0 && same_modes(&before, &after));
    zos_ssh_free(s);
    if (write(fd, &rep, sizeof rep) != (ssize_t)sizeof rep)
        exit(2);
    close(fd);
    exit(0);
}

/* Reads FD into OUT until NEEDLE appears (true), EOF or the timeout. */
static bool read_until(int fd, char *out, size_t cap, size_t *len, const char *needle, int ms)
{
    for (int64_t end = tu_now_ms() + ms; tu_now_ms() < end;) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        ssize_t n;
        out[*len] = '\0';
        if (needle != NULL && strstr(out, needle) != NULL)
            return true;
        if (poll(&pf, 1, 100) <= 0)
            continue;
        n = read(fd, out + *len, cap - 1 - *len);
        if (n <= 0) /* EIO: the child closed the terminal */
            return needle == NULL;
        *len += (size_t)n;
    }
    out[*len] = '\0';
    return needle != NULL && strstr(out, needle) != NULL;
}

/* The child's report; a child that does not finish in 30 s is killed and
 * the test fails (rather than hanging). */
static void get_report(int fd, pid_t pid, struct report *rep)
{
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    int st;

    if (poll(&pf, 1, 30000) != 1) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        close(fd);
        fail_msg("the shell did not return within 30 s");
    }
    assert_int_equal(read(fd, rep, sizeof *rep), (ssize_t)sizeof *rep);
    close(fd);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* shell_child on a terminal of its own, and what the shell wrote there. */
struct pty_shell {
    pid_t pid;
    int master, report;
    char out[65536];
    size_t len;
};

/* Starts the shell on a 24x80 terminal and waits for its prompt. */
static void pty_shell_start(struct pty_shell *sh)
{
    struct winsize ws = {.ws_row = 24, .ws_col = 80};
    int fds[2];

    memset(sh, 0, sizeof *sh);
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    sh->pid = forkpty(&sh->master, NULL, NULL, &ws);
    assert_true(sh->pid >= 0);
    if (sh->pid == 0) {
        close(fds[0]);
        shell_child(fds[1]);
    }
    close(fds[1]);
    sh->report = fds[0];
    if (!read_until(sh->master, sh->out, sizeof sh->out, &sh->len, "#", 15000) &&
        !read_until(sh->master, sh->out, sizeof sh->out, &sh->len, "$", 100))
        fail_msg("no prompt; got \"%s\"", sh->out);
}

/* Reads the terminal until the child closes it, then the child's report. */
static void pty_shell_finish(struct pty_shell *sh, struct report *rep)
{
    read_until(sh->master, sh->out, sizeof sh->out, &sh->len, NULL, 15000);
    close(sh->master);
    get_report(sh->report, sh->pid, rep);
}

static void test_shell_pty(void **state)
{
    static struct pty_shell sh;
    struct winsize ws = {.ws_row = 33, .ws_col = 111};
    struct termios during;
    struct report rep;

    /* The prompt: the shell runs, and the local terminal is raw by now. */
    pty_shell_start(&sh);
    assert_int_equal(tcgetattr(sh.master, &during), 0);
    assert_int_equal(during.c_lflag & (ICANON | ECHO | ISIG), 0);

    /* A window-size change reaches the remote pty. */
    assert_int_equal(ioctl(sh.master, TIOCSWINSZ, &ws), 0);
    assert_int_equal(write(sh.master, "stty size\r", 10), 10);
    if (!read_until(sh.master, sh.out, sizeof sh.out, &sh.len, "33 111", 10000))
        fail_msg("stty size did not show 33 111; got \"%s\"", sh.out);

    assert_int_equal(write(sh.master, "echo hi; exit 3\r", 16), 16);
    pty_shell_finish(&sh, &rep);
    if (rep.rc != ZOS_OK)
        fail_msg("shell: %s", rep.err);
    assert_int_equal(rep.status, 3);
    tu_assert_contains(sh.out, "hi\r\n"); /* the output line ("echo hi;" is the echoed command) */
    assert_true(rep.restored);
}

static void test_shell_sigterm_restores_terminal(void **state)
{
    static struct pty_shell sh;
    struct report rep;

    pty_shell_start(&sh);
    kill(sh.pid, SIGTERM);
    pty_shell_finish(&sh, &rep); /* the child lived on to report */
    assert_int_equal(rep.connected, 1);
    assert_int_equal(rep.rc, ZOS_ERR);
    tu_assert_contains(rep.err, "interrupted by SIGTERM");
    assert_int_equal(rep.status, 128 + SIGTERM);
    assert_true(rep.restored);
}

/* stdin a pipe: no raw mode, no pty; the input runs and EOF ends it. */
static void test_shell_without_terminal(void **state)
{
    static char out[4096];
    int in[2], outp[2], rep_fd[2];
    struct report rep;
    size_t len = 0;
    pid_t pid;

    assert_int_equal(pipe(in), 0);
    assert_int_equal(pipe(outp), 0);
    assert_int_equal(pipe(rep_fd), 0);
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(in[0], STDIN_FILENO);
        dup2(outp[1], STDOUT_FILENO);
        close(in[0]);
        close(in[1]);
        close(outp[0]);
        close(outp[1]);
        close(rep_fd[0]);
        shell_child(rep_fd[1]);
    }
    close(in[0]);
    close(outp[1]);
    close(rep_fd[1]);
    assert_int_equal(write(in[1], "echo hi; tty; exit 4\n", 21), 21);
    close(in[1]);
    read_until(outp[0], out, sizeof out, &len, NULL, 15000);
    close(outp[0]);
    get_report(rep_fd[0], pid, &rep);
    if (rep.rc != ZOS_OK)
        fail_msg("shell: %s", rep.err);
    assert_int_equal(rep.status, 4);
    assert_string_equal(out, "hi\nnot a tty\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth_ed25519),
        cmocka_unit_test(test_auth_rsa),
        cmocka_unit_test(test_wrong_key_refused),
        cmocka_unit_test(test_bad_key_files),
        cmocka_unit_test(test_default_keys),
        cmocka_unit_test(test_agent),
        cmocka_unit_test_teardown(test_host_key_pinned_then_changed, restart_sshd_host1),
        cmocka_unit_test(test_pins_migrate),
        cmocka_unit_test(test_exec_status_and_streams),
        cmocka_unit_test(test_exec_sinks),
        cmocka_unit_test(test_exec_connection_lost),
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test(test_upload_download_tree),
        cmocka_unit_test(test_transfer_errors),
        cmocka_unit_test(test_progress_bar),
        cmocka_unit_test(test_shell_pty),
        cmocka_unit_test(test_shell_sigterm_restores_terminal),
        cmocka_unit_test(test_shell_without_terminal),
    };

    if (access(SSHD, X_OK) != 0) {
        printf("test_ssh: skipped: %s is not installed (apt-get install openssh-server)\n", SSHD);
        return 0;
    }
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
