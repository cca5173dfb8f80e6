/* cmd_fs.c -- filesystem.* builtins (base/builtin/fs.go): uuid fds that
 * expire after 5 minutes idle, base64 blocks of up to 512 KiB. */
#include "sim.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FS_READ_BS (512 * 1024)
#define FS_IDLE_MS (5 * 60 * 1000)

struct fd_entry {
    char id[37];
    int fd;
    int64_t used_ms;
    struct fd_entry *next;
};

static pthread_mutex_t fd_mu = PTHREAD_MUTEX_INITIALIZER;
static struct fd_entry *fds;

/* Closes fds idle for too long.  Caller holds fd_mu. */
static void sweep_locked(void)
{
    int64_t now = sim_now_ms();
    for (struct fd_entry **p = &fds; *p;) {
        if (now - (*p)->used_ms > FS_IDLE_MS) {
            struct fd_entry *dead = *p;
            *p = dead->next;
            close(dead->fd);
            free(dead);
        } else {
            p = &(*p)->next;
        }
    }
}

/* The OS fd of ID (refreshing its expiry), or -1.  Held in use via dup. */
static int fd_get(const char *id)
{
    int fd = -1;
    pthread_mutex_lock(&fd_mu);
    sweep_locked();
    for (struct fd_entry *e = fds; e; e = e->next) {
        if (strcmp(e->id, id) == 0) {
            e->used_ms = sim_now_ms();
            fd = dup(e->fd);
            break;
        }
    }
    pthread_mutex_unlock(&fd_mu);
    return fd;
}

void sim_fs_free_all(void)
{
    pthread_mutex_lock(&fd_mu);
    while (fds) {
        struct fd_entry *e = fds;
        fds = e->next;
        close(e->fd);
        free(e);
    }
    pthread_mutex_unlock(&fd_mu);
}

/* Path as the job sees it: inside a container, under its root. */
static void job_path(const struct sim_job *j, const char *p, char *out, size_t len)
{
    if (j->cdir)
        snprintf(out, len, "%s%s%s", j->cdir, p[0] == '/' ? "" : "/", p);
    else
        snprintf(out, len, "%s", p);
}

static cJSON *path_error(struct sim_err *e, const char *op, const char *path, int err)
{
    char eb[128];
    return sim_fail(e, 500, "%s %s: %s", op, path, sim_goerr(err, eb, sizeof eb));
}

/* Python-style open modes, as fs.go parses them. */
static int parse_mode(const char *m, int *flags, struct sim_err *e)
{
    int rwax = 0, f = 0;
    bool readable = false, writable = false;
    for (const char *c = m; *c; c++) {
        switch (*c) {
        case 'r':
            rwax++;
            readable = true;
            break;
        case 'x':
            rwax++;
            writable = true;
            f |= O_CREAT | O_EXCL;
            break;
        case 'w':
            rwax++;
            writable = true;
            f |= O_CREAT | O_TRUNC;
            break;
        case 'a':
            rwax++;
            writable = true;
            f |= O_CREAT | O_APPEND;
            break;
        case '+':
            readable = writable = true;
            break;
        default:
            sim_fail(e, 500, "unknown mode '%c'", *c);
            return -1;
        }
    }
    if (rwax != 1) {
        sim_fail(e, 500, "rwax modes has to be used once and only once");
        return -1;
    }
    f |= (readable && writable) ? O_RDWR : (writable ? O_WRONLY : O_RDONLY);
    *flags = f;
    return 0;
}

static const struct sim_field open_fields[] = {
    {"file", GT_STRING}, {"mode", GT_STRING}, {"perm", GT_UINT32}, {NULL, GT_ANY}};
static const struct sim_field fd_fields[] = {{"fd", GT_STRING}, {NULL, GT_ANY}};
static const struct sim_field write_fields[] = {
    {"fd", GT_STRING}, {"block", GT_STRING}, {NULL, GT_ANY}};
static const struct sim_field path_fields[] = {{"path", GT_STRING}, {NULL, GT_ANY}};
static const struct sim_field move_fields[] = {
    {"path", GT_STRING}, {"destination", GT_STRING}, {NULL, GT_ANY}};
static const struct sim_field chmod_fields[] = {
    {"path", GT_STRING}, {"mode", GT_UINT32}, {"recursive", GT_BOOL}, {NULL, GT_ANY}};

