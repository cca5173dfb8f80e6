/* proc.h -- child processes: run a program, capture its stdout and stderr, get its status.
 *
 *   argv --fork/execvp--> child --stdout, stderr pipes--> struct zos_proc_result
 *                                                         {status, out, err}
 *        blocking: zos_proc_exec (poll, waits)    async: zos_proc_spawn (libevent, no SIGCHLD)
 *
 * A program is always started by execvp with an argv array: its arguments are
 * never seen by a shell.  The child gets stdin from /dev/null, no descriptor
 * of ours above 2 and SIGPIPE at its default, whatever the parent did.
 */
#ifndef ZOS_PROC_H
#define ZOS_PROC_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>

/* What a finished child left.  STATUS is the exit status (0..255), 128+N when
 * signal N killed it, -1 when it could not be collected.  OUT and ERR are
 * NUL-terminated ("" when it wrote nothing, NULL only when out of memory),
 * at most 4 MiB each (the rest is dropped), and owned by the result. */
struct zos_proc_result {
    int status;
    char *out;
    char *err;
};

/* Frees OUT and ERR and zeroes R.  Accepts a zeroed result. */
void zos_proc_result_clear(struct zos_proc_result *r);

/* Runs ARGV (argv[0] found by execvp, NULL-terminated), fills RES (the caller
 * clears it).  Returns ZOS_OK when the child ran, whatever its status; ZOS_ERR
 * with ERR when it could not be started (fork/pipe/exec failure).  The type
 * lets a caller put a stand-in where zos_proc_exec would run. */
typedef int (*zos_proc_run_fn)(void *arg, char *const argv[], struct zos_proc_result *res,
                               char *err, size_t errlen);

/* The blocking runner (a zos_proc_run_fn; ARG is unused).  Returns when the
 * child has exited and its pipes are drained, or shortly after it exited if a
 * grandchild kept them open.  An exec failure is ZOS_ERR with
 * "cannot run 'PROG': <strerror>", not exit status 127. */
int zos_proc_exec(void *arg, char *const argv[], struct zos_proc_result *res, char *err,
                  size_t errlen);

/* The asynchronous runner.  Design: no SIGCHLD at all.  The child's stdout
 * and stderr are non-blocking pipes read by libevent; when both reach EOF the
 * child is reaped with waitpid(pid, WNOHANG), retried on a short backoff
 * timer (1 ms doubling to 100 ms) if it has not exited yet.  While the pipes
 * are open a slow timer (250 ms) polls waitpid too, so a grandchild that
 * inherited the pipes (a daemon) cannot hold the callback: it comes about
 * 0.75 s after the child's exit.  Not libevent's signal event: libevent
 * delivers a signal to one event base only, and a SIGCHLD handler would race
 * with every other module's children.  This needs no signal disposition; it
 * only requires that SIGCHLD is not set to SIG_IGN (then the kernel reaps
 * children itself and STATUS is -1). */
struct zos_proc;

/* Called once, from the loop, when the child has exited.  RES is borrowed for
 * the call; the callee may take RES->out/err (set them to NULL).  ERR is
 * non-NULL when the output or the status could not be collected (STATUS may
 * still be valid).  The proc is freed after the callback returns. */
typedef void (*zos_proc_fn)(void *arg, struct zos_proc_result *res, const char *err);

/* Starts ARGV (borrowed for the call only) on BASE.  The call blocks only for
 * fork and exec (an exec failure is reported here, through a close-on-exec
 * pipe).  NULL with ERR when the child could not be started (then FN is never
 * called).  FN never runs inside this call. */
struct zos_proc *zos_proc_spawn(struct event_base *base, char *const argv[], zos_proc_fn fn,
                                void *arg, char *err, size_t errlen);

/* Kills the child (SIGKILL), reaps it and frees P without calling FN.
 * Accepts NULL.  Not from inside P's own callback. */
void zos_proc_cancel(struct zos_proc *p);

/* The first executable regular file PROG in $PATH ("/bin:/usr/bin" when
 * unset, "" or a relative entry taken from the working directory, symlinks
 * kept), written to PATH (LEN bytes).  A PROG with a '/' is only checked. */
bool zos_proc_which(const char *prog, char *path, size_t len);

/* ARGV as a person would type it into BUF (LEN bytes, truncated to fit):
 * the basename of argv[0], then the words, shell-quoted where needed:
 *   "VBoxManage storagectl zos --name 'SATA Controller'" */
void zos_proc_argv_text(char *const argv[], char *buf, size_t len);

/* Frees a NULL-terminated ARGV whose strings and array were malloc'd.
 * Accepts NULL. */
void zos_proc_argv_free(char **argv);

#endif
