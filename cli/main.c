/* main.c -- zos: the Zero-OS command-line tool (global options, commands, help).
 *
 *   zos [global options] <command> [args]
 *        |                   |
 *        |                   +--> commands[]: name, usage, help, handler --> exit code
 *        +--> --proxy/--node/--all/--parallel/--timeout/--help/--version
 *
 * With --all or --node=a,b,c a node command runs once per node, each in a
 * child process (fleet.c); "zos nodes" checks every node the same way.
 *
 * The config file is loaded lazily (zos_cli_conf) so that --help and
 * --version work without one; the first command that needs it creates it
 * ([app] debug = false, mode 0600) as the original did on its first run.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "zos/zos.h"

struct command {
    const char *name;    /* "configure", or "container new" for a sub-command */
    const char *usage;   /* after "zos " */
    const char *summary; /* one line for "zos --help" */
    const char *help;
    int (*fn)(struct zos_cli *cli, int argc, char **argv); /* NULL: a sub-command */
};

static const struct command commands[] = {
    {"init",
     "init --name=<name> [--disksize=<GB>] [--memory=<GB>] [--redisport=<port>] [--iso=<file>] "
     "[--hypervisor=virtualbox|qemu] [--reset]",
     "create a Zero-OS machine in VirtualBox (or qemu)",
     "Create (or start) a local Zero-OS machine in VirtualBox whose redis port is forwarded\n"
     "to localhost:<redisport>, wait for it to answer, and make it the default node.\n"
     "Defaults: --disksize 20, --memory 4, --redisport 4444.  --reset deletes the machine\n"
     "first.  The ISO is --iso, else ~/.zos/zos.iso, which is downloaded once when missing\n"
     "(progress bar on a terminal; exit 14 when the download fails) from $ZOS_ISO_URL, else\n"
     "https://bootstrap.grid.tf/iso/master/0/development%20debug.  --iso never downloads.",
     zos_cli_cmd_init},
    {"configure",
     "configure --name=<name> [--address=<address>] [--port=<port>] [--secret=<secret>] "
     "[--sshkey=<key>] [--setdefault] [--tls|--no-tls]",
     "add or change a node in the config file",
     "Add a node to the config file, or change one.  A new node gets address 127.0.0.1,\n"
     "port 6379 and TLS unless told otherwise; an existing node keeps what is not given.\n"
     "--secret is sent as AUTH (a JWT; ZOS_JWT in the environment overrides it).\n"
     "--setdefault makes it the default node (so does configuring the first node).",
     zos_cli_cmd_configure},
    {"remove", "remove --name=<name>", "remove a node (and its VirtualBox machine)",
     "Remove a node from the config file; a VirtualBox machine made by 'zos init' is\n"
     "powered off and deleted too.",
     zos_cli_cmd_remove},
    {"forgetvm", "forgetvm --name=<name>", "remove a node from the config only",
     "Remove a node from the config file, leaving its VirtualBox machine alone.",
     zos_cli_cmd_forgetvm},
    {"setdefault", "setdefault <name>", "choose the default node",
     "Make <name> the node commands go to.", zos_cli_cmd_setdefault},
    {"showconfig", "showconfig", "print the config file, secrets masked",
     "Print the config file, secrets masked.", zos_cli_cmd_showconfig},
    {"showactive", "showactive", "print the default node's name",
     "Print the name of the default node.", zos_cli_cmd_showactive},
    {"showactiveconfig", "showactiveconfig", "print the default node's settings",
     "Print the settings of the default node, secrets masked.", zos_cli_cmd_showactiveconfig},
    {"ping", "ping", "core.ping on the node", "Run core.ping on the node and print its answer.",
     zos_cli_cmd_ping},
    {"cmd", "cmd <command> [--jsonargs=<json>]", "run a core0 command, print its result",
     "Run a core0 command with the JSON object <json> as arguments (default {}) and print\n"
     "its result: JSON results pretty-printed, else the job's output (core.system and\n"
     "bash: as the job writes it).\n"
     "Example: zos cmd core.system --jsonargs='{\"name\": \"uname\", \"args\": [\"-a\"]}'",
     zos_cli_cmd_cmd},
    {"exec", "exec <command>", "run a shell command on the node",
     "Run a shell command on the node (core0's bash: sh -c) and print its output as the\n"
     "command writes it: stdout on stdout, stderr on stderr.",
     zos_cli_cmd_exec},
    {"container", "container [<id>] <sub-command> [<args>]",
     "create, list, inspect, delete containers; run commands in them",
     "Manage containers; see the sub-commands below.  Without <id>, a sub-command acts on\n"
     "the last container created by zos (info and inspect: on all containers).",
     zos_cli_cmd_container},
    {"container new",
     "container new [--name=<name>] [--root=<flist>] [--hostname=<hostname>] "
     "[--ports=<host:container,...>] [--env=<KEY:VALUE,...>] [--sshkey=<key>] [--privileged] "
     "[--ssh] [--zerotier=<network-id>] [--extraconfig=<json>]",
     NULL,
     "Create a container and print its id.  The name defaults to a random adjective_surname,\n"
     "the hostname to the name, the root to https://hub.grid.tf/tf-bootable/ubuntu:18.04.flist.\n"
     "Nics: default + zerotier (--zerotier, else $GRID_ZEROTIER_ID_TESTING, else\n"
     "$GRID_ZEROTIER_ID, else 9bee8941b5717835; 'none' for no zerotier nic).  The public key\n"
     "(--sshkey, else the ssh agent, else ~/.ssh/id_ed25519.pub, else ~/.ssh/id_rsa.pub) goes\n"
     "to /root/.ssh/authorized_keys.  --extraconfig is a JSON object merged over the\n"
     "arguments of corex.create (objects key by key).  A host port is reserved and\n"
     "forwarded to the container's port 22.  --ssh then enables ssh in it.",
     NULL},
    {"container list", "container list [--json]", NULL,
     "List the containers of the node: a table (ID, Name, Ports, Root), or JSON.", NULL},
    {"container info", "container [<id>] info [--json]", NULL,
     "Like list, for one container (all of them without <id>).", NULL},
    {"container inspect", "container [<id>] inspect", NULL,
     "Everything core0 knows about a container (all of them without <id>), as JSON.", NULL},
    {"container delete", "container [<id>] delete", NULL, "Terminate the container.", NULL},
    {"container zosexec", "container [<id>] zosexec <command>", NULL,
     "Run <command> in the container through core0 (no ssh) and print its output as it\n"
     "writes it; the command is split on blanks, the first word being the program (use\n"
     "absolute paths).",
     NULL},
    {"container invoke", "container [<id>] invoke <command>", NULL,
     "Like zosexec, without waiting: prints the id of the job started in the container.", NULL},
    {"container zerotierinfo", "container [<id>] zerotierinfo", NULL,
     "The container's ZeroTier identity and status, as JSON.", NULL},
    {"container zerotierlist", "container [<id>] zerotierlist", NULL,
     "The ZeroTier networks the container joined, as JSON.", NULL},
    {"container sshenable", "container [<id>] sshenable", NULL,
     "Start an ssh server in the container (layering an ssh-capable flist when needed)\n"
     "and print how to reach it.",
     NULL},
    {"container sshinfo", "container [<id>] sshinfo", NULL,
     "Print the ssh connection of the container: root@<address> -p <port> [-i <key>].", NULL},
    {"container shell", "container [<id>] shell", NULL,
     "An interactive shell in the container over ssh.", NULL},
    {"container exec", "container [<id>] exec <command>", NULL,
     "Run a shell command in the container over ssh; its exit status becomes zos's.", NULL},
    {"container upload", "container [<id>] upload <source> [<destination>]", NULL,
     "Copy a local file or directory into the container (SFTP).", NULL},
    {"container download", "container [<id>] download <source> [<destination>]", NULL,
     "Copy a file or directory from the container (SFTP).", NULL},
    {"container mount", "container [<id>] mount <source> [<destination>]", NULL,
     "Mount a directory of the container locally with sshfs.", NULL},
    {"nodes", "nodes [--json]", "every node: reachable, core0 version, round trip, TLS",
     "Check every node of the config file (or those of --node=a,b,c) in parallel: connect,\n"
     "PING (the round trip shown is the best of 3 PINGs on the open connection), core0's\n"
     "info.version.  A table, or JSON with --json; '*' marks the default node.  A node\n"
     "that has not answered within --timeout (default 10 s) is reported unreachable.\n"
     "Exit code: 0 when every node answered; else the highest exit code of any node\n"
     "(12 unreachable, 26 AUTH refused, 24 info.version failed, ...).",
     zos_cli_cmd_nodes},
    {"help", "help [<command>]", "help on a command", "Help on zos, or on one command.", NULL},
};

