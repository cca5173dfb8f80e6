/* vbox.c -- a local Zero-OS VM: VBoxManage command sequences, child processes, qemu.
 *
 *   zos_vbox_create() ----.                      .--> vb->run (fork/execvp, waits)
 *                         +--> struct op: step() +
 *   zos_vbox_submit() ----'   argv <- result     '--> zos_vbox_spawn (libevent, no SIGCHLD)
 *
 * Each operation is a chain of small step functions: a step looks at the
 * result of the command it asked for and either asks for the next command
 * (STEP_RUN, argv in op->argv), asks to be called again later (STEP_WAIT) or
 * ends the operation (STEP_DONE, rc and err in the op).  Writing the
 * sequences once this way lets the CLI (blocking) and the proxy (event loop)
 * run exactly the same commands.
 */
#include "zos/vbox.h"
#include "zos/zos.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define OUT_MAX          (4u << 20) /* bytes kept per stream; VBoxManage says far less */
#define MAX_ARGS         40
#define UNREGISTER_TRIES 20  /* x UNREGISTER_WAIT: the session lock outlives poweroff a bit */
#define UNREGISTER_WAIT  500 /* ms */
#define VMS_DIR          "VirtualBox VMs"
#define HOSTONLY_IF      "vboxnet0"

/* ---- small helpers ----------------------------------------------------- */

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

void zos_vbox_result_clear(struct zos_vbox_result *r)
{
    free(r->out);
    free(r->err);
    memset(r, 0, sizeof *r);
}

/* The next line of *TEXT (without "\n" or "\r\n") in LINE/LEN; false at the end. */
static bool next_line(const char **text, const char **line, size_t *len)
{
    const char *s = *text;
    if (s == NULL || *s == '\0')
        return false;
    const char *eol = strchr(s, '\n');
    size_t n = eol ? (size_t)(eol - s) : strlen(s);
    *text = eol ? eol + 1 : s + n;
    if (n > 0 && s[n - 1] == '\r')
        n--;
    *line = s;
    *len = n;
    return true;
}

static bool starts_with(const char *s, size_t n, const char *prefix)
{
    size_t p = strlen(prefix);
    return n >= p && memcmp(s, prefix, p) == 0;
}

/* Trims blanks around S/N in place (moves *S, shrinks *N). */
static void trim(const char **s, size_t *n)
{
    while (*n > 0 && (**s == ' ' || **s == '\t')) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
        (*n)--;
}

static void copy_field(char *dst, size_t cap, const char *s, size_t n)
{
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, s, n);
    dst[n] = '\0';
}

/* A progress line of VBoxManage: "0%...10%...100%". */
static bool is_progress(const char *s, size_t n)
{
    return n > 0 && s[0] >= '0' && s[0] <= '9' && memmem(s, n, "%...", 4) != NULL;
}

/* The line of TEXT worth quoting in an error: the first that mentions
 * "error", else the first one with something in it that is not progress. */
static bool pick_line(const char *text, char *buf, size_t len)
{
    const char *line, *it = text;
    size_t n;
    while (next_line(&it, &line, &n)) {
        if (memmem(line, n, "error", 5) != NULL) {
            trim(&line, &n);
            copy_field(buf, len, line, n);
            return true;
        }
    }
    for (it = text; next_line(&it, &line, &n);) {
        trim(&line, &n);
        if (n > 0 && !is_progress(line, n)) {
            copy_field(buf, len, line, n);
            return true;
        }
    }
    return false;
}

/* The first meaningful line of a failed command's stderr, else stdout. */
static void first_line(const struct zos_vbox_result *r, char *buf, size_t len)
{
    if (!pick_line(r->err, buf, len) && !pick_line(r->out, buf, len))
        snprintf(buf, len, "no output");
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
static void argv_display(char *const argv[], char *buf, size_t len)
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

/* A VM name we can put in an argv and a path: see vbox.h. */
static bool valid_name(const char *name, char *err, size_t errlen)
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

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
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

/* mkdir -p PATH with MODE for the directories it makes. */
static int mkdir_p(const char *path, mode_t mode)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, mode) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(tmp, mode) != 0 && errno != EEXIST ? -1 : 0;
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

