/* test_container.c -- unit tests of container: the key names, the check of
 * every ssh fact against hostile values, the info line, the corex.dispatch
 * request (core0-protocol.md §6.4). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "zos/container.h"
#include "zos/job.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CID 5

/* A set of facts `zos container new` + sshenable would leave. */
struct facts {
    char *v[ZOS_CONTAINER_NSSH];
};

static struct facts plausible(void)
{
    struct facts f = {{
        [ZOS_CONTAINER_IP] = "192.168.56.101",
        [ZOS_CONTAINER_SSHPORT] = "2222",
        [ZOS_CONTAINER_SSHKEY] = "/home/user/.ssh/id_ed25519",
        [ZOS_CONTAINER_SSHENABLED] = "true",
        [ZOS_CONTAINER_LAYEREDSSH] = "false",
    }};
    return f;
}

static enum zos_container_verdict check(const struct facts *f, bool need_enabled,
                                        struct zos_container_ssh *out, char *err)
{
    strcpy(err, "untouched");
    return zos_container_ssh_check(CID, f->v, need_enabled, out, err, 256);
}

/* FIELD set to VALUE is refused as implausible, naming that key only. */
static void assert_implausible(enum zos_container_field field, char *value)
{
    struct facts f = plausible();
    struct zos_container_ssh s;
    char err[256], want[256];
    f.v[field] = value;
    snprintf(want, sizeof(want),
             "container 5: container:5:%s stored on the node is not plausible: refusing it",
             zos_container_field_name(field));
    if (check(&f, true, &s, err) != ZOS_CONTAINER_IMPLAUSIBLE || strcmp(err, want) != 0)
        fail_msg("%s = '%s' (%zu bytes): got '%s'", zos_container_field_name(field), value,
                 strlen(value), err);
    /* the same when sshenable asks (it does not need ssh enabled yet) */
    assert_int_equal(check(&f, false, &s, err), ZOS_CONTAINER_IMPLAUSIBLE);
}

static void assert_accepted(enum zos_container_field field, char *value)
{
    struct facts f = plausible();
    struct zos_container_ssh s;
    char err[256];
    f.v[field] = value;
    if (check(&f, true, &s, err) != ZOS_CONTAINER_OK)
        fail_msg("%s = '%s' refused: %s", zos_container_field_name(field), value, err);
}

static void test_keys(void **state)
{
    static const char *const want[ZOS_CONTAINER_NFIELDS] = {
        "container:5:ip",         "container:5:sshport",    "container:5:sshkey",
        "container:5:sshenabled", "container:5:layeredssh", "container:5:zerotierip",
    };
    char key[ZOS_CONTAINER_KEY_LEN], big[64];
    for (int f = 0; f < ZOS_CONTAINER_NFIELDS; f++) {
        zos_container_key(CID, (enum zos_container_field)f, key);
        assert_string_equal(key, want[f]);
    }
    /* the longest id and field still fit */
    zos_container_key(ULONG_MAX, ZOS_CONTAINER_LAYEREDSSH, key);
    snprintf(big, sizeof(big), "container:%lu:layeredssh", ULONG_MAX);
    assert_string_equal(key, big);
}

static void test_plausible_facts_are_accepted(void **state)
{
    struct facts f = plausible();
    struct zos_container_ssh s;
    char err[256], line[512];
    assert_int_equal(check(&f, true, &s, err), ZOS_CONTAINER_OK);
    assert_string_equal(s.ip, "192.168.56.101");
    assert_int_equal(s.port, 2222);
    assert_string_equal(s.key, "/home/user/.ssh/id_ed25519");
    assert_true(s.enabled);
    assert_false(s.layered);
    zos_container_ssh_line(&s, line, sizeof(line));
    assert_string_equal(line, "root@192.168.56.101 -p 2222 -i /home/user/.ssh/id_ed25519");

    f.v[ZOS_CONTAINER_LAYEREDSSH] = "true";
    assert_int_equal(check(&f, true, &s, err), ZOS_CONTAINER_OK);
    assert_true(s.layered);

    /* no key stored: the agent's keys ("false", as zos writes it, or absent) */
    char *nokey[] = {"false", NULL};
    for (size_t i = 0; i < 2; i++) {
        f.v[ZOS_CONTAINER_SSHKEY] = nokey[i];
        assert_int_equal(check(&f, true, &s, err), ZOS_CONTAINER_OK);
        assert_string_equal(s.key, "");
        zos_container_ssh_line(&s, line, sizeof(line));
        assert_string_equal(line, "root@192.168.56.101 -p 2222");
    }
}

