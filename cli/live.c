/* live.c -- a streamed job's output on the terminal, written by a thread of
 * its own so that reading the node never waits for the terminal.
 *
 *   record (event loop) --> queue (bytes, in arrival order, stdout and stderr
 *                           interleaved as the job wrote them) --> writer
 *                           thread: write(1 or 2), blocking as long as the
 *                           terminal, a pipe or a pager makes it
 *
 * A slow reader of zos's output (a paused pager, a slow terminal) therefore
 * never makes core0 drop records: they wait here, up to LIVE_MAX_BACKLOG
 * bytes, beyond which node.c pauses the stream reader (core0's list then
 * holds them).  The last records printed on each stream are kept, so that
 * the job result's `streams` (its last 100 lines per stream) can complete
 * an output whose stream stopped early without repeating what was shown.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "cli.h"
#include "zos/zos.h"

#define RING 100 /* records kept per stream: as many chunks as a result's streams keep */

struct chunk {
    struct chunk *next;
    int fd;
    size_t len;
    char data[];
};

struct ring {
    char *text[RING]; /* the last records printed, oldest at head */
    size_t len[RING];
    size_t head, n;
};

struct zos_cli_live {
    pthread_mutex_t mu;
    pthread_cond_t work, drained;
    struct chunk *head, *tail;
    size_t backlog; /* bytes queued, not yet written */
    bool stop;
    bool waiting;   /* the thread sleeps: wake it */
    bool broken[3]; /* fd 1/2 refused a write: what follows for it is dropped */
    pthread_t thread;
    bool running;
    bool printed;
    struct ring rings[2]; /* stdout, stderr */
};

/* ---- the writer thread ---- */

/* Writes the IOV (N entries, all for FD) whole, as a blocking write would. */
static void write_all(struct zos_cli_live *l, int fd, struct iovec *iov, int n)
{
    while (n > 0 && !l->broken[fd]) {
        ssize_t w = writev(fd, iov, n);
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT}; /* a non-blocking fd we were given */
            poll(&pfd, 1, -1);
            continue;
        }
        if ((w < 0 && errno != EINTR) || w == 0)
            l->broken[fd] = true; /* closed (EBADF), a pipe nobody reads with SIGPIPE ignored */
        for (size_t done = w > 0 ? (size_t)w : 0; n > 0 && done > 0;) {
            size_t k = done < iov->iov_len ? done : iov->iov_len;
            iov->iov_base = (char *)iov->iov_base + k;
            iov->iov_len -= k;
            done -= k;
            if (iov->iov_len == 0) {
                iov++;
                n--;
            }
        }
    }
}

/* Writes the chunks from C on, in order, a run of the same fd per writev;
 * frees them.  The number of bytes. */
static size_t write_chunks(struct zos_cli_live *l, struct chunk *c)
{
    struct iovec iov[64];
    size_t total = 0;
    while (c != NULL) {
        struct chunk *run = c;
        int n = 0;
        for (; c != NULL && c->fd == run->fd && n < (int)ZOS_ARRAY_LEN(iov); c = c->next) {
            iov[n].iov_base = c->data;
            iov[n++].iov_len = c->len;
            total += c->len;
        }
        write_all(l, run->fd, iov, n);
        while (run != c) {
            struct chunk *next = run->next;
            free(run);
            run = next;
        }
    }
    return total;
}

/* Takes everything queued at once: one wake-up for many records, one
 * writev for a run of them. */
static void *writer_main(void *arg)
{
    struct zos_cli_live *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        l->waiting = true;
        while (l->head == NULL && !l->stop)
            pthread_cond_wait(&l->work, &l->mu);
        l->waiting = false;
        struct chunk *c = l->head;
        if (c == NULL)
            break;
        l->head = l->tail = NULL;
        pthread_mutex_unlock(&l->mu);
        size_t n = write_chunks(l, c);
        pthread_mutex_lock(&l->mu);
        l->backlog -= n;
        if (l->backlog == 0)
            pthread_cond_broadcast(&l->drained);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

struct zos_cli_live *zos_cli_live_new(void)
{
    struct zos_cli_live *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->work, NULL);
    pthread_cond_init(&l->drained, NULL);
    fflush(stdout); /* what stdio holds goes out before what the thread writes */
    fflush(stderr);
    if (pthread_create(&l->thread, NULL, writer_main, l) != 0) {
        zos_cli_live_free(l);
        return NULL;
    }
    l->running = true;
    return l;
}

