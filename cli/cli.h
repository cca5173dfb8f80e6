/* cli.h -- what the files of the zos command-line tool share.
 *
 *   main.c      global options, the command table, help
 *   args.c      per-command option parsing (--key=value, --key value, flags)
 *   node.c      one session with the active node: link + jobs on a private
 *               event loop, run synchronously; raw GET/SET; the spinner
 *   fleet.c     --all / --node=a,b,c: a child process per node, output
 *               prefixed line by line, the worst exit code
 *   print.c     pretty JSON (2 spaces, as the original) and tables
 *   exitcode.c  the one table from a library error's category to an exit code
 *   live.c      a streamed job's output, written by a thread as it arrives
 *   cmd_*.c     the commands; names.c the adjective_surname generator;
 *   sshkeys.c   public keys for new containers (file, ssh agent)
 *
 * Every command handler returns the process exit code (the original tool's
 * codes, core0-protocol.md §9.5) after printing its own error message.
 */
#ifndef ZOS_CLI_H
#define ZOS_CLI_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "zos/conf.h"
#include "zos/container.h"
#include "zos/job.h"

/* Exit codes of the original tool (src/commons/errorcodes.nim). */
enum zos_cli_exit {
    ZOS_EXIT_OK = 0,
    ZOS_EXIT_CANT_CREATE_CONFIG = 1,
    ZOS_EXIT_SSHKEY_NOT_FOUND = 2,
    ZOS_EXIT_CONTAINER_NOT_FOUND = 3,
    ZOS_EXIT_VBOX_NOT_INSTALLED = 4,
    ZOS_EXIT_UNCONFIGURED = 5,
    ZOS_EXIT_UNKNOWN_COMMAND = 6,
    ZOS_EXIT_DEPS_NOT_INSTALLED = 7,
    ZOS_EXIT_PORT_FORWARD_EXISTS = 8,
    ZOS_EXIT_CANT_FIND_SSHKEYS = 9,
    ZOS_EXIT_SSH_NOT_ENABLED = 10,
    ZOS_EXIT_FILE_DOESNT_EXIST = 11,
    ZOS_EXIT_UNREACHABLE = 12,
    ZOS_EXIT_CANT_CREATE_CONTAINER = 13,
    ZOS_EXIT_GENERAL = 14,
    ZOS_EXIT_MALFORMED_ARGS = 15,
    ZOS_EXIT_CONTAINER_DOESNT_EXIST = 16,
    ZOS_EXIT_NOT_CONFIGURED = 17,
    ZOS_EXIT_PATH_MOUNTED = 18,
    ZOS_EXIT_NO_HOSTONLY = 19,
    ZOS_EXIT_NO_CONTAINERS_YET = 20,
    ZOS_EXIT_NO_HOSTONLY_IP = 21,
    ZOS_EXIT_INVALID_NAME = 22,
    ZOS_EXIT_ZEROTIER = 23,
    ZOS_EXIT_CMD_FAILED = 24,
    ZOS_EXIT_CANT_RESERVE_PORT = 25,
    ZOS_EXIT_INVALID_JWT = 26,
    ZOS_EXIT_CANT_PING = 27,
};

/* ---- exitcode.c ---- */

/* The exit code for a library error of category CAT (zos.h); 14 (general)
 * for any value the table does not know. */
int zos_cli_exit_code(enum zos_errcat cat);

/* The state of one run of zos, filled by main.c from the global options
 * and the config file. */
struct zos_cli {
    char conf_path[4096];
    struct zos_conf *conf; /* loaded, or new when the file did not exist */
    const char *proxy;     /* "host:port" of a zos-proxy, NULL: direct */
    const char *node;      /* --node (one name, or "a,b,c"), NULL: the default node */
    bool all;              /* --all: every node of the config file */
    int parallel;          /* --parallel, 0: ZOS_CLI_PARALLEL_DEFAULT */
    int timeout_s;         /* --timeout, 0: each command's default */
    bool debug;            /* [app] debug or ZOS_DEBUG=1 */
};

/* ---- main.c ---- */

