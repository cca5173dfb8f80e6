/* util.c -- small helpers of the simulator: time, uuids, files, Go-like JSON. */
#include "sim.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int64_t sim_now_ms(void)
{
    return sim_now_ns() / 1000000;
}

int64_t sim_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void sim_uuid(char out[37])
{
    unsigned char b[16];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {
        for (size_t i = 0; i < sizeof b; i++)
            b[i] = (unsigned char)rand();
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

const char *sim_goerr(int errnum, char *buf, size_t len)
{
    const char *s = strerror_r(errnum, buf, len);
    if (s != buf)
        snprintf(buf, len, "%s", s);
    if (buf[0])
        buf[0] = (char)tolower((unsigned char)buf[0]);
    return buf;
}

char *sim_read_file(const char *path, size_t *lenp)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (len + 1 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    if (lenp)
        *lenp = len;
    return buf;
}

bool sim_read_line(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return false;
    bool ok = fgets(buf, (int)len, f) != NULL;
    fclose(f);
    if (!ok)
        return false;
    size_t n = strlen(buf);
    while (n > 0 && isspace((unsigned char)buf[n - 1]))
        buf[--n] = '\0';
    return true;
}

int sim_mkdirs(const char *path, mode_t mode)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, mode) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(tmp, mode) < 0 && errno != EEXIST)
        return -1;
    struct stat st;
    if (stat(tmp, &st) < 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    int rc = (flag == FTW_DP) ? rmdir(path) : unlink(path);
    return rc < 0 && errno != ENOENT ? -1 : 0;
}

int sim_rmtree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode))
        return unlink(path);
    return nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS);
}

char *sim_json_print(const cJSON *item)
{
    char *raw = cJSON_PrintUnformatted(item);
    if (raw == NULL)
        abort();
    size_t extra = 0;
    for (const char *p = raw; *p; p++)
        if (*p == '<' || *p == '>' || *p == '&')
            extra += 5;
    char *out = malloc(strlen(raw) + extra + 1);
    char *o = out;
    /* Outside strings JSON has none of these, so a flat pass is safe. */
    for (const char *p = raw; *p; p++) {
        if (*p == '<' || *p == '>' || *p == '&') {
            o += sprintf(o, "\\u%04x", (unsigned)*p);
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
    cJSON_free(raw);
    return out;
}

cJSON *sim_json_int(int64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)v);
    return cJSON_CreateRaw(buf);
}

bool sim_json_add_int(cJSON *obj, const char *key, int64_t v)
{
    return cJSON_AddItemToObject(obj, key, sim_json_int(v));
}

static int cmp_keys(const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
    return strcmp(x->string, y->string);
}

cJSON *sim_json_sorted(const cJSON *obj)
{
    if (!cJSON_IsObject(obj))
        return cJSON_CreateNull();
    size_t n = (size_t)cJSON_GetArraySize(obj), i = 0;
    const cJSON **items = calloc(n ? n : 1, sizeof *items);
    const cJSON *it;
    cJSON_ArrayForEach(it, obj)
    {
        items[i++] = it;
    }
    qsort(items, n, sizeof *items, cmp_keys);
    cJSON *out = cJSON_CreateObject();
    for (i = 0; i < n; i++)
        cJSON_AddItemToObject(out, items[i]->string, cJSON_Duplicate(items[i], true));
    free(items);
    return out;
}

const char *sim_json_kind(const cJSON *item)
{
    if (cJSON_IsString(item))
        return "string";
    if (cJSON_IsNumber(item))
        return "number";
    if (cJSON_IsArray(item))
        return "array";
    if (cJSON_IsBool(item))
        return "bool";
    if (cJSON_IsObject(item))
        return "object";
    return "null";
}

cJSON *sim_fail(struct sim_err *e, unsigned code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    e->code = code;
    return NULL;
}

static const char *gotype_name(enum sim_gotype t)
{
    switch (t) {
    case GT_STRING:
        return "string";
    case GT_INT:
        return "int";
    case GT_UINT16:
        return "uint16";
    case GT_UINT32:
        return "uint32";
    case GT_BOOL:
        return "bool";
    case GT_STRMAP:
        return "map[string]string";
    case GT_INTMAP:
        return "map[string]int";
    case GT_STRLIST:
        return "[]string";
    default:
        return "struct";
    }
}

static bool int_fits(const cJSON *v, double lo, double hi)
{
    double d = v->valuedouble;
    return d == (double)(long long)d && d >= lo && d <= hi;
}

/* Whether V (not null) decodes into Go type T; on failure NUM is set when the
 * error names the number ("number -1"). */
