/* test_verbs.c -- unit tests of the verb tables (verbs.c, verbs_job.c,
 * verbs_ssh.c): each sorted for bsearch, no name twice in any of them,
 * every entry found by zos_verbs_find in any case, sane argument counts and
 * flags, and every verb documented in README.md. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "verbs.h"
#include "verbs_job.h"
#include "verbs_ssh.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "testutil.h"

struct table {
    const char *name;
    const struct zos_verb *v;
    size_t n;
};

static struct table tables[3];

static int setup(void **state)
{
    tables[0] = (struct table){"verbs.c", zos_verbs_core, zos_verbs_core_count};
    tables[1] = (struct table){"verbs_job.c", zos_verbs_job, zos_verbs_job_count};
    tables[2] = (struct table){"verbs_ssh.c", zos_verbs_ssh, zos_verbs_ssh_count};
    return 0;
}

/* bsearch needs each table in strcasecmp order; strictly increasing also
 * means no name twice within a table. */
static void test_tables_sorted(void **state)
{
    for (size_t t = 0; t < 3; t++) {
        assert_true(tables[t].n > 0);
        for (size_t i = 1; i < tables[t].n; i++) {
            if (strcasecmp(tables[t].v[i - 1].name, tables[t].v[i].name) >= 0)
                fail_msg("%s: '%s' is not before '%s'", tables[t].name, tables[t].v[i - 1].name,
                         tables[t].v[i].name);
        }
    }
}

static void test_no_name_in_two_tables(void **state)
{
    for (size_t t = 0; t < 3; t++)
        for (size_t u = t + 1; u < 3; u++)
            for (size_t i = 0; i < tables[t].n; i++)
                for (size_t j = 0; j < tables[u].n; j++)
                    if (strcasecmp(tables[t].v[i].name, tables[u].v[j].name) == 0)
                        fail_msg("'%s' is in %s and %s", tables[t].v[i].name, tables[t].name,
                                 tables[u].name);
}

/* Every entry is what zos_verbs_find answers for its name, in lower and
 * upper case; names are lower case, as the tables' order assumes. */
static void test_every_verb_found(void **state)
{
    for (size_t t = 0; t < 3; t++) {
        for (size_t i = 0; i < tables[t].n; i++) {
            const struct zos_verb *v = &tables[t].v[i];
            char up[64];
            size_t len = strlen(v->name);
            assert_true(len < sizeof(up));
            for (size_t k = 0; k <= len; k++) {
                assert_false(isupper((unsigned char)v->name[k]));
                up[k] = (char)toupper((unsigned char)v->name[k]);
            }
            if (zos_verbs_find(v->name, len) != v || zos_verbs_find(up, len) != v)
                fail_msg("zos_verbs_find does not find '%s' (%s)", v->name, tables[t].name);
        }
    }
    assert_null(zos_verbs_find("zos.nosuchverb", 14));
    assert_null(zos_verbs_find("get", 3));
    assert_null(zos_verbs_find("zos.", 4));
}

/* Argument counts include the verb; a handler unless the client routes it. */
static void test_counts_and_flags(void **state)
{
    const unsigned known = ZOS_VERB_NOAUTH | ZOS_VERB_NODE | ZOS_VERB_ROUTE | ZOS_VERB_ONNODE;
    for (size_t t = 0; t < 3; t++) {
        for (size_t i = 0; i < tables[t].n; i++) {
            const struct zos_verb *v = &tables[t].v[i];
            assert_true(v->min_argc >= 1);
            assert_true(v->max_argc == -1 || v->max_argc >= v->min_argc);
            assert_int_equal(v->flags & ~known, 0);
            if ((v->flags & ZOS_VERB_ROUTE) != 0)
                assert_null(v->fn);
            else if (v->fn == NULL)
                fail_msg("'%s' has no handler", v->name);
        }
    }
}

/* README.md names each verb as a command: "`NAME" followed by a space, a
 * backtick, a slash or a comma (`ZOS.SSH.INFO <container-id>`, `PING`). */
static bool documented(const char *readme, const char *name)
{
    char want[64];
    size_t len = strlen(name);
    want[0] = '`';
    for (size_t k = 0; k <= len; k++)
        want[k + 1] = (char)toupper((unsigned char)name[k]);
    for (const char *p = strstr(readme, want); p != NULL; p = strstr(p + 1, want)) {
        char next = p[len + 1];
        if (next == ' ' || next == '`' || next == '/' || next == ',')
            return true;
    }
    return false;
}

static void test_every_verb_documented(void **state)
{
    char fixtures[PATH_MAX], path[PATH_MAX + 32];
    assert_int_equal(tu_find_fixtures(fixtures, "http_server.py", R_OK), 0);
    tu_sfmt(path, sizeof(path), "%s/../../README.md", fixtures);
    char *readme = tu_read_file(path, NULL);
    assert_non_null(readme);
    assert_false(documented(readme, "zos.nosuchverb")); /* the check can fail */
    for (size_t t = 0; t < 3; t++)
        for (size_t i = 0; i < tables[t].n; i++)
            if (!documented(readme, tables[t].v[i].name))
                fail_msg("README.md does not document '%s' (%s)", tables[t].v[i].name,
                         tables[t].name);
    free(readme);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tables_sorted),         cmocka_unit_test(test_no_name_in_two_tables),
        cmocka_unit_test(test_every_verb_found),      cmocka_unit_test(test_counts_and_flags),
        cmocka_unit_test(test_every_verb_documented),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
