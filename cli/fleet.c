/* fleet.c -- one command on many nodes: a child process per node, output
 * prefixed line by line, the worst exit code.
 *
 *   zos --all ping
 *     parent: names (--all / --node=a,b,c) --> at most --parallel children at once
 *       fork --> child: cli->node = "a"; the command's own handler; exit(rc)
 *                  stdout --pipe--> parent: "a: <line>\n" on stdout
 *                  stderr --pipe--> parent: "a: <line>\n" on stderr
 *     every child reaped --> "zos: 2 of 20 nodes failed: ..." on stderr --> highest code
 *
 * Why processes and not one event loop with a link per node: the child runs
 * exactly the code of "zos --node=a ping" (node.c, the command handlers,
 * their printing and exit codes), untouched, so the fleet form cannot drift
 * from the single-node form; a node that hangs or crashes takes only its
 * own process.  The child is a fork without exec: the config read once by
 * the parent is the one every node sees, and no binary path is needed.
 *
 * The parent only reads pipes and writes whole lines, each with one
 * write(2), so two nodes' lines never mix.  A line longer than LINE_MAX_OUT
 * is written in pieces, each prefixed.  SIGINT, SIGTERM and SIGHUP are
 * passed on to the running children (by PID), and no new child starts.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "zos/util.h"
#include "zos/zos.h"

#define LINE_MAX_OUT (1 << 20) /* a line longer than this is cut in pieces */
#define READ_CHUNK   65536

struct stream {
    int fd; /* read end of the child's pipe; -1 once at EOF */
    char *buf;
    size_t len, cap;
};

struct child {
    const char *name;
    pid_t pid;          /* 0: not started, -1: reaped */
    struct stream s[2]; /* stdout, stderr */
    long long deadline_ms;
    struct zos_cli_fleet_result *res;
};

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    stop_signal = sig;
}

/* ---- names ---- */

bool zos_cli_fleet_mode(const struct zos_cli *cli)
{
    return cli->all || (cli->node != NULL && strchr(cli->node, ',') != NULL);
}

static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_' || *s == '.'))
            return false;
    return true;
}

/* Splits the --node list into F->names (F->list holds the strings). */
static int split_list(struct zos_cli *cli, struct zos_cli_fleet *f)
{
    size_t n = 1;
    for (const char *p = cli->node; *p; p++)
        n += *p == ',';
    f->list = strdup(cli->node);
    f->names = calloc(n, sizeof(*f->names));
    if (f->list == NULL || f->names == NULL)
        return zos_cli_fail(ZOS_EXIT_GENERAL, "out of memory");
    for (char *p = f->list, *next; p != NULL; p = next) {
        next = strchr(p, ',');
        if (next != NULL)
            *next++ = '\0';
        if (!name_ok(p))
            return zos_cli_fail(p[0] == '\0' ? ZOS_EXIT_MALFORMED_ARGS : ZOS_EXIT_INVALID_NAME,
                                "--node: '%s' is not a node name (a comma-separated list of 1 to "
                                "64 letters, digits, '-', '_', '.')",
                                p[0] == '\0' ? cli->node : p);
        for (size_t i = 0; i < f->n; i++)
            if (strcmp(f->names[i], p) == 0)
                return zos_cli_fail(ZOS_EXIT_MALFORMED_ARGS, "--node: '%s' is named twice", p);
        if (cli->proxy == NULL && zos_conf_node(cli->conf, p) == NULL)
            return zos_cli_fail(ZOS_EXIT_NOT_CONFIGURED,
                                "--node: no node named '%s' in %s ('zos showconfig' lists them)", p,
                                cli->conf_path);
        f->names[f->n++] = p;
    }
    return 0;
}