static const char global_usage[] =
    "usage: zos [--proxy=<host:port>] [--node=<name>] [--timeout=<seconds>] <command> [<args>]\n"
    "       zos [--proxy=<host:port>] (--node=<name>,<name>... | --all) [--parallel=<n>]\n"
    "           [--timeout=<seconds>] <command> [<args>]\n"
    "       zos --help | --version | help [<command>]\n";

static const char global_options[] =
    "Global options:\n"
    "  --proxy=<host:port>   talk through a running zos-proxy ([app] proxy in the config);\n"
    "                        --proxy= talks to the node directly\n"
    "  --node=<name>         use this node instead of the default one\n"
    "  --node=<a>,<b>,...    run the command on each of these nodes, in parallel: every\n"
    "                        line of output prefixed with its node's name ('a: ...'), a\n"
    "                        summary of failures on stderr, the highest exit code of any\n"
    "                        node (0 when all succeeded)\n"
    "  --all                 the same, on every node of the config file\n"
    "  --parallel=<n>        with --all or a --node list: at most <n> nodes at once\n"
    "                        (default 32)\n"
    "  --timeout=<seconds>   how long to wait for a job (default 300); for 'nodes', how\n"
    "                        long each node may take (default 10)\n"
    "  --help, --version\n"
    "\n"
    "Environment: ZOS_CONFIG (config file, else ~/.config/zos.toml), ZOS_JWT (overrides\n"
    "the node's secret), ZOS_PROXY_PASSWORD (the proxy's password), ZOS_DEBUG=1,\n"
    "ZOS_ISO_URL (where init downloads the Zero-OS ISO from).\n";

