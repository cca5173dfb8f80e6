/* test_proc.c -- the child-process runner: exit statuses, captured output, killed and
 * cancelled children, grandchildren holding the pipes, PATH lookup, argv as text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "zos/proc.h"
#include "zos/zos.h"

#include "testutil.h"

#define GUARD_S 60 /* no hang: a callback that never comes fails the test, never a bound */

static int fds_at_start;

/* ---- the blocking runner --------------------------------------------------- */

static void exec_ok(char *const argv[], struct zos_proc_result *r)
{
    char err[256] = "";
    memset(r, 0, sizeof *r);
    int rc = zos_proc_exec(NULL, argv, r, err, sizeof err);
    if (rc != ZOS_OK)
        print_message("exec %s: %s\n", argv[0], err);
    assert_int_equal(rc, ZOS_OK);
    assert_non_null(r->out);
    assert_non_null(r->err);
}

static void test_exec_status_and_output(void **state)
{
    (void)state;
    struct zos_proc_result r;
    char *both[] = {"/bin/sh", "-c", "echo out; echo err >&2; exit 7", NULL};
    exec_ok(both, &r);
    assert_int_equal(r.status, 7);
    assert_string_equal(r.out, "out\n");
    assert_string_equal(r.err, "err\n");
    zos_proc_result_clear(&r);
    assert_null(r.out);
    assert_null(r.err);
    zos_proc_result_clear(&r); /* a zeroed result is fine */

    char *quiet[] = {"/bin/true", NULL};
    exec_ok(quiet, &r);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, ""); /* nothing written: "", not NULL */
    assert_string_equal(r.err, "");
    zos_proc_result_clear(&r);

    /* stdin is /dev/null: a reader sees EOF at once instead of hanging. */
    char *reader[] = {"/bin/sh", "-c", "cat; echo done", NULL};
    exec_ok(reader, &r);
    assert_string_equal(r.out, "done\n");
    zos_proc_result_clear(&r);
}

static void test_exec_killed(void **state)
{
    (void)state;
    struct zos_proc_result r;
    char *killed[] = {"/bin/sh", "-c", "echo before; kill -9 $$; echo after", NULL};
    exec_ok(killed, &r);
    assert_int_equal(r.status, 128 + SIGKILL);
    assert_string_equal(r.out, "before\n");
    zos_proc_result_clear(&r);
    char *term[] = {"/bin/sh", "-c", "kill -TERM $$", NULL};
    exec_ok(term, &r);
    assert_int_equal(r.status, 128 + SIGTERM);
    zos_proc_result_clear(&r);
}

static void test_exec_not_found(void **state)
{
    (void)state;
    struct zos_proc_result r = {0};
    char err[256];
    char *none[] = {"no-such-program-zos", NULL};
    assert_int_equal(zos_proc_exec(NULL, none, &r, err, sizeof err), ZOS_ERR);
    assert_string_equal(err, "cannot run 'no-such-program-zos': No such file or directory");
    assert_null(r.out);
    char *dir[] = {"/tmp", NULL}; /* not executable: exec fails, not exit 126 */
    assert_int_equal(zos_proc_exec(NULL, dir, &r, err, sizeof err), ZOS_ERR);
    assert_string_equal(err, "cannot run '/tmp': Permission denied");
}

/* More than the 4 MiB kept per stream: the rest is dropped, the child is
 * not blocked on a full pipe, and both streams are read at the same time. */
static void test_exec_output_cap(void **state)
{
    (void)state;
    struct zos_proc_result r;
    char *big[] = {"/bin/sh", "-c",
                   "head -c 5000000 /dev/zero | tr '\\0' e >&2; head -c 300000 /dev/zero | "
                   "tr '\\0' o; exit 3",
                   NULL};
    exec_ok(big, &r);
    assert_int_equal(r.status, 3);
    assert_int_equal(strlen(r.err), 4u << 20);
    assert_int_equal(strlen(r.out), 300000);
    assert_int_equal(strspn(r.out, "o"), 300000);
    zos_proc_result_clear(&r);
}

/* The child gets no descriptor of ours beyond 0-2, and SIGPIPE at its
 * default even when we ignore it (as the proxy does). */
static void test_exec_child_environment(void **state)
{
    (void)state;
    struct zos_proc_result r;
    char *fds[] = {"/bin/sh", "-c", "ls /proc/self/fd | wc -l", NULL};
    int extra = open("/dev/null", O_RDONLY); /* not close-on-exec */
    assert_true(extra > 2);
    exec_ok(fds, &r);
    close(extra);
    assert_int_equal(atoi(r.out), 4); /* 0, 1, 2 and ls's own directory */
    zos_proc_result_clear(&r);

    void (*old)(int) = signal(SIGPIPE, SIG_IGN);
    char *ign[] = {"/bin/sh", "-c", "grep SigIgn /proc/self/status", NULL};
    exec_ok(ign, &r);
    signal(SIGPIPE, old);
    unsigned long long mask = strtoull(strchr(r.out, ':') + 1, NULL, 16);
    assert_int_equal(mask & (1ULL << (SIGPIPE - 1)), 0);
    zos_proc_result_clear(&r);
}

