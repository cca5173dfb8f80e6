/* sshd.c -- a container's port 22 is a real sshd (issue 6, part 4).
 *
 *   corex.dispatch "service ssh start" --> sim_sshd_command (job thread)
 *        |  parsed here; the work is handed to one worker thread and waited for
 *        v
 *   worker: started = true; forwards to 22?  --> host key (ssh-keygen, once per
 *        container), sshd_config + session wrapper in <dir>/containers/<id>/ssh,
 *        fork /usr/sbin/sshd -D -e on 127.0.0.1:<host port>, wait until it listens
 *   corex.portforward-add/remove --> sim_sshd_sync:  restart on the new ports, or stop
 *   corex.terminate --> sim_sshd_forget;  simulator exit --> sim_sshd_shutdown
 *
 * Every sshd is forked by the worker, a thread that lives as long as the
 * simulator: PR_SET_PDEATHSIG fires when the *thread* that forked a child
 * exits, so a job thread (gone after its job) would kill sshd at once.
 *
 * sshd calls setsid() for each connection, so killing its process group is not
 * enough: sshd_stop freezes the listener and every descendant (SIGSTOP, found
 * through /proc ppid links) and then SIGKILLs them all, sessions included.
 */
#include "sim.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define SSHD_DEFAULT   "/usr/sbin/sshd"
#define SSHD_READY_MS  5000
#define SSHD_MAX_PROCS 512
#define MSG_STARTING   " * Starting OpenBSD Secure Shell server sshd\n"
#define MSG_STOPPING   " * Stopping OpenBSD Secure Shell server sshd\n"
#define MSG_RESTARTING " * Restarting OpenBSD Secure Shell server sshd\n"
#define MSG_RELOADING  " * Reloading OpenBSD Secure Shell server's configuration sshd\n"
#define MSG_DONE       "   ...done.\n"
#define MSG_FAIL       "   ...fail!\n"
#define INIT_USAGE                                                                                 \
    "Usage: /etc/init.d/ssh {start|stop|reload|force-reload|restart|try-restart|status}\n"

enum action {
    A_START,
    A_STOP,
    A_RESTART,
    A_TRY_RESTART,
    A_RELOAD,
    A_STATUS,
    A_DAEMON, /* /usr/sbin/sshd run directly */
};

enum op { OP_SERVICE, OP_SYNC, OP_FORGET, OP_SHUTDOWN };

struct request {
    enum op op;
    unsigned cid;
    enum action action;
    int status;      /* exit status of the service command */
    char *out, *err; /* its stdout and stderr (open_memstream buffers) */
    size_t olen, elen;
    bool done;
    struct request *next;
};

