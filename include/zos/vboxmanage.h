/* vboxmanage.h -- what VBoxManage prints, parsed: `list vms`, `showvminfo`, `list hostonlyifs`.
 *
 * Pure functions of text: nothing here runs a program (vbox.h does).  The
 * formats are VBoxManage's human-readable ones (core0-protocol.md §9.7), the
 * same the original tool read.
 */
#ifndef ZOS_VBOXMANAGE_H
#define ZOS_VBOXMANAGE_H

#include <stdbool.h>
#include <stddef.h>

/* One line of `VBoxManage list vms`: "name" {uuid}.  Names are kept as
 * VirtualBox prints them (case, spaces). */
struct zos_vboxmanage_vm {
    char *name;
    char uuid[40];
};

struct zos_vboxmanage_list {
    struct zos_vboxmanage_vm *vms;
    size_t n;
};

/* Parses the output of `list vms` into L (zeroed by the caller or cleared);
 * lines that are not "name" {uuid} are skipped.  The name is everything
 * between the first quote and the last '" {', so names with quotes and
 * braces survive.  ZOS_ERR only when out of memory. */
int zos_vboxmanage_parse_list(const char *text, struct zos_vboxmanage_list *l);
/* Frees what L holds and zeroes it. */
void zos_vboxmanage_list_clear(struct zos_vboxmanage_list *l);
/* The VM named NAME (exact match) in L, or NULL.  Borrowed from L. */
const struct zos_vboxmanage_vm *zos_vboxmanage_list_find(const struct zos_vboxmanage_list *l,
                                                         const char *name);

/* One NAT forwarding rule of showvminfo:
 *   NIC 1 Rule(0):   name = redis, protocol = tcp, host ip = , host port = 4444, ... */
struct zos_vboxmanage_fwd {
    int nic;
    char name[64];
    char proto[8];
    char host_ip[64];
    int host_port;
    char guest_ip[64];
    int guest_port;
};

struct zos_vboxmanage_info {
    char state[32]; /* "running", "powered off", ... (without "(since ...)") */
    struct zos_vboxmanage_fwd *fwd;
    size_t nfwd;
};

/* Parses showvminfo's human-readable output into I (zeroed or cleared):
 * the "State:" line and every "NIC n Rule(k):" line.  ZOS_ERR only when out
 * of memory. */
int zos_vboxmanage_parse_info(const char *text, struct zos_vboxmanage_info *i);
/* Frees what I holds and zeroes it. */
void zos_vboxmanage_info_clear(struct zos_vboxmanage_info *i);
/* State "running"? */
bool zos_vboxmanage_info_running(const struct zos_vboxmanage_info *i);
/* Running, paused or stuck: a session holds the VM until it is powered off. */
bool zos_vboxmanage_info_needs_poweroff(const struct zos_vboxmanage_info *i);

/* Does TEXT, the output of `list hostonlyifs`, list the interface NAME
 * ("Name:            vboxnet0")? */
bool zos_vboxmanage_lists_iface(const char *text, const char *name);

/* The line of a failed command's output worth quoting in an error, into BUF
 * (LEN bytes), looked for in ERR (its stderr) first, then in OUT: the first
 * line that mentions "error", else the first that is neither blank nor
 * progress ("0%...10%...").  "no output" when neither has one.  Blanks around
 * it are trimmed.  ERR and OUT may be NULL.  qemu and qemu-img failures are
 * quoted the same way. */
void zos_vboxmanage_error_line(const char *err, const char *out, char *buf, size_t len);

#endif
