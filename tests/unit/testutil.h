/* testutil.h -- helpers shared by the unit tests: time, files, child processes, ports,
 * a scripted node.
 *
 * Linked into every build/tests/test_* binary (testutil.o).  The helpers
 * report failure by their return value and never assert, so that group
 * setups can use them as well as tests; tu_assert_contains is the exception
 * (a macro: cmocka then names the caller's line).
 */
#ifndef ZOS_TESTUTIL_H
#define ZOS_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

/* snprintf for paths and messages: truncation is harmless in a test (the
 * buffers are far larger than the temporary paths). */
void tu_sfmt(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Milliseconds of the monotonic clock. */
int64_t tu_now_ms(void);
/* Sleeps MS milliseconds. */
void tu_nap_ms(int ms);

/* Whole file, NUL-terminated (the NUL not counted in *LEN; LEN may be NULL);
 * caller frees.  NULL (and *LEN 0) when unreadable. */
char *tu_read_file(const char *path, size_t *len);
/* Creates or replaces PATH with LEN bytes of DATA and gives it MODE.
 * 0, or -1 on any error. */
int tu_write_file(const char *path, const void *data, size_t len, mode_t mode);
/* Whether PATH exists (a dangling link counts). */
bool tu_exists(const char *path);

/* Makes a fresh directory /tmp/zos-test-NAME-XXXXXX and leaves its path in
 * BUF.  BUF, or NULL on error. */
char *tu_mkdtemp(char *buf, size_t len, const char *name);
/* Removes PATH and everything below it, as rm -rf does (links are not
 * followed; no PATH is fine).  0, or -1 when something could not be removed. */
int tu_rm_tree(const char *path);
/* cmocka setup and teardown of a test that wants a temp dir of its own:
 * *STATE becomes its absolute path (a char[PATH_MAX], /tmp/zos-test-unit-*);
 * the teardown removes the tree and frees it.  0, or -1 on error. */
int tu_tmpdir_setup(void **state);
int tu_tmpdir_teardown(void **state);
/* tests/fixtures into DIR (PATH_MAX bytes): $ZOS_FIXTURES, or the one
 * beside the build directory this binary lives in (<repo>/<build>/tests/
 * test_x); ./tests/fixtures, absolute, when PROBE (a file in it) is not
 * accessible there with MODE (access(2)).  0, or -1 with a message on
 * stderr. */
int tu_find_fixtures(char *dir, const char *probe, int mode);

/* Runs ARGV quietly (stdin, stdout and stderr on /dev/null) and waits for
 * it; its exit status, -1 if it could not run or died of a signal. */
int tu_run(const char *const argv[]);
/* Starts ARGV in DIR (NULL: here) with stdin on /dev/null and stdout and
 * stderr appended to LOG (NULL: /dev/null); it dies with the test
 * (PR_SET_PDEATHSIG).  Its PID, or -1. */
pid_t tu_spawn(const char *const argv[], const char *dir, const char *log);
/* Stops *PID (SIGTERM, SIGKILL after 5 s), reaps it and sets *PID to 0;
 * nothing when *PID <= 0. */
void tu_stop(pid_t *pid);

/* Reads FD (a pty master, a pipe) until EOF, EIO (every slave of the pty
 * closed) or 10 s of quiet, into BUF (CAP bytes, NUL-terminated); what does
 * not fit is dropped, the last bytes kept. */
struct tu_drain {
    int fd;
    char *buf;
    size_t cap;
    size_t len; /* out: what BUF holds */
};
/* The drain as a pthread start routine: ARG is a struct tu_drain. */
void *tu_drain_thread(void *arg);
/* The drain in this thread; the length BUF holds. */
size_t tu_drain(int fd, char *buf, size_t cap);

/* How many descriptors below 1024 are open: a test that counts them at
 * start and at the end finds what leaked. */
int tu_count_fds(void);

/* A loopback port nothing listens on (bound, then closed), or -1. */
int tu_free_port(void);
/* Whether something accepts connections on 127.0.0.1:PORT. */
bool tu_port_open(int port);

/* LEN pseudo-random bytes into BUF, the same every run (xorshift). */
void tu_fill_random(void *buf, size_t len);

/* ---- a scripted node: the far end of a link, in this process ----
 *
 * A peer owns one bufferevent (an end of a bufferevent_pair, or an accepted
 * socket) and parses the RESP requests that arrive on it.  Each request is
 * recorded, its arguments joined by single spaces ("SELECT 3"), and handed
 * to FN (NULL: recorded only); whatever the test writes with tu_peer_write
 * goes back, byte for byte. */
struct bufferevent;
struct event_base;
struct tu_peer;
typedef void (*tu_peer_fn)(void *arg, struct tu_peer *p, size_t argc, char **argv,
                           const size_t *lens);
/* Takes BEV (freed with the peer) and enables reading on it.  NULL when out of memory. */
struct tu_peer *tu_peer_new(struct bufferevent *bev, tu_peer_fn fn, void *arg);
void tu_peer_free(struct tu_peer *p); /* accepts NULL */
void tu_peer_write(struct tu_peer *p, const void *bytes, size_t len);
void tu_peer_say(struct tu_peer *p, const char *text); /* tu_peer_write of strlen(text) */
/* Hangs up: the other end reads EOF (the peer is still to be freed). */
void tu_peer_close(struct tu_peer *p);
/* Requests received so far, and request I (NULL past the end). */
size_t tu_peer_count(const struct tu_peer *p);
const char *tu_peer_cmd(const struct tu_peer *p, size_t i);
/* The peer's bufferevent (for bufferevent_disable/enable of its reading). */
struct bufferevent *tu_peer_bev(struct tu_peer *p);

/* A bufferevent_pair with deferred callbacks on BASE: *LINK_END is for the
 * code under test, the other end becomes a peer (FN, ARG as tu_peer_new). */
struct tu_peer *tu_peer_pair(struct event_base *base, struct bufferevent **link_end, tu_peer_fn fn,
                             void *arg);

/* Runs BASE until DONE(ARG) is true; false if 30 s went by first (a guard
 * against hangs, never a measure). */
bool tu_loop_until(struct event_base *base, bool (*done)(void *arg), void *arg);
/* Runs BASE until nothing more is ready to run now (deferred callbacks,
 * data moved between the ends of a pair). */
void tu_loop_settle(struct event_base *base);

/* Fails the test unless HAY (may be NULL) contains NEEDLE.  Needs <cmocka.h>. */
#define tu_assert_contains(hay, needle)                                                            \
    do {                                                                                           \
        const char *tu_hay_ = (hay), *tu_needle_ = (needle);                                       \
        if (tu_hay_ == NULL || strstr(tu_hay_, tu_needle_) == NULL)                                \
            fail_msg("\"%s\" does not contain \"%s\"", tu_hay_ ? tu_hay_ : "(null)", tu_needle_);  \
    } while (0)

#endif
