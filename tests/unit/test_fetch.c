/* test_fetch.c -- zos_fetch against real servers on loopback ports.
 *
 * The group setup makes a temporary directory with a 3 MB file in www/, two
 * self-signed certificates made with `openssl req` (one for IP:127.0.0.1 and
 * DNS:localhost, one for another name only), and starts three servers with
 * www/ as their directory: `openssl s_server -WWW` with each certificate, and
 * tests/fixtures/http_server.py (plain HTTP, with redirects, 404s, bodies
 * without length, truncated and stalled ones).  Each listens on a port the
 * kernel picked (port 0), read from its output.  The teardown stops every
 * one by PID (and the servers die with the test: PR_SET_PDEATHSIG).
 */
#include "zos/fetch.h"
#include "zos/util.h"
#include "zos/zos.h"

#include "testutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define BIG_SIZE (3u * 1000 * 1000)

enum { SRV_TLS, SRV_TLS_OTHER, SRV_HTTP, NSRV };

static struct {
    char fixtures[PATH_MAX]; /* tests/fixtures, absolute */
    char dir[64];            /* everything of the test lives here */
    char www[128];           /* what the servers serve */
    char ca[128];            /* the certificate of SRV_TLS (self-signed: its own CA) */
    char ca_other[128];      /* that of SRV_TLS_OTHER: names elsewhere.test only */
    unsigned char *big;      /* www/big.bin */
    pid_t pid[NSRV];
    int port[NSRV];
    int nout;
} fx;

/* ---- helpers ------------------------------------------------------------ */

/* The port in the line of LOG that starts with PREFIX ("ACCEPT 127.0.0.1:"
 * of s_server, "ready " of http_server.py), once it is there; -1 when PID
 * exits or 10 s pass first. */
static int wait_port(pid_t pid, const char *log, const char *prefix)
{
    char *text;

    for (int64_t end = tu_now_ms() + 10000; tu_now_ms() < end; tu_nap_ms(20)) {
        const char *at;
        int st, port = -1;

        if ((text = tu_read_file(log, NULL)) != NULL && (at = strstr(text, prefix)) != NULL &&
            strchr(at, '\n') != NULL)
            port = atoi(at + strlen(prefix));
        free(text);
        if (port > 0)
            return port;
        if (waitpid(pid, &st, WNOHANG) == pid)
            break;
    }
    text = tu_read_file(log, NULL);
    fprintf(stderr, "test_fetch: no port from the server; its output:\n%s\n", text ? text : "");
    free(text);
    return -1;
}

/* A self-signed certificate (EC, so quick) and its key in fx.dir. */
static int make_cert(const char *name, const char *san, char *cert, size_t len)
{
    char key[128], ext[128];
    const char *argv[] = {"openssl",
                          "req",
                          "-x509",
                          "-newkey",
                          "ec",
                          "-pkeyopt",
                          "ec_paramgen_curve:prime256v1",
                          "-nodes",
                          "-days",
                          "2",
                          "-subj",
                          "/CN=zos-test",
                          "-keyout",
                          key,
                          "-out",
                          cert,
                          "-addext",
                          ext,
                          NULL};

    tu_sfmt(cert, len, "%s/%s.crt", fx.dir, name);
    tu_sfmt(key, sizeof key, "%s/%s.key", fx.dir, name);
    tu_sfmt(ext, sizeof ext, "subjectAltName=%s", san);
    return tu_run(argv);
}

static int start_tls(int which, const char *cert)
{
    char key[128], log[128];
    const char *argv[] = {"openssl", "s_server", "-WWW", "-accept", "127.0.0.1:0",
                          "-cert",   cert,       "-key", key,       NULL};

    tu_sfmt(key, sizeof key, "%.*s.key", (int)strlen(cert) - 4, cert);
    tu_sfmt(log, sizeof log, "%s/s_server%d.log", fx.dir, which);
    fx.pid[which] = tu_spawn(argv, fx.www, log);
    fx.port[which] = fx.pid[which] > 0 ? wait_port(fx.pid[which], log, "ACCEPT 127.0.0.1:") : -1;
    return fx.port[which] > 0 ? 0 : -1;
}

