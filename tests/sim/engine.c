/* engine.c -- the job engine: decoding, the command table, queues, the
 * registry of running jobs, runs and result publishing (base/pm of core0).
 *
 *   sim_job_start --unknown--> UNKNOWN_CMD result at once
 *        |  queue busy? --> appended to that queue, run by its thread later
 *        v
 *   job_thread: run_job (restart/recur loop) -> result JSON -> sim_publish
 *        \-- then the next job of the same queue, if any
 */
#include "sim.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

enum cmd_kind { K_BUILTIN, K_SYSTEM, K_BASH };

struct sim_cmd {
    const char *name;
    enum cmd_kind kind;
    sim_builtin_fn fn;
    bool reads_args; /* a nil `arguments` makes it fail (§10.6) */
    bool host_only;  /* not served by coreX inside a container */
};

static const struct sim_cmd commands[] = {
    {"core.ping", K_BUILTIN, sim_cmd_ping, false, false},
    {"core.state", K_BUILTIN, sim_cmd_state, false, false},
    {"core.system", K_SYSTEM, NULL, true, false},
    {"bash", K_BASH, NULL, true, false},
    {"job.list", K_BUILTIN, sim_cmd_job_list, true, false},
    {"job.kill", K_BUILTIN, sim_cmd_job_kill, true, false},
    {"job.killall", K_BUILTIN, sim_cmd_job_killall, false, false},
    {"job.unschedule", K_BUILTIN, sim_cmd_job_unschedule, true, false},
    {"info.cpu", K_BUILTIN, sim_cmd_info_cpu, false, false},
    {"info.mem", K_BUILTIN, sim_cmd_info_mem, false, false},
    {"info.os", K_BUILTIN, sim_cmd_info_os, false, false},
    {"info.nic", K_BUILTIN, sim_cmd_info_nic, false, false},
    {"info.disk", K_BUILTIN, sim_cmd_info_disk, false, false},
    {"info.version", K_BUILTIN, sim_cmd_info_version, false, false},
    {"disk.list", K_BUILTIN, sim_cmd_disk_list, false, true},
    {"filesystem.open", K_BUILTIN, sim_cmd_fs_open, true, false},
    {"filesystem.read", K_BUILTIN, sim_cmd_fs_read, true, false},
    {"filesystem.write", K_BUILTIN, sim_cmd_fs_write, true, false},
    {"filesystem.close", K_BUILTIN, sim_cmd_fs_close, true, false},
    {"filesystem.exists", K_BUILTIN, sim_cmd_fs_exists, true, false},
    {"filesystem.list", K_BUILTIN, sim_cmd_fs_list, true, false},
    {"filesystem.mkdir", K_BUILTIN, sim_cmd_fs_mkdir, true, false},
    {"filesystem.remove", K_BUILTIN, sim_cmd_fs_remove, true, false},
    {"filesystem.move", K_BUILTIN, sim_cmd_fs_move, true, false},
    {"filesystem.chmod", K_BUILTIN, sim_cmd_fs_chmod, true, false},
    {"corex.create", K_BUILTIN, sim_cmd_corex_create, true, true},
    {"corex.list", K_BUILTIN, sim_cmd_corex_list, false, true},
    {"corex.find", K_BUILTIN, sim_cmd_corex_find, true, true},
    {"corex.get", K_BUILTIN, sim_cmd_corex_get, true, true},
    {"corex.terminate", K_BUILTIN, sim_cmd_corex_terminate, true, true},
    {"corex.dispatch", K_BUILTIN, sim_cmd_corex_dispatch, true, true},
    {"corex.portforward-add", K_BUILTIN, sim_cmd_corex_pf_add, true, true},
    {"corex.portforward-remove", K_BUILTIN, sim_cmd_corex_pf_remove, true, true},
    {"corex.flist-layer", K_BUILTIN, sim_cmd_corex_flist_layer, true, true},
    {"corex.zerotier.list", K_BUILTIN, sim_cmd_corex_zt_list, true, true},
    {"corex.zerotier.info", K_BUILTIN, sim_cmd_corex_zt_info, true, true},
    {"socat.reserve", K_BUILTIN, sim_cmd_socat_reserve, true, true},
    {"socat.list", K_BUILTIN, sim_cmd_socat_list, false, true},
    {"nft.open_port", K_BUILTIN, sim_cmd_nft_open_port, true, true},
    {"nft.drop_port", K_BUILTIN, sim_cmd_nft_drop_port, true, true},
    {"nft.list", K_BUILTIN, sim_cmd_nft_list, false, true},
    {"nft.rule_exists", K_BUILTIN, sim_cmd_nft_rule_exists, true, true},
};

