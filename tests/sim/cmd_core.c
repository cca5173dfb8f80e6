/* cmd_core.c -- builtins of base/builtin and apps/core0/builtin: core.ping,
 * core.state, job.*, info.* (real host data, gopsutil shapes), disk.list. */
#include "sim.h"

#include <dirent.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

cJSON *sim_cmd_ping(struct sim_job *j, const cJSON *args, struct sim_err *e)
{
    char buf[256];
    snprintf(buf, sizeof buf, "PONG Version: %s @Revision: %s", sim.branch, sim.revision);
    return cJSON_CreateString(buf);
}

cJSON *sim_cmd_info_version(struct sim_job *j, const cJSON *args, struct sim_err *e)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "branch", sim.branch);
    cJSON_AddStringToObject(o, "revision", sim.revision);
    cJSON_AddBoolToObject(o, "dirty", false);
    return o;
}

void sim_proc_stats(pid_t pid, int64_t *rss, int64_t *vms)
{
    char path[64];
    long long size = 0, res = 0;
    *rss = *vms = 0;
    if (pid <= 0)
        return;
    snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return;
    if (fscanf(f, "%lld %lld", &size, &res) == 2) {
        long page = sysconf(_SC_PAGESIZE);
        *vms = size * page;
        *rss = res * page;
    }
    fclose(f);
}

static cJSON *stats_object(pid_t pid)
{
    int64_t rss, vms;
    sim_proc_stats(pid, &rss, &vms);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "cpu", sim_json_int(0));
    sim_json_add_int(o, "rss", rss);
    sim_json_add_int(o, "vms", vms);
    sim_json_add_int(o, "swap", 0);
    return o;
}

cJSON *sim_cmd_state(struct sim_job *j, const cJSON *args, struct sim_err *e)
{
    return stats_object(getpid());
}

/* ---- job.* ---- */

struct list_ctx {
    const char *id; /* filter, NULL for all */
    unsigned container;
    cJSON *out;
};

static void list_one(struct sim_job *j, void *arg)
{
    struct list_ctx *c = arg;
    if (j->container != c->container || (c->id && strcmp(c->id, j->id) != 0))
        return;
    pid_t pid = j->pgid;
    cJSON *o = stats_object(pid);
    sim_json_add_int(o, "starttime", j->start_ms);
    cJSON *cmd = cJSON_CreateObject();
    cJSON_AddStringToObject(cmd, "id", j->id);
    cJSON_AddStringToObject(cmd, "command", j->command);
    cJSON_AddItemToObject(cmd, "arguments",
                          j->args ? cJSON_Duplicate(j->args, true) : cJSON_CreateNull());
    cJSON_AddStringToObject(cmd, "queue", j->queue);
    cJSON_AddBoolToObject(cmd, "stream", j->stream);
    cJSON_AddItemToObject(cmd, "tags",
                          j->tags ? cJSON_Duplicate(j->tags, true) : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "cmd", cmd);
    sim_json_add_int(o, "pid", pid);
    cJSON_AddItemToArray(c->out, o);
}

static const struct sim_field job_fields[] = {
    {"id", GT_STRING}, {"signal", GT_INT}, {NULL, GT_ANY}};

cJSON *sim_cmd_job_list(struct sim_job *j, const cJSON *args, struct sim_err *e)
{
    if (!sim_args_check(args, "builtin.jobArguments", job_fields, 500, e))
        return NULL;
    const char *id = sim_arg_str(args, "id");
    struct list_ctx c = {id[0] ? id : NULL, j->container, cJSON_CreateArray()};
    sim_jobs_visit(list_one, &c);
    if (c.id && cJSON_GetArraySize(c.out) == 0) {
        cJSON_Delete(c.out);
        return sim_fail(e, 500, "Process with id '%s' doesn't exist", id);
    }
    return c.out;
}

