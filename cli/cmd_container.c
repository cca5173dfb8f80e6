/* cmd_container.c -- zos container [<id>] <sub-command>: new, list, info,
 * inspect, delete, zosexec, invoke, zerotierinfo, zerotierlist (new is in
 * cmd_new.c, the ssh ones in cmd_ssh.c).
 *
 *   parse: [<id>] <sub> <args> --> sub's options validated (no node yet)
 *      --> node session (PING) --> id: given, or GET zos:lastcontainerid (exit 20)
 *      --> corex.* jobs --> output
 *
 * Keys zos keeps in the node's redis, as the original (core0-protocol.md
 * §9.2): zos:lastcontainerid, container:<id>:{sshkey,layeredssh,sshenabled,
 * sshport,ip}.  Unlike the original, delete removes the container's keys so
 * a later container with the same id does not inherit them (§10.22).
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "zos/zos.h"

#define JOB_TIMEOUT_S 300

struct sub;
typedef int (*sub_fn)(struct zos_cli *cli, const struct sub *s, unsigned long cid, int argc,
                      char **argv);

struct sub {
    const char *name;
    sub_fn fn;
    bool takes_id; /* false: list and new */
};

/* ---- small helpers ---- */

static int no_such_container(struct zos_cli_node *n, unsigned long cid)
{
    return zos_cli_fail(zos_cli_exit_code(ZOS_ERRCAT_NO_CONTAINER),
                        "container %lu does not exist on node '%s'", cid, zos_cli_node_name(n));
}

/* The job's failure, with the exit code it deserves. */
static int job_failed(struct zos_cli_node *n, unsigned long cid, const char *what,
                      const struct zos_job_result *r, int code)
{
    if (r != NULL && zos_job_result_errcat(r) == ZOS_ERRCAT_NO_CONTAINER)
        return no_such_container(n, cid);
    if (r != NULL)
        zos_cli_print_failure(what, r);
    return code;
}

/* A builtin on the node, args {"container": CID}: its decoded value. */
static int container_job(struct zos_cli_node *n, unsigned long cid, const char *command,
                         const char *label, int fail_code, struct zos_job_result **res)
{
    cJSON *args = cJSON_CreateObject();
    cJSON_AddNumberToObject(args, "container", (double)cid);
    int rc = zos_cli_node_job(n, 0, command, args, zos_cli_node_timeout_ms(n, JOB_TIMEOUT_S), label,
                              fail_code, res);
    cJSON_Delete(args);
    if (rc != 0 && *res != NULL) {
        rc = job_failed(n, cid, command, *res, rc);
        zos_job_result_free(*res);
        *res = NULL;
    }
    return rc;
}

int zos_cli_container_set(struct zos_cli_node *n, unsigned long cid, enum zos_container_field f,
                          const char *value)
{
    char key[ZOS_CONTAINER_KEY_LEN];
    zos_container_key(cid, f, key);
    return zos_cli_node_set(n, key, value);
}

/* The id of the last container zos created on this node (exit 20 if none). */
static int last_container(struct zos_cli_node *n, unsigned long *cid)
{
    char *v = NULL;
    long id;
    int rc = zos_cli_node_get(n, ZOS_CLI_LAST_CONTAINER_KEY, &v);
    if (rc != 0)
        return rc;
    if (v == NULL || !zos_cli_parse_int(v, 1, 65534, &id)) {
        free(v);
        return zos_cli_fail(ZOS_EXIT_NO_CONTAINERS_YET,
                            "no container created by zos on node '%s' yet: give an id "
                            "('zos container <id> ...') or create one ('zos container new')",
                            zos_cli_node_name(n));
    }
    free(v);
    *cid = (unsigned long)id;
    return 0;
}

/* ---- listing ---- */

struct row {
    unsigned long id;
    const cJSON *info; /* the corex.list value */
};