static const struct sim_cmd *lookup(const char *name, bool in_container)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(commands[i].name, name) == 0)
            return (in_container && commands[i].host_only) ? NULL : &commands[i];
    }
    return NULL;
}

bool sim_command_known(const char *name, bool in_container)
{
    return lookup(name, in_container) != NULL;
}

/* ---- decoding ---- */

static char *xstrdup(const char *s)
{
    char *d = strdup(s ? s : "");
    if (d == NULL)
        abort();
    return d;
}

static const struct sim_field command_fields[] = {
    {"id", GT_STRING},
    {"command", GT_STRING},
    {"arguments", GT_ANY},
    {"queue", GT_STRING},
    {"max_time", GT_INT},
    {"max_restart", GT_INT},
    {"recurring_period", GT_INT},
    {"stream", GT_BOOL},
    {"tags", GT_STRLIST},
    {"stats_interval", GT_INT},
    {"log_levels", GT_ANY},
    {NULL, GT_ANY},
};

struct sim_job *sim_job_from_object(const cJSON *obj, struct sim_err *e)
{
    if (!sim_args_check(obj, "pm.Command", command_fields, 500, e))
        return NULL;
    struct sim_job *j = calloc(1, sizeof *j);
    if (j == NULL)
        abort();
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cond, NULL);
    j->id = xstrdup(sim_arg_str(obj, "id"));
    j->command = xstrdup(sim_arg_str(obj, "command"));
    j->queue = xstrdup(sim_arg_str(obj, "queue"));
    const cJSON *args = cJSON_IsObject(obj) ? cJSON_GetObjectItem(obj, "arguments") : NULL;
    j->args = (args && !cJSON_IsNull(args)) ? cJSON_Duplicate(args, true) : NULL;
    const cJSON *tags = cJSON_IsObject(obj) ? cJSON_GetObjectItem(obj, "tags") : NULL;
    j->tags = cJSON_IsArray(tags) ? cJSON_Duplicate(tags, true) : NULL;
    j->stream = sim_arg_bool(obj, "stream");
    j->max_time = (long)sim_arg_int(obj, "max_time");
    j->max_restart = (long)sim_arg_int(obj, "max_restart");
    j->recurring = (long)sim_arg_int(obj, "recurring_period");
    return j;
}

struct sim_job *sim_job_decode(const char *json, size_t len, bool *bad)
{
    *bad = false;
    /* LEN + 1: cJSON wants to see the terminating NUL (hiredis adds one). */
    cJSON *root = cJSON_ParseWithLengthOpts(json, len + 1, NULL, true);
    if (root == NULL) {
        *bad = true;
        return NULL;
    }
    struct sim_err e;
    struct sim_job *j = NULL;
    if (cJSON_IsNull(root)) {
        /* Go decodes "null" into a zero Command: empty id, dropped silently. */
    } else if (!cJSON_IsObject(root) || (j = sim_job_from_object(root, &e)) == NULL) {
        *bad = true;
    }
    cJSON_Delete(root);
    return j;
}

void sim_job_free(struct sim_job *j)
{
    if (j == NULL)
        return;
    free(j->id);
    free(j->command);
    free(j->queue);
    cJSON_Delete(j->args);
    cJSON_Delete(j->tags);
    free(j->cdir);
    if (j->cenv) {
        for (char **p = j->cenv; *p; p++)
            free(*p);
        free(j->cenv);
    }
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cond);
    free(j);
}

