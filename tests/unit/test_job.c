/* test_job.c -- unit tests of job: result objects (every sample of
 * core0-protocol.md's Appendix A and §4.4, and what its Corrections add),
 * malformed ones refused, request objects, and the per-node machinery
 * against a scripted core0 on a loopback port of this process:
 *
 *   zos_job_run --RPUSH core:default--> shared link --+
 *              --BRPOPLPUSH result:<id>--> waiter i --+--> fake core0 (listener, tu_peer per
 *                                                           connection): holds each wait until
 *                                                           the test finishes the job
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "zos/job.h"
#include "zos/link.h"
#include "zos/zos.h"

#include "testutil.h"

#define HOUR_MS 3600000

/* ---- result objects ---- */

static struct zos_job_result *parse(const char *text)
{
    char err[200] = "";
    struct zos_job_result *r = zos_job_result_parse(text, strlen(text), err, sizeof(err));
    if (r == NULL)
        fail_msg("refused: %s (%s)", text, err);
    assert_string_equal(r->raw, text);
    assert_non_null(r->json);
    return r;
}

static void describe_is(const struct zos_job_result *r, const char *want)
{
    char buf[300];
    zos_job_result_describe(r, buf, sizeof(buf));
    assert_string_equal(buf, want);
}

static void output_is(const struct zos_job_result *r, const char *want)
{
    char *out = zos_job_result_output(r, false);
    assert_string_equal(out, want);
    free(out);
}

/* core.ping (t1): level 20, data JSON inside a string, decoded once more. */
static void test_result_core_ping(void **state)
{
    struct zos_job_result *r = parse(
        "{\"id\":\"t1\",\"command\":\"core.ping\",\"data\":\"\\\"PONG Version: master "
        "@Revision: 5ca6d8a630d2df93873f9fb64fe9194a5bb4203e\\\"\",\"streams\":[\"\",\"\"],"
        "\"level\":20,\"state\":\"SUCCESS\",\"code\":0,\"starttime\":1795889956739,\"time\":1,"
        "\"tags\":null,\"container\":0}");
    assert_string_equal(r->id, "t1");
    assert_string_equal(r->command, "core.ping");
    assert_string_equal(r->state, "SUCCESS");
    assert_true(zos_job_ok(r));
    assert_int_equal(r->level, 20);
    assert_int_equal(r->code, 0);
    assert_int_equal(r->starttime, 1795889956739LL); /* past 2^32: no truncation */
    assert_int_equal(r->time, 1);
    assert_int_equal(r->container, 0);
    assert_true(r->has_streams);
    assert_string_equal(r->out, "");
    assert_true(cJSON_IsString(r->value));
    assert_string_equal(r->value->valuestring,
                        "PONG Version: master @Revision: 5ca6d8a630d2df93873f9fb64fe9194a5bb4203e");
    output_is(r, "\"PONG Version: master @Revision: 5ca6d8a630d2df93873f9fb64fe9194a5bb4203e\"");
    zos_job_result_free(r);
}