cJSON *sim_cmd_job_kill(struct sim_job *j, const cJSON *args, struct sim_err *e)
{
    if (!sim_args_check(args, "builtin.jobKillArguments", job_fields, 500, e))
        return NULL;
    int sig = (int)sim_arg_int(args, "signal");
    if (sig <= 0 || sig >= 65)
        sig = SIGTERM;
    return cJSON_CreateBool(sim_jobs_signal(sim_arg_str(args, "id"), j->container, sig));
}

cJSON *sim_cmd_job_unschedule(struct sim_job *j, const cJSON *args, struct sim_err *e)
{
    if (!sim_args_check(args, "builtin.jobArguments", job_fields, 500, e))
        return NULL;
    return cJSON_CreateBool(sim_jobs_unschedule(sim_arg_str(args, "id"), j->container));
}

struct killall_ctx {
    const struct sim_job *self;
};

static void kill_other(struct sim_job *j, void *arg)
{
    struct killall_ctx *c = arg;
    if (j == c->self || j->container != c->self->container)
        return;
    pthread_mutex_lock(&j->mu);
    if (j->pgid > 0)
        kill(-j->pgid, SIGTERM);
    pthread_mutex_unlock(&j->mu);
}

cJSON *sim_cmd_job_killall(struct sim_job *j, const cJSON *args, struct sim_err *e)
{
    struct killall_ctx c = {j};
    sim_jobs_visit(kill_other, &c);
    return cJSON_CreateBool(true);
}

/* ---- info.cpu (gopsutil cpu.InfoStat per logical CPU) ---- */

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n'))
        s[--n] = '\0';
    return s;
}

struct cpu_fields {
    long long cpu, stepping, cores, cache;
    char vendor[64], family[16], model[16], physical[16], core[16], name[128], microcode[32];
    double mhz;
    char *flags;
};

static cJSON *cpu_object(const struct cpu_fields *f)
{
    cJSON *o = cJSON_CreateObject();
    sim_json_add_int(o, "cpu", f->cpu);
    cJSON_AddStringToObject(o, "vendorId", f->vendor);
    cJSON_AddStringToObject(o, "family", f->family);
    cJSON_AddStringToObject(o, "model", f->model);
    sim_json_add_int(o, "stepping", f->stepping);
    cJSON_AddStringToObject(o, "physicalId", f->physical);
    cJSON_AddStringToObject(o, "coreId", f->core);
    sim_json_add_int(o, "cores", f->cores);
    cJSON_AddStringToObject(o, "modelName", f->name);
    cJSON_AddNumberToObject(o, "mhz", f->mhz);
    sim_json_add_int(o, "cacheSize", f->cache);
    cJSON *flags = cJSON_CreateArray();
    if (f->flags) {
        char *save = NULL;
        for (char *t = strtok_r(f->flags, " ", &save); t; t = strtok_r(NULL, " ", &save))
            cJSON_AddItemToArray(flags, cJSON_CreateString(t));
    }
    cJSON_AddItemToObject(o, "flags", flags);
    cJSON_AddStringToObject(o, "microcode", f->microcode);
    return o;
}

static void cpu_field(struct cpu_fields *f, const char *k, char *v)
{
    if (!strcmp(k, "vendor_id"))
        snprintf(f->vendor, sizeof f->vendor, "%s", v);
    else if (!strcmp(k, "cpu family"))
        snprintf(f->family, sizeof f->family, "%s", v);
    else if (!strcmp(k, "model"))
        snprintf(f->model, sizeof f->model, "%s", v);
    else if (!strcmp(k, "model name"))
        snprintf(f->name, sizeof f->name, "%s", v);
    else if (!strcmp(k, "stepping"))
        f->stepping = atoll(v);
    else if (!strcmp(k, "physical id"))
        snprintf(f->physical, sizeof f->physical, "%s", v);
    else if (!strcmp(k, "core id"))
        snprintf(f->core, sizeof f->core, "%s", v);
    else if (!strcmp(k, "cpu cores"))
        f->cores = atoll(v);
    else if (!strcmp(k, "cpu MHz"))
        f->mhz = atof(v);
    else if (!strcmp(k, "cache size"))
        f->cache = atoll(v);
    else if (!strcmp(k, "microcode"))
        snprintf(f->microcode, sizeof f->microcode, "%s", v);
    else if (!strcmp(k, "flags")) {
        free(f->flags);
        f->flags = strdup(v);
    }
}