int zos_cli_fleet_names(struct zos_cli *cli, struct zos_cli_fleet *f)
{
    memset(f, 0, sizeof(*f));
    if (cli->node != NULL && !cli->all) {
        int rc = split_list(cli, f);
        if (rc != 0)
            zos_cli_fleet_free(f);
        return rc;
    }
    if (cli->conf->nnodes == 0)
        return zos_cli_fail(ZOS_EXIT_UNCONFIGURED,
                            "no node in %s: add one with 'zos configure --name=<name> "
                            "--address=<address>'%s",
                            cli->conf_path,
                            cli->proxy != NULL ? ", or name the proxy's nodes with --node=a,b"
                                               : "");
    f->names = calloc(cli->conf->nnodes, sizeof(*f->names));
    if (f->names == NULL)
        return zos_cli_fail(ZOS_EXIT_GENERAL, "out of memory");
    for (size_t i = 0; i < cli->conf->nnodes; i++)
        f->names[f->n++] = cli->conf->nodes[i].name;
    return 0;
}

void zos_cli_fleet_free(struct zos_cli_fleet *f)
{
    free(f->names);
    free(f->list);
    memset(f, 0, sizeof(*f));
}

/* ---- output ---- */

/* "NAME: LINE\n" on FD in one write. */
static void emit_line(int fd, const char *name, const char *line, size_t len)
{
    size_t nlen = strlen(name), total = nlen + 2 + len + 1;
    char stackbuf[4096], *out = total <= sizeof(stackbuf) ? stackbuf : malloc(total);
    if (out == NULL)
        return;
    memcpy(out, name, nlen);
    memcpy(out + nlen, ": ", 2);
    memcpy(out + nlen + 2, line, len);
    out[total - 1] = '\n';
    (void)zos_write_all(fd, out, total); /* stdout closed: nothing more to show */
    if (out != stackbuf)
        free(out);
}

/* Writes the complete lines of S (all of it when AT_EOF) prefixed with NAME. */
static void flush_lines(const char *name, struct stream *s, int fd, bool at_eof)
{
    size_t start = 0;
    if (s->len == 0)
        return;
    for (;;) {
        char *nl = memchr(s->buf + start, '\n', s->len - start);
        size_t end = nl != NULL ? (size_t)(nl - s->buf) : s->len;
        if (nl == NULL && !at_eof && s->len - start < LINE_MAX_OUT)
            break;
        if (nl == NULL && start == s->len)
            break;
        emit_line(fd, name, s->buf + start, end - start);
        start = nl != NULL ? end + 1 : end;
    }
    memmove(s->buf, s->buf + start, s->len - start);
    s->len -= start;
}

static bool stream_append(struct stream *s, const char *p, size_t n)
{
    if (s->len + n > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + n)
            cap *= 2;
        char *b = realloc(s->buf, cap);
        if (b == NULL)
            return false;
        s->buf = b;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, p, n);
    s->len += n;
    return true;
}

/* ---- children ---- */

static void close_stream(struct stream *s)
{
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
}

/* In the child: the pipes on 1 and 2, /dev/null on 0, other children's
 * pipes closed, default signals; then the node's work.  Never returns. */
static void child_main(struct zos_cli *cli, struct child *kids, size_t nkids, size_t me, int out_w,
                       int err_w, const sigset_t *oldmask, const struct zos_cli_fleet_job *job)
{
    int devnull = open("/dev/null", O_RDONLY);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    sigprocmask(SIG_SETMASK, oldmask, NULL);
    for (size_t i = 0; i < nkids; i++) /* the other children's pipes */
        for (int k = 0; k < 2; k++)
            close_stream(&kids[i].s[k]);
    if (devnull >= 0 && devnull != STDIN_FILENO) {
        dup2(devnull, STDIN_FILENO);
        close(devnull);
    }
    dup2(out_w, STDOUT_FILENO);
    dup2(err_w, STDERR_FILENO);
    close(out_w);
    close(err_w);
    cli->node = kids[me].name;
    cli->all = false;
    int rc = job->fn(cli, job->arg);
    fflush(stdout);
    fflush(stderr);
    exit(rc);
}

