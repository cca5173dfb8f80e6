/* ssh.h -- SSH into containers with libssh: pinned host keys, key auth, exec,
 * an interactive shell and SFTP upload/download.
 *
 *   zos_ssh_connect: TCP --> key exchange --> host key vs pin file --> key auth
 *                                             (trust on first use: append)
 *   zos_ssh_exec:    channel --> exec --> stdout/stderr sinks --> exit status
 *   zos_ssh_shell:   local tty (raw) <--> channel with a pty <--> remote shell
 *   zos_ssh_upload/download: SFTP, walk first (total for the progress), then copy
 *
 * Everything blocks.  Threads: call zos_ssh_init() once, before any thread
 * uses the module; afterwards each session belongs to one thread at a time
 * (one session per thread is the rule; different sessions may run in
 * parallel).  zos_ssh_shell() changes the terminal and installs process-wide
 * signal handlers: call it from the CLI's main thread only, never from the
 * proxy.
 *
 * Nothing here reads ~/.ssh/config or touches ~/.ssh/known_hosts: host keys
 * are pinned in the caller's file, one "host:port sha256hex" line each.
 */
#ifndef ZOS_SSH_H
#define ZOS_SSH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct zos_ssh_opts {
    const char *host;        /* name or address */
    int port;                /* 0: 22 */
    const char *user;        /* NULL: "root" */
    const char *key_path;    /* private key file; NULL: the ssh agent ($SSH_AUTH_SOCK), then
                                ~/.ssh/id_ed25519, id_ecdsa, id_rsa.  Keys without passphrase
                                (use the agent for protected keys) */
    const char *known_hosts; /* pin file (required): zos_known_hosts_path; made
                                with mode 0600, its directory with 0700 */
    int timeout_ms;          /* connect and each blocking step; 0: 10000 */
};

struct zos_ssh;

/* Once per process, before threads use the module.  ZOS_OK or ZOS_ERR. */
int zos_ssh_init(void);
/* At exit, after every session was freed (keeps valgrind quiet). */
void zos_ssh_cleanup(void);

/* Connects, checks the host key against the pin file and authenticates.
 * OPTS and its strings are borrowed for the call only.  The caller owns the
 * session (zos_ssh_free).  NULL with ERR set: "ssh HOST:PORT: ...", e.g.
 * "permission denied (publickey): ...", "host key for HOST:PORT changed
 * (was SHA256:..., now SHA256:...): ... remove its line from FILE", or
 * "key FILE: No such file or directory". */
struct zos_ssh *zos_ssh_connect(const struct zos_ssh_opts *opts, char *err, size_t errlen);

/* Disconnects and frees.  Accepts NULL. */
void zos_ssh_free(struct zos_ssh *s);

/* "SHA256:<base64>" of the server's host key, as OpenSSH prints it.  Owned
 * by S. */
const char *zos_ssh_fingerprint(const struct zos_ssh *s);

/* Moves the pins of OLD, the pin file of an earlier zos, into TO once: each
 * host:port TO has no pin for is appended (under TO's lock; TO's own pins
 * win), then OLD is renamed OLD.migrated.  OLD is left alone when it is
 * absent, a symlink or not a regular file, holds no pin, or lies in ~/.ssh;
 * and, with -1 and ERR, when a line of it is not a pin (another program's
 * file).  The number of pins appended, or -1 with ERR. */
int zos_ssh_pins_migrate(const char *old, const char *to, char *err, size_t errlen);

/* ---- exec ------------------------------------------------------------- */

#define ZOS_SSH_STDOUT 1
#define ZOS_SSH_STDERR 2

/* Receives output as it arrives; STREAM is ZOS_SSH_STDOUT or ZOS_SSH_STDERR.
 * Return 0 to go on, -1 to stop the command (exec then fails with
 * "output refused"). */
typedef int (*zos_ssh_data_fn)(void *arg, int stream, const char *buf, size_t len);

/* Where exec's output goes.  All borrowed.  With FN set, FN gets both
 * streams; otherwise a stream goes to its FILE (flushed after each chunk)
 * when non-NULL, else it is collected into the result. */
struct zos_ssh_exec_io {
    zos_ssh_data_fn fn;
    void *arg;
    FILE *out, *err;
    FILE *in;          /* forwarded (read(2) on its fd) until EOF; NULL: EOF at once */
    size_t max_output; /* per collected stream; 0: 64 MiB; past it exec fails */
    int timeout_ms;    /* whole command; 0: no limit */
};