static int row_cmp(const void *a, const void *b)
{
    const struct row *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

static const cJSON *arguments(const cJSON *info)
{
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(info, "container");
    return cJSON_GetObjectItemCaseSensitive(c, "arguments");
}

static const char *arg_str(const cJSON *info, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(arguments(info), key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* "2222:22,8080:80" from the port map, "" when none.  Caller frees.  The
 * map comes from the node: anything but an object of ports is left out. */
static char *ports_text(const cJSON *info)
{
    const cJSON *ports = cJSON_GetObjectItemCaseSensitive(arguments(info), "port"), *p;
    size_t len = 1;
    if (!cJSON_IsObject(ports))
        return strdup("");
    cJSON_ArrayForEach(p, ports) len += strlen(p->string) + 8;
    char *out = malloc(len), *w = out;
    if (out == NULL)
        return NULL;
    *w = '\0';
    cJSON_ArrayForEach(p, ports)
    {
        if (!cJSON_IsNumber(p) || p->valuedouble < 1 || p->valuedouble > 65535)
            continue;
        w += sprintf(w, "%s%s:%d", w == out ? "" : ",", p->string, (int)p->valuedouble);
    }
    return out;
}

/* The summary a user sees: the original's id, cpu, root, hostname, pid,
 * plus name and ports. */
static cJSON *summary(const struct row *r)
{
    char id[16];
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(r->info, "container");
    const cJSON *cpu = cJSON_GetObjectItemCaseSensitive(r->info, "cpu");
    const cJSON *pid = cJSON_GetObjectItemCaseSensitive(c, "pid");
    const cJSON *port = cJSON_GetObjectItemCaseSensitive(arguments(r->info), "port");
    cJSON *o = cJSON_CreateObject();
    snprintf(id, sizeof(id), "%lu", r->id);
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddNumberToObject(o, "cpu", cJSON_IsNumber(cpu) ? cpu->valuedouble : 0);
    cJSON_AddStringToObject(o, "root", arg_str(r->info, "root"));
    cJSON_AddStringToObject(o, "hostname", arg_str(r->info, "hostname"));
    cJSON_AddNumberToObject(o, "pid", cJSON_IsNumber(pid) ? pid->valuedouble : 0);
    cJSON_AddStringToObject(o, "name", arg_str(r->info, "name"));
    cJSON_AddItemToObject(o, "ports",
                          cJSON_IsObject(port) ? cJSON_Duplicate(port, 1) : cJSON_CreateObject());
    return o;
}

static void print_table(const struct row *rows, size_t n)
{
    static const char *header[] = {"ID", "Name", "Ports", "Root"};
    struct zos_cli_table t;
    char **owned = calloc(2 * n + 1, sizeof(*owned));
    zos_cli_table_init(&t, 4, header);
    for (size_t i = 0; owned != NULL && i < n; i++) {
        char *ports = ports_text(rows[i].info), *id = NULL;
        if (asprintf(&id, "%lu", rows[i].id) < 0)
            id = NULL;
        owned[2 * i] = id;
        owned[2 * i + 1] = ports;
        const char *name = arg_str(rows[i].info, "name");
        const char *row[] = {id != NULL ? id : "?", name[0] ? name : "-",
                             ports != NULL && ports[0] ? ports : "-",
                             arg_str(rows[i].info, "root")};
        zos_cli_table_add(&t, row);
    }
    zos_cli_table_print(stdout, &t);
    zos_cli_table_free(&t);
    for (size_t i = 0; owned != NULL && i < 2 * n; i++)
        free(owned[i]);
    free(owned);
}

/* corex.list, its entries sorted by id (ONLY > 0: just that one). */
static int fetch_list(struct zos_cli_node *n, struct zos_job_result **res, struct row **rows,
                      size_t *nrows)
{
    int rc = zos_cli_node_job(n, 0, "corex.list", NULL, zos_cli_node_timeout_ms(n, JOB_TIMEOUT_S),
                              "listing containers", ZOS_EXIT_CMD_FAILED, res);
    if (rc != 0) {
        if (*res != NULL)
            zos_cli_print_failure("corex.list", *res);
        return rc;
    }
    const cJSON *v = (*res)->value, *it;
    size_t count = (size_t)cJSON_GetArraySize(v), k = 0;
    *rows = calloc(count + 1, sizeof(**rows));
    if (*rows == NULL)
        return zos_cli_fail(ZOS_EXIT_GENERAL, "out of memory");
    cJSON_ArrayForEach(it, v)
    {
        long id;
        if (it->string != NULL && zos_cli_parse_int(it->string, 0, 65535, &id))
            (*rows)[k++] = (struct row){(unsigned long)id, it};
    }
    qsort(*rows, k, sizeof(**rows), row_cmp);
    *nrows = k;
    return 0;
}

static const struct row *find_row(const struct row *rows, size_t n, unsigned long cid)
{
    for (size_t i = 0; i < n; i++)
        if (rows[i].id == cid)
            return &rows[i];
    return NULL;
}

/* list / info / inspect: CID 0 means every container. */
static int show(struct zos_cli *cli, unsigned long cid, bool has_id, bool json, bool inspect)
{
    struct zos_cli_node *n;
    struct zos_job_result *res = NULL;
    struct row *rows = NULL;
    size_t nrows = 0;
    int rc = zos_cli_node_open(cli, &n);
    if (rc != 0)
        return rc;
    if ((rc = fetch_list(n, &res, &rows, &nrows)) != 0)
        goto done;
    const struct row *one = has_id ? find_row(rows, nrows, cid) : NULL;
    if (has_id && one == NULL) {
        rc = no_such_container(n, cid);
    } else if (inspect) {
        zos_cli_print_json(stdout, one != NULL ? one->info : res->value);
    } else if (json && one != NULL) {
        cJSON *o = summary(one);
        zos_cli_print_json(stdout, o);
        cJSON_Delete(o);
    } else if (json) {
        cJSON *arr = cJSON_CreateArray();
        for (size_t i = 0; i < nrows; i++)
            cJSON_AddItemToArray(arr, summary(&rows[i]));
        zos_cli_print_json(stdout, arr);
        cJSON_Delete(arr);
    } else {
        print_table(one != NULL ? one : rows, one != NULL ? 1 : nrows);
    }
done:
    free(rows);
    zos_job_result_free(res);
    zos_cli_node_close(n);
    return rc;
}

static int parse_json_flag(const char *cmd, int argc, char **argv, bool *json)
{
    const struct zos_cli_opt opts[] = {{"json", false, NULL, json}};
    char *pos[1];
    size_t npos;
    return zos_cli_args_parse(cmd, argc, argv, opts, 1, 0, pos, 0, &npos);
}

static int sub_list(struct zos_cli *cli, const struct sub *s, unsigned long cid, int argc,
                    char **argv)
{
    bool json = false;
    int rc = parse_json_flag("container list", argc, argv, &json);
    return rc >= 0 ? rc : show(cli, 0, false, json, false);
}

static int sub_info(struct zos_cli *cli, const struct sub *s, unsigned long cid, int argc,
                    char **argv)
{
    bool json = false;
    int rc = parse_json_flag("container info", argc, argv, &json);
    return rc >= 0 ? rc : show(cli, cid, cid > 0, json, false);
}

static int sub_inspect(struct zos_cli *cli, const struct sub *s, unsigned long cid, int argc,
                       char **argv)
{
    char *pos[1];
    size_t npos;
    int rc = zos_cli_args_parse("container inspect", argc, argv, NULL, 0, 0, pos, 0, &npos);
    return rc >= 0 ? rc : show(cli, cid, cid > 0, false, true);
}

/* ---- sub-commands on one container ---- */

/* Opens the node and finds the target: CID, or the last container. */
static int open_target(struct zos_cli *cli, unsigned long *cid, struct zos_cli_node **n)
{
    int rc = zos_cli_node_open(cli, n);
    if (rc == 0 && *cid == 0 && (rc = last_container(*n, cid)) != 0) {
        zos_cli_node_close(*n);
        *n = NULL;
    }
    return rc;
}

static int sub_delete(struct zos_cli *cli, const struct sub *s, unsigned long cid, int argc,
                      char **argv)
{
    struct zos_cli_node *n;
    struct zos_job_result *r = NULL;
    char *pos[1];
    size_t npos;
    int rc = zos_cli_args_parse("container delete", argc, argv, NULL, 0, 0, pos, 0, &npos);
    if (rc >= 0 || (rc = open_target(cli, &cid, &n)) != 0)
        return rc;
    rc =
        container_job(n, cid, "corex.terminate", "deleting the container", ZOS_EXIT_CMD_FAILED, &r);
    for (int f = 0; rc == 0 && f < ZOS_CONTAINER_NFIELDS; f++)
        rc = zos_cli_container_set(n, cid, (enum zos_container_field)f, NULL);
    zos_job_result_free(r);
    zos_cli_node_close(n);
    return rc;
}

static int sub_zerotier(struct zos_cli *cli, const struct sub *s, unsigned long cid, int argc,
                        char **argv)
{
    struct zos_cli_node *n;
    struct zos_job_result *r = NULL;
    char *pos[1], cmd[64];
    size_t npos;
    bool info = strcmp(s->name, "zerotierinfo") == 0;
    snprintf(cmd, sizeof(cmd), "container %s", s->name);
    int rc = zos_cli_args_parse(cmd, argc, argv, NULL, 0, 0, pos, 0, &npos);
    if (rc >= 0 || (rc = open_target(cli, &cid, &n)) != 0)
        return rc;
    rc = container_job(n, cid, info ? "corex.zerotier.info" : "corex.zerotier.list", NULL,
                       ZOS_EXIT_ZEROTIER, &r);
    if (rc == 0)
        zos_cli_print_result(r);
    zos_job_result_free(r);
    zos_cli_node_close(n);
    return rc;
}

/* core.system arguments for a command line split on blanks, as the
 * original: the first word is the program, the rest its arguments. */
static cJSON *system_args(const char *line)
{
    cJSON *args = cJSON_CreateObject(), *list = cJSON_CreateArray();
    char *copy = strdup(line), *save = NULL;
    bool first = true;
    for (char *w = copy != NULL ? strtok_r(copy, " \t\n", &save) : NULL; w != NULL;
         w = strtok_r(NULL, " \t\n", &save)) {
        if (first)
            cJSON_AddStringToObject(args, "name", w);
        else
            cJSON_AddItemToArray(list, cJSON_CreateString(w));
        first = false;
    }
    free(copy);
    cJSON_AddItemToObject(args, "args", list);
    cJSON_AddStringToObject(args, "dir", "");
    cJSON_AddStringToObject(args, "stdin", "");
    cJSON_AddNullToObject(args, "env");
    return args;
}

/* The command words of zosexec/invoke, joined; NULL after the error. */
static int command_words(const char *cmd, int argc, char **argv, char **line)
{
    char **pos = calloc((size_t)argc + 1, sizeof(*pos));
    size_t npos = 0;
    int rc = pos == NULL ? ZOS_EXIT_GENERAL
                         : zos_cli_args_parse(cmd, argc, argv, NULL, 0, ZOS_ARGS_STOP_AT_POSITIONAL,
                                              pos, (size_t)argc, &npos);
    *line = rc < 0 ? zos_cli_join(pos, npos) : NULL;
    free(pos);
    if (rc >= 0)
        return rc;
    if (*line == NULL || strspn(*line, " \t\n") == strlen(*line)) {
        free(*line);
        *line = NULL;
        return zos_cli_usage_error(cmd, "which command?");
    }
    return -1;
}

/* zosexec (WAIT: print the inner job's output as it comes) and invoke (print its id):
 * core.system inside the container through corex.dispatch. */
static int dispatch_words(struct zos_cli *cli, unsigned long cid, int argc, char **argv, bool wait)
{
    const char *what = wait ? "zosexec" : "invoke";
    struct zos_cli_node *n;
    struct zos_job_result *r = NULL;
    char *line, inner[ZOS_JOB_ID_LEN + 1], cmd[32];
    snprintf(cmd, sizeof(cmd), "container %s", what);
    int rc = command_words(cmd, argc, argv, &line);
    if (rc >= 0)
        return rc;
    if ((rc = open_target(cli, &cid, &n)) != 0) {
        free(line);
        return rc;
    }
    cJSON *args = system_args(line);
    if (wait)
        rc = zos_cli_node_job_live(n, cid, "core.system", args,
                                   zos_cli_node_timeout_ms(n, JOB_TIMEOUT_S),
                                   "waiting for the command", ZOS_EXIT_CMD_FAILED, &r);
    else
        rc = zos_cli_node_invoke(n, cid, "core.system", args, inner, &r);
    if (rc == 0 && wait)
        zos_cli_print_result(r);
    else if (rc == 0)
        printf("%s\n", inner);
    else if (r != NULL)
        rc = job_failed(n, cid, what, r, rc);
    zos_job_result_free(r);
    cJSON_Delete(args);
    free(line);
    zos_cli_node_close(n);
    return rc;
}

static int sub_zosexec(struct zos_cli *cli, const struct sub *s, unsigned long cid, int argc,
                       char **argv)
{
    return dispatch_words(cli, cid, argc, argv, true);
}

static int sub_invoke(struct zos_cli *cli, const struct sub *s, unsigned long cid, int argc,
                      char **argv)
{
    return dispatch_words(cli, cid, argc, argv, false);
}

/* ---- the ssh sub-commands (cmd_ssh.c) and new (cmd_new.c) ---- */

static int sub_new(struct zos_cli *cli, const struct sub *s, unsigned long unused, int argc,
                   char **argv)
{
    return zos_cli_container_new(cli, argc, argv);
}

static int sub_ssh(struct zos_cli *cli, const struct sub *s, unsigned long cid, int argc,
                   char **argv)
{
    struct zos_cli_node *n;
    int rc = zos_cli_ssh_check(s->name, argc, argv);
    if (rc >= 0)
        return rc;
    if ((rc = open_target(cli, &cid, &n)) != 0)
        return rc;
    rc = zos_cli_ssh_run(cli, n, cid, s->name, argc, argv);
    zos_cli_node_close(n);
    return rc;
}

static const struct sub subs[] = {
    {"new", sub_new, false},
    {"list", sub_list, false},
    {"info", sub_info, true},
    {"inspect", sub_inspect, true},
    {"delete", sub_delete, true},
    {"zosexec", sub_zosexec, true},
    {"invoke", sub_invoke, true},
    {"zerotierinfo", sub_zerotier, true},
    {"zerotierlist", sub_zerotier, true},
    {"sshenable", sub_ssh, true},
    {"sshinfo", sub_ssh, true},
    {"shell", sub_ssh, true},
    {"exec", sub_ssh, true},
    {"upload", sub_ssh, true},
    {"download", sub_ssh, true},
    {"mount", sub_ssh, true},
};

static const struct sub *find_sub(const char *name)
{
    for (size_t i = 0; i < ZOS_ARRAY_LEN(subs); i++)
        if (strcmp(subs[i].name, name) == 0)
            return &subs[i];
    return NULL;
}

int zos_cli_cmd_container(struct zos_cli *cli, int argc, char **argv)
{
    const char *id_text = NULL;
    int i = 0;
    long id = 0;

    if (argc > 0 && find_sub(argv[0]) == NULL && argv[0][0] != '-') {
        id_text = argv[0];
        i = 1;
    }
    if (i < argc && (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)) {
        zos_cli_usage(stdout, "container");
        return 0;
    }
    if (i >= argc) {
        if (id_text != NULL && !zos_cli_parse_int(id_text, 1, 65534, &id))
            return zos_cli_fail(ZOS_EXIT_UNKNOWN_COMMAND,
                                "unknown container sub-command '%s' ('zos help container' lists "
                                "them)",
                                id_text);
        return zos_cli_usage_error("container",
                                   "which sub-command? ('zos help container' lists them)");
    }
    const struct sub *s = find_sub(argv[i]);
    if (s == NULL)
        return zos_cli_fail(ZOS_EXIT_UNKNOWN_COMMAND,
                            "unknown container sub-command '%s' ('zos help container' lists them)",
                            argv[i]);
    if (id_text != NULL && !zos_cli_parse_int(id_text, 1, 65534, &id))
        return zos_cli_fail(ZOS_EXIT_MALFORMED_ARGS,
                            "a container id is a number from 1 to 65534, got '%s'", id_text);
    if (id_text != NULL && !s->takes_id)
        return zos_cli_fail(ZOS_EXIT_MALFORMED_ARGS, "'container %s' takes no container id",
                            s->name);
    return s->fn(cli, s, (unsigned long)id, argc - i - 1, argv + i + 1);
}