static int start_child(struct zos_cli *cli, struct child *kids, size_t nkids, size_t i,
                       const sigset_t *oldmask, const struct zos_cli_fleet_job *job)
{
    int out[2], err[2];
    if (pipe2(out, O_CLOEXEC) != 0)
        return -1;
    if (pipe2(err, O_CLOEXEC) != 0) {
        close(out[0]);
        close(out[1]);
        return -1;
    }
    fflush(NULL); /* a child must not inherit (and print again) our buffered output */
    pid_t pid = fork();
    if (pid == 0) {
        close(out[0]);
        close(err[0]);
        child_main(cli, kids, nkids, i, out[1], err[1], oldmask, job);
    }
    close(out[1]);
    close(err[1]);
    if (pid < 0) {
        close(out[0]);
        close(err[0]);
        return -1;
    }
    kids[i].pid = pid;
    kids[i].s[0].fd = out[0];
    kids[i].s[1].fd = err[0];
    kids[i].deadline_ms = job->timeout_ms > 0 ? zos_now_ms() + job->timeout_ms : 0;
    kids[i].res->started = true;
    return 0;
}

/* Reads what is there on stream K of child C; prints or keeps it. */
static void read_stream(struct child *c, int k, const struct zos_cli_fleet_job *job)
{
    char chunk[READ_CHUNK];
    struct stream *s = &c->s[k];
    ssize_t r = read(s->fd, chunk, sizeof(chunk));
    if (r < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (r > 0 && stream_append(s, chunk, (size_t)r)) {
        if (!job->capture)
            flush_lines(c->name, s, k == 0 ? STDOUT_FILENO : STDERR_FILENO, false);
        return;
    }
    if (!job->capture)
        flush_lines(c->name, s, k == 0 ? STDOUT_FILENO : STDERR_FILENO, true);
    close_stream(s);
}

static void reap(struct child *c)
{
    int status;
    while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR)
        ;
    c->pid = -1;
    if (WIFEXITED(status))
        c->res->code = WEXITSTATUS(status);
    else if (WIFSIGNALED(status))
        c->res->code = 128 + WTERMSIG(status);
    else
        c->res->code = ZOS_EXIT_GENERAL;
    c->res->done = true;
    c->res->out = c->s[0].buf;
    c->res->outlen = c->s[0].len;
    c->res->err = c->s[1].buf;
    c->res->errlen = c->s[1].len;
    c->s[0].buf = c->s[1].buf = NULL;
}

static bool running(const struct child *c)
{
    return c->pid > 0;
}

/* Kills children past their deadline; the poll timeout until the next one. */
static int check_deadlines(struct child *kids, size_t n)
{
    long long now = zos_now_ms(), next = -1;
    for (size_t i = 0; i < n; i++) {
        struct child *c = &kids[i];
        if (!running(c) || c->deadline_ms == 0 || c->res->timed_out)
            continue;
        if (c->deadline_ms <= now) {
            c->res->timed_out = true;
            kill(c->pid, SIGKILL);
        } else if (next < 0 || c->deadline_ms - now < next) {
            next = c->deadline_ms - now;
        }
    }
    return next < 0 ? -1 : (int)(next > 60000 ? 60000 : next);
}

/* One turn: poll every open pipe, read, reap children whose pipes closed. */
static void turn(struct child *kids, size_t n, struct pollfd *pfd, size_t *map,
                 const sigset_t *oldmask, const struct zos_cli_fleet_job *job)
{
    size_t np = 0;
    int timeout = check_deadlines(kids, n);
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 2; k++)
            if (running(&kids[i]) && kids[i].s[k].fd >= 0) {
                pfd[np] = (struct pollfd){.fd = kids[i].s[k].fd, .events = POLLIN};
                map[np++] = i * 2 + (size_t)k;
            }
    struct timespec ts = {timeout / 1000, (timeout % 1000) * 1000000L};
    int r = ppoll(pfd, np, timeout >= 0 ? &ts : NULL, oldmask);
    for (size_t p = 0; r > 0 && p < np; p++)
        if (pfd[p].revents != 0)
            read_stream(&kids[map[p] / 2], (int)(map[p] % 2), job);
    for (size_t i = 0; i < n; i++)
        if (running(&kids[i]) && kids[i].s[0].fd < 0 && kids[i].s[1].fd < 0)
            reap(&kids[i]);
}

