/* proc.c -- child processes: fork/execvp, stdout and stderr on pipes, the exit status.
 *
 * The blocking runner polls the two pipes and waitpid(WNOHANG) in turn; the
 * asynchronous one watches the pipes with libevent and reaps on a timer (see
 * proc.h for why not SIGCHLD).  Both start the child through spawn_child,
 * which reports an exec failure through a close-on-exec pipe.
 */
#include "zos/proc.h"
#include "zos/zos.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define OUT_MAX (4u << 20) /* bytes kept per stream; the programs we run say far less */

/* ---- output buffers ------------------------------------------------------ */

struct buf {
    char *p;
    size_t len, cap;
};

/* Appends N bytes; past OUT_MAX or when out of memory the rest is dropped. */
static void buf_add(struct buf *b, const char *data, size_t n)
{
    if (n > OUT_MAX - b->len)
        n = OUT_MAX - b->len;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL)
            return;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* Hands the text over ("" when nothing was read; NULL only when out of memory). */
static char *buf_take(struct buf *b)
{
    char *p = b->p ? b->p : strdup("");
    memset(b, 0, sizeof *b);
    return p;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

void zos_proc_result_clear(struct zos_proc_result *r)
{
    free(r->out);
    free(r->err);
    memset(r, 0, sizeof *r);
}

/* ---- child processes -------------------------------------------------- */

struct child {
    pid_t pid;
    int out, err; /* read ends, non-blocking */
};

/* Exit status as a shell reports it. */
static int status_of(int wstatus)
{
    if (WIFEXITED(wstatus))
        return WEXITSTATUS(wstatus);
    if (WIFSIGNALED(wstatus))
        return 128 + WTERMSIG(wstatus);
    return -1;
}

/* 1: reaped (WSTATUS valid), 0: still running, -1: gone without a status
 * (SIGCHLD ignored, or reaped by someone else). */
static int reap(pid_t pid, int *wstatus, int flags)
{
    for (;;) {
        pid_t r = waitpid(pid, wstatus, flags);
        if (r == pid)
            return 1;
        if (r == 0)
            return 0;
        if (errno != EINTR)
            return -1;
    }
}

/* In the child, between fork and exec: only async-signal-safe calls. */
static void child_exec(char *const argv[], int outw, int errw, int statw)
{
    int fds[4] = {open("/dev/null", O_RDONLY), outw, errw, statw};
    /* Move everything above 3 first so the dup2s below clobber nothing we need
     * (a parent with fd 0-2 closed gets pipe ends there). */
    for (int i = 0; i < 4; i++)
        fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 10);
    for (int i = 0; i < 4; i++)
        dup2(fds[i], i);
    fcntl(3, F_SETFD, FD_CLOEXEC); /* the exec-status pipe closes on a good exec */
    if (syscall(SYS_close_range, 4U, ~0U, 0U) != 0) {
        struct rlimit rl;
        long max = 4096;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 65536)
            max = (long)rl.rlim_cur;
        for (long fd = 4; fd < max; fd++)
            close((int)fd);
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigaction(SIGPIPE, &sa, NULL); /* the proxy ignores it; children must not inherit that */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execvp(argv[0], argv);
    int e = errno;
    ssize_t w = write(3, &e, sizeof e);
    (void)w;
    _exit(127);
}

/* Starts ARGV with its stdout and stderr on pipes.  An exec failure is
 * reported here (through a close-on-exec pipe), not as exit status 127. */
static int spawn_child(char *const argv[], struct child *c, char *err, size_t errlen)
{
    int out[2] = {-1, -1}, errp[2] = {-1, -1}, st[2] = {-1, -1};
    int rc = ZOS_ERR, e = 0;
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(errp, O_CLOEXEC) != 0 || pipe2(st, O_CLOEXEC) != 0) {
        snprintf(err, errlen, "cannot run '%s': pipe: %s", argv[0], strerror(errno));
        goto done;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "cannot run '%s': fork: %s", argv[0], strerror(errno));
        goto done;
    }
    if (pid == 0)
        child_exec(argv, out[1], errp[1], st[1]);
    close_fd(&out[1]);
    close_fd(&errp[1]);
    close_fd(&st[1]);
    ssize_t n;
    do
        n = read(st[0], &e, sizeof e);
    while (n < 0 && errno == EINTR);
    if (n == (ssize_t)sizeof e) {
        int ws;
        reap(pid, &ws, 0);
        snprintf(err, errlen, "cannot run '%s': %s", argv[0], strerror(e));
        goto done;
    }
    fcntl(out[0], F_SETFL, fcntl(out[0], F_GETFL) | O_NONBLOCK);
    fcntl(errp[0], F_SETFL, fcntl(errp[0], F_GETFL) | O_NONBLOCK);
    c->pid = pid;
    c->out = out[0];
    c->err = errp[0];
    out[0] = errp[0] = -1;
    rc = ZOS_OK;