/* SIGCHLD ignored: the kernel reaps the child, so there is no status. */
static void test_exec_sigchld_ignored(void **state)
{
    (void)state;
    struct zos_proc_result r;
    void (*old)(int) = signal(SIGCHLD, SIG_IGN);
    char *argv[] = {"/bin/sh", "-c", "echo hi; exit 5", NULL};
    exec_ok(argv, &r);
    signal(SIGCHLD, old);
    assert_int_equal(r.status, -1);
    assert_string_equal(r.out, "hi\n");
    zos_proc_result_clear(&r);
}

/* ---- the asynchronous runner ----------------------------------------------- */

struct seen {
    int calls;
    int status;
    char *out, *err;
    const char *proc_err;
    bool guard_fired;
    int alive; /* -1: note whether the pid the child printed lives when the callback comes */
    bool alive_then;
    struct event_base *base;
};

static void on_proc(void *arg, struct zos_proc_result *res, const char *err)
{
    struct seen *p = arg;
    p->calls++;
    p->status = res->status;
    p->proc_err = err;
    p->out = res->out; /* taken */
    p->err = res->err;
    res->out = res->err = NULL;
    if (p->alive < 0 && p->out != NULL && atoi(p->out) > 1) /* the pid it printed */
        p->alive_then = kill((pid_t)atoi(p->out), 0) == 0;
    event_base_loopbreak(p->base);
}

static void on_guard(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct seen *p = arg;
    p->guard_fired = true;
    event_base_loopbreak(p->base);
}

static void seen_clear(struct seen *p)
{
    free(p->out);
    free(p->err);
}

/* Spawns ARGV, runs the loop until its callback (or the no-hang guard). */
static void run_proc(struct event_base *base, char *const argv[], struct seen *p, int watch)
{
    char err[256];
    memset(p, 0, sizeof *p);
    p->base = base;
    p->alive = watch;
    struct event *guard = evtimer_new(base, on_guard, p);
    struct timeval tv = {GUARD_S, 0};
    assert_non_null(guard);
    evtimer_add(guard, &tv);
    struct zos_proc *pr = zos_proc_spawn(base, argv, on_proc, p, err, sizeof err);
    assert_non_null(pr);
    assert_int_equal(p->calls, 0); /* never inside the call */
    event_base_dispatch(base);
    event_free(guard);
    assert_false(p->guard_fired);
    assert_int_equal(p->calls, 1);
}

static void test_spawn_status_and_output(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    struct seen p;
    assert_non_null(base);

    char *both[] = {"/bin/sh", "-c", "echo out; echo err >&2; exit 0", NULL};
    run_proc(base, both, &p, 0);
    assert_null(p.proc_err);
    assert_int_equal(p.status, 0);
    assert_string_equal(p.out, "out\n");
    assert_string_equal(p.err, "err\n");
    seen_clear(&p);

    /* Much output on both pipes, an exit status. */
    char *big[] = {"/bin/sh", "-c", "head -c 300000 /dev/zero | tr '\\0' x; echo oops >&2; exit 3",
                   NULL};
    run_proc(base, big, &p, 0);
    assert_int_equal(p.status, 3);
    assert_int_equal(strlen(p.out), 300000);
    assert_string_equal(p.err, "oops\n");
    seen_clear(&p);

    /* Killed by a signal. */
    char *killed[] = {"/bin/sh", "-c", "kill -9 $$", NULL};
    run_proc(base, killed, &p, 0);
    assert_int_equal(p.status, 128 + SIGKILL);
    seen_clear(&p);
    event_base_free(base);
}

/* A grandchild that inherited the pipes (a daemon) does not hold the
 * callback: it comes while the grandchild still runs. */
static void test_spawn_grandchild_keeps_pipes(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    struct seen p;
    char *daemon[] = {"/bin/sh", "-c", "sleep 60 & echo $!; exit 0", NULL};
    run_proc(base, daemon, &p, -1);
    assert_int_equal(p.status, 0);
    pid_t grandchild = (pid_t)atoi(p.out);
    assert_true(grandchild > 1);
    assert_true(p.alive_then); /* the sleep 60 was still running */
    kill(grandchild, SIGKILL);
    seen_clear(&p);
    event_base_free(base);
}

static void test_spawn_not_found_and_cancel(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    struct seen p = {.base = base};
    char err[256];

    /* A program that does not exist is an error at once, no callback. */
    char *nothing[] = {"/nonexistent/VBoxManage", "list", NULL};
    assert_null(zos_proc_spawn(base, nothing, on_proc, &p, err, sizeof err));
    assert_string_equal(err, "cannot run '/nonexistent/VBoxManage': No such file or directory");

    /* Cancel: killed and reaped at once, no callback. */
    char *slow[] = {"/bin/sleep", "30", NULL};
    struct zos_proc *pr = zos_proc_spawn(base, slow, on_proc, &p, err, sizeof err);
    assert_non_null(pr);
    zos_proc_cancel(pr);
    event_base_loop(base, EVLOOP_NONBLOCK);
    assert_int_equal(p.calls, 0);
    zos_proc_cancel(NULL);
    event_base_free(base);
}

