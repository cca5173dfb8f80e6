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
    char *pend; /* untagged lines of the current read, sent as one chunk */
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
};

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static int make_pipes(struct pipes *p, bool want_stdin)
{
    p->in[0] = p->in[1] = -1;
    if (pipe2(p->out, O_CLOEXEC) < 0)
        return -1;
    if (pipe2(p->err, O_CLOEXEC) < 0)
        return -1;
    if (pipe2(p->status, O_CLOEXEC) < 0)
        return -1;
    if (want_stdin) {
        if (pipe2(p->in, O_CLOEXEC) < 0)
            return -1;
        fcntl(p->in[1], F_SETFL, O_NONBLOCK);
    } else {
        p->in[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    return 0;
}

/* Reads both pipes until EOF while feeding stdin and watching max_time; then
 * reaps the process.  Returns the wait status. */
static int pump(struct sim_job *j, struct sim_run *r, pid_t pid, struct pipes *p,
                const struct sim_spawn *s, bool *timed_out)
{
    struct parser po = {.level = SIM_LEVEL_STDOUT}, pe = {.level = SIM_LEVEL_STDERR};
    int64_t deadline = j->max_time > 0 ? sim_now_ms() + j->max_time * 1000 : 0;
    size_t written = 0;
    int status = 0;
    bool reaped = false;
    char *buf = malloc(SIM_CHUNK_MAX);
    while (p->out[0] >= 0 || p->err[0] >= 0 || !reaped) {
        struct pollfd fds[3];
        int n = 0, io = -1, ie = -1, ii = -1;
        if (p->out[0] >= 0) {
            io = n;
            fds[n++] = (struct pollfd){.fd = p->out[0], .events = POLLIN};
        }
        if (p->err[0] >= 0) {
            ie = n;
            fds[n++] = (struct pollfd){.fd = p->err[0], .events = POLLIN};
        }
        if (p->in[1] >= 0) {
            ii = n;
            fds[n++] = (struct pollfd){.fd = p->in[1], .events = POLLOUT};
        }
        int timeout = (p->out[0] < 0 && p->err[0] < 0) ? 20 : 200;
        if (deadline && !*timed_out) {
            int64_t left = deadline - sim_now_ms();
            if (left <= 0) {
                kill(-pid, SIGKILL);
                *timed_out = true;
            } else if (left < timeout) {
                timeout = (int)left;
            }
        }
        int rc = n ? poll(fds, (nfds_t)n, timeout) : poll(NULL, 0, timeout);
        if (rc < 0 && errno != EINTR)
            break;
        if (ii >= 0 && rc > 0 && fds[ii].revents) {
            ssize_t w = write(p->in[1], s->stdin_data + written, s->stdin_len - written);
            if (w > 0)
                written += (size_t)w;
            if ((w < 0 && errno != EAGAIN && errno != EINTR) || written >= s->stdin_len)
                close_fd(&p->in[1]);
        }
        int idx[2] = {io, ie};
        int *fd[2] = {&p->out[0], &p->err[0]};
        struct parser *ps[2] = {&po, &pe};
        for (int k = 0; k < 2; k++) {
            if (idx[k] < 0 || rc <= 0 || fds[idx[k]].revents == 0)
                continue;
            ssize_t got = read(*fd[k], buf, SIM_CHUNK_MAX);
            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0) {
                parser_feed(ps[k], j, r, "", 0, true);
                close_fd(fd[k]);
            } else {
                parser_feed(ps[k], j, r, buf, (size_t)got, false);
            }
        }
        if (!reaped && waitpid(pid, &status, WNOHANG) == pid)
            reaped = true;
    }
    close_fd(&p->in[1]);
    if (!reaped)
        waitpid(pid, &status, 0);
    free(buf);
    parser_free(&po);
    parser_free(&pe);
    return status;
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
    s->argv[0] = path;
    pid_t pid = fork();
    if (pid == 0)
        child_exec(path, s, p.in[0], p.out[1], p.err[1], p.status[1]);
    close_fd(&p.in[0]);
    close_fd(&p.out[1]);
    close_fd(&p.err[1]);
    close_fd(&p.status[1]);
    int child_errno = 0;
    if (pid > 0) {
        setpgid(pid, pid);
        set_pgid(j, pid);
        if (read(p.status[0], &child_errno, sizeof child_errno) != (ssize_t)sizeof child_errno)
            child_errno = 0;
    } else {
        child_errno = errno;
    }
    close_fd(&p.status[0]);
    if (child_errno) {
        /* os.StartProcess failed: not a RunError, so code 0 and raw text. */
        if (pid > 0)
            waitpid(pid, NULL, 0);
        set_pgid(j, 0);
        close_fd(&p.in[1]);
        close_fd(&p.out[0]);
        close_fd(&p.err[0]);
        snprintf(err, sizeof err, "fork/exec %s: %s", path, sim_goerr(child_errno, eb, sizeof eb));
        r->state = "ERROR";
        r->data = strdup(err);
        return;
    }
    bool timed_out = false;
    r->has_streams = true;
    int status = pump(j, r, pid, &p, s, &timed_out);
    set_pgid(j, 0);
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