/* ---- results ---- */

void sim_chunks_add(struct sim_chunks *c, const char *s, size_t len)
{
    char *copy = strndup(s, len);
    if (copy == NULL)
        abort();
    if (c->n < SIM_STREAM_CHUNKS) {
        c->c[(c->head + c->n++) % SIM_STREAM_CHUNKS] = copy;
    } else {
        free(c->c[c->head]);
        c->c[c->head] = copy;
        c->head = (c->head + 1) % SIM_STREAM_CHUNKS;
    }
}

static char *chunks_join(const struct sim_chunks *c)
{
    size_t total = 0;
    for (size_t i = 0; i < c->n; i++)
        total += strlen(c->c[(c->head + i) % SIM_STREAM_CHUNKS]);
    char *out = malloc(total + 1), *o = out;
    for (size_t i = 0; i < c->n; i++) {
        const char *s = c->c[(c->head + i) % SIM_STREAM_CHUNKS];
        size_t n = strlen(s);
        memcpy(o, s, n);
        o += n;
    }
    *o = '\0';
    return out;
}

void sim_run_free(struct sim_run *r)
{
    for (size_t i = 0; i < r->out.n; i++)
        free(r->out.c[(r->out.head + i) % SIM_STREAM_CHUNKS]);
    for (size_t i = 0; i < r->err.n; i++)
        free(r->err.c[(r->err.head + i) % SIM_STREAM_CHUNKS]);
    free(r->data);
    free(r->critical);
    memset(r, 0, sizeof *r);
}

static bool is_result_level(unsigned level)
{
    return (level >= 20 && level <= 23) || level == 30;
}

void sim_job_message(struct sim_job *j, struct sim_run *r, unsigned level, const char *text,
                     size_t len)
{
    if (level == SIM_LEVEL_STDOUT) {
        sim_chunks_add(&r->out, text, len);
    } else if (level == SIM_LEVEL_STDERR) {
        sim_chunks_add(&r->err, text, len);
    } else if (is_result_level(level)) {
        free(r->data);
        r->data = strndup(text, len);
        r->level = level;
    } else if (level == SIM_LEVEL_CRITICAL) {
        free(r->critical);
        r->critical = strndup(text, len);
    }
    if (j->stream)
        sim_stream_push(j->id, j->container, text, len, (uint32_t)level << 16 | SIM_FLAG_STREAM);
}

/* The JSON of base/pm/result.go, keys in Go's order. */
static char *result_json(const struct sim_job *j, const struct sim_run *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", j->id);
    cJSON_AddStringToObject(o, "command", j->command);
    cJSON_AddStringToObject(o, "data", r->data ? r->data : "");
    if (r->has_streams) {
        char *out = chunks_join(&r->out), *err = chunks_join(&r->err);
        cJSON *s = cJSON_CreateArray();
        cJSON_AddItemToArray(s, cJSON_CreateString(out));
        cJSON_AddItemToArray(s, cJSON_CreateString(err));
        cJSON_AddItemToObject(o, "streams", s);
        free(out);
        free(err);
    }
    if (r->critical && r->critical[0])
        cJSON_AddStringToObject(o, "critical", r->critical);
    sim_json_add_int(o, "level", r->level);
    cJSON_AddStringToObject(o, "state", r->state ? r->state : "ERROR");
    sim_json_add_int(o, "code", r->code);
    sim_json_add_int(o, "starttime", r->start_ms);
    sim_json_add_int(o, "time", r->time_ms);
    cJSON_AddItemToObject(o, "tags", j->tags ? cJSON_Duplicate(j->tags, true) : cJSON_CreateNull());
    sim_json_add_int(o, "container", j->container);
    char *s = sim_json_print(o);
    cJSON_Delete(o);
    return s;
}

