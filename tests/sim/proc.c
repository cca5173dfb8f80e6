/* proc.c -- external processes of jobs: PATH lookup like Go's exec.LookPath,
 * fork/exec in a new process group, stdout/stderr parsing into messages
 * (tagged output of base/pm/stream), max_time, exit codes. */
#include "sim.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* ---- PATH lookup ---- */

static int check_exec(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return errno;
    if (S_ISDIR(st.st_mode))
        return EISDIR;
    return (st.st_mode & 0111) ? 0 : EACCES;
}

static const char *env_get(char **envp, const char *name)
{
    size_t n = strlen(name);
    for (char **p = envp ? envp : environ; *p; p++)
        if (strncmp(*p, name, n) == 0 && (*p)[n] == '=')
            return *p + n + 1;
    return NULL;
}

int sim_lookpath(const char *name, char **envp, char *out, size_t outlen, char *err, size_t errlen)
{
    char eb[128];
    if (strchr(name, '/')) {
        int rc = check_exec(name);
        if (rc == 0) {
            snprintf(out, outlen, "%s", name);
            return 0;
        }
        if (rc == ENOENT || rc == ENOTDIR)
            snprintf(err, errlen, "exec: \"%s\": stat %s: %s", name, name,
                     sim_goerr(rc, eb, sizeof eb));
        else
            snprintf(err, errlen, "exec: \"%s\": %s", name, sim_goerr(rc, eb, sizeof eb));
        return -1;
    }
    const char *path = env_get(envp, "PATH");
    if (path == NULL)
        path = "";
    while (name[0]) {
        const char *end = strchr(path, ':');
        size_t dl = end ? (size_t)(end - path) : strlen(path);
        snprintf(out, outlen, "%.*s/%s", (int)dl, dl ? path : ".", name);
        if (check_exec(out) == 0)
            return 0;
        if (end == NULL)
            break;
        path = end + 1;
    }
    snprintf(err, errlen, "exec: \"%s\": executable file not found in $PATH", name);
    return -1;
}

/* ---- output parsing (base/pm/stream/input.go) ---- */

struct parser {
    unsigned level; /* 1 stdout, 2 stderr */
    char *carry;    /* incomplete last line */
    size_t carry_len;
    bool multi; /* inside "<n>:::" ... ":::" */
    unsigned mlevel;
    char *mbuf;
    size_t mlen;
    char *pend; /* the untagged line being sent (a record per line: Corrections 1) */
    size_t pend_len;
};

static void append(char **buf, size_t *len, const char *s, size_t n)
{
    *buf = realloc(*buf, *len + n + 1);
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = '\0';
}

static void flush_pending(struct parser *p, struct sim_job *j, struct sim_run *r)
{
    if (p->pend_len)
        sim_job_message(j, r, p->level, p->pend, p->pend_len);
    p->pend_len = 0;
}

/* "<digits>::" or "<digits>:::" at the start of LINE: level and rest. */
static bool tagged(const char *line, size_t len, unsigned *level, bool *multi, size_t *rest)
{
    size_t i = 0;
    unsigned long v = 0;
    while (i < len && line[i] >= '0' && line[i] <= '9') {
        v = v * 10 + (unsigned long)(line[i] - '0');
        if (v > 65535)
            v = 65535;
        i++;
    }
    if (i == 0 || i + 2 > len || line[i] != ':' || line[i + 1] != ':')
        return false;
    *multi = (i + 2 < len && line[i + 2] == ':');
    *level = (unsigned)v;
    *rest = i + (*multi ? 3 : 2);
    return true;
}

/* One complete line (without its '\n'; NL tells whether it had one). */
static void process_line(struct parser *p, struct sim_job *j, struct sim_run *r, const char *line,
                         size_t len, bool nl)
{
    unsigned level;
    bool multi;
    size_t rest;
    if (p->multi) {
        if (len == 3 && memcmp(line, ":::", 3) == 0) {
            flush_pending(p, j, r);
            sim_job_message(j, r, p->mlevel, p->mbuf ? p->mbuf : "", p->mlen);
            free(p->mbuf);
            p->mbuf = NULL;
            p->mlen = 0;
            p->multi = false;
        } else {
            append(&p->mbuf, &p->mlen, "\n", 1);
            append(&p->mbuf, &p->mlen, line, len);
        }
        return;
    }
    if (tagged(line, len, &level, &multi, &rest)) {
        flush_pending(p, j, r);
        if (multi) {
            p->multi = true;
            p->mlevel = level;
            p->mlen = 0;
            append(&p->mbuf, &p->mlen, line + rest, len - rest);
        } else {
            sim_job_message(j, r, level, line + rest, len - rest);
        }
        return;
    }
    append(&p->pend, &p->pend_len, line, len);
    if (nl)
        append(&p->pend, &p->pend_len, "\n", 1);
    flush_pending(p, j, r); /* core0 cuts a message per line, not per read() */
}