/* core.system echo (t2), with stdin (t6), env+dir (t8): level 0, output in streams[0]. */
static void test_result_core_system(void **state)
{
    static const char *const t[][2] = {
        {"{\"id\":\"t2\",\"command\":\"core.system\",\"data\":\"\",\"streams\":[\"hi\\n\",\"\"],"
         "\"level\":0,\"state\":\"SUCCESS\",\"code\":0,\"starttime\":1795889960133,\"time\":15,"
         "\"tags\":null,\"container\":0}",
         "hi\n"},
        {"{\"id\":\"t6\",\"command\":\"core.system\",\"data\":\"\",\"streams\":[\"from-stdin\\n\","
         "\"\"],\"level\":0,\"state\":\"SUCCESS\",\"code\":0,\"starttime\":1795889960521,\"time\":"
         "12,\"tags\":null,\"container\":0}",
         "from-stdin\n"},
        {"{\"id\":\"t8\",\"command\":\"core.system\",\"data\":\"\",\"streams\":[\"bar\\n/tmp\\n\","
         "\"\"],\"level\":0,\"state\":\"SUCCESS\",\"code\":0,\"starttime\":1795889960600,\"time\":"
         "9,\"tags\":null,\"container\":0}",
         "bar\n/tmp\n"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct zos_job_result *r = parse(t[i][0]);
        assert_true(zos_job_ok(r));
        assert_int_equal(r->level, 0);
        assert_null(r->value);
        assert_string_equal(r->out, t[i][1]);
        assert_string_equal(r->err, "");
        output_is(r, t[i][1]);
        zos_job_result_free(r);
    }
}

/* bash exit 3 (t3): ERROR, code 1000 + status, stderr in streams[1]. */
static void test_result_bash_failure(void **state)
{
    struct zos_job_result *r = parse(
        "{\"id\":\"t3\",\"command\":\"bash\",\"data\":\"\",\"streams\":[\"hi\\n\",\"err\\n\"],"
        "\"level\":0,\"state\":\"ERROR\",\"code\":1003,\"starttime\":1795889960229,\"time\":24,"
        "\"tags\":null,\"container\":0}");
    assert_false(zos_job_ok(r));
    assert_int_equal(r->code, 1003);
    assert_string_equal(r->out, "hi\n");
    assert_string_equal(r->err, "err\n");
    describe_is(r, "ERROR code=1003: err");
    zos_job_result_free(r);
}

/* An unknown command (t4): UNKNOWN_CMD, no streams key, no times. */
static void test_result_unknown_command(void **state)
{
    struct zos_job_result *r = parse(
        "{\"id\":\"t4\",\"command\":\"no.such.cmd\",\"data\":\"\",\"level\":0,\"state\":"
        "\"UNKNOWN_CMD\",\"code\":0,\"starttime\":0,\"time\":0,\"tags\":null,\"container\":0}");
    assert_false(zos_job_ok(r));
    assert_string_equal(r->state, "UNKNOWN_CMD");
    assert_false(r->has_streams);
    assert_string_equal(r->out, "");
    assert_string_equal(r->err, "");
    describe_is(r, "UNKNOWN_CMD code=0");
    zos_job_result_free(r);
}

/* A spawn failure (t5, and §4.4's s4): level 0, code 404, data raw text (not JSON). */
static void test_result_spawn_failure(void **state)
{
    struct zos_job_result *r = parse(
        "{\"id\":\"t5\",\"command\":\"core.system\",\"data\":\"exec: \\\"/nonexistent/bin\\\": "
        "stat /nonexistent/bin: no such file or directory\",\"level\":0,\"state\":\"ERROR\","
        "\"code\":404,\"starttime\":1795889960429,\"time\":0,\"tags\":null,\"container\":0}");
    assert_int_equal(r->code, 404);
    assert_false(r->has_streams);
    assert_null(r->value);
    describe_is(r, "ERROR code=404: exec: \"/nonexistent/bin\": stat /nonexistent/bin: no such "
                   "file or directory");
    zos_job_result_free(r);

    r = parse("{\"id\":\"s4\",\"command\":\"core.system\",\"data\":\"exec: \\\"nope\\\": "
              "executable file not found in $PATH\",\"level\":0,\"state\":\"ERROR\",\"code\":404,"
              "\"starttime\":1592430003000,\"time\":0,\"tags\":null,\"container\":0}");
    describe_is(r, "ERROR code=404: exec: \"nope\": executable file not found in $PATH");
    zos_job_result_free(r);
}

/* A streamed job (s1, s2): the result carries both streams whole. */
static void test_result_streamed(void **state)
{
    struct zos_job_result *r = parse(
        "{\"id\":\"s1\",\"command\":\"bash\",\"data\":\"\",\"streams\":[\"a\\nc\\n\",\"b\\n\"],"
        "\"level\":0,\"state\":\"SUCCESS\",\"code\":0,\"starttime\":1795889966232,\"time\":226,"
        "\"tags\":null,\"container\":0}");
    assert_string_equal(r->out, "a\nc\n");
    assert_string_equal(r->err, "b\n");
    assert_int_equal(r->time, 226);
    zos_job_result_free(r);
}

/* job.list (jl1): data a JSON array inside a string. */
static void test_result_job_list(void **state)
{
    struct zos_job_result *r = parse(
        "{\"id\":\"jl1\",\"command\":\"job.list\",\"data\":\"[{\\\"cpu\\\":0,\\\"rss\\\":1859584,"
        "\\\"vms\\\":2990080,\\\"swap\\\":0,\\\"starttime\\\":1795889973086,\\\"cmd\\\":{"
        "\\\"id\\\":"
        "\\\"long1\\\",\\\"command\\\":\\\"core.system\\\",\\\"arguments\\\":{\\\"name\\\":"
        "\\\"sleep\\\",\\\"args\\\":[\\\"30\\\"]},\\\"queue\\\":\\\"\\\",\\\"stream\\\":false,"
        "\\\"tags\\\":[\\\"tagA\\\"]},\\\"pid\\\":18534},{\\\"cpu\\\":0,\\\"rss\\\":0,\\\"vms\\\":"
        "0,"
        "\\\"swap\\\":0,\\\"starttime\\\":1795889973639,\\\"cmd\\\":{\\\"id\\\":\\\"jl1\\\","
        "\\\"command\\\":\\\"job.list\\\",\\\"arguments\\\":{},\\\"queue\\\":\\\"\\\","
        "\\\"stream\\\":"
        "false,\\\"tags\\\":null},\\\"pid\\\":0}]\",\"streams\":[\"\",\"\"],\"level\":20,\"state\":"
        "\"SUCCESS\",\"code\":0,\"starttime\":1795889973639,\"time\":1,\"tags\":null,"
        "\"container\":0}");
    assert_true(cJSON_IsArray(r->value));
    assert_int_equal(cJSON_GetArraySize(r->value), 2);
    const cJSON *cmd = cJSON_GetObjectItem(cJSON_GetArrayItem(r->value, 0), "cmd");
    assert_string_equal(cJSON_GetObjectItem(cmd, "id")->valuestring, "long1");
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(r->value, 0), "pid")->valueint, 18534);
    zos_job_result_free(r);
}

/* job.kill (jk1; the appendix elides the last keys, given here as §4.1 has
 * them), the killed job (long1: code 999, its tags), max_time (mt1: TIMEOUT). */
