/* ssh.c -- SSH into containers with libssh: pinned host keys, key auth, exec, shell, SFTP.
 *
 *   connect:  ssh_new (no ~/.ssh/config, known_hosts /dev/null) --> ssh_connect
 *             --> SHA-256 of the host key vs "host:port hex" lines of the pin file
 *             --> agent / key file auth
 *   exec and shell share one loop, pump():
 *
 *     stdin fd --read (<= remote window)--> ssh_channel_write --> remote
 *     remote --> ssh_channel_read_nonblocking(stdout, stderr) --> sink (fd, FILE, fn, buffer)
 *     ppoll(ssh fd, stdin fd) in between; signals reach the shell only inside ppoll
 *
 *   transfers: walk the source first (a plan: every file and directory with its
 *   mode and size, so progress has a total), then copy in plan order; directory
 *   modes are applied last, deepest first, so read-only directories get filled.
 */
#include "zos/ssh.h"
#include "zos/util.h"
#include "zos/zos.h"

#include <libssh/libssh.h>
#include <libssh/callbacks.h>
#include <libssh/sftp.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_TIMEOUT_MS 10000
#define DEFAULT_MAX_OUTPUT (64u << 20)
#define PIN_FILE_MAX       (4u << 20)
#define READ_CHUNK         32768 /* one SFTP read request */
#define READ_DEPTH         16    /* read requests in flight per download */
#define MAX_DEPTH          64    /* directory nesting (a symlink loop ends here) */
#define POLL_MS            200   /* backstop: libssh may hold data the socket no longer shows */

struct zos_ssh {
    ssh_session session;
    sftp_session sftp; /* opened by the first transfer */
    char where[300];   /* "host:port", as in the pin file */
    char fingerprint[80];
};

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static char *join(const char *a, const char *b)
{
    size_t la = strlen(a);
    char *p;

    while (la > 1 && a[la - 1] == '/')
        la--;
    if (asprintf(&p, "%.*s%s%s", (int)la, a, la && a[la - 1] == '/' ? "" : "/", b) < 0)
        return NULL;
    return p;
}

/* PATH, or ROOT/REL when REL is not empty. */
static char *path_at(const char *root, const char *rel)
{
    return rel[0] ? join(root, rel) : strdup(root);
}

/* The last component of PATH (trailing slashes ignored); NULL when there is
 * none worth naming a copy after ("/", ".", ""). */
static char *base_name(const char *path)
{
    size_t len = strlen(path), start;

    while (len > 0 && path[len - 1] == '/')
        len--;
    start = len;
    while (start > 0 && path[start - 1] != '/')
        start--;
    if (len == start || (len - start == 1 && path[start] == '.') ||
        (len - start == 2 && path[start] == '.' && path[start + 1] == '.'))
        return NULL;
    return strndup(path + start, len - start);
}

/* ---- library ----------------------------------------------------------- */

int zos_ssh_init(void)
{
    return ssh_init() == SSH_OK ? ZOS_OK : ZOS_ERR;
}

void zos_ssh_cleanup(void)
{
    (void)ssh_finalize();
}

void zos_ssh_free(struct zos_ssh *s)
{
    if (s == NULL)
        return;
    if (s->sftp != NULL)
        sftp_free(s->sftp);
    if (s->session != NULL) {
        ssh_disconnect(s->session);
        ssh_free(s->session);
    }
    free(s);
}

const char *zos_ssh_fingerprint(const struct zos_ssh *s)
{
    return s->fingerprint;
}

/* ---- host key pinning --------------------------------------------------- */

/* mkdir -p of PATH's directory, new directories 0700. */
static int mkdir_parents(const char *path, char *err, size_t errlen)
{
    const char *slash = strrchr(path, '/');
    char *dir;
    int rc;

    if (slash == NULL || slash == path)
        return 0;
    if ((dir = strndup(path, (size_t)(slash - path))) == NULL) {
        seterr(err, errlen, "out of memory");
        return -1;
    }
    rc = zos_mkdir_p(dir, 0700, err, errlen);
    free(dir);
    return rc;
}

static int read_fd(int fd, size_t max, char **out, size_t *outlen)
{
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap + 1);

    if (buf == NULL)
        return -1;
    for (;;) {
        ssize_t n;
        if (len == cap) {
            char *nb = cap >= max ? NULL : realloc(buf, cap * 2 + 1);
            if (nb == NULL) {
                free(buf);
                errno = cap >= max ? EFBIG : ENOMEM;
                return -1;
            }
            buf = nb;
            cap *= 2;
        }
        n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            free(buf);
            return -1;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    return 0;
}

static bool is_hex64(const char *s, size_t len)
{
    if (len != 64)
        return false;
    for (size_t i = 0; i < len; i++)
        if (strchr("0123456789abcdefABCDEF", s[i]) == NULL || s[i] == '\0')
            return false;
    return true;
}

enum pin { PIN_ABSENT, PIN_MATCH, PIN_CHANGED };

/* Past the characters of SET (true) or up to the first of them (false). */
static const char *skip(const char *p, const char *end, const char *set, bool in)
{
    while (p < end && *p != '\0' && (strchr(set, *p) != NULL) == in)
        p++;
    return p;
}

/* One line of a pin file (LEN bytes at P, without its newline): 1 for a pin
 * (*NAME, *NLEN and *HEX set), 0 for a blank or comment line, -1 when it is
 * not "host:port sha256hex". */
static int pin_line(const char *p, size_t len, const char **name, size_t *nlen, const char **hex)
{
    const char *end = p + len, *h;
    p = skip(p, end, " \t\r", true);
    if (p == end || *p == '#')
        return 0;
    *name = p;
    p = skip(p, end, " \t\r", false);
    *nlen = (size_t)(p - *name);
    *hex = skip(p, end, " \t", true);
    h = skip(*hex, end, " \t\r", false);
    if (*nlen == 0 || !is_hex64(*hex, (size_t)(h - *hex)))
        return -1;
    return skip(h, end, " \t\r", true) == end ? 1 : -1;
}

/* Looks NAME (NLEN bytes) up in TEXT (a pin file's content).  *WAS gets the
 * pinned hex of a changed key.  -1 with ERR for a malformed line. */
static int pin_find(const char *text, const char *file, const char *name, size_t nlen,
                    const char *hex, char was[65], enum pin *out, char *err, size_t errlen)
{
    const char *p = text;
    int line = 0;

    *out = PIN_ABSENT;
    while (*p != '\0') {
        const char *k, *h;
        size_t len = strcspn(p, "\n"), klen;
        int kind = pin_line(p, len, &k, &klen, &h);
        p += len + (p[len] == '\n');
        line++;
        if (kind < 0) {
            seterr(err, errlen, "%s:%d: malformed line (want \"host:port sha256hex\")", file, line);
            return -1;
        }
        if (kind == 0 || klen != nlen || strncmp(k, name, nlen) != 0)
            continue;
        if (strncasecmp(h, hex, 64) == 0) {
            *out = PIN_MATCH;
            return 0;
        }
        memcpy(was, h, 64);
        was[64] = '\0';
        *out = PIN_CHANGED;
    }
    return 0;
}

/* "SHA256:<base64>" of a pinned hex digest. */
static void hex_fingerprint(const char *hex, char *buf, size_t len)
{
    unsigned char raw[32];
    char *fp;

    for (int i = 0; i < 32; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        raw[i] = (unsigned char)v;
    }
    fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, raw, sizeof raw);
    snprintf(buf, len, "%s", fp ? fp : hex);
    ssh_string_free_char(fp);
}

