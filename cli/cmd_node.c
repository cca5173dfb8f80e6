/* cmd_node.c -- ping, cmd, exec: core0 jobs on the node itself. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "zos/zos.h"

#define JOB_TIMEOUT_S 300

/* Whether COMMAND runs a process whose output is worth showing as it comes. */
static bool is_process(const char *command)
{
    return strcmp(command, "core.system") == 0 || strcmp(command, "bash") == 0;
}

/* Runs COMMAND with ARGS on the node and prints what it gave (a process's
 * output as it comes: zos_cli_node_job_live). */
static int run_and_print(struct zos_cli *cli, const char *command, const cJSON *args,
                         const char *what, int fail_code)
{
    struct zos_cli_node *n;
    struct zos_job_result *r = NULL;
    char label[160];
    int rc = zos_cli_node_open(cli, &n);
    if (rc != 0)
        return rc;
    snprintf(label, sizeof(label), "waiting for %s", command);
    rc = (is_process(command) ? zos_cli_node_job_live : zos_cli_node_job)(
        n, 0, command, args, zos_cli_node_timeout_ms(n, JOB_TIMEOUT_S), label, fail_code, &r);
    if (rc == 0)
        zos_cli_print_result(r);
    else if (r != NULL)
        zos_cli_print_failure(what, r);
    zos_job_result_free(r);
    zos_cli_node_close(n);
    return rc;
}

int zos_cli_cmd_ping(struct zos_cli *cli, int argc, char **argv)
{
    char *pos[1];
    size_t npos;
    int rc = zos_cli_args_parse("ping", argc, argv, NULL, 0, 0, pos, 0, &npos);
    if (rc >= 0)
        return rc;
    return run_and_print(cli, "core.ping", NULL, "core.ping", ZOS_EXIT_CANT_PING);
}

cJSON *zos_cli_json_arg(const char *opt, const char *text)
{
    const char *end = NULL;
    cJSON *v = cJSON_ParseWithOpts(text, &end, true);
    if (v == NULL) {
        size_t at = end != NULL && end >= text ? (size_t)(end - text) : 0;
        const char *near = text + (at <= strlen(text) ? at : 0);
        if (*near == '\0')
            zos_cli_fail(ZOS_EXIT_MALFORMED_ARGS,
                         "--%s: invalid JSON: unexpected end at byte %zu of '%s'", opt, at, text);
        else
            zos_cli_fail(ZOS_EXIT_MALFORMED_ARGS, "--%s: invalid JSON at byte %zu: '%.20s'", opt,
                         at, near);
        return NULL;
    }
    if (!cJSON_IsObject(v)) {
        zos_cli_fail(ZOS_EXIT_MALFORMED_ARGS,
                     "--%s: expected a JSON object like {\"key\": \"value\"}, got '%s'", opt, text);
        cJSON_Delete(v);
        return NULL;
    }
    return v;
}

int zos_cli_cmd_cmd(struct zos_cli *cli, int argc, char **argv)
{
    const char *json = NULL;
    const struct zos_cli_opt opts[] = {{"jsonargs", true, &json, NULL}};
    char *pos[1];
    size_t npos;
    int rc = zos_cli_args_parse("cmd", argc, argv, opts, 1, 0, pos, 1, &npos);
    if (rc >= 0)
        return rc;
    if (npos == 0 || pos[0][0] == '\0') {
        return zos_cli_usage_error("cmd",
                                   "which core0 command? (e.g. core.ping, info.os, disk.list)");
    }
    cJSON *args = NULL;
    if (json != NULL && (args = zos_cli_json_arg("jsonargs", json)) == NULL)
        return ZOS_EXIT_MALFORMED_ARGS;
    rc = run_and_print(cli, pos[0], args, pos[0], ZOS_EXIT_CMD_FAILED);
    cJSON_Delete(args);
    return rc;
}

char *zos_cli_join(char **words, size_t n)
{
    size_t len = 1;
    for (size_t i = 0; i < n; i++)
        len += strlen(words[i]) + 1;
    char *out = malloc(len), *p = out;
    if (out == NULL)
        return NULL;
    *p = '\0';
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, "%s%s", i > 0 ? " " : "", words[i]);
    return out;
}

int zos_cli_cmd_exec(struct zos_cli *cli, int argc, char **argv)
{
    char **pos = calloc((size_t)argc + 1, sizeof(*pos));
    size_t npos;
    int rc = pos == NULL
                 ? ZOS_EXIT_GENERAL
                 : zos_cli_args_parse("exec", argc, argv, NULL, 0, ZOS_ARGS_STOP_AT_POSITIONAL, pos,
                                      (size_t)argc, &npos);
    if (rc >= 0) {
        free(pos);
        return rc;
    }
    char *script = zos_cli_join(pos, npos);
    free(pos);
    if (script == NULL || script[0] == '\0') {
        free(script);
        return zos_cli_usage_error("exec", "which command?");
    }
    cJSON *args = cJSON_CreateObject();
    cJSON_AddStringToObject(args, "script", script);
    cJSON_AddStringToObject(args, "stdin", "");
    rc = run_and_print(cli, "bash", args, "exec", ZOS_EXIT_CMD_FAILED);
    cJSON_Delete(args);
    free(script);
    return rc;
}
