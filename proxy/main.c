/* main.c -- zos-proxy: a Redis-protocol proxy in front of Zero-OS nodes. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "zos/conf.h"
#include "log.h"
#include "notify.h"
#include "server.h"

static void usage(FILE *fp)
{
    fprintf(fp, "usage: zos-proxy [-c FILE] [-t] [-l LEVEL] [-h] [-V]\n"
                "\n"
                "A Redis-protocol proxy: any Redis client connects to it and reaches Zero-OS\n"
                "nodes by name; the proxy holds each node's TLS connection and AUTH secret.\n"
                "\n"
                "  -c, --config FILE   config file (default: $ZOS_CONFIG, else\n"
                "                      $XDG_CONFIG_HOME/zos.toml, else ~/.config/zos.toml)\n"
                "  -t, --test          check the config file and exit (0 when valid)\n"
                "  -l, --log-level L   error, warn, info or debug (overrides [proxy] log-level)\n"
                "  -h, --help          this text\n"
                "  -V, --version       print the version\n"
                "\n"
                "Signals: SIGTERM/SIGINT stop accepting, let in-flight replies out, exit 0.\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},    {"test", no_argument, NULL, 't'},
        {"log-level", required_argument, NULL, 'l'}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},         {NULL, 0, NULL, 0},
    };
    const char *config = NULL, *level = NULL;
    bool test = false;
    char path[4096], err[512];
    int ch;

    while ((ch = getopt_long(argc, argv, "c:tl:hV", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            config = optarg;
            break;
        case 't':
            test = true;
            break;
        case 'l':
            level = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("zos-proxy %s\n", ZOS_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "zos-proxy: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (zos_conf_path(config, path, sizeof(path)) == NULL) {
        fprintf(stderr, "zos-proxy: no config file: use -c FILE or set ZOS_CONFIG\n");
        return 1;
    }
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0); /* no core file holds the secrets about to be read */
    struct zos_conf *conf = zos_conf_load(path, err, sizeof(err));
    if (conf == NULL) {
        fprintf(stderr, "zos-proxy: %s\n", err);
        return 1;
    }
    if (conf->proxy.core_dump)
        prctl(PR_SET_DUMPABLE, 1, 0, 0, 0); /* [proxy] core-dump = yes: debugging */
    if (test && zos_server_check(conf, err, sizeof(err)) != 0) {
        fprintf(stderr, "zos-proxy: %s\n", err);
        zos_conf_free(conf);
        return 1;
    }
    if (test) {
        printf("zos-proxy: %s: ok (%zu node%s)\n", path, conf->nnodes,
               conf->nnodes == 1 ? "" : "s");
        zos_conf_free(conf);
        return 0;
    }
    if (level == NULL)
        level = conf->proxy.log_level;
    if (level != NULL && zos_log_level_parse(level, &zos_log_level) != 0) {
        fprintf(stderr, "zos-proxy: log level '%s': expected error, warn, info or debug\n", level);
        zos_conf_free(conf);
        return 2;
    }
    if (zos_log_open(conf->proxy.log_file) != 0) {
        fprintf(stderr, "zos-proxy: log-file '%s': cannot open\n", conf->proxy.log_file);
        zos_conf_free(conf);
        return 1;
    }
    struct zos_server *srv = zos_server_new(conf, err, sizeof(err));
    if (srv == NULL) {
        log_error("%s", err);
        fprintf(stderr, "zos-proxy: %s\n", err);
        return 1;
    }
    log_info("zos-proxy %s started (pid %ld, %zu nodes)", ZOS_VERSION, (long)getpid(),
             srv->router->nnodes);
    /* Listening now (zos_server_new bound every port): systemd's Type=notify may start
     * what depends on us. */
    char ready[512];
    snprintf(ready, sizeof(ready), "READY=1\nSTATUS=listening on %s, %zu node%s",
             srv->conf->proxy.listen, srv->router->nnodes, srv->router->nnodes == 1 ? "" : "s");
    if (zos_notify(ready) != 0)
        log_warn("NOTIFY_SOCKET: cannot send READY=1: %s", strerror(errno));
    int rc = zos_server_run(srv);
    zos_server_free(srv);
    log_info("zos-proxy stopped");
    zos_log_close();
    return rc == 0 ? 0 : 1;
}