cJSON *sim_cmd_info_cpu(struct sim_job *j, const cJSON *args, struct sim_err *e)
{
    char *text = sim_read_file("/proc/cpuinfo", NULL);
    cJSON *out = cJSON_CreateArray();
    if (text == NULL)
        return out;
    struct cpu_fields f = {.cpu = -1};
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *colon = strchr(line, ':');
        if (colon == NULL)
            continue;
        *colon = '\0';
        char *k = trim(line), *v = trim(colon + 1);
        if (!strcmp(k, "processor")) {
            if (f.cpu >= 0)
                cJSON_AddItemToArray(out, cpu_object(&f));
            free(f.flags);
            f = (struct cpu_fields){.cpu = atoll(v)};
        } else {
            cpu_field(&f, k, v);
        }
    }
    if (f.cpu >= 0)
        cJSON_AddItemToArray(out, cpu_object(&f));
    free(f.flags);
    free(text);
    return out;
}

/* ---- info.mem (gopsutil mem.VirtualMemoryStat) ---- */

static long long meminfo(const char *text, const char *key)
{
    size_t n = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, key, n) == 0 && p[n] == ':')
            return atoll(p + n + 1) * 1024;
    }
    return 0;
}

cJSON *sim_cmd_info_mem(struct sim_job *j, const cJSON *args, struct sim_err *e)
{
    char *t = sim_read_file("/proc/meminfo", NULL);
    if (t == NULL)
        return sim_fail(e, 500, "open /proc/meminfo: no such file or directory");
    long long total = meminfo(t, "MemTotal"), freem = meminfo(t, "MemFree");
    long long buffers = meminfo(t, "Buffers"), cached = meminfo(t, "Cached");
    long long avail = meminfo(t, "MemAvailable");
    long long used = total - freem - buffers - cached;
    cJSON *o = cJSON_CreateObject();
    sim_json_add_int(o, "total", total);
    sim_json_add_int(o, "available", avail);
    sim_json_add_int(o, "used", used);
    cJSON_AddNumberToObject(o, "usedPercent", total ? (double)used / (double)total * 100.0 : 0);
    sim_json_add_int(o, "free", freem);
    sim_json_add_int(o, "active", meminfo(t, "Active"));
    sim_json_add_int(o, "inactive", meminfo(t, "Inactive"));
    sim_json_add_int(o, "wired", 0);
    sim_json_add_int(o, "buffers", buffers);
    sim_json_add_int(o, "cached", cached);
    sim_json_add_int(o, "writeback", meminfo(t, "Writeback"));
    sim_json_add_int(o, "dirty", meminfo(t, "Dirty"));
    sim_json_add_int(o, "writebacktmp", meminfo(t, "WritebackTmp"));
    sim_json_add_int(o, "shared", meminfo(t, "Shmem"));
    sim_json_add_int(o, "slab", meminfo(t, "Slab"));
    sim_json_add_int(o, "pagetables", meminfo(t, "PageTables"));
    sim_json_add_int(o, "swapcached", meminfo(t, "SwapCached"));
    free(t);
    return o;
}

/* ---- info.os (gopsutil host.InfoStat) ---- */