/* Trust on first use: a matching pin passes, no pin is appended, a different
 * pin is refused.  The file is locked across read and append so two zos
 * processes meeting a new container do not both append. */
static int pin_check(struct zos_ssh *s, const char *file, const char *hex, char *err, size_t errlen)
{
    char *text = NULL, was[65], line[400];
    size_t len;
    enum pin found;
    struct stat st;
    int fd = -1, rc = -1;

    if (mkdir_parents(file, err, errlen) < 0)
        goto done;
    fd = open(file, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0 || flock(fd, LOCK_EX) < 0 || read_fd(fd, PIN_FILE_MAX, &text, &len) < 0) {
        seterr(err, errlen, "%s: %s", file, strerror(errno));
        goto done;
    }
    if (fstat(fd, &st) == 0 && (st.st_mode & 077) != 0)
        (void)fchmod(fd, 0600); /* pins are not secret, but nobody else may edit them */
    if (pin_find(text, file, s->where, strlen(s->where), hex, was, &found, err, errlen) < 0)
        goto done;
    if (found == PIN_CHANGED) {
        char wasfp[80];
        hex_fingerprint(was, wasfp, sizeof wasfp);
        seterr(err, errlen,
               "host key for %s changed (was %s, now %s): if the container was re-created, "
               "remove its line from %s",
               s->where, wasfp, s->fingerprint, file);
        goto done;
    }
    if (found == PIN_ABSENT) {
        int n = snprintf(line, sizeof line, "%s%s %s\n",
                         len > 0 && text[len - 1] != '\n' ? "\n" : "", s->where, hex);
        if (n < 0 || (size_t)n >= sizeof line || zos_write_all(fd, line, (size_t)n) < 0) {
            seterr(err, errlen, "%s: %s", file, n < 0 ? "write failed" : strerror(errno));
            goto done;
        }
    }
    rc = 0;
done:
    free(text);
    if (fd >= 0)
        close(fd);
    return rc;
}

static int check_host_key(struct zos_ssh *s, const char *file, char *err, size_t errlen)
{
    ssh_key key = NULL;
    unsigned char *hash = NULL;
    size_t hlen = 0;
    char *fp = NULL, hex[65];
    int rc = -1;

    if (ssh_get_server_publickey(s->session, &key) != SSH_OK ||
        ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hlen) != 0 || hlen != 32) {
        seterr(err, errlen, "ssh %s: host key: %s", s->where, ssh_get_error(s->session));
        goto done;
    }
    for (size_t i = 0; i < hlen; i++)
        snprintf(hex + 2 * i, 3, "%02x", hash[i]);
    fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hlen);
    snprintf(s->fingerprint, sizeof s->fingerprint, "%s", fp ? fp : hex);
    rc = pin_check(s, file, hex, err, errlen);
done:
    ssh_string_free_char(fp);
    ssh_clean_pubkey_hash(&hash);
    if (key != NULL)
        ssh_key_free(key);
    return rc;
}

/* PATH lies in ~/.ssh, OpenSSH's own directory (its known_hosts). */
static bool in_dot_ssh(const char *path)
{
    const char *home = getenv("HOME"), *slash = strrchr(path, '/');
    char dir[PATH_MAX], ssh[PATH_MAX], real_dir[PATH_MAX], real_ssh[PATH_MAX];

    snprintf(dir, sizeof dir, "%.*s", slash != NULL ? (int)(slash - path) + 1 : 1,
             slash != NULL ? path : ".");
    snprintf(ssh, sizeof ssh, "%s/.ssh", home != NULL ? home : "");
    return home != NULL && realpath(dir, real_dir) != NULL && realpath(ssh, real_ssh) != NULL &&
           strcmp(real_dir, real_ssh) == 0;
}

/* The pins of FROM (checked whole first: -1 with ERR when a line is not a
 * pin) that HAVE lacks, as lines in *ADD (caller frees); *N of them; *PINS
 * lines that were pins at all. */
static int pins_missing(const char *from, const char *old, const char *have, const char *to,
                        char **add, int *n, int *pins, char *err, size_t errlen)
{
    size_t alen = 0;
    char was[65];
    enum pin found;

    *n = *pins = 0;
    if ((*add = calloc(1, strlen(from) + 2)) == NULL) {
        seterr(err, errlen, "out of memory");
        return -1;
    }
    for (const char *p = from; *p != '\0';) {
        const char *k, *h;
        size_t len = strcspn(p, "\n"), klen;
        int kind = pin_line(p, len, &k, &klen, &h);
        p += len + (p[len] == '\n');
        if (kind < 0) {
            seterr(err, errlen, "%s: not a zos pin file: left as it is", old);
            return -1;
        }
        if (kind == 0)
            continue;
        (*pins)++;
        if (pin_find(have, to, k, klen, h, was, &found, err, errlen) < 0)
            return -1;
        if (found == PIN_ABSENT && pin_find(*add, to, k, klen, h, was, &found, err, errlen) == 0 &&
            found == PIN_ABSENT) {
            alen += (size_t)sprintf(*add + alen, "%.*s %.64s\n", (int)klen, k, h);
            (*n)++;
        }
    }
    return 0;
}