static void publish(const struct sim_job *j, const struct sim_run *r)
{
    char *s = result_json(j, r);
    if (sim_publish(j->id, s) < 0)
        sim_log("job %s: cannot publish its result", j->id);
    free(s);
}

/* ---- the registry of running jobs ---- */

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t reg_cond = PTHREAD_COND_INITIALIZER;
static struct sim_job *running;
static int active_threads;

static void registry_add(struct sim_job *j)
{
    pthread_mutex_lock(&reg_mu);
    j->next = running;
    running = j;
    pthread_mutex_unlock(&reg_mu);
}

static void registry_remove(struct sim_job *j)
{
    pthread_mutex_lock(&reg_mu);
    for (struct sim_job **p = &running; *p; p = &(*p)->next) {
        if (*p == j) {
            *p = j->next;
            break;
        }
    }
    pthread_mutex_unlock(&reg_mu);
}

void sim_jobs_visit(sim_job_visit_fn fn, void *ctx)
{
    pthread_mutex_lock(&reg_mu);
    for (struct sim_job *j = running; j; j = j->next)
        fn(j, ctx);
    pthread_mutex_unlock(&reg_mu);
}

static struct sim_job *find_locked(const char *id, unsigned cid)
{
    for (struct sim_job *j = running; j; j = j->next)
        if (j->container == cid && strcmp(j->id, id) == 0)
            return j;
    return NULL;
}

bool sim_jobs_signal(const char *id, unsigned cid, int sig)
{
    pthread_mutex_lock(&reg_mu);
    struct sim_job *j = find_locked(id, cid);
    if (j) {
        pthread_mutex_lock(&j->mu);
        if (j->pgid > 0) {
            kill(-j->pgid, sig);
        } else {
            /* A signal during a recurring job's sleep ends the recurrence. */
            j->unscheduled = true;
            pthread_cond_broadcast(&j->cond);
        }
        pthread_mutex_unlock(&j->mu);
    }
    pthread_mutex_unlock(&reg_mu);
    return j != NULL;
}

bool sim_jobs_unschedule(const char *id, unsigned cid)
{
    pthread_mutex_lock(&reg_mu);
    struct sim_job *j = find_locked(id, cid);
    if (j) {
        pthread_mutex_lock(&j->mu);
        j->unscheduled = true;
        pthread_cond_broadcast(&j->cond);
        pthread_mutex_unlock(&j->mu);
    }
    pthread_mutex_unlock(&reg_mu);
    return j != NULL;
}

void sim_jobs_drop_container(unsigned cid)
{
    pthread_mutex_lock(&reg_mu);
    for (struct sim_job *j = running; j; j = j->next) {
        if (j->container != cid)
            continue;
        pthread_mutex_lock(&j->mu);
        j->discard = true;
        j->unscheduled = true;
        if (j->pgid > 0)
            kill(-j->pgid, SIGKILL);
        pthread_cond_broadcast(&j->cond);
        pthread_mutex_unlock(&j->mu);
    }
    pthread_mutex_unlock(&reg_mu);
}

/* ---- running ---- */

static void run_builtin(struct sim_job *j, const struct sim_cmd *c, struct sim_run *r)
{
    struct sim_err e = {500, ""};
    cJSON *value = NULL;
    if (c->reads_args && j->args == NULL) {
        /* Go dereferences the nil *json.RawMessage; the builtin recovers. */
        sim_fail(&e, 500, "%s", SIM_NIL_PANIC);
    } else {
        cJSON *null_args = j->args ? NULL : cJSON_CreateNull();
        value = c->fn(j, j->args ? j->args : null_args, &e);
        cJSON_Delete(null_args);
    }
    r->has_streams = true;
    r->level = SIM_LEVEL_JSON;
    if (value) {
        r->data = sim_json_print(value);
        r->state = "SUCCESS";
        r->code = 0;
        cJSON_Delete(value);
    } else {
        cJSON *s = cJSON_CreateString(e.msg);
        r->data = sim_json_print(s);
        cJSON_Delete(s);
        r->code = e.code ? e.code : 500;
        int64_t elapsed = sim_now_ms() - r->start_ms;
        /* max_time cannot stop a builtin; a late failure reads TIMEOUT. */
        r->state = (j->max_time > 0 && elapsed > j->max_time * 1000) ? "TIMEOUT" : "ERROR";
    }
    if (j->stream) {
        uint32_t flag = value ? SIM_FLAG_EXIT_OK : SIM_FLAG_EXIT_ERR;
        sim_stream_push(j->id, j->container, r->data, strlen(r->data),
                        (uint32_t)SIM_LEVEL_JSON << 16 | flag | SIM_FLAG_STREAM);
    }
}

