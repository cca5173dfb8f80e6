/* test_exitcode.c -- unit test of the CLI's table from an error's category
 * to its exit code (cli/exitcode.c): each category gets the code README's
 * "Exit codes" table gives it, and none is left out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cli.h"
#include "zos/err.h"

/* README "Exit codes": the code of each situation, by category. */
static const int documented[ZOS_ERRCAT_COUNT] = {
    [ZOS_ERRCAT_NONE] = 0,          [ZOS_ERRCAT_OTHER] = 14, /* other unexpected errors */
    [ZOS_ERRCAT_UNREACHABLE] = 12,  /* refused, timeout, name, core0 not taking jobs */
    [ZOS_ERRCAT_AUTH] = 26,         /* AUTH refused, or none given */
    [ZOS_ERRCAT_TLS] = 12,          /* ... TLS */
    [ZOS_ERRCAT_TIMEOUT] = 24,      /* a job ... timed out */
    [ZOS_ERRCAT_PROTOCOL] = 12,     /* a peer that does not speak the protocol */
    [ZOS_ERRCAT_NODE] = 12,         /* an error reply of the node */
    [ZOS_ERRCAT_JOB_FAILED] = 24,   /* a job failed */
    [ZOS_ERRCAT_NOT_FOUND] = 24,    /* the job's result is gone */
    [ZOS_ERRCAT_NO_NODE] = 17,      /* unknown to the proxy */
    [ZOS_ERRCAT_NO_CONTAINER] = 16, /* the container id is not on the node */
};

static void test_each_category_has_its_code(void **state)
{
    for (int c = 0; c < ZOS_ERRCAT_COUNT; c++) {
        int got = zos_cli_exit_code((enum zos_errcat)c);
        if (got != documented[c])
            fail_msg("%s: exit %d, README says %d", zos_errcat_name((enum zos_errcat)c), got,
                     documented[c]);
    }
}

/* Only "no error" exits 0: a category added without its code would not. */
static void test_no_error_exits_0_and_nothing_else_does(void **state)
{
    assert_int_equal(zos_cli_exit_code(ZOS_ERRCAT_NONE), ZOS_EXIT_OK);
    for (int c = ZOS_ERRCAT_NONE + 1; c < ZOS_ERRCAT_COUNT; c++)
        assert_int_not_equal(zos_cli_exit_code((enum zos_errcat)c), ZOS_EXIT_OK);
    assert_int_equal(zos_cli_exit_code((enum zos_errcat)ZOS_ERRCAT_COUNT), ZOS_EXIT_GENERAL);
    assert_int_equal(zos_cli_exit_code((enum zos_errcat) - 1), ZOS_EXIT_GENERAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_category_has_its_code),
        cmocka_unit_test(test_no_error_exits_0_and_nothing_else_does),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