int zos_ssh_pins_migrate(const char *old, const char *to, char *err, size_t errlen)
{
    char *from = NULL, *have = NULL, *add = NULL, moved[PATH_MAX + 16];
    size_t flen, hlen;
    struct stat st;
    int ofd = -1, tfd = -1, n = 0, pins = 0, rc = -1;

    if (in_dot_ssh(old))
        return 0;
    ofd = open(old, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (ofd < 0 && errno != ENOENT && errno != ELOOP) {
        seterr(err, errlen, "%s: %s", old, strerror(errno));
        goto done;
    }
    if (ofd < 0 || fstat(ofd, &st) < 0 || !S_ISREG(st.st_mode)) { /* absent, a link, ... */
        rc = 0;
        goto done;
    }
    if (read_fd(ofd, PIN_FILE_MAX, &from, &flen) < 0) {
        seterr(err, errlen, "%s: %s", old, strerror(errno));
        goto done;
    }
    /* Another program's file, or one without pins: TO is not even created. */
    if (pins_missing(from, old, "", to, &add, &n, &pins, err, errlen) < 0)
        goto done;
    if (pins == 0) {
        rc = 0;
        goto done;
    }
    free(add);
    add = NULL;
    if ((tfd = open(to, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) < 0 ||
        flock(tfd, LOCK_EX) < 0 || read_fd(tfd, PIN_FILE_MAX, &have, &hlen) < 0) {
        seterr(err, errlen, "%s: %s", from == NULL ? old : to, strerror(errno));
        goto done;
    }
    if (pins_missing(from, old, have, to, &add, &n, &pins, err, errlen) < 0)
        goto done;
    if (pins == 0) { /* nothing to move: not ours to rename */
        rc = 0;
        goto done;
    }
    if (n > 0 && ((hlen > 0 && have[hlen - 1] != '\n' && zos_write_all(tfd, "\n", 1) < 0) ||
                  zos_write_all(tfd, add, strlen(add)) < 0)) {
        seterr(err, errlen, "%s: %s", to, strerror(errno));
        goto done;
    }
    snprintf(moved, sizeof moved, "%s.migrated", old);
    if (rename(old, moved) < 0 && errno != ENOENT) { /* ENOENT: another zos moved it */
        seterr(err, errlen, "%s: %s", old, strerror(errno));
        goto done;
    }
    rc = n;
done:
    free(from);
    free(have);
    free(add);
    if (ofd >= 0)
        close(ofd);
    if (tfd >= 0)
        close(tfd);
    return rc;
}

/* ---- authentication ----------------------------------------------------- */

/* Refuses to ask: without it OpenSSL would prompt on the terminal for a
 * PEM key's passphrase, even inside the proxy. */
static int no_passphrase(const char *prompt, char *buf, size_t len, int echo, int verify,
                         void *userdata)
{
    return -1;
}

enum auth { AUTH_OK, AUTH_REFUSED, AUTH_UNUSABLE, AUTH_FAILED };

/* One key file.  AUTH_REFUSED: the server said no; AUTH_UNUSABLE: the file
 * cannot be read or loaded; AUTH_FAILED: anything else.  ERR says why. */
static enum auth auth_file(struct zos_ssh *s, const char *path, char *err, size_t errlen)
{
    ssh_key key = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC), r;

    if (fd < 0) {
        seterr(err, errlen, "key %s: %s", path, strerror(errno));
        return AUTH_UNUSABLE;
    }
    close(fd);
    if (ssh_pki_import_privkey_file(path, NULL, no_passphrase, NULL, &key) != SSH_OK) {
        seterr(err, errlen,
               "key %s: cannot load it (not a private key, or protected by a passphrase: "
               "add it to the ssh agent instead)",
               path);
        return AUTH_UNUSABLE;
    }
    r = ssh_userauth_publickey(s->session, NULL, key);
    ssh_key_free(key);
    if (r == SSH_AUTH_SUCCESS)
        return AUTH_OK;
    if (r == SSH_AUTH_DENIED)
        return AUTH_REFUSED;
    if (r == SSH_AUTH_PARTIAL)
        seterr(err, errlen, "ssh %s: the server wants more than a key (partial success)", s->where);
    else
        seterr(err, errlen, "ssh %s: authentication: %s", s->where, ssh_get_error(s->session));
    return AUTH_FAILED;
}

/* No key given: the agent, then the usual key files. */
static int auth_default(struct zos_ssh *s, const char *user, char *err, size_t errlen)
{
    static const char *const names[] = {"id_ed25519", "id_ecdsa", "id_rsa"};
    const char *sock = getenv("SSH_AUTH_SOCK");
    char tried[512] = "", pwbuf[ZOS_PWBUF_LEN];
    const char *home = zos_home_dir(pwbuf, sizeof pwbuf);

    if (home == NULL)
        home = "/";
    if (sock != NULL && *sock != '\0') {
        int r = ssh_userauth_agent(s->session, NULL);
        if (r == SSH_AUTH_SUCCESS)
            return 0;
        if (r == SSH_AUTH_ERROR && !ssh_is_connected(s->session)) {
            seterr(err, errlen, "ssh %s: %s", s->where, ssh_get_error(s->session));
            return -1;
        }
        snprintf(tried, sizeof tried, "the ssh agent");
    }
    for (size_t i = 0; i < ZOS_ARRAY_LEN(names); i++) {
        char path[1100];
        size_t used = strlen(tried);
        enum auth r;
        snprintf(path, sizeof path, "%s/.ssh/%s", home, names[i]);
        if (access(path, F_OK) != 0)
            continue;
        switch (r = auth_file(s, path, err, errlen)) {
        case AUTH_OK:
            return 0;
        case AUTH_FAILED:
            return -1;
        case AUTH_UNUSABLE: /* e.g. protected by a passphrase: the next one may do */
        case AUTH_REFUSED:
            seterr(tried + used, sizeof tried - used, "%s%s%s", used ? ", " : "", path,
                   r == AUTH_UNUSABLE ? " (cannot load it)" : "");
        }
    }
    if (tried[0] == '\0')
        seterr(err, errlen,
               "ssh %s: no ssh key: start an ssh agent (SSH_AUTH_SOCK), create %s/.ssh/id_ed25519 "
               "or give a key file",
               s->where, home);
    else
        seterr(err, errlen, "ssh %s: permission denied (publickey) for %s: tried %s", s->where,
               user, tried);
    return -1;
}

static int authenticate(struct zos_ssh *s, const struct zos_ssh_opts *o, const char *user,
                        char *err, size_t errlen)
{
    if (o->key_path == NULL)
        return auth_default(s, user, err, errlen);
    switch (auth_file(s, o->key_path, err, errlen)) {
    case AUTH_OK:
        return 0;
    case AUTH_REFUSED:
        seterr(err, errlen, "ssh %s: permission denied (publickey): key %s refused for %s",
               s->where, o->key_path, user);
        return -1;
    default:
        return -1;
    }
}

/* ---- connect ------------------------------------------------------------ */

static int set_options(struct zos_ssh *s, const struct zos_ssh_opts *o, unsigned port,
                       const char *user)
{
    ssh_session ss = s->session;
    int ms = o->timeout_ms > 0 ? o->timeout_ms : DEFAULT_TIMEOUT_MS, one = 1;
    long sec = ms / 1000, usec = (long)(ms % 1000) * 1000;
    bool no = false;

    /* Never ~/.ssh/config nor /etc/ssh/ssh_config, never ~/.ssh/known_hosts:
     * pins live in the caller's file, checked in check_host_key(). */
    if (ssh_options_set(ss, SSH_OPTIONS_PROCESS_CONFIG, &no) < 0 ||
        ssh_options_set(ss, SSH_OPTIONS_HOST, o->host) < 0 ||
        ssh_options_set(ss, SSH_OPTIONS_PORT, &port) < 0 ||
        ssh_options_set(ss, SSH_OPTIONS_USER, user) < 0 ||
        ssh_options_set(ss, SSH_OPTIONS_TIMEOUT, &sec) < 0 ||
        ssh_options_set(ss, SSH_OPTIONS_TIMEOUT_USEC, &usec) < 0 ||
        ssh_options_set(ss, SSH_OPTIONS_KNOWNHOSTS, "/dev/null") < 0 ||
        ssh_options_set(ss, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null") < 0 ||
        ssh_options_set(ss, SSH_OPTIONS_NODELAY, &one) < 0)
        return -1;
    return 0;
}

struct zos_ssh *zos_ssh_connect(const struct zos_ssh_opts *o, char *err, size_t errlen)
{
    struct zos_ssh *s = NULL, *ret = NULL;
    const char *user;
    int port;

    if (o == NULL || o->host == NULL || *o->host == '\0' || o->known_hosts == NULL ||
        *o->known_hosts == '\0') {
        seterr(err, errlen, "ssh: a host and a known_hosts file are required");
        return NULL;
    }
    port = o->port ? o->port : 22;
    user = o->user && *o->user ? o->user : "root";
    if (port < 1 || port > 65535) {
        seterr(err, errlen, "ssh %s: port must be 1..65535", o->host);
        return NULL;
    }
    s = calloc(1, sizeof *s);
    if (s == NULL || (s->session = ssh_new()) == NULL) {
        seterr(err, errlen, "ssh %s: out of memory", o->host);
        goto done;
    }
    snprintf(s->where, sizeof s->where, strchr(o->host, ':') ? "[%s]:%d" : "%s:%d", o->host, port);
    if (set_options(s, o, (unsigned)port, user) < 0) {
        seterr(err, errlen, "ssh %s: options: %s", s->where, ssh_get_error(s->session));
        goto done;
    }
    if (ssh_connect(s->session) != SSH_OK) {
        seterr(err, errlen, "ssh %s: %s", s->where, ssh_get_error(s->session));
        goto done;
    }
    if (check_host_key(s, o->known_hosts, err, errlen) < 0 ||
        authenticate(s, o, user, err, errlen) < 0)
        goto done;
    ret = s;
    s = NULL;
done:
    zos_ssh_free(s);
    return ret;
}

/* ---- channels: the pump shared by exec and shell ------------------------- */

struct run;
typedef int (*sink_fn)(struct run *r, int stream, const char *buf, size_t len);

struct run {
    struct zos_ssh *s;
    ssh_channel ch;
    int in_fd;    /* forwarded until EOF; -1: none */
    sink_fn sink; /* sets r->err when it fails */
    void *arg;
    int (*tick)(struct run *r); /* before each wait; the shell's signal flags */
    const sigset_t *waitmask;   /* signals allowed while waiting (NULL: unchanged) */
    int64_t deadline;           /* zos_now_ms() limit, 0: none */
    bool pty;
    bool got_status, got_signal;
    int status;
    char signame[16];
    char *err;
    size_t errlen;
    struct ssh_channel_callbacks_struct cb;
};

static void on_exit_status(ssh_session session, ssh_channel channel, int status, void *userdata)
{
    struct run *r = userdata;

    r->got_status = true;
    r->status = status;
}

static void on_exit_signal(ssh_session session, ssh_channel channel, const char *name, int core,
                           const char *errmsg, const char *lang, void *userdata)
{
    struct run *r = userdata;

    r->got_signal = true;
    snprintf(r->signame, sizeof r->signame, "%s", name ? name : "");
}

static int open_channel(struct zos_ssh *s, struct run *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    r->s = s;
    r->in_fd = -1;
    r->err = err;
    r->errlen = errlen;
    r->cb.userdata = r;
    r->cb.channel_exit_status_function = on_exit_status;
    r->cb.channel_exit_signal_function = on_exit_signal;
    ssh_callbacks_init(&r->cb);
    r->ch = ssh_channel_new(s->session);
    if (r->ch == NULL || ssh_set_channel_callbacks(r->ch, &r->cb) != SSH_OK ||
        ssh_channel_open_session(r->ch) != SSH_OK) {
        seterr(err, errlen, "ssh %s: channel: %s", s->where, ssh_get_error(s->session));
        return -1;
    }
    return 0;
}

static void close_channel(struct run *r)
{
    if (r->ch == NULL)
        return;
    if (ssh_channel_is_open(r->ch))
        (void)ssh_channel_close(r->ch);
    ssh_channel_free(r->ch);
    r->ch = NULL;
}

static int lost(struct run *r)
{
    seterr(r->err, r->errlen, "ssh %s: connection lost: %s", r->s->where,
           ssh_get_error(r->s->session));
    return -1;
}

/* Moves what the channel holds on STREAM to the sink.  1 at the stream's
 * EOF, 0 when drained for now, -1 on error. */
static int drain(struct run *r, int is_stderr, char *buf, size_t size)
{
    for (;;) {
        int n = ssh_channel_read_nonblocking(r->ch, buf, (uint32_t)size, is_stderr);
        if (n > 0) {
            if (r->sink(r, is_stderr ? ZOS_SSH_STDERR : ZOS_SSH_STDOUT, buf, (size_t)n) < 0)
                return -1;
            continue;
        }
        if (n == 0)
            return 0;
        if (n == SSH_EOF)
            return 1;
        /* A channel the server already closed reads as an error, not EOF. */
        if (ssh_is_connected(r->s->session) &&
            (ssh_channel_is_eof(r->ch) || ssh_channel_is_closed(r->ch)))
            return 1;
        return lost(r);
    }
}

/* Local input to the channel, never more than the remote window holds, so
 * the write cannot block while the remote waits for us to read. */
static int forward_input(struct run *r, char *buf, size_t size)
{
    uint32_t win = ssh_channel_window_size(r->ch);
    ssize_t n = read(r->in_fd, buf, win < size ? win : size);

    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return 0;
    if (n < 0 && errno != EIO) { /* EIO: the terminal went away, as EOF */
        seterr(r->err, r->errlen, "reading input: %s", strerror(errno));
        return -1;
    }
    if (n <= 0) {
        r->in_fd = -1;
        if (ssh_channel_send_eof(r->ch) != SSH_OK)
            return lost(r);
        return 0;
    }
    if (ssh_channel_write(r->ch, buf, (uint32_t)n) != n)
        return lost(r);
    return 0;
}

/* Runs until the remote closes both streams (or the channel). */
static int pump(struct run *r)
{
    char buf[32768];
    bool eof[2] = {false, false};

    for (;;) {
        struct pollfd pf[2];
        struct timespec ts = {0, POLL_MS * 1000000L};
        nfds_t nfds = 1;
        bool want_in;

        if (r->tick != NULL && r->tick(r) < 0)
            return -1;
        for (int st = 0; st < 2; st++) {
            int d = eof[st] ? 1 : drain(r, st, buf, sizeof buf);
            if (d < 0)
                return -1;
            eof[st] = d == 1;
        }
        if ((eof[0] && eof[1]) || ssh_channel_is_closed(r->ch))
            return 0;
        if (r->deadline && zos_now_ms() >= r->deadline) {
            seterr(r->err, r->errlen, "ssh %s: command timed out", r->s->where);
            return -1;
        }
        pf[0] = (struct pollfd){.fd = ssh_get_fd(r->s->session), .events = POLLIN};
        want_in = r->in_fd >= 0 && ssh_channel_window_size(r->ch) > 0;
        if (want_in)
            pf[nfds++] = (struct pollfd){.fd = r->in_fd, .events = POLLIN};
        if (ppoll(pf, nfds, &ts, r->waitmask) < 0) {
            if (errno == EINTR)
                continue;
            seterr(r->err, r->errlen, "poll: %s", strerror(errno));
            return -1;
        }
        if (r->waitmask != NULL) {
            /* Input ready makes ppoll return without taking a signal that came
             * with it (a resize, then typing): let it in now, so the window
             * change still goes out before the input. */
            sigset_t cur;
            pthread_sigmask(SIG_SETMASK, r->waitmask, &cur);
            pthread_sigmask(SIG_SETMASK, &cur, NULL);
        }
        if (r->tick != NULL && r->tick(r) < 0)
            return -1;
        if (want_in && (pf[1].revents & (POLLIN | POLLHUP | POLLERR)) &&
            forward_input(r, buf, sizeof buf) < 0)
            return -1;
    }
}

static int signal_number(const char *name)
{
    static const struct {
        const char *name;
        int num;
    } sigs[] = {{"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"ILL", SIGILL},
                {"TRAP", SIGTRAP}, {"ABRT", SIGABRT}, {"BUS", SIGBUS},   {"FPE", SIGFPE},
                {"KILL", SIGKILL}, {"USR1", SIGUSR1}, {"SEGV", SIGSEGV}, {"USR2", SIGUSR2},
                {"PIPE", SIGPIPE}, {"ALRM", SIGALRM}, {"TERM", SIGTERM}, {"XCPU", SIGXCPU},
                {"XFSZ", SIGXFSZ}, {"SYS", SIGSYS}};

    for (size_t i = 0; i < ZOS_ARRAY_LEN(sigs); i++)
        if (strcmp(sigs[i].name, name) == 0)
            return sigs[i].num;
    return 0;
}

/* After the streams ended: waits for the exit status or signal. */
static int finish(struct run *r, int *status, int *signo, char *signame, size_t signame_len)
{
    if (!r->got_status && !r->got_signal) {
        int st = ssh_channel_get_exit_status(r->ch); /* waits for it or for the close */
        if (st >= 0 && !r->got_signal) {
            r->got_status = true;
            r->status = st;
        }
    }
    if (r->got_signal) {
        int n = signal_number(r->signame);
        *status = n ? 128 + n : 255;
        *signo = n;
        snprintf(signame, signame_len, "%s", r->signame);
        return 0;
    }
    if (r->got_status) {
        *status = r->status;
        return 0;
    }
    if (!ssh_is_connected(r->s->session))
        return lost(r);
    seterr(r->err, r->errlen, "ssh %s: the command ended without an exit status", r->s->where);
    return -1;
}

/* ---- exec --------------------------------------------------------------- */

struct collect {
    char *p;
    size_t len, cap;
};

struct exec_ctx {
    const struct zos_ssh_exec_io *io;
    size_t max;
    struct collect c[2]; /* stdout, stderr */
};

static int collect_add(struct collect *c, const char *buf, size_t len, size_t max)
{
    if (c->len + len > max)
        return -1;
    if (c->len + len + 1 > c->cap) {
        size_t cap = c->cap ? c->cap : 4096;
        char *p;
        while (cap < c->len + len + 1)
            cap *= 2;
        p = realloc(c->p, cap);
        if (p == NULL)
            return -1;
        c->p = p;
        c->cap = cap;
    }
    memcpy(c->p + c->len, buf, len);
    c->len += len;
    c->p[c->len] = '\0';
    return 0;
}

static int exec_sink(struct run *r, int stream, const char *buf, size_t len)
{
    struct exec_ctx *x = r->arg;
    const struct zos_ssh_exec_io *io = x->io;
    FILE *f = stream == ZOS_SSH_STDOUT ? io->out : io->err;

    if (io->fn != NULL) {
        if (io->fn(io->arg, stream, buf, len) == 0)
            return 0;
        seterr(r->err, r->errlen, "ssh %s: output refused", r->s->where);
        return -1;
    }
    if (f != NULL) {
        if (fwrite(buf, 1, len, f) == len && fflush(f) == 0)
            return 0;
        seterr(r->err, r->errlen, "writing output: %s", strerror(errno));
        return -1;
    }
    if (collect_add(&x->c[stream - 1], buf, len, x->max) == 0)
        return 0;
    seterr(r->err, r->errlen, "ssh %s: output over %zu bytes", r->s->where, x->max);
    return -1;
}

/* Hands a collected stream to the result: "" rather than NULL. */
static char *collect_take(struct collect *c, size_t *len)
{
    char *p = c->p ? c->p : calloc(1, 1);

    *len = c->len;
    c->p = NULL;
    return p;
}

void zos_ssh_result_clear(struct zos_ssh_result *res)
{
    if (res == NULL)
        return;
    free(res->out);
    free(res->err);
    memset(res, 0, sizeof *res);
    res->status = -1;
}

int zos_ssh_exec(struct zos_ssh *s, const char *cmd, const struct zos_ssh_exec_io *io,
                 struct zos_ssh_result *res, char *err, size_t errlen)
{
    static const struct zos_ssh_exec_io none;
    struct exec_ctx x = {.io = io ? io : &none};
    struct run r;
    int rc = -1;

    memset(res, 0, sizeof *res);
    res->status = -1;
    x.max = x.io->max_output ? x.io->max_output : DEFAULT_MAX_OUTPUT;
    if (open_channel(s, &r, err, errlen) < 0)
        goto done;
    r.sink = exec_sink;
    r.arg = &x;
    r.deadline = x.io->timeout_ms > 0 ? zos_now_ms() + x.io->timeout_ms : 0;
    if (ssh_channel_request_exec(r.ch, cmd) != SSH_OK) {
        seterr(err, errlen, "ssh %s: exec: %s", s->where, ssh_get_error(s->session));
        goto done;
    }
    if (x.io->in != NULL)
        r.in_fd = fileno(x.io->in);
    else if (ssh_channel_send_eof(r.ch) != SSH_OK) {
        lost(&r);
        goto done;
    }
    if (pump(&r) < 0 ||
        finish(&r, &res->status, &res->signal, res->signame, sizeof res->signame) < 0)
        goto done;
    res->out = collect_take(&x.c[0], &res->out_len);
    res->err = collect_take(&x.c[1], &res->err_len);
    if (res->out == NULL || res->err == NULL) {
        seterr(err, errlen, "out of memory");
        goto done;
    }
    rc = 0;
done:
    close_channel(&r);
    free(x.c[0].p);
    free(x.c[1].p);
    if (rc < 0)
        zos_ssh_result_clear(res);
    return rc;
}

/* ---- interactive shell -------------------------------------------------- */

/* Process-wide: the shell runs in the CLI's main thread, one at a time. */
static volatile sig_atomic_t got_winch, got_stop;

static void on_signal(int sig)
{
    if (sig == SIGWINCH)
        got_winch = 1;
    else
        got_stop = sig;
}

static const int shell_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGWINCH, SIGPIPE};

struct shell {
    struct termios saved;
    bool raw;
    struct sigaction old[ZOS_ARRAY_LEN(shell_signals)];
    bool handlers;
    sigset_t oldmask, waitmask;
    bool masked;
};

/* Handlers that only set flags; the signals stay blocked except inside
 * ppoll(), so a flag is never missed between its check and the wait. */
static int signals_install(struct shell *sh, char *err, size_t errlen)
{
    struct sigaction sa;
    sigset_t block;

    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sigemptyset(&block);
    for (size_t i = 0; i < ZOS_ARRAY_LEN(shell_signals); i++) {
        sa.sa_handler = shell_signals[i] == SIGPIPE ? SIG_IGN : on_signal;
        sigaction(shell_signals[i], &sa, &sh->old[i]);
        sigaddset(&block, shell_signals[i]);
    }
    sh->handlers = true;
    if (pthread_sigmask(SIG_BLOCK, &block, &sh->oldmask) != 0) {
        seterr(err, errlen, "signal mask: %s", strerror(errno));
        return -1;
    }
    sh->masked = true;
    sh->waitmask = sh->oldmask;
    for (size_t i = 0; i < ZOS_ARRAY_LEN(shell_signals); i++)
        sigdelset(&sh->waitmask, shell_signals[i]);
    return 0;
}

/* Terminal first, handlers next, mask last: a signal still pending then
 * meets its old disposition with the terminal already sane. */
static void shell_restore(struct shell *sh)
{
    if (sh->raw)
        while (tcsetattr(STDIN_FILENO, TCSADRAIN, &sh->saved) < 0 && errno == EINTR)
            ;
    if (sh->handlers)
        for (size_t i = 0; i < ZOS_ARRAY_LEN(shell_signals); i++)
            sigaction(shell_signals[i], &sh->old[i], NULL);
    if (sh->masked)
        pthread_sigmask(SIG_SETMASK, &sh->oldmask, NULL);
}

static int raw_enter(struct shell *sh, char *err, size_t errlen)
{
    struct termios raw;

    if (tcgetattr(STDIN_FILENO, &sh->saved) < 0) {
        seterr(err, errlen, "terminal: %s", strerror(errno));
        return -1;
    }
    raw = sh->saved;
    cfmakeraw(&raw);
    raw.c_cc[VMIN] = 1;
    raw.c_cc[VTIME] = 0;
    if (tcsetattr(STDIN_FILENO, TCSADRAIN, &raw) < 0) {
        seterr(err, errlen, "terminal: %s", strerror(errno));
        return -1;
    }
    sh->raw = true;
    return 0;
}

static void term_size(int *cols, int *rows)
{
    struct winsize ws;

    *cols = 80;
    *rows = 24;
    if ((ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0 || ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0) &&
        ws.ws_col > 0 && ws.ws_row > 0) {
        *cols = ws.ws_col;
        *rows = ws.ws_row;
    }
}

static const char *stop_name(int sig)
{
    switch (sig) {
    case SIGINT:
        return "SIGINT";
    case SIGTERM:
        return "SIGTERM";
    case SIGHUP:
        return "SIGHUP";
    default:
        return "SIGQUIT";
    }
}

static int shell_tick(struct run *r)
{
    if (got_stop) {
        seterr(r->err, r->errlen, "interrupted by %s", stop_name(got_stop));
        return -1;
    }
    if (got_winch) {
        int cols, rows;
        got_winch = 0;
        term_size(&cols, &rows);
        if (r->pty && ssh_channel_change_pty_size(r->ch, cols, rows) != SSH_OK)
            return lost(r);
    }
    return 0;
}

static int shell_sink(struct run *r, int stream, const char *buf, size_t len)
{
    int fd = stream == ZOS_SSH_STDOUT ? STDOUT_FILENO : STDERR_FILENO;

    if (zos_write_all(fd, buf, len) == 0)
        return 0;
    seterr(r->err, r->errlen, "writing output: %s", strerror(errno));
    return -1;
}

static int shell_start(struct run *r, const struct zos_ssh_shell_opts *opts)
{
    const char *term = opts->term ? opts->term : getenv("TERM");
    int cols, rows;

    if (r->pty) {
        term_size(&cols, &rows);
        if (ssh_channel_request_pty_size(r->ch, term && *term ? term : "xterm", cols, rows) !=
            SSH_OK) {
            seterr(r->err, r->errlen, "ssh %s: pty: %s", r->s->where, ssh_get_error(r->s->session));
            return -1;
        }
    }
    if ((opts->command ? ssh_channel_request_exec(r->ch, opts->command)
                       : ssh_channel_request_shell(r->ch)) != SSH_OK) {
        seterr(r->err, r->errlen, "ssh %s: shell: %s", r->s->where, ssh_get_error(r->s->session));
        return -1;
    }
    return 0;
}

int zos_ssh_shell(struct zos_ssh *s, const struct zos_ssh_shell_opts *opts, int *status, char *err,
                  size_t errlen)
{
    static const struct zos_ssh_shell_opts none;
    struct shell sh;
    struct run r = {.ch = NULL};
    bool tty = isatty(STDIN_FILENO);
    int rc = -1, signo = 0;
    char signame[16];

    memset(&sh, 0, sizeof sh);
    opts = opts ? opts : &none;
    *status = -1;
    fflush(stdout);
    fflush(stderr);
    got_winch = 0;
    got_stop = 0;
    if (signals_install(&sh, err, errlen) < 0 || (tty && raw_enter(&sh, err, errlen) < 0) ||
        open_channel(s, &r, err, errlen) < 0)
        goto done;
    r.pty = tty || opts->pty;
    r.in_fd = STDIN_FILENO;
    r.sink = shell_sink;
    r.tick = shell_tick;
    r.waitmask = &sh.waitmask;
    if (shell_start(&r, opts) < 0 || pump(&r) < 0 ||
        finish(&r, status, &signo, signame, sizeof signame) < 0)
        goto done;
    rc = 0;
done:
    close_channel(&r);
    shell_restore(&sh);
    if (rc < 0 && got_stop)
        *status = 128 + got_stop;
    return rc;
}

/* ---- SFTP --------------------------------------------------------------- */

struct entry {
    char *rel; /* "" for the root */
    uint32_t mode;
    uint64_t size;
    bool dir;
};

struct plan {
    struct entry *v;
    size_t n, cap;
    uint64_t total;
};

struct xfer {
    struct zos_ssh *s;
    sftp_session sf;
    zos_ssh_progress_fn fn;
    void *arg;
    uint64_t done, total;
    char *buf;
    char *err;
    size_t errlen;
};

static void plan_free(struct plan *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->v[i].rel);
    free(p->v);
}

static int plan_add(struct plan *p, const char *rel, uint32_t mode, uint64_t size, bool dir)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        struct entry *v = realloc(p->v, cap * sizeof *v);
        if (v == NULL)
            return -1;
        p->v = v;
        p->cap = cap;
    }
    p->v[p->n].rel = strdup(rel);
    if (p->v[p->n].rel == NULL)
        return -1;
    p->v[p->n].mode = mode & 0777; /* never setuid/setgid/sticky bits chosen by the other side */
    p->v[p->n].size = dir ? 0 : size;
    p->v[p->n].dir = dir;
    p->n++;
    p->total += dir ? 0 : size;
    return 0;
}

