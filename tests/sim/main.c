/* main.c -- zos-node-sim: options, the node's redis-server (TLS, secret),
 * the BLPOP loop of the core0 sink, and a clean stop on SIGTERM/SIGINT. */
#include "sim.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_BRANCH   "master"
#define DEFAULT_REVISION "5ca6d8a630d2df93873f9fb64fe9194a5bb4203e"
#define SIM_VERSION      "zos-node-sim 0.1"

struct sim_global sim;

struct options {
    int port;
    bool tls;
    char *dir;
    const char *redis_server;
    const char *attach;
};

static pid_t redis_pid;
static bool dir_is_temp;
static volatile sig_atomic_t blpop_fd = -1; /* shut down by the signal handler */

void sim_log(const char *fmt, ...)
{
    if (!sim.verbose)
        return;
    struct timespec ts;
    struct tm tm;
    char when[32];
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof when, "%H:%M:%S", &tm);
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s.%03ld zos-node-sim: ", when, ts.tv_nsec / 1000000);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void cleanup(void)
{
    if (redis_pid > 0) {
        kill(redis_pid, SIGTERM);
        for (int i = 0; i < 300; i++) {
            if (waitpid(redis_pid, NULL, WNOHANG) == redis_pid) {
                redis_pid = 0;
                break;
            }
            usleep(10000);
        }
        if (redis_pid > 0) {
            kill(redis_pid, SIGKILL);
            waitpid(redis_pid, NULL, 0);
            redis_pid = 0;
        }
    }
    if (dir_is_temp && sim.dir)
        sim_rmtree(sim.dir);
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "zos-node-sim: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    cleanup();
    exit(1);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: zos-node-sim [options]\n"
            "A simulated Zero-OS (core0) node for tests: a redis-server of its own plus the\n"
            "core0 job engine.  Prints 'zos-node-sim ready 127.0.0.1:PORT tls=yes|no'.\n"
            "  --port P              public port on 127.0.0.1 (default: a free one)\n"
            "  --tls / --no-tls      TLS with a new self-signed certificate (default) or plain\n"
            "  --secret S            password clients must send with AUTH (redis requirepass)\n"
            "  --dir D               data directory (default: a temporary one, removed at exit)\n"
            "  --redis-server PATH   redis-server binary (default: redis-server)\n"
            "  --attach HOST:PORT    use this plain redis instead of starting one\n"
            "  --version-string B@R  branch and revision reported by core.ping/info.version\n"
            "                        (default " DEFAULT_BRANCH "@" DEFAULT_REVISION ")\n"
            "  -v, --verbose         log dropped jobs and errors to stderr\n"
            "  -V, --version         print the simulator's version\n"
            "  -h, --help            this text\n");
}

static void parse_version_string(const char *s)
{
    const char *at = strchr(s, '@');
    if (at == NULL) {
        snprintf(sim.branch, sizeof sim.branch, "%s", s);
        return;
    }
    snprintf(sim.branch, sizeof sim.branch, "%.*s", (int)(at - s), s);
    snprintf(sim.revision, sizeof sim.revision, "%s", at + 1);
}

static void parse_options(int argc, char **argv, struct options *o)
{
    enum { O_TLS = 256, O_NOTLS, O_SECRET, O_DIR, O_REDIS, O_ATTACH, O_VSTR, O_PORT };
    static const struct option longs[] = {
        {"port", required_argument, NULL, O_PORT},
        {"tls", no_argument, NULL, O_TLS},
        {"no-tls", no_argument, NULL, O_NOTLS},
        {"secret", required_argument, NULL, O_SECRET},
        {"dir", required_argument, NULL, O_DIR},
        {"redis-server", required_argument, NULL, O_REDIS},
        {"attach", required_argument, NULL, O_ATTACH},
        {"version-string", required_argument, NULL, O_VSTR},
        {"verbose", no_argument, NULL, 'v'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "hvV", longs, NULL)) != -1) {
        switch (c) {
        case O_PORT:
            o->port = atoi(optarg);
            if (o->port <= 0 || o->port > 65535)
                die("--port: must be 1..65535");
            break;
        case O_TLS:
            o->tls = true;
            break;
        case O_NOTLS:
            o->tls = false;
            break;
        case O_SECRET:
            sim.secret = optarg[0] ? strdup(optarg) : NULL;
            break;
        case O_DIR:
            o->dir = optarg;
            break;
        case O_REDIS:
            o->redis_server = optarg;
            break;
        case O_ATTACH:
            o->attach = optarg;
            break;
        case O_VSTR:
            parse_version_string(optarg);
            break;
        case 'v':
            sim.verbose = true;
            break;
        case 'V':
            puts(SIM_VERSION);
            exit(0);
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
    }
    if (optind < argc) {
        usage(stderr);
        exit(2);
    }
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0)
        die("cannot find a free port: %s", strerror(errno));
    close(fd);
    return ntohs(a.sin_port);
}