static void test_result_kill_and_timeout(void **state)
{
    struct zos_job_result *r = parse(
        "{\"id\":\"jk1\",\"command\":\"job.kill\",\"data\":\"true\",\"streams\":[\"\",\"\"],"
        "\"level\":20,\"state\":\"SUCCESS\",\"code\":0,\"starttime\":1795889973700,\"time\":0,"
        "\"tags\":null,\"container\":0}");
    assert_true(cJSON_IsTrue(r->value));
    output_is(r, "true");
    zos_job_result_free(r);

    r = parse(
        "{\"id\":\"long1\",\"command\":\"core.system\",\"data\":\"\",\"streams\":[\"\",\"\"],"
        "\"level\":0,\"state\":\"ERROR\",\"code\":999,\"starttime\":1795889973086,\"time\":637,"
        "\"tags\":[\"tagA\"],\"container\":0}");
    assert_int_equal(r->code, 999);
    assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(r->json, "tags"), 0)->valuestring,
                        "tagA");
    describe_is(r, "ERROR code=999");
    zos_job_result_free(r);

    r = parse("{\"id\":\"mt1\",\"command\":\"core.system\",\"data\":\"\",\"streams\":[\"\",\"\"],"
              "\"level\":0,\"state\":\"TIMEOUT\",\"code\":999,\"starttime\":1795889977312,\"time\":"
              "1006,\"tags\":null,\"container\":0}");
    assert_false(zos_job_ok(r));
    describe_is(r, "TIMEOUT code=999");
    zos_job_result_free(r);
}

/* info.version (i5): data an object; pretty output is still JSON of it. */
static void test_result_info_version(void **state)
{
    struct zos_job_result *r = parse(
        "{\"id\":\"i5\",\"command\":\"info.version\",\"data\":\"{\\\"branch\\\":\\\"master\\\","
        "\\\"revision\\\":\\\"5ca6d8a630d2df93873f9fb64fe9194a5bb4203e\\\",\\\"dirty\\\":"
        "false}\",\"streams\":[\"\",\"\"],\"level\":20,\"state\":\"SUCCESS\",\"code\":0,"
        "\"starttime\":1795889978619,\"time\":0,\"tags\":null,\"container\":0}");
    assert_string_equal(cJSON_GetObjectItem(r->value, "branch")->valuestring, "master");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(r->value, "dirty")));
    output_is(r, "{\"branch\":\"master\",\"revision\":\"5ca6d8a630d2df93873f9fb64fe9194a5bb4203e\","
                 "\"dirty\":false}");
    char *pretty = zos_job_result_output(r, true);
    cJSON *back = cJSON_Parse(pretty);
    assert_true(cJSON_Compare(back, r->value, true));
    assert_non_null(strchr(pretty, '\n'));
    cJSON_Delete(back);
    free(pretty);
    zos_job_result_free(r);
}

/* Builtin errors (f7, the bad fd, the bad argument type, §4.4's t9): level
 * 20 and data a JSON string: the description shows it decoded. */
