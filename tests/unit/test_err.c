/* test_err.c -- unit tests of err: the category of every kind of error
 * reply a node, core0's redis proxy or a zos-proxy sends; the setter; the
 * names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "zos/err.h"

#include <string.h>

struct reply_case {
    const char *text;
    enum zos_errcat cat;
};

/* The replies the CLI meets, and what each one means (core0-protocol.md §1
 * for core0's words; client.c and verbs.c for the proxy's). */
static const struct reply_case replies[] = {
    {"NOAUTH Authentication required.", ZOS_ERRCAT_AUTH},
    {"WRONGPASS invalid username-password pair or user is disabled.", ZOS_ERRCAT_AUTH},
    {"NOPERM this connection is authenticated for node 'a' only", ZOS_ERRCAT_AUTH},
    {"ERR invalid password", ZOS_ERRCAT_AUTH},
    {"invalid jwt", ZOS_ERRCAT_AUTH},
    {"permission denied, please call AUTH first with a valid JWT", ZOS_ERRCAT_AUTH},
    {"WRONGPASS unknown node 'ghost'", ZOS_ERRCAT_NO_NODE},
    {"ERR unknown node 'ghost'", ZOS_ERRCAT_NO_NODE},
    {"ERR node 'down' unavailable: connection refused", ZOS_ERRCAT_UNREACHABLE},
    {"ERR node 'n' unavailable: AUTH failed: WRONGPASS invalid username-password pair",
     ZOS_ERRCAT_AUTH},
    {"ERR node 'n' unavailable: PING failed: NOAUTH Authentication required.", ZOS_ERRCAT_AUTH},
    {"ERR node 'n' unavailable: SELECT failed: ERR DB index is out of range",
     ZOS_ERRCAT_UNREACHABLE},
    {"ERR node 'h' protocol error: bad type byte (\"xyz\")", ZOS_ERRCAT_PROTOCOL},
    {"ERR unknown command 'RPUSH', with args beginning with: ", ZOS_ERRCAT_NODE},
    {"WRONGTYPE Operation against a key holding the wrong kind of value", ZOS_ERRCAT_NODE},
    {"LOADING Redis is loading the dataset in memory", ZOS_ERRCAT_NODE},
    /* the proxy's words elsewhere than where it puts them are the node's */
    {"ERR the key 'unknown node' is gone", ZOS_ERRCAT_NODE},
    {"ERR node 'x'", ZOS_ERRCAT_NODE},
    {"ERR node 'x' says unavailable: no", ZOS_ERRCAT_NODE},
    {"", ZOS_ERRCAT_NODE},
};

static void test_error_replies(void **state)
{
    for (size_t i = 0; i < ZOS_ARRAY_LEN(replies); i++) {
        enum zos_errcat got = zos_errcat_of_reply(replies[i].text);
        if (got != replies[i].cat)
            fail_msg("'%s': %s, expected %s", replies[i].text, zos_errcat_name(got),
                     zos_errcat_name(replies[i].cat));
    }
}

static void test_set_formats_and_cuts(void **state)
{
    struct zos_err e = {0};
    char big[400];
    assert_ptr_equal(zos_err_set(&e, ZOS_ERRCAT_TIMEOUT, "after %d s", 7), &e);
    assert_int_equal(e.cat, ZOS_ERRCAT_TIMEOUT);
    assert_string_equal(e.text, "after 7 s");
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    zos_err_set(&e, ZOS_ERRCAT_OTHER, "%s", big);
    assert_int_equal(strlen(e.text), sizeof(e.text) - 1);
}

/* Every category has a name of its own; a value outside the enum has "?". */
static void test_names(void **state)
{
    for (int a = 0; a < ZOS_ERRCAT_COUNT; a++) {
        assert_string_not_equal(zos_errcat_name((enum zos_errcat)a), "?");
        for (int b = 0; b < a; b++)
            assert_string_not_equal(zos_errcat_name((enum zos_errcat)a),
                                    zos_errcat_name((enum zos_errcat)b));
    }
    assert_string_equal(zos_errcat_name((enum zos_errcat)ZOS_ERRCAT_COUNT), "?");
    assert_string_equal(zos_errcat_name((enum zos_errcat) - 1), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_replies),
        cmocka_unit_test(test_set_formats_and_cuts),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