static void pass_signal(struct child *kids, size_t n, int sig)
{
    for (size_t i = 0; i < n; i++)
        if (running(&kids[i]))
            kill(kids[i].pid, sig);
}

int zos_cli_fleet_run(struct zos_cli *cli, const struct zos_cli_fleet *f,
                      const struct zos_cli_fleet_job *job, struct zos_cli_fleet_result *res)
{
    struct child *kids = calloc(f->n, sizeof(*kids));
    size_t maxrun = cli->parallel > 0 ? (size_t)cli->parallel : ZOS_CLI_PARALLEL_DEFAULT;
    struct pollfd *pfd = calloc(2 * maxrun, sizeof(*pfd));
    size_t *map = calloc(2 * maxrun, sizeof(*map)), next = 0, nrun = 0;
    struct sigaction sa = {.sa_handler = on_signal}, old[3];
    sigset_t block, oldmask;
    int passed = 0, rc = 0;

    if (kids == NULL || pfd == NULL || map == NULL) {
        free(kids);
        free(pfd);
        free(map);
        return zos_cli_fail(ZOS_EXIT_GENERAL, "out of memory");
    }
    for (size_t i = 0; i < f->n; i++) {
        memset(&res[i], 0, sizeof(res[i]));
        kids[i] =
            (struct child){.name = f->names[i], .s = {{.fd = -1}, {.fd = -1}}, .res = &res[i]};
    }
    /* signals stay blocked except inside ppoll, so none is missed between
     * the check of stop_signal and the wait */
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    sigprocmask(SIG_BLOCK, &block, &oldmask);
    stop_signal = 0;
    sigaction(SIGINT, &sa, &old[0]);
    sigaction(SIGTERM, &sa, &old[1]);
    sigaction(SIGHUP, &sa, &old[2]);
    zos_cli_debug(cli, "%zu nodes, at most %zu at once", f->n, maxrun);
    for (;;) {
        if (stop_signal != 0 && passed == 0) {
            passed = stop_signal;
            pass_signal(kids, f->n, passed);
        }
        while (passed == 0 && rc == 0 && next < f->n && nrun < maxrun) {
            if (start_child(cli, kids, f->n, next, &oldmask, job) != 0) {
                rc = zos_cli_fail(ZOS_EXIT_GENERAL, "cannot start a process for node '%s': %s",
                                  f->names[next], strerror(errno));
                break;
            }
            next++;
            nrun++;
        }
        if (nrun == 0)
            break;
        turn(kids, f->n, pfd, map, &oldmask, job);
        nrun = 0;
        for (size_t i = 0; i < f->n; i++)
            nrun += running(&kids[i]);
    }
    sigaction(SIGINT, &old[0], NULL);
    sigaction(SIGTERM, &old[1], NULL);
    sigaction(SIGHUP, &old[2], NULL);
    sigprocmask(SIG_SETMASK, &oldmask, NULL);
    for (size_t i = 0; i < f->n; i++)
        for (int k = 0; k < 2; k++)
            free(kids[i].s[k].buf);
    free(kids);
    free(pfd);
    free(map);
    if (rc == 0 && passed != 0)
        rc = 128 + passed;
    return rc;
}

void zos_cli_fleet_results_free(struct zos_cli_fleet_result *res, size_t n)
{
    for (size_t i = 0; res != NULL && i < n; i++) {
        free(res[i].out);
        free(res[i].err);
    }
    free(res);
}

/* ---- a command on every node ---- */

