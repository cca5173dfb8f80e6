/* util.c -- small helpers shared by the proxy and the CLI.
 *
 * zos_json_pretty prints as the original zos did with Nim's json.pretty: two
 * blanks per level, one element per line in arrays too, "{}" and "[]" for
 * empty ones (cJSON_Print keeps arrays on one line and indents with tabs).
 *
 * zos_bar_draw is the one progress bar of the tools (SFTP and downloads).
 */
#include "zos/util.h"

#include <string.h>
#include <sys/mman.h>

#include <event2/buffer.h>

#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <poll.h>
#include <pwd.h>
#include <stdbool.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void put_string(struct evbuffer *b, const char *s)
{
    evbuffer_add(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        switch (*p) {
        case '"':
            evbuffer_add(b, "\\\"", 2);
            break;
        case '\\':
            evbuffer_add(b, "\\\\", 2);
            break;
        case '\b':
            evbuffer_add(b, "\\b", 2);
            break;
        case '\f':
            evbuffer_add(b, "\\f", 2);
            break;
        case '\n':
            evbuffer_add(b, "\\n", 2);
            break;
        case '\r':
            evbuffer_add(b, "\\r", 2);
            break;
        case '\t':
            evbuffer_add(b, "\\t", 2);
            break;
        default:
            if (*p < 0x20)
                evbuffer_add_printf(b, "\\u%04x", *p);
            else
                evbuffer_add(b, p, 1);
        }
    }
    evbuffer_add(b, "\"", 1);
}

/* Integers as integers (cJSON keeps only a double), others in the shortest
 * form that reads back the same. */
static void put_number(struct evbuffer *b, double d)
{
    char buf[64];
    if (!isfinite(d)) {
        evbuffer_add(b, "null", 4);
        return;
    }
    if (d == floor(d) && fabs(d) < 1e19) {
        evbuffer_add_printf(b, "%.0f", d);
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    evbuffer_add(b, buf, strlen(buf));
}

static void indent(struct evbuffer *b, int depth)
{
    evbuffer_add(b, "\n", 1);
    for (int i = 0; i < depth; i++)
        evbuffer_add(b, "  ", 2);
}

static void put_value(struct evbuffer *b, const cJSON *v, int depth)
{
    if (cJSON_IsObject(v) || cJSON_IsArray(v)) {
        bool obj = cJSON_IsObject(v);
        const cJSON *it;
        if (v->child == NULL) {
            evbuffer_add(b, obj ? "{}" : "[]", 2);
            return;
        }
        evbuffer_add(b, obj ? "{" : "[", 1);
        cJSON_ArrayForEach(it, v)
        {
            indent(b, depth + 1);
            if (obj) {
                put_string(b, it->string != NULL ? it->string : "");
                evbuffer_add(b, ": ", 2);
            }
            put_value(b, it, depth + 1);
            if (it->next != NULL)
                evbuffer_add(b, ",", 1);
        }
        indent(b, depth);
        evbuffer_add(b, obj ? "}" : "]", 1);
    } else if (cJSON_IsString(v)) {
        put_string(b, v->valuestring != NULL ? v->valuestring : "");
    } else if (cJSON_IsNumber(v)) {
        put_number(b, v->valuedouble);
    } else if (cJSON_IsBool(v)) {
        evbuffer_add_printf(b, "%s", cJSON_IsTrue(v) ? "true" : "false");
    } else if (cJSON_IsRaw(v) && v->valuestring != NULL) {
        evbuffer_add(b, v->valuestring, strlen(v->valuestring));
    } else {
        evbuffer_add(b, "null", 4);
    }
}

char *zos_json_pretty(const cJSON *v)
{
    struct evbuffer *b = evbuffer_new();
    char *out = NULL;
    if (b == NULL)
        return NULL;
    put_value(b, v, 0);
    size_t len = evbuffer_get_length(b);
    out = malloc(len + 1);
    if (out != NULL) {
        evbuffer_remove(b, out, len);
        out[len] = '\0';
    }
    evbuffer_free(b);
    return out;
}

void zos_known_hosts_path(const char *conf_path, char *buf, size_t len)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", conf_path != NULL ? conf_path : "./zos.toml");
    snprintf(buf, len, "%s/zos-known_hosts", dirname(dir));
}

/* ---- progress bar ------------------------------------------------------- */

static const char *const bar_units[] = {"B", "KiB", "MiB", "GiB", "TiB"};