static void test_result_builtin_errors(void **state)
{
    static const char *const t[][2] = {
        {"{\"id\":\"f7\",\"command\":\"filesystem.open\",\"data\":\"\\\"open /tmp/fsdemo/nope.txt: "
         "no such file or directory\\\"\",\"streams\":[\"\",\"\"],\"level\":20,\"state\":\"ERROR\","
         "\"code\":500,\"starttime\":1795889980000,\"time\":0,\"tags\":null,\"container\":0}",
         "ERROR code=500: open /tmp/fsdemo/nope.txt: no such file or directory"},
        {"{\"id\":\"f8\",\"command\":\"filesystem.read\",\"data\":\"\\\"unknown file description "
         "'bogus'\\\"\",\"streams\":[\"\",\"\"],\"level\":20,\"state\":\"ERROR\",\"code\":500,"
         "\"starttime\":1795889980100,\"time\":0,\"tags\":null,\"container\":0}",
         "ERROR code=500: unknown file description 'bogus'"},
        {"{\"id\":\"b1\",\"command\":\"job.list\",\"data\":\"\\\"json: cannot unmarshal string "
         "into "
         "Go value of type builtin.jobArguments\\\"\",\"streams\":[\"\",\"\"],\"level\":20,"
         "\"state\":\"ERROR\",\"code\":500,\"starttime\":1795889980200,\"time\":0,\"tags\":null,"
         "\"container\":0}",
         "ERROR code=500: json: cannot unmarshal string into Go value of type "
         "builtin.jobArguments"},
        {"{\"id\":\"t9\",\"command\":\"corex.terminate\",\"data\":\"\\\"no container with id "
         "'42'\\\"\",\"streams\":[\"\",\"\"],\"level\":20,\"state\":\"ERROR\",\"code\":500,"
         "\"starttime\":1592430001000,\"time\":1,\"tags\":null,\"container\":0}",
         "ERROR code=500: no container with id '42'"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct zos_job_result *r = parse(t[i][0]);
        assert_int_equal(r->level, 20);
        assert_true(cJSON_IsString(r->value));
        describe_is(r, t[i][1]);
        zos_job_result_free(r);
    }
}

/* core.system without arguments (n1): a panic, in critical. */
static void test_result_panic(void **state)
{
    struct zos_job_result *r =
        parse("{\"id\":\"n1\",\"command\":\"core.system\",\"data\":\"\",\"critical\":\"PANIC("
              "runtime error: invalid memory address or nil pointer dereference)\",\"level\":0,"
              "\"state\":\"ERROR\",\"code\":0,\"starttime\":1795889991577,\"time\":0,\"tags\":null,"
              "\"container\":0}");
    assert_string_equal(r->critical,
                        "PANIC(runtime error: invalid memory address or nil pointer dereference)");
    describe_is(r, "ERROR code=0: PANIC(runtime error: invalid memory address or nil pointer "
                   "dereference)");
    zos_job_result_free(r);
}

/* The data-only samples (filesystem, core.state, info.os, logger.subscribe),
 * in the level-20 result object they come in; §4.4: null is "null". */
static void test_result_data_samples(void **state)
{
    static const char *const data[] = {
        "\"6cb84d07-02f4-4d9a-a962-445b1152d89f\"",
        "null",
        "false",
        "[{\"name\":\"x.txt\",\"size\":6,\"mode\":0,\"is_dir\":false}]",
        "{\"cpu\":0,\"rss\":12935168,\"vms\":1340088320,\"swap\":0}",
        "{\"hostname\":\"vm\",\"uptime\":963,\"bootTime\":1795889015,\"procs\":123,\"os\":"
        "\"linux\"}",
        "\"logger:q1\"",
    };
    for (size_t i = 0; i < sizeof(data) / sizeof(data[0]); i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", "d");
        cJSON_AddStringToObject(o, "command", "x");
        cJSON_AddStringToObject(o, "data", data[i]);
        cJSON_AddNumberToObject(o, "level", 20);
        cJSON_AddStringToObject(o, "state", "SUCCESS");
        char *text = cJSON_PrintUnformatted(o);
        struct zos_job_result *r = parse(text);
        assert_string_equal(r->data, data[i]);
        assert_non_null(r->value);
        cJSON *want = cJSON_Parse(data[i]);
        assert_true(cJSON_Compare(r->value, want, true));
        output_is(r, data[i]);
        cJSON_Delete(want);
        zos_job_result_free(r);
        cJSON_free(text);
        cJSON_Delete(o);
    }
}

/* Corrections 3: KILLED does occur (a recurring job signalled between runs);
 * §10/Go: DUPILICATE_ID is spelled so.  Neither is a success. */
static void test_result_corrections_states(void **state)
{
    static const char *const states[] = {"KILLED", "DUPILICATE_ID"};
    for (size_t i = 0; i < 2; i++) {
        char text[300];
        tu_sfmt(text, sizeof(text),
                "{\"id\":\"r1\",\"command\":\"core.system\",\"data\":\"\",\"streams\":[\"\",\"\"],"
                "\"level\":0,\"state\":\"%s\",\"code\":0,\"starttime\":1,\"time\":2,\"tags\":null,"
                "\"container\":0}",
                states[i]);
        struct zos_job_result *r = parse(text);
        assert_string_equal(r->state, states[i]);
        assert_false(zos_job_ok(r));
        zos_job_result_free(r);
    }
}

/* A result back from a container carries its id; a result whose level-20
 * data is not JSON keeps the text (zerotier.list leaves blanks around it). */
static void test_result_container_and_blanks(void **state)
{
    struct zos_job_result *r =
        parse("{\"id\":\"d1-inner\",\"command\":\"core.system\",\"data\":\"\",\"streams\":[\"total "
              "0\\n\",\"\"],\"level\":0,\"state\":\"SUCCESS\",\"code\":0,\"starttime\":1,\"time\":"
              "3,\"tags\":null,\"container\":7}");
    assert_int_equal(r->container, 7);
    zos_job_result_free(r);
    r = parse("{\"data\":\"  [1,2]\\n \",\"level\":20,\"state\":\"SUCCESS\"}");
    assert_int_equal(cJSON_GetArraySize(r->value), 2);
    output_is(r, "[1,2]");
    zos_job_result_free(r);
    r = parse("{\"data\":\"not json\",\"level\":20,\"state\":\"SUCCESS\"}");
    assert_null(r->value);
    output_is(r, "not json");
    zos_job_result_free(r);
}

static void test_result_malformed_refused(void **state)
{
    static const char *const bad[] = {
        "",
        "null",
        "[]",
        "\"SUCCESS\"",
        "{}",
        "{\"state\":1}",
        "{\"state\":null}",
        "{\"id\":\"t1\",\"state\":\"SUCCESS\"",
        "not json",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[200] = "";
        struct zos_job_result *r = zos_job_result_parse(bad[i], strlen(bad[i]), err, sizeof(err));
        if (r != NULL)
            fail_msg("accepted: %s", bad[i]);
        assert_string_equal(err, "the node returned a result that is not a core0 result object");
    }
    /* LEN is the end, not the NUL: a whole object cut short is refused. */
    const char *whole = "{\"state\":\"SUCCESS\"}";
    char err[200];
    assert_null(zos_job_result_parse(whole, strlen(whole) - 1, err, sizeof(err)));
    struct zos_job_result *r = zos_job_result_parse(whole, strlen(whole), err, sizeof(err));
    assert_non_null(r);
    zos_job_result_free(r);
}

/* Fields of the wrong type read as absent; never NULL strings. */
static void test_result_wrong_types_read_as_absent(void **state)
{
    struct zos_job_result *r =
        parse("{\"id\":5,\"command\":null,\"data\":[1],\"streams\":\"x\",\"critical\":{},"
              "\"level\":\"20\",\"state\":\"ERROR\",\"code\":\"7\",\"container\":true}");
    assert_string_equal(r->id, "");
    assert_string_equal(r->command, "");
    assert_string_equal(r->data, "");
    assert_string_equal(r->critical, "");
    assert_false(r->has_streams);
    assert_int_equal(r->level, 0);
    assert_int_equal(r->code, 0);
    assert_int_equal(r->container, 0);
    assert_null(r->value);
    describe_is(r, "ERROR code=0");
    zos_job_result_free(r);
}

/* ---- request objects ---- */

static void test_request_defaults(void **state)
{
    struct zos_job_req req = {.command = "core.ping"};
    char *text = zos_job_request_json(&req, "abc");
    assert_string_equal(text, "{\"id\":\"abc\",\"command\":\"core.ping\",\"arguments\":{},"
                              "\"queue\":null,\"max_time\":null,\"stream\":false,\"tags\":null}");
    free(text);
}

static void test_request_every_field(void **state)
{
    cJSON *args = cJSON_Parse("{\"name\":\"/bin/ls\",\"args\":[\"-la\"]}");
    cJSON *tags = cJSON_Parse("[\"a\",\"b\"]");
    struct zos_job_req req = {.command = "core.system",
                              .args = args,
                              .queue = "q1",
                              .max_time = 30,
                              .stream = true,
                              .tags = tags};
    char *text = zos_job_request_json(&req, "id-1");
    assert_string_equal(text,
                        "{\"id\":\"id-1\",\"command\":\"core.system\",\"arguments\":{\"name\":"
                        "\"/bin/ls\",\"args\":[\"-la\"]},\"queue\":\"q1\",\"max_time\":30,"
                        "\"stream\":true,\"tags\":[\"a\",\"b\"]}");
    free(text);
    /* The caller's trees are borrowed: still whole. */
    assert_int_equal(cJSON_GetArraySize(tags), 2);
    assert_string_equal(cJSON_GetObjectItem(args, "name")->valuestring, "/bin/ls");
    cJSON_Delete(args);
    cJSON_Delete(tags);
}

static void test_uuid(void **state)
{
    char a[ZOS_JOB_ID_LEN + 1], b[ZOS_JOB_ID_LEN + 1];
    zos_job_uuid(a);
    zos_job_uuid(b);
    assert_int_equal(strlen(a), ZOS_JOB_ID_LEN);
    assert_string_not_equal(a, b);
    for (int i = 0; i < ZOS_JOB_ID_LEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            assert_int_equal(a[i], '-');
        else
            assert_non_null(strchr("0123456789abcdef", a[i]));
    }
    assert_int_equal(a[14], '4');           /* version 4 */
    assert_non_null(strchr("89ab", a[19])); /* RFC 4122 variant */
}

/* ---- the per-node machinery, against a scripted core0 ---- */

#define MAXC 32

struct hold {
    struct tu_peer *p;
    char key[80]; /* result:<id> or stream:<id> */
};

struct node {
    struct event_base *base;
    struct evconnlistener *lis;
    struct zos_node_conf conf;
    struct tu_peer *conns[MAXC];
    size_t nconns;
    char *pushed[MAXC]; /* RPUSH core:default payloads */
    size_t npushed;
    char *result_id[MAXC], *result[MAXC];
    size_t nresults;
    struct hold held[MAXC];
    size_t nheld, most_held; /* waits held now, and at most at once */
    size_t ttls;             /* TTL requests answered */
};

static struct node N;

static const char *find_result(const char *id)
{
    for (size_t i = 0; i < N.nresults; i++)
        if (strcmp(N.result_id[i], id) == 0)
            return N.result[i];
    return NULL;
}

static void say_bulk(struct tu_peer *p, const char *s)
{
    char head[32];
    tu_sfmt(head, sizeof(head), "$%zu\r\n", strlen(s));
    tu_peer_say(p, head);
    tu_peer_say(p, s);
    tu_peer_say(p, "\r\n");
}

static void node_cb(void *arg, struct tu_peer *p, size_t argc, char **argv, const size_t *lens)
{
    char reply[64];
    if (strcmp(argv[0], "PING") == 0) {
        tu_peer_say(p, "+PONG\r\n");
    } else if (strcmp(argv[0], "RPUSH") == 0 && argc == 3 && strcmp(argv[1], "core:default") == 0) {
        assert_true(N.npushed < MAXC);
        N.pushed[N.npushed++] = strdup(argv[2]);
        tu_peer_say(p, ":1\r\n");
    } else if ((strcmp(argv[0], "BRPOPLPUSH") == 0 && argc == 4 && strcmp(argv[1], argv[2]) == 0) ||
               (strcmp(argv[0], "BLPOP") == 0 && argc == 3)) {
        const char *res = strncmp(argv[1], "result:", 7) == 0 ? find_result(argv[1] + 7) : NULL;
        if (res != NULL) {
            say_bulk(p, res); /* non-destructive: the result stays */
            return;
        }
        assert_true(N.nheld < MAXC);
        N.held[N.nheld].p = p;
        tu_sfmt(N.held[N.nheld].key, sizeof(N.held[0].key), "%s", argv[1]);
        if (++N.nheld > N.most_held)
            N.most_held = N.nheld;
    } else if (strcmp(argv[0], "TTL") == 0 && argc == 2) {
        char id[80];
        tu_sfmt(id, sizeof(id), "%.*s", (int)(lens[1] - 7 - 5), argv[1] + 7); /* result:<id>:flag */
        N.ttls++;
        tu_sfmt(reply, sizeof(reply), ":%d\r\n", find_result(id) != NULL ? 300 : -1);
        tu_peer_say(p, reply);
    } else {
        tu_sfmt(reply, sizeof(reply), "-ERR unknown command '%s'\r\n", argv[0]);
        tu_peer_say(p, reply);
    }
}

static void accept_cb(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    struct bufferevent *bev = bufferevent_socket_new(N.base, fd, BEV_OPT_CLOSE_ON_FREE);
    assert_true(bev != NULL && N.nconns < MAXC);
    N.conns[N.nconns] = tu_peer_new(bev, node_cb, NULL);
    assert_non_null(N.conns[N.nconns]);
    N.nconns++;
}

/* The wait held for KEY, if any, gets REPLY (NULL: the slice is over, nil). */
static bool release(const char *key, const char *reply)
{
    for (size_t i = 0; i < N.nheld; i++) {
        if (strcmp(N.held[i].key, key) != 0)
            continue;
        if (reply != NULL)
            say_bulk(N.held[i].p, reply);
        else
            tu_peer_say(N.held[i].p, "*-1\r\n");
        N.held[i] = N.held[--N.nheld];
        return true;
    }
    return false;
}

/* Job ID ends with RESULT: stored (later waits get it at once), and handed
 * to the wait held for it. */
static void node_finish(const char *id, const char *result)
{
    char key[80];
    N.result_id[N.nresults] = strdup(id);
    N.result[N.nresults++] = strdup(result);
    tu_sfmt(key, sizeof(key), "result:%s", id);
    release(key, result);
}

static char *result_of(const char *id, const char *extra)
{
    char *s = malloc(300);
    snprintf(s, 300,
             "{\"id\":\"%s\",\"command\":\"core.system\",\"data\":\"\",\"streams\":[\"out-%s\","
             "\"\"],\"level\":0,\"state\":\"SUCCESS\",\"code\":0,\"starttime\":1,\"time\":1,"
             "\"tags\":null,\"container\":%s}",
             id, id, extra != NULL ? extra : "0");
    return s;
}

static void node_start(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    memset(&N, 0, sizeof(N));
    N.base = event_base_new();
    assert_non_null(N.base);
    N.lis =
        evconnlistener_new_bind(N.base, accept_cb, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                                -1, (struct sockaddr *)&sa, sizeof(sa));
    assert_non_null(N.lis);
    assert_int_equal(getsockname(evconnlistener_get_fd(N.lis), (struct sockaddr *)&sa, &len), 0);
    N.conf.name = "n1";
    N.conf.address = "127.0.0.1";
    N.conf.port = ntohs(sa.sin_port);
}

static void node_stop(void)
{
    for (size_t i = 0; i < N.nconns; i++)
        tu_peer_free(N.conns[i]);
    for (size_t i = 0; i < N.npushed; i++)
        free(N.pushed[i]);
    for (size_t i = 0; i < N.nresults; i++) {
        free(N.result_id[i]);
        free(N.result[i]);
    }
    if (N.lis != NULL)
        evconnlistener_free(N.lis);
    tu_loop_settle(N.base); /* callbacks still deferred hold their bufferevents */
    event_base_free(N.base);
}

/* What the job callbacks got. */
struct done {
    int calls;
    char id[64];
    char out[64];
    unsigned long container;
    char err[200];
    enum zos_errcat cat;
};

static void done_cb(void *arg, struct zos_job_result *res, const struct zos_err *err)
{
    struct done *d = arg;
    d->calls++;
    if (res != NULL) {
        tu_sfmt(d->id, sizeof(d->id), "%s", res->id);
        tu_sfmt(d->out, sizeof(d->out), "%s", res->out);
        d->container = res->container;
    }
    tu_sfmt(d->err, sizeof(d->err), "%s", err != NULL ? err->text : "");
    d->cat = err != NULL ? err->cat : ZOS_ERRCAT_NONE;
    zos_job_result_free(res);
}

struct jfx {
    struct zos_link *shared;
    struct zos_jobs *jobs;
};

static struct jfx setup_jobs(int max_waiters)
{
    struct zos_link_opts lo = {.connect_timeout_ms = HOUR_MS, .backoff_max_ms = HOUR_MS};
    struct zos_jobs_opts jo = {.max_waiters = max_waiters, .link = lo};
    struct jfx f;
    f.shared = zos_link_new(N.base, NULL, &N.conf, NULL, &lo);
    assert_non_null(f.shared);
    f.jobs = zos_jobs_new(N.base, NULL, &N.conf, NULL, f.shared, &jo);
    assert_non_null(f.jobs);
    return f;
}

static void teardown_jobs(struct jfx *f)
{
    zos_jobs_free(f->jobs);
    zos_link_free(f->shared);
}

static size_t want_held, want_pushed;
static bool held_and_pushed(void *arg)
{
    return N.nheld >= want_held && N.npushed >= want_pushed;
}

static bool held_key(void *arg)
{
    for (size_t i = 0; i < N.nheld; i++)
        if (strcmp(N.held[i].key, arg) == 0)
            return true;
    return false;
}

static bool called(void *arg)
{
    return ((struct done *)arg)->calls > 0;
}

static size_t ttls_before;
static bool polled_twice(void *arg)
{
    return N.ttls >= ttls_before + 2;
}

static void wait_held(size_t held, size_t pushed)
{
    want_held = held;
    want_pushed = pushed;
    assert_true(tu_loop_until(N.base, held_and_pushed, NULL));
}

/* Waiting links are bounded: with 2 of them, 4 jobs make 2 waits at the
 * node and the others queue in order; a finished job's link takes the next. */
static void test_waiting_links_are_bounded(void **state)
{
    static const char *const ids[] = {"j0", "j1", "j2", "j3"};
    struct done d[4] = {{0}};
    node_start();
    struct jfx f = setup_jobs(2);
    for (int i = 0; i < 4; i++) {
        struct zos_job_req req = {.command = "core.system", .id = ids[i]};
        char id[ZOS_JOB_ID_LEN + 1] = "";
        assert_non_null(zos_job_run(f.jobs, &req, HOUR_MS, id, done_cb, &d[i]));
        assert_string_equal(id, ids[i]);
        assert_int_equal(d[i].calls, 0); /* never inside the call */
    }
    wait_held(2, 4);
    assert_int_equal(zos_jobs_pending(f.jobs), 4);
    assert_true(held_key("result:j0") && held_key("result:j1"));
    assert_int_equal(N.nconns, 3); /* the shared link and two waiting links */

    /* j0 ends: its link waits for j2 next (FIFO), never a third wait. */
    char *r0 = result_of("j0", NULL);
    node_finish("j0", r0);
    assert_true(tu_loop_until(N.base, called, &d[0]));
    assert_string_equal(d[0].id, "j0");
    assert_string_equal(d[0].out, "out-j0");
    assert_true(tu_loop_until(N.base, held_key, "result:j2"));
    assert_false(held_key("result:j3"));
    for (int i = 1; i < 4; i++) {
        char *r = result_of(ids[i], NULL);
        node_finish(ids[i], r);
        assert_true(tu_loop_until(N.base, called, &d[i]));
        free(r);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(d[i].calls, 1);
        assert_string_equal(d[i].id, ids[i]);
        assert_string_equal(d[i].err, "");
        assert_int_equal(d[i].cat, ZOS_ERRCAT_NONE);
    }
    assert_int_equal(N.most_held, 2);
    assert_int_equal(N.nconns, 3);
    assert_int_equal(zos_jobs_pending(f.jobs), 0);
    free(r0);
    teardown_jobs(&f);
    node_stop();
}

/* A job still running after one wait gives its link up: it is polled with
 * TTL on the shared link, the queued job gets the waiting link, and the long
 * one gets a link again once it ended. */
static void test_long_job_leaves_the_waiting_link(void **state)
{
    struct done dl = {0}, ds = {0};
    node_start();
    struct jfx f = setup_jobs(1);
    struct zos_job_req long_req = {.command = "core.system", .id = "long"};
    struct zos_job_req short_req = {.command = "core.system", .id = "short"};
    assert_non_null(zos_job_run(f.jobs, &long_req, HOUR_MS, NULL, done_cb, &dl));
    assert_non_null(zos_job_run(f.jobs, &short_req, HOUR_MS, NULL, done_cb, &ds));
    wait_held(1, 2);
    assert_true(held_key("result:long"));
    assert_true(release("result:long", NULL)); /* the slice is over, nothing yet */
    assert_true(tu_loop_until(N.base, held_key, "result:short"));
    ttls_before = N.ttls;
    assert_true(tu_loop_until(N.base, polled_twice, NULL)); /* still running, asked again */
    assert_false(held_key("result:long"));
    char *rs = result_of("short", NULL), *rl = result_of("long", NULL);
    node_finish("short", rs);
    assert_true(tu_loop_until(N.base, called, &ds));
    node_finish("long", rl);
    assert_true(tu_loop_until(N.base, called, &dl));
    assert_string_equal(dl.out, "out-long");
    assert_string_equal(ds.out, "out-short");
    assert_int_equal(N.most_held, 1);
    free(rs);
    free(rl);
    teardown_jobs(&f);
    node_stop();
}

/* corex.dispatch (§6.4): the request's shape, then two waits. */
static void test_run_in_container(void **state)
{
    struct done d = {0};
    node_start();
    struct jfx f = setup_jobs(2);
    cJSON *args = cJSON_Parse("{\"name\":\"/bin/ls\"}");
    struct zos_job_req req = {.command = "core.system", .args = args, .id = "inner1"};
    assert_non_null(zos_job_run_in(f.jobs, 7, &req, HOUR_MS, done_cb, &d));
    cJSON_Delete(args);
    wait_held(1, 1);
    cJSON *outer = cJSON_Parse(N.pushed[0]);
    const char *oid = cJSON_GetObjectItem(outer, "id")->valuestring;
    assert_string_equal(cJSON_GetObjectItem(outer, "command")->valuestring, "corex.dispatch");
    const cJSON *oa = cJSON_GetObjectItem(outer, "arguments");
    assert_int_equal(cJSON_GetObjectItem(oa, "container")->valueint, 7);
    char *inner = cJSON_PrintUnformatted(cJSON_GetObjectItem(oa, "command"));
    assert_string_equal(inner, "{\"id\":\"inner1\",\"command\":\"core.system\",\"arguments\":{"
                               "\"name\":\"/bin/ls\"},\"queue\":null,\"max_time\":null,\"stream\":"
                               "false,\"tags\":null}");
    char key[80], dispatched[300];
    tu_sfmt(key, sizeof(key), "result:%s", oid);
    assert_true(held_key(key));
    tu_sfmt(dispatched, sizeof(dispatched),
            "{\"id\":\"%s\",\"command\":\"corex.dispatch\",\"data\":\"\\\"inner1\\\"\",\"streams\":"
            "[\"\",\"\"],\"level\":20,\"state\":\"SUCCESS\",\"code\":0,\"starttime\":1,\"time\":0,"
            "\"tags\":null,\"container\":0}",
            oid);
    node_finish(oid, dispatched);
    assert_true(tu_loop_until(N.base, held_key, "result:inner1"));
    assert_int_equal(d.calls, 0); /* the dispatch's result is not the answer */
    char *r = result_of("inner1", "7");
    node_finish("inner1", r);
    assert_true(tu_loop_until(N.base, called, &d));
    assert_string_equal(d.id, "inner1");
    assert_int_equal(d.container, 7);
    free(r);
    cJSON_free(inner);
    cJSON_Delete(outer);
    teardown_jobs(&f);
    node_stop();
}

/* Freeing the machinery fails every pending operation with "closed". */
static void test_free_fails_pending(void **state)
{
    struct done d[3] = {{0}};
    node_start();
    struct jfx f = setup_jobs(2);
    for (int i = 0; i < 3; i++) {
        struct zos_job_req req = {.command = "core.ping"};
        assert_non_null(zos_job_run(f.jobs, &req, HOUR_MS, NULL, done_cb, &d[i]));
    }
    wait_held(2, 3);
    zos_jobs_free(f.jobs);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(d[i].calls, 1);
        assert_string_equal(d[i].err, "closed");
        assert_int_equal(d[i].cat, ZOS_ERRCAT_OTHER);
    }
    zos_link_free(f.shared);
    node_stop();
}