cJSON *sim_cmd_fs_open(struct sim_job *j, const cJSON *args, struct sim_err *e)
{
    if (!sim_args_check(args, "builtin.FSOpenArgs", open_fields, 500, e))
        return NULL;
    int flags;
    if (parse_mode(sim_arg_str(args, "mode"), &flags, e) < 0)
        return NULL;
    const char *file = sim_arg_str(args, "file");
    char path[4096];
    job_path(j, file, path, sizeof path);
    int fd = open(path, flags | O_CLOEXEC, (mode_t)(sim_arg_int(args, "perm") & 0777));
    if (fd < 0)
        return path_error(e, "open", file, errno);
    struct fd_entry *ent = calloc(1, sizeof *ent);
    sim_uuid(ent->id);
    ent->fd = fd;
    ent->used_ms = sim_now_ms();
    pthread_mutex_lock(&fd_mu);
    ent->next = fds;
    fds = ent;
    pthread_mutex_unlock(&fd_mu);
    return cJSON_CreateString(ent->id);
}

cJSON *sim_cmd_fs_close(struct sim_job *j, const cJSON *args, struct sim_err *e)
{
    if (!sim_args_check(args, "builtin.FSFileDescriptorArgs", fd_fields, 500, e))
        return NULL;
    const char *id = sim_arg_str(args, "fd");
    pthread_mutex_lock(&fd_mu);
    for (struct fd_entry **p = &fds; *p; p = &(*p)->next) {
        if (strcmp((*p)->id, id) == 0) {
            struct fd_entry *dead = *p;
            *p = dead->next;
            close(dead->fd);
            free(dead);
            break;
        }
    }
    pthread_mutex_unlock(&fd_mu);
    return cJSON_CreateNull(); /* unknown fds are fine, as with cache.Delete */
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *base64_encode(const unsigned char *in, size_t len)
{
    char *out = malloc((len + 2) / 3 * 4 + 1), *o = out;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < len)
            v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        *o++ = b64[(v >> 18) & 63];
        *o++ = b64[(v >> 12) & 63];
        *o++ = i + 1 < len ? b64[(v >> 6) & 63] : '=';
        *o++ = i + 2 < len ? b64[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

/* Go's StdEncoding.DecodeString: \r and \n are skipped; other junk fails
 * with "illegal base64 data at input byte N". */
static unsigned char *base64_decode(const char *in, size_t *outlen, long *bad)
{
    size_t n = strlen(in), k = 0, o = 0, pad = 0;
    unsigned char *out = malloc(n / 4 * 3 + 3);
    unsigned v = 0;
    *bad = -1;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (c == '\r' || c == '\n')
            continue;
        const char *p = strchr(b64, c);
        if (c == '=') {
            pad++;
            continue;
        }
        if (p == NULL || c == '\0' || pad) {
            *bad = (long)i;
            free(out);
            return NULL;
        }
        v = v << 6 | (unsigned)(p - b64);
        if (++k == 4) {
            out[o++] = (unsigned char)(v >> 16);
            out[o++] = (unsigned char)(v >> 8);
            out[o++] = (unsigned char)v;
            k = 0;
            v = 0;
        }
    }
    if (k == 1 || (k && k + pad != 4) || (!k && pad)) {
        *bad = (long)n;
        free(out);
        return NULL;
    }
    if (k == 2)
        out[o++] = (unsigned char)(v >> 4);
    else if (k == 3) {
        out[o++] = (unsigned char)(v >> 10);
        out[o++] = (unsigned char)(v >> 2);
    }
    *outlen = o;
    return out;
}

cJSON *sim_cmd_fs_read(struct sim_job *j, const cJSON *args, struct sim_err *e)
{
    if (!sim_args_check(args, "builtin.FSFileDescriptorArgs", fd_fields, 500, e))
        return NULL;
    const char *id = sim_arg_str(args, "fd");
    int fd = fd_get(id);
    if (fd < 0)
        return sim_fail(e, 500, "unknown file description '%s'", id);
    unsigned char *buf = malloc(FS_READ_BS);
    ssize_t n;
    do
        n = read(fd, buf, FS_READ_BS);
    while (n < 0 && errno == EINTR);
    int err = errno;
    close(fd);
    if (n < 0) {
        free(buf);
        char eb[128];
        return sim_fail(e, 500, "read: %s", sim_goerr(err, eb, sizeof eb));
    }
    char *s = base64_encode(buf, (size_t)n);
    free(buf);
    cJSON *out = cJSON_CreateString(s);
    free(s);
    return out;
}

cJSON *sim_cmd_fs_write(struct sim_job *j, const cJSON *args, struct sim_err *e)
{
    if (!sim_args_check(args, "builtin.FSWriteArgs", write_fields, 500, e))
        return NULL;
    const char *id = sim_arg_str(args, "fd");
    int fd = fd_get(id);
    if (fd < 0)
        return sim_fail(e, 500, "unknown file description '%s'", id);
    size_t len = 0;
    long bad;
    unsigned char *data = base64_decode(sim_arg_str(args, "block"), &len, &bad);
    if (data == NULL) {
        close(fd);
        return sim_fail(e, 500, "illegal base64 data at input byte %ld", bad);
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            char eb[128];
            int err = errno;
            free(data);
            close(fd);
            return sim_fail(e, 500, "write: %s", sim_goerr(err, eb, sizeof eb));
        }
        off += (size_t)w;
    }
    free(data);
    close(fd);
    return cJSON_CreateNull();
}