/* One container's sshd.  Touched by the worker thread only. */
struct sshd {
    unsigned cid;
    bool started; /* "service ssh start" ran: sshd runs inside the container */
    pid_t pid;    /* the listener on the host, 0 when none */
    int ports[SIM_SSH_MAX_PORTS];
    size_t nports;
    struct sshd *next;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static struct request *q_head, *q_tail;
static bool worker_running, worker_gone;
static pthread_t worker;
static struct sshd *table;

static const char *sshd_binary(void)
{
    const char *p = getenv("ZOS_SIM_SSHD");
    return p && p[0] ? p : SSHD_DEFAULT;
}

static const char *sftp_server(void)
{
    static const char *const paths[] = {"/usr/lib/openssh/sftp-server",
                                        "/usr/libexec/openssh/sftp-server",
                                        "/usr/libexec/sftp-server", "/usr/lib/ssh/sftp-server"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        if (access(paths[i], X_OK) == 0)
            return paths[i];
    return NULL;
}

/* ---- the listener: start, readiness, stop ---- */

/* Socket inodes of PID's open files, into INODES (at most MAX).  The count. */
static size_t socket_inodes(pid_t pid, unsigned long *inodes, size_t max)
{
    char path[64], link[128];
    size_t n = 0;
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (d == NULL)
        return 0;
    for (struct dirent *e; (e = readdir(d)) != NULL && n < max;) {
        char fdpath[384];
        if (e->d_name[0] == '.')
            continue;
        snprintf(fdpath, sizeof fdpath, "%s/%s", path, e->d_name);
        ssize_t len = readlink(fdpath, link, sizeof link - 1);
        if (len <= 0)
            continue;
        link[len] = '\0';
        unsigned long ino;
        if (sscanf(link, "socket:[%lu]", &ino) == 1)
            inodes[n++] = ino;
    }
    closedir(d);
    return n;
}

/* True when PID listens on 127.0.0.1 at every one of PORTS.  Checking the
 * socket's owner (not just connecting) tells our sshd from another process
 * that happens to hold the port. */
static bool listening(pid_t pid, const int *ports, size_t nports)
{
    unsigned long inodes[64];
    size_t ni = socket_inodes(pid, inodes, 64);
    bool found[SIM_SSH_MAX_PORTS] = {false};
    char *t = ni ? sim_read_file("/proc/net/tcp", NULL) : NULL;
    char *save = NULL;
    for (char *l = t ? strtok_r(t, "\n", &save) : NULL; l; l = strtok_r(NULL, "\n", &save)) {
        char local[64], state[8];
        unsigned long ino;
        if (sscanf(l, "%*s %63s %*s %7s %*s %*s %*s %*s %*s %lu", local, state, &ino) != 3 ||
            strcmp(state, "0A") != 0)
            continue;
        char *colon = strchr(local, ':');
        if (colon == NULL)
            continue;
        int port = (int)strtol(colon + 1, NULL, 16);
        bool ours = false;
        for (size_t i = 0; i < ni; i++)
            ours |= inodes[i] == ino;
        for (size_t i = 0; ours && i < nports; i++)
            found[i] |= ports[i] == port;
    }
    free(t);
    for (size_t i = 0; i < nports; i++)
        if (!found[i])
            return false;
    return nports > 0;
}

/* The parent pid of PID from /proc/<pid>/stat, or -1. */
static pid_t parent_of(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    char *t = sim_read_file(path, NULL);
    char *paren = t ? strrchr(t, ')') : NULL;
    int ppid = -1;
    if (paren == NULL || sscanf(paren + 1, " %*c %d", &ppid) != 1)
        ppid = -1;
    free(t);
    return ppid;
}

/* Adds to SET (size *N) every process whose parent is already in SET, freezing
 * each (SIGSTOP) so that it forks no more.  The number added. */
static size_t freeze_children(pid_t *set, size_t *n)
{
    size_t added = 0;
    DIR *d = opendir("/proc");
    if (d == NULL)
        return 0;
    for (struct dirent *e; (e = readdir(d)) != NULL && *n < SSHD_MAX_PROCS;) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        pid_t p = (pid_t)atoi(e->d_name), pp = parent_of(p);
        bool known = false, child = false;
        for (size_t i = 0; i < *n; i++) {
            known |= set[i] == p;
            child |= set[i] == pp;
        }
        if (child && !known) {
            kill(p, SIGSTOP);
            set[(*n)++] = p;
            added++;
        }
    }
    closedir(d);
    return added;
}

/* Stops S's listener and everything it started (connections, sessions). */
static void sshd_stop(struct sshd *s)
{
    if (s->pid <= 0)
        return;
    pid_t set[SSHD_MAX_PROCS];
    size_t n = 0;
    set[n++] = s->pid;
    kill(s->pid, SIGSTOP);
    for (int round = 0; round < 50 && freeze_children(set, &n) > 0; round++)
        ;
    for (size_t i = n; i-- > 0;)
        kill(set[i], SIGKILL);
    while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR)
        ;
    sim_log("container %u: sshd %d stopped", s->cid, (int)s->pid);
    s->pid = 0;
    s->nports = 0;
}

