/* cmd_nodes.c -- zos nodes: is every node there, which core0, how far away.
 *
 *   names (config, or --node=a,b) --> fleet.c: one child per node, output kept
 *     child: zos_cli_node_open (connect, TLS, AUTH, PING) --> 3 PINGs: best
 *            round trip --> info.version --> {"rtt_ms":..,"version":{..}} on stdout
 *     parent: a row per node, in config order --> table, or JSON with --json
 *
 * A child that has not ended after the per-node timeout (--timeout, else
 * NODES_TIMEOUT_S) is killed, and its node reported unreachable.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "zos/zos.h"

#define NODES_TIMEOUT_S 10
#define RTT_PINGS       3

/* In the child: prints what it learnt as one JSON object; the exit code
 * says how far it got (0: reachable and info.version answered). */
static int probe(struct zos_cli *cli, void *arg)
{
    int timeout_ms = *(const int *)arg;
    struct zos_cli_node *n;
    struct zos_job_result *r = NULL;
    double rtt = -1;
    int rc = zos_cli_node_open(cli, &n);
    if (rc != 0)
        return rc;
    rc = zos_cli_node_rtt(n, RTT_PINGS, &rtt);
    if (rc == 0)
        rc =
            zos_cli_node_job(n, 0, "info.version", NULL, timeout_ms, NULL, ZOS_EXIT_CMD_FAILED, &r);
    cJSON *o = cJSON_CreateObject();
    if (rtt >= 0)
        cJSON_AddNumberToObject(o, "rtt_ms", rtt);
    if (rc == 0 && r != NULL && cJSON_IsObject(r->value))
        cJSON_AddItemToObject(o, "version", cJSON_Duplicate(r->value, true));
    else if (r != NULL)
        zos_cli_print_failure("info.version", r);
    char *text = cJSON_PrintUnformatted(o);
    if (text != NULL)
        printf("%s\n", text);
    cJSON_free(text);
    cJSON_Delete(o);
    zos_job_result_free(r);
    zos_cli_node_close(n);
    return rc;
}

/* One node's row, from its child's result. */
struct row {
    const char *name;
    const struct zos_node_conf *conf; /* NULL: known only to the proxy */
    bool is_default, reachable;
    double rtt_ms;  /* < 0: none */
    cJSON *version; /* {"branch","revision","dirty"}, or NULL */
    char error[512];
    int code;
};

/* The last line of what the child wrote on stderr, without "zos: ". */
static void last_error(const struct zos_cli_fleet_result *res, char *buf, size_t len)
{
    size_t end = res->errlen, start;
    buf[0] = '\0';
    while (end > 0 && (res->err[end - 1] == '\n' || res->err[end - 1] == '\r'))
        end--;
    for (start = end; start > 0 && res->err[start - 1] != '\n'; start--)
        ;
    if (end - start >= 5 && strncmp(res->err + start, "zos: ", 5) == 0)
        start += 5;
    snprintf(buf, len, "%.*s", (int)(end - start), res->err + start);
}

static void fill_row(struct row *w, const struct zos_cli_fleet_result *res, int timeout_ms)
{
    cJSON *o = NULL;
    w->rtt_ms = -1;
    w->code = res->code;
    if (res->outlen > 0)
        o = cJSON_ParseWithLength(res->out, res->outlen);
    if (o != NULL) {
        cJSON *rtt = cJSON_GetObjectItemCaseSensitive(o, "rtt_ms");
        w->reachable = true;
        w->rtt_ms = cJSON_IsNumber(rtt) ? rtt->valuedouble : -1;
        w->version = cJSON_DetachItemFromObjectCaseSensitive(o, "version");
        cJSON_Delete(o);
    }
    if (res->timed_out) {
        snprintf(w->error, sizeof(w->error), "no answer within %d s", timeout_ms / 1000);
        w->code = ZOS_EXIT_UNREACHABLE;
    } else if (w->code != 0) {
        last_error(res, w->error, sizeof(w->error));
        if (w->error[0] == '\0')
            snprintf(w->error, sizeof(w->error), "exit %d", w->code);
    }
}

static const char *version_text(const cJSON *v, char *buf, size_t len)
{
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(v, "branch"),
                *r = cJSON_GetObjectItemCaseSensitive(v, "revision");
    if (!cJSON_IsString(b) || !cJSON_IsString(r))
        return "?";
    snprintf(buf, len, "%s@%.12s%s", b->valuestring, r->valuestring,
             cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "dirty")) ? " (dirty)" : "");
    return buf;
}