done:
    close_fd(&out[0]);
    close_fd(&out[1]);
    close_fd(&errp[0]);
    close_fd(&errp[1]);
    close_fd(&st[0]);
    close_fd(&st[1]);
    return rc;
}

/* Reads what FD has into B.  True while the pipe stays open. */
static bool drain(int fd, struct buf *b)
{
    char chunk[4096];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n > 0) {
            buf_add(b, chunk, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
}

int zos_proc_exec(void *arg, char *const argv[], struct zos_proc_result *res, char *err,
                  size_t errlen)
{
    (void)arg;
    struct child c;
    struct buf b[2] = {{0}};
    if (spawn_child(argv, &c, err, errlen) != 0)
        return ZOS_ERR;
    int fds[2] = {c.out, c.err}, ws = 0, reaped = 0, idle = 0;
    while (fds[0] >= 0 || fds[1] >= 0) {
        struct pollfd p[2];
        int map[2];
        nfds_t n = 0;
        for (int i = 0; i < 2; i++) {
            if (fds[i] >= 0) {
                p[n] = (struct pollfd){.fd = fds[i], .events = POLLIN};
                map[n++] = i;
            }
        }
        int r = poll(p, n, 100);
        for (nfds_t k = 0; r > 0 && k < n; k++) {
            if (p[k].revents != 0 && !drain(p[k].fd, &b[map[k]]))
                close_fd(&fds[map[k]]);
        }
        if (reaped == 0)
            reaped = reap(c.pid, &ws, WNOHANG);
        /* Exited: what it wrote is in the pipes and drained by now.  Pipes
         * still open after that belong to a grandchild that inherited them. */
        if (reaped != 0 && ++idle >= 3)
            break;
    }
    close_fd(&fds[0]);
    close_fd(&fds[1]);
    if (reaped == 0)
        reaped = reap(c.pid, &ws, 0);
    res->status = reaped == 1 ? status_of(ws) : -1;
    res->out = buf_take(&b[0]);
    res->err = buf_take(&b[1]);
    return ZOS_OK;
}

/* ---- the asynchronous runner ------------------------------------------ */

struct zos_proc {
    pid_t pid;
    int fd[2];
    struct event *ev[2];
    struct event *tick;
    struct buf b[2];
    int reaped; /* as reap() */
    int wstatus;
    int tick_ms;
    int idle_ticks;
    zos_proc_fn fn;
    void *arg;
};

static void proc_free(struct zos_proc *p)
{
    for (int i = 0; i < 2; i++) {
        if (p->ev[i] != NULL)
            event_free(p->ev[i]);
        close_fd(&p->fd[i]);
        free(p->b[i].p);
    }
    if (p->tick != NULL)
        event_free(p->tick);
    free(p);
}

static void proc_finish(struct zos_proc *p)
{
    struct zos_proc_result res = {0};
    const char *err = NULL;
    for (int i = 0; i < 2; i++) {
        if (p->fd[i] >= 0)
            drain(p->fd[i], &p->b[i]);
    }
    res.status = p->reaped == 1 ? status_of(p->wstatus) : -1;
    res.out = buf_take(&p->b[0]);
    res.err = buf_take(&p->b[1]);
    if (p->reaped < 0)
        err = "exit status unavailable (is SIGCHLD ignored?)";
    if (res.out == NULL || res.err == NULL)
        err = "out of memory";
    p->fn(p->arg, &res, err);
    zos_proc_result_clear(&res);
    proc_free(p);
}

/* Reaps when it can; finishes once the child is gone and its pipes are
 * closed (or have stayed open for two ticks after it exited). */
static void proc_check(struct zos_proc *p)
{
    if (p->reaped == 0)
        p->reaped = reap(p->pid, &p->wstatus, WNOHANG);
    bool open = p->fd[0] >= 0 || p->fd[1] >= 0;
    if (p->reaped != 0 && (!open || ++p->idle_ticks > 2)) {
        proc_finish(p);
        return;
    }
    int ms = 250;
    if (!open) { /* pipes closed: the exit is imminent, look again soon */
        ms = p->tick_ms;
        p->tick_ms = p->tick_ms < 50 ? p->tick_ms * 2 : 100;
    }
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(p->tick, &tv);
}

static void proc_on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    proc_check(arg);
}

