/* testutil.c -- helpers shared by the unit tests: time, files, child processes, ports. */
#include "testutil.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "zos/resp.h"
#include "zos/zos.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void tu_sfmt(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

int64_t tu_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tu_nap_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* ---- files -------------------------------------------------------------- */

char *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb"), *mem = NULL;
    char *buf = NULL, chunk[65536];
    size_t size = 0, n;
    bool ok = f != NULL && (mem = open_memstream(&buf, &size)) != NULL;

    while (ok && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        ok = fwrite(chunk, 1, n, mem) == n;
    if (f != NULL && ferror(f))
        ok = false;
    if (mem != NULL && fclose(mem) != 0)
        ok = false;
    if (f != NULL)
        fclose(f);
    if (!ok) {
        free(buf);
        buf = NULL;
        size = 0;
    }
    if (len != NULL)
        *len = size;
    return buf;
}

int tu_write_file(const char *path, const void *data, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    if (fd < 0)
        return -1;
    if (write(fd, data, len) != (ssize_t)len || fchmod(fd, mode) < 0) {
        close(fd);
        return -1;
    }
    return close(fd);
}

bool tu_exists(const char *path)
{
    struct stat st;

    return lstat(path, &st) == 0;
}

/* ---- directories -------------------------------------------------------- */

char *tu_mkdtemp(char *buf, size_t len, const char *name)
{
    tu_sfmt(buf, len, "/tmp/zos-test-%s-XXXXXX", name);
    return mkdtemp(buf);
}

static bool rm_failed; /* of the tu_rm_tree under way */

/* Goes on past an entry it cannot remove, as rm -rf does. */
static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    if (remove(path) != 0)
        rm_failed = true;
    return 0;
}

int tu_rm_tree(const char *path)
{
    struct stat st;

    if (lstat(path, &st) != 0 && errno == ENOENT)
        return 0;
    rm_failed = false;
    if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return -1;
    return rm_failed ? -1 : 0;
}

int tu_tmpdir_setup(void **state)
{
    char tmpl[64], *dir = malloc(PATH_MAX);

    if (dir == NULL || tu_mkdtemp(tmpl, sizeof tmpl, "unit") == NULL ||
        realpath(tmpl, dir) == NULL) {
        free(dir);
        return -1;
    }
    *state = dir;
    return 0;
}

int tu_tmpdir_teardown(void **state)
{
    int rc = tu_rm_tree(*state);

    free(*state);
    return rc;
}

int tu_count_fds(void)
{
    int n = 0;

    for (int fd = 0; fd < 1024; fd++)
        n += fcntl(fd, F_GETFD) != -1;
    return n;
}

int tu_find_fixtures(char *dir, const char *probe, int mode)
{
    char exe[PATH_MAX], path[PATH_MAX + 64];
    const char *env = getenv("ZOS_FIXTURES");
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);

    if (env != NULL) {
        snprintf(dir, PATH_MAX, "%s", env);
    } else if (n > 0) {
        exe[n] = '\0';
        for (int i = 0; i < 3 && strrchr(exe, '/'); i++)
            *strrchr(exe, '/') = '\0';
        snprintf(dir, PATH_MAX, "%.*s/tests/fixtures", PATH_MAX - 20, exe);
    }
    snprintf(path, sizeof path, "%s/%s", dir, probe);
    if (access(path, mode) != 0 && realpath("tests/fixtures", dir) == NULL) {
        fprintf(stderr, "%s: cannot find tests/fixtures/%s\n", program_invocation_short_name,
                probe);
        return -1;
    }
    return 0;
}

/* ---- child processes ---------------------------------------------------- */

