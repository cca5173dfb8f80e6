/* log.h -- levelled logging to stderr or a file; secrets never reach it.
 *
 * Libraries (resp, conf, job, link) do not log errors they return; the
 * programs log.  The level is checked before the arguments are evaluated.
 */
#ifndef ZOS_LOG_H
#define ZOS_LOG_H

#include <stdbool.h>

#include "zos/util.h" /* enum zos_log_level, zos_log_level_parse */

extern enum zos_log_level zos_log_level;

/* Logs to PATH (appending) instead of stderr; NULL or "" means stderr. */
int zos_log_open(const char *path);
void zos_log_close(void);

void zos_log_write(enum zos_log_level level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define zos_log(lvl, ...)                                                                          \
    do {                                                                                           \
        if ((lvl) <= zos_log_level)                                                                \
            zos_log_write((lvl), __FILE__, __LINE__, __VA_ARGS__);                                 \
    } while (0)

#define log_error(...) zos_log(ZOS_LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  zos_log(ZOS_LOG_WARN, __VA_ARGS__)
#define log_info(...)  zos_log(ZOS_LOG_INFO, __VA_ARGS__)
#define log_debug(...) zos_log(ZOS_LOG_DEBUG, __VA_ARGS__)

#endif