static int start_http(void)
{
    char script[PATH_MAX + 32], log[128];
    const char *argv[] = {"/usr/bin/python3", script, fx.www, NULL};

    tu_sfmt(script, sizeof script, "%s/http_server.py", fx.fixtures);
    tu_sfmt(log, sizeof log, "%s/http_server.log", fx.dir);
    fx.pid[SRV_HTTP] = tu_spawn(argv, fx.www, log);
    fx.port[SRV_HTTP] = fx.pid[SRV_HTTP] > 0 ? wait_port(fx.pid[SRV_HTTP], log, "ready ") : -1;
    return fx.port[SRV_HTTP] > 0 ? 0 : -1;
}

/* The same pseudo-random bytes every run. */
static unsigned char *make_big(void)
{
    unsigned char *p = malloc(BIG_SIZE);

    if (p != NULL)
        tu_fill_random(p, BIG_SIZE);
    return p;
}

static int group_teardown(void **state)
{
    for (int i = 0; i < NSRV; i++)
        tu_stop(&fx.pid[i]);
    if (fx.dir[0] != '\0')
        tu_rm_tree(fx.dir);
    free(fx.big);
    fx.big = NULL;
    return 0;
}

static int group_setup(void **state)
{
    char path[160], spaced[160];

    if (tu_mkdtemp(fx.dir, sizeof fx.dir, "fetch") == NULL)
        return -1;
    tu_sfmt(fx.www, sizeof fx.www, "%s/www", fx.dir);
    tu_sfmt(path, sizeof path, "%s/big.bin", fx.www);
    tu_sfmt(spaced, sizeof spaced, "%s/with space.bin", fx.www);
    if (mkdir(fx.www, 0700) != 0 || (fx.big = make_big()) == NULL ||
        tu_write_file(path, fx.big, BIG_SIZE, 0644) != 0 ||
        tu_write_file(spaced, fx.big, BIG_SIZE, 0644) != 0 ||
        make_cert("server", "IP:127.0.0.1,DNS:localhost", fx.ca, sizeof fx.ca) != 0 ||
        make_cert("other", "DNS:elsewhere.test", fx.ca_other, sizeof fx.ca_other) != 0 ||
        start_tls(SRV_TLS, fx.ca) != 0 || start_tls(SRV_TLS_OTHER, fx.ca_other) != 0 ||
        start_http() != 0) {
        fprintf(stderr, "test_fetch: setup failed (openssl and /usr/bin/python3 needed)\n");
        group_teardown(state);
        return -1;
    }
    return 0;
}

/* A fresh output path in fx.dir (nothing there yet). */
static void out_path(char *buf, size_t len)
{
    tu_sfmt(buf, len, "%s/out%d/file.iso", fx.dir, ++fx.nout);
    *strrchr(buf, '/') = '\0';
    mkdir(buf, 0700);
    buf[strlen(buf)] = '/';
}

static void url(char *buf, size_t len, int which, const char *path)
{
    tu_sfmt(buf, len, "%s://127.0.0.1:%d/%s", which == SRV_HTTP ? "http" : "https", fx.port[which],
            path);
}

/* PATH holds exactly www/big.bin, and no PATH.part is left. */
static void assert_big(const char *path)
{
    size_t len;
    char *data = tu_read_file(path, &len);
    char part[PATH_MAX];

    assert_int_equal(len, BIG_SIZE);
    assert_memory_equal(data, fx.big, BIG_SIZE);
    free(data);
    tu_sfmt(part, sizeof part, "%s.part", path);
    assert_false(tu_exists(part));
}

/* Neither PATH nor PATH.part. */
static void assert_nothing(const char *path)
{
    char part[PATH_MAX];

    tu_sfmt(part, sizeof part, "%s.part", path);
    assert_false(tu_exists(path));
    assert_false(tu_exists(part));
}

/* Progress calls: checks they never go back, keeps the first and last. */
struct record {
    int calls, cancel_at;
    bool backwards;
    int64_t first_done, first_total, done, total;
};

static int record_fn(void *arg, int64_t done, int64_t total)
{
    struct record *r = arg;

    if (r->calls == 0) {
        r->first_done = done;
        r->first_total = total;
    } else if (done < r->done || (r->total >= 0 && total != r->total && done != total)) {
        r->backwards = true;
    }
    r->calls++;
    r->done = done;
    r->total = total;
    return r->cancel_at > 0 && r->calls >= r->cancel_at;
}