static void test_plausible_edges(void **state)
{
    char ip253[254], key4095[4096];
    memset(ip253, 'a', 253);
    ip253[253] = '\0';
    memset(key4095, 'k', 4095);
    key4095[0] = '/';
    key4095[4095] = '\0';
    char *ips[] = {"127.0.0.1", "fe80::1", "node-1.example.org", "localhost", ip253};
    for (size_t i = 0; i < sizeof(ips) / sizeof(ips[0]); i++)
        assert_accepted(ZOS_CONTAINER_IP, ips[i]);
    char *ports[] = {"1", "22", "65535", "00022"};
    for (size_t i = 0; i < sizeof(ports) / sizeof(ports[0]); i++)
        assert_accepted(ZOS_CONTAINER_SSHPORT, ports[i]);
    char *keys[] = {"~/.ssh/id_rsa",      "keys/id", "/k/a..b/id", "/k/..id", "/k/id..",
                    "/u/my+key@host_1-x", key4095};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        assert_accepted(ZOS_CONTAINER_SSHKEY, keys[i]);
}

static void test_hostile_ports(void **state)
{
    char *ports[] = {"",       "0",
                     "65536",  "99999",
                     "100000", "18446744073709551638",
                     "-22",    "+22",
                     " 22",    "22 ",
                     "22\n",   "2\n2",
                     "0x16",   "2a",
                     "22;id",  "22,x",
                     "1e3",    "22.0",
                     "true",   "-oProxyCommand=x"};
    for (size_t i = 0; i < sizeof(ports) / sizeof(ports[0]); i++)
        assert_implausible(ZOS_CONTAINER_SSHPORT, ports[i]);
    char huge[100000];
    memset(huge, '1', sizeof(huge) - 1);
    huge[sizeof(huge) - 1] = '\0';
    assert_implausible(ZOS_CONTAINER_SSHPORT, huge);
}

static void test_hostile_addresses(void **state)
{
    char *ips[] = {"",          "-oProxyCommand=sh",
                   "1.2.3.4\n", "1.2.3.4\nHost x",
                   "a b",       "a,b",
                   "h;id",      "$(id)",
                   "`id`",      "h/x",
                   "user@h",    "h\t",
                   "\x1b[2J",   "[::1]",
                   "h%x"};
    for (size_t i = 0; i < sizeof(ips) / sizeof(ips[0]); i++)
        assert_implausible(ZOS_CONTAINER_IP, ips[i]);
    char ip254[255], huge[100000];
    memset(ip254, 'a', 254);
    ip254[254] = '\0';
    assert_implausible(ZOS_CONTAINER_IP, ip254);
    memset(huge, 'a', sizeof(huge) - 1);
    huge[sizeof(huge) - 1] = '\0';
    assert_implausible(ZOS_CONTAINER_IP, huge);
}