static const char *sftp_why(struct zos_ssh *s)
{
    switch (sftp_get_error(s->sftp)) {
    case SSH_FX_NO_SUCH_FILE:
    case SSH_FX_NO_SUCH_PATH:
        return "no such file or directory";
    case SSH_FX_PERMISSION_DENIED:
        return "permission denied";
    case SSH_FX_FILE_ALREADY_EXISTS:
        return "file exists";
    case SSH_FX_WRITE_PROTECT:
        return "read-only file system";
    case SSH_FX_OP_UNSUPPORTED:
        return "operation not supported";
    case SSH_FX_EOF:
        return "unexpected end of file";
    case SSH_FX_FAILURE:
        return "failure (disk full, or not a directory?)";
    default:
        return ssh_get_error(s->session);
    }
}

static int rerr(struct xfer *x, const char *path)
{
    seterr(x->err, x->errlen, "ssh %s: %s: %s", x->s->where, path, sftp_why(x->s));
    return -1;
}

static int lerr(struct xfer *x, const char *path)
{
    seterr(x->err, x->errlen, "%s: %s", path, strerror(errno));
    return -1;
}

static int oom(struct xfer *x)
{
    seterr(x->err, x->errlen, "out of memory");
    return -1;
}

static int progress(struct xfer *x, const char *path)
{
    if (x->done > x->total) /* a file grew since the walk */
        x->total = x->done;
    if (x->fn == NULL || x->fn(x->arg, path, x->done, x->total) == 0)
        return 0;
    seterr(x->err, x->errlen, "cancelled");
    return -1;
}