/* Downloads URL to PATH with OPTS (may be NULL), progress recorded into
 * REC (may be NULL: the default bar stays off the test's stderr anyway). */
static int fetch_to(const char *u, const struct zos_fetch_opts *opts, struct record *rec,
                    const char *path, char *err, size_t errlen)
{
    struct zos_fetch_opts o = opts != NULL ? *opts : (struct zos_fetch_opts){0};
    struct record ignored = {0};

    o.progress = record_fn;
    o.progress_arg = rec != NULL ? rec : &ignored;
    err[0] = '\0';
    return zos_fetch(u, path, &o, err, errlen);
}

/* The same to a fresh path, returned in PATH. */
static int get(const char *u, const struct zos_fetch_opts *opts, struct record *rec, char *path,
               size_t len, char *err, size_t errlen)
{
    out_path(path, len);
    return fetch_to(u, opts, rec, path, err, errlen);
}

/* ---- https -------------------------------------------------------------- */

static void test_https_with_ca(void **state)
{
    char u[256], path[PATH_MAX], err[512];
    struct zos_fetch_opts o = {.ca_file = fx.ca};
    struct record rec = {0};

    url(u, sizeof u, SRV_TLS, "big.bin");
    assert_int_equal(get(u, &o, &rec, path, sizeof path, err, sizeof err), ZOS_OK);
    assert_string_equal(err, "");
    assert_big(path);
    /* s_server sends no Content-Length: the total is learnt at the end */
    assert_int_equal(rec.first_total, -1);
    assert_int_equal(rec.done, BIG_SIZE);
    assert_int_equal(rec.total, BIG_SIZE);

    /* by name: SNI and the DNS name in the certificate */
    tu_sfmt(u, sizeof u, "https://localhost:%d/big.bin", fx.port[SRV_TLS]);
    assert_int_equal(get(u, &o, NULL, path, sizeof path, err, sizeof err), ZOS_OK);
    assert_big(path);
}

static void test_https_untrusted(void **state)
{
    char u[256], path[PATH_MAX], err[512];
    struct zos_fetch_opts o = {0};

    /* the system's CA store does not know our self-signed certificate */
    url(u, sizeof u, SRV_TLS, "big.bin");
    assert_int_equal(get(u, &o, NULL, path, sizeof path, err, sizeof err), ZOS_ERR);
    tu_assert_contains(err, u);
    tu_assert_contains(err, "certificate verify failed");
    tu_assert_contains(err, "self-signed certificate");
    assert_nothing(path);

    /* a trusted certificate for another name: the address must be in it */
    o.ca_file = fx.ca_other;
    url(u, sizeof u, SRV_TLS_OTHER, "big.bin");
    assert_int_equal(get(u, &o, NULL, path, sizeof path, err, sizeof err), ZOS_ERR);
    tu_assert_contains(err, "certificate verify failed");
    tu_assert_contains(err, "IP address mismatch");
    assert_nothing(path);
    tu_sfmt(u, sizeof u, "https://localhost:%d/big.bin", fx.port[SRV_TLS_OTHER]);
    assert_int_equal(get(u, &o, NULL, path, sizeof path, err, sizeof err), ZOS_ERR);
    tu_assert_contains(err, "certificate verify failed");
    tu_assert_contains(err, "hostname mismatch");
    assert_nothing(path);

    /* a CA file that is not there */
    o.ca_file = "/nonexistent/ca.pem";
    assert_int_equal(get(u, &o, NULL, path, sizeof path, err, sizeof err), ZOS_ERR);
    tu_assert_contains(err, "/nonexistent/ca.pem");
    assert_nothing(path);
}

static void test_https_insecure(void **state)
{
    char u[256], path[PATH_MAX], err[512];
    struct zos_fetch_opts o = {.insecure = true};

    url(u, sizeof u, SRV_TLS, "big.bin");
    assert_int_equal(get(u, &o, NULL, path, sizeof path, err, sizeof err), ZOS_OK);
    assert_big(path);
    url(u, sizeof u, SRV_TLS_OTHER, "big.bin");
    assert_int_equal(get(u, &o, NULL, path, sizeof path, err, sizeof err), ZOS_OK);
    assert_big(path);
}

/* ---- http --------------------------------------------------------------- */