int zos_vbox_exec(void *arg, char *const argv[], struct zos_vbox_result *res, char *err,
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

struct zos_vbox_proc {
    pid_t pid;
    int fd[2];
    struct event *ev[2];
    struct event *tick;
    struct buf b[2];
    int reaped; /* as reap() */
    int wstatus;
    int tick_ms;
    int idle_ticks;
    zos_vbox_proc_fn fn;
    void *arg;
};

static void proc_free(struct zos_vbox_proc *p)
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

static void proc_finish(struct zos_vbox_proc *p)
{
    struct zos_vbox_result res = {0};
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
    zos_vbox_result_clear(&res);
    proc_free(p);
}

/* Reaps when it can; finishes once the child is gone and its pipes are
 * closed (or have stayed open for two ticks after it exited). */
static void proc_check(struct zos_vbox_proc *p)
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
    struct zos_vbox_proc *p = arg;
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

struct zos_vbox_proc *zos_vbox_spawn(struct event_base *base, char *const argv[],
                                     zos_vbox_proc_fn fn, void *arg, char *err, size_t errlen)
{
    struct child c;
    struct zos_vbox_proc *p = calloc(1, sizeof *p);
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
        zos_vbox_proc_cancel(p);
        return NULL;
    }
    struct timeval tv = {0, 250000};
    evtimer_add(p->tick, &tv);
    return p;
}

void zos_vbox_proc_cancel(struct zos_vbox_proc *p)
{
    if (p == NULL)
        return;
    if (p->reaped == 0) {
        kill(p->pid, SIGKILL);
        reap(p->pid, &p->wstatus, 0);
    }
    proc_free(p);
}

/* ---- finding VBoxManage ----------------------------------------------- */

static bool executable(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

bool zos_vbox_which(const char *prog, char *path, size_t len)
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

int zos_vbox_init(struct zos_vbox *vb, const char *home, char *err, size_t errlen)
{
    memset(vb, 0, sizeof *vb);
    vb->run = zos_vbox_exec;
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
    if (!zos_vbox_which("VBoxManage", vb->bin, sizeof vb->bin) &&
        !zos_vbox_which("vboxmanage", vb->bin, sizeof vb->bin)) {
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

/* ---- parsing VBoxManage output ------------------------------------------ */

void zos_vbox_list_clear(struct zos_vbox_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->vms[i].name);
    free(l->vms);
    memset(l, 0, sizeof *l);
}

/* One line: "name" {uuid}.  The name is everything between the first quote
 * and the last '" {', so names with quotes and braces survive. */
static int parse_list_line(const char *s, size_t n, struct zos_vbox_list *l)
{
    while (n > 0 && s[n - 1] == ' ')
        n--;
    if (n < 5 || s[0] != '"' || s[n - 1] != '}')
        return ZOS_OK;
    const char *open = memrchr(s, '{', n);
    if (open == NULL || open - s < 3 || open[-1] != ' ' || open[-2] != '"')
        return ZOS_OK;
    size_t ulen = (size_t)(s + n - 1 - (open + 1));
    if (ulen == 0 || ulen >= sizeof l->vms[0].uuid)
        return ZOS_OK;
    struct zos_vbox_vm *vms = realloc(l->vms, (l->n + 1) * sizeof *vms);
    if (vms == NULL)
        return ZOS_ERR;
    l->vms = vms;
    struct zos_vbox_vm *vm = &vms[l->n];
    vm->name = strndup(s + 1, (size_t)(open - 2 - (s + 1)));
    if (vm->name == NULL)
        return ZOS_ERR;
    copy_field(vm->uuid, sizeof vm->uuid, open + 1, ulen);
    l->n++;
    return ZOS_OK;
}

int zos_vbox_parse_list(const char *text, struct zos_vbox_list *l)
{
    const char *line;
    size_t n;
    while (next_line(&text, &line, &n)) {
        if (parse_list_line(line, n, l) != ZOS_OK)
            return ZOS_ERR;
    }
    return ZOS_OK;
}

const struct zos_vbox_vm *zos_vbox_list_find(const struct zos_vbox_list *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->vms[i].name, name) == 0)
            return &l->vms[i];
    }
    return NULL;
}

void zos_vbox_info_clear(struct zos_vbox_info *i)
{
    free(i->fwd);
    memset(i, 0, sizeof *i);
}

bool zos_vbox_info_running(const struct zos_vbox_info *i)
{
    return strncmp(i->state, "running", 7) == 0;
}

/* Running, paused or stuck: a session holds the VM until it is powered off. */
static bool needs_poweroff(const struct zos_vbox_info *i)
{
    return zos_vbox_info_running(i) || strncmp(i->state, "paused", 6) == 0 ||
           strncmp(i->state, "stuck", 5) == 0;
}