static bool rdir(sftp_attributes a)
{
    return a->type == SSH_FILEXFER_TYPE_DIRECTORY || S_ISDIR(a->permissions);
}

static bool rreg(sftp_attributes a)
{
    return a->type == SSH_FILEXFER_TYPE_REGULAR || S_ISREG(a->permissions);
}

static int walk_local(struct xfer *x, struct plan *p, const char *path, const char *rel, int depth);

static int walk_local_dir(struct xfer *x, struct plan *p, const char *path, const char *rel,
                          int depth)
{
    DIR *d = opendir(path);
    struct dirent *de;
    int rc = -1;

    if (d == NULL)
        return lerr(x, path);
    for (errno = 0; (de = readdir(d)) != NULL; errno = 0) {
        char *sub, *full;
        int r;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        sub = rel[0] ? join(rel, de->d_name) : strdup(de->d_name);
        full = join(path, de->d_name);
        r = sub && full ? walk_local(x, p, full, sub, depth + 1) : oom(x);
        free(sub);
        free(full);
        if (r < 0)
            goto done;
    }
    if (errno != 0) {
        lerr(x, path);
        goto done;
    }
    rc = 0;
done:
    closedir(d);
    return rc;
}

/* PATH is the entry, REL its place under the top of the copy ("" for the top). */
static int walk_local(struct xfer *x, struct plan *p, const char *path, const char *rel, int depth)
{
    struct stat st;

    if (stat(path, &st) < 0)
        return lerr(x, path);
    if (depth > MAX_DEPTH) {
        seterr(x->err, x->errlen, "%s: nested too deep (a symlink loop?)", path);
        return -1;
    }
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
        return 0; /* fifos, sockets, devices: nothing to copy */
    if (plan_add(p, rel, st.st_mode, (uint64_t)st.st_size, S_ISDIR(st.st_mode)) < 0)
        return oom(x);
    return S_ISDIR(st.st_mode) ? walk_local_dir(x, p, path, rel, depth) : 0;
}