static char **env_build(struct sim_job *j, const cJSON *env)
{
    size_t n = 0, base = 0;
    char **src = j->cenv ? j->cenv : environ;
    while (src[base])
        base++;
    size_t extra = cJSON_IsObject(env) ? (size_t)cJSON_GetArraySize(env) : 0;
    if (extra == 0 && j->cenv == NULL)
        return NULL; /* inherit ours, as Go does with a nil Env */
    char **out = calloc(base + extra + 1, sizeof *out);
    for (size_t i = 0; i < base; i++)
        out[n++] = xstrdup(src[i]);
    const cJSON *it;
    cJSON_ArrayForEach(it, env)
    {
        const char *v = cJSON_IsString(it) ? it->valuestring : "";
        size_t len = strlen(it->string) + strlen(v) + 2;
        out[n] = malloc(len);
        snprintf(out[n++], len, "%s=%s", it->string, v);
    }
    return out;
}

static void strv_free(char **v)
{
    if (v == NULL)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

/* The words of SCRIPT when it is one simple command (words of plain
 * characters, blanks between them), else NULL.  Caller frees (strv_free). */
static char **simple_words(const char *script)
{
    size_t n = 0, cap = 8;
    char **w = calloc(cap + 1, sizeof *w);
    const char *p = script;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n')
            p++;
        if (*p == '\0')
            break;
        size_t len = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                               "_./-+=:,@%");
        if (len == 0 || (p[len] != '\0' && !strchr(" \t\n", p[len])) || n == cap) {
            strv_free(w);
            return NULL;
        }
        w[n++] = strndup(p, len);
        p += len;
    }
    if (n == 0) {
        free(w);
        return NULL;
    }
    return w;
}

/* Commands whose absolute arguments are all paths, rewritten under the
 * container's root so that `/bin/mkdir -p /etc/ssh` or `/bin/chmod 700 -R
 * /etc/ssh` change the container and not the host. */
static bool path_command(const char *name)
{
    static const char *const names[] = {"mkdir", "rmdir", "chmod", "chown", "touch", "rm"};
    const char *slash = strrchr(name, '/');
    const char *base = slash ? slash + 1 : name;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(base, names[i]) == 0)
            return true;
    return false;
}

