/* util.h -- small helpers shared by the proxy and the CLI. */
#ifndef ZOS_UTIL_H
#define ZOS_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

/* V as JSON text indented by two spaces ("key": value), as the original zos
 * printed it.  Caller frees with free().  NULL on allocation failure. */
char *zos_json_pretty(const cJSON *v);

/* Where ssh host keys of containers are pinned: "zos-known_hosts" beside
 * the config file CONF_PATH (so tests with ZOS_CONFIG in a temp dir keep
 * their pins there too).  Writes BUF. */
void zos_known_hosts_path(const char *conf_path, char *buf, size_t len);

/* A progress bar, shared by SFTP transfers (zos_ssh_bar_progress) and
 * downloads (zos_fetch).  Drawn on OUT only when OUT is a terminal, redrawn
 * in place (at most once per permille, or per tenth of a unit when the total
 * is unknown), the line ended at 100%:
 *   "big.bin              [#########.........]  52%  10.4/20.0 MiB"
 *   "zos.iso                  12.3 MiB"          (total unknown)
 * Zero-initialise it with OUT (and WIDTH) set; one bar per transfer. */
struct zos_bar {
    FILE *out;     /* borrowed; NULL draws nothing */
    int width;     /* cells of the bar; 0: 30 */
    int64_t last;  /* private: last step drawn + 1, 0 before the first */
    bool finished; /* private: the line was ended */
};

/* Draws DONE of TOTAL bytes (TOTAL < 0: unknown) after LABEL (borrowed; its
 * last path component is shown).  DONE >= TOTAL >= 0 draws 100% and ends the
 * line; nothing is drawn after that. */
void zos_bar_draw(struct zos_bar *b, const char *label, int64_t done, int64_t total);
/* Ends a line the bar left open (a transfer that stopped short, or one of
 * unknown size), so that what is printed next starts a line of its own. */
void zos_bar_end(struct zos_bar *b);

/* An index of names (borrowed strings that must outlive it) to numbers:
 * open addressing, so finding one of 40,000 node names costs one hash. */
struct zos_index;
/* NULL when out of memory. */
struct zos_index *zos_index_new(void);
void zos_index_free(struct zos_index *x); /* accepts NULL */
/* Adds NAME -> VALUE (NAME borrowed, NUL-terminated); -1 when out of memory.
 * A name added twice: the later value wins. */
int zos_index_put(struct zos_index *x, const char *name, size_t value);
/* The value of NAME (LEN bytes), if any. */
bool zos_index_get(const struct zos_index *x, const char *name, size_t len, size_t *value);
void zos_index_clear(struct zos_index *x);

/* Secrets (passwords, JWTs) live in memory that core dumps leave out
 * (MADV_DONTDUMP), in arenas mmap'd for them.  zos_secret_dup: a copy of S
 * there, NULL when out of memory.  zos_secret_free: wipes it (the bytes stay
 * reserved until exit; secrets are few and small).  Both accept NULL. */
char *zos_secret_dup(const char *s);
void zos_secret_free(char *s);

/* ---- files, clocks, the home directory ---- */

/* mkdir -p PATH: every missing directory is made with MODE exactly (chmod
 * after mkdir, whatever the umask); existing ones are kept as they are.
 * 0, or -1 with errno (ENOTDIR when a file is in the way, PATH itself
 * included) and, when ERR is not NULL, "<the directory that failed>: <why>". */
int zos_mkdir_p(const char *path, mode_t mode, char *err, size_t errlen);

/* Writes all LEN bytes of BUF to FD, through EINTR and short writes; on a
 * non-blocking FD it waits for room (poll) on EAGAIN.  0, or -1 with errno
 * (EIO when write(2) returned 0). */
int zos_write_all(int fd, const void *buf, size_t len);

/* Milliseconds of CLOCK_MONOTONIC: for deadlines and ages, never dates. */
long long zos_now_ms(void);

/* Sleeps MS milliseconds (through EINTR). */
void zos_sleep_ms(int ms);

/* The user's home directory: $HOME when set and not empty, else the password
 * database's entry for our uid (read with getpwuid_r into BUF, LEN bytes, so
 * threads may call it), else NULL.  The result is $HOME's or lives in BUF.
 * ZOS_PWBUF_LEN bytes hold the largest entries (LDAP, sssd) getpw* gives. */
#define ZOS_PWBUF_LEN 16384
const char *zos_home_dir(char *buf, size_t len);

/* ---- log levels ---- */

/* The levels of the proxy's log (proxy/log.h) and of the config's log-level
 * key (conf.c), one table for both: zos_log_level_names[L] is the name of
 * level L; NULL follows the last (the config's list of choices). */
enum zos_log_level { ZOS_LOG_ERROR, ZOS_LOG_WARN, ZOS_LOG_INFO, ZOS_LOG_DEBUG };
extern const char *const zos_log_level_names[];

/* The level NAME names ("error", "warn", "info" or "debug", any case) into
 * OUT; -1 for anything else. */
int zos_log_level_parse(const char *name, enum zos_log_level *out);

#endif
