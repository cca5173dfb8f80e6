/* log.c -- levelled logging: "2026-11-28 18:31:15.123 I message", file:line at debug. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

enum zos_log_level zos_log_level = ZOS_LOG_INFO;
static FILE *log_fp;

int zos_log_open(const char *path)
{
    zos_log_close();
    if (path == NULL || *path == '\0')
        return 0;
    log_fp = fopen(path, "a");
    if (log_fp == NULL)
        return -1;
    setvbuf(log_fp, NULL, _IOLBF, 0);
    return 0;
}

void zos_log_close(void)
{
    if (log_fp != NULL)
        fclose(log_fp);
    log_fp = NULL;
}

void zos_log_write(enum zos_log_level level, const char *file, int line, const char *fmt, ...)
{
    static const char letters[] = "EWID";
    char stamp[32], msg[1024];
    struct timeval tv;
    struct tm tm;
    va_list ap;
    int saved = errno;

    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    FILE *fp = log_fp != NULL ? log_fp : stderr;
    if (zos_log_level >= ZOS_LOG_DEBUG)
        fprintf(fp, "%s.%03d %c %s:%d %s\n", stamp, (int)(tv.tv_usec / 1000), letters[level], file,
                line, msg);
    else
        fprintf(fp, "%s.%03d %c %s\n", stamp, (int)(tv.tv_usec / 1000), letters[level], msg);
    errno = saved;
}