static void run_process(struct sim_job *j, const struct sim_cmd *c, struct sim_run *r)
{
    if (j->args == NULL) {
        /* The process factory dereferences nil arguments: a recovered panic. */
        r->state = "ERROR";
        r->critical = xstrdup("PANIC(" SIM_NIL_PANIC ")");
        return;
    }
    const cJSON *a = j->args;
    struct sim_spawn s = {0};
    char *argv_sh[4] = {"sh", "-c", NULL, NULL};
    char **argv = NULL;
    char dirbuf[4096];
    if (c->kind == K_BASH) {
        argv_sh[2] = (char *)sim_arg_str(a, "script");
        s.name = "sh";
        s.argv = argv_sh;
    } else {
        const cJSON *list = cJSON_IsObject(a) ? cJSON_GetObjectItem(a, "args") : NULL;
        size_t n = cJSON_IsArray(list) ? (size_t)cJSON_GetArraySize(list) : 0, k = 0;
        argv = calloc(n + 2, sizeof *argv);
        s.name = sim_arg_str(a, "name");
        argv[k++] = (char *)s.name;
        const cJSON *it;
        cJSON_ArrayForEach(it, list)
        {
            argv[k++] = cJSON_IsString(it) ? it->valuestring : "";
        }
        s.argv = argv;
        s.dir = sim_arg_str(a, "dir");
    }
    char **owned = NULL; /* rewritten arguments */
    size_t nowned = 0;
    if (j->cdir) {
        char **words = c->kind == K_BASH ? simple_words(argv_sh[2]) : NULL;
        bool handled = sim_sshd_command(j, words ? words : (c->kind == K_BASH ? NULL : argv), r);
        strv_free(words);
        if (handled) {
            free(argv);
            return;
        }
        if (c->kind == K_SYSTEM && path_command(s.name)) {
            size_t n = 0;
            while (argv[n])
                n++;
            owned = calloc(n + 1, sizeof *owned);
            nowned = n;
            for (size_t i = 1; i < n; i++) {
                if (argv[i][0] != '/')
                    continue;
                size_t len = strlen(j->cdir) + strlen(argv[i]) + 1;
                owned[i] = malloc(len);
                snprintf(owned[i], len, "%s%s", j->cdir, argv[i]);
                argv[i] = owned[i];
            }
        }
    }
    if (j->cdir) {
        /* Inside a container, paths are under its root. */
        snprintf(dirbuf, sizeof dirbuf, "%s%s", j->cdir, s.dir && s.dir[0] == '/' ? s.dir : "");
        s.dir = dirbuf;
    }
    const cJSON *env = cJSON_IsObject(a) ? cJSON_GetObjectItem(a, "env") : NULL;
    s.envp = env_build(j, c->kind == K_BASH ? NULL : env);
    s.stdin_data = sim_arg_str(a, "stdin");
    s.stdin_len = strlen(s.stdin_data);
    sim_proc_run(j, &s, r);
    strv_free(s.envp);
    free(argv);
    for (size_t i = 0; i < nowned; i++)
        free(owned[i]);
    free(owned);
}

static void run_once(struct sim_job *j, struct sim_run *r)
{
    const struct sim_cmd *c = lookup(j->command, j->container != 0);
    r->start_ms = sim_now_ms();
    j->start_ms = r->start_ms;
    if (c == NULL) {
        r->state = "UNKNOWN_CMD";
    } else if (c->kind == K_BUILTIN) {
        run_builtin(j, c, r);
    } else {
        run_process(j, c, r);
    }
    r->time_ms = sim_now_ms() - r->start_ms;
}

/* Sleeps SECONDS unless the job is unscheduled or the node stops; true when
 * the recurrence must end. */
static bool sleep_between_runs(struct sim_job *j, long seconds)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += seconds;
    pthread_mutex_lock(&j->mu);
    while (!j->unscheduled && !sim.stopping) {
        if (pthread_cond_timedwait(&j->cond, &j->mu, &until) == ETIMEDOUT)
            break;
    }
    bool stop = j->unscheduled || sim.stopping;
    pthread_mutex_unlock(&j->mu);
    return stop;
}

static void run_job(struct sim_job *j)
{
    struct sim_run r = {0};
    long runs = 0;
    registry_add(j);
    for (;;) {
        run_once(j, &r);
        bool again = false;
        long wait = 1;
        /* job.go: runs counts failures; MaxRestart is the number of attempts. */
        if (strcmp(r.state, "SUCCESS") != 0 && j->max_restart > 0 && ++runs < j->max_restart)
            again = true;
        if (j->recurring > 0) {
            again = true;
            wait = j->recurring;
        }
        if (!again || sim.stopping || sleep_between_runs(j, wait))
            break;
        sim_run_free(&r);
    }
    registry_remove(j);
    if (!j->discard && !sim.stopping)
        publish(j, &r);
    sim_run_free(&r);
}

/* ---- queues and threads ---- */

struct queue {
    char *key;
    struct sim_job *head, *tail;
    struct queue *next;
};

static pthread_mutex_t q_mu = PTHREAD_MUTEX_INITIALIZER;
static struct queue *queues;

