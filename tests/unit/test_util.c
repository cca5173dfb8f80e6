/* test_util.c -- the shared helpers of util: mkdir -p, write_all, the monotonic clock, sleep,
 * the home directory, the log levels' names; and the name index, the JSON printer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "zos/util.h"
#include "zos/zos.h"

#include "testutil.h"

static mode_t mode_of(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    return st.st_mode & 07777;
}

/* ---- mkdir -p --------------------------------------------------------------- */

static void test_mkdir_p_nested(void **state)
{
    const char *dir = *state;
    char path[PATH_MAX + 64], mid[PATH_MAX + 64], err[PATH_MAX + 128] = "";
    tu_sfmt(path, sizeof path, "%s/a/b/c", dir);
    tu_sfmt(mid, sizeof mid, "%s/a/b", dir);
    mode_t old = umask(077); /* takes bits away: the mode asked for still holds */
    int rc = zos_mkdir_p(path, 0750, err, sizeof err);
    umask(old);
    assert_int_equal(rc, 0);
    assert_string_equal(err, ""); /* untouched on success */
    assert_int_equal(mode_of(path), 0750);
    assert_int_equal(mode_of(mid), 0750);
    assert_int_equal(mode_of(dir), 0700); /* there already: kept as it was */

    /* All of it there already, and a trailing slash. */
    assert_int_equal(chmod(path, 0700), 0);
    assert_int_equal(zos_mkdir_p(path, 0755, NULL, 0), 0);
    assert_int_equal(mode_of(path), 0700);
    tu_sfmt(path, sizeof path, "%s/a/b/d/", dir);
    assert_int_equal(zos_mkdir_p(path, 0700, NULL, 0), 0);
    assert_int_equal(mode_of(path), 0700);
}

static void test_mkdir_p_relative(void **state)
{
    const char *dir = *state;
    char cwd[PATH_MAX], path[PATH_MAX + 16];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(dir), 0);
    int rc = zos_mkdir_p("x/y", 0700, NULL, 0);
    int rc_empty = zos_mkdir_p("", 0700, NULL, 0);
    int errno_empty = errno;
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(rc, 0);
    tu_sfmt(path, sizeof path, "%s/x/y", dir);
    assert_int_equal(mode_of(path), 0700);
    assert_int_equal(rc_empty, -1);
    assert_int_equal(errno_empty, ENOENT);
}

static void test_mkdir_p_file_in_the_way(void **state)
{
    const char *dir = *state;
    char file[PATH_MAX + 16], path[PATH_MAX + 32], err[PATH_MAX + 128];
    tu_sfmt(file, sizeof file, "%s/f", dir);
    assert_int_equal(tu_write_file(file, "x", 1, 0644), 0);

    /* The file is the path itself: not a directory, so not done. */
    errno = 0;
    assert_int_equal(zos_mkdir_p(file, 0700, err, sizeof err), -1);
    assert_int_equal(errno, ENOTDIR);
    char want[PATH_MAX + 64];
    tu_sfmt(want, sizeof want, "%s: %s", file, strerror(ENOTDIR));
    assert_string_equal(err, want);

    /* The file is in the middle: ERR names it, nothing is made below. */
    tu_sfmt(path, sizeof path, "%s/g/h", file);
    errno = 0;
    assert_int_equal(zos_mkdir_p(path, 0700, err, sizeof err), -1);
    assert_int_equal(errno, ENOTDIR);
    assert_string_equal(err, want);
    assert_int_equal(zos_mkdir_p(path, 0700, NULL, 0), -1); /* ERR may be NULL */
}

/* ---- write_all -------------------------------------------------------------- */

struct reader {
    int fd;
    size_t got;
    unsigned sum;
};