/* Whether S's listener still runs; reaps it when it died. */
static bool sshd_alive(struct sshd *s)
{
    if (s->pid <= 0)
        return false;
    if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
        sim_log("container %u: sshd %d exited by itself", s->cid, (int)s->pid);
        s->pid = 0;
        s->nports = 0;
        return false;
    }
    return true;
}

/* S with single quotes for sh. */
static void sh_quote(FILE *f, const char *s)
{
    fputc('\'', f);
    for (; *s; s++) {
        if (*s == '\'')
            fputs("'\\''", f);
        else
            fputc(*s, f);
    }
    fputc('\'', f);
}

static bool env_name_ok(const char *s, size_t len)
{
    if (len == 0 || isdigit((unsigned char)s[0]))
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_')
            return false;
    return true;
}

/* The ForceCommand of every session: the container's env (HOME mapped under
 * its root), cd to its root, then the sftp server, the command or a shell. */
static bool write_session(const char *path, const struct sim_ssh_view *v)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return false;
    const char *sftp = sftp_server();
    const char *shell = access("/bin/bash", X_OK) == 0 ? "/bin/bash" : "/bin/sh";
    fprintf(f, "#!/bin/sh\n# zos-node-sim: an ssh session of container %u (sshd ForceCommand)\n",
            v->cid);
    for (char **e = v->env; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        if (eq == NULL || !env_name_ok(*e, (size_t)(eq - *e)))
            continue;
        fprintf(f, "export %.*s=", (int)(eq - *e), *e);
        if (!strncmp(*e, "HOME=", 5) && eq[1] == '/') {
            /* "/" in the container is its root directory here. */
            char home[4096];
            snprintf(home, sizeof home, "%s%s", v->root, strcmp(eq + 1, "/") ? eq + 1 : "");
            sh_quote(f, home);
        } else {
            sh_quote(f, eq + 1);
        }
        fputc('\n', f);
    }
    char ps1[300];
    snprintf(ps1, sizeof ps1, "\\u@%s:\\W\\$ ", v->hostname);
    fputs("export PS1=", f);
    sh_quote(f, ps1);
    fputc('\n', f);
    fputs("cd ", f);
    sh_quote(f, v->root);
    fputs(" || exit 1\n", f);
    if (sftp) {
        /* A subsystem under ForceCommand runs the forced command with the
         * subsystem's command line in SSH_ORIGINAL_COMMAND. */
        fputs("if [ \"${SSH_ORIGINAL_COMMAND-}\" = ", f);
        sh_quote(f, sftp);
        fputs(" ]; then\n    exec ", f);
        sh_quote(f, sftp);
        fputs(" -d ", f);
        sh_quote(f, v->root);
        fputs("\nfi\n", f);
    }
    fprintf(f,
            "if [ -n \"${SSH_ORIGINAL_COMMAND+x}\" ]; then\n"
            "    exec %s -c \"$SSH_ORIGINAL_COMMAND\"\nfi\n",
            shell);
    if (!strcmp(shell, "/bin/bash"))
        fputs("exec /bin/bash --noprofile --norc\n", f);
    else
        fputs("exec /bin/sh\n", f);
    bool ok = fflush(f) == 0 && fchmod(fileno(f), 0700) == 0;
    return fclose(f) == 0 && ok;
}

static bool path_ok(const char *p)
{
    return strpbrk(p, "\"\n") == NULL;
}