struct zos_ssh_result {
    int status;       /* exit status; 128+n when killed by signal n; -1 after an error */
    int signal;       /* n when the command was killed by signal n (SIGKILL, ...), else 0;
                         a signal without a local number gives 0 and status 255 */
    char signame[16]; /* the server's name for it ("KILL"), "" when none */
    char *out, *err;  /* collected streams, NUL-terminated ("" when nothing or sent
                         elsewhere); NULL after an error */
    size_t out_len, err_len;
};

/* Runs CMD (a shell command line, borrowed) in a new channel and waits for it.
 * IO may be NULL (collect both streams, no input).  ZOS_OK when the command
 * ran, whatever its exit status (RES->status); ZOS_ERR with ERR on transport
 * failure, a refused sink, the output limit or the timeout, RES then holds
 * nothing to free.  On ZOS_OK free RES with zos_ssh_result_clear(). */
int zos_ssh_exec(struct zos_ssh *s, const char *cmd, const struct zos_ssh_exec_io *io,
                 struct zos_ssh_result *res, char *err, size_t errlen);

/* Frees the collected output and resets RES.  Accepts NULL. */
void zos_ssh_result_clear(struct zos_ssh_result *res);

/* ---- interactive shell --------------------------------------------------- */

struct zos_ssh_shell_opts {
    const char *command; /* NULL: the login shell; else run this (like "ssh -t") */
    const char *term;    /* NULL: $TERM, else "xterm" */
    bool pty;            /* request a pty even when stdin is not a terminal */
};

/* Connects stdin/stdout/stderr to a remote shell and returns when it ends.
 * When stdin is a terminal: a pty of the terminal's size is requested, the
 * terminal is put in raw mode and restored on every way out (remote exit or
 * close, error, SIGINT/SIGTERM/SIGHUP), and window-size changes (SIGWINCH)
 * are forwarded.  Otherwise stdin is forwarded until EOF, without raw mode
 * and without pty unless OPTS->pty.  OPTS may be NULL.  Signal handlers
 * (which only set flags) are installed for the call and the previous ones
 * put back.  ZOS_OK with *STATUS the remote exit status (128+n for a signal);
 * ZOS_ERR with ERR otherwise; after SIGINT/SIGTERM/SIGHUP ERR is
 * "interrupted by SIGTERM" and *STATUS 128+n.  Main thread only. */
int zos_ssh_shell(struct zos_ssh *s, const struct zos_ssh_shell_opts *opts, int *status, char *err,
                  size_t errlen);

/* ---- SFTP ------------------------------------------------------------- */

#define ZOS_SSH_CHUNK (64 * 1024) /* upload write size; downloads pipeline 32 KiB reads */

/* Progress of a transfer: DONE of TOTAL bytes (all files of a tree), PATH the
 * file being copied (source side).  Called after each chunk and once more at
 * the end with DONE == TOTAL.  Return 0 to go on, -1 to cancel (the transfer
 * then fails with "cancelled"). */
typedef int (*zos_ssh_progress_fn)(void *arg, const char *path, uint64_t done, uint64_t total);

/* Copies LOCAL (a file or a directory tree, borrowed) to REMOTE.  As cp -r:
 * when REMOTE is an existing directory the copy goes inside it under LOCAL's
 * name, else it is created as REMOTE (an existing directory is merged into).
 * Permission bits (0777) are kept, setuid/setgid/sticky never; names with a "/" from the server are
 * refused; symbolic links are followed; sockets, fifos and devices are skipped.  A remote relative
 * path is relative to the user's home.  PROGRESS may be NULL.  ZOS_OK, or ZOS_ERR with ERR naming
 * the path ("/srv/x: permission denied").  Files copied before an error stay. */
int zos_ssh_upload(struct zos_ssh *s, const char *local, const char *remote,
                   zos_ssh_progress_fn progress, void *arg, char *err, size_t errlen);

/* The other way: REMOTE (file or tree) to LOCAL, same rules; a remote
 * directory is created locally. */
int zos_ssh_download(struct zos_ssh *s, const char *remote, const char *local,
                     zos_ssh_progress_fn progress, void *arg, char *err, size_t errlen);

/* A progress bar for zos_ssh_progress_fn: pass zos_ssh_bar_progress with a
 * struct zos_ssh_bar as ARG.  Draws on OUT (e.g. stderr) only when OUT is a
 * terminal, redrawing in place and ending the line at 100%:
 *   "big.bin              [#########.........]  52%  10.4/20.0 MiB" */
struct zos_ssh_bar {
    FILE *out;     /* borrowed */
    int width;     /* cells of the bar; 0: 30 */
    int last;      /* private: last permille drawn + 1, 0 before the first */
    bool finished; /* private: the final line was drawn */
};

int zos_ssh_bar_progress(void *bar, const char *path, uint64_t done, uint64_t total);

#endif