static void print_table(const struct row *rows, size_t n)
{
    static const char *const header[] = {"",          "NODE", "ADDRESS", "TLS",
                                         "REACHABLE", "RTT",  "VERSION", "ERROR"};
    struct zos_cli_table t;
    char(*cells)[4][128] = calloc(n ? n : 1, sizeof(*cells));
    size_t ncols = 7; /* ERROR only when a node has one */
    if (cells == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        if (rows[i].error[0] != '\0')
            ncols = 8;
    zos_cli_table_init(&t, ncols, header);
    for (size_t i = 0; i < n; i++) {
        const struct row *w = &rows[i];
        if (w->conf != NULL)
            snprintf(cells[i][0], sizeof(cells[i][0]), "%s:%d", w->conf->address, w->conf->port);
        if (w->rtt_ms >= 0)
            snprintf(cells[i][1], sizeof(cells[i][1]), "%.2f ms", w->rtt_ms);
        const char *row[] = {
            w->is_default ? "*" : "",
            w->name,
            w->conf != NULL ? cells[i][0] : "-",
            w->conf == NULL ? "-"
            : w->conf->tls  ? "yes"
                            : "no",
            w->reachable ? "yes" : "no",
            w->rtt_ms >= 0 ? cells[i][1] : "-",
            w->version != NULL ? version_text(w->version, cells[i][2], sizeof(cells[i][2])) : "-",
            w->error,
        };
        zos_cli_table_add(&t, row);
    }
    zos_cli_table_print(stdout, &t);
    zos_cli_table_free(&t);
    free(cells);
}

static void print_json(const struct zos_cli *cli, struct row *rows, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        struct row *w = &rows[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", w->name);
        cJSON_AddBoolToObject(o, "default", w->is_default);
        if (w->conf != NULL) {
            cJSON_AddStringToObject(o, "address", w->conf->address);
            cJSON_AddNumberToObject(o, "port", w->conf->port);
            cJSON_AddBoolToObject(o, "tls", w->conf->tls);
        } else {
            cJSON_AddNullToObject(o, "address");
            cJSON_AddNullToObject(o, "port");
            cJSON_AddNullToObject(o, "tls");
        }
        if (cli->proxy != NULL)
            cJSON_AddStringToObject(o, "proxy", cli->proxy);
        else
            cJSON_AddNullToObject(o, "proxy");
        cJSON_AddBoolToObject(o, "reachable", w->reachable);
        if (w->rtt_ms >= 0)
            cJSON_AddNumberToObject(o, "rtt_ms", (double)(long long)(w->rtt_ms * 1000) / 1000);
        else
            cJSON_AddNullToObject(o, "rtt_ms");
        if (w->version != NULL)
            cJSON_AddItemToObject(o, "version", w->version);
        else
            cJSON_AddNullToObject(o, "version");
        w->version = NULL; /* the array owns it now */
        if (w->error[0] != '\0')
            cJSON_AddStringToObject(o, "error", w->error);
        else
            cJSON_AddNullToObject(o, "error");
        cJSON_AddNumberToObject(o, "exit", w->code);
        cJSON_AddItemToArray(a, o);
    }
    zos_cli_print_json(stdout, a);
    cJSON_Delete(a);
}

/* The node zos talks to without --node: [app] defaultzos, else the only one. */
static const char *default_name(const struct zos_conf *c)
{
    if (c->app.defaultzos != NULL)
        return c->app.defaultzos;
    return c->nnodes == 1 ? c->nodes[0].name : NULL;
}

int zos_cli_cmd_nodes(struct zos_cli *cli, int argc, char **argv)
{
    bool json = false;
    const struct zos_cli_opt opts[] = {{"json", false, NULL, &json}};
    char *pos[1];
    size_t npos;
    struct zos_cli_fleet f;
    int rc = zos_cli_args_parse("nodes", argc, argv, opts, 1, 0, pos, 0, &npos);
    if (rc >= 0)
        return rc;
    if ((rc = zos_cli_fleet_names(cli, &f)) != 0)
        return rc;
    int timeout_ms = (cli->timeout_s > 0 ? cli->timeout_s : NODES_TIMEOUT_S) * 1000;
    struct zos_cli_fleet_job job = {probe, &timeout_ms, true, timeout_ms};
    struct zos_cli_fleet_result *res = calloc(f.n, sizeof(*res));
    struct row *rows = calloc(f.n, sizeof(*rows));
    const char *def = default_name(cli->conf);
    if (res == NULL || rows == NULL) {
        rc = zos_cli_fail(ZOS_EXIT_GENERAL, "out of memory");
        goto done;
    }
    if ((rc = zos_cli_fleet_run(cli, &f, &job, res)) != 0)
        goto done;
    for (size_t i = 0; i < f.n; i++) {
        rows[i].name = f.names[i];
        rows[i].conf = zos_conf_node(cli->conf, f.names[i]);
        rows[i].is_default = def != NULL && strcmp(def, f.names[i]) == 0;
        fill_row(&rows[i], &res[i], timeout_ms);
        if (rows[i].code > rc)
            rc = rows[i].code;
    }
    if (json)
        print_json(cli, rows, f.n);
    else
        print_table(rows, f.n);
done:
    for (size_t i = 0; rows != NULL && i < f.n; i++)
        cJSON_Delete(rows[i].version);
    free(rows);
    zos_cli_fleet_results_free(res, f.n);
    zos_cli_fleet_free(&f);
    return rc;
}