/* The unit N is best shown in: its index, *SCALE its size in bytes. */
static size_t bar_unit(int64_t n, int64_t *scale)
{
    size_t u = 0;
    *scale = 1;
    while (u + 1 < sizeof(bar_units) / sizeof(bar_units[0]) && n / *scale >= 1024) {
        *scale *= 1024;
        u++;
    }
    return u;
}

static const char *bar_name(const char *label)
{
    const char *slash = label != NULL ? strrchr(label, '/') : NULL;
    if (slash != NULL && slash[1] != '\0')
        return slash + 1;
    return label != NULL ? label : "";
}

/* The amount so far, without a bar: redrawn at each tenth of its unit. */
static void bar_draw_unknown(struct zos_bar *b, const char *name, int64_t done)
{
    int64_t scale;
    size_t u = bar_unit(done, &scale);
    int64_t step = done * 10 / scale;
    if (step + 1 == b->last)
        return;
    b->last = step + 1;
    fprintf(b->out, "\r%-20.20s %8.1f %-3s", name, (double)done / (double)scale, bar_units[u]);
    fflush(b->out);
}

void zos_bar_draw(struct zos_bar *b, const char *label, int64_t done, int64_t total)
{
    int width, permille, cells;
    int64_t scale;
    size_t u;
    const char *name = bar_name(label);

    if (b == NULL || b->out == NULL || b->finished || !isatty(fileno(b->out)))
        return;
    if (total < 0) {
        bar_draw_unknown(b, name, done);
        return;
    }
    permille = total == 0 || done >= total ? 1000 : (int)(done * 1000 / total);
    if (permille + 1 == b->last)
        return;
    b->last = permille + 1;
    width = b->width > 0 && b->width <= 200 ? b->width : 30;
    cells = permille * width / 1000;
    u = bar_unit(total, &scale);
    fprintf(b->out, "\r%-20.20s [", name);
    for (int i = 0; i < width; i++)
        fputc(i < cells ? '#' : '.', b->out);
    fprintf(b->out, "] %3d%%  %.1f/%.1f %s", permille / 10, (double)done / (double)scale,
            (double)total / (double)scale, bar_units[u]);
    if (permille == 1000) {
        fputc('\n', b->out);
        b->finished = true;
    }
    fflush(b->out);
}

void zos_bar_end(struct zos_bar *b)
{
    if (b == NULL || b->out == NULL || b->finished || b->last == 0)
        return;
    fputc('\n', b->out);
    fflush(b->out);
    b->finished = true;
}

/* ---- secrets ---- */

#define VAULT_ARENA (64 * 1024)

struct vault_arena {
    struct vault_arena *next;
    size_t used, size;
    char mem[];
};

static struct vault_arena *vault;

static struct vault_arena *vault_grow(size_t need)
{
    size_t size = need + sizeof(struct vault_arena) > VAULT_ARENA
                      ? need + sizeof(struct vault_arena)
                      : VAULT_ARENA;
    struct vault_arena *a =
        mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (a == MAP_FAILED)
        return NULL;
    madvise(a, size, MADV_DONTDUMP); /* best effort: the process is not dumpable anyway */
    a->next = vault;
    a->used = 0;
    a->size = size - sizeof(*a);
    vault = a;
    return a;
}

char *zos_secret_dup(const char *s)
{
    if (s == NULL)
        return NULL;
    size_t n = strlen(s) + 1;
    struct vault_arena *a = vault;
    if ((a == NULL || a->size - a->used < n) && (a = vault_grow(n)) == NULL)
        return NULL;
    char *p = a->mem + a->used;
    memcpy(p, s, n);
    a->used += n;
    return p;
}

void zos_secret_free(char *s)
{
    if (s != NULL)
        explicit_bzero(s, strlen(s));
}

/* ---- name index ---- */

struct index_slot {
    const char *name; /* NULL: empty */
    size_t len;
    size_t value;
    uint64_t hash;
};

struct zos_index {
    struct index_slot *slots;
    size_t cap, n; /* cap: a power of two, at most half full */
};