/* Prints "zos: " FMT on stderr and returns CODE. */
int zos_cli_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "zos: debug: ..." on stderr when debugging is on. */
void zos_cli_debug(const struct zos_cli *cli, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Saves cli->conf to its file; prints the error and returns its exit code. */
int zos_cli_save_conf(struct zos_cli *cli);
/* The original's message for a tool without a configured node; returns 5. */
int zos_cli_first_time(void);
/* Usage of command NAME ("container new" for a sub-command) on F. */
void zos_cli_usage(FILE *f, const char *name);

/* ---- args.c ---- */

struct zos_cli_opt {
    const char *name;   /* "name" for --name */
    bool takes_value;   /* --name=V or --name V */
    const char **value; /* where a value goes (last one wins) */
    bool *flag;         /* set for a flag, or when a value was given */
};

/* Flags for zos_cli_args_parse. */
#define ZOS_ARGS_STOP_AT_POSITIONAL 0x1 /* "exec ls -la": options end at the first word */

/* Parses ARGV[0..ARGC) of command CMD ("configure", "container new") against
 * OPTS; positional words go to POS (at most MAXPOS, *NPOS set).  Returns -1
 * when all is well, 0 after printing the help (--help / -h), or the exit
 * code of a usage error it printed (unknown option, missing value, too
 * many words). */
int zos_cli_args_parse(const char *cmd, int argc, char **argv, const struct zos_cli_opt *opts,
                       size_t nopts, unsigned flags, char **pos, size_t maxpos, size_t *npos);

/* "zos: CMD: <message>" and CMD's usage on stderr; returns 15. */
int zos_cli_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A whole number from MIN to MAX in TEXT (no sign, no blanks); false otherwise. */
bool zos_cli_parse_int(const char *text, long min, long max, long *out);

/* ---- node.c ---- */

struct zos_cli_node;

/* Connects to the active node (or through the proxy), checks it answers
 * PING as the original did: exit 12 when unreachable, 26 when AUTH is
 * refused, 27 when the reply is not PONG; 5 or 17 when there is no such
 * node.  On 0 *OUT is the session (zos_cli_node_close). */
int zos_cli_node_open(struct zos_cli *cli, struct zos_cli_node **out);
void zos_cli_node_close(struct zos_cli_node *n);

/* The node's name, and its configuration (NULL through a proxy for a node
 * that is not in the local config). */
const char *zos_cli_node_name(const struct zos_cli_node *n);
const struct zos_node_conf *zos_cli_node_conf(const struct zos_cli_node *n);
/* The address containers of this node are reached at (the node's address,
 * or the proxy's host when the node is not in the local config). */
const char *zos_cli_node_address(const struct zos_cli_node *n);

/* Runs builtin COMMAND with ARGS (borrowed; NULL sends {}) and waits for it
 * (CID > 0: inside that container, via corex.dispatch).  LABEL, when not
 * NULL, is shown next to the spinner.  On success (state SUCCESS) *RES is
 * the result, owned by the caller, and 0 is returned.  A job that ran and
 * failed is returned too, with FAIL_CODE, so the caller can show its
 * output: *RES is then set as well.  Transport failures print "zos: WHAT:
 * why" and return 12 (node gone), 26 (AUTH), or 24 (timeout) with *RES NULL. */
int zos_cli_node_job(struct zos_cli_node *n, unsigned long cid, const char *command,
                     const cJSON *args, int timeout_ms, const char *label, int fail_code,
                     struct zos_job_result **res);

/* As zos_cli_node_job, for a process (core.system, bash): submitted with
 * stream: true, its stdout and stderr records are printed on stdout and
 * stderr as they arrive, in the order the job wrote them (README: "Live
 * output").  On return, *RES (when set) holds in out/err only what was not
 * printed: "" when the stream came whole, else what the result's streams
 * add to it; so the caller prints the result as it would have. */
int zos_cli_node_job_live(struct zos_cli_node *n, unsigned long cid, const char *command,
                          const cJSON *args, int timeout_ms, const char *label, int fail_code,
                          struct zos_job_result **res);

/* Submits corex.dispatch of COMMAND/ARGS into container CID and returns
 * once core0 accepted it, without waiting for the inner job: *INNER_ID (37
 * bytes) receives the inner job's id.  Exit code as zos_cli_node_job. */
int zos_cli_node_invoke(struct zos_cli_node *n, unsigned long cid, const char *command,
                        const cJSON *args, char *inner_id, struct zos_job_result **res);

/* GET KEY: 0 with *VALUE a new string, or NULL when the key does not
 * exist; else the exit code after printing the error. */
int zos_cli_node_get(struct zos_cli_node *n, const char *key, char **value);
/* SET KEY VALUE (DEL KEY when VALUE is NULL): 0 or the exit code. */
int zos_cli_node_set(struct zos_cli_node *n, const char *key, const char *value);

/* Polls CONF (borrowed) with PING until it answers PONG or TIMEOUT_S
 * passed (a machine booting), with the spinner and LABEL.  0 or 12. */
int zos_cli_node_wait_pong(struct zos_cli *cli, const struct zos_node_conf *conf, int timeout_s,
                           const char *label);

/* PING on the open session (ZOS.AT <node> PING through a proxy), COUNT
 * times: *BEST_MS the fastest round trip.  0, or the exit code after
 * printing why (as zos_cli_node_open's check). */
int zos_cli_node_rtt(struct zos_cli_node *n, int count, double *best_ms);

/* The default wait for a job, from --timeout or DEF_S seconds. */
int zos_cli_node_timeout_ms(const struct zos_cli_node *n, int def_s);

/* ---- fleet.c: one command on many nodes ---- */

#define ZOS_CLI_PARALLEL_DEFAULT 32 /* children at once without --parallel */

/* The nodes of --all or --node=a,b,c. */
struct zos_cli_fleet {
    const char **names; /* in config (or --node) order; borrowed from the config or LIST */
    size_t n;
    char *list; /* the --node list split in place */
};

/* What runs in each child, with cli->node set to that node's name: FN's
 * return value is the child's exit code.  CAPTURE keeps the child's output
 * in its result instead of printing it prefixed; TIMEOUT_MS > 0 kills a
 * child that has not ended by then (SIGKILL, result timed_out). */
struct zos_cli_fleet_job {
    int (*fn)(struct zos_cli *cli, void *arg);
    void *arg;
    bool capture;
    int timeout_ms;
};

/* How one node's child ended. */
struct zos_cli_fleet_result {
    bool started, done, timed_out;
    int code;        /* exit code; 128+N when killed by signal N */
    char *out, *err; /* CAPTURE: what it wrote (not NUL-terminated); else the rest */
    size_t outlen, errlen;
};

/* Whether --all or a --node list with a comma was given. */
bool zos_cli_fleet_mode(const struct zos_cli *cli);
/* The nodes to visit: the --node list (each must be in the config unless
 * through a proxy), else every node of the config.  0, or the exit code
 * after printing why (15 bad list, 17 unknown node, 22 bad name, 5 none). */
int zos_cli_fleet_names(struct zos_cli *cli, struct zos_cli_fleet *f);
void zos_cli_fleet_free(struct zos_cli_fleet *f);
/* Runs JOB once per node of F, one child process each, at most
 * cli->parallel at once; RES (F->n entries, filled) says how each ended.
 * Returns 0, or 128+N when signal N stopped the run (passed on to the
 * children, no new child started), or 14 when no process could be made. */
int zos_cli_fleet_run(struct zos_cli *cli, const struct zos_cli_fleet *f,
                      const struct zos_cli_fleet_job *job, struct zos_cli_fleet_result *res);
/* Frees the out/err of N results, then RES itself. */
void zos_cli_fleet_results_free(struct zos_cli_fleet_result *res, size_t n);
/* -1 when command CMD (with its words ARGV) may run across nodes; else 15
 * after printing why (config editing, interactive or local-file commands). */
int zos_cli_fleet_check(const char *cmd, int argc, char **argv);
/* FN on every node, output prefixed "name: " line by line, a summary of
 * failures on stderr; returns the highest exit code of any node (0 when
 * every node succeeded). */
int zos_cli_fleet_command(struct zos_cli *cli, int (*fn)(struct zos_cli *, int, char **), int argc,
                          char **argv);

/* ---- live.c ---- */

struct zos_cli_live;

/* Starts the writer thread (stdio is flushed first).  NULL when it cannot. */
struct zos_cli_live *zos_cli_live_new(void);
/* Queues LEN bytes of TEXT for STREAM 1 (stdout) or 2 (stderr), a job's
 * record, and remembers it among the last printed of that stream. */
void zos_cli_live_output(struct zos_cli_live *l, int stream, const char *text, size_t len);
/* Queues one line of zos's own on stderr, in its place among the records. */
void zos_cli_live_note(struct zos_cli_live *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Whether any record was queued. */
bool zos_cli_live_printed(const struct zos_cli_live *l);
/* Bytes queued and not written yet. */
size_t zos_cli_live_backlog(struct zos_cli_live *l);
/* Waits until everything queued was written. */
void zos_cli_live_flush(struct zos_cli_live *l);
/* What of FULL, a result's stream (1 or 2), was not printed: FULL without
 * its start that repeats the last records printed.  Caller frees. */
char *zos_cli_live_unprinted(const struct zos_cli_live *l, int stream, const char *full);
/* Writes what is queued, stops the thread, frees.  Accepts NULL. */
void zos_cli_live_free(struct zos_cli_live *l);

/* ---- print.c ---- */

/* V as the original printed JSON (zos_json_pretty), with a newline, on F. */
void zos_cli_print_json(FILE *f, const cJSON *v);
/* What a user wants from a successful result: level 20 data as pretty JSON
 * on stdout; else the job's stdout on stdout and its stderr on stderr. */
void zos_cli_print_result(const struct zos_job_result *r);
/* For a failed job: its output as above, then "zos: WHAT failed: ..." */
void zos_cli_print_failure(const char *what, const struct zos_job_result *r);
/* TEXT on F, with a newline unless it ends with one already (nothing for ""). */
void zos_cli_print_text(FILE *f, const char *text);

/* A table: NCOLS columns, rows of cells (borrowed), left-aligned, two
 * blanks between columns, no trailing blanks. */
struct zos_cli_table {
    size_t ncols, nrows, cap;
    const char **cells; /* nrows * ncols */
};
void zos_cli_table_init(struct zos_cli_table *t, size_t ncols, const char *const *header);
void zos_cli_table_add(struct zos_cli_table *t, const char *const *row);
void zos_cli_table_print(FILE *f, const struct zos_cli_table *t);
void zos_cli_table_free(struct zos_cli_table *t);

/* ---- names.c ---- */

/* A random Moby-style name, "adjective_surname", into BUF. */
void zos_cli_name_random(char *buf, size_t len);

/* ---- sshkeys.c ---- */

/* The public keys to put into a new container's authorized_keys.
 * OPT (--sshkey, may be NULL): a .pub file, a private key path (its .pub is
 * read) or a key name under ~/.ssh.  Without OPT: the ssh agent's keys
 * ($SSH_AUTH_SOCK), else ~/.ssh/id_ed25519.pub, else ~/.ssh/id_rsa.pub.
 * 0 with *KEYS (one key per line, newline-terminated) and *PRIVATE (the
 * private key path to remember, or "false") as new strings; else the exit
 * code (2: OPT not found, 9: no key anywhere) after printing why. */
int zos_cli_sshkeys(const char *opt, char **keys, char **private_path);

/* ---- cmd_node.c: helpers other commands use ---- */

/* Parses TEXT as a JSON object for option OPT ("jsonargs"); NULL after
 * printing why, with the byte position of a syntax error (exit 15).
 * Caller frees with cJSON_Delete. */
cJSON *zos_cli_json_arg(const char *opt, const char *text);
/* WORDS joined by blanks, as a new string. */
char *zos_cli_join(char **words, size_t n);

/* ---- the commands ---- */

int zos_cli_cmd_init(struct zos_cli *cli, int argc, char **argv);
int zos_cli_cmd_configure(struct zos_cli *cli, int argc, char **argv);
int zos_cli_cmd_remove(struct zos_cli *cli, int argc, char **argv);
int zos_cli_cmd_forgetvm(struct zos_cli *cli, int argc, char **argv);
int zos_cli_cmd_setdefault(struct zos_cli *cli, int argc, char **argv);
int zos_cli_cmd_showconfig(struct zos_cli *cli, int argc, char **argv);
int zos_cli_cmd_showactive(struct zos_cli *cli, int argc, char **argv);
int zos_cli_cmd_showactiveconfig(struct zos_cli *cli, int argc, char **argv);
int zos_cli_cmd_ping(struct zos_cli *cli, int argc, char **argv);
int zos_cli_cmd_cmd(struct zos_cli *cli, int argc, char **argv);
int zos_cli_cmd_exec(struct zos_cli *cli, int argc, char **argv);
int zos_cli_cmd_container(struct zos_cli *cli, int argc, char **argv);
int zos_cli_cmd_nodes(struct zos_cli *cli, int argc, char **argv);

/* ---- cmd_container.c / cmd_new.c ---- */

#define ZOS_CLI_LAST_CONTAINER_KEY "zos:lastcontainerid"

/* SET container:<CID>:<field> VALUE (DEL when VALUE is NULL): 0 or the exit code. */
int zos_cli_container_set(struct zos_cli_node *n, unsigned long cid, enum zos_container_field f,
                          const char *value);
/* zos container new <args>. */
int zos_cli_container_new(struct zos_cli *cli, int argc, char **argv);

/* ---- cmd_ssh.c: the SSH sub-commands of "container" ---- */

/* Sub-command SUB ("sshenable", "shell", ...) on container CID of N; ARGV
 * are the words after SUB (already checked by zos_cli_ssh_check). */
int zos_cli_ssh_run(struct zos_cli *cli, struct zos_cli_node *n, unsigned long cid, const char *sub,
                    int argc, char **argv);
/* Parses and validates the words of SUB before anything is connected:
 * -1 when fine, 0 after --help, else the exit code. */
int zos_cli_ssh_check(const char *sub, int argc, char **argv);

/* ---- cmd_vm.c: VirtualBox ---- */

/* Whether this build has the vbox module. */
bool zos_cli_vbox_available(void);
/* Deletes the machine behind NODE for zos remove: a VirtualBox VM made by
 * zos init (isvbox), or stops a qemu one; nothing for other nodes.  0 or
 * the exit code. */
int zos_cli_vm_delete(struct zos_cli *cli, const struct zos_node_conf *node);

#endif