static int walk_remote(struct xfer *x, struct plan *p, const char *path, const char *rel,
                       sftp_attributes a, int depth);

/* One directory entry A of PATH; links are followed (dangling ones skipped). */
static int walk_remote_entry(struct xfer *x, struct plan *p, const char *path, const char *rel,
                             sftp_attributes a, int depth)
{
    char *sub, *full;
    int rc;

    if (strcmp(a->name, ".") == 0 || strcmp(a->name, "..") == 0)
        return 0;
    if (a->name[0] == '\0' || strchr(a->name, '/') != NULL) {
        /* a server naming an entry "../../x" must not write outside DST */
        seterr(x->err, x->errlen, "ssh %s: %s: the server sent an unsafe file name", x->s->where,
               path);
        return -1;
    }
    sub = rel[0] ? join(rel, a->name) : strdup(a->name);
    full = join(path, a->name);
    if (sub == NULL || full == NULL) {
        rc = oom(x);
    } else if (!rdir(a) && !rreg(a)) {
        sftp_attributes t = sftp_stat(x->sf, full);
        rc = t ? walk_remote(x, p, full, sub, t, depth + 1) : 0;
        if (t != NULL)
            sftp_attributes_free(t);
    } else {
        rc = walk_remote(x, p, full, sub, a, depth + 1);
    }
    free(sub);
    free(full);
    return rc;
}

