/* fetch.h -- download one http or https URL to a file, blocking (for the CLI).
 *
 * zos_fetch runs an event_base of its own until the download ends, so it
 * must not be called from a callback of another loop.  https servers are
 * verified (chain and host name or IP address) against the system's CA
 * store, or against opts->ca_file.  Up to ZOS_FETCH_MAX_REDIRECTS redirects
 * (301, 302, 303, 307, 308; relative Locations too) are followed.
 */
#ifndef ZOS_FETCH_H
#define ZOS_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ZOS_FETCH_TIMEOUT_S     30 /* default inactivity limit */
#define ZOS_FETCH_MAX_REDIRECTS 5

/* Progress of a download: DONE bytes of the body written so far, TOTAL its
 * Content-Length, or -1 when the server sent none.  Called with DONE 0 when
 * the final response's headers arrived, after each piece of the body (DONE
 * never decreases), and on success last with DONE == TOTAL (TOTAL then being
 * the size, even when it was unknown before).  Non-zero cancels the
 * download. */
typedef int (*zos_fetch_progress_fn)(void *arg, int64_t done, int64_t total);

struct zos_fetch_opts {
    int timeout_s;                  /* inactivity limit: connecting (TLS handshake
                                     * included), and between two reads; 0: 30 */
    const char *ca_file;            /* PEM file of the CAs https servers are verified
                                     * against; NULL: the system's CA store */
    bool insecure;                  /* https without any certificate check */
    zos_fetch_progress_fn progress; /* NULL: zos_bar on stderr (util.h), drawn only
                                     * when stderr is a terminal */
    void *progress_arg;
};

/* Downloads URL (http:// or https://) to PATH: the body is streamed to
 * "PATH.part", which is renamed to PATH once the body is complete (as long as
 * Content-Length said, when it said).  On any failure -- bad URL, connection,
 * TLS, a status other than 2xx after redirects, timeout, a short body, a
 * write error, cancellation -- PATH.part is removed and PATH is left as it
 * was, and ERR (ERRLEN bytes) says why, naming the URL: "https://h/x: TLS:
 * certificate verify failed (unable to get local issuer certificate)",
 * "http://h/x: HTTP 404 Not Found".  OPTS may be NULL (defaults); every
 * pointer is borrowed.  Returns ZOS_OK or ZOS_ERR. */
int zos_fetch(const char *url, const char *path, const struct zos_fetch_opts *opts, char *err,
              size_t errlen);

#endif
