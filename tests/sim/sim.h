/* sim.h -- zos-node-sim internals: a simulated Zero-OS core0 node for tests.
 *
 *   client --RPUSH core:default--> redis-server (child, unix socket + public port)
 *                                      |
 *                    main thread: BLPOP core:default, decode, dup check, flag
 *                                      |
 *                    one thread per job (or per busy `queue`)
 *                       builtin fn | fork/exec (own process group)
 *                                      |
 *                    EXPIRE flag 300, RPUSH result:<id>, EXPIRE result:<id> 300
 *
 * Each thread borrows a hiredis context from a small pool (hiredis contexts
 * are not thread-safe).  Containers are records kept in memory under a mutex.
 * A container's sshd (sshd.c) is forked by one worker thread of its own.
 * The reference for every byte is shared/docs/core0-protocol.md.
 */
#ifndef ZOS_SIM_H
#define ZOS_SIM_H

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SIM_RESULT_TTL    300
#define SIM_STREAM_TTL    60
#define SIM_STREAM_MAX    1000
#define SIM_STREAM_CHUNKS 100 /* StandardStreamBufferSize */
#define SIM_CHUNK_MAX     (32 * 1024)
#define SIM_NIL_PANIC     "runtime error: invalid memory address or nil pointer dereference"

/* Levels and meta flags of base/pm/stream/message.go. */
#define SIM_LEVEL_STDOUT   1
#define SIM_LEVEL_STDERR   2
#define SIM_LEVEL_CRITICAL 9
#define SIM_LEVEL_JSON     20
#define SIM_FLAG_STREAM    0x1
#define SIM_FLAG_EXIT_OK   0x2
#define SIM_FLAG_EXIT_ERR  0x4

/* ---- global state (main.c) ---- */

struct sim_global {
    char *dir; /* data directory */
    bool verbose;
    char *secret;      /* requirepass, NULL for none; never logged */
    char *unixsock;    /* own redis socket, NULL in attach mode */
    char *attach_host; /* attach mode: plain redis host */
    int attach_port;
    int public_port;
    char branch[64];
    char revision[128];
    volatile sig_atomic_t stopping;
};

extern struct sim_global sim;

void sim_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- redis pool (store.c) ---- */

/* A connected context (AUTH done), or NULL.  Give it back with sim_redis_put. */
redisContext *sim_redis_get(void);
/* Returns C to the pool, or frees it when it is in error.  NULL is fine. */
void sim_redis_put(redisContext *c);
void sim_redis_pool_free(void);
/* Runs one command on a pooled context (retrying once on a fresh connection).
 * Returns the reply (caller frees with freeReplyObject) or NULL. */
redisReply *sim_redis_cmd(const char *fmt, ...);
/* Runs a command built from argv, discarding the reply.  0 or -1. */
int sim_redis_run_argv(int argc, const char **argv, const size_t *lens);

/* RPUSH result:<id>:flag "".  0 or -1. */
int sim_flag(const char *id);
/* EXISTS result:<id>:flag; -1 on error. */
int sim_flag_exists(const char *id);
/* EXPIRE flag 300, RPUSH result:<id> JSON, EXPIRE result:<id> 300. */
int sim_publish(const char *id, const char *json);
/* RPUSH stream:<id> record, LTRIM -1000 -1, EXPIRE 60. */
int sim_stream_push(const char *id, unsigned core, const char *text, size_t len, uint32_t meta);

/* ---- utilities (util.c) ---- */

int64_t sim_now_ms(void);
int64_t sim_now_ns(void);
void sim_uuid(char out[37]);
/* Go's text for an errno: strerror with a lower-case first letter. */
const char *sim_goerr(int errnum, char *buf, size_t len);
/* Whole file into a NUL-terminated heap buffer (caller frees), or NULL. */
char *sim_read_file(const char *path, size_t *len);
/* Trimmed first line of a small file into BUF; false when unreadable. */
bool sim_read_line(const char *path, char *buf, size_t len);
/* mkdir -p with MODE for every missing component.  0 or -1. */
int sim_mkdirs(const char *path, mode_t mode);
/* rm -rf.  0 or -1 (errno set). */
int sim_rmtree(const char *path);
/* cJSON text with Go's HTML escaping of <, > and &.  Caller frees (free()). */
char *sim_json_print(const cJSON *item);
/* Adds an exact integer (cJSON numbers are doubles). */
cJSON *sim_json_int(int64_t v);
bool sim_json_add_int(cJSON *obj, const char *key, int64_t v);
/* Copy of OBJ (an object, or NULL) with members sorted by key, as Go marshals maps. */
cJSON *sim_json_sorted(const cJSON *obj);
/* JSON kind name as Go's decoder words it: string, number, array, bool, object. */
const char *sim_json_kind(const cJSON *item);