static int walk_remote_dir(struct xfer *x, struct plan *p, const char *path, const char *rel,
                           int depth)
{
    sftp_dir d = sftp_opendir(x->sf, path);
    sftp_attributes a;
    int rc = -1;

    if (d == NULL)
        return rerr(x, path);
    while ((a = sftp_readdir(x->sf, d)) != NULL) {
        int r = walk_remote_entry(x, p, path, rel, a, depth);
        sftp_attributes_free(a);
        if (r < 0)
            goto done;
    }
    if (!sftp_dir_eof(d)) {
        rerr(x, path);
        goto done;
    }
    rc = 0;
done:
    sftp_closedir(d);
    return rc;
}

/* PATH is the entry itself (already stat'ed: A), REL its place in the plan. */
static int walk_remote(struct xfer *x, struct plan *p, const char *path, const char *rel,
                       sftp_attributes a, int depth)
{
    if (depth > MAX_DEPTH) {
        seterr(x->err, x->errlen, "ssh %s: %s: nested too deep (a symlink loop?)", x->s->where,
               path);
        return -1;
    }
    if (!rdir(a) && !rreg(a))
        return 0;
    if (plan_add(p, rel, a->permissions, a->size, rdir(a)) < 0)
        return oom(x);
    return rdir(a) ? walk_remote_dir(x, p, path, rel, depth) : 0;
}