/* Feeds one read() worth of output; EOF flushes an incomplete last line. */
static void parser_feed(struct parser *p, struct sim_job *j, struct sim_run *r, const char *data,
                        size_t len, bool eof)
{
    append(&p->carry, &p->carry_len, data, len);
    size_t start = 0;
    for (size_t i = 0; i < p->carry_len; i++) {
        if (p->carry[i] != '\n')
            continue;
        process_line(p, j, r, p->carry + start, i - start, true);
        start = i + 1;
    }
    size_t left = p->carry_len - start;
    if (left && (eof || (left >= SIM_CHUNK_MAX && !p->multi))) {
        process_line(p, j, r, p->carry + start, left, false);
        start = p->carry_len;
        left = 0;
    }
    memmove(p->carry, p->carry + start, left);
    p->carry_len = left;
    flush_pending(p, j, r);
}

static void parser_free(struct parser *p)
{
    free(p->carry);
    free(p->mbuf);
    free(p->pend);
}

/* ---- spawning ---- */

static void child_exec(const char *path, const struct sim_spawn *s, int in, int out, int err,
                       int errpipe)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    if (s->dir && s->dir[0] && chdir(s->dir) < 0) {
        int e = errno;
        (void)!write(errpipe, &e, sizeof e);
        _exit(127);
    }
    execve(path, s->argv, s->envp ? s->envp : environ);
    int e = errno;
    (void)!write(errpipe, &e, sizeof e);
    _exit(127);
}

static void set_pgid(struct sim_job *j, pid_t pgid)
{
    pthread_mutex_lock(&j->mu);
    j->pgid = pgid;
    pthread_mutex_unlock(&j->mu);
}

struct pipes {
    int in[2], out[2], err[2], status[2];
    bool one_write; /* out and err hold one write at a time */
};

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static void close_pipes(struct pipes *p)
{
    int *fds[] = {&p->in[0],  &p->in[1],  &p->out[0],    &p->out[1],
                  &p->err[0], &p->err[1], &p->status[0], &p->status[1]};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        close_fd(fds[i]);
}

/* An output pipe that holds one write at a time when the kernel allows it
 * (packet mode, one page: see "reading the pipes"); *ONE_WRITE is cleared when
 * it does not.  0 or -1. */
static int output_pipe(int fds[2], bool *one_write)
{
    if (pipe2(fds, O_CLOEXEC | O_DIRECT) < 0) {
        *one_write = false;
        return pipe2(fds, O_CLOEXEC);
    }
    long page = sysconf(_SC_PAGESIZE);
    if (fcntl(fds[0], F_SETPIPE_SZ, (int)page) != page)
        *one_write = false;
    return 0;
}