/* Builtin errors: a code (HTTP-like, 500 by default) and a message. */
struct sim_err {
    unsigned code;
    char msg[1024];
};

/* Sets E and returns NULL, for "return sim_fail(e, 500, ...)". */
cJSON *sim_fail(struct sim_err *e, unsigned code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Go-decoder style argument checks.  A field spec: key + Go type. */
enum sim_gotype {
    GT_STRING,
    GT_INT,
    GT_UINT16,
    GT_UINT32,
    GT_BOOL,
    GT_STRMAP,  /* map[string]string */
    GT_INTMAP,  /* map[string]int */
    GT_STRLIST, /* []string */
    GT_OBJLIST, /* []*Struct */
    GT_OBJECT,  /* a struct */
    GT_ANY,
};

struct sim_field {
    const char *key;
    enum sim_gotype type;
};

/* Checks ARGS against FIELDS like json.Unmarshal into struct GOTYPE
 * ("builtin.jobArguments").  Returns false with E set (code CODE). */
bool sim_args_check(const cJSON *args, const char *gotype, const struct sim_field *fields,
                    unsigned code, struct sim_err *e);
/* Field getters with Go zero values for missing/null. */
const char *sim_arg_str(const cJSON *args, const char *key);
long long sim_arg_int(const cJSON *args, const char *key);
bool sim_arg_bool(const cJSON *args, const char *key);

/* ---- jobs (engine.c) ---- */

struct sim_container;

struct sim_job {
    char *id;
    char *command;
    cJSON *args; /* NULL: nil (missing or null) */
    cJSON *tags; /* NULL: null */
    char *queue; /* "" for none */
    bool stream;
    long max_time, max_restart, recurring;
    unsigned container; /* 0 on the host */
    char *cdir;         /* container jobs: its root directory */
    char **cenv;        /* container jobs: its environment; NULL on the host */

    pthread_mutex_t mu;
    pthread_cond_t cond;
    int64_t start_ms;
    pid_t pgid;            /* process group of the running process, 0 when none */
    bool unscheduled;      /* job.unschedule / job.kill during a recurring sleep */
    bool discard;          /* container gone: publish nothing, like a dead coreX */
    struct sim_job *next;  /* registry of running jobs */
    struct sim_job *qnext; /* pending in the same queue */
};

/* What a run produced, before it becomes the result JSON. */
struct sim_chunks {
    char *c[SIM_STREAM_CHUNKS];
    size_t n, head;
};

struct sim_run {
    bool has_streams;
    struct sim_chunks out, err;
    char *data; /* NULL means "" */
    unsigned level;
    char *critical; /* NULL means none */
    const char *state;
    uint32_t code;
    int64_t start_ms, time_ms;
};

void sim_chunks_add(struct sim_chunks *c, const char *s, size_t len);
void sim_run_free(struct sim_run *r);
/* Handles one output message of a job: streams, result, critical, stream:<id>. */
void sim_job_message(struct sim_job *j, struct sim_run *r, unsigned level, const char *text,
                     size_t len);

/* Decodes a request as pm.Command.  NULL when Go's decoder would fail; *BAD
 * tells whether that was undecodable JSON (core0 then sleeps 200 ms). */
struct sim_job *sim_job_decode(const char *json, size_t len, bool *bad);
/* Decodes the "command" object of corex.dispatch; NULL with E set. */
struct sim_job *sim_job_from_object(const cJSON *obj, struct sim_err *e);
void sim_job_free(struct sim_job *j);
/* Takes J: flags nothing, starts it (queue rules apply).  0 or -1. */
int sim_job_start(struct sim_job *j);
/* Whether a handler exists for NAME (host or container side). */
bool sim_command_known(const char *name, bool in_container);

void sim_engine_init(void);
/* Kills every running process group, wakes sleepers, waits up to MS for jobs. */
void sim_engine_shutdown(int ms);

/* Registry access for job.* builtins (engine.c).  Callbacks run under the
 * registry lock. */
typedef void (*sim_job_visit_fn)(struct sim_job *j, void *ctx);
void sim_jobs_visit(sim_job_visit_fn fn, void *ctx);
/* Signals job ID (in container CID); false when there is no such job. */
bool sim_jobs_signal(const char *id, unsigned cid, int sig);
/* Stops the recurrence of job ID; false when there is no such job. */
bool sim_jobs_unschedule(const char *id, unsigned cid);
/* Container CID is gone: kill its jobs and publish nothing for them. */
void sim_jobs_drop_container(unsigned cid);

/* ---- processes (proc.c) ---- */

struct sim_spawn {
    const char *name; /* as given; resolved through PATH */
    char **argv;      /* argv[0] is replaced by the resolved path */
    const char *dir;  /* NULL or "": inherit */
    char **envp;      /* NULL: inherit */
    const char *stdin_data;
    size_t stdin_len;
};

/* Runs a process for job J into R (streams, code, state, level/data from
 * tagged output).  Honours max_time.  Never fails: errors become results. */
void sim_proc_run(struct sim_job *j, const struct sim_spawn *s, struct sim_run *r);
/* Go's exec.LookPath with PATH from ENVP (or ours).  0 with OUT set, or -1
 * with ERR set to Go's text ("exec: \"x\": executable file not found in $PATH"). */
int sim_lookpath(const char *name, char **envp, char *out, size_t outlen, char *err, size_t errlen);
/* Runs argv and captures stdout (caller frees), NULL on failure.  No job. */
char *sim_capture(char *const argv[], int *status);

/* ---- builtins ---- */

typedef cJSON *(*sim_builtin_fn)(struct sim_job *j, const cJSON *args, struct sim_err *e);

/* cmd_core.c */
cJSON *sim_cmd_ping(struct sim_job *j, const cJSON *args, struct sim_err *e);
cJSON *sim_cmd_state(struct sim_job *j, const cJSON *args, struct sim_err *e);
cJSON *sim_cmd_job_list(struct sim_job *j, const cJSON *args, struct sim_err *e);
cJSON *sim_cmd_job_kill(struct sim_job *j, const cJSON *args, struct sim_err *e);
cJSON *sim_cmd_job_killall(struct sim_job *j, const cJSON *args, struct sim_err *e);
cJSON *sim_cmd_job_unschedule(struct sim_job *j, const cJSON *args, struct sim_err *e);
cJSON *sim_cmd_info_cpu(struct sim_job *j, const cJSON *args, struct sim_err *e);
cJSON *sim_cmd_info_mem(struct sim_job *j, const cJSON *args, struct sim_err *e);
cJSON *sim_cmd_info_os(struct sim_job *j, const cJSON *args, struct sim_err *e);
cJSON *sim_cmd_info_nic(struct sim_job *j, const cJSON *args, struct sim_err *e);
cJSON *sim_cmd_info_disk(struct sim_job *j, const cJSON *args, struct sim_err *e);
cJSON *sim_cmd_info_version(struct sim_job *j, const cJSON *args, struct sim_err *e);
cJSON *sim_cmd_disk_list(struct sim_job *j, const cJSON *args, struct sim_err *e);
/* Process stats for job.list / corex.list: rss and vms of PID (0: zeros). */
void sim_proc_stats(pid_t pid, int64_t *rss, int64_t *vms);

/* cmd_fs.c */
cJSON *sim_cmd_fs_open(struct sim_job *j, const cJSON *args, struct sim_err *e);
cJSON *sim_cmd_fs_read(struct sim_job *j, const cJSON *args, struct sim_err *e);
cJSON *sim_cmd_fs_write(struct sim_job *j, const cJSON *args, struct sim_err *e);
cJSON *sim_cmd_fs_close(struct sim_job *j, const cJSON *args, struct sim_err *e);
cJSON *sim_cmd_fs_exists(struct sim_job *j, const cJSON *args, struct sim_err *e);
cJSON *sim_cmd_fs_list(struct sim_job *j, const cJSON *args, struct sim_err *e);
cJSON *sim_cmd_fs_mkdir(struct sim_job *j, const cJSON *args, struct sim_err *e);
cJSON *sim_cmd_fs_remove(struct sim_job *j, const cJSON *args, struct sim_err *e);
cJSON *sim_cmd_fs_move(struct sim_job *j, const cJSON *args, struct sim_err *e);
cJSON *sim_cmd_fs_chmod(struct sim_job *j, const cJSON *args, struct sim_err *e);
void sim_fs_free_all(void);

/* cmd_corex.c */
cJSON *sim_cmd_corex_create(struct sim_job *j, const cJSON *args, struct sim_err *e);
cJSON *sim_cmd_corex_list(struct sim_job *j, const cJSON *args, struct sim_err *e);
cJSON *sim_cmd_corex_find(struct sim_job *j, const cJSON *args, struct sim_err *e);
cJSON *sim_cmd_corex_get(struct sim_job *j, const cJSON *args, struct sim_err *e);
cJSON *sim_cmd_corex_terminate(struct sim_job *j, const cJSON *args, struct sim_err *e);
cJSON *sim_cmd_corex_dispatch(struct sim_job *j, const cJSON *args, struct sim_err *e);
cJSON *sim_cmd_corex_pf_add(struct sim_job *j, const cJSON *args, struct sim_err *e);
cJSON *sim_cmd_corex_pf_remove(struct sim_job *j, const cJSON *args, struct sim_err *e);
cJSON *sim_cmd_corex_flist_layer(struct sim_job *j, const cJSON *args, struct sim_err *e);
cJSON *sim_cmd_corex_zt_list(struct sim_job *j, const cJSON *args, struct sim_err *e);
cJSON *sim_cmd_corex_zt_info(struct sim_job *j, const cJSON *args, struct sim_err *e);
cJSON *sim_cmd_socat_reserve(struct sim_job *j, const cJSON *args, struct sim_err *e);
cJSON *sim_cmd_socat_list(struct sim_job *j, const cJSON *args, struct sim_err *e);
cJSON *sim_cmd_nft_open_port(struct sim_job *j, const cJSON *args, struct sim_err *e);
cJSON *sim_cmd_nft_drop_port(struct sim_job *j, const cJSON *args, struct sim_err *e);
cJSON *sim_cmd_nft_list(struct sim_job *j, const cJSON *args, struct sim_err *e);
cJSON *sim_cmd_nft_rule_exists(struct sim_job *j, const cJSON *args, struct sim_err *e);
void sim_corex_free_all(void);

/* What the sshd of container CID needs to know (cmd_corex.c). */
#define SIM_SSH_MAX_PORTS 16
struct sim_ssh_view {
    unsigned cid;
    char *root;  /* <dir>/containers/<id>/root, the working directory */
    char *state; /* <dir>/containers/<id>, where its sshd keeps its files */
    char **env;  /* the container's environment */
    char hostname[256];
    int ports[SIM_SSH_MAX_PORTS]; /* tcp host ports forwarded to 22, ascending */
    size_t nports;
};
/* Fills V; false when there is no container CID.  Takes the container lock. */
bool sim_corex_ssh_view(unsigned cid, struct sim_ssh_view *v);
void sim_ssh_view_free(struct sim_ssh_view *v);

/* sshd.c: a container's port 22 is a real sshd.  sim_sshd_command handles the
 * ssh service commands of a container job (`service ssh start|stop|restart|
 * status|...`, `/etc/init.d/ssh ...`, `/usr/sbin/sshd`; also any other
 * `service X`, which is refused): true with R filled like a process's result,
 * false when ARGV is none of them.  The others must be called without the
 * container lock held. */
bool sim_sshd_command(struct sim_job *j, char **argv, struct sim_run *r);
/* The forwards of CID changed: (re)start or stop its sshd accordingly. */
void sim_sshd_sync(unsigned cid);
/* CID was terminated: stop its sshd, sessions included. */
void sim_sshd_forget(unsigned cid);
/* Stops every sshd; no sshd starts afterwards. */
void sim_sshd_shutdown(void);

#endif