cJSON *sim_cmd_fs_exists(struct sim_job *j, const cJSON *args, struct sim_err *e)
{
    if (!sim_args_check(args, "builtin.FSPathArgs", path_fields, 500, e))
        return NULL;
    char path[4096];
    struct stat st;
    job_path(j, sim_arg_str(args, "path"), path, sizeof path);
    bool missing = stat(path, &st) < 0 && (errno == ENOENT || errno == ENOTDIR);
    return cJSON_CreateBool(!missing);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

cJSON *sim_cmd_fs_list(struct sim_job *j, const cJSON *args, struct sim_err *e)
{
    if (!sim_args_check(args, "builtin.FSPathArgs", path_fields, 500, e))
        return NULL;
    const char *given = sim_arg_str(args, "path");
    char path[4096], full[8192];
    job_path(j, given, path, sizeof path);
    DIR *d = opendir(path);
    if (d == NULL)
        return path_error(e, "open", given, errno);
    size_t n = 0, cap = 16;
    char **names = malloc(cap * sizeof *names);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (n == cap)
            names = realloc(names, (cap *= 2) * sizeof *names);
        names[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_names);
    cJSON *out = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        snprintf(full, sizeof full, "%s/%s", path, names[i]);
        if (lstat(full, &st) == 0) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", names[i]);
            sim_json_add_int(o, "size", st.st_size);
            sim_json_add_int(o, "mode", st.st_mode & 0777);
            cJSON_AddBoolToObject(o, "is_dir", S_ISDIR(st.st_mode));
            cJSON_AddItemToArray(out, o);
        }
        free(names[i]);
    }
    free(names);
    return out;
}

cJSON *sim_cmd_fs_mkdir(struct sim_job *j, const cJSON *args, struct sim_err *e)
{
    if (!sim_args_check(args, "builtin.FSPathArgs", path_fields, 500, e))
        return NULL;
    const char *given = sim_arg_str(args, "path");
    char path[4096];
    job_path(j, given, path, sizeof path);
    if (sim_mkdirs(path, 0755) < 0)
        return path_error(e, "mkdir", given, errno);
    return cJSON_CreateNull();
}

cJSON *sim_cmd_fs_remove(struct sim_job *j, const cJSON *args, struct sim_err *e)
{
    if (!sim_args_check(args, "builtin.FSPathArgs", path_fields, 500, e))
        return NULL;
    const char *given = sim_arg_str(args, "path");
    char path[4096];
    job_path(j, given, path, sizeof path);
    if (sim_rmtree(path) < 0)
        return path_error(e, "unlinkat", given, errno);
    return cJSON_CreateNull();
}

cJSON *sim_cmd_fs_move(struct sim_job *j, const cJSON *args, struct sim_err *e)
{
    if (!sim_args_check(args, "builtin.FSMoveArgs", move_fields, 500, e))
        return NULL;
    const char *from = sim_arg_str(args, "path"), *to = sim_arg_str(args, "destination");
    char a[4096], b[4096], eb[128];
    job_path(j, from, a, sizeof a);
    job_path(j, to, b, sizeof b);
    if (rename(a, b) < 0)
        return sim_fail(e, 500, "rename %s %s: %s", from, to, sim_goerr(errno, eb, sizeof eb));
    return cJSON_CreateNull();
}

static mode_t chmod_mode;

static int chmod_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    chmod(path, chmod_mode); /* errors are skipped, as fs.go's walk does */
    return 0;
}

cJSON *sim_cmd_fs_chmod(struct sim_job *j, const cJSON *args, struct sim_err *e)
{
    static pthread_mutex_t walk_mu = PTHREAD_MUTEX_INITIALIZER;
    if (!sim_args_check(args, "builtin.FSChmodArgs", chmod_fields, 500, e))
        return NULL;
    const char *given = sim_arg_str(args, "path");
    char path[4096];
    job_path(j, given, path, sizeof path);
    mode_t mode = (mode_t)(sim_arg_int(args, "mode") & 0777);
    if (!sim_arg_bool(args, "recursive")) {
        if (chmod(path, mode) < 0)
            return path_error(e, "chmod", given, errno);
        return cJSON_CreateNull();
    }
    pthread_mutex_lock(&walk_mu);
    chmod_mode = mode;
    int rc = nftw(path, chmod_one, 32, FTW_PHYS);
    int err = errno;
    pthread_mutex_unlock(&walk_mu);
    if (rc < 0)
        return path_error(e, "lstat", given, err);
    return cJSON_CreateNull();
}