static void test_spawn_sigchld_ignored(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    struct seen p;
    void (*old)(int) = signal(SIGCHLD, SIG_IGN);
    char *argv[] = {"/bin/sh", "-c", "echo hi; exit 5", NULL};
    run_proc(base, argv, &p, 0);
    signal(SIGCHLD, old);
    assert_int_equal(p.status, -1);
    assert_string_equal(p.proc_err, "exit status unavailable (is SIGCHLD ignored?)");
    assert_string_equal(p.out, "hi\n");
    seen_clear(&p);
    event_base_free(base);
}

/* ---- programs and command lines -------------------------------------------- */

static void test_which(void **state)
{
    (void)state;
    char dir[64], path[PATH_MAX], exe[PATH_MAX], plain[PATH_MAX], sub[PATH_MAX], cwd[PATH_MAX];
    const char *old = getenv("PATH");
    char saved[8192];
    tu_sfmt(saved, sizeof saved, "%s", old ? old : "/usr/bin:/bin");
    assert_non_null(tu_mkdtemp(dir, sizeof dir, "which"));
    tu_sfmt(sub, sizeof sub, "%s/bin", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    tu_sfmt(exe, sizeof exe, "%s/tool", sub);
    tu_sfmt(plain, sizeof plain, "%s/data", sub);
    assert_int_equal(tu_write_file(exe, "#!/bin/sh\n", 10, 0755), 0);
    assert_int_equal(tu_write_file(plain, "x", 1, 0644), 0);

    tu_sfmt(path, sizeof path, "/nonexistent:%s", sub);
    setenv("PATH", path, 1);
    assert_true(zos_proc_which("tool", path, sizeof path));
    assert_string_equal(path, exe);
    assert_false(zos_proc_which("data", path, sizeof path)); /* not executable */
    assert_false(zos_proc_which("bin", path, sizeof path));  /* a directory */
    assert_false(zos_proc_which("none-such-zos", path, sizeof path));

    /* A relative entry is taken from the working directory, made absolute. */
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(dir), 0);
    setenv("PATH", "bin", 1);
    assert_true(zos_proc_which("tool", path, sizeof path));
    char want[PATH_MAX * 2];
    char real[PATH_MAX];
    assert_non_null(realpath(dir, real));
    tu_sfmt(want, sizeof want, "%s/bin/tool", real);
    assert_string_equal(path, want);
    assert_int_equal(chdir(cwd), 0);

    /* A name with a slash is only checked; a result too long is refused. */
    assert_true(zos_proc_which(exe, path, sizeof path));
    assert_string_equal(path, exe);
    assert_false(zos_proc_which(plain, path, sizeof path));
    setenv("PATH", sub, 1);
    assert_false(zos_proc_which("tool", path, 8));
    setenv("PATH", saved, 1);
    tu_rm_tree(dir);
}

static void test_argv_text(void **state)
{
    (void)state;
    char buf[256];
    char *argv[] = {
        "/usr/bin/VBoxManage", "storagectl", "My VM", "--name", "it's", "", "a=b,c", NULL};
    zos_proc_argv_text(argv, buf, sizeof buf);
    assert_string_equal(buf, "VBoxManage storagectl 'My VM' --name 'it'\\''s' '' a=b,c");
    zos_proc_argv_text(argv, buf, 16); /* truncated, still terminated */
    assert_string_equal(buf, "VBoxManage stor");

    char **owned = calloc(3, sizeof *owned);
    assert_non_null(owned);
    owned[0] = strdup("a");
    owned[1] = strdup("b");
    zos_proc_argv_free(owned); /* all of it: the sanitizer build would see a leak */
    zos_proc_argv_free(NULL);
}

/* After all of the above (a long-running proxy does this all day). */
static void test_no_fd_leaked(void **state)
{
    (void)state;
    assert_int_equal(tu_count_fds(), fds_at_start);
}

int main(void)
{
    fds_at_start = tu_count_fds();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exec_status_and_output),
        cmocka_unit_test(test_exec_killed),
        cmocka_unit_test(test_exec_not_found),
        cmocka_unit_test(test_exec_output_cap),
        cmocka_unit_test(test_exec_child_environment),
        cmocka_unit_test(test_exec_sigchld_ignored),
        cmocka_unit_test(test_spawn_status_and_output),
        cmocka_unit_test(test_spawn_grandchild_keeps_pipes),
        cmocka_unit_test(test_spawn_not_found_and_cancel),
        cmocka_unit_test(test_spawn_sigchld_ignored),
        cmocka_unit_test(test_which),
        cmocka_unit_test(test_argv_text),
        cmocka_unit_test(test_no_fd_leaked),
    };
    return cmocka_run_group_tests_name("proc", tests, NULL, NULL);
}