static void *read_all(void *arg)
{
    struct reader *r = arg;
    unsigned char buf[8192];
    ssize_t n;
    while ((n = read(r->fd, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n; i++)
            r->sum = r->sum * 31 + buf[i];
        r->got += (size_t)n;
    }
    return NULL;
}

/* LEN bytes through a pipe far smaller than them: short writes, and with
 * NONBLOCK the EAGAINs are waited out. */
static void check_pipe_write(size_t len, bool nonblock)
{
    int p[2];
    pthread_t t;
    struct reader r = {0};
    unsigned char *data = malloc(len);
    unsigned want = 0;
    assert_non_null(data);
    tu_fill_random(data, len);
    for (size_t i = 0; i < len; i++)
        want = want * 31 + data[i];
    assert_int_equal(pipe(p), 0);
    if (nonblock)
        assert_int_equal(fcntl(p[1], F_SETFL, O_NONBLOCK), 0);
    r.fd = p[0];
    assert_int_equal(pthread_create(&t, NULL, read_all, &r), 0);
    assert_int_equal(zos_write_all(p[1], data, len), 0);
    close(p[1]);
    pthread_join(t, NULL);
    close(p[0]);
    assert_int_equal(r.got, len);
    assert_int_equal(r.sum, want);
    free(data);
}

static void test_write_all_pipe(void **state)
{
    (void)state;
    check_pipe_write(3 << 20, false);
    check_pipe_write(3 << 20, true);
    assert_int_equal(zos_write_all(-1, "", 0), 0); /* nothing to write: nothing done */
}

static void test_write_all_errors(void **state)
{
    (void)state;
    int p[2];
    void (*old)(int) = signal(SIGPIPE, SIG_IGN);
    assert_int_equal(pipe(p), 0);
    close(p[0]); /* nobody reads */
    errno = 0;
    assert_int_equal(zos_write_all(p[1], "abc", 3), -1);
    assert_int_equal(errno, EPIPE);
    close(p[1]);
    signal(SIGPIPE, old);
    errno = 0;
    assert_int_equal(zos_write_all(p[1], "abc", 3), -1); /* closed */
    assert_int_equal(errno, EBADF);
}

/* ---- clocks ----------------------------------------------------------------- */

/* Never goes back, and a sleep moves it on by at least the sleep. */
static void test_now_ms_monotonic(void **state)
{
    (void)state;
    long long prev = zos_now_ms();
    assert_true(prev >= 0);
    for (int i = 0; i < 100000; i++) {
        long long now = zos_now_ms();
        assert_true(now >= prev);
        prev = now;
    }
    /* A lower bound only: load can make the sleep longer, never shorter. */
    long long before = zos_now_ms();
    zos_sleep_ms(20);
    assert_true(zos_now_ms() - before >= 20);
    zos_sleep_ms(0);
}

/* ---- the home directory ----------------------------------------------------- */

static void test_home_dir(void **state)
{
    (void)state;
    char buf[1024], saved[PATH_MAX] = "";
    const char *old = getenv("HOME");
    bool had = old != NULL;
    if (had)
        tu_sfmt(saved, sizeof saved, "%s", old);

    setenv("HOME", "/some/where", 1);
    assert_string_equal(zos_home_dir(buf, sizeof buf), "/some/where");

    /* No HOME, or an empty one: the password database's entry for our uid. */
    struct passwd *pw = getpwuid(getuid());
    const char *want = pw != NULL && pw->pw_dir[0] != '\0' ? pw->pw_dir : NULL;
    char copy[PATH_MAX] = "";
    if (want != NULL)
        tu_sfmt(copy, sizeof copy, "%s", want);
    unsetenv("HOME");
    const char *got = zos_home_dir(buf, sizeof buf);
    if (want == NULL) {
        assert_null(got);
    } else {
        assert_non_null(got);
        assert_string_equal(got, copy);
        assert_true(got >= buf && got < buf + sizeof buf); /* in BUF, not static storage */
    }
    setenv("HOME", "", 1);
    got = zos_home_dir(buf, sizeof buf);
    if (want != NULL)
        assert_string_equal(got, copy);
    /* A buffer too small for the entry: no answer rather than a cut one. */
    assert_null(zos_home_dir(buf, 4));

    if (had)
        setenv("HOME", saved, 1);
    else
        unsetenv("HOME");
}

/* ---- log levels ------------------------------------------------------------- */

static void test_log_level_names(void **state)
{
    (void)state;
    static const char *const want[] = {"error", "warn", "info", "debug"};
    size_t n = 0;
    for (; zos_log_level_names[n] != NULL; n++) {
        enum zos_log_level l;
        assert_true(n < ZOS_ARRAY_LEN(want));
        assert_string_equal(zos_log_level_names[n], want[n]);
        assert_int_equal(zos_log_level_parse(zos_log_level_names[n], &l), 0);
        assert_int_equal(l, n);
    }
    assert_int_equal(n, ZOS_ARRAY_LEN(want));
    assert_int_equal(ZOS_LOG_ERROR, 0);
    assert_int_equal(ZOS_LOG_DEBUG, 3);

    enum zos_log_level l = ZOS_LOG_INFO;
    assert_int_equal(zos_log_level_parse("DEBUG", &l), 0);
    assert_int_equal(l, ZOS_LOG_DEBUG);
    assert_int_equal(zos_log_level_parse("Warn", &l), 0);
    assert_int_equal(l, ZOS_LOG_WARN);
    assert_int_equal(zos_log_level_parse("warning", &l), -1);
    assert_int_equal(zos_log_level_parse("", &l), -1);
    assert_int_equal(zos_log_level_parse(NULL, &l), -1);
    assert_int_equal(l, ZOS_LOG_WARN); /* untouched by a refusal */
}

/* ---- the rest of util --------------------------------------------------------- */

static void test_index(void **state)
{
    (void)state;
    static char names[3000][16];
    struct zos_index *x = zos_index_new();
    size_t v;
    assert_non_null(x);
    assert_false(zos_index_get(x, "a", 1, &v));
    for (size_t i = 0; i < 3000; i++) {
        tu_sfmt(names[i], sizeof names[i], "node-%zu", i);
        assert_int_equal(zos_index_put(x, names[i], i), 0);
    }
    for (size_t i = 0; i < 3000; i++) {
        assert_true(zos_index_get(x, names[i], strlen(names[i]), &v));
        assert_int_equal(v, i);
    }
    assert_true(zos_index_get(x, "node-12xyz", 7, &v)); /* LEN bytes of the name */
    assert_int_equal(v, 12);
    assert_int_equal(zos_index_put(x, names[5], 42), 0); /* the later value wins */
    assert_true(zos_index_get(x, "node-5", 6, &v));
    assert_int_equal(v, 42);
    zos_index_clear(x);
    assert_false(zos_index_get(x, "node-5", 6, &v));
    zos_index_free(x);
    zos_index_free(NULL);
}

static void test_json_pretty(void **state)
{
    (void)state;
    cJSON *v = cJSON_Parse("{\"a\":[1,2.5,\"x\\ny\"],\"b\":{},\"c\":[],\"d\":true,\"e\":null}");
    assert_non_null(v);
    char *text = zos_json_pretty(v);
    assert_string_equal(text, "{\n"
                              "  \"a\": [\n"
                              "    1,\n"
                              "    2.5,\n"
                              "    \"x\\ny\"\n"
                              "  ],\n"
                              "  \"b\": {},\n"
                              "  \"c\": [],\n"
                              "  \"d\": true,\n"
                              "  \"e\": null\n"
                              "}");
    free(text);
    cJSON_Delete(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_mkdir_p_nested, tu_tmpdir_setup, tu_tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_mkdir_p_relative, tu_tmpdir_setup, tu_tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_mkdir_p_file_in_the_way, tu_tmpdir_setup,
                                        tu_tmpdir_teardown),
        cmocka_unit_test(test_write_all_pipe),
        cmocka_unit_test(test_write_all_errors),
        cmocka_unit_test(test_now_ms_monotonic),
        cmocka_unit_test(test_home_dir),
        cmocka_unit_test(test_log_level_names),
        cmocka_unit_test(test_index),
        cmocka_unit_test(test_json_pretty),
    };
    return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