static bool write_config(const char *path, const char *dir, const struct sim_ssh_view *v,
                         const int *ports, size_t nports)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return false;
    fprintf(f, "# zos-node-sim: the sshd of container %u\n", v->cid);
    for (size_t i = 0; i < nports; i++)
        fprintf(f, "ListenAddress 127.0.0.1:%d\n", ports[i]);
    fprintf(f, "HostKey \"%s/host_ed25519_key\"\n", dir);
    fprintf(f, "AuthorizedKeysFile \"%s/root/.ssh/authorized_keys\"\n", v->root);
    fputs("PidFile none\n"
          "UsePAM no\n"
          "StrictModes no\n"
          "PermitRootLogin prohibit-password\n"
          "PubkeyAuthentication yes\n"
          "PasswordAuthentication no\n"
          "KbdInteractiveAuthentication no\n"
          "PermitUserEnvironment no\n"
          "PermitUserRC no\n"
          "PrintMotd no\n"
          "PrintLastLog no\n"
          "X11Forwarding no\n"
          "UseDNS no\n"
          "LoginGraceTime 30\n",
          f);
    const char *sftp = sftp_server();
    if (sftp)
        fprintf(f, "Subsystem sftp %s\n", sftp);
    fputs("ForceCommand ", f);
    char session[4200];
    snprintf(session, sizeof session, "%s/session", dir);
    sh_quote(f, session);
    fputc('\n', f);
    bool ok = fflush(f) == 0 && fchmod(fileno(f), 0600) == 0;
    return fclose(f) == 0 && ok;
}

/* ssh-keygen of the container's host key, unless it has one. */
static bool host_key(const char *dir, unsigned cid, FILE *err)
{
    char key[4200], comment[64];
    snprintf(key, sizeof key, "%s/host_ed25519_key", dir);
    if (access(key, R_OK) == 0)
        return true;
    snprintf(comment, sizeof comment, "zos-node-sim container %u", cid);
    char *argv[] = {"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", key, NULL};
    int status = -1;
    free(sim_capture(argv, &status));
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return true;
    fprintf(err, "zos-node-sim: ssh-keygen could not make the host key %s\n", key);
    return false;
}

static void log_tail(const char *log, FILE *err)
{
    size_t len = 0;
    char *t = sim_read_file(log, &len);
    if (t && len) {
        size_t from = len > 1500 ? len - 1500 : 0;
        fprintf(err, "%s%s", t + from, t[len - 1] == '\n' ? "" : "\n");
    }
    free(t);
}

static void child_close_fds(void)
{
#ifdef SYS_close_range
    if (syscall(SYS_close_range, 3U, ~0U, 0U) == 0)
        return;
#endif
    long max = sysconf(_SC_OPEN_MAX);
    for (long fd = 3; fd < (max > 0 && max < 65536 ? max : 65536); fd++)
        close((int)fd);
}

/* Starts S's listener on PORTS; waits until it listens.  False with a message
 * on ERR. */
