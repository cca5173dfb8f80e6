/* conf.c -- the INI config file: one table of every key, line-numbered errors, atomic save.
 *
 * inih finds comments, "key = value" lines and syntax errors.  The packaged
 * r55 build has a 200-byte line buffer, truncates section names past 49
 * bytes, takes an indented line as the continuation of the previous value
 * and knows nothing of quotes; but a JWT secret alone is longer than 200
 * bytes and the original tool writes address="127.0.0.1".  So read_line()
 * stands between the file and inih:
 *
 *   file --getline--> read_line: counts the line, keeps it whole
 *            "[name]"            -> taken here (checked, node created); inih gets ""
 *            "  key = value ..." -> inih gets "key =" (left-trimmed, cut after the '=')
 *   inih --on_key(name)--> value cut from the whole line, quotes understood,
 *                          then parsed and stored through keys[]
 *
 * inih still decides what is a comment, a key or a syntax error, and reports
 * the line of the first syntax error.  Loading and zos_conf_set() both go
 * through apply(), so a key is validated the same way wherever it comes from.
 */
#include "zos/conf.h"
#include "zos/util.h"
#include "zos/zos.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#define NODE_NAME_MAX 64
#define HOST_MAX      256
#define WHY_MAX       256

enum sect_kind { SECT_APP, SECT_PROXY, SECT_NODE };

enum key_type {
    KT_STRING,   /* text without control characters */
    KT_SECRET,   /* a KT_STRING whose value never appears in a message */
    KT_BOOL,     /* yes/no true/false on/off 1/0 */
    KT_INT,      /* int in min..max */
    KT_COUNT,    /* size_t in min..max, plain decimal */
    KT_SIZE,     /* size_t in min..max, optional k/m/g suffix */
    KT_OCTAL,    /* int in min..max, written in octal */
    KT_ENUM,     /* one of choices, stored as its canonical char * */
    KT_HOSTPORT, /* "host:port", stored as char * */
    KT_NODEREF,  /* a node name; that the node exists is checked after loading */
    KT_VERIFY,   /* tls-verify: fills verify, verify_ca and verify_sha256 */
};

struct key_def {
    enum sect_kind sect;
    const char *name;
    enum key_type type;
    const char *def; /* default in text form; NULL: unset, and an empty value unsets */
    long long min, max;
    const char *const *choices; /* KT_ENUM */
    int (*check)(const struct key_def *k, const char *text, char *why, size_t len);
    size_t offset; /* of the field in zos_app_conf, zos_proxy_conf or zos_node_conf */
    bool always;   /* saved even when equal to the default, as the original tool did */
};

static int check_host(const struct key_def *k, const char *text, char *why, size_t len);
static int check_sun_path(const struct key_def *k, const char *text, char *why, size_t len);

#define APP(f)  offsetof(struct zos_app_conf, f)
#define PRX(f)  offsetof(struct zos_proxy_conf, f)
#define NODE(f) offsetof(struct zos_node_conf, f)
#define GB      (1LL << 30)
#define MS_HOUR 3600000

/* Every key, once.  README.md (Configuration) documents the same rows. */
static const struct key_def keys[] = {
    /* sect, name, type, default, min, max, choices, check, field, always */
    {SECT_APP, "debug", KT_BOOL, "false", 0, 0, NULL, NULL, APP(debug), true},
    {SECT_APP, "defaultzos", KT_NODEREF, NULL, 0, 0, NULL, NULL, APP(defaultzos), false},
    {SECT_APP, "proxy", KT_HOSTPORT, NULL, 0, 0, NULL, NULL, APP(proxy), false},

    {SECT_PROXY, "listen", KT_HOSTPORT, "127.0.0.1:6380", 0, 0, NULL, NULL, PRX(listen), false},
    {SECT_PROXY, "unixsocket", KT_STRING, NULL, 0, 0, NULL, check_sun_path, PRX(unixsocket), false},
    {SECT_PROXY, "unixsocketperm", KT_OCTAL, "0700", 0, 0777, NULL, NULL, PRX(unixsocketperm),
     false},
    {SECT_PROXY, "requirepass", KT_SECRET, NULL, 0, 0, NULL, NULL, PRX(requirepass), false},
    {SECT_PROXY, "metrics-listen", KT_HOSTPORT, NULL, 0, 0, NULL, NULL, PRX(metrics_listen), false},
    {SECT_PROXY, "default", KT_NODEREF, NULL, 0, 0, NULL, NULL, PRX(default_node), false},
    {SECT_PROXY, "max-bulk", KT_SIZE, "512m", 1, 4 * GB, NULL, NULL, PRX(max_bulk), false},
    {SECT_PROXY, "max-args", KT_COUNT, "1048576", 1, 1 << 30, NULL, NULL, PRX(max_args), false},
    {SECT_PROXY, "max-inline", KT_SIZE, "64k", 1, GB, NULL, NULL, PRX(max_inline), false},
    {SECT_PROXY, "reply-max-bulk", KT_SIZE, "512m", 1, 4 * GB, NULL, NULL, PRX(reply_max_bulk),
     false},
    {SECT_PROXY, "reply-max-elements", KT_COUNT, "2147483647", 1, 2147483647, NULL, NULL,
     PRX(reply_max_elements), false},
    {SECT_PROXY, "reply-max-depth", KT_INT, "64", 1, 64, NULL, NULL, PRX(reply_max_depth), false},
    {SECT_PROXY, "core-dump", KT_BOOL, "no", 0, 0, NULL, NULL, PRX(core_dump), false},
    {SECT_PROXY, "max-clients", KT_INT, "10000", 1, 1000000, NULL, NULL, PRX(max_clients), false},
    {SECT_PROXY, "max-pinned", KT_INT, "256", 1, 100000, NULL, NULL, PRX(max_pinned), false},
    {SECT_PROXY, "max-lanes", KT_INT, "4", 1, 64, NULL, NULL, PRX(max_lanes), false},
    {SECT_PROXY, "lane-busy", KT_INT, "50", 1, MS_HOUR, NULL, NULL, PRX(lane_busy_ms), false},
    {SECT_PROXY, "pool-size", KT_INT, "8", 0, 100000, NULL, NULL, PRX(pool_size), false},
    {SECT_PROXY, "pool-idle", KT_INT, "30000", 100, MS_HOUR, NULL, NULL, PRX(pool_idle_ms), false},
    {SECT_PROXY, "node-timeout", KT_INT, "10000", 100, MS_HOUR, NULL, NULL, PRX(node_timeout_ms),
     false},
    {SECT_PROXY, "client-output-limit", KT_SIZE, "256m", 0, 64 * GB, NULL, NULL,
     PRX(client_output_limit), false},
    {SECT_PROXY, "client-query-limit", KT_SIZE, "256m", 0, 64 * GB, NULL, NULL,
     PRX(client_query_limit), false},
    {SECT_PROXY, "pubsub-output-limit", KT_SIZE, "32m", 0, 64 * GB, NULL, NULL,
     PRX(pubsub_output_limit), false},
    {SECT_PROXY, "job-links", KT_INT, "16", 1, 1024, NULL, NULL, PRX(job_links), false},
    {SECT_PROXY, "max-connecting", KT_INT, "64", 1, 100000, NULL, NULL, PRX(max_connecting), false},
    {SECT_PROXY, "all-timeout", KT_INT, "5000", 1, MS_HOUR, NULL, NULL, PRX(all_timeout_ms), false},
    {SECT_PROXY, "connect-timeout", KT_INT, "5000", 1, 600000, NULL, NULL, PRX(connect_timeout_ms),
     false},
    {SECT_PROXY, "ping-interval", KT_INT, "15000", 100, MS_HOUR, NULL, NULL, PRX(ping_interval_ms),
     false},
    {SECT_PROXY, "backoff-max", KT_INT, "10000", 1, MS_HOUR, NULL, NULL, PRX(backoff_max_ms),
     false},
    {SECT_PROXY, "shutdown-timeout", KT_INT, "5000", 0, MS_HOUR, NULL, NULL,
     PRX(shutdown_timeout_ms), false},
    {SECT_PROXY, "log-level", KT_ENUM, "info", 0, 0, zos_log_level_names, NULL, PRX(log_level),
     false},
    {SECT_PROXY, "log-file", KT_STRING, NULL, 0, 0, NULL, NULL, PRX(log_file), false},

    {SECT_NODE, "address", KT_STRING, "127.0.0.1", 0, 0, NULL, check_host, NODE(address), true},
    {SECT_NODE, "port", KT_INT, "6379", 1, 65535, NULL, NULL, NODE(port), true},
    {SECT_NODE, "tls", KT_BOOL, "yes", 0, 0, NULL, NULL, NODE(tls), false},
    {SECT_NODE, "tls-verify", KT_VERIFY, "none", 0, 0, NULL, NULL, NODE(verify), false},
    {SECT_NODE, "secret", KT_SECRET, NULL, 0, 0, NULL, NULL, NODE(secret), false},
    {SECT_NODE, "db", KT_INT, "0", 0, 1000, NULL, NULL, NODE(db), false},
    {SECT_NODE, "password", KT_SECRET, NULL, 0, 0, NULL, NULL, NODE(password), false},
    {SECT_NODE, "listen", KT_HOSTPORT, NULL, 0, 0, NULL, NULL, NODE(listen), false},
    {SECT_NODE, "admin", KT_BOOL, "no", 0, 0, NULL, NULL, NODE(admin), false},
    {SECT_NODE, "isvbox", KT_BOOL, "false", 0, 0, NULL, NULL, NODE(isvbox), false},
    {SECT_NODE, "sshkey", KT_STRING, NULL, 0, 0, NULL, NULL, NODE(sshkey), false},
};