static void os_release(char *id, size_t idlen, char *like, size_t likelen, char *ver, size_t vlen)
{
    char *t = sim_read_file("/etc/os-release", NULL);
    char *save = NULL;
    for (char *l = t ? strtok_r(t, "\n", &save) : NULL; l; l = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(l, '=');
        if (eq == NULL)
            continue;
        *eq = '\0';
        char *v = eq + 1;
        size_t n = strlen(v);
        if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
            v[n - 1] = '\0';
            v++;
        }
        if (!strcmp(l, "ID"))
            snprintf(id, idlen, "%s", v);
        else if (!strcmp(l, "ID_LIKE"))
            snprintf(like, likelen, "%s", v);
        else if (!strcmp(l, "VERSION_ID"))
            snprintf(ver, vlen, "%s", v);
    }
    free(t);
}

static long count_procs(void)
{
    long n = 0;
    DIR *d = opendir("/proc");
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL)
        if (de->d_name[0] >= '0' && de->d_name[0] <= '9')
            n++;
    if (d)
        closedir(d);
    return n;
}

cJSON *sim_cmd_info_os(struct sim_job *j, const cJSON *args, struct sim_err *e)
{
    char host[256] = "", id[64] = "", like[64] = "", ver[128] = "", line[128];
    struct utsname u;
    gethostname(host, sizeof host - 1);
    uname(&u);
    os_release(id, sizeof id, like, sizeof like, ver, sizeof ver);
    if (!strcmp(id, "debian") && sim_read_line("/etc/debian_version", line, sizeof line))
        snprintf(ver, sizeof ver, "%s", line);
    const char *family = id;
    if (!strcmp(id, "debian") || !strcmp(id, "ubuntu") || strstr(like, "debian"))
        family = "debian";
    else if (like[0])
        family = like;
    double up = 0;
    if (sim_read_line("/proc/uptime", line, sizeof line))
        up = atof(line);
    int64_t now = sim_now_ms() / 1000;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "hostname", host);
    sim_json_add_int(o, "uptime", (int64_t)up);
    sim_json_add_int(o, "bootTime", now - (int64_t)up);
    sim_json_add_int(o, "procs", count_procs());
    cJSON_AddStringToObject(o, "os", "linux");
    cJSON_AddStringToObject(o, "platform", id);
    cJSON_AddStringToObject(o, "platformFamily", family);
    cJSON_AddStringToObject(o, "platformVersion", ver);
    cJSON_AddStringToObject(o, "kernelVersion", u.release);
    cJSON_AddStringToObject(o, "virtualizationSystem", "");
    cJSON_AddStringToObject(o, "virtualizationRole", "");
    cJSON_AddStringToObject(o, "hostid", "");
    return o;
}

/* ---- info.nic (gopsutil net.InterfaceStat + speed, carrier, operstate) ---- */