/* RSA 2048, self-signed, CA, O=GIG, SAN zero-os.gig.tech, 100 years: like
 * the certificate redis-proxy makes in memory at every start. */
static void make_cert(const char *cert, const char *key)
{
    char *argv[] = {"openssl",  "req",
                    "-x509",    "-newkey",
                    "rsa:2048", "-nodes",
                    "-days",    "36500",
                    "-subj",    "/O=GIG",
                    "-keyout",  (char *)key,
                    "-out",     (char *)cert,
                    "-addext",  "subjectAltName=DNS:zero-os.gig.tech",
                    "-addext",  "basicConstraints=critical,CA:TRUE",
                    "-addext",  "keyUsage=critical,keyEncipherment,digitalSignature,keyCertSign",
                    "-addext",  "extendedKeyUsage=serverAuth",
                    NULL};
    int status = 0;
    char *out = sim_capture(argv, &status);
    free(out);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        die("openssl could not make the certificate");
}

/* Quoted for redis.conf (sdssplitargs). */
static void conf_quoted(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

/* redis.conf in the data dir (mode 0600, so the secret stays off argv). */
static void write_redis_conf(const char *path, const struct options *o)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FILE *f = fd < 0 ? NULL : fdopen(fd, "w");
    if (f == NULL)
        die("%s: %s", path, strerror(errno));
    fprintf(f, "bind 127.0.0.1\nport %d\n", o->tls ? 0 : sim.public_port);
    fprintf(f, "unixsocket %s\nunixsocketperm 700\n", sim.unixsock);
    fprintf(f, "dir %s\nsave \"\"\nappendonly no\ndaemonize no\n", sim.dir);
    fprintf(f, "logfile %s/redis.log\n", sim.dir);
    if (o->tls) {
        fprintf(f, "tls-port %d\ntls-cert-file %s/cert.pem\ntls-key-file %s/key.pem\n",
                sim.public_port, sim.dir, sim.dir);
        fprintf(f, "tls-ca-cert-file %s/cert.pem\ntls-auth-clients no\n", sim.dir);
    }
    if (sim.secret) {
        fputs("requirepass ", f);
        conf_quoted(f, sim.secret);
        fputc('\n', f);
    }
    fclose(f);
}