static void test_http(void **state)
{
    char u[256], path[PATH_MAX], err[512];
    struct record rec = {0};

    url(u, sizeof u, SRV_HTTP, "big.bin");
    assert_int_equal(get(u, NULL, &rec, path, sizeof path, err, sizeof err), ZOS_OK);
    assert_big(path);
    assert_false(rec.backwards);
    assert_true(rec.calls > 2); /* the headers, pieces of the body */
    assert_int_equal(rec.first_done, 0);
    assert_int_equal(rec.first_total, BIG_SIZE);
    assert_int_equal(rec.done, BIG_SIZE);
    assert_int_equal(rec.total, BIG_SIZE);

    /* PATH is replaced by a complete download */
    assert_int_equal(tu_write_file(path, "old", 3, 0644), 0);
    assert_int_equal(get(u, NULL, NULL, path, sizeof path, err, sizeof err), ZOS_OK);
    assert_big(path);
}

static void test_unknown_length(void **state)
{
    static const char *const paths[] = {"nolength/big.bin", "chunked/big.bin"};
    char u[256], path[PATH_MAX], err[512];

    for (size_t i = 0; i < ZOS_ARRAY_LEN(paths); i++) {
        struct record rec = {0};
        url(u, sizeof u, SRV_HTTP, paths[i]);
        assert_int_equal(get(u, NULL, &rec, path, sizeof path, err, sizeof err), ZOS_OK);
        assert_big(path);
        assert_false(rec.backwards);
        assert_int_equal(rec.first_total, -1);
        assert_int_equal(rec.done, BIG_SIZE);
        assert_int_equal(rec.total, BIG_SIZE); /* the last call says the size */
    }
}

static void test_http_404(void **state)
{
    char u[256], path[PATH_MAX], err[512];
    size_t len;
    char *data;

    url(u, sizeof u, SRV_HTTP, "missing.iso");
    assert_int_equal(get(u, NULL, NULL, path, sizeof path, err, sizeof err), ZOS_ERR);
    tu_assert_contains(err, u);
    tu_assert_contains(err, "HTTP 404");
    assert_nothing(path);

    /* a failure leaves an existing PATH alone */
    out_path(path, sizeof path);
    assert_int_equal(tu_write_file(path, "old", 3, 0644), 0);
    assert_int_equal(fetch_to(u, NULL, NULL, path, err, sizeof err), ZOS_ERR);
    data = tu_read_file(path, &len);
    assert_int_equal(len, 3);
    assert_string_equal(data, "old");
    free(data);
    assert_false(tu_exists(strcat(path, ".part")));
}

static void test_redirects(void **state)
{
    char u[512], path[PATH_MAX], err[512], http[128], no_scheme[128], https[128];
    struct zos_fetch_opts o = {.ca_file = fx.ca};

    url(http, sizeof http, SRV_HTTP, "big.bin");
    url(https, sizeof https, SRV_TLS, "big.bin");
    tu_sfmt(no_scheme, sizeof no_scheme, "//127.0.0.1:%d/big.bin", fx.port[SRV_HTTP]);
    const struct {
        int code;
        const char *to;
    } cases[] = {
        {302, http},               /* absolute */
        {301, "big.bin"},          /* relative to /redirect */
        {303, "/chunked/big.bin"}, /* an absolute path */
        {307, no_scheme},          /* scheme-relative */
        {308, https},              /* to https, verified with the CA */
        {302, "/with space.bin"},  /* sent as "/with%20space.bin", as browsers do */
    };

    for (size_t i = 0; i < ZOS_ARRAY_LEN(cases); i++) {
        tu_sfmt(u, sizeof u, "http://127.0.0.1:%d/redirect?code=%d&to=%s", fx.port[SRV_HTTP],
                cases[i].code, cases[i].to);
        assert_int_equal(get(u, &o, NULL, path, sizeof path, err, sizeof err), ZOS_OK);
        assert_big(path);
    }

    /* five redirects are followed, the sixth is not */
    url(u, sizeof u, SRV_HTTP, "loop/0");
    assert_int_equal(get(u, NULL, NULL, path, sizeof path, err, sizeof err), ZOS_ERR);
    tu_assert_contains(err, "/loop/5: more than 5 redirects");
    assert_nothing(path);

    url(u, sizeof u, SRV_HTTP, "noloc");
    assert_int_equal(get(u, NULL, NULL, path, sizeof path, err, sizeof err), ZOS_ERR);
    tu_assert_contains(err, "HTTP 302");
    tu_assert_contains(err, "without a Location");
    assert_nothing(path);

    /* a redirect to a missing file: the error names where it ended */
    tu_sfmt(u, sizeof u, "http://127.0.0.1:%d/redirect?code=302&to=/gone.iso", fx.port[SRV_HTTP]);
    assert_int_equal(get(u, NULL, NULL, path, sizeof path, err, sizeof err), ZOS_ERR);
    tu_assert_contains(err, "/gone.iso: HTTP 404");
    assert_nothing(path);
}

