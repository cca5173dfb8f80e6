/* vboxmanage.c -- parsing what VBoxManage prints: VM lists, VM info, host-only interfaces. */
#include "zos/vboxmanage.h"
#include "zos/zos.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- lines of text ------------------------------------------------------- */

/* The next line of *TEXT (without "\n" or "\r\n") in LINE/LEN; false at the end. */
static bool next_line(const char **text, const char **line, size_t *len)
{
    const char *s = *text;
    if (s == NULL || *s == '\0')
        return false;
    const char *eol = strchr(s, '\n');
    size_t n = eol ? (size_t)(eol - s) : strlen(s);
    *text = eol ? eol + 1 : s + n;
    if (n > 0 && s[n - 1] == '\r')
        n--;
    *line = s;
    *len = n;
    return true;
}

static bool starts_with(const char *s, size_t n, const char *prefix)
{
    size_t p = strlen(prefix);
    return n >= p && memcmp(s, prefix, p) == 0;
}

/* Trims blanks around S/N in place (moves *S, shrinks *N). */
static void trim(const char **s, size_t *n)
{
    while (*n > 0 && (**s == ' ' || **s == '\t')) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
        (*n)--;
}

static void copy_field(char *dst, size_t cap, const char *s, size_t n)
{
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, s, n);
    dst[n] = '\0';
}

/* A progress line of VBoxManage: "0%...10%...100%". */
static bool is_progress(const char *s, size_t n)
{
    return n > 0 && s[0] >= '0' && s[0] <= '9' && memmem(s, n, "%...", 4) != NULL;
}

/* The line of TEXT worth quoting in an error: the first that mentions
 * "error", else the first one with something in it that is not progress. */
static bool pick_line(const char *text, char *buf, size_t len)
{
    const char *line, *it = text;
    size_t n;
    while (next_line(&it, &line, &n)) {
        if (memmem(line, n, "error", 5) != NULL) {
            trim(&line, &n);
            copy_field(buf, len, line, n);
            return true;
        }
    }
    for (it = text; next_line(&it, &line, &n);) {
        trim(&line, &n);
        if (n > 0 && !is_progress(line, n)) {
            copy_field(buf, len, line, n);
            return true;
        }
    }
    return false;
}

void zos_vboxmanage_error_line(const char *err, const char *out, char *buf, size_t len)
{
    if (!pick_line(err, buf, len) && !pick_line(out, buf, len))
        snprintf(buf, len, "no output");
}

/* ---- list vms ------------------------------------------------------------ */

void zos_vboxmanage_list_clear(struct zos_vboxmanage_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->vms[i].name);
    free(l->vms);
    memset(l, 0, sizeof *l);
}

/* One line: "name" {uuid}.  The name is everything between the first quote
 * and the last '" {', so names with quotes and braces survive. */
static int parse_list_line(const char *s, size_t n, struct zos_vboxmanage_list *l)
{
    while (n > 0 && s[n - 1] == ' ')
        n--;
    if (n < 5 || s[0] != '"' || s[n - 1] != '}')
        return ZOS_OK;
    const char *open = memrchr(s, '{', n);
    if (open == NULL || open - s < 3 || open[-1] != ' ' || open[-2] != '"')
        return ZOS_OK;
    size_t ulen = (size_t)(s + n - 1 - (open + 1));
    if (ulen == 0 || ulen >= sizeof l->vms[0].uuid)
        return ZOS_OK;
    struct zos_vboxmanage_vm *vms = realloc(l->vms, (l->n + 1) * sizeof *vms);
    if (vms == NULL)
        return ZOS_ERR;
    l->vms = vms;
    struct zos_vboxmanage_vm *vm = &vms[l->n];
    vm->name = strndup(s + 1, (size_t)(open - 2 - (s + 1)));
    if (vm->name == NULL)
        return ZOS_ERR;
    copy_field(vm->uuid, sizeof vm->uuid, open + 1, ulen);
    l->n++;
    return ZOS_OK;
}

int zos_vboxmanage_parse_list(const char *text, struct zos_vboxmanage_list *l)
{
    const char *line;
    size_t n;
    while (next_line(&text, &line, &n)) {
        if (parse_list_line(line, n, l) != ZOS_OK)
            return ZOS_ERR;
    }
    return ZOS_OK;
}