/* 0, or -1 with errno set and nothing left open. */
static int make_pipes(struct pipes *p, bool want_stdin)
{
    *p = (struct pipes){{-1, -1}, {-1, -1}, {-1, -1}, {-1, -1}, true};
    if (output_pipe(p->out, &p->one_write) < 0 || output_pipe(p->err, &p->one_write) < 0 ||
        pipe2(p->status, O_CLOEXEC) < 0)
        goto fail;
    if (want_stdin) {
        if (pipe2(p->in, O_CLOEXEC) < 0)
            goto fail;
        fcntl(p->in[1], F_SETFL, O_NONBLOCK);
    } else {
        p->in[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    return 0;
fail:;
    int e = errno;
    close_pipes(p);
    errno = e;
    return -1;
}

/* ---- reading the pipes ----
 *
 *   stdout pipe --.   epoll set, edge-      reader thread:        job thread:
 *                  +-> triggered: ready --> read, queue chunk --> parsers, messages,
 *   stderr pipe --'    list in write order  (that order)          stream:<id>
 *
 * Records keep the order in which the process wrote them, across stdout and
 * stderr (core0-protocol.md, Corrections 8).  A loop that reads stdout before
 * stderr when both are readable loses that order; so does a reader that runs
 * late, whatever it does, once the process has written stdout, stderr and
 * stdout again.  So the kernel keeps the order:
 *  - both pipes are in one edge-triggered epoll set, registered before the
 *    fork.  A write to a pipe that is not on the ready list appends it there,
 *    in the writer's write() call, so epoll_wait() gives the pipes in the order
 *    they were written to;
 *  - each pipe holds one write at a time: packet mode (O_DIRECT: a write is a
 *    packet, never merged with the one before) and a capacity of one page (one
 *    packet).  The next write to that pipe waits until the reader has taken
 *    the packet, so it is reported afresh, behind whatever was written
 *    meanwhile to the other pipe.
 * The reader thread therefore takes one packet per event, in the order of the
 * events, and only queues it; parsing and the Redis round trips are the job
 * thread's.  A writer is at most one write ahead of the reader on each pipe,
 * and the order holds however late the reader runs.  Each chunk is one write
 * (up to a page: longer writes are split into pages), which the parser treats
 * as it treated one read: one message per line (a line split over two writes
 * is one message, once its end came; Corrections 1).  Without
 * packet mode or the small capacity (a kernel that refuses them) each event
 * drains its pipe, and the order is only as good as the reader is quick.  The
 * queue is bounded: the reader waits before reading while it is full. */

#define QUEUE_MAX 64 /* chunks */

struct chunk {
    struct chunk *next;
    int stream;  /* 0 stdout, 1 stderr */
    size_t len;  /* 0: end of the pipe */
    char data[]; /* len bytes */
};

struct output {
    pthread_mutex_t mu;
    pthread_cond_t room;
    struct chunk *head, *tail;
    size_t queued;
    int fd[2];      /* borrowed read ends, non-blocking; closed by the caller after the join */
    bool one_write; /* both pipes hold one write at a time (see above) */
    bool open[2];
    int ep;    /* epoll set of fd[] */
    int wake;  /* eventfd, written after each chunk; the job thread polls it */
    char *buf; /* bufsize bytes: at least a page, the largest packet */
    size_t bufsize;
    pthread_t thread;
    bool running;
};

static void output_put(struct output *o, int k, const char *data, size_t len)
{
    struct chunk *c = malloc(sizeof *c + len);
    if (c == NULL)
        abort();
    c->next = NULL;
    c->stream = k;
    c->len = len;
    memcpy(c->data, data, len);
    pthread_mutex_lock(&o->mu);
    if (o->tail)
        o->tail->next = c;
    else
        o->head = c;
    o->tail = c;
    o->queued++;
    pthread_mutex_unlock(&o->mu);
    uint64_t one = 1;
    (void)!write(o->wake, &one, sizeof one);
}

/* The next chunk in arrival order (caller frees), or NULL. */
static struct chunk *output_take(struct output *o)
{
    pthread_mutex_lock(&o->mu);
    struct chunk *c = o->head;
    if (c) {
        o->head = c->next;
        if (o->head == NULL)
            o->tail = NULL;
        o->queued--;
        pthread_cond_signal(&o->room);
    }
    pthread_mutex_unlock(&o->mu);
    return c;
}

/* One read() of pipe K into the queue: true when it queued data, false when
 * the pipe is empty (EAGAIN) or ended (an empty chunk is queued then). */
static bool read_one(struct output *o, int k)
{
    pthread_mutex_lock(&o->mu);
    while (o->queued >= QUEUE_MAX)
        pthread_cond_wait(&o->room, &o->mu);
    pthread_mutex_unlock(&o->mu);
    ssize_t got;
    do
        got = read(o->fd[k], o->buf, o->bufsize);
    while (got < 0 && errno == EINTR);
    if (got < 0 && errno == EAGAIN)
        return false;
    o->open[k] = got > 0;
    output_put(o, k, o->buf, got > 0 ? (size_t)got : 0);
    return got > 0;
}

static void *output_main(void *arg)
{
    struct output *o = arg;
    while (o->open[0] || o->open[1]) {
        struct epoll_event ev[2];
        int n = epoll_wait(o->ep, ev, 2, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) { /* cannot happen; end both streams rather than spin */
            for (int k = 0; k < 2; k++)
                if (o->open[k])
                    output_put(o, k, "", 0);
            break;
        }
        for (int i = 0; i < n; i++) {
            int k = (int)ev[i].data.u32;
            /* After a hang-up no write can come: take what is left and the end. */
            bool all = !o->one_write || (ev[i].events & (EPOLLHUP | EPOLLERR));
            while (o->open[k] && read_one(o, k) && all)
                ;
        }
    }
    return NULL;
}

/* Starts reading OUT and ERR (borrowed; made non-blocking) in a thread; ONE_WRITE
 * tells whether they hold one write at a time.  Call it before the fork.  0, or
 * -1 with errno set and nothing left running (output_stop still required). */
static int output_start(struct output *o, int out, int err, bool one_write)
{
    *o = (struct output){
        .fd = {out, err}, .one_write = one_write, .open = {true, true}, .ep = -1, .wake = -1};
    pthread_mutex_init(&o->mu, NULL);
    pthread_cond_init(&o->room, NULL);
    long page = sysconf(_SC_PAGESIZE);
    o->bufsize = page > SIM_CHUNK_MAX ? (size_t)page : SIM_CHUNK_MAX;
    o->buf = malloc(o->bufsize);
    o->ep = epoll_create1(EPOLL_CLOEXEC);
    o->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (o->buf == NULL || o->ep < 0 || o->wake < 0)
        return -1;
    for (int k = 0; k < 2; k++) {
        struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u32 = (uint32_t)k};
        int fl = fcntl(o->fd[k], F_GETFL);
        if (fl < 0 || fcntl(o->fd[k], F_SETFL, fl | O_NONBLOCK) < 0 ||
            epoll_ctl(o->ep, EPOLL_CTL_ADD, o->fd[k], &ev) < 0)
            return -1;
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    int rc = pthread_create(&o->thread, &attr, output_main, o);
    pthread_attr_destroy(&attr);
    o->running = rc == 0;
    errno = rc;
    return rc ? -1 : 0;
}

/* Joins the reader (it ends with both pipes: every write end must be closed by
 * then) and frees what is left. */
static void output_stop(struct output *o)
{
    if (o->running)
        pthread_join(o->thread, NULL);
    struct chunk *c;
    while ((c = output_take(o)) != NULL)
        free(c);
    if (o->ep >= 0)
        close(o->ep);
    if (o->wake >= 0)
        close(o->wake);
    free(o->buf);
    pthread_mutex_destroy(&o->mu);
    pthread_cond_destroy(&o->room);
}

/* Takes the chunks queued so far into the parsers; returns how many pipes ended. */
static int output_feed(struct output *o, struct parser ps[2], struct sim_job *j, struct sim_run *r)
{
    int ended = 0;
    struct chunk *c;
    uint64_t v;
    (void)!read(o->wake, &v, sizeof v);
    while ((c = output_take(o)) != NULL) {
        parser_feed(&ps[c->stream], j, r, c->data, c->len, c->len == 0);
        ended += c->len == 0;
        free(c);
    }
    return ended;
}

/* Takes the output of both pipes until they end while feeding stdin and
 * watching max_time; then reaps the process.  Returns the wait status. */
static int pump(struct sim_job *j, struct sim_run *r, pid_t pid, struct pipes *p, struct output *o,
                const struct sim_spawn *s, bool *timed_out)
{
    struct parser ps[2] = {{.level = SIM_LEVEL_STDOUT}, {.level = SIM_LEVEL_STDERR}};
    int64_t deadline = j->max_time > 0 ? sim_now_ms() + j->max_time * 1000 : 0;
    size_t written = 0;
    int status = 0, open_pipes = 2;
    bool reaped = false;
    for (;;) {
        open_pipes -= output_feed(o, ps, j, r);
        if (!reaped && waitpid(pid, &status, WNOHANG) == pid)
            reaped = true;
        if (open_pipes == 0 && reaped)
            break;
        struct pollfd fds[2] = {{.fd = o->wake, .events = POLLIN},
                                {.fd = p->in[1], .events = POLLOUT}};
        int timeout = open_pipes == 0 ? 20 : 200;
        if (deadline && !*timed_out) {
            int64_t left = deadline - sim_now_ms();
            if (left <= 0) {
                kill(-pid, SIGKILL);
                *timed_out = true;
            } else if (left < timeout) {
                timeout = (int)left;
            }
        }
        /* A negative fd (stdin done) is ignored by poll(). */
        int rc = poll(fds, 2, timeout);
        if (rc > 0 && p->in[1] >= 0 && fds[1].revents) {
            ssize_t w = write(p->in[1], s->stdin_data + written, s->stdin_len - written);
            if (w > 0)
                written += (size_t)w;
            if ((w < 0 && errno != EAGAIN && errno != EINTR) || written >= s->stdin_len)
                close_fd(&p->in[1]);
        }
    }
    close_fd(&p->in[1]);
    parser_free(&ps[0]);
    parser_free(&ps[1]);
    return status;
}

/* Forks and execs S with the child's ends of P; closes them here.  The pid
 * (0 when none) and the errno of a failed fork or exec (0 when it started). */
static pid_t spawn(struct sim_job *j, const char *path, const struct sim_spawn *s, struct pipes *p,
                   int *child_errno)
{
    pid_t pid = fork();
    if (pid == 0)
        child_exec(path, s, p->in[0], p->out[1], p->err[1], p->status[1]);
    *child_errno = pid < 0 ? errno : 0;
    close_fd(&p->in[0]);
    close_fd(&p->out[1]);
    close_fd(&p->err[1]);
    close_fd(&p->status[1]);
    if (pid > 0) {
        setpgid(pid, pid);
        set_pgid(j, pid);
        if (read(p->status[0], child_errno, sizeof *child_errno) != (ssize_t)sizeof *child_errno)
            *child_errno = 0;
    }
    close_fd(&p->status[0]);
    return pid > 0 ? pid : 0;
}

void sim_proc_run(struct sim_job *j, const struct sim_spawn *s, struct sim_run *r)
{
    char path[4096], err[4400], eb[128];
    if (sim_lookpath(s->name, s->envp, path, sizeof path, err, sizeof err) < 0) {
        r->state = "ERROR";
        r->code = 404;
        r->data = strdup(err);
        return;
    }
    struct pipes p;
    if (make_pipes(&p, s->stdin_len > 0) < 0) {
        r->state = "ERROR";
        r->data = strdup(sim_goerr(errno, eb, sizeof eb));
        return;
    }
    /* Before the fork, so that the first write is in epoll's order already. */
    struct output o;
    if (output_start(&o, p.out[0], p.err[0], p.one_write) < 0) {
        r->state = "ERROR";
        r->data = strdup(sim_goerr(errno, eb, sizeof eb));
        output_stop(&o);
        close_pipes(&p);
        return;
    }
    s->argv[0] = path;
    int child_errno;
    pid_t pid = spawn(j, path, s, &p, &child_errno);
    if (child_errno) {
        /* os.StartProcess failed: not a RunError, so code 0 and raw text. */
        if (pid > 0)
            waitpid(pid, NULL, 0);
        set_pgid(j, 0);
        output_stop(&o);
        close_pipes(&p);
        snprintf(err, sizeof err, "fork/exec %s: %s", path, sim_goerr(child_errno, eb, sizeof eb));
        r->state = "ERROR";
        r->data = strdup(err);
        return;
    }
    bool timed_out = false;
    r->has_streams = true;
    int status = pump(j, r, pid, &p, &o, s, &timed_out);
    set_pgid(j, 0);
    output_stop(&o);
    close_pipes(&p);
    /* Go: ExitStatus() is -1 after a signal, and 1000 + -1 = 999. */
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    bool ok = code == 0;
    if (j->stream) {
        uint32_t meta = ok ? (SIM_LEVEL_STDOUT << 16 | SIM_FLAG_EXIT_OK | SIM_FLAG_STREAM)
                           : (SIM_LEVEL_STDERR << 16 | SIM_FLAG_EXIT_ERR | SIM_FLAG_STREAM);
        sim_stream_push(j->id, j->container, "", 0, meta);
    }
    r->code = ok ? 0 : (uint32_t)(1000 + code);
    r->state = timed_out ? "TIMEOUT" : (ok ? "SUCCESS" : "ERROR");
}

char *sim_capture(char *const argv[], int *status)
{
    int out[2];
    if (pipe2(out, O_CLOEXEC) < 0)
        return NULL;
    pid_t pid = fork();
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        dup2(out[1], 1);
        dup2(devnull, 2);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(out[1]);
    if (pid < 0) {
        close(out[0]);
        return NULL;
    }
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (len + 1 >= cap)
            buf = realloc(buf, cap *= 2);
        ssize_t n = read(out[0], buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    close(out[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (status)
        *status = st;
    return buf;
}