/* Commands that make no sense on several nodes at once. */
static const char *const refused[] = {
    "init",       "configure",  "remove",           "forgetvm", "setdefault",
    "showconfig", "showactive", "showactiveconfig", "help",
};
static const char *const refused_container[] = {"shell", "mount", "download"};

static const char *why_refused(const char *sub)
{
    if (strcmp(sub, "shell") == 0)
        return "it is interactive";
    if (strcmp(sub, "mount") == 0)
        return "every node would mount on the same local directory";
    return "every node would write the same local destination";
}

int zos_cli_fleet_check(const char *cmd, int argc, char **argv)
{
    for (size_t i = 0; i < ZOS_ARRAY_LEN(refused); i++)
        if (strcmp(cmd, refused[i]) == 0)
            return zos_cli_fail(ZOS_EXIT_MALFORMED_ARGS,
                                "'%s' does not run across nodes: give --node=<one name>, or "
                                "no --node and no --all",
                                cmd);
    if (strcmp(cmd, "container") != 0)
        return -1;
    /* container [<id>] <sub>: the sub-command is the first or second word */
    for (int i = 0; i < argc && i < 2 && argv[i][0] != '-'; i++)
        for (size_t k = 0; k < ZOS_ARRAY_LEN(refused_container); k++)
            if (strcmp(argv[i], refused_container[k]) == 0)
                return zos_cli_fail(ZOS_EXIT_MALFORMED_ARGS,
                                    "'container %s' does not run across nodes: %s; give "
                                    "--node=<one name>",
                                    argv[i], why_refused(argv[i]));
    return -1;
}

struct command_job {
    int (*fn)(struct zos_cli *cli, int argc, char **argv);
    int argc;
    char **argv;
};

static int run_command(struct zos_cli *cli, void *arg)
{
    struct command_job *c = arg;
    return c->fn(cli, c->argc, c->argv);
}

/* "zos: 2 of 20 nodes failed: b (exit 12), c (exit 24)" on stderr. */
static void summary(const struct zos_cli_fleet *f, const struct zos_cli_fleet_result *res)
{
    size_t failed = 0, notrun = 0;
    for (size_t i = 0; i < f->n; i++) {
        failed += res[i].done && res[i].code != 0;
        notrun += !res[i].done;
    }
    if (failed > 0) {
        fprintf(stderr, "zos: %zu of %zu nodes failed:", failed, f->n);
        for (size_t i = 0, k = 0; i < f->n; i++)
            if (res[i].done && res[i].code != 0)
                fprintf(stderr, "%s %s (exit %d)", k++ ? "," : "", f->names[i], res[i].code);
        fputc('\n', stderr);
    }
    if (notrun > 0) {
        fprintf(stderr, "zos: %zu of %zu nodes not run or not finished:", notrun, f->n);
        for (size_t i = 0, k = 0; i < f->n; i++)
            if (!res[i].done)
                fprintf(stderr, "%s %s", k++ ? "," : "", f->names[i]);
        fputc('\n', stderr);
    }
}

int zos_cli_fleet_command(struct zos_cli *cli, int (*fn)(struct zos_cli *, int, char **), int argc,
                          char **argv)
{
    struct zos_cli_fleet f;
    struct command_job c = {fn, argc, argv};
    struct zos_cli_fleet_job job = {.fn = run_command, .arg = &c};
    int rc = zos_cli_fleet_names(cli, &f);
    if (rc != 0)
        return rc;
    struct zos_cli_fleet_result *res = calloc(f.n, sizeof(*res));
    if (res == NULL) {
        zos_cli_fleet_free(&f);
        return zos_cli_fail(ZOS_EXIT_GENERAL, "out of memory");
    }
    rc = zos_cli_fleet_run(cli, &f, &job, res);
    fflush(stdout);
    summary(&f, res);
    for (size_t i = 0; i < f.n; i++)
        if (res[i].code > rc)
            rc = res[i].code;
    zos_cli_fleet_results_free(res, f.n);
    zos_cli_fleet_free(&f);
    return rc;
}