/* ---- failures ----------------------------------------------------------- */

static void test_connection_refused(void **state)
{
    char u[256], path[PATH_MAX], err[512];
    int port = tu_free_port();

    tu_sfmt(u, sizeof u, "http://127.0.0.1:%d/big.bin", port);
    assert_int_equal(get(u, NULL, NULL, path, sizeof path, err, sizeof err), ZOS_ERR);
    tu_assert_contains(err, u);
    tu_assert_contains(err, "Connection refused");
    assert_nothing(path);

    tu_sfmt(u, sizeof u, "https://127.0.0.1:%d/big.bin", port);
    assert_int_equal(get(u, NULL, NULL, path, sizeof path, err, sizeof err), ZOS_ERR);
    tu_assert_contains(err, "Connection refused");
    assert_nothing(path);
}

static void test_short_body(void **state)
{
    char u[256], path[PATH_MAX], err[512];

    url(u, sizeof u, SRV_HTTP, "truncate/big.bin");
    assert_int_equal(get(u, NULL, NULL, path, sizeof path, err, sizeof err), ZOS_ERR);
    tu_assert_contains(err, "connection closed after 1500000 of 3000000 bytes");
    assert_nothing(path);
}

static void test_timeouts(void **state)
{
    char u[256], path[PATH_MAX], err[512];
    struct zos_fetch_opts o = {.timeout_s = 1};
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    int64_t t0;
    int fd;

    /* headers and 1000 bytes, then silence */
    url(u, sizeof u, SRV_HTTP, "stall/big.bin");
    t0 = tu_now_ms();
    assert_int_equal(get(u, &o, NULL, path, sizeof path, err, sizeof err), ZOS_ERR);
    assert_true(tu_now_ms() - t0 >= 900); /* not before the 1 s; no upper bound: load */
    tu_assert_contains(err, "timed out");
    assert_nothing(path);

    /* a listener that never accepts: TCP connects (the backlog), nothing answers */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 8), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    tu_sfmt(u, sizeof u, "http://127.0.0.1:%d/big.bin", ntohs(sa.sin_port));
    t0 = tu_now_ms();
    assert_int_equal(get(u, &o, NULL, path, sizeof path, err, sizeof err), ZOS_ERR);
    assert_true(tu_now_ms() - t0 >= 900); /* not before the 1 s; no upper bound: load */
    tu_assert_contains(err, "timed out");
    tu_sfmt(u, sizeof u, "https://127.0.0.1:%d/big.bin", ntohs(sa.sin_port));
    assert_int_equal(get(u, &o, NULL, path, sizeof path, err, sizeof err), ZOS_ERR);
    tu_assert_contains(err, "timed out");
    tu_assert_contains(err, "TLS handshake");
    close(fd);
    assert_nothing(path);
}

static void test_cancel(void **state)
{
    char u[256], path[PATH_MAX], err[512];
    struct record rec = {.cancel_at = 3};

    url(u, sizeof u, SRV_HTTP, "big.bin");
    assert_int_equal(get(u, NULL, &rec, path, sizeof path, err, sizeof err), ZOS_ERR);
    tu_assert_contains(err, "cancelled");
    assert_int_equal(rec.calls, 3);
    assert_nothing(path);
}