static bool sshd_start(struct sshd *s, const struct sim_ssh_view *v, const int *ports,
                       size_t nports, FILE *err)
{
    const char *bin = sshd_binary();
    char dir[4096], conf[4200], session[4200], log[4200];
    snprintf(dir, sizeof dir, "%s/ssh", v->state);
    snprintf(conf, sizeof conf, "%s/sshd_config", dir);
    snprintf(session, sizeof session, "%s/session", dir);
    snprintf(log, sizeof log, "%s/sshd.log", dir);
    if (!path_ok(dir) || !path_ok(v->root)) {
        fprintf(err, "zos-node-sim: %s: a path with '\"' cannot go in sshd_config\n", dir);
        return false;
    }
    if (sim_mkdirs(dir, 0700) < 0) {
        fprintf(err, "zos-node-sim: mkdir %s: %s\n", dir, strerror(errno));
        return false;
    }
    if (!host_key(dir, v->cid, err))
        return false;
    if (geteuid() == 0 && mkdir("/run/sshd", 0755) < 0 && errno != EEXIST)
        sim_log("mkdir /run/sshd: %s", strerror(errno)); /* sshd says what it misses */
    if (!write_session(session, v) || !write_config(conf, dir, v, ports, nports)) {
        fprintf(err, "zos-node-sim: cannot write %s: %s\n", dir, strerror(errno));
        return false;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(err, "zos-node-sim: fork: %s\n", strerror(errno));
        return false;
    }
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        setpgid(0, 0);
        /* Dies with the simulator, even after a kill -9 (see the header). */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(1);
        int in = open("/dev/null", O_RDONLY);
        int out = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (in < 0 || out < 0)
            _exit(127);
        dup2(in, 0);
        dup2(out, 1);
        dup2(out, 2);
        child_close_fds();
        char *envp[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", NULL};
        execle(bin, bin, "-D", "-e", "-f", conf, (char *)NULL, envp);
        dprintf(2, "zos-node-sim: cannot run %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
    s->pid = pid;
    s->nports = nports;
    memcpy(s->ports, ports, nports * sizeof ports[0]);
    for (int64_t end = sim_now_ms() + SSHD_READY_MS; sim_now_ms() < end; usleep(10000)) {
        if (!sshd_alive(s)) {
            fprintf(err, "zos-node-sim: sshd exited at start (%s):\n", log);
            log_tail(log, err);
            return false;
        }
        if (listening(pid, ports, nports)) {
            sim_log("container %u: sshd %d listens on 127.0.0.1:%d%s", v->cid, (int)pid, ports[0],
                    nports > 1 ? " and more" : "");
            return true;
        }
    }
    fprintf(err, "zos-node-sim: sshd does not listen after %d ms (%s):\n", SSHD_READY_MS, log);
    log_tail(log, err);
    sshd_stop(s);
    return false;
}

/* ---- the worker ---- */

static struct sshd *entry(unsigned cid, bool create)
{
    for (struct sshd *s = table; s; s = s->next)
        if (s->cid == cid)
            return s;
    if (!create)
        return NULL;
    struct sshd *s = calloc(1, sizeof *s);
    s->cid = cid;
    s->next = table;
    table = s;
    return s;
}

static void entry_remove(struct sshd *gone)
{
    for (struct sshd **p = &table; *p; p = &(*p)->next) {
        if (*p == gone) {
            *p = gone->next;
            free(gone);
            return;
        }
    }
}

/* Makes S's listener match what the container asks for: running on its
 * forwards to 22 while started.  False (message on ERR) when it should run
 * and could not be started; S is then no longer started. */
static bool reconcile(struct sshd *s, FILE *err)
{
    struct sim_ssh_view v;
    if (!sim_corex_ssh_view(s->cid, &v)) {
        sshd_stop(s); /* the container is gone */
        s->started = false;
        return true;
    }
    bool ok = true;
    sshd_alive(s); /* reaps a listener that died */
    bool want = s->started && v.nports > 0;
    bool same = s->nports == v.nports && !memcmp(s->ports, v.ports, v.nports * sizeof v.ports[0]);
    if (s->pid > 0 && (!want || !same))
        sshd_stop(s);
    if (want && s->pid == 0) {
        ok = sshd_start(s, &v, v.ports, v.nports, err);
        if (!ok)
            s->started = false;
    }
    sim_ssh_view_free(&v);
    return ok;
}

/* Whether sshd counts as running in the container (for `status`): started,
 * and its listener (when there is one) has not died. */
static bool running(struct sshd *s)
{
    if (s->pid > 0 && !sshd_alive(s))
        s->started = false;
    return s->started;
}

/* sshd starts in the container (and on the host when a forward reaches it). */
static bool start(struct sshd *s, FILE *err)
{
    if (access(sshd_binary(), X_OK) != 0) {
        fprintf(err,
                "zos-node-sim: %s is not installed on this host, so the container's sshd "
                "cannot run (install openssh-server)\n",
                sshd_binary());
        s->started = false;
        return false;
    }
    s->started = true;
    return reconcile(s, err);
}

static void service(struct request *r, FILE *out, FILE *err)
{
    struct sshd *s = entry(r->cid, true);
    bool ok = true, was = running(s);
    r->status = 0;
    switch (r->action) {
    case A_DAEMON:
        if (was) {
            fputs("Bind to port 22 on 0.0.0.0 failed: Address already in use.\n"
                  "Cannot bind any address.\n",
                  err);
            r->status = 255;
        } else {
            r->status = start(s, err) ? 0 : 1;
        }
        break;
    case A_START:
    case A_RESTART:
    case A_TRY_RESTART:
        fputs(r->action == A_START ? MSG_STARTING : MSG_RESTARTING, out);
        if (r->action == A_TRY_RESTART && !was) {
            fputs(MSG_DONE, out);
            break;
        }
        if (r->action != A_START)
            sshd_stop(s);
        ok = start(s, err);
        fputs(ok ? MSG_DONE : MSG_FAIL, out);
        r->status = ok ? 0 : 1;
        break;
    case A_STOP:
        fputs(MSG_STOPPING, out);
        sshd_stop(s);
        s->started = false;
        fputs(MSG_DONE, out);
        break;
    case A_RELOAD:
        fputs(MSG_RELOADING, out);
        ok = !was || reconcile(s, err);
        fputs(ok ? MSG_DONE : MSG_FAIL, out);
        r->status = ok ? 0 : 1;
        break;
    case A_STATUS:
        fputs(was ? " * sshd is running\n" : " * sshd is not running\n", out);
        r->status = was ? 0 : 3;
        break;
    }
    if (!s->started && s->pid == 0)
        entry_remove(s);
}

static void handle(struct request *r)
{
    FILE *out = open_memstream(&r->out, &r->olen), *err = open_memstream(&r->err, &r->elen);
    struct sshd *s;
    switch (r->op) {
    case OP_SERVICE:
        service(r, out, err);
        break;
    case OP_SYNC:
        if ((s = entry(r->cid, false)) != NULL) {
            if (running(s) && !reconcile(s, err))
                sim_log("container %u: %s", r->cid, "sshd could not follow the forwards");
            if (!s->started && s->pid == 0)
                entry_remove(s);
        }
        break;
    case OP_FORGET:
        if ((s = entry(r->cid, false)) != NULL) {
            sshd_stop(s);
            entry_remove(s);
        }
        break;
    case OP_SHUTDOWN:
        while (table) {
            sshd_stop(table);
            entry_remove(table);
        }
        break;
    }
    fclose(out);
    fclose(err);
}

static void *worker_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    for (;;) {
        while (q_head == NULL)
            pthread_cond_wait(&cond, &mu);
        struct request *r = q_head;
        q_head = r->next;
        if (q_head == NULL)
            q_tail = NULL;
        pthread_mutex_unlock(&mu);
        handle(r);
        pthread_mutex_lock(&mu);
        r->done = true;
        pthread_cond_broadcast(&cond);
        if (r->op == OP_SHUTDOWN)
            break;
    }
    worker_gone = true;
    for (struct request *r = q_head; r; r = r->next) {
        r->status = 1;
        r->done = true;
    }
    q_head = q_tail = NULL;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&mu);
    return NULL;
}