static void test_hostile_keys(void **state)
{
    char *keys[] = {"", /* zos writes a path or "false", never nothing */
                    "..",
                    "../id",
                    "/home/u/../../etc/shadow",
                    "/home/u/.ssh/..",
                    "keys/../../id",
                    "-i",
                    "-oProxyCommand=sh",
                    "/k\n",
                    "/k\nIdentityFile /etc/shadow",
                    "/k,IdentityFile=/etc/shadow",
                    "/k id",
                    "/k;id",
                    "$(id)",
                    "/k*",
                    "/k\r",
                    "/k\x7f"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        assert_implausible(ZOS_CONTAINER_SSHKEY, keys[i]);
    char key4096[4097];
    memset(key4096, 'k', 4096);
    key4096[0] = '/';
    key4096[4096] = '\0';
    assert_implausible(ZOS_CONTAINER_SSHKEY, key4096);
}

/* A hostile value never comes back in the reason: it goes to terminals and
 * to one-line error replies. */
static void test_reason_never_echoes_the_value(void **state)
{
    struct facts f = plausible();
    struct zos_container_ssh s;
    char err[256];
    f.v[ZOS_CONTAINER_SSHKEY] = "/k\n\x1b]0;owned\x07";
    assert_int_equal(check(&f, true, &s, err), ZOS_CONTAINER_IMPLAUSIBLE);
    assert_null(strchr(err, '\n'));
    assert_null(strstr(err, "owned"));
}

static void test_no_ssh_forward(void **state)
{
    struct zos_container_ssh s;
    char err[256];
    const char *want = "container 5 has no ssh port forward (zos did not create it)";
    char *unset[] = {NULL, "false"};
    for (int field = ZOS_CONTAINER_IP; field <= ZOS_CONTAINER_SSHPORT; field++) {
        for (size_t i = 0; i < 2; i++) {
            struct facts f = plausible();
            f.v[field] = unset[i];
            assert_int_equal(check(&f, true, &s, err), ZOS_CONTAINER_NO_SSH);
            assert_string_equal(err, want);
            assert_int_equal(check(&f, false, &s, err), ZOS_CONTAINER_NO_SSH);
        }
    }
    /* nothing stored at all: a container zos did not make */
    struct facts none = {{NULL}};
    assert_int_equal(check(&none, true, &s, err), ZOS_CONTAINER_NO_SSH);
    /* it comes before the other checks: the other values do not matter then */
    struct facts f = plausible();
    f.v[ZOS_CONTAINER_SSHPORT] = NULL;
    f.v[ZOS_CONTAINER_SSHKEY] = "../x";
    f.v[ZOS_CONTAINER_SSHENABLED] = "false";
    assert_int_equal(check(&f, true, &s, err), ZOS_CONTAINER_NO_SSH);
}

static void test_ssh_not_enabled(void **state)
{
    struct zos_container_ssh s;
    char err[256];
    char *off[] = {NULL, "false", "", "TRUE", "true\n", " true", "yes", "1"};
    for (size_t i = 0; i < sizeof(off) / sizeof(off[0]); i++) {
        struct facts f = plausible();
        f.v[ZOS_CONTAINER_SSHENABLED] = off[i];
        assert_int_equal(check(&f, true, &s, err), ZOS_CONTAINER_SSH_OFF);
        assert_string_equal(err,
                            "ssh is not enabled in container 5: run 'zos container 5 sshenable'");
        /* sshenable itself goes on, with the facts filled */
        assert_int_equal(check(&f, false, &s, err), ZOS_CONTAINER_OK);
        assert_false(s.enabled);
        assert_int_equal(s.port, 2222);
        assert_string_equal(s.ip, "192.168.56.101");
    }
    /* an implausible value is refused before "not enabled" */
    struct facts f = plausible();
    f.v[ZOS_CONTAINER_SSHENABLED] = "false";
    f.v[ZOS_CONTAINER_SSHPORT] = "0";
    assert_int_equal(check(&f, true, &s, err), ZOS_CONTAINER_IMPLAUSIBLE);
}

/* The dispatch request, built as the CLI and the proxy build it, is the
 * sample of core0-protocol.md §6.4. */
static void test_dispatch_request(void **state)
{
    static const char sample[] =
        "{\"id\":\"d1\",\"command\":\"corex.dispatch\",\"queue\":null,\"max_time\":null,"
        "\"stream\":false,\"tags\":null,"
        "\"arguments\":{\"container\":7,\"command\":{\"id\":\"d1-inner\",\"command\":"
        "\"core.system\",\"arguments\":{\"name\":\"/bin/ls\",\"args\":[\"-la\",\"/root\"],"
        "\"dir\":\"\",\"stdin\":\"\",\"env\":null},"
        "\"queue\":null,\"max_time\":null,\"stream\":false,\"tags\":null}}}";
    cJSON *sys = cJSON_Parse("{\"name\":\"/bin/ls\",\"args\":[\"-la\",\"/root\"],\"dir\":\"\","
                             "\"stdin\":\"\",\"env\":null}");
    struct zos_job_req inner = {.command = "core.system", .args = sys};
    cJSON *args = zos_container_dispatch_args(7, zos_job_request_object(&inner, "d1-inner"));
    assert_non_null(args);
    struct zos_job_req outer = {.command = ZOS_CONTAINER_DISPATCH, .args = args};
    char *text = zos_job_request_json(&outer, "d1");
    cJSON *got = cJSON_Parse(text), *want = cJSON_Parse(sample);
    assert_non_null(got);
    assert_non_null(want);
    if (!cJSON_Compare(got, want, true))
        fail_msg("dispatch request:\n%s\nwant:\n%s", text, sample);
    /* the container id is a number, as core0's uint64 wants it */
    assert_true(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(args, "container")));
    assert_int_equal(cJSON_GetArraySize(args), 2);
    cJSON_Delete(got);
    cJSON_Delete(want);
    free(text);
    cJSON_Delete(args);
    cJSON_Delete(sys);
    /* no command (it could not be built): no request */
    assert_null(zos_container_dispatch_args(7, NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_plausible_facts_are_accepted),
        cmocka_unit_test(test_plausible_edges),
        cmocka_unit_test(test_hostile_ports),
        cmocka_unit_test(test_hostile_addresses),
        cmocka_unit_test(test_hostile_keys),
        cmocka_unit_test(test_reason_never_echoes_the_value),
        cmocka_unit_test(test_no_ssh_forward),
        cmocka_unit_test(test_ssh_not_enabled),
        cmocka_unit_test(test_dispatch_request),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