/* A node nobody listens for: the job fails "node unavailable: ...", after
 * the call returned. */
static void test_node_unavailable(void **state)
{
    struct done d = {0};
    node_start();
    evconnlistener_free(N.lis); /* the port is closed now */
    N.lis = NULL;
    struct jfx f = setup_jobs(2);
    struct zos_job_req req = {.command = "core.ping"};
    assert_non_null(zos_job_run(f.jobs, &req, HOUR_MS, NULL, done_cb, &d));
    assert_int_equal(d.calls, 0);
    assert_true(tu_loop_until(N.base, called, &d));
    tu_assert_contains(d.err, "node unavailable: ");
    assert_int_equal(d.cat, ZOS_ERRCAT_UNREACHABLE);
    assert_int_equal(d.calls, 1);
    teardown_jobs(&f);
    node_stop();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_result_core_ping),
        cmocka_unit_test(test_result_core_system),
        cmocka_unit_test(test_result_bash_failure),
        cmocka_unit_test(test_result_unknown_command),
        cmocka_unit_test(test_result_spawn_failure),
        cmocka_unit_test(test_result_streamed),
        cmocka_unit_test(test_result_job_list),
        cmocka_unit_test(test_result_kill_and_timeout),
        cmocka_unit_test(test_result_info_version),
        cmocka_unit_test(test_result_builtin_errors),
        cmocka_unit_test(test_result_panic),
        cmocka_unit_test(test_result_data_samples),
        cmocka_unit_test(test_result_corrections_states),
        cmocka_unit_test(test_result_container_and_blanks),
        cmocka_unit_test(test_result_malformed_refused),
        cmocka_unit_test(test_result_wrong_types_read_as_absent),
        cmocka_unit_test(test_request_defaults),
        cmocka_unit_test(test_request_every_field),
        cmocka_unit_test(test_uuid),
        cmocka_unit_test(test_waiting_links_are_bounded),
        cmocka_unit_test(test_long_job_leaves_the_waiting_link),
        cmocka_unit_test(test_run_in_container),
        cmocka_unit_test(test_free_fails_pending),
        cmocka_unit_test(test_node_unavailable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