static void queue(struct zos_cli_live *l, int fd, const char *text, size_t len)
{
    struct chunk *c = malloc(sizeof(*c) + len);
    if (c == NULL)
        return; /* out of memory: the line is lost, zos goes on */
    c->next = NULL;
    c->fd = fd;
    c->len = len;
    memcpy(c->data, text, len);
    pthread_mutex_lock(&l->mu);
    if (l->tail != NULL)
        l->tail->next = c;
    else
        l->head = c;
    l->tail = c;
    l->backlog += len;
    if (l->waiting)
        pthread_cond_signal(&l->work); /* else it takes this one with what it takes next */
    pthread_mutex_unlock(&l->mu);
}

/* ---- what was printed ---- */

static void remember(struct ring *r, const char *text, size_t len)
{
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return;
    memcpy(copy, text, len);
    copy[len] = '\0';
    size_t at = (r->head + r->n) % RING;
    if (r->n == RING) {
        free(r->text[r->head]);
        at = r->head;
        r->head = (r->head + 1) % RING;
    } else {
        r->n++;
    }
    r->text[at] = copy;
    r->len[at] = len;
}

void zos_cli_live_output(struct zos_cli_live *l, int stream, const char *text, size_t len)
{
    if (len == 0 || (stream != 1 && stream != 2))
        return;
    l->printed = true;
    remember(&l->rings[stream - 1], text, len);
    queue(l, stream, text, len);
}

void zos_cli_live_note(struct zos_cli_live *l, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = strlen(line);
    line[len++] = '\n';
    queue(l, 2, line, len);
}

bool zos_cli_live_printed(const struct zos_cli_live *l)
{
    return l->printed;
}

size_t zos_cli_live_backlog(struct zos_cli_live *l)
{
    pthread_mutex_lock(&l->mu);
    size_t n = l->backlog;
    pthread_mutex_unlock(&l->mu);
    return n;
}

void zos_cli_live_flush(struct zos_cli_live *l)
{
    pthread_mutex_lock(&l->mu);
    while (l->running && l->backlog > 0)
        pthread_cond_wait(&l->drained, &l->mu);
    pthread_mutex_unlock(&l->mu);
}

/* The part of FULL (a result's stream: its last chunks, joined) that comes
 * after what was printed: the longest run of the last records printed that
 * FULL starts with is skipped.  No overlap at all: FULL whole. */
char *zos_cli_live_unprinted(const struct zos_cli_live *l, int stream, const char *full)
{
    const struct ring *r = &l->rings[stream - 1];
    size_t flen = strlen(full), skip = 0;
    for (size_t first = 0; first < r->n && skip == 0; first++) {
        size_t at = 0;
        bool match = true;
        for (size_t i = first; i < r->n && match; i++) {
            size_t k = (r->head + i) % RING;
            match = at + r->len[k] <= flen && memcmp(full + at, r->text[k], r->len[k]) == 0;
            at += r->len[k];
        }
        if (match)
            skip = at;
    }
    return strdup(full + skip);
}

void zos_cli_live_free(struct zos_cli_live *l)
{
    if (l == NULL)
        return;
    if (l->running) {
        pthread_mutex_lock(&l->mu);
        l->stop = true;
        pthread_cond_signal(&l->work);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->thread, NULL); /* it writes what is queued first */
    }
    for (struct chunk *c = l->head, *next; c != NULL; c = next) {
        next = c->next;
        free(c);
    }
    for (int s = 0; s < 2; s++)
        for (size_t i = 0; i < l->rings[s].n; i++)
            free(l->rings[s].text[(l->rings[s].head + i) % RING]);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->work);
    pthread_cond_destroy(&l->drained);
    free(l);
}
