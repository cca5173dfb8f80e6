/* notify.h -- tell a service manager (systemd) how the process is doing.
 *
 * The sd_notify() datagram protocol in a few lines, without libsystemd: each
 * message is one datagram of "KEY=VALUE" lines sent to the AF_UNIX socket named
 * by $NOTIFY_SOCKET (a path, or an abstract name when it starts with '@').
 * Outside a service manager NOTIFY_SOCKET is unset and every call is a no-op,
 * so callers need not know how they were started.
 *
 * The messages systemd's Type=notify (and, from systemd 253, Type=notify-reload)
 * expects of zos-proxy:
 *   READY=1                             once it listens (main.c)
 *   RELOADING=1\nMONOTONIC_USEC=<now>   when a SIGHUP reload starts (zos_notify_reloading)
 *   READY=1                             when that reload ended, applied or refused
 *   STOPPING=1                          on the way out (main.c)
 *   STATUS=<text>                       free text shown by `systemctl status`
 */
#ifndef ZOS_NOTIFY_H
#define ZOS_NOTIFY_H

/* Sends STATE (borrowed; one or more "KEY=VALUE" lines separated by '\n') as one
 * datagram to $NOTIFY_SOCKET.  Returns 0 when sent, and when NOTIFY_SOCKET is unset
 * or empty; -1 with errno set when it could not be sent (EINVAL: NOTIFY_SOCKET is
 * neither an absolute path nor '@name', or is too long; else the socket's error).
 * Never blocks for long: a datagram to a socket whose queue is full fails with
 * EAGAIN.  Safe from any thread; not async-signal-safe (getenv). */
int zos_notify(const char *state);

/* zos_notify("RELOADING=1\nMONOTONIC_USEC=<CLOCK_MONOTONIC now, in µs>"): what
 * systemd wants at the start of a reload (MONOTONIC_USEC is required by
 * Type=notify-reload).  Send "READY=1" when the reload is over, whatever its
 * outcome. */
int zos_notify_reloading(void);

#endif