/* One "key = value" of a rule into F. */
static void rule_field(struct zos_vbox_fwd *f, const char *s, size_t n)
{
    const char *eq = memmem(s, n, "=", 1);
    if (eq == NULL)
        return;
    const char *k = s, *v = eq + 1;
    size_t kn = (size_t)(eq - s), vn = n - kn - 1;
    trim(&k, &kn);
    trim(&v, &vn);
    char val[64];
    copy_field(val, sizeof val, v, vn);
    if (kn == 4 && memcmp(k, "name", 4) == 0)
        copy_field(f->name, sizeof f->name, v, vn);
    else if (kn == 8 && memcmp(k, "protocol", 8) == 0)
        copy_field(f->proto, sizeof f->proto, v, vn);
    else if (kn == 7 && memcmp(k, "host ip", 7) == 0)
        copy_field(f->host_ip, sizeof f->host_ip, v, vn);
    else if (kn == 9 && memcmp(k, "host port", 9) == 0)
        f->host_port = atoi(val);
    else if (kn == 8 && memcmp(k, "guest ip", 8) == 0)
        copy_field(f->guest_ip, sizeof f->guest_ip, v, vn);
    else if (kn == 10 && memcmp(k, "guest port", 10) == 0)
        f->guest_port = atoi(val);
}

/* "NIC 1 Rule(0):   name = redis, protocol = tcp, host ip = , host port = 4444, ..." */
static int parse_rule(const char *s, size_t n, struct zos_vbox_info *info)
{
    const char *p = memmem(s, n, "):", 2);
    if (p == NULL)
        return ZOS_OK;
    struct zos_vbox_fwd f;
    memset(&f, 0, sizeof f);
    f.nic = atoi(s + 4);
    const char *end = s + n;
    for (p += 2; p < end;) {
        const char *sep = memmem(p, (size_t)(end - p), ", ", 2);
        const char *fe = sep ? sep : end;
        rule_field(&f, p, (size_t)(fe - p));
        p = sep ? sep + 2 : end;
    }
    struct zos_vbox_fwd *fwd = realloc(info->fwd, (info->nfwd + 1) * sizeof *fwd);
    if (fwd == NULL)
        return ZOS_ERR;
    info->fwd = fwd;
    fwd[info->nfwd++] = f;
    return ZOS_OK;
}

int zos_vbox_parse_info(const char *text, struct zos_vbox_info *i)
{
    const char *line;
    size_t n;
    while (next_line(&text, &line, &n)) {
        if (starts_with(line, n, "State:")) {
            const char *v = line + 6;
            size_t vn = n - 6;
            const char *since = memmem(v, vn, "(since", 6);
            if (since != NULL)
                vn = (size_t)(since - v);
            trim(&v, &vn);
            copy_field(i->state, sizeof i->state, v, vn);
        } else if (starts_with(line, n, "NIC ") && memmem(line, n, " Rule(", 6) != NULL) {
            if (parse_rule(line, n, i) != ZOS_OK)
                return ZOS_ERR;
        }
    }
    return ZOS_OK;
}

/* Does `list hostonlyifs` list NAME? ("Name:            vboxnet0") */
static bool lists_iface(const char *text, const char *name)
{
    const char *line;
    size_t n;
    while (next_line(&text, &line, &n)) {
        if (!starts_with(line, n, "Name:"))
            continue;
        const char *v = line + 5;
        size_t vn = n - 5;
        trim(&v, &vn);
        if (vn == strlen(name) && memcmp(v, name, vn) == 0)
            return true;
    }
    return false;
}

/* ---- operations as chains of steps -------------------------------------- */

enum { STEP_RUN, STEP_WAIT, STEP_DONE };

struct op;
/* Looks at R, the result of the command the previous step asked for (NULL
 * when a step is entered directly or after a wait); returns STEP_*. */