static void proc_on_pipe(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct zos_proc *p = arg;
    int i = fd == p->fd[0] ? 0 : 1;
    if (drain(fd, &p->b[i]))
        return;
    event_free(p->ev[i]);
    p->ev[i] = NULL;
    close_fd(&p->fd[i]);
    if (p->fd[0] < 0 && p->fd[1] < 0) {
        p->tick_ms = 1;
        proc_check(p);
    }
}

struct zos_proc *zos_proc_spawn(struct event_base *base, char *const argv[], zos_proc_fn fn,
                                void *arg, char *err, size_t errlen)
{
    struct child c;
    struct zos_proc *p = calloc(1, sizeof *p);
    if (p == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->fd[0] = p->fd[1] = -1;
    if (spawn_child(argv, &c, err, errlen) != 0) {
        free(p);
        return NULL;
    }
    p->pid = c.pid;
    p->fd[0] = c.out;
    p->fd[1] = c.err;
    p->fn = fn;
    p->arg = arg;
    p->tick = evtimer_new(base, proc_on_tick, p);
    for (int i = 0; i < 2; i++)
        p->ev[i] = event_new(base, p->fd[i], EV_READ | EV_PERSIST, proc_on_pipe, p);
    if (p->tick == NULL || p->ev[0] == NULL || p->ev[1] == NULL || event_add(p->ev[0], NULL) ||
        event_add(p->ev[1], NULL)) {
        snprintf(err, errlen, "cannot watch '%s': out of memory", argv[0]);
        zos_proc_cancel(p);
        return NULL;
    }
    struct timeval tv = {0, 250000};
    evtimer_add(p->tick, &tv);
    return p;
}

void zos_proc_cancel(struct zos_proc *p)
{
    if (p == NULL)
        return;
    if (p->reaped == 0) {
        kill(p->pid, SIGKILL);
        reap(p->pid, &p->wstatus, 0);
    }
    proc_free(p);
}

/* ---- programs and command lines ---------------------------------------- */

static bool executable(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

bool zos_proc_which(const char *prog, char *path, size_t len)
{
    if (strchr(prog, '/') != NULL)
        return snprintf(path, len, "%s", prog) < (int)len && executable(path);
    const char *env = getenv("PATH");
    char cwd[PATH_MAX];
    if (env == NULL)
        env = "/bin:/usr/bin"; /* what execvp uses */
    if (getcwd(cwd, sizeof cwd) == NULL)
        snprintf(cwd, sizeof cwd, ".");
    for (const char *s = env; s != NULL; s = strchr(s, ':') ? strchr(s, ':') + 1 : NULL) {
        /* "" means "."; relative entries are made absolute, but symlinks are
         * kept: VirtualBox's wrapper script dispatches on its own name. */
        int n = (int)strcspn(s, ":");
        const char *dir = n > 0 ? s : ".";
        n = n > 0 ? n : 1;
        int w = dir[0] == '/' ? snprintf(path, len, "%.*s/%s", n, dir, prog)
                              : snprintf(path, len, "%s/%.*s/%s", cwd, n, dir, prog);
        if (w > 0 && (size_t)w < len && executable(path))
            return true;
    }
    return false;
}

void zos_proc_argv_free(char **argv)
{
    for (size_t i = 0; argv != NULL && argv[i] != NULL; i++)
        free(argv[i]);
    free(argv);
}

/* Appends N bytes of S at *OFF, as much as fits in LEN (NUL-terminated). */
static void put(char *buf, size_t len, size_t *off, const char *s, size_t n)
{
    if (n > len - 1 - *off)
        n = len - 1 - *off;
    memcpy(buf + *off, s, n);
    *off += n;
    buf[*off] = '\0';
}

/* ARGV as a person would type it: basename of argv[0], shell-quoted words. */
void zos_proc_argv_text(char *const argv[], char *buf, size_t len)
{
    static const char safe[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                               "0123456789_./:,=@%+-";
    size_t off = 0;
    buf[0] = '\0';
    for (int i = 0; argv[i] != NULL; i++) {
        const char *a = argv[i];
        if (i == 0 && strrchr(a, '/') != NULL)
            a = strrchr(a, '/') + 1;
        if (i > 0)
            put(buf, len, &off, " ", 1);
        if (*a != '\0' && strspn(a, safe) == strlen(a)) {
            put(buf, len, &off, a, strlen(a));
            continue;
        }
        put(buf, len, &off, "'", 1);
        for (const char *p = a; *p; p++)
            put(buf, len, &off, *p == '\'' ? "'\\''" : p, *p == '\'' ? 4 : 1);
        put(buf, len, &off, "'", 1);
    }
}