/* ---- shared helpers ---- */

int zos_cli_fail(int code, const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fputs("zos: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return code;
}

void zos_cli_debug(const struct zos_cli *cli, const char *fmt, ...)
{
    va_list ap;
    if (cli == NULL || !cli->debug)
        return;
    fputs("zos: debug: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int zos_cli_first_time(void)
{
    fflush(stdout);
    fputs("To create new machine in VirtualBox use\n"
          "  zos init --name=<zosmachine> [--disksize=<disksize>] [--memory=<memorysize>] "
          "[--redisport=<redisport>]\n"
          "\n"
          "To configure it to use a specific zosmachine\n"
          "  zos configure --name=<zosmachine> --address=<address> [--port=<port>] "
          "[--sshkey=<sshkeyname>] [--secret=<secret>]\n",
          stderr);
    return ZOS_EXIT_UNCONFIGURED;
}

int zos_cli_save_conf(struct zos_cli *cli)
{
    char err[512];
    if (zos_conf_save(cli->conf, cli->conf_path, err, sizeof(err)) != 0)
        return zos_cli_fail(ZOS_EXIT_CANT_CREATE_CONFIG, "%s", err);
    return 0;
}

static const struct command *find_command(const char *name)
{
    for (size_t i = 0; i < ZOS_ARRAY_LEN(commands); i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

void zos_cli_usage(FILE *f, const char *name)
{
    const struct command *c = find_command(name);
    if (c != NULL)
        fprintf(f, "usage: zos %s\n", c->usage);
}

static void command_help(FILE *f, const struct command *c)
{
    fprintf(f, "usage: zos %s\n\n%s\n", c->usage, c->help);
    if (strcmp(c->name, "container") != 0)
        return;
    fputs("\nSub-commands:\n", f);
    for (size_t i = 0; i < ZOS_ARRAY_LEN(commands); i++)
        if (strncmp(commands[i].name, "container ", 10) == 0)
            fprintf(f, "  zos %s\n", commands[i].usage);
}

static void global_help(FILE *f)
{
    fputs(global_usage, f);
    fputs("\nCommands:\n", f);
    for (size_t i = 0; i < ZOS_ARRAY_LEN(commands); i++) {
        if (strncmp(commands[i].name, "container ", 10) == 0)
            continue;
        fprintf(f, "  %-17s %s\n", commands[i].name, commands[i].summary);
    }
    fputs("\n'zos help <command>' or 'zos <command> --help' tells more.\n\n", f);
    fputs(global_options, f);
}

/* zos help [<command> [<sub-command>]] */
static int cmd_help(int argc, char **argv)
{
    char name[128];
    if (argc == 0) {
        global_help(stdout);
        return 0;
    }
    snprintf(name, sizeof(name), "%s%s%s", argv[0], argc > 1 ? " " : "", argc > 1 ? argv[1] : "");
    const struct command *c = find_command(name);
    if (c == NULL)
        return zos_cli_fail(ZOS_EXIT_UNKNOWN_COMMAND, "no help for unknown command '%s'", name);
    command_help(stdout, c);
    return 0;
}

/* ---- global options ---- */

/* "--opt=value" or "--opt value" at ARGV[*I] for OPT; NULL when it is not OPT. */
static const char *global_value(int argc, char **argv, int *i, const char *opt, bool *missing)
{
    size_t n = strlen(opt);
    if (strncmp(argv[*i], opt, n) != 0)
        return NULL;
    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (argv[*i][n] != '\0')
        return NULL;
    if (*i + 1 >= argc) {
        *missing = true;
        return NULL;
    }
    return argv[++*i];
}

static int parse_globals(struct zos_cli *cli, int argc, char **argv, int *first, bool *proxy_set)
{
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i], *v;
        bool missing = false;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            global_help(stdout);
            return 0;
        }
        if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
            printf("zos %s\n", ZOS_VERSION);
            return 0;
        }
        if ((v = global_value(argc, argv, &i, "--proxy", &missing)) != NULL) {
            cli->proxy = v[0] != '\0' ? v : NULL;
            *proxy_set = true;
        } else if ((v = global_value(argc, argv, &i, "--node", &missing)) != NULL) {
            cli->node = v;
        } else if (strcmp(a, "--all") == 0) {
            cli->all = true;
        } else if ((v = global_value(argc, argv, &i, "--parallel", &missing)) != NULL) {
            long p;
            if (!zos_cli_parse_int(v, 1, 256, &p))
                return zos_cli_fail(ZOS_EXIT_MALFORMED_ARGS,
                                    "--parallel: expected a number of nodes from 1 to 256, got "
                                    "'%s'",
                                    v);
            cli->parallel = (int)p;
        } else if ((v = global_value(argc, argv, &i, "--timeout", &missing)) != NULL) {
            long t;
            if (!zos_cli_parse_int(v, 1, 86400, &t))
                return zos_cli_fail(ZOS_EXIT_MALFORMED_ARGS,
                                    "--timeout: expected a number of seconds from 1 to 86400, "
                                    "got '%s'",
                                    v);
            cli->timeout_s = (int)t;
        } else {
            if (missing)
                return zos_cli_fail(ZOS_EXIT_MALFORMED_ARGS, "option '%s' needs a value", a);
            fprintf(stderr, "zos: unknown option '%s'\n%s", a, global_usage);
            return ZOS_EXIT_MALFORMED_ARGS;
        }
        if (missing)
            return zos_cli_fail(ZOS_EXIT_MALFORMED_ARGS, "option '%s' needs a value", a);
    }
    if (cli->all && cli->node != NULL)
        return zos_cli_fail(ZOS_EXIT_MALFORMED_ARGS,
                            "--all and --node: give one of them (--node=a,b for some nodes)");
    *first = i;
    return -1;
}

/* ---- config ---- */

static int load_conf(struct zos_cli *cli)
{
    char err[1024];
    if (access(cli->conf_path, F_OK) != 0 && errno == ENOENT) {
        /* First run: create the file, as the original did. */
        cli->conf = zos_conf_new();
        if (cli->conf == NULL)
            return zos_cli_fail(ZOS_EXIT_GENERAL, "out of memory");
        return zos_cli_save_conf(cli);
    }
    cli->conf = zos_conf_load(cli->conf_path, err, sizeof(err));
    if (cli->conf == NULL)
        return zos_cli_fail(ZOS_EXIT_GENERAL, "%s", err);
    return 0;
}

int main(int argc, char **argv)
{
    struct zos_cli cli = {0};
    bool proxy_set = false;
    int first = 1, rc;

    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    if ((rc = parse_globals(&cli, argc, argv, &first, &proxy_set)) >= 0)
        goto done;
    if (first >= argc) {
        fputs(global_usage, stderr);
        rc = ZOS_EXIT_UNKNOWN_COMMAND;
        goto done;
    }
    const char *name = argv[first];
    if (strcmp(name, "help") == 0) {
        rc = cmd_help(argc - first - 1, argv + first + 1);
        goto done;
    }
    const struct command *c = find_command(name);
    if (c == NULL || c->fn == NULL) {
        rc = zos_cli_fail(ZOS_EXIT_UNKNOWN_COMMAND,
                          "unknown command '%s' ('zos --help' lists them)", name);
        goto done;
    }
    /* --help needs no config */
    for (int i = first + 1; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            command_help(stdout, c);
            rc = 0;
            goto done;
        }
    }
    bool fleet = zos_cli_fleet_mode(&cli) && c->fn != zos_cli_cmd_nodes;
    if (fleet && (rc = zos_cli_fleet_check(c->name, argc - first - 1, argv + first + 1)) >= 0)
        goto done;
    if (zos_conf_path(NULL, cli.conf_path, sizeof(cli.conf_path)) == NULL) {
        rc = zos_cli_fail(ZOS_EXIT_CANT_CREATE_CONFIG, "no config path: set ZOS_CONFIG or HOME");
        goto done;
    }
    if ((rc = load_conf(&cli)) != 0)
        goto done;
    if (!proxy_set)
        cli.proxy = cli.conf->app.proxy;
    const char *dbg = getenv("ZOS_DEBUG");
    cli.debug = cli.conf->app.debug || (dbg != NULL && strcmp(dbg, "1") == 0);
    if (fleet)
        rc = zos_cli_fleet_command(&cli, c->fn, argc - first - 1, argv + first + 1);
    else
        rc = c->fn(&cli, argc - first - 1, argv + first + 1);
done:
    zos_conf_free(cli.conf);
    fflush(stdout);
    return rc;
}