/* FNV-1a: names are short and not chosen by an attacker (the config file). */
static uint64_t name_hash(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

struct zos_index *zos_index_new(void)
{
    return calloc(1, sizeof(struct zos_index));
}

void zos_index_free(struct zos_index *x)
{
    if (x != NULL)
        free(x->slots);
    free(x);
}

void zos_index_clear(struct zos_index *x)
{
    if (x->slots != NULL)
        memset(x->slots, 0, x->cap * sizeof(*x->slots));
    x->n = 0;
}

static struct index_slot *index_find(const struct zos_index *x, const char *name, size_t len,
                                     uint64_t h)
{
    size_t i = (size_t)h & (x->cap - 1);
    for (;; i = (i + 1) & (x->cap - 1)) {
        struct index_slot *s = &x->slots[i];
        if (s->name == NULL || (s->hash == h && s->len == len && memcmp(s->name, name, len) == 0))
            return s;
    }
}

static int index_grow(struct zos_index *x)
{
    size_t ncap = x->cap ? x->cap * 2 : 64;
    struct zos_index bigger = {calloc(ncap, sizeof(struct index_slot)), ncap, 0};
    if (bigger.slots == NULL)
        return -1;
    for (size_t i = 0; i < x->cap; i++)
        if (x->slots[i].name != NULL)
            *index_find(&bigger, x->slots[i].name, x->slots[i].len, x->slots[i].hash) = x->slots[i];
    free(x->slots);
    bigger.n = x->n;
    *x = bigger;
    return 0;
}

int zos_index_put(struct zos_index *x, const char *name, size_t value)
{
    size_t len = strlen(name);
    uint64_t h = name_hash(name, len);
    if ((x->n + 1) * 2 > x->cap && index_grow(x) != 0)
        return -1;
    struct index_slot *s = index_find(x, name, len, h);
    if (s->name == NULL)
        x->n++;
    *s = (struct index_slot){name, len, value, h};
    return 0;
}

bool zos_index_get(const struct zos_index *x, const char *name, size_t len, size_t *value)
{
    if (x == NULL || x->cap == 0)
        return false;
    const struct index_slot *s = index_find(x, name, len, name_hash(name, len));
    if (s->name == NULL)
        return false;
    *value = s->value;
    return true;
}

/* ---- files, clocks, the home directory ---- */

/* One directory of a mkdir -p: made with MODE, or there already as a directory. */
static int mkdir_one(const char *dir, mode_t mode)
{
    struct stat st;
    if (mkdir(dir, mode) == 0) {
        (void)chmod(dir, mode); /* the umask took bits away: MODE is what was asked for */
        return 0;
    }
    if (errno != EEXIST)
        return -1;
    if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
        return 0;
    errno = ENOTDIR;
    return -1;
}

int zos_mkdir_p(const char *path, mode_t mode, char *err, size_t errlen)
{
    char *dir = strdup(path);
    int rc = -1;
    if (dir == NULL) {
        if (err != NULL)
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    for (char *p = dir + (dir[0] != '\0');; p++) {
        char saved = *p;
        if (saved != '/' && saved != '\0')
            continue;
        *p = '\0';
        if (mkdir_one(dir, mode) != 0)
            goto done;
        *p = saved;
        if (saved == '\0')
            break;
    }
    rc = 0;
done:
    if (rc != 0 && err != NULL) {
        int saved_errno = errno;
        snprintf(err, errlen, "%s: %s", dir, strerror(saved_errno));
        errno = saved_errno;
    }
    free(dir);
    return rc;
}

int zos_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pf = {.fd = fd, .events = POLLOUT};
            (void)poll(&pf, 1, -1);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

long long zos_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void zos_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

const char *zos_home_dir(char *buf, size_t len)
{
    const char *home = getenv("HOME");
    struct passwd pw, *res = NULL;
    if (home != NULL && *home != '\0')
        return home;
    if (getpwuid_r(getuid(), &pw, buf, len, &res) == 0 && res != NULL && res->pw_dir != NULL &&
        res->pw_dir[0] != '\0')
        return res->pw_dir;
    return NULL;
}

/* ---- log levels ---- */

const char *const zos_log_level_names[] = {
    [ZOS_LOG_ERROR] = "error", [ZOS_LOG_WARN] = "warn",    [ZOS_LOG_INFO] = "info",
    [ZOS_LOG_DEBUG] = "debug", [ZOS_LOG_DEBUG + 1] = NULL,
};

int zos_log_level_parse(const char *name, enum zos_log_level *out)
{
    for (int i = 0; name != NULL && zos_log_level_names[i] != NULL; i++) {
        if (strcasecmp(name, zos_log_level_names[i]) == 0) {
            *out = (enum zos_log_level)i;
            return 0;
        }
    }
    return -1;
}