typedef int (*step_fn)(struct op *op, const struct zos_vbox_result *r);

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
    struct zos_vbox_list vms;
    size_t scan;   /* next VM of vms whose forwards to look at */
    char uuid[40]; /* the VM acted on ("" when not registered) */
    struct zos_vbox_info info;
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
    zos_vbox_list_clear(&op->vms);
    zos_vbox_info_clear(&op->info);
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
static int fail_cmd(struct op *op, const struct zos_vbox_result *r)
{
    char line[512], cmdline[600];
    first_line(r, line, sizeof line);
    argv_display(op->argv, cmdline, sizeof cmdline);
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
static int last_done(struct op *op, const struct zos_vbox_result *r)
{
    return r->status != 0 ? fail_cmd(op, r) : done_ok(op);
}

static int rolled_back(struct op *op, const struct zos_vbox_result *r)
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
static int take_info(struct op *op, const struct zos_vbox_result *r)
{
    zos_vbox_info_clear(&op->info);
    return zos_vbox_parse_info(r->out, &op->info);
}

/* find: list vms, op->uuid of op->name, then op->then(NULL). */
static int find_listed(struct op *op, const struct zos_vbox_result *r)
{
    if (r->status != 0)
        return fail_cmd(op, r);
    zos_vbox_list_clear(&op->vms);
    if (zos_vbox_parse_list(r->out, &op->vms) != ZOS_OK)
        return fail(op, ZOS_ERR, "out of memory");
    const struct zos_vbox_vm *vm = zos_vbox_list_find(&op->vms, op->name);
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
static int list_got(struct op *op, const struct zos_vbox_result *r)
{
    if (r->status != 0)
        return fail_cmd(op, r);
    zos_vbox_list_clear(&op->vms);
    if (zos_vbox_parse_list(r->out, &op->vms) != ZOS_OK)
        return fail(op, ZOS_ERR, "out of memory");
    return done_ok(op);
}

static int list_begin(struct op *op, const struct zos_vbox_result *r)
{
    (void)r;
    return cmd(op, list_got, "list", "vms", NULL);
}

/* INFO */
static int info_got(struct op *op, const struct zos_vbox_result *r)
{
    if (r->status != 0)
        return fail_cmd(op, r);
    if (take_info(op, r) != ZOS_OK)
        return fail(op, ZOS_ERR, "out of memory");
    return done_ok(op);
}

static int info_found(struct op *op, const struct zos_vbox_result *r)
{
    (void)r;
    return cmd(op, info_got, "showvminfo", op->uuid, NULL);
}

static int info_begin(struct op *op, const struct zos_vbox_result *r)
{
    (void)r;
    return find(op, info_found);
}

/* START: headless unless asked for a window and there is a display. */
static int start_info(struct op *op, const struct zos_vbox_result *r)
{
    if (r->status != 0)
        return fail_cmd(op, r);
    if (take_info(op, r) != ZOS_OK)
        return fail(op, ZOS_ERR, "out of memory");
    if (zos_vbox_info_running(&op->info))
        return done_ok(op);
    const char *display = getenv("DISPLAY");
    bool gui = op->vb.gui && display != NULL && *display != '\0';
    return cmd(op, last_done, "startvm", op->uuid, "--type", gui ? "gui" : "headless", NULL);
}

static int start_found(struct op *op, const struct zos_vbox_result *r)
{
    (void)r;
    return cmd(op, start_info, "showvminfo", op->uuid, NULL);
}

static int start_begin(struct op *op, const struct zos_vbox_result *r)
{
    (void)r;
    return find(op, start_found);
}

/* STOP */
static int stop_info(struct op *op, const struct zos_vbox_result *r)
{
    if (r->status != 0)
        return fail_cmd(op, r);
    if (take_info(op, r) != ZOS_OK)
        return fail(op, ZOS_ERR, "out of memory");
    if (!needs_poweroff(&op->info))
        return done_ok(op);
    return cmd(op, last_done, "controlvm", op->uuid, "poweroff", NULL);
}

static int stop_found(struct op *op, const struct zos_vbox_result *r)
{
    (void)r;
    return cmd(op, stop_info, "showvminfo", op->uuid, NULL);
}

static int stop_begin(struct op *op, const struct zos_vbox_result *r)
{
    (void)r;
    return find(op, stop_found);
}

/* DELETE (and the middle of RESET): the original's vmDelete. */
static int create_scanned(struct op *op, const struct zos_vbox_result *r);

static int delete_files(struct op *op, const struct zos_vbox_result *r)
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

static int delete_unregister(struct op *op, const struct zos_vbox_result *r);

static int delete_unregistered(struct op *op, const struct zos_vbox_result *r)
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
static int delete_unregister(struct op *op, const struct zos_vbox_result *r)
{
    if (r != NULL && r->status != 0)
        return fail_cmd(op, r);
    return cmd(op, delete_unregistered, "unregistervm", op->uuid, "--delete", NULL);
}

static int delete_info(struct op *op, const struct zos_vbox_result *r)
{
    if (r->status != 0)
        return fail_cmd(op, r);
    if (take_info(op, r) != ZOS_OK)
        return fail(op, ZOS_ERR, "out of memory");
    if (needs_poweroff(&op->info))
        return cmd(op, delete_unregister, "controlvm", op->uuid, "poweroff", NULL);
    return delete_unregister(op, NULL);
}

static int delete_found(struct op *op, const struct zos_vbox_result *r)
{
    (void)r;
    if (op->uuid[0] == '\0') /* RESET of an unregistered VM: only its directory */
        return delete_files(op, NULL);
    return cmd(op, delete_info, "showvminfo", op->uuid, NULL);
}

static int delete_begin(struct op *op, const struct zos_vbox_result *r)
{
    (void)r;
    return find(op, delete_found);
}

/* The port scan: showvminfo of every VM but op->except, then op->then. */
static int scan_got(struct op *op, const struct zos_vbox_result *r);

static int scan_next(struct op *op)
{
    while (op->scan < op->vms.n) {
        const struct zos_vbox_vm *vm = &op->vms.vms[op->scan++];
        if (op->except != NULL && strcmp(vm->name, op->except) == 0)
            continue;
        return cmd(op, scan_got, "showvminfo", vm->uuid, NULL);
    }
    return op->then(op, NULL);
}

/* A VM that cannot be shown (inaccessible) forwards nothing we can know of. */
static int scan_got(struct op *op, const struct zos_vbox_result *r)
{
    if (r->status == 0 && take_info(op, r) != ZOS_OK)
        return fail(op, ZOS_ERR, "out of memory");
    for (size_t i = 0; r->status == 0 && i < op->info.nfwd; i++) {
        const struct zos_vbox_fwd *f = &op->info.fwd[i];
        if (f->host_port == op->port && strcasecmp(f->proto, "udp") != 0)
            return fail(op, ZOS_VBOX_CONFLICT, "port %d already taken by VM '%s'", op->port,
                        op->vms.vms[op->scan - 1].name);
    }
    return scan_next(op);
}

static int scan_listed(struct op *op, const struct zos_vbox_result *r)
{
    if (r->status != 0)
        return fail_cmd(op, r);
    zos_vbox_list_clear(&op->vms);
    if (zos_vbox_parse_list(r->out, &op->vms) != ZOS_OK)
        return fail(op, ZOS_ERR, "out of memory");
    if (op->must_be_new && zos_vbox_list_find(&op->vms, op->name) != NULL)
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

static int create_dvd(struct op *op, const struct zos_vbox_result *r)
{
    if (r->status != 0)
        return fail_cmd(op, r);
    return cmd(op, last_done, "storageattach", op->name, "--storagectl", "IDE Controller", "--port",
               "0", "--device", "0", "--type", "dvddrive", "--medium", op->iso, NULL);
}

static int create_ide(struct op *op, const struct zos_vbox_result *r)
{
    if (r != NULL && r->status != 0)
        return fail_cmd(op, r);
    return cmd(op, create_dvd, "storagectl", op->name, "--name", "IDE Controller", "--add", "ide",
               NULL);
}

static int create_sata_attach(struct op *op, const struct zos_vbox_result *r)
{
    if (r->status != 0)
        return fail_cmd(op, r);
    char vdi[PATH_MAX];
    vdi_path(op, vdi, sizeof vdi);
    return cmd(op, create_ide, "storageattach", op->name, "--storagectl", "SATA Controller",
               "--port", "0", "--device", "0", "--type", "hdd", "--medium", vdi, NULL);
}

/* As the original, a disk that could not be made because it exists is used. */
static int create_sata(struct op *op, const struct zos_vbox_result *r)
{
    char vdi[PATH_MAX];
    vdi_path(op, vdi, sizeof vdi);
    if (r->status != 0 && access(vdi, F_OK) != 0)
        return fail_cmd(op, r);
    return cmd(op, create_sata_attach, "storagectl", op->name, "--name", "SATA Controller", "--add",
               "sata", "--controller", "IntelAHCI", NULL);
}

static int create_listed(struct op *op, const struct zos_vbox_result *r)
{
    if (r->status != 0)
        return fail_cmd(op, r);
    zos_vbox_list_clear(&op->vms);
    if (zos_vbox_parse_list(r->out, &op->vms) != ZOS_OK)
        return fail(op, ZOS_ERR, "out of memory");
    if (zos_vbox_list_find(&op->vms, op->name) == NULL)
        return fail(op, ZOS_ERR, "VM '%s' is not registered after createvm", op->name);
    if (op->disk_mb <= 0)
        return create_ide(op, NULL);
    char vdi[PATH_MAX], mb[16];
    vdi_path(op, vdi, sizeof vdi);
    snprintf(mb, sizeof mb, "%d", op->disk_mb);
    return cmd(op, create_sata, "createmedium", "disk", "--filename", vdi, "--size", mb, "--format",
               "VDI", NULL);
}

static int create_relist(struct op *op, const struct zos_vbox_result *r)
{
    if (r->status != 0)
        return fail_cmd(op, r);
    return cmd(op, create_listed, "list", "vms", NULL);
}

static int create_modify(struct op *op, const struct zos_vbox_result *r)
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
static int create_vm(struct op *op, const struct zos_vbox_result *r)
{
    (void)r;
    char base[PATH_MAX];
    fmt_path(base, sizeof base, "%s/" VMS_DIR, op->vb.home);
    return cmd(op, create_modify, "createvm", "--name", op->name, "--ostype", "Linux_64",
               "--register", "--basefolder", base, NULL);
}

static int create_hostonly(struct op *op, const struct zos_vbox_result *r)
{
    if (r->status == 0 && lists_iface(r->out, HOSTONLY_IF))
        return create_vm(op, NULL);
    return cmd(op, create_vm, "hostonlyif", "create", NULL);
}

static int create_scanned(struct op *op, const struct zos_vbox_result *r)
{
    (void)r;
    if (op->check_only)
        return done_ok(op);
    return cmd(op, create_hostonly, "list", "hostonlyifs", NULL);
}

static int create_begin(struct op *op, const struct zos_vbox_result *r)
{
    (void)r;
    op->must_be_new = true;
    return scan(op, create_scanned);
}

/* RESET: the port is checked before anything is deleted; the listing of
 * the scan names the VM to delete (if registered), then vmDelete, then the
 * creation from the host-only interface on. */
static int reset_scanned(struct op *op, const struct zos_vbox_result *r)
{
    (void)r;
    const struct zos_vbox_vm *vm = zos_vbox_list_find(&op->vms, op->name);
    snprintf(op->uuid, sizeof op->uuid, "%s", vm ? vm->uuid : "");
    return delete_found(op, NULL);
}

static int reset_begin(struct op *op, const struct zos_vbox_result *r)
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
    if (op->verb != ZOS_VBOX_LIST && !valid_name(op->name, why, sizeof why))
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
    struct zos_vbox_result res = {0};
    int s = op_begin(op);
    while (s != STEP_DONE) {
        if (s == STEP_WAIT) {
            sleep_ms(op->delay_ms);
            s = op->next(op, NULL);
            continue;
        }
        zos_vbox_result_clear(&res);
        if (op->vb.run(op->vb.run_arg, op->argv, &res, op->err, sizeof op->err) != ZOS_OK) {
            op->rc = ZOS_ERR;
            break;
        }
        s = op->next(op, &res);
    }
    zos_vbox_result_clear(&res);
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

int zos_vbox_list(const struct zos_vbox *vb, struct zos_vbox_list *out, char *err, size_t errlen)
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

int zos_vbox_info(const struct zos_vbox *vb, const char *name, struct zos_vbox_info *out, char *err,
                  size_t errlen)
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
    struct zos_vbox_proc *proc;
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

static void aop_proc_done(void *arg, struct zos_vbox_result *res, const char *err);

/* Carries out what the last step returned. */
static void aop_step(struct zos_vbox_op *a, int s)
{
    char err[512];
    if (s == STEP_RUN) {
        a->proc = zos_vbox_spawn(a->base, a->core.argv, aop_proc_done, a, err, sizeof err);
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

static void aop_proc_done(void *arg, struct zos_vbox_result *res, const char *err)
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
    zos_vbox_proc_cancel(a->proc);
    aop_free(a);
}

/* ---- qemu ---------------------------------------------------------------- */

void zos_vbox_argv_free(char **argv)
{
    for (size_t i = 0; argv != NULL && argv[i] != NULL; i++)
        free(argv[i]);
    free(argv);
}

/* S with every ',' doubled: qemu's escape inside "key=value,..." options. */
static char *qemu_escape(const char *s)
{
    size_t n = strlen(s), commas = 0;
    for (const char *p = s; *p; p++)
        commas += *p == ',';
    char *out = malloc(n + commas + 1), *o = out;
    for (const char *p = s; out != NULL && *p; p++) {
        *o++ = *p;
        if (*p == ',')
            *o++ = ',';
    }
    if (out != NULL)
        *o = '\0';
    return out;
}

struct argvec {
    char **v;
    size_t n;
    bool oom;
};

__attribute__((format(printf, 2, 3))) static void av_add(struct argvec *a, const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    int w = vasprintf(&s, fmt, ap);
    va_end(ap);
    char **v = w < 0 ? NULL : realloc(a->v, (a->n + 2) * sizeof *v);
    if (v == NULL) {
        free(w < 0 ? NULL : s);
        a->oom = true;
        return;
    }
    a->v = v;
    v[a->n++] = s;
    v[a->n] = NULL;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static bool qemu_check(const struct zos_vbox_qemu *q, char *err, size_t errlen)
{
    static const char nic_chars[] = "abcdefghijklmnopqrstuvwxyz0123456789-";
    const char *why = NULL;
    if (!valid_name(q->name, err, errlen))
        return false;
    if (q->iso == NULL || q->iso[0] == '\0')
        why = "no ISO given";
    else if (q->memory_mb <= 0)
        why = "memory must be > 0 MB";
    else if (!valid_port(q->port))
        why = "port must be 1..65535";
    else if (q->state_dir == NULL || q->state_dir[0] == '\0')
        why = "no state directory";
    else if (q->nic != NULL && strspn(q->nic, nic_chars) != strlen(q->nic))
        why = "bad NIC model";
    if (why != NULL)
        snprintf(err, errlen, "qemu VM '%s': %s", q->name, why);
    return why == NULL;
}

/* Opening it, not access(): root passes access() on a device it cannot use. */
static bool kvm_usable(void)
{
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return false;
    close(fd);
    return true;
}

char **zos_vbox_qemu_argv(const struct zos_vbox_qemu *q, char *err, size_t errlen)
{
    struct argvec a = {0};
    if (!qemu_check(q, err, errlen))
        return NULL;
    char *name = qemu_escape(q->name), *disk = q->disk ? qemu_escape(q->disk) : NULL;
    av_add(&a, "%s", q->binary ? q->binary : "qemu-system-x86_64");
    av_add(&a, "-name");
    av_add(&a, "guest=%s", name ? name : "");
    if (q->accel != NULL || !kvm_usable()) {
        av_add(&a, "-accel");
        av_add(&a, "%s", q->accel ? q->accel : "tcg");
    } else { /* KVM, and the emulator when KVM refuses (nested, busy) */
        av_add(&a, "-accel");
        av_add(&a, "kvm");
        av_add(&a, "-accel");
        av_add(&a, "tcg");
    }
    av_add(&a, "-m");
    av_add(&a, "%d", q->memory_mb);
    av_add(&a, "-boot");
    av_add(&a, "order=dc");
    av_add(&a, "-cdrom");
    av_add(&a, "%s", q->iso);
    if (q->disk != NULL) {
        av_add(&a, "-drive");
        av_add(&a, "file=%s,format=%s,if=virtio", disk ? disk : "",
               ends_with(q->disk, ".qcow2") ? "qcow2" : "raw");
    }
    av_add(&a, "-netdev");
    av_add(&a, "user,id=n0,hostfwd=tcp:127.0.0.1:%d-:%d", q->port, ZOS_VBOX_GUEST_PORT);
    av_add(&a, "-device");
    av_add(&a, "%s,netdev=n0", q->nic ? q->nic : "virtio-net-pci");
    av_add(&a, "-display");
    av_add(&a, "none");
    av_add(&a, "-serial");
    av_add(&a, "file:%s/serial.log", q->state_dir);
    av_add(&a, "-monitor");
    av_add(&a, "none");
    av_add(&a, "-pidfile");
    av_add(&a, "%s/qemu.pid", q->state_dir);
    av_add(&a, "-daemonize");
    if (name == NULL || (q->disk && disk == NULL))
        a.oom = true;
    free(name);
    free(disk);
    if (a.oom) {
        zos_vbox_argv_free(a.v);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    return a.v;
}

int zos_vbox_qemu_dir(const char *home, const char *name, char *buf, size_t len)
{
    char why[256];
    if (home == NULL || !valid_name(name, why, sizeof why))
        return ZOS_ERR;
    int w = snprintf(buf, len, "%s/.zos/qemu/%s", home, name);
    return w > 0 && (size_t)w < len ? ZOS_OK : ZOS_ERR;
}

static int qemu_img(const char *path, int size_mb, char *err, size_t errlen)
{
    char img[PATH_MAX], size[32], line[256];
    if (!zos_vbox_which("qemu-img", img, sizeof img)) {
        snprintf(err, errlen, "qemu-img not found on PATH (needed for the qcow2 disk %s)", path);
        return ZOS_VBOX_NOTFOUND;
    }
    snprintf(size, sizeof size, "%dM", size_mb);
    char *argv[] = {img, "create", "-q", "-f", "qcow2", (char *)path, size, NULL};
    struct zos_vbox_result res = {0};
    int rc = zos_vbox_exec(NULL, argv, &res, err, errlen);
    if (rc == ZOS_OK && res.status != 0) {
        first_line(&res, line, sizeof line);
        snprintf(err, errlen, "qemu-img create %s failed (exit %d): %s", path, res.status, line);
        rc = ZOS_ERR;
    }
    zos_vbox_result_clear(&res);
    return rc;
}

int zos_vbox_qemu_disk(const char *path, int size_mb, char *err, size_t errlen)
{
    if (path == NULL || path[0] == '-' || path[0] == '\0' || size_mb <= 0) {
        snprintf(err, errlen, "bad disk path or size");
        return ZOS_ERR;
    }
    if (access(path, F_OK) == 0)
        return ZOS_OK;
    if (ends_with(path, ".qcow2"))
        return qemu_img(path, size_mb, err, errlen);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || ftruncate(fd, (off_t)size_mb << 20) != 0) {
        snprintf(err, errlen, "cannot create disk %s: %s", path, strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(path);
        }
        return ZOS_ERR;
    }
    close(fd);
    return ZOS_OK;
}

/* Alive and not a zombie (a daemonized qemu is reparented; /proc tells). */
static bool qemu_alive(pid_t pid)
{
    char path[64], stat[256] = "";
    if (kill(pid, 0) != 0 && errno != EPERM)
        return false;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return true;
    size_t n = fread(stat, 1, sizeof stat - 1, f);
    fclose(f);
    stat[n] = '\0';
    const char *close_paren = strrchr(stat, ')');
    bool zombie = close_paren != NULL && close_paren[1] == ' ' && close_paren[2] == 'Z';
    /* A recycled pid is not ours: the command must be a qemu. */
    return !zombie && (strstr(stat, "(qemu") != NULL || close_paren == NULL);
}

static void pidfile_path(const char *state_dir, char *buf, size_t len)
{
    snprintf(buf, len, "%s/qemu.pid", state_dir);
}

pid_t zos_vbox_qemu_pid(const char *state_dir)
{
    char path[PATH_MAX], text[32] = "";
    pidfile_path(state_dir, path, sizeof path);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return 0;
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    long pid = strtol(text, NULL, 10);
    return pid > 1 && qemu_alive((pid_t)pid) ? (pid_t)pid : 0;
}

int zos_vbox_qemu_start(const struct zos_vbox_qemu *q, char *err, size_t errlen)
{
    char found[PATH_MAX], pidfile[PATH_MAX], line[256];
    const char *bin = q->binary ? q->binary : "qemu-system-x86_64";
    if (!qemu_check(q, err, errlen))
        return ZOS_ERR;
    if (!zos_vbox_which(bin, found, sizeof found)) {
        snprintf(err, errlen, "qemu is not installed: %s not found on PATH", bin);
        return ZOS_VBOX_NOTFOUND;
    }
    pid_t pid = zos_vbox_qemu_pid(q->state_dir);
    if (pid != 0) {
        snprintf(err, errlen, "qemu VM '%s' is already running (pid %d)", q->name, (int)pid);
        return ZOS_ERR;
    }
    if (access(q->iso, R_OK) != 0) {
        snprintf(err, errlen, "ISO %s: %s", q->iso, strerror(errno));
        return ZOS_ERR;
    }
    if (mkdir_p(q->state_dir, 0700) != 0) {
        snprintf(err, errlen, "cannot create %s: %s", q->state_dir, strerror(errno));
        return ZOS_ERR;
    }
    pidfile_path(q->state_dir, pidfile, sizeof pidfile);
    unlink(pidfile); /* stale: its qemu is not alive */
    char **argv = zos_vbox_qemu_argv(q, err, errlen);
    if (argv == NULL)
        return ZOS_ERR;
    struct zos_vbox_result res = {0};
    int rc = zos_vbox_exec(NULL, argv, &res, err, errlen);
    if (rc == ZOS_OK && res.status != 0) {
        first_line(&res, line, sizeof line);
        snprintf(err, errlen, "%s failed (exit %d): %s", bin, res.status, line);
        rc = ZOS_ERR;
    }
    zos_vbox_result_clear(&res);
    zos_vbox_argv_free(argv);
    return rc;
}

/* Waits up to MS for PID to go away. */
static bool qemu_wait_gone(pid_t pid, int ms)
{
    for (int waited = 0; waited < ms; waited += 50) {
        if (!qemu_alive(pid))
            return true;
        sleep_ms(50);
    }
    return !qemu_alive(pid);
}

int zos_vbox_qemu_stop(const char *state_dir, char *err, size_t errlen)
{
    char pidfile[PATH_MAX];
    pidfile_path(state_dir, pidfile, sizeof pidfile);
    pid_t pid = zos_vbox_qemu_pid(state_dir);
    if (pid != 0) {
        kill(pid, SIGTERM);
        if (!qemu_wait_gone(pid, 5000)) {
            kill(pid, SIGKILL);
            if (!qemu_wait_gone(pid, 2000)) {
                snprintf(err, errlen, "qemu (pid %d) does not exit", (int)pid);
                return ZOS_ERR;
            }
        }
    }
    unlink(pidfile);
    return ZOS_OK;
}