static cJSON *nic_addrs(const struct ifaddrs *all, const char *name)
{
    cJSON *arr = cJSON_CreateArray();
    for (const struct ifaddrs *a = all; a; a = a->ifa_next) {
        if (strcmp(a->ifa_name, name) != 0 || a->ifa_addr == NULL || a->ifa_netmask == NULL)
            continue;
        int fam = a->ifa_addr->sa_family;
        if (fam != AF_INET && fam != AF_INET6)
            continue;
        char ip[INET6_ADDRSTRLEN], buf[INET6_ADDRSTRLEN + 16];
        const unsigned char *m;
        size_t mlen;
        if (fam == AF_INET) {
            inet_ntop(fam, &((struct sockaddr_in *)a->ifa_addr)->sin_addr, ip, sizeof ip);
            m = (const unsigned char *)&((struct sockaddr_in *)a->ifa_netmask)->sin_addr;
            mlen = 4;
        } else {
            inet_ntop(fam, &((struct sockaddr_in6 *)a->ifa_addr)->sin6_addr, ip, sizeof ip);
            m = (const unsigned char *)&((struct sockaddr_in6 *)a->ifa_netmask)->sin6_addr;
            mlen = 16;
        }
        int prefix = 0;
        for (size_t i = 0; i < mlen; i++)
            prefix += __builtin_popcount(m[i]);
        snprintf(buf, sizeof buf, "%s/%d", ip, prefix);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "addr", buf);
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

static cJSON *nic_object(const struct ifaddrs *all, const char *name)
{
    char path[512], line[128];
    cJSON *o = cJSON_CreateObject();
    snprintf(path, sizeof path, "/sys/class/net/%s/mtu", name);
    sim_json_add_int(o, "mtu", sim_read_line(path, line, sizeof line) ? atoll(line) : 0);
    cJSON_AddStringToObject(o, "name", name);
    snprintf(path, sizeof path, "/sys/class/net/%s/address", name);
    bool has = sim_read_line(path, line, sizeof line);
    cJSON_AddStringToObject(o, "hardwareaddr",
                            has && strcmp(line, "00:00:00:00:00:00") != 0 ? line : "");
    snprintf(path, sizeof path, "/sys/class/net/%s/flags", name);
    unsigned long fl = sim_read_line(path, line, sizeof line) ? strtoul(line, NULL, 0) : 0;
    cJSON *flags = cJSON_CreateArray();
    const struct {
        unsigned long bit;
        const char *name;
    } names[] = {{IFF_UP, "up"},
                 {IFF_BROADCAST, "broadcast"},
                 {IFF_LOOPBACK, "loopback"},
                 {IFF_POINTOPOINT, "pointtopoint"},
                 {IFF_MULTICAST, "multicast"}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (fl & names[i].bit)
            cJSON_AddItemToArray(flags, cJSON_CreateString(names[i].name));
    cJSON_AddItemToObject(o, "flags", flags);
    cJSON_AddItemToObject(o, "addrs", nic_addrs(all, name));
    snprintf(path, sizeof path, "/sys/class/net/%s/speed", name);
    long long speed = sim_read_line(path, line, sizeof line) ? atoll(line) : 0;
    sim_json_add_int(o, "speed", (uint32_t)speed); /* Go: uint32(-1) for "unknown" */
    snprintf(path, sizeof path, "/sys/class/net/%s/carrier", name);
    cJSON_AddBoolToObject(o, "carrier",
                          sim_read_line(path, line, sizeof line) && !strcmp(line, "1"));
    snprintf(path, sizeof path, "/sys/class/net/%s/operstate", name);
    cJSON_AddBoolToObject(o, "operstate",
                          sim_read_line(path, line, sizeof line) && !strcmp(line, "up"));
    return o;
}

cJSON *sim_cmd_info_nic(struct sim_job *j, const cJSON *args, struct sim_err *e)
{
    struct ifaddrs *all = NULL;
    getifaddrs(&all);
    struct if_nameindex *ni = if_nameindex();
    cJSON *out = cJSON_CreateArray();
    for (struct if_nameindex *p = ni; p && p->if_index; p++)
        cJSON_AddItemToArray(out, nic_object(all, p->if_name));
    if (ni)
        if_freenameindex(ni);
    if (all)
        freeifaddrs(all);
    return out;
}

/* ---- info.disk (gopsutil disk.Partitions(false)) ---- */

static bool physical_fs(const char *filesystems, const char *fs)
{
    const char *p = filesystems;
    size_t n = strlen(fs);
    while (p && *p) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (strncmp(p, "nodev", 5) != 0) {
            const char *name = p;
            while (name < p + len && (*name == ' ' || *name == '\t'))
                name++;
            if ((size_t)(p + len - name) == n && strncmp(name, fs, n) == 0)
                return true;
        }
        p = end ? end + 1 : NULL;
    }
    return false;
}

cJSON *sim_cmd_info_disk(struct sim_job *j, const cJSON *args, struct sim_err *e)
{
    char *fss = sim_read_file("/proc/filesystems", NULL);
    char *mounts = sim_read_file("/proc/self/mounts", NULL);
    cJSON *out = cJSON_CreateArray();
    char *save = NULL;
    for (char *l = mounts ? strtok_r(mounts, "\n", &save) : NULL; l;
         l = strtok_r(NULL, "\n", &save)) {
        char dev[512], mnt[1024], fs[64], opts[1024];
        if (sscanf(l, "%511s %1023s %63s %1023s", dev, mnt, fs, opts) != 4)
            continue;
        if (!physical_fs(fss, fs))
            continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "device", dev);
        cJSON_AddStringToObject(o, "mountpoint", mnt);
        cJSON_AddStringToObject(o, "fstype", fs);
        cJSON_AddStringToObject(o, "opts", opts);
        cJSON_AddItemToArray(out, o);
    }
    free(fss);
    free(mounts);
    return out;
}