/* Runs R on the worker and waits.  False when there is no worker (any more,
 * or not yet and LAZY: nothing can be running then). */
static bool submit(struct request *r, bool lazy)
{
    pthread_mutex_lock(&mu);
    if (worker_gone || (lazy && !worker_running)) {
        pthread_mutex_unlock(&mu);
        return false;
    }
    if (!worker_running) {
        if (pthread_create(&worker, NULL, worker_main, NULL) != 0) {
            pthread_mutex_unlock(&mu);
            return false;
        }
        worker_running = true;
    }
    if (q_tail)
        q_tail->next = r;
    else
        q_head = r;
    q_tail = r;
    pthread_cond_broadcast(&cond);
    while (!r->done)
        pthread_cond_wait(&cond, &mu);
    pthread_mutex_unlock(&mu);
    return true;
}

void sim_sshd_sync(unsigned cid)
{
    struct request r = {.op = OP_SYNC, .cid = cid};
    submit(&r, true);
    free(r.out);
    free(r.err);
}

void sim_sshd_forget(unsigned cid)
{
    struct request r = {.op = OP_FORGET, .cid = cid};
    submit(&r, true);
    free(r.out);
    free(r.err);
}

void sim_sshd_shutdown(void)
{
    struct request r = {.op = OP_SHUTDOWN};
    pthread_mutex_lock(&mu);
    bool join = worker_running && !worker_gone;
    if (!worker_running)
        worker_gone = true;
    pthread_mutex_unlock(&mu);
    if (!join)
        return;
    submit(&r, true);
    pthread_join(worker, NULL);
    free(r.out);
    free(r.err);
}