static char *queue_key(const struct sim_job *j)
{
    size_t len = strlen(j->queue) + 16;
    char *k = malloc(len);
    snprintf(k, len, "%u/%s", j->container, j->queue);
    return k;
}

/* Next pending job of queue KEY, or NULL after removing the idle queue. */
static struct sim_job *queue_next(const char *key)
{
    struct sim_job *j = NULL;
    pthread_mutex_lock(&q_mu);
    for (struct queue **p = &queues; *p; p = &(*p)->next) {
        struct queue *q = *p;
        if (strcmp(q->key, key) != 0)
            continue;
        j = q->head;
        if (j) {
            q->head = j->qnext;
            if (q->head == NULL)
                q->tail = NULL;
        } else {
            *p = q->next;
            free(q->key);
            free(q);
        }
        break;
    }
    pthread_mutex_unlock(&q_mu);
    return j;
}

static void *job_thread(void *arg)
{
    struct sim_job *j = arg;
    char *key = j->queue[0] ? queue_key(j) : NULL;
    while (j) {
        if (sim.stopping)
            sim_job_free(j);
        else {
            run_job(j);
            sim_job_free(j);
        }
        j = key ? queue_next(key) : NULL;
    }
    free(key);
    pthread_mutex_lock(&reg_mu);
    active_threads--;
    pthread_cond_broadcast(&reg_cond);
    pthread_mutex_unlock(&reg_mu);
    return NULL;
}

static void publish_unknown(const struct sim_job *j)
{
    struct sim_run r = {0};
    r.state = "UNKNOWN_CMD"; /* starttime and time stay 0, no streams */
    publish(j, &r);
}

/* True when J was queued behind a busy queue (the queue's thread runs it). */
static bool enqueue(struct sim_job *j)
{
    if (j->queue[0] == '\0')
        return false;
    char *key = queue_key(j);
    bool queued = false;
    pthread_mutex_lock(&q_mu);
    struct queue *q = queues;
    while (q && strcmp(q->key, key) != 0)
        q = q->next;
    if (q) {
        if (q->tail)
            q->tail->qnext = j;
        else
            q->head = j;
        q->tail = j;
        queued = true;
    } else {
        q = calloc(1, sizeof *q);
        q->key = key;
        key = NULL;
        q->next = queues;
        queues = q;
    }
    pthread_mutex_unlock(&q_mu);
    free(key);
    return queued;
}

int sim_job_start(struct sim_job *j)
{
    if (!sim_command_known(j->command, j->container != 0)) {
        publish_unknown(j);
        sim_job_free(j);
        return 0;
    }
    if (enqueue(j))
        return 0;
    pthread_mutex_lock(&reg_mu);
    active_threads++;
    pthread_mutex_unlock(&reg_mu);

    pthread_attr_t attr;
    pthread_t t;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 1024 * 1024);
    int rc = pthread_create(&t, &attr, job_thread, j);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        sim_log("pthread_create: %s; running job %s inline", strerror(rc), j->id);
        job_thread(j);
    }
    return 0;
}

void sim_engine_init(void)
{
}

static void kill_one(struct sim_job *j, void *ctx)
{
    (void)ctx;
    pthread_mutex_lock(&j->mu);
    if (j->pgid > 0)
        kill(-j->pgid, SIGKILL);
    j->unscheduled = true;
    pthread_cond_broadcast(&j->cond);
    pthread_mutex_unlock(&j->mu);
}

void sim_engine_shutdown(int ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    sim_jobs_visit(kill_one, NULL);
    pthread_mutex_lock(&reg_mu);
    while (active_threads > 0) {
        if (pthread_cond_timedwait(&reg_cond, &reg_mu, &until) == ETIMEDOUT)
            break;
        /* Jobs that started meanwhile get the same treatment. */
        for (struct sim_job *j = running; j; j = j->next)
            kill_one(j, NULL);
    }
    pthread_mutex_unlock(&reg_mu);
}