static int put_file(struct xfer *x, const char *lpath, const char *rpath, uint32_t mode)
{
    int fd = open(lpath, O_RDONLY | O_CLOEXEC), rc = -1;
    sftp_file f = NULL;

    if (fd < 0)
        return lerr(x, lpath);
    f = sftp_open(x->sf, rpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (f == NULL) {
        rerr(x, rpath);
        goto done;
    }
    for (;;) {
        ssize_t n = read(fd, x->buf, ZOS_SSH_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            lerr(x, lpath);
            goto done;
        }
        if (n == 0)
            break;
        if (sftp_write(f, x->buf, (size_t)n) != n) {
            rerr(x, rpath);
            goto done;
        }
        x->done += (uint64_t)n;
        if (progress(x, lpath) < 0)
            goto done;
    }
    rc = sftp_close(f) == SSH_NO_ERROR ? 0 : rerr(x, rpath);
    f = NULL;
    if (rc == 0 && sftp_chmod(x->sf, rpath, mode) < 0)
        rc = rerr(x, rpath);
done:
    if (f != NULL)
        sftp_close(f);
    close(fd);
    return rc;
}

/* Reads (and drops) the answers to requests still in flight. */
static void discard(sftp_file f, uint32_t *ids, size_t head, size_t count, char *buf)
{
    for (size_t i = 0; i < count; i++)
        (void)sftp_async_read(f, buf, READ_CHUNK, ids[(head + i) % READ_DEPTH]);
}

static int get_out(struct xfer *x, int fd, const char *lpath, const char *rpath, size_t n)
{
    if (zos_write_all(fd, x->buf, n) < 0)
        return lerr(x, lpath);
    x->done += n;
    return progress(x, rpath);
}

/* READ_DEPTH reads in flight up to the size the walk saw, then plain reads
 * until EOF (the file may have grown, or be a /proc file of size 0).  A short
 * answer (servers may send less) drops the requests after it and carries on
 * from where the data ended. */
static int get_data(struct xfer *x, sftp_file f, int fd, const char *rpath, const char *lpath,
                    uint64_t size)
{
    uint32_t ids[READ_DEPTH];
    size_t head = 0, count = 0;
    uint64_t req = 0, off = 0;
    int n;

    for (;;) {
        while (count < READ_DEPTH && req < size) {
            int id = sftp_async_read_begin(f, READ_CHUNK);
            if (id < 0) {
                discard(f, ids, head, count, x->buf);
                return rerr(x, rpath);
            }
            ids[(head + count++) % READ_DEPTH] = (uint32_t)id;
            req += READ_CHUNK;
        }
        if (count == 0)
            break;
        n = sftp_async_read(f, x->buf, READ_CHUNK, ids[head]);
        head = (head + 1) % READ_DEPTH;
        count--;
        if (n < 0 || (n > 0 && get_out(x, fd, lpath, rpath, (size_t)n) < 0)) {
            discard(f, ids, head, count, x->buf);
            return n < 0 ? rerr(x, rpath) : -1;
        }
        off += (uint64_t)n;
        if (n == 0 || (n < READ_CHUNK && count > 0)) {
            discard(f, ids, head, count, x->buf);
            count = 0;
            if (n == 0)
                break;
            req = off;
            if (sftp_seek64(f, off) < 0)
                return rerr(x, rpath);
        }
    }
    if (sftp_seek64(f, off) < 0)
        return rerr(x, rpath);
    while ((n = sftp_read(f, x->buf, READ_CHUNK)) > 0)
        if (get_out(x, fd, lpath, rpath, (size_t)n) < 0)
            return -1;
    return n < 0 ? rerr(x, rpath) : 0;
}

static int get_file(struct xfer *x, const char *rpath, const char *lpath, uint32_t mode,
                    uint64_t size)
{
    int fd = open(lpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), rc = -1;
    sftp_file f = NULL;

    if (fd < 0)
        return lerr(x, lpath);
    f = sftp_open(x->sf, rpath, O_RDONLY, 0);
    if (f == NULL) {
        rerr(x, rpath);
        goto done;
    }
    if (get_data(x, f, fd, rpath, lpath, size) < 0)
        goto done;
    if (fchmod(fd, mode) < 0) {
        lerr(x, lpath);
        goto done;
    }
    rc = 0;
done:
    if (f != NULL)
        sftp_close(f);
    if (close(fd) < 0 && rc == 0)
        rc = lerr(x, lpath);
    return rc;
}

static int remote_mkdir(struct xfer *x, const char *rpath)
{
    sftp_attributes a;
    bool isdir;

    if (sftp_mkdir(x->sf, rpath, 0700) == 0)
        return 0;
    a = sftp_stat(x->sf, rpath);
    if (a == NULL)
        return rerr(x, rpath);
    isdir = rdir(a);
    sftp_attributes_free(a);
    if (isdir)
        return 0;
    seterr(x->err, x->errlen, "ssh %s: %s: exists and is not a directory", x->s->where, rpath);
    return -1;
}

static int local_mkdir(struct xfer *x, const char *lpath)
{
    struct stat st;

    if (mkdir(lpath, 0700) == 0)
        return 0;
    if (errno != EEXIST)
        return lerr(x, lpath);
    if (stat(lpath, &st) == 0 && S_ISDIR(st.st_mode))
        return 0;
    seterr(x->err, x->errlen, "%s: exists and is not a directory", lpath);
    return -1;
}

static int xfer_start(struct xfer *x, struct zos_ssh *s, zos_ssh_progress_fn fn, void *arg,
                      char *err, size_t errlen)
{
    memset(x, 0, sizeof *x);
    x->s = s;
    x->fn = fn;
    x->arg = arg;
    x->err = err;
    x->errlen = errlen;
    x->buf = malloc(ZOS_SSH_CHUNK);
    if (x->buf == NULL)
        return oom(x);
    if (s->sftp == NULL) {
        s->sftp = sftp_new(s->session);
        if (s->sftp == NULL) {
            seterr(err, errlen, "ssh %s: sftp: %s", s->where, ssh_get_error(s->session));
            return -1;
        }
        if (sftp_init(s->sftp) != SSH_OK) {
            seterr(err, errlen, "ssh %s: sftp: %s", s->where, ssh_get_error(s->session));
            sftp_free(s->sftp);
            s->sftp = NULL;
            return -1;
        }
    }
    x->sf = s->sftp;
    return 0;
}

/* Where a copy of SRC goes, as cp -r: inside DST when DST is a directory. */
static char *dest_path(const char *src, const char *dst, bool dst_is_dir)
{
    char *base = dst_is_dir ? base_name(src) : NULL;
    char *p = base ? join(dst, base) : strdup(dst);

    free(base);
    return p;
}

static bool remote_is_dir(struct xfer *x, const char *path)
{
    sftp_attributes a = sftp_stat(x->sf, path);
    bool isdir = a != NULL && rdir(a);

    if (a != NULL)
        sftp_attributes_free(a);
    return isdir;
}

static bool local_is_dir(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Copies the plan in order, then sets directory modes deepest first.
 * UP: local -> remote, else remote -> local. */
static int run_plan(struct xfer *x, const struct plan *p, const char *src, const char *dst, bool up)
{
    int rc = 0;

    x->total = p->total;
    for (size_t i = 0; i < p->n && rc == 0; i++) {
        const struct entry *e = &p->v[i];
        char *from = path_at(src, e->rel), *to = path_at(dst, e->rel);
        if (from == NULL || to == NULL)
            rc = oom(x);
        else if (e->dir)
            rc = up ? remote_mkdir(x, to) : local_mkdir(x, to);
        else
            rc = up ? put_file(x, from, to, e->mode) : get_file(x, from, to, e->mode, e->size);
        free(from);
        free(to);
    }
    for (size_t i = p->n; i-- > 0 && rc == 0;) {
        const struct entry *e = &p->v[i];
        char *to = e->dir ? path_at(dst, e->rel) : NULL;
        if (!e->dir)
            continue;
        if (to == NULL)
            rc = oom(x);
        else if (up && sftp_chmod(x->sf, to, e->mode) < 0)
            rc = rerr(x, to);
        else if (!up && chmod(to, e->mode) < 0)
            rc = lerr(x, to);
        free(to);
    }
    return rc == 0 ? progress(x, src) : rc;
}

int zos_ssh_upload(struct zos_ssh *s, const char *local, const char *remote,
                   zos_ssh_progress_fn progress_fn, void *arg, char *err, size_t errlen)
{
    struct xfer x;
    struct plan p = {0};
    char *dest = NULL;
    int rc = -1;

    if (xfer_start(&x, s, progress_fn, arg, err, errlen) < 0 ||
        walk_local(&x, &p, local, "", 0) < 0)
        goto done;
    dest = dest_path(local, remote, remote_is_dir(&x, remote));
    if (dest == NULL) {
        oom(&x);
        goto done;
    }
    rc = run_plan(&x, &p, local, dest, true);
done:
    free(dest);
    plan_free(&p);
    free(x.buf);
    return rc;
}

int zos_ssh_download(struct zos_ssh *s, const char *remote, const char *local,
                     zos_ssh_progress_fn progress_fn, void *arg, char *err, size_t errlen)
{
    struct xfer x;
    struct plan p = {0};
    sftp_attributes a = NULL;
    char *dest = NULL;
    int rc = -1;

    if (xfer_start(&x, s, progress_fn, arg, err, errlen) < 0)
        goto done;
    a = sftp_stat(x.sf, remote);
    if (a == NULL) {
        rerr(&x, remote);
        goto done;
    }
    if (walk_remote(&x, &p, remote, "", a, 0) < 0)
        goto done;
    if (p.n == 0) {
        seterr(err, errlen, "ssh %s: %s: not a file or directory", s->where, remote);
        goto done;
    }
    dest = dest_path(remote, local, local_is_dir(local));
    if (dest == NULL) {
        oom(&x);
        goto done;
    }
    rc = run_plan(&x, &p, remote, dest, false);
done:
    if (a != NULL)
        sftp_attributes_free(a);
    free(dest);
    plan_free(&p);
    free(x.buf);
    return rc;
}

/* ---- progress bar ------------------------------------------------------- */

/* The shared bar of util.c; struct zos_ssh_bar keeps its state between calls. */
int zos_ssh_bar_progress(void *arg, const char *path, uint64_t done, uint64_t total)
{
    struct zos_ssh_bar *sb = arg;
    struct zos_bar b;

    if (sb == NULL)
        return 0;
    b = (struct zos_bar){
        .out = sb->out, .width = sb->width, .last = sb->last, .finished = sb->finished};
    zos_bar_draw(&b, path, (int64_t)done, (int64_t)total);
    sb->last = (int)b.last;
    sb->finished = b.finished;
    return 0;
}