/* ---- the commands ---- */

static const char *base_name(const char *s)
{
    const char *slash = strrchr(s, '/');
    return slash ? slash + 1 : s;
}

static bool parse_action(const char *a, enum action *out)
{
    static const struct {
        const char *name;
        enum action action;
    } names[] = {
        {"start", A_START},   {"stop", A_STOP},           {"restart", A_RESTART},
        {"reload", A_RELOAD}, {"force-reload", A_RELOAD}, {"try-restart", A_TRY_RESTART},
        {"status", A_STATUS},
    };
    for (size_t i = 0; a && i < sizeof names / sizeof names[0]; i++) {
        if (!strcmp(a, names[i].name)) {
            *out = names[i].action;
            return true;
        }
    }
    return false;
}

/* The result of a command handled here, shaped like a process's. */
static void fake_process(struct sim_job *j, struct sim_run *r, const char *out, size_t olen,
                         const char *err, size_t elen, int status)
{
    r->has_streams = true;
    if (olen)
        sim_job_message(j, r, SIM_LEVEL_STDOUT, out, olen);
    if (elen)
        sim_job_message(j, r, SIM_LEVEL_STDERR, err, elen);
    if (j->stream) {
        uint32_t meta = status == 0
                            ? (SIM_LEVEL_STDOUT << 16 | SIM_FLAG_EXIT_OK | SIM_FLAG_STREAM)
                            : (SIM_LEVEL_STDERR << 16 | SIM_FLAG_EXIT_ERR | SIM_FLAG_STREAM);
        sim_stream_push(j->id, j->container, "", 0, meta);
    }
    r->code = status == 0 ? 0 : (uint32_t)(1000 + status);
    r->state = status == 0 ? "SUCCESS" : "ERROR";
}

static void fake_text(struct sim_job *j, struct sim_run *r, const char *out, const char *err,
                      int status)
{
    fake_process(j, r, out, strlen(out), err, strlen(err), status);
}

bool sim_sshd_command(struct sim_job *j, char **argv, struct sim_run *r)
{
    if (j->container == 0 || argv == NULL || argv[0] == NULL)
        return false;
    const char *name = argv[0], *base = base_name(name);
    enum action action;
    const char *word;
    if (!strcmp(base, "service")) {
        if (argv[1] == NULL) {
            fake_text(j, r, "",
                      "Usage: service < option > | --status-all | [ service_name [ command | "
                      "--full-restart ] ]\n",
                      1);
            return true;
        }
        if (strcmp(argv[1], "ssh") != 0) {
            /* Nothing else is simulated; and a host service must not start. */
            char msg[512];
            snprintf(msg, sizeof msg, " %s: unrecognized service\n", argv[1]);
            fake_text(j, r, "", msg, 1);
            return true;
        }
        word = argv[2];
    } else if (!strcmp(name, "/etc/init.d/ssh")) {
        word = argv[1];
    } else if (!strcmp(base, "sshd") && (!strcmp(name, "sshd") || strstr(name, "sbin/sshd"))) {
        word = NULL;
    } else {
        return false;
    }
    if (strcmp(base, "sshd") == 0) {
        action = A_DAEMON;
    } else if (!parse_action(word, &action)) {
        fake_text(j, r, "", INIT_USAGE, 1);
        return true;
    }
    struct request q = {.op = OP_SERVICE, .cid = j->container, .action = action};
    if (!submit(&q, false)) {
        fake_text(j, r, "", "zos-node-sim: stopping\n", 1);
    } else {
        fake_process(j, r, q.out ? q.out : "", q.olen, q.err ? q.err : "", q.elen, q.status);
    }
    free(q.out);
    free(q.err);
    return true;
}