static void start_redis(const struct options *o)
{
    char conf[4096];
    snprintf(conf, sizeof conf, "%s/redis.conf", sim.dir);
    write_redis_conf(conf, o);
    pid_t parent = getpid();
    redis_pid = fork();
    if (redis_pid < 0)
        die("fork: %s", strerror(errno));
    if (redis_pid == 0) {
        /* Nothing leaks when the simulator dies without cleaning up. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(1);
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        dup2(devnull, 1);
        execlp(o->redis_server, o->redis_server, conf, (char *)NULL);
        fprintf(stderr, "zos-node-sim: cannot run %s: %s\n", o->redis_server, strerror(errno));
        _exit(127);
    }
}

static bool redis_alive(void)
{
    if (redis_pid <= 0)
        return true;
    int status;
    if (waitpid(redis_pid, &status, WNOHANG) == redis_pid) {
        redis_pid = 0;
        return false;
    }
    return true;
}

/* Waits until our redis answers PING.  False when it exited at start. */
static bool wait_redis(void)
{
    for (int i = 0; i < 1000; i++) {
        redisContext *c = sim_redis_get();
        if (c) {
            redisReply *r = redisCommand(c, "PING");
            bool ok = r && r->type == REDIS_REPLY_STATUS;
            freeReplyObject(r);
            sim_redis_put(c);
            if (ok)
                return true;
        }
        if (!redis_alive())
            return false;
        usleep(5000);
    }
    die("redis does not answer");
}

static void on_signal(int sig)
{
    (void)sig;
    sim.stopping = 1;
    /* Wakes the main thread from its BLPOP at once (hiredis retries EINTR). */
    if (blpop_fd >= 0)
        shutdown(blpop_fd, SHUT_RDWR);
}

static void setup_signals(void)
{
    struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* One request popped from core:default, as sink.go process() treats it. */
static void handle_request(const char *text, size_t len)
{
    bool bad;
    struct sim_job *j = sim_job_decode(text, len, &bad);
    if (j == NULL || j->id[0] == '\0') {
        if (bad) {
            sim_log("dropping a request that does not decode");
            usleep(200000); /* core0 sleeps 200 ms after a decode error */
        } else {
            sim_log("dropping a request without id");
        }
        sim_job_free(j);
        return;
    }
    if (sim_flag_exists(j->id) != 0) {
        sim_log("received a command with a duplicate ID(%s), dropping", j->id);
        sim_job_free(j);
        return;
    }
    sim_flag(j->id);
    sim_job_start(j);
}

/* The sink loop; returns the exit status. */
static int serve(void)
{
    redisContext *c = NULL;
    const char *timeout = "0.5"; /* short, so SIGTERM is seen quickly */
    int failures = 0;
    while (!sim.stopping) {
        if (!redis_alive()) {
            fprintf(stderr, "zos-node-sim: redis-server died\n");
            return 1;
        }
        if (c == NULL) {
            if ((c = sim_redis_get()) == NULL) {
                if (++failures > 100) {
                    fprintf(stderr, "zos-node-sim: redis unreachable\n");
                    return 1;
                }
                usleep(50000);
                continue;
            }
            blpop_fd = c->fd;
            if (sim.stopping)
                break;
        }
        redisReply *r = redisCommand(c, "BLPOP core:default %s", timeout);
        if (r == NULL) {
            blpop_fd = -1;
            redisFree(c);
            c = NULL;
            continue;
        }
        failures = 0;
        if (r->type == REDIS_REPLY_ERROR && strcmp(timeout, "1") != 0) {
            timeout = "1"; /* redis < 6 takes integer timeouts only */
        } else if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
                   r->element[1]->type == REDIS_REPLY_STRING) {
            handle_request(r->element[1]->str, r->element[1]->len);
        }
        freeReplyObject(r);
    }
    blpop_fd = -1;
    if (c)
        redisFree(c);
    return 0;
}

static void setup_dir(struct options *o)
{
    if (o->dir) {
        if (sim_mkdirs(o->dir, 0700) < 0)
            die("%s: %s", o->dir, strerror(errno));
        sim.dir = realpath(o->dir, NULL);
    } else {
        const char *tmp = getenv("TMPDIR");
        char templ[4096];
        snprintf(templ, sizeof templ, "%s/zos-node-sim-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
        if (mkdtemp(templ) == NULL)
            die("mkdtemp: %s", strerror(errno));
        sim.dir = strdup(templ);
        dir_is_temp = true;
    }
    if (sim.dir == NULL)
        die("%s: %s", o->dir, strerror(errno));
}

static void setup_front(struct options *o)
{
    if (o->attach) {
        char host[256];
        const char *colon = strrchr(o->attach, ':');
        if (colon == NULL || colon == o->attach || atoi(colon + 1) <= 0)
            die("--attach: expected HOST:PORT");
        snprintf(host, sizeof host, "%.*s", (int)(colon - o->attach), o->attach);
        sim.attach_host = strdup(host);
        sim.attach_port = atoi(colon + 1);
        sim.public_port = sim.attach_port;
        o->tls = false;
        free(sim.secret); /* the attached redis is plain and open */
        sim.secret = NULL;
        return;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/redis.sock", sim.dir);
    if (strlen(path) >= 100)
        die("%s: too long for a unix socket; use a shorter --dir", path);
    sim.unixsock = strdup(path);
    if (o->tls) {
        char cert[4096], key[4096];
        snprintf(cert, sizeof cert, "%s/cert.pem", sim.dir);
        snprintf(key, sizeof key, "%s/key.pem", sim.dir);
        make_cert(cert, key);
    }
    /* A port we picked ourselves may be taken meanwhile: pick another. */
    for (int attempt = 0;; attempt++) {
        sim.public_port = o->port ? o->port : free_port();
        start_redis(o);
        if (wait_redis())
            return;
        if (o->port || attempt == 4)
            die("redis-server exited at start (see %s/redis.log)", sim.dir);
    }
}

int main(int argc, char **argv)
{
    struct options o = {.tls = true, .redis_server = "redis-server"};
    snprintf(sim.branch, sizeof sim.branch, "%s", DEFAULT_BRANCH);
    snprintf(sim.revision, sizeof sim.revision, "%s", DEFAULT_REVISION);
    parse_options(argc, argv, &o);
    setup_signals();
    setup_dir(&o);
    setup_front(&o);
    if (o.attach && !wait_redis())
        die("redis at %s does not answer", o.attach);
    sim_engine_init();

    printf("zos-node-sim ready %s:%d tls=%s\n", sim.attach_host ? sim.attach_host : "127.0.0.1",
           sim.public_port, o.tls ? "yes" : "no");
    fflush(stdout);

    int rc = serve();
    sim.stopping = 1;
    sim_engine_shutdown(3000);
    sim_sshd_shutdown(); /* before cleanup() removes the containers' files */
    sim_redis_pool_free();
    cleanup();
    sim_fs_free_all();
    sim_corex_free_all();
    free(sim.dir);
    free(sim.unixsock);
    free(sim.attach_host);
    free(sim.secret);
    return rc;
}
