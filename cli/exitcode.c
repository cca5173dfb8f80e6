/* exitcode.c -- the exit code of each kind of library error, in one table.
 *
 * The library sets an error's category where the failure arises (zos.h);
 * every place the CLI turns a library error into an exit code asks here, so
 * a reworded message never changes an exit code.  README "Exit codes" says
 * what each code means to a user. */
#include "cli.h"

int zos_cli_exit_code(enum zos_errcat cat)
{
    static const int codes[ZOS_ERRCAT_COUNT] = {
        [ZOS_ERRCAT_NONE] = ZOS_EXIT_OK,
        [ZOS_ERRCAT_OTHER] = ZOS_EXIT_GENERAL,
        [ZOS_ERRCAT_UNREACHABLE] = ZOS_EXIT_UNREACHABLE,
        [ZOS_ERRCAT_AUTH] = ZOS_EXIT_INVALID_JWT,
        [ZOS_ERRCAT_TLS] = ZOS_EXIT_UNREACHABLE,
        [ZOS_ERRCAT_TIMEOUT] = ZOS_EXIT_CMD_FAILED,
        [ZOS_ERRCAT_PROTOCOL] = ZOS_EXIT_UNREACHABLE, /* what answers is no node */
        [ZOS_ERRCAT_NODE] = ZOS_EXIT_UNREACHABLE,     /* an error reply where none should come */
        [ZOS_ERRCAT_JOB_FAILED] = ZOS_EXIT_CMD_FAILED,
        [ZOS_ERRCAT_NOT_FOUND] = ZOS_EXIT_CMD_FAILED, /* the job's result is gone */
        [ZOS_ERRCAT_NO_NODE] = ZOS_EXIT_NOT_CONFIGURED,
        [ZOS_ERRCAT_NO_CONTAINER] = ZOS_EXIT_CONTAINER_DOESNT_EXIST,
    };
    return (unsigned)cat < ZOS_ERRCAT_COUNT ? codes[cat] : ZOS_EXIT_GENERAL;
}