#define NKEYS ZOS_ARRAY_LEN(keys)

/* ---- errors ---- */

/* Where a message goes: "PATH:LINE: msg", "PATH: msg", or "msg" when PATH is NULL. */
struct errbuf {
    const char *path;
    char *buf;
    size_t len;
};

__attribute__((format(printf, 3, 0))) static void vfail(const struct errbuf *e, int line,
                                                        const char *fmt, va_list ap)
{
    char msg[768];

    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (e->buf == NULL || e->len == 0)
        return;
    if (e->path != NULL && line > 0)
        snprintf(e->buf, e->len, "%s:%d: %s", e->path, line, msg);
    else if (e->path != NULL)
        snprintf(e->buf, e->len, "%s: %s", e->path, msg);
    else
        snprintf(e->buf, e->len, "%s", msg);
}

__attribute__((format(printf, 3, 4))) static int fail(const struct errbuf *e, int line,
                                                      const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vfail(e, line, fmt, ap);
    va_end(ap);
    return -1;
}

/* S made safe to quote in a message: control characters become '?', long text is cut. */
static const char *printable(const char *s, char *buf, size_t len)
{
    size_t o = 0;

    for (; *s != '\0' && o + 4 < len; s++)
        buf[o++] = iscntrl((unsigned char)*s) ? '?' : *s;
    if (*s != '\0') {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

/* "RULE (got 'TEXT')"; a secret is never echoed. */
static int bad(const struct key_def *k, const char *text, char *why, size_t len, const char *rule)
{
    char shown[72];

    if (k->type == KT_SECRET)
        snprintf(why, len, "%s", rule);
    else
        snprintf(why, len, "%s (got '%s')", rule, printable(text, shown, sizeof(shown)));
    return -1;
}

static int out_of_memory(char *why, size_t len)
{
    snprintf(why, len, "out of memory");
    return -1;
}

/* ---- small parsers ---- */

static const char *skip_blank(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

static bool has_control(const char *s)
{
    for (; *s != '\0'; s++)
        if (*s != '\t' && iscntrl((unsigned char)*s))
            return true;
    return false;
}

/* Plain decimal digits only: no sign, no blanks, no overflow. */
static int parse_ull(const char *s, const char **end, unsigned long long *out)
{
    unsigned long long v = 0;
    const char *p = s;

    for (; isdigit((unsigned char)*p); p++) {
        if (v > (ULLONG_MAX - 9) / 10)
            return -1;
        v = v * 10 + (unsigned long long)(*p - '0');
    }
    if (p == s)
        return -1;
    *end = p;
    *out = v;
    return 0;
}

/* "512m", "64k", "1g", "64kb", "100": bytes. */
static int parse_size(const char *s, unsigned long long *out)
{
    const char *p;
    unsigned long long v;
    int shift = 0;

    if (parse_ull(s, &p, &v) < 0)
        return -1;
    switch (tolower((unsigned char)*p)) {
    case 'k':
        shift = 10;
        break;
    case 'm':
        shift = 20;
        break;
    case 'g':
        shift = 30;
        break;
    }
    if (shift != 0 && tolower((unsigned char)*++p) == 'b')
        p++;
    if (*p != '\0' || v > (ULLONG_MAX >> shift))
        return -1;
    *out = v << shift;
    return 0;
}

static const char *format_size(unsigned long long v, char *buf, size_t len)
{
    static const char suffix[] = "gmk";

    for (int i = 0; i < 3; i++) {
        unsigned long long unit = 1ULL << (30 - 10 * i);
        if (v != 0 && v % unit == 0) {
            snprintf(buf, len, "%llu%c", v / unit, suffix[i]);
            return buf;
        }
    }
    snprintf(buf, len, "%llu", v);
    return buf;
}

static int hex_digit(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = (char)tolower((unsigned char)ch);
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* NULL when NAME can be a node's section name, else what is wrong with it. */
static const char *node_name_error(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n > NODE_NAME_MAX ||
        strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != n)
        return "use 1..64 letters, digits, '-', '_' or '.'";
    if (strcasecmp(name, "app") == 0 || strcasecmp(name, "proxy") == 0)
        return "app and proxy are reserved";
    return NULL;
}

/* ---- zos_conf_split_hostport, zos_conf_is_loopback ---- */

static int parse_port(const char *s, int *port)
{
    const char *end;
    unsigned long long v;

    if (parse_ull(s, &end, &v) < 0 || *end != '\0' || v < 1 || v > 65535)
        return -1;
    *port = (int)v;
    return 0;
}

int zos_conf_split_hostport(const char *s, char *host, size_t hostlen, int *port)
{
    const char *h = s, *colon;
    size_t n;
    int p;

    if (s == NULL)
        return -1;
    if (*s == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':')
            return -1;
        h = s + 1;
        n = (size_t)(close - h);
        colon = close + 1;
    } else {
        if ((colon = strrchr(s, ':')) == NULL)
            return -1;
        n = (size_t)(colon - s);
        if (memchr(s, ':', n) != NULL) /* an IPv6 address needs brackets */
            return -1;
    }
    if (n == 0 || n >= hostlen || parse_port(colon + 1, &p) < 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (isspace((unsigned char)h[i]) || iscntrl((unsigned char)h[i]) || h[i] == '[' ||
            h[i] == ']')
            return -1;
    memcpy(host, h, n);
    host[n] = '\0';
    *port = p;
    return 0;
}

bool zos_conf_is_loopback(const char *host)
{
    char buf[HOST_MAX];
    struct in_addr a4;
    struct in6_addr a6;
    size_t n;

    if (host == NULL || (n = strlen(host)) >= sizeof(buf))
        return false;
    if (strcasecmp(host, "localhost") == 0)
        return true;
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        memcpy(buf, host + 1, n - 2);
        buf[n - 2] = '\0';
        host = buf;
    }
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6) || (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
    return false;
}

static bool same_hostport(const char *a, const char *b)
{
    char ha[HOST_MAX], hb[HOST_MAX];
    int pa, pb;

    if (zos_conf_split_hostport(a, ha, sizeof(ha), &pa) < 0 ||
        zos_conf_split_hostport(b, hb, sizeof(hb), &pb) < 0)
        return strcmp(a, b) == 0;
    return pa == pb && strcasecmp(ha, hb) == 0;
}

/* ---- the key types: set from text, get as text ---- */

#define FIELD(base, k, type) ((type *)(void *)((char *)(base) + (k)->offset))
#define CONST_FIELD(base, k, type)                                                                 \
    ((const type *)(const void *)((const char *)(base) + (k)->offset))

static void free_text(const struct key_def *k, char **field)
{
    if (k->type == KT_SECRET)
        zos_secret_free(*field);
    else
        free(*field);
    *field = NULL;
}

static int store_text(const struct key_def *k, void *base, const char *text, char *why, size_t len)
{
    char *copy = k->type == KT_SECRET ? zos_secret_dup(text) : strdup(text);

    if (copy == NULL)
        return out_of_memory(why, len);
    free_text(k, FIELD(base, k, char *));
    *FIELD(base, k, char *) = copy;
    return 0;
}

static int set_string(const struct key_def *k, void *base, const char *text, char *why, size_t len)
{
    if (has_control(text))
        return bad(k, text, why, len, "must not contain control characters");
    return store_text(k, base, text, why, len);
}

static int set_bool(const struct key_def *k, void *base, const char *text, char *why, size_t len)
{
    static const char *const words[] = {"yes", "no", "true", "false", "on", "off", "1", "0"};

    for (size_t i = 0; i < ZOS_ARRAY_LEN(words); i++) {
        if (strcasecmp(text, words[i]) == 0) {
            *FIELD(base, k, bool) = i % 2 == 0;
            return 0;
        }
    }
    return bad(k, text, why, len, "must be yes/no, true/false, on/off or 1/0");
}

static int range_error(const struct key_def *k, const char *text, char *why, size_t len)
{
    char rule[96];

    snprintf(rule, sizeof(rule), "must be %lld..%lld", k->min, k->max);
    return bad(k, text, why, len, rule);
}

static int parse_in_range(const struct key_def *k, const char *text, unsigned long long *v)
{
    const char *end;

    if (parse_ull(text, &end, v) < 0 || *end != '\0')
        return -1;
    return *v >= (unsigned long long)k->min && *v <= (unsigned long long)k->max ? 0 : -1;
}

static int set_int(const struct key_def *k, void *base, const char *text, char *why, size_t len)
{
    unsigned long long v;

    if (parse_in_range(k, text, &v) < 0)
        return range_error(k, text, why, len);
    *FIELD(base, k, int) = (int)v;
    return 0;
}

static int set_count(const struct key_def *k, void *base, const char *text, char *why, size_t len)
{
    unsigned long long v;

    if (parse_in_range(k, text, &v) < 0)
        return range_error(k, text, why, len);
    *FIELD(base, k, size_t) = (size_t)v;
    return 0;
}

static int set_size(const struct key_def *k, void *base, const char *text, char *why, size_t len)
{
    char rule[96], lo[24], hi[24];
    unsigned long long v;

    if (parse_size(text, &v) < 0 || v < (unsigned long long)k->min ||
        v > (unsigned long long)k->max || v > SIZE_MAX) {
        snprintf(rule, sizeof(rule), "must be a size in %s..%s, with an optional k, m or g",
                 format_size((unsigned long long)k->min, lo, sizeof(lo)),
                 format_size((unsigned long long)k->max, hi, sizeof(hi)));
        return bad(k, text, why, len, rule);
    }
    *FIELD(base, k, size_t) = (size_t)v;
    return 0;
}

static int set_octal(const struct key_def *k, void *base, const char *text, char *why, size_t len)
{
    size_t n = strspn(text, "01234567");
    long v = strtol(text, NULL, 8);

    if (n == 0 || n > 4 || text[n] != '\0' || v < k->min || v > k->max)
        return bad(k, text, why, len, "must be an octal mode in 0000..0777");
    *FIELD(base, k, int) = (int)v;
    return 0;
}

static int set_enum(const struct key_def *k, void *base, const char *text, char *why, size_t len)
{
    char rule[128] = "must be one of";

    for (const char *const *c = k->choices; *c != NULL; c++)
        if (strcasecmp(text, *c) == 0)
            return store_text(k, base, *c, why, len);
    for (const char *const *c = k->choices; *c != NULL; c++)
        snprintf(rule + strlen(rule), sizeof(rule) - strlen(rule), "%s %s",
                 c == k->choices ? "" : ",", *c);
    return bad(k, text, why, len, rule);
}

static int set_hostport(const struct key_def *k, void *base, const char *text, char *why,
                        size_t len)
{
    char host[HOST_MAX];
    int port;

    if (zos_conf_split_hostport(text, host, sizeof(host), &port) < 0)
        return bad(k, text, why, len, "must be host:port with a port in 1..65535");
    return store_text(k, base, text, why, len);
}

static int set_noderef(const struct key_def *k, void *base, const char *text, char *why, size_t len)
{
    if (node_name_error(text) != NULL)
        return bad(k, text, why, len, "must be a node name");
    return store_text(k, base, text, why, len);
}

/* "AB:cd:..." -> 32 bytes; -1 unless exactly 64 hex digits. */
static int parse_sha256(const char *s, unsigned char out[32])
{
    size_t n = 0;

    for (; *s != '\0'; s++) {
        int d = hex_digit(*s);
        if (*s == ':')
            continue;
        if (d < 0 || n >= 64)
            return -1;
        out[n / 2] = (unsigned char)(n % 2 == 0 ? d << 4 : out[n / 2] | d);
        n++;
    }
    return n == 64 ? 0 : -1;
}

static int set_verify(const struct key_def *k, void *base, const char *text, char *why, size_t len)
{
    struct zos_node_conf *n = base;
    enum zos_tls_verify mode = ZOS_TLS_VERIFY_NONE;
    unsigned char digest[32];
    char *ca = NULL;

    if (strncasecmp(text, "ca:", 3) == 0) {
        if (text[3] == '\0' || strlen(text + 3) >= PATH_MAX || has_control(text + 3))
            return bad(k, text, why, len, "ca: needs a file name");
        if ((ca = strdup(text + 3)) == NULL)
            return out_of_memory(why, len);
        mode = ZOS_TLS_VERIFY_CA;
    } else if (strncasecmp(text, "sha256:", 7) == 0) {
        if (parse_sha256(text + 7, digest) < 0)
            return bad(k, text, why, len, "sha256: needs 64 hex digits (':' allowed)");
        memcpy(n->verify_sha256, digest, sizeof(digest));
        mode = ZOS_TLS_VERIFY_SHA256;
    } else if (strcasecmp(text, "none") != 0) {
        return bad(k, text, why, len, "must be none, ca:FILE or sha256:HEX");
    }
    free(n->verify_ca);
    n->verify_ca = ca;
    n->verify = mode;
    return 0;
}

static const char *get_text(const struct key_def *k, const void *base, char *buf, size_t len)
{
    return *CONST_FIELD(base, k, char *);
}

static const char *get_bool(const struct key_def *k, const void *base, char *buf, size_t len)
{
    return *CONST_FIELD(base, k, bool) ? "true" : "false";
}

static const char *get_int(const struct key_def *k, const void *base, char *buf, size_t len)
{
    snprintf(buf, len, "%d", *CONST_FIELD(base, k, int));
    return buf;
}

static const char *get_count(const struct key_def *k, const void *base, char *buf, size_t len)
{
    snprintf(buf, len, "%zu", *CONST_FIELD(base, k, size_t));
    return buf;
}

static const char *get_size(const struct key_def *k, const void *base, char *buf, size_t len)
{
    return format_size(*CONST_FIELD(base, k, size_t), buf, len);
}

static const char *get_octal(const struct key_def *k, const void *base, char *buf, size_t len)
{
    snprintf(buf, len, "%04o", (unsigned)*CONST_FIELD(base, k, int));
    return buf;
}

static const char *get_verify(const struct key_def *k, const void *base, char *buf, size_t len)
{
    const struct zos_node_conf *n = base;

    size_t o;

    if (n->verify == ZOS_TLS_VERIFY_NONE)
        return "none";
    if (n->verify == ZOS_TLS_VERIFY_CA) {
        snprintf(buf, len, "ca:%s", n->verify_ca);
        return buf;
    }
    o = (size_t)snprintf(buf, len, "sha256:");
    for (size_t i = 0; i < 32 && o + 3 <= len; i++, o += 2)
        snprintf(buf + o, len - o, "%02x", n->verify_sha256[i]);
    return buf;
}

struct type_ops {
    int (*set)(const struct key_def *k, void *base, const char *text, char *why, size_t len);
    const char *(*get)(const struct key_def *k, const void *base, char *buf, size_t len);
    bool is_text; /* the field is a char * this module owns */
};

static const struct type_ops types[] = {
    [KT_STRING] = {set_string, get_text, true},     [KT_SECRET] = {set_string, get_text, true},
    [KT_BOOL] = {set_bool, get_bool, false},        [KT_INT] = {set_int, get_int, false},
    [KT_COUNT] = {set_count, get_count, false},     [KT_SIZE] = {set_size, get_size, false},
    [KT_OCTAL] = {set_octal, get_octal, false},     [KT_ENUM] = {set_enum, get_text, true},
    [KT_HOSTPORT] = {set_hostport, get_text, true}, [KT_NODEREF] = {set_noderef, get_text, true},
    [KT_VERIFY] = {set_verify, get_verify, false},
};

static int check_host(const struct key_def *k, const char *text, char *why, size_t len)
{
    if (*text == '\0' || strpbrk(text, " \t") != NULL)
        return bad(k, text, why, len, "must be a host name or an IP address");
    return 0;
}

static int check_sun_path(const struct key_def *k, const char *text, char *why, size_t len)
{
    struct sockaddr_un sun;

    if (strlen(text) >= sizeof(sun.sun_path))
        return bad(k, text, why, len, "path too long for a unix socket");
    return 0;
}

/* Sets key K of BASE from TEXT; NULL means the default, and an empty text
 * unsets a key that has no default.  Nothing changes on error. */
static int apply(const struct key_def *k, void *base, const char *text, char *why, size_t len)
{
    if (text == NULL)
        text = k->def != NULL ? k->def : "";
    if (*text == '\0' && k->def == NULL) {
        free_text(k, FIELD(base, k, char *));
        return 0;
    }
    if (k->check != NULL && k->check(k, text, why, len) < 0)
        return -1;
    return types[k->type].set(k, base, text, why, len);
}

static const struct key_def *find_key(enum sect_kind sect, const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (keys[i].sect == sect && strcasecmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

static size_t key_index(enum sect_kind sect, const char *name)
{
    return (size_t)(find_key(sect, name) - keys);
}

static int set_defaults(enum sect_kind sect, void *base)
{
    char why[WHY_MAX];

    for (size_t i = 0; i < NKEYS; i++)
        if (keys[i].sect == sect && apply(&keys[i], base, NULL, why, sizeof(why)) < 0)
            return -1;
    return 0;
}

static void free_fields(enum sect_kind sect, void *base)
{
    for (size_t i = 0; i < NKEYS; i++) {
        if (keys[i].sect == sect && types[keys[i].type].is_text)
            free_text(&keys[i], FIELD(base, &keys[i], char *));
        else if (keys[i].sect == sect && keys[i].type == KT_VERIFY)
            free(((struct zos_node_conf *)base)->verify_ca);
    }
}

/* ---- the config object ---- */

static void node_free_fields(struct zos_node_conf *n)
{
    free_fields(SECT_NODE, n);
    free(n->name);
}

static int node_init(struct zos_node_conf *n, const char *name)
{
    memset(n, 0, sizeof(*n));
    if ((n->name = strdup(name)) == NULL || set_defaults(SECT_NODE, n) < 0) {
        node_free_fields(n);
        return -1;
    }
    return 0;
}

static struct zos_node_conf *add_node(struct zos_conf *c, const char *name)
{
    if (c->nnodes == c->capnodes) {
        size_t cap = c->capnodes ? c->capnodes * 2 : 8;
        struct zos_node_conf *nodes = realloc(c->nodes, cap * sizeof(*nodes));
        if (nodes == NULL)
            return NULL;
        c->nodes = nodes;
        c->capnodes = cap;
    }
    if (c->index == NULL && (c->index = zos_index_new()) == NULL)
        return NULL;
    struct zos_node_conf *n = &c->nodes[c->nnodes];
    if (node_init(n, name) < 0)
        return NULL;
    if (zos_index_put(c->index, n->name, c->nnodes) != 0) {
        node_free_fields(n);
        return NULL;
    }
    c->nnodes++;
    return n;
}

struct zos_conf *zos_conf_new(void)
{
    struct zos_conf *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    if (set_defaults(SECT_APP, &c->app) < 0 || set_defaults(SECT_PROXY, &c->proxy) < 0) {
        zos_conf_free(c);
        return NULL;
    }
    return c;
}

void zos_conf_free(struct zos_conf *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->nnodes; i++)
        node_free_fields(&c->nodes[i]);
    free(c->nodes);
    zos_index_free(c->index);
    free_fields(SECT_APP, &c->app);
    free_fields(SECT_PROXY, &c->proxy);
    free(c->path);
    free(c);
}

struct zos_node_conf *zos_conf_node(const struct zos_conf *c, const char *name)
{
    size_t i;
    if (c == NULL || name == NULL || !zos_index_get(c->index, name, strlen(name), &i))
        return NULL;
    return &c->nodes[i];
}

struct zos_node_conf *zos_conf_default_node(const struct zos_conf *c)
{
    if (c == NULL)
        return NULL;
    if (c->proxy.default_node != NULL)
        return zos_conf_node(c, c->proxy.default_node);
    if (c->nnodes == 1)
        return &c->nodes[0];
    return zos_conf_node(c, c->app.defaultzos);
}

/* A removed node is no longer anybody's default, so a saved file stays loadable. */
int zos_conf_remove_node(struct zos_conf *c, const char *name)
{
    struct zos_node_conf *n = zos_conf_node(c, name);
    size_t i;
    char why[WHY_MAX];

    if (n == NULL)
        return -1;
    if (c->app.defaultzos != NULL && strcmp(c->app.defaultzos, name) == 0)
        apply(find_key(SECT_APP, "defaultzos"), &c->app, NULL, why, sizeof(why));
    if (c->proxy.default_node != NULL && strcmp(c->proxy.default_node, name) == 0)
        apply(find_key(SECT_PROXY, "default"), &c->proxy, NULL, why, sizeof(why));
    i = (size_t)(n - c->nodes);
    node_free_fields(n);
    memmove(n, n + 1, (c->nnodes - i - 1) * sizeof(*n));
    c->nnodes--;
    zos_index_clear(c->index); /* positions moved: index anew (removal is rare) */
    for (i = 0; i < c->nnodes; i++)
        if (zos_index_put(c->index, c->nodes[i].name, i) != 0)
            return -1;
    return 0;
}

/* ---- loading ---- */

struct load {
    struct zos_conf *c;
    FILE *fp;
    struct errbuf e;
    bool failed;
    int err_line; /* line of the error in e, to tell which of ours and inih's came first */
    int lineno;   /* of raw */
    char *raw;    /* the current line, whole */
    size_t rawcap;
    const char *value;        /* in raw, just after the key's '=' or ':' */
    int sect;                 /* enum sect_kind of the current section, -1 before the first */
    size_t node;              /* index of the current node when sect is SECT_NODE */
    int app_line, proxy_line; /* lines of the [app] and [proxy] headers */
    int app_keys[NKEYS], proxy_keys[NKEYS]; /* line where each key was set, 0: not set */
    int (*node_keys)[NKEYS];                /* the same for each node, parallel to c->nodes */
    size_t cap_keys;                        /* entries allocated in node_keys */
};

__attribute__((format(printf, 2, 3))) static int load_fail(struct load *ld, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vfail(&ld->e, ld->lineno, fmt, ap);
    va_end(ap);
    ld->failed = true;
    ld->err_line = ld->lineno;
    return -1;
}

static int *seen_keys(struct load *ld)
{
    if (ld->sect == SECT_APP)
        return ld->app_keys;
    if (ld->sect == SECT_PROXY)
        return ld->proxy_keys;
    return ld->node_keys[ld->node];
}

/* Line where key IDX of a section was set, 0 when unknown (zos_conf_set). */
static int key_line(const struct load *ld, enum sect_kind sect, size_t node, size_t idx)
{
    if (ld == NULL)
        return 0;
    if (sect == SECT_APP)
        return ld->app_keys[idx];
    if (sect == SECT_PROXY)
        return ld->proxy_keys[idx];
    return ld->node_keys[node][idx];
}

static int open_fixed(struct load *ld, enum sect_kind sect, int *header_line, const char *name)
{
    if (*header_line != 0)
        return load_fail(ld, "duplicate section [%s] (first at line %d)", name, *header_line);
    *header_line = ld->lineno;
    ld->sect = (int)sect;
    return 0;
}

static int open_node(struct load *ld, const char *name)
{
    struct zos_node_conf *n = zos_conf_node(ld->c, name);
    const char *why = node_name_error(name);
    char shown[80];
    int(*lines)[NKEYS];

    if (why != NULL)
        return load_fail(ld, "bad section name [%s]: %s", printable(name, shown, sizeof(shown)),
                         why);
    if (n != NULL)
        return load_fail(ld, "duplicate section [%s] (first at line %d)", name, n->line);
    if (ld->c->nnodes == ld->cap_keys) { /* doubling: 40,000 sections load in linear time */
        size_t cap = ld->cap_keys ? ld->cap_keys * 2 : 8;
        if ((lines = realloc(ld->node_keys, cap * sizeof(*lines))) == NULL)
            return load_fail(ld, "out of memory");
        ld->node_keys = lines;
        ld->cap_keys = cap;
    }
    lines = ld->node_keys;
    memset(lines[ld->c->nnodes], 0, sizeof(*lines));
    if ((n = add_node(ld->c, name)) == NULL)
        return load_fail(ld, "out of memory");
    n->line = ld->lineno;
    ld->node = ld->c->nnodes - 1;
    ld->sect = SECT_NODE;
    return 0;
}

/* "[name]" with optional blanks and a trailing ';' or '#' comment. */
static int open_section(struct load *ld, char *line)
{
    char *end = strchr(line, ']'), *name = line + 1;
    const char *rest;

    if (end == NULL)
        return load_fail(ld, "missing ']' in section header");
    rest = skip_blank(end + 1);
    if (*rest != '\0' && *rest != ';' && *rest != '#')
        return load_fail(ld, "unexpected text after ']'");
    while (end > name && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *end = '\0';
    name += strspn(name, " \t");
    if (strcmp(name, "app") == 0)
        return open_fixed(ld, SECT_APP, &ld->app_line, name);
    if (strcmp(name, "proxy") == 0)
        return open_fixed(ld, SECT_PROXY, &ld->proxy_line, name);
    return open_node(ld, name);
}

/* fgets-style reader for inih; see the top of this file. */
static char *read_line(char *str, int num, void *stream)
{
    struct load *ld = stream;
    ssize_t n;
    char *line, *sep;
    size_t keep;

    if (ld->failed || num < 3)
        return NULL;
    errno = 0;
    if ((n = getline(&ld->raw, &ld->rawcap, ld->fp)) < 0) {
        if (ferror(ld->fp) || errno == ENOMEM) {
            fail(&ld->e, 0, "%s", strerror(errno != 0 ? errno : EIO));
            ld->failed = true;
            ld->err_line = ld->lineno + 1;
        }
        return NULL;
    }
    ld->lineno++;
    while (n > 0 && (ld->raw[n - 1] == '\n' || ld->raw[n - 1] == '\r'))
        ld->raw[--n] = '\0';
    if (strlen(ld->raw) != (size_t)n) {
        load_fail(ld, "NUL byte in line");
        return NULL;
    }
    line = ld->raw;
    if (ld->lineno == 1 && n >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0)
        line += 3; /* UTF-8 byte order mark */
    line += strspn(line, " \t");
    ld->value = NULL;
    keep = 0;
    if (*line == '[') {
        if (open_section(ld, line) < 0)
            return NULL;
    } else if ((sep = strpbrk(line, "=:")) != NULL) {
        ld->value = sep + 1;
        keep = (size_t)(sep - line) + 1;
    } else {
        keep = strlen(line);
    }
    keep = keep < (size_t)num - 2 ? keep : (size_t)num - 2;
    memcpy(str, line, keep);
    memcpy(str + keep, "\n", 2);
    return str;
}

/* A quoted value: \" \\ \' and \xHH are escapes, any other backslash is kept. */
static int parse_quoted(const char *s, char **out, char *why, size_t len)
{
    char *buf = malloc(strlen(s) + 1);
    size_t o = 0;
    const char *p;

    if (buf == NULL)
        return out_of_memory(why, len);
    for (p = s; *p != '\0' && *p != '"'; p++) {
        int hi, lo;
        if (*p == '\\' && (p[1] == '"' || p[1] == '\\' || p[1] == '\''))
            p++;
        else if (*p == '\\' && p[1] == 'x' && (hi = hex_digit(p[2])) >= 0 &&
                 (lo = hex_digit(p[3])) >= 0 && (hi | lo) != 0) {
            buf[o++] = (char)(hi << 4 | lo);
            p += 3;
            continue;
        }
        buf[o++] = *p;
    }
    buf[o] = '\0';
    *out = buf;
    if (*p != '"')
        snprintf(why, len, "unterminated quoted value");
    else if (*(p = skip_blank(p + 1)) != '\0' && *p != ';')
        snprintf(why, len, "unexpected text after the closing quote");
    else
        return 0;
    free(buf);
    *out = NULL;
    return -1;
}

/* The value after the '=': quoted, or up to a ';' that follows a blank (as inih does). */
static int parse_value(const char *v, char **out, char *why, size_t len)
{
    const char *start = skip_blank(v), *p;
    bool was_blank = start > v;

    if (*start == '"')
        return parse_quoted(start + 1, out, why, len);
    for (p = start; *p != '\0' && !(*p == ';' && was_blank); p++)
        was_blank = *p == ' ' || *p == '\t';
    while (p > start && (p[-1] == ' ' || p[-1] == '\t'))
        p--;
    if ((*out = strndup(start, (size_t)(p - start))) == NULL)
        return out_of_memory(why, len);
    return 0;
}

static void *section_base(struct zos_conf *c, int sect, size_t node)
{
    if (sect == SECT_APP)
        return &c->app;
    if (sect == SECT_PROXY)
        return &c->proxy;
    return &c->nodes[node];
}

static const char *section_name(const struct load *ld)
{
    if (ld->sect == SECT_APP)
        return "app";
    if (ld->sect == SECT_PROXY)
        return "proxy";
    return ld->c->nodes[ld->node].name;
}

/* One "key = value" line of the current section. */
static int take_key(struct load *ld, const char *name)
{
    const struct key_def *k;
    char why[WHY_MAX], shown[80], *text = NULL;
    int *seen, rc = -1;

    printable(name, shown, sizeof(shown));
    if (*name == '\0')
        return load_fail(ld, "missing key name before '='");
    if (ld->sect < 0)
        return load_fail(ld, "%s: key outside of any [section]", shown);
    if ((k = find_key((enum sect_kind)ld->sect, name)) == NULL)
        return load_fail(ld, "%s: unknown key in [%s]", shown, section_name(ld));
    seen = &seen_keys(ld)[k - keys];
    if (*seen != 0)
        return load_fail(ld, "%s: duplicate key (first at line %d)", k->name, *seen);
    *seen = ld->lineno;
    if (parse_value(ld->value, &text, why, sizeof(why)) < 0 ||
        apply(k, section_base(ld->c, ld->sect, ld->node), text, why, sizeof(why)) < 0)
        load_fail(ld, "%s: %s", k->name, why);
    else
        rc = 0;
    if (text != NULL)
        explicit_bzero(text, strlen(text));
    free(text);
    return rc;
}

/* inih's handler.  SECTION and VALUE are ignored: read_line() keeps the real ones. */
static int on_key(void *user, const char *section, const char *name, const char *value)
{
    struct load *ld = user;

    return !ld->failed && ld->value != NULL && take_key(ld, name) == 0;
}

/* ---- checks across keys, after loading and after each zos_conf_set ---- */

static int check_ref(const struct zos_conf *c, const struct load *ld, enum sect_kind sect,
                     const char *key, const char *value, const struct errbuf *e)
{
    if (value == NULL || zos_conf_node(c, value) != NULL)
        return 0;
    return fail(e, key_line(ld, sect, 0, key_index(sect, key)), "%s: no node named '%s'", key,
                value);
}

/* The metrics port is neither the proxy's nor a node's. */
static int check_metrics_listen(const struct zos_conf *c, const struct load *ld,
                                const struct errbuf *e)
{
    const char *m = c->proxy.metrics_listen;
    int line = key_line(ld, SECT_PROXY, 0, key_index(SECT_PROXY, "metrics-listen"));
    if (m == NULL)
        return 0;
    if (c->proxy.listen != NULL && same_hostport(m, c->proxy.listen))
        return fail(e, line, "metrics-listen: %s is also the [proxy] listen address", m);
    for (size_t i = 0; i < c->nnodes; i++)
        if (c->nodes[i].listen != NULL && same_hostport(m, c->nodes[i].listen))
            return fail(e, line, "metrics-listen: %s is already used by [%s]", m, c->nodes[i].name);
    return 0;
}

static int check_listens(const struct zos_conf *c, const struct load *ld, const struct errbuf *e)
{
    size_t idx = key_index(SECT_NODE, "listen");

    for (size_t i = 0; i < c->nnodes; i++) {
        const char *l = c->nodes[i].listen, *name = c->nodes[i].name;
        int line = key_line(ld, SECT_NODE, i, idx);
        if (l == NULL)
            continue;
        if (c->proxy.listen != NULL && same_hostport(l, c->proxy.listen))
            return fail(e, line, "listen: %s in [%s] is also the [proxy] listen address", l, name);
        for (size_t j = 0; j < i; j++)
            if (c->nodes[j].listen != NULL && same_hostport(l, c->nodes[j].listen))
                return fail(e, line, "listen: %s in [%s] is already used by [%s]", l, name,
                            c->nodes[j].name);
    }
    return 0;
}

static int check_conf(const struct zos_conf *c, const struct load *ld, const struct errbuf *e)
{
    if (check_ref(c, ld, SECT_APP, "defaultzos", c->app.defaultzos, e) < 0 ||
        check_ref(c, ld, SECT_PROXY, "default", c->proxy.default_node, e) < 0)
        return -1;
    if (check_metrics_listen(c, ld, e) < 0)
        return -1;
    return check_listens(c, ld, e);
}

/* Which of our error and inih's first syntax error (line RC) comes first. */
static int parse_result(struct load *ld, int rc)
{
    if (rc > 0 && (!ld->failed || rc < ld->err_line))
        return fail(&ld->e, rc, "syntax error: expected [section], key = value or a comment");
    if (ld->failed)
        return -1;
    if (rc != 0)
        return fail(&ld->e, 0, "out of memory");
    return 0;
}

struct zos_conf *zos_conf_load(const char *path, char *err, size_t errlen)
{
    struct load ld = {.e = {path, err, errlen}, .sect = -1};
    struct zos_conf *c = NULL, *ret = NULL;

    if (path == NULL) {
        fail(&ld.e, 0, "no config file given");
        goto done;
    }
    if ((ld.fp = fopen(path, "r")) == NULL) {
        fail(&ld.e, 0, "%s", strerror(errno));
        goto done;
    }
    if ((c = ld.c = zos_conf_new()) == NULL || (c->path = strdup(path)) == NULL) {
        fail(&ld.e, 0, "out of memory");
        goto done;
    }
    if (parse_result(&ld, ini_parse_stream(read_line, &ld, on_key, &ld)) < 0 ||
        check_conf(c, &ld, &ld.e) < 0)
        goto done;
    ret = c;
    c = NULL;
done:
    if (ld.fp != NULL)
        fclose(ld.fp);
    if (ld.raw != NULL)
        explicit_bzero(ld.raw, ld.rawcap);
    free(ld.raw);
    free(ld.node_keys);
    zos_conf_free(c);
    return ret;
}

/* ---- zos_conf_set ---- */

static int section_kind(const char *section)
{
    if (strcmp(section, "app") == 0)
        return SECT_APP;
    if (strcmp(section, "proxy") == 0)
        return SECT_PROXY;
    return SECT_NODE;
}

/* The current value of K in BASE as a string to restore it from; NULL: unset. */
static int snapshot(const struct key_def *k, const void *base, char **out)
{
    char buf[PATH_MAX + 16];
    const char *v = types[k->type].get(k, base, buf, sizeof(buf));

    *out = NULL;
    return v == NULL || (*out = strdup(v)) != NULL ? 0 : -1;
}

/* Sets, then runs the load-time checks across keys; a change they reject is undone. */
static int set_checked(struct zos_conf *c, const struct key_def *k, const char *section,
                       const char *value, const struct errbuf *e)
{
    int sect = section_kind(section);
    size_t node = sect == SECT_NODE ? (size_t)(zos_conf_node(c, section) - c->nodes) : 0;
    void *base = section_base(c, sect, node);
    char why[WHY_MAX], *old = NULL;
    int rc = -1;

    if (snapshot(k, base, &old) < 0) {
        fail(e, 0, "out of memory");
        goto done;
    }
    if (apply(k, base, value, why, sizeof(why)) < 0) {
        fail(e, 0, "%s: %s", k->name, why);
        goto done;
    }
    if (check_conf(c, NULL, e) < 0) {
        apply(k, base, old, why, sizeof(why));
        goto done;
    }
    rc = 0;
done:
    if (old != NULL)
        explicit_bzero(old, strlen(old));
    free(old);
    return rc;
}

int zos_conf_set(struct zos_conf *c, const char *section, const char *key, const char *value,
                 char *err, size_t errlen)
{
    struct errbuf e = {NULL, err, errlen};
    const struct key_def *k;
    const char *why;
    char s1[80], s2[80];
    bool created = false;
    int rc;

    if (c == NULL || section == NULL || key == NULL)
        return fail(&e, 0, "no section or key given");
    if ((k = find_key((enum sect_kind)section_kind(section), key)) == NULL)
        return fail(&e, 0, "%s: unknown key in [%s]", printable(key, s1, sizeof(s1)),
                    printable(section, s2, sizeof(s2)));
    if (section_kind(section) == SECT_NODE && (why = node_name_error(section)) != NULL)
        return fail(&e, 0, "bad section name [%s]: %s", printable(section, s1, sizeof(s1)), why);
    if (section_kind(section) == SECT_NODE && zos_conf_node(c, section) == NULL) {
        if (add_node(c, section) == NULL)
            return fail(&e, 0, "out of memory");
        created = true;
    }
    rc = set_checked(c, k, section, value, &e);
    if (rc < 0 && created)
        zos_conf_remove_node(c, section);
    return rc;
}

/* ---- saving ---- */

static bool needs_quotes(const char *v)
{
    size_t n = strlen(v);

    return n == 0 || strpbrk(v, " \t;#\"") != NULL;
}

static void put_value(FILE *f, const char *v)
{
    if (!needs_quotes(v)) {
        fputs(v, f);
        return;
    }
    fputc('"', f);
    for (; *v != '\0'; v++) {
        if (*v == '"' || *v == '\\')
            fputc('\\', f);
        fputc(*v, f);
    }
    fputc('"', f);
}

/* Writes the keys of BASE that differ from DEF (or are always written); returns how many. */
static int put_keys(FILE *f, enum sect_kind sect, const void *base, const void *def, bool dry)
{
    char buf[PATH_MAX + 16], dbuf[PATH_MAX + 16];
    int count = 0;

    for (size_t i = 0; i < NKEYS; i++) {
        const struct key_def *k = &keys[i];
        const char *v, *d;
        if (k->sect != sect || (v = types[k->type].get(k, base, buf, sizeof(buf))) == NULL)
            continue;
        d = types[k->type].get(k, def, dbuf, sizeof(dbuf));
        if (!k->always && d != NULL && strcmp(v, d) == 0)
            continue;
        count++;
        if (dry)
            continue;
        fprintf(f, "%s = ", k->name);
        put_value(f, v);
        fputc('\n', f);
    }
    return count;
}

static int render(const struct zos_conf *c, FILE *f)
{
    struct zos_conf *d = zos_conf_new();
    struct zos_node_conf dn;
    int rc = -1;

    if (d == NULL || node_init(&dn, "default") < 0)
        goto done;
    fputs("[app]\n", f);
    put_keys(f, SECT_APP, &c->app, &d->app, false);
    if (put_keys(f, SECT_PROXY, &c->proxy, &d->proxy, true) > 0) {
        fputs("\n[proxy]\n", f);
        put_keys(f, SECT_PROXY, &c->proxy, &d->proxy, false);
    }
    for (size_t i = 0; i < c->nnodes; i++) {
        fprintf(f, "\n[%s]\n", c->nodes[i].name);
        put_keys(f, SECT_NODE, &c->nodes[i], &dn, false);
    }
    node_free_fields(&dn);
    rc = 0;
done:
    zos_conf_free(d);
    return rc;
}

static int make_parent(const struct errbuf *e)
{
    char *dir = strdup(e->path), *slash;
    int rc = 0;

    if (dir == NULL)
        return fail(e, 0, "out of memory");
    if ((slash = strrchr(dir, '/')) != NULL && slash != dir) {
        *slash = '\0';
        if (zos_mkdir_p(dir, 0700, NULL, 0) < 0)
            rc = fail(e, 0, "cannot create directory %s: %s", dir, strerror(errno));
    }
    free(dir);
    return rc;
}

/* Temp file beside the target, mode 0600 whatever the umask, then rename(2). */
static int write_atomic(const struct errbuf *e, const char *data, size_t len)
{
    char *tmp = NULL;
    int fd, saved = 0, rc = -1;

    if (make_parent(e) < 0)
        goto done;
    if (asprintf(&tmp, "%s.XXXXXX", e->path) < 0) {
        tmp = NULL;
        fail(e, 0, "out of memory");
        goto done;
    }
    if ((fd = mkstemp(tmp)) < 0) {
        fail(e, 0, "cannot write: %s", strerror(errno));
        goto done;
    }
    if (fchmod(fd, 0600) < 0 || zos_write_all(fd, data, len) < 0 || fsync(fd) < 0)
        saved = errno;
    if (close(fd) < 0 && saved == 0)
        saved = errno;
    if (saved == 0 && rename(tmp, e->path) < 0)
        saved = errno;
    if (saved != 0) {
        unlink(tmp);
        fail(e, 0, "cannot write: %s", strerror(saved));
        goto done;
    }
    rc = 0;
done:
    free(tmp);
    return rc;
}

int zos_conf_save(const struct zos_conf *c, const char *path, char *err, size_t errlen)
{
    struct errbuf e = {path != NULL ? path : c != NULL ? c->path : NULL, err, errlen};
    char *data = NULL;
    size_t len = 0;
    FILE *f = NULL;
    int rc = -1;

    if (c == NULL || e.path == NULL) {
        fail(&e, 0, "no file to save the config to");
        goto done;
    }
    if ((f = open_memstream(&data, &len)) == NULL || render(c, f) < 0 || fflush(f) != 0) {
        fail(&e, 0, "out of memory");
        goto done;
    }
    /* A symlinked config (dotfiles) is written where it points, not replaced
     * by a regular file. */
    char *real = realpath(e.path, NULL);
    const char *shown = e.path;
    if (real != NULL)
        e.path = real;
    rc = write_atomic(&e, data, len);
    e.path = shown;
    free(real);
done:
    if (f != NULL)
        fclose(f);
    if (data != NULL)
        explicit_bzero(data, len);
    free(data);
    return rc;
}

/* ---- zos_conf_path ---- */

static const char *env_nonempty(const char *name)
{
    const char *v = getenv(name);

    return v != NULL && *v != '\0' ? v : NULL;
}

/* NULL when the path does not fit BUF or there is no home directory. */
const char *zos_conf_path(const char *opt, char *buf, size_t buflen)
{
    const char *v;
    char pwbuf[ZOS_PWBUF_LEN];
    int n;

    if (opt != NULL)
        n = snprintf(buf, buflen, "%s", opt);
    else if ((v = env_nonempty("ZOS_CONFIG")) != NULL)
        n = snprintf(buf, buflen, "%s", v);
    else if ((v = env_nonempty("XDG_CONFIG_HOME")) != NULL)
        n = snprintf(buf, buflen, "%s/zos.toml", v);
    else if ((v = zos_home_dir(pwbuf, sizeof pwbuf)) != NULL)
        n = snprintf(buf, buflen, "%s/.config/zos.toml", v);
    else
        return NULL;
    return n >= 0 && (size_t)n < buflen ? buf : NULL;
}