/* ---- disk.list ---- */

static const char *table_name(const cJSON *pttype)
{
    if (!cJSON_IsString(pttype))
        return "";
    if (!strcmp(pttype->valuestring, "dos"))
        return "msdos"; /* parted's word for it */
    return pttype->valuestring;
}

/* Children keep lsblk's raw form with a string size (old lsblk printed strings). */
static void stringify_sizes(cJSON *children)
{
    cJSON *c;
    cJSON_ArrayForEach(c, children)
    {
        cJSON *size = cJSON_GetObjectItemCaseSensitive(c, "size");
        if (cJSON_IsNumber(size)) {
            char buf[32];
            snprintf(buf, sizeof buf, "%.0f", size->valuedouble);
            cJSON_ReplaceItemInObjectCaseSensitive(c, "size", cJSON_CreateString(buf));
        }
        stringify_sizes(cJSON_GetObjectItemCaseSensitive(c, "children"));
    }
}

static cJSON *disk_entry(const cJSON *dev)
{
    cJSON *o = cJSON_Duplicate(dev, true);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(dev, "name");
    const cJSON *sz = cJSON_GetObjectItemCaseSensitive(dev, "size");
    long long size = cJSON_IsNumber(sz) ? (long long)sz->valuedouble
                                        : (cJSON_IsString(sz) ? atoll(sz->valuestring) : 0);
    char path[512], line[64];
    snprintf(path, sizeof path, "/sys/block/%s/queue/logical_block_size",
             cJSON_IsString(name) ? name->valuestring : "");
    long long bs = sim_read_line(path, line, sizeof line) ? atoll(line) : 512;
    /* Go: the outer fields hide lsblk columns of the same name. */
    const char *outer[] = {"start", "end", "size", "blocksize", "table", "free"};
    for (size_t i = 0; i < sizeof outer / sizeof outer[0]; i++)
        cJSON_DeleteItemFromObjectCaseSensitive(o, outer[i]);
    stringify_sizes(cJSON_GetObjectItemCaseSensitive(o, "children"));
    sim_json_add_int(o, "start", 0);
    sim_json_add_int(o, "end", size > 0 ? size - 1 : 0);
    sim_json_add_int(o, "size", size);
    sim_json_add_int(o, "blocksize", bs);
    cJSON_AddStringToObject(o, "table",
                            table_name(cJSON_GetObjectItemCaseSensitive(dev, "pttype")));
    cJSON_AddItemToObject(o, "free", cJSON_CreateArray());
    return o;
}

cJSON *sim_cmd_disk_list(struct sim_job *j, const cJSON *args, struct sim_err *e)
{
    char *argv[] = {"lsblk", "--json", "--output-all", "--bytes", "--exclude", "1,2", NULL};
    int status = 0;
    char *text = sim_capture(argv, &status);
    cJSON *out = cJSON_CreateArray();
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    const cJSON *devs = cJSON_GetObjectItemCaseSensitive(root, "blockdevices");
    const cJSON *d;
    cJSON_ArrayForEach(d, devs)
    {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(d, "type");
        if (cJSON_IsString(type) && !strcmp(type->valuestring, "disk"))
            cJSON_AddItemToArray(out, disk_entry(d));
    }
    cJSON_Delete(root);
    free(text);
    return out;
}