int tu_run(const char *const argv[])
{
    pid_t pid = tu_spawn(argv, NULL, NULL);
    int st;

    if (pid < 0 || waitpid(pid, &st, 0) < 0)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

pid_t tu_spawn(const char *const argv[], const char *dir, const char *log)
{
    pid_t pid;

    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        int out = log != NULL ? open(log, O_WRONLY | O_CREAT | O_APPEND, 0600) : null;
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive a crashed test */
        dup2(null, STDIN_FILENO);
        dup2(out, STDOUT_FILENO);
        dup2(out, STDERR_FILENO);
        if (dir == NULL || chdir(dir) == 0)
            execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

void tu_stop(pid_t *pid)
{
    int st;

    if (*pid <= 0)
        return;
    kill(*pid, SIGTERM);
    for (int i = 0; i < 250 && waitpid(*pid, &st, WNOHANG) == 0; i++)
        tu_nap_ms(20);
    if (waitpid(*pid, &st, WNOHANG) == 0) {
        kill(*pid, SIGKILL);
        waitpid(*pid, &st, 0);
    }
    *pid = 0;
}

void *tu_drain_thread(void *arg)
{
    struct tu_drain *d = arg;
    char chunk[4096];
    size_t most = d->cap - 1 < sizeof chunk ? d->cap - 1 : sizeof chunk;

    d->len = 0;
    for (struct pollfd pf = {.fd = d->fd, .events = POLLIN}; poll(&pf, 1, 10000) > 0;) {
        ssize_t n = read(d->fd, chunk, most);
        if (n <= 0)
            break;
        if (d->len + (size_t)n >= d->cap) {
            size_t keep = d->cap / 2 > (size_t)n ? d->cap / 2 : 0;
            memmove(d->buf, d->buf + d->len - keep, keep);
            d->len = keep;
        }
        memcpy(d->buf + d->len, chunk, (size_t)n);
        d->len += (size_t)n;
    }
    d->buf[d->len] = '\0';
    return NULL;
}

size_t tu_drain(int fd, char *buf, size_t cap)
{
    struct tu_drain d = {fd, buf, cap, 0};

    tu_drain_thread(&d);
    return d.len;
}

/* ---- ports -------------------------------------------------------------- */

int tu_free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

bool tu_port_open(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;

    if (fd >= 0)
        close(fd);
    return ok;
}

/* ---- data --------------------------------------------------------------- */

void tu_fill_random(void *buf, size_t len)
{
    unsigned char *p = buf;
    uint64_t x = 0x9e3779b97f4a7c15ull;

    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (unsigned char)(x >> 32);
    }
}

/* ---- a scripted node ------------------------------------------------------ */

struct tu_peer {
    struct bufferevent *bev;
    struct zos_resp_parser parser;
    tu_peer_fn fn;
    void *arg;
    char **cmds;
    size_t ncmds, cap;
};

static void peer_record(struct tu_peer *p, const struct zos_resp_argv *av)
{
    size_t len = 1;
    for (size_t i = 0; i < av->argc; i++)
        len += av->argvlen[i] + 1;
    char *line = calloc(1, len), *at = line;
    for (size_t i = 0; line != NULL && i < av->argc; i++) {
        if (i > 0)
            *at++ = ' ';
        memcpy(at, av->argv[i], av->argvlen[i]);
        at += av->argvlen[i];
    }
    if (p->ncmds == p->cap) {
        size_t ncap = p->cap ? p->cap * 2 : 16;
        char **n = realloc(p->cmds, ncap * sizeof(*n));
        if (n == NULL) {
            free(line);
            return;
        }
        p->cmds = n;
        p->cap = ncap;
    }
    p->cmds[p->ncmds++] = line;
}

static void peer_read_cb(struct bufferevent *bev, void *arg)
{
    struct tu_peer *p = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct zos_resp_req req;
    struct zos_resp_argv av;
    char err[128];

    while (zos_resp_parse(&p->parser, in, &req, err, sizeof err) == ZOS_OK) {
        if (zos_resp_argv(in, &req, &av) != ZOS_OK)
            return;
        evbuffer_drain(in, req.len);
        peer_record(p, &av);
        if (p->fn != NULL)
            p->fn(p->arg, p, av.argc, av.argv, av.argvlen);
        zos_resp_argv_free(&av);
    }
}

struct tu_peer *tu_peer_new(struct bufferevent *bev, tu_peer_fn fn, void *arg)
{
    struct tu_peer *p = calloc(1, sizeof(*p));

    if (p == NULL) {
        bufferevent_free(bev);
        return NULL;
    }
    p->bev = bev;
    p->fn = fn;
    p->arg = arg;
    zos_resp_parser_init(&p->parser, NULL);
    bufferevent_setcb(bev, peer_read_cb, NULL, NULL, p);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    return p;
}

void tu_peer_free(struct tu_peer *p)
{
    if (p == NULL)
        return;
    bufferevent_free(p->bev);
    for (size_t i = 0; i < p->ncmds; i++)
        free(p->cmds[i]);
    free(p->cmds);
    free(p);
}

void tu_peer_write(struct tu_peer *p, const void *bytes, size_t len)
{
    bufferevent_write(p->bev, bytes, len);
}

void tu_peer_say(struct tu_peer *p, const char *text)
{
    tu_peer_write(p, text, strlen(text));
}

void tu_peer_close(struct tu_peer *p)
{
    bufferevent_flush(p->bev, EV_WRITE, BEV_FINISHED);
}

size_t tu_peer_count(const struct tu_peer *p)
{
    return p->ncmds;
}

const char *tu_peer_cmd(const struct tu_peer *p, size_t i)
{
    return i < p->ncmds ? p->cmds[i] : NULL;
}

struct bufferevent *tu_peer_bev(struct tu_peer *p)
{
    return p->bev;
}

struct tu_peer *tu_peer_pair(struct event_base *base, struct bufferevent **link_end, tu_peer_fn fn,
                             void *arg)
{
    struct bufferevent *pair[2];

    if (bufferevent_pair_new(base, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS, pair) != 0)
        return NULL;
    *link_end = pair[0];
    return tu_peer_new(pair[1], fn, arg);
}

static void guard_cb(evutil_socket_t fd, short what, void *arg)
{
    *(bool *)arg = true;
}

bool tu_loop_until(struct event_base *base, bool (*done)(void *arg), void *arg)
{
    bool late = false;
    struct timeval tv = {30, 0};
    struct event *guard = evtimer_new(base, guard_cb, &late);

    if (guard == NULL)
        return false;
    evtimer_add(guard, &tv);
    while (!done(arg) && !late)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(guard);
    return !late;
}

void tu_loop_settle(struct event_base *base)
{
    /* Deferred callbacks run one hop per loop turn; each hop may activate
     * the next.  The bound only stops a livelock. */
    for (int i = 0; i < 100000; i++) {
        event_base_loop(base, EVLOOP_NONBLOCK);
        if (event_base_get_num_events(base, EVENT_BASE_COUNT_ACTIVE) == 0)
            break;
    }
}