static void test_bad_arguments(void **state)
{
    static const struct {
        const char *url, *says;
    } cases[] = {
        {"ftp://127.0.0.1/x", "not an http:// or https:// URL"},
        {"127.0.0.1/x", "not an http:// or https:// URL"},
        {"http:///x", "no host in the URL"},
        {"http://127.0.0.1:99999/x", "not a valid URL"},
        {"http://nonexistent.invalid/x", "cannot resolve 'nonexistent.invalid'"},
    };
    char path[PATH_MAX], err[512], u[256];

    for (size_t i = 0; i < ZOS_ARRAY_LEN(cases); i++) {
        assert_int_equal(get(cases[i].url, NULL, NULL, path, sizeof path, err, sizeof err),
                         ZOS_ERR);
        tu_assert_contains(err, cases[i].url);
        tu_assert_contains(err, cases[i].says);
        assert_nothing(path);
    }

    /* a directory that is not there: said before anything is fetched */
    url(u, sizeof u, SRV_HTTP, "big.bin");
    assert_int_equal(zos_fetch(u, "/nonexistent/dir/zos.iso", NULL, err, sizeof err), ZOS_ERR);
    tu_assert_contains(err, "/nonexistent/dir/zos.iso.part");
    tu_assert_contains(err, "No such file or directory");
}

/* ---- the default bar ---------------------------------------------------- */

/* Without a progress callback, the bar is drawn on stderr when it is a
 * terminal, and nothing at all is written when it is not. */
static void test_default_bar(void **state)
{
    char u[256], path[PATH_MAX], log[PATH_MAX], err[512];
    static char buf[1 << 16];
    int saved = dup(STDERR_FILENO), master, slave, fd;
    size_t len;
    int rc;

    url(u, sizeof u, SRV_HTTP, "big.bin");
    out_path(path, sizeof path);
    tu_sfmt(log, sizeof log, "%s.stderr", path);
    fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    fflush(stderr);
    dup2(fd, STDERR_FILENO);
    rc = zos_fetch(u, path, NULL, err, sizeof err);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(fd);
    assert_int_equal(rc, ZOS_OK);
    assert_big(path);
    struct stat st;
    assert_int_equal(stat(log, &st), 0);
    assert_int_equal(st.st_size, 0);

    /* a reader, or the bar would block on a full pty */
    assert_int_equal(openpty(&master, &slave, NULL, NULL, NULL), 0);
    struct tu_drain d = {master, buf, sizeof buf, 0};
    pthread_t reader;
    assert_int_equal(pthread_create(&reader, NULL, tu_drain_thread, &d), 0);
    out_path(path, sizeof path);
    fflush(stderr);
    dup2(slave, STDERR_FILENO);
    rc = zos_fetch(u, path, NULL, err, sizeof err);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(slave);
    pthread_join(reader, NULL);
    len = d.len;
    close(master);
    close(saved);
    assert_int_equal(rc, ZOS_OK);
    assert_big(path);
    tu_assert_contains(buf, "file.iso");
    tu_assert_contains(buf, "] 100%  2.9/2.9 MiB");
    assert_true(len > 2 && buf[len - 1] == '\n'); /* the line ends at 100% */
}

/* The shared bar for a total that is not known: the amount, and a line
 * ended by zos_bar_end. */
static void test_bar_unknown_total(void **state)
{
    char buf[4096];
    int master, slave;
    size_t len;
    struct zos_bar bar;

    assert_int_equal(openpty(&master, &slave, NULL, NULL, NULL), 0);
    bar = (struct zos_bar){.out = fdopen(slave, "w")};
    zos_bar_draw(&bar, "/x/zos.iso", 0, -1);
    zos_bar_draw(&bar, "/x/zos.iso", 5u << 20, -1);
    zos_bar_end(&bar);
    zos_bar_end(&bar); /* once */
    zos_bar_draw(&bar, "/x/zos.iso", 6u << 20, -1);
    fclose(bar.out);
    len = tu_drain(master, buf, sizeof buf);
    close(master);
    tu_assert_contains(buf, "zos.iso");
    tu_assert_contains(buf, "     5.0 MiB");
    assert_null(strstr(buf, "6.0"));
    assert_true(len > 2 && buf[len - 1] == '\n' && buf[len - 2] != '\n');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_https_with_ca),  cmocka_unit_test(test_https_untrusted),
        cmocka_unit_test(test_https_insecure), cmocka_unit_test(test_http),
        cmocka_unit_test(test_unknown_length), cmocka_unit_test(test_http_404),
        cmocka_unit_test(test_redirects),      cmocka_unit_test(test_connection_refused),
        cmocka_unit_test(test_short_body),     cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_cancel),         cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_default_bar),    cmocka_unit_test(test_bar_unknown_total),
    };

    if (tu_find_fixtures(fx.fixtures, "http_server.py", R_OK) != 0)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