static bool value_ok(const cJSON *v, enum sim_gotype t, bool *num)
{
    const cJSON *it;
    *num = false;
    switch (t) {
    case GT_STRING:
        return cJSON_IsString(v);
    case GT_BOOL:
        return cJSON_IsBool(v);
    case GT_INT:
    case GT_UINT16:
    case GT_UINT32:
        if (!cJSON_IsNumber(v))
            return false;
        *num = true;
        if (t == GT_INT)
            return int_fits(v, -9.2e18, 9.2e18);
        return int_fits(v, 0, t == GT_UINT16 ? 65535 : 4294967295.0);
    case GT_STRMAP:
    case GT_INTMAP:
        if (!cJSON_IsObject(v))
            return false;
        cJSON_ArrayForEach(it, v)
        {
            if (cJSON_IsNull(it))
                continue;
            if (t == GT_STRMAP ? !cJSON_IsString(it)
                               : !(cJSON_IsNumber(it) && int_fits(it, -9.2e18, 9.2e18)))
                return false;
        }
        return true;
    case GT_STRLIST:
        if (!cJSON_IsArray(v))
            return false;
        cJSON_ArrayForEach(it, v)
        {
            if (!cJSON_IsString(it) && !cJSON_IsNull(it))
                return false;
        }
        return true;
    case GT_OBJLIST:
        if (!cJSON_IsArray(v))
            return false;
        cJSON_ArrayForEach(it, v)
        {
            if (!cJSON_IsObject(it) && !cJSON_IsNull(it))
                return false;
        }
        return true;
    case GT_OBJECT:
        return cJSON_IsObject(v);
    case GT_ANY:
        return true;
    }
    return true;
}

bool sim_args_check(const cJSON *args, const char *gotype, const struct sim_field *fields,
                    unsigned code, struct sim_err *e)
{
    if (args == NULL || cJSON_IsNull(args))
        return true; /* "null" into a struct leaves it at zero */
    if (!cJSON_IsObject(args)) {
        sim_fail(e, code, "json: cannot unmarshal %s into Go value of type %s", sim_json_kind(args),
                 gotype);
        return false;
    }
    const char *dot = strrchr(gotype, '.');
    const char *sname = dot ? dot + 1 : gotype;
    for (const struct sim_field *f = fields; f && f->key; f++) {
        const cJSON *v = cJSON_GetObjectItem(args, f->key); /* case-insensitive, like Go */
        bool num;
        if (v == NULL || cJSON_IsNull(v) || value_ok(v, f->type, &num))
            continue;
        if (num) {
            char nb[64];
            snprintf(nb, sizeof nb, "%.17g", v->valuedouble);
            sim_fail(e, code,
                     "json: cannot unmarshal number %s into Go struct field %s.%s of type %s", nb,
                     sname, f->key, gotype_name(f->type));
        } else {
            const char *kind = sim_json_kind(v);
            if (f->type == GT_STRMAP || f->type == GT_INTMAP || f->type == GT_STRLIST ||
                f->type == GT_OBJLIST) {
                /* The complaint is about the element when the container fits. */
                bool container = (f->type == GT_STRLIST || f->type == GT_OBJLIST)
                                     ? cJSON_IsArray(v)
                                     : cJSON_IsObject(v);
                if (container) {
                    const cJSON *it;
                    cJSON_ArrayForEach(it, v)
                    {
                        if (!cJSON_IsNull(it))
                            kind = sim_json_kind(it);
                    }
                    sim_fail(e, code,
                             "json: cannot unmarshal %s into Go struct field %s.%s of type %s",
                             kind, sname, f->key,
                             f->type == GT_INTMAP ? "int"
                                                  : (f->type == GT_OBJLIST ? "struct" : "string"));
                    return false;
                }
            }
            sim_fail(e, code, "json: cannot unmarshal %s into Go struct field %s.%s of type %s",
                     kind, sname, f->key, gotype_name(f->type));
        }
        return false;
    }
    return true;
}

const char *sim_arg_str(const cJSON *args, const char *key)
{
    const cJSON *v = cJSON_IsObject(args) ? cJSON_GetObjectItem(args, key) : NULL;
    return cJSON_IsString(v) ? v->valuestring : "";
}

long long sim_arg_int(const cJSON *args, const char *key)
{
    const cJSON *v = cJSON_IsObject(args) ? cJSON_GetObjectItem(args, key) : NULL;
    return cJSON_IsNumber(v) ? (long long)v->valuedouble : 0;
}

bool sim_arg_bool(const cJSON *args, const char *key)
{
    const cJSON *v = cJSON_IsObject(args) ? cJSON_GetObjectItem(args, key) : NULL;
    return cJSON_IsTrue(v);
}