const struct zos_vboxmanage_vm *zos_vboxmanage_list_find(const struct zos_vboxmanage_list *l,
                                                         const char *name)
{
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->vms[i].name, name) == 0)
            return &l->vms[i];
    }
    return NULL;
}

/* ---- showvminfo ---------------------------------------------------------- */

void zos_vboxmanage_info_clear(struct zos_vboxmanage_info *i)
{
    free(i->fwd);
    memset(i, 0, sizeof *i);
}

bool zos_vboxmanage_info_running(const struct zos_vboxmanage_info *i)
{
    return strncmp(i->state, "running", 7) == 0;
}

bool zos_vboxmanage_info_needs_poweroff(const struct zos_vboxmanage_info *i)
{
    return zos_vboxmanage_info_running(i) || strncmp(i->state, "paused", 6) == 0 ||
           strncmp(i->state, "stuck", 5) == 0;
}

/* One "key = value" of a rule into F. */
static void rule_field(struct zos_vboxmanage_fwd *f, const char *s, size_t n)
{
    const char *eq = memmem(s, n, "=", 1);
    if (eq == NULL)
        return;
    const char *k = s, *v = eq + 1;
    size_t kn = (size_t)(eq - s), vn = n - kn - 1;
    trim(&k, &kn);
    trim(&v, &vn);
    char val[64];
    copy_field(val, sizeof val, v, vn);
    if (kn == 4 && memcmp(k, "name", 4) == 0)
        copy_field(f->name, sizeof f->name, v, vn);
    else if (kn == 8 && memcmp(k, "protocol", 8) == 0)
        copy_field(f->proto, sizeof f->proto, v, vn);
    else if (kn == 7 && memcmp(k, "host ip", 7) == 0)
        copy_field(f->host_ip, sizeof f->host_ip, v, vn);
    else if (kn == 9 && memcmp(k, "host port", 9) == 0)
        f->host_port = atoi(val);
    else if (kn == 8 && memcmp(k, "guest ip", 8) == 0)
        copy_field(f->guest_ip, sizeof f->guest_ip, v, vn);
    else if (kn == 10 && memcmp(k, "guest port", 10) == 0)
        f->guest_port = atoi(val);
}

/* "NIC 1 Rule(0):   name = redis, protocol = tcp, host ip = , host port = 4444, ..." */
static int parse_rule(const char *s, size_t n, struct zos_vboxmanage_info *info)
{
    const char *p = memmem(s, n, "):", 2);
    if (p == NULL)
        return ZOS_OK;
    struct zos_vboxmanage_fwd f;
    memset(&f, 0, sizeof f);
    f.nic = atoi(s + 4);
    const char *end = s + n;
    for (p += 2; p < end;) {
        const char *sep = memmem(p, (size_t)(end - p), ", ", 2);
        const char *fe = sep ? sep : end;
        rule_field(&f, p, (size_t)(fe - p));
        p = sep ? sep + 2 : end;
    }
    struct zos_vboxmanage_fwd *fwd = realloc(info->fwd, (info->nfwd + 1) * sizeof *fwd);
    if (fwd == NULL)
        return ZOS_ERR;
    info->fwd = fwd;
    fwd[info->nfwd++] = f;
    return ZOS_OK;
}

int zos_vboxmanage_parse_info(const char *text, struct zos_vboxmanage_info *i)
{
    const char *line;
    size_t n;
    while (next_line(&text, &line, &n)) {
        if (starts_with(line, n, "State:")) {
            const char *v = line + 6;
            size_t vn = n - 6;
            const char *since = memmem(v, vn, "(since", 6);
            if (since != NULL)
                vn = (size_t)(since - v);
            trim(&v, &vn);
            copy_field(i->state, sizeof i->state, v, vn);
        } else if (starts_with(line, n, "NIC ") && memmem(line, n, " Rule(", 6) != NULL) {
            if (parse_rule(line, n, i) != ZOS_OK)
                return ZOS_ERR;
        }
    }
    return ZOS_OK;
}

/* ---- list hostonlyifs ---------------------------------------------------- */

bool zos_vboxmanage_lists_iface(const char *text, const char *name)
{
    const char *line;
    size_t n;
    while (next_line(&text, &line, &n)) {
        if (!starts_with(line, n, "Name:"))
            continue;
        const char *v = line + 5;
        size_t vn = n - 5;
        trim(&v, &vn);
        if (vn == strlen(name) && memcmp(v, name, vn) == 0)
            return true;
    }
    return false;
}
