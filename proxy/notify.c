/* notify.c -- sd_notify()'s datagram protocol, without libsystemd.
 *
 * A new SOCK_DGRAM socket per message: messages are rare (start, reload, stop),
 * and keeping no descriptor means nothing to inherit or to close.  systemd turns
 * on SO_PASSCRED on its end, so the kernel tells it our PID: no SCM_CREDENTIALS
 * of our own.
 */
#include "notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* $NOTIFY_SOCKET as a socket address: "/path" or "@abstract" (a leading NUL). */
static int notify_addr(const char *path, struct sockaddr_un *sun, socklen_t *len)
{
    size_t n = strlen(path);
    size_t max = sizeof(sun->sun_path) - (path[0] == '/'); /* a path needs room for its NUL */

    memset(sun, 0, sizeof(*sun));
    sun->sun_family = AF_UNIX;
    if ((path[0] != '/' && path[0] != '@') || n < 2 || n > max) {
        errno = EINVAL;
        return -1;
    }
    memcpy(sun->sun_path, path, n);
    if (path[0] == '@')
        sun->sun_path[0] = '\0'; /* abstract: the name is exactly the n bytes */
    else
        n++; /* a path: its terminating NUL counts too */
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    return 0;
}

int zos_notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sun;
    socklen_t sunlen;
    ssize_t sent;

    if (path == NULL || path[0] == '\0')
        return 0;
    if (state == NULL || state[0] == '\0') {
        errno = EINVAL;
        return -1;
    }
    if (notify_addr(path, &sun, &sunlen) != 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    size_t len = strlen(state);
    do
        sent = sendto(fd, state, len, MSG_NOSIGNAL, (struct sockaddr *)&sun, sunlen);
    while (sent < 0 && errno == EINTR);
    int saved = errno;
    close(fd);
    if (sent < 0 || (size_t)sent != len) {
        errno = sent < 0 ? saved : EMSGSIZE;
        return -1;
    }
    return 0;
}

int zos_notify_reloading(void)
{
    struct timespec ts;
    char msg[64];

    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return -1;
    snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
    return zos_notify(msg);
}
