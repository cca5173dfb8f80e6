/* args.c -- the options of one command: --key=value, --key value, flags, words.
 *
 * The original took docopt's forms: "--name=x" and "--name x" both work, a
 * flag takes no value, "--" ends the options.  Words that do not start with
 * "--" are positional (a lone "-" too).  "-h" and "--help" print the
 * command's usage and stop.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const struct zos_cli_opt *find_opt(const struct zos_cli_opt *opts, size_t nopts,
                                          const char *name, size_t len)
{
    for (size_t i = 0; i < nopts; i++)
        if (strlen(opts[i].name) == len && strncmp(opts[i].name, name, len) == 0)
            return &opts[i];
    return NULL;
}

int zos_cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "zos: %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    zos_cli_usage(stderr, cmd);
    return ZOS_EXIT_MALFORMED_ARGS;
}

/* One "--key[=value]" at ARGV[*I]; -1 when fine, else an exit code. */
static int take_option(const char *cmd, int argc, char **argv, int *i,
                       const struct zos_cli_opt *opts, size_t nopts)
{
    const char *word = argv[*i] + 2, *eq = strchr(word, '=');
    size_t len = eq != NULL ? (size_t)(eq - word) : strlen(word);
    const struct zos_cli_opt *o = find_opt(opts, nopts, word, len);

    if (o == NULL)
        return zos_cli_usage_error(cmd, "unknown option '%s'", argv[*i]);
    if (!o->takes_value) {
        if (eq != NULL)
            return zos_cli_usage_error(cmd, "option '--%s' takes no value", o->name);
        *o->flag = true;
        return -1;
    }
    if (eq == NULL) {
        if (*i + 1 >= argc)
            return zos_cli_usage_error(cmd, "option '--%s' needs a value", o->name);
        *o->value = argv[++*i];
    } else {
        *o->value = eq + 1;
    }
    if (o->flag != NULL)
        *o->flag = true;
    return -1;
}

int zos_cli_args_parse(const char *cmd, int argc, char **argv, const struct zos_cli_opt *opts,
                       size_t nopts, unsigned flags, char **pos, size_t maxpos, size_t *npos)
{
    bool options = true;
    *npos = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (options && (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)) {
            zos_cli_usage(stdout, cmd);
            return 0;
        }
        if (options && strcmp(a, "--") == 0) {
            options = false;
            continue;
        }
        if (options && strncmp(a, "--", 2) == 0) {
            int rc = take_option(cmd, argc, argv, &i, opts, nopts);
            if (rc >= 0)
                return rc;
            continue;
        }
        if (options && a[0] == '-' && a[1] != '\0')
            return zos_cli_usage_error(cmd, "unknown option '%s'", a);
        if (*npos >= maxpos)
            return zos_cli_usage_error(cmd, "unexpected argument '%s'", a);
        pos[(*npos)++] = argv[i];
        if (flags & ZOS_ARGS_STOP_AT_POSITIONAL)
            options = false;
    }
    return -1;
}

bool zos_cli_parse_int(const char *text, long min, long max, long *out)
{
    char *end;
    if (text == NULL || text[0] < '0' || text[0] > '9')
        return false;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}
